//! Churn (issue 11): attach/detach cycles through a MAG and an LMA with
//! their data planes and the embedded store, and nothing may be left
//! behind — no map entry, no record, no id.
//!
//! `cargo test -p pmip-user --lib churn` runs 2 000 cycles; the figure in
//! RELIABILITY.md is `PMIP_CHURN_CYCLES=100000 cargo test --release -p
//! pmip-user --lib churn_figure -- --ignored --nocapture`.
use super::*;
use crate::access::dhcp::tests::TmpDir;
use crate::sim_pair::{churn_at, Churn};

const MAG_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 22, 15);

type Pair = crate::sim_pair::Pair<Mag, Lma>;

fn pair(tag: &str) -> (Pair, TmpDir) {
    let dir = TmpDir::new(tag);
    let now = Instant::now();
    let mut lcfg = lma_cfg();
    lcfg.default_profile = Some(Profile::default());
    lcfg.ipv4_pool = Some(Ipv4PoolConfig {
        network: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 16,
        gateway: Ipv4Addr::new(10, 0, 255, 254),
    });
    let mag = Mag::new(mag_cfg(true, MAG1, MAG_V4), now, wall());
    let lma = Lma::new(lcfg, now, wall());
    let addrs = (
        Peer::V4(SocketAddrV4::new(MAG_V4, UDP_PORT)),
        Peer::V4(SocketAddrV4::new(LMA_V4, UDP_PORT)),
    );
    (Pair::new(now, (mag, lma), addrs, &dir.0), dir)
}

const CHURN: Churn<Mag, Lma> = Churn {
    attach: |p, i| {
        let mut r = req(0);
        r.at = churn_at(i);
        r.mn_id = format!("churn{i}@example.com").into_bytes();
        r.lma = "lma1".into();
        p.access.attach(p.now, r);
    },
    detach: |p, i| p.access.detach(p.now, churn_at(i)),
    held: |p| p.access.active_count(),
    // MinDelayBeforeBCEDelete, then the LMA lets the entries go.
    settle: Duration::from_secs(11),
};

fn assert_nothing_left(p: &mut Pair) {
    assert_eq!(p.access.binding_count(), 0);
    assert_eq!(p.anchor.binding_count(), 0);
    p.assert_nothing_left();
}

#[test]
fn churn_leaves_nothing_behind() {
    let (mut p, _dir) = pair("churn");
    p.churn(&CHURN, 2_000, 500);
    assert_nothing_left(&mut p);
    // The allocators come round without running dry.
    assert_eq!(p.anchor.counters.registrations, 2_000);
    assert_eq!(p.anchor.counters.deregistrations, 2_000);
}

#[test]
#[ignore = "the figure of RELIABILITY.md: run with --release"]
fn churn_figure() {
    let (mut p, _dir) = pair("churn-figure");
    p.churn_figure(&CHURN, "");
    assert_nothing_left(&mut p);
}
