//! Registration Request (RFC 3344 §3.3) and Registration Reply (§3.4).
//!
//! ```text
//! Request:  Type=1 | S B D M G r T x | Lifetime(16) | Home Address | Home Agent |
//!           Care-of Address | Identification(64) | Extensions...
//! Reply:    Type=3 | Code | Lifetime(16) | Home Address | Home Agent |
//!           Identification(64) | Extensions...
//! ```
use std::net::Ipv4Addr;

use super::ext::{self, ExtIter, ExtRepr};
use super::{be16, be64, ip, Error, MessageType, ReplyCode, Result};

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const FLAGS_OR_CODE: usize = 1;
    pub const LIFETIME: Range<usize> = 2..4;
    pub const HOME_ADDRESS: Range<usize> = 4..8;
    pub const HOME_AGENT: Range<usize> = 8..12;
    pub const RRQ_COA: Range<usize> = 12..16;
    pub const RRQ_IDENT: Range<usize> = 16..24;
    pub const RRQ_EXTS: usize = 24;
    pub const RRP_IDENT: Range<usize> = 12..20;
    pub const RRP_EXTS: usize = 20;
}

/// Fixed-part lengths.
pub(crate) const RRQ_LEN: usize = field::RRQ_EXTS;
pub(crate) const RRP_LEN: usize = field::RRP_EXTS;

/// What a Registration Request and Reply views share: the type check, the
/// fixed length, the Lifetime, Home Address and Home Agent at the same
/// offsets, and the Identification and extensions where each has them
/// (after the request's Care-of Address, so 4 octets later there).
macro_rules! registration_view {
    ($view:ident, $kind:expr, $len:expr, $ident:expr, $exts:expr) => {
        impl<T: AsRef<[u8]>> $view<T> {
            pub fn new_unchecked(buffer: T) -> Self {
                $view { buffer }
            }
            /// Checks length and type; every getter is safe afterwards.
            pub fn new_checked(buffer: T) -> Result<Self> {
                let p = Self::new_unchecked(buffer);
                p.check_len()?;
                let t = p.buffer.as_ref()[field::TYPE];
                if MessageType::from(t) != $kind {
                    return Err(Error::WrongType(t));
                }
                Ok(p)
            }
            pub(crate) fn check_len(&self) -> Result<()> {
                if self.buffer.as_ref().len() < $len {
                    Err(Error::Truncated)
                } else {
                    Ok(())
                }
            }
            pub fn into_inner(self) -> T {
                self.buffer
            }
            pub fn lifetime(&self) -> u16 {
                be16(self.buffer.as_ref(), field::LIFETIME.start)
            }
            pub fn home_address(&self) -> Ipv4Addr {
                ip(self.buffer.as_ref(), field::HOME_ADDRESS.start)
            }
            pub fn home_agent(&self) -> Ipv4Addr {
                ip(self.buffer.as_ref(), field::HOME_AGENT.start)
            }
            pub fn identification(&self) -> u64 {
                be64(self.buffer.as_ref(), $ident.start)
            }
            /// The extensions; offsets are from the start of the message.
            pub fn extensions(&self) -> ExtIter<'_> {
                ExtIter::new(&self.buffer.as_ref()[$exts..], $exts)
            }
            /// The extensions, parsed.
            fn parse_extensions(&self) -> Result<Vec<ExtRepr>> {
                ext::parse_all(&self.buffer.as_ref()[$exts..], $exts)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            fn b(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
            pub(crate) fn set_lifetime(&mut self, v: u16) {
                self.b()[field::LIFETIME].copy_from_slice(&v.to_be_bytes());
            }
            pub(crate) fn set_home_address(&mut self, a: Ipv4Addr) {
                self.b()[field::HOME_ADDRESS].copy_from_slice(&a.octets());
            }
            pub(crate) fn set_home_agent(&mut self, a: Ipv4Addr) {
                self.b()[field::HOME_AGENT].copy_from_slice(&a.octets());
            }
            pub(crate) fn set_identification(&mut self, v: u64) {
                self.b()[$ident].copy_from_slice(&v.to_be_bytes());
            }
            /// Writes the type octet and `exts` after the fixed part.
            fn emit_type_and_extensions(&mut self, exts: &[ExtRepr]) {
                self.b()[field::TYPE] = $kind.into();
                ext::emit_all(exts, &mut self.b()[$exts..]);
            }
        }
    };
}

/// Registration Request flags octet (RFC 3344 §3.3; protocol-numbers.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RrqFlags(pub u8);

impl RrqFlags {
    /// Simultaneous bindings.
    pub const S: u8 = 0x80;
    /// Broadcast datagrams.
    pub const B: u8 = 0x40;
    /// Decapsulation by mobile node (co-located CoA). A PMA always sends 0 (draft §7).
    pub const D: u8 = 0x20;
    /// Minimal encapsulation.
    pub const M: u8 = 0x10;
    /// GRE encapsulation.
    pub const G: u8 = 0x08;
    /// Reverse tunnelling (RFC 3024).
    pub const T: u8 = 0x02;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// Zero-copy view of a Registration Request.
#[derive(Debug, Clone)]
pub struct RegistrationRequest<T: AsRef<[u8]>> {
    buffer: T,
}

registration_view!(
    RegistrationRequest,
    MessageType::RegistrationRequest,
    RRQ_LEN,
    field::RRQ_IDENT,
    field::RRQ_EXTS
);

impl<T: AsRef<[u8]>> RegistrationRequest<T> {
    pub fn flags(&self) -> RrqFlags {
        RrqFlags(self.buffer.as_ref()[field::FLAGS_OR_CODE])
    }
    pub fn care_of_address(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::RRQ_COA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RegistrationRequest<T> {
    pub(crate) fn set_flags(&mut self, f: RrqFlags) {
        self.b()[field::FLAGS_OR_CODE] = f.0;
    }
    pub(crate) fn set_care_of_address(&mut self, a: Ipv4Addr) {
        self.b()[field::RRQ_COA].copy_from_slice(&a.octets());
    }
}

/// Owned Registration Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRequestRepr {
    pub flags: RrqFlags,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub identification: u64,
    pub extensions: Vec<ExtRepr>,
}

impl RegistrationRequestRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &RegistrationRequest<T>) -> Result<Self> {
        p.check_len()?;
        Ok(RegistrationRequestRepr {
            flags: p.flags(),
            lifetime: p.lifetime(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            care_of_address: p.care_of_address(),
            identification: p.identification(),
            extensions: p.parse_extensions()?,
        })
    }
    pub fn buffer_len(&self) -> usize {
        RRQ_LEN + ext::buffer_len(&self.extensions)
    }
    /// `buf` must be at least `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RegistrationRequest<T>) {
        p.emit_type_and_extensions(&self.extensions);
        p.set_flags(self.flags);
        p.set_lifetime(self.lifetime);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_care_of_address(self.care_of_address);
        p.set_identification(self.identification);
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut RegistrationRequest::new_unchecked(&mut v[..]));
        v
    }
}

