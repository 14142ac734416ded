//! What RADIUS gave a subscriber survives a restart of the access pmipd (issue 14): the
//! profile from the Access-Accept rides in the subscriber's store record, so the restored
//! subscriber keeps its Session-Timeout (counted from the first attach: the lease after the
//! restart is bounded by what is left of it, and it is deregistered when it runs out), its
//! Acct-Interim-Interval, DNS, and accounting's User-Name and Class — not the local
//! configuration's (binding lifetime 120 s, interim 30 s, no profile at all). A CoA-Request
//! before the restart (new DNS, a shorter Session-Timeout) is written back into the record:
//! the restarted gateway serves what the CoA set, not what the Access-Accept said.
//!
//! A real FreeRADIUS on the lab's core (tests/src/aaa_lab.rs), busybox udhcpc as the
//! subscriber, `pmipd run` in every role with pinned maps and an embedded store.
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pmip_tests::aaa_lab::{self, RadiusSite, DAE_SECRET};
use pmip_tests::lab::{self, Lab, LabOpts, Proto, SUB_MAC};
use pmip_tests::radius::DetailRecord;

const MAG1: &str = "10.255.0.1";
/// The local configuration's interim interval (RADIUS says 2 s).
const LOCAL_INTERIM_S: u32 = 30;
/// RADIUS's Session-Timeout (the local binding lifetime is the lab's 120 s).
const SESSION_TIMEOUT_S: u64 = 60;
/// The CoA's Session-Timeout, counted from the CoA (ends well before the Accept's).
const COA_TIMEOUT_S: u64 = 30;

fn ietf(mac: &str) -> String {
    mac.replace(':', "-")
}

fn status(r: &DetailRecord, s: &str) -> bool {
    r.get("Acct-Status-Type") == Some(s)
}

fn session(r: &DetailRecord) -> Option<&str> {
    r.get("Acct-Session-Id")
}

#[test]
fn pmipv6_access_restart_keeps_the_radius_profile() {
    if aaa_lab::skip() {
        return;
    }
    if let Err(e) = restart_keeps_radius_profile() {
        pmip_tests::lab::fail(e);
    }
}

