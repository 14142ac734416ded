//! PMIPv6 over real sockets: a MAG and an LMA in two network namespaces
//! register 1 000 subscribers, over IPv6 transport (raw Mobility Header) and
//! over IPv4 transport (UDP 5436), and both sides install every map entry
//! (in `MemDataPlane`). tcpdump records the exchange and tshark decodes it.
//!
//! Over IPv6 the MAG's socket has the kernel's checksum handling turned off
//! (`IPV6_CHECKSUM = -1`): its PBUs carry the checksum our codec computed,
//! and the LMA's kernel, which verifies MH checksums, would drop them if it
//! were wrong.
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use pmip_tests::capture::Capture;
use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::dataplane::{AccessPoint, DataPlane, DpCommand, MemDataPlane, TrafficCounters};
use pmip_user::fastpath::{FastPath, LoadOptions};

/// Both the in-memory record (for exact assertions) and the real fast-path
/// maps (the bindings must reach the kernel too).
struct Tee(MemDataPlane, FastPath);
impl DataPlane for Tee {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
        self.0.apply(cmd)?;
        self.1.apply(cmd)
    }
    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.1.subscriber_counters(sub_id)
    }
}
use pmip_user::agent::registrar::{AccessCommand, AccessEvent, AnchorCommand, AttachRequest};
use pmip_user::agent::shell::{run, Request, ShellCounters};
use pmip_user::pmipv6::lma::{Ipv4PoolConfig, Lma, LmaConfig, Profile};
use pmip_user::pmipv6::mag::{LmaPeerConfig, Mag, MagConfig};
use pmip_user::pmipv6::transport::Sockets;
use pmip_user::pmipv6::LocalAddrs;
use tokio::sync::mpsc;

const SUBSCRIBERS: u32 = 1000;

struct Addrs {
    mag: LocalAddrs,
    lma: LocalAddrs,
    lma_ip: IpAddr,
    mag_ip: IpAddr,
}

