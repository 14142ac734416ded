//! The engine driven with a simulated clock: frames in, frames out, decoded
//! with the codec (its own byte-level tests are in nd/tests.rs).
use super::*;
use crate::access::frame6::{parse_frame, solicited_node, Error, Frame6};
use crate::access::nd::{NdOption, NdPacket};

const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const MN: [u8; 6] = [0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
const MN2: [u8; 6] = [0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa5];

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mn_ll() -> Ipv6Addr {
    frame6::link_local_from_mac(MN)
}

fn engine() -> RaEngine {
    RaEngine::new(RaConfig::new(7, 0, ROUTER_MAC).with_max_interval(Duration::from_secs(60)))
}

fn adv(prefix: &str, secs: u64) -> Advertisement {
    Advertisement {
        hnp: Hnp {
            prefix: a(prefix),
            len: 64,
        },
        lifetime: Duration::from_secs(secs),
        dns: vec![a("2001:db8::53")],
        mtu: Some(1452),
        managed: false,
        autonomous: true,
    }
}

/// A frame from a node: ND message `m` from (`mac`, `src`) to `dst`.
fn from_node(mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, hop: u8, m: &NdRepr) -> Vec<u8> {
    let dst_mac = if dst.is_multicast() {
        frame6::multicast_mac(dst)
    } else {
        ROUTER_MAC
    };
    let body = m.to_bytes(src, dst);
    frame6::emit_frame(
        &Addrs {
            src_mac: mac,
            dst_mac,
            vlan: 0,
            src,
            dst,
            hop_limit: hop,
        },
        Upper::Icmpv6(&body),
    )
}

fn rs(mac: [u8; 6], src: Ipv6Addr) -> Vec<u8> {
    let slla = (!src.is_unspecified()).then_some(mac);
    from_node(
        mac,
        src,
        frame6::ALL_ROUTERS,
        255,
        &NdRepr::RouterSolicit { slla },
    )
}

fn decode(f: &[u8]) -> (Frame6<'_>, NdRepr) {
    let p = parse_frame(f).expect("engine frame parses");
    let Upper::Icmpv6(m) = p.upper else {
        panic!("not ICMPv6")
    };
    let r = NdRepr::parse(&NdPacket::new_checked(m).unwrap()).unwrap();
    (p, r)
}

fn ra_of(f: &[u8]) -> (Frame6<'_>, RouterAdvert) {
    match decode(f) {
        (p, NdRepr::RouterAdvert(ra)) => (p, ra),
        other => panic!("not an RA: {other:?}"),
    }
}

fn drain(e: &mut RaEngine) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}

#[test]
fn rs_from_unknown_mac_asks_for_attach_once() {
    let mut e = engine();
    let t0 = Instant::now();
    e.handle(t0, &rs(MN, mn_ll())).unwrap();
    assert_eq!(
        e.poll_event(),
        Some(Event::AttachRequest {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MN
            },
            link_local: Some(mn_ll())
        })
    );
    assert!(drain(&mut e).is_empty(), "no RA before the registration");
    e.handle(t0 + Duration::from_secs(4), &rs(MN, mn_ll()))
        .unwrap();
    assert_eq!(e.poll_event(), None, "one attach request while it runs");
    // The attach was never completed: a later RS asks again.
    let later = t0 + e.config().attach_timeout;
    e.handle_timeout(later);
    e.handle(later, &rs(MN, Ipv6Addr::UNSPECIFIED)).unwrap();
    assert!(matches!(
        e.poll_event(),
        Some(Event::AttachRequest {
            link_local: None,
            ..
        })
    ));
    assert_eq!(e.stats.attach_requests, 2);
}

#[test]
fn advertise_sends_a_unicast_ra_with_the_binding() {
    let mut e = engine();
    let t0 = Instant::now();
    e.handle(t0, &rs(MN, mn_ll())).unwrap();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 150));
    let tx = drain(&mut e);
    assert_eq!(tx.len(), 1);
    let (p, ra) = ra_of(&tx[0]);
    assert_eq!(p.dst_mac, MN, "unicast to the node's MAC");
    assert_eq!(p.src_mac, ROUTER_MAC);
    assert_eq!(p.src, e.config().router_ll);
    assert_eq!(p.src, a("fe80::ff:fe00:fe"));
    assert_eq!(p.dst, mn_ll());
    assert_eq!(p.hop_limit, 255);
    assert_eq!(ra.cur_hop_limit, 64);
    // Router lifetime: 3 × 60 s would be 180, the binding has 150 left.
    assert_eq!(ra.router_lifetime, 150);
    assert_eq!(ra.slla, Some(ROUTER_MAC));
    assert_eq!(ra.mtu, Some(1452));
    assert_eq!(
        ra.prefixes,
        vec![PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 150,
            preferred_lifetime: 150,
            prefix: a("2001:db8:64:10::"),
        }]
    );
    let r = ra.rdnss.unwrap();
    assert_eq!((r.lifetime, r.servers), (150, vec![a("2001:db8::53")]));
    assert!(!ra.managed && !ra.other);
    assert_eq!(e.stats.ra_advertise, 1);
}

