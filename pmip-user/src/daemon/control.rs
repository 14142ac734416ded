//! The control socket as the daemon answers it: `pmipctl` requests reach
//! the role's runner over a channel and are answered from the registrar's
//! own report (fresh, no snapshot) and the fast path's counters.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};

use super::fastpath::SharedDp;
use crate::agent::registrar::{in_realm, BindingSummary, Counters, PeerSummary};
use crate::agent::shell::Report;
use crate::config::{Config, Protocol, Role};
use crate::ctl::{self, BindingView, Request, Response, StatsView, SubscriberStats, TunnelView};
use crate::dataplane::DataPlane;

/// A `pmipctl` request and where its answer goes.
pub(super) type CtlRequest = (Request, oneshot::Sender<Response>);

/// Binds `control.socket` and serves it; requests arrive on the returned
/// channel (`reload` too: the runner hands new keys to its registrar,
/// [`super::reload::Reloader::serve`]). The handler is returned too: the
/// watchdog and the metrics endpoint ask through it.
pub(super) fn serve(cfg: &Config) -> Result<(mpsc::Receiver<CtlRequest>, ctl::Handler)> {
    let listener = ctl::bind_with(&cfg.control.socket, cfg.control.group)
        .with_context(|| format!("control.socket {}", cfg.control.socket.display()))?;
    let (tx, rx) = mpsc::channel::<CtlRequest>(64);
    let handler: ctl::Handler = Arc::new(move |req| {
        let tx = tx.clone();
        Box::pin(async move {
            let (rtx, rrx) = oneshot::channel();
            if tx.send((req, rtx)).await.is_err() {
                return Response::Error {
                    message: "pmipd is shutting down".into(),
                };
            }
            rrx.await.unwrap_or(Response::Error {
                message: "pmipd did not answer".into(),
            })
        })
    });
    let h = handler.clone();
    tokio::spawn(async move {
        if let Err(e) = ctl::serve(listener, h).await {
            tracing::warn!("control socket: {e:#}");
        }
    });
    Ok((rx, handler))
}

pub(super) fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn secs(d: Duration) -> u32 {
    d.as_secs().min(u32::MAX as u64) as u32
}

/// The name of a role's protocol counters in `show stats` (and of its peers).
pub(super) fn role_name(cfg: &Config) -> &'static str {
    match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => "mag",
        (Role::Access, Protocol::Pmipv4) => "pma",
        (Role::Anchor, Protocol::Pmipv6) => "lma",
        (Role::Anchor, Protocol::Pmipv4) => "ha",
    }
}

/// What a show request needs besides the registrar's report.
pub(super) struct ShowCtx<'a> {
    pub cfg: &'a Config,
    pub dp: &'a SharedDp,
    /// The interface a binding is on (access side: its access link).
    pub interface: &'a dyn Fn(&BindingSummary) -> String,
    /// More counter groups (the access links' DHCP servers).
    pub groups: Vec<(String, Counters)>,
}

/// What an access gateway answers `clear bindings --peer`.
pub(super) const NOT_ON_ACCESS: &str =
    "clear bindings --peer is an anchor's (LMA, HA) command; an \
     access gateway releases its subscribers with clear binding NAI or shutdown --deregister";

/// `clear bindings --peer P [--realm R]` on an anchor: the access gateway's
/// address (P names a `[[peers]]` entry or is an address) and how many of
/// the report's bindings are through it (and of R); or why the request is
/// refused. (An access gateway refuses it whole: [`NOT_ON_ACCESS`].)
pub(super) fn peer_release(
    cfg: &Config,
    report: &Report,
    (peer, realm): (&str, Option<&str>),
) -> Result<(IpAddr, usize), String> {
    let Some(addr) = cfg
        .peer(peer)
        .map(|p| p.address)
        .or_else(|| peer.parse().ok())
    else {
        return Err(format!(
            "no peer {peer:?}: name a [[peers]] entry or give an address"
        ));
    };
    let of_realm = |nai: &str| realm.is_none_or(|r| in_realm(nai.as_bytes(), r.as_bytes()));
    let n = report
        .bindings
        .iter()
        .filter(|b| b.peer == addr && of_realm(&b.nai))
        .count();
    Ok((addr, n))
}

