//! Binding revocation from the LMA (RFC 5846): the BRI to the MAG a
//! subscriber left (or an operator released), retransmitted until the BRA.
use std::time::Instant;

use super::super::wire::{
    self, br_flags, bra_status, revocation_trigger, Message, MobilityOption, OptionsExt,
    RevocationAck, RevocationIndication,
};
use super::{Hnp, Lma, PendingBri, TimerKey};
use crate::agent::registrar::{in_realm, GoneCause};
use crate::agent::Peer;
use crate::dataplane::DpCommand;

impl Lma {
    /// Whether `mag` gets BRIs (RFC 5846): revocation on, and not turned
    /// off for that MAG (`peers[].revocation = false`).
    pub(super) fn revokes_at(&self, mag: std::net::IpAddr) -> bool {
        self.cfg.revocation && !self.cfg.no_revocation.contains(&mag)
    }

    /// Revokes every session of `mn_id` (administrative): BRI to each MAG;
    /// the session ends now, its entry when the BRA comes. Returns whether
    /// there was any.
    pub fn revoke(&mut self, now: Instant, mn_id: &[u8], trigger: u8) -> bool {
        let ids: Vec<u32> = self.sessions_of(mn_id).collect();
        for id in &ids {
            let (mag, llid, hnp) = {
                let b = &self.bces[id];
                (b.mag, b.llid.clone(), b.hnp)
            };
            self.ended(*id, GoneCause::Revoked(trigger));
            if !self.revokes_at(mag.ip()) {
                self.delete(*id);
                continue;
            }
            let seq = self.send_bri(now, mag, (mn_id.to_vec(), llid, hnp), trigger);
            self.revoking(*id, seq);
        }
        !ids.is_empty()
    }

    /// Revokes every session through the MAG at `mag`, or (with `realm`)
    /// those whose NAI is of that realm — the part after its last '@',
    /// compared without regard to case (`pmipctl clear bindings --peer`).
    /// RFC 5846 §8.1: one BRI with the Global (G) bit, "Per-Peer Policy"
    /// and no mobility option, or "Revoking Mobile Node Local Policy" with
    /// an MN-ID option "@realm"; each entry stays revoking until the BRA (a
    /// MAG that refuses the global form gets one BRI per entry, `on_bra`).
    /// A MAG without revocation (`peers[].revocation = false`) loses the
    /// entries at once. Returns how many sessions were revoked.
    pub fn revoke_peer(
        &mut self,
        now: Instant,
        mag: std::net::IpAddr,
        realm: Option<&str>,
    ) -> usize {
        // Each entry with the MN-ID its BRI carries: none, or "@realm"
        // spelled as in its NAI (a MAG may compare realms as they are).
        let mut ids: Vec<(Peer, Vec<u8>, u32)> = self
            .bces
            .iter()
            .filter(|(_, b)| b.mag.ip() == mag && !b.deleting)
            .filter_map(|(id, b)| {
                let mn_id = match realm {
                    None => Vec::new(),
                    Some(r) if in_realm(&b.mn_id, r.as_bytes()) => {
                        let at = b.mn_id.iter().rposition(|&c| c == b'@')?;
                        b.mn_id[at..].to_vec()
                    }
                    Some(_) => return None,
                };
                Some((b.mag, mn_id, *id))
            })
            .collect();
        ids.sort_unstable();
        let trigger = match realm {
            None => revocation_trigger::PER_PEER_POLICY,
            Some(_) => revocation_trigger::REVOKING_NODE_LOCAL_POLICY,
        };
        for &(_, _, id) in &ids {
            self.ended(id, GoneCause::Revoked(trigger));
        }
        if !self.revokes_at(mag) {
            ids.iter().for_each(|&(_, _, id)| self.delete(id));
            return ids.len();
        }
        // One BRI per transport the MAG signals over (an address, and over
        // IPv4 the port its PBUs came from) and spelling of the realm.
        for group in ids.chunk_by(|a, b| (a.0, &a.1) == (b.0, &b.1)) {
            let (peer, mn_id) = (group[0].0, group[0].1.clone());
            let seq = self.send_bri_as(now, peer, (mn_id, Vec::new(), None), trigger, true);
            self.counters.bri_global_sent += 1;
            for &(_, _, id) in group {
                self.revoking(id, seq);
            }
        }
        ids.len()
    }

