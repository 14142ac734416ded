//! Local Mobility Anchor (RFC 5213 §5, RFC 5844 §3–4, RFC 5845, RFC 5846,
//! RFC 5847), sans-IO.
//!
//! The binding cache is keyed by the MN identifier and the attachment (the
//! MN link-layer identifier, RFC 5213 §5.4.1): the same device moving to
//! another MAG keeps its session, two devices sharing one identity get one
//! session each. Each entry holds the
//! MAG (proxy-CoA) it is reached through, the IPv4 home address and/or home
//! network prefix allocated from the pools, the downlink GRE key the MAG
//! chose, and the uplink GRE key the LMA assigned — unique per binding, since
//! the fast path finds the binding from it (`AnchorBinding` by uplink key).
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

use super::wire::{AccessTechType, BaStatus, Message, MobilityOption};
use super::LocalAddrs;
use crate::agent::registrar::{AnchorEvent, GoneCause};
use crate::agent::{Clock, IdAlloc, Peer, Transmit};
use crate::dataplane::{DpCommand, Hnp};

mod by_nai;
mod cluster;
mod endpoint;
mod first_write;
mod handoff;
mod heartbeat;
mod pba;
mod pbu;
mod persist;
mod pool;
mod revocation;
mod selective;

use pool::{V4Pool, V6Pool};

/// IPv4 home address pool (seed 004: `ip pool PMIP_IPv4_POOL 192.0.2.0
/// 255.255.255.0` with `subscriber-gw-address 192.0.2.254`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4PoolConfig {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Default router handed to subscribers; never allocated.
    pub gateway: Ipv4Addr,
}

/// IPv6 prefix pool (seed 004: `ipv6 pool ... prefix 2001:db8:f00d::/48`),
/// carved into prefixes of `assign_len` (64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6PoolConfig {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    pub assign_len: u8,
}

/// What a subscriber may have (seed 004's APN and pool `policy allow-static-allocation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub ipv4: bool,
    pub ipv6: bool,
    /// Honour an IPv4 home address the MAG asks for (within the pool).
    pub allow_static: bool,
    /// Always give this IPv4 home address.
    pub static_v4: Option<Ipv4Addr>,
    /// The IPv4 pool to allocate from (index into the LMA's pools; 0 the first).
    pub pool: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            ipv4: true,
            ipv6: false,
            allow_static: false,
            static_v4: None,
            pool: 0,
        }
    }
}

/// LMA configuration; defaults from RFC 5213 §9 and seed 004.
#[derive(Clone, Debug)]
pub struct LmaConfig {
    pub local: LocalAddrs,
    /// MAGs allowed to register (others get status 154).
    pub mags: Vec<IpAddr>,
    pub ipv4_pool: Option<Ipv4PoolConfig>,
    /// Further IPv4 pools (seed 004: one `ip pool` per APN), after `ipv4_pool`;
    /// a profile picks one by index (0 = `ipv4_pool`).
    pub more_ipv4_pools: Vec<Ipv4PoolConfig>,
    pub ipv6_pool: Option<Ipv6PoolConfig>,
    /// Known subscribers by MN identifier (NAI).
    pub subscribers: HashMap<String, Profile>,
    /// Profile for identifiers not listed; `None` refuses them.
    pub default_profile: Option<Profile>,
    /// Longest lifetime granted ("reg-lifetime 40000").
    pub max_lifetime: Duration,
    /// RFC 5213 TimestampValidityWindow (300 ms).
    pub timestamp_window: Duration,
    /// RFC 5213 §9.3 TimestampBasedApproachInUse: order PBUs that carry a
    /// Timestamp by it. PBUs without one (and every PBU when this is off)
    /// are ordered by sequence number (§5.5: that scheme MUST be supported).
    pub timestamp_based: bool,
    /// RFC 5213 MinDelayBeforeBCEDelete (10 s).
    pub min_delay_before_bce_delete: Duration,
    /// Send a BRI to the previous MAG on handover (RFC 5846; "revocation enable").
    pub revocation: bool,
    /// MAGs that get no BRI (`peers[].revocation = false`: MAGs without RFC 5846).
    pub no_revocation: HashSet<IpAddr>,
    pub bri_retx_initial: Duration,
    pub bri_retx_max: Duration,
    pub bri_max_retx: u32,
    /// RFC 5213 MaxDelayBeforeNewBCEAssign (1500 ms): without revocation,
    /// how long a PBU with handoff state unknown waits for the previous
    /// MAG's de-registration (`handoff.rs`); zero: a new session at once.
    pub new_bce_delay: Duration,
    pub restart_counter: u32,
    /// RFC 5847 HEARTBEAT_INTERVAL towards the MAGs we serve (60 s).
    pub heartbeat_interval: Duration,
    /// RFC 5847 MISSING_HEARTBEATS_ALLOWED (3) before a MAG counts as unreachable.
    pub heartbeat_missing_limit: u32,
    /// At a cluster address: where new subscribers go (RFC 6463, `cluster.rs`).
    pub assigner: Option<crate::agent::assign::Assigner>,
}

