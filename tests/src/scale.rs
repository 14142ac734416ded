//! Lookup cost against table size (`pmip-bench scale`).
//!
//! One fixture gateway (tests/src/fixture.rs) per table size, its subscriber
//! maps sized for N (+ slack) and N access and N anchor bindings installed
//! through `FastPath::install_access` / `install_anchor`. Each sample is a
//! single BPF_PROG_TEST_RUN on a fresh frame, timed by the kernel (the
//! per-packet method); successive samples cycle through frames of 1000
//! distinct subscribers drawn at random from the N, so a large table pays its cache
//! misses instead of hitting one hot entry (the `, 1 sub` rows repeat each
//! path on one subscriber: the lookup with its entry hot). Sizes and paths are interleaved
//! round by round. Map memory per subscriber comes from the kernel's own
//! account (`memlock` in /proc/self/fdinfo of each map fd, divided by the
//! map's max_entries).
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::packet::*;
use anyhow::{anyhow, bail, Result};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use pmip_user::dataplane::{AccessBinding, AccessPoint, AnchorBinding, TunnelEnds};
use pmip_user::fastpath::{PASS_PROGRAM, PROGRAM};
use serde_json::{json, Value};

use crate::fixture::*;
use crate::tput::{interquartile_mean, median, spread, BenchProgs};

#[derive(Clone, Debug)]
pub struct Config {
    pub sizes: Vec<u32>,
    pub rounds: usize,
    /// Single runs per path per round.
    pub runs: usize,
}

impl Config {
    pub fn full() -> Self {
        Config {
            sizes: vec![1_000, 100_000, 1_000_000],
            rounds: 5,
            runs: 4000,
        }
    }
    pub fn smoke() -> Self {
        Config {
            sizes: vec![1_000],
            rounds: 1,
            runs: 200,
        }
    }
}

/// Slack above N for the fixture's own bindings.
const SLACK: u32 = 1024;
/// First GRE key this node hands out (as the agents do: small integers).
const KEY_BASE: u32 = 1;
/// Distinct subscribers the samples cycle through.
pub const POOL: usize = 1000;

fn sub_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x10, b[0], b[1], b[2], b[3]]
}
fn access_home(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a80_0000 + i) // 10.128.0.0/9
}
fn anchor_home(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0ae0_0000 + i) // 10.224.0.0/11, the anchor's pool
}

fn echo4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    ipv4(src, dst, 1, 64, true, &icmp_echo(7, 1, &[0xab; 32]))
}

/// xorshift: a fixed, dependency-free random sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `pool` (at most `n`) distinct indices below `n`, in a fixed random
/// order. Distinct, and as many at every size: drawn with replacement, a 1k
/// table's 1024 picks held ~632 distinct subscribers against ~1020 at 100k
/// and 1M, a smaller working set for the per-CPU caches.
pub fn distinct_picks(n: u32, pool: usize) -> Vec<u32> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let want = pool.min(n as usize);
    let mut seen = std::collections::HashSet::with_capacity(want);
    let mut picks: Vec<u32> = Vec::with_capacity(want);
    while picks.len() < want {
        let i = (rng.next() % n as u64) as u32;
        if seen.insert(i) {
            picks.push(i);
        }
    }
    picks
}

struct Path {
    name: &'static str,
    program: &'static str,
    ifindex: u32,
    frames: Vec<Vec<u8>>,
    verdict: u32,
}

struct Table {
    n: u32,
    fx: Fixture,
    /// The test object, for the `xdp_pass` baseline.
    bench: BenchProgs,
    paths: Vec<Path>,
    install_secs: f64,
    /// Growth of this process's RSS while installing (the loader's own state per binding).
    rss_bytes_per_binding: f64,
}

