//! The compact form of an anchor's binding record (record version 2, issue
//! 17): fixed-width fields in network byte order instead of JSON, about a
//! fifth of the bytes. One put per binding is what every etcd member
//! receives, logs, replicates and applies, so its size is paid three times
//! — in memory and backend space (a third of the backend, two thirds of
//! the resident memory per binding); in CPU per put the difference was
//! within the noise (BENCHMARKS.md "CPU per binding"). Every build from
//! this one reads it (`record::decode`); the stores do not write it yet.
//!
//! ```text
//!  0      tag 0xB2 (binary, version 2; a JSON record starts with '{')
//!  1      flags: 0x01 PMIPv4, 0x02 peer is IPv6, 0x04 home_v4, 0x08 from_pool,
//!                0x10 hnp, 0x20 att, 0x40 revocable (0x80: refused)
//!  2..4   peer_port       4..8   sub_id        8..12  uplink_key
//!  12..16 downlink_key    16..20 lifetime_s    20..28 expires_ms
//!  28..36 last_ident      36..38 last_seq      38     home_v4_len
//!  39..   peer (4 or 16), [home_v4 (4)], [hnp prefix (16), len (1)], [att (1)],
//!         nai (u16 length, UTF-8), llid (u16 length, bytes); nothing after
//! ```
//! Every length is checked before it is read: a truncated, oversized or
//! corrupt value is refused with a reason, never a panic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::record::{AnchorRecord, HnpRecord, Proto};

/// First byte of a compact anchor record.
pub const TAG: u8 = 0xB2;

mod field {
    pub const PEER_PORT: usize = 2;
    pub const SUB_ID: usize = 4;
    pub const EXPIRES: usize = 20;
    pub const HOME_V4_LEN: usize = 38;
    /// Where the variable part starts.
    pub const VAR: usize = 39;
}

mod flag {
    pub const PMIPV4: u8 = 0x01;
    pub const PEER_V6: u8 = 0x02;
    pub const HOME_V4: u8 = 0x04;
    pub const FROM_POOL: u8 = 0x08;
    pub const HNP: u8 = 0x10;
    pub const ATT: u8 = 0x20;
    pub const REVOCABLE: u8 = 0x40;
    pub const KNOWN: u8 = 0x7f;
}

/// Bytes the compact form of `r` takes.
pub fn buffer_len(r: &AnchorRecord) -> usize {
    field::VAR
        + if r.peer.is_ipv6() { 16 } else { 4 }
        + r.home_v4.map_or(0, |_| 4)
        + r.hnp.map_or(0, |_| 17)
        + r.att.map_or(0, |_| 1)
        + 2
        + r.nai.len()
        + 2
        + r.llid.len()
}

fn flags_of(r: &AnchorRecord) -> u8 {
    let mut f = 0;
    let mut set = |on: bool, bit: u8| {
        if on {
            f |= bit;
        }
    };
    set(r.proto == Proto::Pmipv4, flag::PMIPV4);
    set(r.peer.is_ipv6(), flag::PEER_V6);
    set(r.home_v4.is_some(), flag::HOME_V4);
    set(r.from_pool, flag::FROM_POOL);
    set(r.hnp.is_some(), flag::HNP);
    set(r.att.is_some(), flag::ATT);
    set(r.revocable, flag::REVOCABLE);
    f
}

/// Appends `b` with a u16 length; None when it is longer than that allows.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(b.len()).ok()?.to_be_bytes());
    out.extend_from_slice(b);
    Some(())
}

/// The compact form of `r`; None when a field does not fit it (a NAI or
/// link-layer id over 65 535 bytes, which no registration carries: the
/// caller writes JSON then).
pub fn emit(r: &AnchorRecord) -> Option<Vec<u8>> {
    // A revocation in progress has no place in the compact form (the
    // caller writes JSON then); it lasts seconds.
    if r.revoking.is_some() || !r.ha_revocations.is_empty() || r.released {
        return None;
    }
    let mut out = Vec::with_capacity(buffer_len(r));
    out.push(TAG);
    out.push(flags_of(r));
    out.extend_from_slice(&r.peer_port.to_be_bytes());
    for v in [r.sub_id, r.uplink_key, r.downlink_key, r.lifetime_s] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&r.expires_ms.to_be_bytes());
    out.extend_from_slice(&r.last_ident.to_be_bytes());
    out.extend_from_slice(&r.last_seq.to_be_bytes());
    out.push(r.home_v4_len);
    match r.peer {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    if let Some(h) = r.home_v4 {
        out.extend_from_slice(&h.octets());
    }
    if let Some(h) = r.hnp {
        out.extend_from_slice(&h.prefix.octets());
        out.push(h.len);
    }
    if let Some(a) = r.att {
        out.push(a);
    }
    put_bytes(&mut out, r.nai.as_bytes())?;
    put_bytes(&mut out, &r.llid)?;
    debug_assert_eq!(out.len(), buffer_len(r));
    Some(out)
}

