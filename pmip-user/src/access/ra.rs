//! Sans-IO Neighbor Discovery engine of one access link: the MAG side of
//! PMIPv6 home-link emulation (RFC 5213 §6.7–6.9) for unmodified IPv6 nodes.
//!
//! - Router Advertisements are per subscriber and unicast to its MAC: each
//!   carries only that node's home network prefix (RFC 5213 §6.7: the link is
//!   emulated per mobile node, so no node learns another's prefix), with the
//!   L and A flags, valid/preferred lifetimes bounded by the binding lifetime,
//!   the MTU option and RDNSS (RFC 8106). One goes out right after
//!   [`RaEngine::advertise`], one answers each Router Solicitation, and
//!   unsolicited ones follow at the RFC 4861 §6.2.4 intervals (the first
//!   [`RaConfig::initial_adverts`] at most [`RaConfig::initial_interval`] apart).
//! - [`RaEngine::withdraw`] sends the final RA (router lifetime 0, prefix
//!   lifetimes 0; RFC 4861 §6.2.5, RFC 4862 §5.5.3) and forgets the node.
//! - Every MAG of a domain uses the same configured MAC and link-local address
//!   (RFC 5213 §6.8, §6.9.3), so after a handover the node sees the same
//!   default router and its neighbour cache needs no change.
//! - Neighbor Solicitations for the gateway's own addresses are answered;
//!   DAD probes for a subscriber's own addresses are left unanswered, so DAD
//!   passes (RFC 4862 §5.4).
//! - Neighbor Unreachability probing (unicast NS, RFC 4861 §7.3.3) finds nodes
//!   that left, like the ARP polling of `detach.rs` for IPv4.
//! - An RS from an unknown MAC is an [`Event::AttachRequest`].
//!
//! No sockets, no clock: `handle(now, frame)`, `poll_transmit()` (whole
//! Ethernet frames), `poll_event()`, `poll_timeout()`, `handle_timeout(now)`.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::detach::DetachConfig;
use super::frame6::{self, Addrs, Upper, ALL_NODES};
use super::nd::{NaFlags, NdPacket, NdRepr, PrefixInfo, Rdnss, RouterAdvert};
use crate::dataplane::{AccessPoint, Hnp};

/// The largest router lifetime an RA may carry (RFC 4861 §6.2.1).
const MAX_ROUTER_LIFETIME: u64 = 9000;

/// Static parameters of one access link.
#[derive(Clone, Debug)]
pub struct RaConfig {
    /// The access link; a subscriber's MAC completes its [`AccessPoint`].
    pub ifindex: u32,
    /// 802.1Q VLAN id, 0 = untagged; frames with another tag are ignored.
    pub vlan: u16,
    /// The MAC every MAG of the domain uses on the access link (RFC 5213 §6.9.3).
    pub router_mac: [u8; 6],
    /// The link-local address every MAG uses (RFC 5213 §6.8); by default the
    /// modified EUI-64 address of `router_mac`.
    pub router_ll: Ipv6Addr,
    /// Further gateway addresses whose Neighbor Solicitations are answered.
    pub addresses: Vec<Ipv6Addr>,
    /// MaxRtrAdvInterval (RFC 4861 §6.2.1: 4–1800 s, default 600 s).
    pub max_interval: Duration,
    /// MinRtrAdvInterval (default 0.33 × MaxRtrAdvInterval).
    pub min_interval: Duration,
    /// AdvDefaultLifetime (default 3 × MaxRtrAdvInterval, at most 9000 s); an
    /// RA never offers more than the binding has left.
    pub router_lifetime: Duration,
    /// AdvCurHopLimit.
    pub cur_hop_limit: u8,
    /// MAX_INITIAL_RTR_ADVERTISEMENTS (RFC 4861 §10).
    pub initial_adverts: u32,
    /// MAX_INITIAL_RTR_ADVERT_INTERVAL.
    pub initial_interval: Duration,
    /// MIN_DELAY_BETWEEN_RAS: solicited RAs to one node come no closer.
    pub min_delay: Duration,
    /// How long an RS-triggered attach waits for [`RaEngine::advertise`]
    /// before a further RS asks again.
    pub attach_timeout: Duration,
    /// Upper bound of the prefix lifetimes advertised (`None`: the binding's).
    /// Why one may want it: a node ignores a *shorter* valid lifetime once its
    /// address has 2 hours or less left (RFC 4862 §5.5.3 e; Linux does), so a
    /// final RA deprecates the address and removes the default route at once,
    /// but the address itself lives until its valid lifetime ends. A cap of a
    /// few MaxRtrAdvInterval bounds that, at the price of needing the
    /// unsolicited RAs to arrive. Every MAG of a domain must use the same.
    pub prefix_lifetime_cap: Option<Duration>,
    /// Neighbor Unreachability probing of advertised nodes (off: `None`).
    pub probing: Option<DetachConfig>,
    /// Seed of the interval jitter (deterministic tests; any value).
    pub seed: u64,
}

