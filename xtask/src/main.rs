//! Project tasks: `cargo xtask build-ebpf | test | fuzz | lab | bench | profile | package`.
//!
//! Every task first installs what a fresh machine lacks (nightly rust-src,
//! bpf-linker 0.10.x, the Debian packages the tests and the lab use), so the
//! README's two commands work on a new machine as written.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod deb_test;
mod fuzz;
mod lab;
mod package;
mod pool;
mod testrun;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the eBPF objects (release, nightly, -Z build-std=core) into target/bpf/:
    /// pmip-ebpf.o (the fast path pmipd loads) and pmip-ebpf-test.o (benchmark and test programs).
    BuildEbpf,
    /// Install what is missing, build everything, run the whole test suite
    /// (then every fuzz target briefly, as `fuzz` does).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Install what is missing and run the lab: subscriber, two access gateways,
    /// anchor, correspondent, traffic and a handover.
    Lab(lab::LabArgs),
    /// Run benchmarks (release build, own namespaces): per-packet, throughput, trafgen, tcp,
    /// scale, handover (all by default), pages (by name only); results in bench-results/,
    /// plots in docs/bench/.
    Bench {
        names: Vec<String>,
        /// Keep this run's figures as baseline NAME (bench-results/baseline-NAME.json).
        #[arg(long, value_name = "NAME")]
        save: Option<String>,
        /// Print each figure's ratio to baseline NAME, with both runs' spreads.
        #[arg(long, value_name = "NAME")]
        compare: Option<String>,
    },
    /// Where one per-packet case spends its time (xtask/profile_jit.py): the
    /// case alone through bench_replay under `perf record`, its JITed program
    /// annotated with samples and source lines, the path's x86 instructions.
    Profile {
        /// A per-packet case, by a part of its name ("access encap, IPv4 outer").
        case: String,
        /// The program to annotate (tg_fwd, xdp_pass... for the baselines);
        /// by default the one the case runs: `pmip_xdp`, or for a `[role]`
        /// case the role program of the interface its packet arrives on.
        #[arg(long)]
        program: Option<String>,
        /// The most seconds sampled (sampling stops when the bench ends).
        #[arg(long, default_value_t = 120)]
        secs: u32,
    },
    /// Every fuzz target for a short fixed time, seeded from fuzz/corpus/.
    Fuzz(fuzz::FuzzArgs),
    /// Build the .deb (target/package/): pmipd with the eBPF object built in, pmipctl,
    /// the systemd unit, example configurations, man pages and shell completions.
    Package(package::PackageArgs),
    /// Install what is missing and check the toolchain only.
    Setup,
    /// cargo fmt --check over the three workspaces and clippy -D warnings (also run by `test`).
    Lint,
}

/// Debian packages the tests and the lab use.
const DEB_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "ethtool",
    "tshark",
    "tcpdump",
    "iperf3",
    "busybox",
    "udhcpc",
    "isc-dhcp-client",
    // An independent ESP implementation for pmip-user's esp interop tests.
    "python3-cryptography",
    // A real RADIUS server and radclient for the AAA tests (tests/tests/aaa_radius.rs).
    "freeradius",
    "freeradius-utils",
    // promtool checks the metrics endpoint's output (tests/tests/ops_metrics.rs).
    "prometheus",
    // `cargo xtask package --test`: a clean Debian root booted with systemd.
    "debootstrap",
    "systemd-container",
    // `cargo xtask bench` draws its plots with matplotlib (xtask/plot_bench.py).
    "python3-matplotlib",
    // `cargo xtask profile`: perf samples the JITed programs, bpftool dumps them.
    "linux-perf",
    "bpftool",
    // The anchor cluster (issue 17): real etcd members in the cluster tests, etcdctl to
    // inspect them; protoc and the protobuf well-known types to build the etcd-client crate.
    "etcd-server",
    "etcd-client",
    "protobuf-compiler",
    "libprotobuf-dev",
];
const BPF_LINKER_VERSION: &str = "0.10.4";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn output_ok(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_debs() -> Result<()> {
    let missing: Vec<&str> = DEB_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output_ok(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn ensure_toolchain() -> Result<()> {
    let installed = output_ok(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]));
    match installed {
        Some(list) if list.contains("rust-src") => {}
        Some(_) => {
            eprintln!("xtask: adding rust-src to the nightly toolchain");
            run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))?;
        }
        None => {
            eprintln!("xtask: installing the nightly toolchain with rust-src");
            run(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
        }
    }
    let linker_ok = output_ok(Command::new("bpf-linker").arg("--version"))
        .map(|v| v.contains(" 0.10."))
        .unwrap_or(false);
    if !linker_ok {
        // 0.10.2+ emits BTF this kernel accepts; 0.11+ needs a system LLVM Debian lacks.
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (about 90 s)");
        run(Command::new("cargo").args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ]))?;
    }
    Ok(())
}