#[test]
fn each_node_gets_only_its_own_prefix() {
    let mut e = engine();
    let t0 = Instant::now();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    e.advertise(t0, MN2, adv("2001:db8:64:20::", 3600));
    let tx = drain(&mut e);
    assert_eq!(tx.len(), 2);
    for (f, (mac, prefix)) in tx
        .iter()
        .zip([(MN, "2001:db8:64:10::"), (MN2, "2001:db8:64:20::")])
    {
        let (p, ra) = ra_of(f);
        assert_eq!(p.dst_mac, mac);
        // No address learnt yet: all-nodes at L3, still the node's MAC at L2.
        assert_eq!(p.dst, ALL_NODES);
        assert_eq!(ra.prefixes.len(), 1);
        assert_eq!(ra.prefixes[0].prefix, a(prefix));
    }
    // A lifetime cap bounds the prefix lifetimes, not the router lifetime.
    let mut cfg = RaConfig::new(7, 0, ROUTER_MAC).with_max_interval(Duration::from_secs(60));
    cfg.prefix_lifetime_cap = Some(Duration::from_secs(20));
    let mut capped = RaEngine::new(cfg);
    capped.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    let (_, ra) = ra_of(&drain(&mut capped)[0]);
    assert_eq!(ra.router_lifetime, 180);
    assert_eq!(ra.prefixes[0].valid_lifetime, 20);
    assert_eq!(ra.prefixes[0].preferred_lifetime, 20);
    // The MTU option is left out below the IPv6 minimum.
    let mut small = adv("2001:db8:64:30::", 3600);
    small.mtu = Some(1200);
    e.advertise(t0, MN, small);
    assert_eq!(ra_of(&drain(&mut e)[0]).1.mtu, None);
}

#[test]
fn unsolicited_ras_follow_rfc4861_intervals_and_lifetimes_count_down() {
    let mut e = engine();
    let t0 = Instant::now();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3000));
    drain(&mut e);
    let mut last = t0;
    let mut gaps = Vec::new();
    while gaps.len() < 12 {
        let t = e.poll_timeout().unwrap();
        e.handle_timeout(t);
        for f in drain(&mut e) {
            let (_, ra) = ra_of(&f);
            let left = (t0 + Duration::from_secs(3000) - t).as_secs() as u32;
            assert_eq!(ra.prefixes[0].valid_lifetime, left);
            gaps.push(t - last);
            last = t;
        }
    }
    // First ones at most MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s) apart.
    for g in &gaps[..3] {
        assert!(*g <= Duration::from_secs(16), "{gaps:?}");
    }
    for g in &gaps[3..] {
        assert!(
            *g >= Duration::from_secs_f64(19.8) && *g <= Duration::from_secs(60),
            "{gaps:?}"
        );
    }
    assert!(
        gaps[3..].windows(2).any(|w| w[0] != w[1]),
        "jittered: {gaps:?}"
    );
    assert_eq!(e.stats.ra_unsolicited, 12);
}

#[test]
fn rs_is_answered_no_closer_than_min_delay() {
    let mut e = engine();
    let t0 = Instant::now();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    drain(&mut e);
    // One second after the last RA: held until 3 s after it.
    e.handle(t0 + Duration::from_secs(1), &rs(MN, mn_ll()))
        .unwrap();
    e.handle(t0 + Duration::from_secs(2), &rs(MN, mn_ll()))
        .unwrap();
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    e.handle_timeout(t0 + Duration::from_secs(3));
    let tx = drain(&mut e);
    assert_eq!(tx.len(), 1, "two RSs, one RA");
    assert_eq!(ra_of(&tx[0]).0.dst, mn_ll());
    // Well after: at once.
    e.handle(t0 + Duration::from_secs(10), &rs(MN, mn_ll()))
        .unwrap();
    assert_eq!(drain(&mut e).len(), 1);
    assert_eq!(e.stats.ra_solicited, 2);
    assert_eq!(e.poll_event(), None, "an advertised node's RS is no attach");
}

