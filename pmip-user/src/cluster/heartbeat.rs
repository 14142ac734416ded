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
//! [`Detector`] is the sans-IO core (who is due to be declared dead);
//! [`run`] moves the datagrams.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// First bytes of a heartbeat: "PMHB", version 1.
const MAGIC: &[u8; 5] = b"PMHB\x01";

/// A heartbeat: the sender's member name and incarnation (its lease).
pub(crate) fn encode(member: &str, lease: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAGIC.len() + 9 + member.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&lease.to_be_bytes());
    b.push(member.len().min(255) as u8);
    b.extend_from_slice(&member.as_bytes()[..member.len().min(255)]);
    b
}

/// The sender's (member, lease) of a heartbeat; None for anything else.
pub(crate) fn decode(b: &[u8]) -> Option<(&str, i64)> {
    let rest = b.strip_prefix(MAGIC.as_slice())?;
    let lease = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let n = usize::from(*rest.get(8)?);
    let name = std::str::from_utf8(rest.get(9..9 + n)?).ok()?;
    (rest.len() == 9 + n).then_some((name, lease))
}

#[derive(Clone, Debug)]
struct Peer {
    addr: SocketAddr,
    /// Heard last (or, never heard, when we started watching it).
    last: Instant,
    dead: bool,
}

/// Who is alive, from the heartbeats heard.
#[derive(Debug)]
pub(crate) struct Detector {
    timeout: Duration,
    peers: HashMap<String, Peer>,
}

impl Detector {
    pub(crate) fn new(interval: Duration, misses: u32) -> Detector {
        Detector {
            timeout: interval * misses,
            peers: HashMap::new(),
        }
    }

    /// The other members as etcd lists them now: new ones get a full
    /// timeout of grace, departed ones are forgotten.
    pub(crate) fn set_members(&mut self, now: Instant, members: &[(String, SocketAddr)]) {
        self.peers
            .retain(|name, _| members.iter().any(|(n, _)| n == name));
        for (name, addr) in members {
            let p = self.peers.entry(name.clone()).or_insert(Peer {
                addr: *addr,
                last: now,
                dead: false,
            });
            p.addr = *addr;
        }
    }

    /// A heartbeat from `name` at `from`: alive (if `from` is its address).
    pub(crate) fn heard(&mut self, now: Instant, name: &str, from: IpAddr) {
        if let Some(p) = self.peers.get_mut(name) {
            if p.addr.ip() == from {
                p.last = now;
                p.dead = false;
            }
        }
    }

    /// Members that just went silent for the whole timeout (each reported once).
    pub(crate) fn newly_dead(&mut self, now: Instant) -> Vec<String> {
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

    pub(crate) fn targets(&self) -> Vec<SocketAddr> {
        self.peers.values().map(|p| p.addr).collect()
    }
}

/// What the heartbeat task is told: the other members and where they are.
pub(crate) type Members = Vec<(String, SocketAddr)>;

/// Sends and hears heartbeats until `members` closes; reports each member
/// that goes silent on `dead`. Runs on the etcd runtime (its own thread),
/// so a busy daemon still sends its heartbeats on time.
pub(crate) async fn run(
    socket: Arc<UdpSocket>,
    me: (String, i64),
    (interval, misses): (Duration, u32),
    mut members: watch::Receiver<Members>,
    dead: mpsc::UnboundedSender<String>,
) {
    let mut d = Detector::new(interval, misses);
    let hb = encode(&me.0, me.1);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = [0u8; 512];
    d.set_members(Instant::now(), &members.borrow_and_update());
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for t in d.targets() {
                    let _ = socket.send_to(&hb, t).await;
                }
                for name in d.newly_dead(Instant::now()) {
                    if dead.send(name).is_err() {
                        return;
                    }
                }
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    if let Some((name, _)) = decode(&buf[..n]) {
                        d.heard(Instant::now(), name, from.ip());
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
        let b = encode("a2", 0x1234);
        assert_eq!(decode(&b), Some(("a2", 0x1234)));
        assert_eq!(decode(&b[..b.len() - 1]), None, "truncated");
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long), None, "trailing bytes");
        assert_eq!(decode(b"PMHB\x02........"), None, "other version");
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
        d.heard(t0 + ms(300), "a2", "10.0.0.2".parse().unwrap());
        // a3 is never heard; a spoofed a2 from elsewhere does not count.
        d.heard(t0 + ms(600), "a2", "10.0.0.9".parse().unwrap());
        assert!(d.newly_dead(t0 + ms(400)).is_empty());
        assert_eq!(d.newly_dead(t0 + ms(401)), ["a3"]);
        assert!(d.newly_dead(t0 + ms(650)).is_empty(), "a3 reported once");
        assert_eq!(d.newly_dead(t0 + ms(701)), ["a2"]);
        assert!(d.is_dead("a2"));
        // Heard again: alive, and reported again when silent again.
        d.heard(t0 + ms(800), "a2", "10.0.0.2".parse().unwrap());
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
}
