//! What the PMA keeps in the store (one [`AccessRecord`] per registered
//! subscriber, keyed by its attachment) and how it takes its bindings up
//! again after a restart.
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::{Phase, Pma, PmaEvent, Session, Subscriber};
use crate::agent::Clock;
use crate::dataplane::{AccessBinding, AccessPoint, DpCommand, TunnelEnds};
use crate::store::{self, wall_ms, AccessRecord, Proto, Record, RecordKey, StoreOp};

/// Queue of store writes (a field of the PMA).
pub(super) type StoreQueue = VecDeque<StoreOp>;

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// What a session's record keeps of its HA's binding: the uplink key and
/// when the binding ends, and whether the device has left (the HA not told
/// yet). None: no record — not accepted by the HA, or left and told.
fn kept(s: &Session) -> Option<(u32, Instant, bool)> {
    if s.phase == Phase::Deregistering {
        let (key, expires) = s.left?;
        return Some((key, expires, true));
    }
    Some((s.installed.as_ref()?.uplink_key, s.expires_at?, false))
}

impl Pma {
    /// Queues the durable form of `nai`'s session, filed under `at`: its
    /// record while the HA has accepted it and the device is attached,
    /// else a delete.
    pub(super) fn persist(&mut self, nai: &str, at: AccessPoint) {
        let key = RecordKey::Access(at);
        let op = match self.record(nai) {
            Some(r) => StoreOp::Put(key, Record::Access(r)),
            None => StoreOp::Delete(key),
        };
        self.store.push_back(op);
    }

    /// Would `nai`'s session be written as a record (and not as a delete)?
    /// Asked without building the record, which `persist` builds anyway.
    pub(super) fn record_exists(&self, nai: &str) -> bool {
        self.sessions.get(nai).and_then(kept).is_some()
    }

    fn record(&self, nai: &str) -> Option<AccessRecord> {
        let s = self.sessions.get(nai)?;
        let (uplink_key, expires, leaving) = kept(s)?;
        let wall = |t: Instant| wall_ms(self.clock.wall(t));
        Some(AccessRecord {
            proto: Proto::Pmipv4,
            nai: nai.to_string(),
            anchor: IpAddr::V4(s.ha()),
            primary: IpAddr::V4(s.has[0]),
            alternate: s.has.get(1).copied().map(IpAddr::V4),
            sub_id: s.sub_id,
            downlink_key: s.downlink_key,
            uplink_key,
            home_v4: s.home,
            home_v4_len: 0,
            router_v4: None,
            hnp: None,
            want_v4: true,
            want_v6: false,
            static_v4: s.sub.static_home,
            apn: None,
            imsi: s.sub.imsi.clone(),
            interface_id: s.sub.interface_id.clone(),
            lifetime_s: s.granted.map_or(0, |g| g.as_secs() as u32),
            expires_ms: wall(expires),
            // A renewal under way: again at once after a restart.
            refresh_ms: wall(
                s.renew_at
                    .unwrap_or(expires - s.granted.unwrap_or_default()),
            ),
            last_ident: self.idents.get(&s.ha()).map_or(0, |g| g.last()),
            seq: 0,
            att: None,
            anchor_revocation: s.ha_revocation,
            aaa: s.sub.aaa.clone(),
            leaving,
        })
    }
}

impl store::AccessRestore for Pma {
    const PROTO: Proto = Proto::Pmipv4;

    fn binding_of_record(&self, at: AccessPoint, r: &AccessRecord) -> Option<AccessBinding> {
        Some(AccessBinding {
            at,
            sub_id: r.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.address.into(),
                remote: r.anchor,
            },
            uplink_key: r.uplink_key,
            downlink_key: r.downlink_key,
            home_v4: r.home_v4,
            gateway_v4: None,
            hnp: None,
        })
    }

    fn restore_one(
        &mut self,
        now: Instant,
        now_ms: u64,
        at: AccessPoint,
        r: &AccessRecord,
    ) -> Option<()> {
        let ha = v4(r.anchor)?;
        let home = r.home_v4?;
        if !self.cfg.home_agents.iter().any(|h| h.address == ha)
            || self.sessions.contains_key(&r.nai)
        {
            return None;
        }
        if !self.keys.reserve(r.downlink_key) {
            return None;
        }
        if !self.ids.reserve(r.sub_id) {
            self.keys.release(r.downlink_key);
            return None;
        }
        let later = |ms: u64| now + Duration::from_millis(ms.saturating_sub(now_ms));
        let mut sub = Subscriber::new(&r.nai, at, v4(r.primary).unwrap_or(ha));
        sub.alternate_ha = r.alternate.and_then(v4);
        sub.static_home = r.static_v4;
        sub.imsi = r.imsi.clone();
        sub.interface_id = r.interface_id.clone();
        sub.aaa = r.aaa.clone();
        let mut has = vec![sub.home_agent];
        has.extend(sub.alternate_ha);
        let ha_idx = has.iter().position(|h| *h == ha);
        let installed = self.binding_of_record(at, r)?;
        self.idents.entry(ha).or_default().floor(r.last_ident);
        let leaving = r.leaving.then(|| (r.uplink_key, later(r.expires_ms)));
        let s = Session {
            home: Some(home),
            sub,
            phase: match leaving {
                Some(_) => Phase::Deregistering,
                None => Phase::Registered,
            },
            assigned_ha: ha_idx.is_none().then_some(ha),
            ha_idx: ha_idx.unwrap_or(0),
            has,
            sub_id: r.sub_id,
            downlink_key: r.downlink_key,
            installed: Some(installed.clone()),
            pending_ident: None,
            attempts: 0,
            attempts_this_ha: 0,
            backoff: None,
            next_retx: None,
            resync_resend: false,
            renew_at: Some(later(r.refresh_ms)),
            expires_at: Some(later(r.expires_ms)),
            granted: Some(Duration::from_secs(r.lifetime_s.into())),
            // Set again by the next request, before any reply can match.
            requested_lifetime: u16::try_from(r.lifetime_s).unwrap_or(u16::MAX),
            ha_revocation: r.anchor_revocation,
            ha_revocation_stamp: None,
            revoking: None,
            left: leaving,
            gen: 0,
        };
        self.sessions.insert(r.nai.clone(), s);
        if leaving.is_some() {
            // The device had left: nothing to install or serve; the HA is
            // told again (a deregistration, or our revocation as chosen
            // before, RFC 3543 §4.2.3.1), and the session and its record
            // go with the answer or the last retransmission, as they would
            // have without the stop. Its map entry went with the detach,
            // unless the stop came before that was applied and the pins
            // kept it.
            if let Some(s) = self.sessions.get_mut(&r.nai) {
                s.installed = None;
                s.renew_at = None;
                s.expires_at = None;
            }
            self.dp.push_back(DpCommand::RemoveAccess(installed));
            self.counters.deregistrations_resumed += 1;
            self.choose_revocation(&r.nai);
            self.start_transaction(now, &r.nai);
            return Some(());
        }
        self.arm(&r.nai);
        self.dp.push_back(DpCommand::InstallAccess(installed));
        self.counters.restored += 1;
        self.events.push_back(PmaEvent::Restored {
            nai: r.nai.clone(),
            home_address: home,
            lifetime: Duration::from_secs(r.lifetime_s.into()),
            left: Duration::from_millis(r.expires_ms.saturating_sub(now_ms)),
            aaa: r.aaa.clone(),
        });
        Some(())
    }

    fn restore_parts(&mut self) -> (&Clock, &mut StoreQueue, &mut VecDeque<DpCommand>) {
        (&self.clock, &mut self.store, &mut self.dp)
    }
}
