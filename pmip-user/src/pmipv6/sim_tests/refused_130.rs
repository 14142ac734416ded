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
