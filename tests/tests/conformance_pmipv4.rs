//! PMIPv4 conformance (issue 12, docs/conformance.md): a real `pmipd run`
//! against the other side played from bytes written here from the figures of
//! RFC 3344, RFC 3543, RFC 6245 and draft-leung-mip4-proxy-mode
//! (pmip_tests::conformance::mip4), on UDP 434. Our HA answers the test's
//! PMA; our PMA, triggered by busybox udhcpc, is answered by the test's HA.
//! Every exchange is captured and decoded by tshark.
//!
//! Tests marked `#[ignore = "conformance <row>: ..."]` show a departure the
//! code still has; they fail until it is fixed.
use std::time::Duration;

use anyhow::{ensure, Context};
use pmip_tests::conformance::bed::{sa, AccessBed, AccessExtra, AnchorBed, PeerSock, T};
use pmip_tests::conformance::mip4::{self as m4, ext, Msg};
use pmip_tests::conformance::v4::*;

// ------------------------------------------------------------ our HA

/// 3344-3.8.3-a/b, 3344-3.4-a, leung-5.1-b, leung-8-a, 6245-4.2-a, 3543-3.2-b:
/// an accepted proxy registration, field by field.
#[test]
fn ha_accepts_prrq() {
    run("h4ok", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let cap = b.capture("accept")?;
        let p = b.peer(1)?;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        ensure!(r.code() == 0, "code {}", r.code());
        ensure!(
            r.lifetime() > 0 && r.lifetime() <= 30,
            "lifetime {}",
            r.lifetime()
        );
        let h = r.home_address();
        ensure!(
            h[..3] == [10, 64, 0] && h[3] > 1 && h[3] < 255,
            "home address {h:?}"
        );
        ensure!(
            r.nai().as_deref() == Some(NAI),
            "NAI not in the reply (RFC 2794)"
        );
        let key = r
            .gre_key()
            .context("no GRE Key in the reply (RFC 6245 §4.2)")?;
        ensure!(
            r.get(ext::PMIP_NONSKIP).is_some(),
            "no Per-Node Authentication Method (draft §5.1 MUST)"
        );
        ensure!(
            r.get(ext::REVOCATION_SUPPORT).is_some(),
            "no Revocation Support in the reply (RFC 3543 §3.2)"
        );
        let v = wait_bindings(&b.daemon, 1)?;
        ensure!(
            v[0].gre_key_down == PMA_KEY && v[0].gre_key_up == key,
            "{v:?}"
        );
        cap.check(1)?;
        Ok(())
    });
}

/// A key rollover (`peers[].also_accept`, RFC 3344 §3.5: the SPI names the
/// association): a request signed with a key the HA also accepts from the
/// PMA is accepted and answered with that key; one with the PMA's own key,
/// with its own; one with a key the HA has not, 132 (on its own key). Each
/// reply's authenticator is checked with the test's own HMAC-MD5, and
/// tshark reads the SPIs.
#[test]
fn ha_answers_with_the_key_the_request_used() {
    run("h4ro", |tag| {
        let old = m4::Sa {
            spi: 0x280,
            key: vec![0x5a; 16],
        };
        let own = format!("key = \"{}\"\n", "11".repeat(16));
        let also = format!(
            "{own}\n[[peers.also_accept]]\nspi = {}\nalgorithm = \"hmac-md5\"\nkey = \"{}\"\n\n",
            old.spi,
            "5a".repeat(16)
        );
        let edit = |c: String| {
            assert!(c.contains(&own), "peer 1's key line");
            c.replacen(&own, &also, 1)
        };
        let Some(b) = AnchorBed::start_edit(T::Mip4, tag, "", "", &edit)? else {
            return Ok(());
        };
        let cap = b.capture("rollover")?;
        let p = b.peer(1)?;
        let t0 = m4::ntp_now();
        let signed = |ident: u64, sa: &m4::Sa| {
            let flags = m4::F_G | m4::F_T;
            let exts = pma_exts(NAI, true);
            let mut q = m4::rrq(flags, 30, [0; 4], HA, coa(1), ident, &exts);
            m4::sign(&mut q, ext::FA_HA_AUTH, sa);
            q
        };
        p.send(b.anchor(), 434, &signed(t0, &old))?;
        let rx = p.recv_where(S, is(m4::RRP)).context("no reply")?;
        let r = Msg::parse(&rx.bytes);
        ensure!(
            r.code() == 0,
            "request on the also-accepted key: code {}",
            r.code()
        );
        r.assert_auth(ext::FA_HA_AUTH, &old);
        wait_bindings(&b.daemon, 1)?;
        // `exchange` checks the reply is on the PMA's own key (sa(1)).
        let r = exchange(&b, &p, 1, &signed(t0 + 1, &sa(1)))?;
        ensure!(r.code() == 0, "request on the own key: code {}", r.code());
        let third = m4::Sa {
            spi: 0x281,
            key: vec![0x5a; 16],
        };
        let r = exchange(&b, &p, 1, &signed(t0 + 2, &third))?;
        ensure!(
            r.code() == 132,
            "request on an unknown key: code {}",
            r.code()
        );
        let rows = cap.check_fields(6, &["ip.src", "mip.type", "mip.auth.spi"])?;
        let spis = |ty: &str, from: &str| -> Vec<String> {
            rows.iter()
                .filter(|r| r[0] == from && r[1] == ty)
                .map(|r| r[2].clone())
                .collect()
        };
        let (pma, ha) = ("10.255.0.1", "10.255.0.10");
        ensure!(
            rows.is_empty()
                || (spis("1", pma) == ["0x00000280", "0x00000100", "0x00000281"]
                    && spis("3", ha) == ["0x00000280", "0x00000100", "0x00000100"]),
            "tshark reads the SPIs as {rows:?}"
        );
        Ok(())
    });
}

/// 3344-3.8.3-c: lifetime 0 removes the binding; the reply has lifetime 0.
#[test]
fn ha_deregistration() {
    run("h4dr", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        let home = r.home_address();
        let d = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                0,
                home,
                m4::ntp_now() + (1 << 32),
                &pma_exts(NAI, true),
            ),
        )?;
        ensure!(
            d.code() == 0 && d.lifetime() == 0,
            "dereg code {} lifetime {}",
            d.code(),
            d.lifetime()
        );
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// 6245-4.2-b (issue 12 #4): the reply to a de-registration that carried a
/// GRE Key carries one too.
#[test]
fn ha_dereg_reply_has_gre_key() {
    run("h4dk", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        let d = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                0,
                r.home_address(),
                m4::ntp_now() + (1 << 32),
                &pma_exts(NAI, true),
            ),
        )?;
        ensure!(
            d.gre_key().is_some(),
            "de-registration reply without GRE Key"
        );
        Ok(())
    });
}

