//! One service address served by this member: taken up (at start, or from a
//! member that died) and given up.
//!
//! ```text
//!  start: blocks (load, claim) ─► records (scan P/svc/<addr>/) ─► registrar + restore
//!         ─► address on the core interface ─► sockets ─► shell (its first flush
//!         installs every restored binding) ─► block routes ─► gratuitous ARP for the
//!         address (core) and the home addresses (correspondent side)
//!  stop:  fence the data plane and remove its bindings from the maps ─► close
//!         allocation ─► stop the shell ─► routes and address removed
//! ```
//! The restored registrar answers the next refresh as its predecessor
//! would have: same bindings, keys and addresses, and the same RFC 5847
//! restart counter (the service address's node record), so the access
//! gateway sees nothing happen (RFC 5847 §5.2: state was kept).
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::task::JoinHandle;

use super::blocks as etcd_blocks;
use super::net;
use super::tracked::Tracked;
use super::Ctx;
use crate::agent::blocks::{Blocks, Space};
use crate::agent::registrar::{AnchorCommand, AnchorEvent};
use crate::agent::shell::{self, Handle, Report};
use crate::agent::{Clock, Endpoint};
use crate::config::agents;
use crate::config::Protocol;
use crate::pmipv4::{ha, transport::Udp434};
use crate::pmipv6::{lma, LocalAddrs};
use crate::store::etcd::{EtcdStore, Fence, StoreHealth};
use crate::store::{restart_counter, Record, RecordKey, Store, StoreOp};

/// A service address this member serves now.
pub(crate) struct Service {
    pub addr: IpAddr,
    handle: Handle<AnchorCommand, AnchorEvent>,
    pub blocks: Blocks,
    pub tracked: Tracked,
    pub health: Arc<StoreHealth>,
    refill: JoinHandle<()>,
    pub since: Instant,
    /// Bindings taken up from etcd when it started, and the restart counter.
    pub restored: usize,
    pub restart_counter: u32,
    /// How long the start took (blocks, records, registrar, maps).
    pub took: Duration,
    /// When the address's lifetime on the interface was last renewed.
    renewed: Instant,
}

/// The v4 blocks of home addresses as prefixes (for the proxy-ARP routes).
fn home_routes(ctx: &Ctx, blocks: &Blocks) -> Vec<(Ipv4Addr, u8)> {
    let (Some(l), Some(pool)) = (blocks.layout(Space::Home4), ctx.cfg.ipv4_pools().next()) else {
        return Vec::new();
    };
    let net = u32::from(pool.prefix.network());
    let len = 32 - l.block_len.trailing_zeros() as u8;
    blocks
        .owned(Space::Home4)
        .into_iter()
        .map(|b| (Ipv4Addr::from(net + b * l.block_len), len))
        .collect()
}

/// The first IPv4 access gateway: the block routes lead there (TC egress
/// tunnels host traffic to whoever really serves the address).
fn route_via(ctx: &Ctx) -> Option<Ipv4Addr> {
    ctx.cfg.peers.iter().find_map(|p| match p.address {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    })
}

/// The registrar of this service address, restored from its records.
struct Built<E> {
    ep: E,
    restored: usize,
}

fn build_lma(
    ctx: &Ctx,
    addr: IpAddr,
    (rc, blocks): (u32, &Blocks),
    records: Vec<(RecordKey, Record)>,
) -> Built<lma::Lma> {
    let mut c = agents::lma(&ctx.cfg, rc);
    c.local = LocalAddrs::from(addr);
    let mut l = lma::Lma::new(c, Instant::now(), SystemTime::now());
    l.use_blocks(blocks);
    // With more than one (`store.writes_in_flight`), pass N+1 is read and
    // its write sent while pass N's is on its way to etcd (docs/cluster.md,
    // "in flight"); answers still wait for their own.
    l.set_writes_in_flight(ctx.cfg.store.etcd.writes_in_flight);
    l.set_pass_max(ctx.cfg.store.etcd.batch_max);
    if ctx.cfg.cluster.as_ref().and_then(|c| c.cluster_address) == Some(addr) {
        l.use_assigner(ctx.assigner.clone());
    }
    let r = l.restore(Instant::now(), records);
    Built {
        ep: l,
        restored: r.bindings,
    }
}

