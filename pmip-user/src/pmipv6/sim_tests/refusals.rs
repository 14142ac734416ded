//! What an LMA refuses an MN "until an administrative action is taken"
//! (RFC 5213 §6.9.1.2 (7), RFC 5844 §3.2.3.2): the MAG asks it nothing of
//! the kind for that MN again until the operator clears it or the hold
//! ends (`mag/refusal.rs`). And a PBA that does not echo the PBU, which
//! the MAG ignores without sending the PBU again (§6.9.1.2 (6)).
use super::*;

fn failed(ev: &[MagEvent]) -> Vec<&MagEvent> {
    ev.iter()
        .filter(|e| matches!(e, MagEvent::RegistrationFailed { .. }))
        .collect()
}

fn last_pbu(s: &Sim) -> BindingUpdate {
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    match pbus.last() {
        Some((_, Message::BindingUpdate(bu))) => bu.clone(),
        _ => panic!("no PBU: {pbus:?}"),
    }
}

/// The LMA's PBA of `status` to `bu`, naming mn1 with the link-layer
/// identifier `llid` (an accepting one with an uplink GRE key).
fn pba_to(bu: &BindingUpdate, status: BaStatus, llid: [u8; 6]) -> Vec<u8> {
    let mut options = vec![
        MobilityOption::MnId {
            subtype: 1,
            id: b"mn1@example.com".to_vec(),
        },
        MobilityOption::MnLinkLayerId(llid.to_vec()),
    ];
    if status.is_accepted() {
        options.push(MobilityOption::GreKey(Some(77)));
    }
    Message::BindingAck(BindingAck {
        status,
        flags: ba_flags::P,
        seq: bu.seq,
        lifetime: if status.is_accepted() { 900 } else { 0 },
        options,
    })
    .to_vec(Checksum::Ipv6 {
        src: LMA,
        dst: MAG1,
    })
    .unwrap()
}

/// 152 (proxy registration not enabled): no PBU for the MN again, its
/// attaches denied at once, until the operator clears it or the hold ends.
#[test]
fn proxy_registration_refused_holds_until_cleared_or_the_hold_ends() {
    let mut s = Sim::new(false);
    s.drop_to.push(Node::Lma);
    s.attach(0, req(1));
    let bu = last_pbu(&s);
    let pba = pba_to(&bu, BaStatus::PROXY_REG_NOT_ENABLED, ap(1).mac);
    s.mags[0].handle(s.now, Peer::V6(LMA), &pba);
    s.run();
    let refused = MagEvent::RegistrationFailed {
        at: ap(1),
        reason: FailReason::Rejected(BaStatus::PROXY_REG_NOT_ENABLED),
    };
    assert_eq!(failed(&s.events[0]), [&refused]);
    assert_eq!(s.mags[0].counters.refusal_held, 1);
    // The MN's next attach: denied at once, no PBU.
    let sent = s.mags[0].counters.pbu_sent;
    s.attach(0, req(1));
    assert_eq!(failed(&s.events[0]), [&refused, &refused]);
    assert_eq!(s.mags[0].counters.pbu_sent, sent);
    assert_eq!(s.mags[0].counters.attach_refused_held, 1);
    // Another MN is not concerned.
    s.attach(0, req(2));
    assert_eq!(s.mags[0].counters.pbu_sent, sent + 1);
    // The operator clears it: asked again.
    assert!(s.mags[0].forget_refusals(b"mn1@example.com"));
    s.attach(0, req(1));
    assert_eq!(s.mags[0].counters.pbu_sent, sent + 2);
    // Refused again, then the hold (an hour) runs out: asked again.
    let bu = last_pbu(&s);
    let pba = pba_to(&bu, BaStatus::PROXY_REG_NOT_ENABLED, ap(1).mac);
    s.mags[0].handle(s.now, Peer::V6(LMA), &pba);
    s.run();
    s.attach(0, req(1));
    assert_eq!(s.mags[0].counters.attach_refused_held, 2);
    s.advance(Duration::from_secs(3600));
    let sent = s.mags[0].counters.pbu_sent;
    s.attach(0, req(1));
    assert_eq!(s.mags[0].counters.pbu_sent, sent + 1, "the hold ended");
}

