//! Handover gap under a steady stream (`pmip-bench handover`): the lab
//! (subscriber, two access gateways, anchor, correspondent, real `pmipd`s)
//! with one UDP stream each way at a fixed rate, while the subscriber's
//! switch port moves between the gateways several times.
//!
//! Every payload carries a sequence number and its send time. Receivers keep
//! the kernel's arrival time (SO_TIMESTAMPNS) per sequence number. A capture
//! on the switch (packet sockets on the ports facing each gateway, incoming
//! only: what the gateway itself transmitted) tells through which gateway
//! each packet went: downlink on `pa1`/`pa2` (decapsulated towards the
//! subscriber), uplink on `pc1`/`pc2` (tunnelled towards the anchor). So for
//! each move the gap is exact: arrival of the first packet through the new
//! gateway minus arrival of the last one through the old. Beside it: the
//! largest inter-arrival gap in a window around the move, the sequence
//! numbers missing in that window, and the largest inter-arrival gap outside
//! every window (this host's noise floor).
//!
//! All clocks are CLOCK_REALTIME, like the daemons' log timestamps, so the
//! logs place the new gateway's steps (unknown MAC seen, attach, registered)
//! and the old one's release on the same axis as the move.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::lab::{self, Lab, LabOpts, Proto, Trigger, CN};
use crate::lab6::CN6;
use crate::netns::Netns;
use crate::tput::enter;
use pmip_user::config::Service;

#[derive(Clone, Debug)]
pub struct Config {
    /// Packets per second of each stream.
    pub rate: u32,
    /// Moves per lab (alternating MAG1 → MAG2 → MAG1 ...).
    pub moves: usize,
    /// Time from one move to the next.
    pub spacing: Duration,
    pub protos: Vec<Proto>,
    pub triggers: Vec<Trigger>,
    /// Subscribers: IPv4 (DHCP), IPv6 (SLAAC) or dual stack; an IPv6 or
    /// dual-stack subscriber streams over IPv6, is PMIPv6's and is taken
    /// over by its data (the other labs are skipped).
    pub services: Vec<Service>,
    /// An iperf3 TCP stream subscriber → correspondent beside the UDP
    /// streams for the whole run (as in `pmip-lab`), loading both cores.
    pub tcp_load: bool,
}

impl Config {
    pub fn full() -> Config {
        Config {
            rate: 10_000,
            moves: 5,
            spacing: Duration::from_millis(1500),
            protos: vec![Proto::Pmipv6, Proto::Pmipv4],
            triggers: vec![Trigger::Data, Trigger::Dhcp],
            services: vec![Service::Ipv4],
            tcp_load: false,
        }
    }
    /// One move at a low rate: does the stream resume?
    pub fn smoke() -> Config {
        Config {
            rate: 200,
            moves: 1,
            spacing: Duration::from_millis(1500),
            protos: vec![Proto::Pmipv6],
            triggers: vec![Trigger::Data],
            services: vec![Service::Ipv4],
            tcp_load: false,
        }
    }
}

const DOWN_PORT: u16 = 9101;
const UP_PORT: u16 = 9102;
/// Payload: magic (7) + direction (1) + sequence (8) + send time ns (8).
const MAGIC: &[u8; 7] = b"PMIPHOv";
const PAYLOAD: usize = 24;
/// Window around a move: from `BEFORE` before it to `AFTER` after it.
const BEFORE_NS: i64 = 250_000_000;
const AFTER_NS: i64 = 750_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Down = 0,
    Up = 1,
}

/// CLOCK_REALTIME in ns.
fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn payload(dir: Dir, seq: u64) -> [u8; PAYLOAD] {
    let mut p = [0u8; PAYLOAD];
    p[..7].copy_from_slice(MAGIC);
    p[7] = dir as u8;
    p[8..16].copy_from_slice(&seq.to_le_bytes());
    p[16..24].copy_from_slice(&now_ns().to_le_bytes());
    p
}

