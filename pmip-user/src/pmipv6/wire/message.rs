//! PMIPv6 messages carried in the Mobility Header: Proxy Binding Update and
//! Acknowledgement (RFC 6275 §6.1.7–8, RFC 5213 §8.1–8.2), Heartbeat
//! (RFC 5847 §5.1), Binding Revocation Indication and Acknowledgement
//! (RFC 5846 §6.1), and Binding Error (RFC 6275 §6.1.9, our answer to an
//! unknown MH type).
//!
//! Every message has a fixed part of six octets after the checksum, so its
//! options start at offset 12 of the Mobility Header (Binding Error: 24).
use std::net::Ipv6Addr;

use super::header::{check_generic, MhPacket, MhType, DATA_OFFSET};
use super::option::{
    check_emittable, emit_options, layout_end, parse_options, MobilityOption, OptionsExt,
};
use super::{Error, Result};

/// Largest Mobility Header: Header Len is one octet of 8-octet units.
pub(crate) const MAX_LEN: usize = 256 * 8;
/// Options start here for BU, BA, Heartbeat, BRI, BRA.
pub(crate) const OPTIONS_OFFSET: usize = 12;
/// Options start here for Binding Error (status, reserved, home address).
pub(crate) const BE_OPTIONS_OFFSET: usize = 24;

/// Binding Update flags, as the 16-bit word after the sequence number.
pub mod bu_flags {
    pub const A: u16 = 0x8000;
    pub const H: u16 = 0x4000;
    pub const L: u16 = 0x2000;
    pub const K: u16 = 0x1000;
    pub const M: u16 = 0x0800;
    pub const R: u16 = 0x0400;
    /// Proxy registration (RFC 5213 §8.1).
    pub const P: u16 = 0x0200;
    pub const F: u16 = 0x0100;
    /// TLV-header format (RFC 5555) — not the GRE flag.
    pub const T: u16 = 0x0080;
}

/// Binding Acknowledgement flags (the octet after Status).
pub mod ba_flags {
    pub const K: u8 = 0x80;
    pub const R: u8 = 0x40;
    /// Proxy registration (RFC 5213 §8.2).
    pub const P: u8 = 0x20;
    pub const T: u8 = 0x10;
}

/// Binding Revocation flags (RFC 5846 §6.1, §6.2): the BRI and the BRA
/// carry the same three bits, P (proxy binding), V (IPv4 HoA binding only)
/// and G (global), and a BRA sets each one that was set in the BRI it
/// answers. (Wireshark's MIPv6 dissector reads both messages so.)
pub mod br_flags {
    pub const P: u16 = 0x8000;
    pub const V: u16 = 0x4000;
    pub const G: u16 = 0x2000;
}

/// Binding Acknowledgement status (RFC 6275 §6.1.8, RFC 5213 §8.9, RFC 5844,
/// RFC 5845). A newtype rather than an enum: the code space is large and
/// shared by many RFCs, and every value must round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaStatus(pub u8);

