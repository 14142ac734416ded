//! Attaches per second through pmipd with RADIUS authorization (issue 14, BENCHMARKS.md).
//! Not part of the suite (it loads the machine); run in release:
//!
//! ```text
//! cargo test --release -p pmip-tests --test aaa_attach_bench -- --ignored --nocapture
//! ```
//! `PMIP_AAA_ATTACHES` (default 20000) subscribers, `PMIP_AAA_WINDOW` DISCOVERs
//! outstanding (default 512), `PMIP_AAA_ACCOUNTING=1` to add an Accounting-Start per attach.
//!
//! What one attach is: a DHCP DISCOVER from a new MAC reaches `pmipd run` (MAG role) on its
//! access link → Access-Request to FreeRADIUS → Access-Accept → PBU to a second `pmipd run`
//! (LMA role) → PBA → the binding in the fast path's maps → the DHCP OFFER back on the link.
//! The generator plays the subscribers on a raw socket (a window of DISCOVERs outstanding,
//! each resent after 3 s without an OFFER) and counts OFFERs. The figure that matters is
//! attaches per CPU-second of the MAG's pmipd ("on one core"), from /proc.
//!
//! ```text
//!  gen [g0] ─── [acc0] mag (pmipd) [core0] ─── [core0] lma (pmipd), FreeRADIUS on .20
//! ```
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pmip_tests::cpu::env_or;
use pmip_tests::lab::{ensure_binaries, Daemon};
use pmip_tests::netns::{is_root, veth, Netns};
use pmip_tests::packet::{eth, ipv4, udp};
use pmip_tests::radius::{bulk_users, FreeRadius, RadiusConf};
use pmip_tests::TempDir;

const SECRET: &str = "bench-secret";

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x00, 0x00, b[1], b[2], b[3]]
}

/// A DHCPDISCOVER from `m` (RFC 2131 §2, broadcast flag clear).
fn discover(m: [u8; 6], xid: u32) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 4]); // secs, flags
    b.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
    b.extend_from_slice(&m);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    let ip = ipv4(
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
        17,
        64,
        false,
        &udp(68, 67, &b),
    );
    let mut f = eth([0xff; 6], m, 0, 0x0800);
    f.extend_from_slice(&ip);
    f
}

/// The client MAC of a DHCPOFFER frame, if it is one.
fn offer_for(f: &[u8]) -> Option<[u8; 6]> {
    // Ethernet 14, IPv4 without options 20, UDP 8, then BOOTP.
    let ip = f.get(14..)?;
    if f.get(12..14)? != [0x08, 0x00] || ip.first()? & 0x0f != 5 || *ip.get(9)? != 17 {
        return None;
    }
    let u = ip.get(20..)?;
    if u.get(2..4)? != [0, 68] {
        return None;
    }
    let d = u.get(8..)?;
    if *d.first()? != 2 || d.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut opts = d.get(240..)?;
    while let [t, rest @ ..] = opts {
        match t {
            255 => return None,
            0 => opts = rest,
            _ => {
                let l = *rest.first()? as usize;
                let v = rest.get(1..1 + l)?;
                if *t == 53 {
                    return (v == [2]).then(|| d[28..34].try_into().ok()).flatten();
                }
                opts = &rest[1 + l..];
            }
        }
    }
    None
}

/// An AF_PACKET socket on `ifname` seeing every frame (non-blocking).
fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    let ifindex = pmip_user::sys::ifindex(ifname)?;
    let fd = pmip_user::sys::socket::packet_socket(ifindex, libc::ETH_P_ALL as u16)?;
    pmip_user::sys::socket::grow_receive_buffer(&fd, 16 << 20);
    Ok(fd)
}

struct Load {
    n: u32,
    window: u32,
}

/// Plays `n` subscribers: a window of DISCOVERs out, OFFERs counted. Returns (time from the
/// first DISCOVER to the last OFFER, DISCOVERs resent).
fn generate(fd: &OwnedFd, l: &Load) -> Result<(Duration, u64)> {
    let send = |f: &[u8]| {
        // SAFETY: a valid buffer and its length on a bound socket.
        unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) }
    };
    let mut sent_at: HashMap<[u8; 6], (u32, Instant)> = HashMap::new();
    let (mut next, mut done, mut resent) = (0u32, 0u32, 0u64);
    let mut buf = vec![0u8; 2048];
    let t0 = Instant::now();
    while done < l.n {
        while next < l.n && (next - done) < l.window {
            let m = mac(next);
            if send(&discover(m, next)) < 0 {
                break; // the socket's queue is full: read first
            }
            sent_at.insert(m, (next, Instant::now()));
            next += 1;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 10) };
        loop {
            // SAFETY: a valid buffer and its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            if let Some(m) = offer_for(&buf[..n as usize]) {
                if sent_at.remove(&m).is_some() {
                    done += 1;
                }
            }
        }
        let now = Instant::now();
        for (m, (i, at)) in sent_at.iter_mut() {
            if now.duration_since(*at) > Duration::from_secs(3) {
                send(&discover(*m, *i));
                *at = now;
                resent += 1;
            }
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("{done} of {} attaches after 300 s", l.n);
        }
    }
    Ok((t0.elapsed(), resent))
}

