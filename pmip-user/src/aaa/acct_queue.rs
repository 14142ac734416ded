//! The accounting queue: every record stays until a server acknowledges it.
//!
//! - Per session, records go out in order, one at a time (a Stop never overtakes its Start);
//!   different sessions go out in parallel.
//! - A new Interim-Update or Stop replaces the session's last queued, not yet sent
//!   Interim-Update: counters are cumulative, so the newer record says all the older one did.
//! - Past the limit, the oldest queued Interim-Update is dropped first, else the oldest queued
//!   record; each drop is counted and handed back to the caller (nothing is lost silently).
use std::collections::{BTreeSet, HashMap, VecDeque};

use super::accounting::{AcctRecord, AcctStatus};

struct Entry {
    rec: AcctRecord,
    in_flight: bool,
    /// In `ready` (only a chain's head can be).
    queued_ready: bool,
}

#[derive(Default)]
pub(crate) struct AcctQueue {
    entries: HashMap<u64, Entry>,
    /// Every entry, oldest first.
    order: BTreeSet<u64>,
    /// Per Acct-Session-Id, its records in order; the head is the one that may be sent.
    chains: HashMap<String, VecDeque<u64>>,
    ready: VecDeque<u64>,
    limit: usize,
    next_seq: u64,
    pub(crate) dropped: u64,
    pub(crate) superseded: u64,
}

