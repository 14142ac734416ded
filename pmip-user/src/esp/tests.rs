//! Published vectors, round trips, the window at SA level, and every kind of
//! bad input: nothing panics, everything is refused for the right reason and
//! counted.
//!
//! Vectors:
//! - AES-GCM: "GCM Test Vectors for IPsec ESP" (draft-mcgrew-gcm-test-01,
//!   the RFC 4106 authors' companion): whole ESP packets, key + salt as RFC 4106
//!   §8.1 keys them, nonce = salt | IV (§4), AAD = SPI | seq or SPI | ESN (§5).
//! - AES-CBC: RFC 3602 §4 cases 5-8 (ESP packets without ICV); the ICV
//!   (HMAC-SHA-256-128) is checked against RFC 4231 in `transform` and against
//!   Python's `cryptography` in `interop_tests`.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

use super::config::{parse_hex, EspAlgorithm, EspSettings, SaParams};
use super::packet::HEADER_LEN;
use super::transform::{new_transform, ICV_LEN};
use super::*;
use crate::agent::{Peer, Transmit};
use crate::pmipv6::LocalAddrs;

/// Hex with spaces allowed (the vectors separate the key from the salt).
fn hex(s: &str) -> Vec<u8> {
    parse_hex(&unspace(s)).unwrap()
}

fn gcm(spi: u32, key: &str, esn: bool) -> SaParams {
    SaParams {
        spi,
        algorithm: EspAlgorithm::AesGcm,
        key: hex(key),
        auth_key: None,
        esn,
        replay_window: 64,
    }
}

fn cbc(spi: u32, key: &str, auth: &str) -> SaParams {
    SaParams {
        spi,
        algorithm: EspAlgorithm::AesCbcHmacSha256,
        key: hex(key),
        auth_key: Some(hex(auth)),
        esn: false,
        replay_window: 64,
    }
}

struct GcmVector {
    sa: SaParams,
    seq: u64,
    iv: &'static str,
    /// The ESP plaintext: payload, padding, pad length, next header.
    plain: &'static str,
    ct_icv: &'static str,
}

/// draft-mcgrew-gcm-test-01 §4: cases 1 (ESN), 2 (AES-192), 3 (AES-256) and
/// 5 (sequence number 2^32 - 1, empty payload).
fn gcm_vectors() -> Vec<GcmVector> {
    vec![
        GcmVector {
            sa: gcm(0x4321, "4c80cdefbb5d10da906ac73c3613a634 2e443b68", true),
            seq: 0x8765_4321_0000_0000,
            iv: "4956ed7e3b244cfe",
            plain: "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000\
                    00000000045f736970045f756470037369700963796265726369747902646b00\
                    0021000101020201",
            ct_icv: "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34\
                     cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce\
                     61bc17d768fd9732459018148f6cbe722fd04796562dfdb4",
        },
        GcmVector {
            sa: gcm(
                0xa5f8,
                "feffe9928665731c6d6a8f9467308308feffe9928665731c cafebabe",
                false,
            ),
            seq: 10,
            iv: "facedbaddecaf888",
            plain: "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e\
                    501016d075680001",
            ct_icv: "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0\
                     315b27452144cc7795457b9652037f5318027b5b4cd7a636",
        },
        GcmVector {
            sa: gcm(
                0x4a2c_bfe3,
                "abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344",
                false,
            ),
            seq: 2,
            iv: "0102030405060708",
            plain: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000\
                    7002400020bf0000020405b40101040201020201",
            ct_icv: "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763\
                     748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c49\
                     15956c96",
        },
        GcmVector {
            sa: gcm(
                0x3354_67ae,
                "7d773d00c144c525ac619d18c84a3f47 d9664267",
                false,
            ),
            seq: 0xffff_ffff,
            iv: "43457e9182443bc6",
            plain: "01020201",
            ct_icv: "437f866bcb3f699fe9b0822bac961c4504bef270",
        },
    ]
}

fn unspace(s: &str) -> String {
    s.split_whitespace().collect()
}

