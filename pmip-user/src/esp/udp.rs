//! The UDP header (RFC 768) that carries the Mobility Header over IPv4
//! (RFC 5844 §4). With ESP the agent sends raw ESP, so it builds this header
//! itself, checksum included: the pseudo-header is the outer IPv4 header's
//! (transport mode), and a receiver with xfrm verifies it after decryption.
use crate::checksum;
use std::net::Ipv4Addr;

use super::DropReason;

type Result<T> = core::result::Result<T, DropReason>;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

pub(crate) const HEADER_LEN: usize = 8;
const IPPROTO_UDP: u8 = 17;

/// Zero-copy view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The header must be there and its Length must cover it and fit the buffer.
    pub(crate) fn check_len(&self) -> Result<()> {
        let n = self.buffer.as_ref().len();
        if n < HEADER_LEN {
            return Err(DropReason::BadInnerUdp("shorter than the UDP header"));
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN || len > n {
            return Err(DropReason::BadInnerUdp("length field disagrees"));
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload, up to the Length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD.start..usize::from(self.len())]
    }

    /// RFC 768: the sum over pseudo-header and datagram is all ones; a zero
    /// checksum means "none" over IPv4.
    pub(crate) fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::finish(checksum::add(pseudo_sum(src, dst, d.len()), d)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub(crate) fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD.start..end]
    }

    /// Computes the checksum; a result of 0 is sent as 0xffff (RFC 768).
    pub(crate) fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = usize::from(self.len());
        let d = &self.buffer.as_ref()[..len];
        let c = checksum::finish(checksum::add(pseudo_sum(src, dst, len), d));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    checksum::pseudo_v4(src, dst, IPPROTO_UDP, len as u16)
}

/// The header fields the signaling cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram between `src` and `dst`, checksum included.
    pub fn parse<T: AsRef<[u8]>>(
        p: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<UdpRepr> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(DropReason::BadInnerUdp("checksum"));
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    pub fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes header and `payload` into a buffer of exactly `buffer_len` octets.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + payload.len()) as u16);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(src, dst);
    }
}

/// A whole datagram from `src:sport` to `dst:dport`. `payload` must leave
/// room for the header in 16 bits (the signaling's messages are small).
pub fn build(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let r = UdpRepr {
        src_port: sport,
        dst_port: dport,
    };
    let mut b = vec![0u8; r.buffer_len(payload.len())];
    r.emit(&mut UdpPacket::new_unchecked(&mut b[..]), src, dst, payload);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    // 5436 → 5436, 4 octets of payload; checksum computed by hand:
    // pseudo c000+0201+c000+0202+0011+000c = 1_8420 → 8421; header 153c+153c+000c = 2a84;
    // payload 0102+0304 = 0406 → 8421+2a84+0406 = b2ab → checksum !b2ab = 4d54.
    static DATAGRAM: [u8; 12] = [
        0x15, 0x3c, 0x15, 0x3c, 0x00, 0x0c, 0x4d, 0x54, 0x01, 0x02, 0x03, 0x04,
    ];

    #[test]
    fn deconstruct_and_verify() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (5436, 5436, 12));
        assert_eq!(p.checksum(), 0x4d54);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(192, 0, 2, 3)));
    }

    #[test]
    fn construct() {
        assert_eq!(build(SRC, DST, 5436, 5436, &[1, 2, 3, 4]), DATAGRAM);
    }

    #[test]
    fn parse_round_trip_and_checksum_zero_is_none() {
        let b = build(SRC, DST, 40000, 5436, b"mobility header");
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        let r = UdpRepr::parse(&p, SRC, DST).unwrap();
        assert_eq!((r.src_port, r.dst_port), (40000, 5436));
        assert_eq!(p.payload(), b"mobility header");
        let mut z = DATAGRAM;
        z[6] = 0;
        z[7] = 0;
        assert!(UdpRepr::parse(&UdpPacket::new_unchecked(&z[..]), SRC, DST).is_ok());
    }

    #[test]
    fn bad_datagrams_refused() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&DATAGRAM[..n]).err(),
                Some(DropReason::BadInnerUdp("shorter than the UDP header"))
            );
        }
        for len in [0u8, 7, 13, 255] {
            let mut b = DATAGRAM;
            b[5] = len;
            assert_eq!(
                UdpPacket::new_checked(&b[..]).err(),
                Some(DropReason::BadInnerUdp("length field disagrees"))
            );
        }
        let mut b = DATAGRAM;
        b[11] ^= 1;
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_unchecked(&b[..]), SRC, DST),
            Err(DropReason::BadInnerUdp("checksum"))
        );
    }

    #[test]
    fn trailing_bytes_beyond_length_are_not_payload() {
        let mut b = DATAGRAM.to_vec();
        b.extend_from_slice(&[9, 9]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.verify_checksum(SRC, DST));
    }
}
