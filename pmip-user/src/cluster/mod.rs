//! The anchor cluster (issue 17): several anchors share their binding state
//! in etcd, each service address (where access gateways register) is served
//! by one of them at a time, and when that one fails another takes the
//! address, its bindings and its traffic over without the access gateways
//! or the subscribers noticing.
//!
//! ```text
//!        etcd (3 members)  P/members/*  P/owner/<addr>  P/svc/<addr>/...  P/blocks/...  P/load/*
//!          ▲    ▲                │ watch (mirror.rs)
//!  lease   │    │ fenced writes  ▼
//!  (member)│  ┌─┴──────────── control.rs: claim free addresses, revoke dead members,
//!          │  │               give up what the lease no longer covers, publish load
//!          │  │ start/stop
//!          │  ▼
//!          │  service.rs: one per served address — registrar (LMA/HA) + shell + EtcdStore
//!          │              + blocks (agent::blocks, claimed by blocks.rs) + tracked maps
//!  heartbeat.rs: UDP between members' own addresses → dead member → lease revoked
//! ```
//!
//! - [`member`]    — this member's lease and what it allows (serve, admit new bindings).
//! - [`heartbeat`] — members watching each other directly (fast failure detection).
//! - [`mirror`]    — local copies of etcd prefixes, kept by watches.
//! - [`owners`]    — who serves what, and who should claim a free address.
//! - [`control`]   — the loop that acts on all of it.
//! - [`service`]   — taking an address up (restore from etcd) and giving it up.
//! - [`blocks`]    — blocks of keys, home addresses and prefixes claimed in etcd.
//! - [`esp`]       — ESP sequence numbers of a service address, kept in etcd.
//! - [`tracked`]   — a service's bindings in the maps, removed when it steps down.
//! - [`net`]       — the address on the interface, gratuitous ARP, proxy-ARP routes.
//! - [`show`]      — `pmipctl show cluster`.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::agent::assign::Assigner;
use crate::agent::blocks::Blocks;
use crate::agent::shell::Report;
use crate::config::{ClusterSettings, Config};
use crate::ctl::ClusterView;
use crate::daemon::SharedDp;
use crate::store::etcd::{Buckets, EtcdConn, EtcdRuntime};

pub mod blocks;
mod control;
mod esp;
/// Public for the fuzz target `cluster_heartbeat` only.
#[doc(hidden)]
pub mod heartbeat;
mod member;
mod mirror;
mod net;
mod owners;
mod service;
mod show;
mod tracked;

/// What every part of the cluster shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub cfg: Arc<Config>,
    pub conn: EtcdConn,
    pub dp: SharedDp,
    pub buckets: Buckets,
    pub assigner: Assigner,
}

impl Ctx {
    pub(crate) fn cluster(&self) -> &ClusterSettings {
        self.cfg
            .cluster
            .as_ref()
            .expect("the cluster runs only with [cluster]")
    }

    /// Routes for the IPv4 home-address blocks of `blocks`, served at
    /// `addr` (proxy ARP on the correspondent side answers for exactly
    /// these; they go with the address, see `net`).
    pub(crate) fn route_blocks(&self, addr: IpAddr, blocks: &Blocks) {
        let (routes, via) = service::routes_of(self, blocks);
        let Some(via) = via else { return };
        let src = match addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        let core = self.cfg.interfaces.core.as_str();
        if let Err(e) = net::add_block_routes(&routes, (via, core), src) {
            tracing::warn!("block routes: {e:#}");
        }
    }

    pub(crate) fn unroute_blocks(&self, blocks: &Blocks) {
        net::del_block_routes(&service::routes_of(self, blocks).0);
    }

