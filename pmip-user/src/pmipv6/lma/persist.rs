//! What the LMA keeps in the store (one [`AnchorRecord`] per binding cache
//! entry, keyed by binding id) and how it takes its bindings up again.
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::wire::{revocation_trigger, AccessTechType};
use super::{Bce, Lma, TimerKey};
use crate::agent::{Clock, Peer};
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};
use crate::store::{self, wall_ms, AnchorRecord, Proto, Record, RecordKey, StoreOp};

/// Queue of store writes (a field of the LMA).
pub(super) type StoreQueue = VecDeque<StoreOp>;

impl Lma {
    /// Queues the durable form of binding `id`: its record while it is
    /// live, else a delete (deregistered, expired, revoked, deleted).
    pub(super) fn persist(&mut self, id: u32) {
        let key = RecordKey::Binding(id);
        let op = match self.record(id) {
            Some(r) => StoreOp::Put(key, Record::Anchor(r)),
            None => StoreOp::Delete(key),
        };
        self.store.push_back(op);
    }

    fn record(&self, id: u32) -> Option<AnchorRecord> {
        let b = self.bces.get(&id)?;
        // A revocation in progress is kept (RFC 5846 §8.1, `revocation.rs`)
        // with its BRI's trigger; any other entry being deleted is gone. A
        // global BRI's trigger is not one a single entry's BRI may carry
        // (§6.2.1): a restart revokes such an entry on its own, administratively.
        let revoking = b.revoking.map(|seq| {
            self.bris
                .get(&seq)
                .filter(|p| !p.global)
                .map_or(revocation_trigger::ADMINISTRATIVE, |p| p.trigger)
        });
        if b.deleting && revoking.is_none() {
            return None;
        }
        Some(AnchorRecord {
            proto: Proto::Pmipv6,
            nai: String::from_utf8_lossy(&b.mn_id).into_owned(),
            llid: b.llid.clone(),
            peer: b.mag.ip(),
            peer_port: match b.mag {
                Peer::V4(s) => s.port(),
                Peer::V6(_) => 0,
            },
            sub_id: b.sub_id,
            uplink_key: b.uplink_key,
            downlink_key: b.downlink_key,
            home_v4: b.home_v4.map(|(a, _)| a),
            home_v4_len: b.home_v4.map_or(0, |(_, l)| l),
            from_pool: true,
            hnp: b.hnp.map(Into::into),
            att: b.att.map(u8::from),
            lifetime_s: b.lifetime.as_secs() as u32,
            expires_ms: wall_ms(self.clock.wall(b.deadline)),
            last_ident: b.last_ts,
            revocable: self.cfg.revocation,
            last_seq: b.last_seq,
            revoking,
            ha_revocations: Vec::new(),
            released: false,
        })
    }

    fn peer_of(r: &AnchorRecord) -> Peer {
        match r.peer {
            IpAddr::V4(a) => Peer::V4(SocketAddrV4::new(a, r.peer_port)),
            IpAddr::V6(a) => Peer::V6(a),
        }
    }

    /// The next store write; when none is left, the answers held for the
    /// last ones wait for their result (`Endpoint::stored`).
    pub(super) fn take_store(&mut self) -> Option<StoreOp> {
        let op = self.store.pop_front();
        match op {
            Some(_) => self.unconfirmed.took(),
            None => self.unconfirmed.drained(),
        }
        op
    }
}

impl store::AnchorRestore for Lma {
    const PROTO: Proto = Proto::Pmipv6;

    fn key_of(r: &AnchorRecord) -> RecordKey {
        RecordKey::Binding(r.sub_id)
    }

    fn binding_of_record(&self, r: &AnchorRecord) -> Option<AnchorBinding> {
        Some(AnchorBinding {
            sub_id: r.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.local.for_peer(&Self::peer_of(r))?,
                remote: r.peer,
            },
            uplink_key: r.uplink_key,
            downlink_key: r.downlink_key,
            home_v4: r.home_v4,
            hnp: r.hnp.map(Into::into),
        })
    }

    fn restore_one(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> Option<()> {
        let id = r.sub_id;
        let peer = Lma::peer_of(r);
        if !self.mags.contains(&r.peer) || self.cfg.local.for_peer(&peer).is_none() {
            return None;
        }
        // A revocation in progress goes on only towards a MAG we revoke at.
        if r.revoking.is_some() && !self.revokes_at(r.peer) {
            return None;
        }
        if self.bces.contains_key(&id) || !self.ids.reserve(id) {
            return None;
        }
        if let Some(a) = r.home_v4 {
            if let Some(p) = self.v4.iter_mut().find(|p| p.contains(a)) {
                if !p.take(a) {
                    self.ids.release(id);
                    return None;
                }
            }
        }
        if let (Some(h), Some(p)) = (r.hnp, self.v6.as_mut()) {
            p.reserve(h.prefix.octets()[..8].try_into().unwrap_or_default());
        }
        let deadline = now + Duration::from_millis(r.expires_ms.saturating_sub(now_ms));
        self.bces.insert(
            id,
            Bce {
                mn_id: r.nai.as_bytes().to_vec(),
                llid: r.llid.clone(),
                mag: peer,
                sub_id: r.sub_id,
                uplink_key: r.uplink_key,
                downlink_key: r.downlink_key,
                home_v4: r.home_v4.map(|a| (a, r.home_v4_len)),
                hnp: r.hnp.map(Into::into),
                att: r.att.map(AccessTechType::from),
                lla: None,
                lifetime: Duration::from_secs(r.lifetime_s.into()),
                last_ts: r.last_ident,
                last_seq: r.last_seq,
                deleting: false,
                revoking: None,
                deadline,
            },
        );
        self.bce_by_id.insert(r.nai.as_bytes(), id);
        self.count_mag_bce(peer.ip(), true);
        self.arm(deadline, TimerKey::Bce(id));
        self.note_mag(now, peer);
        if let Some(trigger) = r.revoking {
            // The revocation the last run began (RFC 5846 §8.1): the BRI
            // goes again, the entry stays without forwarding until it ends.
            let hnp = r.hnp.map(Into::into);
            let seq = self.send_bri(
                now,
                peer,
                (r.nai.as_bytes().to_vec(), r.llid.clone(), hnp),
                trigger,
            );
            self.counters.revocations_resumed += 1;
            self.revoking(id, seq);
            return Some(());
        }
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::InstallAnchor(ab));
        }
        Some(())
    }

    fn restore_parts(&mut self) -> (&Clock, &mut StoreQueue, &mut VecDeque<DpCommand>) {
        (&self.clock, &mut self.store, &mut self.dp)
    }
}
