//! ARP-polling detach detection on a real veth: a present subscriber answers
//! the probes and stays; once its link goes down it is detached after
//! interval + (retries + 1) * timeout. A presence check (RFC 5846 §9.1)
//! finds the present subscriber.
use std::net::Ipv4Addr;
use std::sync::mpsc as stdmpsc;
use std::time::{Duration, Instant};

use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::access::detach::{DetachConfig, Presence};
use pmip_user::access::shell::{ArpCmd, ArpEvent, ArpShell};
use tokio::sync::{mpsc, oneshot};

#[test]
fn arp_polling_detects_detach() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let gw = Netns::new("arp").unwrap();
    let cl = Netns::new("arp").unwrap();
    // `cl` must be kept alive; it is used below.
    veth(&gw, "ga", &cl, "ca").unwrap();
    gw.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", "ga"])
        .unwrap();
    cl.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "ca"])
        .unwrap();
    let mac_s = cl.exec(&["cat", "/sys/class/net/ca/address"]).unwrap();
    let mac = pmip_user::access::frame::parse_mac(mac_s.trim()).unwrap();
    let cfg = DetachConfig {
        interval: Duration::from_millis(300),
        timeout: Duration::from_millis(200),
        retries: 2,
    };

    let (ev_tx, ev_rx) = stdmpsc::channel::<ArpEvent>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let th = gw
        .thread(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut shell = ArpShell::open("ga", 0, cfg)?;
                shell.set_proxy_arp(Some(Ipv4Addr::new(192, 0, 2, 254)));
                let (e_tx, mut e_rx) = mpsc::unbounded_channel();
                let fwd = async move {
                    while let Some(e) = e_rx.recv().await {
                        ev_tx.send(e).ok();
                    }
                };
                tokio::select! {
                    r = shell.run(cmd_rx, e_tx) => r,
                    _ = fwd => Ok(()),
                    _ = stop_rx => Ok(()),
                }
            })
        })
        .unwrap();
    cmd_tx
        .send(ArpCmd::Watch {
            mac,
            home: Ipv4Addr::new(192, 0, 2, 1),
            gateway: Ipv4Addr::new(192, 0, 2, 254),
        })
        .unwrap();
    // Present: many intervals pass without a detach.
    assert!(
        ev_rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "detached while present"
    );
    // Proxy ARP (draft §6.1): another host of the home subnet resolves to the gateway.
    let gw_mac = gw.exec(&["cat", "/sys/class/net/ga/address"]).unwrap();
    let out = cl
        .exec_status(&[
            "busybox",
            "arping",
            "-c",
            "1",
            "-w",
            "2",
            "-I",
            "ca",
            "192.0.2.77",
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains(&format!("[{}]", gw_mac.trim())), "{text}");
    assert!(text.contains("received 1 response"), "{text}");
    // ... but an address probe (sender 0.0.0.0, as DHCP clients check a new
    // address, RFC 5227) gets no answer, or the client would DECLINE.
    let out = cl
        .exec_status(&[
            "busybox",
            "arping",
            "-D",
            "-c",
            "1",
            "-w",
            "1",
            "-I",
            "ca",
            "192.0.2.77",
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("received 0 response"), "{text}");
    assert!(
        ev_rx.recv_timeout(Duration::from_secs(1)).is_err(),
        "detached while present"
    );
    // Still attached? It answers the check's probe.
    let t0 = Instant::now();
    cmd_tx.send(ArpCmd::Check { mac }).unwrap();
    match ev_rx.recv_timeout(Duration::from_secs(2)) {
        Ok(ArpEvent::Presence(Presence { at, present })) => {
            assert!(present && at.mac == mac, "{at:?} {present}");
            assert!(
                t0.elapsed() < Duration::from_millis(500),
                "{:?}",
                t0.elapsed()
            );
        }
        e => panic!("want a presence answer, got {e:?}"),
    }
    // Gone: the link drops; the detach follows within the worst case (+ slack).
    // The link goes down somewhere inside the `ip` command: the lower bound
    // counts from before it, the upper bound from after it. A probe answered
    // up to a round trip before the link went down still counts as a sign of
    // life, hence the 5 ms.
    let before = Instant::now();
    cl.exec(&["ip", "link", "set", "ca", "down"]).unwrap();
    let after = Instant::now();
    let Ok(ArpEvent::Detached(d)) = ev_rx.recv_timeout(Duration::from_secs(5)) else {
        panic!("no detach");
    };
    let (longest, shortest) = (before.elapsed(), after.elapsed());
    assert_eq!(d.at.mac, mac);
    assert_eq!(d.home, Ipv4Addr::new(192, 0, 2, 1));
    assert!(
        longest + Duration::from_millis(5) >= cfg.timeout * (cfg.retries + 1),
        "too early: {longest:?} after the link went down"
    );
    assert!(
        shortest <= cfg.worst_case() + Duration::from_millis(500),
        "too late: {shortest:?}"
    );
    // No longer watched: absent at once.
    cmd_tx.send(ArpCmd::Check { mac }).unwrap();
    assert!(matches!(
        ev_rx.recv_timeout(Duration::from_secs(2)),
        Ok(ArpEvent::Presence(Presence { present: false, .. }))
    ));
    let _ = stop_tx.send(());
    th.join().unwrap().unwrap();
}
