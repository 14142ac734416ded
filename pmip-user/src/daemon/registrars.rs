//! The four registrars built from the configuration: the state machine of
//! the configured role and protocol, its configuration, and its transport.
use std::net::SocketAddrV4;
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Context, Result};

use crate::agent::Clock;
use crate::config::{agents, Config};
use crate::dataplane::Held;
use crate::pmipv4::{self, ha, pma, transport::Udp434};
use crate::pmipv6::{self, lma, mag, transport::Sockets};

/// Per-start restart counter (RFC 5847 §5.2): a peer seeing it change knows
/// we lost state. Tenths of a second since 1970 (wrapping every 13 years):
/// it grows with every restart without a file to keep it in, even two
/// restarts within one second.
fn restart_counter() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_millis() / 100) as u32)
        .unwrap_or(1)
}

fn clock() -> Clock {
    Clock::new(Instant::now(), SystemTime::now())
}

/// The PMIPv6 sockets: raw MH for IPv6 peers, UDP 5436 for IPv4 ones.
pub(super) fn pmipv6_sockets(local: &pmipv6::LocalAddrs) -> Result<Sockets> {
    Sockets::bind(local, pmipv6::wire::UDP_PORT, true)
        .context("binding the PMIPv6 sockets (addresses.*)")
}

/// The PMIPv4 registration socket (UDP 434 on addresses.ipv4).
pub(super) fn pmipv4_socket(cfg: &Config) -> Result<Udp434> {
    let addr = v4_address(cfg)?;
    Udp434::bind(SocketAddrV4::new(addr, pmipv4::wire::PORT))
        .with_context(|| format!("binding UDP {addr}:434 (addresses.ipv4)"))
}

fn v4_address(cfg: &Config) -> Result<std::net::Ipv4Addr> {
    cfg.addresses
        .ipv4
        .ok_or_else(|| anyhow!("addresses.ipv4: PMIPv4 needs an IPv4 address"))
}

/// The MAG, with what the data plane already holds reserved.
pub(super) fn mag(cfg: &Config, held: &Held) -> (mag::Mag, pmipv6::LocalAddrs) {
    let mcfg = agents::mag(cfg, restart_counter());
    let local = mcfg.local;
    let mut m = mag::Mag::new(mcfg, Instant::now(), SystemTime::now());
    m.reserve(held);
    (m, local)
}

/// The LMA, with what the data plane already holds reserved.
pub(super) fn lma(cfg: &Config, held: &Held) -> (lma::Lma, pmipv6::LocalAddrs) {
    let lcfg = agents::lma(cfg, restart_counter());
    let local = lcfg.local;
    let mut l = lma::Lma::new(lcfg, Instant::now(), SystemTime::now());
    l.reserve(held);
    (l, local)
}

/// The PMA, with what the data plane already holds reserved.
pub(super) fn pma(cfg: &Config, held: &Held) -> Result<pma::Pma> {
    let mut p = pma::Pma::new(agents::pma(cfg)?, clock());
    p.reserve(held);
    Ok(p)
}

/// The HA, with what the data plane already holds reserved.
pub(super) fn ha(cfg: &Config, held: &Held) -> Result<ha::Ha> {
    let mut h = ha::Ha::new(agents::ha(cfg)?, clock());
    h.reserve(held);
    Ok(h)
}
