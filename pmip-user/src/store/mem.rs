//! The in-memory store: the records as their encoded bytes (so a test runs
//! the same codec a durable backend does), shared between clones — a test
//! "restarts" a registrar on a clone of the store it wrote to.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};

use super::record::{decode, encode};
use super::{Record, RecordKey, Store, StoreOp};

#[derive(Clone, Debug, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<RecordKey, Vec<u8>>,
    /// Batches applied and operations in them (for tests and figures).
    batches: u64,
    ops: u64,
    /// Fail the next `apply` (tests of a store that refuses a write).
    fail_next: bool,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record under `k`, decoded.
    pub fn get(&self, k: &RecordKey) -> Option<Record> {
        self.lock().records.get(k).and_then(|b| decode(b).ok())
    }

    /// Every key held.
    pub fn keys(&self) -> Vec<RecordKey> {
        self.lock().records.keys().cloned().collect()
    }

    /// (batches, operations) applied so far.
    pub fn writes(&self) -> (u64, u64) {
        let g = self.lock();
        (g.batches, g.ops)
    }

    /// Makes the next `apply` fail.
    pub fn fail_next(&self) {
        self.lock().fail_next = true;
    }
}

impl Store for MemStore {
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        Ok(self
            .lock()
            .records
            .iter()
            .filter_map(|(k, b)| Some((k.clone(), decode(b).ok()?)))
            .collect())
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<()> {
        let mut g = self.lock();
        if std::mem::take(&mut g.fail_next) {
            return Err(anyhow!("memory store: write refused (test)"));
        }
        g.batches += 1;
        g.ops += batch.len() as u64;
        for op in batch {
            match op {
                StoreOp::Put(k, r) => {
                    g.records.insert(k.clone(), encode(r));
                }
                StoreOp::Delete(k) => {
                    g.records.remove(k);
                }
            }
        }
        Ok(())
    }

    fn durable(&self) -> bool {
        false
    }
}
