//! PMIPv6 wire formats: the Mobility Header with its checksum, the messages
//! (PBU, PBA, Heartbeat, BRI, BRA, Binding Error) and the mobility options.
//! No I/O: parse from bytes, emit into bytes.
//!
//! - `header`  — Mobility Header view and checksum (RFC 6275 §6.1).
//! - `option`  — mobility options, TLV iterator, alignment with Pad1/PadN.
//! - `message` — message fixed parts and the [`Message`] repr.
//! - `redirect` — RFC 6463 runtime LMA assignment options (Redirect-Capability,
//!   Redirect, Load Information).
pub mod header;
pub mod message;
pub mod option;
pub mod redirect;

#[cfg(test)]
mod tests;

pub use header::{MhPacket, MhType};
pub use message::{
    ba_flags, be_status, br_flags, bra_status, bu_flags, revocation_trigger, BaStatus, BindingAck,
    BindingError, BindingUpdate, Checksum, Heartbeat, Message, RevocationAck, RevocationIndication,
};
pub use option::{AccessTechType, HandoffIndicator, MobilityOption, OptionIter, OptionsExt};

/// IPv6 next header / IP protocol number of the Mobility Header.
pub(crate) const IPPROTO_MH: u8 = 135;
/// "No next header": the only valid Payload Proto (RFC 6275 §6.1.1).
pub(crate) const IPPROTO_NONE: u8 = 59;
/// UDP port for PMIPv6 over IPv4 transport (RFC 5844 §4, IANA "pmip6-cntl").
pub const UDP_PORT: u16 = 5436;

/// Why a Mobility Header could not be parsed or emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its fixed part or than its Header Len announces.
    Truncated,
    /// A field holds a value the RFCs do not allow.
    Malformed(&'static str),
    /// RFC 6275 §6.1.1 checksum mismatch.
    Checksum,
    /// MH type we do not implement.
    UnknownType(u8),
    /// The output buffer is shorter than `buffer_len()`.
    BufferTooSmall,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated mobility header"),
            Error::Malformed(w) => write!(f, "malformed mobility header: {w}"),
            Error::Checksum => write!(f, "mobility header checksum mismatch"),
            Error::UnknownType(t) => write!(f, "unknown mobility header type {t}"),
            Error::BufferTooSmall => write!(f, "output buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
