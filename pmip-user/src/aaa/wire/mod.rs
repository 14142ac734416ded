//! RADIUS wire format: RFC 2865 §3 (packet), §5 (attributes), RFC 2866 (accounting),
//! RFC 5176 (dynamic authorization), RFC 3579 §3.2 (Message-Authenticator).
//!
//! ```text
//!  0               1               2               3
//!  Code | Identifier | Length(16) | Authenticator (16 octets) | Attributes: Type | Length | Value...
//! ```
//!
//! - [`Packet`] is a zero-copy view (`new_checked` validates the header and every attribute's
//!   length, so no accessor panics afterwards); [`PacketRepr`] is the owned form with
//!   `parse`/`emit`/`buffer_len`.
//! - [`attr`]: attribute numbers, the TLV iterator and vendor-specific attributes.
//! - [`auth`]: authenticators, Message-Authenticator and User-Password hiding.
use core::fmt;

pub mod attr;
pub mod auth;

pub use attr::{AttrIter, AttrRepr, RawAttr, VendorAttr, VsaIter};

/// UDP ports (RFC 2865 §3, RFC 2866 §3, RFC 5176 §3.3).
pub const AUTH_PORT: u16 = 1812;
pub const ACCT_PORT: u16 = 1813;
pub const DAE_PORT: u16 = 3799;

/// Header length: Code, Identifier, Length and the 16-octet Authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet (RFC 2865 §3: "The maximum length is 4096").
pub const MAX_LEN: usize = 4096;
/// Length of the Authenticator field and of an MD5 digest.
pub const AUTHENTICATOR_LEN: usize = 16;

mod field {
    use core::ops::Range;
    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const AUTHENTICATOR: Range<usize> = 4..20;
    pub const ATTRIBUTES: usize = 20;
}

/// Why a packet could not be parsed or built. Never a panic: every parser returns one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header, or than its own Length field (RFC 2865 §3: silently discarded).
    Truncated,
    /// Length field below 20 or above 4096.
    BadLength(u16),
    /// An attribute's Length is below 2 or runs past the packet's Length.
    BadAttribute { ty: u8, offset: usize },
    /// A vendor-specific attribute whose inner format does not add up.
    BadVendorAttribute { vendor: u32, offset: usize },
    /// A value too long for one attribute (253 octets) or a packet over 4096 octets.
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "packet truncated"),
            Error::BadLength(l) => write!(f, "impossible packet length {l}"),
            Error::BadAttribute { ty, offset } => {
                write!(f, "attribute {ty} at offset {offset} has a bad length")
            }
            Error::BadVendorAttribute { vendor, offset } => {
                write!(
                    f,
                    "vendor {vendor} attribute at offset {offset} is malformed"
                )
            }
            Error::TooLong => write!(f, "value or packet too long"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Packet code (RFC 2865 §3, RFC 2866 §4, RFC 5176 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    StatusServer,
    DisconnectRequest,
    DisconnectAck,
    DisconnectNak,
    CoaRequest,
    CoaAck,
    CoaNak,
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        match v {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            40 => Code::DisconnectRequest,
            41 => Code::DisconnectAck,
            42 => Code::DisconnectNak,
            43 => Code::CoaRequest,
            44 => Code::CoaAck,
            45 => Code::CoaNak,
            x => Code::Unknown(x),
        }
    }
}

impl From<Code> for u8 {
    fn from(v: Code) -> u8 {
        match v {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::DisconnectRequest => 40,
            Code::DisconnectAck => 41,
            Code::DisconnectNak => 42,
            Code::CoaRequest => 43,
            Code::CoaAck => 44,
            Code::CoaNak => 45,
            Code::Unknown(x) => x,
        }
    }
}

impl Code {
    /// Requests whose Request Authenticator is an MD5 over the packet (RFC 2866 §3,
    /// RFC 5176 §3.5) rather than a random nonce (Access-Request, RFC 2865 §3).
    pub fn is_hashed_request(self) -> bool {
        matches!(
            self,
            Code::AccountingRequest | Code::DisconnectRequest | Code::CoaRequest
        )
    }
}

