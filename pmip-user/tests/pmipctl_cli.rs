//! The pmipctl binary against a control socket served by `ctl::serve`.
use std::process::Command;
use std::sync::Arc;

use pmip_user::ctl::{self, BindingView, Request, Response, StatsView};

fn binding() -> BindingView {
    BindingView {
        domain: None,
        nai: "mn0@example.com".into(),
        state: "ACTIVE".into(),
        interface: "eth0".into(),
        vlan: None,
        home_v4: Some("192.0.2.1".parse().unwrap()),
        hnp: None,
        att: 3,
        llid: "02:24:d7:8e:21:a4".into(),
        peer_kind: "HA".into(),
        peer_name: "ha1".into(),
        peer: "10.8.24.101".parse().unwrap(),
        lifetime_s: 900,
        lifetime_left_s: 850,
        gre_key_up: 11,
        gre_key_down: 22,
        sub_id: 1,
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one daemon stand-in, every command in turn
fn pmipctl_show_and_clear() {
    let dir = std::env::temp_dir().join(format!("pmipctl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(async { ctl::bind(&sock) }).unwrap();
    rt.spawn(ctl::serve(
        listener,
        Arc::new(|r| {
            let resp = match r {
                Request::ShowBindings(_) => Response::Bindings(vec![binding()]),
                Request::ShowTunnels => Response::Tunnels(vec![]),
                Request::ShowStats => Response::Stats(StatsView::default()),
                Request::ClearBinding { nai } => Response::Cleared {
                    found: nai == "mn0@example.com",
                    refusal: nai == "refused@example.com",
                    nai,
                },
                Request::ClearPeer { peer, realm } => Response::ClearedPeer {
                    bindings: usize::from(peer == "mag1") * 3,
                    peer,
                    realm,
                },
                Request::Shutdown { deregister } => Response::ShuttingDown {
                    deregister,
                    bindings: 2,
                },
                Request::ShowAaa => Response::Aaa(Box::default()),
                Request::ShowCluster => Response::Error {
                    message: "not a cluster".into(),
                },
                Request::ShowCounters | Request::Ping => Response::Pong,
                Request::Reload => Response::Error {
                    message: "reload of x refused: timers cannot change".into(),
                },
            };
            Box::pin(async move { resp })
        }),
    ));
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_pmipctl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, _) = run(&["show", "bindings"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("[Binding][MN]: Hoa: 192.0.2.1, att: 3, llid: 0224.d78e.21a4"),
        "{out}"
    );
    assert!(
        out.contains("[Binding][MN][HA]: lifetime: 900, remaining: 850"),
        "{out}"
    );
    assert!(
        out.contains("[Binding][MN][GREKEY]: Upstream: 11, Downstream: 22"),
        "{out}"
    );
    let (code, out, _) = run(&["show", "bindings", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"][0]["gre_key_down"], 22);
    let (_, out, _) = run(&["show", "tunnels"]);
    assert!(out.starts_with("Total number of tunnels: 0"), "{out}");
    let (code, out, _) = run(&["show", "aaa"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("AAA: not configured"), "{out}");
    let (_, out, _) = run(&["clear", "binding", "mn0@example.com"]);
    assert_eq!(out, "binding mn0@example.com cleared\n");
    let (_, out, _) = run(&["shutdown", "--deregister"]);
    assert_eq!(
        out,
        "pmipd: releasing 2 binding(s), then removing the fast path and its pins\n"
    );
    let (_, out, _) = run(&["shutdown"]);
    assert!(out.contains("bindings stay registered"), "{out}");
    let (_, out, _) = run(&["clear", "binding", "x@y"]);
    assert_eq!(out, "no binding for x@y\n");
    let (code, out, _) = run(&[
        "clear",
        "bindings",
        "--peer",
        "mag1",
        "--realm",
        "a.example",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "3 binding(s) of realm a.example through mag1 released\n"
        )
    );
    let (code, out, _) = run(&["clear", "bindings", "--peer", "mag2"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(4), "0 binding(s) through mag2 released\n")
    );
    let (code, _, err) = run(&["clear", "bindings"]);
    assert_eq!(code, Some(64), "--peer is required: {err}");
    // No daemon: a clear message and a non-zero exit.
    let o = Command::new(env!("CARGO_BIN_EXE_pmipctl"))
        .args(["--socket", "/nonexistent/pmipd.sock", "show", "stats"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is pmipd running?"));
    // Exit statuses scripts can use.
    let (code, _, _) = run(&["clear", "binding", "x@y"]);
    assert_eq!(code, Some(4));
    // A MAG that only forgot an LMA's refusal of the subscriber: done.
    let (code, out, _) = run(&["clear", "binding", "refused@example.com"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "the anchor's refusal of refused@example.com forgotten\n"
        )
    );
    let (code, out, _) = run(&["ping"]);
    assert_eq!((code, out.as_str()), (Some(0), "pong\n"));
    let (code, _, err) = run(&["reload"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("timers cannot change"), "{err}");
    let (code, _, err) = run(&["show", "nonsense"]);
    assert_eq!(code, Some(64), "{err}");
    // -s is the short form of --socket, after the subcommand too (global).
    let o = Command::new(env!("CARGO_BIN_EXE_pmipctl"))
        .args(["show", "tunnels", "-s"])
        .arg(&sock)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    // show stats --interval: N samples with rates from the second on.
    let (code, out, _) = run(&["show", "stats", "--interval", "1", "--count", "2"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.matches("pmipctl show stats --interval 1").count(),
        2,
        "{out}"
    );
    // --help documents each show command.
    let o = Command::new(env!("CARGO_BIN_EXE_pmipctl"))
        .args(["show", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for s in [
        "bindings",
        "tunnels",
        "stats",
        "counters",
        "GRE keys",
        "per-subscriber",
    ] {
        assert!(help.contains(s), "{s} missing from:\n{help}");
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
