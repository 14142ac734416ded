//! `[cluster]`: the anchors sharing an etcd store (issue 17).
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use super::Errors;
use crate::config::file::File;
use crate::config::{ClusterSettings, Protocol, StoreBackend};

pub(super) fn check(f: &File, v: &mut Errors) -> Option<ClusterSettings> {
    let etcd = f.store.backend == StoreBackend::Etcd;
    let Some(c) = &f.cluster else {
        if etcd {
            v.err(
                "cluster",
                "missing: store.backend = \"etcd\" needs the cluster's service addresses",
            );
        }
        return None;
    };
    if !etcd {
        v.err("cluster", "needs store.backend = \"etcd\"");
        return None;
    }
    let member = c.member.clone().or_else(|| f.node_id.clone());
    match &member {
        None => v.err("cluster.member", "missing (and no node_id to default to)"),
        Some(m) if !valid_member(m) => v.err(
            "cluster.member",
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
        ),
        Some(_) => {}
    }
    addresses(f, v);
    if c.heartbeat_port == 0 {
        v.err("cluster.heartbeat_port", "must not be 0");
    }
    if !(10..=10_000).contains(&c.heartbeat_interval_ms) {
        v.err("cluster.heartbeat_interval_ms", "must be 10 to 10000");
    }
    if !(2..=100).contains(&c.heartbeat_misses) {
        v.err("cluster.heartbeat_misses", "must be 2 to 100");
    }
    if !c.block_size.is_power_of_two() || c.block_size > 65_536 {
        v.err("cluster.block_size", "must be a power of two up to 65536");
    }
    if c.takeover_fence_ms > 10_000 {
        v.err("cluster.takeover_fence_ms", "must be at most 10000");
    }
    let esp = esp(f, v);
    Some(ClusterSettings {
        member: member.unwrap_or_default(),
        service_addresses: c.service_addresses.clone(),
        cluster_address: c.cluster_address,
        heartbeat_port: c.heartbeat_port,
        heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms.into()),
        heartbeat_misses: c.heartbeat_misses,
        block_size: c.block_size,
        takeover_fence: Duration::from_millis(c.takeover_fence_ms.into()),
        esp,
    })
}

/// `[[cluster.esp]]`: each names a service address and a peer, once; the
/// SAs are checked as `peers[].esp` are, and inbound SPIs are unique per
/// service address (a service address's SAs are found by SPI).
fn esp(f: &File, v: &mut Errors) -> Vec<(IpAddr, IpAddr, crate::esp::EspSettings)> {
    let Some(c) = &f.cluster else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, e) in c.esp.iter().enumerate() {
        let p = format!("cluster.esp[{i}]");
        if f.protocol != Protocol::Pmipv6 {
            v.err(&p, "ESP protects PMIPv6 signaling only");
            continue;
        }
        if !c.service_addresses.contains(&e.service) && c.cluster_address != Some(e.service) {
            v.err(format!("{p}.service"), "not one of the cluster's addresses");
        }
        let Some(peer) = f.peers.iter().find(|x| x.name == e.peer) else {
            v.err(format!("{p}.peer"), "no peers[] of that name");
            continue;
        };
        if !seen.insert((e.service, e.peer.clone())) {
            v.err(&p, "a second entry for this service address and peer");
        }
        match e.sa.check(&format!("{p}.sa")) {
            Ok(s) => out.push((e.service, peer.address, s)),
            Err(errs) => v.0.extend(errs),
        }
    }
    for s in c.service_addresses.iter().chain(&c.cluster_address) {
        let entries: Vec<(String, &crate::esp::EspConfig)> = c
            .esp
            .iter()
            .enumerate()
            .filter(|(_, e)| e.service == *s)
            .map(|(i, e)| (format!("cluster.esp[{i}].sa"), &e.sa))
            .collect();
        v.0.extend(crate::esp::check_unique_spi_in(&entries));
    }
    out
}

/// Service and cluster addresses: unicast, distinct, of a family this
/// anchor signals in, and not its own address (which never moves).
fn addresses(f: &File, v: &mut Errors) {
    let Some(c) = &f.cluster else { return };
    if c.service_addresses.is_empty() {
        v.err("cluster.service_addresses", "needs at least one address");
    }
    let mut seen = HashSet::new();
    let all = c
        .service_addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("cluster.service_addresses[{i}]"), *a))
        .chain(
            c.cluster_address
                .map(|a| ("cluster.cluster_address".into(), a)),
        );
    for (path, a) in all {
        let own = match a {
            IpAddr::V4(x) => f.addresses.ipv4 == Some(x),
            IpAddr::V6(x) => f.addresses.ipv6 == Some(x),
        };
        let family = match a {
            IpAddr::V4(_) => f.addresses.ipv4.is_some(),
            IpAddr::V6(_) => f.addresses.ipv6.is_some() && f.protocol == Protocol::Pmipv6,
        };
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            v.err(&path, "must be a unicast address");
        } else if own {
            v.err(
                &path,
                "must differ from addresses.* (the member's own address, used between members)",
            );
        } else if !family {
            v.err(
                &path,
                "needs an address of its family in addresses.* (and PMIPv4 signals over IPv4 only)",
            );
        } else if !seen.insert(a) {
            v.err(&path, "listed twice");
        }
    }
}

fn valid_member(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 64
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
