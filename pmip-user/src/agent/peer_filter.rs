//! A [`Transport`] that talks to the configured peers only. Signaling from
//! any other address is dropped and counted before a registrar sees it, so
//! nothing is ever answered to it: a rejection sent to the source of a
//! spoofed request (RFC 5213 §5.3.1 status 154, a Binding Error, an RRP)
//! makes the gateway a reflector, one answer per forged packet towards
//! whoever the attacker names. With IPsec (RFC 5213 §4) such a request
//! would not even authenticate; without an SA there is nothing to trust.
//!
//! `signaling.unknown_peers = "answer"` passes everything through (the
//! conformance labs check the rejections themselves).
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::{RxBatch, Sent};
use super::registrar::Counters;
use super::{Peer, Transmit, Transport};

/// `inner`, restricted to `peers`.
pub struct PeerFilter<T> {
    inner: T,
    /// `None`: everyone passes.
    peers: Option<HashSet<IpAddr>>,
    rx_unknown_peer: AtomicU64,
    tx_unknown_peer: AtomicU64,
}

impl<T: Transport> PeerFilter<T> {
    /// Only `peers` are heard and answered.
    pub fn new(inner: T, peers: impl IntoIterator<Item = IpAddr>) -> Self {
        PeerFilter {
            inner,
            peers: Some(peers.into_iter().collect()),
            rx_unknown_peer: AtomicU64::new(0),
            tx_unknown_peer: AtomicU64::new(0),
        }
    }