/// Every rejection code the HA owes (RFC 3344 §3.8.2.1/§3.8.3.1, §3.4,
/// RFC 6245 §4.2, draft §8.1), and the silent drop for an unknown PMA.
#[test]
fn ha_rejection_codes() {
    run("h4rj", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let cap = b.capture("reject")?;
        let p = b.peer(1)?;
        let now = m4::ntp_now;
        let gt = m4::F_G | m4::F_T;
        let mut bad_auth = prrq(1, gt, 30, [0; 4], now(), &pma_exts("a@x", true));
        let n = bad_auth.len();
        bad_auth[n - 1] ^= 0xff;
        let unsigned = m4::rrq(gt, 30, [0; 4], HA, coa(1), now(), &pma_exts("b@x", true));
        let mut wrong_spi = m4::rrq(gt, 30, [0; 4], HA, coa(1), now(), &pma_exts("c@x", true));
        m4::sign(
            &mut wrong_spi,
            ext::FA_HA_AUTH,
            &m4::Sa {
                spi: 999,
                key: sa(1).key,
            },
        );
        let mut other_ha = m4::rrq(
            gt,
            30,
            [0; 4],
            [10, 255, 0, 99],
            coa(1),
            now(),
            &pma_exts("d@x", true),
        );
        m4::sign(&mut other_ha, ext::FA_HA_AUTH, &sa(1));
        // RFC 4433 §5.3: a Requested HA extension that is not the HA the
        // request was sent to.
        let mut requested = pma_exts("l@x", true);
        requested.insert(1, m4::dynamic_ha(1, [10, 255, 0, 99]));
        let mut unknown = pma_exts("e@x", true);
        unknown.insert(1, m4::short(99, &[1, 2]));
        let mut ipsec = pma_exts("f@x", true);
        ipsec.pop();
        ipsec.push(m4::per_node_auth(2));
        let no_nai: Vec<m4::Ext> = pma_exts("g@x", true).into_iter().skip(1).collect();
        // Signed twice: the second FA-HA extension covers the first.
        let mut twice = prrq(1, gt, 30, [0; 4], now(), &pma_exts("m@x", true));
        m4::sign(&mut twice, ext::FA_HA_AUTH, &sa(1));
        let cases: Vec<(&str, Vec<u8>, u8)> = vec![
            ("3344-3.8.2.1-a bad authenticator", bad_auth, 132),
            ("3344-3.8.2.1-c two FA-HA extensions", twice, 132),
            ("3344-3.8.2.1-a no FA-HA authentication", unsigned, 132),
            ("3344-3.8.2.1-a unknown SPI", wrong_spi, 132),
            (
                "3344-5.7.1-b Identification out of tolerance",
                prrq(
                    1,
                    gt,
                    30,
                    [0; 4],
                    now() - (3600 << 32),
                    &pma_exts("h@x", true),
                ),
                133,
            ),
            ("3344-3.8.2.1-c unknown HA address", other_ha, 136),
            (
                "4433-5.3-a Requested HA not this HA",
                prrq(1, gt, 30, [0; 4], now(), &requested),
                136,
            ),
            (
                "6245-4.2-c no GRE Key",
                prrq(1, gt, 30, [0; 4], now(), &pma_exts("j@x", false)),
                139,
            ),
            (
                "leung-8.1-b per-node IPsec not supported",
                prrq(1, gt, 30, [0; 4], now(), &ipsec),
                149,
            ),
            (
                "3344-3.8.2.1-b no NAI",
                prrq(1, gt, 30, [0; 4], now(), &no_nai),
                134,
            ),
            (
                "leung-4.1.1-a requested home address not authorised",
                prrq(1, gt, 30, [10, 64, 0, 200], now(), &pma_exts("k@x", true)),
                129,
            ),
        ];
        for (what, bytes, want) in &cases {
            let r = exchange(&b, &p, 1, bytes).with_context(|| what.to_string())?;
            ensure!(r.code() == *want, "{what}: code {} (want {want})", r.code());
            ensure!(
                r.lifetime() == 0,
                "{what}: denial with lifetime {}",
                r.lifetime()
            );
            if *want == 133 {
                let hi = r.ident() >> 32;
                ensure!(
                    (hi as i64 - (now() >> 32) as i64).abs() < 5,
                    "{what}: high-order bits are not the HA's time"
                );
            }
        }
        // 6245-4.2-c: a GRE Key without the G bit is taken as if G were set
        // (SHOULD; an FA may add GRE by its own policy): accepted.
        let no_g = prrq(1, m4::F_T, 30, [0; 4], now(), &pma_exts("i@x", true));
        let r = exchange(&b, &p, 1, &no_g)?;
        ensure!(
            r.code() == 0 && r.lifetime() > 0,
            "6245-4.2-c GRE Key without G: code {}",
            r.code()
        );
        // 3344-1.9-a: an unknown extension 0–127 — the request is silently
        // discarded (RFC 3344 §1.8), no 134.
        p.send(b.anchor(), 434, &prrq(1, gt, 30, [0; 4], now(), &unknown))?;
        ensure!(
            p.recv_where(Duration::from_millis(800), is(m4::RRP))
                .is_none(),
            "a reply to a request with an unknown non-skippable extension"
        );
        // 3344-1.8-a: One-byte Padding (type 0, no Length) before, between
        // and after extensions is skipped; the request is served.
        let mut padded = pma_exts("n@x", true);
        for at in [3, 1, 0] {
            padded.insert(at, vec![0]);
        }
        padded.push(vec![0, 0]);
        let r = exchange(&b, &p, 1, &prrq(1, gt, 30, [0; 4], now(), &padded))?;
        ensure!(r.code() == 0, "a padded request: code {}", r.code());
        // 3344-5.7.1-a: the same Identification again is a replay.
        let id = now();
        ensure!(
            exchange(
                &b,
                &p,
                1,
                &prrq(1, gt, 30, [0; 4], id, &pma_exts("l@x", true))
            )?
            .code()
                == 0,
            "accept"
        );
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(1, gt, 30, [0; 4], id, &pma_exts("l@x", true)),
        )?;
        ensure!(
            r.code() == 133,
            "replayed Identification: code {}",
            r.code()
        );
        // leung-4.3-a: a PMA without a security association is not served.
        let stranger = b.peer(3)?;
        let mut s = m4::rrq(gt, 30, [0; 4], HA, coa(3), now(), &pma_exts("m@x", true));
        m4::sign(&mut s, ext::FA_HA_AUTH, &sa(3));
        stranger.send(b.anchor(), 434, &s)?;
        ensure!(
            stranger.recv(Duration::from_millis(500)).is_none(),
            "answered a PMA without an SA"
        );
        // The padded request's and the replay test's, and the GRE Key
        // without G (6245-4.2-c, accepted).
        ensure!(
            b.daemon.bindings()?.len() == 3,
            "a rejected request left a binding"
        );
        cap.check(cases.len() + 4)?;
        Ok(())
    });
}

