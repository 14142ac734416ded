use super::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn seed_binding() -> BindingView {
    BindingView {
        domain: Some("D1".into()),
        nai: "mn0@example.com".into(),
        state: "ACTIVE".into(),
        interface: "eth0.3074".into(),
        vlan: Some(3074),
        home_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        hnp: None,
        att: 4,
        llid: "00:24:d7:8e:21:a4".into(),
        peer_kind: "LMA".into(),
        peer_name: "lma1".into(),
        peer: "2001:db8:cafe:1024::101".parse().unwrap(),
        lifetime_s: 3600,
        lifetime_left_s: 3412,
        gre_key_up: 5,
        gre_key_down: 5,
        sub_id: 1,
    }
}

#[test]
fn bindings_text_follows_seed_004() {
    let t = format_bindings(&[seed_binding()]);
    let want = "\
Total number of bindings: 1
----------------------------------------
[Binding][MN]: Domain: D1, Nai: mn0@example.com
  [Binding][MN]: State: ACTIVE
  [Binding][MN]: Interface: eth0.3074 (vlan 3074)
  [Binding][MN]: Hoa: 192.0.2.1, att: 4, llid: 0024.d78e.21a4
  [Binding][MN]: HNP: 0
  [Binding][MN][LMA]: Id: lma1, address: 2001:db8:cafe:1024::101
  [Binding][MN][LMA]: lifetime: 3600, remaining: 3412
  [Binding][MN][GREKEY]: Upstream: 5, Downstream: 5
";
    assert_eq!(t, want);
}

#[test]
fn bindings_text_variants() {
    let b = BindingView {
        domain: None,
        vlan: None,
        home_v4: None,
        hnp: Some("2001:db8:f00d:1::/64".into()),
        peer_kind: "MAG".into(),
        gre_key_up: 7,
        gre_key_down: 9,
        llid: "not-a-mac".into(),
        ..seed_binding()
    };
    let t = format_bindings(&[b.clone(), b]);
    assert!(t.starts_with("Total number of bindings: 2\n"));
    assert!(t.contains("[Binding][MN]: Nai: mn0@example.com\n"));
    assert!(t.contains("  [Binding][MN]: Interface: eth0.3074\n"));
    assert!(t.contains("Hoa: -, att: 4, llid: not-a-mac"));
    assert!(t.contains("HNP: 2001:db8:f00d:1::/64"));
    assert!(t.contains("[Binding][MN][MAG]: Id: lma1"));
    assert!(t.contains("[GREKEY]: Upstream: 7, Downstream: 9"));
    assert_eq!(format_bindings(&[]), "Total number of bindings: 0\n");
}

#[test]
fn tunnels_and_stats_text() {
    let t = format_tunnels(&[TunnelView {
        peer_name: "lma1".into(),
        local: Some("10.0.0.1".parse().unwrap()),
        remote: Some("10.0.0.2".parse().unwrap()),
        bindings: 3,
        state: "UP".into(),
        restart_counter: None,
    }]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "Total number of tunnels: 1");
    assert!(lines[1].starts_with("Peer "));
    let cols: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(cols, ["lma1", "10.0.0.1", "10.0.0.2", "3", "UP"]);

    let mut s = StatsView::default();
    s.add_group(
        "dhcp",
        &crate::access::dhcp::DhcpStats {
            offers: 2,
            acks: 3,
            ..Default::default()
        },
    );
    s.subscribers.push(SubscriberStats {
        nai: "mn0@example.com".into(),
        sub_id: 1,
        traffic: TrafficCounters {
            up_packets: 10,
            up_bytes: 1000,
            down_packets: 20,
            down_bytes: 2000,
        }
        .into(),
    });
    assert_eq!(s.groups["dhcp"]["acks"], 3);
    let t = format_stats(&s);
    assert!(t.contains("dhcp:\n"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["offers", "2"]),
        "{t}"
    );
    let sub = t.lines().find(|l| l.contains("mn0@example.com")).unwrap();
    assert_eq!(
        sub.split_whitespace().collect::<Vec<_>>(),
        ["mn0@example.com", "1", "10", "1000", "20", "2000"]
    );
}