#[test]
fn withdraw_and_expiry_send_lifetime_zero() {
    let mut e = engine();
    let t0 = Instant::now();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    drain(&mut e);
    e.withdraw(t0 + Duration::from_secs(5), MN);
    let tx = drain(&mut e);
    assert_eq!(tx.len(), 1);
    let (p, ra) = ra_of(&tx[0]);
    assert_eq!(p.dst_mac, MN);
    assert_eq!(ra.router_lifetime, 0);
    assert_eq!(ra.prefixes[0].valid_lifetime, 0);
    assert_eq!(ra.prefixes[0].preferred_lifetime, 0);
    assert_eq!(ra.rdnss.unwrap().lifetime, 0);
    assert!(!e.is_advertised(&MN));
    e.withdraw(t0, MN); // twice: nothing more
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.poll_timeout(), None);

    // A binding nobody refreshed ends by itself, with the same final RA.
    e.advertise(t0, MN2, adv("2001:db8:64:20::", 30));
    drain(&mut e);
    let end = t0 + Duration::from_secs(30);
    while let Some(t) = e.poll_timeout() {
        e.handle_timeout(t);
        if t >= end {
            break;
        }
    }
    let (_, ra) = ra_of(drain(&mut e).last().unwrap());
    assert_eq!(ra.router_lifetime, 0);
    assert_eq!(e.stats.expired, 1);
    assert_eq!(e.stats.ra_final, 2);
    // forget() says nothing.
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    drain(&mut e);
    e.forget(&MN);
    assert!(drain(&mut e).is_empty());
}

#[test]
fn ns_for_the_gateway_is_answered_and_dad_for_the_node_passes() {
    let mut e = engine();
    let t0 = Instant::now();
    let gw = e.config().router_ll;
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    drain(&mut e);
    // Address resolution of the default router.
    let ns = NdRepr::NeighborSolicit {
        target: gw,
        slla: Some(MN),
    };
    e.handle(t0, &from_node(MN, mn_ll(), solicited_node(gw), 255, &ns))
        .unwrap();
    let tx = drain(&mut e);
    assert_eq!(tx.len(), 1);
    let (p, na) = decode(&tx[0]);
    assert_eq!((p.dst_mac, p.dst, p.src), (MN, mn_ll(), gw));
    assert_eq!(
        na,
        NdRepr::NeighborAdvert {
            flags: NaFlags {
                router: true,
                solicited: true,
                override_: true
            },
            target: gw,
            tlla: Some(ROUTER_MAC),
        }
    );
    // DAD for the gateway's address: defended to all-nodes.
    let dad = NdRepr::NeighborSolicit {
        target: gw,
        slla: None,
    };
    e.handle(
        t0,
        &from_node(MN2, Ipv6Addr::UNSPECIFIED, solicited_node(gw), 255, &dad),
    )
    .unwrap();
    let tx = drain(&mut e);
    let (p, na) = decode(&tx[0]);
    assert_eq!((p.dst, p.dst_mac), (ALL_NODES, [0x33, 0x33, 0, 0, 0, 1]));
    assert!(matches!(na, NdRepr::NeighborAdvert { flags, .. } if !flags.solicited));
    // DAD for the node's own SLAAC address and link-local: no answer.
    for t in [a("2001:db8:64:10:24:d7ff:fe8e:21a4"), mn_ll()] {
        let dad = NdRepr::NeighborSolicit {
            target: t,
            slla: None,
        };
        e.handle(
            t0,
            &from_node(MN, Ipv6Addr::UNSPECIFIED, solicited_node(t), 255, &dad),
        )
        .unwrap();
    }
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stats.dad_passed, 2);
    // Resolution of another address: not ours to answer.
    let other = a("2001:db8:64:10::99");
    let ns = NdRepr::NeighborSolicit {
        target: other,
        slla: Some(MN),
    };
    e.handle(t0, &from_node(MN, mn_ll(), solicited_node(other), 255, &ns))
        .unwrap();
    assert!(drain(&mut e).is_empty());
    assert_eq!((e.stats.ns_ignored, e.stats.na_sent), (1, 2));
}

fn probing_engine() -> RaEngine {
    let mut cfg = RaConfig::new(7, 0, ROUTER_MAC).with_max_interval(Duration::from_secs(600));
    cfg.probing = Some(DetachConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        retries: 2,
    });
    RaEngine::new(cfg)
}

/// Runs timeouts up to `until`; returns (time, NS target) of each probe.
fn probes_until(e: &mut RaEngine, until: Instant) -> Vec<(Instant, Ipv6Addr)> {
    let mut v = Vec::new();
    while let Some(t) = e.poll_timeout().filter(|t| *t <= until) {
        e.handle_timeout(t);
        for f in drain(e) {
            if let (p, NdRepr::NeighborSolicit { target, slla }) = decode(&f) {
                assert_eq!((p.dst, p.dst_mac, slla), (target, MN, Some(ROUTER_MAC)));
                v.push((t, target));
            }
        }
    }
    v
}

