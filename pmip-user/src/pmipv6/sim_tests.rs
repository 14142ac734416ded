//! Simulated-clock tests: two MAGs and one LMA exchange real encoded
//! Mobility Headers through an in-memory network that can drop, hold back
//! or inject messages; time only moves when a test says so.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use super::lma::{Ipv4PoolConfig, Ipv6PoolConfig, Lma, LmaConfig, Profile};
use super::mag::{AttachRequest, FailReason, LmaPeerConfig, Mag, MagConfig, MagEvent};
use super::wire::*;
use super::LocalAddrs;
use crate::agent::registrar::BindingState;
use crate::agent::{Endpoint, Peer, Transmit};
use crate::dataplane::{AccessPoint, DataPlane, DpCommand, MemDataPlane};

const MAG1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcafe, 0x1025, 0, 0, 0, 0x15);
const MAG2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcafe, 0x1026, 0, 0, 0, 0x16);
const LMA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcafe, 0x1024, 0, 0, 0, 0x101);
const MAG1_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 22, 15);
const MAG2_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 23, 16);
const LMA_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 24, 101);
const ROGUE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 1);

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn ap(n: u8) -> AccessPoint {
    AccessPoint {
        ifindex: 3,
        vlan: 3074,
        mac: [0x00, 0x24, 0xd7, 0x8e, 0x21, n],
    }
}

fn req(n: u8) -> AttachRequest {
    AttachRequest {
        at: ap(n),
        mn_id: format!("mn{n}@example.com").into_bytes(),
        lma: "lma1".into(),
        ipv4: true,
        requested_v4: None,
        v4_hint: false,
        ipv6: false,
        apn: Some(b"example.com".to_vec()),
        att: None,
    }
}

fn mag_cfg(v4: bool, own6: Ipv6Addr, own4: Ipv4Addr) -> MagConfig {
    MagConfig {
        local: LocalAddrs {
            v6: Some(own6),
            v4: Some(own4),
        },
        lmas: vec![LmaPeerConfig {
            name: "lma1".into(),
            addr: if v4 {
                IpAddr::V4(LMA_V4)
            } else {
                IpAddr::V6(LMA)
            },
            port: UDP_PORT,
        }],
        ..MagConfig::default()
    }
}

/// What the store tests drive the real shell with: a current-thread
/// runtime, and an LMA that orders PBUs by sequence number (the MAG's timers
/// run ahead of the shell's clock, so timestamps would not order them).
fn shell_rt_and_lma() -> (tokio::runtime::Runtime, Lma) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = lma_cfg();
    cfg.timestamp_based = false;
    (rt, Lma::new(cfg, Instant::now(), wall()))
}

fn lma_cfg() -> LmaConfig {
    let mut subscribers = std::collections::HashMap::new();
    for n in 0..10u8 {
        subscribers.insert(
            format!("mn{n}@example.com"),
            Profile {
                ipv4: true,
                ipv6: true,
                ..Profile::default()
            },
        );
    }
    subscribers.insert(
        "static@example.com".into(),
        Profile {
            allow_static: true,
            ..Profile::default()
        },
    );
    LmaConfig {
        local: LocalAddrs {
            v6: Some(LMA),
            v4: Some(LMA_V4),
        },
        mags: vec![
            IpAddr::V6(MAG1),
            IpAddr::V6(MAG2),
            IpAddr::V4(MAG1_V4),
            IpAddr::V4(MAG2_V4),
        ],
        ipv4_pool: Some(Ipv4PoolConfig {
            network: Ipv4Addr::new(192, 0, 2, 0),
            prefix_len: 24,
            gateway: Ipv4Addr::new(192, 0, 2, 254),
        }),
        ipv6_pool: Some(Ipv6PoolConfig {
            prefix: "2001:db8:f00d::".parse().unwrap(),
            prefix_len: 48,
            assign_len: 64,
        }),
        subscribers,
        ..LmaConfig::default()
    }
}

/// Where a message is going: to the LMA, or to MAG 1 / 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Lma,
    Mag(usize),
}

struct Sim {
    start: Instant,
    now: Instant,
    mags: Vec<Mag>,
    lma: Lma,
    mag_dp: Vec<MemDataPlane>,
    lma_dp: MemDataPlane,
    events: Vec<Vec<MagEvent>>,
    /// Every message put on the wire: (time, from, to, bytes).
    wire: Vec<(Instant, Node, Node, Vec<u8>)>,
    /// Drop messages to this node while set.
    drop_to: Vec<Node>,
    /// Binding updates held back instead of delivered (from, to, bytes).
    held: Vec<(Node, Node, Vec<u8>)>,
    hold_from: Option<Node>,
    v4: bool,
    /// Which MAG's access link each subscriber is on (its last attach):
    /// what a MAG's presence check finds (RFC 5846 §9.1).
    on_link: std::collections::HashMap<AccessPoint, usize>,
}

impl Sim {
    fn new(v4: bool) -> Sim {
        let now = Instant::now();
        Sim {
            start: now,
            now,
            mags: vec![
                Mag::new(mag_cfg(v4, MAG1, MAG1_V4), now, wall()),
                Mag::new(mag_cfg(v4, MAG2, MAG2_V4), now, wall()),
            ],
            lma: Lma::new(lma_cfg(), now, wall()),
            mag_dp: vec![MemDataPlane::default(), MemDataPlane::default()],
            lma_dp: MemDataPlane::default(),
            events: vec![vec![], vec![]],
            wire: vec![],
            drop_to: vec![],
            held: vec![],
            hold_from: None,
            v4,
            on_link: std::collections::HashMap::new(),
        }
    }

    fn with_lma(mut self, cfg: LmaConfig) -> Sim {
        self.lma = Lma::new(cfg, self.now, wall());
        self
    }

    fn peer_of(&self, n: Node) -> Peer {
        let (a6, a4) = match n {
            Node::Lma => (LMA, LMA_V4),
            Node::Mag(0) => (MAG1, MAG1_V4),
            Node::Mag(_) => (MAG2, MAG2_V4),
        };
        if self.v4 {
            Peer::V4(SocketAddrV4::new(a4, UDP_PORT))
        } else {
            Peer::V6(a6)
        }
    }

    fn node_of(&self, p: &Peer) -> Node {
        match p.ip() {
            IpAddr::V6(a) if a == LMA => Node::Lma,
            IpAddr::V4(a) if a == LMA_V4 => Node::Lma,
            IpAddr::V6(a) if a == MAG1 => Node::Mag(0),
            IpAddr::V4(a) if a == MAG1_V4 => Node::Mag(0),
            _ => Node::Mag(1),
        }
    }

    fn deliver(&mut self, from: Node, to: Node, bytes: &[u8]) {
        let peer = self.peer_of(from);
        match to {
            Node::Lma => self.lma.handle(self.now, peer, bytes),
            Node::Mag(i) => self.mags[i].handle(self.now, peer, bytes),
        }
    }

    /// Delivers `bri` from the LMA to MAG1 (IPv4 transport: no checksum)
    /// and returns the last BRA MAG1 sent.
    fn bra_to(&mut self, bri: RevocationIndication) -> RevocationAck {
        let bytes = Message::RevocationIndication(bri)
            .to_vec(Checksum::None)
            .unwrap();
        self.deliver(Node::Lma, Node::Mag(0), &bytes);
        self.run();
        let bras = self.sent(Node::Mag(0), Node::Lma, MhType::BindingRevocation);
        match bras.last() {
            Some((_, Message::RevocationAck(bra))) => bra.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// Moves messages, commands and events until nothing is left to do.
    fn run(&mut self) {
        let mut checks = Vec::new();
        loop {
            let mut out: Vec<(Node, Transmit)> = vec![];
            for (i, m) in self.mags.iter_mut().enumerate() {
                while let Some(t) = m.poll_transmit() {
                    out.push((Node::Mag(i), t));
                }
                while let Some(c) = m.poll_dp() {
                    self.mag_dp[i].apply(&c).unwrap();
                }
                while let Some(e) = m.poll_event() {
                    if let MagEvent::CheckPresence { at } = e {
                        checks.push((i, at));
                    }
                    self.events[i].push(e);
                }
            }
            let checked = !checks.is_empty();
            for (i, at) in checks.drain(..) {
                let here = self.on_link.get(&at) == Some(&i);
                self.mags[i].presence(self.now, at, here);
            }
            if checked {
                continue;
            }
            while let Some(t) = self.lma.poll_transmit() {
                out.push((Node::Lma, t));
            }
            while let Some(c) = self.lma.poll_dp() {
                self.lma_dp.apply(&c).unwrap();
            }
            if out.is_empty() {
                return;
            }
            for (from, t) in out {
                let to = self.node_of(&t.peer);
                if t.peer != self.peer_of(to) {
                    // The LMA announces a restart to every configured MAG
                    // address, both families of a MAG (RFC 5847 §3.2): the
                    // sim's nodes talk over one, the other's is lost.
                    let unsolicited = t.payload.get(2) == Some(&13)
                        && t.payload.get(7).is_some_and(|f| f & 2 != 0);
                    assert!(unsolicited, "transport follows the peer's family");
                    continue;
                }
                self.wire.push((self.now, from, to, t.payload.to_vec()));
                if self.drop_to.contains(&to) {
                    continue;
                }
                let is_bu = t.payload.get(2) == Some(&5);
                if self.hold_from == Some(from) && is_bu {
                    self.held.push((from, to, t.payload.to_vec()));
                    continue;
                }
                self.deliver(from, to, &t.payload);
            }
        }
    }

    /// Advances the clock to `now + d`, firing timers in order on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.run();
            let next = self
                .mags
                .iter()
                .filter_map(|m| m.poll_timeout())
                .chain(self.lma.poll_timeout())
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for m in &mut self.mags {
                m.handle_timeout(self.now);
            }
            self.lma.handle_timeout(self.now);
        }
        self.now = end;
        self.run();
    }

    fn attach(&mut self, mag: usize, r: AttachRequest) {
        self.on_link.insert(r.at, mag);
        self.mags[mag].attach(self.now, r);
        self.run();
    }

    fn sent(&self, from: Node, to: Node, ty: MhType) -> Vec<(Instant, Message)> {
        self.wire
            .iter()
            .filter(|(_, f, t, b)| {
                *f == from
                    && *t == to
                    && MhPacket::new_checked(&b[..])
                        .map(|p| p.mh_type() == ty)
                        .unwrap_or(false)
            })
            .map(|(at, _, _, b)| (*at, Message::parse(b, Checksum::None).unwrap()))
            .collect()
    }
}

