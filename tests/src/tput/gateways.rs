//! The two gateways' fast paths with static bindings for the generator's
//! subscriber: dual stack (home address and home network prefix), its
//! tunnel over the core's IPv4 or IPv6 addresses.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use pmip_common::role;
use pmip_user::dataplane::{AccessBinding, AccessPoint, AnchorBinding, Hnp, TunnelEnds};
use pmip_user::fastpath::{AttachMode, FastPath, IfaceSpec, LoadOptions};
use pmip_user::sys::ifindex;

use super::frame::{Family, HNP, HOME};
use super::GEN_MAC;

const UP_KEY: u32 = 100;
const DOWN_KEY: u32 = 200;
/// The gateways' core addresses (core0 at each end).
pub(super) const MAG4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const LMA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub(super) const MAG6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
pub(super) const LMA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);
/// The access link's router addresses (IPv6: link-local, as every MAG's).
const GW4: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const CN_IF4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// The tunnel between the gateways over the `outer` family, seen from the
/// access gateway (`at_access`) or the anchor.
fn tunnel(outer: Family, at_access: bool) -> TunnelEnds {
    let (mag, lma): (IpAddr, IpAddr) = match outer {
        Family::V4 => (MAG4.into(), LMA4.into()),
        Family::V6 => (MAG6.into(), LMA6.into()),
    };
    if at_access {
        TunnelEnds {
            local: mag,
            remote: lma,
        }
    } else {
        TunnelEnds {
            local: lma,
            remote: mag,
        }
    }
}

fn hnp() -> Option<Hnp> {
    Some(Hnp {
        prefix: HNP,
        len: 64,
    })
}

/// The access gateway (call inside its namespace).
pub(super) fn start_mag(mode: AttachMode, outer: Family) -> Result<FastPath> {
    let mut fp = FastPath::load(&LoadOptions {
        max_subscribers: 1024,
        ..Default::default()
    })?;
    for (name, r, addr4, addr6) in [
        ("acc0", role::ACCESS, GW4, GW6),
        ("core0", role::ACCESS_CORE, MAG4, MAG6),
    ] {
        let spec = IfaceSpec {
            name: name.into(),
            role: r,
            addr4: Some(addr4),
            addr6: Some(addr6),
        };
        super::while_busy(|| fp.attach(&spec, mode))?;
    }
    fp.install_access(&AccessBinding {
        at: AccessPoint {
            ifindex: ifindex("acc0")?,
            vlan: 0,
            mac: GEN_MAC,
        },
        sub_id: 1,
        tunnel: tunnel(outer, true),
        uplink_key: UP_KEY,
        downlink_key: DOWN_KEY,
        home_v4: Some(HOME.into()),
        gateway_v4: Some(GW4),
        hnp: hnp(),
    })?;
    Ok(fp)
}

/// The anchor (call inside its namespace).
pub(super) fn start_lma(mode: AttachMode, outer: Family) -> Result<FastPath> {
    let mut fp = FastPath::load(&LoadOptions {
        max_subscribers: 1024,
        home_prefixes: true,
        ..Default::default()
    })?;
    for (name, r, addr4, addr6) in [
        ("core0", role::ANCHOR_CORE, LMA4, Some(LMA6)),
        ("cn0", role::ANCHOR_CN, CN_IF4, None),
    ] {
        let spec = IfaceSpec {
            name: name.into(),
            role: r,
            addr4: Some(addr4),
            addr6,
        };
        super::while_busy(|| fp.attach(&spec, mode))?;
    }
    fp.install_anchor(&AnchorBinding {
        sub_id: 1,
        tunnel: tunnel(outer, false),
        uplink_key: UP_KEY,
        downlink_key: DOWN_KEY,
        home_v4: Some(HOME.into()),
        hnp: hnp(),
    })?;
    Ok(fp)
}
