//! Datagrams moved in batches: one `recvmmsg(2)` fills an [`RxBatch`], one
//! `sendmmsg(2)` sends many [`Transmit`]s. A burst of registrations (an
//! anchor restart, a flash crowd) then costs two system calls per batch
//! instead of two per message, which is most of a registration's cost once
//! the state machine is fast (issue 18: the HA answered 44–49k/s over UDP
//! against 180–450k/s for its state machine alone).
use super::{Peer, Transmit};

/// Datagrams taken per batch (and the size of one `recvmmsg`).
pub const RX_SLOTS: usize = 64;
/// Room for one datagram in a batch. Signaling messages fit in far less (a
/// PBU or an RRQ with every option is under 1 KiB); a larger datagram is
/// truncated by the kernel, and dropped and counted ([`RxBatch::truncated`]).
pub const RX_SLOT_LEN: usize = 4096;

/// Datagrams received in one call, each in a slot of its own.
pub struct RxBatch {
    data: Box<[u8]>,
    /// Slots filled so far (the next free one is `used`).
    used: usize,
    /// The datagrams kept: peer, slot, length. A filter drops entries here
    /// without moving bytes.
    got: Vec<(Peer, u16, u16)>,
    /// Datagrams longer than a slot, dropped since the batch was made.
    pub truncated: u64,
}

impl Default for RxBatch {
    fn default() -> Self {
        RxBatch::new()
    }
}

impl RxBatch {
    pub fn new() -> RxBatch {
        RxBatch {
            data: vec![0u8; RX_SLOTS * RX_SLOT_LEN].into_boxed_slice(),
            used: 0,
            got: Vec::with_capacity(RX_SLOTS),
            truncated: 0,
        }
    }

    /// Empties the batch (the `truncated` count stays).
    pub fn clear(&mut self) {
        self.used = 0;
        self.got.clear();
    }

    /// Datagrams kept.
    pub fn len(&self) -> usize {
        self.got.len()
    }

    pub fn is_empty(&self) -> bool {
        self.got.is_empty()
    }

    /// Slots taken since the last `clear`, by kept and dropped datagrams.
    pub fn slots_used(&self) -> usize {
        self.used
    }

    /// Free slots left.
    pub fn room(&self) -> usize {
        RX_SLOTS - self.used
    }

    /// The kept datagrams, in the order they were received.
    pub fn iter(&self) -> impl Iterator<Item = (Peer, &[u8])> + '_ {
        self.got.iter().map(|&(p, slot, len)| {
            let at = usize::from(slot) * RX_SLOT_LEN;
            (p, &self.data[at..at + usize::from(len)])
        })
    }

    /// The free slots, in order, for one receive call: `push` then takes
    /// them one by one from the first.
    pub fn free_slots(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.data[self.used * RX_SLOT_LEN..].chunks_exact_mut(RX_SLOT_LEN)
    }

    /// The next free slot (for a transport that reads one datagram at a time).
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        self.free_slots().next()
    }

    /// Takes the next free slot: it holds `len` bytes from `peer`.
    pub fn push(&mut self, peer: Peer, len: usize) {
        debug_assert!(self.used < RX_SLOTS && len <= RX_SLOT_LEN);
        self.got
            .push((peer, self.used as u16, len.min(RX_SLOT_LEN) as u16));
        self.used += 1;
    }

    /// Takes the next free slot for a datagram that did not fit: it is
    /// dropped and counted.
    pub fn push_truncated(&mut self) {
        self.used += 1;
        self.truncated += 1;
    }

    /// Rewrites each datagram from the `start`th on in its slot: `f` gets
    /// its peer and bytes and returns what the slot holds now (a peer and
    /// a length no larger than before), or `None` to drop it (ESP opened in
    /// place, `pmipv6/transport/esp.rs`).
    pub fn rewrite_from(
        &mut self,
        start: usize,
        mut f: impl FnMut(Peer, &mut [u8]) -> Option<(Peer, usize)>,
    ) {
        let mut i = start;
        while i < self.got.len() {
            let (peer, slot, len) = self.got[i];
            let at = usize::from(slot) * RX_SLOT_LEN;
            match f(peer, &mut self.data[at..at + usize::from(len)]) {
                Some((p, n)) => {
                    self.got[i] = (p, slot, n.min(usize::from(len)) as u16);
                    i += 1;
                }
                None => {
                    self.got.remove(i);
                }
            }
        }
    }

    /// Keeps only the datagrams whose peer passes `f`.
    pub fn retain(&mut self, f: impl FnMut(&Peer) -> bool) {
        self.retain_from(0, f);
    }

    /// Keeps, of the datagrams from the `start`th on, only those whose peer
    /// passes `f` (each is asked once, whatever a filter before did).
    pub fn retain_from(&mut self, start: usize, mut f: impl FnMut(&Peer) -> bool) {
        let mut i = start;
        while i < self.got.len() {
            if f(&self.got[i].0) {
                i += 1;
            } else {
                self.got.remove(i);
            }
        }
    }
}

