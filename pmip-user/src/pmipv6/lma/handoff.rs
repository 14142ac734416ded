//! A PBU whose Handoff Indicator says "handoff state unknown" (4) for the
//! MN's only mobility session, live at another MAG, under a link-layer
//! identifier that does not name that session (RFC 5213 §5.4.1.2 step 4,
//! §5.4.1.3 step 3). It may be the MN moving, or the MN attaching a second
//! interface; the new MAG cannot tell. RFC 5213: the LMA "SHOULD wait until
//! the existing Binding Cache entry is de-registered by the previously
//! serving mobile access gateway"; without a de-registration within
//! MaxDelayBeforeNewBCEAssign it "MUST consider the request as a request for
//! creating a new mobility session". RFC 5846 §8.1 asks instead of waiting:
//! a BRI with the trigger "Inter-MAG Handover - Unknown" to the previous MAG;
//! a successful BRA or a de-registration → the session moves to the new MAG
//! "as if it received a de-registration"; "Revocation Failed - MN is
//! Attached" (132), or no BRA after the BRI's retransmissions → a new
//! session.
//!
//! The PBU is held, not answered, meanwhile; the new MAG's retransmissions
//! of it (or a newer one) replace it, and the last one is answered.
use std::time::Instant;

use super::super::wire::{
    bra_status, revocation_trigger, BindingUpdate, HandoffIndicator, OptionsExt,
};
use super::{Lma, TimerKey};
use crate::agent::Peer;

/// A PBU held while the MN's previous MAG is asked.
pub(super) struct HeldPbu {
    peer: Peer,
    bu: BindingUpdate,
    /// When the wait ends, without revocation (MaxDelayBeforeNewBCEAssign).
    deadline: Option<Instant>,
    /// The BRI asking the previous MAG, with revocation.
    bri: Option<u16>,
}

/// How a PBU finds its mobility session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// As it arrives: the binding cache lookup of RFC 5213 §5.4.1, which
    /// may hold it (this module).
    Arrival,
    /// Held, and the previous MAG let the session go: it moves.
    Moved(u32),
    /// Held, and the previous MAG kept the session or did not answer: a
    /// new mobility session.
    New,
}

impl Lma {
    /// The session a PBU must wait for (see the module doc), if any.
    pub(super) fn unknown_handoff(
        &self,
        peer: Peer,
        bu: &BindingUpdate,
        mn_id: &[u8],
        llid: &[u8],
    ) -> Option<u32> {
        if bu.handoff_indicator() != Some(HandoffIndicator::HandoffStateUnknown)
            || bu.lifetime == 0
            || self.cfg.new_bce_delay.is_zero()
        {
            return None;
        }
        let mut ids = self.sessions_of(mn_id);
        let (Some(id), None) = (ids.next(), ids.next()) else {
            return None;
        };
        let b = &self.bces[&id];
        let named = !llid.is_empty() && b.llid == llid;
        (b.mag.ip() != peer.ip() && !b.deleting && !named).then_some(id)
    }

    /// Holds `bu` for session `id`. The first PBU held for it asks the
    /// previous MAG (RFC 5846 §8.1) or starts the wait (RFC 5213 §5.4.1).
    pub(super) fn hold_pbu(&mut self, now: Instant, id: u32, peer: Peer, bu: BindingUpdate) {
        if let Some(h) = self.held.get_mut(&id) {
            // A retransmission, or a newer PBU: the last one is answered.
            h.peer = peer;
            h.bu = bu;
            return;
        }
        self.counters.handoff_unknown_held += 1;
        let mut held = HeldPbu {
            peer,
            bu,
            deadline: None,
            bri: None,
        };
        let b = &self.bces[&id];
        if self.revokes_at(b.mag.ip()) {
            let (mag, session) = (b.mag, (b.mn_id.clone(), b.llid.clone(), b.hnp));
            let trigger = revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN;
            let seq = self.send_bri(now, mag, session, trigger);
            if let Some(p) = self.bris.get_mut(&seq) {
                // §8.1: "SHOULD use the recommended number of
                // retransmissions" (one, §11) so as not to delay the new
                // session for long.
                p.max_retx = p.max_retx.min(1);
            }
            held.bri = Some(seq);
        } else {
            let d = now + self.cfg.new_bce_delay;
            self.arm(d, TimerKey::Handoff(id));
            held.deadline = Some(d);
        }
        self.held.insert(id, held);
    }

