//! pmipctl ↔ pmipd: one JSON request line over a Unix stream socket, one JSON
//! response line back, then the daemon closes. Plus the text formatting of the
//! show commands, after seed 004's `show ipv6 mobile pmipv6 mag binding`.
//!
//! The daemon fills the plain serde views ([`BindingView`], [`TunnelView`],
//! [`StatsView`]); nothing here knows the state machines.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::access::frame::{mac_dotted, parse_mac};
use crate::dataplane::TrafficCounters;

/// Longest request line the daemon reads.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The bindings, all or those the query names (Cisco `show ipv6 mobile
    /// pmipv6 lma binding [nai X]`), or only their counts.
    ShowBindings(BindingQuery),
    ShowTunnels,
    ShowStats,
    /// RADIUS servers, authorization, accounting and dynamic authorization counters.
    ShowAaa,
    /// `show stats` without the per-subscriber table, with bindings by
    /// state: what the metrics endpoint exports.
    ShowCounters,
    /// Operator-forced detach: deregister and clean up.
    ClearBinding {
        nai: String,
    },
    /// Anchor role: release every binding through one access gateway (a
    /// `[[peers]]` name or address), or those of one NAI realm there.
    ClearPeer {
        peer: String,
        #[serde(default)]
        realm: Option<String>,
    },
    /// Stop pmipd. Without `deregister` it is a SIGTERM: subscribers stay
    /// registered and the pinned fast path keeps forwarding for the next
    /// run. With it, every subscriber is deregistered (access) or revoked
    /// (anchor) first, then the programs and pins are removed.
    Shutdown {
        #[serde(default)]
        deregister: bool,
    },
    /// Re-read the configuration file and apply what can change live.
    Reload,
    /// Liveness: answered by the daemon's event loop after a round trip
    /// through the registrar (the systemd watchdog's probe).
    Ping,
    /// The anchor cluster (issue 17): members, owners, etcd health.
    ShowCluster,
}

/// Which bindings `show bindings` answers with. Nothing set: all of them,
/// in full (on a large gateway the summary or a filter is what one wants).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BindingQuery {
    /// The subscriber's NAI, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nai: Option<String>,
    /// The peer (MAG/PMA on an anchor, LMA/HA on an access gateway): a
    /// `[[peers]]` name or an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Counts only: by state and by peer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub summary: bool,
}

/// `show bindings --summary`: how many bindings, by state and by peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSummaryView {
    pub total: usize,
    /// ACTIVE, REGISTERING, ... → count.
    pub by_state: BTreeMap<String, usize>,
    /// "name (address)" or the address alone → count.
    pub by_peer: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Response {
    Bindings(Vec<BindingView>),
    BindingSummary(BindingSummaryView),
    Tunnels(Vec<TunnelView>),
    Stats(StatsView),
    Aaa(Box<AaaView>),
    Cluster(ClusterView),
    Cleared {
        nai: String,
        found: bool,
        /// Access side: an anchor's refusal of the subscriber held "until
        /// an administrative action is taken" (RFC 5213 §6.9.1.2) was
        /// forgotten.
        #[serde(default)]
        refusal: bool,
    },
    /// The bindings through `peer` (of `realm`) being released.
    ClearedPeer {
        peer: String,
        #[serde(default)]
        realm: Option<String>,
        bindings: usize,
    },
    /// pmipd is stopping; with `deregister`, after releasing `bindings`.
    ShuttingDown {
        deregister: bool,
        bindings: usize,
    },
    /// The configuration was re-read; `applied` names the keys that changed
    /// (empty: nothing did).
    Reloaded {
        applied: Vec<String>,
    },
    Pong,
    Error {
        message: String,
    },
}

