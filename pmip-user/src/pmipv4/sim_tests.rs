//! Simulated-clock scenarios: PMAs and HAs exchange datagrams in memory; time jumps from
//! deadline to deadline, so minutes of protocol time run in microseconds.
#![allow(clippy::type_complexity, clippy::large_enum_variant)]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::auth::{self, Algorithm, SecurityAssociation};
use super::ha::{AddressPool, Ha, HaConfig, HaEvent, PmaPeer, SubscriberProfile};
use super::pma::{HaPeer, Pma, PmaConfig, PmaEvent, Subscriber};
use super::wire::ext::{AuthKind, ExtList as _, ExtRepr};
use super::wire::*;
use crate::agent::registrar::BindingState;
use crate::agent::{Clock as WallClock, Endpoint, Peer, Transmit};
use crate::dataplane::{AccessPoint, DataPlane, DpCommand, MemDataPlane};

const PMA1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PMA2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const HA1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const HA2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SPI: u32 = 0x100;
const KEY: [u8; 16] = *b"0123456789abcdef";

fn sa() -> SecurityAssociation {
    SecurityAssociation::new(SPI, &KEY, Algorithm::HmacMd5)
}

fn wall0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

enum Node {
    Pma(Pma),
    Ha(Ha),
}

/// The endpoint calls the network makes, on either kind of node.
impl Node {
    fn handle(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        match self {
            Node::Pma(p) => Endpoint::handle(p, now, Peer::V4(src), payload),
            Node::Ha(h) => Endpoint::handle(h, now, Peer::V4(src), payload),
        }
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        match self {
            Node::Pma(p) => Endpoint::poll_dp(p),
            Node::Ha(h) => Endpoint::poll_dp(h),
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Node::Pma(p) => Endpoint::poll_transmit(p),
            Node::Ha(h) => Endpoint::poll_transmit(h),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::Pma(p) => Endpoint::poll_timeout(p),
            Node::Ha(h) => Endpoint::poll_timeout(h),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Node::Pma(p) => Endpoint::handle_timeout(p, now),
            Node::Ha(h) => Endpoint::handle_timeout(h, now),
        }
    }
}

/// The UDP destination of a datagram (PMIPv4 is IPv4 only).
fn dst(t: &Transmit) -> SocketAddrV4 {
    match t.peer {
        Peer::V4(a) => a,
        Peer::V6(a) => panic!("PMIPv4 datagram to IPv6 {a}"),
    }
}

/// An in-memory network of nodes addressed by IPv4 address.
struct Net {
    now: Instant,
    nodes: Vec<(Ipv4Addr, Node, MemDataPlane)>,
    /// Datagrams for which this returns false are lost.
    filter: Box<dyn FnMut(Ipv4Addr, &Transmit) -> bool>,
    /// Every datagram seen on the wire: (src, dst, payload).
    wire: Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
}

impl Net {
    fn new() -> Self {
        Net {
            now: Instant::now(),
            nodes: vec![],
            filter: Box::new(|_, _| true),
            wire: vec![],
        }
    }
    fn clock(&self) -> WallClock {
        WallClock::new(self.now, wall0())
    }
    fn add_pma(&mut self, cfg: PmaConfig) {
        let a = cfg.address;
        let p = Pma::new(cfg, self.clock());
        self.nodes.push((a, Node::Pma(p), MemDataPlane::default()));
    }
    fn add_ha(&mut self, cfg: HaConfig) {
        let a = cfg.address;
        let h = Ha::new(cfg, self.clock());
        self.nodes.push((a, Node::Ha(h), MemDataPlane::default()));
    }
    fn idx(&self, a: Ipv4Addr) -> usize {
        self.nodes
            .iter()
            .position(|(x, _, _)| *x == a)
            .expect("node")
    }
    fn pma(&mut self, a: Ipv4Addr) -> &mut Pma {
        let i = self.idx(a);
        match &mut self.nodes[i].1 {
            Node::Pma(p) => p,
            _ => panic!("not a PMA"),
        }
    }
    fn ha(&mut self, a: Ipv4Addr) -> &mut Ha {
        let i = self.idx(a);
        match &mut self.nodes[i].1 {
            Node::Ha(h) => h,
            _ => panic!("not an HA"),
        }
    }
    fn dp(&self, a: Ipv4Addr) -> &MemDataPlane {
        &self.nodes[self.idx(a)].2
    }
    /// Injects a datagram as if `src` had sent it.
    fn inject(&mut self, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) {
        let i = self.idx(dst);
        let now = self.now;
        self.nodes[i]
            .1
            .handle(now, SocketAddrV4::new(src, PORT), payload);
        self.settle();
    }
    /// Delivers datagrams and data-plane commands until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(c) = self.nodes[i].1.poll_dp() {
                    self.nodes[i].2.apply(&c).unwrap();
                }
                while let Some(t) = self.nodes[i].1.poll_transmit() {
                    moved = true;
                    let src = self.nodes[i].0;
                    self.wire.push((src, *dst(&t).ip(), t.payload.to_vec()));
                    assert_eq!(dst(&t).port(), PORT);
                    if !(self.filter)(src, &t) {
                        continue;
                    }
                    if let Some(j) = self.nodes.iter().position(|(a, _, _)| a == dst(&t).ip()) {
                        let now = self.now;
                        self.nodes[j]
                            .1
                            .handle(now, SocketAddrV4::new(src, PORT), &t.payload);
                    }
                }
            }
            if !moved {
                for i in 0..self.nodes.len() {
                    while let Some(c) = self.nodes[i].1.poll_dp() {
                        self.nodes[i].2.apply(&c).unwrap();
                    }
                }
                return;
            }
        }
    }
    /// Runs timers up to `now + d`.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        loop {
            let next = self
                .nodes
                .iter_mut()
                .filter_map(|(_, n, _)| n.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for (_, n, _) in self.nodes.iter_mut() {
                        n.handle_timeout(now);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = end;
    }
    fn pma_events(&mut self, a: Ipv4Addr) -> Vec<PmaEvent> {
        let p = self.pma(a);
        std::iter::from_fn(|| p.poll_event()).collect()
    }
    fn ha_events(&mut self, a: Ipv4Addr) -> Vec<HaEvent> {
        let h = self.ha(a);
        std::iter::from_fn(|| h.poll_event()).collect()
    }
    /// Requests on the wire from `src` to `dst`.
    fn requests(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<RegistrationRequestRepr> {
        self.wire
            .iter()
            .filter(|(s, d, p)| *s == src && *d == dst && p.first() == Some(&1))
            .map(|(_, _, p)| match Message::parse(p).unwrap() {
                Message::Request(r) => r,
                _ => unreachable!(),
            })
            .collect()
    }
    fn replies(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<RegistrationReplyRepr> {
        self.wire
            .iter()
            .filter(|(s, d, p)| *s == src && *d == dst && p.first() == Some(&3))
            .map(|(_, _, p)| match Message::parse(p).unwrap() {
                Message::Reply(r) => r,
                _ => unreachable!(),
            })
            .collect()
    }
}

fn pma_cfg(addr: Ipv4Addr) -> PmaConfig {
    PmaConfig::new(
        addr,
        vec![
            HaPeer {
                address: HA1,
                sa: sa().into(),
            },
            HaPeer {
                address: HA2,
                sa: sa().into(),
            },
        ],
    )
}

fn ha_cfg(addr: Ipv4Addr) -> HaConfig {
    HaConfig::new(
        addr,
        AddressPool {
            first: Ipv4Addr::new(10, 1, 0, 1),
            last: Ipv4Addr::new(10, 1, 0, 254),
        },
        vec![
            PmaPeer {
                address: PMA1,
                sa: sa().into(),
                proxy_allowed: true,
            },
            PmaPeer {
                address: PMA2,
                sa: sa().into(),
                proxy_allowed: true,
            },
        ],
    )
}

fn sub(nai: &str, n: u8) -> Subscriber {
    let at = AccessPoint {
        ifindex: 3,
        vlan: 0,
        mac: [2, 0, 0, 0, 0, n],
    };
    Subscriber::new(nai, at, HA1)
}

fn basic() -> Net {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    net.add_pma(pma_cfg(PMA2));
    net.add_ha(ha_cfg(HA1));
    net
}

#[test]
fn registration_installs_both_sides_with_matching_keys() {
    let mut net = basic();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    let ev = net.pma_events(PMA1);
    let home = Ipv4Addr::new(10, 1, 0, 1);
    assert_eq!(
        ev,
        vec![PmaEvent::Registered {
            nai: "ue1@ex".into(),
            home_address: home,
            lifetime: 600,
            ha: HA1,
            renewal: false
        }]
    );
    // The PRRQ as the draft wants it.
    let rq = &net.requests(PMA1, HA1)[0];
    assert_eq!(rq.home_address, Ipv4Addr::UNSPECIFIED);
    assert_eq!(rq.care_of_address, PMA1);
    assert!(rq.flags.has(RrqFlags::G) && rq.flags.has(RrqFlags::T) && !rq.flags.has(RrqFlags::D));
    assert!(matches!(
        rq.extensions.last(),
        Some(ExtRepr::Auth {
            kind: AuthKind::FaHa,
            ..
        })
    ));
    let acc = net.dp(PMA1).access.values().next().unwrap().clone();
    let anc = net.dp(HA1).anchor.values().next().unwrap().clone();
    assert_eq!(acc.home_v4, Some(home));
    assert_eq!(anc.home_v4, Some(home));
    assert_eq!(acc.uplink_key, anc.uplink_key);
    assert_eq!(acc.downlink_key, anc.downlink_key);
    assert_eq!(acc.tunnel.remote, std::net::IpAddr::from(HA1));
    assert_eq!(anc.tunnel.remote, std::net::IpAddr::from(PMA1));
    assert_eq!(net.ha(HA1).counters().registrations, 1);
    assert_eq!(net.pma(PMA1).registration("ue1@ex"), Some((home, HA1)));
}

#[test]
fn renewal_at_renew_percent_of_granted_lifetime() {
    let mut net = Net::new();
    let mut c = pma_cfg(PMA1);
    c.lifetime_s = 900;
    c.renew_percent = 50;
    net.add_pma(c);
    let mut h = ha_cfg(HA1);
    h.max_lifetime_s = 600; // seed 000 example: 900 requested, 600 granted, renew at 300 s
    net.add_ha(h);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(299));
    assert_eq!(net.requests(PMA1, HA1).len(), 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.requests(PMA1, HA1).len(), 2);
    assert_eq!(
        net.requests(PMA1, HA1)[1].home_address,
        Ipv4Addr::new(10, 1, 0, 1)
    );
    net.run_for(Duration::from_secs(3000));
    assert_eq!(net.ha(HA1).counters().renewals, 11);
    assert_eq!(net.ha(HA1).binding_count(), 1);
    assert_eq!(net.dp(PMA1).access.len(), 1);
    // Renewals change nothing in the maps: one install on each side.
    assert_eq!(net.dp(PMA1).log.len(), 1);
    assert_eq!(net.dp(HA1).log.len(), 1);
    let ev = net.pma_events(PMA1);
    assert!(ev
        .iter()
        .skip(1)
        .all(|e| matches!(e, PmaEvent::Registered { renewal: true, .. })));
}

#[test]
fn retransmission_until_answered() {
    let mut net = basic();
    let mut lost = 2;
    net.filter = Box::new(move |src, _| {
        if src == PMA1 && lost > 0 {
            lost -= 1;
            return false;
        }
        true
    });
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_millis(5999));
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    net.run_for(Duration::from_millis(2));
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    let rqs = net.requests(PMA1, HA1);
    assert_eq!(rqs.len(), 3);
    // Every retransmission carries a fresh, larger Identification.
    assert!(rqs
        .windows(2)
        .all(|w| w[1].identification > w[0].identification));
    assert_eq!(net.pma(PMA1).counters().retransmissions, 2);
}

