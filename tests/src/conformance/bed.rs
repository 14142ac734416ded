//! Test beds for the conformance suite: a real `pmipd run` in one network
//! namespace and the test playing its peer from another, with raw sockets
//! (IPv6 raw Mobility Header, UDP 5436, UDP 434) and a capture that tshark
//! decodes at the end.
//!
//! ```text
//! anchor bed:  [pmipd anchor: core0 .10] ── [p0: .1 .2 .3  the test's MAGs/PMAs]
//! access bed:  [sub: s0 udhcpc] ── [acc0 pmipd access core0 .1] ── [l0 .10: the test's LMA/HA]
//! ```
//! Addresses are 10.255.0.0/24 and fd00:255::/64 on veths inside namespaces
//! this process creates (names carry the pid), removed on drop.
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lab::{self, Daemon, Dhcpc, TempDir, GW_ADDR, GW_MAC, SUB_MAC};
use crate::netns::{veth, Netns};

/// Which protocol and transport a case runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    /// PMIPv6 over IPv6: raw Mobility Header (next header 135).
    Mh6,
    /// PMIPv6 over IPv4: Mobility Header in UDP 5436 (RFC 5844 §4).
    Udp5436,
    /// PMIPv4: registration over UDP 434.
    Mip4,
}

impl T {
    fn v6(self) -> bool {
        self == T::Mh6
    }
    fn protocol(self) -> &'static str {
        if self == T::Mip4 {
            "pmipv4"
        } else {
            "pmipv6"
        }
    }
    /// tcpdump filter for the signaling.
    fn filter(self) -> &'static str {
        match self {
            T::Mh6 => "ip6 proto 135",
            T::Udp5436 => "udp port 5436",
            T::Mip4 => "udp port 434",
        }
    }
    /// The node's address: `i` 1..=3 for access gateways, 10 for the anchor.
    pub fn addr(self, i: u8) -> IpAddr {
        if self.v6() {
            // The configs write "fd00:255::{i}": the digits are hex.
            let g = u16::from_str_radix(&i.to_string(), 16).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0x255, 0, 0, 0, 0, 0, g))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 255, 0, i))
        }
    }
}

/// The FA-HA key of PMA `i` with the HA (hex in the configs).
pub fn sa(i: u8) -> crate::conformance::mip4::Sa {
    crate::conformance::mip4::Sa {
        spi: 255 + u32::from(i),
        key: vec![0x11 * i; 16],
    }
}

fn sa_toml(i: u8) -> String {
    let s = sa(i);
    let key: String = s.key.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "spi = {}\nalgorithm = \"hmac-md5\"\nkey = \"{key}\"\n",
        s.spi
    )
}

/// The peer's end: a socket inside the peer namespace.
pub struct PeerSock {
    sock: Sock,
    pub local: IpAddr,
}

enum Sock {
    Udp(UdpSocket),
    Mh(OwnedFd),
}

/// A received datagram.
#[derive(Clone, Debug)]
pub struct Rx {
    pub from: IpAddr,
    pub port: u16,
    pub bytes: Vec<u8>,
}

fn raw_mh(local: Ipv6Addr) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 135) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero sockaddr_in6 is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = local.octets();
    // SAFETY: valid pointer and length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

impl PeerSock {
    /// Opens the peer's socket at `local` inside `ns`: a raw Mobility Header
    /// socket (the kernel computes and checks the MH checksum, RFC 6275
    /// §6.1.1), or UDP on `port`.
    pub fn open(ns: &Netns, local: IpAddr, port: u16) -> Result<PeerSock> {
        let sock = ns.run_in(move || -> std::io::Result<Sock> {
            Ok(match local {
                IpAddr::V6(a) => Sock::Mh(raw_mh(a)?),
                IpAddr::V4(a) => Sock::Udp(UdpSocket::bind(SocketAddrV4::new(a, port))?),
            })
        })??;
        Ok(PeerSock { sock, local })
    }

