//! The `[aaa]` section: RADIUS servers, attributes, accounting and dynamic authorization.
//!
//! Mirrors the `aaa` / `radius-server` commands of the seeds (Cisco IOS MAG, seed 004):
//!
//! | IOS / StarOS command | key |
//! |---|---|
//! | `radius-server host A auth-port P acct-port Q key K` | `[[aaa.servers]] address, auth_port, acct_port, secret` |
//! | `radius-server retransmit 2` / `timeout 3` / `deadtime` | `retransmit`, `timeout_s`, `deadtime_s` (also per server) |
//! | `radius-server source-ports extended` | `source_ports` |
//! | `radius-server attribute 31 mac format ietf lower-case` | `mac_format = "ietf-lower-case"` |
//! | `radius-server attribute 4 / 32 / 55 / 61 include-in-access-req`, `... include-in-acct-req` | `[aaa.attributes]` |
//! | `radius-server vsa send accounting` / `authentication` | `attributes.vsa_accounting`, `attributes.vsa_authentication` |
//! | `aaa accounting ... start-stop`, `aaa accounting update periodic N` | `[aaa.accounting] enabled, interim_interval_s` |
//! | `aaa server radius dynamic-author`, `client A server-key K`, `port 3799` | `[aaa.dae]`, `[[aaa.dae.clients]]` |
//!
//! All defaults are in [`defaults`]. Secrets are [`Secret`]s: never printed by `Debug`,
//! `Display` or serialization.
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Every default of the section, in one place.
pub mod defaults {
    use std::time::Duration;
    /// IOS `radius-server retransmit` default.
    pub const RETRANSMIT: u8 = 3;
    /// IOS `radius-server timeout` default.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// IOS `radius-server deadtime` default: servers are never marked dead.
    pub const DEADTIME: Duration = Duration::ZERO;
    pub const AUTH_PORT: u16 = super::super::wire::AUTH_PORT;
    pub const ACCT_PORT: u16 = super::super::wire::ACCT_PORT;
    pub const DAE_PORT: u16 = super::super::wire::DAE_PORT;
    /// UDP source ports: each gives every server 256 more identifiers in flight.
    pub const SOURCE_PORTS: u8 = 4;
    /// Authorizations waiting for a free identifier before new ones are refused.
    pub const AUTH_QUEUE_LIMIT: usize = 16_384;
    /// Authorizations in flight at once: pipelined, but not more than a server's socket
    /// buffer takes in one burst. Measured against FreeRADIUS 3.2 (default buffers, 2
    /// threads): 64 in flight gave ~38 000/s and no loss, 256 lost ~60 of 50 000 to its
    /// full receive buffer and the retransmissions halved the rate.
    pub const AUTH_WINDOW: usize = 64;
    /// Accounting records kept until acknowledged (the oldest Interim-Update goes first).
    pub const ACCT_QUEUE_LIMIT: usize = 100_000;
    /// Accounting records in flight at once (same reasoning as `AUTH_WINDOW`).
    pub const ACCT_WINDOW: usize = 64;
    /// Wait before a record that no server acknowledged is tried again.
    pub const ACCT_RETRY: Duration = Duration::from_secs(10);
    /// RFC 5176 §3.5 suggests 300 s for the Event-Timestamp window.
    pub const DAE_WINDOW: Duration = Duration::from_secs(300);
    /// NAS-Port-Type Wireless-802.11 (RFC 2865 §5.41 as extended by IANA): the seeds' access.
    pub const NAS_PORT_TYPE: u32 = 19;
}

/// A shared secret. Debug, Display and Serialize print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Calling-Station-Id format of a MAC (IOS `radius-server attribute 31 mac format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MacFormat {
    /// `0024.d78e.21a4` (IOS `default`).
    #[serde(alias = "default")]
    Cisco,
    /// `00-24-D7-8E-21-A4` (RFC 3580 §3.21).
    Ietf,
    /// `00-24-d7-8e-21-a4` (seed 004).
    #[default]
    IetfLowerCase,
    /// `0024d78e21a4`.
    Unformatted,
    /// `0024D78E21A4`.
    UnformattedUpperCase,
    /// `00:24:d7:8e:21:a4`.
    ColonLowerCase,
}

