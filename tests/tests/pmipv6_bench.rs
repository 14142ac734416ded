//! LMA throughput: bindings per second one LMA (one thread, current-thread
//! runtime, real sockets in a network namespace) sustains, and agent memory
//! per binding. Ignored by default; run in release:
//!
//! ```text
//! cargo test --release -p pmip-tests --test pmipv6_bench -- --ignored --nocapture
//! ```
//! `PMIPV6_BENCH_SIZES=10000,100000` and `PMIPV6_BENCH_RUNS=5` change the defaults.
//! Each run is made twice over real sockets: plain, and with the signaling
//! in ESP (AES-GCM, `Sockets::with_esp`), as the daemon sends it by default.
//!
//! The load generator is not a MAG: it pre-builds distinct PBUs and keeps a
//! window of them outstanding, so what is measured is the LMA (parse,
//! validate, allocate, binding cache, PBA encode, data-plane command) plus
//! the kernel's socket path on one core.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

use pmip_tests::cpu::ThreadClock;
use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::agent::batch::RxBatch;
use pmip_user::agent::registrar::AnchorCommand;
use pmip_user::agent::shell::{run, Request};
use pmip_user::agent::{Clock, Endpoint, Peer, Transmit};
use pmip_user::dataplane::{DataPlane, DpCommand, TrafficCounters};
use pmip_user::esp::{EspAlgorithm, EspConfig, SaDb, SignalingEsp};
use pmip_user::pmipv6::lma::{Ipv4PoolConfig, Lma, LmaConfig, Profile};
use pmip_user::pmipv6::transport::Sockets;
use pmip_user::pmipv6::wire::*;
use pmip_user::pmipv6::LocalAddrs;
use tokio::sync::mpsc;

/// Counts live heap bytes, for memory per binding.
struct CountingAlloc;
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_bytes() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// A data plane that only counts: the map writes are the loader's to measure.
#[derive(Default)]
struct CountingDp {
    installs: u64,
}

impl DataPlane for CountingDp {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
        if matches!(cmd, DpCommand::InstallAnchor(_)) {
            self.installs += 1;
        }
        Ok(())
    }
    fn subscriber_counters(&self, _: u32) -> TrafficCounters {
        TrafficCounters::default()
    }
}

const MAG6: &str = "2001:db8:cafe:97::1";
const LMA6: &str = "2001:db8:cafe:97::2";

fn lma_cfg() -> LmaConfig {
    LmaConfig {
        local: LocalAddrs {
            v6: Some(LMA6.parse().unwrap()),
            v4: None,
        },
        mags: vec![IpAddr::V6(MAG6.parse().unwrap())],
        // 10.0.0.0/8: room for 100k subscribers and more.
        ipv4_pool: Some(Ipv4PoolConfig {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 8,
            gateway: Ipv4Addr::new(10, 0, 0, 1),
        }),
        default_profile: Some(Profile::default()),
        timestamp_window: Duration::from_secs(600),
        ..LmaConfig::default()
    }
}

fn pbu(i: usize, ts: u64, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    Message::BindingUpdate(BindingUpdate {
        seq: i as u16,
        flags: bu_flags::A | bu_flags::P,
        lifetime: 900,
        options: vec![
            MobilityOption::MnId {
                subtype: 1,
                id: format!("bench{i}@example.com").into_bytes(),
            },
            MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
            MobilityOption::AccessTechType(AccessTechType::Ieee80211),
            MobilityOption::MnLinkLayerId(vec![
                2,
                0,
                (i >> 24) as u8,
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ]),
            MobilityOption::Timestamp(ts),
            MobilityOption::GreKey(Some(i as u32 + 1)),
            MobilityOption::Ipv4HoaRequest {
                prefix_len: 0,
                addr: Ipv4Addr::UNSPECIFIED,
            },
            MobilityOption::Ipv4DhcpSupportMode { server: true },
        ],
    })
    .to_vec(Checksum::Ipv6 { src, dst })
    .unwrap()
}

