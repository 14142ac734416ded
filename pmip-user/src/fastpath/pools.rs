//! The anchor's home pools laid out over the ANCHOR_BY_POOL4/6 arrays
//! (HOME_POOLS4/6), and the slot of a home address or prefix in them.
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use aya::maps::Array;
use pmip_common::{flags, maps, AnchorDownlink, HomePool4, HomePool6};

use super::{map_err, FastPath};

/// A pool of home addresses or home network prefixes (anchor role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomePoolSpec {
    V4 {
        prefix: Ipv4Addr,
        len: u8,
    },
    /// Delegating prefixes of `assign_len` bits out of `prefix`/`len`.
    V6 {
        prefix: Ipv6Addr,
        len: u8,
        assign_len: u8,
    },
}

impl FastPath {
    /// Lays the home pools out over the ANCHOR_BY_POOL4/6 arrays (`cap4`,
    /// `cap6` slots) in order, each as far as the array reaches, and writes
    /// them to HOME_POOLS4/6 for the fast path.
    pub(super) fn set_home_pools(
        &mut self,
        pools: &[HomePoolSpec],
        cap4: u32,
        cap6: u32,
    ) -> Result<()> {
        let (mut base4, mut base6) = (0u32, 0u32);
        for p in pools {
            match *p {
                HomePoolSpec::V4 { prefix, len } => {
                    if !(1..=32).contains(&len) {
                        bail!("home pool {prefix}/{len}: prefix length must be 1..=32");
                    }
                    let count = 1u64 << (32 - len);
                    let size = count.min((cap4 - base4) as u64) as u32;
                    if size == 0 || self.pools4.len() as u32 == pmip_common::MAX_HOME_POOLS {
                        continue;
                    }
                    let mask = if len == 32 {
                        u32::MAX
                    } else {
                        !(u32::MAX >> len)
                    };
                    self.pools4.push(HomePool4 {
                        prefix: u32::from(prefix) & mask,
                        len: len as u32,
                        base: base4,
                        size,
                    });
                    base4 += size;
                }
                HomePoolSpec::V6 {
                    prefix,
                    len,
                    assign_len,
                } => {
                    if !(1..=64).contains(&len) || !(len..=64).contains(&assign_len) {
                        bail!("home pool {prefix}/{len}: prefix length must be 1..=64 and the assigned length {assign_len} between it and 64");
                    }
                    let count = 1u64
                        .checked_shl((assign_len - len) as u32)
                        .unwrap_or(u64::MAX);
                    let size = count.min((cap6 - base6) as u64) as u32;
                    if size == 0 || self.pools6.len() as u32 == pmip_common::MAX_HOME_POOLS {
                        continue;
                    }
                    let top = (u128::from(prefix) >> 64) as u64;
                    let mask = if len == 64 {
                        u64::MAX
                    } else {
                        !(u64::MAX >> len)
                    };
                    self.pools6.push(HomePool6 {
                        prefix: top & mask,
                        len: len as u32,
                        assign_len: assign_len as u32,
                        base: base6,
                        size,
                    });
                    base6 += size;
                }
            }
        }
        let (p4, p6) = (self.pools4.clone(), self.pools6.clone());
        // Pinned maps of an earlier run laid out for other pools: their slots
        // would now be read as other addresses. Start those tables empty (the
        // agent installs its bindings again).
        let stale4 = self.pool_layout_differs::<HomePool4>(maps::HOME_POOLS4, &p4)?;
        let stale6 = self.pool_layout_differs::<HomePool6>(maps::HOME_POOLS6, &p6)?;
        for (stale, table) in [
            (stale4, maps::ANCHOR_BY_POOL4),
            (stale6, maps::ANCHOR_BY_POOL6),
        ] {
            if stale {
                tracing::warn!(
                    map = table,
                    "home pools differ from the pinned maps' layout; clearing the pool table"
                );
                let mut a: Array<_, AnchorDownlink> = Array::try_from(self.map_mut(table)?)?;
                for i in 0..a.len() {
                    a.set(i, AnchorDownlink::default(), 0).map_err(map_err)?;
                }
            }
        }
        let mut a: Array<_, HomePool4> = Array::try_from(self.map_mut(maps::HOME_POOLS4)?)?;
        for i in 0..pmip_common::MAX_HOME_POOLS {
            a.set(i, p4.get(i as usize).copied().unwrap_or_default(), 0)
                .map_err(map_err)?;
        }
        let mut a: Array<_, HomePool6> = Array::try_from(self.map_mut(maps::HOME_POOLS6)?)?;
        for i in 0..pmip_common::MAX_HOME_POOLS {
            a.set(i, p6.get(i as usize).copied().unwrap_or_default(), 0)
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Whether the pools written in `map` (by an earlier run, through pinned
    /// maps) differ from `pools`; a map never written (all zero) does not.
    fn pool_layout_differs<P: aya::Pod + Default + PartialEq>(
        &self,
        map: &str,
        pools: &[P],
    ) -> Result<bool> {
        let a: Array<_, P> = Array::try_from(self.map(map)?)?;
        let old: Vec<P> = (0..pmip_common::MAX_HOME_POOLS)
            .map(|i| a.get(&i, 0).unwrap_or_default())
            .collect();
        if old.iter().all(|p| *p == P::default()) {
            return Ok(false);
        }
        Ok((0..old.len()).any(|i| old[i] != pools.get(i).copied().unwrap_or_default()))
    }

    /// The ANCHOR_BY_POOL4 slot of home address `h`, if a pool indexes it
    /// (the same computation as the fast path's `anchor_by_home4`).
    pub(super) fn pool4_index(&self, h: Ipv4Addr) -> Option<u32> {
        let a = u32::from(h);
        for p in &self.pools4 {
            let host = 32 - p.len;
            if ((a ^ p.prefix) as u64) >> host == 0 {
                let off = (a as u64 & ((1u64 << host) - 1)) as u32;
                return (off < p.size).then_some(p.base + off);
            }
        }
        None
    }

    /// The ANCHOR_BY_POOL6 slot of home network prefix `k` (first 64 bits).
    pub(super) fn pool6_index(&self, k: [u8; 8]) -> Option<u32> {
        let a = u64::from_be_bytes(k);
        for p in &self.pools6 {
            let host = 64 - p.len;
            if (a ^ p.prefix).checked_shr(host).unwrap_or(0) == 0 {
                let bits = p.assign_len - p.len;
                let off = a.checked_shr(64 - p.assign_len).unwrap_or(0)
                    & 1u64.checked_shl(bits).map(|m| m - 1).unwrap_or(u64::MAX);
                return (off < p.size as u64).then_some(p.base + off as u32);
            }
        }
        None
    }

    fn pool_table(which: usize) -> &'static str {
        if which == 0 {
            maps::ANCHOR_BY_POOL4
        } else {
            maps::ANCHOR_BY_POOL6
        }
    }

    pub(super) fn set_pool_slot(&mut self, which: usize, i: u32, v: AnchorDownlink) -> Result<()> {
        if self.fill_slot(Self::pool_table(which), i, v, |d: &AnchorDownlink| {
            d.flags & flags::IN_USE != 0
        })? {
            self.pool_slots[which] += 1;
        }
        Ok(())
    }

    /// The used slots of a pool table, with their entries.
    pub(super) fn used_pool_slots(&self, which: usize) -> Result<Vec<(u32, AnchorDownlink)>> {
        let a: aya::maps::Array<_, AnchorDownlink> =
            aya::maps::Array::try_from(self.map(Self::pool_table(which))?)?;
        Ok((0..a.len())
            .filter_map(|i| Some((i, a.get(&i, 0).ok()?)))
            .filter(|(_, d)| d.flags & flags::IN_USE != 0)
            .collect())
    }

    pub(super) fn clear_pool_slot(
        &mut self,
        which: usize,
        i: u32,
        mine: &dyn Fn(&AnchorDownlink) -> bool,
    ) -> Result<()> {
        if self.free_slot(Self::pool_table(which), i, |d: &AnchorDownlink| {
            d.flags & flags::IN_USE != 0 && mine(d)
        })? {
            self.pool_slots[which] = self.pool_slots[which].saturating_sub(1);
        }
        Ok(())
    }
}
