//! Proxy Mobile IPv6 (RFC 5213, 5844, 5845, 5846, 5847).
//!
//! - [`wire`]      — Mobility Header codecs (PBU/PBA/Heartbeat/BRI/BRA and options).
//! - [`mag`]       — the Mobile Access Gateway state machine (sans-IO).
//! - [`lma`]       — the Local Mobility Anchor state machine (sans-IO).
//! - [`transport`] — the tokio shell: raw IPv6 MH socket and IPv4/UDP 5436.
//!
//! Both state machines are [`crate::agent::Endpoint`]s, driven by the agent's
//! one shell over [`transport::Sockets`].
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::agent::Peer;

pub mod lma;
pub mod mag;
mod rx;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod sim_tests;

/// Our own signaling addresses, one per transport family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    pub v6: Option<Ipv6Addr>,
    pub v4: Option<Ipv4Addr>,
}

impl From<IpAddr> for LocalAddrs {
    /// One address: signaling in its family only.
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => LocalAddrs {
                v4: Some(a),
                v6: None,
            },
            IpAddr::V6(a) => LocalAddrs {
                v4: None,
                v6: Some(a),
            },
        }
    }
}

impl LocalAddrs {
    /// Our address in the family of `peer`.
    pub(crate) fn for_peer(&self, peer: &Peer) -> Option<IpAddr> {
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
    pub(crate) fn rx_checksum(&self, peer: &Peer) -> Option<wire::Checksum> {
        match peer {
            Peer::V6(p) => self.v6.map(|l| wire::Checksum::Ipv6 { src: *p, dst: l }),
            Peer::V4(_) => Some(wire::Checksum::None),
        }
    }
}