    /// Sends `bytes` to `to` (UDP: port `port`).
    pub fn send(&self, to: IpAddr, port: u16, bytes: &[u8]) -> Result<()> {
        match (&self.sock, to) {
            (Sock::Udp(s), IpAddr::V4(a)) => {
                s.send_to(bytes, SocketAddrV4::new(a, port))?;
            }
            (Sock::Mh(fd), IpAddr::V6(a)) => {
                // SAFETY: all-zero sockaddr_in6 is valid.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                // SAFETY: valid buffer and address.
                let n = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                };
                if n < 0 {
                    bail!("sendto {a}: {}", std::io::Error::last_os_error());
                }
            }
            _ => bail!("address family of {to} does not match the socket"),
        }
        Ok(())
    }

    /// The raw Mobility Header socket (an IPv6 peer's), for the socket
    /// options a test sets on it.
    pub fn mh_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.sock {
            Sock::Mh(fd) => Some(fd.as_fd()),
            Sock::Udp(_) => None,
        }
    }

    /// Replies to where `rx` came from.
    pub fn reply(&self, rx: &Rx, bytes: &[u8]) -> Result<()> {
        self.send(rx.from, rx.port, bytes)
    }

    /// The next datagram within `within`, or None. A signal (EINTR) does
    /// not end the wait early: only the time running out does.
    pub fn recv(&self, within: Duration) -> Option<Rx> {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.recv_once(left) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && !left.is_zero() => {}
                r => return r.ok(),
            }
        }
    }

    fn recv_once(&self, within: Duration) -> std::io::Result<Rx> {
        let mut buf = vec![0u8; 4096];
        match &self.sock {
            Sock::Udp(s) => {
                s.set_read_timeout(Some(within.max(Duration::from_millis(1))))?;
                let (n, from) = s.recv_from(&mut buf)?;
                buf.truncate(n);
                Ok(Rx {
                    from: from.ip(),
                    port: from.port(),
                    bytes: buf,
                })
            }
            Sock::Mh(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, within.as_millis().min(60_000) as i32) };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if r == 0 {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                let (from, n) = pmip_user::sys::socket::recv_from_v6(fd.as_fd(), &mut buf)?;
                buf.truncate(n);
                let from = IpAddr::V6(from);
                Ok(Rx {
                    from,
                    port: 0,
                    bytes: buf,
                })
            }
        }
    }

    /// The first datagram within `within` for which `pred` holds; others are dropped.
    pub fn recv_where(&self, within: Duration, pred: impl Fn(&Rx) -> bool) -> Option<Rx> {
        let end = Instant::now() + within;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            let rx = self.recv(left)?;
            if pred(&rx) {
                return Some(rx);
            }
        }
    }

    /// Drops what arrives until `quiet` passes with nothing.
    pub fn drain(&self, quiet: Duration) -> Vec<Rx> {
        let mut v = Vec::new();
        while let Some(r) = self.recv(quiet) {
            v.push(r);
        }
        v
    }
}

/// tcpdump on the peer's link, decoded by tshark at the end.
pub struct Capture {
    child: Child,
    pub file: PathBuf,
    /// Source address whose frames must decode without expert warnings (the daemon).
    daemon: IpAddr,
}

