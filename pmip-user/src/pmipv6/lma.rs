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

use super::wire::{
    ba_flags, br_flags, option::hoa_status, revocation_trigger, AccessTechType, BaStatus,
    BindingAck, BindingError, BindingUpdate, HandoffIndicator, Heartbeat, Message, MobilityOption,
    OptionsExt, RevocationAck, RevocationIndication,
};
use super::{timestamp_distance, wire, Clock, IdAlloc, LocalAddrs, Peer, Transmit};
use crate::dataplane::{AnchorBinding, DpCommand, Hnp, TunnelEnds};

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
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            ipv4: true,
            ipv6: false,
            allow_static: false,
            static_v4: None,
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
    pub ipv6_pool: Option<Ipv6PoolConfig>,
    /// Known subscribers by MN identifier (NAI).
    pub subscribers: HashMap<String, Profile>,
    /// Profile for identifiers not listed; `None` refuses them.
    pub default_profile: Option<Profile>,
    /// Longest lifetime granted ("reg-lifetime 40000").
    pub max_lifetime: Duration,
    /// RFC 5213 TimestampValidityWindow (300 ms).
    pub timestamp_window: Duration,
    /// RFC 5213 MinDelayBeforeBCEDelete (10 s).
    pub min_delay_before_bce_delete: Duration,
    /// Send a BRI to the previous MAG on handover (RFC 5846; "revocation enable").
    pub revocation: bool,
    pub bri_retx_initial: Duration,
    pub bri_retx_max: Duration,
    pub bri_max_retx: u32,
    pub restart_counter: u32,
    /// RFC 5847 HEARTBEAT_INTERVAL towards the MAGs we serve (60 s).
    pub heartbeat_interval: Duration,
    /// RFC 5847 MISSING_HEARTBEATS_ALLOWED (3) before a MAG counts as unreachable.
    pub heartbeat_missing_limit: u32,
}