#[test]
fn gives_up_after_max_retransmissions() {
    let mut net = basic();
    net.filter = Box::new(|_, _| false);
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(17));
    assert!(net.pma_events(PMA1).is_empty());
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.pma_events(PMA1),
        vec![PmaEvent::RegistrationFailed {
            nai: "ue1@ex".into(),
            code: None
        }]
    );
    assert_eq!(net.requests(PMA1, HA1).len(), 6); // 1 + max-retransmissions 5
    assert_eq!(net.pma(PMA1).session_count(), 0);
    assert!(net.dp(PMA1).access.is_empty());
}

#[test]
fn failover_to_alternate_ha() {
    let mut net = Net::new();
    let mut c = pma_cfg(PMA1);
    c.ha_failover.enabled = true;
    net.add_pma(c);
    net.add_ha(ha_cfg(HA2));
    // HA1 does not exist: its datagrams vanish.
    let t0 = net.now;
    let mut s = sub("ue1@ex", 1);
    s.alternate_ha = Some(HA2);
    net.pma(PMA1).attach(t0, s);
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.requests(PMA1, HA1).len(), 2); // num-attempts-before-switching
    assert_eq!(net.requests(PMA1, HA2).len(), 1);
    assert_eq!(net.pma(PMA1).registration("ue1@ex").map(|r| r.1), Some(HA2));
    assert_eq!(net.pma(PMA1).counters().ha_failovers, 1);
    let acc = net.dp(PMA1).access.values().next().unwrap().clone();
    assert_eq!(acc.tunnel.remote, std::net::IpAddr::from(HA2));
}

/// A registered subscriber whose HA dies moves to the alternate; until the
/// alternate accepts, `show bindings` has it registering there, without a
/// home address, not active (recovery.rs `pmipv4_alternate_anchor_takeover`
/// read the old binding's ACTIVE with the new HA as a renumbering).
#[test]
fn failover_of_a_registered_subscriber_shows_registering_until_accepted() {
    let mut net = Net::new();
    let mut c = pma_cfg(PMA1);
    // As the recovery test has it: 3 requests 1 s apart, then the alternate.
    c.ha_failover = super::pma::HaFailover {
        enabled: true,
        max_attempts: 3,
        num_attempts_before_switching: 3,
        timeout_ms: Some(1000),
    };
    c.lifetime_s = 20;
    net.add_pma(c);
    net.add_ha(ha_cfg(HA1));
    net.add_ha(ha_cfg(HA2));
    let t0 = net.now;
    let mut s = sub("ue1@ex", 1);
    s.alternate_ha = Some(HA2);
    net.pma(PMA1).attach(t0, s);
    net.run_for(Duration::from_secs(1));
    let shown = |net: &mut Net| {
        let now = net.now;
        let v = Endpoint::bindings(net.pma(PMA1), now);
        assert_eq!(v.len(), 1);
        (v[0].state, v[0].peer, v[0].home_v4.map(|h| h.0))
    };
    let (st, peer, home) = shown(&mut net);
    assert_eq!((st, peer), (BindingState::Active, HA1.into()));
    assert!(home.is_some());
    // HA1 dies; HA2 answers nothing yet.
    net.filter = Box::new(|src, t| src != HA1 && src != HA2 && *dst(t).ip() != HA1);
    let mut moved = false;
    for _ in 0..60 {
        net.run_for(Duration::from_millis(500));
        if !net.requests(PMA1, HA2).is_empty() {
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "never failed over: {:?} {:?}",
        net.pma_events(PMA1),
        net.pma(PMA1).counters()
    );
    assert_eq!(
        shown(&mut net),
        (BindingState::Registering, HA2.into(), None)
    );
    // HA2 answers.
    net.filter = Box::new(|src, t| src != HA1 && *dst(t).ip() != HA1);
    net.run_for(Duration::from_secs(30));
    let (st, peer, home) = shown(&mut net);
    assert_eq!((st, peer), (BindingState::Active, HA2.into()));
    assert!(home.is_some());
}

#[test]
fn deregistration_on_detach_frees_everything() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(10));
    {
        let n = net.now;
        net.pma(PMA1).detach(n, "ue1@ex");
    }
    net.run_for(Duration::from_secs(10));
    let rqs = net.requests(PMA1, HA1);
    assert_eq!(rqs.last().unwrap().lifetime, 0);
    assert!(net.dp(PMA1).access.is_empty());
    assert!(net.dp(HA1).anchor.is_empty());
    assert_eq!(net.ha(HA1).binding_count(), 0);
    assert_eq!(net.pma(PMA1).session_count(), 0);
    assert_eq!(net.ha(HA1).counters().deregistrations, 1);
    // The pool address is free again.
    {
        let n = net.now;
        net.pma(PMA1).attach(n, sub("ue2@ex", 2));
    }
    net.settle();
    assert_eq!(
        net.pma(PMA1).registration("ue2@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 2)
    );
    // Replaying the deregistered subscriber's last registration does not bring it back.
    let replay = net
        .wire
        .iter()
        .rev()
        .find(|(s, _, p)| {
            *s == PMA1 && p[0] == 1 && p[2..4] != [0, 0] && p.windows(6).any(|w| w == b"ue1@ex")
        })
        .unwrap()
        .2
        .clone();
    net.inject(PMA1, HA1, &replay);
    assert_eq!(
        net.replies(HA1, PMA1).last().unwrap().code,
        ReplyCode::IdentMismatch
    );
    assert_eq!(net.ha(HA1).binding("ue1@ex"), None);
    assert_eq!(net.ha(HA1).counters().ident_replayed, 1);
}

