//! `pmipctl show cluster`, from the control loop's state and a fresh probe
//! of every etcd endpoint.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinSet;

use super::control::Loop;
use super::member::Standing;
use crate::agent::blocks::Space;
use crate::ctl::{AddressView, ClusterView, EndpointView, MemberView, ServiceView};

/// One endpoint's own view (Status is answered by the member itself, with
/// or without a leader).
async fn probe(endpoint: String) -> EndpointView {
    let mut v = EndpointView {
        endpoint: endpoint.clone(),
        ..EndpointView::default()
    };
    let t = Duration::from_millis(500);
    let opts = ConnectOptions::new()
        .with_connect_timeout(t)
        .with_timeout(t);
    let r = tokio::time::timeout(t * 2, async {
        let mut c = Client::connect([endpoint.as_str()], Some(opts)).await?;
        c.status().await
    })
    .await;
    match r {
        Ok(Ok(s)) => {
            let me = s.header().map(|h| h.member_id()).unwrap_or(0);
            v.reachable = true;
            v.has_leader = s.leader() != 0;
            v.is_leader = s.leader() != 0 && s.leader() == me;
            v.version = s.version().to_string();
            v.db_size = s.db_size();
            v.raft_term = s.raft_term();
        }
        Ok(Err(e)) => v.error = e.to_string(),
        Err(_) => v.error = "no answer".into(),
    }
    v
}

async fn probe_all(endpoints: &[String]) -> Vec<EndpointView> {
    let mut set = JoinSet::new();
    for (i, e) in endpoints.iter().enumerate() {
        let e = e.clone();
        set.spawn(async move { (i, probe(e).await) });
    }
    let mut out: Vec<(usize, EndpointView)> = Vec::new();
    while let Some(Ok(r)) = set.join_next().await {
        out.push(r);
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}

fn loads(l: &Loop) -> BTreeMap<String, u64> {
    l.loads
        .borrow()
        .entries
        .iter()
        .filter_map(|(k, e)| {
            let v: serde_json::Value = serde_json::from_slice(&e.value).ok()?;
            Some((k.clone(), v["bindings"].as_u64()?))
        })
        .collect()
}

fn services(l: &Loop) -> Vec<ServiceView> {
    l.services
        .values()
        .map(|s| {
            let h = &s.health;
            ServiceView {
                addr: s.addr,
                bindings: s.tracked.count() as u64,
                restored: s.restored as u64,
                took_ms: s.took.as_millis() as u64,
                serving_s: s.since.elapsed().as_secs(),
                restart_counter: s.restart_counter,
                admission: s.blocks.is_open(),
                store_batches: h.batches.load(Ordering::Relaxed),
                store_ops: h.ops.load(Ordering::Relaxed),
                store_puts: h.puts.load(Ordering::Relaxed),
                store_txns: h.txns.load(Ordering::Relaxed),
                store_failures: h.failures.load(Ordering::Relaxed),
                store_pending: h.pending.load(Ordering::Relaxed),
                store_last_error: h.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
                blocks: Space::ALL
                    .iter()
                    .filter(|sp| s.blocks.layout(**sp).is_some())
                    .map(|sp| (sp.name().to_string(), s.blocks.usage(*sp)))
                    .collect(),
                map_keys: s.tracked.keys(),
            }
        })
        .collect()
}

pub(super) async fn view(l: &Loop) -> ClusterView {
    let v = l.view();
    let loads = loads(l);
    let st = *l.stand.borrow();
    let cl = l.ctx.cluster();
    let members = v
        .members
        .values()
        .map(|m| {
            let addrs = v.owned_by(&m.name);
            MemberView {
                name: m.name.clone(),
                addr: m.addr,
                lease: format!("{:x}", m.lease),
                alive: m.name == l.me.name || !l.dead.contains(&m.name),
                bindings: addrs.iter().filter_map(|a| loads.get(&a.to_string())).sum(),
                addresses: addrs,
            }
        })
        .collect();
    let addresses = cl
        .service_addresses
        .iter()
        .map(|a| (*a, false))
        .chain(cl.cluster_address.map(|a| (a, true)))
        .map(|(addr, cluster)| AddressView {
            addr,
            cluster,
            owner: v.owners.get(&addr).map(|o| o.member.clone()),
            bindings: loads.get(&addr.to_string()).copied(),
        })
        .collect();
    let left = match st {
        Standing::Valid { until, .. } | Standing::Stalled { until, .. } => {
            Some(until.saturating_duration_since(Instant::now()).as_millis() as u64)
        }
        Standing::Lost { .. } => None,
    };
    ClusterView {
        member: l.me.name.clone(),
        lease: format!("{:x}", st.lease()),
        standing: st.name().into(),
        lease_left_ms: left,
        members,
        addresses,
        serving: services(l),
        etcd: probe_all(&l.ctx.cfg.store.etcd.endpoints).await,
        assigned: l.ctx.assigner.picks(),
        assign_targets: l.ctx.assigner.targets().into_iter().collect(),
        bucket_leases: l.ctx.buckets.len(),
        store_layout: l.ctx.cfg.store.etcd.layout.name().into(),
    }
}
