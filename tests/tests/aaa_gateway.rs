//! pmipd with the operator's AAA, end to end (issue 14): `pmipd run` in every role of the
//! lab (tests/src/lab.rs), a stock DHCP client as the subscriber, a real FreeRADIUS on the
//! core switch (tests/src/aaa_lab.rs), radclient for dynamic authorization.
//!
//! - the subscriber's profile from the Access-Accept (PMIPv6: Cisco AV pairs; PMIPv4: the
//!   3GPP2 HA address pair, primary then failover to the alternate, and a static home
//!   address), Session-Timeout as the lease's bound;
//! - reject → default profile (or refused without one); first server down → second server;
//!   every server down → default profile;
//! - Accounting-Start / Interim-Update / Stop from both the access gateway and the anchor in
//!   FreeRADIUS's detail file, with the packet counts of the pings exactly;
//! - accounting kept while the server is away and delivered when it returns, across a
//!   pmipd restart too (the spool);
//! - Disconnect-Request from radclient deregisters; a wrong secret is dropped; an unknown
//!   subscriber gets a NAK with Error-Cause 503.
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::aaa_lab::{self, counter, wait_aaa, RadiusSite, DAE_SECRET};
use pmip_tests::lab::{Lab, LabOpts, Proto, CN, SUB_MAC};
use pmip_tests::radius::DetailRecord;

const MAG1: &str = "10.255.0.1";
const ANCHOR: &str = "10.255.0.10";
/// `ping` of 56 payload bytes: 84-byte IPv4 packets each way.
const PING_BYTES: u64 = 84;