impl Capture {
    /// Starts tcpdump and returns once it listens.
    pub fn start(ns: &Netns, iface: &str, file: PathBuf, t: T, daemon: IpAddr) -> Result<Capture> {
        let mut child = ns
            .command("tcpdump")
            .args(["-i", iface, "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(t.filter())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning tcpdump")?;
        let err = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if l.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .context("tcpdump did not start listening")?;
        Ok(Capture {
            child,
            file,
            daemon,
        })
    }

    /// [`check`](Self::check), then tshark's decoding of `fields` in every
    /// frame of the capture (one row a frame; empty without tshark): what
    /// an independent decoder reads in what we sent.
    pub fn check_fields(self, min: usize, fields: &[&str]) -> Result<Vec<Vec<String>>> {
        let file = self.file.clone();
        self.check(min)?;
        if !crate::pcap::have_tshark() {
            return Ok(vec![]);
        }
        crate::pcap::fields(&file, fields)
    }

    /// Waits for `min` frames on disk, stops tcpdump and has tshark decode the
    /// file. Fails on a malformed frame or an expert warning/error in any
    /// frame the daemon sent. Returns tshark's one-line summaries.
    pub fn check(mut self, min: usize) -> Result<Vec<String>> {
        let end = Instant::now() + Duration::from_secs(5);
        while crate::pcap::records(&self.file) < min && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !crate::pcap::have_tshark() {
            eprintln!("tshark missing: capture not decoded");
            return Ok(vec![]);
        }
        let src = match self.daemon {
            IpAddr::V4(a) => format!("ip.src=={a}"),
            IpAddr::V6(a) => format!("ipv6.src=={a}"),
        };
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-T", "fields", "-E", "separator=|"])
            .args([
                "-e",
                "frame.number",
                "-e",
                "_ws.col.Info",
                "-e",
                "_ws.expert.severity",
            ])
            .args([
                "-e",
                "_ws.malformed",
                "-e",
                "_ws.expert.message",
                "-Y",
                &src,
            ])
            .output()
            .context("running tshark")?;
        if !o.status.success() {
            bail!("tshark: {}", String::from_utf8_lossy(&o.stderr));
        }
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut rows = Vec::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() < 4 {
                continue;
            }
            if !f[3].is_empty() {
                bail!("tshark: malformed frame from the daemon: {l}");
            }
            let messages: Vec<&str> = f.get(4).map_or(Vec::new(), |m| m.split(',').collect());
            for (i, sev) in f[2].split(',').filter(|s| !s.is_empty()).enumerate() {
                let v = u32::from_str_radix(sev.trim_start_matches("0x"), 16)
                    .or_else(|_| sev.parse::<u32>())
                    .unwrap_or(0);
                // RFC 5213 §5.3.6: a PBA answering a PBU without a Mobile
                // Node Identifier carries one "set to a zero length
                // identifier"; Wireshark holds the option to RFC 4283's
                // minimum of one octet and warns — the RFC wins.
                let zero_length_mn_id = messages.get(i).is_some_and(|m| {
                    m.starts_with("Mobile Node Identifier (with option length = 1 byte")
                });
                if v >= 0x0060_0000 && !zero_length_mn_id {
                    bail!("tshark: expert warning in a frame from the daemon: {l}");
                }
            }
            rows.push(f[1].to_string());
        }
        if rows.is_empty() && min > 0 {
            bail!(
                "tshark decoded no frame from the daemon ({} frames on disk)",
                crate::pcap::records(&self.file)
            );
        }
        Ok(rows)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_all(ns: &Netns, cmds: &[String]) -> Result<()> {
    for c in cmds {
        let a: Vec<&str> = c.split_whitespace().collect();
        ns.exec(&a).with_context(|| format!("{}: {c}", ns.name))?;
    }
    Ok(())
}

fn common_head(t: T, role: &str, dir: &Path, me: u8, iface_extra: &str) -> String {
    let mut c = format!(
        "role = \"{role}\"\nprotocol = \"{}\"\nnode_id = \"conf-{role}\"\n\n[control]\nsocket = \"{}\"\n\n\
         [fastpath]\nattach_mode = \"generic\"\n\n[interfaces]\ncore = \"core0\"\n",
        t.protocol(),
        dir.join(format!("{role}.sock")).display()
    );
    if role == "anchor" {
        // A correspondent side of its own: core0 then carries only signaling and tunnels.
        c.push_str("correspondent = [\"cn0\"]\n");
    }
    if role == "access" {
        c.push_str(&format!(
            "\n[[interfaces.access]]\nname = \"acc0\"\ngateway = \"{GW_ADDR}/24\"\nmtu = 1500\ndefault_profile = \"default\"\n{iface_extra}"
        ));
    }
    // Nothing of a run survives it (what these cases were written for).
    c.push_str("\n[store]\nbackend = \"memory\"\n");
    c.push_str(&format!("\n[addresses]\nipv4 = \"10.255.0.{me}\"\n"));
    if t.v6() {
        c.push_str(&format!("ipv6 = \"fd00:255::{me}\"\n"));
    }
    // The tests play the peers with plain sockets and check the rejections
    // of strangers on the wire (RFC 5213 §5.3.1 status 154).
    c.push_str("\n[signaling]\nunknown_peers = \"answer\"\n");
    // PMIP_TEST_XDP_SOCKET=1: the anchor reads IPv6 Mobility Headers from
    // AF_XDP sockets (`signaling.xdp_socket`), every case through them, and
    // sends its PBAs through them (`xdp_socket_send`) once a MAG resolves.
    if role == "anchor"
        && t == T::Mh6
        && std::env::var("PMIP_TEST_XDP_SOCKET").is_ok_and(|v| v == "1")
    {
        c.push_str(XDP_SOCKET);
        c.push_str("xdp_socket_send = true\n");
    }
    c
}

/// The `[signaling]` line that has an anchor read IPv6 Mobility Headers
/// from AF_XDP sockets.
pub const XDP_SOCKET: &str = "xdp_socket = true\n";

/// PMIPv6 peers of the bed signal without ESP (the tests play them with
/// plain sockets); PMIPv4 ones carry their FA-HA SA.
fn peer_security(t: T, i: u8) -> String {
    if t == T::Mip4 {
        sa_toml(i)
    } else {
        "insecure = true\n".into()
    }
}

/// Short timers; `extra` lines go into `[timers]` (e.g. heartbeat_interval_s = 1).
fn timers(t: T, extra: &str) -> String {
    // RFC 5944 §3.6.3: a PMA's Registration Requests at least 1 s apart.
    let initial = if t == T::Mip4 { 1000 } else { 300 };
    let mut c = format!(
        "\n[timers]\nlifetime_s = 40\nretx_initial_ms = {initial}\nretx_max_ms = 1200\nmax_retransmissions = 3\n"
    );
    if t != T::Mip4 {
        c.push_str("refresh_s = 20\n");
    }
    c.push_str(extra);
    c
}

/// The anchor's configuration: MAG/PMA peers at .1 and .2 (.3 is not configured).
pub fn anchor_config(t: T, dir: &Path, extra_timers: &str, tail: &str) -> String {
    let mut c = common_head(t, "anchor", dir, 10, "");
    for i in 1..=2u8 {
        c.push_str(&format!(
            "\n[[peers]]\nname = \"gw{i}\"\naddress = \"{}\"\n",
            t.addr(i)
        ));
        c.push_str(&peer_security(t, i));
    }
    c.push_str(&timers(t, extra_timers));
    c.push_str(
        "\n[[pools]]\nname = \"home\"\nprefix = \"10.64.0.0/24\"\ngateway = \"10.64.0.1\"\n",
    );
    c.push_str(tail);
    c
}

/// Extra lines for the access gateway's configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessExtra<'a> {
    /// Into `[timers]`.
    pub timers: &'a str,
    /// Into the anchor's `[[peers]]` entry.
    pub peer: &'a str,
    /// Into the `[[interfaces.access]]` entry.
    pub iface: &'a str,
    /// Into the default `[[profiles]]` entry.
    pub profile: &'a str,
}

/// The access gateway's configuration: one access link, the anchor at .10.
pub fn access_config(t: T, dir: &Path, x: AccessExtra) -> String {
    let mut c = common_head(t, "access", dir, 1, x.iface);
    c.push_str(&format!(
        "\n[[peers]]\nname = \"anchor\"\naddress = \"{}\"\n{}",
        t.addr(10),
        x.peer
    ));
    c.push_str(&peer_security(t, 1));
    c.push_str(&timers(t, x.timers));
    c.push_str(
        "\n[detach]\nenabled = false\n\n[[profiles]]\nname = \"default\"\nanchor = \"anchor\"\n",
    );
    c.push_str(x.profile);
    c
}

fn check_prereqs() -> bool {
    if !crate::netns::is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    for p in ["busybox", "tcpdump", "ethtool"] {
        if !lab::have(p) {
            eprintln!("skipped: needs {p}");
            return false;
        }
    }
    true
}

/// Our anchor (LMA/HA) in one namespace; the test plays MAGs/PMAs from another.
pub struct AnchorBed {
    pub daemon: Daemon,
    pub t: T,
    pub peer_ns: Netns,
    pub anchor_ns: Netns,
    pub dir: TempDir,
}

impl AnchorBed {
    /// None when the machine cannot run it (not root, tools missing).
    pub fn start(t: T, tag: &str, extra_timers: &str, tail: &str) -> Result<Option<AnchorBed>> {
        Self::start_edit(t, tag, extra_timers, tail, &|c| c)
    }

