//! When the HA does not answer or refuses us: retransmission with back-off
//! (capped at `retransmission_max_ms`), failover to the subscriber's
//! alternate HA, hold-downs instead of a permanent ban after 149/150, and
//! every subscriber of an HA registered again at once when it is back.
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{attempt_cap, Phase, Pma};

const REFUSAL_HOLD: Duration = Duration::from_secs(5);
const REFUSAL_HOLD_MAX: Duration = Duration::from_secs(300);

/// An HA that refused proxy registration (149/150, draft §8.1): not used
/// again until `until`; the hold-down doubles with each refusal.
#[derive(Clone, Copy, Debug)]
pub(super) struct Refusal {
    until: Instant,
    count: u32,
}

impl Pma {
    /// Whether `ha` refused us and its hold-down is still running.
    pub(super) fn is_refused(&self, ha: Ipv4Addr, now: Instant) -> bool {
        self.refused.get(&ha).is_some_and(|r| r.until > now)
    }

    /// `ha` refused proxy registration: hold it down, longer each time.
    pub(super) fn refuse(&mut self, ha: Ipv4Addr, now: Instant) {
        // A refusal is a configuration mismatch, not a lost message: the draft
        // (§8.1) says stop asking; we ask again after a hold-down that starts
        // at REFUSAL_HOLD and doubles up to REFUSAL_HOLD_MAX (issue 11: never
        // for good, so a fixed HA is used again without a restart).
        let base = REFUSAL_HOLD.max(Duration::from_millis(self.cfg.retransmission_timeout_ms));
        let max = REFUSAL_HOLD_MAX.max(base);
        let count = self.refused.get(&ha).map_or(0, |r| r.count);
        let hold = base.saturating_mul(1u32 << count.min(16)).min(max);
        self.refused.insert(
            ha,
            Refusal {
                until: now + hold,
                count: count.saturating_add(1),
            },
        );
        self.mark_down(ha);
    }

    fn mark_down(&mut self, ha: Ipv4Addr) {
        if self.down.insert(ha) {
            self.counters.ha_down += 1;
            tracing::warn!(%ha, "HA not answering");
        }
    }

    /// The retransmission timer of `nai`'s request fired.
    pub(super) fn on_retx_timeout(&mut self, now: Instant, nai: &str) {
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        s.next_retx = None;
        if std::mem::take(&mut s.resync_resend) {
            // The resend a 133 asked for (reply.rs): the HA answered.
            self.send_request(now, nai);
            return;
        }
        let cap = attempt_cap(&self.cfg, s);
        if s.attempts >= cap {
            let (ha, phase) = (s.ha(), s.phase);
            self.mark_down(ha);
            if phase != Phase::Deregistering && self.switch_to_alternate(now, nai, true) {
                self.send_request(now, nai);
                return;
            }
            if phase != Phase::Registered {
                self.counters.registration_timeouts += 1;
                self.give_up(nai, phase, None);
                return;
            }
            // Registered: never given up while the lifetime runs (it ends
            // with `Expired`); asked again every back-off, at most
            // `retransmission_max_ms` apart.
            let max = Duration::from_millis(self.cfg.retransmission_max_ms);
            let base = Duration::from_millis(self.cfg.retransmission_timeout_ms);
            if let Some(s) = self.sessions.get_mut(nai) {
                s.backoff = Some((s.backoff.unwrap_or(base) * 2).min(max.max(base)));
            }
            self.send_request(now, nai);
            return;
        }
        let fo = &self.cfg.ha_failover;
        if fo.enabled
            && s.phase == Phase::Registering
            && s.has.len() > 1
            && s.attempts_this_ha >= fo.num_attempts_before_switching.max(1)
        {
            self.switch_to_alternate(now, nai, false);
        }
        self.send_request(now, nai);
    }

    /// Moves `nai` to the next HA of its list that is not held down (with
    /// `once`: only off the primary, the alternate's attempts start anew).
    /// False if there is none.
    fn switch_to_alternate(&mut self, now: Instant, nai: &str, once: bool) -> bool {
        let Some(s) = self.sessions.get(nai) else {
            return false;
        };
        if s.has.len() < 2 || s.assigned_ha.is_some() || (once && s.ha_idx != 0) {
            return false;
        }
        let Some(next) = (1..s.has.len())
            .map(|i| (s.ha_idx + i) % s.has.len())
            .find(|&i| !self.is_refused(s.has[i], now))
        else {
            return false;
        };
        let s = self.sessions.get_mut(nai).expect("checked above");
        if next == s.ha_idx {
            return false;
        }
        tracing::info!(%nai, from = %s.has[s.ha_idx], to = %s.has[next], "failing over to the alternate HA");
        s.ha_idx = next;
        s.attempts_this_ha = 0;
        if once {
            s.attempts = 0;
        }
        if s.phase == Phase::Registered {
            // A new binding at the alternate, with its own address.
            s.home = s.sub.static_home;
        }
        self.counters.ha_failovers += 1;
        true
    }

    /// `ha` accepted a registration after it was away: every other
    /// subscriber on it is registered again at once (it may have lost its
    /// bindings; those waiting in back-off need not wait).
    pub(super) fn anchor_answered(&mut self, now: Instant, ha: Ipv4Addr, except: &str) {
        self.refused.remove(&ha);
        if !self.down.remove(&ha) {
            return;
        }
        self.counters.ha_returned += 1;
        tracing::info!(%ha, "HA answers again: registering its subscribers");
        let waiting: Vec<String> = self
            .sessions
            .iter()
            .filter(|(n, s)| *n != except && s.ha() == ha && s.phase != Phase::Deregistering)
            .map(|(n, _)| n.clone())
            .collect();
        for nai in waiting {
            if let Some(s) = self.sessions.get_mut(&nai) {
                s.renew_at = None;
            }
            self.counters.reregistrations += 1;
            self.start_transaction(now, &nai);
        }
    }
}
