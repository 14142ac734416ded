//! The lab: subscriber — access switch — two access gateways — anchor —
//! correspondent, each in its own network namespace, with `pmipd run` in the
//! gateway roles and a stock DHCP client (busybox udhcpc) in the subscriber.
//! Used by the `pmip-lab` binary (`cargo xtask lab`) and by the gateway
//! integration tests. Everything is torn down on drop, also on panic.
//!
//! ```text
//!  sub [s0] ─ [ps]  sw: br1 ─ [pa1] ─ [acc0] mag1 [core0] ─ [pc1]  sw: brc ─ [pcn] ─ [core0] anchor [cn0] ─ [c0] cn
//!                       br2 ─ [pa2] ─ [acc0] mag2 [core0] ─ [pc2]
//! ```
//! A handover moves the subscriber's switch port `ps` from br1 to br2 (its
//! own link never goes down, as with a Wi-Fi roam between access points of
//! one network). The new gateway registers the subscriber on its first
//! packet ([`Trigger::Data`]: the fast path reports the unknown MAC) or when
//! the client reconfirms its lease ([`Trigger::Dhcp`]: udhcpc SIGUSR1, a
//! unicast DHCPREQUEST to the server identifier). Both gateways use the same
//! MAC and router address on the access link (RFC 5213 §6.9.3), so the
//! subscriber's ARP cache stays valid.
//!
//! Each lab takes unique namespace names (tag, pid, sequence), its own temp
//! directory (configs, control sockets, daemon logs; kept with
//! `PMIP_LAB_KEEP=1`), and only addresses on its own veths, so tests run in
//! parallel.
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pmip_user::config::Service;
use pmip_user::ctl::{BindingView, Response};

use crate::netns::{veth, Netns};

/// Access-link MAC both gateways share.
pub const GW_MAC: &str = "02:00:00:00:00:01";
/// The subscriber's MAC.
pub const SUB_MAC: &str = "02:00:00:00:aa:01";
/// Default router / DHCP server id on the access links (both gateways).
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
pub const POOL: &str = "10.64.0.0/24";
pub const CORE_MAG: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 255, 0, 1), Ipv4Addr::new(10, 255, 0, 2)];
pub const CORE_ANCHOR: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 10);
/// Core addresses for PMIPv6 over IPv6 transport.
pub const CORE6_MAG: [&str; 2] = ["fd00:255::1", "fd00:255::2"];
pub const CORE6_ANCHOR: &str = "fd00:255::10";
pub const CN_GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const CN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Link MTU of the access interfaces (option 26 gets this minus 28).
pub const ACCESS_MTU: u16 = 1500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Pmipv6,
    Pmipv4,
}
impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Pmipv6 => "pmipv6",
            Proto::Pmipv4 => "pmipv4",
        }
    }
    /// "MAG"/"PMA" and "LMA"/"HA".
    pub fn access_name(self) -> &'static str {
        match self {
            Proto::Pmipv6 => "MAG",
            Proto::Pmipv4 => "PMA",
        }
    }
    pub fn anchor_name(self) -> &'static str {
        match self {
            Proto::Pmipv6 => "LMA",
            Proto::Pmipv4 => "HA",
        }
    }
}

/// ARP-polling detach detection (`[detach]`).
#[derive(Clone, Copy, Debug)]
pub struct DetachOpts {
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
}

#[derive(Clone, Debug)]
pub struct LabOpts {
    pub proto: Proto,
    /// Namespace name prefix (at most 4 characters).
    pub tag: String,
    /// 1 or 2 access gateways.
    pub gateways: usize,
    /// "auto" | "native" | "generic" | "tc".
    pub attach_mode: String,
    pub lifetime_s: u32,
    /// PMIPv6 refresh period.
    pub refresh_s: u32,
    /// PMIPv4 renewal point.
    pub renew_percent: u8,
    /// None: ARP polling off.
    pub detach: Option<DetachOpts>,
    /// RUST_LOG for the daemons.
    pub log_filter: String,
    /// PMIPv6 signaling and GRE over IPv6 on the core (default IPv4).
    pub ipv6_transport: bool,
    /// Pin the gateways' maps and links (`fastpath.pin_dir`, on a bpffs of
    /// the lab's own), so the fast path outlives a daemon restart.
    pub pin: bool,
    /// Keep the gateways' bindings in an embedded store in the lab's
    /// directory (`[store]`); false: `backend = "memory"`, nothing survives.
    pub durable: bool,
    /// `timers.retx_initial_ms` (300 by default; at least 1000 for PMIPv4,
    /// RFC 5944 §3.6.3). The MAG's de-registration waits this long for its
    /// PBA (RFC 5213 §6.9.1.4).
    pub retx_initial_ms: u32,
    /// `timers.retx_max_ms` (the back-off ceiling; 2000 by default).
    pub retx_max_ms: u32,
    /// `timers.heartbeat_interval_s` (0: off).
    pub heartbeat_s: u32,
    /// `timers.max_retransmissions` (3 by default).
    pub max_retx: u8,
    /// `timers.reregistration_window_s` (HA; 0: off).
    pub reregistration_window_s: u32,
    /// 802.1Q access links: the subscriber on s0.VID, each gateway's access
    /// interface the sub-interface acc0.VID (`interfaces.access[].vlan`).
    pub vlan: Option<u16>,
    /// PMIPv6 signaling without ESP (`peers[].insecure = true`, the default:
    /// the lab's signaling ladder, the lossy core's dropper and tshark read
    /// it in the clear); false: protected with the SAs of [`esp_sa`]
    /// (`hostile_esp`).
    pub insecure: bool,
    /// Access gateways get a default profile (else a subscriber needs a profile of its own,
    /// e.g. from RADIUS).
    pub default_profile: bool,
    /// TOML appended to the access gateways' and the anchor's configs (e.g. `[aaa]`);
    /// `{n}` in `extra_access` becomes the gateway's number (mag1: 1).
    pub extra_access: String,
    pub extra_anchor: String,
    /// What the subscriber's profile asks for (PMIPv6): IPv4 (DHCP), IPv6
    /// (SLAAC / DHCPv6 from a home network prefix) or both (see lab6.rs).
    pub service: Service,
    /// MaxRtrAdvInterval of the gateways (`ipv6.ra_interval_max_s`); the
    /// prefix lifetimes are capped at 3 × this.
    pub ra_interval_s: u32,
    /// Serve metrics on 127.0.0.1:[`METRICS_PORT`] in each gateway's namespace.
    pub metrics: bool,
}

/// Port of the gateways' metrics endpoint (with [`LabOpts::metrics`]).
pub const METRICS_PORT: u16 = 9417;

/// GET /metrics inside `ns` (the endpoint listens on its loopback), with
/// `accept` as the request's Accept header if given; the body of a 200.
pub fn scrape_metrics(ns: &Netns, accept: Option<&'static str>) -> Result<String> {
    use std::io::{Read, Write};
    ns.run_in(move || -> Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let accept = accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        let (head, body) = r.split_once("\r\n\r\n").context("no HTTP head")?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200 "), "{head}\n{body}");
        Ok(body.to_string())
    })?
}

fn metrics_section(o: &LabOpts) -> String {
    if o.metrics {
        format!("\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n")
    } else {
        String::new()
    }
}

impl LabOpts {
    /// Core address of access gateway `i` (the anchor's peer address).
    pub fn mag_core(&self, i: usize) -> String {
        if self.ipv6_transport {
            CORE6_MAG[i].to_string()
        } else {
            CORE_MAG[i].to_string()
        }
    }
    /// Core address of the anchor.
    pub fn anchor_core(&self) -> String {
        if self.ipv6_transport {
            CORE6_ANCHOR.to_string()
        } else {
            CORE_ANCHOR.to_string()
        }
    }
    /// The subscriber's interface (s0, or its VLAN sub-interface).
    pub fn sub_if(&self) -> String {
        match self.vlan {
            Some(v) => format!("s0.{v}"),
            None => "s0".into(),
        }
    }
    /// The gateways' access interface (acc0, or its VLAN sub-interface).
    pub fn acc_if(&self) -> String {
        match self.vlan {
            Some(v) => format!("acc0.{v}"),
            None => "acc0".into(),
        }
    }
    /// DHCP option 26 the subscriber should get: link MTU minus outer IP + GRE with key.
    pub fn subscriber_mtu(&self) -> u16 {
        ACCESS_MTU - if self.ipv6_transport { 48 } else { 28 }
    }
}

