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
//! - With `store.layout = "packed"` the anchor binding records of a batch
//!   go into one key per expiry bucket (`store::pack`), a deletion into a
//!   tombstone there; a scan reads both layouts.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::pack::{self, Entry};
use super::record::encode;
use super::{wall_ms, Begun, Record, RecordKey, Store, StoreOp};
use crate::agent::blocks::Blocks;
use crate::config::StoreLayout;
use inflight::{InFlight, Started};

pub mod buckets;
pub mod conn;
mod inflight;

pub use buckets::Buckets;
pub use conn::{EtcdConn, EtcdRuntime, Keyspace};

/// Records read per request when scanning (a reply stays far below gRPC's
/// 4 MiB message limit; packs are read `pack::SCAN_PAGE` at a time).
const SCAN_PAGE: i64 = 1000;
/// The longest a binding can live (PMIPv6: 65 535 × 4 s): where a tombstone
/// goes for a binding whose copies this store has not seen.
const MAX_LIFETIME_MS: u64 = 65_535 * 4 * 1000;

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
    /// Operations written (records and deletions).
    pub ops: AtomicU64,
    /// etcd operations they took (packed layout: one per pack).
    pub puts: AtomicU64,
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
    /// Packed layout: per binding, the latest bucket end a copy of it was
    /// written to (or found in by a scan): a tombstone goes there.
    packed_at: HashMap<RecordKey, u64>,
    /// The sequence number of this store's next pack (starts at the wall
    /// clock in µs, so a later store of the same member never reuses one).
    pack_seq: u64,
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
            packed_at: HashMap::new(),
            pack_seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
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

/// Whether the packed layout files `op` in a pack: an anchor's binding
/// record (LMA, HA) or its deletion; the node record stays a key of its own.
fn packable(op: &StoreOp) -> bool {
    matches!(
        op,
        StoreOp::Put(RecordKey::Binding(_) | RecordKey::Nai(_), Record::Anchor(_))
            | StoreOp::Delete(RecordKey::Binding(_) | RecordKey::Nai(_))
    )
}

/// Binding operations by bucket end, with their pack entries.
type Groups = std::collections::BTreeMap<u64, Vec<(StoreOp, Vec<u8>)>>;

/// A batch as etcd takes it: its operations (reordered: those of each
/// write together, in write order), the writes, and how many operations
/// each write carries.
struct Plan {
    ops: Vec<StoreOp>,
    writes: Vec<Write>,
    carried: Vec<usize>,
}

impl Plan {
    /// Operations carried by the first `writes` writes.
    fn ops_in(&self, writes: usize) -> usize {
        self.carried[..writes.min(self.carried.len())].iter().sum()
    }
}

impl EtcdStore {
    /// One write per operation (the per-binding layout); a deletion of a
    /// binding that also has copies in packs (the store was packed before)
    /// adds a tombstone, or the older pack copy would come back at a scan.
    fn plan_per_binding(&mut self, ops: Vec<StoreOp>) -> Plan {
        let mut plan = Plan {
            ops: Vec::with_capacity(ops.len()),
            writes: Vec::with_capacity(ops.len()),
            carried: Vec::with_capacity(ops.len()),
        };
        let mut groups: Groups = Default::default();
        for op in ops {
            plan.writes.push(write_of(&self.conn.keys, self.addr, &op));
            let tomb = match &op {
                StoreOp::Delete(k) => self
                    .packed_at
                    .remove(k)
                    .and_then(|b| pack::entry_bytes(&Entry::Tombstone(k.clone())).map(|e| (b, e))),
                _ => None,
            };
            match tomb {
                Some((b, e)) => {
                    // Carried by its tombstone's pack (after this write).
                    plan.carried.push(0);
                    groups.entry(b).or_default().push((op, e));
                }
                None => {
                    plan.carried.push(1);
                    plan.ops.push(op);
                }
            }
        }
        self.write_packs(&mut plan, groups);
        plan
    }

    /// The packs of `groups` (bucket → operations and their entries), one
    /// write each, after the plan's other writes.
    fn write_packs(&mut self, plan: &mut Plan, groups: Groups) {
        let member = self.fence.as_ref().map_or("-", |f| f.member.as_str());
        for (bucket, group) in groups {
            let (ops, entries): (Vec<StoreOp>, Vec<Vec<u8>>) = group.into_iter().unzip();
            let mut ops: Vec<Option<StoreOp>> = ops.into_iter().map(Some).collect();
            for (value, ix) in pack::pack(&entries) {
                let seq = self.pack_seq;
                self.pack_seq += 1;
                plan.writes.push(Write::Put {
                    key: self.conn.keys.pack(self.addr, bucket, member, seq),
                    value,
                    expires_ms: Some(bucket),
                });
                plan.carried.push(ix.len());
                plan.ops.extend(ix.iter().filter_map(|&i| ops[i].take()));
            }
        }
    }

