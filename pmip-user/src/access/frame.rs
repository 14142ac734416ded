//! Raw L2 frames the access side sends and receives itself: Ethernet, ARP
//! (RFC 826) and an IPv4/UDP builder for DHCP replies to clients that have no
//! address yet (RFC 2131 §4.1: unicast to `chaddr`/`yiaddr` without ARP).
//!
//! smoltcp-style views: `Packet<T: AsRef<[u8]>>` with private field offsets,
//! `new_checked` that verifies the length once, after which no accessor panics.
use std::fmt;
use std::net::Ipv4Addr;

use crate::checksum;

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const BROADCAST_MAC: [u8; 6] = [0xff; 6];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated frame"),
            Error::Malformed => f.write_str("malformed frame"),
        }
    }
}
impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Formats a MAC like Cisco's link-layer id (`0024.d78e.21a4`).
pub(crate) fn mac_dotted(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// Formats a MAC as `00:24:d7:8e:21:a4`.
pub fn mac_colon(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

pub use crate::mac::parse_mac;

// ---------------------------------------------------------------- Ethernet

mod eth_field {
    use core::ops::{Range, RangeFrom};
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}
pub(crate) const ETH_HEADER_LEN: usize = 14;

/// An Ethernet II frame (no FCS).
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    pub(crate) fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ETH_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn dst(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[eth_field::DST]);
        m
    }
    pub fn src(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[eth_field::SRC]);
        m
    }
    pub(crate) fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[eth_field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[eth_field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub(crate) fn set_dst(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[eth_field::DST].copy_from_slice(&m);
    }
    pub(crate) fn set_src(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[eth_field::SRC].copy_from_slice(&m);
    }
    pub(crate) fn set_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[eth_field::ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }
    pub(crate) fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[eth_field::PAYLOAD]
    }
}

// ---------------------------------------------------------------- ARP

mod arp_field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    // Offsets below hold for Ethernet/IPv4 only (hlen 6, plen 4), which check_len enforces.
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}
/// Length of an Ethernet/IPv4 ARP packet.
pub(crate) const ARP_LEN: usize = 28;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
    Unknown(u16),
}
impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            x => ArpOp::Unknown(x),
        }
    }
}
impl From<ArpOp> for u16 {
    fn from(v: ArpOp) -> u16 {
        match v {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Unknown(x) => x,
        }
    }
}

