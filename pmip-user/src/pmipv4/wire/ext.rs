//! Registration extensions (RFC 3344 §1.9–§1.11, §3.5) and the ones PMIPv4 adds.
//!
//! Two header formats exist: the short one (`Type | Length | data`) and the long one
//! (`Type | Sub-Type | Length(16) | data`, RFC 3344 §1.11) used by the Generalized
//! Authentication (36), CVSE (38, where the second octet is reserved), PMIPv4
//! Non-skippable (47) and GRE Key (48, RFC 6245; IANA keeps a sub-type registry for it)
//! extensions. Length never counts the header.
//!
//! [`ExtIter`] walks raw extensions and yields unknown types (the caller decides: RFC 3344
//! §1.9 — types 0–127 are non-skippable, 128–255 skippable). [`ExtRepr`] is the typed form.
use std::net::Ipv4Addr;

use super::{be16, be32, ip, Error, Result};

/// Extension type numbers (IANA "Extensions appearing in Mobile IP control messages").
pub mod types {
    /// One-byte Padding (RFC 5944 §1.8): the Type octet alone.
    pub(crate) const PAD1: u8 = 0;
    pub const MN_HA_AUTH: u8 = 32;
    pub(crate) const MN_FA_AUTH: u8 = 33;
    pub const FA_HA_AUTH: u8 = 34;
    pub(crate) const GEN_AUTH: u8 = 36;
    pub(crate) const CVSE: u8 = 38;
    /// PMIPv4 Non-skippable (draft-leung-mip4-proxy-mode §5, RFC 5563).
    pub(crate) const PMIPV4_NONSKIP: u8 = 47;
    /// GRE Key (RFC 6245 §3.1); non-skippable, long format.
    pub const GRE_KEY: u8 = 48;
    /// The one GRE Key sub-type defined (RFC 6245).
    pub(crate) const GRE_KEY_SUBTYPE: u8 = 0;
    pub(crate) const MN_NAI: u8 = 131;
    pub const REVOCATION_SUPPORT: u8 = 137;
    pub(crate) const DYNAMIC_HA: u8 = 139;
    /// PMIPv4 Skippable (draft §5.2–§5.5).
    pub(crate) const PMIPV4_SKIP: u8 = 147;

    /// Types whose header is `Type | Sub-Type | Length(16)`.
    pub fn is_long(ty: u8) -> bool {
        matches!(ty, GEN_AUTH | CVSE | PMIPV4_NONSKIP | GRE_KEY)
    }
    /// RFC 3344 §1.9: 0–127 MUST be understood, 128–255 may be skipped.
    pub(crate) fn is_skippable(ty: u8) -> bool {
        ty >= 128
    }
}

/// Dynamic HA extension sub-types (RFC 4433 §3.1).
pub(crate) mod dynamic_ha_subtypes {
    /// The HA the request was sent to.
    pub(crate) const REQUESTED: u8 = 1;
    /// The HA to register with instead.
    pub(crate) const REDIRECTED: u8 = 2;
}

/// PMIPv4 Skippable extension sub-types (draft §5.2–§5.5).
pub(crate) mod skip_subtypes {
    pub(crate) const INTERFACE_ID: u8 = 1;
    pub(crate) const DEVICE_ID: u8 = 2;
    pub(crate) const SUBSCRIBER_ID: u8 = 3;
    pub(crate) const ACCESS_TECH: u8 = 4;
}

/// Device ID types (draft §5.3).
pub mod device_id_types {
    pub const MAC: u8 = 1;
    pub const MEID: u8 = 2;
    pub const IMEI: u8 = 3;
    pub const ESN: u8 = 4;
}

/// Subscriber ID types (draft §5.4).
pub(crate) const SUBSCRIBER_ID_IMSI: u8 = 1;

/// One extension as it sits in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawExt<'a> {
    pub ty: u8,
    /// Second octet of a long-format extension.
    pub subtype: Option<u8>,
    pub data: &'a [u8],
    /// Offset of the Type octet from the start of the *message*.
    pub offset: usize,
    /// Header length (2 or 4).
    pub header_len: usize,
}

impl RawExt<'_> {
    pub fn total_len(&self) -> usize {
        self.header_len + self.data.len()
    }
}