impl MacFormat {
    pub fn format(self, m: &[u8; 6]) -> String {
        let lower = |sep: &str| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        match self {
            MacFormat::Cisco => format!(
                "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            MacFormat::Ietf => lower("-").to_uppercase(),
            MacFormat::IetfLowerCase => lower("-"),
            MacFormat::Unformatted => lower(""),
            MacFormat::UnformattedUpperCase => lower("").to_uppercase(),
            MacFormat::ColonLowerCase => lower(":"),
        }
    }
}

/// A MAC in any of the [`MacFormat`]s (or none): 12 hex digits, separators `-`, `:`, `.`.
pub fn parse_mac_any(s: &str) -> Option<[u8; 6]> {
    let hex: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b'-' | b':' | b'.'))
        .collect();
    if hex.len() != 12 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, pair) in hex.chunks(2).enumerate() {
        m[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(m)
}

/// What goes in User-Name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserName {
    /// The subscriber's NAI when it has one (DHCP client identifier), else its MAC.
    #[default]
    Nai,
    /// Always the MAC in `mac_format` (MAC authorization).
    Mac,
}

/// Durations are seconds in the file (fractions allowed).
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        if !s.is_finite() || !(0.0..=1e9).contains(&s) {
            return Err(serde::de::Error::custom(
                "must be a non-negative number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(s))
    }
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v.as_secs_f64())
    }
    pub mod opt {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
        pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// `[aaa]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AaaConfig {
    /// Ask the servers for subscriber profiles at attach (IOS `aaa authorization ipmobile`,
    /// `mn-profile-load-aaa`).
    pub authorization: bool,
    /// In failover order (IOS `aaa group server radius` member order).
    pub servers: Vec<Server>,
    pub retransmit: u8,
    #[serde(rename = "timeout_s", with = "secs")]
    pub timeout: Duration,
    /// A server that let a request time out is skipped this long (0: never skipped).
    #[serde(rename = "deadtime_s", with = "secs")]
    pub deadtime: Duration,
    pub source_ports: u8,
    pub nas_identifier: Option<String>,
    pub nas_ip_address: Option<Ipv4Addr>,
    pub nas_ipv6_address: Option<Ipv6Addr>,
    /// NAS-Port-Type value (RFC 2865 §5.41; 19 = Wireless-802.11, 15 = Ethernet).
    pub nas_port_type: u32,
    pub user_name: UserName,
    /// User-Password of authorization requests (default: the User-Name, as MAC authorization does).
    pub password: Option<Secret>,
    pub mac_format: MacFormat,
    /// Send a Message-Authenticator in every Access-Request (RFC 3579 §3.2; BlastRADIUS).
    pub message_authenticator: bool,
    /// Drop Access-Accept/Reject without a valid Message-Authenticator.
    pub require_message_authenticator: bool,
    /// Authorizations waiting before new ones are refused.
    pub queue_limit: usize,
    /// Authorizations in flight at once.
    pub window: usize,
    pub attributes: Attributes,
    pub accounting: Accounting,
    pub dae: Dae,
}

impl Default for AaaConfig {
    fn default() -> Self {
        AaaConfig {
            authorization: true,
            servers: Vec::new(),
            retransmit: defaults::RETRANSMIT,
            timeout: defaults::TIMEOUT,
            deadtime: defaults::DEADTIME,
            source_ports: defaults::SOURCE_PORTS,
            nas_identifier: None,
            nas_ip_address: None,
            nas_ipv6_address: None,
            nas_port_type: defaults::NAS_PORT_TYPE,
            user_name: UserName::default(),
            password: None,
            mac_format: MacFormat::default(),
            message_authenticator: true,
            require_message_authenticator: false,
            queue_limit: defaults::AUTH_QUEUE_LIMIT,
            window: defaults::AUTH_WINDOW,
            attributes: Attributes::default(),
            accounting: Accounting::default(),
            dae: Dae::default(),
        }
    }
}

/// `[[aaa.servers]]`: IOS `radius-server host`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub address: IpAddr,
    #[serde(default = "auth_port")]
    pub auth_port: u16,
    #[serde(default = "acct_port")]
    pub acct_port: u16,
    pub secret: Secret,
    /// Overrides of the global `timeout_s` / `retransmit` (IOS allows both per host).
    #[serde(default, rename = "timeout_s", with = "secs::opt")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retransmit: Option<u8>,
}
fn auth_port() -> u16 {
    defaults::AUTH_PORT
}
fn acct_port() -> u16 {
    defaults::ACCT_PORT
}

