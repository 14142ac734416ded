//! ICMPv6 Neighbor Discovery messages of the access link (RFC 4861 §4):
//! Router Solicitation/Advertisement and Neighbor Solicitation/Advertisement,
//! with the options source/target link-layer address (§4.6.1), prefix
//! information (§4.6.2), MTU (§4.6.4) and recursive DNS server (RFC 8106 §5.1).
//!
//! smoltcp style: [`NdPacket`] is a view over one ICMPv6 message whose
//! `check_len` makes every accessor safe; [`NdOptions`] walks the options and
//! yields unknown types as [`NdOption::Unknown`]; [`NdRepr`] is the message
//! with `parse`, `emit` and `buffer_len`. [`validate`] adds the receive checks
//! of RFC 4861 §6.1 and §7.1 that need the IPv6 header.
//!
//! Why not smoltcp's `wire::NdiscRepr`: its Router Advertisement holds one
//! prefix and no RDNSS (RFC 8106 options come back only as raw unknown
//! options), and it would bring a second set of address and error types into
//! a crate whose other codecs (frame.rs, pmipv6/wire) are written this way.
use std::net::Ipv6Addr;

use super::frame6::{is_link_local, Error, Result};

pub(crate) const ICMPV6_ROUTER_SOLICIT: u8 = 133;
pub(crate) const ICMPV6_ROUTER_ADVERT: u8 = 134;
pub(crate) const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
pub(crate) const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

pub(crate) const OPT_SOURCE_LLADDR: u8 = 1;
pub(crate) const OPT_TARGET_LLADDR: u8 = 2;
pub(crate) const OPT_PREFIX_INFO: u8 = 3;
pub(crate) const OPT_MTU: u8 = 5;
pub(crate) const OPT_RDNSS: u8 = 25;

/// RA flags byte: M (managed address configuration), O (other configuration).
const RA_MANAGED: u8 = 0x80;
const RA_OTHER: u8 = 0x40;
/// NA flags (first byte of the reserved word): R, S, O.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// Prefix information flags: L (on-link), A (autonomous).
const PI_ON_LINK: u8 = 0x80;
const PI_AUTONOMOUS: u8 = 0x40;

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    // Router Advertisement.
    pub const CUR_HOP_LIMIT: usize = 4;
    pub const RA_FLAGS: usize = 5;
    pub const ROUTER_LIFETIME: Range<usize> = 6..8;
    pub const REACHABLE_TIME: Range<usize> = 8..12;
    pub const RETRANS_TIME: Range<usize> = 12..16;
    // Neighbor Solicitation / Advertisement.
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
}

/// Fixed part of each message before its options (RFC 4861 §4.1–4.4).
fn header_len(msg_type: u8) -> usize {
    match msg_type {
        ICMPV6_ROUTER_SOLICIT => 8,
        ICMPV6_ROUTER_ADVERT => 16,
        ICMPV6_NEIGHBOR_SOLICIT | ICMPV6_NEIGHBOR_ADVERT => 24,
        _ => 4,
    }
}

