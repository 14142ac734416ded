//! Binding revocation from the LMA (RFC 5846): the BRI to the MAG a
//! subscriber left (or an operator released), retransmitted until the BRA.
use std::time::Instant;

use super::super::wire::{
    self, br_flags, Message, MobilityOption, RevocationAck, RevocationIndication,
};
use super::{Lma, PendingBri, TimerKey};
use crate::agent::registrar::GoneCause;
use crate::agent::Peer;

impl Lma {
    /// Revokes every session of `mn_id` (administrative): BRI to each MAG
    /// and delete. Returns whether there was any.
    pub fn revoke(&mut self, now: Instant, mn_id: &[u8], trigger: u8) -> bool {
        let ids = self.bce_by_id.get(mn_id).cloned().unwrap_or_default();
        for id in &ids {
            let (mag, llid) = {
                let b = &self.bces[id];
                (b.mag, b.llid.clone())
            };
            self.ended(*id, GoneCause::Revoked(trigger));
            self.delete(*id);
            self.send_bri(now, mag, mn_id.to_vec(), llid, trigger);
        }
        !ids.is_empty()
    }

    pub(super) fn send_bri(
        &mut self,
        now: Instant,
        mag: Peer,
        mn_id: Vec<u8>,
        llid: Vec<u8>,
        trigger: u8,
    ) {
        self.bri_seq = self.bri_seq.wrapping_add(1);
        let seq = self.bri_seq;
        let p = PendingBri {
            mag,
            mn_id,
            llid,
            trigger,
            retx: 0,
            timeout: self.cfg.bri_retx_initial,
            deadline: now + self.cfg.bri_retx_initial,
        };
        self.transmit_bri(seq, &p);
        self.arm(p.deadline, TimerKey::Bri(seq));
        self.bris.insert(seq, p);
        self.counters.bri_sent += 1;
    }

    pub(super) fn transmit_bri(&mut self, seq: u16, p: &PendingBri) {
        // The link-layer identifier tells the MAG which attachment of the MN.
        let mn_id = MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: p.mn_id.clone(),
        };
        let msg = Message::RevocationIndication(RevocationIndication {
            trigger: p.trigger,
            seq,
            flags: br_flags::P,
            options: if p.llid.is_empty() {
                vec![mn_id]
            } else {
                vec![mn_id, MobilityOption::MnLinkLayerId(p.llid.clone())]
            },
        });
        self.queue(p.mag, &msg);
    }

    pub(super) fn on_bra(&mut self, bra: RevocationAck) {
        self.counters.bra_rx += 1;
        if self.bris.remove(&bra.seq).is_none() {
            self.counters.bra_unmatched += 1;
        }
    }
}
