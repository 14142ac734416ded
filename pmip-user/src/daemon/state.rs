//! The durable binding state at start (issue 11): the store opened, the
//! restart counter decided, the registrar's bindings restored from the
//! records, and the pinned maps reconciled with them.
//!
//! ```text
//!  store ─scan─► records ─Endpoint::restore─► bindings in memory, their timers armed
//!                                  │                └─ InstallAccess/Anchor (again: same values)
//!                                  └─ holds ─► FastPath::prune: map entries no binding holds go
//! ```
//! With the memory backend nothing is recovered; the registrar then only
//! reserves what the pinned maps still hold (`FastPath::held`), so that it
//! never gives one subscriber's key or address to another.
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};

use super::fastpath::SharedDp;
use crate::agent::Endpoint;
use crate::config::{Config, Role, StoreBackend};
use crate::dataplane::Held;
use crate::store::{self, EmbeddedStore, MemStore, Record, RecordKey, Store, StoreOp};

/// The store as opened at start.
pub(super) struct Opened {
    pub store: Box<dyn Store>,
    /// The binding records (the node record taken out).
    pub records: Vec<(RecordKey, Record)>,
    /// RFC 5847 §5.2: the same as the last run's when the store kept our
    /// state, a new one when it did not.
    pub restart_counter: u32,
    /// The store held no node record: the session state of the last run
    /// (if any) is lost, and the Restart Counter is new (RFC 5847 §3.2).
    pub state_lost: bool,
}

pub(super) fn open(cfg: &Config) -> Result<Opened> {
    let mut store: Box<dyn Store> = match cfg.store.backend {
        StoreBackend::Embedded => Box::new(EmbeddedStore::open(&cfg.store.path)?),
        StoreBackend::Memory => Box::new(MemStore::new()),
        // Anchors of a cluster run `cluster::Cluster`, one store per service address.
        StoreBackend::Etcd => anyhow::bail!("store.backend = \"etcd\" needs [cluster]"),
    };
    let mut records = store.scan().context("reading the store")?;
    let node = records.iter().find_map(|(k, r)| match (k, r) {
        (RecordKey::Node, Record::Node(n)) => Some(n.clone()),
        _ => None,
    });
    records.retain(|(k, _)| *k != RecordKey::Node);
    let (restart_counter, rec) = store::restart_counter(node.as_ref(), SystemTime::now());
    store
        .apply(&[StoreOp::Put(RecordKey::Node, Record::Node(rec))])
        .context("writing the store")?;
    tracing::info!(
        backend = ?cfg.store.backend,
        path = %cfg.store.path.display(),
        records = records.len(),
        restart_counter,
        state = if node.is_some() { "recovered" } else { "new" },
        "store opened"
    );
    Ok(Opened {
        store,
        records,
        restart_counter,
        state_lost: node.is_none(),
    })
}

/// What the registrar must reserve before its first registration: with a
/// durable store, nothing (the restored bindings hold their own, the rest
/// of the maps is pruned); without one, whatever the pinned maps hold.
pub(super) fn reservation(o: &Opened, held: &Held) -> Held {
    if o.store.durable() {
        Held::default()
    } else {
        held.clone()
    }
}

/// Restores `ep`'s bindings from the records and, with a durable store,
/// removes the map entries that no restored or static binding holds.
pub(super) fn recover<E: Endpoint>(
    cfg: &Config,
    dp: &SharedDp,
    ep: &mut E,
    opened: &mut Opened,
) -> Result<()> {
    let records = std::mem::take(&mut opened.records);
    let r = ep.restore(Instant::now(), records);
    if r.bindings + r.dropped > 0 {
        tracing::info!(
            restored = r.bindings,
            dropped = r.dropped,
            "bindings of the last run taken up from the store"
        );
    }
    if !opened.store.durable() {
        return Ok(());
    }
    let mut keep = r.holds;
    add_static_holds(cfg, &mut keep);
    let pruned = dp.with(|f| f.prune(&keep))??;
    if pruned.total() > 0 {
        tracing::info!(?pruned, "map entries without a binding removed");
    }
    Ok(())
}

/// The ids, keys and addresses of the configured static bindings
/// (installed by `fastpath::install_static_bindings`).
fn add_static_holds(cfg: &Config, keep: &mut Held) {
    for (i, b) in cfg.static_bindings.iter().enumerate() {
        keep.sub_ids
            .insert(cfg.fastpath.max_subscribers.saturating_sub(1 + i as u32));
        match cfg.role {
            Role::Access => keep.keys.insert(b.downlink_key),
            Role::Anchor => {
                keep.home_v4.insert(b.home_address);
                keep.keys.insert(b.uplink_key)
            }
        };
    }
}
