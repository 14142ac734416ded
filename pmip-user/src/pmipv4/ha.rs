//! Home Agent: the anchor side (RFC 3344 §3.8 with draft-leung-mip4-proxy-mode §8).
//!
//! Processing of a Proxy Registration Request, in order (each refusal counted):
//! 1. Unknown source (no FA-HA association): silently dropped — only PMAs with a
//!    configured SA are served (draft §4.3, seed 000).
//! 2. Unparseable extensions → 134. Missing/unknown-SPI/bad FA-HA authenticator → 132.
//!    Unknown non-skippable extension → 134 (RFC 3344 §1.9, §3.8.2.1).
//! 3. Proxy MIP disabled → 149 PMIP_UNSUPPORTED; PMA not allowed → 150 PMIP_DISALLOWED.
//! 4. No NAI → 134. Identification outside the tolerance, or not newer than the last one
//!    accepted for this NAI (from any PMA: the §8.1 sequencing) → 133 with our time.
//! 5. HA field neither us nor 0.0.0.0/255.255.255.255 (RFC 4433) → 136.
//! 6. Registration: G flag + GRE key required → else 139; home address from the existing
//!    binding, the profile, a requested one the profile authorises, or the pool (129/130).
//!    A new CoA for an existing binding is a handover: one `InstallAnchor` replaces the
//!    tunnel (same uplink key) and a Registration Revocation goes to the old PMA.
//!
//! Replies to known peers are always FA-HA authenticated, so a PMA can trust 149/150.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::auth::{self, AuthError, SecurityAssociation};
use super::wire::ext::{AuthKind, AuthMethod, ExtList, ExtRepr};
use super::wire::registration::RegistrationRequest;
use super::wire::{
    Message, RegistrationReplyRepr, RegistrationRequestRepr, ReplyCode, RevocationRepr, RrqFlags,
    PORT,
};
use super::{Endpoint, Transmit, WallClock};
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};

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
    pub sa: SecurityAssociation,
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
    /// false → 149 PMIP_UNSUPPORTED to everyone.
    pub proxy_mip: bool,
    /// Send Registration Revocation to the old PMA after a handover (draft §4.1.4).
    pub revocation: bool,
    pub revocation_timeout_ms: u64,
    pub revocation_retries: u32,
    /// First uplink GRE key handed out.
    pub uplink_key_base: u32,
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
            proxy_mip: true,
            revocation: true,
            revocation_timeout_ms: d_rev_timeout(),
            revocation_retries: d_rev_retries(),
            uplink_key_base: d_key_base(),
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
    pub revocations_sent: u64,
    pub revocation_retransmissions: u64,
    pub revocation_acks: u64,
    pub revocation_timeouts: u64,
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
    gen: u64,
    /// The serving PMA advertised Revocation Support (RFC 3543 §3.2: only then revoke).
    revocable: bool,
}

#[derive(Clone, Debug)]
struct PendingRevocation {
    dst: Ipv4Addr,
    payload: Vec<u8>,
    retries_left: u32,
    next: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Binding(String, u64),
    Revocation(u32),
}

/// Public view of a binding, for tests and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingInfo {
    pub home_address: Ipv4Addr,
    pub pma: Ipv4Addr,
    pub uplink_key: u32,
    pub downlink_key: u32,
    pub expires_at: Instant,
    /// Index of the binding's traffic counters in the fast path.
    pub sub_id: u32,
}

/// The HA state machine.
pub struct Ha {
    cfg: HaConfig,
    clock: WallClock,
    peers: HashMap<Ipv4Addr, PmaPeer>,
    profiles: HashMap<String, SubscriberProfile>,
    bindings: HashMap<String, Binding>,
    /// Last Identification accepted for a NAI whose binding is gone, kept for the
    /// tolerance window so a deregistration cannot be undone by a replay.
    tombstones: HashMap<String, (u64, Instant)>,
    homes_in_use: HashSet<Ipv4Addr>,
    pool_cursor: u32,
    keys_in_use: HashSet<u32>,
    next_key: u32,
    /// Indices of the fast path's per-subscriber counters, reused after release.
    sub_ids: crate::pmipv6::IdAlloc,
    revocations: HashMap<u32, PendingRevocation>,
    next_revocation_id: u32,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    gen: u64,
    tx: VecDeque<Transmit>,
    dp: VecDeque<DpCommand>,
    events: VecDeque<HaEvent>,
    counters: HaCounters,
}