#[test]
fn json_wire_format() {
    assert_eq!(
        serde_json::to_string(&Request::ShowBindings(Default::default())).unwrap(),
        r#"{"cmd":"show_bindings"}"#
    );
    assert_eq!(
        serde_json::to_string(&Request::ClearBinding { nai: "a@b".into() }).unwrap(),
        r#"{"cmd":"clear_binding","nai":"a@b"}"#
    );
    let r: Request = serde_json::from_str(r#"{"cmd":"show_bindings"}"#).unwrap();
    assert_eq!(r, Request::ShowBindings(BindingQuery::default()));
    let q = Request::ShowBindings(BindingQuery {
        nai: None,
        peer: Some("mag1".into()),
        summary: true,
    });
    let j = serde_json::to_string(&q).unwrap();
    assert_eq!(j, r#"{"cmd":"show_bindings","peer":"mag1","summary":true}"#);
    assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), q);
    let summary = BindingSummaryView {
        total: 3,
        by_state: BTreeMap::from([("ACTIVE".into(), 2), ("REGISTERING".into(), 1)]),
        by_peer: BTreeMap::from([("mag1 (10.0.0.1)".into(), 3)]),
    };
    assert_eq!(
        format_response(&Response::BindingSummary(summary)),
        "Total number of bindings: 3\n  ACTIVE: 2\n  REGISTERING: 1\nBy peer:\n  mag1 (10.0.0.1): 3\n"
    );
    let r: Request = serde_json::from_str(r#"{"cmd":"show_stats"}"#).unwrap();
    assert_eq!(r, Request::ShowStats);
    assert_eq!(
        serde_json::to_string(&Request::Shutdown { deregister: true }).unwrap(),
        r#"{"cmd":"shutdown","deregister":true}"#
    );
    let r: Request = serde_json::from_str(r#"{"cmd":"shutdown"}"#).unwrap();
    assert_eq!(r, Request::Shutdown { deregister: false });
    assert_eq!(
        format_response(&Response::ShuttingDown {
            deregister: true,
            bindings: 3
        }),
        "pmipd: releasing 3 binding(s), then removing the fast path and its pins\n"
    );
    assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    let r: Request = serde_json::from_str(r#"{"cmd":"clear_peer","peer":"mag1"}"#).unwrap();
    assert_eq!(
        r,
        Request::ClearPeer {
            peer: "mag1".into(),
            realm: None
        }
    );
    assert_eq!(
        format_response(&Response::ClearedPeer {
            peer: "mag1".into(),
            realm: Some("example.com".into()),
            bindings: 2
        }),
        "2 binding(s) of realm example.com through mag1 released\n"
    );
    let resp = Response::Bindings(vec![seed_binding()]);
    let j = serde_json::to_value(&resp).unwrap();
    assert_eq!(j["kind"], "bindings");
    assert_eq!(j["data"][0]["nai"], "mn0@example.com");
    assert_eq!(j["data"][0]["home_v4"], "192.0.2.1");
    assert_eq!(j["data"][0]["gre_key_up"], 5);
    assert_eq!(serde_json::from_value::<Response>(j).unwrap(), resp);
}

fn handler() -> Handler {
    Arc::new(|req| {
        let resp = match req {
            Request::ShowBindings(_) => Response::Bindings(vec![seed_binding()]),
            Request::ShowTunnels => Response::Tunnels(vec![]),
            Request::ShowStats => {
                let mut s = StatsView::default();
                s.add_group("signaling", &BTreeMap::from([("pbu_tx", 4u64)]));
                Response::Stats(s)
            }
            Request::ClearBinding { nai } => Response::Cleared {
                found: nai == "mn0@example.com",
                refusal: false,
                nai,
            },
            Request::ClearPeer { peer, realm } => Response::ClearedPeer {
                peer,
                realm,
                bindings: 2,
            },
            Request::Shutdown { deregister } => Response::ShuttingDown {
                deregister,
                bindings: 1,
            },
            Request::ShowAaa => Response::Aaa(Box::new(aaa_view())),
            Request::ShowCluster => Response::Error {
                message: "not a cluster".into(),
            },
            Request::ShowCounters | Request::Reload | Request::Ping => Response::Pong,
        };
        Box::pin(async move { resp })
    })
}

#[tokio::test]
async fn round_trip_over_a_unix_socket() {
    let tmp = crate::access::dhcp::tests::TmpDir::new("ctl");
    let dir = tmp.0.clone();
    let path = dir.join("ctl.sock");
    // A stale socket file is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let l = bind(&path).unwrap();
    let server = tokio::spawn(serve(l, handler()));

    assert_eq!(
        request(&path, &Request::ShowBindings(Default::default()))
            .await
            .unwrap(),
        Response::Bindings(vec![seed_binding()])
    );
    assert_eq!(
        request(&path, &Request::ShowTunnels).await.unwrap(),
        Response::Tunnels(vec![])
    );
    let Response::Stats(s) = request(&path, &Request::ShowStats).await.unwrap() else {
        panic!()
    };
    assert_eq!(s.groups["signaling"]["pbu_tx"], 4);
    assert_eq!(
        request(&path, &Request::ClearBinding { nai: "x@y".into() })
            .await
            .unwrap(),
        Response::Cleared {
            nai: "x@y".into(),
            found: false,
            refusal: false
        }
    );
    // Blocking client (pmipctl) from another thread.
    let p2 = path.clone();
    let r = tokio::task::spawn_blocking(move || {
        request_blocking(
            &p2,
            &Request::ShowBindings(Default::default()),
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(format_response(&r).contains("Nai: mn0@example.com"));

    // Garbage and oversized requests get an error response, and the server lives on.
    for bad in [b"not json\n".to_vec(), vec![b'x'; MAX_REQUEST + 10]] {
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(&bad).await.unwrap();
        let _ = s.shutdown().await;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let r: Response = serde_json::from_slice(&buf).unwrap();
        assert!(matches!(r, Response::Error { .. }), "{r:?}");
    }
    assert!(matches!(
        request(&path, &Request::ShowTunnels).await.unwrap(),
        Response::Tunnels(_)
    ));

    // A regular file at the path is not clobbered.
    let f = dir.join("file");
    std::fs::write(&f, b"x").unwrap();
    assert!(bind(&f).is_err());
    server.abort();
}

#[test]
fn blocking_client_reports_a_missing_daemon() {
    let e = request_blocking(
        Path::new("/nonexistent/pmipd.sock"),
        &Request::ShowStats,
        Duration::from_secs(1),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is pmipd running?"), "{e}");
}

proptest::proptest! {
    #[test]
    fn binding_json_round_trip(
        nai in "[a-z0-9@.]{1,40}", vlan: Option<u16>, home: Option<[u8; 4]>, att: u8,
        mac: [u8; 6], peer: [u8; 16], life: u32, left: u32, up: u32, down: u32, id: u32,
    ) {
        let b = BindingView {
            domain: None, nai, state: "ACTIVE".into(), interface: "eth0".into(), vlan,
            home_v4: home.map(Ipv4Addr::from), hnp: None, att,
            llid: crate::access::frame::mac_colon(&mac), peer_kind: "LMA".into(), peer_name: "p".into(),
            peer: IpAddr::from(peer), lifetime_s: life, lifetime_left_s: left, gre_key_up: up, gre_key_down: down, sub_id: id,
        };
        let r = Response::Bindings(vec![b]);
        let j = serde_json::to_string(&r).unwrap();
        proptest::prop_assert_eq!(serde_json::from_str::<Response>(&j).unwrap(), r.clone());
        let t = format_response(&r);
        let keys = format!("Upstream: {up}, Downstream: {down}");
        let llid = format!("llid: {}", crate::access::frame::mac_dotted(&mac));
        proptest::prop_assert!(t.contains(&keys));
        proptest::prop_assert!(t.contains(&llid));
    }
}

fn aaa_view() -> AaaView {
    let mut client = crate::aaa::AaaStats::default();
    client.servers.push(crate::aaa::ServerStats {
        address: Some("203.0.113.115".parse().unwrap()),
        auth_port: 1812,
        acct_port: 1813,
        requests: 3,
        accepts: 2,
        rejects: 1,
        ..Default::default()
    });
    AaaView {
        configured: true,
        role: "mag".into(),
        client: Some(client),
        dae: Some(crate::aaa::dae::DaeStats {
            disconnect_requests: 1,
            acks: 1,
            ..Default::default()
        }),
        gateway: BTreeMap::from([("accepted".to_string(), 2u64)]),
    }
}

#[test]
fn show_aaa_text_and_json() {
    let text = format_response(&Response::Aaa(Box::new(aaa_view())));
    for want in [
        "AAA (RADIUS), mag role",
        "[0] 203.0.113.115 auth-port 1812 acct-port 1813",
        "access: requests 3 accepts 2 rejects 1",
        "dynamic authorization: disconnect 1 coa 0 ack 1",
        "accepted",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let r = Response::Aaa(Box::new(aaa_view()));
    let j = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<Response>(&j).unwrap(), r);
    assert_eq!(
        serde_json::to_string(&Request::ShowAaa).unwrap(),
        r#"{"cmd":"show_aaa"}"#
    );
    let none = format_response(&Response::Aaa(Box::default()));
    assert!(none.contains("not configured"), "{none}");
}

/// `clear binding` on an access gateway says what it cleared: the binding,
/// the anchor's held refusal of the subscriber, both or nothing; and an
/// older daemon's answer without `refusal` still reads.
#[test]
fn cleared_says_what_went() {
    let c = |found, refusal| {
        format_response(&Response::Cleared {
            nai: "a@b".into(),
            found,
            refusal,
        })
    };
    assert_eq!(c(true, false), "binding a@b cleared\n");
    assert_eq!(c(false, true), "the anchor's refusal of a@b forgotten\n");
    assert!(c(true, true).contains("cleared") && c(true, true).contains("refusal"));
    assert_eq!(c(false, false), "no binding for a@b\n");
    let old: Response =
        serde_json::from_str(r#"{"kind":"cleared","data":{"nai":"a@b","found":true}}"#).unwrap();
    assert_eq!(
        old,
        Response::Cleared {
            nai: "a@b".into(),
            found: true,
            refusal: false
        }
    );
}
