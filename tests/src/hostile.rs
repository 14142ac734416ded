//! The lab as an attacker sees it (issue 13): a host on the core link that
//! forges PMIPv6 signaling with the anchor's address, and a port on an
//! access link that floods DHCP. Used by `tests/hostile_*.rs`.
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pmip_user::pmipv6::wire::{self, br_flags, Checksum, Message, MobilityOption};

use crate::lab::{self, Lab, CN, CORE_ANCHOR, CORE_MAG};
use crate::netns::{veth, Netns};
use crate::packet;

/// The attacker's own address on the core link.
pub const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 99);

/// A namespace on the lab's core bridge (`brc`), address [`ATTACKER`].
pub fn core_attacker(lab: &Lab) -> Result<Netns> {
    let ns = Netns::new(&format!("{}x", lab.opts.tag))?;
    veth(&ns, "x0", &lab.sw, "pcx")?;
    lab.sw
        .exec(&["ip", "link", "set", "pcx", "master", "brc"])?;
    for c in [
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".to_string(),
        format!("ip addr add {ATTACKER}/24 dev x0"),
    ] {
        let a: Vec<&str> = c.split_whitespace().collect();
        ns.exec(&a)?;
    }
    Ok(ns)
}

/// A raw IPv4 socket that sends whole packets, source address included
/// (IPPROTO_RAW implies IP_HDRINCL): the attacker's way to spoof.
pub struct RawV4(OwnedFd);

impl RawV4 {
    /// Opens it; call inside the attacker's namespace.
    pub fn open() -> Result<RawV4> {
        // SAFETY: plain socket(2); owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            bail!("raw socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(RawV4(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends an IPv4 packet to its destination address.
    pub fn send(&self, ip_packet: &[u8]) -> Result<()> {
        let dst = Ipv4Addr::new(ip_packet[16], ip_packet[17], ip_packet[18], ip_packet[19]);
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        // SAFETY: the buffer and the address are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                ip_packet.as_ptr().cast(),
                ip_packet.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            bail!("sendto {dst}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A Binding Revocation Indication for `nai` (RFC 5846 §6.1), as the LMA
/// would send it over UDP 5436 (RFC 5844 §4), forged: source address the
/// anchor's, sent by anyone.
pub fn forged_bri(nai: &str, seq: u16, to: Ipv4Addr) -> Vec<u8> {
    let bri = Message::RevocationIndication(wire::RevocationIndication {
        trigger: wire::revocation_trigger::ADMINISTRATIVE,
        seq,
        flags: br_flags::P,
        options: vec![MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: nai.as_bytes().to_vec(),
        }],
    });
    let mh = bri.to_vec(Checksum::None).expect("BRI encodes");
    let port = wire::UDP_PORT;
    packet::ipv4(
        CORE_ANCHOR,
        to,
        17,
        64,
        false,
        &packet::udp(port, port, &mh),
    )
}

/// An ESP packet from the anchor's address with SPI `spi` and garbage
/// inside: a guessed key (known SPI) or a guessed SA (unknown SPI).
pub fn forged_esp(spi: u32, seq: u32, to: Ipv4Addr) -> Vec<u8> {
    let mut p = spi.to_be_bytes().to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..64u8).map(|i| i.wrapping_mul(37) ^ seq as u8));
    packet::ipv4(CORE_ANCHOR, to, 50, 64, false, &p)
}

/// Sends `make(i)` for i in 0..n at `rate` packets per second from `ns`.
pub fn send_paced(
    ns: &Netns,
    n: u32,
    rate: u32,
    make: impl Fn(u32) -> Vec<u8> + Send + 'static,
) -> Result<()> {
    ns.run_in(move || -> Result<()> {
        let s = RawV4::open()?;
        let t0 = Instant::now();
        for i in 0..n {
            let due = t0 + Duration::from_secs_f64(f64::from(i) / f64::from(rate));
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            s.send(&make(i))?;
        }
        Ok(())
    })?
}

/// `ping -c n -i interval` from the subscriber to the correspondent,
/// started in the background; [`ping_result`] collects it.
pub fn ping_stream(lab: &Lab, n: u32, interval: &str) -> Result<Child> {
    lab.sub
        .command("ping")
        .args(["-n", "-c", &n.to_string(), "-i", interval, "-W", "1"])
        .arg(CN.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning ping")
}

/// (sent, received) of a finished [`ping_stream`].
pub fn ping_result(c: Child) -> Result<(u32, u32)> {
    let o = c.wait_with_output()?;
    let text = String::from_utf8_lossy(&o.stdout);
    lab::ping_summary(&text).with_context(|| format!("ping output: {text}"))
}

/// The MAG's address (gateway `i`) and its UDP 5436 endpoint.
pub fn mag_addr(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(CORE_MAG[i], wire::UDP_PORT)
}

/// A counter of `show stats` (0 when absent).
pub fn stat(s: &pmip_user::ctl::StatsView, group: &str, name: &str) -> u64 {
    s.groups
        .get(group)
        .and_then(|g| g.get(name))
        .copied()
        .unwrap_or(0)
}

/// The router address of the attacker's access link (a subnet of its own).
pub const FLOOD_GW: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);

/// A second access link on access gateway 0, `acc1`, whose far end `f0` is
/// in the returned namespace (the attacker's port).
pub fn flood_link(lab: &Lab) -> Result<Netns> {
    let ns = Netns::new(&format!("{}f", lab.opts.tag))?;
    veth(&lab.mags[0], "acc1", &ns, "f0")?;
    lab.mags[0].exec(&[
        "ip",
        "addr",
        "add",
        &format!("{FLOOD_GW}/24"),
        "dev",
        "acc1",
    ])?;
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
    Ok(ns)
}

/// Access gateway 0's configuration with the attacker's link added.
pub fn access_config_with_flood_link(lab: &Lab) -> String {
    let c = lab::access_config(&lab.opts, &lab.dir.0, 0);
    let extra = format!(
        "[[interfaces.access]]\nname = \"acc1\"\ngateway = \"{FLOOD_GW}/24\"\n\
         default_profile = \"default\"\n\n[addresses]"
    );
    c.replacen("[addresses]", &extra, 1)
}

/// A DHCPDISCOVER from `mac` (RFC 2131 §4.4.1), the BOOTP message alone.
pub fn discover(mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0x80, 0]); // secs, flags: broadcast
    b.extend_from_slice(&[0; 16]); // ciaddr yiaddr siaddr giaddr
    b.extend_from_slice(&mac);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    b
}