impl LabOpts {
    pub fn new(proto: Proto, tag: &str) -> LabOpts {
        LabOpts {
            proto,
            tag: tag.chars().take(4).collect(),
            gateways: 2,
            attach_mode: "native".into(),
            lifetime_s: 120,
            refresh_s: 40,
            renew_percent: 75,
            detach: None,
            log_filter: "info".into(),
            ipv6_transport: false,
            pin: false,
            durable: true,
            retx_initial_ms: 300,
            retx_max_ms: 2000,
            heartbeat_s: 0,
            max_retx: 3,
            reregistration_window_s: 0,
            vlan: None,
            insecure: true,
            default_profile: true,
            extra_access: String::new(),
            extra_anchor: String::new(),
            service: Service::Ipv4,
            ra_interval_s: 10,
            // PMIP_LAB_METRICS=1: serve metrics and scrape every gateway once a
            // second for the whole run (a scrape must not cost forwarding).
            metrics: std::env::var_os("PMIP_LAB_METRICS").is_some(),
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "pmip-lab-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("PMIP_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Directory holding `pmipd` and `pmipctl`: `$PMIP_BIN_DIR`, else the cargo
/// profile directory of the running executable (target/debug for tests,
/// target/release for pmip-lab).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PMIP_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Builds pmipd and pmipctl once per process (cargo test only builds the
/// binaries of the package under test, and pmipd lives in pmip-user) when
/// running under cargo; then checks they are there.
pub fn ensure_binaries() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    let dir = bin_dir();
    let r = BUILT.get_or_init(|| {
        if std::env::var_os("PMIP_BIN_DIR").is_some()
            || std::env::var_os("PMIP_LAB_NO_BUILD").is_some()
        {
            return Ok(());
        }
        let Some(cargo) = std::env::var_os("CARGO") else {
            return Ok(());
        };
        let mut c = Command::new(cargo);
        c.args(["build", "-q", "-p", "pmip-user", "--bins"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        // target/<profile> → target
        if let Some(t) = dir.parent() {
            c.env("CARGO_TARGET_DIR", t);
        }
        c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        match c.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("cargo build -p pmip-user --bins: {s}")),
            Err(e) => Err(format!("cargo build -p pmip-user --bins: {e}")),
        }
    });
    if let Err(e) = r {
        bail!("{e}");
    }
    for b in ["pmipd", "pmipctl"] {
        if !dir.join(b).exists() {
            bail!(
                "{} missing: build it with `cargo build -p pmip-user --bins`",
                dir.join(b).display()
            );
        }
    }
    Ok(dir)
}

pub fn pmipd() -> PathBuf {
    bin_dir().join("pmipd")
}
pub fn pmipctl() -> PathBuf {
    bin_dir().join("pmipctl")
}

/// True if `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sends `sig` to our child `c` unless it has exited: once `try_wait` has
/// reaped it, its pid may belong to another process already (pid_max is
/// 32 768 on these hosts, and a test suite starts thousands).
pub fn signal_child(c: &mut Child, sig: i32) {
    if matches!(c.try_wait(), Ok(None)) {
        // SAFETY: our child, running and not reaped (checked just above).
        unsafe { libc::kill(c.id() as i32, sig) };
    }
}

/// Waits for a child up to `d`; None if it is still running.
pub fn wait_timeout(c: &mut Child, d: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + d;
    loop {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- pmipd

/// A running `pmipd run` in a namespace; SIGTERM (then SIGKILL) on drop.
pub struct Daemon {
    pub name: String,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    _stdout: Option<std::thread::JoinHandle<()>>,
    /// How it ended when it was found gone at `stop` (not stopped by us).
    exited_early: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `pmipd run --config FILE` in `ns` and waits for `pmipd: ready`.
    pub fn start(
        ns: &Netns,
        name: &str,
        config: &Path,
        socket: &Path,
        log_filter: &str,
    ) -> Result<Daemon> {
        let log = config.with_extension("log");
        let err = std::fs::File::create(&log)?;
        let mut child = ns
            .command(pmipd().to_str().unwrap())
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", log_filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning pmipd for {name}"))?;
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let th = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut d = Daemon {
            name: name.into(),
            socket: socket.into(),
            config: config.into(),
            log,
            child: Some(child),
            _stdout: Some(th),
            exited_early: None,
        };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.trim() == "pmipd: ready" => break,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = d
                        .child
                        .as_mut()
                        .and_then(|c| wait_timeout(c, Duration::from_secs(2)));
                    bail!(
                        "pmipd {name} exited before ready ({st:?}):\n{}",
                        d.log_tail(30)
                    );
                }
            }
            if Instant::now() > end {
                bail!("pmipd {name} not ready after 20 s:\n{}", d.log_tail(30));
            }
            if interrupted() {
                bail!("interrupted");
            }
        }
        // Socket up too.
        let end = Instant::now() + Duration::from_secs(5);
        while !d.socket.exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last `n` lines of its stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Runs `pmipctl --socket S ARGS...` and returns its stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let o = Command::new(pmipctl())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running pmipctl")?;
        if !o.status.success() {
            bail!(
                "pmipctl {} ({}): {}{}",
                args.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub fn ctl_json(&self, args: &[&str]) -> Result<Response> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a)?;
        serde_json::from_str(&out).with_context(|| format!("pmipctl JSON: {out}"))
    }

    /// `pmipctl show bindings --json`.
    pub fn bindings(&self) -> Result<Vec<BindingView>> {
        match self.ctl_json(&["show", "bindings"])? {
            Response::Bindings(b) => Ok(b),
            other => bail!("show bindings: unexpected {other:?}"),
        }
    }

    /// `pmipctl show stats --json`.
    pub fn stats(&self) -> Result<pmip_user::ctl::StatsView> {
        match self.ctl_json(&["show", "stats"])? {
            Response::Stats(s) => Ok(s),
            other => bail!("show stats: unexpected {other:?}"),
        }
    }

    /// Counter `name` of group `group` in `show stats` (0 when absent).
    pub fn counter(&self, group: &str, name: &str) -> Result<u64> {
        let s = self.stats()?;
        Ok(s.groups
            .get(group)
            .and_then(|g| g.get(name))
            .copied()
            .unwrap_or(0))
    }