struct Refusal(ReplyCode);

impl Ha {
    pub fn new(cfg: HaConfig, clock: WallClock) -> Self {
        let peers = cfg.peers.iter().map(|p| (p.address, p.clone())).collect();
        let profiles = cfg
            .profiles
            .iter()
            .map(|p| (p.nai.clone(), p.clone()))
            .collect();
        let next_key = cfg.uplink_key_base.max(1);
        let pool_cursor = cfg.pool.as_ref().map(|p| u32::from(p.first)).unwrap_or(0);
        // Revocation identifiers start from our clock so a restart does not reuse them.
        let next_revocation_id = auth::ntp_seconds(auth::ntp_from_system(clock.wall));
        Ha {
            cfg,
            clock,
            peers,
            profiles,
            bindings: HashMap::new(),
            tombstones: HashMap::new(),
            homes_in_use: HashSet::new(),
            pool_cursor,
            keys_in_use: HashSet::new(),
            next_key,
            sub_ids: crate::pmipv6::IdAlloc::new(1024),
            revocations: HashMap::new(),
            next_revocation_id,
            timers: BinaryHeap::new(),
            gen: 0,
            tx: VecDeque::new(),
            dp: VecDeque::new(),
            events: VecDeque::new(),
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
            self.send_revocation(now, b.pma, b.home, nai);
        }
        self.events.push_back(HaEvent::Deregistered {
            nai: nai.to_string(),
        });
        true
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
            sub_id: b.anchor.sub_id,
        })
    }
    pub fn pending_revocations(&self) -> usize {
        self.revocations.len()
    }

    fn count_refusal(&mut self, code: ReplyCode) {
        let c = &mut self.counters;
        match code {
            ReplyCode::PoorlyFormed => c.poorly_formed += 1,
            ReplyCode::PmipUnsupported => c.pmip_unsupported += 1,
            ReplyCode::PmipDisallowed => c.pmip_disallowed += 1,
            ReplyCode::UnknownHa => c.unknown_ha_address += 1,
            ReplyCode::EncapUnavailable => c.encapsulation_unavailable += 1,
            ReplyCode::AdminProhibited => c.admin_prohibited += 1,
            ReplyCode::InsufficientResources => c.insufficient_resources += 1,
            _ => {}
        }
    }

    /// Sends a reply to `src`, FA-HA authenticated with the peer's association.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        src: SocketAddrV4,
        sa: &SecurityAssociation,
        code: ReplyCode,
        lifetime: u16,
        home: Ipv4Addr,
        ident: u64,
        mut exts: Vec<ExtRepr>,
        now_ntp: u64,
    ) {
        // RFC 3344 §5.7.1: low-order 32 bits copied; on 133 the high-order 32 are ours.
        let identification = if code == ReplyCode::IdentMismatch {
            (now_ntp & 0xffff_ffff_0000_0000) | (ident & 0xffff_ffff)
        } else {
            ident
        };
        exts.push(ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa));
        let mut payload = RegistrationReplyRepr {
            code,
            lifetime,
            home_address: home,
            home_agent: self.cfg.address,
            identification,
            extensions: exts,
        }
        .to_bytes();
        auth::append_auth(&mut payload, AuthKind::FaHa, sa);
        self.tx.push_back(Transmit { dst: src, payload });
    }

    fn on_request(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        self.counters.requests += 1;
        let Some(peer) = self.peers.get(src.ip()).cloned() else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        let wall = self.clock.now(now);
        let now_ntp = auth::ntp_from_system(wall);
        // The fixed part is enough to answer "poorly formed" (we can echo the Identification).
        let Ok(fixed) = RegistrationRequest::new_checked(payload) else {
            self.counters.rx_malformed += 1;
            return;
        };
        let (ident, hoa) = (fixed.identification(), fixed.home_address());
        let rrq = match RegistrationRequestRepr::parse(&fixed) {
            Ok(r) => r,
            Err(_) => {
                self.counters.rx_malformed += 1;
                self.count_refusal(ReplyCode::PoorlyFormed);
                self.reply(
                    src,
                    &peer.sa,
                    ReplyCode::PoorlyFormed,
                    0,
                    hoa,
                    ident,
                    vec![],
                    now_ntp,
                );
                return;
            }
        };
        let nai_ext: Vec<ExtRepr> = rrq
            .extensions
            .nai()
            .map(|n| ExtRepr::Nai(n.to_vec()))
            .into_iter()
            .collect();
        // FA-HA authentication (RFC 3344 §3.8.2.1: 132).
        let sa = &peer.sa;
        if let Err(e) = auth::verify(payload, AuthKind::FaHa, |spi| (spi == sa.spi).then_some(sa)) {
            let code = match e {
                AuthError::Missing => {
                    self.counters.missing_auth += 1;
                    ReplyCode::FaFailedAuth
                }
                AuthError::UnknownSpi(_) => {
                    self.counters.unknown_spi += 1;
                    ReplyCode::FaFailedAuth
                }
                AuthError::BadAuthenticator => {
                    self.counters.bad_authenticator += 1;
                    ReplyCode::FaFailedAuth
                }
                AuthError::NotLast | AuthError::Malformed => {
                    self.counters.poorly_formed += 1;
                    ReplyCode::PoorlyFormed
                }
            };
            self.reply(src, &peer.sa, code, 0, hoa, ident, nai_ext, now_ntp);
            return;
        }
        match self.process(now, src, &peer, &rrq) {
            Ok((lifetime, home, exts)) => self.reply(
                src,
                &peer.sa,
                ReplyCode::Accepted,
                lifetime,
                home,
                ident,
                exts,
                now_ntp,
            ),
            Err(Refusal(code)) => {
                self.count_refusal(code);
                self.reply(src, &peer.sa, code, 0, hoa, ident, nai_ext, now_ntp)
            }
        }
    }

    /// Returns (granted lifetime, home address, reply extensions) or the refusal code.
    fn process(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        peer: &PmaPeer,
        rrq: &RegistrationRequestRepr,
    ) -> Result<(u16, Ipv4Addr, Vec<ExtRepr>), Refusal> {
        if rrq.extensions.first_unknown_nonskippable().is_some() {
            self.counters.unknown_nonskippable += 1;
            return Err(Refusal(ReplyCode::PoorlyFormed));
        }
        if !self.cfg.proxy_mip {
            return Err(Refusal(ReplyCode::PmipUnsupported));
        }
        if !peer.proxy_allowed {
            return Err(Refusal(ReplyCode::PmipDisallowed));
        }
        if matches!(rrq.extensions.per_node_auth_method(), Some(m) if m != AuthMethod::FaHa) {
            // We only do per-node FA-HA authentication (draft §5.1).
            return Err(Refusal(ReplyCode::PmipUnsupported));
        }
        let Some(nai) = rrq
            .extensions
            .nai()
            .and_then(|n| std::str::from_utf8(n).ok())
        else {
            self.counters.missing_nai += 1;
            return Err(Refusal(ReplyCode::PoorlyFormed));
        };
        let nai = nai.to_string();
        let nai_ext = ExtRepr::Nai(nai.as_bytes().to_vec());
        // Replay protection and §8.1 sequencing across PMAs: one Identification history per NAI.
        let tol = peer.sa.timestamp_tolerance_s;
        if !auth::within_tolerance(rrq.identification, self.clock.now(now), tol) {
            self.counters.ident_out_of_tolerance += 1;
            return Err(Refusal(ReplyCode::IdentMismatch));
        }
        // RFC 3344 §5.7.1 wants a strictly newer timestamp from the same sender; draft §8.1
        // accepts an equal one when it comes from another PMA (two PMAs, one clock tick).
        let pma = *src.ip();
        let last = self
            .bindings
            .get(&nai)
            .map(|b| (b.last_ident, b.pma))
            .or_else(|| {
                self.tombstones
                    .get(&nai)
                    .filter(|(_, until)| *until > now)
                    .map(|(i, _)| (*i, pma))
            });
        if last.is_some_and(|(l, from)| {
            rrq.identification < l || (rrq.identification == l && from == pma)
        }) {
            self.counters.ident_replayed += 1;
            return Err(Refusal(ReplyCode::IdentMismatch));
        }
        // RFC 4433 §3.2: 0.0.0.0 or 255.255.255.255 asks for dynamic assignment.
        let ha = rrq.home_agent;
        if !(ha == self.cfg.address || ha.is_unspecified() || ha.is_broadcast()) {
            return Err(Refusal(ReplyCode::UnknownHa));
        }
        if rrq.lifetime == 0 {
            return Ok(self.deregister(now, &nai, pma, rrq, tol, nai_ext));
        }
        let Some(downlink_key) = rrq
            .extensions
            .gre_key()
            .filter(|_| rrq.flags.has(RrqFlags::G))
        else {
            return Err(Refusal(ReplyCode::EncapUnavailable));
        };
        let lifetime = rrq.lifetime.min(self.cfg.max_lifetime_s);
        let expires_at = now + Duration::from_secs(lifetime as u64);
        self.gen += 1;
        let gen = self.gen;
        let tunnel = TunnelEnds {
            local: self.cfg.address.into(),
            remote: rrq.care_of_address.into(),
        };
        let mut exts = vec![nai_ext];
        let revocable = rrq.extensions.revocation_support().is_some();
        let home;
        if let Some(b) = self.bindings.get_mut(&nai) {
            let req = rrq.home_address;
            if !(req.is_unspecified() || req.is_broadcast() || req == b.home) {
                return Err(Refusal(ReplyCode::AdminProhibited));
            }
            home = b.home;
            b.last_ident = rrq.identification;
            b.expires_at = expires_at;
            b.gen = gen;
            let old_pma = b.pma;
            let old_revocable = b.revocable;
            b.revocable = revocable;
            let new = AnchorBinding {
                tunnel,
                downlink_key,
                ..b.anchor.clone()
            };
            if new != b.anchor {
                // One map update: the entry keyed by the uplink key is replaced in place.
                b.anchor = new.clone();
                self.dp.push_back(DpCommand::InstallAnchor(new));
            }
            exts.push(ExtRepr::GreKey(b.anchor.uplink_key));
            if old_pma != pma {
                b.pma = pma;
                self.counters.handovers += 1;
                self.events.push_back(HaEvent::Handover {
                    nai: nai.clone(),
                    from: old_pma,
                    to: pma,
                });
                if old_revocable {
                    self.send_revocation(now, old_pma, home, &nai);
                }
            } else {
                self.counters.renewals += 1;
            }
        } else {
            let (h, from_pool) = self.assign_home(&nai, rrq.home_address)?;
            let Some(uplink_key) = self.alloc_key() else {
                self.release_home(h, from_pool);
                return Err(Refusal(ReplyCode::InsufficientResources));
            };
            let Some(sub_id) = self.sub_ids.alloc() else {
                self.keys_in_use.remove(&uplink_key);
                self.release_home(h, from_pool);
                return Err(Refusal(ReplyCode::InsufficientResources));
            };
            home = h;
            let anchor = AnchorBinding {
                sub_id,
                tunnel,
                uplink_key,
                downlink_key,
                home_v4: Some(home),
                hnp: None,
            };
            self.dp.push_back(DpCommand::InstallAnchor(anchor.clone()));
            self.bindings.insert(
                nai.clone(),
                Binding {
                    home,
                    from_pool,
                    pma,
                    anchor,
                    last_ident: rrq.identification,
                    expires_at,
                    gen,
                    revocable,
                },
            );
            self.tombstones.remove(&nai);
            exts.push(ExtRepr::GreKey(uplink_key));
            self.counters.registrations += 1;
            self.events.push_back(HaEvent::Registered {
                nai: nai.clone(),
                home_address: home,
                pma,
            });
        }
        if let Some((i_bit, _)) = rrq.extensions.revocation_support() {
            exts.push(ExtRepr::RevocationSupport {
                i_bit,
                timestamp: auth::ntp_seconds(auth::ntp_from_system(self.clock.now(now))),
            });
        }
        self.timers
            .push(Reverse((expires_at, TimerKey::Binding(nai, gen))));
        Ok((lifetime, home, exts))
    }

    fn deregister(
        &mut self,
        now: Instant,
        nai: &str,
        pma: Ipv4Addr,
        rrq: &RegistrationRequestRepr,
        tol: u32,
        nai_ext: ExtRepr,
    ) -> (u16, Ipv4Addr, Vec<ExtRepr>) {
        let home = match self.bindings.get_mut(nai) {
            // RFC 3344 §3.8.3: only the registered care-of address is removed; a late
            // deregistration from the old PMA after a handover must not tear down the new one.
            Some(b) if b.pma == pma => {
                let home = b.home;
                self.remove_binding(nai);
                self.tombstones.insert(
                    nai.to_string(),
                    (
                        rrq.identification,
                        now + Duration::from_secs(tol as u64 + 1),
                    ),
                );
                self.counters.deregistrations += 1;
                self.events.push_back(HaEvent::Deregistered {
                    nai: nai.to_string(),
                });
                home
            }
            Some(b) => {
                b.last_ident = rrq.identification;
                b.home
            }
            None => rrq.home_address,
        };
        (0, home, vec![nai_ext])
    }

    fn remove_binding(&mut self, nai: &str) -> Option<Binding> {
        let b = self.bindings.remove(nai)?;
        self.dp.push_back(DpCommand::RemoveAnchor(b.anchor.clone()));
        self.sub_ids.release(b.anchor.sub_id);
        self.keys_in_use.remove(&b.anchor.uplink_key);
        self.release_home(b.home, b.from_pool);
        Some(b)
    }

    fn release_home(&mut self, h: Ipv4Addr, from_pool: bool) {
        if from_pool {
            self.homes_in_use.remove(&h);
        }
    }

    fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.cfg
            .pool
            .as_ref()
            .is_some_and(|p| (p.first..=p.last).contains(&a))
    }

    /// Home address for a new binding: profile static → authorised request → pool.
    fn assign_home(&mut self, nai: &str, requested: Ipv4Addr) -> Result<(Ipv4Addr, bool), Refusal> {
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
                if !self.homes_in_use.insert(s) {
                    return Err(Refusal(ReplyCode::AdminProhibited));
                }
                return Ok((s, true));
            }
            return Ok((s, false));
        }
        if wants {
            let allowed = profile.as_ref().is_some_and(|p| p.allow_requested);
            if allowed && self.in_pool(requested) && self.homes_in_use.insert(requested) {
                return Ok((requested, true));
            }
            return Err(Refusal(ReplyCode::AdminProhibited));
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
        for _ in 0..size {
            let a = self.pool_cursor.clamp(first, last);
            self.pool_cursor = if a >= last { first } else { a + 1 };
            if self.homes_in_use.insert(Ipv4Addr::from(a)) {
                return Ok((Ipv4Addr::from(a), true));
            }
        }
        Err(Refusal(ReplyCode::InsufficientResources))
    }

    /// Keeps what the data plane still forwards with (an earlier run's
    /// bindings in pinned maps) from being given to a new binding: uplink
    /// GRE keys, subscriber ids and home addresses.
    pub fn reserve(&mut self, held: &crate::dataplane::Held) {
        self.keys_in_use.extend(held.keys.iter().copied());
        self.homes_in_use.extend(held.home_v4.iter().copied());
        for id in &held.sub_ids {
            self.sub_ids.reserve(*id);
        }
    }

    fn alloc_key(&mut self) -> Option<u32> {
        for _ in 0..1_000_000 {
            let k = self.next_key;
            self.next_key =
                super::next_gre_key(k, self.cfg.uplink_key_base.max(1), self.keys_in_use.len());
            if self.keys_in_use.insert(k) {
                return Some(k);
            }
        }
        None
    }

    /// RFC 3543 §4: tell the old PMA its binding is gone; retransmitted until acknowledged.
    fn send_revocation(&mut self, now: Instant, old_pma: Ipv4Addr, home: Ipv4Addr, nai: &str) {
        if !self.cfg.revocation {
            return;
        }
        let Some(peer) = self.peers.get(&old_pma) else {
            return;
        };
        let id = self.next_revocation_id;
        self.next_revocation_id = self.next_revocation_id.wrapping_add(1);
        let mut payload = RevocationRepr {
            a_bit: true,
            i_bit: false,
            home_address: home,
            home_domain_address: self.cfg.address,
            foreign_domain_address: old_pma,
            revocation_id: id,
            extensions: vec![ExtRepr::Nai(nai.as_bytes().to_vec())],
        }
        .to_bytes();
        auth::append_auth(&mut payload, AuthKind::FaHa, &peer.sa);
        self.tx.push_back(Transmit {
            dst: SocketAddrV4::new(old_pma, PORT),
            payload: payload.clone(),
        });
        self.counters.revocations_sent += 1;
        let next = now + Duration::from_millis(self.cfg.revocation_timeout_ms);
        self.revocations.insert(
            id,
            PendingRevocation {
                dst: old_pma,
                payload,
                retries_left: self.cfg.revocation_retries,
                next,
            },
        );
        self.timers.push(Reverse((next, TimerKey::Revocation(id))));
    }

    fn on_revocation_ack(&mut self, src: SocketAddrV4, payload: &[u8], id: u32) {
        let Some(peer) = self.peers.get(src.ip()) else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        let sa = &peer.sa;
        if auth::verify(payload, AuthKind::FaHa, |spi| (spi == sa.spi).then_some(sa)).is_err() {
            self.counters.bad_authenticator += 1;
            return;
        }
        if self
            .revocations
            .get(&id)
            .is_some_and(|r| r.dst == *src.ip())
        {
            self.revocations.remove(&id);
            self.counters.revocation_acks += 1;
        }
    }
}