impl RaConfig {
    pub fn new(ifindex: u32, vlan: u16, router_mac: [u8; 6]) -> Self {
        let max = Duration::from_secs(600);
        RaConfig {
            ifindex,
            vlan,
            router_mac,
            router_ll: frame6::link_local_from_mac(router_mac),
            addresses: Vec::new(),
            max_interval: max,
            min_interval: max.mul_f64(0.33),
            router_lifetime: max * 3,
            cur_hop_limit: 64,
            initial_adverts: 3,
            initial_interval: Duration::from_secs(16),
            min_delay: Duration::from_secs(3),
            attach_timeout: Duration::from_secs(60),
            prefix_lifetime_cap: None,
            probing: None,
            seed: 0x5eed_1234_abcd_0001,
        }
    }

    /// Sets MaxRtrAdvInterval and the values RFC 4861 §6.2.1 derives from it.
    pub fn with_max_interval(mut self, max: Duration) -> Self {
        self.max_interval = max;
        self.min_interval = max.mul_f64(0.33);
        self.router_lifetime = (max * 3).min(Duration::from_secs(MAX_ROUTER_LIFETIME));
        self
    }
}

/// What to advertise to one subscriber (from the PBA and its profile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// The home network prefix from the PBA.
    pub hnp: Hnp,
    /// The binding lifetime: prefix lifetimes never exceed what is left of it.
    pub lifetime: Duration,
    /// RDNSS servers (RFC 8106); none: no RDNSS option.
    pub dns: Vec<Ipv6Addr>,
    /// The link MTU to announce: the access MTU minus the tunnel overhead
    /// (40 + 4 + 4 for GRE with key over IPv6, 20 + 4 + 4 over IPv4).
    /// Below 1280 (RFC 8200 §5) the option is left out.
    pub mtu: Option<u32>,
    /// M flag (addresses from DHCPv6) and O flag.
    pub managed: bool,
    /// A flag on the prefix: the node may form addresses by SLAAC.
    pub autonomous: bool,
}

impl Advertisement {
    /// SLAAC from `hnp`, no DNS, no MTU option.
    pub fn slaac(hnp: Hnp, lifetime: Duration) -> Self {
        Advertisement {
            hnp,
            lifetime,
            dns: Vec::new(),
            mtu: None,
            managed: false,
            autonomous: true,
        }
    }
}

/// Outputs towards the registration side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A Router Solicitation from a MAC with no advertisement ("attach request
    /// (IPv6)"): register it, then call [`RaEngine::advertise`].
    /// `link_local` is the RS's source address when it has one.
    AttachRequest {
        at: AccessPoint,
        link_local: Option<Ipv6Addr>,
    },
    /// Neighbor Unreachability probing got no answer: deregister. The engine
    /// has already forgotten the node (no final RA: it is not there).
    Detached { at: AccessPoint },
    /// The answer to [`RaEngine::check`]: whether the node answered.
    Presence { at: AccessPoint, present: bool },
}

