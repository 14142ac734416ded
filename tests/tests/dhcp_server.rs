//! The access-side DHCP server against stock clients (busybox udhcpc, ISC
//! dhclient) across a veth pair: the client gets the home address, mask,
//! router, lease and MTU that the "registration" (played by the test) handed to
//! `binding_ready`, renews, and its release or lease end becomes a Detach.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc as stdmpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::access::dhcp::{BindingInfo, DetachReason, DhcpServerConfig, DhcpStats, Event};
use pmip_user::access::shell::{DhcpCmd, DhcpShell};
use tokio::sync::{mpsc, oneshot};

const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const HOME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn have(prog: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn binding(lease: u64) -> BindingInfo {
    BindingInfo {
        home: HOME,
        prefix_len: 24,
        router: GW,
        lifetime: Duration::from_secs(lease),
        dns: vec![Ipv4Addr::new(198, 51, 100, 250)],
        mtu: Some(1476),
    }
}

/// The server in the gateway namespace; the registration answers at once.
struct Gw {
    events: stdmpsc::Receiver<Event>,
    stats: Arc<Mutex<DhcpStats>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Gw {
    fn start(ns: &Netns, ifname: &'static str, b: BindingInfo) -> Gw {
        let (ev_tx, ev_rx) = stdmpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (st_tx, st_rx) = stdmpsc::channel();
        let thread = ns
            .thread(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let shell = DhcpShell::open(ifname, DhcpServerConfig::new(0, 0, GW))?;
                    st_tx.send(shell.stats()).ok();
                    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                    let (e_tx, mut e_rx) = mpsc::unbounded_channel();
                    let bridge = async move {
                        while let Some(e) = e_rx.recv().await {
                            if let Event::AttachRequest { at, .. } = &e {
                                cmd_tx
                                    .send(DhcpCmd::BindingReady {
                                        mac: at.mac,
                                        info: b.clone(),
                                    })
                                    .ok();
                            }
                            ev_tx.send(e).ok();
                        }
                    };
                    tokio::select! {
                        r = shell.run(cmd_rx, e_tx) => r,
                        _ = bridge => Ok(()),
                        _ = stop_rx => Ok(()),
                    }
                })
            })
            .unwrap();
        let stats = st_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server did not start");
        Gw {
            events: ev_rx,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn next_event(&self, within: Duration) -> Option<Event> {
        self.events.recv_timeout(within).ok()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

use pmip_tests::TempDir;

fn wait_for_line(log: &Path, prefix: &str, within: Duration) -> Option<String> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(s) = std::fs::read_to_string(log) {
            if let Some(l) = s.lines().rev().find(|l| l.starts_with(prefix)) {
                return Some(l.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// Namespaces `gw` and `cl` joined by a veth (`ga` — `ca`).
fn setup(tag: &str) -> (Netns, Netns) {
    let gw = Netns::new(tag).unwrap();
    let cl = Netns::new(tag).unwrap();
    veth(&gw, "ga", &cl, "ca").unwrap();
    gw.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", "ga"])
        .unwrap();
    (gw, cl)
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
echo "$1 ip=$ip subnet=$subnet mask=$mask router=$router lease=$lease mtu=$mtu dns=$dns serverid=$serverid" >> "$LOG"
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
"#;

fn udhcpc_script(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("events.log");
    let script = dir.join("script.sh");
    std::fs::write(
        &script,
        UDHCPC_SCRIPT.replace("\"$LOG\"", &format!("\"{}\"", log.display())),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    (script, log)
}

#[test]
fn udhcpc_gets_binding_renews_and_releases() {
    if !is_root() || !have("busybox") {
        eprintln!("skipped: needs root and busybox");
        return;
    }
    let (gw_ns, mut cl) = setup("dhs");
    let gw = Gw::start(&gw_ns, "ga", binding(3600));
    let dir = TempDir::new("udhcpc");
    let (script, log) = udhcpc_script(&dir.0);
    let child = cl
        .spawn(&[
            "busybox",
            "udhcpc",
            "-f",
            "-i",
            "ca",
            "-s",
            script.to_str().unwrap(),
            "-t",
            "5",
            "-T",
            "1",
            "-A",
            "1",
            "-O",
            "mtu",
        ])
        .unwrap();
    let pid = child.id().to_string();

    // Registration was asked for first, for the client's MAC.
    let Some(Event::AttachRequest { at, .. }) = gw.next_event(Duration::from_secs(10)) else {
        panic!("no AttachRequest");
    };
    let mac = cl.exec(&["cat", "/sys/class/net/ca/address"]).unwrap();
    assert_eq!(pmip_user::access::frame::mac_colon(&at.mac), mac.trim());

    let bound = wait_for_line(&log, "bound", Duration::from_secs(10)).expect("udhcpc did not bind");
    assert_eq!(field(&bound, "ip"), "192.0.2.1", "{bound}");
    assert_eq!(field(&bound, "subnet"), "255.255.255.0", "{bound}");
    assert_eq!(field(&bound, "mask"), "24", "{bound}");
    assert_eq!(field(&bound, "router"), "192.0.2.254", "{bound}");
    assert_eq!(field(&bound, "lease"), "3600", "{bound}");
    assert_eq!(field(&bound, "mtu"), "1476", "{bound}");
    assert_eq!(field(&bound, "dns"), "198.51.100.250", "{bound}");
    assert_eq!(field(&bound, "serverid"), "192.0.2.254", "{bound}");
    // The address works: the gateway answers a ping from it.
    assert!(
        cl.exec(&["ping", "-c", "1", "-W", "2", "192.0.2.254"])
            .is_ok()
            || !have("ping")
    );

    // RENEWING: a unicast REQUEST from 192.0.2.1 answered locally.
    let acks = gw.stats.lock().unwrap().acks;
    cl.exec(&["kill", "-USR1", &pid]).unwrap();
    let renew = wait_for_line(&log, "renew", Duration::from_secs(10)).expect("no renew");
    assert_eq!(field(&renew, "ip"), "192.0.2.1", "{renew}");
    assert_eq!(field(&renew, "lease"), "3600", "{renew}");
    // (A loaded machine may make udhcpc retransmit: at least one more ACK.)
    assert!(gw.stats.lock().unwrap().acks > acks);
    assert!(
        gw.events.try_recv().is_err(),
        "a renewal must not reach the registration side"
    );

    // RELEASE → Detach.
    cl.exec(&["kill", "-USR2", &pid]).unwrap();
    match gw.next_event(Duration::from_secs(10)) {
        Some(Event::Detach { at: a, reason }) => {
            assert_eq!(a.mac, at.mac);
            assert_eq!(reason, DetachReason::Release);
        }
        other => panic!("expected Detach, got {other:?}"),
    }
    let s = *gw.stats.lock().unwrap();
    assert_eq!(s.malformed, 0, "{s:?}");
    assert!(s.offers >= 1 && s.releases == 1, "{s:?}");
}

#[test]
fn lease_end_without_renewal_detaches() {
    if !is_root() || !have("busybox") {
        eprintln!("skipped: needs root and busybox");
        return;
    }
    let (gw_ns, mut cl) = setup("dhl");
    let gw = Gw::start(&gw_ns, "ga", binding(3));
    let dir = TempDir::new("udhcpl");
    let (script, log) = udhcpc_script(&dir.0);
    // -q: quit once bound, so nobody renews the 3 s lease.
    cl.spawn(&[
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-i",
        "ca",
        "-s",
        script.to_str().unwrap(),
        "-t",
        "5",
        "-T",
        "1",
        "-A",
        "1",
    ])
    .unwrap();
    assert!(matches!(
        gw.next_event(Duration::from_secs(10)),
        Some(Event::AttachRequest { .. })
    ));
    let bound = wait_for_line(&log, "bound", Duration::from_secs(10)).expect("udhcpc did not bind");
    assert_eq!(field(&bound, "lease"), "3");
    let t = Instant::now();
    match gw.next_event(Duration::from_secs(15)) {
        Some(Event::Detach { reason, .. }) => assert_eq!(reason, DetachReason::LeaseExpired),
        other => panic!("expected Detach, got {other:?}"),
    }
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "detached too early: {:?}",
        t.elapsed()
    );
}

#[test]
fn dhclient_gets_binding() {
    if !is_root() || !have("dhclient") {
        eprintln!("skipped: needs root and dhclient");
        return;
    }
    let (gw_ns, cl) = setup("dhc");
    let gw = Gw::start(&gw_ns, "ga", binding(600));
    let dir = TempDir::new("dhclient");
    let log = dir.0.join("events.log");
    let script = dir.0.join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$reason ip=$new_ip_address mask=$new_subnet_mask router=$new_routers lease=$new_dhcp_lease_time mtu=$new_interface_mtu dns=$new_domain_name_servers\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    let lease = dir.0.join("leases");
    let pidf = dir.0.join("pid");
    let out = cl
        .exec_status(&[
            "timeout",
            "30",
            "dhclient",
            "-1",
            "-v",
            "-sf",
            script.to_str().unwrap(),
            "-lf",
            lease.to_str().unwrap(),
            "-pf",
            pidf.to_str().unwrap(),
            "ca",
        ])
        .unwrap();
    // dhclient -1 daemonises once bound; stop it.
    cl.kill_named("dhclient");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("DHCPOFFER of 192.0.2.1 from 192.0.2.254"),
        "{text}"
    );
    assert!(
        text.contains("DHCPACK of 192.0.2.1 from 192.0.2.254"),
        "{text}"
    );
    let bound = wait_for_line(&log, "BOUND", Duration::from_secs(5)).expect("no BOUND");
    assert_eq!(field(&bound, "ip"), "192.0.2.1", "{bound}");
    assert_eq!(field(&bound, "mask"), "255.255.255.0", "{bound}");
    assert_eq!(field(&bound, "router"), "192.0.2.254", "{bound}");
    assert_eq!(field(&bound, "lease"), "600", "{bound}");
    assert_eq!(field(&bound, "mtu"), "1476", "{bound}");
    assert!(matches!(
        gw.next_event(Duration::from_secs(1)),
        Some(Event::AttachRequest { .. })
    ));
}

/// Handover: the subscriber's link moves from gateway 1 to gateway 2 (same
/// router address and MAC, as RFC 5213 §6.9.3 asks of MAGs in one domain).
/// Its next renewal reaches gateway 2, which has never seen it: the renewal
/// triggers a registration there and is ACKed with the same address.
#[test]
fn renewal_after_handover_is_answered_by_the_new_gateway() {
    if !is_root() || !have("busybox") {
        eprintln!("skipped: needs root and busybox");
        return;
    }
    let sw = Netns::new("dhh").unwrap();
    let g1 = Netns::new("dhh").unwrap();
    let g2 = Netns::new("dhh").unwrap();
    let mut cl = Netns::new("dhh").unwrap();
    veth(&g1, "ga", &sw, "p1").unwrap();
    veth(&g2, "gb", &sw, "p2").unwrap();
    veth(&cl, "ca", &sw, "pc").unwrap();
    sw.exec(&["ip", "link", "add", "br0", "type", "bridge"])
        .unwrap();
    for p in ["p1", "p2", "pc"] {
        sw.exec(&["ip", "link", "set", p, "master", "br0"]).unwrap();
    }
    sw.exec(&["ip", "link", "set", "br0", "up"]).unwrap();
    sw.exec(&["ip", "link", "set", "p2", "down"]).unwrap();
    for (ns, dev) in [(&g1, "ga"), (&g2, "gb")] {
        ns.exec(&["ip", "link", "set", dev, "address", "02:00:00:00:00:fe"])
            .unwrap();
        ns.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", dev])
            .unwrap();
    }
    let gw1 = Gw::start(&g1, "ga", binding(3600));
    let gw2 = Gw::start(&g2, "gb", binding(3600));
    let dir = TempDir::new("udhcph");
    let (script, log) = udhcpc_script(&dir.0);
    let pid = cl
        .spawn(&[
            "busybox",
            "udhcpc",
            "-f",
            "-i",
            "ca",
            "-s",
            script.to_str().unwrap(),
            "-t",
            "5",
            "-T",
            "1",
            "-A",
            "1",
        ])
        .unwrap()
        .id()
        .to_string();
    assert!(matches!(
        gw1.next_event(Duration::from_secs(10)),
        Some(Event::AttachRequest { .. })
    ));
    let bound = wait_for_line(&log, "bound", Duration::from_secs(10)).expect("udhcpc did not bind");
    assert_eq!(field(&bound, "ip"), "192.0.2.1");

    let gw1_acks = gw1.stats.lock().unwrap().acks;
    // Move the subscriber.
    sw.exec(&["ip", "link", "set", "p1", "down"]).unwrap();
    sw.exec(&["ip", "link", "set", "p2", "up"]).unwrap();
    cl.exec(&["kill", "-USR1", &pid]).unwrap();
    match gw2.next_event(Duration::from_secs(10)) {
        Some(Event::AttachRequest { requested, .. }) => assert_eq!(requested, Some(HOME)),
        other => panic!("gateway 2: expected AttachRequest, got {other:?}"),
    }
    let renew =
        wait_for_line(&log, "renew", Duration::from_secs(10)).expect("no renew after handover");
    assert_eq!(field(&renew, "ip"), "192.0.2.1", "{renew}");
    assert_eq!(field(&renew, "serverid"), "192.0.2.254", "{renew}");
    assert!(gw2.stats.lock().unwrap().acks >= 1);
    assert_eq!(
        gw1.stats.lock().unwrap().acks,
        gw1_acks,
        "gateway 1 is out of the path"
    );
    assert!(
        gw1.events.try_recv().is_err(),
        "gateway 1 saw nothing after the move"
    );
    drop(cl);
}

/// One server per access interface: both bind UDP 67 side by side (SO_BINDTODEVICE).
#[test]
fn servers_on_two_interfaces_coexist() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let gw = Netns::new("dh2").unwrap();
    let c1 = Netns::new("dh2").unwrap();
    let c2 = Netns::new("dh2").unwrap();
    veth(&gw, "ga", &c1, "ca").unwrap();
    veth(&gw, "gb", &c2, "cb").unwrap();
    gw.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", "ga"])
        .unwrap();
    gw.exec(&["ip", "addr", "add", "198.51.100.254/24", "dev", "gb"])
        .unwrap();
    let r = gw
        .run_in(|| -> anyhow::Result<(u32, u32)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let a = DhcpShell::open("ga", DhcpServerConfig::new(0, 0, GW))?;
                let b = DhcpShell::open(
                    "gb",
                    DhcpServerConfig::new(0, 0, Ipv4Addr::new(198, 51, 100, 254)),
                )?;
                // A missing interface is an error naming it.
                let e = DhcpShell::open("nope0", DhcpServerConfig::new(0, 0, GW))
                    .err()
                    .unwrap()
                    .to_string();
                assert!(e.contains("nope0"), "{e}");
                Ok((a.ifindex(), b.ifindex()))
            })
        })
        .unwrap()
        .unwrap();
    assert_ne!(r.0, r.1);
}
