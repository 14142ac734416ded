//! ESP for the PMIPv6 signaling: what a transport calls between the state
//! machines and the raw ESP sockets ([`super::socket`]).
//!
//! - IPv6 transport: `IPv6 | ESP | Mobility Header`, next header 135. The
//!   Mobility Header's own checksum stays as the codec computed it (RFC 6275
//!   §6.1.1, over the outer addresses); the state machine verifies it.
//! - IPv4 transport (RFC 5844 §4): `IPv4 | ESP | UDP | Mobility Header`, next
//!   header 17. The UDP header is ours: source port `udp_port`, destination
//!   the peer's port; on receipt the destination port must be `udp_port`,
//!   and the peer is reported with its source port, where replies go.
//!
//! ```ignore
//! // send
//! let (dst, esp) = sig.protect(&transmit)?;   // SealError: counted, log and drop
//! esp_socket.send_to(dst, &esp).await?;
//! // receive
//! let (src, range) = esp_socket.recv_from(&mut buf).await?;
//! if let Ok((peer, mh)) = sig.unprotect(src, &buf[range]) {   // drops are counted
//!     endpoint.handle(now, peer, &mh);
//! }
//! // and on the plain MH / UDP 5436 sockets, for every message:
//! if sig.reject_unprotected(&peer) { continue; }
//! ```
use std::net::{IpAddr, SocketAddrV4};

use super::udp::{self, UdpPacket, UdpRepr};
use super::{DropReason, EspCounters, SaDb, SealError};
use crate::agent::{Peer, Transmit};
use crate::pmipv6::wire::IPPROTO_MH;
use crate::pmipv6::LocalAddrs;

const IPPROTO_UDP: u8 = 17;

/// The agent's SAs with its own signaling addresses and UDP port.
#[derive(Debug)]
pub struct SignalingEsp {
    db: SaDb,
    local: LocalAddrs,
    /// Our UDP port for PMIPv6 over IPv4 (5436 at an LMA, RFC 5844 §4).
    udp_port: u16,
}

impl SignalingEsp {
    pub fn new(db: SaDb, local: LocalAddrs, udp_port: u16) -> Self {
        SignalingEsp {
            db,
            local,
            udp_port,
        }
    }

    pub fn db(&self) -> &SaDb {
        &self.db
    }

    /// For sequence-number bookkeeping across restarts.
    pub fn db_mut(&mut self) -> &mut SaDb {
        &mut self.db
    }

    pub fn counters(&self) -> &EspCounters {
        self.db.counters()
    }

    /// Whether messages to and from `peer` go through ESP.
    pub fn protects(&self, peer: &Peer) -> bool {
        self.db.protects(&peer.ip())
    }

    /// `t` sealed for its peer: the destination address and the ESP packet
    /// to hand to the raw ESP socket of that family.
    pub fn protect(&mut self, t: &Transmit) -> Result<(IpAddr, Vec<u8>), SealError> {
        match t.peer {
            Peer::V6(dst) => {
                let esp = self.db.seal(&IpAddr::V6(dst), IPPROTO_MH, &t.payload)?;
                Ok((IpAddr::V6(dst), esp))
            }
            Peer::V4(dst) => {
                let dst_ip = IpAddr::V4(*dst.ip());
                // Without our IPv4 address there is no UDP checksum to compute.
                let Some(src) = self.local.v4 else {
                    return Err(self.db.refuse_seal(SealError::NoSa));
                };
                let d = udp::build(src, *dst.ip(), self.udp_port, dst.port(), &t.payload);
                let esp = self.db.seal(&dst_ip, IPPROTO_UDP, &d)?;
                Ok((dst_ip, esp))
            }
        }
    }

    /// Opens an ESP packet from `src`: the peer (with its UDP source port over
    /// IPv4) and the Mobility Header, or why it was dropped (counted).
    pub fn unprotect(&mut self, src: IpAddr, packet: &[u8]) -> Result<(Peer, Vec<u8>), DropReason> {
        let (local, port) = (self.local, self.udp_port);
        self.db
            .open_with(&src, packet, |nh, payload| match (src, nh, local.v4) {
                (IpAddr::V6(s), IPPROTO_MH, _) => Ok((Peer::V6(s), payload)),
                (IpAddr::V4(s), IPPROTO_UDP, Some(dst)) => {
                    let p = UdpPacket::new_checked(&payload[..])?;
                    let r = UdpRepr::parse(&p, s, dst)?;
                    if r.dst_port != port {
                        return Err(DropReason::BadInnerUdp("not our port"));
                    }
                    Ok((
                        Peer::V4(SocketAddrV4::new(s, r.src_port)),
                        p.payload().to_vec(),
                    ))
                }
                _ => Err(DropReason::WrongNextHeader(nh)),
            })
    }

    /// A message from `peer` that arrived without ESP: true (and counted)
    /// when the peer has SAs, so the transport must drop it.
    pub fn reject_unprotected(&mut self, peer: &Peer) -> bool {
        self.db.reject_unprotected(&peer.ip())
    }
}
