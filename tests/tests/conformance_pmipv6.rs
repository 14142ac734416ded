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
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::conformance::bed::{sub_mac, AccessBed, AnchorBed, PeerSock, Rx, T};
use pmip_tests::conformance::mh::{self, opt, Mh, Opt};

const NAI: &str = "conf@example.com";
const MAG_KEY: u32 = 1000;
const S: Duration = Duration::from_secs(3);

fn run(t: T, tag: &str, f: fn(T, &str) -> Result<()>) {
    if let Err(e) = f(t, tag) {
        panic!("{t:?}: {e:#}");
    }
}

/// One test per transport.
macro_rules! both {
    ($name:ident, $f:path) => {
        both!($name, $f, );
    };
    ($name:ident, $f:path, $($attr:meta)?) => {
        mod $name {
            use super::*;
            #[test]
            $(#[$attr])?
            fn over_ipv6_mh() {
                run(T::Mh6, concat!(stringify!($name)), $f);
            }
            #[test]
            $(#[$attr])?
            fn over_ipv4_udp() {
                run(T::Udp5436, concat!(stringify!($name)), $f);
            }
        }
    };
}

fn tag(t: T, name: &str) -> String {
    // Namespace prefixes are at most 4 characters.
    let h = name
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b.into()));
    format!("{}{:02}", if t == T::Mh6 { 'r' } else { 'u' }, h % 97)
}

fn is_ba(r: &Rx) -> bool {
    r.bytes.get(2) == Some(&mh::BA)
}
fn is_type(ty: u8) -> impl Fn(&Rx) -> bool {
    move |r| r.bytes.get(2) == Some(&ty)
}

/// The options of a MAG's first PBU for an IPv4 subscriber (RFC 5213 §6.9.1.1,
/// RFC 5844 §3.1.1, RFC 5845 §4.1): MN-ID, HI, ATT, LLID, Timestamp, GRE key,
/// IPv4 Home Address Request 0.0.0.0.
fn mag_opts(nai: &str, ts: u64, hi: u8) -> Vec<Opt> {
    vec![
        mh::mn_id(nai),
        mh::hi(hi),
        mh::att(4),
        mh::llid(sub_mac()),
        mh::timestamp(ts),
        mh::gre_key(MAG_KEY),
        mh::v4_hoa_req(0, [0; 4]),
    ]
}

fn without(opts: Vec<Opt>, kind: u8) -> Vec<Opt> {
    opts.into_iter().filter(|o| o.kind != kind).collect()
}

/// Sends a PBU as MAG `peer` and returns the PBA (checked against the
/// generic rules: MH type, Payload Proto, alignment, P flag, sequence echo,
/// checksum zero over UDP).
fn exchange(b: &AnchorBed, peer: &PeerSock, seq: u16, lifetime: u16, opts: &[Opt]) -> Result<Mh> {
    peer.send(
        b.anchor(),
        b.port(),
        &mh::pbu(seq, mh::BU_A | mh::BU_P, lifetime, opts),
    )?;
    let rx = peer.recv_where(S, is_ba).context("no PBA")?;
    ensure!(rx.from == b.anchor(), "PBA from {}", rx.from);
    if b.t == T::Udp5436 {
        ensure!(
            rx.port == 5436,
            "PBA from port {} (RFC 5844 §4: the LMA's 5436)",
            rx.port
        );
    }
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    ensure!(
        m.fixed[1] & mh::BA_P != 0,
        "PBA without the P flag (RFC 5213 §8.2)"
    );
    ensure!(
        m.u16_at(2) == seq,
        "PBA sequence {} for PBU {seq} (RFC 6275 §6.1.8)",
        m.u16_at(2)
    );
    if b.t == T::Udp5436 {
        ensure!(
            m.checksum == 0,
            "MH checksum over UDP must be 0 (RFC 5844 §4)"
        );
    }
    Ok(m)
}

fn bindings(d: &pmip_tests::lab::Daemon) -> Vec<pmip_user::ctl::BindingView> {
    d.bindings().unwrap_or_default()
}

fn wait_bindings(
    d: &pmip_tests::lab::Daemon,
    n: usize,
) -> Result<Vec<pmip_user::ctl::BindingView>> {
    d.wait_bindings(Duration::from_secs(3), &format!("{n} binding(s)"), |b| {
        b.len() == n
    })
}

// ------------------------------------------------------------ our LMA

