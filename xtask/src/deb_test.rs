//! `cargo xtask package --test`: the .deb in a clean Debian root, under
//! systemd. The root (debootstrap, bookworm, minbase + systemd) is booted
//! with systemd-nspawn in a network namespace of its own (veths core0/cn0,
//! nothing of the host's) and a bpffs of its own; pmipd runs from the unit
//! as installed, as the pmip user with capabilities only. Checked:
//!
//! - the unit becomes active only through READY=1; `pmipctl show bindings`;
//! - the metrics endpoint answers, the journal has pmipd's structured fields;
//! - `systemctl reload` with an unchanged file succeeds, with a changed
//!   timer fails with the reason and leaves the daemon running;
//! - a hung daemon (SIGSTOP) is killed by the watchdog and restarted.
//!
//! Everything is removed at the end, also on failure.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::root;

const MIRROR: &str = "http://deb.debian.org/debian";

/// The anchor configuration the test installs as /etc/pmip/pmipd.toml.
const CONFIG: &str = r#"role = "anchor"
protocol = "pmipv6"
node_id = "lma-deb"

[control]
socket = "/run/pmip/pmipd.sock"

[fastpath]
attach_mode = "generic"
pin_dir = "/sys/fs/bpf/pmip"
max_subscribers = 1024

[interfaces]
core = "core0"
correspondent = ["cn0"]

[addresses]
ipv4 = "10.255.0.10"

[[peers]]
name = "mag1"
address = "10.255.0.1"

# RFC 5213 §4: the signaling in ESP, as an installed gateway must have it.
[peers.esp]
spi_in = 0x1002
spi_out = 0x1001
algorithm = "rfc4106(gcm(aes))"
key_in = "0x7e6d5c4b3a291807f6e5d4c3b2a19081cafe1002"
key_out = "0x5b2c8a1f0e9d7c6b4a39281706f5e4d3cafe1001"

[signaling]
esp_state_file = "/var/lib/pmip/esp-seq"

[[pools]]
name = "home"
prefix = "10.64.0.0/24"
gateway = "10.64.0.1"

[metrics]
listen = "127.0.0.1:9417"
"#;

/// A shorter watchdog and restart for the test (a drop-in, as an operator would).
const DROP_IN: &str = "[Service]\nWatchdogSec=4s\nRestartSec=1s\n";

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The debootstrapped root, made once and kept under target/package/.
fn base_root() -> Result<PathBuf> {
    let base = root().join("target/package/rootfs-base");
    if base.join("usr/lib/systemd/systemd").exists() {
        return Ok(base);
    }
    let _ = std::fs::remove_dir_all(&base);
    eprintln!("xtask: debootstrap of a clean bookworm root (a few minutes, once)");
    sh(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus,iproute2",
            "bookworm",
        ])
        .arg(&base)
        .arg(MIRROR))?;
    Ok(base)
}

/// What the test made, removed on drop.
struct Sandbox {
    rootfs: PathBuf,
    bpffs: PathBuf,
    netns: String,
    nspawn: Option<Child>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut c) = self.nspawn.take() {
            // SIGTERM: nspawn shuts the container down cleanly.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = std::fs::remove_dir(&self.bpffs);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.rootfs);
    }
}

impl Sandbox {
    /// The container's PID 1 (the child of nspawn), for nsenter.
    fn leader(&self) -> Result<u32> {
        let pid = self.nspawn.as_ref().context("not booted")?.id();
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
        kids.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .context("the container has no init yet")
    }

