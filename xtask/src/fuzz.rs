//! `cargo xtask fuzz`: every cargo-fuzz target for a short fixed time,
//! seeded from the corpus kept in the repository (fuzz/corpus/<target>/),
//! a few at a time. `cargo xtask test` runs it with the defaults (12 s per
//! target, two at a time: about 2.5 minutes for 21 targets on two cores,
//! after the build).
//!
//! New inputs the runs find go to fuzz/target/corpus-scratch/ (not the
//! repository); a crash leaves its input in fuzz/artifacts/<target>/ and
//! fails the task with the command that reproduces it. Longer runs
//! (`--secs 600`) and `--update-corpus` (merge what they found, minimised,
//! back into fuzz/corpus/) are how the corpus grows.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{output_ok, root, run};

#[derive(clap::Args, Clone, Debug)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 12)]
    pub secs: u32,
    /// Targets run at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Merge what the runs found into fuzz/corpus/ (minimised with -merge=1).
    #[arg(long)]
    pub update_corpus: bool,
    /// Only these targets (default: every file in fuzz/fuzz_targets/).
    pub targets: Vec<String>,
}

impl Default for FuzzArgs {
    fn default() -> Self {
        FuzzArgs {
            secs: 12,
            jobs: 2,
            update_corpus: false,
            targets: Vec::new(),
        }
    }
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// Every target: the file stems of fuzz/fuzz_targets/*.rs, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "rs" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    Ok(v)
}

/// cargo-fuzz on the nightly toolchain, installed when missing.
fn ensure_cargo_fuzz() -> Result<()> {
    crate::ensure_toolchain()?;
    if output_ok(Command::new("cargo").args(["fuzz", "--version"])).is_none() {
        eprintln!("xtask: installing cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// How every target is built, and run (`cargo fuzz run` rebuilds unless it
/// gets the build's flags): optimised, with debug assertions and overflow
/// checks (an arithmetic slip in a parser is a crash here, not a wrapped
/// length), without a sanitizer and with 16 codegen units. The fuzzed code
/// is safe Rust (the `unsafe` of pmip-user is in its socket shells, which no
/// target reaches), so AddressSanitizer found nothing the panics do not, while
/// it cost 5.5× the executions a second and, with one codegen unit, half the
/// build: from nothing, 540 s against 293 s here (BENCHMARKS.md "The harness").
const BUILD_FLAGS: [&str; 6] = ["-O", "-a", "--sanitizer", "none", "--codegen-units", "16"];

fn cargo_fuzz() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(root())
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR");
    c
}

/// A running fuzz target (the job: its name).
type Running = crate::pool::Running<String>;

/// Starts `target` for `secs` seconds on its scratch and seed corpora.
fn start(target: &str, secs: u32, logs: &Path) -> Result<Running> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let scratch = fuzz_dir().join("target/corpus-scratch").join(target);
    std::fs::create_dir_all(&seeds)?;
    std::fs::create_dir_all(&scratch)?;
    let log = logs.join(format!("{target}.log"));
    let child = cargo_fuzz()
        .arg("run")
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(&scratch)
        .arg(&seeds)
        .args([
            "--",
            &format!("-max_total_time={secs}"),
            "-print_final_stats=1",
            "-rss_limit_mb=2048",
            "-timeout=10",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting fuzz target {target}"))?;
    Ok(Running::new(target.into(), child, log))
}

/// libFuzzer's final `stat::number_of_executed_units` from a log.
fn executions(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Folds what a run found into the repository's corpus, minimised.
fn update_corpus(target: &str) -> Result<()> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let scratch = fuzz_dir().join("target/corpus-scratch").join(target);
    run(cargo_fuzz()
        .arg("run")
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(&seeds)
        .arg(&scratch)
        .args(["--", "-merge=1"]))
}

pub fn fuzz(args: &FuzzArgs) -> Result<()> {
    ensure_cargo_fuzz()?;
    let all = targets()?;
    let chosen: Vec<String> = if args.targets.is_empty() {
        all.clone()
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t} (have: {})", all.join(" "));
            }
        }
        args.targets.clone()
    };
    // One build for all, before the runs share the cores.
    run(cargo_fuzz().arg("build").args(BUILD_FLAGS)).context("cargo fuzz build")?;
    run_targets(args, chosen)
}

/// Starts the one build of every target at the lowest priority and returns
/// at once: `cargo xtask test` builds while its namespace tests wait on
/// timers and daemons, and the tests, at normal priority, keep the cores
/// whenever they want them (the build's log is fuzz/target/fuzz-build.log).
pub fn build_in_background() -> Result<(Child, PathBuf)> {
    ensure_cargo_fuzz()?;
    let dir = fuzz_dir().join("target");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("fuzz-build.log");
    let inner = cargo_fuzz();
    let mut c = Command::new("nice");
    c.args(["-n", "19"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let f = std::fs::File::create(&log)?;
    let child = c
        .arg("build")
        .args(BUILD_FLAGS)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .context("starting cargo fuzz build")?;
    Ok((child, log))
}

/// Every chosen target for `args.secs`, `args.jobs` at a time, once built.
pub fn run_targets(args: &FuzzArgs, chosen: Vec<String>) -> Result<()> {
    let logs = fuzz_dir().join("target/fuzz-logs");
    std::fs::create_dir_all(&logs)?;
    let mut failed = Vec::new();
    let t0 = Instant::now();
    let tick = std::time::Duration::from_millis(200);
    crate::pool::run_pool(
        &chosen,
        args.jobs,
        tick,
        |t| start(t, args.secs, &logs),
        |r: Running, st| {
            let corpus = files_in(&fuzz_dir().join("corpus").join(&r.job))
                + files_in(&fuzz_dir().join("target/corpus-scratch").join(&r.job));
            println!(
                "fuzz {:<30} {:>4.0} s {:>11} runs {:>6} inputs  {}",
                r.job,
                r.started.elapsed().as_secs_f64(),
                executions(&r.log),
                corpus,
                if st.success() { "ok" } else { "FAILED" }
            );
            if !st.success() {
                failed.push((r.job, r.log));
            } else if args.update_corpus {
                update_corpus(&r.job)?;
            }
            Ok(())
        },
    )?;
    println!(
        "fuzz: {} targets in {:.0} s",
        chosen.len(),
        t0.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for (t, log) in &failed {
            eprintln!(
                "fuzz target {t} failed: see {} and fuzz/artifacts/{t}/ \
                 (reproduce: cargo +nightly fuzz run {t} fuzz/artifacts/{t}/<file>)",
                log.display()
            );
        }
        bail!("{} fuzz target(s) failed", failed.len());
    }
    Ok(())
}
