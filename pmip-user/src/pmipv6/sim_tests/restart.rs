//! Restarts and anchor outages (issue 11), sans-IO: the MAG and the LMA
//! write their bindings to a store, a "restarted" one is a new machine
//! restored from that store, and the LMA goes silent, refuses or comes back
//! while the clock runs.
use super::*;
use crate::store::{MemStore, Record, RecordKey, Store};

/// Moves every write the machines queued into their stores.
fn sync(s: &mut Sim, mags: &mut [MemStore], lma: &mut MemStore) {
    for (m, st) in s.mags.iter_mut().zip(mags.iter_mut()) {
        let batch: Vec<_> = std::iter::from_fn(|| Endpoint::poll_store(m)).collect();
        st.apply(&batch).unwrap();
    }
    let batch: Vec<_> = std::iter::from_fn(|| Endpoint::poll_store(&mut s.lma)).collect();
    lma.apply(&batch).unwrap();
}

/// Wall-clock time at the simulation's `now` (the machines' clocks agree).
fn wall_at(s: &Sim) -> SystemTime {
    wall() + (s.now - s.start)
}

fn pbus(s: &Sim, from: Node) -> usize {
    s.sent(from, Node::Lma, MhType::BindingUpdate).len()
}

fn stores() -> (Vec<MemStore>, MemStore) {
    (vec![MemStore::new(), MemStore::new()], MemStore::new())
}

#[test]
fn restarted_mag_takes_up_its_bindings_and_refreshes_on_time() {
    let mut s = Sim::new(false);
    let (mut ms, mut ls) = stores();
    s.attach(0, req(1));
    s.advance(Duration::from_secs(5));
    s.attach(0, req(2));
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(ms[0].len(), 2, "one record per registered subscriber");
    let before: Vec<_> = [1, 2].map(|n| s.mag_dp[0].access[&ap(n)].clone()).to_vec();
    s.advance(Duration::from_secs(100));
    // kill -9 and start again: a new MAG, an empty data plane (no pins).
    s.mags[0] = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall_at(&s));
    s.mag_dp[0] = MemDataPlane::default();
    let sent = pbus(&s, Node::Mag(0));
    let r = Endpoint::restore(&mut s.mags[0], s.now, ms[0].scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (2, 0));
    assert_eq!(r.holds.sub_ids.len(), 2);
    s.run();
    // Nothing registered twice: the maps hold what they held, no PBU went out.
    assert_eq!(pbus(&s, Node::Mag(0)), sent);
    for (n, b) in [1u8, 2].iter().zip(&before) {
        assert_eq!(&s.mag_dp[0].access[&ap(*n)], b);
    }
    let restored: Vec<_> = s.events[0]
        .iter()
        .filter(|e| matches!(e, MagEvent::Restored { .. }))
        .collect();
    assert_eq!(restored.len(), 2);
    // The refreshes come when they were due (300 s after each registration).
    s.advance(Duration::from_secs(194));
    assert_eq!(s.lma.counters.refreshes, 0);
    s.advance(Duration::from_secs(2));
    assert_eq!(s.lma.counters.refreshes, 1);
    s.advance(Duration::from_secs(5));
    assert_eq!(s.lma.counters.refreshes, 2);
    assert_eq!(s.lma.counters.registrations, 2, "never registered anew");
    assert_eq!(s.mags[0].active_count(), 2);
    // A new subscriber gets an id and key of its own.
    s.attach(0, req(3));
    let k3 = s.mag_dp[0].access[&ap(3)].downlink_key;
    assert!(before
        .iter()
        .all(|b| b.downlink_key != k3 && b.sub_id != k3));
}

#[test]
fn expired_records_are_dropped_with_their_map_entries() {
    let mut s = Sim::new(false);
    let (mut ms, mut ls) = stores();
    s.attach(0, req(1));
    sync(&mut s, &mut ms, &mut ls);
    let b = s.mag_dp[0].access[&ap(1)].clone();
    // Down for longer than the lifetime (3600 s): the record is stale.
    s.now += Duration::from_secs(3700);
    let mut m = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall_at(&s));
    let r = Endpoint::restore(&mut m, s.now, ms[0].scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (0, 1));
    assert!(r.holds.is_empty());
    assert_eq!(Endpoint::poll_dp(&mut m), Some(DpCommand::RemoveAccess(b)));
    let batch: Vec<_> = std::iter::from_fn(|| Endpoint::poll_store(&mut m)).collect();
    ms[0].apply(&batch).unwrap();
    assert!(ms[0].is_empty(), "{:?}", ms[0].keys());
}

