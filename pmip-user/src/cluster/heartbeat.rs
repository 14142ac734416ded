//! Members watch each other directly: each sends a small UDP heartbeat to
//! every other member's own address every `heartbeat_interval`; a member not
//! heard from for `heartbeat_misses` intervals is dead (its process, its
//! machine or its link to the core network, which is where the access
//! gateways reach it too). The survivors then revoke its lease in etcd at
//! once instead of waiting for the lease to run out: this is what makes a
//! takeover take a fraction of a second rather than the lease TTL.
//!
//! A member that is only cut off from etcd keeps sending heartbeats, so
//! nobody revokes it: its lease runs out and it stops on its own first
//! (see `member`). The heartbeats travel the core network on purpose:
//! a member whose core link is down serves no one, so revoking it costs
//! nothing even if it still reaches etcd.
//!
//! Each heartbeat also says whether its sender has a working etcd (its last
//! keepalive was answered). While etcd has lost its quorum, a member holds
//! on to its addresses past the end of its lease only if every other member
//! is heard and none has a working etcd ([`Detector::quiet`]): nobody who
//! could take an address over is around (`member`, docs/cluster.md).
//!
//! [`Detector`] is the sans-IO core (who is due to be declared dead, are
//! the others all without etcd); [`run`] moves the datagrams.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// First bytes of a heartbeat: "PMHB", version 1 (name and lease) or 2
/// (a flags octet after the lease).
const MAGIC_V1: &[u8; 5] = b"PMHB\x01";
const MAGIC: &[u8; 5] = b"PMHB\x02";
/// Flag: the sender's etcd works (its last lease keepalive was answered).
const F_ETCD: u8 = 0x01;

/// A heartbeat: the sender's member name, incarnation (its lease) and
/// whether its etcd works.
pub fn encode(member: &str, lease: i64, etcd_works: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAGIC.len() + 10 + member.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&lease.to_be_bytes());
    b.push(if etcd_works { F_ETCD } else { 0 });
    b.push(member.len().min(255) as u8);
    b.extend_from_slice(&member.as_bytes()[..member.len().min(255)]);
    b
}

/// The sender's (member, lease, etcd works) of a heartbeat; None for
/// anything else. A version 1 sender cannot say: its etcd counts as working
/// (the safe side: nobody holds on past a lease because of it).
pub fn decode(b: &[u8]) -> Option<(&str, i64, bool)> {
    if let Some(r) = b.strip_prefix(MAGIC_V1.as_slice()) {
        let lease = i64::from_be_bytes(r.get(..8)?.try_into().ok()?);
        return Some((name_of(r.get(8..)?)?, lease, true));
    }
    let r = b.strip_prefix(MAGIC.as_slice())?;
    let lease = i64::from_be_bytes(r.get(..8)?.try_into().ok()?);
    let flags = *r.get(8)?;
    Some((name_of(r.get(9..)?)?, lease, flags & F_ETCD != 0))
}

/// A length-prefixed name that ends the datagram.
fn name_of(b: &[u8]) -> Option<&str> {
    let n = usize::from(*b.first()?);
    if b.len() != 1 + n {
        return None;
    }
    std::str::from_utf8(&b[1..]).ok()
}

#[derive(Clone, Debug)]
struct Peer {
    addr: SocketAddr,
    /// Heard last (or, never heard, when we started watching it).
    last: Instant,
    dead: bool,
    /// Whether its etcd works, as its last heartbeat said (None: not heard yet).
    etcd_works: Option<bool>,
}

/// Who is alive, from the heartbeats heard.
#[derive(Debug)]
pub struct Detector {
    timeout: Duration,
    peers: HashMap<String, Peer>,
    /// The last heartbeat with a working etcd from a sender that is not a
    /// member we know (one that joined while our view of etcd was stale).
    stranger_works: Option<Instant>,
}

impl Detector {
    pub fn new(interval: Duration, misses: u32) -> Detector {
        Detector {
            timeout: interval * misses,
            peers: HashMap::new(),
            stranger_works: None,
        }
    }

    /// The other members as etcd lists them now: new ones get a full
    /// timeout of grace, departed ones are forgotten.
    pub fn set_members(&mut self, now: Instant, members: &[(String, SocketAddr)]) {
        self.peers
            .retain(|name, _| members.iter().any(|(n, _)| n == name));
        for (name, addr) in members {
            let p = self.peers.entry(name.clone()).or_insert(Peer {
                addr: *addr,
                last: now,
                dead: false,
                etcd_works: None,
            });
            p.addr = *addr;
        }
    }

