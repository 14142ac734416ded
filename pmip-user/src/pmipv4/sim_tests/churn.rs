//! Churn (issue 11), PMIPv4: registration/deregistration cycles through a
//! PMA and an HA with their data planes and the embedded store, and
//! nothing may be left behind — no map entry, no record, no binding.
//!
//! `cargo test -p pmip-user --lib churn` runs 2 000 cycles; the figure in
//! RELIABILITY.md is `PMIP_CHURN_CYCLES=100000 cargo test --release -p
//! pmip-user --lib churn_figure -- --ignored --nocapture`.
use super::*;
use crate::access::dhcp::tests::TmpDir;
use crate::sim_pair::{churn_at, Churn};

type Pair = crate::sim_pair::Pair<Pma, Ha>;

fn pair(tag: &str) -> (Pair, TmpDir) {
    let dir = TmpDir::new(tag);
    let now = Instant::now();
    let clock = || WallClock::new(now, wall0());
    let mut h = ha_cfg(HA1);
    // A /16: the fast path's window of 65 536 addresses.
    h.pool = Some(AddressPool {
        first: Ipv4Addr::new(10, 1, 0, 1),
        last: Ipv4Addr::new(10, 1, 255, 254),
    });
    let (pma, ha) = (Pma::new(pma_cfg(PMA1), clock()), Ha::new(h, clock()));
    let addrs = (
        Peer::V4(SocketAddrV4::new(PMA1, PORT)),
        Peer::V4(SocketAddrV4::new(HA1, PORT)),
    );
    (Pair::new(now, (pma, ha), addrs, &dir.0), dir)
}

const CHURN: Churn<Pma, Ha> = Churn {
    attach: |p, i| {
        let s = Subscriber::new(&format!("churn{i}@ex"), churn_at(i), HA1);
        p.access.attach(p.now, s);
    },
    detach: |p, i| p.access.detach(p.now, &format!("churn{i}@ex")),
    held: |p| p.anchor.binding_count(),
    settle: Duration::from_secs(1),
};

fn assert_nothing_left(p: &mut Pair) {
    assert_eq!(p.access.session_count(), 0);
    assert_eq!(p.anchor.binding_count(), 0);
    p.assert_nothing_left();
}

#[test]
fn churn_leaves_nothing_behind() {
    let (mut p, _dir) = pair("churn4");
    p.churn(&CHURN, 2_000, 500);
    assert_nothing_left(&mut p);
    assert_eq!(p.anchor.counters().registrations, 2_000);
    assert_eq!(p.anchor.counters().deregistrations, 2_000);
}

#[test]
#[ignore = "the figure of RELIABILITY.md: run with --release"]
fn churn_figure() {
    let (mut p, _dir) = pair("churn4-figure");
    p.churn_figure(&CHURN, " (PMIPv4)");
    assert_nothing_left(&mut p);
}
