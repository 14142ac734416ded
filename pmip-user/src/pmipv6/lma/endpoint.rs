//! The LMA as an [`Endpoint`]: the anchor runner's requests and the binding
//! events, in the protocol-neutral vocabulary of [`crate::agent::registrar`].
use std::time::Instant;

use super::super::wire::revocation_trigger;
use super::Lma;
use crate::agent::registrar::{
    counters_of, AnchorCommand, AnchorEvent, BindingState, BindingSummary, Counters, GoneCause,
    PeerSummary, Reconfig,
};
use crate::agent::{Endpoint, Held, Peer, Transmit};
use crate::dataplane::DpCommand;
use crate::store::{Record, RecordKey, Restored, StoreOp};

impl Lma {
    pub(super) fn created(&mut self, mn_id: &[u8], peer: Peer) {
        self.events.push_back(AnchorEvent::Created {
            nai: String::from_utf8_lossy(mn_id).into_owned(),
            peer: peer.ip(),
        });
    }

    pub(super) fn moved(&mut self, mn_id: &[u8], from: Peer, to: Peer) {
        self.events.push_back(AnchorEvent::Moved {
            nai: String::from_utf8_lossy(mn_id).into_owned(),
            from: from.ip(),
            to: to.ip(),
        });
    }

    /// Binding `id` ends (call before it is deleted).
    pub(super) fn ended(&mut self, id: u32, cause: GoneCause) {
        if let Some(b) = self.bces.get(&id) {
            self.events.push_back(AnchorEvent::Removed {
                nai: String::from_utf8_lossy(&b.mn_id).into_owned(),
                cause,
            });
        }
    }
}

impl Endpoint for Lma {
    type Command = AnchorCommand;
    type Event = AnchorEvent;

    fn handle(&mut self, now: Instant, from: Peer, data: &[u8]) {
        Lma::handle(self, now, from, data)
    }
    fn command(&mut self, now: Instant, cmd: AnchorCommand) {
        match cmd {
            AnchorCommand::Release { nai } => {
                // RFC 5846 §6.1: per-MN revocation, administrative reason.
                let found = self.revoke(now, nai.as_bytes(), revocation_trigger::ADMINISTRATIVE);
                tracing::info!(%nai, found, "release");
            }
            AnchorCommand::ReleasePeer { peer, realm } => {
                let n = self.revoke_peer(now, peer, realm.as_deref());
                tracing::info!(%peer, ?realm, bindings = n, "release through a MAG");
            }
            AnchorCommand::Reconfigure(Reconfig::Lma(c)) => self.reconfigure(&c),
            AnchorCommand::Reconfigure(_) => {}
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Lma::poll_transmit(self)
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        Lma::poll_dp(self)
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        self.take_store()
    }
    fn stored(&mut self, _now: Instant, ok: bool) {
        self.store_result(ok, &mut [])
    }
    fn writes_in_flight(&self) -> usize {
        self.writes_in_flight
    }
    fn pass_max(&self) -> usize {
        self.pass_max
    }
    fn stored_held(&mut self, _now: Instant, ok: bool, held: &mut [Held<AnchorEvent>]) {
        self.store_result(ok, held)
    }
    fn restore(&mut self, now: Instant, records: Vec<(RecordKey, Record)>) -> Restored {
        crate::store::restore_anchor(self, now, records)
    }
    fn poll_event(&mut self) -> Option<AnchorEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Lma::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Lma::handle_timeout(self, now)
    }
    fn bindings(&self, now: Instant) -> Vec<BindingSummary> {
        self.all_bindings()
            .into_iter()
            .filter(|b| !b.deleting)
            .map(|b| BindingSummary {
                nai: String::from_utf8_lossy(&b.mn_id).into_owned(),
                at: None,
                llid: b.llid,
                state: BindingState::Active,
                peer: b.mag.ip(),
                home_v4: b.home_v4,
                hnp: b.hnp,
                uplink_key: b.uplink_key,
                downlink_key: b.downlink_key,
                lifetime: b.lifetime,
                left: Some(b.expires_at.saturating_duration_since(now)),
                sub_id: b.sub_id,
            })
            .collect()
    }
    fn counters(&self) -> Counters {
        counters_of(&self.counters)
    }
    fn peers(&self) -> Vec<PeerSummary> {
        let mut v: Vec<PeerSummary> = self
            .mag_peers
            .values()
            .map(|m| PeerSummary {
                peer: m.peer.ip(),
                reachable: m.hb_up,
                restart_counter: m.restart_counter,
            })
            .collect();
        v.sort_by_key(|p| p.peer);
        v
    }
}
