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
//! Cases, interleaved round by round on the same hops:
//! - `veth`: the straight pair (gst0 → sst0), nothing in between;
//! - `kernel`: plain kernel IP forwarding at mag and lma, no tunnel, no XDP
//!   (GRO on acc0 so that injected XDP frames reach the stack);
//! - `redirect`: `tg_fwd` (MAC rewrite + redirect, nothing else) native at both hops;
//! - `min-fwd`: `bench_min_fwd` (one hash lookup, `bpf_fib_lookup`, redirect) native at both hops;
//! - `fastpath-native`, `fastpath-generic`: `pmip_xdp` with static access and
//!   anchor bindings (encap at mag, decap at lma);
//! - `fastpath-tc`: the same with `pmip_tc_ingress` at both gateways and no
//!   XDP on their interfaces (GRO on acc0: the injected XDP frames reach TC
//!   only through the stack, as for generic XDP).
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{Array, DevMap, HashMap, PerCpuArray};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use pmip_common::{role, AccessKey, AccessSubscriber};
use pmip_user::dataplane::{AccessBinding, AccessPoint, AnchorBinding, TunnelEnds};
use pmip_user::fastpath::{
    load_test_object, loaded_xdp, AttachMode, FastPath, IfaceSpec, LoadOptions,
};
use pmip_user::sys::{iface_mac, ifindex};
use serde_json::{json, Value};

use crate::netns::Netns;

pub const TG_HDR_LEN: usize = 48;
pub const TG_PORT_BASE: u16 = 9000;

const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x10];
const HOME: [u8; 4] = [10, 64, 0, 10];
const SINK_IP: [u8; 4] = [203, 0, 113, 2];
const UP_KEY: u32 = 100;
const DOWN_KEY: u32 = 200;

/// How long and how often.
#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    /// Target seconds per measurement.
    pub secs: f64,
    /// Frame lengths handed to the veth (Ethernet header included, no FCS).
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
}

impl Config {
    pub fn full() -> Self {
        Config {
            rounds: 5,
            secs: 1.0,
            sizes: vec![64, 1400],
            threads: vec![1, 2],
        }
    }
    pub fn smoke() -> Self {
        Config {
            rounds: 1,
            secs: 0.05,
            sizes: vec![64],
            threads: vec![1],
        }
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

// ---- the benchmark programs of the object ----

/// The benchmark and test programs' object (pmip-ebpf-test.o), loaded for
/// its benchmark programs (tg_gen, tg_sink, tg_fwd, bench_min_fwd, the
/// per-packet baselines). Links are detached on `detach_all` or drop.
pub struct BenchProgs {
    pub ebpf: Ebpf,
    links: Vec<(&'static str, XdpLinkId)>,
}

impl BenchProgs {
    pub fn load() -> Result<Self> {
        Ok(BenchProgs {
            ebpf: load_test_object()?,
            links: Vec::new(),
        })
    }

    pub fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        loaded_xdp(&mut self.ebpf, name)
    }

    /// Attach (call from a thread inside the interface's namespace).
    pub fn attach(&mut self, name: &'static str, iface: &str, mode: XdpMode) -> Result<()> {
        let id = self
            .prog(name)?
            .attach(iface, mode)
            .with_context(|| format!("attaching {name} to {iface}"))?;
        self.links.push((name, id));
        Ok(())
    }

    pub fn detach_all(&mut self) -> Result<()> {
        for (name, id) in std::mem::take(&mut self.links) {
            self.prog(name)?.detach(id)?;
        }
        Ok(())
    }

    pub fn raw_fd(&mut self, name: &'static str) -> Result<i32> {
        Ok(self.prog(name)?.fd()?.as_fd().as_raw_fd())
    }

    /// Sum over CPUs of the sink's packet counter.
    pub fn sink_packets(&self) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("TG_SINK").ok_or_else(|| anyhow!("TG_SINK"))?)?;
        Ok(m.get(&0, 0)?.iter().sum())
    }

    pub fn set_template(&mut self, cpu: u32, t: [u8; TG_HDR_LEN]) -> Result<()> {
        let mut m: Array<_, [u8; TG_HDR_LEN]> = Array::try_from(
            self.ebpf
                .map_mut("TG_TEMPLATE")
                .ok_or_else(|| anyhow!("TG_TEMPLATE"))?,
        )?;
        m.set(cpu, t, 0)?;
        Ok(())
    }

