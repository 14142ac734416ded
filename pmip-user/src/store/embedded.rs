//! The embedded store: one redb file (`[store] path`). Each batch is one
//! write transaction, committed with an fsync (redb's default durability),
//! so a record is on disk before the shell lets the peer hear of it.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::{decode, encode};
use super::{Record, RecordKey, Store, StoreOp};

/// path → encoded record.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

#[cfg(test)]
pub(super) const RECORDS_FOR_TESTS: TableDefinition<&str, &[u8]> = RECORDS;

pub struct EmbeddedStore {
    pub(super) db: Database,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, creating its directory.
    /// Only one process may have it open: a second pmipd on the same file
    /// is refused here.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("store.path: creating {}", dir.display()))?;
        }
        let db = Database::create(path)
            .with_context(|| format!("store.path: opening {}", path.display()))?;
        // The table exists from the first start on, so a scan never fails on it.
        let tx = db.begin_write()?;
        tx.open_table(RECORDS)?;
        tx.commit()?;
        Ok(EmbeddedStore {
            db,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Store for EmbeddedStore {
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RECORDS)?;
        let (mut out, mut skipped) = (Vec::new(), 0usize);
        for item in t.iter()? {
            let (k, v) = item?;
            let Some(key) = RecordKey::from_path(k.value()) else {
                tracing::warn!(key = k.value(), "store: unknown key skipped");
                skipped += 1;
                continue;
            };
            match decode(v.value()) {
                Ok(r) => out.push((key, r)),
                Err(e) => {
                    tracing::warn!(key = k.value(), "store: record skipped: {e}");
                    skipped += 1;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!("store: {skipped} record(s) skipped, {} read", out.len());
        }
        Ok(out)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(RECORDS)?;
            for op in batch {
                let k = op.key().path();
                match op {
                    StoreOp::Put(_, r) => {
                        t.insert(k.as_str(), encode(r).as_slice())?;
                    }
                    StoreOp::Delete(_) => {
                        t.remove(k.as_str())?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn durable(&self) -> bool {
        true
    }
}