/// Iterates the extensions of a message. Stops after the first error.
#[derive(Clone, Debug)]
pub struct ExtIter<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    done: bool,
}

impl<'a> ExtIter<'a> {
    /// `buf` is the extension area; `base` its offset inside the message.
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        ExtIter {
            buf,
            pos: 0,
            base,
            done: false,
        }
    }
}

/// RFC 4433 §3.4's figure draws the Dynamic HA extension in the long format
/// (Type, Sub-type, 16-bit Length 4, address); Wireshark and we use the
/// short one RFC 3344 §1.11 gives skippable types (Type, Length 5, Sub-type,
/// address). Both are read: a long one is told by its sub-type (1 or 2)
/// where the short one has its length (5), and the 16-bit length 4.
fn dynamic_ha_long(rest: &[u8]) -> bool {
    rest.len() >= 4
        && rest[0] == types::DYNAMIC_HA
        && matches!(
            rest[1],
            dynamic_ha_subtypes::REQUESTED | dynamic_ha_subtypes::REDIRECTED
        )
        && be16(rest, 2) == 4
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = Result<RawExt<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        // RFC 5944 §1.8: type 0 is "One-byte Padding (encoded with neither
        // Length nor Data field)": skipped, an octet at a time (covered by
        // an authenticator after it, as the bytes it computes over are the
        // message's own).
        while self.buf.get(self.pos) == Some(&types::PAD1) {
            self.pos += 1;
        }
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let ty = rest[0];
        let offset = self.base + self.pos;
        let (header_len, subtype, len) = if types::is_long(ty) || dynamic_ha_long(rest) {
            if rest.len() < 4 {
                self.done = true;
                return Some(Err(Error::Truncated));
            }
            (4, Some(rest[1]), be16(rest, 2) as usize)
        } else {
            if rest.len() < 2 {
                self.done = true;
                return Some(Err(Error::Truncated));
            }
            (2, None, rest[1] as usize)
        };
        if rest.len() < header_len + len {
            self.done = true;
            return Some(Err(Error::Overrun {
                ext_type: ty,
                offset,
            }));
        }
        self.pos += header_len + len;
        Some(Ok(RawExt {
            ty,
            subtype,
            data: &rest[header_len..header_len + len],
            offset,
            header_len,
        }))
    }
}

/// Which authentication extension (RFC 3344 §3.5.2–§3.5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthKind {
    MnHa,
    MnFa,
    FaHa,
}

impl AuthKind {
    pub(crate) fn ext_type(self) -> u8 {
        match self {
            AuthKind::MnHa => types::MN_HA_AUTH,
            AuthKind::MnFa => types::MN_FA_AUTH,
            AuthKind::FaHa => types::FA_HA_AUTH,
        }
    }
    pub(crate) fn from_ext_type(t: u8) -> Option<Self> {
        match t {
            types::MN_HA_AUTH => Some(AuthKind::MnHa),
            types::MN_FA_AUTH => Some(AuthKind::MnFa),
            types::FA_HA_AUTH => Some(AuthKind::FaHa),
            _ => None,
        }
    }
}

/// Per-Node Authentication Method (draft §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    FaHa,
    Ipsec,
    Unknown(u8),
}

impl From<u8> for AuthMethod {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::FaHa,
            2 => Self::Ipsec,
            x => Self::Unknown(x),
        }
    }
}
impl From<AuthMethod> for u8 {
    fn from(v: AuthMethod) -> u8 {
        match v {
            AuthMethod::FaHa => 1,
            AuthMethod::Ipsec => 2,
            AuthMethod::Unknown(x) => x,
        }
    }
}

/// Access Technology Type (draft §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessTech {
    Ieee8023,
    Ieee80211,
    Ieee80216e,
    Ieee80216m,
    Eutran,
    UtranGeran,
    Cdma1xHrpd,
    Umb,
    Unknown(u8),
}

