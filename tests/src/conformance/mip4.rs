//! Mobile IPv4 registration bytes written by hand from the RFC figures (the
//! conformance tests' side of UDP 434): RFC 3344 §3.3 (Registration Request),
//! §3.4 (Reply), §1.9–1.11 (extension formats), §3.5 (authentication,
//! HMAC-MD5 by default, §5.1), RFC 2794 (NAI), RFC 3543 §3.2–3.4 (revocation),
//! RFC 6245 §3.1 (GRE Key, long form) and draft-leung §5 (PMIPv4 extensions).
//! HMAC-MD5 is computed here with the hmac/md-5 crates, not pmip-user's code.
use hmac::{Hmac, Mac};

pub const RRQ: u8 = 1;
pub const RRP: u8 = 3;
pub const REVOCATION: u8 = 7;
pub const REVOCATION_ACK: u8 = 15;

/// RRQ flags octet: S B D M G r T x.
pub const F_D: u8 = 0x20;
pub const F_G: u8 = 0x08;
pub const F_T: u8 = 0x02;

pub mod ext {
    pub const MN_HA_AUTH: u8 = 32;
    pub const FA_HA_AUTH: u8 = 34;
    pub const PMIP_NONSKIP: u8 = 47;
    pub const GRE_KEY: u8 = 48;
    pub const NAI: u8 = 131;
    pub const REVOCATION_SUPPORT: u8 = 137;
    pub const DYNAMIC_HA: u8 = 139;
    pub const PMIP_SKIP: u8 = 147;
}

/// One extension's bytes, header included.
pub type Ext = Vec<u8>;

/// RFC 2794 §2: Type 131, Length, NAI.
pub fn nai(n: &str) -> Ext {
    let mut e = vec![ext::NAI, n.len() as u8];
    e.extend_from_slice(n.as_bytes());
    e
}
/// RFC 6245 §3.1: Type 48, Sub-Type 0, Length (16 bits) 4, GRE Key Identifier.
pub fn gre_key(k: u32) -> Ext {
    let mut e = vec![ext::GRE_KEY, 0, 0, 4];
    e.extend_from_slice(&k.to_be_bytes());
    e
}
/// RFC 3543 §3.2: Type 137, Length 6, I + Reserved (16 bits), Timestamp (32 bits).
pub fn revocation_support(ts: u32) -> Ext {
    let mut e = vec![ext::REVOCATION_SUPPORT, 6, 0, 0];
    e.extend_from_slice(&ts.to_be_bytes());
    e
}
/// Draft-leung §5.1: Type 47, Sub-Type 1, Length (16 bits) 1, method (1 FA-HA, 2 IPsec).
pub fn per_node_auth(method: u8) -> Ext {
    vec![ext::PMIP_NONSKIP, 1, 0, 1, method]
}
/// Draft-leung §5.3: Type 147, Length, Sub-Type 2, ID-Type 1 (MAC), identifier.
pub fn device_id_mac(mac: [u8; 6]) -> Ext {
    let mut e = vec![ext::PMIP_SKIP, 8, 2, 1];
    e.extend_from_slice(&mac);
    e
}
/// RFC 4433 §3.4: Type 139 (skippable), Sub-type (1 requested, 2
/// redirected HA), Length (16 bits) 4, HA address — the long format of the
/// RFC's figure (Wireshark reads a short one: Type, Length 5, Sub-type).
pub fn dynamic_ha(subtype: u8, ha: [u8; 4]) -> Ext {
    let mut e = vec![ext::DYNAMIC_HA, subtype, 0, 4];
    e.extend_from_slice(&ha);
    e
}
/// Any short-form extension.
pub fn short(ty: u8, data: &[u8]) -> Ext {
    let mut e = vec![ty, data.len() as u8];
    e.extend_from_slice(data);
    e
}

/// A security association as the peer's configuration states it.
#[derive(Clone, Debug)]
pub struct Sa {
    pub spi: u32,
    pub key: Vec<u8>,
}

/// RFC 3344 §3.5.1: HMAC-MD5 over the message up to and including the SPI.
pub fn hmac_md5(key: &[u8], covered: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<md5::Md5> as Mac>::new_from_slice(key).expect("any key length");
    m.update(covered);
    m.finalize().into_bytes().into()
}