impl Server {
    pub fn auth_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.auth_port)
    }
    pub fn acct_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.acct_port)
    }
}

/// `[aaa.attributes]`: which optional attributes go into which requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attributes {
    /// Calling-Station-Id (31) in Access-Requests and accounting (IOS `attribute 31 send`).
    pub calling_station_id: bool,
    /// NAS-IP-Address (4), when `nas_ip_address` is set.
    pub nas_ip_address: bool,
    /// NAS-Identifier (32): IOS `attribute 32 include-in-access-req` / `include-in-accounting-req`.
    pub nas_identifier_access: bool,
    pub nas_identifier_accounting: bool,
    /// Event-Timestamp (55): IOS `attribute 55 access-request include` / `include-in-acct-req`.
    pub event_timestamp_access: bool,
    pub event_timestamp_accounting: bool,
    /// NAS-Port-Type (61).
    pub nas_port_type: bool,
    /// Framed-IP-Address (8) in accounting (IOS `attribute 8 include-in-access-req` is for access).
    pub framed_ip_address: bool,
    /// Vendor attributes (IOS `radius-server vsa send accounting` / `authentication`): our
    /// requests carry none of their own, so this only decides whether vendor attributes of the
    /// Access-Accept are used.
    pub vsa_authentication: bool,
    pub vsa_accounting: bool,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            calling_station_id: true,
            nas_ip_address: true,
            nas_identifier_access: true,
            nas_identifier_accounting: true,
            event_timestamp_access: false,
            event_timestamp_accounting: true,
            nas_port_type: true,
            framed_ip_address: true,
            vsa_authentication: true,
            vsa_accounting: true,
        }
    }
}

/// `[aaa.accounting]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accounting {
    /// Start/Interim-Update/Stop records (IOS `aaa accounting network ... start-stop`).
    pub enabled: bool,
    /// Interim-Update period; 0 sends none (IOS `aaa accounting update periodic`). An
    /// Acct-Interim-Interval in the Access-Accept overrides it per subscriber.
    #[serde(rename = "interim_interval_s", with = "secs")]
    pub interim_interval: Duration,
    pub queue_limit: usize,
    /// Records in flight at once.
    pub window: usize,
    /// Wait before a record that no server acknowledged is tried again.
    #[serde(rename = "retry_interval_s", with = "secs")]
    pub retry_interval: Duration,
    /// File that keeps undelivered records across restarts.
    pub spool: Option<PathBuf>,
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting {
            enabled: true,
            interim_interval: Duration::ZERO,
            queue_limit: defaults::ACCT_QUEUE_LIMIT,
            window: defaults::ACCT_WINDOW,
            retry_interval: defaults::ACCT_RETRY,
            spool: None,
        }
    }
}

/// `[aaa.dae]`: RFC 5176 server (IOS `aaa server radius dynamic-author`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dae {
    pub enabled: bool,
    /// Local address to listen on (default: all).
    pub listen: Option<IpAddr>,
    pub port: u16,
    /// Requests whose Event-Timestamp is further than this from our clock are dropped.
    #[serde(rename = "window_s", with = "secs")]
    pub window: Duration,
    pub require_event_timestamp: bool,
    pub require_message_authenticator: bool,
    pub clients: Vec<DaeClient>,
}

impl Default for Dae {
    fn default() -> Self {
        Dae {
            enabled: false,
            listen: None,
            port: defaults::DAE_PORT,
            window: defaults::DAE_WINDOW,
            require_event_timestamp: false,
            require_message_authenticator: false,
            clients: Vec::new(),
        }
    }
}

/// `[[aaa.dae.clients]]`: IOS `client A server-key K`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaeClient {
    pub address: IpAddr,
    pub secret: Secret,
}

struct Errs(Vec<ConfigError>);
impl Errs {
    fn err(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigError {
            path: format!("aaa.{}", path.into()),
            problem: problem.into(),
        });
    }
}

fn check_secret(e: &mut Errs, path: &str, s: &Secret) {
    if s.is_empty() {
        e.err(path, "must not be empty");
    } else if s.0.len() > 128 {
        e.err(path, "must be at most 128 characters");
    }
}

fn check_timeout(e: &mut Errs, path: &str, t: Duration) {
    if t < Duration::from_millis(10) || t > Duration::from_secs(1000) {
        e.err(path, "must be between 0.01 and 1000 seconds");
    }
}

