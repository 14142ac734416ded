//! Registration revocation from the HA (RFC 3543 §4): the revocation to the
//! PMA a subscriber left (or an operator released), retransmitted until acknowledged.
use std::cmp::Reverse;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::auth;
use super::super::wire::ext::{AuthKind, ExtRepr};
use super::super::wire::{RevocationRepr, PORT};
use super::{Ha, PendingRevocation, TimerKey};
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
        let Some(peer) = self.peers.get(src.ip()) else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        let sa = &peer.sa;
        if auth::verify(payload, AuthKind::FaHa, |spi| (spi == sa.spi).then_some(sa)).is_err() {
            self.counters.bad_authenticator += 1;
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