impl From<u8> for AccessTech {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Ieee8023,
            2 => Self::Ieee80211,
            3 => Self::Ieee80216e,
            4 => Self::Ieee80216m,
            5 => Self::Eutran,
            6 => Self::UtranGeran,
            7 => Self::Cdma1xHrpd,
            8 => Self::Umb,
            x => Self::Unknown(x),
        }
    }
}
impl From<AccessTech> for u8 {
    fn from(v: AccessTech) -> u8 {
        match v {
            AccessTech::Ieee8023 => 1,
            AccessTech::Ieee80211 => 2,
            AccessTech::Ieee80216e => 3,
            AccessTech::Ieee80216m => 4,
            AccessTech::Eutran => 5,
            AccessTech::UtranGeran => 6,
            AccessTech::Cdma1xHrpd => 7,
            AccessTech::Umb => 8,
            AccessTech::Unknown(x) => x,
        }
    }
}

/// A typed extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtRepr {
    /// Mobile Node NAI (RFC 2794 §2), the binding key in PMIPv4.
    Nai(Vec<u8>),
    /// MN-HA / MN-FA / FA-HA authentication (RFC 3344 §3.5.2–§3.5.4): SPI + authenticator.
    Auth {
        kind: AuthKind,
        spi: u32,
        authenticator: Vec<u8>,
    },
    /// PMIPv4 Per-Node Authentication Method (47/1, draft §5.1).
    PerNodeAuthMethod(AuthMethod),
    /// PMIPv4 Interface ID (147/1, draft §5.2).
    InterfaceId(Vec<u8>),
    /// PMIPv4 Device ID (147/2, draft §5.3).
    DeviceId { id_type: u8, id: Vec<u8> },
    /// PMIPv4 Subscriber ID (147/3, draft §5.4), e.g. IMSI.
    SubscriberId { id_type: u8, id: Vec<u8> },
    /// PMIPv4 Access Technology Type (147/4, draft §5.5).
    AccessTechnology(AccessTech),
    /// GRE Key (RFC 6245 §3.1): in a request the key the sender wants to receive with,
    /// in a reply the key the HA wants to receive with.
    GreKey(u32),
    /// Revocation Support (RFC 3543 §3.2).
    RevocationSupport { i_bit: bool, timestamp: u32 },
    /// Dynamic HA (RFC 4433 §3.1): 1 = requested HA, 2 = redirected HA.
    DynamicHa { subtype: u8, ha: Ipv4Addr },
    /// A long-format extension we do not interpret (also unknown 47 sub-types).
    UnknownLong { ty: u8, subtype: u8, data: Vec<u8> },
    /// A 147 sub-type we do not interpret (skippable).
    UnknownSkippablePmip { subtype: u8, data: Vec<u8> },
    /// A short-format extension we do not interpret.
    Unknown { ty: u8, data: Vec<u8> },
}