/// Appends an authentication extension (Type, Length 20, SPI, HMAC-MD5).
pub fn sign(msg: &mut Vec<u8>, kind: u8, sa: &Sa) {
    sign_with(msg, kind, sa, Alg::HmacMd5);
}

/// The authenticator algorithms (RFC 3344 §5.1, StarOS `hash-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// HMAC-MD5 over the message through the SPI (RFC 3344 §3.5.1).
    HmacMd5,
    /// MD5(key ‖ message through the SPI ‖ key).
    KeyedMd5,
    /// MD5(key ‖ message through Type and Length ‖ key) (RFC 2002 §3.5.1).
    Rfc2002Md5,
}

/// Keyed MD5 in prefix+suffix mode.
pub fn keyed_md5(key: &[u8], covered: &[u8]) -> [u8; 16] {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(key);
    h.update(covered);
    h.update(key);
    h.finalize().into()
}

impl Alg {
    /// The authenticator over `msg`, whose authentication extension starts at `ext`.
    pub fn authenticator(self, key: &[u8], msg: &[u8], ext: usize) -> [u8; 16] {
        match self {
            Alg::HmacMd5 => hmac_md5(key, &msg[..ext + 6]),
            Alg::KeyedMd5 => keyed_md5(key, &msg[..ext + 6]),
            Alg::Rfc2002Md5 => keyed_md5(key, &msg[..ext + 2]),
        }
    }
}

/// Appends an authentication extension computed with `alg`.
pub fn sign_with(msg: &mut Vec<u8>, kind: u8, sa: &Sa, alg: Alg) {
    let ext = msg.len();
    msg.push(kind);
    msg.push(20);
    msg.extend_from_slice(&sa.spi.to_be_bytes());
    let a = alg.authenticator(&sa.key, msg, ext);
    msg.extend_from_slice(&a);
}

/// RFC 3344 §3.3: Type 1, flags, Lifetime, Home Address, Home Agent,
/// Care-of Address, Identification (64), extensions.
pub fn rrq(
    flags: u8,
    lifetime: u16,
    hoa: [u8; 4],
    ha: [u8; 4],
    coa: [u8; 4],
    ident: u64,
    exts: &[Ext],
) -> Vec<u8> {
    let mut b = vec![RRQ, flags];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&hoa);
    b.extend_from_slice(&ha);
    b.extend_from_slice(&coa);
    b.extend_from_slice(&ident.to_be_bytes());
    for e in exts {
        b.extend_from_slice(e);
    }
    b
}

/// RFC 3344 §3.4: Type 3, Code, Lifetime, Home Address, Home Agent, Identification, extensions.
pub fn rrp(
    code: u8,
    lifetime: u16,
    hoa: [u8; 4],
    ha: [u8; 4],
    ident: u64,
    exts: &[Ext],
) -> Vec<u8> {
    let mut b = vec![RRP, code];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&hoa);
    b.extend_from_slice(&ha);
    b.extend_from_slice(&ident.to_be_bytes());
    for e in exts {
        b.extend_from_slice(e);
    }
    b
}

/// RFC 3543 §3.3: Type 7, Reserved, A I Reserved, Home Address, Home Domain
/// Address, Foreign Domain Address, Revocation Identifier, extensions.
pub fn revocation(
    a_bit: bool,
    hoa: [u8; 4],
    hda: [u8; 4],
    fda: [u8; 4],
    id: u32,
    exts: &[Ext],
) -> Vec<u8> {
    let mut b = vec![REVOCATION, 0, if a_bit { 0x80 } else { 0 }, 0];
    b.extend_from_slice(&hoa);
    b.extend_from_slice(&hda);
    b.extend_from_slice(&fda);
    b.extend_from_slice(&id.to_be_bytes());
    for e in exts {
        b.extend_from_slice(e);
    }
    b
}

