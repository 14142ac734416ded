//! Proxy Mobility Agent: the access side (PMIP client and FA collocated, draft §7).
//!
//! Per subscriber (keyed by NAI): attach → Proxy Registration Request (HoA 0.0.0.0 or the
//! profile's static one, CoA = this PMA, D = 0, G and T set, NAI, PMIPv4 extensions, our
//! downlink GRE key, FA-HA authentication) → accepted reply → `InstallAccess` and a
//! [`PmaEvent::Registered`] carrying the home address for the access side (DHCP).
//! Renewal at `renew_percent` of the granted lifetime (seed 000 `renew-percent-time`),
//! retransmission every `retransmission_timeout_ms` up to `max_retransmissions`, failover
//! to the alternate HA (seed 000 `ha-failover`), deregistration on detach, 149/150 stop use
//! of that HA (draft §8.1), revocation from the HA → clean up and acknowledge (RFC 3543).
//! Only attached subscribers are ever re-registered (draft §4.4).
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use super::auth::{self, IdentGen, MnHaKeys, PeerKeys};
use super::transport::signed;
use super::wire::ext::{device_id_types, AccessTech, AuthKind, AuthMethod, ExtList as _, ExtRepr};
use super::wire::{Message, RegistrationRequestRepr, ReplyCode, RrqFlags};
use crate::agent::{Clock, IdAlloc, Transmit};
use crate::dataplane::{AccessBinding, AccessPoint, DpCommand};

mod endpoint;
mod outage;
mod persist;
mod redirect;
mod reply;
mod revoke;

/// HA failover (seed 000: `proxy-mip ha-failover [max-attempts | num-attempts-before-switching
/// | timeout]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaFailover {
    pub enabled: bool,
    /// Attempts (first send included) across both HAs before giving up.
    pub max_attempts: u32,
    /// Unanswered attempts on one HA before switching to the other.
    pub num_attempts_before_switching: u32,
    /// Retransmission timeout while failover is enabled (seed 000 `ha-failover timeout`);
    /// `None` keeps `retransmission_timeout_ms`.
    pub timeout_ms: Option<u64>,
}

impl Default for HaFailover {
    fn default() -> Self {
        HaFailover {
            enabled: false,
            max_attempts: 4,
            num_attempts_before_switching: 2,
            timeout_ms: None,
        }
    }
}

/// A home agent this PMA may register with, and the FA-HA association with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaPeer {
    pub address: Ipv4Addr,
    /// FA-HA: what we sign with, and what we also accept (a key rollover).
    pub sa: PeerKeys,
}

/// PMA configuration; defaults follow the StarOS FA service (seed 000).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmaConfig {
    /// Our address: source of signaling, care-of address and tunnel end.
    pub address: Ipv4Addr,
    /// Requested registration lifetime (StarOS `advertise reg-lifetime`, 600 s).
    pub lifetime_s: u16,
    /// Renew after this percentage of the granted lifetime (`renew-percent-time`, 75).
    pub renew_percent: u8,
    /// `proxy-mip retransmission-timeout` (3 s).
    pub retransmission_timeout_ms: u64,
    /// `proxy-mip max-retransmissions` (5).
    pub max_retransmissions: u32,
    /// Ceiling of the back-off once a registered subscriber's renewal has
    /// used its retransmissions (it goes on until its lifetime ends), and
    /// of the hold-down of an HA that refused us.
    pub retransmission_max_ms: u64,
    pub ha_failover: HaFailover,
    /// FA-HA associations, one per HA (seed 000: FA-HA SPIs are mandatory for proxy MIP).
    pub home_agents: Vec<HaPeer>,
    /// Per-MN associations (`[[mn_ha]]`): a subscriber whose NAI has one is
    /// registered per MN — an MN-HA extension, then the FA-HA one, and no
    /// Per-Node Authentication Method (draft §4.3, §5.1).
    pub mn_ha: MnHaKeys,
    /// Advertise Registration Revocation support (RFC 3543 §3.2).
    pub revocation_support: bool,
    /// Access Technology Type extension value, if known (draft §5.5).
    pub access_technology: Option<AccessTech>,
    /// First downlink GRE key handed out.
    pub downlink_key_base: u32,
    /// HAs we revoke bindings at when a device leaves (RFC 3543 §5, when the
    /// HA advertised Revocation Support) instead of deregistering.
    pub revoke_to: HashSet<std::net::IpAddr>,
    /// HAs asked to assign a home agent dynamically (RFC 4433): configured
    /// with `dynamic_ha`, or an anchor cluster's address that redirects.
    pub dynamic_has: HashSet<std::net::IpAddr>,
}

