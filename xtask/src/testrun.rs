//! `cargo xtask test`'s runner: every test binary of the workspace is built
//! once, then the binaries run several at a time, each with its output in
//! target/test-logs/<binary>.log.
//!
//! Why not plain `cargo test`: it runs the binaries one after another, and
//! most of ours spend their time waiting on network namespaces, daemons,
//! DHCP clients and timers, not on the two cores. Tests inside one binary
//! already run in parallel (libtest's default), and every namespace test
//! names its namespaces and links with a tag and its process id, so
//! binaries do not share anything but the kernel.
//!
//! The longest binaries start first (a static list, from the CI logs); the
//! rest follow in name order. `PMIP_TEST_JOBS` sets how many run at once
//! (default 3).
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, run};

/// Binaries known to take the longest, longest first (from the summary of a
/// run of `cargo xtask test` on this machine kind: the conformance suites,
/// recovery and the gateway suites take 3–5 min each, three at a time).
/// Anything not listed starts after these.
const LONGEST_FIRST: &[&str] = &[
    "conformance_pmipv6",
    "recovery",
    "conformance_pmipv6_mag",
    "gateway_pmipv6",
    "gateway_pmipv4",
    "cluster",
    "ipv6_gateway",
    "conformance_pmipv4",
    "bench_smoke",
    "lab_command",
    "fastpath_netns",
    "hostile_esp",
    "aaa_gateway",
    "aaa_restart",
    "pmip_user",
    "hostile_flood",
    "fastpath_testrun",
    "restart",
    "ipv6_restart",
    "pmipv6_tshark",
    "ops_metrics",
    "hostile_control",
    "ipv6_access",
    "aaa_radius",
    "fastpath_log",
];

/// A test binary cargo built.
struct Binary {
    /// `package/target`, e.g. `pmip-tests/cluster`.
    name: String,
    /// Target name alone, for ordering.
    target: String,
    exe: PathBuf,
    /// The package's directory: cargo test runs a binary there.
    dir: PathBuf,
}

/// Builds every test binary of the workspace (and pmipd/pmipctl, which the
/// namespace tests start) and returns them.
fn build(env: &[(&str, OsString)]) -> Result<Vec<Binary>> {
    run(Command::new("cargo")
        .args(["build", "--workspace", "--bins"])
        .current_dir(root()))?;
    let mut child = Command::new("cargo")
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cargo test --no-run")?;
    let mut out = Vec::new();
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let target = v["target"]["name"].as_str().unwrap_or("?").to_string();
        let manifest = PathBuf::from(v["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(root);
        let pkg = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Binary {
            name: format!("{pkg}/{target}"),
            target,
            exe: exe.into(),
            dir,
        });
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("cargo test --no-run failed: {st}");
    }
    Ok(out)
}

fn rank(b: &Binary) -> usize {
    LONGEST_FIRST
        .iter()
        .position(|n| *n == b.target)
        .unwrap_or(LONGEST_FIRST.len())
}

/// A running test binary.
type Running = crate::pool::Running<Binary>;

/// What libtest printed at the end: passed, failed, ignored, summed over the
/// `test result:` lines of a log.
type Counts = (u32, u32, u32);

fn counts(log: &str) -> Counts {
    let mut c = (0, 0, 0);
    for l in log.lines().filter(|l| l.starts_with("test result:")) {
        for part in l.split(';') {
            let mut w = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (w.next(), w.next()) else {
                continue;
            };
            let n: u32 = n.parse().unwrap_or(0);
            match what {
                "passed" => c.0 += n,
                "failed" => c.1 += n,
                "ignored" => c.2 += n,
                _ => {}
            }
        }
    }
    c
}

fn start(bin: Binary, logs: &Path, env: &[(&str, OsString)]) -> Result<Running> {
    let log = logs.join(format!("{}.log", bin.name.replace('/', "-")));
    let f = std::fs::File::create(&log)?;
    let child = Command::new(&bin.exe)
        .current_dir(&bin.dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CARGO_MANIFEST_DIR", &bin.dir)
        // Built above; the namespace tests need not run cargo themselves.
        .env("PMIP_LAB_NO_BUILD", "1")
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("starting {}", bin.exe.display()))?;
    Ok(Running::new(bin, child, log))
}

/// The part of a failed binary's log worth printing: from libtest's
/// `failures:` section on, or the last 200 lines.
fn failure_excerpt(log: &str) -> String {
    if let Some(i) = log.find("\nfailures:\n") {
        return log[i..].to_string();
    }
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(200)..].join("\n")
}

/// Builds and runs every test binary, `jobs` at a time; doc tests first.
pub fn run_all(env: &[(&str, OsString)]) -> Result<()> {
    let jobs: usize = std::env::var("PMIP_TEST_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut bins = build(env)?;
    bins.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.name.cmp(&b.name)));
    run(Command::new("cargo")
        .args(["test", "--workspace", "--doc", "-q"])
        .current_dir(root()))
    .context("doc tests")?;
    let logs = root().join("target/test-logs");
    std::fs::create_dir_all(&logs)?;
    println!("xtask: {} test binaries, {jobs} at a time", bins.len());
    let t0 = Instant::now();
    // (binary, seconds, passed/failed/ignored)
    let mut done: Vec<(String, f64, Counts)> = Vec::new();
    let mut failed = Vec::new();
    let tick = Duration::from_millis(100);
    crate::pool::run_pool(
        bins,
        jobs,
        tick,
        |b| start(b, &logs, env),
        |r: Running, st| {
            let secs = r.started.elapsed().as_secs_f64();
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            let c = counts(&text);
            println!(
                "test {:<40} {:>5.0} s {:>4} passed {:>3} failed {:>3} ignored  {}",
                r.job.name,
                secs,
                c.0,
                c.1,
                c.2,
                if st.success() { "ok" } else { "FAILED" }
            );
            if !st.success() {
                println!(
                    "---- {} ({}) ----\n{}\n---- end of {} ----",
                    r.job.name,
                    r.log.display(),
                    failure_excerpt(&text),
                    r.job.name
                );
                failed.push(r.job.name.clone());
            }
            done.push((r.job.name, secs, c));
            Ok(())
        },
    )?;
    done.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = done
        .iter()
        .fold((0, 0, 0), |t, d| (t.0 + d.2 .0, t.1 + d.2 .1, t.2 + d.2 .2));
    println!(
        "xtask: {} binaries in {:.0} s wall ({:.0} s summed): {} passed, {} failed, {} ignored; longest: {}",
        done.len(),
        t0.elapsed().as_secs_f64(),
        done.iter().map(|d| d.1).sum::<f64>(),
        total.0,
        total.1,
        total.2,
        done.iter()
            .take(6)
            .map(|d| format!("{} {:.0} s", d.0, d.1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !failed.is_empty() {
        bail!("test binaries failed: {}", failed.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_every_result_line() {
        let log = "running 3 tests\n\
            test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.2s\n\
            test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(counts(log), (5, 1, 1));
        assert_eq!(counts("no summary"), (0, 0, 0));
    }

    #[test]
    fn excerpt_starts_at_failures() {
        let log = "a\nb\nfailures:\n\n---- x stdout ----\nboom\n";
        assert!(failure_excerpt(log).starts_with("\nfailures:"));
        assert!(failure_excerpt("only\nlines").contains("only"));
    }
}