#[test]
fn lifetime_expiry_on_both_sides() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    net.filter = Box::new(|_, _| false); // network partition after registration
    net.run_for(Duration::from_secs(599));
    assert_eq!(net.ha(HA1).binding_count(), 1);
    assert_eq!(net.dp(PMA1).access.len(), 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.ha(HA1).binding_count(), 0);
    assert!(net.dp(HA1).anchor.is_empty());
    assert!(net.dp(PMA1).access.is_empty());
    assert_eq!(net.ha(HA1).counters().expired, 1);
    assert!(net.pma_events(PMA1).contains(&PmaEvent::Expired {
        nai: "ue1@ex".into()
    }));
    assert!(net.ha_events(HA1).contains(&HaEvent::Expired {
        nai: "ue1@ex".into()
    }));
}

#[test]
fn handover_replaces_tunnel_in_one_update_and_revokes_old_pma() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(5));
    let before = net.dp(HA1).anchor.values().next().unwrap().clone();
    let n_log = net.dp(HA1).log.len();
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_secs(5));
    // Exactly one more anchor command: an InstallAnchor replacing the entry in place.
    let new_cmds = &net.dp(HA1).log[n_log..];
    assert_eq!(new_cmds.len(), 1, "{new_cmds:?}");
    let DpCommand::InstallAnchor(after) = &new_cmds[0] else {
        panic!("{new_cmds:?}")
    };
    assert_eq!(after.uplink_key, before.uplink_key);
    assert_eq!(after.home_v4, before.home_v4);
    assert_eq!(after.tunnel.remote, std::net::IpAddr::from(PMA2));
    assert_eq!(net.dp(HA1).anchor.len(), 1);
    // Same home address at the new PMA.
    assert_eq!(
        net.pma(PMA2).registration("ue1@ex").unwrap().0,
        before.home_v4.unwrap()
    );
    // The old PMA was revoked, cleaned up and acknowledged.
    assert!(net.dp(PMA1).access.is_empty());
    assert_eq!(net.pma(PMA1).session_count(), 0);
    assert!(net.pma_events(PMA1).contains(&PmaEvent::Revoked {
        nai: "ue1@ex".into()
    }));
    let c = net.ha(HA1).counters().clone();
    assert_eq!(
        (c.handovers, c.revocations_sent, c.revocation_acks),
        (1, 1, 1)
    );
    assert_eq!(net.ha(HA1).pending_revocations(), 0);
    // Only the serving PMA keeps re-registering (§4.4).
    let n1 = net.requests(PMA1, HA1).len();
    net.run_for(Duration::from_secs(2000));
    assert_eq!(net.requests(PMA1, HA1).len(), n1);
    assert!(net.requests(PMA2, HA1).len() > 3);
    assert_eq!(net.ha(HA1).binding("ue1@ex").unwrap().pma, PMA2);
}

#[test]
fn revocation_is_retransmitted_until_acked_then_times_out() {
    let mut net = basic();
    // The nodes' clock (the Net's moves with it).
    let clock = net.clock();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    net.filter = Box::new(|src, t| !(src == HA1 && *dst(t).ip() == PMA1));
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    let t1 = net.now;
    net.run_for(Duration::from_secs(20));
    let c = net.ha(HA1).counters().clone();
    assert_eq!(
        (
            c.revocations_sent,
            c.revocation_retransmissions,
            c.revocation_timeouts
        ),
        (4, 3, 1)
    );
    // RFC 3543 §4.2.2.1: each retransmission carries the current timestamp
    // of the HA's clock (a newer identifier, signed again), never more than
    // one a second for the binding (1, 2, 4 s apart: back-off).
    let ids = revocation_ids(&net, HA1, PMA1);
    let start = auth::ntp_seconds(clock.ntp(t1));
    assert_eq!(ids, [start, start + 1, start + 3, start + 7]);
}

#[test]
fn late_deregistration_from_old_pma_keeps_new_binding() {
    let mut net = basic();
    let mut h = ha_cfg(HA1);
    h.revocation = false;
    net.nodes.retain(|(a, _, _)| *a != HA1);
    net.add_ha(h);
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(1));
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_secs(1));
    {
        let n = net.now;
        net.pma(PMA1).detach(n, "ue1@ex");
    }
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.ha(HA1).binding("ue1@ex").unwrap().pma, PMA2);
    assert_eq!(net.dp(HA1).anchor.len(), 1);
}

#[test]
fn replayed_request_is_refused_with_133_and_counted() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    let original = net
        .wire
        .iter()
        .find(|(s, _, p)| *s == PMA1 && p[0] == 1)
        .unwrap()
        .2
        .clone();
    let n = net.replies(HA1, PMA1).len();
    net.inject(PMA1, HA1, &original);
    let r = net.replies(HA1, PMA1);
    assert_eq!(r.len(), n + 1);
    assert_eq!(r.last().unwrap().code, ReplyCode::IdentMismatch);
    assert_eq!(net.ha(HA1).counters().ident_replayed, 1);
    assert_eq!(net.ha(HA1).binding_count(), 1);
    assert_eq!(net.dp(HA1).log.len(), 1);
}

#[test]
fn stale_identification_is_refused_and_pma_resyncs_to_ha_clock() {
    let mut net = Net::new();
    net.add_ha(ha_cfg(HA1));
    // The PMA's clock is 1000 s behind.
    let pma = Pma::new(
        pma_cfg(PMA1),
        WallClock::new(net.now, wall0() - Duration::from_secs(1000)),
    );
    net.nodes
        .push((PMA1, Node::Pma(pma), MemDataPlane::default()));
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    assert_eq!(net.replies(HA1, PMA1)[0].code, ReplyCode::IdentMismatch);
    // The 133 reply carries the HA's time in the high 32 bits...
    let hi = auth::ntp_seconds(net.replies(HA1, PMA1)[0].identification);
    assert_eq!(hi, auth::ntp_seconds(auth::ntp_from_system(wall0())));
    // ... which the PMA adopts, and registers with a second after its
    // first request (RFC 3344 §3.6.3: never two requests within a second).
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    net.run_for(Duration::from_millis(990));
    assert_eq!(
        net.requests(PMA1, HA1).len(),
        1,
        "a second request within a second"
    );
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.requests(PMA1, HA1).len(), 2);
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    assert_eq!(net.ha(HA1).counters().ident_out_of_tolerance, 1);
    assert_eq!(net.pma(PMA1).counters().ident_mismatch_resync, 1);
}

