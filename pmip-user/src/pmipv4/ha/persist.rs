//! What the HA keeps in the store (one [`AnchorRecord`] per mobility
//! binding, keyed by NAI) and how it takes its bindings up again.
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Binding, Ha, TimerKey};
use crate::agent::Clock;
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};
use crate::store::{self, wall_ms, AnchorRecord, Proto, Record, RecordKey, StoreOp};

/// Queue of store writes (a field of the HA).
pub(super) type StoreQueue = VecDeque<StoreOp>;

impl Ha {
    /// Queues the durable form of `nai`'s binding: its record while it
    /// exists, else a delete.
    pub(super) fn persist(&mut self, nai: &str) {
        let key = RecordKey::Nai(nai.to_string());
        let op = match self.bindings.get(nai) {
            Some(b) => StoreOp::Put(
                key,
                Record::Anchor(AnchorRecord {
                    proto: Proto::Pmipv4,
                    nai: nai.to_string(),
                    llid: Vec::new(),
                    peer: IpAddr::V4(b.pma),
                    peer_port: super::PORT,
                    sub_id: b.anchor.sub_id,
                    uplink_key: b.anchor.uplink_key,
                    downlink_key: b.anchor.downlink_key,
                    home_v4: Some(b.home),
                    home_v4_len: 0,
                    from_pool: b.from_pool,
                    hnp: None,
                    att: None,
                    lifetime_s: b.lifetime_s.into(),
                    expires_ms: wall_ms(self.clock.wall(b.expires_at)),
                    last_ident: b.last_ident,
                    revocable: b.revocable,
                    last_seq: 0,
                    revoking: None,
                }),
            ),
            None => StoreOp::Delete(key),
        };
        self.store.push_back(op);
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

impl store::AnchorRestore for Ha {
    const PROTO: Proto = Proto::Pmipv4;

    fn key_of(r: &AnchorRecord) -> RecordKey {
        RecordKey::Nai(r.nai.clone())
    }

    fn binding_of_record(&self, r: &AnchorRecord) -> Option<AnchorBinding> {
        Some(AnchorBinding {
            sub_id: r.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.address.into(),
                remote: r.peer,
            },
            uplink_key: r.uplink_key,
            downlink_key: r.downlink_key,
            home_v4: Some(r.home_v4?),
            hnp: None,
        })
    }

    fn restore_one(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> Option<()> {
        let IpAddr::V4(pma) = r.peer else {
            return None;
        };
        let home = r.home_v4?;
        if !self.peers.contains_key(&pma) || self.bindings.contains_key(&r.nai) {
            return None;
        }
        if r.from_pool && !self.take_home(home) {
            return None;
        }
        if !self.keys.reserve(r.uplink_key) || !self.sub_ids.reserve(r.sub_id) {
            self.keys.release(r.uplink_key);
            self.release_home(home, r.from_pool);
            return None;
        }
        let anchor = self.binding_of_record(r)?;
        let expires_at = now + Duration::from_millis(r.expires_ms.saturating_sub(now_ms));
        self.gen += 1;
        self.bindings.insert(
            r.nai.clone(),
            Binding {
                home,
                from_pool: r.from_pool,
                pma,
                anchor: anchor.clone(),
                last_ident: r.last_ident,
                expires_at,
                lifetime_s: r.lifetime_s.min(u16::MAX.into()) as u16,
                gen: self.gen,
                revocable: r.revocable,
                revocation_stamp: None,
            },
        );
        self.timers.push(Reverse((
            expires_at,
            TimerKey::Binding(r.nai.clone(), self.gen),
        )));
        self.dp.push_back(DpCommand::InstallAnchor(anchor));
        Some(())
    }

    fn restore_parts(&mut self) -> (&Clock, &mut StoreQueue, &mut VecDeque<DpCommand>) {
        (&self.clock, &mut self.store, &mut self.dp)
    }
}
