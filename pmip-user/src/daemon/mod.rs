//! `pmipd run`: one gateway from its configuration — the fast path, the
//! registrar of its role and protocol, the access links (access role) and
//! the control socket — wired together.
//!
//! - [`system`]     — sysctls, the gateway address on access links, pool routes.
//! - [`fastpath`]   — load, attach, static bindings; the fast path shared with `show`.
//! - [`registrars`] — MAG / LMA / PMA / HA and their transports from the configuration.
//! - [`access`]     — access links (DHCP, ARP, new MACs) ↔ the MAG or PMA.
//! - [`access6`]    — the IPv6 side of the access links (RAs, DHCPv6) for the glue.
//! - [`anchor`]     — the LMA or HA runner.
//! - [`control`]    — `pmipctl` requests answered from the registrar's report.
//! - [`state`]      — the store at start: restart counter, restore, maps reconciled.
//! - [`stop`]       — planned stop (keep everyone) vs `shutdown --deregister`.
//! - [`aaa`]        — RADIUS authorization, accounting and dynamic authorization.
//! - [`reload`]     — `systemctl reload`: what can change live, and refusing the rest.
//! - [`notify`]     — systemd readiness, watchdog keep-alives, reload notifications.
//! - [`ops`]        — metrics endpoint, signaling meter, SIGHUP, security counters.
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use tokio::sync::oneshot;

use crate::config::{Config, Protocol, Role};

mod aaa;
mod access;
mod access6;
mod anchor;
mod control;
mod fastpath;
mod notify;
mod ops;
mod preflight;
mod registrars;
mod reload;
mod state;
mod stop;
mod system;

pub use fastpath::SharedDp;
pub use preflight::preflight;

pub struct Options {
    /// The fast path's eBPF object (embedded or a file).
    pub object: crate::fastpath::ObjectSource,
    /// The configuration file, read again by a reload.
    pub config_path: PathBuf,
}

/// Runs the daemon until SIGINT/SIGTERM. `ready` is called once everything
/// is up (and systemd is told, when it runs us).
pub async fn run(cfg: Config, opts: Options, ready: impl FnOnce()) -> Result<()> {
    // First: a second daemon with the same control socket stops here,
    // before it touches the interfaces or the fast path of the first.
    let reloader = reload::Reloader {
        path: opts.config_path.clone(),
        live: reload::Live::new(cfg.clone()),
    };
    let (ctl, ask) = control::serve(&cfg)?;
    system::setup(&cfg)?;
    let object = opts.object.bytes()?;
    let build_id = crate::fastpath::build_id(&object);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), ebpf_object = %opts.object.describe(), ebpf_build_id = %build_id, "starting");
    let dp = fastpath::load(&cfg, &opts.object)?;
    fastpath::attach(&cfg, &dp)?;
    fastpath::install_static_bindings(&cfg, &dp)?;
    if cfg.cluster.is_some() {
        // Issue 17: an anchor of a cluster keeps its bindings in etcd and
        // serves the service addresses that fall to it (crate::cluster).
        let _ = (&ask, build_id);
        let r = anchor::run_cluster((&cfg, &reloader), dp, ctl, shutdown_signal(), ready).await;
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
    let ops = ops::Ops::start(&cfg, &ask, &dp, build_id)?;
    let ready = || {
        notify::ready("serving");
        ready();
    };
    let stop = shutdown_signal();
    let r = match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => {
            let (mut mag, local) = registrars::mag(&cfg, &reserve, rc);
            state::recover(&cfg, &dp, &mut mag, &mut opened)?;
            if opened.state_lost {
                mag.announce_restart();
            }
            let sockets = registrars::pmipv6_sockets(&cfg, &local)?;
            // Metered inside the peer filter: what strangers send is counted too.
            let t = registrars::peers_only(&cfg, ops.meter(sockets));
            access::run(&reloader, (mag, t), (dp, opened.store), ctl, stop, ready).await
        }
        (Role::Access, Protocol::Pmipv4) => {
            let mut pma = registrars::pma(&cfg, &reserve)?;
            state::recover(&cfg, &dp, &mut pma, &mut opened)?;
            let socket = ops.meter(registrars::pmipv4_socket(&cfg)?);
            let socket = registrars::peers_only(&cfg, socket);
            access::run(
                &reloader,
                (pma, socket),
                (dp, opened.store),
                ctl,
                stop,
                ready,
            )
            .await
        }
        (Role::Anchor, Protocol::Pmipv6) => {
            let (mut lma, local) = registrars::lma(&cfg, &reserve, rc);
            state::recover(&cfg, &dp, &mut lma, &mut opened)?;
            if opened.state_lost {
                lma.announce_restart();
            }
            let sockets = registrars::pmipv6_sockets(&cfg, &local)?;
            let sockets = registrars::xdp_sockets(&cfg, &dp, sockets)?;
            // Metered inside the peer filter: what strangers send is counted too.
            let t = registrars::peers_only(&cfg, ops.meter(sockets));
            anchor::run(
                (&cfg, &reloader),
                (lma, t),
                (dp, opened.store),
                ctl,
                stop,
                ready,
            )
            .await
        }
        (Role::Anchor, Protocol::Pmipv4) => {
            let mut ha = registrars::ha(&cfg, &reserve)?;
            state::recover(&cfg, &dp, &mut ha, &mut opened)?;
            let socket = ops.meter(registrars::pmipv4_socket(&cfg)?);
            let socket = registrars::peers_only(&cfg, socket);
            anchor::run(
                (&cfg, &reloader),
                (ha, socket),
                (dp, opened.store),
                ctl,
                stop,
                ready,
            )
            .await
        }
    };
    notify::stopping();
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