    /// Waits until some counter group of `show stats` has `name` at `want`;
    /// fails with every group after `within`.
    pub fn wait_counter(&self, name: &str, want: u64, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        loop {
            let s = self.stats()?;
            if s.groups.values().any(|g| g.get(name) == Some(&want)) {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "{}: counter {name} not {want} within {within:?}: {:?}",
                    self.name,
                    s.groups
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `pred` holds on this box's bindings.
    pub fn wait_bindings(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[BindingView]) -> bool,
    ) -> Result<Vec<BindingView>> {
        let end = Instant::now() + within;
        let mut last = Vec::new();
        loop {
            match self.bindings() {
                Ok(b) if pred(&b) => return Ok(b),
                Ok(b) => last = b,
                Err(_) if Instant::now() < end => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= end {
                bail!(
                    "{}: {what} not reached within {within:?}; bindings now:\n{}\nlog:\n{}",
                    self.name,
                    pmip_user::ctl::format_bindings(&last),
                    self.log_tail(25)
                );
            }
            crate::lab::interruptible_sleep(Duration::from_millis(100))?;
        }
    }

    /// SIGTERM and wait (up to 5 s, then SIGKILL); returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        // Gone already: say so in the failure report ([`fail`]).
        if let Ok(Some(s)) = c.try_wait() {
            self.exited_early = Some(s);
            return Some(s);
        }
        signal_child(&mut c, libc::SIGTERM);
        match wait_timeout(&mut c, Duration::from_secs(5)) {
            Some(s) => Some(s),
            None => {
                let _ = c.kill();
                c.wait().ok()
            }
        }
    }

    /// SIGKILL: the box dies without deregistering anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // What it logged, for the failure report of the test that ran it
        // ([`fail`]): a test returning an error has dropped its daemons by
        // the time it reports.
        let how = match self.exited_early {
            Some(s) => format!(" [exited on its own before the test stopped it: {s}]"),
            None => String::new(),
        };
        let tail = format!(
            "---- pmipd {} ({}){how} ----\n{}",
            self.name,
            self.log.display(),
            self.log_tail(40)
        );
        if std::thread::panicking() {
            eprintln!("{tail}");
        } else {
            DAEMON_LOGS.with(|l| {
                let mut l = l.borrow_mut();
                if l.len() == 4 {
                    l.remove(0);
                }
                l.push(tail);
            });
        }
    }
}

thread_local! {
    /// The log tails of the last daemons this thread (one test) stopped.
    static DAEMON_LOGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Fails the test with `e`, after the log tails of the daemons it ran (a
/// race seen only in CI is then explained by the daemons' own account).
pub fn fail(e: anyhow::Error) -> ! {
    DAEMON_LOGS.with(|l| {
        for t in l.borrow_mut().drain(..) {
            eprintln!("{t}");
        }
    });
    if interrupted() {
        // Every blocking wait with a timeout returns EINTR on a signal.
        eprintln!("---- this test process received SIGINT or SIGTERM ----");
    }
    panic!("{e:#}");
}

// ---------------------------------------------------------------- DHCP client

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# udhcpc event script: configure the interface, then log the lease fields
# (a logged event means the interface is already configured).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    old=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
    if [ -n "$old" ] && [ "$old" != "$ip/$mask" ]; then ip -4 addr flush dev "$interface"; fi
    ip addr replace "$ip/$mask" dev "$interface"
    if [ -n "$mtu" ]; then ip link set dev "$interface" mtu "$mtu"; fi
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    ;;
esac
echo "$1 ip=$ip mask=$mask subnet=$subnet router=$router lease=$lease mtu=$mtu dns=$dns serverid=$serverid" >> "@LOG@"
exit 0
"#;

/// What udhcpc's script saw on a `bound`/`renew` event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub event: String,
    pub ip: String,
    pub mask: String,
    pub router: String,
    pub lease: String,
    pub mtu: String,
    pub dns: String,
    pub serverid: String,
}
impl Lease {
    fn parse(line: &str) -> Lease {
        let f = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .to_string()
        };
        Lease {
            event: line.split_whitespace().next().unwrap_or("").into(),
            ip: f("ip"),
            mask: f("mask"),
            router: f("router"),
            lease: f("lease"),
            mtu: f("mtu"),
            dns: f("dns"),
            serverid: f("serverid"),
        }
    }
}

/// busybox udhcpc in the subscriber namespace; killed on drop (no release).
pub struct Dhcpc {
    child: Option<Child>,
    pub log: PathBuf,
    /// ISC dhclient (else busybox udhcpc): `dhclient -r` to release.
    dhclient: Option<DhclientFiles>,
}

struct DhclientFiles {
    ns: String,
    iface: String,
    script: PathBuf,
    leases: PathBuf,
    pid: PathBuf,
}

const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
# dhclient-script stand-in: configure the interface, then log the lease fields.
case "$reason" in
  PREINIT)
    ip link set dev "$interface" up
    ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    if [ -n "$new_interface_mtu" ]; then ip link set dev "$interface" mtu "$new_interface_mtu"; fi
    for r in $new_routers; do ip route replace default via "$r" dev "$interface"; break; done
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface"
    ;;
esac
echo "$reason ip=$new_ip_address mask=$new_subnet_mask router=$new_routers lease=$new_dhcp_lease_time mtu=$new_interface_mtu dns=$new_domain_name_servers serverid=$new_dhcp_server_identifier" >> "@LOG@"
exit 0
"#;

impl Dhcpc {
    pub fn start(ns: &Netns, iface: &str, dir: &Path, quit_when_bound: bool) -> Result<Dhcpc> {
        let log = dir.join("udhcpc.log");
        let script = dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            UDHCPC_SCRIPT.replace("@LOG@", log.to_str().unwrap()),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let mut args = vec![
            "busybox",
            "udhcpc",
            "-f",
            "-i",
            iface,
            "-s",
            script.to_str().unwrap(),
        ];
        // Retry DISCOVER every second, up to 20 times; then fail.
        args.extend_from_slice(&["-t", "20", "-T", "1", "-A", "1", "-n", "-O", "mtu"]);
        if quit_when_bound {
            args.push("-q");
        }
        let child = ns
            .command(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning udhcpc")?;
        Ok(Dhcpc {
            child: Some(child),
            log,
            dhclient: None,
        })
    }

    /// ISC dhclient in the foreground (`-d`); its script logs `BOUND ...` lines.
    pub fn start_dhclient(ns: &Netns, iface: &str, dir: &Path) -> Result<Dhcpc> {
        let log = dir.join("dhclient.log");
        let f = DhclientFiles {
            ns: ns.name.clone(),
            iface: iface.into(),
            script: dir.join("dhclient.sh"),
            leases: dir.join("dhclient.leases"),
            pid: dir.join("dhclient.pid"),
        };
        std::fs::write(
            &f.script,
            DHCLIENT_SCRIPT.replace("@LOG@", log.to_str().unwrap()),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f.script, std::fs::Permissions::from_mode(0o755))?;
        let child = ns
            .command("dhclient")
            .arg("-d")
            .arg("-sf")
            .arg(&f.script)
            .arg("-lf")
            .arg(&f.leases)
            .arg("-pf")
            .arg(&f.pid)
            .arg(iface)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning dhclient")?;
        Ok(Dhcpc {
            child: Some(child),
            log,
            dhclient: Some(f),
        })
    }

    pub fn events(&self) -> Vec<Lease> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(Lease::parse)
            .collect()
    }

