//! Mobility options (RFC 6275 §6.2 and the PMIPv6 RFCs): a zero-copy TLV
//! iterator that yields unknown types, a typed [`MobilityOption`], and the
//! emitter that places each option on its alignment with Pad1/PadN.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Error, Result};

/// Option type numbers (IANA "Mobility Options").
pub mod kind {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const MN_ID: u8 = 8;
    pub(crate) const SERVICE_SELECTION: u8 = 20;
    pub const HNP: u8 = 22;
    pub(crate) const HANDOFF_INDICATOR: u8 = 23;
    pub(crate) const ACCESS_TECH_TYPE: u8 = 24;
    pub(crate) const MN_LL_ID: u8 = 25;
    pub(crate) const LINK_LOCAL_ADDR: u8 = 26;
    pub const TIMESTAMP: u8 = 27;
    pub const RESTART_COUNTER: u8 = 28;
    pub(crate) const IPV4_COA: u8 = 32;
    pub const GRE_KEY: u8 = 33;
    pub(crate) const IPV4_HOA_REQUEST: u8 = 36;
    pub(crate) const IPV4_HOA_REPLY: u8 = 37;
    pub(crate) const IPV4_DEFAULT_ROUTER: u8 = 38;
    pub(crate) const IPV4_DHCP_SUPPORT_MODE: u8 = 39;
}

/// MN Identifier subtype 1: Network Access Identifier (RFC 4283 §3).
pub const MN_ID_SUBTYPE_NAI: u8 = 1;

/// Handoff Indicator values (RFC 5213 §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandoffIndicator {
    AttachmentOverNewInterface,
    HandoffBetweenInterfaces,
    HandoffBetweenMagsSameInterface,
    HandoffStateUnknown,
    HandoffStateNotChanged,
    Unknown(u8),
}

impl From<u8> for HandoffIndicator {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::AttachmentOverNewInterface,
            2 => Self::HandoffBetweenInterfaces,
            3 => Self::HandoffBetweenMagsSameInterface,
            4 => Self::HandoffStateUnknown,
            5 => Self::HandoffStateNotChanged,
            o => Self::Unknown(o),
        }
    }
}

impl From<HandoffIndicator> for u8 {
    fn from(v: HandoffIndicator) -> u8 {
        match v {
            HandoffIndicator::AttachmentOverNewInterface => 1,
            HandoffIndicator::HandoffBetweenInterfaces => 2,
            HandoffIndicator::HandoffBetweenMagsSameInterface => 3,
            HandoffIndicator::HandoffStateUnknown => 4,
            HandoffIndicator::HandoffStateNotChanged => 5,
            HandoffIndicator::Unknown(o) => o,
        }
    }
}

/// Access Technology Type values (RFC 5213 §8.5 and the IANA registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessTechType {
    Virtual,
    Ppp,
    Ieee8023,
    Ieee80211,
    Ieee80216e,
    Geran,
    Utran,
    Eutran,
    Ehrpd,
    Hrpd,
    OneXRtt,
    Umb,
    Unknown(u8),
}

impl From<u8> for AccessTechType {
    fn from(v: u8) -> Self {
        use AccessTechType::*;
        match v {
            1 => Virtual,
            2 => Ppp,
            3 => Ieee8023,
            4 => Ieee80211,
            5 => Ieee80216e,
            6 => Geran,
            7 => Utran,
            8 => Eutran,
            9 => Ehrpd,
            10 => Hrpd,
            11 => OneXRtt,
            12 => Umb,
            o => Unknown(o),
        }
    }
}

impl From<AccessTechType> for u8 {
    fn from(v: AccessTechType) -> u8 {
        use AccessTechType::*;
        match v {
            Virtual => 1,
            Ppp => 2,
            Ieee8023 => 3,
            Ieee80211 => 4,
            Ieee80216e => 5,
            Geran => 6,
            Utran => 7,
            Eutran => 8,
            Ehrpd => 9,
            Hrpd => 10,
            OneXRtt => 11,
            Umb => 12,
            Unknown(o) => o,
        }
    }
}

