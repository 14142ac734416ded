//! pmip-lab: the whole mission on one machine (`cargo xtask lab`).
//!
//! A subscriber running busybox udhcpc, two access gateways, an anchor and a
//! correspondent, each in a network namespace, `pmipd run` in each gateway
//! role. Step by step: the subscriber's address through the proxy
//! registration, ping and TCP through the GRE tunnel, `pmipctl show
//! bindings` on each box, a handover to the second gateway under a TCP
//! stream, and a summary. Everything is removed at the end, on failure and
//! on Ctrl-C. Exits non-zero if a step fails.
//!
//! `--ipv6` / `--dual-stack`: the subscriber configures itself by the
//! kernel's SLAAC from the MAG's router advertisements (and udhcpc for IPv4),
//! and the traffic and the handover run over IPv6 (pmip-lab/six.rs).
//!
//! With `--radius`, a FreeRADIUS on the core switch gives the subscriber its profile
//! (seed 004's Cisco AV pairs, seed 000's 3GPP2/StarOS attributes) and takes the gateways'
//! accounting; the lab shows both.
//!
//! With `--cluster`, the anchor cluster on etcd (pmip-lab/cluster.rs): three
//! etcd members, three anchors, two access gateways, and a takeover with its gap.
//!
//! Usage: pmip-lab [--cluster] [--pmipv4] [--ipv6 | --dual-stack] [--xdp-mode native|generic|auto|tc] [--handover-by data|dhcp] [--transport ipv4|ipv6] [--radius] [--verbose]
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pmip_tests::aaa_lab::{self, RadiusSite};
use pmip_tests::lab::{self, Lab, LabOpts, Proto, Trigger, CN};
use pmip_user::config::Service;

#[path = "pmip-lab/six.rs"]
mod six;

#[path = "pmip-lab/cluster.rs"]
mod cluster;

struct Summary {
    rows: Vec<(String, String, bool)>,
}
impl Summary {
    fn add(&mut self, what: &str, result: impl Into<String>, ok: bool) {
        self.rows.push((what.into(), result.into(), ok));
    }
    fn print(&self) {
        println!();
        println!("  {:<32} {:<62}", "step", "result");
        println!("  {}", "-".repeat(100));
        for (w, r, ok) in &self.rows {
            println!(
                "  {:<32} {:<62} {}",
                w,
                r,
                if *ok { "ok" } else { "FAILED" }
            );
        }
        println!();
    }
}

