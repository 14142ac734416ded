//! Registration revocation from the HA (RFC 3543 §4): the revocation to the
//! PMA a subscriber left (or an operator released), retransmitted until acknowledged.
use std::cmp::Reverse;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::auth::{self, SecurityAssociation};
use super::super::transport::signed_to;
use super::super::wire::ext::{AuthKind, ExtRepr};
use super::super::wire::{RevocationAckRepr, RevocationRepr, PORT};
use super::{Ha, HaEvent, PendingRevocation, TimerKey};
use crate::agent::{Peer, Transmit};

impl Ha {
    /// RFC 3543 §4: tell the old PMA its binding is gone; retransmitted until acknowledged.
    pub(super) fn send_revocation(
        &mut self,
        now: Instant,
        old_pma: Ipv4Addr,
        home: Ipv4Addr,
        nai: &str,
    ) {
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
        self.tx.push_back(Transmit::new(
            Peer::V4(SocketAddrV4::new(old_pma, PORT)),
            payload.clone(),
        ));
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

    pub(super) fn on_revocation_ack(&mut self, src: SocketAddrV4, payload: &[u8], id: u32) {
        if self.authentic_pma(src, payload).is_none() {
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

impl Ha {
    /// A Registration Revocation from a PMA (RFC 3543 §5, the foreign domain
    /// revoking: A clear): the device left. The binding it names through that
    /// PMA goes — when revocation was negotiated for it (§3.2) — and the PMA
    /// gets an authenticated acknowledgement either way, so it stops
    /// retransmitting. An identifier not newer than the last is a replay
    /// (§6): acknowledged, not acted on.
    pub(super) fn on_pma_revocation(
        &mut self,
        src: SocketAddrV4,
        payload: &[u8],
        r: RevocationRepr,
    ) {
        let pma = *src.ip();
        let Some(sa) = self.authentic_pma(src, payload) else {
            return;
        };
        let fresh = auth::fresh_revocation(&mut self.pma_revocation_ids, pma, r.revocation_id);
        if !fresh {
            self.counters.pma_revocations_stale += 1;
        }
        let nai = r.nai().or_else(|| {
            let (n, _) = self
                .bindings
                .iter()
                .find(|(_, b)| b.home == r.home_address && b.pma == pma)?;
            Some(n.clone())
        });
        let ours = nai.filter(|n| {
            self.bindings
                .get(n)
                .is_some_and(|b| b.pma == pma && b.revocable)
        });
        match ours {
            Some(nai) if fresh && !r.a_bit => {
                self.remove_binding(&nai);
                self.counters.pma_revocations += 1;
                self.events.push_back(HaEvent::Deregistered { nai });
            }
            Some(_) => {}
            None => self.counters.pma_revocations_unknown += 1,
        }
        let ack = RevocationAckRepr {
            i_bit: false,
            home_address: r.home_address,
            revocation_id: r.revocation_id,
            extensions: vec![],
        }
        .to_bytes();
        // To the port the revocation came from (the PMA's 434 as a rule).
        self.tx.push_back(signed_to(ack, &sa, src));
    }

    /// The association of the PMA `payload` comes from, if it is known and
    /// the FA-HA authenticator is valid; if not, counted.
    fn authentic_pma(&mut self, src: SocketAddrV4, payload: &[u8]) -> Option<SecurityAssociation> {
        let Some(peer) = self.peers.get(src.ip()) else {
            self.counters.rx_unknown_peer += 1;
            return None;
        };
        let sa = peer.sa.clone();
        if auth::verify_with(payload, AuthKind::FaHa, &sa).is_err() {
            self.counters.bad_authenticator += 1;
            return None;
        }
        Some(sa)
    }
}
