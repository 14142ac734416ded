//! Mobile Access Gateway (RFC 5213 §6, RFC 5844 §3–4, RFC 5845, RFC 5846,
//! RFC 5847), sans-IO.
//!
//! Inputs: [`Mag::attach`] / [`Mag::detach`] from the access side (DHCP or
//! a new MAC), [`Mag::handle`] for a received Mobility Header,
//! [`Mag::handle_timeout`]. Outputs: [`Mag::poll_transmit`] (PBU, Heartbeat,
//! BRA), [`Mag::poll_dp`] (fast-path map updates), [`Mag::poll_event`] (what
//! the access side hands to the subscriber: home address, default router,
//! lifetime).
//!
//! The binding update list is keyed by the attachment ([`AccessPoint`]); the
//! MAG chooses the downlink GRE key and sends it in the PBU, and installs the
//! uplink key the LMA returns in the PBA (RFC 5845 §3).
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

use super::wire::{BaStatus, HandoffIndicator, Message};
use super::LocalAddrs;
use crate::agent::{Clock, IdAlloc, Peer, Transmit};
use crate::dataplane::{AccessBinding, AccessPoint, DpCommand, Hnp, TunnelEnds};

mod ack;
mod attached;
mod endpoint;
mod heartbeat;
mod outage;
mod pbu;
mod persist;
mod refusal;
mod revoke;
mod show;

pub use attached::CHECK_LIMIT;
pub use show::MagBindingInfo;
mod redirect;

/// One LMA the MAG may register subscribers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmaPeerConfig {
    /// Name used by subscriber profiles (seed 004: `lma lma1`).
    pub name: String,
    /// Its address; the family picks the transport (IPv6 MH or IPv4/UDP).
    pub addr: IpAddr,
    /// UDP port for IPv4 transport.
    pub port: u16,
}

/// MAG configuration; defaults follow the Cisco MAG timers of seed 004 and
/// the RFC 5213 §9 / RFC 5847 §8 defaults.
#[derive(Clone, Debug)]
pub struct MagConfig {
    /// Proxy-CoA per transport family.
    pub local: LocalAddrs,
    pub lmas: Vec<LmaPeerConfig>,
    /// Lifetime requested in the PBU ("binding lifetime", 3600 s).
    pub lifetime: Duration,
    /// Refresh interval ("binding refresh-time", 300 s); capped at 3/4 of the
    /// granted lifetime.
    pub refresh: Duration,
    /// First retransmission timeout (1 s) and its ceiling (32 s).
    pub retx_initial: Duration,
    pub retx_max: Duration,
    /// Retransmissions before giving up (1, 2, 4, 8, 16, 32 s: five
    /// retransmissions after the first send, then 32 s of waiting).
    pub max_retx: u32,
    /// RFC 5847 HEARTBEAT_INTERVAL (60 s) and MISSING_HEARTBEATS_ALLOWED (3).
    pub heartbeat_interval: Duration,
    pub heartbeat_missing_limit: u32,
    /// Our restart counter (RFC 5847 §5.2), bumped by the daemon on each start.
    pub restart_counter: u32,
    /// Access Technology Type sent in the PBU (802.11 = 4, as in seed 004),
    /// unless the attachment's access interface names its own.
    pub access_tech_type: u8,
    /// RFC 5213 §9.3 TimestampBasedApproachInUse: a Timestamp option in every
    /// PBU; off, PBUs are ordered by their sequence numbers alone (§5.5).
    pub timestamp_based: bool,
    /// LMAs we revoke bindings at (RFC 5846 MAG-initiated revocation: one
    /// BRI on detach, one global BRI on shutdown) instead of deregistering.
    pub revoke_to: std::collections::HashSet<IpAddr>,
    /// Handoff Indicator of a first PBU. A Wi-Fi MAG cannot tell a new
    /// attachment from a move off another MAG, so RFC 5213 §6.9.1.1 wants 4
    /// (handoff state unknown); the LMA then matches the existing binding
    /// and hands it over instead of opening a second session (HI 1).
    pub attach_handoff_indicator: u8,
    /// RFC 6463: ask for runtime LMA assignment (Redirect-Capability in
    /// first PBUs) and follow Redirect options (`redirect.rs`).
    pub runtime_assignment: bool,
    /// How long an LMA's refusal of an MN (152, 170, 172: "until an
    /// administrative action is taken") holds unless the operator clears
    /// it first (`refusal.rs`); zero: not remembered.
    pub refusal_hold: Duration,
}