pub fn setup() -> Result<()> {
    ensure_debs()?;
    ensure_toolchain()
}

/// The object of the benchmark and test programs, beside the fast path's `obj`.
pub fn test_object(obj: &Path) -> PathBuf {
    obj.with_file_name("pmip-ebpf-test.o")
}

/// Builds the eBPF objects and copies them to target/bpf/: pmip-ebpf.o (the
/// fast path; returned) and pmip-ebpf-test.o (see [`test_object`]).
/// `cargo run --release` of a binary of the tests crate (the lab, the
/// benchmarks), given the eBPF objects built at `obj`.
pub fn tests_bin(bin: &str, obj: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.args([
        "run",
        "--release",
        "-q",
        "-p",
        "pmip-tests",
        "--bin",
        bin,
        "--",
    ])
    .current_dir(root())
    .env("PMIP_EBPF_OBJECT", obj)
    .env("PMIP_EBPF_TEST_OBJECT", test_object(obj));
    c
}

pub fn build_ebpf() -> Result<PathBuf> {
    ensure_toolchain()?;
    let dir = root().join("pmip-ebpf");
    run(Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .current_dir(&dir)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        // BPF ISA v3 (32-bit ALU and jumps, kernels since 5.1): without it
        // every 32-bit value is zero-extended by a shift pair and compared
        // in 64 bits — 423 `<<= 32` in the fast path's object against 139,
        // ~1 ns a hop (BENCHMARKS.md, "BPF ISA v3").
        .env(
            "RUSTFLAGS",
            "-Cdebuginfo=2 -Clink-arg=--btf -Ctarget-cpu=v3",
        ))
    .context("building pmip-ebpf")?;
    let out_dir = root().join("target/bpf");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("pmip-ebpf.o");
    for (bin, to) in [
        ("pmip-ebpf", out.clone()),
        ("pmip-ebpf-test", test_object(&out)),
    ] {
        let built = dir.join("target/bpfel-unknown-none/release").join(bin);
        std::fs::copy(&built, &to).with_context(|| format!("copying {}", built.display()))?;
        eprintln!("xtask: eBPF object at {}", to.display());
    }
    Ok(out)
}

/// The code's own checks, before any test: one format for the whole tree
/// (the workspace, the eBPF crate and the fuzz crate are three workspaces)
/// and clippy with warnings as errors (limits in clippy.toml) on the workspace
/// and on the fuzz targets.
fn lint() -> Result<()> {
    let installed = output_ok(Command::new("rustup").args(["component", "list", "--installed"]))
        .unwrap_or_default();
    for c in ["rustfmt", "clippy"] {
        if !installed.contains(c) {
            run(Command::new("rustup").args(["component", "add", c]))?;
        }
    }
    run(Command::new("cargo")
        .args(["fmt", "--all", "--check"])
        .current_dir(root()))
    .context("cargo fmt --check (run `cargo fmt --all`)")?;
    for m in ["pmip-ebpf/Cargo.toml", "fuzz/Cargo.toml"] {
        run(Command::new("cargo")
            .args(["fmt", "--check", "--manifest-path", m])
            .current_dir(root()))
        .with_context(|| format!("cargo fmt --check --manifest-path {m}"))?;
    }
    run(Command::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root()))
    .context("cargo clippy -D warnings")?;
    // The fuzz crate is its own workspace, so the clippy above does not see
    // it; its targets use pmip-user's public API and broke unnoticed when that
    // changed. Checking them (no sanitizer build) is cheap and catches that.
    run(Command::new("cargo")
        .args([
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root())
        .env_remove("CARGO_TARGET_DIR"))
    .context("cargo clippy --manifest-path fuzz/Cargo.toml -D warnings")
}

fn test(args: &[String]) -> Result<()> {
    let t0 = std::time::Instant::now();
    setup()?;
    lint()?;
    let obj = build_ebpf()?;
    let env = [
        ("PMIP_EBPF_OBJECT", obj.clone().into_os_string()),
        ("PMIP_EBPF_TEST_OBJECT", test_object(&obj).into_os_string()),
    ];
    eprintln!(
        "xtask: set-up, lint and eBPF build took {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    if !args.is_empty() {
        // Arguments for cargo test (a filter, --test NAME, -- --nocapture):
        // cargo's own sequential run, as asked.
        return run(Command::new("cargo")
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(args)
            .current_dir(root())
            .envs(env.iter().map(|(k, v)| (k, v))));
    }
    let (mut fuzz_build, fuzz_log) = fuzz::build_in_background()?;
    let tests = testrun::run_all(&env);
    if tests.is_err() {
        // The run fails anyway: do not wait for a build nobody will use.
        let _ = fuzz_build.kill();
    }
    eprintln!(
        "xtask: tests done at {:.0} s; waiting for the fuzz build",
        t0.elapsed().as_secs_f64()
    );
    let built = fuzz_build.wait()?;
    tests?;
    if !built.success() {
        bail!("cargo fuzz build failed: see {}", fuzz_log.display());
    }
    let r = fuzz::run_targets(&fuzz::FuzzArgs::default(), fuzz::targets()?);
    eprintln!("xtask: test took {:.0} s", t0.elapsed().as_secs_f64());
    r
}

