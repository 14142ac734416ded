//! The one allocator of the numbers a gateway hands out: subscriber ids
//! (indices of the fast path's per-subscriber counters) and the GRE keys it
//! receives with (RFC 5845 §3, RFC 6245 §3: each end chooses the key the
//! other puts on packets towards it).

use super::blocks::{Blocks, Space};

/// One policy for every role and for static bindings:
/// - sequential from `base`, so a released id is not handed out again at once
///   (a late message or packet with an old key must not reach a new subscriber);
/// - wrapping back to `base` after a window of `window` ids (or twice the ids
///   in use, if more), so that ids stay small: the fast path finds keys and
///   ids below its table size by index;
/// - ids in use or reserved (held by the data plane from an earlier run, or
///   by a static binding) are skipped.
#[derive(Clone, Debug)]
pub struct IdAlloc {
    base: u32,
    window: u32,
    next: u32,
    /// Handed out in sequence: each takes the bucket after the last one.
    in_use: super::idhash::SeqIdSet<u32>,
    /// In a cluster: hand out only numbers of these blocks ([`IdAlloc::use_blocks`]).
    cluster: Option<(Blocks, Space)>,
}

impl IdAlloc {
    /// Ids from `base` (at least 1: 0 means "none" on the wire and in the maps).
    pub fn new(base: u32, window: u32) -> Self {
        let base = base.max(1);
        IdAlloc {
            base,
            window: window.max(1),
            next: base,
            in_use: Default::default(),
            cluster: None,
        }
    }

    /// From now on, draws ids from the cluster's blocks of `space` (shared
    /// with the other allocators of the same service address) instead of
    /// the window: ids stay unique across the anchors of a cluster.
    pub fn use_blocks(&mut self, blocks: &Blocks, space: Space) {
        self.cluster = Some((blocks.clone(), space));
    }

    /// The next free id, or None when every id of the range is taken.
    pub fn alloc(&mut self) -> Option<u32> {
        if let Some((b, s)) = &self.cluster {
            let id = b.alloc(*s)?;
            self.in_use.insert(id);
            return Some(id);
        }
        let window = self
            .window
            .max((self.in_use.len() as u32).saturating_mul(2));
        let span = window.min(u32::MAX - self.base + 1);
        for _ in 0..span {
            let id = self.next;
            let after = id.wrapping_add(1);
            self.next = if after < self.base || after - self.base >= span {
                self.base
            } else {
                after
            };
            if self.in_use.insert(id) {
                return Some(id);
            }
        }
        None
    }

    /// Marks `id` free again.
    pub fn release(&mut self, id: u32) {
        if self.in_use.remove(&id) {
            if let Some((b, s)) = &self.cluster {
                b.release(*s, id);
            }
        }
    }

    /// Marks `id` taken (it is in use elsewhere); false if it already was
    /// (or, in a cluster, if it is not in our blocks).
    pub fn reserve(&mut self, id: u32) -> bool {
        if id == 0 || self.in_use.contains(&id) {
            return false;
        }
        if let Some((b, s)) = &self.cluster {
            if !b.take(*s, id) {
                return false;
            }
        }
        self.in_use.insert(id)
    }

    pub fn is_taken(&self, id: u32) -> bool {
        self.in_use.contains(&id)
    }

    /// Ids taken.
    pub fn len(&self) -> usize {
        self.in_use.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_use.is_empty()
    }
}

impl Default for IdAlloc {
    fn default() -> Self {
        IdAlloc::new(1, pmip_common::MAX_SUBSCRIBERS)
    }
}

#[cfg(test)]
mod tests {
    use super::IdAlloc;

    #[test]
    fn sequential_then_wraps_within_the_window() {
        let mut a = IdAlloc::new(100, 16);
        // One subscriber at a time: every id of the window once, in order,
        // then back to the start.
        let ids: Vec<u32> = (0..17)
            .map(|_| {
                let id = a.alloc().unwrap();
                a.release(id);
                id
            })
            .collect();
        assert_eq!(ids[..16], (100..116).collect::<Vec<u32>>()[..]);
        assert_eq!(ids[16], 100);
    }

    #[test]
    fn a_released_id_is_not_reused_at_once() {
        let mut a = IdAlloc::new(1, 1000);
        let x = a.alloc().unwrap();
        a.release(x);
        assert_ne!(a.alloc(), Some(x));
    }

    #[test]
    fn reserved_ids_are_never_handed_out() {
        let mut a = IdAlloc::new(1, 100);
        assert!(a.reserve(1));
        assert!(a.reserve(3));
        assert!(!a.reserve(3), "already taken");
        assert!(!a.reserve(0), "0 is never an id");
        let got: Vec<u32> = (0..3).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(got, vec![2, 4, 5]);
        // Once the data plane lets go of a reserved id it may be handed out
        // again, when the allocator comes round to it.
        a.release(1);
        assert!(!a.is_taken(1));
        assert!(a.is_taken(3));
    }

    #[test]
    fn the_window_grows_with_the_ids_in_use() {
        let mut a = IdAlloc::new(1, 4);
        for i in 1..=4 {
            assert!(a.reserve(i));
        }
        // 4 in use: the window is now 8.
        assert_eq!(a.alloc(), Some(5));
    }

    #[test]
    fn with_blocks_ids_come_from_the_blocks_only() {
        use super::{Blocks, Space};
        use crate::agent::blocks::Layout;
        let b = Blocks::new([(
            Space::Key,
            Layout {
                size: 64,
                block_len: 8,
                reserved: [0].into(),
                low_water: 1,
            },
        )]);
        b.grant(Space::Key, 2);
        let (mut x, mut y) = (IdAlloc::default(), IdAlloc::default());
        x.use_blocks(&b, Space::Key);
        y.use_blocks(&b, Space::Key);
        assert_eq!(x.alloc(), Some(16));
        assert_eq!(y.alloc(), Some(17), "two allocators share the blocks");
        assert!(x.reserve(20));
        assert!(!y.reserve(20), "taken through the other one");
        assert!(!x.reserve(3), "not in our blocks");
        x.release(16);
        assert!(!b.owns(Space::Key, 3));
        assert_eq!(x.len(), 1);
    }

    #[test]
    fn the_top_of_the_range_wraps_without_overflow() {
        let mut a = IdAlloc::new(u32::MAX - 1, 10);
        assert_eq!(a.alloc(), Some(u32::MAX - 1));
        assert_eq!(a.alloc(), Some(u32::MAX));
        assert_eq!(a.alloc(), None);
    }
}
