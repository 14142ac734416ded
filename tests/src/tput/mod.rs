//! Throughput through the tunnel on veths (`pmip-bench throughput`, `tcp`).
//!
//! Topology, one namespace each:
//!
//! ```text
//! gen [gen0] ── [acc0] mag [core0] ── [core0] lma [cn0] ── [snk0] sink
//! gen [gst0] ─────────────────────────────────────────────── [sst0] sink   (straight pair)
//! ```
//!
//! Frames come from `tg_gen` (pmip-ebpf/src/test/trafficgen.rs) run with
//! BPF_PROG_TEST_RUN in live-frames mode, one thread per CPU, each its own
//! flow (UDP port) and so its own veth queue; they are counted and dropped by
//! `tg_sink` on the sink's veth. Only what reaches the sink counts; what was
//! offered but did not arrive is reported with the hop that dropped it
//! (veth XDP and device drop statistics, the fast path's drop counters).
//!
//! Some kernels refuse live frames for every program (EPERM; seen on a
//! sandboxing kernel build, 6.18.44-fc, where a plain TestRun works). There
//! `Topo::new` finds so with one probe frame and closes the loop instead:
//! the sinks run `tg_loop`, which counts as `tg_sink` does and sends each
//! frame back out of the first veth with its template rewritten; a few
//! frames per CPU (PMIP_BENCH_LOOP_FRAMES, 128) put in through an
//! `AF_PACKET` socket then go round the hops in their CPU's softirq at the
//! chain's own pace, as live frames do, until the sink has counted what the
//! measurement asked for; then the loop is stopped and every frame must
//! come back (one that does not is `loop:lost`). A lap is the two hops, the
//! sink's count, the template and one redirect: a live frame's path without
//! the test run's own work per frame, so a lap is shorter than a live
//! frame's chain and the ratios to the ceiling are, if anything, lower.
//! PMIP_BENCH_GENERATOR=live|loop|packet picks a generator by hand (`packet`:
//! every frame through `AF_PACKET` `sendmmsg`, ~1 µs a frame, which bounds
//! every row).
//!
//! Cases, interleaved round by round on the same hops:
//! - `veth`: the straight pair (gst0 → sst0), nothing in between;
//! - `kernel`: plain kernel IP forwarding at mag and lma, no tunnel, no XDP
//!   (GRO on the veth the flow enters by, acc0 up and cn0 down, so that
//!   injected XDP frames reach the stack);
//! - `redirect`: `tg_fwd` (MAC rewrite + redirect, nothing else) native at both hops;
//! - `min-fwd`: `bench_min_fwd` (one hash lookup, `bpf_fib_lookup`, redirect) native at both hops;
//! - `min-tunnel`: the least any XDP GRE tunnel does, native at both hops:
//!   `tg_min_encap` (grow the head by outer IPv4 + GRE, write them from fixed
//!   values with the length and checksum, redirect) at the first,
//!   `tg_min_decap` (check for GRE, shrink the head, write the MACs,
//!   redirect) at the second; no lookup, counter, check or TTL. The fast
//!   path's rows against it say what its own logic costs (IPv4 table only);
//! - `fastpath-native`, `fastpath-generic`: the fast path as pmipd attaches it (the
//!   program of each interface's role, `xdp_program_for`) with static access and
//!   anchor bindings (encap at mag, decap at lma);
//! - `fastpath-tc`: the same with `pmip_tc_ingress` at both gateways and no
//!   XDP on their interfaces (GRO as for `kernel`: the injected XDP frames
//!   reach TC only through the stack, as for generic XDP).
//!
//! IPv6 inner (issue 15), a second table: the generator sends IPv6/UDP
//! frames (`tg_gen6`) from an address in the subscriber's home network
//! prefix to the correspondent (up) and from the sink's namespace back to
//! the subscriber (down, counted by `tg_sink` on gen0), through the fast
//! path over an IPv4 and an IPv6 tunnel, beside the redirect ceiling and
//! kernel IPv6 forwarding on the same frames. The sink counts each family
//! apart: a row counts only frames of its own inner family.
//!
//! Files: `frame.rs` (flows, frames), `progs.rs` (the test object's
//! programs, the generator's two ways to send), `topo.rs` (namespaces, one
//! measurement), `gateways.rs` (the fast paths and their bindings),
//! `throughput.rs` (the benchmark and its tables); `tcp` and `trafgen` here.
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::netns::Netns;

mod frame;
mod gateways;
mod progs;
mod throughput;
mod topo;

