//! The LMA's home address pools: IPv4 home addresses (RFC 5844) and IPv6
//! home network prefixes (RFC 5213 §5.3.1), with what the data plane still
//! holds from an earlier run kept out of reach.
use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Ipv4PoolConfig, Ipv6PoolConfig};
use crate::agent::affinity::Affinity;
use crate::agent::blocks::{Blocks, Space};
use crate::dataplane::Hnp;

pub(super) struct V4Pool {
    pub(super) cfg: Ipv4PoolConfig,
    /// The network address: a home address's index in a cluster's blocks
    /// is its offset from it.
    net: u32,
    first: u32,
    last: u32,
    next: u32,
    free: VecDeque<u32>,
    /// Host addresses as integers, handed out in sequence (`SeqIdHasher`).
    used: crate::agent::idhash::SeqIdSet<u32>,
    /// Released addresses held for the MN that had them (issue 11,
    /// `agent/affinity.rs`); not in `free`.
    held: Affinity<u32>,
    /// In a cluster: allocate only inside these blocks ([`V4Pool::use_blocks`]).
    blocks: Option<Blocks>,
}

impl V4Pool {
    pub(super) fn new(cfg: Ipv4PoolConfig) -> Self {
        let plen = u32::from(cfg.prefix_len.min(32));
        let mask = if plen == 0 {
            0
        } else {
            u32::MAX << (32 - plen)
        };
        let net = u32::from(cfg.network) & mask;
        let bcast = net | !mask;
        // Leave out the network and broadcast addresses of pools larger than /31.
        let (first, last) = if plen >= 31 {
            (net, bcast)
        } else {
            (net + 1, bcast - 1)
        };
        V4Pool {
            cfg,
            net,
            first,
            last,
            next: first,
            free: VecDeque::new(),
            used: Default::default(),
            held: Affinity::default(),
            blocks: None,
        }
    }
    /// Draws home addresses from the cluster's `Home4` blocks from now on.
    pub(super) fn use_blocks(&mut self, b: &Blocks) {
        self.blocks = Some(b.clone());
    }
    pub(super) fn contains(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        a >= self.first && a <= self.last && a != u32::from(self.cfg.gateway)
    }
    /// The address released by `owner` if it is still held for it.
    pub(super) fn held_for(&self, owner: &[u8]) -> Option<Ipv4Addr> {
        self.held.held_for(owner).map(Ipv4Addr::from)
    }
    /// A home address for `owner`: the one it released if still held, else
    /// a free one, else (the pool otherwise exhausted) the longest-held.
    pub(super) fn alloc_for(&mut self, owner: &[u8]) -> Option<Ipv4Addr> {
        if let Some(a) = self.held.held_for(owner) {
            self.held.forget(a);
            if self.used.insert(a) {
                return Some(a.into());
            }
        }
        if let Some(a) = self.alloc() {
            return Some(a);
        }
        while let Some(a) = self.held.take_oldest() {
            if self.used.insert(a) {
                return Some(a.into());
            }
        }
        None
    }
    /// Gives `a` back, held for `owner` (its next attach gets it again).
    pub(super) fn release_for(&mut self, a: Ipv4Addr, owner: &[u8]) {
        if self.blocks.is_some() {
            return self.release(a);
        }
        if self.used.remove(&u32::from(a)) {
            if let Some(before) = self.held.hold(a.into(), owner) {
                self.free.push_back(before);
            }
        }
    }
    pub(super) fn alloc(&mut self) -> Option<Ipv4Addr> {
        if let Some(b) = &self.blocks {
            // The layout reserves the network, broadcast and router addresses.
            let a = self.net.checked_add(b.alloc(Space::Home4)?)?;
            self.used.insert(a);
            return Some(a.into());
        }
        while let Some(a) = self.free.pop_front() {
            if self.used.insert(a) {
                return Some(a.into());
            }
        }
        while self.next <= self.last {
            let a = self.next;
            self.next += 1;
            if a != u32::from(self.cfg.gateway) && self.used.insert(a) {
                return Some(a.into());
            }
        }
        None
    }
    pub(super) fn take(&mut self, a: Ipv4Addr) -> bool {
        if !self.contains(a) || self.used.contains(&u32::from(a)) {
            return false;
        }
        if let Some(b) = &self.blocks {
            if !b.take(Space::Home4, u32::from(a) - self.net) {
                return false;
            }
        }
        // Taken (static, requested, restored): no longer held for anyone.
        self.held.forget(a.into());
        self.used.insert(a.into())
    }
    pub(super) fn release(&mut self, a: Ipv4Addr) {
        if self.used.remove(&u32::from(a)) {
            match &self.blocks {
                Some(b) => b.release(Space::Home4, u32::from(a) - self.net),
                None => self.free.push_back(a.into()),
            }
        }
    }
}

