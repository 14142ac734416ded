//! What the daemon asks of a registrar and hears back, whatever the
//! protocol: the access side's glue (DHCP, ARP, new MACs) talks to a MAG or a
//! PMA, and the anchor runner to an LMA or an HA, through these types only.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::dataplane::{AccessPoint, Hnp};

/// A subscriber appeared on an access link and has a profile: register it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    pub at: AccessPoint,
    /// The subscriber's identity (NAI; with a default profile, built from the MAC).
    pub nai: String,
    /// The anchor to register with, and the alternate one (StarOS
    /// `mobile-ip home-agent <addr> alternate`).
    pub anchor: IpAddr,
    pub alternate: Option<IpAddr>,
    /// IPv4 home address wanted (RFC 5844) / IPv6 home network prefix wanted.
    pub ipv4: bool,
    pub ipv6: bool,
    /// The profile's static home address.
    pub static_v4: Option<Ipv4Addr>,
    /// The address the subscriber asks for (DHCP requested address, or the
    /// source of its data after a move): a hint, the anchor decides.
    pub requested_v4: Option<Ipv4Addr>,
    /// `requested_v4` is a DHCP client's (option 50, its last address):
    /// refused, any address will do (RFC 5844 §3.2.3.2). Not so for the
    /// source of data from a MAC that moved in: that is the address in
    /// use, and a refusal means it is not the subscriber's.
    pub requested_hint: bool,
    /// Service selection (APN).
    pub apn: Option<String>,
    pub imsi: Option<String>,
    /// Access interface name, for the PMIPv4 Interface ID extension.
    pub interface_id: Option<Vec<u8>>,
    /// The access interface's technology: PMIPv6 Access Technology Type
    /// (RFC 5213 §8.5) / PMIPv4 Access Technology Type extension (draft §5.5).
    pub access_tech: Option<u8>,
    /// The profile the operator's AAA gave (issue 14): the registrar keeps
    /// it in the binding's store record and hands it back at a restart.
    pub aaa: Option<Box<crate::store::AaaProfile>>,
}

impl AttachRequest {
    /// An IPv4 subscriber's attach with nothing else asked for: what the
    /// simulations, the integration tests and the benches' drivers send.
    pub fn ipv4(at: AccessPoint, nai: impl Into<String>, anchor: impl Into<IpAddr>) -> Self {
        AttachRequest {
            at,
            nai: nai.into(),
            anchor: anchor.into(),
            alternate: None,
            ipv4: true,
            ipv6: false,
            static_v4: None,
            requested_v4: None,
            requested_hint: false,
            apn: None,
            imsi: None,
            interface_id: None,
            access_tech: None,
            aaa: None,
        }
    }
}

/// Requests to an access registrar (MAG, PMA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessCommand {
    Attach(AttachRequest),
    /// The subscriber left: remove its forwarding state and deregister.
    Detach(AccessPoint),
    /// Shutdown: every subscriber leaves (a MAG revoking at an LMA sends one
    /// global BRI for all of them, RFC 5846).
    DetachAll,
    /// The operator's AAA changed what the subscriber was authorized with (a
    /// CoA-Request, RFC 5176): keep it with the binding, so that its record
    /// (and a restarted gateway) carries the change.
    UpdateAaa {
        at: AccessPoint,
        aaa: Box<crate::store::AaaProfile>,
    },
    /// The answer to [`AccessEvent::CheckPresence`]: whether the subscriber
    /// answered on its access link.
    Presence {
        at: AccessPoint,
        present: bool,
    },
    /// The operator's administrative action on subscriber `nai` (`pmipctl
    /// clear binding`): what the anchor refused it "until an administrative
    /// action is taken" (RFC 5213 §6.9.1.2) is forgotten.
    ForgetRefusals {
        nai: String,
    },
    /// A reload changed what the registrar may take while it runs (see
    /// [`Reconfig`]).
    Reconfigure(Reconfig),
}

/// The registrar's configuration as a reload built it from the new file
/// (`daemon/reload.rs`): the running registrar takes what may change while
/// it runs and keeps the rest — a PMA and an HA their keys (the peers'
/// FA-HA associations and the per-MN ones), an LMA and an HA the
/// subscriber profiles (what new registrations get). A MAG has nothing
/// of the kind (its signaling's ESP keys are the transport's) and is never
/// sent one. Compared by identity (the configurations are large).
#[derive(Clone, Debug)]
pub enum Reconfig {
    Lma(std::sync::Arc<crate::pmipv6::lma::LmaConfig>),
    Pma(std::sync::Arc<crate::pmipv4::pma::PmaConfig>),
    Ha(std::sync::Arc<crate::pmipv4::ha::HaConfig>),
}

