//! Home Agent: the anchor side (RFC 3344 §3.8 with draft-leung-mip4-proxy-mode §8).
//!
//! Processing of a Proxy Registration Request, in order (each refusal counted):
//! 1. Unknown source (no FA-HA association): silently dropped — only PMAs with a
//!    configured SA are served (draft §4.3, seed 000).
//! 2. Unparseable extensions → 134. Unknown non-skippable extension: discarded
//!    (RFC 3344 §1.8). Authentication (`authenticate.rs`): per node, a missing,
//!    unknown-SPI or bad FA-HA authenticator → 132; per MN (an MN-HA extension,
//!    no Per-Node Authentication Method, an association with the MN), a bad
//!    MN-HA authenticator → 131, then the FA-HA one → 132.
//! 3. Proxy MIP disabled → 149 PMIP_UNSUPPORTED; PMA not allowed → 150 PMIP_DISALLOWED.
//! 4. No NAI → 134. Identification outside the tolerance, or not newer than the last one
//!    accepted for this NAI (from any PMA: the §8.1 sequencing) → 133 with our time.
//! 5. HA field neither us nor 0.0.0.0/255.255.255.255 (RFC 4433), or a Requested HA
//!    extension that is not us (RFC 4433 §5.3) → 136. At a cluster address, a new
//!    registration with HA field 0.0.0.0/255.255.255.255 → 143 REDIRECT-HA-REQ with
//!    the Redirected HA extension (`cluster.rs`).
//! 6. Registration: G flag + GRE key required → else 139; home address from the existing
//!    binding, the profile, a requested one the profile authorises, or the pool (129/130).
//!    A new CoA for an existing binding is a handover: one `InstallAnchor` replaces the
//!    tunnel (same uplink key) and a Registration Revocation goes to the old PMA.
//!
//! Replies to known peers are always FA-HA authenticated, so a PMA can trust 149/150;
//! replies to a per-MN request are MN-HA authenticated as well.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::auth::{MnHaKeys, PeerKeys};
use super::wire::ext::ExtList as _;
use super::wire::{Message, ReplyCode, PORT};
use crate::agent::{Clock, IdAlloc, Transmit};
use crate::dataplane::{AnchorBinding, DpCommand};

mod authenticate;
mod cluster;
mod endpoint;
mod first_write;
mod persist;
mod request;
mod revocation;

pub use cluster::HaCluster;

/// An inclusive range of home addresses to assign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

/// Per-subscriber policy (seed 000: local subscriber profiles / RADIUS attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberProfile {
    pub nai: String,
    pub static_home: Option<Ipv4Addr>,
    /// May the PMA ask for a specific address from the pool?
    pub allow_requested: bool,
}

/// A PMA this HA serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmaPeer {
    pub address: Ipv4Addr,
    /// FA-HA: what we sign with, and what we also accept (a key rollover).
    pub sa: PeerKeys,
    /// false → 150 PMIP_DISALLOWED for this PMA.
    pub proxy_allowed: bool,
}

/// HA configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    pub address: Ipv4Addr,
    /// Longest lifetime granted (StarOS HA `reg-lifetime`, 600 s).
    pub max_lifetime_s: u16,
    pub pool: Option<AddressPool>,
    pub profiles: Vec<SubscriberProfile>,
    /// Serve NAIs without a profile from the pool (the HA context's default subscriber).
    pub serve_unknown_subscribers: bool,
    pub peers: Vec<PmaPeer>,
    /// Per-MN associations (MN-HA, `[[mn_ha]]`): requests that carry an
    /// MN-HA extension and no Per-Node Authentication Method are checked
    /// against them.
    pub mn_ha: MnHaKeys,
    /// false → 149 PMIP_UNSUPPORTED to everyone.
    pub proxy_mip: bool,
    /// Send Registration Revocation to the old PMA after a handover (draft §4.1.4).
    pub revocation: bool,
    pub revocation_timeout_ms: u64,
    pub revocation_retries: u32,
    /// First uplink GRE key handed out.
    pub uplink_key_base: u32,
    /// For this long after a start, a PMA may ask for a free pool address
    /// for a subscriber without a profile allowing it: its renewal after we
    /// restarted without our bindings (RFC 3344 has no re-registration flag;
    /// RFC 5213's HI 5 plays this part for the LMA). Zero: never.
    pub reregistration_window: Duration,
    /// In a cluster: blocks and runtime assignment (`cluster.rs`).
    pub cluster: HaCluster,
}

