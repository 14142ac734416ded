//! The throughput benchmark's IPv6-inner cases work (issue 15): every flow
//! `pmip-bench throughput` measures with IPv6 inner packets — up and down,
//! through the fast path over an IPv4 and an IPv6 tunnel, and the redirect
//! ceiling and kernel IPv6 forwarding it is compared with — sends a fraction
//! of a second of frames (with whichever generator this host's bench uses), and they arrive at the sink as IPv6, all of them,
//! carried by the fast path (its encap and decap counters), none as IPv4.
//! Nothing here is timed.
use pmip_tests::netns::is_root;
use pmip_tests::tput::{self, Case, Dir, Family, Topo};

const FRAMES: u32 = 20_000;

/// The fast path counters that must have counted every frame of `dir`:
/// (gateway:counter) at encapsulation and at decapsulation.
fn carried_by(dir: Dir) -> [&'static str; 2] {
    match dir {
        Dir::Up => ["mag:tx_encap_uplink", "lma:tx_decap_uplink"],
        Dir::Down => ["lma:tx_encap_downlink", "mag:tx_decap_downlink"],
    }
}

#[test]
fn ipv6_inner_flows_reach_the_sink() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut topo = Topo::new().unwrap();
    let runs = tput::runs(&[Family::V6]);
    assert_eq!(runs.len(), 8, "{runs:?}");
    for (case, flow) in runs {
        let name = tput::row_key(case, flow);
        assert_eq!(flow.inner, Family::V6);
        topo.set_case(case, flow).unwrap();
        let v4_before = topo.receiver(flow.dir).sink_packets_of(Family::V4).unwrap();
        let counters_before = topo.fastpath_counters().unwrap();
        // Frames that reached the sink over both sizes: FRAMES each with
        // live frames or an AF_PACKET socket, at least FRAMES each in the
        // closed loop (the frames go round until the sink counted as many).
        let mut delivered = 0;
        for size in [64, 1400] {
            let s = topo.measure(flow, false, size, 1, FRAMES).unwrap();
            eprintln!(
                "{name} {size} B: offered {}, delivered {}, lost {:?}",
                s.offered, s.delivered, s.drops
            );
            assert!(s.offered >= FRAMES as u64, "{name} {size} B: {s:?}");
            delivered += s.delivered;
            if case == Case::Kernel {
                // The kernel's backlog may drop some on a busy host; it must carry them.
                assert!(s.delivered > s.offered / 2, "{name} {size} B: {s:?}");
            } else {
                // Native XDP all the way: the generator is paced by the chain, nothing lost.
                assert_eq!(s.delivered, s.offered, "{name} {size} B: {s:?}");
            }
        }
        assert_eq!(
            topo.receiver(flow.dir).sink_packets_of(Family::V4).unwrap(),
            v4_before,
            "{name}: IPv4 frames at the sink"
        );
        // The outer family: the binding's tunnel is of `flow.outer` at both
        // ends, and the anchor takes a GRE packet only from the tunnel's
        // remote address in that family (DropWrongPeer otherwise), so all
        // frames delivered with no drop crossed the core in `flow.outer`.
        if case == Case::FastNative {
            let after = topo.fastpath_counters().unwrap();
            for c in carried_by(flow.dir) {
                let n = after.get(c).copied().unwrap_or(0)
                    - counters_before.get(c).copied().unwrap_or(0);
                assert_eq!(n, delivered, "{name}: {c} in {after:?}");
            }
            let dropped: u64 = after
                .iter()
                .filter(|(k, _)| k.contains(":drop"))
                .map(|(_, v)| v)
                .sum();
            assert_eq!(dropped, 0, "{name}: {after:?}");
        }
    }
}

/// The benchmark itself, IPv6 only, for a moment: the second table's rows,
/// named by inner and outer family, with ratios to the same run's baselines.
#[test]
fn ipv6_throughput_rows() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut cfg = tput::Config::smoke();
    cfg.inner = vec![Family::V6];
    let v = tput::throughput(&cfg).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{v}");
    for r in rows {
        assert_eq!(r["inner"], "IPv6", "{r}");
        let mpps = r["mpps_median"].as_f64().unwrap();
        let delivered = r["delivered"].as_u64().unwrap();
        assert!(mpps > 0.0 && mpps < 100.0, "{r}");
        assert!(
            delivered > 0 && delivered <= r["offered"].as_u64().unwrap(),
            "{r}"
        );
        assert!(r["ratio_to_redirect"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["ratio_to_kernel"].as_f64().unwrap() > 0.0, "{r}");
    }
    for (dir, outer) in [
        ("up", "IPv4"),
        ("up", "IPv6"),
        ("down", "IPv4"),
        ("down", "IPv6"),
    ] {
        let name = format!("fast path native XDP, IPv6 inner, {outer} outer");
        assert!(
            rows.iter().any(|r| r["name"] == name.as_str()
                && r["direction"] == dir
                && r["outer"] == outer),
            "no {dir} row {name}: {v}"
        );
    }
}
