//! PMIPv6 conformance (issue 12, docs/conformance.md): a real `pmipd run`
//! against the other side played from bytes written here from the RFC
//! figures (pmip_tests::conformance::mh), over both transports — IPv6 raw
//! Mobility Header and IPv4 UDP 5436 (RFC 5844 §4). Our LMA answers the
//! test's MAG; our MAG, triggered by busybox udhcpc, is answered by the
//! test's LMA. Every exchange is captured and decoded by tshark.
//!
//! Each test names the rows of docs/conformance.md it covers. Tests marked
//! `#[ignore = "conformance <row>: ..."]` show a departure from the RFC that
//! the code still has; they fail until it is fixed.
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::both;
use pmip_tests::conformance::bed::{sub_mac, AnchorBed, PeerSock, Rx, T};
use pmip_tests::conformance::mh::{self, opt, Mh, Opt};
use pmip_tests::conformance::v6::*;

// ------------------------------------------------------------ our LMA

/// 5213-5.3.1-a..f, 5213-5.3.2-a, 5213-5.3.6-a..d, 5844-3.1.3-a..c,
/// 5844-3.4-b, 5845-4.2-a, 5213-5.5-b: an accepted PBA, field by field.
fn lma_accepts(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("accept")?;
    let p = b.peer(1)?;
    let ts = mh::now_timestamp();
    let m = exchange(&b, &p, 11, 10, &mag_opts(NAI, ts, 1))?;
    ensure!(
        m.mh_type == mh::BA && m.fixed[0] == 0,
        "status {} (want 0)",
        m.fixed[0]
    );
    let life = m.u16_at(4);
    ensure!(
        life > 0 && life <= 10,
        "granted lifetime {life} (requested 10)"
    );
    ensure!(m.nai().as_deref() == Some(NAI), "MN-ID not echoed");
    let echo = |k: u8, want: &[u8]| -> Result<()> {
        ensure!(
            m.get(k) == Some(want),
            "option {k} echoed as {:?}, want {want:?}",
            m.get(k)
        );
        Ok(())
    };
    let mut ll = vec![0, 0];
    ll.extend_from_slice(&sub_mac());
    echo(opt::LLID, &ll)?;
    echo(opt::ATT, &[0, 4])?;
    echo(opt::HI, &[0, 1])?;
    ensure!(
        m.timestamp() == Some(ts),
        "Timestamp not echoed (RFC 5213 §5.3.6)"
    );
    let key = m.gre_key().context("no GRE Key option (RFC 5845 §4.2)")?;
    ensure!(key != 0, "uplink key 0");
    let (st, plen, a) = m
        .v4_hoa_reply()
        .context("no IPv4 Home Address Reply (RFC 5844 §3.1.3)")?;
    ensure!(
        st == 0 && plen == 24,
        "IPv4 HoA reply status {st} plen {plen}"
    );
    ensure!(
        a[..3] == [10, 64, 0] && a[3] > 1 && a[3] < 255,
        "home address {a:?}"
    );
    ensure!(
        m.v4_default_router() == Some([10, 64, 0, 1]),
        "default router {:?}",
        m.v4_default_router()
    );
    ensure!(
        m.count(opt::HNP) == 0,
        "HNP in a PBA for an IPv4-only request (RFC 5844 §3.1.3)"
    );
    // RFC 5844 §3.3.4: S set, the MAG is the DHCP server (without the
    // option it would relay, §3.1.3, and there is no server to relay to).
    ensure!(
        m.get(opt::V4_DHCP_MODE) == Some(&[0, 1][..]),
        "IPv4 DHCP Support Mode {:?} (want S set)",
        m.get(opt::V4_DHCP_MODE)
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(
        v[0].nai == NAI && v[0].gre_key_down == MAG_KEY && v[0].gre_key_up == key,
        "{v:?}"
    );
    ensure!(v[0].home_v4.map(|h| h.octets()) == Some(a), "{v:?}");
    cap.check(2)?;
    Ok(())
}
both!(lma_accepts_pbu, lma_accepts);

/// 5213-5.3.3-a/b: a refresh keeps the binding (same key and address).
fn lma_refresh(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m1 = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    let mut o = mag_opts(NAI, mh::now_timestamp() + 1, 5);
    let a = m1.v4_hoa_reply().unwrap().2;
    o.retain(|x| x.kind != opt::V4_HOA_REQ);
    o.push(mh::v4_hoa_req(24, a));
    let m2 = exchange(&b, &p, 2, 10, &o)?;
    ensure!(m2.fixed[0] == 0, "refresh status {}", m2.fixed[0]);
    ensure!(
        m2.gre_key() == m1.gre_key(),
        "uplink key changed on refresh"
    );
    ensure!(
        m2.v4_hoa_reply().map(|r| r.2) == Some(a),
        "home address changed on refresh"
    );
    wait_bindings(&b.daemon, 1)?;
    Ok(())
}
both!(lma_refresh_keeps_binding, lma_refresh);

/// 5213-5.3.5-a/b: lifetime 0 removes the binding; the PBA has status 0, lifetime 0.
fn lma_dereg(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("dereg")?;
    let p = b.peer(1)?;
    let m1 = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    let a = m1.v4_hoa_reply().unwrap().2;
    let mut o = without(mag_opts(NAI, mh::now_timestamp() + 1, 4), opt::GRE_KEY);
    o.retain(|x| x.kind != opt::V4_HOA_REQ);
    o.push(mh::v4_hoa_req(24, a));
    let m = exchange(&b, &p, 2, 0, &o)?;
    ensure!(
        m.fixed[0] == 0 && m.u16_at(4) == 0,
        "dereg PBA status {} lifetime {}",
        m.fixed[0],
        m.u16_at(4)
    );
    wait_bindings(&b.daemon, 0)?;
    cap.check(4)?;
    Ok(())
}
both!(lma_deregistration, lma_dereg);

/// 5844-3.1.2.6-a (issue 12 #1): the de-registration PBA carries the IPv4
/// Home Address Reply and the IPv4 Default-Router Address.
fn lma_dereg_v4_options(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m1 = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    let a = m1.v4_hoa_reply().unwrap().2;
    let mut o = without(mag_opts(NAI, mh::now_timestamp() + 1, 4), opt::V4_HOA_REQ);
    o.push(mh::v4_hoa_req(24, a));
    let m = exchange(&b, &p, 2, 0, &o)?;
    ensure!(
        m.v4_hoa_reply().map(|r| r.2) == Some(a),
        "dereg PBA without the IPv4 HoA Reply"
    );
    ensure!(
        m.v4_default_router().is_some(),
        "dereg PBA without the IPv4 Default-Router Address"
    );
    Ok(())
}
both!(lma_dereg_pba_has_ipv4_options, lma_dereg_v4_options);

/// The rejection paths of RFC 5213 §5.3.1 / §8.9, RFC 5844 §3.1.3, RFC 5845 §4.2:
/// one PBU each, the status it must get, and the generic PBA checks.
fn lma_rejects(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("reject")?;
    let p = b.peer(1)?;
    let now = mh::now_timestamp;
    let cases: Vec<(&str, Vec<Opt>, u8)> = vec![
        (
            "5213-5.3.1-c no MN-ID",
            without(mag_opts(NAI, now(), 1), opt::MN_ID),
            160,
        ),
        (
            "5213-5.3.1-e no HI",
            without(mag_opts("a@x", now(), 1), opt::HI),
            161,
        ),
        (
            "5213-5.3.1-f no ATT",
            without(mag_opts("b@x", now(), 1), opt::ATT),
            162,
        ),
        (
            "5213-5.3.1-d no HNP, no IPv4 request",
            without(mag_opts("c@x", now(), 1), opt::V4_HOA_REQ),
            158,
        ),
        (
            "5213-5.5-c stale timestamp",
            mag_opts("d@x", now() - (3600 << 16), 1),
            156,
        ),
        (
            "5845-4.2-b no GRE key",
            without(mag_opts("e@x", now(), 1), opt::GRE_KEY),
            163,
        ),
        (
            "5844-3.1.3-d unauthorised IPv4 home address",
            {
                let mut o = without(mag_opts("f@x", now(), 1), opt::V4_HOA_REQ);
                o.push(mh::v4_hoa_req(24, [10, 64, 0, 200]));
                o
            },
            171,
        ),
        (
            "5844-3.1.3-e IPv6 prefix without IPv6 service",
            {
                let mut o = without(mag_opts("g@x", now(), 1), opt::V4_HOA_REQ);
                o.push(mh::hnp(0, [0; 16]));
                o
            },
            172,
        ),
    ];
    let mut seq = 100;
    for (what, o, want) in &cases {
        seq += 1;
        let m = exchange(&b, &p, seq, 10, o).with_context(|| what.to_string())?;
        ensure!(
            m.fixed[0] == *want,
            "{what}: status {} (want {want})",
            m.fixed[0]
        );
        ensure!(
            m.u16_at(4) == 0 || *want < 128,
            "{what}: rejected PBA with lifetime {}",
            m.u16_at(4)
        );
        // RFC 5213 §5.3.6: the mandatory options are in every PBA — a
        // zero-length MN-ID, HI 0, ATT 0 where the PBU had none; its HNPs,
        // or one ALL_ZERO (RFC 5844 §3.1.2.6: not with an IPv4 request).
        let mn = m
            .get(opt::MN_ID)
            .with_context(|| format!("{what}: no MN-ID"))?;
        if !o.iter().any(|x| x.kind == opt::MN_ID) {
            ensure!(
                mn.len() == 1,
                "{what}: MN-ID {mn:?} (want a zero-length identifier)"
            );
        }
        for kind in [opt::HI, opt::ATT] {
            let v = m
                .get(kind)
                .with_context(|| format!("{what}: no option {kind}"))?;
            if !o.iter().any(|x| x.kind == kind) {
                ensure!(v == [0, 0], "{what}: option {kind} {v:?} (want 0)");
            }
        }
        if !o
            .iter()
            .any(|x| x.kind == opt::HNP || x.kind == opt::V4_HOA_REQ)
        {
            ensure!(
                m.count(opt::HNP) == 1
                    && m.get(opt::HNP)
                        .is_some_and(|h| h[1] == 0 && h[2..].iter().all(|b| *b == 0)),
                "{what}: HNP {:?} (want one ALL_ZERO)",
                m.get(opt::HNP)
            );
        }
        if *want == 156 {
            let lts = m
                .timestamp()
                .context("156 without the LMA's Timestamp (RFC 5213 §5.5)")?;
            ensure!(
                mh::ts_diff_secs(lts, now()) < 5.0,
                "{what}: LMA timestamp {lts:x} is not its current time"
            );
        }
    }
    // 5213-5.3.1-b: a MAG the LMA does not know.
    let stranger = b.peer(3)?;
    let m = exchange(&b, &stranger, 7, 10, &mag_opts("h@x", now(), 1))?;
    ensure!(
        m.fixed[0] == 154,
        "unknown MAG: status {} (want 154)",
        m.fixed[0]
    );
    // RFC 5213 §5.3.1: the checks in their order — a missing MN-ID (step
    // 4) before the MAG's authorisation (6), an unknown MN (7) before a
    // missing HNP/HI/ATT (10-12).
    let m = exchange(
        &b,
        &stranger,
        8,
        10,
        &without(mag_opts("h@x", now(), 1), opt::MN_ID),
    )?;
    ensure!(
        m.fixed[0] == 160,
        "unknown MAG, no MN-ID: status {} (want 160)",
        m.fixed[0]
    );
    // 5213-5.5-d: an older timestamp than the one accepted.
    let ts = now();
    ensure!(
        exchange(&b, &p, 300, 10, &mag_opts("i@x", ts, 1))?.fixed[0] == 0,
        "accept before replay"
    );
    let m = exchange(&b, &p, 301, 10, &mag_opts("i@x", ts - (1 << 16), 5))?;
    ensure!(
        m.fixed[0] == 157,
        "older timestamp: status {} (want 157)",
        m.fixed[0]
    );
    // §5.5: the 157 carries the LMA's current time, not the PBU's.
    let lts = m.timestamp().context("157 without a Timestamp")?;
    ensure!(
        mh::ts_diff_secs(lts, now()) < 5.0,
        "157: Timestamp {lts:x} is not the LMA's current time"
    );
    ensure!(
        bindings(&b.daemon).len() <= 1,
        "a rejected PBU left a binding"
    );
    cap.check(2 * (cases.len() + 4))?;
    Ok(())
}
both!(lma_rejection_statuses, lma_rejects);

/// 5844-3.1.2.6-b (issue 12 #2): a rejecting PBA still carries the IPv4 Home
/// Address Reply for an IPv4 request, with a failure status.
fn lma_reject_echo_v4(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let mut o = without(mag_opts(NAI, mh::now_timestamp(), 1), opt::V4_HOA_REQ);
    o.push(mh::v4_hoa_req(24, [10, 64, 0, 200]));
    let m = exchange(&b, &p, 1, 10, &o)?;
    ensure!(m.fixed[0] == 171, "status {}", m.fixed[0]);
    let (st, _, _) = m
        .v4_hoa_reply()
        .context("rejecting PBA without the IPv4 HoA Reply")?;
    ensure!(st >= 128, "IPv4 HoA Reply status {st} in a rejection");
    Ok(())
}
both!(lma_rejection_echoes_ipv4_request, lma_reject_echo_v4);

/// 5213-5.5-a/e (issue 12 #2): a PBU without a Timestamp (sequence-number
/// scheme) is processed; the PBA carries no Timestamp.
fn lma_seq_scheme(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &without(mag_opts(NAI, 0, 1), opt::TIMESTAMP))?;
    ensure!(
        m.fixed[0] == 0,
        "PBU without Timestamp: status {} (want 0)",
        m.fixed[0]
    );
    ensure!(
        m.get(opt::TIMESTAMP).is_none(),
        "PBA carries a Timestamp for the sequence-number scheme"
    );
    Ok(())
}
both!(lma_sequence_number_scheme, lma_seq_scheme);

