//! What the host needs before the gateway runs: forwarding, the kernel slow
//! path's sysctls, the default router address on each access link, and the
//! anchor's route to its pools.
use std::net::IpAddr;

use anyhow::{bail, Context, Result};

use crate::config::{AccessInterface, Config, Role};
use crate::sys::sysctl;

/// Forwarding on, and what the kernel slow path needs: the first packets of
/// a tunnel whose next hop is unresolved reach the kernel already
/// encapsulated with our own address as source (accept_local).
pub(super) fn setup(cfg: &Config) -> Result<()> {
    sysctl("net.ipv4.ip_forward", "1")?;
    let _ = sysctl("net.ipv6.conf.all.forwarding", "1");
    let _ = sysctl("net.ipv4.conf.all.accept_local", "1");
    for a in &cfg.interfaces.access {
        sysctl(&format!("net.ipv4.conf.{}.accept_local", a.name), "1")
            .with_context(|| format!("interfaces.access: {}", a.name))?;
        ensure_address(a)?;
    }
    for c in &cfg.interfaces.correspondent {
        sysctl(&format!("net.ipv4.conf.{c}.accept_local"), "1")
            .with_context(|| format!("interfaces.correspondent: {c}"))?;
    }
    // A cluster routes only the blocks of addresses it serves (cluster::net).
    if cfg.role == Role::Anchor && cfg.cluster.is_none() {
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
        let ok = std::process::Command::new("ip")
            .args([
                "route",
                "replace",
                &p.prefix.to_string(),
                "via",
                &via.to_string(),
                "dev",
                &cfg.interfaces.core,
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            tracing::warn!(pool = %p.prefix, "could not add the route to the pool; the anchor host cannot reach subscribers itself");
        }
    }
}

/// The default router address lives on the access interface: the kernel
/// answers ICMP echo to it (draft §6.2) and DHCP replies come from it.
fn ensure_address(a: &AccessInterface) -> Result<()> {
    let (gw, len) = (a.gateway.addr, a.gateway.len);
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &a.name])
        .output()
        .with_context(|| format!("ip addr show dev {}", a.name))?;
    if !out.status.success() {
        bail!("interfaces.access: interface {} not found", a.name);
    }
    if String::from_utf8_lossy(&out.stdout).contains(&format!("inet {gw}/")) {
        return Ok(());
    }
    let st = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{gw}/{len}"), "dev", &a.name])
        .status()?;
    if !st.success() {
        bail!("adding {gw}/{len} to {}", a.name);
    }
    Ok(())
}
