//! Heartbeats with the MAGs the LMA serves (RFC 5847): answering theirs,
//! sending ours, and releasing a MAG's bindings when it restarted.
use std::time::Instant;

use super::super::wire::{be_status, BindingError, Heartbeat, Message, OptionsExt};
use super::{Lma, MagPeer, TimerKey};
use crate::agent::registrar::GoneCause;
use crate::agent::Peer;
use std::net::IpAddr;

impl Lma {
    pub(super) fn on_heartbeat(&mut self, peer: Peer, hb: Heartbeat) {
        if !self.mags.contains(&peer.ip()) {
            self.counters.heartbeat_unconfigured_peer += 1;
            return;
        }
        self.counters.heartbeat_rx += 1;
        if !hb.response {
            self.queue(peer, &Heartbeat::response(hb.seq, self.cfg.restart_counter));
        } else if hb.unsolicited {
            // U (RFC 5847 §5.1): a response we did not ask for, no sequence
            // number to match; what counts is its Restart Counter (below).
        } else if let Some(m) = self.mag_peers.get_mut(&peer.ip()) {
            if m.hb_outstanding && m.hb_seq == hb.seq {
                m.hb_outstanding = false;
                m.hb_missed = 0;
                m.hb_up = Some(true);
            } else {
                self.counters.rx_unexpected_message += 1;
                return;
            }
        }
        // RFC 5847 §3.4: the Restart Counter "is only valid in a Heartbeat
        // Response message".
        let Some(rc) = hb.restart_counter().filter(|_| hb.response) else {
            return;
        };
        let m = (self.mag_peers.entry(peer.ip())).or_insert_with(|| MagPeer::new(peer));
        let restarted = m.restart_counter.is_some_and(|old| old != rc);
        m.restart_counter = Some(rc);
        if restarted {
            // RFC 5847 §4: the MAG lost its binding update list; the
            // bindings through it are stale, so release them.
            self.counters.mag_restart_detected += 1;
            let ip = peer.ip();
            let stale: Vec<u32> = self
                .bces
                .iter()
                .filter(|(_, b)| b.mag.ip() == ip && !b.deleting)
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                self.counters.bindings_dropped_on_mag_restart += 1;
                self.ended(id, GoneCause::Expired);
                self.delete(id);
            }
        }
    }

    /// After a start that lost the session state: an unsolicited Heartbeat
    /// Response with the new Restart Counter to each configured MAG (RFC
    /// 5847 §3.2; see `Mag::announce_restart`), so that a MAG still
    /// holding bindings with us registers them again at once. Over IPv4 to
    /// the MAG's registered port (RFC 5844 §4). None with heartbeats off.
    pub fn announce_restart(&mut self) {
        if self.cfg.heartbeat_interval.is_zero() {
            return;
        }
        let msg = Heartbeat::unsolicited(self.cfg.restart_counter);
        let mut mags: Vec<IpAddr> = self.mags.iter().copied().collect();
        mags.sort_unstable();
        for ip in mags {
            self.counters.heartbeat_unsolicited_sent += 1;
            self.queue(Peer::from_ip(ip, super::super::wire::UDP_PORT), &msg);
        }
    }

    /// Remembers a MAG that reached us, for heartbeats, and starts the
    /// heartbeat timer with the first one.
    pub(super) fn note_mag(&mut self, now: Instant, peer: Peer) {
        self.mag_peers
            .entry(peer.ip())
            .and_modify(|m| m.peer = peer)
            .or_insert_with(|| MagPeer::new(peer));
        if !self.hb_armed && !self.cfg.heartbeat_interval.is_zero() {
            self.hb_armed = true;
            self.arm(now + self.cfg.heartbeat_interval, TimerKey::Heartbeat);
        }
    }

    /// A binding cache entry through `mag` was made (`gained`) or went.
    pub(super) fn count_mag_bce(&mut self, mag: IpAddr, gained: bool) {
        if gained {
            *self.bces_per_mag.entry(mag).or_default() += 1;
        } else if let Some(n) = self.bces_per_mag.get_mut(&mag) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.bces_per_mag.remove(&mag);
            }
        }
    }

    pub(super) fn on_heartbeat_timer(&mut self, now: Instant) {
        let mut out = Vec::new();
        let serving = &self.bces_per_mag;
        for (ip, m) in self.mag_peers.iter_mut().filter(|(_, m)| !m.hb_unsupported) {
            // RFC 5847 §3: "the LMA SHOULD NOT send a Heartbeat Request
            // message to a MAG if there is no active Binding Cache entry
            // created by the MAG" — it still answers the MAG's. The count
            // of misses starts afresh with its next binding.
            if !serving.contains_key(ip) {
                m.hb_outstanding = false;
                m.hb_missed = 0;
                continue;
            }
            if m.hb_outstanding {
                m.hb_missed += 1;
                self.counters.heartbeat_missed += 1;
                // RFC 5847 §3: unreachable when the missed count *exceeds*
                // MISSING_HEARTBEATS_ALLOWED.
                if m.hb_missed == self.cfg.heartbeat_missing_limit + 1 {
                    // Path to the MAG is down (RFC 5847 §4); its bindings
                    // stay until they expire, the MAG may come back.
                    self.counters.mag_unreachable += 1;
                    m.hb_up = Some(false);
                }
            }
            m.hb_seq = m.hb_seq.wrapping_add(1);
            m.hb_outstanding = true;
            out.push((m.peer, m.hb_seq));
        }
        for (peer, seq) in out {
            self.counters.heartbeat_sent += 1;
            let msg = Message::Heartbeat(Heartbeat {
                unsolicited: false,
                response: false,
                seq,
                // The Restart Counter goes in responses only (§3.4).
                options: vec![],
            });
            self.queue(peer, &msg);
        }
        self.arm(now + self.cfg.heartbeat_interval, TimerKey::Heartbeat);
    }

    /// A Binding Error from a MAG (RFC 6275 §6.1.9). Status 2 while a
    /// heartbeat of ours is outstanding answers it: the MAG does not do RFC
    /// 5847, and "the initiating MAG or the LMA MUST NOT use Heartbeat
    /// messages with the other end again" (RFC 5847 §3) — nor count it
    /// unreachable for not answering them.
    pub(super) fn on_binding_error(&mut self, peer: Peer, be: &BindingError) {
        self.counters.binding_error_rx += 1;
        let Some(m) = self.mag_peers.get_mut(&peer.ip()) else {
            return;
        };
        if be.status == be_status::UNRECOGNIZED_MH_TYPE && m.hb_outstanding && !m.hb_unsupported {
            m.hb_unsupported = true;
            m.hb_outstanding = false;
            m.hb_missed = 0;
            m.hb_up = None;
            self.counters.heartbeat_unsupported += 1;
            tracing::info!(mag = %peer.ip(), "the MAG does not support heartbeats (Binding Error): none sent to it again");
        }
    }
}