impl GcmVector {
    fn packet(&self) -> Vec<u8> {
        let mut p = self.sa.spi.to_be_bytes().to_vec();
        p.extend_from_slice(&(self.seq as u32).to_be_bytes());
        p.extend(hex(self.iv));
        p.extend(hex(self.ct_icv));
        p
    }
    /// Payload and next header: the plaintext less its trailer.
    fn payload(&self) -> (u8, Vec<u8>) {
        let plain = hex(self.plain);
        let (len, nh) = packet::parse_trailer(&plain).unwrap();
        (nh, plain[..len].to_vec())
    }
}

#[test]
fn gcm_vectors_seal_to_the_published_bytes() {
    for (i, v) in gcm_vectors().into_iter().enumerate() {
        let mut sa = Sa::new(&v.sa, 0).unwrap();
        sa.set_tx_seq(v.seq - 1);
        let (nh, payload) = v.payload();
        let out = sa.seal_with_iv(&payload, nh, Some(&hex(v.iv))).unwrap();
        assert_eq!(out, v.packet(), "vector {i}");
        assert_eq!(sa.tx_seq(), v.seq);
    }
}

#[test]
fn gcm_vectors_open() {
    for (i, v) in gcm_vectors().into_iter().enumerate() {
        let mut sa = Sa::new(&v.sa, 0).unwrap();
        // Put the window just below the vector's number (ESN: in the
        // subspace before, so the high half must be inferred as the next).
        sa.window_mut().accept(v.seq - 1);
        assert_eq!(sa.open(&v.packet()), Ok(v.payload()), "vector {i}");
        assert_eq!(sa.window().top(), v.seq);
    }
}

#[test]
fn gcm_iv_is_the_sequence_number_under_the_seed() {
    // Vector 2's IV from its sequence number and a seed chosen to match:
    // the seed is what keeps a restarted sender from repeating IVs.
    let v = &gcm_vectors()[1];
    let seed = u64::from_be_bytes(hex(v.iv).try_into().unwrap()) ^ v.seq;
    let mut sa = Sa::new(&v.sa, seed).unwrap();
    sa.set_tx_seq(v.seq - 1);
    let (nh, payload) = v.payload();
    assert_eq!(sa.seal(&payload, nh).unwrap(), v.packet());
}

#[test]
fn sequence_number_never_cycles() {
    let v = &gcm_vectors()[3];
    let mut sa = Sa::new(&v.sa, 0).unwrap();
    sa.set_tx_seq(0xffff_fffe);
    assert!(sa.seal(b"", 1).is_ok());
    assert_eq!(sa.seal(b"", 1), Err(SealError::SeqExhausted));
    assert_eq!(sa.tx_seq(), 0xffff_ffff);
    // With ESN the wire number wraps and the counter goes on.
    let mut p = v.sa.clone();
    p.esn = true;
    let mut sa = Sa::new(&p, 0).unwrap();
    sa.set_tx_seq(0xffff_fffe);
    sa.seal(b"", 1).unwrap();
    let next = sa.seal(b"", 1).unwrap();
    assert_eq!(EspPacket::new_unchecked(&next).seq(), 0);
    assert_eq!(sa.tx_seq(), 1 << 32);
    sa.set_tx_seq(u64::MAX);
    assert_eq!(sa.seal(b"", 1), Err(SealError::SeqExhausted));
}

/// RFC 3602 §4 cases 5-8: (key, SPI, seq, IV, payload, next header, ESP packet without ICV).
fn cbc_vectors() -> Vec<(
    &'static str,
    u32,
    u64,
    &'static str,
    &'static str,
    u8,
    &'static str,
)> {
    vec![
        ("90d382b410eeba7ad938c46cec1a82bf", 0x4321, 1, "e96e8c08ab465763fd098d45dd3ff893",
         "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637", 1,
         "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6"),
        ("90d382b410eeba7ad938c46cec1a82bf", 0x4321, 8, "69d08df7d203329db093fc4924e5bd80",
         "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777", 1,
         "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75"),
        ("0123456789abcdef0123456789abcdef", 0x8765, 2, "f4e765244f6407adf13dc1380f673f37",
         "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637", 4,
         "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"),
        ("0123456789abcdef0123456789abcdef", 0x8765, 5, "85d47224b5f3dd5d2101d4ea8dffab22",
         "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 4,
         "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892"),
    ]
}

const AUTH: &str = "0x2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40";

fn hmac128(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes()[..16].to_vec()
}