/// The statuses of the PBAs the LMA sent MAG1, in order.
fn pba_statuses(s: &Sim) -> Vec<BaStatus> {
    s.sent(Node::Lma, Node::Mag(0), MhType::BindingAck)
        .iter()
        .filter_map(|(_, m)| match m {
            Message::BindingAck(b) => Some(b.status),
            _ => None,
        })
        .collect()
}

fn registered(ev: &[MagEvent]) -> Vec<&MagEvent> {
    ev.iter()
        .filter(|e| matches!(e, MagEvent::Registered { .. }))
        .collect()
}

fn first_registration(v4: bool) {
    let mut s = Sim::new(v4);
    s.attach(0, req(1));
    // MAG side: one Registered event with what DHCP needs, one map entry.
    let ev = registered(&s.events[0]);
    assert_eq!(ev.len(), 1);
    let MagEvent::Registered {
        at,
        home_v4,
        default_router,
        hnp,
        lifetime,
    } = ev[0].clone()
    else {
        unreachable!()
    };
    assert_eq!(at, ap(1));
    assert_eq!(home_v4, Some((Ipv4Addr::new(192, 0, 2, 1), 24)));
    assert_eq!(default_router, Some(Ipv4Addr::new(192, 0, 2, 254)));
    assert_eq!(hnp, None);
    assert_eq!(lifetime, Duration::from_secs(3600));
    let acc = &s.mag_dp[0].access[&ap(1)];
    let anc = s.lma_dp.anchor.values().next().unwrap();
    assert_eq!(s.lma_dp.anchor.len(), 1);
    // GRE keys: the MAG chose the downlink key, the LMA the uplink key.
    assert_eq!(acc.uplink_key, anc.uplink_key);
    assert_eq!(acc.downlink_key, anc.downlink_key);
    assert_eq!(acc.home_v4, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(anc.home_v4, Some(Ipv4Addr::new(192, 0, 2, 1)));
    // The tunnel's outer family follows the transport.
    let (mag_ip, lma_ip) = if v4 {
        (IpAddr::V4(MAG1_V4), IpAddr::V4(LMA_V4))
    } else {
        (IpAddr::V6(MAG1), IpAddr::V6(LMA))
    };
    assert_eq!((acc.tunnel.local, acc.tunnel.remote), (mag_ip, lma_ip));
    assert_eq!((anc.tunnel.local, anc.tunnel.remote), (lma_ip, mag_ip));
    // The PBU carried what RFC 5213/5844/5845 ask for.
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    assert_eq!(pbus.len(), 1);
    let Message::BindingUpdate(bu) = &pbus[0].1 else {
        unreachable!()
    };
    assert_eq!(
        bu.flags & (bu_flags::A | bu_flags::P),
        bu_flags::A | bu_flags::P
    );
    assert_eq!(bu.flags & bu_flags::T, 0);
    assert_eq!(bu.mn_id(), Some(&b"mn1@example.com"[..]));
    assert_eq!(
        bu.handoff_indicator(),
        Some(HandoffIndicator::HandoffStateUnknown)
    );
    assert_eq!(bu.access_tech_type(), Some(AccessTechType::Ieee80211));
    assert_eq!(bu.link_layer_id(), Some(&ap(1).mac[..]));
    assert!(bu.timestamp().is_some());
    assert_eq!(bu.gre_key(), Some(Some(acc.downlink_key)));
    assert_eq!(bu.ipv4_hoa_request(), Some((0, Ipv4Addr::UNSPECIFIED)));
    assert_eq!(bu.ipv4_coa().is_some(), v4);
    assert_eq!(bu.lifetime_secs(), 3600);
    assert_eq!(s.lma.counters.registrations, 1);
    assert_eq!(s.mags[0].counters.pba_accepted, 1);
}

#[test]
fn first_registration_ipv6_transport() {
    first_registration(false);
}

#[test]
fn first_registration_ipv4_transport() {
    first_registration(true);
}

#[test]
fn dual_stack_gets_prefix_and_address() {
    let mut s = Sim::new(false);
    let mut r = req(2);
    r.ipv6 = true;
    s.attach(0, r);
    let MagEvent::Registered { home_v4, hnp, .. } = registered(&s.events[0])[0].clone() else {
        unreachable!()
    };
    assert!(home_v4.is_some());
    let hnp = hnp.unwrap();
    assert_eq!(
        (hnp.prefix, hnp.len),
        ("2001:db8:f00d::".parse().unwrap(), 64)
    );
    assert_eq!(s.mag_dp[0].access[&ap(2)].hnp, Some(hnp));
}

/// Issue 15: the PBU asks for the home networks of the subscriber's service —
/// an HNP (::/0, RFC 5213 §6.9.1.1) for IPv6, an IPv4 home address (RFC 5844
/// §3.1.1) for IPv4, both for dual stack — and the PBA grants exactly those.
#[test]
fn pbu_asks_for_the_subscribers_home_networks() {
    for (ipv4, ipv6) in [(false, true), (true, true), (true, false)] {
        let mut s = Sim::new(false);
        let mut r = req(1);
        (r.ipv4, r.ipv6) = (ipv4, ipv6);
        s.attach(0, r);
        let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
        let Message::BindingUpdate(bu) = &pbus[0].1 else {
            unreachable!()
        };
        let want: Vec<(u8, Ipv6Addr)> = if ipv6 {
            vec![(0, Ipv6Addr::UNSPECIFIED)]
        } else {
            Vec::new()
        };
        assert_eq!(bu.hnps(), want, "ipv4 {ipv4} ipv6 {ipv6}");
        assert_eq!(bu.ipv4_hoa_request().is_some(), ipv4);
        let MagEvent::Registered { home_v4, hnp, .. } = registered(&s.events[0])[0].clone() else {
            unreachable!()
        };
        assert_eq!((home_v4.is_some(), hnp.is_some()), (ipv4, ipv6));
    }
}

#[test]
fn unique_uplink_keys_and_addresses() {
    let mut s = Sim::new(false);
    for n in 0..10 {
        s.attach(0, req(n));
    }
    let keys: std::collections::HashSet<u32> = s.lma_dp.anchor.keys().copied().collect();
    assert_eq!(keys.len(), 10);
    let addrs: std::collections::HashSet<_> =
        s.mag_dp[0].access.values().map(|b| b.home_v4).collect();
    assert_eq!(addrs.len(), 10);
    let down: std::collections::HashSet<_> = s.mag_dp[0]
        .access
        .values()
        .map(|b| b.downlink_key)
        .collect();
    assert_eq!(down.len(), 10);
}

#[test]
fn refresh_keeps_binding_alive() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let installs = s.mag_dp[0].log.len();
    // Two hours: refresh every 300 s, the 3600 s lifetime never runs out.
    s.advance(Duration::from_secs(7200));
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    assert_eq!(pbus.len(), 1 + 24);
    for w in pbus.windows(2) {
        assert_eq!(w[1].0 - w[0].0, Duration::from_secs(300));
    }
    assert_eq!(s.lma.counters.refreshes, 24);
    assert_eq!(s.lma.binding_count(), 1);
    assert_eq!(
        s.mag_dp[0].log.len(),
        installs,
        "a refresh with nothing changed does not touch the map"
    );
    assert_eq!(s.lma_dp.log.len(), 1);
    assert_eq!(registered(&s.events[0]).len(), 1);
    assert_eq!(s.mags[0].active_count(), 1);
}

#[test]
fn retransmission_backs_off_then_gives_up() {
    let mut s = Sim::new(false);
    s.drop_to.push(Node::Lma);
    s.attach(0, req(1));
    s.advance(Duration::from_secs(200));
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let t0 = pbus[0].0;
    let offsets: Vec<u64> = pbus.iter().map(|(t, _)| (*t - t0).as_secs()).collect();
    assert_eq!(offsets, [0, 1, 3, 7, 15, 31]);
    // Every retransmission is a new PBU (new sequence number).
    let seqs: std::collections::HashSet<u16> = pbus
        .iter()
        .map(|(_, m)| {
            if let Message::BindingUpdate(b) = m {
                b.seq
            } else {
                0
            }
        })
        .collect();
    assert_eq!(seqs.len(), 6);
    assert_eq!(
        s.events[0],
        vec![MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::Timeout
        }]
    );
    assert_eq!(s.mags[0].counters.registration_timeouts, 1);
    assert_eq!(s.mags[0].binding_count(), 0);
    assert!(s.mag_dp[0].access.is_empty());
}

#[test]
fn lost_pba_is_recovered_by_retransmission() {
    let mut s = Sim::new(false);
    s.drop_to.push(Node::Mag(0));
    s.attach(0, req(1));
    assert_eq!(s.lma.binding_count(), 1);
    s.drop_to.clear();
    s.advance(Duration::from_secs(2));
    assert_eq!(s.mags[0].active_count(), 1);
    assert_eq!(
        s.mag_dp[0].access[&ap(1)].uplink_key,
        s.lma.binding(b"mn1@example.com").unwrap().uplink_key
    );
}

#[test]
fn deregistration_and_delayed_delete() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.mags[0].detach(s.now, ap(1));
    s.run();
    assert!(s.mag_dp[0].access.is_empty());
    assert_eq!(
        s.events[0].last(),
        Some(&MagEvent::Deregistered { at: ap(1) })
    );
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let Message::BindingUpdate(bu) = &pbus.last().unwrap().1 else {
        unreachable!()
    };
    assert_eq!(bu.lifetime, 0);
    assert_eq!(
        bu.gre_key(),
        None,
        "RFC 5845: no GRE key in a deregistration"
    );
    // The map entry goes now, the cache entry after MinDelayBeforeBCEDelete.
    assert!(s.lma_dp.anchor.is_empty());
    assert!(s.lma.binding(b"mn1@example.com").unwrap().deleting);
    s.advance(Duration::from_secs(9));
    assert_eq!(s.lma.binding_count(), 1);
    s.advance(Duration::from_secs(2));
    assert_eq!(s.lma.binding_count(), 0);
    assert_eq!(s.lma.counters.deleted_after_dereg, 1);
    assert_eq!(s.mags[0].binding_count(), 0);
    // The address went back to the pool, held for mn1 (issue 11: address
    // affinity): another MN gets the next free one.
    s.attach(0, req(2));
    assert_eq!(
        s.mag_dp[0].access[&ap(2)].home_v4,
        Some(Ipv4Addr::new(192, 0, 2, 2))
    );
}

#[test]
fn reattach_within_delete_delay_reuses_binding() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let key = s.lma.binding(b"mn1@example.com").unwrap().uplink_key;
    s.mags[0].detach(s.now, ap(1));
    s.run();
    s.advance(Duration::from_secs(3));
    s.attach(1, req(1));
    let b = s.lma.binding(b"mn1@example.com").unwrap();
    assert!(!b.deleting);
    assert_eq!(b.uplink_key, key);
    assert_eq!(s.lma_dp.anchor[&key].tunnel.remote, IpAddr::V6(MAG2));
    s.advance(Duration::from_secs(20));
    assert_eq!(s.lma.binding_count(), 1);
}

