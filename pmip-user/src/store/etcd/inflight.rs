//! Several writes of one service address in flight at once (issue 17): the
//! bookkeeping that keeps them correct, without I/O.
//!
//! - A write that touches a key of a write still in flight is sent only
//!   after that write has finished (either way): etcd applies transactions
//!   in the order it receives them, so a later record of a key never lands
//!   before an earlier one and is then overwritten by it.
//! - A write that fails puts its unwritten operations back in `pending`
//!   (written again, first, with the next batch), but only those whose key
//!   no later write carries: that one has the newer record (each operation
//!   carries a whole record), and resending the older one after it would
//!   undo it.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::sync::watch;

use crate::store::{RecordKey, StoreOp};

/// What is in flight, and what failed and waits for the next batch.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    next: u64,
    /// The latest write begun that carries each key (until it finishes).
    latest: HashMap<RecordKey, u64>,
    /// Writes in flight: closed when the write finishes (its sender dropped).
    done: BTreeMap<u64, watch::Receiver<()>>,
    /// Operations of failed writes, by key, sent first with the next batch.
    pub(crate) pending: BTreeMap<RecordKey, StoreOp>,
}

/// A write to send: its number, its operations (what failed before first),
/// and the writes in flight it must wait for.
pub(crate) struct Started {
    pub seq: u64,
    pub ops: Vec<StoreOp>,
    pub after: Vec<watch::Receiver<()>>,
    /// Dropped when the write has finished (wakes the writes after it).
    pub finished: watch::Sender<()>,
    /// The numbers of the writes waited for (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub after_seqs: Vec<u64>,
}

impl InFlight {
    /// Starts a write of `batch`, with the pending operations it does not
    /// rewrite ahead of it.
    pub(crate) fn begin(&mut self, batch: &[StoreOp]) -> Started {
        // What failed before goes with this batch, unless the batch
        // rewrites it; one operation per key, the latest (etcd refuses a
        // transaction that names a key twice, and a pass may write a
        // binding twice, e.g. a refresh and its retransmission).
        let mut latest = std::mem::take(&mut self.pending);
        for op in batch {
            latest.insert(op.key().clone(), op.clone());
        }
        let ops: Vec<StoreOp> = latest.into_values().collect();
        let seq = self.next;
        self.next += 1;
        let mut after_seqs = BTreeSet::new();
        for op in &ops {
            if let Some(prev) = self.latest.insert(op.key().clone(), seq) {
                if prev != seq && self.done.contains_key(&prev) {
                    after_seqs.insert(prev);
                }
            }
        }
        let (finished, rx) = watch::channel(());
        self.done.insert(seq, rx);
        let after = after_seqs.iter().map(|s| self.done[s].clone()).collect();
        Started {
            seq,
            ops,
            after,
            finished,
            after_seqs: after_seqs.into_iter().collect(),
        }
    }

    /// Write `seq` of `ops` ended with its first `written` operations
    /// written: the others go back to `pending`, unless a later write
    /// carries their key.
    pub(crate) fn finish(&mut self, seq: u64, ops: Vec<StoreOp>, written: usize) {
        for (i, op) in ops.into_iter().enumerate() {
            if self.latest.get(op.key()) != Some(&seq) {
                continue; // a later write has a newer record of it
            }
            self.latest.remove(op.key());
            if i >= written {
                self.pending.insert(op.key().clone(), op);
            }
        }
        self.done.remove(&seq);
    }

    /// Writes in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.done.len()
    }
}