fn d_lifetime() -> u16 {
    600
}
fn d_rev_timeout() -> u64 {
    1000
}
fn d_rev_retries() -> u32 {
    3
}
fn d_key_base() -> u32 {
    1
}

impl HaConfig {
    pub fn new(address: Ipv4Addr, pool: AddressPool, peers: Vec<PmaPeer>) -> Self {
        HaConfig {
            address,
            max_lifetime_s: d_lifetime(),
            pool: Some(pool),
            profiles: vec![],
            serve_unknown_subscribers: true,
            peers,
            mn_ha: MnHaKeys::default(),
            proxy_mip: true,
            revocation: true,
            revocation_timeout_ms: d_rev_timeout(),
            revocation_retries: d_rev_retries(),
            uplink_key_base: d_key_base(),
            reregistration_window: Duration::ZERO,
            cluster: HaCluster::default(),
        }
    }
}

/// One counter per outcome and per refusal reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HaCounters {
    pub requests: u64,
    pub registrations: u64,
    pub renewals: u64,
    pub handovers: u64,
    pub deregistrations: u64,
    pub expired: u64,
    pub rx_malformed: u64,
    pub rx_unknown_peer: u64,
    pub rx_unexpected_type: u64,
    pub poorly_formed: u64,
    pub missing_auth: u64,
    pub unknown_spi: u64,
    pub bad_authenticator: u64,
    /// Requests with more than one FA-HA extension (132, RFC 5944 §3.8.2.1).
    pub duplicate_auth: u64,
    /// Per-MN requests whose MN-HA authenticator failed (131).
    pub mn_failed_auth: u64,
    /// Per-MN requests from a mobile node without an association here:
    /// taken per node (the PMA's FA-HA extension).
    pub mn_unknown: u64,
    pub unknown_nonskippable: u64,
    pub pmip_unsupported: u64,
    pub pmip_disallowed: u64,
    pub missing_nai: u64,
    pub ident_out_of_tolerance: u64,
    pub ident_replayed: u64,
    pub unknown_ha_address: u64,
    pub encapsulation_unavailable: u64,
    pub admin_prohibited: u64,
    pub insufficient_resources: u64,
    /// New bindings refused (130) because the store refused their record.
    pub store_failed: u64,
    pub revocations_sent: u64,
    pub revocation_retransmissions: u64,
    pub revocation_acks: u64,
    pub revocation_timeouts: u64,
    /// Revocations in progress at the last stop (kept in the store), sent
    /// again at the start.
    pub revocations_resumed: u64,
    /// RFC 3543 §5: revocations from a PMA, acknowledged.
    pub pma_revocations: u64,
    pub pma_revocations_stale: u64,
    pub pma_revocations_unknown: u64,
    /// New registrations sent to another HA (RFC 4433, `cluster.rs`).
    pub redirected: u64,
}

/// What happened to a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaEvent {
    Registered {
        nai: String,
        home_address: Ipv4Addr,
        pma: Ipv4Addr,
    },
    Handover {
        nai: String,
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
    Deregistered {
        nai: String,
    },
    Expired {
        nai: String,
    },
}

/// A mobility binding (keyed by NAI, draft §8.1).
#[derive(Clone, Debug)]
struct Binding {
    home: Ipv4Addr,
    from_pool: bool,
    pma: Ipv4Addr,
    anchor: AnchorBinding,
    last_ident: u64,
    expires_at: Instant,
    lifetime_s: u16,
    gen: u64,
    /// The serving PMA advertised Revocation Support (RFC 3543 §3.2: only then revoke).
    revocable: bool,
    /// The timestamp in that Revocation Support extension: a revocation
    /// from the PMA must come after it (§4.2.3.2). None: not known
    /// (restored from the store).
    revocation_stamp: Option<u32>,
}

/// A revocation sent to a PMA and not yet acknowledged (keyed by the PMA
/// and the home address it revokes).
#[derive(Clone, Debug)]
struct PendingRevocation {
    nai: String,
    /// The identifiers (timestamps) of every transmission so far: an ack of
    /// any of them ends it (a late ack of an earlier one counts).
    ids: Vec<u32>,
    retries_left: u32,
    /// When the next transmission is due (a timer for another moment is stale).
    next: Instant,
    /// The wait before it; doubled at each retransmission (RFC 3543
    /// §4.2.2.1: back-off as for registrations), never under a second.
    interval: Duration,
    /// The end of the revoked registration's normal life: no
    /// retransmission after it (§4.2.2.1).
    until: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Binding(String, u64),
    /// The pending revocation to this PMA of this home address.
    Revocation(Ipv4Addr, Ipv4Addr),
}