    /// Waits for the `n`-th (1-based) event called `event` (bound, renew, ...).
    pub fn wait_event(&self, event: &str, n: usize, within: Duration) -> Result<Lease> {
        let end = Instant::now() + within;
        loop {
            let ev = self.events();
            if let Some(l) = ev.iter().filter(|l| l.event == event).nth(n - 1) {
                return Ok(l.clone());
            }
            if Instant::now() >= end {
                bail!("udhcpc: no {event} #{n} within {within:?}; events: {ev:?}");
            }
            interruptible_sleep(Duration::from_millis(50))?;
        }
    }

    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|l| l.event == event).count()
    }

    fn signal(&self, sig: i32) -> Result<()> {
        let c = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("udhcpc not running"))?;
        // SAFETY: signalling our own child.
        if unsafe { libc::kill(c.id() as i32, sig) } != 0 {
            bail!("kill udhcpc: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
    /// SIGUSR1: renew now (a unicast REQUEST to the server identifier).
    pub fn renew(&self) -> Result<()> {
        self.signal(libc::SIGUSR1)
    }
    /// Release the lease (DHCPRELEASE): udhcpc on SIGUSR2, dhclient with `-r`.
    pub fn release(&self) -> Result<()> {
        match &self.dhclient {
            None => self.signal(libc::SIGUSR2),
            Some(f) => {
                let o = Command::new("ip")
                    .args(["netns", "exec", &f.ns, "dhclient", "-r", "-sf"])
                    .arg(&f.script)
                    .arg("-lf")
                    .arg(&f.leases)
                    .arg("-pf")
                    .arg(&f.pid)
                    .arg(&f.iface)
                    .stdin(Stdio::null())
                    .output()?;
                if !o.status.success() {
                    bail!("dhclient -r: {}", String::from_utf8_lossy(&o.stderr));
                }
                Ok(())
            }
        }
    }
    /// SIGKILL: the client disappears without a word.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
impl Drop for Dhcpc {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------- Ctrl-C

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT/SIGTERM set a flag that the lab's waits check, so a Ctrl-C
/// unwinds through the normal error path and every drop guard runs.
pub fn install_interrupt_handler() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sleeps, failing early with "interrupted" on Ctrl-C.
pub fn interruptible_sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Runs a child to completion, killing it on Ctrl-C; returns its output.
pub fn output_interruptible(mut cmd: Command) -> Result<std::process::Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => return Ok(r?),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interrupted() {
                    // SAFETY: our own child (not reaped yet: the waiter thread holds it).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    bail!("interrupted");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("waiter thread died"),
        }
    }
}

// ---------------------------------------------------------------- the lab

/// XDP pass programs (of the test object) on the far ends of veths the
/// gateways transmit into; attached while the objects live.
struct PassPrograms(#[allow(dead_code)] Vec<aya::Ebpf>);

pub struct Lab {
    pub opts: LabOpts,
    pub dir: TempDir,
    pub client: Option<Dhcpc>,
    /// Access gateways (index 0 = mag1), then the anchor.
    pub access: Vec<Option<Daemon>>,
    pub anchor_d: Option<Daemon>,
    /// Background children (iperf3 servers, pings) killed on drop.
    pub bg: Vec<Child>,
    pass: Option<PassPrograms>,
    /// The bpffs the gateways pin to (with `LabOpts::pin`).
    pins: Option<BpfFs>,
    /// Subscribers added by [`Lab::add_subscriber`] (the first is `sub`).
    pub more_subs: Vec<Netns>,
    /// Metrics scrapers (PMIP_LAB_METRICS=1): their stop flag and threads.
    scrapers: (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        Vec<std::thread::JoinHandle<u64>>,
    ),
    pub sub: Netns,
    pub sw: Netns,
    pub mags: Vec<Netns>,
    pub anchor: Netns,
    pub cn: Netns,
}

pub fn run_all(ns: &Netns, cmds: &[String]) -> Result<()> {
    for c in cmds {
        let args: Vec<&str> = c.split_whitespace().collect();
        ns.exec(&args)
            .with_context(|| format!("{}: {c}", ns.name))?;
    }
    Ok(())
}

impl Lab {
    /// Creates the namespaces, links and addresses (no daemon yet).
    pub fn topology(opts: LabOpts) -> Result<Lab> {
        let t = &opts.tag;
        let n = opts.gateways.clamp(1, 2);
        let dir = TempDir::new(t)?;
        let sub = Netns::new(&format!("{t}s"))?;
        let sw = Netns::new(&format!("{t}w"))?;
        let mut mags = Vec::new();
        for i in 0..n {
            mags.push(Netns::new(&format!("{t}m{}", i + 1))?);
        }
        let anchor = Netns::new(&format!("{t}a"))?;
        let cn = Netns::new(&format!("{t}c"))?;
        let pins = if opts.pin {
            Some(BpfFs::mount(&dir.0.join("bpf"))?)
        } else {
            None
        };
        let lab = Lab {
            opts,
            dir,
            client: None,
            access: (0..n).map(|_| None).collect(),
            anchor_d: None,
            bg: Vec::new(),
            pass: None,
            pins,
            more_subs: Vec::new(),
            scrapers: Default::default(),
            sub,
            sw,
            mags,
            anchor,
            cn,
        };
        lab.wire()?;
        Ok(lab)
    }

    fn wire(&self) -> Result<()> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        veth(&self.sub, "s0", &self.sw, "ps")?;
        veth(&self.anchor, "core0", &self.sw, "pcn")?;
        veth(&self.anchor, "cn0", &self.cn, "c0")?;
        let mut sw = s(&[
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            "ip link add brc type bridge mcast_snooping 0",
            "ip link set pcn master brc",
            "ip link set brc up",
        ]);
        for (i, m) in self.mags.iter().enumerate() {
            let k = i + 1;
            veth(m, "acc0", &self.sw, &format!("pa{k}"))?;
            veth(m, "core0", &self.sw, &format!("pc{k}"))?;
            sw.push(format!("ip link add br{k} type bridge"));
            sw.push(format!("ip link set pa{k} master br{k}"));
            sw.push(format!("ip link set pc{k} master brc"));
            sw.push(format!("ip link set br{k} up"));
            // The gateway's access link is up before the subscriber arrives.
            run_all(
                m,
                &[
                    "sysctl -qw net.ipv4.ip_forward=1".into(),
                    "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
                    "sysctl -qw net.ipv4.conf.acc0.accept_local=1".into(),
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                    format!("ip link set acc0 address {GW_MAC}"),
                    format!("ip addr add {GW_ADDR}/24 dev acc0"),
                    format!("ip addr add {}/24 dev core0", CORE_MAG[i]),
                    format!("ip route add default via {CORE_ANCHOR}"),
                ],
            )?;
            if self.opts.ipv6_transport {
                run_all(
                    m,
                    &[
                        "sysctl -qw net.ipv6.conf.core0.disable_ipv6=0".into(),
                        format!("ip -6 addr add {}/64 dev core0 nodad", CORE6_MAG[i]),
                    ],
                )?;
            }
            if let Some(v) = self.opts.vlan {
                // The access link is 802.1Q: the gateway serves acc0.VID.
                let a = self.opts.acc_if();
                run_all(
                    m,
                    &[
                        format!("ip addr del {GW_ADDR}/24 dev acc0"),
                        format!("ip link add link acc0 name {a} type vlan id {v}"),
                        format!("ip link set {a} up"),
                        format!("ip addr add {GW_ADDR}/24 dev {a}"),
                        format!("sysctl -qw net.ipv4.conf.{a}.accept_local=1"),
                    ],
                )?;
            }
        }
        sw.push("ip link set ps master br1".into());
        run_all(&self.sw, &sw)?;
        run_all(
            &self.sub,
            &s(&[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
                // veth quirk: partial checksums die in XDP.
                "ethtool -K s0 tx off",
            ]),
        )?;
        self.sub
            .exec(&["ip", "link", "set", "s0", "address", SUB_MAC])?;
        if let Some(v) = self.opts.vlan {
            let s0 = self.opts.sub_if();
            run_all(
                &self.sub,
                &[
                    format!("ip link add link s0 name {s0} type vlan id {v}"),
                    format!("ip link set {s0} up"),
                    format!("ethtool -K {s0} tx off"),
                ],
            )?;
        }
        run_all(
            &self.anchor,
            &[
                "sysctl -qw net.ipv4.ip_forward=1".into(),
                "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
                "sysctl -qw net.ipv4.conf.cn0.accept_local=1".into(),
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                format!("ip addr add {CORE_ANCHOR}/24 dev core0"),
                format!("ip addr add {CN_GW}/24 dev cn0"),
                // Host-originated packets to home addresses leave by core0, where
                // TC egress tunnels them to the right gateway.
                format!("ip route add {POOL} via {}", CORE_MAG[0]),
            ],
        )?;
        if self.opts.ipv6_transport {
            run_all(
                &self.anchor,
                &[
                    "sysctl -qw net.ipv6.conf.core0.disable_ipv6=0".into(),
                    format!("ip -6 addr add {CORE6_ANCHOR}/64 dev core0 nodad"),
                ],
            )?;
        }
        run_all(
            &self.cn,
            &[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                format!("ip addr add {CN}/24 dev c0"),
                format!("ip route add default via {CN_GW}"),
                "ethtool -K c0 tx off".into(),
            ],
        )?;
        if self.opts.service.ipv6() {
            self.wire6()?;
        }
        Ok(())
    }

    /// The XDP pass program on every veth end a gateway transmits into
    /// (native mode veths drop XDP frames towards a peer without one).
    pub fn attach_pass(&mut self) -> Result<()> {
        let mut v = Vec::new();
        let load = |ns: &Netns, ifs: Vec<String>| -> Result<aya::Ebpf> {
            ns.run_in(move || -> Result<aya::Ebpf> {
                let mut ebpf = pmip_user::fastpath::load_test_object()?;
                for i in &ifs {
                    pmip_user::fastpath::attach_pass(&mut ebpf, i)?;
                }
                Ok(ebpf)
            })?
        };
        let mut sw = vec!["pcn".to_string()];
        for k in 1..=self.mags.len() {
            sw.push(format!("pa{k}"));
            sw.push(format!("pc{k}"));
        }
        v.push(load(&self.sw, sw).context("XDP pass on the switch ports")?);
        v.push(load(&self.cn, vec!["c0".into()]).context("XDP pass on the correspondent")?);
        v.push(load(&self.sub, vec!["s0".into()]).context("XDP pass on the subscriber")?);
        self.pass = Some(PassPrograms(v));
        Ok(())
    }
}

/// The top of every `pmipd run` config the labs write: the role, protocol
/// and node, the control socket, and `[fastpath]` (`fastpath`: its lines
/// after `attach_mode`).
pub(crate) struct Head<'a> {
    /// Which module wrote it (the first line's comment).
    pub(crate) by: &'a str,
    pub(crate) role: &'a str,
    pub(crate) proto: &'a str,
    pub(crate) node_id: &'a str,
    pub(crate) sock: &'a Path,
    pub(crate) attach_mode: &'a str,
    pub(crate) fastpath: &'a str,
}

impl Head<'_> {
    pub(crate) fn toml(&self) -> String {
        format!(
            "# generated by {}\nrole = \"{}\"\nprotocol = \"{}\"\nnode_id = \"{}\"\n\n[control]\nsocket = \"{}\"\n\n[fastpath]\nattach_mode = \"{}\"\n{}\n",
            self.by,
            self.role,
            self.proto,
            self.node_id,
            self.sock.display(),
            self.attach_mode,
            self.fastpath
        )
    }
}

