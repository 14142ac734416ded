//! PMIPv6 conformance of our MAG (issue 12, docs/conformance.md): busybox
//! udhcpc's DHCP DISCOVER makes `pmipd run` register the subscriber with the
//! test's LMA, which answers from bytes written from the RFC figures, over
//! both transports (raw MH over IPv6, UDP 5436 over IPv4). The LMA side is
//! conformance_pmipv6.rs; ignored tests name the row whose departure they show.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::both;
use pmip_tests::conformance::bed::{sub_mac, AccessBed, AccessExtra, PeerSock, T};
use pmip_tests::conformance::mh::{self, opt, Mh, Opt};
use pmip_tests::conformance::v6::*;

// ------------------------------------------------------------ our MAG

/// 5213-6.9.1.1-a..f, 5213-6.9.1.2-a, 5844-3.1.1-a/b, 5845-4.1-a, 5844-4-a:
/// a DHCP DISCOVER makes our MAG send a PBU, field by field; the lease
/// carries the PBA's address and lifetime.
fn mag_pbu(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let cap = b.capture("pbu")?;
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    ensure!(rx.from == b.gateway(), "PBU from {}", rx.from);
    if t == T::Udp5436 {
        ensure!(
            m.checksum == 0,
            "MH checksum over UDP must be 0 (RFC 5844 §4)"
        );
    }
    let flags = m.u16_at(2);
    ensure!(
        flags & (mh::BU_A | mh::BU_P) == mh::BU_A | mh::BU_P,
        "PBU flags {flags:#06x}: A and P"
    );
    ensure!(
        m.u16_at(4) == 10,
        "lifetime {} (40 s = 10 units)",
        m.u16_at(4)
    );
    let nai = m.nai().context("no MN-ID (RFC 5213 §6.9.1.1)")?;
    ensure!(!nai.is_empty(), "empty NAI");
    ensure!(
        m.get(opt::HI).is_some_and(|d| d[1] == 1 || d[1] == 4),
        "HI {:?}",
        m.get(opt::HI)
    );
    ensure!(
        m.get(opt::ATT).is_some_and(|d| d[1] != 0),
        "ATT {:?}",
        m.get(opt::ATT)
    );
    ensure!(
        m.get(opt::LLID).map(|d| &d[2..]) == Some(&sub_mac()[..]),
        "LLID {:?}",
        m.get(opt::LLID)
    );
    let ts = m.timestamp().context("no Timestamp")?;
    ensure!(
        mh::ts_diff_secs(ts, mh::now_timestamp()) < 5.0,
        "timestamp {ts:x} is not now"
    );
    let key = m.gre_key().context("no GRE Key (RFC 5845 §4.1)")?;
    ensure!(
        m.v4_hoa_req() == Some((0, [0; 4])),
        "IPv4 HoA request {:?}",
        m.v4_hoa_req()
    );
    ensure!(
        m.count(opt::HNP) == 0,
        "HNP for an IPv4-only subscriber (RFC 5844 §3.1.1)"
    );
    l.reply(&rx, &pba_for(&m, 0, 10, &accept_tail(4242)))?;
    let lease = b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    ensure!(
        lease.ip == "10.64.0.57",
        "leased {} (PBA gave 10.64.0.57)",
        lease.ip
    );
    ensure!(
        lease.lease == "40",
        "lease {} (the granted lifetime, 40 s)",
        lease.lease
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(v[0].gre_key_up == 4242 && v[0].gre_key_down == key, "{v:?}");
    // The anchor's bulk release is refused at an access gateway, and
    // nothing is released.
    let e = b.daemon.ctl(&["clear", "bindings", "--peer", "anchor"]);
    ensure!(
        e.as_ref()
            .is_err_and(|e| e.to_string().contains("anchor's")),
        "clear bindings --peer on a MAG: {e:?}"
    );
    ensure!(wait_bindings(&b.daemon, 1).is_ok(), "the binding went");
    cap.check(1)?;
    Ok(())
}
both!(mag_pbu_on_dhcp_discover, mag_pbu);

/// 5213-6.9.4-a/b: without a PBA the MAG retransmits, each PBU with a new
/// sequence number and a newer timestamp, waiting longer each time.
fn mag_retx(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let mut got = Vec::new();
    while got.len() < 4 {
        let (_, m) = next_pbu(&l, Duration::from_secs(3))?;
        if got.is_empty()
            || m.nai()
                == got
                    .first()
                    .and_then(|x: &(std::time::Instant, Mh)| x.1.nai())
        {
            got.push((std::time::Instant::now(), m));
        }
    }
    for w in got.windows(2) {
        ensure!(w[1].1.u16_at(0) != w[0].1.u16_at(0), "sequence not renewed");
        ensure!(
            w[1].1.timestamp() > w[0].1.timestamp(),
            "timestamp not newer"
        );
    }
    let gaps: Vec<f64> = got
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    ensure!(gaps[2] > gaps[0] * 1.5, "no back-off: gaps {gaps:?}");
    Ok(())
}
both!(mag_retransmits_with_backoff, mag_retx);

/// 5846-9.1-a/b/c: a BRI from the LMA is answered with a BRA (same sequence,
/// P), the binding goes; a BRI for an unknown MN gets status 128.
fn mag_bri(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let cap = b.capture("bri")?;
    let l = b.anchor_sock()?;
    let (rx, m) = register(&mut b, &l, 10)?;
    let nai = m.nai().unwrap();
    wait_bindings(&b.daemon, 1)?;
    l.reply(
        &rx,
        &mh::bri(1, 9, mh::BRI_P, &[mh::mn_id(&nai), mh::llid(sub_mac())]),
    )?;
    let a = l.recv_where(S, is_type(mh::BR)).context("no BRA")?;
    let bra = Mh::parse(&a.bytes);
    ensure!(
        bra.fixed[0] == 2 && bra.fixed[1] == 0,
        "BRA type {} status {}",
        bra.fixed[0],
        bra.fixed[1]
    );
    ensure!(
        bra.u16_at(2) == 9 && bra.u16_at(4) & mh::BRI_P != 0,
        "BRA seq {} flags {:#x}",
        bra.u16_at(2),
        bra.u16_at(4)
    );
    wait_bindings(&b.daemon, 0)?;
    l.reply(&rx, &mh::bri(1, 10, mh::BRI_P, &[mh::mn_id("nobody@x")]))?;
    let a = l
        .recv_where(S, is_type(mh::BR))
        .context("no BRA for an unknown MN")?;
    ensure!(
        Mh::parse(&a.bytes).fixed[1] == 128,
        "unknown binding: BRA status {}",
        Mh::parse(&a.bytes).fixed[1]
    );
    cap.check(3)?;
    Ok(())
}
both!(mag_answers_bri, mag_bri);

/// 5846-9.1-f: a BRI saying the MN moved to another MAG (trigger 2,
/// Inter-MAG Handover - same Access Type), while the subscriber is still on
/// our access link and answers ARP: refused with "Revocation Failed - MN is
/// Attached" (132), the binding kept; once it stops answering, the same
/// trigger revokes (status 0).
fn mag_bri_attached(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let cap = b.capture("bri132")?;
    let l = b.anchor_sock()?;
    let (rx, m) = register(&mut b, &l, 10)?;
    let nai = m.nai().unwrap();
    wait_bindings(&b.daemon, 1)?;
    let opts = [mh::mn_id(&nai), mh::llid(sub_mac())];
    let bra_status = |seq: u16| -> Result<u8> {
        let a = l
            .recv_where(S, |r| {
                r.bytes.get(2) == Some(&mh::BR) && Mh::parse(&r.bytes).u16_at(2) == seq
            })
            .with_context(|| format!("no BRA to BRI {seq}"))?;
        let bra = Mh::parse(&a.bytes);
        ensure!(bra.fixed[0] == 2, "B.R. type {}", bra.fixed[0]);
        Ok(bra.fixed[1])
    };
    l.reply(&rx, &mh::bri(2, 20, mh::BRI_P, &opts))?;
    let st = bra_status(20)?;
    ensure!(st == 132, "attached MN: BRA status {st} (want 132)");
    ensure!(
        wait_bindings(&b.daemon, 1)?.len() == 1,
        "binding gone after a refused BRI"
    );
    // The subscriber stops answering ARP (it is "no longer attached").
    b.sub
        .exec(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=8"])?;
    b.sub
        .exec(&["sysctl", "-qw", "net.ipv4.conf.s0.arp_ignore=8"])?;
    l.reply(&rx, &mh::bri(2, 21, mh::BRI_P, &opts))?;
    let st = bra_status(21)?;
    ensure!(st == 0, "silent MN: BRA status {st} (want 0)");
    wait_bindings(&b.daemon, 0)?;
    cap.check(6)?;
    Ok(())
}
both!(
    mag_refuses_a_handover_bri_for_an_attached_mn,
    mag_bri_attached
);

/// 5847-3-a, 5847-4-a, 5847-3-d: the MAG probes its LMA — only once it has
/// a binding there — and answers the LMA's probes.
fn mag_hb(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "heartbeat_interval_s = 1\n")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    // RFC 5847 §3: no proxy Binding Cache entry at the LMA, no request
    // ("SHOULD NOT be sent"): none in two and a half intervals.
    ensure!(
        l.recv_where(Duration::from_millis(2500), is_heartbeat(false, false))
            .is_none(),
        "a Heartbeat Request to an LMA without bindings"
    );
    let cap = b.capture("hb")?;
    register(&mut b, &l, 10)?;
    let rx = l
        .recv_where(S, is_heartbeat(false, false))
        .context("no Heartbeat Request from the MAG")?;
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    ensure!(m.fixed[1] & 0x03 == 0, "request flags {:#x}", m.fixed[1]);
    l.reply(
        &rx,
        &mh::heartbeat(
            true,
            u32::from_be_bytes(m.fixed[2..6].try_into().unwrap()),
            &[mh::restart_counter(1)],
        ),
    )?;
    l.reply(&rx, &mh::heartbeat(false, 4242, &[mh::restart_counter(1)]))?;
    let r = l
        .recv_where(S, |r| {
            r.bytes.get(2) == Some(&mh::HEARTBEAT) && r.bytes.get(7) == Some(&1)
        })
        .context("no Heartbeat Response from the MAG")?;
    ensure!(
        Mh::parse(&r.bytes).fixed[2..6] == 4242u32.to_be_bytes(),
        "sequence not echoed"
    );
    cap.check(2)?;
    Ok(())
}
both!(mag_heartbeat, mag_hb);

/// 5213-6.9.1.3-a, 5213-6.9.2-a, 5845-4.1-c, 5844-3.1.1-c: DHCP RELEASE makes
/// the MAG deregister: lifetime 0, the MN-ID and the IPv4 address it held, no GRE key.
fn mag_dereg(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    let (_, first) = register(&mut b, &l, 10)?;
    wait_bindings(&b.daemon, 1)?;
    b.client().release()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
    ensure!(m.u16_at(4) == 0, "dereg lifetime {}", m.u16_at(4));
    ensure!(m.nai() == first.nai(), "dereg MN-ID");
    ensure!(
        m.get(opt::GRE_KEY).is_none(),
        "GRE Key in a de-registration (RFC 5845: SHOULD NOT)"
    );
    ensure!(
        m.v4_hoa_req().map(|r| r.1) == Some(HOME),
        "dereg IPv4 HoA request {:?}",
        m.v4_hoa_req()
    );
    l.reply(&rx, &pba_for(&m, 0, 0, &[]))?;
    wait_bindings(&b.daemon, 0)?;
    Ok(())
}
both!(mag_deregisters_on_release, mag_dereg);

/// 5213-6.9.1.3-b: the MAG refreshes before the granted lifetime ends, with
/// the same GRE key and the address it holds, HI 5.
fn mag_refresh(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    let (_, first) = register(&mut b, &l, 1)?;
    let (_, m) =
        next_pbu(&l, Duration::from_secs(5)).context("no refresh within the 4 s lifetime")?;
    ensure!(m.u16_at(4) > 0, "refresh lifetime 0");
    ensure!(
        m.gre_key() == first.gre_key(),
        "refresh changed the GRE key"
    );
    ensure!(
        m.v4_hoa_req() == Some((24, HOME)),
        "refresh IPv4 request {:?}",
        m.v4_hoa_req()
    );
    ensure!(
        m.get(opt::HI).map(|d| d[1]) == Some(5),
        "refresh HI {:?}",
        m.get(opt::HI)
    );
    Ok(())
}
both!(mag_refreshes_binding, mag_refresh);

/// 5213-6.9.1.2-c: a rejecting PBA ends the attach: no lease, no binding.
fn mag_reject(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    l.reply(&rx, &pba_for(&m, 129, 0, &[]))?;
    wait_bindings(&b.daemon, 0)?;
    ensure!(
        b.client()
            .wait_event("bound", 1, Duration::from_secs(1))
            .is_err(),
        "leased after status 129"
    );
    // An unknown MH type from the LMA gets a Binding Error (RFC 6275 §9.2).
    l.reply(&rx, &mh::build(99, [0; 6], &[]))?;
    let be = l
        .recv_where(S, is_type(mh::BE))
        .context("no Binding Error")?;
    ensure!(Mh::parse(&be.bytes).fixed[0] == 2, "Binding Error status");
    Ok(())
}
both!(mag_rejection_ends_attach, mag_reject);

/// 5844-3.1.2.6-c (issue 12 #3): status 0 with IPv4 HoA 0.0.0.0 is not a
/// usable binding: no lease of 0.0.0.0, no ACTIVE binding.
fn mag_zero(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    l.reply(
        &rx,
        &pba_for(
            &m,
            0,
            10,
            &[mh::gre_key(4242), mh::v4_hoa_reply(0, 24, [0; 4])],
        ),
    )?;
    let bound = b.client().wait_event("bound", 1, Duration::from_secs(2));
    ensure!(
        bound.is_err(),
        "leased {:?} from a PBA with home address 0.0.0.0",
        bound.map(|l| l.ip)
    );
    ensure!(
        !bindings(&b.daemon).iter().any(|v| v.state == "ACTIVE"),
        "binding ACTIVE with 0.0.0.0"
    );
    Ok(())
}
both!(mag_refuses_zero_home_address, mag_zero);

/// 5213-6.9.1.4-a, 5845-4.1-d (issue 12): a PBA without the GRE Key the MAG
/// needs abandons the binding — the MAG deregisters it at the LMA.
fn mag_no_key(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    l.reply(&rx, &pba_for(&m, 0, 10, &[mh::v4_hoa_reply(0, 24, HOME)]))?;
    let (_, d) =
        next_pbu(&l, Duration::from_secs(3)).context("no PBU after the PBA without GRE key")?;
    ensure!(
        d.u16_at(4) == 0,
        "next PBU is not a de-registration (lifetime {})",
        d.u16_at(4)
    );
    Ok(())
}
both!(mag_deregisters_after_pba_without_gre_key, mag_no_key);

/// 5213-6.9.1.2-b (issue 12): after TIMESTAMP_MISMATCH the MAG keeps its own
/// clock instead of adopting the LMA's timestamp, and asks again only
/// when its retransmission timer fires.
fn mag_156(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    let far = mh::now_timestamp() + (1000 << 16);
    let o = [
        mh::mn_id(&m.nai().unwrap()),
        mh::llid(sub_mac()),
        mh::timestamp(far),
    ];
    l.reply(&rx, &mh::pba(156, mh::BA_P, m.u16_at(0), 0, &o))?;
    let replied = std::time::Instant::now();
    let (_, n) = next_pbu(&l, Duration::from_secs(3))?;
    // §6.9.1.2 (9): tried again "only after" the clock is synchronised:
    // when the retransmission timer (the bed's retx_initial_ms, 300, after
    // the PBU) says, not at once.
    ensure!(
        replied.elapsed() >= Duration::from_millis(150),
        "PBU again {:?} after the 156",
        replied.elapsed()
    );
    let ts = n.timestamp().unwrap();
    ensure!(
        mh::ts_diff_secs(ts, mh::now_timestamp()) < 5.0,
        "next timestamp follows the LMA's clock ({} s off)",
        mh::ts_diff_secs(ts, mh::now_timestamp())
    );
    Ok(())
}
both!(mag_keeps_own_clock_after_156, mag_156);

/// 5844-3.4.1-a (issue 12): the subscriber's default router is the one the
/// LMA sent in the IPv4 Default-Router Address option.
fn mag_router(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    let tail = [
        mh::gre_key(4242),
        mh::v4_hoa_reply(0, 24, HOME),
        mh::v4_default_router([10, 64, 0, 254]),
    ];
    l.reply(&rx, &pba_for(&m, 0, 10, &tail))?;
    let lease = b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    ensure!(
        lease.router == "10.64.0.254",
        "router {} (the LMA said 10.64.0.254)",
        lease.router
    );
    Ok(())
}
both!(mag_leases_the_lmas_default_router, mag_router);

/// 5213-6.9.1.2-e: a PBA that does not echo the PBU's option `kind` (its
/// byte `i` changed by `change`) is ignored (the LMA must echo HI, ATT,
/// MN-ID and link-layer identifier, §5.3.6), and the PBU is not sent
/// again: no retransmission, no binding, no lease, counted.
fn not_echoed(t: T, name: &str, kind: u8, i: usize, change: fn(u8) -> u8) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    // No DISCOVER after this one: any PBU that follows is a retransmission.
    b.client.as_mut().context("no client")?.kill9();
    let pba = pba_for(&m, 0, 10, &accept_tail(4242));
    let at = Mh::parse(&pba)
        .offset(kind)
        .context("option not in our PBA")?
        + 2
        + i;
    let mut bytes = pba.clone();
    bytes[at] = change(bytes[at]);
    ensure!(
        Mh::parse(&bytes).get(kind) != Mh::parse(&pba).get(kind),
        "option {kind} not changed"
    );
    l.reply(&rx, &bytes)?;
    b.daemon
        .wait_counter("pba_echo_mismatch", 1, Duration::from_secs(10))
        .context("not counted")?;
    // Nothing follows from it (absence can only be watched for a while):
    // a retransmission would come within 1 s.
    ensure!(
        next_pbu(&l, Duration::from_millis(1500)).is_err(),
        "the PBU was sent again"
    );
    ensure!(
        b.daemon.bindings()?.iter().all(|v| v.state != "ACTIVE"),
        "bound on a PBA that does not echo option {kind}: {:?}",
        b.daemon.bindings()?
    );
    ensure!(
        b.client().events().iter().all(|e| e.event != "bound"),
        "leased on a PBA that does not echo option {kind}"
    );
    Ok(())
}
fn mag_echo(t: T, name: &str) -> Result<()> {
    // The HI is 1 or 4: made 2.
    not_echoed(t, name, opt::HI, 1, |_| 2)
}
both!(mag_ignores_pba_with_another_handoff_indicator, mag_echo);
fn mag_echo_llid(t: T, name: &str) -> Result<()> {
    // The MAC's last octet (after two reserved ones).
    not_echoed(t, name, opt::LLID, 7, |x| x ^ 0x40)
}
both!(
    mag_ignores_pba_with_another_link_layer_identifier,
    mag_echo_llid
);

