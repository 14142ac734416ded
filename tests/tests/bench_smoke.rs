//! CI smoke of the benchmark harness (`pmip-bench throughput | tcp | scale`):
//! each runs for a tiny duration and must produce sane, non-zero figures.
//! Nothing here is timed: the assertions are about the harness working
//! (frames reach the sink, nothing is counted that was not delivered, the
//! kernel reports map memory), never about how fast.
use pmip_tests::netns::is_root;
use pmip_tests::{scale, tput};

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
    let fast = rows.iter().find(|r| r["case"] == "fastpath-native").unwrap();
    assert!(fast["lost_by_hop"].get("mag:fastpath_drop_counters").is_none(), "{fast}");
    assert!(fast["lost_by_hop"].get("lma:fastpath_drop_counters").is_none(), "{fast}");
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
    }
    for m in v["memory"].as_array().unwrap() {
        let b = m["access_bytes_per_sub"].as_f64().unwrap();
        assert!(b > 16.0 && b < 1e5, "{m}");
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