impl Default for MagConfig {
    fn default() -> Self {
        MagConfig {
            local: LocalAddrs::default(),
            lmas: Vec::new(),
            lifetime: Duration::from_secs(3600),
            refresh: Duration::from_secs(300),
            retx_initial: Duration::from_secs(1),
            retx_max: Duration::from_secs(32),
            max_retx: 5,
            heartbeat_interval: Duration::from_secs(60),
            heartbeat_missing_limit: 3,
            restart_counter: 1,
            access_tech_type: 4,
            timestamp_based: true,
            revoke_to: Default::default(),
            attach_handoff_indicator: 4,
            runtime_assignment: false,
            refusal_hold: Duration::from_secs(3600),
        }
    }
}

/// What the access side asks for when a subscriber appears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    pub at: AccessPoint,
    /// MN identifier (NAI); with a default profile, the MAC (seed 004).
    pub mn_id: Vec<u8>,
    /// Name of the LMA from the subscriber's profile.
    pub lma: String,
    /// Ask for an IPv4 home address (RFC 5844).
    pub ipv4: bool,
    /// A specific IPv4 home address to ask for (static), else the LMA allocates.
    pub requested_v4: Option<Ipv4Addr>,
    /// `requested_v4` is only a DHCP client's hint: refused (171), ask for
    /// any (`registrar::AttachRequest::requested_hint`).
    pub v4_hint: bool,
    /// Ask for an IPv6 home network prefix.
    pub ipv6: bool,
    /// Service Selection (APN), if the profile names one.
    pub apn: Option<Vec<u8>>,
    /// Access Technology Type of the attachment's interface (else the MAG's).
    pub att: Option<u8>,
}

/// Why a registration did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The LMA refused with this status.
    Rejected(BaStatus),
    /// No PBA after every retransmission.
    Timeout,
    /// No such LMA, or the LMA refused this MAG (status 152/154) earlier.
    LmaUnavailable,
    /// The PBA lacked something we need (uplink GRE key, home address).
    BadAck,
}

/// Events for the access side (DHCP server, ARP responder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MagEvent {
    /// Registration accepted: hand these to the subscriber (DHCP lease time = lifetime).
    Registered {
        at: AccessPoint,
        home_v4: Option<(Ipv4Addr, u8)>,
        default_router: Option<Ipv4Addr>,
        hnp: Option<Hnp>,
        lifetime: Duration,
    },
    /// A refresh accepted with nothing changed (no map update, no
    /// `Registered`): the binding lasts `lifetime` from now.
    Refreshed {
        at: AccessPoint,
        lifetime: Duration,
    },
    RegistrationFailed {
        at: AccessPoint,
        reason: FailReason,
    },
    Deregistered {
        at: AccessPoint,
    },
    /// The LMA revoked the binding (RFC 5846), e.g. after a handover elsewhere.
    Revoked {
        at: AccessPoint,
        trigger: u8,
    },
    /// Ask the access link whether the subscriber is still there
    /// (`attached.rs`); answered with [`Mag::presence`].
    CheckPresence {
        at: AccessPoint,
    },
    /// A binding of an earlier run taken up again from the store: the
    /// access side learns the subscriber and its lease (`left` of `lifetime`).
    Restored {
        at: AccessPoint,
        nai: String,
        home_v4: Option<(Ipv4Addr, u8)>,
        default_router: Option<Ipv4Addr>,
        hnp: Option<Hnp>,
        lifetime: Duration,
        left: Duration,
        /// The AAA's profile from the record.
        aaa: Option<Box<crate::store::AaaProfile>>,
    },
}

