//! Restarts and home agent outages (issue 11), sans-IO: the PMA and the HA
//! write their bindings to a store, a "restarted" one is a new machine
//! restored from it, and an HA goes silent, refuses or loses its state.
use std::collections::HashMap;

use super::*;
use crate::store::{MemStore, Record, Store};

/// Stores by node address, fed with every write the machines queued.
#[derive(Default)]
struct Stores(HashMap<Ipv4Addr, MemStore>);

impl Stores {
    fn sync(&mut self, net: &mut Net) {
        for (a, n, _) in net.nodes.iter_mut() {
            let batch: Vec<_> = match n {
                Node::Pma(p) => std::iter::from_fn(|| Endpoint::poll_store(p)).collect(),
                Node::Ha(h) => std::iter::from_fn(|| Endpoint::poll_store(h)).collect(),
            };
            self.0.entry(*a).or_default().apply(&batch).unwrap();
        }
    }
    fn of(&self, a: Ipv4Addr) -> MemStore {
        self.0.get(&a).cloned().unwrap_or_default()
    }
}

/// A clock that agrees with the nodes started at `t0`.
fn clock_at(net: &Net, t0: Instant) -> WallClock {
    WallClock::new(net.now, wall0() + (net.now - t0))
}

/// Replaces node `a` with `n` and an empty data plane (no pins).
fn replace(net: &mut Net, a: Ipv4Addr, n: Node) {
    let i = net.idx(a);
    net.nodes[i].1 = n;
    net.nodes[i].2 = MemDataPlane::default();
}

fn two_subscribers(net: &mut Net, stores: &mut Stores) {
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(7));
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue2@ex", 2));
    net.settle();
    stores.sync(net);
}

#[test]
fn restarted_pma_takes_up_its_bindings_and_renews_on_time() {
    let mut net = basic();
    let t0 = net.now;
    let mut st = Stores::default();
    two_subscribers(&mut net, &mut st);
    assert_eq!(st.of(PMA1).len(), 2);
    let before = net.dp(PMA1).access.clone();
    net.run_for(Duration::from_secs(100));
    let mut p = Pma::new(pma_cfg(PMA1), clock_at(&net, t0));
    let r = Endpoint::restore(&mut p, net.now, st.of(PMA1).scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (2, 0));
    replace(&mut net, PMA1, Node::Pma(p));
    let sent = net.requests(PMA1, HA1).len();
    net.settle();
    assert_eq!(
        net.requests(PMA1, HA1).len(),
        sent,
        "nothing registered twice"
    );
    assert_eq!(net.dp(PMA1).access, before);
    let ev = net.pma_events(PMA1);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, PmaEvent::Restored { .. }))
            .count(),
        2
    );
    // Renewals at 75 % of 600 s after each registration.
    net.run_for(Duration::from_secs(449 - 107));
    assert_eq!(net.ha(HA1).counters().renewals, 0);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.ha(HA1).counters().renewals, 1);
    net.run_for(Duration::from_secs(7));
    assert_eq!(net.ha(HA1).counters().renewals, 2);
    assert_eq!(net.ha(HA1).counters().registrations, 2);
    assert_eq!(
        net.pma(PMA1).registration("ue1@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 1)
    );
}

/// A CoA-Request's change of what RADIUS gave (issue 14) reaches the
/// session's record at once, and a restarted PMA gives it back.
#[test]
fn aaa_update_is_written_to_the_record() {
    use crate::agent::registrar::AccessCommand;
    let mut net = basic();
    let t0 = net.now;
    let mut st = Stores::default();
    two_subscribers(&mut net, &mut st);
    let stored = |st: &Stores| -> Vec<Option<Box<crate::store::AaaProfile>>> {
        let mut v: Vec<_> = st
            .of(PMA1)
            .scan()
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::Access(a) => Some((a.nai, a.aaa)),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, a)| a).collect()
    };
    assert_eq!(stored(&st), vec![None, None]);
    let aaa = Box::new(crate::store::AaaProfile {
        user_name: "02-00-00-00-00-02".into(),
        session_timeout_s: Some(40),
        dns: vec![Ipv4Addr::new(198, 51, 100, 54)],
        ..Default::default()
    });
    let (at, now) = (sub("ue2@ex", 2).at, net.now);
    let cmd = AccessCommand::UpdateAaa {
        at,
        aaa: aaa.clone(),
    };
    Endpoint::command(net.pma(PMA1), now, cmd);
    st.sync(&mut net);
    assert_eq!(stored(&st), vec![None, Some(aaa.clone())]);
    // An access point with no session: nothing written.
    let (other, now) = (sub("ue9@ex", 9).at, net.now);
    let cmd = AccessCommand::UpdateAaa {
        at: other,
        aaa: aaa.clone(),
    };
    Endpoint::command(net.pma(PMA1), now, cmd);
    st.sync(&mut net);
    assert_eq!(st.of(PMA1).len(), 2);
    let mut p = Pma::new(pma_cfg(PMA1), clock_at(&net, t0));
    let r = Endpoint::restore(&mut p, net.now, st.of(PMA1).scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (2, 0));
    let given: Vec<_> = std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            PmaEvent::Restored { nai, aaa, .. } => Some((nai, aaa)),
            _ => None,
        })
        .filter(|(nai, _)| nai == "ue2@ex")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(given, vec![Some(aaa)]);
}

