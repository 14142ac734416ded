//! Whole IPv6 frames on the access link: Ethernet (with at most one 802.1Q
//! tag), the fixed IPv6 header (RFC 8200 §3) and the two upper layers the
//! access side answers itself, ICMPv6 (Neighbor Discovery) and UDP (DHCPv6).
//!
//! smoltcp-style view [`Ipv6Packet`] (checked once, then no accessor panics),
//! plus [`parse_frame`] / [`emit_frame`] that also verify and fill the
//! upper-layer checksum over the IPv6 pseudo-header (RFC 8200 §8.1).
use std::fmt;
use std::net::Ipv6Addr;

use crate::checksum;

pub(crate) const ETHERTYPE_IPV6: u16 = 0x86DD;
pub(crate) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;
pub(crate) const IPV6_HEADER_LEN: usize = 40;
/// The smallest link MTU IPv6 runs on (RFC 8200 §5).
pub(crate) const IPV6_MIN_MTU: u32 = 1280;

/// All-nodes (RFC 4291 §2.7.1).
pub(crate) const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers, where Router Solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1), where a client's DHCPv6 goes.
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its headers or lengths say.
    Truncated,
    /// A field has a value the protocol forbids.
    Malformed,
    /// The upper-layer checksum does not verify.
    BadChecksum,
    /// Well formed, but nothing the access side handles (another
    /// ethertype, an extension header, another upper layer).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad checksum",
            Error::Unsupported => "unsupported packet",
        })
    }
}
impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// The fixed IPv6 header and its payload.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Needs the 40-byte header, version 6, and the payload length it states.
    pub(crate) fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < IPV6_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < IPV6_HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub(crate) fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub(crate) fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    fn addr(&self, r: core::ops::Range<usize>) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[r]);
        Ipv6Addr::from(a)
    }
    pub fn src(&self) -> Ipv6Addr {
        self.addr(field::SRC)
    }
    pub fn dst(&self) -> Ipv6Addr {
        self.addr(field::DST)
    }
    /// The payload as long as the header says (Ethernet padding cut off).
    pub fn payload(&self) -> &[u8] {
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[IPV6_HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Version 6, traffic class and flow label 0.
    pub(crate) fn set_version(&mut self) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    }
    pub(crate) fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }
    pub(crate) fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    pub(crate) fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }
    pub(crate) fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[IPV6_HEADER_LEN..]
    }
}

