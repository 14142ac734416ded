//! Presence checks (RFC 5846 §9.1: is the node still on the link before a
//! MAG lets its binding go?), the IPv6 side of `access/detach.rs`'s: a
//! unicast Neighbor Solicitation to the node's link-local address now and
//! once more after `CHECK_RESEND`; any sign of life from its MAC within
//! `CHECK_WAIT` (the Neighbor Advertisement, or anything else [`seen`]
//! hears) is presence, silence is absence (the timers: `detach::Check`).
//!
//! [`seen`]: RaEngine::seen
use std::time::Instant;

use super::super::detach::{Check, CheckStep};
use super::super::nd::NdRepr;
use super::{Event, RaEngine, State};

impl RaEngine {
    /// Is `mac` still on the link? Answered with [`Event::Presence`]: at
    /// once (absent) for a node without an advertisement or an address to
    /// probe.
    pub fn check(&mut self, now: Instant, mac: [u8; 6]) {
        let probeable = self
            .subs
            .get(&mac)
            .is_some_and(|s| s.addr.is_some() && matches!(s.state, State::Advertised(_)));
        if !probeable {
            let at = self.at(mac);
            self.events
                .push_back(Event::Presence { at, present: false });
            return;
        }
        self.probe_node(mac);
        self.checks.insert(mac, Check::new(now));
    }

    fn probe_node(&mut self, mac: [u8; 6]) {
        let Some(target) = self.subs.get(&mac).and_then(|s| s.addr) else {
            return;
        };
        self.stats.probes += 1;
        let ns = NdRepr::NeighborSolicit {
            target,
            slla: Some(self.cfg.router_mac),
        };
        self.push_nd(mac, target, &ns);
    }

    /// A sign of life from `mac`: a check under way ends, present.
    pub(super) fn check_answered(&mut self, mac: [u8; 6]) {
        if self.checks.remove(&mac).is_some() {
            let at = self.at(mac);
            self.events.push_back(Event::Presence { at, present: true });
        }
    }

    pub(super) fn check_timeout(&self) -> Option<Instant> {
        self.checks.values().map(Check::due).min()
    }

    pub(super) fn check_timeouts(&mut self, now: Instant) {
        let mut macs: Vec<[u8; 6]> = self.checks.keys().copied().collect();
        macs.sort();
        for mac in macs {
            let Some(c) = self.checks.get_mut(&mac) else {
                continue;
            };
            match c.step(now) {
                CheckStep::Over => {
                    self.checks.remove(&mac);
                    let at = self.at(mac);
                    self.events
                        .push_back(Event::Presence { at, present: false });
                }
                CheckStep::Resend => self.probe_node(mac),
                CheckStep::Wait => {}
            }
        }
    }
}
