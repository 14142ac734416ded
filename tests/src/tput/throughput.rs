//! `pmip-bench throughput`: the cases of [`Case`] on the IPv4 flow (the
//! first table), and the IPv6-inner flows (the second): up and down, over an
//! IPv4 and an IPv6 tunnel, beside the redirect ceiling and kernel IPv6
//! forwarding on the same IPv6 frames in the same rounds.
use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::frame::{Dir, Family, Flow, TG_HDR6_LEN};
use super::topo::{Case, Sample, Topo};
use super::{median, ncpus, spread, Config};

/// (case, flow, frame bytes, threads)
type K = (Case, Flow, usize, usize);

/// What one run measures, in the order it is measured each round.
pub fn runs(inner: &[Family]) -> Vec<(Case, Flow)> {
    let mut out = Vec::new();
    if inner.contains(&Family::V4) {
        out.extend(Case::ALL.map(|c| (c, Flow::V4)));
    }
    if inner.contains(&Family::V6) {
        for dir in [Dir::Up, Dir::Down] {
            let no_tunnel = Flow {
                inner: Family::V6,
                outer: Family::V6,
                dir,
            };
            out.push((Case::Redirect, no_tunnel));
            out.push((Case::Kernel, no_tunnel));
            for outer in [Family::V4, Family::V6] {
                out.push((Case::FastNative, Flow { outer, ..no_tunnel }));
            }
        }
    }
    out
}

/// The flow of a case's baselines: the same inner family and direction, no tunnel.
fn baseline(flow: Flow) -> Flow {
    Flow {
        outer: flow.inner,
        ..flow
    }
}

fn tunnel(case: Case) -> bool {
    matches!(case, Case::FastNative | Case::FastGeneric | Case::FastTc)
}

/// The row's name: the IPv4 table's as it always was; the IPv6 rows name
/// the inner and (for the fast path) the outer family.
pub fn row_name(case: Case, flow: Flow) -> String {
    if flow == Flow::V4 {
        return case.name().to_string();
    }
    match case {
        Case::Kernel => format!(
            "kernel {} forwarding (2 hops, no tunnel)",
            flow.inner.name()
        ),
        Case::FastNative => format!("fast path native XDP, {}", flow.label(true)),
        Case::FastGeneric => format!("fast path generic XDP, {}", flow.label(true)),
        Case::FastTc => format!("fast path TC ingress, {}", flow.label(true)),
        _ => case.name().to_string(),
    }
}

/// The row's key in the JSON (and in baselines): the IPv4 table's as it
/// always was; e.g. `fastpath-native/ipv6-in-ipv4/up`, `kernel/ipv6/down`.
pub fn row_key(case: Case, flow: Flow) -> String {
    if flow == Flow::V4 {
        return case.key().to_string();
    }
    let fam = |f: Family| f.name().to_ascii_lowercase();
    if tunnel(case) {
        format!(
            "{}/{}-in-{}/{}",
            case.key(),
            fam(flow.inner),
            fam(flow.outer),
            flow.dir.name()
        )
    } else {
        format!("{}/{}/{}", case.key(), fam(flow.inner), flow.dir.name())
    }
}

/// `pmip-bench throughput`.
pub fn throughput(cfg: &Config) -> Result<Value> {
    if cfg.inner.contains(&Family::V6) {
        if let Some(s) = cfg.sizes.iter().find(|s| **s < TG_HDR6_LEN) {
            bail!("IPv6 frames of {s} bytes: at least {TG_HDR6_LEN} (PMIP_BENCH_SIZES)");
        }
    }
    let mut topo = Topo::new()?;
    let threads: Vec<usize> = cfg
        .threads
        .iter()
        .copied()
        .filter(|t| *t <= ncpus())
        .collect();
    let mut runs = runs(&cfg.inner);
    // PMIP_BENCH_TPUT_CASES=redirect|fastpath-native: only the rows with
    // these keys (profiling a case in the chain; a row whose baseline is
    // left out has no ratio to it).
    if let Ok(want) = std::env::var("PMIP_BENCH_TPUT_CASES") {
        let want: Vec<&str> = want.split('|').filter(|w| !w.is_empty()).collect();
        runs.retain(|&(c, f)| want.contains(&row_key(c, f).as_str()));
        if runs.is_empty() {
            bail!("PMIP_BENCH_TPUT_CASES: no row key among {want:?}");
        }
    }
    let samples = collect(&mut topo, cfg, &runs, &threads)?;
    topo.clear()?;
    let rows = report(cfg, &topo, &runs, &threads, &samples);
    Ok(
        json!({"benchmark": "throughput", "rounds": cfg.rounds, "secs": cfg.secs,
        "queues": topo.queues(), "generator": topo.generator().name(), "rows": rows}),
    )
}