fn restart_keeps_radius_profile() -> Result<()> {
    let m = ietf(SUB_MAC);
    let users = format!(
        "\"{m}\" Cleartext-Password := \"{m}\"\n\t\
         Cisco-AVPair = \"mn-nai=mn0@example.com\",\n\t\
         Cisco-AVPair = \"home-lma-ipv4-address=10.255.0.10\",\n\t\
         Cisco-AVPair = \"ip:dns-servers=198.51.100.53\",\n\t\
         Class = \"lab-class\",\n\t\
         Session-Timeout = {SESSION_TIMEOUT_S},\n\t\
         Acct-Interim-Interval = 2\n\n\
         DEFAULT Auth-Type := Reject\n"
    );
    let mut o = LabOpts::new(Proto::Pmipv6, "rar");
    o.gateways = 1;
    o.pin = true;
    o.durable = true;
    // No default profile: all the subscriber has comes from RADIUS.
    o.default_profile = false;
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    let mut r = RadiusSite::attach(&l)?;
    r.start(0, &users)?;
    let dir = l.dir.0.clone();
    aaa_lab::with_aaa(&mut l.opts, &dir, &[0], LOCAL_INTERIM_S);
    l.start_daemons()?;

    let lease = l.attach(false)?;
    let secs: u64 = lease.lease.parse().context("lease")?;
    ensure!(
        secs <= SESSION_TIMEOUT_S && lease.dns == "198.51.100.53",
        "first lease: {lease:?}"
    );
    l.wait_registered(0)?;
    let start0 = r.wait_record(0, MAG1, Duration::from_secs(5), "first Start", |x| {
        status(x, "Start")
    })?;
    let s0 = session(&start0).context("Acct-Session-Id")?.to_string();

    // CoA (RFC 5176): new DNS servers and a Session-Timeout of 30 s from now.
    let (ok, text) = r.dae(
        MAG1,
        "coa",
        DAE_SECRET,
        &format!(
            "Calling-Station-Id = \"{m}\", Session-Timeout = {COA_TIMEOUT_S}, \
             Cisco-AVPair = \"ip:dns-servers=198.51.100.54\""
        ),
    )?;
    ensure!(ok && text.contains("CoA-ACK"), "CoA:\n{text}");
    let t_coa = Instant::now();

    // SIGTERM and start again on the same pins and store.
    let st = l.access[0].as_mut().context("mag1")?.stop();
    ensure!(
        st.is_some_and(|s| s.success()),
        "SIGTERM: pmipd exited {st:?}"
    );
    l.start_access(0)?;
    // The restored lease is bounded by what was left of the CoA's Session-Timeout at the
    // restart (the DHCP server keeps that lease for the binding, as it does a first
    // attach's).
    let left = COA_TIMEOUT_S.saturating_sub(t_coa.elapsed().as_secs());
    l.wait_registered(0)?;

    // A new accounting session (the last run's ended with its Accounting-Off), with
    // RADIUS's User-Name and Class, and Interim-Updates every 2 s, not every 30 s.
    let start1 = r.wait_record(0, MAG1, Duration::from_secs(5), "Start after", |x| {
        status(x, "Start") && session(x).is_some_and(|s| s != s0)
    })?;
    let s1 = session(&start1).context("Acct-Session-Id")?.to_string();
    ensure!(
        start1.get("User-Name") == Some(&m)
            && start1
                .get("Class")
                .is_some_and(|c| c.contains("6c61622d636c617373") || c == "lab-class"),
        "restored session's Start: {}",
        aaa_lab::summary(&start1)
    );
    let t_start1 = Instant::now();
    let interims = |want: usize| -> Result<()> {
        let end = t_start1 + Duration::from_secs(9);
        loop {
            let n = r
                .detail(0, MAG1)
                .iter()
                .filter(|x| status(x, "Interim-Update") && session(x) == Some(&s1))
                .count();
            if n >= want {
                return Ok(());
            }
            ensure!(
                Instant::now() < end,
                "{n} Interim-Updates of the restored session within 9 s (RADIUS interval 2 s, \
                 local {LOCAL_INTERIM_S} s)"
            );
            lab::interruptible_sleep(Duration::from_millis(200))?;
        }
    };
    interims(3)?;

    // The lease after the restart: what is left of the CoA's Session-Timeout, its DNS.
    let renews = l.client().count("renew");
    l.client().renew()?;
    let renewed = l
        .client()
        .wait_event("renew", renews + 1, Duration::from_secs(10))?;
    let secs: u64 = renewed.lease.parse().context("lease")?;
    ensure!(
        renewed.ip == lease.ip && renewed.dns == "198.51.100.54" && secs <= left + 1,
        "lease after the restart (CoA: Session-Timeout {COA_TIMEOUT_S} s and DNS \
         198.51.100.54, {left} s left at the restart; Accept: {SESSION_TIMEOUT_S} s, \
         198.51.100.53; binding lifetime 120 s): {renewed:?}"
    );

    // The CoA's Session-Timeout runs out when it would have without the restart, long
    // before the Accept's.
    let until = Duration::from_secs(COA_TIMEOUT_S + 6).saturating_sub(t_coa.elapsed());
    l.mag(0)
        .wait_bindings(until, "no binding at the CoA's Session-Timeout", |b| {
            b.is_empty()
        })?;
    let gone = t_coa.elapsed();
    ensure!(
        gone >= Duration::from_secs(COA_TIMEOUT_S - 3),
        "deregistered {gone:?} after the CoA, before its Session-Timeout ({COA_TIMEOUT_S} s)"
    );
    let stop = r.wait_record(0, MAG1, Duration::from_secs(5), "Stop", |x| {
        status(x, "Stop") && session(x) == Some(&s1)
    })?;
    ensure!(
        stop.get("Acct-Terminate-Cause") == Some("Session-Timeout"),
        "Stop: {}",
        aaa_lab::summary(&stop)
    );
    eprintln!(
        "restored RADIUS profile with the CoA's changes: lease {secs} s after the restart \
         ({left} s left at it), deregistered {:.1} s after the CoA (its Session-Timeout \
         {COA_TIMEOUT_S} s; the Accept's {SESSION_TIMEOUT_S} s)",
        gone.as_secs_f64()
    );
    Ok(())
}