/// 5213-6.9.1.2-f, 5844-3.2.3.2-d: after a PBA of `status` — 152 (proxy
/// registration not enabled), or 170 (no IPv4 service) for this IPv4-only
/// subscriber — the MAG sends no PBU for the MN "until an administrative
/// action is taken": the client's next DISCOVERs are denied without one.
/// The operator's `pmipctl clear binding NAI` is that action: the next
/// DISCOVER registers again.
fn held_refusal(t: T, name: &str, status: u8) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    l.reply(&rx, &pba_for(&m, status, 0, &[]))?;
    // The client's next DISCOVER (after the admission back-off) is denied
    // by what the MAG remembers, with no PBU.
    b.daemon
        .wait_counter("attach_refused_held", 1, S)
        .context("the next attach was not denied on the held refusal")?;
    ensure!(
        next_pbu(&l, Duration::from_millis(300)).is_err(),
        "a PBU for the MN after status {status}"
    );
    let nai = m.nai().context("no NAI")?;
    b.daemon.ctl(&["clear", "binding", &nai])?;
    let (_, again) =
        next_pbu(&l, Duration::from_secs(15)).context("no PBU after the operator's clear")?;
    ensure!(again.nai() == Some(nai), "PBU for {:?}", again.nai());
    Ok(())
}
fn mag_152(t: T, name: &str) -> Result<()> {
    held_refusal(t, name, 152)
}
fn mag_170(t: T, name: &str) -> Result<()> {
    held_refusal(t, name, 170)
}
both!(mag_holds_proxy_registration_not_enabled, mag_152);
both!(mag_holds_ipv4_service_refused, mag_170);

