//! The IPv6 access link (RA engine, DHCPv6 server, `nd_shell`) against the
//! real Linux kernel as the subscriber, in network namespaces: stock SLAAC
//! (`accept_ra=2`, `autoconf=1`) and ISC `dhclient -6`. The "registration"
//! is played by the test: it answers each attach request with the binding.
//!
//! Topology: gateways g1/g2 and the node on one bridge (namespace sw); a
//! handover moves the node's traffic from g1's port to g2's.
use std::net::Ipv6Addr;
use std::sync::{mpsc as stdmpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pmip_tests::netns::{is_root, veth, Netns};
use pmip_tests::TempDir;
use pmip_user::access::detach::DetachConfig;
use pmip_user::access::dhcp6::{self, Binding6, Dhcp6ServerConfig};
use pmip_user::access::frame::mac_colon;
use pmip_user::access::frame6::link_local_from_mac;
use pmip_user::access::nd_shell::{NdCmd, NdEvent, NdShell, NdShellStats};
use pmip_user::access::ra::{self, Advertisement, RaConfig};
use pmip_user::dataplane::Hnp;
use tokio::sync::{mpsc, oneshot};

const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const HNP: &str = "2001:db8:64:10::";

fn have(prog: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn hnp() -> Hnp {
    Hnp {
        prefix: HNP.parse().unwrap(),
        len: 64,
    }
}

fn advert(lifetime: u64) -> Advertisement {
    Advertisement {
        hnp: hnp(),
        lifetime: Duration::from_secs(lifetime),
        dns: vec!["2001:db8::53".parse().unwrap()],
        // 1500 minus GRE with key over IPv6 (40 + 8).
        mtu: Some(1452),
        managed: false,
        autonomous: true,
    }
}

/// What a gateway does with an attach request.
#[derive(Clone)]
enum Answer {
    /// Advertise at once (SLAAC).
    Ra(Advertisement),
    /// Hand the DHCPv6 server this binding.
    Dhcp6(Binding6),
    /// Nothing: the test sends commands itself.
    Nothing,
}

/// `NdShell` in a gateway namespace, the registration answering at once.
struct Mag {
    events: stdmpsc::Receiver<NdEvent>,
    cmds: mpsc::UnboundedSender<NdCmd>,
    stats: Arc<Mutex<NdShellStats>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Mag {
    fn start(ns: &Netns, ifname: &'static str, cfg: RaConfig, dhcp: bool, answer: Answer) -> Mag {
        let (ev_tx, ev_rx) = stdmpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (st_tx, st_rx) = stdmpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let bridge_cmds = cmd_tx.clone();
        let thread = ns
            .thread(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let d = dhcp.then(|| Dhcp6ServerConfig::new(0, 0, ROUTER_MAC));
                    let shell = NdShell::open(ifname, cfg, d)?;
                    st_tx.send(shell.stats()).ok();
                    let (e_tx, mut e_rx) = mpsc::unbounded_channel();
                    let bridge = async move {
                        while let Some(e) = e_rx.recv().await {
                            let c = match (&e, &answer) {
                                (
                                    NdEvent::Nd(ra::Event::AttachRequest { at, .. }),
                                    Answer::Ra(a),
                                ) => Some(NdCmd::Advertise {
                                    mac: at.mac,
                                    adv: a.clone(),
                                }),
                                (
                                    NdEvent::Dhcp6(dhcp6::Event::AttachRequest { at, .. }),
                                    Answer::Dhcp6(b),
                                ) => Some(NdCmd::Dhcp6BindingReady {
                                    mac: at.mac,
                                    binding: b.clone(),
                                }),
                                _ => None,
                            };
                            if let Some(c) = c {
                                bridge_cmds.send(c).ok();
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
            .expect("the shell did not start");
        Mag {
            events: ev_rx,
            cmds: cmd_tx,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn next_event(&self, within: Duration) -> Option<NdEvent> {
        self.events.recv_timeout(within).ok()
    }

    /// The next DHCPv6 event (the node's router solicitations are skipped).
    fn next_dhcp6(&self, within: Duration) -> Option<dhcp6::Event> {
        let end = Instant::now() + within;
        loop {
            match self.next_event(end.saturating_duration_since(Instant::now()))? {
                NdEvent::Dhcp6(e) => return Some(e),
                NdEvent::Nd(_) => {}
            }
        }
    }

    fn stats(&self) -> NdShellStats {
        *self.stats.lock().unwrap()
    }
}

impl Drop for Mag {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `f` every 50 ms until it gives `Some`, or fails naming `what`.
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `key=value` written under /proc/sys (no procps needed; keys hold no dots
/// but the separators).
fn sysctl(ns: &Netns, kv: &str) {
    let (k, v) = kv.split_once('=').unwrap();
    let path = format!("/proc/sys/{}", k.replace('.', "/"));
    ns.exec(&["sh", "-c", &format!("echo {v} > {path}")])
        .unwrap();
}

/// The node's global addresses on `ca` that finished DAD, with valid_lft.
fn global_addrs(node: &Netns) -> Vec<(String, u64)> {
    let out = node
        .exec(&[
            "ip", "-6", "-o", "addr", "show", "dev", "ca", "scope", "global",
        ])
        .unwrap();
    out.lines()
        .filter(|l| !l.contains("tentative"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let addr = w.get(w.iter().position(|x| *x == "inet6")? + 1)?;
            let lft = w.get(w.iter().position(|x| *x == "valid_lft")? + 1)?;
            Some((addr.to_string(), lft.trim_end_matches("sec").parse().ok()?))
        })
        .collect()
}

fn default_routes(node: &Netns) -> String {
    node.exec(&["ip", "-6", "route", "show", "default"])
        .unwrap()
}

fn router_neigh(node: &Netns, router: Ipv6Addr) -> String {
    node.exec(&[
        "ip",
        "-6",
        "neigh",
        "show",
        &router.to_string(),
        "dev",
        "ca",
    ])
    .unwrap()
    .trim()
    .to_string()
}

/// A node namespace with `ca` (down) whose peer `pc` is in `sw`, stock SLAAC on.
fn node_ns(tag: &str, sw: &Netns) -> Netns {
    let node = Netns::new(tag).unwrap();
    node.exec(&[
        "ip", "link", "add", "ca", "type", "veth", "peer", "name", "pc", "netns", &sw.name,
    ])
    .unwrap();
    sw.exec(&["ip", "link", "set", "pc", "up"]).unwrap();
    for kv in [
        "net.ipv6.conf.ca.accept_ra=2",
        "net.ipv6.conf.ca.autoconf=1",
        "net.ipv6.conf.ca.router_solicitation_interval=1",
        "net.ipv6.conf.ca.router_solicitations=10",
    ] {
        sysctl(&node, kv);
    }
    node
}

/// A gateway namespace on the bridge: `dev` carries the router MAC and no
/// kernel IPv6, so every ND answer on the link is the engine's.
fn gateway_ns(tag: &str, sw: &Netns, dev: &str, port: &str) -> Netns {
    let g = Netns::new(tag).unwrap();
    veth(&g, dev, sw, port).unwrap();
    sysctl(&g, &format!("net.ipv6.conf.{dev}.disable_ipv6=1"));
    g.exec(&["ip", "link", "set", dev, "address", &mac_colon(&ROUTER_MAC)])
        .unwrap();
    sw.exec(&["ip", "link", "set", port, "master", "br0"])
        .unwrap();
    g
}

fn switch_ns(tag: &str) -> Netns {
    let sw = Netns::new(tag).unwrap();
    // The switch is no IPv6 node: its bridge and ports would solicit too.
    sysctl(&sw, "net.ipv6.conf.all.disable_ipv6=1");
    sysctl(&sw, "net.ipv6.conf.default.disable_ipv6=1");
    sw.exec(&[
        "ip",
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])
    .unwrap();
    sw.exec(&["ip", "link", "set", "br0", "up"]).unwrap();
    sw
}

/// RAs every 1.3–4 s and prefix lifetimes of at most 10 s: a node ignores a
/// shorter valid lifetime once it has 2 hours or less (RFC 4862 §5.5.3 e),
/// so only short lifetimes make a withdrawn address go within the test.
fn domain_cfg() -> RaConfig {
    let mut c = RaConfig::new(0, 0, ROUTER_MAC).with_max_interval(Duration::from_secs(4));
    c.prefix_lifetime_cap = Some(Duration::from_secs(10));
    c
}

fn probing_cfg() -> RaConfig {
    let mut c = domain_cfg();
    c.probing = Some(DetachConfig {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        retries: 1,
    });
    c
}

/// Attach by RS, SLAAC from the HNP, the configured router as default router,
/// NS answered, DAD passes; handover to a second MAG with the same router MAC
/// and link-local (no change for the node, the old MAG's probing notices the
/// node left); withdraw removes the address.
#[test]
fn slaac_node_attaches_moves_and_loses_its_address() {
    if !is_root() || !have("ping") {
        eprintln!("skipped: needs root and ping");
        return;
    }
    let sw = switch_ns("v6s");
    let g1 = gateway_ns("v6s", &sw, "ga", "p1");
    let g2 = gateway_ns("v6s", &sw, "gb", "p2");
    let node = node_ns("v6s", &sw);
    sw.exec(&["ip", "link", "set", "pc", "master", "br0"])
        .unwrap();
    sw.exec(&["ip", "link", "set", "p2", "down"]).unwrap();
    let router = link_local_from_mac(ROUTER_MAC);

    let mag1 = Mag::start(&g1, "ga", probing_cfg(), false, Answer::Ra(advert(600)));
    let mag2 = Mag::start(&g2, "gb", domain_cfg(), false, Answer::Nothing);
    node.exec(&["ip", "link", "set", "ca", "up"]).unwrap();
    let node_mac = node.exec(&["cat", "/sys/class/net/ca/address"]).unwrap();

    // The node's RS asks for the attach.
    let Some(NdEvent::Nd(ra::Event::AttachRequest { at, link_local })) =
        mag1.next_event(Duration::from_secs(15))
    else {
        panic!("no attach request");
    };
    assert_eq!(mac_colon(&at.mac), node_mac.trim());
    assert!(
        link_local.is_some_and(|l| l.segments()[0] == 0xfe80),
        "{link_local:?}"
    );

    let (addr, routes) = check_attached(&node, &mag1, router);
    // Still on the link? (RFC 5846 §9.1) The node answers the check's NS.
    mag1.cmds.send(NdCmd::Check { mac: at.mac }).unwrap();
    match mag1.next_event(Duration::from_secs(2)) {
        Some(NdEvent::Nd(ra::Event::Presence { at: a, present })) => {
            assert!(present && a == at, "{a:?} {present}")
        }
        other => panic!("want a presence answer, got {other:?}"),
    }
    check_handover(&sw, &node, (&mag1, &mag2), at.mac, (&addr, &routes));
    check_withdraw(&node, &mag1, &mag2, at.mac);
}

/// SLAAC from the HNP with the lifetime bounded, the router as default router,
/// the MTU, NS answered, DAD and NUD probes. Returns the address and routes.
fn check_attached(node: &Netns, mag1: &Mag, router: Ipv6Addr) -> (String, String) {
    // SLAAC from the HNP, lifetime bounded by the binding.
    let addrs = wait_for(
        "a SLAAC address from the HNP",
        Duration::from_secs(15),
        || {
            let a = global_addrs(node);
            (!a.is_empty()).then_some(a)
        },
    );
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].0.starts_with("2001:db8:64:10:"), "{addrs:?}");
    assert!(addrs[0].0.ends_with("/64"), "{addrs:?}");
    assert!(addrs[0].1 <= 10 && addrs[0].1 > 5, "{addrs:?}");
    let routes = default_routes(node);
    assert!(
        routes.contains(&format!("via {router} dev ca proto ra")),
        "{routes}"
    );
    assert_eq!(routes.lines().count(), 1, "{routes}");
    let mtu = node
        .exec(&["cat", "/proc/sys/net/ipv6/conf/ca/mtu"])
        .unwrap();
    assert_eq!(mtu.trim(), "1452");
    let neigh = router_neigh(node, router);
    assert!(neigh.contains("lladdr 02:00:00:00:00:fe router"), "{neigh}");
    wait_for(
        "DAD of the SLAAC address passing",
        Duration::from_secs(5),
        || (mag1.stats().ra.dad_passed >= 1).then_some(()),
    );

    // Address resolution of the router is answered by the engine. An RA
    // that lands between the flush and the ping fills the entry from its
    // link-layer option, and then no NS is sent: try again.
    let na0 = mag1.stats().ra.na_sent;
    wait_for(
        "an NA for the router's address",
        Duration::from_secs(10),
        || {
            node.exec(&["ip", "-6", "neigh", "flush", "dev", "ca"])
                .unwrap();
            let _ =
                node.exec_status(&["ping", "-6", "-c", "1", "-W", "1", &format!("{router}%ca")]);
            let neigh = router_neigh(node, router);
            assert!(neigh.contains("lladdr 02:00:00:00:00:fe"), "{neigh}");
            assert!(
                !neigh.contains("FAILED") && !neigh.contains("INCOMPLETE"),
                "{neigh}"
            );
            (mag1.stats().ra.na_sent > na0).then_some(())
        },
    );

    // Probing while the node is there: answered, no detach.
    wait_for("two NUD probes", Duration::from_secs(5), || {
        (mag1.stats().ra.probes >= 2).then_some(())
    });
    assert!(
        mag1.events.try_recv().is_err(),
        "no detach while the node answers"
    );

    (addrs[0].0.clone(), routes)
}

/// Handover: the node's port now reaches g2, whose MAG advertises the same
/// prefix (the glue would after its PBA), here with another MTU to see that
/// the node takes g2's RAs as its router's.
fn check_handover(
    sw: &Netns,
    node: &Netns,
    mags: (&Mag, &Mag),
    mac: [u8; 6],
    before: (&str, &str),
) {
    let (mag1, mag2) = mags;
    let (addr, routes) = before;
    let router = link_local_from_mac(ROUTER_MAC);
    let neigh_before = router_neigh(node, router);
    sw.exec(&["ip", "link", "set", "p1", "down"]).unwrap();
    sw.exec(&["ip", "link", "set", "p2", "up"]).unwrap();
    mag2.cmds
        .send(NdCmd::Advertise {
            mac,
            adv: Advertisement {
                mtu: Some(1400),
                ..advert(900)
            },
        })
        .unwrap();
    wait_for("the MTU from g2's RA", Duration::from_secs(10), || {
        let m = node
            .exec(&["cat", "/proc/sys/net/ipv6/conf/ca/mtu"])
            .unwrap();
        (m.trim() == "1400").then_some(())
    });
    let addrs2 = global_addrs(node);
    assert_eq!(addrs2[0].0, addr, "same address");
    // Same router (the lifetime it offers is all that changed).
    let via = |r: &str| r.split(" proto").next().map(String::from);
    assert_eq!(
        via(&default_routes(node)),
        via(routes),
        "same default router"
    );
    assert_eq!(default_routes(node).lines().count(), 1);
    let neigh_after = router_neigh(node, router);
    let lladdr = |n: &str| {
        n.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(String::from)
    };
    assert_eq!(
        lladdr(&neigh_after),
        lladdr(&neigh_before),
        "{neigh_before} / {neigh_after}"
    );
    assert!(neigh_after.contains("router"), "{neigh_after}");
    // g1 no longer hears the node: its probing reports the node gone.
    match mag1.next_event(Duration::from_secs(10)) {
        Some(NdEvent::Nd(ra::Event::Detached { at: gone })) => assert_eq!(gone.mac, mac),
        other => panic!("g1: expected Detached, got {other:?}"),
    }
}

/// The binding ends: the final RA removes the default route and deprecates
/// the address at once; the address goes when its (capped) lifetime ends.
fn check_withdraw(node: &Netns, mag1: &Mag, mag2: &Mag, mac: [u8; 6]) {
    mag2.cmds.send(NdCmd::Withdraw { mac }).unwrap();
    let t_withdraw = Instant::now();
    wait_for("the default route to go", Duration::from_secs(5), || {
        default_routes(node).trim().is_empty().then_some(())
    });
    let a = node
        .exec(&[
            "ip", "-6", "-o", "addr", "show", "dev", "ca", "scope", "global",
        ])
        .unwrap();
    assert!(a.trim().is_empty() || a.contains("deprecated"), "{a}");
    wait_for("the address to go", Duration::from_secs(15), || {
        global_addrs(node).is_empty().then_some(())
    });
    assert!(t_withdraw.elapsed() <= Duration::from_secs(11));
    let s2 = mag2.stats().ra;
    assert_eq!((s2.ra_advertise, s2.ra_final), (1, 1), "{s2:?}");
    let s1 = mag1.stats().ra;
    assert_eq!((s1.malformed, s1.bad_checksum), (0, 0), "{s1:?}");
    // The socket filter kept the node's ping to the router and its MLD
    // reports in the kernel: nothing but ND reached the engine.
    assert_eq!(s1.unsupported, 0, "{s1:?}");
    assert_eq!(s2.malformed + s2.bad_checksum, 0, "{s2:?}");
}

/// A dhclient script that logs what each run of it was told.
fn dhclient_script(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.0.join("events.log");
    let script = dir.0.join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$reason ip={{$new_ip6_address}} prefix={{$new_ip6_prefix}} life={{$new_max_life}} pref={{$new_preferred_life}} dns={{$new_dhcp6_name_servers}}\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    (script, log)
}

/// ISC dhclient -6 gets its address (IA_NA) and prefix (IA_PD) from the
/// DHCPv6 server; its Release becomes a detach.
#[test]
fn dhclient6_gets_address_and_prefix_and_releases() {
    if !is_root() || !have("dhclient") {
        eprintln!("skipped: needs root and dhclient");
        return;
    }
    let sw = switch_ns("v6d");
    let g = gateway_ns("v6d", &sw, "ga", "p1");
    let node = node_ns("v6d", &sw);
    sw.exec(&["ip", "link", "set", "pc", "master", "br0"])
        .unwrap();
    let b = Binding6::new(
        hnp(),
        Duration::from_secs(600),
        vec!["2001:db8::53".parse().unwrap()],
    );
    let mag = Mag::start(
        &g,
        "ga",
        RaConfig::new(0, 0, ROUTER_MAC),
        true,
        Answer::Dhcp6(b),
    );
    node.exec(&["ip", "link", "set", "ca", "up"]).unwrap();
    // dhclient -6 needs a link-local address that passed DAD.
    wait_for(
        "the node's link-local address",
        Duration::from_secs(10),
        || {
            let o = node
                .exec(&[
                    "ip", "-6", "-o", "addr", "show", "dev", "ca", "scope", "link",
                ])
                .unwrap();
            (o.contains("fe80") && !o.contains("tentative")).then_some(())
        },
    );
    let dir = TempDir::new("dhclient6");
    let (script, log) = dhclient_script(&dir);
    let (lease, pidf) = (dir.0.join("leases"), dir.0.join("pid"));
    let common = |extra: &[&str]| {
        let mut a: Vec<String> = ["timeout", "30", "dhclient", "-6", "-v"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        for (f, p) in [("-sf", &script), ("-lf", &lease), ("-pf", &pidf)] {
            a.push(f.into());
            a.push(p.to_str().unwrap().into());
        }
        a.push("ca".into());
        a
    };
    let args = common(&["-1", "-N", "-P"]);
    let out = node
        .exec_status(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    node.kill_named("dhclient");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{:?}", mag.stats());
    let ev = std::fs::read_to_string(&log).unwrap_or_default();
    // dhclient may report the address and the prefix in one run of its
    // script or in two.
    let bound = |what: &str| {
        ev.lines()
            .find(|l| l.starts_with("BOUND6") && l.contains(what))
            .unwrap_or_else(|| panic!("no BOUND6 with {what} in {ev}\n{text}"))
            .to_string()
    };
    let na = bound("ip={2001:db8:64:10::1}");
    assert!(
        na.contains("life={600}") && na.contains("pref={600}"),
        "{na}"
    );
    assert!(na.contains("dns={2001:db8::53}"), "{na}");
    let pd = bound("prefix={2001:db8:64:10::/64}");
    assert!(pd.contains("life={600}"), "{pd}");
    let Some(dhcp6::Event::AttachRequest { at, .. }) = mag.next_dhcp6(Duration::from_secs(1))
    else {
        panic!("no DHCPv6 attach request");
    };

    // Release → Reply and a detach.
    let args = common(&["-r"]);
    let out = node
        .exec_status(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match mag.next_dhcp6(Duration::from_secs(10)) {
        Some(dhcp6::Event::Detach { at: a, reason }) => {
            assert_eq!(a.mac, at.mac);
            assert_eq!(reason, dhcp6::DetachReason::Release);
        }
        other => panic!("expected a DHCPv6 detach, got {other:?}"),
    }
    let s = mag.stats().dhcp6;
    assert_eq!(s.malformed, 0, "{s:?}");
    assert!(
        s.solicits >= 1 && s.requests >= 1 && s.releases == 1,
        "{s:?}"
    );
}

/// Bad input through the real socket: the filter lets it up, the engine and
/// the server count it and drop it, nobody is asked to attach.
#[test]
fn malformed_rs_ns_and_dhcpv6_are_counted_and_dropped() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use pmip_user::access::frame6::{self, Addrs, Upper};
    use pmip_user::access::nd::NdRepr;
    let sw = switch_ns("v6m");
    let g = gateway_ns("v6m", &sw, "ga", "p1");
    let node = node_ns("v6m", &sw);
    sysctl(&node, "net.ipv6.conf.ca.disable_ipv6=1"); // only our frames
    sw.exec(&["ip", "link", "set", "pc", "master", "br0"])
        .unwrap();
    node.exec(&["ip", "link", "set", "ca", "up"]).unwrap();
    let mag = Mag::start(&g, "ga", domain_cfg(), true, Answer::Nothing);
    let mac = [0x02, 0, 0, 0, 0, 0x33];
    let ll = link_local_from_mac(mac);
    let addrs = |dst: Ipv6Addr, hop: u8| Addrs {
        src_mac: mac,
        dst_mac: frame6::multicast_mac(dst),
        vlan: 0,
        src: ll,
        dst,
        hop_limit: hop,
    };
    let rs = NdRepr::RouterSolicit { slla: Some(mac) }.to_bytes(ll, frame6::ALL_ROUTERS);
    let ns = NdRepr::NeighborSolicit {
        target: "ff02::1".parse().unwrap(),
        slla: Some(mac),
    }
    .to_bytes(ll, frame6::solicited_node(link_local_from_mac(ROUTER_MAC)));
    let mut bad_sum = frame6::emit_frame(&addrs(frame6::ALL_ROUTERS, 255), Upper::Icmpv6(&rs));
    let n = bad_sum.len();
    bad_sum[n - 1] ^= 0x55;
    let frames = vec![
        // Forwarded from another link (hop limit 254).
        frame6::emit_frame(&addrs(frame6::ALL_ROUTERS, 254), Upper::Icmpv6(&rs)),
        bad_sum,
        // NS for a multicast target.
        frame6::emit_frame(
            &addrs(frame6::solicited_node(link_local_from_mac(ROUTER_MAC)), 255),
            Upper::Icmpv6(&ns),
        ),
        // A Solicit whose client identifier runs past the end.
        frame6::emit_frame(
            &addrs(frame6::ALL_DHCP_SERVERS, 1),
            Upper::Udp {
                src_port: 546,
                dst_port: 547,
                payload: &[1, 0, 0, 1, 0, 1, 0, 40, 0, 1],
            },
        ),
    ];
    node.run_in(move || {
        let (ifindex, _) = pmip_user::sys::interface_info("ca").unwrap();
        let raw = pmip_user::sys::socket::RawSender::open(ifindex).unwrap();
        for f in &frames {
            raw.send(f).unwrap();
        }
    })
    .unwrap();
    let s = wait_for("the four frames counted", Duration::from_secs(5), || {
        let s = mag.stats();
        (s.ra.rx >= 3 && s.dhcp6.rx >= 1).then_some(s)
    });
    assert_eq!((s.ra.malformed, s.ra.bad_checksum), (2, 1), "{s:?}");
    assert_eq!(s.dhcp6.malformed, 1, "{s:?}");
    assert_eq!((s.ra.rs, s.ra.ns, s.ra.na_sent), (0, 0, 0), "{s:?}");
    assert!(mag.next_event(Duration::from_millis(200)).is_none());
}
