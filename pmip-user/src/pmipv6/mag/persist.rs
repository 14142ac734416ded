//! What the MAG keeps in the store (one [`AccessRecord`] per registered
//! attachment) and how it takes its bindings up again after a restart.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::super::wire::HandoffIndicator;
use super::{AttachRequest, Entry, Granted, Mag, MagEvent, State};
use crate::agent::Clock;
use crate::dataplane::{AccessBinding, AccessPoint, DpCommand, TunnelEnds};
use crate::store::{self, wall_ms, AccessRecord, Proto, Record, RecordKey, StoreOp};

impl Mag {
    /// Queues the durable form of `at`'s binding: its record while the
    /// anchor has accepted it (marked `leaving` while the subscriber's
    /// deregistration or revocation is in progress), else a delete.
    pub(super) fn persist(&mut self, at: AccessPoint) {
        let op = match self.record(&at) {
            Some(r) => StoreOp::Put(RecordKey::Access(at), Record::Access(r)),
            None => StoreOp::Delete(RecordKey::Access(at)),
        };
        self.store.push_back(op);
    }

    fn record(&self, at: &AccessPoint) -> Option<AccessRecord> {
        let e = self.entries.get(at)?;
        let g = e.granted.as_ref()?;
        let wall = |t: Instant| wall_ms(self.clock.wall(t));
        let lma = &self.lmas[e.lma];
        let refresh = if e.state == State::Active {
            e.deadline
        } else {
            // A refresh is under way: after a restart, send it again at once.
            g.expires - g.lifetime
        };
        Some(AccessRecord {
            proto: Proto::Pmipv6,
            nai: String::from_utf8_lossy(&e.req.mn_id).into_owned(),
            anchor: lma.cfg.addr,
            primary: self.lma_addr(&e.req.lma).unwrap_or(lma.cfg.addr),
            alternate: e.alternate.map(|i| self.lmas[i].cfg.addr),
            sub_id: e.sub_id,
            downlink_key: e.downlink_key,
            uplink_key: g.uplink_key,
            home_v4: g.home_v4.map(|(a, _)| a),
            home_v4_len: g.home_v4.map_or(0, |(_, l)| l),
            router_v4: g.default_router,
            hnp: g.hnp.map(Into::into),
            want_v4: e.req.ipv4,
            want_v6: e.req.ipv6,
            static_v4: e.req.requested_v4,
            apn: e
                .req
                .apn
                .as_ref()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
            imsi: None,
            interface_id: None,
            lifetime_s: g.lifetime.as_secs() as u32,
            expires_ms: wall(g.expires),
            refresh_ms: wall(refresh),
            last_ident: self.last_ts,
            seq: e.seq,
            att: e.req.att,
            anchor_revocation: false,
            aaa: e.aaa.clone(),
            leaving: e.state == State::Deregistering,
        })
    }

    fn lma_addr(&self, name: &str) -> Option<std::net::IpAddr> {
        self.lmas
            .iter()
            .find(|l| l.cfg.name == name)
            .map(|l| l.cfg.addr)
    }

    fn lma_name(&self, addr: std::net::IpAddr) -> Option<String> {
        self.lmas
            .iter()
            .find(|l| l.cfg.addr == addr)
            .map(|l| l.cfg.name.clone())
    }

    /// Keeps the AAA's profile with `at`'s binding (written with its record).
    pub(super) fn keep_aaa(&mut self, at: &AccessPoint, aaa: Option<Box<store::AaaProfile>>) {
        if let Some(e) = self.entries.get_mut(at) {
            if aaa.is_some() || e.granted.is_none() {
                e.aaa = aaa;
            }
        }
    }

    /// A changed AAA profile for `at`'s binding: written at once when the
    /// binding has a record, else with the record when it gets one.
    pub(super) fn update_aaa(&mut self, at: &AccessPoint, aaa: Box<store::AaaProfile>) {
        let Some(e) = self.entries.get_mut(at) else {
            return;
        };
        e.aaa = Some(aaa);
        if e.granted.is_some() && e.state != State::Deregistering {
            self.persist(*at);
        }
    }
}

impl store::AccessRestore for Mag {
    const PROTO: Proto = Proto::Pmipv6;

    fn note_dropped(&mut self) {
        self.counters.restore_dropped += 1;
    }