#[test]
fn lifetime_expiry_at_lma() {
    let mut cfg = lma_cfg();
    cfg.max_lifetime = Duration::from_secs(40);
    let mut s = Sim::new(false).with_lma(cfg);
    s.attach(0, req(1));
    let MagEvent::Registered { lifetime, .. } = registered(&s.events[0])[0].clone() else {
        unreachable!()
    };
    assert_eq!(
        lifetime,
        Duration::from_secs(40),
        "granted = min(requested, LMA maximum)"
    );
    // The MAG goes silent: no refresh reaches the LMA.
    s.drop_to.push(Node::Lma);
    s.advance(Duration::from_secs(39));
    assert_eq!(s.lma.binding_count(), 1);
    s.advance(Duration::from_secs(2));
    assert_eq!(s.lma.binding_count(), 0);
    assert!(s.lma_dp.anchor.is_empty());
    assert_eq!(s.lma.counters.expired, 1);
    // The MAG, refreshing at 30 s without answer, drops its binding at expiry.
    s.advance(Duration::from_secs(60));
    assert!(s.mag_dp[0].access.is_empty());
    assert!(s.mags[0].counters.lifetime_expired + s.mags[0].counters.registration_timeouts >= 1);
}

#[test]
fn handover_between_mags_with_late_stale_pbu() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let key = s.lma.binding(b"mn1@example.com").unwrap().uplink_key;
    let log_before = s.lma_dp.log.len();
    // MAG1's next refresh is held back in the network...
    s.hold_from = Some(Node::Mag(0));
    s.advance(Duration::from_secs(300));
    assert_eq!(s.held.len(), 1);
    s.hold_from = None;
    // ...while the subscriber moves to MAG2.
    s.advance(Duration::from_millis(50));
    s.attach(1, req(1));
    let b = s.lma.binding(b"mn1@example.com").unwrap();
    assert_eq!(b.mag, Peer::V6(MAG2));
    assert_eq!(b.uplink_key, key, "the binding moves, its uplink key stays");
    // Exactly one map update switched the downlink tunnel.
    let new_cmds = &s.lma_dp.log[log_before..];
    assert_eq!(new_cmds.len(), 1, "{new_cmds:?}");
    let DpCommand::InstallAnchor(a) = &new_cmds[0] else {
        panic!("{new_cmds:?}")
    };
    assert_eq!(a.tunnel.remote, IpAddr::V6(MAG2));
    assert_eq!(s.lma.counters.handovers, 1);
    // The old MAG got a BRI, tore its binding down and acknowledged.
    let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
    assert_eq!(bris.len(), 1);
    let Message::RevocationIndication(bri) = &bris[0].1 else {
        unreachable!()
    };
    // The new MAG's first PBU says "handoff state unknown" (HI 4): RFC
    // 5846 §8.1 wants "Inter-MAG Handover - Unknown".
    assert_eq!(bri.trigger, revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN);

    assert!(s.mag_dp[0].access.is_empty());
    assert!(s.events[0].contains(&MagEvent::Revoked {
        at: ap(1),
        trigger: 4
    }));
    assert_eq!(s.lma.counters.bra_rx, 1);
    // The stale PBU from MAG1 arrives late: older timestamp, refused, no change.
    let (from, to, bytes) = s.held.pop().unwrap();
    s.deliver(from, to, &bytes);
    s.run();
    assert_eq!(s.lma.counters.pbu_timestamp_replayed, 1);
    assert_eq!(
        s.lma.binding(b"mn1@example.com").unwrap().mag,
        Peer::V6(MAG2)
    );
    assert_eq!(s.lma_dp.anchor[&key].tunnel.remote, IpAddr::V6(MAG2));
    let pbas = s.sent(Node::Lma, Node::Mag(0), MhType::BindingAck);
    let Message::BindingAck(ba) = &pbas.last().unwrap().1 else {
        unreachable!()
    };
    assert_eq!(ba.status, BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED);
    // MAG2's binding keeps working across refreshes.
    s.advance(Duration::from_secs(600));
    assert_eq!(s.mags[1].active_count(), 1);
    assert_eq!(s.mag_dp[1].access[&ap(1)].uplink_key, key);
}

/// RFC 5846 §6.1: the BRI that revokes one session names it by its home
/// network prefix ("MUST be present when the BRI is used to revoke a single
/// Proxy MIPv6 Binding Cache entry"), and by the link-layer identifier the
/// old MAG knew it by.
#[test]
fn the_handover_bri_names_the_session_by_its_prefix() {
    let mut s = Sim::new(false);
    let dual = |n| AttachRequest {
        ipv6: true,
        ..req(n)
    };
    s.attach(0, dual(1));
    let hnp = s
        .lma
        .binding(b"mn1@example.com")
        .unwrap()
        .hnp
        .expect("a prefix");
    s.advance(Duration::from_millis(50));
    s.attach(1, dual(1));
    let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
    let Message::RevocationIndication(bri) = &bris[0].1 else {
        unreachable!()
    };
    assert!(
        bri.options.iter().any(|o| matches!(o,
        MobilityOption::HomeNetworkPrefix { prefix, prefix_len }
            if (*prefix, *prefix_len) == (hnp.prefix, hnp.len))),
        "{bri:?}"
    );
    assert_eq!(bri.mn_id(), Some(&b"mn1@example.com"[..]));
    assert_eq!(bri.link_layer_id(), Some(&ap(1).mac[..]));
}

/// RFC 5846 §6.1: the MAG's BRI for a subscriber that left names the
/// session by the prefix it was granted as well; the LMA removes the
/// binding holding that prefix (§8.2 (2)).
#[test]
fn the_mags_bri_names_the_session_by_its_prefix() {
    let mut s = Sim::new(false);
    let mut cfg = mag_cfg(false, MAG1, MAG1_V4);
    cfg.revoke_to.insert(IpAddr::V6(LMA));
    s.mags[0] = Mag::new(cfg, s.now, wall() + (s.now - s.start));
    let dual = |n| AttachRequest {
        ipv6: true,
        ..req(n)
    };
    s.attach(0, dual(1));
    let hnp = (s.lma.binding(b"mn1@example.com").unwrap().hnp).expect("a prefix");
    let now = s.now;
    s.mags[0].detach(now, ap(1));
    s.run();
    let bris = s.sent(Node::Mag(0), Node::Lma, MhType::BindingRevocation);
    let Some((_, Message::RevocationIndication(bri))) = bris.first() else {
        panic!("{bris:?}")
    };
    assert_eq!(bri.hnps(), vec![(hnp.len, hnp.prefix)]);
    assert_eq!(s.lma.counters.bri_from_mag, 1);
    assert!(s.lma.binding(b"mn1@example.com").is_none());
}

/// RFC 5846 §6.2.1 at the MAG: a BRI whose trigger does not fit its intent
/// (a per-MN one with G, a global one without) gets 134, an unknown trigger
/// 133, and nothing is removed.
#[test]
fn a_bri_whose_trigger_does_not_fit_is_refused_at_the_mag() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    let mn = MobilityOption::MnId {
        subtype: 1,
        id: b"mn1@example.com".to_vec(),
    };
    let cases = [
        (1, br_flags::P | br_flags::G, vec![], 134),
        (129, br_flags::P, vec![mn.clone()], 134),
        (200, br_flags::P, vec![mn], 133),
    ];
    for (i, (trigger, flags, options, want)) in cases.into_iter().enumerate() {
        let seq = 70 + i as u16;
        let bra = s.bra_to(RevocationIndication {
            trigger,
            seq,
            flags,
            options,
        });
        assert_eq!((bra.seq, bra.status), (seq, want), "trigger {trigger}");
        assert_eq!(s.mags[0].active_count(), 1);
    }
}

/// RFC 5844 §3.1.2.1 / §3.2.3.3: a PBU with a Home Network Prefix option
/// for an MN the LMA cannot give IPv6 service (no IPv6 pool here) is
/// refused with 172, not quietly granted IPv4 alone; the MAG then asks
/// again without the prefix and the MN gets its IPv4 home address.
#[test]
fn a_dual_stack_request_without_ipv6_service_is_refused_then_asked_for_ipv4() {
    let mut s = Sim::new(false);
    let mut cfg = lma_cfg();
    cfg.ipv6_pool = None;
    s.lma = Lma::new(cfg, s.now, wall() + (s.now - s.start));
    s.attach(
        0,
        AttachRequest {
            ipv6: true,
            ..req(1)
        },
    );
    assert_eq!(
        pba_statuses(&s),
        [
            BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE,
            BaStatus::ACCEPTED
        ]
    );
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let Some((_, Message::BindingUpdate(second))) = pbus.last() else {
        panic!("{pbus:?}")
    };
    assert!(second.hnps().is_empty(), "asked again without the prefix");
    let b = s.lma.binding(b"mn1@example.com").unwrap();
    assert!(b.home_v4.is_some() && b.hnp.is_none());
    assert_eq!(s.mags[0].counters.ipv6_refused_retried_ipv4, 1);
}

#[test]
fn late_deregistration_from_old_mag_is_ignored() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.advance(Duration::from_millis(10));
    s.attach(1, req(1));
    // MAG1 had already lost the binding to the BRI; fake its late dereg with
    // a newer timestamp (its own detach arriving after MAG2's PBU).
    let mut m = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.start, wall());
    m.attach(s.now, req(1));
    let _ = m.poll_transmit();
    m.detach(s.now + Duration::from_millis(5), ap(1));
    let t = m.poll_transmit().unwrap();
    s.now += Duration::from_millis(5);
    s.lma.handle(s.now, Peer::V6(MAG1), &t.payload);
    s.run();
    assert_eq!(s.lma.counters.dereg_from_old_mag, 1);
    let b = s.lma.binding(b"mn1@example.com").unwrap();
    assert_eq!((b.mag, b.deleting), (Peer::V6(MAG2), false));
    assert_eq!(s.lma_dp.anchor.len(), 1);
}

