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

/// First bytes of a heartbeat: "PMHB", version 1 (name and lease), 2 (a
/// flags octet after the lease) or 3 (then the age of the sender's last
/// lease renewal).
const MAGIC_V1: &[u8; 5] = b"PMHB\x01";
const MAGIC_V2: &[u8; 5] = b"PMHB\x02";
const MAGIC: &[u8; 5] = b"PMHB\x03";
/// Flag: the sender's etcd works (its last lease keepalive was answered).
const F_ETCD: u8 = 0x01;
/// Age field of a sender that cannot say when it last renewed.
const AGE_UNKNOWN: u32 = u32::MAX;

/// What a heartbeat says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat<'a> {
    pub name: &'a str,
    /// The sender's incarnation (its lease).
    pub lease: i64,
    pub etcd_works: bool,
    /// How long ago the sender's last answered keepalive was sent (None:
    /// unknown — never, or an older sender).
    pub renewed_ago: Option<Duration>,
}

/// A heartbeat (version 3).
pub fn encode(b: &Beat) -> Vec<u8> {
    let name = &b.name.as_bytes()[..b.name.len().min(255)];
    let age = b.renewed_ago.map_or(AGE_UNKNOWN, |d| {
        u32::try_from(d.as_millis()).map_or(AGE_UNKNOWN - 1, |ms| ms.min(AGE_UNKNOWN - 1))
    });
    let mut v = Vec::with_capacity(MAGIC.len() + 14 + name.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&b.lease.to_be_bytes());
    v.push(if b.etcd_works { F_ETCD } else { 0 });
    v.extend_from_slice(&age.to_be_bytes());
    v.push(name.len() as u8);
    v.extend_from_slice(name);
    v
}

/// The contents of a heartbeat; None for anything else. A version 1 sender
/// cannot say whether its etcd works: it counts as working (the safe side:
/// nobody holds on past a lease because of it); versions 1 and 2 cannot say
/// when they renewed.
pub fn decode(b: &[u8]) -> Option<Beat<'_>> {
    let lease_of = |r: &[u8]| Some(i64::from_be_bytes(r.get(..8)?.try_into().ok()?));
    if let Some(r) = b.strip_prefix(MAGIC_V1.as_slice()) {
        return Some(Beat {
            lease: lease_of(r)?,
            name: name_of(r.get(8..)?)?,
            etcd_works: true,
            renewed_ago: None,
        });
    }
    if let Some(r) = b.strip_prefix(MAGIC_V2.as_slice()) {
        return Some(Beat {
            lease: lease_of(r)?,
            etcd_works: *r.get(8)? & F_ETCD != 0,
            name: name_of(r.get(9..)?)?,
            renewed_ago: None,
        });
    }
    let r = b.strip_prefix(MAGIC.as_slice())?;
    let age = u32::from_be_bytes(r.get(9..13)?.try_into().ok()?);
    Some(Beat {
        lease: lease_of(r)?,
        etcd_works: *r.get(8)? & F_ETCD != 0,
        renewed_ago: (age != AGE_UNKNOWN).then(|| Duration::from_millis(age.into())),
        name: name_of(r.get(13..)?)?,
    })
}

/// A length-prefixed name that ends the datagram.
fn name_of(b: &[u8]) -> Option<&str> {
    let n = usize::from(*b.first()?);
    if b.len() != 1 + n {
        return None;
    }
    std::str::from_utf8(&b[1..]).ok()
}

/// Whether anyone heard could take an address over from us now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quiet {
    /// Someone is not heard, or says its etcd works: it may.
    #[default]
    No,
    /// Every member heard; some still say their etcd works, but their last
    /// renewal was sent before our keepalives went unanswered — what a
    /// lost quorum looks like for the moment their word lasts (a member
    /// that reaches a quorum renews again within a keepalive period and
    /// makes it `No`).
    Pending,
    /// Every member heard, none with a working etcd: nobody can.
    Yes,
}

#[derive(Clone, Debug)]
struct Peer {
    addr: SocketAddr,
    /// Heard last (or, never heard, when we started watching it).
    last: Instant,
    dead: bool,
    /// Whether its etcd works, as its last heartbeat said (None: not heard yet).
    etcd_works: Option<bool>,
    /// When its last answered keepalive was sent, as its last heartbeat said.
    renewed: Option<Instant>,
    /// [`Detector::stalled`] when it was heard last: its silence counts
    /// only the time we were watching.
    stalled_then: Duration,
}