/// 5213-5.3.1-a..f, 5213-5.3.2-a, 5213-5.3.6-a..d, 5844-3.1.3-a..c,
/// 5845-4.2-a, 5213-5.5-b: an accepted PBA, field by field.
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
both!(
    lma_dereg_pba_has_ipv4_options,
    lma_dereg_v4_options,
    ignore = "conformance 5844-3.1.2.6-a: the de-registration PBA has no IPv4 HoA Reply / Default-Router option"
);

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
        if o.iter().any(|x| x.kind == opt::MN_ID) {
            ensure!(
                m.get(opt::MN_ID).is_some(),
                "{what}: MN-ID not echoed in the rejection"
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
    ensure!(
        bindings(&b.daemon).len() <= 1,
        "a rejected PBU left a binding"
    );
    cap.check(2 * (cases.len() + 3))?;
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
both!(
    lma_rejection_echoes_ipv4_request,
    lma_reject_echo_v4,
    ignore = "conformance 5844-3.1.2.6-b: a rejecting PBA carries no IPv4 HoA Reply"
);

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
both!(
    lma_sequence_number_scheme,
    lma_seq_scheme,
    ignore = "conformance 5213-5.5-a: no sequence-number scheme; a PBU without Timestamp gets 156 with a Timestamp"
);

/// 5844-3.1.3-f: two IPv4 Home Address Request options are refused with 173.
fn lma_two_v4(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    let mut o = mag_opts(NAI, mh::now_timestamp(), 1);
    o.push(mh::v4_hoa_req(0, [0; 4]));
    let m = exchange(&b, &p, 1, 10, &o)?;
    ensure!(
        m.fixed[0] == 173,
        "two IPv4 HoA requests: status {} (want 173)",
        m.fixed[0]
    );
    Ok(())
}
both!(
    lma_two_ipv4_requests_refused,
    lma_two_v4,
    ignore = "conformance 5844-3.1.3-f: two IPv4 HoA Request options are accepted (one address) instead of 173"
);

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
    // The MAG restarted: its counter changes.
    p.send(
        b.anchor(),
        b.port(),
        &mh::heartbeat(false, 500, &[mh::restart_counter(2)]),
    )?;
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

/// 5846-8.1-a: `pmipctl clear binding` revokes (trigger 1, administrative).
fn lma_clear(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    ensure!(
        exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?.fixed[0] == 0,
        "register"
    );
    wait_bindings(&b.daemon, 1)?;
    b.daemon.ctl(&["clear", "binding", NAI])?;
    let rx = p
        .recv_where(S, is_type(mh::BR))
        .context("no BRI after clear binding")?;
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

/// 5846-9.2-a: a BRI from a MAG (MAG-initiated revocation) gets a BRA.
fn lma_bri_from_mag(t: T, name: &str) -> Result<()> {
    let Some(b) = AnchorBed::start(t, &tag(t, name), "", "")? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    ensure!(
        exchange(&b, &p, 1, 10, &mag_opts(NAI, mh::now_timestamp(), 1))?.fixed[0] == 0,
        "register"
    );
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
both!(
    lma_answers_mag_initiated_bri,
    lma_bri_from_mag,
    ignore = "conformance 5846-9.2-a: the LMA drops a MAG's BRI without a BRA"
);

// ------------------------------------------------------------ our MAG

/// Waits for our MAG's PBU (skipping heartbeats) and splits it.
fn next_pbu(l: &PeerSock, within: Duration) -> Result<(Rx, Mh)> {
    let rx = l
        .recv_where(within, is_type(mh::BU))
        .context("no PBU from the MAG")?;
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    Ok((rx, m))
}

/// The LMA's accepting PBA for `pbu`: echoes MN-ID, HI, ATT, LLID and
/// Timestamp (RFC 5213 §5.3.6), then GRE key, IPv4 HoA Reply, router.
fn pba_for(pbu: &Mh, status: u8, lifetime: u16, tail: &[Opt]) -> Vec<u8> {
    let mut o = Vec::new();
    if let Some(n) = pbu.nai() {
        o.push(mh::mn_id(&n));
    }
    for (k, f) in [(opt::HI, 1usize), (opt::ATT, 1)] {
        if let Some(d) = pbu.get(k) {
            o.push(if k == opt::HI {
                mh::hi(d[f])
            } else {
                mh::att(d[f])
            });
        }
    }
    if let Some(d) = pbu.get(opt::LLID) {
        o.push(mh::llid(d[2..8].try_into().unwrap()));
    }
    if let Some(ts) = pbu.timestamp() {
        o.push(mh::timestamp(ts));
    }
    o.extend_from_slice(tail);
    mh::pba(status, mh::BA_P, pbu.u16_at(0), lifetime, &o)
}

const HOME: [u8; 4] = [10, 64, 0, 57];

fn accept_tail(key: u32) -> Vec<Opt> {
    vec![
        mh::gre_key(key),
        mh::v4_hoa_reply(0, 24, HOME),
        mh::v4_default_router([10, 64, 0, 1]),
    ]
}

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
                    .map(|x: &(std::time::Instant, Mh)| x.1.nai())
                    .flatten()
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

/// Registers the subscriber through the test's LMA; returns the first PBU.
fn register(b: &mut AccessBed, l: &PeerSock, lifetime: u16) -> Result<(Rx, Mh)> {
    b.dhcp()?;
    let (rx, m) = next_pbu(l, Duration::from_secs(5))?;
    l.reply(&rx, &pba_for(&m, 0, lifetime, &accept_tail(4242)))?;
    b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    Ok((rx, m))
}

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
both!(
    mag_refuses_zero_home_address,
    mag_zero,
    ignore = "conformance 5844-3.1.2.6-c: a PBA with IPv4 HoA 0.0.0.0 is leased and shown ACTIVE"
);

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
both!(
    mag_deregisters_after_pba_without_gre_key,
    mag_no_key,
    ignore = "conformance 5213-6.9.1.4-a: after a PBA without GRE key the MAG drops the binding locally and never deregisters it"
);

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
both!(
    mag_keeps_own_clock_after_156,
    mag_156,
    ignore =
        "conformance 5213-6.9.1.2-b: after status 156 the MAG takes its timestamps from the LMA's"
);

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
both!(
    mag_leases_the_lmas_default_router,
    mag_router,
    ignore = "conformance 5844-3.4.1-a: the MAG leases its own configured router, not the LMA's Default-Router Address"
);

#[allow(dead_code)]
fn unused(_: IpAddr) {}
