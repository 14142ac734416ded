//! The member's control loop: after every change (lease standing, members,
//! owners, a dead member, a timer, a request) it reconciles what this member
//! serves with what etcd and its lease allow.
//!
//! 1. Lease lost → give everything up, join again with a new lease.
//! 2. Lease ending (cut off from etcd) → give everything up, before etcd
//!    ends the lease and another member can claim (see `member`) — unless
//!    etcd has lost its quorum and the other members agree: then hold what
//!    is served, admit nothing new (`member`, "holds").
//! 3. An address served here that etcd says is someone else's → give it up.
//! 4. Ours in etcd under an older lease of ours (a restart) → revoke it.
//! 5. Ours in etcd and not served → serve it (after a flap of the lease).
//! 6. Free addresses → claimed, first by the designated member, after the
//!    takeover fence; by the others later, in case it is dead too.
//! 7. Allocation of new numbers open only while the lease is valid.
//!
//! A member the heartbeats declare dead has its lease revoked at once, so its
//! addresses become free without waiting for the lease to run out. A member
//! whose etcd starts working again (joined, or the quorum back) claims
//! nothing for one heartbeat timeout: members holding on without etcd hear
//! from it first and stop.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::heartbeat::{self, OurEtcd, Quiet};
use super::member::{self, MemberRecord, Standing};
use super::mirror::{self, Snapshot};
use super::owners::View;
use super::service::Service;
use super::{Cmd, Ctx};
use crate::agent::registrar::AnchorCommand;
use crate::agent::shell::Report;
use crate::store::wall_ms;

pub(super) struct Loop {
    pub(super) ctx: Ctx,
    pub(super) me: MemberRecord,
    pub(super) stand: watch::Receiver<Standing>,
    pub(super) members: watch::Receiver<Snapshot>,
    pub(super) owners: watch::Receiver<Snapshot>,
    pub(super) loads: watch::Receiver<Snapshot>,
    hb_members: watch::Sender<heartbeat::Members>,
    dead_rx: mpsc::UnboundedReceiver<String>,
    /// When each member was heard last (the heartbeat task writes it).
    heard: heartbeat::Heard,
    pub(super) dead: BTreeSet<String>,
    pub(super) services: BTreeMap<IpAddr, Service>,
    /// The registrars' configuration of the last reload that changed what
    /// they take (keys, profiles): a service started later is built from
    /// the configuration of the start and takes it too.
    reconfig: Option<crate::agent::registrar::Reconfig>,
    /// When each free address was first seen free.
    free_since: BTreeMap<IpAddr, Instant>,
    joined: Instant,
    revoked: BTreeSet<i64>,
    /// Every other member heard, none with a working etcd (heartbeat.rs).
    quiet: watch::Receiver<Quiet>,
    /// Our etcd (until when it works, when we renewed, since when our
    /// keepalives go unanswered), for our heartbeats.
    works: watch::Sender<OurEtcd>,
    /// No claims before this (our etcd started working again).
    claim_after: Instant,
    /// The last moment the others were quiet (heartbeat.rs), and since
    /// when they had been without a break.
    quiet_at: Option<Instant>,
    quiet_since: Option<Instant>,
    /// Since when our own word "my etcd works" has been off (None: on, or
    /// never said).
    word_off_since: Option<Instant>,
}

/// This member's own address (heartbeats come from and go to it).
fn own_addr(ctx: &Ctx) -> Result<IpAddr> {
    ctx.cfg
        .addresses
        .ipv4
        .map(IpAddr::V4)
        .or(ctx.cfg.addresses.ipv6.map(IpAddr::V6))
        .ok_or_else(|| anyhow!("addresses: the member needs an address of its own"))
}

async fn join(ctx: &Ctx) -> Result<(MemberRecord, watch::Receiver<Standing>)> {
    let cl = ctx.cluster();
    let addr = own_addr(ctx)?;
    let ttl = ctx.cfg.store.etcd.lease_ttl;
    let me = member::join(
        &ctx.conn,
        |lease| MemberRecord {
            name: cl.member.clone(),
            addr,
            heartbeat_port: cl.heartbeat_port,
            lease,
            started_ms: wall_ms(std::time::SystemTime::now()),
        },
        ttl,
    )
    .await
    .context("joining the cluster in etcd")?;
    let (tx, rx) = watch::channel(Standing::Valid {
        lease: me.lease,
        until: Instant::now() + ttl,
        fresh: true,
        since: None,
    });
    let conn = ctx.conn.clone();
    ctx.conn
        .runtime()
        .spawn(member::keep_alive(conn, me.lease, ttl, tx));
    tracing::info!(member = %me.name, lease = format!("{:x}", me.lease), "joined the cluster");
    Ok((me, rx))
}