/// The SAs of one side: MAG → LMA on 0x7001, LMA → MAG on 0x7002.
fn esp(local: LocalAddrs, peer: &str, mag_side: bool) -> SignalingEsp {
    let (up, down) = (
        "0x101112131415161718191a1b1c1d1e1f20212223",
        "0x303132333435363738393a3b3c3d3e3f40414243",
    );
    let (spi_in, spi_out, key_in, key_out) = if mag_side {
        (0x7002, 0x7001, down, up)
    } else {
        (0x7001, 0x7002, up, down)
    };
    let c = EspConfig {
        spi_in,
        spi_out,
        algorithm: EspAlgorithm::AesGcm,
        key_in: key_in.into(),
        key_out: key_out.into(),
        auth_key_in: None,
        auth_key_out: None,
        replay_window: 64,
        esn: false,
    };
    let mut db = SaDb::new();
    db.add_peer(peer.parse().unwrap(), &c.check("bench").unwrap())
        .unwrap();
    SignalingEsp::new(db, local, 5436)
}

/// Whether the kernel computes and checks the Mobility Header checksum
/// (as the daemon has it), or only our code does (`PMIPV6_BENCH_KERNEL_CSUM=0`:
/// `IPV6_CHECKSUM` -1, the state machine verifies what it parses).
fn kernel_checksum() -> bool {
    std::env::var("PMIPV6_BENCH_KERNEL_CSUM").map_or(true, |v| v != "0")
}

/// The signaling sockets of `local`, in ESP with `peer` when `protect`.
fn sockets(local: LocalAddrs, peer: &str, protect: bool, mag_side: bool) -> Sockets {
    let s = Sockets::bind(&local, 0, kernel_checksum()).unwrap();
    if protect {
        s.with_esp(esp(local, peer, mag_side), None).unwrap()
    } else {
        s
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// What one run over real sockets measured.
#[derive(Clone, Copy)]
struct Run {
    /// Bindings per wall-clock second.
    rate: f64,
    /// CPU time of the LMA's thread per binding, in microseconds.
    cpu_us: f64,
}

/// One run over real sockets (in ESP with `protect`).
fn socket_run(n: usize, protect: bool) -> Run {
    let mag_ns = Netns::new("p6b").unwrap();
    let lma_ns = Netns::new("p6b").unwrap();
    veth(&mag_ns, "vmag", &lma_ns, "vlma").unwrap();
    mag_ns
        .exec(&[
            "ip",
            "addr",
            "add",
            &format!("{MAG6}/64"),
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
            &format!("{LMA6}/64"),
            "dev",
            "vlma",
            "nodad",
        ])
        .unwrap();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Request<AnchorCommand>>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let lma = lma_ns
        .thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cfg = lma_cfg();
                let sockets = sockets(cfg.local, MAG6, protect, false);
                let mut lma = Lma::new(cfg, Instant::now(), SystemTime::now());
                let mut dp = CountingDp::default();
                let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
                ready_tx.send(ThreadClock::current()).unwrap();
                run(&mut lma, &sockets, &mut dp, cmd_rx, ev_tx).await;
                (lma.binding_count(), dp.installs)
            })
        })
        .unwrap();
    let lma_cpu = ready_rx.recv().unwrap();
    let cpu0 = lma_cpu.now();
    let elapsed = mag_ns
        .run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let src: Ipv6Addr = MAG6.parse().unwrap();
                let dst: Ipv6Addr = LMA6.parse().unwrap();
                let clock = Clock::new(Instant::now(), SystemTime::now());
                let ts = clock.timestamp(Instant::now());
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| pbu(i, ts, src, dst)).collect();
                let local = LocalAddrs {
                    v6: Some(src),
                    v4: None,
                };
                let s = sockets(local, LMA6, protect, true);
                const WINDOW: usize = 1024;
                let batched = std::env::var("PMIP_BENCH_GEN").map_or(true, |v| v != "single");
                let ts: Vec<Transmit> = msgs
                    .into_iter()
                    .map(|m| Transmit::new(Peer::V6(dst), m))
                    .collect();
                let mut batch = RxBatch::new();
                let check = |d: &[u8]| match Message::parse(d, Checksum::None) {
                    Ok(Message::BindingAck(ba)) => {
                        assert!(ba.status.is_accepted(), "{ba:?}");
                        true
                    }
                    _ => false,
                };
                let mut sent = 0usize;
                let mut acked = 0usize;
                let mut buf = [0u8; 2048];
                let start = Instant::now();
                let mut last_progress = Instant::now();
                while acked < n {
                    let end = n.min(acked + WINDOW);
                    if batched && sent < end {
                        let r = s.send_batch(&ts[sent..end]).await;
                        assert!(r.failed.is_empty(), "send failed: {r:?}");
                        sent = end;
                    }
                    while !batched && sent < end {
                        s.send(&ts[sent]).await.unwrap();
                        sent += 1;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf)).await {
                        Ok(Ok((_, len))) => {
                            acked += usize::from(check(&buf[..len]));
                            if batched {
                                batch.clear();
                                s.try_recv_batch(&mut batch);
                                acked += batch.iter().filter(|(_, d)| check(d)).count();
                            }
                            last_progress = Instant::now();
                        }
                        _ => {
                            // PBUs carry fixed timestamps and are not re-sent:
                            // a loss shows as a stall and fails the run.
                            assert!(
                                last_progress.elapsed() < Duration::from_secs(2),
                                "stalled at {acked}/{n}"
                            );
                        }
                    }
                }
                start.elapsed()
            })
        })
        .unwrap();
    // The LMA's thread is alive until the request channel closes.
    let cpu = lma_cpu.now() - cpu0;
    drop(cmd_tx);
    let (count, installs) = lma.join().unwrap();
    assert_eq!(count, n, "bindings in the cache");
    assert_eq!(installs as usize, n);
    Run {
        rate: n as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
    }
}

