//! Admission of attaches on the access side: what a flood of new MACs may
//! cost the gateway, the anchor and the address pool (sans-IO, no clock).
//!
//! Every attach — a DHCP DISCOVER/REQUEST from an unknown client, or data
//! from an unknown MAC reported by the fast path — asks [`Admission::admit`]
//! first. It is refused when
//! - the MAC's last registration failed and its back-off has not run out
//!   (doubling from `backoff_initial` to `backoff_max`);
//! - its access link, or the gateway, already has the most pending attaches
//!   (admitted, not yet leased or failed): each holds a home address at the
//!   anchor, so this caps what a flood can take from the pool;
//! - its access link, or the gateway, has used its registration attempts of
//!   the last second (token buckets; one link's flood leaves the others
//!   their share).
//!
//! A refusal costs nothing: no signaling, no state kept for the MAC (its
//! DHCP client tries again). New-MAC reports have their own budget
//! ([`Admission::new_mac_report`]) before they get this far.
//!
//! Memory after a flood: the tables are bounded by the caps, and
//! [`Admission::housekeeping`] forgets old back-offs and shrinks the tables
//! once they are mostly empty, telling the caller that a flood is over.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dataplane::AccessPoint;

/// `[admission]`, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    pub max_pending_per_link: u32,
    pub max_pending: u32,
    pub attempts_per_s_per_link: u32,
    pub attempts_per_s: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub new_mac_reports_per_s: u32,
}

/// Why an attach was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The MAC failed recently; it may try again at this instant.
    BackOff(Instant),
    LinkPending,
    Pending,
    LinkRate,
    Rate,
}

/// How an admitted attach ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Registered and leased (or registered, for an attach without DHCP).
    Done,
    /// Refused, timed out or abandoned (no REQUEST after the OFFER): back off.
    Failed,
    /// The subscriber left before it finished (RELEASE, operator): no back-off.
    Left,
}

/// Counters for `show stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AdmissionStats {
    pub admitted: u64,
    pub refused_backoff: u64,
    pub refused_link_pending: u64,
    pub refused_pending: u64,
    pub refused_link_rate: u64,
    pub refused_rate: u64,
    pub failed: u64,
    /// Pending attaches given up by [`Admission::housekeeping`] (no outcome came).
    pub expired: u64,
    pub new_mac_reports: u64,
    pub new_mac_reports_dropped: u64,
    /// Now: attaches pending, MACs backing off.
    pub pending: u64,
    pub backing_off: u64,
}

/// A token bucket: `rate` tokens a second, at most `rate` stored.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate.max(1.0));
        self.last = now;
    }

    fn has(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    fn take(&mut self, now: Instant) -> bool {
        let ok = self.has(now);
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }
}

#[derive(Clone, Copy, Debug)]
struct BackOff {
    until: Instant,
    delay: Duration,
}

/// Most MACs remembered as backing off. Failures come only from admitted
/// attaches, so the rates bound this long before; it is a last guard.
const MAX_BACKOFFS: usize = 16_384;
/// A pending attach with no outcome after this long is given up (a lost
/// event must not hold a slot for ever).
const PENDING_TIMEOUT: Duration = Duration::from_secs(120);

type MacKey = (u32, [u8; 6]);

fn key(at: &AccessPoint) -> MacKey {
    (at.ifindex, at.mac)
}

/// The admission state of one access gateway.
#[derive(Debug)]
pub(crate) struct Admission {
    cfg: AdmissionConfig,
    /// Admitted attaches and when.
    pending: HashMap<AccessPoint, Instant>,
    pending_per_link: HashMap<u32, u32>,
    link_rate: HashMap<u32, Bucket>,
    rate: Bucket,
    new_macs: Bucket,
    backoff: HashMap<MacKey, BackOff>,
    stats: AdmissionStats,
    /// Refusals counted at the last housekeeping, and whether refusals
    /// were still coming then (a flood in progress).
    refused_seen: u64,
    flooding: bool,
}

/// What [`Admission::housekeeping`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Housekeeping {
    /// Pending attaches given up (no outcome came in time).
    pub stale: Vec<AccessPoint>,
    /// Refusals stopped since the last run: a flood is over, and the
    /// caller may give freed memory back to the system.
    pub flood_over: bool,
}