fn build(n: u32) -> Result<Table> {
    // The anchor's home addresses come from a pool, as an LMA/HA assigns
    // them: the fast path finds them by their place in it.
    // An IPv6 pool too, so that the memory figures are a dual-stack anchor's.
    let pools = vec![
        pmip_user::fastpath::HomePoolSpec::V4 {
            prefix: Ipv4Addr::new(10, 224, 0, 0),
            len: 11,
        },
        pmip_user::fastpath::HomePoolSpec::V6 {
            prefix: "2001:db8:aa00::".parse().unwrap(),
            len: 40,
            assign_len: 64,
        },
    ];
    let mut fx = setup_with(
        1500,
        pmip_user::fastpath::LoadOptions {
            max_subscribers: n + SLACK,
            home_pools: pools,
            ..Default::default()
        },
    )?;
    let acc = fx.acc;
    let t4 = TunnelEnds {
        local: MAG4.into(),
        remote: LMA4.into(),
    };
    let at4 = TunnelEnds {
        local: A_LOCAL4.into(),
        remote: A_PEER4.into(),
    };
    let rss0 = rss_kb();
    let t = Instant::now();
    for i in 0..n {
        fx.fp.install_access(&AccessBinding {
            at: AccessPoint {
                ifindex: acc,
                vlan: 0,
                mac: sub_mac(i),
            },
            sub_id: 100 + i,
            tunnel: t4,
            // Each node picks the keys it receives with; ours are small
            // integers (the fast path finds them by index), the peer's may
            // be anything.
            uplink_key: 0x0100_0000 + i,
            downlink_key: KEY_BASE + i,
            home_v4: Some(access_home(i)),
            gateway_v4: Some(GW4),
            hnp: None,
        })?;
        fx.fp.install_anchor(&AnchorBinding {
            sub_id: 100 + i,
            tunnel: at4,
            uplink_key: KEY_BASE + i,
            downlink_key: 0x0400_0000 + i,
            home_v4: Some(anchor_home(i)),
            hnp: None,
        })?;
    }
    let install_secs = t.elapsed().as_secs_f64();
    let rss_bytes_per_binding = rss_kb().saturating_sub(rss0) as f64 * 1024.0 / n.max(1) as f64;
    let picks = distinct_picks(n, POOL);
    let frames = |f: &dyn Fn(u32) -> Vec<u8>| picks.iter().map(|i| f(*i)).collect::<Vec<_>>();
    let paths = vec![
        Path {
            name: "xdp_pass",
            program: PASS_PROGRAM,
            ifindex: acc,
            frames: frames(&|i| {
                cat(
                    eth(ACC_MAC, sub_mac(i), 0, ETH_P_IP),
                    &echo4(access_home(i), CN4),
                )
            }),
            verdict: 2,
        },
        Path {
            name: "access encap",
            program: PROGRAM,
            ifindex: acc,
            frames: frames(&|i| {
                cat(
                    eth(ACC_MAC, sub_mac(i), 0, ETH_P_IP),
                    &echo4(access_home(i), CN4),
                )
            }),
            verdict: 4,
        },
        Path {
            name: "access decap",
            program: PROGRAM,
            ifindex: fx.core,
            frames: frames(&|i| from_lma4(ETH_P_IP, KEY_BASE + i, &echo4(CN4, access_home(i)))),
            verdict: 4,
        },
        Path {
            name: "anchor encap",
            program: PROGRAM,
            ifindex: fx.cn,
            frames: frames(&|i| {
                cat(
                    eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP),
                    &echo4(CN4, anchor_home(i)),
                )
            }),
            verdict: 4,
        },
        Path {
            name: "anchor decap",
            program: PROGRAM,
            ifindex: fx.acore,
            frames: frames(&|i| from_mag4(ETH_P_IP, KEY_BASE + i, &echo4(anchor_home(i), CN4))),
            verdict: 4,
        },
    ];
    // The same paths on one subscriber only: its entries stay hot in the
    // caches, so this is the lookup itself without the misses of a big table.
    let hot: Vec<Path> = paths[1..]
        .iter()
        .map(|p| Path {
            name: match p.name {
                "access encap" => "access encap, 1 sub",
                "access decap" => "access decap, 1 sub",
                "anchor encap" => "anchor encap, 1 sub",
                _ => "anchor decap, 1 sub",
            },
            program: p.program,
            ifindex: p.ifindex,
            frames: vec![p.frames[0].clone()],
            verdict: p.verdict,
        })
        .collect();
    let mut paths = paths;
    paths.extend(hot);
    let mut bench = BenchProgs::load()?;
    bench.prog(PASS_PROGRAM)?;
    Ok(Table {
        n,
        fx,
        bench,
        paths,
        install_secs,
        rss_bytes_per_binding,
    })
}