impl BaStatus {
    pub const ACCEPTED: Self = Self(0);
    /// RFC 5845 §6.4: accepted, GRE encapsulation not needed for this session.
    pub(crate) const GRE_KEY_OPTION_NOT_REQUIRED: Self = Self(2);
    /// RFC 5845 §6.4: accepted with GRE, but not the TLV-header format the
    /// PBU's T flag asked for.
    pub(crate) const GRE_TUNNELING_BUT_TLV_HEADER_NOT_SUPPORTED: Self = Self(3);
    pub const UNSPECIFIED: Self = Self(128);
    pub const ADMIN_PROHIBITED: Self = Self(129);
    pub(crate) const INSUFFICIENT_RESOURCES: Self = Self(130);
    /// RFC 6275 §6.1.8: the sequence-number scheme's out-of-order answer.
    pub(crate) const SEQUENCE_NUMBER_OUT_OF_WINDOW: Self = Self(135);
    pub const PROXY_REG_NOT_ENABLED: Self = Self(152);
    pub(crate) const NOT_LMA_FOR_THIS_MOBILE_NODE: Self = Self(153);
    pub(crate) const MAG_NOT_AUTHORIZED_FOR_PROXY_REG: Self = Self(154);
    pub(crate) const NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX: Self = Self(155);
    pub const TIMESTAMP_MISMATCH: Self = Self(156);
    pub(crate) const TIMESTAMP_LOWER_THAN_PREV_ACCEPTED: Self = Self(157);
    pub(crate) const MISSING_HOME_NETWORK_PREFIX_OPTION: Self = Self(158);
    pub(crate) const BCE_PBU_PREFIX_SET_DO_NOT_MATCH: Self = Self(159);
    pub(crate) const MISSING_MN_IDENTIFIER_OPTION: Self = Self(160);
    pub(crate) const MISSING_HANDOFF_INDICATOR_OPTION: Self = Self(161);
    pub(crate) const MISSING_ACCESS_TECH_TYPE_OPTION: Self = Self(162);
    pub(crate) const GRE_KEY_OPTION_REQUIRED: Self = Self(163);
    pub(crate) const NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE: Self = Self(170);
    pub(crate) const NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS: Self = Self(171);
    pub(crate) const NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE: Self = Self(172);
    pub(crate) const MULTIPLE_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_SUPPORTED: Self = Self(173);

    /// RFC 6275 §6.1.8: values below 128 mean the update was accepted.
    pub fn is_accepted(self) -> bool {
        self.0 < 128
    }
}

/// Binding Revocation triggers (RFC 5846 §6.1.2).
pub mod revocation_trigger {
    pub const UNSPECIFIED: u8 = 0;
    pub const ADMINISTRATIVE: u8 = 1;
    pub const INTER_MAG_HANDOVER_SAME_ATT: u8 = 2;
    pub(crate) const INTER_MAG_HANDOVER_DIFFERENT_ATT: u8 = 3;
    pub(crate) const INTER_MAG_HANDOVER_UNKNOWN: u8 = 4;
    pub(crate) const USER_INITIATED_SESSION_TERMINATION: u8 = 5;
    pub(crate) const ACCESS_NETWORK_SESSION_TERMINATION: u8 = 6;
    pub const POSSIBLE_OUT_OF_SYNC_BCE_STATE: u8 = 7;
    pub const PER_PEER_POLICY: u8 = 128;
    pub const REVOKING_NODE_LOCAL_POLICY: u8 = 129;

    /// RFC 5846 §6.2.1: a BRI whose trigger we do not know is refused with
    /// "Revocation Trigger NOT Supported" (133); one whose trigger does
    /// not fit its intent — a per-MN trigger (< 128) with G, a global one
    /// without — with "Revocation Function NOT Supported" (134). The
    /// values for testing (250–255, §5.1) fit either. `None`: acceptable.
    pub fn refusal(trigger: u8, global: bool) -> Option<u8> {
        use super::bra_status::{FUNCTION_NOT_SUPPORTED, UNKNOWN_TRIGGER};
        match trigger {
            UNSPECIFIED..=POSSIBLE_OUT_OF_SYNC_BCE_STATE if global => Some(FUNCTION_NOT_SUPPORTED),
            UNSPECIFIED..=POSSIBLE_OUT_OF_SYNC_BCE_STATE => None,
            PER_PEER_POLICY | REVOKING_NODE_LOCAL_POLICY if !global => Some(FUNCTION_NOT_SUPPORTED),
            PER_PEER_POLICY | REVOKING_NODE_LOCAL_POLICY | 250..=255 => None,
            _ => Some(UNKNOWN_TRIGGER),
        }
    }
}

/// Binding Revocation Acknowledgement status (RFC 5846 §6.2).
pub mod bra_status {
    pub const SUCCESS: u8 = 0;
    pub const PARTIAL_SUCCESS: u8 = 1;
    pub(crate) const BINDING_DOES_NOT_EXIST: u8 = 128;
    pub const IPV4_HOA_OPTION_REQUIRED: u8 = 129;
    pub(crate) const GLOBAL_REVOCATION_NOT_AUTHORIZED: u8 = 130;
    pub(crate) const MN_IDENTITY_REQUIRED: u8 = 131;
    pub const MN_ATTACHED: u8 = 132;
    pub const UNKNOWN_TRIGGER: u8 = 133;
    pub const FUNCTION_NOT_SUPPORTED: u8 = 134;
    pub const PBR_NOT_SUPPORTED: u8 = 135;
}