/// A `[[peers]]` entry (further keys of it may follow).
pub(crate) fn peer_toml(name: &str, address: &str) -> String {
    format!("\n[[peers]]\nname = \"{name}\"\naddress = \"{address}\"\n")
}

/// The anchor's `[[pools]]` entry "home".
pub(crate) fn pool_toml(prefix: &str, gateway: Ipv4Addr) -> String {
    format!("\n[[pools]]\nname = \"home\"\nprefix = \"{prefix}\"\ngateway = \"{gateway}\"\n")
}

/// A `[store]` in a file of its own in the lab's directory (the default
/// path is the host's).
pub(crate) fn store_path_toml(dir: &Path, name: &str) -> String {
    format!(
        "\n[store]\npath = \"{}\"\n",
        dir.join(format!("{name}.redb")).display()
    )
}

/// The access gateway's profile "default", served by `anchor`.
pub(crate) fn default_profile_toml(anchor: &str) -> String {
    format!("\n[[profiles]]\nname = \"default\"\nanchor = \"{anchor}\"\n")
}

/// `pmipd run` config of access gateway `i` (0-based).
pub fn access_config(o: &LabOpts, dir: &Path, i: usize) -> String {
    {
        let sock = dir.join(format!("mag{}.sock", i + 1));
        let node_id = format!("{}{}", o.proto.access_name().to_lowercase(), i + 1);
        let mut c = Head {
            by: "pmip_tests::lab",
            role: "access",
            proto: o.proto.name(),
            node_id: &node_id,
            sock: &sock,
            attach_mode: &o.attach_mode,
            fastpath: &pin_line(o, dir, &format!("mag{}", i + 1)),
        }
        .toml();
        c.push_str(&format!(
            r#"[interfaces]
core = "core0"

[[interfaces.access]]
name = "{acc}"
{vlan}gateway = "{GW_ADDR}/24"
mtu = {ACCESS_MTU}
{default}

[addresses]
ipv4 = "{me}"
{me6}"#,
            acc = o.acc_if(),
            vlan = o.vlan.map(|v| format!("vlan = {v}\n")).unwrap_or_default(),
            default = if o.default_profile {
                "default_profile = \"default\""
            } else {
                ""
            },
            me = CORE_MAG[i],
            me6 = if o.ipv6_transport {
                format!("ipv6 = \"{}\"\n", CORE6_MAG[i])
            } else {
                String::new()
            },
        ));
        c.push_str(&peer_toml("anchor", &o.anchor_core()));
        if o.proto == Proto::Pmipv4 {
            c.push_str(&format!(
                "spi = {}\nalgorithm = \"hmac-md5\"\nkey = \"{}\"\n",
                256 + i,
                sa_key(i)
            ));
        }
        c.push_str(&esp_toml(o, dir, i, Side::Access));
        c.push_str(&timers(o));
        c.push_str(&detach(o));
        c.push_str(&store_section(o, dir, &format!("mag{}", i + 1)));
        if o.default_profile {
            c.push_str(&default_profile_toml("anchor"));
            // The profile's `service` line, then `[ipv6]`.
            c.push_str(&crate::lab6::access_config6(o));
        }
        c.push('\n');
        c.push_str(&o.extra_access.replace("{n}", &(i + 1).to_string()));
        c.push_str(&metrics_section(o));
        c
    }
}

/// A gateway's `[store]`: a file of its own in the lab's directory.
pub fn store_section(o: &LabOpts, dir: &Path, name: &str) -> String {
    if o.durable {
        store_path_toml(dir, name)
    } else {
        "\n[store]\nbackend = \"memory\"\n".into()
    }
}

/// The `pin_dir` line of a gateway's `[fastpath]` (empty without pinning).
fn pin_line(o: &LabOpts, dir: &Path, name: &str) -> String {
    if o.pin {
        format!("pin_dir = \"{}\"\n", dir.join("bpf").join(name).display())
    } else {
        String::new()
    }
}

fn timers(o: &LabOpts) -> String {
    {
        // RFC 5944 §3.6.3: a PMA's Registration Requests at least 1 s apart.
        let initial = match o.proto {
            Proto::Pmipv4 => o.retx_initial_ms.max(1000),
            Proto::Pmipv6 => o.retx_initial_ms,
        };
        let mut c = format!(
            "\n[timers]\nlifetime_s = {}\nretx_initial_ms = {}\nretx_max_ms = {}\nmax_retransmissions = {}\nheartbeat_interval_s = {}\nreregistration_window_s = {}\n",
            o.lifetime_s,
            initial,
            o.retx_max_ms.max(initial),
            o.max_retx,
            o.heartbeat_s,
            o.reregistration_window_s
        );
        match o.proto {
            Proto::Pmipv6 => c.push_str(&format!("refresh_s = {}\n", o.refresh_s)),
            Proto::Pmipv4 => c.push_str(&format!("renew_percent = {}\n", o.renew_percent)),
        }
        c
    }
}

fn detach(o: &LabOpts) -> String {
    {
        match o.detach {
            Some(d) => format!(
                "\n[detach]\nenabled = true\ninterval_s = {}\ntimeout_s = {}\nretries = {}\n",
                d.interval_s, d.timeout_s, d.retries
            ),
            None => "\n[detach]\nenabled = false\n".into(),
        }
    }
}

/// `pmipd run` config of the anchor serving `gateways` access gateways.
pub fn anchor_config(o: &LabOpts, dir: &Path, gateways: usize) -> String {
    {
        let sock = dir.join("anchor.sock");
        let mut c = Head {
            by: "pmip_tests::lab",
            role: "anchor",
            proto: o.proto.name(),
            node_id: &o.proto.anchor_name().to_lowercase(),
            sock: &sock,
            attach_mode: &o.attach_mode,
            fastpath: &pin_line(o, dir, "anchor"),
        }
        .toml();
        c.push_str(&format!(
            r#"[interfaces]
core = "core0"
correspondent = ["cn0"]

[addresses]
ipv4 = "{CORE_ANCHOR}"
{me6}"#,
            me6 = if o.ipv6_transport {
                format!("ipv6 = \"{CORE6_ANCHOR}\"\n")
            } else {
                String::new()
            },
        ));
        for i in 0..gateways {
            c.push_str(&peer_toml(
                &format!("{}{}", o.proto.access_name().to_lowercase(), i + 1),
                &o.mag_core(i),
            ));
            if o.proto == Proto::Pmipv4 {
                c.push_str(&format!(
                    "spi = {}\nalgorithm = \"hmac-md5\"\nkey = \"{}\"\n",
                    256 + i,
                    sa_key(i)
                ));
            }
            c.push_str(&esp_toml(o, dir, i, Side::Anchor));
        }
        c.push_str(&timers(o));
        c.push_str(&store_section(o, dir, "anchor"));
        c.push_str(&pool_toml(POOL, GW_ADDR));
        c.push_str(&crate::lab6::anchor_config6(o));
        c.push('\n');
        c.push_str(&o.extra_anchor);
        c.push_str(&metrics_section(o));
        c
    }
}

impl Lab {
    /// Writes the configs and starts the anchor, then the access gateways.
    pub fn start_daemons(&mut self) -> Result<()> {
        ensure_binaries()?;
        self.start_anchor()?;
        for i in 0..self.mags.len() {
            self.start_access(i)?;
        }
        if std::env::var_os("PMIP_LAB_METRICS").is_some()
            && self.opts.metrics
            && self.scrapers.1.is_empty()
        {
            self.scrape_every_second()?;
        }
        Ok(())
    }

    /// (Re)starts the anchor.
    pub fn start_anchor(&mut self) -> Result<()> {
        let cfg = self.dir.0.join("anchor.toml");
        std::fs::write(
            &cfg,
            anchor_config(&self.opts, &self.dir.0, self.mags.len()),
        )?;
        let sock = self.dir.0.join("anchor.sock");
        self.anchor_d = Some(Daemon::start(
            &self.anchor,
            "anchor",
            &cfg,
            &sock,
            &self.opts.log_filter,
        )?);
        Ok(())
    }

    /// (Re)starts access gateway `i`.
    pub fn start_access(&mut self, i: usize) -> Result<()> {
        let cfg = self.dir.0.join(format!("mag{}.toml", i + 1));
        std::fs::write(&cfg, access_config(&self.opts, &self.dir.0, i))?;
        let sock = self.dir.0.join(format!("mag{}.sock", i + 1));
        let d = Daemon::start(
            &self.mags[i],
            &format!("mag{}", i + 1),
            &cfg,
            &sock,
            &self.opts.log_filter,
        )?;
        self.access[i] = Some(d);
        Ok(())
    }

