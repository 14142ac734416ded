//! MAG-initiated binding revocation (RFC 5846 §8.2, §9.2): towards an LMA
//! configured for it (`peers[].revocation`), a subscriber that leaves is
//! revoked with a BRI instead of a lifetime-0 PBU, and at shutdown every
//! binding through that LMA goes with one global BRI (G flag, bulk).
//! Retransmitted like a PBU until the BRA with the same sequence number.
use std::time::{Duration, Instant};

use super::super::wire::{
    self, br_flags, revocation_trigger, Message, MobilityOption, RevocationAck,
    RevocationIndication,
};
use super::{Mag, MagEvent, State};
use crate::dataplane::AccessPoint;

/// A global BRI waiting for its BRA.
#[derive(Clone, Debug)]
pub(super) struct BulkBri {
    lma: usize,
    retx: u32,
    timeout: Duration,
    pub(super) deadline: Instant,
}

impl Mag {
    /// Whether bindings through LMA `lma` leave by revocation.
    pub(super) fn revokes(&self, lma: usize) -> bool {
        self.cfg.revoke_to.contains(&self.lmas[lma].cfg.addr)
    }

    /// Sends (or resends) the BRI revoking `at`: MN-ID and link-layer
    /// identifier name the session, P set (RFC 5846 §6.1); a retransmission
    /// keeps the sequence number (§7), so a late BRA still matches.
    pub(super) fn send_bri(&mut self, now: Instant, at: AccessPoint) {
        let first = self.entries.get(&at).is_some_and(|e| e.retx == 0);
        let seq = if first { self.next_seq() } else { 0 };
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        if first {
            e.seq = seq;
        }
        let seq = e.seq;
        let peer = self.lmas[e.lma].peer;
        let mut options = vec![MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: e.req.mn_id.clone(),
        }];
        // RFC 5846 §6.1: the Home Network Prefix option "MUST be present
        // when the BRI is used to revoke a single Proxy MIPv6 Binding Cache
        // entry" — the session's prefix, when it was granted one (an
        // IPv4-only session has none; its MN-ID and link-layer identifier
        // name it).
        if let Some(h) = e.granted.as_ref().or(e.last.as_ref()).and_then(|g| g.hnp) {
            options.push(MobilityOption::HomeNetworkPrefix {
                prefix_len: h.len,
                prefix: h.prefix,
            });
        }
        options.push(MobilityOption::MnLinkLayerId(at.mac.to_vec()));
        let deadline = now + e.timeout;
        let bri = Message::RevocationIndication(RevocationIndication {
            trigger: revocation_trigger::ACCESS_NETWORK_SESSION_TERMINATION,
            seq,
            flags: br_flags::P,
            options,
        });
        self.queue(peer, &bri);
        self.counters.bri_sent += 1;
        self.arm(at, deadline);
    }

    /// Shutdown: bindings through an LMA we revoke at go at once with one
    /// global BRI per LMA; the others are deregistered one by one.
    pub fn detach_all(&mut self, now: Instant) {
        let mut ats: Vec<AccessPoint> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state != State::Deregistering)
            .map(|(a, _)| *a)
            .collect();
        ats.sort_unstable();
        let mut bulk_lmas = Vec::new();
        for at in ats {
            let lma = self.entries[&at].lma;
            if !self.revokes(lma) {
                self.detach(now, at);
                continue;
            }
            self.remove_entry(&at);
            self.events.push_back(MagEvent::Deregistered { at });
            if !bulk_lmas.contains(&lma) {
                bulk_lmas.push(lma);
            }
        }
        for lma in bulk_lmas {
            let seq = self.next_seq();
            let b = BulkBri {
                lma,
                retx: 0,
                timeout: self.cfg.retx_initial,
                deadline: now + self.cfg.retx_initial,
            };
            self.send_global_bri(seq, lma);
            self.bulk.insert(seq, b);
        }
    }

    fn send_global_bri(&mut self, seq: u16, lma: usize) {
        // RFC 5846 §9.2: G set, the trigger "Per-Peer Policy", and an MN-ID
        // option with the MAG's identity — here the proxy-CoA the LMA
        // knows us by, as text (an LMA "MUST reject" a per-peer global BRI
        // without it, §8.2). It asks for every binding with this proxy-CoA.
        let peer = self.lmas[lma].peer;
        let identity = self
            .cfg
            .local
            .for_peer(&peer)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let bri = Message::RevocationIndication(RevocationIndication {
            trigger: revocation_trigger::PER_PEER_POLICY,
            seq,
            flags: br_flags::P | br_flags::G,
            options: vec![MobilityOption::MnId {
                subtype: crate::pmipv6::wire::option::MN_ID_SUBTYPE_NAI,
                id: identity.into_bytes(),
            }],
        });
        self.queue(peer, &bri);
        self.counters.bri_sent += 1;
    }

    /// Retransmits the global BRIs that are due, up to `max_retx`.
    pub(super) fn on_bulk_timers(&mut self, now: Instant) {
        let due: Vec<u16> = self
            .bulk
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let Some(b) = self.bulk.get_mut(&seq) else {
                continue;
            };
            if b.retx >= self.cfg.max_retx {
                self.bulk.remove(&seq);
                continue;
            }
            b.retx += 1;
            b.timeout = (b.timeout * 2).min(self.cfg.retx_max);
            b.deadline = now + b.timeout;
            let lma = b.lma;
            self.counters.bri_retransmitted += 1;
            self.send_global_bri(seq, lma);
        }
    }

    /// The LMA's answer to one of our BRIs: the revocation is done.
    pub(super) fn on_bra(&mut self, lma: usize, bra: RevocationAck) {
        self.counters.bra_rx += 1;
        if self.bulk.get(&bra.seq).is_some_and(|b| b.lma == lma) {
            self.bulk.remove(&bra.seq);
            return;
        }
        let at = self
            .entries
            .iter()
            .find(|(_, e)| e.lma == lma && e.revoking && e.seq == bra.seq)
            .map(|(a, _)| *a);
        match at {
            Some(at) => {
                self.remove_entry(&at);
                self.events.push_back(MagEvent::Deregistered { at });
            }
            None => self.counters.bra_unmatched += 1,
        }
    }

    /// The attachments a global BRI from LMA `lma` names (RFC 5846 §9.1):
    /// without an MN-ID every one with that LMA; with a wildcard "@realm"
    /// those of the realm; with an NAI that MN's.
    pub(super) fn global_targets(&self, lma: usize, mn_id: Option<&[u8]>) -> Vec<AccessPoint> {
        // "@realm": the NAIs of that realm, its case aside (RFC 4282 §2.1).
        let realm = mn_id.and_then(|m| m.strip_prefix(b"@"));
        let names = |e: &&super::Entry| match (mn_id, realm) {
            (_, Some(r)) => crate::agent::registrar::in_realm(&e.req.mn_id, r),
            (Some(id), None) => e.req.mn_id == id,
            (None, None) => true,
        };
        let mut v: Vec<AccessPoint> = self
            .entries
            .iter()
            .filter(|(_, e)| e.lma == lma)
            .filter(|(_, e)| names(e))
            .map(|(a, _)| *a)
            .collect();
        v.sort_unstable();
        v
    }
}
