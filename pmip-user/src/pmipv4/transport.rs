//! The PMIPv4 signaling transport: one UDP 434 socket (RFC 3344 §3.1), the
//! [`Transport`] the agent's shell drives a PMA or an HA over.
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::auth::{self, SecurityAssociation};
use super::wire::ext::AuthKind;
use super::wire::PORT;
use crate::agent::batch::{GroRx, RxBatch, Sent};
use crate::agent::{Peer, Transmit, Transport};
use crate::sys::mmsg;
use crate::sys::socket::grow_receive_buffer;

/// `payload` with its FA-HA authenticator (RFC 3344 §3.5.4, the last
/// extension), to the peer's port 434 — how a PMA and an HA sign what
/// they send each other.
pub(crate) fn signed(
    payload: Vec<u8>,
    sa: &SecurityAssociation,
    to: std::net::Ipv4Addr,
) -> Transmit {
    signed_to(payload, sa, SocketAddrV4::new(to, PORT))
}

/// [`signed`] to a socket address: an answer goes back to the port its
/// message came from, as a registration reply does (RFC 3344 §3.8.3).
pub(crate) fn signed_to(
    mut payload: Vec<u8>,
    sa: &SecurityAssociation,
    to: SocketAddrV4,
) -> Transmit {
    auth::append_auth(&mut payload, AuthKind::FaHa, sa);
    Transmit::new(Peer::V4(to), payload)
}

/// The registration socket.
pub struct Udp434 {
    socket: UdpSocket,
    gso: Gso,
    /// With `UDP_GRO`: the run being handed out.
    gro: Option<GroReader>,
}

