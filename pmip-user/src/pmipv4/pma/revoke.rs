//! PMA-initiated registration revocation (RFC 3543 §5, the foreign domain
//! revoking): towards an HA configured for it (`peers[].revocation`) that
//! advertised Revocation Support in its last reply (§3.2), a device that
//! leaves is revoked — A clear, Home Address, Home and Foreign Domain
//! Addresses, a fresh Revocation Identifier, the NAI, FA-HA authenticated
//! (§6) — instead of deregistered, and retransmitted until acknowledged.
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::auth;
use super::super::transport::signed;
use super::super::wire::ext::ExtRepr;
use super::super::wire::{RevocationAckRepr, RevocationRepr};
use super::{Pma, Session};

impl Pma {
    /// Called as a session starts leaving: revoke rather than deregister?
    pub(super) fn choose_revocation(&mut self, nai: &str) {
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        let ha = s.ha();
        if s.ha_revocation && s.home.is_some() && self.cfg.revoke_to.contains(&IpAddr::V4(ha)) {
            s.revoking = Some(Vec::new());
        }
    }

    /// Sends (or resends) the revocation of `nai`'s binding, with a fresh
    /// identifier: our current timestamp, from the clock of our Revocation
    /// Support extensions (RFC 3543 §3.3, §3.5; a retransmission updates
    /// it, §4.2.3.1), at most one a second (§4.2.3.1).
    pub(super) fn send_revocation(&mut self, now: Instant, nai: &str) {
        let id = auth::ntp_seconds(auth::ntp_from_system(self.clock.wall(now)));
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        let (ha, Some(ids), Some(home)) = (s.ha(), s.revoking.as_mut(), s.home) else {
            return;
        };
        ids.push(id);
        let Some(peer) = self.cfg.home_agents.iter().find(|p| p.address == ha) else {
            return;
        };
        let payload = RevocationRepr {
            a_bit: false,
            i_bit: false,
            home_address: home,
            home_domain_address: ha,
            foreign_domain_address: self.cfg.address,
            revocation_id: id,
            extensions: vec![ExtRepr::Nai(s.sub.nai.as_bytes().to_vec())],
        }
        .to_bytes();
        self.tx.push_back(signed(payload, &peer.sa, ha));
        if s.attempts > 0 {
            self.counters.retransmissions += 1;
        }
        self.counters.revocations_sent += 1;
        s.attempts += 1;
        s.pending_ident = None;
        let wait = Duration::from_millis(self.cfg.retransmission_timeout_ms)
            .max(auth::REVOCATION_MIN_INTERVAL);
        s.next_retx = Some(now + wait);
        self.arm(nai);
    }

    /// The HA acknowledged one of our revocations (RFC 3543 §3.4): done.
    pub(super) fn on_revocation_ack(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        payload: &[u8],
        a: RevocationAckRepr,
    ) {
        if self
            .authentic_ha(now, src, payload, "revocation acknowledgement")
            .is_none()
        {
            return;
        }
        // The ack of any of its transmissions (a late one counts), for its
        // home address (RFC 3543 §3.5).
        let ours = |s: &Session| {
            s.ha() == *src.ip()
                && s.home == Some(a.home_address)
                && s.revoking
                    .as_ref()
                    .is_some_and(|ids| ids.contains(&a.revocation_id))
        };
        let nai = self
            .sessions
            .iter()
            .find(|(_, s)| ours(s))
            .map(|(n, _)| n.clone());
        match nai {
            Some(n) => {
                self.counters.revocation_acks += 1;
                self.drop_session(&n);
            }
            None => self.counters.rx_unmatched += 1,
        }
    }
}
