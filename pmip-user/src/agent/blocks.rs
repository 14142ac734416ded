//! Numbers a registrar hands out when it shares its spaces with other
//! anchors (issue 17): ids and uplink GRE keys, IPv4 home addresses, IPv6
//! home network prefixes. Each space is cut into blocks; a block belongs to
//! one anchor service address at a time (claimed with an etcd
//! compare-and-set by `cluster::blocks`), and inside its blocks a registrar
//! allocates alone, without asking anyone. So two anchors never hand out the
//! same number even when they attach at the same instant, and a claim costs
//! one transaction per block, not one per binding.
//!
//! ```text
//!   space (e.g. 65 536 keys) = | block 0 | block 1 | block 2 | ... |
//!   service address A owns       ^^^^^^^            ^^^^^^^
//!   A's registrar: alloc() → fresh index of an owned block, else a released one
//!   below the low-water mark → `wait_low` wakes the claimer, which grants more
//! ```
//!
//! The registrar side is synchronous and never blocks (sans-IO: a state
//! machine calls [`Blocks::alloc`] while deciding on a registration); the
//! claimer is woken through [`Blocks::wait_low`]. [`Blocks::set_open`]
//! closes allocation while the cluster store cannot persist a new binding:
//! `alloc` then fails, and the registrar answers with its protocol's
//! insufficient-resources code (PBA status 130, RRP code 130) while
//! refreshes of existing bindings, which allocate nothing, go on.
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A space of numbers shared by the anchors of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// Binding ids: the LMA's uplink GRE key and counters index, the HA's
    /// counters index and uplink key.
    Key,
    /// IPv4 home addresses, by offset from the pool's network address.
    Home4,
    /// IPv6 home network prefixes, by index in the pool.
    Prefix6,
}

impl Space {
    pub const ALL: [Space; 3] = [Space::Key, Space::Home4, Space::Prefix6];

    /// The name in etcd keys and `show cluster`.
    pub fn name(self) -> &'static str {
        match self {
            Space::Key => "key",
            Space::Home4 => "home4",
            Space::Prefix6 => "prefix6",
        }
    }

    pub fn from_name(s: &str) -> Option<Space> {
        Space::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// The shape of one space: `size` indices in blocks of `block_len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u32,
    pub block_len: u32,
    /// Indices never handed out (key 0, a pool's network, broadcast and
    /// router addresses, ids of static bindings).
    pub reserved: BTreeSet<u32>,
    /// Below this many free numbers, ask for more blocks.
    pub low_water: u32,
}

impl Layout {
    /// Number of blocks (the last one may be short).
    pub fn blocks(&self) -> u32 {
        self.size.div_ceil(self.block_len.max(1))
    }

    /// Indices of block `b`, clipped to the space.
    pub fn range(&self, b: u32) -> Range<u32> {
        let l = self.block_len.max(1);
        let start = b.saturating_mul(l).min(self.size);
        start..start.saturating_add(l).min(self.size)
    }

    pub fn block_of(&self, i: u32) -> u32 {
        i / self.block_len.max(1)
    }
}

/// Allocation state of one space.
#[derive(Debug)]
struct SpaceState {
    layout: Layout,
    owned: BTreeSet<u32>,
    /// Indices of granted blocks never handed out yet, in order: used first,
    /// so a released number is not given again at once (a late packet with
    /// an old key must not reach a new subscriber).
    fresh: VecDeque<Range<u32>>,
    released: VecDeque<u32>,
    used: HashSet<u32>,
}

impl SpaceState {
    fn new(layout: Layout) -> Self {
        SpaceState {
            layout,
            owned: BTreeSet::new(),
            fresh: VecDeque::new(),
            released: VecDeque::new(),
            used: HashSet::new(),
        }
    }

    fn owns(&self, i: u32) -> bool {
        i < self.layout.size && self.owned.contains(&self.layout.block_of(i))
    }

    fn usable(&self, i: u32) -> bool {
        !self.used.contains(&i) && !self.layout.reserved.contains(&i)
    }

    fn free(&self) -> u64 {
        let fresh: u64 = self.fresh.iter().map(|r| u64::from(r.end - r.start)).sum();
        fresh + self.released.len() as u64
    }

    fn alloc(&mut self) -> Option<u32> {
        while let Some(r) = self.fresh.front_mut() {
            let Some(i) = r.next() else {
                self.fresh.pop_front();
                continue;
            };
            if self.usable(i) {
                self.used.insert(i);
                return Some(i);
            }
        }
        while let Some(i) = self.released.pop_front() {
            if self.owns(i) && self.usable(i) {
                self.used.insert(i);
                return Some(i);
            }
        }
        None
    }
}

#[derive(Debug)]
struct State {
    spaces: BTreeMap<Space, SpaceState>,
    open: bool,
    /// Allocations refused while closed, and for want of a free number.
    refused_closed: u64,
    exhausted: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    low: Notify,
}