impl Default for LmaConfig {
    fn default() -> Self {
        LmaConfig {
            local: LocalAddrs::default(),
            mags: Vec::new(),
            ipv4_pool: None,
            ipv6_pool: None,
            subscribers: HashMap::new(),
            default_profile: None,
            max_lifetime: Duration::from_secs(40000),
            timestamp_window: Duration::from_millis(300),
            min_delay_before_bce_delete: Duration::from_secs(10),
            revocation: true,
            bri_retx_initial: Duration::from_secs(1),
            bri_retx_max: Duration::from_secs(2),
            bri_max_retx: 3,
            restart_counter: 1,
            heartbeat_interval: Duration::from_secs(60),
            heartbeat_missing_limit: 3,
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
    pub pbu_gre_key_missing: u64,
    pub pbu_v4_not_authorized: u64,
    pub pbu_no_resources: u64,
    pub pbu_accepted: u64,
    pub registrations: u64,
    pub refreshes: u64,
    pub handovers: u64,
    pub deregistrations: u64,
    pub dereg_from_old_mag: u64,
    pub dereg_unknown: u64,
    pub expired: u64,
    pub deleted_after_dereg: u64,
    pub bri_sent: u64,
    pub bri_retransmitted: u64,
    pub bri_gave_up: u64,
    pub bra_rx: u64,
    pub bra_unmatched: u64,
    pub heartbeat_rx: u64,
    pub heartbeat_sent: u64,
    pub heartbeat_missed: u64,
    pub heartbeat_unconfigured_peer: u64,
    pub mag_unreachable: u64,
    pub mag_restart_detected: u64,
    pub bindings_dropped_on_mag_restart: u64,
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
    lifetime: Duration,
    last_ts: u64,
    /// `Some` while waiting MinDelayBeforeBCEDelete after a deregistration
    /// (the map entry is already removed).
    deleting: bool,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct PendingBri {
    mag: Peer,
    mn_id: Vec<u8>,
    llid: Vec<u8>,
    trigger: u8,
    retx: u32,
    timeout: Duration,
    deadline: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Bce(u32),
    Bri(u16),
    Heartbeat,
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
}

struct V4Pool {
    cfg: Ipv4PoolConfig,
    first: u32,
    last: u32,
    next: u32,
    free: VecDeque<u32>,
    used: HashSet<u32>,
}

impl V4Pool {
    fn new(cfg: Ipv4PoolConfig) -> Self {
        let plen = u32::from(cfg.prefix_len.min(32));
        let mask = if plen == 0 {
            0
        } else {
            u32::MAX << (32 - plen)
        };
        let net = u32::from(cfg.network) & mask;
        let bcast = net | !mask;
        // Leave out the network and broadcast addresses of pools larger than /31.
        let (first, last) = if plen >= 31 {
            (net, bcast)
        } else {
            (net + 1, bcast - 1)
        };
        V4Pool {
            cfg,
            first,
            last,
            next: first,
            free: VecDeque::new(),
            used: HashSet::new(),
        }
    }
    fn contains(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        a >= self.first && a <= self.last && a != u32::from(self.cfg.gateway)
    }
    fn alloc(&mut self) -> Option<Ipv4Addr> {
        while let Some(a) = self.free.pop_front() {
            if self.used.insert(a) {
                return Some(a.into());
            }
        }
        while self.next <= self.last {
            let a = self.next;
            self.next += 1;
            if a != u32::from(self.cfg.gateway) && self.used.insert(a) {
                return Some(a.into());
            }
        }
        None
    }
    fn take(&mut self, a: Ipv4Addr) -> bool {
        self.contains(a) && self.used.insert(a.into())
    }
    fn release(&mut self, a: Ipv4Addr) {
        if self.used.remove(&u32::from(a)) {
            self.free.push_back(a.into());
        }
    }
}

struct V6Pool {
    cfg: Ipv6PoolConfig,
    next: u128,
    count: u128,
    free: VecDeque<u128>,
    /// Indices held by the data plane from an earlier run: never allocated.
    reserved: HashSet<u128>,
}

impl V6Pool {
    fn new(cfg: Ipv6PoolConfig) -> Self {
        let bits = u32::from(cfg.assign_len.saturating_sub(cfg.prefix_len)).min(64);
        V6Pool {
            count: 1u128 << bits,
            next: 0,
            free: VecDeque::new(),
            reserved: HashSet::new(),
            cfg,
        }
    }
    fn index_of(&self, prefix: u128) -> u128 {
        let shift = 128 - u32::from(self.cfg.assign_len.min(128));
        (prefix ^ u128::from(self.cfg.prefix))
            .checked_shr(shift)
            .unwrap_or(0)
    }
    /// Keeps the prefix whose first 64 bits are `hnp64` from being allocated.
    fn reserve(&mut self, hnp64: [u8; 8]) {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hnp64);
        let p = u128::from_be_bytes(b);
        let bits = u32::from(self.cfg.prefix_len.min(128));
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        if p & mask == u128::from(self.cfg.prefix) & mask {
            self.reserved.insert(self.index_of(p));
        }
    }
    fn alloc(&mut self) -> Option<Hnp> {
        let idx = loop {
            let i = match self.free.pop_front() {
                Some(i) => i,
                None if self.next < self.count => {
                    self.next += 1;
                    self.next - 1
                }
                None => return None,
            };
            if !self.reserved.contains(&i) {
                break i;
            }
        };
        let shift = 128 - u32::from(self.cfg.assign_len.min(128));
        let base = u128::from(self.cfg.prefix);
        let p = base | idx.checked_shl(shift).unwrap_or(0);
        Some(Hnp {
            prefix: Ipv6Addr::from(p),
            len: self.cfg.assign_len,
        })
    }
    fn release(&mut self, h: Hnp) {
        let idx = self.index_of(u128::from(h.prefix));
        if !self.reserved.remove(&idx) || idx < self.next {
            self.free.push_back(idx);
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
    hb_armed: bool,
    /// Sessions of each MN identifier (usually one).
    bce_by_id: HashMap<Vec<u8>, Vec<u32>>,
    bces: HashMap<u32, Bce>,
    ids: IdAlloc,
    v4: Option<V4Pool>,
    v6: Option<V6Pool>,
    bri_seq: u16,
    bris: HashMap<u16, PendingBri>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    transmits: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    pub counters: LmaCounters,
}

/// Outcome of PBU validation: a status and the options to put in the PBA.
struct Reply {
    status: BaStatus,
    lifetime: u16,
    extra: Vec<MobilityOption>,
}

impl Reply {
    fn reject(status: BaStatus) -> Self {
        Reply {
            status,
            lifetime: 0,
            extra: vec![],
        }
    }
}

impl Lma {
    pub fn new(cfg: LmaConfig, now: Instant, wall: SystemTime) -> Self {
        Lma {
            clock: Clock::new(now, wall),
            mags: cfg.mags.iter().copied().collect(),
            mag_peers: HashMap::new(),
            hb_armed: false,
            bce_by_id: HashMap::new(),
            bces: HashMap::new(),
            ids: IdAlloc::new(4096),
            v4: cfg.ipv4_pool.clone().map(V4Pool::new),
            v6: cfg.ipv6_pool.clone().map(V6Pool::new),
            bri_seq: 0,
            bris: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            dp: VecDeque::new(),
            counters: LmaCounters::default(),
            cfg,
        }
    }

    /// Keeps what the data plane still forwards with (an earlier run's
    /// bindings in pinned maps) from being given to a new binding: ids
    /// (which are also the uplink GRE keys), home addresses and prefixes.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        for id in held.sub_ids.iter().chain(&held.keys) {
            self.ids.reserve(*id);
        }
        if let Some(p) = self.v4.as_mut() {
            for a in &held.home_v4 {
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

    /// The first session of `mn_id`.
    pub fn binding(&self, mn_id: &[u8]) -> Option<BindingInfo> {
        self.bindings_of(mn_id).into_iter().next()
    }

    /// Every session of `mn_id`, oldest first.
    pub fn bindings_of(&self, mn_id: &[u8]) -> Vec<BindingInfo> {
        let ids = self
            .bce_by_id
            .get(mn_id)
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        ids.iter().filter_map(|id| self.info(*id)).collect()
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

    /// The binding cache, one line per entry, sorted by MN identifier
    /// (what `show lma-service session` lists).
    pub fn show_sessions(&self, now: Instant) -> String {
        use std::fmt::Write;
        let mut v: Vec<&Bce> = self.bces.values().collect();
        v.sort_by(|a, b| a.mn_id.cmp(&b.mn_id));
        let mut out = format!("Total number of sessions: {}\n", v.len());
        for b in v {
            let hoa = b
                .home_v4
                .map(|(a, l)| format!("{a}/{l}"))
                .unwrap_or_else(|| "-".into());
            let hnp = b
                .hnp
                .map(|h| format!("{}/{}", h.prefix, h.len))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "nai {} mag {} hoa {hoa} hnp {hnp} gre-up {} gre-down {} lifetime {} remaining {}{}",
                String::from_utf8_lossy(&b.mn_id),
                b.mag.ip(),
                b.uplink_key,
                b.downlink_key,
                b.lifetime.as_secs(),
                b.deadline.saturating_duration_since(now).as_secs(),
                if b.deleting { " (deregistered)" } else { "" },
            );
        }
        out
    }

    fn queue(&mut self, peer: Peer, msg: &Message) {
        let Some(ck) = self.cfg.local.checksum(&peer) else {
            return;
        };
        if let Ok(payload) = msg.to_vec(ck) {
            self.transmits.push_back(Transmit { peer, payload });
        }
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
        let msg = match Message::parse(data, ck) {
            Ok(m) => m,
            Err(wire::Error::Checksum) => {
                self.counters.rx_bad_checksum += 1;
                return;
            }
            Err(wire::Error::UnknownType(_)) => {
                // RFC 6275 §9.2: Binding Error, status 2.
                self.counters.rx_unknown_type += 1;
                self.counters.binding_error_sent += 1;
                let be = Message::BindingError(BindingError {
                    status: wire::be_status::UNRECOGNIZED_MH_TYPE,
                    home_address: Ipv6Addr::UNSPECIFIED,
                    options: vec![],
                });
                self.queue(peer, &be);
                return;
            }
            Err(_) => {
                self.counters.rx_malformed += 1;
                return;
            }
        };
        match msg {
            Message::BindingUpdate(bu) => self.on_pbu(now, peer, bu),
            Message::Heartbeat(hb) => self.on_heartbeat(peer, hb),
            Message::RevocationAck(bra) => self.on_bra(bra),
            _ => self.counters.rx_unexpected_message += 1,
        }
    }

    fn on_heartbeat(&mut self, peer: Peer, hb: Heartbeat) {
        if !self.mags.contains(&peer.ip()) {
            self.counters.heartbeat_unconfigured_peer += 1;
            return;
        }
        self.counters.heartbeat_rx += 1;
        if !hb.response {
            let reply = Message::Heartbeat(Heartbeat {
                unsolicited: false,
                response: true,
                seq: hb.seq,
                options: vec![MobilityOption::RestartCounter(self.cfg.restart_counter)],
            });
            self.queue(peer, &reply);
        } else if let Some(m) = self.mag_peers.get_mut(&peer.ip()) {
            if m.hb_outstanding && m.hb_seq == hb.seq {
                m.hb_outstanding = false;
                m.hb_missed = 0;
            } else {
                self.counters.rx_unexpected_message += 1;
                return;
            }
        }
        let Some(rc) = hb.restart_counter() else {
            return;
        };
        let m = self.mag_peers.entry(peer.ip()).or_insert(MagPeer {
            peer,
            hb_seq: 0,
            hb_outstanding: false,
            hb_missed: 0,
            restart_counter: None,
        });
        let restarted = m.restart_counter.is_some_and(|old| old != rc);
        m.restart_counter = Some(rc);
        if restarted {
            // RFC 5847 §4: the MAG lost its binding update list; the
            // bindings through it are stale, so release them.
            self.counters.mag_restart_detected += 1;
            let ip = peer.ip();
            let stale: Vec<u32> = self
                .bces
                .iter()
                .filter(|(_, b)| b.mag.ip() == ip && !b.deleting)
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                self.counters.bindings_dropped_on_mag_restart += 1;
                self.delete(id);
            }
        }
    }

    /// Remembers a MAG that reached us, for heartbeats, and starts the
    /// heartbeat timer with the first one.
    fn note_mag(&mut self, now: Instant, peer: Peer) {
        self.mag_peers
            .entry(peer.ip())
            .and_modify(|m| m.peer = peer)
            .or_insert(MagPeer {
                peer,
                hb_seq: 0,
                hb_outstanding: false,
                hb_missed: 0,
                restart_counter: None,
            });
        if !self.hb_armed && !self.cfg.heartbeat_interval.is_zero() {
            self.hb_armed = true;
            self.arm(now + self.cfg.heartbeat_interval, TimerKey::Heartbeat);
        }
    }

    fn on_heartbeat_timer(&mut self, now: Instant) {
        let mut out = Vec::new();
        for m in self.mag_peers.values_mut() {
            if m.hb_outstanding {
                m.hb_missed += 1;
                self.counters.heartbeat_missed += 1;
                if m.hb_missed == self.cfg.heartbeat_missing_limit {
                    // Path to the MAG is down (RFC 5847 §4); its bindings
                    // stay until they expire, the MAG may come back.
                    self.counters.mag_unreachable += 1;
                }
            }
            m.hb_seq = m.hb_seq.wrapping_add(1);
            m.hb_outstanding = true;
            out.push((m.peer, m.hb_seq));
        }
        for (peer, seq) in out {
            self.counters.heartbeat_sent += 1;
            let msg = Message::Heartbeat(Heartbeat {
                unsolicited: false,
                response: false,
                seq,
                options: vec![MobilityOption::RestartCounter(self.cfg.restart_counter)],
            });
            self.queue(peer, &msg);
        }
        self.arm(now + self.cfg.heartbeat_interval, TimerKey::Heartbeat);
    }

    fn on_bra(&mut self, bra: RevocationAck) {
        self.counters.bra_rx += 1;
        if self.bris.remove(&bra.seq).is_none() {
            self.counters.bra_unmatched += 1;
        }
    }

    fn on_pbu(&mut self, now: Instant, peer: Peer, bu: BindingUpdate) {
        if !bu.is_proxy() {
            // A plain MIPv6 binding update: not ours to serve.
            self.counters.rx_not_proxy += 1;
            return;
        }
        let reply = self.process_pbu(now, peer, &bu);
        if reply.status.is_accepted() {
            self.counters.pbu_accepted += 1;
            self.note_mag(now, peer);
        }
        // RFC 5213 §5.3.x: the PBA echoes the identifying options of the PBU.
        let mut options = Vec::with_capacity(8);
        if let Some(id) = bu.mn_id() {
            options.push(MobilityOption::MnId {
                subtype: wire::option::MN_ID_SUBTYPE_NAI,
                id: id.to_vec(),
            });
        }
        for o in &bu.options {
            match o {
                MobilityOption::HandoffIndicator(_)
                | MobilityOption::AccessTechType(_)
                | MobilityOption::MnLinkLayerId(_)
                | MobilityOption::LinkLocalAddress(_) => options.push(o.clone()),
                _ => {}
            }
        }
        // TIMESTAMP_MISMATCH carries our clock instead (RFC 5213 §5.5).
        if reply.status != BaStatus::TIMESTAMP_MISMATCH {
            if let Some(ts) = bu.timestamp() {
                options.push(MobilityOption::Timestamp(ts));
            }
        }
        options.extend(reply.extra);
        let ba = Message::BindingAck(BindingAck {
            status: reply.status,
            flags: ba_flags::P,
            seq: bu.seq,
            lifetime: reply.lifetime,
            options,
        });
        self.queue(peer, &ba);
    }

    fn profile(&self, mn_id: &[u8]) -> Option<Profile> {
        let name = std::str::from_utf8(mn_id).ok()?;
        self.cfg
            .subscribers
            .get(name)
            .cloned()
            .or_else(|| self.cfg.default_profile.clone())
    }

    /// Validates and applies a PBU (RFC 5213 §5.3), returning the PBA contents.
    fn process_pbu(&mut self, now: Instant, peer: Peer, bu: &BindingUpdate) -> Reply {
        if !self.mags.contains(&peer.ip()) {
            self.counters.pbu_unconfigured_mag += 1;
            return Reply::reject(BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG);
        }
        let Some(mn_id) = bu.mn_id() else {
            self.counters.pbu_missing_option += 1;
            return Reply::reject(BaStatus::MISSING_MN_IDENTIFIER_OPTION);
        };
        let dereg = bu.lifetime == 0;
        let hnps = bu.hnps();
        let v4_req = bu.ipv4_hoa_request();
        if !dereg {
            if bu.handoff_indicator().is_none() {
                self.counters.pbu_missing_option += 1;
                return Reply::reject(BaStatus::MISSING_HANDOFF_INDICATOR_OPTION);
            }
            if bu.access_tech_type().is_none() {
                self.counters.pbu_missing_option += 1;
                return Reply::reject(BaStatus::MISSING_ACCESS_TECH_TYPE_OPTION);
            }
            // RFC 5213 wants an HNP option; RFC 5844 §3.1.3 lets an
            // IPv4-only request go without one: accept either.
            if hnps.is_empty() && v4_req.is_none() {
                self.counters.pbu_missing_option += 1;
                return Reply::reject(BaStatus::MISSING_HOME_NETWORK_PREFIX_OPTION);
            }
        }
        // RFC 5213 §5.5: the timestamp must be within the window of our clock.
        let our_ts = self.clock.timestamp(now);
        let ts = match bu.timestamp() {
            Some(ts) if timestamp_distance(ts, our_ts) <= self.cfg.timestamp_window => ts,
            _ => {
                self.counters.pbu_timestamp_mismatch += 1;
                let mut r = Reply::reject(BaStatus::TIMESTAMP_MISMATCH);
                r.extra.push(MobilityOption::Timestamp(our_ts));
                return r;
            }
        };
        let Some(profile) = self.profile(mn_id) else {
            self.counters.pbu_unknown_mn += 1;
            return Reply::reject(BaStatus::PROXY_REG_NOT_ENABLED);
        };
        let llid = bu.link_layer_id().unwrap_or(&[]).to_vec();
        let existing = self.find_session(mn_id, &llid, bu.handoff_indicator(), &hnps);
        if let Some(id) = existing {
            // Ordering and replay: only strictly newer PBUs count (RFC 5213 §5.5).
            if ts <= self.bces[&id].last_ts {
                self.counters.pbu_timestamp_replayed += 1;
                return Reply::reject(BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED);
            }
        }
        if dereg {
            return self.deregister(now, peer, existing, ts);
        }
        let downlink_key = match bu.gre_key() {
            Some(Some(k)) => k,
            _ => {
                // Our tunnels are GRE with keys (RFC 5845 §5.2).
                self.counters.pbu_gre_key_missing += 1;
                return Reply::reject(BaStatus::GRE_KEY_OPTION_REQUIRED);
            }
        };
        if v4_req.is_some() && !profile.ipv4 {
            self.counters.pbu_v4_not_authorized += 1;
            return Reply::reject(BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE);
        }
        if !hnps.is_empty() && !profile.ipv6 && v4_req.is_none() {
            self.counters.pbu_v4_not_authorized += 1;
            return Reply::reject(BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE);
        }
        let requested = Duration::from_secs(u64::from(bu.lifetime_secs()));
        let lifetime = requested.min(self.cfg.max_lifetime);
        let lifetime_units = (lifetime.as_secs() / 4).clamp(1, u64::from(u16::MAX)) as u16;
        let lifetime = Duration::from_secs(u64::from(lifetime_units) * 4);
        let att = bu.access_tech_type();
        // HI 5, "handoff state not changed (re-registration)": the MN already
        // holds its address, e.g. after we restarted and lost the binding.
        let reregistration =
            bu.handoff_indicator() == Some(HandoffIndicator::HandoffStateNotChanged);

        let id = match existing {
            Some(id) => {
                let b = self.bces.get(&id).expect("index consistent");
                // RFC 5213 §5.3.x: a prefix the MN does not hold is refused.
                let wants_other_hnp = hnps.iter().any(|(l, p)| {
                    !p.is_unspecified() && b.hnp.is_some_and(|h| h.prefix != *p || h.len != *l)
                });
                if wants_other_hnp {
                    return Reply::reject(BaStatus::BCE_PBU_PREFIX_SET_DO_NOT_MATCH);
                }
                if let (Some((_, a)), Some((have, _))) = (v4_req, b.home_v4) {
                    if !a.is_unspecified() && a != have {
                        self.counters.pbu_v4_not_authorized += 1;
                        return Reply::reject(BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS);
                    }
                }
                let old_mag = b.mag;
                let old_att = b.att;
                let was_deleting = b.deleting;
                let b = self.bces.get_mut(&id).expect("index consistent");
                let handover = old_mag != peer;
                // HI 2 moved the session to another interface of the MN.
                if !llid.is_empty() {
                    b.llid = llid.clone();
                }
                let changed = handover || b.downlink_key != downlink_key || was_deleting;
                b.mag = peer;
                b.downlink_key = downlink_key;
                b.last_ts = ts;
                b.lifetime = lifetime;
                b.att = att;
                b.deleting = false;
                b.deadline = now + lifetime;
                let deadline = b.deadline;
                self.arm(deadline, TimerKey::Bce(id));
                if changed {
                    // One map update switches the downlink tunnel (same uplink key).
                    if let Some(ab) = self.anchor_binding(id) {
                        self.dp.push_back(DpCommand::InstallAnchor(ab));
                    }
                }
                if handover && !was_deleting {
                    self.counters.handovers += 1;
                    if self.cfg.revocation {
                        let trigger = if old_att == att {
                            revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT
                        } else {
                            revocation_trigger::INTER_MAG_HANDOVER_DIFFERENT_ATT
                        };
                        self.send_bri(now, old_mag, mn_id.to_vec(), llid.clone(), trigger);
                    }
                } else if was_deleting {
                    self.counters.registrations += 1;
                } else {
                    self.counters.refreshes += 1;
                }
                id
            }
            None => match self.create(
                now,
                peer,
                mn_id,
                &llid,
                &profile,
                v4_req,
                !hnps.is_empty(),
                downlink_key,
                ts,
                lifetime,
                att,
                reregistration,
            ) {
                Ok(id) => id,
                Err(r) => return r,
            },
        };
        let b = &self.bces[&id];
        let mut extra = vec![MobilityOption::GreKey(Some(b.uplink_key))];
        if let Some(h) = b.hnp {
            extra.insert(
                0,
                MobilityOption::HomeNetworkPrefix {
                    prefix_len: h.len,
                    prefix: h.prefix,
                },
            );
        }
        if let Some((addr, plen)) = b.home_v4 {
            extra.push(MobilityOption::Ipv4HoaReply {
                status: hoa_status::SUCCESS,
                prefix_len: plen,
                addr,
            });
            if let Some(p) = &self.v4 {
                extra.push(MobilityOption::Ipv4DefaultRouter(p.cfg.gateway));
            }
        }
        Reply {
            status: BaStatus::ACCEPTED,
            lifetime: lifetime_units,
            extra,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        now: Instant,
        peer: Peer,
        mn_id: &[u8],
        llid: &[u8],
        profile: &Profile,
        v4_req: Option<(u8, Ipv4Addr)>,
        wants_v6: bool,
        downlink_key: u32,
        ts: u64,
        lifetime: Duration,
        att: Option<AccessTechType>,
        reregistration: bool,
    ) -> Result<u32, Reply> {
        // IPv4 home address: the profile's static one, the requested one if
        // the profile allows it, or the next from the pool (RFC 5844 §3.1.3).
        let mut home_v4 = None;
        if let Some((_, req)) = v4_req {
            let Some(pool) = self.v4.as_mut() else {
                self.counters.pbu_v4_not_authorized += 1;
                return Err(Reply::reject(
                    BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE,
                ));
            };
            let plen = pool.cfg.prefix_len;
            let addr = if let Some(s) = profile.static_v4 {
                if !req.is_unspecified() && req != s {
                    self.counters.pbu_v4_not_authorized += 1;
                    return Err(Reply::reject(
                        BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                    ));
                }
                // A static address outside the pool is the operator's business.
                if pool.contains(s) && !pool.take(s) {
                    self.counters.pbu_no_resources += 1;
                    return Err(Reply::reject(
                        BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                    ));
                }
                s
            } else if !req.is_unspecified() {
                // A MAG re-registering after we lost state (HI 5) asks for
                // the address we gave before: honour it if it is free.
                if !(profile.allow_static || reregistration) || !pool.take(req) {
                    self.counters.pbu_v4_not_authorized += 1;
                    return Err(Reply::reject(
                        BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                    ));
                }
                req
            } else {
                match pool.alloc() {
                    Some(a) => a,
                    None => {
                        self.counters.pbu_no_resources += 1;
                        return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
                    }
                }
            };
            home_v4 = Some((addr, plen));
        }
        let mut hnp = None;
        if wants_v6 {
            match self.v6.as_mut().and_then(|p| p.alloc()) {
                Some(h) if profile.ipv6 => hnp = Some(h),
                Some(h) => {
                    self.v6.as_mut().expect("allocated from it").release(h);
                }
                None if v4_req.is_none() => {
                    self.release_v4(home_v4);
                    self.counters.pbu_no_resources += 1;
                    return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
                }
                None => {}
            }
        }
        let Some(id) = self.ids.alloc() else {
            self.release_v4(home_v4);
            if let (Some(h), Some(p)) = (hnp, self.v6.as_mut()) {
                p.release(h);
            }
            self.counters.pbu_no_resources += 1;
            return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
        };
        // The uplink key is the binding id: unique among live bindings.
        let bce = Bce {
            mn_id: mn_id.to_vec(),
            llid: llid.to_vec(),
            mag: peer,
            sub_id: id,
            uplink_key: id,
            downlink_key,
            home_v4,
            hnp,
            att,
            lifetime,
            last_ts: ts,
            deleting: false,
            deadline: now + lifetime,
        };
        self.bces.insert(id, bce);
        self.bce_by_id.entry(mn_id.to_vec()).or_default().push(id);
        self.arm(now + lifetime, TimerKey::Bce(id));
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::InstallAnchor(ab));
        }
        self.counters.registrations += 1;
        Ok(id)
    }

    fn release_v4(&mut self, a: Option<(Ipv4Addr, u8)>) {
        if let (Some((a, _)), Some(p)) = (a, self.v4.as_mut()) {
            p.release(a);
        }
    }

    fn deregister(&mut self, now: Instant, peer: Peer, existing: Option<u32>, ts: u64) -> Reply {
        let Some(id) = existing else {
            self.counters.dereg_unknown += 1;
            return Reply {
                status: BaStatus::ACCEPTED,
                lifetime: 0,
                extra: vec![],
            };
        };
        let b = self.bces.get_mut(&id).expect("index consistent");
        if b.mag != peer {
            // A late deregistration from the MAG the subscriber left: the
            // binding now belongs to the new MAG; acknowledge, change nothing.
            self.counters.dereg_from_old_mag += 1;
            return Reply {
                status: BaStatus::ACCEPTED,
                lifetime: 0,
                extra: vec![],
            };
        }
        b.last_ts = ts;
        if b.deleting {
            return Reply {
                status: BaStatus::ACCEPTED,
                lifetime: 0,
                extra: vec![],
            };
        }
        // RFC 5213 §5.3.5: keep the entry MinDelayBeforeBCEDelete so a new
        // MAG can take it over; the tunnel to the old MAG goes now.
        b.deleting = true;
        b.deadline = now + self.cfg.min_delay_before_bce_delete;
        let deadline = b.deadline;
        self.counters.deregistrations += 1;
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::RemoveAnchor(ab));
        }
        self.arm(deadline, TimerKey::Bce(id));
        Reply {
            status: BaStatus::ACCEPTED,
            lifetime: 0,
            extra: vec![],
        }
    }

    fn anchor_binding(&self, id: u32) -> Option<AnchorBinding> {
        let b = self.bces.get(&id)?;
        Some(AnchorBinding {
            sub_id: b.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.local.for_peer(&b.mag)?,
                remote: b.mag.ip(),
            },
            uplink_key: b.uplink_key,
            downlink_key: b.downlink_key,
            home_v4: b.home_v4.map(|(a, _)| a),
            hnp: b.hnp,
        })
    }

