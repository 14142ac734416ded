//! What the fast path counts: verdict and drop-reason counters,
//! per-subscriber traffic (SUB_TOTALS + SUB_ACTIVE) and map occupancy.
use anyhow::{anyhow, Result};
use aya::maps::{Array, HashMap, PerCpuArray};
use std::os::fd::AsFd;
use std::sync::atomic::{fence, Ordering};

use pmip_common::{
    maps, sub_active_set, AccessKey, AccessSubscriber, ActiveStats, Counter, SubscriberStats,
};

use super::slots::KeyTable;
use super::FastPath;
use super::{batch, map_err};
use crate::dataplane::{AccessPoint, TrafficCounters};

/// SUB_ACTIVE's shape, and its mapping into our memory (made on first read).
pub(super) struct Active {
    cpus: u32,
    slots: u32,
    map: std::sync::OnceLock<Mapped>,
}

impl Active {
    pub(super) fn new(cpus: u32, slots: u32) -> Active {
        Active {
            cpus,
            slots,
            map: std::sync::OnceLock::new(),
        }
    }

    /// The indexes of subscriber `sub_id`'s two slots on `cpu`.
    fn ways(&self, cpu: u32, sub_id: u32) -> [u32; 2] {
        let base = cpu * self.slots + 2 * sub_active_set(sub_id, self.slots);
        [base, base + 1]
    }
}