/// Kernel-timed ns of `runs` single runs cycling through the path's
/// frames: (median, interquartile mean).
fn ns_per_packet(prog: &Xdp, p: &Path, runs: usize) -> Result<(f64, f64)> {
    time_runs(prog, &p.frames, Some(p.ifindex), p.verdict, runs)
        .map_err(|e| anyhow!("{}: {e}", p.name))
}

/// Kernel-timed ns of `runs` single BPF_PROG_TEST_RUNs of `prog` cycling
/// through `frames` (received on `ifindex`, or loopback), each of which
/// must return `verdict`: (median, interquartile mean).
pub fn time_runs(
    prog: &Xdp,
    frames: &[Vec<u8>],
    ifindex: Option<u32>,
    verdict: u32,
    runs: usize,
) -> Result<(f64, f64)> {
    let mut out = vec![0u8; 4096];
    let mut t = Vec::with_capacity(runs);
    for k in 0..runs {
        let f = &frames[k % frames.len()];
        let ctx = ifindex.map(|i| xdp_md(i, f.len()));
        let r = prog.test_run(TestRunOptions {
            data_in: Some(f),
            data_out: Some(&mut out),
            ctx_in: ctx.as_ref().map(|c| &c[..]),
            repeat: 1,
            ..Default::default()
        })?;
        if r.return_value != verdict {
            bail!("verdict {} (want {verdict})", r.return_value);
        }
        t.push(r.duration.as_nanos() as f64);
    }
    Ok((median(&t), interquartile_mean(&t)))
}

/// (name, max_entries, memlock bytes) of every BPF map this process holds.
pub fn map_memory() -> Result<Vec<(String, u32, u64)>> {
    let mut names = BTreeMap::new();
    for m in aya::maps::loaded_maps() {
        let Ok(m) = m else { continue };
        names.insert(m.id(), m.name_as_str().unwrap_or("").to_string());
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fdinfo")? {
        let Ok(e) = e else { continue };
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        if !text.contains("map_type:") {
            continue;
        }
        let field = |k: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().parse().ok()))?
        };
        let (Some(id), Some(max), Some(mem)) =
            (field("map_id:"), field("max_entries:"), field("memlock:"))
        else {
            continue;
        };
        let name = names.get(&(id as u32)).cloned().unwrap_or_default();
        out.push((name, max as u32, mem));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Maps that grow with the number of subscribers, and which role uses them.
const SUB_MAPS: [(&str, &str); 11] = [
    ("ACCESS_BY_MAC", "access"),
    ("ACCESS_BY_KEY", "access"),
    ("ACCESS_BY_KEY_HIGH", "access"),
    ("SUB_TOTALS", "both"),
    ("SUB_ACTIVE", "both"),
    ("ANCHOR_BY_POOL4", "anchor"),
    ("ANCHOR_BY_HOME4", "anchor"),
    ("ANCHOR_BY_POOL6", "anchor"),
    ("ANCHOR_BY_HNP", "anchor"),
    ("ANCHOR_BY_KEY", "anchor"),
    ("ANCHOR_BY_KEY_HIGH", "anchor"),
];

/// max_entries the loader gives map `name` for a table of `max` (see
/// `pmip_user::fastpath`: the hashes behind arrays are smaller).
fn expected_max(name: &str, max: u32) -> u32 {
    if name.ends_with("_HIGH") {
        pmip_user::fastpath::high_keys(max)
    } else if name == "ANCHOR_BY_HOME4" || name == "ANCHOR_BY_HNP" {
        pmip_user::fastpath::high_homes(max)
    } else if name == "SUB_ACTIVE" {
        // A row of slots per CPU, sized from the table (not one per subscriber).
        let cpus = aya::util::nr_cpus().map(|n| n as u32).unwrap_or(1);
        pmip_common::sub_active_slots(max, cpus) * cpus
    } else {
        max
    }
}