/// Takes the endpoint's store writes as the shell does after each pass
/// (written: nothing to keep them for), so that what a bench counts as the
/// registrar's heap is not a queue no shell would let grow.
fn drain_store<E: Endpoint>(ep: &mut E, now: Instant) {
    let mut any = false;
    while ep.poll_store().is_some() {
        any = true;
    }
    if any {
        ep.stored(now, true);
    }
}

/// Heap bytes per binding held by a MAG (binding update list, indexes,
/// timers), registering `n` subscribers with a sans-IO LMA.
fn mag_heap_per_binding(n: usize) -> f64 {
    use pmip_user::dataplane::AccessPoint;
    use pmip_user::pmipv6::mag::{AttachRequest, LmaPeerConfig, Mag, MagConfig};
    let now = Instant::now();
    let wall = SystemTime::now();
    let mag6: Ipv6Addr = MAG6.parse().unwrap();
    let lma6: Ipv6Addr = LMA6.parse().unwrap();
    let mut lma = Lma::new(lma_cfg(), now, wall);
    let bytes = |v: &Vec<Transmit>| {
        v.capacity() * std::mem::size_of::<Transmit>()
            + v.iter().map(|t| t.payload.len()).sum::<usize>()
    };
    let b0 = live_bytes();
    let mut mag = Mag::new(
        MagConfig {
            local: LocalAddrs {
                v6: Some(mag6),
                v4: None,
            },
            lmas: vec![LmaPeerConfig {
                name: "lma1".into(),
                addr: IpAddr::V6(lma6),
                port: 5436,
            }],
            ..MagConfig::default()
        },
        now,
        wall,
    );
    let mut pbus = Vec::new();
    for i in 0..n {
        mag.attach(
            now,
            AttachRequest {
                at: AccessPoint {
                    ifindex: 2,
                    vlan: 0,
                    mac: [
                        2,
                        0,
                        (i >> 24) as u8,
                        (i >> 16) as u8,
                        (i >> 8) as u8,
                        i as u8,
                    ],
                },
                mn_id: format!("bench{i}@example.com").into_bytes(),
                lma: "lma1".into(),
                ipv4: true,
                requested_v4: None,
                ipv6: false,
                apn: None,
                att: None,
            },
        );
        drain_store(&mut mag, now);
        while let Some(t) = mag.poll_transmit() {
            pbus.push(t);
        }
    }
    let part1 = live_bytes() - b0 - bytes(&pbus);
    let mut pbas = Vec::new();
    for t in &pbus {
        lma.handle(now, Peer::V6(mag6), &t.payload);
        drain_store(&mut lma, now);
        while let Some(t) = lma.poll_transmit() {
            pbas.push(t);
        }
        while lma.poll_dp().is_some() {}
    }
    drop(pbus);
    let pba_bytes = bytes(&pbas);
    let b2 = live_bytes();
    for t in &pbas {
        mag.handle(now, Peer::V6(lma6), &t.payload);
        drain_store(&mut mag, now);
        while mag.poll_dp().is_some() {}
        while mag.poll_event().is_some() {}
    }
    drop(pbas);
    let part2 = (live_bytes() + pba_bytes) as f64 - b2 as f64;
    assert_eq!(mag.active_count(), n);
    (part1 as f64 + part2) / n as f64
}