#[test]
fn cbc_vectors_seal_to_the_published_bytes() {
    for (i, (key, spi, seq, iv, payload, nh, esp)) in cbc_vectors().into_iter().enumerate() {
        let mut sa = Sa::new(&cbc(spi, key, AUTH), 0).unwrap();
        sa.set_tx_seq(seq - 1);
        let out = sa.seal_with_iv(&hex(payload), nh, Some(&hex(iv))).unwrap();
        let (body, icv) = out.split_at(out.len() - ICV_LEN);
        assert_eq!(body, &hex(esp)[..], "case {}", i + 5);
        assert_eq!(icv, &hmac128(&hex(AUTH), body)[..], "case {}", i + 5);
    }
}

#[test]
fn cbc_vectors_open() {
    for (key, spi, seq, _, payload, nh, esp) in cbc_vectors() {
        let mut sa = Sa::new(&cbc(spi, key, AUTH), 0).unwrap();
        let mut p = hex(esp);
        p.extend(hmac128(&hex(AUTH), &p));
        assert_eq!(sa.open(&p), Ok((nh, hex(payload))));
        assert_eq!(sa.window().top(), seq);
        // The same packet again is a replay; with one ICV bit off, a forgery.
        assert_eq!(sa.open(&p), Err(DropReason::Replay(seq)));
        let mut sa = Sa::new(&cbc(spi, key, AUTH), 0).unwrap();
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(sa.open(&p), Err(DropReason::BadIcv));
        assert_eq!(sa.window().top(), 0, "a forgery must not move the window");
    }
}

/// Every algorithm and key size, with and without ESN.
fn all_params() -> Vec<SaParams> {
    let mut v = Vec::new();
    for esn in [false, true] {
        for n in [16, 24, 32] {
            let mut g = gcm(0x1000 + n as u32, "00", esn);
            g.key = (1..=(n as u8 + 4)).collect();
            v.push(g);
            let mut c = cbc(0x2000 + n as u32, "00", AUTH);
            c.key = (100..100 + n as u8).collect();
            c.esn = esn;
            v.push(c);
        }
    }
    v
}

#[test]
fn round_trips_every_length() {
    for p in all_params() {
        let mut tx = Sa::new(&p, 0x5eed).unwrap();
        let mut rx = Sa::new(&p, 0).unwrap();
        for len in 0..300 {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let out = tx.seal(&payload, 135).unwrap();
            assert_eq!(out.len(), len + tx.overhead(len));
            assert_eq!(rx.open(&out), Ok((135, payload)), "{p:?} len {len}");
        }
        assert_eq!(tx.tx_seq(), 300);
        assert_eq!(rx.window().top(), 300);
    }
}

#[test]
fn esn_round_trip_across_the_low_half_wrapping() {
    for mut p in all_params().into_iter().filter(|p| p.esn) {
        p.replay_window = 64;
        let mut tx = Sa::new(&p, 1).unwrap();
        let mut rx = Sa::new(&p, 0).unwrap();
        let start = (3u64 << 32) - 5;
        tx.set_tx_seq(start);
        rx.window_mut().accept(start);
        let pkts: Vec<_> = (0..10).map(|i| tx.seal(&[i; 40], 17).unwrap()).collect();
        // Out of order across the wrap, then replays.
        for i in [1, 0, 3, 2, 5, 4, 9, 6, 8, 7] {
            assert_eq!(rx.open(&pkts[i]), Ok((17, vec![i as u8; 40])), "{p:?} {i}");
        }
        assert_eq!(rx.window().top(), start + 10);
        assert_eq!(rx.open(&pkts[2]), Err(DropReason::Replay(start + 3)));
        // A receiver without ESN computes another ICV input: a forgery to it.
        let mut plain = p.clone();
        plain.esn = false;
        assert_eq!(
            Sa::new(&plain, 0).unwrap().open(&pkts[9]),
            Err(DropReason::BadIcv)
        );
    }
}

#[test]
fn ivs_differ_per_packet_and_per_seed() {
    for p in all_params() {
        let iv_len = if p.algorithm == EspAlgorithm::AesGcm {
            8
        } else {
            16
        };
        // Seeds as the OS draws them: unrelated 64-bit values.
        let mut a = Sa::new(&p, 0x6a09_e667_f3bc_c908).unwrap();
        let mut b = Sa::new(&p, 0xbb67_ae85_84ca_a73b).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            for sa in [&mut a, &mut b] {
                let out = sa.seal(b"pbu", 135).unwrap();
                assert!(seen.insert(out[HEADER_LEN..HEADER_LEN + iv_len].to_vec()));
            }
        }
    }
}