/// 3543-4-a/b, leung-4.1.4-a: after a handover the HA revokes the old PMA's
/// binding (A set, addresses, identifier, NAI, FA-HA authenticated),
/// retransmits until acknowledged, and stops after the acknowledgement.
#[test]
fn ha_revokes_after_handover() {
    run("h4rv", |tag| {
        let extra = "bri_delay_min_ms = 300\nbri_max_retransmissions = 3\n";
        let Some(b) = bed(tag, extra)? else {
            return Ok(());
        };
        let cap = b.capture("revoke")?;
        let (p1, p2) = (b.peer(1)?, b.peer(2)?);
        let gt = m4::F_G | m4::F_T;
        let r = exchange(
            &b,
            &p1,
            1,
            &prrq(1, gt, 30, [0; 4], m4::ntp_now(), &pma_exts(NAI, true)),
        )?;
        let home = r.home_address();
        let r2 = exchange(
            &b,
            &p2,
            2,
            &prrq(
                2,
                gt,
                30,
                home,
                m4::ntp_now() + (1 << 32),
                &pma_exts(NAI, true),
            ),
        )?;
        ensure!(
            r2.code() == 0 && r2.home_address() == home,
            "handover reply code {} home {:?}",
            r2.code(),
            r2.home_address()
        );
        let rx = p1
            .recv_where(S, is(m4::REVOCATION))
            .context("no Registration Revocation to the old PMA")?;
        let rv = Msg::parse(&rx.bytes);
        ensure!(
            rv.bytes[2] & 0x80 != 0,
            "A bit clear: the home domain revokes"
        );
        ensure!(rv.home_address() == home, "revocation home address");
        ensure!(
            rv.addr(8) == HA && rv.addr(12) == coa(1),
            "home/foreign domain addresses {:?} {:?}",
            rv.addr(8),
            rv.addr(12)
        );
        ensure!(rv.nai().as_deref() == Some(NAI), "revocation NAI");
        rv.assert_auth(ext::FA_HA_AUTH, &sa(1));
        let id = rv.u32_at(16);
        near_now(id)?;
        let sent = std::time::Instant::now();
        let again = p1
            .recv_where(S, is(m4::REVOCATION))
            .context("revocation not retransmitted")?;
        // RFC 3543 §4.2.2.1: a retransmission carries the current timestamp
        // (a later identifier, signed again), at most one a second for the
        // binding (`bri_delay_min_ms = 300` above is raised to it).
        let gap = sent.elapsed();
        let id2 = Msg::parse(&again.bytes).u32_at(16);
        ensure!(
            id2.wrapping_sub(id) as i32 > 0 && gap > Duration::from_millis(900),
            "retransmission {gap:?} after, identifier {id2} after {id}"
        );
        Msg::parse(&again.bytes).assert_auth(ext::FA_HA_AUTH, &sa(1));
        let mut ack = m4::revocation_ack(home, id2, &[]);
        m4::sign(&mut ack, ext::FA_HA_AUTH, &sa(1));
        p1.reply(&rx, &ack)?;
        ensure!(
            p1.recv_where(Duration::from_millis(800), is(m4::REVOCATION))
                .is_none(),
            "retransmitted after the ack"
        );
        let v = wait_bindings(&b.daemon, 1)?;
        ensure!(
            v[0].peer.to_string() == "10.255.0.2",
            "binding not moved: {v:?}"
        );
        cap.check(4)?;
        Ok(())
    });
}