/// Sans-IO: the LMA alone, PBUs handed in from memory. Returns (bindings/s, bytes per binding).
fn core_run(n: usize) -> (f64, f64) {
    let src: Ipv6Addr = MAG6.parse().unwrap();
    let dst: Ipv6Addr = LMA6.parse().unwrap();
    let now = Instant::now();
    let wall = SystemTime::now();
    let ts = Clock::new(now, wall).timestamp(now);
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| pbu(i, ts, src, dst)).collect();
    let before = live_bytes();
    let mut lma = Lma::new(lma_cfg(), now, wall);
    let mut dp = CountingDp::default();
    let start = Instant::now();
    for m in &msgs {
        lma.handle(now, Peer::V6(src), m);
        drain_store(&mut lma, now);
        while let Some(t) = lma.poll_transmit() {
            std::hint::black_box(t);
        }
        while let Some(c) = lma.poll_dp() {
            dp.apply(&c).unwrap();
        }
        // Events go to the daemon as the shell hands them out.
        while lma.poll_event().is_some() {}
    }
    let el = start.elapsed();
    let after = live_bytes();
    assert_eq!(lma.binding_count(), n);
    // Heap held by the LMA (binding cache, indexes, pools, timers) per binding.
    let per = after.saturating_sub(before) as f64 / n as f64;
    drop(lma);
    (n as f64 / el.as_secs_f64(), per)
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn lma_bindings_per_second() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let sizes: Vec<usize> = std::env::var("PMIPV6_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let runs: usize = std::env::var("PMIPV6_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for &n in &sizes {
        let mut sock = Vec::new();
        let mut sock_esp = Vec::new();
        let mut core = Vec::new();
        let mut mem = Vec::new();
        let mag_mem = mag_heap_per_binding(n);
        for _ in 0..runs {
            sock.push(socket_run(n, false));
            sock_esp.push(socket_run(n, true));
            let (r, m) = core_run(n);
            core.push(r);
            mem.push(m);
        }
        let rates = |v: &[Run]| v.iter().map(|r| r.rate as u64).collect::<Vec<_>>();
        let per_cpu_s = |v: &[Run]| median(v.iter().map(|r| 1e6 / r.cpu_us).collect());
        let cpu_us = |v: &[Run]| median(v.iter().map(|r| r.cpu_us).collect());
        println!(
            "LMA n={n}: real sockets median {:.0} bindings/s (runs {:?}), {:.0} per CPU-second of the LMA's thread ({:.2} µs each); in ESP median {:.0} bindings/s (runs {:?}), {:.0} per CPU-second ({:.2} µs); sans-IO core median {:.0} bindings/s; ~{:.0} heap bytes/binding in the LMA, ~{:.0} in the MAG",
            median(sock.iter().map(|r| r.rate).collect()),
            rates(&sock),
            per_cpu_s(&sock),
            cpu_us(&sock),
            median(sock_esp.iter().map(|r| r.rate).collect()),
            rates(&sock_esp),
            per_cpu_s(&sock_esp),
            cpu_us(&sock_esp),
            median(core),
            median(mem),
            mag_mem
        );
    }
}
