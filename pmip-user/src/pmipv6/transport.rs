//! The tokio shell around the MAG/LMA state machines: it only moves bytes,
//! applies data-plane commands, forwards events and arms one timer.
//!
//! Two transports, chosen per peer by its address family (RFC 5844 §4):
//! - IPv6: a raw `IPPROTO_MH` (135) socket. Linux computes the Mobility
//!   Header checksum on send and verifies it on receive for this protocol
//!   (net/ipv6/raw.c sets the checksum offset 4 by default), silently
//!   dropping bad ones. We compute it ourselves too (the kernel subtracts
//!   whatever is in the field before recomputing, so both agree);
//!   [`Sockets::bind`] with `kernel_checksum = false` turns the kernel's
//!   handling off (`IPV6_CHECKSUM = -1`) so our checksum goes out untouched
//!   and is verified by the state machine — a test of our own code.
//! - IPv4: UDP port 5436, IPv4 | UDP | Mobility Header, MH checksum zero;
//!   replies go to the request's source port (RFC 5844 §4.1).
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::lma::{Lma, LmaCounters};
use super::mag::{AttachRequest, Mag, MagCounters, MagEvent};
use super::wire::IPPROTO_MH;
use super::{LocalAddrs, Peer, Transmit};
use crate::dataplane::{AccessPoint, DataPlane, DpCommand};

/// The signaling sockets of one agent.
pub struct Sockets {
    v6: Option<AsyncFd<OwnedFd>>,
    v4: Option<UdpSocket>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr_in6(a: Ipv6Addr) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = a.octets();
    sa
}

