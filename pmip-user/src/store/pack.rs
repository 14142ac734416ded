//! Packed binding records (issue 17, `store.layout = "packed"`): the anchor
//! binding records one store batch writes whose expiries fall in the same
//! bucket, in ONE etcd value, instead of one key each. etcd's CPU goes per
//! transaction and per put, hardly per byte (BENCHMARKS.md "etcd's cost per
//! put, by transaction shape"), so a put that carries a pass's records
//! costs what one binding's did.
//!
//! ```text
//!  key   P/svc/<address>/pack/<bucket end, ms, 13 digits>/<member>/<seq, 20 digits>
//!  value 0xB3, then entries, each:
//!          kind (1: record, 2: tombstone)
//!          key  (u16 length, RecordKey::path)
//!          record (record only: u32 length, record::encode_compact)
//! ```
//! The packs of a service address form an append-only journal: a key is
//! written once (`seq` grows per writer, from the wall clock in µs at
//! start) under the lease of its bucket, and vanishes with it. A refresh
//! writes the binding again in a newer pack; a deletion writes a tombstone
//! into a pack whose bucket ends no earlier than the newest copy it cancels
//! (`etcd::EtcdStore` tracks the bucket per binding).
//!
//! A scan ([`resolve`]) keeps per binding the newest entry: the one of the
//! latest etcd revision (each pack is written once, so its revision is its
//! commit: a global order, whichever member wrote it), and within a pack
//! the latest entry; a per-binding key (`P/svc/<address>/lma/<id>`, the
//! per-binding layout's) takes part with its own revision, so a store
//! written in either layout, or both, restores. A tombstone removes.
//!
//! Every length is checked before it is read: a truncated, oversized or
//! corrupt pack is refused with a reason, never a panic.
use std::collections::{BTreeMap, HashMap, HashSet};

use super::etcd::buckets::bucket_end;
use super::record::{decode, encode_compact};
use super::{Record, RecordKey};

/// First byte of a pack.
pub const TAG: u8 = 0xB3;
const PUT: u8 = 1;
const TOMBSTONE: u8 = 2;
/// The segment of a pack's key after the service's prefix.
pub const SEGMENT: &str = "pack/";
/// A pack's bytes at most (a larger bucket group is cut into several):
/// a page of a scan ([`SCAN_PAGE`] packs) stays far below gRPC's 4 MiB.
pub const MAX_BYTES: usize = 32 * 1024;
/// Packs read per request when scanning.
pub const SCAN_PAGE: i64 = 64;
/// A record in a pack at most (a record is ~80 bytes compact; JSON ones
/// with long fields are larger, none is near this).
const MAX_RECORD: usize = 16 * 1024;

/// One entry of a pack.
// Entries live one parse long: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Put(RecordKey, Record),
    Tombstone(RecordKey),
}

impl Entry {
    pub fn key(&self) -> &RecordKey {
        match self {
            Entry::Put(k, _) | Entry::Tombstone(k) => k,
        }
    }
}

/// The encoded form of one entry; None when it does not fit a pack (a key
/// or a record too long: the store writes such a record under its own key).
pub fn entry_bytes(e: &Entry) -> Option<Vec<u8>> {
    let key = e.key().path();
    let mut out = Vec::with_capacity(key.len() + 100);
    out.push(match e {
        Entry::Put(..) => PUT,
        Entry::Tombstone(_) => TOMBSTONE,
    });
    out.extend_from_slice(&u16::try_from(key.len()).ok()?.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    if let Entry::Put(_, r) = e {
        let b = encode_compact(r);
        if b.len() > MAX_RECORD {
            return None;
        }
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(&b);
    }
    Some(out)
}

/// Packs of encoded entries, each at most [`MAX_BYTES`] (one entry more
/// than that makes a pack of its own); the entries' indices in each.
pub fn pack(entries: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<usize>)> {
    let mut out: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match out.last_mut() {
            Some((b, ix)) if b.len() + e.len() <= MAX_BYTES => {
                b.extend_from_slice(e);
                ix.push(i);
            }
            _ => {
                let mut b = Vec::with_capacity(MAX_BYTES.min(1 + e.len() * entries.len()));
                b.push(TAG);
                b.extend_from_slice(e);
                out.push((b, vec![i]));
            }
        }
    }
    out
}

