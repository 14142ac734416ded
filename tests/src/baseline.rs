//! Tracked baselines: `cargo xtask bench --save NAME` keeps the figures of a
//! run in `bench-results/baseline-NAME.json`; `--compare NAME` prints every
//! figure of a later run as a ratio to that baseline, beside both runs'
//! spreads, so a regression shows at a glance.
//!
//! A figure is one number a benchmark reports with its spread (max − min
//! over rounds): ns per packet, Mpps, same-round ratios, Gbit/s, bytes per
//! subscriber, handover gap. [`figures`] flattens each benchmark's JSON into
//! them. A ratio to the baseline is called out only when it is outside the
//! noise: further from 1 than the two runs' relative spreads together.
//!
//! The host matters: absolute figures move with the machine and its load,
//! ratios measured in one run much less. The throughput benchmark's
//! native-redirect ceiling (Mpps) is printed for both runs so the reader
//! sees how fast each host was.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// One reported number.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Benchmark / row / quantity, unique within a run.
    pub name: String,
    pub value: f64,
    /// Max − min over the rounds (0 when the benchmark gives none).
    pub spread: f64,
    /// Whether a larger value is an improvement (Mpps) or a regression (ns).
    pub higher_is_better: bool,
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn text(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn spread_of(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    if v.is_empty() {
        0.0
    } else {
        max - min
    }
}

fn list(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// The figures of one benchmark's result (as pmip-bench writes it).
pub fn figures(result: &Value) -> Vec<Figure> {
    let bench = text(result, "benchmark");
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |name: String, value: f64, spread: f64, higher: bool| {
        out.push(Figure {
            name,
            value,
            spread,
            higher_is_better: higher,
        })
    };
    match bench.as_str() {
        "per-packet" => {
            for r in &rows {
                let n = format!("per-packet | {} | ns", text(r, "case"));
                push(n, num(r, "ns_per_packet"), num(r, "spread_ns"), false);
                if let Some(x) = r["replay_ns"].as_f64() {
                    let n = format!("per-packet | {} | replay ns", text(r, "case"));
                    push(n, x, num(r, "replay_spread_ns"), false);
                }
            }
        }
        "throughput" | "trafgen" => {
            for r in &rows {
                let id = format!(
                    "{bench} | {} {} B {} thr",
                    text(r, "case"),
                    text(r, "frame_bytes"),
                    text(r, "threads")
                );
                push(
                    format!("{id} | Mpps"),
                    num(r, "mpps_median"),
                    num(r, "mpps_spread"),
                    true,
                );
                for base in ["redirect", "kernel"] {
                    let per_round = list(&r[format!("ratio_to_{base}_per_round")]);
                    let m = &r[format!("ratio_to_{base}_per_round_median")];
                    if let Some(m) = m.as_f64() {
                        push(format!("{id} | x {base}"), m, spread_of(&per_round), true);
                    }
                }
            }
        }
        "tcp" => {
            for r in &rows {
                let n = format!("tcp | {} | Gbit/s", text(r, "case"));
                push(n, num(r, "gbps_median"), num(r, "gbps_spread"), true);
            }
        }
        "scale" => {
            for r in &rows {
                let id = format!(
                    "scale | {} | {} subs",
                    text(r, "path"),
                    text(r, "subscribers")
                );
                push(
                    format!("{id} | ns"),
                    num(r, "ns_per_packet"),
                    num(r, "spread_ns"),
                    false,
                );
                if let Some(x) = r["ratio_to_smallest"].as_f64() {
                    push(format!("{id} | x smallest"), x, 0.0, false);
                }
                // Baselines from before the interquartile mean have none.
                if let Some(q) = r["iqm_ns"].as_f64() {
                    push(format!("{id} | iqm ns"), q, num(r, "iqm_spread_ns"), false);
                }
                if let Some(x) = r["iqm_ratio_to_smallest"].as_f64() {
                    push(format!("{id} | iqm x smallest"), x, 0.0, false);
                }
            }
            for m in result["memory"].as_array().into_iter().flatten() {
                for k in [
                    "access_bytes_per_sub",
                    "anchor_bytes_per_sub",
                    "anchor_v4_only_bytes_per_sub",
                ] {
                    let n = format!("scale | memory {} subs | {k}", text(m, "subscribers"));
                    push(n, num(m, k), 0.0, false);
                }
            }
        }
        "handover" => {
            for r in &rows {
                let id = format!(
                    "handover | {} {} {}",
                    text(r, "protocol"),
                    text(r, "trigger"),
                    text(r, "direction")
                );
                for k in ["gap_ms", "lost"] {
                    let s = &r[k];
                    push(
                        format!("{id} | {k}"),
                        num(s, "median"),
                        num(s, "max") - num(s, "min"),
                        false,
                    );
                }
            }
        }
        _ => {}
    }
    out
}

/// The native-redirect ceiling of a throughput result (64 B, one thread),
/// Mpps: how fast the host was.
pub fn ceiling_mpps(results: &[Value]) -> Option<f64> {
    results
        .iter()
        .filter(|r| r["benchmark"] == "throughput")
        .flat_map(|r| r["rows"].as_array().cloned().unwrap_or_default())
        .find(|r| r["case"] == "redirect" && r["frame_bytes"] == 64 && r["threads"] == 1)
        .and_then(|r| r["mpps_median"].as_f64())
}

/// bench-results/baseline-NAME.json.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("baseline-{name}.json"))
}

/// Saves `results` as baseline `name` (replacing the benchmarks it already
/// holds, keeping the others: a baseline can be built up run by run).
pub fn save(dir: &Path, name: &str, results: &[Value]) -> Result<PathBuf> {
    let p = path(dir, name);
    let mut all: Vec<Value> = load(dir, name).unwrap_or_default();
    for r in results {
        all.retain(|x| x["benchmark"] != r["benchmark"]);
        all.push(r.clone());
    }
    let doc = json!({"name": name, "results": all});
    std::fs::write(&p, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// The results of baseline `name`.
pub fn load(dir: &Path, name: &str) -> Result<Vec<Value>> {
    let p = path(dir, name);
    let t = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "no baseline {name} ({}): save one with --save {name}",
            p.display()
        )
    })?;
    let doc: Value =
        serde_json::from_str(&t).with_context(|| format!("parsing {}", p.display()))?;
    Ok(doc["results"].as_array().cloned().unwrap_or_default())
}