/// Every run of `runs` at every size and thread count, round after round.
fn collect(
    topo: &mut Topo,
    cfg: &Config,
    runs: &[(Case, Flow)],
    threads: &[usize],
) -> Result<BTreeMap<K, Vec<Sample>>> {
    let mut samples: BTreeMap<K, Vec<Sample>> = BTreeMap::new();
    // Generator rate per thread, to size `repeat` for the target duration.
    let mut rate: BTreeMap<K, f64> = BTreeMap::new();
    // Round 0 is a warm-up that only sizes the runs.
    for round in 0..=cfg.rounds {
        for &(case, flow) in runs {
            topo.set_case(case, flow)?;
            for &size in &cfg.sizes {
                for &t in threads {
                    let k = (case, flow, size, t);
                    let repeat = match rate.get(&k) {
                        Some(r) => (r * cfg.secs).clamp(10_000.0, 4e9) as u32,
                        None => 100_000,
                    };
                    let s = topo.measure(flow, case == Case::Veth, size, t, repeat)?;
                    rate.insert(k, s.gen_pps_per_thread);
                    if round > 0 {
                        eprintln!("  round {round} {:<34} {size:>5} B {t} thr: {:>7.3} Mpps (offered {}, delivered {})",
                            row_key(case, flow), s.pps / 1e6, s.offered, s.delivered);
                        samples.entry(k).or_default().push(s);
                    }
                }
            }
        }
    }
    Ok(samples)
}

/// Prints the tables and returns the JSON rows.
fn report(
    cfg: &Config,
    topo: &Topo,
    runs: &[(Case, Flow)],
    threads: &[usize],
    samples: &BTreeMap<K, Vec<Sample>>,
) -> Vec<Value> {
    let mpps = |k: &K| -> Vec<f64> {
        samples
            .get(k)
            .map(|v| v.iter().map(|s| s.pps / 1e6).collect())
            .unwrap_or_default()
    };
    println!(
        "throughput through the tunnel on veth (generator: {}, pps at the sink)",
        topo.generator().name()
    );
    if topo.generator() == super::Generator::PacketSocket {
        println!(
            "the generator's own cost per frame bounds every row: compare rows of this run only, \
             not with live-frames runs"
        );
    }
    println!(
        "median of {} interleaved rounds of ~{} s; {} veth queues",
        cfg.rounds,
        cfg.secs,
        topo.queues()
    );
    let mut rows = Vec::new();
    for inner in [Family::V4, Family::V6] {
        let these: Vec<_> = runs.iter().filter(|(_, f)| f.inner == inner).collect();
        if these.is_empty() {
            continue;
        }
        if inner == Family::V6 {
            print_v6_heading();
        }
        println!(
            "{:<46} {:>4} {:>6} {:>4} {:>9} {:>8} {:>9} {:>9}",
            "case", "dir", "bytes", "thr", "Mpps", "spread", "x redir", "x kernel"
        );
        for &size in &cfg.sizes {
            for &t in threads {
                for &&(case, flow) in &these {
                    let base = baseline(flow);
                    let v = mpps(&(case, flow, size, t));
                    let redir = mpps(&(Case::Redirect, base, size, t));
                    let kern = mpps(&(Case::Kernel, base, size, t));
                    let ss = samples
                        .get(&(case, flow, size, t))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    rows.push(row(case, flow, size, t, &v, &redir, &kern, ss));
                }
            }
        }
    }
    rows
}

fn print_v6_heading() {
    println!();
    println!("IPv6 inner: UDP between an address in the subscriber's home network prefix and");
    println!("the correspondent; up = subscriber -> correspondent (access encap, anchor decap),");
    println!("down = correspondent -> subscriber (anchor encap, access decap). Each row's");
    println!("x redir / x kernel compare with the same run's redirect ceiling and kernel IPv6");
    println!("forwarding (2 hops, no tunnel) on the same IPv6 frames, same direction and size.");
}

/// Prints one table row and returns its JSON.
#[allow(clippy::too_many_arguments)]
fn row(
    case: Case,
    flow: Flow,
    size: usize,
    t: usize,
    v: &[f64],
    redir: &[f64],
    kern: &[f64],
    ss: &[Sample],
) -> Value {
    let m = median(v);
    let ratio = |b: f64| if b > 0.0 { m / b } else { 0.0 };
    let (redir_m, kern_m) = (median(redir), median(kern));
    // Per-round ratios too: same round, same noise.
    let per_round = |b: &[f64]| -> Vec<f64> {
        v.iter()
            .zip(b)
            .map(|(x, y)| if *y > 0.0 { x / y } else { 0.0 })
            .collect()
    };
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    for s in ss {
        for (h, d) in &s.drops {
            *drops.entry(h.clone()).or_default() += d;
        }
    }
    let offered: u64 = ss.iter().map(|s| s.offered).sum();
    let delivered: u64 = ss.iter().map(|s| s.delivered).sum();
    let name = row_name(case, flow);
    println!(
        "{name:<46} {:>4} {size:>6} {t:>4} {m:>9.3} {:>8.3} {:>9.2} {:>9.2}",
        flow.dir.name(),
        spread(v),
        ratio(redir_m),
        ratio(kern_m)
    );
    json!({
        "case": row_key(case, flow), "name": name, "frame_bytes": size, "threads": t,
        "inner": flow.inner.name(),
        "outer": if tunnel(case) { json!(flow.outer.name()) } else { Value::Null },
        "direction": flow.dir.name(),
        "mpps_median": m, "mpps_spread": spread(v), "mpps_rounds": v,
        "ratio_to_redirect": ratio(redir_m),
        "ratio_to_kernel": ratio(kern_m),
        "ratio_to_redirect_per_round_median": median(&per_round(redir)),
        "ratio_to_kernel_per_round_median": median(&per_round(kern)),
        "ratio_to_redirect_per_round": per_round(redir),
        "ratio_to_kernel_per_round": per_round(kern),
        "offered": offered, "delivered": delivered, "lost_by_hop": drops,
    })
}