/// The heartbeats' side of the loop: members to watch, who died, and what
/// they say of etcd (ours out, theirs in).
struct Heartbeats {
    members: watch::Sender<heartbeat::Members>,
    dead: mpsc::UnboundedReceiver<String>,
    heard: heartbeat::Heard,
    works: watch::Sender<OurEtcd>,
    quiet: watch::Receiver<Quiet>,
}

/// Starts the heartbeats on the etcd runtime.
async fn start_heartbeat(ctx: &Ctx, me: &MemberRecord) -> Result<Heartbeats> {
    let cl = ctx.cluster();
    let bind = SocketAddr::new(me.addr, cl.heartbeat_port);
    let (mtx, mrx) = watch::channel(Vec::new());
    let (dtx, drx) = mpsc::unbounded_channel();
    let now = Instant::now();
    let (works, works_rx) = watch::channel(OurEtcd {
        works_until: Some(now + ctx.cfg.store.etcd.lease_ttl),
        renewed: Some(now),
        unanswered_since: None,
    });
    let (quiet_tx, quiet) = watch::channel(Quiet::No);
    let heard = heartbeat::Heard::default();
    let sense = heartbeat::EtcdSense {
        ours: works_rx,
        quiet: quiet_tx,
        heard: heard.clone(),
    };
    let std = std::net::UdpSocket::bind(bind)
        .with_context(|| format!("cluster.heartbeat_port: binding {bind}"))?;
    std.set_nonblocking(true)?;
    let me2 = (me.name.clone(), me.lease);
    let timing = (cl.heartbeat_interval, cl.heartbeat_misses);
    ctx.conn.runtime().spawn(async move {
        match tokio::net::UdpSocket::from_std(std) {
            Ok(s) => heartbeat::run(Arc::new(s), me2, timing, mrx, dtx, sense).await,
            Err(e) => tracing::error!("heartbeat socket: {e}"),
        }
    });
    Ok(Heartbeats {
        members: mtx,
        dead: drx,
        heard,
        works,
        quiet,
    })
}

/// Joins, starts watching, and runs the loop in a task of its own.
pub(super) async fn spawn(ctx: Ctx, cmds: mpsc::Receiver<Cmd>) -> Result<JoinHandle<()>> {
    let (me, stand) = join(&ctx).await?;
    let hb = start_heartbeat(&ctx, &me).await?;
    let keys = &ctx.conn.keys;
    let members = mirror::spawn(&ctx.conn, keys.members());
    let owners = mirror::spawn(&ctx.conn, keys.owners());
    let loads = mirror::spawn(&ctx.conn, keys.loads());
    let l = Loop {
        ctx,
        me,
        stand,
        members,
        owners,
        loads,
        hb_members: hb.members,
        dead_rx: hb.dead,
        heard: hb.heard,
        dead: BTreeSet::new(),
        services: BTreeMap::new(),
        reconfig: None,
        free_since: BTreeMap::new(),
        joined: Instant::now(),
        revoked: BTreeSet::new(),
        quiet: hb.quiet,
        works: hb.works,
        claim_after: Instant::now(),
        quiet_at: None,
        quiet_since: None,
        word_off_since: None,
    };
    Ok(tokio::spawn(l.run(cmds)))
}

impl Loop {
    pub(super) fn view(&self) -> View {
        View::from(&self.members.borrow(), &self.owners.borrow())
    }

    fn margin(&self) -> Duration {
        self.ctx.cfg.store.etcd.lease_ttl / 4
    }

