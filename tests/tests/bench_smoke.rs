//! CI smoke of the benchmark harness (`pmip-bench throughput | tcp | scale | handover`,
//! and one case of `per-packet` as `cargo xtask profile` runs it):
//! each runs for a tiny duration and must produce sane, non-zero figures.
//! Nothing here is timed: the assertions are about the harness working
//! (frames reach the sink, nothing is counted that was not delivered, the
//! kernel reports map memory), never about how fast.
use pmip_tests::netns::is_root;
use pmip_tests::{gateway_cases, handover, scale, tput};

#[test]
fn throughput_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let v = tput::throughput(&tput::Config::smoke()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), tput::Case::ALL.len(), "{v}");
    for r in rows {
        let mpps = r["mpps_median"].as_f64().unwrap();
        let offered = r["offered"].as_u64().unwrap();
        let delivered = r["delivered"].as_u64().unwrap();
        assert!(mpps > 0.0 && mpps < 100.0, "{r}");
        assert!(delivered > 0 && delivered <= offered, "{r}");
    }
    // The fast path really carried the frames: encapsulated and decapsulated
    // (drop counters of the fast path would show up in lost_by_hop).
    for case in ["fastpath-native", "fastpath-tc"] {
        let fast = rows.iter().find(|r| r["case"] == case).unwrap();
        assert!(
            fast["lost_by_hop"]
                .get("mag:fastpath_drop_counters")
                .is_none(),
            "{fast}"
        );
        assert!(
            fast["lost_by_hop"]
                .get("lma:fastpath_drop_counters")
                .is_none(),
            "{fast}"
        );
    }
}

/// The benchmark's topology sending with `g` (None, said, without root).
fn topology_with(g: tput::Generator) -> Option<tput::Topo> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let mut topo = tput::Topo::new().unwrap();
    topo.use_generator(g).unwrap();
    Some(topo)
}

/// The fast path's two directions and the counters that must count each
/// frame of one: (flow, [encap, decap]).
fn fast_path_flows() -> [(tput::Flow, [&'static str; 2]); 2] {
    [
        (
            tput::Flow::V4,
            ["mag:tx_encap_uplink", "lma:tx_decap_uplink"],
        ),
        (
            tput::Flow {
                dir: tput::Dir::Down,
                ..tput::Flow::V4
            },
            ["lma:tx_encap_downlink", "mag:tx_decap_downlink"],
        ),
    ]
}

/// One measurement of `case` on `flow` asking for `frames` 64-byte frames:
/// none lost, at least `frames` at the sink, and each of the fast path's
/// `carried` counters counted every frame the sink did.
fn carried(
    topo: &mut tput::Topo,
    case: tput::Case,
    flow: tput::Flow,
    carried: &[&str],
    frames: u32,
) -> tput::Sample {
    topo.set_case(case, flow).unwrap();
    let before = topo.fastpath_counters().unwrap();
    let s = topo.measure(flow, false, 64, 1, frames).unwrap();
    assert_eq!(s.offered, s.delivered, "{case:?} {flow:?}: {s:?}");
    assert!(s.delivered >= u64::from(frames), "{case:?} {flow:?}: {s:?}");
    let after = topo.fastpath_counters().unwrap();
    for c in carried {
        let n = after.get(*c).copied().unwrap_or(0) - before.get(*c).copied().unwrap_or(0);
        assert_eq!(n, s.delivered, "{flow:?}: {c} in {after:?}");
    }
    s
}

/// The `AF_PACKET` generator (`tput::packet_run`: PMIP_BENCH_GENERATOR=packet,
/// and what primes the closed loop), forced on whatever this host allows: every
/// frame it sends up and down through the fast path arrives at the sink,
/// and the fast path encapsulated and decapsulated each one.
#[test]
fn packet_socket_generator_carries_every_frame() {
    const FRAMES: u32 = 5_000;
    let Some(mut topo) = topology_with(tput::Generator::PacketSocket) else {
        return;
    };
    for (flow, counters) in fast_path_flows() {
        let s = carried(&mut topo, tput::Case::FastNative, flow, &counters, FRAMES);
        assert_eq!(s.offered, u64::from(FRAMES), "{flow:?}: {s:?}");
    }
}

/// The closed loop (`tput::Generator::Loop`, what the bench uses where the
/// kernel refuses live frames), forced on whatever this host allows: the
/// frames put in go round up and down through the fast path until the sink
/// has counted many times as many, every one comes back when the loop is
/// stopped, and each arrival at the sink was encapsulated and decapsulated
/// once; through kernel forwarding too (the frames cross the stack).
#[test]
fn loop_generator_brings_every_frame_round_and_back() {
    const LAPS: u32 = 20_000;
    let Some(mut topo) = topology_with(tput::Generator::Loop) else {
        return;
    };
    let mut runs: Vec<_> = fast_path_flows()
        .into_iter()
        .map(|(flow, counters)| (tput::Case::FastNative, flow, counters.to_vec()))
        .collect();
    runs.push((tput::Case::Kernel, tput::Flow::V4, Vec::new()));
    for (case, flow, counters) in runs {
        let s = carried(&mut topo, case, flow, &counters, LAPS);
        assert!(s.drops.is_empty(), "{case:?} {flow:?}: {s:?}");
        assert!(s.pps > 0.0, "{case:?} {flow:?}: {s:?}");
    }
}

#[test]
fn tcp_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut cfg = tput::Config::smoke();
    cfg.secs = 1.0;
    let v = tput::tcp(&cfg).unwrap();
    for r in v["rows"].as_array().unwrap() {
        let g = r["gbps_median"].as_f64().unwrap();
        assert!(g > 0.001 && g < 1000.0, "{r}");
    }
}

#[test]
fn scale_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let v = scale::scale(&scale::Config::smoke()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{v}");
    for r in rows {
        let ns = r["ns_per_packet"].as_f64().unwrap();
        assert!(ns > 0.0 && ns < 1e6, "{r}");
        let iqm = r["iqm_ns"].as_f64().unwrap();
        assert!(iqm > 0.0 && iqm < 1e6, "{r}");
    }
    for m in v["memory"].as_array().unwrap() {
        let b = m["access_bytes_per_sub"].as_f64().unwrap();
        assert!(b > 16.0 && b < 1e5, "{m}");
    }
}

/// `pmip-bench pages`: both programs find every picked entry (the bench
/// refuses any other verdict) in a table spread over several inner arrays.
#[test]
fn pages_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut c = scale::Config::smoke();
    c.sizes = vec![1_000, 5_000];
    let v = pmip_tests::pages::pages(&c).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    for r in rows {
        let ns = r["iqm_ns"].as_f64().unwrap();
        assert!(ns > 0.0 && ns < 1e6, "{r}");
    }
}

