//! ESP sequence numbers across restarts. Manually keyed SAs outlive the
//! process: a restarted sender that starts over at 1 is taken for a
//! replayer by the peer's window (RFC 4303 §3.4.3), and a restarted
//! receiver with an empty window takes recorded packets once more. So the
//! agent keeps, per peer, the last outbound number and the top of the
//! inbound window ([`SeqRecord`]) in a [`SeqStore`].
//!
//! Outbound numbers are reserved ahead in blocks of [`TX_BLOCK`]: the store
//! is written before a number past the reservation goes out, so a restart
//! (even `kill -9`) resumes above every number ever sent, at the cost of
//! skipping at most one block. Inbound tops are written at most once per
//! [`RX_SAVE_EVERY`] and at shutdown: after a crash, packets of the last
//! second could be replayed once, and RFC 5213's timestamps (§5.5) still
//! refuse those.
//!
//! [`FileSeqStore`] keeps them in a small JSON file (written to a temporary
//! file, synced, renamed). The durable store of issue 11 can implement
//! [`SeqStore`] instead; nothing else changes.
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::SaDb;

/// Outbound numbers reserved per write of the store.
pub(crate) const TX_BLOCK: u64 = 4096;
/// Inbound window tops are written at most this often while running.
pub(crate) const RX_SAVE_EVERY: Duration = Duration::from_secs(1);

/// What one peer's SAs must carry across a restart. The SPIs identify the
/// SAs: new keys (new SPIs) start afresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRecord {
    pub peer: IpAddr,
    pub spi_out: u32,
    /// Every number up to this one may have been sent.
    pub tx_seq: u64,
    pub spi_in: u32,
    /// Highest number received and authenticated.
    pub rx_top: u64,
}

/// Where [`SeqRecord`]s are kept.
pub(crate) trait SeqStore: Send {
    /// Everything saved last (empty when nothing was).
    fn load(&mut self) -> io::Result<Vec<SeqRecord>>;
    /// Replaces what is saved; durable when it returns.
    fn save(&mut self, records: &[SeqRecord]) -> io::Result<()>;
}

/// A [`SeqStore`] in one file.
#[derive(Debug)]
pub struct FileSeqStore {
    path: PathBuf,
}

impl FileSeqStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSeqStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SeqStore for FileSeqStore {
    fn load(&mut self) -> io::Result<Vec<SeqRecord>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn save(&mut self, records: &[SeqRecord]) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(records)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Keeps one [`SaDb`]'s sequence numbers in a [`SeqStore`].
pub struct SeqKeeper {
    store: Box<dyn SeqStore>,
    /// Per peer: outbound numbers up to this one are reserved in the store.
    reserved: HashMap<IpAddr, u64>,
    last_rx_save: Option<Instant>,
    rx_dirty: bool,
}

impl std::fmt::Debug for SeqKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqKeeper")
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl SeqKeeper {
    /// Loads what `store` kept into `db` (records of other peers or other
    /// SPIs are dropped), then reserves the first block and saves.
    pub(crate) fn restore(mut store: Box<dyn SeqStore>, db: &mut SaDb) -> io::Result<SeqKeeper> {
        for r in store.load()? {
            if db.spis(&r.peer) == Some((r.spi_in, r.spi_out)) {
                db.set_tx_seq(&r.peer, r.tx_seq);
                db.set_rx_top(&r.peer, r.rx_top);
            }
        }
        let mut k = SeqKeeper {
            store,
            reserved: HashMap::new(),
            last_rx_save: None,
            rx_dirty: false,
        };
        for peer in db.peer_addrs() {
            let next = db.tx_seq(&peer).unwrap_or(0) + TX_BLOCK;
            k.reserved.insert(peer, next);
        }
        k.save(db)?;
        Ok(k)
    }

    /// What would be saved now.
    pub fn records(&self, db: &SaDb) -> Vec<SeqRecord> {
        let mut v: Vec<SeqRecord> = db
            .peer_addrs()
            .filter_map(|peer| {
                let (spi_in, spi_out) = db.spis(&peer)?;
                Some(SeqRecord {
                    peer,
                    spi_out,
                    tx_seq: self
                        .reserved
                        .get(&peer)
                        .copied()
                        .unwrap_or_else(|| db.tx_seq(&peer).unwrap_or(0)),
                    spi_in,
                    rx_top: db.rx_top(&peer).unwrap_or(0),
                })
            })
            .collect();
        v.sort_by_key(|r| r.peer);
        v
    }

    fn save(&mut self, db: &SaDb) -> io::Result<()> {
        let r = self.records(db);
        self.store.save(&r)?;
        self.rx_dirty = false;
        Ok(())
    }

    /// Call before sealing for `peer`: when the next number is past the
    /// reservation, reserves the next block and saves first.
    pub(crate) fn before_seal(&mut self, db: &SaDb, peer: &IpAddr, now: Instant) -> io::Result<()> {
        let Some(next) = db.tx_seq(peer).map(|s| s + 1) else {
            return Ok(());
        };
        let reserved = self.reserved.get(peer).copied().unwrap_or(0);
        if next <= reserved {
            return Ok(());
        }
        self.reserved.insert(*peer, next - 1 + TX_BLOCK);
        self.last_rx_save = Some(now);
        self.save(db)
    }

    /// Call after a packet was opened: the window moved.
    pub(crate) fn after_open(&mut self, db: &SaDb, now: Instant) -> io::Result<()> {
        self.rx_dirty = true;
        let due = self
            .last_rx_save
            .is_none_or(|t| now.saturating_duration_since(t) >= RX_SAVE_EVERY);
        if due {
            self.last_rx_save = Some(now);
            return self.save(db);
        }
        Ok(())
    }

    /// Saves what is not saved yet (at shutdown).
    pub fn flush(&mut self, db: &SaDb) -> io::Result<()> {
        if self.rx_dirty {
            self.save(db)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