/// A bed whose peer 1's first PBU — the usual options and `extra` — was
/// answered with status `want`.
fn extra_option_refused(t: T, name: &str, extra: Opt, want: u8) -> Result<Option<AnchorBed>> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(None);
    };
    let p = b.peer(1)?;
    let mut o = mag_opts(NAI, mh::now_timestamp(), 1);
    o.push(extra);
    let m = exchange(&b, &p, 1, 10, &o)?;
    ensure!(
        m.fixed[0] == want,
        "with {:?} added: status {} (want {want})",
        o.last(),
        m.fixed[0]
    );
    Ok(Some(b))
}

/// 5844-3.1.3-f: two IPv4 Home Address Request options are refused with 173.
fn lma_two_v4(t: T, name: &str) -> Result<()> {
    let Some(_bed) = extra_option_refused(t, name, mh::v4_hoa_req(0, [0; 4]), 173)? else {
        return Ok(());
    };
    Ok(())
}
both!(lma_two_ipv4_requests_refused, lma_two_v4);

/// 5213-5.3.1-g (RFC 6275 §9.2): an unknown MH type gets a Binding Error,
/// status 2; an unknown mobility option is skipped (RFC 6275 §6.2.1).
fn lma_unknown(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("unknown")?;
    let p = b.peer(1)?;
    p.send(b.anchor(), b.port(), &mh::build(99, [0; 6], &[]))?;
    let rx = p
        .recv_where(S, is_type(mh::BE))
        .context("no Binding Error for MH type 99")?;
    let be = Mh::parse(&rx.bytes);
    ensure!(
        be.fixed[0] == 2,
        "Binding Error status {} (want 2)",
        be.fixed[0]
    );
    let mut o = mag_opts(NAI, mh::now_timestamp(), 1);
    o.push(mh::raw(200, &[1, 2, 3]));
    let m = exchange(&b, &p, 1, 10, &o)?;
    ensure!(
        m.fixed[0] == 0,
        "PBU with an unknown option: status {}",
        m.fixed[0]
    );
    // A plain MIPv6 BU (no P flag) is not served: no PBA, no binding.
    p.send(
        b.anchor(),
        b.port(),
        &mh::pbu(2, mh::BU_A, 10, &mag_opts("z@x", mh::now_timestamp(), 1)),
    )?;
    ensure!(
        p.recv_where(Duration::from_millis(500), is_ba).is_none(),
        "answered a BU without P"
    );
    cap.check(3)?;
    Ok(())
}
both!(lma_unknown_type_and_option, lma_unknown);

/// 5847-3-a/b, 5847-5.1-a: a Heartbeat Request is answered (R set, same
/// sequence number, Restart Counter); one from an unknown peer is not.
fn lma_hb(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("hb")?;
    let p = b.peer(1)?;
    p.send(
        b.anchor(),
        b.port(),
        &mh::heartbeat(false, 77, &[mh::restart_counter(9)]),
    )?;
    let rx = p
        .recv_where(S, is_type(mh::HEARTBEAT))
        .context("no Heartbeat Response")?;
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    ensure!(
        m.fixed[1] & 0x01 == 1 && m.fixed[1] & 0x02 == 0,
        "flags {:#x}: want R, not U",
        m.fixed[1]
    );
    ensure!(m.fixed[2..6] == 77u32.to_be_bytes(), "sequence not echoed");
    ensure!(m.get(opt::RESTART_COUNTER).is_some(), "no Restart Counter");
    let stranger = b.peer(3)?;
    stranger.send(b.anchor(), b.port(), &mh::heartbeat(false, 5, &[]))?;
    ensure!(
        stranger.recv(Duration::from_millis(500)).is_none(),
        "answered an unknown peer"
    );
    cap.check(2)?;
    Ok(())
}
both!(lma_heartbeat_response, lma_hb);

/// 5847-4-a/b, 5847-5.1-b: with a heartbeat interval the LMA probes the MAGs
/// it serves, the sequence number grows; a changed Restart Counter makes it
/// drop the bindings through that MAG (5847-4-c).
fn lma_hb_probe(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "heartbeat_interval_s = 1\n", "")? else {
        return Ok(());
    };
    let cap = b.capture("hbprobe")?;
    let p = b.peer(1)?;
    ensure!(
        exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?.fixed[0] == 0,
        "register"
    );
    let mut seqs = Vec::new();
    for _ in 0..2 {
        let rx = p
            .recv_where(S, is_type(mh::HEARTBEAT))
            .context("no Heartbeat Request from the LMA")?;
        let m = Mh::parse(&rx.bytes);
        ensure!(m.fixed[1] & 0x03 == 0, "request flags {:#x}", m.fixed[1]);
        let seq = u32::from_be_bytes(m.fixed[2..6].try_into().unwrap());
        seqs.push(seq);
        p.reply(&rx, &mh::heartbeat(true, seq, &[mh::restart_counter(1)]))?;
    }
    ensure!(seqs[1] > seqs[0], "heartbeat sequence {seqs:?}");
    wait_bindings(&b.daemon, 1)?;
    // A Restart Counter in a request is not valid (RFC 5847 §3.4): ignored.
    p.send(
        b.anchor(),
        b.port(),
        &mh::heartbeat(false, 500, &[mh::restart_counter(2)]),
    )?;
    // The MAG restarted: its counter, in its next response, changes.
    let rx = p
        .recv_where(S, |r| {
            is_type(mh::HEARTBEAT)(r) && Mh::parse(&r.bytes).fixed[1] & 1 == 0
        })
        .context("no Heartbeat Request from the LMA")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.get(opt::RESTART_COUNTER).is_none(),
        "a Restart Counter in a request"
    );
    ensure!(
        b.daemon.bindings()?.len() == 1,
        "bindings dropped for a Restart Counter in a request"
    );
    let seq = u32::from_be_bytes(m.fixed[2..6].try_into().unwrap());
    p.reply(&rx, &mh::heartbeat(true, seq, &[mh::restart_counter(2)]))?;
    wait_bindings(&b.daemon, 0).context("bindings kept after the MAG's restart counter changed")?;
    cap.check(5)?;
    Ok(())
}
both!(lma_heartbeat_probe_and_restart, lma_hb_probe);