    /// Every address of the cluster: service addresses, then the cluster address.
    fn addresses(&self) -> Vec<IpAddr> {
        let cl = self.ctx.cluster();
        cl.service_addresses
            .iter()
            .chain(&cl.cluster_address)
            .copied()
            .collect()
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.reconcile().await;
            let wake = tokio::time::Instant::from_std(self.next_deadline());
            tokio::select! {
                r = self.stand.changed() => {
                    if r.is_err() {
                        // The keepalive task ended: its lease is gone.
                        let lease = self.me.lease;
                        self.stand = watch::channel(Standing::Lost { lease }).1;
                    }
                }
                _ = self.members.changed() => self.members_changed(),
                // Targets follow ownership at once: a burst of attaches at
                // the cluster address must not wait for the next published
                // load to be sent to an address just taken over (or away
                // from one whose owner died).
                _ = self.owners.changed() => self.update_assigner(),
                _ = self.quiet.changed() => {}
                _ = self.loads.changed() => self.update_assigner(),
                Some(m) = self.dead_rx.recv() => self.member_died(m).await,
                _ = tokio::time::sleep_until(wake) => {}
                _ = tick.tick() => {}
                _ = publish.tick() => self.publish_load().await,
                c = cmds.recv() => match c {
                    None => {
                        self.leave().await;
                        return;
                    }
                    Some(Cmd::Stop(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                },
            }
        }
    }

    /// The earliest moment something must be looked at again.
    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut t = now + Duration::from_secs(1);
        if let Standing::Valid { until, .. } | Standing::Stalled { until, .. } =
            *self.stand.borrow()
        {
            // The lease's end (with a full margin, and with a quarter of
            // it while the others' word is pending), and the end of holding
            // on without a word from etcd (member: `may_serve`).
            let ttl = self.ctx.cfg.store.etcd.lease_ttl;
            for end in [until, until + self.margin() * 3 / 4, until + ttl] {
                if let Some(e) = end.checked_sub(self.margin()).filter(|e| *e > now) {
                    t = t.min(e);
                }
            }
        }
        for since in self.free_since.values() {
            t = t.min(*since + self.ctx.cluster().takeover_fence);
        }
        // The end of the grace after the others stopped being quiet.
        if let Some(end) = self.quiet_grace_end().filter(|e| *e > now) {
            t = t.min(end);
        }
        t.max(now + Duration::from_millis(5))
    }

    fn members_changed(&mut self) {
        let view = self.view();
        let others: heartbeat::Members = view
            .members
            .values()
            .filter(|m| m.name != self.me.name)
            .map(|m| (m.name.clone(), SocketAddr::new(m.addr, m.heartbeat_port)))
            .collect();
        // A member that left etcd is no longer dead, just gone; one that
        // joined again (new lease) starts alive.
        self.dead.retain(|d| view.members.contains_key(d));
        let _ = self.hb_members.send(others);
        self.update_assigner();
    }

    /// A member went silent: revoke its lease, so what it owned is free now
    /// — unless it has been heard again since the report was sent (this
    /// loop may have been waiting on etcd meanwhile), or our etcd has no
    /// quorum now: a revocation would wait for the quorum and land, stale,
    /// when it is back, on a member that may well be alive then (a CI host
    /// starved during a quorum loss had the three anchors revoke each
    /// other this way). A member really gone then keeps its lease until it
    /// runs out, which takes over as well, a TTL later.
    async fn member_died(&mut self, name: String) {
        let Some(rec) = self.view().members.get(&name).cloned() else {
            return;
        };
        let now = Instant::now();
        let heard = self.heard.lock().ok().and_then(|h| h.get(&name).copied());
        if heard.is_some_and(|t| now.saturating_duration_since(t) < self.hb_timeout()) {
            tracing::info!(member = %name, "heard again since it went silent: not revoking");
            return;
        }
        self.dead.insert(name.clone());
        self.update_assigner();
        if self.works.borrow().works_until.is_none_or(|t| now >= t) {
            tracing::warn!(
                member = %name,
                "no heartbeat, but our etcd has no quorum: not revoking its lease (it runs out if the member is gone)"
            );
            return;
        }
        tracing::warn!(member = %name, "no heartbeat: revoking its lease");
        self.revoke(rec.lease).await;
    }

    async fn revoke(&mut self, lease: i64) {
        if !self.revoked.insert(lease) {
            return;
        }
        let mut c = self.ctx.conn.client();
        if let Err(e) = self
            .ctx
            .conn
            .timed("lease revoke", c.lease_revoke(lease))
            .await
        {
            tracing::debug!("revoking lease {lease:x}: {e:#}");
        }
    }