/// An Ethernet header, with an 802.1Q tag when `vlan` is not 0.
fn ethernet_header(dst: [u8; 6], src: [u8; 6], vlan: u16, ethertype: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(18 + IPV6_HEADER_LEN);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    if vlan != 0 {
        v.extend_from_slice(&0x8100u16.to_be_bytes());
        v.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v
}

/// A UDP datagram with its checksum left 0 (the caller fills it).
fn udp_datagram(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&src_port.to_be_bytes());
    v.extend_from_slice(&dst_port.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// The upper-layer checksum of `data` (checksum field zeroed, or in place to
/// verify: then a correct packet gives 0), RFC 8200 §8.1.
pub(crate) fn upper_layer_checksum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, data: &[u8]) -> u16 {
    checksum::finish(checksum::add(
        checksum::pseudo_v6(&src, &dst, data.len() as u32, next),
        data,
    ))
}

/// Ethernet multicast address of an IPv6 multicast group (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Solicited-node multicast address of `addr` (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// Link-local address with the modified EUI-64 interface identifier of `mac`
/// (RFC 4291 appendix A): what a MAG derives from the configured shared MAC.
pub fn link_local_from_mac(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

pub(crate) fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `addr` lies in `prefix`/`len`.
pub(crate) fn in_prefix(addr: &Ipv6Addr, prefix: &Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    u128::from(*addr) & mask == u128::from(*prefix) & mask
}

/// The upper layer of a frame the access side handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper<'a> {
    /// A whole ICMPv6 message (checksum verified).
    Icmpv6(&'a [u8]),
    /// A UDP datagram (checksum verified, ports and payload).
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
}

/// An Ethernet/IPv6 frame, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame6<'a> {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// 802.1Q VLAN id, 0 = untagged.
    pub vlan: u16,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub upper: Upper<'a>,
}

fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

/// Parses Ethernet (+ one 802.1Q tag) + IPv6 + ICMPv6 or UDP, verifying the
/// upper-layer checksum. Extension headers are [`Error::Unsupported`]: none of
/// the ND or DHCPv6 messages the access side answers carries one.
pub fn parse_frame(frame: &[u8]) -> Result<Frame6<'_>> {
    if frame.len() < 14 {
        return Err(Error::Truncated);
    }
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut at = 14;
    let mut vlan = 0;
    if ethertype == ETHERTYPE_VLAN {
        let tag = frame.get(14..18).ok_or(Error::Truncated)?;
        vlan = u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        at = 18;
    }
    if ethertype != ETHERTYPE_IPV6 {
        return Err(Error::Unsupported);
    }
    let ip = Ipv6Packet::new_checked(&frame[at..])?;
    let (src, dst) = (ip.src(), ip.dst());
    // The same bytes as `ip.payload()`, borrowed from `frame` rather than `ip`.
    let start = at + IPV6_HEADER_LEN;
    let payload = &frame[start..start + usize::from(ip.payload_len())];
    let upper = match ip.next_header() {
        IPPROTO_ICMPV6 => {
            if payload.len() < 4 {
                return Err(Error::Truncated);
            }
            if upper_layer_checksum(src, dst, IPPROTO_ICMPV6, payload) != 0 {
                return Err(Error::BadChecksum);
            }
            Upper::Icmpv6(payload)
        }
        IPPROTO_UDP => parse_udp(src, dst, payload)?,
        _ => return Err(Error::Unsupported),
    };
    Ok(Frame6 {
        dst_mac: mac_at(frame, 0),
        src_mac: mac_at(frame, 6),
        vlan,
        src,
        dst,
        hop_limit: ip.hop_limit(),
        upper,
    })
}

fn parse_udp<'a>(src: Ipv6Addr, dst: Ipv6Addr, p: &'a [u8]) -> Result<Upper<'a>> {
    if p.len() < 8 {
        return Err(Error::Truncated);
    }
    let ulen = usize::from(u16::from_be_bytes([p[4], p[5]]));
    // RFC 8200 §8.1: the UDP length equals the payload here (no jumbograms).
    if ulen < 8 || ulen != p.len() {
        return Err(Error::Malformed);
    }
    // A zero UDP checksum is not allowed over IPv6 (RFC 8200 §8.1).
    if p[6..8] == [0, 0] {
        return Err(Error::Malformed);
    }
    if upper_layer_checksum(src, dst, IPPROTO_UDP, p) != 0 {
        return Err(Error::BadChecksum);
    }
    Ok(Upper::Udp {
        src_port: u16::from_be_bytes([p[0], p[1]]),
        dst_port: u16::from_be_bytes([p[2], p[3]]),
        payload: &p[8..],
    })
}

