//! Floods against an access gateway (issue 13).
//!
//! - 20 000 DHCPDISCOVERs from distinct MACs at 2 000/s on one access link
//!   (the attacker's port): a subscriber attaching on another link during
//!   the flood gets its lease while the flood still runs (the time it took
//!   is a printed figure), an attached subscriber's stream
//!   loses nothing, the flood gets the link's admission budget only (a few
//!   registrations, not thousands), the access daemon's memory comes back
//!   to its baseline + 10 %, and the log stays short.
//! - A mixed flood of bad packets (malformed DHCP, data from unknown MACs,
//!   forged signaling, ESP under guessed keys): a bounded number of log
//!   lines, whatever the number of packets.
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pmip_tests::gateway_cases as cases;
use pmip_tests::hostile::{self, stat};
use pmip_tests::lab::{self, Daemon, Dhcpc, Lab, LabOpts, Proto, CORE_MAG};
use pmip_tests::packet;

const FLOOD: u32 = 20_000;
const RATE: u32 = 2_000;

/// The lab with the attacker's access link on gateway 0; a subscriber on
/// the ordinary link is attached.
fn lab_with_flood_link(tag: &str) -> Result<(Lab, pmip_tests::netns::Netns)> {
    let mut o = LabOpts::new(Proto::Pmipv6, tag);
    o.gateways = 1;
    // The forged signaling of the flood meets ESP, as in service.
    o.insecure = false;
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    let flooder = hostile::flood_link(&l)?;
    lab::ensure_binaries()?;
    l.start_anchor()?;
    let cfg = l.dir.0.join("mag1.toml");
    std::fs::write(&cfg, hostile::access_config_with_flood_link(&l))?;
    let sock = l.dir.0.join("mag1.sock");
    let d = Daemon::start(&l.mags[0], "mag1", &cfg, &sock, &l.opts.log_filter)?;
    l.access[0] = Some(d);
    l.attach(false)?;
    l.wait_registered(0)?;
    Ok((l, flooder))
}

fn discover_flood() -> Result<()> {
    let (mut l, flooder) = lab_with_flood_link("dfl")?;
    let pid = l.mag(0).pid().context("pid")?;
    std::thread::sleep(Duration::from_secs(2));
    let base_kb = hostile::rss_kb(pid)?;
    let base_anchor_kb = hostile::rss_kb(l.lma().pid().context("pid")?)?;
    let log0 = hostile::log_lines(&l.mag(0).log);
    let pbus_of = |st: &pmip_user::ctl::StatsView| {
        [
            "pbu_sent",
            "pbu_retransmitted",
            "refresh_sent",
            "dereg_sent",
        ]
        .iter()
        .map(|n| stat(st, "mag", n))
        .sum::<u64>()
    };
    let pbu0 = pbus_of(&l.mag(0).stats()?);
    let ping = hostile::ping_stream(&l, 1500, "0.01")?;
    let k = l.add_subscriber("02:00:00:00:aa:02")?;
    let dir2 = l.dir.0.join("sub2");
    std::fs::create_dir_all(&dir2)?;
    let (flood_secs, latency, peak_kb, _c2) = std::thread::scope(|s| -> Result<_> {
        let flood = s.spawn(|| {
            hostile::flood_frames(&flooder, "f0", FLOOD, RATE, |i| {
                hostile::discover_frame(hostile::flood_mac(i), i)
            })
        });
        // Three seconds into the flood, a new subscriber on the other link.
        std::thread::sleep(Duration::from_secs(3));
        let t = Instant::now();
        let c2 = Dhcpc::start(&l.more_subs[k], "s0", &dir2, false)?;
        c2.wait_event("bound", 1, Duration::from_secs(15))?;
        let latency = t.elapsed();
        // Served while the flood still ran, not after it: the flood on one
        // link did not starve the other. (How fast is a figure, printed
        // below: 153 ms here beside a CI run, 1.46 s in one loaded CI run.)
        ensure!(
            !flood.is_finished(),
            "legit subscriber bound only after the flood ended ({latency:?})"
        );
        let peak_kb = hostile::rss_kb(pid)?;
        let secs = flood.join().expect("flood thread")?;
        Ok((secs, latency, peak_kb, c2))
    })?;
    let (sent, got) = hostile::ping_result(ping)?;
    // Offer holds run out (10 s), abandoned attaches deregister; then the
    // memory must come back.
    let end = Instant::now() + Duration::from_secs(40);
    let mut after_kb = hostile::rss_kb(pid)?;
    while after_kb * 10 > base_kb * 11 && Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        after_kb = hostile::rss_kb(pid)?;
    }
    let st = l.mag(0).stats()?;
    let adm = |n| stat(&st, "admission", n);
    let discovers = stat(&st, "dhcp acc1", "discovers");
    let pbus = pbus_of(&st) - pbu0;
    let lines = hostile::log_lines(&l.mag(0).log) - log0;
    let anchor_kb = hostile::rss_kb(l.lma().pid().context("pid")?)?;
    println!(
        "FIGURES discover_flood: {FLOOD} DISCOVERs in {flood_secs:.1} s ({discovers} reached \
         the server); legit attach {:.0} ms; legit stream {got}/{sent}; admitted {}, refused \
         link_pending {} link_rate {} backoff {}; PBUs {pbus}; access RSS {base_kb} -> \
         {peak_kb} (during) -> {after_kb} kB; anchor RSS {base_anchor_kb} -> {anchor_kb} kB; \
         {lines} log lines",
        latency.as_secs_f64() * 1000.0,
        adm("admitted"),
        adm("refused_link_pending"),
        adm("refused_link_rate"),
        adm("refused_backoff"),
    );
    ensure!(sent == got, "legit stream lost {} of {sent}", sent - got);
    ensure!(
        discovers >= u64::from(FLOOD) * 9 / 10,
        "the flood did not arrive: {discovers}"
    );
    ensure!(adm("admitted") <= 100, "admitted {}", adm("admitted"));
    ensure!(pbus <= 300, "{pbus} PBUs for a DISCOVER flood");
    ensure!(
        after_kb * 10 <= base_kb * 11,
        "access daemon memory {base_kb} -> {after_kb} kB"
    );
    ensure!(lines <= 300, "{lines} log lines for the flood");
    // The flood's attaches are all gone; the two subscribers stay.
    l.lma()
        .wait_bindings(Duration::from_secs(20), "only the subscribers", |b| {
            b.len() == 2
        })?;
    Ok(())
}