    /// Says in our heartbeats whether our etcd works: until the next
    /// keepalive has had its wait (`member::word_lasts`), so the word ends soon after a
    /// quorum is lost even while a keepalive hangs. When it starts working
    /// again, claims wait until the others have heard it. The heartbeats
    /// also carry when we renewed last, and the others' word is weighed
    /// against when our keepalives went unanswered (`Quiet::Pending`).
    fn tell_works(&mut self, st: Standing, now: Instant) {
        let ttl = self.ctx.cfg.store.etcd.lease_ttl;
        let renewed = match st {
            Standing::Valid { until, .. } | Standing::Stalled { until, .. } => {
                until.checked_sub(ttl)
            }
            Standing::Lost { .. } => None,
        };
        let ours = OurEtcd {
            works_until: renewed
                .filter(|_| st.etcd_works())
                .map(|r| r + member::word_lasts(ttl)),
            renewed,
            unanswered_since: st.unanswered_since(),
        };
        let before = self.works.borrow().works_until.is_some_and(|t| now < t);
        let after = ours.works_until.is_some_and(|t| now < t);
        if after && !before {
            // A holder that heard us without etcd may go on for as long
            // as the others were quiet, up to a lease (`quiet_grace_end`):
            // claims wait that long and a heartbeat timeout more, so it
            // hears us first and stops.
            let off = self
                .word_off_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            self.claim_after = now + member::claim_wait(self.hb_timeout(), off, ttl);
        }
        if after {
            self.word_off_since = None;
        } else {
            // Off since it ended (not since we noticed).
            let ended = self.works.borrow().works_until.filter(|t| *t <= now);
            self.word_off_since.get_or_insert(ended.unwrap_or(now));
        }
        self.works
            .send_if_modified(|w| std::mem::replace(w, ours) != ours);
    }

    /// Are the others quiet — or were they a moment ago? When the quorum
    /// comes back, some members renew before others; one still holding
    /// gets the time the others wait before claiming anything (`tell_works`)
    /// to renew its own lease (which the new leader extended) instead of
    /// stopping at once. One whose lease really ended (the quorum was
    /// elsewhere all along) stops before anyone can claim its addresses.
    fn quiet_now(&mut self, now: Instant) -> Quiet {
        let q = *self.quiet.borrow();
        if q == Quiet::Yes {
            self.quiet_at = Some(now);
            self.quiet_since.get_or_insert(now);
            return q;
        }
        if self.quiet_grace_end().is_some_and(|end| now < end) {
            return Quiet::Yes;
        }
        self.quiet_since = None;
        q
    }

    /// Until when the others count as quiet after they stopped: a
    /// heartbeat timeout, or as long as they had been quiet, up to the
    /// lease's TTL less the margin. After a lost quorum the first member
    /// to reach etcd again ends the quiet at once, while the others'
    /// clients may take seconds to get through to the new leader; their
    /// leases are safe that long — a new leader gives every lease a full
    /// TTL (member.rs) and the member that got through claims nothing for
    /// as long as its word was off, up to a TTL, and a heartbeat timeout
    /// more (`tell_works`), and the holder heard its word before that.
    fn quiet_grace_end(&self) -> Option<Instant> {
        let at = self.quiet_at?;
        let quiet_for = at - self.quiet_since.unwrap_or(at);
        let ttl = self.ctx.cfg.store.etcd.lease_ttl;
        Some(at + member::quiet_grace(self.hb_timeout(), quiet_for, ttl, self.margin()))
    }

    fn hb_timeout(&self) -> Duration {
        let cl = self.ctx.cluster();
        cl.heartbeat_interval * cl.heartbeat_misses
    }