    /// Generator output device (call inside the generator's namespace).
    pub fn set_dev(&mut self, ifindex: u32) -> Result<()> {
        let mut m: DevMap<_> = DevMap::try_from(
            self.ebpf
                .map_mut("TG_DEV")
                .ok_or_else(|| anyhow!("TG_DEV"))?,
        )?;
        m.set(0, ifindex, None, 0)?;
        Ok(())
    }

    /// The one subscriber `bench_min_fwd` and `tg_cost_hash` look up (ingress
    /// ifindex, source MAC).
    pub fn set_min_fwd_key(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<()> {
        let mut m: HashMap<_, AccessKey, AccessSubscriber> = HashMap::try_from(
            self.ebpf
                .map_mut("BENCH_SUBSCRIBERS")
                .ok_or_else(|| anyhow!("BENCH_SUBSCRIBERS"))?,
        )?;
        // SAFETY: plain old data; all-zero is a valid value.
        let v: AccessSubscriber = unsafe { std::mem::zeroed() };
        m.insert(
            AccessKey {
                ifindex,
                vlan: 0,
                mac,
            },
            v,
            0,
        )?;
        Ok(())
    }

    /// The DEVMAP slot of `tg_cost_redirect_map` (call inside the
    /// interface's namespace).
    pub fn set_bench_dev(&mut self, ifindex: u32) -> Result<()> {
        let mut m: DevMap<_> = DevMap::try_from(
            self.ebpf
                .map_mut("BENCH_DEV")
                .ok_or_else(|| anyhow!("BENCH_DEV"))?,
        )?;
        m.set(0, ifindex, None, 0)?;
        Ok(())
    }

    /// The redirect-only rule of `tg_fwd`.
    pub fn set_fwd(&mut self, out_ifindex: u32, smac: [u8; 6], dmac: [u8; 6]) -> Result<()> {
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&out_ifindex.to_ne_bytes());
        v[4..10].copy_from_slice(&smac);
        v[10..].copy_from_slice(&dmac);
        let mut m: Array<_, [u8; 16]> = Array::try_from(
            self.ebpf
                .map_mut("TG_FWD")
                .ok_or_else(|| anyhow!("TG_FWD"))?,
        )?;
        m.set(0, v, 0)?;
        Ok(())
    }
}

/// `struct bpf_attr` for BPF_PROG_TEST_RUN (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Live-frames run: `repeat` frames built from `frame`, each through the
/// program (which redirects it). A plain syscall so that several threads can
/// drive the same program at once.
pub fn live_run(prog_fd: i32, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> Result<()> {
    let ctx = crate::fixture::xdp_md(ifindex, frame.len());
    let mut a = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..Default::default()
    };
    // SAFETY: bpf(2) with a correctly laid out attr whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut a as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc != 0 {
        bail!(
            "BPF_PROG_TEST_RUN (live frames): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A frame of `len` bytes: Ethernet, IPv4 (src HOME, dst the sink), UDP to
/// port TG_PORT_BASE + flow, zero payload.
pub fn udp_frame(len: usize, dmac: [u8; 6], smac: [u8; 6], flow: u16) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dmac);
    f[6..12].copy_from_slice(&smac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&HOME);
    ip[16..20].copy_from_slice(&SINK_IP);
    let c = pmip_user::checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&(10000 + flow).to_be_bytes());
    f[36..38].copy_from_slice(&(TG_PORT_BASE + flow).to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

// ---- the topology ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    Veth,
    Kernel,
    Redirect,
    MinFwd,
    FastNative,
    FastGeneric,
    FastTc,
}