/// Counters; every dropped frame lands in exactly one of the first five.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RaStats {
    pub rx: u64,
    /// Truncated or violating RFC 4861 (hop limit, code, option lengths, ...).
    pub malformed: u64,
    pub bad_checksum: u64,
    /// Not Neighbor Discovery (another ICMPv6 type, UDP, not IPv6).
    pub unsupported: u64,
    /// Not for this engine: another VLAN, unicast to another MAC, our own MAC.
    pub foreign: u64,
    /// Router Advertisements from another router on the access link.
    pub rogue_ra: u64,
    pub rs: u64,
    pub attach_requests: u64,
    /// RAs sent right after `advertise` (attach or binding refresh).
    pub ra_advertise: u64,
    pub ra_solicited: u64,
    pub ra_unsolicited: u64,
    pub ra_final: u64,
    pub ns: u64,
    pub na_sent: u64,
    /// DAD probes for a subscriber's own address, left unanswered.
    pub dad_passed: u64,
    /// NS for addresses that are not the gateway's (not answered).
    pub ns_ignored: u64,
    pub na_rx: u64,
    pub probes: u64,
    pub detached: u64,
    /// Advertisements whose binding lifetime ran out without a refresh.
    pub expired: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Liveness {
    Idle { next_probe: Instant },
    Probing { sent: u32, deadline: Instant },
}

#[derive(Clone, Debug)]
struct Advertised {
    adv: Advertisement,
    binding_end: Instant,
    /// Next unsolicited RA, and how many went out so far.
    next_ra: Instant,
    unsolicited: u32,
    /// A solicited RA waiting for `min_delay` after the last one.
    solicited_at: Option<Instant>,
    last_ra: Instant,
    live: Option<Liveness>,
}

#[derive(Clone, Debug)]
enum State {
    /// Attach requested, no advertisement yet; a new RS asks again after.
    Pending {
        until: Instant,
    },
    Advertised(Box<Advertised>),
}

#[derive(Clone, Debug)]
struct Sub {
    state: State,
    /// The node's address to probe and to address RAs to (its link-local).
    addr: Option<Ipv6Addr>,
    /// Its entry in the engine's timer index (`RaEngine::timers`).
    indexed: Option<Instant>,
}

impl Sub {
    fn new(state: State, addr: Option<Ipv6Addr>) -> Self {
        Sub {
            state,
            addr,
            indexed: None,
        }
    }

    /// The earliest of the node's timers: attach wait, unsolicited or
    /// delayed solicited RA, probe, binding end.
    fn due(&self) -> Option<Instant> {
        match &self.state {
            State::Pending { until } => Some(*until),
            State::Advertised(a) => {
                let live = a.live.map(|l| match l {
                    Liveness::Idle { next_probe } => next_probe,
                    Liveness::Probing { deadline, .. } => deadline,
                });
                [Some(a.next_ra), a.solicited_at, live, Some(a.binding_end)]
                    .into_iter()
                    .flatten()
                    .min()
            }
        }
    }
}

pub struct RaEngine {
    cfg: RaConfig,
    subs: HashMap<[u8; 6], Sub>,
    /// Every node's next timer, ordered: `poll_timeout` is the first and
    /// `handle_timeout` visits only the nodes that are due. Both used to scan
    /// every node, and the shell asks for the timeout after every frame (the
    /// same scan cost `access/dhcp.rs` 43 % of the MAG's CPU at 20 000
    /// clients). Kept exact by re-indexing the node each entry point touched
    /// (`reindex`) and removing nodes only through `remove`.
    timers: BTreeSet<(Instant, [u8; 6])>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Presence checks under way (`presence.rs`), by MAC.
    checks: HashMap<[u8; 6], super::detach::Check>,
    rng: u64,
    pub stats: RaStats,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

mod input;
mod presence;
#[cfg(test)]
mod tests;

impl RaEngine {
    pub fn new(cfg: RaConfig) -> Self {
        let rng = cfg.seed | 1;
        RaEngine {
            cfg,
            subs: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            checks: HashMap::new(),
            rng,
            stats: RaStats::default(),
        }
    }