// ------------------------------------------------------------ features (issue 12)

fn revoking_mag(t: T, name: &str) -> Result<Option<AccessBed>> {
    let x = AccessExtra {
        peer: "revocation = true\n",
        ..AccessExtra::default()
    };
    AccessBed::start_with(t, &tag(t, name), x)
}

/// 5846-9.2-b: with `peers[].revocation` the MAG revokes a leaving
/// subscriber with a BRI (B.R. type 1, trigger 6 access network session
/// termination, P, MN-ID and LLID), retransmitted with the same sequence
/// number until the LMA's BRA; then the binding is gone.
fn mag_revoke(t: T, name: &str) -> Result<()> {
    let Some(mut b) = revoking_mag(t, name)? else {
        return Ok(());
    };
    let cap = b.capture("mbri")?;
    let l = b.anchor_sock()?;
    let (_, first) = register(&mut b, &l, 10)?;
    wait_bindings(&b.daemon, 1)?;
    b.client().release()?;
    let rx = l
        .recv_where(Duration::from_secs(5), is_type(mh::BR))
        .context("no BRI from the MAG after DHCP RELEASE")?;
    let bri = Mh::parse(&rx.bytes);
    bri.assert_all_aligned();
    ensure!(
        bri.fixed[0] == 1,
        "B.R. type {} (want 1, BRI)",
        bri.fixed[0]
    );
    ensure!(bri.fixed[1] == 6, "trigger {} (want 6)", bri.fixed[1]);
    let flags = bri.u16_at(4);
    ensure!(
        flags & mh::BRI_P != 0 && flags & mh::BRI_G == 0,
        "BRI flags {flags:#06x}: P, not G"
    );
    ensure!(bri.nai() == first.nai(), "BRI MN-ID {:?}", bri.nai());
    ensure!(
        bri.get(opt::LLID).map(|d| &d[2..]) == Some(&sub_mac()[..]),
        "BRI LLID {:?}",
        bri.get(opt::LLID)
    );
    let again = l
        .recv_where(Duration::from_secs(5), is_type(mh::BR))
        .with_context(|| format!("BRI not retransmitted: {}", b.daemon.log_tail(20)))?;
    ensure!(
        Mh::parse(&again.bytes).u16_at(2) == bri.u16_at(2),
        "retransmission changed the sequence number"
    );
    l.reply(
        &rx,
        &mh::bra(
            0,
            bri.u16_at(2),
            mh::BRI_P,
            &[mh::mn_id(&bri.nai().unwrap())],
        ),
    )?;
    wait_bindings(&b.daemon, 0)?;
    ensure!(
        l.recv_where(Duration::from_millis(900), is_type(mh::BR))
            .is_none(),
        "BRI retransmitted after the BRA"
    );
    ensure!(
        l.recv_where(Duration::from_millis(100), is_type(mh::BU))
            .is_none(),
        "a de-registration PBU besides the BRI"
    );
    cap.check(2)?;
    Ok(())
}
both!(mag_revokes_on_release, mag_revoke);