pub(super) struct V6Pool {
    pub(super) cfg: Ipv6PoolConfig,
    next: u128,
    count: u128,
    free: VecDeque<u128>,
    /// Indices held by the data plane from an earlier run: never allocated.
    reserved: HashSet<u128>,
    /// In a cluster: allocate only inside these blocks ([`V6Pool::use_blocks`]).
    blocks: Option<Blocks>,
}

impl V6Pool {
    pub(super) fn new(cfg: Ipv6PoolConfig) -> Self {
        let bits = u32::from(cfg.assign_len.saturating_sub(cfg.prefix_len)).min(64);
        V6Pool {
            count: 1u128 << bits,
            next: 0,
            free: VecDeque::new(),
            reserved: HashSet::new(),
            blocks: None,
            cfg,
        }
    }
    /// Draws prefixes from the cluster's `Prefix6` blocks from now on.
    pub(super) fn use_blocks(&mut self, b: &Blocks) {
        self.blocks = Some(b.clone());
    }
    fn prefix_at(&self, idx: u128) -> Hnp {
        let shift = 128 - u32::from(self.cfg.assign_len.min(128));
        let p = u128::from(self.cfg.prefix) | idx.checked_shl(shift).unwrap_or(0);
        Hnp {
            prefix: Ipv6Addr::from(p),
            len: self.cfg.assign_len,
        }
    }
    fn index_of(&self, prefix: u128) -> u128 {
        let shift = 128 - u32::from(self.cfg.assign_len.min(128));
        (prefix ^ u128::from(self.cfg.prefix))
            .checked_shr(shift)
            .unwrap_or(0)
    }
    /// Keeps the prefix whose first 64 bits are `hnp64` from being allocated.
    pub(super) fn reserve(&mut self, hnp64: [u8; 8]) {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hnp64);
        let p = u128::from_be_bytes(b);
        let bits = u32::from(self.cfg.prefix_len.min(128));
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        if p & mask == u128::from(self.cfg.prefix) & mask {
            let i = self.index_of(p);
            if let Some(b) = &self.blocks {
                b.take(Space::Prefix6, u32::try_from(i).unwrap_or(u32::MAX));
                return;
            }
            self.reserved.insert(i);
        }
    }
    pub(super) fn alloc(&mut self) -> Option<Hnp> {
        if let Some(b) = &self.blocks {
            let i = b.alloc(Space::Prefix6)?;
            return Some(self.prefix_at(i.into()));
        }
        let idx = loop {
            let i = match self.free.pop_front() {
                Some(i) => i,
                None if self.next < self.count => {
                    self.next += 1;
                    self.next - 1
                }
                None => return None,
            };
            if !self.reserved.contains(&i) {
                break i;
            }
        };
        Some(self.prefix_at(idx))
    }
    pub(super) fn release(&mut self, h: Hnp) {
        let idx = self.index_of(u128::from(h.prefix));
        if let Some(b) = &self.blocks {
            b.release(Space::Prefix6, u32::try_from(idx).unwrap_or(u32::MAX));
            return;
        }
        if !self.reserved.remove(&idx) || idx < self.next {
            self.free.push_back(idx);
        }
    }
}
