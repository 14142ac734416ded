//! IPv6 and dual-stack subscribers end to end (issue 15): `pmipd run` as MAG
//! and LMA, and a subscriber with no software of ours — the Linux kernel's
//! own SLAAC (`accept_ra=2`, `autoconf=1`), busybox udhcpc, ISC
//! `dhclient -6` — in network namespaces (`pmip_tests::lab`, `lab6`).
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::gateway_cases::skip;
use pmip_tests::lab::{Lab, LabOpts, Proto, CN};
use pmip_tests::lab6::{self, lladdr, router_ll, CN6, DNS6, HNP_HEAD};
use pmip_user::config::Service;
use pmip_user::ctl::BindingView;

fn run(f: impl FnOnce() -> Result<()>) {
    if skip() {
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

fn opts(tag: &str, service: Service, gateways: usize) -> LabOpts {
    let mut o = LabOpts::new(Proto::Pmipv6, tag);
    o.service = service;
    o.gateways = gateways;
    o
}

/// The /64 of an address "2001:db8:64:3:...:.../64" → "2001:db8:64:3::/64".
fn prefix_of(addr: &str) -> String {
    let a: std::net::Ipv6Addr = addr
        .split('/')
        .next()
        .unwrap_or("")
        .parse()
        .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
    let s = a.segments();
    format!(
        "{}/64",
        std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
    )
}

/// Both boxes' bindings carry the prefix the subscriber configured from.
fn check_bindings(m: &BindingView, a: &BindingView, addr: &str, v4: bool) -> Result<()> {
    let want = prefix_of(addr);
    ensure!(
        m.hnp.as_deref() == Some(want.as_str()),
        "MAG binding {m:?}, address {addr}"
    );
    ensure!(a.hnp == m.hnp, "LMA {a:?} vs MAG {m:?}");
    ensure!(
        m.home_v4.is_some() == v4 && a.home_v4 == m.home_v4,
        "IPv4 home: MAG {m:?}, LMA {a:?}"
    );
    Ok(())
}

/// Kernel SLAAC from the HNP, the shared link-local as default router, the
/// tunnel MTU; ping6 both ways and an iperf3 TCP stream over IPv6 through
/// the tunnel; `show bindings` on both boxes names the prefix.
fn slaac_end_to_end(o: LabOpts) -> Result<()> {
    let v6t = o.ipv6_transport;
    let mut l = Lab::up(o)?;
    let s = l.attach6()?;
    ensure!(
        s.addr.starts_with(HNP_HEAD) && s.addr.ends_with("/64"),
        "{s:?}"
    );
    ensure!(s.router == router_ll().to_string(), "default router {s:?}");
    ensure!(
        s.mtu == l.opts.subscriber_mtu().to_string(),
        "MTU minus the tunnel: {s:?}"
    );
    // Valid lifetime capped at 3 × MaxRtrAdvInterval (10 s in the lab).
    ensure!(
        s.valid_lft <= 30 && s.valid_lft > 20,
        "valid lifetime {s:?}"
    );
    eprintln!(
        "attach: RS → RA {:?} ms, → address configured {:?} ms",
        s.rs_to_ra_ms, s.rs_to_configured_ms
    );
    ensure!(
        s.rs_to_ra_ms.is_some() && s.rs_to_configured_ms.is_some(),
        "attach not timed: {s:?}"
    );
    let (m, a) = l.wait_registered(0)?;
    check_bindings(&m, &a, &s.addr, false)?;
    let text = l.mag(0).ctl(&["show", "bindings"])?;
    ensure!(
        text.contains(&format!("HNP: {}", prefix_of(&s.addr))) && text.contains("Hoa: -"),
        "{text}"
    );
    let text = l.lma().ctl(&["show", "bindings"])?;
    ensure!(
        text.contains(&format!("HNP: {}", prefix_of(&s.addr))),
        "{text}"
    );
    let (sent, recv, out) = Lab::ping(&l.sub, &CN6.to_string(), 5)?;
    ensure!(
        sent == recv,
        "ping6 subscriber → correspondent: {out}\nMAG:\n{}\nLMA:\n{}",
        l.stats_text(l.mag(0)),
        l.stats_text(l.lma())
    );
    let me = s.addr.split('/').next().unwrap_or("").to_string();
    let (sent, recv, out) = Lab::ping(&l.cn, &me, 5)?;
    ensure!(sent == recv, "ping6 correspondent → subscriber: {out}");
    let ip = l.iperf6(2)?;
    ensure!(
        ip.ok && ip.bytes_received > 1_000_000,
        "iperf3 over IPv6: {ip:?}"
    );
    eprintln!(
        "IPv6 inner over IPv{} outer: iperf3 {:.2} Gbit/s",
        if v6t { 6 } else { 4 },
        ip.gbps
    );
    // The traffic went through the tunnel's fast path, both ways.
    let st = l.mag(0).stats()?;
    let fp = &st.groups["fastpath"];
    ensure!(
        fp["tx_encap_uplink"] > 1000 && fp["tx_decap_downlink"] > 1000,
        "{fp:?}"
    );
    // The RDNSS and the RA flags reached the node: not checkable without a
    // resolver of ours; the MAG's counters say what it sent.
    let nd = &st.groups["nd acc0"];
    ensure!(
        nd["ra_advertise"] >= 1 && nd["attach_requests"] >= 1,
        "{nd:?}"
    );
    ensure!(nd["malformed"] == 0 && nd["bad_checksum"] == 0, "{nd:?}");
    Ok(())
}

#[test]
fn slaac_subscriber_over_ipv4_transport() {
    run(|| slaac_end_to_end(opts("6s4", Service::Ipv6, 1)));
}

/// An 802.1Q access link (the gateway's access interface the VLAN
/// sub-interface acc0.100, the subscriber tagging on s0.100): the RA
/// engine sees the sub-interface's untagged frames and answers untagged
/// — before, it took `vlan = 100` as the frames' tag, dropped every RS as
/// another link's and tagged its RAs twice, so no host got an address.
#[test]
fn slaac_subscriber_on_a_vlan_sub_interface() {
    run(|| {
        if !pmip_tests::gateway_cases::vlan_devices(Proto::Pmipv6)? {
            eprintln!("skipped: this kernel has no 802.1Q VLAN devices");
            return Ok(());
        }
        let mut o = opts("6sv", Service::Ipv6, 1);
        o.vlan = Some(100);
        // No native XDP on a VLAN device.
        o.attach_mode = "generic".into();
        slaac_end_to_end(o)
    });
}

#[test]
fn slaac_subscriber_over_ipv6_transport() {
    run(|| {
        let mut o = opts("6s6", Service::Ipv6, 1);
        o.ipv6_transport = true;
        slaac_end_to_end(o)
    });
}

/// busybox udhcpc for IPv4 and the kernel's SLAAC for IPv6 on one
/// subscriber: one binding with both, both used through the tunnel.
#[test]
fn dual_stack_subscriber_uses_both() {
    run(|| {
        let mut l = Lab::up(opts("6ds", Service::Dual, 1))?;
        let lease = l.attach(false)?;
        let s = l.attach6()?;
        ensure!(lease.ip.starts_with("10.64.0."), "{lease:?}");
        ensure!(s.addr.starts_with(HNP_HEAD), "{s:?}");
        let (m, a) = l.wait_registered(0)?;
        check_bindings(&m, &a, &s.addr, true)?;
        ensure!(
            m.home_v4.map(|h| h.to_string()) == Some(lease.ip.clone()),
            "{m:?} {lease:?}"
        );
        let text = l.mag(0).ctl(&["show", "bindings"])?;
        ensure!(
            text.contains(&format!("Hoa: {}", lease.ip))
                && text.contains(&format!("HNP: {}", prefix_of(&s.addr))),
            "{text}"
        );
        for dst in [CN.to_string(), CN6.to_string()] {
            let (sent, recv, out) = Lab::ping(&l.sub, &dst, 3)?;
            ensure!(sent == recv, "ping {dst}: {out}");
        }
        let ip = l.iperf6(1)?;
        ensure!(ip.ok && ip.bytes_received > 0, "iperf3 over IPv6: {ip:?}");
        let ip = l.iperf(1)?;
        ensure!(ip.ok && ip.bytes_received > 0, "iperf3 over IPv4: {ip:?}");
        // RFC 5844 §3.4.3: a DHCPRELEASE "MUST NOT release any IPv6 home
        // network prefix(es)" — the binding stays (before, the release
        // ended it and a final RA took the IPv6 default route away).
        l.client().release()?;
        l.mag(0)
            .wait_counter("releases", 1, Duration::from_secs(5))?;
        let (m2, _) = l.wait_registered(0)?;
        ensure!(m2.hnp == m.hnp, "the prefix changed: {m2:?}");
        let route = l.sub.exec(&["ip", "-6", "route", "show", "default"])?;
        ensure!(
            !route.trim().is_empty(),
            "no IPv6 default route after the release"
        );
        let (sent, recv, out) = Lab::ping(&l.sub, &CN6.to_string(), 3)?;
        ensure!(sent == recv, "ping {CN6} after the DHCPRELEASE: {out}");
        // The ping took ~0.5 s: a de-registration would have been done.
        let (mb, ab) = (l.mag(0).bindings()?, l.lma().bindings()?);
        ensure!(
            mb.len() == 1 && ab.len() == 1,
            "bindings after the release: {mb:?} {ab:?}"
        );
        Ok(())
    });
}

/// ISC dhclient -6 (IA_NA): the address HNP::1 from the MAG's DHCPv6
/// server, lease = binding lifetime, the DNS server; its Release ends the
/// binding.
#[test]
fn dhcpv6_client_gets_its_address() {
    run(|| {
        if !pmip_tests::lab::have("dhclient") {
            eprintln!("skipped: needs dhclient");
            return Ok(());
        }
        let l = Lab::up(opts("6dh", Service::Ipv6, 1))?;
        // Without autoconf the kernel takes the router, the lease the address.
        l.sub
            .exec(&["sysctl", "-qw", "net.ipv6.conf.s0.autoconf=0"])?;
        l.sub
            .exec(&["sysctl", "-qw", "net.ipv6.conf.s0.disable_ipv6=0"])?;
        let dir = &l.dir.0;
        let (lease_f, pid_f, log) = (
            dir.join("dh6.leases"),
            dir.join("dh6.pid"),
            dir.join("dh6.log"),
        );
        let script = dir.join("dh6.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$reason ip={{$new_ip6_address}} life={{$new_max_life}} dns={{$new_dhcp6_name_servers}}\" >> {}\n\
                 case \"$reason\" in BOUND6|RENEW6|REBIND6) ip -6 addr replace \"$new_ip6_address/64\" dev s0 valid_lft \"$new_max_life\" preferred_lft \"$new_preferred_life\" ;; esac\n",
                log.display()
            ),
        )?;
        l.sub
            .exec(&["chmod", "+x", script.to_str().unwrap_or_default()])?;
        // dhclient -6 wants a link-local address that passed DAD.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = l.sub.exec(&[
                "ip", "-6", "-o", "addr", "show", "dev", "s0", "scope", "link",
            ])?;
            if o.contains("fe80") && !o.contains("tentative") {
                break;
            }
            ensure!(
                std::time::Instant::now() < end,
                "no link-local address: {o}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let files = |extra: &[&str]| -> Vec<String> {
            let mut a: Vec<String> = ["timeout", "30", "dhclient", "-6", "-v"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend(extra.iter().map(|s| s.to_string()));
            for (f, p) in [("-sf", &script), ("-lf", &lease_f), ("-pf", &pid_f)] {
                a.push(f.into());
                a.push(p.to_str().unwrap_or_default().into());
            }
            a.push("s0".into());
            a
        };
        let args = files(&["-1", "-N"]);
        let out = l
            .sub
            .exec_status(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        l.sub.kill_named("dhclient");
        let ev = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(
            out.status.success(),
            "dhclient -6: {}\n{ev}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (m, a) = l.wait_registered(0)?;
        let hnp = m.hnp.clone().context("no HNP at the MAG")?;
        ensure!(a.hnp.as_deref() == Some(hnp.as_str()), "{m:?} {a:?}");
        let want = format!("{}1", hnp.trim_end_matches("/64"));
        let bound = ev
            .lines()
            .find(|l| l.starts_with("BOUND6"))
            .unwrap_or_default();
        ensure!(
            bound.contains(&format!("ip={{{want}}}")),
            "want {want}: {ev}"
        );
        // The lease is what is left of the binding (a second or two went by).
        let life: u32 = bound
            .split("life={")
            .nth(1)
            .and_then(|x| x.split('}').next()?.parse().ok())
            .unwrap_or(0);
        ensure!(
            life <= l.opts.lifetime_s && life + 5 >= l.opts.lifetime_s,
            "lease = binding lifetime {}: {ev}",
            l.opts.lifetime_s
        );
        ensure!(bound.contains(&format!("dns={{{DNS6}}}")), "{ev}");
        // The leased address carries traffic through the tunnel, once the
        // node's DAD let it go.
        let end = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let o = l
                .sub
                .exec(&["ip", "-6", "-o", "addr", "show", "dev", "s0"])?;
            if o.contains(&format!("{want}/")) && !o.contains("tentative") {
                break;
            }
            ensure!(
                std::time::Instant::now() < end,
                "leased address not usable: {o}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (sent, recv, text) = Lab::ping(&l.cn, &want, 3)?;
        ensure!(sent == recv, "ping6 to the leased address: {text}");
        // Release → deregistration at both ends.
        let args = files(&["-r"]);
        let out = l
            .sub
            .exec_status(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        ensure!(
            out.status.success(),
            "dhclient -6 -r: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        l.mag(0)
            .wait_bindings(Duration::from_secs(5), "released", |b| b.is_empty())?;
        let st = l.mag(0).stats()?;
        let d = &st.groups["dhcpv6 acc0"];
        ensure!(d["releases"] == 1 && d["malformed"] == 0, "{d:?}");
        Ok(())
    });
}

/// Handover MAG1 → MAG2 under an IPv6 TCP stream: MAG2 registers the node
/// from its data, the node keeps its address and its default router (same
/// link-local, same MAC in its neighbour cache), the stream survives, and
/// the gap is measured.
fn handover(service: Service, tag: &str) -> Result<()> {
    let mut l = Lab::up(opts(tag, service, 2))?;
    // SLAAC first, then DHCP answered from the same binding (the other
    // order is dual_stack_subscriber_uses_both's).
    let s = l.attach6()?;
    if service.ipv4() {
        l.attach(false)?;
    }
    l.wait_registered(0)?;
    let h = l.handover6_under_load(1, 5, Duration::from_secs(2))?;
    eprintln!(
        "{service:?} handover: gap {:.1} ms (noise {:.1} ms), {}/{} pings, iperf3 {:.2} Gbit/s, {} retransmits",
        h.gap_ms, h.noise_gap_ms, h.ping_received, h.ping_sent, h.iperf.gbps, h.iperf.retransmits
    );
    ensure!(
        h.after.addr == s.addr && h.before.addr == s.addr,
        "address changed: {s:?} → {:?}",
        h.after
    );
    ensure!(
        h.after.router == h.before.router,
        "default router changed: {h:?}"
    );
    ensure!(
        lladdr(&h.neigh_after).is_some() && lladdr(&h.neigh_after) == lladdr(&h.neigh_before),
        "router neighbour entry: {} → {}",
        h.neigh_before,
        h.neigh_after
    );
    ensure!(h.neigh_after.contains("router"), "{}", h.neigh_after);
    ensure!(
        h.iperf.ok && h.iperf.bytes_received > 0,
        "TCP stream broke: {:?}",
        h.iperf
    );
    ensure!(
        h.gap_ms.is_finite() && h.ping_received > 0,
        "no ping across the move: {h:?}"
    );
    let m2 = l.opts.mag_core(1);
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding via mag2", |b| {
            b.len() == 1 && b[0].peer.to_string() == m2
        })?;
    let b = l
        .mag(1)
        .wait_bindings(Duration::from_secs(5), "binding at mag2", |b| b.len() == 1)?;
    ensure!(
        b[0].hnp.as_deref() == Some(prefix_of(&s.addr).as_str()),
        "{b:?}"
    );
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "mag1 released", |b| b.is_empty())?;
    // MAG2 advertises the prefix now: the node keeps it past its lifetime.
    std::thread::sleep(Duration::from_secs(2));
    ensure!(l.slaac()?.addr == s.addr, "address lost after the move");
    let nd1 = &l.mag(0).stats()?.groups["nd acc0"];
    ensure!(
        nd1["ra_final"] == 0,
        "MAG1 sent a final RA on the handover: {nd1:?}"
    );
    let (sent, recv, out) = Lab::ping(&l.cn, s.addr.split('/').next().unwrap_or(""), 3)?;
    ensure!(sent == recv, "ping6 to the subscriber via mag2: {out}");
    Ok(())
}

#[test]
fn ipv6_handover_keeps_address_router_and_stream() {
    run(|| handover(Service::Ipv6, "6ho"));
}

#[test]
fn dual_stack_handover_keeps_both() {
    run(|| handover(Service::Dual, "6hd"));
}

/// The operator ends the binding at the anchor: the MAG sends the final RA
/// (router lifetime 0, prefix lifetimes 0) and the node loses its default
/// route at once and its address within the capped lifetime.
#[test]
fn subscriber_whose_binding_ends_loses_its_address() {
    run(|| {
        let mut o = opts("6be", Service::Ipv6, 1);
        o.ra_interval_s = 4;
        let mut l = Lab::up(o)?;
        let s = l.attach6()?;
        let (m, _) = l.wait_registered(0)?;
        ensure!(s.valid_lft <= 12, "{s:?}");
        l.lma().ctl(&["clear", "binding", &m.nai])?;
        l.mag(0)
            .wait_bindings(Duration::from_secs(5), "binding gone", |b| b.is_empty())?;
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !l
            .sub
            .exec(&["ip", "-6", "route", "show", "default"])?
            .trim()
            .is_empty()
        {
            ensure!(std::time::Instant::now() < end, "default route still there");
            std::thread::sleep(Duration::from_millis(50));
        }
        let end = std::time::Instant::now() + Duration::from_secs(15);
        while !l.sub_addrs6()?.is_empty() {
            ensure!(
                std::time::Instant::now() < end,
                "address still there: {:?}",
                l.sub_addrs6()?
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let nd = &l.mag(0).stats()?.groups["nd acc0"];
        ensure!(nd["ra_final"] == 1, "{nd:?}");
        Ok(())
    });
}

/// Malformed RS, NS and DHCPv6 from the subscriber's port reach pmipd's ND
/// shell, are counted and dropped; nobody is registered.
#[test]
fn malformed_rs_ns_dhcpv6_dropped_and_counted() {
    run(|| {
        use pmip_user::access::frame6::{self, Addrs, Upper};
        use pmip_user::access::nd::NdRepr;
        let mut o = opts("6mf", Service::Ipv6, 1);
        o.metrics = true;
        let l = Lab::up(o)?;
        let mac = [0x02, 0, 0, 0, 0xbb, 0x01];
        let ll = frame6::link_local_from_mac(mac);
        let addrs = |dst, hop| Addrs {
            src_mac: mac,
            dst_mac: frame6::multicast_mac(dst),
            vlan: 0,
            src: ll,
            dst,
            hop_limit: hop,
        };
        let rs = NdRepr::RouterSolicit { slla: Some(mac) }.to_bytes(ll, frame6::ALL_ROUTERS);
        let ns = NdRepr::NeighborSolicit {
            target: "ff02::1".parse()?,
            slla: Some(mac),
        }
        .to_bytes(ll, frame6::solicited_node(router_ll()));
        let mut bad_sum = frame6::emit_frame(&addrs(frame6::ALL_ROUTERS, 255), Upper::Icmpv6(&rs));
        let n = bad_sum.len();
        bad_sum[n - 1] ^= 0x55;
        let frames = vec![
            // An RS forwarded from another link (hop limit 254).
            frame6::emit_frame(&addrs(frame6::ALL_ROUTERS, 254), Upper::Icmpv6(&rs)),
            bad_sum,
            // An NS for a multicast target.
            frame6::emit_frame(
                &addrs(frame6::solicited_node(router_ll()), 255),
                Upper::Icmpv6(&ns),
            ),
            // A Solicit whose client identifier runs past its end.
            frame6::emit_frame(
                &addrs(frame6::ALL_DHCP_SERVERS, 1),
                Upper::Udp {
                    src_port: 546,
                    dst_port: 547,
                    payload: &[1, 0, 0, 1, 0, 1, 0, 40, 0, 1],
                },
            ),
        ];
        l.sub.run_in(move || -> Result<()> {
            let (ifindex, _) = pmip_user::sys::interface_info("s0")?;
            let raw = pmip_user::sys::socket::RawSender::open(ifindex)?;
            for f in &frames {
                raw.send(f)?;
            }
            Ok(())
        })??;
        let end = std::time::Instant::now() + Duration::from_secs(5);
        let (nd, d) = loop {
            let st = l.mag(0).stats()?;
            let (nd, d) = (
                st.groups["nd acc0"].clone(),
                st.groups["dhcpv6 acc0"].clone(),
            );
            if nd["malformed"] + nd["bad_checksum"] >= 3 && d["malformed"] >= 1 {
                break (nd, d);
            }
            ensure!(std::time::Instant::now() < end, "not counted: {nd:?} {d:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        ensure!((nd["malformed"], nd["bad_checksum"]) == (2, 1), "{nd:?}");
        ensure!(d["malformed"] == 1, "{d:?}");
        ensure!(nd["attach_requests"] == 0 && nd["rs"] == 0, "{nd:?}");
        ensure!(l.mag(0).bindings()?.is_empty(), "someone was registered");
        // The same counters on the metrics endpoint.
        let text = pmip_tests::lab::scrape_metrics(&l.mags[0], None)?;
        for (component, event, want) in [
            ("nd acc0", "malformed", 2),
            ("nd acc0", "bad_checksum", 1),
            ("dhcpv6 acc0", "malformed", 1),
        ] {
            let series = format!(
                "pmip_component_events_total{{component=\"{component}\",event=\"{event}\"}} {want}"
            );
            ensure!(text.lines().any(|l| l == series), "no {series}:\n{text}");
        }
        Ok(())
    });
}

/// The lab's generated configurations for IPv6 and dual-stack subscribers
/// are valid (no root needed).
#[test]
fn ipv6_lab_configs_are_valid() {
    let dir = std::path::Path::new("/tmp/pmip-lab6-cfg");
    for service in [Service::Ipv6, Service::Dual] {
        for v6t in [false, true] {
            let mut o = LabOpts::new(Proto::Pmipv6, "cfg6");
            o.service = service;
            o.ipv6_transport = v6t;
            let a = pmip_user::config::Config::from_toml_str(&pmip_tests::lab::anchor_config(
                &o, dir, 2,
            ))
            .unwrap_or_else(|e| panic!("anchor: {e}"));
            assert_eq!(a.ipv6_pools().count(), 1);
            let m = pmip_user::config::Config::from_toml_str(&pmip_tests::lab::access_config(
                &o, dir, 0,
            ))
            .unwrap_or_else(|e| panic!("access: {e}"));
            assert_eq!(m.profiles[0].access_service(), service);
            assert!(m.ipv6_access());
        }
    }
    let _ = lab6::HNP_POOL;
}