    /// A heartbeat from `name` at `from`: alive (if `from` is its address).
    pub fn heard(&mut self, now: Instant, name: &str, from: IpAddr, etcd_works: bool) {
        match self.peers.get_mut(name) {
            Some(p) if p.addr.ip() == from => {
                p.last = now;
                p.dead = false;
                p.etcd_works = Some(etcd_works);
            }
            Some(_) => {}
            None if etcd_works => self.stranger_works = Some(now),
            None => {}
        }
    }

    /// Is every other member heard (within the timeout) and none of them,
    /// nor anyone else who sent us a heartbeat, with a working etcd? Then
    /// nobody can take an address over from us now: a takeover needs etcd.
    pub fn quiet(&self, now: Instant) -> bool {
        let fresh = |t: Instant| now.saturating_duration_since(t) <= self.timeout;
        self.peers
            .values()
            .all(|p| fresh(p.last) && p.etcd_works == Some(false))
            && !self.stranger_works.is_some_and(fresh)
    }

    /// Members that just went silent for the whole timeout (each reported once).
    pub fn newly_dead(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (name, p) in &mut self.peers {
            if !p.dead && now.saturating_duration_since(p.last) > self.timeout {
                p.dead = true;
                out.push(name.clone());
            }
        }
        out.sort();
        out
    }

    /// Is `name` silent now?
    #[cfg(test)]
    pub(crate) fn is_dead(&self, name: &str) -> bool {
        self.peers.get(name).is_some_and(|p| p.dead)
    }

    pub fn targets(&self) -> Vec<SocketAddr> {
        self.peers.values().map(|p| p.addr).collect()
    }
}

/// What the heartbeat task is told: the other members and where they are.
pub(crate) type Members = Vec<(String, SocketAddr)>;

/// What the heartbeats carry and learn about etcd: whether ours works
/// (read), whether everyone else is heard without it ([`Detector::quiet`],
/// published).
pub(crate) struct EtcdSense {
    /// Until when our etcd counts as working.
    pub works: watch::Receiver<Option<Instant>>,
    pub quiet: watch::Sender<bool>,
}

fn publish(d: &Detector, sense: &EtcdSense) {
    sense.quiet.send_if_modified(|q| {
        let now = d.quiet(Instant::now());
        std::mem::replace(q, now) != now
    });
}