/// Malformed DHCP, unknown-MAC data, forged BRIs and ESP under a guessed
/// key, 20 000 packets in all: the access daemon writes a bounded number of
/// log lines (each call site at most 5 per 10 s, with a count of the rest).
fn bad_packet_flood() -> Result<()> {
    let (l, flooder) = lab_with_flood_link("bpf")?;
    let atk = hostile::core_attacker(&l)?;
    let log0 = hostile::log_lines(&l.mag(0).log);
    let nai = l.mag(0).bindings()?[0].nai.clone();
    let spi = lab::esp_sa(0).spi_down;
    std::thread::scope(|s| -> Result<()> {
        let access = s.spawn(|| {
            hostile::flood_frames(&flooder, "f0", 10_000, 2_000, |i| {
                let mac = hostile::flood_mac(i);
                if i % 2 == 0 {
                    // A DHCP message cut short (the fixed part is 236 octets).
                    hostile::dhcp_frame(mac, &hostile::discover(mac, i)[..100])
                } else {
                    // Data from a MAC nobody registered.
                    let ip = packet::ipv4(
                        std::net::Ipv4Addr::new(10, 66, 0, 50),
                        lab::CN,
                        17,
                        64,
                        false,
                        &packet::udp(4000, 4000, b"data"),
                    );
                    let mut f = packet::eth([0x02, 0, 0, 0, 0, 0x01], mac, 0, 0x0800);
                    f.extend_from_slice(&ip);
                    f
                }
            })
        });
        let forged_nai = nai.clone();
        hostile::send_paced(&atk, 10_000, 2_000, move |i| {
            if i % 2 == 0 {
                hostile::forged_bri(&forged_nai, i as u16, CORE_MAG[0])
            } else {
                hostile::forged_esp(spi, i, CORE_MAG[0])
            }
        })?;
        access.join().expect("flood thread")?;
        Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(1));
    let lines = hostile::log_lines(&l.mag(0).log) - log0;
    let st = l.mag(0).stats()?;
    println!(
        "FIGURES bad_packet_flood: 20000 packets, {lines} log lines; malformed DHCP {}, \
         unprotected {}, bad ICV {}, new-MAC reports dropped {}",
        stat(&st, "dhcp acc1", "malformed"),
        stat(&st, "mag transport", "esp_rx_unprotected"),
        stat(&st, "mag transport", "esp_rx_bad_icv"),
        stat(&st, "admission", "new_mac_reports_dropped"),
    );
    ensure!(
        stat(&st, "mag transport", "esp_rx_unprotected") >= 4_000,
        "{st:?}"
    );
    ensure!(stat(&st, "dhcp acc1", "malformed") >= 4_000, "{st:?}");
    ensure!(
        lines <= 120,
        "{lines} log lines:\n{}",
        l.mag(0).log_tail(40)
    );
    // The subscriber's binding is still there and answered. (The flood's
    // data from unknown MACs starts attaches of its own, ten a second; the
    // anchor refuses them, but one started in the last moment may still
    // be waiting for its answer: not counted.)
    let bs = l.mag(0).bindings()?;
    ensure!(
        bs.iter().any(|b| b.nai == nai && b.state == "ACTIVE"),
        "the subscriber was cut off: {:?}",
        bs.iter().map(|b| (&b.nai, &b.state)).collect::<Vec<_>>()
    );
    Ok(())
}

fn run(f: fn() -> Result<()>) {
    if cases::skip() {
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

#[test]
fn discover_flood_on_one_link() {
    run(discover_flood);
}

#[test]
fn bad_packet_flood_logs_little() {
    run(bad_packet_flood);
}