/// 3543-4-c: `pmipctl clear binding` revokes the PMA's binding.
#[test]
fn ha_clear_binding_revokes() {
    run("h4cl", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        wait_bindings(&b.daemon, 1)?;
        b.daemon.ctl(&["clear", "binding", NAI])?;
        let rx = p
            .recv_where(S, is(m4::REVOCATION))
            .context("no revocation after clear binding")?;
        Msg::parse(&rx.bytes).assert_auth(ext::FA_HA_AUTH, &sa(1));
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// 3543-4-d: a revocation in progress survives an HA restart (RFC 3543
/// §4.2.2.1: retransmitted until acknowledged). The operator releases a
/// binding, the PMA does not answer, the HA restarts (embedded store): the
/// new process sends the revocation again, and the PMA's ack ends it. (The
/// previous binary forgot it: the PMA kept a binding the HA had let go.)
#[test]
fn ha_resumes_a_revocation_after_a_restart() {
    run("h4rr", |tag| {
        let store = pmip_tests::lab::TempDir::new(&format!("{tag}st"))?;
        let path = store.0.join("state");
        let durable = move |c: String| {
            c.replace(
                "backend = \"memory\"",
                &format!("backend = \"embedded\"\npath = \"{}\"", path.display()),
            )
        };
        let Some(mut b) = AnchorBed::start_edit(T::Mip4, tag, "", "", &durable)? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let gt = m4::F_G | m4::F_T;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(1, gt, 30, [0; 4], m4::ntp_now(), &pma_exts(NAI, true)),
        )?;
        ensure!(r.code() == 0, "code {}", r.code());
        b.daemon.ctl(&["clear", "binding", NAI])?;
        p.recv_where(S, is(m4::REVOCATION))
            .context("no revocation after clear binding")?;
        // Stopped before the ack; what the old process sent is drained.
        b.daemon.stop();
        p.drain(Duration::from_millis(100));
        let (cfg, sock) = (b.dir.0.join("anchor.toml"), b.dir.0.join("anchor.sock"));
        b.daemon = pmip_tests::lab::Daemon::start(&b.anchor_ns, "anchor", &cfg, &sock, "info")?;
        let rx = p
            .recv_where(S, is(m4::REVOCATION))
            .context("the revocation was forgotten: none after the restart")?;
        let m = Msg::parse(&rx.bytes);
        m.assert_auth(ext::FA_HA_AUTH, &sa(1));
        ensure!(
            m.nai().as_deref() == Some(NAI) && m.home_address() == r.home_address(),
            "revocation of {:?} at {:?}",
            m.nai(),
            m.home_address()
        );
        let mut ack = m4::revocation_ack(r.home_address(), m.u32_at(16), &[]);
        m4::sign(&mut ack, ext::FA_HA_AUTH, &sa(1));
        p.reply(&rx, &ack)?;
        b.daemon.wait_counter("revocation_acks", 1, S)?;
        b.daemon.wait_counter("revocations_resumed", 1, S)?;
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// A Revocation Identifier is the sender's current 32-bit timestamp (RFC
/// 3543 §3.3, §3.5): ours are NTP seconds, the clock of our Revocation
/// Support extensions.
fn near_now(id: u32) -> anyhow::Result<()> {
    let now = (m4::ntp_now() >> 32) as u32;
    let off = id.wrapping_sub(now) as i32;
    ensure!(
        (-3..=1).contains(&off),
        "identifier {id} is {off} s off our clock's NTP seconds {now}"
    );
    Ok(())
}

/// Registers `nai` as PMA 1, clears its binding and acknowledges the
/// revocation that follows: its Revocation Identifier.
fn revoked_id(b: &AnchorBed, p: &PeerSock, nai: &str) -> anyhow::Result<u32> {
    let gt = m4::F_G | m4::F_T;
    let r = exchange(
        b,
        p,
        1,
        &prrq(1, gt, 30, [0; 4], m4::ntp_now(), &pma_exts(nai, true)),
    )?;
    ensure!(r.code() == 0, "{nai}: code {}", r.code());
    b.daemon.ctl(&["clear", "binding", nai])?;
    let rx = p
        .recv_where(S, |r| {
            is(m4::REVOCATION)(r) && Msg::parse(&r.bytes).nai().as_deref() == Some(nai)
        })
        .with_context(|| format!("no revocation of {nai}"))?;
    let id = Msg::parse(&rx.bytes).u32_at(16);
    let mut ack = m4::revocation_ack(r.home_address(), id, &[]);
    m4::sign(&mut ack, ext::FA_HA_AUTH, &sa(1));
    p.reply(&rx, &ack)?;
    Ok(id)
}

/// 3543-3.3-b: our Revocation Identifiers are timestamps (§3.3, §3.5), not
/// a counter: 40 revocations in a second or two all carry the current
/// second (a counter ran 40 ahead of the clock), and after a restart they
/// go on from the clock — never below what the PMAs saw (a counter seeded
/// from the clock again started below the ones it had run ahead to, and a
/// PMA took them for replays).
#[test]
fn ha_revocation_identifiers_are_timestamps_across_a_restart() {
    run("h4ri", |tag| {
        let Some(mut b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let mut last = 0;
        for k in 0..40 {
            let id = revoked_id(&b, &p, &format!("rid{k}@example.com"))?;
            near_now(id)?;
            ensure!(
                k == 0 || id.wrapping_sub(last) as i32 >= 0,
                "{id} after {last}"
            );
            last = id;
        }
        b.daemon.stop();
        let (cfg, sock) = (b.dir.0.join("anchor.toml"), b.dir.0.join("anchor.sock"));
        b.daemon = pmip_tests::lab::Daemon::start(&b.anchor_ns, "anchor", &cfg, &sock, "info")?;
        let after = revoked_id(&b, &p, "rid-after@example.com")?;
        near_now(after)?;
        ensure!(
            after.wrapping_sub(last) as i32 >= 0,
            "after the restart revocation {after}, before it {last}"
        );
        Ok(())
    });
}

/// 3543-5-a: a revocation from the PMA (foreign domain) is acknowledged.
#[test]
fn ha_acks_pma_initiated_revocation() {
    run("h4pr", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        // Our timestamp, after the one in the registration (§4.2.3.2).
        let id = (m4::ntp_now() >> 32) as u32 + 1;
        let mut rv = m4::revocation(false, r.home_address(), HA, coa(1), id, &[m4::nai(NAI)]);
        m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
        p.send(b.anchor(), 434, &rv)?;
        let rx = p
            .recv_where(S, is(m4::REVOCATION_ACK))
            .context("no Revocation Acknowledgement")?;
        ensure!(Msg::parse(&rx.bytes).u32_at(8) == id, "ack identifier");
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// 3543-4.2.3.2-a: the HA finds the binding a PMA revokes by the
/// revocation's addresses (RFC 3543 §4.2.3.2): one that names the
/// subscriber's NAI with another home address, another foreign domain
/// address or another home domain address revokes nothing (and is
/// acknowledged, so that the PMA stops); the one whose addresses name the
/// binding revokes it.
#[test]
fn ha_revokes_only_the_binding_the_addresses_name() {
    run("h4ra", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(
                1,
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                m4::ntp_now(),
                &pma_exts(NAI, true),
            ),
        )?;
        let home = r.home_address();
        let mut id = (m4::ntp_now() >> 32) as u32 + 1;
        let revoke = |hoa: [u8; 4], hda: [u8; 4], fda: [u8; 4]| -> anyhow::Result<()> {
            id += 1;
            let mut rv = m4::revocation(false, hoa, hda, fda, id, &[m4::nai(NAI)]);
            m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
            p.send(b.anchor(), 434, &rv)?;
            let rx = p
                .recv_where(S, is(m4::REVOCATION_ACK))
                .context("no Revocation Acknowledgement")?;
            ensure!(Msg::parse(&rx.bytes).u32_at(8) == id, "ack identifier");
            Ok(())
        };
        revokes_only_the_named_binding(&b.daemon, home, HA, revoke)
    });
}

// ------------------------------------------------------------ our PMA

/// 3344-3.3-a..c, leung-4.1.1-b, leung-5.1-a, leung-7-a, 6245-4.1-a,
/// 3543-3.2-a: a DHCP DISCOVER makes our PMA send a proxy registration
/// request, field by field; the lease carries the reply's address.
#[test]
fn pma_prrq_on_dhcp_discover() {
    run("p4rq", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        let cap = b.capture("prrq")?;
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        ensure!(rx.port == 434, "request from port {}", rx.port);
        ensure!(
            q.flags() & m4::F_G != 0 && q.flags() & m4::F_T != 0,
            "flags {:#x}: want G and T",
            q.flags()
        );
        ensure!(q.flags() & m4::F_D == 0, "D set (draft §7: always 0)");
        ensure!(q.lifetime() == 40, "lifetime {}", q.lifetime());
        ensure!(
            q.home_address() == [0; 4] && q.home_agent() == HA && q.addr(12) == coa(1),
            "addresses"
        );
        let hi = q.ident() >> 32;
        ensure!(
            (hi as i64 - (m4::ntp_now() >> 32) as i64).abs() < 5,
            "Identification is not an NTP timestamp of now"
        );
        ensure!(q.nai().is_some(), "no NAI");
        let key = q.gre_key().context("no GRE Key (RFC 6245 §4.1)")?;
        ensure!(
            q.get(ext::PMIP_NONSKIP) == Some(&[1][..]),
            "Per-Node Authentication Method {:?}",
            q.get(ext::PMIP_NONSKIP)
        );
        ensure!(
            q.get(ext::REVOCATION_SUPPORT).is_some(),
            "no Revocation Support"
        );
        l.reply(&rx, &accept(&q, 40))?;
        let lease = b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        ensure!(
            lease.ip == "10.64.0.77" && lease.lease == "40",
            "lease {lease:?}"
        );
        let v = wait_bindings(&b.daemon, 1)?;
        ensure!(v[0].gre_key_up == 777 && v[0].gre_key_down == key, "{v:?}");
        cap.check(1)?;
        Ok(())
    });
}

/// leung-6.3-a, 3344-3.6.1.2-a: DHCP RELEASE makes the PMA deregister.
#[test]
fn pma_deregisters_on_release() {
    run("p4dr", |tag| {
        let Some((b, l, _, _)) = registered(tag)? else {
            return Ok(());
        };
        b.client().release()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        ensure!(
            q.lifetime() == 0 && q.home_address() == HOME,
            "dereg lifetime {} home {:?}",
            q.lifetime(),
            q.home_address()
        );
        l.reply(
            &rx,
            &reply(&q, 0, 0, HOME, q.ident(), &[m4::nai(&q.nai().unwrap())]),
        )?;
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// 6245-4.1-b (issue 12 #4): every registration request, de-registration
/// included, carries the GRE Key extension.
#[test]
fn pma_dereg_carries_gre_key() {
    run("p4dk", |tag| {
        let Some((b, l, _, _)) = registered(tag)? else {
            return Ok(());
        };
        b.client().release()?;
        let (_, q) = next_rrq(&l, Duration::from_secs(5))?;
        ensure!(q.lifetime() == 0, "not a de-registration");
        ensure!(
            q.gre_key().is_some(),
            "de-registration request without GRE Key"
        );
        Ok(())
    });
}

/// 3344-3.6.2.1-a: a reply that fails authentication is discarded (no
/// lease); the PMA retransmits. 3344-5.7.1-c: after 133 it resends with the
/// HA's time in the Identification.
#[test]
fn pma_discards_bad_reply_and_resyncs_after_133() {
    run("p4ba", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        let mut forged = accept(&q, 40);
        let n = forged.len();
        forged[n - 1] ^= 1;
        l.reply(&rx, &forged)?;
        let (rx2, q2) = next_rrq(&l, Duration::from_secs(3))
            .context("no retransmission after a forged reply")?;
        ensure!(
            b.client().events().iter().all(|e| e.event != "bound"),
            "leased from a forged reply"
        );
        let ha_time = (m4::ntp_now() + (1000 << 32)) & 0xffff_ffff_0000_0000;
        l.reply(
            &rx2,
            &reply(
                &q2,
                133,
                0,
                [0; 4],
                ha_time | (q2.ident() & 0xffff_ffff),
                &[m4::nai(&q2.nai().unwrap())],
            ),
        )?;
        let sent = std::time::Instant::now();
        let (_, q3) = next_rrq(&l, Duration::from_secs(3)).context("no request after 133")?;
        // RFC 3344 §3.6.3: never two requests within a second.
        ensure!(
            sent.elapsed() > Duration::from_millis(900),
            "the request after the 133 came {:?} after it",
            sent.elapsed()
        );
        let off = (q3.ident() >> 32) as i64 - (ha_time >> 32) as i64;
        ensure!(
            off.abs() < 5,
            "next Identification is {off} s from the HA's time"
        );
        Ok(())
    });
}

/// leung-8.1-c: after 149/150 the PMA does not send to that HA again.
#[test]
fn pma_stops_after_pmip_unsupported() {
    run("p4pu", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        l.reply(
            &rx,
            &reply(&q, 149, 0, [0; 4], q.ident(), &[m4::nai(&q.nai().unwrap())]),
        )?;
        // udhcpc keeps sending DISCOVERs every second.
        ensure!(
            l.recv_where(Duration::from_secs(3), is(m4::RRQ)).is_none(),
            "a new request to the HA that answered 149"
        );
        Ok(())
    });
}

/// 3543-3.4-a, 3543-6-a, leung-4.1.4-b: a revocation from the HA is
/// acknowledged (same identifier and home address, FA-HA authenticated) and
/// the binding goes.
#[test]
fn pma_acks_revocation() {
    run("p4rv", |tag| {
        let Some((b, l, rx, q)) = registered(tag)? else {
            return Ok(());
        };
        let cap = b.capture("revoke")?;
        let mut rv = m4::revocation(
            true,
            HOME,
            HA,
            coa(1),
            0x1234,
            &[m4::nai(&q.nai().unwrap())],
        );
        m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
        l.reply(&rx, &rv)?;
        let a = l
            .recv_where(S, is(m4::REVOCATION_ACK))
            .context("no Revocation Acknowledgement")?;
        let ack = Msg::parse(&a.bytes);
        ensure!(
            ack.home_address() == HOME && ack.u32_at(8) == 0x1234,
            "ack home {:?} id {:#x}",
            ack.home_address(),
            ack.u32_at(8)
        );
        ack.assert_auth(ext::FA_HA_AUTH, &sa(1));
        wait_bindings(&b.daemon, 0)?;
        cap.check(1)?;
        Ok(())
    });
}

/// 3543-4.2.2.2-a: the PMA finds the binding an HA revokes by the
/// revocation's addresses (RFC 3543 §4.2.2.2): one that names the
/// subscriber's NAI with another home address, another foreign domain
/// address (not our care-of address) or another home domain address (not
/// the HA it came from) revokes nothing and is acknowledged; the one whose
/// addresses name the binding revokes it.
#[test]
fn pma_revokes_only_the_binding_the_addresses_name() {
    run("p4ra", |tag| {
        let Some((b, l, rx, q)) = registered(tag)? else {
            return Ok(());
        };
        let nai = q.nai().unwrap();
        let mut id = 0x1234;
        let revoke = |hoa: [u8; 4], hda: [u8; 4], fda: [u8; 4]| -> anyhow::Result<()> {
            id += 1;
            let mut rv = m4::revocation(true, hoa, hda, fda, id, &[m4::nai(&nai)]);
            m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
            l.reply(&rx, &rv)?;
            let a = l
                .recv_where(S, is(m4::REVOCATION_ACK))
                .context("no Revocation Acknowledgement")?;
            ensure!(Msg::parse(&a.bytes).u32_at(8) == id, "ack identifier");
            Ok(())
        };
        revokes_only_the_named_binding(&b.daemon, HOME, HA, revoke)
    });
}

/// 6245-4.1-c, 3344-3.6.1.2-b (issue 12): a reply without the GRE Key the
/// PMA asked for leaves no binding behind at the HA: the PMA deregisters.
#[test]
fn pma_deregisters_after_reply_without_gre_key() {
    run("p4nk", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        l.reply(
            &rx,
            &reply(
                &q,
                0,
                40,
                HOME,
                q.ident(),
                &[m4::nai(&q.nai().unwrap()), m4::per_node_auth(1)],
            ),
        )?;
        let (_, d) = next_rrq(&l, Duration::from_secs(3))?;
        ensure!(
            d.lifetime() == 0,
            "next request is not a de-registration (lifetime {})",
            d.lifetime()
        );
        Ok(())
    });
}

// ------------------------------------------------------------ features (issue 12)

fn access_with(tag: &str, x: AccessExtra) -> anyhow::Result<Option<(AccessBed, PeerSock)>> {
    let Some(b) = AccessBed::start_with(T::Mip4, tag, x)? else {
        return Ok(None);
    };
    let l = b.anchor_sock()?;
    Ok(Some((b, l)))
}

/// 3543-5-b: with `peers[].revocation` and an HA that advertised
/// Revocation Support, the PMA revokes a leaving device (RFC 3543 §3.3: A
/// clear, Home Address, Home and Foreign Domain Addresses, identifier, NAI,
/// FA-HA authenticated), retransmits with the same identifier until the
/// acknowledgement, and sends no de-registration besides.
#[test]
fn pma_revokes_on_release() {
    run("p4pr", |tag| {
        let x = AccessExtra {
            peer: "revocation = true\n",
            ..AccessExtra::default()
        };
        let Some((mut b, l)) = access_with(tag, x)? else {
            return Ok(());
        };
        let cap = b.capture("prevoke")?;
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        let e = [
            m4::nai(&q.nai().unwrap()),
            m4::gre_key(777),
            m4::revocation_support((m4::ntp_now() >> 32) as u32),
            m4::per_node_auth(1),
        ];
        l.reply(&rx, &reply(&q, 0, 40, HOME, q.ident(), &e))?;
        b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        wait_bindings(&b.daemon, 1)?;
        b.client().release()?;
        let r1 = l
            .recv_where(Duration::from_secs(5), is(m4::REVOCATION))
            .context("no Registration Revocation from the PMA")?;
        let rv = Msg::parse(&r1.bytes);
        ensure!(
            rv.bytes[2] & 0x80 == 0,
            "A bit set: the foreign domain revokes"
        );
        ensure!(
            rv.home_address() == HOME,
            "home address {:?}",
            rv.home_address()
        );
        ensure!(
            rv.addr(8) == HA && rv.addr(12) == coa(1),
            "home/foreign domain addresses {:?} {:?}",
            rv.addr(8),
            rv.addr(12)
        );
        ensure!(rv.nai() == q.nai(), "revocation NAI");
        rv.assert_auth(ext::FA_HA_AUTH, &sa(1));
        let id = rv.u32_at(16);
        near_now(id)?;
        let sent = std::time::Instant::now();
        let again = l
            .recv_where(Duration::from_secs(5), is(m4::REVOCATION))
            .context("revocation not retransmitted")?;
        // RFC 3543 §4.2.3.1: a retransmission carries the current timestamp
        // (so a later identifier), at most one revocation a second.
        let gap = sent.elapsed();
        let id2 = Msg::parse(&again.bytes).u32_at(16);
        ensure!(
            id2.wrapping_sub(id) as i32 > 0 && gap > Duration::from_millis(900),
            "retransmission {gap:?} after, identifier {id2} after {id}"
        );
        Msg::parse(&again.bytes).assert_auth(ext::FA_HA_AUTH, &sa(1));
        // The ack of the first transmission, late: it counts (§3.5).
        let mut ack = m4::revocation_ack(HOME, id, &[]);
        m4::sign(&mut ack, ext::FA_HA_AUTH, &sa(1));
        l.reply(&r1, &ack)?;
        wait_bindings(&b.daemon, 0)?;
        ensure!(
            l.recv_where(Duration::from_millis(800), |r| r.bytes.first()
                == Some(&m4::REVOCATION)
                || r.bytes.first() == Some(&m4::RRQ))
                .is_none(),
            "revocation or de-registration after the acknowledgement"
        );
        cap.check(2)?;
        Ok(())
    });
}

/// leung-5.5-b: `interfaces.access[].access_technology` puts the Access
/// Technology Type extension (147, sub-type 4) in the request: IEEE 802.11 = 2.
#[test]
fn pma_access_technology_per_interface() {
    run("p4at", |tag| {
        let x = AccessExtra {
            iface: "access_technology = \"ieee-802.11\"\n",
            ..AccessExtra::default()
        };
        let Some((mut b, l)) = access_with(tag, x)? else {
            return Ok(());
        };
        let cap = b.capture("att")?;
        b.dhcp()?;
        let (_, q) = next_rrq(&l, Duration::from_secs(5))?;
        let att: Vec<&Vec<u8>> = q
            .exts
            .iter()
            .filter(|e| e.1 == ext::PMIP_SKIP && e.3.first() == Some(&4))
            .map(|e| &e.3)
            .collect();
        ensure!(
            att.len() == 1 && att[0][..] == [4, 2],
            "Access Technology Type extension {att:?} (want sub-type 4, 802.11 = 2)"
        );
        cap.check(1)?;
        Ok(())
    });
}

/// 4433-3.1-a: with `peers[].dynamic_ha` the PMA asks for a dynamically
/// assigned HA: Home Agent field 255.255.255.255 and the Dynamic HA
/// extension (139, sub-type 1, requested HA); the reply's Home Agent field
/// is the HA from then on (the de-registration names it).
#[test]
fn pma_dynamic_home_agent() {
    run("p4dh", |tag| {
        let x = AccessExtra {
            peer: "dynamic_ha = true\n",
            ..AccessExtra::default()
        };
        let Some((mut b, l)) = access_with(tag, x)? else {
            return Ok(());
        };
        let cap = b.capture("dynha")?;
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        ensure!(
            q.home_agent() == [255; 4],
            "Home Agent field {:?} (want 255.255.255.255)",
            q.home_agent()
        );
        let d = q.get(139).context("no Dynamic HA extension")?;
        ensure!(d == [1, 10, 255, 0, 10], "Dynamic HA extension {d:?}");
        l.reply(&rx, &accept(&q, 40))?;
        b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        wait_bindings(&b.daemon, 1)?;
        b.client().release()?;
        let (_, dq) = next_rrq(&l, Duration::from_secs(5))?;
        ensure!(
            dq.lifetime() == 0 && dq.home_agent() == HA,
            "de-registration lifetime {} HA {:?} (want the assigned HA)",
            dq.lifetime(),
            dq.home_agent()
        );
        cap.check(2)?;
        Ok(())
    });
}

/// 4433-3.2-a: our HA accepts a request for dynamic assignment (Home Agent
/// field 255.255.255.255, Dynamic HA extension) and names itself in the
/// reply's Home Agent field.
#[test]
fn ha_accepts_dynamic_request() {
    run("h4dy", |tag| {
        let Some(b) = bed(tag, "")? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let mut e = pma_exts(NAI, true);
        e.insert(1, m4::short(139, &[1, 10, 255, 0, 10]));
        let mut q = m4::rrq(
            m4::F_G | m4::F_T,
            30,
            [0; 4],
            [255; 4],
            coa(1),
            m4::ntp_now(),
            &e,
        );
        m4::sign(&mut q, ext::FA_HA_AUTH, &sa(1));
        let r = exchange(&b, &p, 1, &q)?;
        ensure!(r.code() == 0, "code {}", r.code());
        wait_bindings(&b.daemon, 1)?;
        Ok(())
    });
}

/// 3344-3.7.3.1-a: a reply failing FA-HA authentication is a security
/// exception: discarded, counted and logged (at most once a second).
#[test]
fn pma_logs_security_exception() {
    run("p4se", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        let mut forged = accept(&q, 40);
        let n = forged.len();
        forged[n - 1] ^= 1;
        for _ in 0..5 {
            l.reply(&rx, &forged)?;
        }
        next_rrq(&l, Duration::from_secs(3)).context("no retransmission")?;
        let log = b.daemon.log_tail(200);
        let hits = log.matches("security exception").count();
        ensure!(
            hits == 1,
            "{hits} security-exception log lines for 5 forged replies in a burst (want 1):\n{log}"
        );
        b.daemon
            .wait_counter("rx_auth_failed", 5, Duration::ZERO)
            .context("rx_auth_failed not 5")?;
        Ok(())
    });
}

/// 3344-5.1-b: every hash algorithm of the StarOS `fa-ha-spi` command that
/// RFC 3344 allows — `md5` (keyed MD5 prefix+suffix over the fields RFC 3344
/// §3.5.1 protects) and `rfc2002-md5` (RFC 2002's coverage, without the
/// SPI) beside `hmac-md5`: the HA accepts a request authenticated with the
/// configured one, signs its reply with it, and refuses (132) another.
#[test]
fn ha_hash_algorithms() {
    for (name, alg) in [
        ("md5", m4::Alg::KeyedMd5),
        ("rfc2002-md5", m4::Alg::Rfc2002Md5),
    ] {
        let tag = if alg == m4::Alg::KeyedMd5 {
            "h4m5"
        } else {
            "h4r2"
        };
        let edit = move |c: String| c.replace("\"hmac-md5\"", &format!("\"{name}\""));
        let r = (|| -> anyhow::Result<()> {
            let Some(b) = AnchorBed::start_edit(T::Mip4, tag, "", "", &edit)? else {
                return Ok(());
            };
            let cap = b.capture("alg")?;
            let p = b.peer(1)?;
            let mut q = m4::rrq(
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                HA,
                coa(1),
                m4::ntp_now(),
                &pma_exts(NAI, true),
            );
            m4::sign_with(&mut q, ext::FA_HA_AUTH, &sa(1), alg);
            p.send(b.anchor(), 434, &q)?;
            let rx = p.recv_where(S, is(m4::RRP)).context("no reply")?;
            let r = Msg::parse(&rx.bytes);
            ensure!(r.code() == 0, "{name}: code {}", r.code());
            r.assert_auth_with(ext::FA_HA_AUTH, &sa(1), alg);
            // HMAC-MD5 against an SA of another algorithm: 132.
            let mut h = m4::rrq(
                m4::F_G | m4::F_T,
                30,
                [0; 4],
                HA,
                coa(1),
                m4::ntp_now(),
                &pma_exts("other@x", true),
            );
            m4::sign(&mut h, ext::FA_HA_AUTH, &sa(1));
            p.send(b.anchor(), 434, &h)?;
            let rx = p.recv_where(S, is(m4::RRP)).context("no reply")?;
            ensure!(
                Msg::parse(&rx.bytes).code() == 132,
                "{name}: HMAC-MD5 request code {}",
                Msg::parse(&rx.bytes).code()
            );
            cap.check(2)?;
            Ok(())
        })();
        if let Err(e) = r {
            panic!("{name}: {e:#}");
        }
    }
}

// ------------------------------------------------------------ rows untested before

/// 3344-3.6.2.2-a: a reply whose Identification matches no request is
/// discarded; 3344-3.6.3-a: the retransmission carries a new Identification.
#[test]
fn pma_discards_reply_to_another_request() {
    run("p4id", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        let e = [
            m4::nai(&q.nai().unwrap()),
            m4::gre_key(777),
            m4::per_node_auth(1),
        ];
        l.reply(&rx, &reply(&q, 0, 40, HOME, q.ident() ^ 0xdead, &e))?;
        let (rx2, q2) = next_rrq(&l, Duration::from_secs(3))
            .context("no retransmission after the stray reply")?;
        ensure!(
            b.client().events().iter().all(|e| e.event != "bound"),
            "leased from a reply to another request"
        );
        ensure!(
            q2.ident() != q.ident(),
            "retransmission kept the Identification"
        );
        l.reply(&rx2, &accept(&q2, 40))?;
        b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        Ok(())
    });
}

/// leung-4.1.2-a: a renewal names the assigned home address in the Home
/// Address field (and asks for the configured lifetime).
#[test]
fn pma_renewal_names_the_home_address() {
    run("p4rn", |tag| {
        let Some((mut b, l)) = access(tag)? else {
            return Ok(());
        };
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, Duration::from_secs(5))?;
        // Two seconds granted: renewal at 75 %.
        l.reply(&rx, &accept(&q, 2))?;
        b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        let (_, r) = next_rrq(&l, Duration::from_secs(4)).context("no renewal")?;
        ensure!(
            r.home_address() == HOME && r.lifetime() == 40,
            "renewal home {:?} lifetime {}",
            r.home_address(),
            r.lifetime()
        );
        ensure!(r.ident() > q.ident(), "renewal Identification not newer");
        Ok(())
    });
}

/// 3543-6-b: a revocation whose identifier is older than the newest from
/// that HA by more than the window is a replay: silently discarded.
#[test]
fn pma_revocation_replay_not_acted_on() {
    run("p4rr", |tag| {
        let Some((b, l, rx, q)) = registered(tag)? else {
            return Ok(());
        };
        let nai = q.nai().unwrap();
        let send = |id: u32, who: &str| -> anyhow::Result<Msg> {
            let mut rv = m4::revocation(true, HOME, HA, coa(1), id, &[m4::nai(who)]);
            m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
            l.reply(&rx, &rv)?;
            let a = l
                .recv_where(S, is(m4::REVOCATION_ACK))
                .context("no Revocation Acknowledgement")?;
            Ok(Msg::parse(&a.bytes))
        };
        ensure!(send(100, "someone-else@x")?.u32_at(8) == 100, "ack 100");
        // 50: older than the newest from that HA by more than the window
        // (§6.2): a replay, silently discarded (§3.5) — no ack.
        let mut rv = m4::revocation(true, HOME, HA, coa(1), 50, &[m4::nai(&nai)]);
        m4::sign(&mut rv, ext::FA_HA_AUTH, &sa(1));
        l.reply(&rx, &rv)?;
        ensure!(
            l.recv_where(Duration::from_millis(800), is(m4::REVOCATION_ACK))
                .is_none(),
            "a replay acknowledged"
        );
        ensure!(
            wait_bindings(&b.daemon, 1).is_ok(),
            "a replayed revocation removed the binding"
        );
        ensure!(send(101, &nai)?.u32_at(8) == 101, "ack 101");
        wait_bindings(&b.daemon, 0)?;
        Ok(())
    });
}

/// 3344-3.8.2.1-d: no home address left → 130.
#[test]
fn ha_insufficient_resources() {
    run("h4nr", |tag| {
        let edit = |c: String| c.replace("10.64.0.0/24", "10.64.0.0/30");
        let Some(b) = AnchorBed::start_edit(T::Mip4, tag, "", "", &edit)? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        let gt = m4::F_G | m4::F_T;
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(1, gt, 30, [0; 4], m4::ntp_now(), &pma_exts("a@x", true)),
        )?;
        ensure!(r.code() == 0, "the one address: code {}", r.code());
        let r = exchange(
            &b,
            &p,
            1,
            &prrq(1, gt, 30, [0; 4], m4::ntp_now(), &pma_exts("b@x", true)),
        )?;
        ensure!(r.code() == 130, "pool empty: code {} (want 130)", r.code());
        Ok(())
    });
}

