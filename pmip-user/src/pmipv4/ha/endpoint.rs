//! The HA as an [`Endpoint`]: the anchor runner's requests and the binding
//! events, in the protocol-neutral vocabulary of [`crate::agent::registrar`].
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Ha, HaEvent};
use crate::agent::registrar::{
    counters_of, AnchorCommand, AnchorEvent, BindingState, BindingSummary, Counters, GoneCause,
    Reconfig,
};
use crate::agent::{Endpoint, Peer, Transmit};
use crate::dataplane::DpCommand;
use crate::store::{Record, RecordKey, Restored, StoreOp};

impl From<HaEvent> for AnchorEvent {
    fn from(e: HaEvent) -> Self {
        match e {
            HaEvent::Registered { nai, pma, .. } => AnchorEvent::Created {
                nai,
                peer: pma.into(),
            },
            HaEvent::Handover { nai, from, to } => AnchorEvent::Moved {
                nai,
                from: from.into(),
                to: to.into(),
            },
            HaEvent::Deregistered { nai } => AnchorEvent::Removed {
                nai,
                cause: GoneCause::Deregistered,
            },
            HaEvent::Expired { nai } => AnchorEvent::Removed {
                nai,
                cause: GoneCause::Expired,
            },
        }
    }
}

impl Endpoint for Ha {
    type Command = AnchorCommand;
    type Event = AnchorEvent;

    fn handle(&mut self, now: Instant, from: Peer, data: &[u8]) {
        match from {
            Peer::V4(src) => Ha::handle(self, now, src, data),
            Peer::V6(_) => self.counters.rx_unknown_peer += 1,
        }
    }
    fn command(&mut self, now: Instant, cmd: AnchorCommand) {
        match cmd {
            AnchorCommand::Release { nai } => {
                let found = self.clear(now, &nai);
                tracing::info!(%nai, found, "release");
            }
            AnchorCommand::ReleasePeer { peer, realm } => {
                let n = match peer {
                    std::net::IpAddr::V4(pma) => self.clear_peer(now, pma, realm.as_deref()),
                    std::net::IpAddr::V6(_) => 0,
                };
                tracing::info!(%peer, ?realm, bindings = n, "release through a PMA");
            }
            AnchorCommand::Reconfigure(Reconfig::Ha(c)) => self.reconfigure(&c),
            AnchorCommand::Reconfigure(_) => {}
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }
    fn poll_dp(&mut self) -> Option<DpCommand> {
        self.dp.pop_front()
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        self.take_store()
    }
    fn stored(&mut self, _now: Instant, ok: bool) {
        self.store_result(ok)
    }
    fn restore(&mut self, now: Instant, records: Vec<(RecordKey, Record)>) -> Restored {
        crate::store::restore_anchor(self, now, records)
    }
    fn poll_event(&mut self) -> Option<AnchorEvent> {
        Ha::poll_event(self).map(AnchorEvent::from)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|std::cmp::Reverse((t, _))| *t)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Ha::handle_timeout(self, now)
    }
    fn bindings(&self, now: Instant) -> Vec<BindingSummary> {
        Ha::bindings(self)
            .into_iter()
            .map(|(nai, b)| BindingSummary {
                nai,
                at: None,
                llid: Vec::new(),
                state: BindingState::Active,
                peer: IpAddr::V4(b.pma),
                home_v4: Some((b.home_address, 0)),
                hnp: None,
                uplink_key: b.uplink_key,
                downlink_key: b.downlink_key,
                lifetime: Duration::from_secs(b.lifetime_s.into()),
                left: Some(b.expires_at.saturating_duration_since(now)),
                sub_id: b.sub_id,
            })
            .collect()
    }
    fn counters(&self) -> Counters {
        counters_of(&self.counters)
    }
}