/// 5846-5-a, 5846-6.1-a/b, 5846-7-a: after a handover to another MAG the LMA
/// revokes the old MAG's binding with a BRI (P set, trigger 2, MN-ID), which
/// a BRA with its sequence number acknowledges; unacknowledged, it is
/// retransmitted (5846-7-b).
fn lma_revoke(t: T, name: &str) -> Result<()> {
    let extra = "bri_delay_min_ms = 300\nbri_delay_max_ms = 600\nbri_max_retransmissions = 2\n";
    let Some(b) = AnchorBed::start(t, &tag(t, name), extra, "")? else {
        return Ok(());
    };
    let cap = b.capture("bri")?;
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    let m1 = exchange(&b, &p1, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    let home = m1.v4_hoa_reply().unwrap().2;
    let mut o = without(mag_opts(NAI, mh::now_timestamp() + 1, 3), opt::V4_HOA_REQ);
    o.push(mh::v4_hoa_req(24, home));
    let m2 = exchange(&b, &p2, 1, 10, &o)?;
    ensure!(
        m2.fixed[0] == 0 && m2.v4_hoa_reply().map(|r| r.2) == Some(home),
        "handover PBA"
    );
    let rx = p1
        .recv_where(S, is_type(mh::BR))
        .context("no BRI to the old MAG")?;
    let bri = Mh::parse(&rx.bytes);
    ensure!(bri.fixed[0] == 1, "B.R. type {}", bri.fixed[0]);
    ensure!(
        bri.fixed[1] == 2,
        "revocation trigger {} (want 2, inter-MAG same ATT)",
        bri.fixed[1]
    );
    ensure!(bri.u16_at(4) & mh::BRI_P != 0, "BRI without P");
    ensure!(bri.nai().as_deref() == Some(NAI), "BRI MN-ID");
    // Unanswered: retransmitted with the same sequence number.
    let again = p1
        .recv_where(S, is_type(mh::BR))
        .context("BRI not retransmitted")?;
    ensure!(
        Mh::parse(&again.bytes).u16_at(2) == bri.u16_at(2),
        "retransmission changed the sequence"
    );
    p1.reply(
        &rx,
        &mh::bra(0, bri.u16_at(2), mh::BRI_P, &[mh::mn_id(NAI)]),
    )?;
    ensure!(
        p1.recv_where(Duration::from_millis(900), is_type(mh::BR))
            .is_none(),
        "BRI retransmitted after the BRA"
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(v[0].peer == b.t.addr(2), "binding not moved: {v:?}");
    cap.check(6)?;
    Ok(())
}
both!(lma_revokes_after_handover, lma_revoke);

/// A bed with peer 1's binding cleared by the operator (`pmipctl clear
/// binding`), and the BRI that followed, not yet answered.
/// A bed with peer 1 registered (`NAI`, HI 1).
fn registered(t: T, name: &str) -> Result<Option<(AnchorBed, PeerSock)>> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(None);
    };
    let p = b.peer(1)?;
    ensure!(
        exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?.fixed[0] == 0,
        "register"
    );
    Ok(Some((b, p)))
}

fn cleared(t: T, name: &str) -> Result<Option<(AnchorBed, PeerSock, Rx)>> {
    let Some((b, p)) = registered(t, name)? else {
        return Ok(None);
    };
    wait_bindings(&b.daemon, 1)?;
    b.daemon.ctl(&["clear", "binding", NAI])?;
    let rx = p
        .recv_where(S, is_type(mh::BR))
        .context("no BRI after clear binding")?;
    Ok(Some((b, p, rx)))
}

/// 5846-8.1-a: `pmipctl clear binding` revokes (trigger 1, administrative).
fn lma_clear(t: T, name: &str) -> Result<()> {
    let Some((b, p, rx)) = cleared(t, name)? else {
        return Ok(());
    };
    let bri = Mh::parse(&rx.bytes);
    ensure!(
        bri.fixed[0] == 1 && bri.fixed[1] == 1,
        "BRI type {} trigger {}",
        bri.fixed[0],
        bri.fixed[1]
    );
    p.reply(&rx, &mh::bra(0, bri.u16_at(2), mh::BRI_P, &[]))?;
    wait_bindings(&b.daemon, 0)?;
    Ok(())
}
both!(lma_clear_binding_revokes, lma_clear);

/// 5846-8.1-e: while the BRI of `pmipctl clear binding` waits for its BRA
/// the entry is "revocation in progress" (RFC 5846 §8.1): a refresh
/// crossing the BRI is refused (129), not given a new session; once the
/// BRA comes the entry goes and the MN may register afresh.
fn lma_clear_crossing(t: T, name: &str) -> Result<()> {
    let Some((b, p, rx)) = cleared(t, name)? else {
        return Ok(());
    };
    // The MAG's refresh, sent before the BRI reached it.
    let m = exchange(&b, &p, 2, 10, &mag_opts(NAI, mh::now_timestamp(), 5))?;
    ensure!(
        m.fixed[0] == 129,
        "a refresh crossing the revocation: status {} (want 129)",
        m.fixed[0]
    );
    wait_bindings(&b.daemon, 0)?;
    let bri = Mh::parse(&rx.bytes);
    p.reply(&rx, &mh::bra(0, bri.u16_at(2), mh::BRI_P, &[]))?;
    b.daemon.wait_counter("revocations_completed", 1, S)?;
    let m = exchange(&b, &p, 3, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(
        m.fixed[0] == 0,
        "registering after the revocation: status {}",
        m.fixed[0]
    );
    wait_bindings(&b.daemon, 1)?;
    Ok(())
}
both!(
    lma_refuses_a_refresh_crossing_a_revocation,
    lma_clear_crossing
);

/// 5846-8.1-f: a revocation in progress survives a restart of the LMA (a
/// durable store): the BRI of `pmipctl clear binding`, unanswered when
/// the LMA stops, is sent again when it starts; its BRA ends it.
fn lma_revocation_restart(t: T, name: &str) -> Result<()> {
    let (_store, durable) = durable_store(t, name)?;
    let Some(mut b) = AnchorBed::start_edit(t, &tag(t, name), "", "", &durable)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 0, "register: status {}", m.fixed[0]);
    b.daemon.ctl(&["clear", "binding", NAI])?;
    p.recv_where(S, is_type(mh::BR))
        .context("no BRI after clear binding")?;
    // Stopped before the BRA; what the old process sent is drained.
    b.daemon.stop();
    p.drain(Duration::from_millis(100));
    restart(&mut b)?;
    let rx = p
        .recv_where(S, is_type(mh::BR))
        .context("the revocation was forgotten: no BRI after the restart")?;
    let bri = Mh::parse(&rx.bytes);
    ensure!(
        bri.fixed[1] == 1 && bri.nai().as_deref() == Some(NAI),
        "BRI trigger {} for {:?}",
        bri.fixed[1],
        bri.nai()
    );
    p.reply(&rx, &mh::bra(0, bri.u16_at(2), mh::BRI_P, &[]))?;
    b.daemon.wait_counter("revocations_completed", 1, S)?;
    wait_bindings(&b.daemon, 0)?;
    Ok(())
}
both!(
    lma_resumes_a_revocation_after_a_restart,
    lma_revocation_restart
);

/// 5846-9.2-a: a BRI from a MAG (MAG-initiated revocation) gets a BRA.
fn lma_bri_from_mag(t: T, name: &str) -> Result<()> {
    let Some((b, p)) = registered(t, name)? else {
        return Ok(());
    };
    p.send(
        b.anchor(),
        b.port(),
        &mh::bri(6, 40, mh::BRI_P, &[mh::mn_id(NAI)]),
    )?;
    let rx = p
        .recv_where(S, is_type(mh::BR))
        .context("no BRA for a MAG's BRI")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.fixed[0] == 2 && m.u16_at(2) == 40,
        "BRA type {} seq {}",
        m.fixed[0],
        m.u16_at(2)
    );
    Ok(())
}
both!(lma_answers_mag_initiated_bri, lma_bri_from_mag);