/// The datagrams of one `UDP_GRO` read (`sys::mmsg::recv_gro`), handed
/// out one by one: a run of up to 64 datagrams from one peer costs one
/// read and one skb instead of one each (issue 18). What a batch has no
/// room for stays here for the next call.
pub struct GroRx {
    buf: Box<[u8]>,
    peer: Option<Peer>,
    /// Bytes held, the size of each datagram in them, and the next one's offset.
    len: usize,
    segment: usize,
    at: usize,
    /// Datagrams longer than a batch slot, and reads cut by the buffer: dropped.
    pub truncated: u64,
}

impl Default for GroRx {
    fn default() -> Self {
        GroRx::new()
    }
}

impl GroRx {
    /// The largest UDP payload over IPv4 fits.
    const BUF: usize = 65_536;

    pub fn new() -> GroRx {
        GroRx {
            buf: vec![0u8; Self::BUF].into_boxed_slice(),
            peer: None,
            len: 0,
            segment: 0,
            at: 0,
            truncated: 0,
        }
    }

    /// Whether datagrams of the last read are still held.
    pub fn holds(&self) -> bool {
        self.at < self.len
    }

    /// The buffer for the next read (nothing must be held).
    pub fn buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The last read put `r` in the buffer.
    pub fn filled(&mut self, r: crate::sys::mmsg::GroRead) {
        self.at = 0;
        self.len = r.len.min(self.buf.len());
        self.segment = r.segment.unwrap_or(self.len).max(1);
        self.peer = r.peer;
        if r.truncated || r.peer.is_none() {
            // A cut run cannot be told apart; an unknown family is not ours.
            self.truncated += 1;
            self.len = 0;
        }
    }

    /// The next held datagram.
    pub fn next_datagram(&mut self) -> Option<(Peer, &[u8])> {
        let peer = self.peer?;
        if !self.holds() {
            return None;
        }
        let end = (self.at + self.segment).min(self.len);
        let d = &self.buf[self.at..end];
        self.at = end;
        Some((peer, d))
    }

    /// Moves held datagrams into `batch` while it has room; a datagram
    /// longer than a slot is dropped and counted.
    pub fn move_into(&mut self, batch: &mut RxBatch) {
        while batch.room() > 0 {
            let Some((peer, d)) = self.next_datagram() else {
                return;
            };
            let n = d.len();
            let (at, seg) = (self.at - n, n);
            match batch.next_slot() {
                Some(slot) if seg <= slot.len() => {
                    slot[..seg].copy_from_slice(&self.buf[at..at + seg]);
                    batch.push(peer, seg);
                }
                _ => batch.push_truncated(),
            }
        }
    }
}

/// What a batch send did: how many went, and which did not (their
/// positions in the batch, ascending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub ok: u64,
    pub failed: Vec<usize>,
}

impl Sent {
    /// Adds the outcome of a sub-batch whose `i`th datagram was the
    /// `at[i]`th of this one.
    pub fn add(&mut self, o: Sent, at: &[usize]) {
        self.ok += o.ok;
        self.failed.extend(o.failed.iter().map(|&i| at[i]));
        self.failed.sort_unstable();
    }
}

/// `sendmmsg` on a datagram socket registered with tokio, waiting for
/// space; a message the kernel refuses is counted and skipped.
pub(crate) async fn send_all<F: std::os::fd::AsRawFd>(
    fd: &tokio::io::unix::AsyncFd<F>,
    ts: &[&Transmit],
) -> Sent {
    let mut out = Sent::default();
    let mut rest = ts;
    while !rest.is_empty() {
        let at = ts.len() - rest.len();
        let mut g = match fd.writable().await {
            Ok(g) => g,
            Err(_) => {
                out.failed.extend(at..ts.len());
                break;
            }
        };
        match g.try_io(|fd| crate::sys::mmsg::send_batch(fd.get_ref().as_raw_fd(), rest)) {
            Ok(Ok(n)) => {
                out.ok += n as u64;
                rest = &rest[n..];
            }
            Ok(Err(e)) => {
                out.failed.push(at);
                tracing::debug!("send to {:?} failed: {e}", rest[0].peer);
                rest = &rest[1..];
            }
            Err(_would_block) => {}
        }
    }
    out
}

