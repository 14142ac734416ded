//! One scrape: the daemon's counters (what `pmipctl show counters` shows,
//! built by daemon/control.rs from the registrar's report and the fast
//! path) and the signaling tally, written as metric families with
//! prometheus-client, in the OpenMetrics or the Prometheus text format.
//!
//! | family | labels | from |
//! |---|---|---|
//! | `pmip_build_info` | version, ebpf_build_id, role, protocol | the binary |
//! | `pmip_signaling_messages_total` | direction, type, status, peer | the metered transport |
//! | `pmip_signaling_retransmissions_total`, `_timeouts_total` | role | the registrar's counters |
//! | `pmip_registrar_events_total` | role, event | every registrar counter |
//! | `pmip_registrar_socket_events_total` | event | the shell's socket counters |
//! | `pmip_bindings` | role, state | the registrar's bindings |
//! | `pmip_peer_up`, `pmip_peer_last_heard_seconds` | peer | the metered transport |
//! | `pmip_dhcp_events_total`, `pmip_arp_events_total` | interface, event | the access links |
//! | `pmip_fastpath_packets_total` | verdict | the fast path's per-CPU counters |
//! | `pmip_fastpath_map_entries`, `_map_capacity` | map | the fast path's maps |
//! | `pmip_component_events_total` | component, event | any other counter group (AAA, ESP…) |
//!
//! Per-subscriber traffic is not exported (one series per subscriber would
//! be unbounded): it stays in `pmipctl show stats` and accounting.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::signaling::MessageKey;
use crate::ctl::StatsView;

/// The registrar counters that count retransmissions and give-ups, by role.
pub(crate) const RETRANSMISSIONS: &[(&str, &str)] = &[
    ("mag", "pbu_retransmitted"),
    ("lma", "bri_retransmitted"),
    ("pma", "retransmissions"),
    ("ha", "revocation_retransmissions"),
];
pub(crate) const TIMEOUTS: &[(&str, &str)] = &[
    ("mag", "registration_timeouts"),
    ("lma", "bri_gave_up"),
    ("pma", "registration_timeouts"),
    ("ha", "revocation_timeouts"),
];

/// The binding states every scrape reports (0 when none).
const STATES: [&str; 3] = ["active", "registering", "deregistering"];

/// Everything one scrape exports.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub version: String,
    pub ebpf_build_id: String,
    /// "mag", "lma", "pma", "ha".
    pub role: &'static str,
    pub protocol: &'static str,
    pub stats: StatsView,
    pub messages: BTreeMap<MessageKey, u64>,
    /// Configured peers, and how long ago each was last heard (None: never).
    pub peers: Vec<(String, Option<Duration>)>,
    /// Heard within this: up (heartbeat interval × misses); None: heartbeats off.
    pub peer_window: Option<Duration>,
    pub taken: Instant,
}

type Labels = Vec<(&'static str, String)>;

/// One family: its samples (labels, value).
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, M)>,
    ty: MetricType,
) -> Result<(), std::fmt::Error> {
    let mut e = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, m) in samples {
        m.encode(e.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let s = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(enc, name, help, s, MetricType::Counter)
}

/// Gauges of seconds (fractional).
fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let s = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(enc, name, help, s, MetricType::Gauge)
}

/// Gauges of counts (entries, bindings, up/down).
fn levels(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let s = samples
        .into_iter()
        .map(|(l, v)| (l, ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))));
    family(enc, name, help, s, MetricType::Gauge)
}