impl Udp434 {
    /// Binds `addr` (port 434, or 0 in tests) with a receive buffer large
    /// enough for a burst of registrations.
    pub fn bind(addr: SocketAddrV4) -> io::Result<Udp434> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        // `signaling.receive_buffer_kib`'s default ([`Udp434::with_receive_buffer`]).
        grow_receive_buffer(&socket, 16 << 20);
        Ok(Udp434 {
            socket,
            gso: Gso::default(),
            gro: None,
        })
    }

    /// A receive buffer of `bytes` (`signaling.receive_buffer_kib`).
    pub fn with_receive_buffer(self, bytes: usize) -> Udp434 {
        grow_receive_buffer(&self.socket, i32::try_from(bytes).unwrap_or(i32::MAX));
        self
    }

    /// Sends runs of replies to one peer with UDP GSO ([`Gso`]: one skb
    /// per run instead of one per datagram; captures on this host then
    /// show a run as one datagram).
    pub fn with_gso(self, on: bool) -> Udp434 {
        self.gso.set(on);
        self
    }

    /// Reads runs of requests from one peer as one ([`GroReader`]; with
    /// GSO, so that a capture on this host shows runs either way).
    pub fn with_gro(mut self, on: bool) -> Udp434 {
        if on {
            self.gro = GroReader::enable(&self.socket, "PMIPv4 UDP 434");
        }
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        if let Some(gro) = &self.gro {
            return loop {
                // What is held first: the socket may not wake us for it.
                if let Some(got) = gro.one(None, buf, is_v4)? {
                    break Ok(got);
                }
                self.socket.readable().await?;
                if let Some(got) = gro.one(Some(&self.socket), buf, is_v4)? {
                    break Ok(got);
                }
            };
        }
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

/// Bound to an IPv4 address: nothing else arrives, but be sure.
fn is_v4(p: &Peer) -> bool {
    matches!(p, Peer::V4(_))
}

/// One `recvmmsg` on `s` into `batch` (tokio's readiness is cleared when
/// nothing is queued).
pub(crate) fn udp_recv_batch(s: &UdpSocket, batch: &mut RxBatch) {
    let _ = s.try_io(Interest::READABLE, || {
        mmsg::recv_batch(s.as_raw_fd(), batch)
    });
}

/// A UDP socket's reads with `UDP_GRO` (`sys::mmsg::recv_gro`): a run of
/// datagrams from one peer (its GSO send, or what GRO merged) is one skb
/// and one read instead of one each; the run is handed out datagram by
/// datagram ([`GroRx`]). Shared by the PMIPv4 UDP 434 socket and the
/// PMIPv6 UDP 5436 one (issue 18).
pub(crate) struct GroReader(Mutex<GroRx>);

impl GroReader {
    /// Turns `UDP_GRO` on for `s`; a kernel that refuses it (before
    /// Linux 5.0) leaves the socket reading datagram by datagram.
    pub(crate) fn enable(s: &UdpSocket, what: &str) -> Option<GroReader> {
        match mmsg::enable_gro(s.as_raw_fd()) {
            Ok(()) => Some(GroReader(Mutex::new(GroRx::new()))),
            Err(e) => {
                tracing::warn!("UDP_GRO on the {what} socket: {e}");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GroRx> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next datagram of the held run that `accept` takes, into `buf`,
    /// reading a new run from `s` when none is held (`None`: only what is
    /// held); `Ok(None)` when nothing is there. What `accept` refuses, or
    /// what `buf` cannot hold, is dropped (the latter counted as truncated).
    pub(crate) fn one(
        &self,
        s: Option<&UdpSocket>,
        buf: &mut [u8],
        accept: impl Fn(&Peer) -> bool,
    ) -> io::Result<Option<(Peer, usize)>> {
        let mut g = self.lock();
        loop {
            while let Some((peer, d)) = g.next_datagram() {
                if !accept(&peer) {
                    // Counted where `accept` refused it (ESP's counters).
                    continue;
                }
                if d.len() <= buf.len() {
                    buf[..d.len()].copy_from_slice(d);
                    return Ok(Some((peer, d.len())));
                }
                // Longer than `buf`: dropped and counted, with the next
                // batch read (`batch`, the shell's `rx_errors`).
                g.truncated += 1;
            }
            let Some(s) = s else {
                return Ok(None);
            };
            match s.try_io(Interest::READABLE, || {
                mmsg::recv_gro(s.as_raw_fd(), g.buffer())
            }) {
                Ok(r) => g.filled(r),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs read from `s` into `batch` while it has room (the caller
    /// filters the peers).
    pub(crate) fn batch(&self, s: &UdpSocket, batch: &mut RxBatch) {
        let mut g = self.lock();
        while batch.room() > 0 {
            g.move_into(batch);
            if g.holds() {
                break;
            }
            match s.try_io(Interest::READABLE, || {
                mmsg::recv_gro(s.as_raw_fd(), g.buffer())
            }) {
                Ok(r) => g.filled(r),
                Err(_) => break,
            }
        }
        batch.truncated += std::mem::take(&mut g.truncated);
    }
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
        if let Some(gro) = &self.gro {
            return gro.one(Some(&self.socket), buf, is_v4).ok().flatten();
        }
        match self.socket.try_recv_from(buf) {
            Ok((n, SocketAddr::V4(a))) => Some((Peer::V4(a), n)),
            _ => None,
        }
    }
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a {
        Udp434::send(self, t)
    }
    fn try_recv_batch(&self, batch: &mut RxBatch) {
        match &self.gro {
            Some(gro) => gro.batch(&self.socket, batch),
            None => udp_recv_batch(&self.socket, batch),
        }
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
    fn counters(&self) -> crate::agent::registrar::Counters {
        let n = crate::sys::socket::socket_drops(&self.socket).unwrap_or(0);
        [(crate::agent::registrar::RX_SOCKET_DROPS.to_string(), n)].into()
    }
}

/// A run of 40 datagrams `tx` sends with GSO to `to` comes out of `rx`
/// (reading with `UDP_GRO`) as the datagrams it was, in order: three by
/// `recv` (held ones without a new wake-up), one by `try_recv`, the rest by
/// the batch. For the tests of both protocols' sockets.
#[cfg(test)]
pub(crate) async fn check_gro_run(tx: &impl Transport, rx: &impl Transport, to: SocketAddrV4) {
    use std::time::Duration;
    let ts: Vec<Transmit> = (0..40u8)
        .map(|i| Transmit::new(Peer::V4(to), vec![i; 60]))
        .collect();
    assert_eq!(tx.send_batch(&ts).await.ok, 40);
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    for _ in 0..3 {
        let (_, n) = tokio::time::timeout(Duration::from_secs(5), rx.recv(&mut buf))
            .await
            .expect("held datagrams come without a wake-up")
            .unwrap();
        got.push(buf[..n].to_vec());
    }
    let (_, n) = rx.try_recv(&mut buf).expect("held");
    got.push(buf[..n].to_vec());
    let mut batch = RxBatch::new();
    while got.len() < ts.len() {
        batch.clear();
        rx.try_recv_batch(&mut batch);
        assert!(!batch.is_empty(), "{} of {}", got.len(), ts.len());
        got.extend(batch.iter().map(|(_, d)| d.to_vec()));
    }
    let want: Vec<Vec<u8>> = ts.iter().map(|t| t.payload.to_vec()).collect();
    assert_eq!(got, want);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn bound() -> Udp434 {
        Udp434::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap()
    }

    /// A burst the receive buffer cannot hold: what the kernel dropped at
    /// the socket shows in the transport's counters (`show stats`), and
    /// what it queued plus what it dropped is what was sent.
    #[tokio::test]
    async fn requests_dropped_at_a_full_socket_are_counted() {
        let rx = bound().with_receive_buffer(64 << 10);
        let SocketAddr::V4(to) = rx.local_addr().unwrap() else {
            panic!("bound to IPv4")
        };
        assert_eq!(rx.counters()[crate::agent::registrar::RX_SOCKET_DROPS], 0);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..2_000u32 {
            tx.send_to(&i.to_be_bytes(), to).unwrap();
        }
        let dropped = rx.counters()[crate::agent::registrar::RX_SOCKET_DROPS];
        let mut buf = [0u8; 64];
        let mut queued = 0;
        // Read straight from the descriptor: what is queued, until EAGAIN.
        // SAFETY: a live socket and a buffer of the length given.
        while unsafe {
            libc::recv(
                rx.socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        } > 0
        {
            queued += 1;
        }
        assert!(
            dropped > 0,
            "a 64 KiB buffer held all 2 000 ({queued} read)"
        );
        assert_eq!(queued + dropped, 2_000);
    }

    /// A run of requests sent with GSO is read with `UDP_GRO` as one and
    /// handed out datagram by datagram (`check_gro_run`). Fails without
    /// `UDP_GRO` on the socket (the first assertion) and when `recv` reads
    /// a GRO socket as a plain one (one 2 400-byte datagram, or a time-out).
    #[tokio::test]
    async fn a_gso_run_comes_out_of_a_gro_socket_datagram_by_datagram() {
        let tx = bound().with_gso(true);
        let rx = bound().with_gro(true);
        assert!(rx.gro.is_some());
        let SocketAddr::V4(to) = rx.local_addr().unwrap() else {
            panic!("bound to IPv4")
        };
        check_gro_run(&tx, &rx, to).await;
    }

    /// A datagram longer than the reader's buffer is dropped by `recv` and
    /// counted with the next batch read (the shell's `rx_errors`), and the
    /// next datagram still comes.
    #[tokio::test]
    async fn a_datagram_longer_than_the_buffer_is_counted() {
        let tx = bound();
        let rx = bound().with_gro(true);
        let SocketAddr::V4(to) = rx.local_addr().unwrap() else {
            panic!("bound to IPv4")
        };
        for len in [300, 60] {
            let t = [Transmit::new(Peer::V4(to), vec![7; len])];
            assert_eq!(tx.send_batch(&t).await.ok, 1);
        }
        let mut buf = [0u8; 100];
        let (_, n) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv(&mut buf))
            .await
            .expect("the short one comes")
            .unwrap();
        assert_eq!(n, 60);
        let mut batch = RxBatch::new();
        rx.try_recv_batch(&mut batch);
        assert_eq!(batch.truncated, 1);
    }
}
