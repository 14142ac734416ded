//! Registration Revocation (type 7) and Revocation Acknowledgement (type 15), RFC 3543.
//!
//! ```text
//! Revocation: Type=7 | Reserved | A I Reserved(14) | Home Address | Home Domain Address |
//!             Foreign Domain Address | Revocation Identifier(32) | Extensions...
//! Ack:        Type=15 | Reserved | I Reserved(15) | Home Address |
//!             Revocation Identifier(32) | Extensions...
//! ```
//! Field order as in RFC 3543 §3.3/§3.4 and as Wireshark decodes it. In PMIPv4 the HA sends
//! the revocation to the old PMA after a handover (draft §4.1.4), FA-HA authenticated (§4.3).
use std::net::Ipv4Addr;

use super::ext::{self, ExtIter, ExtRepr};
use super::{be16, be32, ip, Error, MessageType, Result};

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const FLAGS: Range<usize> = 2..4;
    pub const HOME_ADDRESS: Range<usize> = 4..8;
    pub const REV_HDA: Range<usize> = 8..12;
    pub const REV_FDA: Range<usize> = 12..16;
    pub const REV_ID: Range<usize> = 16..20;
    pub const REV_EXTS: usize = 20;
    pub const ACK_ID: Range<usize> = 8..12;
    pub const ACK_EXTS: usize = 12;
}

pub(crate) const REVOCATION_LEN: usize = field::REV_EXTS;
pub(crate) const ACK_LEN: usize = field::ACK_EXTS;

/// A: the home domain (HA) is revoking. I: inform the mobile node.
const REV_A: u16 = 0x8000;
const REV_I: u16 = 0x4000;
/// In the ack, I is the first bit.
const ACK_I: u16 = 0x8000;

#[derive(Debug, Clone)]
pub struct Revocation<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Revocation<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Revocation { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        let t = p.buffer.as_ref()[field::TYPE];
        if MessageType::from(t) != MessageType::Revocation {
            return Err(Error::WrongType(t));
        }
        Ok(p)
    }
    pub(crate) fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < REVOCATION_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS.start)
    }
    pub fn a_bit(&self) -> bool {
        self.flags() & REV_A != 0
    }
    pub(crate) fn i_bit(&self) -> bool {
        self.flags() & REV_I != 0
    }
    pub fn home_address(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::HOME_ADDRESS.start)
    }
    pub(crate) fn home_domain_address(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::REV_HDA.start)
    }
    pub(crate) fn foreign_domain_address(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::REV_FDA.start)
    }
    pub(crate) fn revocation_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REV_ID.start)
    }
    pub fn extensions(&self) -> ExtIter<'_> {
        ExtIter::new(&self.buffer.as_ref()[field::REV_EXTS..], field::REV_EXTS)
    }
}

/// Owned Registration Revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRepr {
    pub a_bit: bool,
    pub i_bit: bool,
    pub home_address: Ipv4Addr,
    pub home_domain_address: Ipv4Addr,
    pub foreign_domain_address: Ipv4Addr,
    pub revocation_id: u32,
    pub extensions: Vec<ExtRepr>,
}

impl RevocationRepr {
    /// The revoked binding's NAI (its NAI extension, RFC 3543 §3.1), when
    /// present and text.
    pub fn nai(&self) -> Option<String> {
        let nai = ext::ExtList::nai(self.extensions.as_slice())?;
        std::str::from_utf8(nai).ok().map(str::to_string)
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Revocation<T>) -> Result<Self> {
        p.check_len()?;
        Ok(RevocationRepr {
            a_bit: p.a_bit(),
            i_bit: p.i_bit(),
            home_address: p.home_address(),
            home_domain_address: p.home_domain_address(),
            foreign_domain_address: p.foreign_domain_address(),
            revocation_id: p.revocation_id(),
            extensions: ext::parse_all(&p.buffer.as_ref()[field::REV_EXTS..], field::REV_EXTS)?,
        })
    }
    pub fn buffer_len(&self) -> usize {
        REVOCATION_LEN + ext::buffer_len(&self.extensions)
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Revocation<T>) {
        let b = p.buffer.as_mut();
        b[field::TYPE] = MessageType::Revocation.into();
        b[1] = 0;
        let flags = if self.a_bit { REV_A } else { 0 } | if self.i_bit { REV_I } else { 0 };
        b[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        b[field::HOME_ADDRESS].copy_from_slice(&self.home_address.octets());
        b[field::REV_HDA].copy_from_slice(&self.home_domain_address.octets());
        b[field::REV_FDA].copy_from_slice(&self.foreign_domain_address.octets());
        b[field::REV_ID].copy_from_slice(&self.revocation_id.to_be_bytes());
        ext::emit_all(&self.extensions, &mut b[field::REV_EXTS..]);
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Revocation::new_unchecked(&mut v[..]));
        v
    }
}

#[derive(Debug, Clone)]
pub struct RevocationAck<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RevocationAck<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        RevocationAck { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        let t = p.buffer.as_ref()[field::TYPE];
        if MessageType::from(t) != MessageType::RevocationAck {
            return Err(Error::WrongType(t));
        }
        Ok(p)
    }
    pub(crate) fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ACK_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    pub(crate) fn i_bit(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS.start) & ACK_I != 0
    }
    pub fn home_address(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::HOME_ADDRESS.start)
    }
    pub(crate) fn revocation_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK_ID.start)
    }
    pub fn extensions(&self) -> ExtIter<'_> {
        ExtIter::new(&self.buffer.as_ref()[field::ACK_EXTS..], field::ACK_EXTS)
    }
}

/// Owned Revocation Acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationAckRepr {
    pub i_bit: bool,
    pub home_address: Ipv4Addr,
    pub revocation_id: u32,
    pub extensions: Vec<ExtRepr>,
}

