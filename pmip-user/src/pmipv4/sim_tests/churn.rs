//! Churn (issue 11), PMIPv4: registration/deregistration cycles through a
//! PMA and an HA with their data planes and the embedded store, and
//! nothing may be left behind — no map entry, no record, no binding.
//!
//! `cargo test -p pmip-user --lib churn` runs 2 000 cycles; the figure in
//! RELIABILITY.md is `PMIP_CHURN_CYCLES=100000 cargo test --release -p
//! pmip-user --lib churn_figure -- --ignored --nocapture`.
use super::*;
use crate::store::{EmbeddedStore, Store, StoreOp};

struct Pair {
    now: Instant,
    pma: Pma,
    ha: Ha,
    pma_dp: MemDataPlane,
    ha_dp: MemDataPlane,
    stores: [EmbeddedStore; 2],
    batches: u64,
}

impl Pair {
    fn new(dir: &std::path::Path) -> Pair {
        let now = Instant::now();
        let clock = || WallClock::new(now, wall0());
        let mut h = ha_cfg(HA1);
        // A /16: the fast path's window of 65 536 addresses.
        h.pool = Some(AddressPool {
            first: Ipv4Addr::new(10, 1, 0, 1),
            last: Ipv4Addr::new(10, 1, 255, 254),
        });
        Pair {
            now,
            pma: Pma::new(pma_cfg(PMA1), clock()),
            ha: Ha::new(h, clock()),
            pma_dp: MemDataPlane::default(),
            ha_dp: MemDataPlane::default(),
            stores: [
                EmbeddedStore::open(&dir.join("pma.redb")).unwrap(),
                EmbeddedStore::open(&dir.join("ha.redb")).unwrap(),
            ],
            batches: 0,
        }
    }

    /// As the shells do: store batch first, then the maps, then the wire.
    fn run(&mut self) {
        loop {
            let b: Vec<StoreOp> =
                std::iter::from_fn(|| Endpoint::poll_store(&mut self.pma)).collect();
            if !b.is_empty() {
                self.stores[0].apply(&b).unwrap();
                self.batches += 1;
            }
            let b: Vec<StoreOp> =
                std::iter::from_fn(|| Endpoint::poll_store(&mut self.ha)).collect();
            if !b.is_empty() {
                self.stores[1].apply(&b).unwrap();
                self.batches += 1;
            }
            while let Some(c) = Endpoint::poll_dp(&mut self.pma) {
                self.pma_dp.apply(&c).unwrap();
            }
            while let Some(c) = Endpoint::poll_dp(&mut self.ha) {
                self.ha_dp.apply(&c).unwrap();
            }
            let up: Vec<Transmit> =
                std::iter::from_fn(|| Endpoint::poll_transmit(&mut self.pma)).collect();
            let down: Vec<Transmit> =
                std::iter::from_fn(|| Endpoint::poll_transmit(&mut self.ha)).collect();
            if up.is_empty() && down.is_empty() {
                return;
            }
            for t in up {
                let from = Peer::V4(SocketAddrV4::new(PMA1, PORT));
                Endpoint::handle(&mut self.ha, self.now, from, &t.payload);
            }
            for t in down {
                let from = Peer::V4(SocketAddrV4::new(HA1, PORT));
                Endpoint::handle(&mut self.pma, self.now, from, &t.payload);
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        Endpoint::handle_timeout(&mut self.pma, self.now);
        Endpoint::handle_timeout(&mut self.ha, self.now);
        self.run();
    }
}

fn at(i: u32) -> AccessPoint {
    let b = i.to_be_bytes();
    AccessPoint {
        ifindex: 3,
        vlan: 0,
        mac: [2, 0, b[0], b[1], b[2], b[3]],
    }
}

/// Runs `cycles` registration/deregistration cycles, `wave` subscribers at
/// a time; returns the pair for inspection and the wall time it took.
fn churn(
    tag: &str,
    cycles: u32,
    wave: u32,
) -> (Pair, Duration, crate::access::dhcp::tests::TmpDir) {
    let dir = crate::access::dhcp::tests::TmpDir::new(tag);
    let mut p = Pair::new(&dir.0);
    let t = Instant::now();
    let mut done = 0;
    while done < cycles {
        let n = wave.min(cycles - done);
        for i in done..done + n {
            let s = Subscriber::new(&format!("churn{i}@ex"), at(i), HA1);
            p.pma.attach(p.now, s);
        }
        p.run();
        assert_eq!(p.ha.binding_count(), n as usize, "wave at {done}");
        assert_eq!(p.pma_dp.access.len(), n as usize);
        for i in done..done + n {
            p.pma.detach(p.now, &format!("churn{i}@ex"));
        }
        p.run();
        p.advance(Duration::from_secs(1));
        done += n;
    }
    (p, t.elapsed(), dir)
}

fn assert_nothing_left(p: &mut Pair) {
    assert_eq!(p.pma.session_count(), 0);
    assert_eq!(p.ha.binding_count(), 0);
    assert!(
        p.pma_dp.access.is_empty(),
        "{} access entries leaked",
        p.pma_dp.access.len()
    );
    assert!(
        p.ha_dp.anchor.is_empty(),
        "{} anchor entries leaked",
        p.ha_dp.anchor.len()
    );
    for s in &mut p.stores {
        let left = s.scan().unwrap();
        assert!(
            left.is_empty(),
            "{} records leaked: {:?}",
            left.len(),
            &left[..left.len().min(3)]
        );
    }
}

#[test]
fn churn_leaves_nothing_behind() {
    let (mut p, _, _dir) = churn("churn4", 2_000, 500);
    assert_nothing_left(&mut p);
    assert_eq!(p.ha.counters().registrations, 2_000);
    assert_eq!(p.ha.counters().deregistrations, 2_000);
}

#[test]
#[ignore = "the figure of RELIABILITY.md: run with --release"]
fn churn_figure() {
    let cycles = std::env::var("PMIP_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (mut p, took, _dir) = churn("churn4-figure", cycles, 1_000);
    assert_nothing_left(&mut p);
    println!(
        "churn (PMIPv4): {cycles} registration/deregistration cycles in {:.1} s ({:.0} cycles/s), \
         {} store batches; leaked: 0 access entries, 0 anchor entries, 0 records",
        took.as_secs_f64(),
        f64::from(cycles) / took.as_secs_f64(),
        p.batches
    );
}