/// Public view of a binding, for tests and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingInfo {
    pub home_address: Ipv4Addr,
    pub pma: Ipv4Addr,
    pub uplink_key: u32,
    pub downlink_key: u32,
    pub expires_at: Instant,
    /// The lifetime granted last.
    pub lifetime_s: u16,
    /// Index of the binding's traffic counters in the fast path.
    pub sub_id: u32,
}

/// The HA state machine.
pub struct Ha {
    cfg: HaConfig,
    clock: Clock,
    /// Shared: a request holds its peer's entry while the HA changes (no
    /// copy of the association's key per request).
    peers: HashMap<Ipv4Addr, std::sync::Arc<PmaPeer>>,
    profiles: HashMap<String, SubscriberProfile>,
    bindings: HashMap<String, Binding>,
    /// Last Identification accepted for a NAI whose binding is gone, kept for the
    /// tolerance window so a deregistration cannot be undone by a replay.
    tombstones: HashMap<String, (u64, Instant)>,
    homes_in_use: crate::agent::idhash::IdSet<Ipv4Addr>,
    /// Released pool addresses held for the NAI that had them (issue 11).
    held: crate::agent::affinity::Affinity<Ipv4Addr>,
    pool_cursor: u32,
    /// Uplink GRE keys, and indices of the fast path's per-subscriber counters.
    keys: IdAlloc,
    sub_ids: IdAlloc,
    revocations: HashMap<(Ipv4Addr, Ipv4Addr), PendingRevocation>,
    /// Highest Revocation Identifier seen from each PMA (RFC 3543 §6 replay).
    pma_revocation_ids: HashMap<Ipv4Addr, u32>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    gen: u64,
    tx: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    events: VecDeque<HaEvent>,
    /// Writes of durable state, taken by the shell (`persist.rs`).
    store: persist::StoreQueue,
    /// Answers to new bindings, held until their record is written.
    unconfirmed: crate::agent::unconfirmed::Unconfirmed<String, first_write::Refusal>,
    counters: HaCounters,
}

struct Refusal(ReplyCode);

impl Ha {
    pub fn new(cfg: HaConfig, clock: Clock) -> Self {
        let peers = cfg
            .peers
            .iter()
            .map(|p| (p.address, std::sync::Arc::new(p.clone())))
            .collect();
        let profiles = profiles_by_nai(&cfg.profiles);
        let keys = IdAlloc::new(cfg.uplink_key_base, pmip_common::MAX_SUBSCRIBERS);
        let pool_cursor = cfg.pool.as_ref().map(|p| u32::from(p.first)).unwrap_or(0);
        Ha {
            cfg,
            clock,
            peers,
            profiles,
            bindings: HashMap::new(),
            tombstones: HashMap::new(),
            homes_in_use: Default::default(),
            held: Default::default(),
            pool_cursor,
            keys,
            sub_ids: IdAlloc::default(),
            revocations: HashMap::new(),
            pma_revocation_ids: HashMap::new(),
            timers: BinaryHeap::new(),
            gen: 0,
            tx: VecDeque::new(),
            dp: VecDeque::new(),
            events: VecDeque::new(),
            store: persist::StoreQueue::new(),
            unconfirmed: Default::default(),
            counters: HaCounters::default(),
        }
    }