fn raw_mh_socket(local: Ipv6Addr, kernel_checksum: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(IPPROTO_MH),
        )
    })?;
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !kernel_checksum {
        let off: libc::c_int = -1;
        // SAFETY: valid fd, pointer and length of a c_int.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_CHECKSUM,
                (&off as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    grow_buffers(&fd);
    // Bound to our address: the kernel uses it as the source, and we only
    // receive what is addressed to it (the checksum's pseudo-header agrees).
    let sa = sockaddr_in6(local);
    // SAFETY: sa is a valid sockaddr_in6 of the given length.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Signaling comes in bursts (a thousand PBUs after an LMA restart): ask
/// for 4 MiB socket buffers, past `rmem_max` when we have CAP_NET_ADMIN.
fn grow_buffers(fd: &impl AsRawFd) {
    crate::sys::socket::grow_receive_buffer(fd, 4 << 20);
    crate::sys::socket::grow_send_buffer(fd, 4 << 20);
}

impl Sockets {
    /// Opens the raw MH socket if `local.v6` is set and the UDP socket on
    /// `udp_port` if `local.v4` is set.
    pub fn bind(local: &LocalAddrs, udp_port: u16, kernel_checksum: bool) -> io::Result<Sockets> {
        let v6 = match local.v6 {
            Some(a) => {
                let fd = raw_mh_socket(a, kernel_checksum)?;
                // SAFETY: an OwnedFd keeps the same open descriptor until dropped.
                Some(unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?)
            }
            None => None,
        };
        let v4 = match local.v4 {
            Some(a) => {
                let std = std::net::UdpSocket::bind(SocketAddrV4::new(a, udp_port))?;
                std.set_nonblocking(true)?;
                grow_buffers(&std);
                Some(UdpSocket::from_std(std)?)
            }
            None => None,
        };
        Ok(Sockets { v6, v4 })
    }

    /// Local address of the UDP socket (its port when bound to 0).
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        self.v4.as_ref().and_then(|s| s.local_addr().ok())
    }

    fn try_recv_v6(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: buf and sa are valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sa as *mut libc::sockaddr_in6).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Peer::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)), n as usize))
    }

    async fn recv_v6(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let Some(fd) = &self.v6 else {
            return std::future::pending().await;
        };
        loop {
            let mut g = fd.readable().await?;
            match g.try_io(|fd| Self::try_recv_v6(fd.get_ref(), buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_v4(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let Some(s) = &self.v4 else {
            return std::future::pending().await;
        };
        loop {
            let (n, from) = s.recv_from(buf).await?;
            if let SocketAddr::V4(a) = from {
                return Ok((Peer::V4(a), n));
            }
        }
    }

    /// Receives one Mobility Header from either socket.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let mut other = vec![0u8; buf.len()];
        tokio::select! {
            r = self.recv_v6(buf) => r,
            r = self.recv_v4(&mut other) => {
                let (p, n) = r?;
                buf[..n].copy_from_slice(&other[..n]);
                Ok((p, n))
            }
        }
    }

    /// Non-blocking receive on either socket (to drain a burst after a wake-up).
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        if let Some(fd) = &self.v6 {
            match Self::try_recv_v6(fd.get_ref(), buf) {
                Ok(r) => return Some(r),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
        }
        if let Some(s) = &self.v4 {
            if let Ok((n, SocketAddr::V4(a))) = s.try_recv_from(buf) {
                return Some((Peer::V4(a), n));
            }
        }
        None
    }

    /// Sends one Mobility Header to its peer, waiting for socket space.
    pub async fn send(&self, t: &Transmit) -> io::Result<()> {
        match t.peer {
            Peer::V6(dst) => {
                let fd = self
                    .v6
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no IPv6 signaling socket"))?;
                let sa = sockaddr_in6(dst);
                loop {
                    let mut g = fd.writable().await?;
                    let r = g.try_io(|fd| {
                        // SAFETY: payload and sa are valid for the lengths passed.
                        let n = unsafe {
                            libc::sendto(
                                fd.as_raw_fd(),
                                t.payload.as_ptr().cast(),
                                t.payload.len(),
                                0,
                                (&sa as *const libc::sockaddr_in6).cast(),
                                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                            )
                        };
                        if n < 0 {
                            Err(io::Error::last_os_error())
                        } else {
                            Ok(())
                        }
                    });
                    match r {
                        Ok(r) => return r,
                        Err(_would_block) => continue,
                    }
                }
            }
            Peer::V4(dst) => {
                let s = self
                    .v4
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no IPv4 signaling socket"))?;
                s.send_to(&t.payload, dst).await.map(|_| ())
            }
        }
    }
}

/// What the shell needs from a state machine.
pub trait Endpoint {
    /// Requests from the rest of the agent (attach/detach, revoke).
    type Command: Send + 'static;
    /// Notifications to the rest of the agent.
    type Event: Send + 'static;
    fn handle(&mut self, now: Instant, peer: Peer, data: &[u8]);
    fn command(&mut self, now: Instant, cmd: Self::Command);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_dp(&mut self) -> Option<DpCommand>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
}

/// Requests to a MAG from the access side (DHCP server / MAC learning) and
/// from the operator (counters, `show` output).
#[derive(Debug)]
pub enum MagCommand {
    Attach(AttachRequest),
    Detach(AccessPoint),
    Counters(oneshot::Sender<MagCounters>),
    ShowBindings(oneshot::Sender<String>),
    /// Every binding update list entry, for `pmipctl show bindings`.
    Bindings(oneshot::Sender<Vec<(crate::dataplane::AccessPoint, super::mag::MagBindingInfo)>>),
}

impl Endpoint for Mag {
    type Command = MagCommand;
    type Event = MagEvent;
    fn handle(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        Mag::handle(self, now, peer, data)
    }
    fn command(&mut self, now: Instant, cmd: MagCommand) {
        match cmd {
            MagCommand::Attach(r) => self.attach(now, r),
            MagCommand::Detach(at) => self.detach(now, at),
            MagCommand::Counters(tx) => {
                let _ = tx.send(self.counters.clone());
            }
            MagCommand::ShowBindings(tx) => {
                let _ = tx.send(self.show_bindings(now));
            }
            MagCommand::Bindings(tx) => {
                let _ = tx.send(self.bindings());
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Mag::poll_transmit(self)
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        Mag::poll_dp(self)
    }
    fn poll_event(&mut self) -> Option<MagEvent> {
        Mag::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Mag::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Mag::handle_timeout(self, now)
    }
}

/// Requests to an LMA (operator actions).
#[derive(Debug)]
pub enum LmaCommand {
    /// Revoke a binding (RFC 5846) with this trigger.
    Revoke {
        mn_id: Vec<u8>,
        trigger: u8,
    },
    Counters(oneshot::Sender<LmaCounters>),
    ShowSessions(oneshot::Sender<String>),
    /// Every binding cache entry, for `pmipctl show bindings`.
    Bindings(oneshot::Sender<Vec<super::lma::BindingInfo>>),
}

impl Endpoint for Lma {
    type Command = LmaCommand;
    type Event = ();
    fn handle(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        Lma::handle(self, now, peer, data)
    }
    fn command(&mut self, now: Instant, cmd: LmaCommand) {
        match cmd {
            LmaCommand::Revoke { mn_id, trigger } => {
                self.revoke(now, &mn_id, trigger);
            }
            LmaCommand::Counters(tx) => {
                let _ = tx.send(self.counters.clone());
            }
            LmaCommand::ShowSessions(tx) => {
                let _ = tx.send(self.show_sessions(now));
            }
            LmaCommand::Bindings(tx) => {
                let _ = tx.send(self.all_bindings());
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Lma::poll_transmit(self)
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        Lma::poll_dp(self)
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Lma::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Lma::handle_timeout(self, now)
    }
}

/// Counters of the shell itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShellCounters {
    pub rx_datagrams: u64,
    pub tx_datagrams: u64,
    pub tx_errors: u64,
    pub dp_errors: u64,
}

/// Most datagrams drained per wake-up before outputs are flushed.
const RX_BURST: usize = 256;

async fn flush<E: Endpoint, D: DataPlane>(
    ep: &mut E,
    sockets: &Sockets,
    dp: &mut D,
    events: &mpsc::UnboundedSender<E::Event>,
    c: &mut ShellCounters,
) {
    while let Some(cmd) = ep.poll_dp() {
        if let Err(e) = dp.apply(&cmd) {
            c.dp_errors += 1;
            tracing::warn!("data plane refused {cmd:?}: {e:#}");
        }
    }
    while let Some(ev) = ep.poll_event() {
        let _ = events.send(ev);
    }
    while let Some(t) = ep.poll_transmit() {
        match sockets.send(&t).await {
            Ok(()) => c.tx_datagrams += 1,
            Err(e) => {
                c.tx_errors += 1;
                tracing::debug!("send to {:?} failed: {e}", t.peer);
            }
        }
    }
}

/// Runs `ep` on `sockets` until `commands` is closed; returns the shell's counters.
pub async fn run<E: Endpoint, D: DataPlane>(
    ep: &mut E,
    sockets: &Sockets,
    dp: &mut D,
    mut commands: mpsc::UnboundedReceiver<E::Command>,
    events: mpsc::UnboundedSender<E::Event>,
) -> ShellCounters {
    let mut c = ShellCounters::default();
    let mut buf6 = vec![0u8; 4096];
    let mut buf4 = vec![0u8; 4096];
    loop {
        flush(ep, sockets, dp, &events, &mut c).await;
        let deadline = ep.poll_timeout();
        let sleep_until = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            r = sockets.recv_v6(&mut buf6) => {
                if let Ok((peer, n)) = r {
                    c.rx_datagrams += 1;
                    ep.handle(Instant::now(), peer, &buf6[..n]);
                }
                drain(ep, sockets, &mut buf6, &mut c);
            }
            r = sockets.recv_v4(&mut buf4) => {
                if let Ok((peer, n)) = r {
                    c.rx_datagrams += 1;
                    ep.handle(Instant::now(), peer, &buf4[..n]);
                }
                drain(ep, sockets, &mut buf4, &mut c);
            }
            cmd = commands.recv() => match cmd {
                Some(cmd) => {
                    let now = Instant::now();
                    ep.command(now, cmd);
                    // Take every queued command before flushing.
                    while let Ok(cmd) = commands.try_recv() {
                        ep.command(now, cmd);
                    }
                }
                None => {
                    flush(ep, sockets, dp, &events, &mut c).await;
                    return c;
                }
            },
            _ = async { match sleep_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                ep.handle_timeout(Instant::now());
            }
        }
    }
}

fn drain<E: Endpoint>(ep: &mut E, sockets: &Sockets, buf: &mut [u8], c: &mut ShellCounters) {
    for _ in 0..RX_BURST {
        let Some((peer, n)) = sockets.try_recv(buf) else {
            break;
        };
        c.rx_datagrams += 1;
        ep.handle(Instant::now(), peer, &buf[..n]);
    }
}
