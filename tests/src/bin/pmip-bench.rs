//! pmip-bench: benchmarks run by `cargo xtask bench`. Each case runs several
//! rounds, interleaved with the cases it is compared to, and reports the
//! median and the spread; ratios come from the same run.
//!
//! `per-packet`: cost of each fast path with BPF_PROG_TEST_RUN, beside an
//! XDP_PASS program and a minimal forwarder (one hash lookup,
//! `bpf_fib_lookup`, redirect) on the same packet; and the same paths as
//! `pmip_tc_ingress` (the TC fast path, on an skb).
//! `PMIP_BENCH_OBJECT_B=path`: the fast path's rows again for a second object
//! (another build), each case timed right after PMIP_EBPF_OBJECT's in the
//! same rounds — the A/B that compares two builds on a noisy host.
//!
//! `handover`: the lab's daemons, a steady UDP stream each way, the
//! subscriber moved between the access gateways several times; the gap and
//! the packets lost per move (tests/src/handover.rs).
//!
//! Why not `repeat`: outside live-frames mode the kernel runs the program
//! `repeat` times on the same buffer without restoring it, so from the second
//! run on an encapsulating program sees its own output. Each sample is
//! therefore one run on a fresh copy (repeat = 1), timed by the kernel around
//! the program alone; the median of many such runs is the figure. The timer's
//! own overhead is in every case, the XDP_PASS row shows how much it is, and
//! the `net` column subtracts it.
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use aya::programs::{TestRun, TestRunOptions, TestRunResult};
use pmip_tests::cpu::loadavg;
use pmip_tests::fixture::*;
use pmip_tests::packet::*;
use pmip_tests::tput;
use pmip_user::fastpath::{PASS_PROGRAM, PROGRAM, TC_INGRESS_PROGRAM};

const ROUNDS: usize = 7;
/// Single runs per case per round; the round's figure is their median.
const RUNS: usize = 4000;

#[derive(Clone)]
struct Case {
    name: &'static str,
    program: &'static str,
    ifindex: u32,
    frame: Vec<u8>,
    verdict: u32,
}

/// One row of the per-packet table.
struct PathRow {
    name: String,
    /// Single runs: median ns, spread, × the minimal forwarder, net ×.
    ns: f64,
    spread: f64,
    ratio: f64,
    net: f64,
    /// `bench_replay` (XDP rows): median ns, spread and minimum over the rounds.
    replay: Option<(f64, f64, f64)>,
}

/// Runs per `bench_replay` measurement (timed together by the kernel), and
/// measurements per case per round, of which the round keeps the fastest:
/// on a shared host a measurement is only ever slowed down by others.
const REPLAY_REPEAT: u32 = 10_000;
const REPLAY_TRIES: usize = 3;

/// `PMIP_BENCH_REPLAY_REPEAT`: runs per replay measurement (default
/// [`REPLAY_REPEAT`]); millions keep one case running for seconds, long
/// enough for `perf record` to sample the JITed program and its helpers.
fn replay_repeat() -> u32 {
    std::env::var("PMIP_BENCH_REPLAY_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(REPLAY_REPEAT)
}

fn replay_best(
    bench: &mut tput::BenchProgs,
    fd: &aya::programs::ProgramFd,
    c: &Case,
) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..REPLAY_TRIES {
        best = best.min(bench.replay_ns(fd, &c.frame, c.ifindex, c.verdict, replay_repeat())?);
    }
    Ok(best)
}

fn ns_per_packet<P>(prog: &P, c: &Case) -> Result<f64>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let xdp_ctx = xdp_md(c.ifindex, c.frame.len());
    let skb_ctx = sk_buff(c.ifindex);
    let ctx: &[u8] = if c.program == TC_INGRESS_PROGRAM {
        &skb_ctx
    } else {
        &xdp_ctx
    };
    let mut out = vec![0u8; 4096];
    let mut t = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let r = prog.test_run(TestRunOptions {
            data_in: Some(&c.frame),
            data_out: Some(&mut out),
            ctx_in: Some(ctx),
            repeat: 1,
            ..Default::default()
        })?;
        if r.return_value != c.verdict {
            bail!(
                "{}: verdict {} (want {})",
                c.name,
                r.return_value,
                c.verdict
            );
        }
        t.push(r.duration.as_nanos() as f64);
    }
    Ok(median(&mut t))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn echo4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    ipv4(src, dst, 1, 64, true, &icmp_echo(7, 1, &[0xab; 32]))
}