/// 5846-9.2-b (bulk): at the end of service (`pmipctl shutdown
/// --deregister`; a plain stop keeps the bindings for the restart) the MAG
/// revokes every binding through the LMA with one global BRI (P and G set,
/// administrative trigger).
fn mag_bulk(t: T, name: &str) -> Result<()> {
    let Some(mut b) = revoking_mag(t, name)? else {
        return Ok(());
    };
    let cap = b.capture("gbri")?;
    let l = b.anchor_sock()?;
    register(&mut b, &l, 10)?;
    wait_bindings(&b.daemon, 1)?;
    b.daemon.ctl(&["shutdown", "--deregister"])?;
    let rx = l
        .recv_where(Duration::from_secs(5), is_type(mh::BR))
        .context("no global BRI at shutdown")?;
    let bri = Mh::parse(&rx.bytes);
    // RFC 5846 §9.2: G, the trigger "Per-Peer Policy" (128), and the MAG's
    // identity in an MN-ID option (the proxy-CoA it registers from).
    ensure!(
        bri.fixed[0] == 1 && bri.fixed[1] == 128,
        "B.R. type {} trigger {}",
        bri.fixed[0],
        bri.fixed[1]
    );
    ensure!(
        bri.nai().is_some_and(|n| !n.is_empty()),
        "global BRI without the MAG's identity (MN-ID)"
    );
    let flags = bri.u16_at(4);
    ensure!(
        flags & (mh::BRI_P | mh::BRI_G) == mh::BRI_P | mh::BRI_G,
        "global BRI flags {flags:#06x}: P and G"
    );
    ensure!(
        l.recv_where(Duration::from_millis(300), is_type(mh::BU))
            .is_none(),
        "a de-registration PBU besides the global BRI"
    );
    cap.check(1)?;
    Ok(())
}
both!(mag_bulk_revocation_on_shutdown, mag_bulk);

