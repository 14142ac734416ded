//! Address affinity at the HA (issue 11, `agent/affinity.rs`): a released
//! home address is held for the NAI that had it; its next registration
//! gets it again (asked for or not) instead of the pool's next address,
//! other NAIs get other free addresses, and only an otherwise exhausted
//! pool gives a held address to someone else.
use super::*;

const H1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

fn home(net: &mut Net, nai: &str) -> Option<Ipv4Addr> {
    net.ha(HA1).binding(nai).map(|b| b.home_address)
}

/// ue1 registers and deregisters (detach).
fn released(net: &mut Net) {
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    assert_eq!(home(net, "ue1@ex"), Some(H1));
    let now = net.now;
    net.pma(PMA1).detach(now, "ue1@ex");
    net.settle();
    assert_eq!(net.ha(HA1).binding_count(), 0);
}

#[test]
fn released_address_is_held_for_its_nai() {
    let mut net = basic();
    released(&mut net);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue2@ex", 2));
    net.settle();
    assert_ne!(
        home(&mut net, "ue2@ex"),
        Some(H1),
        "another NAI, another address"
    );
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    assert_eq!(home(&mut net, "ue1@ex"), Some(H1), "not renumbered");
}

#[test]
fn nai_asking_for_its_released_address_is_not_refused() {
    let mut net = basic();
    released(&mut net);
    let mut s = sub("ue1@ex", 1);
    s.static_home = Some(H1);
    let now = net.now;
    net.pma(PMA1).attach(now, s);
    net.settle();
    assert_eq!(home(&mut net, "ue1@ex"), Some(H1));
    // Another NAI asking for it is refused (129), as before.
    let mut net = basic();
    released(&mut net);
    let mut s = sub("ue2@ex", 2);
    s.static_home = Some(H1);
    let now = net.now;
    net.pma(PMA1).attach(now, s);
    net.settle();
    assert_eq!(home(&mut net, "ue2@ex"), None);
}

#[test]
fn held_address_goes_to_another_nai_only_when_the_pool_is_exhausted() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    let mut h = ha_cfg(HA1);
    h.pool = Some(AddressPool {
        first: H1,
        last: Ipv4Addr::new(10, 1, 0, 2),
    });
    net.add_ha(h);
    released(&mut net);
    for (n, nai) in [(2, "ue2@ex"), (3, "ue3@ex")] {
        let now = net.now;
        net.pma(PMA1).attach(now, sub(nai, n));
        net.settle();
    }
    assert_eq!(home(&mut net, "ue2@ex"), Some(Ipv4Addr::new(10, 1, 0, 2)));
    assert_eq!(home(&mut net, "ue3@ex"), Some(H1), "nothing else left");
}
