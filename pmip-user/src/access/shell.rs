//! Tokio shell around [`DhcpServer`] on one real access interface.
//!
//! Receive: a UDP socket on 0.0.0.0:67 bound to the interface (SO_BINDTODEVICE),
//! so several access interfaces each get their own server. Send: replies to a
//! client are written as whole Ethernet frames on an AF_PACKET socket, because
//! RFC 2131 §4.1 wants an OFFER/ACK unicast to `yiaddr` at `chaddr` before the
//! client has that address (no ARP possible), and a broadcast out of exactly
//! this interface. Replies to a relay agent go through the UDP socket.
use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::dhcp::{
    BindingInfo, DhcpServer, DhcpServerConfig, DhcpStats, Event, ReplyDest, Transmit, CLIENT_PORT,
    SERVER_PORT,
};
use super::frame::{self, BROADCAST_MAC};

/// What the registration side tells the DHCP server.
#[derive(Clone, Debug)]
pub enum DhcpCmd {
    BindingReady { mac: [u8; 6], info: BindingInfo },
    BindingFailed { mac: [u8; 6] },
    BindingGone { mac: [u8; 6] },
}

/// Index and MAC address of an interface in the caller's network namespace.
pub fn interface_info(name: &str) -> Result<(u32, [u8; 6])> {
    let cname = CString::new(name).context("interface name")?;
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        bail!("interface {name}: {}", io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        bail!("interface name {name} too long");
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
        bail!("SIOCGIFHWADDR {name}: {}", io::Error::last_os_error());
    }
    // SAFETY: the ioctl above initialised the hwaddr arm of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok((ifindex, mac))
}

fn setsockopt_int(fd: i32, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// UDP 0.0.0.0:`port`, bound to `ifname`, broadcast allowed, non-blocking.
pub fn udp_on_device(ifname: &str, port: u16) -> Result<std::net::UdpSocket> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        bail!("socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fresh valid descriptor, owned from here.
    let sock = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).context("SO_REUSEADDR")?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1).context("SO_BROADCAST")?;
    let name = CString::new(ifname)?;
    // SAFETY: pointer and length of a NUL-terminated interface name.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.as_bytes_with_nul().len() as u32,
        )
    };
    if rc < 0 {
        bail!("SO_BINDTODEVICE {ifname}: {}", io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc < 0 {
        bail!(
            "bind 0.0.0.0:{port} on {ifname}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(sock)
}

/// A send-only AF_PACKET socket for whole Ethernet frames on one interface
/// (protocol 0: it receives nothing).
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    pub fn open(ifindex: u32) -> Result<Self> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", io::Error::last_os_error());
        }
        // SAFETY: fresh valid descriptor.
        Ok(RawSender {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0; 6]));
        // SAFETY: valid buffer and sockaddr_ll with their lengths.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The DHCP server of one access interface with its sockets.
pub struct DhcpShell {
    server: DhcpServer,
    udp: UdpSocket,
    raw: RawSender,
    if_mac: [u8; 6],
    stats: Arc<Mutex<DhcpStats>>,
}

impl DhcpShell {
    /// Opens the sockets on `ifname` (in the caller's network namespace).
    /// `cfg.ifindex` is overwritten with the interface's index. Needs a tokio runtime.
    pub fn open(ifname: &str, mut cfg: DhcpServerConfig) -> Result<Self> {
        let (ifindex, if_mac) = interface_info(ifname)?;
        cfg.ifindex = ifindex;
        let udp = UdpSocket::from_std(udp_on_device(ifname, SERVER_PORT)?)?;
        let raw = RawSender::open(ifindex)?;
        Ok(DhcpShell {
            server: DhcpServer::new(cfg),
            udp,
            raw,
            if_mac,
            stats: Default::default(),
        })
    }

    /// Index of the access interface the server is bound to.
    pub fn ifindex(&self) -> u32 {
        self.server.config().ifindex
    }

    /// A handle to the counters, updated after every input.
    pub fn stats(&self) -> Arc<Mutex<DhcpStats>> {
        self.stats.clone()
    }

    fn send(&self, t: Transmit) {
        let sid = self.server.config().server_id;
        let (mac, ip) = match t.dst {
            ReplyDest::Relay(giaddr) => {
                let to = SocketAddrV4::new(giaddr, SERVER_PORT);
                if let Err(e) = self.udp.try_send_to(&t.payload, to.into()) {
                    tracing::warn!("DHCP reply to relay {giaddr}: {e}");
                }
                return;
            }
            ReplyDest::Broadcast => (BROADCAST_MAC, Ipv4Addr::BROADCAST),
            ReplyDest::Unicast { ip, mac } => (mac, ip),
        };
        let f = frame::udp_frame(
            self.if_mac,
            mac,
            (sid, SERVER_PORT),
            (ip, CLIENT_PORT),
            &t.payload,
        );
        if let Err(e) = self.raw.send(&f) {
            tracing::warn!("DHCP reply to {ip}: {e}");
        }
    }

    fn flush(&mut self, events: &mpsc::UnboundedSender<Event>) {
        while let Some(t) = self.server.poll_transmit() {
            self.send(t);
        }
        while let Some(e) = self.server.poll_event() {
            tracing::debug!(?e, "dhcp event");
            let _ = events.send(e);
        }
        if let Ok(mut s) = self.stats.lock() {
            *s = self.server.stats;
        }
    }

    /// Runs until `cmds` is closed. Events go to `events`.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<DhcpCmd>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.server.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => {
                    match r {
                        Ok((n, from)) => {
                            if let Err(e) = self.server.handle(Instant::now(), &buf[..n]) {
                                tracing::debug!(%from, ?e, "DHCP message dropped");
                            }
                        }
                        Err(e) => tracing::warn!("DHCP socket: {e}"),
                    }
                }
                c = cmds.recv() => {
                    let now = Instant::now();
                    match c {
                        None => return Ok(()),
                        Some(DhcpCmd::BindingReady { mac, info }) => self.server.binding_ready(now, mac, info),
                        Some(DhcpCmd::BindingFailed { mac }) => self.server.binding_failed(mac),
                        Some(DhcpCmd::BindingGone { mac }) => self.server.binding_gone(mac),
                    }
                }
                _ = sleep => self.server.handle_timeout(Instant::now()),
            }
            self.flush(&events);
        }
    }
}