#[test]
fn heartbeat_loss_triggers_reregistration() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.attach(0, req(2));
    // With the LMA answering, heartbeats flow and nothing else happens.
    s.advance(Duration::from_secs(130));
    assert_eq!(s.mags[0].counters.heartbeat_sent, 2);
    assert_eq!(s.mags[0].counters.heartbeat_missed, 0);
    let hbs = s.sent(Node::Lma, Node::Mag(0), MhType::Heartbeat);
    let responses: Vec<_> = hbs
        .iter()
        .filter(|(_, m)| matches!(m, Message::Heartbeat(h) if h.response))
        .collect();
    assert_eq!(responses.len(), 2);
    assert!(responses
        .iter()
        .all(|(_, m)| matches!(m, Message::Heartbeat(h) if h.restart_counter() == Some(1))));
    // The LMA probes the MAG too (RFC 5847), and the MAG answers.
    assert_eq!(hbs.len() - responses.len(), 2);
    assert_eq!(s.lma.counters.heartbeat_missed, 0);
    // Now the LMA's answers are lost: 3 missed heartbeats are still allowed
    // (MISSING_HEARTBEATS_ALLOWED); the 4th exceeds it (RFC 5847 §3):
    // re-register all.
    s.drop_to.push(Node::Mag(0));
    s.advance(Duration::from_secs(240));
    assert_eq!(s.mags[0].counters.heartbeat_missed, 3);
    assert_eq!(s.mags[0].counters.reregistrations, 0);
    s.advance(Duration::from_secs(60));
    assert_eq!(s.mags[0].counters.heartbeat_missed, 4);
    assert_eq!(s.mags[0].counters.reregistrations, 2);
    // Still silent: further misses send no new round of PBUs (no storm
    // towards an LMA that is away).
    s.advance(Duration::from_secs(360));
    assert!(s.mags[0].counters.heartbeat_missed >= 6);
    assert_eq!(s.mags[0].counters.reregistrations, 2);
    s.drop_to.clear();
    s.advance(Duration::from_secs(120));
    assert_eq!(s.mags[0].active_count(), 2);
}

/// RFC 5847 §3: "the LMA SHOULD NOT send a Heartbeat Request message to a
/// MAG if there is no active Binding Cache entry created by the MAG", and
/// the MAG none to an LMA without its proxy Binding Cache entries: once the
/// MAG's last binding is gone both ends' requests stop (a request is still
/// answered), and they start again with its next binding.
#[test]
fn heartbeats_go_only_between_peers_with_bindings() {
    let mut s = Sim::new(false);
    let requests = |s: &Sim, from: Node, to: Node| {
        s.sent(from, to, MhType::Heartbeat)
            .iter()
            .filter(|(_, m)| matches!(m, Message::Heartbeat(h) if !h.response))
            .count()
    };
    let both = |s: &Sim| {
        (
            requests(s, Node::Lma, Node::Mag(0)),
            requests(s, Node::Mag(0), Node::Lma),
        )
    };
    s.attach(0, req(1));
    s.advance(Duration::from_secs(130));
    assert_eq!(both(&s), (2, 2));
    let now = s.now;
    s.mags[0].detach(now, ap(1));
    s.run();
    // Past MinDelayBeforeBCEDelete (10 s): the entry is gone.
    s.advance(Duration::from_secs(15));
    assert!(s.lma.binding(b"mn1@example.com").is_none());
    let before = both(&s);
    s.advance(Duration::from_secs(300));
    assert_eq!(both(&s), before, "heartbeats without bindings");
    assert_eq!(s.lma.counters.mag_unreachable, 0);
    assert_eq!(s.mags[0].counters.heartbeat_missed, 0);
    // A request is still answered ("irrespective of whether there is an
    // active Binding Cache entry").
    let hb = Message::Heartbeat(Heartbeat {
        unsolicited: false,
        response: false,
        seq: 77,
        options: vec![],
    })
    .to_vec(Checksum::Ipv6 {
        src: MAG1,
        dst: LMA,
    })
    .unwrap();
    s.deliver(Node::Mag(0), Node::Lma, &hb);
    s.run();
    let answered = s
        .sent(Node::Lma, Node::Mag(0), MhType::Heartbeat)
        .iter()
        .any(|(_, m)| matches!(m, Message::Heartbeat(h) if h.response && h.seq == 77));
    assert!(answered, "the LMA answers a request without bindings");
    s.attach(0, req(2));
    s.advance(Duration::from_secs(130));
    assert_eq!(both(&s), (before.0 + 2, before.1 + 2));
}

/// RFC 5847 §3: a peer without heartbeat support answers one with a
/// Binding Error (status 2); the node that sent it "MUST NOT use Heartbeat
/// messages with the other end again" — and so never counts it missing,
/// takes it for down, or re-registers everything for it.
#[test]
fn a_binding_error_to_a_heartbeat_ends_heartbeats_to_that_peer() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let be = |src: Ipv6Addr, dst: Ipv6Addr| {
        Message::BindingError(BindingError {
            status: be_status::UNRECOGNIZED_MH_TYPE,
            home_address: Ipv6Addr::UNSPECIFIED,
            options: vec![],
        })
        .to_vec(Checksum::Ipv6 { src, dst })
        .unwrap()
    };
    let requests = |s: &Sim, from: Node, to: Node| {
        s.sent(from, to, MhType::Heartbeat)
            .iter()
            .filter(|(_, m)| matches!(m, Message::Heartbeat(h) if !h.response))
            .count()
    };
    // Both ends' first heartbeats go out, neither is answered; each peer
    // answers with a Binding Error instead.
    s.drop_to = vec![Node::Lma, Node::Mag(0)];
    s.advance(Duration::from_secs(61));
    s.drop_to.clear();
    assert_eq!(requests(&s, Node::Mag(0), Node::Lma), 1);
    assert_eq!(requests(&s, Node::Lma, Node::Mag(0)), 1);
    s.deliver(Node::Lma, Node::Mag(0), &be(LMA, MAG1));
    s.deliver(Node::Mag(0), Node::Lma, &be(MAG1, LMA));
    assert_eq!(s.mags[0].counters.heartbeat_unsupported, 1);
    assert_eq!(s.lma.counters.heartbeat_unsupported, 1);
    // Ten minutes on: no heartbeat from either side, nothing missed, no
    // re-registration; the binding refreshed all along.
    s.advance(Duration::from_secs(600));
    assert_eq!(requests(&s, Node::Mag(0), Node::Lma), 1);
    assert_eq!(requests(&s, Node::Lma, Node::Mag(0)), 1);
    assert_eq!(s.mags[0].counters.heartbeat_missed, 0);
    assert_eq!(s.mags[0].counters.reregistrations, 0);
    assert_eq!(s.lma.counters.mag_unreachable, 0);
    assert_eq!(s.mags[0].active_count(), 1);
    // A Binding Error with no heartbeat outstanding changes nothing.
    let mut t = Sim::new(false);
    t.attach(0, req(1));
    t.deliver(Node::Lma, Node::Mag(0), &be(LMA, MAG1));
    t.advance(Duration::from_secs(61));
    assert_eq!(t.mags[0].counters.heartbeat_unsupported, 0);
    assert_eq!(requests(&t, Node::Mag(0), Node::Lma), 1);
}

#[test]
fn lma_restart_detected_by_restart_counter() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.attach(0, req(2));
    s.advance(Duration::from_secs(61));
    // The LMA restarts and loses its binding cache (and its data plane).
    let mut cfg = lma_cfg();
    cfg.restart_counter = 2;
    // Its clock kept time while it was down: the MAG's timestamps (its own
    // clock, RFC 5213 §6.9.1.2) stay within the window.
    s.lma = Lma::new(cfg, s.now, wall() + (s.now - s.start));
    s.lma_dp = MemDataPlane::default();
    s.advance(Duration::from_secs(60));
    assert_eq!(s.mags[0].counters.lma_restart_detected, 1);
    assert_eq!(s.mags[0].counters.reregistrations, 2);
    assert_eq!(s.lma.binding_count(), 2);
    assert_eq!(s.lma_dp.anchor.len(), 2);
    // The MAG's map holds the new uplink keys.
    for n in [1u8, 2] {
        let want = s
            .lma
            .binding(format!("mn{n}@example.com").as_bytes())
            .unwrap()
            .uplink_key;
        assert_eq!(s.mag_dp[0].access[&ap(n)].uplink_key, want);
    }
}

/// RFC 5846 §8.1: the entry of an administratively revoked session stays
/// "revocation in progress" until the BRA; a refresh that crossed the BRI
/// is refused (129) instead of opening a new session, and the entry goes
/// when the MAG answers.
#[test]
fn a_refresh_crossing_a_revocation_is_refused() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    // MAG1's next refresh is held back in the network...
    s.hold_from = Some(Node::Mag(0));
    s.advance(Duration::from_secs(300));
    assert_eq!(s.held.len(), 1);
    s.hold_from = None;
    // ...while the operator revokes the session; the BRI is lost.
    s.drop_to = vec![Node::Mag(0)];
    assert!(s.lma.revoke(
        s.now,
        b"mn1@example.com",
        revocation_trigger::ADMINISTRATIVE
    ));
    s.run();
    assert!(s.lma_dp.anchor.is_empty(), "the tunnel goes at once");
    let (from, to, bytes) = s.held.pop().unwrap();
    s.deliver(from, to, &bytes);
    s.run();
    assert_eq!(s.lma.counters.pbu_refused_revoking, 1);
    let pbas = s.sent(Node::Lma, Node::Mag(0), MhType::BindingAck);
    let Some((_, Message::BindingAck(ba))) = pbas.last() else {
        panic!("{pbas:?}")
    };
    assert_eq!(ba.status, BaStatus::ADMIN_PROHIBITED);
    assert!(s.lma_dp.anchor.is_empty(), "no new session");
    assert_eq!(s.lma.revocations_in_progress(), 1);
    // The BRI's retransmission gets through and is answered.
    s.drop_to.clear();
    s.advance(Duration::from_secs(5));
    assert_eq!(s.lma.counters.revocations_completed, 1);
    assert_eq!(s.lma.revocations_in_progress(), 0);
    assert_eq!(s.lma.binding_count(), 0);
    // The MN may register again.
    s.attach(0, req(1));
    assert!(s.lma.binding(b"mn1@example.com").is_some());
}

#[test]
fn revocation_by_lma() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    assert!(s.lma.revoke(
        s.now,
        b"mn1@example.com",
        revocation_trigger::ADMINISTRATIVE
    ));
    s.run();
    assert!(s.lma_dp.anchor.is_empty());
    assert!(s.mag_dp[0].access.is_empty());
    assert!(s.events[0].contains(&MagEvent::Revoked {
        at: ap(1),
        trigger: 1
    }));
    let bras = s.sent(Node::Mag(0), Node::Lma, MhType::BindingRevocation);
    let Message::RevocationAck(bra) = &bras[0].1 else {
        unreachable!()
    };
    assert_eq!(
        (bra.status, bra.flags & br_flags::P),
        (bra_status::SUCCESS, br_flags::P)
    );
    assert_eq!(s.lma.counters.bra_rx, 1);
    // A BRI for a binding the MAG does not have gets "binding does not exist".
    s.lma.revoke(s.now, b"nobody", 1);
    let bra = s.bra_to(RevocationIndication {
        trigger: 1,
        seq: 77,
        flags: br_flags::P,
        options: vec![MobilityOption::MnId {
            subtype: 1,
            id: b"ghost@example.com".to_vec(),
        }],
    });
    assert_eq!(
        (bra.status, bra.seq),
        (bra_status::BINDING_DOES_NOT_EXIST, 77)
    );
}