/// Builds a signed PRRQ from PMA1 as a hostile or buggy sender would.
fn crafted(net: &Net, exts: Vec<ExtRepr>, sign: Option<&SecurityAssociation>) -> Vec<u8> {
    let id = auth::ntp_from_system(net.clock().wall(net.now));
    let mut b = RegistrationRequestRepr {
        flags: RrqFlags(RrqFlags::G | RrqFlags::T),
        lifetime: 600,
        home_address: Ipv4Addr::UNSPECIFIED,
        home_agent: HA1,
        care_of_address: PMA1,
        identification: id,
        extensions: exts,
    }
    .to_bytes();
    if let Some(sa) = sign {
        auth::append_auth(&mut b, AuthKind::FaHa, sa);
    }
    b
}

fn last_code(net: &Net) -> ReplyCode {
    net.replies(HA1, PMA1).last().expect("a reply").code
}

#[test]
fn hostile_requests_get_the_rfc_codes_and_are_counted() {
    let mut net = basic();
    let good = || vec![ExtRepr::Nai(b"x@ex".to_vec()), ExtRepr::GreKey(9)];
    // Bad authenticator (wrong key).
    let wrong_key = SecurityAssociation::new(SPI, b"not the key", Algorithm::HmacMd5);
    let m = crafted(&net, good(), Some(&wrong_key));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::FaFailedAuth);
    // Unknown SPI.
    let wrong_spi = SecurityAssociation::new(0x999, &KEY, Algorithm::HmacMd5);
    let m = crafted(&net, good(), Some(&wrong_spi));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::FaFailedAuth);
    // No authentication at all.
    let m = crafted(&net, good(), None);
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::FaFailedAuth);
    // Unknown non-skippable extension (authenticated).
    let mut e = good();
    e.push(ExtRepr::Unknown {
        ty: 99,
        data: vec![1],
    });
    let m = crafted(&net, e, Some(&sa()));
    let before = net.replies(HA1, PMA1).len();
    net.inject(PMA1, HA1, &m);
    // RFC 3344 §1.8: silently discarded — no reply, counted.
    assert_eq!(net.replies(HA1, PMA1).len(), before);
    assert_eq!(net.ha(HA1).counters().unknown_nonskippable, 1);
    // Unknown skippable extension is ignored: accepted.
    let mut e = good();
    e.push(ExtRepr::Unknown {
        ty: 200,
        data: vec![1],
    });
    let m = crafted(&net, e, Some(&sa()));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::Accepted);
    // Truncated extension / overrunning length.
    let mut m = crafted(&net, good(), Some(&sa()));
    m.truncate(m.len() - 3);
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::PoorlyFormed);
    let mut m = crafted(&net, vec![ExtRepr::Nai(b"y@ex".to_vec())], None);
    m[25] = 250; // NAI length past the end
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::PoorlyFormed);
    // Missing NAI.
    let m = crafted(&net, vec![ExtRepr::GreKey(9)], Some(&sa()));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::PoorlyFormed);
    // No GRE key: we only do GRE with keys.
    let m = crafted(&net, vec![ExtRepr::Nai(b"z@ex".to_vec())], Some(&sa()));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::EncapUnavailable);
    // Too short to answer, and an unknown sender: dropped silently.
    let n = net.wire.len();
    net.inject(PMA1, HA1, &[1, 0, 0]);
    net.inject(
        Ipv4Addr::new(203, 0, 113, 9),
        HA1,
        &crafted(&net, good(), Some(&sa())),
    );
    assert_eq!(net.wire.len(), n);
    let c = net.ha(HA1).counters().clone();
    assert_eq!(c.bad_authenticator, 1);
    assert_eq!(c.unknown_spi, 1);
    assert_eq!(c.missing_auth, 1);
    assert_eq!(c.unknown_nonskippable, 1);
    assert_eq!(c.missing_nai, 1);
    assert_eq!(c.encapsulation_unavailable, 1);
    assert_eq!(c.rx_unknown_peer, 1);
    assert_eq!(c.rx_malformed, 3);
    assert_eq!(net.ha(HA1).binding_count(), 1); // only the accepted one
                                                // Every reply is authenticated with the peer's association.
    let good_sa = sa();
    for (s, _, p) in &net.wire {
        if *s == HA1 {
            assert_eq!(auth::verify(p, AuthKind::FaHa, |_| Some(&good_sa)), Ok(SPI));
        }
    }
}

#[test]
fn pmip_disallowed_stops_use_of_that_ha_and_fails_over() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    let mut h = ha_cfg(HA1);
    h.peers[0].proxy_allowed = false;
    net.add_ha(h);
    let mut h2 = ha_cfg(HA2);
    h2.proxy_mip = false;
    net.add_ha(h2);
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    assert_eq!(last_code(&net), ReplyCode::PmipDisallowed);
    assert_eq!(
        net.pma_events(PMA1),
        vec![PmaEvent::RegistrationFailed {
            nai: "ue1@ex".into(),
            code: Some(ReplyCode::PmipDisallowed)
        }]
    );
    // With an alternate HA the PMA moves on at once — here HA2 answers 149.
    let mut s = sub("ue2@ex", 2);
    s.home_agent = HA2;
    s.alternate_ha = Some(HA1);
    {
        let n = net.now;
        net.pma(PMA1).attach(n, s);
    }
    net.run_for(Duration::from_secs(60));
    assert_eq!(
        net.replies(HA2, PMA1).last().unwrap().code,
        ReplyCode::PmipUnsupported
    );
    // HA1 already refused us: never contacted again for ue2.
    assert_eq!(net.requests(PMA1, HA1).len(), 1);
    assert_eq!(net.ha(HA1).counters().pmip_disallowed, 1);
    assert_eq!(net.ha(HA2).counters().pmip_unsupported, 1);
    assert_eq!(net.pma(PMA1).counters().ha_refused_pmip, 2);
    assert_eq!(net.pma(PMA1).session_count(), 0);
}

#[test]
fn forged_unauthenticated_denial_is_ignored() {
    let mut net = basic();
    net.filter = Box::new(|src, _| src != PMA1); // HA never hears us
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    let rq = net.requests(PMA1, HA1)[0].clone();
    let forged = RegistrationReplyRepr {
        code: ReplyCode::PmipDisallowed,
        lifetime: 0,
        home_address: Ipv4Addr::UNSPECIFIED,
        home_agent: HA1,
        identification: rq.identification,
        extensions: vec![ExtRepr::Nai(b"ue1@ex".to_vec())],
    }
    .to_bytes();
    net.inject(HA1, PMA1, &forged);
    assert_eq!(net.pma(PMA1).counters().rx_auth_failed, 1);
    assert_eq!(net.pma(PMA1).session_count(), 1);
    assert!(net.pma_events(PMA1).is_empty());
}

/// What the PMA does with a reply it did not expect the shape of: one
/// carrying an extension of type 0–127 it does not know is discarded whole
/// (RFC 3344 §1.9), and an accepting one whose lifetime is longer than the
/// request's is held to the request's (§3.6.2.2).
#[test]
fn pma_drops_unknown_extensions_and_holds_a_longer_grant_to_its_request() {
    let mut net = basic();
    net.filter = Box::new(|src, _| src != PMA1); // the HA never hears us
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    let rq = net.requests(PMA1, HA1)[0].clone();
    let home = Ipv4Addr::new(10, 1, 0, 9);
    let reply = |extra: Option<ExtRepr>| {
        let mut extensions = vec![ExtRepr::Nai(b"ue1@ex".to_vec()), ExtRepr::GreKey(77)];
        extensions.extend(extra);
        let mut b = RegistrationReplyRepr {
            code: ReplyCode::Accepted,
            lifetime: u16::MAX,
            home_address: home,
            home_agent: HA1,
            identification: rq.identification,
            extensions,
        }
        .to_bytes();
        auth::append_auth(&mut b, AuthKind::FaHa, &sa());
        b
    };
    let unknown = ExtRepr::Unknown {
        ty: 100,
        data: vec![7],
    };
    net.inject(HA1, PMA1, &reply(Some(unknown)));
    assert_eq!(net.pma(PMA1).counters().unknown_nonskippable, 1);
    assert!(
        net.pma_events(PMA1).is_empty(),
        "acted on a reply to discard"
    );
    // Type 200 is skippable: the same reply with it is taken.
    let skippable = ExtRepr::Unknown {
        ty: 200,
        data: vec![7],
    };
    net.inject(HA1, PMA1, &reply(Some(skippable)));
    assert_eq!(
        net.pma_events(PMA1),
        vec![PmaEvent::Registered {
            nai: "ue1@ex".into(),
            home_address: home,
            lifetime: rq.lifetime,
            ha: HA1,
            renewal: false
        }]
    );
    assert!(rq.lifetime < u16::MAX);
}