    /// Every mobility binding, by NAI (for `show bindings`).
    pub fn bindings(&self) -> Vec<(String, BindingInfo)> {
        let mut v: Vec<(String, BindingInfo)> = self
            .bindings
            .keys()
            .filter_map(|n| Some((n.clone(), self.binding(n)?)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Operator-initiated release (`pmipctl clear binding`): the binding and its
    /// fast-path entries go, and the serving PMA gets a Registration Revocation
    /// (RFC 3543) when it advertised support. False if there was no binding.
    pub fn clear(&mut self, now: Instant, nai: &str) -> bool {
        let Some(b) = self.remove_binding(nai) else {
            return false;
        };
        if b.revocable {
            self.send_revocation(now, (b.pma, b.home), nai, b.expires_at);
            // The record stays while the revocation is in progress.
            self.persist(nai);
        }
        self.events.push_back(HaEvent::Deregistered {
            nai: nai.to_string(),
        });
        true
    }

    /// Operator release of every binding through the PMA at `pma` (or of
    /// those of `realm` there): each as `clear` releases it — RFC 3543 has
    /// no revocation of many bindings at once. Returns how many.
    pub fn clear_peer(&mut self, now: Instant, pma: Ipv4Addr, realm: Option<&str>) -> usize {
        let mut nais: Vec<String> = self
            .bindings
            .iter()
            .filter(|(nai, b)| {
                b.pma == pma
                    && realm.is_none_or(|r| {
                        crate::agent::registrar::in_realm(nai.as_bytes(), r.as_bytes())
                    })
            })
            .map(|(nai, _)| nai.clone())
            .collect();
        nais.sort_unstable();
        nais.iter().filter(|nai| self.clear(now, nai)).count()
    }

    pub fn counters(&self) -> &HaCounters {
        &self.counters
    }
    pub fn poll_event(&mut self) -> Option<HaEvent> {
        self.events.pop_front()
    }
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }
    pub fn binding(&self, nai: &str) -> Option<BindingInfo> {
        self.bindings.get(nai).map(|b| BindingInfo {
            home_address: b.home,
            pma: b.pma,
            uplink_key: b.anchor.uplink_key,
            downlink_key: b.anchor.downlink_key,
            expires_at: b.expires_at,
            lifetime_s: b.lifetime_s,
            sub_id: b.anchor.sub_id,
        })
    }
    pub fn pending_revocations(&self) -> usize {
        self.revocations.len()
    }

    fn remove_binding(&mut self, nai: &str) -> Option<Binding> {
        let b = self.bindings.remove(nai)?;
        self.dp.push_back(DpCommand::RemoveAnchor(b.anchor.clone()));
        self.sub_ids.release(b.anchor.sub_id);
        self.keys.release(b.anchor.uplink_key);
        self.release_home(b.home, b.from_pool);
        if b.from_pool && self.cfg.cluster.blocks.is_none() {
            // Held for this NAI: its next attach gets it again.
            self.held.hold(b.home, nai.as_bytes());
        }
        self.persist(nai);
        Some(b)
    }

    fn release_home(&mut self, h: Ipv4Addr, from_pool: bool) {
        if from_pool && self.homes_in_use.remove(&h) {
            self.home_to_blocks(h);
        }
    }

    fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.cfg
            .pool
            .as_ref()
            .is_some_and(|p| (p.first..=p.last).contains(&a))
    }

    /// Home address for a new binding: profile static → authorised request → pool.
    fn assign_home(
        &mut self,
        now: Instant,
        nai: &str,
        requested: Ipv4Addr,
    ) -> Result<(Ipv4Addr, bool), Refusal> {
        let profile = self.profiles.get(nai).cloned();
        if profile.is_none() && !self.cfg.serve_unknown_subscribers {
            return Err(Refusal(ReplyCode::AdminProhibited));
        }
        let wants = !(requested.is_unspecified() || requested.is_broadcast());
        if let Some(s) = profile.as_ref().and_then(|p| p.static_home) {
            if wants && requested != s {
                return Err(Refusal(ReplyCode::AdminProhibited));
            }
            // A static address inside the pool is reserved while bound.
            if self.in_pool(s) {
                if !self.take_home(s) {
                    return Err(Refusal(ReplyCode::AdminProhibited));
                }
                return Ok((s, true));
            }
            return Ok((s, false));
        }
        if wants {
            let reregistration = now < self.clock.at + self.cfg.reregistration_window;
            // The address released by this NAI is its own to ask for again.
            let own = self.held.held_for(nai.as_bytes()) == Some(requested);
            let allowed = own
                || profile
                    .as_ref()
                    .map_or(reregistration, |p| p.allow_requested);
            if allowed && self.in_pool(requested) && self.take_home(requested) {
                return Ok((requested, true));
            }
            return Err(Refusal(ReplyCode::AdminProhibited));
        }
        if let Some(a) = self.held.held_for(nai.as_bytes()) {
            if self.in_pool(a) && self.take_home(a) {
                return Ok((a, true));
            }
        }
        if let Some(got) = self.home_from_blocks() {
            return got
                .map(|a| (a, true))
                .ok_or(Refusal(ReplyCode::InsufficientResources));
        }
        let Some(pool) = self.cfg.pool.clone() else {
            return Err(Refusal(ReplyCode::InsufficientResources));
        };
        let (first, last) = (u32::from(pool.first), u32::from(pool.last));
        if first > last {
            return Err(Refusal(ReplyCode::InsufficientResources));
        }
        // Cycle through a window at the start of the pool (MAX_SUBSCRIBERS
        // addresses, or twice those in use if more): the fast path finds pool
        // addresses by their place in the pool, in an array as long as its table.
        let window = (pmip_common::MAX_SUBSCRIBERS as u64).max(2 * self.homes_in_use.len() as u64);
        let last = (first as u64 + window - 1).min(last as u64) as u32;
        let size = (last - first) as u64 + 1;
        // Every address used or held: no scan (it would find nothing).
        let free = (self.homes_in_use.len() + self.held.len()) < size as usize;
        for _ in 0..if free { size } else { 0 } {
            let a = self.pool_cursor.clamp(first, last);
            self.pool_cursor = if a >= last { first } else { a + 1 };
            let a = Ipv4Addr::from(a);
            // Not an address held for another subscriber while others are free.
            if !self.held.held_by_other(a, nai.as_bytes()) && self.homes_in_use.insert(a) {
                return Ok((a, true));
            }
        }
        // Nothing else left: the longest-held address goes to someone else.
        while let Some(a) = self.held.take_oldest() {
            if self.in_pool(a) && self.homes_in_use.insert(a) {
                return Ok((a, true));
            }
        }
        Err(Refusal(ReplyCode::InsufficientResources))
    }

    /// Takes from `new` (a reload, `daemon/reload.rs`) what may change
    /// while the HA runs: each PMA's FA-HA associations and the per-MN ones
    /// (a request is checked against the association its SPI names among
    /// the new ones, and answered with it), and the subscriber profiles
    /// (what new bindings get: a static home address, a requested one).
    /// Bindings stay as they are; the rest of `new` is a restart's. A PMA
    /// not in `new` keeps its keys.
    pub fn reconfigure(&mut self, new: &HaConfig) {
        for p in &mut self.cfg.peers {
            if let Some(n) = new.peers.iter().find(|n| n.address == p.address) {
                p.sa = n.sa.clone();
                self.peers.insert(p.address, std::sync::Arc::new(p.clone()));
            }
        }
        self.cfg.mn_ha = new.mn_ha.clone();
        self.cfg.profiles = new.profiles.clone();
        self.profiles = profiles_by_nai(&new.profiles);
        tracing::info!(
            peers = self.cfg.peers.len(),
            per_mn = !new.mn_ha.is_empty(),
            profiles = self.profiles.len(),
            "keys and profiles taken from the reloaded configuration"
        );
    }

    /// Keeps what the data plane still forwards with (an earlier run's
    /// bindings in pinned maps) from being given to a new binding: uplink
    /// GRE keys, subscriber ids and home addresses.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        for k in &held.keys {
            self.keys.reserve(*k);
        }
        self.homes_in_use.extend(held.home_v4.iter().copied());
        for id in &held.sub_ids {
            self.sub_ids.reserve(*id);
        }
    }
}