/// RFC 5846 §9.1: a BRI saying the MN moved to another MAG, for an MN that
/// is still on this MAG's access link, is refused with "MN is Attached"
/// (132) and the binding stays; its retransmission is not answered twice.
/// Once the MN is gone from the link (or the link says nothing within the
/// check's limit), the same BRI revokes.
#[test]
fn a_handover_bri_for_an_attached_mn_is_refused_with_132() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    let handover_bri = |seq: u16, n: u8| {
        Message::RevocationIndication(RevocationIndication {
            trigger: revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT,
            seq,
            flags: br_flags::P,
            options: vec![MobilityOption::MnId {
                subtype: 1,
                id: format!("mn{n}@example.com").into_bytes(),
            }],
        })
        .to_vec(Checksum::None)
        .unwrap()
    };
    let bras = |s: &Sim| -> Vec<(u16, u8)> {
        s.sent(Node::Mag(0), Node::Lma, MhType::BindingRevocation)
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::RevocationAck(a) => Some((a.seq, a.status)),
                _ => None,
            })
            .collect()
    };
    // The BRI and its retransmission before the check is answered.
    let (now, lma) = (s.now, s.peer_of(Node::Lma));
    s.mags[0].handle(now, lma, &handover_bri(40, 1));
    s.mags[0].handle(now, lma, &handover_bri(40, 1));
    s.run();
    assert_eq!(bras(&s), vec![(40, bra_status::MN_ATTACHED)]);
    assert!(s.mag_dp[0].access.contains_key(&ap(1)));
    assert_eq!(s.mags[0].counters.bri_mn_attached, 1);
    // The MN left the link: the check finds nobody, the BRI revokes.
    s.on_link.remove(&ap(1));
    s.deliver(Node::Lma, Node::Mag(0), &handover_bri(41, 1));
    s.run();
    assert_eq!(bras(&s)[1], (41, bra_status::SUCCESS));
    assert!(s.mag_dp[0].access.is_empty());
    // An access side that never answers: the BRI is answered after the
    // check's limit, as revoking.
    s.attach(0, req(2));
    let now = s.now;
    s.mags[0].handle(now, lma, &handover_bri(42, 2));
    let checks = s.mags[0].poll_event();
    assert!(
        matches!(checks, Some(MagEvent::CheckPresence { .. })),
        "{checks:?}"
    );
    s.advance(crate::pmipv6::mag::CHECK_LIMIT);
    assert_eq!(bras(&s)[2], (42, bra_status::SUCCESS));
    assert!(!s.mag_dp[0].access.contains_key(&ap(2)));
}

/// Over IPv4 the MAG is its address (the proxy-CoA), not its UDP source
/// port: a refresh from the same MAG on another port is a refresh, not a
/// handover (no BRI to the old port), and its de-registration from yet
/// another port removes the binding.
#[test]
fn a_mag_on_another_udp_port_is_the_same_mag() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    assert_eq!(s.lma.binding_count(), 1);
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let Message::BindingUpdate(first) = &pbus[0].1 else {
        unreachable!()
    };
    let from_port = |s: &mut Sim, bu: &BindingUpdate, port: u16| {
        let bytes = Message::BindingUpdate(bu.clone())
            .to_vec(Checksum::None)
            .unwrap();
        let peer = Peer::V4(SocketAddrV4::new(MAG1_V4, port));
        s.lma.handle(s.now, peer, &bytes);
        while s.lma.poll_store().is_some() {}
        s.lma.stored(s.now, true);
        // What the LMA sends goes to that port (taken here: the MAG's
        // socket is on another one).
        let mut to = vec![];
        while let Some(t) = s.lma.poll_transmit() {
            to.push(t.peer);
        }
        assert_eq!(to, vec![peer], "port {port}");
    };
    // The same PBU, one second and one sequence number later.
    let later = |bu: &BindingUpdate, lifetime: u16| {
        let mut bu = bu.clone();
        bu.seq = bu.seq.wrapping_add(1);
        bu.lifetime = lifetime;
        for o in &mut bu.options {
            if let MobilityOption::Timestamp(t) = o {
                *t += 1 << 16;
            }
        }
        bu
    };
    s.advance(Duration::from_secs(1));
    let refresh = later(first, first.lifetime);
    from_port(&mut s, &refresh, 40_000);
    assert_eq!(s.lma.counters.pbu_accepted, 2);
    assert_eq!((s.lma.counters.handovers, s.lma.counters.bri_sent), (0, 0));
    s.advance(Duration::from_secs(1));
    from_port(&mut s, &later(&refresh, 0), 40_001);
    assert_eq!(s.lma.counters.dereg_from_old_mag, 0);
    assert_eq!(s.lma.counters.deregistrations, 1);
}

/// With the sequence-number scheme, each binding's PBUs are numbered on
/// their own: many other subscribers' PBUs between two of one subscriber's
/// do not make its refresh look older to the LMA. And a MAG that lost its
/// numbers (a fresh MAG for a binding the LMA holds) takes the LMA's from
/// its 135 and goes on from there.
#[test]
fn sequence_numbers_are_per_binding_and_resume_after_135() {
    let mut cfg = lma_cfg();
    cfg.timestamp_based = false;
    let mut s = Sim::new(true).with_lma(cfg);
    s.attach(0, req(1));
    assert_eq!(s.lma.binding_count(), 1);
    // 40 000 PBUs of other bindings: one counter for all would have moved
    // by that much, past half the sequence space.
    for _ in 0..40_000 {
        s.mags[0].next_seq_for_test();
    }
    s.advance(Duration::from_secs(400));
    assert!(s.lma.counters.refreshes >= 1, "no refresh accepted");
    assert_eq!(s.lma.counters.pbu_sequence_out_of_window, 0);
    // A MAG that starts over (no record) for the same subscriber.
    s.mags[0] = Mag::new(mag_cfg(true, MAG1, MAG1_V4), s.now, wall());
    s.events[0].clear();
    s.attach(0, req(1));
    assert_eq!(s.lma.counters.pbu_sequence_out_of_window, 1);
    assert!(
        s.events[0]
            .iter()
            .any(|e| matches!(e, MagEvent::Registered { .. })),
        "the MAG did not register after 135: {:?}",
        s.events[0]
    );
    assert_eq!(s.lma.binding_count(), 1);
}

/// An unsolicited Heartbeat Response (U, RFC 5847 §5.1) matches no
/// request: the MAG takes its Restart Counter all the same, and a changed
/// one (the LMA restarted) has it register its bindings again.
#[test]
fn unsolicited_heartbeat_response_carries_a_restart() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    let pbus = |s: &Sim| s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate).len();
    let before = pbus(&s);
    let hb = |rc: u32| {
        Message::Heartbeat(Heartbeat {
            unsolicited: true,
            response: true,
            seq: 4242,
            options: vec![MobilityOption::RestartCounter(rc)],
        })
        .to_vec(Checksum::None)
        .unwrap()
    };
    s.deliver(Node::Lma, Node::Mag(0), &hb(1));
    s.run();
    assert_eq!(s.mags[0].counters.rx_unexpected_message, 0);
    assert_eq!(s.mags[0].counters.lma_restart_detected, 0);
    s.deliver(Node::Lma, Node::Mag(0), &hb(2));
    s.run();
    assert_eq!(s.mags[0].counters.lma_restart_detected, 1);
    assert!(pbus(&s) > before, "no PBU after the LMA's restart");
}

/// A BRA ends the BRI it answers only when it comes from the MAG the BRI
/// went to: another MAG's BRA with the same sequence number is counted as
/// unmatched and the BRI is still retransmitted, until its own MAG answers.
#[test]
fn a_bra_from_another_mag_does_not_end_a_bri() {
    for v4 in [false, true] {
        let mut s = Sim::new(v4);
        s.attach(0, req(1));
        s.drop_to.push(Node::Mag(0));
        assert!(s.lma.revoke(s.now, b"mn1@example.com", 1));
        s.run();
        let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
        let Message::RevocationIndication(bri) = &bris[0].1 else {
            unreachable!()
        };
        let bra = Message::RevocationAck(RevocationAck::answering(bri, bra_status::SUCCESS));
        let from = |src| {
            let ck = if v4 {
                Checksum::None
            } else {
                Checksum::Ipv6 { src, dst: LMA }
            };
            bra.to_vec(ck).unwrap()
        };
        s.deliver(Node::Mag(1), Node::Lma, &from(MAG2));
        assert_eq!(
            (s.lma.counters.bra_rx, s.lma.counters.bra_unmatched),
            (1, 1),
            "v4 {v4}"
        );
        s.advance(Duration::from_secs(5));
        let again = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
        assert!(again.len() > 1, "v4 {v4}: the BRI was not retransmitted");
        s.deliver(Node::Mag(0), Node::Lma, &from(MAG1));
        assert_eq!(
            (s.lma.counters.bra_rx, s.lma.counters.bra_unmatched),
            (2, 1),
            "v4 {v4}"
        );
        let n = s
            .sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation)
            .len();
        s.advance(Duration::from_secs(60));
        let after = s
            .sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation)
            .len();
        assert_eq!(after, n, "v4 {v4}: retransmitted after its own MAG's BRA");
    }
}