fn usage() -> ! {
    eprintln!("usage: pmip-lab [--cluster] [--pmipv4] [--ipv6 | --dual-stack] [--xdp-mode native|generic|auto|tc] [--handover-by data|dhcp] [--transport ipv4|ipv6] [--radius] [--verbose]");
    std::process::exit(2)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

fn step(n: u32, total: u32, text: &str) {
    println!("[{n}/{total}] {text}");
}

fn main() {
    let mut proto = Proto::Pmipv6;
    let mut mode = "native".to_string();
    let mut verbose = false;
    let mut trigger = Trigger::Data;
    let mut v6t = false;
    let mut service = Service::Ipv4;
    let mut radius = false;
    let mut cluster = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pmipv4" => proto = Proto::Pmipv4,
            "--pmipv6" => proto = Proto::Pmipv6,
            "--xdp-mode" => mode = args.next().unwrap_or_else(|| usage()),
            "--verbose" | "-v" => verbose = true,
            "--radius" => radius = true,
            "--cluster" => cluster = true,
            "--ipv6" => service = Service::Ipv6,
            "--dual-stack" => service = Service::Dual,
            "--transport" => {
                v6t = match args.next().as_deref() {
                    Some("ipv4") => false,
                    Some("ipv6") => true,
                    _ => usage(),
                }
            }
            "--handover-by" => {
                trigger = match args.next().as_deref() {
                    Some("data") => Trigger::Data,
                    Some("dhcp") => Trigger::Dhcp,
                    _ => usage(),
                }
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if !["native", "generic", "auto", "tc"].contains(&mode.as_str()) {
        usage();
    }
    if v6t && proto == Proto::Pmipv4 {
        eprintln!("pmip-lab: PMIPv4 signals over IPv4 only; --transport ipv6 is for PMIPv6");
        std::process::exit(2);
    }
    if service.ipv6() && proto == Proto::Pmipv4 {
        eprintln!("pmip-lab: IPv6 subscribers are PMIPv6's (RFC 5213); --ipv6 and --dual-stack are for PMIPv6");
        std::process::exit(2);
    }
    if service.ipv6() && trigger == Trigger::Dhcp {
        eprintln!("pmip-lab: with an IPv6 stream the new gateway registers the subscriber from its data; --handover-by dhcp is for IPv4 subscribers");
        std::process::exit(2);
    }
    if !pmip_tests::netns::is_root() {
        eprintln!("pmip-lab: needs root (network namespaces, XDP)");
        std::process::exit(1);
    }
    lab::install_interrupt_handler();
    let mut summary = Summary { rows: Vec::new() };
    let r = if cluster {
        cluster::run(&mode, verbose, &mut summary)
    } else {
        run(
            proto,
            &mode,
            (verbose, radius),
            (trigger, service),
            v6t,
            &mut summary,
        )
    };
    summary.print();
    // The lab is dropped inside run(): namespaces, daemons and files are gone.
    match r {
        Ok(()) => println!("pmip-lab: all steps passed; lab removed"),
        Err(e) => {
            if lab::interrupted() {
                eprintln!("pmip-lab: interrupted; lab removed");
                std::process::exit(130);
            }
            eprintln!("pmip-lab: FAILED: {e:#}");
            eprintln!("pmip-lab: lab removed");
            std::process::exit(1);
        }
    }
}

fn run(
    proto: Proto,
    mode: &str,
    (verbose, radius): (bool, bool),
    (trigger, service): (Trigger, Service),
    v6t: bool,
    sum: &mut Summary,
) -> Result<()> {
    const N: u32 = 7;
    let (acc, anc) = (proto.access_name(), proto.anchor_name());
    println!(
        "pmip-lab: {} ({acc}/{anc}) over {} transport, GRE tunnels, XDP {mode}, {} subscriber",
        if proto == Proto::Pmipv6 {
            "PMIPv6"
        } else {
            "PMIPv4"
        },
        if v6t { "IPv6" } else { "IPv4" },
        match service {
            Service::Ipv4 => "IPv4 (DHCP)",
            Service::Ipv6 => "IPv6 (SLAAC)",
            Service::Dual => "dual-stack (DHCP + SLAAC)",
        }
    );
    lab::ensure_binaries()?;

    // 1. Topology.
    let t = Instant::now();
    let mut o = LabOpts::new(proto, "lab");
    o.attach_mode = mode.into();
    o.gateways = 2;
    o.lifetime_s = 120;
    o.refresh_s = 40;
    o.ipv6_transport = v6t;
    o.service = service;
    o.log_filter = if verbose {
        "debug".into()
    } else {
        "info".into()
    };
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    step(1, N, &format!(
        "topology up in {} ms: subscriber ─ access switch ─ {acc}1 | {acc}2 ─ core switch ─ {anc} ─ correspondent ({})",
        t.elapsed().as_millis(),
        [&l.sub, &l.sw, &l.mags[0], &l.mags[1], &l.anchor, &l.cn].iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" ")
    ));
    sum.add("topology", "6 namespaces", true);

    let site = if radius {
        let r = aaa_lab::lab_radius(&mut l)?;
        println!(
            "      FreeRADIUS {} on the core switch ({}), the subscriber's profile in its users file",
            aaa_lab::SERVERS[0],
            r.ns.name
        );
        sum.add("RADIUS server", "FreeRADIUS up", true);
        Some(r)
    } else {
        None
    };

    // Any failure from here prints the daemons' last log lines.
    let r = if service.ipv6() {
        six::steps6(&mut l, service, sum, N)
    } else {
        steps(&mut l, proto, trigger, sum, N, site.as_ref())
    };
    if let Err(e) = &r {
        if !lab::interrupted() {
            eprintln!("pmip-lab: step failed: {e:#}");
            for (name, d) in l
                .access
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.as_ref().map(|d| (format!("{acc}{}", i + 1), d)))
                .chain(l.anchor_d.as_ref().map(|d| (anc.to_string(), d)))
            {
                eprintln!("--- {name} log ({}):\n{}", d.log.display(), d.log_tail(15));
            }
        }
    }
    println!("pmip-lab: removing the lab");
    drop(site);
    drop(l);
    r
}