/// The blocks of one service address, shared between its registrar (which
/// allocates) and the cluster (which grants blocks and opens or closes).
#[derive(Clone, Debug)]
pub struct Blocks(Arc<Shared>);

/// One set is equal only to itself (a registrar's configuration compares it).
impl PartialEq for Blocks {
    fn eq(&self, other: &Blocks) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Blocks {}

/// Occupancy of one space, for `show cluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceUse {
    pub blocks: u32,
    pub used: u32,
    pub free: u64,
}

impl Blocks {
    /// Blocks over these spaces, none granted yet, allocation open.
    pub fn new(layouts: impl IntoIterator<Item = (Space, Layout)>) -> Blocks {
        let spaces = layouts
            .into_iter()
            .map(|(s, l)| (s, SpaceState::new(l)))
            .collect();
        Blocks(Arc::new(Shared {
            state: Mutex::new(State {
                spaces,
                open: true,
                refused_closed: 0,
                exhausted: 0,
            }),
            low: Notify::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spaces this set allocates from.
    pub fn spaces(&self) -> Vec<Space> {
        self.lock().spaces.keys().copied().collect()
    }

    pub fn layout(&self, s: Space) -> Option<Layout> {
        self.lock().spaces.get(&s).map(|x| x.layout.clone())
    }

    /// A free number of `s`, or None (closed, not a space of ours, or none
    /// free in our blocks: the claimer is woken either way).
    pub fn alloc(&self, s: Space) -> Option<u32> {
        let mut g = self.lock();
        if !g.open {
            g.refused_closed += 1;
            return None;
        }
        let (got, low) = {
            let sp = g.spaces.get_mut(&s)?;
            let got = sp.alloc();
            (got, sp.free() < u64::from(sp.layout.low_water))
        };
        if got.is_none() {
            g.exhausted += 1;
        }
        drop(g);
        if low {
            self.0.low.notify_one();
        }
        got
    }

    /// Marks `i` taken (a restored binding, a requested address): false if
    /// it lies outside our blocks or is taken already. Allowed while closed:
    /// it hands out nothing new.
    pub fn take(&self, s: Space, i: u32) -> bool {
        let mut g = self.lock();
        let Some(sp) = g.spaces.get_mut(&s) else {
            return false;
        };
        sp.owns(i) && sp.usable(i) && sp.used.insert(i)
    }

    /// Gives `i` back; it is handed out again only after the fresh ones.
    pub fn release(&self, s: Space, i: u32) {
        let mut g = self.lock();
        if let Some(sp) = g.spaces.get_mut(&s) {
            if sp.used.remove(&i) {
                sp.released.push_back(i);
            }
        }
    }

    pub fn owns(&self, s: Space, i: u32) -> bool {
        self.lock().spaces.get(&s).is_some_and(|sp| sp.owns(i))
    }

    /// Adds block `b` of `s` (claimed by the cluster); false if it was ours already.
    pub fn grant(&self, s: Space, b: u32) -> bool {
        let mut g = self.lock();
        let Some(sp) = g.spaces.get_mut(&s) else {
            return false;
        };
        if b >= sp.layout.blocks() || !sp.owned.insert(b) {
            return false;
        }
        let r = sp.layout.range(b);
        sp.fresh.push_back(r);
        true
    }

    /// Blocks of `s` we own.
    pub fn owned(&self, s: Space) -> Vec<u32> {
        self.lock()
            .spaces
            .get(&s)
            .map(|sp| sp.owned.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many more blocks of `s` to claim now: enough to be twice above
    /// the low-water mark, at most `max`.
    pub fn wanted(&self, s: Space, max: u32) -> u32 {
        let g = self.lock();
        let Some(sp) = g.spaces.get(&s) else {
            return 0;
        };
        let low = u64::from(sp.layout.low_water);
        let free = sp.free();
        if free >= low {
            return 0;
        }
        let l = u64::from(sp.layout.block_len.max(1));
        let n = (2 * low - free).div_ceil(l);
        u32::try_from(n).unwrap_or(u32::MAX).clamp(1, max.max(1))
    }

    /// Waits until an allocation left a space below the low-water mark.
    pub async fn wait_low(&self) {
        self.0.low.notified().await
    }

    /// Opens or closes allocation of new numbers.
    pub fn set_open(&self, open: bool) {
        self.lock().open = open;
    }

    pub fn is_open(&self) -> bool {
        self.lock().open
    }

    pub fn usage(&self, s: Space) -> SpaceUse {
        let g = self.lock();
        g.spaces
            .get(&s)
            .map(|sp| SpaceUse {
                blocks: sp.owned.len() as u32,
                used: sp.used.len() as u32,
                free: sp.free(),
            })
            .unwrap_or_default()
    }

    /// (refused while closed, refused for want of a free number).
    pub fn refusals(&self) -> (u64, u64) {
        let g = self.lock();
        (g.refused_closed, g.exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: u32, block_len: u32, reserved: &[u32]) -> Layout {
        Layout {
            size,
            block_len,
            reserved: reserved.iter().copied().collect(),
            low_water: 2,
        }
    }

    fn keys(size: u32, block_len: u32) -> Blocks {
        Blocks::new([(Space::Key, layout(size, block_len, &[0]))])
    }

    #[test]
    fn nothing_without_a_block() {
        let b = keys(64, 8);
        assert_eq!(b.alloc(Space::Key), None);
        assert_eq!(b.refusals(), (0, 1));
        assert_eq!(b.alloc(Space::Home4), None, "not a space of this set");
    }

    #[test]
    fn allocates_inside_granted_blocks_only_skipping_reserved() {
        let b = keys(64, 8);
        assert!(b.grant(Space::Key, 0));
        assert!(b.grant(Space::Key, 3));
        assert!(!b.grant(Space::Key, 3), "granted twice");
        assert!(!b.grant(Space::Key, 8), "past the space");
        let got: Vec<u32> = std::iter::from_fn(|| b.alloc(Space::Key)).collect();
        // Block 0 without the reserved 0, then block 3.
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31]);
        assert!(got.iter().all(|i| b.owns(Space::Key, *i)));
        assert!(!b.owns(Space::Key, 8));
    }

    #[test]
    fn released_numbers_come_back_after_the_fresh_ones() {
        let b = keys(64, 8);
        b.grant(Space::Key, 1);
        let x = b.alloc(Space::Key).unwrap();
        b.release(Space::Key, x);
        let rest: Vec<u32> = std::iter::from_fn(|| b.alloc(Space::Key)).collect();
        assert_eq!(rest.last(), Some(&x), "reused last: {rest:?}");
        assert_eq!(rest.len(), 8);
    }

    #[test]
    fn take_marks_a_number_of_ours_and_refuses_others() {
        let b = keys(64, 8);
        b.grant(Space::Key, 2);
        assert!(b.take(Space::Key, 20));
        assert!(!b.take(Space::Key, 20), "already taken");
        assert!(!b.take(Space::Key, 3), "outside our blocks");
        let got: Vec<u32> = std::iter::from_fn(|| b.alloc(Space::Key)).collect();
        assert!(!got.contains(&20));
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn closed_refuses_new_numbers_but_allows_take() {
        let b = keys(64, 8);
        b.grant(Space::Key, 0);
        b.set_open(false);
        assert_eq!(b.alloc(Space::Key), None);
        assert!(b.take(Space::Key, 5));
        assert_eq!(b.refusals(), (1, 0));
        b.set_open(true);
        assert_eq!(b.alloc(Space::Key), Some(1));
    }

    #[test]
    fn wanted_follows_the_low_water_mark() {
        let b = Blocks::new([(
            Space::Key,
            Layout {
                low_water: 20,
                ..layout(1024, 16, &[])
            },
        )]);
        assert_eq!(b.wanted(Space::Key, 8), 3, "(2*20 - 0) / 16 rounded up");
        assert_eq!(b.wanted(Space::Key, 2), 2, "capped");
        b.grant(Space::Key, 0);
        assert_eq!(
            b.wanted(Space::Key, 8),
            2,
            "16 free: (40 - 16) / 16 rounded up"
        );
        b.grant(Space::Key, 1);
        assert_eq!(b.wanted(Space::Key, 8), 0, "32 free, above 20");
    }

    #[test]
    fn the_last_block_is_clipped_to_the_space() {
        let l = layout(20, 8, &[]);
        assert_eq!(l.blocks(), 3);
        assert_eq!(l.range(2), 16..20);
        let b = Blocks::new([(Space::Home4, l)]);
        b.grant(Space::Home4, 2);
        let got: Vec<u32> = std::iter::from_fn(|| b.alloc(Space::Home4)).collect();
        assert_eq!(got, [16, 17, 18, 19]);
    }

    #[test]
    fn two_sets_with_disjoint_blocks_never_collide() {
        let l = layout(4096, 64, &[0]);
        let a = Blocks::new([(Space::Key, l.clone())]);
        let c = Blocks::new([(Space::Key, l)]);
        for blk in 0..32 {
            if blk % 2 == 0 {
                a.grant(Space::Key, blk);
            } else {
                c.grant(Space::Key, blk);
            }
        }
        let mut seen = HashSet::new();
        for i in 0..4000 {
            let set = if i % 3 == 0 { &a } else { &c };
            if let Some(k) = set.alloc(Space::Key) {
                assert!(seen.insert(k), "{k} handed out twice");
            }
        }
    }
}