/// A BRI with V (the IPv4 home address binding alone, RFC 5846 §6.1) is
/// refused with 134, the binding kept whole; every BRA carries the BRI's
/// P, V and G (§6.2) — G as 0x2000, the bit a BRI has it at.
#[test]
fn revocation_of_the_ipv4_binding_alone_is_refused() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    let bri = |seq: u16, flags: u16| {
        // A global one names no MN (every binding with this LMA).
        let options = if flags & br_flags::G != 0 {
            Vec::new()
        } else {
            vec![MobilityOption::MnId {
                subtype: 1,
                id: b"mn1@example.com".to_vec(),
            }]
        };
        Message::RevocationIndication(RevocationIndication {
            trigger: 128,
            seq,
            flags,
            options,
        })
        .to_vec(Checksum::None)
        .unwrap()
    };
    let last_bra = |s: &Sim| {
        let bras = s.sent(Node::Mag(0), Node::Lma, MhType::BindingRevocation);
        let Message::RevocationAck(bra) = &bras.last().unwrap().1 else {
            unreachable!()
        };
        (bra.status, bra.seq, bra.flags)
    };
    s.deliver(Node::Lma, Node::Mag(0), &bri(90, br_flags::P | br_flags::V));
    s.run();
    assert_eq!(
        last_bra(&s),
        (
            bra_status::FUNCTION_NOT_SUPPORTED,
            90,
            br_flags::P | br_flags::V
        )
    );
    assert_eq!(s.mag_dp[0].access.len(), 1, "the binding is kept");
    assert_eq!(s.mags[0].counters.bri_refused, 1);
    s.deliver(Node::Lma, Node::Mag(0), &bri(91, br_flags::P | br_flags::G));
    s.run();
    assert_eq!(
        last_bra(&s),
        (bra_status::SUCCESS, 91, br_flags::P | br_flags::G)
    );
    assert_eq!(br_flags::G, 0x2000);
    assert!(s.mag_dp[0].access.is_empty());
    // A per-MN BRI that names no MN: 131, as the LMA answers.
    let anonymous = Message::RevocationIndication(RevocationIndication {
        trigger: 1,
        seq: 92,
        flags: br_flags::P,
        options: vec![],
    });
    s.deliver(
        Node::Lma,
        Node::Mag(0),
        &anonymous.to_vec(Checksum::None).unwrap(),
    );
    s.run();
    assert_eq!(
        last_bra(&s),
        (bra_status::MN_IDENTITY_REQUIRED, 92, br_flags::P)
    );
}

#[test]
fn bri_retransmitted_then_given_up() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.drop_to.push(Node::Mag(0));
    s.lma.revoke(s.now, b"mn1@example.com", 1);
    s.advance(Duration::from_secs(20));
    let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
    let t0 = bris[0].0;
    let offs: Vec<u64> = bris.iter().map(|(t, _)| (*t - t0).as_secs()).collect();
    assert_eq!(
        offs,
        [0, 1, 3, 5],
        "1 s, then the 2 s ceiling (seed 004 BRI delays)"
    );
    assert_eq!(s.lma.counters.bri_gave_up, 1);
}

#[test]
fn unconfigured_mag_gets_154_and_mag_stops_using_lma() {
    let mut cfg = lma_cfg();
    cfg.mags = vec![IpAddr::V6(MAG2)];
    let mut s = Sim::new(false).with_lma(cfg);
    s.attach(0, req(1));
    assert_eq!(s.lma.counters.pbu_unconfigured_mag, 1);
    assert_eq!(
        s.events[0],
        vec![MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::Rejected(BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG)
        }]
    );
    s.attach(0, req(2));
    assert_eq!(
        s.events[0][1],
        MagEvent::RegistrationFailed {
            at: ap(2),
            reason: FailReason::LmaUnavailable
        }
    );
    assert_eq!(s.lma.binding_count(), 0);
    // A PBU from an address that is not a MAG at all: 154 too.
    let mut m = Mag::new(mag_cfg(false, ROGUE, MAG1_V4), s.now, wall());
    m.attach(s.now, req(3));
    let t = m.poll_transmit().unwrap();
    s.lma.handle(s.now, Peer::V6(ROGUE), &t.payload);
    let reply = s.lma.poll_transmit().unwrap();
    assert_eq!(reply.peer, Peer::V6(ROGUE));
    let Message::BindingAck(ba) = Message::parse(
        &reply.payload,
        Checksum::Ipv6 {
            src: LMA,
            dst: ROGUE,
        },
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(ba.status, BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG);
}

#[test]
fn unknown_mn_refused() {
    let mut s = Sim::new(false);
    let mut r = req(1);
    r.mn_id = b"stranger@example.com".to_vec();
    s.attach(0, r);
    assert_eq!(s.lma.counters.pbu_unknown_mn, 1);
    assert_eq!(
        s.events[0],
        vec![MagEvent::RegistrationFailed {
            at: ap(1),
            // RFC 5213 §5.3.1 step 7: an identity we cannot identify.
            reason: FailReason::Rejected(BaStatus::NOT_LMA_FOR_THIS_MOBILE_NODE)
        }]
    );
    // With a default profile the same identity is served.
    let mut cfg = lma_cfg();
    cfg.default_profile = Some(Profile::default());
    let mut s = Sim::new(false).with_lma(cfg);
    let mut r = req(1);
    r.mn_id = b"stranger@example.com".to_vec();
    s.attach(0, r);
    assert_eq!(s.mags[0].active_count(), 1);
}

#[test]
fn static_address_when_profile_allows() {
    let mut s = Sim::new(false);
    let mut r = req(5);
    r.mn_id = b"static@example.com".to_vec();
    r.requested_v4 = Some(Ipv4Addr::new(192, 0, 2, 50));
    s.attach(0, r);
    assert_eq!(
        s.mag_dp[0].access[&ap(5)].home_v4,
        Some(Ipv4Addr::new(192, 0, 2, 50))
    );
    // mn1's profile does not allow it: refused with 171, and the MAG asks
    // again for any address (RFC 5844 §3.2.3.2), once: the LMA's pool
    // serves it. The address was a hint (a DHCP client's last address).
    let mut r = req(1);
    r.requested_v4 = Some(Ipv4Addr::new(192, 0, 2, 60));
    // The source of data from a MAC that moved in is not a hint: refused.
    s.attach(0, r.clone());
    assert_eq!(
        s.events[0].last(),
        Some(&MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::Rejected(BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS)
        })
    );
    // A DHCP client's option 50 is.
    r.v4_hint = true;
    s.attach(0, r);
    let got = s.mag_dp[0].access[&ap(1)].home_v4;
    assert!(
        got.is_some() && got != Some(Ipv4Addr::new(192, 0, 2, 60)),
        "{got:?}"
    );
    assert_eq!(s.mags[0].counters()["ipv4_address_refused_retried"], 1);
    assert_eq!(s.lma.counters()["pbu_v4_not_authorized"], 2);
}

#[test]
fn timestamp_mismatch_mag_keeps_its_clock() {
    let mut s = Sim::new(false);
    // MAG1's wall clock is 10 s ahead of the LMA's.
    s.mags[0] = Mag::new(
        mag_cfg(false, MAG1, MAG1_V4),
        s.now,
        wall() + Duration::from_secs(10),
    );
    s.attach(0, req(1));
    s.advance(Duration::from_secs(120));
    // RFC 5213 §6.9.1.2: the MAG does not take the LMA's time from a 156;
    // every retry is refused again and the attach fails with 156.
    assert!(s.lma.counters.pbu_timestamp_mismatch > 1);
    assert_eq!(s.mags[0].active_count(), 0);
    assert!(s.events[0].contains(&MagEvent::RegistrationFailed {
        at: ap(1),
        reason: FailReason::Rejected(BaStatus::TIMESTAMP_MISMATCH)
    }));
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    assert!(pbus.len() > 1);
    // §6.9.1.2 (9): tried again only after a while (the retransmission
    // timer's 1 s, 2 s …, room for the host's clock to be set), not in a
    // burst of PBUs the LMA refuses alike.
    for w in pbus.windows(2) {
        assert!(
            w[1].0 - w[0].0 >= Duration::from_secs(1),
            "PBUs {:?} apart",
            w[1].0 - w[0].0
        );
    }
    for (at, m) in pbus {
        let Message::BindingUpdate(bu) = m else {
            continue;
        };
        // The MAG's own clock at the time (10 s ahead), never the LMA's.
        let own = 1_700_000_000 + 10 + (at - s.start).as_secs();
        let secs = bu.timestamp().unwrap() >> 16;
        assert!(
            secs.abs_diff(own) <= 1,
            "timestamp {secs} s, own clock {own} s"
        );
    }
}

#[test]
fn hostile_input_is_counted_and_service_continues() {
    let mut s = Sim::new(false);
    let mut m = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall());
    m.attach(s.now, req(1));
    let good = m.poll_transmit().unwrap().payload.to_vec();
    let from = Peer::V6(MAG1);
    // Truncated headers.
    for n in [0, 1, 5, 8, 20] {
        s.lma.handle(s.now, from, &good[..n]);
    }
    assert_eq!(s.lma.counters.rx_malformed, 5);
    // Wrong checksum.
    let mut bad = good.clone();
    bad[4] ^= 0xff;
    s.lma.handle(s.now, from, &bad);
    assert_eq!(s.lma.counters.rx_bad_checksum, 1);
    // Option length overrunning the header (checksum recomputed so only the option is wrong).
    let mut over = good.clone();
    over[13] = 250;
    let mut p = MhPacket::new_unchecked(&mut over[..]);
    p.fill_checksum(&MAG1, &LMA);
    let before = s.lma.counters.rx_malformed;
    s.lma.handle(s.now, from, &over);
    assert_eq!(s.lma.counters.rx_malformed, before + 1);
    // Unknown MH type: answered with a Binding Error (status 2).
    let mut unk = good.clone();
    unk[2] = 42;
    MhPacket::new_unchecked(&mut unk[..]).fill_checksum(&MAG1, &LMA);
    s.lma.handle(s.now, from, &unk);
    assert_eq!(s.lma.counters.rx_unknown_type, 1);
    let be = s.lma.poll_transmit().unwrap();
    let Message::BindingError(e) = Message::parse(
        &be.payload,
        Checksum::Ipv6 {
            src: LMA,
            dst: MAG1,
        },
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(e.status, be_status::UNRECOGNIZED_MH_TYPE);
    assert!(s.lma.poll_transmit().is_none());
    assert_eq!(s.lma.binding_count(), 0);
    // RFC 6275 §9.3.3: rate-limited — a flood of them within a second is
    // answered BINDING_ERRORS_PER_S times in all (the one above included),
    // and again in the next second; never to a multicast source.
    let mut sent = 0;
    for _ in 0..50 {
        s.lma.handle(s.now, from, &unk);
        while s.lma.poll_transmit().is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, super::rx::BINDING_ERRORS_PER_S - 1);
    assert_eq!(s.lma.counters.rx_unknown_type, 51);
    let later = s.now + Duration::from_secs(1);
    s.lma.handle(later, from, &unk);
    assert!(s.lma.poll_transmit().is_some());
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let mut from_group = unk.clone();
    MhPacket::new_unchecked(&mut from_group[..]).fill_checksum(&all_nodes, &LMA);
    let before = s.lma.counters.rx_unknown_type;
    s.lma.handle(
        later + Duration::from_secs(2),
        Peer::V6(all_nodes),
        &from_group,
    );
    assert_eq!(s.lma.counters.rx_unknown_type, before + 1);
    assert!(s.lma.poll_transmit().is_none());
    // The genuine PBU is accepted, and replaying it is refused (157).
    s.lma.handle(s.now, from, &good);
    assert_eq!(s.lma.binding_count(), 1);
    s.lma.handle(s.now, from, &good);
    assert_eq!(s.lma.counters.pbu_timestamp_replayed, 1);
    // A PBU without a Handoff Indicator is refused with 161, without MN-ID 160.
    let Message::BindingUpdate(mut bu) = Message::parse(&good, Checksum::None).unwrap() else {
        panic!()
    };
    bu.options
        .retain(|o| !matches!(o, MobilityOption::HandoffIndicator(_)));
    s.lma.handle(
        s.now,
        from,
        &Message::BindingUpdate(bu.clone())
            .to_vec(Checksum::Ipv6 {
                src: MAG1,
                dst: LMA,
            })
            .unwrap(),
    );
    bu.options
        .retain(|o| !matches!(o, MobilityOption::MnId { .. }));
    s.lma.handle(
        s.now,
        from,
        &Message::BindingUpdate(bu)
            .to_vec(Checksum::Ipv6 {
                src: MAG1,
                dst: LMA,
            })
            .unwrap(),
    );
    let statuses: Vec<BaStatus> = std::iter::from_fn(|| s.lma.poll_transmit())
        .filter_map(|t| match Message::parse(&t.payload, Checksum::None) {
            Ok(Message::BindingAck(b)) => Some(b.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            BaStatus::ACCEPTED,
            BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED,
            BaStatus::MISSING_HANDOFF_INDICATOR_OPTION,
            BaStatus::MISSING_MN_IDENTIFIER_OPTION
        ]
    );
    // MAG side: garbage from the LMA and anything from strangers is counted.
    s.mags[0].handle(s.now, Peer::V6(LMA), &[1, 2, 3]);
    s.mags[0].handle(s.now, Peer::V6(ROGUE), &good);
    assert_eq!(s.mags[0].counters.rx_malformed, 1);
    assert_eq!(s.mags[0].counters.rx_unknown_peer, 1);
    // And the LMA still serves a normal registration.
    s.attach(0, req(2));
    assert_eq!(s.mags[0].active_count(), 1);
}

#[test]
fn lma_and_mag_survive_random_bytes() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::default();
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    let cell = std::cell::RefCell::new(s);
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
            let mut s = cell.borrow_mut();
            let now = s.now;
            s.lma.handle(now, Peer::V6(MAG1), &bytes);
            s.lma
                .handle(now, Peer::V4(SocketAddrV4::new(MAG1_V4, 5436)), &bytes);
            s.mags[0].handle(now, Peer::V6(LMA), &bytes);
            s.mags[0].handle(now, Peer::V4(SocketAddrV4::new(LMA_V4, 5436)), &bytes);
            Ok(())
        })
        .unwrap();
    let mut s = cell.into_inner();
    // Replies to the junk (e.g. a Binding Error) go back where it came from,
    // over IPv4 too, which this IPv6 simulation has no wire for: drop them.
    while s.lma.poll_transmit().is_some() {}
    while s.mags[0].poll_transmit().is_some() {}
    s.run();
    assert_eq!(s.lma.binding_count(), 1);
}