impl AcctQueue {
    pub(crate) fn new(limit: usize) -> Self {
        AcctQueue {
            limit: limit.max(1),
            ..AcctQueue::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Queues `rec`; returns a record dropped to make room, if one was.
    pub(crate) fn push(&mut self, rec: AcctRecord) -> Option<AcctRecord> {
        let key = rec.session.session_id.clone();
        let chain = self.chains.entry(key).or_default();
        if matches!(rec.status, AcctStatus::InterimUpdate | AcctStatus::Stop) {
            if let Some(e) = chain.back().and_then(|s| self.entries.get_mut(s)) {
                if e.rec.status == AcctStatus::InterimUpdate && !e.in_flight {
                    e.rec = rec;
                    self.superseded += 1;
                    return None;
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        chain.push_back(seq);
        let head = chain.len() == 1;
        self.entries.insert(
            seq,
            Entry {
                rec,
                in_flight: false,
                queued_ready: false,
            },
        );
        self.order.insert(seq);
        if head {
            self.make_ready(seq);
        }
        if self.entries.len() > self.limit {
            return self.drop_one();
        }
        None
    }

    fn drop_one(&mut self) -> Option<AcctRecord> {
        let idle = |s: &&u64| self.entries.get(s).is_some_and(|e| !e.in_flight);
        let victim = self
            .order
            .iter()
            .filter(idle)
            .find(|s| self.entries[s].rec.status == AcctStatus::InterimUpdate)
            .or_else(|| self.order.iter().find(idle))
            .copied()?;
        self.dropped += 1;
        self.remove(victim)
    }

    /// Removes an entry wherever it is; the next of its session becomes sendable.
    fn remove(&mut self, seq: u64) -> Option<AcctRecord> {
        let e = self.entries.remove(&seq)?;
        self.order.remove(&seq);
        let key = &e.rec.session.session_id;
        if let Some(chain) = self.chains.get_mut(key) {
            let was_head = chain.front() == Some(&seq);
            chain.retain(|s| *s != seq);
            match chain.front().copied() {
                None => {
                    self.chains.remove(key);
                }
                Some(next) if was_head => self.make_ready(next),
                Some(_) => {}
            }
        }
        Some(e.rec)
    }

    /// A chain head that may be sent again (after a back-off); no-op for anything else.
    pub(crate) fn make_ready(&mut self, seq: u64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            if !e.in_flight && !e.queued_ready {
                e.queued_ready = true;
                self.ready.push_back(seq);
            }
        }
    }

    /// The next record to send; it is in flight until `acked` or `failed`.
    pub(crate) fn pop_ready(&mut self) -> Option<(u64, &AcctRecord)> {
        while let Some(seq) = self.ready.pop_front() {
            if let Some(e) = self.entries.get_mut(&seq) {
                if e.queued_ready {
                    e.queued_ready = false;
                    e.in_flight = true;
                    return Some((seq, &self.entries[&seq].rec));
                }
            }
        }
        None
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&AcctRecord> {
        self.entries.get(&seq).map(|e| &e.rec)
    }

    /// A server acknowledged `seq`.
    pub(crate) fn acked(&mut self, seq: u64) -> Option<AcctRecord> {
        self.remove(seq)
    }

    /// No server acknowledged `seq`: it waits for `make_ready` (the caller's back-off).
    pub(crate) fn failed(&mut self, seq: u64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            e.in_flight = false;
        }
    }

    /// Every record not yet acknowledged, oldest first.
    pub(crate) fn undelivered(&self) -> Vec<AcctRecord> {
        self.order
            .iter()
            .map(|s| self.entries[s].rec.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::accounting::{AcctSession, Traffic};

    fn rec(session: &str, status: AcctStatus, octets: u64) -> AcctRecord {
        AcctRecord {
            status,
            session: AcctSession {
                session_id: session.into(),
                ..AcctSession::default()
            },
            traffic: Traffic {
                input_octets: octets,
                ..Traffic::default()
            },
            session_time: 0,
            terminate_cause: None,
            event_unix: 0,
        }
    }

    #[test]
    fn one_record_per_session_in_flight_in_order() {
        let mut q = AcctQueue::new(100);
        q.push(rec("a", AcctStatus::Start, 0));
        q.push(rec("a", AcctStatus::Stop, 5));
        q.push(rec("b", AcctStatus::Start, 0));
        let (a1, r) = q.pop_ready().unwrap();
        assert_eq!(
            (r.session.session_id.as_str(), r.status),
            ("a", AcctStatus::Start)
        );
        let (b1, _) = q.pop_ready().unwrap();
        assert!(q.pop_ready().is_none(), "a's Stop waits for its Start");
        q.failed(a1);
        assert!(
            q.pop_ready().is_none(),
            "a failed one waits for its back-off"
        );
        q.make_ready(a1);
        assert_eq!(q.pop_ready().unwrap().0, a1);
        q.acked(a1);
        let (a2, r) = q.pop_ready().unwrap();
        assert_eq!(r.status, AcctStatus::Stop);
        q.acked(a2);
        q.acked(b1);
        assert_eq!(q.len(), 0);
        assert!(q.chains.is_empty());
    }

    #[test]
    fn newer_interim_or_stop_replaces_a_queued_interim() {
        let mut q = AcctQueue::new(100);
        q.push(rec("a", AcctStatus::Start, 0));
        let (s, _) = q.pop_ready().unwrap();
        q.push(rec("a", AcctStatus::InterimUpdate, 1));
        q.push(rec("a", AcctStatus::InterimUpdate, 2));
        q.push(rec("a", AcctStatus::Stop, 3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.superseded, 2);
        q.acked(s);
        let (_, r) = q.pop_ready().unwrap();
        assert_eq!((r.status, r.traffic.input_octets), (AcctStatus::Stop, 3));
        // An in-flight Interim is not replaced.
        let mut q = AcctQueue::new(100);
        q.push(rec("a", AcctStatus::InterimUpdate, 1));
        q.pop_ready().unwrap();
        q.push(rec("a", AcctStatus::InterimUpdate, 2));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn overflow_drops_the_oldest_interim_first_and_says_so() {
        let mut q = AcctQueue::new(3);
        q.push(rec("a", AcctStatus::Start, 0));
        q.push(rec("b", AcctStatus::InterimUpdate, 1));
        q.push(rec("c", AcctStatus::Start, 0));
        let d = q.push(rec("d", AcctStatus::Start, 0)).unwrap();
        assert_eq!(d.session.session_id, "b");
        let d = q.push(rec("e", AcctStatus::Start, 0)).unwrap();
        assert_eq!(d.session.session_id, "a");
        assert_eq!((q.len(), q.dropped), (3, 2));
        let left: Vec<_> = q
            .undelivered()
            .into_iter()
            .map(|r| r.session.session_id)
            .collect();
        assert_eq!(left, ["c", "d", "e"]);
        // Dropped heads are not sent; the others are.
        let mut sent = Vec::new();
        while let Some((s, r)) = q.pop_ready() {
            sent.push(r.session.session_id.clone());
            q.acked(s);
        }
        assert_eq!(sent, ["c", "d", "e"]);
    }

    #[test]
    fn dropping_a_head_lets_the_next_of_its_session_go() {
        let mut q = AcctQueue::new(2);
        q.push(rec("a", AcctStatus::Start, 0));
        q.push(rec("a", AcctStatus::Stop, 1));
        let d = q.push(rec("b", AcctStatus::Start, 0)).unwrap();
        assert_eq!(d.status, AcctStatus::Start);
        let mut sent = Vec::new();
        while let Some((s, r)) = q.pop_ready() {
            sent.push((r.session.session_id.clone(), r.status));
            q.acked(s);
        }
        assert_eq!(
            sent,
            [
                ("b".into(), AcctStatus::Start),
                ("a".into(), AcctStatus::Stop)
            ]
        );
    }
}