#[test]
fn window_at_sa_level() {
    let p = &all_params()[0];
    let mut tx = Sa::new(p, 9).unwrap();
    let mut rx = Sa::new(p, 0).unwrap();
    let pkts: Vec<_> = (1..=200u32).map(|_| tx.seal(b"x", 135).unwrap()).collect();
    // In order, then a duplicate, then out of order inside the window.
    for q in pkts.iter().take(100) {
        rx.open(q).unwrap();
    }
    assert_eq!(rx.open(&pkts[99]), Err(DropReason::Replay(100)));
    assert!(rx.open(&pkts[150]).is_ok());
    assert!(rx.open(&pkts[120]).is_ok(), "inside the window");
    assert_eq!(rx.open(&pkts[80]), Err(DropReason::Replay(81)), "too old");
    // Far ahead is fine; what it leaves behind is too old.
    assert!(rx.open(&pkts[199]).is_ok());
    assert_eq!(rx.open(&pkts[130]), Err(DropReason::Replay(131)));
}

/// Builds an authentic packet around any plaintext (trailer included), to
/// test what the receiver does with bad padding or next headers.
fn raw(p: &SaParams, seq: u32, plain: &[u8]) -> Vec<u8> {
    let t = new_transform(p.algorithm, &p.key, p.auth_key.as_deref()).unwrap();
    let mut b = p.spi.to_be_bytes().to_vec();
    b.extend_from_slice(&seq.to_be_bytes());
    b.resize(HEADER_LEN + t.iv_len(), 0x42);
    b.extend_from_slice(plain);
    b.resize(b.len() + ICV_LEN, 0);
    let hi = p.esn.then_some(0);
    t.seal(&mut b, hi).unwrap();
    b
}

#[test]
fn authentic_but_bad_trailers() {
    for p in all_params() {
        let block = if p.algorithm == EspAlgorithm::AesGcm {
            4
        } else {
            16
        };
        let mut rx = Sa::new(&p, 0).unwrap();
        // Pad length beyond the plaintext.
        let mut plain = vec![0u8; block];
        plain[block - 2] = 200;
        plain[block - 1] = 135;
        assert_eq!(rx.open(&raw(&p, 1, &plain)), Err(DropReason::BadPadding));
        // Padding that is not 1, 2, 3, ...
        let mut plain = vec![9u8; block];
        plain[block - 2] = 2;
        plain[block - 1] = 135;
        assert_eq!(rx.open(&raw(&p, 2, &plain)), Err(DropReason::BadPadding));
        // A dummy packet (next header 59).
        let mut plain = vec![0u8; block];
        for (i, b) in plain[..block - 2].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        plain[block - 2] = block as u8 - 2;
        plain[block - 1] = IPPROTO_NONE;
        assert_eq!(rx.open(&raw(&p, 3, &plain)), Err(DropReason::Dummy));
        // All three were authentic: the window moved, replays are replays.
        assert_eq!(rx.open(&raw(&p, 3, &plain)), Err(DropReason::Replay(3)));
    }
}

#[test]
fn every_truncation_and_every_bit_flip_is_refused_without_panic() {
    for p in all_params() {
        let mut tx = Sa::new(&p, 3).unwrap();
        let good = tx.seal(&[0x5a; 100], 135).unwrap();
        for n in 0..good.len() {
            let mut rx = Sa::new(&p, 0).unwrap();
            let r = rx.open(&good[..n]);
            assert!(
                matches!(r, Err(DropReason::Malformed(_) | DropReason::BadIcv)),
                "{p:?} len {n}: {r:?}"
            );
        }
        for i in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                let mut rx = Sa::new(&p, 0).unwrap();
                let r = rx.open(&bad);
                assert!(
                    match i {
                        0..4 => matches!(r, Err(DropReason::UnknownSpi(_))),
                        // Sequence number 1 may become 0, never sent.
                        4..8 => matches!(r, Err(DropReason::BadIcv | DropReason::Replay(0))),
                        _ => r == Err(DropReason::BadIcv),
                    },
                    "{p:?} byte {i}: {r:?}"
                );
            }
        }
        // Trailing garbage makes it misaligned or changes the ICV's place.
        let mut long = good.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(Sa::new(&p, 0).unwrap().open(&long).is_err());
    }
}