/// The signaling capture on the core link (for a tshark ladder at the
/// end) and the daemons (step 2); returns the capture's file and its index
/// in `l.bg`, if tcpdump and tshark are there.
fn start_lab(
    l: &mut Lab,
    proto: Proto,
    sum: &mut Summary,
    n: u32,
) -> Result<(std::path::PathBuf, Option<usize>)> {
    let (acc, anc) = (proto.access_name(), proto.anchor_name());
    // The signaling on the core link, for a tshark ladder at the end.
    let pcap = l.dir.0.join("signaling.pcap");
    let sigcap = if lab::have("tcpdump") && lab::have("tshark") {
        let c =
            l.sw.command("tcpdump")
                .args([
                    "-q",
                    "-U",
                    "-i",
                    "pcn",
                    "-w",
                    pcap.to_str().unwrap_or_default(),
                ])
                .args(["udp port 5436 or udp port 434 or ip6 proto 135"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
        // Owned by the lab: killed on drop, whatever happens.
        l.bg.push(c);
        lab::interruptible_sleep(Duration::from_millis(500))?;
        Some(l.bg.len() - 1)
    } else {
        None
    };

    // 2. Daemons.
    let t = Instant::now();
    l.start_daemons()?;
    step(
        2,
        n,
        &format!(
            "daemons ready in {} ms: pmipd run as {anc} ({}), {acc}1 ({}), {acc}2 ({})",
            t.elapsed().as_millis(),
            l.opts.anchor_core(),
            l.opts.mag_core(0),
            l.opts.mag_core(1)
        ),
    );
    sum.add("daemons", format!("{anc}, {acc}1, {acc}2 ready"), true);

    Ok((pcap, sigcap))
}

fn steps(
    l: &mut Lab,
    proto: Proto,
    trigger: Trigger,
    sum: &mut Summary,
    n: u32,
    radius: Option<&RadiusSite>,
) -> Result<()> {
    let (acc, anc) = (proto.access_name(), proto.anchor_name());
    let (pcap, sigcap) = start_lab(l, proto, sum, n)?;

    // 3. Attach.
    let t = Instant::now();
    let lease = l.attach(false)?;
    let ms = t.elapsed().as_millis();
    let (mb, ab) = l.wait_registered(0)?;
    step(3, n, &format!(
        "subscriber attached through the proxy registration in {ms} ms (udhcpc start → ACK): address {}/{}, router {}, lease {} s, MTU {}",
        lease.ip, lease.mask, lease.router, lease.lease, lease.mtu
    ));
    println!(
        "      {acc}1 registered NAI {} with the {anc}: home {}, GRE keys up {} / down {}",
        mb.nai,
        ab.home_v4.map(|h| h.to_string()).unwrap_or_default(),
        ab.gre_key_up,
        ab.gre_key_down
    );
    ensure!(
        l.sub_addr()?.as_deref() == Some(&format!("{}/{}", lease.ip, lease.mask)),
        "s0 address not configured"
    );
    if radius.is_some() {
        radius_profile(l, &mb.nai, &lease, sum)?;
    }
    sum.add(
        "attach (DHCP + registration)",
        format!(
            "{}/{} router {} lease {} s MTU {} ({ms} ms)",
            lease.ip, lease.mask, lease.router, lease.lease, lease.mtu
        ),
        true,
    );

    // 4. Traffic, with a look at the core link.
    let cap = core_capture(l);
    let (s, r, text) = Lab::ping(&l.sub, &CN.to_string(), 5)?;
    let rtt = text
        .lines()
        .find(|x| x.contains("rtt"))
        .unwrap_or("")
        .to_string();
    let (s2, r2, _) = Lab::ping(&l.cn, &lease.ip, 5)?;
    println!("[4/{n}] traffic through the GRE tunnel via {acc}1:");
    println!("      ping subscriber → correspondent {CN}: {r}/{s} replies; {rtt}");
    println!(
        "      ping correspondent → subscriber {}: {r2}/{s2} replies",
        lease.ip
    );
    print_capture(cap, anc);
    ensure!(r == s && r2 == s2, "pings lost through the tunnel");
    let ip = l.iperf(3)?;
    println!(
        "      iperf3 TCP subscriber → correspondent, 3 s: {:.2} Gbit/s, {} MB, {} retransmits",
        ip.gbps,
        ip.bytes_received / 1_000_000,
        ip.retransmits
    );
    ensure!(
        ip.ok && ip.bytes_received > 0,
        "iperf3 failed: {}",
        ip.error
    );
    print_subscriber_traffic(l, &mb.nai)?;
    sum.add("ping both ways", format!("{r}/{s} and {r2}/{s2}"), true);
    sum.add(
        "TCP through the tunnel",
        format!("{:.2} Gbit/s", ip.gbps),
        true,
    );

    // 5. show bindings.
    println!("[5/{n}] pmipctl show bindings on each box:");
    for (name, d) in [
        (format!("{anc} ({})", l.opts.anchor_core()), l.lma()),
        (format!("{acc}1"), l.mag(0)),
        (format!("{acc}2"), l.mag(1)),
    ] {
        println!("    {name}:");
        print!("{}", indent(&d.ctl(&["show", "bindings"])?));
    }
    let counts = (
        l.lma().bindings()?.len(),
        l.mag(0).bindings()?.len(),
        l.mag(1).bindings()?.len(),
    );
    sum.add(
        "show bindings",
        format!(
            "{} at {anc}, {} at {acc}1, {} at {acc}2",
            counts.0, counts.1, counts.2
        ),
        counts == (1, 1, 0),
    );

    // 6. Handover under a TCP stream.
    let how = match trigger {
        Trigger::Data => {
            format!("the subscriber's switch port moves; {acc}2 registers it on its first packet")
        }
        Trigger::Dhcp => {
            format!("the subscriber's switch port moves; udhcpc reconfirms its lease with {acc}2")
        }
    };
    println!("[6/{n}] handover to {acc}2 while a 6 s TCP stream and a 2 ms ping run ({how})...");
    let h = l.handover_under_load(1, 6, Duration::from_secs(2), trigger)?;
    println!("      address before {} after {} (DHCP renewal answered by {acc}2, server id {}, lease {} s)", h.before.ip, h.after.ip, h.after.serverid, h.after.lease);
    report_stream(l, &h.stream, "ping");
    let same = h.after.ip == lease.ip && !h.after.ip.is_empty();
    sum.add(
        "handover: same address",
        format!("{} → {}", lease.ip, h.after.ip),
        same,
    );
    stream_rows(&h.stream, sum);
    ensure!(same, "the address changed");
    ensure!(h.iperf.ok, "the TCP stream broke: {}", h.iperf.error);

    // 7. After.
    after_handover(l, &lease.ip, sum, n)?;
    if let Some(r) = radius {
        accounting_records(l, r, sum)?;
    }
    if let Some(i) = sigcap {
        signaling_ladder(l, i, &pcap, sum)?;
    }
    Ok(())
}

/// Step 7 of either address family: the binding via the second gateway;
/// the correspondent reaches the subscriber at `host` there.
fn after_handover(l: &Lab, host: &str, sum: &mut Summary, n: u32) -> Result<()> {
    let (acc, anc) = (l.opts.proto.access_name(), l.opts.proto.anchor_name());
    let acc_l = acc.to_lowercase();
    let m2 = l.opts.mag_core(1);
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding via mag2", |b| {
            b.len() == 1 && b[0].peer.to_string() == m2
        })?;
    l.mag(1)
        .wait_bindings(Duration::from_secs(5), "binding at mag2", |b| b.len() == 1)?;
    let (s, r, _) = Lab::ping(&l.cn, host, 5)?;
    println!("[7/{n}] after the handover: correspondent → subscriber {r}/{s} replies via {acc}2; pmipctl show bindings:");
    for (name, d) in [anc.to_string(), format!("{acc}1"), format!("{acc}2")]
        .into_iter()
        .zip([l.lma(), l.mag(0), l.mag(1)])
    {
        println!("    {name}:");
        print!("{}", indent(&d.ctl(&["show", "bindings"])?));
    }
    let tun = l.lma().ctl(&["show", "tunnels"]).context("show tunnels")?;
    println!("    {anc} show tunnels:");
    print!("{}", indent(&tun));
    ensure!(r == s, "pings lost after the handover");
    sum.add(
        &format!("{anc} binding now via {acc_l}2"),
        format!("peer {m2}, {r}/{s} pings"),
        true,
    );
    Ok(())
}