/// An ARP packet; only Ethernet/IPv4 ARP passes `new_checked`.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Needs the fixed 8-byte header, Ethernet/IPv4 address sizes and 28 bytes.
    pub(crate) fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 8 {
            return Err(Error::Truncated);
        }
        if b[arp_field::HLEN] != 6 || b[arp_field::PLEN] != 4 {
            return Err(Error::Malformed);
        }
        if b.len() < ARP_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub(crate) fn htype(&self) -> u16 {
        self.u16_at(arp_field::HTYPE)
    }
    pub(crate) fn ptype(&self) -> u16 {
        self.u16_at(arp_field::PTYPE)
    }
    pub(crate) fn oper(&self) -> ArpOp {
        self.u16_at(arp_field::OPER).into()
    }
    fn mac_at(&self, r: core::ops::Range<usize>) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[r]);
        m
    }
    fn ip_at(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    pub fn sha(&self) -> [u8; 6] {
        self.mac_at(arp_field::SHA)
    }
    pub fn spa(&self) -> Ipv4Addr {
        self.ip_at(arp_field::SPA)
    }
    pub fn tha(&self) -> [u8; 6] {
        self.mac_at(arp_field::THA)
    }
    pub fn tpa(&self) -> Ipv4Addr {
        self.ip_at(arp_field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set(&mut self, r: core::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v);
    }
    pub(crate) fn set_htype(&mut self, v: u16) {
        self.set(arp_field::HTYPE, &v.to_be_bytes())
    }
    pub(crate) fn set_ptype(&mut self, v: u16) {
        self.set(arp_field::PTYPE, &v.to_be_bytes())
    }
    pub(crate) fn set_sizes(&mut self) {
        self.buffer.as_mut()[arp_field::HLEN] = 6;
        self.buffer.as_mut()[arp_field::PLEN] = 4;
    }
    pub(crate) fn set_oper(&mut self, v: ArpOp) {
        self.set(arp_field::OPER, &u16::from(v).to_be_bytes())
    }
    pub(crate) fn set_sha(&mut self, v: [u8; 6]) {
        self.set(arp_field::SHA, &v)
    }
    pub(crate) fn set_spa(&mut self, v: Ipv4Addr) {
        self.set(arp_field::SPA, &v.octets())
    }
    pub(crate) fn set_tha(&mut self, v: [u8; 6]) {
        self.set(arp_field::THA, &v)
    }
    pub(crate) fn set_tpa(&mut self, v: Ipv4Addr) {
        self.set(arp_field::TPA, &v.octets())
    }
}

/// High-level Ethernet/IPv4 ARP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

impl ArpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        if p.htype() != 1 || p.ptype() != ETHERTYPE_IPV4 {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            op: p.oper(),
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        ARP_LEN
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_htype(1);
        p.set_ptype(ETHERTYPE_IPV4);
        p.set_sizes();
        p.set_oper(self.op);
        p.set_sha(self.sha);
        p.set_spa(self.spa);
        p.set_tha(self.tha);
        p.set_tpa(self.tpa);
    }

    /// A whole Ethernet frame carrying this ARP, padded to the 60-byte minimum.
    pub fn to_frame(&self, eth_dst: [u8; 6]) -> Vec<u8> {
        let mut buf = vec![0u8; 60];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst(eth_dst);
        eth.set_src(self.sha);
        eth.set_ethertype(ETHERTYPE_ARP);
        self.emit(&mut ArpPacket::new_unchecked(
            &mut eth.payload_mut()[..ARP_LEN],
        ));
        buf
    }

    /// Parses an Ethernet frame that carries ARP (untagged).
    pub fn from_frame(frame: &[u8]) -> Result<Self> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() != ETHERTYPE_ARP {
            return Err(Error::Malformed);
        }
        ArpRepr::parse(&ArpPacket::new_checked(eth.payload())?)
    }
}

// ---------------------------------------------------------------- IPv4/UDP

/// Builds Ethernet + IPv4 + UDP around `payload` (TTL 64, DF clear, checksums set).
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(ETH_HEADER_LEN + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0x10]); // version/IHL, DSCP low-delay like most DHCP servers
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    let ipc = checksum::of(&f[ip_start..ip_start + 20]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ipc.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    // Pseudo-header (RFC 768).
    let sum = checksum::pseudo_v4(src.0, dst.0, 17, udp_len as u16);
    let mut uc = checksum::finish(checksum::add(sum, &f[udp_start..]));
    if uc == 0 {
        uc = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&uc.to_be_bytes());
    f
}

/// A UDP datagram found in an Ethernet/IPv4 frame.
#[derive(Debug, PartialEq, Eq)]
pub struct UdpInFrame<'a> {
    pub src_mac: [u8; 6],
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub payload: &'a [u8],
}

