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

/// New bindings of one registrar whose first write is not known to have
/// succeeded, keyed by what the registrar finds them by (`K`), with what it
/// needs to build the refusal (`R`) — built only if one is due, so an
/// accepted registration costs no second encoding.
#[derive(Debug)]
pub(crate) struct Unconfirmed<K, R> {
    /// The binding the request being processed created (taken right after).
    created: Option<K>,
    /// Held since the store's queue was last drained.
    noted: Vec<Held<K, R>>,
    /// Those whose records are in the batch the shell is writing now.
    writing: Vec<Held<K, R>>,
}

/// An answer accepting a new binding, and what its refusal is made from.
#[derive(Debug)]
pub(crate) struct Held<K, R> {
    pub key: K,
    pub accept: Transmit,
    pub refusal: R,
}

impl<K, R> Default for Unconfirmed<K, R> {
    fn default() -> Self {
        Unconfirmed {
            created: None,
            noted: Vec::new(),
            writing: Vec::new(),
        }
    }
}

impl<K, R> Unconfirmed<K, R> {
    /// The request being processed created the binding `key`.
    pub(crate) fn created(&mut self, key: K) {
        self.created = Some(key);
    }

    /// The binding the request just processed created, if it did.
    pub(crate) fn take_created(&mut self) -> Option<K> {
        self.created.take()
    }

    /// `accept` (already queued) accepts the new binding `key`; `refusal`
    /// makes the answer that goes instead if its record is not written.
    pub(crate) fn hold(&mut self, key: K, accept: Transmit, refusal: R) {
        if self.noted.len() < MAX_HELD {
            self.noted.push(Held {
                key,
                accept,
                refusal,
            });
        }
    }

    /// The shell took every queued write: what was held is in its batch.
    pub(crate) fn drained(&mut self) {
        self.writing = std::mem::take(&mut self.noted);
    }

    /// The batch was written (`ok`: nothing to do) or refused: the held
    /// answers of its new bindings, to refuse and take back.
    pub(crate) fn stored(&mut self, ok: bool) -> Vec<Held<K, R>> {
        let held = std::mem::take(&mut self.writing);
        if ok {
            Vec::new()
        } else {
            held
        }
    }
}

/// Puts `refusal` in place of the answer `accept` if it is still queued in
/// `tx` (it is: the shell sends after it has told the registrar).
pub(crate) fn swap(tx: &mut VecDeque<Transmit>, accept: &Transmit, refusal: Bytes) {
    if let Some(t) = tx.iter_mut().find(|t| *t == accept) {
        t.payload = refusal;
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
        u.drained();
        // Held after the drain: the next batch's.
        u.hold(2, t(2, b"new ok"), ());
        assert!(u.stored(true).is_empty());
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
        u.drained();
        assert_eq!(u.stored(false).len(), MAX_HELD);
    }
}