/// Captures 4 GRE packets on the core link (the anchor's side), if tcpdump is there.
fn core_capture(l: &Lab) -> Option<std::process::Child> {
    if lab::have("tcpdump") {
        Lab::capture(&l.sw, "pcn", 4, "ip proto 47 or ip6 proto 47").ok()
    } else {
        None
    }
}

/// Prints what [`core_capture`] caught (waiting at most 2 s for it).
fn print_capture(cap: Option<std::process::Child>, anc: &str) {
    let Some(mut c) = cap else { return };
    let done = lab::wait_timeout(&mut c, Duration::from_secs(2));
    if done.is_none() {
        let _ = c.kill();
    }
    let mut text = String::new();
    if let Some(mut o) = c.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut text);
    }
    let _ = c.wait();
    println!("      on the core link ({anc} side), tcpdump 'ip proto 47 or ip6 proto 47':");
    print!("{}", indent(&text));
}

/// The subscriber's fast-path counters at the first access gateway.
fn print_subscriber_traffic(l: &Lab, nai: &str) -> Result<()> {
    let acc = l.opts.proto.access_name();
    lab::interruptible_sleep(Duration::from_millis(600))?;
    if let Ok(st) = l.mag(0).stats() {
        for x in st.subscribers.iter().filter(|x| x.nai == nai) {
            let t = x.traffic;
            println!(
                "      fast path at {acc}1 (show stats): up {} packets / {} MB, down {} packets / {} MB for {}",
                t.up_packets,
                t.up_bytes / 1_000_000,
                t.down_packets,
                t.down_bytes / 1_000_000,
                x.nai
            );
        }
    }
    Ok(())
}