/// 5846-9.1-d: a global BRI from the LMA (G, trigger Per-Peer Policy, no
/// options: RFC 5846 §9.1) revokes every binding with it; the BRA echoes G
/// and P with status 0. (A per-MN trigger with G is refused, 5846-6.2.1-a.)
fn mag_global(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let cap = b.capture("lgbri")?;
    let l = b.anchor_sock()?;
    let (rx, _) = register(&mut b, &l, 10)?;
    wait_bindings(&b.daemon, 1)?;
    l.reply(&rx, &mh::bri(128, 21, mh::BRI_P | mh::BRI_G, &[]))?;
    let a = l.recv_where(S, is_type(mh::BR)).context("no BRA")?;
    let bra = Mh::parse(&a.bytes);
    ensure!(
        bra.fixed[0] == 2 && bra.fixed[1] == 0 && bra.u16_at(2) == 21,
        "BRA type {} status {} seq {}",
        bra.fixed[0],
        bra.fixed[1],
        bra.u16_at(2)
    );
    // RFC 5846 §6.2: the BRA's P, V and G are the BRI's (G the third bit).
    ensure!(
        bra.u16_at(4) & 0xe000 == mh::BRI_P | mh::BRI_G,
        "BRA flags {:#06x}: P and G, not V",
        bra.u16_at(4)
    );
    wait_bindings(&b.daemon, 0)?;
    cap.check(1)?;
    Ok(())
}
both!(mag_answers_global_bri, mag_global);