impl ExtRepr {
    /// Parses one raw extension. Unknown types come back as `Unknown*`, not as errors.
    pub fn parse(raw: &RawExt<'_>) -> Result<ExtRepr> {
        let d = raw.data;
        let bad = || Error::BadLength {
            ext_type: raw.ty,
            len: d.len(),
        };
        Ok(match (raw.ty, raw.subtype) {
            (types::MN_NAI, _) => {
                if d.is_empty() {
                    return Err(bad());
                }
                ExtRepr::Nai(d.to_vec())
            }
            (t @ (types::MN_HA_AUTH | types::MN_FA_AUTH | types::FA_HA_AUTH), _) => {
                if d.len() < 4 {
                    return Err(bad());
                }
                ExtRepr::Auth {
                    kind: AuthKind::from_ext_type(t).unwrap_or(AuthKind::FaHa),
                    spi: be32(d, 0),
                    authenticator: d[4..].to_vec(),
                }
            }
            (types::PMIPV4_NONSKIP, Some(1)) => {
                if d.len() != 1 {
                    return Err(bad());
                }
                ExtRepr::PerNodeAuthMethod(AuthMethod::from(d[0]))
            }
            (types::GRE_KEY, Some(types::GRE_KEY_SUBTYPE)) => {
                if d.len() != 4 {
                    return Err(bad());
                }
                ExtRepr::GreKey(be32(d, 0))
            }
            (types::REVOCATION_SUPPORT, _) => {
                // RFC 3543 §3.2: "Length (in bytes, currently 6)" — longer
                // for more bits in the future: what we know is read.
                if d.len() < 6 {
                    return Err(bad());
                }
                ExtRepr::RevocationSupport {
                    i_bit: d[0] & 0x80 != 0,
                    timestamp: be32(d, 2),
                }
            }
            (types::DYNAMIC_HA, Some(subtype)) => {
                if d.len() != 4 {
                    return Err(bad());
                }
                ExtRepr::DynamicHa {
                    subtype,
                    ha: ip(d, 0),
                }
            }
            (types::DYNAMIC_HA, None) => {
                if d.len() != 5 {
                    return Err(bad());
                }
                ExtRepr::DynamicHa {
                    subtype: d[0],
                    ha: ip(d, 1),
                }
            }
            (types::PMIPV4_SKIP, _) => {
                let (&sub, body) = d.split_first().ok_or_else(bad)?;
                match sub {
                    skip_subtypes::INTERFACE_ID => ExtRepr::InterfaceId(body.to_vec()),
                    skip_subtypes::DEVICE_ID | skip_subtypes::SUBSCRIBER_ID => {
                        let (&id_type, id) = body.split_first().ok_or_else(bad)?;
                        if sub == skip_subtypes::DEVICE_ID {
                            ExtRepr::DeviceId {
                                id_type,
                                id: id.to_vec(),
                            }
                        } else {
                            ExtRepr::SubscriberId {
                                id_type,
                                id: id.to_vec(),
                            }
                        }
                    }
                    // A skippable extension we cannot read is skipped (RFC
                    // 5944 §1.8), not a reason to refuse the message.
                    skip_subtypes::ACCESS_TECH if body.len() == 1 => {
                        ExtRepr::AccessTechnology(AccessTech::from(body[0]))
                    }
                    _ => ExtRepr::UnknownSkippablePmip {
                        subtype: sub,
                        data: body.to_vec(),
                    },
                }
            }
            (ty, Some(subtype)) => ExtRepr::UnknownLong {
                ty,
                subtype,
                data: d.to_vec(),
            },
            (ty, None) => ExtRepr::Unknown {
                ty,
                data: d.to_vec(),
            },
        })
    }

    pub(crate) fn ext_type(&self) -> u8 {
        match self {
            ExtRepr::Nai(_) => types::MN_NAI,
            ExtRepr::Auth { kind, .. } => kind.ext_type(),
            ExtRepr::PerNodeAuthMethod(_) => types::PMIPV4_NONSKIP,
            ExtRepr::InterfaceId(_)
            | ExtRepr::DeviceId { .. }
            | ExtRepr::SubscriberId { .. }
            | ExtRepr::AccessTechnology(_)
            | ExtRepr::UnknownSkippablePmip { .. } => types::PMIPV4_SKIP,
            ExtRepr::GreKey(_) => types::GRE_KEY,
            ExtRepr::RevocationSupport { .. } => types::REVOCATION_SUPPORT,
            ExtRepr::DynamicHa { .. } => types::DYNAMIC_HA,
            ExtRepr::UnknownLong { ty, .. } | ExtRepr::Unknown { ty, .. } => *ty,
        }
    }

    /// True for a type this implementation does not understand and may not skip
    /// (RFC 3344 §1.9; the HA answers 134, §3.8.2.1).
    pub fn is_unknown_nonskippable(&self) -> bool {
        match self {
            ExtRepr::UnknownLong { ty, .. } | ExtRepr::Unknown { ty, .. } => {
                !types::is_skippable(*ty)
            }
            _ => false,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            ExtRepr::Nai(n) => n.len(),
            ExtRepr::Auth { authenticator, .. } => 4 + authenticator.len(),
            ExtRepr::PerNodeAuthMethod(_) => 1,
            ExtRepr::InterfaceId(id) => 1 + id.len(),
            ExtRepr::DeviceId { id, .. } | ExtRepr::SubscriberId { id, .. } => 2 + id.len(),
            ExtRepr::AccessTechnology(_) => 2,
            ExtRepr::UnknownSkippablePmip { data, .. } => 1 + data.len(),
            ExtRepr::GreKey(_) => 4,
            ExtRepr::RevocationSupport { .. } => 6,
            ExtRepr::DynamicHa { .. } => 5,
            ExtRepr::UnknownLong { data, .. } | ExtRepr::Unknown { data, .. } => data.len(),
        }
    }