fn d_lifetime() -> u16 {
    600
}
fn d_renew() -> u8 {
    75
}
fn d_rto() -> u64 {
    3000
}
fn d_retx() -> u32 {
    5
}
fn d_key_base() -> u32 {
    1
}

impl PmaConfig {
    /// A configuration with seed-000 defaults.
    pub fn new(address: Ipv4Addr, home_agents: Vec<HaPeer>) -> Self {
        PmaConfig {
            address,
            lifetime_s: d_lifetime(),
            renew_percent: d_renew(),
            retransmission_timeout_ms: d_rto(),
            max_retransmissions: d_retx(),
            retransmission_max_ms: 32_000,
            ha_failover: HaFailover::default(),
            home_agents,
            mn_ha: MnHaKeys::default(),
            revocation_support: true,
            access_technology: None,
            downlink_key_base: d_key_base(),
            revoke_to: HashSet::new(),
            dynamic_has: HashSet::new(),
        }
    }
}

/// A subscriber as the access side knows it after access authentication (draft §7: NAI,
/// HA address from the profile/AAA, optional static home address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    pub nai: String,
    pub at: AccessPoint,
    /// Where to send the PRRQ.
    pub home_agent: Ipv4Addr,
    /// Seed 000 `mobile-ip home-agent <addr> alternate`.
    pub alternate_ha: Option<Ipv4Addr>,
    /// Ask the HA to assign itself (RFC 4433 §3.2: HA field 255.255.255.255).
    pub dynamic_ha: bool,
    pub static_home: Option<Ipv4Addr>,
    pub imsi: Option<String>,
    pub interface_id: Option<Vec<u8>>,
    /// The access interface's technology (draft §5.5), else the PMA's.
    pub access_tech: Option<AccessTech>,
    /// The AAA's profile, kept in the record (issue 14).
    pub aaa: Option<Box<crate::store::AaaProfile>>,
}

impl Subscriber {
    pub fn new(nai: &str, at: AccessPoint, home_agent: Ipv4Addr) -> Self {
        Subscriber {
            nai: nai.to_string(),
            at,
            home_agent,
            alternate_ha: None,
            dynamic_ha: false,
            static_home: None,
            imsi: None,
            interface_id: None,
            access_tech: None,
            aaa: None,
        }
    }
}

/// A PMA session as `show bindings` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmaSessionInfo {
    pub nai: String,
    pub at: AccessPoint,
    pub sub_id: u32,
    pub state: &'static str,
    pub ha: Ipv4Addr,
    pub home: Option<Ipv4Addr>,
    pub downlink_key: u32,
    pub uplink_key: Option<u32>,
    pub lifetime_left: Option<std::time::Duration>,
}

/// What the PMA tells the access side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PmaEvent {
    /// Registration (or renewal) accepted: hand `home_address` to the device (DHCP yiaddr).
    Registered {
        nai: String,
        home_address: Ipv4Addr,
        lifetime: u16,
        ha: Ipv4Addr,
        renewal: bool,
    },
    /// Registration gave up: `code` is the HA's denial, `None` after timeouts.
    RegistrationFailed {
        nai: String,
        code: Option<ReplyCode>,
    },
    /// Registration lifetime ran out without a successful renewal.
    Expired { nai: String },
    /// The HA revoked the binding (handover to another PMA, RFC 3543).
    Revoked { nai: String },
    /// Deregistration finished (or gave up).
    Deregistered { nai: String },
    /// A binding of an earlier run taken up again from the store.
    Restored {
        nai: String,
        home_address: Ipv4Addr,
        lifetime: Duration,
        left: Duration,
        aaa: Option<Box<crate::store::AaaProfile>>,
    },
}