impl Default for LmaConfig {
    fn default() -> Self {
        LmaConfig {
            local: LocalAddrs::default(),
            mags: Vec::new(),
            ipv4_pool: None,
            more_ipv4_pools: Vec::new(),
            ipv6_pool: None,
            subscribers: HashMap::new(),
            default_profile: None,
            max_lifetime: Duration::from_secs(40000),
            timestamp_window: Duration::from_millis(300),
            timestamp_based: true,
            min_delay_before_bce_delete: Duration::from_secs(10),
            revocation: true,
            no_revocation: HashSet::new(),
            bri_retx_initial: Duration::from_secs(1),
            bri_retx_max: Duration::from_secs(2),
            bri_max_retx: 3,
            new_bce_delay: Duration::from_millis(1500),
            restart_counter: 1,
            heartbeat_interval: Duration::from_secs(60),
            heartbeat_missing_limit: 3,
            assigner: None,
        }
    }
}

/// Drop and error counters, one per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LmaCounters {
    pub rx_packets: u64,
    pub rx_malformed: u64,
    pub rx_bad_checksum: u64,
    pub rx_unknown_type: u64,
    pub rx_unexpected_message: u64,
    pub rx_not_proxy: u64,
    pub binding_error_sent: u64,
    pub pbu_unconfigured_mag: u64,
    pub pbu_unknown_mn: u64,
    pub pbu_missing_option: u64,
    pub pbu_timestamp_mismatch: u64,
    pub pbu_timestamp_replayed: u64,
    pub pbu_sequence_out_of_window: u64,
    pub pbu_multiple_ipv4_requests: u64,
    pub pbu_gre_key_missing: u64,
    /// PBUs over IPv4 asking for forced IPv4-UDP encapsulation (F flag,
    /// RFC 5844 §4.1.3.1), refused with 129: the tunnels are GRE.
    pub pbu_forced_udp_refused: u64,
    pub pbu_v4_not_authorized: u64,
    pub pbu_hnp_not_authorized: u64,
    pub pbu_no_resources: u64,
    /// New bindings refused (130) because the store refused their record.
    pub pbu_store_failed: u64,
    pub pbu_accepted: u64,
    pub registrations: u64,
    pub refreshes: u64,
    pub handovers: u64,
    pub deregistrations: u64,
    /// One family of a dual-stack session de-registered (RFC 5844 §3.1.2.5).
    pub selective_deregistrations: u64,
    pub dereg_from_old_mag: u64,
    pub dereg_unknown: u64,
    pub expired: u64,
    pub deleted_after_dereg: u64,
    pub bri_sent: u64,
    pub bri_retransmitted: u64,
    pub bri_gave_up: u64,
    /// Global BRIs sent (`pmipctl clear bindings --peer`, RFC 5846 §8.1).
    pub bri_global_sent: u64,
    /// Global BRIs the MAG refused: its entries were revoked one by one.
    pub bri_global_refused: u64,
    /// PBUs with handoff state unknown held for the previous MAG's word
    /// (`handoff.rs`), and how they ended.
    pub handoff_unknown_held: u64,
    pub handoff_unknown_moved: u64,
    pub handoff_unknown_new_session: u64,
    pub bra_rx: u64,
    pub bra_unmatched: u64,
    pub bri_from_mag: u64,
    pub bri_from_mag_unknown: u64,
    pub bri_from_mag_refused: u64,
    pub heartbeat_rx: u64,
    pub heartbeat_sent: u64,
    pub heartbeat_missed: u64,
    /// MAGs that answered a heartbeat with a Binding Error (status 2): no
    /// more heartbeats to them (RFC 5847 §3).
    pub heartbeat_unsupported: u64,
    /// Unsolicited Heartbeat Responses sent after a start that lost the
    /// session state (RFC 5847 §3.2).
    pub heartbeat_unsolicited_sent: u64,
    /// Registrations refused (129) for an entry whose revocation is in
    /// progress (RFC 5846 §8.1).
    pub pbu_refused_revoking: u64,
    /// Revoked entries deleted when their BRI ended (BRA, or out of
    /// retransmissions).
    pub revocations_completed: u64,
    /// Revocations in progress at the last stop, taken up at the start
    /// with their BRI sent again.
    pub revocations_resumed: u64,
    /// Binding Errors received (RFC 6275 §6.1.9), heartbeats' or not.
    pub binding_error_rx: u64,
    pub heartbeat_unconfigured_peer: u64,
    pub mag_unreachable: u64,
    pub mag_restart_detected: u64,
    pub bindings_dropped_on_mag_restart: u64,
    /// New registrations sent to another LMA (RFC 6463).
    pub redirected: u64,
}

