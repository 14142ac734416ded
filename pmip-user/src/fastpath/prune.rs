//! After a restart with pinned maps and a durable store: the map entries
//! that no restored binding (and no static binding) holds belong to no one
//! — a subscriber that left or expired while pmipd was down — and go.
use anyhow::Result;
use aya::maps::HashMap;
use pmip_common::{
    flags, maps, AccessDownlink, AccessKey, AccessSubscriber, AnchorDownlink, AnchorUplink,
};

use super::slots::KeyTable;
use super::{map_err, FastPath};
use crate::dataplane::Held;

/// What [`FastPath::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Subscribers (`ACCESS_BY_MAC`) and downlink keys (`ACCESS_BY_KEY`).
    pub access: usize,
    pub access_keys: usize,
    /// Uplink keys (`ANCHOR_BY_KEY`) and home addresses / prefixes.
    pub anchor_keys: usize,
    pub homes: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.access + self.access_keys + self.anchor_keys + self.homes
    }
}

impl FastPath {
    /// Removes every subscriber entry whose id or GRE key `keep` does not
    /// name: access subscribers by id, GRE keys by key, home addresses and
    /// prefixes by the id of the binding they point to.
    pub(crate) fn prune(&mut self, keep: &Held) -> Result<Pruned> {
        let mut p = Pruned::default();
        // ACCESS_BY_MAC: by subscriber id.
        let by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map(maps::ACCESS_BY_MAC)?)?;
        let stale: Vec<AccessKey> = by_mac
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, v)| !keep.sub_ids.contains(&v.sub_id))
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            let mut m: HashMap<_, AccessKey, AccessSubscriber> =
                HashMap::try_from(self.map_mut(maps::ACCESS_BY_MAC)?)?;
            let _ = m.remove(&k);
            self.bump_access_gen(&k)?;
            p.access += 1;
        }
        // The GRE-key tables: by key.
        p.access_keys =
            self.prune_keys::<AccessDownlink>(KeyTable::Access, keep, |d| d.ifindex != 0)?;
        p.anchor_keys = self
            .prune_keys::<AnchorUplink>(KeyTable::Anchor, keep, |u| u.flags & flags::IN_USE != 0)?;
        // Home addresses and prefixes: by the binding they lead to.
        let gone = |d: &AnchorDownlink| !keep.sub_ids.contains(&d.sub_id);
        for which in 0..2 {
            let slots = self.used_pool_slots(which)?;
            for (i, d) in slots {
                if gone(&d) {
                    self.clear_pool_slot(which, i, &gone)?;
                    p.homes += 1;
                }
            }
        }
        p.homes += self.prune_hash::<[u8; 4]>(maps::ANCHOR_BY_HOME4, &gone)?;
        p.homes += self.prune_hash::<[u8; 8]>(maps::ANCHOR_BY_HNP, &gone)?;
        if p.homes > 0 {
            // Removed by slot, not by address: retire every cached copy.
            self.bump_anchor_all()?;
        }
        Ok(p)
    }

    fn prune_keys<V: aya::Pod + Default>(
        &mut self,
        t: KeyTable,
        keep: &Held,
        used: impl Fn(&V) -> bool + Copy,
    ) -> Result<usize> {
        let mut stale = Vec::new();
        self.for_each_key::<V>(t, used, |k, _| {
            if !keep.keys.contains(&k) {
                stale.push(k);
            }
        })?;
        for k in &stale {
            self.clear_by_key::<V>(t, *k, used)?;
        }
        Ok(stale.len())
    }

    fn prune_hash<K: aya::Pod>(
        &mut self,
        name: &str,
        gone: &dyn Fn(&AnchorDownlink) -> bool,
    ) -> Result<usize> {
        let mut m: HashMap<_, K, AnchorDownlink> = HashMap::try_from(self.map_mut(name)?)?;
        let stale: Vec<K> = m
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, d)| gone(d))
            .map(|(k, _)| k)
            .collect();
        for k in &stale {
            m.remove(k).map_err(map_err)?;
        }
        Ok(stale.len())
    }
}
