//! Test support: an access registrar and an anchor registrar back to back,
//! driven as the shells drive them (store batch first, then the maps, then
//! the wire), each with an in-memory data plane and an embedded store — for
//! the churn tests of both protocols.
use std::time::{Duration, Instant};

use crate::agent::{Endpoint, Peer, Transmit};
use crate::dataplane::{AccessPoint, DataPlane, MemDataPlane};
use crate::store::{EmbeddedStore, Store, StoreOp};

pub(crate) struct Pair<A, N> {
    pub now: Instant,
    pub access: A,
    pub anchor: N,
    pub access_dp: MemDataPlane,
    pub anchor_dp: MemDataPlane,
    /// The access registrar's store, then the anchor's.
    pub stores: [EmbeddedStore; 2],
    pub batches: u64,
    /// Where each is seen from by the other: (access, anchor).
    addrs: (Peer, Peer),
}

impl<A: Endpoint, N: Endpoint> Pair<A, N> {
    /// The pair at `now`, its stores in `dir`; `addrs`: the access and the
    /// anchor registrar's addresses as the other sees them.
    pub fn new(
        now: Instant,
        (access, anchor): (A, N),
        addrs: (Peer, Peer),
        dir: &std::path::Path,
    ) -> Self {
        Pair {
            now,
            access,
            anchor,
            access_dp: MemDataPlane::default(),
            anchor_dp: MemDataPlane::default(),
            stores: [
                EmbeddedStore::open(&dir.join("access.redb")).unwrap(),
                EmbeddedStore::open(&dir.join("anchor.redb")).unwrap(),
            ],
            batches: 0,
            addrs,
        }
    }

    /// Runs both until neither has anything to send.
    pub fn run(&mut self) {
        loop {
            self.flush_stores();
            while let Some(c) = self.access.poll_dp() {
                self.access_dp.apply(&c).unwrap();
            }
            while let Some(c) = self.anchor.poll_dp() {
                self.anchor_dp.apply(&c).unwrap();
            }
            let up: Vec<Transmit> = std::iter::from_fn(|| self.access.poll_transmit()).collect();
            let down: Vec<Transmit> = std::iter::from_fn(|| self.anchor.poll_transmit()).collect();
            if up.is_empty() && down.is_empty() {
                return;
            }
            for t in up {
                self.anchor.handle(self.now, self.addrs.0, &t.payload);
            }
            for t in down {
                self.access.handle(self.now, self.addrs.1, &t.payload);
            }
        }
    }

    fn flush_stores(&mut self) {
        let b: Vec<StoreOp> = std::iter::from_fn(|| self.access.poll_store()).collect();
        if !b.is_empty() {
            self.stores[0].apply(&b).unwrap();
            self.batches += 1;
        }
        let b: Vec<StoreOp> = std::iter::from_fn(|| self.anchor.poll_store()).collect();
        if !b.is_empty() {
            self.stores[1].apply(&b).unwrap();
            self.batches += 1;
        }
    }

    /// `d` later: both machines' timers, then [`run`](Self::run).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.access.handle_timeout(self.now);
        self.anchor.handle_timeout(self.now);
        self.run();
    }

    /// No map entry and no record left behind.
    pub fn assert_nothing_left(&mut self) {
        let (access, anchor) = (&self.access_dp.access, &self.anchor_dp.anchor);
        assert!(access.is_empty(), "{} access entries leaked", access.len());
        assert!(anchor.is_empty(), "{} anchor entries leaked", anchor.len());
        for s in &mut self.stores {
            let left = s.scan().unwrap();
            assert!(
                left.is_empty(),
                "{} records leaked: {:?}",
                left.len(),
                &left[..left.len().min(3)]
            );
        }
    }
}

/// What a churn test does with its pair (issue 11).
pub(crate) struct Churn<A, N> {
    /// Attaches the `i`th subscriber.
    pub attach: fn(&mut Pair<A, N>, u32),
    /// Detaches the `i`th subscriber.
    pub detach: fn(&mut Pair<A, N>, u32),
    /// How many bindings the registrars hold (all of a wave, once attached).
    pub held: fn(&Pair<A, N>) -> usize,
    /// How long after a wave's detaches the anchor lets its entries go.
    pub settle: Duration,
}

impl<A: Endpoint, N: Endpoint> Pair<A, N> {
    /// Runs `cycles` attach/detach cycles, `wave` subscribers at a time;
    /// returns the wall time it took.
    pub fn churn(&mut self, c: &Churn<A, N>, cycles: u32, wave: u32) -> Duration {
        let t = Instant::now();
        let mut done = 0;
        while done < cycles {
            let n = wave.min(cycles - done);
            for i in done..done + n {
                (c.attach)(self, i);
            }
            self.run();
            assert_eq!((c.held)(self), n as usize, "wave at {done}");
            assert_eq!(self.access_dp.access.len(), n as usize);
            for i in done..done + n {
                (c.detach)(self, i);
            }
            self.run();
            self.advance(c.settle);
            done += n;
        }
        t.elapsed()
    }

    /// The figure of RELIABILITY.md for `what` (`PMIP_CHURN_CYCLES`, 100 000
    /// by default, in waves of 1 000), once nothing is left behind.
    pub fn churn_figure(&mut self, c: &Churn<A, N>, what: &str) {
        let cycles = std::env::var("PMIP_CHURN_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let took = self.churn(c, cycles, 1_000);
        self.assert_nothing_left();
        println!(
            "churn{what}: {cycles} attach/detach cycles in {:.1} s ({:.0} cycles/s), \
             {} store batches; leaked: 0 access entries, 0 anchor entries, 0 records",
            took.as_secs_f64(),
            f64::from(cycles) / took.as_secs_f64(),
            self.batches
        );
    }
}

/// The `i`th churn subscriber's attachment (a MAC per number).
pub(crate) fn churn_at(i: u32) -> AccessPoint {
    let b = i.to_be_bytes();
    AccessPoint {
        ifindex: 3,
        vlan: 0,
        mac: [2, 0, b[0], b[1], b[2], b[3]],
    }
}