/// 5846-6.2.1-a, 5846-8.2-c: a MAG's BRI is checked before anything is
/// revoked: a per-MN trigger with G set, or a global one without it, gets
/// 134 (Revocation Function NOT Supported), an unknown trigger 133; a BRI
/// naming a Home Network Prefix the MN's binding does not hold finds no
/// binding (128). The binding stays through all of them; the MN-ID alone
/// then revokes it (0).
fn lma_bri_checks(t: T, name: &str) -> Result<()> {
    let Some((b, p)) = registered(t, name)? else {
        return Ok(());
    };
    let other = mh::hnp(64, "2001:db8:99::".parse::<std::net::Ipv6Addr>()?.octets());
    let cases: [(u8, u16, Vec<Opt>, u8); 5] = [
        (1, mh::BRI_P | mh::BRI_G, vec![], 134),
        (128, mh::BRI_P, vec![mh::mn_id(NAI)], 134),
        (200, mh::BRI_P, vec![mh::mn_id(NAI)], 133),
        (6, mh::BRI_P, vec![mh::mn_id(NAI), other], 128),
        (6, mh::BRI_P, vec![mh::mn_id(NAI)], 0),
    ];
    for (i, (trigger, flags, opts, want)) in cases.into_iter().enumerate() {
        wait_bindings(&b.daemon, 1)?;
        let seq = 50 + i as u16;
        p.send(b.anchor(), b.port(), &mh::bri(trigger, seq, flags, &opts))?;
        let rx = p
            .recv_where(S, |r| {
                is_type(mh::BR)(r) && Mh::parse(&r.bytes).u16_at(2) == seq
            })
            .context("no BRA")?;
        let status = Mh::parse(&rx.bytes).fixed[1];
        ensure!(
            status == want,
            "BRI trigger {trigger} flags {flags:#06x}: BRA status {status} (want {want})"
        );
    }
    wait_bindings(&b.daemon, 0)?;
    Ok(())
}
both!(lma_checks_a_mags_bri_before_revoking, lma_bri_checks);

/// 5844-3.1.3-e: a Home Network Prefix option for an MN that cannot have
/// IPv6 service here (the bed's anchor has no IPv6 pool) is refused with
/// 172 even beside an IPv4 HoA Request — not granted IPv4 alone; the same
/// request without the prefix is then accepted.
fn lma_172(t: T, name: &str) -> Result<()> {
    let Some(b) = extra_option_refused(t, name, mh::hnp(0, [0; 16]), 172)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    wait_bindings(&b.daemon, 0)?;
    let m = exchange(&b, &p, 2, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 0, "IPv4 alone: status {}", m.fixed[0]);
    Ok(())
}
both!(lma_refuses_a_prefix_without_ipv6_service, lma_172);

/// 5213-5.3.2-d: a dual-stack PBU when no home network prefix is left is
/// refused with 130, its IPv4 HoA Reply 128 (RFC 5844 §3.1.2.2) — not
/// granted IPv4 alone; the same MN asking for IPv4 alone is then accepted
/// (the address the refusal would have taken is free).
fn lma_no_prefix_left(t: T, name: &str) -> Result<()> {
    // One /64 to give.
    let pool6 = "\n[[pools]]\nname = \"home6\"\nprefix = \"fd64:1::/64\"\nassign_len = 64\n";
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", pool6)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let dual = |nai: &str| {
        let mut o = mag_opts(nai, mh::now_timestamp(), 1);
        o.push(mh::hnp(0, [0; 16]));
        o
    };
    let m = exchange(&b, &p, 1, 10, &dual(NAI))?;
    ensure!(
        m.fixed[0] == 0,
        "first dual-stack MN: status {}",
        m.fixed[0]
    );
    ensure!(
        m.get(opt::HNP).is_some_and(|d| d[1] == 64),
        "no /64 granted"
    );
    let other = "other@example.com";
    let m = exchange(&b, &p, 2, 10, &dual(other))?;
    ensure!(
        m.fixed[0] == 130,
        "dual-stack MN with no prefix left: status {} (want 130)",
        m.fixed[0]
    );
    let rep = m.get(opt::V4_HOA_REP).context("no IPv4 HoA Reply")?;
    ensure!(rep[0] == 128, "IPv4 HoA Reply status {} (want 128)", rep[0]);
    wait_bindings(&b.daemon, 1)?;
    let m = exchange(&b, &p, 3, 10, &mag_opts(other, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 0, "IPv4 alone: status {}", m.fixed[0]);
    Ok(())
}
both!(
    lma_refuses_dual_stack_with_no_prefix_left,
    lma_no_prefix_left
);

/// Registers the first two NAIs through MAG 1 and the third through MAG 2.
fn three_through_two(
    b: &AnchorBed,
    (p1, p2): (&PeerSock, &PeerSock),
    nais: [&str; 3],
) -> Result<()> {
    for (i, (p, seq)) in [(p1, 1), (p1, 2), (p2, 1)].into_iter().enumerate() {
        let m = exchange(b, p, seq, 10, &mag_opts(nais[i], mh::now_timestamp(), 1))?;
        ensure!(
            m.fixed[0] == 0,
            "register {}: status {}",
            nais[i],
            m.fixed[0]
        );
    }
    wait_bindings(&b.daemon, 3)?;
    Ok(())
}

/// 5846-9.2-a (bulk): a global BRI from a MAG (P and G, trigger Per-Peer
/// Policy, the MAG's identity as MN-ID) revokes every binding through that
/// MAG and no other; the BRA echoes P and G; without the MN-ID it is
/// refused with 130 (5846-8.2-a).
/// A per-MN BRI without an MN-ID gets status 131 (MN identity required).
fn lma_global_bri(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("gbri")?;
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    three_through_two(&b, (&p1, &p2), ["g1@x", "g2@x", "g3@x"])?;
    p1.send(b.anchor(), b.port(), &mh::bri(1, 50, mh::BRI_P, &[]))?;
    let rx = p1.recv_where(S, is_type(mh::BR)).context("no BRA")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.fixed[0] == 2 && m.fixed[1] == 131,
        "BRI without MN-ID: BRA type {} status {} (want 131)",
        m.fixed[0],
        m.fixed[1]
    );
    // §8.2: a per-peer global BRI (trigger 128) without the MAG's identity
    // in an MN-ID option: "Global Revocation NOT Authorized" (130).
    p1.send(
        b.anchor(),
        b.port(),
        &mh::bri(128, 52, mh::BRI_P | mh::BRI_G, &[]),
    )?;
    let rx = p1.recv_where(S, is_type(mh::BR)).context("no BRA")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.fixed[1] == 130,
        "per-peer global BRI without MN-ID: status {} (want 130)",
        m.fixed[1]
    );
    ensure!(
        b.daemon.bindings()?.len() == 3,
        "a refused global BRI removed bindings"
    );
    // §9.2: G, trigger "Per-Peer Policy", the MAG's identity as MN-ID.
    p1.send(
        b.anchor(),
        b.port(),
        &mh::bri(
            128,
            51,
            mh::BRI_P | mh::BRI_G,
            &[mh::mn_id("mag1.example.net")],
        ),
    )?;
    let rx = p1
        .recv_where(S, is_type(mh::BR))
        .context("no BRA for a global BRI")?;
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    ensure!(
        m.fixed[0] == 2 && m.fixed[1] == 0 && m.u16_at(2) == 51,
        "BRA type {} status {} seq {}",
        m.fixed[0],
        m.fixed[1],
        m.u16_at(2)
    );
    ensure!(
        m.u16_at(4) & 0xe000 == mh::BRI_P | mh::BRI_G,
        "BRA flags {:#06x}: P and G, not V (RFC 5846 §6.2: as in the BRI)",
        m.u16_at(4)
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(
        v[0].nai == "g3@x",
        "the other MAG's binding went too: {v:?}"
    );
    ensure!(
        p1.recv_where(Duration::from_millis(300), is_type(mh::BR))
            .is_none(),
        "the LMA sent a BRI back to the revoking MAG"
    );
    // What an independent decoder reads in our BRA: G, not V.
    let rows = cap.check_fields(3, &["mip6.bri_br.type", "mip6.bri_ag", "mip6.bri_av"])?;
    let set = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
    let bras: Vec<_> = rows
        .iter()
        .filter(|r| r.first().map(String::as_str) == Some("2"))
        .collect();
    ensure!(
        rows.is_empty() || bras.iter().any(|r| set(&r[1]) && !set(&r[2])),
        "tshark reads no BRA with G and without V: {rows:?}"
    );
    Ok(())
}
both!(lma_answers_global_bri, lma_global_bri);

