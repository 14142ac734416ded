//! The configuration as the daemon uses it: typed, checked, complete.
//!
//! Addresses are `Ipv4Addr`/`Ipv6Addr`, prefixes [`Ipv4Prefix`]/[`Ipv6Prefix`],
//! MACs `[u8; 6]`, keys bytes, times `Duration`s. What is still a `String` is
//! a name (interface, peer, profile, pool, NAI, APN, IMSI), never something
//! to parse again.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::prefix::{Ipv4Prefix, Ipv6Prefix};
use crate::access::admission::AdmissionConfig;
use crate::access::detach::DetachConfig;
use crate::access::dhcp::DhcpServerConfig;
use crate::fastpath::AttachMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// MAG (PMIPv6) or PMA (PMIPv4).
    Access,
    /// LMA (PMIPv6) or HA (PMIPv4).
    Anchor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Pmipv6,
    Pmipv4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// What a subscriber is given (Cisco `mn-service ipv4|ipv6|dual`): an IPv4
/// home address (RFC 5844), an IPv6 home network prefix (RFC 5213), or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    #[default]
    Ipv4,
    Ipv6,
    Dual,
}

impl Service {
    pub fn ipv4(self) -> bool {
        self != Service::Ipv6
    }
    pub fn ipv6(self) -> bool {
        self != Service::Ipv4
    }
}

/// Authentication algorithm of a security association (seed 000 `hash-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// HMAC-MD5 (RFC 2104), the RFC 3344 §5.1 default.
    HmacMd5,
    /// Keyed MD5 in prefix+suffix mode (RFC 2002).
    Rfc2002Md5,
    /// Keyed MD5 prefix+suffix over RFC 3344's protected fields (SPI included).
    Md5,
}

/// A checked `pmipd` configuration (see docs/config-reference.md for the keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub role: Role,
    pub protocol: Protocol,
    /// Name of this gateway in show output (Cisco `pmipv6-mag M1`).
    pub node_id: Option<String>,
    pub control: Control,
    pub interfaces: Interfaces,
    pub addresses: Addresses,
    pub peers: Vec<Peer>,
    /// PMIPv4: per-mobile-node security associations (`[[mn_ha]]`).
    pub mn_ha: Vec<MnHaSa>,
    pub timers: Timers,
    pub detach: Detach,
    pub dhcp: Dhcp,
    pub ipv6: Ipv6Access,
    /// Anchor role: at most one pool per family, in the order configured.
    pub pools: Vec<Pool>,
    pub profiles: Vec<Profile>,
    pub static_bindings: Vec<StaticBinding>,
    pub fastpath: Fastpath,
    pub store: StoreSettings,
    pub signaling: Signaling,
    /// Access role: caps on attaches.
    pub admission: AdmissionConfig,
    /// `[aaa]`: RADIUS servers, accounting, dynamic authorization (none: local profiles only).
    pub aaa: Option<crate::aaa::AaaConfig>,
    pub metrics: Metrics,
    /// `[cluster]`: set when the store is etcd (anchor role).
    pub cluster: Option<ClusterSettings>,
}

/// Where the binding state is kept (`[store]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A redb file: bindings survive a restart of pmipd and of the host.
    Embedded,
    /// In memory: nothing survives (a restarted gateway starts empty, and
    /// only reserves what the pinned maps still hold).
    Memory,
    /// etcd, shared by the anchors of a cluster (`[cluster]`): bindings
    /// survive the anchor that made them.
    Etcd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// The embedded store's file (absolute).
    pub path: PathBuf,
    /// The etcd store (backend "etcd").
    pub etcd: EtcdSettings,
}

/// How to reach etcd and how this anchor's liveness is leased there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs, "http://10.77.0.1:2379".
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster ("/pmip/east"), no trailing '/'.
    pub prefix: String,
    /// TTL of the member lease: an anchor cut off from etcd gives up its
    /// service addresses before it ends, and the others take them over after.
    pub lease_ttl: Duration,
    /// Longest wait for one etcd request.
    pub timeout: Duration,
    /// Operations per transaction (etcd's --max-txn-ops, 128 by default):
    /// a larger batch is written as several transactions.
    pub max_txn_ops: u32,
    /// Store batches of one service address written at once: with more
    /// than one, the registrar reads and answers on while a write is out
    /// (answers still wait for their own write).
    pub writes_in_flight: usize,
    /// Most requests a service address reads into one store batch (one
    /// etcd transaction, unless it has more than `max_txn_ops` operations).
    pub batch_max: usize,
    /// How binding records are laid out in etcd (`store.layout`).
    pub layout: StoreLayout,
}