/// One ICMPv6 message (RS, RA, NS, NA; any other type only as far as its
/// 4-byte ICMPv6 header).
#[derive(Debug, Clone)]
pub struct NdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        NdPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Needs the fixed part of the message's type.
    pub(crate) fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 4 || b.len() < header_len(b[field::TYPE]) {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.b()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub(crate) fn msg_type(&self) -> u8 {
        self.b()[field::TYPE]
    }
    pub fn code(&self) -> u8 {
        self.b()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    /// RA only.
    pub(crate) fn cur_hop_limit(&self) -> u8 {
        self.b()[field::CUR_HOP_LIMIT]
    }
    /// RA only.
    pub(crate) fn ra_flags(&self) -> u8 {
        self.b()[field::RA_FLAGS]
    }
    /// RA only, seconds.
    pub fn router_lifetime(&self) -> u16 {
        self.u16_at(field::ROUTER_LIFETIME)
    }
    /// RA only, milliseconds.
    pub(crate) fn reachable_time(&self) -> u32 {
        self.u32_at(field::REACHABLE_TIME)
    }
    /// RA only, milliseconds.
    pub(crate) fn retrans_time(&self) -> u32 {
        self.u32_at(field::RETRANS_TIME)
    }
    /// NA only.
    pub(crate) fn na_flags(&self) -> u8 {
        self.b()[field::NA_FLAGS]
    }
    /// NS and NA only.
    pub fn target(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[field::TARGET]);
        Ipv6Addr::from(a)
    }
    /// The options after the fixed part.
    pub fn options(&self) -> NdOptions<'_> {
        NdOptions {
            data: &self.b()[header_len(self.msg_type())..],
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub(crate) fn set_msg_type(&mut self, v: u8) {
        self.bm()[field::TYPE] = v;
    }
    pub fn set_code(&mut self, v: u8) {
        self.bm()[field::CODE] = v;
    }
    pub(crate) fn set_checksum(&mut self, v: u16) {
        self.bm()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_cur_hop_limit(&mut self, v: u8) {
        self.bm()[field::CUR_HOP_LIMIT] = v;
    }
    pub(crate) fn set_ra_flags(&mut self, v: u8) {
        self.bm()[field::RA_FLAGS] = v;
    }
    pub(crate) fn set_router_lifetime(&mut self, v: u16) {
        self.bm()[field::ROUTER_LIFETIME].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_reachable_time(&mut self, v: u32) {
        self.bm()[field::REACHABLE_TIME].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_retrans_time(&mut self, v: u32) {
        self.bm()[field::RETRANS_TIME].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_na_flags(&mut self, v: u8) {
        self.bm()[field::NA_FLAGS] = v;
    }
    pub(crate) fn set_target(&mut self, a: Ipv6Addr) {
        self.bm()[field::TARGET].copy_from_slice(&a.octets());
    }
    /// Writes the ICMPv6 checksum for a packet from `src` to `dst`.
    pub(crate) fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = super::frame6::upper_layer_checksum(
            src,
            dst,
            super::frame6::IPPROTO_ICMPV6,
            self.buffer.as_ref(),
        );
        self.set_checksum(c);
    }
}

/// Prefix Information option (RFC 4861 §4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: the prefix may be used for SLAAC (RFC 4862).
    pub autonomous: bool,
    /// Seconds; 0xffffffff = infinity.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// The most servers one RDNSS option can carry (RFC 8106 §5.1: (255 × 8 − 8) / 16).
const RDNSS_MAX_SERVERS: usize = 127;

/// Recursive DNS Server option (RFC 8106 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdnss {
    /// Seconds the servers may be used; 0 = no longer.
    pub lifetime: u32,
    pub servers: Vec<Ipv6Addr>,
}

/// One option, parsed; types this code does not know come back as `Unknown`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdOption<'a> {
    SourceLinkLayerAddr([u8; 6]),
    TargetLinkLayerAddr([u8; 6]),
    PrefixInformation(PrefixInfo),
    Mtu(u32),
    Rdnss(Rdnss),
    /// `data` is what follows the type and length bytes.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> NdOption<'a> {
    /// Parses one whole option (`b` is exactly its 8 × length bytes).
    fn parse(kind: u8, b: &'a [u8]) -> Result<Self> {
        let units = b.len() / 8;
        Ok(match kind {
            // Ethernet addresses: exactly one unit (RFC 2464 §6); another size
            // is the link-layer address of another link type.
            OPT_SOURCE_LLADDR | OPT_TARGET_LLADDR => {
                if units != 1 {
                    return Err(Error::Malformed);
                }
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[2..8]);
                if kind == OPT_SOURCE_LLADDR {
                    NdOption::SourceLinkLayerAddr(m)
                } else {
                    NdOption::TargetLinkLayerAddr(m)
                }
            }
            OPT_PREFIX_INFO => {
                if units != 4 || b[2] > 128 {
                    return Err(Error::Malformed);
                }
                NdOption::PrefixInformation(PrefixInfo {
                    prefix_len: b[2],
                    on_link: b[3] & PI_ON_LINK != 0,
                    autonomous: b[3] & PI_AUTONOMOUS != 0,
                    valid_lifetime: be32(b, 4),
                    preferred_lifetime: be32(b, 8),
                    prefix: addr_at(b, 16),
                })
            }
            OPT_MTU => {
                if units != 1 {
                    return Err(Error::Malformed);
                }
                NdOption::Mtu(be32(b, 4))
            }
            // RFC 8106 §5.1: length 3 + 2 per further server, so odd and >= 3.
            OPT_RDNSS => {
                if units < 3 || units.is_multiple_of(2) {
                    return Err(Error::Malformed);
                }
                NdOption::Rdnss(Rdnss {
                    lifetime: be32(b, 4),
                    servers: (8..b.len()).step_by(16).map(|i| addr_at(b, i)).collect(),
                })
            }
            _ => NdOption::Unknown {
                kind,
                data: &b[2..],
            },
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            NdOption::SourceLinkLayerAddr(_) | NdOption::TargetLinkLayerAddr(_) => 8,
            NdOption::PrefixInformation(_) => 32,
            NdOption::Mtu(_) => 8,
            NdOption::Rdnss(r) => 8 + 16 * r.servers.len(),
            NdOption::Unknown { data, .. } => (2 + data.len()).div_ceil(8) * 8,
        }
    }

    /// Writes the option into `b` (at least [`buffer_len`](Self::buffer_len) bytes).
    pub fn emit(&self, b: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut b[..len];
        b.fill(0);
        b[1] = (len / 8) as u8;
        match self {
            NdOption::SourceLinkLayerAddr(m) | NdOption::TargetLinkLayerAddr(m) => {
                b[0] = if matches!(self, NdOption::SourceLinkLayerAddr(_)) {
                    OPT_SOURCE_LLADDR
                } else {
                    OPT_TARGET_LLADDR
                };
                b[2..8].copy_from_slice(m);
            }
            NdOption::PrefixInformation(p) => {
                b[0] = OPT_PREFIX_INFO;
                b[2] = p.prefix_len;
                b[3] = if p.on_link { PI_ON_LINK } else { 0 }
                    | if p.autonomous { PI_AUTONOMOUS } else { 0 };
                b[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
                b[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
                b[16..32].copy_from_slice(&p.prefix.octets());
            }
            NdOption::Mtu(m) => {
                b[0] = OPT_MTU;
                b[4..8].copy_from_slice(&m.to_be_bytes());
            }
            NdOption::Rdnss(r) => {
                b[0] = OPT_RDNSS;
                b[4..8].copy_from_slice(&r.lifetime.to_be_bytes());
                for (i, s) in r.servers.iter().enumerate() {
                    b[8 + 16 * i..24 + 16 * i].copy_from_slice(&s.octets());
                }
            }
            NdOption::Unknown { kind, data } => {
                b[0] = *kind;
                b[2..2 + data.len()].copy_from_slice(data);
            }
        }
    }
}

/// Iterator over the options of a message. A zero length or an option
/// running past the end yields an error and ends the walk (RFC 4861 §4.6:
/// such a packet is discarded whole).
#[derive(Clone, Debug)]
pub struct NdOptions<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let d = self.data;
        let len = d.get(1).map(|l| usize::from(*l) * 8);
        let bad = match len {
            None => Some(Error::Truncated),
            Some(0) => Some(Error::Malformed),
            Some(l) if l > d.len() => Some(Error::Truncated),
            Some(_) => None,
        };
        if let Some(e) = bad {
            self.data = &[];
            return Some(Err(e));
        }
        let len = len.unwrap_or(0);
        self.data = &d[len..];
        let r = NdOption::parse(d[0], &d[..len]);
        if r.is_err() {
            self.data = &[];
        }
        Some(r)
    }
}

/// Router Advertisement contents (RFC 4861 §4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Hop limit hosts should use; 0 = unspecified.
    pub cur_hop_limit: u8,
    /// M: addresses come from DHCPv6.
    pub managed: bool,
    /// O: other configuration comes from DHCPv6.
    pub other: bool,
    /// Seconds as default router; 0 = not a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0 = unspecified.
    pub reachable_time: u32,
    pub retrans_time: u32,
    pub slla: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub prefixes: Vec<PrefixInfo>,
    pub rdnss: Option<Rdnss>,
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NaFlags {
    pub router: bool,
    pub solicited: bool,
    pub override_: bool,
}

/// A Neighbor Discovery message. Options this code does not use are skipped
/// on parse (RFC 4861 §4.6: "silently ignore").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdRepr {
    RouterSolicit {
        slla: Option<[u8; 6]>,
    },
    RouterAdvert(RouterAdvert),
    NeighborSolicit {
        target: Ipv6Addr,
        slla: Option<[u8; 6]>,
    },
    NeighborAdvert {
        flags: NaFlags,
        target: Ipv6Addr,
        tlla: Option<[u8; 6]>,
    },
}

impl NdRepr {
    /// Structure only: type, code 0, option framing. The checksum is the
    /// frame's business ([`super::frame6::parse_frame`]), the rest [`validate`]'s.
    pub fn parse<T: AsRef<[u8]>>(p: &NdPacket<T>) -> Result<NdRepr> {
        p.check_len()?;
        if header_len(p.msg_type()) == 4 {
            return Err(Error::Unsupported);
        }
        if p.code() != 0 {
            return Err(Error::Malformed);
        }
        let mut slla = None;
        let mut tlla = None;
        let mut ra = RouterAdvert::default();
        for o in p.options() {
            match o? {
                NdOption::SourceLinkLayerAddr(m) => slla = Some(m),
                NdOption::TargetLinkLayerAddr(m) => tlla = Some(m),
                NdOption::PrefixInformation(pi) => ra.prefixes.push(pi),
                NdOption::Mtu(m) => ra.mtu = Some(m),
                NdOption::Rdnss(r) => match &mut ra.rdnss {
                    Some(have) => have.servers.extend(r.servers),
                    None => ra.rdnss = Some(r),
                },
                NdOption::Unknown { .. } => {}
            }
        }
        Ok(match p.msg_type() {
            ICMPV6_ROUTER_SOLICIT => NdRepr::RouterSolicit { slla },
            ICMPV6_ROUTER_ADVERT => {
                let f = p.ra_flags();
                ra.cur_hop_limit = p.cur_hop_limit();
                ra.managed = f & RA_MANAGED != 0;
                ra.other = f & RA_OTHER != 0;
                ra.router_lifetime = p.router_lifetime();
                ra.reachable_time = p.reachable_time();
                ra.retrans_time = p.retrans_time();
                ra.slla = slla;
                NdRepr::RouterAdvert(ra)
            }
            ICMPV6_NEIGHBOR_SOLICIT => NdRepr::NeighborSolicit {
                target: p.target(),
                slla,
            },
            ICMPV6_NEIGHBOR_ADVERT => {
                let f = p.na_flags();
                NdRepr::NeighborAdvert {
                    flags: NaFlags {
                        router: f & NA_ROUTER != 0,
                        solicited: f & NA_SOLICITED != 0,
                        override_: f & NA_OVERRIDE != 0,
                    },
                    target: p.target(),
                    tlla,
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    fn msg_type(&self) -> u8 {
        match self {
            NdRepr::RouterSolicit { .. } => ICMPV6_ROUTER_SOLICIT,
            NdRepr::RouterAdvert(_) => ICMPV6_ROUTER_ADVERT,
            NdRepr::NeighborSolicit { .. } => ICMPV6_NEIGHBOR_SOLICIT,
            NdRepr::NeighborAdvert { .. } => ICMPV6_NEIGHBOR_ADVERT,
        }
    }

    /// The options in the order they are emitted.
    fn options(&self) -> Vec<NdOption<'static>> {
        let mut v = Vec::new();
        match self {
            NdRepr::RouterSolicit { slla } | NdRepr::NeighborSolicit { slla, .. } => {
                v.extend(slla.map(NdOption::SourceLinkLayerAddr));
            }
            NdRepr::NeighborAdvert { tlla, .. } => {
                v.extend(tlla.map(NdOption::TargetLinkLayerAddr));
            }
            NdRepr::RouterAdvert(ra) => {
                v.extend(ra.slla.map(NdOption::SourceLinkLayerAddr));
                v.extend(ra.mtu.map(NdOption::Mtu));
                v.extend(ra.prefixes.iter().copied().map(NdOption::PrefixInformation));
                match &ra.rdnss {
                    Some(r) if !r.servers.is_empty() => {
                        // RFC 8106 §5.1: Length is one octet in units of 8
                        // octets, so one option holds at most 127 servers;
                        // the rest go in further options (merged on parse).
                        v.extend(r.servers.chunks(RDNSS_MAX_SERVERS).map(|c| {
                            NdOption::Rdnss(Rdnss {
                                lifetime: r.lifetime,
                                servers: c.to_vec(),
                            })
                        }));
                    }
                    r => v.extend(r.clone().map(NdOption::Rdnss)),
                }
            }
        }
        v
    }

    pub fn buffer_len(&self) -> usize {
        header_len(self.msg_type()) + self.options().iter().map(|o| o.buffer_len()).sum::<usize>()
    }

    /// Writes the message with checksum 0 (see [`NdPacket::fill_checksum`]).
    /// The buffer must hold [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut NdPacket<T>) {
        let t = self.msg_type();
        p.bm()[..header_len(t)].fill(0);
        p.set_msg_type(t);
        match self {
            NdRepr::RouterSolicit { .. } => {}
            NdRepr::RouterAdvert(ra) => {
                p.set_cur_hop_limit(ra.cur_hop_limit);
                p.set_ra_flags(
                    if ra.managed { RA_MANAGED } else { 0 } | if ra.other { RA_OTHER } else { 0 },
                );
                p.set_router_lifetime(ra.router_lifetime);
                p.set_reachable_time(ra.reachable_time);
                p.set_retrans_time(ra.retrans_time);
            }
            NdRepr::NeighborSolicit { target, .. } => p.set_target(*target),
            NdRepr::NeighborAdvert { flags, target, .. } => {
                p.set_na_flags(
                    if flags.router { NA_ROUTER } else { 0 }
                        | if flags.solicited { NA_SOLICITED } else { 0 }
                        | if flags.override_ { NA_OVERRIDE } else { 0 },
                );
                p.set_target(*target);
            }
        }
        let mut at = header_len(t);
        for o in self.options() {
            o.emit(&mut p.bm()[at..]);
            at += o.buffer_len();
        }
    }

    /// The whole ICMPv6 message from `src` to `dst`, checksum filled.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut b = vec![0u8; self.buffer_len()];
        let mut p = NdPacket::new_unchecked(&mut b[..]);
        self.emit(&mut p);
        p.fill_checksum(src, dst);
        b
    }
}

/// Receive checks of RFC 4861 that need the IPv6 header (§6.1.1 RS, §6.1.2
/// RA, §7.1.1 NS, §7.1.2 NA): hop limit 255 (the message was not forwarded
/// from another link), and the address rules per type. A message failing
/// them is [`Error::Malformed`] and must be dropped.
pub fn validate(repr: &NdRepr, src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Result<()> {
    if hop_limit != 255 {
        return Err(Error::Malformed);
    }
    let ok = match repr {
        // From the unspecified address: no source link-layer address option.
        NdRepr::RouterSolicit { slla } => !(src.is_unspecified() && slla.is_some()),
        NdRepr::RouterAdvert(_) => is_link_local(&src),
        // From the unspecified address (DAD, RFC 4862 §5.4.2): to the target's
        // solicited-node group, without a source link-layer address option.
        NdRepr::NeighborSolicit { target, slla } => {
            !target.is_multicast()
                && (!src.is_unspecified()
                    || (slla.is_none() && dst == super::frame6::solicited_node(*target)))
        }
        NdRepr::NeighborAdvert { flags, target, .. } => {
            !(target.is_multicast() || dst.is_multicast() && flags.solicited)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Malformed)
    }
}

#[cfg(test)]
mod tests;