    /// Topology, pass programs, daemons: ready for a subscriber.
    pub fn up(opts: LabOpts) -> Result<Lab> {
        let mut lab = Lab::topology(opts)?;
        lab.attach_pass()?;
        lab.start_daemons()?;
        Ok(lab)
    }

    /// A thread per gateway that GETs /metrics once a second until the lab
    /// is dropped (PMIP_LAB_METRICS=1).
    fn scrape_every_second(&mut self) -> Result<()> {
        let stop = self.scrapers.0.clone();
        for ns in self.mags.iter().chain(std::iter::once(&self.anchor)) {
            let stop = stop.clone();
            let h = ns.thread(move || {
                use std::io::{Read, Write};
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)) {
                        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
                        let _ = s.read_to_end(&mut Vec::new());
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                n
            })?;
            self.scrapers.1.push(h);
        }
        Ok(())
    }

    pub fn mag(&self, i: usize) -> &Daemon {
        self.access[i].as_ref().expect("access gateway not running")
    }
    pub fn lma(&self) -> &Daemon {
        self.anchor_d.as_ref().expect("anchor not running")
    }

    /// Another subscriber (MAC `mac`) on gateway 1's access bridge, wired and
    /// configured like the first; returns its index in `more_subs`.
    pub fn add_subscriber(&mut self, mac: &str) -> Result<usize> {
        let k = self.more_subs.len() + 2;
        let ns = Netns::new(&format!("{}s{k}", self.opts.tag))?;
        let port = format!("ps{k}");
        veth(&ns, "s0", &self.sw, &port)?;
        self.sw
            .exec(&["ip", "link", "set", &port, "master", "br1"])?;
        run_all(
            &ns,
            &[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                "ethtool -K s0 tx off".into(),
                format!("ip link set s0 address {mac}"),
            ],
        )?;
        self.more_subs.push(ns);
        Ok(self.more_subs.len() - 1)
    }

    /// Starts udhcpc on the subscriber and waits for its lease.
    pub fn attach(&mut self, quit_when_bound: bool) -> Result<Lease> {
        let c = Dhcpc::start(&self.sub, &self.opts.sub_if(), &self.dir.0, quit_when_bound)?;
        self.client = Some(c);
        self.client()
            .wait_event("bound", 1, Duration::from_secs(25))
            .map_err(|e| {
                anyhow!(
                    "{e}\n--- mag1 log:\n{}\n--- anchor log:\n{}",
                    self.access[0]
                        .as_ref()
                        .map(|d| d.log_tail(20))
                        .unwrap_or_default(),
                    self.anchor_d
                        .as_ref()
                        .map(|d| d.log_tail(20))
                        .unwrap_or_default()
                )
            })
    }

    /// Waits until gateway `i` shows one binding, answered (ACTIVE), and
    /// the anchor one binding (the show snapshot lags the state machines by
    /// up to half a second).
    pub fn wait_registered(&self, i: usize) -> Result<(BindingView, BindingView)> {
        let one = |b: &[BindingView]| b.len() == 1;
        // The access gateway's binding answered (a binding being registered
        // again shows without its home address).
        let active = |b: &[BindingView]| one(b) && b[0].state == "ACTIVE";
        let m = self
            .mag(i)
            .wait_bindings(Duration::from_secs(10), "one ACTIVE binding", active)?;
        let a = self
            .lma()
            .wait_bindings(Duration::from_secs(5), "one binding", one)?;
        Ok((m[0].clone(), a[0].clone()))
    }

    pub fn client(&self) -> &Dhcpc {
        self.client.as_ref().expect("no DHCP client")
    }

    /// Moves the subscriber's switch port to gateway `to`'s access bridge
    /// (0-based); with [`Trigger::Dhcp`] the client also reconfirms its lease
    /// there at once.
    pub fn handover(&self, to: usize, trigger: Trigger) -> Result<()> {
        self.sw.exec(&[
            "ip",
            "link",
            "set",
            "ps",
            "master",
            &format!("br{}", to + 1),
        ])?;
        if trigger == Trigger::Dhcp {
            self.client().renew()?;
        }
        Ok(())
    }

    /// Address of the subscriber's s0 (none if unconfigured).
    pub fn sub_addr(&self) -> Result<Option<String>> {
        let o = self
            .sub
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", &self.opts.sub_if()])?;
        Ok(o.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .map(|s| s.to_string()))
    }

    /// `ping -c N` from `ns`; (sent, received).
    pub fn ping(ns: &Netns, dst: &str, count: u32) -> Result<(u32, u32, String)> {
        let mut c = ns.command("ping");
        c.args(["-c", &count.to_string(), "-i", "0.2", "-W", "2", dst]);
        let o = output_interruptible(c)?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (s, r) = ping_summary(&text).unwrap_or((count, 0));
        Ok((s, r, text))
    }

    /// Starts `tcpdump -c count` on `iface` of `ns` (stdout piped), listening
    /// when this returns.
    pub fn capture(ns: &Netns, iface: &str, count: u32, filter: &str) -> Result<Child> {
        let mut c = ns.command("tcpdump");
        c.args([
            "-l",
            "-n",
            "-t",
            "-i",
            iface,
            "-c",
            &count.to_string(),
            filter,
        ])
        .stdout(Stdio::piped());
        crate::capture::spawn_listening(c, &format!("tcpdump on {iface} in {}", ns.name))
    }

    /// An iperf3 server (one test) on the correspondent's `addr`.
    pub fn iperf_server_on(&mut self, addr: &str) -> Result<()> {
        // The server of an earlier test may still be going away.
        self.cn
            .wait_tcp_listen(5201, false, Duration::from_secs(5))?;
        let c = self
            .cn
            .command("iperf3")
            .args(["-s", "-1", "-B", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.bg.push(c);
        self.cn
            .wait_tcp_listen(5201, true, Duration::from_secs(5))
            .with_context(|| format!("iperf3 server on {addr}"))
    }

    /// An iperf3 TCP client in the subscriber towards `addr`.
    pub fn iperf_client_to(&self, addr: &str, secs: u32) -> Command {
        let mut c = self.sub.command("iperf3");
        c.args(["-c", addr, "-t", &secs.to_string(), "-J"]);
        c.args(["--connect-timeout", "3000"]);
        c
    }

    /// Runs a counted iperf3 transfer subscriber → correspondent.
    pub fn iperf(&mut self, secs: u32) -> Result<Iperf> {
        self.iperf_server_on(&CN.to_string())?;
        let o = output_interruptible(self.iperf_client_to(&CN.to_string(), secs))?;
        Iperf::parse(&o)
    }

    /// `show stats` text of a box, or the error (for failure messages).
    pub fn stats_text(&self, d: &Daemon) -> String {
        d.ctl(&["show", "stats"]).unwrap_or_else(|e| e.to_string())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.scrapers
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.scrapers.1.drain(..) {
            let _ = h.join();
        }
        for c in &mut self.bg {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.client = None;
        for d in self.access.iter_mut() {
            *d = None;
        }
        self.anchor_d = None;
        self.pass = None;
        // The daemons are gone: unpin what they left, then the bpffs itself.
        self.pins = None;
        // Namespaces go with the fields.
    }
}

/// A bpffs mounted for one lab (outside /sys: `ip netns exec` mounts a
/// fresh /sys, which would hide /sys/fs/bpf from the daemons). On drop every
/// pin directory in it is removed (links first, which detaches the
/// programs), then it is unmounted: lazily if it is still busy (a daemon
/// that was just killed may not have let go of it yet; two CI runs left a
/// mount behind that way), so that no mount outlives the lab.
pub struct BpfFs(PathBuf);
impl BpfFs {
    pub fn mount(p: &Path) -> Result<BpfFs> {
        std::fs::create_dir_all(p)?;
        crate::netns::sh(&["mount", "-t", "bpf", "bpf", p.to_str().unwrap()])?;
        Ok(BpfFs(p.to_path_buf()))
    }
}
impl Drop for BpfFs {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(&self.0) {
            for e in rd.flatten() {
                let _ = pmip_user::fastpath::unpin_all(&e.path());
            }
        }
        let busy = !Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if busy {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Shared key of access gateway `i` with the anchor (PMIPv4 SA).
fn sa_key(i: usize) -> String {
    format!("{:02x}", 0x11 * (i + 1)).repeat(16)
}

/// The ESP SAs between access gateway `i` and the anchor (PMIPv6), as
/// `ip xfrm state` and tshark's ESP SA table take them: AES-GCM-128 with a
/// 16-octet ICV, key = AES key + 4-octet salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabEsp {
    /// SPI and key of the SA access gateway → anchor.
    pub spi_up: u32,
    pub key_up: String,
    /// SPI and key of the SA anchor → access gateway.
    pub spi_down: u32,
    pub key_down: String,
}

pub fn esp_sa(i: usize) -> LabEsp {
    // 16 octets of AES key, then the salt: i, c0 de, direction.
    let k = |dir: u8| {
        let b = format!("{:02x}", 0x31 + 0x10 * i + usize::from(dir));
        format!("0x{}{i:02x}c0de{dir:02x}", b.repeat(16))
    };
    LabEsp {
        spi_up: 0x6000 + 0x10 * i as u32 + 1,
        key_up: k(1),
        spi_down: 0x6000 + 0x10 * i as u32 + 2,
        key_down: k(2),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Access,
    Anchor,
}

/// `peers[].esp` (or `insecure = true`) of the PMIPv6 peer between access
/// gateway `i` and the anchor, seen from `side`, and where its sequence
/// numbers are kept.
fn esp_toml(o: &LabOpts, dir: &Path, i: usize, side: Side) -> String {
    if o.proto != Proto::Pmipv6 {
        return String::new();
    }
    if o.insecure {
        return "insecure = true\n".into();
    }
    let e = esp_sa(i);
    let (spi_in, key_in, spi_out, key_out) = match side {
        Side::Access => (e.spi_down, &e.key_down, e.spi_up, &e.key_up),
        Side::Anchor => (e.spi_up, &e.key_up, e.spi_down, &e.key_down),
    };
    let name = match side {
        Side::Access => format!("mag{}", i + 1),
        Side::Anchor => "anchor".into(),
    };
    // [signaling] once per file: with the first peer's table, after it.
    let state = if side == Side::Access || i == 0 {
        format!(
            "\n[signaling]\nesp_state_file = \"{}\"\n",
            dir.join(format!("{name}.esp-seq")).display()
        )
    } else {
        String::new()
    };
    format!(
        "\n[peers.esp]\nspi_in = {spi_in}\nspi_out = {spi_out}\nalgorithm = \"rfc4106(gcm(aes))\"\nkey_in = \"{key_in}\"\nkey_out = \"{key_out}\"\n{state}"
    )
}

/// "N packets transmitted, M received".
pub fn ping_summary(text: &str) -> Option<(u32, u32)> {
    let l = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut w = l
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty());
    let sent: u32 = w.next()?.parse().ok()?;
    let rest: Vec<&str> = w.collect();
    let i = rest.iter().position(|s| *s == "received")?;
    let recv: u32 = rest.get(i.checked_sub(1)?)?.parse().ok()?;
    Some((sent, recv))
}

/// Largest gap (ms) between consecutive replies of `ping -D`, and the
/// timestamps around it.
pub fn ping_gap(text: &str) -> Option<(f64, f64, f64)> {
    let ts: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    ts.windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0, w[0], w[1]))
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
}

/// Largest gap (ms) between consecutive replies of `ping -D` where the gap
/// ends after `t0` and starts before `t0 + window` (the handover), and the
/// largest gap of the rest of the run (the noise floor).
pub fn ping_gap_around(text: &str, t0: f64, window: f64) -> Option<(f64, f64)> {
    let ts: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    let (mut near, mut rest) = (None::<f64>, 0.0f64);
    for w in ts.windows(2) {
        let g = (w[1] - w[0]) * 1000.0;
        if w[1] >= t0 && w[0] <= t0 + window {
            near = Some(near.map_or(g, |n| n.max(g)));
        } else {
            rest = rest.max(g);
        }
    }
    near.map(|n| (n, rest))
}

/// An iperf3 result.
#[derive(Clone, Debug, Default)]
pub struct Iperf {
    pub ok: bool,
    pub bytes_received: u64,
    pub gbps: f64,
    pub retransmits: u64,
    pub error: String,
}
impl Iperf {
    pub fn parse(o: &std::process::Output) -> Result<Iperf> {
        let text = String::from_utf8_lossy(&o.stdout);
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "iperf3 JSON ({}): {text}{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )
        })?;
        let end = &v["end"];
        Ok(Iperf {
            ok: o.status.success() && v.get("error").is_none(),
            bytes_received: end["sum_received"]["bytes"].as_u64().unwrap_or(0),
            gbps: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                / 1e9,
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            error: v["error"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// What makes the new gateway register the subscriber after a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Its data: the fast path reports frames from an unknown MAC, the agent
    /// registers it (no help from the client).
    Data,
    /// Its DHCP client reconfirming the lease (udhcpc SIGUSR1: a unicast
    /// REQUEST to the server identifier).
    Dhcp,
}

/// Result of a handover under load: the leases around it, and (through
/// `Deref`) what the stream and the ping saw.
#[derive(Clone, Debug, Default)]
pub struct HandoverResult {
    pub before: Lease,
    pub after: Lease,
    pub stream: UnderLoad,
}

impl std::ops::Deref for HandoverResult {
    type Target = UnderLoad;
    fn deref(&self) -> &UnderLoad {
        &self.stream
    }
}

/// Seconds since the epoch, now.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Time (seconds since the epoch) of the first line of a pmipd log at or
/// after `since` that contains `needle`. The log's timestamps are tracing's
/// RFC 3339 UTC ("2026-11-26T15:37:29.008315Z"); the date is taken from
/// `since` (a lab never runs across midnight... and if it does, None).
pub fn log_time_after(log: &Path, since: f64, needle: &str) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let day0 = (since / 86400.0).floor() * 86400.0;
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let ts = l.split_whitespace().next()?;
            let t = ts.split('T').nth(1)?.trim_end_matches('Z');
            let mut hms = t.split(':');
            let h: f64 = hms.next()?.parse().ok()?;
            let m: f64 = hms.next()?.parse().ok()?;
            let sec: f64 = hms.next()?.parse().ok()?;
            Some(day0 + h * 3600.0 + m * 60.0 + sec)
        })
        .find(|t| *t >= since - 0.0005)
}