/// One line of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Compared {
    pub name: String,
    pub base: Figure,
    pub now: Figure,
    /// now / base.
    pub ratio: f64,
    /// The two runs' relative spreads together: a ratio within 1 ± noise
    /// says nothing.
    pub noise: f64,
    /// "better", "worse" or "" (within the noise).
    pub verdict: &'static str,
}

/// Every figure of `now` that `base` has too, as a ratio to it.
pub fn compare(base: &[Value], now: &[Value]) -> Vec<Compared> {
    let base_figs: Vec<Figure> = base.iter().flat_map(figures).collect();
    let mut out = Vec::new();
    for n in now.iter().flat_map(figures) {
        let Some(b) = base_figs.iter().find(|b| b.name == n.name) else {
            continue;
        };
        if b.value == 0.0 {
            continue;
        }
        let ratio = n.value / b.value;
        let rel = |f: &Figure| {
            if f.value != 0.0 {
                f.spread / f.value.abs()
            } else {
                0.0
            }
        };
        let noise = rel(b) + rel(&n);
        let verdict = if (ratio - 1.0).abs() <= noise {
            ""
        } else if (ratio > 1.0) == n.higher_is_better {
            "better"
        } else {
            "worse"
        };
        out.push(Compared {
            name: n.name.clone(),
            base: b.clone(),
            now: n,
            ratio,
            noise,
            verdict,
        });
    }
    out
}