/// A bounds-checked reader over the variable part.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| {
            format!(
                "compact record truncated: {} bytes, {} more wanted at {}",
                self.b.len(),
                n,
                self.at
            )
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn sized(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Reads a compact anchor record (the bytes start with [`TAG`]).
pub fn parse(b: &[u8]) -> Result<AnchorRecord, String> {
    let mut r = Reader { b, at: 0 };
    let tag = r.u8()?;
    if tag != TAG {
        return Err(format!("compact record: tag {tag:#04x}, not {TAG:#04x}"));
    }
    let f = r.u8()?;
    if f & !flag::KNOWN != 0 {
        return Err(format!("compact record: unknown flags {f:#04x}"));
    }
    debug_assert_eq!(r.at, field::PEER_PORT);
    let peer_port = r.u16()?;
    debug_assert_eq!(r.at, field::SUB_ID);
    let (sub_id, uplink_key, downlink_key, lifetime_s) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    debug_assert_eq!(r.at, field::EXPIRES);
    let (expires_ms, last_ident) = (r.u64()?, r.u64()?);
    let last_seq = r.u16()?;
    debug_assert_eq!(r.at, field::HOME_V4_LEN);
    let home_v4_len = r.u8()?;
    let has = |bit: u8| f & bit != 0;
    let peer = if has(flag::PEER_V6) {
        IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
    };
    let home_v4 = match has(flag::HOME_V4) {
        true => Some(Ipv4Addr::from(r.array::<4>()?)),
        false => None,
    };
    let hnp = match has(flag::HNP) {
        true => Some(HnpRecord {
            prefix: Ipv6Addr::from(r.array::<16>()?),
            len: r.u8()?,
        }),
        false => None,
    };
    let att = match has(flag::ATT) {
        true => Some(r.u8()?),
        false => None,
    };
    let nai = std::str::from_utf8(r.sized()?)
        .map_err(|e| format!("compact record: NAI not UTF-8: {e}"))?
        .to_string();
    let llid = r.sized()?.to_vec();
    if r.at != b.len() {
        return Err(format!(
            "compact record: {} bytes after its end",
            b.len() - r.at
        ));
    }
    Ok(AnchorRecord {
        proto: if has(flag::PMIPV4) {
            Proto::Pmipv4
        } else {
            Proto::Pmipv6
        },
        nai,
        llid,
        peer,
        peer_port,
        sub_id,
        uplink_key,
        downlink_key,
        home_v4,
        home_v4_len,
        from_pool: has(flag::FROM_POOL),
        hnp,
        att,
        lifetime_s,
        expires_ms,
        last_ident,
        revocable: has(flag::REVOCABLE),
        last_seq,
        revoking: None,
        ha_revocations: Vec::new(),
        released: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{decode, encode, encode_compact, Record};

    fn v4() -> AnchorRecord {
        AnchorRecord {
            proto: Proto::Pmipv6,
            nai: "d0-1234@cluster.example".into(),
            llid: vec![0x02, 0x40, 0, 0, 0x04, 0xd2],
            peer: "10.255.0.21".parse().unwrap(),
            peer_port: 5436,
            sub_id: 70_000,
            uplink_key: 70_000,
            downlink_key: 0x8000_0001,
            home_v4: Some("10.64.3.7".parse().unwrap()),
            home_v4_len: 16,
            from_pool: false,
            hnp: None,
            att: Some(4),
            lifetime_s: 3600,
            expires_ms: 1_800_000_000_123,
            last_ident: 0x1234_5678_9abc_def0,
            revocable: false,
            last_seq: 65_535,
            revoking: None,
            ha_revocations: Vec::new(),
            released: false,
        }
    }

    fn v6() -> AnchorRecord {
        AnchorRecord {
            proto: Proto::Pmipv4,
            nai: "sub@example.com".into(),
            llid: vec![],
            peer: "2001:db8::1".parse().unwrap(),
            home_v4: None,
            home_v4_len: 0,
            from_pool: true,
            hnp: Some(HnpRecord {
                prefix: "2001:db8:1:2::".parse().unwrap(),
                len: 64,
            }),
            att: None,
            revocable: true,
            ..v4()
        }
    }

    #[test]
    fn anchor_records_round_trip_in_their_compact_form() {
        for r in [v4(), v6()] {
            let b = emit(&r).unwrap();
            assert_eq!(b[0], TAG);
            assert_eq!(b.len(), buffer_len(&r));
            assert_eq!(parse(&b), Ok(r.clone()));
            // The record's compact form, and what the stores read back.
            let stored = encode_compact(&Record::Anchor(r.clone()));
            assert_eq!(stored, b);
            assert_eq!(decode(&stored), Ok(Record::Anchor(r)));
        }
        // The bench's record: 81 bytes compact against 350+ of JSON.
        let r = v4();
        let json = encode(&Record::Anchor(r.clone()));
        assert_eq!(emit(&r).unwrap().len(), 81);
        assert!(json.len() > 4 * 81, "{}", json.len());
    }

    #[test]
    fn the_fixed_fields_sit_where_the_layout_says() {
        let b = emit(&v4()).unwrap();
        assert_eq!(
            &b[..field::VAR],
            &[
                0xB2, 0x24, 0x15, 0x3c, // tag, flags (home_v4, att), port 5436
                0, 1, 0x11, 0x70, 0, 1, 0x11, 0x70, 0x80, 0, 0, 1, 0, 0, 0x0e,
                0x10, // ids, keys, lifetime
                0, 0, 0x01, 0xa3, 0x18, 0x5c, 0x50, 0x7b, // expires_ms
                0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0xff, 0xff,
                16, // ident, seq, len
            ][..]
        );
        assert_eq!(
            &b[field::VAR..field::VAR + 8],
            &[10, 255, 0, 21, 10, 64, 3, 7]
        );
    }

    /// Records of the current JSON form (version 1) are still read, and
    /// the other record kinds stay JSON.
    #[test]
    fn json_records_of_earlier_builds_still_load() {
        let r = v4();
        let old = encode(&Record::Anchor(r.clone()));
        assert!(old.starts_with(br#"{"v":1,"kind":"anchor""#));
        assert_eq!(decode(&old), Ok(Record::Anchor(r)));
        let node = Record::Node(crate::store::NodeRecord { restart_counter: 3 });
        assert_eq!(encode_compact(&node), encode(&node));
    }

    #[test]
    fn truncated_oversized_and_corrupt_values_are_refused() {
        for r in [v4(), v6()] {
            let b = emit(&r).unwrap();
            for cut in 0..b.len() {
                assert!(parse(&b[..cut]).is_err(), "cut at {cut}");
                if cut > 0 {
                    assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
                }
            }
            let mut long = b.clone();
            long.push(0);
            assert!(parse(&long).unwrap_err().contains("after its end"));
            let mut flags = b.clone();
            flags[1] |= 0x80;
            assert!(parse(&flags).unwrap_err().contains("unknown flags"));
            // A length that runs past the end.
            let mut len = b.clone();
            let at = len.len() - r.llid.len() - 2;
            len[at] = 0xff;
            assert!(parse(&len).unwrap_err().contains("truncated"));
        }
        // A NAI that is not UTF-8.
        let mut b = emit(&v6()).unwrap();
        let nai_at = b.len() - 2 - "sub@example.com".len();
        b[nai_at] = 0xff;
        assert!(parse(&b).unwrap_err().contains("UTF-8"));
        assert!(parse(&[0x7b]).is_err());
    }

    #[test]
    fn a_field_too_long_for_the_compact_form_is_written_as_json() {
        let r = AnchorRecord {
            llid: vec![0; 70_000],
            ..v4()
        };
        assert_eq!(emit(&r), None);
        let stored = encode_compact(&Record::Anchor(r.clone()));
        assert_eq!(stored[0], b'{');
        assert_eq!(decode(&stored), Ok(Record::Anchor(r)));
    }

    /// A revocation in progress is kept through a restart: written as
    /// JSON (the compact form has no room for it) and read back whole; a
    /// record without one has no `revoking` key at all.
    #[test]
    fn a_revocation_in_progress_is_written_as_json_and_read_back() {
        let r = AnchorRecord {
            revoking: Some(1),
            ..v6()
        };
        assert_eq!(emit(&r), None);
        let stored = encode_compact(&Record::Anchor(r.clone()));
        assert_eq!(stored[0], b'{');
        assert_eq!(decode(&stored), Ok(Record::Anchor(r)));
        let plain = encode(&Record::Anchor(v6()));
        assert!(!String::from_utf8_lossy(&plain).contains("revoking"));
    }

    /// The HA's revocations in progress (RFC 3543), and a released
    /// binding's record that carries them alone: JSON, read back whole; a
    /// record without them names neither field.
    #[test]
    fn ha_revocations_in_progress_are_written_as_json_and_read_back() {
        let pma = std::net::Ipv4Addr::new(192, 0, 2, 7);
        for released in [false, true] {
            let r = AnchorRecord {
                ha_revocations: vec![(pma, 1_700_000_000_000)],
                released,
                ..v4()
            };
            assert_eq!(emit(&r), None);
            let stored = encode_compact(&Record::Anchor(r.clone()));
            assert_eq!(stored[0], b'{');
            assert_eq!(decode(&stored), Ok(Record::Anchor(r)));
        }
        let plain = String::from_utf8_lossy(&encode(&Record::Anchor(v4()))).into_owned();
        assert!(
            !plain.contains("ha_revocations") && !plain.contains("released"),
            "{plain}"
        );
    }
}