/// `show bindings | tunnels | stats | counters` (and `ping`) from a registrar's report.
pub(super) fn show(ctx: &ShowCtx, req: &Request, report: &Report) -> Response {
    match req {
        Request::Ping => return Response::Pong,
        Request::ShowCounters => return Response::Stats(counters(ctx, report)),
        _ => {}
    }
    let views: Vec<BindingView> = report
        .bindings
        .iter()
        .map(|b| binding_view(ctx, b))
        .collect();
    match req {
        Request::ShowBindings(q) => bindings(ctx.cfg, q, views),
        Request::ShowTunnels => {
            let local = views
                .first()
                .and_then(|v| super::local_for(ctx.cfg, v.peer));
            let hb_on = ctx.cfg.timers.heartbeat_interval.is_some();
            Response::Tunnels(tunnels_of(
                ctx.cfg,
                &views,
                local,
                hb_on.then_some(&report.peers),
            ))
        }
        _ => Response::Stats(stats(ctx, report, &views)),
    }
}

/// `show bindings` with its query: the views it names, or their counts.
fn bindings(cfg: &Config, q: &ctl::BindingQuery, views: Vec<BindingView>) -> Response {
    let peer = match q.peer.as_deref() {
        None => None,
        Some(p) => match cfg.peer(p).map(|x| x.address).or_else(|| p.parse().ok()) {
            Some(a) => Some(a),
            None => {
                return Response::Error {
                    message: format!("no peer {p:?}: name a [[peers]] entry or give an address"),
                }
            }
        },
    };
    let views: Vec<BindingView> = views
        .into_iter()
        .filter(|v| q.nai.as_ref().is_none_or(|n| *n == v.nai))
        .filter(|v| peer.is_none_or(|p| p == v.peer))
        .collect();
    if !q.summary {
        return Response::Bindings(views);
    }
    let mut s = ctl::BindingSummaryView {
        total: views.len(),
        ..Default::default()
    };
    for v in &views {
        *s.by_state.entry(v.state.clone()).or_default() += 1;
        let peer = if v.peer_name.is_empty() {
            v.peer.to_string()
        } else {
            format!("{} ({})", v.peer_name, v.peer)
        };
        *s.by_peer.entry(peer).or_default() += 1;
    }
    Response::BindingSummary(s)
}

fn binding_view(ctx: &ShowCtx, b: &BindingSummary) -> BindingView {
    let cfg = ctx.cfg;
    let peer_name = cfg
        .peers
        .iter()
        .find(|p| p.address == b.peer)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let llid = match <[u8; 6]>::try_from(b.llid.as_slice()) {
        Ok(m) => mac_str(&m),
        Err(_) => String::from_utf8_lossy(&b.llid).into_owned(),
    };
    let peer_kind = match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => "LMA",
        (Role::Access, Protocol::Pmipv4) => "HA",
        (Role::Anchor, Protocol::Pmipv6) => "MAG",
        (Role::Anchor, Protocol::Pmipv4) => "PMA",
    };
    let lifetime_s = secs(b.lifetime);
    BindingView {
        domain: cfg.node_id.clone(),
        nai: b.nai.clone(),
        state: b.state.as_str().into(),
        interface: (ctx.interface)(b),
        // The link's configured VLAN (a sub-interface's frames carry no tag).
        vlan: b
            .at
            .and_then(|a| (a.vlan != 0).then_some(a.vlan))
            .or_else(|| {
                let name = (ctx.interface)(b);
                cfg.interfaces.access.iter().find(|i| i.name == name)?.vlan
            }),
        home_v4: b.home_v4.map(|h| h.0),
        hnp: b.hnp.map(|h| format!("{}/{}", h.prefix, h.len)),
        att: 4,
        llid,
        peer_kind: peer_kind.into(),
        peer_name,
        peer: b.peer,
        lifetime_s,
        lifetime_left_s: b.left.map(secs).unwrap_or(0),
        gre_key_up: b.uplink_key,
        gre_key_down: b.downlink_key,
        sub_id: b.sub_id,
    }
}

