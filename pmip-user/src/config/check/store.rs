//! `[store]`: where the binding state survives a restart.
use std::time::Duration;

use super::Errors;
use crate::config::file::File;
use crate::config::{EtcdSettings, Role, StoreBackend, StoreLayout, StoreSettings};

pub(super) fn check(f: &File, v: &mut Errors) -> StoreSettings {
    let s = &f.store;
    if s.backend == StoreBackend::Embedded {
        if !s.path.is_absolute() {
            v.err("store.path", "must be an absolute file path");
        } else if s.path.file_name().is_none() || s.path.to_string_lossy().ends_with('/') {
            v.err("store.path", "must name a file, not a directory");
        }
    }
    StoreSettings {
        backend: s.backend,
        path: s.path.clone(),
        etcd: etcd(f, v),
    }
}

/// The etcd keys (checked only with backend "etcd").
fn etcd(f: &File, v: &mut Errors) -> EtcdSettings {
    let s = &f.store;
    if s.backend == StoreBackend::Etcd {
        if f.role != Role::Anchor {
            v.err(
                "store.backend",
                "\"etcd\" is for a cluster of anchors (role = \"anchor\")",
            );
        }
        if s.endpoints.is_empty() {
            v.err("store.endpoints", "needs at least one etcd client URL");
        }
        for (i, e) in s.endpoints.iter().enumerate() {
            if !valid_endpoint(e) {
                v.err(
                    format!("store.endpoints[{i}]"),
                    "must be http://HOST:PORT (an etcd client URL; TLS is not supported)",
                );
            }
        }
        if !s.prefix.starts_with('/') || s.prefix.ends_with('/') || s.prefix.contains("//") {
            v.err(
                "store.prefix",
                "must start with '/' and not end with one (\"/pmip/east\")",
            );
        }
        if !(1..=60).contains(&s.lease_ttl_s) {
            v.err("store.lease_ttl_s", "must be 1 to 60 seconds");
        }
        if !(50..=60_000).contains(&s.timeout_ms) {
            v.err("store.timeout_ms", "must be 50 to 60000");
        }
        if !(8..=100_000).contains(&s.max_txn_ops) {
            v.err("store.max_txn_ops", "must be 8 to 100000");
        }
        if !(1..=8).contains(&s.writes_in_flight) {
            v.err("store.writes_in_flight", "must be 1 to 8");
        }
        if !(16..=8192).contains(&s.batch_max) {
            v.err("store.batch_max", "must be 16 to 8192");
        }
    }
    let layout = match s.layout.as_str() {
        "per-binding" => StoreLayout::PerBinding,
        "packed" => StoreLayout::Packed,
        other => {
            v.err(
                "store.layout",
                format!("must be \"per-binding\" or \"packed\", not {other:?}"),
            );
            StoreLayout::default()
        }
    };
    EtcdSettings {
        endpoints: s.endpoints.clone(),
        prefix: s.prefix.clone(),
        lease_ttl: Duration::from_secs(s.lease_ttl_s.into()),
        timeout: Duration::from_millis(s.timeout_ms.into()),
        max_txn_ops: s.max_txn_ops,
        writes_in_flight: s.writes_in_flight.clamp(1, 8) as usize,
        batch_max: s.batch_max.clamp(16, 8192) as usize,
        layout,
    }
}

fn valid_endpoint(e: &str) -> bool {
    let Some(rest) = e.strip_prefix("http://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}
