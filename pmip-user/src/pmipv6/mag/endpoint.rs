//! The MAG as an [`Endpoint`]: the daemon's access-side requests and events
//! in the protocol-neutral vocabulary of [`crate::agent::registrar`].
use std::time::Instant;

use super::{AttachRequest, FailReason, Mag, MagEvent, State};
use crate::agent::registrar::{
    self, counters_of, AccessCommand, AccessEvent, BindingState, BindingSummary, Counters,
    GoneCause,
};
use crate::agent::{Endpoint, Peer, Transmit};
use crate::dataplane::DpCommand;
use crate::store::{Record, RecordKey, Restored, StoreOp};

impl Mag {
    /// The MAG's attach request for a protocol-neutral one: the LMA is the
    /// configured one at the requested anchor address.
    fn attach_request(&self, r: registrar::AttachRequest) -> AttachRequest {
        let lma = self
            .lmas
            .iter()
            .find(|l| l.cfg.addr == r.anchor)
            .map(|l| l.cfg.name.clone())
            .unwrap_or_default();
        AttachRequest {
            at: r.at,
            mn_id: r.nai.into_bytes(),
            lma,
            ipv4: r.ipv4,
            requested_v4: r.static_v4.or(r.requested_v4),
            v4_hint: r.static_v4.is_none() && r.requested_hint,
            ipv6: r.ipv6,
            apn: r.apn.map(String::into_bytes),
            att: r.access_tech,
        }
    }
}

impl From<MagEvent> for AccessEvent {
    fn from(e: MagEvent) -> Self {
        match e {
            MagEvent::Registered {
                at,
                home_v4,
                default_router,
                hnp,
                lifetime,
            } => AccessEvent::Registered {
                at,
                home_v4,
                router_v4: default_router,
                hnp,
                lifetime,
            },
            MagEvent::Refreshed { at, lifetime } => AccessEvent::Refreshed { at, lifetime },
            MagEvent::RegistrationFailed { at, reason } => AccessEvent::Failed {
                at,
                reason: match reason {
                    FailReason::Rejected(s) => registrar::FailReason::Rejected(s.0),
                    FailReason::Timeout => registrar::FailReason::Timeout,
                    FailReason::LmaUnavailable => registrar::FailReason::AnchorUnavailable,
                    FailReason::BadAck => registrar::FailReason::BadReply,
                },
            },
            MagEvent::Deregistered { at } => AccessEvent::Gone {
                at,
                cause: GoneCause::Deregistered,
            },
            MagEvent::Revoked { at, trigger } => AccessEvent::Gone {
                at,
                cause: GoneCause::Revoked(trigger),
            },
            MagEvent::CheckPresence { at } => AccessEvent::CheckPresence { at },
            MagEvent::Restored {
                at,
                nai,
                home_v4,
                default_router,
                hnp,
                lifetime,
                left,
                aaa,
            } => AccessEvent::Restored {
                at,
                nai,
                home_v4,
                router_v4: default_router,
                hnp,
                lifetime,
                left,
                aaa,
            },
        }
    }
}

impl Endpoint for Mag {
    type Command = AccessCommand;
    type Event = AccessEvent;

    fn handle(&mut self, now: Instant, from: Peer, data: &[u8]) {
        Mag::handle(self, now, from, data)
    }
    fn command(&mut self, now: Instant, cmd: AccessCommand) {
        match cmd {
            AccessCommand::Attach(r) => {
                let alternate = r.alternate.and_then(|a| {
                    self.lmas
                        .iter()
                        .find(|l| l.cfg.addr == a)
                        .map(|l| l.cfg.name.clone())
                });
                let (at, aaa) = (r.at, r.aaa.clone());
                let req = self.attach_request(r);
                // A new entry takes the profile before its first PBU (lifetime).
                self.attach_with_alternate(now, req, alternate, aaa.clone());
                self.keep_aaa(&at, aaa);
            }
            AccessCommand::Detach(at) => self.detach(now, at),
            AccessCommand::DetachAll => self.detach_all(now),
            AccessCommand::UpdateAaa { at, aaa } => self.update_aaa(&at, aaa),
            AccessCommand::Presence { at, present } => self.presence(now, at, present),
            AccessCommand::ForgetRefusals { nai } => {
                self.forget_refusals(nai.as_bytes());
            }
            // Nothing of a MAG's changes live; a reload never sends it.
            AccessCommand::Reconfigure(_) => {}
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Mag::poll_transmit(self)
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        Mag::poll_dp(self)
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        self.store.pop_front()
    }
    fn restore(&mut self, now: Instant, records: Vec<(RecordKey, Record)>) -> Restored {
        crate::store::restore_access(self, now, records)
    }
    fn poll_event(&mut self) -> Option<AccessEvent> {
        Mag::poll_event(self).map(AccessEvent::from)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Mag::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Mag::handle_timeout(self, now)
    }
    fn bindings(&self, now: Instant) -> Vec<BindingSummary> {
        let mut v: Vec<BindingSummary> = self
            .entries
            .iter()
            .map(|(at, e)| {
                let g = e.granted.as_ref();
                BindingSummary {
                    nai: String::from_utf8_lossy(&e.req.mn_id).into_owned(),
                    at: Some(*at),
                    llid: at.mac.to_vec(),
                    state: match e.state {
                        State::Registering => BindingState::Registering,
                        State::Active => BindingState::Active,
                        State::Deregistering => BindingState::Deregistering,
                    },
                    peer: self.lmas[e.lma].peer.ip(),
                    home_v4: g.and_then(|g| g.home_v4),
                    hnp: g.and_then(|g| g.hnp),
                    uplink_key: g.map(|g| g.uplink_key).unwrap_or(0),
                    downlink_key: e.downlink_key,
                    lifetime: g.map(|g| g.lifetime).unwrap_or(self.cfg.lifetime),
                    left: g.map(|g| g.expires.saturating_duration_since(now)),
                    sub_id: e.sub_id,
                }
            })
            .collect();
        v.sort_by_key(|b| b.at);
        v
    }
    fn counters(&self) -> Counters {
        counters_of(&self.counters)
    }
    fn peers(&self) -> Vec<registrar::PeerSummary> {
        self.lmas
            .iter()
            .map(|l| registrar::PeerSummary {
                peer: l.peer.ip(),
                reachable: l.hb_up,
                restart_counter: l.restart_counter,
            })
            .collect()
    }
}