/// What the daemon tells the ARP detach monitor of one access interface.
#[derive(Clone, Debug)]
pub enum ArpCmd {
    Watch {
        mac: [u8; 6],
        home: Ipv4Addr,
        gateway: Ipv4Addr,
    },
    Unwatch {
        mac: [u8; 6],
    },
    /// Another sign of life (DHCP renewal, uplink traffic).
    Seen {
        mac: [u8; 6],
    },
}

/// AF_PACKET socket for ARP (ETH_P_ARP) bound to one interface, non-blocking.
fn arp_socket(ifindex: u32) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        bail!("AF_PACKET/ARP socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fresh valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: valid sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        bail!(
            "bind AF_PACKET to ifindex {ifindex}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(fd)
}

/// ARP-polling detach detection ([`DetachMonitor`](super::detach::DetachMonitor))
/// on one real access interface.
pub struct ArpShell {
    monitor: super::detach::DetachMonitor,
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
    raw: RawSender,
    ifindex: u32,
    vlan: u16,
    if_mac: [u8; 6],
    /// Answer subscribers' ARP for any address (draft §6.1); `Some(router address)`.
    proxy_arp: Option<Ipv4Addr>,
}

impl ArpShell {
    /// Opens the ARP socket on `ifname` (caller's namespace); needs a tokio runtime.
    /// `vlan` only labels the [`AccessPoint`](crate::dataplane::AccessPoint)s.
    /// ARP polling is on; see [`set_polling`](Self::set_polling), [`set_proxy_arp`](Self::set_proxy_arp).
    pub fn open(ifname: &str, vlan: u16, cfg: super::detach::DetachConfig) -> Result<Self> {
        let (ifindex, if_mac) = interface_info(ifname)?;
        // SAFETY: the OwnedFd is moved in and stays registered only while owned here.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(arp_socket(ifindex)?) }
            .map_err(|e| anyhow::anyhow!("registering the ARP socket: {e}"))?;
        Ok(ArpShell {
            monitor: super::detach::DetachMonitor::new(cfg),
            fd,
            raw: RawSender::open(ifindex)?,
            ifindex,
            vlan,
            if_mac,
            proxy_arp: None,
        })
    }

    pub fn set_polling(&mut self, on: bool) {
        self.monitor.set_polling(on);
    }

    /// Answers watched subscribers' ARP requests for any address but `router`
    /// (which the kernel owns) with this interface's MAC.
    pub fn set_proxy_arp(&mut self, router: Option<Ipv4Addr>) {
        self.proxy_arp = router;
    }

    fn at(&self, mac: [u8; 6]) -> crate::dataplane::AccessPoint {
        crate::dataplane::AccessPoint {
            ifindex: self.ifindex,
            vlan: self.vlan,
            mac,
        }
    }

    /// Runs until `cmds` closes; detached subscribers go to `events`.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<ArpCmd>,
        events: mpsc::UnboundedSender<super::detach::Detached>,
    ) -> Result<()> {
        let mut buf = [0u8; 1600];
        loop {
            let deadline = self.monitor.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                g = self.fd.readable() => {
                    let mut g = g?;
                    // SAFETY: recv into a live buffer of the given length.
                    let n = unsafe {
                        libc::recv(self.fd.get_ref().as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0)
                    };
                    if n < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() == io::ErrorKind::WouldBlock {
                            g.clear_ready();
                        } else {
                            tracing::warn!("ARP socket: {e}");
                        }
                    } else if let Ok(arp) = frame::ArpRepr::from_frame(&buf[..n as usize]) {
                        if arp.sha == self.if_mac {
                            continue; // our own frames, seen again on the way out
                        }
                        self.monitor.handle_arp(Instant::now(), self.ifindex, self.vlan, &arp);
                        if let Some(router) = self.proxy_arp {
                            if let Some(r) = self.monitor.proxy_arp_reply(self.ifindex, self.vlan, &arp, self.if_mac, router) {
                                if let Err(e) = self.raw.send(&r.to_frame(arp.sha)) {
                                    tracing::warn!("proxy ARP reply: {e}");
                                }
                            }
                        }
                    }
                }
                c = cmds.recv() => {
                    let now = Instant::now();
                    match c {
                        None => return Ok(()),
                        Some(ArpCmd::Watch { mac, home, gateway }) => self.monitor.add(now, self.at(mac), home, gateway),
                        Some(ArpCmd::Unwatch { mac }) => self.monitor.remove(&self.at(mac)),
                        Some(ArpCmd::Seen { mac }) => self.monitor.seen(now, &self.at(mac)),
                    }
                }
                _ = sleep => self.monitor.handle_timeout(Instant::now()),
            }
            while let Some(p) = self.monitor.poll_transmit() {
                if let Err(e) = self.raw.send(&p.to_frame(self.if_mac)) {
                    tracing::warn!("ARP probe to {}: {e}", p.target);
                }
            }
            while let Some(d) = self.monitor.poll_event() {
                tracing::info!(mac = %frame::mac_colon(&d.at.mac), home = %d.home, "subscriber detached (ARP polling)");
                let _ = events.send(d);
            }
        }
    }
}
