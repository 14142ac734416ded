//! The `pmipd` configuration file (TOML) and its validation.
//!
//! Every knob of seeds 000 (StarOS proxy-mip) and 004 (Cisco MAG) that applies
//! has a key; the mapping is in the comments and in `examples/`. A wrong config
//! is refused with errors that name the key path and the problem, e.g.
//! `peers[1].spi: must be >= 256`. Unknown keys are refused by the parser.
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::detach::DetachConfig;
use crate::access::frame::parse_mac;

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

/// Authentication algorithm of a security association (seed 000 `hash-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// HMAC-MD5 (RFC 2104), the RFC 3344 §5.1 default.
    HmacMd5,
    /// Keyed MD5 in prefix+suffix mode (RFC 2002).
    Rfc2002Md5,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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
}

/// `[fastpath]`: attach mode and pinning of the eBPF data plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fastpath {
    /// native (driver) XDP, generic (skb) XDP, tc (TC ingress), or auto:
    /// native, else generic, else tc.
    pub attach_mode: crate::loader::AttachMode,
    /// bpffs directory for pinned maps and links: with it the fast path keeps
    /// forwarding while pmipd restarts.
    pub pin_dir: Option<PathBuf>,
    /// Size of the subscriber maps.
    pub max_subscribers: u32,
}
impl Default for Fastpath {
    fn default() -> Self {
        Fastpath {
            attach_mode: crate::loader::AttachMode::Auto,
            pin_dir: None,
            max_subscribers: pmip_common::MAX_SUBSCRIBERS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unix socket that `pmipctl` talks to.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}
fn default_socket() -> PathBuf {
    PathBuf::from("/run/pmipd.sock")
}
impl Default for Control {
    fn default() -> Self {
        Control {
            socket: default_socket(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {
    /// Subscriber-facing links (access role).
    #[serde(default)]
    pub access: Vec<AccessInterface>,
    /// Towards the peers; carries signaling and the GRE tunnels.
    pub core: String,
    /// Anchor role: interfaces towards correspondents, where packets to home
    /// addresses arrive (fast path role anchor-cn). May be empty when
    /// correspondents are reached over `core`.
    #[serde(default)]
    pub correspondent: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessInterface {
    /// The Linux interface (for a VLAN, the 802.1Q sub-interface, e.g. `eth0.3074`).
    pub name: String,
    /// 802.1Q id of the link (Cisco `encapsulation dot1Q 3074`), labels the subscribers.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// The gateway's address and prefix on the link: default router, DHCP server
    /// identifier and ARP sender (e.g. "192.0.2.254/24").
    pub gateway: String,
    /// Link MTU; DHCP option 26 gets this minus the tunnel overhead.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Profile for subscribers without one (Cisco `enable pmipv6 default <profile>`).
    #[serde(default)]
    pub default_profile: Option<String>,
}
fn default_mtu() -> u16 {
    1500
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// Local IPv4 signaling address and tunnel endpoint.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// Local IPv6 signaling address and tunnel endpoint (Cisco `address ipv6`).
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Name used by profiles (Cisco `lma lma1`).
    pub name: String,
    pub address: IpAddr,
    /// Signaling transport; must match `address` (default: its family).
    #[serde(default)]
    pub transport: Option<Family>,
    /// Security association (seed 000 `fa-ha-spi`, seed 002 `ip proxy-mobile secure`):
    /// required for PMIPv4, optional for PMIPv6.
    #[serde(default)]
    pub spi: Option<u32>,
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Shared key, hex.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// Requested binding lifetime (Cisco `binding lifetime`, StarOS `reg-lifetime`).
    pub lifetime_s: u32,
    /// PMIPv6: refresh the binding this often (Cisco `binding refresh-time`).
    pub refresh_s: u32,
    /// PMIPv4: renew after this share of the granted lifetime (StarOS `proxy-mip renew-percent-time`).
    pub renew_percent: u8,
    /// First retransmission timeout (Cisco "Refresh Retransmit Init time",
    /// StarOS `proxy-mip retransmission-timeout`).
    pub retx_initial_ms: u32,
    /// Cap of the doubling retransmission timeout (Cisco `binding max-retx-time`).
    pub retx_max_ms: u32,
    /// StarOS `proxy-mip max-retransmissions`.
    pub max_retransmissions: u8,
    /// Timestamp replay window (Cisco `replay-protection timestamp window`, ms;
    /// StarOS `timestamp-replay-protection tolerance`).
    pub timestamp_window_ms: u32,
    /// RFC 5847 heartbeat; 0 disables.
    pub heartbeat_interval_s: u32,
    pub heartbeat_misses: u8,
    /// RFC 5846 BRI retransmission (Cisco `bri delay min/max`).
    pub bri_delay_min_ms: u32,
    pub bri_delay_max_ms: u32,
    pub bri_max_retransmissions: u8,
    /// StarOS `proxy-mip ha-failover`.
    pub ha_failover: HaFailover,
}
impl Default for Timers {
    fn default() -> Self {
        Timers {
            lifetime_s: 3600,
            refresh_s: 300,
            renew_percent: 75,
            retx_initial_ms: 1000,
            retx_max_ms: 32000,
            max_retransmissions: 5,
            timestamp_window_ms: 7000,
            heartbeat_interval_s: 0,
            heartbeat_misses: 3,
            bri_delay_min_ms: 1000,
            bri_delay_max_ms: 2000,
            bri_max_retransmissions: 3,
            ha_failover: HaFailover::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaFailover {
    pub enabled: bool,
    /// Attempts in all, over both anchors.
    pub max_attempts: u8,
    /// Attempts towards the primary before switching to the alternate.
    pub attempts_before_switching: u8,
    /// Wait for a reply per attempt.
    pub timeout_s: u32,
}
impl Default for HaFailover {
    fn default() -> Self {
        HaFailover {
            enabled: false,
            max_attempts: 4,
            attempts_before_switching: 2,
            timeout_s: 3,
        }
    }
}

/// Cisco `discover-mn-detach poll interval X timeout Y retries N`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Detach {
    pub enabled: bool,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
}
impl Default for Detach {
    fn default() -> Self {
        Detach {
            enabled: true,
            interval_s: 10,
            timeout_s: 2,
            retries: 3,
        }
    }
}
impl Detach {
    pub fn monitor_config(&self) -> DetachConfig {
        DetachConfig {
            interval: Duration::from_secs(self.interval_s.into()),
            timeout: Duration::from_secs(self.timeout_s.into()),
            retries: self.retries,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dhcp {
    /// DNS servers for subscribers whose profile names none.
    pub dns: Vec<Ipv4Addr>,
    /// How long a DISCOVER may wait for its registration / an OFFER for its REQUEST.
    pub offer_timeout_s: u32,
}
impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            dns: Vec::new(),
            offer_timeout_s: 60,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// "192.0.2.0/24" (home addresses) or "2001:db8:f00d::/48" (home network prefixes).
    pub prefix: String,
    /// IPv4: the subscribers' default router (StarOS `subscriber-gw-address`).
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// IPv6: length of each assigned prefix (default 64).
    #[serde(default)]
    pub assign_len: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Network Access Identifier (RFC 4282); without one the MAC is the NAI (seed 004).
    #[serde(default)]
    pub nai: Option<String>,
    /// Subscriber MAC, the other lookup key.
    #[serde(default)]
    pub mac: Option<String>,
    /// Peer name of the LMA/HA.
    #[serde(default)]
    pub anchor: Option<String>,
    /// Peer name of the alternate LMA/HA (StarOS `mobile-ip home-agent <a> alternate`).
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
    /// Anchor role: pool to draw from.
    #[serde(default)]
    pub pool: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticBinding {
    /// Access role: the subscriber's interface and MAC.
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

/// One problem, at one key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub problem: String,
}
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// All the problems of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for ConfigErrors {}

/// Parses "a.b.c.d/len" or "x::/len".
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (l <= max).then_some((a, l))
}

fn v4_in(a: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let m = crate::access::dhcp::prefix_to_mask(len);
    u32::from(a) & u32::from(m) == u32::from(net) & u32::from(m)
}

/// Bytes GRE (with key, RFC 2890) and the outer header add to each subscriber packet.
pub fn tunnel_overhead(transport: Family) -> u16 {
    match transport {
        Family::Ipv4 => 20 + 8,
        Family::Ipv6 => 40 + 8,
    }
}

struct V {
    errs: Vec<ConfigError>,
}
impl V {
    fn err(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.errs.push(ConfigError {
            path: path.into(),
            problem: problem.into(),
        });
    }
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ' ']) && s != "." && s != ".."
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.display().to_string(),
                problem: e.to_string(),
            }])
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            // toml's message names the key and shows the line; keep it whole.
            ConfigErrors(vec![ConfigError {
                path: "(syntax)".into(),
                problem: e.to_string(),
            }])
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile of a subscriber: by NAI, then by MAC, then the access
    /// interface's default profile (seed 004 `enable pmipv6 default`).
    pub fn profile_for(
        &self,
        nai: Option<&str>,
        mac: &[u8; 6],
        interface: &str,
    ) -> Option<&Profile> {
        nai.and_then(|n| self.profiles.iter().find(|p| p.nai.as_deref() == Some(n)))
            .or_else(|| {
                self.profiles
                    .iter()
                    .find(|p| p.mac.as_deref().and_then(parse_mac).as_ref() == Some(mac))
            })
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
    pub fn resolve_subscriber(
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
    pub fn dns_for(&self, profile: Option<&Profile>) -> Vec<Ipv4Addr> {
        match profile {
            Some(p) if !p.dns.is_empty() => p.dns.clone(),
            _ => self.dhcp.dns.clone(),
        }
    }

    /// The DHCP server parameters of an access interface (ifindex filled by the shell).
    pub fn dhcp_server_config(
        &self,
        iface: &AccessInterface,
    ) -> Option<crate::access::dhcp::DhcpServerConfig> {
        let (gw, _) = iface.gateway_v4()?;
        let mut c = crate::access::dhcp::DhcpServerConfig::new(0, iface.vlan.unwrap_or(0), gw);
        c.offer_timeout = Duration::from_secs(self.dhcp.offer_timeout_s.into());
        Some(c)
    }

    /// DHCP option 26 for subscribers on `iface` reaching `peer`.
    pub fn subscriber_mtu(&self, iface: &AccessInterface, peer: &Peer) -> u16 {
        iface.mtu.saturating_sub(tunnel_overhead(peer.family()))
    }

    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut v = V { errs: Vec::new() };
        self.check(&mut v);
        if v.errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(v.errs))
        }
    }

    fn check(&self, v: &mut V) {
        let access = self.role == Role::Access;
        if let Some(n) = &self.node_id {
            if n.is_empty() || n.len() > 64 {
                v.err("node_id", "must be 1 to 64 characters");
            }
        }
        if self.control.socket.as_os_str().is_empty() {
            v.err("control.socket", "must not be empty");
        }

        // Interfaces.
        if !valid_ifname(&self.interfaces.core) {
            v.err(
                "interfaces.core",
                "must be a Linux interface name (1 to 15 characters, no '/' or space)",
            );
        }
        if access && self.interfaces.access.is_empty() {
            v.err(
                "interfaces.access",
                "the access role needs at least one access interface",
            );
        }
        if !access && !self.interfaces.access.is_empty() {
            v.err("interfaces.access", "only used in the access role");
        }
        if access && !self.interfaces.correspondent.is_empty() {
            v.err("interfaces.correspondent", "only used in the anchor role");
        }
        for (i, c) in self.interfaces.correspondent.iter().enumerate() {
            if !valid_ifname(c) {
                v.err(
                    format!("interfaces.correspondent[{i}]"),
                    "must be a Linux interface name (1 to 15 characters, no '/' or space)",
                );
            } else if *c == self.interfaces.core {
                v.err(
                    format!("interfaces.correspondent[{i}]"),
                    "must differ from interfaces.core",
                );
            }
        }
        if self.fastpath.max_subscribers == 0 {
            v.err("fastpath.max_subscribers", "must be at least 1");
        }
        if let Some(d) = &self.fastpath.pin_dir {
            if !d.is_absolute() {
                v.err(
                    "fastpath.pin_dir",
                    "must be an absolute path on a bpffs mount",
                );
            }
        }
        let mut seen = HashSet::new();
        for (i, a) in self.interfaces.access.iter().enumerate() {
            let p = format!("interfaces.access[{i}]");
            if !valid_ifname(&a.name) {
                v.err(
                    format!("{p}.name"),
                    "must be a Linux interface name (1 to 15 characters, no '/' or space)",
                );
            } else if a.name == self.interfaces.core {
                v.err(format!("{p}.name"), "must differ from interfaces.core");
            }
            if !seen.insert((a.name.clone(), a.vlan)) {
                v.err(
                    format!("{p}.name"),
                    format!("interface {} listed twice", a.name),
                );
            }
            if let Some(vl) = a.vlan {
                if !(1..=4094).contains(&vl) {
                    v.err(format!("{p}.vlan"), "must be 1 to 4094");
                }
            }
            match parse_prefix(&a.gateway) {
                Some((IpAddr::V4(g), len)) => {
                    if !(8..=30).contains(&len) {
                        v.err(format!("{p}.gateway"), "prefix length must be 8 to 30");
                    } else {
                        let m = u32::from(crate::access::dhcp::prefix_to_mask(len));
                        let host = u32::from(g) & !m;
                        if host == 0 || host == !m {
                            v.err(
                                format!("{p}.gateway"),
                                "must be a host address, not the network or broadcast address",
                            );
                        }
                    }
                    if g.is_multicast() || g.is_loopback() || g.is_unspecified() {
                        v.err(format!("{p}.gateway"), "must be a unicast address");
                    }
                }
                Some((IpAddr::V6(_), _)) => v.err(
                    format!("{p}.gateway"),
                    "must be an IPv4 address/prefix (e.g. \"192.0.2.254/24\")",
                ),
                None => v.err(
                    format!("{p}.gateway"),
                    "must be an address with prefix length, e.g. \"192.0.2.254/24\"",
                ),
            }
            if !(576..=9216).contains(&a.mtu) {
                v.err(format!("{p}.mtu"), "must be 576 to 9216");
            }
            if let Some(dp) = &a.default_profile {
                if self.profile(dp).is_none() {
                    v.err(
                        format!("{p}.default_profile"),
                        format!("no profile named {dp:?}"),
                    );
                }
            }
        }

        // Addresses.
        if self.addresses.ipv4.is_none() && self.addresses.ipv6.is_none() {
            v.err("addresses", "needs ipv4 or ipv6 (or both)");
        }
        if let Some(a) = self.addresses.ipv4 {
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                v.err("addresses.ipv4", "must be a unicast address");
            }
        }
        if let Some(a) = self.addresses.ipv6 {
            if a.is_unspecified() || a.is_multicast() {
                v.err("addresses.ipv6", "must be a unicast address");
            }
        }
        if self.protocol == Protocol::Pmipv4 && self.addresses.ipv4.is_none() {
            v.err(
                "addresses.ipv4",
                "PMIPv4 signals over IPv4: an IPv4 address is required",
            );
        }

        // Peers.
        if access && self.peers.is_empty() {
            v.err("peers", "the access role needs at least one anchor peer");
        }
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        for (i, pr) in self.peers.iter().enumerate() {
            let p = format!("peers[{i}]");
            if pr.name.is_empty() {
                v.err(format!("{p}.name"), "must not be empty");
            } else if !names.insert(pr.name.as_str()) {
                v.err(
                    format!("{p}.name"),
                    format!("duplicate peer name {:?}", pr.name),
                );
            }
            if !addrs.insert(pr.address) {
                v.err(
                    format!("{p}.address"),
                    format!("duplicate peer address {}", pr.address),
                );
            }
            let unicast = match pr.address {
                IpAddr::V4(a) => {
                    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback())
                }
                IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
            };
            if !unicast {
                v.err(format!("{p}.address"), "must be a unicast address");
            }
            let fam = pr.family();
            if let Some(t) = pr.transport {
                let af = if pr.address.is_ipv4() {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                if t != af {
                    v.err(
                        format!("{p}.transport"),
                        format!("is {t:?} but address {} is {af:?}", pr.address),
                    );
                }
            }
            if self.protocol == Protocol::Pmipv4 && fam != Family::Ipv4 {
                v.err(format!("{p}.address"), "PMIPv4 peers must be IPv4");
            }
            match fam {
                Family::Ipv4 if self.addresses.ipv4.is_none() => v.err(
                    format!("{p}.address"),
                    "IPv4 peer but addresses.ipv4 is not set",
                ),
                Family::Ipv6 if self.addresses.ipv6.is_none() => v.err(
                    format!("{p}.address"),
                    "IPv6 peer but addresses.ipv6 is not set",
                ),
                _ => {}
            }
            let any_sa = pr.spi.is_some() || pr.algorithm.is_some() || pr.key.is_some();
            if any_sa || self.protocol == Protocol::Pmipv4 {
                let why = if self.protocol == Protocol::Pmipv4 {
                    "required for PMIPv4 (RFC 3344 §3.5)"
                } else {
                    "part of the security association"
                };
                match pr.spi {
                    None => v.err(format!("{p}.spi"), format!("missing: {why}")),
                    // RFC 3344 §1.6: SPI values 0 through 255 are reserved.
                    Some(s) if s < 256 => v.err(
                        format!("{p}.spi"),
                        "must be >= 256 (0-255 are reserved, RFC 3344 §1.6)",
                    ),
                    _ => {}
                }
                if pr.algorithm.is_none() {
                    v.err(
                        format!("{p}.algorithm"),
                        format!("missing: {why} (hmac-md5 or rfc2002-md5)"),
                    );
                }
                match &pr.key {
                    None => v.err(format!("{p}.key"), format!("missing: {why}")),
                    Some(k) => {
                        if k.len() % 2 != 0 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                            v.err(format!("{p}.key"), "must be an even number of hex digits");
                        } else if k.is_empty() || k.len() > 128 {
                            v.err(format!("{p}.key"), "must be 1 to 64 bytes");
                        }
                    }
                }
            }
        }

        // Timers.
        let t = &self.timers;
        let max_life = match self.protocol {
            // RFC 6275 §6.1.7: 16-bit lifetime in units of 4 s.
            Protocol::Pmipv6 => 65535 * 4,
            // RFC 3344 §3.3: 16-bit seconds, 0xffff = infinity.
            Protocol::Pmipv4 => 65534,
        };
        if t.lifetime_s == 0 || t.lifetime_s > max_life {
            v.err("timers.lifetime_s", format!("must be 1 to {max_life}"));
        }
        if self.protocol == Protocol::Pmipv6 && (t.refresh_s == 0 || t.refresh_s >= t.lifetime_s) {
            v.err(
                "timers.refresh_s",
                format!(
                    "must be between 1 and lifetime_s ({}) exclusive",
                    t.lifetime_s
                ),
            );
        }
        if !(1..=99).contains(&t.renew_percent) {
            v.err("timers.renew_percent", "must be 1 to 99");
        }
        if t.retx_initial_ms < 100 {
            v.err("timers.retx_initial_ms", "must be >= 100");
        }
        if t.retx_max_ms < t.retx_initial_ms {
            v.err(
                "timers.retx_max_ms",
                format!("must be >= retx_initial_ms ({})", t.retx_initial_ms),
            );
        }
        if t.max_retransmissions > 20 {
            v.err("timers.max_retransmissions", "must be 0 to 20");
        }
        if t.timestamp_window_ms == 0 {
            v.err("timers.timestamp_window_ms", "must be > 0");
        }
        if t.heartbeat_interval_s > 0 && t.heartbeat_misses == 0 {
            v.err(
                "timers.heartbeat_misses",
                "must be >= 1 when heartbeat_interval_s is set",
            );
        }
        if t.bri_delay_min_ms == 0 {
            v.err("timers.bri_delay_min_ms", "must be > 0");
        }
        if t.bri_delay_max_ms < t.bri_delay_min_ms {
            v.err(
                "timers.bri_delay_max_ms",
                format!("must be >= bri_delay_min_ms ({})", t.bri_delay_min_ms),
            );
        }
        let f = &t.ha_failover;
        if f.enabled {
            if f.max_attempts == 0 {
                v.err("timers.ha_failover.max_attempts", "must be >= 1");
            }
            if f.attempts_before_switching == 0 || f.attempts_before_switching > f.max_attempts {
                v.err(
                    "timers.ha_failover.attempts_before_switching",
                    format!("must be 1 to max_attempts ({})", f.max_attempts),
                );
            }
            if f.timeout_s == 0 {
                v.err("timers.ha_failover.timeout_s", "must be > 0");
            }
        }

        // Detach polling.
        let d = &self.detach;
        if d.enabled {
            if d.interval_s == 0 {
                v.err("detach.interval_s", "must be > 0");
            }
            if d.timeout_s == 0 {
                v.err("detach.timeout_s", "must be > 0");
            } else if d.timeout_s >= d.interval_s && d.interval_s > 0 {
                v.err(
                    "detach.timeout_s",
                    format!("must be below interval_s ({})", d.interval_s),
                );
            }
            if d.retries > 100 {
                v.err("detach.retries", "must be 0 to 100");
            }
        }
        if self.dhcp.offer_timeout_s == 0 {
            v.err("dhcp.offer_timeout_s", "must be > 0");
        }

        // Pools.
        if access && !self.pools.is_empty() {
            v.err("pools", "only used in the anchor role");
        }
        if !access
            && self.pools.is_empty()
            && self.profiles.iter().all(|p| p.home_address.is_none())
        {
            v.err(
                "pools",
                "the anchor role needs at least one pool (or static home addresses in profiles)",
            );
        }
        let mut pnames = HashSet::new();
        for (i, pl) in self.pools.iter().enumerate() {
            let p = format!("pools[{i}]");
            if pl.name.is_empty() || !pnames.insert(pl.name.as_str()) {
                v.err(
                    format!("{p}.name"),
                    format!("must be a unique, non-empty name (got {:?})", pl.name),
                );
            }
            match parse_prefix(&pl.prefix) {
                Some((IpAddr::V4(net), len)) => {
                    if !(8..=30).contains(&len) {
                        v.err(format!("{p}.prefix"), "IPv4 prefix length must be 8 to 30");
                    } else if u32::from(net) & !u32::from(crate::access::dhcp::prefix_to_mask(len))
                        != 0
                    {
                        v.err(format!("{p}.prefix"), "has host bits set");
                    }
                    match pl.gateway {
                        None => v.err(
                            format!("{p}.gateway"),
                            "missing: the subscribers' default router in the pool",
                        ),
                        Some(g) if !v4_in(g, net, len) => v.err(
                            format!("{p}.gateway"),
                            format!("{g} is outside {}", pl.prefix),
                        ),
                        _ => {}
                    }
                    if pl.assign_len.is_some() {
                        v.err(format!("{p}.assign_len"), "only for IPv6 pools");
                    }
                }
                Some((IpAddr::V6(_), len)) => {
                    let al = pl.assign_len.unwrap_or(64);
                    if len > al || al > 64 {
                        v.err(
                            format!("{p}.assign_len"),
                            format!("must be between the prefix length ({len}) and 64"),
                        );
                    }
                    if pl.gateway.is_some() {
                        v.err(format!("{p}.gateway"), "only for IPv4 pools");
                    }
                }
                None => v.err(
                    format!("{p}.prefix"),
                    "must be address/length, e.g. \"192.0.2.0/24\"",
                ),
            }
        }

        // Profiles.
        let mut prnames = HashSet::new();
        let mut nais = HashSet::new();
        let mut macs = HashSet::new();
        let defaults: HashSet<&str> = self
            .interfaces
            .access
            .iter()
            .filter_map(|a| a.default_profile.as_deref())
            .collect();
        for (i, pr) in self.profiles.iter().enumerate() {
            let p = format!("profiles[{i}]");
            if pr.name.is_empty() || !prnames.insert(pr.name.as_str()) {
                v.err(
                    format!("{p}.name"),
                    format!("must be a unique, non-empty name (got {:?})", pr.name),
                );
            }
            if pr.nai.is_none() && pr.mac.is_none() && !defaults.contains(pr.name.as_str()) {
                v.err(
                    p.clone(),
                    "needs nai or mac (or must be an interface's default_profile)",
                );
            }
            if let Some(n) = &pr.nai {
                if n.is_empty() || n.len() > 253 {
                    v.err(format!("{p}.nai"), "must be 1 to 253 characters (RFC 4282)");
                } else if !nais.insert(n.as_str()) {
                    v.err(
                        format!("{p}.nai"),
                        format!("NAI {n:?} used by two profiles"),
                    );
                }
            }
            if let Some(m) = &pr.mac {
                match parse_mac(m) {
                    None => v.err(
                        format!("{p}.mac"),
                        "must be a MAC like 00:24:d7:8e:21:a4 or 0024.d78e.21a4",
                    ),
                    Some(mac) if !macs.insert(mac) => {
                        v.err(format!("{p}.mac"), format!("MAC {m} used by two profiles"))
                    }
                    Some(mac) if mac[0] & 1 != 0 => {
                        v.err(format!("{p}.mac"), "must be a unicast MAC")
                    }
                    _ => {}
                }
            }
            if access {
                match &pr.anchor {
                    None if self.peers.len() > 1 => v.err(
                        format!("{p}.anchor"),
                        "missing: several peers, say which one anchors this profile",
                    ),
                    Some(a) if self.peer(a).is_none() => {
                        v.err(format!("{p}.anchor"), format!("no peer named {a:?}"))
                    }
                    _ => {}
                }
                if let Some(a) = &pr.alternate_anchor {
                    if self.peer(a).is_none() {
                        v.err(
                            format!("{p}.alternate_anchor"),
                            format!("no peer named {a:?}"),
                        );
                    } else if pr.anchor.as_deref() == Some(a) {
                        v.err(format!("{p}.alternate_anchor"), "must differ from anchor");
                    }
                }
            }
            if let Some(h) = pr.home_address {
                if h.is_unspecified() || h.is_multicast() || h.is_broadcast() || h.is_loopback() {
                    v.err(format!("{p}.home_address"), "must be a unicast address");
                }
            }
            if let Some(apn) = &pr.apn {
                // 3GPP TS 23.003 §9.1: labels of letters, digits, '-', max 100 octets.
                let ok = !apn.is_empty()
                    && apn.len() <= 100
                    && apn.split('.').all(|l| {
                        !l.is_empty()
                            && l.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    });
                if !ok {
                    v.err(format!("{p}.apn"), "must be dot-separated labels of letters, digits and '-', at most 100 characters");
                }
            }
            if let Some(imsi) = &pr.imsi {
                // 3GPP TS 23.003 §2.2: at most 15 digits.
                if !(6..=15).contains(&imsi.len()) || !imsi.chars().all(|c| c.is_ascii_digit()) {
                    v.err(format!("{p}.imsi"), "must be 6 to 15 digits");
                }
            }
            if let Some(pool) = &pr.pool {
                if access {
                    v.err(format!("{p}.pool"), "only used in the anchor role");
                } else if !self.pools.iter().any(|x| &x.name == pool) {
                    v.err(format!("{p}.pool"), format!("no pool named {pool:?}"));
                }
            }
        }

        // Static bindings.
        let mut ul = HashSet::new();
        for (i, sb) in self.static_bindings.iter().enumerate() {
            let p = format!("static_bindings[{i}]");
            if self.peer(&sb.peer).is_none() {
                v.err(format!("{p}.peer"), format!("no peer named {:?}", sb.peer));
            }
            if access {
                match &sb.interface {
                    None => v.err(
                        format!("{p}.interface"),
                        "missing: the access interface of the subscriber",
                    ),
                    Some(n) if !self.interfaces.access.iter().any(|a| &a.name == n) => v.err(
                        format!("{p}.interface"),
                        format!("{n:?} is not in interfaces.access"),
                    ),
                    _ => {}
                }
                match sb.mac.as_deref().map(parse_mac) {
                    None => v.err(format!("{p}.mac"), "missing: the subscriber's MAC"),
                    Some(None) => v.err(format!("{p}.mac"), "must be a MAC like 00:24:d7:8e:21:a4"),
                    _ => {}
                }
            } else if let Some(m) = &sb.mac {
                if parse_mac(m).is_none() {
                    v.err(format!("{p}.mac"), "must be a MAC like 00:24:d7:8e:21:a4");
                }
            }
            if sb.uplink_key == 0 {
                v.err(format!("{p}.uplink_key"), "must be non-zero");
            }
            if sb.downlink_key == 0 {
                v.err(format!("{p}.downlink_key"), "must be non-zero");
            }
            let key = if access {
                sb.downlink_key
            } else {
                sb.uplink_key
            };
            if !ul.insert(key) {
                v.err(
                    format!("{p}.{}", if access { "downlink_key" } else { "uplink_key" }),
                    "two static bindings share this key",
                );
            }
        }
    }
}

impl Peer {
    pub fn family(&self) -> Family {
        if self.address.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    /// The key bytes (validated to be hex).
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        let k = self.key.as_ref()?;
        (0..k.len() / 2)
            .map(|i| u8::from_str_radix(k.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }
}

impl AccessInterface {
    /// The gateway address and prefix length (validated).
    pub fn gateway_v4(&self) -> Option<(Ipv4Addr, u8)> {
        match parse_prefix(&self.gateway)? {
            (IpAddr::V4(a), l) => Some((a, l)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