    /// Gratuitous ARP for a service address on the core interface and for
    /// the home addresses it serves on the correspondent interfaces, now
    /// and twice more (a lost frame must not leave a peer's cache stale).
    pub(crate) fn announce(&self, addr: IpAddr, tracked: &tracked::Tracked) -> usize {
        let core = self.cfg.interfaces.core.clone();
        let cns = self.cfg.interfaces.correspondent.clone();
        let homes = service::announce_list(tracked);
        let send = move |addr: IpAddr, homes: &[Ipv4Addr]| -> usize {
            let mut n = 0;
            if let IpAddr::V4(a) = addr {
                n += net::gratuitous_arp(&core, &[a]).unwrap_or(0);
            }
            for c in &cns {
                n += net::gratuitous_arp(c, homes).unwrap_or(0);
            }
            n
        };
        let n = send(addr, &homes);
        tokio::task::spawn_blocking(move || {
            for d in [100, 400] {
                std::thread::sleep(Duration::from_millis(d));
                send(addr, &homes);
            }
        });
        n
    }
}

/// Requests to the control loop.
pub(crate) enum Cmd {
    Report(oneshot::Sender<Report>),
    Show(oneshot::Sender<ClusterView>),
    Command(crate::agent::registrar::AnchorCommand),
    Stop(oneshot::Sender<()>),
}

/// Removes what a run of this member left on the host (`pmipd cleanup`,
/// the unit's `ExecStopPost`, after a crash or kill -9): the cluster's
/// addresses on the core interface and the block routes. What it held in
/// etcd ends with its lease.
pub fn cleanup(cfg: &Config) -> Result<()> {
    let cl = cfg
        .cluster
        .as_ref()
        .ok_or_else(|| anyhow!("cluster: missing"))?;
    for a in cl.service_addresses.iter().chain(&cl.cluster_address) {
        net::del_address(&cfg.interfaces.core, *a);
    }
    net::flush_block_routes();
    Ok(())
}

/// The running cluster member, as the daemon holds it.
pub struct Cluster {
    cmds: mpsc::Sender<Cmd>,
    task: JoinHandle<()>,
    _rt: EtcdRuntime,
}

impl Cluster {
    /// Joins the cluster of `cfg` (`[store] backend = "etcd"` and
    /// `[cluster]`) and starts serving what falls to this member.
    pub async fn start(cfg: &Config, dp: SharedDp) -> Result<Cluster> {
        let cl = cfg
            .cluster
            .as_ref()
            .ok_or_else(|| anyhow!("cluster: missing"))?;
        let (conn, rt) = EtcdConn::connect(&cfg.store.etcd).await?;
        // Whatever an earlier run (killed) left on this host is not ours now.
        for a in cl.service_addresses.iter().chain(&cl.cluster_address) {
            net::del_address(&cfg.interfaces.core, *a);
        }
        net::flush_block_routes();
        for c in &cfg.interfaces.correspondent {
            net::proxy_arp(c).with_context(|| format!("interfaces.correspondent: {c}"))?;
        }
        let ctx = Ctx {
            cfg: Arc::new(cfg.clone()),
            conn,
            dp,
            buckets: Buckets::default(),
            assigner: Assigner::new(),
        };
        let (tx, rx) = mpsc::channel(64);
        let task = control::spawn(ctx, rx).await?;
        Ok(Cluster {
            cmds: tx,
            task,
            _rt: rt,
        })
    }

    /// The bindings and counters of every service address served here.
    pub async fn report(&self) -> Report {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Report(tx)).await.is_err() {
            return Report::default();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn show(&self) -> Option<ClusterView> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Show(tx)).await.ok()?;
        rx.await.ok()
    }

    /// An operator's release (`pmipctl clear binding`, `clear bindings
    /// --peer`): every service address's registrar gets it, and those
    /// holding what it names act.
    pub async fn command(&self, cmd: crate::agent::registrar::AnchorCommand) {
        let _ = self.cmds.send(Cmd::Command(cmd)).await;
    }

    /// Has the control loop ended (it only does on an unrecoverable error)?
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Leaves the cluster: every address given up at once and the lease
    /// revoked, so the others take over without waiting for it to run out.
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Stop(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
        self.task.abort();
    }
}
