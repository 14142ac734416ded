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
use super::{Algorithm, Family, Protocol, Role, Service, StoreBackend, StoreLayout};
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
    /// PMIPv4: per-mobile-node security associations (MN-HA).
    #[serde(default)]
    pub mn_ha: Vec<MnHa>,
    #[serde(default)]
    pub timers: Timers,
    #[serde(default)]
    pub detach: Detach,
    #[serde(default)]
    pub dhcp: Dhcp,
    /// The emulated home link of IPv6 subscribers (access role, PMIPv6).
    #[serde(default)]
    pub ipv6: Ipv6,
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
    /// Who may signal to us, and where the ESP sequence numbers are kept.
    #[serde(default)]
    pub signaling: Signaling,
    /// Caps on attaches (access role): what a flood of new MACs may cost.
    #[serde(default)]
    pub admission: Admission,
    /// RADIUS (issue 14): parsed by the AAA module's own serde struct.
    #[serde(default)]
    pub aaa: Option<crate::aaa::AaaConfig>,
    /// The OpenMetrics / Prometheus endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: Metrics,
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
    /// etcd: store batches of one service address written at once (1–8).
    pub writes_in_flight: u32,
    /// etcd: most requests read into one store batch (16–8192).
    pub batch_max: u32,
    /// etcd: "per-binding" (one key per binding) or "packed" (a batch's
    /// bindings in one key per expiry bucket); checked in `check/store.rs`.
    pub layout: String,
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
            writes_in_flight: defaults::ETCD_WRITES_IN_FLIGHT,
            batch_max: defaults::ETCD_BATCH_MAX,
            layout: StoreLayout::Packed.name().into(),
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
    /// `[[cluster.esp]]`: SAs per service address and peer (cluster/esp.rs).
    pub esp: Vec<ClusterEsp>,
}

/// `[[cluster.esp]]`: the SAs between one service address and one peer.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterEsp {
    pub service: IpAddr,
    /// `peers[].name`.
    pub peer: String,
    pub sa: crate::esp::EspConfig,
}

impl std::fmt::Debug for ClusterEsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterEsp")
            .field("service", &self.service)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
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
            esp: Vec::new(),
        }
    }
}

/// `[signaling]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Signaling {
    /// "drop" (default): signaling from an address that is not a configured
    /// peer is dropped unanswered; "answer": rejected with the protocol's
    /// error (RFC 5213 §5.3.1 status 154), which makes us a reflector.
    pub unknown_peers: super::UnknownPeers,
    /// Runs of UDP signaling to one peer (PMIPv4 UDP 434, PMIPv6 UDP 5436)
    /// go as one send with UDP GSO, cut back into the same datagrams by the
    /// kernel or the NIC: about a third less CPU per registration at the HA.
    /// Off by default: a capture on this host shows a run as one datagram.
    pub udp_gso: bool,
    /// Anchor, PMIPv6: the fast path on the core interface hands IPv6
    /// Mobility Headers to our signaling address to AF_XDP sockets of the
    /// agent (one per receive queue) instead of the kernel's raw-socket
    /// path: less CPU per binding. They then bypass the host's netfilter
    /// INPUT rules (the peer filter and ESP still apply). Off by default.
    pub xdp_socket: bool,
    /// With `xdp_socket`: the LMA's Proxy Binding Acknowledgements to IPv6
    /// MAGs go out through the same AF_XDP socket, as whole frames to the
    /// next hop the kernel's route and neighbour tables name (looked up
    /// about once a second; a MAG whose neighbour entry is not reachable
    /// just then is answered through the raw socket, which has the kernel
    /// confirm it): less CPU per binding. They then bypass the host's
    /// netfilter OUTPUT rules, its IPsec policies and the core interface's
    /// qdisc (pmip's own ESP peers are still answered with ESP). Off by
    /// default.
    pub xdp_socket_send: bool,
    /// Receive buffer of each signaling socket, KiB: what a burst of
    /// requests (thousands of attaches at once, every MAG after an anchor
    /// restart) may queue while the registrar is busy; past it the kernel
    /// drops them and each costs its sender a retransmission timeout.
    pub receive_buffer_kib: u32,
    /// Where the ESP sequence numbers outlive a restart.
    pub esp_state_file: PathBuf,
}
impl Default for Signaling {
    fn default() -> Self {
        defaults::signaling()
    }
}