/// How the etcd store lays out anchor binding records (`store.layout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreLayout {
    /// One key per binding (`P/svc/<address>/lma/<id>`).
    PerBinding,
    /// A batch's binding records in one key per expiry bucket
    /// (`store::pack`); a scan reads both layouts. The default: etcd's CPU
    /// and memory per binding are a third and a fifth of the other's.
    #[default]
    Packed,
}

impl StoreLayout {
    pub fn name(self) -> &'static str {
        match self {
            StoreLayout::PerBinding => "per-binding",
            StoreLayout::Packed => "packed",
        }
    }
}

/// `[cluster]`: the anchors that share etcd, their service addresses and
/// how they watch each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This anchor's name in the cluster (default: node_id).
    pub member: String,
    /// The addresses MAGs and PMAs register with; each is served by one
    /// member at a time and taken over when it fails.
    pub service_addresses: Vec<IpAddr>,
    /// Where access gateways may register to be assigned a service address
    /// at run time (RFC 6463 redirect, RFC 4433 dynamic HA assignment).
    pub cluster_address: Option<IpAddr>,
    /// UDP port of the members' heartbeats, sent between their `addresses`.
    pub heartbeat_port: u16,
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before a member counts as dead and its lease is revoked.
    pub heartbeat_misses: u32,
    /// Numbers (keys, home addresses, prefixes) per block claimed in etcd.
    pub block_size: u32,
    /// After revoking a dead member's lease, wait this long before serving
    /// its addresses (a member that was only unreachable stops first).
    pub takeover_fence: Duration,
    /// ESP SAs per (service address, peer address); a peer without an
    /// entry for a service address uses its own `peers[].esp`.
    pub esp: Vec<(IpAddr, IpAddr, crate::esp::EspSettings)>,
}

/// `[metrics]`: the OpenMetrics endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Where `GET /metrics` is served; `None`: no endpoint.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Unix socket that `pmipctl` talks to.
    pub socket: PathBuf,
    /// Group that may use it besides root (mode 0660; without one, 0600).
    pub group: Option<u32>,
}