    fn is_long(&self) -> bool {
        matches!(
            self,
            ExtRepr::PerNodeAuthMethod(_) | ExtRepr::GreKey(_) | ExtRepr::UnknownLong { .. }
        )
    }

    /// Whether the data fits the length field of its header format.
    pub fn is_emittable(&self) -> bool {
        let max = if self.is_long() {
            u16::MAX as usize
        } else {
            u8::MAX as usize
        };
        self.data_len() <= max
            && match self {
                ExtRepr::UnknownLong { ty, .. } => types::is_long(*ty),
                ExtRepr::Unknown { ty, .. } => {
                    !types::is_long(*ty)
                        && !matches!(
                            *ty,
                            types::PAD1
                                | types::MN_NAI
                                | types::MN_HA_AUTH
                                | types::MN_FA_AUTH
                                | types::FA_HA_AUTH
                                | types::GRE_KEY
                                | types::REVOCATION_SUPPORT
                                | types::DYNAMIC_HA
                                | types::PMIPV4_SKIP
                        )
                }
                ExtRepr::UnknownSkippablePmip { subtype, .. } => *subtype > 4 || *subtype == 0,
                ExtRepr::Nai(n) => !n.is_empty(),
                _ => true,
            }
    }

    pub fn buffer_len(&self) -> usize {
        (if self.is_long() { 4 } else { 2 }) + self.data_len()
    }

    /// Writes the extension at the start of `buf` (at least `buffer_len()` long) and returns
    /// the bytes written. Lengths beyond the header's range are truncated to fit: callers
    /// that build messages from untrusted data check `is_emittable` first.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.buffer_len();
        let dl = self.data_len();
        buf[0] = self.ext_type();
        let h = if self.is_long() {
            let sub = match self {
                ExtRepr::PerNodeAuthMethod(_) => 1,
                ExtRepr::UnknownLong { subtype, .. } => *subtype,
                _ => 0,
            };
            buf[1] = sub;
            buf[2..4].copy_from_slice(&(dl as u16).to_be_bytes());
            4
        } else {
            buf[1] = dl as u8;
            2
        };
        let d = &mut buf[h..n];
        match self {
            ExtRepr::Nai(v) => d.copy_from_slice(v),
            ExtRepr::Auth {
                spi, authenticator, ..
            } => {
                d[..4].copy_from_slice(&spi.to_be_bytes());
                d[4..].copy_from_slice(authenticator);
            }
            ExtRepr::PerNodeAuthMethod(m) => d[0] = u8::from(*m),
            ExtRepr::InterfaceId(id) => {
                d[0] = skip_subtypes::INTERFACE_ID;
                d[1..].copy_from_slice(id);
            }
            ExtRepr::DeviceId { id_type, id } | ExtRepr::SubscriberId { id_type, id } => {
                d[0] = if matches!(self, ExtRepr::DeviceId { .. }) {
                    skip_subtypes::DEVICE_ID
                } else {
                    skip_subtypes::SUBSCRIBER_ID
                };
                d[1] = *id_type;
                d[2..].copy_from_slice(id);
            }
            ExtRepr::AccessTechnology(t) => {
                d[0] = skip_subtypes::ACCESS_TECH;
                d[1] = u8::from(*t);
            }
            ExtRepr::UnknownSkippablePmip { subtype, data } => {
                d[0] = *subtype;
                d[1..].copy_from_slice(data);
            }
            ExtRepr::GreKey(k) => d.copy_from_slice(&k.to_be_bytes()),
            ExtRepr::RevocationSupport { i_bit, timestamp } => {
                d[0] = if *i_bit { 0x80 } else { 0 };
                d[1] = 0;
                d[2..].copy_from_slice(&timestamp.to_be_bytes());
            }
            ExtRepr::DynamicHa { subtype, ha } => {
                d[0] = *subtype;
                d[1..].copy_from_slice(&ha.octets());
            }
            ExtRepr::UnknownLong { data, .. } | ExtRepr::Unknown { data, .. } => {
                d.copy_from_slice(data)
            }
        }
        n
    }
}