/// Zero-copy view of a Registration Reply.
#[derive(Debug, Clone)]
pub struct RegistrationReply<T: AsRef<[u8]>> {
    buffer: T,
}

registration_view!(
    RegistrationReply,
    MessageType::RegistrationReply,
    RRP_LEN,
    field::RRP_IDENT,
    field::RRP_EXTS
);

impl<T: AsRef<[u8]>> RegistrationReply<T> {
    pub fn code(&self) -> ReplyCode {
        ReplyCode::from(self.buffer.as_ref()[field::FLAGS_OR_CODE])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RegistrationReply<T> {
    pub(crate) fn set_code(&mut self, c: ReplyCode) {
        self.b()[field::FLAGS_OR_CODE] = c.into();
    }
}

/// Owned Registration Reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationReplyRepr {
    pub code: ReplyCode,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub identification: u64,
    pub extensions: Vec<ExtRepr>,
}

impl RegistrationReplyRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &RegistrationReply<T>) -> Result<Self> {
        p.check_len()?;
        Ok(RegistrationReplyRepr {
            code: p.code(),
            lifetime: p.lifetime(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            identification: p.identification(),
            extensions: p.parse_extensions()?,
        })
    }
    pub fn buffer_len(&self) -> usize {
        RRP_LEN + ext::buffer_len(&self.extensions)
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RegistrationReply<T>) {
        p.emit_type_and_extensions(&self.extensions);
        p.set_code(self.code);
        p.set_lifetime(self.lifetime);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_identification(self.identification);
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_room(0)
    }

