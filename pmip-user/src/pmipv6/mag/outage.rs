//! When the LMA does not answer or refuses us: retransmission with back-off
//! (capped at `retx_max`), failover to the subscriber's alternate LMA, and
//! re-registration of everyone at once when the LMA is back. A registered
//! subscriber is never given up while its LMA is away: its binding lapses
//! at lifetime end (the map entry goes, as the LMA's does), and it is
//! registered again, with the same address, as soon as the LMA answers.
use std::time::Instant;

use super::super::wire::HandoffIndicator;
use super::{FailReason, Mag, MagEvent, State};
use crate::dataplane::{AccessPoint, DpCommand};

impl Mag {
    /// The timer of a PBU waiting for its PBA fired (registration, refresh,
    /// re-registration or deregistration).
    pub(super) fn on_retx_timer(&mut self, now: Instant, at: AccessPoint) {
        let Some(e) = self.entries.get(&at) else {
            return;
        };
        let dereg = e.state == State::Deregistering;
        let expired = e.granted.as_ref().is_some_and(|g| g.expires <= now);
        if expired && !dereg {
            // No answer for the whole lifetime: the LMA is away.
            self.counters.lifetime_expired += 1;
            let lma = e.lma;
            self.mark_down(lma);
            self.lapse(at);
        }
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        if dereg && !e.revoking {
            // RFC 5213 §6.9.1.4: a de-registration is not retransmitted —
            // on its PBA, "or after INITIAL_BINDACK_TIMEOUT timeout waiting
            // for the reply", the entry goes (an LMA "MUST ignore" one it
            // cannot place, §5.3.5, and sends no PBA).
            self.counters.dereg_unanswered += 1;
            self.remove_entry(&at);
            self.events.push_back(MagEvent::Deregistered { at });
            return;
        }
        if e.retx < self.cfg.max_retx {
            // Exponential back-off, 1 s doubling up to 32 s.
            e.retx += 1;
            e.timeout = (e.timeout * 2).min(self.cfg.retx_max);
            if e.revoking {
                self.counters.bri_retransmitted += 1;
                self.send_bri(now, at);
                return;
            }
            self.counters.pbu_retransmitted += 1;
            self.send_pbu(now, at, dereg);
            return;
        }
        if dereg {
            self.remove_entry(&at);
            self.events.push_back(MagEvent::Deregistered { at });
            return;
        }
        let (lma, had) = (e.lma, e.granted.is_some() || e.last.is_some());
        let refused = e.transient.take();
        if let Some(alt) = e.alternate.take() {
            self.failover(now, at, alt);
            return;
        }
        // An LMA that answered "insufficient resources" to every try is
        // there: marking it down would register everyone on it again at its
        // next answer (an anchor cluster without an etcd quorum refuses new
        // bindings this way and keeps serving the others).
        if refused.is_none() {
            self.mark_down(lma);
        }
        if !had {
            self.counters.registration_timeouts += 1;
            let reason = refused.map_or(FailReason::Timeout, FailReason::Rejected);
            self.fail(at, reason);
            return;
        }
        // Registered before: keep trying, every `retx_max`, until the LMA
        // answers (then everyone on it is registered again at once).
        let e = self.entries.get_mut(&at).expect("checked above");
        e.timeout = self.cfg.retx_max;
        self.counters.pbu_retransmitted += 1;
        self.send_pbu(now, at, false);
    }

    /// The binding ran out while its LMA was away: the map entry goes (the
    /// LMA has let it go too), the grant is kept to ask for it again.
    fn lapse(&mut self, at: AccessPoint) {
        if let Some(b) = self.access_binding(&at) {
            self.dp.push_back(DpCommand::RemoveAccess(b));
        }
        if let Some(e) = self.entries.get_mut(&at) {
            e.last = e.granted.take();
            // A new binding at the LMA: re-registration, same address (HI 5).
            e.handoff = HandoffIndicator::HandoffStateNotChanged;
        }
        self.persist(at);
    }

    /// Moves a registration to the subscriber's alternate LMA: a new binding
    /// there (its own addresses), the old one left to lapse at the first.
    fn failover(&mut self, now: Instant, at: AccessPoint, alt: usize) {
        let old = self.access_binding(&at);
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        self.counters.failovers += 1;
        tracing::info!(
            nai = %String::from_utf8_lossy(&e.req.mn_id),
            from = %self.lmas[e.lma].cfg.addr,
            to = %self.lmas[alt].cfg.addr,
            "LMA does not answer: failing over to the alternate"
        );
        let from = e.lma;
        e.lma = alt;
        e.granted = None;
        e.last = None;
        e.retx = 0;
        e.timeout = self.cfg.retx_initial;
        e.handoff = HandoffIndicator::from(self.cfg.attach_handoff_indicator);
        if let Some(b) = old {
            self.dp.push_back(DpCommand::RemoveAccess(b));
        }
        self.persist(at);
        self.mark_down(from);
        self.send_pbu(now, at, false);
    }

    pub(super) fn mark_down(&mut self, lma: usize) {
        let l = &mut self.lmas[lma];
        if !l.down {
            l.down = true;
            self.counters.lma_down += 1;
            tracing::warn!(lma = %l.cfg.addr, "LMA not answering");
        }
    }

    /// The LMA refused this MAG (154): no new attach goes to it for a while
    /// (backing off, never for good); a registered subscriber keeps its
    /// binding and asks again after the hold-down; a new one moves to its
    /// alternate or fails.
    pub(super) fn on_refused(&mut self, now: Instant, at: AccessPoint, lma: usize) -> bool {
        let l = &mut self.lmas[lma];
        let hold = self
            .cfg
            .retx_initial
            .saturating_mul(1u32 << l.refusals.min(16))
            .min(self.cfg.retx_max);
        l.refusals = l.refusals.saturating_add(1);
        l.refused_until = Some(now + hold);
        self.mark_down(lma);
        let Some(e) = self.entries.get_mut(&at) else {
            return true;
        };
        if e.granted.is_none() && e.last.is_none() {
            return match e.alternate.take() {
                Some(alt) => {
                    self.failover(now, at, alt);
                    true
                }
                None => false,
            };
        }
        e.retx = self.cfg.max_retx;
        e.timeout = hold;
        self.arm(at, now + hold);
        true
    }

    /// The LMA answered after it was away: everyone registered with it is
    /// registered again at once (it may have lost its bindings, and those
    /// waiting in back-off need not wait), `except` the one just accepted.
    pub(super) fn anchor_answered(
        &mut self,
        now: Instant,
        lma: usize,
        except: Option<AccessPoint>,
    ) {
        let l = &mut self.lmas[lma];
        l.refused_until = None;
        l.refusals = 0;
        if !std::mem::take(&mut l.down) {
            return;
        }
        self.counters.lma_returned += 1;
        tracing::info!(lma = %l.cfg.addr, "LMA answers again: registering its subscribers");
        let waiting: Vec<AccessPoint> = self
            .entries
            .iter()
            .filter(|(a, e)| e.lma == lma && Some(**a) != except && e.state != State::Deregistering)
            .map(|(a, _)| *a)
            .collect();
        for at in waiting {
            self.counters.reregistrations += 1;
            if let Some(e) = self.entries.get_mut(&at) {
                e.state = State::Registering;
                e.retx = 0;
                e.timeout = self.cfg.retx_initial;
                if e.granted.is_none() {
                    e.handoff = HandoffIndicator::HandoffStateNotChanged;
                }
            }
            self.send_pbu(now, at, false);
        }
    }
}