fn addrs(v4: bool) -> Addrs {
    let mag6: Ipv6Addr = "2001:db8:cafe:99::1".parse().unwrap();
    let lma6: Ipv6Addr = "2001:db8:cafe:99::2".parse().unwrap();
    let mag4 = Ipv4Addr::new(10, 99, 0, 1);
    let lma4 = Ipv4Addr::new(10, 99, 0, 2);
    if v4 {
        Addrs {
            mag: LocalAddrs {
                v6: None,
                v4: Some(mag4),
            },
            lma: LocalAddrs {
                v6: None,
                v4: Some(lma4),
            },
            lma_ip: lma4.into(),
            mag_ip: mag4.into(),
        }
    } else {
        Addrs {
            mag: LocalAddrs {
                v6: Some(mag6),
                v4: None,
            },
            lma: LocalAddrs {
                v6: Some(lma6),
                v4: None,
            },
            lma_ip: lma6.into(),
            mag_ip: mag6.into(),
        }
    }
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn register_1000(v4: bool) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tag = if v4 { "p6u" } else { "p6r" };
    let mag_ns = Netns::new(tag).unwrap();
    let lma_ns = Netns::new(tag).unwrap();
    veth(&mag_ns, "vmag", &lma_ns, "vlma").unwrap();
    mag_ns
        .exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:cafe:99::1/64",
            "dev",
            "vmag",
            "nodad",
        ])
        .unwrap();
    lma_ns
        .exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:cafe:99::2/64",
            "dev",
            "vlma",
            "nodad",
        ])
        .unwrap();
    mag_ns
        .exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "vmag"])
        .unwrap();
    lma_ns
        .exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", "vlma"])
        .unwrap();

    let dir =
        TempDir(std::env::temp_dir().join(format!("pmipv6-sig-{}-{tag}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let pcap = dir.0.join("signaling.pcap");
    // Listening when this returns; killed on drop if the test fails.
    let capture = tool("tcpdump").then(|| {
        let filter = if v4 { "udp port 5436" } else { "ip6 proto 135" };
        Capture::start(&lma_ns, "vlma", filter, &pcap).unwrap()
    });

    let a = addrs(v4);
    let lma_cfg = LmaConfig {
        local: a.lma,
        mags: vec![a.mag_ip],
        ipv4_pool: Some(Ipv4PoolConfig {
            network: Ipv4Addr::new(10, 100, 0, 0),
            prefix_len: 16,
            gateway: Ipv4Addr::new(10, 100, 255, 254),
        }),
        default_profile: Some(Profile::default()),
        // Same clock on both sides, but give a loaded CI box some slack.
        timestamp_window: Duration::from_secs(2),
        ..LmaConfig::default()
    };
    let mag_cfg = MagConfig {
        local: a.mag,
        lmas: vec![LmaPeerConfig {
            name: "lma1".into(),
            addr: a.lma_ip,
            port: 5436,
        }],
        ..MagConfig::default()
    };

    let (lma_cmd_tx, lma_cmd_rx) = mpsc::unbounded_channel::<Request<AnchorCommand>>();
    let lma_thread = lma_ns
        .thread(
            move || -> (Lma, MemDataPlane, ShellCounters, usize, usize) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let sockets = Sockets::bind(&lma_cfg.local, 5436, true).expect("LMA sockets");
                    let mut lma = Lma::new(lma_cfg, Instant::now(), SystemTime::now());
                    let mut dp = Tee(
                        MemDataPlane::default(),
                        FastPath::load(&LoadOptions::default()).expect("fast path"),
                    );
                    let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
                    let c = run(&mut lma, &sockets, &mut dp, lma_cmd_rx, ev_tx).await;
                    let by_key =
                        dp.1.map_entry_count(pmip_common::maps::ANCHOR_BY_KEY)
                            .unwrap();
                    let by_home =
                        dp.1.map_entry_count(pmip_common::maps::ANCHOR_BY_HOME4)
                            .unwrap();
                    (lma, dp.0, c, by_key, by_home)
                })
            },
        )
        .unwrap();
    // Give the LMA's sockets a moment to bind.
    std::thread::sleep(Duration::from_millis(200));

    let (mag_cmd_tx, mag_cmd_rx) = mpsc::unbounded_channel::<Request<AccessCommand>>();
    let (mag_ev_tx, mut mag_ev_rx) = mpsc::unbounded_channel::<AccessEvent>();
    let mag_thread = mag_ns
        .thread(
            move || -> (Mag, MemDataPlane, ShellCounters, usize, usize) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    // Our own checksum on the wire (see the module comment).
                    let sockets = Sockets::bind(&mag_cfg.local, 5436, false).expect("MAG sockets");
                    let mut mag = Mag::new(mag_cfg, Instant::now(), SystemTime::now());
                    let mut dp = Tee(
                        MemDataPlane::default(),
                        FastPath::load(&LoadOptions::default()).expect("fast path"),
                    );
                    let c = run(&mut mag, &sockets, &mut dp, mag_cmd_rx, mag_ev_tx).await;
                    let by_mac =
                        dp.1.map_entry_count(pmip_common::maps::ACCESS_BY_MAC)
                            .unwrap();
                    let by_key =
                        dp.1.map_entry_count(pmip_common::maps::ACCESS_BY_KEY)
                            .unwrap();
                    (mag, dp.0, c, by_mac, by_key)
                })
            },
        )
        .unwrap();

    let start = Instant::now();
    for i in 0..SUBSCRIBERS {
        let at = AccessPoint {
            ifindex: 2,
            vlan: 0,
            mac: [0x02, 0, 0, 0, (i >> 8) as u8, i as u8],
        };
        mag_cmd_tx
            .send(Request::Command(AccessCommand::Attach(
                AttachRequest::ipv4(at, format!("sub{i}@example.com"), a.lma_ip),
            )))
            .unwrap();
    }
    let mut registered = HashSet::new();
    let mut failed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while registered.len() < SUBSCRIBERS as usize && Instant::now() < deadline {
        match mag_ev_rx.try_recv() {
            Ok(AccessEvent::Registered { at, home_v4, .. }) => {
                assert!(home_v4.is_some());
                registered.insert(at);
            }
            Ok(other) => failed.push(other),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{} transport: {} registrations in {elapsed:?}",
        if v4 { "IPv4" } else { "IPv6" },
        registered.len()
    );
    // The operator's view while both run: counters and the session list.
    let (tx, rx) = tokio::sync::oneshot::channel();
    mag_cmd_tx.send(Request::Report(tx)).unwrap();
    assert_eq!(
        rx.blocking_recv().unwrap().counters["pba_accepted"],
        registered.len() as u64
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    lma_cmd_tx.send(Request::Report(tx)).unwrap();
    assert_eq!(rx.blocking_recv().unwrap().bindings.len(), registered.len());
    drop(mag_cmd_tx);
    let (mag, mag_dp, mag_shell, mag_by_mac, mag_by_key) = mag_thread.join().unwrap();
    drop(lma_cmd_tx);
    let (lma, lma_dp, lma_shell, lma_by_key, lma_by_home) = lma_thread.join().unwrap();
    // Every binding reached the kernel's maps on both sides.
    assert_eq!(
        (mag_by_mac, mag_by_key),
        (SUBSCRIBERS as usize, SUBSCRIBERS as usize),
        "MAG fast-path maps"
    );
    assert_eq!(
        (lma_by_key, lma_by_home),
        (SUBSCRIBERS as usize, SUBSCRIBERS as usize),
        "LMA fast-path maps"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        registered.len(),
        SUBSCRIBERS as usize,
        "MAG {:?} LMA {:?}",
        mag.counters,
        lma.counters
    );

    // Both sides installed every binding, with matching keys and addresses.
    assert_eq!(mag_dp.access.len(), SUBSCRIBERS as usize);
    assert_eq!(lma_dp.anchor.len(), SUBSCRIBERS as usize);
    assert_eq!(lma.binding_count(), SUBSCRIBERS as usize);
    for b in mag_dp.access.values() {
        let anc = &lma_dp.anchor[&b.uplink_key];
        assert_eq!(anc.downlink_key, b.downlink_key);
        assert_eq!(anc.home_v4, b.home_v4);
        assert_eq!(b.tunnel.local, a.mag_ip);
        assert_eq!(b.tunnel.remote, a.lma_ip);
        assert_eq!(anc.tunnel.remote, a.mag_ip);
    }
    let homes: HashSet<_> = mag_dp.access.values().map(|b| b.home_v4).collect();
    assert_eq!(homes.len(), SUBSCRIBERS as usize);
    assert_eq!(lma.counters.registrations, u64::from(SUBSCRIBERS));
    assert_eq!(lma.counters.rx_bad_checksum + lma.counters.rx_malformed, 0);
    assert_eq!(mag.counters.rx_bad_checksum + mag.counters.rx_malformed, 0);
    assert_eq!(mag_shell.tx_errors + lma_shell.tx_errors, 0);

    if let Some(capture) = capture.filter(|_| tool("tshark")) {
        // Let tcpdump write the tail — until every PBU and PBA of the
        // exchange is on disk (a loaded host can delay it by seconds; waiting
        // only for the file to stop growing once cut captures short), or a
        // deadline — then stop it.
        capture.wait_records(2 * SUBSCRIBERS as usize, Duration::from_secs(30));
        capture.stop();
        check_capture(&pcap, v4);
    } else {
        eprintln!("skipped capture check: tcpdump or tshark not installed");
    }
}

fn check_capture(pcap: &std::path::Path, v4: bool) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "mip6.mhtype",
            "-e",
            "mip6.ba.status",
            "-e",
            "mip6.mnid.identifier",
            "-e",
            "mip6.gre_key",
            "-e",
            "mip6.ipv4ha.ha",
            "-e",
            "mip6.csum",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let pbus: Vec<_> = rows.iter().filter(|r| r[0] == "5").collect();
    let pbas: Vec<_> = rows.iter().filter(|r| r[0] == "6").collect();
    assert!(
        pbus.len() >= SUBSCRIBERS as usize,
        "{} PBUs decoded",
        pbus.len()
    );
    assert!(
        pbas.len() >= SUBSCRIBERS as usize,
        "{} PBAs decoded",
        pbas.len()
    );
    let ids: HashSet<&str> = pbus.iter().map(|r| r[2]).collect();
    assert_eq!(ids.len(), SUBSCRIBERS as usize);
    assert!(ids.contains("sub0@example.com") && ids.contains("sub999@example.com"));
    for r in &pbas {
        assert_eq!(r[1], "0", "PBA status {r:?}");
        assert!(
            !r[3].is_empty() && !r[4].is_empty(),
            "PBA without GRE key or home address: {r:?}"
        );
    }
    for r in &rows {
        assert!(r[6].is_empty(), "malformed: {r:?}");
        // No expert info of warning (0x600000) or error (0x800000) severity.
        for sev in r[7].split(',').filter(|s| !s.is_empty()) {
            assert!(
                sev.parse::<u32>().unwrap() < 0x0060_0000,
                "expert info: {r:?}"
            );
        }
        if v4 {
            assert_eq!(r[5], "0x0000", "MH checksum over UDP must be zero: {r:?}");
        }
    }
    if !v4 {
        // Over IPv6 the checksum is computed (the receiving kernel drops wrong
        // ones, so every registration above proves them right). A computed
        // checksum is 0x0000 for about 1 in 65536 messages (RFC 6275 has no
        // UDP-style 0 → 0xffff rule), so only a pattern of zeros is a bug.
        let zeros = rows.iter().filter(|r| r[5] == "0x0000").count();
        assert!(
            zeros * 100 < rows.len(),
            "{zeros} of {} MH checksums are zero",
            rows.len()
        );
    }
}