#[test]
fn deregistration_removes_the_record() {
    let mut s = Sim::new(true);
    let (mut ms, mut ls) = stores();
    s.attach(0, req(1));
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!((ms[0].len(), ls.len()), (1, 1));
    let now = s.now;
    s.mags[0].detach(now, ap(1));
    s.run();
    sync(&mut s, &mut ms, &mut ls);
    assert!(ms[0].is_empty());
    assert!(ls.is_empty(), "the LMA drops its record on deregistration");
}

#[test]
fn restarted_lma_takes_up_its_bindings() {
    for v4 in [false, true] {
        let mut s = Sim::new(v4);
        let (mut ms, mut ls) = stores();
        s.attach(0, req(1));
        s.attach(1, req(2));
        sync(&mut s, &mut ms, &mut ls);
        let before: Vec<_> = [b"mn1@example.com".as_slice(), b"mn2@example.com"]
            .map(|id| s.lma.binding(id).unwrap())
            .to_vec();
        s.advance(Duration::from_secs(60));
        s.lma = Lma::new(lma_cfg(), s.now, wall_at(&s));
        s.lma_dp = MemDataPlane::default();
        let r = Endpoint::restore(&mut s.lma, s.now, ls.scan().unwrap());
        assert_eq!((r.bindings, r.dropped), (2, 0));
        s.run();
        assert_eq!(s.lma_dp.anchor.len(), 2);
        for b in &before {
            let now = s.lma.binding(&b.mn_id).unwrap();
            assert_eq!(
                (now.uplink_key, now.home_v4, now.hnp, now.mag),
                (b.uplink_key, b.home_v4, b.hnp, b.mag)
            );
        }
        // The MAGs' refreshes are refreshes, not new registrations.
        s.advance(Duration::from_secs(300));
        assert_eq!(s.lma.counters.refreshes, 2);
        assert_eq!(s.lma.counters.registrations, 0);
        // A third subscriber gets neither of their addresses or keys.
        s.attach(0, req(3));
        let b3 = s.lma.binding(b"mn3@example.com").unwrap();
        assert!(before.iter().all(|b| b.uplink_key != b3.uplink_key
            && b.home_v4 != b3.home_v4
            && (b.hnp.is_none() || b.hnp != b3.hnp)));
    }
}

#[test]
fn silent_lma_then_everyone_registered_again_at_once() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.advance(Duration::from_secs(7));
    s.attach(0, req(2));
    // The LMA goes away just before the refreshes (300 s) and stays away
    // for two minutes: the refreshes back off up to 32 s and go on.
    s.advance(Duration::from_secs(290));
    s.drop_to.push(Node::Lma);
    s.advance(Duration::from_secs(120));
    assert_eq!(s.mags[0].counters.lma_down, 1);
    assert_eq!(s.mags[0].binding_count(), 2, "nobody given up");
    assert_eq!(s.mag_dp[0].access.len(), 2, "still forwarding");
    let pbus_down = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let late: Vec<_> = pbus_down
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t > s.now - Duration::from_secs(60))
        .collect();
    assert!(
        late.len() >= 2,
        "still retrying, at most 32 s apart: {late:?}"
    );
    // Back: the first answer brings everyone back at once.
    s.drop_to.clear();
    let back = s.now;
    s.advance(Duration::from_secs(33));
    assert_eq!(s.mags[0].counters.lma_returned, 1);
    assert_eq!(s.mags[0].active_count(), 2);
    let acks = s.sent(Node::Lma, Node::Mag(0), MhType::BindingAck);
    let after: Vec<Instant> = acks
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t >= back)
        .collect();
    assert!(after.len() >= 2);
    assert_eq!(
        after[0], after[1],
        "the second subscriber did not wait for its own retry"
    );
    assert_eq!(s.lma.counters.registrations, 2, "same bindings, refreshed");
}

