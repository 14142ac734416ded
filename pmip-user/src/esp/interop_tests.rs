//! An independent ESP implementation, written here in Python on the
//! `cryptography` package (OpenSSL) and the standard `hmac` module, straight
//! from RFC 4303 / 4106 / 3602 / 4868: packets it seals must open here, and
//! packets sealed here must open there — both algorithms, AES-128 and -256,
//! with and without ESN. It also builds authentic packets with bad padding
//! and packets under a wrong key, which must be refused for those reasons.
//!
//! Needs `/usr/bin/python3` with `cryptography` (Debian python3-cryptography,
//! installed by `cargo xtask setup`); skipped without it, except under CI.
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::config::{parse_hex, EspAlgorithm, SaParams};
use super::{DropReason, Sa};

const PYTHON: &str = "/usr/bin/python3";

const REFERENCE: &str = r#"
import sys, json, hmac, hashlib, os
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

def trailer(payload, align, nh, bad_pad):
    n = (-(len(payload) + 2)) % align
    pad = bytes([0xee] * n) if bad_pad else bytes(range(1, n + 1))
    return payload + pad + bytes([n, nh])

def words(c, seq):
    return (c["spi"].to_bytes(4, "big"), (seq & 0xffffffff).to_bytes(4, "big"),
            (seq >> 32).to_bytes(4, "big"))

def seal(c, seq, nh, payload, bad_pad):
    spi, lo, hi = words(c, seq)
    if c["alg"] == "gcm":
        key, salt, iv = c["key"][:-4], c["key"][-4:], os.urandom(8)
        aad = spi + hi + lo if c["esn"] else spi + lo
        return spi + lo + iv + AESGCM(key).encrypt(salt + iv, trailer(payload, 4, nh, bad_pad), aad)
    iv = os.urandom(16)
    e = Cipher(algorithms.AES(c["key"]), modes.CBC(iv)).encryptor()
    body = spi + lo + iv + e.update(trailer(payload, 16, nh, bad_pad)) + e.finalize()
    icv = hmac.new(c["auth"], body + (hi if c["esn"] else b""), hashlib.sha256).digest()[:16]
    return body + icv

def open_(c, pkt, seq):
    spi, lo, hi = words(c, seq)
    if pkt[:8] != spi + lo:
        return "header"
    if c["alg"] == "gcm":
        key, salt, iv = c["key"][:-4], c["key"][-4:], pkt[8:16]
        aad = spi + hi + lo if c["esn"] else spi + lo
        try:
            plain = AESGCM(key).decrypt(salt + iv, pkt[16:], aad)
        except Exception:
            return "icv"
    else:
        body, icv = pkt[:-16], pkt[-16:]
        want = hmac.new(c["auth"], body + (hi if c["esn"] else b""), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(want, icv):
            return "icv"
        d = Cipher(algorithms.AES(c["key"]), modes.CBC(pkt[8:24])).decryptor()
        plain = d.update(body[24:]) + d.finalize()
    n, nh = plain[-2], plain[-1]
    if plain[-2 - n:-2] != bytes(range(1, n + 1)):
        return "padding"
    return {"nh": nh, "payload": plain[:-2 - n].hex()}

req = json.load(sys.stdin)
c = req["sa"]
c["key"] = bytes.fromhex(c["key"])
c["auth"] = bytes.fromhex(c["auth"]) if c["auth"] else None
out = {
    "sealed": [seal(c, s["seq"], s["nh"], bytes.fromhex(s["payload"]), s.get("bad_pad", False)).hex()
               for s in req["seal"]],
    "opened": [open_(c, bytes.fromhex(o["packet"]), o["seq"]) for o in req["open"]],
}
json.dump(out, sys.stdout)
"#;

fn python_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var_os("CI").is_some() {
        panic!("{PYTHON} with the cryptography package is missing (Debian python3-cryptography)");
    }
    ok
}

