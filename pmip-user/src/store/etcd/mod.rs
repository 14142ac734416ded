//! The etcd store: the binding records of one anchor service address, kept
//! in the etcd cluster that all anchors share (issue 17). It implements the
//! same [`Store`] trait as the embedded store, so a registrar does not know
//! which one it writes to.
//!
//! - Keys: `P/svc/<service address>/<RecordKey::path>` ([`Keyspace`]); values
//!   the records' versioned JSON (`record::encode`), as in every backend;
//!   compact anchor records (`record::encode_compact`) are read too.
//! - A batch is one transaction (several when it has more operations than
//!   etcd allows in one: `store.max_txn_ops`), fenced: it applies only while
//!   this member still owns the service address under the lease it holds
//!   now. A member that lost its address (cut off, taken over) can never
//!   overwrite what the new owner wrote.
//! - Binding records carry the lease of their expiry bucket ([`buckets`]).
//! - A batch that fails is kept and written again, first, with the next one
//!   (each write carries a whole record, the latest wins); meanwhile
//!   allocation of new numbers is closed ([`StoreHealth`]), so the
//!   registrar refuses new bindings it could not persist, with its
//!   protocol's insufficient-resources code.
//! - Writes do not block ([`Store::begin`]): several batches of one address
//!   may be in flight, a batch that shares a key with one in flight is sent
//!   after it, and a failed operation is kept only if no later write
//!   carries its key ([`inflight`]).
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::record::{decode, encode};
use super::{wall_ms, Begun, Record, RecordKey, Store, StoreOp};
use crate::agent::blocks::Blocks;
use inflight::{InFlight, Started};

pub mod buckets;
pub mod conn;
mod inflight;

pub use buckets::Buckets;
pub use conn::{EtcdConn, EtcdRuntime, Keyspace};

/// Records read per request when scanning (a reply stays far below gRPC's
/// 4 MiB message limit).
const SCAN_PAGE: i64 = 1000;

/// Who may write a service address's records: the member that owns it,
/// under this lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub member: String,
    pub lease: i64,
}

/// How the store of a service address fares, shared with the cluster.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// A write was refused because another member owns the address now.
    pub not_owner: AtomicBool,
    pub batches: AtomicU64,
    pub ops: AtomicU64,
    pub txns: AtomicU64,
    pub failures: AtomicU64,
    /// Operations waiting to be written again.
    pub pending: AtomicU64,
    pub last_error: Mutex<String>,
    /// Closed on a failed write (new bindings refused); the cluster opens
    /// it again once etcd answers.
    pub admission: Mutex<Option<Blocks>>,
}

impl StoreHealth {
    fn failed(&self, e: &anyhow::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = format!("{e:#}");
        if let Some(b) = self
            .admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            b.set_open(false);
        }
    }
}

/// The store of one service address in etcd.
pub struct EtcdStore {
    conn: EtcdConn,
    addr: IpAddr,
    fence: Option<Fence>,
    buckets: Buckets,
    /// Writes in flight and those that failed (sent again before the next batch).
    flight: Arc<Mutex<InFlight>>,
    health: Arc<StoreHealth>,
}

impl EtcdStore {
    /// The records of `addr`; writes are fenced by `fence` (None: not
    /// fenced, for tools and tests).
    pub fn new(conn: EtcdConn, addr: IpAddr, fence: Option<Fence>, buckets: Buckets) -> Self {
        EtcdStore {
            conn,
            addr,
            fence,
            buckets,
            flight: Arc::default(),
            health: Arc::new(StoreHealth::default()),
        }
    }

    pub fn health(&self) -> Arc<StoreHealth> {
        self.health.clone()
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }
}

/// One operation as etcd takes it.
enum Write {
    Put {
        key: String,
        value: Vec<u8>,
        expires_ms: Option<u64>,
    },
    Delete(String),
}

fn write_of(keys: &Keyspace, addr: IpAddr, op: &StoreOp) -> Write {
    match op {
        StoreOp::Put(k, r) => Write::Put {
            key: keys.record(addr, k),
            value: encode(r),
            expires_ms: match r {
                Record::Anchor(a) => Some(a.expires_ms),
                Record::Access(a) => Some(a.expires_ms),
                Record::Node(_) => None,
            },
        },
        StoreOp::Delete(k) => Write::Delete(keys.record(addr, k)),
    }
}

/// Writes `chunk` in one transaction, fenced by ownership of `owner_key`.
async fn write_chunk(
    client: &mut Client,
    buckets: &Buckets,
    fence: Option<(&str, &Fence)>,
    chunk: &[Write],
) -> Result<()> {
    let now = wall_ms(std::time::SystemTime::now());
    let mut ops = Vec::with_capacity(chunk.len());
    for w in chunk {
        ops.push(match w {
            Write::Put {
                key,
                value,
                expires_ms,
            } => {
                let opts = match expires_ms {
                    Some(e) => {
                        Some(PutOptions::new().with_lease(buckets.lease(client, *e, now).await?))
                    }
                    None => None,
                };
                TxnOp::put(key.as_str(), value.clone(), opts)
            }
            Write::Delete(key) => TxnOp::delete(key.as_str(), None),
        });
    }
    // etcd-client wants the compares before the operations.
    let mut txn = Txn::new();
    if let Some((owner_key, f)) = fence {
        txn = txn.when([
            Compare::value(owner_key, CompareOp::Equal, f.member.as_str()),
            Compare::lease(owner_key, CompareOp::Equal, f.lease),
        ]);
    }
    let r = client.txn(txn.and_then(ops)).await?;
    if !r.succeeded() {
        bail!(NOT_OWNER);
    }
    Ok(())
}