/// 5846-8.1-b: `pmipctl clear bindings --peer` revokes every binding through
/// one MAG with one global BRI (RFC 5846 §8.1): with `--realm`, trigger 129
/// ("Revoking Mobile Node Local Policy") and the MN-ID "@realm" alone; without,
/// trigger 128 ("Per-Peer Policy") and no mobility option; flags P and G
/// both times. The other MAG's binding and the other realm's stay. A MAG
/// that refuses the global form (130) gets one BRI per binding instead
/// (trigger 1), and the bindings go on their BRAs.
fn lma_clear_peer(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("cpeer")?;
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    three_through_two(
        &b,
        (&p1, &p2),
        ["c1@a.example", "c2@b.example", "c3@A.example"],
    )?;
    // `show bindings` narrowed to one peer, one NAI, or counted.
    let sum = b.daemon.ctl(&["show", "bindings", "--summary"])?;
    let gw1 = t.addr(1).to_string();
    let gw2 = t.addr(2).to_string();
    ensure!(
        sum.starts_with("Total number of bindings: 3\n  ACTIVE: 3\n")
            && sum.contains(&format!("gw1 ({gw1}): 2\n"))
            && sum.contains(&format!("gw2 ({gw2}): 1\n")),
        "show bindings --summary:\n{sum}"
    );
    let by_peer = |p: &str| -> Result<Vec<String>> {
        match b.daemon.ctl_json(&["show", "bindings", "--peer", p])? {
            pmip_user::ctl::Response::Bindings(v) => Ok(v.into_iter().map(|x| x.nai).collect()),
            r => anyhow::bail!("show bindings --peer {p}: {r:?}"),
        }
    };
    ensure!(
        by_peer("gw2")? == ["c3@A.example"],
        "gw2: {:?}",
        by_peer("gw2")
    );
    ensure!(by_peer(&gw1)?.len() == 2, "{gw1}: {:?}", by_peer(&gw1));
    let one = b
        .daemon
        .ctl(&["show", "bindings", "--nai", "c2@b.example"])?;
    ensure!(
        one.starts_with("Total number of bindings: 1\n") && one.contains("Nai: c2@b.example"),
        "show bindings --nai:\n{one}"
    );
    let out = b
        .daemon
        .ctl(&["clear", "bindings", "--peer", "gw1", "--realm", "A.EXAMPLE"])?;
    ensure!(out.contains("1 binding(s)"), "pmipctl said {out:?}");
    let global = |rx: &Rx, trigger: u8| -> Result<Mh> {
        let bri = Mh::parse(&rx.bytes);
        bri.assert_all_aligned();
        ensure!(
            bri.fixed[0] == 1 && bri.fixed[1] == trigger,
            "BRI type {} trigger {} (want 1, {trigger})",
            bri.fixed[0],
            bri.fixed[1]
        );
        ensure!(
            bri.u16_at(4) & 0xe000 == mh::BRI_P | mh::BRI_G,
            "BRI flags {:#06x}: P and G, not V",
            bri.u16_at(4)
        );
        Ok(bri)
    };
    let rx = p1
        .recv_where(S, is_type(mh::BR))
        .context("no BRI after clear bindings --realm")?;
    let bri = global(&rx, 129)?;
    ensure!(
        bri.opts.len() == 1 && bri.nai().as_deref() == Some("@a.example"),
        "realm BRI options {:?} (want the MN-ID \"@a.example\" alone, spelled as the NAI has it)",
        bri.opts
    );
    p1.reply(&rx, &mh::bra(0, bri.u16_at(2), mh::BRI_P | mh::BRI_G, &[]))?;
    b.daemon.wait_counter("revocations_completed", 1, S)?;
    let v = wait_bindings(&b.daemon, 2)?;
    ensure!(
        v.iter().all(|x| x.nai != "c1@a.example"),
        "c1 not revoked: {v:?}"
    );
    ensure!(
        p2.recv_where(Duration::from_millis(300), is_type(mh::BR))
            .is_none(),
        "the other MAG got a BRI"
    );
    // By address, every realm; the MAG refuses the global form.
    b.daemon.ctl(&["clear", "bindings", "--peer", &gw1])?;
    let rx = p1
        .recv_where(S, is_type(mh::BR))
        .context("no BRI after clear bindings")?;
    let bri = global(&rx, 128)?;
    ensure!(
        bri.opts.is_empty(),
        "per-peer BRI with options {:?} (§8.1: MUST NOT)",
        bri.opts
    );
    p1.reply(
        &rx,
        &mh::bra(130, bri.u16_at(2), mh::BRI_P | mh::BRI_G, &[]),
    )?;
    let rx = p1
        .recv_where(S, is_type(mh::BR))
        .context("no per-MN BRI after the refusal")?;
    let one = Mh::parse(&rx.bytes);
    ensure!(
        one.fixed[1] == 1 && one.u16_at(4) & 0xe000 == mh::BRI_P,
        "fallback BRI trigger {} flags {:#06x} (want 1, P alone)",
        one.fixed[1],
        one.u16_at(4)
    );
    ensure!(
        one.nai().as_deref() == Some("c2@b.example"),
        "fallback BRI for {:?}",
        one.nai()
    );
    ensure!(
        b.daemon.bindings()?.len() == 1,
        "the refused bindings are still shown"
    );
    p1.reply(&rx, &mh::bra(0, one.u16_at(2), mh::BRI_P, &[]))?;
    b.daemon.wait_counter("revocations_completed", 2, S)?;
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(v[0].nai == "c3@A.example", "left: {v:?}");
    b.daemon
        .wait_counter("bri_global_refused", 1, Duration::ZERO)?;
    ensure!(
        b.daemon
            .ctl(&["clear", "bindings", "--peer", "nosuch"])
            .is_err(),
        "an unknown peer was accepted"
    );
    // What an independent decoder reads: G in both global BRIs, not in the last.
    let rows = cap.check_fields(
        3,
        &["mip6.bri_br.type", "mip6.bri_r.trigger", "mip6.bri_ig"],
    )?;
    let set = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
    let bris: Vec<(String, bool)> = rows
        .iter()
        .filter(|r| r.first().map(String::as_str) == Some("1"))
        .map(|r| (r[1].clone(), set(&r[2])))
        .collect();
    ensure!(
        rows.is_empty()
            || bris
                == [
                    ("129".into(), true),
                    ("128".into(), true),
                    ("1".into(), false)
                ],
        "tshark reads the BRIs as {bris:?}"
    );
    Ok(())
}
both!(lma_revokes_every_binding_through_a_mag, lma_clear_peer);

/// 5213-5.5-a: the sequence-number scheme orders PBUs without Timestamp: a
/// sequence number not newer than the last accepted gets 135 (RFC 6275
/// §9.5.1) with the last accepted one in the PBA; a newer one is accepted.
fn lma_seq_window(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("seqwin")?;
    let p = b.peer(1)?;
    let o = without(mag_opts(NAI, 0, 1), opt::TIMESTAMP);
    ensure!(exchange(&b, &p, 500, 10, &o)?.fixed[0] == 0, "first PBU");
    p.send(
        b.anchor(),
        b.port(),
        &mh::pbu(
            499,
            mh::BU_A | mh::BU_P,
            10,
            &without(mag_opts(NAI, 0, 5), opt::TIMESTAMP),
        ),
    )?;
    let rx = p.recv_where(S, is_ba).context("no PBA")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.fixed[0] == 135,
        "older sequence: status {} (want 135)",
        m.fixed[0]
    );
    ensure!(
        m.u16_at(2) == 500,
        "135 carries sequence {} (want the last accepted, 500)",
        m.u16_at(2)
    );
    ensure!(m.get(opt::TIMESTAMP).is_none(), "Timestamp in a 135");
    let m = exchange(
        &b,
        &p,
        501,
        10,
        &without(mag_opts(NAI, 0, 5), opt::TIMESTAMP),
    )?;
    ensure!(m.fixed[0] == 0, "newer sequence: status {}", m.fixed[0]);
    wait_bindings(&b.daemon, 1)?;
    // The sequence number belongs to the mobility session (RFC 5213 §5.5),
    // not to a MAG: after a handover to MAG 2 (502), a late PBU from MAG 1
    // (501, older) gets 135 and does not pull the binding back.
    let p2 = b.peer(2)?;
    let m = exchange(
        &b,
        &p2,
        502,
        10,
        &without(mag_opts(NAI, 0, 4), opt::TIMESTAMP),
    )?;
    ensure!(m.fixed[0] == 0, "handover: status {}", m.fixed[0]);
    p.send(
        b.anchor(),
        b.port(),
        &mh::pbu(
            501,
            mh::BU_A | mh::BU_P,
            10,
            &without(mag_opts(NAI, 0, 4), opt::TIMESTAMP),
        ),
    )?;
    let rx = p.recv_where(S, is_ba).context("no PBA to the late PBU")?;
    let m = Mh::parse(&rx.bytes);
    ensure!(
        m.fixed[0] == 135 && m.u16_at(2) == 502,
        "late PBU of the old MAG: status {} sequence {} (want 135, 502)",
        m.fixed[0],
        m.u16_at(2)
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(v[0].peer == b.t.addr(2), "the old MAG took it back: {v:?}");
    cap.check(6)?;
    Ok(())
}
both!(lma_sequence_number_out_of_window, lma_seq_window);

/// 5213-9-a: `timers.timestamp_based_approach = false` — the LMA orders by
/// sequence number only: a stale Timestamp is not refused with 156, and
/// the PBA carries none.
fn lma_ts_off(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "timestamp_based_approach = false\n", "")?
    else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(
        &b,
        &p,
        1,
        10,
        &mag_opts(NAI, mh::now_timestamp() - (3600 << 16), 1),
    )?;
    ensure!(m.fixed[0] == 0, "status {} (want 0)", m.fixed[0]);
    ensure!(m.get(opt::TIMESTAMP).is_none(), "PBA carries a Timestamp");
    Ok(())
}
both!(lma_timestamp_approach_off, lma_ts_off);

/// 5847-4-b, 5847-4-a (in pmipd): `show tunnels` gives each MAG's heartbeat
/// state and Restart Counter: UP while it answers, DOWN after
/// MISSING_HEARTBEATS_ALLOWED (3) unanswered requests.
/// An LMA probing every second, a binding through peer 1, and the LMA's
/// first Heartbeat Request to it.
fn probed(t: T, name: &str) -> Result<Option<(AnchorBed, PeerSock, Rx)>> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "heartbeat_interval_s = 1\n", "")? else {
        return Ok(None);
    };
    let p = b.peer(1)?;
    ensure!(
        exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?.fixed[0] == 0,
        "register"
    );
    let rx = p
        .recv_where(S, is_type(mh::HEARTBEAT))
        .context("no Heartbeat Request")?;
    Ok(Some((b, p, rx)))
}

fn lma_hb_show(t: T, name: &str) -> Result<()> {
    let Some((b, p, rx)) = probed(t, name)? else {
        return Ok(());
    };
    let seq = u32::from_be_bytes(Mh::parse(&rx.bytes).fixed[2..6].try_into().unwrap());
    p.reply(&rx, &mh::heartbeat(true, seq, &[mh::restart_counter(7)]))?;
    let up = wait_tunnel(&b.daemon, b.t.addr(1), S, |x| x.state == "UP")?;
    ensure!(
        up.restart_counter == Some(7) && up.bindings == 1,
        "tunnel {up:?}: restart counter 7, one binding"
    );
    // Silence: four requests go unanswered (three are allowed, RFC 5847 §3).
    wait_tunnel(&b.daemon, b.t.addr(1), Duration::from_secs(8), |x| {
        x.state == "DOWN"
    })?;
    Ok(())
}
both!(lma_heartbeat_state_in_show_tunnels, lma_hb_show);