/// Fills in the upper-layer checksum of an IPv6 frame whose sender left it
/// to offload (what AF_PACKET reports as `TP_STATUS_CSUMNOTREADY` for frames
/// from a local veth peer): the NIC would have written it before the wire.
/// Frames that are not IPv6 with ICMPv6 or UDP are left as they are.
pub fn fill_offloaded_checksum(frame: &mut [u8]) {
    let at = match frame.get(12..14) {
        Some([0x81, 0x00]) => 18,
        Some(_) => 14,
        None => return,
    };
    let Some(Ok(ip)) = frame.get(at..).map(Ipv6Packet::new_checked) else {
        return;
    };
    let (src, dst, next, len) = (ip.src(), ip.dst(), ip.next_header(), ip.payload_len());
    let start = at + IPV6_HEADER_LEN;
    let body = &mut frame[start..start + usize::from(len)];
    let field = match next {
        IPPROTO_ICMPV6 if body.len() >= 4 => 2,
        IPPROTO_UDP if body.len() >= 8 => 6,
        _ => return,
    };
    body[field..field + 2].copy_from_slice(&[0, 0]);
    let mut c = upper_layer_checksum(src, dst, next, body);
    if next == IPPROTO_UDP && c == 0 {
        c = 0xffff;
    }
    body[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

/// Addresses of a frame to send: link layer, VLAN and network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 802.1Q VLAN id, 0 = untagged.
    pub vlan: u16,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

/// Builds a whole frame around an ICMPv6 message or UDP payload and fills the
/// checksum (an ICMPv6 message's own checksum field is overwritten).
pub fn emit_frame(a: &Addrs, upper: Upper<'_>) -> Vec<u8> {
    let (next, body) = match upper {
        Upper::Icmpv6(m) => {
            let mut b = m.to_vec();
            if b.len() >= 4 {
                b[2..4].copy_from_slice(&[0, 0]);
                let c = upper_layer_checksum(a.src, a.dst, IPPROTO_ICMPV6, &b);
                b[2..4].copy_from_slice(&c.to_be_bytes());
            }
            (IPPROTO_ICMPV6, b)
        }
        Upper::Udp {
            src_port,
            dst_port,
            payload,
        } => {
            let mut b = udp_datagram(src_port, dst_port, payload);
            let c = upper_layer_checksum(a.src, a.dst, IPPROTO_UDP, &b);
            // 0 is sent as all ones (RFC 768), as 0 means "none".
            let c = if c == 0 { 0xffff } else { c };
            b[6..8].copy_from_slice(&c.to_be_bytes());
            (IPPROTO_UDP, b)
        }
    };
    let mut f = ethernet_header(a.dst_mac, a.src_mac, a.vlan, ETHERTYPE_IPV6);
    let ip_at = f.len();
    f.resize(ip_at + IPV6_HEADER_LEN, 0);
    let mut ip = Ipv6Packet::new_unchecked(&mut f[ip_at..]);
    ip.set_version();
    ip.set_payload_len(body.len() as u16);
    ip.set_next_header(next);
    ip.set_hop_limit(a.hop_limit);
    ip.set_src(a.src);
    ip.set_dst(a.dst);
    f.extend_from_slice(&body);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    fn addrs(vlan: u16) -> Addrs {
        Addrs {
            src_mac: MAC_A,
            dst_mac: MAC_B,
            vlan,
            src: "fe80::a".parse().unwrap(),
            dst: "fe80::b".parse().unwrap(),
            hop_limit: 255,
        }
    }

    /// An ICMPv6 echo request fe80::a → fe80::b, written out by hand with the
    /// checksum computed independently (RFC 1071 sum over pseudo-header + data).
    #[test]
    fn icmpv6_frame_bytes() {
        let msg = [128u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let f = emit_frame(&addrs(0), Upper::Icmpv6(&msg));
        let mut want = vec![];
        want.extend_from_slice(&MAC_B);
        want.extend_from_slice(&MAC_A);
        want.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 58, 255]);
        want.extend_from_slice(&"fe80::a".parse::<Ipv6Addr>().unwrap().octets());
        want.extend_from_slice(&"fe80::b".parse::<Ipv6Addr>().unwrap().octets());
        // sum: fe80 + a + fe80 + b + len 8 + nh 58 + 8000 + 1234 + 1
        let s: u32 = 0xfe80 + 0xa + 0xfe80 + 0xb + 8 + 58 + 0x8000 + 0x1234 + 1;
        let s = (s & 0xffff) + (s >> 16);
        let c = !(s as u16);
        want.extend_from_slice(&[128, 0]);
        want.extend_from_slice(&c.to_be_bytes());
        want.extend_from_slice(&[0x12, 0x34, 0, 1]);
        assert_eq!(f, want);
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.src_mac, MAC_A);
        assert_eq!(p.dst_mac, MAC_B);
        assert_eq!(p.vlan, 0);
        assert_eq!(p.hop_limit, 255);
        assert_eq!(p.src, "fe80::a".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper, Upper::Icmpv6(&f[54..]));
    }

    #[test]
    fn udp_frame_with_vlan_round_trips() {
        let f = emit_frame(
            &addrs(100),
            Upper::Udp {
                src_port: 547,
                dst_port: 546,
                payload: b"hello",
            },
        );
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 100, 0x86, 0xdd]);
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.vlan, 100);
        assert_eq!(
            p.upper,
            Upper::Udp {
                src_port: 547,
                dst_port: 546,
                payload: b"hello"
            }
        );
        // Ethernet padding after the IPv6 payload is ignored.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(parse_frame(&padded).unwrap().upper, p.upper);
    }

    #[test]
    fn bad_frames_are_errors() {
        let f = emit_frame(&addrs(0), Upper::Icmpv6(&[133, 0, 0, 0, 0, 0, 0, 0]));
        for n in 0..f.len() {
            assert!(parse_frame(&f[..n]).is_err(), "len {n}");
        }
        let mut b = f.clone();
        b[61] ^= 1; // payload bit: checksum fails
        assert_eq!(parse_frame(&b), Err(Error::BadChecksum));
        let mut b = f.clone();
        b[14] = 0x40; // version 4
        assert_eq!(parse_frame(&b), Err(Error::Malformed));
        let mut b = f.clone();
        b[20] = 0; // hop-by-hop extension header
        assert_eq!(parse_frame(&b), Err(Error::Unsupported));
        let mut b = f.clone();
        b[12] = 0x08; // IPv4 ethertype
        b[13] = 0x00;
        assert_eq!(parse_frame(&b), Err(Error::Unsupported));
        let u = emit_frame(
            &addrs(0),
            Upper::Udp {
                src_port: 1,
                dst_port: 2,
                payload: &[],
            },
        );
        let mut b = u.clone();
        b[60..62].copy_from_slice(&[0, 0]); // zero UDP checksum
        assert_eq!(parse_frame(&b), Err(Error::Malformed));
        let mut b = u.clone();
        b[59] = 9; // UDP length beyond the payload
        assert_eq!(parse_frame(&b), Err(Error::Malformed));
    }

    #[test]
    fn offloaded_checksum_is_filled() {
        let f = emit_frame(
            &addrs(0),
            Upper::Udp {
                src_port: 546,
                dst_port: 547,
                payload: b"solicit",
            },
        );
        let mut partial = f.clone();
        partial[60..62].copy_from_slice(&[0x12, 0x34]); // a pseudo-header-only sum
        assert_eq!(parse_frame(&partial), Err(Error::BadChecksum));
        fill_offloaded_checksum(&mut partial);
        assert_eq!(partial, f);
        // Never panics, also on a cut 802.1Q tag (found by the access_nd fuzz target).
        let tagged = emit_frame(&addrs(7), Upper::Icmpv6(&[128, 0, 0, 0]));
        for g in [&f, &tagged] {
            for n in 0..g.len() {
                fill_offloaded_checksum(&mut g[..n].to_vec());
            }
        }
    }

    #[test]
    fn address_helpers() {
        let mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
        assert_eq!(
            link_local_from_mac(mac),
            "fe80::ff:fe00:fe".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node("2001:db8::12:3456".parse().unwrap()),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(multicast_mac(ALL_ROUTERS), [0x33, 0x33, 0, 0, 0, 2]);
        let p: Ipv6Addr = "2001:db8:64:10::".parse().unwrap();
        assert!(in_prefix(&"2001:db8:64:10::1".parse().unwrap(), &p, 64));
        assert!(!in_prefix(&"2001:db8:64:11::1".parse().unwrap(), &p, 64));
        assert!(in_prefix(&"::1".parse().unwrap(), &p, 0));
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_frame(&data);
        }
    }
}