/// Sends `ts` one by one over `t` (the default for transports without a
/// batched path).
pub(crate) async fn send_each<T: super::Transport + ?Sized>(t: &T, ts: &[Transmit]) -> Sent {
    let mut s = Sent::default();
    for (i, x) in ts.iter().enumerate() {
        match t.send(x).await {
            Ok(()) => s.ok += 1,
            Err(e) => {
                s.failed.push(i);
                tracing::debug!("send to {:?} failed: {e}", x.peer);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn v4(last: u8) -> Peer {
        Peer::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), 434))
    }

    #[test]
    fn slots_fill_in_order_and_filter_keeps_bytes() {
        let mut b = RxBatch::new();
        for i in 0..3u8 {
            let s = b.next_slot().unwrap();
            s[..2].copy_from_slice(&[i, i]);
            b.push(v4(i), 2);
        }
        b.push_truncated();
        assert_eq!((b.len(), b.room(), b.truncated), (3, RX_SLOTS - 4, 1));
        b.retain(|p| *p != v4(1));
        let got: Vec<_> = b.iter().map(|(p, d)| (p, d.to_vec())).collect();
        assert_eq!(got, vec![(v4(0), vec![0, 0]), (v4(2), vec![2, 2])]);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.room(), RX_SLOTS);
        assert_eq!(b.free_slots().count(), RX_SLOTS);
    }

    #[test]
    fn rewrite_opens_in_place_drops_and_never_grows() {
        let mut b = RxBatch::new();
        for i in 0..4u8 {
            let s = b.next_slot().unwrap();
            s[..4].copy_from_slice(&[i, 9, 9, i]);
            b.push(v4(i), 4);
        }
        // From the second on: drop 2, strip the first byte of the others,
        // and a claim of more bytes than the datagram had is cut to it.
        b.rewrite_from(1, |p, d| match d[0] {
            2 => None,
            3 => Some((v4(30), 100)),
            _ => {
                d.copy_within(1.., 0);
                Some((p, d.len() - 1))
            }
        });
        let got: Vec<_> = b.iter().map(|(p, d)| (p, d.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (v4(0), vec![0, 9, 9, 0]),
                (v4(1), vec![9, 9, 1]),
                (v4(30), vec![3, 9, 9, 3]),
            ]
        );
        assert_eq!(b.slots_used(), 4);
    }

    /// A held run goes into as many batches as it needs, in order.
    #[test]
    fn a_gro_run_fills_the_room_and_keeps_the_rest() {
        let mut gro = GroRx::new();
        let data: Vec<u8> = (0..25u8).collect();
        gro.buffer()[..25].copy_from_slice(&data);
        gro.filled(crate::sys::mmsg::GroRead {
            peer: Some(v4(7)),
            len: 25,
            segment: Some(10),
            truncated: false,
        });
        let mut b = RxBatch::new();
        while b.room() > 2 {
            b.push(v4(1), 0);
        }
        gro.move_into(&mut b);
        assert!(gro.holds());
        let tail: Vec<_> = b
            .iter()
            .skip(RX_SLOTS - 2)
            .map(|(p, d)| (p, d.to_vec()))
            .collect();
        assert_eq!(
            tail,
            vec![(v4(7), data[..10].to_vec()), (v4(7), data[10..20].to_vec())]
        );
        b.clear();
        gro.move_into(&mut b);
        assert!(!gro.holds());
        let got: Vec<_> = b.iter().map(|(p, d)| (p, d.to_vec())).collect();
        assert_eq!(got, vec![(v4(7), data[20..].to_vec())]);
        // A cut read is dropped whole and counted.
        gro.filled(crate::sys::mmsg::GroRead {
            peer: Some(v4(7)),
            len: 25,
            segment: Some(10),
            truncated: true,
        });
        assert!(gro.next_datagram().is_none());
        assert_eq!(gro.truncated, 1);
    }
}