#[test]
fn configs_default_to_seed_004() {
    // The daemon sets every field the file has (config::agents); these are
    // the RFC 5213 §9 / seed 004 values the simulations run with.
    let mag = MagConfig::default();
    assert_eq!(
        (mag.lifetime, mag.refresh),
        (Duration::from_secs(3600), Duration::from_secs(300))
    );
    assert_eq!(
        (mag.retx_initial, mag.retx_max),
        (Duration::from_secs(1), Duration::from_secs(32))
    );
    assert_eq!(mag.attach_handoff_indicator, 4);
    let lma = LmaConfig::default();
    assert_eq!(lma.max_lifetime, Duration::from_secs(40000));
    assert_eq!(lma.timestamp_window, Duration::from_millis(300));
    assert_eq!(lma.min_delay_before_bce_delete, Duration::from_secs(10));
    assert!(lma.revocation);
}

/// mn1 and mn2 through MAG1, mn3 through MAG2, and one heartbeat exchange
/// each way: every end knows the other's Restart Counter.
fn two_mags_after_a_heartbeat() -> Sim {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.attach(0, req(2));
    s.attach(1, req(3));
    s.advance(Duration::from_secs(61));
    s
}

/// MAG1 after a restart that lost its binding update list: a new Restart
/// Counter `rc`, its clock as the sim's.
fn mag1_restarted(s: &Sim, rc: u32) -> Mag {
    let mut cfg = mag_cfg(false, MAG1, MAG1_V4);
    cfg.restart_counter = rc;
    Mag::new(cfg, s.now, wall() + (s.now - s.start))
}

#[test]
fn mag_restart_releases_its_bindings_at_lma() {
    let mut s = two_mags_after_a_heartbeat();
    assert_eq!(s.lma.counters.mag_restart_detected, 0);
    s.mags[0] = mag1_restarted(&s, 2);
    s.advance(Duration::from_secs(61));
    assert_eq!(s.lma.counters.mag_restart_detected, 1);
    assert_eq!(s.lma.counters.bindings_dropped_on_mag_restart, 2);
    assert_eq!(s.lma.binding_count(), 1, "MAG2's binding stays");
    assert_eq!(s.lma_dp.anchor.len(), 1);
    assert!(s.lma.binding(b"mn3@example.com").is_some());
}

/// RFC 5847 §3.2: a node that restarted without its session state sends
/// an unsolicited Heartbeat Response with its new Restart Counter; the
/// peer acts on it at once, not at its next heartbeat exchange. Both ends.
#[test]
fn an_unsolicited_heartbeat_response_announces_a_restart_at_once() {
    let mut s = two_mags_after_a_heartbeat();
    s.mags[0] = mag1_restarted(&s, 2);
    s.mags[0].announce_restart();
    s.run();
    let u: Vec<_> = s
        .sent(Node::Mag(0), Node::Lma, MhType::Heartbeat)
        .into_iter()
        .filter(|(t, _)| *t == s.now)
        .collect();
    assert!(
        matches!(&u[..], [(_, Message::Heartbeat(h))] if h.unsolicited && h.response && h.restart_counter() == Some(2)),
        "{u:?}"
    );
    assert_eq!(s.mags[0].counters.heartbeat_unsolicited_sent, 1);
    assert_eq!(s.lma.counters.mag_restart_detected, 1);
    assert_eq!(s.lma.binding_count(), 1, "MAG2's binding stays");
    // The LMA restarts the same way, announcing to every configured MAG:
    // MAG2 registers its binding again at once.
    let mut cfg = lma_cfg();
    cfg.restart_counter = 2;
    s.lma = Lma::new(cfg, s.now, wall() + (s.now - s.start));
    s.lma_dp = MemDataPlane::default();
    s.lma.announce_restart();
    s.run();
    // Both configured addresses of each (IPv6 and IPv4).
    assert_eq!(s.lma.counters.heartbeat_unsolicited_sent, 4);
    assert_eq!(s.mags[1].counters.lma_restart_detected, 1);
    assert_eq!(s.mags[1].counters.reregistrations, 1);
    assert!(s.lma.binding(b"mn3@example.com").is_some());
    // With heartbeats off nothing is announced.
    let mut cfg = lma_cfg();
    cfg.heartbeat_interval = Duration::ZERO;
    let mut quiet = Lma::new(cfg, s.now, wall());
    quiet.announce_restart();
    assert!(quiet.poll_transmit().is_none());
}

/// What `show bindings` prints at the MAG (seed 004's layout, formatted by
/// `ctl::format_bindings`) comes from the MAG's plain binding summary.
#[test]
fn show_bindings_like_cisco() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.advance(Duration::from_secs(100));
    let b = s.mags[0].binding(&ap(1)).unwrap();
    let v = Endpoint::bindings(&s.mags[0], s.now);
    assert_eq!(v.len(), 1, "Total number of bindings: 1");
    let x = &v[0];
    assert_eq!(x.nai, "mn1@example.com");
    assert_eq!(x.state, BindingState::Active);
    // Interface: ifindex 3 vlan 3074; llid 0024.d78e.2101.
    assert_eq!(x.at, Some(ap(1)));
    assert_eq!(x.llid, [0x00, 0x24, 0xd7, 0x8e, 0x21, 0x01]);
    assert_eq!(x.home_v4, Some((Ipv4Addr::new(192, 0, 2, 1), 24)));
    assert_eq!(x.hnp, None, "HNP: 0");
    assert_eq!(x.peer, IpAddr::V6(LMA), "LMA: lma1");
    assert_eq!(x.left, Some(Duration::from_secs(3500)), "lifetime: 3500");
    assert_eq!(
        (x.uplink_key, x.downlink_key),
        (b.uplink_key.unwrap(), b.downlink_key)
    );
}

