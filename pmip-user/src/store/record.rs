//! The durable records: keys by role, and values as JSON with a version.
//!
//! ```text
//!  key (path)                         value (JSON)
//!  node                               {"v":1,"kind":"node","restart_counter":...}
//!  access/<ifindex>/<vlan>/<mac>      {"v":1,"kind":"access",...}   MAG, PMA: one per attachment
//!  lma/<binding id>                   {"v":1,"kind":"anchor",...}   LMA: id = uplink GRE key
//!  ha/<nai>                           {"v":1,"kind":"anchor",...}   HA: one binding per NAI
//! ```
//! Times are wall-clock milliseconds since the Unix epoch (`*_ms`), so a
//! record means the same after a restart, whatever the monotonic clock did.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::dataplane::{AccessPoint, Held, Hnp};

/// Version of the record encoding; a record of another version is skipped.
pub const VERSION: u32 = 1;

/// What a record is filed under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// The node's own state (restart counter).
    Node,
    /// Access side (MAG, PMA): the subscriber's attachment.
    Access(AccessPoint),
    /// LMA: the binding id (also its uplink GRE key and counters index).
    Binding(u32),
    /// HA: the subscriber's NAI (one mobility binding per NAI).
    Nai(String),
}

impl RecordKey {
    /// The key as a path: what the embedded store files it under and a
    /// distributed one would use (prefix by node for a shared keyspace).
    pub fn path(&self) -> String {
        match self {
            RecordKey::Node => "node".into(),
            RecordKey::Access(a) => format!(
                "access/{}/{}/{}",
                a.ifindex,
                a.vlan,
                a.mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            RecordKey::Binding(id) => format!("lma/{id}"),
            RecordKey::Nai(n) => format!("ha/{n}"),
        }
    }

    /// The inverse of [`RecordKey::path`].
    pub fn from_path(p: &str) -> Option<RecordKey> {
        if p == "node" {
            return Some(RecordKey::Node);
        }
        let (kind, rest) = p.split_once('/')?;
        match kind {
            "access" => {
                let mut f = rest.splitn(3, '/');
                let ifindex = f.next()?.parse().ok()?;
                let vlan = f.next()?.parse().ok()?;
                let mac = crate::mac::parse_mac(f.next()?)?;
                Some(RecordKey::Access(AccessPoint { ifindex, vlan, mac }))
            }
            "lma" => rest.parse().ok().map(RecordKey::Binding),
            "ha" if !rest.is_empty() => Some(RecordKey::Nai(rest.to_string())),
            _ => None,
        }
    }
}

/// Which protocol wrote a binding record (a store reused under another
/// protocol does not restore it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Pmipv6,
    Pmipv4,
}

/// A record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Node(NodeRecord),
    Access(AccessRecord),
    Anchor(AnchorRecord),
}

/// The node's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// RFC 5847 §5.2 restart counter in use.
    pub restart_counter: u32,
}

/// An IPv6 home network prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnpRecord {
    pub prefix: Ipv6Addr,
    pub len: u8,
}

impl From<Hnp> for HnpRecord {
    fn from(h: Hnp) -> Self {
        HnpRecord {
            prefix: h.prefix,
            len: h.len,
        }
    }
}
impl From<HnpRecord> for Hnp {
    fn from(h: HnpRecord) -> Self {
        Hnp {
            prefix: h.prefix,
            len: h.len,
        }
    }
}