#[test]
fn neighbor_unreachability_probing_detaches_a_silent_node() {
    let mut e = probing_engine();
    let t0 = Instant::now();
    e.handle(t0, &rs(MN, mn_ll())).unwrap();
    e.poll_event();
    e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    let s = |n: u64| t0 + Duration::from_secs(n);
    let p = probes_until(&mut e, s(12));
    assert_eq!(
        p,
        vec![(s(10), mn_ll()), (s(11), mn_ll()), (s(12), mn_ll())]
    );
    assert_eq!(e.poll_event(), None);
    // The node answers the third probe: quiet again for an interval.
    let na = solicited_na();
    e.handle(
        s(12) + Duration::from_millis(5),
        &from_node(MN, mn_ll(), e.config().router_ll, 255, &na),
    )
    .unwrap();
    let p = probes_until(&mut e, s(25));
    assert_eq!(p[0].0, s(12) + Duration::from_millis(10_005));
    // Now silence: after the retries the node is gone.
    probes_until(&mut e, s(60));
    assert_eq!(
        e.poll_event(),
        Some(Event::Detached {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MN
            }
        })
    );
    assert!(!e.is_advertised(&MN));
    assert_eq!(e.stats.detached, 1);
    assert_eq!(e.stats.probes, 6);
}

/// RFC 5846 §9.1's presence check, probing off or on: a unicast NS to the
/// node's link-local address, again after CHECK_RESEND; its NA is presence,
/// silence until CHECK_WAIT absence; a node without an advertisement is
/// absent at once.
#[test]
fn presence_check_asks_the_node_with_a_neighbor_solicitation() {
    use super::super::detach::{CHECK_RESEND, CHECK_WAIT};
    let at = AccessPoint {
        ifindex: 7,
        vlan: 0,
        mac: MN,
    };
    for mut e in [engine(), probing_engine()] {
        let t0 = Instant::now();
        e.handle(t0, &rs(MN, mn_ll())).unwrap();
        e.poll_event();
        e.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
        drain(&mut e);
        e.check(t0, MN);
        let tx = drain(&mut e);
        assert!(
            matches!(decode(&tx[0]), (p, NdRepr::NeighborSolicit { target, .. }) if target == mn_ll() && p.dst_mac == MN),
            "{tx:?}"
        );
        let na = solicited_na();
        e.handle(t0, &from_node(MN, mn_ll(), e.config().router_ll, 255, &na))
            .unwrap();
        assert_eq!(e.poll_event(), Some(Event::Presence { at, present: true }));
        // Silent: asked twice, then absent; the node keeps its advertisement.
        e.check(t0, MN);
        assert_eq!(drain(&mut e).len(), 1);
        e.handle_timeout(t0 + CHECK_RESEND);
        assert_eq!(drain(&mut e).len(), 1, "asked again");
        assert_eq!(e.poll_event(), None);
        assert!(e.poll_timeout().is_some_and(|t| t <= t0 + CHECK_WAIT));
        e.handle_timeout(t0 + CHECK_WAIT);
        assert_eq!(e.poll_event(), Some(Event::Presence { at, present: false }));
        assert!(e.is_advertised(&MN));
        // A node with nothing advertised: absent at once, nothing sent.
        e.check(t0, MN2);
        let other = AccessPoint { mac: MN2, ..at };
        assert_eq!(
            e.poll_event(),
            Some(Event::Presence {
                at: other,
                present: false
            })
        );
        assert!(drain(&mut e).is_empty());
    }
}

