//! Mobile IPv4 registration wire formats (UDP 434) as used by Proxy Mobile IPv4.
//!
//! - [`registration`]: Registration Request (type 1) and Reply (type 3), RFC 3344 §3.3/§3.4.
//! - [`revocation`]: Registration Revocation (7) and Acknowledgement (15), RFC 3543 §3.3/§3.4.
//! - [`ext`]: the extensions that follow the fixed part (NAI, authentication, PMIPv4, GRE key, ...).
//!
//! Every message is a zero-copy `Packet<T: AsRef<[u8]>>` view (`new_checked` validates the
//! fixed part; no accessor panics afterwards) plus an owned `Repr` with `parse`/`emit`/`buffer_len`.
use core::fmt;

pub mod ext;
pub mod registration;
pub mod revocation;

pub use ext::{AccessTech, AuthKind, AuthMethod, ExtIter, ExtRepr, RawExt};
pub use registration::{
    RegistrationReply, RegistrationReplyRepr, RegistrationRequest, RegistrationRequestRepr,
    RrqFlags,
};
pub use revocation::{Revocation, RevocationAck, RevocationAckRepr, RevocationRepr};

/// UDP port of Mobile IP registration (RFC 3344 §3.1).
pub const PORT: u16 = 434;

/// Why a message could not be parsed. Never a panic: every parser returns one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the fixed part or inside an extension header.
    Truncated,
    /// An extension's length field runs past the end of the message.
    Overrun { ext_type: u8, offset: usize },
    /// An extension's length is impossible for its type (e.g. GRE key not 6).
    BadLength { ext_type: u8, len: usize },
    /// The message type octet is not the one this view expects.
    WrongType(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "message truncated"),
            Error::Overrun { ext_type, offset } => {
                write!(
                    f,
                    "extension {ext_type} at offset {offset} overruns the message"
                )
            }
            Error::BadLength { ext_type, len } => {
                write!(f, "extension {ext_type} has impossible length {len}")
            }
            Error::WrongType(t) => write!(f, "unexpected message type {t}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Message type octet (IANA "Mobile IPv4 message types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MessageType {
    RegistrationRequest,
    RegistrationReply,
    Revocation,
    RevocationAck,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::RegistrationRequest,
            3 => Self::RegistrationReply,
            7 => Self::Revocation,
            15 => Self::RevocationAck,
            x => Self::Unknown(x),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::RegistrationRequest => 1,
            MessageType::RegistrationReply => 3,
            MessageType::Revocation => 7,
            MessageType::RevocationAck => 15,
            MessageType::Unknown(x) => x,
        }
    }
}

/// Registration Reply code (RFC 3344 §3.4, draft-leung-mip4-proxy-mode §12.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    Accepted,
    AcceptedNoSimultaneous,
    /// 65: FA administratively prohibited.
    FaAdminProhibited,
    /// 70: FA poorly formed request.
    FaPoorlyFormed,
    /// 78: FA registration timeout.
    FaTimeout,
    /// 128: HA reason unspecified.
    Unspecified,
    /// 129: administratively prohibited.
    AdminProhibited,
    /// 130: insufficient resources.
    InsufficientResources,
    /// 131: mobile node failed authentication.
    MnFailedAuth,
    /// 132: foreign agent (here: the PMA) failed authentication.
    FaFailedAuth,
    /// 133: registration Identification mismatch.
    IdentMismatch,
    /// 134: poorly formed request.
    PoorlyFormed,
    /// 136: unknown home agent address.
    UnknownHa,
    /// 139: requested encapsulation unavailable.
    EncapUnavailable,
    /// 143: REDIRECT-HA-REQ, re-register with the Redirected HA (RFC 4433 §7).
    RedirectHa,
    /// 149: PMIP_UNSUPPORTED (draft §8.1).
    PmipUnsupported,
    /// 150: PMIP_DISALLOWED (draft §8.1).
    PmipDisallowed,
    Unknown(u8),
}

impl ReplyCode {
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted | Self::AcceptedNoSimultaneous)
    }
}