/// Finds our payload anywhere in `b` (a UDP payload or a whole frame, with
/// or without a tunnel header): (direction, sequence, send time).
fn parse(b: &[u8]) -> Option<(u8, u64, i64)> {
    let i = b.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let p = b.get(i..i + PAYLOAD)?;
    Some((
        p[7],
        u64::from_le_bytes(p[8..16].try_into().ok()?),
        i64::from_le_bytes(p[16..24].try_into().ok()?),
    ))
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> Result<()> {
    // SAFETY: an int option on a valid fd.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, &v as *const i32 as *const libc::c_void, 4) };
    if rc != 0 {
        bail!(
            "setsockopt({level}, {name}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Kernel receive timestamps and a large buffer (a stalled receiver must
/// not lose what the network delivered).
fn rx_options(fd: RawFd) -> Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20)
}

/// One datagram with its kernel arrival time (ns, CLOCK_REALTIME); None when
/// nothing is there (timeout / EAGAIN).
fn recv_ts(fd: RawFd, buf: &mut [u8], flags: i32) -> Option<(usize, i64)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: zeroed msghdr, then pointers to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return None;
    }
    let mut t = None;
    // SAFETY: walking the control buffer the kernel filled.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                t = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((n as usize, t.unwrap_or_else(now_ns)))
}

/// Sends `dir` datagrams at `rate` until `stop`: every wake-up sends what is
/// due by now (so a late wake-up is caught up, not lost), then sleeps 0.5 ms
/// with 1 µs timer slack. Returns (sent, send errors).
fn sender(sock: &UdpSocket, dir: Dir, rate: u32, stop: &AtomicBool) -> (u64, u64) {
    // SAFETY: prctl on the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            if sock.send(&payload(dir, sent)).is_err() {
                errors += 1;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (sent, errors)
}

/// One received datagram: sequence, arrival, send time.
#[derive(Clone, Copy, Debug)]
struct Rx {
    seq: u64,
    at: i64,
    sent: i64,
}

fn receiver(sock: &UdpSocket, dir: Dir, stop: &AtomicBool) -> Result<Vec<Rx>> {
    rx_options(sock.as_raw_fd())?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut v = Vec::with_capacity(1 << 18);
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        while let Some((n, at)) = recv_ts(sock.as_raw_fd(), &mut buf, 0) {
            if let Some((d, seq, sent)) = parse(&buf[..n]) {
                if d == dir as u8 {
                    v.push(Rx { seq, at, sent });
                }
            }
        }
    }
    Ok(v)
}

/// A packet the capture saw leave a gateway: direction, sequence, gateway (0/1).
#[derive(Clone, Copy, Debug)]
struct Seen {
    dir: u8,
    seq: u64,
    gw: u8,
}

const PACKET_IGNORE_OUTGOING: i32 = 23;

/// Packet socket on `ifname` of the current namespace, incoming frames only.
fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket call; the fd is owned right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            proto as i32,
        )
    };
    if fd < 0 {
        bail!("packet socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let idx = ifindex(ifname)?;
    // SAFETY: zeroed sockaddr_ll filled in and passed with its size.
    let rc = unsafe {
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = idx as i32;
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        bail!(
            "bind packet socket to {ifname}: {}",
            std::io::Error::last_os_error()
        );
    }
    setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
    rx_options(fd.as_raw_fd())?;
    Ok(fd)
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface {name}");
    }
    Ok(i)
}

/// Captures on the switch ports facing the gateways until `stop`:
/// downlink leaving gateway k on `pa{k}`, uplink on `pc{k}`.
fn capture(socks: &[(OwnedFd, u8, Dir)], stop: &AtomicBool) -> Vec<Seen> {
    let mut v = Vec::with_capacity(1 << 18);
    let mut buf = [0u8; 256];
    let mut pfd: Vec<libc::pollfd> = socks
        .iter()
        .map(|(fd, _, _)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: pfd is a live array of pollfd.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, 50) };
        if n <= 0 {
            continue;
        }
        for (i, (fd, gw, dir)) in socks.iter().enumerate() {
            if pfd[i].revents == 0 {
                continue;
            }
            while let Some((n, _)) = recv_ts(fd.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT) {
                if let Some((d, seq, _)) = parse(&buf[..n.min(buf.len())]) {
                    if d == *dir as u8 {
                        v.push(Seen {
                            dir: d,
                            seq,
                            gw: *gw,
                        });
                    }
                }
            }
        }
    }
    v
}