fn labels<const N: usize>(l: [(&'static str, &str); N]) -> Labels {
    l.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

impl Snapshot {
    fn group(&self, name: &str) -> impl Iterator<Item = (&String, &u64)> {
        self.stats.groups.get(name).into_iter().flatten()
    }

    fn named(&self, table: &[(&str, &str)]) -> u64 {
        table
            .iter()
            .filter(|(r, _)| *r == self.role)
            .filter_map(|(_, c)| self.stats.groups.get(self.role)?.get(*c))
            .sum()
    }

    fn signaling(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counters(
            enc,
            "pmip_signaling_messages",
            "Signaling messages sent (tx) and received (rx), by type, status and peer.",
            self.messages.iter().map(|(k, v)| {
                let l = labels([
                    ("direction", k.direction.as_str()),
                    ("type", k.kind),
                    ("status", &k.status),
                    ("peer", &k.peer),
                ]);
                (l, *v)
            }),
        )?;
        let role = || labels([("role", self.role)]);
        counters(
            enc,
            "pmip_signaling_retransmissions",
            "Signaling messages sent again for want of an answer.",
            [(role(), self.named(RETRANSMISSIONS))],
        )?;
        counters(
            enc,
            "pmip_signaling_timeouts",
            "Exchanges given up after the last retransmission.",
            [(role(), self.named(TIMEOUTS))],
        )?;
        counters(
            enc,
            "pmip_registrar_events",
            "The registrar's counters, by event (accepted, refused and why, expiries...).",
            self.group(self.role)
                .map(|(k, v)| (labels([("role", self.role), ("event", k)]), *v)),
        )?;
        counters(
            enc,
            "pmip_registrar_socket_events",
            "Datagrams and errors on the registrar's signaling sockets.",
            self.group(&format!("{} socket", self.role))
                .map(|(k, v)| (labels([("event", k)]), *v)),
        )
    }

    fn bindings_and_peers(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let by_state = self.stats.groups.get("bindings");
        levels(
            enc,
            "pmip_bindings",
            "Bindings the registrar holds, by state.",
            STATES.iter().map(|s| {
                let n = by_state.and_then(|g| g.get(*s)).copied().unwrap_or(0);
                (labels([("role", self.role), ("state", s)]), n)
            }),
        )?;
        let heard: Vec<_> = self
            .peers
            .iter()
            .filter_map(|(p, d)| d.map(|d| (labels([("peer", p)]), d.as_secs_f64())))
            .collect();
        gauges(
            enc,
            "pmip_peer_last_heard_seconds",
            "Seconds since the last signaling message from the peer.",
            heard,
        )?;
        if let Some(window) = self.peer_window {
            levels(
                enc,
                "pmip_peer_up",
                "1 if the peer was heard within the heartbeat interval times the misses allowed.",
                self.peers.iter().map(|(p, d)| {
                    let up = d.is_some_and(|d| d <= window);
                    (labels([("peer", p)]), u64::from(up))
                }),
            )?;
        }
        Ok(())
    }

    /// The access links' groups ("dhcp acc0", "arp acc0").
    fn links(&self, enc: &mut DescriptorEncoder, kind: &str) -> Result<(), std::fmt::Error> {
        let prefix = format!("{kind} ");
        let samples: Vec<_> = self
            .stats
            .groups
            .iter()
            .filter_map(|(g, c)| Some((g.strip_prefix(&prefix)?, c)))
            .flat_map(|(iface, c)| {
                c.iter()
                    .map(move |(k, v)| (labels([("interface", iface), ("event", k)]), *v))
            })
            .collect();
        let help = match kind {
            "dhcp" => "DHCP messages on the access links, by event.",
            _ => "ARP detach monitoring on the access links: probes, replies, detaches.",
        };
        counters(enc, &format!("pmip_{kind}_events"), help, samples)
    }

    fn fastpath(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counters(
            enc,
            "pmip_fastpath_packets",
            "Packets by the fast path's verdict or drop reason, summed over CPUs.",
            self.group("fastpath")
                .map(|(k, v)| (labels([("verdict", k)]), *v)),
        )?;
        levels(
            enc,
            "pmip_fastpath_map_entries",
            "Entries in the fast path's subscriber maps.",
            self.group("fastpath_maps")
                .map(|(k, v)| (labels([("map", k)]), *v)),
        )?;
        levels(
            enc,
            "pmip_fastpath_map_capacity",
            "Entries the fast path's subscriber maps can hold.",
            self.group("fastpath_maps_capacity")
                .map(|(k, v)| (labels([("map", k)]), *v)),
        )
    }

    /// Counter groups nobody above claims (AAA, ESP… as they are wired).
    fn others(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let known = |g: &str| {
            g == self.role
                || g == format!("{} socket", self.role)
                || g.starts_with("dhcp ")
                || g.starts_with("arp ")
                || matches!(
                    g,
                    "bindings" | "fastpath" | "fastpath_maps" | "fastpath_maps_capacity"
                )
        };
        let samples: Vec<_> = self
            .stats
            .groups
            .iter()
            .filter(|(g, _)| !known(g))
            .flat_map(|(g, c)| {
                c.iter()
                    .map(move |(k, v)| (labels([("component", g), ("event", k)]), *v))
            })
            .collect();
        counters(
            enc,
            "pmip_component_events",
            "Counters of the other parts of the daemon, by component and event.",
            samples,
        )
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        levels(
            &mut enc,
            "pmip_build_info",
            "The running pmipd: version, eBPF object build id, role and protocol.",
            [(
                labels([
                    ("version", &self.version),
                    ("ebpf_build_id", &self.ebpf_build_id),
                    ("role", self.role),
                    ("protocol", self.protocol),
                ]),
                1,
            )],
        )?;
        self.signaling(&mut enc)?;
        self.bindings_and_peers(&mut enc)?;
        self.links(&mut enc, "dhcp")?;
        self.links(&mut enc, "arp")?;
        self.fastpath(&mut enc)?;
        self.others(&mut enc)?;
        gauges(
            &mut enc,
            "pmip_scrape_duration_seconds",
            "Time taken to gather this scrape.",
            [(Labels::new(), self.taken.elapsed().as_secs_f64())],
        )
    }
}

/// The text formats a scrape can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`promtool check metrics`, curl).
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The scrape's text.
pub(crate) fn render(s: Snapshot, format: Format) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(s));
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg)?,
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)?;
            // Some scrapers want the last line ended.
            if !out.ends_with('\n') {
                let _ = writeln!(out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
