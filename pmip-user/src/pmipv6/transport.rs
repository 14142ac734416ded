//! The PMIPv6 signaling transport the agent's shell drives a MAG or an LMA
//! over. Two sockets, chosen per peer by its address family (RFC 5844 §4):
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
//!
//! With [`Sockets::with_esp`], peers that have ESP SAs (RFC 5213 §4) are
//! reached through raw ESP sockets instead (`esp`): `IPv6 | ESP | MH` and
//! `IPv4 | ESP | UDP | MH`; whatever such a peer's address sends without
//! ESP, or with ESP that does not open, is dropped and counted.
use std::future::Future;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

use super::wire::IPPROTO_MH;
use super::LocalAddrs;
use crate::agent::batch::{send_all, RxBatch, Sent};
use crate::agent::registrar::Counters;
use crate::agent::{Peer, Transmit, Transport};
use crate::esp::persist::SeqKeeper;
use crate::esp::SignalingEsp;
use crate::pmipv4::transport::{udp_recv_batch, udp_send_batch, GroReader, Gso};
use crate::sys::mmsg;

mod esp;
mod xdp;
mod xdp_send;

pub use xdp::mobility_header;
pub use xdp_send::SendLink;

/// The signaling sockets of one agent.
pub struct Sockets {
    v6: Option<AsyncFd<OwnedFd>>,
    v4: Option<UdpSocket>,
    /// Whether the UDP socket still sends runs to one peer with GSO.
    gso: Gso,
    /// With `UDP_GRO` on the UDP socket: the run being handed out.
    gro: Option<GroReader>,
    local: LocalAddrs,
    esp: Option<esp::EspPart>,
    /// The anchor's AF_XDP sockets (`with_xdp_sockets`): Mobility Headers
    /// the fast path took off the kernel's path.
    xdp: Option<xdp::XdpPart>,
    /// The receive buffer asked for (`with_receive_buffer`), for the ESP
    /// sockets opened after it.
    receive_buffer: Option<usize>,
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
/// for 16 MiB receive buffers (`signaling.receive_buffer_kib`'s default;
/// the daemon sets its configured size with [`Sockets::with_receive_buffer`])
/// and 4 MiB send buffers, past `rmem_max` when we have CAP_NET_ADMIN.
fn grow_buffers(fd: &impl AsRawFd) {
    crate::sys::socket::grow_receive_buffer(fd, 16 << 20);
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
        Ok(Sockets {
            v6,
            v4,
            gso: Gso::default(),
            gro: None,
            local: *local,
            esp: None,
            xdp: None,
            receive_buffer: None,
        })
    }

    /// Receive buffers of `bytes` on both sockets (`signaling.receive_buffer_kib`):
    /// what a burst of PBUs may queue while the registrar is busy.
    /// The raw ESP sockets, opened later by [`Sockets::with_esp`], get the same.
    pub fn with_receive_buffer(mut self, bytes: usize) -> Sockets {
        self.receive_buffer = Some(bytes);
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        if let Some(s) = &self.v4 {
            crate::sys::socket::grow_receive_buffer(s, bytes);
        }
        if let Some(s) = &self.v6 {
            crate::sys::socket::grow_receive_buffer(s.get_ref(), bytes);
        }
        self
    }

    /// Sends runs of messages to one peer over UDP 5436 with GSO (see
    /// `pmipv4::transport::Gso`); the raw MH socket has no GSO.
    pub fn with_udp_gso(self, on: bool) -> Sockets {
        self.gso.set(on);
        self
    }

    /// Has the UDP socket read runs of datagrams from one peer as one
    /// (`UDP_GRO`: a peer's GSO send, or what GRO merged, is one skb and
    /// one read instead of one per datagram). A kernel that refuses it
    /// (before Linux 5.0) leaves the socket reading datagram by datagram.
    pub fn with_udp_gro(mut self, on: bool) -> Sockets {
        if let (true, Some(s)) = (on, &self.v4) {
            self.gro = GroReader::enable(s, "PMIPv6 UDP");
        }
        self
    }

