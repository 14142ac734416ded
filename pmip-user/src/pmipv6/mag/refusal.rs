//! What an LMA refused an MN "until an administrative action is taken":
//! proxy registration itself (152, RFC 5213 §6.9.1.2 (7)), IPv4 mobility
//! service (170, RFC 5844 §3.2.3.2) or IPv6 mobility service (172, ibid.).
//!
//! The MAG remembers each such refusal by MN identifier and LMA, and asks
//! that LMA nothing of the kind for that MN again until the operator acts
//! (`pmipctl clear binding NAI` on the access gateway forgets it) or the
//! hold ends (`timers.lma_refusal_hold_s`; zero: nothing is remembered).
//! An attach refused outright (152, or the only family asked for refused)
//! fails at once without a PBU; a dual-stack one asks for the other family
//! alone. The hold is the operator's bound on "until": an MN provisioned at
//! the AAA after its refusal is served at its next attach after it, without
//! anybody having to remember the gateway.
//!
//! Memory is bounded: at most [`CAP`] MNs; a refusal beyond that makes room
//! by dropping the ones whose hold has ended, then the oldest.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::super::wire::BaStatus;
use super::AttachRequest;

/// Most MNs remembered at once.
pub(super) const CAP: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Refused {
    /// The LMA (its name's index in the MAG's list) that refused.
    lma: usize,
    proxy: bool,
    ipv4: bool,
    ipv6: bool,
    since: Instant,
    until: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Refusals {
    by_mn: HashMap<Vec<u8>, Refused>,
}

impl Refusals {
    /// Records `status` from LMA `lma` for `mn_id`, if it is one of the
    /// refusals that hold; returns whether it was.
    pub(super) fn record(
        &mut self,
        now: Instant,
        hold: Duration,
        lma: usize,
        mn_id: &[u8],
        status: BaStatus,
    ) -> bool {
        if hold.is_zero() {
            return false;
        }
        let mut r = match self.by_mn.get(mn_id) {
            Some(r) if r.lma == lma && r.until > now => *r,
            // Another LMA's, or an ended hold: start afresh.
            _ => Refused {
                lma,
                proxy: false,
                ipv4: false,
                ipv6: false,
                since: now,
                until: now,
            },
        };
        match status {
            BaStatus::PROXY_REG_NOT_ENABLED => r.proxy = true,
            BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE => r.ipv4 = true,
            BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE => r.ipv6 = true,
            _ => return false,
        }
        r.until = now + hold;
        if !self.by_mn.contains_key(mn_id) && self.by_mn.len() >= CAP {
            self.make_room(now);
        }
        self.by_mn.insert(mn_id.to_vec(), r);
        true
    }

    /// Drops the ended holds; if none had, the oldest refusal.
    fn make_room(&mut self, now: Instant) {
        self.by_mn.retain(|_, r| r.until > now);
        if self.by_mn.len() < CAP {
            return;
        }
        let oldest = self
            .by_mn
            .iter()
            .min_by_key(|(_, r)| r.since)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.by_mn.remove(&k);
        }
    }

    /// Narrows `req` (to LMA `lma`) by what that LMA refused its MN: the
    /// status to fail the attach with if nothing is left to ask for.
    pub(super) fn apply(
        &mut self,
        now: Instant,
        lma: usize,
        req: &mut AttachRequest,
    ) -> Result<(), BaStatus> {
        let Some(r) = self.by_mn.get(&req.mn_id).copied() else {
            return Ok(());
        };
        if r.until <= now {
            self.by_mn.remove(&req.mn_id);
            return Ok(());
        }
        if r.lma != lma {
            return Ok(());
        }
        if r.proxy {
            return Err(BaStatus::PROXY_REG_NOT_ENABLED);
        }
        let asked = (req.ipv4, req.ipv6);
        if r.ipv4 {
            req.ipv4 = false;
            req.requested_v4 = None;
        }
        if r.ipv6 {
            req.ipv6 = false;
        }
        match (req.ipv4, req.ipv6, asked) {
            (false, false, (true, _)) if r.ipv4 => {
                Err(BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE)
            }
            (false, false, _) => Err(BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE),
            _ => Ok(()),
        }
    }

    /// The operator's administrative action: forgets `mn_id`'s refusals.
    pub(super) fn forget(&mut self, mn_id: &[u8]) -> bool {
        self.by_mn.remove(mn_id).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_mn.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::AccessPoint;

    fn req(ipv4: bool, ipv6: bool) -> AttachRequest {
        AttachRequest {
            at: AccessPoint {
                ifindex: 1,
                vlan: 0,
                mac: [2, 0, 0, 0, 0, 1],
            },
            mn_id: b"mn@example.com".to_vec(),
            lma: "lma".into(),
            ipv4,
            requested_v4: Some(std::net::Ipv4Addr::new(10, 0, 0, 9)),
            v4_hint: false,
            ipv6,
            apn: None,
            att: None,
        }
    }

    const HOLD: Duration = Duration::from_secs(60);

    #[test]
    fn a_refused_service_is_not_asked_for_again_until_the_hold_ends_or_it_is_forgotten() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        let mn = b"mn@example.com";
        assert!(!r.record(t0, HOLD, 0, mn, BaStatus::ADMIN_PROHIBITED));
        assert!(r.record(
            t0,
            HOLD,
            0,
            mn,
            BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE
        ));
        // Dual-stack: IPv6 alone, no requested address.
        let mut q = req(true, true);
        assert_eq!(r.apply(t0, 0, &mut q), Ok(()));
        assert_eq!((q.ipv4, q.ipv6, q.requested_v4), (false, true, None));
        // IPv4 only: nothing left.
        let mut q = req(true, false);
        assert_eq!(
            r.apply(t0, 0, &mut q),
            Err(BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE)
        );
        // Another LMA did not refuse it.
        let mut q = req(true, false);
        assert_eq!(r.apply(t0, 1, &mut q), Ok(()));
        assert!(q.ipv4);
        // Both families refused: 172 last, the IPv6-only attach fails too.
        assert!(r.record(
            t0,
            HOLD,
            0,
            mn,
            BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE
        ));
        let mut q = req(false, true);
        assert_eq!(
            r.apply(t0, 0, &mut q),
            Err(BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE)
        );
        // The hold ends: asked for in full again, and forgotten.
        let mut q = req(true, true);
        assert_eq!(r.apply(t0 + HOLD, 0, &mut q), Ok(()));
        assert!(q.ipv4 && q.ipv6);
        assert_eq!(r.len(), 0);
        // 152: nothing at all, until the operator clears it.
        assert!(r.record(t0, HOLD, 0, mn, BaStatus::PROXY_REG_NOT_ENABLED));
        assert_eq!(
            r.apply(t0, 0, &mut req(true, true)),
            Err(BaStatus::PROXY_REG_NOT_ENABLED)
        );
        assert!(r.forget(mn));
        assert_eq!(r.apply(t0, 0, &mut req(true, true)), Ok(()));
        // A zero hold remembers nothing.
        assert!(!r.record(t0, Duration::ZERO, 0, mn, BaStatus::PROXY_REG_NOT_ENABLED));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn memory_is_bounded_and_ended_holds_go_first() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        let s = BaStatus::PROXY_REG_NOT_ENABLED;
        // Half with a short hold, half with a long one.
        for i in 0..CAP {
            let hold = if i % 2 == 0 { HOLD } else { HOLD * 10 };
            let t = t0 + Duration::from_nanos(i as u64);
            r.record(t, hold, 0, format!("mn{i}").as_bytes(), s);
        }
        assert_eq!(r.len(), CAP);
        // After the short holds end, one more makes room by dropping them.
        r.record(t0 + HOLD * 2, HOLD, 0, b"late", s);
        assert_eq!(r.len(), CAP / 2 + 1);
        // Full of live holds: the oldest goes.
        for i in 0..CAP / 2 - 1 {
            r.record(t0 + HOLD * 2, HOLD, 0, format!("x{i}").as_bytes(), s);
        }
        assert_eq!(r.len(), CAP);
        r.record(t0 + HOLD * 2, HOLD, 0, b"last", s);
        assert_eq!(r.len(), CAP);
        assert!(!r.forget(b"mn1"), "the oldest refusal made room");
        assert!(r.forget(b"mn3") && r.forget(b"last"));
    }
}
