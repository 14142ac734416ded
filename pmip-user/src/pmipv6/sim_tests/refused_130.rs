//! An LMA that answers every try of a new registration with "insufficient
//! resources" (130, RFC 5213 §8.9) is there, refusing — an anchor cluster
//! without an etcd quorum does so while it goes on serving the others. The
//! MAG fails that attach with the LMA's status and does not take the LMA
//! for gone: it does not register everyone on it again at its next answer.
use super::*;

#[test]
fn an_lma_refusing_with_130_is_not_an_outage() {
    let mut cfg = lma_cfg();
    // Room for one IPv4 home address only.
    cfg.ipv4_pool = Some(Ipv4PoolConfig {
        network: Ipv4Addr::new(192, 0, 2, 0),
        prefix_len: 30,
        gateway: Ipv4Addr::new(192, 0, 2, 2),
    });
    let mut s = Sim::new(false).with_lma(cfg);
    s.attach(0, req(1));
    assert_eq!(registered(&s.events[0]).len(), 1, "{:?}", s.events[0]);
    s.attach(0, req(2));
    // Its tries back off 1, 2, 4 … 32 s.
    s.advance(Duration::from_secs(120));
    let failed: Vec<&MagEvent> = s.events[0]
        .iter()
        .filter(|e| matches!(e, MagEvent::RegistrationFailed { .. }))
        .collect();
    assert_eq!(
        failed,
        [&MagEvent::RegistrationFailed {
            at: ap(2),
            reason: FailReason::Rejected(BaStatus::INSUFFICIENT_RESOURCES)
        }]
    );
    assert!(s.lma.counters.pbu_no_resources >= 2, "every try refused");
    assert_eq!(
        s.mags[0].counters.lma_down, 0,
        "an LMA that answers is not down"
    );
    // mn1's refreshes are answered as ever: nobody is registered again.
    s.advance(Duration::from_secs(700));
    assert!(s.mags[0].counters.refresh_sent >= 2);
    assert_eq!(s.mags[0].counters.lma_returned, 0);
    assert_eq!(s.mags[0].counters.reregistrations, 0);
}

/// RFC 5213 §5.3.2 (2): a dual-stack PBU when no home network prefix is
/// left is refused with 130 (its IPv4 HoA Reply 128, RFC 5844 §3.1.2.2),
/// not granted IPv4 alone; the IPv4 address it would have had stays free.
#[test]
fn a_dual_stack_request_with_no_prefix_left_is_refused_130() {
    let mut cfg = lma_cfg();
    // Room for two IPv4 home addresses (the router is outside) and one prefix.
    cfg.ipv4_pool = Some(Ipv4PoolConfig {
        network: Ipv4Addr::new(192, 0, 2, 0),
        prefix_len: 30,
        gateway: Ipv4Addr::new(192, 0, 2, 100),
    });
    cfg.ipv6_pool = Some(Ipv6PoolConfig {
        prefix: "2001:db8:7::".parse().unwrap(),
        prefix_len: 64,
        assign_len: 64,
    });
    let mut s = Sim::new(false).with_lma(cfg);
    let dual = |n| AttachRequest {
        ipv6: true,
        ..req(n)
    };
    s.attach(0, dual(1));
    assert_eq!(registered(&s.events[0]).len(), 1, "{:?}", s.events[0]);
    s.attach(0, dual(2));
    let pbas = s.sent(Node::Lma, Node::Mag(0), MhType::BindingAck);
    let Some((_, Message::BindingAck(ba))) = pbas.last() else {
        panic!("{pbas:?}")
    };
    assert_eq!(ba.status, BaStatus::INSUFFICIENT_RESOURCES);
    assert_eq!(ba.ipv4_hoa_reply().map(|(st, ..)| st), Some(128));
    assert!(s.lma.binding(b"mn2@example.com").is_none());
    // The IPv4 address mn2 would have had is free again: the last one
    // goes to an IPv4-only MN.
    s.advance(Duration::from_secs(120));
    s.attach(0, req(3));
    let b3 = s
        .lma
        .binding(b"mn3@example.com")
        .expect("IPv4 alone is granted");
    assert!(b3.home_v4.is_some() && b3.hnp.is_none());
}