#[test]
fn wrong_key_and_wrong_spi() {
    for p in all_params() {
        let good = Sa::new(&p, 3).unwrap().seal(b"pba", 135).unwrap();
        let mut other = p.clone();
        match &mut other.auth_key {
            Some(a) => a[0] ^= 1,
            None => other.key[0] ^= 1,
        }
        assert_eq!(
            Sa::new(&other, 0).unwrap().open(&good),
            Err(DropReason::BadIcv)
        );
    }
    // CBC with the right HMAC key and a wrong AES key: authentic, but the
    // plaintext is noise, which the padding check catches.
    let p = all_params()[1].clone();
    let good = Sa::new(&p, 3).unwrap().seal(b"pba", 135).unwrap();
    let mut other = p.clone();
    other.key[0] ^= 1;
    assert_eq!(
        Sa::new(&other, 0).unwrap().open(&good),
        Err(DropReason::BadPadding)
    );
    let mut other = p.clone();
    other.spi += 1;
    assert_eq!(
        Sa::new(&other, 0).unwrap().open(&good),
        Err(DropReason::UnknownSpi(p.spi))
    );
    let zero = [0u8; 64];
    assert_eq!(
        Sa::new(&p, 0).unwrap().open(&zero),
        Err(DropReason::Malformed("SPI 0"))
    );
}

fn settings(alg: EspAlgorithm, spi_in: u32, spi_out: u32) -> EspSettings {
    let mk = |spi: u32, k: u8| {
        let (key, auth_key) = match alg {
            EspAlgorithm::AesGcm => (vec![k; 20], None),
            EspAlgorithm::AesCbcHmacSha256 => (vec![k; 16], Some(vec![k ^ 0xff; 32])),
        };
        SaParams {
            spi,
            algorithm: alg,
            key,
            auth_key,
            esn: false,
            replay_window: 64,
        }
    };
    EspSettings {
        inbound: mk(spi_in, spi_in as u8),
        outbound: mk(spi_out, spi_out as u8),
    }
}

/// The peer's view of the same SAs.
fn mirrored(s: &EspSettings) -> EspSettings {
    EspSettings {
        inbound: s.outbound.clone(),
        outbound: s.inbound.clone(),
    }
}

#[test]
fn database_counts_every_drop() {
    let mag: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into();
    let lma: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into();
    let other: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3).into();
    let s = settings(EspAlgorithm::AesGcm, 0x1001, 0x1002);
    let mut at_mag = SaDb::with_seed(1);
    at_mag.add_peer(lma, &s).unwrap();
    let mut at_lma = SaDb::with_seed(2);
    at_lma.add_peer(mag, &mirrored(&s)).unwrap();
    assert!(at_lma.add_peer(mag, &mirrored(&s)).is_err());
    assert!(at_lma.add_peer(other, &mirrored(&s)).is_err(), "SPI taken");

    let pbu = at_mag.seal(&lma, 135, b"pbu").unwrap();
    assert_eq!(at_mag.seal(&other, 135, b"x"), Err(SealError::NoSa));
    assert_eq!(at_lma.open(&mag, &pbu), Ok((135, b"pbu".to_vec())));
    assert_eq!(at_lma.open(&mag, &pbu), Err(DropReason::Replay(1)));
    assert_eq!(
        at_lma.open(&other, &pbu),
        Err(DropReason::WrongPeer(0x1002))
    );
    let mut forged = pbu.clone();
    forged[4..8].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(at_lma.open(&mag, &forged), Err(DropReason::BadIcv));
    forged[..4].copy_from_slice(&0x9999u32.to_be_bytes());
    assert_eq!(
        at_lma.open(&mag, &forged),
        Err(DropReason::UnknownSpi(0x9999))
    );
    assert!(matches!(
        at_lma.open(&mag, &pbu[..7]),
        Err(DropReason::Malformed(_))
    ));
    assert!(matches!(
        at_lma.open(&mag, &pbu[..20]),
        Err(DropReason::Malformed(_))
    ));
    assert!(at_lma.reject_unprotected(&mag));
    assert!(!at_lma.reject_unprotected(&other));

    let c = at_lma.counters();
    assert_eq!(c.rx_packets, 1);
    assert_eq!(
        (
            c.rx_replay,
            c.rx_wrong_peer,
            c.rx_bad_icv,
            c.rx_unknown_spi,
            c.rx_malformed
        ),
        (1, 1, 1, 1, 2)
    );
    assert_eq!(c.rx_unprotected, 1);
    assert_eq!(c.rx_dropped(), 7);
    assert_eq!(
        (at_mag.counters().tx_packets, at_mag.counters().tx_no_sa),
        (1, 1)
    );
    assert_eq!(at_mag.tx_seq(&lma), Some(1));
    assert_eq!(at_lma.rx_top(&mag), Some(1));
}

