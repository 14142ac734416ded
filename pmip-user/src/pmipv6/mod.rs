//! Proxy Mobile IPv6 (RFC 5213, 5844, 5845, 5846, 5847).
//!
//! - [`wire`]      — Mobility Header codecs (PBU/PBA/Heartbeat/BRI/BRA and options).
//! - [`mag`]       — the Mobile Access Gateway state machine (sans-IO).
//! - [`lma`]       — the Local Mobility Anchor state machine (sans-IO).
//! - [`transport`] — the tokio shell: raw IPv6 MH socket and IPv4/UDP 5436.
//!
//! Both state machines follow the same shape: `handle(now, peer, bytes)` for
//! a received Mobility Header, `poll_transmit()` for messages to send,
//! `poll_dp()` for data-plane commands, `poll_timeout()` / `handle_timeout(now)`
//! for timers. The shell owns the sockets, the clock and the data plane.
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod lma;
pub mod mag;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod sim_tests;

/// A signaling peer and the transport used to reach it: a raw Mobility
/// Header over IPv6, or a Mobility Header in UDP over IPv4 (RFC 5844 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    V6(Ipv6Addr),
    V4(SocketAddrV4),
}

impl Peer {
    pub fn ip(&self) -> IpAddr {
        match self {
            Peer::V6(a) => IpAddr::V6(*a),
            Peer::V4(s) => IpAddr::V4(*s.ip()),
        }
    }

    /// A peer at `ip`: IPv6 addresses use the MH transport, IPv4 addresses
    /// UDP on `port` (5436 towards an LMA).
    pub fn from_ip(ip: IpAddr, port: u16) -> Peer {
        match ip {
            IpAddr::V6(a) => Peer::V6(a),
            IpAddr::V4(a) => Peer::V4(SocketAddrV4::new(a, port)),
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        match self {
            Peer::V6(a) => SocketAddr::new(IpAddr::V6(*a), 0),
            Peer::V4(s) => SocketAddr::V4(*s),
        }
    }
}

/// A Mobility Header ready to send: for [`Peer::V6`] its checksum is
/// already computed over our local address and the peer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub payload: Vec<u8>,
}

/// Our own signaling addresses, one per transport family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    pub v6: Option<Ipv6Addr>,
    pub v4: Option<Ipv4Addr>,
}

impl LocalAddrs {
    /// Our address in the family of `peer`.
    pub fn for_peer(&self, peer: &Peer) -> Option<IpAddr> {
        match peer {
            Peer::V6(_) => self.v6.map(IpAddr::V6),
            Peer::V4(_) => self.v4.map(IpAddr::V4),
        }
    }

    /// Checksum mode for messages exchanged with `peer`.
    pub fn checksum(&self, peer: &Peer) -> Option<wire::Checksum> {
        match peer {
            Peer::V6(p) => self.v6.map(|l| wire::Checksum::Ipv6 { src: l, dst: *p }),
            Peer::V4(_) => Some(wire::Checksum::None),
        }
    }

    /// Checksum mode for a message received from `peer`.
    pub fn rx_checksum(&self, peer: &Peer) -> Option<wire::Checksum> {
        match peer {
            Peer::V6(p) => self.v6.map(|l| wire::Checksum::Ipv6 { src: *p, dst: l }),
            Peer::V4(_) => Some(wire::Checksum::None),
        }
    }
}

/// Maps the monotonic `now` to RFC 5213 §8.8 timestamps (48-bit seconds
/// since 1970, 16-bit fraction), anchored on one wall-clock reading so that
/// simulated time moves the timestamps too.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_instant: Instant,
    base_wall: Duration,
}

impl Clock {
    pub fn new(now: Instant, wall: SystemTime) -> Self {
        Clock {
            base_instant: now,
            base_wall: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// The timestamp for `now`.
    pub fn timestamp(&self, now: Instant) -> u64 {
        let d = self.base_wall + now.saturating_duration_since(self.base_instant);
        (d.as_secs() << 16) | ((u64::from(d.subsec_nanos()) << 16) / 1_000_000_000)
    }
}

/// Signed difference `a - b` between two timestamps, as a duration magnitude.
pub fn timestamp_distance(a: u64, b: u64) -> Duration {
    let diff = a.abs_diff(b);
    Duration::from_secs(diff >> 16) + Duration::from_nanos(((diff & 0xffff) * 1_000_000_000) >> 16)
}

/// Allocates small unique ids (subscriber ids, GRE keys) starting at 1;
/// freed ids are reused in FIFO order so a key is not handed out again at once.
/// Reserved ids (held by the data plane from an earlier run) are never handed
/// out until released.
#[derive(Debug, Default)]
pub struct IdAlloc {
    next: u32,
    free: VecDeque<u32>,
    /// Reuse freed ids only once this many are waiting.
    reuse_after: usize,
    reserved: std::collections::HashSet<u32>,
}

impl IdAlloc {
    pub fn new(reuse_after: usize) -> Self {
        IdAlloc {
            next: 0,
            free: VecDeque::new(),
            reuse_after,
            reserved: Default::default(),
        }
    }
    pub fn alloc(&mut self) -> Option<u32> {
        loop {
            let id = if self.free.len() > self.reuse_after || self.next == u32::MAX {
                self.free.pop_front()?
            } else {
                self.next += 1;
                self.next
            };
            if !self.reserved.contains(&id) {
                return Some(id);
            }
        }
    }
    pub fn release(&mut self, id: u32) {
        if !self.reserved.remove(&id) || id <= self.next {
            self.free.push_back(id);
        }
    }
    /// Keeps `id` from being handed out (it is in use elsewhere) until released.
    pub fn reserve(&mut self, id: u32) {
        if id != 0 {
            self.reserved.insert(id);
        }
    }
}

#[cfg(test)]
mod id_alloc_tests {
    use super::IdAlloc;

    #[test]
    fn reserved_ids_are_never_handed_out() {
        let mut a = IdAlloc::new(0);
        a.reserve(1);
        a.reserve(3);
        let got: Vec<u32> = (0..3).filter_map(|_| a.alloc()).collect();
        assert_eq!(got, vec![2, 4, 5]);
        // Released once the data plane lets go of it: then it may be reused.
        a.release(1);
        a.release(2);
        let next: Vec<u32> = (0..2).filter_map(|_| a.alloc()).collect();
        assert_eq!(next, vec![1, 2]);
    }

    #[test]
    fn a_reserved_id_ahead_of_the_counter_is_not_reused_twice() {
        let mut a = IdAlloc::new(0);
        a.reserve(5);
        a.release(5);
        let got: Vec<u32> = (0..6).filter_map(|_| a.alloc()).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    }
}