fn run_reference(req: &Value) -> Value {
    let mut child = Command::new(PYTHON)
        .args(["-c", REFERENCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference output")
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn params() -> Vec<SaParams> {
    let mut v = Vec::new();
    for esn in [false, true] {
        for n in [16usize, 32] {
            v.push(SaParams {
                spi: 0x0100_0000 + n as u32,
                algorithm: EspAlgorithm::AesGcm,
                key: (0..n as u8 + 4)
                    .map(|i| i.wrapping_mul(37) ^ 0x5c)
                    .collect(),
                auth_key: None,
                esn,
                replay_window: 128,
            });
            v.push(SaParams {
                spi: 0x0200_0000 + n as u32,
                algorithm: EspAlgorithm::AesCbcHmacSha256,
                key: (0..n as u8).map(|i| i.wrapping_mul(53) ^ 0x36).collect(),
                auth_key: Some((0..32u8).map(|i| i.wrapping_mul(11) ^ 0xa5).collect()),
                esn,
                replay_window: 128,
            });
        }
    }
    v
}

fn sa_json(p: &SaParams) -> Value {
    json!({
        "alg": if p.algorithm == EspAlgorithm::AesGcm { "gcm" } else { "cbc" },
        "key": hexs(&p.key),
        "auth": p.auth_key.as_deref().map(hexs),
        "spi": p.spi,
        "esn": p.esn,
    })
}

/// Sequence numbers used: across a wrap of the low half when ESN is on.
fn first_seq(p: &SaParams) -> u64 {
    if p.esn {
        (5u64 << 32) - 4
    } else {
        1
    }
}

#[test]
fn packets_sealed_by_the_reference_open_here() {
    if !python_available() {
        eprintln!("{PYTHON} with cryptography not installed: skipping");
        return;
    }
    for p in params() {
        let start = first_seq(&p);
        let lens = [0usize, 1, 2, 3, 13, 14, 15, 16, 17, 40, 100, 257, 1000];
        let mut seal: Vec<Value> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let payload: Vec<u8> = (0..n).map(|j| (j * 13 + i) as u8).collect();
                json!({"seq": start + i as u64, "nh": 135, "payload": hexs(&payload)})
            })
            .collect();
        let bad = start + lens.len() as u64;
        seal.push(json!({"seq": bad, "nh": 135, "payload": "0102030405", "bad_pad": true}));
        let out = run_reference(&json!({"sa": sa_json(&p), "seal": seal, "open": []}));
        let sealed = out["sealed"].as_array().unwrap();
        let mut rx = Sa::new(&p, 0).unwrap();
        if p.esn {
            rx.window_mut().accept(start - 1);
        }
        for (i, pkt) in sealed.iter().enumerate() {
            let pkt = parse_hex(pkt.as_str().unwrap()).unwrap();
            let r = rx.open(&pkt);
            if i == lens.len() {
                assert_eq!(r, Err(DropReason::BadPadding), "{p:?}");
            } else {
                let want = parse_hex(seal[i]["payload"].as_str().unwrap()).unwrap_or_default();
                assert_eq!(r, Ok((135, want)), "{p:?} packet {i}");
            }
        }
        // Sealed there under another key: a forgery here.
        let mut other = p.clone();
        other.key[0] ^= 0xff;
        if let Some(a) = other.auth_key.as_mut() {
            a[0] ^= 0xff;
        }
        let out = run_reference(&json!({"sa": sa_json(&other), "seal": [seal[4]], "open": []}));
        let pkt = parse_hex(out["sealed"][0].as_str().unwrap()).unwrap();
        let mut rx = Sa::new(&p, 0).unwrap();
        if p.esn {
            rx.window_mut().accept(start - 1);
        }
        assert_eq!(rx.open(&pkt), Err(DropReason::BadIcv), "{p:?}");
    }
}

#[test]
fn packets_sealed_here_open_in_the_reference() {
    if !python_available() {
        eprintln!("{PYTHON} with cryptography not installed: skipping");
        return;
    }
    for p in params() {
        let start = first_seq(&p);
        let mut tx = Sa::new(&p, 0x0123_4567_89ab_cdef).unwrap();
        tx.set_tx_seq(start - 1);
        let payloads: Vec<Vec<u8>> = [0usize, 1, 14, 15, 16, 100, 500]
            .iter()
            .map(|&n| (0..n).map(|j| (j * 29) as u8).collect())
            .collect();
        let open: Vec<Value> = payloads
            .iter()
            .enumerate()
            .map(|(i, pl)| {
                let pkt = tx.seal(pl, 17).unwrap();
                json!({"packet": hexs(&pkt), "seq": start + i as u64})
            })
            .collect();
        let out = run_reference(&json!({"sa": sa_json(&p), "seal": [], "open": open}));
        for (i, got) in out["opened"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                got,
                &json!({"nh": 17, "payload": hexs(&payloads[i])}),
                "{p:?} packet {i}"
            );
        }
    }
}