pub use frame::{udp6_frame, udp_frame, Dir, Family, Flow, TG_HDR6_LEN, TG_HDR_LEN, TG_PORT_BASE};
pub use progs::{live_frames_allowed, live_run, packet_run, BenchProgs, Generator};
pub use throughput::{row_key, row_name, runs, throughput};
pub use topo::{Case, Sample, Topo};

const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x10];

/// How long and how often.
#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    /// Target seconds per measurement.
    pub secs: f64,
    /// Frame lengths handed to the veth (Ethernet header included, no FCS).
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    /// Inner families: IPv4 (the first table), IPv6 (the second).
    pub inner: Vec<Family>,
}

impl Config {
    pub fn full() -> Self {
        Config {
            rounds: 5,
            secs: 1.0,
            sizes: vec![64, 1400],
            threads: vec![1, 2],
            inner: vec![Family::V4, Family::V6],
        }
    }
    pub fn smoke() -> Self {
        Config {
            rounds: 1,
            secs: 0.05,
            sizes: vec![64],
            threads: vec![1],
            inner: vec![Family::V4],
        }
    }

    /// [`full`](Self::full) or [`smoke`](Self::smoke), with the overrides
    /// for quick looks: PMIP_BENCH_ROUNDS, PMIP_BENCH_SECS;
    /// PMIP_BENCH_SIZES=64,1400 and PMIP_BENCH_THREADS=1,2 narrow the matrix;
    /// PMIP_BENCH_INNER=ipv4,ipv6 picks the tables (inner families).
    pub fn from_env(smoke: bool) -> Result<Self> {
        let mut cfg = if smoke {
            Config::smoke()
        } else {
            Config::full()
        };
        let var = |name: &str| std::env::var(name).ok();
        if let Some(r) = var("PMIP_BENCH_ROUNDS").and_then(|v| v.parse().ok()) {
            cfg.rounds = r;
        }
        if let Some(s) = var("PMIP_BENCH_SECS").and_then(|v| v.parse().ok()) {
            cfg.secs = s;
        }
        let list = |name: &str| -> Option<Vec<usize>> {
            var(name).map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        };
        if let Some(v) = list("PMIP_BENCH_SIZES") {
            cfg.sizes = v;
        }
        if let Some(v) = list("PMIP_BENCH_THREADS") {
            cfg.threads = v;
        }
        if let Some(v) = var("PMIP_BENCH_INNER") {
            cfg.inner = v
                .split(',')
                .map(|x| match x.trim() {
                    "ipv4" => Ok(Family::V4),
                    "ipv6" => Ok(Family::V6),
                    other => bail!("PMIP_BENCH_INNER: {other:?} is not ipv4 or ipv6"),
                })
                .collect::<Result<_>>()?;
        }
        Ok(cfg)
    }
}

// ---- namespaces and threads ----

/// Moves the calling thread into `ns` (setns); affects this thread only.
pub fn enter(ns: &Netns) -> Result<()> {
    let path = format!("/var/run/netns/{}", ns.name);
    let f = File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {}: {}", ns.name, std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a scoped thread inside `ns` (so `f` may borrow).
pub fn within<R: Send>(ns: &Netns, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("thread in {} panicked", ns.name))?
    })
}

/// Runs `f` again while it fails with EBUSY, for up to 2 s. An XDP link
/// this process just closed may live on for a moment: a child that another
/// test thread forked and that has not yet exec'd holds a copy of our file
/// table, and with it the link, until its exec closes it (O_CLOEXEC) — so
/// attaching to the same interface again right away can find it taken.
pub fn while_busy<R>(mut f: impl FnMut() -> Result<R>) -> Result<R> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match f() {
            Err(e)
                if format!("{e:#}").contains("os error 16") && std::time::Instant::now() < end =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_cpu(cpu: usize) -> Result<()> {
    // SAFETY: zeroed cpu_set_t and the libc macros on it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "sched_setaffinity({cpu}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// The CPU a single-threaded measurement runs on: the last CPU this thread
/// may run on. Pinning to it makes the figure the same whether the bench
/// is started under `taskset -c N` or not (the fast path's caches are per
/// CPU: a thread that migrates finds them cold on the other CPU, and the
/// kernel runs BPF_PROG_TEST_RUN on the caller's CPU).
pub fn bench_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t filled by the kernel, read with the libc macro.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap_or(0)
    }
}

pub fn ncpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn run(ns: &Netns, cmd: &str) -> Result<()> {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    ns.exec(&args)
        .with_context(|| format!("in {}: {cmd}", ns.name))?;
    Ok(())
}