#[test]
fn home_address_policy() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    let mut h = ha_cfg(HA1);
    h.profiles = vec![
        SubscriberProfile {
            nai: "static@ex".into(),
            static_home: Some(Ipv4Addr::new(10, 9, 9, 9)),
            allow_requested: false,
        },
        SubscriberProfile {
            nai: "picky@ex".into(),
            static_home: None,
            allow_requested: true,
        },
    ];
    h.pool = Some(AddressPool {
        first: Ipv4Addr::new(10, 1, 0, 1),
        last: Ipv4Addr::new(10, 1, 0, 2),
    });
    net.add_ha(h);
    let now = net.now;
    // Static from the profile.
    net.pma(PMA1).attach(now, sub("static@ex", 1));
    // A requested address the profile authorises.
    let mut s = sub("picky@ex", 2);
    s.static_home = Some(Ipv4Addr::new(10, 1, 0, 2));
    net.pma(PMA1).attach(now, s);
    // A requested address nobody authorised → 129.
    let mut s = sub("rogue@ex", 3);
    s.static_home = Some(Ipv4Addr::new(10, 1, 0, 1));
    net.pma(PMA1).attach(now, s);
    net.settle();
    assert_eq!(
        net.pma(PMA1).registration("static@ex").unwrap().0,
        Ipv4Addr::new(10, 9, 9, 9)
    );
    assert_eq!(
        net.pma(PMA1).registration("picky@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 2)
    );
    assert!(net
        .pma_events(PMA1)
        .contains(&PmaEvent::RegistrationFailed {
            nai: "rogue@ex".into(),
            code: Some(ReplyCode::AdminProhibited)
        }));
    // Pool: one address left, then 130.
    {
        let n = net.now;
        net.pma(PMA1).attach(n, sub("a@ex", 4));
    }
    {
        let n = net.now;
        net.pma(PMA1).attach(n, sub("b@ex", 5));
    }
    net.settle();
    assert_eq!(
        net.pma(PMA1).registration("a@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 1)
    );
    assert!(net
        .pma_events(PMA1)
        .contains(&PmaEvent::RegistrationFailed {
            nai: "b@ex".into(),
            code: Some(ReplyCode::InsufficientResources)
        }));
    let c = net.ha(HA1).counters().clone();
    assert_eq!((c.admin_prohibited, c.insufficient_resources), (1, 1));
}

#[test]
fn dynamic_ha_assignment() {
    let mut net = basic();
    let mut s = sub("ue1@ex", 1);
    s.dynamic_ha = true;
    let now = net.now;
    net.pma(PMA1).attach(now, s);
    net.run_for(Duration::from_secs(500));
    let rqs = net.requests(PMA1, HA1);
    assert_eq!(rqs[0].home_agent, Ipv4Addr::BROADCAST); // RFC 4433 §3.2
    assert_eq!(net.replies(HA1, PMA1)[0].home_agent, HA1);
    assert_eq!(rqs[1].home_agent, HA1); // renewals name the assigned HA
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
}

#[test]
fn keyed_md5_prefix_suffix_association_works_end_to_end() {
    let mut net = Net::new();
    let k = SecurityAssociation::new(7, b"legacy", Algorithm::KeyedMd5PrefixSuffix);
    net.add_pma(PmaConfig::new(
        PMA1,
        vec![HaPeer {
            address: HA1,
            sa: k.clone().into(),
        }],
    ));
    let mut h = ha_cfg(HA1);
    h.peers[0].sa = k.into();
    net.add_ha(h);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
}

#[test]
fn config_defaults_follow_seed_000() {
    let key = auth::parse_hex("00112233445566778899aabbccddeeff").unwrap();
    let c = PmaConfig::new(
        PMA1,
        vec![HaPeer {
            address: HA1,
            sa: SecurityAssociation::new(256, &key, Algorithm::HmacMd5).into(),
        }],
    );
    assert_eq!(
        (
            c.lifetime_s,
            c.renew_percent,
            c.retransmission_timeout_ms,
            c.max_retransmissions
        ),
        (600, 75, 3000, 5)
    );
    assert!(c.revocation_support && !c.ha_failover.enabled);
    assert_eq!(c.home_agents[0].sa.timestamp_tolerance_s, 60);
    let h = ha_cfg(HA1);
    assert_eq!(h.max_lifetime_s, 600);
    assert!(h.proxy_mip && h.revocation && h.serve_unknown_subscribers);
}

#[test]
fn many_subscribers_unique_keys_and_addresses() {
    let mut net = basic();
    let now = net.now;
    for i in 0..200u32 {
        let at = AccessPoint {
            ifindex: 3,
            vlan: (i % 4000) as u16,
            mac: [2, 0, 0, 0, (i >> 8) as u8, i as u8],
        };
        net.pma(PMA1)
            .attach(now, Subscriber::new(&format!("u{i}@ex"), at, HA1));
    }
    net.settle();
    let s = net.pma_events(PMA1).len();
    assert_eq!(s, 200);
    let keys: std::collections::HashSet<_> = net
        .dp(PMA1)
        .access
        .values()
        .map(|b| b.downlink_key)
        .collect();
    assert_eq!(keys.len(), 200);
    assert_eq!(net.dp(HA1).anchor.len(), 200);
    let homes: std::collections::HashSet<_> =
        net.dp(HA1).anchor.values().map(|b| b.home_v4).collect();
    assert_eq!(homes.len(), 200);
}

#[test]
fn dynamic_ha_request_carries_requested_ha_extension() {
    let mut net = basic();
    let mut s = sub("ue1@ex", 1);
    s.dynamic_ha = true;
    let now = net.now;
    net.pma(PMA1).attach(now, s);
    net.settle();
    let rq = &net.requests(PMA1, HA1)[0];
    assert!(rq.extensions.contains(&ExtRepr::DynamicHa {
        subtype: 1,
        ha: HA1
    }));
}

#[test]
fn replayed_revocation_does_not_tear_down_a_new_registration() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(2));
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_secs(2));
    let revocation = net
        .wire
        .iter()
        .find(|(s, d, p)| *s == HA1 && *d == PMA1 && p[0] == 7)
        .unwrap()
        .2
        .clone();
    // The device comes back to PMA1.
    {
        let n = net.now;
        net.pma(PMA1).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_secs(2));
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    let acks_before = net
        .wire
        .iter()
        .filter(|(s, _, p)| *s == PMA1 && p[0] == 15)
        .count();
    net.inject(HA1, PMA1, &revocation);
    // Still registered and forwarding: the replay (within the window of
    // identifiers, but older than the HA's timestamp in the registration
    // since: RFC 3543 §4.2.2.2) is counted and silently discarded (§3.5).
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    assert_eq!(net.dp(PMA1).access.len(), 1);
    assert_eq!(net.pma(PMA1).counters().revocations_stale, 1);
    let acks_after = net
        .wire
        .iter()
        .filter(|(s, _, p)| *s == PMA1 && p[0] == 15)
        .count();
    assert_eq!(acks_after, acks_before);
}