    async fn reconcile(&mut self) {
        let now = Instant::now();
        let st = *self.stand.borrow();
        self.tell_works(st, now);
        if let Standing::Lost { .. } = st {
            self.stop_all("lease lost").await;
            self.rejoin().await;
            return;
        }
        let quiet = self.quiet_now(now);
        let detect = self.ctx.cfg.store.etcd.lease_ttl;
        if !st.may_serve(now, self.margin(), (quiet, detect)) {
            let why = match st {
                Standing::Stalled { .. } => {
                    "lease ending: etcd has no leader, but another member has etcd or is not heard"
                }
                _ => "lease ending: cut off from etcd",
            };
            // Times from now (ms, negative: past), for the log.
            let ms = |t: Instant| {
                t.saturating_duration_since(now).as_millis() as i64
                    - now.saturating_duration_since(t).as_millis() as i64
            };
            let (until, since) = match st {
                Standing::Valid { until, since, .. } => (Some(ms(until)), since.map(ms)),
                Standing::Stalled { until, since, .. } => (Some(ms(until)), Some(ms(since))),
                Standing::Lost { .. } => (None, None),
            };
            let why = format!("{why} (the others: {quiet:?}; lease end {until:?} ms, unrenewed since {since:?} ms)");
            self.stop_all(&why).await;
            return;
        }
        // Served (or held): the addresses stay on the interface a TTL more.
        for s in self.services.values_mut() {
            s.renew_address(&self.ctx, now);
        }
        let view = self.view();
        self.drop_lost(&view, st.lease()).await;
        // Holding (or about to): serve what we have, take nothing up.
        // While the view of etcd is being read again (a watch broke, e.g.
        // its etcd member died) nothing is claimed or revoked, but new
        // bindings are still taken: their writes are fenced by ownership in
        // etcd itself, so a stale view cannot make one land where it should
        // not (closing admission for the resync refused subscribers while
        // one etcd member of three was down, which should show nothing).
        if !view.synced || !st.lease_valid(now, self.margin()) {
            self.set_admission(st.may_admit(now, self.margin()));
            return;
        }
        self.revoke_stale(&view, st.lease()).await;
        for (addr, o) in &view.owners {
            if o.member == self.me.name
                && o.lease == st.lease()
                && !self.services.contains_key(addr)
            {
                self.serve(*addr, st.lease()).await;
            }
        }
        self.claim_free(&view, st.lease(), now).await;
        self.set_admission(st.may_admit(now, self.margin()));
    }

    /// Gives up what etcd says is not ours (any more).
    async fn drop_lost(&mut self, view: &View, lease: i64) {
        let gone: Vec<IpAddr> = self
            .services
            .iter()
            .filter(|(a, s)| {
                let theirs = view.synced
                    && view
                        .owners
                        .get(a)
                        .is_none_or(|o| o.member != self.me.name || o.lease != lease);
                theirs || s.lost()
            })
            .map(|(a, _)| *a)
            .collect();
        for a in gone {
            if let Some(s) = self.services.remove(&a) {
                s.stop(&self.ctx, "another member owns it now").await;
            }
        }
    }

    /// Addresses ours under an older lease (a restart within the TTL):
    /// revoke it, they become free and are claimed anew.
    async fn revoke_stale(&mut self, view: &View, lease: i64) {
        let stale: BTreeSet<i64> = view
            .owners
            .values()
            .filter(|o| o.member == self.me.name && o.lease != lease)
            .map(|o| o.lease)
            .collect();
        for l in stale {
            tracing::info!("revoking lease {l:x} of an earlier run of this member");
            self.revoke(l).await;
        }
        // A dead member that still owns addresses (its revocation failed).
        let dead: Vec<i64> = view
            .owners
            .values()
            .filter(|o| self.dead.contains(&o.member))
            .map(|o| o.lease)
            .collect();
        for l in dead {
            self.revoked.remove(&l);
            self.revoke(l).await;
        }
    }

    async fn claim_free(&mut self, view: &View, lease: i64, now: Instant) {
        let cl = self.ctx.cluster().clone();
        let all = self.addresses();
        self.free_since
            .retain(|a, _| !view.owners.contains_key(a) && all.contains(a));
        let mut grace = cl.heartbeat_interval * cl.heartbeat_misses;
        if view.owners.is_empty() {
            // A cold start of the whole cluster: the members' daemons start
            // within a moment of each other, not within a heartbeat timeout;
            // wait one lease TTL for them, so the addresses spread at once
            // instead of all falling to whoever started first.
            grace = grace.max(self.ctx.cfg.store.etcd.lease_ttl);
        }
        if now < self.joined + grace || now < self.claim_after {
            return;
        }
        let designated = view.designated(&all, &self.dead);
        let rank = view.rank(&self.me.name, &self.dead) as u32;
        for a in all {
            if view.owners.contains_key(&a) {
                continue;
            }
            let since = *self.free_since.entry(a).or_insert(now);
            let mut wait = cl.takeover_fence;
            if designated.get(&a) != Some(&self.me.name) {
                // Only if the designated member does not: it may be dead too.
                wait += cl.heartbeat_interval * 2 * (1 + rank);
            }
            if now >= since + wait && self.claim(a, lease).await {
                self.free_since.remove(&a);
                self.serve(a, lease).await;
            }
        }
    }

