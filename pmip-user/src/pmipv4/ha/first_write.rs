//! A new binding is acknowledged only once its record is written (issue
//! 17): the reply accepting it is held (`agent::unconfirmed`) with a reply
//! of code 130, insufficient resources (RFC 3344 §3.4), ready in its place.
//! When the store refuses the batch, the refusal goes instead and the
//! binding is taken back: never in the maps, its key, counter index and
//! home address free again, its record deleted. Renewals are answered as
//! usual.
use std::net::{Ipv4Addr, SocketAddrV4};

use super::super::wire::{ExtRepr, ReplyCode};
use super::request::ReplyTo;
use super::{Ha, HaEvent};
use crate::agent::unconfirmed;
use crate::dataplane::DpCommand;

/// What a refusal of a request is made of: its source, Identification, our
/// NTP time then, the home address it asked for. Its NAI extension is made
/// from the held answer's key, the request's NAI, only if a refusal is due.
/// A per-MN request's association with the mobile node signs it too; the
/// PMA's association the request named (a key rollover) signs it last.
pub(super) type Refusal = (
    SocketAddrV4,
    u64,
    u64,
    Ipv4Addr,
    // A per-MN request's associations, and the SPI it named.
    Option<super::authenticate::MnKeys>,
    // The SPI of the PMA's association the answer was signed with.
    u32,
    // The request carried the Per-Node Authentication Method.
    bool,
);

impl Ha {
    /// The store wrote (`ok`) or refused the last batch.
    pub(super) fn store_result(&mut self, ok: bool) {
        for h in self.unconfirmed.stored(ok) {
            let (src, ident, now_ntp, hoa, mn, spi, method) = h.refusal;
            let nai_ext = vec![ExtRepr::Nai(h.key.as_bytes().to_vec())];
            match self
                .peers
                .get(src.ip())
                .map(|p| p.sa.answering(Some(spi)).clone())
            {
                Some(sa) => {
                    let to = ReplyTo {
                        src,
                        sa: &sa,
                        mn: mn.as_ref().map(|m| m.sa()),
                        method,
                        ident,
                        now_ntp,
                    };
                    self.reply(&to, ReplyCode::InsufficientResources, (0, hoa), nai_ext);
                    if let Some(refusal) = self.tx.pop_back() {
                        unconfirmed::swap(&mut self.tx, &h.accept, refusal.payload);
                    }
                }
                // No association to sign with any more: no answer at all.
                None => self.tx.retain(|t| *t != h.accept),
            }
            self.take_back(&h.key);
        }
    }

    /// Undoes the new binding of `nai` before anything of it left the machine.
    fn take_back(&mut self, nai: &str) {
        let Some(b) = self.bindings.remove(nai) else {
            return;
        };
        // Not installed yet: its entries leave the queue.
        let key = b.anchor.uplink_key;
        self.dp
            .retain(|c| !matches!(c, DpCommand::InstallAnchor(a) if a.uplink_key == key));
        self.events
            .retain(|e| !matches!(e, HaEvent::Registered { nai: n, .. } if n == nai));
        self.sub_ids.release(b.anchor.sub_id);
        self.keys.release(key);
        self.release_home(b.home, b.from_pool);
        self.persist(nai);
        let c = &mut self.counters;
        c.registrations = c.registrations.saturating_sub(1);
        c.insufficient_resources += 1;
        c.store_failed += 1;
        tracing::debug!(%nai, "new binding refused: its record was not written");
    }
}