    /// Session `id`'s previous MAG de-registered it: a PBU held for it
    /// takes the session over. The BRI asking for it is no longer needed.
    pub(super) fn deregistered_while_held(&mut self, id: u32) {
        if let Some(seq) = self.held.get(&id).and_then(|h| h.bri) {
            self.bris.remove(&seq);
        }
        if self.held.contains_key(&id) {
            self.released.push((id, Lookup::Moved(id)));
        }
    }

    /// The BRA to a BRI that asked for a held PBU's session (RFC 5846
    /// §8.1). Success, or no such binding at the previous MAG: the session
    /// is ended there as by a de-registration and moves; "MN is Attached"
    /// or any other refusal: a new session.
    pub(super) fn held_bri_answered(&mut self, now: Instant, seq: u16, status: u8) {
        let Some((&id, _)) = self.held.iter().find(|(_, h)| h.bri == Some(seq)) else {
            return;
        };
        let gone = matches!(
            status,
            bra_status::SUCCESS | bra_status::PARTIAL_SUCCESS | bra_status::BINDING_DOES_NOT_EXIST
        );
        if gone && self.still_held_session(id) {
            self.end_at_mag(now, id);
            self.released.push((id, Lookup::Moved(id)));
        } else {
            self.released.push((id, Lookup::New));
        }
    }

    /// The BRI asking for a held PBU's session went unanswered.
    pub(super) fn held_bri_gave_up(&mut self, seq: u16) {
        if let Some((&id, _)) = self.held.iter().find(|(_, h)| h.bri == Some(seq)) {
            self.released.push((id, Lookup::New));
        }
    }

    /// MaxDelayBeforeNewBCEAssign ran out for session `id` (at `t`).
    pub(super) fn held_wait_over(&mut self, id: u32, t: Instant) {
        if self.held.get(&id).and_then(|h| h.deadline) == Some(t) {
            self.released.push((id, Lookup::New));
        }
    }

    /// Whether session `id` is still the one a PBU was held for: it may
    /// have ended meanwhile, and its id gone to another MN.
    fn still_held_session(&self, id: u32) -> bool {
        let mn_id = self.held.get(&id).and_then(|h| h.bu.mn_id());
        self.bces
            .get(&id)
            .is_some_and(|b| Some(&b.mn_id[..]) == mn_id)
    }