#[derive(Clone, Debug)]
struct Bce {
    mn_id: Vec<u8>,
    /// MN link-layer identifier from the PBU (empty when it had none).
    llid: Vec<u8>,
    mag: Peer,
    sub_id: u32,
    uplink_key: u32,
    downlink_key: u32,
    home_v4: Option<(Ipv4Addr, u8)>,
    hnp: Option<Hnp>,
    att: Option<AccessTechType>,
    /// The MAG's link-local address on the MN's link, from a PBU's
    /// Link-local Address option (RFC 5213 §5.3.6); not stored durably:
    /// after a restart one asked for is generated again (pbu.rs
    /// `generated_link_local`).
    lla: Option<std::net::Ipv6Addr>,
    lifetime: Duration,
    last_ts: u64,
    /// Sequence number of the last PBU accepted (RFC 5213 §5.5 sequence-number scheme).
    last_seq: u16,
    /// `Some` while waiting MinDelayBeforeBCEDelete after a deregistration
    /// (the map entry is already removed).
    deleting: bool,
    /// RFC 5846 §8.1 "revocation in progress": the BRI (its sequence
    /// number) that revokes this entry. The entry stays, `deleting`, with
    /// its addresses, until the BRA or the BRI's last retransmission; a
    /// registration for it meanwhile is refused (`pbu.rs`).
    revoking: Option<u16>,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct PendingBri {
    mag: Peer,
    mn_id: Vec<u8>,
    /// The session's link-layer identifier and home network prefix at the
    /// MAG it names (RFC 5846 §6.1: the HNP "MUST be present when the BRI
    /// is used to revoke a single Proxy MIPv6 Binding Cache entry").
    llid: Vec<u8>,
    hnp: Option<Hnp>,
    trigger: u8,
    /// A global BRI (G, RFC 5846 §8.1): every entry through the MAG (no
    /// options) or those of one realm (`mn_id` "@realm"); `llid` and `hnp`
    /// are empty.
    global: bool,
    /// The entries this BRI revokes (`Bce::revoking`): deleted when it ends.
    revokes: Vec<u32>,
    retx: u32,
    max_retx: u32,
    timeout: Duration,
    deadline: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Bce(u32),
    Bri(u16),
    Heartbeat,
    /// MaxDelayBeforeNewBCEAssign of a held PBU (`handoff.rs`).
    Handoff(u32),
}

/// A MAG we have heard from (RFC 5847 heartbeat state).
#[derive(Clone, Debug)]
struct MagPeer {
    /// Where to send heartbeats: for IPv4 transport, the port its PBUs came from.
    peer: Peer,
    hb_seq: u32,
    hb_outstanding: bool,
    hb_missed: u32,
    restart_counter: Option<u32>,
    /// Answering heartbeats (see `PeerSummary::reachable`).
    hb_up: Option<bool>,
    /// Answered a heartbeat with a Binding Error, status 2: it does not do
    /// RFC 5847, and we send it no heartbeat again (§3).
    hb_unsupported: bool,
}

impl MagPeer {
    /// A MAG first heard of: no heartbeat yet.
    fn new(peer: Peer) -> Self {
        MagPeer {
            peer,
            hb_seq: 0,
            hb_outstanding: false,
            hb_missed: 0,
            restart_counter: None,
            hb_up: None,
            hb_unsupported: false,
        }
    }
}

/// A binding cache entry as `show lma-service session` would list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingInfo {
    pub mn_id: Vec<u8>,
    pub llid: Vec<u8>,
    pub mag: Peer,
    pub uplink_key: u32,
    pub downlink_key: u32,
    pub home_v4: Option<(Ipv4Addr, u8)>,
    pub hnp: Option<Hnp>,
    pub lifetime: Duration,
    pub deleting: bool,
    /// Index of the binding's traffic counters in the fast path.
    pub sub_id: u32,
    /// When the binding lapses unless refreshed (or, when deleting, goes).
    pub expires_at: Instant,
}