/// The entries of a pack, in order.
pub fn parse(b: &[u8]) -> Result<Vec<Entry>, String> {
    let Some((&tag, rest)) = b.split_first() else {
        return Err("pack: empty".into());
    };
    if tag != TAG {
        return Err(format!("pack: tag {tag:#04x}, not {TAG:#04x}"));
    }
    let mut r = Reader(rest);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let at = out.len();
        let kind = r.take(1, at, "kind")?[0];
        if kind != PUT && kind != TOMBSTONE {
            return Err(format!("pack: entry {at} of unknown kind {kind}"));
        }
        let k = r.take(2, at, "key length")?;
        let n = u16::from_be_bytes([k[0], k[1]]);
        let path = std::str::from_utf8(r.take(n.into(), at, "key")?)
            .map_err(|e| format!("pack: entry {at}: key not UTF-8: {e}"))?;
        let key = RecordKey::from_path(path)
            .ok_or_else(|| format!("pack: entry {at}: unknown key {path:?}"))?;
        if kind == TOMBSTONE {
            out.push(Entry::Tombstone(key));
            continue;
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(r.take(4, at, "record length")?);
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_RECORD {
            return Err(format!("pack: entry {at}: record of {n} bytes"));
        }
        let rec = decode(r.take(n, at, "record")?)
            .map_err(|e| format!("pack: entry {at} ({path}): {e}"))?;
        out.push(Entry::Put(key, rec));
    }
    Ok(out)
}

/// The unread rest of a pack.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, entry: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "pack: truncated in entry {entry} ({what}: {n} bytes wanted, {} left)",
                self.0.len()
            ));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
}

/// The bucket end in a pack's key (the part after `SEGMENT`).
pub fn bucket_of(rest: &str) -> Option<u64> {
    rest.split('/').next()?.parse().ok()
}

/// What a scan found: the live records, and per binding the latest bucket
/// end any of its copies sits in (where a tombstone must go to outlive them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub records: Vec<(RecordKey, Record)>,
    pub buckets: HashMap<RecordKey, u64>,
    /// The live bindings with a copy in a pack.
    pub in_packs: HashSet<RecordKey>,
    /// Keys and packs that did not decode (each counted once).
    pub skipped: usize,
}

/// Resolves the keys of a service address (`path` after its prefix, value,
/// etcd mod revision): per key the newest entry wins, tombstones remove.
pub fn resolve<'a>(kvs: impl IntoIterator<Item = (&'a str, &'a [u8], i64)>) -> Resolved {
    // key → ((revision, index in the pack), the record or a tombstone)
    let mut newest: BTreeMap<RecordKey, ((i64, usize), Option<Record>)> = BTreeMap::new();
    let mut buckets: HashMap<RecordKey, u64> = HashMap::new();
    let mut in_packs: HashSet<RecordKey> = HashSet::new();
    let mut skipped = 0usize;
    let mut offer = |k: RecordKey, at: (i64, usize), r: Option<Record>| match newest.get(&k) {
        Some((seen, _)) if *seen >= at => {}
        _ => {
            newest.insert(k, (at, r));
        }
    };
    for (path, v, rev) in kvs {
        if let Some(rest) = path.strip_prefix(SEGMENT) {
            let (Some(bucket), Ok(entries)) = (bucket_of(rest), parse(v)) else {
                tracing::warn!(key = %path, "etcd store: pack skipped");
                skipped += 1;
                continue;
            };
            for (i, e) in entries.into_iter().enumerate() {
                match e {
                    Entry::Put(k, r) => {
                        let b = buckets.entry(k.clone()).or_default();
                        *b = (*b).max(bucket);
                        in_packs.insert(k.clone());
                        offer(k, (rev, i), Some(r));
                    }
                    Entry::Tombstone(k) => offer(k, (rev, i), None),
                }
            }
            continue;
        }
        let Some(key) = RecordKey::from_path(path) else {
            tracing::warn!(key = %path, "etcd store: unknown key skipped");
            skipped += 1;
            continue;
        };
        match decode(v) {
            Ok(r) => {
                if let Record::Anchor(a) = &r {
                    let b = buckets.entry(key.clone()).or_default();
                    *b = (*b).max(bucket_end(a.expires_ms));
                }
                offer(key, (rev, 0), Some(r));
            }
            Err(e) => {
                tracing::warn!(key = %path, "etcd store: record skipped: {e}");
                skipped += 1;
            }
        }
    }
    let mut records = Vec::with_capacity(newest.len());
    for (k, (_, r)) in newest {
        match r {
            Some(r) => records.push((k, r)),
            None => {
                buckets.remove(&k);
                in_packs.remove(&k);
            }
        }
    }
    Resolved {
        records,
        buckets,
        in_packs,
        skipped,
    }
}

#[cfg(test)]
mod tests;
