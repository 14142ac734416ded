//! Address affinity at the LMA (issue 11, `agent/affinity.rs`): a released
//! IPv4 home address is held for the MN that had it; its next attach gets
//! it again (asked for or not), other MNs get other free addresses, and
//! only an otherwise exhausted pool gives a held address to someone else.
use super::*;

const A1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn home(s: &Sim, n: u8) -> Option<Ipv4Addr> {
    s.lma
        .binding(format!("mn{n}@example.com").as_bytes())
        .and_then(|b| b.home_v4.map(|h| h.0))
}

/// mn1 attaches, is deregistered and its entry deleted (after
/// MinDelayBeforeBCEDelete).
fn released(s: &mut Sim) {
    s.attach(0, req(1));
    assert_eq!(home(s, 1), Some(A1));
    s.mags[0].detach(s.now, ap(1));
    s.run();
    s.advance(Duration::from_secs(11));
    assert_eq!(s.lma.binding_count(), 0);
}

#[test]
fn released_address_is_held_for_its_mn() {
    let mut s = Sim::new(false);
    released(&mut s);
    s.attach(0, req(2));
    assert_ne!(home(&s, 2), Some(A1), "another MN gets another address");
    s.attach(0, req(1));
    assert_eq!(home(&s, 1), Some(A1), "the same MN gets its address again");
}

#[test]
fn mn_asking_for_its_released_address_is_not_refused() {
    let mut s = Sim::new(false);
    released(&mut s);
    // As its DHCP client does (INIT-REBOOT): it asks for what it had.
    let mut r = req(1);
    r.requested_v4 = Some(A1);
    s.attach(0, r);
    assert_eq!(home(&s, 1), Some(A1));
    assert_eq!(s.lma.counters.pbu_v4_not_authorized, 0);
    // Another MN asking for that address is still refused it (not its
    // own); its MAG then asks for any (RFC 5844 §3.2.3.2) and gets another.
    let mut s = Sim::new(false);
    released(&mut s);
    let mut r = req(2);
    r.requested_v4 = Some(A1);
    r.v4_hint = true;
    s.attach(0, r);
    assert!(home(&s, 2).is_some_and(|a| a != A1), "{:?}", home(&s, 2));
    assert_eq!(s.lma.counters.pbu_v4_not_authorized, 1);
}

#[test]
fn held_address_goes_to_another_mn_only_when_the_pool_is_exhausted() {
    let mut cfg = lma_cfg();
    // Two usable addresses: .1 and .2.
    cfg.ipv4_pool = Some(Ipv4PoolConfig {
        network: Ipv4Addr::new(192, 0, 2, 0),
        prefix_len: 30,
        gateway: Ipv4Addr::new(192, 0, 2, 3),
    });
    let mut s = Sim::new(false).with_lma(cfg);
    released(&mut s);
    s.attach(0, req(2));
    assert_eq!(home(&s, 2), Some(Ipv4Addr::new(192, 0, 2, 2)));
    s.attach(0, req(3));
    assert_eq!(home(&s, 3), Some(A1), "nothing else left: the held one");
}