#[test]
fn bad_and_foreign_frames_are_counted_and_dropped() {
    let mut e = engine();
    let t0 = Instant::now();
    let good = rs(MN, mn_ll());
    let rs_repr = NdRepr::RouterSolicit { slla: Some(MN) };
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (good[..good.len() - 1].to_vec(), Error::Truncated),
        (
            from_node(MN, mn_ll(), frame6::ALL_ROUTERS, 254, &rs_repr),
            Error::Malformed,
        ),
        (
            {
                let mut b = good.clone();
                b[60] ^= 0xff;
                b
            },
            Error::BadChecksum,
        ),
        (
            {
                // Option length 0: rebuild the checksum so only the length is wrong.
                let mut m = rs_repr.to_bytes(mn_ll(), frame6::ALL_ROUTERS);
                m[9] = 0;
                frame6::emit_frame(
                    &Addrs {
                        src_mac: MN,
                        dst_mac: frame6::multicast_mac(frame6::ALL_ROUTERS),
                        vlan: 0,
                        src: mn_ll(),
                        dst: frame6::ALL_ROUTERS,
                        hop_limit: 255,
                    },
                    Upper::Icmpv6(&m),
                )
            },
            Error::Malformed,
        ),
        (
            from_node(
                MN,
                Ipv6Addr::UNSPECIFIED,
                frame6::ALL_ROUTERS,
                255,
                &rs_repr,
            ),
            Error::Malformed,
        ),
        (
            from_node(
                MN,
                mn_ll(),
                a("ff02::1:ff00:1"),
                255,
                &NdRepr::NeighborSolicit {
                    target: a("ff02::1"),
                    slla: None,
                },
            ),
            Error::Malformed,
        ),
        (vec![0u8; 10], Error::Truncated),
    ];
    for (i, (f, want)) in cases.iter().enumerate() {
        assert_eq!(e.handle(t0, f), Err(*want), "case {i}");
    }
    // Not ours: our own MAC as source, another VLAN.
    assert!(e.handle(t0, &rs(ROUTER_MAC, mn_ll())).is_err());
    let mut tagged = good.clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert!(e.handle(t0, &tagged).is_err());
    // Somebody else's RA on the access link.
    let rogue = NdRepr::RouterAdvert(RouterAdvert::default());
    e.handle(t0, &from_node(MN2, a("fe80::bad"), ALL_NODES, 255, &rogue))
        .unwrap();
    let s = e.stats;
    assert_eq!(
        (s.malformed, s.bad_checksum, s.foreign, s.rogue_ra),
        (6, 1, 2, 1),
        "{s:?}"
    );
    assert_eq!(s.rx, 10);
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.poll_event(), None);
}

/// RFC 5213 §6.9.3: two MAGs configured alike send byte-identical RAs, so
/// the node cannot tell that its router changed.
#[test]
fn every_mag_sends_the_same_router() {
    let t0 = Instant::now();
    let mut m1 = engine();
    let mut m2 =
        RaEngine::new(RaConfig::new(99, 0, ROUTER_MAC).with_max_interval(Duration::from_secs(60)));
    m1.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    m2.advertise(t0, MN, adv("2001:db8:64:10::", 3600));
    assert_eq!(drain(&mut m1), drain(&mut m2));
    assert_eq!(
        NdOption::SourceLinkLayerAddr(ROUTER_MAC).buffer_len(),
        8,
        "the router's MAC rides in every RA"
    );
}

proptest::proptest! {
    #[test]
    fn random_frames_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let mut e = probing_engine();
        let t0 = Instant::now();
        e.advertise(t0, MN, adv("2001:db8:64:10::", 60));
        let _ = e.handle(t0, &data);
        e.handle_timeout(t0 + Duration::from_secs(100));
    }
}

/// What `poll_timeout` answered before the index: a scan of every node.
fn scanned_timeout(e: &RaEngine) -> Option<Instant> {
    e.subs.values().filter_map(Sub::due).min()
}

#[test]
fn timer_index_matches_a_scan_of_every_node() {
    let mut e = probing_engine();
    let t0 = Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut now = t0;
    for step in 0..4000 {
        now += Duration::from_millis(next(4000));
        let mac = [0x02, 0, 0, 0, 0, next(24) as u8];
        let ll = frame6::link_local_from_mac(mac);
        match next(7) {
            0 => {
                let _ = e.handle(now, &rs(mac, ll));
            }
            1 => e.advertise(now, mac, adv("2001:db8:64:10::", 5 + next(60))),
            2 => e.withdraw(now, mac),
            3 => e.forget(&mac),
            4 => e.seen(now, mac, Some(ll)),
            _ => {
                if let Some(t) = e.poll_timeout() {
                    now = now.max(t);
                    e.handle_timeout(now);
                }
            }
        }
        drain(&mut e);
        while e.poll_event().is_some() {}
        assert_eq!(e.poll_timeout(), scanned_timeout(&e), "step {step}");
        let due = e.subs.values().filter(|s| s.due().is_some()).count();
        assert_eq!(e.timers.len(), due, "one entry per node, step {step}");
    }
    assert!(e.stats.expired > 0 && e.stats.detached > 0 && e.stats.ra_unsolicited > 0);
}

/// The MN's solicited Neighbor Advertisement for its link-local address.
fn solicited_na() -> NdRepr {
    NdRepr::NeighborAdvert {
        flags: NaFlags {
            solicited: true,
            ..Default::default()
        },
        target: mn_ll(),
        tlla: Some(MN),
    }
}
