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
    /// RFC 3543 §4.2.2.1: tell the old PMA its binding of `home` is gone
    /// (`to` = (PMA, home address)); retransmitted until acknowledged, at
    /// most until `until` (the end of that registration's normal life).
    pub(super) fn send_revocation(
        &mut self,
        now: Instant,
        to: (Ipv4Addr, Ipv4Addr),
        nai: &str,
        until: Instant,
    ) {
        if !self.cfg.revocation || !self.peers.contains_key(&to.0) {
            return;
        }
        let interval = Duration::from_millis(self.cfg.revocation_timeout_ms)
            .max(auth::REVOCATION_MIN_INTERVAL);
        self.revocations.insert(
            to,
            PendingRevocation {
                nai: nai.to_string(),
                ids: Vec::new(),
                retries_left: self.cfg.revocation_retries,
                next: now,
                interval,
                until,
            },
        );
        self.transmit_revocation(now, to);
    }

    /// Sends the pending revocation `to` with a fresh identifier — our
    /// current timestamp, from the clock of our Revocation Support
    /// extensions (§3.3, §3.5; a retransmission updates it, §4.2.2.1) —
    /// and arms its retransmission.
    fn transmit_revocation(&mut self, now: Instant, to: (Ipv4Addr, Ipv4Addr)) {
        let (Some(r), Some(peer)) = (self.revocations.get_mut(&to), self.peers.get(&to.0)) else {
            return;
        };
        let id = auth::ntp_seconds(self.clock.ntp(now));
        let mut payload = RevocationRepr {
            a_bit: true,
            i_bit: false,
            home_address: to.1,
            home_domain_address: self.cfg.address,
            foreign_domain_address: to.0,
            revocation_id: id,
            extensions: vec![ExtRepr::Nai(r.nai.as_bytes().to_vec())],
        }
        .to_bytes();
        auth::append_auth(&mut payload, AuthKind::FaHa, &peer.sa);
        if !r.ids.is_empty() {
            self.counters.revocation_retransmissions += 1;
            r.interval = (r.interval * 2).min(MAX_REVOCATION_INTERVAL);
        }
        r.ids.push(id);
        r.next = now + r.interval;
        let next = r.next;
        self.tx.push_back(Transmit::new(
            Peer::V4(SocketAddrV4::new(to.0, PORT)),
            payload,
        ));
        self.counters.revocations_sent += 1;
        self.timers
            .push(Reverse((next, TimerKey::Revocation(to.0, to.1))));
    }

    /// The retransmission timer of the revocation `to`, armed for `at`.
    pub(super) fn revocation_timer(&mut self, now: Instant, at: Instant, to: (Ipv4Addr, Ipv4Addr)) {
        let Some(r) = self.revocations.get_mut(&to) else {
            return;
        };
        if r.next != at {
            return; // superseded by a newer revocation of the same binding
        }
        if r.retries_left == 0 || now >= r.until {
            if let Some(r) = self.revocations.remove(&to) {
                self.persist(&r.nai);
            }
            self.counters.revocation_timeouts += 1;
            return;
        }
        r.retries_left -= 1;
        self.transmit_revocation(now, to);
    }

    /// A Revocation Acknowledgement from a PMA (§3.4): it ends the pending
    /// revocation of that home address to that PMA when it carries the
    /// identifier of one of its transmissions (§3.5).
    pub(super) fn on_revocation_ack(
        &mut self,
        src: SocketAddrV4,
        payload: &[u8],
        a: &RevocationAckRepr,
    ) {
        if self.authentic_pma(src, payload).is_none() {
            return;
        }
        let key = (*src.ip(), a.home_address);
        if self
            .revocations
            .get(&key)
            .is_some_and(|r| r.ids.contains(&a.revocation_id))
        {
            if let Some(r) = self.revocations.remove(&key) {
                self.persist(&r.nai);
            }
            self.counters.revocation_acks += 1;
        }
    }
}

/// The longest wait between two transmissions of one revocation.
const MAX_REVOCATION_INTERVAL: Duration = Duration::from_secs(8);

impl Ha {
    /// A Registration Revocation from a PMA (RFC 3543 §4.2.3.2, the foreign
    /// domain revoking: A clear): the device left. The binding it names
    /// through that PMA goes — when revocation was negotiated for it (§3.2)
    /// — and is acknowledged; one we do not hold (or not through that PMA,
    /// or without revocation) is acknowledged too, so the PMA stops
    /// retransmitting. Silently discarded (§3.5): a reflection of our own
    /// (A set), a replay (an identifier older than the newest from that PMA
    /// by more than the window, §6.2), and a revocation that does not
    /// follow the binding's registration (its identifier not after the
    /// timestamp the PMA put in that request, §4.2.3.2) — a retransmission
    /// carries a newer one.
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
        if r.a_bit || auth::revocation_replayed(&mut self.pma_revocation_ids, pma, r.revocation_id)
        {
            self.counters.pma_revocations_stale += 1;
            return;
        }
        // §4.2.3.2: the binding is the one the revocation's addresses name
        // — the home address, the foreign domain address (the care-of
        // address it was registered with, the PMA it came from) and the
        // home domain address (ours); an NAI extension, when the PMA adds
        // one, must name the same binding. Anything else names no binding
        // of ours (acknowledged all the same, below).
        let names = |b: &super::Binding| {
            b.home == r.home_address && b.pma == r.foreign_domain_address && b.pma == pma
        };
        let nai = if r.home_domain_address != self.cfg.address {
            None
        } else {
            match r.nai() {
                Some(n) => self.bindings.get(&n).filter(|b| names(b)).map(|_| n),
                None => self
                    .bindings
                    .iter()
                    .find(|(_, b)| names(b))
                    .map(|(n, _)| n.clone()),
            }
        };
        let ours = nai.and_then(|n| {
            let b = self.bindings.get(&n)?;
            b.revocable.then_some((n, b.revocation_stamp))
        });
        match ours {
            Some((_, stamp)) if !auth::revocation_follows(stamp, r.revocation_id) => {
                self.counters.pma_revocations_stale += 1;
                return;
            }
            Some((nai, _)) => {
                self.remove_binding(&nai);
                self.counters.pma_revocations += 1;
                self.events.push_back(HaEvent::Deregistered { nai });
            }
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
        // The association it was signed with signs our answer.
        match auth::verify_with(payload, AuthKind::FaHa, &peer.sa) {
            Ok(spi) => peer.sa.by_spi(spi).cloned(),
            Err(_) => {
                self.counters.bad_authenticator += 1;
                None
            }
        }
    }
}
