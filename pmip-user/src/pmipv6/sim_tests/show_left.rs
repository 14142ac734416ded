//! `show bindings` at the MAG (issue 11): the lifetime left starts again
//! at each successful refresh.
use super::*;

#[test]
fn lifetime_left_resets_on_each_refresh() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let left = |s: &Sim| Endpoint::bindings(&s.mags[0], s.now)[0].left.unwrap();
    s.advance(Duration::from_secs(299));
    assert_eq!(left(&s), Duration::from_secs(3600 - 299));
    // Refreshed every 300 s: a whole lifetime again after each.
    for _ in 0..3 {
        s.advance(Duration::from_secs(2));
        assert!(left(&s) >= Duration::from_secs(3598), "{:?}", left(&s));
        s.advance(Duration::from_secs(298));
    }
}
