//! Address affinity (issue 11): a home address released by a binding is
//! held for the subscriber that had it (by NAI / MN identifier), so that
//! the same subscriber attaching again — right after a deregistration, a
//! lease that ran out, a detach and re-attach — gets the same address and
//! is not refused for asking for it, while other subscribers are given
//! other free addresses. Only when the pool has nothing else is a held
//! address given to someone else, the longest-released first (what RFC 2131
//! §4.3.1 asks of a DHCP server: the client's previous address if it is
//! free, never-used addresses before released ones).
//!
//! A hold takes no timer and no memory beyond the pool: every held address
//! is a pool address no binding uses, and a subscriber holds at most one.
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub(crate) struct Affinity<A> {
    by_owner: HashMap<Vec<u8>, A>,
    owner_of: HashMap<A, Vec<u8>>,
    /// Release order, oldest first; entries no longer held are skipped.
    order: VecDeque<A>,
}

impl<A> Default for Affinity<A> {
    fn default() -> Self {
        Affinity {
            by_owner: HashMap::new(),
            owner_of: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<A: Copy + Eq + Hash> Affinity<A> {
    /// `a` was released by `owner`: held for it. Returns the address the
    /// owner held before, if any (now free for anyone).
    pub(crate) fn hold(&mut self, a: A, owner: &[u8]) -> Option<A> {
        self.forget(a);
        let before = self.by_owner.insert(owner.to_vec(), a);
        if let Some(b) = before {
            self.owner_of.remove(&b);
        }
        self.owner_of.insert(a, owner.to_vec());
        self.order.push_back(a);
        self.compact();
        before
    }

    /// The address held for `owner`.
    pub(crate) fn held_for(&self, owner: &[u8]) -> Option<A> {
        self.by_owner.get(owner).copied()
    }

    /// Whether `a` is held for a subscriber other than `owner`.
    pub(crate) fn held_by_other(&self, a: A, owner: &[u8]) -> bool {
        self.owner_of.get(&a).is_some_and(|o| o != owner)
    }

    /// `a` is in use again (whoever took it): no longer held.
    pub(crate) fn forget(&mut self, a: A) {
        if let Some(o) = self.owner_of.remove(&a) {
            self.by_owner.remove(&o);
        }
    }

    /// The longest-held address, taken from its owner (the pool has nothing
    /// else).
    pub(crate) fn take_oldest(&mut self) -> Option<A> {
        while let Some(a) = self.order.pop_front() {
            if self.owner_of.contains_key(&a) {
                self.forget(a);
                return Some(a);
            }
        }
        None
    }

    /// How many addresses are held.
    pub(crate) fn len(&self) -> usize {
        self.owner_of.len()
    }

    /// Drops stale entries of the release order once it is twice the holds
    /// (an address released, taken and released again is queued twice).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.owner_of.len() + 16 {
            let mut seen = std::collections::HashSet::new();
            let owner_of = &self.owner_of;
            // Keep each held address once, at its latest release.
            let v: Vec<A> = self.order.iter().rev().copied().collect();
            let mut keep: Vec<A> = v
                .into_iter()
                .filter(|a| owner_of.contains_key(a) && seen.insert(*a))
                .collect();
            keep.reverse();
            self.order = keep.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_for_its_owner_until_the_pool_needs_it() {
        let mut h = Affinity::<u32>::default();
        assert_eq!(h.hold(1, b"a"), None);
        assert_eq!(h.hold(2, b"b"), None);
        assert_eq!(h.held_for(b"a"), Some(1));
        assert!(h.held_by_other(1, b"b"));
        assert!(!h.held_by_other(1, b"a"));
        // A second release by `a`: its older address is free for anyone.
        assert_eq!(h.hold(3, b"a"), Some(1));
        assert_eq!(h.held_for(b"a"), Some(3));
        assert!(!h.held_by_other(1, b"b"));
        // Oldest first: 2 (b), then 3 (a).
        assert_eq!(h.take_oldest(), Some(2));
        assert_eq!(h.held_for(b"b"), None);
        assert_eq!(h.take_oldest(), Some(3));
        assert_eq!(h.take_oldest(), None);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn release_order_stays_bounded() {
        let mut h = Affinity::<u32>::default();
        for i in 0..10_000u32 {
            h.hold(i % 7, format!("s{}", i % 5).as_bytes());
        }
        assert!(h.len() <= 5);
        assert!(h.order.len() <= 2 * h.len() + 17, "{}", h.order.len());
    }
}