/// RFC 3543 §3.4: Type 15, Reserved, I Reserved, Home Address, Revocation Identifier.
pub fn revocation_ack(hoa: [u8; 4], id: u32, exts: &[Ext]) -> Vec<u8> {
    let mut b = vec![REVOCATION_ACK, 0, 0, 0];
    b.extend_from_slice(&hoa);
    b.extend_from_slice(&id.to_be_bytes());
    for e in exts {
        b.extend_from_slice(e);
    }
    b
}

/// 64-bit NTP timestamp of now (RFC 3344 §5.7.1 Identification).
pub fn ntp_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = (d.as_secs() + 2_208_988_800) & 0xffff_ffff;
    (secs << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// A received message split by hand: the fixed part and the extensions.
#[derive(Clone, Debug)]
pub struct Msg {
    pub bytes: Vec<u8>,
    pub fixed_len: usize,
    /// (offset, type, subtype for long-form types, data).
    pub exts: Vec<(usize, u8, Option<u8>, Vec<u8>)>,
}

fn is_long(ty: u8) -> bool {
    matches!(ty, 36 | 38 | ext::PMIP_NONSKIP | ext::GRE_KEY)
}

/// RFC 4433 §3.4's long-format Dynamic HA extension (see `dynamic_ha`).
fn is_long_at(b: &[u8]) -> bool {
    is_long(b[0])
        || (b[0] == ext::DYNAMIC_HA && b.len() >= 4 && matches!(b[1], 1 | 2) && b[2..4] == [0, 4])
}

impl Msg {
    pub fn parse(b: &[u8]) -> Msg {
        let fixed_len = match b.first() {
            Some(&RRQ) => 24,
            Some(&RRP) | Some(&REVOCATION) => 20,
            Some(&REVOCATION_ACK) => 12,
            t => panic!("unexpected MIPv4 message type {t:?}: {b:02x?}"),
        };
        assert!(b.len() >= fixed_len, "truncated: {b:02x?}");
        let mut exts = Vec::new();
        let mut i = fixed_len;
        while i < b.len() {
            let ty = b[i];
            if ty == 0 {
                // RFC 5944 §1.8: One-byte Padding, no Length.
                i += 1;
                continue;
            }
            let (hl, sub, len) = if is_long_at(&b[i..]) {
                assert!(i + 4 <= b.len(), "long extension header cut: {b:02x?}");
                (
                    4,
                    Some(b[i + 1]),
                    usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]])),
                )
            } else {
                assert!(i + 2 <= b.len(), "extension header cut: {b:02x?}");
                (2, None, usize::from(b[i + 1]))
            };
            assert!(i + hl + len <= b.len(), "extension {ty} overruns: {b:02x?}");
            exts.push((i, ty, sub, b[i + hl..i + hl + len].to_vec()));
            i += hl + len;
        }
        Msg {
            bytes: b.to_vec(),
            fixed_len,
            exts,
        }
    }
    pub fn ty(&self) -> u8 {
        self.bytes[0]
    }
    pub fn code(&self) -> u8 {
        self.bytes[1]
    }
    pub fn flags(&self) -> u8 {
        self.bytes[1]
    }
    pub fn lifetime(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }
    pub fn addr(&self, at: usize) -> [u8; 4] {
        [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ]
    }
    pub fn home_address(&self) -> [u8; 4] {
        self.addr(4)
    }
    pub fn home_agent(&self) -> [u8; 4] {
        self.addr(8)
    }
    /// Identification: at 16 in a request, 12 in a reply.
    pub fn ident(&self) -> u64 {
        let at = if self.ty() == RRQ { 16 } else { 12 };
        u64::from_be_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }
    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }
    pub fn get(&self, ty: u8) -> Option<&[u8]> {
        self.exts.iter().find(|e| e.1 == ty).map(|e| e.3.as_slice())
    }
    pub fn types(&self) -> Vec<u8> {
        self.exts.iter().map(|e| e.1).collect()
    }
    pub fn nai(&self) -> Option<String> {
        self.get(ext::NAI)
            .map(|d| String::from_utf8_lossy(d).into_owned())
    }
    pub fn gre_key(&self) -> Option<u32> {
        let e = self.exts.iter().find(|e| e.1 == ext::GRE_KEY)?;
        assert_eq!(e.2, Some(0), "GRE key sub-type");
        assert_eq!(e.3.len(), 4, "GRE key length");
        Some(u32::from_be_bytes(e.3[..4].try_into().unwrap()))
    }
    /// Checks the authentication extension of `kind`: last, SPI, HMAC-MD5.
    pub fn assert_auth(&self, kind: u8, sa: &Sa) {
        self.assert_auth_with(kind, sa, Alg::HmacMd5);
    }

    /// Checks the MN-HA extension of a per-MN message (RFC 3344 §3.5.2):
    /// exactly one, HMAC-MD5 with the mobile node's key over everything
    /// before its authenticator, and only the FA-HA extension after it.
    pub fn assert_mn_ha(&self, sa: &Sa) {
        let at: Vec<usize> = (0..self.exts.len())
            .filter(|&i| self.exts[i].1 == ext::MN_HA_AUTH)
            .collect();
        assert_eq!(
            at.len(),
            1,
            "exactly one MN-HA extension: {:?}",
            self.types()
        );
        let i = at[0];
        // After it the FA's: its GRE Key (RFC 6245 §4.1: "after the MN-HA
        // ... and before the FA-HA"), Revocation Support (RFC 3543 §3.2),
        // then its FA-HA extension, last.
        let after = &self.types()[i + 1..];
        assert_eq!(
            after.last(),
            Some(&ext::FA_HA_AUTH),
            "the FA-HA extension last, after the MN-HA one: {:?}",
            self.types()
        );
        assert!(
            after[..after.len() - 1]
                .iter()
                .all(|t| [ext::GRE_KEY, ext::REVOCATION_SUPPORT].contains(t)),
            "only the FA's extensions between the MN-HA and FA-HA ones: {:?}",
            self.types()
        );
        assert!(
            !self.types()[..i].contains(&ext::GRE_KEY),
            "a GRE Key before the MN-HA extension (RFC 6245 §4.1: after it): {:?}",
            self.types()
        );
        self.assert_authenticator(i, sa, Alg::HmacMd5);
    }

    /// As `assert_auth`, with the authenticator of `alg`.
    pub fn assert_auth_with(&self, kind: u8, sa: &Sa, alg: Alg) {
        let last = self.exts.last().expect("no extensions: no authentication");
        assert_eq!(
            last.1, kind,
            "the authentication extension must be last (RFC 3344 §3.5.2)"
        );
        self.assert_authenticator(self.exts.len() - 1, sa, alg);
    }

    /// Extension `i` is an authentication extension of `sa`: its SPI, and
    /// the `alg` authenticator over everything before it (RFC 3344 §3.5.1).
    fn assert_authenticator(&self, i: usize, sa: &Sa, alg: Alg) {
        let (off, ty, _, data) = &self.exts[i];
        assert_eq!(data.len(), 20, "SPI + 16-octet authenticator (type {ty})");
        let spi = u32::from_be_bytes(data[..4].try_into().unwrap());
        assert_eq!(spi, sa.spi, "SPI of extension type {ty}");
        assert_eq!(
            &data[4..],
            &alg.authenticator(&sa.key, &self.bytes, *off),
            "{alg:?} authenticator of extension type {ty}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2104 test case 2 (HMAC-MD5 "Jefe").
    #[test]
    fn hmac_md5_known_answer() {
        let a = hmac_md5(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            a,
            [
                0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03, 0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d,
                0xb7, 0x38
            ]
        );
    }

    #[test]
    fn rrq_layout() {
        let sa = Sa {
            spi: 256,
            key: vec![0x11; 16],
        };
        let mut b = rrq(
            F_G | F_T,
            60,
            [0; 4],
            [1, 2, 3, 4],
            [5, 6, 7, 8],
            9,
            &[nai("x"), gre_key(3)],
        );
        sign(&mut b, ext::FA_HA_AUTH, &sa);
        let m = Msg::parse(&b);
        assert_eq!(m.types(), vec![ext::NAI, ext::GRE_KEY, ext::FA_HA_AUTH]);
        assert_eq!(m.gre_key(), Some(3));
        assert_eq!(m.ident(), 9);
        m.assert_auth(ext::FA_HA_AUTH, &sa);
    }
}