impl Ha {
    /// One datagram from `src`.
    pub fn handle(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        match payload.first() {
            Some(1) => self.on_request(now, src, payload),
            // RFC 3344 §1.9: an extension of type 0–127 we do not know makes
            // a revocation or its acknowledgement one to discard silently
            // (a request is answered 134 instead, `on_request`).
            Some(7 | 15) => match Message::parse(payload) {
                Ok(m) if m.extensions().first_unknown_nonskippable().is_some() => {
                    self.counters.unknown_nonskippable += 1;
                }
                Ok(Message::Revocation(r)) => self.on_pma_revocation(src, payload, r),
                Ok(Message::RevocationAck(a)) => self.on_revocation_ack(src, payload, &a),
                _ => self.counters.rx_malformed += 1,
            },
            Some(_) => self.counters.rx_unexpected_type += 1,
            None => self.counters.rx_malformed += 1,
        }
    }

    /// Fires every timer due at `now`: binding expiry, revocation retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, key))) = self.timers.pop() else {
                break;
            };
            match key {
                TimerKey::Binding(nai, gen) => {
                    if self
                        .bindings
                        .get(&nai)
                        .is_some_and(|b| b.gen == gen && b.expires_at <= now)
                    {
                        if let Some(b) = self.remove_binding(&nai) {
                            self.tombstones
                                .insert(nai.clone(), (b.last_ident, now + Duration::from_secs(61)));
                        }
                        self.counters.expired += 1;
                        self.events.push_back(HaEvent::Expired { nai });
                    }
                }
                TimerKey::Revocation(pma, home) => self.revocation_timer(now, t, (pma, home)),
            }
        }
        // Forget tombstones whose replay window has passed.
        if self.tombstones.len() > 1024 {
            self.tombstones.retain(|_, (_, until)| *until > now);
        }
    }
}

/// The subscriber profiles by NAI.
fn profiles_by_nai(profiles: &[SubscriberProfile]) -> HashMap<String, SubscriberProfile> {
    profiles
        .iter()
        .map(|p| (p.nai.clone(), p.clone()))
        .collect()
}
