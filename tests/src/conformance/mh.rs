//! Mobility Header bytes written by hand from the RFC figures, for the
//! conformance tests: the test is the other side, so nothing here comes from
//! pmip-user's codecs.
//!
//! RFC 6275 §6.1 (header), §6.2 (options, Pad1/PadN, alignment `xn+y` counted
//! from the start of the Mobility Header), RFC 5213 §8 (PBU/PBA and options),
//! RFC 5844 §3 (IPv4 options), RFC 5845 §6.1 (GRE key), RFC 5846 §6 (BRI/BRA),
//! RFC 5847 §5 (Heartbeat, Restart Counter).

/// MH types (IANA).
pub const BU: u8 = 5;
pub const BA: u8 = 6;
pub const BE: u8 = 7;
pub const HEARTBEAT: u8 = 13;
pub const BR: u8 = 16;

/// Option types (IANA "Mobility Options").
pub mod opt {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const MN_ID: u8 = 8;
    pub const HNP: u8 = 22;
    pub const HI: u8 = 23;
    pub const ATT: u8 = 24;
    pub const LLID: u8 = 25;
    pub const LLA: u8 = 26;
    pub const TIMESTAMP: u8 = 27;
    pub const RESTART_COUNTER: u8 = 28;
    pub const V4_COA: u8 = 32;
    pub const GRE_KEY: u8 = 33;
    pub const V4_HOA_REQ: u8 = 36;
    pub const V4_HOA_REP: u8 = 37;
    pub const V4_DEFAULT_ROUTER: u8 = 38;
    pub const V4_DHCP_MODE: u8 = 39;
}

/// BU flags (RFC 6275 §6.1.7, RFC 5213 §8.1): A and P.
pub const BU_A: u16 = 0x8000;
pub const BU_P: u16 = 0x0200;
/// Forced IPv4-UDP encapsulation (RFC 5555 §3.1.3, RFC 5844 §4).
pub const BU_F: u16 = 0x0100;
/// BA flags octet (RFC 5213 §8.2): P.
pub const BA_P: u8 = 0x20;
/// BRI and BRA flags (RFC 5846 §6.1, §6.2): P, V, G in both.
pub const BRI_P: u16 = 0x8000;
pub const BRI_G: u16 = 0x2000;

/// One option: type, data and its alignment `(x, y)`.
#[derive(Clone, Debug)]
pub struct Opt {
    pub kind: u8,
    pub data: Vec<u8>,
    pub align: (usize, usize),
}

fn o(kind: u8, data: Vec<u8>, align: (usize, usize)) -> Opt {
    Opt { kind, data, align }
}