fn mac_s(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A veth pair with `q` queues on each end, one end in each namespace.
fn veth_q(a: &Netns, a_if: &str, b: &Netns, b_if: &str, q: usize) -> Result<()> {
    let q = q.to_string();
    a.exec(&[
        "ip",
        "link",
        "add",
        a_if,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        &b.name,
    ])?;
    a.exec(&["ip", "link", "set", a_if, "up"])?;
    b.exec(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// Transmit queue i ← CPU i, so that each CPU's skbs stay on its own queue.
fn xps(ns: &Netns, dev: &str, q: usize) -> Result<()> {
    for i in 0..q {
        let mask = format!("{:x}", 1u64 << i);
        ns.exec(&[
            "sh",
            "-c",
            &format!("echo {mask} > /sys/class/net/{dev}/queues/tx-{i}/xps_cpus"),
        ])?;
    }
    Ok(())
}
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

/// Mean of the middle half (the samples from the first to the third
/// quartile). Single-run timings of a path that touches many subscribers
/// are bimodal, with a long tail: their median jumps between the modes from
/// round to round, their mean follows the tail; this follows both modes in
/// proportion and ignores the tail.
pub fn interquartile_mean(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (lo, hi) = (v.len() / 4, v.len() - v.len() / 4);
    if lo >= hi {
        return median(&v);
    }
    v[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
}

pub fn spread(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    if v.is_empty() {
        0.0
    } else {
        max - min
    }
}

/// iperf3 TCP stream gen → sink, Gbit/s, through the tunnel (native fast path) and over plain forwarding.
pub fn tcp(cfg: &Config) -> Result<Value> {
    let mut topo = Topo::new()?;
    let cases = [Case::FastNative, Case::Kernel];
    let mut res: BTreeMap<Case, Vec<f64>> = BTreeMap::new();
    // iperf3 takes whole seconds.
    let secs = cfg.secs.round().max(1.0) as u64;
    for round in 0..cfg.rounds {
        for case in cases {
            topo.set_case(case, Flow::V4)?;
            let ping = topo.gen.exec_status(&[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "203.0.113.2",
            ])?;
            if !ping.status.success() {
                bail!(
                    "{}: no ping through the gateways: {}\ndrops: {:?}",
                    case.key(),
                    String::from_utf8_lossy(&ping.stdout),
                    topo.drops(Dir::Up)?
                );
            }
            let mut server = topo.sink.command("iperf3");
            let mut server = server
                .args(["-s", "-1", "-B", "203.0.113.2"])
                .stdout(std::process::Stdio::null())
                .spawn()?;
            topo.sink
                .wait_tcp_listen(5201, true, Duration::from_secs(5))?;
            let limit = format!("{}", secs + 20);
            let out = topo.gen.exec_status(&[
                "timeout",
                &limit,
                "iperf3",
                "-c",
                "203.0.113.2",
                "--connect-timeout",
                "3000",
                "-t",
                &format!("{secs}"),
                "-J",
            ])?;
            let _ = server.kill();
            let _ = server.wait();
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Value =
                serde_json::from_str(&text).with_context(|| format!("iperf3 output: {text}"))?;
            let bps = v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .ok_or_else(|| anyhow!("iperf3: no sum_received in {text}"))?;
            if bps <= 0.0 {
                bail!("{}: iperf3 moved nothing: {text}", case.key());
            }
            eprintln!(
                "  round {} {:<18} {:.2} Gbit/s",
                round + 1,
                case.key(),
                bps / 1e9
            );
            res.entry(case).or_default().push(bps / 1e9);
        }
    }
    topo.clear()?;
    let kern = median(res.get(&Case::Kernel).map(|v| v.as_slice()).unwrap_or(&[]));
    println!("TCP (iperf3, one stream, {secs} s, TX checksum offload off on the senders), median of {} interleaved rounds", cfg.rounds);
    println!(
        "{:<42} {:>9} {:>8} {:>9}",
        "case", "Gbit/s", "spread", "x kernel"
    );
    let mut rows = Vec::new();
    for case in cases {
        let v = res.get(&case).cloned().unwrap_or_default();
        let m = median(&v);
        let name = if case == Case::Kernel {
            "kernel IP forwarding (no tunnel)"
        } else {
            "through the tunnel, fast path native"
        };
        println!(
            "{:<42} {m:>9.2} {:>8.2} {:>9.2}",
            name,
            spread(&v),
            if kern > 0.0 { m / kern } else { 0.0 }
        );
        rows.push(json!({"case": case.key(), "name": name, "gbps_median": m, "gbps_spread": spread(&v), "gbps_rounds": v,
            "ratio_to_kernel": if kern > 0.0 { m / kern } else { 0.0 }}));
    }
    Ok(json!({"benchmark": "tcp", "rounds": cfg.rounds, "secs": secs, "rows": rows}))
}

/// `pmip-bench trafgen`: the stack-originated generator (trafgen, AF_PACKET
/// TX ring, one process pinned to CPU 0, 64-byte frames) on the same hops,
/// to show what such a generator lets one see: it tops out near its own
/// limit, so the cases it can tell apart are only those slower than it.
pub fn trafgen(cfg: &Config) -> Result<Value> {
    if std::process::Command::new("trafgen")
        .arg("-v")
        .output()
        .is_err()
    {
        println!("trafgen: not installed (Debian netsniff-ng); skipped");
        return Ok(json!({"benchmark": "trafgen", "skipped": "trafgen not installed"}));
    }
    let mut topo = Topo::new()?;
    let cases = [Case::Veth, Case::Kernel, Case::Redirect, Case::FastNative];
    let size = 64;
    let dir = std::env::temp_dir().join(format!("pmip-trafgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = |straight: bool| -> Result<String> {
        let dmac = if straight {
            topo.sst0_mac
        } else {
            topo.acc0_mac
        };
        let f = udp_frame(size, dmac, GEN_MAC, 0);
        let body = f
            .iter()
            .map(|b| format!("0x{b:02x}"))
            .collect::<Vec<_>>()
            .join(", ");
        let p = dir.join(if straight { "straight.cfg" } else { "gw.cfg" });
        std::fs::write(&p, format!("{{ {body} }}\n"))?;
        Ok(p.to_string_lossy().into_owned())
    };
    let (conf_straight, conf_gw) = (conf(true)?, conf(false)?);
    let mut res: BTreeMap<Case, Vec<f64>> = BTreeMap::new();
    let mut lost: BTreeMap<Case, u64> = BTreeMap::new();
    let mut rate: BTreeMap<Case, f64> = BTreeMap::new();
    for round in 0..=cfg.rounds {
        for case in cases {
            topo.set_case(case, Flow::V4)?;
            let straight = case == Case::Veth;
            let n = rate
                .get(&case)
                .map(|r| (r * cfg.secs).clamp(10_000.0, 1e9) as u64)
                .unwrap_or(100_000);
            let sink0 = topo.sink_p.sink_packets()?;
            let t = Instant::now();
            let out = topo.gen.exec_status(&[
                "taskset",
                "-c",
                "0",
                "trafgen",
                "-o",
                if straight { "gst0" } else { "gen0" },
                "-i",
                if straight { &conf_straight } else { &conf_gw },
                "-n",
                &n.to_string(),
                "-P",
                "1",
                "-q",
            ])?;
            let secs = t.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "trafgen failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(30));
            let delivered = topo.sink_p.sink_packets()? - sink0;
            rate.insert(case, n as f64 / secs);
            if round > 0 {
                eprintln!("  round {round} {:<18} trafgen 64 B: {:.3} Mpps (offered {n}, delivered {delivered})", case.key(), delivered as f64 / secs / 1e6);
                res.entry(case)
                    .or_default()
                    .push(delivered as f64 / secs / 1e6);
                *lost.entry(case).or_default() += n.saturating_sub(delivered);
            }
        }
    }
    topo.clear()?;
    let _ = std::fs::remove_dir_all(&dir);
    let redir = median(
        res.get(&Case::Redirect)
            .map(|v| v.as_slice())
            .unwrap_or(&[]),
    );
    println!("trafgen (AF_PACKET, one process on CPU 0, 64 B frames), pps at the sink, median of {} rounds", cfg.rounds);
    println!(
        "{:<42} {:>9} {:>8} {:>9} {:>10}",
        "case", "Mpps", "spread", "x redir", "lost"
    );
    let mut rows = Vec::new();
    for case in cases {
        let v = res.get(&case).cloned().unwrap_or_default();
        let m = median(&v);
        let l = lost.get(&case).copied().unwrap_or(0);
        println!(
            "{:<42} {m:>9.3} {:>8.3} {:>9.2} {l:>10}",
            case.name(),
            spread(&v),
            if redir > 0.0 { m / redir } else { 0.0 }
        );
        rows.push(json!({"case": case.key(), "name": case.name(), "frame_bytes": size, "mpps_median": m, "mpps_spread": spread(&v),
            "mpps_rounds": v, "ratio_to_redirect": if redir > 0.0 { m / redir } else { 0.0 }, "lost": l}));
    }
    Ok(json!({"benchmark": "trafgen", "rounds": cfg.rounds, "secs": cfg.secs, "rows": rows}))
}