/// Binding Revocation Type octet (RFC 5846 §6.1).
const BR_TYPE_BRI: u8 = 1;
const BR_TYPE_BRA: u8 = 2;

/// Binding Error status (RFC 6275 §6.1.9).
pub mod be_status {
    pub const UNKNOWN_BINDING_FOR_HOA: u8 = 1;
    pub const UNRECOGNIZED_MH_TYPE: u8 = 2;
}

/// Zero-copy view of the six-octet fixed part shared (in layout, not meaning)
/// by BU, BA, Heartbeat, BRI and BRA: offsets 6..12 of the Mobility Header.
#[derive(Debug, Clone)]
pub struct FixedPart<T: AsRef<[u8]>> {
    mh: MhPacket<T>,
}

mod field {
    // Offsets from the start of the Mobility Header.
    pub const BU_SEQ: usize = 6;
    pub const BU_FLAGS: usize = 8;
    pub const BU_LIFETIME: usize = 10;
    pub const BA_STATUS: usize = 6;
    pub const BA_FLAGS: usize = 7;
    pub const BA_SEQ: usize = 8;
    pub const BA_LIFETIME: usize = 10;
    pub const HB_FLAGS: usize = 6;
    pub const HB_SEQ: usize = 8;
    pub const BR_TYPE: usize = 6;
    pub const BR_TRIGGER_OR_STATUS: usize = 7;
    pub const BR_SEQ: usize = 8;
    pub const BR_FLAGS: usize = 10;
    pub const BE_STATUS: usize = 6;
    pub const BE_HOA: usize = 8;
}

impl<T: AsRef<[u8]>> FixedPart<T> {
    /// Wraps a Mobility Header whose length covers the fixed part.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let mh = MhPacket::new_checked(buffer)?;
        if mh.total_len() < OPTIONS_OFFSET {
            return Err(Error::Truncated);
        }
        Ok(FixedPart { mh })
    }
    fn b(&self) -> &[u8] {
        self.mh.header_bytes()
    }
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.b()[at], self.b()[at + 1]])
    }
    pub fn mh(&self) -> &MhPacket<T> {
        &self.mh
    }
    pub(crate) fn bu_seq(&self) -> u16 {
        self.u16_at(field::BU_SEQ)
    }
    pub fn bu_flags(&self) -> u16 {
        self.u16_at(field::BU_FLAGS)
    }
    pub(crate) fn bu_lifetime(&self) -> u16 {
        self.u16_at(field::BU_LIFETIME)
    }
    pub(crate) fn ba_status(&self) -> BaStatus {
        BaStatus(self.b()[field::BA_STATUS])
    }
    pub fn ba_flags(&self) -> u8 {
        self.b()[field::BA_FLAGS]
    }
    pub(crate) fn ba_seq(&self) -> u16 {
        self.u16_at(field::BA_SEQ)
    }
    pub(crate) fn ba_lifetime(&self) -> u16 {
        self.u16_at(field::BA_LIFETIME)
    }
    pub(crate) fn hb_flags(&self) -> u16 {
        self.u16_at(field::HB_FLAGS)
    }
    pub(crate) fn hb_seq(&self) -> u32 {
        let b = &self.b()[field::HB_SEQ..field::HB_SEQ + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub(crate) fn br_type(&self) -> u8 {
        self.b()[field::BR_TYPE]
    }
    pub(crate) fn br_trigger_or_status(&self) -> u8 {
        self.b()[field::BR_TRIGGER_OR_STATUS]
    }
    pub(crate) fn br_seq(&self) -> u16 {
        self.u16_at(field::BR_SEQ)
    }
    pub fn br_flags(&self) -> u16 {
        self.u16_at(field::BR_FLAGS)
    }
    pub fn options(&self) -> &[u8] {
        &self.b()[OPTIONS_OFFSET..]
    }
}

/// Proxy Binding Update (a Binding Update with P set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingUpdate {
    pub seq: u16,
    /// See [`bu_flags`].
    pub flags: u16,
    /// In units of 4 seconds (RFC 6275 §6.1.7); 0 = deregistration.
    pub lifetime: u16,
    pub options: Vec<MobilityOption>,
}

