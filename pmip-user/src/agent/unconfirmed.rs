//! Answers that accept a *new* binding, held to the fate of the binding's
//! first write (STYLE §10: durable before the peer hears of it).
//!
//! The shell writes a pass's records before it sends the pass's answers,
//! and tells the registrar how the write went (`Endpoint::stored`). When
//! the store refused it, each answer that accepted a new binding of that
//! batch becomes the protocol's insufficient-resources answer (PBA status
//! 130, RFC 5213 §8.9; RRP code 130, RFC 3344 §3.4) and the registrar takes
//! the binding back — an anchor cut off from etcd must not acknowledge a
//! binding no other anchor could take over (issue 17). Refreshes of
//! bindings already written are not held: they go on in memory and in the
//! maps, and their records are written again with the next batch.
use std::collections::VecDeque;

use bytes::Bytes;

use super::Transmit;

/// Most answers held between two drains of the store's queue. A shell
/// drains it after every pass (at most a burst of datagrams); a driver that
/// never does (a benchmark of the bare state machine) must not grow it.
const MAX_HELD: usize = 4096;
/// Most writes in flight whose answers are held (a shell has at most a few;
/// a driver that never reports a result must not grow the queue).
const MAX_WRITES: usize = 64;

/// New bindings of one registrar whose first write is not known to have
/// succeeded, keyed by what the registrar finds them by (`K`), with what it
/// needs to build the refusal (`R`) — built only if one is due, so an
/// accepted registration costs no second encoding.
///
/// With several writes in flight (issue 17) each write has its own
/// generation: `drained` starts one, `stored` settles the oldest. A
/// retransmitted request of a binding whose first write is still in flight
/// is held to that write ([`Unconfirmed::follow`]): refused with it, let go
/// with it.
#[derive(Debug)]
pub(crate) struct Unconfirmed<K, R> {
    /// The binding the request being processed created (taken right after).
    created: Option<K>,
    /// Whether that request only repeated one whose first write is in flight.
    following: bool,
    /// Held since the store's queue was last drained.
    noted: Vec<Held<K, R>>,
    /// Whether a write was taken from the queue since the last drain.
    took: bool,
    /// Those of each write in flight, oldest first.
    writing: VecDeque<Vec<Held<K, R>>>,
}

/// An answer accepting a new binding, and what its refusal is made from.
#[derive(Debug)]
pub(crate) struct Held<K, R> {
    pub key: K,
    pub accept: Transmit,
    pub refusal: R,
    /// A repeated request of a binding whose first write was in flight: its
    /// refusal goes with that write's, the binding is taken back once.
    pub follower: bool,
}

impl<K, R> Default for Unconfirmed<K, R> {
    fn default() -> Self {
        Unconfirmed {
            created: None,
            following: false,
            noted: Vec::new(),
            took: false,
            writing: VecDeque::new(),
        }
    }
}

impl<K: PartialEq, R> Unconfirmed<K, R> {
    /// The request being processed created the binding `key`.
    pub(crate) fn created(&mut self, key: K) {
        self.created = Some(key);
        self.following = false;
    }

    /// The request being processed refreshed the binding `key`: when its
    /// first write is not known to be written yet, its answer is held to it.
    pub(crate) fn follow(&mut self, key: K) {
        if self.in_flight(&key) {
            self.created = Some(key);
            self.following = true;
        }
    }

    /// Whether `key` is a new binding whose first write is not settled.
    pub(crate) fn in_flight(&self, key: &K) -> bool {
        let first = |h: &Held<K, R>| h.key == *key && !h.follower;
        self.noted.iter().any(first) || self.writing.iter().flatten().any(first)
    }

    /// The binding the request just processed created, if it did.
    pub(crate) fn take_created(&mut self) -> Option<K> {
        self.created.take()
    }

    /// `accept` (already queued) accepts the new binding `key`; `refusal`
    /// makes the answer that goes instead if its record is not written.
    pub(crate) fn hold(&mut self, key: K, accept: Transmit, refusal: R) {
        let follower = std::mem::take(&mut self.following);
        if self.noted.len() < MAX_HELD {
            self.noted.push(Held {
                key,
                accept,
                refusal,
                follower,
            });
        }
    }

    /// The shell took a write from the queue.
    pub(crate) fn took(&mut self) {
        self.took = true;
    }

    /// The shell took every queued write: what was held is in its batch.
    pub(crate) fn drained(&mut self) {
        if !std::mem::take(&mut self.took) {
            return; // no write: what is held (nothing) waits for the next
        }
        if self.writing.len() == MAX_WRITES {
            self.writing.pop_front();
        }
        self.writing.push_back(std::mem::take(&mut self.noted));
    }