/// What one write needs on the etcd runtime.
struct Writer {
    conn: EtcdConn,
    buckets: Buckets,
    fence: Option<Fence>,
    owner_key: String,
}

impl Writer {
    fn per_txn(&self) -> usize {
        self.conn.max_txn_ops.max(1)
    }

    /// Writes `writes` in transactions of at most `max_txn_ops`, one after
    /// the other; the operations written, and the error that stopped it.
    async fn write_all(&self, writes: &[Write]) -> (usize, Option<anyhow::Error>) {
        let client = self.conn.client();
        let mut done = 0usize;
        for chunk in writes.chunks(self.per_txn()) {
            let f = self.fence.as_ref().map(|f| (self.owner_key.as_str(), f));
            let w = self.conn.retried("write", || {
                let (mut c, buckets) = (client.clone(), self.buckets.clone());
                async move { write_chunk(&mut c, &buckets, f, chunk).await }
            });
            if let Err(e) = w.await {
                return (done, Some(e));
            }
            done += chunk.len();
        }
        (done, None)
    }
}

fn lock(f: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a finished write and keeps what it did not write (`InFlight::finish`).
fn settle(
    flight: &Mutex<InFlight>,
    h: &StoreHealth,
    (seq, ops): (u64, Vec<StoreOp>),
    written: usize,
    err: Option<anyhow::Error>,
    per_txn: usize,
) -> Result<()> {
    h.batches.fetch_add(1, Ordering::Relaxed);
    h.ops.fetch_add(written as u64, Ordering::Relaxed);
    h.txns
        .fetch_add(written.div_ceil(per_txn) as u64, Ordering::Relaxed);
    let mut f = lock(flight);
    f.finish(seq, ops, written);
    h.pending.store(f.pending.len() as u64, Ordering::Relaxed);
    drop(f);
    let Some(e) = err else {
        return Ok(());
    };
    if format!("{e:#}").contains(NOT_OWNER) {
        h.not_owner.store(true, Ordering::Relaxed);
    }
    h.failed(&e);
    Err(anyhow!("{e:#}"))
}

/// The error text of a fenced write refused: another member owns the address.
pub const NOT_OWNER: &str = "not the owner of this service address any more";

impl Store for EtcdStore {
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        let conn = self.conn.clone();
        let prefix = self.conn.keys.service(self.addr);
        let raw = self.conn.block_on(async move {
            let client = conn.client();
            let end = conn::prefix_end(&prefix);
            let mut from = prefix.clone().into_bytes();
            let mut out = Vec::new();
            loop {
                let r = conn
                    .retried("scan", || {
                        let (mut c, from) = (client.clone(), from.clone());
                        let opts = GetOptions::new()
                            .with_range(end.clone())
                            .with_limit(SCAN_PAGE);
                        async move { Ok(c.get(from, Some(opts)).await?) }
                    })
                    .await?;
                for kv in r.kvs() {
                    out.push((kv.key().to_vec(), kv.value().to_vec()));
                }
                match (r.more(), r.kvs().last()) {
                    (true, Some(last)) => {
                        from = last.key().to_vec();
                        from.push(0);
                    }
                    _ => return anyhow::Ok(out),
                }
            }
        })?;
        let prefix = self.conn.keys.service(self.addr);
        let (mut out, mut skipped) = (Vec::with_capacity(raw.len()), 0usize);
        for (k, v) in raw {
            let k = String::from_utf8_lossy(&k);
            let Some(key) = k.strip_prefix(&prefix).and_then(RecordKey::from_path) else {
                tracing::warn!(key = %k, "etcd store: unknown key skipped");
                skipped += 1;
                continue;
            };
            match decode(&v) {
                Ok(r) => out.push((key, r)),
                Err(e) => {
                    tracing::warn!(key = %k, "etcd store: record skipped: {e}");
                    skipped += 1;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(address = %self.addr, "etcd store: {skipped} record(s) skipped, {} read", out.len());
        }
        Ok(out)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<()> {
        match self.begin(batch) {
            Begun::Done(r) => r,
            Begun::Pending(rx) => self.conn.block_on(Begun::Pending(rx).wait()),
        }
    }

    /// Sends the batch (after what failed before, and after any write in
    /// flight that carries one of its keys) on the etcd runtime.
    fn begin(&mut self, batch: &[StoreOp]) -> Begun {
        let started = lock(&self.flight).begin(batch);
        if started.ops.is_empty() {
            lock(&self.flight).finish(started.seq, started.ops, 0);
            return Begun::Done(Ok(()));
        }
        let writes: Vec<Write> = started
            .ops
            .iter()
            .map(|o| write_of(&self.conn.keys, self.addr, o))
            .collect();
        let w = Writer {
            conn: self.conn.clone(),
            buckets: self.buckets.clone(),
            fence: self.fence.clone(),
            owner_key: self.conn.keys.owner(self.addr),
        };
        let (flight, health) = (self.flight.clone(), self.health.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.conn.runtime().spawn(async move {
            let Started {
                seq,
                ops,
                after,
                finished,
                ..
            } = started;
            inflight::wait_for(after).await;
            let (written, err) = w.write_all(&writes).await;
            let r = settle(&flight, &health, (seq, ops), written, err, w.per_txn());
            // The writes after this one may go now.
            drop(finished);
            let _ = tx.send(r);
        });
        Begun::Pending(rx)
    }

    fn durable(&self) -> bool {
        true
    }
}
