//! A new binding is acknowledged only once its record is written (issue
//! 17): the PBA accepting it is held (`agent::unconfirmed`) with a PBA of
//! status 130, insufficient resources (RFC 5213 §8.9, inherited from RFC
//! 6275 §6.1.8), ready in its place. When the store refuses the batch, the
//! refusal goes instead and the binding is taken back: never in the maps,
//! its numbers free again, its record deleted. The MAG takes 130 as
//! transient and tries again. Refreshes are answered as usual.
use super::super::wire::{BaStatus, BindingUpdate};
use super::{Lma, Reply};
use crate::agent::registrar::AnchorEvent;
use crate::agent::{unconfirmed, Held, Peer};
use crate::dataplane::DpCommand;

impl Lma {
    /// Lets the shell have up to `n` store writes in flight (a cluster's
    /// etcd store; 1, the default, waits for each write before reading on).
    pub fn set_writes_in_flight(&mut self, n: usize) {
        self.writes_in_flight = n.max(1);
    }

    /// Reads up to `n` requests per pass (`store.batch_max`): each pass is
    /// one store batch, so a burst is written in fewer, larger batches.
    pub fn set_pass_max(&mut self, n: usize) {
        self.pass_max = n.max(1);
    }

    /// The PBA queued after position `queued` accepts the new binding `id`:
    /// hold it until the binding's record is written.
    pub(super) fn hold_answer(&mut self, peer: Peer, bu: BindingUpdate, id: u32, queued: usize) {
        if self.transmits.len() != queued + 1 {
            return; // nothing was sent (no route to the peer)
        }
        if let Some(accept) = self.transmits.back().cloned() {
            self.unconfirmed.hold(id, accept, (peer, bu));
        }
    }

    /// The store wrote (`ok`) or refused the oldest batch in flight; `held`
    /// the outputs of the passes in flight the shell holds (none when it
    /// waits for each write: then they are still in our queues).
    pub(super) fn store_result(&mut self, ok: bool, held: &mut [Held<AnchorEvent>]) {
        for h in self.unconfirmed.stored(ok) {
            let (peer, mut bu) = h.refusal;
            self.send_pba(
                peer,
                &mut bu,
                Reply::reject(BaStatus::INSUFFICIENT_RESOURCES),
            );
            if let Some(refusal) = self.transmits.pop_back() {
                let p = refusal.payload;
                if !unconfirmed::swap(&mut self.transmits, &h.accept, p.clone()) {
                    unconfirmed::swap(held.iter_mut().flat_map(|o| &mut o.tx), &h.accept, p);
                }
            }
            // A repeat goes with its first write: that one takes it back.
            if !h.follower {
                self.take_back(h.key, held);
            }
        }
    }

    /// Undoes the new binding `id` before anything of it left the machine.
    fn take_back(&mut self, id: u32, held: &mut [Held<AnchorEvent>]) {
        let Some(b) = self.bces.get_mut(&id) else {
            return;
        };
        let (key, nai, mag) = (b.uplink_key, b.mn_id.clone(), b.mag.ip());
        // Not installed yet: its entries leave the queue (and `delete`
        // queues no removal for an entry marked deleting).
        b.deleting = true;
        let install =
            |c: &DpCommand| matches!(c, DpCommand::InstallAnchor(a) if a.uplink_key == key);
        let nai = String::from_utf8_lossy(&nai).into_owned();
        let created = |e: &AnchorEvent| matches!(e, AnchorEvent::Created { nai: n, peer } if *n == nai && *peer == mag);
        self.dp.retain(|c| !install(c));
        self.events.retain(|e| !created(e));
        for o in held.iter_mut() {
            o.dp.retain(|c| !install(c));
            o.events.retain(|e| !created(e));
        }
        self.delete(id);
        let c = &mut self.counters;
        c.pbu_accepted = c.pbu_accepted.saturating_sub(1);
        c.registrations = c.registrations.saturating_sub(1);
        c.pbu_no_resources += 1;
        c.pbu_store_failed += 1;
        tracing::debug!(%nai, "new binding refused: its record was not written");
    }
}