#[test]
fn restarted_ha_takes_up_its_bindings() {
    let mut net = basic();
    let t0 = net.now;
    let mut st = Stores::default();
    two_subscribers(&mut net, &mut st);
    assert_eq!(st.of(HA1).len(), 2);
    let before: Vec<_> = ["ue1@ex", "ue2@ex"]
        .map(|n| net.ha(HA1).binding(n).unwrap())
        .to_vec();
    net.run_for(Duration::from_secs(1));
    let mut h = Ha::new(ha_cfg(HA1), clock_at(&net, t0));
    let r = Endpoint::restore(&mut h, net.now, st.of(HA1).scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (2, 0));
    replace(&mut net, HA1, Node::Ha(h));
    net.settle();
    assert_eq!(net.dp(HA1).anchor.len(), 2);
    // A replay of the last registration, within the replay window: the
    // Identification it carries was restored, so it is refused (133).
    let old = net
        .wire
        .iter()
        .rev()
        .find(|(s, _, p)| *s == PMA1 && p[0] == 1)
        .unwrap()
        .2
        .clone();
    net.inject(PMA1, HA1, &old);
    assert_eq!(net.ha(HA1).counters().ident_replayed, 1);
    net.run_for(Duration::from_secs(500));
    let c = net.ha(HA1).counters().clone();
    assert_eq!((c.renewals, c.registrations), (2, 0));
    for (n, b) in ["ue1@ex", "ue2@ex"].iter().zip(&before) {
        let now = net.ha(HA1).binding(n).unwrap();
        assert_eq!(
            (now.home_address, now.uplink_key),
            (b.home_address, b.uplink_key)
        );
    }
}

#[test]
fn ha_that_lost_its_state_renews_without_renumbering() {
    for window in [Duration::from_secs(600), Duration::ZERO] {
        let mut net = basic();
        let t0 = net.now;
        let now = net.now;
        net.pma(PMA1).attach(now, sub("ue1@ex", 1));
        net.pma(PMA1).attach(now, sub("ue2@ex", 2));
        net.settle();
        // ue1 leaves: 10.1.0.1 is free, ue2 keeps 10.1.0.2.
        net.pma(PMA1).detach(now, "ue1@ex");
        net.settle();
        net.run_for(Duration::from_secs(100));
        // The HA restarts with nothing: a new one (memory store).
        let mut c = ha_cfg(HA1);
        c.reregistration_window = window;
        let h = Ha::new(c, clock_at(&net, t0));
        replace(&mut net, HA1, Node::Ha(h));
        net.run_for(Duration::from_secs(400));
        let reg = net.pma(PMA1).registration("ue2@ex");
        if window.is_zero() {
            // Without the window, the renewal asks for an address nobody
            // authorised: refused (129). The registration stays until its
            // lifetime ends (RFC 5944 §3.7.3.2), then the subscriber loses
            // service.
            assert_eq!(net.pma(PMA1).counters().renewal_denied, 1);
            assert_eq!(reg, Some((Ipv4Addr::new(10, 1, 0, 2), HA1)));
            assert_eq!(net.dp(PMA1).access.len(), 1);
            net.run_for(Duration::from_secs(200));
            assert_eq!(net.pma(PMA1).registration("ue2@ex"), None);
            assert_eq!(net.dp(PMA1).access.len(), 0);
        } else {
            assert_eq!(reg, Some((Ipv4Addr::new(10, 1, 0, 2), HA1)));
            assert_eq!(net.ha(HA1).counters().registrations, 1);
            assert_eq!(net.dp(HA1).anchor.len(), 1);
        }
    }
}