    /// As `start`, with `edit` applied to the configuration text.
    pub fn start_edit(
        t: T,
        tag: &str,
        extra_timers: &str,
        tail: &str,
        edit: &dyn Fn(String) -> String,
    ) -> Result<Option<AnchorBed>> {
        if !check_prereqs() {
            return Ok(None);
        }
        lab::ensure_binaries()?;
        let dir = TempDir::new(tag)?;
        let anchor_ns = Netns::new(&format!("{tag}a"))?;
        let peer_ns = Netns::new(&format!("{tag}p"))?;
        veth(&anchor_ns, "core0", &peer_ns, "p0")?;
        run_all(
            &anchor_ns,
            &[
                "ip addr add 10.255.0.10/24 dev core0".into(),
                "ip link add cn0 type veth peer name cnp".into(),
                "ip link set cn0 up".into(),
                "ip link set cnp up".into(),
                "ip addr add 203.0.113.1/24 dev cn0".into(),
            ],
        )?;
        let mut p = vec!["sysctl -qw net.ipv6.conf.all.disable_ipv6=0".to_string()];
        for i in 1..=3 {
            p.push(format!("ip addr add 10.255.0.{i}/24 dev p0"));
            p.push(format!("ip -6 addr add fd00:255::{i}/64 dev p0 nodad"));
        }
        run_all(&peer_ns, &p)?;
        run_all(
            &anchor_ns,
            &["ip -6 addr add fd00:255::10/64 dev core0 nodad".into()],
        )?;
        let cfg = dir.0.join("anchor.toml");
        std::fs::write(&cfg, edit(anchor_config(t, &dir.0, extra_timers, tail)))?;
        let sock = dir.0.join("anchor.sock");
        let daemon = Daemon::start(&anchor_ns, "anchor", &cfg, &sock, "info")?;
        Ok(Some(AnchorBed {
            daemon,
            t,
            peer_ns,
            anchor_ns,
            dir,
        }))
    }