fn build_ha(
    ctx: &Ctx,
    addr: IpAddr,
    blocks: &Blocks,
    records: Vec<(RecordKey, Record)>,
) -> Result<Built<ha::Ha>> {
    let IpAddr::V4(a) = addr else {
        bail!("{addr}: PMIPv4 service addresses are IPv4");
    };
    let mut c = agents::ha(&ctx.cfg)?;
    c.address = a;
    let mut h = ha::Ha::new(c, Clock::new(Instant::now(), SystemTime::now()));
    h.use_blocks(blocks);
    if ctx.cfg.cluster.as_ref().and_then(|c| c.cluster_address) == Some(addr) {
        h.use_assigner(ctx.assigner.clone());
    }
    let r = h.restore(Instant::now(), records);
    Ok(Built {
        ep: h,
        restored: r.bindings,
    })
}

/// The blocks of `addr`: those it owns in etcd, and enough more to start.
async fn blocks_of(ctx: &Ctx, addr: IpAddr, fence: &Fence) -> Result<Blocks> {
    let cl = ctx.cluster();
    let blocks = Blocks::new(etcd_blocks::layouts(&ctx.cfg, cl.block_size));
    etcd_blocks::load(&ctx.conn, &blocks, addr).await?;
    for s in blocks.spaces() {
        let n = blocks.wanted(s, etcd_blocks::CLAIM_AT_ONCE);
        if n > 0 {
            etcd_blocks::claim(&ctx.conn, &blocks, s, (addr, fence), n).await?;
        }
    }
    Ok(blocks)
}

/// Claims blocks whenever a space of `blocks` runs low, adding their routes.
fn spawn_refill(ctx: &Ctx, addr: IpAddr, fence: Fence, blocks: Blocks) -> JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            blocks.wait_low().await;
            for s in blocks.spaces() {
                let n = blocks.wanted(s, etcd_blocks::CLAIM_AT_ONCE);
                if n == 0 {
                    continue;
                }
                match etcd_blocks::claim(&ctx.conn, &blocks, s, (addr, &fence), n).await {
                    Ok(got) if s == Space::Home4 && !got.is_empty() => {
                        ctx.route_blocks(addr, &blocks)
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%addr, space = s.name(), "claiming blocks: {e:#}"),
                }
            }
        }
    })
}

/// The service address's records and its restart counter (RFC 5847 §5.2:
/// the one of its node record, so a takeover changes nothing the access
/// gateways see; a new one the first time).
fn records_of(store: &mut EtcdStore) -> Result<(Vec<(RecordKey, Record)>, u32)> {
    let mut records = store.scan().context("reading the service's records")?;
    let node = records.iter().find_map(|(k, r)| match (k, r) {
        (RecordKey::Node, Record::Node(n)) => Some(n.clone()),
        _ => None,
    });
    records.retain(|(k, _)| *k != RecordKey::Node);
    let (rc, rec) = restart_counter(node.as_ref(), SystemTime::now());
    if node.is_none() {
        store.apply(&[StoreOp::Put(RecordKey::Node, Record::Node(rec))])?;
    }
    Ok((records, rc))
}