/// IPv4 Home Address Reply status (RFC 5844 §3.3.2; all of its values, the
/// ones we do not send included).
pub mod hoa_status {
    pub const SUCCESS: u8 = 0;
    pub(crate) const FAILURE_UNSPECIFIED: u8 = 128;
    pub(crate) const ADMIN_PROHIBITED: u8 = 129;
    pub const INCORRECT_IPV4_HOA: u8 = 130;
    pub const INVALID_IPV4_ADDRESS: u8 = 131;
    pub const DYNAMIC_IPV4_HOA_NOT_AVAILABLE: u8 = 132;
}

/// Zero-copy view of one option's TLV (not valid for Pad1, which has no length).
#[derive(Debug, Clone)]
pub struct OptionPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub const TYPE: usize = 0;
    pub const LENGTH: usize = 1;
    pub const DATA: usize = 2;
}

impl<T: AsRef<[u8]>> OptionPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        OptionPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Type and length must be present and the data must not overrun the buffer.
    pub(crate) fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::DATA {
            return Err(Error::Truncated);
        }
        if field::DATA + usize::from(b[field::LENGTH]) > b.len() {
            return Err(Error::Malformed("option length overruns the header"));
        }
        Ok(())
    }
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    pub fn data(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[field::DATA..field::DATA + usize::from(b[field::LENGTH])]
    }
}

/// Raw option as yielded by [`OptionIter`]: type and data, padding already skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterates the options of a message, skipping Pad1/PadN. Unknown types are
/// yielded like any other; an option that overruns yields one error and ends.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionIter<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        OptionIter { rest: options }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<RawOption<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let first = *self.rest.first()?;
            if first == kind::PAD1 {
                self.rest = &self.rest[1..];
                continue;
            }
            let opt = match OptionPacket::new_checked(self.rest) {
                Ok(o) => o,
                Err(e) => {
                    self.rest = &[];
                    return Some(Err(e));
                }
            };
            let rest = self.rest;
            let total = field::DATA + usize::from(opt.length());
            self.rest = &rest[total..];
            if first == kind::PADN {
                continue;
            }
            return Some(Ok(RawOption {
                kind: first,
                data: &rest[field::DATA..total],
            }));
        }
    }
}

/// A parsed mobility option. Pad1/PadN never appear here: the parser skips
/// them and the emitter inserts them where alignment needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MobilityOption {
    /// RFC 4283: subtype (1 = NAI) and identifier.
    MnId { subtype: u8, id: Vec<u8> },
    /// RFC 5149: service selection identifier (APN), UTF-8.
    ServiceSelection(Vec<u8>),
    /// RFC 5213 §8.3.
    HomeNetworkPrefix { prefix_len: u8, prefix: Ipv6Addr },
    /// RFC 5213 §8.4.
    HandoffIndicator(HandoffIndicator),
    /// RFC 5213 §8.5.
    AccessTechType(AccessTechType),
    /// RFC 5213 §8.6.
    MnLinkLayerId(Vec<u8>),
    /// RFC 5213 §8.7.
    LinkLocalAddress(Ipv6Addr),
    /// RFC 5213 §8.8: 48-bit seconds since 1970 and 16-bit fraction.
    Timestamp(u64),
    /// RFC 5847 §5.2.
    RestartCounter(u32),
    /// RFC 5555 §3.1.5 (used by RFC 5844 §4 for the IPv4 Proxy-CoA).
    Ipv4CareOfAddress(Ipv4Addr),
    /// RFC 5845 §6.1: the key is absent when the option length is 2.
    GreKey(Option<u32>),
    /// RFC 5844 §3.1: 0.0.0.0 asks the LMA to allocate.
    Ipv4HoaRequest { prefix_len: u8, addr: Ipv4Addr },
    /// RFC 5844 §3.2.
    Ipv4HoaReply {
        status: u8,
        prefix_len: u8,
        addr: Ipv4Addr,
    },
    /// RFC 5844 §3.3.
    Ipv4DefaultRouter(Ipv4Addr),
    /// RFC 5844 §3.4: S set = the MAG runs a DHCP server, clear = relay.
    Ipv4DhcpSupportMode { server: bool },
    /// Anything else, carried as is.
    Unknown { kind: u8, data: Vec<u8> },
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