    /// A socket as access gateway `i` (1, 2: configured peers; 3: unknown).
    pub fn peer(&self, i: u8) -> Result<PeerSock> {
        let port = match self.t {
            T::Mip4 => 434,
            _ => 5436,
        };
        PeerSock::open(&self.peer_ns, self.t.addr(i), port)
    }
    pub fn anchor(&self) -> IpAddr {
        self.t.addr(10)
    }
    /// Where the anchor listens: UDP 5436 / 434 (unused for raw MH).
    pub fn port(&self) -> u16 {
        if self.t == T::Mip4 {
            434
        } else {
            5436
        }
    }
    pub fn capture(&self, name: &str) -> Result<Capture> {
        Capture::start(
            &self.peer_ns,
            "p0",
            self.dir.0.join(format!("{name}.pcap")),
            self.t,
            self.anchor(),
        )
    }
}

/// Our access gateway (MAG/PMA) between a stock DHCP client and the test's anchor.
pub struct AccessBed {
    pub client: Option<Dhcpc>,
    pub daemon: Daemon,
    pub t: T,
    pub sub: Netns,
    pub gw: Netns,
    pub anchor_ns: Netns,
    pub dir: TempDir,
}

impl AccessBed {
    pub fn start(t: T, tag: &str, extra_timers: &str) -> Result<Option<AccessBed>> {
        let x = AccessExtra {
            timers: extra_timers,
            ..AccessExtra::default()
        };
        Self::start_with(t, tag, x)
    }

