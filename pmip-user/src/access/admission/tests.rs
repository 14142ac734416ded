use super::*;

fn cfg() -> AdmissionConfig {
    AdmissionConfig {
        max_pending_per_link: 16,
        max_pending: 64,
        attempts_per_s_per_link: 10,
        attempts_per_s: 50,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        new_mac_reports_per_s: 20,
    }
}

fn at(link: u32, n: u32) -> AccessPoint {
    let b = n.to_be_bytes();
    AccessPoint {
        ifindex: link,
        vlan: 0,
        mac: [0x02, 0x10, b[0], b[1], b[2], b[3]],
    }
}

/// Caps wide open but one, to test that one alone.
fn only(f: impl FnOnce(&mut AdmissionConfig)) -> AdmissionConfig {
    let mut c = AdmissionConfig {
        max_pending_per_link: 1_000_000,
        max_pending: 1_000_000,
        attempts_per_s_per_link: 1_000_000,
        attempts_per_s: 1_000_000,
        ..cfg()
    };
    f(&mut c);
    c
}

#[test]
fn pending_caps_per_link_and_in_all() {
    let t = Instant::now();
    let mut a = Admission::new(only(|c| c.max_pending_per_link = 16), t);
    for i in 0..16 {
        a.admit(t, at(1, i)).unwrap();
    }
    assert_eq!(a.admit(t, at(1, 99)), Err(Refusal::LinkPending));
    // Another link is not affected; a finished attach frees its slot.
    a.admit(t, at(2, 0)).unwrap();
    a.finish(t, &at(1, 3), Outcome::Done);
    a.admit(t, at(1, 99)).unwrap();

    let mut a = Admission::new(only(|c| c.max_pending = 5), t);
    for link in 0..5 {
        a.admit(t, at(link, 0)).unwrap();
    }
    assert_eq!(a.admit(t, at(9, 0)), Err(Refusal::Pending));
    assert_eq!(a.stats().refused_pending, 1);
    assert_eq!(a.stats().pending, 5);
}

#[test]
fn attempt_rates_per_link_and_in_all() {
    let t = Instant::now();
    let mut a = Admission::new(only(|c| c.attempts_per_s_per_link = 10), t);
    for i in 0..10 {
        a.admit(t, at(1, i)).unwrap();
    }
    assert_eq!(a.admit(t, at(1, 10)), Err(Refusal::LinkRate));
    a.admit(t, at(2, 0)).unwrap();
    // A tenth of a second buys one more attempt.
    let t1 = t + Duration::from_millis(100);
    a.admit(t1, at(1, 10)).unwrap();
    assert_eq!(a.admit(t1, at(1, 11)), Err(Refusal::LinkRate));

    let mut a = Admission::new(only(|c| c.attempts_per_s = 3), t);
    for link in 0..3 {
        a.admit(t, at(link, 0)).unwrap();
    }
    assert_eq!(a.admit(t, at(7, 0)), Err(Refusal::Rate));
    // A refusal by the global budget leaves the link's untouched.
    assert_eq!(a.stats().refused_rate, 1);
}

#[test]
fn the_same_attach_asked_again_costs_nothing() {
    let t = Instant::now();
    let mut a = Admission::new(only(|c| c.attempts_per_s_per_link = 1), t);
    a.admit(t, at(1, 1)).unwrap();
    for _ in 0..10 {
        a.admit(t, at(1, 1)).unwrap();
    }
    assert_eq!(a.stats().admitted, 1);
    assert!(a.is_pending(&at(1, 1)));
}

#[test]
fn failures_back_off_doubling_to_the_cap() {
    let t = Instant::now();
    let mut a = Admission::new(cfg(), t);
    let m = at(1, 1);
    let mut now = t;
    let mut want = Duration::from_secs(1);
    for _ in 0..10 {
        a.admit(now, m).unwrap();
        a.finish(now, &m, Outcome::Failed);
        assert_eq!(a.admit(now, m), Err(Refusal::BackOff(now + want)));
        assert_eq!(
            a.admit(now + want - Duration::from_millis(1), m),
            Err(Refusal::BackOff(now + want))
        );
        now += want;
        want = (want * 2).min(Duration::from_secs(60));
    }
    assert_eq!(want, Duration::from_secs(60));
    // Success clears it: the next failure starts again at the initial delay.
    a.admit(now, m).unwrap();
    a.finish(now, &m, Outcome::Done);
    a.admit(now, m).unwrap();
    a.finish(now, &m, Outcome::Failed);
    assert_eq!(
        a.admit(now, m),
        Err(Refusal::BackOff(now + Duration::from_secs(1)))
    );
    // Leaving is not failing.
    let m2 = at(1, 2);
    a.admit(now, m2).unwrap();
    a.finish(now, &m2, Outcome::Left);
    a.admit(now, m2).unwrap();
}

