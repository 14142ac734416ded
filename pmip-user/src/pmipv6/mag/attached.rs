//! RFC 5846 §9.1: a BRI whose trigger says the MN moved to another MAG
//! (Inter-MAG Handover: same or different access type, or unknown). "The
//! mobile access gateway SHOULD ensure that the mobile node is no longer
//! attached to the mobile access gateway before accepting the BRI ...
//! if the mobile access gateway verified that the mobile node is still
//! directly attached, [it] MUST reject the BRI using status code
//! 'Revocation failed - MN is Attached'" (132).
//!
//! Before it removes anything, the MAG asks its access link
//! ([`MagEvent::CheckPresence`]: the access gateway probes the subscriber,
//! ARP for an IPv4 home address); the BRA goes when every attachment the
//! BRI names has been answered for ([`Mag::presence`]), or after
//! [`CHECK_LIMIT`] with those not answered for taken as gone. A subscriber
//! that answers keeps its binding, and the LMA hears 132. The LMA's
//! retransmissions of the BRI meanwhile are not answered twice.
use std::time::{Duration, Instant};

use super::super::wire::{
    bra_status, revocation_trigger, Message, RevocationAck, RevocationIndication,
};
use super::{Mag, MagEvent, State};
use crate::dataplane::AccessPoint;

/// How long a BRI waits for the access link's answers: the access side's
/// own check takes half a second (`access::detach::CHECK_WAIT`).
pub const CHECK_LIMIT: Duration = Duration::from_millis(900);

/// A BRI waiting for the access link's word on the attachments it names.
pub(super) struct Checking {
    lma: usize,
    bri: RevocationIndication,
    /// The attachments named, and what the access link said of each.
    ats: Vec<(AccessPoint, Option<bool>)>,
    pub(super) deadline: Instant,
}

impl Checking {
    fn answered(&self) -> bool {
        self.ats.iter().all(|(_, p)| p.is_some())
    }
}

fn moved_away(trigger: u8) -> bool {
    matches!(
        trigger,
        revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT
            | revocation_trigger::INTER_MAG_HANDOVER_DIFFERENT_ATT
            | revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN
    )
}

impl Mag {
    /// A per-MN BRI saying the MN moved away, naming attachments that are
    /// registered here: ask the access link first (true: the BRI waits).
    /// A retransmission of a BRI already waiting is dropped (true).
    pub(super) fn check_before_revoking(
        &mut self,
        now: Instant,
        lma: usize,
        bri: &RevocationIndication,
        found: &[AccessPoint],
    ) -> bool {
        if !moved_away(bri.trigger) {
            return false;
        }
        if self
            .checking
            .iter()
            .any(|c| c.lma == lma && c.bri.seq == bri.seq)
        {
            return true;
        }
        let live: Vec<AccessPoint> = found
            .iter()
            .filter(|a| {
                self.entries
                    .get(a)
                    .is_some_and(|e| e.state != State::Deregistering)
            })
            .copied()
            .collect();
        if live.is_empty() {
            return false;
        }
        for at in &live {
            self.events.push_back(MagEvent::CheckPresence { at: *at });
        }
        self.checking.push(Checking {
            lma,
            bri: bri.clone(),
            ats: live.into_iter().map(|a| (a, None)).collect(),
            deadline: now + CHECK_LIMIT,
        });
        true
    }

    /// The access link's answer for `at`: whether the subscriber answered.
    pub fn presence(&mut self, _now: Instant, at: AccessPoint, present: bool) {
        for c in &mut self.checking {
            for (a, p) in &mut c.ats {
                if *a == at && p.is_none() {
                    *p = Some(present);
                }
            }
        }
        self.finish_checks(|c| c.answered());
    }

    pub(super) fn on_presence_timers(&mut self, now: Instant) {
        self.finish_checks(|c| c.deadline <= now);
    }

    /// Answers the BRIs `done` says are ready: 132 if any attachment
    /// answered, else the revocation goes ahead.
    fn finish_checks(&mut self, done: impl Fn(&Checking) -> bool) {
        let mut i = 0;
        while i < self.checking.len() {
            if !done(&self.checking[i]) {
                i += 1;
                continue;
            }
            let c = self.checking.swap_remove(i);
            if c.ats.iter().any(|(_, p)| *p == Some(true)) {
                self.counters.bri_mn_attached += 1;
                let peer = self.lmas[c.lma].peer;
                let bra = RevocationAck::answering(&c.bri, bra_status::MN_ATTACHED);
                self.queue(peer, &Message::RevocationAck(bra));
            } else {
                // Still the ones the BRI named, if they are still here.
                let found: Vec<AccessPoint> = c
                    .ats
                    .iter()
                    .map(|(a, _)| *a)
                    .filter(|a| self.entries.get(a).is_some_and(|e| e.lma == c.lma))
                    .collect();
                if found.is_empty() {
                    // Released meanwhile: "MUST accept" (§9.1).
                    let peer = self.lmas[c.lma].peer;
                    let bra = RevocationAck::answering(&c.bri, bra_status::SUCCESS);
                    self.queue(peer, &Message::RevocationAck(bra));
                } else {
                    self.revoke_found(c.lma, c.bri, &found);
                }
            }
        }
    }
}
