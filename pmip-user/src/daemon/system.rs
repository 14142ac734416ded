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
        super::access6::setup_link(cfg, a)?;
    }
    for c in &cfg.interfaces.correspondent {
        netlink::enable_accept_local(c).context("interfaces.correspondent")?;
    }
    if cfg.role == Role::Anchor && cfg.ipv6_pools().next().is_some() {
        // Decapsulated IPv6 the fast path leaves to the kernel (next hop
        // unresolved) arrives on core: dropped there if IPv6 is off.
        let links = std::iter::once(&cfg.interfaces.core).chain(&cfg.interfaces.correspondent);
        for i in links {
            if let Err(e) = sysctl(&format!("net.ipv6.conf.{i}.disable_ipv6"), "0") {
                tracing::warn!(iface = %i, "IPv6 home network prefixes, but IPv6 stays off: {e:#}");
            }
        }
    }
    // A cluster routes only the blocks of addresses it serves (cluster::net).
    if cfg.role == Role::Anchor && cfg.cluster.is_none() {
        pool_routes(cfg);
    }
    Ok(())
}

/// The anchor host's own route to its pools: out of the core interface via
/// the first access gateway of the pool's family. TC egress then tunnels
/// each packet to the gateway that really serves the address or prefix; the
/// route only has to lead there.
fn pool_routes(cfg: &Config) {
    let via = |v6: bool| {
        cfg.peers
            .iter()
            .map(|p| p.address)
            .find(|a| a.is_ipv6() == v6)
    };
    for p in cfg.ipv4_pools() {
        let core = &cfg.interfaces.core;
        let Some(IpAddr::V4(via)) = via(false) else {
            break;
        };
        if let Err(e) = netlink::replace_route_v4(p.prefix.addr, p.prefix.len, via, core) {
            tracing::warn!(pool = %p.prefix, "{e:#}; the anchor host cannot reach subscribers itself");
        }
    }
    for p in cfg.ipv6_pools() {
        let prefix = p.prefix.to_string();
        let Some(via) = via(true) else { break };
        let ok = std::process::Command::new("ip")
            .args(["-6", "route", "replace", &prefix, "via", &via.to_string()])
            .args(["dev", &cfg.interfaces.core])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            tracing::warn!(pool = %prefix, "could not add the route to the pool; the anchor host cannot reach subscribers itself");
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