/// Drop and error counters, one per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MagCounters {
    pub rx_packets: u64,
    pub rx_malformed: u64,
    pub rx_bad_checksum: u64,
    pub rx_unknown_type: u64,
    pub rx_unknown_peer: u64,
    pub rx_unexpected_message: u64,
    pub pba_no_binding: u64,
    pub pba_seq_mismatch: u64,
    pub pba_accepted: u64,
    pub pba_rejected: u64,
    pub pba_bad: u64,
    pub pbu_sent: u64,
    pub pbu_retransmitted: u64,
    pub registration_timeouts: u64,
    pub refresh_sent: u64,
    pub dereg_sent: u64,
    pub lifetime_expired: u64,
    pub heartbeat_sent: u64,
    pub heartbeat_rx: u64,
    pub heartbeat_missed: u64,
    /// De-registrations no PBA answered within INITIAL_BINDACK_TIMEOUT:
    /// the entry went all the same (RFC 5213 §6.9.1.4).
    pub dereg_unanswered: u64,
    /// LMAs that answered a heartbeat with a Binding Error (status 2): no
    /// more heartbeats to them (RFC 5847 §3).
    pub heartbeat_unsupported: u64,
    /// Unsolicited Heartbeat Responses sent after a start that lost the
    /// session state (RFC 5847 §3.2).
    pub heartbeat_unsolicited_sent: u64,
    /// 172 answers to a dual-stack PBU, asked again for IPv4 alone (RFC
    /// 5844 §3.2.3.3).
    pub ipv6_refused_retried_ipv4: u64,
    /// 170 answers to a dual-stack PBU, asked again for IPv6 alone (RFC
    /// 5844 §3.2.3.2).
    pub ipv4_refused_retried_ipv6: u64,
    /// New registrations refused the IPv4 address they asked for (171)
    /// and asked again for any (RFC 5844 §3.2.3.2).
    pub ipv4_address_refused_retried: u64,
    /// Refusals (152, 170, 172) remembered for their MN (`refusal.rs`), and
    /// attaches that failed on one without a PBU.
    pub refusal_held: u64,
    pub attach_refused_held: u64,
    /// Refusals the operator cleared (`pmipctl clear binding`).
    pub refusals_cleared: u64,
    /// Binding Errors received (RFC 6275 §6.1.9), heartbeats' or not.
    pub binding_error_rx: u64,
    pub lma_restart_detected: u64,
    pub reregistrations: u64,
    pub bri_rx: u64,
    pub bri_unknown_binding: u64,
    /// BRIs refused: the IPv4 home address alone (V), not split here, or
    /// a per-MN one without an MN-ID.
    pub bri_refused: u64,
    /// BRIs naming an inter-MAG handover of an MN still attached here,
    /// refused with 132 (RFC 5846 §9.1, `attached.rs`).
    pub bri_mn_attached: u64,
    pub binding_error_sent: u64,
    pub attach_no_lma: u64,
    /// Bindings taken up from the store at start, and records dropped.
    pub restored: u64,
    pub restore_dropped: u64,
    /// Deregistrations (or revocations) in progress at a stop, sent again
    /// at the start from their records (`persist.rs`).
    pub deregistrations_resumed: u64,
    /// An LMA stopped answering (or refused us), and came back.
    pub lma_down: u64,
    pub lma_returned: u64,
    /// Registrations moved to the alternate LMA.
    pub failovers: u64,
    pub pba_without_gre_key: u64,
    pub pba_zero_home_address: u64,
    /// Accepted IPv4 PBAs without the IPv4 DHCP Support Mode option's S
    /// flag: the LMA asks for a DHCP relay (RFC 5844 §3.1.3); we serve
    /// DHCP ourselves all the same (there is no relay in pmipd).
    pub pba_dhcp_relay_asked: u64,
    /// PBAs ignored: their HI or ATT not the PBU's (RFC 5213 §6.9.1.2).
    pub pba_echo_mismatch: u64,
    pub abandoned: u64,
    pub bri_sent: u64,
    pub bri_retransmitted: u64,
    pub bra_rx: u64,
    pub bra_unmatched: u64,
    /// Registrations sent on to another LMA by a Redirect option (RFC 6463).
    pub redirected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the PBA of a registration or refresh.
    Registering,
    /// Accepted; the timer is the next refresh.
    Active,
    /// Waiting for the PBA of a deregistration; the map entry is gone.
    Deregistering,
}