/// Proxy Binding Acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingAck {
    pub status: BaStatus,
    /// See [`ba_flags`].
    pub flags: u8,
    pub seq: u16,
    /// In units of 4 seconds.
    pub lifetime: u16,
    pub options: Vec<MobilityOption>,
}

/// Heartbeat (RFC 5847 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// U: sent unsolicited.
    pub unsolicited: bool,
    /// R: this is a response.
    pub response: bool,
    pub seq: u32,
    pub options: Vec<MobilityOption>,
}

impl Heartbeat {
    /// The response to request `seq` (RFC 5847 §3: the same sequence
    /// number), with our restart counter (§5.2).
    pub fn response(seq: u32, restart_counter: u32) -> Message {
        Message::Heartbeat(Heartbeat {
            unsolicited: false,
            response: true,
            seq,
            options: vec![MobilityOption::RestartCounter(restart_counter)],
        })
    }

    /// An unsolicited response (U and R, RFC 5847 §3.3) announcing our
    /// Restart Counter after a restart that lost state (§3.2); its
    /// sequence number "is ignored".
    pub fn unsolicited(restart_counter: u32) -> Message {
        Message::Heartbeat(Heartbeat {
            unsolicited: true,
            response: true,
            seq: 0,
            options: vec![MobilityOption::RestartCounter(restart_counter)],
        })
    }
}

/// Binding Revocation Indication (RFC 5846 §6.1, B.R. Type 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationIndication {
    /// See [`revocation_trigger`].
    pub trigger: u8,
    pub seq: u16,
    /// See [`br_flags`] (P, V, G).
    pub flags: u16,
    pub options: Vec<MobilityOption>,
}

/// Binding Revocation Acknowledgement (RFC 5846 §6.2, B.R. Type 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationAck {
    /// See [`bra_status`].
    pub status: u8,
    pub seq: u16,
    /// See [`br_flags`] (P, G).
    pub flags: u16,
    pub options: Vec<MobilityOption>,
}

impl RevocationAck {
    /// The acknowledgement of `bri` (RFC 5846 §6.2, §8.2, §9.1.2): its
    /// sequence number, its P, V and G flags, and the MN-ID it named.
    pub fn answering(bri: &RevocationIndication, status: u8) -> Self {
        let options = (bri.mn_id().into_iter())
            .map(|id| MobilityOption::MnId {
                subtype: super::option::MN_ID_SUBTYPE_NAI,
                id: id.to_vec(),
            })
            .collect();
        RevocationAck {
            status,
            seq: bri.seq,
            flags: bri.flags & (br_flags::P | br_flags::V | br_flags::G),
            options,
        }
    }
}

/// Binding Error (RFC 6275 §6.1.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingError {
    /// See [`be_status`].
    pub status: u8,
    pub home_address: Ipv6Addr,
    pub options: Vec<MobilityOption>,
}

/// Everything this crate parses and emits in a Mobility Header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    BindingUpdate(BindingUpdate),
    BindingAck(BindingAck),
    Heartbeat(Heartbeat),
    RevocationIndication(RevocationIndication),
    RevocationAck(RevocationAck),
    BindingError(BindingError),
}

/// How the checksum field is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// IPv6 transport: RFC 6275 §6.1.1 checksum over the pseudo-header.
    Ipv6 { src: Ipv6Addr, dst: Ipv6Addr },
    /// IPv4/UDP transport (RFC 5844 §4): the field is zero on emit and not
    /// checked on receive (the UDP checksum covers the message).
    None,
}

impl Message {
    pub fn mh_type(&self) -> MhType {
        match self {
            Message::BindingUpdate(_) => MhType::BindingUpdate,
            Message::BindingAck(_) => MhType::BindingAck,
            Message::Heartbeat(_) => MhType::Heartbeat,
            Message::RevocationIndication(_) | Message::RevocationAck(_) => {
                MhType::BindingRevocation
            }
            Message::BindingError(_) => MhType::BindingError,
        }
    }