/// 5847-3-c: a MAG without heartbeat support answers the LMA's heartbeat
/// with a Binding Error (status 2, RFC 6275 §9.2): the LMA "MUST NOT use
/// Heartbeat messages with the other end again" (RFC 5847 §3), and does
/// not take the MAG for down.
fn lma_hb_unsupported(t: T, name: &str) -> Result<()> {
    let Some((b, p, rx)) = probed(t, name)? else {
        return Ok(());
    };
    p.reply(&rx, &mh::binding_error(2))?;
    // Four heartbeat intervals: none comes, and the MAG is not DOWN.
    ensure!(
        p.recv_where(Duration::from_secs(4), is_type(mh::HEARTBEAT))
            .is_none(),
        "a heartbeat after the Binding Error"
    );
    let x = wait_tunnel(&b.daemon, b.t.addr(1), S, |_| true)?;
    ensure!(x.state != "DOWN" && x.bindings == 1, "tunnel {x:?}");
    Ok(())
}
both!(
    lma_heartbeat_binding_error_ends_heartbeats,
    lma_hb_unsupported
);

/// 5844-3.1.2.2-a (pools): `profiles[].pool` picks the IPv4 pool the LMA
/// allocates from; the PBA's IPv4 Default-Router Address is that pool's
/// router (RFC 5844 §3.3.3).
fn lma_pool(t: T, name: &str) -> Result<()> {
    let tail = "\n[[pools]]\nname = \"apn2\"\nprefix = \"10.65.0.0/24\"\ngateway = \"10.65.0.1\"\n\
                \n[[profiles]]\nname = \"p2\"\nnai = \"conf@example.com\"\npool = \"apn2\"\n\
                \n[[profiles]]\nname = \"p1\"\nnai = \"other@example.com\"\n";
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", tail)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 0, "status {}", m.fixed[0]);
    let (_, plen, a) = m.v4_hoa_reply().context("no IPv4 HoA Reply")?;
    ensure!(
        a[..3] == [10, 65, 0] && plen == 24,
        "home address {a:?}/{plen}: want pool apn2 (10.65.0.0/24)"
    );
    ensure!(
        m.v4_default_router() == Some([10, 65, 0, 1]),
        "default router {:?}: want apn2's 10.65.0.1",
        m.v4_default_router()
    );
    let m = exchange(
        &b,
        &p,
        2,
        10,
        &mag_opts("other@example.com", mh::now_timestamp(), 1),
    )?;
    let (_, _, a) = m.v4_hoa_reply().context("no IPv4 HoA Reply")?;
    ensure!(
        a[..3] == [10, 64, 0],
        "other profile: {a:?} (want the first pool)"
    );
    Ok(())
}
both!(lma_profile_pool, lma_pool);

// ------------------------------------------------------------ rows untested before

const V6_POOL: &str = "\n[[pools]]\nname = \"v6\"\nprefix = \"2001:db8:f00d::/48\"\n";

fn v6_opts(nai: &str, hi: u8, prefix: [u8; 16], plen: u8) -> Vec<Opt> {
    let mut o = without(mag_opts(nai, mh::now_timestamp(), hi), opt::V4_HOA_REQ);
    o.push(mh::hnp(plen, prefix));
    o
}

/// 5213-5.3.2-b, 5213-5.3.6-d, 5213-5.3.1-j: HNP ::/0 asks the LMA for a
/// prefix (a /64 of the pool, in the PBA's HNP option, 8n+4), the
/// de-registration PBA carries it too; a new session asking for a prefix of
/// its own gets 155, the PBA echoing the HNP.
fn lma_prefix(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", V6_POOL)? else {
        return Ok(());
    };
    let cap = b.capture("hnp")?;
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &v6_opts(NAI, 1, [0; 16], 0))?;
    ensure!(m.fixed[0] == 0, "status {}", m.fixed[0]);
    let h = m
        .get(opt::HNP)
        .context("no HNP in the PBA (RFC 5213 §5.3.6)")?;
    ensure!(
        h[1] == 64 && h[2..8] == [0x20, 0x01, 0x0d, 0xb8, 0xf0, 0x0d],
        "HNP {h:02x?}: a /64 of 2001:db8:f00d::/48"
    );
    let prefix: [u8; 16] = h[2..18].try_into().unwrap();
    let mut o = without(v6_opts(NAI, 4, prefix, 64), opt::GRE_KEY);
    o.retain(|x| x.kind != opt::TIMESTAMP);
    o.push(mh::timestamp(mh::now_timestamp() + 1));
    let d = exchange(&b, &p, 2, 0, &o)?;
    ensure!(
        d.fixed[0] == 0 && d.get(opt::HNP) == Some(h),
        "de-registration PBA HNP {:02x?} (want {h:02x?})",
        d.get(opt::HNP)
    );
    let mut own = [0u8; 16];
    own[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    own[5] = 1;
    let r = exchange(&b, &p, 3, 10, &v6_opts("pfx@x", 1, own, 64))?;
    ensure!(
        r.fixed[0] == 155,
        "own prefix: status {} (want 155)",
        r.fixed[0]
    );
    ensure!(
        r.get(opt::HNP).map(|x| &x[2..18]) == Some(&own[..]),
        "155 without the PBU's HNP"
    );
    cap.check(3)?;
    Ok(())
}
both!(lma_home_network_prefix, lma_prefix);

/// 5844-3.1.2.5-a, 5844-3.2.3.3-a: a dual-stack session's de-registration
/// of one family (lifetime 0, only that family's option) removes that
/// family's address and keeps the session: the PBA names what went, and
/// `show bindings` still has the session with the other family; a refresh
/// that asks for an IPv4 home address again gets one.
fn lma_selective(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", V6_POOL)? else {
        return Ok(());
    };
    let cap = b.capture("sel")?;
    let p = b.peer(1)?;
    let ts = mh::now_timestamp();
    let mut o = mag_opts(NAI, ts, 1);
    o.push(mh::hnp(0, [0; 16]));
    let m = exchange(&b, &p, 1, 10, &o)?;
    ensure!(
        m.fixed[0] == 0,
        "dual-stack registration: status {}",
        m.fixed[0]
    );
    let h = m.get(opt::HNP).context("no HNP")?.to_vec();
    let prefix: [u8; 16] = h[2..18].try_into()?;
    let (_, plen, a) = m.v4_hoa_reply().context("no IPv4 home address")?;
    // The IPv4 home address alone.
    let bare = |ts: u64| without(without(mag_opts(NAI, ts, 1), opt::GRE_KEY), opt::V4_HOA_REQ);
    let mut d = bare(ts + 1);
    d.push(mh::v4_hoa_req(plen, a));
    let r = exchange(&b, &p, 2, 0, &d)?;
    ensure!(
        r.fixed[0] == 0 && r.v4_hoa_reply().map(|x| x.2) == Some(a) && r.count(opt::HNP) == 0,
        "IPv4 de-registration PBA: status {}, {:?}, {} HNP",
        r.fixed[0],
        r.v4_hoa_reply(),
        r.count(opt::HNP)
    );
    b.daemon.wait_bindings(S, "the session without IPv4", |v| {
        v.len() == 1 && v[0].home_v4.is_none() && v[0].hnp.is_some()
    })?;
    // A refresh asking for IPv4 again, then the prefix alone goes.
    let mut o = without(mag_opts(NAI, ts + 2, 5), opt::V4_HOA_REQ);
    o.push(mh::hnp(64, prefix));
    o.push(mh::v4_hoa_req(0, [0; 4]));
    let m = exchange(&b, &p, 3, 10, &o)?;
    let a2 = m
        .v4_hoa_reply()
        .context("no IPv4 home address asked for later")?
        .2;
    ensure!(
        m.fixed[0] == 0 && a2 != [0; 4],
        "refresh: status {}",
        m.fixed[0]
    );
    let mut d = bare(ts + 3);
    d.push(mh::hnp(64, prefix));
    let r = exchange(&b, &p, 4, 0, &d)?;
    ensure!(
        r.fixed[0] == 0 && r.get(opt::HNP) == Some(&h[..]) && r.v4_hoa_reply().is_none(),
        "IPv6 de-registration PBA: status {}",
        r.fixed[0]
    );
    let want = std::net::Ipv4Addr::from(a2);
    b.daemon
        .wait_bindings(S, "the session without its prefix", |v| {
            v.len() == 1 && v[0].home_v4 == Some(want) && v[0].hnp.is_none()
        })?;
    cap.check(8)?;
    Ok(())
}
both!(lma_selective_deregistration, lma_selective);

/// 5213-5.3.1-k: an MN without a profile (profiles configured, none for
/// it) is one the LMA "cannot identify" (RFC 5213 §5.3.1 step 7): refused
/// with NOT_LMA_FOR_THIS_MOBILE_NODE (153).
fn lma_153(t: T, name: &str) -> Result<()> {
    let tail = "\n[[profiles]]\nname = \"only\"\nnai = \"known@example.com\"\n";
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", tail)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 153, "status {} (want 153)", m.fixed[0]);
    let m = exchange(
        &b,
        &p,
        2,
        10,
        &mag_opts("known@example.com", mh::now_timestamp(), 1),
    )?;
    ensure!(m.fixed[0] == 0, "profiled MN: status {}", m.fixed[0]);
    Ok(())
}
both!(lma_unknown_mobile_node, lma_153);

