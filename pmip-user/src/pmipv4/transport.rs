//! The PMIPv4 signaling transport: one UDP 434 socket (RFC 3344 §3.1), the
//! [`Transport`] the agent's shell drives a PMA or an HA over.
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

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
    gso: Gso,
}

impl Udp434 {
    /// Binds `addr` (port 434, or 0 in tests) with a receive buffer large
    /// enough for a burst of registrations.
    pub fn bind(addr: SocketAddrV4) -> io::Result<Udp434> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        grow_receive_buffer(&socket, 4 << 20);
        Ok(Udp434 {
            socket,
            gso: Gso::default(),
        })
    }

    /// Sends runs of replies to one peer with UDP GSO ([`Gso`]: one skb
    /// per run instead of one per datagram; captures on this host then
    /// show a run as one datagram).
    pub fn with_gso(self, on: bool) -> Udp434 {
        self.gso.set(on);
        self
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

/// Whether a UDP socket sends runs of datagrams to one peer with GSO
/// (`sys::mmsg::send_batch_gso`). Off unless asked for: a run leaves the
/// host as the same datagrams (cut by the NIC, or by the kernel before a
/// device without UDP segmentation), but a capture on an interface that
/// takes the whole run (veth, a NIC with `tx-udp-segmentation`) shows one
/// large datagram holding several messages, which tshark cannot decode.
/// Once on, it stays on until the kernel says it cannot (EIO: no checksum
/// offload on the way out, or IPsec).
#[derive(Debug, Default)]
pub(crate) struct Gso(AtomicBool);

impl Gso {
    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// Sends `ts` on `s` with `sendmmsg`, waiting for socket space; a datagram
/// the kernel refuses is counted and skipped. With `gso` on, each run of
/// datagrams to one peer goes as one segmented send: one skb through the
/// kernel's UDP and IP output and the device instead of one per datagram
/// (issue 18: that path was ~45 % of the HA's CPU per registration).
pub(crate) async fn udp_send_batch(s: &UdpSocket, ts: &[&Transmit], gso: &Gso) -> Sent {
    let mut out = Sent::default();
    let mut rest = ts;
    while !rest.is_empty() {
        let at = ts.len() - rest.len();
        if gso.0.load(Ordering::Relaxed) {
            let mut failed = None;
            let r = s
                .async_io(Interest::WRITABLE, || {
                    mmsg::send_batch_gso(s.as_raw_fd(), rest).map_err(|(e, g)| {
                        failed = Some(g);
                        e
                    })
                })
                .await;
            match (r, failed) {
                (Ok(n), _) => {
                    out.ok += n as u64;
                    rest = &rest[n..];
                }
                // One datagram: as without GSO.
                (Err(e), Some(1) | None) => {
                    out.failed.push(at);
                    tracing::debug!("send to {:?} failed: {e}", rest[0].peer);
                    rest = &rest[1..];
                }
                // A segmented send refused: that run again without GSO.
                (Err(e), Some(g)) => {
                    if e.raw_os_error() == Some(libc::EIO) {
                        gso.0.store(false, Ordering::Relaxed);
                    }
                    tracing::debug!("GSO send to {:?} failed: {e}", rest[0].peer);
                    udp_send_each(s, &rest[..g], at, &mut out).await;
                    rest = &rest[g..];
                }
            }
        } else {
            udp_send_each(s, rest, at, &mut out).await;
            rest = &[];
        }
    }
    out
}

/// [`udp_send_batch`] without GSO: one datagram per `mmsghdr`; `ts` are
/// the datagrams from the `base`th on of what `out` counts.
async fn udp_send_each(s: &UdpSocket, ts: &[&Transmit], base: usize, out: &mut Sent) {
    let mut rest = ts;
    while !rest.is_empty() {
        let at = base + ts.len() - rest.len();
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
        out.add(udp_send_batch(&self.socket, &v4, &self.gso).await, &at);
        out
    }
}