fn mag_config(dir: &Path, acct: bool) -> String {
    format!(
        r#"role = "access"
protocol = "pmipv6"
node_id = "mag"
[control]
socket = "{dir}/mag.sock"
[fastpath]
attach_mode = "generic"
[interfaces]
core = "core0"
[[interfaces.access]]
name = "acc0"
gateway = "10.128.0.1/12"
default_profile = "default"
[addresses]
ipv4 = "10.255.0.1"
[[peers]]
# bulk_users() names it (Cisco-AVPair home-lma=lma1).
name = "lma1"
address = "10.255.0.10"
# The bench measures authorization, not ESP (a namespace lab, no attacker).
insecure = true
[timers]
lifetime_s = 3600
[detach]
enabled = false
[dhcp]
offer_timeout_s = 300
# Sized for the bench's rate (the defaults are a flood guard of 50
# attempts/s and 64 pending attaches): an operator sizes them for the
# attach rate the gateway is meant to take.
[admission]
max_pending_per_link = 100000
max_pending = 100000
attempts_per_s_per_link = 1000000
attempts_per_s = 1000000
new_mac_reports_per_s = 1000000
[[profiles]]
name = "default"
anchor = "lma1"
[aaa]
nas_identifier = "mag"
timeout_s = 2
retransmit = 3
queue_limit = 1000000
[[aaa.servers]]
address = "10.255.0.20"
secret = "{SECRET}"
[aaa.accounting]
enabled = {acct}
# Nothing durable, and nothing written to the host's /var/lib/pmip.
[store]
backend = "memory"
"#,
        dir = dir.display()
    )
}

fn lma_config(dir: &Path) -> String {
    format!(
        r#"role = "anchor"
protocol = "pmipv6"
node_id = "lma"
[control]
socket = "{dir}/lma.sock"
[fastpath]
attach_mode = "generic"
[interfaces]
core = "core0"
[addresses]
ipv4 = "10.255.0.10"
[[peers]]
name = "mag"
address = "10.255.0.1"
insecure = true
[timers]
lifetime_s = 3600
[[pools]]
name = "home"
prefix = "10.128.0.0/12"
gateway = "10.128.0.1"
[store]
backend = "memory"
"#,
        dir = dir.display()
    )
}

/// utime + stime of a process.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

#[test]
#[ignore]
fn attaches_per_second_with_radius_authorization() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    ensure_binaries()?;
    let load = Load {
        n: env_or("PMIP_AAA_ATTACHES", 20_000) as u32,
        window: env_or("PMIP_AAA_WINDOW", 512) as u32,
    };
    let acct = env_or("PMIP_AAA_ACCOUNTING", 0) == 1;
    let dir = TempDir::new("aaa-bench");
    let (g, m, a) = (Netns::new("abg")?, Netns::new("abm")?, Netns::new("aba")?);
    veth(&g, "g0", &m, "acc0")?;
    veth(&m, "core0", &a, "core0")?;
    m.exec(&["ip", "addr", "add", "10.128.0.1/12", "dev", "acc0"])?;
    m.exec(&["ip", "addr", "add", "10.255.0.1/24", "dev", "core0"])?;
    for x in ["10.255.0.10/24", "10.255.0.20/24"] {
        a.exec(&["ip", "addr", "add", x, "dev", "core0"])?;
    }
    for ns in [&g, &m, &a] {
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
    }
    let r = FreeRadius::start(
        &a,
        &dir.path().join("radius"),
        RadiusConf {
            listen: "10.255.0.20".parse()?,
            auth_port: 1812,
            acct_port: 1813,
            clients: vec![("10.255.0.1".into(), SECRET.into())],
            users: bulk_users(),
            threads: 2,
        },
    )?;
    std::fs::write(dir.path().join("lma.toml"), lma_config(dir.path()))?;
    std::fs::write(dir.path().join("mag.toml"), mag_config(dir.path(), acct))?;
    let lma = Daemon::start(
        &a,
        "lma",
        &dir.path().join("lma.toml"),
        &dir.path().join("lma.sock"),
        "warn",
    )?;
    let mag = Daemon::start(
        &m,
        "mag",
        &dir.path().join("mag.toml"),
        &dir.path().join("mag.sock"),
        "warn",
    )?;
    let pids = (mag.pid().context("pid")?, lma.pid().context("pid")?);
    let (mag0, lma0, rad0) = (cpu_of(pids.0), cpu_of(pids.1), r.cpu_time());
    let n = f64::from(load.n);
    let (took, resent) = g.run_in(move || -> Result<_> {
        let fd = packet_socket("g0")?;
        generate(&fd, &load)
    })??;
    let d =
        |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| a - b).unwrap_or_default();
    let (mag_cpu, lma_cpu, rad_cpu) = (
        d(cpu_of(pids.0), mag0),
        d(cpu_of(pids.1), lma0),
        d(r.cpu_time(), rad0),
    );
    let aaa = mag.ctl(&["show", "aaa"])?;
    // Where DISCOVERs were lost, if any were (the DHCP socket's buffer).
    let snmp = m.exec(&["cat", "/proc/net/snmp"])?;
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    eprintln!(
        "{n} attaches (DISCOVER → Access-Accept → PBU/PBA → OFFER){} in {took:.2?}: {:.0}/s wall clock; \
         MAG pmipd CPU {mag_cpu:.2?} ({:.0} attaches per CPU-second), LMA pmipd CPU {lma_cpu:.2?}, \
         FreeRADIUS CPU {rad_cpu:.2?}; {resent} DISCOVERs resent",
        if acct { " + Accounting-Start" } else { "" },
        n / took.as_secs_f64(),
        n / mag_cpu.as_secs_f64().max(1e-9),
    );
    eprintln!("{aaa}");
    eprintln!("MAG's UDP counters:\n{}", udp.join("\n"));
    Ok(())
}
