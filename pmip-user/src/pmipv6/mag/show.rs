//! The binding update list as `show bindings` lists it.
use super::{Mag, State};
use crate::dataplane::AccessPoint;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::dataplane::Hnp;

impl Mag {
    /// Every entry of the binding update list (for `show bindings`).
    pub fn bindings(&self) -> Vec<(AccessPoint, MagBindingInfo)> {
        let mut v: Vec<_> = self
            .entries
            .keys()
            .filter_map(|at| Some((*at, self.binding(at)?)))
            .collect();
        v.sort_by_key(|(at, _)| *at);
        v
    }

    /// The uplink key, home address and state of a binding (for `show` output and tests).
    pub fn binding(&self, at: &AccessPoint) -> Option<MagBindingInfo> {
        let e = self.entries.get(at)?;
        Some(MagBindingInfo {
            mn_id: e.req.mn_id.clone(),
            lma: self.lmas[e.lma].cfg.name.clone(),
            state: match e.state {
                State::Registering => "REGISTERING",
                State::Active => "ACTIVE",
                State::Deregistering => "DEREGISTERING",
            },
            downlink_key: e.downlink_key,
            uplink_key: e.granted.as_ref().map(|g| g.uplink_key),
            home_v4: e.granted.as_ref().and_then(|g| g.home_v4),
            hnp: e.granted.as_ref().and_then(|g| g.hnp),
            lifetime: e.granted.as_ref().map(|g| g.lifetime),
            sub_id: e.sub_id,
        })
    }
}

/// A binding update list entry as `show ipv6 mobile pmipv6 mag binding` would print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MagBindingInfo {
    pub mn_id: Vec<u8>,
    pub lma: String,
    pub state: &'static str,
    pub downlink_key: u32,
    pub uplink_key: Option<u32>,
    pub home_v4: Option<(Ipv4Addr, u8)>,
    pub hnp: Option<Hnp>,
    pub lifetime: Option<Duration>,
    /// Index of the subscriber's traffic counters in the fast path.
    pub sub_id: u32,
}