impl Lab {
    /// Handover to gateway `to` while an iperf3 stream (`secs` long) and a
    /// 2 ms ping run from the subscriber to the correspondent; the move
    /// happens `at` into the stream.
    /// With [`Trigger::Data`] the client renews once the stream is over, to
    /// show the new gateway answers its DHCP with the same address.
    pub fn handover_under_load(
        &mut self,
        to: usize,
        secs: u32,
        at: Duration,
        trigger: Trigger,
    ) -> Result<HandoverResult> {
        let before = self
            .client()
            .events()
            .into_iter()
            .rev()
            .find(|l| l.event == "bound" || l.event == "renew")
            .unwrap_or_default();
        let renews = self.client().count("renew");
        let run = self.under_load(&CN.to_string(), secs, at, |l| {
            l.handover(to, trigger)?;
            if trigger == Trigger::Dhcp {
                l.client()
                    .wait_event("renew", renews + 1, Duration::from_secs(10))?;
            }
            Ok(())
        })?;
        if trigger == Trigger::Data {
            self.client().renew()?;
            self.client()
                .wait_event("renew", renews + 1, Duration::from_secs(10))?;
        }
        let after = self
            .client()
            .events()
            .into_iter()
            .rev()
            .find(|l| l.event == "renew")
            .unwrap_or_default();
        Ok(HandoverResult {
            before,
            after,
            stream: run,
        })
    }

