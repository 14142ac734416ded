//! What the HA keeps in the store (one [`AnchorRecord`] per mobility
//! binding, keyed by NAI) and how it takes its bindings up again.
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::{Binding, Ha, TimerKey};
use crate::agent::Clock;
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};
use crate::store::{self, wall_ms, AnchorRecord, Proto, Record, RecordKey, StoreOp};

/// Queue of store writes (a field of the HA).
pub(super) type StoreQueue = VecDeque<StoreOp>;

impl Ha {
    /// Queues the durable form of `nai`'s binding: its record while it
    /// exists, with the revocations in progress for its home address
    /// (RFC 3543 §4.2.2.1); a released binding's record while its
    /// revocation is in progress; else a delete.
    pub(super) fn persist(&mut self, nai: &str) {
        let key = RecordKey::Nai(nai.to_string());
        let revs: Vec<(Ipv4Addr, Ipv4Addr, u64)> = if self.revocations.is_empty() {
            Vec::new()
        } else {
            self.revocations
                .iter()
                .filter(|(_, r)| r.nai == nai)
                .map(|(&(pma, home), r)| (pma, home, wall_ms(self.clock.wall(r.until))))
                .collect()
        };
        let of_home = |home: Ipv4Addr| -> Vec<(Ipv4Addr, u64)> {
            revs.iter()
                .filter(|r| r.1 == home)
                .map(|r| (r.0, r.2))
                .collect()
        };
        let op = match (self.bindings.get(nai), revs.first()) {
            (None, Some(&(pma, home, _))) => {
                let ha_revocations = of_home(home);
                let until = ha_revocations.iter().map(|r| r.1).max().unwrap_or(0);
                StoreOp::Put(
                    key,
                    Record::Anchor(released(nai, pma, home, until, ha_revocations)),
                )
            }
            (Some(b), _) => StoreOp::Put(
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
                    ha_revocations: of_home(b.home),
                    released: false,
                }),
            ),
            (None, None) => StoreOp::Delete(key),
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

/// The record of a released binding whose revocations are in progress
/// (`AnchorRecord::released`): no binding, only its home address and the
/// PMAs to revoke at.
fn released(
    nai: &str,
    pma: Ipv4Addr,
    home: Ipv4Addr,
    until_ms: u64,
    ha_revocations: Vec<(Ipv4Addr, u64)>,
) -> AnchorRecord {
    AnchorRecord {
        proto: Proto::Pmipv4,
        nai: nai.to_string(),
        llid: Vec::new(),
        peer: IpAddr::V4(pma),
        peer_port: super::PORT,
        sub_id: 0,
        uplink_key: 0,
        downlink_key: 0,
        home_v4: Some(home),
        home_v4_len: 0,
        from_pool: false,
        hnp: None,
        att: None,
        lifetime_s: 0,
        expires_ms: until_ms,
        last_ident: 0,
        revocable: true,
        last_seq: 0,
        revoking: None,
        ha_revocations,
        released: true,
    }
}

impl Ha {
    /// The revocations record `r` carries that are still due (RFC 3543
    /// §4.2.2.1): sent again, as the last run would have retransmitted
    /// them, each until the time it had. How many went.
    fn resume_revocations(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> usize {
        let Some(home) = r.home_v4 else {
            return 0;
        };
        let mut n = 0;
        for &(pma, until_ms) in &r.ha_revocations {
            if until_ms <= now_ms {
                continue;
            }
            let until = now + Duration::from_millis(until_ms - now_ms);
            self.send_revocation(now, (pma, home), &r.nai, until);
            if self.revocations.contains_key(&(pma, home)) {
                self.counters.revocations_resumed += 1;
                n += 1;
            }
        }
        n
    }
}

impl store::AnchorRestore for Ha {
    const PROTO: Proto = Proto::Pmipv4;

    fn key_of(r: &AnchorRecord) -> RecordKey {
        RecordKey::Nai(r.nai.clone())
    }

    fn binding_of_record(&self, r: &AnchorRecord) -> Option<AnchorBinding> {
        if r.released {
            // No map entry of its own: its home address may serve another
            // binding by now.
            return None;
        }
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

    fn restore_record_only(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> bool {
        r.released && self.resume_revocations(now, now_ms, r) > 0
    }

    fn restore_one(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> Option<()> {
        let IpAddr::V4(pma) = r.peer else {
            return None;
        };
        if r.released {
            return None;
        }
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
        self.resume_revocations(now, now_ms, r);
        Some(())
    }

    fn restore_parts(&mut self) -> (&Clock, &mut StoreQueue, &mut VecDeque<DpCommand>) {
        (&self.clock, &mut self.store, &mut self.dp)
    }
}
