//! What the host needs before the gateway runs: forwarding, the kernel slow
//! path's sysctls, the default router address on each access link, and the
//! anchor's route to its pools — over rtnetlink (`sys::netlink`); only the
//! global switches, which have no netlink form, are written under /proc/sys.
use std::net::IpAddr;

use anyhow::{Context, Result};

use crate::config::{AccessInterface, Config, Role};
use crate::sys::{netlink, sysctl};

/// Forwarding on, and what the kernel slow path needs: the first packets of
/// a tunnel whose next hop is unresolved reach the kernel already
/// encapsulated with our own address as source (accept_local).
pub(super) fn setup(cfg: &Config) -> Result<()> {
    sysctl("net.ipv4.ip_forward", "1")?;
    let _ = sysctl("net.ipv6.conf.all.forwarding", "1");
    let _ = sysctl("net.ipv4.conf.all.accept_local", "1");
    for a in &cfg.interfaces.access {
        netlink::enable_accept_local(&a.name).context("interfaces.access")?;
        ensure_address(a)?;
    }
    for c in &cfg.interfaces.correspondent {
        netlink::enable_accept_local(c).context("interfaces.correspondent")?;
    }
    if cfg.role == Role::Anchor {
        pool_routes(cfg);
    }
    Ok(())
}

/// The anchor host's own route to its IPv4 pools: out of the core interface
/// via the first access gateway. TC egress then tunnels each packet to the
/// gateway that really serves the address; the route only has to lead there.
fn pool_routes(cfg: &Config) {
    let Some(via) = cfg.peers.iter().find_map(|p| match p.address {
        IpAddr::V4(a) => Some(a),
        _ => None,
    }) else {
        return;
    };
    for p in cfg.ipv4_pools() {
        let core = &cfg.interfaces.core;
        if let Err(e) = netlink::replace_route_v4(p.prefix.addr, p.prefix.len, via, core) {
            tracing::warn!(pool = %p.prefix, "{e:#}; the anchor host cannot reach subscribers itself");
        }
    }
}

/// The default router address lives on the access interface: the kernel
/// answers ICMP echo to it (draft §6.2) and DHCP replies come from it.
fn ensure_address(a: &AccessInterface) -> Result<()> {
    let (gw, len) = (a.gateway.addr, a.gateway.len);
    let have = netlink::ipv4_addresses(&a.name).context("interfaces.access")?;
    if have.iter().any(|(addr, _)| *addr == gw) {
        return Ok(());
    }
    netlink::add_address(&a.name, IpAddr::V4(gw), len).context("interfaces.access")
}
