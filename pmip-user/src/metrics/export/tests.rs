use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::metrics::signaling::{Direction, MessageKey};

fn snapshot() -> Snapshot {
    let mut stats = StatsView::default();
    let g = |kv: &[(&str, u64)]| -> BTreeMap<String, u64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    stats.groups.insert(
        "mag".into(),
        g(&[
            ("pbu_sent", 3),
            ("pbu_retransmitted", 2),
            ("registration_timeouts", 1),
        ]),
    );
    stats.groups.insert(
        "mag socket".into(),
        g(&[("rx_datagrams", 4), ("tx_datagrams", 5)]),
    );
    stats
        .groups
        .insert("dhcp acc0".into(), g(&[("discovers", 1), ("acks", 1)]));
    stats.groups.insert("arp acc0".into(), g(&[("probes", 6)]));
    stats.groups.insert(
        "fastpath".into(),
        g(&[("tx_encap_uplink", 100), ("drop_spoofed_source", 2)]),
    );
    stats
        .groups
        .insert("fastpath_maps".into(), g(&[("access_by_mac", 1)]));
    stats.groups.insert(
        "fastpath_maps_capacity".into(),
        g(&[("access_by_mac", 65536)]),
    );
    stats.groups.insert("bindings".into(), g(&[("active", 1)]));
    stats
        .groups
        .insert("aaa".into(), g(&[("access_accepts", 7)]));
    let mut messages = BTreeMap::new();
    messages.insert(
        MessageKey {
            direction: Direction::Tx,
            kind: "pbu",
            status: "none".into(),
            peer: "lma".into(),
        },
        3,
    );
    messages.insert(
        MessageKey {
            direction: Direction::Rx,
            kind: "pba",
            status: "0".into(),
            peer: "lma".into(),
        },
        1,
    );
    Snapshot {
        version: "0.1.0".into(),
        ebpf_build_id: "0123456789abcdef".into(),
        role: "mag",
        protocol: "pmipv6",
        stats,
        messages,
        peers: vec![
            ("lma".into(), Some(Duration::from_secs(2))),
            ("lma2".into(), None),
        ],
        peer_window: Some(Duration::from_secs(30)),
        taken: Instant::now(),
    }
}

#[test]
fn every_family_with_its_labels() {
    let text = render(snapshot(), Format::Prometheus).unwrap();
    for line in [
        "pmip_signaling_messages_total{direction=\"tx\",type=\"pbu\",status=\"none\",peer=\"lma\"} 3",
        "pmip_signaling_messages_total{direction=\"rx\",type=\"pba\",status=\"0\",peer=\"lma\"} 1",
        "pmip_signaling_retransmissions_total{role=\"mag\"} 2",
        "pmip_signaling_timeouts_total{role=\"mag\"} 1",
        "pmip_registrar_events_total{role=\"mag\",event=\"pbu_sent\"} 3",
        "pmip_registrar_socket_events_total{event=\"rx_datagrams\"} 4",
        "pmip_bindings{role=\"mag\",state=\"active\"} 1",
        "pmip_bindings{role=\"mag\",state=\"registering\"} 0",
        "pmip_peer_up{peer=\"lma\"} 1",
        "pmip_peer_up{peer=\"lma2\"} 0",
        "pmip_peer_last_heard_seconds{peer=\"lma\"} 2.0",
        "pmip_dhcp_events_total{interface=\"acc0\",event=\"discovers\"} 1",
        "pmip_arp_events_total{interface=\"acc0\",event=\"probes\"} 6",
        "pmip_fastpath_packets_total{verdict=\"tx_encap_uplink\"} 100",
        "pmip_fastpath_map_entries{map=\"access_by_mac\"} 1",
        "pmip_fastpath_map_capacity{map=\"access_by_mac\"} 65536",
        "pmip_component_events_total{component=\"aaa\",event=\"access_accepts\"} 7",
        "pmip_build_info{version=\"0.1.0\",ebpf_build_id=\"0123456789abcdef\",role=\"mag\",protocol=\"pmipv6\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    // Registrar groups are not exported twice as components.
    assert!(!text.contains("component=\"mag"), "{text}");
    assert!(!text.contains("component=\"fastpath"), "{text}");
}

#[test]
fn openmetrics_ends_with_eof() {
    let text = render(snapshot(), Format::OpenMetrics).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE pmip_signaling_messages counter"));
}

/// The Prometheus project's own linter accepts what the endpoint serves by
/// default (the Prometheus text format; promtool 2.42 reads no
/// OpenMetrics). Debian's `prometheus` package; skipped where it is missing.
#[test]
fn promtool_check_metrics_passes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("skipped: promtool not installed (Debian package prometheus)");
        return;
    }
    {
        let format = Format::Prometheus;
        let text = render(snapshot(), format).unwrap();
        let mut c = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{format:?}: promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