/// A route netlink socket of the calling thread's namespace (it stays bound
/// to that namespace whichever thread uses it later).
fn netlink_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket call, owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        bail!("netlink socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh valid fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves the switch port `port` under bridge `master` with one RTM_NEWLINK
/// (IFLA_MASTER) on `fd` (a netlink socket of the switch's namespace), and
/// waits for the kernel's answer. Done in-process so the move's time is known to the
/// microsecond (an `ip link set` costs a process start).
fn set_master(fd: &OwnedFd, port: u32, master: u32) -> Result<()> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                              // ifinfomsg: family, pad, type, index, flags, change
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&(port as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // rtattr IFLA_MASTER (u32)
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&libc::IFLA_MASTER.to_ne_bytes());
    m.extend_from_slice(&master.to_ne_bytes());
    debug_assert_eq!(m.len(), 40);
    // SAFETY: sending a live buffer on a valid fd (to the kernel: no address needed).
    if unsafe {
        libc::send(
            fd.as_raw_fd(),
            m.as_ptr() as *const libc::c_void,
            m.len(),
            0,
        )
    } != m.len() as isize
    {
        bail!("netlink send: {}", std::io::Error::last_os_error());
    }
    let mut r = [0u8; 512];
    // SAFETY: receiving into a live buffer.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            r.as_mut_ptr() as *mut libc::c_void,
            r.len(),
            0,
        )
    };
    if n < 20 {
        bail!("netlink recv: {}", std::io::Error::last_os_error());
    }
    let ty = u16::from_ne_bytes([r[4], r[5]]);
    let err = i32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
    if ty != libc::NLMSG_ERROR as u16 || err != 0 {
        bail!(
            "RTM_NEWLINK master: {}",
            std::io::Error::from_raw_os_error(-err)
        );
    }
    Ok(())
}

/// One move: when (ns, realtime), from which gateway to which.
#[derive(Clone, Copy, Debug)]
struct Move {
    at: i64,
    from: usize,
    to: usize,
}