fn run(f: fn() -> Result<()>) {
    if aaa_lab::skip() {
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

/// The lab's subscriber MAC as FreeRADIUS sees it (IETF lower case, seed 004).
fn ietf(mac: &str) -> String {
    mac.replace(':', "-")
}

fn user(mac: &str, attrs: &[&str]) -> String {
    let m = ietf(mac);
    format!(
        "\"{m}\" Cleartext-Password := \"{m}\"\n\t{}\n\n",
        attrs.join(",\n\t")
    )
}

const REJECT_OTHERS: &str = "DEFAULT Auth-Type := Reject\n\tReply-Message = \"no profile\"\n";

/// Topology, the RADIUS site with server `running` started, daemons with `[aaa]`.
fn lab_with_radius(
    mut o: LabOpts,
    users: &str,
    servers: &[usize],
    running: &[usize],
    interim_s: u32,
) -> Result<(Lab, RadiusSite)> {
    o.gateways = o.gateways.max(1);
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    let mut r = RadiusSite::attach(&l)?;
    for &i in running {
        r.start(i, users)?;
    }
    let dir = l.dir.0.clone();
    aaa_lab::with_aaa(&mut l.opts, &dir, servers, interim_s);
    l.start_daemons()?;
    Ok((l, r))
}

fn packets(r: &DetailRecord) -> (u64, u64, u64, u64) {
    let u = |k| r.u64(k).unwrap_or(u64::MAX);
    (
        u("Acct-Input-Packets"),
        u("Acct-Output-Packets"),
        u("Acct-Input-Octets"),
        u("Acct-Output-Octets"),
    )
}

fn status(r: &DetailRecord, s: &str) -> bool {
    r.get("Acct-Status-Type") == Some(s)
}

#[test]
fn pmipv6_profile_from_radius_accounting_and_disconnect() {
    run(pmipv6_profile_accounting_disconnect);
}

fn pmipv6_profile_accounting_disconnect() -> Result<()> {
    let users = user(
        SUB_MAC,
        &[
            "Cisco-AVPair = \"mn-nai=mn0@example.com\"",
            "Cisco-AVPair = \"mn-service=ipv4\"",
            "Cisco-AVPair = \"home-lma-ipv4-address=10.255.0.10\"",
            "Cisco-AVPair = \"mn-apn=example.com\"",
            "Cisco-AVPair = \"ip:dns-servers=198.51.100.53\"",
            "Class = \"lab-class\"",
            "Session-Timeout = 90",
            "Acct-Interim-Interval = 2",
        ],
    ) + REJECT_OTHERS;
    let mut o = LabOpts::new(Proto::Pmipv6, "ra6");
    o.gateways = 1;
    // No default profile: what the subscriber gets can only come from RADIUS.
    o.default_profile = false;
    let (mut l, r) = lab_with_radius(o, &users, &[0], &[0], 2)?;

    // The profile from the Access-Accept.
    let lease = l.attach(false)?;
    ensure!(
        lease.dns == "198.51.100.53",
        "DNS from ip:dns-servers: {lease:?}"
    );
    let secs: u64 = lease.lease.parse().context("lease")?;
    ensure!(
        (80..=90).contains(&secs),
        "lease bounded by Session-Timeout 90 (binding lifetime 120): {lease:?}"
    );
    let (m, a) = l.wait_registered(0)?;
    ensure!(
        m.nai == "mn0@example.com" && a.nai == m.nai,
        "mn-nai: {m:?} {a:?}"
    );
    ensure!(a.peer.to_string() == MAG1, "anchor's peer {a:?}");
    let v = aaa_lab::aaa_view(l.mag(0))?;
    let s0 = &v.client.as_ref().context("client stats")?.servers[0];
    ensure!(
        counter(&v, "accepted") == 1 && s0.accepts == 1 && s0.requests == 1,
        "{}",
        pmip_user::ctl::format_aaa(&v)
    );

    // Accounting-On when each pmipd started (RFC 2866 §5.1), then Accounting-Start from
    // both, with what the seeds ask for.
    for nas in [MAG1, ANCHOR] {
        r.wait_record(0, nas, Duration::from_secs(5), "Accounting-On", |x| {
            status(x, "Accounting-On") && x.get("Acct-Session-Id").is_none()
        })?;
    }
    let ms = r.wait_record(0, MAG1, Duration::from_secs(5), "MAG Start", |x| {
        status(x, "Start")
    })?;
    ensure!(
        ms.get("User-Name") == Some(&ietf(SUB_MAC))
            && ms.get("Calling-Station-Id") == Some(&ietf(SUB_MAC))
            && ms.get("Framed-IP-Address") == Some(&lease.ip)
            && ms.get("NAS-Identifier") == Some("mag1")
            && ms
                .get("Class")
                .is_some_and(|c| c.contains("6c61622d636c617373") || c == "lab-class"),
        "MAG Start: {:?}",
        ms.0
    );
    let astart = r.wait_record(0, ANCHOR, Duration::from_secs(5), "anchor Start", |x| {
        status(x, "Start")
    })?;
    ensure!(
        astart.get("User-Name") == Some("mn0@example.com")
            && astart.get("Framed-IP-Address") == Some(&lease.ip),
        "anchor Start: {:?}",
        astart.0
    );

    // A subscriber RADIUS rejects, and no default profile: refused and counted.
    let (c2, _) = aaa_lab::start_subscriber(&mut l, "02:00:00:00:aa:09", false)?;
    wait_aaa(
        l.mag(0),
        Duration::from_secs(10),
        "rejected and refused",
        |v| {
            // Its DHCP client keeps asking: each DISCOVER is asked about again.
            counter(v, "rejected") >= 1 && counter(v, "refused") >= 1
        },
    )?;
    ensure!(
        c2.count("bound") == 0,
        "the rejected subscriber got a lease"
    );
    ensure!(
        l.mag(0).bindings()?.len() == 1,
        "a binding for the rejected subscriber"
    );
    drop(c2);

    // 20 pings through the tunnel: the Interim-Updates carry exactly them.
    let (s, rcv, _) = Lab::ping(&l.sub, &CN.to_string(), 20)?;
    ensure!(s == 20 && rcv == 20, "pings {rcv}/{s}");
    let want = (20, 20, 20 * PING_BYTES, 20 * PING_BYTES);
    for nas in [MAG1, ANCHOR] {
        r.wait_record(
            0,
            nas,
            Duration::from_secs(8),
            "Interim with the pings",
            |x| status(x, "Interim-Update") && packets(x) == want,
        )?;
    }

    // CoA: new DNS servers and a shorter Session-Timeout, no new registration; the
    // subscriber's next renewal carries them.
    let target = format!("Calling-Station-Id = \"{}\"", ietf(SUB_MAC));
    let (ok, text) = r.dae(
        MAG1,
        "coa",
        DAE_SECRET,
        &format!("{target}, Session-Timeout = 40, Cisco-AVPair = \"ip:dns-servers=198.51.100.54\""),
    )?;
    ensure!(ok && text.contains("CoA-ACK"), "CoA:\n{text}");
    let renews = l.client().count("renew");
    l.client().renew()?;
    let renewed = l
        .client()
        .wait_event("renew", renews + 1, Duration::from_secs(10))?;
    let secs: u64 = renewed.lease.parse().context("lease")?;
    ensure!(
        renewed.dns == "198.51.100.54" && (30..=40).contains(&secs) && renewed.ip == lease.ip,
        "after the CoA: {renewed:?}"
    );
    ensure!(l.mag(0).bindings()?.len() == 1, "the CoA re-registered");

    // Dynamic authorization: a wrong secret is dropped; an unknown subscriber is NAKed.
    let (ok, text) = r.dae(MAG1, "disconnect", "not-the-secret", &target)?;
    ensure!(
        !ok && !text.contains("Disconnect-ACK"),
        "wrong secret answered:\n{text}"
    );
    wait_aaa(
        l.mag(0),
        Duration::from_secs(5),
        "bad authenticator counted",
        |v| v.dae.as_ref().is_some_and(|d| d.bad_authenticators == 1),
    )?;
    ensure!(
        l.mag(0).bindings()?.len() == 1,
        "a wrong secret deregistered"
    );
    let (_, text) = r.dae(
        MAG1,
        "disconnect",
        DAE_SECRET,
        "Calling-Station-Id = \"02-00-00-00-ee-ee\"",
    )?;
    ensure!(
        text.contains("Disconnect-NAK") && text.contains("Session-Context-Not-Found"),
        "unknown subscriber:\n{text}"
    );
    // By Calling-Station-Id: ACK, deregistered at both ends, Stop with the counts.
    let (ok, text) = r.dae(MAG1, "disconnect", DAE_SECRET, &target)?;
    ensure!(ok && text.contains("Disconnect-ACK"), "Disconnect:\n{text}");
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "no binding", |b| b.is_empty())?;
    l.lma()
        .wait_bindings(Duration::from_secs(5), "no binding", |b| b.is_empty())?;
    let mstop = r.wait_record(0, MAG1, Duration::from_secs(5), "MAG Stop", |x| {
        status(x, "Stop")
    })?;
    ensure!(
        mstop.get("Acct-Terminate-Cause") == Some("Admin-Reset")
            && packets(&mstop) == want
            && mstop.get("Acct-Session-Id") == ms.get("Acct-Session-Id"),
        "MAG Stop: {}",
        aaa_lab::summary(&mstop)
    );
    let astop = r.wait_record(0, ANCHOR, Duration::from_secs(5), "anchor Stop", |x| {
        status(x, "Stop")
    })?;
    ensure!(
        packets(&astop) == want
            && astop.get("Acct-Session-Id") == astart.get("Acct-Session-Id")
            && astop.get("Acct-Terminate-Cause") == Some("User-Request"),
        "anchor Stop: {}",
        aaa_lab::summary(&astop)
    );
    let v = aaa_lab::aaa_view(l.mag(0))?;
    ensure!(
        counter(&v, "disconnects") == 1
            && counter(&v, "disconnect_naks") == 1
            && counter(&v, "coas") == 1,
        "{}",
        pmip_user::ctl::format_aaa(&v)
    );
    // Nothing in the logs or show output gives a secret away.
    let text = l.mag(0).ctl(&["show", "aaa"])?;
    let log = std::fs::read_to_string(&l.mag(0).log)?;
    for out in [&text, &log] {
        ensure!(
            !out.contains(aaa_lab::SECRET) && !out.contains(DAE_SECRET),
            "a secret leaked"
        );
    }
    Ok(())
}

#[test]
fn radius_failover_reject_and_timeout_fall_back() {
    run(failover_and_fallbacks);
}

fn failover_and_fallbacks() -> Result<()> {
    let users = user(
        SUB_MAC,
        &[
            "Cisco-AVPair = \"mn-nai=mn0@example.com\"",
            "Cisco-AVPair = \"home-lma=anchor\"",
        ],
    ) + REJECT_OTHERS;
    let mut o = LabOpts::new(Proto::Pmipv6, "rfo");
    o.gateways = 1;
    // Servers .20 (never started) then .21.
    let (mut l, mut r) = lab_with_radius(o, &users, &[0, 1], &[1], 0)?;

    // The first server does not answer: the second one's profile.
    l.attach(false)?;
    let (m, _) = l.wait_registered(0)?;
    ensure!(m.nai == "mn0@example.com", "{m:?}");
    let v = aaa_lab::aaa_view(l.mag(0))?;
    let c = v.client.as_ref().context("client")?;
    ensure!(
        c.servers[0].timeouts >= 1 && c.servers[1].accepts == 1,
        "{}",
        pmip_user::ctl::format_aaa(&v)
    );

    // Rejected: the interface's default profile (the NAI is the MAC).
    let (_c2, lease2) = aaa_lab::start_subscriber(&mut l, "02:00:00:00:aa:02", true)?;
    ensure!(lease2.is_some());
    let v = wait_aaa(
        l.mag(0),
        Duration::from_secs(5),
        "reject → default",
        |v| counter(v, "rejected") == 1 && counter(v, "default_profile") == 1,
    )?;
    ensure!(counter(&v, "refused") == 0);
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "default-profile binding", |b| {
            b.iter().any(|x| x.nai == "0200.0000.aa02")
        })?;

    // Every server away: the default profile after the timeouts.
    r.stop(1);
    let (_c3, lease3) = aaa_lab::start_subscriber(&mut l, "02:00:00:00:aa:03", true)?;
    ensure!(lease3.is_some());
    wait_aaa(
        l.mag(0),
        Duration::from_secs(5),
        "timeout → default",
        |v| counter(v, "timeouts") == 1 && counter(v, "default_profile") == 2,
    )?;
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "three bindings", |b| b.len() == 3)?;
    // A Disconnect-Request by User-Name (the NAI the default profile gave it).
    let (ok, text) = r.dae(
        MAG1,
        "disconnect",
        DAE_SECRET,
        "User-Name = \"0200.0000.aa02\"",
    )?;
    ensure!(
        ok && text.contains("Disconnect-ACK"),
        "by User-Name:\n{text}"
    );
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "aa02 gone", |b| {
            b.len() == 2 && !b.iter().any(|x| x.nai == "0200.0000.aa02")
        })?;
    Ok(())
}

