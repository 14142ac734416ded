//! The LMA as one anchor of a cluster (issue 17): it hands out binding ids,
//! home addresses and prefixes only from the blocks the cluster claimed for
//! its service address, so no other anchor hands out the same ones; and at
//! the cluster address it assigns new subscribers to the least-loaded
//! service address at run time (RFC 6463).
use super::super::wire::redirect::{has_redirect_capability, RedirectRepr};
use super::super::wire::{BaStatus, BindingUpdate};
use super::{Lma, Reply};
use crate::agent::assign::Assigner;
use crate::agent::blocks::{Blocks, Space};
use crate::agent::Peer;

impl Lma {
    /// Draws ids (= uplink GRE keys), IPv4 home addresses and prefixes from
    /// `blocks` from now on. Call before `restore` and the first registration.
    pub fn use_blocks(&mut self, blocks: &Blocks) {
        self.ids.use_blocks(blocks, Space::Key);
        for p in &mut self.v4 {
            p.use_blocks(blocks);
        }
        if let Some(p) = self.v6.as_mut() {
            p.use_blocks(blocks);
        }
    }

    /// Acts as the runtime-assignment LMA (the "rfLMA" of RFC 6463): new
    /// registrations from MAGs that can be redirected go where `a` says.
    pub fn use_assigner(&mut self, a: Assigner) {
        self.cfg.assigner = Some(a);
    }

    /// RFC 6463 §3: a MAG that sent the Redirect-Capability option in the
    /// PBU of a new registration (no binding here, lifetime > 0) is told to
    /// register with the assigned LMA instead: a PBA carrying the Redirect
    /// option (§4.2) with status NOT_LMA_FOR_THIS_MOBILE_NODE, creating no
    /// state here. Refreshes, handovers and deregistrations of bindings
    /// this LMA holds are never redirected, nor is a MAG that cannot be.
    pub(super) fn redirect(
        &mut self,
        peer: Peer,
        bu: &BindingUpdate,
        existing: Option<u32>,
    ) -> Option<Reply> {
        let a = self.cfg.assigner.as_ref()?;
        if existing.is_some() || bu.lifetime == 0 || !has_redirect_capability(&bu.options) {
            return None;
        }
        let me = self.cfg.local.for_peer(&peer)?;
        let r2lma = a.pick(me).filter(|t| *t != me)?;
        self.counters.redirected += 1;
        let mut r = Reply::reject(BaStatus::NOT_LMA_FOR_THIS_MOBILE_NODE);
        r.extra.push(RedirectRepr { r2lma }.to_option());
        Some(r)
    }
}
