//! A restored IPv6 subscriber (issue 15 with issue 11): the MAG's pmipd is stopped (SIGTERM)
//! and started again on the same pinned maps and store while a kernel-SLAAC subscriber
//! receives a 500 packets/s ICMPv6 stream through the tunnel. Its address is kept, the MAG
//! goes on advertising the same prefix (so the node's address, whose valid lifetime is only
//! 3 × the RA interval, never runs out), and not one packet of the stream is lost.
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pmip_tests::gateway_cases::skip;
use pmip_tests::lab::{self, epoch_now, ping_gap, Lab, Proto};
use pmip_tests::recovery::{self, Stream};
use pmip_user::config::Service;

#[test]
fn ipv6_subscriber_survives_a_mag_restart() {
    if skip() {
        return;
    }
    if let Err(e) = mag_restart_keeps_ipv6_subscriber() {
        pmip_tests::lab::fail(e);
    }
}

/// The `nd <link>` counter `name` of the MAG.
fn nd(l: &Lab, name: &str) -> Result<u64> {
    let st = l.mag(0).stats()?;
    Ok(st
        .groups
        .get("nd acc0")
        .and_then(|g| g.get(name))
        .copied()
        .unwrap_or(0))
}

fn mag_restart_keeps_ipv6_subscriber() -> Result<()> {
    // Pinned maps, an embedded store, lifetime 12 s refreshed every 4 s (recovery's timers);
    // RAs every 4 s, so the node's valid lifetime is at most 12 s.
    let mut o = recovery::opts(Proto::Pmipv6, "r6m");
    o.service = Service::Ipv6;
    o.ra_interval_s = 4;
    o.durable = true;
    let mut l = Lab::up(o)?;
    let s0 = l.attach6()?;
    ensure!(s0.valid_lft <= 12, "valid lifetime capped: {s0:?}");
    let (m0, a0) = l.wait_registered(0)?;
    let addr = s0.addr.split('/').next().unwrap_or("").to_string();
    let stream = Stream::start(&l.cn, &addr, 20)?;
    lab::interruptible_sleep(Duration::from_secs(2))?;

    let t_down = epoch_now();
    let st = l.access[0].as_mut().context("mag1")?.stop();
    ensure!(
        st.is_some_and(|s| s.success()),
        "SIGTERM: pmipd exited {st:?}"
    );
    // Down for a second, as a restart by a supervisor would be.
    lab::interruptible_sleep(Duration::from_secs(1))?;
    l.start_access(0)?;
    let t_up = epoch_now();
    let (m1, a1) = l.wait_registered(0)?;
    ensure!(
        (m1.hnp.as_ref(), m1.gre_key_up, m1.gre_key_down)
            == (m0.hnp.as_ref(), m0.gre_key_up, m0.gre_key_down)
            && (a1.hnp.as_ref(), a1.gre_key_up) == (a0.hnp.as_ref(), a0.gre_key_up),
        "the binding changed over the restart:\n{m0:?}\n{m1:?}\n{a0:?}\n{a1:?}"
    );

    // RAs for the same prefix go on: the restarted MAG advertises (its own counter), and
    // the node's address has its valid lifetime renewed by them, again and again, for
    // longer than one valid lifetime after the restart.
    let end = Instant::now() + Duration::from_secs(14);
    let mut renewals = 0;
    let mut last = l.slaac()?.valid_lft;
    while Instant::now() < end {
        let s = l.slaac()?;
        ensure!(
            s.addr == s0.addr && s.router == s0.router,
            "address or router changed after the restart: {s0:?} then {s:?}"
        );
        if s.valid_lft > last {
            renewals += 1;
        }
        last = s.valid_lft;
        lab::interruptible_sleep(Duration::from_millis(250))?;
    }
    let ras = nd(&l, "ra_advertise")?;
    ensure!(
        renewals >= 2 && ras >= 2,
        "RAs after the restart: {renewals} renewals of the address's lifetime, {ras} sent"
    );

    let (sent, received, text) = stream.finish()?;
    let (max_gap_ms, g0, g1) = ping_gap(&text).unwrap_or((f64::NAN, 0.0, 0.0));
    ensure!(
        sent == received && sent > 2000,
        "{} of {sent} ICMPv6 packets lost over the MAG's restart (largest gap {max_gap_ms:.0} ms, \
         from {:.3} to {:.3} s after the stop; back up {:.3} s after it)",
        sent - received,
        g0 - t_down,
        g1 - t_down,
        t_up - t_down
    );
    let s = l.slaac()?;
    ensure!(s.addr == s0.addr, "address at the end: {s0:?} then {s:?}");
    eprintln!(
        "IPv6 subscriber over the MAG restart: {received}/{sent} received, largest gap \
         {max_gap_ms:.1} ms, {renewals} lifetime renewals and {ras} RAs after the restart"
    );
    Ok(())
}
