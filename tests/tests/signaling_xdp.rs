//! `signaling.xdp_socket` (issue 18): our LMA reads the IPv6 Mobility
//! Headers sent to it from AF_XDP sockets the fast path redirects them
//! into, and still takes from the kernel's raw socket what the fast path
//! leaves there. A real `pmipd run` in a namespace (the conformance bed,
//! generic XDP on its core veth), the MAG played from bytes over a raw MH
//! socket.
//!
//! The whole PMIPv6 conformance suite runs through the sockets too (PBUs
//! in, and PBAs out once a MAG resolves) with
//! `PMIP_TEST_XDP_SOCKET=1 cargo test --test conformance_pmipv6 over_ipv6_mh`.
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use pmip_tests::conformance::bed::{AnchorBed, PeerSock, XDP_SOCKET};
use pmip_tests::conformance::mh;
use pmip_tests::conformance::v6::*;
use pmip_tests::hostile::stat;

/// The bed's anchor with `signaling.xdp_socket = true` (`on`) or the default.
fn bed(tag: &str, on: bool) -> Result<Option<AnchorBed>> {
    AnchorBed::start_edit(pmip_tests::conformance::bed::T::Mh6, tag, "", "", &|c| {
        if on {
            c.replace(
                "unknown_peers = \"answer\"\n",
                &format!("unknown_peers = \"answer\"\n{XDP_SOCKET}"),
            )
        } else {
            c
        }
    })
}

/// What `show stats` says of the sockets: Mobility Headers read from them,
/// frames dropped there.
fn xdp_counters(b: &AnchorBed) -> Result<(u64, u64)> {
    let s = b.daemon.stats()?;
    Ok((
        stat(&s, "lma transport", "xdp_socket_rx"),
        stat(&s, "lma transport", "xdp_socket_malformed"),
    ))
}