#[test]
fn register_1000_over_ipv6_transport() {
    register_1000(false);
}

#[test]
fn register_1000_over_ipv4_transport() {
    register_1000(true);
}

/// The premise of the checksum check above: the receiving kernel drops a
/// Mobility Header whose checksum is wrong, and delivers it once it is right.
#[test]
fn kernel_drops_mh_with_bad_checksum() {
    use pmip_user::agent::{Peer, Transmit};
    use pmip_user::pmipv6::wire::{Checksum, Heartbeat, Message};
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let a_ns = Netns::new("p6c").unwrap();
    let b_ns = Netns::new("p6c").unwrap();
    veth(&a_ns, "va", &b_ns, "vb").unwrap();
    a_ns.exec(&[
        "ip",
        "addr",
        "add",
        "2001:db8:cafe:98::1/64",
        "dev",
        "va",
        "nodad",
    ])
    .unwrap();
    b_ns.exec(&[
        "ip",
        "addr",
        "add",
        "2001:db8:cafe:98::2/64",
        "dev",
        "vb",
        "nodad",
    ])
    .unwrap();
    let a6: Ipv6Addr = "2001:db8:cafe:98::1".parse().unwrap();
    let b6: Ipv6Addr = "2001:db8:cafe:98::2".parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let receiver = b_ns
        .thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s = Sockets::bind(
                    &LocalAddrs {
                        v6: Some(b6),
                        v4: None,
                    },
                    0,
                    true,
                )
                .unwrap();
                let _ = tx.send(vec![]);
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                let end = tokio::time::Instant::now() + Duration::from_secs(2);
                while let Ok(Ok((peer, n))) = tokio::time::timeout_at(end, s.recv(&mut buf)).await {
                    assert_eq!(peer, Peer::V6(a6));
                    got.push(buf[..n].to_vec());
                }
                got
            })
        })
        .unwrap();
    rx.recv().unwrap();
    let sent = a_ns
        .run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s = Sockets::bind(
                    &LocalAddrs {
                        v6: Some(a6),
                        v4: None,
                    },
                    0,
                    false,
                )
                .unwrap();
                let hb = |seq| {
                    Message::Heartbeat(Heartbeat {
                        unsolicited: false,
                        response: false,
                        seq,
                        options: vec![],
                    })
                };
                let good = hb(2).to_vec(Checksum::Ipv6 { src: a6, dst: b6 }).unwrap();
                let mut bad = hb(1).to_vec(Checksum::Ipv6 { src: a6, dst: b6 }).unwrap();
                bad[4] ^= 0x55;
                s.send(&Transmit::new(Peer::V6(b6), bad)).await.unwrap();
                s.send(&Transmit::new(Peer::V6(b6), good.clone()))
                    .await
                    .unwrap();
                good
            })
        })
        .unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(
        got,
        vec![sent],
        "only the packet with the right checksum arrives"
    );
}

