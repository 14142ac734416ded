//! The ESP half of the PMIPv6 transport: protected peers' messages go out
//! sealed on raw ESP sockets and come in from them; plain messages from a
//! protected peer, and ESP packets that do not open, are dropped and counted
//! (RFC 5213 §4: the signaling between MAG and LMA is protected; RFC 4303
//! §3.4: what fails the checks is discarded, never answered).
use std::io;
use std::net::{IpAddr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Instant;

use tokio::io::unix::AsyncFdReadyGuard;

use crate::agent::batch::{send_all, RxBatch, Sent};
use crate::agent::registrar::{counters_of, Counters};
use crate::agent::{Peer, Transmit};
use crate::esp::persist::SeqKeeper;
use crate::esp::socket::{AsyncEspSocket, EspSocket};
use crate::esp::SignalingEsp;
use crate::pmipv6::LocalAddrs;
use crate::sys::mmsg;

struct Inner {
    sig: SignalingEsp,
    keeper: Option<SeqKeeper>,
}

/// The agent's SAs, its raw ESP sockets, and where its sequence numbers are kept.
pub(super) struct EspPart {
    inner: Mutex<Inner>,
    v6: Option<AsyncEspSocket>,
    v4: Option<AsyncEspSocket>,
}

impl EspPart {
    /// What the kernel dropped at the raw ESP sockets (`sys::socket::socket_drops`).
    pub(super) fn socket_drops(&self) -> u64 {
        [&self.v6, &self.v4]
            .into_iter()
            .flatten()
            .filter_map(crate::sys::socket::socket_drops)
            .sum()
    }

    /// `signaling.receive_buffer_kib` on both raw ESP sockets.
    pub(super) fn grow_receive_buffers(&self, bytes: i32) {
        for s in [&self.v6, &self.v4].into_iter().flatten() {
            crate::sys::socket::grow_receive_buffer(s, bytes);
        }
    }

    /// `SO_RCVBUF` of each raw ESP socket, as the kernel reports it.
    #[cfg(test)]
    pub(super) fn receive_buffers(&self) -> Vec<i32> {
        [&self.v6, &self.v4]
            .into_iter()
            .flatten()
            .map(|s| crate::sys::socket::receive_buffer(s).unwrap())
            .collect()
    }

    /// Opens a raw ESP socket for each of our signaling addresses.
    pub(super) fn open(
        sig: SignalingEsp,
        keeper: Option<SeqKeeper>,
        local: &LocalAddrs,
    ) -> io::Result<EspPart> {
        let v6 = match local.v6 {
            Some(a) => Some(AsyncEspSocket::bind(IpAddr::V6(a))?),
            None => None,
        };
        let v4 = match local.v4 {
            Some(a) => Some(AsyncEspSocket::bind(IpAddr::V4(a))?),
            None => None,
        };
        Ok(EspPart {
            inner: Mutex::new(Inner { sig, keeper }),
            v6,
            v4,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn protects(&self, peer: &Peer) -> bool {
        self.lock().sig.protects(peer)
    }

    /// Tells `f`, for each of `ts` by position, whether it goes in ESP (one
    /// lock for the batch).
    pub(super) fn sort(&self, ts: &[Transmit], mut f: impl FnMut(usize, bool)) {
        let g = self.lock();
        for (i, t) in ts.iter().enumerate() {
            f(i, g.sig.protects(&t.peer));
        }
    }

    /// A message that came without ESP: true (counted) when it must be dropped.
    pub(super) fn reject_unprotected(&self, peer: &Peer) -> bool {
        let reject = self.lock().sig.reject_unprotected(peer);
        if reject {
            crate::log_limited!(
                warn,
                peer = %peer.ip(),
                "signaling without ESP from a peer that has SAs: dropped"
            );
        }
        reject
    }

    /// Opens the ESP packet at `buf[range]` from `src`; on success the
    /// Mobility Header is moved to the start of `buf`.
    pub(super) fn open_into(
        &self,
        src: IpAddr,
        buf: &mut [u8],
        range: Range<usize>,
    ) -> Option<(Peer, usize)> {
        let mut g = self.lock();
        let inner = &mut *g;
        match inner.sig.unprotect(src, &buf[range]) {
            Ok((peer, mh)) => {
                if let Some(k) = inner.keeper.as_mut() {
                    if let Err(e) = k.after_open(inner.sig.db(), Instant::now()) {
                        crate::log_limited!(warn, "keeping the ESP sequence numbers: {e}");
                    }
                }
                let n = mh.len().min(buf.len());
                buf[..n].copy_from_slice(&mh[..n]);
                Some((peer, n))
            }
            Err(why) => {
                crate::log_limited!(warn, %src, %why, "ESP packet dropped");
                None
            }
        }
    }

    /// Seals `t` and sends it on the ESP socket of its family.
    pub(super) async fn send(&self, t: &Transmit) -> io::Result<()> {
        let (dst, packet) = {
            let mut g = self.lock();
            let inner = &mut *g;
            if let Some(k) = inner.keeper.as_mut() {
                if let Err(e) = k.before_seal(inner.sig.db(), &t.peer.ip(), Instant::now()) {
                    // Sent anyway: a lost reservation costs the peer's window
                    // after a restart, not the confidentiality of anything.
                    crate::log_limited!(error, "keeping the ESP sequence numbers: {e}");
                }
            }
            inner
                .sig
                .protect(t)
                .map_err(|e| io::Error::other(format!("ESP: {e}")))?
        };
        let socket = match dst {
            IpAddr::V6(_) => self.v6.as_ref(),
            IpAddr::V4(_) => self.v4.as_ref(),
        }
        .ok_or_else(|| io::Error::other("no ESP socket of the peer's family"))?;
        socket.send_to(dst, &packet).await
    }

    /// Seals `ts` under one lock and sends them with one `sendmmsg` per
    /// family and [`crate::sys::mmsg::TX_BATCH`]; positions in `ts` of those
    /// that could not be sealed or sent are in `failed`.
    pub(super) async fn send_batch(&self, ts: &[&Transmit]) -> Sent {
        let mut out = Sent::default();
        let (mut v6, mut v4) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        {
            let mut g = self.lock();
            let inner = &mut *g;
            for (i, t) in ts.iter().enumerate() {
                match Self::seal(inner, t) {
                    Some((IpAddr::V6(a), p)) => {
                        v6.0.push(i);
                        v6.1.push(Transmit::new(Peer::V6(a), p));
                    }
                    Some((IpAddr::V4(a), p)) => {
                        v4.0.push(i);
                        // Raw socket: no port.
                        v4.1.push(Transmit::new(Peer::V4(SocketAddrV4::new(a, 0)), p));
                    }
                    None => out.failed.push(i),
                }
            }
        }
        for (socket, (at, list)) in [(self.v6.as_ref(), v6), (self.v4.as_ref(), v4)] {
            if at.is_empty() {
                continue;
            }
            match socket {
                Some(s) => {
                    let refs: Vec<&Transmit> = list.iter().collect();
                    out.add(send_all(s.fd(), &refs).await, &at);
                }
                None => out.failed.extend(at),
            }
        }
        out.failed.sort_unstable();
        out
    }

    /// `t` sealed (its sequence number reserved first), or `None` (logged).
    fn seal(inner: &mut Inner, t: &Transmit) -> Option<(IpAddr, Vec<u8>)> {
        if let Some(k) = inner.keeper.as_mut() {
            if let Err(e) = k.before_seal(inner.sig.db(), &t.peer.ip(), Instant::now()) {
                crate::log_limited!(error, "keeping the ESP sequence numbers: {e}");
            }
        }
        match inner.sig.protect(t) {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                crate::log_limited!(warn, peer = %t.peer.ip(), "ESP: {e}");
                None
            }
        }
    }

    /// Whatever the ESP sockets have queued, up to the batch's room: one
    /// `recvmmsg` per socket, then each packet opened in its slot under one
    /// lock (those that do not open are dropped, counted by the SA database).
    pub(super) fn try_recv_batch(&self, batch: &mut RxBatch) {
        for s in [self.v6.as_ref(), self.v4.as_ref()].into_iter().flatten() {
            let start = batch.len();
            if batch.room() == 0 || mmsg::recv_batch(s.fd().as_raw_fd(), batch).is_err() {
                continue;
            }
            let v4 = s.is_v4();
            let mut g = self.lock();
            let inner = &mut *g;
            batch.rewrite_from(start, |from, d| {
                let range = if v4 {
                    crate::esp::socket::ipv4_payload(d).ok()?
                } else {
                    0..d.len()
                };
                let (peer, mh) = match inner.sig.unprotect(from.ip(), &d[range]) {
                    Ok(r) => r,
                    Err(why) => {
                        crate::log_limited!(warn, src = %from.ip(), %why, "ESP packet dropped");
                        return None;
                    }
                };
                if let Some(k) = inner.keeper.as_mut() {
                    if let Err(e) = k.after_open(inner.sig.db(), Instant::now()) {
                        crate::log_limited!(warn, "keeping the ESP sequence numbers: {e}");
                    }
                }
                let n = mh.len().min(d.len());
                d[..n].copy_from_slice(&mh[..n]);
                Some((peer, n))
            });
        }
    }

    pub(super) async fn readable(
        s: Option<&AsyncEspSocket>,
    ) -> io::Result<AsyncFdReadyGuard<'_, EspSocket>> {
        match s {
            Some(s) => s.readable().await,
            None => std::future::pending().await,
        }
    }

    pub(super) fn v6(&self) -> Option<&AsyncEspSocket> {
        self.v6.as_ref()
    }

    pub(super) fn v4(&self) -> Option<&AsyncEspSocket> {
        self.v4.as_ref()
    }

    /// Non-blocking: one ESP packet that opens, from either socket.
    pub(super) fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        for s in [self.v6.as_ref(), self.v4.as_ref()].into_iter().flatten() {
            // Bounded: a queue of bad packets is left for the next wake-up.
            for _ in 0..64 {
                match s.try_recv_from(buf) {
                    Ok((src, range)) => {
                        if let Some(r) = self.open_into(src, buf, range) {
                            return Some(r);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
                    Err(_) => break,
                }
            }
        }
        None
    }

    /// The ESP counters, named `esp_*`.
    pub(super) fn counters(&self) -> Counters {
        counters_of(self.lock().sig.counters())
            .into_iter()
            .map(|(k, v)| (format!("esp_{k}"), v))
            .collect()
    }
}

impl Drop for EspPart {
    /// The last inbound window tops, at shutdown.
    fn drop(&mut self) {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(k) = inner.keeper.as_mut() {
            if let Err(e) = k.flush(inner.sig.db()) {
                tracing::warn!("saving the ESP sequence numbers: {e}");
            }
        }
    }
}