fn setsockopt(fd: BorrowedFd<'_>, opt: libc::c_int, v: &[u8]) -> Result<()> {
    // SAFETY: a valid descriptor; v is valid for its length.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            opt,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        bail!("setsockopt {opt}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A PBU's answer, or what came instead.
fn pba_status(b: &AnchorBed, p: &PeerSock, seq: u16, nai: &str) -> Result<u8> {
    pba_status_at(b, p, seq, nai, mh::now_timestamp())
}

/// [`pba_status`] with the PBU's Timestamp given.
fn pba_status_at(b: &AnchorBed, p: &PeerSock, seq: u16, nai: &str, ts: u64) -> Result<u8> {
    let m = exchange(b, p, seq, 10, &mag_opts(nai, ts, 1))?;
    Ok(m.fixed[0])
}

#[test]
fn lma_reads_mobility_headers_from_its_xdp_sockets() {
    if let Err(e) = reads(&tag(pmip_tests::conformance::bed::T::Mh6, "xsk_reads")) {
        pmip_tests::lab::fail(e);
    }
}

fn reads(tag: &str) -> Result<()> {
    let Some(b) = bed(tag, true)? else {
        return Ok(());
    };
    let p = b.peer(1)?;
    ensure!(pba_status(&b, &p, 1, NAI)? == 0, "PBU not accepted");
    ensure!(
        xdp_counters(&b)? == (1, 0),
        "the PBU did not come through the AF_XDP socket: {:?}",
        b.daemon.stats()?.groups
    );
    // A refresh and a second MN: the same way.
    ensure!(pba_status(&b, &p, 2, NAI)? == 0, "refresh not accepted");
    ensure!(
        pba_status(&b, &p, 3, "other@example.com")? == 0,
        "second MN"
    );
    ensure!(xdp_counters(&b)?.0 == 3, "{:?}", xdp_counters(&b)?);

    // A Destination Options header before the Mobility Header (a PadN
    // option): the fast path leaves the packet to the kernel, whose raw
    // MH socket still reads it.
    let fd = p.mh_fd().context("raw MH socket")?;
    setsockopt(fd, libc::IPV6_DSTOPTS, &[0, 0, 1, 4, 0, 0, 0, 0])?;
    ensure!(
        pba_status(&b, &p, 4, NAI)? == 0,
        "PBU behind a Destination Options header not answered"
    );
    ensure!(
        xdp_counters(&b)?.0 == 3,
        "a PBU behind an extension header came through the AF_XDP socket: {:?}",
        xdp_counters(&b)?
    );
    setsockopt(fd, libc::IPV6_DSTOPTS, &[])?;

    // A wrong Mobility Header checksum (the kernel no longer writes it): read
    // from the socket and dropped by the checksum check (RFC 6275 §6.1.1),
    // never answered, as the kernel's raw socket would have.
    let off: libc::c_int = -1;
    setsockopt(fd, libc::IPV6_CHECKSUM, &off.to_ne_bytes())?;
    let mut bad = mh::pbu(
        5,
        mh::BU_A | mh::BU_P,
        10,
        &mag_opts(NAI, mh::now_timestamp(), 1),
    );
    bad[4] = 0xde;
    bad[5] = 0xad;
    p.send(b.anchor(), b.port(), &bad)?;
    ensure!(
        p.recv_where(Duration::from_millis(700), is_ba).is_none(),
        "a PBU with a wrong checksum was answered"
    );
    b.daemon.wait_counter("rx_bad_checksum", 1, S)?;
    ensure!(xdp_counters(&b)? == (4, 0), "{:?}", xdp_counters(&b)?);
    Ok(())
}

/// With the fast path pinned (`fastpath.pin_dir`), a restarted LMA keeps
/// the program an earlier run attached and reaches its sockets' map: the
/// first PBU after the restart comes through the new run's AF_XDP socket.
#[test]
fn a_restarted_lma_reads_from_its_new_xdp_sockets() {
    if let Err(e) = restarted(&tag(pmip_tests::conformance::bed::T::Mh6, "xsk_restart")) {
        pmip_tests::lab::fail(e);
    }
}

fn restarted(tag: &str) -> Result<()> {
    if !pmip_tests::netns::is_root() {
        return Ok(());
    }
    let fs_dir = std::env::temp_dir().join(format!("pmip-xsk-bpffs-{}", std::process::id()));
    // Declared first: unpinned and unmounted after the bed's daemon stops.
    let _fs = pmip_tests::lab::BpfFs::mount(&fs_dir)?;
    let pins = fs_dir.join("anchor");
    let Some(mut b) =
        AnchorBed::start_edit(pmip_tests::conformance::bed::T::Mh6, tag, "", "", &|c| {
            c.replace(
                "unknown_peers = \"answer\"\n",
                &format!("unknown_peers = \"answer\"\n{XDP_SOCKET}"),
            )
            .replace(
                "attach_mode = \"generic\"\n",
                &format!(
                    "attach_mode = \"generic\"\npin_dir = \"{}\"\n",
                    pins.display()
                ),
            )
        })?
    else {
        return Ok(());
    };
    let p = b.peer(1)?;
    ensure!(pba_status(&b, &p, 1, NAI)? == 0, "PBU not accepted");
    ensure!(xdp_counters(&b)?.0 == 1, "{:?}", xdp_counters(&b)?);
    b.daemon.stop();
    let cfg = b.dir.0.join("anchor.toml");
    let sock = b.dir.0.join("anchor.sock");
    b.daemon = pmip_tests::lab::Daemon::start(&b.anchor_ns, "anchor", &cfg, &sock, "info")?;
    ensure!(
        b.daemon.log_tail(200).contains("already attached"),
        "the restarted LMA did not keep the pinned program"
    );
    ensure!(pba_status(&b, &p, 2, NAI)? == 0, "PBU after the restart");
    ensure!(
        xdp_counters(&b)?.0 == 1,
        "the PBU after the restart did not come through the new AF_XDP socket: {:?}",
        xdp_counters(&b)?
    );
    Ok(())
}

/// A flood of junk Mobility Headers from a stranger through the sockets
/// (more than their rings hold at once) is read, dropped and counted, and
/// a configured MAG's PBU after it is answered (sent again, as a MAG does,
/// if it met a full ring): no one else's bad packets cost a subscriber its
/// registration.
#[test]
fn a_flood_through_the_xdp_sockets_does_not_keep_a_mag_out() {
    if let Err(e) = (|| -> Result<()> {
        let Some(b) = bed(
            &tag(pmip_tests::conformance::bed::T::Mh6, "xsk_flood"),
            true,
        )?
        else {
            return Ok(());
        };
        // Peer 3 is not configured; an unknown MH type, then a truncated
        // Binding Update.
        let stranger = b.peer(3)?;
        const N: usize = 20_000;
        for i in 0..N {
            let junk: &[u8] = if i % 2 == 0 {
                &[59, 0, 99, 0, 0, 0, 0, 0]
            } else {
                &[59, 0, 5, 0, 0, 0, 0, 1]
            };
            stranger.send(b.anchor(), b.port(), junk)?;
        }
        // As a MAG does (RFC 6275 §11.8: a second, then longer): a PBU
        // that met the sockets still full of the flood is dropped there and
        // sent again.
        let p = b.peer(1)?;
        let (mut answer, mut sent) = (None, 0);
        for seq in 1..=10u16 {
            sent = seq;
            let opts = mag_opts(NAI, mh::now_timestamp(), 1);
            p.send(
                b.anchor(),
                b.port(),
                &mh::pbu(seq, mh::BU_A | mh::BU_P, 10, &opts),
            )?;
            if let Some(rx) = p.recv_where(Duration::from_secs(1), is_ba) {
                answer = Some(rx);
                break;
            }
        }
        let Some(rx) = answer else {
            bail!(
                "no PBA to ten PBUs a second apart after the flood: {:?}",
                b.daemon.stats()?.groups
            );
        };
        let status = mh::Mh::parse(&rx.bytes).fixed[0];
        ensure!(status == 0, "PBU after the flood: status {status}");
        let s = b.daemon.stats()?;
        let read = stat(&s, "lma transport", "xdp_socket_rx");
        let dropped = stat(&s, "lma transport", "rx_socket_drops");
        ensure!(
            read >= 1 && read + dropped >= N as u64 / 2,
            "the flood did not come the sockets' way: read {read}, dropped {dropped}: {:?}",
            s.groups
        );
        let refused = stat(&s, "lma", "rx_unknown_type")
            + stat(&s, "lma", "rx_malformed")
            + stat(&s, "lma transport", "rx_unknown_peer");
        ensure!(refused >= 1, "nothing of the flood counted: {:?}", s.groups);
        eprintln!("flood of {N}: {read} read from the sockets, {dropped} dropped there, {refused} refused; PBUs sent: {sent}");
        Ok(())
    })() {
        pmip_tests::lab::fail(e);
    }
}

/// Without the setting nothing comes through AF_XDP sockets (the
/// counters above can tell the two ways apart).
#[test]
fn lma_without_xdp_sockets_reads_the_raw_socket() {
    if let Err(e) = (|| -> Result<()> {
        let Some(b) = bed(&tag(pmip_tests::conformance::bed::T::Mh6, "xsk_off"), false)? else {
            return Ok(());
        };
        let p = b.peer(1)?;
        ensure!(pba_status(&b, &p, 1, NAI)? == 0, "PBU not accepted");
        ensure!(xdp_counters(&b)? == (0, 0), "{:?}", xdp_counters(&b)?);
        Ok(())
    })() {
        pmip_tests::lab::fail(e);
    }
}

/// `signaling.xdp_socket_send`: once the kernel's neighbour entry of the
/// MAG is reachable, the LMA's PBAs leave through the AF_XDP socket as
/// whole frames; the MAG's kernel takes them (its raw MH socket verifies
/// the checksum) and tshark decodes them without a warning. The first
/// PBA, before the LMA has resolved the MAG, goes through the raw socket,
/// which is what has the kernel resolve it; so does one when the kernel's
/// entry of the MAG has gone STALE, which has the kernel verify it, and
/// every answer to a stranger (only the configured MAGs are looked up).
#[test]
fn lma_sends_pbas_through_its_xdp_socket() {
    if let Err(e) = (|| -> Result<()> {
        let Some(b) = AnchorBed::start_edit(
            pmip_tests::conformance::bed::T::Mh6,
            &tag(pmip_tests::conformance::bed::T::Mh6, "xsk_send"),
            "",
            "",
            &|c| {
                c.replace(
                    "unknown_peers = \"answer\"\n",
                    &format!("unknown_peers = \"answer\"\n{XDP_SOCKET}xdp_socket_send = true\n"),
                )
            },
        )?
        else {
            return Ok(());
        };
        let cap = b.capture("xsk_send")?;
        let p = b.peer(1)?;
        let tx = |b: &AnchorBed| -> Result<(u64, u64)> {
            let s = b.daemon.stats()?;
            Ok((
                stat(&s, "lma transport", "xdp_socket_tx"),
                stat(&s, "lma transport", "xdp_socket_tx_kernel"),
            ))
        };
        ensure!(pba_status(&b, &p, 1, NAI)? == 0, "PBU not accepted");
        ensure!(
            tx(&b)? == (0, 1),
            "the first PBA did not go through the raw socket: {:?}",
            tx(&b)?
        );
        // Refreshes until the resolver has the MAG (it looks again within
        // a second of the first PBA's neighbour discovery).
        let mut seq = 1;
        while tx(&b)?.0 == 0 {
            seq += 1;
            ensure!(seq < 40, "no PBA through the socket: {:?}", tx(&b)?);
            ensure!(
                pba_status(&b, &p, seq, NAI)? == 0,
                "refresh {seq} not accepted"
            );
            if tx(&b)?.0 == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // A second MN, and refreshes enough to send from every frame
        // the kernel gave back: answered the same way.
        let via_socket = tx(&b)?.0;
        ensure!(
            pba_status(&b, &p, seq + 1, "other@example.com")? == 0,
            "second MN"
        );
        seq += 1;
        // Back to back: a round trip can be shorter than the Timestamp's
        // 1/65536 s, and the LMA takes only strictly newer ones (RFC 5213
        // §5.5).
        let mut ts = 0;
        for _ in 0..30 {
            seq += 1;
            ts = mh::now_timestamp().max(ts + 1);
            let st = pba_status_at(&b, &p, seq, NAI, ts)?;
            ensure!(st == 0, "refresh {seq}: status {st}");
        }
        ensure!(
            tx(&b)?.0 >= via_socket + 25,
            "the later PBAs: {:?}",
            tx(&b)?
        );
        // The kernel's entry of the MAG gone STALE (as it does ~30 s after
        // its last confirmation, PBAs sent this way never confirming it):
        // one PBA goes through the raw socket, which has the kernel verify
        // the entry (DELAY, then a unicast probe: RFC 4861 §7.3.3), and
        // the next ones through the socket again.
        let mag = b.t.addr(1).to_string();
        let neigh = |args: &[&str]| -> Result<String> {
            let o = b
                .anchor_ns
                .command("ip")
                .args(["-6", "neigh"])
                .args(args)
                .output()?;
            ensure!(
                o.status.success(),
                "ip neigh {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        };
        neigh(&["change", &mag, "dev", "core0", "nud", "stale"])?;
        let (sock_before, kernel_before) = tx(&b)?;
        while tx(&b)?.1 == kernel_before {
            seq += 1;
            ensure!(
                seq < 200,
                "no PBA to the STALE MAG through the raw socket: {:?}",
                tx(&b)?
            );
            ts = mh::now_timestamp().max(ts + 1);
            let st = pba_status_at(&b, &p, seq, NAI, ts)?;
            ensure!(st == 0, "refresh {seq}: status {st}");
            if tx(&b)?.1 == kernel_before {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let state = neigh(&["show", &mag, "dev", "core0"])?;
        ensure!(
            !state.contains("STALE"),
            "the raw PBA did not have the kernel verify the MAG: {state}"
        );
        seq += 1;
        ts = mh::now_timestamp().max(ts + 1);
        ensure!(pba_status_at(&b, &p, seq, NAI, ts)? == 0, "refresh {seq}");
        ensure!(
            tx(&b)?.0 > sock_before && tx(&b)?.1 == kernel_before + 1,
            "after the STALE MAG's one raw PBA: {:?}",
            tx(&b)?
        );
        // Policy routing by source: the operator sends what comes from the
        // LMA's address through a table where the MAG is unreachable. The
        // next hop is looked up as the kernel would for the raw socket,
        // from that address: after a resolver round the PBA does not go
        // out at all (the kernel refuses it), rather than through the
        // socket by the main table's route.
        let (lma_a, mag_a) = (b.anchor().to_string(), b.t.addr(1).to_string());
        let ip = |args: &[&str]| -> Result<()> {
            let o = b.anchor_ns.command("ip").arg("-6").args(args).output()?;
            ensure!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Ok(())
        };
        ip(&["route", "add", "unreachable", &mag_a, "table", "100"])?;
        ip(&[
            "rule", "add", "from", &lma_a, "lookup", "100", "pref", "100",
        ])?;
        // One PBA to have the resolver look again (it may still leave by
        // the route looked up before), then its round.
        // The next refresh, sent without waiting for its answer.
        let refresh = |seq: &mut u16, ts: &mut u64| -> Result<()> {
            *seq += 1;
            *ts = mh::now_timestamp().max(*ts + 1);
            let opts = mag_opts(NAI, *ts, 1);
            p.send(
                b.anchor(),
                b.port(),
                &mh::pbu(*seq, mh::BU_A | mh::BU_P, 10, &opts),
            )?;
            Ok(())
        };
        refresh(&mut seq, &mut ts)?;
        let mut withheld = u16::from(p.recv_where(Duration::from_millis(700), is_ba).is_none());
        std::thread::sleep(Duration::from_millis(1300));
        let before = tx(&b)?;
        refresh(&mut seq, &mut ts)?;
        b.daemon.wait_counter("pbu_accepted", u64::from(seq), S)?;
        ensure!(
            p.recv_where(Duration::from_millis(500), is_ba).is_none() && tx(&b)?.0 == before.0,
            "a PBA went out against the source's routing policy: {:?} then {:?}",
            before,
            tx(&b)?
        );
        withheld += 1;
        ip(&[
            "rule", "del", "from", &lma_a, "lookup", "100", "pref", "100",
        ])?;
        // A stranger (not in peers[], answered 154 as the bed has
        // unknown_peers = "answer"): through the raw socket, also after a
        // resolver round has passed (the absence of an event: waited for).
        let stranger = b.peer(3)?;
        for round in 0..2 {
            let before = tx(&b)?;
            let st = pba_status(&b, &stranger, 1 + round, "s@x")?;
            ensure!(st == 154, "stranger: status {st}");
            ensure!(
                tx(&b)? == (before.0, before.1 + 1),
                "the stranger's PBA, round {round}: {before:?} then {:?}",
                tx(&b)?
            );
            std::thread::sleep(Duration::from_millis(1300));
        }
        let invalid = stat(&b.daemon.stats()?, "lma transport", "xdp_socket_tx_invalid");
        ensure!(invalid == 0, "{invalid} descriptors refused by the kernel");
        let rows = cap.check_fields(
            2 * usize::from(seq - withheld),
            &[
                "ipv6.src",
                "ipv6.dst",
                "ipv6.hlim",
                "mip6.mhtype",
                "mip6.ba.status",
            ],
        )?;
        let (lma, mag) = (b.anchor().to_string(), b.t.addr(1).to_string());
        let pbas: Vec<_> = rows
            .iter()
            .filter(|r| r[0] == lma && r[1] == mag && r[3] == "6")
            .collect();
        ensure!(
            rows.is_empty() || pbas.len() == usize::from(seq - withheld),
            "tshark reads {} PBAs from the LMA to the MAG, want {}: {rows:?}",
            pbas.len(),
            seq - withheld
        );
        ensure!(pbas.iter().all(|r| r[2] == "64" && r[4] == "0"), "{pbas:?}");
        let pbas = pbas.len();
        let (via, raw) = tx(&b)?;
        eprintln!("PBAs: {via} through the socket, {raw} through the raw socket, after {seq} PBUs; tshark read {pbas}");
        Ok(())
    })() {
        pmip_tests::lab::fail(e);
    }
}