/// The figures of a map keyed by CPU count, "a / b / c" in 2, 16, 64 order
/// (the map sorts its keys as strings: "16" < "2" < "64").
fn in_cpu_order(m: &serde_json::Map<String, Value>) -> String {
    ["2", "16", "64"]
        .iter()
        .map(|c| format!("{:.0}", m.get(*c).and_then(Value::as_f64).unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// SUB_ACTIVE's bytes per subscriber of a table of `max` on `cpus` possible
/// CPUs, from the loader's sizing (40-byte slots, a row per CPU).
pub fn active_bytes_per_sub(max: u32, cpus: u32) -> f64 {
    let slots = pmip_common::sub_active_slots(max, cpus) as f64;
    cpus as f64 * slots * std::mem::size_of::<pmip_common::ActiveStats>() as f64 / max as f64
}

/// Resident set of this process, kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `pmip-bench scale`.
pub fn scale(cfg: &Config) -> Result<Value> {
    let mut tables = Vec::new();
    for &n in &cfg.sizes {
        let t = build(n)?;
        eprintln!(
            "  {n} subscribers installed (access + anchor) in {:.1} s",
            t.install_secs
        );
        tables.push(t);
    }
    let mem = map_memory()?;
    let cpu = crate::tput::bench_cpu();
    eprintln!("  measuring on CPU {cpu} (pinned)");
    // samples[table][path] = per-round (median, interquartile mean)
    let mut samples: Vec<Vec<Vec<(f64, f64)>>> = tables
        .iter()
        .map(|t| vec![Vec::new(); t.paths.len()])
        .collect();
    for _ in 0..cfg.rounds {
        for (ti, t) in tables.iter_mut().enumerate() {
            let Table {
                fx, bench, paths, ..
            } = t;
            let Fixture { ns, fp, .. } = fx;
            let fx_ns = &*ns;
            let runs = cfg.runs;
            // Inside the fixture's namespace: the kernel resolves the frame's
            // ingress ifindex (and so the FIB) in the caller's namespace.
            let per_round: Vec<(f64, f64)> = crate::tput::within(fx_ns, || {
                // One CPU for every run, whether started under taskset or not.
                crate::tput::pin_cpu(cpu)?;
                let mut v = Vec::new();
                for p in paths.iter() {
                    let prog = if p.program == PASS_PROGRAM {
                        &*bench.prog(PASS_PROGRAM)?
                    } else {
                        fp.loaded_program(p.program)?
                    };
                    let r = ns_per_packet(prog, p, runs);
                    let x = match r {
                        Ok(x) => x,
                        Err(e) => {
                            let c: Vec<String> = fp
                                .counters()?
                                .into_iter()
                                .filter(|(_, v)| *v > 0)
                                .map(|(n, v)| format!("{n}={v}"))
                                .collect();
                            bail!("{e}; counters: {}", c.join(" "));
                        }
                    };
                    v.push(x);
                }
                Ok(v)
            })?;
            for (pi, x) in per_round.into_iter().enumerate() {
                samples[ti][pi].push(x);
            }
        }
    }
    // PMIP_SCALE_COUNTERS=1: the fast-path counters of each table (a diagnostic).
    if std::env::var("PMIP_SCALE_COUNTERS").is_ok() {
        for t in &tables {
            let c: Vec<String> =
                t.fx.fp
                    .counters()?
                    .into_iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
            eprintln!("  {} subs counters: {}", t.n, c.join(" "));
        }
    }
    println!("per-packet cost against table size (BPF_PROG_TEST_RUN, single runs over {POOL} distinct random subscribers)");
    println!(
        "per round, the median and the interquartile mean (iqm: mean of the middle half) of {} runs;",
        cfg.runs
    );
    println!(
        "medians of {} interleaved rounds; ratios to the smallest table (the goal's: of the iqm)",
        cfg.rounds
    );
    println!(
        "{:<20} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "path", "subs", "median", "iqm", "spread", "x iqm", "x med"
    );
    let mut rows = Vec::new();
    let npaths = tables.first().map(|t| t.paths.len()).unwrap_or(0);
    let col = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).collect::<Vec<_>>();
    #[allow(clippy::needless_range_loop)] // pi indexes two tables at once
    for pi in 0..npaths {
        let first_med = median(&col(&samples[0][pi], |x| x.0)).max(1.0);
        let first_iqm = median(&col(&samples[0][pi], |x| x.1)).max(1.0);
        for (ti, t) in tables.iter().enumerate() {
            let (meds, iqms) = (
                col(&samples[ti][pi], |x| x.0),
                col(&samples[ti][pi], |x| x.1),
            );
            let (m, q) = (median(&meds), median(&iqms));
            let name = t.paths[pi].name;
            println!(
                "{name:<20} {:>8} {m:>7.1} {q:>7.1} {:>7.1} {:>7.2} {:>7.2}",
                t.n,
                spread(&iqms),
                q / first_iqm,
                m / first_med
            );
            rows.push(json!({"path": name, "subscribers": t.n,
                "ns_per_packet": m, "spread_ns": spread(&meds), "ns_rounds": meds,
                "ratio_to_smallest": m / first_med,
                "iqm_ns": q, "iqm_spread_ns": spread(&iqms), "iqm_rounds": iqms,
                "iqm_ratio_to_smallest": q / first_iqm}));
        }
    }
    println!("map memory per subscriber (kernel memlock / max_entries)");
    let mut mem_rows = Vec::new();
    for t in &tables {
        let max = t.n + SLACK;
        let mut per = BTreeMap::new();
        for (name, role) in SUB_MAPS {
            let (_, _, bytes) = mem
                .iter()
                // The kernel keeps 15 characters of a map's name.
                .find(|(n, m, _)| n == &name[..name.len().min(15)] && *m == expected_max(name, max))
                .ok_or_else(|| anyhow!("map {name} of {max} entries not found in fdinfo"))?;
            per.insert(name, (*bytes as f64 / max as f64, role, *bytes));
        }
        let role_sum = |r: &str| {
            per.values()
                .filter(|(_, role, _)| *role == r || *role == "both")
                .map(|(b, _, _)| b)
                .sum::<f64>()
        };
        let access = role_sum("access");
        let anchor = role_sum("anchor");
        let anchor_v4 = anchor - per["ANCHOR_BY_HNP"].0 - per["ANCHOR_BY_POOL6"].0;
        println!("  {:>8} subs: access gateway {access:.0} B, anchor {anchor:.0} B (IPv4-only anchor, no IPv6 prefix tables: {anchor_v4:.0} B); per map: {}",
            t.n, per.iter().map(|(n, (b, _, _))| format!("{n} {b:.0}")).collect::<Vec<_>>().join(", "));
        // Other CPU counts, from the sizing: only SUB_ACTIVE depends on them.
        let by_cpus = |base: f64| -> serde_json::Map<String, Value> {
            [2u32, 16, 64]
                .iter()
                .map(|&c| {
                    let active = active_bytes_per_sub(max, c);
                    (c.to_string(), json!(base - per["SUB_ACTIVE"].0 + active))
                })
                .collect()
        };
        let (access_cpus, anchor_cpus) = (by_cpus(access), by_cpus(anchor));
        println!(
            "  {:>8} subs, computed for 2 / 16 / 64 possible CPUs: access {} B, anchor {} B",
            t.n,
            in_cpu_order(&access_cpus),
            in_cpu_order(&anchor_cpus)
        );
        mem_rows.push(json!({"subscribers": t.n, "max_entries": max, "access_bytes_per_sub": access,
            "anchor_bytes_per_sub": anchor, "anchor_v4_only_bytes_per_sub": anchor_v4,
            "access_bytes_per_sub_by_cpus": access_cpus, "anchor_bytes_per_sub_by_cpus": anchor_cpus,
            "per_map": per.iter().map(|(n, (b, _, tot))| (n.to_string(), json!({"bytes_per_entry": b, "memlock": tot}))).collect::<serde_json::Map<_, _>>(),
            "install_secs": t.install_secs, "installs_per_sec": 2.0 * t.n as f64 / t.install_secs.max(1e-9),
            "loader_rss_bytes_per_binding": t.rss_bytes_per_binding}));
    }
    for t in &tables {
        println!("  {:>8} subs: installed {:.0} bindings/s (access + anchor); loader process RSS growth {:.1} B per binding",
            t.n, 2.0 * t.n as f64 / t.install_secs.max(1e-9), t.rss_bytes_per_binding);
    }
    drop(tables);
    Ok(
        json!({"benchmark": "scale", "rounds": cfg.rounds, "runs": cfg.runs, "pool": POOL, "cpu": cpu, "rows": rows,
        "memory": mem_rows}),
    )
}