#[test]
fn binding_lapses_during_a_long_outage_and_comes_back_with_its_address() {
    let mut cfg = lma_cfg();
    cfg.max_lifetime = Duration::from_secs(40);
    let mut s = Sim::new(false).with_lma(cfg);
    s.attach(0, req(1));
    let home = s.mags[0].binding(&ap(1)).unwrap().home_v4;
    s.drop_to.push(Node::Lma);
    s.advance(Duration::from_secs(100));
    // Lapsed on both sides, but the MAG keeps the subscriber.
    assert!(s.mag_dp[0].access.is_empty());
    assert_eq!(s.lma.binding_count(), 0);
    assert_eq!(s.mags[0].binding_count(), 1);
    assert!(!s.events[0]
        .iter()
        .any(|e| matches!(e, MagEvent::RegistrationFailed { .. })));
    s.drop_to.clear();
    s.advance(Duration::from_secs(33));
    assert_eq!(s.mags[0].active_count(), 1);
    assert_eq!(s.mags[0].binding(&ap(1)).unwrap().home_v4, home);
    assert_eq!(s.mag_dp[0].access.len(), 1);
}

#[test]
fn a_refusal_is_not_for_good() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    // The LMA is reconfigured without this MAG: 154 to its refresh.
    let mut refusing = lma_cfg();
    refusing.mags = vec![IpAddr::V6(MAG2)];
    s.lma = Lma::new(refusing, s.now, wall_at(&s));
    s.advance(Duration::from_secs(301));
    let refused = s.lma.counters.pbu_unconfigured_mag;
    assert!(refused >= 1);
    assert_eq!(
        s.mags[0].binding_count(),
        1,
        "kept: the refusal may be a mistake"
    );
    // Meanwhile a new subscriber is refused at once (hold-down)...
    s.attach(0, req(2));
    assert!(s.events[0].contains(&MagEvent::RegistrationFailed {
        at: ap(2),
        reason: FailReason::LmaUnavailable
    }));
    // ... and the refresh is asked again, backing off, never abandoned.
    s.advance(Duration::from_secs(120));
    assert!(s.lma.counters.pbu_unconfigured_mag >= refused + 3);
    // Fixed: the next try is accepted, a new attach goes through.
    s.lma = Lma::new(lma_cfg(), s.now, wall_at(&s));
    s.advance(Duration::from_secs(33));
    assert_eq!(s.mags[0].active_count(), 1);
    assert_eq!(s.mags[0].counters.lma_returned, 1);
    s.attach(0, req(2));
    assert_eq!(s.mags[0].active_count(), 2);
}