impl Service {
    /// Takes `addr` up; the caller owns it in etcd under `fence`.
    pub(crate) async fn start(ctx: &Ctx, addr: IpAddr, fence: Fence) -> Result<Service> {
        let t0 = Instant::now();
        let blocks = blocks_of(ctx, addr, &fence).await?;
        let mut store = EtcdStore::new(
            ctx.conn.clone(),
            addr,
            Some(fence.clone()),
            ctx.buckets.clone(),
        );
        let health = store.health();
        *health.admission.lock().unwrap_or_else(|e| e.into_inner()) = Some(blocks.clone());
        let (records, rc) = records_of(&mut store)?;
        let tracked = Tracked::new(ctx.dp.clone());
        let core = &ctx.cfg.interfaces.core;
        net::add_address(core, addr, ctx.cfg.store.etcd.lease_ttl)?;
        let renewed = Instant::now();
        let (handle, restored) = match ctx.cfg.protocol {
            Protocol::Pmipv6 => {
                let b = build_lma(ctx, addr, (rc, &blocks), records);
                let sockets = super::esp::sockets(ctx, addr, &fence)?;
                (
                    shell::spawn(b.ep, sockets, tracked.clone(), store),
                    b.restored,
                )
            }
            Protocol::Pmipv4 => {
                let b = build_ha(ctx, addr, &blocks, records)?;
                let IpAddr::V4(a) = addr else {
                    unreachable!("build_ha checked")
                };
                let sock = Udp434::bind(std::net::SocketAddrV4::new(a, crate::pmipv4::wire::PORT))
                    .with_context(|| format!("binding UDP {a}:434"))?
                    .with_gso(ctx.cfg.signaling.udp_gso)
                    .with_gro(ctx.cfg.signaling.udp_gso);
                (shell::spawn(b.ep, sock, tracked.clone(), store), b.restored)
            }
        };
        // The shell's first flush (before it answers anything) installs the
        // restored bindings: once it answers, the maps are ready.
        let _ = handle.report().await;
        ctx.route_blocks(addr, &blocks);
        let announced = ctx.announce(addr, &tracked);
        let took = t0.elapsed();
        tracing::info!(
            %addr, restored, restart_counter = rc, announced, ?took,
            "serving service address"
        );
        let refill = spawn_refill(ctx, addr, fence, blocks.clone());
        Ok(Service {
            addr,
            handle,
            blocks,
            tracked,
            health,
            refill,
            since: Instant::now(),
            restored,
            restart_counter: rc,
            took,
            renewed,
        })
    }

    /// Renews the address's lifetime on the interface (one lease TTL, see
    /// `net`) once a third of it has passed: called while the address may
    /// be served, holding through a lost quorum included.
    pub(crate) fn renew_address(&mut self, ctx: &Ctx, now: Instant) {
        let ttl = ctx.cfg.store.etcd.lease_ttl;
        if now < self.renewed + ttl / 3 {
            return;
        }
        let core = &ctx.cfg.interfaces.core;
        // A control loop that stalled longer than the lifetime finds the
        // address gone, and the kernel took the block routes with it (their
        // source is the address): put both back, or the correspondent side
        // stops reaching our subscribers (no proxy-ARP answer, no route).
        match net::add_address(core, self.addr, ttl) {
            Ok(gone) => {
                self.renewed = now;
                if gone {
                    tracing::warn!(addr = %self.addr, "address had left the interface: added again with its block routes");
                    ctx.route_blocks(self.addr, &self.blocks);
                }
            }
            Err(e) => tracing::warn!(addr = %self.addr, "renewing the address: {e:#}"),
        }
    }

    /// Gives the address up: nothing of it stays in the maps or on the host.
    pub(crate) async fn stop(self, ctx: &Ctx, why: &str) {
        let removed = self.tracked.fence_and_remove();
        self.blocks.set_open(false);
        self.refill.abort();
        ctx.unroute_blocks(&self.blocks);
        net::del_address(&ctx.cfg.interfaces.core, self.addr);
        tracing::warn!(addr = %self.addr, removed, "gave up service address: {why}");
        // The registrar may be blocked on etcd: do not wait long for it.
        let _ = self.handle.stop(Duration::from_millis(300)).await;
    }

    pub(crate) async fn report(&self) -> Option<Report> {
        self.handle.report().await
    }

    /// Operator release (only the service holding what it names acts).
    pub(crate) fn command(&self, cmd: AnchorCommand) {
        self.handle.command(cmd);
    }

    /// Has the store been told another member owns this address?
    pub(crate) fn lost(&self) -> bool {
        self.health
            .not_owner
            .load(std::sync::atomic::Ordering::Relaxed)
            || self.handle.task.is_finished()
    }
}

/// Home addresses of `tracked` plus nothing else: what `announce` sends for.
pub(crate) fn announce_list(tracked: &Tracked) -> Vec<Ipv4Addr> {
    let mut h = tracked.homes();
    h.sort_unstable();
    h.dedup();
    h
}

/// The routes of `blocks` (for `Ctx`).
pub(crate) fn routes_of(ctx: &Ctx, blocks: &Blocks) -> (Vec<(Ipv4Addr, u8)>, Option<Ipv4Addr>) {
    (home_routes(ctx, blocks), route_via(ctx))
}
