//! The anchor downlink's per-CPU cache (`ANCHOR_CACHE`, by destination)
//! kept honest: after every change to the entry serving a home address or
//! prefix, the loader bumps the `ANCHOR_SET_GEN` set where the fast path keeps
//! copies of that destination, on every CPU at once.
use std::net::Ipv4Addr;

use anyhow::Result;
use aya::maps::Array;
use pmip_common::{anchor_cache_set, maps, ANCHOR_CACHE_SETS};

use super::{map_err, FastPath};
use crate::dataplane::Hnp;

impl FastPath {
    /// Retires the cached copies of IPv4 home address `h`.
    pub(super) fn bump_anchor_home4(&mut self, h: Ipv4Addr) -> Result<()> {
        // The fast path's key: the address as loaded from the packet.
        let key = [u32::from_ne_bytes(h.octets()), 0];
        self.bump_anchor_set(anchor_cache_set(key))
    }

    /// Retires the cached copies of every /64 inside home network prefix
    /// `hnp`: the fast path caches by a destination's first 64 bits, and a
    /// pool of shorter delegated prefixes (or a shorter HNP) serves each /64
    /// inside one from the same entry. Every set when they are as many.
    pub(super) fn bump_anchor_hnp(&mut self, hnp: &Hnp) -> Result<()> {
        let o = hnp.prefix.octets();
        let k: [u8; 8] = o[..8].try_into().expect("8 bytes");
        let len = self.pool6_assign_len(k).unwrap_or(64).min(hnp.len.min(64));
        let span = 64 - len as u32;
        // As many /64s as sets (a power of two) or more: every set.
        if span >= ANCHOR_CACHE_SETS.trailing_zeros() {
            return self.bump_anchor_all();
        }
        let base = u64::from_be_bytes(k) & !((1u64 << span) - 1);
        for i in 0..1u64 << span {
            let b = (base | i).to_be_bytes();
            let key = [
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            ];
            self.bump_anchor_set(anchor_cache_set(key))?;
        }
        Ok(())
    }

    /// Retires every cached copy (after a prune, which removes entries by
    /// their slot in a pool rather than by address).
    pub(super) fn bump_anchor_all(&mut self) -> Result<()> {
        for i in 0..ANCHOR_CACHE_SETS {
            self.bump_anchor_set(i)?;
        }
        Ok(())
    }

    fn bump_anchor_set(&mut self, i: u32) -> Result<()> {
        let mut a: Array<_, u32> = Array::try_from(self.map_mut(maps::ANCHOR_SET_GEN)?)?;
        let g = a.get(&i, 0).map_err(map_err)?;
        a.set(i, g.wrapping_add(1), 0).map_err(map_err)
    }

    /// The delegated prefix length of the IPv6 pool holding `k`, if one does.
    fn pool6_assign_len(&self, k: [u8; 8]) -> Option<u8> {
        let a = u64::from_be_bytes(k);
        self.pools6
            .iter()
            .find(|p| (a ^ p.prefix).checked_shr(64 - p.len).unwrap_or(0) == 0)
            .map(|p| p.assign_len as u8)
    }
}