#[test]
fn ha_outage_then_everyone_registered_again_at_once() {
    let mut net = basic();
    let mut st = Stores::default();
    two_subscribers(&mut net, &mut st);
    // The HA goes away just before the renewals (450 s) and stays away
    // 90 s (the bindings run out at 600 s).
    net.run_for(Duration::from_secs(440));
    net.filter = Box::new(|src, t| src != HA1 && *dst(t).ip() != HA1);
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.pma(PMA1).counters().ha_down, 1);
    assert_eq!(net.pma(PMA1).session_count(), 2, "nobody given up");
    assert_eq!(net.dp(PMA1).access.len(), 2, "still forwarding");
    let sent = net.requests(PMA1, HA1).len();
    net.run_for(Duration::from_secs(30));
    assert!(net.requests(PMA1, HA1).len() > sent, "still retrying");
    net.filter = Box::new(|_, _| true);
    let back = net.wire.len();
    net.run_for(Duration::from_secs(33));
    assert_eq!(net.pma(PMA1).counters().ha_returned, 1);
    assert_eq!(net.pma(PMA1).registration("ue1@ex").unwrap().1, HA1);
    assert_eq!(net.pma(PMA1).registration("ue2@ex").unwrap().1, HA1);
    // Both accepted in the same exchange: the second did not wait for its retry.
    let accepted: Vec<usize> = net.wire[back..]
        .iter()
        .enumerate()
        .filter(|(_, (s, _, p))| *s == HA1 && p[0] == 3 && p[1] == 0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert_eq!(
        net.ha(HA1).counters().registrations,
        2,
        "same bindings renewed"
    );
}

#[test]
fn a_refusing_ha_is_tried_again_after_its_hold_down() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    let mut h = ha_cfg(HA1);
    h.peers[0].proxy_allowed = false;
    net.add_ha(h);
    let t0 = net.now;
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    // Held down: a second attach at once is not even sent.
    net.pma(PMA1).attach(now, sub("ue2@ex", 2));
    net.settle();
    assert_eq!(net.requests(PMA1, HA1).len(), 1, "ue2 not sent to HA1");
    // Fixed, and the hold-down (5 s) over: served.
    net.run_for(Duration::from_secs(10));
    let h = Ha::new(ha_cfg(HA1), clock_at(&net, t0));
    replace(&mut net, HA1, Node::Ha(h));
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue3@ex", 3));
    net.settle();
    assert!(net.pma(PMA1).registration("ue3@ex").is_some());
}

#[test]
fn alternate_ha_without_the_failover_knob() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    net.add_ha(ha_cfg(HA2));
    // HA1 is not there: its datagrams vanish.
    let now = net.now;
    let mut s = sub("ue1@ex", 1);
    s.alternate_ha = Some(HA2);
    net.pma(PMA1).attach(now, s);
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.requests(PMA1, HA1).len(), 6, "1 + max-retransmissions");
    assert_eq!(net.pma(PMA1).registration("ue1@ex").map(|r| r.1), Some(HA2));
    assert_eq!(net.pma(PMA1).counters().ha_failovers, 1);
}

/// RADIUS Session-Timeout as the binding lifetime (issue 14): a session with
/// 40 s left asks the HA for 40 s, not the configured 600 s; one without a
/// Session-Timeout asks for the configured lifetime.
#[test]
fn session_timeout_bounds_the_requested_lifetime() {
    let mut net = basic();
    let t0 = net.now;
    let mut s1 = sub("ue1@ex", 1);
    s1.aaa = Some(Box::new(crate::store::AaaProfile {
        session_timeout_s: Some(40),
        session_start_ms: crate::store::wall_ms(wall0()),
        ..Default::default()
    }));
    let now = net.now;
    net.pma(PMA1).attach(now, s1);
    net.pma(PMA1).attach(now, sub("ue2@ex", 2));
    net.settle();
    assert!(net.now - t0 < Duration::from_secs(1));
    let mut granted: Vec<(String, u16)> = net
        .pma_events(PMA1)
        .into_iter()
        .filter_map(|e| match e {
            PmaEvent::Registered { nai, lifetime, .. } => Some((nai, lifetime)),
            _ => None,
        })
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        vec![("ue1@ex".to_string(), 40), ("ue2@ex".to_string(), 600)]
    );
}

/// The HA's store record of `nai`, if any.
fn ha_record(st: &Stores, nai: &str) -> Option<crate::store::AnchorRecord> {
    st.of(HA1)
        .scan()
        .unwrap()
        .into_iter()
        .find_map(|(_, r)| match r {
            Record::Anchor(a) if a.nai == nai => Some(a),
            _ => None,
        })
}

/// ue1@ex registered through PMA1 for 5 s (a revocation must come after
/// the registration's timestamp, §4.2.2.2: not within its second), then
/// released by the operator (`release`) or handed over to PMA2, the
/// revocation to PMA1 held back on the wire; the HA's store synced.
fn revocation_held_back(net: &mut Net, st: &mut Stores, release: bool) {
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(5));
    net.filter = Box::new(|src, t| !(src == HA1 && *dst(t).ip() == PMA1));
    let now = net.now;
    if release {
        assert!(net.ha(HA1).clear(now, "ue1@ex"));
    } else {
        net.pma(PMA2).attach(now, sub("ue1@ex", 1));
    }
    net.settle();
    st.sync(net);
}

