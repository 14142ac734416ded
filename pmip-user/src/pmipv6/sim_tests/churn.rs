//! Churn (issue 11): attach/detach cycles through a MAG and an LMA with
//! their data planes and the embedded store, and nothing may be left
//! behind — no map entry, no record, no id.
//!
//! `cargo test -p pmip-user --lib churn` runs 2 000 cycles; the figure in
//! RELIABILITY.md is `PMIP_CHURN_CYCLES=100000 cargo test --release -p
//! pmip-user --lib churn_figure -- --ignored --nocapture`.
use super::*;
use crate::store::{EmbeddedStore, Store, StoreOp};

const MAG_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 22, 15);

struct Pair {
    now: Instant,
    mag: Mag,
    lma: Lma,
    mag_dp: MemDataPlane,
    lma_dp: MemDataPlane,
    stores: [EmbeddedStore; 2],
    batches: u64,
}

impl Pair {
    fn new(dir: &std::path::Path) -> Pair {
        let now = Instant::now();
        let mut lcfg = lma_cfg();
        lcfg.default_profile = Some(Profile::default());
        lcfg.ipv4_pool = Some(Ipv4PoolConfig {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 16,
            gateway: Ipv4Addr::new(10, 0, 255, 254),
        });
        Pair {
            now,
            mag: Mag::new(mag_cfg(true, MAG1, MAG_V4), now, wall()),
            lma: Lma::new(lcfg, now, wall()),
            mag_dp: MemDataPlane::default(),
            lma_dp: MemDataPlane::default(),
            stores: [
                EmbeddedStore::open(&dir.join("mag.redb")).unwrap(),
                EmbeddedStore::open(&dir.join("lma.redb")).unwrap(),
            ],
            batches: 0,
        }
    }

    /// As the shells do: store batch first, then the maps, then the wire.
    fn run(&mut self) {
        loop {
            let b: Vec<StoreOp> =
                std::iter::from_fn(|| Endpoint::poll_store(&mut self.mag)).collect();
            if !b.is_empty() {
                self.stores[0].apply(&b).unwrap();
                self.batches += 1;
            }
            let b: Vec<StoreOp> =
                std::iter::from_fn(|| Endpoint::poll_store(&mut self.lma)).collect();
            if !b.is_empty() {
                self.stores[1].apply(&b).unwrap();
                self.batches += 1;
            }
            while let Some(c) = self.mag.poll_dp() {
                self.mag_dp.apply(&c).unwrap();
            }
            while let Some(c) = self.lma.poll_dp() {
                self.lma_dp.apply(&c).unwrap();
            }
            let up: Vec<Transmit> = std::iter::from_fn(|| self.mag.poll_transmit()).collect();
            let down: Vec<Transmit> = std::iter::from_fn(|| self.lma.poll_transmit()).collect();
            if up.is_empty() && down.is_empty() {
                return;
            }
            for t in up {
                self.lma.handle(
                    self.now,
                    Peer::V4(SocketAddrV4::new(MAG_V4, UDP_PORT)),
                    &t.payload,
                );
            }
            for t in down {
                self.mag.handle(
                    self.now,
                    Peer::V4(SocketAddrV4::new(LMA_V4, UDP_PORT)),
                    &t.payload,
                );
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.mag.handle_timeout(self.now);
        self.lma.handle_timeout(self.now);
        self.run();
    }
}

fn at(i: u32) -> AccessPoint {
    AccessPoint {
        ifindex: 3,
        vlan: 0,
        mac: [
            2,
            0,
            (i >> 24) as u8,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ],
    }
}

/// Runs `cycles` attach/detach cycles, `wave` subscribers at a time; returns
/// the pair for inspection and the wall time it took.
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
            let mut r = req(0);
            r.at = at(i);
            r.mn_id = format!("churn{i}@example.com").into_bytes();
            r.lma = "lma1".into();
            p.mag.attach(p.now, r);
        }
        p.run();
        assert_eq!(p.mag.active_count(), n as usize, "wave at {done}");
        assert_eq!(p.mag_dp.access.len(), n as usize);
        for i in done..done + n {
            p.mag.detach(p.now, at(i));
        }
        p.run();
        // MinDelayBeforeBCEDelete, then the LMA lets the entries go.
        p.advance(Duration::from_secs(11));
        done += n;
    }
    (p, t.elapsed(), dir)
}

fn assert_nothing_left(p: &mut Pair) {
    assert_eq!(p.mag.binding_count(), 0);
    assert_eq!(p.lma.binding_count(), 0);
    assert!(
        p.mag_dp.access.is_empty(),
        "{} access entries leaked",
        p.mag_dp.access.len()
    );
    assert!(
        p.lma_dp.anchor.is_empty(),
        "{} anchor entries leaked",
        p.lma_dp.anchor.len()
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
    let (mut p, _, _dir) = churn("churn", 2_000, 500);
    assert_nothing_left(&mut p);
    // The allocators come round without running dry.
    assert_eq!(p.lma.counters.registrations, 2_000);
    assert_eq!(p.lma.counters.deregistrations, 2_000);
}

#[test]
#[ignore = "the figure of RELIABILITY.md: run with --release"]
fn churn_figure() {
    let cycles = std::env::var("PMIP_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (mut p, took, _dir) = churn("churn-figure", cycles, 1_000);
    assert_nothing_left(&mut p);
    println!(
        "churn: {cycles} attach/detach cycles in {:.1} s ({:.0} cycles/s), {} store batches; \
         leaked: 0 access entries, 0 anchor entries, 0 records",
        took.as_secs_f64(),
        f64::from(cycles) / took.as_secs_f64(),
        p.batches
    );
}