/// Waits until every write in `after` has finished.
pub(crate) async fn wait_for(after: Vec<watch::Receiver<()>>) {
    for mut rx in after {
        // Nothing is ever sent: `changed` ends when the sender is dropped.
        while rx.changed().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NodeRecord, Record};

    fn put(k: u32, v: u32) -> StoreOp {
        StoreOp::Put(
            RecordKey::Binding(k),
            Record::Node(NodeRecord { restart_counter: v }),
        )
    }

    fn keys(ops: &[StoreOp]) -> Vec<RecordKey> {
        ops.iter().map(|o| o.key().clone()).collect()
    }

    #[test]
    fn a_later_write_of_a_key_waits_for_the_earlier_one() {
        let mut f = InFlight::default();
        let a = f.begin(&[put(1, 1), put(2, 1)]);
        let b = f.begin(&[put(3, 1)]);
        let c = f.begin(&[put(2, 2), put(3, 2)]);
        assert!(a.after_seqs.is_empty());
        assert!(b.after_seqs.is_empty(), "no shared key: no wait");
        assert_eq!(c.after_seqs, [a.seq, b.seq]);
        // Once a has finished, a write of its keys waits for c only.
        f.finish(a.seq, a.ops, 2);
        let d = f.begin(&[put(1, 3), put(2, 3)]);
        assert_eq!(d.after_seqs, [c.seq]);
        assert_eq!(f.len(), 3);
    }

    #[tokio::test]
    async fn the_wait_ends_when_the_earlier_write_finishes() {
        let mut f = InFlight::default();
        let a = f.begin(&[put(1, 1)]);
        let b = f.begin(&[put(1, 2)]);
        let wait = tokio::spawn(wait_for(b.after));
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "b went before a finished");
        f.finish(a.seq, a.ops, 1);
        drop(a.finished);
        tokio::time::timeout(std::time::Duration::from_secs(5), wait)
            .await
            .expect("b still waits after a finished")
            .unwrap();
    }

    #[test]
    fn a_batch_naming_a_key_twice_writes_it_once_the_latest() {
        let mut f = InFlight::default();
        let n = f.begin(&[put(1, 1), put(2, 1)]);
        f.finish(n.seq, n.ops, 0);
        let n1 = f.begin(&[put(1, 2), put(3, 1), put(1, 3)]);
        assert_eq!(n1.ops, [put(1, 3), put(2, 1), put(3, 1)]);
    }

    #[test]
    fn a_failed_write_keeps_only_what_no_later_write_carries() {
        let mut f = InFlight::default();
        let n = f.begin(&[put(1, 1), put(2, 1)]);
        let n1 = f.begin(&[put(2, 2)]);
        // Write n refused with n+1 in flight: key 1 waits for the next
        // batch, key 2's newer record is n+1's.
        f.finish(n.seq, n.ops, 0);
        assert_eq!(
            keys(&f.pending.values().cloned().collect::<Vec<_>>()),
            [RecordKey::Binding(1)]
        );
        // n+1 refused too: its record of key 2 (the newest) is kept.
        f.finish(n1.seq, n1.ops, 0);
        assert_eq!(f.pending.get(&RecordKey::Binding(2)), Some(&put(2, 2)));
        // The next batch sends both, unless it rewrites them (one
        // operation per key, in key order).
        let next = f.begin(&[put(1, 9)]);
        assert_eq!(next.ops, [put(1, 9), put(2, 2)]);
        assert!(next.after_seqs.is_empty());
    }

    #[test]
    fn a_later_failure_does_not_bring_back_an_older_record() {
        let mut f = InFlight::default();
        let n = f.begin(&[put(1, 1)]);
        let n1 = f.begin(&[put(1, 2)]);
        // n fails while n+1 (which waits for it) is still to go.
        f.finish(n.seq, n.ops, 0);
        assert!(f.pending.is_empty(), "n's older record would undo n+1's");
        f.finish(n1.seq, n1.ops, 0);
        assert_eq!(f.pending.values().collect::<Vec<_>>(), [&put(1, 2)]);
    }

    #[test]
    fn a_written_operation_is_not_pending() {
        let mut f = InFlight::default();
        let n = f.begin(&[put(1, 1), put(2, 1), put(3, 1)]);
        f.finish(n.seq, n.ops, 2);
        assert_eq!(
            keys(&f.pending.values().cloned().collect::<Vec<_>>()),
            [RecordKey::Binding(3)]
        );
        assert_eq!(f.len(), 0);
    }
}