    /// Deletes a binding and frees what it held.
    fn delete(&mut self, id: u32) {
        let Some(b) = self.bces.get(&id) else { return };
        if !b.deleting {
            if let Some(ab) = self.anchor_binding(id) {
                self.dp.push_back(DpCommand::RemoveAnchor(ab));
            }
        }
        let b = self.bces.remove(&id).expect("checked");
        if let Some(v) = self.bce_by_id.get_mut(&b.mn_id) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.bce_by_id.remove(&b.mn_id);
            }
        }
        self.release_v4(b.home_v4);
        if let (Some(h), Some(p)) = (b.hnp, self.v6.as_mut()) {
            p.release(h);
        }
        self.ids.release(id);
    }

    /// Revokes every session of `mn_id` (administrative): BRI to each MAG
    /// and delete. Returns whether there was any.
    pub fn revoke(&mut self, now: Instant, mn_id: &[u8], trigger: u8) -> bool {
        let ids = self.bce_by_id.get(mn_id).cloned().unwrap_or_default();
        for id in &ids {
            let (mag, llid) = {
                let b = &self.bces[id];
                (b.mag, b.llid.clone())
            };
            self.delete(*id);
            self.send_bri(now, mag, mn_id.to_vec(), llid, trigger);
        }
        !ids.is_empty()
    }

    /// RFC 5213 §5.4.1, simplified: the session with the same link-layer
    /// identifier; with HI 2 (handoff between interfaces) the session holding
    /// the requested prefix; a PBU without an identifier matches a lone session.
    fn find_session(
        &self,
        mn_id: &[u8],
        llid: &[u8],
        hi: Option<HandoffIndicator>,
        hnps: &[(u8, Ipv6Addr)],
    ) -> Option<u32> {
        let ids = self.bce_by_id.get(mn_id)?;
        if let Some(id) = ids.iter().find(|id| self.bces[*id].llid == llid) {
            return Some(*id);
        }
        if hi == Some(HandoffIndicator::HandoffBetweenInterfaces) {
            let by_prefix = ids.iter().find(|id| {
                let h = self.bces[*id].hnp;
                hnps.iter()
                    .any(|(l, p)| h.is_some_and(|h| h.prefix == *p && h.len == *l))
            });
            if by_prefix.is_some() {
                return by_prefix.copied();
            }
        }
        if llid.is_empty() && ids.len() == 1 {
            return Some(ids[0]);
        }
        None
    }

    fn send_bri(&mut self, now: Instant, mag: Peer, mn_id: Vec<u8>, llid: Vec<u8>, trigger: u8) {
        self.bri_seq = self.bri_seq.wrapping_add(1);
        let seq = self.bri_seq;
        let p = PendingBri {
            mag,
            mn_id,
            llid,
            trigger,
            retx: 0,
            timeout: self.cfg.bri_retx_initial,
            deadline: now + self.cfg.bri_retx_initial,
        };
        self.transmit_bri(seq, &p);
        self.arm(p.deadline, TimerKey::Bri(seq));
        self.bris.insert(seq, p);
        self.counters.bri_sent += 1;
    }

    fn transmit_bri(&mut self, seq: u16, p: &PendingBri) {
        // The link-layer identifier tells the MAG which attachment of the MN.
        let mn_id = MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: p.mn_id.clone(),
        };
        let msg = Message::RevocationIndication(RevocationIndication {
            trigger: p.trigger,
            seq,
            flags: br_flags::P,
            options: if p.llid.is_empty() {
                vec![mn_id]
            } else {
                vec![mn_id, MobilityOption::MnLinkLayerId(p.llid.clone())]
            },
        });
        self.queue(p.mag, &msg);
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
                    if b.deleting {
                        self.counters.deleted_after_dereg += 1;
                    } else {
                        self.counters.expired += 1;
                    }
                    self.delete(id);
                }
                TimerKey::Heartbeat => self.on_heartbeat_timer(now),
                TimerKey::Bri(seq) => {
                    let Some(p) = self.bris.get_mut(&seq) else {
                        continue;
                    };
                    if p.deadline != t {
                        continue;
                    }
                    if p.retx >= self.cfg.bri_max_retx {
                        self.bris.remove(&seq);
                        self.counters.bri_gave_up += 1;
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
    }
}
