//! The HA as one anchor of a cluster (issue 17): uplink keys, counter ids
//! and home addresses only from the blocks the cluster claimed for its
//! service address; at the cluster address, new subscribers assigned at run
//! time to the least-loaded service address (RFC 4433 dynamic HA assignment).
use std::net::Ipv4Addr;
use std::time::Instant;

use super::super::wire::ext::{dynamic_ha_subtypes, ExtList};
use super::super::wire::{ExtRepr, RegistrationRequestRepr};
use super::Ha;
use crate::agent::assign::Assigner;
use crate::agent::blocks::{Blocks, Space};

/// What the HA does differently in a cluster (part of its configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaCluster {
    pub blocks: Option<Blocks>,
    pub assigner: Option<Assigner>,
}

impl Ha {
    /// Draws uplink keys, counter ids and pool addresses from `blocks`.
    /// Call before `restore` and the first registration.
    pub fn use_blocks(&mut self, blocks: &Blocks) {
        self.keys.use_blocks(blocks, Space::Key);
        self.sub_ids.use_blocks(blocks, Space::Key);
        self.cfg.cluster.blocks = Some(blocks.clone());
    }

    /// Acts as the requested HA of RFC 4433 at the cluster address.
    pub fn use_assigner(&mut self, a: Assigner) {
        self.cfg.cluster.assigner = Some(a);
    }

    /// The pool's network address and size, as the cluster's `Home4` layout
    /// counts them (the first host aligned down to the pool's size).
    fn pool_span(&self) -> Option<(u32, u32)> {
        let l = self.cfg.cluster.blocks.as_ref()?.layout(Space::Home4)?;
        let first = u32::from(self.cfg.pool.as_ref()?.first);
        Some((first & !(l.size.max(1) - 1), l.size))
    }

    fn home_index(&self, a: Ipv4Addr) -> Option<u32> {
        let (net, size) = self.pool_span()?;
        u32::from(a).checked_sub(net).filter(|i| *i < size)
    }

    /// Marks a home address used: in a cluster only if it is in our blocks.
    pub(super) fn take_home(&mut self, a: Ipv4Addr) -> bool {
        if self.homes_in_use.contains(&a) {
            return false;
        }
        if let Some(b) = self.cfg.cluster.blocks.clone() {
            match self.home_index(a) {
                Some(i) if b.take(Space::Home4, i) => {}
                _ => return false,
            }
        }
        // Taken (static, requested, restored): no longer held for anyone.
        self.held.forget(a);
        self.homes_in_use.insert(a)
    }

    /// A pool address from our blocks (None: not in a cluster; Some(None):
    /// none free, or allocation closed).
    pub(super) fn home_from_blocks(&mut self) -> Option<Option<Ipv4Addr>> {
        let b = self.cfg.cluster.blocks.clone()?;
        let (net, _) = self.pool_span()?;
        let got = b.alloc(Space::Home4).map(|i| Ipv4Addr::from(net + i));
        if let Some(a) = got {
            self.homes_in_use.insert(a);
        }
        Some(got)
    }

    /// Gives a pool address back to our blocks.
    pub(super) fn home_to_blocks(&mut self, a: Ipv4Addr) {
        if let (Some(b), Some(i)) = (self.cfg.cluster.blocks.clone(), self.home_index(a)) {
            b.release(Space::Home4, i);
        }
    }

    /// RFC 4433 §5.3 (Table 1): at the cluster address, a new registration
    /// whose HA field is ALL-ZERO-ONE-ADDR (the PMA asks for an assignment)
    /// is refused with REDIRECT-HA-REQ (143) and the Redirected HA extension
    /// naming the assigned HA, where the PMA registers instead. No state is
    /// created here. Called once the request passed every check.
    pub(super) fn redirect(
        &mut self,
        _now: Instant,
        rrq: &RegistrationRequestRepr,
    ) -> Option<Vec<ExtRepr>> {
        let a = self.cfg.cluster.assigner.as_ref()?;
        let dynamic = rrq.home_agent.is_unspecified() || rrq.home_agent.is_broadcast();
        let nai = rrq
            .extensions
            .nai()
            .and_then(|n| std::str::from_utf8(n).ok())?;
        if !dynamic || rrq.lifetime == 0 || self.bindings.contains_key(nai) {
            return None;
        }
        let me = self.cfg.address;
        let std::net::IpAddr::V4(to) = a.pick(me.into())? else {
            return None;
        };
        if to == me {
            return None;
        }
        self.counters.redirected += 1;
        Some(vec![ExtRepr::DynamicHa {
            subtype: dynamic_ha_subtypes::REDIRECTED,
            ha: to,
        }])
    }
}