/// A DHCPDISCOVER from `mac` as a whole Ethernet frame (broadcast, from
/// 0.0.0.0:68).
pub fn discover_frame(mac: [u8; 6], xid: u32) -> Vec<u8> {
    dhcp_frame(mac, &discover(mac, xid))
}

/// `bootp` from `mac`'s port 68 to the broadcast address, port 67.
pub fn dhcp_frame(mac: [u8; 6], bootp: &[u8]) -> Vec<u8> {
    let b = bootp;
    let ip = packet::ipv4(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        17,
        64,
        false,
        &packet::udp(68, 67, b),
    );
    let mut f = packet::eth([0xff; 6], mac, 0, 0x0800);
    f.extend_from_slice(&ip);
    f
}

/// MAC number `i` of a flood (locally administered, unicast).
pub fn flood_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x06, 0xf1, b[0], b[1], b[2], b[3]]
}

/// Sends `make(i)` for i in 0..n as Ethernet frames out of `iface` in `ns`
/// at `rate` frames per second (AF_PACKET); returns the seconds it took.
pub fn flood_frames(
    ns: &Netns,
    iface: &str,
    n: u32,
    rate: u32,
    make: impl Fn(u32) -> Vec<u8> + Send + 'static,
) -> Result<f64> {
    let iface = iface.to_string();
    ns.run_in(move || -> Result<f64> {
        let (ifindex, _) = pmip_user::sys::interface_info(&iface)?;
        let tx = pmip_user::sys::socket::RawSender::open(ifindex)?;
        let t0 = Instant::now();
        for i in 0..n {
            let due = t0 + Duration::from_secs_f64(f64::from(i) / f64::from(rate));
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            // A full socket buffer drops this frame: so does a real port.
            let _ = tx.send(&make(i));
        }
        Ok(t0.elapsed().as_secs_f64())
    })?
}

/// Resident memory of a process, kB (VmRSS).
pub fn rss_kb(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

/// Lines in a daemon's log file.
pub fn log_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