/// 170 to a dual-stack PBU: asked again at once for the prefix alone, and
/// the MN's next attaches ask for no IPv4 home address; an IPv4-only
/// attach of it is denied without a PBU.
#[test]
fn ipv4_service_refused_is_not_asked_for_again() {
    let mut cfg = lma_cfg();
    cfg.subscribers.get_mut("mn1@example.com").unwrap().ipv4 = false;
    let mut s = Sim::new(false).with_lma(cfg);
    let dual = AttachRequest {
        ipv6: true,
        ..req(1)
    };
    s.attach(0, dual.clone());
    assert_eq!(
        pba_statuses(&s),
        [
            BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE,
            BaStatus::ACCEPTED
        ]
    );
    let bu = last_pbu(&s);
    assert!(bu.ipv4_hoa_request().is_none() && !bu.hnps().is_empty());
    let b = s.lma.binding(b"mn1@example.com").unwrap();
    assert!(b.home_v4.is_none() && b.hnp.is_some());
    assert_eq!(s.mags[0].counters.ipv4_refused_retried_ipv6, 1);
    // It leaves and comes back: the first PBU asks for the prefix alone.
    s.mags[0].detach(s.now, ap(1));
    s.advance(Duration::from_secs(2));
    s.attach(0, dual);
    let bu = last_pbu(&s);
    assert!(bu.ipv4_hoa_request().is_none() && !bu.hnps().is_empty());
    assert_eq!(s.lma.counters.pbu_v4_not_authorized, 1, "asked once");
    // As an IPv4-only attach (another port): nothing left to ask for.
    let sent = s.mags[0].counters.pbu_sent;
    s.attach(
        0,
        AttachRequest {
            at: ap(9),
            ..req(1)
        },
    );
    assert_eq!(s.mags[0].counters.pbu_sent, sent);
    assert!(s.events[0].contains(&MagEvent::RegistrationFailed {
        at: ap(9),
        reason: FailReason::Rejected(BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE),
    }));
}

/// The LMA accepts `bu` naming another link-layer identifier than mn1's:
/// counted as not echoed.
fn accept_with_another_llid(s: &mut Sim, bu: &BindingUpdate) {
    let mut other = ap(1).mac;
    other[5] ^= 0x40;
    let pba = pba_to(bu, BaStatus::ACCEPTED, other);
    s.mags[0].handle(s.now, Peer::V6(LMA), &pba);
    s.run();
    assert_eq!(s.mags[0].counters.pba_echo_mismatch, 1);
}

/// RFC 5213 §6.9.1.2 (6): a PBA whose link-layer identifier is not the
/// PBU's is ignored and the PBU not sent again: a first registration
/// fails at once.
#[test]
fn a_first_pba_with_another_link_layer_identifier_ends_the_attach() {
    let (mut s, bu) = unanswered_first_pbu();
    accept_with_another_llid(&mut s, &bu);
    assert_eq!(
        failed(&s.events[0]),
        [&MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::BadAck
        }]
    );
    let sent = s.mags[0].counters.pbu_sent;
    s.advance(Duration::from_secs(60));
    assert_eq!(s.mags[0].counters.pbu_sent, sent, "the PBU was sent again");
    assert!(s.mag_dp[0].access.is_empty());
}

/// RFC 5213 §6.9.1.2 (6) for a refresh: the binding keeps the lifetime it
/// has, no PBU is sent again, and it ends when that lifetime does.
#[test]
fn a_refresh_not_echoed_is_not_sent_again_and_the_binding_ends_with_its_lifetime() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    assert_eq!(registered(&s.events[0]).len(), 1);
    let registered_at = s.now;
    // The refresh (at 300 s) gets lost; the answer that comes does not echo it.
    s.drop_to.push(Node::Lma);
    s.advance(Duration::from_millis(300_500));
    assert_eq!(s.mags[0].counters.refresh_sent, 1);
    let bu = last_pbu(&s);
    accept_with_another_llid(&mut s, &bu);
    let sent = s.mags[0].counters.pbu_sent;
    // Forwarding goes on until the lifetime (3600 s) the binding had ends.
    s.advance(Duration::from_secs(3000));
    assert_eq!(s.mags[0].counters.pbu_sent, sent, "the PBU was sent again");
    assert_eq!(s.mag_dp[0].access.len(), 1);
    assert!(failed(&s.events[0]).is_empty());
    s.advance((registered_at + Duration::from_secs(3601)) - s.now);
    assert_eq!(s.mags[0].counters.pbu_sent, sent, "a PBU at lifetime end");
    assert_eq!(
        failed(&s.events[0]),
        [&MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::BadAck
        }]
    );
    assert!(s.mag_dp[0].access.is_empty());
}