/// Who is alive, from the heartbeats heard.
#[derive(Debug)]
pub struct Detector {
    interval: Duration,
    timeout: Duration,
    peers: HashMap<String, Peer>,
    /// When [`Detector::newly_dead`] looked last (our previous tick).
    last_check: Option<Instant>,
    /// How long we ourselves were not running, all told: each gap between
    /// two ticks beyond two intervals, less the interval we expected. A
    /// member is dead when it was silent for the timeout *while we
    /// watched*: a host (or our thread) stalled for longer than the timeout
    /// wakes to every member silent for as long — their heartbeats were not
    /// sent, or wait unread in our socket — and must not revoke them all
    /// (a whole 2-vCPU host stalled 400 ms under load and the three
    /// anchors of a test cluster revoked each other's leases at once).
    stalled: Duration,
    /// The last heartbeat with a working etcd from a sender that is not a
    /// member we know (one that joined while our view of etcd was stale).
    stranger_works: Option<Instant>,
}

impl Detector {
    pub fn new(interval: Duration, misses: u32) -> Detector {
        Detector {
            interval,
            timeout: interval * misses,
            peers: HashMap::new(),
            last_check: None,
            stalled: Duration::ZERO,
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
                renewed: None,
                stalled_then: self.stalled,
            });
            p.addr = *addr;
        }
    }

    /// A heartbeat `b` from `from`: alive (if `from` is its member's
    /// address; then true).
    pub fn heard(&mut self, now: Instant, from: IpAddr, b: &Beat) -> bool {
        match self.peers.get_mut(b.name) {
            Some(p) if p.addr.ip() == from => {
                p.last = now;
                p.stalled_then = self.stalled;
                p.dead = false;
                p.etcd_works = Some(b.etcd_works);
                // Counted from its arrival: the network's delay only makes
                // the renewal look later (the side that stops holding).
                p.renewed = b.renewed_ago.and_then(|a| now.checked_sub(a));
                return true;
            }
            Some(_) => {}
            None if b.etcd_works => self.stranger_works = Some(now),
            None => {}
        }
        false
    }

    /// Is every other member heard (within the timeout) and none of them,
    /// nor anyone else who sent us a heartbeat, with a working etcd? Then
    /// nobody can take an address over from us now: a takeover needs etcd.
    /// `since`: when our own keepalives started going unanswered; members
    /// whose word is older than that make it [`Quiet::Pending`].
    pub fn quiet(&self, now: Instant, since: Option<Instant>) -> Quiet {
        let fresh = |t: Instant| now.saturating_duration_since(t) <= self.timeout;
        if self.stranger_works.is_some_and(fresh) {
            return Quiet::No;
        }
        let mut pending = false;
        for p in self.peers.values() {
            if !fresh(p.last) {
                return Quiet::No;
            }
            match p.etcd_works {
                Some(false) => {}
                Some(true) if p.renewed.zip(since).is_some_and(|(r, s)| r < s) => pending = true,
                _ => return Quiet::No,
            }
        }
        if pending {
            Quiet::Pending
        } else {
            Quiet::Yes
        }
    }

    /// Members that just went silent for the whole timeout (each reported
    /// once). Called at every tick: a gap since the previous call longer
    /// than two intervals is time we did not watch, and no one's silence
    /// counts it.
    pub fn newly_dead(&mut self, now: Instant) -> Vec<String> {
        if let Some(prev) = self.last_check.replace(now) {
            let gap = now.saturating_duration_since(prev);
            if gap > self.interval * 2 {
                self.stalled += gap - self.interval;
            }
        }
        let mut out = Vec::new();
        for (name, p) in &mut self.peers {
            let silent = now
                .saturating_duration_since(p.last)
                .saturating_sub(self.stalled - p.stalled_then);
            if !p.dead && silent > self.timeout {
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

/// Our etcd, as the control loop sees it (for our heartbeats and for
/// [`Detector::quiet`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OurEtcd {
    /// Until when our etcd counts as working.
    pub works_until: Option<Instant>,
    /// When our last answered keepalive was sent.
    pub renewed: Option<Instant>,
    /// Since when our keepalives go unanswered.
    pub unanswered_since: Option<Instant>,
}

/// What the heartbeats carry and learn about etcd: ours (read), whether
/// everyone else is heard without it ([`Detector::quiet`], published).
pub(crate) struct EtcdSense {
    pub ours: watch::Receiver<OurEtcd>,
    pub quiet: watch::Sender<Quiet>,
    /// When each member was heard last: the control loop looks again
    /// before it acts on a report of one's death (`control::member_died`).
    pub heard: Heard,
}

/// When each member was heard last (shared with the control loop).
pub(crate) type Heard = Arc<std::sync::Mutex<HashMap<String, Instant>>>;

/// Notes that `d` heard `b` from `from`, in `heard` too when it counts.
fn note(d: &mut Detector, heard: &Heard, from: IpAddr, b: &Beat) {
    let now = Instant::now();
    if d.heard(now, from, b) {
        if let Ok(mut h) = heard.lock() {
            h.insert(b.name.to_string(), now);
        }
    }
}

fn publish(d: &Detector, sense: &EtcdSense) {
    let since = sense.ours.borrow().unanswered_since;
    sense.quiet.send_if_modified(|q| {
        let now = d.quiet(Instant::now(), since);
        std::mem::replace(q, now) != now
    });
}

/// Datagrams read before judging who is silent, at most, at each tick.
const DRAIN_MAX: usize = 256;

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
                let now = Instant::now();
                let ours = *sense.ours.borrow();
                let hb = encode(&Beat {
                    name: &me.0,
                    lease: me.1,
                    etcd_works: ours.works_until.is_some_and(|t| now < t),
                    renewed_ago: ours.renewed.map(|r| now.saturating_duration_since(r)),
                });
                for t in d.targets() {
                    let _ = socket.send_to(&hb, t).await;
                }
                // What waits in the socket first: after a stall of our
                // own thread, the heartbeats sent meanwhile are there (a
                // bounded read: a flood at this port must not stop our
                // own heartbeats).
                for _ in 0..DRAIN_MAX {
                    let Ok((n, from)) = socket.try_recv_from(&mut buf) else {
                        break;
                    };
                    if let Some(b) = decode(&buf[..n]) {
                        note(&mut d, &sense.heard, from.ip(), &b);
                    }
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
                    if let Some(b) = decode(&buf[..n]) {
                        note(&mut d, &sense.heard, from.ip(), &b);
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

    fn beat(name: &str, etcd_works: bool) -> Beat<'_> {
        Beat {
            name,
            lease: 7,
            etcd_works,
            renewed_ago: None,
        }
    }

    /// `d` ticks every interval (100 ms) from its last tick up to `to`, as
    /// the task does: the members reported dead on the way.
    fn tick_to(d: &mut Detector, to: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(next) = d.last_check.map(|p| p + d.interval).filter(|n| *n < to) {
            out.extend(d.newly_dead(next));
        }
        out.extend(d.newly_dead(to));
        out
    }

    /// `d` hears `name` from `ip` at `t`.
    fn hear(d: &mut Detector, t: Instant, name: &str, ip: &str, works: bool) {
        d.heard(t, ip.parse().unwrap(), &beat(name, works));
    }

    #[test]
    fn heartbeat_round_trip_and_garbage() {
        let x = Beat {
            name: "a2",
            lease: 0x1234,
            etcd_works: false,
            renewed_ago: Some(Duration::from_millis(1500)),
        };
        let b = encode(&x);
        assert_eq!(
            b,
            [
                b"PMHB\x03".as_slice(),
                &[0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0x05, 0xdc, 2],
                b"a2"
            ]
            .concat()
        );
        assert_eq!(decode(&b), Some(x));
        let y = beat("a2", true);
        assert_eq!(decode(&encode(&y)), Some(y));
        // An age beyond the field is as old as it can say, not unknown.
        let old = Beat {
            renewed_ago: Some(Duration::from_secs(10_000_000)),
            ..y
        };
        let got = decode(&encode(&old)).unwrap().renewed_ago.unwrap();
        assert_eq!(got.as_millis(), u128::from(AGE_UNKNOWN - 1));
        // Version 1 (no flags): its etcd counts as working.
        let mut v1 = b"PMHB\x01".to_vec();
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(b"\x02a3");
        assert_eq!(
            decode(&v1),
            Some(Beat {
                lease: 9,
                ..beat("a3", true)
            })
        );
        assert_eq!(decode(&v1[..v1.len() - 1]), None, "truncated v1");
        // Version 2: a flag, no age.
        let mut v2 = b"PMHB\x02".to_vec();
        v2.extend_from_slice(&9i64.to_be_bytes());
        v2.extend_from_slice(b"\x00\x02a3");
        assert_eq!(
            decode(&v2),
            Some(Beat {
                lease: 9,
                ..beat("a3", false)
            })
        );
        assert_eq!(decode(&v2[..v2.len() - 1]), None, "truncated v2");
        for n in 0..b.len() {
            assert_eq!(decode(&b[..n]), None, "truncated to {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long), None, "trailing bytes");
        assert_eq!(decode(b"PMHB\x04.............."), None, "other version");
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
        hear(&mut d, t0 + ms(300), "a2", "10.0.0.2", true);
        // a3 is never heard; a spoofed a2 from elsewhere does not count.
        hear(&mut d, t0 + ms(600), "a2", "10.0.0.9", true);
        assert!(tick_to(&mut d, t0 + ms(400)).is_empty());
        assert_eq!(tick_to(&mut d, t0 + ms(401)), ["a3"]);
        assert!(tick_to(&mut d, t0 + ms(650)).is_empty(), "a3 reported once");
        assert_eq!(tick_to(&mut d, t0 + ms(701)), ["a2"]);
        assert!(d.is_dead("a2"));
        // Heard again: alive, and reported again when silent again.
        hear(&mut d, t0 + ms(800), "a2", "10.0.0.2", true);
        assert!(!d.is_dead("a2"));
        assert_eq!(tick_to(&mut d, t0 + ms(1201)), ["a2"]);
    }

    #[test]
    fn our_own_stall_is_not_the_members_silence() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(ms(100), 4);
        d.set_members(t0, &[("a2".into(), addr("10.0.0.2:1"))]);
        hear(&mut d, t0 + ms(50), "a2", "10.0.0.2", true);
        assert!(tick_to(&mut d, t0 + ms(100)).is_empty());
        // We do not run from t0+100 to t0+700 (the host stalled): a2, last
        // heard at t0+50, was silent 650 ms by the clock but 50 + 100 while
        // we watched.
        assert!(
            d.newly_dead(t0 + ms(700)).is_empty(),
            "a stall is not silence"
        );
        // Watched on, it gets the rest of its timeout and no more.
        assert!(tick_to(&mut d, t0 + ms(950)).is_empty());
        assert_eq!(tick_to(&mut d, t0 + ms(960)), ["a2"]);
        // Heard after the stall: counted from then, as ever.
        hear(&mut d, t0 + ms(1000), "a2", "10.0.0.2", true);
        assert!(tick_to(&mut d, t0 + ms(1400)).is_empty());
        assert_eq!(tick_to(&mut d, t0 + ms(1401)), ["a2"]);
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
        assert_eq!(tick_to(&mut d, t0 + ms(320)), ["a2"]);
        assert!(tick_to(&mut d, t0 + ms(540)).is_empty());
        assert_eq!(tick_to(&mut d, t0 + ms(551)), ["a3"]);
        d.set_members(t0 + ms(600), &[]);
        assert!(d.targets().is_empty());
    }

    #[test]
    fn quiet_only_while_every_member_is_heard_without_etcd() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(ms(100), 4);
        assert!(
            d.quiet(t0, None) == Quiet::Yes,
            "alone: nobody to take over"
        );
        d.set_members(
            t0,
            &[
                ("a2".into(), addr("10.0.0.2:1")),
                ("a3".into(), addr("10.0.0.3:1")),
            ],
        );
        assert!(d.quiet(t0, None) != Quiet::Yes, "not heard yet");
        hear(&mut d, t0 + ms(50), "a2", "10.0.0.2", false);
        assert!(d.quiet(t0 + ms(60), None) != Quiet::Yes, "a3 not heard yet");
        hear(&mut d, t0 + ms(70), "a3", "10.0.0.3", false);
        assert!(d.quiet(t0 + ms(80), None) == Quiet::Yes);
        // a3 says its etcd works: someone could take over.
        hear(&mut d, t0 + ms(100), "a3", "10.0.0.3", true);
        assert!(d.quiet(t0 + ms(110), None) != Quiet::Yes);
        hear(&mut d, t0 + ms(150), "a3", "10.0.0.3", false);
        assert!(d.quiet(t0 + ms(160), None) == Quiet::Yes);
        // a2 silent past the timeout: it may be cut off from us, not from etcd.
        hear(&mut d, t0 + ms(400), "a3", "10.0.0.3", false);
        assert!(d.quiet(t0 + ms(451), None) != Quiet::Yes);
        hear(&mut d, t0 + ms(460), "a2", "10.0.0.2", false);
        assert!(d.quiet(t0 + ms(470), None) == Quiet::Yes);
        // A stranger (joined while our view was stale) with a working etcd.
        hear(&mut d, t0 + ms(480), "a9", "10.0.0.9", true);
        assert!(d.quiet(t0 + ms(490), None) != Quiet::Yes);
        hear(&mut d, t0 + ms(700), "a2", "10.0.0.2", false);
        hear(&mut d, t0 + ms(700), "a3", "10.0.0.3", false);
        assert!(d.quiet(t0 + ms(700), None) != Quiet::Yes);
        assert!(
            d.quiet(t0 + ms(881), None) == Quiet::Yes,
            "the stranger's word lasts one timeout"
        );
        // A spoofed "no etcd" from another address does not count.
        hear(&mut d, t0 + ms(890), "a3", "10.0.0.3", true);
        hear(&mut d, t0 + ms(895), "a3", "10.0.0.8", false);
        assert!(d.quiet(t0 + ms(900), None) != Quiet::Yes);
    }

    #[test]
    fn word_of_a_renewal_before_our_keepalives_failed_is_pending() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(ms(100), 4);
        d.set_members(
            t0,
            &[
                ("a2".into(), addr("10.0.0.2:1")),
                ("a3".into(), addr("10.0.0.3:1")),
            ],
        );
        let renewed = |name, ago| Beat {
            renewed_ago: Some(ms(ago)),
            ..beat(name, true)
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Our keepalives unanswered since t0+500. a2 renewed at t0+300
        // (heard at t0+600, 300 ms old) and still says its etcd works.
        d.heard(t0 + ms(600), ip("10.0.0.2"), &renewed("a2", 300));
        hear(&mut d, t0 + ms(600), "a3", "10.0.0.3", false);
        let since = Some(t0 + ms(500));
        assert_eq!(d.quiet(t0 + ms(650), since), Quiet::Pending);
        // Without our own failure to compare with, its word counts.
        assert_eq!(d.quiet(t0 + ms(650), None), Quiet::No);
        // It renews again (after our keepalives failed): it reaches a quorum.
        d.heard(t0 + ms(900), ip("10.0.0.2"), &renewed("a2", 50));
        assert_eq!(d.quiet(t0 + ms(950), since), Quiet::No);
        // Its word ends: nobody has etcd.
        hear(&mut d, t0 + ms(1000), "a2", "10.0.0.2", false);
        hear(&mut d, t0 + ms(1000), "a3", "10.0.0.3", false);
        assert_eq!(d.quiet(t0 + ms(1050), since), Quiet::Yes);
        // A sender that cannot say when it renewed (version 2) counts.
        hear(&mut d, t0 + ms(1100), "a2", "10.0.0.2", true);
        assert_eq!(d.quiet(t0 + ms(1150), since), Quiet::No);
        // One not heard for the timeout: no.
        d.heard(t0 + ms(1200), ip("10.0.0.2"), &renewed("a2", 1000));
        hear(&mut d, t0 + ms(1200), "a3", "10.0.0.3", false);
        assert_eq!(d.quiet(t0 + ms(1250), since), Quiet::Pending);
        assert_eq!(d.quiet(t0 + ms(1601), since), Quiet::No);
    }
}
