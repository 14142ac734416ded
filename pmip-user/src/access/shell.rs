//! Tokio shell around [`DhcpServer`] on one real access interface.
//!
//! Receive: a UDP socket on 0.0.0.0:67 bound to the interface (SO_BINDTODEVICE),
//! so several access interfaces each get their own server. Send: replies to a
//! client are written as whole Ethernet frames on an AF_PACKET socket, because
//! RFC 2131 §4.1 wants an OFFER/ACK unicast to `yiaddr` at `chaddr` before the
//! client has that address (no ARP possible), and a broadcast out of exactly
//! this interface. Replies to a relay agent go through the UDP socket.
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::dhcp::{
    BindingInfo, DhcpServer, DhcpServerConfig, DhcpStats, Event, ReplyDest, Transmit, CLIENT_PORT,
    SERVER_PORT,
};
use super::frame::{self, BROADCAST_MAC};
use crate::dataplane::AccessPoint;
use crate::sys::interface_info;
use crate::sys::socket::{arp_socket, udp_on_device, RawSender};

/// What the registration side tells the DHCP server.
#[derive(Clone, Debug)]
pub enum DhcpCmd {
    BindingReady {
        mac: [u8; 6],
        info: BindingInfo,
    },
    /// The registration failed; `refused`: the address is not the client's
    /// (`DhcpServer::binding_failed`).
    BindingFailed {
        mac: [u8; 6],
        refused: bool,
    },
    BindingGone {
        mac: [u8; 6],
    },
    /// At start: a lease given before a restart (the binding restored from
    /// the store), with `left` of it to run.
    Restore {
        mac: [u8; 6],
        info: BindingInfo,
        left: std::time::Duration,
    },
}

/// Reads a subscriber's uplink packet count from the data plane (None:
/// unknown), for leases held while their subscriber sends (`dhcp/hold.rs`).
pub(crate) type UplinkCount = Box<dyn Fn(&AccessPoint) -> Option<u64> + Send>;

/// The DHCP server of one access interface with its sockets.
pub struct DhcpShell {
    server: DhcpServer,
    /// With it, a lease that runs out while its subscriber sends is held.
    sent: Option<UplinkCount>,
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
        let udp = udp_on_device(ifname, SERVER_PORT)?;
        // A burst of DISCOVERs (an access point coming back, thousands of subscribers)
        // overflowed the default buffer: each one lost costs the client a retry.
        crate::sys::socket::grow_receive_buffer(&udp, 8 << 20);
        let udp = UdpSocket::from_std(udp)?;
        let raw = RawSender::open(ifindex)?;
        Ok(DhcpShell {
            server: DhcpServer::new(cfg),
            sent: None,
            udp,
            raw,
            if_mac,
            stats: Default::default(),
        })
    }

    /// Holds a lease that runs out while its subscriber is still sending
    /// (`dhcp/hold.rs`), reading the subscriber's uplink count with `sent`.
    pub(crate) fn hold_while_sending(mut self, sent: UplinkCount) -> Self {
        self.server.set_hold_while_sending(true);
        self.sent = Some(sent);
        self
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
        // The counters first: whoever sees a reply (the client, a test)
        // finds it counted.
        if let Ok(mut s) = self.stats.lock() {
            *s = self.server.stats;
        }
        while let Some(t) = self.server.poll_transmit() {
            self.send(t);
        }
        while let Some(e) = self.server.poll_event() {
            tracing::debug!(?e, "dhcp event");
            let _ = events.send(e);
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
            let sleep = crate::sys::sleep_until(deadline);
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
                        Some(DhcpCmd::BindingFailed { mac, refused }) => self.server.binding_failed(mac, refused),
                        Some(DhcpCmd::BindingGone { mac }) => self.server.binding_gone(mac),
                        Some(DhcpCmd::Restore { mac, info, left }) => self.server.restore_lease(now, mac, info, left),
                    }
                }
                _ = sleep => match &self.sent {
                    Some(sent) => self.server.handle_timeout_with(Instant::now(), sent.as_ref()),
                    None => self.server.handle_timeout(Instant::now()),
                },
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
    /// Is it still on the link? Answered with [`ArpEvent::Presence`].
    Check {
        mac: [u8; 6],
    },
}

/// What the ARP shell reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpEvent {
    /// ARP polling gave the subscriber up.
    Detached(super::detach::Detached),
    /// The answer to an [`ArpCmd::Check`].
    Presence(super::detach::Presence),
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
    /// The monitor's counters, for `show stats` and the metrics.
    stats: Arc<Mutex<super::detach::DetachStats>>,
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
            stats: Default::default(),
        })
    }

    /// A handle to the ARP monitor's counters, updated after every input.
    pub fn stats(&self) -> Arc<Mutex<super::detach::DetachStats>> {
        self.stats.clone()
    }

    pub(crate) fn set_polling(&mut self, on: bool) {
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
        events: mpsc::UnboundedSender<ArpEvent>,
    ) -> Result<()> {
        let mut buf = [0u8; 1600];
        loop {
            let deadline = self.monitor.poll_timeout();
            let sleep = crate::sys::sleep_until(deadline);
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
                        Some(ArpCmd::Check { mac }) => self.monitor.check(now, self.at(mac)),
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
                let _ = events.send(ArpEvent::Detached(d));
            }
            while let Some(p) = self.monitor.poll_presence() {
                tracing::debug!(mac = %frame::mac_colon(&p.at.mac), present = p.present, "presence check");
                let _ = events.send(ArpEvent::Presence(p));
            }
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.monitor.stats;
        }
    }
}