/// 5213-5.3.4-b, 5213-5.4-a: HI 1 (attachment over a new interface) with
/// another link-layer identifier opens a second mobility session for the
/// same MN, with its own address and key.
fn lma_hi1(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m1 = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    let mut o = without(mag_opts(NAI, mh::now_timestamp() + 1, 1), opt::LLID);
    o.push(mh::llid([0x02, 0, 0, 0, 0, 0x77]));
    let m2 = exchange(&b, &p, 2, 10, &o)?;
    ensure!(m1.fixed[0] == 0 && m2.fixed[0] == 0, "statuses");
    ensure!(
        m1.v4_hoa_reply().unwrap().2 != m2.v4_hoa_reply().unwrap().2
            && m1.gre_key() != m2.gre_key(),
        "the second interface shares the first's session"
    );
    wait_bindings(&b.daemon, 2)?;
    Ok(())
}
both!(lma_hi1_opens_a_second_session, lma_hi1);

/// 5213-5.4-b: without a link-layer identifier (§5.4.1.3), HI 1 from
/// another MAG is "all other cases": a new mobility session, though the MN
/// has one; HI 3 from a third MAG (handoff between MAGs) takes over a lone
/// session, and a refresh from the session's own MAG (HI 5) is that session.
fn lma_no_llid(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    let ts = mh::now_timestamp();
    let opts = |ts: u64, hi: u8| without(mag_opts(NAI, ts, hi), opt::LLID);
    let m1 = exchange(&b, &p1, 1, 10, &opts(ts, 1))?;
    let m1b = exchange(&b, &p1, 2, 10, &opts(ts + 1, 5))?;
    ensure!(
        m1.fixed[0] == 0 && m1b.fixed[0] == 0,
        "statuses {} {}",
        m1.fixed[0],
        m1b.fixed[0]
    );
    ensure!(
        m1b.v4_hoa_reply() == m1.v4_hoa_reply() && m1b.gre_key() == m1.gre_key(),
        "the refresh from the same MAG is not the same session"
    );
    wait_bindings(&b.daemon, 1)?;
    let m2 = exchange(&b, &p2, 1, 10, &opts(ts + 2, 1))?;
    ensure!(m2.fixed[0] == 0, "status {}", m2.fixed[0]);
    ensure!(
        m2.v4_hoa_reply().unwrap().2 != m1.v4_hoa_reply().unwrap().2
            && m2.gre_key() != m1.gre_key(),
        "HI 1 without a link-layer identifier took over the MN's session"
    );
    wait_bindings(&b.daemon, 2)?;
    Ok(())
}
both!(lma_hi1_without_llid_opens_a_new_session, lma_no_llid);

/// 5213-5.4-c, 5846-8.1-d: HI 4 (handoff state unknown) from another MAG
/// for the MN's lone session, without a link-layer identifier that names
/// it, may be the MN moving or a second interface. The LMA asks the
/// previous MAG with a BRI (trigger 4, Inter-MAG Handover - Unknown) and
/// answers the new MAG only after the BRA: "Revocation Failed - MN is
/// Attached" (132) → a new session with its own address; success → the
/// session moves (RFC 5846 §8.1, in place of RFC 5213's wait for a
/// de-registration).
fn lma_hi4(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let cap = b.capture("hi4")?;
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    let ts = mh::now_timestamp();
    let opts = |nai: &str, ts: u64, hi: u8| without(mag_opts(nai, ts, hi), opt::LLID);
    for (nai, status) in [(NAI, 132u8), ("moving@example.com", 0)] {
        let m1 = exchange(&b, &p1, 1, 10, &opts(nai, ts, 1))?;
        ensure!(m1.fixed[0] == 0, "{nai}: status {}", m1.fixed[0]);
        let home = m1.v4_hoa_reply().context("no IPv4 home address")?.2;
        p2.send(
            b.anchor(),
            b.port(),
            &mh::pbu(1, mh::BU_A | mh::BU_P, 10, &opts(nai, ts + 1, 4)),
        )?;
        let rx = p1
            .recv_where(S, is_type(mh::BR))
            .context("no BRI to the previous MAG")?;
        let bri = Mh::parse(&rx.bytes);
        ensure!(
            bri.fixed[0] == 1 && bri.fixed[1] == 4,
            "B.R. type {} trigger {} (want 1, 4: Inter-MAG Handover - Unknown)",
            bri.fixed[0],
            bri.fixed[1]
        );
        ensure!(bri.nai().as_deref() == Some(nai), "BRI MN-ID");
        ensure!(
            p2.recv_where(Duration::from_millis(300), is_type(mh::BA))
                .is_none(),
            "{nai}: the new MAG was answered before the previous MAG"
        );
        p1.reply(
            &rx,
            &mh::bra(status, bri.u16_at(2), mh::BRI_P, &[mh::mn_id(nai)]),
        )?;
        let rx = p2
            .recv_where(S, is_type(mh::BA))
            .context("no PBA after the BRA")?;
        let m2 = Mh::parse(&rx.bytes);
        ensure!(m2.fixed[0] == 0, "{nai}: status {}", m2.fixed[0]);
        let home2 = m2.v4_hoa_reply().context("no IPv4 home address")?.2;
        if status == 132 {
            ensure!(
                home2 != home && m2.gre_key() != m1.gre_key(),
                "MN is Attached, and the session moved anyway"
            );
        } else {
            ensure!(
                home2 == home && m2.gre_key() == m1.gre_key(),
                "the session did not move after a successful BRA"
            );
        }
    }
    let v = wait_bindings(&b.daemon, 3)?;
    ensure!(
        v.iter().filter(|x| x.peer == b.t.addr(2)).count() == 2,
        "{v:?}"
    );
    cap.check(12)?;
    Ok(())
}
both!(lma_hi4_asks_the_previous_mag, lma_hi4);

/// 5844-4-f: over IPv4 transport, a PBU with the F flag (forced IPv4-UDP
/// encapsulation) is refused with 129, Administratively prohibited: the
/// tunnels are GRE (AcceptForcedIPv4UDPEncapsulationRequest 0, RFC 5844
/// §4.1.3.1). Over IPv6 transport the flag means nothing and is ignored.
fn lma_forced_udp(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let flags = mh::BU_A | mh::BU_P | mh::BU_F;
    let m = exchange_flags(
        &b,
        &p,
        (1, flags),
        10,
        &mag_opts(NAI, mh::now_timestamp(), 1),
    )?;
    let want = if t == T::Udp5436 { 129 } else { 0 };
    ensure!(
        m.fixed[0] == want,
        "F flag: status {} (want {want})",
        m.fixed[0]
    );
    // Without F the same MN is served.
    let m = exchange(&b, &p, 2, 10, &mag_opts(NAI, mh::now_timestamp() + 1, 1))?;
    ensure!(m.fixed[0] == 0, "without F: status {}", m.fixed[0]);
    Ok(())
}
both!(lma_refuses_forced_udp_encapsulation, lma_forced_udp);

/// 5213-5.3.6-h: the Link-local Address option. Asked for (ALL_ZERO), the
/// LMA generates a link-local address for the session and returns it again
/// to the next MAG that asks; given (NON_ZERO), it is echoed and kept for
/// the next that asks; a rejection echoes the PBU's.
fn lma_lla(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    let ts = mh::now_timestamp();
    let with = |ts: u64, hi: u8, a: [u8; 16]| {
        let mut o = mag_opts(NAI, ts, hi);
        o.push(mh::lla(a));
        o
    };
    let lla_of = |m: &Mh| -> Result<[u8; 16]> {
        let d = m.get(opt::LLA).context("no Link-local Address option")?;
        m.assert_aligned(opt::LLA, 8, 6);
        Ok(d.try_into()?)
    };
    let m1 = exchange(&b, &p1, 1, 10, &with(ts, 4, [0; 16]))?;
    ensure!(m1.fixed[0] == 0, "status {}", m1.fixed[0]);
    let generated = lla_of(&m1)?;
    ensure!(
        generated[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0] && generated[8..] != [0; 8],
        "generated {generated:02x?} is no link-local address"
    );
    // The MN moves to MAG 2, which asks: the same address.
    let m2 = exchange(&b, &p2, 1, 10, &with(ts + 1, 4, [0; 16]))?;
    ensure!(
        m2.fixed[0] == 0 && lla_of(&m2)? == generated,
        "handover: {:02x?}",
        lla_of(&m2)?
    );
    // MAG 1 takes it back with its own address: echoed, kept.
    let mine = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];
    let m3 = exchange(&b, &p1, 2, 10, &with(ts + 2, 4, mine))?;
    ensure!(
        m3.fixed[0] == 0 && lla_of(&m3)? == mine,
        "given: {:02x?}",
        lla_of(&m3)?
    );
    let m4 = exchange(&b, &p2, 2, 10, &with(ts + 3, 4, [0; 16]))?;
    ensure!(
        lla_of(&m4)? == mine,
        "asked after given: {:02x?}",
        lla_of(&m4)?
    );
    // A rejection (an old timestamp) echoes the PBU's ALL_ZERO.
    let m5 = exchange(&b, &p2, 3, 10, &with(ts, 4, [0; 16]))?;
    ensure!(
        m5.fixed[0] >= 128 && lla_of(&m5)? == [0; 16],
        "rejection: status {}",
        m5.fixed[0]
    );
    Ok(())
}
both!(lma_link_local_address_option, lma_lla);

