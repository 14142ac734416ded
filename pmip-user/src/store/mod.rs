//! Durable binding state (STYLE §10): what a gateway needs to resume its
//! subscribers after a restart, kept outside the process.
//!
//! The registrars never touch a store: like data-plane commands, they emit
//! [`StoreOp`]s (`agent::Endpoint::poll_store`), and the shell applies each
//! batch with [`Store::apply`] *before* it writes the maps, hands out events
//! or sends a datagram — a binding is durable before the peer or the
//! subscriber hears of it. At start the daemon reads every record back with
//! [`Store::scan`] and hands them to `Endpoint::restore`.
//!
//! - [`record`]   — the keys and records (one format for every backend).
//! - [`embedded`] — the default backend: one redb file, fsync on commit.
//! - [`mem`]      — in memory: sim tests, and `backend = "memory"` (nothing survives).
//! - [`etcd`]     — a cluster's shared store: one per anchor service address (issue 17).
//! - [`pack`]     — its packed layout: a batch's binding records in one value per expiry bucket.
//!
//! A distributed backend (etcd, for a cluster) implements the same trait:
//! keys are [`RecordKey::path`] strings, values the records' JSON
//! ([`record::encode`]), a batch is one transaction.
use anyhow::Result;

mod compact;
pub mod embedded;
pub mod etcd;
pub mod mem;
pub mod pack;
pub mod record;
mod restore;

pub use embedded::EmbeddedStore;
pub use mem::MemStore;
pub use record::{
    AaaProfile, AccessRecord, AnchorRecord, HnpRecord, NodeRecord, Proto, Record, RecordKey,
    Restored,
};
pub(crate) use restore::{restore_access, restore_anchor, AccessRestore, AnchorRestore};

/// One change to the durable state.
// Ops live one flush long in a queue: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Create or replace the record under the key.
    Put(RecordKey, Record),
    /// Remove the key (absent is not an error).
    Delete(RecordKey),
}

impl StoreOp {
    pub fn key(&self) -> &RecordKey {
        match self {
            StoreOp::Put(k, _) | StoreOp::Delete(k) => k,
        }
    }
}

/// Where binding records live.
pub trait Store: Send {
    /// Every record, at start. Records that do not decode (another
    /// version's, a torn write) are skipped with a warning, not an error:
    /// the gateway must start.
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>>;
    /// Applies a batch atomically and durably: when it returns `Ok`, every
    /// operation survives a crash of this process (and, for the embedded
    /// backend, of the host).
    fn apply(&mut self, batch: &[StoreOp]) -> Result<()>;
    /// Starts writing a batch without waiting for it (issue 17: several
    /// writes of one service address in flight). Its result means what
    /// [`Store::apply`]'s does; a later batch never overtakes an earlier
    /// one on a key they share. The default writes at once with `apply`.
    fn begin(&mut self, batch: &[StoreOp]) -> Begun {
        Begun::Done(self.apply(batch))
    }
    /// Whether anything survives this process (false: the memory backend).
    fn durable(&self) -> bool;
}

/// A write [`Store::begin`] started.
#[derive(Debug)]
pub enum Begun {
    /// Already written (or refused).
    Done(Result<()>),
    /// On its way: the result comes here (a dropped sender is a refusal).
    Pending(tokio::sync::oneshot::Receiver<Result<()>>),
}

impl Begun {
    /// The write's result, once it is known.
    pub async fn wait(self) -> Result<()> {
        match self {
            Begun::Done(r) => r,
            Begun::Pending(rx) => rx
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("store: the write was dropped"))),
        }
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        (**self).scan()
    }
    fn apply(&mut self, batch: &[StoreOp]) -> Result<()> {
        (**self).apply(batch)
    }
    fn begin(&mut self, batch: &[StoreOp]) -> Begun {
        (**self).begin(batch)
    }
    fn durable(&self) -> bool {
        (**self).durable()
    }
}

/// A store that keeps nothing (tests and tools that run an endpoint without one).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl Store for NoStore {
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        Ok(Vec::new())
    }
    fn apply(&mut self, _batch: &[StoreOp]) -> Result<()> {
        Ok(())
    }
    fn durable(&self) -> bool {
        false
    }
}

/// Wall-clock time as milliseconds since the Unix epoch (the records' time unit).
pub fn wall_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The restart counter of this start (RFC 5847 §5.2): unchanged when the
/// store kept our state, a new one when it did not (first start, lost or
/// memory store) — a peer that sees it change drops what it held for us.
/// The second value is the node record to write back.
pub fn restart_counter(
    recovered: Option<&NodeRecord>,
    now: std::time::SystemTime,
) -> (u32, NodeRecord) {
    let c = match recovered {
        Some(n) => n.restart_counter,
        // Tenths of a second since the epoch (wrapping every 13 years): a
        // peer compares it for a change only (RFC 5847 §5.2), and two
        // starts within one second still get two values.
        None => (wall_ms(now) / 100) as u32,
    };
    (c, NodeRecord { restart_counter: c })
}

#[cfg(test)]
mod tests;

/// The `leaving` marks of the access records in `store` (sim tests).
#[cfg(test)]
pub(crate) fn leaving_marks(store: &mut impl Store) -> Vec<bool> {
    store
        .scan()
        .unwrap()
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Access(a) => Some(a.leaving),
            _ => None,
        })
        .collect()
}