    /// As `start`, with extra configuration lines.
    pub fn start_with(t: T, tag: &str, x: AccessExtra) -> Result<Option<AccessBed>> {
        if !check_prereqs() {
            return Ok(None);
        }
        lab::ensure_binaries()?;
        let dir = TempDir::new(tag)?;
        let sub = Netns::new(&format!("{tag}s"))?;
        let gw = Netns::new(&format!("{tag}g"))?;
        let anchor_ns = Netns::new(&format!("{tag}l"))?;
        veth(&sub, "s0", &gw, "acc0")?;
        veth(&gw, "core0", &anchor_ns, "l0")?;
        run_all(
            &sub,
            &[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                "ethtool -K s0 tx off".into(),
                format!("ip link set s0 address {SUB_MAC}"),
            ],
        )?;
        run_all(
            &gw,
            &[
                format!("ip link set acc0 address {GW_MAC}"),
                format!("ip addr add {GW_ADDR}/24 dev acc0"),
                "ip addr add 10.255.0.1/24 dev core0".into(),
                "ip -6 addr add fd00:255::1/64 dev core0 nodad".into(),
                "ip route add default via 10.255.0.10".into(),
            ],
        )?;
        run_all(
            &anchor_ns,
            &[
                "ip addr add 10.255.0.10/24 dev l0".into(),
                "ip -6 addr add fd00:255::10/64 dev l0 nodad".into(),
            ],
        )?;
        let cfg = dir.0.join("access.toml");
        std::fs::write(&cfg, access_config(t, &dir.0, x))?;
        let sock = dir.0.join("access.sock");
        let daemon = Daemon::start(&gw, "access", &cfg, &sock, "info")?;
        Ok(Some(AccessBed {
            client: None,
            daemon,
            t,
            sub,
            gw,
            anchor_ns,
            dir,
        }))
    }

    /// The test's anchor socket (open it before the client asks).
    pub fn anchor_sock(&self) -> Result<PeerSock> {
        let port = if self.t == T::Mip4 { 434 } else { 5436 };
        PeerSock::open(&self.anchor_ns, self.t.addr(10), port)
    }
    /// Our gateway's signaling address.
    pub fn gateway(&self) -> IpAddr {
        self.t.addr(1)
    }
    /// busybox udhcpc on the subscriber: its DISCOVER triggers the registration.
    pub fn dhcp(&mut self) -> Result<()> {
        self.client = Some(Dhcpc::start(&self.sub, "s0", &self.dir.0, false)?);
        Ok(())
    }
    /// The subscriber's own kernel turns IPv6 on (no DAD wait, no random
    /// delay): its Router Solicitation triggers an IPv6 attach, and its
    /// SLAAC takes the RA that follows.
    pub fn solicit(&self) -> Result<()> {
        run_all(
            &self.sub,
            &[
                "sysctl -qw net.ipv6.conf.s0.accept_dad=0".into(),
                "sysctl -qw net.ipv6.conf.s0.router_solicitation_delay=0".into(),
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=0".into(),
                "sysctl -qw net.ipv6.conf.s0.disable_ipv6=0".into(),
            ],
        )
    }
    /// The subscriber's global IPv6 addresses (`ip -6 addr`, "addr/len").
    pub fn global_v6(&self) -> Result<Vec<String>> {
        let out = self.sub.exec(&[
            "ip", "-o", "-6", "addr", "show", "dev", "s0", "scope", "global",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                Some(
                    w.get(w.iter().position(|x| *x == "inet6")? + 1)?
                        .to_string(),
                )
            })
            .collect())
    }
    pub fn client(&self) -> &Dhcpc {
        self.client.as_ref().expect("dhcp() first")
    }
    pub fn capture(&self, name: &str) -> Result<Capture> {
        Capture::start(
            &self.anchor_ns,
            "l0",
            self.dir.0.join(format!("{name}.pcap")),
            self.t,
            self.gateway(),
        )
    }
}

/// The subscriber's MAC as bytes.
pub fn sub_mac() -> [u8; 6] {
    mac(SUB_MAC)
}
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// `SocketAddr` helper for messages.
pub fn sockaddr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}