#[test]
fn kept_sequence_numbers_survive_a_restart() {
    let mag: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
    let lma: IpAddr = Ipv4Addr::new(192, 0, 2, 2).into();
    let s = settings(EspAlgorithm::AesCbcHmacSha256, 0x2001, 0x2002);
    let mut at_lma = SaDb::with_seed(0);
    at_lma.add_peer(mag, &mirrored(&s)).unwrap();
    let mut at_mag = SaDb::with_seed(1);
    at_mag.add_peer(lma, &s).unwrap();
    for _ in 0..100 {
        let p = at_mag.seal(&lma, 17, b"x").unwrap();
        at_lma.open(&mag, &p).unwrap();
    }
    let kept = at_mag.tx_seq(&lma).unwrap();
    // A restarted MAG that starts over at 1 is taken for a replayer...
    let mut restarted = SaDb::with_seed(7);
    restarted.add_peer(lma, &s).unwrap();
    let p = restarted.seal(&lma, 17, b"x").unwrap();
    assert_eq!(at_lma.open(&mag, &p), Err(DropReason::Replay(1)));
    // ... one that continues after what it kept is not.
    let mut restarted = SaDb::with_seed(8);
    restarted.add_peer(lma, &s).unwrap();
    assert!(restarted.set_tx_seq(&lma, kept));
    let p = restarted.seal(&lma, 17, b"x").unwrap();
    assert_eq!(at_lma.open(&mag, &p), Ok((17, b"x".to_vec())));
    // A restarted LMA that kept its window's top refuses what was recorded before.
    let recorded = at_mag.seal(&lma, 17, b"old").unwrap();
    let kept_rx = at_lma.rx_top(&mag).unwrap();
    let mut lma_again = SaDb::with_seed(9);
    lma_again.add_peer(mag, &mirrored(&s)).unwrap();
    assert!(lma_again.set_rx_top(&mag, kept_rx));
    assert_eq!(
        lma_again.open(&mag, &recorded),
        Err(DropReason::Replay(101))
    );
}

fn signaling_pair(v4: bool, alg: EspAlgorithm) -> (SignalingEsp, SignalingEsp, Peer, Peer) {
    let (mag_l, lma_l, mag_p, lma_p) = if v4 {
        let m = Ipv4Addr::new(192, 0, 2, 1);
        let l = Ipv4Addr::new(192, 0, 2, 2);
        (
            LocalAddrs {
                v6: None,
                v4: Some(m),
            },
            LocalAddrs {
                v6: None,
                v4: Some(l),
            },
            Peer::V4(SocketAddrV4::new(m, 5436)),
            Peer::V4(SocketAddrV4::new(l, 5436)),
        )
    } else {
        let m: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let l: Ipv6Addr = "2001:db8::2".parse().unwrap();
        (
            LocalAddrs {
                v6: Some(m),
                v4: None,
            },
            LocalAddrs {
                v6: Some(l),
                v4: None,
            },
            Peer::V6(m),
            Peer::V6(l),
        )
    };
    let s = settings(alg, 0x3001, 0x3002);
    let mut at_mag = SaDb::with_seed(1);
    at_mag.add_peer(lma_p.ip(), &s).unwrap();
    let mut at_lma = SaDb::with_seed(2);
    at_lma.add_peer(mag_p.ip(), &mirrored(&s)).unwrap();
    (
        SignalingEsp::new(at_mag, mag_l, 5436),
        SignalingEsp::new(at_lma, lma_l, 5436),
        mag_p,
        lma_p,
    )
}