    /// An iperf3 stream (`secs` long) and a 2 ms ping from the subscriber
    /// to the correspondent's `cn`; `at` into them, `mv` moves the
    /// subscriber. Both are killed if the move fails.
    pub(crate) fn under_load(
        &mut self,
        cn: &str,
        secs: u32,
        at: Duration,
        mv: impl FnOnce(&mut Lab) -> Result<()>,
    ) -> Result<UnderLoad> {
        self.iperf_server_on(cn)?;
        let iperf = self
            .iperf_client_to(cn, secs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut ping = self.sub.command("ping");
        if cn.contains(':') {
            ping.arg("-6");
        }
        let ping = ping
            .args(["-D", "-i", "0.002", "-W", "1", "-w", &secs.to_string(), cn])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Both are owned by threads that wait for them; kill by pid on error.
        let (ipid, ppid) = (iperf.id(), ping.id());
        let it = std::thread::spawn(move || iperf.wait_with_output());
        let pt = std::thread::spawn(move || ping.wait_with_output());
        let mut moved_at = 0.0;
        let r = interruptible_sleep(at).and_then(|()| {
            moved_at = epoch_now();
            mv(self)
        });
        if r.is_err() {
            for p in [ipid, ppid] {
                // SAFETY: our children, still unreaped (their threads wait).
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
        }
        let io = it.join().map_err(|_| anyhow!("iperf thread"))??;
        let po = pt.join().map_err(|_| anyhow!("ping thread"))??;
        r?;
        let ptext = String::from_utf8_lossy(&po.stdout).into_owned();
        let (ping_sent, ping_received) = ping_summary(&ptext).unwrap_or((0, 0));
        let (gap_ms, noise_gap_ms) =
            ping_gap_around(&ptext, moved_at, 0.3).unwrap_or((f64::NAN, f64::NAN));
        Ok(UnderLoad {
            iperf: Iperf::parse(&io)?,
            gap_ms,
            noise_gap_ms,
            ping_sent,
            ping_received,
            moved_at,
        })
    }
}

/// What [`Lab::under_load`] measured: the stream and the ping across a move.
#[derive(Clone, Debug, Default)]
pub struct UnderLoad {
    pub iperf: Iperf,
    /// Largest gap between ping replies across the move (ending after it,
    /// starting within 300 ms of it).
    pub gap_ms: f64,
    /// Largest gap elsewhere in the run (scheduling noise on a busy machine).
    pub noise_gap_ms: f64,
    pub ping_sent: u32,
    pub ping_received: u32,
    /// Wall-clock time of the move (seconds since the epoch).
    pub moved_at: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lab's bpffs that is still busy when the lab goes (here: a
    /// directory in it held open) is unmounted all the same, and its mount
    /// point removed.
    #[test]
    fn a_busy_bpffs_is_unmounted() {
        if !crate::netns::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let p = std::env::temp_dir().join(format!("pmip-bpffs-busy-{}", std::process::id()));
        let mounted = |p: &Path| {
            std::fs::read_to_string("/proc/self/mounts")
                .unwrap()
                .lines()
                .any(|l| l.split(' ').nth(1) == p.to_str())
        };
        let fs = BpfFs::mount(&p).unwrap();
        assert!(mounted(&p));
        let held = std::fs::File::open(&p).unwrap();
        drop(fs);
        assert!(!mounted(&p), "{} is still mounted", p.display());
        assert!(!p.exists(), "{} is still there", p.display());
        drop(held);
    }

    #[test]
    fn ping_output_parsed() {
        let t = "PING 203.0.113.2 (203.0.113.2) 56(84) bytes of data.
[1700000000.000000] 64 bytes from 203.0.113.2: icmp_seq=1 ttl=63 time=0.1 ms
[1700000000.002000] 64 bytes from 203.0.113.2: icmp_seq=2 ttl=63 time=0.1 ms
[1700000000.050500] 64 bytes from 203.0.113.2: icmp_seq=26 ttl=63 time=0.1 ms
[1700000000.052500] 64 bytes from 203.0.113.2: icmp_seq=27 ttl=63 time=0.1 ms

--- 203.0.113.2 ping statistics ---
27 packets transmitted, 4 received, 85.1852% packet loss, time 60ms
";
        assert_eq!(ping_summary(t), Some((27, 4)));
        let (gap, a, b) = ping_gap(t).unwrap();
        assert!((gap - 48.5).abs() < 0.01, "{gap}");
        assert_eq!((a, b), (1700000000.002, 1700000000.0505));
        let t2 = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms";
        assert_eq!(ping_summary(t2), Some((3, 0)));
        assert_eq!(ping_summary("garbage"), None);
        assert_eq!(ping_gap("no replies"), None);
        // Around t0 = ...0.01: the 48.5 ms gap; elsewhere 2 ms.
        let (near, rest) = ping_gap_around(t, 1700000000.01, 0.5).unwrap();
        assert!(
            (near - 48.5).abs() < 0.01 && (rest - 2.0).abs() < 0.01,
            "{near} {rest}"
        );
        // Long after the run: no reply spans it.
        assert_eq!(ping_gap_around(t, 1700000100.0, 0.5), None);
    }

    #[test]
    fn log_timestamps_parsed() {
        let dir = TempDir::new("logt").unwrap();
        let log = dir.0.join("x.log");
        std::fs::write(
            &log,
            "2026-11-26T15:37:29.008315Z  INFO pmip_user::daemon: attach nai=a\n\
             2026-11-26T15:37:39.500000Z  INFO pmip_user::daemon: registered nai=a\n\
             2026-11-26T15:37:40.250000Z  INFO pmip_user::daemon: registered nai=b\n",
        )
        .unwrap();
        // 2026-11-26T15:37:30Z
        let since = 1_795_707_450.0;
        assert_eq!(
            log_time_after(&log, since, "registered"),
            Some(1_795_707_459.5)
        );
        assert_eq!(log_time_after(&log, since, "attach"), None);
        assert_eq!(
            log_time_after(&log, since + 10.0, "registered"),
            Some(1_795_707_460.25)
        );
    }

    #[test]
    fn udhcpc_event_line_parsed() {
        let l = Lease::parse("bound ip=10.64.0.2 mask=24 subnet=255.255.255.0 router=10.64.0.1 lease=120 mtu=1472 dns= serverid=10.64.0.1");
        assert_eq!(l.event, "bound");
        assert_eq!(l.ip, "10.64.0.2");
        assert_eq!(l.mask, "24");
        assert_eq!(l.router, "10.64.0.1");
        assert_eq!(l.lease, "120");
        assert_eq!(l.mtu, "1472");
        assert_eq!(l.dns, "");
        assert_eq!(l.serverid, "10.64.0.1");
        assert_eq!(
            Lease::parse("deconfig ip= mask="),
            Lease {
                event: "deconfig".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn generated_configs_are_valid() {
        use pmip_user::config::Config;
        let dir = Path::new("/tmp/pmip-lab-cfg");
        for proto in [Proto::Pmipv6, Proto::Pmipv4] {
            for detach in [
                None,
                Some(DetachOpts {
                    interval_s: 2,
                    timeout_s: 1,
                    retries: 1,
                }),
            ] {
                let mut o = LabOpts::new(proto, "cfg");
                o.detach = detach;
                o.ipv6_transport = proto == Proto::Pmipv6 && detach.is_some();
                let mut all = vec![("anchor".to_string(), anchor_config(&o, dir, 2))];
                all.extend((0..2).map(|i| (format!("access{i}"), access_config(&o, dir, i))));
                for (name, c) in all {
                    let cfg = Config::from_toml_str(&c)
                        .unwrap_or_else(|e| panic!("{proto:?} {name}:\n{c}\n{e}"));
                    assert_eq!(cfg.timers.lifetime.as_secs(), u64::from(o.lifetime_s));
                    if name != "anchor" {
                        assert_eq!(cfg.detach.enabled, detach.is_some(), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn generated_pmipv6_configs_protect_the_signaling() {
        use pmip_user::config::Config;
        let dir = Path::new("/tmp/pmip-lab-cfg");
        let mut o = LabOpts::new(Proto::Pmipv6, "cfg");
        o.insecure = false;
        let anchor = Config::from_toml_str(&anchor_config(&o, dir, 2)).unwrap();
        for i in 0..2 {
            let mag = Config::from_toml_str(&access_config(&o, dir, i)).unwrap();
            let (m, a) = (
                mag.peers[0].esp.clone().unwrap(),
                anchor.peers[i].esp.clone().unwrap(),
            );
            assert_eq!((m.inbound, m.outbound), (a.outbound, a.inbound));
            assert_eq!(
                mag.signaling.esp_state_file,
                dir.join(format!("mag{}.esp-seq", i + 1))
            );
        }
        assert_eq!(anchor.signaling.esp_state_file, dir.join("anchor.esp-seq"));
        o.insecure = true;
        let mag = Config::from_toml_str(&access_config(&o, dir, 0)).unwrap();
        assert!(mag.peers[0].insecure && mag.peers[0].esp.is_none());
    }
}