/// What becomes of signaling from an address that is not a configured peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPeers {
    /// Dropped and counted, never answered (no reflection towards a spoofed source).
    Drop,
    /// Handed to the registrar, which rejects it on the wire (conformance labs).
    Answer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signaling {
    pub unknown_peers: UnknownPeers,
    /// Runs of UDP signaling to one peer sent with UDP GSO (issue 18).
    pub udp_gso: bool,
    /// Anchor, PMIPv6: IPv6 Mobility Headers read from AF_XDP sockets the
    /// fast path redirects them into (`pmipv6/transport/xdp.rs`).
    pub xdp_socket: bool,
    /// With it: PBAs to IPv6 MAGs sent through the first socket's TX ring.
    pub xdp_socket_send: bool,
    /// Receive buffer of each signaling socket, bytes (`receive_buffer_kib`).
    pub receive_buffer: usize,
    /// The ESP sequence numbers, kept across restarts (RFC 4303 §3.3.3).
    pub esp_state_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fastpath {
    pub attach_mode: AttachMode,
    /// bpffs directory for pinned maps and links (absolute).
    pub pin_dir: Option<PathBuf>,
    /// Size of the subscriber maps (≥ 1, above the static bindings' ids).
    pub max_subscribers: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interfaces {
    /// Subscriber-facing links (access role; at least one there).
    pub access: Vec<AccessInterface>,
    /// Towards the peers; carries signaling and the GRE tunnels.
    pub core: String,
    /// Anchor role: interfaces towards correspondents (fast path role
    /// anchor-cn); empty when correspondents are reached over `core`.
    pub correspondent: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessInterface {
    /// The Linux interface (for a VLAN, the 802.1Q sub-interface).
    pub name: String,
    /// 802.1Q id of the link (1-4094), labels the subscribers.
    pub vlan: Option<u16>,
    /// The gateway's address on the link and the subnet's length: default
    /// router, DHCP server identifier and ARP sender (a host address, /8-/30).
    pub gateway: Ipv4Prefix,
    /// Link MTU; DHCP option 26 gets this minus the tunnel overhead.
    pub mtu: u16,
    /// Profile for subscribers without one (names a profile).
    pub default_profile: Option<String>,
    /// Access Technology Type code in the configured protocol.
    pub access_tech: Option<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// Local IPv4 signaling address and tunnel endpoint (set for PMIPv4).
    pub ipv4: Option<Ipv4Addr>,
    /// Local IPv6 signaling address and tunnel endpoint.
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Name used by profiles (Cisco `lma lma1`).
    pub name: String,
    /// Its address; `addresses` has one of the same family.
    pub address: IpAddr,
    /// Mobility security association: always there for PMIPv4.
    pub sa: Option<PeerSa>,
    /// PMIPv4: associations also accepted from this peer — the old key
    /// during a rollover (`also_accept`); answers are signed with the one
    /// the message answered used, what we start with with `sa`.
    pub also_accept: Vec<PeerSa>,
    /// Access role: revoke instead of deregistering (RFC 5846 / RFC 3543).
    /// PMIPv6 anchor role: send this MAG BRIs (RFC 5846 §8.1).
    pub revocation: bool,
    /// PMIPv4 access role: dynamic home agent assignment (RFC 4433).
    pub dynamic_ha: bool,
    /// PMIPv6: the ESP SAs of the signaling; `None` only with `insecure`.
    pub esp: Option<crate::esp::EspSettings>,
    /// PMIPv6 signaling with this peer goes unprotected (labs).
    pub insecure: bool,
    /// An anchor cluster's address that assigns anchors at run time.
    pub runtime_assignment: bool,
}

/// An MN-HA security association (`[[mn_ha]]`, RFC 3344 §3.5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnHaSa {
    pub selector: MnSelector,
    pub sa: PeerSa,
    /// Also accepted (a key rollover); answers are signed with the one the
    /// request used, as a peer's `also_accept`.
    pub also_accept: Vec<PeerSa>,
}

/// Whose association an `[[mn_ha]]` entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MnSelector {
    /// One mobile node, by its NAI.
    Nai(String),
    /// Every NAI of a realm (the part after its '@', without regard to case).
    Realm(String),
}

/// A security association with a peer (seed 000 `fa-ha-spi`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSa {
    /// ≥ 256 (RFC 3344 §1.6).
    pub spi: u32,
    pub algorithm: Algorithm,
    /// 1 to 64 bytes.
    pub key: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Requested (access) or longest granted (anchor) binding lifetime.
    pub lifetime: Duration,
    /// PMIPv6: refresh the binding this often.
    pub refresh: Duration,
    /// PMIPv4: renew after this share of the granted lifetime (1-99).
    pub renew_percent: u8,
    /// First retransmission timeout, and the cap of its doubling.
    pub retx_initial: Duration,
    pub retx_max: Duration,
    pub max_retransmissions: u8,
    /// Timestamp replay window.
    pub timestamp_window: Duration,
    /// RFC 5213 TimestampBasedApproachInUse (PMIPv6).
    pub timestamp_based: bool,
    /// RFC 5847 heartbeat period; `None`: off.
    pub heartbeat_interval: Option<Duration>,
    pub heartbeat_misses: u8,
    /// RFC 5846 BRI retransmission.
    pub bri_delay_min: Duration,
    pub bri_delay_max: Duration,
    pub bri_max_retransmissions: u8,
    /// RFC 5213 MaxDelayBeforeNewBCEAssign; zero: a new session at once.
    pub new_bce_delay: Duration,
    /// HA: a requested home address is honoured this long after a start
    /// (an HA that came back without its bindings); zero: off.
    pub reregistration_window: Duration,
    /// MAG: how long an LMA's refusal of an MN (152, 170, 172) holds; zero: off.
    pub lma_refusal_hold: Duration,
    pub ha_failover: HaFailover,
}

/// StarOS `proxy-mip ha-failover`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaFailover {
    pub enabled: bool,
    /// Attempts in all, over both anchors.
    pub max_attempts: u8,
    /// Attempts towards the primary before switching to the alternate.
    pub attempts_before_switching: u8,
    /// Wait for a reply per attempt.
    pub timeout: Duration,
}