/// RFC 5844 §4: over IPv4 transport the PBA goes back to the PBU's source
/// port, whatever it is (here an ephemeral one, not 5436).
#[test]
fn pba_returns_to_pbu_source_port() {
    use pmip_user::agent::{Clock, Peer, Transmit};
    use pmip_user::pmipv6::wire::*;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mag_ns = Netns::new("p6p").unwrap();
    let lma_ns = Netns::new("p6p").unwrap();
    veth(&mag_ns, "vmag", &lma_ns, "vlma").unwrap();
    mag_ns
        .exec(&["ip", "addr", "add", "10.98.0.1/24", "dev", "vmag"])
        .unwrap();
    lma_ns
        .exec(&["ip", "addr", "add", "10.98.0.2/24", "dev", "vlma"])
        .unwrap();
    let mag4 = Ipv4Addr::new(10, 98, 0, 1);
    let lma4 = Ipv4Addr::new(10, 98, 0, 2);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Request<AnchorCommand>>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let lma = lma_ns
        .thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cfg = LmaConfig {
                    local: LocalAddrs {
                        v6: None,
                        v4: Some(lma4),
                    },
                    mags: vec![IpAddr::V4(mag4)],
                    ipv4_pool: Some(Ipv4PoolConfig {
                        network: Ipv4Addr::new(10, 100, 0, 0),
                        prefix_len: 24,
                        gateway: Ipv4Addr::new(10, 100, 0, 254),
                    }),
                    default_profile: Some(Profile::default()),
                    ..LmaConfig::default()
                };
                let sockets = Sockets::bind(&cfg.local, 5436, true).unwrap();
                let mut lma = Lma::new(cfg, Instant::now(), SystemTime::now());
                let mut dp = MemDataPlane::default();
                let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
                ready_tx.send(()).unwrap();
                run(&mut lma, &sockets, &mut dp, cmd_rx, ev_tx).await;
                dp.anchor.len()
            })
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let (port, ba) = mag_ns
        .run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s = Sockets::bind(
                    &LocalAddrs {
                        v6: None,
                        v4: Some(mag4),
                    },
                    0,
                    true,
                )
                .unwrap();
                let port = s.udp_local_addr().unwrap().port();
                let ts = Clock::new(Instant::now(), SystemTime::now()).timestamp(Instant::now());
                let pbu = Message::BindingUpdate(BindingUpdate {
                    seq: 1,
                    flags: bu_flags::A | bu_flags::P,
                    lifetime: 900,
                    options: vec![
                        MobilityOption::MnId {
                            subtype: 1,
                            id: b"port@example.com".to_vec(),
                        },
                        MobilityOption::HandoffIndicator(HandoffIndicator::HandoffStateUnknown),
                        MobilityOption::AccessTechType(AccessTechType::Ieee80211),
                        MobilityOption::Timestamp(ts),
                        MobilityOption::GreKey(Some(9)),
                        MobilityOption::Ipv4HoaRequest {
                            prefix_len: 0,
                            addr: Ipv4Addr::UNSPECIFIED,
                        },
                    ],
                });
                let to = Peer::V4(std::net::SocketAddrV4::new(lma4, 5436));
                s.send(&Transmit::new(to, pbu.to_vec(Checksum::None).unwrap()))
                    .await
                    .unwrap();
                let mut buf = [0u8; 2048];
                let (from, n) = tokio::time::timeout(Duration::from_secs(3), s.recv(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(from, to, "the PBA comes from the LMA's port 5436");
                (port, Message::parse(&buf[..n], Checksum::None).unwrap())
            })
        })
        .unwrap();
    drop(cmd_tx);
    assert_eq!(lma.join().unwrap(), 1);
    assert_ne!(port, 5436);
    let Message::BindingAck(ba) = ba else {
        panic!("{ba:?}")
    };
    assert_eq!(ba.status, BaStatus::ACCEPTED);
}

/// A scratch directory removed on drop, also when the test fails.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