    /// The message in a vector with room for `room` more bytes (an
    /// authentication extension, `auth::AUTH_EXT_LEN`), so that appending
    /// them does not move it.
    pub fn to_bytes_with_room(&self, room: usize) -> Vec<u8> {
        let len = self.buffer_len();
        let mut v = Vec::with_capacity(len + room);
        v.resize(len, 0);
        self.emit(&mut RegistrationReply::new_unchecked(&mut v[..]));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmipv4::wire::ext::{AccessTech, AuthKind, AuthMethod};
    use proptest::prelude::*;

    /// A PRRQ as the PMA sends it: G and T set, HoA 0.0.0.0, NAI, PMIPv4 and GRE key
    /// extensions, FA-HA authentication last.
    static PRRQ: [u8; 24 + 11 + 4 + 8 + 5 + 22] = [
        0x01, 0x0a, 0x02, 0x58, // type 1, flags G|T, lifetime 600
        0, 0, 0, 0, // home address
        192, 0, 2, 1, // home agent
        198, 51, 100, 7, // care-of address
        0xe9, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2a, // identification
        131, 9, b'u', b'e', b'1', b'@', b'e', b'x', b'.', b'c', b'o', // NAI
        147, 2, 4, 5, // access technology: E-UTRAN
        48, 0, 0, 4, 0, 0, 0x10, 0x01, // GRE key 0x1001 (long format)
        47, 1, 0, 1, 1, // per-node auth: FA-HA
        34, 20, 0, 0, 0x01, 0x00, // FA-HA auth, SPI 256
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];

    fn prrq_repr() -> RegistrationRequestRepr {
        RegistrationRequestRepr {
            flags: RrqFlags(RrqFlags::G | RrqFlags::T),
            lifetime: 600,
            home_address: Ipv4Addr::UNSPECIFIED,
            home_agent: Ipv4Addr::new(192, 0, 2, 1),
            care_of_address: Ipv4Addr::new(198, 51, 100, 7),
            identification: 0xe900_0001_0000_002a,
            extensions: vec![
                ExtRepr::Nai(b"ue1@ex.co".to_vec()),
                ExtRepr::AccessTechnology(AccessTech::Eutran),
                ExtRepr::GreKey(0x1001),
                ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
                ExtRepr::Auth {
                    kind: AuthKind::FaHa,
                    spi: 256,
                    authenticator: (1..=16).collect(),
                },
            ],
        }
    }

    #[test]
    fn rrq_deconstruct() {
        let p = RegistrationRequest::new_checked(&PRRQ[..]).unwrap();
        assert!(p.flags().has(RrqFlags::G) && p.flags().has(RrqFlags::T));
        assert!(!p.flags().has(RrqFlags::D));
        assert_eq!(p.lifetime(), 600);
        assert_eq!(p.home_address(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.home_agent(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.care_of_address(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(p.identification(), 0xe900_0001_0000_002a);
        let offs: Vec<_> = p
            .extensions()
            .map(|e| (e.unwrap().ty, e.unwrap().offset))
            .collect();
        assert_eq!(
            offs,
            vec![(131, 24), (147, 35), (48, 39), (47, 47), (34, 52)]
        );
    }

    #[test]
    fn rrq_construct() {
        let r = prrq_repr();
        assert_eq!(r.buffer_len(), PRRQ.len());
        assert_eq!(r.to_bytes(), PRRQ.to_vec());
    }

    #[test]
    fn rrq_parse() {
        let p = RegistrationRequest::new_checked(&PRRQ[..]).unwrap();
        assert_eq!(RegistrationRequestRepr::parse(&p).unwrap(), prrq_repr());
    }

    static PRRP: [u8; 20 + 11 + 8 + 5] = [
        0x03, 133, 0x00, 0x00, // type 3, code 133, lifetime 0
        10, 1, 0, 5, // home address
        192, 0, 2, 1, // home agent
        0xe9, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x2a, // identification
        131, 9, b'u', b'e', b'1', b'@', b'e', b'x', b'.', b'c', b'o', // NAI
        48, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef, // GRE key
        47, 1, 0, 1, 1,
    ];

    fn prrp_repr() -> RegistrationReplyRepr {
        RegistrationReplyRepr {
            code: ReplyCode::IdentMismatch,
            lifetime: 0,
            home_address: Ipv4Addr::new(10, 1, 0, 5),
            home_agent: Ipv4Addr::new(192, 0, 2, 1),
            identification: 0xe900_0009_0000_002a,
            extensions: vec![
                ExtRepr::Nai(b"ue1@ex.co".to_vec()),
                ExtRepr::GreKey(0xdeadbeef),
                ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
            ],
        }
    }

    #[test]
    fn rrp_deconstruct_construct_parse() {
        let p = RegistrationReply::new_checked(&PRRP[..]).unwrap();
        assert_eq!(p.code(), ReplyCode::IdentMismatch);
        assert_eq!(p.lifetime(), 0);
        assert_eq!(p.home_address(), Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(p.home_agent(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.identification(), 0xe900_0009_0000_002a);
        assert_eq!(RegistrationReplyRepr::parse(&p).unwrap(), prrp_repr());
        assert_eq!(prrp_repr().to_bytes(), PRRP.to_vec());
    }

    #[test]
    fn wrong_type_and_truncation() {
        assert_eq!(
            RegistrationRequest::new_checked(&PRRP[..]).err(),
            Some(Error::WrongType(3))
        );
        assert_eq!(
            RegistrationReply::new_checked(&PRRQ[..]).err(),
            Some(Error::WrongType(1))
        );
        for n in 0..RRQ_LEN {
            assert_eq!(
                RegistrationRequest::new_checked(&PRRQ[..n]).err(),
                Some(Error::Truncated)
            );
        }
        for n in 0..RRP_LEN {
            assert_eq!(
                RegistrationReply::new_checked(&PRRP[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // Every cut inside an extension is an error, never a panic; cuts between
        // extensions leave a shorter, valid message.
        let bounds = [35, 39, 47, 52];
        for n in RRQ_LEN + 1..PRRQ.len() {
            let p = RegistrationRequest::new_checked(&PRRQ[..n]).unwrap();
            assert_eq!(
                RegistrationRequestRepr::parse(&p).is_ok(),
                bounds.contains(&n),
                "cut {n}"
            );
        }
        // Oversized trailing garbage is an overrunning extension.
        let mut long = PRRQ.to_vec();
        long.extend_from_slice(&[131, 200, 1]);
        let p = RegistrationRequest::new_checked(&long[..]).unwrap();
        assert_eq!(
            RegistrationRequestRepr::parse(&p),
            Err(Error::Overrun {
                ext_type: 131,
                offset: PRRQ.len()
            })
        );
    }

    fn arb_exts() -> impl Strategy<Value = Vec<ExtRepr>> {
        proptest::collection::vec(crate::pmipv4::wire::ext::tests::arb_ext(), 0..6)
    }

    proptest! {
        #[test]
        fn rrq_round_trip(flags: u8, lifetime: u16, hoa: [u8; 4], ha: [u8; 4], coa: [u8; 4],
                          ident: u64, exts in arb_exts()) {
            let r = RegistrationRequestRepr { flags: RrqFlags(flags), lifetime,
                home_address: hoa.into(), home_agent: ha.into(), care_of_address: coa.into(),
                identification: ident, extensions: exts };
            let b = r.to_bytes();
            let p = RegistrationRequest::new_checked(&b[..]).unwrap();
            prop_assert_eq!(RegistrationRequestRepr::parse(&p).unwrap(), r);
        }

        #[test]
        fn rrp_round_trip(code: u8, lifetime: u16, hoa: [u8; 4], ha: [u8; 4], ident: u64,
                          exts in arb_exts()) {
            let r = RegistrationReplyRepr { code: code.into(), lifetime,
                home_address: hoa.into(), home_agent: ha.into(), identification: ident,
                extensions: exts };
            let b = r.to_bytes();
            let p = RegistrationReply::new_checked(&b[..]).unwrap();
            prop_assert_eq!(RegistrationReplyRepr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = RegistrationRequest::new_checked(&b[..]) {
                let _ = RegistrationRequestRepr::parse(&p);
            }
            if let Ok(p) = RegistrationReply::new_checked(&b[..]) {
                let _ = RegistrationReplyRepr::parse(&p);
            }
        }
    }
}