/// Cisco `discover-mn-detach poll interval X timeout Y retries N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detach {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcp {
    /// DNS servers for subscribers whose profile names none.
    pub dns: Vec<Ipv4Addr>,
    /// How long a DISCOVER may wait for its registration.
    pub offer_timeout: Duration,
    /// How long an OFFER holds the home address when no REQUEST follows.
    pub offer_hold: Duration,
}

/// `[ipv6]`: the emulated home link of IPv6 subscribers (RFC 5213 §6.7–6.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Access {
    /// The MAC every MAG of the domain uses on the access link (RFC 5213
    /// §6.9.3); None: the access interface's own.
    pub router_mac: Option<[u8; 6]>,
    /// The link-local address every MAG uses (RFC 5213 §6.8); None: the
    /// modified EUI-64 address of the router MAC.
    pub router_link_local: Option<Ipv6Addr>,
    /// MaxRtrAdvInterval (RFC 4861 §6.2.1, 4–1800 s).
    pub ra_interval_max: Duration,
    /// Upper bound of the advertised prefix lifetimes (None: the binding's).
    /// A node ignores a shorter valid lifetime once 2 h or less are left
    /// (RFC 4862 §5.5.3 e), so after its binding ends a node keeps its
    /// (deprecated, routeless) address for up to this long.
    pub prefix_lifetime_cap: Option<Duration>,
    /// Run the DHCPv6 server (IA_NA / IA_PD from the HNP) on the access links.
    pub dhcpv6: bool,
    /// The M and O flags of router advertisements.
    pub managed: bool,
    /// RDNSS / DHCPv6 DNS servers for subscribers whose profile names none.
    pub dns: Vec<Ipv6Addr>,
}

/// An address pool of the anchor (StarOS `ip pool`, `ipv6 pool`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pool {
    V4(Ipv4Pool),
    V6(Ipv6Pool),
}

/// IPv4 home addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Pool {
    pub name: String,
    /// A network (no host bits), /8 to /30.
    pub prefix: Ipv4Prefix,
    /// The subscribers' default router, inside `prefix` (StarOS `subscriber-gw-address`).
    pub gateway: Ipv4Addr,
}

/// IPv6 home network prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Pool {
    pub name: String,
    /// /1 to `assign_len`.
    pub prefix: Ipv6Prefix,
    /// Length of each assigned prefix (up to 64).
    pub assign_len: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Network Access Identifier (RFC 4282); without one the MAC is the NAI (seed 004).
    pub nai: Option<String>,
    /// Subscriber MAC (unicast), the other lookup key.
    pub mac: Option<[u8; 6]>,
    /// Peer name of the LMA/HA.
    pub anchor: Option<String>,
    /// Peer name of the alternate LMA/HA.
    pub alternate_anchor: Option<String>,
    pub home_address: Option<Ipv4Addr>,
    pub apn: Option<String>,
    pub imsi: Option<String>,
    pub dns: Vec<Ipv4Addr>,
    /// Access role: what the MAG asks for (None: IPv4, as before IPv6
    /// subscribers existed). Anchor role: what the LMA grants (None: what
    /// its pools offer).
    pub service: Option<Service>,
    /// IPv6 DNS servers (RDNSS, DHCPv6) for this subscriber.
    pub dns6: Vec<Ipv6Addr>,
    /// Anchor role: name of the pool to draw from.
    pub pool: Option<String>,
}

