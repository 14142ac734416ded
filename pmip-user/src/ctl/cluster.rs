//! `pmipctl show cluster`: the members, which one serves which address,
//! bindings per address and member, the state of this member's lease and
//! stores, and the health of each etcd endpoint.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::agent::blocks::SpaceUse;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// This member, its lease (hex) and what the lease allows now.
    pub member: String,
    pub lease: String,
    pub standing: String,
    /// Until the lease ends, as far as this member knows (ms).
    pub lease_left_ms: Option<u64>,
    pub members: Vec<MemberView>,
    pub addresses: Vec<AddressView>,
    /// The service addresses this member serves, in detail.
    pub serving: Vec<ServiceView>,
    pub etcd: Vec<EndpointView>,
    /// Subscribers sent elsewhere by runtime assignment, and the targets' loads.
    pub assigned: u64,
    pub assign_targets: BTreeMap<IpAddr, u64>,
    /// Expiry-bucket leases this member holds for binding records.
    pub bucket_leases: usize,
    /// How binding records are laid out in etcd (`store.layout`).
    #[serde(default)]
    pub store_layout: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub name: String,
    pub addr: IpAddr,
    pub lease: String,
    /// Heard from (heartbeats); always true for this member.
    pub alive: bool,
    pub addresses: Vec<IpAddr>,
    /// Bindings on its addresses, as published.
    pub bindings: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressView {
    pub addr: IpAddr,
    /// The cluster address (runtime assignment) rather than a service address.
    pub cluster: bool,
    pub owner: Option<String>,
    pub bindings: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub addr: IpAddr,
    pub bindings: u64,
    /// Taken up from etcd when it started, how long the start took, since when.
    pub restored: u64,
    pub took_ms: u64,
    pub serving_s: u64,
    /// RFC 5847 restart counter of this address (unchanged by a takeover).
    pub restart_counter: u32,
    /// New bindings accepted now (false: etcd cannot persist them).
    pub admission: bool,
    pub store_batches: u64,
    pub store_ops: u64,
    /// etcd puts and deletes the operations took (`store.layout = "packed"`:
    /// one per pack, else one per operation).
    #[serde(default)]
    pub store_puts: u64,
    pub store_txns: u64,
    pub store_failures: u64,
    pub store_pending: u64,
    pub store_last_error: String,
    pub blocks: BTreeMap<String, SpaceUse>,
    /// Uplink GRE keys this address has in the fast path's maps.
    pub map_keys: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    pub endpoint: String,
    pub reachable: bool,
    /// The member knows a leader (false: the cluster lost its quorum here).
    pub has_leader: bool,
    pub is_leader: bool,
    pub version: String,
    pub db_size: i64,
    pub raft_term: u64,
    pub error: String,
}

/// The text of `show cluster`.
pub fn format_cluster(c: &ClusterView) -> String {
    let mut o = String::new();
    let left = c
        .lease_left_ms
        .map(|m| format!(", {:.1} s left", m as f64 / 1000.0))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "Member {} (lease {}: {}{left})",
        c.member, c.lease, c.standing
    );
    let _ = writeln!(o, "Members:");
    for m in &c.members {
        let addrs: Vec<String> = m.addresses.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            o,
            "  {:<12} {:<16} {:<5} bindings {:>7}  serves {}",
            m.name,
            m.addr.to_string(),
            if m.alive { "up" } else { "DEAD" },
            m.bindings,
            if addrs.is_empty() {
                "-".into()
            } else {
                addrs.join(", ")
            }
        );
    }
    let _ = writeln!(o, "Addresses:");
    for a in &c.addresses {
        let _ = writeln!(
            o,
            "  {:<16} {:<8} owner {:<12} bindings {}",
            a.addr.to_string(),
            if a.cluster { "cluster" } else { "service" },
            a.owner.as_deref().unwrap_or("(none)"),
            a.bindings
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    for s in &c.serving {
        let _ = writeln!(
            o,
            "Serving {}: {} bindings ({} restored in {} ms), restart counter {}, admission {}, store {} batches / {} writes in {} puts / {} failed / {} pending",
            s.addr, s.bindings, s.restored, s.took_ms, s.restart_counter,
            if s.admission { "open" } else { "CLOSED" },
            s.store_batches, s.store_ops, s.store_puts, s.store_failures, s.store_pending
        );
    }
    let _ = writeln!(
        o,
        "etcd (binding records {}, {} expiry-bucket leases):",
        if c.store_layout.is_empty() {
            "-"
        } else {
            &c.store_layout
        },
        c.bucket_leases
    );
    for e in &c.etcd {
        let state = if !e.reachable {
            format!("unreachable ({})", e.error)
        } else if !e.has_leader {
            "NO LEADER".into()
        } else if e.is_leader {
            "leader".into()
        } else {
            "follower".into()
        };
        let _ = writeln!(
            o,
            "  {:<28} {:<14} v{} term {} db {} KiB",
            e.endpoint,
            state,
            e.version,
            e.raft_term,
            e.db_size / 1024
        );
    }
    if c.assigned > 0 || !c.assign_targets.is_empty() {
        let _ = writeln!(o, "Runtime assignment: {} subscribers sent on", c.assigned);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show cluster` names the layout of the binding records and the
    /// bucket leases; a view from an older pmipd (no layout) reads "-".
    #[test]
    fn show_cluster_names_the_store_layout() {
        let mut v = ClusterView {
            member: "a1".into(),
            bucket_leases: 3,
            store_layout: "packed".into(),
            ..ClusterView::default()
        };
        let t = format_cluster(&v);
        assert!(
            t.contains("etcd (binding records packed, 3 expiry-bucket leases):"),
            "{t}"
        );
        let old: ClusterView = serde_json::from_str(
            &serde_json::to_string(&v)
                .unwrap()
                .replace(",\"store_layout\":\"packed\"", ""),
        )
        .unwrap();
        v.store_layout.clear();
        assert_eq!(old, v);
        assert!(format_cluster(&old).contains("etcd (binding records -,"));
    }
}
