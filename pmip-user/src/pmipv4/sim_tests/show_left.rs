//! `show bindings` at the PMA (issue 11): the lifetime left starts again
//! at each successful renewal.
use super::*;

#[test]
fn lifetime_left_resets_on_each_renewal() {
    let mut net = basic();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    let left = |net: &mut Net| {
        let now = net.now;
        Endpoint::bindings(net.pma(PMA1), now)[0].left.unwrap()
    };
    net.run_for(Duration::from_secs(440));
    assert_eq!(left(&mut net), Duration::from_secs(160));
    // Renewed at 75 % of 600 s: a whole lifetime again after each.
    for _ in 0..3 {
        net.run_for(Duration::from_secs(20));
        assert!(
            left(&mut net) >= Duration::from_secs(580),
            "{:?}",
            left(&mut net)
        );
        net.run_for(Duration::from_secs(430));
    }
    assert_eq!(net.ha(HA1).counters().renewals, 3);
}