impl Case {
    pub const ALL: [Case; 7] = [
        Case::Veth,
        Case::Kernel,
        Case::Redirect,
        Case::MinFwd,
        Case::FastNative,
        Case::FastGeneric,
        Case::FastTc,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Case::Veth => "straight veth pair",
            Case::Kernel => "kernel IP forwarding (2 hops, no tunnel)",
            Case::Redirect => "native XDP redirect ceiling (2 hops)",
            Case::MinFwd => "minimal XDP forwarder (hash+FIB+redirect)",
            Case::FastNative => "fast path, native XDP (encap + decap)",
            Case::FastGeneric => "fast path, generic XDP (encap + decap)",
            Case::FastTc => "fast path, TC ingress (encap + decap)",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Case::Veth => "veth",
            Case::Kernel => "kernel",
            Case::Redirect => "redirect",
            Case::MinFwd => "min-fwd",
            Case::FastNative => "fastpath-native",
            Case::FastGeneric => "fastpath-generic",
            Case::FastTc => "fastpath-tc",
        }
    }
}

/// Devices whose drop statistics are read, as (namespace index, device, is the sink).
const HOPS: [(usize, &str, bool); 8] = [
    (0, "gen0", false),
    (1, "acc0", false),
    (1, "core0", false),
    (2, "core0", false),
    (2, "cn0", false),
    (3, "snk0", true),
    (0, "gst0", false),
    (3, "sst0", true),
];

pub struct Topo {
    gen_p: BenchProgs,
    sink_p: BenchProgs,
    mag_p: BenchProgs,
    lma_p: BenchProgs,
    mag_fp: Option<FastPath>,
    lma_fp: Option<FastPath>,
    gen0: u32,
    gst0: u32,
    acc0_mac: [u8; 6],
    sst0_mac: [u8; 6],
    queues: usize,
    // Namespaces last: dropped after the programs above are detached.
    gen: Netns,
    mag: Netns,
    lma: Netns,
    sink: Netns,
}

impl Topo {
    pub fn new() -> Result<Self> {
        let q = ncpus().min(8);
        let gen = Netns::new("tgg")?;
        let mag = Netns::new("tgm")?;
        let lma = Netns::new("tgl")?;
        let sink = Netns::new("tgs")?;
        veth_q(&gen, "gen0", &mag, "acc0", q)?;
        veth_q(&mag, "core0", &lma, "core0", q)?;
        veth_q(&lma, "cn0", &sink, "snk0", q)?;
        veth_q(&gen, "gst0", &sink, "sst0", q)?;
        let gmac = mac_s(GEN_MAC);
        for c in [
            format!("ip link set gen0 address {gmac}"),
            "ip addr add 10.64.0.10/24 dev gen0".into(),
            "ip route add default via 10.64.0.1".into(),
            // TCP through XDP on veth: no partial checksums.
            "ethtool -K gen0 tx off".into(),
        ] {
            run(&gen, &c)?;
        }
        for c in [
            "sysctl -qw net.ipv4.ip_forward=1",
            "sysctl -qw net.ipv4.conf.all.accept_local=1",
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            "ip addr add 10.64.0.1/24 dev acc0",
            "ip addr add 192.0.2.1/24 dev core0",
            "ip route add default via 192.0.2.2",
        ] {
            run(&mag, c)?;
        }
        for c in [
            "sysctl -qw net.ipv4.ip_forward=1",
            "sysctl -qw net.ipv4.conf.all.accept_local=1",
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            "ip addr add 192.0.2.2/24 dev core0",
            "ip addr add 203.0.113.1/24 dev cn0",
            "ip route add 10.64.0.0/24 via 192.0.2.1",
        ] {
            run(&lma, c)?;
        }
        for c in [
            "ip addr add 203.0.113.2/24 dev snk0",
            "ip route add default via 203.0.113.1",
            "ethtool -K snk0 tx off",
        ] {
            run(&sink, c)?;
        }
        let m = |ns: &Netns, dev: &str| -> Result<[u8; 6]> { within(ns, || iface_mac(dev)) };
        let acc0_mac = m(&mag, "acc0")?;
        let mag_core = m(&mag, "core0")?;
        let lma_core = m(&lma, "core0")?;
        let cn0_mac = m(&lma, "cn0")?;
        let snk0_mac = m(&sink, "snk0")?;
        let sst0_mac = m(&sink, "sst0")?;
        // Static neighbours: no ARP during a run, and the fast path's FIB
        // lookups find every next hop resolved.
        run(
            &mag,
            &format!(
                "ip neigh replace 192.0.2.2 lladdr {} dev core0 nud permanent",
                mac_s(lma_core)
            ),
        )?;
        run(
            &mag,
            &format!("ip neigh replace 10.64.0.10 lladdr {gmac} dev acc0 nud permanent"),
        )?;
        run(
            &lma,
            &format!(
                "ip neigh replace 192.0.2.1 lladdr {} dev core0 nud permanent",
                mac_s(mag_core)
            ),
        )?;
        run(
            &lma,
            &format!(
                "ip neigh replace 203.0.113.2 lladdr {} dev cn0 nud permanent",
                mac_s(snk0_mac)
            ),
        )?;
        run(
            &sink,
            &format!(
                "ip neigh replace 203.0.113.1 lladdr {} dev snk0 nud permanent",
                mac_s(cn0_mac)
            ),
        )?;
        run(
            &gen,
            &format!(
                "ip neigh replace 10.64.0.1 lladdr {} dev gen0 nud permanent",
                mac_s(acc0_mac)
            ),
        )?;
        xps(&mag, "core0", q)?;
        xps(&lma, "cn0", q)?;
        xps(&gen, "gen0", q)?;
        xps(&sink, "snk0", q)?;

        let (gen_p, gen0, gst0) = within(&gen, || {
            let mut p = BenchProgs::load()?;
            // The generator's veth receives the fast path's downlink (TCP
            // ACKs, native redirect): it needs an XDP program of its own.
            p.attach("tg_sink", "gen0", XdpMode::Driver)?;
            p.prog("tg_gen")?;
            Ok((p, ifindex("gen0")?, ifindex("gst0")?))
        })?;
        let sink_p = within(&sink, || {
            let mut p = BenchProgs::load()?;
            p.attach("tg_sink", "snk0", XdpMode::Driver)?;
            p.attach("tg_sink", "sst0", XdpMode::Driver)?;
            Ok(p)
        })?;
        let mag_p = within(&mag, || {
            let mut p = BenchProgs::load()?;
            p.set_fwd(ifindex("core0")?, mag_core, lma_core)?;
            p.set_min_fwd_key(ifindex("acc0")?, GEN_MAC)?;
            Ok(p)
        })?;
        let lma_p = within(&lma, || {
            let mut p = BenchProgs::load()?;
            p.set_fwd(ifindex("cn0")?, cn0_mac, snk0_mac)?;
            p.set_min_fwd_key(ifindex("core0")?, mag_core)?;
            Ok(p)
        })?;
        Ok(Topo {
            gen_p,
            sink_p,
            mag_p,
            lma_p,
            mag_fp: None,
            lma_fp: None,
            gen0,
            gst0,
            acc0_mac,
            sst0_mac,
            queues: q,
            gen,
            mag,
            lma,
            sink,
        })
    }