// ------------------------------------------------------------ per-MN associations

/// The SPIs tshark reads in a per-MN message: the MN-HA one, then the
/// FA-HA one of PMA 1 (`sa(1)`).
const SPIS: &str = "0x00000300,0x00000100";

/// The mobile node's association of `[[mn_ha]]` in the per-MN tests.
fn mn_sa() -> m4::Sa {
    m4::Sa {
        spi: 0x300,
        key: b"per-MN key 0123".to_vec(),
    }
}

fn mn_ha_toml(selector: &str) -> String {
    let key: String = mn_sa().key.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "\n[[mn_ha]]\n{selector}\nspi = {}\nalgorithm = \"hmac-md5\"\nkey = \"{key}\"\n",
        mn_sa().spi
    )
}

/// A per-MN request from PMA 1: the PMA's extensions without the Per-Node
/// Authentication Method, an MN-HA extension made with `mn`, then the FA-HA
/// one when `fa_ha` (RFC 3344 §3.5.2; RFC 5944 §3.8.2.1).
fn per_mn_prrq(
    nai: &str,
    lifetime: u16,
    hoa: [u8; 4],
    ident: u64,
    mn: &m4::Sa,
    fa_ha: bool,
) -> Vec<u8> {
    let mut exts = pma_exts(nai, true);
    exts.retain(|e| e[0] != ext::PMIP_NONSKIP);
    let mut q = m4::rrq(m4::F_G | m4::F_T, lifetime, hoa, HA, coa(1), ident, &exts);
    m4::sign(&mut q, ext::MN_HA_AUTH, mn);
    if fa_ha {
        m4::sign(&mut q, ext::FA_HA_AUTH, &sa(1));
    }
    q
}

