//! The benchmark's namespaces, veths and gateways, and one measurement.
//!
//! ```text
//! gen [gen0] ── [acc0] mag [core0] ── [core0] lma [cn0] ── [snk0] sink
//! gen [gst0] ─────────────────────────────────────────────── [sst0] sink   (straight pair)
//! ```
//!
//! Uplink frames leave gen0 and are counted by `tg_sink` on snk0 (sst0 for
//! the straight pair); downlink frames leave snk0 and are counted by
//! `tg_sink` on gen0. The core carries IPv4 and IPv6 (2001:db8:c::/64), the
//! correspondent's link too (2001:db8:cc::/64), so that the tunnel can run
//! over either family and the kernel can forward IPv6 without one.
use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use aya::programs::XdpMode;
use pmip_user::fastpath::{AttachMode, FastPath};
use pmip_user::sys::{iface_mac, ifindex};

use super::frame::{Dir, Flow, HNP, HOME6, SINK6};
use super::gateways::{start_lma, start_mag, LMA6, MAG6};
use super::progs::{live_frames_allowed, live_run, packet_run, packet_send, BenchProgs, Generator};
use super::{enter, mac_s, ncpus, pin_cpu, run, veth_q, within, xps, GEN_MAC};
use crate::netns::Netns;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    Veth,
    Kernel,
    Redirect,
    MinFwd,
    MinTunnel,
    FastNative,
    FastGeneric,
    FastTc,
}

impl Case {
    pub const ALL: [Case; 8] = [
        Case::Veth,
        Case::Kernel,
        Case::Redirect,
        Case::MinFwd,
        Case::MinTunnel,
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
            Case::MinTunnel => "minimal GRE tunnel (grow/shrink head, template)",
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
            Case::MinTunnel => "min-tunnel",
            Case::FastNative => "fastpath-native",
            Case::FastGeneric => "fastpath-generic",
            Case::FastTc => "fastpath-tc",
        }
    }
}

/// Devices whose drop statistics are read, as (namespace index, device).
const HOPS: [(usize, &str); 8] = [
    (0, "gen0"),
    (1, "acc0"),
    (1, "core0"),
    (2, "core0"),
    (2, "cn0"),
    (3, "snk0"),
    (0, "gst0"),
    (3, "sst0"),
];

/// The veths whose XDP drops are the sink counting (not losses) in `dir`.
fn is_sink(dir: Dir, dev: &str) -> bool {
    match dir {
        Dir::Up => dev == "snk0" || dev == "sst0",
        Dir::Down => dev == "gen0",
    }
}

/// The MAC addresses the frames and the static neighbours need.
struct Macs {
    acc0: [u8; 6],
    mag_core: [u8; 6],
    lma_core: [u8; 6],
    cn0: [u8; 6],
    snk0: [u8; 6],
}

pub struct Topo {
    pub(super) gen_p: BenchProgs,
    pub(super) sink_p: BenchProgs,
    mag_p: BenchProgs,
    lma_p: BenchProgs,
    mag_fp: Option<FastPath>,
    lma_fp: Option<FastPath>,
    gen0: u32,
    gst0: u32,
    snk0: u32,
    macs: Macs,
    pub(super) acc0_mac: [u8; 6],
    pub(super) sst0_mac: [u8; 6],
    queues: usize,
    /// How frames get to the first hop: live frames where the kernel runs
    /// them, else the closed loop; PMIP_BENCH_GENERATOR or
    /// [`use_generator`](Self::use_generator) choose another.
    generator: Generator,
    // Namespaces last: dropped after the programs above are detached.
    pub(super) gen: Netns,
    mag: Netns,
    lma: Netns,
    pub(super) sink: Netns,
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
        let m = |ns: &Netns, dev: &str| -> Result<[u8; 6]> { within(ns, || iface_mac(dev)) };
        let macs = Macs {
            acc0: m(&mag, "acc0")?,
            mag_core: m(&mag, "core0")?,
            lma_core: m(&lma, "core0")?,
            cn0: m(&lma, "cn0")?,
            snk0: m(&sink, "snk0")?,
        };
        let sst0_mac = m(&sink, "sst0")?;
        addresses4(&gen, &mag, &lma, &sink, &macs)?;
        addresses6(&mag, &lma, &macs)?;
        // Transmit queue i ← CPU i on every veth a frame leaves by, either way.
        for (ns, dev) in [
            (&gen, "gen0"),
            (&mag, "acc0"),
            (&mag, "core0"),
            (&lma, "core0"),
            (&lma, "cn0"),
            (&sink, "snk0"),
        ] {
            xps(ns, dev, q)?;
        }