/// What `show bindings` prints at the LMA (the binding cache, one entry
/// per session) comes from the LMA's plain binding summary.
#[test]
fn show_sessions_lists_the_binding_cache() {
    let mut s = Sim::new(false);
    s.attach(0, req(2));
    s.attach(1, req(1));
    let k1 = s.lma.binding(b"mn1@example.com").unwrap();
    let k2 = s.lma.binding(b"mn2@example.com").unwrap();
    let mut v = Endpoint::bindings(&s.lma, s.now);
    v.sort_by(|a, b| a.nai.cmp(&b.nai));
    let got: Vec<_> = v
        .iter()
        .map(|x| {
            (
                x.nai.as_str(),
                x.peer,
                x.home_v4,
                x.hnp,
                (x.uplink_key, x.downlink_key),
                x.lifetime.as_secs(),
                x.left.map(|l| l.as_secs()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "mn1@example.com",
                IpAddr::V6(MAG2),
                Some((Ipv4Addr::new(192, 0, 2, 2), 24)),
                None,
                (k1.uplink_key, k1.downlink_key),
                3600,
                Some(3600),
            ),
            (
                "mn2@example.com",
                IpAddr::V6(MAG1),
                Some((Ipv4Addr::new(192, 0, 2, 1), 24)),
                None,
                (k2.uplink_key, k2.downlink_key),
                3600,
                Some(3600),
            ),
        ]
    );
}

#[test]
fn two_devices_sharing_an_identity_get_two_sessions() {
    let mut s = Sim::new(false);
    let phone = req(1);
    let mut laptop = req(2);
    laptop.mn_id = phone.mn_id.clone();
    s.attach(0, phone.clone());
    s.attach(0, laptop.clone());
    let sessions = s.lma.bindings_of(&phone.mn_id);
    assert_eq!(sessions.len(), 2);
    assert_ne!(sessions[0].home_v4, sessions[1].home_v4);
    assert_eq!(s.mag_dp[0].access.len(), 2);
    // The phone roams to MAG2: only its session moves.
    s.advance(Duration::from_millis(20));
    s.attach(1, phone.clone());
    let sessions = s.lma.bindings_of(&phone.mn_id);
    assert_eq!(sessions.len(), 2);
    let phone_s = sessions.iter().find(|b| b.llid == ap(1).mac).unwrap();
    let laptop_s = sessions.iter().find(|b| b.llid == ap(2).mac).unwrap();
    assert_eq!(
        (phone_s.mag, laptop_s.mag),
        (Peer::V6(MAG2), Peer::V6(MAG1))
    );
    // The BRI named the phone's link-layer identifier; MAG1 keeps the laptop.
    let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
    let Message::RevocationIndication(bri) = &bris[0].1 else {
        unreachable!()
    };
    assert_eq!(bri.link_layer_id(), Some(&ap(1).mac[..]));
    assert!(!s.mag_dp[0].access.contains_key(&ap(1)));
    assert!(s.mag_dp[0].access.contains_key(&ap(2)));
    assert_eq!(s.mags[0].active_count(), 1);
    assert_eq!(s.lma_dp.anchor.len(), 2);
}

/// MN 1 attached at MAG 0 of a network whose LMA hears nothing, and the
/// MAG's first PBU (to answer by hand).
fn unanswered_first_pbu() -> (Sim, BindingUpdate) {
    let mut s = Sim::new(false);
    s.drop_to.push(Node::Lma);
    s.attach(0, req(1));
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let Some((_, Message::BindingUpdate(bu))) = pbus.into_iter().next() else {
        unreachable!()
    };
    (s, bu)
}

#[test]
fn mag_hostile_and_odd_acks() {
    let (mut s, bu) = unanswered_first_pbu();
    let bu = &bu;
    let ck = Checksum::Ipv6 {
        src: LMA,
        dst: MAG1,
    };
    let ack = |seq: u16, options: Vec<MobilityOption>| {
        Message::BindingAck(BindingAck {
            status: BaStatus::ACCEPTED,
            flags: ba_flags::P,
            seq,
            lifetime: 900,
            options,
        })
        .to_vec(ck)
        .unwrap()
    };
    let mn = MobilityOption::MnId {
        subtype: 1,
        id: b"mn1@example.com".to_vec(),
    };
    let now = s.now;
    // Wrong sequence number: ignored, counted.
    s.mags[0].handle(
        now,
        Peer::V6(LMA),
        &ack(bu.seq.wrapping_add(7), vec![mn.clone()]),
    );
    assert_eq!(
        s.mags[0].counters.pba_no_binding + s.mags[0].counters.pba_seq_mismatch,
        1
    );
    // A PBA for nobody.
    s.mags[0].handle(
        now,
        Peer::V6(LMA),
        &ack(
            bu.seq,
            vec![MobilityOption::MnId {
                subtype: 1,
                id: b"x".to_vec(),
            }],
        ),
    );
    assert_eq!(
        s.mags[0].counters.pba_no_binding + s.mags[0].counters.pba_seq_mismatch,
        2
    );
    // Bad checksum.
    let mut bad = ack(bu.seq, vec![mn.clone()]);
    bad[6] ^= 1;
    s.mags[0].handle(now, Peer::V6(LMA), &bad);
    assert_eq!(s.mags[0].counters.rx_bad_checksum, 1);
    // Unknown MH type: the MAG answers with a Binding Error.
    let mut unk = ack(bu.seq, vec![mn.clone()]);
    unk[2] = 99;
    MhPacket::new_unchecked(&mut unk[..]).fill_checksum(&LMA, &MAG1);
    s.mags[0].handle(now, Peer::V6(LMA), &unk);
    let be = s.mags[0].poll_transmit().unwrap();
    assert!(matches!(
        Message::parse(
            &be.payload,
            Checksum::Ipv6 {
                src: MAG1,
                dst: LMA
            }
        ),
        Ok(Message::BindingError(_))
    ));
    assert_eq!(s.mags[0].binding(&ap(1)).unwrap().state, "REGISTERING");
    // Accepted, but without the uplink GRE key: unusable, registration
    // fails, and the binding the LMA made is deregistered (RFC 5845 §4.2,
    // RFC 5213 §6.9.1.4).
    let opts = vec![
        mn,
        MobilityOption::MnLinkLayerId(ap(1).mac.to_vec()),
        MobilityOption::Ipv4HoaReply {
            status: 0,
            prefix_len: 24,
            addr: Ipv4Addr::new(192, 0, 2, 9),
        },
    ];
    s.mags[0].handle(now, Peer::V6(LMA), &ack(bu.seq, opts));
    s.run();
    assert_eq!(s.mags[0].counters.pba_without_gre_key, 1);
    assert_eq!(
        s.events[0].first(),
        Some(&MagEvent::RegistrationFailed {
            at: ap(1),
            reason: FailReason::BadAck
        })
    );
    assert_eq!(s.mags[0].counters.dereg_sent, 1);
    assert!(s.mag_dp[0].access.is_empty());
}

/// RFC 5845 §4.2: GRE_KEY_OPTION_NOT_REQUIRED (2) is about "this specific
/// mobility session": our tunnels are keyed, so that registration is given
/// up, but the next subscriber's PBU to the same LMA still offers a GRE
/// key (before, status 2 marked the whole LMA keyless, as a status-0 PBA
/// without the option rightly does).
#[test]
fn gre_key_not_required_is_for_the_session_not_the_lma() {
    let (mut s, bu) = unanswered_first_pbu();
    let ack = Message::BindingAck(BindingAck {
        status: BaStatus::GRE_KEY_OPTION_NOT_REQUIRED,
        flags: ba_flags::P,
        seq: bu.seq,
        lifetime: 900,
        options: vec![
            MobilityOption::MnId {
                subtype: 1,
                id: b"mn1@example.com".to_vec(),
            },
            MobilityOption::MnLinkLayerId(ap(1).mac.to_vec()),
            MobilityOption::Ipv4HoaReply {
                status: 0,
                prefix_len: 24,
                addr: Ipv4Addr::new(192, 0, 2, 9),
            },
        ],
    })
    .to_vec(Checksum::Ipv6 {
        src: LMA,
        dst: MAG1,
    })
    .unwrap();
    let now = s.now;
    s.mags[0].handle(now, Peer::V6(LMA), &ack);
    s.run();
    assert_eq!(s.mags[0].counters.pba_without_gre_key, 1);
    assert!(s.mag_dp[0].access.is_empty());
    s.attach(0, req(2));
    let pbus = s.sent(Node::Mag(0), Node::Lma, MhType::BindingUpdate);
    let bu2 = pbus
        .iter()
        .find_map(|(_, m)| match m {
            Message::BindingUpdate(b) if b.mn_id() == Some(&b"mn2@example.com"[..]) => Some(b),
            _ => None,
        })
        .expect("a PBU for the next subscriber");
    assert!(
        matches!(bu2.gre_key(), Some(Some(_))),
        "the next PBU to the LMA offers no GRE key"
    );
}

/// A refresh with nothing changed is reported as `Refreshed` with the
/// renewed lifetime (the IPv6 access link re-advertises the prefix with it),
/// never as a second `Registered`.
#[test]
fn refresh_reported_with_the_new_lifetime() {
    let mut s = Sim::new(false);
    s.attach(0, req(1));
    s.advance(Duration::from_secs(7200));
    let refreshed: Vec<&MagEvent> = s.events[0]
        .iter()
        .filter(|e| matches!(e, MagEvent::Refreshed { .. }))
        .collect();
    assert_eq!(refreshed.len(), 24);
    for e in refreshed {
        assert_eq!(
            *e,
            MagEvent::Refreshed {
                at: ap(1),
                lifetime: Duration::from_secs(3600)
            }
        );
    }
    assert_eq!(registered(&s.events[0]).len(), 1);
}

mod affinity;
mod churn;
mod refusals;
mod refused_130;
mod restart;
mod revoke_peer;
mod show_left;
mod store_in_flight;
mod store_refused;

/// Over IPv4 transport the MAG answers an LMA's Heartbeat Request to the
/// address and UDP port it came from (as the LMA answers PBUs), not to the
/// configured port: an LMA that sends from another port hears back.
#[test]
fn the_mag_answers_a_heartbeat_to_its_source_port() {
    let mut s = Sim::new(true);
    s.attach(0, req(1));
    while s.mags[0].poll_transmit().is_some() {}
    let request = Message::Heartbeat(Heartbeat {
        unsolicited: false,
        response: false,
        seq: 7,
        options: vec![],
    })
    .to_vec(Checksum::None)
    .unwrap();
    let from = Peer::V4(std::net::SocketAddrV4::new(LMA_V4, 49152));
    s.mags[0].handle(s.now, from, &request);
    let t = s.mags[0].poll_transmit().expect("a Heartbeat Response");
    assert_eq!(t.peer, from);
    let Ok(Message::Heartbeat(r)) = Message::parse(&t.payload, Checksum::None) else {
        panic!("not a heartbeat")
    };
    assert!(r.response && r.seq == 7);
}

/// RFC 5845 §7.2, §6.4: a PBU with the GRE Key option and the TLV-header
/// format flag (T) is accepted with status 3,
/// GRE_TUNNELING_BUT_TLV_HEADER_NOT_SUPPORTED, T clear and the uplink key
/// given: the MAG tunnels plain GRE (we do not do the TLV header).
#[test]
fn a_pbu_asking_for_the_tlv_header_gets_status_3() {
    let mut s = Sim::new(false);
    let mut m = Mag::new(mag_cfg(false, MAG1, MAG1_V4), s.now, wall());
    m.attach(s.now, req(1));
    let mut pbu = m.poll_transmit().unwrap().payload.to_vec();
    // Sequence (2) after the 6-byte MH header, then the flags: T = 0x0080.
    pbu[9] |= 0x80;
    MhPacket::new_unchecked(&mut pbu[..]).fill_checksum(&MAG1, &LMA);
    s.lma.handle(s.now, Peer::V6(MAG1), &pbu);
    let t = s.lma.poll_transmit().expect("a PBA");
    let Ok(Message::BindingAck(ba)) = Message::parse(
        &t.payload,
        Checksum::Ipv6 {
            src: LMA,
            dst: MAG1,
        },
    ) else {
        panic!("not a PBA")
    };
    assert_eq!(ba.status, BaStatus(3));
    assert_eq!(ba.flags & ba_flags::T, 0);
    assert!(matches!(ba.gre_key(), Some(Some(_))));
    assert_eq!(s.lma.binding_count(), 1);
    // Our MAG takes it as the success it is.
    m.handle(s.now, Peer::V6(LMA), &t.payload);
    assert_eq!(m.active_count(), 1);
}