/// One counter per outcome and per error reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PmaCounters {
    pub requests_sent: u64,
    /// Renewals accepted with Lifetime 0: the HA deregistered the MN, the
    /// binding ended at once (RFC 5944 §3.4, §3.7.3.2).
    pub ended_by_zero_lifetime: u64,
    pub retransmissions: u64,
    pub accepted: u64,
    pub denied: u64,
    pub ident_mismatch_resync: u64,
    pub ha_refused_pmip: u64,
    pub ha_failovers: u64,
    pub registration_timeouts: u64,
    /// Renewals the HA denied (the registration runs out its lifetime).
    pub renewal_denied: u64,
    pub expired: u64,
    pub deregistrations: u64,
    pub revocations: u64,
    pub revocations_stale: u64,
    pub rx_malformed: u64,
    pub rx_unknown_peer: u64,
    /// Messages discarded for an extension of type 0–127 we do not know
    /// (RFC 3344 §1.9).
    pub unknown_nonskippable: u64,
    pub rx_auth_failed: u64,
    /// Of those, replies whose MN-HA extension (per MN) was missing or bad.
    pub rx_mn_ha_failed: u64,
    /// Replies/revocations failing FA-HA authentication, logged (RFC 3344 §3.7.3.1).
    pub security_exceptions_logged: u64,
    pub revocations_sent: u64,
    pub revocation_acks: u64,
    /// Accepted replies without GRE Key: the binding was deregistered (RFC 6245 §4.1).
    pub abandoned: u64,
    pub rx_unmatched: u64,
    pub rx_missing_gre_key: u64,
    pub rx_unexpected_type: u64,
    /// Bindings taken up from the store at start.
    pub restored: u64,
    /// Deregistrations (or revocations) in progress at a stop, sent again
    /// at the start from their records (`persist.rs`).
    pub deregistrations_resumed: u64,
    /// An HA stopped answering (or refused us), and came back; subscribers
    /// registered again when it did.
    pub ha_down: u64,
    pub ha_returned: u64,
    pub reregistrations: u64,
    /// Registrations sent on to a Redirected HA (RFC 4433).
    pub redirected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Registering,
    Registered,
    Deregistering,
}

#[derive(Debug)]
struct Session {
    sub: Subscriber,
    phase: Phase,
    has: Vec<Ipv4Addr>,
    ha_idx: usize,
    /// HA assigned by a dynamic-HA reply (RFC 4433).
    assigned_ha: Option<Ipv4Addr>,
    /// Index of the subscriber's traffic counters in the fast path.
    sub_id: u32,
    downlink_key: u32,
    home: Option<Ipv4Addr>,
    installed: Option<AccessBinding>,
    pending_ident: Option<u64>,
    attempts: u32,
    attempts_this_ha: u32,
    /// Retransmission timeout once the attempts are used up (a registered
    /// subscriber's renewal backing off); `None`: the configured one.
    backoff: Option<Duration>,
    next_retx: Option<Instant>,
    /// `next_retx` is the resend after a 133 (the HA's clock adopted), not
    /// a retransmission: no failover, no back-off.
    resync_resend: bool,
    renew_at: Option<Instant>,
    expires_at: Option<Instant>,
    /// The lifetime the HA granted last.
    granted: Option<Duration>,
    /// The lifetime our last request asked for: a longer one granted is
    /// cut to it (RFC 3344 §3.6.2.2).
    requested_lifetime: u16,
    /// The HA's last reply had Revocation Support (RFC 3543 §3.2): we may revoke.
    ha_revocation: bool,
    /// The timestamp in it: a revocation from the HA must come after it
    /// (§4.2.2.2). None: not known (restored from the store).
    ha_revocation_stamp: Option<u32>,
    /// Leaving by our Registration Revocation (RFC 3543 §4.2.3.1): the
    /// identifiers of its transmissions so far (an ack of any ends it).
    revoking: Option<Vec<u32>>,
    /// The device left a registered session: the HA's uplink key and when
    /// its binding ends, which the session's record keeps (`leaving`) until
    /// the HA has been told (`persist.rs`).
    left: Option<(u32, Instant)>,
    gen: u64,
}