impl From<u8> for ReplyCode {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Accepted,
            1 => Self::AcceptedNoSimultaneous,
            65 => Self::FaAdminProhibited,
            70 => Self::FaPoorlyFormed,
            78 => Self::FaTimeout,
            128 => Self::Unspecified,
            129 => Self::AdminProhibited,
            130 => Self::InsufficientResources,
            131 => Self::MnFailedAuth,
            132 => Self::FaFailedAuth,
            133 => Self::IdentMismatch,
            134 => Self::PoorlyFormed,
            136 => Self::UnknownHa,
            139 => Self::EncapUnavailable,
            143 => Self::RedirectHa,
            149 => Self::PmipUnsupported,
            150 => Self::PmipDisallowed,
            x => Self::Unknown(x),
        }
    }
}

impl From<ReplyCode> for u8 {
    fn from(v: ReplyCode) -> u8 {
        match v {
            ReplyCode::Accepted => 0,
            ReplyCode::AcceptedNoSimultaneous => 1,
            ReplyCode::FaAdminProhibited => 65,
            ReplyCode::FaPoorlyFormed => 70,
            ReplyCode::FaTimeout => 78,
            ReplyCode::Unspecified => 128,
            ReplyCode::AdminProhibited => 129,
            ReplyCode::InsufficientResources => 130,
            ReplyCode::MnFailedAuth => 131,
            ReplyCode::FaFailedAuth => 132,
            ReplyCode::IdentMismatch => 133,
            ReplyCode::PoorlyFormed => 134,
            ReplyCode::UnknownHa => 136,
            ReplyCode::EncapUnavailable => 139,
            ReplyCode::RedirectHa => 143,
            ReplyCode::PmipUnsupported => 149,
            ReplyCode::PmipDisallowed => 150,
            ReplyCode::Unknown(x) => x,
        }
    }
}

/// Any message on UDP 434, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Request(RegistrationRequestRepr),
    Reply(RegistrationReplyRepr),
    Revocation(RevocationRepr),
    RevocationAck(RevocationAckRepr),
}

impl Message {
    /// Parses any message; the message type octet selects the format.
    pub fn parse(buf: &[u8]) -> Result<Message> {
        let ty = *buf.first().ok_or(Error::Truncated)?;
        Ok(match MessageType::from(ty) {
            MessageType::RegistrationRequest => Message::Request(RegistrationRequestRepr::parse(
                &RegistrationRequest::new_checked(buf)?,
            )?),
            MessageType::RegistrationReply => Message::Reply(RegistrationReplyRepr::parse(
                &RegistrationReply::new_checked(buf)?,
            )?),
            MessageType::Revocation => {
                Message::Revocation(RevocationRepr::parse(&Revocation::new_checked(buf)?)?)
            }
            MessageType::RevocationAck => {
                Message::RevocationAck(RevocationAckRepr::parse(&RevocationAck::new_checked(buf)?)?)
            }
            MessageType::Unknown(t) => return Err(Error::WrongType(t)),
        })
    }

    /// The message's extensions.
    pub fn extensions(&self) -> &[ExtRepr] {
        match self {
            Message::Request(r) => &r.extensions,
            Message::Reply(r) => &r.extensions,
            Message::Revocation(r) => &r.extensions,
            Message::RevocationAck(r) => &r.extensions,
        }
    }

    /// Emits into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Reply(r) => r.to_bytes(),
            Message::Revocation(r) => r.to_bytes(),
            Message::RevocationAck(r) => r.to_bytes(),
        }
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}
pub(crate) fn ip(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_code_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(ReplyCode::from(v)), v);
        }
        assert_eq!(ReplyCode::from(150), ReplyCode::PmipDisallowed);
        assert!(ReplyCode::from(1).is_accepted());
        assert!(!ReplyCode::from(64).is_accepted());
    }

    #[test]
    fn message_type_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(MessageType::from(v)), v);
        }
    }

    #[test]
    fn message_parse_never_panics_on_short_input() {
        for t in [1u8, 3, 7, 15, 99] {
            for len in 0..40 {
                let mut b = vec![0u8; len];
                if len > 0 {
                    b[0] = t;
                }
                let _ = Message::parse(&b);
            }
        }
        assert_eq!(Message::parse(&[]), Err(Error::Truncated));
        assert_eq!(Message::parse(&[99, 0, 0, 0]), Err(Error::WrongType(99)));
    }
}

#[cfg(test)]
mod tshark_tests;