impl AaaConfig {
    /// Parses a `[aaa]` table on its own (tests, tools); pmipd reads it inside its config.
    pub fn from_toml_str(text: &str) -> Result<AaaConfig, Vec<ConfigError>> {
        let cfg: AaaConfig = toml::from_str(text).map_err(|e| {
            vec![ConfigError {
                path: "aaa".into(),
                problem: e.to_string(),
            }]
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Every problem, each naming its key (`aaa.servers[1].secret: must not be empty`).
    pub fn check(&self) -> Result<(), Vec<ConfigError>> {
        let mut e = Errs(Vec::new());
        self.check_servers(&mut e);
        self.check_nas(&mut e);
        self.check_accounting(&mut e);
        self.check_dae(&mut e);
        if e.0.is_empty() {
            Ok(())
        } else {
            Err(e.0)
        }
    }

    fn check_servers(&self, e: &mut Errs) {
        if self.servers.is_empty() && (self.authorization || self.accounting.enabled) {
            e.err(
                "servers",
                "authorization and accounting need at least one server",
            );
        }
        let mut seen = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let p = format!("servers[{i}]");
            check_secret(e, &format!("{p}.secret"), &s.secret);
            if s.auth_port == 0 {
                e.err(format!("{p}.auth_port"), "must not be 0");
            }
            if s.acct_port == 0 {
                e.err(format!("{p}.acct_port"), "must not be 0");
            }
            if s.address.is_unspecified() || s.address.is_multicast() {
                e.err(format!("{p}.address"), "must be a unicast address");
            }
            if !seen.insert((s.address, s.auth_port)) {
                e.err(format!("{p}.address"), "server listed twice");
            }
            if let Some(t) = s.timeout {
                check_timeout(e, &format!("{p}.timeout_s"), t);
            }
            if s.retransmit.is_some_and(|r| r > 100) {
                e.err(format!("{p}.retransmit"), "must be at most 100");
            }
        }
        check_timeout(e, "timeout_s", self.timeout);
        if self.retransmit > 100 {
            e.err("retransmit", "must be at most 100");
        }
        if self.source_ports == 0 || self.source_ports > 64 {
            e.err("source_ports", "must be between 1 and 64");
        }
        if self.queue_limit == 0 {
            e.err("queue_limit", "must be at least 1");
        }
        if self.window == 0 || self.window > 65_536 {
            e.err("window", "must be between 1 and 65536");
        }
    }

    fn check_nas(&self, e: &mut Errs) {
        // RFC 2865 §4.1 / RFC 2866 §4.1: a request MUST identify the NAS.
        if self.nas_identifier.is_none()
            && self.nas_ip_address.is_none()
            && self.nas_ipv6_address.is_none()
        {
            e.err(
                "nas_identifier",
                "one of nas_identifier, nas_ip_address or nas_ipv6_address is needed (RFC 2865 §4.1)",
            );
        }
        if let Some(n) = &self.nas_identifier {
            if n.is_empty() || n.len() > 253 {
                e.err("nas_identifier", "must be 1 to 253 characters");
            }
        }
        if let Some(p) = &self.password {
            if p.0.len() > 128 {
                e.err("password", "must be at most 128 characters (RFC 2865 §5.2)");
            }
        }
    }

    fn check_accounting(&self, e: &mut Errs) {
        let a = &self.accounting;
        if a.queue_limit == 0 || a.queue_limit > 10_000_000 {
            e.err("accounting.queue_limit", "must be between 1 and 10000000");
        }
        if a.window == 0 || a.window > 65_536 {
            e.err("accounting.window", "must be between 1 and 65536");
        }
        if a.retry_interval < Duration::from_millis(10) {
            e.err("accounting.retry_interval_s", "must be at least 0.01");
        }
        if a.spool.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            e.err("accounting.spool", "must not be empty");
        }
    }

    fn check_dae(&self, e: &mut Errs) {
        let d = &self.dae;
        if d.enabled && d.clients.is_empty() {
            e.err(
                "dae.clients",
                "dynamic authorization needs at least one client",
            );
        }
        if d.enabled && d.port == 0 {
            e.err("dae.port", "must not be 0");
        }
        let mut seen = HashSet::new();
        for (i, c) in d.clients.iter().enumerate() {
            check_secret(e, &format!("dae.clients[{i}].secret"), &c.secret);
            if !seen.insert(c.address) {
                e.err(format!("dae.clients[{i}].address"), "client listed twice");
            }
        }
    }

    /// The retransmission count and timeout in force for server `i`.
    pub fn server_timing(&self, i: usize) -> (u8, Duration) {
        let s = self.servers.get(i);
        (
            s.and_then(|s| s.retransmit).unwrap_or(self.retransmit),
            s.and_then(|s| s.timeout).unwrap_or(self.timeout),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_004: &str = r#"
        nas_identifier = "MAG1"
        nas_ip_address = "10.8.22.15"
        retransmit = 2
        timeout_s = 3
        mac_format = "ietf-lower-case"
        [attributes]
        event_timestamp_access = true
        [[servers]]
        address = "203.0.113.115"
        auth_port = 1812
        acct_port = 1813
        secret = "aaacisco"
    "#;

    #[test]
    fn seed_004_radius_server_commands() {
        let c = AaaConfig::from_toml_str(SEED_004).unwrap();
        assert_eq!(c.retransmit, 2);
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(
            c.servers[0].auth_addr(),
            "203.0.113.115:1812".parse().unwrap()
        );
        assert_eq!(c.servers[0].secret.expose(), b"aaacisco");
        assert!(c.attributes.event_timestamp_access);
        assert_eq!(c.server_timing(0), (2, Duration::from_secs(3)));
    }

    #[test]
    fn secrets_never_printed() {
        let mut c = AaaConfig::from_toml_str(SEED_004).unwrap();
        c.password = Some(Secret::new("pw-123"));
        c.dae.clients.push(DaeClient {
            address: "10.0.0.9".parse().unwrap(),
            secret: Secret::new("dae-key"),
        });
        let dbg = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        let toml = toml::to_string(&c).unwrap();
        for out in [&dbg, &json, &toml] {
            for s in ["aaacisco", "pw-123", "dae-key"] {
                assert!(!out.contains(s), "{s} in {out}");
            }
            assert!(out.contains("<redacted>"));
        }
    }

    #[test]
    fn errors_name_the_key() {
        let text = r#"
            nas_identifier = "m"
            source_ports = 0
            [[servers]]
            address = "10.0.0.1"
            secret = "a"
            [[servers]]
            address = "10.0.0.2"
            secret = ""
            timeout_s = 0
            [[servers]]
            address = "10.0.0.1"
            secret = "b"
            [dae]
            enabled = true
        "#;
        let errs = AaaConfig::from_toml_str(text).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for want in [
            "aaa.servers[1].secret: must not be empty",
            "aaa.servers[1].timeout_s: must be between",
            "aaa.servers[2].address: server listed twice",
            "aaa.source_ports: must be between 1 and 64",
            "aaa.dae.clients: dynamic authorization needs at least one client",
        ] {
            assert!(s.iter().any(|e| e.starts_with(want)), "{want} not in {s:?}");
        }
        // The parser's own message (unknown key) names it too.
        let e = AaaConfig::from_toml_str("nas_identifer = \"x\"").unwrap_err();
        assert!(e[0].problem.contains("nas_identifer"), "{e:?}");
        // No NAS identification at all.
        let e = AaaConfig::from_toml_str("authorization = false\n[accounting]\nenabled = false")
            .unwrap_err();
        assert_eq!(e[0].path, "aaa.nas_identifier");
    }

    #[test]
    fn mac_formats() {
        let m = [0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
        let cases = [
            (MacFormat::Cisco, "0024.d78e.21a4"),
            (MacFormat::Ietf, "00-24-D7-8E-21-A4"),
            (MacFormat::IetfLowerCase, "00-24-d7-8e-21-a4"),
            (MacFormat::Unformatted, "0024d78e21a4"),
            (MacFormat::UnformattedUpperCase, "0024D78E21A4"),
            (MacFormat::ColonLowerCase, "00:24:d7:8e:21:a4"),
        ];
        for (f, s) in cases {
            assert_eq!(f.format(&m), s);
            assert_eq!(parse_mac_any(s), Some(m));
        }
        for bad in [
            "",
            "0024.d78e.21a",
            "0024.d78e.21a4.00",
            "zz24d78e21a4",
            "+024d78e21a4",
        ] {
            assert_eq!(parse_mac_any(bad), None, "{bad}");
        }
        let c: AaaConfig = toml::from_str("mac_format = \"default\"").unwrap();
        assert_eq!(c.mac_format, MacFormat::Cisco);
    }
}