/// One subscriber binding as `show bindings` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingView {
    /// PMIPv6 domain, if configured (Cisco `Domain: D1`).
    #[serde(default)]
    pub domain: Option<String>,
    pub nai: String,
    /// ACTIVE, REGISTERING, DEREGISTERING, ...
    pub state: String,
    /// Access interface (access side) or the peer's tunnel (anchor side).
    pub interface: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub home_v4: Option<Ipv4Addr>,
    /// Home network prefix, "2001:db8:f00d:1::/64".
    #[serde(default)]
    pub hnp: Option<String>,
    /// Access technology type (RFC 5213 §8.5).
    pub att: u8,
    /// Link-layer id: the subscriber MAC, "00:24:d7:8e:21:a4".
    pub llid: String,
    /// "LMA"/"HA" on the access side, "MAG"/"PMA" on the anchor side.
    pub peer_kind: String,
    pub peer_name: String,
    pub peer: IpAddr,
    /// Granted lifetime and what is left of it, seconds.
    pub lifetime_s: u32,
    pub lifetime_left_s: u32,
    /// GRE keys: upstream (access→anchor, assigned by the anchor) and downstream.
    pub gre_key_up: u32,
    pub gre_key_down: u32,
    pub sub_id: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelView {
    pub peer_name: String,
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    pub bindings: u32,
    /// UP/DOWN as the heartbeat sees it (RFC 5847), UNKNOWN before its
    /// first answer, or "-" with heartbeats off.
    pub state: String,
    /// The peer's Restart Counter from its heartbeats.
    #[serde(default)]
    pub restart_counter: Option<u32>,
}

/// Traffic counters (a deserializable copy of [`TrafficCounters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficView {
    pub up_packets: u64,
    pub up_bytes: u64,
    pub down_packets: u64,
    pub down_bytes: u64,
}
impl From<TrafficCounters> for TrafficView {
    fn from(c: TrafficCounters) -> Self {
        TrafficView {
            up_packets: c.up_packets,
            up_bytes: c.up_bytes,
            down_packets: c.down_packets,
            down_bytes: c.down_bytes,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStats {
    pub nai: String,
    pub sub_id: u32,
    pub traffic: TrafficView,
}

/// `show stats`: named counter groups, so each part of the daemon adds its own
/// (e.g. "signaling" → {"pbu_tx": 3, ...}, "dhcp", "detach", "fastpath").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    pub groups: BTreeMap<String, BTreeMap<String, u64>>,
    pub subscribers: Vec<SubscriberStats>,
}

impl StatsView {
    /// Adds a group from any serde struct of integer fields (e.g. `DhcpStats`).
    pub fn add_group<T: Serialize>(&mut self, name: &str, counters: &T) {
        let mut g = BTreeMap::new();
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(counters) {
            for (k, v) in m {
                if let Some(n) = v.as_u64() {
                    g.insert(k, n);
                }
            }
        }
        self.groups.insert(name.to_string(), g);
    }
}

/// `show aaa`: the RADIUS client's counters per server, the DAE listener's, and the
/// gateway's own (authorizations, fallbacks, sessions). No secret is ever part of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AaaView {
    /// False: no `[aaa]` section.
    pub configured: bool,
    pub role: String,
    pub client: Option<crate::aaa::AaaStats>,
    pub dae: Option<crate::aaa::dae::DaeStats>,
    pub gateway: BTreeMap<String, u64>,
}

// ---------------------------------------------------------------- text

fn llid(s: &str) -> String {
    parse_mac(s)
        .map(|m| mac_dotted(&m))
        .unwrap_or_else(|| s.to_string())
}

/// Seed 004 `show ipv6 mobile pmipv6 mag binding` layout.
/// `show bindings --summary`.
pub fn format_binding_summary(v: &BindingSummaryView) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Total number of bindings: {}", v.total);
    for (state, n) in &v.by_state {
        let _ = writeln!(o, "  {state}: {n}");
    }
    if !v.by_peer.is_empty() {
        let _ = writeln!(o, "By peer:");
        for (peer, n) in &v.by_peer {
            let _ = writeln!(o, "  {peer}: {n}");
        }
    }
    o
}

