//! A local copy of everything under an etcd prefix, kept current by a
//! watch: read once, then every change in order; after any error (a member
//! down, the connection lost) read again and watch from there. Consumers
//! get whole snapshots over a `watch` channel and know whether the copy is
//! in sync with etcd right now.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use crate::store::etcd::EtcdConn;

/// One key's value and the lease it lives under (0: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub value: Vec<u8>,
    pub lease: i64,
}

/// The prefix as last seen: keys without the prefix.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub entries: Arc<BTreeMap<String, Entry>>,
    /// False while the watch is broken: the entries may be stale.
    pub synced: bool,
}

/// Starts mirroring `prefix` on the etcd runtime.
pub(crate) fn spawn(conn: &EtcdConn, prefix: String) -> watch::Receiver<Snapshot> {
    let (tx, rx) = watch::channel(Snapshot::default());
    let c = conn.clone();
    conn.runtime().spawn(async move {
        loop {
            if let Err(e) = follow(&c, &prefix, &tx).await {
                tracing::debug!(%prefix, "watch: {e:#}");
            }
            if tx.is_closed() {
                return;
            }
            tx.send_modify(|s| s.synced = false);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    rx
}

/// Reads `prefix`, publishes it, then applies its changes until an error.
async fn follow(conn: &EtcdConn, prefix: &str, tx: &watch::Sender<Snapshot>) -> Result<()> {
    let mut c = conn.client();
    let r = conn
        .timed("read", c.get(prefix, Some(GetOptions::new().with_prefix())))
        .await?;
    let rev = r.header().map(|h| h.revision()).unwrap_or(0);
    let mut map = BTreeMap::new();
    for kv in r.kvs() {
        if let Some(k) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) {
            map.insert(
                k.to_string(),
                Entry {
                    value: kv.value().to_vec(),
                    lease: kv.lease(),
                },
            );
        }
    }
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(rev + 1);
    let mut stream = conn.timed("watch", c.watch(prefix, Some(opts))).await?;
    tx.send_replace(Snapshot {
        entries: Arc::new(map.clone()),
        synced: true,
    });
    loop {
        if tx.is_closed() {
            return Ok(());
        }
        let msg = stream
            .message()
            .await?
            .ok_or_else(|| anyhow!("watch closed"))?;
        if msg.canceled() {
            return Err(anyhow!("watch canceled: {}", msg.cancel_reason()));
        }
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let Some(k) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) else {
                continue;
            };
            match ev.event_type() {
                EventType::Put => {
                    map.insert(
                        k.to_string(),
                        Entry {
                            value: kv.value().to_vec(),
                            lease: kv.lease(),
                        },
                    );
                }
                EventType::Delete => {
                    map.remove(k);
                }
            }
        }
        tx.send_replace(Snapshot {
            entries: Arc::new(map.clone()),
            synced: true,
        });
    }
}