/// What one lab run recorded.
struct Recording {
    moves: Vec<Move>,
    sent: [(u64, u64); 2],
    rx: [Vec<Rx>; 2],
    seen: Vec<Seen>,
    stream_start: i64,
    /// From the daemons' logs, per move: ms after the move.
    steps: Vec<serde_json::Value>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Per move and direction: exact gap (through old → through new), largest
/// inter-arrival gap in the window, missing sequence numbers in the window.
#[derive(Clone, Debug, Default)]
pub struct MoveFigures {
    pub gap_ms: Option<f64>,
    pub window_gap_ms: f64,
    pub lost: u64,
    /// Sequence numbers received after the move through the new gateway.
    pub after_via_new: u64,
    /// Last sequence through the old gateway, first through the new.
    pub last_old_seq: Option<u64>,
    pub first_new_seq: Option<u64>,
}

/// Returns the per-move figures, the noise floor (ms), the sequence numbers
/// missing over the whole run, and how many received packets the capture
/// did not attribute to a gateway.
fn analyse(rec: &Recording, dir: Dir, spacing_ns: i64) -> (Vec<MoveFigures>, f64, u64, u64) {
    let d = dir as usize;
    let mut rx = rec.rx[d].clone();
    rx.sort_by_key(|r| r.at);
    let n = rec.sent[d].0 as usize;
    let mut via = vec![u8::MAX; n.max(1)];
    for s in rec.seen.iter().filter(|s| s.dir == dir as u8) {
        if let Some(v) = via.get_mut(s.seq as usize) {
            if *v == u8::MAX {
                *v = s.gw;
            }
        }
    }
    let mut got = vec![false; n.max(1)];
    for r in &rx {
        if let Some(g) = got.get_mut(r.seq as usize) {
            *g = true;
        }
    }
    let after = AFTER_NS.min(spacing_ns - BEFORE_NS);
    let in_window = |t0: i64, t1: i64| {
        rec.moves
            .iter()
            .position(|m| t1 >= m.at - BEFORE_NS && t0 <= m.at + after)
    };
    let mut out = Vec::new();
    for m in &rec.moves {
        let (w0, w1) = (m.at - BEFORE_NS, m.at + after);
        let win: Vec<&Rx> = rx.iter().filter(|r| r.at >= w0 && r.at <= w1).collect();
        let last_old = win
            .iter()
            .filter(|r| via.get(r.seq as usize) == Some(&(m.from as u8)))
            .max_by_key(|r| r.at);
        let first_new = win
            .iter()
            .filter(|r| via.get(r.seq as usize) == Some(&(m.to as u8)) && r.at >= m.at)
            .min_by_key(|r| r.at);
        let gap_ms = match (last_old, first_new) {
            (Some(a), Some(b)) => Some((b.at - a.at) as f64 / 1e6),
            _ => None,
        };
        let window_gap_ms = rx
            .windows(2)
            .filter(|w| w[1].at >= w0 && w[0].at <= w1 && w[1].at >= m.at)
            .map(|w| (w[1].at - w[0].at) as f64 / 1e6)
            .fold(0.0, f64::max);
        // Sequence numbers sent in the window (by the send times of what arrived).
        let lo = rx.iter().filter(|r| r.sent >= w0).map(|r| r.seq).min();
        let hi = rx.iter().filter(|r| r.sent <= w1).map(|r| r.seq).max();
        let lost = match (lo, hi) {
            (Some(lo), Some(hi)) if hi >= lo => (lo..=hi)
                .filter(|s| !got.get(*s as usize).copied().unwrap_or(false))
                .count() as u64,
            _ => 0,
        };
        let after_via_new = rx
            .iter()
            .filter(|r| r.at > m.at && via.get(r.seq as usize) == Some(&(m.to as u8)))
            .count() as u64;
        out.push(MoveFigures {
            gap_ms,
            window_gap_ms,
            lost,
            after_via_new,
            last_old_seq: last_old.map(|r| r.seq),
            first_new_seq: first_new.map(|r| r.seq),
        });
    }
    // Noise floor: the largest inter-arrival gap outside every window, after
    // the stream's first 200 ms (ARP, socket start).
    let noise = rx
        .windows(2)
        .filter(|w| {
            w[0].at > rec.stream_start + 200_000_000 && in_window(w[0].at, w[1].at).is_none()
        })
        .map(|w| (w[1].at - w[0].at) as f64 / 1e6)
        .fold(0.0, f64::max);
    let total_lost = (0..n).filter(|s| !got[*s]).count() as u64;
    let unattributed = rx
        .iter()
        .filter(|r| via.get(r.seq as usize).is_none_or(|v| *v == u8::MAX))
        .count() as u64;
    (out, noise, total_lost, unattributed)
}

/// Brings up the lab for `proto`, streams both ways (only downlink with the
/// DHCP trigger: an uplink stream would make the new gateway register the
/// subscriber from its data first), moves the subscriber `cfg.moves` times.
fn record(proto: Proto, trigger: Trigger, service: Service, cfg: &Config) -> Result<Recording> {
    let tag = match (proto, trigger, service) {
        (_, _, Service::Ipv6) => "hi6",
        (_, _, Service::Dual) => "hid",
        (Proto::Pmipv6, Trigger::Data, _) => "hb6",
        (Proto::Pmipv4, Trigger::Data, _) => "hb4",
        (Proto::Pmipv6, Trigger::Dhcp, _) => "hd6",
        (Proto::Pmipv4, Trigger::Dhcp, _) => "hd4",
    };
    let mut o = LabOpts::new(proto, tag);
    o.service = service;
    let mut l = Lab::up(o)?;
    // An IPv6 or dual-stack subscriber streams over IPv6 (dual: after
    // SLAAC, udhcpc from the same binding).
    let (home, cn): (IpAddr, IpAddr) = if service.ipv6() {
        let s = l.attach6()?;
        if service.ipv4() {
            l.attach(false)?;
        }
        let a = s.addr.split('/').next().unwrap_or_default();
        (
            a.parse().with_context(|| format!("SLAAC address {a:?}"))?,
            CN6.into(),
        )
    } else {
        let lease = l.attach(false)?;
        let a = lease
            .ip
            .parse()
            .with_context(|| format!("lease address {:?}", lease.ip))?;
        (IpAddr::V4(a), CN.into())
    };
    l.wait_registered(0)?;
    let uplink = trigger == Trigger::Data;
    if cfg.tcp_load {
        l.iperf_server_on(&cn.to_string())?;
        let secs = 4 + (cfg.spacing.as_secs_f64() * cfg.moves as f64).ceil() as u32;
        let c = l
            .iperf_client_to(&cn.to_string(), secs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        // Killed with the lab.
        l.bg.push(c);
        lab::interruptible_sleep(Duration::from_millis(500))?;
    }
    let r = stream_and_move(&l, (home, cn), uplink, trigger, cfg);
    if let Err(e) = &r {
        let tails: Vec<String> = l
            .access
            .iter()
            .flatten()
            .chain(l.anchor_d.iter())
            .map(|d| {
                format!(
                    "--- {} log ({}):\n{}",
                    d.name,
                    d.log.display(),
                    d.log_tail(12)
                )
            })
            .collect();
        return Err(anyhow!("{e:#}\n{}", tails.join("\n")));
    }
    let mut rec = r?;
    // Where the time went, from the logs (ms after each move).
    for m in &rec.moves {
        let t = m.at as f64 / 1e9;
        let ms = |x: Option<f64>| x.map(|x| ((x - t) * 1e4).round() / 10.0);
        let new = l.mag(m.to);
        let old = l.mag(m.from);
        rec.steps.push(serde_json::json!({
            "new_mac_ms": ms(lab::log_time_after(&new.log, t, "data from an unknown MAC")),
            "attach_ms": ms(lab::log_time_after(&new.log, t, " attach")),
            "registered_ms": ms(lab::log_time_after(&new.log, t, " registered")),
            "old_released_ms": ms(lab::log_time_after(&old.log, t, " binding gone")),
        }));
    }
    Ok(rec)
}

fn stream_and_move(
    l: &Lab,
    (home, cn_addr): (IpAddr, IpAddr),
    uplink: bool,
    trigger: Trigger,
    cfg: &Config,
) -> Result<Recording> {
    let stop_tx = AtomicBool::new(false);
    let stop_rx = AtomicBool::new(false);
    let (sub, cn, sw): (&Netns, &Netns, &Netns) = (&l.sub, &l.cn, &l.sw);
    let rate = cfg.rate;
    std::thread::scope(|s| -> Result<Recording> {
        // Receivers and the capture first, then the senders.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let cap = {
            let ready = ready_tx.clone();
            let stop = &stop_rx;
            s.spawn(move || -> Result<Vec<Seen>> {
                let socks = (|| -> Result<Vec<(OwnedFd, u8, Dir)>> {
                    enter(sw)?;
                    let mut v = Vec::new();
                    for k in 0..2u8 {
                        v.push((packet_socket(&format!("pa{}", k + 1))?, k, Dir::Down));
                        v.push((packet_socket(&format!("pc{}", k + 1))?, k, Dir::Up));
                    }
                    Ok(v)
                })();
                let socks = match socks {
                    Ok(v) => {
                        let _ = ready.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready.send(Err(anyhow!("capture: {e:#}")));
                        return Err(e);
                    }
                };
                Ok(capture(&socks, stop))
            })
        };
        let spawn_rx = |ns: &'static str, dir: Dir| {
            let ready = ready_tx.clone();
            let stop = &stop_rx;
            let (netns, bind) = match dir {
                Dir::Down => (sub, SocketAddr::from((home, DOWN_PORT))),
                Dir::Up => (cn, SocketAddr::from((cn_addr, UP_PORT))),
            };
            s.spawn(move || -> Result<Vec<Rx>> {
                let sock = (|| -> Result<UdpSocket> {
                    enter(netns)?;
                    let s = UdpSocket::bind(bind)
                        .with_context(|| format!("{ns} receiver on {bind}"))?;
                    rx_options(s.as_raw_fd())?;
                    Ok(s)
                })();
                let sock = match sock {
                    Ok(s) => {
                        let _ = ready.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready.send(Err(anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                receiver(&sock, dir, stop)
            })
        };
        let rx_down = spawn_rx("subscriber", Dir::Down);
        let rx_up = spawn_rx("correspondent", Dir::Up);
        let mut setup = Ok(());
        for _ in 0..3 {
            match ready_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => setup = Err(e),
                Err(_) => setup = Err(anyhow!("receivers not ready within 5 s")),
            }
        }
        let stream_start = now_ns();
        let spawn_tx = |dir: Dir| {
            let stop = &stop_tx;
            let (netns, local, remote) = match dir {
                Dir::Down => (
                    cn,
                    SocketAddr::from((cn_addr, 0)),
                    SocketAddr::from((home, DOWN_PORT)),
                ),
                Dir::Up => (
                    sub,
                    SocketAddr::from((home, 0)),
                    SocketAddr::from((cn_addr, UP_PORT)),
                ),
            };
            s.spawn(move || -> Result<(u64, u64)> {
                enter(netns)?;
                let sock = UdpSocket::bind(local)?;
                sock.connect(remote)?;
                Ok(sender(&sock, dir, rate, stop))
            })
        };
        let tx_down = setup.is_ok().then(|| spawn_tx(Dir::Down));
        let tx_up = (setup.is_ok() && uplink).then(|| spawn_tx(Dir::Up));

        // The moves: a netlink socket opened in the switch's namespace,
        // used from here.
        let mut moves = Vec::new();
        let r = setup.and_then(|()| {
            let (nl, ps, br) = s
                .spawn(|| -> Result<(OwnedFd, u32, [u32; 2])> {
                    enter(sw)?;
                    Ok((
                        netlink_socket()?,
                        ifindex("ps")?,
                        [ifindex("br1")?, ifindex("br2")?],
                    ))
                })
                .join()
                .map_err(|_| anyhow!("netlink thread panicked"))??;
            let t0 = Instant::now() + Duration::from_secs(1);
            let mut at = 0usize;
            for i in 0..cfg.moves {
                let due = t0 + cfg.spacing * i as u32;
                lab::interruptible_sleep(due.saturating_duration_since(Instant::now()))?;
                let to = 1 - at;
                let t = now_ns();
                set_master(&nl, ps, br[to])?;
                moves.push(Move {
                    at: t,
                    from: at,
                    to,
                });
                if trigger == Trigger::Dhcp {
                    l.client().renew()?;
                }
                let new_peer = l.opts.mag_core(to);
                l.lma().wait_bindings(
                    Duration::from_secs(5),
                    "binding via the new gateway",
                    |b| b.len() == 1 && b[0].peer.to_string() == new_peer,
                )?;
                l.mag(at).wait_bindings(
                    Duration::from_secs(5),
                    "old gateway released the subscriber",
                    |b| b.is_empty(),
                )?;
                at = to;
            }
            lab::interruptible_sleep(Duration::from_secs(1))
        });
        stop_tx.store(true, Ordering::Relaxed);
        let mut sent = [(0, 0); 2];
        for (i, h) in [(0, tx_down), (1, tx_up)] {
            if let Some(h) = h {
                sent[i] = h.join().map_err(|_| anyhow!("sender panicked"))??;
            }
        }
        // Let the last packets land.
        std::thread::sleep(Duration::from_millis(200));
        stop_rx.store(true, Ordering::Relaxed);
        let down = rx_down.join().map_err(|_| anyhow!("receiver panicked"))?;
        let up = rx_up.join().map_err(|_| anyhow!("receiver panicked"))?;
        let seen = cap.join().map_err(|_| anyhow!("capture panicked"))?;
        r?;
        Ok(Recording {
            moves,
            sent,
            rx: [down?, up?],
            seen: seen?,
            stream_start,
            steps: Vec::new(),
        })
    })
}

fn stats(v: &[f64]) -> serde_json::Value {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let min = s.iter().copied().fold(f64::INFINITY, f64::min);
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    serde_json::json!({"median": median(&mut s), "min": min, "max": max, "n": s.len()})
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Ipv4 => "ipv4",
        Service::Ipv6 => "ipv6",
        Service::Dual => "dual",
    }
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Data => "data",
        Trigger::Dhcp => "dhcp",
    }
}

/// The benchmark: for each protocol and trigger one lab, `cfg.moves` moves;
/// prints a table and returns the JSON (every move's figures included).
pub fn handover(cfg: &Config) -> Result<serde_json::Value> {
    lab::ensure_binaries()?;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    let labs = cfg.services.iter().flat_map(|&service| {
        cfg.triggers.iter().flat_map(move |&trigger| {
            cfg.protos
                .iter()
                .map(move |&proto| (service, trigger, proto))
        })
    });
    for (service, trigger, proto) in labs {
        {
            if service.ipv6() && (proto != Proto::Pmipv6 || trigger != Trigger::Data) {
                continue;
            }
            let rec = record(proto, trigger, service, cfg).with_context(|| {
                format!("{} {} {service:?}", proto.name(), trigger_name(trigger))
            })?;
            let dirs: &[Dir] = if trigger == Trigger::Data {
                &[Dir::Down, Dir::Up]
            } else {
                &[Dir::Down]
            };
            for &dir in dirs {
                let (figs, noise, total_lost, unattributed) =
                    analyse(&rec, dir, cfg.spacing.as_nanos() as i64);
                let dname = if dir == Dir::Down {
                    "downlink"
                } else {
                    "uplink"
                };
                let gaps: Vec<f64> = figs.iter().map(|f| f.gap_ms.unwrap_or(f64::NAN)).collect();
                let wgaps: Vec<f64> = figs.iter().map(|f| f.window_gap_ms).collect();
                let lost: Vec<f64> = figs.iter().map(|f| f.lost as f64).collect();
                let moves_json: Vec<serde_json::Value> = figs
                    .iter()
                    .zip(&rec.moves)
                    .zip(&rec.steps)
                    .map(|((f, m), st)| {
                        serde_json::json!({
                            "from": m.from + 1, "to": m.to + 1,
                            "gap_ms": f.gap_ms, "window_gap_ms": f.window_gap_ms, "lost": f.lost,
                            "received_after_via_new": f.after_via_new,
                            "last_seq_via_old": f.last_old_seq, "first_seq_via_new": f.first_new_seq,
                            "log_steps": st,
                        })
                    })
                    .collect();
                let row = serde_json::json!({
                    "protocol": proto.name(), "subscriber": service_name(service),
                    "trigger": trigger_name(trigger), "direction": dname,
                    "rate_pps": cfg.rate, "sent": rec.sent[dir as usize].0, "send_errors": rec.sent[dir as usize].1,
                    "received": rec.rx[dir as usize].len(), "lost_total": total_lost,
                    "received_not_captured": unattributed,
                    "gap_ms": stats(&gaps), "window_gap_ms": stats(&wgaps), "lost": stats(&lost),
                    "noise_floor_ms": noise, "moves": moves_json,
                });
                table.push(row.clone());
                rows.push(row);
            }
        }
    }
    println!(
        "handover gap, {} pps per stream, {} moves per lab ({} ms apart){}; gap = first packet through the new gateway − last through the old (arrival times)",
        cfg.rate,
        cfg.moves,
        cfg.spacing.as_millis(),
        if cfg.tcp_load { ", beside an iperf3 TCP stream" } else { "" }
    );
    println!(
        "{:<12} {:<5} {:<9} {:>24} {:>24} {:>16} {:>9} {:>12}",
        "proto/sub",
        "trig",
        "dir",
        "gap ms med [min–max]",
        "window gap ms med [max]",
        "lost med [max]",
        "noise ms",
        "lost/sent"
    );
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    for r in &table {
        println!(
            "{:<12} {:<5} {:<9} {:>24} {:>24} {:>16} {:>9.1} {:>12}",
            format!(
                "{}/{}",
                r["protocol"].as_str().unwrap_or(""),
                r["subscriber"].as_str().unwrap_or("")
            ),
            r["trigger"].as_str().unwrap_or(""),
            r["direction"].as_str().unwrap_or(""),
            format!(
                "{:.1} [{:.1}–{:.1}]",
                f(&r["gap_ms"], "median"),
                f(&r["gap_ms"], "min"),
                f(&r["gap_ms"], "max")
            ),
            format!(
                "{:.1} [{:.1}]",
                f(&r["window_gap_ms"], "median"),
                f(&r["window_gap_ms"], "max")
            ),
            format!(
                "{:.0} [{:.0}]",
                f(&r["lost"], "median"),
                f(&r["lost"], "max")
            ),
            f(r, "noise_floor_ms"),
            format!("{}/{}", r["lost_total"], r["sent"]),
        );
        if r["received_not_captured"].as_u64().unwrap_or(0) > 0
            || r["send_errors"].as_u64().unwrap_or(0) > 0
        {
            println!(
                "    ({} received packets not seen by the switch capture; {} send errors)",
                r["received_not_captured"], r["send_errors"]
            );
        }
        for (i, m) in r["moves"].as_array().into_iter().flatten().enumerate() {
            let st = &m["log_steps"];
            let o = |v: &serde_json::Value| {
                v.as_f64()
                    .map(|x| format!("{x:.1}"))
                    .unwrap_or_else(|| "–".into())
            };
            println!(
                "    move {} ({}→{}): gap {} ms, window gap {:.1} ms, lost {}; log (ms after the move): unknown MAC {}, attach {}, registered {}, old released {}",
                i + 1,
                m["from"],
                m["to"],
                o(&m["gap_ms"]),
                f(m, "window_gap_ms"),
                m["lost"],
                o(&st["new_mac_ms"]),
                o(&st["attach_ms"]),
                o(&st["registered_ms"]),
                o(&st["old_released_ms"]),
            );
        }
    }
    Ok(serde_json::json!({
        "benchmark": "handover",
        "rate_pps": cfg.rate,
        "moves": cfg.moves,
        "spacing_ms": cfg.spacing.as_millis() as u64,
        "tcp_load": cfg.tcp_load,
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_found_in_a_frame() {
        let p = payload(Dir::Up, 0x0102_0304_0506);
        let mut frame = vec![0xaa; 70];
        frame.extend_from_slice(&p);
        let (d, seq, t) = parse(&frame).unwrap();
        assert_eq!((d, seq), (1, 0x0102_0304_0506));
        assert!(t > 0);
        assert!(parse(&frame[..80]).is_none());
        // Every truncation of our payload is refused, never a panic; so is
        // a frame without the magic.
        for cut in 0..frame.len() {
            assert!(parse(&frame[..cut]).is_none(), "cut at {cut}");
        }
        assert!(parse(&[0xaa; 200]).is_none());
    }

    #[test]
    fn gap_and_loss_from_a_recording() {
        // 1 kpps; the move at t = 1 s; packets 1000..1019 lost; before via 0, after via 1.
        let ms = 1_000_000i64;
        let mut rx = Vec::new();
        let mut seen = Vec::new();
        for seq in 0..2000u64 {
            let t = seq as i64 * ms;
            seen.push(Seen {
                dir: 0,
                seq,
                gw: if seq < 1005 { 0 } else { 1 },
            });
            if !(1000..1020).contains(&seq) {
                rx.push(Rx {
                    seq,
                    at: t + ms / 2,
                    sent: t,
                });
            }
        }
        let rec = Recording {
            moves: vec![Move {
                at: 1000 * ms,
                from: 0,
                to: 1,
            }],
            sent: [(2000, 0), (0, 0)],
            rx: [rx, Vec::new()],
            seen,
            stream_start: 0,
            steps: Vec::new(),
        };
        let (f, noise, total, unattributed) = analyse(&rec, Dir::Down, 1500 * ms);
        assert_eq!(unattributed, 0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].last_old_seq, Some(999));
        assert_eq!(f[0].first_new_seq, Some(1020));
        assert!((f[0].gap_ms.unwrap() - 21.0).abs() < 1e-9, "{:?}", f[0]);
        assert!((f[0].window_gap_ms - 21.0).abs() < 1e-9);
        assert_eq!(f[0].lost, 20);
        assert_eq!(total, 20);
        assert!((noise - 1.0).abs() < 1e-9, "{noise}");
    }
}