pub fn format_bindings(b: &[BindingView]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Total number of bindings: {}", b.len());
    for x in b {
        let _ = writeln!(o, "----------------------------------------");
        match &x.domain {
            Some(d) => {
                let _ = writeln!(o, "[Binding][MN]: Domain: {d}, Nai: {}", x.nai);
            }
            None => {
                let _ = writeln!(o, "[Binding][MN]: Nai: {}", x.nai);
            }
        }
        let _ = writeln!(o, "  [Binding][MN]: State: {}", x.state);
        match x.vlan {
            Some(v) => {
                let _ = writeln!(o, "  [Binding][MN]: Interface: {} (vlan {v})", x.interface);
            }
            None => {
                let _ = writeln!(o, "  [Binding][MN]: Interface: {}", x.interface);
            }
        }
        let hoa = x
            .home_v4
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "  [Binding][MN]: Hoa: {hoa}, att: {}, llid: {}",
            x.att,
            llid(&x.llid)
        );
        let _ = writeln!(
            o,
            "  [Binding][MN]: HNP: {}",
            x.hnp.as_deref().unwrap_or("0")
        );
        let k = &x.peer_kind;
        let _ = writeln!(
            o,
            "  [Binding][MN][{k}]: Id: {}, address: {}",
            x.peer_name, x.peer
        );
        let _ = writeln!(
            o,
            "  [Binding][MN][{k}]: lifetime: {}, remaining: {}",
            x.lifetime_s, x.lifetime_left_s
        );
        let _ = writeln!(
            o,
            "  [Binding][MN][GREKEY]: Upstream: {}, Downstream: {}",
            x.gre_key_up, x.gre_key_down
        );
    }
    o
}