impl Session {
    fn ha(&self) -> Ipv4Addr {
        self.assigned_ha.unwrap_or(self.has[self.ha_idx])
    }
    fn deadline(&self) -> Option<Instant> {
        [self.next_retx, self.renew_at, self.expires_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// RFC 3344 §3.6.3 (RFC 5944 the same): "The minimum time between
/// Registration Requests MUST NOT be less than 1 second" — the resend after
/// a 133 waits it.
const MIN_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// The PMA state machine.
pub struct Pma {
    cfg: PmaConfig,
    clock: Clock,
    sessions: HashMap<String, Session>,
    timers: BinaryHeap<Reverse<(Instant, u64, String)>>,
    gen: u64,
    idents: HashMap<Ipv4Addr, IdentGen>,
    /// HAs that answered 149/150 (draft §8.1): held down, not for good.
    refused: HashMap<Ipv4Addr, outage::Refusal>,
    /// HAs that stopped answering: the first acceptance from one of them
    /// registers its other subscribers again at once.
    down: HashSet<Ipv4Addr>,
    /// Highest Revocation Identifier seen per HA.
    last_revocation: HashMap<Ipv4Addr, u32>,
    /// Downlink GRE keys, and subscriber ids.
    keys: IdAlloc,
    ids: IdAlloc,
    tx: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    events: VecDeque<PmaEvent>,
    /// Where subscribers whose session ended were, until their events are taken.
    gone_at: HashMap<String, AccessPoint>,
    store: persist::StoreQueue,
    counters: PmaCounters,
    /// When the last security exception was logged (the log is rate limited).
    last_security_log: Option<Instant>,
}

impl Pma {
    pub fn new(cfg: PmaConfig, clock: Clock) -> Self {
        let keys = IdAlloc::new(cfg.downlink_key_base, pmip_common::MAX_SUBSCRIBERS);
        Pma {
            cfg,
            clock,
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
            gen: 0,
            idents: HashMap::new(),
            refused: HashMap::new(),
            down: HashSet::new(),
            last_revocation: HashMap::new(),
            keys,
            ids: IdAlloc::default(),
            tx: VecDeque::new(),
            dp: VecDeque::new(),
            events: VecDeque::new(),
            gone_at: HashMap::new(),
            store: persist::StoreQueue::new(),
            counters: PmaCounters::default(),
            last_security_log: None,
        }
    }

    /// Every session (for `show bindings`).
    pub fn sessions(&self, now: Instant) -> Vec<PmaSessionInfo> {
        let mut v: Vec<PmaSessionInfo> = self
            .sessions
            .values()
            .map(|s| PmaSessionInfo {
                nai: s.sub.nai.clone(),
                at: s.sub.at,
                sub_id: s.sub_id,
                state: match s.phase {
                    Phase::Registering => "REGISTERING",
                    Phase::Registered => "ACTIVE",
                    Phase::Deregistering => "DEREGISTERING",
                },
                ha: s.ha(),
                home: s.home,
                downlink_key: s.downlink_key,
                uplink_key: s.installed.as_ref().map(|b| b.uplink_key),
                lifetime_left: s.expires_at.map(|e| e.saturating_duration_since(now)),
            })
            .collect();
        v.sort_by(|a, b| a.nai.cmp(&b.nai));
        v
    }

    pub fn counters(&self) -> &PmaCounters {
        &self.counters
    }
    pub fn poll_event(&mut self) -> Option<PmaEvent> {
        self.events.pop_front()
    }
    /// Number of subscribers with a session (any phase).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
    /// Home address and HA of a registered subscriber.
    pub fn registration(&self, nai: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let s = self.sessions.get(nai)?;
        (s.phase == Phase::Registered).then_some((s.home?, s.ha()))
    }

    /// A device attached and was authenticated: register it.
    pub fn attach(&mut self, now: Instant, sub: Subscriber) {
        // Identifiers travel in one-octet-length extensions (RFC 2794, draft §5.2–§5.4).
        let fits = |n: usize, max: usize| n <= max;
        if sub.nai.is_empty()
            || !fits(sub.nai.len(), 255)
            || !fits(sub.imsi.as_ref().map_or(0, |i| i.len()), 253)
            || !fits(sub.interface_id.as_ref().map_or(0, |i| i.len()), 254)
        {
            self.gone_at.insert(sub.nai.clone(), sub.at);
            self.events.push_back(PmaEvent::RegistrationFailed {
                nai: sub.nai,
                code: None,
            });
            return;
        }
        if let Some(s) = self.sessions.get_mut(&sub.nai) {
            if s.phase != Phase::Deregistering {
                // Same device again (e.g. DHCP restart): keep the session, follow its port.
                if s.sub.at != sub.at {
                    let old_at = s.sub.at;
                    s.sub.at = sub.at;
                    if let Some(old) = s.installed.take() {
                        let new = AccessBinding {
                            at: sub.at,
                            ..old.clone()
                        };
                        self.dp.push_back(DpCommand::RemoveAccess(old));
                        self.dp.push_back(DpCommand::InstallAccess(new.clone()));
                        s.installed = Some(new);
                    }
                    let nai = sub.nai.clone();
                    self.persist(&nai, old_at);
                    self.persist(&nai, sub.at);
                }
                return;
            }
            let nai = sub.nai.clone();
            self.drop_session(&nai);
        }
        let (key, sub_id) = (self.keys.alloc(), self.ids.alloc());
        let (Some(key), Some(sub_id)) = (key, sub_id) else {
            // One of the two may have been taken: give it back.
            if let Some(k) = key {
                self.keys.release(k);
            }
            if let Some(i) = sub_id {
                self.ids.release(i);
            }
            self.gone_at.insert(sub.nai.clone(), sub.at);
            self.events.push_back(PmaEvent::RegistrationFailed {
                nai: sub.nai,
                code: Some(ReplyCode::InsufficientResources),
            });
            return;
        };
        // Draft §8.1: an HA that answered 149/150 is not asked while its
        // hold-down runs (outage.rs); all held down: the attach fails.
        let has: Vec<Ipv4Addr> = std::iter::once(sub.home_agent)
            .chain(sub.alternate_ha)
            .collect();
        let Some(ha_idx) = has.iter().position(|h| !self.is_refused(*h, now)) else {
            self.counters.ha_refused_pmip += 1;
            self.keys.release(key);
            self.ids.release(sub_id);
            self.gone_at.insert(sub.nai.clone(), sub.at);
            self.events.push_back(PmaEvent::RegistrationFailed {
                nai: sub.nai,
                code: Some(ReplyCode::PmipUnsupported),
            });
            return;
        };
        let nai = sub.nai.clone();
        let s = Session {
            home: sub.static_home,
            sub,
            phase: Phase::Registering,
            has,
            ha_idx,
            assigned_ha: None,
            sub_id,
            downlink_key: key,
            installed: None,
            pending_ident: None,
            attempts: 0,
            attempts_this_ha: 0,
            backoff: None,
            next_retx: None,
            resync_resend: false,
            renew_at: None,
            expires_at: None,
            granted: None,
            requested_lifetime: 0,
            ha_revocation: false,
            ha_revocation_stamp: None,
            revoking: None,
            left: None,
            gen: 0,
        };
        self.sessions.insert(nai.clone(), s);
        self.start_transaction(now, &nai);
    }

    /// The device left: remove its forwarding state and deregister (lifetime 0).
    pub fn detach(&mut self, now: Instant, nai: &str) {
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        if let Some(b) = s.installed.take() {
            s.left = s.expires_at.map(|e| (b.uplink_key, e));
            self.dp.push_back(DpCommand::RemoveAccess(b));
        }
        let was_registered = s.phase != Phase::Registering || s.pending_ident.is_some();
        s.phase = Phase::Deregistering;
        s.renew_at = None;
        s.expires_at = None;
        let at = s.sub.at;
        self.persist(nai, at);
        self.events.push_back(PmaEvent::Deregistered {
            nai: nai.to_string(),
        });
        self.counters.deregistrations += 1;
        self.choose_revocation(nai);
        if was_registered {
            self.start_transaction(now, nai);
        } else {
            self.drop_session(nai);
        }
    }

    /// Takes the keys of `new` (a reload, `daemon/reload.rs`) for
    /// everything signed and checked from now on: each HA's FA-HA
    /// associations and the per-MN ones; the rest of `new` is a restart's.
    /// A request already sent is answered with the key it used (the HA
    /// signs with the request's SPI), which the reply is checked against if
    /// it is still accepted; if not, the retransmission carries the new
    /// one. An HA not in `new` keeps its keys.
    pub fn reconfigure(&mut self, new: &PmaConfig) {
        for p in &mut self.cfg.home_agents {
            if let Some(n) = new.home_agents.iter().find(|n| n.address == p.address) {
                p.sa = n.sa.clone();
            }
        }
        self.cfg.mn_ha = new.mn_ha.clone();
        tracing::info!(
            peers = self.cfg.home_agents.len(),
            per_mn = !new.mn_ha.is_empty(),
            "keys taken from the reloaded configuration"
        );
    }

    /// Keeps the downlink GRE keys the data plane still forwards with (an
    /// earlier run's bindings in pinned maps) from being given to a new subscriber.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        for k in &held.keys {
            self.keys.reserve(*k);
        }
        for id in &held.sub_ids {
            self.ids.reserve(*id);
        }
    }

    fn drop_session(&mut self, nai: &str) {
        if let Some(s) = self.sessions.remove(nai) {
            self.keys.release(s.downlink_key);
            self.ids.release(s.sub_id);
            self.gone_at.insert(nai.to_string(), s.sub.at);
            self.persist(nai, s.sub.at);
        }
    }

    fn arm(&mut self, nai: &str) {
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        self.gen += 1;
        s.gen = self.gen;
        if let Some(d) = s.deadline() {
            self.timers.push(Reverse((d, self.gen, nai.to_string())));
        }
    }

    fn attempt_cap(&self, s: &Session) -> u32 {
        attempt_cap(&self.cfg, s)
    }

    fn start_transaction(&mut self, now: Instant, nai: &str) {
        if let Some(s) = self.sessions.get_mut(nai) {
            s.attempts = 0;
            s.attempts_this_ha = 0;
            s.backoff = None;
        }
        self.send_request(now, nai);
    }

    /// Builds, signs and queues a PRRQ with a fresh Identification (RFC 3344 §3.6.3).
    fn send_request(&mut self, now: Instant, nai: &str) {
        if self.sessions.get(nai).is_some_and(|s| s.revoking.is_some()) {
            self.send_revocation(now, nai);
            return;
        }
        let wall = self.clock.wall(now);
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        let ha = s.ha();
        let Some(peer) = self.cfg.home_agents.iter().find(|p| p.address == ha) else {
            // No FA-HA association with this HA: proxy MIP cannot work (seed 000).
            self.counters.rx_unknown_peer += 1;
            let phase = s.phase;
            self.give_up(nai, phase, None);
            return;
        };
        let ident = self.idents.entry(ha).or_default().next(wall);
        let dereg = s.phase == Phase::Deregistering;
        let mut exts = vec![ExtRepr::Nai(s.sub.nai.as_bytes().to_vec())];
        if let Some(i) = &s.sub.interface_id {
            exts.push(ExtRepr::InterfaceId(i.clone()));
        }
        exts.push(ExtRepr::DeviceId {
            id_type: device_id_types::MAC,
            id: s.sub.at.mac.to_vec(),
        });
        if let Some(imsi) = &s.sub.imsi {
            exts.push(ExtRepr::SubscriberId {
                id_type: super::wire::ext::SUBSCRIBER_ID_IMSI,
                id: imsi.as_bytes().to_vec(),
            });
        }
        if let Some(t) = s.sub.access_tech.or(self.cfg.access_technology) {
            exts.push(ExtRepr::AccessTechnology(t));
        }
        // The FA's own extensions. Per MN they go after the MN-HA
        // extension, before the FA-HA one: RFC 6245 §4.1, the GRE Key
        // "SHALL be added after the MN-HA ... and before the FA-HA"; RFC
        // 3543 §3.2, Revocation Support is the FA's (a mobile node that is
        // not co-located "MUST NOT include" it). Per node, with the rest.
        let mut fa_exts = Vec::with_capacity(2);
        // RFC 6245 §4.1: in every registration request, de-registration included.
        fa_exts.push(ExtRepr::GreKey(s.downlink_key));
        if self.cfg.revocation_support {
            fa_exts.push(ExtRepr::RevocationSupport {
                i_bit: false,
                timestamp: auth::ntp_seconds(auth::ntp_from_system(wall)),
            });
        }
        let mn = self.cfg.mn_ha.get(&s.sub.nai);
        if mn.is_none() {
            exts.append(&mut fa_exts);
        }
        let dynamic = s.sub.dynamic_ha && s.assigned_ha.is_none();
        // RFC 4433 §5.1.1: after a redirect, "the MN MUST put the
        // Redirected HA address as the Requested HA Extension of the new
        // Registration Request" (until it is accepted).
        let redirected =
            s.sub.dynamic_ha && s.assigned_ha.is_some() && s.phase == Phase::Registering;
        if dynamic || redirected {
            // RFC 4433 §3.1: the Requested HA extension names where we sent the request.
            exts.push(ExtRepr::DynamicHa {
                subtype: super::wire::ext::dynamic_ha_subtypes::REQUESTED,
                ha,
            });
        }
        // Draft §5.1: MUST be present when the SA is per node; per MN the
        // MN-HA extension authenticates the request instead (§4.3).
        if mn.is_none() {
            exts.push(ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa));
        }
        let ha_field = if dynamic { Ipv4Addr::BROADCAST } else { ha };
        let lifetime = if dereg {
            0
        } else {
            let life = crate::store::AaaProfile::bound_lifetime(
                s.sub.aaa.as_deref(),
                Duration::from_secs(self.cfg.lifetime_s.into()),
                wall,
            );
            life.as_secs().min(u64::from(u16::MAX)) as u16
        };
        s.requested_lifetime = lifetime;
        let rrq = RegistrationRequestRepr {
            flags: RrqFlags(RrqFlags::G | RrqFlags::T),
            lifetime,
            home_address: s.home.unwrap_or(Ipv4Addr::UNSPECIFIED),
            home_agent: ha_field,
            care_of_address: self.cfg.address,
            identification: ident,
            extensions: exts,
        };
        let mut payload = rrq.to_bytes();
        if let Some(mn) = mn {
            // RFC 3344 §3.5.2, then the FA's extensions, then its FA-HA
            // extension (`signed`).
            auth::append_auth(&mut payload, AuthKind::MnHa, mn);
            super::wire::ext::append_all(&fa_exts, &mut payload);
        }
        self.tx.push_back(signed(payload, &peer.sa, ha));
        if s.attempts > 0 {
            self.counters.retransmissions += 1;
        }
        self.counters.requests_sent += 1;
        s.attempts += 1;
        s.attempts_this_ha += 1;
        s.pending_ident = Some(ident);
        let fo = &self.cfg.ha_failover;
        let rto = match fo.timeout_ms {
            Some(t) if fo.enabled && s.has.len() > 1 => t,
            _ => self.cfg.retransmission_timeout_ms,
        };
        let rto = s.backoff.unwrap_or(Duration::from_millis(rto));
        s.next_retx = Some(now + rto);
        self.arm(nai);
    }