/// The program a per-packet case runs: a `[role]` case runs the role
/// program of the interface its packet arrives on (encap: the subscriber's
/// or the correspondent's side; decap: the core), every other `pmip_xdp`.
fn case_program(case: &str) -> &'static str {
    if !case.contains("[role]") {
        return "pmip_xdp";
    }
    match (case.contains("access"), case.contains("encap")) {
        (true, true) => "pmip_xdp_access",
        (true, false) => "pmip_xdp_access_core",
        (false, true) => "pmip_xdp_anchor_cn",
        (false, false) => "pmip_xdp_anchor_core",
    }
}

/// `cargo xtask profile`: builds pmip-bench and hands the run to
/// xtask/profile_jit.py, on the CPU the bench pins itself to (the last one).
fn profile(case: &str, program: &str, secs: u32, obj: &Path) -> Result<()> {
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "pmip-tests",
            "--bin",
            "pmip-bench",
        ])
        .current_dir(root()))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slug: String = case
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = root().join("bench-results").join(format!("profile-{slug}"));
    run(Command::new("/usr/bin/python3")
        .arg(root().join("xtask/profile_jit.py"))
        .arg(root().join("target/release/pmip-bench"))
        .arg(&out)
        .args([case, program, &secs.to_string(), &(cpus - 1).to_string()])
        .env("PMIP_EBPF_OBJECT", obj)
        .env("PMIP_EBPF_TEST_OBJECT", test_object(obj))
        .current_dir(root()))
}

/// Renders docs/bench/*.png from bench-results/*.json (xtask/plot_bench.py,
/// with Debian's matplotlib: the system python3, which has it).
fn plot() -> Result<()> {
    let script = root().join("xtask/plot_bench.py");
    match Command::new("/usr/bin/python3")
        .arg(&script)
        .arg("bench-results")
        .arg("docs/bench")
        .current_dir(root())
        .status()
    {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => bail!("{} failed: {st}", script.display()),
        Err(e) => {
            eprintln!("xtask: no plots (python3: {e})");
            Ok(())
        }
    }
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::BuildEbpf => build_ebpf().map(|_| ()),
        Cmd::Test { args } => test(&args),
        Cmd::Lab(a) => {
            setup()?;
            let obj = build_ebpf()?;
            lab::run_lab(&a, &obj)
        }
        Cmd::Bench {
            names,
            save,
            compare,
        } => {
            let mut names = names;
            for (flag, v) in [("--save", save), ("--compare", compare)] {
                if let Some(v) = v {
                    names.extend([flag.to_string(), v]);
                }
            }
            setup()?;
            let obj = build_ebpf()?;
            run(tests_bin("pmip-bench", &obj).args(&names))?;
            plot()
        }
        Cmd::Profile {
            case,
            program,
            secs,
        } => {
            setup()?;
            let obj = build_ebpf()?;
            let program = program.unwrap_or_else(|| case_program(&case).to_string());
            profile(&case, &program, secs, &obj)
        }
        Cmd::Fuzz(a) => fuzz::fuzz(&a),
        Cmd::Package(a) => {
            setup()?;
            let obj = build_ebpf()?;
            let deb = package::package(&obj)?;
            if a.test {
                deb_test::run(&deb)?;
                eprintln!(
                    "xtask: {} installs and runs under systemd in a clean root",
                    deb.display()
                );
            }
            Ok(())
        }
        Cmd::Setup => setup(),
        Cmd::Lint => lint(),
    }
}

#[cfg(test)]
mod tests {
    use super::case_program;

    #[test]
    fn a_role_case_is_profiled_in_its_role_program() {
        for (case, program) in [
            ("access encap, IPv4 outer [role]", "pmip_xdp_access"),
            ("access decap, IPv6 outer [role]", "pmip_xdp_access_core"),
            (
                "anchor encap, IPv6 inner, IPv4 outer [role]",
                "pmip_xdp_anchor_cn",
            ),
            ("anchor decap, IPv4 outer [role]", "pmip_xdp_anchor_core"),
            ("anchor decap, IPv4 outer", "pmip_xdp"),
        ] {
            assert_eq!(case_program(case), program, "{case}");
        }
    }
}
