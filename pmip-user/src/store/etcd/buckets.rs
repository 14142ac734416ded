//! Binding expiry in etcd: each binding record is put under a lease that
//! ends no earlier than the binding, so records nobody deletes (every anchor
//! died) vanish on their own. Bindings whose expiry falls in the same window
//! share one lease, a bucket: a million bindings need as many leases as
//! there are windows in the longest lifetime (40 000 s / 60 s ≈ 700), not a
//! million.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use etcd_client::Client;

/// Width of a bucket: a record may outlive its binding by up to this.
pub const BUCKET_MS: u64 = 60_000;
/// Extra life of a bucket's lease past the bucket's end.
const SLACK_MS: u64 = 5_000;

/// The expiry buckets of this daemon: bucket end (ms since the epoch) → lease.
#[derive(Clone, Debug, Default)]
pub struct Buckets(Arc<Mutex<BTreeMap<u64, i64>>>);

/// The end of the bucket a binding expiring at `expires_ms` belongs to.
pub fn bucket_end(expires_ms: u64) -> u64 {
    expires_ms.div_ceil(BUCKET_MS).saturating_mul(BUCKET_MS)
}

/// The TTL (s) of a bucket's lease granted at `now_ms`: to its end plus slack.
pub fn bucket_ttl_s(end_ms: u64, now_ms: u64) -> i64 {
    let ms = end_ms.saturating_sub(now_ms) + SLACK_MS;
    i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

impl Buckets {
    fn cached(&self, end: u64, now_ms: u64) -> Option<i64> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Buckets whose leases have run out are of no use any more.
        let live = g.split_off(&now_ms.saturating_sub(SLACK_MS));
        *g = live;
        g.get(&end).copied()
    }

    /// The lease for a binding expiring at `expires_ms`, granted if needed.
    pub async fn lease(&self, client: &mut Client, expires_ms: u64, now_ms: u64) -> Result<i64> {
        let end = bucket_end(expires_ms.max(now_ms));
        if let Some(l) = self.cached(end, now_ms) {
            return Ok(l);
        }
        let ttl = bucket_ttl_s(end, now_ms);
        let id = client.lease_grant(ttl, None).await?.id();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(end)
            .or_insert(id);
        Ok(id)
    }

    /// Leases held (for `show cluster` and the tests).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_ends_at_or_after_the_binding() {
        for e in [1u64, 59_999, 60_000, 60_001, 1_700_000_123_456] {
            let end = bucket_end(e);
            assert!(end >= e && end - e < BUCKET_MS, "{e} → {end}");
            assert_eq!(end % BUCKET_MS, 0);
        }
        // One lease per window: every expiry inside a window shares it.
        assert_eq!(bucket_end(60_001), bucket_end(119_999));
    }

    #[test]
    fn a_lease_outlives_its_bucket() {
        let now = 1_000_000;
        let end = bucket_end(now + 3_600_000);
        let ttl = bucket_ttl_s(end, now);
        assert!((ttl as u64) * 1000 >= end - now + SLACK_MS);
        assert!(bucket_ttl_s(now, now) >= 5, "never a zero TTL");
    }

    #[test]
    fn dead_buckets_are_forgotten() {
        let b = Buckets::default();
        b.0.lock().unwrap().insert(60_000, 1);
        b.0.lock().unwrap().insert(600_000, 2);
        assert_eq!(b.cached(600_000, 100_000), Some(2));
        assert_eq!(b.len(), 1, "the bucket that ended at 60 s is gone");
    }
}
