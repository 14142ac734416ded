//! Our Registration Revocation identifiers (RFC 3543), kept growing across
//! restarts.
//!
//! A peer acts on a revocation only if its identifier is newer than the
//! last one it saw from us (RFC 3543 §4; here [`super::auth::fresh_revocation`],
//! modulo 2^32); an older one it acknowledges and ignores as a replay. The
//! identifiers start from our clock (NTP seconds) and count up by one a
//! revocation, so an agent that sent more revocations than seconds went by
//! runs ahead of its clock — a busy HA revokes the old PMA at every
//! handover — and after a restart a counter seeded from the clock again
//! starts below what its peers last saw: they would acknowledge its next
//! revocations and keep the bindings. With a durable store the counter
//! therefore reserves its identifiers in the node record, a block at a
//! time, and a restart starts above the reservation (or at the clock, if
//! that is later).
//!
//! ```text
//!  start: next = later(clock, node.revocation_ids_from); write from = next + BLOCK
//!  next(): next += 1; half the block used → write from = next + BLOCK (before it is reached)
//! ```
use crate::store::{NodeRecord, Record, RecordKey, StoreOp};

/// Identifiers reserved by one write of the node record.
const BLOCK: u32 = 4096;

/// `b` if it comes after `a` in the identifiers' circular order, else `a`.
fn later(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 {
        b
    } else {
        a
    }
}

#[derive(Debug)]
pub(crate) struct RevocationIds {
    next: u32,
    /// With a durable store: the node record as last queued, whose
    /// `revocation_ids_from` is above every identifier handed out.
    node: Option<NodeRecord>,
}

impl RevocationIds {
    /// Counting from `clock` (NTP seconds now), nothing kept: a restart
    /// starts from its clock again.
    pub(crate) fn from_clock(clock: u32) -> Self {
        RevocationIds {
            next: clock,
            node: None,
        }
    }

    /// Continues above what the last run reserved in `node` (the node
    /// record the store kept), and returns the write that reserves the
    /// first block: from here on every identifier is below a reservation
    /// the store holds or is about to.
    pub(crate) fn resume(&mut self, node: NodeRecord) -> StoreOp {
        if let Some(from) = node.revocation_ids_from {
            self.next = later(self.next, from);
        }
        self.reserve(node)
    }

    fn reserve(&mut self, mut node: NodeRecord) -> StoreOp {
        node.revocation_ids_from = Some(self.next.wrapping_add(BLOCK));
        self.node = Some(node.clone());
        StoreOp::Put(RecordKey::Node, Record::Node(node))
    }

    /// The next identifier, and the write that reserves a new block once
    /// half of the current one is used (written long before it runs out).
    pub(crate) fn next(&mut self) -> (u32, Option<StoreOp>) {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        let low = self
            .node
            .as_ref()
            .and_then(|n| n.revocation_ids_from)
            .is_some_and(|from| from.wrapping_sub(self.next) <= BLOCK / 2);
        let op = match (&self.node, low) {
            (Some(n), true) => Some(self.reserve(n.clone())),
            _ => None,
        };
        (id, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(op: &StoreOp) -> u32 {
        match op {
            StoreOp::Put(RecordKey::Node, Record::Node(n)) => n.revocation_ids_from.unwrap(),
            other => panic!("not a node record: {other:?}"),
        }
    }

    fn node(from: Option<u32>) -> NodeRecord {
        NodeRecord {
            restart_counter: 7,
            revocation_ids_from: from,
        }
    }

    #[test]
    fn without_a_store_it_counts_from_the_clock_and_writes_nothing() {
        let mut r = RevocationIds::from_clock(1000);
        for i in 0..10_000 {
            assert_eq!(r.next(), (1000 + i, None));
        }
    }

    /// A run that revoked more often than once a second, restarted: its
    /// successor starts above every identifier it used, whatever the clock.
    #[test]
    fn a_restart_starts_above_everything_the_last_run_used() {
        let mut a = RevocationIds::from_clock(5_000);
        let mut stored = mark(&a.resume(node(None)));
        assert_eq!(stored, 5_000 + BLOCK);
        let mut last = 0;
        for _ in 0..3 * BLOCK + 17 {
            let (id, op) = a.next();
            assert!(id < stored, "{id} handed out past the reservation {stored}");
            if let Some(op) = op {
                let m = mark(&op);
                assert!(m > stored);
                stored = m;
            }
            last = id;
        }
        // Restarted 20 s later: the clock is far behind the last run.
        let mut b = RevocationIds::from_clock(5_020);
        let op = b.resume(node(Some(stored)));
        let (first, _) = b.next();
        assert!(first > last, "{first} after {last}");
        assert_eq!(first, stored);
        assert_eq!(mark(&op), stored + BLOCK);
        // The restart counter in the record is kept as it was.
        let StoreOp::Put(_, Record::Node(n)) = op else {
            unreachable!()
        };
        assert_eq!(n.restart_counter, 7);
    }

    #[test]
    fn a_clock_past_the_reservation_wins_and_wrapping_is_circular() {
        let mut r = RevocationIds::from_clock(90_000);
        r.resume(node(Some(10_000)));
        assert_eq!(r.next().0, 90_000, "down long enough: the clock");
        // Near the end of the 32-bit space: a mark just past the wrap is later.
        let mut w = RevocationIds::from_clock(u32::MAX - 5);
        let op = w.resume(node(Some(3)));
        assert_eq!(w.next().0, 3);
        assert_eq!(mark(&op), 3 + BLOCK);
        let mut w = RevocationIds::from_clock(2);
        w.resume(node(Some(u32::MAX - 1)));
        assert_eq!(w.next().0, 2, "a mark before the wrap is earlier");
    }
}