/// 3344-3.5.2-a, 3344-3.8.2.1-f/g/h, leung-4.3-b: our HA with a realm's
/// MN-HA association. A per-MN request (MN-HA, then FA-HA, no Per-Node
/// Authentication Method) is accepted and answered with both extensions; a
/// bad MN-HA authenticator gets 131, signed with the MN's key; a request of
/// a mobile node the HA has no association with is served per node (the
/// PMA's FA-HA extension vouches for it); a registration without the FA-HA
/// extension gets 132; a de-registration needs only the MN's. tshark reads
/// both extensions in the per-MN replies.
#[test]
fn ha_per_mn_authentication() {
    run("h4mn", |tag| {
        let tail = mn_ha_toml("realm = \"Example.COM\"");
        let Some(b) = bed(tag, &tail)? else {
            return Ok(());
        };
        let cap = b.capture("per-mn")?;
        let p = b.peer(1)?;
        let t0 = m4::ntp_now();
        // Accepted, both authenticators in the reply, no method extension.
        let r = exchange(&b, &p, 1, &per_mn_prrq(NAI, 30, [0; 4], t0, &mn_sa(), true))?;
        ensure!(r.code() == 0, "per-MN request: code {}", r.code());
        r.assert_mn_ha(&mn_sa());
        ensure!(
            r.get(ext::PMIP_NONSKIP).is_none(),
            "Per-Node Authentication Method in a per-MN reply: {:?}",
            r.types()
        );
        let home = r.home_address();
        wait_bindings(&b.daemon, 1)?;
        // A bad MN-HA authenticator: 131, signed with the MN's association.
        let wrong = m4::Sa {
            spi: mn_sa().spi,
            key: b"not the MN key".to_vec(),
        };
        let r = exchange(
            &b,
            &p,
            1,
            &per_mn_prrq(NAI, 30, [0; 4], t0 + 1, &wrong, true),
        )?;
        ensure!(r.code() == 131, "bad MN-HA: code {}", r.code());
        r.assert_mn_ha(&mn_sa());
        // No association with this MN: the PMA's FA-HA extension vouches
        // for it — served per node, the reply without MN-HA.
        let r = exchange(
            &b,
            &p,
            1,
            &per_mn_prrq("u@example.org", 30, [0; 4], t0 + 2, &mn_sa(), true),
        )?;
        ensure!(
            r.code() == 0,
            "per-MN request of an unknown MN: code {}",
            r.code()
        );
        ensure!(r.get(ext::MN_HA_AUTH).is_none(), "MN-HA for an unknown MN");
        let r = exchange(
            &b,
            &p,
            1,
            &per_mn_prrq(NAI, 30, [0; 4], t0 + 3, &mn_sa(), false),
        )?;
        // The MN's is good, the FA's missing from a registration: 132.
        ensure!(r.code() == 132, "no FA-HA: code {}", r.code());
        r.assert_mn_ha(&mn_sa());
        b.daemon.wait_counter("mn_unknown", 1, Duration::ZERO)?;
        b.daemon.wait_counter("mn_failed_auth", 1, Duration::ZERO)?;
        // A de-registration with the MN's alone.
        let q = per_mn_prrq(NAI, 0, home, t0 + (1 << 32), &mn_sa(), false);
        let r = exchange(&b, &p, 1, &q)?;
        ensure!(
            r.code() == 0 && r.lifetime() == 0,
            "de-registration: code {} lifetime {}",
            r.code(),
            r.lifetime()
        );
        r.assert_mn_ha(&mn_sa());
        wait_bindings(&b.daemon, 1)?;
        let rows = cap.check_fields(10, &["ip.src", "mip.type", "mip.ext.type", "mip.auth.spi"])?;
        let replies: Vec<_> = rows
            .iter()
            .filter(|r| r.first().map(String::as_str) == Some("10.255.0.10") && r[1] == "3")
            // Per node (the NAI without an association): the FA-HA SPI alone.
            .filter(|r| r[3] != "0x00000100")
            .collect();
        ensure!(
            rows.is_empty()
                || (replies.len() == 4
                    && replies
                        .iter()
                        .all(|r| mn_then_fa(&r[2]) && r[3] == SPIS)),
            "tshark does not read MN-HA (SPI 0x300) then FA-HA (SPI 0x100) in every reply: {rows:?}"
        );
        Ok(())
    });
}