    /// RFC 5846 §8.1: "the local mobility anchor sets a flag in the mobile
    /// node proxy BCE to indicate that revocation is in progress ... SHOULD
    /// maintain the mobile node proxy BCE in this state until it receives a
    /// Binding Revocation Acknowledgement or the BRIMaxRetransmitNumber is
    /// reached". The tunnel goes now (its MAY): no traffic for a revoked
    /// session. The entry keeps its addresses and key meanwhile, so a
    /// registration crossing the BRI is refused rather than given a new
    /// session, and no other MN gets them before the MAG let go. Its record
    /// says so (with the BRI's trigger): a restart in the meantime sends
    /// the BRI again rather than forgetting the revocation (a MAG that
    /// missed the BRI would otherwise have its next refresh open a new
    /// session); the record goes with the entry.
    pub(super) fn revoking(&mut self, id: u32, seq: u16) {
        let Some(b) = self.bces.get(&id) else { return };
        if !b.deleting {
            if let Some(ab) = self.anchor_binding(id) {
                self.dp.push_back(DpCommand::RemoveAnchor(ab));
            }
        }
        let b = self.bces.get_mut(&id).expect("checked");
        b.deleting = true;
        b.revoking = Some(seq);
        if let Some(p) = self.bris.get_mut(&seq) {
            p.revokes.push(id);
        }
        self.persist(id);
    }

    /// The BRI `seq` ended (answered, or out of retransmissions): the
    /// entries it revoked go, those still that revocation's.
    pub(super) fn revocation_over(&mut self, revokes: &[u32], seq: u16) {
        for &id in revokes {
            if self.bces.get(&id).is_some_and(|b| b.revoking == Some(seq)) {
                self.counters.revocations_completed += 1;
                self.delete(id);
            }
        }
    }

    /// A MAG refused a global BRI (RFC 5846 §6.2.2: "based on the initiator
    /// local policy"): the entries it revoked that are still waiting for it
    /// are revoked one by one, each with its own BRI (administrative
    /// reason), so a MAG without the global form still lets them go.
    fn revoke_one_by_one(&mut self, now: Instant, p: &PendingBri, seq: u16) {
        self.counters.bri_global_refused += 1;
        for &id in &p.revokes {
            let Some(b) = self.bces.get(&id).filter(|b| b.revoking == Some(seq)) else {
                continue;
            };
            let one = (b.mn_id.clone(), b.llid.clone(), b.hnp);
            let s = self.send_bri(now, p.mag, one, revocation_trigger::ADMINISTRATIVE);
            self.revoking(id, s);
        }
    }

    /// A BRI to `mag` revoking the session `(mn_id, llid, hnp)` there.
    pub(super) fn send_bri(
        &mut self,
        now: Instant,
        mag: Peer,
        session: (Vec<u8>, Vec<u8>, Option<Hnp>),
        trigger: u8,
    ) -> u16 {
        self.send_bri_as(now, mag, session, trigger, false)
    }

    /// As `send_bri`; `global`: with the G bit, `session` then holding only
    /// the MN-ID ("@realm", or empty for none).
    fn send_bri_as(
        &mut self,
        now: Instant,
        mag: Peer,
        (mn_id, llid, hnp): (Vec<u8>, Vec<u8>, Option<Hnp>),
        trigger: u8,
        global: bool,
    ) -> u16 {
        self.bri_seq = self.bri_seq.wrapping_add(1);
        let seq = self.bri_seq;
        let p = PendingBri {
            mag,
            mn_id,
            llid,
            hnp,
            trigger,
            global,
            revokes: Vec::new(),
            retx: 0,
            max_retx: self.cfg.bri_max_retx,
            timeout: self.cfg.bri_retx_initial,
            deadline: now + self.cfg.bri_retx_initial,
        };
        self.transmit_bri(seq, &p);
        self.arm(p.deadline, TimerKey::Bri(seq));
        self.bris.insert(seq, p);
        self.counters.bri_sent += 1;
        seq
    }

    pub(super) fn transmit_bri(&mut self, seq: u16, p: &PendingBri) {
        // The link-layer identifier tells the MAG which attachment of the
        // MN. A per-peer global BRI "MUST NOT include any mobility options"
        // (RFC 5846 §8.1); a realm's carries the MN-ID "@realm" alone.
        let mut options = Vec::new();
        if !p.mn_id.is_empty() {
            options.push(MobilityOption::MnId {
                subtype: wire::option::MN_ID_SUBTYPE_NAI,
                id: p.mn_id.clone(),
            });
        }
        if let Some(h) = p.hnp {
            options.push(MobilityOption::HomeNetworkPrefix {
                prefix_len: h.len,
                prefix: h.prefix,
            });
        }
        if !p.llid.is_empty() {
            options.push(MobilityOption::MnLinkLayerId(p.llid.clone()));
        }
        let msg = Message::RevocationIndication(RevocationIndication {
            trigger: p.trigger,
            seq,
            flags: if p.global {
                br_flags::P | br_flags::G
            } else {
                br_flags::P
            },
            options,
        });
        self.queue(p.mag, &msg);
    }