/// Sends and hears heartbeats until `members` closes; reports each member
/// that goes silent on `dead`. Runs on the etcd runtime (its own thread),
/// so a busy daemon still sends its heartbeats on time.
pub(crate) async fn run(
    socket: Arc<UdpSocket>,
    me: (String, i64),
    (interval, misses): (Duration, u32),
    mut members: watch::Receiver<Members>,
    dead: mpsc::UnboundedSender<String>,
    sense: EtcdSense,
) {
    let mut d = Detector::new(interval, misses);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = [0u8; 512];
    d.set_members(Instant::now(), &members.borrow_and_update());
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let works = sense.works.borrow().is_some_and(|t| Instant::now() < t);
                let hb = encode(&me.0, me.1, works);
                for t in d.targets() {
                    let _ = socket.send_to(&hb, t).await;
                }
                for name in d.newly_dead(Instant::now()) {
                    if dead.send(name).is_err() {
                        return;
                    }
                }
                publish(&d, &sense);
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    if let Some((name, _, works)) = decode(&buf[..n]) {
                        d.heard(Instant::now(), name, from.ip(), works);
                        // A member with a working etcd ends holding at once.
                        publish(&d, &sense);
                    }
                }
            }
            c = members.changed() => {
                if c.is_err() {
                    return;
                }
                let m = members.borrow_and_update().clone();
                d.set_members(Instant::now(), &m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn heartbeat_round_trip_and_garbage() {
        let b = encode("a2", 0x1234, false);
        assert_eq!(decode(&b), Some(("a2", 0x1234, false)));
        assert_eq!(decode(&encode("a2", 7, true)), Some(("a2", 7, true)));
        // Version 1 (no flags): its etcd counts as working.
        let mut v1 = b"PMHB\x01".to_vec();
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(b"\x02a3");
        assert_eq!(decode(&v1), Some(("a3", 9, true)));
        assert_eq!(decode(&v1[..v1.len() - 1]), None, "truncated v1");
        assert_eq!(decode(&b[..b.len() - 1]), None, "truncated");
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long), None, "trailing bytes");
        assert_eq!(decode(b"PMHB\x03.........."), None, "other version");
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn silent_members_are_reported_once_after_the_timeout() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(ms(100), 4);
        d.set_members(
            t0,
            &[
                ("a2".into(), addr("10.0.0.2:5437")),
                ("a3".into(), addr("10.0.0.3:5437")),
            ],
        );
        d.heard(t0 + ms(300), "a2", "10.0.0.2".parse().unwrap(), true);
        // a3 is never heard; a spoofed a2 from elsewhere does not count.
        d.heard(t0 + ms(600), "a2", "10.0.0.9".parse().unwrap(), true);
        assert!(d.newly_dead(t0 + ms(400)).is_empty());
        assert_eq!(d.newly_dead(t0 + ms(401)), ["a3"]);
        assert!(d.newly_dead(t0 + ms(650)).is_empty(), "a3 reported once");
        assert_eq!(d.newly_dead(t0 + ms(701)), ["a2"]);
        assert!(d.is_dead("a2"));
        // Heard again: alive, and reported again when silent again.
        d.heard(t0 + ms(800), "a2", "10.0.0.2".parse().unwrap(), true);
        assert!(!d.is_dead("a2"));
        assert_eq!(d.newly_dead(t0 + ms(1201)), ["a2"]);
    }

    #[test]
    fn a_new_member_gets_a_full_timeout_of_grace() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(ms(100), 3);
        d.set_members(t0, &[("a2".into(), addr("10.0.0.2:1"))]);
        d.set_members(
            t0 + ms(250),
            &[
                ("a2".into(), addr("10.0.0.2:1")),
                ("a3".into(), addr("10.0.0.3:1")),
            ],
        );
        assert_eq!(d.newly_dead(t0 + ms(320)), ["a2"]);
        assert!(d.newly_dead(t0 + ms(540)).is_empty());
        assert_eq!(d.newly_dead(t0 + ms(551)), ["a3"]);
        d.set_members(t0 + ms(600), &[]);
        assert!(d.targets().is_empty());
    }

    #[test]
    fn quiet_only_while_every_member_is_heard_without_etcd() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut d = Detector::new(ms(100), 4);
        assert!(d.quiet(t0), "alone: nobody to take over");
        d.set_members(
            t0,
            &[
                ("a2".into(), addr("10.0.0.2:1")),
                ("a3".into(), addr("10.0.0.3:1")),
            ],
        );
        assert!(!d.quiet(t0), "not heard yet");
        d.heard(t0 + ms(50), "a2", ip("10.0.0.2"), false);
        assert!(!d.quiet(t0 + ms(60)), "a3 not heard yet");
        d.heard(t0 + ms(70), "a3", ip("10.0.0.3"), false);
        assert!(d.quiet(t0 + ms(80)));
        // a3 says its etcd works: someone could take over.
        d.heard(t0 + ms(100), "a3", ip("10.0.0.3"), true);
        assert!(!d.quiet(t0 + ms(110)));
        d.heard(t0 + ms(150), "a3", ip("10.0.0.3"), false);
        assert!(d.quiet(t0 + ms(160)));
        // a2 silent past the timeout: it may be cut off from us, not from etcd.
        d.heard(t0 + ms(400), "a3", ip("10.0.0.3"), false);
        assert!(!d.quiet(t0 + ms(451)));
        d.heard(t0 + ms(460), "a2", ip("10.0.0.2"), false);
        assert!(d.quiet(t0 + ms(470)));
        // A stranger (joined while our view was stale) with a working etcd.
        d.heard(t0 + ms(480), "a9", ip("10.0.0.9"), true);
        assert!(!d.quiet(t0 + ms(490)));
        d.heard(t0 + ms(700), "a2", ip("10.0.0.2"), false);
        d.heard(t0 + ms(700), "a3", ip("10.0.0.3"), false);
        assert!(!d.quiet(t0 + ms(700)));
        assert!(
            d.quiet(t0 + ms(881)),
            "the stranger's word lasts one timeout"
        );
        // A spoofed "no etcd" from another address does not count.
        d.heard(t0 + ms(890), "a3", ip("10.0.0.3"), true);
        d.heard(t0 + ms(895), "a3", ip("10.0.0.8"), false);
        assert!(!d.quiet(t0 + ms(900)));
    }
}