    /// The packed layout: binding records and tombstones grouped by bucket,
    /// one pack per bucket (more if one would exceed `pack::MAX_BYTES`);
    /// everything else a write of its own, first.
    fn plan_packed(&mut self, ops: Vec<StoreOp>, now_ms: u64) -> Plan {
        let mut plan = Plan {
            ops: Vec::with_capacity(ops.len()),
            writes: Vec::new(),
            carried: Vec::new(),
        };
        let mut groups: Groups = Default::default();
        for op in ops {
            let entry = match (&op, packable(&op)) {
                (StoreOp::Put(k, Record::Anchor(a)), true) => {
                    let b = buckets::bucket_end(a.expires_ms.max(now_ms));
                    pack::entry_bytes(&Entry::Put(k.clone(), Record::Anchor(a.clone())))
                        .map(|e| (b, e))
                }
                (StoreOp::Delete(k), true) => {
                    let b = self.packed_at.get(k).copied().unwrap_or_else(|| {
                        buckets::bucket_end(now_ms.saturating_add(MAX_LIFETIME_MS))
                    });
                    pack::entry_bytes(&Entry::Tombstone(k.clone())).map(|e| (b, e))
                }
                _ => None,
            };
            let Some((b, e)) = entry else {
                // Not a binding (or too long for a pack): a key of its own.
                plan.writes.push(write_of(&self.conn.keys, self.addr, &op));
                plan.carried.push(1);
                plan.ops.push(op);
                continue;
            };
            match &op {
                StoreOp::Put(k, _) => {
                    let at = self.packed_at.entry(k.clone()).or_default();
                    *at = (*at).max(b);
                }
                StoreOp::Delete(k) => {
                    self.packed_at.remove(k);
                }
            }
            groups.entry(b).or_default().push((op, e));
        }
        self.write_packs(&mut plan, groups);
        plan
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
    (written, writes): (usize, usize),
    err: Option<anyhow::Error>,
    per_txn: usize,
) -> Result<()> {
    h.batches.fetch_add(1, Ordering::Relaxed);
    h.ops.fetch_add(written as u64, Ordering::Relaxed);
    h.puts.fetch_add(writes as u64, Ordering::Relaxed);
    h.txns
        .fetch_add(writes.div_ceil(per_txn) as u64, Ordering::Relaxed);
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
    /// Every key of the address, in either layout (`pack::resolve`: per
    /// binding the newest copy, tombstones remove), read at one revision.
    fn scan(&mut self) -> Result<Vec<(RecordKey, Record)>> {
        let conn = self.conn.clone();
        let prefix = self.conn.keys.service(self.addr);
        let packs = format!("{prefix}{}", pack::SEGMENT);
        // The per-binding keys before the packs and after them (none sort
        // after `pack/` today), and the packs, fewer at a time.
        let ranges = [
            (
                prefix.clone().into_bytes(),
                packs.clone().into_bytes(),
                SCAN_PAGE,
            ),
            (
                packs.clone().into_bytes(),
                conn::prefix_end(&packs),
                pack::SCAN_PAGE,
            ),
            (
                conn::prefix_end(&packs),
                conn::prefix_end(&prefix),
                SCAN_PAGE,
            ),
        ];
        let raw = self.conn.block_on(async move {
            let client = conn.client();
            let mut out = Vec::new();
            let mut at_rev = 0i64;
            for (mut from, end, page) in ranges {
                loop {
                    let r = conn
                        .retried("scan", || {
                            let (mut c, from) = (client.clone(), from.clone());
                            let opts = GetOptions::new()
                                .with_range(end.clone())
                                .with_limit(page)
                                .with_revision(at_rev);
                            async move { Ok(c.get(from, Some(opts)).await?) }
                        })
                        .await?;
                    if at_rev == 0 {
                        at_rev = r.header().map_or(0, |h| h.revision());
                    }
                    for kv in r.kvs() {
                        out.push((kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()));
                    }
                    match (r.more(), r.kvs().last()) {
                        (true, Some(last)) => {
                            from = last.key().to_vec();
                            from.push(0);
                        }
                        _ => break,
                    }
                }
            }
            anyhow::Ok(out)
        })?;
        let prefix = self.conn.keys.service(self.addr);
        let mut foreign = 0usize;
        let keyed: Vec<(String, &[u8], i64)> = raw
            .iter()
            .filter_map(|(k, v, rev)| {
                let k = String::from_utf8_lossy(k);
                match k.strip_prefix(&prefix) {
                    Some(path) => Some((path.to_string(), v.as_slice(), *rev)),
                    None => {
                        tracing::warn!(key = %k, "etcd store: unknown key skipped");
                        foreign += 1;
                        None
                    }
                }
            })
            .collect();
        let resolved = pack::resolve(keyed.iter().map(|(k, v, r)| (k.as_str(), *v, *r)));
        let skipped = resolved.skipped + foreign;
        if skipped > 0 {
            tracing::warn!(
                address = %self.addr,
                "etcd store: {skipped} record(s) or pack(s) skipped, {} read",
                resolved.records.len()
            );
        }
        // Where each binding's copies sit: a deletion's tombstone goes there
        // (~50 bytes per binding; the per-binding layout keeps only those
        // with a copy in a pack).
        let mut tracked = resolved.buckets;
        if self.conn.layout == StoreLayout::PerBinding {
            tracked.retain(|k, _| resolved.in_packs.contains(k));
        }
        for (k, b) in tracked {
            let at = self.packed_at.entry(k).or_default();
            *at = (*at).max(b);
        }
        Ok(resolved.records)
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
        let mut started = started;
        let ops = std::mem::take(&mut started.ops);
        let plan = match self.conn.layout {
            StoreLayout::PerBinding => self.plan_per_binding(ops),
            StoreLayout::Packed => self.plan_packed(ops, wall_ms(std::time::SystemTime::now())),
        };
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
                after,
                finished,
                ..
            } = started;
            inflight::wait_for(after).await;
            let (writes, err) = w.write_all(&plan.writes).await;
            let written = plan.ops_in(writes);
            let r = settle(
                &flight,
                &health,
                (seq, plan.ops),
                (written, writes),
                err,
                w.per_txn(),
            );
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
