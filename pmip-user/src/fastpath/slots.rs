//! The GRE-key tables (an array indexed by key, a hash for larger keys)
//! and the array slots behind them and the pool tables, counted as they
//! fill (an array cannot be counted cheaply).
use anyhow::Result;
use aya::maps::{Array, HashMap};
use pmip_common::maps;

use super::{map_err, FastPath};

/// The two GRE-key tables: array indexed by key + hash for larger keys.
#[derive(Clone, Copy)]
pub(super) enum KeyTable {
    Access = 0,
    Anchor = 1,
}

impl KeyTable {
    pub(super) fn names(self) -> (&'static str, &'static str) {
        match self {
            KeyTable::Access => (maps::ACCESS_BY_KEY, maps::ACCESS_BY_KEY_HIGH),
            KeyTable::Anchor => (maps::ANCHOR_BY_KEY, maps::ANCHOR_BY_KEY_HIGH),
        }
    }
}

impl FastPath {
    /// Writes `v` into slot `i` of array map `name`; true if the slot was
    /// free before (`used` tells), so that the caller counts occupied slots.
    pub(super) fn fill_slot<V: aya::Pod>(
        &mut self,
        name: &str,
        i: u32,
        v: V,
        used: impl Fn(&V) -> bool,
    ) -> Result<bool> {
        let mut a: Array<_, V> = Array::try_from(self.map_mut(name)?)?;
        let was = a.get(&i, 0).map(|c| used(&c)).unwrap_or(false);
        a.set(i, v, 0).map_err(map_err)?;
        Ok(!was)
    }

    /// Frees slot `i` of array map `name` if its entry satisfies `mine`;
    /// true if it did.
    pub(super) fn free_slot<V: aya::Pod + Default>(
        &mut self,
        name: &str,
        i: u32,
        mine: impl Fn(&V) -> bool,
    ) -> Result<bool> {
        let mut a: Array<_, V> = Array::try_from(self.map_mut(name)?)?;
        if !a.get(&i, 0).map(|c| mine(&c)).unwrap_or(false) {
            return Ok(false);
        }
        a.set(i, V::default(), 0).map_err(map_err)?;
        Ok(true)
    }

    /// Entries of array map `name`.
    fn array_len<V: aya::Pod>(&self, name: &str) -> Result<u32> {
        Ok(Array::<_, V>::try_from(self.map(name)?)?.len())
    }

    /// Puts `v` under GRE key `key`: in the array when the key is an index
    /// of it, else in the hash.
    pub(super) fn set_by_key<V: aya::Pod + Default>(
        &mut self,
        t: KeyTable,
        key: u32,
        v: V,
        used: impl Fn(&V) -> bool,
    ) -> Result<()> {
        let (array, high) = t.names();
        if key < self.array_len::<V>(array)? {
            if self.fill_slot(array, key, v, used)? {
                self.key_slots[t as usize] += 1;
            }
            return Ok(());
        }
        let mut h: HashMap<_, [u8; 4], V> = HashMap::try_from(self.map_mut(high)?)?;
        h.insert(key.to_be_bytes(), v, 0).map_err(map_err)
    }

    /// Frees GRE key `key` if its entry satisfies `mine`.
    pub(super) fn clear_by_key<V: aya::Pod + Default>(
        &mut self,
        t: KeyTable,
        key: u32,
        mine: impl Fn(&V) -> bool,
    ) -> Result<()> {
        let (array, high) = t.names();
        if key < self.array_len::<V>(array)? {
            if self.free_slot(array, key, mine)? {
                self.key_slots[t as usize] = self.key_slots[t as usize].saturating_sub(1);
            }
            return Ok(());
        }
        let mut h: HashMap<_, [u8; 4], V> = HashMap::try_from(self.map_mut(high)?)?;
        let k = key.to_be_bytes();
        if h.get(&k, 0).map(|c| mine(&c)).unwrap_or(false) {
            let _ = h.remove(&k);
        }
        Ok(())
    }

    /// Calls `f(key, value)` for every used entry of a GRE-key table (array and hash).
    pub(super) fn for_each_key<V: aya::Pod>(
        &self,
        t: KeyTable,
        used: impl Fn(&V) -> bool,
        mut f: impl FnMut(u32, &V),
    ) -> Result<()> {
        let (array, high) = t.names();
        let a: Array<_, V> = Array::try_from(self.map(array)?)?;
        for k in 0..a.len() {
            if let Ok(v) = a.get(&k, 0) {
                if used(&v) {
                    f(k, &v);
                }
            }
        }
        let m: HashMap<_, [u8; 4], V> = HashMap::try_from(self.map(high)?)?;
        for r in m.iter() {
            let (k, v) = r.map_err(map_err)?;
            if used(&v) {
                f(u32::from_be_bytes(k), &v);
            }
        }
        Ok(())
    }

    /// Occupied slots of a GRE-key array, counted one by one (after a restart).
    pub(super) fn count_slots<V: aya::Pod>(
        &self,
        array: &str,
        used: impl Fn(&V) -> bool,
    ) -> Result<usize> {
        let a: Array<_, V> = Array::try_from(self.map(array)?)?;
        Ok((0..a.len())
            .filter(|i| a.get(i, 0).map(|v| used(&v)).unwrap_or(false))
            .count())
    }
}
