//! The `peers[].esp` table: one pair of manually keyed SAs per peer, keys
//! written as `ip xfrm state` takes them, so that the same values configure
//! a Linux xfrm / strongSwan peer.
//!
//! ```toml
//! [peers.esp]
//! spi_in = 0x1001       # SPI of the SA the peer sends to us on
//! spi_out = 0x1002      # SPI of the SA we send to the peer on
//! algorithm = "rfc4106(gcm(aes))"
//! key_in = "0x<AES key><4-octet salt>"   # aead rfc4106(gcm(aes)) 0x... 128
//! key_out = "0x..."
//! # or: algorithm = "authenc(hmac(sha256),cbc(aes))" with
//! #   key_in/key_out the AES keys          # enc cbc(aes) 0x...
//! #   auth_key_in/auth_key_out (32 octets) # auth-trunc hmac(sha256) 0x... 128
//! replay_window = 64    # packets; 0 = no anti-replay check (xfrm replay-window)
//! esn = false           # 64-bit extended sequence numbers (xfrm flag esn)
//! ```
//!
//! [`EspConfig::check`] turns it into typed [`EspSettings`] or names every
//! bad key (`peers[0].esp.key_in: ...`), in the config module's error type.
//!
//! The same SAs on a Linux peer with xfrm (here the LMA, the table above
//! being the MAG's; over IPv4 the policies select `proto udp dport 5436` /
//! `sport 5436` instead of `proto 135`):
//!
//! ```text
//! ip xfrm state add src MAG dst LMA proto esp spi 0x1002 mode transport \
//!     aead 'rfc4106(gcm(aes))' <MAG's key_out> 128 replay-window 64
//! ip xfrm state add src LMA dst MAG proto esp spi 0x1001 mode transport \
//!     aead 'rfc4106(gcm(aes))' <MAG's key_in> 128
//! ip xfrm policy add src LMA dst MAG proto 135 dir out tmpl proto esp mode transport
//! ip xfrm policy add src MAG dst LMA proto 135 dir in tmpl proto esp mode transport
//! ```
use std::fmt;

use serde::{Deserialize, Serialize};

use super::replay::MAX_WINDOW;
use super::transform::{GCM_SALT_LEN, HMAC_KEY_LEN};
use crate::config::ConfigError;

/// The algorithms, by their Linux crypto API names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EspAlgorithm {
    /// AES-GCM with a 16-octet ICV (RFC 4106): `aead rfc4106(gcm(aes)) 0x<key+salt> 128`.
    #[serde(rename = "rfc4106(gcm(aes))")]
    AesGcm,
    /// AES-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868):
    /// `enc cbc(aes) 0x<key> auth-trunc hmac(sha256) 0x<key> 128`.
    #[serde(rename = "authenc(hmac(sha256),cbc(aes))")]
    AesCbcHmacSha256,
}

impl EspAlgorithm {
    pub fn name(&self) -> &'static str {
        match self {
            EspAlgorithm::AesGcm => "rfc4106(gcm(aes))",
            EspAlgorithm::AesCbcHmacSha256 => "authenc(hmac(sha256),cbc(aes))",
        }
    }
}

/// RFC 4303 §3.4.3: "a window size of 64 is preferred and SHOULD be employed as the default".
pub(crate) const DEFAULT_REPLAY_WINDOW: u32 = 64;

fn default_replay_window() -> u32 {
    DEFAULT_REPLAY_WINDOW
}

/// `peers[].esp` as written in the file. Keys stay strings here so that
/// [`check`](Self::check) can name each bad one; use [`EspSettings`] downstream.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspConfig {
    /// SPI of the inbound SA (the peer's outbound one).
    pub spi_in: u32,
    /// SPI of the outbound SA (the peer's inbound one).
    pub spi_out: u32,
    pub algorithm: EspAlgorithm,
    /// Hex, `0x` optional. AES-GCM: AES key then the 4-octet salt; CBC: AES key.
    pub key_in: String,
    pub key_out: String,
    /// HMAC-SHA-256 keys, for `authenc(hmac(sha256),cbc(aes))` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key_out: Option<String>,
    /// Anti-replay window in packets (0 = off).
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    /// Extended (64-bit) sequence numbers, both directions.
    #[serde(default)]
    pub esn: bool,
}

/// Keys never reach a log.
impl fmt::Debug for EspConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspConfig")
            .field("spi_in", &format_args!("{:#x}", self.spi_in))
            .field("spi_out", &format_args!("{:#x}", self.spi_out))
            .field("algorithm", &self.algorithm)
            .field("replay_window", &self.replay_window)
            .field("esn", &self.esn)
            .finish_non_exhaustive()
    }
}