#[derive(Clone, Debug)]
struct Granted {
    uplink_key: u32,
    home_v4: Option<(Ipv4Addr, u8)>,
    default_router: Option<Ipv4Addr>,
    hnp: Option<Hnp>,
    lifetime: Duration,
    expires: Instant,
}

#[derive(Clone, Debug)]
struct Entry {
    req: AttachRequest,
    lma: usize,
    sub_id: u32,
    downlink_key: u32,
    state: State,
    seq: u16,
    /// Retransmissions of the current PBU so far.
    retx: u32,
    timeout: Duration,
    deadline: Instant,
    granted: Option<Granted>,
    /// The grant of a binding that lapsed while the LMA was away: what a
    /// re-registration asks for again.
    last: Option<Granted>,
    /// The alternate LMA of the subscriber's profile (not yet tried).
    alternate: Option<usize>,
    /// The next PBU is a re-registration after an LMA lost state.
    handoff: HandoffIndicator,
    /// Leaving by MAG-initiated revocation (a BRI, RFC 5846) rather than a
    /// lifetime-0 PBU; `seq` is the BRI's.
    revoking: bool,
    /// The AAA's profile, kept in the record (`persist.rs`).
    aaa: Option<Box<crate::store::AaaProfile>>,
    /// The LMA's last transient refusal (130, 128) of this PBU's round: it
    /// answers, so running out of retransmissions is its refusal, not its
    /// absence (`outage.rs`).
    transient: Option<BaStatus>,
    /// A refresh's PBA did not echo the PBU (RFC 5213 §6.9.1.2 (6)): no
    /// PBU again; the binding ends with its lifetime (`ack.rs`).
    unechoed: bool,
}

#[derive(Clone, Debug)]
struct LmaState {
    cfg: LmaPeerConfig,
    peer: Peer,
    /// Refused this MAG (154): no new attach is sent to it before this
    /// time, which backs off with each refusal (`retx_initial` doubling up
    /// to `retx_max`); never for good.
    refused_until: Option<Instant>,
    refusals: u32,
    /// Stopped answering (a registration ran out of retransmissions) or
    /// refused us: the first answer after that re-registers everyone on it.
    down: bool,
    /// Accepted a PBU without a GRE Key option (RFC 5845 §4.2): it does not
    /// do GRE keys, so we send it no GRE Key option again — and, our tunnels
    /// being keyed, no registration — until it restarts.
    no_gre_key: bool,
    /// Told the operator once that this LMA asks for a DHCP relay.
    relay_noted: bool,
    hb_seq: u32,
    hb_outstanding: bool,
    hb_missed: u32,
    hb_deadline: Instant,
    restart_counter: Option<u32>,
    /// Answering heartbeats (see `PeerSummary::reachable`).
    hb_up: Option<bool>,
    /// Answered a heartbeat with a Binding Error, status 2: it does not do
    /// RFC 5847, and we send it no heartbeat again (§3).
    hb_unsupported: bool,
}

/// The MAG state machine.
pub struct Mag {
    cfg: MagConfig,
    clock: Clock,
    /// Last timestamp sent: each PBU's is strictly greater, so the LMA's
    /// ordering check (RFC 5213 §5.5) never sees two equal ones from us.
    last_ts: u64,
    lmas: Vec<LmaState>,
    entries: HashMap<AccessPoint, Entry>,
    /// Attachments of each MN identifier (two devices may share one NAI).
    by_mn_id: HashMap<Vec<u8>, Vec<AccessPoint>>,
    ids: IdAlloc,
    seq: u16,
    /// Lazy timer heap: an item is live only if it equals the entry's deadline.
    timers: BinaryHeap<Reverse<(Instant, AccessPoint)>>,
    transmits: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    events: VecDeque<MagEvent>,
    store: persist::StoreQueue,
    /// Global BRIs (RFC 5846 G flag) waiting for their BRA, by sequence number.
    bulk: HashMap<u16, revoke::BulkBri>,
    /// BRIs waiting for the access link's word on their MN (`attached.rs`).
    checking: Vec<attached::Checking>,
    /// What LMAs refused MNs until the operator acts (`refusal.rs`).
    refusals: refusal::Refusals,
    pub counters: MagCounters,
    /// Binding Errors of this second (`rx.rs`).
    be_limit: super::rx::BindingErrorLimit,
}