/// Whether `program` is one of the fast path object's XDP programs:
/// `pmip_xdp` or a role's copy of it (`pmip_xdp_access`...).
fn object_xdp(program: &str) -> bool {
    program == PROGRAM || program.starts_with("pmip_xdp_")
}

fn per_packet() -> Result<serde_json::Value> {
    // As an anchor is configured: its home addresses come from pools.
    let fx = setup_with(
        1500,
        pmip_user::fastpath::LoadOptions {
            home_pools: anchor_pools(),
            ..Default::default()
        },
    )?;
    let (acc, core, acore, cn) = (fx.acc, fx.core, fx.acore, fx.cn);
    let mut fp = fx.fp;
    // PMIP_BENCH_OBJECT_B: more fast path objects (other builds; a
    // comma-separated list), timed beside PMIP_EBPF_OBJECT in the same
    // rounds, case by case: their rows follow, prefixed "B: " (one object)
    // or "B1: ", "B2: "... The host is noisy; only a same-run A/B compares.
    let objects_b: Vec<String> = std::env::var("PMIP_BENCH_OBJECT_B")
        .map(|v| {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut fx_b = Vec::new();
    for object in &objects_b {
        fx_b.push(setup_with(
            1500,
            pmip_user::fastpath::LoadOptions {
                object: object.into(),
                home_pools: anchor_pools(),
                ..Default::default()
            },
        )?);
    }
    // One CPU for every run (see tput::bench_cpu), whether started under taskset or not.
    let cpu = tput::bench_cpu();
    let rows = fx.ns.run_in(move || -> Result<Vec<PathRow>> {
        tput::pin_cpu(cpu)?;
        let up = cat(eth(ACC_MAC, SUB1_MAC, 0, ETH_P_IP), &echo4(HOME1, CN4));
        let up_v4_copy = up.clone();
        let up_v6t = cat(eth(ACC_MAC, SUB2_MAC, 0, ETH_P_IP), &echo4(HOME2, CN4));
        let down = from_lma4(ETH_P_IP, 0x2001, &echo4(CN4, HOME1));
        let down_v6t = from_lma6(ETH_P_IP, 0x2002, &echo4(CN4, HOME2));
        let a_down = cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP), &echo4(CN4, AHOME4));
        let a_down_v6t = cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP), &echo4(CN4, AHOME4_V6T));
        let a_up = from_mag4(ETH_P_IP, 0x3001, &echo4(AHOME4, CN4));
        let (up_tc, down_tc, a_down_tc, a_up_tc) =
            (up.clone(), down.clone(), a_down.clone(), a_up.clone());
        let a_up_v6t = from_mag6(ETH_P_IP, 0x3002, &echo4(AHOME4_V6T, CN4));
        let mut cases = vec![
            Case {
                name: "xdp_pass (baseline a)",
                program: PASS_PROGRAM,
                ifindex: acc,
                frame: up.clone(),
                verdict: 2,
            },
            Case {
                name: "min forwarder (baseline b)",
                program: "bench_min_fwd",
                ifindex: acc,
                frame: up.clone(),
                verdict: 4,
            },
            // The throughput benchmark's redirect ceiling: MAC rewrite + redirect only.
            Case {
                name: "redirect only (tg_fwd)",
                program: "tg_fwd",
                ifindex: acc,
                frame: up.clone(),
                verdict: 4,
            },
            Case {
                name: "access encap, IPv4 outer",
                program: PROGRAM,
                ifindex: acc,
                frame: up,
                verdict: 4,
            },
            Case {
                name: "access encap, IPv6 outer",
                program: PROGRAM,
                ifindex: acc,
                frame: up_v6t,
                verdict: 4,
            },
            Case {
                name: "access decap, IPv4 outer",
                program: PROGRAM,
                ifindex: core,
                frame: down,
                verdict: 4,
            },
            Case {
                name: "access decap, IPv6 outer",
                program: PROGRAM,
                ifindex: core,
                frame: down_v6t,
                verdict: 4,
            },
            Case {
                name: "anchor encap, IPv4 outer",
                program: PROGRAM,
                ifindex: cn,
                frame: a_down,
                verdict: 4,
            },
            Case {
                name: "anchor encap, IPv6 outer",
                program: PROGRAM,
                ifindex: cn,
                frame: a_down_v6t,
                verdict: 4,
            },
            Case {
                name: "anchor decap, IPv4 outer",
                program: PROGRAM,
                ifindex: acore,
                frame: a_up,
                verdict: 4,
            },
            Case {
                name: "anchor decap, IPv6 outer",
                program: PROGRAM,
                ifindex: acore,
                frame: a_up_v6t,
                verdict: 4,
            },
            // The same paths at TC ingress (TC_ACT_REDIRECT = 7).
            Case {
                name: "TC: access encap, IPv4 outer",
                program: TC_INGRESS_PROGRAM,
                ifindex: acc,
                frame: up_tc,
                verdict: 7,
            },
            Case {
                name: "TC: access decap, IPv4 outer",
                program: TC_INGRESS_PROGRAM,
                ifindex: core,
                frame: down_tc,
                verdict: 7,
            },
            Case {
                name: "TC: anchor encap, IPv4 outer",
                program: TC_INGRESS_PROGRAM,
                ifindex: cn,
                frame: a_down_tc,
                verdict: 7,
            },
            Case {
                name: "TC: anchor decap, IPv4 outer",
                program: TC_INGRESS_PROGRAM,
                ifindex: acore,
                frame: a_up_tc,
                verdict: 7,
            },
            // Single operations of the fast path (pmip-ebpf/src/test/cost.rs),
            // each then XDP_PASS: their cost is the difference to xdp_pass.
            Case {
                name: "op: bpf_ktime_get_ns",
                program: "tg_cost_ktime",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: bpf_ktime_get_coarse_ns",
                program: "tg_cost_ktime_coarse",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: bpf_jiffies64",
                program: "tg_cost_jiffies",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: hash lookup (subscriber)",
                program: "tg_cost_hash",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: array lookup (IFACES)",
                program: "tg_cost_array",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: bpf_fib_lookup (IPv4)",
                program: "tg_cost_fib",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: xdp_adjust_head -24",
                program: "tg_cost_adjust",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: 2 atomic adds (shared counter)",
                program: "tg_cost_atomic",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: bpf_redirect",
                program: "tg_cost_redirect",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 4,
            },
            Case {
                name: "op: bpf_redirect_map (DEVMAP)",
                program: "tg_cost_redirect_map",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 4,
            },
            Case {
                name: "op: per-CPU counter",
                program: "tg_cost_percpu",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: 4 packet loads, each in one word",
                program: "tg_cost_load_word",
                ifindex: acc,
                frame: up_v4_copy.clone(),
                verdict: 2,
            },
            Case {
                name: "op: 4 packet loads across words",
                program: "tg_cost_load_split",
                ifindex: acc,
                frame: up_v4_copy,
                verdict: 2,
            },
        ];
        // IPv6 inner (issue 15), after the IPv4-inner rows.
        let at = cases.iter().position(|c| c.name.starts_with("TC: "));
        let v6 = pmip_tests::bench6::ipv6_inner_cases(acc, core, acore, cn);
        let v6 = v6.into_iter().map(|(name, ifindex, frame)| Case {
            name,
            program: PROGRAM,
            ifindex,
            frame,
            verdict: 4,
        });
        let at = at.unwrap_or(cases.len());
        cases.splice(at..at, v6);
        // An object from before the TC path (PMIP_EBPF_OBJECT, to compare
        // with) has no pmip_tc_ingress: its rows are left out.
        if fp.load_tc_program().is_err() || fx_b.iter_mut().any(|b| b.fp.load_tc_program().is_err())
        {
            cases.retain(|c| c.program != TC_INGRESS_PROGRAM);
        }
        // What pmipd attaches to an interface of one role (pmip-user
        // `xdp_program_for`): each XDP fast path case again, right after it,
        // through the program of its interface's role ("[role]" rows). Not
        // for an object from before them.
        let mut with_roles = Vec::new();
        for c in cases {
            let role = (c.program == PROGRAM)
                .then(|| role_program([acc, core, acore, cn], c.ifindex))
                .flatten();
            let role = role.filter(|name| fp.loaded_program(name).is_ok());
            let extra = role.map(|name| Case {
                name: Box::leak(format!("{} [role]", c.name).into_boxed_str()),
                program: name,
                ..c.clone()
            });
            with_roles.push(c);
            with_roles.extend(extra);
        }
        cases = with_roles;
        // PMIP_BENCH_REPLAY_ONLY=1: the XDP paths and baselines through
        // bench_replay only (quick A/B of builds; the single-run column is 0).
        let replay_only = std::env::var("PMIP_BENCH_REPLAY_ONLY").is_ok_and(|v| v == "1");
        let filter = std::env::var("PMIP_BENCH_CASES").ok();
        if replay_only {
            cases.retain(|c| {
                c.program != TC_INGRESS_PROGRAM && (!c.name.starts_with("op: ") || filter.is_some())
            });
        }
        // PMIP_BENCH_CASES=a|b: only the cases whose names contain one of
        // these (profiling one path; single operations too, also with
        // PMIP_BENCH_REPLAY_ONLY); the baselines stay, the table needs them.
        if let Some(want) = &filter {
            let want: Vec<&str> = want.split('|').filter(|w| !w.is_empty()).collect();
            cases.retain(|c| {
                c.name.contains("baseline")
                    || c.program == "tg_fwd"
                    || want.iter().any(|w| c.name.contains(w))
            });
        }
        // The fast path's cases on fixture B: same frames, B's interfaces.
        // (case index, fixture index, case on that fixture)
        let mut b_cases: Vec<(usize, usize, Case)> = Vec::new();
        for (bi, b) in fx_b.iter_mut().enumerate() {
            for (i, c) in cases.iter().enumerate() {
                // A's role rows too, for a B object that has the role programs.
                let ours = object_xdp(c.program) || c.program == TC_INGRESS_PROGRAM;
                let role = object_xdp(c.program) && c.program != PROGRAM;
                if !ours || role && b.fp.loaded_program(c.program).is_err() {
                    continue;
                }
                let ifindex = [(acc, b.acc), (core, b.core), (acore, b.acore), (cn, b.cn)]
                    .into_iter()
                    .find(|(a, _)| *a == c.ifindex)
                    .map_or(c.ifindex, |(_, b)| b);
                b_cases.push((
                    i,
                    bi,
                    Case {
                        ifindex,
                        ..c.clone()
                    },
                ));
            }
        }
        // The baselines and single operations: the test object's programs,
        // its subscriber table holding the one the baselines look up.
        let mut bench = tput::BenchProgs::load()?;
        bench.set_min_fwd_key(acc, SUB1_MAC)?;
        bench.set_bench_dev(acc)?;
        // The XDP programs also timed through bench_replay (by fd: the
        // harness tail-calls them, whatever object they are in).
        let mut replay_fds = Vec::new();
        for c in &cases {
            let fd = if c.program == TC_INGRESS_PROGRAM {
                None
            } else if object_xdp(c.program) {
                Some(fp.xdp_program(c.program)?.fd()?.try_clone()?)
            } else {
                Some(bench.prog(c.program)?.fd()?.try_clone()?)
            };
            replay_fds.push(fd);
        }
        for (_, bi, bc) in &b_cases {
            let b = &fx_b[*bi];
            replay_fds.push(if object_xdp(bc.program) {
                Some(b.fp.xdp_program(bc.program)?.fd()?.try_clone()?)
            } else {
                None
            });
        }
        let mut samples = vec![Vec::new(); cases.len() + b_cases.len()];
        let mut replays = vec![Vec::new(); cases.len() + b_cases.len()];
        // Interleave: every round runs every case once, so drift and noise
        // from the shared host hit all cases alike.
        for _ in 0..ROUNDS {
            for (i, c) in cases.iter().enumerate() {
                let ns = if replay_only {
                    0.0
                } else if c.program == TC_INGRESS_PROGRAM {
                    ns_per_packet(fp.tc_program()?, c)?
                } else if object_xdp(c.program) {
                    ns_per_packet(fp.xdp_program(c.program)?, c)?
                } else {
                    ns_per_packet(&*bench.prog(c.program)?, c)?
                };
                samples[i].push(ns);
                if let Some(fd) = &replay_fds[i] {
                    let ns = replay_best(&mut bench, fd, c)?;
                    replays[i].push(ns);
                }
                // Right after A's run of the same case, in B's namespace.
                for (k, (_, fi, bc)) in b_cases.iter().enumerate().filter(|(_, (j, _, _))| *j == i)
                {
                    let b = &fx_b[*fi];
                    let bi = cases.len() + k;
                    let (ns, r) = tput::within(&b.ns, || {
                        tput::pin_cpu(cpu)?;
                        let ns = if replay_only {
                            0.0
                        } else if bc.program == TC_INGRESS_PROGRAM {
                            ns_per_packet(b.fp.tc_program()?, bc)?
                        } else {
                            ns_per_packet(b.fp.xdp_program(bc.program)?, bc)?
                        };
                        let r = match &replay_fds[bi] {
                            Some(fd) => Some(replay_best(&mut bench, fd, bc)?),
                            None => None,
                        };
                        Ok((ns, r))
                    })?;
                    samples[bi].push(ns);
                    replays[bi].extend(r);
                }
            }
        }
        let mut medians: Vec<f64> = samples.iter().map(|s| median(&mut s.clone())).collect();
        let pass = medians[0];
        let min_fwd = medians[1];
        let mut rows = Vec::new();
        let names = cases
            .iter()
            .map(|c| c.name.to_string())
            .chain(b_cases.iter().map(|(_, fi, c)| {
                if fx_b.len() == 1 {
                    format!("B: {}", c.name)
                } else {
                    format!("B{}: {}", fi + 1, c.name)
                }
            }));
        for (i, name) in names.enumerate() {
            let s = &mut samples[i];
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let m = medians[i];
            let net = (m - pass).max(0.0) / (min_fwd - pass).max(1.0);
            let r = &mut replays[i];
            r.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let replay = (!r.is_empty()).then(|| (r[r.len() / 2], r[r.len() - 1] - r[0], r[0]));
            rows.push(PathRow {
                name,
                ns: m,
                spread: s[s.len() - 1] - s[0],
                ratio: m / min_fwd,
                net,
                replay,
            });
        }
        medians.clear();
        Ok(rows)
    })??;
    println!("per-packet cost, BPF_PROG_TEST_RUN, median of {ROUNDS} interleaved rounds of {RUNS} single runs;");
    println!("replay: bench_replay, {} runs timed together (harness included), best of {REPLAY_TRIES} per round,", replay_repeat());
    println!(
        "median and minimum over the rounds; - tg_fwd: the median minus the redirect ceiling's hop"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "case", "ns/pkt", "spread", "x min-fwd", "net x", "replay", "spread", "min", "- tg_fwd"
    );
    // The redirect ceiling's hop in the replay column: what a path costs beyond it.
    let fwd_replay = rows
        .iter()
        .find(|r| r.name.starts_with("redirect only"))
        .and_then(|r| r.replay)
        .map(|r| r.0);
    let mut json = Vec::new();
    for r in &rows {
        let (rm, rs, rmin) = r.replay.unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let over = fwd_replay.map(|f| rm - f).unwrap_or(f64::NAN);
        println!(
            "{:<34} {:>8.1} {:>8.1} {:>10.2} {:>8.2} {rm:>8.1} {rs:>8.1} {rmin:>8.1} {over:>10.1}",
            r.name, r.ns, r.spread, r.ratio, r.net
        );
        let mut j = serde_json::json!({"case": r.name, "ns_per_packet": r.ns, "spread_ns": r.spread,
            "ratio_to_min_forwarder": r.ratio, "net_ratio_to_min_forwarder": r.net});
        if let Some((m, sp, min)) = r.replay {
            j["replay_ns"] = serde_json::json!(m);
            j["replay_spread_ns"] = serde_json::json!(sp);
            j["replay_min_ns"] = serde_json::json!(min);
            if let Some(f) = fwd_replay {
                j["replay_over_tg_fwd_ns"] = serde_json::json!(m - f);
            }
        }
        json.push(j);
    }
    Ok(
        serde_json::json!({"benchmark": "per-packet", "runs": RUNS, "rounds": ROUNDS, "cpu": cpu,
        "replay_repeat": replay_repeat(), "rows": json}),
    )
}

