//! The metrics endpoint and the logs during a real gateway run (PMIPv6, one
//! MAG, the LMA, busybox udhcpc): the signaling counters move exactly as the
//! signaling did, the fast path's counters as the traffic did, `promtool
//! check metrics` accepts the output, every log line is JSON, and a flood of
//! bad signaling from an unknown address costs a bounded number of lines.
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pmip_tests::gateway_cases as cases;
use pmip_tests::lab::{scrape_metrics as scrape, Lab, LabOpts, Proto, CN};
use pmip_tests::netns::Netns;

/// The value of the sample `series` (name and labels as written), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn messages(dir: &str, ty: &str, status: &str, peer: &str) -> String {
    format!(
        "pmip_signaling_messages_total{{direction=\"{dir}\",type=\"{ty}\",status=\"{status}\",peer=\"{peer}\"}}"
    )
}

fn promtool(text: &str) -> Result<()> {
    use std::process::{Command, Stdio};
    if !pmip_tests::lab::have("promtool") {
        eprintln!("note: promtool missing (Debian package prometheus): check skipped");
        return Ok(());
    }
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.stdin.take().unwrap().write_all(text.as_bytes())?;
    let o = c.wait_with_output()?;
    ensure!(
        o.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

/// Waits until `f` holds on a fresh scrape.
fn scrape_until(ns: &Netns, what: &str, f: impl Fn(&str) -> bool) -> Result<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let t = scrape(ns, None)?;
        if f(&t) {
            return Ok(t);
        }
        if Instant::now() > end {
            bail!("{what} not seen within 10 s:\n{t}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signaling_counts(l: &Lab) -> Result<()> {
    let (mag, lma) = (&l.mags[0], &l.anchor);
    // One registration: one PBU each way, one accepted PBA.
    let m = scrape_until(mag, "the MAG's PBA", |t| {
        value(t, &messages("rx", "pba", "0", "anchor")) == Some(1.0)
    })?;
    let a = scrape(lma, None)?;
    for (text, series, want) in [
        (&m, messages("tx", "pbu", "none", "anchor"), 1.0),
        (&m, messages("rx", "pba", "0", "anchor"), 1.0),
        (&a, messages("rx", "pbu", "none", "mag1"), 1.0),
        (&a, messages("tx", "pba", "0", "mag1"), 1.0),
        (
            &m,
            "pmip_bindings{role=\"mag\",state=\"active\"}".into(),
            1.0,
        ),
        (
            &a,
            "pmip_bindings{role=\"lma\",state=\"active\"}".into(),
            1.0,
        ),
        (
            &m,
            "pmip_fastpath_map_entries{map=\"access_by_mac\"}".into(),
            1.0,
        ),
        (
            &a,
            "pmip_fastpath_map_entries{map=\"anchor_by_key\"}".into(),
            1.0,
        ),
        (
            &m,
            "pmip_signaling_retransmissions_total{role=\"mag\"}".into(),
            0.0,
        ),
    ] {
        ensure!(
            value(text, &series) == Some(want),
            "{series} != {want}:\n{text}"
        );
    }
    ensure!(
        value(
            &m,
            "pmip_dhcp_events_total{interface=\"acc0\",event=\"acks\"}"
        ) >= Some(1.0),
        "{m}"
    );
    ensure!(
        value(&m, "pmip_fastpath_map_capacity{map=\"access_by_mac\"}") > Some(1.0),
        "{m}"
    );
    promtool(&m)?;
    promtool(&a)?;
    // Prometheus asks for OpenMetrics first and gets it.
    let om = scrape(
        mag,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )?;
    ensure!(om.ends_with("# EOF\n"), "{om}");
    Ok(())
}

/// Pings through the tunnel move the fast path's verdict counters by at
/// least as many packets, both ways.
fn traffic_counts(l: &Lab) -> Result<()> {
    let up = "pmip_fastpath_packets_total{verdict=\"tx_encap_uplink\"}";
    let down = "pmip_fastpath_packets_total{verdict=\"tx_decap_downlink\"}";
    let before = scrape(&l.mags[0], None)?;
    let (s, r, t) = Lab::ping(&l.sub, &CN.to_string(), 20)?;
    ensure!(s == 20 && r == 20, "{t}");
    let after = scrape(&l.mags[0], None)?;
    let d = |k: &str| value(&after, k).unwrap_or(0.0) - value(&before, k).unwrap_or(0.0);
    ensure!(d(up) >= 20.0 && d(up) < 30.0, "uplink moved {}", d(up));
    ensure!(
        d(down) >= 20.0 && d(down) < 30.0,
        "downlink moved {}",
        d(down)
    );
    Ok(())
}

/// Deregistration: one more PBU and PBA each way, exactly.
fn deregistration(l: &Lab) -> Result<()> {
    l.mag(0)
        .ctl(&["clear", "binding", &l.mag(0).bindings()?[0].nai])?;
    let m = scrape_until(&l.mags[0], "the deregistration's PBA", |t| {
        value(t, &messages("rx", "pba", "0", "anchor")) == Some(2.0)
    })?;
    ensure!(
        value(&m, &messages("tx", "pbu", "none", "anchor")) == Some(2.0),
        "{m}"
    );
    ensure!(
        value(&m, "pmip_bindings{role=\"mag\",state=\"active\"}") == Some(0.0),
        "{m}"
    );
    let a = scrape(&l.anchor, None)?;
    ensure!(
        value(&a, &messages("rx", "pbu", "none", "mag1")) == Some(2.0),
        "{a}"
    );
    ensure!(
        value(&a, &messages("tx", "pba", "0", "mag1")) == Some(2.0),
        "{a}"
    );
    Ok(())
}

/// 20 000 garbage datagrams to the MAG's signaling port from an address
/// that is no peer: each is counted, and the log gets a bounded few lines.
fn flood(l: &Lab) -> Result<()> {
    let log0 = std::fs::read_to_string(&l.mag(0).log)?.lines().count();
    let rx = "pmip_registrar_socket_events_total{event=\"rx_datagrams\"}";
    let rx0 = value(&scrape(&l.mags[0], None)?, rx).unwrap_or(0.0);
    let t0 = Instant::now();
    let sent = l.mags[0].run_in(|| -> Result<u64> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let to = format!("{}:5436", pmip_tests::lab::CORE_MAG[0]);
        let mut n = 0;
        for i in 0..20_000u32 {
            let b = i.to_be_bytes();
            if s.send_to(&[b[0], b[1], b[2], b[3], 0xff, 0, 0], &to)
                .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    })??;
    ensure!(sent == 20_000, "sent {sent}");
    let key = messages("rx", "malformed", "none", "unknown");
    // Every datagram read from the socket is counted as malformed from an
    // unknown peer (the socket may drop some of a flood before that), and
    // none reaches the registrar: the peer filter drops them after the meter.
    let last = std::cell::Cell::new(-1.0);
    let m = scrape_until(&l.mags[0], "the flood counted", |t| {
        let v = value(t, &key).unwrap_or(0.0);
        let settled = v > 0.0 && v == last.get();
        last.set(v);
        settled && value(t, rx).map(|r| r - rx0) == Some(0.0)
    })?;
    let counted = value(&m, &key).unwrap_or(0.0);
    let secs = t0.elapsed().as_secs_f64().ceil() as usize;
    let text = std::fs::read_to_string(&l.mag(0).log)?;
    let lines: Vec<&str> = text.lines().skip(log0).collect();
    let flood_lines = lines.iter().filter(|l| l.contains("unknown_peer")).count();
    let bound = pmip_user::logs::RateLimit::BURST as usize
        + secs.div_ceil(pmip_user::logs::RateLimit::REFILL_PERIOD.as_secs() as usize)
        + 1;
    ensure!(
        (1..=bound).contains(&flood_lines),
        "{flood_lines} log lines for {counted} datagrams (bound {bound})"
    );
    let last: serde_json::Value = serde_json::from_str(
        lines
            .iter()
            .rev()
            .find(|l| l.contains("unknown_peer"))
            .context("no unknown_peer line")?,
    )?;
    ensure!(
        last["level"] == "WARN" && last["security"] == true,
        "{last}"
    );
    eprintln!("flood: {counted} datagrams counted, {flood_lines} log lines");
    Ok(())
}

/// Every line of both daemons' logs is a JSON object with a level and a message.
fn json_logs(l: &Lab) -> Result<()> {
    for d in [l.mag(0), l.lma()] {
        let text = std::fs::read_to_string(&d.log)?;
        let mut n = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", d.name))?;
            ensure!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            ensure!(v["message"].is_string(), "{line}");
            n += 1;
        }
        ensure!(n > 3, "{}: only {n} lines", d.name);
    }
    // Structured fields stay fields (the access side logs each attach).
    let text = std::fs::read_to_string(&l.mag(0).log)?;
    ensure!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["nai"].is_string() && v["mac"].is_string()),
        "no nai/mac fields:\n{text}"
    );
    Ok(())
}

#[test]
fn metrics_follow_the_signaling_and_logs_stay_bounded() {
    if cases::skip() {
        return;
    }
    // The daemons inherit it: pmipd --log-format json.
    std::env::set_var("PMIP_LOG_FORMAT", "json");
    let run = || -> Result<()> {
        let mut o = LabOpts::new(Proto::Pmipv6, "met");
        o.gateways = 1;
        o.metrics = true;
        let mut l = Lab::up(o)?;
        // Nothing signaled yet.
        let t = scrape(&l.mags[0], None)?;
        ensure!(
            value(&t, &messages("tx", "pbu", "none", "anchor")).is_none(),
            "{t}"
        );
        ensure!(
            value(&t, "pmip_bindings{role=\"mag\",state=\"active\"}") == Some(0.0),
            "{t}"
        );
        l.attach(false)?;
        l.wait_registered(0)?;
        signaling_counts(&l)?;
        traffic_counts(&l)?;
        deregistration(&l)?;
        flood(&l)?;
        json_logs(&l)
    };
    if let Err(e) = run() {
        pmip_tests::lab::fail(e);
    }
}