    pub fn options(&self) -> &[MobilityOption] {
        match self {
            Message::BindingUpdate(m) => &m.options,
            Message::BindingAck(m) => &m.options,
            Message::Heartbeat(m) => &m.options,
            Message::RevocationIndication(m) => &m.options,
            Message::RevocationAck(m) => &m.options,
            Message::BindingError(m) => &m.options,
        }
    }

    fn options_offset(&self) -> usize {
        match self {
            Message::BindingError(_) => BE_OPTIONS_OFFSET,
            _ => OPTIONS_OFFSET,
        }
    }

    /// Parses a whole Mobility Header. With [`Checksum::Ipv6`] a wrong
    /// checksum is an error; unknown MH types give [`Error::UnknownType`]
    /// (RFC 6275 §9.2: answer with a Binding Error, status 2).
    pub fn parse(bytes: &[u8], checksum: Checksum) -> Result<Message> {
        let mh = MhPacket::new_checked(bytes)?;
        if let Checksum::Ipv6 { src, dst } = checksum {
            if !mh.verify_checksum(&src, &dst) {
                return Err(Error::Checksum);
            }
        }
        let ty = mh.mh_type();
        let min = match ty {
            MhType::BindingError => BE_OPTIONS_OFFSET,
            MhType::Unknown(t) => {
                check_generic(&mh, DATA_OFFSET)?;
                return Err(Error::UnknownType(t));
            }
            _ => OPTIONS_OFFSET,
        };
        check_generic(&mh, min)?;
        let bytes = mh.header_bytes();
        let fixed = FixedPart::new_checked(bytes)?;
        Ok(match ty {
            MhType::BindingUpdate => Message::BindingUpdate(BindingUpdate {
                seq: fixed.bu_seq(),
                flags: fixed.bu_flags(),
                lifetime: fixed.bu_lifetime(),
                options: parse_options(fixed.options())?,
            }),
            MhType::BindingAck => Message::BindingAck(BindingAck {
                status: fixed.ba_status(),
                flags: fixed.ba_flags(),
                seq: fixed.ba_seq(),
                lifetime: fixed.ba_lifetime(),
                options: parse_options(fixed.options())?,
            }),
            MhType::Heartbeat => {
                let f = fixed.hb_flags();
                Message::Heartbeat(Heartbeat {
                    unsolicited: f & 0x0002 != 0,
                    response: f & 0x0001 != 0,
                    seq: fixed.hb_seq(),
                    options: parse_options(fixed.options())?,
                })
            }
            MhType::BindingRevocation => match fixed.br_type() {
                BR_TYPE_BRI => Message::RevocationIndication(RevocationIndication {
                    trigger: fixed.br_trigger_or_status(),
                    seq: fixed.br_seq(),
                    flags: fixed.br_flags(),
                    options: parse_options(fixed.options())?,
                }),
                BR_TYPE_BRA => Message::RevocationAck(RevocationAck {
                    status: fixed.br_trigger_or_status(),
                    seq: fixed.br_seq(),
                    flags: fixed.br_flags(),
                    options: parse_options(fixed.options())?,
                }),
                _ => return Err(Error::Malformed("unknown binding revocation type")),
            },
            MhType::BindingError => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&bytes[field::BE_HOA..field::BE_HOA + 16]);
                Message::BindingError(BindingError {
                    status: bytes[field::BE_STATUS],
                    home_address: Ipv6Addr::from(a),
                    options: parse_options(&bytes[BE_OPTIONS_OFFSET..])?,
                })
            }
            MhType::Unknown(t) => return Err(Error::UnknownType(t)),
        })
    }

    /// Length of the emitted Mobility Header (a multiple of 8).
    pub fn buffer_len(&self) -> usize {
        layout_end(self.options(), self.options_offset())
    }

    /// Emits into `buf` and returns the length written. Fails when an option
    /// does not fit its length field, the message exceeds 2048 octets, or
    /// `buf` is too short.
    pub fn emit(&self, buf: &mut [u8], checksum: Checksum) -> Result<usize> {
        check_emittable(self.options())?;
        let len = self.buffer_len();
        if len > MAX_LEN {
            return Err(Error::Malformed("message longer than 2048 octets"));
        }
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let buf = &mut buf[..len];
        buf.fill(0);
        let mut mh = MhPacket::new_unchecked(&mut *buf);
        mh.init(self.mh_type(), len);
        let b = mh.into_inner();
        match self {
            Message::BindingUpdate(m) => {
                b[field::BU_SEQ..][..2].copy_from_slice(&m.seq.to_be_bytes());
                b[field::BU_FLAGS..][..2].copy_from_slice(&m.flags.to_be_bytes());
                b[field::BU_LIFETIME..][..2].copy_from_slice(&m.lifetime.to_be_bytes());
            }
            Message::BindingAck(m) => {
                b[field::BA_STATUS] = m.status.0;
                b[field::BA_FLAGS] = m.flags;
                b[field::BA_SEQ..][..2].copy_from_slice(&m.seq.to_be_bytes());
                b[field::BA_LIFETIME..][..2].copy_from_slice(&m.lifetime.to_be_bytes());
            }
            Message::Heartbeat(m) => {
                let f = (u16::from(m.unsolicited) << 1) | u16::from(m.response);
                b[field::HB_FLAGS..][..2].copy_from_slice(&f.to_be_bytes());
                b[field::HB_SEQ..][..4].copy_from_slice(&m.seq.to_be_bytes());
            }
            Message::RevocationIndication(m) => {
                b[field::BR_TYPE] = BR_TYPE_BRI;
                b[field::BR_TRIGGER_OR_STATUS] = m.trigger;
                b[field::BR_SEQ..][..2].copy_from_slice(&m.seq.to_be_bytes());
                b[field::BR_FLAGS..][..2].copy_from_slice(&m.flags.to_be_bytes());
            }
            Message::RevocationAck(m) => {
                b[field::BR_TYPE] = BR_TYPE_BRA;
                b[field::BR_TRIGGER_OR_STATUS] = m.status;
                b[field::BR_SEQ..][..2].copy_from_slice(&m.seq.to_be_bytes());
                b[field::BR_FLAGS..][..2].copy_from_slice(&m.flags.to_be_bytes());
            }
            Message::BindingError(m) => {
                b[field::BE_STATUS] = m.status;
                b[field::BE_HOA..][..16].copy_from_slice(&m.home_address.octets());
            }
        }
        let end = emit_options(self.options(), b, self.options_offset());
        debug_assert_eq!(end, len);
        if let Checksum::Ipv6 { src, dst } = checksum {
            MhPacket::new_unchecked(&mut *b).fill_checksum(&src, &dst);
        }
        Ok(len)
    }

    /// Emits into a new vector.
    pub fn to_vec(&self, checksum: Checksum) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut v, checksum)?;
        v.truncate(n);
        Ok(v)
    }
}

impl OptionsExt for BindingUpdate {
    fn opts(&self) -> &[MobilityOption] {
        &self.options
    }
}
impl OptionsExt for BindingAck {
    fn opts(&self) -> &[MobilityOption] {
        &self.options
    }
}
impl OptionsExt for Heartbeat {
    fn opts(&self) -> &[MobilityOption] {
        &self.options
    }
}
impl OptionsExt for RevocationIndication {
    fn opts(&self) -> &[MobilityOption] {
        &self.options
    }
}
impl OptionsExt for RevocationAck {
    fn opts(&self) -> &[MobilityOption] {
        &self.options
    }
}

impl BindingUpdate {
    pub(crate) fn is_proxy(&self) -> bool {
        self.flags & bu_flags::P != 0
    }
    pub(crate) fn lifetime_secs(&self) -> u32 {
        u32::from(self.lifetime) * 4
    }
}

impl BindingAck {
    pub(crate) fn lifetime_secs(&self) -> u32 {
        u32::from(self.lifetime) * 4
    }
}