/// RFC 3543 §4.2.2.1 across a restart: a revocation the HA had in progress
/// (the old PMA of a handover, or the PMA of a binding the operator
/// released) is in the store with the binding's record, and a restarted
/// HA sends it again until acknowledged, instead of leaving the PMA with a
/// binding the HA let go. Once acknowledged, the record says nothing of it
/// (the released binding's record goes).
#[test]
fn a_revocation_in_progress_survives_an_ha_restart() {
    for release in [false, true] {
        let mut net = basic();
        let t0 = net.now;
        let mut st = Stores::default();
        revocation_held_back(&mut net, &mut st, release);
        assert_eq!(net.ha(HA1).pending_revocations(), 1);
        let rec = ha_record(&st, "ue1@ex").expect("record kept");
        assert_eq!(rec.released, release);
        assert_eq!(rec.ha_revocations.len(), 1);
        assert_eq!(rec.ha_revocations[0].0, PMA1);
        net.run_for(Duration::from_millis(500));
        let mut h = Ha::new(ha_cfg(HA1), clock_at(&net, t0));
        let r = Endpoint::restore(&mut h, net.now, st.of(HA1).scan().unwrap());
        assert_eq!(r.bindings, usize::from(!release), "release {release}");
        assert_eq!(h.counters().revocations_resumed, 1);
        replace(&mut net, HA1, Node::Ha(h));
        net.filter = Box::new(|_, _| true);
        net.settle();
        assert_eq!(net.pma(PMA1).session_count(), 0, "release {release}");
        let c = net.ha(HA1).counters().clone();
        assert_eq!((c.revocations_sent, c.revocation_acks), (1, 1));
        assert_eq!(net.ha(HA1).pending_revocations(), 0);
        st.sync(&mut net);
        match ha_record(&st, "ue1@ex") {
            Some(r) => {
                assert!(
                    !release && r.ha_revocations.is_empty() && !r.released,
                    "{r:?}"
                );
                assert_eq!(r.peer, std::net::IpAddr::from(PMA2));
            }
            None => assert!(release, "the binding's record went"),
        }
    }
}

/// A released binding's record whose revocation cannot go on (revocation
/// turned off since) is dropped without touching the fast path: its home
/// address may serve another binding by then.
#[test]
fn a_released_record_that_cannot_revoke_is_dropped_without_a_map_removal() {
    let mut net = basic();
    let t0 = net.now;
    let mut st = Stores::default();
    revocation_held_back(&mut net, &mut st, true);
    assert!(ha_record(&st, "ue1@ex").is_some_and(|r| r.released));
    let mut cfg = ha_cfg(HA1);
    cfg.revocation = false;
    let mut h = Ha::new(cfg, clock_at(&net, t0));
    let r = Endpoint::restore(&mut h, net.now, st.of(HA1).scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (0, 1));
    assert_eq!(h.counters().revocations_resumed, 0);
    assert_eq!(Endpoint::poll_dp(&mut h), None);
}

/// A deregistration the PMA had in progress when it stopped (the device
/// left, the HA had not heard it) is in the store as a `leaving` record,
/// and a restarted PMA sends it again: the HA lets the binding go then,
/// not at the end of its lifetime. Nothing is installed or restored for
/// it, and its record goes with the HA's answer.
#[test]
fn a_deregistration_in_progress_survives_a_pma_restart() {
    let mut net = basic();
    let t0 = net.now;
    let mut st = Stores::default();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    assert_eq!(net.ha(HA1).binding_count(), 1);
    // The HA hears nothing more from the PMA; the device leaves.
    net.filter = Box::new(|src, t| !(src == PMA1 && *dst(t).ip() == HA1));
    let now = net.now;
    net.pma(PMA1).detach(now, "ue1@ex");
    net.settle();
    st.sync(&mut net);
    assert_eq!(
        crate::store::leaving_marks(&mut st.of(PMA1)),
        [true],
        "the record says the device left"
    );
    // The PMA stops before the HA has heard it; a new one starts.
    let mut p = Pma::new(pma_cfg(PMA1), clock_at(&net, t0));
    let r = Endpoint::restore(&mut p, net.now, st.of(PMA1).scan().unwrap());
    assert_eq!(r.dropped, 0);
    assert_eq!(p.counters().deregistrations_resumed, 1);
    replace(&mut net, PMA1, Node::Pma(p));
    net.filter = Box::new(|_, _| true);
    net.settle();
    assert_eq!(net.ha(HA1).binding_count(), 0, "the HA let the binding go");
    assert!(net.dp(PMA1).access.is_empty(), "nothing installed");
    assert!(!net
        .pma_events(PMA1)
        .iter()
        .any(|e| matches!(e, PmaEvent::Restored { .. })));
    assert_eq!(net.pma(PMA1).session_count(), 0);
    st.sync(&mut net);
    assert!(st.of(PMA1).is_empty(), "the record went with the answer");
}