    fn give_up(&mut self, nai: &str, phase: Phase, code: Option<ReplyCode>) {
        match phase {
            Phase::Registering => {
                self.events.push_back(PmaEvent::RegistrationFailed {
                    nai: nai.to_string(),
                    code,
                });
                self.drop_session(nai);
            }
            Phase::Registered => {
                // A renewal the HA denied or never answered: keep
                // forwarding until the granted lifetime runs out. RFC 5944
                // §3.7.3.2: on a denial "the existing visitor list entry
                // for the mobile node MUST NOT be modified" (only the
                // pending request goes); before, a denial ended it at once.
                if let Some(s) = self.sessions.get_mut(nai) {
                    s.pending_ident = None;
                    s.next_retx = None;
                    if let Some(code) = code {
                        self.counters.renewal_denied += 1;
                        tracing::info!(%nai, ?code, "renewal denied: the registration stays until its lifetime ends");
                    }
                    self.arm(nai);
                }
            }
            Phase::Deregistering => self.drop_session(nai),
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.clock.wall(now)
    }
}

impl Pma {
    /// One datagram from `src`.
    pub fn handle(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        match Message::parse(payload) {
            // RFC 3344 §1.9: an extension of type 0–127 we do not know makes
            // the whole message one to discard silently.
            Ok(m) if m.extensions().first_unknown_nonskippable().is_some() => {
                self.counters.unknown_nonskippable += 1;
            }
            Ok(Message::Reply(r)) => self.on_reply(now, src, payload, r),
            Ok(Message::Revocation(r)) => self.on_revocation(now, src, payload, r),
            Ok(Message::RevocationAck(a)) => self.on_revocation_ack(now, src, payload, a),
            Ok(_) => self.counters.rx_unexpected_type += 1,
            Err(_) => self.counters.rx_malformed += 1,
        }
    }

