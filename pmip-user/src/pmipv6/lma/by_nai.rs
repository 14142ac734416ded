//! The sessions of each MN identifier (usually one), found by a keyed hash
//! of the identifier rather than by a copy of it.
//!
//! Keyed by the identifier itself, the index held a second heap copy of
//! every NAI and a list per NAI (two allocations per new binding), and each
//! time it grew it hashed every NAI again with SipHash. Keyed by the NAI's
//! 64-bit SipHash under this LMA's random key, it holds no copy, grows by
//! moving integers, and keeps up to four sessions inline. A peer cannot
//! choose NAIs that collide in a randomly keyed SipHash, so the integer map
//! may use our fast hasher (`agent/idhash.rs`); two NAIs that do share a
//! hash still find only their own sessions, because [`NaiIndex::candidates`]
//! are checked against the binding's identifier by the caller
//! (`Lma::sessions_of`).
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use smallvec::SmallVec;

use crate::agent::idhash::IdMap;

/// Binding ids by the keyed hash of their MN identifier.
#[derive(Debug, Default)]
pub(super) struct NaiIndex {
    key: RandomState,
    ids: IdMap<u64, SmallVec<[u32; 4]>>,
}

impl NaiIndex {
    fn hash(&self, mn_id: &[u8]) -> u64 {
        self.key.hash_one(mn_id)
    }

    /// The bindings whose identifier may be `mn_id`, oldest first: those of
    /// `mn_id` and, rarely, of another identifier with the same hash.
    pub(super) fn candidates(&self, mn_id: &[u8]) -> &[u32] {
        self.ids
            .get(&self.hash(mn_id))
            .map_or(&[], |v| v.as_slice())
    }

    pub(super) fn insert(&mut self, mn_id: &[u8], id: u32) {
        let h = self.hash(mn_id);
        self.ids.entry(h).or_default().push(id);
    }

    pub(super) fn remove(&mut self, mn_id: &[u8], id: u32) {
        let h = self.hash(mn_id);
        if let Some(v) = self.ids.get_mut(&h) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.ids.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_out_in_order_and_go_one_by_one() {
        let mut ix = NaiIndex::default();
        for id in [7, 3, 9, 11, 12] {
            ix.insert(b"a@example.com", id);
        }
        ix.insert(b"b@example.com", 4);
        assert_eq!(ix.candidates(b"a@example.com"), [7, 3, 9, 11, 12]);
        ix.remove(b"a@example.com", 9);
        assert_eq!(ix.candidates(b"a@example.com"), [7, 3, 11, 12]);
        assert_eq!(ix.candidates(b"b@example.com"), [4]);
        ix.remove(b"b@example.com", 4);
        assert!(ix.candidates(b"b@example.com").is_empty());
        assert_eq!(
            ix.ids.len(),
            1,
            "an identifier without sessions leaves no entry"
        );
        assert!(ix.candidates(b"c@example.com").is_empty());
    }

    /// Two NAIs whose hashes collide share an entry; each still finds only
    /// its own sessions. (The collision is made by filing a's binding under
    /// b's hash: a keyed SipHash collision cannot be searched for here.)
    #[test]
    fn a_shared_hash_does_not_mix_two_nais_sessions() {
        use super::super::pba::tests::{lma, pbu, MAG};
        use crate::agent::{Endpoint, Peer};
        let now = std::time::Instant::now();
        let mut lma = lma(now);
        lma.handle(
            now,
            Peer::V6(MAG),
            &pbu("a@example.com", [2, 0, 0, 0, 0, 1]),
        );
        while lma.poll_store().is_some() {}
        lma.stored(now, true);
        let a = lma.binding(b"a@example.com").expect("a's binding").sub_id;
        lma.bce_by_id.insert(b"b@example.com", a);
        assert!(lma.bindings_of(b"b@example.com").is_empty());
        assert!(
            !lma.revoke(now, b"b@example.com", 1),
            "nothing of b's to revoke"
        );
        // b registers: a new session of its own, not a's taken over.
        lma.handle(
            now,
            Peer::V6(MAG),
            &pbu("b@example.com", [2, 0, 0, 0, 0, 1]),
        );
        while lma.poll_store().is_some() {}
        lma.stored(now, true);
        let b = lma.bindings_of(b"b@example.com");
        assert_eq!(b.len(), 1);
        assert_ne!(b[0].sub_id, a);
        assert_eq!(lma.binding_count(), 2);
        assert_eq!(lma.bindings_of(b"a@example.com").len(), 1);
    }
}