impl Profile {
    /// What the access gateway registers this subscriber for.
    pub fn access_service(&self) -> Service {
        self.service.unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticBinding {
    /// Access role: the subscriber's interface (one of `interfaces.access`) and MAC.
    pub interface: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub nai: Option<String>,
    pub home_address: Ipv4Addr,
    /// Name of a peer.
    pub peer: String,
    /// Non-zero.
    pub uplink_key: u32,
    pub downlink_key: u32,
}

/// Bytes GRE (with key, RFC 2890) and the outer header add to each subscriber packet.
pub(crate) fn tunnel_overhead(transport: Family) -> u16 {
    match transport {
        Family::Ipv4 => 20 + 8,
        Family::Ipv6 => 40 + 8,
    }
}

impl Peer {
    /// The signaling transport (and tunnel family) towards this peer.
    pub fn family(&self) -> Family {
        if self.address.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

impl Pool {
    pub fn name(&self) -> &str {
        match self {
            Pool::V4(p) => &p.name,
            Pool::V6(p) => &p.name,
        }
    }
}

impl Detach {
    pub(crate) fn monitor_config(&self) -> DetachConfig {
        DetachConfig {
            interval: self.interval,
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}

impl Config {
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    pub(crate) fn ipv4_pools(&self) -> impl Iterator<Item = &Ipv4Pool> {
        self.pools.iter().filter_map(|p| match p {
            Pool::V4(p) => Some(p),
            Pool::V6(_) => None,
        })
    }

    pub fn ipv6_pools(&self) -> impl Iterator<Item = &Ipv6Pool> {
        self.pools.iter().filter_map(|p| match p {
            Pool::V6(p) => Some(p),
            Pool::V4(_) => None,
        })
    }

    /// The profile of a subscriber: by NAI, then by MAC, then the access
    /// interface's default profile (seed 004 `enable pmipv6 default`).
    pub(crate) fn profile_for(
        &self,
        nai: Option<&str>,
        mac: &[u8; 6],
        interface: &str,
    ) -> Option<&Profile> {
        nai.and_then(|n| self.profiles.iter().find(|p| p.nai.as_deref() == Some(n)))
            .or_else(|| self.profiles.iter().find(|p| p.mac.as_ref() == Some(mac)))
            .or_else(|| {
                let i = self
                    .interfaces
                    .access
                    .iter()
                    .find(|i| i.name == interface)?;
                self.profile(i.default_profile.as_deref()?)
            })
    }

    /// A subscriber seen on `interface`: its NAI and profile. The NAI comes from
    /// the profile, else from the DHCP client identifier, else the MAC (seed 004).
    pub(crate) fn resolve_subscriber(
        &self,
        client_id: Option<&[u8]>,
        mac: &[u8; 6],
        interface: &str,
    ) -> (String, Option<&Profile>) {
        let derived = crate::access::subscriber_nai(client_id, mac);
        let profile = self.profile_for(Some(&derived), mac, interface);
        let nai = profile.and_then(|p| p.nai.clone()).unwrap_or(derived);
        (nai, profile)
    }

    /// DNS servers for a subscriber: the profile's, else `dhcp.dns`.
    pub(crate) fn dns_for(&self, profile: Option<&Profile>) -> Vec<Ipv4Addr> {
        match profile {
            Some(p) if !p.dns.is_empty() => p.dns.clone(),
            _ => self.dhcp.dns.clone(),
        }
    }

    /// The DHCP server parameters of an access interface (ifindex filled by the shell).
    pub(crate) fn dhcp_server_config(&self, iface: &AccessInterface) -> DhcpServerConfig {
        let mut c = DhcpServerConfig::new(0, self.frame_vlan(iface), iface.gateway.addr);
        c.offer_timeout = self.dhcp.offer_timeout;
        c.offer_hold = self.dhcp.offer_hold;
        c
    }

    /// The 802.1Q tag subscribers' frames carry where the fast path and the
    /// access link's sockets see them: none on a VLAN sub-interface (the
    /// kernel has taken the tag off; `vlan` then only labels the link), the
    /// configured one on the parent interface. Bindings are keyed by it, so
    /// they match the frames.
    pub(crate) fn frame_vlan(&self, iface: &AccessInterface) -> u16 {
        match crate::sys::vlan_id(&iface.name) {
            Some(_) => 0,
            None => iface.vlan.unwrap_or(0),
        }
    }

    /// IPv6 DNS servers for a subscriber: the profile's, else `ipv6.dns`.
    pub(crate) fn dns6_for(&self, profile: Option<&Profile>) -> Vec<Ipv6Addr> {
        match profile {
            Some(p) if !p.dns6.is_empty() => p.dns6.clone(),
            _ => self.ipv6.dns.clone(),
        }
    }

    /// Whether any subscriber may get IPv6 service on the access links.
    pub fn ipv6_access(&self) -> bool {
        self.role == Role::Access && self.profiles.iter().any(|p| p.access_service().ipv6())
    }

    /// DHCP option 26 for subscribers on `iface` reaching `peer`.
    pub fn subscriber_mtu(&self, iface: &AccessInterface, peer: &Peer) -> u16 {
        iface.mtu.saturating_sub(tunnel_overhead(peer.family()))
    }
}
