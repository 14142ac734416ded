//! The lab with an IPv6 (`--ipv6`) or dual-stack (`--dual-stack`)
//! subscriber: the kernel's own SLAAC from the router advertisements the
//! MAG sends for the home network prefix the LMA assigned (plus busybox
//! udhcpc for IPv4 when dual), ping6 and iperf3 over IPv6 through the
//! tunnel, `pmipctl show bindings` with the prefix (and IPv4 home address)
//! on each box, a handover under an IPv6 TCP stream, and the same summary.
use std::time::Duration;

use anyhow::{ensure, Result};
use pmip_tests::lab::{Lab, Proto, CN};
use pmip_tests::lab6::{lladdr, Slaac, CN6};
use pmip_user::config::Service;

use super::{
    core_capture, indent, print_capture, print_subscriber_traffic, signaling_ladder, start_lab,
    Summary,
};

/// Steps 2–7 for an IPv6 or dual-stack subscriber (PMIPv6).
pub(super) fn steps6(l: &mut Lab, service: Service, sum: &mut Summary, n: u32) -> Result<()> {
    let (pcap, sigcap) = start_lab(l, Proto::Pmipv6, sum, n)?;
    let (s, lease_ip) = attach(l, service, sum, n)?;
    traffic(l, service, &s, lease_ip.as_deref(), sum, n)?;
    let nai = (l.mag(0).bindings()?.first()).map_or_else(String::new, |b| b.nai.clone());
    print_subscriber_traffic(l, &nai)?;
    show_bindings(l, &s, lease_ip.is_some(), sum, n)?;
    handover(l, &s, sum, n)?;
    super::after_handover(l, host(&s.addr), sum, n)?;
    if let Some(i) = sigcap {
        signaling_ladder(l, i, &pcap, sum)?;
    }
    Ok(())
}

/// Step 3: IPv6 on in the subscriber: its RS starts the registration, its
/// kernel configures an address from the RA's prefix; then (dual stack)
/// udhcpc, answered from the same binding.
fn attach(
    l: &mut Lab,
    service: Service,
    sum: &mut Summary,
    n: u32,
) -> Result<(Slaac, Option<String>)> {
    let s = l.attach6()?;
    let ms = |x: Option<f64>| {
        x.map(|x| format!("{x:.1} ms"))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "[3/{n}] IPv6: the subscriber's kernel configured {} (valid {} s), default router {}, MTU {}; RS → RA {}, RS → address usable {} (the node's DAD included)",
        s.addr,
        s.valid_lft,
        s.router,
        s.mtu,
        ms(s.rs_to_ra_ms),
        ms(s.rs_to_configured_ms)
    );
    sum.add(
        "attach (RS + registration)",
        format!(
            "{} router {} MTU {} (RS→RA {})",
            s.addr,
            s.router,
            s.mtu,
            ms(s.rs_to_ra_ms)
        ),
        true,
    );
    let mut lease_ip = None;
    if service.ipv4() {
        let t = std::time::Instant::now();
        let lease = l.attach(false)?;
        let ms = t.elapsed().as_millis();
        println!(
            "[3/{n}] IPv4: udhcpc got {}/{} router {} lease {} s MTU {} from the same binding in {ms} ms",
            lease.ip, lease.mask, lease.router, lease.lease, lease.mtu
        );
        sum.add(
            "attach (DHCP, same binding)",
            format!(
                "{}/{} router {} ({ms} ms)",
                lease.ip, lease.mask, lease.router
            ),
            true,
        );
        lease_ip = Some(lease.ip);
    }
    let (mb, ab) = l.wait_registered(0)?;
    println!(
        "      MAG1 registered NAI {} with the LMA: prefix {}{}, GRE keys up {} / down {}",
        mb.nai,
        ab.hnp.as_deref().unwrap_or("-"),
        ab.home_v4
            .map(|h| format!(", IPv4 home {h}"))
            .unwrap_or_default(),
        ab.gre_key_up,
        ab.gre_key_down
    );
    Ok((s, lease_ip))
}