/// Extracts UDP from an untagged Ethernet/IPv4 frame (no fragments); checks
/// lengths but not checksums.
pub fn parse_udp_frame(frame: &[u8]) -> Result<UdpInFrame<'_>> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return Err(Error::Malformed);
    }
    let ip = &frame[ETH_HEADER_LEN..];
    if ip.len() < 20 {
        return Err(Error::Truncated);
    }
    if ip[0] >> 4 != 4 || ip[9] != 17 {
        return Err(Error::Malformed);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || total < ihl + 8 || total > ip.len() {
        return Err(Error::Malformed);
    }
    // A fragment's payload is not a whole UDP datagram.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(Error::Malformed);
    }
    let udp = &ip[ihl..total];
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen < 8 || ulen > udp.len() {
        return Err(Error::Malformed);
    }
    let a = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
    Ok(UdpInFrame {
        src_mac: eth.src(),
        src: (a(12), u16::from_be_bytes([udp[0], udp[1]])),
        dst: (a(16), u16::from_be_bytes([udp[2], udp[3]])),
        payload: &udp[8..ulen],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who-has 192.0.2.1 tell 192.0.2.254, from 02:00:00:00:00:fe.
    static ARP_REQ: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype, ptype, sizes, op
        0x02, 0x00, 0x00, 0x00, 0x00, 0xfe, 192, 0, 2, 254, // sha, spa
        0, 0, 0, 0, 0, 0, 192, 0, 2, 1, // tha, tpa
    ];

    fn req_repr() -> ArpRepr {
        ArpRepr {
            op: ArpOp::Request,
            sha: [2, 0, 0, 0, 0, 0xfe],
            spa: Ipv4Addr::new(192, 0, 2, 254),
            tha: [0; 6],
            tpa: Ipv4Addr::new(192, 0, 2, 1),
        }
    }

    #[test]
    fn arp_deconstruct() {
        let p = ArpPacket::new_checked(&ARP_REQ[..]).unwrap();
        assert_eq!(p.htype(), 1);
        assert_eq!(p.ptype(), 0x0800);
        assert_eq!(p.oper(), ArpOp::Request);
        assert_eq!(p.sha(), [2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(p.spa(), Ipv4Addr::new(192, 0, 2, 254));
        assert_eq!(p.tpa(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn arp_construct_parse_emit() {
        let mut buf = [0xa5u8; 28];
        req_repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ARP_REQ);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&ARP_REQ[..]).unwrap()).unwrap(),
            req_repr()
        );
        let f = req_repr().to_frame(BROADCAST_MAC);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[..6], &BROADCAST_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..42], &ARP_REQ);
        assert_eq!(ArpRepr::from_frame(&f).unwrap(), req_repr());
    }

    #[test]
    fn arp_bad_input() {
        for n in 0..28 {
            assert!(ArpPacket::new_checked(&ARP_REQ[..n]).is_err(), "len {n}");
        }
        let mut b = ARP_REQ;
        b[4] = 8; // hlen
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        let mut b = ARP_REQ;
        b[2] = 0x86; // ptype IPv6
        assert!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).is_err());
        let mut b = ARP_REQ;
        b[7] = 9;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap().oper(),
            ArpOp::Unknown(9)
        );
        assert!(ArpRepr::from_frame(&[0u8; 13]).is_err());
        assert!(ArpRepr::from_frame(&[0u8; 60]).is_err()); // ethertype 0
    }

    #[test]
    fn udp_frame_round_trip_and_checksums() {
        let f = udp_frame(
            [2, 0, 0, 0, 0, 1],
            BROADCAST_MAC,
            (Ipv4Addr::new(192, 0, 2, 254), 67),
            (Ipv4Addr::BROADCAST, 68),
            b"hello",
        );
        // IP header checksum verifies to zero.
        assert_eq!(checksum::of(&f[14..34]), 0);
        let u = parse_udp_frame(&f).unwrap();
        assert_eq!(u.src, (Ipv4Addr::new(192, 0, 2, 254), 67));
        assert_eq!(u.dst, (Ipv4Addr::BROADCAST, 68));
        assert_eq!(u.payload, b"hello");
        assert_eq!(u.src_mac, [2, 0, 0, 0, 0, 1]);
        for n in 0..f.len() {
            let _ = parse_udp_frame(&f[..n]); // never panics
            assert!(parse_udp_frame(&f[..n]).is_err() || n >= 42);
        }
    }

    #[test]
    fn macs() {
        let m = [0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
        assert_eq!(mac_dotted(&m), "0024.d78e.21a4");
        assert_eq!(parse_mac("0024.d78e.21a4"), Some(m));
        assert_eq!(parse_mac(&mac_colon(&m)), Some(m));
        assert_eq!(parse_mac("00:24:d7:8e:21"), None);
        assert_eq!(parse_mac("zz:24:d7:8e:21:a4"), None);
    }

    proptest::proptest! {
        #[test]
        fn arp_round_trip(op in 0u16..4, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) {
            let r = ArpRepr { op: op.into(), sha, spa: spa.into(), tha, tpa: tpa.into() };
            let f = r.to_frame(BROADCAST_MAC);
            proptest::prop_assert_eq!(ArpRepr::from_frame(&f).unwrap(), r);
        }

        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = ArpRepr::from_frame(&data);
            let _ = parse_udp_frame(&data);
        }
    }
}