/// What the TCP stream and the 2 ms `ping` (or ping6) across a handover
/// saw, and when the new gateway (the second) saw and registered the
/// subscriber, from its log (best effort: log wording).
fn report_stream(l: &Lab, h: &lab::UnderLoad, ping: &str) {
    let (acc, anc) = (l.opts.proto.access_name(), l.opts.proto.anchor_name());
    let lost = h.ping_sent.saturating_sub(h.ping_received);
    println!(
        "      TCP stream: iperf3 {}, {} MB received, {:.2} Gbit/s average, {} retransmits",
        if h.iperf.ok { "exit 0" } else { "FAILED" },
        h.iperf.bytes_received / 1_000_000,
        h.iperf.gbps,
        h.iperf.retransmits
    );
    println!(
        "      handover gap: {:.1} ms (largest gap between consecutive {ping} replies across the move; elsewhere in the run at most {:.1} ms); {lost} of {} pings lost",
        h.gap_ms, h.noise_gap_ms, h.ping_sent
    );
    if let Some(d) = l.access[1].as_ref() {
        let ms = |t: Option<f64>| t.map(|t| format!("{:.1} ms", (t - h.moved_at) * 1000.0));
        let seen = ms(lab::log_time_after(&d.log, h.moved_at, " attach"));
        // An IPv4 home address is "registered", an IPv6-only binding's
        // prefix "prefix advertised" (daemon/access6.rs).
        let reg = lab::log_time_after(&d.log, h.moved_at, " registered")
            .or_else(|| lab::log_time_after(&d.log, h.moved_at, "prefix advertised"));
        if let Some(reg) = ms(reg) {
            println!(
                "      after the move: {acc}2 saw the subscriber at +{}, registered it with the {anc} at +{reg}",
                seen.unwrap_or_else(|| "?".into())
            );
        }
    }
}