/// 5846-9.1-c: a global BRI for "Revoking Mobility Node Local Policy" (129)
/// names the mobile nodes: without an MN-ID, or with one we serve no
/// binding of, it is refused with 131 (Revoked Mobile Nodes Identity
/// Required) and nothing is revoked; with the subscriber's NAI, that binding
/// goes (before: the first revoked every binding with the LMA).
fn mag_global_129(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    let (rx, m) = register(&mut b, &l, 10)?;
    wait_bindings(&b.daemon, 1)?;
    let nai = m.nai().context("no MN-ID in the PBU")?;
    let flags = mh::BRI_P | mh::BRI_G;
    let cases: [(u16, Vec<Opt>, u8); 3] = [
        (31, vec![], 131),
        (32, vec![mh::mn_id("someone-else@example.net")], 131),
        (33, vec![mh::mn_id(&nai)], 0),
    ];
    for (seq, opts, want) in cases {
        l.reply(&rx, &mh::bri(129, seq, flags, &opts))?;
        let a = l.recv_where(S, is_type(mh::BR)).context("no BRA")?;
        let bra = Mh::parse(&a.bytes);
        ensure!(
            bra.fixed[0] == 2 && bra.fixed[1] == want && bra.u16_at(2) == seq,
            "BRA {seq}: type {} status {} (want {want}) seq {}",
            bra.fixed[0],
            bra.fixed[1],
            bra.u16_at(2)
        );
        if want != 0 {
            ensure!(
                wait_bindings(&b.daemon, 1)?.len() == 1,
                "BRA {seq}: the binding went"
            );
        }
    }
    wait_bindings(&b.daemon, 0)?;
    Ok(())
}
both!(
    mag_global_node_policy_bri_names_its_mobile_nodes,
    mag_global_129
);

/// 5213-6.9.1.1-d (per interface): `interfaces.access[].access_technology`
/// sets the PBU's Access Technology Type (IEEE 802.3 = 3).
fn mag_att(t: T, name: &str) -> Result<()> {
    let x = AccessExtra {
        iface: "access_technology = \"ieee-802.3\"\n",
        ..AccessExtra::default()
    };
    let Some(mut b) = AccessBed::start_with(t, &tag(t, name), x)? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (_, m) = next_pbu(&l, Duration::from_secs(5))?;
    ensure!(
        m.get(opt::ATT) == Some(&[0, 3][..]),
        "ATT {:?} (want 3, IEEE 802.3)",
        m.get(opt::ATT)
    );
    Ok(())
}
both!(mag_access_technology_per_interface, mag_att);

/// 5213-5.5-a (MAG side): with `timestamp_based_approach = false` the PBU
/// carries no Timestamp; its sequence number orders it.
fn mag_seq(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "timestamp_based_approach = false\n")?
    else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    ensure!(
        m.timestamp().is_none(),
        "Timestamp with the sequence-number scheme"
    );
    let mut o = vec![mh::mn_id(&m.nai().unwrap())];
    o.push(mh::llid(sub_mac()));
    o.extend(accept_tail(4242));
    l.reply(&rx, &mh::pba(0, mh::BA_P, m.u16_at(0), 10, &o))?;
    b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    Ok(())
}
both!(mag_sequence_number_scheme, mag_seq);

/// 5847-4-a/b (in pmipd): the MAG shows its LMA's heartbeat state and
/// Restart Counter in `show tunnels`; with `heartbeat_interval_s = 0` it
/// sends no heartbeat and the state is "-".
fn mag_hb_show(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "heartbeat_interval_s = 1\n")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    register(&mut b, &l, 10)?;
    let rx = l
        .recv_where(S, is_heartbeat(false, false))
        .context("no Heartbeat Request from the MAG")?;
    let seq = u32::from_be_bytes(Mh::parse(&rx.bytes).fixed[2..6].try_into().unwrap());
    l.reply(&rx, &mh::heartbeat(true, seq, &[mh::restart_counter(9)]))?;
    let up = wait_tunnel(&b.daemon, b.t.addr(10), S, |x| x.state == "UP")?;
    ensure!(
        up.restart_counter == Some(9),
        "tunnel {up:?}: restart counter 9"
    );
    wait_tunnel(&b.daemon, b.t.addr(10), Duration::from_secs(8), |x| {
        x.state == "DOWN"
    })?;
    Ok(())
}
both!(mag_heartbeat_state_in_show_tunnels, mag_hb_show);