    pub fn config(&self) -> &RaConfig {
        &self.cfg
    }

    fn at(&self, mac: [u8; 6]) -> AccessPoint {
        AccessPoint {
            ifindex: self.cfg.ifindex,
            vlan: self.cfg.vlan,
            mac,
        }
    }

    /// Whether `mac` holds an advertisement.
    pub(crate) fn is_advertised(&self, mac: &[u8; 6]) -> bool {
        self.subs
            .get(mac)
            .is_some_and(|s| matches!(s.state, State::Advertised(_)))
    }

    /// The address the engine probes and sends RAs to for `mac`, if known.
    pub fn node_address(&self, mac: &[u8; 6]) -> Option<Ipv6Addr> {
        self.subs.get(mac).and_then(|s| s.addr)
    }

    /// Advertises `adv` to `mac`: the registration succeeded or was refreshed.
    /// An RA goes out at once; unsolicited ones follow.
    pub fn advertise(&mut self, now: Instant, mac: [u8; 6], adv: Advertisement) {
        let first = self.next_interval(1);
        let live = self.cfg.probing.map(|p| Liveness::Idle {
            next_probe: now + p.interval,
        });
        let sub =
            (self.subs.entry(mac)).or_insert_with(|| Sub::new(State::Pending { until: now }, None));
        let (unsolicited, next_ra) = match &sub.state {
            // A refresh keeps the schedule; only the contents change.
            State::Advertised(a) => (a.unsolicited, a.next_ra),
            State::Pending { .. } => (1, now + first),
        };
        sub.state = State::Advertised(Box::new(Advertised {
            binding_end: now + adv.lifetime,
            adv,
            next_ra,
            unsolicited,
            solicited_at: None,
            last_ra: now,
            live,
        }));
        self.stats.ra_advertise += 1;
        self.reindex(mac);
        self.send_ra(now, mac, false);
    }

    /// The binding ended here (deregistration, lifetime, detach): the final RA
    /// with router and prefix lifetimes 0, then the node is forgotten.
    ///
    /// Not for a handover away: if the node now sits behind another MAG of the
    /// same L2 domain, this RA (same router address) would reach it there and
    /// remove its address. Use [`forget`](Self::forget) then.
    pub fn withdraw(&mut self, now: Instant, mac: [u8; 6]) {
        if self.is_advertised(&mac) {
            self.stats.ra_final += 1;
            self.send_ra(now, mac, true);
        }
        self.remove(&mac);
    }

    /// Forgets `mac` without a word (binding moved to another MAG, or failed).
    pub(crate) fn forget(&mut self, mac: &[u8; 6]) {
        self.remove(mac);
    }

    /// Removes a node and its timer.
    fn remove(&mut self, mac: &[u8; 6]) -> Option<Sub> {
        let s = self.subs.remove(mac)?;
        if let Some(t) = s.indexed {
            self.timers.remove(&(t, *mac));
        }
        Some(s)
    }

    /// Adds (or replaces) a node, indexed.
    fn insert(&mut self, mac: [u8; 6], sub: Sub) {
        self.remove(&mac);
        self.subs.insert(mac, sub);
        self.reindex(mac);
    }

    /// Puts `mac`'s timer where it is now in the index.
    fn reindex(&mut self, mac: [u8; 6]) {
        let Some(s) = self.subs.get_mut(&mac) else {
            return;
        };
        let (due, old) = (s.due(), s.indexed);
        if due == old {
            return;
        }
        s.indexed = due;
        if let Some(t) = old {
            self.timers.remove(&(t, mac));
        }
        if let Some(t) = due {
            self.timers.insert((t, mac));
        }
    }