/// The summary rows of the stream across a handover.
fn stream_rows(h: &lab::UnderLoad, sum: &mut Summary) {
    let lost = h.ping_sent.saturating_sub(h.ping_received);
    sum.add(
        "handover: TCP stream unbroken",
        format!(
            "iperf3 {}, {} MB, {:.2} Gbit/s",
            if h.iperf.ok { "exit 0" } else { "failed" },
            h.iperf.bytes_received / 1_000_000,
            h.iperf.gbps
        ),
        h.iperf.ok,
    );
    sum.add(
        "handover gap",
        format!("{:.1} ms, {lost}/{} pings lost", h.gap_ms, h.ping_sent),
        h.ping_received > 0,
    );
}

/// Stops the core-link capture and prints the signaling as tshark decodes it.
fn signaling_ladder(
    l: &mut Lab,
    i: usize,
    pcap: &std::path::Path,
    sum: &mut Summary,
) -> Result<()> {
    let c = &mut l.bg[i];
    // SAFETY: our own child, not reaped yet.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let _ = lab::wait_timeout(c, Duration::from_secs(3));
    let o = std::process::Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.time_relative",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "_ws.col.Info",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .context("tshark")?;
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    println!(
        "    signaling on the core link ({} messages, decoded by tshark):",
        lines.len()
    );
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 6 {
            continue;
        }
        let t: f64 = f[0].parse().unwrap_or(0.0);
        let src = if f[1].is_empty() { f[2] } else { f[1] };
        let dst = if f[3].is_empty() { f[4] } else { f[3] };
        println!("      {t:>8.3} s  {src:>15} → {dst:<15} {}", f[5]);
    }
    let malformed = text.to_lowercase().contains("malformed");
    sum.add(
        "signaling decoded by tshark",
        format!(
            "{} messages{}",
            lines.len(),
            if malformed { ", MALFORMED" } else { "" }
        ),
        !malformed && !lines.is_empty(),
    );
    ensure!(!malformed, "tshark found malformed signaling");
    Ok(())
}

/// What the subscriber got from the RADIUS server, and the client's counters.
fn radius_profile(l: &Lab, nai: &str, lease: &lab::Lease, sum: &mut Summary) -> Result<()> {
    let acc = l.opts.proto.access_name();
    let v = aaa_lab::aaa_view(l.mag(0))?;
    println!(
        "      {acc}1 authorized the subscriber with FreeRADIUS (Access-Accept): NAI {nai}, DNS {}, lease {} s; pmipctl show aaa:",
        lease.dns, lease.lease
    );
    print!("{}", indent(&pmip_user::ctl::format_aaa(&v)));
    let accepted = aaa_lab::counter(&v, "accepted");
    sum.add(
        "profile from RADIUS",
        format!("NAI {nai}, DNS {}, {accepted} Access-Accept", lease.dns),
        accepted == 1,
    );
    ensure!(accepted == 1, "no Access-Accept");
    Ok(())
}

/// The accounting records FreeRADIUS wrote: both access gateways' sessions and the
/// anchor's one session across the handover.
fn accounting_records(l: &Lab, r: &RadiusSite, sum: &mut Summary) -> Result<()> {
    let (acc, anc) = (l.opts.proto.access_name(), l.opts.proto.anchor_name());
    // MAG1's Stop follows the handover; wait for it rather than for a fixed time.
    let stop = r.wait_record(
        0,
        &l.opts.mag_core(0),
        Duration::from_secs(10),
        "Stop",
        |x| x.get("Acct-Status-Type") == Some("Stop"),
    )?;
    let recs = aaa_lab::records_text(r);
    println!(
        "    accounting in FreeRADIUS's detail file ({} records, by NAS-Identifier; {anc} = anchor):",
        recs.len()
    );
    for x in &recs {
        println!("      {x}");
    }
    let anchor_starts = r
        .detail(0, &l.opts.anchor_core())
        .iter()
        .filter(|x| x.get("Acct-Status-Type") == Some("Start"))
        .count();
    sum.add(
        "accounting after the handover",
        format!(
            "{acc}1 Stop ({}), {anc} sessions started: {anchor_starts}",
            stop.get("Acct-Terminate-Cause").unwrap_or("-")
        ),
        anchor_starts == 1,
    );
    Ok(())
}