fn mag_hb_off(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "heartbeat_interval_s = 0\n")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    register(&mut b, &l, 10)?;
    ensure!(
        l.recv_where(Duration::from_millis(2500), is_type(mh::HEARTBEAT))
            .is_none(),
        "a Heartbeat with heartbeat_interval_s = 0"
    );
    ensure!(
        tunnels(&b.daemon)?.iter().all(|x| x.state == "-"),
        "tunnel state with heartbeats off: {:?}",
        tunnels(&b.daemon)?
    );
    Ok(())
}
both!(mag_heartbeat_off, mag_hb_off);

/// 5847-3.2-b: after a restart that lost its binding update list (the
/// bed's memory store) the MAG sends its LMA an unsolicited Heartbeat
/// Response — U and R set, its new Restart Counter — so that the LMA drops
/// the stale bindings at once, not at its next heartbeat.
fn mag_announce(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "heartbeat_interval_s = 30\n")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    let (pbu, _) = register(&mut b, &l, 10)?;
    // The MAG's counter, from its answer to our request.
    let ask = |l: &PeerSock, seq: u32| -> Result<u32> {
        l.reply(&pbu, &mh::heartbeat(false, seq, &[mh::restart_counter(1)]))?;
        let rx = l
            .recv_where(S, is_heartbeat(false, true))
            .context("no Heartbeat Response from the MAG")?;
        restart_counter_of(&rx)
    };
    let before = ask(&l, 1)?;
    b.daemon.stop();
    let cfg = b.dir.0.join("access.toml");
    let sock = b.dir.0.join("access.sock");
    b.daemon = pmip_tests::lab::Daemon::start(&b.gw, "access", &cfg, &sock, "info")?;
    let rx = l
        .recv_where(S, is_heartbeat(true, true))
        .context("no unsolicited Heartbeat Response after the restart")?;
    ensure!(rx.from == b.gateway(), "from {}", rx.from);
    Mh::parse(&rx.bytes).assert_all_aligned();
    let announced = restart_counter_of(&rx)?;
    let now = ask(&l, 2)?;
    ensure!(
        announced == now && now != before,
        "announced {announced}, answers with {now}, before the restart {before}"
    );
    Ok(())
}
both!(mag_announces_a_restart_that_lost_state, mag_announce);

/// 5213-6.9.1.1 (RFC 5149 Service Selection) and the DHCP lease: the
/// profile's `apn` goes in the PBU's Service Selection option (type 20) and
/// its `dns` servers in the lease.
fn mag_profile(t: T, name: &str) -> Result<()> {
    let x = AccessExtra {
        profile: "apn = \"internet.example\"\ndns = [\"192.0.2.53\"]\n",
        ..AccessExtra::default()
    };
    let Some(mut b) = AccessBed::start_with(t, &tag(t, name), x)? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    ensure!(
        m.get(20) == Some(&b"internet.example"[..]),
        "Service Selection {:?}",
        m.get(20)
    );
    l.reply(&rx, &pba_for(&m, 0, 10, &accept_tail(4242)))?;
    let lease = b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    ensure!(
        lease.dns.contains("192.0.2.53"),
        "lease DNS {:?}",
        lease.dns
    );
    Ok(())
}
both!(mag_profile_apn_and_dns, mag_profile);

// ------------------------------------------------------------ rows untested before

/// 5213-6.9.1.2-d: a PBA whose sequence number is not the PBU's is ignored
/// (no lease); the right one is then taken.
fn mag_seq_mismatch(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    // The client's first DISCOVER may wait a while on this loaded machine.
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    let mut wrong = pba_for(&m, 0, 10, &accept_tail(4242));
    let bad_seq = m.u16_at(0).wrapping_add(100).to_be_bytes();
    wrong[8..10].copy_from_slice(&bad_seq);
    l.reply(&rx, &wrong)?;
    ensure!(
        b.client()
            .wait_event("bound", 1, Duration::from_millis(700))
            .is_err(),
        "leased from a PBA with another sequence number"
    );
    // The next PBU (a retransmission) is answered properly.
    let (rx, m) = next_pbu(&l, Duration::from_secs(3))?;
    l.reply(&rx, &pba_for(&m, 0, 10, &accept_tail(4242)))?;
    b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    Ok(())
}
both!(mag_ignores_pba_with_other_sequence, mag_seq_mismatch);

