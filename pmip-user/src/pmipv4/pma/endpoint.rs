//! The PMA as an [`Endpoint`]: the daemon's access-side requests and events
//! in the protocol-neutral vocabulary of [`crate::agent::registrar`].
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::super::wire::ext::AccessTech;
use super::super::wire::ReplyCode;
use super::{Phase, Pma, PmaEvent, Session, Subscriber};
use crate::agent::registrar::{
    counters_of, AccessCommand, AccessEvent, AttachRequest, BindingState, BindingSummary, Counters,
    FailReason, GoneCause, Reconfig,
};
use crate::agent::{Endpoint, Peer, Transmit};
use crate::dataplane::{AccessPoint, DpCommand};
use crate::store::{Record, RecordKey, Restored, StoreOp};

impl Pma {
    fn attach_request(&mut self, now: Instant, r: AttachRequest) {
        let (IpAddr::V4(ha), at) = (r.anchor, r.at) else {
            self.events.push_back(PmaEvent::RegistrationFailed {
                nai: r.nai,
                code: None,
            });
            return;
        };
        let mut s = Subscriber::new(&r.nai, at, ha);
        s.alternate_ha = r.alternate.and_then(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        });
        s.static_home = r.static_v4;
        s.imsi = r.imsi;
        s.interface_id = r.interface_id;
        s.access_tech = r.access_tech.map(AccessTech::from);
        s.dynamic_ha = self.cfg.dynamic_has.contains(&r.anchor);
        s.aaa = r.aaa;
        self.attach(now, s);
    }

    fn detach_at(&mut self, now: Instant, at: AccessPoint) {
        if let Some(nai) = self.nai_at(&at) {
            self.detach(now, &nai);
        }
    }

    /// A changed AAA profile for the session at `at`: written at once when
    /// the session has a record, else with the record when it gets one.
    fn update_aaa(&mut self, at: AccessPoint, aaa: Box<crate::store::AaaProfile>) {
        let Some(nai) = self.nai_at(&at) else { return };
        let Some(s) = self.sessions.get_mut(&nai) else {
            return;
        };
        s.sub.aaa = Some(aaa);
        if self.record_exists(&nai) {
            self.persist(&nai, at);
        }
    }

    fn nai_at(&self, at: &AccessPoint) -> Option<String> {
        self.sessions
            .iter()
            .find(|(_, s)| s.sub.at == *at)
            .map(|(n, _)| n.clone())
    }

    /// The access point a PMA event is about (the session may be gone already).
    fn event_at(&self, nai: &str) -> Option<AccessPoint> {
        self.sessions
            .get(nai)
            .map(|s| s.sub.at)
            .or_else(|| self.gone_at.get(nai).copied())
    }

    fn access_event(&mut self, e: PmaEvent) -> Option<AccessEvent> {
        let ev = match e {
            PmaEvent::Registered {
                nai,
                home_address,
                lifetime,
                ..
            } => AccessEvent::Registered {
                at: self.event_at(&nai)?,
                home_v4: Some((home_address, 0)),
                router_v4: None,
                hnp: None,
                lifetime: Duration::from_secs(lifetime.into()),
            },
            PmaEvent::RegistrationFailed { nai, code } => AccessEvent::Failed {
                at: self.event_at(&nai)?,
                reason: match code {
                    Some(ReplyCode::InsufficientResources) if !self.sessions.contains_key(&nai) => {
                        FailReason::NoResources
                    }
                    Some(c) => FailReason::Rejected(c.into()),
                    None => FailReason::Timeout,
                },
            },
            PmaEvent::Expired { nai } => AccessEvent::Gone {
                at: self.event_at(&nai)?,
                cause: GoneCause::Expired,
            },
            PmaEvent::Revoked { nai } => AccessEvent::Gone {
                at: self.event_at(&nai)?,
                cause: GoneCause::Revoked(0),
            },
            PmaEvent::Deregistered { nai } => AccessEvent::Gone {
                at: self.event_at(&nai)?,
                cause: GoneCause::Deregistered,
            },
            PmaEvent::Restored {
                nai,
                home_address,
                lifetime,
                left,
                aaa,
            } => AccessEvent::Restored {
                at: self.event_at(&nai)?,
                nai,
                home_v4: Some((home_address, 0)),
                router_v4: None,
                hnp: None,
                lifetime,
                left,
                aaa,
            },
        };
        Some(ev)
    }
}