#[test]
fn pmipv4_3gpp2_ha_pair_primary_then_alternate() {
    run(pmipv4_ha_pair);
}

fn pmipv4_ha_pair() -> Result<()> {
    const DEAD_HA: &str = "10.255.0.99";
    let common = [
        "SN-Subscriber-Permission = Simple-IP",
        "SN-Proxy-MIP = Enabled",
        "SN-Primary-DNS-Server = 198.51.100.250",
    ];
    let mut a1: Vec<&str> = common.to_vec();
    // Seed 000: the first is the primary HA, the second the alternate.
    a1.extend([
        "3GPP2-Home-Agent-IP-Address = 10.255.0.99",
        "3GPP2-Home-Agent-IP-Address = 10.255.0.10",
        "Framed-IP-Address = 10.64.0.77",
    ]);
    let mut a2: Vec<&str> = common.to_vec();
    a2.extend([
        "3GPP2-Home-Agent-IP-Address = 10.255.0.10",
        "3GPP2-Home-Agent-IP-Address = 10.255.0.99",
    ]);
    let users = user(SUB_MAC, &a1) + &user("02:00:00:00:aa:02", &a2) + REJECT_OTHERS;
    let mut o = LabOpts::new(Proto::Pmipv4, "ra4");
    o.gateways = 1;
    o.default_profile = false;
    // A second HA that is down (a configured peer: its SA is there), failover on.
    o.extra_access = format!(
        "\n[[peers]]\nname = \"ha-dead\"\naddress = \"{DEAD_HA}\"\nspi = 300\nalgorithm = \"hmac-md5\"\nkey = \"{}\"\n\
         \n[timers.ha_failover]\nenabled = true\nmax_attempts = 4\nattempts_before_switching = 1\ntimeout_s = 1\n",
        "11".repeat(16)
    );
    // The HA lets this subscriber ask for its address (Framed-IP-Address).
    o.extra_anchor = "\n[[profiles]]\nname = \"static\"\nnai = \"0200.0000.aa01\"\n".into();
    let (mut l, r) = lab_with_radius(o, &users, &[0], &[0], 0)?;

    // Primary down: the PMA fails over to the alternate; the static home address holds.
    let lease = l.attach(false)?;
    ensure!(
        lease.ip == "10.64.0.77" && lease.dns == "198.51.100.250",
        "Framed-IP-Address and SN-Primary-DNS-Server: {lease:?}"
    );
    let (_, a) = l.wait_registered(0)?;
    ensure!(
        a.nai == "0200.0000.aa01" && a.peer.to_string() == MAG1,
        "{a:?}"
    );
    let failovers = |l: &Lab| -> Result<u64> {
        let st = l.mag(0).stats()?;
        Ok(st.groups["pma"].get("ha_failovers").copied().unwrap_or(0))
    };
    // At least one (the dead primary); a CI host that stalls the HA past
    // the 1 s failover timeout makes the PMA switch back and forth before
    // the alternate's answer lands — more failovers, the same outcome.
    let first = failovers(&l)?;
    ensure!(first >= 1, "{}", l.stats_text(l.mag(0)));

    // Primary up: straight there, no failover.
    let (_c2, lease2) = aaa_lab::start_subscriber(&mut l, "02:00:00:00:aa:02", true)?;
    let ip2 = lease2.map(|x| x.ip).unwrap_or_default();
    ensure!(ip2.starts_with("10.64.0."), "{ip2}");
    l.lma()
        .wait_bindings(Duration::from_secs(5), "two bindings", |b| b.len() == 2)?;
    ensure!(failovers(&l)? == first, "{}", l.stats_text(l.mag(0)));

    // The first one releases its lease: Stop from both ends (the HA's session began once).
    l.client().release()?;
    for nas in [MAG1, ANCHOR] {
        let s = r.wait_record(0, nas, Duration::from_secs(8), "Stop", |x| {
            status(x, "Stop") && x.get("Framed-IP-Address") == Some("10.64.0.77")
        })?;
        ensure!(
            s.get("Acct-Terminate-Cause") == Some("User-Request"),
            "{nas}: {}",
            aaa_lab::summary(&s)
        );
    }

    // A Disconnect-Request to the HA by Framed-IP-Address: it releases the binding and
    // revokes it at the PMA (RFC 3543).
    let (ok, text) = r.dae(
        ANCHOR,
        "disconnect",
        DAE_SECRET,
        &format!("Framed-IP-Address = {ip2}"),
    )?;
    ensure!(ok && text.contains("Disconnect-ACK"), "at the HA:\n{text}");
    l.lma()
        .wait_bindings(Duration::from_secs(5), "released", |b| b.is_empty())?;
    l.mag(0)
        .wait_bindings(Duration::from_secs(8), "revoked at the PMA", |b| {
            b.is_empty()
        })?;
    let s = r.wait_record(0, ANCHOR, Duration::from_secs(5), "HA Stop", |x| {
        status(x, "Stop") && x.get("Framed-IP-Address") == Some(ip2.as_str())
    })?;
    ensure!(
        s.get("Acct-Terminate-Cause") == Some("Admin-Reset"),
        "{}",
        aaa_lab::summary(&s)
    );
    Ok(())
}

