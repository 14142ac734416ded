//! The Mobility Header (RFC 6275 §6.1) and its checksum (§6.1.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
//! .                        Message Data                           .
//! ```
use std::net::Ipv6Addr;

use super::{Error, Result, IPPROTO_MH, IPPROTO_NONE};
use crate::checksum;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const PAYLOAD_PROTO: usize = 0;
    pub const HEADER_LEN: usize = 1;
    pub const MH_TYPE: usize = 2;
    pub const RESERVED: usize = 3;
    pub const CHECKSUM: Range<usize> = 4..6;
    pub const DATA: RangeFrom<usize> = 6..;
}

/// Smallest Mobility Header on the wire (Header Len 0 = 8 octets).
pub(crate) const MIN_LEN: usize = 8;
/// Offset of the message data from the start of the Mobility Header.
pub(crate) const DATA_OFFSET: usize = 6;

/// Mobility Header message types used here (IANA "Mobility Header Types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MhType {
    BindingUpdate,
    BindingAck,
    BindingError,
    Heartbeat,
    BindingRevocation,
    Unknown(u8),
}

impl From<u8> for MhType {
    fn from(v: u8) -> Self {
        match v {
            5 => MhType::BindingUpdate,
            6 => MhType::BindingAck,
            7 => MhType::BindingError,
            13 => MhType::Heartbeat,
            16 => MhType::BindingRevocation,
            other => MhType::Unknown(other),
        }
    }
}

impl From<MhType> for u8 {
    fn from(v: MhType) -> u8 {
        match v {
            MhType::BindingUpdate => 5,
            MhType::BindingAck => 6,
            MhType::BindingError => 7,
            MhType::Heartbeat => 13,
            MhType::BindingRevocation => 16,
            MhType::Unknown(o) => o,
        }
    }
}

/// Zero-copy view of a Mobility Header.
#[derive(Debug, Clone)]
pub struct MhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MhPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        MhPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer must hold the fixed part and the whole length that Header Len
    /// announces; trailing bytes beyond it are ignored (not part of the header).
    pub(crate) fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_LEN {
            return Err(Error::Truncated);
        }
        if self.total_len() > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_PROTO]
    }

    /// Header Len: length in 8-octet units, excluding the first 8 octets.
    pub fn header_len(&self) -> u8 {
        self.buffer.as_ref()[field::HEADER_LEN]
    }

    /// Total length of the Mobility Header in octets.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    pub fn mh_type(&self) -> MhType {
        MhType::from(self.buffer.as_ref()[field::MH_TYPE])
    }

    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The whole header (fixed part + message data + options), exactly Header Len long.
    pub(crate) fn header_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }

    /// Message data: everything after the checksum, up to the announced length.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA.start..self.total_len()]
    }

    /// RFC 6275 §6.1.1: the checksum over the IPv6 pseudo-header and the
    /// Mobility Header sums to all ones when it is correct.
    pub(crate) fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        pseudo_sum(src, dst, self.header_bytes()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MhPacket<T> {
    pub(crate) fn set_payload_proto(&mut self, v: u8) {
        self.buffer.as_mut()[field::PAYLOAD_PROTO] = v;
    }
    pub(crate) fn set_header_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HEADER_LEN] = v;
    }
    pub(crate) fn set_mh_type(&mut self, v: MhType) {
        self.buffer.as_mut()[field::MH_TYPE] = v.into();
    }
    pub(crate) fn set_reserved(&mut self, v: u8) {
        self.buffer.as_mut()[field::RESERVED] = v;
    }
    pub(crate) fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[field::DATA.start..end]
    }

    /// Computes and writes the checksum (RFC 6275 §6.1.1).
    pub(crate) fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = pseudo_sum(src, dst, self.header_bytes());
        self.set_checksum(!sum);
    }

    /// Writes the fixed part for a message of `total_len` octets (a multiple of 8).
    pub(crate) fn init(&mut self, mh_type: MhType, total_len: usize) {
        debug_assert!(total_len.is_multiple_of(8) && (MIN_LEN..=256 * 8).contains(&total_len));
        self.set_payload_proto(IPPROTO_NONE);
        self.set_header_len((total_len / 8 - 1) as u8);
        self.set_mh_type(mh_type);
        self.set_reserved(0);
        self.set_checksum(0);
    }
}

/// One's-complement sum (folded, not inverted) of the IPv6 pseudo-header for
/// next header 135 and `data`.
pub(crate) fn pseudo_sum(src: &Ipv6Addr, dst: &Ipv6Addr, data: &[u8]) -> u16 {
    let pseudo = checksum::pseudo_v6(src, dst, data.len() as u32, IPPROTO_MH);
    checksum::fold(checksum::add(pseudo, data))
}

/// Checks the generic header rules of RFC 6275 §9.2: Payload Proto must be
/// IPPROTO_NONE (59), and the length must cover at least the message's fixed part.
pub(crate) fn check_generic(p: &MhPacket<&[u8]>, min_len: usize) -> Result<()> {
    if p.payload_proto() != IPPROTO_NONE {
        return Err(Error::Malformed("payload proto is not 59"));
    }
    if p.total_len() < min_len {
        return Err(Error::Truncated);
    }
    Ok(())
}