/// Parses a whole extension area.
pub fn parse_all(buf: &[u8], base: usize) -> Result<Vec<ExtRepr>> {
    // Counted first: one allocation of the list's exact size, not two as
    // it grows (a proxy registration request has 5–7 extensions).
    let mut out = Vec::with_capacity(ExtIter::new(buf, base).count());
    for r in ExtIter::new(buf, base) {
        out.push(ExtRepr::parse(&r?)?);
    }
    Ok(out)
}

/// Total encoded length of a list of extensions.
pub fn buffer_len(exts: &[ExtRepr]) -> usize {
    exts.iter().map(ExtRepr::buffer_len).sum()
}

/// Emits a list of extensions; returns the bytes written.
/// Appends `exts`, encoded, to a message: the FA's extensions after a
/// mobile node's MN-HA one (RFC 5944 §3.7.2.2, §3.8.3.3).
pub fn append_all(exts: &[ExtRepr], msg: &mut Vec<u8>) {
    let at = msg.len();
    msg.resize(at + buffer_len(exts), 0);
    emit_all(exts, &mut msg[at..]);
}

pub fn emit_all(exts: &[ExtRepr], buf: &mut [u8]) -> usize {
    let mut at = 0;
    for e in exts {
        at += e.emit(&mut buf[at..]);
    }
    at
}

/// Helpers to find things in a parsed extension list.
pub trait ExtList {
    fn nai(&self) -> Option<&[u8]>;
    fn gre_key(&self) -> Option<u32>;
    fn auth(&self, kind: AuthKind) -> Option<(u32, &[u8])>;
    fn per_node_auth_method(&self) -> Option<AuthMethod>;
    fn revocation_support(&self) -> Option<(bool, u32)>;
    /// The address of a Dynamic HA extension of this sub-type (RFC 4433 §3.1).
    fn dynamic_ha(&self, subtype: u8) -> Option<std::net::Ipv4Addr>;
    fn requested_ha(&self) -> Option<std::net::Ipv4Addr> {
        self.dynamic_ha(dynamic_ha_subtypes::REQUESTED)
    }
    fn redirected_ha(&self) -> Option<std::net::Ipv4Addr> {
        self.dynamic_ha(dynamic_ha_subtypes::REDIRECTED)
    }
    fn first_unknown_nonskippable(&self) -> Option<u8>;
}

impl ExtList for [ExtRepr] {
    fn nai(&self) -> Option<&[u8]> {
        self.iter().find_map(|e| match e {
            ExtRepr::Nai(n) => Some(n.as_slice()),
            _ => None,
        })
    }
    fn gre_key(&self) -> Option<u32> {
        self.iter().find_map(|e| match e {
            ExtRepr::GreKey(k) => Some(*k),
            _ => None,
        })
    }
    fn auth(&self, want: AuthKind) -> Option<(u32, &[u8])> {
        self.iter().find_map(|e| match e {
            ExtRepr::Auth {
                kind,
                spi,
                authenticator,
            } if *kind == want => Some((*spi, authenticator.as_slice())),
            _ => None,
        })
    }
    fn per_node_auth_method(&self) -> Option<AuthMethod> {
        self.iter().find_map(|e| match e {
            ExtRepr::PerNodeAuthMethod(m) => Some(*m),
            _ => None,
        })
    }
    fn revocation_support(&self) -> Option<(bool, u32)> {
        self.iter().find_map(|e| match e {
            ExtRepr::RevocationSupport { i_bit, timestamp } => Some((*i_bit, *timestamp)),
            _ => None,
        })
    }
    fn dynamic_ha(&self, want: u8) -> Option<std::net::Ipv4Addr> {
        self.iter().find_map(|e| match e {
            ExtRepr::DynamicHa { subtype, ha } if *subtype == want => Some(*ha),
            _ => None,
        })
    }
    fn first_unknown_nonskippable(&self) -> Option<u8> {
        self.iter()
            .find(|e| e.is_unknown_nonskippable())
            .map(ExtRepr::ext_type)
    }
}

#[cfg(test)]
pub(crate) mod tests;
