//! `pmipd run`: one gateway from its configuration — the fast path, the
//! registrar of its role and protocol, the access links (access role) and
//! the control socket — wired together.
//!
//! - [`system`]     — sysctls, the gateway address on access links, pool routes.
//! - [`fastpath`]   — load, attach, static bindings; the fast path shared with `show`.
//! - [`registrars`] — MAG / LMA / PMA / HA and their transports from the configuration.
//! - [`access`]     — access links (DHCP, ARP, new MACs) ↔ the MAG or PMA.
//! - [`anchor`]     — the LMA or HA runner.
//! - [`control`]    — `pmipctl` requests answered from the registrar's report.
//! - [`state`]      — the store at start: restart counter, restore, maps reconciled.
//! - [`stop`]       — planned stop (keep everyone) vs `shutdown --deregister`.
use std::net::IpAddr;

use anyhow::Result;
use tokio::sync::oneshot;

use crate::config::{Config, Protocol, Role};

mod access;
mod anchor;
mod control;
mod fastpath;
mod registrars;
mod state;
mod stop;
mod system;

pub use fastpath::SharedDp;

pub struct Options {
    pub ebpf_object: std::path::PathBuf,
}

/// Runs the daemon until SIGINT/SIGTERM. `ready` is called once everything is up.
pub async fn run(cfg: Config, opts: Options, ready: impl FnOnce()) -> Result<()> {
    system::setup(&cfg)?;
    let dp = fastpath::load(&cfg, &opts.ebpf_object)?;
    fastpath::attach(&cfg, &dp)?;
    fastpath::install_static_bindings(&cfg, &dp)?;
    if cfg.cluster.is_some() {
        // Issue 17: an anchor of a cluster keeps its bindings in etcd and
        // serves the service addresses that fall to it (crate::cluster).
        let ctl = control::serve(&cfg)?;
        let r = anchor::run_cluster(&cfg, dp, ctl, shutdown_signal(), ready).await;
        let _ = std::fs::remove_file(&cfg.control.socket);
        return r;
    }
    // Before any registration: what the maps still forward with, and what
    // the store kept of the last run.
    let held = dp.with(|f| f.held())??;
    let mut opened = state::open(&cfg)?;
    let reserve = state::reservation(&opened, &held);
    if !reserve.is_empty() {
        tracing::info!(
            sub_ids = reserve.sub_ids.len(),
            gre_keys = reserve.keys.len(),
            home_v4 = reserve.home_v4.len(),
            hnps = reserve.hnp64.len(),
            "the fast path holds bindings of an earlier run and the store kept none: reserved"
        );
    }
    let rc = opened.restart_counter;
    let ctl = control::serve(&cfg)?;
    let stop = shutdown_signal();
    let r = match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => {
            let (mut mag, local) = registrars::mag(&cfg, &reserve, rc);
            state::recover(&cfg, &dp, &mut mag, &mut opened)?;
            let sockets = registrars::pmipv6_sockets(&local)?;
            access::run(&cfg, (mag, sockets), (dp, opened.store), ctl, stop, ready).await
        }
        (Role::Access, Protocol::Pmipv4) => {
            let mut pma = registrars::pma(&cfg, &reserve)?;
            state::recover(&cfg, &dp, &mut pma, &mut opened)?;
            let socket = registrars::pmipv4_socket(&cfg)?;
            access::run(&cfg, (pma, socket), (dp, opened.store), ctl, stop, ready).await
        }
        (Role::Anchor, Protocol::Pmipv6) => {
            let (mut lma, local) = registrars::lma(&cfg, &reserve, rc);
            state::recover(&cfg, &dp, &mut lma, &mut opened)?;
            let sockets = registrars::pmipv6_sockets(&local)?;
            anchor::run(&cfg, (lma, sockets), (dp, opened.store), ctl, stop, ready).await
        }
        (Role::Anchor, Protocol::Pmipv4) => {
            let mut ha = registrars::ha(&cfg, &reserve)?;
            state::recover(&cfg, &dp, &mut ha, &mut opened)?;
            let socket = registrars::pmipv4_socket(&cfg)?;
            anchor::run(&cfg, (ha, socket), (dp, opened.store), ctl, stop, ready).await
        }
    };
    let _ = std::fs::remove_file(&cfg.control.socket);
    if r? == stop::StopMode::Release {
        stop::remove_pins(&cfg);
    }
    Ok(())
}

/// Resolves when SIGINT or SIGTERM arrives.
fn shutdown_signal() -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(());
    });
    rx
}

/// Our signaling address in the family of `peer`.
fn local_for(cfg: &Config, peer: IpAddr) -> Option<IpAddr> {
    match peer {
        IpAddr::V4(_) => cfg.addresses.ipv4.map(IpAddr::V4),
        IpAddr::V6(_) => cfg.addresses.ipv6.map(IpAddr::V6),
    }
}