    /// Protects the signaling with the peers `sig` has SAs for: opens the raw
    /// ESP sockets. `keeper` keeps the sequence numbers across restarts.
    pub fn with_esp(mut self, sig: SignalingEsp, keeper: Option<SeqKeeper>) -> io::Result<Sockets> {
        let esp = esp::EspPart::open(sig, keeper, &self.local)?;
        if let Some(b) = self.receive_buffer {
            esp.grow_receive_buffers(i32::try_from(b).unwrap_or(i32::MAX));
        }
        self.esp = Some(esp);
        Ok(self)
    }

    /// Reads IPv6 Mobility Headers from `socks` too: AF_XDP sockets the
    /// fast path redirects those addressed to `local.v6` into
    /// (`signaling.xdp_socket`, see `xdp`). The raw MH socket stays open:
    /// what the fast path leaves to the kernel still arrives there. With
    /// `send` (`signaling.xdp_socket_send`, see `xdp_send`) plain messages
    /// to IPv6 peers go out through the first socket where it can.
    pub fn with_xdp_sockets(
        mut self,
        socks: Vec<crate::sys::xsk::Xsk>,
        send: Option<SendLink>,
    ) -> io::Result<Sockets> {
        let local = self.local.v6.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "XDP sockets without an IPv6 address",
            )
        })?;
        self.xdp = Some(xdp::XdpPart::new(socks, local, send)?);
        Ok(self)
    }

    /// A message received without ESP: false (counted) when it must be dropped.
    fn accept_plain(&self, peer: &Peer) -> bool {
        !self
            .esp
            .as_ref()
            .is_some_and(|e| e.reject_unprotected(peer))
    }

    /// The ESP counters (`esp_*`), for `show stats`.
    pub fn counters(&self) -> Counters {
        let mut c = self.esp.as_ref().map(|e| e.counters()).unwrap_or_default();
        let drops = |s: &dyn AsRawFd| crate::sys::socket::socket_drops(&s.as_raw_fd());
        let mut n = self.v4.as_ref().and_then(|s| drops(s)).unwrap_or(0);
        n += self
            .v6
            .as_ref()
            .and_then(|s| drops(s.get_ref()))
            .unwrap_or(0);
        n += self.esp.as_ref().map_or(0, |e| e.socket_drops());
        if let Some(x) = &self.xdp {
            n += x.socket_drops();
            c.extend(x.counters());
        }
        c.insert(crate::agent::registrar::RX_SOCKET_DROPS.into(), n);
        c
    }

    /// Local address of the UDP socket (its port when bound to 0).
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        self.v4.as_ref().and_then(|s| s.local_addr().ok())
    }

    fn try_recv_v6(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let (from, n) = crate::sys::socket::recv_from_v6(fd.as_fd(), buf)?;
        Ok((Peer::V6(from), n))
    }

    /// Receives one Mobility Header from any socket: waits until one is
    /// readable, then reads into `buf`; what must be dropped is dropped here.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let (esp6, esp4) = match &self.esp {
            Some(e) => (e.v6(), e.v4()),
            None => (None, None),
        };
        loop {
            // A run read before: its datagrams first (the socket may have
            // nothing more to wake us for).
            if let Some(gro) = &self.gro {
                if let Some(got) = gro.one(None, buf, |p| self.accept_plain(p))? {
                    return Ok(got);
                }
            }
            tokio::select! {
                r = Self::readable_v6(&self.v6) => {
                    let mut g = r?;
                    match g.try_io(|fd| Self::try_recv_v6(fd.get_ref(), buf)) {
                        Ok(Ok((peer, n))) if self.accept_plain(&peer) => return Ok((peer, n)),
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(e)) => return Err(e),
                    }
                }
                r = Self::readable_v4(&self.v4) => {
                    r?;
                    if let Some(gro) = &self.gro {
                        if let Some(got) = gro.one(self.v4.as_ref(), buf, |p| self.accept_plain(p))? {
                            return Ok(got);
                        }
                        continue;
                    }
                    match self.v4.as_ref().map(|s| s.try_recv_from(buf)) {
                        Some(Ok((n, SocketAddr::V4(a)))) if self.accept_plain(&Peer::V4(a)) => {
                            return Ok((Peer::V4(a), n))
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Some(Err(e)) => return Err(e),
                        None => {}
                    }
                }
                r = esp::EspPart::readable(esp6) => {
                    if let Some(got) = self.recv_esp(r?, buf)? {
                        return Ok(got);
                    }
                }
                r = esp::EspPart::readable(esp4) => {
                    if let Some(got) = self.recv_esp(r?, buf)? {
                        return Ok(got);
                    }
                }
                r = xdp::XdpPart::readable(self.xdp.as_ref()) => {
                    r?;
                    let got = self.xdp.as_ref().and_then(|x| x.try_recv(buf, |p| self.accept_plain(p)));
                    if let Some(got) = got {
                        return Ok(got);
                    }
                }
            }
        }
    }

    /// Reads one packet from a readable ESP socket and opens it (`None`:
    /// nothing there, or dropped).
    fn recv_esp(
        &self,
        mut g: tokio::io::unix::AsyncFdReadyGuard<'_, crate::esp::socket::EspSocket>,
        buf: &mut [u8],
    ) -> io::Result<Option<(Peer, usize)>> {
        let Some(esp) = &self.esp else {
            return Ok(None);
        };
        match g.try_io(|s| s.get_ref().recv_from(buf)) {
            Ok(Ok((src, range))) => Ok(esp.open_into(src, buf, range)),
            // A raw IPv4 datagram we could not make sense of: dropped.
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_would_block) => Ok(None),
        }
    }

    async fn readable_v6(
        fd: &Option<AsyncFd<OwnedFd>>,
    ) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>> {
        match fd {
            Some(fd) => fd.readable().await,
            None => std::future::pending().await,
        }
    }

    async fn readable_v4(s: &Option<UdpSocket>) -> io::Result<()> {
        match s {
            Some(s) => s.readable().await,
            None => std::future::pending().await,
        }
    }

    /// Non-blocking receive on any socket (to drain a burst after a wake-up).
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        // Dropped messages do not end the drain; a long run of them waits
        // for the next wake-up.
        if let Some(got) = self
            .xdp
            .as_ref()
            .and_then(|x| x.try_recv(buf, |p| self.accept_plain(p)))
        {
            return Some(got);
        }
        for _ in 0..64 {
            let mut any = false;
            if let Some(fd) = &self.v6 {
                if let Ok((peer, n)) = Self::try_recv_v6(fd.get_ref(), buf) {
                    if self.accept_plain(&peer) {
                        return Some((peer, n));
                    }
                    any = true;
                }
            }
            if let Some(gro) = &self.gro {
                if let Ok(Some(got)) = gro.one(self.v4.as_ref(), buf, |p| self.accept_plain(p)) {
                    return Some(got);
                }
            } else if let Some(s) = &self.v4 {
                if let Ok((n, SocketAddr::V4(a))) = s.try_recv_from(buf) {
                    if self.accept_plain(&Peer::V4(a)) {
                        return Some((Peer::V4(a), n));
                    }
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        self.esp.as_ref().and_then(|e| e.try_recv(buf))
    }

    /// Sends one Mobility Header to its peer, waiting for socket space.
    pub async fn send(&self, t: &Transmit) -> io::Result<()> {
        if let Some(esp) = self.esp.as_ref().filter(|e| e.protects(&t.peer)) {
            return esp.send(t).await;
        }
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

impl Sockets {
    /// Whatever is queued, up to the batch's room: one `recvmmsg` per
    /// socket, the ESP packets opened in place under one lock.
    pub fn try_recv_batch(&self, batch: &mut RxBatch) {
        let start = batch.len();
        if let Some(x) = &self.xdp {
            x.try_recv_batch(batch);
        }
        if let Some(fd) = &self.v6 {
            // Raw: tokio's readiness is left set; the next wait clears it.
            let _ = mmsg::recv_batch(fd.as_raw_fd(), batch);
        }
        match (&self.v4, &self.gro) {
            (Some(s), Some(gro)) => gro.batch(s, batch),
            (Some(s), None) => udp_recv_batch(s, batch),
            _ => {}
        }
        batch.retain_from(start, |p| {
            matches!(p, Peer::V6(_) | Peer::V4(_)) && self.accept_plain(p)
        });
        if let Some(esp) = &self.esp {
            esp.try_recv_batch(batch);
        }
    }

    /// Sends `ts`: the plain ones in one `sendmmsg` per socket (a peer's
    /// messages keep their order: a peer is reached one way only), those to
    /// protected peers sealed under one lock and sent the same way.
    pub async fn send_batch(&self, ts: &[Transmit]) -> Sent {
        let mut out = Sent::default();
        let (mut v6, mut v4) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        let mut sealed = (Vec::new(), Vec::new());
        let mut plain = Vec::with_capacity(ts.len());
        match &self.esp {
            // One lock for the whole batch.
            Some(e) => e.sort(ts, |i, protected| match protected {
                true => sealed.0.push(i),
                false => plain.push(i),
            }),
            None => plain.extend(0..ts.len()),
        }
        sealed.1.extend(sealed.0.iter().map(|&i| &ts[i]));
        for i in plain {
            let t = &ts[i];
            let (at, list) = match t.peer {
                Peer::V6(_) => (&mut v6.0, &mut v6.1),
                Peer::V4(_) => (&mut v4.0, &mut v4.1),
            };
            at.push(i);
            list.push(t);
        }
        if let Some(esp) = self.esp.as_ref().filter(|_| !sealed.0.is_empty()) {
            out.add(esp.send_batch(&sealed.1).await, &sealed.0);
        }
        if let Some(x) = &self.xdp {
            out.ok += x.send_batch(&mut v6.0, &mut v6.1);
        }
        match &self.v6 {
            Some(fd) => out.add(send_all(fd, &v6.1).await, &v6.0),
            None => out.failed.extend(&v6.0),
        }
        match &self.v4 {
            Some(s) => out.add(udp_send_batch(s, &v4.1, &self.gso).await, &v4.0),
            None => out.failed.extend(&v4.0),
        }
        out.failed.sort_unstable();
        out
    }
}

impl Transport for Sockets {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Peer, usize)>> + Send + 'a {
        Sockets::recv(self, buf)
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        Sockets::try_recv(self, buf)
    }
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a {
        Sockets::send(self, t)
    }
    fn try_recv_batch(&self, batch: &mut RxBatch) {
        Sockets::try_recv_batch(self, batch)
    }
    fn send_batch<'a>(&'a self, ts: &'a [Transmit]) -> impl Future<Output = Sent> + Send + 'a {
        Sockets::send_batch(self, ts)
    }
    fn counters(&self) -> Counters {
        Sockets::counters(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4_sockets() -> Sockets {
        let local = LocalAddrs {
            v6: None,
            v4: Some(Ipv4Addr::LOCALHOST),
        };
        Sockets::bind(&local, 0, true).unwrap()
    }

    /// `signaling.receive_buffer_kib` reaches the UDP socket and the raw
    /// ESP socket opened after it (which had a constant 4 MiB before).
    #[tokio::test]
    async fn the_receive_buffer_reaches_the_esp_sockets_too() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: raw ESP sockets and SO_RCVBUFFORCE need root");
            return;
        }
        let local = LocalAddrs {
            v6: None,
            v4: Some(Ipv4Addr::LOCALHOST),
        };
        let s = v4_sockets()
            .with_receive_buffer(3 << 20)
            .with_esp(SignalingEsp::new(crate::esp::SaDb::new(), local, 0), None)
            .unwrap();
        let udp = s.v4.as_ref().unwrap();
        assert_eq!(crate::sys::socket::receive_buffer(udp).unwrap(), 6 << 20);
        let esp = s.esp.as_ref().unwrap();
        assert_eq!(esp.receive_buffers(), [6 << 20]);
    }

    /// A run sent with GSO is read with `UDP_GRO` as one, and handed out
    /// as the datagrams it was (`pmipv4::transport::check_gro_run`). Fails
    /// (times out) when `recv` reads the GRO socket as a plain one.
    #[tokio::test]
    async fn a_gso_run_comes_out_of_a_gro_socket_datagram_by_datagram() {
        let tx = v4_sockets().with_udp_gso(true);
        let rx = v4_sockets().with_udp_gro(true);
        assert!(rx.gro.is_some());
        let Some(SocketAddr::V4(to)) = rx.udp_local_addr() else {
            panic!("bound to IPv4")
        };
        crate::pmipv4::transport::check_gro_run(&tx, &rx, to).await;
    }
}