impl Mag {
    pub fn new(cfg: MagConfig, now: Instant, wall: SystemTime) -> Self {
        let lmas = cfg
            .lmas
            .iter()
            .map(|l| LmaState {
                cfg: l.clone(),
                peer: Peer::from_ip(l.addr, l.port),
                refused_until: None,
                refusals: 0,
                down: false,
                no_gre_key: false,
                relay_noted: false,
                hb_seq: 0,
                hb_outstanding: false,
                hb_missed: 0,
                hb_deadline: now + cfg.heartbeat_interval,
                restart_counter: None,
                hb_up: None,
                hb_unsupported: false,
            })
            .collect();
        Mag {
            clock: Clock::new(now, wall),
            last_ts: 0,
            lmas,
            entries: HashMap::new(),
            by_mn_id: HashMap::new(),
            ids: IdAlloc::default(),
            seq: 0,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            dp: VecDeque::new(),
            events: VecDeque::new(),
            store: persist::StoreQueue::new(),
            bulk: HashMap::new(),
            checking: Vec::new(),
            refusals: Default::default(),
            counters: MagCounters::default(),
            be_limit: Default::default(),
            cfg,
        }
    }

    /// Keeps what the data plane still forwards with (an earlier run's
    /// bindings in pinned maps) from being given to a new subscriber: the
    /// MAG's subscriber ids are also its downlink GRE keys.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        for id in held.sub_ids.iter().chain(&held.keys) {
            self.ids.reserve(*id);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_dp(&mut self) -> Option<DpCommand> {
        self.dp.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<MagEvent> {
        self.events.pop_front()
    }

    /// Number of entries in the binding update list.
    pub fn binding_count(&self) -> usize {
        self.entries.len()
    }

    /// Number of accepted (active) bindings.
    pub fn active_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.state == State::Active)
            .count()
    }

    /// The LMA peers' transport addresses (for the shell's sockets).
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        self.lmas.iter().map(|l| l.peer)
    }

    /// Earliest deadline among bindings and heartbeats.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        // A zero interval: heartbeats off (RFC 5847).
        let hb_on = !self.cfg.heartbeat_interval.is_zero();
        let h = self.lmas.iter().filter(|_| hb_on).map(|l| l.hb_deadline);
        let h = h
            .chain(self.bulk.values().map(|b| b.deadline))
            .chain(self.checking.iter().map(|c| c.deadline))
            .min();
        match (t, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A subscriber appeared on the access link (DHCP DISCOVER or new MAC).
    /// A second attach for a known attachment is ignored while one is in
    /// progress or active.
    pub fn attach(&mut self, now: Instant, req: AttachRequest) {
        self.attach_with_alternate(now, req, None, None)
    }

    /// [`Mag::attach`], with the alternate LMA (by name) to fail over to
    /// when the first one does not answer, and the subscriber's AAA profile
    /// (its session lifetime bounds the first PBU's).
    pub fn attach_with_alternate(
        &mut self,
        now: Instant,
        req: AttachRequest,
        alternate: Option<String>,
        aaa: Option<Box<crate::store::AaaProfile>>,
    ) {
        if let Some(e) = self.entries.get(&req.at) {
            if e.state != State::Deregistering {
                if let (State::Active, Some(g)) = (e.state, &e.granted) {
                    // DHCP asked again: give the access side the binding we have.
                    self.events.push_back(MagEvent::Registered {
                        at: req.at,
                        home_v4: g.home_v4,
                        default_router: g.default_router,
                        hnp: g.hnp,
                        lifetime: g.expires.saturating_duration_since(now),
                    });
                }
                return;
            }
            let at = req.at;
            self.remove_entry(&at);
        }
        let refused = |l: &LmaState| l.refused_until.is_some_and(|t| t > now);
        let Some(lma) = self
            .lmas
            .iter()
            .position(|l| l.cfg.name == req.lma && !refused(l) && !l.no_gre_key)
            .or_else(|| {
                // The primary refused us lately: the alternate, if any.
                let alt = alternate.as_deref()?;
                self.lmas
                    .iter()
                    .position(|l| l.cfg.name == alt && !refused(l) && !l.no_gre_key)
            })
        else {
            self.counters.attach_no_lma += 1;
            self.events.push_back(MagEvent::RegistrationFailed {
                at: req.at,
                reason: FailReason::LmaUnavailable,
            });
            return;
        };
        // What this LMA refused the MN, until the operator acts (RFC 5213
        // §6.9.1.2 (7), RFC 5844 §3.2.3.2): not asked for again.
        let mut req = req;
        if let Err(status) = self.refusals.apply(now, lma, &mut req) {
            self.counters.attach_refused_held += 1;
            self.events.push_back(MagEvent::RegistrationFailed {
                at: req.at,
                reason: FailReason::Rejected(status),
            });
            return;
        }
        if self.cfg.local.for_peer(&self.lmas[lma].peer).is_none() {
            self.counters.attach_no_lma += 1;
            self.events.push_back(MagEvent::RegistrationFailed {
                at: req.at,
                reason: FailReason::LmaUnavailable,
            });
            return;
        }
        // The downlink key is the subscriber id: unique per binding on this MAG.
        let Some(sub_id) = self.ids.alloc() else {
            self.events.push_back(MagEvent::RegistrationFailed {
                at: req.at,
                reason: FailReason::LmaUnavailable,
            });
            return;
        };
        let downlink_key = sub_id;
        let at = req.at;
        // The same device (MAC) under the same identity on another port or
        // VLAN of this MAG: that older attachment is stale.
        let stale: Vec<AccessPoint> = self
            .by_mn_id
            .get(&req.mn_id)
            .map(|v| {
                v.iter()
                    .filter(|a| a.mac == at.mac && **a != at)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for old in stale {
            self.remove_entry(&old);
        }
        self.by_mn_id.entry(req.mn_id.clone()).or_default().push(at);
        let alternate = alternate
            .and_then(|n| self.lmas.iter().position(|l| l.cfg.name == n))
            .filter(|a| *a != lma);
        let entry = Entry {
            req,
            lma,
            sub_id,
            downlink_key,
            state: State::Registering,
            seq: 0,
            retx: 0,
            timeout: self.cfg.retx_initial,
            deadline: now,
            granted: None,
            last: None,
            alternate,
            handoff: HandoffIndicator::from(self.cfg.attach_handoff_indicator),
            revoking: false,
            aaa,
            transient: None,
            unechoed: false,
        };
        self.entries.insert(at, entry);
        self.send_pbu(now, at, false);
    }

    /// The operator's administrative action on MN `mn_id` (`pmipctl clear
    /// binding`): what LMAs refused it is forgotten (`refusal.rs`).
    pub fn forget_refusals(&mut self, mn_id: &[u8]) -> bool {
        let found = self.refusals.forget(mn_id);
        self.counters.refusals_cleared += u64::from(found);
        found
    }

    /// The subscriber left: remove its map entry now and deregister
    /// (lifetime 0) with the LMA.
    pub fn detach(&mut self, now: Instant, at: AccessPoint) {
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        if e.state == State::Deregistering {
            return;
        }
        let had = e.granted.is_some();
        let revoke = self.cfg.revoke_to.contains(&self.lmas[e.lma].cfg.addr);
        e.revoking = revoke;
        e.state = State::Deregistering;
        e.retx = 0;
        e.timeout = self.cfg.retx_initial;
        // The subscriber left: its map entry goes now; its record says so
        // until the LMA has been told (a restart finishes the telling).
        self.persist(at);
        if had {
            let b = self.access_binding(&at);
            if let Some(b) = b {
                self.dp.push_back(DpCommand::RemoveAccess(b));
            }
        }
        if revoke {
            self.send_bri(now, at);
            return;
        }
        self.counters.dereg_sent += 1;
        self.send_pbu(now, at, true);
    }

    /// The MAG's own sequence numbers: its BRIs' (a binding's PBUs number
    /// themselves, `send_pbu`).
    fn next_seq(&mut self) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    #[cfg(test)]
    pub(crate) fn next_seq_for_test(&mut self) -> u16 {
        self.next_seq()
    }

    fn arm(&mut self, at: AccessPoint, deadline: Instant) {
        if let Some(e) = self.entries.get_mut(&at) {
            e.deadline = deadline;
            self.timers.push(Reverse((deadline, at)));
        }
    }

    fn access_binding(&self, at: &AccessPoint) -> Option<AccessBinding> {
        let e = self.entries.get(at)?;
        let g = e.granted.as_ref()?;
        let lma = &self.lmas[e.lma];
        Some(AccessBinding {
            at: *at,
            sub_id: e.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.local.for_peer(&lma.peer)?,
                remote: lma.peer.ip(),
            },
            uplink_key: g.uplink_key,
            downlink_key: e.downlink_key,
            home_v4: g.home_v4.map(|(a, _)| a),
            gateway_v4: g.default_router,
            hnp: g.hnp,
        })
    }

    /// Removes an entry and its map entry (if installed), freeing its id.
    fn remove_entry(&mut self, at: &AccessPoint) {
        if let Some(e) = self.entries.get(at) {
            if e.state != State::Deregistering && e.granted.is_some() {
                if let Some(b) = self.access_binding(at) {
                    self.dp.push_back(DpCommand::RemoveAccess(b));
                }
            }
        }
        if let Some(e) = self.entries.remove(at) {
            if let Some(v) = self.by_mn_id.get_mut(&e.req.mn_id) {
                v.retain(|a| a != at);
                if v.is_empty() {
                    self.by_mn_id.remove(&e.req.mn_id);
                }
            }
            self.ids.release(e.sub_id);
            self.persist(*at);
        }
    }

    fn fail(&mut self, at: AccessPoint, reason: FailReason) {
        self.remove_entry(&at);
        self.events
            .push_back(MagEvent::RegistrationFailed { at, reason });
    }

    /// Processes one received Mobility Header from `peer`.
    pub fn handle(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        self.counters.rx_packets += 1;
        let Some(lma) = self.lmas.iter().position(|l| l.peer.ip() == peer.ip()) else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        let Some(ck) = self.cfg.local.rx_checksum(&peer) else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        let out = (&self.cfg.local, &mut self.transmits);
        let count = (&mut self.counters, &mut self.be_limit);
        let Some(msg) = super::rx::receive(data, ck, (now, peer), count, out) else {
            return;
        };
        match msg {
            Message::BindingAck(ba) => self.on_pba(now, lma, ba),
            Message::Heartbeat(hb) => self.on_heartbeat(now, (lma, peer), hb),
            Message::BindingError(be) => self.on_binding_error(lma, &be),
            Message::RevocationIndication(bri) => self.on_bri(now, lma, bri),
            Message::RevocationAck(bra) => self.on_bra(lma, bra),
            _ => self.counters.rx_unexpected_message += 1,
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, at))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.entries.get(&at) else {
                continue;
            };
            if e.deadline != t {
                continue; // superseded
            }
            self.on_entry_timer(now, at);
        }
        let hb_on = !self.cfg.heartbeat_interval.is_zero();
        for i in 0..self.lmas.len() {
            if hb_on && self.lmas[i].hb_deadline <= now {
                self.on_heartbeat_timer(now, i);
            }
        }
        self.on_bulk_timers(now);
        self.on_presence_timers(now);
    }

    fn on_entry_timer(&mut self, now: Instant, at: AccessPoint) {
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        match e.state {
            // The LMA did not echo our last refresh: not asked again; the
            // lifetime it had is over.
            State::Active if e.unechoed => self.fail(at, FailReason::BadAck),
            State::Active => {
                // Refresh before the lifetime ends (RFC 5213 §6.9.1.3).
                e.state = State::Registering;
                e.retx = 0;
                e.timeout = self.cfg.retx_initial;
                self.counters.refresh_sent += 1;
                self.send_pbu(now, at, false);
            }
            State::Registering | State::Deregistering => self.on_retx_timer(now, at),
        }
    }
}