    /// The map entry a record stands for (to remove it).
    fn binding_of_record(&self, at: AccessPoint, r: &AccessRecord) -> Option<AccessBinding> {
        let lma = self.lmas.iter().find(|l| l.cfg.addr == r.anchor)?;
        Some(AccessBinding {
            at,
            sub_id: r.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.local.for_peer(&lma.peer)?,
                remote: r.anchor,
            },
            uplink_key: r.uplink_key,
            downlink_key: r.downlink_key,
            home_v4: r.home_v4,
            gateway_v4: r.router_v4,
            hnp: r.hnp.map(Into::into),
        })
    }

    fn restore_one(
        &mut self,
        now: Instant,
        now_ms: u64,
        at: AccessPoint,
        r: &AccessRecord,
    ) -> Option<()> {
        let lma = self.lmas.iter().position(|l| l.cfg.addr == r.anchor)?;
        self.cfg.local.for_peer(&self.lmas[lma].peer)?;
        if self.entries.contains_key(&at) || !self.ids.reserve(r.sub_id) {
            return None;
        }
        let later = |ms: u64| now + Duration::from_millis(ms.saturating_sub(now_ms));
        let granted = Granted {
            uplink_key: r.uplink_key,
            home_v4: r.home_v4.map(|a| (a, r.home_v4_len)),
            default_router: r.router_v4,
            hnp: r.hnp.map(Into::into),
            lifetime: Duration::from_secs(r.lifetime_s.into()),
            expires: later(r.expires_ms),
        };
        let req = AttachRequest {
            at,
            mn_id: r.nai.as_bytes().to_vec(),
            lma: self
                .lma_name(r.primary)
                .unwrap_or_else(|| self.lmas[lma].cfg.name.clone()),
            ipv4: r.want_v4,
            requested_v4: r.static_v4,
            v4_hint: false,
            ipv6: r.want_v6,
            apn: r.apn.clone().map(String::into_bytes),
            att: r.att,
        };
        self.by_mn_id.entry(req.mn_id.clone()).or_default().push(at);
        self.seq = self.seq.max(r.seq);
        self.last_ts = self.last_ts.max(r.last_ident);
        let revoking = r.leaving && self.cfg.revoke_to.contains(&r.anchor);
        self.entries.insert(
            at,
            Entry {
                req,
                lma,
                sub_id: r.sub_id,
                downlink_key: r.downlink_key,
                state: match r.leaving {
                    true => State::Deregistering,
                    false => State::Active,
                },
                seq: r.seq,
                retx: 0,
                timeout: self.cfg.retx_initial,
                deadline: now,
                granted: Some(granted.clone()),
                last: None,
                alternate: r
                    .alternate
                    .and_then(|a| self.lmas.iter().position(|l| l.cfg.addr == a))
                    .filter(|a| *a != lma),
                handoff: HandoffIndicator::HandoffStateNotChanged,
                revoking,
                aaa: r.aaa.clone(),
                transient: None,
                unechoed: false,
            },
        );
        if r.leaving {
            // The subscriber had left: nothing to install or serve; the
            // LMA is told again (RFC 5213 §6.9.1.4, RFC 5846 §8.2), and
            // the entry and its record go with the answer or the timeout,
            // as they would have without the stop.
            self.counters.deregistrations_resumed += 1;
            // Its map entry went with the detach, unless the stop came
            // before that was applied and the pins kept it.
            if let Some(b) = self.access_binding(&at) {
                self.dp.push_back(DpCommand::RemoveAccess(b));
            }
            if revoking {
                self.send_bri(now, at);
            } else {
                self.counters.dereg_sent += 1;
                self.send_pbu(now, at, true);
            }
            return Some(());
        }
        // The refresh comes when it was due (at once if it was due while we
        // were down): the anchor never sees a gap.
        self.arm(at, later(r.refresh_ms));
        if let Some(b) = self.access_binding(&at) {
            self.dp.push_back(DpCommand::InstallAccess(b));
        }
        self.counters.restored += 1;
        self.events.push_back(MagEvent::Restored {
            at,
            nai: r.nai.clone(),
            home_v4: granted.home_v4,
            default_router: granted.default_router,
            hnp: granted.hnp,
            lifetime: granted.lifetime,
            left: granted.expires.saturating_duration_since(now),
            aaa: r.aaa.clone(),
        });
        Some(())
    }

    fn restore_parts(&mut self) -> (&Clock, &mut StoreQueue, &mut VecDeque<DpCommand>) {
        (&self.clock, &mut self.store, &mut self.dp)
    }
}

/// Queue of store writes (a field of the MAG).
pub(super) type StoreQueue = VecDeque<StoreOp>;