    /// A sign of life of `mac` seen elsewhere (DHCPv6, uplink data), with the
    /// node's link-local address if the caller knows it.
    pub fn seen(&mut self, now: Instant, mac: [u8; 6], addr: Option<Ipv6Addr>) {
        self.check_answered(mac);
        let interval = self.cfg.probing.map(|p| p.interval);
        if let Some(s) = self.subs.get_mut(&mac) {
            if let Some(a) = addr.filter(frame6::is_link_local) {
                s.addr = Some(a);
            }
            if let (State::Advertised(a), Some(i)) = (&mut s.state, interval) {
                a.live = Some(Liveness::Idle {
                    next_probe: now + i,
                });
            }
        }
        self.reindex(mac);
    }

    fn rand(&mut self) -> u64 {
        // xorshift64: jitter only, no security role.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// RFC 4861 §6.2.4: uniform in [MinRtrAdvInterval, MaxRtrAdvInterval], at
    /// most MAX_INITIAL_RTR_ADVERT_INTERVAL for the first few.
    fn next_interval(&mut self, sent: u32) -> Duration {
        let (lo, hi) = (
            self.cfg.min_interval,
            self.cfg.max_interval.max(self.cfg.min_interval),
        );
        let span = (hi - lo).as_millis() as u64;
        let d = lo
            + Duration::from_millis(if span == 0 {
                0
            } else {
                self.rand() % (span + 1)
            });
        if sent <= self.cfg.initial_adverts {
            d.min(self.cfg.initial_interval)
        } else {
            d
        }
    }

    /// Builds the RA for `mac` at `now` (final: all lifetimes 0) and queues it.
    fn send_ra(&mut self, now: Instant, mac: [u8; 6], last: bool) {
        let Some(sub) = self.subs.get(&mac) else {
            return;
        };
        let State::Advertised(a) = &sub.state else {
            return;
        };
        let left = if last {
            Duration::ZERO
        } else {
            a.binding_end.saturating_duration_since(now)
        };
        let adv = &a.adv;
        let prefix_left = self.cfg.prefix_lifetime_cap.map_or(left, |c| left.min(c));
        let ra = RouterAdvert {
            cur_hop_limit: self.cfg.cur_hop_limit,
            managed: adv.managed,
            other: adv.managed,
            router_lifetime: secs(self.cfg.router_lifetime.min(left))
                .min(MAX_ROUTER_LIFETIME as u32) as u16,
            reachable_time: 0,
            retrans_time: 0,
            slla: Some(self.cfg.router_mac),
            mtu: adv.mtu.filter(|m| *m >= frame6::IPV6_MIN_MTU),
            prefixes: vec![PrefixInfo {
                prefix_len: adv.hnp.len,
                on_link: true,
                autonomous: adv.autonomous,
                valid_lifetime: secs(prefix_left),
                preferred_lifetime: secs(prefix_left),
                prefix: adv.hnp.prefix,
            }],
            // RFC 8106 §5.1: by default at least 3 × MaxRtrAdvInterval; never
            // longer than the binding.
            rdnss: (!adv.dns.is_empty()).then(|| Rdnss {
                lifetime: secs((self.cfg.max_interval * 3).min(left)),
                servers: adv.dns.clone(),
            }),
        };
        // Unicast to the node's MAC; to its link-local when known, else to
        // all-nodes (an RS from :: leaves no address to answer to).
        let dst = sub.addr.unwrap_or(ALL_NODES);
        self.push_nd(mac, dst, &NdRepr::RouterAdvert(ra));
        if let Some(State::Advertised(a)) = self.subs.get_mut(&mac).map(|s| &mut s.state) {
            a.last_ra = now;
        }
    }

    /// Queues an ND message from the router's link-local address.
    fn push_nd(&mut self, dst_mac: [u8; 6], dst: Ipv6Addr, m: &NdRepr) {
        let src = self.cfg.router_ll;
        let mut body = vec![0u8; m.buffer_len()];
        m.emit(&mut NdPacket::new_unchecked(&mut body[..]));
        let f = frame6::emit_frame(
            &Addrs {
                src_mac: self.cfg.router_mac,
                dst_mac,
                vlan: self.cfg.vlan,
                src,
                dst,
                hop_limit: 255,
            },
            Upper::Icmpv6(&body),
        );
        self.transmits.push_back(f);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _)| *t);
        t.into_iter().chain(self.check_timeout()).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_timeouts(now);
        let mut macs: Vec<[u8; 6]> = (self.timers.iter())
            .take_while(|(t, _)| *t <= now)
            .map(|(_, mac)| *mac)
            .collect();
        macs.sort(); // deterministic output order, by MAC as before the index
        for mac in macs {
            self.timeout_one(now, mac);
            self.reindex(mac);
        }
    }