    /// A BRA ends the retransmissions of the BRI it answers: the one with
    /// its sequence number (RFC 5846 §6.2) sent to the MAG it comes from
    /// (by address: over IPv4 the MAG may answer from another port).
    pub(super) fn on_bra(&mut self, now: Instant, peer: Peer, bra: RevocationAck) {
        self.counters.bra_rx += 1;
        match self.bris.get(&bra.seq) {
            Some(p) if p.mag.ip() == peer.ip() => {
                let p = self.bris.remove(&bra.seq).expect("matched");
                // A global BRI is done only when the MAG says it revoked
                // (any other answer, "binding does not exist" too, may be
                // a MAG that does not read the global form as we do).
                if p.global && bra.status != bra_status::SUCCESS {
                    self.revoke_one_by_one(now, &p, bra.seq);
                    return;
                }
                self.held_bri_answered(now, bra.seq, bra.status);
                self.revocation_over(&p.revokes, bra.seq);
            }
            _ => self.counters.bra_unmatched += 1,
        }
    }
}

impl Lma {
    /// A BRI from a MAG (MAG-initiated revocation, RFC 5846 §8.2/§9.2): the
    /// MAG tells us the sessions it served are gone. Without G: the MN's
    /// sessions through that MAG (by MN-ID, and LLID when given); with G
    /// (bulk): every session through that MAG. Answered with a BRA carrying
    /// the BRI's sequence number, P, V and G (§6.2); the MAG gets no BRI back.
    pub(super) fn on_mag_bri(&mut self, peer: Peer, bri: RevocationIndication) {
        self.counters.bri_from_mag += 1;
        let global = bri.flags & br_flags::G != 0;
        let status = if !self.mags.contains(&peer.ip()) || bri.flags & br_flags::P == 0 {
            // Only a MAG we serve may revoke, and only proxy bindings.
            self.counters.bri_from_mag_refused += 1;
            if global {
                bra_status::GLOBAL_REVOCATION_NOT_AUTHORIZED
            } else {
                bra_status::BINDING_DOES_NOT_EXIST
            }
        } else if let Some(status) = revocation_trigger::refusal(bri.trigger, global) {
            self.counters.bri_from_mag_refused += 1;
            status
        } else if global
            && bri.trigger == revocation_trigger::PER_PEER_POLICY
            && bri.mn_id().is_none()
        {
            // §8.2: a per-peer global BRI names the MAG in an MN-ID option;
            // without it, "MUST reject ... Global Revocation NOT Authorized".
            self.counters.bri_from_mag_refused += 1;
            bra_status::GLOBAL_REVOCATION_NOT_AUTHORIZED
        } else if !global && bri.mn_id().is_none() {
            self.counters.bri_from_mag_refused += 1;
            bra_status::MN_IDENTITY_REQUIRED
        } else if bri.flags & br_flags::V != 0 {
            // V: the IPv4 home address binding alone (RFC 5846 §6.1). A
            // session here is one binding for both families: not split,
            // and said so (the MAG can revoke the whole binding instead).
            self.counters.bri_from_mag_refused += 1;
            bra_status::FUNCTION_NOT_SUPPORTED
        } else {
            let ids = self.revoked_by(peer, &bri, global);
            for id in &ids {
                self.ended(*id, GoneCause::Revoked(bri.trigger));
                self.delete(*id);
            }
            if ids.is_empty() {
                self.counters.bri_from_mag_unknown += 1;
                bra_status::BINDING_DOES_NOT_EXIST
            } else {
                bra_status::SUCCESS
            }
        };
        let bra = RevocationAck::answering(&bri, status);
        self.queue(peer, &Message::RevocationAck(bra));
    }

    /// The live sessions a MAG's BRI names: those through `peer` with the
    /// BRI's MN-ID (and LLID), or all of them for a global revocation; an
    /// MN-ID of the form `@realm` in a global one limits it to that realm.
    fn revoked_by(&self, peer: Peer, bri: &RevocationIndication, global: bool) -> Vec<u32> {
        let ip = peer.ip();
        let mn_id = bri.mn_id();
        let llid = bri.link_layer_id();
        // §8.2 (2), (3): with Home Network Prefix options, only the MN's
        // bindings holding one of them.
        let hnps = bri.hnps();
        let named_prefix = |b: &super::Bce| {
            hnps.is_empty()
                || b.hnp
                    .is_some_and(|h| hnps.iter().any(|&(l, p)| (l, p) == (h.len, h.prefix)))
        };
        let mut ids: Vec<u32> = self
            .bces
            .iter()
            .filter(|(_, b)| b.mag.ip() == ip && !b.deleting)
            .filter(|(_, b)| match (global, mn_id) {
                // Per-peer (§8.2): the MN-ID is the MAG's identity, every
                // binding through the MAG goes.
                (true, _) if bri.trigger == revocation_trigger::PER_PEER_POLICY => true,
                (true, Some(m)) if m.first() == Some(&b'@') => in_realm(&b.mn_id, &m[1..]),
                (true, _) => true,
                (false, Some(m)) => {
                    b.mn_id == m && llid.is_none_or(|l| b.llid == l) && named_prefix(b)
                }
                (false, None) => false,
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