/// RFC 4283 §3: subtype 1 = NAI; no alignment requirement.
pub fn mn_id(nai: &str) -> Opt {
    let mut d = vec![1];
    d.extend_from_slice(nai.as_bytes());
    o(opt::MN_ID, d, (1, 0))
}
/// RFC 5213 §8.3: Reserved, Prefix Length, prefix; 8n+4.
pub fn hnp(plen: u8, prefix: [u8; 16]) -> Opt {
    let mut d = vec![0, plen];
    d.extend_from_slice(&prefix);
    o(opt::HNP, d, (8, 4))
}
/// RFC 5213 §8.4: Reserved, HI.
pub fn hi(v: u8) -> Opt {
    o(opt::HI, vec![0, v], (1, 0))
}
/// RFC 5213 §8.5: Reserved, ATT.
pub fn att(v: u8) -> Opt {
    o(opt::ATT, vec![0, v], (1, 0))
}
/// RFC 5213 §8.6: Reserved (16 bits), link-layer identifier; 8n+2.
pub fn llid(mac: [u8; 6]) -> Opt {
    let mut d = vec![0, 0];
    d.extend_from_slice(&mac);
    o(opt::LLID, d, (8, 2))
}
/// RFC 5213 §8.8: 64-bit timestamp; 8n+2.
pub fn timestamp(ts: u64) -> Opt {
    o(opt::TIMESTAMP, ts.to_be_bytes().to_vec(), (8, 2))
}
/// RFC 5213 §8.7: Link-local Address, 16 octets; 8n+6.
pub fn lla(a: [u8; 16]) -> Opt {
    o(opt::LLA, a.to_vec(), (8, 6))
}
/// RFC 5847 §5.2: 32-bit counter; 4n+2.
pub fn restart_counter(c: u32) -> Opt {
    o(opt::RESTART_COUNTER, c.to_be_bytes().to_vec(), (4, 2))
}
/// RFC 5845 §6.1: Reserved (16 bits), GRE Key Identifier; 4n.
pub fn gre_key(k: u32) -> Opt {
    let mut d = vec![0, 0];
    d.extend_from_slice(&k.to_be_bytes());
    o(opt::GRE_KEY, d, (4, 0))
}
/// RFC 5844 §3.1.1: Prefix-len (6 bits) + Reserved, Reserved, IPv4 home address; 4n.
pub fn v4_hoa_req(plen: u8, a: [u8; 4]) -> Opt {
    let mut d = vec![plen << 2, 0];
    d.extend_from_slice(&a);
    o(opt::V4_HOA_REQ, d, (4, 0))
}
/// RFC 5844 §3.1.2: Status, Prefix-len (6 bits) + Reserved, address; 4n.
pub fn v4_hoa_reply(status: u8, plen: u8, a: [u8; 4]) -> Opt {
    let mut d = vec![status, plen << 2];
    d.extend_from_slice(&a);
    o(opt::V4_HOA_REP, d, (4, 0))
}
/// RFC 5844 §3.1.3: Reserved (16 bits), default router address; 4n.
pub fn v4_default_router(a: [u8; 4]) -> Opt {
    let mut d = vec![0, 0];
    d.extend_from_slice(&a);
    o(opt::V4_DEFAULT_ROUTER, d, (4, 0))
}
/// Any option, unaligned (for unknown types).
pub fn raw(kind: u8, data: &[u8]) -> Opt {
    o(kind, data.to_vec(), (1, 0))
}

fn pad(buf: &mut Vec<u8>, n: usize) {
    match n {
        0 => {}
        1 => buf.push(opt::PAD1),
        n => {
            buf.push(opt::PADN);
            buf.push((n - 2) as u8);
            buf.extend(std::iter::repeat_n(0, n - 2));
        }
    }
}

/// A whole Mobility Header: Payload Proto 59, Header Len, MH type, Reserved,
/// Checksum 0 (the raw IPv6 socket's kernel fills it; over UDP it stays 0,
/// RFC 5844 §4), the six-octet fixed part, then the options on their
/// alignment, padded to a multiple of 8 octets.
pub fn build(mh_type: u8, fixed: [u8; 6], opts: &[Opt]) -> Vec<u8> {
    let mut b = vec![59, 0, mh_type, 0, 0, 0];
    b.extend_from_slice(&fixed);
    for op in opts {
        let (x, y) = op.align;
        let n = (y + x - b.len() % x) % x;
        pad(&mut b, n);
        b.push(op.kind);
        b.push(op.data.len() as u8);
        b.extend_from_slice(&op.data);
    }
    let n = (8 - b.len() % 8) % 8;
    pad(&mut b, n);
    b[1] = (b.len() / 8 - 1) as u8;
    b
}