impl Endpoint for Pma {
    type Command = AccessCommand;
    type Event = AccessEvent;

    fn handle(&mut self, now: Instant, from: Peer, data: &[u8]) {
        match from {
            Peer::V4(src) => Pma::handle(self, now, src, data),
            Peer::V6(_) => self.counters.rx_unknown_peer += 1,
        }
    }
    fn command(&mut self, now: Instant, cmd: AccessCommand) {
        match cmd {
            AccessCommand::Attach(r) => self.attach_request(now, r),
            AccessCommand::Detach(at) => self.detach_at(now, at),
            AccessCommand::UpdateAaa { at, aaa } => self.update_aaa(at, aaa),
            // RFC 3543 revocation has no "MN attached" answer: never asked.
            AccessCommand::Presence { .. } => {}
            // The HA's refusals are not remembered across attaches here.
            AccessCommand::ForgetRefusals { .. } => {}
            AccessCommand::Reconfigure(Reconfig::Pma(c)) => self.reconfigure(&c),
            AccessCommand::Reconfigure(_) => {}
            AccessCommand::DetachAll => {
                let mut nais: Vec<String> = self.sessions.keys().cloned().collect();
                nais.sort_unstable();
                for nai in nais {
                    self.detach(now, &nai);
                }
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        self.dp.pop_front()
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        self.store.pop_front()
    }
    fn restore(&mut self, now: Instant, records: Vec<(RecordKey, Record)>) -> Restored {
        crate::store::restore_access(self, now, records)
    }
    fn poll_event(&mut self) -> Option<AccessEvent> {
        while let Some(e) = Pma::poll_event(self) {
            if let Some(ev) = self.access_event(e) {
                return Some(ev);
            }
        }
        self.gone_at.clear();
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|std::cmp::Reverse((t, _, _))| *t)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Pma::handle_timeout(self, now)
    }
    fn bindings(&self, now: Instant) -> Vec<BindingSummary> {
        let mut v: Vec<BindingSummary> = self
            .sessions
            .values()
            .map(|s| BindingSummary {
                nai: s.sub.nai.clone(),
                at: Some(s.sub.at),
                llid: s.sub.at.mac.to_vec(),
                state: s.shown_state(),
                peer: IpAddr::V4(s.ha()),
                home_v4: s.home.map(|h| (h, 0)),
                hnp: None,
                uplink_key: s.installed.as_ref().map_or(0, |b| b.uplink_key),
                downlink_key: s.downlink_key,
                lifetime: s
                    .granted
                    .unwrap_or(Duration::from_secs(self.cfg.lifetime_s.into())),
                left: s.expires_at.map(|e| e.saturating_duration_since(now)),
                sub_id: s.sub_id,
            })
            .collect();
        v.sort_by(|a, b| a.nai.cmp(&b.nai));
        v
    }
    fn counters(&self) -> Counters {
        counters_of(&self.counters)
    }
}

impl Session {
    /// The state `show bindings` gives: a registered subscriber that moved
    /// to another HA (failover) is registering there until that HA accepts;
    /// its binding at the old one is what the fast path still holds.
    fn shown_state(&self) -> BindingState {
        let elsewhere = self
            .installed
            .as_ref()
            .is_some_and(|b| b.tunnel.remote != std::net::IpAddr::V4(self.ha()));
        if self.phase == Phase::Registered && elsewhere {
            BindingState::Registering
        } else {
            self.phase.state()
        }
    }
}

impl Phase {
    fn state(self) -> BindingState {
        match self {
            Phase::Registering => BindingState::Registering,
            Phase::Registered => BindingState::Active,
            Phase::Deregistering => BindingState::Deregistering,
        }
    }
}