/// One SA, typed: what [`super::Sa::new`] takes.
#[derive(Clone, PartialEq, Eq)]
pub struct SaParams {
    pub spi: u32,
    pub algorithm: EspAlgorithm,
    /// AES-GCM: key + salt; CBC: the AES key.
    pub key: Vec<u8>,
    /// CBC only: the HMAC-SHA-256 key.
    pub auth_key: Option<Vec<u8>>,
    pub esn: bool,
    /// Anti-replay window of an inbound SA (0 = off); unused outbound.
    pub replay_window: u32,
}

impl fmt::Debug for SaParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("algorithm", &self.algorithm)
            .field("key", &format_args!("<{} octets>", self.key.len()))
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

/// A peer's two SAs, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspSettings {
    pub inbound: SaParams,
    pub outbound: SaParams,
}

/// `0x0123...` or `0123...` to bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, &'static str> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if h.is_empty() {
        return Err("empty key");
    }
    if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("not hex (0x followed by hex digits, as ip xfrm takes it)");
    }
    if !h.len().is_multiple_of(2) {
        return Err("an odd number of hex digits");
    }
    Ok((0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0))
        .collect())
}

struct Errs<'a> {
    path: &'a str,
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn err(&mut self, key: &str, problem: impl Into<String>) {
        self.list.push(ConfigError {
            path: format!("{}.{key}", self.path),
            problem: problem.into(),
        });
    }
}

impl EspConfig {
    /// The typed SAs, or every problem named by its key under `path`
    /// (e.g. `peers[0].esp`).
    pub fn check(&self, path: &str) -> Result<EspSettings, Vec<ConfigError>> {
        let mut e = Errs {
            path,
            list: Vec::new(),
        };
        for (key, spi) in [("spi_in", self.spi_in), ("spi_out", self.spi_out)] {
            if spi < 256 {
                e.err(
                    key,
                    "must be >= 256 (0 is local use, 1-255 reserved: RFC 4303 §2.1)",
                );
            }
        }
        let key_in = self.cipher_key(&mut e, "key_in", &self.key_in);
        let key_out = self.cipher_key(&mut e, "key_out", &self.key_out);
        if key_in.is_some() && key_in == key_out {
            e.err(
                "key_out",
                "same as key_in: each direction needs its own key (with one key both ways \
                 AES-GCM repeats nonces and packets can be reflected)",
            );
        }
        let auth_in = self.auth_key(&mut e, "auth_key_in", self.auth_key_in.as_deref());
        let auth_out = self.auth_key(&mut e, "auth_key_out", self.auth_key_out.as_deref());
        if auth_in.is_some() && auth_in == auth_out {
            e.err(
                "auth_key_out",
                "same as auth_key_in: each direction needs its own key",
            );
        }
        if self.replay_window != 0 && !(32..=MAX_WINDOW).contains(&self.replay_window) {
            e.err(
                "replay_window",
                format!("must be 0 (off) or 32 to {MAX_WINDOW} packets (RFC 4303 §3.4.3)"),
            );
        }
        if self.esn && self.replay_window == 0 {
            e.err(
                "esn",
                "needs a replay window: the receiver infers the high half of the sequence \
                 number from it (RFC 4303 Appendix A)",
            );
        }
        if !e.list.is_empty() {
            return Err(e.list);
        }
        let sa = |spi, key: Option<Vec<u8>>, auth_key| SaParams {
            spi,
            algorithm: self.algorithm,
            key: key.unwrap_or_default(),
            auth_key,
            esn: self.esn,
            replay_window: self.replay_window,
        };
        Ok(EspSettings {
            inbound: sa(self.spi_in, key_in, auth_in),
            outbound: sa(self.spi_out, key_out, auth_out),
        })
    }

    fn cipher_key(&self, e: &mut Errs, name: &str, hex: &str) -> Option<Vec<u8>> {
        let k = match parse_hex(hex) {
            Ok(k) => k,
            Err(why) => {
                e.err(name, why);
                return None;
            }
        };
        let n = k.len();
        let ok = match self.algorithm {
            EspAlgorithm::AesGcm => matches!(n.checked_sub(GCM_SALT_LEN), Some(16 | 24 | 32)),
            EspAlgorithm::AesCbcHmacSha256 => matches!(n, 16 | 24 | 32),
        };
        if !ok {
            let want = match self.algorithm {
                EspAlgorithm::AesGcm => {
                    "the AES key and the 4-octet salt (RFC 4106 §8.1): 20, 28 or 36 octets"
                }
                EspAlgorithm::AesCbcHmacSha256 => "the AES key: 16, 24 or 32 octets",
            };
            e.err(
                name,
                format!("{} takes {want}, got {n}", self.algorithm.name()),
            );
            return None;
        }
        if k.iter().all(|&b| b == 0) {
            e.err(name, "all zeros: not a key");
            return None;
        }
        Some(k)
    }

