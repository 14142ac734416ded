//! PMIPv6 conformance of our MAG (issue 12, docs/conformance.md): busybox
//! udhcpc's DHCP DISCOVER makes `pmipd run` register the subscriber with the
//! test's LMA, which answers from bytes written from the RFC figures, over
//! both transports (raw MH over IPv6, UDP 5436 over IPv4). The LMA side is
//! conformance_pmipv6.rs; ignored tests name the row whose departure they show.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::both;
use pmip_tests::conformance::bed::{sub_mac, AccessBed, T};
use pmip_tests::conformance::mh::{self, opt, Mh};
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
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
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

/// 5847-3-a, 5847-4-a: the MAG probes its LMA and answers the LMA's probes.
fn mag_hb(t: T, name: &str) -> Result<()> {
    let Some(b) = AccessBed::start(t, &tag(t, name), "heartbeat_interval_s = 1\n")? else {
        return Ok(());
    };
    let cap = b.capture("hb")?;
    let l = b.anchor_sock()?;
    let rx = l
        .recv_where(S, is_type(mh::HEARTBEAT))
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
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
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
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
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
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
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
/// clock instead of adopting the LMA's timestamp.
fn mag_156(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AccessBed::start(t, &tag(t, name), "")? else {
        return Ok(());
    };
    let l = b.anchor_sock()?;
    b.dhcp()?;
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
    let far = mh::now_timestamp() + (1000 << 16);
    let o = [
        mh::mn_id(&m.nai().unwrap()),
        mh::llid(sub_mac()),
        mh::timestamp(far),
    ];
    l.reply(&rx, &mh::pba(156, mh::BA_P, m.u16_at(0), 0, &o))?;
    let (_, n) = next_pbu(&l, Duration::from_secs(3))?;
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
    let (rx, m) = next_pbu(&l, Duration::from_secs(5))?;
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