    /// Fires every timer due at `now`: retransmission, renewal, expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, gen, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let (gen, nai) = (
                *gen,
                self.timers
                    .pop()
                    .map(|Reverse((_, _, n))| n)
                    .unwrap_or_default(),
            );
            let Some(s) = self.sessions.get(&nai) else {
                continue;
            };
            if s.gen != gen {
                continue; // superseded
            }
            if s.next_retx.is_some_and(|d| d <= now) {
                self.on_retx_timeout(now, &nai);
            } else if s.expires_at.is_some_and(|d| d <= now) {
                self.counters.expired += 1;
                if let Some(s) = self.sessions.get_mut(&nai) {
                    if let Some(b) = s.installed.take() {
                        self.dp.push_back(DpCommand::RemoveAccess(b));
                    }
                }
                self.events
                    .push_back(PmaEvent::Expired { nai: nai.clone() });
                self.drop_session(&nai);
            } else if s.renew_at.is_some_and(|d| d <= now) {
                if let Some(s) = self.sessions.get_mut(&nai) {
                    s.renew_at = None;
                }
                self.start_transaction(now, &nai);
            } else {
                self.arm(&nai);
            }
        }
    }
}

fn attempt_cap(cfg: &PmaConfig, s: &Session) -> u32 {
    if cfg.ha_failover.enabled && s.has.len() > 1 {
        cfg.ha_failover.max_attempts.max(1)
    } else {
        1 + cfg.max_retransmissions
    }
}
