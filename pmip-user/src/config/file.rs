//! The configuration file as TOML spells it: what serde reads, nothing else.
//!
//! Strings that stand for addresses, prefixes, MACs and keys stay strings
//! here: a bad one is reported by the check with its key path
//! (`pools[0].prefix: ...`), all of them at once, instead of as the first
//! syntax error. Only `check` reads these structs; everything past it sees
//! the typed [`Config`](super::Config).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;
use super::{Algorithm, Family, Protocol, Role, StoreBackend};
use crate::fastpath::AttachMode;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub role: Role,
    pub protocol: Protocol,
    /// Name of this gateway in show output (Cisco `pmipv6-mag M1`).
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub control: Control,
    pub interfaces: Interfaces,
    pub addresses: Addresses,
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub timers: Timers,
    #[serde(default)]
    pub detach: Detach,
    #[serde(default)]
    pub dhcp: Dhcp,
    /// Address pools (anchor role; StarOS `ip pool`, `ipv6 pool`).
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub static_bindings: Vec<StaticBinding>,
    /// How the eBPF fast path is attached.
    #[serde(default)]
    pub fastpath: Fastpath,
    /// Where the binding state survives a restart.
    #[serde(default)]
    pub store: Store,
    /// The anchor cluster (with `store.backend = "etcd"`).
    #[serde(default)]
    pub cluster: Option<Cluster>,
}

/// `[store]`: the durable binding state.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Store {
    /// "embedded" (a redb file at `path`), "memory" (nothing survives) or
    /// "etcd" (shared by a cluster of anchors).
    pub backend: StoreBackend,
    pub path: PathBuf,
    /// etcd: client URLs, key prefix, member lease TTL, request timeout,
    /// operations per transaction.
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub lease_ttl_s: u32,
    pub timeout_ms: u32,
    pub max_txn_ops: u32,
}
impl Default for Store {
    fn default() -> Self {
        Store {
            backend: StoreBackend::Embedded,
            path: defaults::store_path(),
            endpoints: Vec::new(),
            prefix: defaults::etcd_prefix(),
            lease_ttl_s: defaults::ETCD_LEASE_TTL_S,
            timeout_ms: defaults::ETCD_TIMEOUT_MS,
            max_txn_ops: defaults::ETCD_MAX_TXN_OPS,
        }
    }
}

/// `[cluster]`: the anchors sharing the etcd store.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Cluster {
    pub member: Option<String>,
    pub service_addresses: Vec<IpAddr>,
    pub cluster_address: Option<IpAddr>,
    pub heartbeat_port: u16,
    pub heartbeat_interval_ms: u32,
    pub heartbeat_misses: u32,
    pub block_size: u32,
    pub takeover_fence_ms: u32,
}
impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            member: None,
            service_addresses: Vec::new(),
            cluster_address: None,
            heartbeat_port: defaults::CLUSTER_HEARTBEAT_PORT,
            heartbeat_interval_ms: defaults::CLUSTER_HEARTBEAT_INTERVAL_MS,
            heartbeat_misses: defaults::CLUSTER_HEARTBEAT_MISSES,
            block_size: defaults::CLUSTER_BLOCK_SIZE,
            takeover_fence_ms: defaults::CLUSTER_TAKEOVER_FENCE_MS,
        }
    }
}

/// `[fastpath]`: attach mode and pinning of the eBPF data plane.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Fastpath {
    /// native (driver) XDP, generic (skb) XDP, tc (TC ingress), or auto:
    /// native, else generic, else tc.
    pub attach_mode: AttachMode,
    /// bpffs directory for pinned maps and links: with it the fast path keeps
    /// forwarding while pmipd restarts.
    pub pin_dir: Option<PathBuf>,
    /// Size of the subscriber maps.
    pub max_subscribers: u32,
}
impl Default for Fastpath {
    fn default() -> Self {
        defaults::FASTPATH
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Control {
    /// Unix socket that `pmipctl` talks to.
    #[serde(default = "defaults::control_socket")]
    pub socket: PathBuf,
}
impl Default for Control {
    fn default() -> Self {
        Control {
            socket: defaults::control_socket(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Interfaces {
    /// Subscriber-facing links (access role).
    #[serde(default)]
    pub access: Vec<AccessInterface>,
    /// Towards the peers; carries signaling and the GRE tunnels.
    pub core: String,
    /// Anchor role: interfaces towards correspondents.
    #[serde(default)]
    pub correspondent: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct AccessInterface {
    pub name: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    /// "192.0.2.254/24": the gateway's address and prefix on the link.
    pub gateway: String,
    #[serde(default = "defaults::access_mtu")]
    pub mtu: u16,
    #[serde(default)]
    pub default_profile: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Addresses {
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Peer {
    pub name: String,
    pub address: IpAddr,
    /// Signaling transport; must match `address` (default: its family).
    #[serde(default)]
    pub transport: Option<Family>,
    /// Access role: this anchor address assigns an anchor at run time (an
    /// anchor cluster's address: RFC 6463 redirect, RFC 4433 dynamic HA).
    #[serde(default)]
    pub runtime_assignment: bool,
    #[serde(default)]
    pub spi: Option<u32>,
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Shared key, hex.
    #[serde(default)]
    pub key: Option<String>,
}

/// Times carry their unit in the key name, as the operator writes them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Timers {
    pub lifetime_s: u32,
    pub refresh_s: u32,
    pub renew_percent: u8,
    pub retx_initial_ms: u32,
    pub retx_max_ms: u32,
    pub max_retransmissions: u8,
    pub timestamp_window_ms: u32,
    pub heartbeat_interval_s: u32,
    pub heartbeat_misses: u8,
    pub bri_delay_min_ms: u32,
    pub bri_delay_max_ms: u32,
    pub bri_max_retransmissions: u8,
    pub ha_failover: HaFailover,
}
impl Default for Timers {
    fn default() -> Self {
        defaults::TIMERS
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct HaFailover {
    pub enabled: bool,
    pub max_attempts: u8,
    pub attempts_before_switching: u8,
    pub timeout_s: u32,
}
impl Default for HaFailover {
    fn default() -> Self {
        defaults::TIMERS.ha_failover
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Detach {
    pub enabled: bool,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
}
impl Default for Detach {
    fn default() -> Self {
        defaults::DETACH
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Dhcp {
    pub dns: Vec<Ipv4Addr>,
    pub offer_timeout_s: u32,
}
impl Default for Dhcp {
    fn default() -> Self {
        defaults::DHCP
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Pool {
    pub name: String,
    /// "192.0.2.0/24" (home addresses) or "2001:db8:f00d::/48" (prefixes).
    pub prefix: String,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub assign_len: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Profile {
    pub name: String,
    #[serde(default)]
    pub nai: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub anchor: Option<String>,
    #[serde(default)]
    pub alternate_anchor: Option<String>,
    #[serde(default)]
    pub home_address: Option<Ipv4Addr>,
    #[serde(default)]
    pub apn: Option<String>,
    #[serde(default)]
    pub imsi: Option<String>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    #[serde(default)]
    pub pool: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct StaticBinding {
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub nai: Option<String>,
    pub home_address: Ipv4Addr,
    pub peer: String,
    pub uplink_key: u32,
    pub downlink_key: u32,
}