    fn auth_key(&self, e: &mut Errs, name: &str, hex: Option<&str>) -> Option<Vec<u8>> {
        match (self.algorithm, hex) {
            (EspAlgorithm::AesGcm, None) => None,
            (EspAlgorithm::AesGcm, Some(_)) => {
                e.err(
                    name,
                    "only for authenc(hmac(sha256),cbc(aes)): rfc4106(gcm(aes)) authenticates \
                     with its own key",
                );
                None
            }
            (EspAlgorithm::AesCbcHmacSha256, None) => {
                e.err(
                    name,
                    "missing: authenc(hmac(sha256),cbc(aes)) needs the HMAC-SHA-256 key \
                     (32 octets, RFC 4868 §2.1.1)",
                );
                None
            }
            (EspAlgorithm::AesCbcHmacSha256, Some(h)) => match parse_hex(h) {
                Err(why) => {
                    e.err(name, why);
                    None
                }
                Ok(k) if k.len() != HMAC_KEY_LEN => {
                    e.err(
                        name,
                        format!(
                            "HMAC-SHA-256-128 keys are {HMAC_KEY_LEN} octets (RFC 4868 §2.1.1), \
                             got {}",
                            k.len()
                        ),
                    );
                    None
                }
                Ok(k) if k.iter().all(|&b| b == 0) => {
                    e.err(name, "all zeros: not a key");
                    None
                }
                Ok(k) => Some(k),
            },
        }
    }
}