#[test]
fn signaling_round_trip_both_transports() {
    for v4 in [false, true] {
        for alg in [EspAlgorithm::AesGcm, EspAlgorithm::AesCbcHmacSha256] {
            let (mut mag, mut lma, mag_p, lma_p) = signaling_pair(v4, alg);
            let t = Transmit::new(
                lma_p,
                vec![59, 1, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            );
            let (dst, esp) = mag.protect(&t).unwrap();
            assert_eq!(dst, lma_p.ip());
            let (from, mh) = lma.unprotect(mag_p.ip(), &esp).unwrap();
            assert_eq!((from, &mh[..]), (mag_p, &t.payload[..]));
            // The reply goes back where the request came from.
            let (_, esp) = lma.protect(&Transmit::new(from, mh.clone())).unwrap();
            assert_eq!(mag.unprotect(lma_p.ip(), &esp), Ok((lma_p, mh)));
            assert!(lma.reject_unprotected(&mag_p));
            assert_eq!(lma.counters().rx_unprotected, 1);
        }
    }
}

#[test]
fn signaling_refuses_wrong_inner_headers() {
    let (mut mag, mut lma, mag_p, lma_p) = signaling_pair(true, EspAlgorithm::AesGcm);
    let lma_ip = lma_p.ip();
    // A Mobility Header straight in ESP over IPv4: the wrong next header.
    let esp = mag.db_mut().seal(&lma_ip, 135, b"mh").unwrap();
    assert_eq!(
        lma.unprotect(mag_p.ip(), &esp),
        Err(DropReason::WrongNextHeader(135))
    );
    // UDP to another port than ours.
    let IpAddr::V4(src) = mag_p.ip() else {
        unreachable!()
    };
    let IpAddr::V4(dst) = lma_ip else {
        unreachable!()
    };
    let d = udp::build(src, dst, 5436, 9999, b"mh");
    let esp = mag.db_mut().seal(&lma_ip, 17, &d).unwrap();
    assert_eq!(
        lma.unprotect(mag_p.ip(), &esp),
        Err(DropReason::BadInnerUdp("not our port"))
    );
    // A bad UDP checksum.
    let mut d = udp::build(src, dst, 5436, 5436, b"mh");
    d[9] ^= 1;
    let esp = mag.db_mut().seal(&lma_ip, 17, &d).unwrap();
    assert_eq!(
        lma.unprotect(mag_p.ip(), &esp),
        Err(DropReason::BadInnerUdp("checksum"))
    );
    let c = lma.counters();
    assert_eq!(
        (c.rx_packets, c.rx_wrong_next_header, c.rx_bad_inner_udp),
        (0, 1, 2)
    );
    // No ESP SA for a peer: nothing to protect with.
    let stranger = Transmit::new(
        Peer::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 5436)),
        vec![0; 8],
    );
    assert_eq!(mag.protect(&stranger), Err(SealError::NoSa));
}

/// Per-message cost of seal and open for a 100-octet PBU, both algorithms.
/// `cargo test -p pmip-user --release --lib esp::tests::cost -- --ignored --nocapture`
#[test]
#[ignore]
fn cost() {
    use std::time::Instant;
    const N: u32 = 200_000;
    let pbu = [0x5au8; 100];
    for alg in [EspAlgorithm::AesGcm, EspAlgorithm::AesCbcHmacSha256] {
        let s = settings(alg, 0x4001, 0x4002);
        let mut p = s.outbound.clone();
        p.replay_window = 0;
        let mut tx = Sa::new(&p, 1).unwrap();
        let mut rx = Sa::new(&p, 0).unwrap();
        let pkts: Vec<_> = (0..N).map(|_| tx.seal(&pbu, 135).unwrap()).collect();
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(tx.seal(std::hint::black_box(&pbu), 135).unwrap());
        }
        let seal = t.elapsed() / N;
        let t = Instant::now();
        for q in &pkts {
            std::hint::black_box(rx.open(std::hint::black_box(q)).unwrap());
        }
        let open = t.elapsed() / N;
        println!(
            "{}: seal {:?}/msg, open {:?}/msg ({} octets on the wire for 100)",
            alg.name(),
            seal,
            open,
            pkts[0].len()
        );
    }
}