/// Zero-copy view of a RADIUS packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks the header and every attribute's length; every getter is safe afterwards.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        for a in p.attributes() {
            a?;
        }
        Ok(p)
    }

    /// RFC 2865 §3: octets past Length are padding and ignored; a buffer shorter
    /// than Length is discarded.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = u16::from_be_bytes([b[2], b[3]]);
        if (len as usize) < HEADER_LEN || len as usize > MAX_LEN {
            return Err(Error::BadLength(len));
        }
        if b.len() < len as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn code(&self) -> Code {
        Code::from(self.buffer.as_ref()[field::CODE])
    }
    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[field::IDENTIFIER]
    }
    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }
    pub fn authenticator(&self) -> [u8; AUTHENTICATOR_LEN] {
        let mut a = [0u8; AUTHENTICATOR_LEN];
        a.copy_from_slice(&self.buffer.as_ref()[field::AUTHENTICATOR]);
        a
    }
    /// The packet up to its Length (padding cut off).
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.length() as usize]
    }
    /// The attributes, with offsets from the start of the packet.
    pub fn attributes(&self) -> AttrIter<'_> {
        AttrIter::new(&self.bytes()[field::ATTRIBUTES..], field::ATTRIBUTES)
    }
    /// The first attribute of type `ty`.
    pub fn attr(&self, ty: u8) -> Option<RawAttr<'_>> {
        self.attributes().flatten().find(|a| a.ty == ty)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn b(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_code(&mut self, c: Code) {
        self.b()[field::CODE] = c.into();
    }
    pub fn set_identifier(&mut self, id: u8) {
        self.b()[field::IDENTIFIER] = id;
    }
    pub fn set_length(&mut self, len: u16) {
        self.b()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
    pub fn set_authenticator(&mut self, a: &[u8; AUTHENTICATOR_LEN]) {
        self.b()[field::AUTHENTICATOR].copy_from_slice(a);
    }
}

/// Owned RADIUS packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRepr {
    pub code: Code,
    pub identifier: u8,
    pub authenticator: [u8; AUTHENTICATOR_LEN],
    pub attributes: Vec<AttrRepr>,
}

impl PacketRepr {
    pub fn new(code: Code, identifier: u8) -> Self {
        PacketRepr {
            code,
            identifier,
            authenticator: [0; AUTHENTICATOR_LEN],
            attributes: Vec::new(),
        }
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        let attributes = p
            .attributes()
            .map(|a| a.map(|a| AttrRepr::new(a.ty, a.value)))
            .collect::<Result<Vec<_>>>()?;
        Ok(PacketRepr {
            code: p.code(),
            identifier: p.identifier(),
            authenticator: p.authenticator(),
            attributes,
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self
                .attributes
                .iter()
                .map(|a| 2 + a.value.len())
                .sum::<usize>()
    }

    /// Emits into `p`, whose buffer is `buffer_len()` long. Fails when an attribute value
    /// exceeds 253 octets or the packet 4096.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        if len > MAX_LEN
            || self
                .attributes
                .iter()
                .any(|a| a.value.len() > attr::MAX_VALUE)
        {
            return Err(Error::TooLong);
        }
        p.set_code(self.code);
        p.set_identifier(self.identifier);
        p.set_length(len as u16);
        p.set_authenticator(&self.authenticator);
        let mut at = field::ATTRIBUTES;
        let b = p.b();
        for a in &self.attributes {
            b[at] = a.ty;
            b[at + 1] = (2 + a.value.len()) as u8;
            b[at + 2..at + 2 + a.value.len()].copy_from_slice(&a.value);
            at += 2 + a.value.len();
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]))?;
        Ok(v)
    }

    /// The first attribute of type `ty`.
    pub fn attr(&self, ty: u8) -> Option<&AttrRepr> {
        self.attributes.iter().find(|a| a.ty == ty)
    }

    pub fn push(&mut self, a: AttrRepr) -> &mut Self {
        self.attributes.push(a);
        self
    }
}

pub(crate) fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tshark_tests;
