//! The offer hold (issue 13): an OFFER that no REQUEST follows gives its
//! address back quickly, and the end of an attach is reported.
use super::*;

#[test]
fn an_offer_not_taken_is_abandoned_after_the_hold() {
    let t0 = Instant::now();
    let mut s = server();
    attach(&mut s, t0);
    s.poll_event();
    let hold = s.config().offer_hold;
    assert_eq!(hold, Duration::from_secs(10));
    assert_eq!(s.poll_timeout(), Some(t0 + hold));
    s.handle_timeout(t0 + hold - Duration::from_millis(1));
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(t0 + hold);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Detach {
            reason: DetachReason::Abandoned,
            ..
        })
    ));
    assert_eq!(s.clients().count(), 0);
}

#[test]
fn a_retransmitted_discover_is_offered_and_held_again() {
    let t0 = Instant::now();
    let mut s = server();
    attach(&mut s, t0);
    let t1 = t0 + Duration::from_secs(4);
    s.handle(t1, &bytes(&req(1))).unwrap();
    assert_eq!(opt(&s.poll_transmit().unwrap().payload, 53), Some(vec![2]));
    assert_eq!(s.poll_timeout(), Some(t1 + s.config().offer_hold));
    // A REQUEST within the hold: leased, no more abandonment.
    select(&mut s, t1 + Duration::from_secs(1));
    assert_eq!(
        s.poll_timeout(),
        Some(t1 + Duration::from_secs(1 + 3600) + s.config().lease_grace)
    );
}

#[test]
fn still_registering_waits_for_the_offer_timeout_not_the_hold() {
    let t0 = Instant::now();
    let mut s = server();
    s.handle(t0, &bytes(&req(1))).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + s.config().offer_timeout));
}

#[test]
fn the_first_lease_is_reported_when_asked() {
    let t0 = Instant::now();
    let mut cfg = DhcpServerConfig::new(7, 0, SID);
    cfg.report_leases = true;
    let mut s = DhcpServer::new(cfg);
    attach(&mut s, t0);
    select(&mut s, t0);
    let at = AccessPoint {
        ifindex: 7,
        vlan: 0,
        mac: MAC,
    };
    assert_eq!(s.poll_event(), Some(Event::Leased { at }));
    // A renewal is not a new attach.
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(t0 + Duration::from_secs(1800), &bytes(&r))
        .unwrap();
    assert!(s.poll_transmit().is_some());
    assert_eq!(s.poll_event(), None);
}