    fn timeout_one(&mut self, now: Instant, mac: [u8; 6]) {
        let Some(sub) = self.subs.get_mut(&mac) else {
            return;
        };
        let a = match &mut sub.state {
            State::Pending { until } => {
                if now >= *until {
                    self.remove(&mac);
                }
                return;
            }
            State::Advertised(a) => a,
        };
        if now >= a.binding_end {
            self.stats.expired += 1;
            self.withdraw(now, mac);
            return;
        }
        let mut send = false;
        if a.solicited_at.is_some_and(|t| now >= t) {
            a.solicited_at = None;
            self.stats.ra_solicited += 1;
            send = true;
        }
        if now >= a.next_ra {
            a.unsolicited += 1;
            let n = a.unsolicited;
            self.stats.ra_unsolicited += 1;
            send = true;
            let next = now + self.next_interval(n);
            if let Some(State::Advertised(a)) = self.subs.get_mut(&mac).map(|s| &mut s.state) {
                a.next_ra = next;
            }
        }
        if send {
            self.send_ra(now, mac, false);
        }
        self.probe_timeout(now, mac);
    }

    /// Neighbor Unreachability probing: unicast NS to the node's address.
    fn probe_timeout(&mut self, now: Instant, mac: [u8; 6]) {
        let Some(p) = self.cfg.probing else {
            return;
        };
        let Some(sub) = self.subs.get_mut(&mac) else {
            return;
        };
        let State::Advertised(a) = &mut sub.state else {
            return;
        };
        let (sent, due) = match a.live {
            Some(Liveness::Idle { next_probe }) => (0, next_probe),
            Some(Liveness::Probing { sent, deadline }) => (sent, deadline),
            None => return,
        };
        if now < due {
            return;
        }
        let Some(target) = sub.addr else {
            // Nothing learnt to probe yet: look again an interval later.
            a.live = Some(Liveness::Idle {
                next_probe: now + p.interval,
            });
            return;
        };
        if sent > p.retries {
            self.remove(&mac);
            self.stats.detached += 1;
            self.events.push_back(Event::Detached { at: self.at(mac) });
            return;
        }
        a.live = Some(Liveness::Probing {
            sent: sent + 1,
            deadline: now + p.timeout,
        });
        self.stats.probes += 1;
        let ns = NdRepr::NeighborSolicit {
            target,
            slla: Some(self.cfg.router_mac),
        };
        self.push_nd(mac, target, &ns);
    }

    /// An NA from the gateway for `target`, to `dst` at `dst_mac`.
    fn answer_ns(&mut self, dst_mac: [u8; 6], dst: Ipv6Addr, target: Ipv6Addr, solicited: bool) {
        self.stats.na_sent += 1;
        let na = NdRepr::NeighborAdvert {
            // O set: the address is ours on every MAG with the same MAC.
            flags: NaFlags {
                router: true,
                solicited,
                override_: true,
            },
            target,
            tlla: Some(self.cfg.router_mac),
        };
        self.push_nd(dst_mac, dst, &na);
    }
}