/// Proxy Binding Update (RFC 5213 §8.1): Sequence, flags, Lifetime (4 s units).
pub fn pbu(seq: u16, flags: u16, lifetime: u16, opts: &[Opt]) -> Vec<u8> {
    let mut f = [0u8; 6];
    f[0..2].copy_from_slice(&seq.to_be_bytes());
    f[2..4].copy_from_slice(&flags.to_be_bytes());
    f[4..6].copy_from_slice(&lifetime.to_be_bytes());
    build(BU, f, opts)
}
/// Proxy Binding Acknowledgement (RFC 5213 §8.2): Status, flags, Sequence, Lifetime.
pub fn pba(status: u8, flags: u8, seq: u16, lifetime: u16, opts: &[Opt]) -> Vec<u8> {
    let mut f = [status, flags, 0, 0, 0, 0];
    f[2..4].copy_from_slice(&seq.to_be_bytes());
    f[4..6].copy_from_slice(&lifetime.to_be_bytes());
    build(BA, f, opts)
}
/// Heartbeat (RFC 5847 §5.1): Reserved (14 bits) U R, Sequence Number (32).
pub fn heartbeat(response: bool, seq: u32, opts: &[Opt]) -> Vec<u8> {
    let mut f = [0, u8::from(response), 0, 0, 0, 0];
    f[2..6].copy_from_slice(&seq.to_be_bytes());
    build(HEARTBEAT, f, opts)
}
/// Binding Error (RFC 6275 §6.1.9): MH type 7, Status, Reserved, Home
/// Address (unspecified here) — an 18-octet fixed part, 24 octets in all.
pub fn binding_error(status: u8) -> Vec<u8> {
    let mut b = vec![59, 2, 7, 0, 0, 0, status, 0];
    b.extend_from_slice(&[0; 16]);
    b
}
/// Binding Revocation Indication (RFC 5846 §6.1): B.R. Type 1, trigger, sequence, flags.
pub fn bri(trigger: u8, seq: u16, flags: u16, opts: &[Opt]) -> Vec<u8> {
    let mut f = [1, trigger, 0, 0, 0, 0];
    f[2..4].copy_from_slice(&seq.to_be_bytes());
    f[4..6].copy_from_slice(&flags.to_be_bytes());
    build(BR, f, opts)
}
/// Binding Revocation Acknowledgement (RFC 5846 §6.2): B.R. Type 2, status, sequence, flags.
pub fn bra(status: u8, seq: u16, flags: u16, opts: &[Opt]) -> Vec<u8> {
    let mut f = [2, status, 0, 0, 0, 0];
    f[2..4].copy_from_slice(&seq.to_be_bytes());
    f[4..6].copy_from_slice(&flags.to_be_bytes());
    build(BR, f, opts)
}

/// A received Mobility Header, split by hand.
#[derive(Clone, Debug)]
pub struct Mh {
    pub payload_proto: u8,
    pub header_len: u8,
    pub mh_type: u8,
    pub checksum: u16,
    /// The six octets after the checksum.
    pub fixed: [u8; 6],
    /// (offset from the start of the header, type, data), padding skipped.
    pub opts: Vec<(usize, u8, Vec<u8>)>,
    pub total_len: usize,
}