/// The LMA state machine.
pub struct Lma {
    cfg: LmaConfig,
    clock: Clock,
    mags: HashSet<IpAddr>,
    mag_peers: HashMap<IpAddr, MagPeer>,
    /// Binding cache entries through each MAG (RFC 5847 §3: no heartbeat
    /// request to a MAG without one).
    bces_per_mag: HashMap<IpAddr, u32>,
    hb_armed: bool,
    /// Sessions of each MN identifier (usually one): see [`Lma::sessions_of`].
    bce_by_id: by_nai::NaiIndex,
    /// By binding id (ours, handed out in sequence: each takes the bucket
    /// after the last one, `agent/idhash.rs` `SeqIdHasher`).
    bces: crate::agent::idhash::SeqIdMap<u32, Bce>,
    ids: IdAlloc,
    /// IPv4 pools, `ipv4_pool` first.
    v4: Vec<V4Pool>,
    v6: Option<V6Pool>,
    bri_seq: u16,
    bris: HashMap<u16, PendingBri>,
    /// PBUs with handoff state unknown, by the session they wait for.
    held: HashMap<u32, handoff::HeldPbu>,
    /// Held PBUs the previous MAG's answer released, to answer now.
    released: Vec<(u32, handoff::Lookup)>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    transmits: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    events: VecDeque<AnchorEvent>,
    /// Writes of durable state, taken by the shell (`persist.rs`).
    store: persist::StoreQueue,
    /// Answers to new bindings, held until their record is written.
    unconfirmed: crate::agent::unconfirmed::Unconfirmed<u32, (Peer, super::wire::BindingUpdate)>,
    /// Store writes the shell may have in flight (`first_write.rs`).
    writes_in_flight: usize,
    /// Datagrams read per pass (`first_write.rs`).
    pass_max: usize,
    pub counters: LmaCounters,
    /// Binding Errors of this second (`rx.rs`).
    be_limit: super::rx::BindingErrorLimit,
}

/// Outcome of PBU validation: a status and the options to put in the PBA.
struct Reply {
    status: BaStatus,
    lifetime: u16,
    /// Inline: an accepting PBA adds three or four (GRE key, HNP, IPv4 home
    /// address and default router), so a reply costs no allocation of its own.
    extra: Extra,
    /// The PBA's Sequence Number when it is not the PBU's (status 135
    /// carries the last one accepted, RFC 6275 §9.5.1).
    seq: Option<u16>,
    /// No PBA at all: a de-registration the LMA "MUST ignore" (RFC 5213
    /// §5.3.5, §5.4.1).
    ignore: bool,
    /// No PBA yet: the PBU waits for session `hold`'s previous MAG
    /// (`handoff.rs`).
    hold: Option<u32>,
}