#[test]
fn accounting_kept_while_the_server_is_away() {
    run(accounting_across_outages);
}

fn accounting_across_outages() -> Result<()> {
    let users = user(SUB_MAC, &["Cisco-AVPair = \"home-lma=anchor\""]) + REJECT_OTHERS;
    let mut o = LabOpts::new(Proto::Pmipv6, "rsp");
    o.gateways = 1;
    let (mut l, mut r) = lab_with_radius(o, &users, &[0], &[0], 0)?;
    l.attach(false)?;
    let start = r.wait_record(0, MAG1, Duration::from_secs(5), "Start", |x| {
        status(x, "Start")
    })?;
    let sid = start
        .get("Acct-Session-Id")
        .context("session id")?
        .to_string();

    // The server goes away; the subscriber pings and leaves: the Stop waits.
    r.stop(0);
    let (_, rcv, _) = Lab::ping(&l.sub, &CN.to_string(), 10)?;
    ensure!(rcv == 10, "pings");
    l.client().release()?;
    wait_aaa(l.mag(0), Duration::from_secs(10), "Stop undelivered", |v| {
        v.client
            .as_ref()
            .is_some_and(|c| c.servers[0].acct_timeouts >= 1)
    })?;
    r.restart(0)?;
    let stop = r.wait_record(
        0,
        MAG1,
        Duration::from_secs(10),
        "Stop after the outage",
        |x| status(x, "Stop") && x.get("Acct-Session-Id") == Some(sid.as_str()),
    )?;
    ensure!(
        packets(&stop) == (10, 10, 10 * PING_BYTES, 10 * PING_BYTES)
            && stop.get("Acct-Terminate-Cause") == Some("User-Request"),
        "{}",
        aaa_lab::summary(&stop)
    );
    ensure!(
        stop.u64("Acct-Delay-Time").unwrap_or(0) >= 1,
        "the delay is reported: {}",
        aaa_lab::summary(&stop)
    );

    // Across a pmipd restart: the gateway stops while the server is away; its Stop is
    // spooled and delivered by the next pmipd.
    let n = l.client().count("bound");
    l.client().renew()?;
    l.client()
        .wait_event("bound", n + 1, Duration::from_secs(25))?;
    let start2 = r.wait_record(0, MAG1, Duration::from_secs(8), "second Start", |x| {
        status(x, "Start") && x.get("Acct-Session-Id") != Some(sid.as_str())
    })?;
    let sid2 = start2.get("Acct-Session-Id").context("id")?.to_string();
    r.stop(0);
    let spool = l.dir.0.join("mag1.spool");
    if let Some(d) = l.access[0].as_mut() {
        d.stop();
    }
    let text = std::fs::read_to_string(&spool)
        .with_context(|| format!("spool {} after the stop", spool.display()))?;
    ensure!(text.contains(&sid2), "spool without the Stop: {text}");
    r.restart(0)?;
    l.start_access(0)?;
    let stop2 = r.wait_record(0, MAG1, Duration::from_secs(10), "spooled Stop", |x| {
        status(x, "Stop") && x.get("Acct-Session-Id") == Some(sid2.as_str())
    })?;
    ensure!(
        stop2.get("Acct-Terminate-Cause") == Some("Admin-Reboot"),
        "{}",
        aaa_lab::summary(&stop2)
    );
    Ok(())
}