    fn gro_acc0(&self, on: bool) -> Result<()> {
        run(
            &self.mag,
            &format!("ethtool -K acc0 gro {}", if on { "on" } else { "off" }),
        )
    }

    /// Attaches what `case` needs at the gateways.
    pub fn set_case(&mut self, case: Case) -> Result<()> {
        self.clear()?;
        match case {
            Case::Veth => {}
            Case::Kernel => self.gro_acc0(true)?,
            Case::Redirect => {
                let p = &mut self.mag_p;
                within(&self.mag, || p.attach("tg_fwd", "acc0", XdpMode::Driver))?;
                let p = &mut self.lma_p;
                within(&self.lma, || p.attach("tg_fwd", "core0", XdpMode::Driver))?;
            }
            Case::MinFwd => {
                let p = &mut self.mag_p;
                within(&self.mag, || {
                    p.attach("bench_min_fwd", "acc0", XdpMode::Driver)
                })?;
                let p = &mut self.lma_p;
                within(&self.lma, || {
                    p.attach("bench_min_fwd", "core0", XdpMode::Driver)
                })?;
            }
            Case::FastNative | Case::FastGeneric | Case::FastTc => {
                let mode = match case {
                    Case::FastNative => AttachMode::Native,
                    Case::FastGeneric => AttachMode::Generic,
                    _ => AttachMode::Tc,
                };
                if mode != AttachMode::Native {
                    // Injected XDP frames reach generic XDP and TC only through the stack.
                    self.gro_acc0(true)?;
                }
                self.mag_fp = Some(within(&self.mag, || start_mag(mode))?);
                self.lma_fp = Some(within(&self.lma, || start_lma(mode))?);
            }
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        let p = &mut self.mag_p;
        within(&self.mag, || p.detach_all())?;
        let p = &mut self.lma_p;
        within(&self.lma, || p.detach_all())?;
        if let Some(fp) = self.mag_fp.take() {
            within(&self.mag, move || {
                drop(fp);
                Ok(())
            })?;
        }
        if let Some(fp) = self.lma_fp.take() {
            within(&self.lma, move || {
                drop(fp);
                Ok(())
            })?;
        }
        self.gro_acc0(false)
    }

    fn ns(&self, i: usize) -> &Netns {
        [&self.gen, &self.mag, &self.lma, &self.sink][i]
    }

    /// Drop statistics of every hop: device → sum of the counters that mean
    /// "a frame was lost here" (veth XDP transmit errors, ring drops, XDP
    /// drops except at the sink, device rx/tx dropped).
    fn drops(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (i, dev, is_sink) in HOPS {
            let ns = self.ns(i);
            let text = ns.exec(&["sh", "-c", &format!(
                "ethtool -S {dev}; echo rx_dropped: $(cat /sys/class/net/{dev}/statistics/rx_dropped); echo tx_dropped: $(cat /sys/class/net/{dev}/statistics/tx_dropped)")])?;
            let mut sum = 0;
            for line in text.lines() {
                let Some((k, v)) = line.trim().split_once(':') else {
                    continue;
                };
                let lost = k.ends_with("xdp_xmit_errors")
                    || k.ends_with("xdp_tx_errors")
                    || (k.starts_with("rx_queue_")
                        && k.ends_with("_drops")
                        && !k.ends_with("xdp_drops"))
                    || (!is_sink && k.ends_with("xdp_drops"))
                    || k == "rx_dropped"
                    || k == "tx_dropped";
                if lost {
                    sum += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
            out.insert(format!("{}:{dev}", ["gen", "mag", "lma", "sink"][i]), sum);
        }
        for (name, fp) in [("mag", &self.mag_fp), ("lma", &self.lma_fp)] {
            if let Some(fp) = fp {
                let d: u64 = fp
                    .counters()?
                    .iter()
                    .filter(|(n, _)| n.starts_with("drop"))
                    .map(|(_, v)| v)
                    .sum();
                out.insert(format!("{name}:fastpath_drop_counters"), d);
            }
        }
        Ok(out)
    }

    /// One measurement: `threads` generator threads (CPU i, flow i), each
    /// sending `repeat` frames of `size` bytes; the rate is what reached the
    /// sink over the wall time of the generators.
    pub fn measure(
        &mut self,
        straight: bool,
        size: usize,
        threads: usize,
        repeat: u32,
    ) -> Result<Sample> {
        let (dev, dmac) = if straight {
            (self.gst0, self.sst0_mac)
        } else {
            (self.gen0, self.acc0_mac)
        };
        let p = &mut self.gen_p;
        let fd = within(&self.gen, || {
            p.set_dev(dev)?;
            for cpu in 0..threads {
                let f = udp_frame(size, dmac, GEN_MAC, cpu as u16);
                p.set_template(cpu as u32, f[..TG_HDR_LEN].try_into().unwrap())?;
            }
            p.raw_fd("tg_gen")
        })?;
        let before = self.drops()?;
        let sink0 = self.sink_p.sink_packets()?;
        let barrier = Barrier::new(threads + 1);
        let gen = &self.gen;
        let (elapsed, gen_secs) = std::thread::scope(|s| -> Result<(f64, Vec<f64>)> {
            let hs: Vec<_> = (0..threads)
                .map(|cpu| {
                    let barrier = &barrier;
                    s.spawn(move || -> Result<f64> {
                        let r = enter(gen).and_then(|_| pin_cpu(cpu));
                        barrier.wait();
                        r?;
                        let f = udp_frame(size, dmac, GEN_MAC, cpu as u16);
                        let t = Instant::now();
                        live_run(fd, &f, dev, repeat, 64)?;
                        Ok(t.elapsed().as_secs_f64())
                    })
                })
                .collect();
            barrier.wait();
            let t0 = Instant::now();
            let mut g = Vec::new();
            for h in hs {
                g.push(
                    h.join()
                        .map_err(|_| anyhow!("generator thread panicked"))??,
                );
            }
            Ok((t0.elapsed().as_secs_f64(), g))
        })?;
        // Let the last frames drain through the hops before counting.
        std::thread::sleep(Duration::from_millis(30));
        let delivered = self.sink_p.sink_packets()? - sink0;
        let after = self.drops()?;
        let drops = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let offered = repeat as u64 * threads as u64;
        let gen_pps = gen_secs.iter().map(|s| repeat as f64 / s).sum::<f64>() / threads as f64;
        Ok(Sample {
            pps: delivered as f64 / elapsed,
            offered,
            delivered,
            drops,
            gen_pps_per_thread: gen_pps,
        })
    }

    pub fn queues(&self) -> usize {
        self.queues
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.clear();
    }
}

fn start_mag(mode: AttachMode) -> Result<FastPath> {
    let mut fp = FastPath::load(&LoadOptions {
        max_subscribers: 1024,
        ..Default::default()
    })?;
    let gw = std::net::Ipv4Addr::new(10, 64, 0, 1);
    let mag = std::net::Ipv4Addr::new(192, 0, 2, 1);
    fp.attach(
        &IfaceSpec {
            name: "acc0".into(),
            role: role::ACCESS,
            addr4: Some(gw),
            addr6: None,
        },
        mode,
    )?;
    fp.attach(
        &IfaceSpec {
            name: "core0".into(),
            role: role::ACCESS_CORE,
            addr4: Some(mag),
            addr6: None,
        },
        mode,
    )?;
    fp.install_access(&AccessBinding {
        at: AccessPoint {
            ifindex: ifindex("acc0")?,
            vlan: 0,
            mac: GEN_MAC,
        },
        sub_id: 1,
        tunnel: TunnelEnds {
            local: mag.into(),
            remote: std::net::Ipv4Addr::new(192, 0, 2, 2).into(),
        },
        uplink_key: UP_KEY,
        downlink_key: DOWN_KEY,
        home_v4: Some(HOME.into()),
        gateway_v4: Some(gw),
        hnp: None,
    })?;
    Ok(fp)
}

fn start_lma(mode: AttachMode) -> Result<FastPath> {
    let mut fp = FastPath::load(&LoadOptions {
        max_subscribers: 1024,
        ..Default::default()
    })?;
    let lma = std::net::Ipv4Addr::new(192, 0, 2, 2);
    fp.attach(
        &IfaceSpec {
            name: "core0".into(),
            role: role::ANCHOR_CORE,
            addr4: Some(lma),
            addr6: None,
        },
        mode,
    )?;
    fp.attach(
        &IfaceSpec {
            name: "cn0".into(),
            role: role::ANCHOR_CN,
            addr4: Some([203, 0, 113, 1].into()),
            addr6: None,
        },
        mode,
    )?;
    fp.install_anchor(&AnchorBinding {
        sub_id: 1,
        tunnel: TunnelEnds {
            local: lma.into(),
            remote: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
        },
        uplink_key: UP_KEY,
        downlink_key: DOWN_KEY,
        home_v4: Some(HOME.into()),
        hnp: None,
    })?;
    Ok(fp)
}

#[derive(Clone, Debug)]
pub struct Sample {
    /// Packets per second that reached the sink.
    pub pps: f64,
    pub offered: u64,
    pub delivered: u64,
    /// Where frames were lost: hop → count (only non-zero).
    pub drops: BTreeMap<String, u64>,
    pub gen_pps_per_thread: f64,
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
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

/// `pmip-bench throughput`.
pub fn throughput(cfg: &Config) -> Result<Value> {
    let mut topo = Topo::new()?;
    let threads: Vec<usize> = cfg
        .threads
        .iter()
        .copied()
        .filter(|t| *t <= ncpus())
        .collect();
    type K = (Case, usize, usize);
    let mut samples: BTreeMap<K, Vec<Sample>> = BTreeMap::new();
    // Generator rate per thread, to size `repeat` for the target duration.
    let mut rate: BTreeMap<K, f64> = BTreeMap::new();
    // Round 0 is a warm-up that only sizes the runs.
    for round in 0..=cfg.rounds {
        for case in Case::ALL {
            topo.set_case(case)?;
            for &size in &cfg.sizes {
                for &t in &threads {
                    let k = (case, size, t);
                    let repeat = match rate.get(&k) {
                        Some(r) => (r * cfg.secs).clamp(10_000.0, 4e9) as u32,
                        None => 100_000,
                    };
                    let s = topo.measure(case == Case::Veth, size, t, repeat)?;
                    rate.insert(k, s.gen_pps_per_thread);
                    if round > 0 {
                        eprintln!("  round {round} {:<18} {size:>5} B {t} thr: {:>7.3} Mpps (offered {}, delivered {})",
                            case.key(), s.pps / 1e6, s.offered, s.delivered);
                        samples.entry(k).or_default().push(s);
                    }
                }
            }
        }
    }
    topo.clear()?;
    let mpps = |k: &K| -> Vec<f64> {
        samples
            .get(k)
            .map(|v| v.iter().map(|s| s.pps / 1e6).collect())
            .unwrap_or_default()
    };
    println!(
        "throughput through the tunnel on veth (in-kernel live-frames generator, pps at the sink)"
    );
    println!(
        "median of {} interleaved rounds of ~{} s; {} veth queues",
        cfg.rounds,
        cfg.secs,
        topo.queues()
    );
    println!(
        "{:<42} {:>6} {:>4} {:>9} {:>8} {:>9} {:>9}",
        "case", "bytes", "thr", "Mpps", "spread", "x redir", "x kernel"
    );
    let mut rows = Vec::new();
    for &size in &cfg.sizes {
        for &t in &threads {
            let redir = median(&mpps(&(Case::Redirect, size, t)));
            let kern = median(&mpps(&(Case::Kernel, size, t)));
            for case in Case::ALL {
                let k = (case, size, t);
                let v = mpps(&k);
                let m = median(&v);
                // Per-round ratios too: same round, same noise.
                let per_round = |base: Case| -> Vec<f64> {
                    let b = mpps(&(base, size, t));
                    v.iter()
                        .zip(&b)
                        .map(|(x, y)| if *y > 0.0 { x / y } else { 0.0 })
                        .collect()
                };
                let ss = samples.get(&k).cloned().unwrap_or_default();
                let mut drops: BTreeMap<String, u64> = BTreeMap::new();
                for s in &ss {
                    for (h, d) in &s.drops {
                        *drops.entry(h.clone()).or_default() += d;
                    }
                }
                let offered: u64 = ss.iter().map(|s| s.offered).sum();
                let delivered: u64 = ss.iter().map(|s| s.delivered).sum();
                println!(
                    "{:<42} {size:>6} {t:>4} {m:>9.3} {:>8.3} {:>9.2} {:>9.2}",
                    case.name(),
                    spread(&v),
                    if redir > 0.0 { m / redir } else { 0.0 },
                    if kern > 0.0 { m / kern } else { 0.0 }
                );
                rows.push(json!({
                    "case": case.key(), "name": case.name(), "frame_bytes": size, "threads": t,
                    "mpps_median": m, "mpps_spread": spread(&v), "mpps_rounds": v,
                    "ratio_to_redirect": if redir > 0.0 { m / redir } else { 0.0 },
                    "ratio_to_kernel": if kern > 0.0 { m / kern } else { 0.0 },
                    "ratio_to_redirect_per_round_median": median(&per_round(Case::Redirect)),
                    "ratio_to_kernel_per_round_median": median(&per_round(Case::Kernel)),
                    "ratio_to_redirect_per_round": per_round(Case::Redirect),
                    "ratio_to_kernel_per_round": per_round(Case::Kernel),
                    "offered": offered, "delivered": delivered, "lost_by_hop": drops,
                }));
            }
        }
    }
    Ok(
        json!({"benchmark": "throughput", "rounds": cfg.rounds, "secs": cfg.secs, "queues": topo.queues(), "rows": rows}),
    )
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
            topo.set_case(case)?;
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
                    topo.drops()?
                );
            }
            let mut server = topo.sink.command("iperf3");
            let mut server = server
                .args(["-s", "-1", "-B", "203.0.113.2"])
                .stdout(std::process::Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(300));
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
            topo.set_case(case)?;
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
