//! Heartbeats with each LMA (RFC 5847): answering its requests, sending ours,
//! and re-registering everything when the LMA restarted or went silent.
use std::time::Instant;

use super::super::wire::{
    be_status, BindingError, HandoffIndicator, Heartbeat, Message, OptionsExt,
};
use super::{Mag, State};
use crate::agent::Peer;
use crate::dataplane::AccessPoint;

impl Mag {
    /// A Heartbeat from LMA `lma`, sent from `from` (over IPv4, its UDP
    /// port: a request is answered to where it came from, as the LMA
    /// answers our PBUs, RFC 5844 §3.1 — not to the configured port).
    pub(super) fn on_heartbeat(&mut self, now: Instant, (lma, from): (usize, Peer), hb: Heartbeat) {
        self.counters.heartbeat_rx += 1;
        if !hb.response {
            // RFC 5847 §3: answer a request with the same sequence number.
            self.queue(from, &Heartbeat::response(hb.seq, self.cfg.restart_counter));
        } else if hb.unsolicited {
            // U (RFC 5847 §5.1): a response we did not ask for, no sequence
            // number to match; what counts is its Restart Counter (below).
        } else {
            let l = &mut self.lmas[lma];
            if !l.hb_outstanding || hb.seq != l.hb_seq {
                self.counters.rx_unexpected_message += 1;
                return;
            }
            l.hb_outstanding = false;
            l.hb_missed = 0;
            l.hb_up = Some(true);
            // Heartbeats answered again: an LMA that was away is back.
            self.anchor_answered(now, lma, None);
        }
        // RFC 5847 §3.4: the Restart Counter "is only valid in a Heartbeat
        // Response message".
        if let Some(rc) = hb.restart_counter().filter(|_| hb.response) {
            let l = &mut self.lmas[lma];
            let restarted = l.restart_counter.is_some_and(|old| old != rc);
            l.restart_counter = Some(rc);
            if restarted {
                // RFC 5847 §4: the LMA lost its bindings; register them again.
                self.counters.lma_restart_detected += 1;
                // It may do GRE keys now (RFC 5845 §4.2 fallback undone).
                self.lmas[lma].no_gre_key = false;
                self.reregister_all(now, lma);
            }
        }
    }

    /// After a start that lost the session state (the store held no node
    /// record, so the Restart Counter is new): "an unsolicited Heartbeat
    /// Response message with an incremented Restart Counter to all the
    /// PMIPv6 nodes that had previously established PMIPv6 sessions" (RFC
    /// 5847 §3.2) — each configured LMA, as the LMAs we had sessions with
    /// are not known any more. An LMA that still holds our bindings learns
    /// at once that they are stale, rather than at its next heartbeat. None
    /// with heartbeats off.
    pub fn announce_restart(&mut self) {
        if self.cfg.heartbeat_interval.is_zero() {
            return;
        }
        let msg = Heartbeat::unsolicited(self.cfg.restart_counter);
        for i in 0..self.lmas.len() {
            let peer = self.lmas[i].peer;
            self.counters.heartbeat_unsolicited_sent += 1;
            self.queue(peer, &msg);
        }
    }

    /// Sends a fresh PBU for every binding on `lma`.
    pub(super) fn reregister_all(&mut self, now: Instant, lma: usize) {
        let ats: Vec<AccessPoint> = self
            .entries
            .iter()
            .filter(|(_, e)| e.lma == lma && e.state != State::Deregistering)
            .map(|(a, _)| *a)
            .collect();
        for at in ats {
            self.counters.reregistrations += 1;
            if let Some(e) = self.entries.get_mut(&at) {
                e.state = State::Registering;
                e.retx = 0;
                e.timeout = self.cfg.retx_initial;
                // RFC 5213 §8.4 value 5: re-registration, nothing moved.
                e.handoff = HandoffIndicator::HandoffStateNotChanged;
            }
            self.send_pbu(now, at, false);
        }
    }

    pub(super) fn on_heartbeat_timer(&mut self, now: Instant, lma: usize) {
        let l = &mut self.lmas[lma];
        l.hb_deadline = now + self.cfg.heartbeat_interval;
        if l.hb_unsupported {
            return;
        }
        // RFC 5847 §3: "If there are no proxy Binding Cache entries at the
        // LMA for any of the mobile nodes attached to the MAG, then the
        // Heartbeat message SHOULD NOT be sent." The misses count afresh
        // from the next binding; the last state seen stays shown.
        if !self.entries.values().any(|e| e.lma == lma) {
            let l = &mut self.lmas[lma];
            l.hb_outstanding = false;
            l.hb_missed = 0;
            return;
        }
        let l = &mut self.lmas[lma];
        if l.hb_outstanding {
            l.hb_missed += 1;
            self.counters.heartbeat_missed += 1;
            // RFC 5847 §3: unreachable when the missed count *exceeds*
            // MISSING_HEARTBEATS_ALLOWED.
            if l.hb_missed > self.cfg.heartbeat_missing_limit {
                // RFC 5847 §4: treat the LMA as having lost state — once,
                // when it stops answering. While it stays silent, every
                // further limit reached would send all its bindings' PBUs
                // again with their back-off reset: a storm towards an
                // anchor that is away, which the outage handling
                // (`outage.rs`) already waits out and recovers from.
                l.hb_missed = 0;
                let was_up = l.hb_up != Some(false);
                l.hb_up = Some(false);
                l.restart_counter = None;
                if was_up {
                    self.counters.lma_restart_detected += 1;
                    self.reregister_all(now, lma);
                }
            }
        }
        // Heartbeats go on to an LMA that is away: its answer is how we
        // learn it is back.
        let l = &mut self.lmas[lma];
        l.hb_seq = l.hb_seq.wrapping_add(1);
        l.hb_outstanding = true;
        let msg = Message::Heartbeat(Heartbeat {
            unsolicited: false,
            response: false,
            seq: l.hb_seq,
            // The Restart Counter goes in responses only (§3.4).
            options: vec![],
        });
        let peer = l.peer;
        self.counters.heartbeat_sent += 1;
        self.queue(peer, &msg);
    }

    /// A Binding Error from an LMA (RFC 6275 §6.1.9). Status 2 while a
    /// heartbeat of ours is outstanding answers it: the LMA does not do RFC
    /// 5847, and "the initiating MAG or the LMA MUST NOT use Heartbeat
    /// messages with the other end again" (§3) — nor take it for down, and
    /// re-register everything, for not answering them.
    pub(super) fn on_binding_error(&mut self, lma: usize, be: &BindingError) {
        self.counters.binding_error_rx += 1;
        let l = &mut self.lmas[lma];
        if be.status == be_status::UNRECOGNIZED_MH_TYPE && l.hb_outstanding && !l.hb_unsupported {
            l.hb_unsupported = true;
            l.hb_outstanding = false;
            l.hb_missed = 0;
            l.hb_up = None;
            self.counters.heartbeat_unsupported += 1;
            tracing::info!(lma = %l.peer.ip(), "the LMA does not support heartbeats (Binding Error): none sent to it again");
        }
    }
}