#[test]
fn reattach_on_another_port_moves_the_access_binding() {
    let mut net = basic();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    let mut s = sub("ue1@ex", 1);
    s.at.ifindex = 9;
    net.pma(PMA1).attach(t0, s);
    net.settle();
    let acc: Vec<_> = net.dp(PMA1).access.values().cloned().collect();
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].at.ifindex, 9);
    assert_eq!(net.requests(PMA1, HA1).len(), 1); // no new signaling needed
}

#[test]
fn static_address_inside_the_pool_is_reserved() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    let mut h = ha_cfg(HA1);
    h.profiles = vec![SubscriberProfile {
        nai: "static@ex".into(),
        static_home: Some(Ipv4Addr::new(10, 1, 0, 1)),
        allow_requested: false,
    }];
    net.add_ha(h);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("static@ex", 1));
    net.pma(PMA1).attach(now, sub("other@ex", 2));
    net.settle();
    assert_eq!(
        net.pma(PMA1).registration("static@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 1)
    );
    assert_eq!(
        net.pma(PMA1).registration("other@ex").unwrap().0,
        Ipv4Addr::new(10, 1, 0, 2)
    );
}

#[test]
fn identifiers_too_long_for_their_extension_are_refused_locally() {
    let mut net = basic();
    let now = net.now;
    let long = "x".repeat(256);
    net.pma(PMA1).attach(now, sub(&long, 1));
    net.pma(PMA1).attach(now, sub("", 2));
    net.settle();
    assert!(net.wire.is_empty());
    assert_eq!(net.pma_events(PMA1).len(), 2);
    assert_eq!(net.pma(PMA1).session_count(), 0);
    // 255 is fine.
    net.pma(PMA1).attach(now, sub(&"y".repeat(255), 3));
    net.settle();
    assert_eq!(net.pma(PMA1).session_count(), 1);
    assert!(net.pma(PMA1).registration(&"y".repeat(255)).is_some());
}

#[test]
fn no_revocation_to_a_pma_that_did_not_advertise_support() {
    let mut net = Net::new();
    let mut c = pma_cfg(PMA1);
    c.revocation_support = false;
    net.add_pma(c);
    net.add_pma(pma_cfg(PMA2));
    net.add_ha(ha_cfg(HA1));
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(1));
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.ha(HA1).counters().handovers, 1);
    assert_eq!(net.ha(HA1).counters().revocations_sent, 0);
    assert!(!net.wire.iter().any(|(_, _, p)| p[0] == 7));
}

/// An HA with revocation off does not say it supports it (RFC 3543 §3.2):
/// its replies carry no Revocation Support extension, so the PMA neither
/// waits for its revocations nor sends it its own; with revocation on, they do.
#[test]
fn ha_without_revocation_does_not_advertise_it() {
    for on in [false, true] {
        let mut net = Net::new();
        net.add_pma(pma_cfg(PMA1));
        let mut h = ha_cfg(HA1);
        h.revocation = on;
        net.add_ha(h);
        let t0 = net.now;
        net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
        net.settle();
        assert!(net.requests(PMA1, HA1)[0]
            .extensions
            .revocation_support()
            .is_some());
        let rp = net.replies(HA1, PMA1)[0].clone();
        assert_eq!(rp.code, ReplyCode::Accepted);
        assert_eq!(
            rp.extensions.revocation_support().is_some(),
            on,
            "revocation {on}"
        );
    }
}

/// A registration request from PMA1 to HA1 with `flags` and `extensions`,
/// lifetime 600, signed FA-HA with [`sa`]; its Identification the
/// simulated wall clock's plus the wire's traffic so far (each newer).
fn signed_request(net: &Net, flags: u8, extensions: Vec<ExtRepr>) -> Vec<u8> {
    let mut b = RegistrationRequestRepr {
        flags: RrqFlags(flags),
        lifetime: 600,
        home_address: Ipv4Addr::UNSPECIFIED,
        home_agent: HA1,
        care_of_address: PMA1,
        identification: auth::ntp_from_system(net.clock().wall(net.now)) + net.wire.len() as u64,
        extensions,
    }
    .to_bytes();
    auth::append_auth(&mut b, AuthKind::FaHa, &sa());
    b
}

/// S (simultaneous bindings, RFC 3344 §3.3) asks the HA to keep a home
/// address's other bindings; ours keeps one a NAI, so it accepts with code 1
/// ("accepted, simultaneous mobility bindings unsupported", §3.4), and
/// without S with 0.
#[test]
fn simultaneous_bindings_asked_for_are_answered_code_1() {
    for (s_flag, want) in [
        (true, ReplyCode::AcceptedNoSimultaneous),
        (false, ReplyCode::Accepted),
    ] {
        let mut net = basic();
        let flags = RrqFlags::G | RrqFlags::T | if s_flag { RrqFlags::S } else { 0 };
        let exts = vec![ExtRepr::Nai(b"s@ex".to_vec()), ExtRepr::GreKey(9)];
        let b = signed_request(&net, flags, exts);
        net.inject(PMA1, HA1, &b);
        assert_eq!(last_code(&net), want, "S {s_flag}");
        assert!(want.is_accepted());
    }
}

/// A revocation is acknowledged to the address and port it came from, at
/// the HA and at the PMA, as a registration is answered.
#[test]
fn revocation_acks_go_back_to_the_source_port() {
    let (mut net, clock, _, home) = ue1_registered_at_pma1();
    // Identifiers: timestamps after the registration (RFC 3543 §4.2.3.2).
    let now = net.now + Duration::from_secs(2);
    let id = auth::ntp_seconds(clock.ntp(now));
    let from = SocketAddrV4::new(PMA1, 40_000);
    net.ha(HA1).handle(
        now,
        from,
        &signed_revocation(false, PMA1, home, id, "ue1@ex"),
    );
    let t = net.ha(HA1).poll_transmit().expect("an ack");
    assert_eq!((t.payload[0], t.peer), (15, Peer::V4(from)));
    let from = SocketAddrV4::new(HA1, 40_001);
    net.pma(PMA2).handle(
        now,
        from,
        &signed_revocation(true, PMA2, home, id, "ue1@ex"),
    );
    let t = net.pma(PMA2).poll_transmit().expect("an ack");
    assert_eq!((t.payload[0], t.peer), (15, Peer::V4(from)));
}

#[test]
fn failover_timeout_overrides_retransmission_timeout() {
    let mut net = Net::new();
    let mut c = pma_cfg(PMA1);
    c.ha_failover.enabled = true;
    c.ha_failover.timeout_ms = Some(1000);
    net.add_pma(c);
    net.add_ha(ha_cfg(HA2));
    let t0 = net.now;
    let mut s = sub("ue1@ex", 1);
    s.alternate_ha = Some(HA2);
    net.pma(PMA1).attach(t0, s);
    net.run_for(Duration::from_millis(1999));
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    net.run_for(Duration::from_millis(2));
    assert_eq!(net.pma(PMA1).registration("ue1@ex").map(|r| r.1), Some(HA2));
}

mod affinity;
mod churn;
mod per_mn;
mod restart;
mod rollover;
mod show_left;
mod store_refused;

/// The Revocation Identifiers of the revocations `from` sent `to`, in order.
fn revocation_ids(net: &Net, from: Ipv4Addr, to: Ipv4Addr) -> Vec<u32> {
    net.wire
        .iter()
        .filter(|(s, d, p)| *s == from && *d == to && p[0] == 7)
        .map(|(_, _, p)| u32::from_be_bytes(p[16..20].try_into().unwrap()))
        .collect()
}

/// The basic network with ue1 registered through PMA1: the network, the
/// nodes' clock (the Net's moves with it), when, and ue1's home address.
fn ue1_registered_at_pma1() -> (Net, WallClock, Instant, Ipv4Addr) {
    let mut net = basic();
    let clock = net.clock();
    let t0 = net.now;
    net.pma(PMA1).attach(t0, sub("ue1@ex", 1));
    net.settle();
    let home = net.pma(PMA1).registration("ue1@ex").unwrap().0;
    (net, clock, t0, home)
}