/// `--save NAME` / `--compare NAME` (tracked baselines, tests/src/baseline.rs)
/// out of the arguments; the rest name the benchmarks to run.
fn split_args(mut args: Vec<String>) -> Result<(Vec<String>, Option<String>, Option<String>)> {
    let mut take = |flag: &str| -> Result<Option<String>> {
        match args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < args.len() => {
                let v = args.remove(i + 1);
                args.remove(i);
                Ok(Some(v))
            }
            Some(_) => bail!("{flag} needs a NAME"),
            None => Ok(None),
        }
    };
    let save = take("--save")?;
    let compare = take("--compare")?;
    Ok((args, save, compare))
}

/// `PMIP_BENCH_ROUNDS` and `PMIP_BENCH_SCALE_SIZES` (comma-separated) over
/// `c`: for `scale` and `pages`.
fn scale_from_env(mut c: pmip_tests::scale::Config) -> pmip_tests::scale::Config {
    if let Some(r) = std::env::var("PMIP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.rounds = r;
    }
    if let Ok(s) = std::env::var("PMIP_BENCH_SCALE_SIZES") {
        c.sizes = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    c
}

fn main() -> Result<()> {
    let (args, save, compare) = split_args(std::env::args().skip(1).collect())?;
    let want = |n: &str| args.is_empty() || args.iter().any(|a| a == n);
    // The host is shared: its load beside every result.
    let load_start = loadavg();
    let mut results = Vec::new();
    let smoke = std::env::var("PMIP_BENCH_SMOKE").is_ok();
    // PMIP_BENCH_ROUNDS, _SECS, _SIZES, _THREADS, _INNER (tput::Config::from_env).
    let cfg = tput::Config::from_env(smoke)?;
    if want("per-packet") {
        results.push(per_packet()?);
    }
    if want("throughput") {
        results.push(tput::throughput(&cfg)?);
    }
    if want("trafgen") {
        let mut c = cfg.clone();
        c.rounds = c.rounds.min(3);
        results.push(tput::trafgen(&c)?);
    }
    if want("tcp") {
        let mut c = cfg.clone();
        c.secs = if smoke { 1.0 } else { 3.0 };
        results.push(tput::tcp(&c)?);
    }
    if want("scale") {
        let c = if smoke {
            pmip_tests::scale::Config::smoke()
        } else {
            pmip_tests::scale::Config::full()
        };
        results.push(pmip_tests::scale::scale(&scale_from_env(c))?);
    }
    // Not in the default set: an experiment on the kernel's allocations
    // (issue 18), run by name.
    if args.iter().any(|a| a == "pages") {
        let mut c = pmip_tests::scale::Config::full();
        c.sizes = vec![1_000, 1_000_000];
        results.push(pmip_tests::pages::pages(&scale_from_env(c))?);
    }
    if want("handover") {
        let mut c = if smoke {
            pmip_tests::handover::Config::smoke()
        } else {
            pmip_tests::handover::Config::full()
        };
        // PMIP_BENCH_HANDOVER_MOVES / _RATE / _TRIGGERS=data,dhcp / _PROTOS=pmipv6,pmipv4 / _SUBSCRIBERS=ipv4,ipv6,dual / _TCP=1
        if let Some(m) = std::env::var("PMIP_BENCH_HANDOVER_MOVES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            c.moves = m;
        }
        if let Some(r) = std::env::var("PMIP_BENCH_HANDOVER_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            c.rate = r;
        }
        if let Ok(t) = std::env::var("PMIP_BENCH_HANDOVER_TRIGGERS") {
            c.triggers = t
                .split(',')
                .filter_map(|x| match x.trim() {
                    "data" => Some(pmip_tests::lab::Trigger::Data),
                    "dhcp" => Some(pmip_tests::lab::Trigger::Dhcp),
                    _ => None,
                })
                .collect();
        }
        if let Ok(t) = std::env::var("PMIP_BENCH_HANDOVER_PROTOS") {
            c.protos = t
                .split(',')
                .filter_map(|x| match x.trim() {
                    "pmipv6" => Some(pmip_tests::lab::Proto::Pmipv6),
                    "pmipv4" => Some(pmip_tests::lab::Proto::Pmipv4),
                    _ => None,
                })
                .collect();
        }
        // _SUBSCRIBERS=ipv4,ipv6,dual: IPv6 and dual-stack subscribers stream over IPv6.
        if let Ok(t) = std::env::var("PMIP_BENCH_HANDOVER_SUBSCRIBERS") {
            use pmip_user::config::Service;
            c.services = t
                .split(',')
                .filter_map(|x| match x.trim() {
                    "ipv4" => Some(Service::Ipv4),
                    "ipv6" => Some(Service::Ipv6),
                    "dual" => Some(Service::Dual),
                    _ => None,
                })
                .collect();
        }
        c.tcp_load = std::env::var("PMIP_BENCH_HANDOVER_TCP").is_ok_and(|v| v == "1");
        results.push(pmip_tests::handover::handover(&c)?);
    }
    // PMIP_BENCH_RESULTS_DIR: elsewhere than bench-results/ (the smoke tests).
    let dir = std::env::var_os("PMIP_BENCH_RESULTS_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir)?;
    // One file per benchmark, and results.json with the latest run of each
    // (a run of some benchmarks keeps the others' last figures).
    let path = dir.join("results.json");
    let mut all: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let machine = machine();
    let load_end = loadavg();
    println!("load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end");
    for r in &mut results {
        r["machine"] = machine.clone();
        r["date"] = serde_json::json!(date());
        r["loadavg"] = serde_json::json!({"start": load_start, "end": load_end});
        let name = r["benchmark"].as_str().unwrap_or("unknown").to_string();
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(r)?,
        )?;
        all.retain(|x| x["benchmark"] != r["benchmark"]);
        all.push(r.clone());
    }
    std::fs::write(&path, serde_json::to_string_pretty(&all)?)?;
    println!("results written to {}", path.display());
    // Compared before saving, so `--compare X --save X` compares with the old X.
    if let Some(name) = compare {
        let base = pmip_tests::baseline::load(&dir, &name)?;
        let rows = pmip_tests::baseline::compare(&base, &results);
        pmip_tests::baseline::print(&name, &base, &results, &rows);
    }
    if let Some(name) = save {
        let p = pmip_tests::baseline::save(&dir, &name, &results)?;
        println!("baseline {name} saved to {}", p.display());
    }
    Ok(())
}

/// What the figures were measured on.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    serde_json::json!({"cpus": tput::ncpus(), "cpu": cpu, "kernel": kernel, "mem_gib": mem_kb / 1024 / 1024})
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