/// An access gateway's registered subscriber (MAG or PMA), written when the
/// anchor accepts a registration or refresh, deleted when it ends. It holds
/// what the subscriber was told (home address, router, lease = lifetime,
/// ending at `expires_ms`) and what the next refresh needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub proto: Proto,
    pub nai: String,
    /// The anchor the binding is registered with now.
    pub anchor: IpAddr,
    /// The primary anchor and the alternate, as the profile gave them.
    pub primary: IpAddr,
    #[serde(default)]
    pub alternate: Option<IpAddr>,
    pub sub_id: u32,
    /// GRE keys: the one this gateway receives with, and the anchor's.
    pub downlink_key: u32,
    pub uplink_key: u32,
    #[serde(default)]
    pub home_v4: Option<Ipv4Addr>,
    /// Prefix length of the home address (0: the access link's).
    #[serde(default)]
    pub home_v4_len: u8,
    #[serde(default)]
    pub router_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub hnp: Option<HnpRecord>,
    /// What the registration asked for.
    pub want_v4: bool,
    pub want_v6: bool,
    #[serde(default)]
    pub static_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub apn: Option<String>,
    #[serde(default)]
    pub imsi: Option<String>,
    #[serde(default)]
    pub interface_id: Option<Vec<u8>>,
    /// Granted lifetime (the DHCP lease given), its end, and the next refresh.
    pub lifetime_s: u32,
    pub expires_ms: u64,
    pub refresh_ms: u64,
    /// Replay state of the last request: the RFC 5213 timestamp (PMIPv6) or
    /// the RFC 3344 Identification (PMIPv4); and the PBU sequence number.
    pub last_ident: u64,
    #[serde(default)]
    pub seq: u16,
    /// Access Technology Type of the attachment's interface (MAG), if it
    /// names its own.
    #[serde(default)]
    pub att: Option<u8>,
    /// The anchor's last reply allowed revocation (PMA, RFC 3543 §3.2).
    #[serde(default)]
    pub anchor_revocation: bool,
    /// The profile the operator's AAA authorized the subscriber with (issue
    /// 14); none for a local profile. Absent from records of earlier builds.
    #[serde(default)]
    pub aaa: Option<Box<AaaProfile>>,
    /// The subscriber left and the gateway is telling the anchor (a
    /// deregistration or a revocation it started, not answered yet): a
    /// restarted gateway finishes it instead of leaving the anchor a
    /// binding until its lifetime ends. Nothing is installed for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

/// What an Access-Accept gave a subscriber (merged over the interface's
/// default profile, `daemon/aaa/profile.rs`), kept so that a restarted
/// gateway serves it the same: its lease, DNS, Session-Timeout and interim
/// interval, not the local profile's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AaaProfile {
    /// The merged profile's name (`radius+<default>`).
    pub name: String,
    /// Peer names of the anchor and the alternate.
    pub anchor: Option<String>,
    pub alternate: Option<String>,
    /// Framed-IP-Address (static home address).
    pub home_address: Option<Ipv4Addr>,
    pub apn: Option<String>,
    pub pool: Option<String>,
    /// `mn-service=` (ipv4, ipv6, dual).
    pub service: Option<String>,
    pub dns: Vec<Ipv4Addr>,
    pub dns6: Vec<Ipv6Addr>,
    /// Accounting's User-Name and the Class attributes it echoes.
    pub user_name: String,
    pub class: Vec<Vec<u8>>,
    /// Acct-Interim-Interval, seconds.
    pub interim_s: Option<u32>,
    /// Session-Timeout, seconds, and when it started (wall ms): the session
    /// ends at the same moment whatever restarts come between.
    pub session_timeout_s: Option<u32>,
    pub session_start_ms: u64,
}

impl AaaProfile {
    /// How much of its Session-Timeout is left at `now` (`None`: it has none).
    pub fn session_left(&self, now: std::time::SystemTime) -> Option<std::time::Duration> {
        let t = u64::from(self.session_timeout_s.filter(|s| *s > 0)?);
        let end = self.session_start_ms.saturating_add(t * 1000);
        Some(std::time::Duration::from_millis(
            end.saturating_sub(super::wall_ms(now)),
        ))
    }

    /// The registration lifetime to ask for: the configured one, or less when
    /// the Session-Timeout ends sooner (RADIUS Session-Timeout as the binding
    /// lifetime, issue 14: a binding the access gateway can no longer end
    /// itself still ends at the anchor when the session would have). At
    /// least one second: the session's end deregisters, not a zero lifetime.
    pub fn bound_lifetime(
        aaa: Option<&AaaProfile>,
        configured: std::time::Duration,
        now: std::time::SystemTime,
    ) -> std::time::Duration {
        match aaa.and_then(|a| a.session_left(now)) {
            Some(left) => configured.min(left.max(std::time::Duration::from_secs(1))),
            None => configured,
        }
    }
}