impl PartialEq for Reconfig {
    fn eq(&self, other: &Self) -> bool {
        use std::sync::Arc;
        match (self, other) {
            (Reconfig::Lma(a), Reconfig::Lma(b)) => Arc::ptr_eq(a, b),
            (Reconfig::Pma(a), Reconfig::Pma(b)) => Arc::ptr_eq(a, b),
            (Reconfig::Ha(a), Reconfig::Ha(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Reconfig {}

/// Why a registration did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The anchor refused with this code (PBA status / registration reply code).
    Rejected(u8),
    /// No answer after every retransmission.
    Timeout,
    /// No usable anchor (unknown, refused us earlier, no address of its family).
    AnchorUnavailable,
    /// The answer lacked something we need (uplink GRE key, home address).
    BadReply,
    /// No id or key left.
    NoResources,
}

/// Why a binding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoneCause {
    /// We deregistered it (detach, release).
    Deregistered,
    /// Its lifetime ran out unrenewed.
    Expired,
    /// The anchor revoked it (RFC 5846 trigger, or RFC 3543 revocation).
    Revoked(u8),
}

/// Outcomes an access registrar reports, keyed by the subscriber's access point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessEvent {
    /// Registration (or refresh) accepted: hand these to the subscriber.
    Registered {
        at: AccessPoint,
        home_v4: Option<(Ipv4Addr, u8)>,
        /// The anchor's IPv4 default router for the subscriber (RFC 5844 §3.4.1), if given.
        router_v4: Option<Ipv4Addr>,
        hnp: Option<Hnp>,
        lifetime: Duration,
    },
    /// A refresh accepted with nothing changed: the binding now lasts
    /// `lifetime` from here (an IPv6 link re-advertises the prefix with it).
    Refreshed {
        at: AccessPoint,
        lifetime: Duration,
    },
    Failed {
        at: AccessPoint,
        reason: FailReason,
    },
    Gone {
        at: AccessPoint,
        cause: GoneCause,
    },
    /// At start: a binding of an earlier run taken up again from the store.
    /// The access side learns the subscriber (its NAI) and hands its lease
    /// back to the DHCP server (`left` of `lifetime` to run).
    Restored {
        at: AccessPoint,
        nai: String,
        home_v4: Option<(Ipv4Addr, u8)>,
        router_v4: Option<Ipv4Addr>,
        hnp: Option<Hnp>,
        lifetime: Duration,
        left: Duration,
        /// What the AAA gave at attach, from the record.
        aaa: Option<Box<crate::store::AaaProfile>>,
    },
    /// Is the subscriber still on its access link? (RFC 5846 §9.1: told
    /// that it moved to another gateway, the access gateway checks.) The
    /// access side answers with [`AccessCommand::Presence`].
    CheckPresence {
        at: AccessPoint,
    },
}

/// Requests to an anchor registrar (LMA, HA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorCommand {
    /// Operator release (`pmipctl clear binding`): remove the binding and
    /// tell the access gateway (RFC 5846 BRI / RFC 3543 revocation).
    Release { nai: String },
    /// Operator release of every binding through one access gateway, or of
    /// those of one realm there (`pmipctl clear bindings --peer`): the
    /// PMIPv6 LMA sends one global BRI (RFC 5846 §8.1), the PMIPv4 HA one
    /// revocation per binding (RFC 3543 has no bulk form).
    ReleasePeer { peer: IpAddr, realm: Option<String> },
    /// As [`AccessCommand::Reconfigure`].
    Reconfigure(Reconfig),
}

/// Whether the NAI `nai` is of `realm`: the part after its last '@' is it,
/// without regard to case (RFC 4282 realms are DNS names). "a@example.com"
/// is of "example.com", "a@foo.example.com" is not (RFC 5846 §8.1's
/// example).
pub fn in_realm(nai: &[u8], realm: &[u8]) -> bool {
    nai.iter()
        .rposition(|&c| c == b'@')
        .is_some_and(|i| nai[i + 1..].eq_ignore_ascii_case(realm))
}

/// What happened to an anchor's bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorEvent {
    Created {
        nai: String,
        peer: IpAddr,
    },
    Moved {
        nai: String,
        from: IpAddr,
        to: IpAddr,
    },
    Removed {
        nai: String,
        cause: GoneCause,
    },
}

/// One binding as a registrar knows it (both roles), for `show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingSummary {
    pub nai: String,
    /// Where the subscriber is (access side).
    pub at: Option<AccessPoint>,
    /// Its link-layer identifier as signaled (anchor side: the MAC, if sent).
    pub llid: Vec<u8>,
    pub state: BindingState,
    /// The peer gateway: the anchor (access side) or the access gateway (anchor side).
    pub peer: IpAddr,
    pub home_v4: Option<(Ipv4Addr, u8)>,
    pub hnp: Option<Hnp>,
    pub uplink_key: u32,
    pub downlink_key: u32,
    /// Granted lifetime, and what is left of it.
    pub lifetime: Duration,
    pub left: Option<Duration>,
    pub sub_id: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingState {
    Registering,
    Active,
    Deregistering,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Registering => "REGISTERING",
            BindingState::Active => "ACTIVE",
            BindingState::Deregistering => "DEREGISTERING",
        }
    }
}

/// A signaling peer as the heartbeat sees it (RFC 5847), for `show tunnels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSummary {
    pub peer: IpAddr,
    /// `Some(true)` answering heartbeats, `Some(false)` after
    /// MISSING_HEARTBEATS_ALLOWED misses, `None` before the first answer.
    pub reachable: Option<bool>,
    /// The peer's Restart Counter (RFC 5847 §5.2), once heard.
    pub restart_counter: Option<u32>,
}

/// Named counters (a serde struct of integers, flattened).
pub type Counters = BTreeMap<String, u64>;

/// A transport's counter (`show stats`, `<role> transport`): datagrams the
/// kernel dropped at its signaling sockets, mostly for a full receive
/// buffer (`signaling.receive_buffer_kib`; `sys::socket::socket_drops`).
pub const RX_SOCKET_DROPS: &str = "rx_socket_drops";

/// The integer fields of a serde struct, by name.
pub fn counters_of<T: serde::Serialize>(c: &T) -> Counters {
    let mut m = Counters::new();
    if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(c) {
        for (k, v) in o {
            if let Some(n) = v.as_u64() {
                m.insert(k, n);
            }
        }
    }
    m
}