/// tshark's `mip.ext.type` list of a per-MN message: MN-HA (32), then the
/// FA's extensions — its GRE Key (48), if there is one, after the MN-HA
/// one (RFC 6245 §4.1) — and FA-HA (34) last.
fn mn_then_fa(types: &str) -> bool {
    let t: Vec<&str> = types.split(',').collect();
    let at = |x: &str| t.iter().position(|y| *y == x);
    let gre_after = |m: usize| at("48").is_none_or(|g| m < g);
    matches!((at("32"), t.last()), (Some(m), Some(&"34")) if gre_after(m))
}

/// 3344-3.5.2-b, 3344-3.6.2.1-c, leung-4.3-b: our PMA with an MN-HA
/// association for its subscriber's NAI registers per MN — an MN-HA
/// extension, the FA-HA one after it, no Per-Node Authentication Method —
/// discards a reply without the MN's authenticator however good its FA-HA
/// one (it sends the request again), and takes the reply that has both.
#[test]
fn pma_per_mn_registration() {
    run("p4mn", |tag| {
        let m = pmip_tests::conformance::bed::sub_mac();
        let nai = format!(
            "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let tail = mn_ha_toml(&format!("nai = \"{nai}\""));
        let x = AccessExtra {
            profile: &tail,
            ..Default::default()
        };
        let Some((mut b, l)) = access_with(tag, x)? else {
            return Ok(());
        };
        let cap = b.capture("per-mn")?;
        b.dhcp()?;
        let (rx, q) = next_rrq(&l, S)?;
        ensure!(
            q.nai().as_deref() == Some(nai.as_str()),
            "NAI {:?}",
            q.nai()
        );
        q.assert_mn_ha(&mn_sa());
        ensure!(
            q.get(ext::PMIP_NONSKIP).is_none(),
            "Per-Node Authentication Method in a per-MN request: {:?}",
            q.types()
        );
        // FA-HA only (as a per-node HA answers): discarded, sent again.
        l.reply(&rx, &accept(&q, 40))?;
        let (rx, q) = next_rrq(&l, S).context("no request after a reply without MN-HA")?;
        q.assert_mn_ha(&mn_sa());
        b.daemon
            .wait_counter("rx_mn_ha_failed", 1, Duration::ZERO)?;
        // Both: registered.
        let e = [m4::nai(&nai), m4::gre_key(777)];
        let mut r = m4::rrp(0, 40, HOME, HA, q.ident(), &e);
        m4::sign(&mut r, ext::MN_HA_AUTH, &mn_sa());
        m4::sign(&mut r, ext::FA_HA_AUTH, &sa(1));
        l.reply(&rx, &r)?;
        b.client().wait_event("bound", 1, Duration::from_secs(10))?;
        wait_bindings(&b.daemon, 1)?;
        // Two requests and two replies.
        let rows = cap.check_fields(4, &["ip.src", "mip.type", "mip.ext.type", "mip.auth.spi"])?;
        let requests: Vec<_> = rows.iter().filter(|r| r[1] == "1").collect();
        ensure!(
            rows.is_empty()
                || (requests.len() >= 2
                    && requests
                        .iter()
                        .all(|r| mn_then_fa(&r[2]) && r[3] == SPIS)),
            "tshark does not read MN-HA (SPI 0x300), the GRE Key, then FA-HA (SPI 0x100) in every request: {rows:?}"
        );
        Ok(())
    });
}