    /// The oldest write in flight was written (`ok`: its held answers go
    /// as they are, and so do those of the requests that repeated them) or
    /// refused: the held answers of its new bindings, and of the repeats,
    /// to refuse and take back.
    pub(crate) fn stored(&mut self, ok: bool) -> Vec<Held<K, R>> {
        let Some(mut held) = self.writing.pop_front() else {
            return Vec::new();
        };
        let mut repeats = Vec::new();
        for later in self.writing.iter_mut().chain([&mut self.noted]) {
            let mut i = 0;
            while i < later.len() {
                if later[i].follower && held.iter().any(|h| h.key == later[i].key) {
                    repeats.push(later.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        if ok {
            return Vec::new();
        }
        held.extend(repeats);
        held
    }
}

/// Puts `refusal` in place of the answer `accept` if it is still queued in
/// `tx` (it is: the shell sends after it has told the registrar); whether
/// it was.
pub(crate) fn swap<'a>(
    tx: impl IntoIterator<Item = &'a mut Transmit>,
    accept: &Transmit,
    refusal: Bytes,
) -> bool {
    match tx.into_iter().find(|t| **t == *accept) {
        Some(t) => {
            t.payload = refusal;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Peer;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn t(n: u8, body: &'static [u8]) -> Transmit {
        Transmit::new(
            Peer::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 434)),
            body,
        )
    }

    #[test]
    fn a_refused_batch_gives_its_new_bindings_back_for_refusal() {
        let mut u = Unconfirmed::default();
        let mut tx = VecDeque::from([t(1, b"refresh ok"), t(2, b"new ok"), t(3, b"new ok")]);
        u.created(2u32);
        assert_eq!(u.take_created(), Some(2));
        assert_eq!(u.take_created(), None);
        u.hold(2, t(2, b"new ok"), "r2");
        u.hold(3, t(3, b"new ok"), "r3");
        u.took();
        u.drained();
        let back = u.stored(false);
        let got: Vec<_> = back.iter().map(|h| (h.key, h.refusal)).collect();
        assert_eq!(got, [(2, "r2"), (3, "r3")]);
        for h in back {
            swap(&mut tx, &h.accept, Bytes::from_static(b"130"));
        }
        let bodies: Vec<&[u8]> = tx.iter().map(|t| &t.payload[..]).collect();
        assert_eq!(bodies, [b"refresh ok".as_slice(), b"130", b"130"]);
        // Each batch once: nothing is held any more.
        assert!(u.stored(false).is_empty());
    }

    #[test]
    fn a_written_batch_lets_its_answers_go_and_later_ones_wait_for_theirs() {
        let mut u = Unconfirmed::default();
        u.hold(1u32, t(1, b"new ok"), ());
        u.took();
        u.drained();
        // Held after the drain: the next batch's.
        u.hold(2, t(2, b"new ok"), ());
        assert!(u.stored(true).is_empty());
        u.took();
        u.drained();
        let back: Vec<u32> = u.stored(false).into_iter().map(|h| h.key).collect();
        assert_eq!(back, [2]);
    }

    #[test]
    fn a_driver_that_never_drains_does_not_grow_it() {
        let mut u = Unconfirmed::default();
        for k in 0..MAX_HELD as u32 + 10 {
            u.hold(k, t(1, b"new ok"), ());
        }
        u.took();
        u.drained();
        assert_eq!(u.stored(false).len(), MAX_HELD);
        for _ in 0..MAX_WRITES + 10 {
            u.took();
            u.drained();
        }
        assert_eq!(u.writing.len(), MAX_WRITES);
    }

    /// Two writes in flight: each result settles its own generation, oldest
    /// first, and a pass without writes starts none.
    #[test]
    fn each_write_in_flight_settles_its_own_answers() {
        let mut u = Unconfirmed::default();
        u.hold(1u32, t(1, b"new ok"), ());
        u.took();
        u.drained();
        u.drained(); // a pass without writes
        u.hold(2, t(2, b"new ok"), ());
        u.took();
        u.drained();
        assert!(u.in_flight(&1) && u.in_flight(&2));
        // Write N refused with N+1 in flight: only N's answers are refused.
        let back: Vec<u32> = u.stored(false).into_iter().map(|h| h.key).collect();
        assert_eq!(back, [1]);
        assert!(!u.in_flight(&1));
        let back: Vec<u32> = u.stored(false).into_iter().map(|h| h.key).collect();
        assert_eq!(back, [2]);
        assert!(u.stored(false).is_empty());
    }

    /// A retransmission of a binding whose first write is in flight is held
    /// to that write: refused with it (not answered as a refresh).
    #[test]
    fn a_repeat_of_a_binding_in_flight_goes_with_its_first_write() {
        let mut u = Unconfirmed::default();
        u.created(1u32);
        u.take_created();
        u.hold(1, t(1, b"new ok"), "first");
        u.took();
        u.drained();
        // Pass N+1: the MAG's retransmission refreshes binding 1, and
        // binding 2 is new.
        u.follow(1);
        assert_eq!(u.take_created(), Some(1));
        u.hold(1, t(1, b"again ok"), "repeat");
        u.created(2);
        u.take_created();
        u.hold(2, t(2, b"new ok"), "second");
        u.took();
        u.drained();
        let back: Vec<_> = u
            .stored(false)
            .into_iter()
            .map(|h| (h.key, h.refusal, h.follower))
            .collect();
        assert_eq!(back, [(1, "first", false), (1, "repeat", true)]);
        let back: Vec<_> = u.stored(true).into_iter().map(|h| h.key).collect();
        assert!(back.is_empty());
        // Not in flight any more: a refresh is a refresh.
        u.follow(2);
        assert_eq!(u.take_created(), None);
    }

    #[test]
    fn a_written_first_write_lets_its_repeats_go_as_refreshes() {
        let mut u = Unconfirmed::default();
        u.hold(1u32, t(1, b"new ok"), ());
        u.took();
        u.drained();
        u.follow(1);
        u.take_created();
        u.hold(1, t(1, b"again ok"), ());
        u.took();
        u.drained();
        assert!(u.stored(true).is_empty());
        // The repeat's write (a refresh now) refused: nothing to take back.
        assert!(u.stored(false).is_empty());
    }
}