/// One tunnel per peer with bindings; with heartbeats on, every peer the
/// heartbeat knows too, with its state and Restart Counter (RFC 5847).
fn tunnels_of(
    cfg: &Config,
    bindings: &[BindingView],
    local: Option<IpAddr>,
    peers: Option<&Vec<PeerSummary>>,
) -> Vec<TunnelView> {
    let mut t: BTreeMap<(String, IpAddr), TunnelView> = BTreeMap::new();
    fn tunnel<'a>(
        t: &'a mut BTreeMap<(String, IpAddr), TunnelView>,
        cfg: &Config,
        local: Option<IpAddr>,
        peer: IpAddr,
    ) -> &'a mut TunnelView {
        let name = cfg
            .peers
            .iter()
            .find(|p| p.address == peer)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        t.entry((name.clone(), peer)).or_insert_with(|| TunnelView {
            peer_name: name,
            local: local.or_else(|| super::local_for(cfg, peer)),
            remote: Some(peer),
            bindings: 0,
            state: "-".into(),
            restart_counter: None,
        })
    }
    for b in bindings {
        tunnel(&mut t, cfg, local, b.peer).bindings += 1;
    }
    for p in peers.into_iter().flatten() {
        let e = tunnel(&mut t, cfg, local, p.peer);
        e.state = match p.reachable {
            Some(true) => "UP",
            Some(false) => "DOWN",
            None => "UNKNOWN",
        }
        .into();
        e.restart_counter = p.restart_counter;
    }
    t.into_values().collect()
}

/// `show stats` without the per-subscriber table (nothing read per
/// subscriber), plus the bindings by state: what the metrics endpoint exports.
fn counters(ctx: &ShowCtx, report: &Report) -> StatsView {
    let mut st = StatsView::default();
    groups(ctx, report, &mut st);
    let _ = ctx.dp.with(|fp| {
        if let Ok(m) = fp.map_capacity() {
            let g = m
                .into_iter()
                .map(|(n, v)| (n.to_lowercase(), v as u64))
                .collect();
            st.groups.insert("fastpath_maps_capacity".into(), g);
        }
    });
    let mut by_state = BTreeMap::new();
    for b in &report.bindings {
        *by_state
            .entry(b.state.as_str().to_lowercase())
            .or_insert(0u64) += 1;
    }
    st.groups.insert("bindings".into(), by_state);
    st
}

fn stats(ctx: &ShowCtx, report: &Report, views: &[BindingView]) -> StatsView {
    let mut st = StatsView::default();
    groups(ctx, report, &mut st);
    let _ = ctx.dp.with(|fp| {
        st.subscribers = views
            .iter()
            .map(|b| SubscriberStats {
                nai: b.nai.clone(),
                sub_id: b.sub_id,
                traffic: fp.subscriber_counters(b.sub_id).into(),
            })
            .collect();
    });
    st
}

/// The counter groups of `show stats`: the registrar's, its socket's, the
/// access links', the fast path's verdicts and map occupancy.
fn groups(ctx: &ShowCtx, report: &Report, st: &mut StatsView) {
    let role = role_name(ctx.cfg);
    st.groups.insert(role.into(), report.counters.clone());
    st.groups
        .insert(format!("{role} socket"), report.shell.clone());
    if !report.transport.is_empty() {
        st.groups
            .insert(format!("{role} transport"), report.transport.clone());
    }
    for (g, c) in &ctx.groups {
        st.groups.insert(g.clone(), c.clone());
    }
    let _ = ctx.dp.with(|fp| {
        if let Ok(c) = fp.counters() {
            let g = c.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            st.groups.insert("fastpath".into(), g);
        }
        if let Ok(m) = fp.map_entries() {
            let g = m
                .into_iter()
                .map(|(n, v)| (n.to_lowercase(), v as u64))
                .collect();
            st.groups.insert("fastpath_maps".into(), g);
        }
    });
}