        let (gen_p, gen0, gst0, generator) = within(&gen, || {
            let mut p = BenchProgs::load()?;
            let gen0 = ifindex("gen0")?;
            let generator = match Generator::from_env()? {
                Some(g) => g,
                None => {
                    let probe = super::frame::udp_frame(64, macs.acc0, GEN_MAC, 0);
                    let fd = p.raw_fd("tg_gen")?;
                    if live_frames_allowed(fd, &probe, gen0)? {
                        Generator::LiveFrames
                    } else {
                        eprintln!(
                            "tput: this kernel refuses BPF_PROG_TEST_RUN on live frames \
                             (EPERM); the generator is the {}",
                            Generator::Loop.name()
                        );
                        Generator::Loop
                    }
                }
            };
            // The generator's veth receives the downlink (TCP ACKs, the
            // downlink flows; native redirect): it needs an XDP program of
            // its own, and counts what arrives.
            p.attach(sink_prog(generator), "gen0", XdpMode::Driver)?;
            Ok((p, gen0, ifindex("gst0")?, generator))
        })?;
        let (sink_p, snk0) = within(&sink, || {
            let mut p = BenchProgs::load()?;
            p.attach(sink_prog(generator), "snk0", XdpMode::Driver)?;
            p.attach(sink_prog(generator), "sst0", XdpMode::Driver)?;
            Ok((p, ifindex("snk0")?))
        })?;
        let mag_p = within(&mag, || {
            let mut p = BenchProgs::load()?;
            p.set_min_fwd_key(ifindex("acc0")?, GEN_MAC)?;
            Ok(p)
        })?;
        let lma_p = within(&lma, || {
            let mut p = BenchProgs::load()?;
            p.set_min_fwd_key(ifindex("core0")?, macs.mag_core)?;
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
            snk0,
            acc0_mac: macs.acc0,
            macs,
            sst0_mac,
            queues: q,
            generator,
            gen,
            mag,
            lma,
            sink,
        })
    }

    /// Sends every later measurement's frames with `g`, so that each
    /// generator is tested on every host. The closed loop needs `tg_loop`
    /// at the sinks: a topology built for another generator gets it now.
    pub fn use_generator(&mut self, g: Generator) -> Result<()> {
        if g == Generator::Loop && self.generator != Generator::Loop {
            let p = &mut self.gen_p;
            within(&self.gen, || {
                p.detach_all()?;
                p.attach("tg_loop", "gen0", XdpMode::Driver)
            })?;
            let p = &mut self.sink_p;
            within(&self.sink, || {
                p.detach_all()?;
                p.attach("tg_loop", "snk0", XdpMode::Driver)?;
                p.attach("tg_loop", "sst0", XdpMode::Driver)
            })?;
        }
        self.generator = g;
        Ok(())
    }

    pub fn generator(&self) -> Generator {
        self.generator
    }

    /// GRO on the veth a flow enters the gateways by (acc0 up, cn0 down), so
    /// that injected XDP frames reach the stack.
    fn gro(&self, dir: Dir, on: bool) -> Result<()> {
        let (ns, dev) = match dir {
            Dir::Up => (&self.mag, "acc0"),
            Dir::Down => (&self.lma, "cn0"),
        };
        run(
            ns,
            &format!("ethtool -K {dev} gro {}", if on { "on" } else { "off" }),
        )
    }

    /// Attaches what `case` needs at the gateways for `flow`.
    pub fn set_case(&mut self, case: Case, flow: Flow) -> Result<()> {
        self.clear()?;
        match case {
            Case::Veth => {}
            Case::Kernel => self.gro(flow.dir, true)?,
            Case::Redirect => self.redirect(flow.dir, ["tg_fwd", "tg_fwd"])?,
            // IPv4 inner and outer only (the programs' fixed headers).
            Case::MinTunnel => self.redirect(flow.dir, ["tg_min_encap", "tg_min_decap"])?,
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
                    self.gro(flow.dir, true)?;
                }
                let outer = flow.outer;
                self.mag_fp = Some(within(&self.mag, || start_mag(mode, outer))?);
                self.lma_fp = Some(within(&self.lma, || start_lma(mode, outer))?);
            }
        }
        Ok(())
    }

    /// `progs` (`tg_fwd` or another program that takes its rule) on the hop
    /// each gateway receives `dir`'s frames by, first hop first, each rule
    /// pointing at the next hop.
    fn redirect(&mut self, dir: Dir, progs: [&'static str; 2]) -> Result<()> {
        let m = &self.macs;
        // (gateway, in, out, source MAC, destination MAC)
        let (mag, lma) = match dir {
            Dir::Up => (
                ("acc0", "core0", m.mag_core, m.lma_core),
                ("core0", "cn0", m.cn0, m.snk0),
            ),
            Dir::Down => (
                ("core0", "acc0", m.acc0, GEN_MAC),
                ("cn0", "core0", m.lma_core, m.mag_core),
            ),
        };
        let (mag_prog, lma_prog) = match dir {
            Dir::Up => (progs[0], progs[1]),
            Dir::Down => (progs[1], progs[0]),
        };
        for (ns, p, prog, (i, o, smac, dmac)) in [
            (&self.mag, &mut self.mag_p, mag_prog, mag),
            (&self.lma, &mut self.lma_p, lma_prog, lma),
        ] {
            within(ns, || {
                p.set_fwd(ifindex(o)?, smac, dmac)?;
                p.attach(prog, i, XdpMode::Driver)
            })?;
        }
        Ok(())
    }

    pub(super) fn clear(&mut self) -> Result<()> {
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
        self.gro(Dir::Up, false)?;
        self.gro(Dir::Down, false)
    }

    fn ns(&self, i: usize) -> &Netns {
        [&self.gen, &self.mag, &self.lma, &self.sink][i]
    }

    /// Drop statistics of every hop: device → sum of the counters that mean
    /// "a frame was lost here" (veth XDP transmit errors, ring drops, XDP
    /// drops except at the sink of `dir`, device rx/tx dropped).
    pub(super) fn drops(&self, dir: Dir) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (i, dev) in HOPS {
            let ns = self.ns(i);
            let text = ns.exec(&["sh", "-c", &format!(
                "ethtool -S {dev}; echo rx_dropped: $(cat /sys/class/net/{dev}/statistics/rx_dropped); echo tx_dropped: $(cat /sys/class/net/{dev}/statistics/tx_dropped)")])?;
            let sink = is_sink(dir, dev);
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
                    || (!sink && k.ends_with("xdp_drops"))
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

    /// The fast paths' counters now (gateway:counter → value), empty
    /// outside the fast path cases: what the functional test reads to see
    /// that the fast path, not the kernel, carried the frames.
    pub fn fastpath_counters(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (name, fp) in [("mag", &self.mag_fp), ("lma", &self.lma_fp)] {
            if let Some(fp) = fp {
                for (n, v) in fp.counters()? {
                    out.insert(format!("{name}:{n}"), v);
                }
            }
        }
        Ok(out)
    }

    /// One measurement: `threads` generator threads (CPU i, flow i), each
    /// sending `repeat` frames of `size` bytes of `flow`; the rate is what
    /// reached the sink, in `flow`'s inner family, over the wall time of
    /// the generators. In the closed loop the frames go round until the
    /// sink has counted `repeat` per thread (see [`Topo::measure_loop`]).
    pub fn measure(
        &mut self,
        flow: Flow,
        straight: bool,
        size: usize,
        threads: usize,
        repeat: u32,
    ) -> Result<Sample> {
        let (dev, dmac, smac) = match (flow.dir, straight) {
            (Dir::Up, true) => (self.gst0, self.sst0_mac, GEN_MAC),
            (Dir::Up, false) => (self.gen0, self.acc0_mac, GEN_MAC),
            (Dir::Down, _) => (self.snk0, self.macs.cn0, self.macs.snk0),
        };
        if self.generator == Generator::Loop {
            return self.measure_loop(flow, (dev, dmac, smac), size, threads, repeat);
        }
        let (tx_ns, tx) = match flow.dir {
            Dir::Up => (&self.gen, &mut self.gen_p),
            Dir::Down => (&self.sink, &mut self.sink_p),
        };
        let fd = within(tx_ns, || {
            tx.set_dev(dev)?;
            for cpu in 0..threads {
                let f = flow.frame(size, dmac, smac, cpu as u16);
                tx.set_template_of(flow.inner, cpu as u32, &f)?;
            }
            tx.raw_fd(flow.generator())
        })?;
        let rx = self.receiver(flow.dir);
        let before = self.drops(flow.dir)?;
        let sink0 = rx.sink_packets_of(flow.inner)?;
        let barrier = Barrier::new(threads + 1);
        let live = self.generator == Generator::LiveFrames;
        let (elapsed, gen_secs) = std::thread::scope(|s| -> Result<(f64, Vec<f64>)> {
            let hs: Vec<_> = (0..threads)
                .map(|cpu| {
                    let barrier = &barrier;
                    s.spawn(move || -> Result<f64> {
                        let r = enter(tx_ns).and_then(|_| pin_cpu(cpu));
                        barrier.wait();
                        r?;
                        let f = flow.frame(size, dmac, smac, cpu as u16);
                        let t = Instant::now();
                        if live {
                            live_run(fd, &f, dev, repeat, 64)
                                .context("BPF_PROG_TEST_RUN (live frames)")?;
                        } else {
                            packet_run(&f, dev, repeat)?;
                        }
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
        let delivered = rx.sink_packets_of(flow.inner)? - sink0;
        let drops = self.drops_since(flow.dir, &before)?;
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

    /// One measurement in the closed loop: `loop_frames()` frames per thread
    /// (CPU i, flow i) put in through an `AF_PACKET` socket (fewer if the
    /// first veth takes no more for 100 ms: its ring is busy with those
    /// already going round); `tg_loop` at
    /// the sink counts each and sends it out of the first veth again with
    /// its template rewritten, so the frames go round the hops in the
    /// softirq of their CPU at the chain's own pace, as live frames do (a
    /// lap: the two hops, the sink's count, the template and one redirect,
    /// where a live frame's path has the same and the sink's drop). The rate
    /// is timed from the end of the priming until the sink has counted
    /// `repeat` frames per thread (or counts no more for 200 ms); then the
    /// loop is stopped and the frames still going round are drained and
    /// counted: one that did not come back was lost (`loop:lost`).
    /// Delivered counts every arrival at the sink, priming and draining
    /// included, so that it equals what each hop carried.
    fn measure_loop(
        &mut self,
        flow: Flow,
        (dev, dmac, smac): (u32, [u8; 6], [u8; 6]),
        size: usize,
        threads: usize,
        repeat: u32,
    ) -> Result<Sample> {
        let frames = loop_frames()?;
        let (tx_ns, rx_ns) = match flow.dir {
            Dir::Up => (&self.gen, &self.sink),
            Dir::Down => (&self.sink, &self.gen),
        };
        let rx = match flow.dir {
            Dir::Up => &mut self.sink_p,
            Dir::Down => &mut self.gen_p,
        };
        within(tx_ns, || rx.set_dev(dev))?;
        within(rx_ns, || {
            // Every CPU's template: a frame that went round on another CPU
            // than it was put in on would be rewritten as that CPU's flow.
            for cpu in 0..ncpus() {
                let f = flow.frame(size, dmac, smac, cpu as u16);
                rx.set_template_of(flow.inner, cpu as u32, &f)?;
            }
            rx.set_loop(true)
        })?;
        let rx = self.receiver(flow.dir);
        let before = self.drops(flow.dir)?;
        let (sink0, drained0) = (rx.sink_packets_of(flow.inner)?, rx.drained()?);
        let injected = std::thread::scope(|s| -> Result<u64> {
            let hs: Vec<_> = (0..threads)
                .map(|cpu| {
                    s.spawn(move || -> Result<u64> {
                        enter(tx_ns)?;
                        pin_cpu(cpu)?;
                        let f = flow.frame(size, dmac, smac, cpu as u16);
                        packet_send(&f, dev, frames, Some(Duration::from_millis(100)))
                    })
                })
                .collect();
            let mut n = 0;
            for h in hs {
                n += h.join().map_err(|_| anyhow!("priming thread panicked"))??;
            }
            Ok(n)
        })?;
        if injected == 0 {
            anyhow::bail!("closed loop: the first veth took no frame for 100 ms");
        }
        let target = u64::from(repeat) * threads as u64;
        let (t0, c0) = (Instant::now(), rx.sink_packets_of(flow.inner)?);
        let (t1, c1) = count_up_to(c0 + target, || rx.sink_packets_of(flow.inner))?;
        let rx = self.receiver_mut(flow.dir);
        rx.set_loop(false)?;
        // Drained when every frame put in is back, or nothing more comes.
        let (_, drained) = count_up_to(drained0 + injected, || rx.drained())?;
        let lost = (drained0 + injected).saturating_sub(drained);
        let rx = self.receiver(flow.dir);
        let delivered = rx.sink_packets_of(flow.inner)? - sink0;
        let mut drops = self.drops_since(flow.dir, &before)?;
        if lost > 0 {
            drops.insert("loop:lost".into(), lost);
        }
        let secs = (t1 - t0).as_secs_f64();
        let pps = if secs > 0.0 {
            (c1 - c0) as f64 / secs
        } else {
            0.0
        };
        Ok(Sample {
            pps,
            offered: delivered + lost,
            delivered,
            drops,
            gen_pps_per_thread: pps / threads as f64,
        })
    }

    /// Every hop's drops since `before` (only non-zero).
    fn drops_since(
        &self,
        dir: Dir,
        before: &BTreeMap<String, u64>,
    ) -> Result<BTreeMap<String, u64>> {
        Ok(self
            .drops(dir)?
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect())
    }

    /// The programs of the namespace `dir`'s frames arrive in: its
    /// `tg_sink` counts them.
    pub fn receiver(&self, dir: Dir) -> &BenchProgs {
        match dir {
            Dir::Up => &self.sink_p,
            Dir::Down => &self.gen_p,
        }
    }

    fn receiver_mut(&mut self, dir: Dir) -> &mut BenchProgs {
        match dir {
            Dir::Up => &mut self.sink_p,
            Dir::Down => &mut self.gen_p,
        }
    }

    pub fn queues(&self) -> usize {
        self.queues
    }
}

/// Reads `count` every 2 ms until it reaches `target` or has not moved for
/// 200 ms; returns when it last moved and its value then.
fn count_up_to(target: u64, mut count: impl FnMut() -> Result<u64>) -> Result<(Instant, u64)> {
    let mut last = (Instant::now(), count()?);
    while last.1 < target && last.0.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(2));
        let c = count()?;
        if c != last.1 {
            last = (Instant::now(), c);
        }
    }
    Ok(last)
}

/// The sinks' program: `tg_loop` for the closed loop (it counts as
/// `tg_sink` does while its loop is stopped), else `tg_sink`.
fn sink_prog(g: Generator) -> &'static str {
    match g {
        Generator::Loop => "tg_loop",
        _ => "tg_sink",
    }
}

/// Frames put in per thread for the closed loop: PMIP_BENCH_LOOP_FRAMES,
/// default 128 (two of the veth's 64-frame NAPI batches; a veth ring holds
/// 256, which no more than that many frames can overfill).
fn loop_frames() -> Result<u32> {
    match std::env::var("PMIP_BENCH_LOOP_FRAMES").ok() {
        None => Ok(128),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=256).contains(&n) => Ok(n),
            _ => anyhow::bail!("PMIP_BENCH_LOOP_FRAMES: {v:?} is not a number from 1 to 256"),
        },
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.clear();
    }
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

/// IPv4: the subscriber's link, the core, the correspondent's link; static
/// neighbours (no ARP during a run, and the fast path's FIB lookups find
/// every next hop resolved).
fn addresses4(gen: &Netns, mag: &Netns, lma: &Netns, sink: &Netns, m: &Macs) -> Result<()> {
    let gmac = mac_s(GEN_MAC);
    for c in [
        format!("ip link set gen0 address {gmac}"),
        "ip addr add 10.64.0.10/24 dev gen0".into(),
        "ip route add default via 10.64.0.1".into(),
        // TCP through XDP on veth: no partial checksums.
        "ethtool -K gen0 tx off".into(),
        format!(
            "ip neigh replace 10.64.0.1 lladdr {} dev gen0 nud permanent",
            mac_s(m.acc0)
        ),
    ] {
        run(gen, &c)?;
    }
    for c in [
        "sysctl -qw net.ipv4.ip_forward=1".into(),
        "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
        "ip addr add 10.64.0.1/24 dev acc0".into(),
        "ip addr add 192.0.2.1/24 dev core0".into(),
        "ip route add default via 192.0.2.2".into(),
        format!(
            "ip neigh replace 192.0.2.2 lladdr {} dev core0 nud permanent",
            mac_s(m.lma_core)
        ),
        format!("ip neigh replace 10.64.0.10 lladdr {gmac} dev acc0 nud permanent"),
    ] {
        run(mag, &c)?;
    }
    for c in [
        "sysctl -qw net.ipv4.ip_forward=1".into(),
        "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
        "ip addr add 192.0.2.2/24 dev core0".into(),
        "ip addr add 203.0.113.1/24 dev cn0".into(),
        "ip route add 10.64.0.0/24 via 192.0.2.1".into(),
        format!(
            "ip neigh replace 192.0.2.1 lladdr {} dev core0 nud permanent",
            mac_s(m.mag_core)
        ),
        format!(
            "ip neigh replace 203.0.113.2 lladdr {} dev cn0 nud permanent",
            mac_s(m.snk0)
        ),
    ] {
        run(lma, &c)?;
    }
    for c in [
        "ip addr add 203.0.113.2/24 dev snk0".into(),
        "ip route add default via 203.0.113.1".into(),
        "ethtool -K snk0 tx off".into(),
        format!(
            "ip neigh replace 203.0.113.1 lladdr {} dev snk0 nud permanent",
            mac_s(m.cn0)
        ),
    ] {
        run(sink, &c)?;
    }
    Ok(())
}

/// IPv6 at the gateways: the core (the IPv6 tunnel's ends), the
/// correspondent's link, routes both ways for the kernel-forwarding
/// baseline (the subscriber's prefix on acc0), static neighbours. Forwarding
/// on: the anchor's FIB lookups for IPv6 need it. The generator and the sink
/// need no address: their frames are built by hand and counted in XDP.
fn addresses6(mag: &Netns, lma: &Netns, m: &Macs) -> Result<()> {
    let hnp = format!("{HNP}/64");
    for c in [
        "sysctl -qw net.ipv6.conf.all.forwarding=1".into(),
        format!("ip -6 addr add {MAG6}/64 dev core0 nodad"),
        format!("ip -6 route add {hnp} dev acc0"),
        format!("ip -6 route add default via {LMA6}"),
        format!(
            "ip -6 neigh replace {LMA6} lladdr {} dev core0 nud permanent",
            mac_s(m.lma_core)
        ),
        format!(
            "ip -6 neigh replace {HOME6} lladdr {} dev acc0 nud permanent",
            mac_s(GEN_MAC)
        ),
    ] {
        run(mag, &c)?;
    }
    for c in [
        "sysctl -qw net.ipv6.conf.all.forwarding=1".into(),
        format!("ip -6 addr add {LMA6}/64 dev core0 nodad"),
        "ip -6 addr add 2001:db8:cc::1/64 dev cn0 nodad".into(),
        format!("ip -6 route add {hnp} via {MAG6}"),
        format!(
            "ip -6 neigh replace {MAG6} lladdr {} dev core0 nud permanent",
            mac_s(m.mag_core)
        ),
        format!(
            "ip -6 neigh replace {SINK6} lladdr {} dev cn0 nud permanent",
            mac_s(m.snk0)
        ),
    ] {
        run(lma, &c)?;
    }
    Ok(())
}