    /// Everyone is heard (and may be answered).
    pub fn open(inner: T) -> Self {
        PeerFilter {
            inner,
            peers: None,
            rx_unknown_peer: AtomicU64::new(0),
            tx_unknown_peer: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &T {
        &self.inner
    }

    fn known(&self, p: &Peer) -> bool {
        self.peers.as_ref().is_none_or(|s| s.contains(&p.ip()))
    }

    /// A received datagram: passed on, or dropped and counted.
    fn pass(&self, p: &Peer) -> bool {
        let ok = self.known(p);
        if !ok {
            self.rx_unknown_peer.fetch_add(1, Ordering::Relaxed);
            crate::log_limited!(
                warn,
                from = %p.ip(),
                "signaling from an address that is not a configured peer: dropped"
            );
        }
        ok
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        loop {
            let (p, n) = self.inner.recv(buf).await?;
            if self.pass(&p) {
                return Ok((p, n));
            }
        }
    }

    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        // Bounded, so a flood cannot hold the shell here.
        for _ in 0..256 {
            let (p, n) = self.inner.try_recv(buf)?;
            if self.pass(&p) {
                return Some((p, n));
            }
        }
        None
    }

    async fn send(&self, t: &Transmit) -> io::Result<()> {
        if !self.known(&t.peer) {
            // The registrars answer only what they heard, so this is a
            // second line: nothing leaves for a stranger.
            self.tx_unknown_peer.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.send(t).await
    }
}

impl<T: Transport> Transport for PeerFilter<T> {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Peer, usize)>> + Send + 'a {
        PeerFilter::recv(self, buf)
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        PeerFilter::try_recv(self, buf)
    }
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a {
        PeerFilter::send(self, t)
    }
    fn try_recv_batch(&self, batch: &mut RxBatch) {
        let start = batch.len();
        self.inner.try_recv_batch(batch);
        batch.retain_from(start, |p| self.pass(p));
    }
    async fn send_batch(&self, ts: &[Transmit]) -> Sent {
        if ts.iter().all(|t| self.known(&t.peer)) {
            return self.inner.send_batch(ts).await;
        }
        let (at, known): (Vec<usize>, Vec<Transmit>) = ts
            .iter()
            .enumerate()
            .filter(|(_, t)| self.known(&t.peer))
            .map(|(i, t)| (i, t.clone()))
            .unzip();
        let strangers = (ts.len() - known.len()) as u64;
        self.tx_unknown_peer.fetch_add(strangers, Ordering::Relaxed);
        // Dropped for a stranger counts as done, as `send` has it.
        let mut out = Sent {
            ok: strangers,
            failed: Vec::new(),
        };
        out.add(self.inner.send_batch(&known).await, &at);
        out
    }
    fn counters(&self) -> Counters {
        let mut c = self.inner.counters();
        c.insert(
            "rx_unknown_peer".into(),
            self.rx_unknown_peer.load(Ordering::Relaxed),
        );
        c.insert(
            "tx_unknown_peer".into(),
            self.tx_unknown_peer.load(Ordering::Relaxed),
        );
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Mutex;

    /// A transport over two queues.
    #[derive(Default)]
    struct Fake {
        rx: Mutex<Vec<(Peer, Vec<u8>)>>,
        tx: Mutex<Vec<Transmit>>,
    }

    impl Transport for Fake {
        async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
            match self.try_recv(buf) {
                Some(r) => Ok(r),
                None => Err(io::Error::other("empty")),
            }
        }
        fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
            let mut q = self.rx.lock().unwrap();
            if q.is_empty() {
                return None;
            }
            let (p, d) = q.remove(0);
            buf[..d.len()].copy_from_slice(&d);
            Some((p, d.len()))
        }
        async fn send(&self, t: &Transmit) -> io::Result<()> {
            self.tx.lock().unwrap().push(t.clone());
            Ok(())
        }
    }

    fn v4(last: u8) -> Peer {
        Peer::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), 5436))
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn strangers_are_neither_heard_nor_answered() {
        let fake = Fake::default();
        for (p, d) in [(v4(9), &b"forged"[..]), (v4(1), &b"from a peer"[..])] {
            fake.rx.lock().unwrap().push((p, d.to_vec()));
        }
        let f = PeerFilter::new(fake, [v4(1).ip()]);
        let mut buf = [0u8; 64];
        let (p, n) = run(f.recv(&mut buf)).unwrap();
        assert_eq!((p, &buf[..n]), (v4(1), &b"from a peer"[..]));
        run(f.send(&Transmit::new(v4(9), &b"reject"[..]))).unwrap();
        run(f.send(&Transmit::new(v4(1), &b"accept"[..]))).unwrap();
        let sent = f.inner().tx.lock().unwrap().clone();
        assert_eq!(sent, vec![Transmit::new(v4(1), &b"accept"[..])]);
        let c = Transport::counters(&f);
        assert_eq!((c["rx_unknown_peer"], c["tx_unknown_peer"]), (1, 1));
    }

    #[test]
    fn try_recv_skips_strangers_and_open_passes_all() {
        let fake = Fake::default();
        for i in 0..10 {
            fake.rx.lock().unwrap().push((v4(100 + i), vec![i]));
        }
        fake.rx.lock().unwrap().push((v4(1), vec![42]));
        let f = PeerFilter::new(fake, [v4(1).ip()]);
        let mut buf = [0u8; 8];
        assert_eq!(f.try_recv(&mut buf).map(|(p, _)| p), Some(v4(1)));
        assert_eq!(buf[0], 42);
        assert_eq!(f.try_recv(&mut buf), None);

        let fake = Fake::default();
        fake.rx.lock().unwrap().push((v4(7), vec![1]));
        let f = PeerFilter::open(fake);
        assert_eq!(f.try_recv(&mut buf).map(|(p, _)| p), Some(v4(7)));
        run(f.send(&Transmit::new(v4(7), &b"x"[..]))).unwrap();
        assert_eq!(Transport::counters(&f)["tx_unknown_peer"], 0);
    }

    #[test]
    fn batches_are_filtered_both_ways() {
        let fake = Fake::default();
        for (p, d) in [(v4(9), 1u8), (v4(1), 2), (v4(8), 3), (v4(1), 4)] {
            fake.rx.lock().unwrap().push((p, vec![d]));
        }
        let f = PeerFilter::new(fake, [v4(1).ip()]);
        let mut b = RxBatch::new();
        f.try_recv_batch(&mut b);
        let got: Vec<_> = b.iter().map(|(p, d)| (p, d.to_vec())).collect();
        assert_eq!(got, vec![(v4(1), vec![2]), (v4(1), vec![4])]);
        let ts = [
            Transmit::new(v4(1), &b"a"[..]),
            Transmit::new(v4(9), &b"b"[..]),
            Transmit::new(v4(1), &b"c"[..]),
        ];
        let sent = run(f.send_batch(&ts));
        assert_eq!((sent.ok, sent.failed.len()), (3, 0));
        let out = f.inner().tx.lock().unwrap().clone();
        assert_eq!(out, vec![ts[0].clone(), ts[2].clone()]);
        let c = Transport::counters(&f);
        assert_eq!((c["rx_unknown_peer"], c["tx_unknown_peer"]), (2, 1));
    }
}
