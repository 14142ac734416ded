//! The etcd store: the binding records of one anchor service address, kept
//! in the etcd cluster that all anchors share (issue 17). It implements the
//! same [`Store`] trait as the embedded store, so a registrar does not know
//! which one it writes to.
//!
//! - Keys: `P/svc/<service address>/<RecordKey::path>` ([`Keyspace`]); values
//!   the records' versioned JSON (`record::encode`), as in every backend.
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
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::record::{decode, encode};
use super::{wall_ms, Begun, Record, RecordKey, Store, StoreOp};
use crate::agent::blocks::Blocks;

pub mod buckets;
pub mod conn;

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
    /// Writes that failed, by key: sent again before the next batch
    /// (shared with the write on its way, which fills it when it fails).
    pending: Arc<Mutex<BTreeMap<RecordKey, StoreOp>>>,
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
            pending: Arc::default(),
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

/// Writes `chunk` in one transaction, fenced by ownership of `owner_key`;
/// `leases` gives each put's expiry-bucket lease by bucket end (granted
/// beforehand, at `now`).
async fn write_chunk(
    client: &mut Client,
    (leases, now): (&BTreeMap<u64, i64>, u64),
    fence: Option<(&str, &Fence)>,
    chunk: &[Write],
) -> Result<()> {
    let mut ops = Vec::with_capacity(chunk.len());
    for w in chunk {
        ops.push(match w {
            Write::Put {
                key,
                value,
                expires_ms,
            } => {
                let opts = expires_ms
                    .and_then(|e| leases.get(&buckets::bucket_end(e.max(now))))
                    .map(|l| PutOptions::new().with_lease(*l));
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

/// The lease of every expiry bucket in `writes`, by bucket end (one look-up
/// per bucket, a grant per new one, before any transaction).
async fn leases_of(
    conn: &EtcdConn,
    buckets: &Buckets,
    writes: &[Write],
    now: u64,
) -> Result<BTreeMap<u64, i64>> {
    let mut out = BTreeMap::new();
    for w in writes {
        if let Write::Put {
            expires_ms: Some(e),
            ..
        } = w
        {
            let end = buckets::bucket_end((*e).max(now));
            if !out.contains_key(&end) {
                let l = conn
                    .retried("lease", || {
                        let (mut c, b) = (conn.client(), buckets.clone());
                        async move { b.lease(&mut c, *e, now).await }
                    })
                    .await?;
                out.insert(end, l);
            }
        }
    }
    Ok(out)
}

/// The last operation on each key, in the order of first appearance: a
/// batch's transactions are sent at once and etcd may apply them in any
/// order, so no key may be in two of them (each operation carries the whole
/// record, so the last one is the state to keep).
fn last_per_key(ops: Vec<StoreOp>) -> Vec<StoreOp> {
    let mut at: std::collections::HashMap<RecordKey, usize> = Default::default();
    let mut out: Vec<StoreOp> = Vec::with_capacity(ops.len());
    for op in ops {
        match at.get(op.key()) {
            Some(&i) => out[i] = op,
            None => {
                at.insert(op.key().clone(), out.len());
                out.push(op);
            }
        }
    }
    out
}

/// Writes `writes` in transactions of at most `per_txn` operations, all
/// sent at once (etcd commits proposals that arrive together in one round
/// of its log, one fsync, instead of one round per transaction); returns
/// for each transaction whether it was written, and the first error.
async fn write_all(
    conn: EtcdConn,
    buckets: Buckets,
    fence: Option<(String, Fence)>,
    writes: Vec<Write>,
    per_txn: usize,
) -> (Vec<bool>, Option<anyhow::Error>) {
    let now = wall_ms(std::time::SystemTime::now());
    let leases = match leases_of(&conn, &buckets, &writes, now).await {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => return (vec![false; writes.len().div_ceil(per_txn)], Some(e)),
    };
    let writes = std::sync::Arc::new(writes);
    let mut set = tokio::task::JoinSet::new();
    for (i, start) in (0..writes.len()).step_by(per_txn).enumerate() {
        let (conn, leases, fence, writes) =
            (conn.clone(), leases.clone(), fence.clone(), writes.clone());
        set.spawn(async move {
            let chunk = &writes[start..(start + per_txn).min(writes.len())];
            let f = fence.as_ref().map(|(k, f)| (k.as_str(), f));
            let r = conn
                .retried("write", || {
                    let (mut c, leases) = (conn.client(), leases.clone());
                    async move { write_chunk(&mut c, (&leases, now), f, chunk).await }
                })
                .await;
            (i, r)
        });
    }
    let mut done = vec![false; writes.len().div_ceil(per_txn)];
    let mut first_err = None;
    while let Some(j) = set.join_next().await {
        match j {
            Ok((i, Ok(()))) => done[i] = true,
            Ok((_, Err(e))) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("etcd write task: {e}"));
            }
        }
    }
    (done, first_err)
}

/// The error text of a fenced write refused: another member owns the address.
pub const NOT_OWNER: &str = "not the owner of this service address any more";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a write that ended; keeps what was not written (`done`: which
/// transactions of `per_txn` operations were) to be written again first.
fn settle(
    pending: &Mutex<BTreeMap<RecordKey, StoreOp>>,
    h: &StoreHealth,
    (ops, per_txn): (Vec<StoreOp>, usize),
    done: &[bool],
    err: Option<anyhow::Error>,
) -> Result<()> {
    let written: usize = (ops.chunks(per_txn).zip(done))
        .filter(|(_, d)| **d)
        .map(|(c, _)| c.len())
        .sum();
    h.batches.fetch_add(1, Ordering::Relaxed);
    h.ops.fetch_add(written as u64, Ordering::Relaxed);
    h.txns.fetch_add(
        done.iter().filter(|d| **d).count() as u64,
        Ordering::Relaxed,
    );
    let Some(e) = err else {
        h.pending.store(0, Ordering::Relaxed);
        return Ok(());
    };
    let mut pending = lock(pending);
    for (chunk, d) in ops.chunks(per_txn).zip(done) {
        if !d {
            for op in chunk {
                // A later batch's write of the same key (none can have
                // begun meanwhile: one write at a time) would win.
                pending
                    .entry(op.key().clone())
                    .or_insert_with(|| op.clone());
            }
        }
    }
    h.pending.store(pending.len() as u64, Ordering::Relaxed);
    if format!("{e:#}").contains(NOT_OWNER) {
        h.not_owner.store(true, Ordering::Relaxed);
    }
    h.failed(&e);
    Err(anyhow!("{e:#}"))
}

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
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let k = String::from_utf8_lossy(&k);
            let Some(key) = k.strip_prefix(&prefix).and_then(RecordKey::from_path) else {
                tracing::warn!(key = %k, "etcd store: unknown key skipped");
                continue;
            };
            match decode(&v) {
                Ok(r) => out.push((key, r)),
                Err(e) => tracing::warn!(key = %k, "etcd store: record skipped: {e}"),
            }
        }
        Ok(out)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<()> {
        match self.begin(batch) {
            Begun::Done(r) => r,
            Begun::Writing(w) => self.conn.block_on(w),
        }
    }

    /// The write goes out on the etcd runtime at once; the shell takes more
    /// input while etcd commits it (`agent::commit`).
    fn begin(&mut self, batch: &[StoreOp]) -> Begun {
        let ops = {
            let mut pending = lock(&self.pending);
            // What failed before goes first, unless this batch rewrites it.
            for op in batch {
                pending.remove(op.key());
            }
            let mut ops: Vec<StoreOp> = std::mem::take(&mut *pending).into_values().collect();
            ops.extend_from_slice(batch);
            last_per_key(ops)
        };
        if ops.is_empty() {
            return Begun::Done(Ok(()));
        }
        let writes: Vec<Write> = ops
            .iter()
            .map(|o| write_of(&self.conn.keys, self.addr, o))
            .collect();
        let (conn, buckets) = (self.conn.clone(), self.buckets.clone());
        let fence = (self.fence.clone()).map(|f| (self.conn.keys.owner(self.addr), f));
        let per_txn = self.conn.max_txn_ops.max(1);
        let task = self
            .conn
            .runtime()
            .spawn(write_all(conn, buckets, fence, writes, per_txn));
        let (pending, health) = (self.pending.clone(), self.health.clone());
        Begun::Writing(Box::pin(async move {
            let (done, err) = task
                .await
                .map_err(|e| anyhow!("etcd: the write was dropped ({e})"))?;
            settle(&pending, &health, (ops, per_txn), &done, err)
        }))
    }

    fn durable(&self) -> bool {
        true
    }
}