/// 5213-6.9.4-c: without a PBA the MAG stops after MaxRetransmissions (3
/// here: four PBUs of one attach) and the attach fails.
fn mag_gives_up(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (_, first) = next_pbu(&l, Duration::from_secs(5))?;
    let ts0 = first.timestamp().unwrap();
    let mut n = 1;
    // PBUs of this attach: timestamps within its retransmission span (~3.3 s).
    while let Ok((_, m)) = next_pbu(&l, Duration::from_secs(2)) {
        if m.timestamp().unwrap() - ts0 > (4 << 16) {
            break;
        }
        n += 1;
    }
    ensure!(
        n == 4,
        "{n} PBUs for one attach (1 + max_retransmissions 3)"
    );
    let s = b.daemon.stats()?;
    ensure!(
        s.groups
            .values()
            .any(|g| g.get("registration_timeouts").is_some_and(|v| *v >= 1)),
        "no registration timeout counted: {:?}",
        s.groups
    );
    ensure!(
        b.client().events().iter().all(|e| e.event != "bound"),
        "leased without a PBA"
    );
    Ok(())
}
both!(mag_stops_after_max_retransmissions, mag_gives_up);

/// 5844-3.4-a: the IPv4 DHCP Support Mode option is the LMA's, in the PBA
/// (RFC 5844 §3.3.4): our PBU has none. A PBA without it asks the MAG to
/// relay DHCP (§3.1.3); pmipd serves DHCP itself all the same (the lease is
/// the LMA's address) and counts it. 5844-4-d: over IPv4 transport the PBU
/// carries the IPv4 Care-of Address option with the MAG's IPv4 address.
fn mag_v4_opts(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    ensure!(
        m.get(opt::V4_DHCP_MODE).is_none(),
        "IPv4 DHCP Support Mode option {:?} in a PBU (it is a PBA option)",
        m.get(opt::V4_DHCP_MODE)
    );
    if t == T::Udp5436 {
        let d = m
            .get(opt::V4_COA)
            .context("no IPv4 Care-of Address option")?;
        ensure!(d[2..] == [10, 255, 0, 1], "IPv4 CoA {d:?}");
        m.assert_aligned(opt::V4_COA, 4, 0);
    }
    l.reply(&rx, &pba_for(&m, 0, 10, &accept_tail(4242)))?;
    let lease = b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    ensure!(lease.ip == "10.64.0.57", "leased {}", lease.ip);
    // Counted when the PBA was taken, before the lease: no wait needed.
    b.daemon
        .wait_counter("pba_dhcp_relay_asked", 1, Duration::ZERO)
        .context("the relay request not counted")?;
    Ok(())
}
both!(mag_dhcp_mode_and_ipv4_coa, mag_v4_opts);

/// The home network prefix the test's LMA gives (2001:db8:64:1::/64).
const HNP: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// 5213-6.9.1.1-g: an IPv6 subscriber (profile `service = "ipv6"`) whose
/// own kernel sends a Router Solicitation: the MAG's first PBU asks with one
/// HNP option ::/0 and no IPv4 Home Address Request (RFC 5844 §3.1.1 is
/// for IPv4 service); the PBA's prefix reaches the subscriber in an RA (its
/// SLAAC address is in it, RFC 5213 §6.7); the refresh renews that prefix.
fn mag_hnp(t: T, name: &str) -> Result<()> {
    let x = AccessExtra {
        profile: "service = \"ipv6\"\n",
        ..AccessExtra::default()
    };
    let Some(b) = AccessBed::start_with(t, &tag(t, name), x)? else {
        return Ok(());
    };
    let cap = b.capture("hnp")?;
    let l = b.anchor_sock()?;
    b.solicit()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(15))?;
    ensure!(
        m.count(opt::HNP) == 1,
        "{} HNP options in the first PBU",
        m.count(opt::HNP)
    );
    let d = m.get(opt::HNP).context("no HNP")?;
    ensure!(
        d[1] == 0 && d[2..18] == [0; 16],
        "first PBU's HNP {}/{} (RFC 5213 §6.9.1.1: ::/0)",
        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&d[2..18])?),
        d[1]
    );
    m.assert_aligned(opt::HNP, 8, 4);
    ensure!(
        m.v4_hoa_req().is_none(),
        "IPv4 HoA request {:?} for an IPv6-only subscriber",
        m.v4_hoa_req()
    );
    ensure!(m.gre_key().is_some(), "no GRE key");
    // Lifetime 1 unit (4 s): the refresh comes within it.
    let tail = [mh::gre_key(4242), mh::hnp(64, HNP)];
    l.reply(&rx, &pba_for(&m, 0, 1, &tail))?;
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let addr = loop {
        let a = b.global_v6()?;
        if let Some(a) = a.iter().find(|a| a.starts_with("2001:db8:64:1:")) {
            break a.clone();
        }
        ensure!(
            std::time::Instant::now() < end,
            "no SLAAC address in 2001:db8:64:1::/64 on the subscriber: {a:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(addr.ends_with("/64"), "SLAAC address {addr}");
    let (_, r) = next_pbu(&l, Duration::from_secs(5)).context("no refresh within 4 s")?;
    ensure!(r.u16_at(4) > 0, "refresh lifetime 0");
    let d = r.get(opt::HNP).context("no HNP in the refresh")?;
    ensure!(
        r.count(opt::HNP) == 1 && d[1] == 64 && d[2..18] == HNP,
        "refresh HNP {}/{} (the PBA gave 2001:db8:64:1::/64)",
        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&d[2..18])?),
        d[1]
    );
    cap.check(2)?;
    Ok(())
}
both!(mag_asks_for_a_prefix_then_renews_it, mag_hnp);