impl RevocationAckRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &RevocationAck<T>) -> Result<Self> {
        p.check_len()?;
        Ok(RevocationAckRepr {
            i_bit: p.i_bit(),
            home_address: p.home_address(),
            revocation_id: p.revocation_id(),
            extensions: ext::parse_all(&p.buffer.as_ref()[field::ACK_EXTS..], field::ACK_EXTS)?,
        })
    }
    pub fn buffer_len(&self) -> usize {
        ACK_LEN + ext::buffer_len(&self.extensions)
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RevocationAck<T>) {
        let b = p.buffer.as_mut();
        b[field::TYPE] = MessageType::RevocationAck.into();
        b[1] = 0;
        let flags = if self.i_bit { ACK_I } else { 0 };
        b[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        b[field::HOME_ADDRESS].copy_from_slice(&self.home_address.octets());
        b[field::ACK_ID].copy_from_slice(&self.revocation_id.to_be_bytes());
        ext::emit_all(&self.extensions, &mut b[field::ACK_EXTS..]);
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut RevocationAck::new_unchecked(&mut v[..]));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmipv4::wire::ext::AuthKind;
    use proptest::prelude::*;

    static REV: [u8; 20 + 5 + 10] = [
        7, 0, 0x80, 0x00, // type 7, A set, I clear
        10, 1, 0, 5, // home address
        192, 0, 2, 1, // home domain address (HA)
        198, 51, 100, 7, // foreign domain address (old PMA)
        0, 0, 0, 42, // revocation identifier
        131, 3, b'a', b'@', b'b', // NAI
        34, 8, 0, 0, 1, 0, 9, 9, 9, 9, // FA-HA auth (short authenticator for the test)
    ];

    fn rev_repr() -> RevocationRepr {
        RevocationRepr {
            a_bit: true,
            i_bit: false,
            home_address: Ipv4Addr::new(10, 1, 0, 5),
            home_domain_address: Ipv4Addr::new(192, 0, 2, 1),
            foreign_domain_address: Ipv4Addr::new(198, 51, 100, 7),
            revocation_id: 42,
            extensions: vec![
                ExtRepr::Nai(b"a@b".to_vec()),
                ExtRepr::Auth {
                    kind: AuthKind::FaHa,
                    spi: 256,
                    authenticator: vec![9; 4],
                },
            ],
        }
    }

    #[test]
    fn revocation_bytes() {
        let p = Revocation::new_checked(&REV[..]).unwrap();
        assert!(p.a_bit() && !p.i_bit());
        assert_eq!(p.home_address(), Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(p.home_domain_address(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.foreign_domain_address(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(p.revocation_id(), 42);
        assert_eq!(RevocationRepr::parse(&p).unwrap(), rev_repr());
        assert_eq!(rev_repr().to_bytes(), REV.to_vec());
    }

    static ACK: [u8; 12] = [15, 0, 0x80, 0, 10, 1, 0, 5, 0, 0, 0, 42];

    #[test]
    fn ack_bytes() {
        let p = RevocationAck::new_checked(&ACK[..]).unwrap();
        assert!(p.i_bit());
        assert_eq!(p.home_address(), Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(p.revocation_id(), 42);
        let r = RevocationAckRepr {
            i_bit: true,
            home_address: Ipv4Addr::new(10, 1, 0, 5),
            revocation_id: 42,
            extensions: vec![],
        };
        assert_eq!(RevocationAckRepr::parse(&p).unwrap(), r);
        assert_eq!(r.to_bytes(), ACK.to_vec());
    }

    #[test]
    fn truncated_and_wrong_type() {
        for n in 0..REVOCATION_LEN {
            assert_eq!(
                Revocation::new_checked(&REV[..n]).err(),
                Some(Error::Truncated)
            );
        }
        for n in 0..ACK_LEN {
            assert_eq!(
                RevocationAck::new_checked(&ACK[..n]).err(),
                Some(Error::Truncated)
            );
        }
        assert_eq!(
            Revocation::new_checked(&ACK[..]).err(),
            Some(Error::Truncated)
        );
        let mut a = REV;
        a[0] = 15;
        assert_eq!(
            Revocation::new_checked(&a[..]).err(),
            Some(Error::WrongType(15))
        );
        for n in REVOCATION_LEN + 1..REV.len() {
            let p = Revocation::new_checked(&REV[..n]).unwrap();
            assert_eq!(RevocationRepr::parse(&p).is_ok(), n == 25, "cut {n}");
        }
    }

    proptest! {
        #[test]
        fn revocation_round_trip(a: bool, i: bool, hoa: [u8; 4], hda: [u8; 4], fda: [u8; 4],
                                 id: u32, exts in proptest::collection::vec(
                                     crate::pmipv4::wire::ext::tests::arb_ext(), 0..4)) {
            let r = RevocationRepr { a_bit: a, i_bit: i, home_address: hoa.into(),
                home_domain_address: hda.into(), foreign_domain_address: fda.into(),
                revocation_id: id, extensions: exts.clone() };
            let b = r.to_bytes();
            prop_assert_eq!(RevocationRepr::parse(&Revocation::new_checked(&b[..]).unwrap()).unwrap(), r);
            let k = RevocationAckRepr { i_bit: i, home_address: hoa.into(), revocation_id: id,
                extensions: exts };
            let b = k.to_bytes();
            prop_assert_eq!(RevocationAckRepr::parse(&RevocationAck::new_checked(&b[..]).unwrap()).unwrap(), k);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Revocation::new_checked(&b[..]) { let _ = RevocationRepr::parse(&p); }
            if let Ok(p) = RevocationAck::new_checked(&b[..]) { let _ = RevocationAckRepr::parse(&p); }
        }
    }
}