#[test]
fn new_mac_reports_have_their_own_budget() {
    let t = Instant::now();
    let mut a = Admission::new(cfg(), t);
    let passed = (0..1000).filter(|_| a.new_mac_report(t)).count();
    assert_eq!(passed, 20);
    assert!(a.new_mac_report(t + Duration::from_millis(50)));
    assert_eq!(a.stats().new_mac_reports_dropped, 980);
}

#[test]
fn housekeeping_gives_up_stale_attaches_and_forgets_old_backoffs() {
    let t = Instant::now();
    let mut a = Admission::new(cfg(), t);
    a.admit(t, at(1, 1)).unwrap();
    a.admit(t, at(1, 2)).unwrap();
    a.finish(t, &at(1, 2), Outcome::Failed);
    let h = a.housekeeping(t + Duration::from_secs(1));
    assert!(h.stale.is_empty());
    assert!(!h.flood_over);
    // The back-off ran out at t+1 s and is forgotten backoff_max later.
    assert_eq!(a.stats().backing_off, 1);
    a.housekeeping(t + Duration::from_secs(60));
    assert_eq!(a.stats().backing_off, 1);
    a.housekeeping(t + Duration::from_secs(61));
    assert_eq!(a.stats().backing_off, 0);
    assert_eq!(a.stats().pending, 1);
    let h = a.housekeeping(t + PENDING_TIMEOUT);
    assert_eq!(h.stale, vec![at(1, 1)]);
    assert_eq!(a.stats().pending, 0);
    assert_eq!(a.stats().expired, 1);
    assert!(a.link_rate.is_empty() && a.pending_per_link.is_empty());
}

/// The flood: 20 000 new MACs in 10 s on one access link while a
/// legitimate subscriber attaches on another link every second. Every
/// legitimate attach is admitted at once; the flood gets its link's budget.
#[test]
fn a_flood_on_one_link_leaves_the_others_served() {
    let t = Instant::now();
    let mut a = Admission::new(cfg(), t);
    let mut admitted = Vec::new();
    for i in 0..20_000u32 {
        let now = t + Duration::from_micros(u64::from(i) * 500);
        if a.admit(now, at(1, i)).is_ok() {
            admitted.push((now, at(1, i)));
        }
        // Each admitted flood attach is registered, offered, and abandoned
        // when its offer hold (10 s) runs out.
        while admitted
            .first()
            .is_some_and(|(t0, _)| now >= *t0 + Duration::from_secs(10))
        {
            let (_, m) = admitted.remove(0);
            a.finish(now, &m, Outcome::Failed);
        }
        if i % 2000 == 0 {
            let legit = at(2, i);
            assert_eq!(a.admit(now, legit), Ok(()), "legitimate attach at {i}");
            a.finish(now, &legit, Outcome::Done);
        }
    }
    let s = a.stats();
    // At most the link's pending cap in the first offer hold, then one
    // slot per finished attach.
    assert!(s.admitted <= 16 + 10 + 16, "{s:?}");
    assert!(
        s.refused_link_pending + s.refused_link_rate > 19_000,
        "{s:?}"
    );
}

#[test]
fn the_end_of_a_flood_is_told_once() {
    let t = Instant::now();
    let mut a = Admission::new(cfg(), t);
    let runs = |a: &mut Admission, s: u64| a.housekeeping(t + Duration::from_secs(s)).flood_over;
    assert!(!runs(&mut a, 1));
    for i in 0..100 {
        let _ = a.admit(t, at(1, i));
    }
    assert!(
        !runs(&mut a, 2),
        "refusals came since the last run: flooding"
    );
    for i in 0..100 {
        let _ = a.admit(t + Duration::from_millis(2500), at(1, 1000 + i));
    }
    assert!(!runs(&mut a, 3), "still flooding");
    assert!(runs(&mut a, 4), "quiet: over");
    assert!(!runs(&mut a, 5), "told once");
}