/// A Registration Revocation of `home`/`nai` signed with the FA-HA key:
/// from the HA (A set) to `pma`, or from `pma` to the HA (A clear).
fn signed_revocation(a_bit: bool, pma: Ipv4Addr, home: Ipv4Addr, id: u32, nai: &str) -> Vec<u8> {
    let mut b = RevocationRepr {
        a_bit,
        i_bit: false,
        home_address: home,
        home_domain_address: HA1,
        foreign_domain_address: pma,
        revocation_id: id,
        extensions: vec![ExtRepr::Nai(nai.as_bytes().to_vec())],
    }
    .to_bytes();
    auth::append_auth(&mut b, AuthKind::FaHa, &sa());
    b
}

/// The acknowledgements `from` sent, as (home address, identifier).
fn acks_from(net: &Net, from: Ipv4Addr) -> Vec<(Ipv4Addr, u32)> {
    net.wire
        .iter()
        .filter(|(s, _, p)| *s == from && p[0] == 15)
        .map(|(_, _, p)| {
            let home = Ipv4Addr::from(<[u8; 4]>::try_from(&p[4..8]).unwrap());
            (home, u32::from_be_bytes(p[8..12].try_into().unwrap()))
        })
        .collect()
}

/// RFC 3543 §3.5, §6.2: the HA's identifiers are its timestamps, so two
/// revocations in one second share one; both are acted on (before: the
/// second counted as a replay of the first). One older than the newest by
/// more than the window is a replay, and a reflection (A clear) is not
/// from the HA: both silently discarded — no ack, the binding stays.
#[test]
fn pma_takes_revocations_that_share_a_timestamp_and_drops_replays_and_reflections() {
    let mut net = basic();
    // The nodes' clock (the Net's moves with it).
    let clock = net.clock();
    let t0 = net.now;
    for (k, nai) in ["ue1@ex", "ue2@ex", "ue3@ex"].iter().enumerate() {
        net.pma(PMA1).attach(t0, sub(nai, k as u8 + 1));
    }
    net.settle();
    net.run_for(Duration::from_secs(30));
    let home = |net: &mut Net, nai: &str| net.pma(PMA1).registration(nai).unwrap().0;
    let (h1, h2, h3) = (
        home(&mut net, "ue1@ex"),
        home(&mut net, "ue2@ex"),
        home(&mut net, "ue3@ex"),
    );
    let id = auth::ntp_seconds(clock.ntp(net.now));
    net.inject(HA1, PMA1, &signed_revocation(true, PMA1, h1, id, "ue1@ex"));
    net.inject(HA1, PMA1, &signed_revocation(true, PMA1, h2, id, "ue2@ex"));
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    assert!(
        net.pma(PMA1).registration("ue2@ex").is_none(),
        "the second of a second"
    );
    assert_eq!(acks_from(&net, PMA1), [(h1, id), (h2, id)]);
    // Older than the newest by more than the window: a replay.
    let old = id - auth::REVOCATION_WINDOW_S - 1;
    net.inject(HA1, PMA1, &signed_revocation(true, PMA1, h3, old, "ue3@ex"));
    // A clear: a foreign agent's revocation, ours reflected back.
    net.inject(HA1, PMA1, &signed_revocation(false, PMA1, h3, id, "ue3@ex"));
    assert!(net.pma(PMA1).registration("ue3@ex").is_some());
    assert_eq!(net.pma(PMA1).counters().revocations_stale, 2);
    assert_eq!(acks_from(&net, PMA1).len(), 2, "discarded without an ack");
    // Within the window: taken.
    net.inject(
        HA1,
        PMA1,
        &signed_revocation(true, PMA1, h3, id - 3, "ue3@ex"),
    );
    assert!(net.pma(PMA1).registration("ue3@ex").is_none());
}

/// RFC 3543 §3.5: the HA's revocation ends with the acknowledgement of any
/// of its transmissions — a late ack of the first, after a retransmission
/// with a newer identifier, counts; one for another home address does not.
#[test]
fn ha_takes_a_late_ack_of_an_earlier_transmission() {
    let (mut net, _, _, home) = ue1_registered_at_pma1();
    net.filter = Box::new(|src, t| !(src == HA1 && *dst(t).ip() == PMA1));
    {
        let n = net.now;
        net.pma(PMA2).attach(n, sub("ue1@ex", 1));
    }
    net.run_for(Duration::from_millis(1500));
    let ids = revocation_ids(&net, HA1, PMA1);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[1] > ids[0]);
    let ack = |home: Ipv4Addr, id: u32| {
        let mut b = RevocationAckRepr {
            i_bit: false,
            home_address: home,
            revocation_id: id,
            extensions: vec![],
        }
        .to_bytes();
        auth::append_auth(&mut b, AuthKind::FaHa, &sa());
        b
    };
    net.inject(PMA1, HA1, &ack(Ipv4Addr::new(10, 9, 9, 9), ids[0]));
    assert_eq!(net.ha(HA1).pending_revocations(), 1, "another home address");
    net.inject(PMA1, HA1, &ack(home, ids[0]));
    assert_eq!(net.ha(HA1).pending_revocations(), 0);
    assert_eq!(net.ha(HA1).counters().revocation_acks, 1);
}

/// RFC 3543 §4.2.3.2: a PMA's revocation must follow the registration it
/// names (its identifier after the timestamp the PMA put in that request);
/// one that does not is silently discarded, and the PMA's retransmission,
/// a second later with a newer identifier, is taken.
#[test]
fn ha_takes_a_pma_revocation_only_after_the_registration() {
    let (mut net, clock, t0, home) = ue1_registered_at_pma1();
    let stamp = auth::ntp_seconds(clock.ntp(t0));
    net.inject(
        PMA1,
        HA1,
        &signed_revocation(false, PMA1, home, stamp, "ue1@ex"),
    );
    assert!(
        net.ha(HA1).binding("ue1@ex").is_some(),
        "same second as the registration"
    );
    assert_eq!(net.ha(HA1).counters().pma_revocations_stale, 1);
    assert!(acks_from(&net, HA1).is_empty());
    net.inject(
        PMA1,
        HA1,
        &signed_revocation(false, PMA1, home, stamp + 1, "ue1@ex"),
    );
    assert!(net.ha(HA1).binding("ue1@ex").is_none());
    assert_eq!(acks_from(&net, HA1), [(home, stamp + 1)]);
}