#[test]
fn trafgen_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let v = tput::trafgen(&tput::Config::smoke()).unwrap();
    if v.get("skipped").is_some() {
        eprintln!("skipped: {v}");
        return;
    }
    for r in v["rows"].as_array().unwrap() {
        let mpps = r["mpps_median"].as_f64().unwrap();
        assert!(mpps > 0.0 && mpps < 100.0, "{r}");
    }
}

/// One move at 200 packets/s each way: the streams resume through the new
/// gateway (sequence numbers after the move arrive, and the capture saw them
/// leave the new gateway). Counts only, no timing.
#[test]
fn handover_smoke() {
    if gateway_cases::skip() {
        return;
    }
    let cfg = handover::Config::smoke();
    let v = handover::handover(&cfg).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for r in rows {
        let sent = r["sent"].as_u64().unwrap();
        let received = r["received"].as_u64().unwrap();
        assert!(sent > 0 && received > 0 && received <= sent, "{r}");
        let moves = r["moves"].as_array().unwrap();
        assert_eq!(moves.len(), 1, "{r}");
        let m = &moves[0];
        let (Some(last_old), Some(first_new)) = (
            m["last_seq_via_old"].as_u64(),
            m["first_seq_via_new"].as_u64(),
        ) else {
            panic!("no packet through the old or the new gateway around the move: {r}");
        };
        assert!(first_new > last_old, "{r}");
        // The move is followed by ≥ 1 s of stream (200+ packets): most of it
        // must have come through the new gateway.
        assert!(m["received_after_via_new"].as_u64().unwrap() >= 50, "{r}");
    }
}

/// `per-packet` with one case and the single-operation rows picked by
/// `PMIP_BENCH_CASES`, as `cargo xtask profile` runs it: the baselines stay
/// (the table's ratios need them), the case comes with its row through the
/// program of its interface's role, the other cases go, and every row kept
/// has a replay figure.
#[test]
fn per_packet_one_case_smoke() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("pmip-bench-smoke-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pmip-bench"))
        .arg("per-packet")
        .env("PMIP_BENCH_REPLAY_ONLY", "1")
        .env(
            "PMIP_BENCH_CASES",
            "op: 4 packet loads|access encap, IPv4 outer",
        )
        .env("PMIP_BENCH_REPLAY_REPEAT", "2000")
        .env("PMIP_BENCH_RESULTS_DIR", &dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("  ") && !l.starts_with("case "))
        .filter(|l| {
            !l.starts_with("per-packet") && !l.starts_with("replay") && !l.starts_with("median")
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|l| l.split("  ").next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "xdp_pass (baseline a)",
            "min forwarder (baseline b)",
            "redirect only (tg_fwd)",
            "access encap, IPv4 outer",
            "access encap, IPv4 outer [role]",
            "op: 4 packet loads, each in one word",
            "op: 4 packet loads across words",
        ],
        "{text}"
    );
    for l in &rows {
        // The replay median (the fifth figure) of every row is a time.
        let replay: f64 = l.split_whitespace().rev().nth(3).unwrap().parse().unwrap();
        assert!(replay > 0.0 && replay < 100_000.0, "{l}");
    }
}