fn host(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

/// Step 4: Pings both ways and a TCP stream over IPv6 (and IPv4 when dual).
fn traffic(
    l: &mut Lab,
    service: Service,
    s: &Slaac,
    lease_ip: Option<&str>,
    sum: &mut Summary,
    n: u32,
) -> Result<()> {
    println!("[4/{n}] traffic through the GRE tunnel via MAG1:");
    let mut pairs = vec![(CN6.to_string(), host(&s.addr).to_string())];
    if let Some(ip) = lease_ip {
        pairs.push((CN.to_string(), ip.to_string()));
    }
    let mut all_ok = true;
    let mut text = Vec::new();
    // The first pings (IPv6) on the core link, as for an IPv4 subscriber.
    let mut cap = core_capture(l);
    for (cn, me) in &pairs {
        let (s1, r1, _) = Lab::ping(&l.sub, cn, 5)?;
        let (s2, r2, _) = Lab::ping(&l.cn, me, 5)?;
        println!("      ping subscriber → {cn}: {r1}/{s1}; correspondent → {me}: {r2}/{s2}");
        print_capture(cap.take(), l.opts.proto.anchor_name());
        all_ok &= r1 == s1 && r2 == s2;
        text.push(format!("{r1}/{s1} and {r2}/{s2}"));
    }
    sum.add("ping both ways", text.join(", "), all_ok);
    ensure!(all_ok, "pings lost through the tunnel");
    let ip = l.iperf6(3)?;
    println!(
        "      iperf3 TCP subscriber → correspondent over IPv6, 3 s: {:.2} Gbit/s, {} MB, {} retransmits",
        ip.gbps,
        ip.bytes_received / 1_000_000,
        ip.retransmits
    );
    ensure!(
        ip.ok && ip.bytes_received > 0,
        "iperf3 over IPv6 failed: {}",
        ip.error
    );
    let mut row = format!("IPv6 {:.2} Gbit/s", ip.gbps);
    if service.ipv4() {
        let ip4 = l.iperf(2)?;
        println!("      iperf3 TCP over IPv4, 2 s: {:.2} Gbit/s", ip4.gbps);
        ensure!(
            ip4.ok && ip4.bytes_received > 0,
            "iperf3 over IPv4 failed: {}",
            ip4.error
        );
        row.push_str(&format!(", IPv4 {:.2} Gbit/s", ip4.gbps));
    }
    sum.add("TCP through the tunnel", row, true);
    Ok(())
}

/// Step 5: `pmipctl show bindings` on each box: prefix and IPv4 home address.
fn show_bindings(l: &Lab, s: &Slaac, v4: bool, sum: &mut Summary, n: u32) -> Result<()> {
    println!("[5/{n}] pmipctl show bindings on each box:");
    for (name, d) in [("LMA", l.lma()), ("MAG1", l.mag(0)), ("MAG2", l.mag(1))] {
        println!("    {name}:");
        print!("{}", indent(&d.ctl(&["show", "bindings"])?));
    }
    let (a, m1, m2) = (
        l.lma().bindings()?,
        l.mag(0).bindings()?,
        l.mag(1).bindings()?,
    );
    let prefix_ok = a.len() == 1
        && m1.len() == 1
        && a[0].hnp.is_some()
        && a[0].hnp == m1[0].hnp
        && a[0].home_v4.is_some() == v4
        && m1[0].home_v4 == a[0].home_v4
        && s.addr
            .starts_with(a[0].hnp.as_deref().unwrap_or("-").trim_end_matches(":/64"));
    sum.add(
        "show bindings",
        format!(
            "{} at LMA, {} at MAG1, {} at MAG2; HNP {}{}",
            a.len(),
            m1.len(),
            m2.len(),
            a.first().and_then(|b| b.hnp.clone()).unwrap_or_default(),
            a.first()
                .and_then(|b| b.home_v4)
                .map(|h| format!(", Hoa {h}"))
                .unwrap_or_default()
        ),
        prefix_ok && m2.is_empty(),
    );
    Ok(())
}

/// Step 6: Handover to MAG2 under an IPv6 TCP stream and a 2 ms ping6.
fn handover(l: &mut Lab, s: &Slaac, sum: &mut Summary, n: u32) -> Result<()> {
    println!("[6/{n}] handover to MAG2 while a 6 s IPv6 TCP stream and a 2 ms ping6 run (the subscriber's switch port moves; MAG2 registers it on its first packet)...");
    let h = l.handover6_under_load(1, 6, Duration::from_secs(2))?;
    println!(
        "      address before {} after {}; default router before {} after {}; router's neighbour entry {} → {}",
        h.before.addr, h.after.addr, h.before.router, h.after.router, h.neigh_before, h.neigh_after
    );
    super::report_stream(l, &h.stream, "ping6");
    let same = h.after.addr == s.addr && !s.addr.is_empty();
    let same_router = h.after.router == h.before.router
        && lladdr(&h.neigh_after).is_some()
        && lladdr(&h.neigh_after) == lladdr(&h.neigh_before);
    sum.add(
        "handover: same address",
        format!("{} → {}", s.addr, h.after.addr),
        same,
    );
    sum.add(
        "handover: same default router",
        format!(
            "{} ({})",
            h.after.router,
            lladdr(&h.neigh_after).unwrap_or_default()
        ),
        same_router,
    );
    super::stream_rows(&h.stream, sum);
    ensure!(same, "the address changed");
    ensure!(same_router, "the default router changed");
    ensure!(h.iperf.ok, "the TCP stream broke: {}", h.iperf.error);
    Ok(())
}