/// 5213-5.3.5-b: a de-registration from the MAG the MN left changes
/// nothing and is not answered (nor one for no session); 5213-5.3.5-c: after the serving MAG's de-registration the entry
/// waits MinDelayBeforeBCEDelete, so a new MAG taking it over within it
/// gets the same home address.
fn lma_dereg_rules(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let (p1, p2) = (b.peer(1)?, b.peer(2)?);
    let home = exchange(&b, &p1, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?
        .v4_hoa_reply()
        .unwrap()
        .2;
    let with_home = |ts: u64, hi: u8| {
        let mut o = without(mag_opts(NAI, ts, hi), opt::V4_HOA_REQ);
        o.push(mh::v4_hoa_req(24, home));
        o
    };
    ensure!(
        exchange(&b, &p2, 1, 10, &with_home(mh::now_timestamp() + 1, 4))?.fixed[0] == 0,
        "handover"
    );
    // §5.3.5: "MUST ignore" a de-registration from another MAG than the
    // entry's, and §5.4.1 one that matches no session: no PBA either way.
    let late = without(with_home(mh::now_timestamp() + 2, 4), opt::GRE_KEY);
    p1.send(
        b.anchor(),
        b.port(),
        &mh::pbu(2, mh::BU_A | mh::BU_P, 0, &late),
    )?;
    let unknown = without(
        mag_opts("nobody@example.com", mh::now_timestamp() + 2, 4),
        opt::GRE_KEY,
    );
    p1.send(
        b.anchor(),
        b.port(),
        &mh::pbu(3, mh::BU_A | mh::BU_P, 0, &unknown),
    )?;
    ensure!(
        p1.recv_where(Duration::from_millis(1500), is_ba).is_none(),
        "a PBA to an ignored de-registration"
    );
    let v = wait_bindings(&b.daemon, 1)?;
    ensure!(
        v[0].peer == b.t.addr(2),
        "old MAG's de-registration moved it: {v:?}"
    );
    let d = without(with_home(mh::now_timestamp() + 3, 4), opt::GRE_KEY);
    ensure!(
        exchange(&b, &p2, 2, 0, &d)?.fixed[0] == 0,
        "de-registration"
    );
    wait_bindings(&b.daemon, 0)?;
    let m = exchange(&b, &p1, 4, 10, &mag_opts(NAI, mh::now_timestamp() + 4, 4))?;
    ensure!(
        m.fixed[0] == 0 && m.v4_hoa_reply().map(|r| r.2) == Some(home),
        "within MinDelayBeforeBCEDelete: status {} address {:?} (want {home:?})",
        m.fixed[0],
        m.v4_hoa_reply()
    );
    Ok(())
}
both!(lma_deregistration_rules, lma_dereg_rules);

/// 5844-3.1.3-g: an IPv4 request to an LMA without IPv4 home addresses gets
/// 170, the IPv4 HoA Reply saying 129.
fn lma_170(t: T, name: &str) -> Result<()> {
    let edit = |c: String| {
        c.replace(
            "prefix = \"10.64.0.0/24\"\ngateway = \"10.64.0.1\"",
            "prefix = \"2001:db8:f00d::/48\"",
        )
    };
    let Some(b) = AnchorBed::start_edit(t, &tag(t, name), "", "", &edit)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 170, "status {} (want 170)", m.fixed[0]);
    ensure!(
        m.v4_hoa_reply().map(|r| r.0) == Some(129),
        "IPv4 HoA Reply {:?}",
        m.v4_hoa_reply()
    );
    Ok(())
}
both!(lma_no_ipv4_service, lma_170);

/// 5844-3.1.3-h: no IPv4 home address left: status 130, the IPv4 HoA
/// Reply saying 128 (failure, reason unspecified: RFC 5844 §3.1.2.2).
fn lma_130(t: T, name: &str) -> Result<()> {
    let edit = |c: String| c.replace("10.64.0.0/24", "10.64.0.0/30");
    let Some(b) = AnchorBed::start_edit(t, &tag(t, name), "", "", &edit)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let m = exchange(&b, &p, 1, 10, &mag_opts("a@x", mh::now_timestamp(), 1))?;
    ensure!(m.fixed[0] == 0, "the one address: status {}", m.fixed[0]);
    let m = exchange(&b, &p, 2, 10, &mag_opts("b@x", mh::now_timestamp(), 1))?;
    ensure!(
        m.fixed[0] == 130,
        "pool empty: status {} (want 130)",
        m.fixed[0]
    );
    ensure!(
        m.v4_hoa_reply().map(|r| r.0) == Some(128),
        "IPv4 HoA Reply {:?}",
        m.v4_hoa_reply()
    );
    Ok(())
}
both!(lma_pool_exhausted, lma_130);

/// Our node's Restart Counter, from its response to a Heartbeat Request
/// (sequence `seq`) sent from `p`.
fn hb_counter(p: &PeerSock, b: &AnchorBed, seq: u32) -> Result<u32> {
    p.send(
        b.anchor(),
        b.port(),
        &mh::heartbeat(false, seq, &[mh::restart_counter(1)]),
    )?;
    let rx = p
        .recv_where(S, is_heartbeat(false, true))
        .context("no Heartbeat Response")?;
    restart_counter_of(&rx)
}

/// A store directory (removed on drop) and the configuration edit that
/// keeps the anchor's state there, through restarts (the embedded store).
fn durable_store(
    t: T,
    name: &str,
) -> Result<(pmip_tests::lab::TempDir, impl Fn(String) -> String)> {
    let store = pmip_tests::lab::TempDir::new(&format!("{}st", tag(t, name)))?;
    let path = store.0.join("state");
    let edit = move |c: String| {
        c.replace(
            "backend = \"memory\"",
            &format!("backend = \"embedded\"\npath = \"{}\"", path.display()),
        )
    };
    Ok((store, edit))
}

/// Restarts the bed's daemon with its configuration.
fn restart(b: &mut AnchorBed) -> Result<()> {
    b.daemon.stop();
    let cfg = b.dir.0.join("anchor.toml");
    let sock = b.dir.0.join("anchor.sock");
    b.daemon = pmip_tests::lab::Daemon::start(&b.anchor_ns, "anchor", &cfg, &sock, "info")?;
    Ok(())
}

/// 5847-5.2-b: the Restart Counter changes when pmipd restarts.
fn lma_rc(t: T, name: &str) -> Result<()> {
    let Some(mut b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let before = hb_counter(&p, &b, 1)?;
    restart(&mut b)?;
    let after = hb_counter(&p, &b, 2)?;
    ensure!(
        before != after,
        "Restart Counter {before} kept across a restart"
    );
    Ok(())
}
both!(lma_restart_counter_changes, lma_rc);

/// 5847-3.2-a: after a restart that lost its session state (the bed's
/// memory store) the LMA sends each configured MAG an unsolicited
/// Heartbeat Response — U and R set, its new Restart Counter — so that a
/// MAG still holding bindings learns at once; a stranger gets none. After a
/// restart that kept its state (an embedded store) nothing is announced and
/// the counter stays.
fn lma_announce(t: T, name: &str) -> Result<()> {
    let hb = "heartbeat_interval_s = 30\n";
    let Some(mut b) = AnchorBed::start(t, &tag(t, name), hb, "")? else {
        return Ok(());
    };
    let (p1, p2, stranger) = (b.peer(1)?, b.peer(2)?, b.peer(3)?);
    // The first start lost state too (a memory store) and announced it:
    // a request on each socket passes over that announcement, which the
    // LMA sent before it read any request.
    let before = hb_counter(&p1, &b, 1)?;
    ensure!(hb_counter(&p2, &b, 1)? == before, "two restart counters");
    let cap = b.capture("announce")?;
    restart(&mut b)?;
    let mut announced = Vec::new();
    for p in [&p1, &p2] {
        let rx = p
            .recv_where(S, is_heartbeat(true, true))
            .context("no unsolicited Heartbeat Response after the restart")?;
        Mh::parse(&rx.bytes).assert_all_aligned();
        announced.push(restart_counter_of(&rx)?);
    }
    let now = hb_counter(&p1, &b, 2)?;
    ensure!(
        announced == [now, now] && now != before,
        "announced {announced:?}, answers with {now}, before the restart {before}"
    );
    ensure!(
        stranger.drain(Duration::from_millis(300)).is_empty(),
        "an unconfigured peer heard from the LMA"
    );
    // An independent decoder reads U, R and the counter.
    let rows = cap.check_fields(3, &["mip6.hb.u_flag", "mip6.hb.r_flag", "mip6.rc"])?;
    let want = ["1".to_string(), "1".into(), now.to_string()];
    ensure!(
        rows.is_empty() || rows.iter().filter(|r| r[..] == want[..]).count() == 2,
        "tshark: {rows:?}"
    );
    drop(b);

    // State kept: no announcement, the same counter.
    let (_store, durable) = durable_store(t, name)?;
    let Some(mut b) = AnchorBed::start_edit(t, &tag(t, name), hb, "", &durable)? else {
        return Ok(());
    };
    let p1 = b.peer(1)?;
    let before = hb_counter(&p1, &b, 1)?;
    restart(&mut b)?;
    // What the LMA sends before it answers a request: an announcement
    // would be sent at the start, before any request is read.
    p1.send(
        b.anchor(),
        b.port(),
        &mh::heartbeat(false, 2, &[mh::restart_counter(1)]),
    )?;
    let mut first = Vec::new();
    let answer = loop {
        let rx = p1.recv(S).context("no Heartbeat Response")?;
        if is_heartbeat(false, true)(&rx) {
            break rx;
        }
        first.push(rx);
    };
    ensure!(
        !first.iter().any(is_heartbeat(true, true)),
        "an unsolicited Heartbeat Response after a restart that kept the state"
    );
    let after = restart_counter_of(&answer)?;
    ensure!(
        before == after,
        "Restart Counter {before} → {after} with the state kept"
    );
    Ok(())
}
both!(lma_announces_a_restart_that_lost_state, lma_announce);