impl Admission {
    pub fn new(cfg: AdmissionConfig, now: Instant) -> Self {
        Admission {
            rate: Bucket::new(cfg.attempts_per_s, now),
            new_macs: Bucket::new(cfg.new_mac_reports_per_s, now),
            cfg,
            pending: HashMap::new(),
            pending_per_link: HashMap::new(),
            link_rate: HashMap::new(),
            backoff: HashMap::new(),
            stats: AdmissionStats::default(),
            refused_seen: 0,
            flooding: false,
        }
    }

    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            pending: self.pending.len() as u64,
            backing_off: self.backoff.len() as u64,
            ..self.stats
        }
    }

    pub(crate) fn is_pending(&self, at: &AccessPoint) -> bool {
        self.pending.contains_key(at)
    }

    /// May `at` start a registration now? Admitted attaches are pending
    /// until [`finish`](Self::finish).
    pub(crate) fn admit(&mut self, now: Instant, at: AccessPoint) -> Result<(), Refusal> {
        if self.pending.contains_key(&at) {
            return Ok(()); // the same attach asked again: no new attempt
        }
        let r = self.check(now, &at);
        match r {
            Ok(()) => {
                self.stats.admitted += 1;
                self.pending.insert(at, now);
                *self.pending_per_link.entry(at.ifindex).or_default() += 1;
            }
            Err(Refusal::BackOff(_)) => self.stats.refused_backoff += 1,
            Err(Refusal::LinkPending) => self.stats.refused_link_pending += 1,
            Err(Refusal::Pending) => self.stats.refused_pending += 1,
            Err(Refusal::LinkRate) => self.stats.refused_link_rate += 1,
            Err(Refusal::Rate) => self.stats.refused_rate += 1,
        }
        r
    }

    fn check(&mut self, now: Instant, at: &AccessPoint) -> Result<(), Refusal> {
        if let Some(b) = self.backoff.get(&key(at)) {
            if now < b.until {
                return Err(Refusal::BackOff(b.until));
            }
        }
        let on_link = self.pending_per_link.get(&at.ifindex).copied().unwrap_or(0);
        if on_link >= self.cfg.max_pending_per_link {
            return Err(Refusal::LinkPending);
        }
        if self.pending.len() >= self.cfg.max_pending as usize {
            return Err(Refusal::Pending);
        }
        let per_link = self.cfg.attempts_per_s_per_link;
        let link = self
            .link_rate
            .entry(at.ifindex)
            .or_insert_with(|| Bucket::new(per_link, now));
        if !link.has(now) {
            return Err(Refusal::LinkRate);
        }
        if !self.rate.take(now) {
            return Err(Refusal::Rate);
        }
        link.take(now);
        Ok(())
    }

    /// The attach of `at` ended; a failure starts or doubles its back-off.
    pub fn finish(&mut self, now: Instant, at: &AccessPoint, outcome: Outcome) {
        if self.pending.remove(at).is_some() {
            if let Some(n) = self.pending_per_link.get_mut(&at.ifindex) {
                *n = n.saturating_sub(1);
            }
        }
        match outcome {
            Outcome::Done => {
                self.backoff.remove(&key(at));
            }
            Outcome::Left => {}
            Outcome::Failed => {
                self.stats.failed += 1;
                self.back_off(now, at);
            }
        }
    }

    fn back_off(&mut self, now: Instant, at: &AccessPoint) {
        let k = key(at);
        let delay = match self.backoff.get(&k) {
            Some(b) => (b.delay * 2).min(self.cfg.backoff_max),
            None => self.cfg.backoff_initial,
        };
        if !self.backoff.contains_key(&k) && self.backoff.len() >= MAX_BACKOFFS {
            self.forget_backoffs(now);
            if self.backoff.len() >= MAX_BACKOFFS {
                return;
            }
        }
        self.backoff.insert(
            k,
            BackOff {
                until: now + delay,
                delay,
            },
        );
    }

    /// A new-MAC report from the fast path (data from a MAC without a
    /// binding): true when it may go on to [`admit`](Self::admit).
    pub(crate) fn new_mac_report(&mut self, now: Instant) -> bool {
        let ok = self.new_macs.take(now);
        if ok {
            self.stats.new_mac_reports += 1;
        } else {
            self.stats.new_mac_reports_dropped += 1;
        }
        ok
    }

    /// Back-offs are kept for one `backoff_max` after they run out, so a
    /// MAC failing again soon waits longer; then forgotten.
    fn forget_backoffs(&mut self, now: Instant) {
        let keep = self.cfg.backoff_max;
        self.backoff
            .retain(|_, b| now.saturating_duration_since(b.until) < keep);
    }

    fn refused(&self) -> u64 {
        let s = &self.stats;
        s.refused_backoff
            + s.refused_link_pending
            + s.refused_pending
            + s.refused_link_rate
            + s.refused_rate
            + s.new_mac_reports_dropped
    }

    /// Run now and then (every second): gives up pending attaches that never
    /// ended, forgets old back-offs, gives the memory of its tables back once
    /// they are mostly empty, and tells when a flood is over.
    pub(crate) fn housekeeping(&mut self, now: Instant) -> Housekeeping {
        let stale: Vec<AccessPoint> = self
            .pending
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= PENDING_TIMEOUT)
            .map(|(a, _)| *a)
            .collect();
        for a in &stale {
            self.stats.expired += 1;
            self.finish(now, a, Outcome::Left);
        }
        self.forget_backoffs(now);
        self.pending_per_link.retain(|_, n| *n > 0);
        // Links idle for a second have full buckets: nothing to remember.
        let per_link = f64::from(self.cfg.attempts_per_s_per_link);
        self.link_rate.retain(|_, b| {
            b.refill(now);
            b.tokens < per_link
        });
        // The pending table is capped; the back-offs can grow with a flood.
        shrink_if_sparse(&mut self.backoff);
        let refused = self.refused();
        let was = std::mem::replace(&mut self.flooding, refused != self.refused_seen);
        self.refused_seen = refused;
        Housekeeping {
            flood_over: was && !self.flooding,
            stale,
        }
    }
}

/// Gives a table's memory back once it is mostly empty (after a flood);
/// true when it did. Callers with tables of their own use the same rule.
pub(crate) fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) -> bool {
    if m.capacity() > 1024 && m.len() < m.capacity() / 8 {
        m.shrink_to_fit();
        return true;
    }
    false
}

#[cfg(test)]
mod tests;