    /// Answers the PBUs released since the last call.
    pub(super) fn answer_released(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.released.len() {
            let (id, how) = self.released[i];
            i += 1;
            let how = match how {
                Lookup::Moved(_) if !self.still_held_session(id) => Lookup::New,
                h => h,
            };
            let Some(h) = self.held.remove(&id) else {
                continue;
            };
            if how == Lookup::New {
                self.counters.handoff_unknown_new_session += 1;
            } else {
                self.counters.handoff_unknown_moved += 1;
            }
            self.answer(now, h.peer, h.bu, how);
        }
        self.released.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::{Duration, Instant, SystemTime};

    use super::super::{Lma, LmaConfig};
    use crate::agent::registrar::{AnchorEvent, GoneCause};
    use crate::agent::{Endpoint, Peer};
    use crate::pmipv6::wire::{
        br_flags, bra_status, bu_flags, revocation_trigger, AccessTechType, BaStatus,
        BindingUpdate, Checksum, HandoffIndicator, Message, MobilityOption, OptionsExt,
        RevocationAck,
    };

    use super::super::pba::tests::LMA;
    const MAG1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const MAG2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const NAI: &str = "mn@example.com";

    fn lma(now: Instant, revocation: bool) -> Lma {
        let cfg = LmaConfig {
            no_revocation: if revocation {
                HashSet::new()
            } else {
                HashSet::from([IpAddr::V6(MAG1)])
            },
            bri_retx_initial: Duration::from_millis(500),
            bri_retx_max: Duration::from_millis(500),
            ..super::super::pba::tests::cfg(&[MAG1, MAG2])
        };
        Lma::new(cfg, now, SystemTime::now())
    }

    /// A PBU from `mag`: Handoff Indicator `hi`, a link-layer identifier
    /// when `llid` is given, lifetime 0 for a de-registration.
    fn pbu(
        mag: Ipv6Addr,
        seq: u16,
        hi: HandoffIndicator,
        llid: Option<u8>,
        lifetime: u16,
    ) -> Vec<u8> {
        let mut options = vec![
            MobilityOption::MnId {
                subtype: 1,
                id: NAI.as_bytes().to_vec(),
            },
            MobilityOption::HandoffIndicator(hi),
            MobilityOption::AccessTechType(AccessTechType::Ieee80211),
            MobilityOption::GreKey(Some(7)),
            MobilityOption::Ipv4HoaRequest {
                prefix_len: 0,
                addr: Ipv4Addr::UNSPECIFIED,
            },
        ];
        if let Some(l) = llid {
            options.push(MobilityOption::MnLinkLayerId(vec![2, 0, 0, 0, 0, l]));
        }
        Message::BindingUpdate(BindingUpdate {
            seq,
            flags: bu_flags::A | bu_flags::P,
            lifetime,
            options,
        })
        .to_vec(Checksum::Ipv6 { src: mag, dst: LMA })
        .unwrap()
    }

    /// [`pbu`] without a link-layer identifier, with a Timestamp option.
    fn pbu_ts(mag: Ipv6Addr, seq: u16, hi: HandoffIndicator, lifetime: u16, ts: u64) -> Vec<u8> {
        let ck = Checksum::Ipv6 { src: mag, dst: LMA };
        let Ok(Message::BindingUpdate(mut bu)) =
            Message::parse(&pbu(mag, seq, hi, None, lifetime), ck)
        else {
            unreachable!()
        };
        bu.options.push(MobilityOption::Timestamp(ts));
        Message::BindingUpdate(bu).to_vec(ck).unwrap()
    }

    /// Everything the LMA sends once its store writes went through.
    fn sent(lma: &mut Lma, now: Instant) -> Vec<(Ipv6Addr, Message)> {
        while lma.poll_store().is_some() {}
        lma.stored(now, true);
        let mut v = Vec::new();
        while let Some(t) = lma.poll_transmit() {
            let Peer::V6(to) = t.peer else { panic!() };
            let m = Message::parse(&t.payload, Checksum::Ipv6 { src: LMA, dst: to }).unwrap();
            v.push((to, m));
        }
        v
    }

    fn home(m: &Message) -> Option<Ipv4Addr> {
        let Message::BindingAck(ba) = m else {
            return None;
        };
        ba.options.iter().find_map(|o| match o {
            MobilityOption::Ipv4HoaReply { addr, .. } => Some(*addr),
            _ => None,
        })
    }

    /// MN registered at MAG1 without a link-layer identifier; MAG2 says
    /// "handoff state unknown" for it. Returns the home address and what
    /// the LMA sent on MAG2's PBU.
    fn setup(
        lma: &mut Lma,
        now: Instant,
        llid2: Option<u8>,
    ) -> (Ipv4Addr, Vec<(Ipv6Addr, Message)>) {
        lma.handle(
            now,
            Peer::V6(MAG1),
            &pbu(
                MAG1,
                1,
                HandoffIndicator::AttachmentOverNewInterface,
                None,
                100,
            ),
        );
        let first = sent(lma, now);
        let a = home(&first[0].1).expect("registered");
        lma.handle(
            now,
            Peer::V6(MAG2),
            &pbu(MAG2, 5, HandoffIndicator::HandoffStateUnknown, llid2, 100),
        );
        (a, sent(lma, now))
    }

    fn bri_seq(out: &[(Ipv6Addr, Message)]) -> u16 {
        let [(to, Message::RevocationIndication(bri))] = out else {
            panic!("want one BRI, got {out:?}")
        };
        assert_eq!(*to, MAG1);
        assert_eq!(bri.trigger, revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN);
        assert_eq!(bri.mn_id(), Some(NAI.as_bytes()));
        bri.seq
    }

    fn bra(seq: u16, status: u8) -> Vec<u8> {
        Message::RevocationAck(RevocationAck {
            status,
            seq,
            flags: br_flags::P,
            options: vec![],
        })
        .to_vec(Checksum::Ipv6 {
            src: MAG1,
            dst: LMA,
        })
        .unwrap()
    }

    fn pba_to_mag2(out: &[(Ipv6Addr, Message)]) -> &Message {
        let [(MAG2, m @ Message::BindingAck(ba))] = out else {
            panic!("want one PBA to MAG2, got {out:?}")
        };
        assert_eq!(ba.status, BaStatus::ACCEPTED);
        m
    }

    #[test]
    fn handoff_unknown_waits_for_the_bra_and_moves_on_success() {
        let now = Instant::now();
        let mut lma = lma(now, true);
        let (a, out) = setup(&mut lma, now, None);
        // No PBA yet: the previous MAG is asked (RFC 5846 §8.1).
        let seq = bri_seq(&out);
        // MAG2 retransmits: still held, no second BRI.
        lma.handle(
            now,
            Peer::V6(MAG2),
            &pbu(MAG2, 5, HandoffIndicator::HandoffStateUnknown, None, 100),
        );
        assert!(sent(&mut lma, now).is_empty());
        lma.handle(now, Peer::V6(MAG1), &bra(seq, bra_status::SUCCESS));
        let out = sent(&mut lma, now);
        assert_eq!(home(pba_to_mag2(&out)), Some(a), "the session moved");
        let b = lma.bindings_of(NAI.as_bytes());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].mag, Peer::V6(MAG2));
        assert_eq!(lma.counters.handoff_unknown_moved, 1);
        // No second BRI to MAG1: it already let the session go.
        assert!(lma.poll_transmit().is_none());
    }

    #[test]
    fn handoff_unknown_opens_a_new_session_when_the_mn_is_attached() {
        let now = Instant::now();
        let mut lma = lma(now, true);
        let (a, out) = setup(&mut lma, now, Some(9));
        let seq = bri_seq(&out);
        lma.handle(now, Peer::V6(MAG1), &bra(seq, bra_status::MN_ATTACHED));
        let out = sent(&mut lma, now);
        let b = home(pba_to_mag2(&out)).unwrap();
        assert_ne!(b, a, "a new session has its own address");
        assert_eq!(lma.bindings_of(NAI.as_bytes()).len(), 2);
        assert_eq!(lma.counters.handoff_unknown_new_session, 1);
    }

    #[test]
    fn handoff_unknown_without_a_bra_opens_a_new_session_after_one_retransmission() {
        let mut now = Instant::now();
        let mut lma = lma(now, true);
        let (a, out) = setup(&mut lma, now, None);
        let seq = bri_seq(&out);
        now += Duration::from_millis(500);
        lma.handle_timeout(now);
        assert_eq!(bri_seq(&sent(&mut lma, now)), seq, "retransmitted");
        now += Duration::from_millis(500);
        lma.handle_timeout(now);
        let out = sent(&mut lma, now);
        assert_ne!(home(pba_to_mag2(&out)), Some(a));
        assert_eq!(lma.bindings_of(NAI.as_bytes()).len(), 2);
        // A late BRA changes nothing.
        lma.handle(now, Peer::V6(MAG1), &bra(seq, bra_status::SUCCESS));
        assert!(sent(&mut lma, now).is_empty());
        assert_eq!(lma.bindings_of(NAI.as_bytes()).len(), 2);
    }

    #[test]
    fn handoff_unknown_takes_over_after_the_previous_mags_deregistration() {
        let now = Instant::now();
        let mut lma = lma(now, true);
        let (a, out) = setup(&mut lma, now, None);
        let seq = bri_seq(&out);
        lma.handle(
            now,
            Peer::V6(MAG1),
            &pbu(MAG1, 2, HandoffIndicator::HandoffStateUnknown, None, 0),
        );
        let out = sent(&mut lma, now);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(&out[0], (MAG1, Message::BindingAck(ba)) if ba.lifetime == 0));
        assert_eq!(home(pba_to_mag2(&out[1..])), Some(a));
        // The session ended at MAG1 and starts again at MAG2.
        let ev: Vec<_> = lma.events.drain(..).collect();
        assert!(
            matches!(
                &ev[..],
                [
                    AnchorEvent::Created { .. },
                    AnchorEvent::Removed { cause: GoneCause::Deregistered, .. },
                    AnchorEvent::Created { peer, .. },
                ] if *peer == IpAddr::V6(MAG2)
            ),
            "{ev:?}"
        );
        // The BRI is no longer retransmitted.
        lma.handle_timeout(now + Duration::from_secs(5));
        assert!(sent(&mut lma, now)
            .iter()
            .all(|(_, m)| !matches!(m, Message::RevocationIndication(b) if b.seq == seq)));
        assert_eq!(lma.bindings_of(NAI.as_bytes())[0].mag, Peer::V6(MAG2));
    }

    /// RFC 5213 §5.5 ordering: a PBU to be held is ordered against the
    /// session when it comes (a stale one refused at once, 157); once held,
    /// the previous MAG's de-registration — sent after it, so with a later
    /// Timestamp — releases it without its being refused as older.
    #[test]
    fn a_held_pbu_is_ordered_when_it_comes() {
        let now = Instant::now();
        let mut lma = lma(now, true);
        lma.cfg.timestamp_based = true;
        let t = lma.clock.timestamp(now);
        let unknown = HandoffIndicator::HandoffStateUnknown;
        let new = HandoffIndicator::AttachmentOverNewInterface;
        lma.handle(now, Peer::V6(MAG1), &pbu_ts(MAG1, 1, new, 100, t));
        let a = home(&sent(&mut lma, now)[0].1);
        lma.handle(now, Peer::V6(MAG2), &pbu_ts(MAG2, 1, unknown, 100, t - 1));
        let out = sent(&mut lma, now);
        let [(MAG2, Message::BindingAck(ba))] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(ba.status, BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED);
        assert_eq!(lma.counters.handoff_unknown_held, 0);
        lma.handle(now, Peer::V6(MAG2), &pbu_ts(MAG2, 2, unknown, 100, t + 1));
        bri_seq(&sent(&mut lma, now));
        lma.handle(now, Peer::V6(MAG1), &pbu_ts(MAG1, 2, unknown, 0, t + 2));
        let out = sent(&mut lma, now);
        assert_eq!(home(pba_to_mag2(&out[1..])), a, "{out:?}");
        // The session's order goes on from the latest it saw.
        lma.handle(now, Peer::V6(MAG2), &pbu_ts(MAG2, 3, unknown, 100, t + 2));
        let out = sent(&mut lma, now);
        assert!(
            matches!(&out[..], [(MAG2, Message::BindingAck(ba))] if ba.status == BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED),
            "{out:?}"
        );
    }

    #[test]
    fn without_revocation_handoff_unknown_waits_max_delay_before_new_bce_assign() {
        // MAG1 gets no BRIs: RFC 5213 §5.4.1.3 step 3, wait for its
        // de-registration, then a new session.
        let mut now = Instant::now();
        let mut lma = lma(now, false);
        let (a, out) = setup(&mut lma, now, None);
        assert!(out.is_empty(), "{out:?}");
        now += Duration::from_millis(1499);
        lma.handle_timeout(now);
        assert!(sent(&mut lma, now).is_empty());
        now += Duration::from_millis(1);
        lma.handle_timeout(now);
        let out = sent(&mut lma, now);
        assert_ne!(home(pba_to_mag2(&out)), Some(a));
        // And with the de-registration within the wait: the session moves.
        let mut lma2 = super::tests::lma(now, false);
        let (a, _) = setup(&mut lma2, now, None);
        lma2.handle(
            now,
            Peer::V6(MAG1),
            &pbu(MAG1, 2, HandoffIndicator::HandoffStateUnknown, None, 0),
        );
        let out = sent(&mut lma2, now);
        assert_eq!(home(pba_to_mag2(&out[1..])), Some(a));
    }

    #[test]
    fn handoff_unknown_with_no_wait_configured_opens_a_new_session_at_once() {
        let now = Instant::now();
        let mut lma = lma(now, true);
        lma.cfg.new_bce_delay = Duration::ZERO;
        let (a, out) = setup(&mut lma, now, None);
        assert_ne!(home(pba_to_mag2(&out)), Some(a));
        assert_eq!(lma.counters.handoff_unknown_held, 0);
    }

    #[test]
    fn a_named_session_or_another_indicator_is_not_held() {
        let now = Instant::now();
        // HI 3 without an identifier: the lone session moves at once.
        let mut lma = lma(now, true);
        lma.handle(
            now,
            Peer::V6(MAG1),
            &pbu(
                MAG1,
                1,
                HandoffIndicator::AttachmentOverNewInterface,
                None,
                100,
            ),
        );
        let a = home(&sent(&mut lma, now)[0].1);
        lma.handle(
            now,
            Peer::V6(MAG2),
            &pbu(
                MAG2,
                2,
                HandoffIndicator::HandoffBetweenMagsSameInterface,
                None,
                100,
            ),
        );
        let out = sent(&mut lma, now);
        assert_eq!(home(&out[1].1), a, "{out:?}");
        // HI 4 naming the session by its link-layer identifier: moves at once.
        let mut lma = super::tests::lma(now, true);
        lma.handle(
            now,
            Peer::V6(MAG1),
            &pbu(
                MAG1,
                1,
                HandoffIndicator::AttachmentOverNewInterface,
                Some(1),
                100,
            ),
        );
        let a = home(&sent(&mut lma, now)[0].1);
        lma.handle(
            now,
            Peer::V6(MAG2),
            &pbu(MAG2, 2, HandoffIndicator::HandoffStateUnknown, Some(1), 100),
        );
        let out = sent(&mut lma, now);
        assert_eq!(home(&out[1].1), a, "{out:?}");
        assert_eq!(lma.counters.handoff_unknown_held, 0);
    }
}