    /// Runs a command inside the booted container.
    fn exec(&self, args: &[&str]) -> Result<std::process::Output> {
        let leader = self.leader()?.to_string();
        Command::new("nsenter")
            .args([
                "--target", &leader, "--mount", "--uts", "--ipc", "--net", "--pid",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("nsenter {args:?}"))
    }

    fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let o = self.exec(args)?;
        ensure!(
            o.status.success(),
            "{args:?} in the container: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn prop(&self, p: &str) -> Result<String> {
        let out = self.exec_ok(&["systemctl", "show", "-p", p, "--value", "pmipd"])?;
        Ok(out.trim().to_string())
    }

    fn journal(&self) -> String {
        self.exec(&["journalctl", "-u", "pmipd", "--no-pager", "-o", "short"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until `f` holds (polling every 200 ms) or fails with `what`.
    fn wait(&self, within: Duration, what: &str, f: impl Fn(&Self) -> bool) -> Result<()> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if f(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{what} not reached within {within:?}; journal:\n{}",
            self.journal()
        )
    }
}

/// A fresh copy of the base root with the package installed and configured.
fn prepare(deb: &Path, rootfs: &Path) -> Result<()> {
    let base = base_root()?;
    let _ = std::fs::remove_dir_all(rootfs);
    sh(Command::new("cp").arg("-a").arg(&base).arg(rootfs))?;
    std::fs::copy(deb, rootfs.join("tmp/pmip.deb"))?;
    let chroot = |args: &[&str]| sh(Command::new("chroot").arg(rootfs).args(args));
    chroot(&["dpkg", "-i", "/tmp/pmip.deb"]).context("dpkg -i in the clean root")?;
    let v = chroot(&["pmipd", "--version"])?;
    ensure!(
        v.contains("eBPF object embedded, build id "),
        "pmipd --version: {v}"
    );
    let v = chroot(&["pmipctl", "--version"])?;
    ensure!(v.contains("build id "), "pmipctl --version: {v}");
    for f in [
        "usr/share/man/man8/pmipd.8.gz",
        "usr/share/man/man8/pmipctl-show.8.gz",
        "usr/share/bash-completion/completions/pmipctl",
        "etc/pmip/examples/anchor-pmipv6.toml",
        "lib/systemd/system/pmipd.service",
    ] {
        ensure!(rootfs.join(f).exists(), "{f} not installed");
    }
    std::fs::write(rootfs.join("etc/pmip/pmipd.toml"), CONFIG)?;
    chroot(&["chgrp", "pmip", "/etc/pmip/pmipd.toml"])?;
    chroot(&["chmod", "0640", "/etc/pmip/pmipd.toml"])?;
    let d = rootfs.join("etc/systemd/system/pmipd.service.d");
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("test.conf"), DROP_IN)?;
    chroot(&["systemctl", "enable", "pmipd.service"])?;
    // Nothing else the test does not need.
    for u in [
        "console-getty.service",
        "getty@tty1.service",
        "systemd-networkd.service",
    ] {
        let _ = chroot(&["systemctl", "mask", u]);
    }
    Ok(())
}

fn netns(name: &str) -> Result<()> {
    sh(Command::new("ip").args(["netns", "add", name]))?;
    for c in [
        "ip link set lo up",
        "ip link add core0 type veth peer name core1",
        "ip link add cn0 type veth peer name cn1",
        "ip link set core0 up",
        "ip link set core1 up",
        "ip link set cn0 up",
        "ip link set cn1 up",
        "ip addr add 10.255.0.10/24 dev core0",
        "ip addr add 203.0.113.1/24 dev cn0",
    ] {
        sh(Command::new("ip")
            .args(["netns", "exec", name])
            .args(c.split(' ')))?;
    }
    Ok(())
}

/// GET /metrics on the container's loopback (its network namespace).
fn scrape(netns: &str) -> Result<String> {
    let out = sh(Command::new("ip").args([
        "netns",
        "exec",
        netns,
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9417; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ]))?;
    Ok(out)
}

pub fn run(deb: &Path) -> Result<()> {
    let tag = std::process::id();
    let mut sb = Sandbox {
        rootfs: root().join(format!("target/package/rootfs-test-{tag}")),
        bpffs: root().join(format!("target/package/bpffs-{tag}")),
        netns: format!("pmipdeb{}", tag % 100_000),
        nspawn: None,
    };
    prepare(deb, &sb.rootfs)?;
    netns(&sb.netns)?;
    std::fs::create_dir_all(&sb.bpffs)?;
    sh(Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&sb.bpffs))?;
    let log = std::fs::File::create(root().join("target/package/nspawn.log"))?;
    sb.nspawn = Some(
        Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&sb.rootfs)
            .args(["-b", "-q", "--register=no", "--keep-unit"])
            .arg(format!("--network-namespace-path=/run/netns/{}", sb.netns))
            .args(["--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN"])
            .args(["--system-call-filter=bpf perf_event_open"])
            .arg(format!("--bind={}:/sys/fs/bpf", sb.bpffs.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("systemd-nspawn")?,
    );
    checks(&sb)
}

fn checks(sb: &Sandbox) -> Result<()> {
    sb.wait(Duration::from_secs(90), "pmipd active", |s| {
        s.prop("ActiveState").is_ok_and(|a| a == "active")
    })?;
    ensure!(
        sb.prop("StatusText")? == "serving",
        "status {}",
        sb.prop("StatusText")?
    );
    let pid = sb.prop("MainPID")?;
    let status = sb.exec_ok(&["cat", &format!("/proc/{pid}/status")])?;
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    ensure!(
        uid.split_whitespace().nth(1).is_none_or(|u| u != "0"),
        "pmipd runs as root: {uid}"
    );
    eprintln!("deb test: pmipd active under systemd (pid {pid}, {uid})");
    let b = sb.exec_ok(&["pmipctl", "show", "bindings"])?;
    ensure!(b.starts_with("Total number of bindings: 0"), "{b}");
    eprintln!(
        "deb test: pmipctl show bindings: {}",
        b.lines().next().unwrap_or("")
    );
    let m = scrape(&sb.netns)?;
    ensure!(m.contains("pmip_build_info{"), "{m}");
    let j = sb.exec_ok(&["journalctl", "-u", "pmipd", "-o", "json", "--no-pager"])?;
    ensure!(
        j.contains("\"EBPF_BUILD_ID\""),
        "no structured journal fields:\n{j}"
    );
    reload(sb)?;
    watchdog(sb)
}

fn reload(sb: &Sandbox) -> Result<()> {
    sb.exec_ok(&["systemctl", "reload", "pmipd"])
        .context("reload with an unchanged file")?;
    let cfg = format!("{CONFIG}\n[timers]\nlifetime_s = 600\n");
    sb.exec_ok(&[
        "sh",
        "-c",
        &format!("cat > /etc/pmip/pmipd.toml <<'EOF'\n{cfg}EOF"),
    ])?;
    let o = sb.exec(&["systemctl", "reload", "pmipd"])?;
    ensure!(!o.status.success(), "a changed timer was reloaded");
    sb.wait(Duration::from_secs(10), "the refusal in the journal", |s| {
        s.journal()
            .contains("timers cannot change while pmipd runs")
    })?;
    ensure!(
        sb.prop("ActiveState")? == "active",
        "not running after a refused reload"
    );
    sb.exec_ok(&[
        "sh",
        "-c",
        &format!("cat > /etc/pmip/pmipd.toml <<'EOF'\n{CONFIG}EOF"),
    ])?;
    eprintln!(
        "deb test: reload applied (unchanged file) and refused (timers) with the daemon running"
    );
    Ok(())
}

fn watchdog(sb: &Sandbox) -> Result<()> {
    let pid = sb.prop("MainPID")?;
    let restarts: u32 = sb.prop("NRestarts")?.parse().unwrap_or(0);
    // The shell's builtin: a minimal root has no /bin/kill (procps).
    sb.exec_ok(&["sh", "-c", &format!("kill -STOP {pid}")])?;
    let t0 = Instant::now();
    sb.wait(Duration::from_secs(60), "a restart after the hang", |s| {
        s.prop("MainPID").is_ok_and(|p| p != pid && p != "0")
            && s.prop("ActiveState").is_ok_and(|a| a == "active")
    })?;
    let n: u32 = sb.prop("NRestarts")?.parse().unwrap_or(0);
    ensure!(n > restarts, "NRestarts {restarts} → {n}");
    let j = sb.journal();
    ensure!(
        j.contains("Watchdog timeout"),
        "no watchdog timeout in the journal:\n{j}"
    );
    eprintln!(
        "deb test: hung pmipd (SIGSTOP) killed by the watchdog and restarted in {:.1} s (NRestarts {n})",
        t0.elapsed().as_secs_f64()
    );
    let b = sb.exec_ok(&["pmipctl", "show", "bindings"])?;
    ensure!(b.starts_with("Total number of bindings: 0"), "{b}");
    Ok(())
}