/// A read-only shared mapping of a BPF_F_MMAPABLE array.
struct Mapped {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a read-only mapping of kernel memory; readers use volatile reads
// (the fast path writes it concurrently), nothing is ever written through it.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn new(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> Result<Mapped> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared read-only mapping of the map's fd; the
        // kernel checks that `len` fits the array.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(anyhow!(
                "mmap of {}: {}",
                maps::SUB_ACTIVE,
                std::io::Error::last_os_error()
            ));
        }
        Ok(Mapped {
            ptr: p as *const u8,
            len,
        })
    }

    /// Slot `i`, read field by field; `seq` first (see `ActiveStats`).
    fn slot(&self, i: u32) -> Option<ActiveStats> {
        let off = i as usize * std::mem::size_of::<ActiveStats>();
        if off + std::mem::size_of::<ActiveStats>() > self.len {
            return None;
        }
        // SAFETY: inside the mapping (checked above); array elements are
        // 8-byte aligned (40-byte values, page-aligned mapping).
        unsafe {
            let p = self.ptr.add(off) as *const ActiveStats;
            let seq = std::ptr::read_volatile(&(*p).seq);
            fence(Ordering::Acquire);
            let sub = std::ptr::read_volatile(&(*p).sub);
            let stats = std::ptr::read_volatile(&(*p).stats);
            Some(ActiveStats { sub, seq, stats })
        }
    }

    /// The `seq` of slot `i` now.
    fn seq(&self, i: u32) -> Option<u32> {
        let off = i as usize * std::mem::size_of::<ActiveStats>();
        if off + std::mem::size_of::<ActiveStats>() > self.len {
            return None;
        }
        fence(Ordering::Acquire);
        // SAFETY: as in `slot`.
        Some(unsafe { std::ptr::read_volatile(&(*(self.ptr.add(off) as *const ActiveStats)).seq) })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

fn counters(s: &SubscriberStats) -> TrafficCounters {
    TrafficCounters {
        up_packets: s.up_packets,
        up_bytes: s.up_bytes,
        down_packets: s.down_packets,
        down_bytes: s.down_bytes,
    }
}

/// Reads of a subscriber's counters that a flush overlapped, before giving
/// up (a flush takes nanoseconds; a retry is a few syscalls).
const READ_TRIES: usize = 1000;

impl FastPath {
    fn active_map(&self) -> Result<&Mapped> {
        if let Some(m) = self.active.map.get() {
            return Ok(m);
        }
        let len =
            (self.active.cpus * self.active.slots) as usize * std::mem::size_of::<ActiveStats>();
        let fd = match self.map(maps::SUB_ACTIVE)? {
            aya::maps::Map::Array(d) => d.fd().as_fd(),
            _ => return Err(anyhow!("{} is not an array", maps::SUB_ACTIVE)),
        };
        let m = Mapped::new(fd, len)?;
        Ok(self.active.map.get_or_init(|| m))
    }

    fn total(&self, sub_id: u32) -> Result<SubscriberStats> {
        let m: Array<_, SubscriberStats> = Array::try_from(self.map(maps::SUB_TOTALS)?)?;
        match m.get(&sub_id, 0) {
            Ok(s) => Ok(s),
            // Beyond the table: the fast path counts nothing for it.
            Err(aya::maps::MapError::OutOfBounds { .. }) => Ok(SubscriberStats::default()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// A new binding for `sub_id` starts from zero: its total, and the
    /// slots that hold it on any CPU.
    pub(super) fn reset_stats(&mut self, sub_id: u32) -> Result<()> {
        let tag = sub_id.wrapping_add(1);
        let mut held = Vec::new();
        for cpu in 0..self.active.cpus {
            for i in self.active.ways(cpu, sub_id) {
                if let Some(s) = self.active_map()?.slot(i).filter(|s| s.sub == tag) {
                    held.push((i, s.seq));
                }
            }
        }
        let mut a: Array<_, ActiveStats> = Array::try_from(self.map_mut(maps::SUB_ACTIVE)?)?;
        for (i, seq) in held {
            let free = ActiveStats {
                sub: 0,
                seq: (seq | 1) + 1,
                stats: SubscriberStats::default(),
            };
            a.set(i, free, 0).map_err(map_err)?;
        }
        let mut t: Array<_, SubscriberStats> = Array::try_from(self.map_mut(maps::SUB_TOTALS)?)?;
        match t.set(sub_id, SubscriberStats::default(), 0) {
            Ok(()) | Err(aya::maps::MapError::OutOfBounds { .. }) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Subscriber `sub_id`'s traffic: what the CPUs flushed into its total,
    /// and what each CPU's slots hold now (one entry per possible CPU), read
    /// exactly: a read that a flush overlapped is done again (see
    /// pmip-common `ActiveStats`).
    pub fn traffic_parts(&self, sub_id: u32) -> Result<(TrafficCounters, Vec<TrafficCounters>)> {
        let tag = sub_id.wrapping_add(1);
        let slots = self.active_map()?;
        'read: for _ in 0..READ_TRIES {
            let mut per_cpu = vec![TrafficCounters::default(); self.active.cpus as usize];
            // Every slot read, with its seq: a slot that changed hands
            // meanwhile (a flush, or a move from way 0 to way 1) may hide
            // or repeat the subscriber's counts.
            let mut read = Vec::new();
            for cpu in 0..self.active.cpus {
                for i in self.active.ways(cpu, sub_id) {
                    let Some(s) = slots.slot(i) else { continue };
                    if s.seq & 1 != 0 {
                        continue 'read;
                    }
                    if s.sub == tag {
                        per_cpu[cpu as usize].add(&counters(&s.stats));
                    }
                    read.push((i, s.seq));
                }
            }
            let total = counters(&self.total(sub_id)?);
            if read.iter().all(|&(i, seq)| slots.seq(i) == Some(seq)) {
                return Ok((total, per_cpu));
            }
        }
        Err(anyhow!(
            "the counters of subscriber {sub_id} kept changing under {READ_TRIES} reads"
        ))
    }

    /// How many entries each subscriber map holds (occupancy, for `show stats`,
    /// the metrics endpoint and tests). Hash maps are counted with batch
    /// reads ([`super::batch`]); the arrays' occupied slots are kept as they
    /// are written.
    pub(crate) fn map_entries(&self) -> Result<Vec<(&'static str, usize)>> {
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
    pub(crate) fn map_capacity(&self) -> Result<Vec<(&'static str, usize)>> {
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
        let cpus = self.active.cpus as usize;
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

    /// Subscriber `sub_id`'s traffic: its total and what the CPUs still hold.
    pub fn traffic(&self, sub_id: u32) -> Result<TrafficCounters> {
        let (mut t, per_cpu) = self.traffic_parts(sub_id)?;
        for c in &per_cpu {
            t.add(c);
        }
        Ok(t)
    }

    /// The traffic of the subscriber at `at` on this access gateway (None:
    /// no `ACCESS_BY_MAC` entry for it).
    pub(crate) fn access_traffic(&self, at: &AccessPoint) -> Result<Option<TrafficCounters>> {
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

    /// What each CPU counted for subscriber `sub_id` and has not flushed
    /// into its total yet (one entry per possible CPU; see [`traffic_parts`](Self::traffic_parts)).
    pub fn traffic_by_cpu(&self, sub_id: u32) -> Result<Vec<TrafficCounters>> {
        Ok(self.traffic_parts(sub_id)?.1)
    }

    /// SUB_ACTIVE's shape: (possible CPUs, slots per CPU).
    pub fn active_slots(&self) -> (u32, u32) {
        (self.active.cpus, self.active.slots)
    }
}