#[test]
fn new_attach_fails_over_to_the_alternate_lma() {
    const LMA2_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 24, 102);
    let t0 = Instant::now();
    let mut cfg = mag_cfg(true, MAG1, MAG1_V4);
    cfg.lmas.push(LmaPeerConfig {
        name: "lma2".into(),
        addr: IpAddr::V4(LMA2_V4),
        port: UDP_PORT,
    });
    let mut mag = Mag::new(cfg, t0, wall());
    let mut lcfg = lma_cfg();
    lcfg.local.v4 = Some(LMA2_V4);
    let mut lma2 = Lma::new(lcfg, t0, wall());
    mag.attach_with_alternate(t0, req(1), Some("lma2".into()), None);
    let mut now = t0;
    let mut to_lma1 = 0;
    for _ in 0..200 {
        while let Some(t) = mag.poll_transmit() {
            if t.peer.ip() == IpAddr::V4(LMA_V4) {
                // LMA1 is dead; count its PBUs (MH type 5), not heartbeats.
                to_lma1 += usize::from(t.payload.get(2) == Some(&5));
                continue;
            }
            lma2.handle(
                now,
                Peer::V4(SocketAddrV4::new(MAG1_V4, UDP_PORT)),
                &t.payload,
            );
            while let Some(r) = lma2.poll_transmit() {
                mag.handle(
                    now,
                    Peer::V4(SocketAddrV4::new(LMA2_V4, UDP_PORT)),
                    &r.payload,
                );
            }
        }
        if mag.active_count() == 1 {
            break;
        }
        now = mag.poll_timeout().unwrap();
        mag.handle_timeout(now);
    }
    assert_eq!(
        to_lma1, 6,
        "the primary's whole retransmission schedule first"
    );
    assert_eq!(mag.counters.failovers, 1);
    assert_eq!(mag.active_count(), 1);
    assert_eq!(
        mag.binding(&ap(1)).unwrap().lma,
        "lma2",
        "registered with the alternate"
    );
    let ev: Vec<_> = std::iter::from_fn(|| mag.poll_event()).collect();
    assert!(
        matches!(ev.last(), Some(MagEvent::Registered { .. })),
        "{ev:?}"
    );
    // Its record names where it is registered now.
    let r = std::iter::from_fn(|| Endpoint::poll_store(&mut mag))
        .filter_map(|op| match op {
            crate::store::StoreOp::Put(RecordKey::Access(_), Record::Access(r)) => Some(r),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(r.anchor, IpAddr::V4(LMA2_V4));
}

/// mn1's attach at ap(1) (IPv4 home address) with what the AAA gave.
fn aaa_attach(
    aaa: Option<Box<crate::store::AaaProfile>>,
) -> crate::agent::registrar::AttachRequest {
    crate::agent::registrar::AttachRequest {
        aaa,
        ..crate::agent::registrar::AttachRequest::ipv4(ap(1), "mn1@example.com", LMA)
    }
}

/// What the operator's AAA gave at attach (issue 14) is written with the
/// binding's record, given back with `Restored`, and kept by the refreshes
/// after the restart.
#[test]
fn restarted_mag_gives_back_the_aaa_profile() {
    use crate::agent::registrar::AccessCommand;
    let mut s = Sim::new(false);
    let (mut ms, mut ls) = stores();
    let aaa = Box::new(crate::store::AaaProfile {
        user_name: "00-24-d7-8e-21-01".into(),
        interim_s: Some(2),
        session_timeout_s: Some(90),
        dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
        ..Default::default()
    });
    let r = aaa_attach(Some(aaa.clone()));
    Endpoint::command(&mut s.mags[0], s.now, AccessCommand::Attach(r));
    s.run();
    sync(&mut s, &mut ms, &mut ls);
    let kept = |st: &mut MemStore| {
        st.scan()
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::Access(a) => Some(a.aaa),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&mut ms[0]), vec![Some(aaa.clone())]);
    // A CoA-Request changed it: the record is written again at once.
    let aaa = Box::new(crate::store::AaaProfile {
        session_timeout_s: Some(40),
        dns: vec![Ipv4Addr::new(198, 51, 100, 54)],
        ..(*aaa).clone()
    });
    let cmd = AccessCommand::UpdateAaa {
        at: ap(1),
        aaa: aaa.clone(),
    };
    Endpoint::command(&mut s.mags[0], s.now, cmd);
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(kept(&mut ms[0]), vec![Some(aaa.clone())]);
    s.mags[0] = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall_at(&s));
    s.mag_dp[0] = MemDataPlane::default();
    let r = Endpoint::restore(&mut s.mags[0], s.now, ms[0].scan().unwrap());
    assert_eq!(r.bindings, 1);
    s.run();
    let given: Vec<_> = s.events[0]
        .iter()
        .filter_map(|e| match e {
            MagEvent::Restored { aaa, .. } => Some(aaa.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(given, vec![Some(aaa.clone())]);
    // Refreshed after the restart: the record still carries it.
    s.advance(Duration::from_secs(400));
    assert!(s.lma.counters.refreshes >= 1);
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(kept(&mut ms[0]), vec![Some(aaa)]);
}

/// RADIUS Session-Timeout as the binding lifetime (issue 14): the first PBU
/// of a session with 40 s left asks for 40 s (units of 4 s), not the
/// configured 3600 s.
#[test]
fn session_timeout_bounds_the_requested_lifetime() {
    use crate::agent::registrar::AccessCommand;
    let mut s = Sim::new(false);
    let aaa = Box::new(crate::store::AaaProfile {
        session_timeout_s: Some(40),
        session_start_ms: crate::store::wall_ms(wall_at(&s)),
        ..Default::default()
    });
    let r = aaa_attach(Some(aaa));
    Endpoint::command(&mut s.mags[0], s.now, AccessCommand::Attach(r));
    s.run();
    let lifetimes: Vec<Duration> = s.events[0]
        .iter()
        .filter_map(|e| match e {
            MagEvent::Registered { lifetime, .. } => Some(*lifetime),
            _ => None,
        })
        .collect();
    assert_eq!(lifetimes, vec![Duration::from_secs(40)]);
}

/// Anchor records in `st`.
fn anchor_records(st: &mut MemStore) -> usize {
    let all = st.scan().unwrap();
    all.iter()
        .filter(|(_, r)| matches!(r, Record::Anchor(_)))
        .count()
}

/// RFC 5846 §8.1 across a restart: a revocation in progress when the LMA
/// stops (its BRI lost, no BRA yet) is taken up at the start from its
/// record — the BRI sent again, the entry kept without forwarding — and
/// ends, record and all, with the BRA. Before, the record went when the
/// revocation began, and the MAG that missed the BRI kept its binding
/// (its next refresh would have opened a new session). An entry a global
/// BRI revoked (`clear bindings --peer`) is taken up on its own, with a
/// trigger a single entry's BRI may carry (administrative; 128 without G
/// would be refused, RFC 5846 §6.2.1).
#[test]
fn a_revocation_in_progress_survives_a_restart() {
    for global in [false, true] {
        revocation_across_a_restart(global);
    }
}

fn revocation_across_a_restart(global: bool) {
    let mut s = Sim::new(false);
    let (mut ms, mut ls) = stores();
    s.attach(0, req(1));
    s.drop_to.push(Node::Mag(0));
    if global {
        let mag = s.peer_of(Node::Mag(0)).ip();
        assert_eq!(s.lma.revoke_peer(s.now, mag, None), 1);
    } else {
        assert!(s.lma.revoke(
            s.now,
            b"mn1@example.com",
            revocation_trigger::ADMINISTRATIVE
        ));
    }
    s.run();
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(anchor_records(&mut ls), 1, "the revoking entry's record");
    assert_eq!(s.mags[0].active_count(), 1, "the MAG never saw the BRI");
    // The LMA stops before the BRA.
    s.lma = Lma::new(lma_cfg(), s.now, wall_at(&s));
    s.lma_dp = MemDataPlane::default();
    let r = Endpoint::restore(&mut s.lma, s.now, ls.scan().unwrap());
    assert_eq!((r.bindings, r.dropped), (1, 0));
    assert_eq!(s.lma.counters.revocations_resumed, 1);
    assert_eq!(s.lma.revocations_in_progress(), 1);
    // The BRI goes again; the MAG lets go, its BRA ends the revocation.
    s.drop_to.clear();
    s.run();
    assert!(
        s.lma_dp.anchor.is_empty(),
        "no forwarding for a revoked session"
    );
    assert_eq!(s.mags[0].active_count(), 0);
    assert_eq!(s.lma.counters.revocations_completed, 1);
    assert_eq!(s.lma.revocations_in_progress(), 0);
    let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
    let Some((_, Message::RevocationIndication(bri))) = bris.last() else {
        panic!("{bris:?}")
    };
    assert_eq!(
        (bri.trigger, bri.flags),
        (revocation_trigger::ADMINISTRATIVE, br_flags::P),
        "global {global}"
    );
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(anchor_records(&mut ls), 0);
}

/// A deregistration the MAG had in progress when it stopped (the
/// subscriber left, the LMA had not heard it) is in the store as a
/// `leaving` record, and a restarted MAG sends it again (RFC 5213
/// §6.9.1.4): the LMA lets the binding go then, not at the end of its
/// lifetime. Nothing is installed or restored for it, and its record goes
/// with the PBA.
#[test]
fn a_deregistration_in_progress_survives_a_mag_restart() {
    let mut s = Sim::new(false);
    let (mut ms, mut ls) = stores();
    s.attach(0, req(1));
    assert_eq!(s.lma.binding_count(), 1);
    s.drop_to.push(Node::Lma);
    let now = s.now;
    s.mags[0].detach(now, ap(1));
    s.run();
    sync(&mut s, &mut ms, &mut ls);
    assert_eq!(
        crate::store::leaving_marks(&mut ms[0]),
        [true],
        "the record says the subscriber left"
    );
    // The MAG stops before the LMA has heard it; a new one starts.
    s.mags[0] = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall_at(&s));
    s.mag_dp[0] = MemDataPlane::default();
    s.events[0].clear();
    let r = Endpoint::restore(&mut s.mags[0], s.now, ms[0].scan().unwrap());
    assert_eq!(r.dropped, 0);
    assert_eq!(s.mags[0].counters.deregistrations_resumed, 1);
    s.drop_to.clear();
    s.run();
    assert_eq!(s.lma.counters.deregistrations, 1, "the LMA heard it");
    assert!(s.mag_dp[0].access.is_empty(), "nothing installed");
    assert!(!s.events[0]
        .iter()
        .any(|e| matches!(e, MagEvent::Restored { .. })));
    assert_eq!(s.mags[0].active_count(), 0);
    sync(&mut s, &mut ms, &mut ls);
    assert!(ms[0].is_empty(), "the record went with the PBA");
    assert!(ls.is_empty(), "the LMA's record too");
    // And its binding after MinDelayBeforeBCEDelete (RFC 5213 §5.3.5).
    s.advance(Duration::from_secs(11));
    assert_eq!(s.lma.binding_count(), 0);
}