#[test]
fn handover_moves_the_anchor_session_and_ends_the_old_gateways() {
    run(handover_accounting);
}

/// PMIPv6 handover by DHCP reconfirmation (no data in flight during the move, so the
/// counts add up exactly): MAG1's session stops (NAS-Request), MAG2's starts, the anchor's
/// one session carries on under the same Acct-Session-Id and ends with the sum.
fn handover_accounting() -> Result<()> {
    use pmip_tests::lab::Trigger;
    const MAG2: &str = "10.255.0.2";
    let users = user(
        SUB_MAC,
        &[
            "Cisco-AVPair = \"mn-nai=mn0@example.com\"",
            "Cisco-AVPair = \"home-lma=anchor\"",
        ],
    ) + REJECT_OTHERS;
    let o = LabOpts::new(Proto::Pmipv6, "rho");
    let (mut l, r) = lab_with_radius(o, &users, &[0], &[0], 0)?;
    l.attach(false)?;
    l.wait_registered(0)?;
    let astart = r.wait_record(0, ANCHOR, Duration::from_secs(5), "anchor Start", |x| {
        status(x, "Start")
    })?;
    let (_, rcv, _) = Lab::ping(&l.sub, &CN.to_string(), 10)?;
    ensure!(rcv == 10, "pings at MAG1");
    let renews = l.client().count("renew");
    l.handover(1, Trigger::Dhcp)?;
    l.client()
        .wait_event("renew", renews + 1, Duration::from_secs(10))?;
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding via MAG2", |b| {
            b.len() == 1 && b[0].peer.to_string() == MAG2
        })?;
    let m1 = r.wait_record(0, MAG1, Duration::from_secs(5), "MAG1 Stop", |x| {
        status(x, "Stop")
    })?;
    ensure!(
        m1.get("Acct-Terminate-Cause") == Some("NAS-Request")
            && packets(&m1) == (10, 10, 10 * PING_BYTES, 10 * PING_BYTES),
        "MAG1 Stop after the handover: {}",
        aaa_lab::summary(&m1)
    );
    r.wait_record(0, MAG2, Duration::from_secs(5), "MAG2 Start", |x| {
        status(x, "Start")
    })?;
    let (_, rcv, _) = Lab::ping(&l.sub, &CN.to_string(), 10)?;
    ensure!(rcv == 10, "pings at MAG2");
    l.client().release()?;
    let m2 = r.wait_record(0, MAG2, Duration::from_secs(8), "MAG2 Stop", |x| {
        status(x, "Stop")
    })?;
    ensure!(
        packets(&m2) == (10, 10, 10 * PING_BYTES, 10 * PING_BYTES),
        "MAG2 Stop: {}",
        aaa_lab::summary(&m2)
    );
    let a = r.wait_record(0, ANCHOR, Duration::from_secs(8), "anchor Stop", |x| {
        status(x, "Stop")
    })?;
    ensure!(
        a.get("Acct-Session-Id") == astart.get("Acct-Session-Id")
            && packets(&a) == (20, 20, 20 * PING_BYTES, 20 * PING_BYTES)
            && r.detail(0, ANCHOR)
                .iter()
                .filter(|x| status(x, "Start"))
                .count()
                == 1,
        "one anchor session across the handover: {}",
        aaa_lab::summary(&a)
    );
    Ok(())
}

/// `cargo xtask lab --radius` (what it runs): every step passes, the profile comes from the
/// Access-Accept, and the accounting records after the handover are shown.
#[test]
fn lab_with_radius_passes_every_step() {
    if aaa_lab::skip() {
        return;
    }
    pmip_tests::lab::ensure_binaries().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pmip-lab"))
        .arg("--radius")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pmip-lab --radius failed:\n{text}\n{err}"
    );
    for want in [
        "authorized the subscriber with FreeRADIUS (Access-Accept): NAI mn0@example.com, DNS 198.51.100.53",
        "accounting in FreeRADIUS's detail file",
        "mag1 Stop session",
        "cause NAS-Request",
        "mag2 Start session",
        "anchor Start session",
        "all steps passed",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}