/// `[admission]`: pending attaches and registration attempts, per access
/// link and in all, and the back-off of a MAC whose registration failed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Admission {
    pub max_pending_per_link: u32,
    pub max_pending: u32,
    pub attempts_per_s_per_link: u32,
    pub attempts_per_s: u32,
    pub backoff_initial_ms: u32,
    pub backoff_max_s: u32,
    pub new_mac_reports_per_s: u32,
}
impl Default for Admission {
    fn default() -> Self {
        defaults::ADMISSION
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Metrics {
    /// "127.0.0.1:9417": where `GET /metrics` is served.
    #[serde(default)]
    pub listen: Option<String>,
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
    /// Group (name or number) allowed to use it too (mode 0660 instead of 0600).
    #[serde(default)]
    pub group: Option<String>,
}
impl Default for Control {
    fn default() -> Self {
        Control {
            socket: defaults::control_socket(),
            group: None,
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
    /// What the link is (Access Technology Type, RFC 5213 §8.5 / draft §5.5).
    #[serde(default)]
    pub access_technology: Option<super::AccessTechnology>,
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
    /// PMIPv4: more associations accepted from this peer (a key rollover).
    #[serde(default)]
    pub also_accept: Vec<SaFields>,
    /// Access role: revoke bindings at this anchor instead of deregistering
    /// them one by one (RFC 5846 MAG-initiated / RFC 3543 PMA-initiated);
    /// default off. PMIPv6 anchor role: send this MAG Binding Revocation
    /// Indications (RFC 5846 LMA-initiated); default on.
    #[serde(default)]
    pub revocation: Option<bool>,
    /// PMIPv4 access role: ask this home agent to assign one (RFC 4433:
    /// Home Agent field 255.255.255.255 and the Requested HA extension).
    #[serde(default)]
    pub dynamic_ha: bool,
    /// PMIPv6: the ESP security associations protecting the signaling (RFC 5213 §4).
    #[serde(default)]
    pub esp: Option<crate::esp::EspConfig>,
    /// PMIPv6 without ESP: explicit, for labs.
    #[serde(default)]
    pub insecure: bool,
}

/// One security association's fields (`peers[].also_accept[]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct SaFields {
    #[serde(default)]
    pub spi: Option<u32>,
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Shared key, hex.
    #[serde(default)]
    pub key: Option<String>,
}

/// `[[mn_ha]]`: the MN-HA security association of one mobile node (`nai`)
/// or of every NAI of a realm (`realm`) — RFC 3344 §3.5.2, draft-leung §4.3
/// "per MN SA" (Cisco IOS `ip mobile secure host nai`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct MnHa {
    #[serde(default)]
    pub nai: Option<String>,
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub spi: Option<u32>,
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Shared key, hex.
    #[serde(default)]
    pub key: Option<String>,
    /// Associations also accepted from the mobile node's side (a key
    /// rollover, as `peers[].also_accept`).
    #[serde(default)]
    pub also_accept: Vec<SaFields>,
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
    /// RFC 5213 §9.3 TimestampBasedApproachInUse.
    pub timestamp_based_approach: bool,
    pub heartbeat_interval_s: u32,
    pub heartbeat_misses: u8,
    pub bri_delay_min_ms: u32,
    pub bri_delay_max_ms: u32,
    pub bri_max_retransmissions: u8,
    /// RFC 5213 MaxDelayBeforeNewBCEAssign (LMA without revocation).
    pub new_bce_delay_ms: u32,
    /// HA: after a start, honour a requested home address for this long
    /// (re-registrations of bindings an HA lost); 0: off.
    pub reregistration_window_s: u32,
    /// MAG: an LMA's refusal of an MN (PBA 152, 170, 172) holds this long
    /// unless the operator clears it first; 0: not remembered.
    pub lma_refusal_hold_s: u32,
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
    /// How long an OFFER holds the address when no REQUEST follows (RFC 2131 §4.3.1).
    pub offer_hold_s: u32,
}
impl Default for Dhcp {
    fn default() -> Self {
        defaults::DHCP
    }
}

/// `[ipv6]`: router advertisements and DHCPv6 on the access links.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub(super) struct Ipv6 {
    /// MAC every MAG of the domain uses on its access links; none: each
    /// access interface's own (which must then be the same on every MAG).
    pub router_mac: Option<String>,
    /// Link-local address every MAG uses; none: modified EUI-64 of the router MAC.
    pub router_link_local: Option<Ipv6Addr>,
    pub ra_interval_max_s: u32,
    /// None: 3 × ra_interval_max_s; 0: no cap (the binding's lifetime).
    pub prefix_lifetime_cap_s: Option<u32>,
    pub dhcpv6: bool,
    pub managed: bool,
    pub dns: Vec<Ipv6Addr>,
}
impl Default for Ipv6 {
    fn default() -> Self {
        defaults::IPV6
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
    /// ipv4 | ipv6 | dual (Cisco `mn-service`).
    #[serde(default)]
    pub service: Option<Service>,
    #[serde(default)]
    pub dns6: Vec<Ipv6Addr>,
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
