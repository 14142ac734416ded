//! What the fast path counts: verdict and drop-reason counters,
//! per-subscriber traffic (SUB_STATS) and map occupancy.
use anyhow::{anyhow, Result};
use aya::maps::{Array, HashMap, PerCpuArray};
use pmip_common::{maps, AccessKey, AccessSubscriber, Counter, SubscriberStats};

use super::slots::KeyTable;
use super::FastPath;
use super::{batch, map_err};
use crate::dataplane::{AccessPoint, TrafficCounters};

impl FastPath {
    /// The SUB_STATS entries of subscriber `sub_id`, one per CPU (none when
    /// the id is beyond the table, as the fast path then counts nothing).
    fn stats_entries(&self, sub_id: u32) -> Vec<u32> {
        let (cpus, stride) = self.stats_rows;
        if sub_id < stride {
            (0..cpus).map(|c| c * stride + sub_id).collect()
        } else {
            Vec::new()
        }
    }

    pub(super) fn reset_stats(&mut self, sub_id: u32) -> Result<()> {
        let entries = self.stats_entries(sub_id);
        let mut m: Array<_, SubscriberStats> = Array::try_from(self.map_mut(maps::SUB_STATS)?)?;
        for i in entries {
            m.set(i, SubscriberStats::default(), 0).map_err(map_err)?;
        }
        Ok(())
    }

    /// How many entries each subscriber map holds (occupancy, for `show stats`,
    /// the metrics endpoint and tests). Hash maps are counted with batch
    /// reads ([`super::batch`]); the arrays' occupied slots are kept as they
    /// are written.
    pub fn map_entries(&self) -> Result<Vec<(&'static str, usize)>> {
        let count =
            |name: &'static str| -> Result<usize> { batch::count(batch::data(self.map(name)?)?) };
        Ok(vec![
            (maps::ACCESS_BY_MAC, count(maps::ACCESS_BY_MAC)?),
            // The GRE-key tables: occupied array slots plus the hash of larger keys.
            (
                maps::ACCESS_BY_KEY,
                self.key_slots[KeyTable::Access as usize] + count(maps::ACCESS_BY_KEY_HIGH)?,
            ),
            // Home addresses / prefixes: pool slots plus the hash of the rest.
            (
                maps::ANCHOR_BY_HOME4,
                self.pool_slots[0] + count(maps::ANCHOR_BY_HOME4)?,
            ),
            (
                maps::ANCHOR_BY_HNP,
                self.pool_slots[1] + count(maps::ANCHOR_BY_HNP)?,
            ),
            (
                maps::ANCHOR_BY_KEY,
                self.key_slots[KeyTable::Anchor as usize] + count(maps::ANCHOR_BY_KEY_HIGH)?,
            ),
        ])
    }

    /// How many entries each map of [`map_entries`](Self::map_entries) can
    /// hold: its max_entries, plus those of the hash or pool array beside it.
    pub fn map_capacity(&self) -> Result<Vec<(&'static str, usize)>> {
        let max = |name: &str| -> Result<usize> {
            let info = batch::data(self.map(name)?)?.info().map_err(map_err)?;
            Ok(info.max_entries() as usize)
        };
        Ok(vec![
            (maps::ACCESS_BY_MAC, max(maps::ACCESS_BY_MAC)?),
            (
                maps::ACCESS_BY_KEY,
                max(maps::ACCESS_BY_KEY)? + max(maps::ACCESS_BY_KEY_HIGH)?,
            ),
            (
                maps::ANCHOR_BY_HOME4,
                self.pool_capacity(0) + max(maps::ANCHOR_BY_HOME4)?,
            ),
            (
                maps::ANCHOR_BY_HNP,
                self.pool_capacity(1) + max(maps::ANCHOR_BY_HNP)?,
            ),
            (
                maps::ANCHOR_BY_KEY,
                max(maps::ANCHOR_BY_KEY)? + max(maps::ANCHOR_BY_KEY_HIGH)?,
            ),
        ])
    }

    /// Home addresses (0) or prefixes (1) the pools lay over the pool arrays.
    fn pool_capacity(&self, which: usize) -> usize {
        match which {
            0 => self.pools4.iter().map(|p| p.size as usize).sum(),
            _ => self.pools6.iter().map(|p| p.size as usize).sum(),
        }
    }

    /// Entries of one subscriber map (see [`map_entries`](Self::map_entries)).
    pub fn map_entry_count(&self, name: &str) -> Result<usize> {
        self.map_entries()?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| anyhow!("no subscriber map named {name}"))
    }

    /// Verdict and drop-reason counters summed over CPUs, by name: the whole
    /// per-CPU table in one batch read.
    pub fn counters(&self) -> Result<Vec<(&'static str, u64)>> {
        let cpus = self.stats_rows.0 as usize;
        let sums = batch::percpu_u64_sums(batch::data(self.map(maps::COUNTERS)?)?, cpus)?;
        Ok(Counter::ALL
            .iter()
            .map(|c| (c.name(), sums.get(*c as usize).copied().unwrap_or(0)))
            .collect())
    }

    pub fn counter(&self, c: Counter) -> Result<u64> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::COUNTERS)?)?;
        Ok(m.get(&(c as u32), 0).map_err(map_err)?.iter().sum())
    }

    /// Subscriber `sub_id`'s traffic, summed over CPUs.
    pub fn traffic(&self, sub_id: u32) -> Result<TrafficCounters> {
        let mut t = TrafficCounters::default();
        for s in self.traffic_by_cpu(sub_id)? {
            t.up_packets += s.up_packets;
            t.up_bytes += s.up_bytes;
            t.down_packets += s.down_packets;
            t.down_bytes += s.down_bytes;
        }
        Ok(t)
    }

    /// The traffic of the subscriber at `at` on this access gateway (None:
    /// no `ACCESS_BY_MAC` entry for it).
    pub fn access_traffic(&self, at: &AccessPoint) -> Result<Option<TrafficCounters>> {
        let m: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map(maps::ACCESS_BY_MAC)?)?;
        let key = AccessKey {
            ifindex: at.ifindex,
            vlan: at.vlan,
            mac: at.mac,
        };
        match m.get(&key, 0) {
            Ok(s) => Ok(Some(self.traffic(s.sub_id)?)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Subscriber `sub_id`'s traffic as each CPU forwarded it (its row of
    /// SUB_STATS per CPU; empty beyond the table).
    pub fn traffic_by_cpu(&self, sub_id: u32) -> Result<Vec<TrafficCounters>> {
        let entries = self.stats_entries(sub_id);
        let m: Array<_, SubscriberStats> = Array::try_from(self.map(maps::SUB_STATS)?)?;
        entries
            .into_iter()
            .map(|i| {
                let s = m.get(&i, 0).map_err(map_err)?;
                Ok(TrafficCounters {
                    up_packets: s.up_packets,
                    up_bytes: s.up_bytes,
                    down_packets: s.down_packets,
                    down_bytes: s.down_bytes,
                })
            })
            .collect()
    }
}