/// The options a [`Reply`] adds to the PBA.
type Extra = smallvec::SmallVec<[MobilityOption; 6]>;

impl Reply {
    fn reject(status: BaStatus) -> Self {
        Reply {
            status,
            lifetime: 0,
            extra: Extra::new(),
            seq: None,
            ignore: false,
            hold: None,
        }
    }

    /// Held for session `id` (`handoff.rs`): no PBA now.
    fn held(id: u32) -> Self {
        Reply {
            ignore: true,
            hold: Some(id),
            ..Reply::reject(BaStatus::ACCEPTED)
        }
    }
}

impl Lma {
    pub fn new(cfg: LmaConfig, now: Instant, wall: SystemTime) -> Self {
        Lma {
            clock: Clock::new(now, wall),
            mags: cfg.mags.iter().copied().collect(),
            mag_peers: HashMap::new(),
            bces_per_mag: HashMap::new(),
            hb_armed: false,
            bce_by_id: Default::default(),
            bces: Default::default(),
            ids: IdAlloc::default(),
            v4: cfg
                .ipv4_pool
                .iter()
                .chain(&cfg.more_ipv4_pools)
                .cloned()
                .map(V4Pool::new)
                .collect(),
            v6: cfg.ipv6_pool.clone().map(V6Pool::new),
            bri_seq: 0,
            bris: HashMap::new(),
            held: HashMap::new(),
            released: Vec::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            dp: VecDeque::new(),
            events: VecDeque::new(),
            store: persist::StoreQueue::new(),
            unconfirmed: Default::default(),
            writes_in_flight: 1,
            pass_max: crate::agent::shell::RX_BURST,
            counters: LmaCounters::default(),
            be_limit: Default::default(),
            cfg,
        }
    }

    /// Takes from `new` (a reload, `daemon/reload.rs`) what may change
    /// while the LMA runs: the subscriber profiles — what a new binding may
    /// have (the mobility services, a static IPv4 home address, the pool).
    /// Bindings keep what they were given; the rest of `new` is a
    /// restart's.
    pub fn reconfigure(&mut self, new: &LmaConfig) {
        self.cfg.subscribers = new.subscribers.clone();
        self.cfg.default_profile = new.default_profile.clone();
        tracing::info!(
            profiles = self.cfg.subscribers.len(),
            default = self.cfg.default_profile.is_some(),
            "profiles taken from the reloaded configuration"
        );
    }