    /// Compare-and-set: the address becomes ours only if nobody owns it.
    async fn claim(&mut self, a: IpAddr, lease: i64) -> bool {
        let key = self.ctx.conn.keys.owner(a);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.me.name.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut c = self.ctx.conn.client();
        match self.ctx.conn.timed("claim", c.txn(txn)).await {
            Ok(r) => r.succeeded(),
            Err(e) => {
                tracing::debug!(%a, "claim: {e:#}");
                false
            }
        }
    }

    /// Starts serving an address we own; on failure lets it go again.
    async fn serve(&mut self, a: IpAddr, lease: i64) {
        let fence = crate::store::etcd::Fence {
            member: self.me.name.clone(),
            lease,
        };
        match Service::start(&self.ctx, a, fence).await {
            Ok(s) => {
                if let Some(r) = &self.reconfig {
                    s.command(AnchorCommand::Reconfigure(r.clone()));
                }
                self.services.insert(a, s);
            }
            Err(e) => {
                tracing::error!(addr = %a, "cannot serve: {e:#}");
                super::net::del_address(&self.ctx.cfg.interfaces.core, a);
                let key = self.ctx.conn.keys.owner(a);
                let txn = Txn::new()
                    .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
                    .and_then([TxnOp::delete(key.as_str(), None)]);
                let mut c = self.ctx.conn.client();
                let _ = self.ctx.conn.timed("release", c.txn(txn)).await;
            }
        }
    }

    fn set_admission(&self, open: bool) {
        for s in self.services.values() {
            s.blocks.set_open(open && !s.lost());
        }
    }

    async fn stop_all(&mut self, why: &str) {
        let all = std::mem::take(&mut self.services);
        for (_, s) in all {
            s.stop(&self.ctx, why).await;
        }
    }

    async fn rejoin(&mut self) {
        match join(&self.ctx).await {
            Ok((me, stand)) => {
                self.me = me;
                self.stand = stand;
                self.joined = Instant::now();
            }
            Err(e) => {
                tracing::warn!("rejoining the cluster: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Leaving: addresses given up, lease revoked (the others take over now).
    async fn leave(&mut self) {
        self.stop_all("leaving the cluster").await;
        let lease = self.me.lease;
        self.revoke(lease).await;
    }

    async fn publish_load(&mut self) {
        if !matches!(*self.stand.borrow(), Standing::Valid { .. }) {
            return;
        }
        let lease = self.me.lease;
        for (a, s) in &self.services {
            let v = serde_json::json!({
                "member": self.me.name,
                "bindings": s.tracked.count(),
            });
            let mut c = self.ctx.conn.client();
            let put = c.put(
                self.ctx.conn.keys.load(*a),
                v.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            );
            let _ = self.ctx.conn.timed("load", put).await;
        }
    }

    /// Runtime assignment targets: service addresses with a live owner.
    fn update_assigner(&mut self) {
        let view = self.view();
        let loads = self.loads.borrow().clone();
        let cl = self.ctx.cluster();
        let targets: Vec<(IpAddr, u64)> = cl
            .service_addresses
            .iter()
            .filter(|a| {
                view.owners
                    .get(a)
                    .is_some_and(|o| !self.dead.contains(&o.member))
            })
            .map(|a| {
                let load = loads
                    .entries
                    .get(&a.to_string())
                    .and_then(|e| serde_json::from_slice::<serde_json::Value>(&e.value).ok())
                    .and_then(|v| v["bindings"].as_u64())
                    .unwrap_or(0);
                (*a, load)
            })
            .collect();
        self.ctx.assigner.set_targets(&targets);
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Report(tx) => {
                let mut all = Report::default();
                for s in self.services.values() {
                    if let Some(r) = s.report().await {
                        merge(&mut all, r);
                    }
                }
                let _ = tx.send(all);
            }
            Cmd::Show(tx) => {
                let v = super::show::view(self).await;
                let _ = tx.send(v);
            }
            Cmd::Command(cmd) => {
                if let AnchorCommand::Reconfigure(r) = &cmd {
                    self.reconfig = Some(r.clone());
                }
                for s in self.services.values() {
                    s.command(cmd.clone());
                }
            }
            Cmd::Stop(tx) => {
                // Handled by the loop (it ends after it).
                let _ = tx.send(());
            }
        }
    }
}

/// Adds one service's report to the member's.
fn merge(all: &mut Report, r: Report) {
    all.bindings.extend(r.bindings);
    for (k, v) in r.counters {
        *all.counters.entry(k).or_default() += v;
    }
    for (k, v) in r.shell {
        *all.shell.entry(k).or_default() += v;
    }
}