fn want(data: &[u8], len: usize, what: &'static str) -> Result<()> {
    if data.len() == len {
        Ok(())
    } else {
        Err(Error::Malformed(what))
    }
}

impl MobilityOption {
    /// Parses one option's data. Known types with a wrong length are malformed
    /// (RFC 6275 §9.2 lets the receiver drop such a message).
    pub fn parse(raw: RawOption<'_>) -> Result<Self> {
        let d = raw.data;
        Ok(match raw.kind {
            kind::MN_ID => {
                let (&subtype, id) = d
                    .split_first()
                    .ok_or(Error::Malformed("empty MN-ID option"))?;
                MobilityOption::MnId {
                    subtype,
                    id: id.to_vec(),
                }
            }
            kind::SERVICE_SELECTION => MobilityOption::ServiceSelection(d.to_vec()),
            kind::HNP => {
                want(d, 18, "HNP option length is not 18")?;
                if d[1] > 128 {
                    return Err(Error::Malformed("HNP prefix length over 128"));
                }
                MobilityOption::HomeNetworkPrefix {
                    prefix_len: d[1],
                    prefix: ip6(&d[2..]),
                }
            }
            kind::HANDOFF_INDICATOR => {
                want(d, 2, "HI option length is not 2")?;
                MobilityOption::HandoffIndicator(d[1].into())
            }
            kind::ACCESS_TECH_TYPE => {
                want(d, 2, "ATT option length is not 2")?;
                MobilityOption::AccessTechType(d[1].into())
            }
            kind::MN_LL_ID => {
                if d.len() < 2 {
                    return Err(Error::Malformed("MN-LLID option shorter than 2"));
                }
                MobilityOption::MnLinkLayerId(d[2..].to_vec())
            }
            kind::LINK_LOCAL_ADDR => {
                want(d, 16, "link-local address option length is not 16")?;
                MobilityOption::LinkLocalAddress(ip6(d))
            }
            kind::TIMESTAMP => {
                want(d, 8, "timestamp option length is not 8")?;
                let mut b = [0u8; 8];
                b.copy_from_slice(d);
                MobilityOption::Timestamp(u64::from_be_bytes(b))
            }
            kind::RESTART_COUNTER => {
                want(d, 4, "restart counter option length is not 4")?;
                MobilityOption::RestartCounter(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
            }
            kind::IPV4_COA => {
                want(d, 6, "IPv4 CoA option length is not 6")?;
                MobilityOption::Ipv4CareOfAddress(ip4(&d[2..]))
            }
            kind::GRE_KEY => match d.len() {
                2 => MobilityOption::GreKey(None),
                6 => MobilityOption::GreKey(Some(u32::from_be_bytes([d[2], d[3], d[4], d[5]]))),
                _ => return Err(Error::Malformed("GRE key option length is not 2 or 6")),
            },
            kind::IPV4_HOA_REQUEST => {
                want(d, 6, "IPv4 HoA request option length is not 6")?;
                MobilityOption::Ipv4HoaRequest {
                    prefix_len: d[0] >> 2,
                    addr: ip4(&d[2..]),
                }
            }
            kind::IPV4_HOA_REPLY => {
                want(d, 6, "IPv4 HoA reply option length is not 6")?;
                MobilityOption::Ipv4HoaReply {
                    status: d[0],
                    prefix_len: d[1] >> 2,
                    addr: ip4(&d[2..]),
                }
            }
            kind::IPV4_DEFAULT_ROUTER => {
                want(d, 6, "IPv4 default router option length is not 6")?;
                MobilityOption::Ipv4DefaultRouter(ip4(&d[2..]))
            }
            kind::IPV4_DHCP_SUPPORT_MODE => {
                want(d, 2, "IPv4 DHCP support mode option length is not 2")?;
                MobilityOption::Ipv4DhcpSupportMode {
                    server: d[1] & 0x01 != 0,
                }
            }
            other => MobilityOption::Unknown {
                kind: other,
                data: d.to_vec(),
            },
        })
    }

    pub fn kind(&self) -> u8 {
        use MobilityOption::*;
        match self {
            MnId { .. } => kind::MN_ID,
            ServiceSelection(_) => kind::SERVICE_SELECTION,
            HomeNetworkPrefix { .. } => kind::HNP,
            HandoffIndicator(_) => kind::HANDOFF_INDICATOR,
            AccessTechType(_) => kind::ACCESS_TECH_TYPE,
            MnLinkLayerId(_) => kind::MN_LL_ID,
            LinkLocalAddress(_) => kind::LINK_LOCAL_ADDR,
            Timestamp(_) => kind::TIMESTAMP,
            RestartCounter(_) => kind::RESTART_COUNTER,
            Ipv4CareOfAddress(_) => kind::IPV4_COA,
            GreKey(_) => kind::GRE_KEY,
            Ipv4HoaRequest { .. } => kind::IPV4_HOA_REQUEST,
            Ipv4HoaReply { .. } => kind::IPV4_HOA_REPLY,
            Ipv4DefaultRouter(_) => kind::IPV4_DEFAULT_ROUTER,
            Ipv4DhcpSupportMode { .. } => kind::IPV4_DHCP_SUPPORT_MODE,
            Unknown { kind, .. } => *kind,
        }
    }

    /// Length of the option's data (the Length field).
    pub(crate) fn data_len(&self) -> usize {
        use MobilityOption::*;
        match self {
            MnId { id, .. } => 1 + id.len(),
            ServiceSelection(s) => s.len(),
            HomeNetworkPrefix { .. } => 18,
            HandoffIndicator(_) | AccessTechType(_) => 2,
            MnLinkLayerId(l) => 2 + l.len(),
            LinkLocalAddress(_) => 16,
            Timestamp(_) => 8,
            RestartCounter(_) => 4,
            Ipv4CareOfAddress(_) => 6,
            GreKey(None) => 2,
            GreKey(Some(_)) => 6,
            Ipv4HoaRequest { .. } | Ipv4HoaReply { .. } | Ipv4DefaultRouter(_) => 6,
            Ipv4DhcpSupportMode { .. } => 2,
            Unknown { data, .. } => data.len(),
        }
    }

    /// Alignment requirement `(x, y)` meaning the Type octet sits at `x*n + y`
    /// from the start of the Mobility Header (RFC 6275 §6.2; RFC 5213 §8,
    /// RFC 5844 §3, RFC 5845 §6.1, RFC 5847 §5.2).
    pub fn alignment(&self) -> (usize, usize) {
        use MobilityOption::*;
        match self {
            HomeNetworkPrefix { .. } => (8, 4),
            MnLinkLayerId(_) => (8, 2),
            LinkLocalAddress(_) => (8, 6),
            Timestamp(_) => (8, 2),
            RestartCounter(_) => (4, 2),
            Ipv4CareOfAddress(_)
            | GreKey(_)
            | Ipv4HoaRequest { .. }
            | Ipv4HoaReply { .. }
            | Ipv4DefaultRouter(_) => (4, 0),
            _ => (1, 0),
        }
    }

    /// Writes type, length and data into `buf` (which is at least `2 + data_len()`).
    fn emit_tlv(&self, buf: &mut [u8]) {
        use MobilityOption::*;
        buf[0] = self.kind();
        buf[1] = self.data_len() as u8;
        let d = &mut buf[2..2 + self.data_len()];
        match self {
            MnId { subtype, id } => {
                d[0] = *subtype;
                d[1..].copy_from_slice(id);
            }
            ServiceSelection(s) => d.copy_from_slice(s),
            HomeNetworkPrefix { prefix_len, prefix } => {
                d[0] = 0;
                d[1] = *prefix_len;
                d[2..].copy_from_slice(&prefix.octets());
            }
            HandoffIndicator(v) => {
                d[0] = 0;
                d[1] = (*v).into();
            }
            AccessTechType(v) => {
                d[0] = 0;
                d[1] = (*v).into();
            }
            MnLinkLayerId(l) => {
                d[..2].fill(0);
                d[2..].copy_from_slice(l);
            }
            LinkLocalAddress(a) => d.copy_from_slice(&a.octets()),
            Timestamp(t) => d.copy_from_slice(&t.to_be_bytes()),
            RestartCounter(c) => d.copy_from_slice(&c.to_be_bytes()),
            Ipv4CareOfAddress(a) | Ipv4DefaultRouter(a) => {
                d[..2].fill(0);
                d[2..].copy_from_slice(&a.octets());
            }
            GreKey(k) => {
                d[..2].fill(0);
                if let Some(k) = k {
                    d[2..].copy_from_slice(&k.to_be_bytes());
                }
            }
            Ipv4HoaRequest { prefix_len, addr } => {
                d[0] = (prefix_len & 0x3f) << 2;
                d[1] = 0;
                d[2..].copy_from_slice(&addr.octets());
            }
            Ipv4HoaReply {
                status,
                prefix_len,
                addr,
            } => {
                d[0] = *status;
                d[1] = (prefix_len & 0x3f) << 2;
                d[2..].copy_from_slice(&addr.octets());
            }
            Ipv4DhcpSupportMode { server } => {
                d[0] = 0;
                d[1] = u8::from(*server);
            }
            Unknown { data, .. } => d.copy_from_slice(data),
        }
    }
}

fn pad_for(pos: usize, (x, y): (usize, usize)) -> usize {
    (y + x - pos % x) % x
}

fn write_pad(buf: &mut [u8], n: usize) {
    match n {
        0 => {}
        1 => buf[0] = kind::PAD1,
        n => {
            buf[0] = kind::PADN;
            buf[1] = (n - 2) as u8;
            buf[2..n].fill(0);
        }
    }
}

/// End offset (from the start of the Mobility Header) after laying out
/// `opts` from `start`, including the final padding to a multiple of 8.
pub(crate) fn layout_end(opts: &[MobilityOption], start: usize) -> usize {
    let mut pos = start;
    for o in opts {
        pos += pad_for(pos, o.alignment());
        pos += 2 + o.data_len();
    }
    pos + pad_for(pos, (8, 0))
}

/// Checks that every option fits its one-octet Length field.
pub(crate) fn check_emittable(opts: &[MobilityOption]) -> Result<()> {
    for o in opts {
        if o.data_len() > 255 {
            return Err(Error::Malformed("option data longer than 255 octets"));
        }
        if let MobilityOption::HomeNetworkPrefix { prefix_len, .. } = o {
            if *prefix_len > 128 {
                return Err(Error::Malformed("HNP prefix length over 128"));
            }
        }
    }
    Ok(())
}

/// Writes `opts` into `mh` (the whole Mobility Header buffer) from offset
/// `start`, with Pad1/PadN before each option as its alignment needs and
/// after the last one up to a multiple of 8. Returns the end offset, equal to
/// [`layout_end`]. `mh` must be at least that long.
pub(crate) fn emit_options(opts: &[MobilityOption], mh: &mut [u8], start: usize) -> usize {
    let mut pos = start;
    for o in opts {
        let pad = pad_for(pos, o.alignment());
        write_pad(&mut mh[pos..], pad);
        pos += pad;
        o.emit_tlv(&mut mh[pos..]);
        pos += 2 + o.data_len();
    }
    let pad = pad_for(pos, (8, 0));
    write_pad(&mut mh[pos..], pad);
    pos + pad
}

/// Parses every option in `bytes`, skipping padding, failing on the first malformed one.
pub(crate) fn parse_options(bytes: &[u8]) -> Result<Vec<MobilityOption>> {
    // Counted first, so the list is one allocation of its exact size, not
    // two or three as it grows (a PBU has 8–9 options; the count is a walk
    // over the ~100 bytes of the block, which the parse walks again).
    let mut out = Vec::with_capacity(OptionIter::new(bytes).count());
    for raw in OptionIter::new(bytes) {
        out.push(MobilityOption::parse(raw?)?);
    }
    Ok(out)
}

/// Typed look-ups over a parsed option list (first occurrence wins).
pub trait OptionsExt {
    fn opts(&self) -> &[MobilityOption];