/// An anchor's binding (LMA or HA), written when it is created, refreshed
/// or handed over, deleted when it ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    pub proto: Proto,
    pub nai: String,
    /// MN link-layer identifier from the registration (LMA; may be empty).
    #[serde(default)]
    pub llid: Vec<u8>,
    /// The access gateway and, over IPv4/UDP, the port its requests came from.
    pub peer: IpAddr,
    #[serde(default)]
    pub peer_port: u16,
    pub sub_id: u32,
    pub uplink_key: u32,
    pub downlink_key: u32,
    #[serde(default)]
    pub home_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub home_v4_len: u8,
    /// The home address came from the pool (HA: return it there at the end).
    #[serde(default)]
    pub from_pool: bool,
    #[serde(default)]
    pub hnp: Option<HnpRecord>,
    /// Access technology type of the last PBU (LMA).
    #[serde(default)]
    pub att: Option<u8>,
    pub lifetime_s: u32,
    pub expires_ms: u64,
    /// Replay state: the last accepted timestamp (LMA) or Identification (HA).
    pub last_ident: u64,
    /// The access gateway advertised revocation support (HA, RFC 3543).
    #[serde(default)]
    pub revocable: bool,
    /// Sequence number of the last accepted PBU (LMA, RFC 5213 §5.5 without
    /// timestamps).
    #[serde(default)]
    pub last_seq: u16,
    /// LMA: a revocation in progress (RFC 5846 §8.1) and its trigger: the
    /// entry is kept, with no forwarding, until the BRA or the BRI's last
    /// retransmission; after a restart the BRI is sent again. Absent from
    /// the stored form otherwise (and from the compact one: such a record
    /// is written as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoking: Option<u8>,
    /// HA: Registration Revocations in progress for this NAI's home
    /// address (RFC 3543 §4.2.2.1), each to a PMA and retransmitted until a
    /// time (ms since the epoch): a restarted HA sends them again rather
    /// than leave a PMA holding a binding the HA let go. Absent from the
    /// stored form otherwise (and from the compact one: such a record is
    /// written as JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ha_revocations: Vec<(Ipv4Addr, u64)>,
    /// HA: the binding itself is gone (an operator released it); the
    /// record stays for its `ha_revocations` alone and restores no binding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

#[derive(Serialize, Deserialize)]
struct Versioned<'a> {
    v: u32,
    #[serde(flatten)]
    r: std::borrow::Cow<'a, Record>,
}

/// The stored form of a record: JSON with a version field.
pub fn encode(r: &Record) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        v: VERSION,
        r: std::borrow::Cow::Borrowed(r),
    })
    .unwrap_or_default()
}

/// The compact form (version 2, `compact.rs`): an anchor's binding record
/// in about 80 bytes instead of about 370 of JSON, every other record JSON.
/// [`decode`] reads both. The stores still write [`encode`]'s JSON: the
/// compact form did not lower etcd's CPU per put measurably (BENCHMARKS.md
/// "CPU per binding"), and a build that reads it must be everywhere before
/// one writes it (a rolling upgrade, a downgrade).
pub fn encode_compact(r: &Record) -> Vec<u8> {
    match r {
        Record::Anchor(a) => super::compact::emit(a).unwrap_or_else(|| encode(r)),
        _ => encode(r),
    }
}

/// A stored record, or why it cannot be used.
pub fn decode(b: &[u8]) -> Result<Record, String> {
    if b.first() == Some(&super::compact::TAG) {
        return super::compact::parse(b).map(Record::Anchor);
    }
    let v: Versioned<'static> = serde_json::from_slice(b).map_err(|e| e.to_string())?;
    if v.v != VERSION {
        return Err(format!(
            "record version {} (this build reads {VERSION})",
            v.v
        ));
    }
    Ok(v.r.into_owned())
}

/// What a registrar rebuilt from the store at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Bindings taken up again.
    pub bindings: usize,
    /// Records dropped: expired, or unusable with this configuration.
    pub dropped: usize,
    /// The ids, keys, addresses and prefixes the restored bindings hold:
    /// every other entry of the pinned maps belongs to no one.
    pub holds: Held,
}