pub(crate) fn format_tunnels(t: &[TunnelView]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Total number of tunnels: {}", t.len());
    let _ = writeln!(
        o,
        "{:<16} {:<40} {:<40} {:>8} {:<8} Restart",
        "Peer", "Local", "Remote", "Bindings", "State"
    );
    let ip = |a: &Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    for x in t {
        let _ = writeln!(
            o,
            "{:<16} {:<40} {:<40} {:>8} {:<8} {}",
            x.peer_name,
            ip(&x.local),
            ip(&x.remote),
            x.bindings,
            x.state,
            x.restart_counter.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    o
}

pub(crate) fn format_stats(s: &StatsView) -> String {
    let mut o = String::new();
    for (g, m) in &s.groups {
        let _ = writeln!(o, "{g}:");
        for (k, v) in m {
            let _ = writeln!(o, "  {k:<28} {v}");
        }
    }
    if !s.subscribers.is_empty() {
        let _ = writeln!(o, "subscribers:");
        let _ = writeln!(
            o,
            "  {:<32} {:>6} {:>12} {:>14} {:>12} {:>14}",
            "NAI", "id", "up pkts", "up bytes", "down pkts", "down bytes"
        );
        for x in &s.subscribers {
            let t = &x.traffic;
            let _ = writeln!(
                o,
                "  {:<32} {:>6} {:>12} {:>14} {:>12} {:>14}",
                x.nai, x.sub_id, t.up_packets, t.up_bytes, t.down_packets, t.down_bytes
            );
        }
    }
    o
}

/// `show aaa`.
pub fn format_aaa(a: &AaaView) -> String {
    let mut o = String::new();
    if !a.configured {
        let _ = writeln!(o, "AAA: not configured (no [aaa] section)");
        return o;
    }
    let _ = writeln!(o, "AAA (RADIUS), {} role", a.role);
    match &a.client {
        Some(c) => {
            let _ = writeln!(o, "{c}");
        }
        None => {
            let _ = writeln!(o, "RADIUS client: not running");
        }
    }
    if let Some(d) = &a.dae {
        let _ = writeln!(
            o,
            "dynamic authorization: disconnect {} coa {} ack {} nak {}; dropped: unknown clients {} malformed {} bad authenticators {} stale {}; duplicates {}",
            d.disconnect_requests,
            d.coa_requests,
            d.acks,
            d.naks,
            d.unknown_clients,
            d.malformed,
            d.bad_authenticators,
            d.stale,
            d.duplicates
        );
    }
    let _ = writeln!(o, "gateway:");
    for (k, v) in &a.gateway {
        let _ = writeln!(o, "  {k:<28} {v}");
    }
    o
}

/// `show stats --interval`: each counter with its rate per second since
/// `prev` (taken `secs` earlier); the first sample has no rates.
/// Occupancy groups (`fastpath_maps*`, `bindings`) are levels, not counters:
/// they show their change instead.
pub fn format_stats_rates(prev: Option<&StatsView>, cur: &StatsView, secs: Option<f64>) -> String {
    let mut o = String::new();
    for (g, m) in &cur.groups {
        let _ = writeln!(o, "{g}:");
        let level = g.starts_with("fastpath_maps") || g == "bindings";
        for (k, v) in m {
            let before = prev.and_then(|p| p.groups.get(g)?.get(k)).copied();
            match (before, secs) {
                (Some(b), Some(_)) if level && *v != b => {
                    let d = *v as i128 - b as i128;
                    let _ = writeln!(o, "  {k:<28} {v:>14}  ({d:+})");
                }
                (Some(b), Some(s)) if !level && s > 0.0 => {
                    let rate = v.saturating_sub(b) as f64 / s;
                    let _ = writeln!(o, "  {k:<28} {v:>14}  {rate:>12.1}/s");
                }
                _ => {
                    let _ = writeln!(o, "  {k:<28} {v:>14}");
                }
            }
        }
    }
    let _ = writeln!(o, "subscribers: {}", cur.subscribers.len());
    o
}

/// Text of a response, as pmipctl prints it without `--json`.
pub fn format_response(r: &Response) -> String {
    match r {
        Response::Bindings(b) => format_bindings(b),
        Response::BindingSummary(v) => format_binding_summary(v),
        Response::Tunnels(t) => format_tunnels(t),
        Response::Stats(s) => format_stats(s),
        Response::Aaa(a) => format_aaa(a),
        Response::Cluster(c) => format_cluster(c),
        Response::Cleared {
            nai,
            found,
            refusal,
        } => match (found, refusal) {
            (true, false) => format!("binding {nai} cleared\n"),
            (true, true) => {
                format!("binding {nai} cleared; the anchor's refusal of it forgotten\n")
            }
            (false, true) => format!("the anchor's refusal of {nai} forgotten\n"),
            (false, false) => format!("no binding for {nai}\n"),
        },
        Response::ClearedPeer {
            peer,
            realm,
            bindings,
        } => {
            let of = realm
                .as_ref()
                .map_or(String::new(), |r| format!(" of realm {r}"));
            format!("{bindings} binding(s){of} through {peer} released\n")
        }
        Response::ShuttingDown {
            deregister: true,
            bindings,
        } => format!(
            "pmipd: releasing {bindings} binding(s), then removing the fast path and its pins\n"
        ),
        Response::ShuttingDown { .. } => {
            "pmipd: stopping; bindings stay registered and the pinned fast path keeps forwarding\n"
                .into()
        }
        Response::Reloaded { applied } if applied.is_empty() => {
            "configuration re-read: nothing changed\n".into()
        }
        Response::Reloaded { applied } => {
            format!("configuration reloaded: {}\n", applied.join(", "))
        }
        Response::Pong => "pong\n".into(),
        Response::Error { message } => format!("error: {message}\n"),
    }
}

// ---------------------------------------------------------------- socket

mod socket;
pub use socket::{bind, bind_with, request, request_blocking, serve, ControlListener, Handler};

/// Default control socket path.
pub fn default_socket() -> PathBuf {
    PathBuf::from("/run/pmip/pmipd.sock")
}

mod cluster;
pub use cluster::{
    format_cluster, AddressView, ClusterView, EndpointView, MemberView, ServiceView,
};

#[cfg(test)]
mod tests;