/// Inbound SAs are found by SPI alone: `spi_in` must be unique across peers.
/// `entries` are (path, config), e.g. `("peers[2].esp", &esp)`.
pub fn check_unique_spi_in(entries: &[(String, &EspConfig)]) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    for (i, (path, c)) in entries.iter().enumerate() {
        if let Some((other, _)) = entries[..i].iter().find(|(_, o)| o.spi_in == c.spi_in) {
            errs.push(ConfigError {
                path: format!("{path}.spi_in"),
                problem: format!(
                    "{:#x} is also {other}.spi_in: inbound SAs are told apart by SPI",
                    c.spi_in
                ),
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Peer {
        esp: EspConfig,
    }

    fn parse(t: &str) -> EspConfig {
        toml::from_str::<Peer>(t).expect("toml").esp
    }

    const GCM: &str = r#"
        [esp]
        spi_in = 0x1001
        spi_out = 0x1002
        algorithm = "rfc4106(gcm(aes))"
        key_in = "0x000102030405060708090a0b0c0d0e0fcafebabe"
        key_out = "0x101112131415161718191a1b1c1d1e1fdeadbeef"
    "#;

    const CBC: &str = r#"
        [esp]
        spi_in = 8193
        spi_out = 8194
        algorithm = "authenc(hmac(sha256),cbc(aes))"
        key_in = "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
        key_out = "0x101112131415161718191a1b1c1d1e1f"
        auth_key_in = "0x2021222324252627282920212223242526272829202122232425262728292a2b"
        auth_key_out = "0x3031323334353637383930313233343536373839303132333435363738393a3b"
        replay_window = 128
        esn = true
    "#;

    fn problems(c: &EspConfig) -> Vec<String> {
        c.check("peers[0].esp")
            .expect_err("should be refused")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn gcm_parses_with_defaults() {
        let s = parse(GCM).check("peers[0].esp").unwrap();
        assert_eq!(s.inbound.spi, 0x1001);
        assert_eq!(s.outbound.spi, 0x1002);
        assert_eq!(s.inbound.key.len(), 20);
        assert_eq!(&s.outbound.key[16..], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(s.inbound.replay_window, DEFAULT_REPLAY_WINDOW);
        assert!(!s.inbound.esn);
        assert_eq!(s.inbound.auth_key, None);
    }

    #[test]
    fn cbc_parses() {
        let s = parse(CBC).check("peers[0].esp").unwrap();
        assert_eq!(s.inbound.algorithm, EspAlgorithm::AesCbcHmacSha256);
        assert_eq!(s.inbound.key.len(), 32);
        assert_eq!(s.outbound.key.len(), 16);
        assert_eq!(s.outbound.auth_key.as_ref().map(Vec::len), Some(32));
        assert_eq!(s.inbound.replay_window, 128);
        assert!(s.outbound.esn);
    }

    #[test]
    fn serializes_back_to_the_same_table() {
        for t in [GCM, CBC] {
            let c = parse(t);
            let text = toml::to_string(&Peer2 { esp: c.clone() }).unwrap();
            assert_eq!(parse(&text), c);
        }
        #[derive(Serialize)]
        struct Peer2 {
            esp: EspConfig,
        }
    }

    #[test]
    fn each_bad_key_is_named() {
        let mut c = parse(GCM);
        c.spi_in = 255;
        c.spi_out = 0;
        c.key_in = "0x0102".into();
        c.key_out = "zz".into();
        c.auth_key_in = Some("0x00".into());
        c.replay_window = 16;
        let p = problems(&c);
        let has = |prefix: &str| p.iter().any(|l| l.starts_with(prefix));
        assert!(has("peers[0].esp.spi_in: must be >= 256"), "{p:?}");
        assert!(has("peers[0].esp.spi_out: must be >= 256"), "{p:?}");
        assert!(
            has("peers[0].esp.key_in: rfc4106(gcm(aes)) takes the AES key and the 4-octet salt"),
            "{p:?}"
        );
        assert!(has("peers[0].esp.key_out: not hex"), "{p:?}");
        assert!(has("peers[0].esp.auth_key_in: only for authenc"), "{p:?}");
        assert!(
            has("peers[0].esp.replay_window: must be 0 (off) or 32"),
            "{p:?}"
        );
        assert_eq!(p.len(), 6, "{p:?}");
    }

    #[test]
    fn cbc_needs_good_auth_keys() {
        let mut c = parse(CBC);
        c.auth_key_in = None;
        c.auth_key_out = Some("0x0011".into());
        let p = problems(&c);
        assert!(
            p[0].starts_with("peers[0].esp.auth_key_in: missing"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("peers[0].esp.auth_key_out: HMAC-SHA-256-128 keys are 32 octets"),
            "{p:?}"
        );
        let mut c = parse(CBC);
        c.auth_key_out = c.auth_key_in.clone();
        assert!(problems(&c)[0].starts_with("peers[0].esp.auth_key_out: same as auth_key_in"));
        let mut c = parse(CBC);
        c.key_in = "0x0102030405060708090a0b0c0d0e0f10cafebabe".into();
        assert!(
            problems(&c)[0].contains("cbc(aes)) takes the AES key: 16, 24 or 32 octets, got 20")
        );
    }

    #[test]
    fn same_key_both_ways_zero_keys_and_odd_hex_refused() {
        let mut c = parse(GCM);
        c.key_out = c.key_in.to_uppercase().replace("0X", "0x");
        assert!(problems(&c)[0].starts_with("peers[0].esp.key_out: same as key_in"));
        let mut c = parse(GCM);
        c.key_in = format!("0x{}", "00".repeat(20));
        assert_eq!(problems(&c), ["peers[0].esp.key_in: all zeros: not a key"]);
        let mut c = parse(GCM);
        c.key_in = "0x123".into();
        assert_eq!(
            problems(&c),
            ["peers[0].esp.key_in: an odd number of hex digits"]
        );
        c.key_in = "0x".into();
        assert_eq!(problems(&c), ["peers[0].esp.key_in: empty key"]);
    }

    #[test]
    fn esn_without_window_refused() {
        let mut c = parse(GCM);
        c.esn = true;
        c.replay_window = 0;
        assert!(problems(&c)[0].starts_with("peers[0].esp.esn: needs a replay window"));
        c.esn = false;
        assert!(c.check("p").is_ok());
    }

    #[test]
    fn unknown_keys_and_algorithms_refused_by_the_parser() {
        let t = format!("{GCM}bogus = 1\n");
        let e = toml::from_str::<Peer>(&t).err().unwrap().to_string();
        assert!(e.contains("bogus"), "{e}");
        let t = GCM.replace("rfc4106(gcm(aes))", "cbc(des)");
        let e = toml::from_str::<Peer>(&t).err().unwrap().to_string();
        assert!(e.contains("rfc4106(gcm(aes))"), "{e}");
    }

    #[test]
    fn duplicate_inbound_spi_across_peers() {
        let a = parse(GCM);
        let mut b = parse(CBC);
        b.spi_in = a.spi_in;
        let errs = check_unique_spi_in(&[
            ("peers[0].esp".into(), &a),
            ("peers[1].esp".into(), &parse(CBC)),
            ("peers[2].esp".into(), &b),
        ]);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "peers[2].esp.spi_in: 0x1001 is also peers[0].esp.spi_in: inbound SAs are told apart by SPI"
        );
    }

    #[test]
    fn debug_output_has_no_keys() {
        let c = parse(GCM);
        let s = c.check("p").unwrap();
        for text in [format!("{c:?}"), format!("{s:?}")] {
            assert!(!text.contains("0001020304"), "{text}");
            assert!(!text.contains("[0, 1, 2"), "{text}");
        }
    }
}