/// RFC 4433 §5.3 at a cluster address (HA1, assigning HA2): a new
/// registration asking for an assignment (HA field 255.255.255.255) that
/// passes every check is refused with REDIRECT-HA-REQ (143, §7; was 136)
/// and the Redirected HA extension, HA1 in the HA field; the PMA registers
/// at HA2. A request whose Identification is stale gets 133 (the checks
/// come first: it is no request to redirect), and one whose Requested HA
/// extension names another HA than the one it was sent to gets 136.
#[test]
fn cluster_address_redirects_with_143_after_the_checks() {
    let mut net = Net::new();
    net.add_pma(pma_cfg(PMA1));
    net.add_ha(ha_cfg(HA1));
    net.add_ha(ha_cfg(HA2));
    let a = crate::agent::assign::Assigner::new();
    a.set_targets(&[(HA2.into(), 0)]);
    net.ha(HA1).use_assigner(a);
    let mut s = sub("ue1@ex", 1);
    s.dynamic_ha = true;
    let now = net.now;
    net.pma(PMA1).attach(now, s);
    net.settle();
    let rq = net.requests(PMA1, HA1)[0].clone();
    assert_eq!(rq.home_agent, Ipv4Addr::BROADCAST);
    assert_eq!(rq.extensions.requested_ha(), Some(HA1));
    let rp = net.replies(HA1, PMA1)[0].clone();
    assert_eq!(rp.code, ReplyCode::RedirectHa);
    assert_eq!(u8::from(rp.code), 143);
    assert_eq!(rp.home_agent, HA1);
    assert_eq!(rp.extensions.redirected_ha(), Some(HA2));
    assert_eq!(net.requests(PMA1, HA2)[0].home_agent, HA2);
    // RFC 4433 §5.1.1: the redirected request names the Redirected HA in
    // its Requested HA extension.
    assert_eq!(
        net.requests(PMA1, HA2)[0].extensions.requested_ha(),
        Some(HA2)
    );
    assert_eq!(net.pma(PMA1).registration("ue1@ex").unwrap().1, HA2);
    assert_eq!(net.ha(HA1).counters().redirected, 1);

    // The same request with an Identification an hour old: 133, not 143.
    let stale = |net: &Net, requested: Ipv4Addr, age_s: u64| {
        let mut r = rq.clone();
        r.identification =
            auth::ntp_from_system(net.clock().wall(net.now)).wrapping_sub(age_s << 32);
        r.extensions.retain(|e| !matches!(e, ExtRepr::Auth { .. }));
        for e in &mut r.extensions {
            if let ExtRepr::DynamicHa { ha, .. } = e {
                *ha = requested;
            }
        }
        let mut b = r.to_bytes();
        auth::append_auth(&mut b, AuthKind::FaHa, &sa());
        b
    };
    let b = stale(&net, HA1, 3600);
    net.inject(PMA1, HA1, &b);
    assert_eq!(
        net.replies(HA1, PMA1).last().unwrap().code,
        ReplyCode::IdentMismatch
    );
    let b = stale(&net, HA2, 0);
    net.inject(PMA1, HA1, &b);
    let last = net.replies(HA1, PMA1).last().unwrap().clone();
    assert_eq!(last.code, ReplyCode::UnknownHa);
    assert_eq!(last.home_agent, HA1);
    assert_eq!(net.ha(HA1).counters().redirected, 1);
}

/// RFC 5944 §3.4, §3.7.3.2: a renewal accepted with Lifetime 0 says the HA
/// deregistered the MN: the PMA removes the binding and its forwarding at
/// once — not kept to its lifetime as after a denial.
#[test]
fn a_renewal_accepted_with_lifetime_zero_ends_the_binding() {
    let (mut net, _, _, home) = ue1_registered_at_pma1();
    let key = net.replies(HA1, PMA1)[0]
        .extensions
        .gre_key()
        .expect("a key");
    // The HA hears nothing more; its answer to the renewal is written here.
    net.filter = Box::new(|_, t| *dst(t).ip() != HA1);
    while net.requests(PMA1, HA1).len() < 2 {
        net.run_for(Duration::from_secs(1));
    }
    assert_eq!(net.dp(PMA1).access.len(), 1);
    let ident = net.requests(PMA1, HA1)[1].identification;
    let mut b = RegistrationReplyRepr {
        code: ReplyCode::Accepted,
        lifetime: 0,
        home_address: home,
        home_agent: HA1,
        identification: ident,
        extensions: vec![ExtRepr::Nai(b"ue1@ex".to_vec()), ExtRepr::GreKey(key)],
    }
    .to_bytes();
    auth::append_auth(&mut b, AuthKind::FaHa, &sa());
    net.inject(HA1, PMA1, &b);
    assert!(net.dp(PMA1).access.is_empty(), "still forwarding");
    assert_eq!(net.pma(PMA1).registration("ue1@ex"), None);
    assert_eq!(net.pma(PMA1).counters().ended_by_zero_lifetime, 1);
    assert!(net
        .pma_events(PMA1)
        .iter()
        .any(|e| matches!(e, PmaEvent::Expired { nai } if nai == "ue1@ex")));
}

/// `pmipctl clear bindings --peer` on the HA: every binding through one PMA
/// (or those of one realm there) is released, each with its own revocation
/// (RFC 3543 has no bulk form); the other PMA's binding stays.
#[test]
fn the_ha_releases_every_binding_through_one_pma() {
    let mut net = basic();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.pma(PMA1).attach(now, sub("ue2@other", 2));
    net.pma(PMA2).attach(now, sub("ue3@ex", 3));
    // A revocation must come after the registration's timestamp (§4.2.2.2).
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.ha(HA1).binding_count(), 3);
    let now = net.now;
    assert_eq!(net.ha(HA1).clear_peer(now, PMA1, Some("EX")), 1);
    net.settle();
    assert_eq!(net.pma(PMA1).session_count(), 1);
    let now = net.now;
    assert_eq!(net.ha(HA1).clear_peer(now, PMA1, None), 1);
    net.settle();
    assert_eq!(net.pma(PMA1).session_count(), 0);
    assert!(net.dp(PMA1).access.is_empty());
    assert_eq!(net.pma(PMA2).session_count(), 1);
    assert_eq!(net.ha(HA1).binding_count(), 1);
    assert!(net.ha(HA1).binding("ue3@ex").is_some());
    let c = net.ha(HA1).counters().clone();
    assert_eq!((c.revocations_sent, c.revocation_acks), (2, 2));
    assert_eq!(net.ha(HA1).clear_peer(now, PMA1, None), 0);
}

/// RFC 6245 §4.2: a GRE Key extension without the G bit is taken as a
/// request for GRE (an FA may add GRE by its own policy and must not set
/// G); a key of 0 asks the HA to assign the keys of both directions — the
/// one it answers with is used both ways. Without a GRE Key: 139.
#[test]
fn the_ha_takes_gre_without_g_and_assigns_both_keys_for_key_zero() {
    let mut net = basic();
    let craft = |net: &Net, nai: &str, flags: u8, gre: Option<u32>| {
        let mut extensions = vec![ExtRepr::Nai(nai.as_bytes().to_vec())];
        extensions.extend(gre.map(ExtRepr::GreKey));
        if !nai.starts_with("staros") {
            extensions.push(ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa));
        }
        signed_request(net, flags, extensions)
    };
    let key_of = |net: &Net, home: Ipv4Addr| {
        let b = net
            .dp(HA1)
            .anchor
            .values()
            .find(|b| b.home_v4 == Some(home))
            .cloned();
        b.map(|b| (b.uplink_key, b.downlink_key))
    };
    // G clear, a key: accepted, GRE with that key downlink.
    let m = craft(&net, "nog@ex", RrqFlags::T, Some(77));
    net.inject(PMA1, HA1, &m);
    let r = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(r.code, ReplyCode::Accepted);
    let (up, down) = key_of(&net, r.home_address).unwrap();
    assert_eq!((r.extensions.gre_key(), down), (Some(up), 77));
    // Key 0: one key assigned, both directions.
    let m = craft(&net, "zero@ex", RrqFlags::G | RrqFlags::T, Some(0));
    net.inject(PMA1, HA1, &m);
    let r = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(r.code, ReplyCode::Accepted);
    let (up, down) = key_of(&net, r.home_address).unwrap();
    assert!(up != 0 && down == up, "{up} {down}");
    assert_eq!(r.extensions.gre_key(), Some(up));
    // Its renewal with key 0 again keeps them.
    net.run_for(Duration::from_secs(1));
    let m = craft(&net, "zero@ex", RrqFlags::G | RrqFlags::T, Some(0));
    net.inject(PMA1, HA1, &m);
    assert_eq!(key_of(&net, r.home_address), Some((up, up)));
    // G and no GRE Key: 139.
    let m = craft(&net, "nokey@ex", RrqFlags::G | RrqFlags::T, None);
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::EncapUnavailable);
    // The Per-Node Authentication Method is in a reply when it was in the
    // request (draft §5.1); a PMA that sends none (StarOS style) gets none
    // (type 47 is not skippable, RFC 5944 §1.8).
    let with = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(
        with.extensions.per_node_auth_method(),
        Some(AuthMethod::FaHa)
    );
    let m = craft(&net, "staros@ex", RrqFlags::G | RrqFlags::T, Some(5));
    net.inject(PMA1, HA1, &m);
    let r = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(
        (r.code, r.extensions.per_node_auth_method()),
        (ReplyCode::Accepted, None)
    );
}