    fn mn_id(&self) -> Option<&[u8]> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::MnId { id, .. } => Some(id.as_slice()),
            _ => None,
        })
    }
    fn hnps(&self) -> Vec<(u8, Ipv6Addr)> {
        self.opts()
            .iter()
            .filter_map(|o| match o {
                MobilityOption::HomeNetworkPrefix { prefix_len, prefix } => {
                    Some((*prefix_len, *prefix))
                }
                _ => None,
            })
            .collect()
    }
    fn handoff_indicator(&self) -> Option<HandoffIndicator> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::HandoffIndicator(h) => Some(*h),
            _ => None,
        })
    }
    fn access_tech_type(&self) -> Option<AccessTechType> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::AccessTechType(h) => Some(*h),
            _ => None,
        })
    }
    fn link_layer_id(&self) -> Option<&[u8]> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::MnLinkLayerId(l) => Some(l.as_slice()),
            _ => None,
        })
    }
    fn timestamp(&self) -> Option<u64> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Timestamp(t) => Some(*t),
            _ => None,
        })
    }
    fn restart_counter(&self) -> Option<u32> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::RestartCounter(t) => Some(*t),
            _ => None,
        })
    }
    /// `None` = no GRE Key option; `Some(None)` = option without a key.
    fn gre_key(&self) -> Option<Option<u32>> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::GreKey(k) => Some(*k),
            _ => None,
        })
    }
    fn ipv4_hoa_request(&self) -> Option<(u8, Ipv4Addr)> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Ipv4HoaRequest { prefix_len, addr } => Some((*prefix_len, *addr)),
            _ => None,
        })
    }
    fn ipv4_hoa_reply(&self) -> Option<(u8, u8, Ipv4Addr)> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Ipv4HoaReply {
                status,
                prefix_len,
                addr,
            } => Some((*status, *prefix_len, *addr)),
            _ => None,
        })
    }
    /// RFC 5844 §3.3.4: `Some(true)` asks the MAG to be the DHCP server.
    fn ipv4_dhcp_server_mode(&self) -> Option<bool> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Ipv4DhcpSupportMode { server } => Some(*server),
            _ => None,
        })
    }
    fn ipv4_default_router(&self) -> Option<Ipv4Addr> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Ipv4DefaultRouter(a) => Some(*a),
            _ => None,
        })
    }
    fn ipv4_coa(&self) -> Option<Ipv4Addr> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::Ipv4CareOfAddress(a) => Some(*a),
            _ => None,
        })
    }
    fn service_selection(&self) -> Option<&[u8]> {
        self.opts().iter().find_map(|o| match o {
            MobilityOption::ServiceSelection(s) => Some(s.as_slice()),
            _ => None,
        })
    }
}

impl OptionsExt for Vec<MobilityOption> {
    fn opts(&self) -> &[MobilityOption] {
        self
    }
}

impl OptionsExt for [MobilityOption] {
    fn opts(&self) -> &[MobilityOption] {
        self
    }
}
