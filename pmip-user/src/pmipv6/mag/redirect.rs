//! Runtime LMA assignment at the MAG (RFC 6463): a first registration sent
//! to an LMA that may redirect carries the Redirect-Capability option; a PBA
//! that answers with the Redirect option sends the registration on to the
//! LMA it names (the r2LMA), which from then on serves the subscriber —
//! refreshes, handovers and deregistration go there.
use std::net::IpAddr;
use std::time::Instant;

use super::super::wire::redirect::{redirect_capability, RedirectRepr};
use super::super::wire::{BindingAck, MobilityOption};
use super::{LmaPeerConfig, LmaState, Mag};
use crate::agent::Peer;
use crate::dataplane::AccessPoint;

impl Mag {
    /// The Redirect-Capability option for the PBU of `at`, when this MAG
    /// does runtime assignment and the PBU starts a registration (RFC 6463
    /// §5.1: the initial PBU; refreshes never are redirected).
    pub(super) fn redirect_option(&self, at: &AccessPoint, dereg: bool) -> Option<MobilityOption> {
        let e = self.entries.get(at)?;
        (self.cfg.runtime_assignment && !dereg && e.granted.is_none() && e.last.is_none())
            .then(redirect_capability)
    }

    /// The index of the LMA at `addr`, added if the configuration does not
    /// list it (an r2LMA is any LMA of the domain).
    fn lma_at(&mut self, now: Instant, addr: IpAddr) -> usize {
        if let Some(i) = self.lmas.iter().position(|l| l.cfg.addr == addr) {
            return i;
        }
        let port = self
            .lmas
            .first()
            .map_or(super::super::wire::UDP_PORT, |l| l.cfg.port);
        let cfg = LmaPeerConfig {
            name: format!("r2lma-{addr}"),
            addr,
            port,
        };
        self.lmas.push(LmaState {
            peer: Peer::from_ip(addr, port),
            cfg,
            refused_until: None,
            refusals: 0,
            down: false,
            hb_seq: 0,
            hb_outstanding: false,
            hb_missed: 0,
            hb_deadline: now + self.cfg.heartbeat_interval,
            restart_counter: None,
            hb_up: None,
            hb_unsupported: false,
            no_gre_key: false,
            relay_noted: false,
        });
        self.lmas.len() - 1
    }

    /// A PBA that redirects the registration of `at` (RFC 6463 §5.1): the
    /// same registration goes to the r2LMA at once. True if it was one.
    pub(super) fn on_redirect(&mut self, now: Instant, at: AccessPoint, ba: &BindingAck) -> bool {
        if !self.cfg.runtime_assignment || ba.status.is_accepted() {
            return false;
        }
        let Some(r) = RedirectRepr::find(&ba.options) else {
            return false;
        };
        let Ok(RedirectRepr { r2lma }) = r else {
            self.counters.pba_bad += 1;
            return false;
        };
        let current = self.entries.get(&at).map(|e| self.lmas[e.lma].cfg.addr);
        // Never to where it came from, nor to another family than ours.
        let usable = match r2lma {
            IpAddr::V4(_) => self.cfg.local.v4.is_some(),
            IpAddr::V6(_) => self.cfg.local.v6.is_some(),
        };
        if current == Some(r2lma) || !usable {
            return false;
        }
        let idx = self.lma_at(now, r2lma);
        let Some(e) = self.entries.get_mut(&at) else {
            return false;
        };
        e.lma = idx;
        e.retx = 0;
        e.timeout = self.cfg.retx_initial;
        self.counters.redirected += 1;
        tracing::debug!(nai = %String::from_utf8_lossy(&e.req.mn_id), %r2lma, "redirected (RFC 6463)");
        self.persist(at);
        self.send_pbu(now, at, false);
        true
    }
}
