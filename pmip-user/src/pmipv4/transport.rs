//! The PMIPv4 signaling transport: one UDP 434 socket (RFC 3344 §3.1), the
//! [`Transport`] the agent's shell drives a PMA or an HA over.
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::auth::{self, SecurityAssociation};
use super::wire::ext::AuthKind;
use super::wire::PORT;
use crate::agent::batch::{RxBatch, Sent};
use crate::agent::{Peer, Transmit, Transport};
use crate::sys::mmsg;
use crate::sys::socket::grow_receive_buffer;

/// `payload` with its FA-HA authenticator (RFC 3344 §3.5.4, the last
/// extension), to the peer's port 434 — how a PMA and an HA sign what
/// they send each other.
pub(crate) fn signed(
    mut payload: Vec<u8>,
    sa: &SecurityAssociation,
    to: std::net::Ipv4Addr,
) -> Transmit {
    auth::append_auth(&mut payload, AuthKind::FaHa, sa);
    Transmit::new(Peer::V4(SocketAddrV4::new(to, PORT)), payload)
}

/// The registration socket.
pub struct Udp434 {
    socket: UdpSocket,
}

impl Udp434 {
    /// Binds `addr` (port 434, or 0 in tests) with a receive buffer large
    /// enough for a burst of registrations.
    pub fn bind(addr: SocketAddrV4) -> io::Result<Udp434> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        grow_receive_buffer(&socket, 4 << 20);
        Ok(Udp434 { socket })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            // Bound to an IPv4 address: nothing else arrives, but be sure.
            if let SocketAddr::V4(a) = from {
                return Ok((Peer::V4(a), n));
            }
        }
    }

    async fn send(&self, t: &Transmit) -> io::Result<()> {
        match t.peer {
            Peer::V4(dst) => self.socket.send_to(&t.payload, dst).await.map(|_| ()),
            Peer::V6(_) => Err(io::Error::other("PMIPv4 signaling is IPv4 only")),
        }
    }
}

/// One `recvmmsg` on `s` into `batch` (tokio's readiness is cleared when
/// nothing is queued).
pub(crate) fn udp_recv_batch(s: &UdpSocket, batch: &mut RxBatch) {
    let _ = s.try_io(Interest::READABLE, || {
        mmsg::recv_batch(s.as_raw_fd(), batch)
    });
}

/// Sends `ts` on `s` with `sendmmsg`, waiting for socket space; a datagram
/// the kernel refuses is counted and skipped.
pub(crate) async fn udp_send_batch(s: &UdpSocket, ts: &[&Transmit]) -> Sent {
    let mut out = Sent::default();
    let mut rest = ts;
    while !rest.is_empty() {
        let at = ts.len() - rest.len();
        match s
            .async_io(Interest::WRITABLE, || mmsg::send_batch(s.as_raw_fd(), rest))
            .await
        {
            Ok(n) => {
                out.ok += n as u64;
                rest = &rest[n..];
            }
            Err(e) => {
                out.failed.push(at);
                tracing::debug!("send to {:?} failed: {e}", rest[0].peer);
                rest = &rest[1..];
            }
        }
    }
    out
}

impl Transport for Udp434 {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Peer, usize)>> + Send + 'a {
        Udp434::recv(self, buf)
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        match self.socket.try_recv_from(buf) {
            Ok((n, SocketAddr::V4(a))) => Some((Peer::V4(a), n)),
            _ => None,
        }
    }
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a {
        Udp434::send(self, t)
    }
    fn try_recv_batch(&self, batch: &mut RxBatch) {
        udp_recv_batch(&self.socket, batch);
        // Bound to an IPv4 address: nothing else arrives, but be sure.
        batch.retain(|p| matches!(p, Peer::V4(_)));
    }
    async fn send_batch(&self, ts: &[Transmit]) -> Sent {
        let (mut at, mut v4, mut out) = (Vec::new(), Vec::new(), Sent::default());
        for (i, t) in ts.iter().enumerate() {
            match t.peer {
                Peer::V4(_) => {
                    at.push(i);
                    v4.push(t);
                }
                Peer::V6(_) => out.failed.push(i),
            }
        }
        out.add(udp_send_batch(&self.socket, &v4).await, &at);
        out
    }
}