/// Prints a comparison as a table.
pub fn print(name: &str, base: &[Value], now: &[Value], rows: &[Compared]) {
    println!("compared with baseline {name}: ratio = now / baseline; noise = both runs' relative spreads");
    if let (Some(b), Some(n)) = (ceiling_mpps(base), ceiling_mpps(now)) {
        println!("host: native-redirect ceiling {b:.2} Mpps in the baseline, {n:.2} Mpps now (64 B, 1 thread)");
    }
    println!(
        "{:<64} {:>16} {:>16} {:>7} {:>7}  ",
        "figure", "baseline (spr)", "now (spr)", "ratio", "noise"
    );
    for c in rows {
        println!(
            "{:<64} {:>16} {:>16} {:>7.3} {:>6.1}%  {}",
            c.name,
            format!("{:.3} ({:.3})", c.base.value, c.base.spread),
            format!("{:.3} ({:.3})", c.now.value, c.now.spread),
            c.ratio,
            c.noise * 100.0,
            c.verdict
        );
    }
    let worse = rows.iter().filter(|c| c.verdict == "worse").count();
    let better = rows.iter().filter(|c| c.verdict == "better").count();
    println!(
        "{} figures compared: {worse} worse and {better} better beyond the noise",
        rows.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_packet(ns: f64, spread: f64) -> Value {
        json!({"benchmark": "per-packet", "rows": [
            {"case": "access encap, IPv4 outer", "ns_per_packet": ns, "spread_ns": spread}
        ]})
    }

    #[test]
    fn flattens_each_benchmark() {
        let t = json!({"benchmark": "throughput", "rows": [{
            "case": "redirect", "frame_bytes": 64, "threads": 1, "mpps_median": 7.5,
            "mpps_spread": 0.2, "ratio_to_redirect_per_round_median": 1.0,
            "ratio_to_redirect_per_round": [1.0, 1.0], "ratio_to_kernel_per_round_median": 4.2,
            "ratio_to_kernel_per_round": [4.0, 4.4]}]});
        let f = figures(&t);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "throughput | redirect 64 B 1 thr | Mpps");
        assert!(f[0].higher_is_better);
        assert_eq!(f[2].name, "throughput | redirect 64 B 1 thr | x kernel");
        assert!((f[2].spread - 0.4).abs() < 1e-9);
        assert_eq!(ceiling_mpps(&[t]), Some(7.5));
        let h = json!({"benchmark": "handover", "rows": [{"protocol": "pmipv6",
            "trigger": "data", "direction": "downlink",
            "gap_ms": {"median": 2.0, "min": 1.0, "max": 4.0}, "lost": {"median": 7, "min": 1, "max": 9}}]});
        let f = figures(&h);
        assert_eq!(f[0].name, "handover | pmipv6 data downlink | gap_ms");
        assert_eq!((f[0].value, f[0].spread), (2.0, 3.0));
        assert_eq!(figures(&json!({"benchmark": "unknown"})), vec![]);
    }

    #[test]
    fn ratio_outside_the_noise_is_called_out() {
        let base = [per_packet(100.0, 2.0)];
        let same = compare(&base, &[per_packet(102.0, 2.0)]);
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].verdict, "", "2 % within 4 % noise");
        let slower = compare(&base, &[per_packet(120.0, 2.0)]);
        assert_eq!(slower[0].verdict, "worse");
        assert!((slower[0].ratio - 1.2).abs() < 1e-9);
        let faster = compare(&base, &[per_packet(80.0, 2.0)]);
        assert_eq!(faster[0].verdict, "better");
        // A figure the baseline does not have is not compared.
        let other = json!({"benchmark": "tcp", "rows": [{"case": "x", "gbps_median": 1.0}]});
        assert!(compare(&base, &[other]).is_empty());
    }

    #[test]
    fn save_merges_and_load_reads_back() {
        let dir = crate::TempDir::new("baseline");
        assert!(load(dir.path(), "x").is_err(), "no baseline yet");
        save(dir.path(), "x", &[per_packet(100.0, 1.0)]).unwrap();
        let tcp = json!({"benchmark": "tcp", "rows": []});
        save(dir.path(), "x", std::slice::from_ref(&tcp)).unwrap();
        save(dir.path(), "x", &[per_packet(90.0, 1.0)]).unwrap();
        let back = load(dir.path(), "x").unwrap();
        assert_eq!(back.len(), 2, "one result per benchmark");
        assert!(back.contains(&tcp));
        assert!(
            back.contains(&per_packet(90.0, 1.0)),
            "the later run replaces"
        );
    }
}