    /// Keeps what the data plane still forwards with (an earlier run's
    /// bindings in pinned maps) from being given to a new binding: ids
    /// (which are also the uplink GRE keys), home addresses and prefixes.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        for id in held.sub_ids.iter().chain(&held.keys) {
            self.ids.reserve(*id);
        }
        for a in &held.home_v4 {
            if let Some(p) = self.v4.iter_mut().find(|p| p.contains(*a)) {
                p.take(*a);
            }
        }
        if let Some(p) = self.v6.as_mut() {
            for h in &held.hnp64 {
                p.reserve(*h);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_dp(&mut self) -> Option<DpCommand> {
        self.dp.pop_front()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Number of binding cache entries (including those waiting for deletion).
    pub fn binding_count(&self) -> usize {
        self.bces.len()
    }

    /// Entries whose revocation is in progress (RFC 5846 §8.1).
    pub fn revocations_in_progress(&self) -> usize {
        self.bces.values().filter(|b| b.revoking.is_some()).count()
    }

    /// The first session of `mn_id`.
    pub fn binding(&self, mn_id: &[u8]) -> Option<BindingInfo> {
        self.bindings_of(mn_id).into_iter().next()
    }

    /// Every session of `mn_id`, oldest first.
    pub fn bindings_of(&self, mn_id: &[u8]) -> Vec<BindingInfo> {
        self.sessions_of(mn_id)
            .filter_map(|id| self.info(id))
            .collect()
    }

    /// The ids of every session of `mn_id`, oldest first.
    fn sessions_of<'a>(&'a self, mn_id: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let ours = move |id: &u32| self.bces.get(id).is_some_and(|b| b.mn_id == mn_id);
        self.bce_by_id
            .candidates(mn_id)
            .iter()
            .copied()
            .filter(ours)
    }

    /// Every binding cache entry (for `show bindings`).
    pub fn all_bindings(&self) -> Vec<BindingInfo> {
        let mut ids: Vec<u32> = self.bces.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.info(id)).collect()
    }

    fn info(&self, id: u32) -> Option<BindingInfo> {
        let b = self.bces.get(&id)?;
        Some(BindingInfo {
            mn_id: b.mn_id.clone(),
            llid: b.llid.clone(),
            mag: b.mag,
            uplink_key: b.uplink_key,
            downlink_key: b.downlink_key,
            home_v4: b.home_v4,
            hnp: b.hnp,
            lifetime: b.lifetime,
            deleting: b.deleting,
            sub_id: b.sub_id,
            expires_at: b.deadline,
        })
    }

    fn queue(&mut self, peer: Peer, msg: &Message) {
        crate::pmipv6::rx::queue(&self.cfg.local, &mut self.transmits, peer, msg);
    }

    fn arm(&mut self, deadline: Instant, key: TimerKey) {
        self.timers.push(Reverse((deadline, key)));
    }

    /// Processes one received Mobility Header from `peer`.
    pub fn handle(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        self.counters.rx_packets += 1;
        let Some(ck) = self.cfg.local.rx_checksum(&peer) else {
            self.counters.rx_unexpected_message += 1;
            return;
        };
        let out = (&self.cfg.local, &mut self.transmits);
        let count = (&mut self.counters, &mut self.be_limit);
        let Some(msg) = super::rx::receive(data, ck, (now, peer), count, out) else {
            return;
        };
        match msg {
            Message::BindingUpdate(bu) => self.on_pbu(now, peer, bu),
            Message::Heartbeat(hb) => self.on_heartbeat(peer, hb),
            Message::BindingError(be) => self.on_binding_error(peer, &be),
            Message::RevocationAck(bra) => self.on_bra(now, peer, bra),
            Message::RevocationIndication(bri) => self.on_mag_bri(peer, bri),
            _ => self.counters.rx_unexpected_message += 1,
        }
        self.answer_released(now);
    }

    /// Fires every timer due at `now`: binding expiry, delayed deletion, BRI retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Bce(id) => {
                    let Some(b) = self.bces.get(&id) else {
                        continue;
                    };
                    if b.deadline != t {
                        continue;
                    }
                    if b.revoking.is_some() {
                        // Its lifetime ran out before the BRI ended.
                    } else if b.deleting {
                        self.counters.deleted_after_dereg += 1;
                    } else {
                        self.counters.expired += 1;
                        self.ended(id, GoneCause::Expired);
                    }
                    self.delete(id);
                }
                TimerKey::Heartbeat => self.on_heartbeat_timer(now),
                TimerKey::Handoff(id) => self.held_wait_over(id, t),
                TimerKey::Bri(seq) => {
                    let Some(p) = self.bris.get_mut(&seq) else {
                        continue;
                    };
                    if p.deadline != t {
                        continue;
                    }
                    if p.retx >= p.max_retx {
                        let p = self.bris.remove(&seq).expect("checked");
                        self.counters.bri_gave_up += 1;
                        self.held_bri_gave_up(seq);
                        self.revocation_over(&p.revokes, seq);
                        continue;
                    }
                    p.retx += 1;
                    p.timeout = (p.timeout * 2).min(self.cfg.bri_retx_max);
                    p.deadline = now + p.timeout;
                    let p = p.clone();
                    self.counters.bri_retransmitted += 1;
                    self.transmit_bri(seq, &p);
                    self.arm(p.deadline, TimerKey::Bri(seq));
                }
            }
        }
        self.answer_released(now);
    }
}
