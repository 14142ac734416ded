//! What the generator sends: the flows (inner family, tunnel family,
//! direction) and their UDP frames, from which the generator's per-CPU
//! templates are cut.
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::{eth, ipv6, udp, ETH_P_IPV6};

/// Bytes `tg_gen` rewrites per IPv4 frame (TG_HDR_LEN in trafficgen.rs).
pub const TG_HDR_LEN: usize = 48;
/// Bytes `tg_gen6` rewrites per IPv6 frame: Ethernet, IPv6, UDP and 2 payload bytes.
pub const TG_HDR6_LEN: usize = 64;
pub const TG_PORT_BASE: u16 = 9000;

/// The subscriber behind the generator's veth: its IPv4 home address, and an
/// address in its home network prefix.
pub const HOME: [u8; 4] = [10, 64, 0, 10];
pub const HNP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0);
pub const HOME6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0x10);
/// The correspondent behind the sink's veth.
pub const SINK_IP: [u8; 4] = [203, 0, 113, 2];
pub const SINK6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, 2);

/// An IP family: of the subscriber's packets (inner) or of the tunnel (outer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Which way through the gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    /// Subscriber → correspondent: sent from the generator's namespace,
    /// counted at the sink's (access encap, anchor decap).
    Up,
    /// Correspondent → subscriber: sent from the sink's namespace, counted
    /// at the generator's veth (anchor encap, access decap).
    Down,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// What one measurement sends. For the cases without a tunnel (the kernel
/// and the redirect ceiling) `outer` is the family the core carries: the
/// inner one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub inner: Family,
    pub outer: Family,
    pub dir: Dir,
}

impl Flow {
    /// The IPv4 rows (the benchmark's first table).
    pub const V4: Flow = Flow {
        inner: Family::V4,
        outer: Family::V4,
        dir: Dir::Up,
    };

    /// "IPv6 inner, IPv4 outer", or "IPv6 inner" alone where no tunnel is involved.
    pub fn label(self, tunnel: bool) -> String {
        if tunnel {
            format!("{} inner, {} outer", self.inner.name(), self.outer.name())
        } else {
            format!("{} inner", self.inner.name())
        }
    }

    /// The frame of this flow's generator thread `flow`: `len` bytes handed
    /// to the veth (Ethernet header included, no FCS).
    pub fn frame(self, len: usize, dmac: [u8; 6], smac: [u8; 6], flow: u16) -> Vec<u8> {
        let (v4, v6) = match self.dir {
            Dir::Up => ((HOME, SINK_IP), (HOME6, SINK6)),
            Dir::Down => ((SINK_IP, HOME), (SINK6, HOME6)),
        };
        match self.inner {
            Family::V4 => udp4_frame(len, dmac, smac, v4.0.into(), v4.1.into(), flow),
            Family::V6 => udp6_frame(len, dmac, smac, v6.0, v6.1, flow),
        }
    }

    /// The bytes of `frame` the generator rewrites on every run.
    pub fn template_len(self) -> usize {
        match self.inner {
            Family::V4 => TG_HDR_LEN,
            Family::V6 => TG_HDR6_LEN,
        }
    }

    /// The generator program for this flow's frames.
    pub fn generator(self) -> &'static str {
        match self.inner {
            Family::V4 => "tg_gen",
            Family::V6 => "tg_gen6",
        }
    }
}

/// A frame of `len` bytes: Ethernet, IPv4 (src HOME, dst the sink), UDP to
/// port TG_PORT_BASE + flow, zero payload.
pub fn udp_frame(len: usize, dmac: [u8; 6], smac: [u8; 6], flow: u16) -> Vec<u8> {
    udp4_frame(len, dmac, smac, HOME.into(), SINK_IP.into(), flow)
}

fn udp4_frame(
    len: usize,
    dmac: [u8; 6],
    smac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    flow: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dmac);
    f[6..12].copy_from_slice(&smac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = pmip_user::checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&(10000 + flow).to_be_bytes());
    f[36..38].copy_from_slice(&(TG_PORT_BASE + flow).to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

/// A frame of `len` bytes (at least TG_HDR6_LEN): Ethernet, IPv6 (hop limit
/// 64), UDP from port 10000 + flow to TG_PORT_BASE + flow, zero payload. The
/// UDP checksum is computed (IPv6 forbids 0, RFC 8200 §8.1), though no hop
/// verifies it.
pub fn udp6_frame(
    len: usize,
    dmac: [u8; 6],
    smac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flow: u16,
) -> Vec<u8> {
    assert!(
        len >= TG_HDR6_LEN,
        "IPv6 frames of {len} bytes: at least {TG_HDR6_LEN}"
    );
    let mut u = udp(10000 + flow, TG_PORT_BASE + flow, &vec![0; len - 62]);
    let sum = pmip_user::checksum::pseudo_v6(&src, &dst, u.len() as u32, 17);
    let c = match pmip_user::checksum::finish(pmip_user::checksum::add(sum, &u)) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dmac, smac, 0, ETH_P_IPV6);
    f.extend_from_slice(&ipv6(src, dst, 17, 64, &u));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_frame_layout() {
        let f = Flow {
            inner: Family::V6,
            outer: Family::V4,
            dir: Dir::Down,
        }
        .frame(64, [1; 6], [2; 6], 3);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 64 - 54);
        assert_eq!(f[20], 17);
        assert_eq!(&f[22..38], &SINK6.octets());
        assert_eq!(&f[38..54], &HOME6.octets());
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), TG_PORT_BASE + 3);
        // The checksum verifies: pseudo-header + UDP sums to 0xffff.
        let sum = pmip_user::checksum::pseudo_v6(&SINK6, &HOME6, 10, 17);
        assert_eq!(
            pmip_user::checksum::fold(pmip_user::checksum::add(sum, &f[54..])),
            0xffff
        );
    }

    #[test]
    fn ipv4_frame_unchanged() {
        let f = Flow::V4.frame(64, [1; 6], [2; 6], 0);
        assert_eq!(f, udp_frame(64, [1; 6], [2; 6], 0));
        assert_eq!(&f[26..30], &HOME);
    }
}