impl Endpoint for Ha {
    fn handle(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        match payload.first() {
            Some(1) => self.on_request(now, src, payload),
            Some(15) => match Message::parse(payload) {
                Ok(Message::RevocationAck(a)) => {
                    self.on_revocation_ack(src, payload, a.revocation_id)
                }
                _ => self.counters.rx_malformed += 1,
            },
            Some(_) => self.counters.rx_unexpected_type += 1,
            None => self.counters.rx_malformed += 1,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timers.pop() else {
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
                TimerKey::Revocation(id) => {
                    let Some(r) = self.revocations.get_mut(&id) else {
                        continue;
                    };
                    if r.retries_left == 0 {
                        self.revocations.remove(&id);
                        self.counters.revocation_timeouts += 1;
                        continue;
                    }
                    r.retries_left -= 1;
                    r.next = now + Duration::from_millis(self.cfg.revocation_timeout_ms);
                    let (dst, payload, next) = (r.dst, r.payload.clone(), r.next);
                    self.tx.push_back(Transmit {
                        dst: SocketAddrV4::new(dst, PORT),
                        payload,
                    });
                    self.counters.revocation_retransmissions += 1;
                    self.timers.push(Reverse((next, TimerKey::Revocation(id))));
                }
            }
        }
        // Forget tombstones whose replay window has passed.
        if self.tombstones.len() > 1024 {
            self.tombstones.retain(|_, (_, until)| *until > now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        self.dp.pop_front()
    }
}