impl Mh {
    /// Splits `b`; panics (the test fails) on anything malformed.
    pub fn parse(b: &[u8]) -> Mh {
        assert!(b.len() >= 12, "mobility header too short: {b:02x?}");
        let total = (usize::from(b[1]) + 1) * 8;
        assert_eq!(total, b.len(), "Header Len vs datagram: {b:02x?}");
        let mut fixed = [0u8; 6];
        fixed.copy_from_slice(&b[6..12]);
        let start = if b[2] == BE { 24 } else { 12 };
        let mut opts = Vec::new();
        let mut i = start;
        while i < total {
            match b[i] {
                opt::PAD1 => i += 1,
                kind => {
                    assert!(i + 2 <= total, "option header overruns at {i}: {b:02x?}");
                    let len = usize::from(b[i + 1]);
                    assert!(i + 2 + len <= total, "option {kind} overruns: {b:02x?}");
                    if kind == opt::PADN {
                        assert!(
                            b[i + 2..i + 2 + len].iter().all(|x| *x == 0),
                            "PadN not zero"
                        );
                    } else {
                        opts.push((i, kind, b[i + 2..i + 2 + len].to_vec()));
                    }
                    i += 2 + len;
                }
            }
        }
        Mh {
            payload_proto: b[0],
            header_len: b[1],
            mh_type: b[2],
            checksum: u16::from_be_bytes([b[4], b[5]]),
            fixed,
            opts,
            total_len: total,
        }
    }
    pub fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.fixed[i], self.fixed[i + 1]])
    }
    /// Data of the first option of `kind`.
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.opts
            .iter()
            .find(|o| o.1 == kind)
            .map(|o| o.2.as_slice())
    }
    pub fn count(&self, kind: u8) -> usize {
        self.opts.iter().filter(|o| o.1 == kind).count()
    }
    pub fn offset(&self, kind: u8) -> Option<usize> {
        self.opts.iter().find(|o| o.1 == kind).map(|o| o.0)
    }
    /// Asserts that option `kind`, if present, sits at `x*n + y`.
    pub fn assert_aligned(&self, kind: u8, x: usize, y: usize) {
        if let Some(off) = self.offset(kind) {
            assert_eq!(off % x, y, "option {kind} at offset {off}, wants {x}n+{y}");
        }
    }
    /// Every alignment rule of the options we know (RFC 6275 §6.2, RFC 5213 §8,
    /// RFC 5844 §3, RFC 5845 §6.1, RFC 5847 §5.2).
    pub fn assert_all_aligned(&self) {
        self.assert_aligned(opt::HNP, 8, 4);
        self.assert_aligned(opt::LLID, 8, 2);
        self.assert_aligned(opt::TIMESTAMP, 8, 2);
        self.assert_aligned(opt::RESTART_COUNTER, 4, 2);
        for k in [
            opt::GRE_KEY,
            opt::V4_HOA_REQ,
            opt::V4_HOA_REP,
            opt::V4_DEFAULT_ROUTER,
        ] {
            self.assert_aligned(k, 4, 0);
        }
        assert_eq!(self.total_len % 8, 0);
        assert_eq!(
            self.payload_proto, 59,
            "Payload Proto must be 59 (RFC 6275 §6.1.1)"
        );
    }
    /// The NAI of the MN Identifier option (subtype 1).
    pub fn nai(&self) -> Option<String> {
        let d = self.get(opt::MN_ID)?;
        assert_eq!(d[0], 1, "MN-ID subtype must be 1 (NAI)");
        Some(String::from_utf8_lossy(&d[1..]).into_owned())
    }
    pub fn timestamp(&self) -> Option<u64> {
        let d = self.get(opt::TIMESTAMP)?;
        Some(u64::from_be_bytes(
            d.try_into().expect("timestamp length 8"),
        ))
    }
    pub fn gre_key(&self) -> Option<u32> {
        let d = self.get(opt::GRE_KEY)?;
        assert_eq!(d.len(), 6, "GRE key option length");
        assert_eq!(&d[..2], &[0, 0], "GRE key reserved");
        Some(u32::from_be_bytes([d[2], d[3], d[4], d[5]]))
    }
    /// (status, prefix length, address) of the IPv4 Home Address Reply.
    pub fn v4_hoa_reply(&self) -> Option<(u8, u8, [u8; 4])> {
        let d = self.get(opt::V4_HOA_REP)?;
        assert_eq!(d.len(), 6, "IPv4 HoA reply length");
        Some((d[0], d[1] >> 2, [d[2], d[3], d[4], d[5]]))
    }
    /// (prefix length, address) of the IPv4 Home Address Request.
    pub fn v4_hoa_req(&self) -> Option<(u8, [u8; 4])> {
        let d = self.get(opt::V4_HOA_REQ)?;
        assert_eq!(d.len(), 6, "IPv4 HoA request length");
        Some((d[0] >> 2, [d[2], d[3], d[4], d[5]]))
    }
    pub fn v4_default_router(&self) -> Option<[u8; 4]> {
        let d = self.get(opt::V4_DEFAULT_ROUTER)?;
        assert_eq!(d.len(), 6, "IPv4 default router length");
        Some([d[2], d[3], d[4], d[5]])
    }
}

/// RFC 5213 §8.8 timestamp of the current wall clock: 48-bit seconds since
/// 1970 and a 16-bit fraction.
pub fn now_timestamp() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() << 16) | ((u64::from(d.subsec_nanos()) << 16) / 1_000_000_000)
}

/// |a - b| of two timestamps, in seconds.
pub fn ts_diff_secs(a: u64, b: u64) -> f64 {
    a.abs_diff(b) as f64 / 65536.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder against the RFC 5213 §8 figures: alignment and length.
    #[test]
    fn pbu_layout_matches_the_figures() {
        let b = pbu(
            7,
            BU_A | BU_P,
            10,
            &[mn_id("a@b"), gre_key(5), timestamp(1), hnp(64, [0; 16])],
        );
        assert_eq!(
            &b[..12],
            &[
                59,
                (b.len() / 8 - 1) as u8,
                5,
                0,
                0,
                0,
                0,
                7,
                0x82,
                0,
                0,
                10
            ]
        );
        let m = Mh::parse(&b);
        m.assert_all_aligned();
        assert_eq!(m.offset(opt::MN_ID), Some(12));
        assert_eq!(m.offset(opt::GRE_KEY), Some(20));
        assert_eq!(m.offset(opt::TIMESTAMP), Some(34));
        assert_eq!(m.offset(opt::HNP), Some(44));
        assert_eq!(m.gre_key(), Some(5));
        assert_eq!(m.nai().as_deref(), Some("a@b"));
    }
}
