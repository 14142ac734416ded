//! Loads the eBPF object, attaches its program and writes its maps: the real
//! [`DataPlane`].
//!
//! Every binding reaches the kernel here. A handover is one `insert` on the
//! map keyed by the home address (hash-map updates replace the value
//! atomically), so no packet ever sees a half-written entry.
//!
//! - `load`     — the object, map sizes, the pin directory and its checks.
//! - `attach`   — XDP / TC attach modes, pinned links, interface config.
//! - `bindings` — access and anchor bindings and their tunnels: where an
//!   accepted binding reaches the maps.
//! - `anchor_gen` — retiring the anchor downlink's per-CPU cached copies.
//! - `slots`    — the GRE-key tables (array + hash of larger keys) and slot counts.
//! - `pools`    — the home pools' layout over the pool arrays.
//! - `prune`    — after a restart, the entries no restored binding holds.
//! - `signaling` — the anchor's AF_XDP sockets for Mobility Headers.
//! - `stats`    — counters, per-subscriber traffic, map occupancy.
//! - `object`   — the eBPF object: embedded in pmipd or read from a file; its build id.
use std::collections::HashMap as StdHashMap;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use aya::maps::MapData;
use aya::Ebpf;
use pmip_common::{maps, HomePool4, HomePool6};

use crate::dataplane::{DataPlane, DpCommand, TrafficCounters, TunnelEnds};

mod anchor_gen;
mod attach;
mod batch;
mod bindings;
mod footprint;
mod load;
mod object;
mod pools;
mod prune;
mod signaling;
mod slots;
mod stats;

pub use attach::{attach_pass, loaded_xdp, AttachMode, Attached, IfaceSpec};
pub use footprint::footprint;
pub use load::{
    default_object_path, default_test_object_path, high_homes, high_keys, load_test_object,
    unpin_all, GatewayRole, LoadOptions,
};
pub use object::{build_id, embedded, ObjectSource, EMBEDDED_BUILD_ID};
pub use pools::HomePoolSpec;
pub use prune::Pruned;

pub const PROGRAM: &str = "pmip_xdp";

/// The XDP program for an interface with roles `role` (pmip-common `role`):
/// for one role alone, the copy of the fast path built for that role, which
/// does not look the role up per packet (pmip-ebpf dispatch.rs); for
/// several roles, or none, [`PROGRAM`].
pub fn xdp_program_for(role: u8) -> &'static str {
    use pmip_common::role;
    match role {
        role::ACCESS => "pmip_xdp_access",
        role::ACCESS_CORE => "pmip_xdp_access_core",
        role::ANCHOR_CORE => "pmip_xdp_anchor_core",
        role::ANCHOR_CN => "pmip_xdp_anchor_cn",
        _ => PROGRAM,
    }
}

/// TC egress on an anchor: tunnels what the host itself sends to home addresses.
pub(crate) const TC_EGRESS_PROGRAM: &str = "pmip_tc_egress";

/// The fast path at TC ingress (`AttachMode::Tc`): where XDP cannot attach.
pub const TC_INGRESS_PROGRAM: &str = "pmip_tc_ingress";

/// The pass-everything program (pmip-ebpf/src/pass.rs), in both objects:
/// for the far end of veths.
pub const PASS_PROGRAM: &str = "xdp_pass";

/// The loaded fast path.
pub struct FastPath {
    ebpf: Ebpf,
    /// bpffs directory of pinned maps and links (None: nothing outlives us).
    pin_dir: Option<PathBuf>,
    tunnels: StdHashMap<TunnelEnds, u32>,
    /// Which mode each attached interface got.
    pub attached: Vec<(String, Attached)>,
    /// Occupied slots of the ACCESS_BY_KEY and ANCHOR_BY_KEY arrays (an
    /// array cannot be counted cheaply; `show stats` asks every 500 ms).
    key_slots: [usize; 2],
    /// The home pools as written to HOME_POOLS4/6, and the occupied slots of
    /// ANCHOR_BY_POOL4/6.
    pools4: Vec<HomePool4>,
    pools6: Vec<HomePool6>,
    pool_slots: [usize; 2],
    /// SUB_ACTIVE's shape (fixed at load) and its mapping.
    active: stats::Active,
}

fn map_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

impl FastPath {
    fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing from object"))
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from object"))
    }

    /// The ring buffer of new-MAC events (taken: one reader).
    pub fn new_mac_events(&mut self) -> Result<aya::maps::RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map(maps::NEW_MAC_EVENTS)
            .ok_or_else(|| anyhow!("map {} missing or already taken", maps::NEW_MAC_EVENTS))?;
        Ok(aya::maps::RingBuf::try_from(m)?)
    }
}

impl DataPlane for FastPath {
    fn apply(&mut self, cmd: &DpCommand) -> Result<()> {
        match cmd {
            DpCommand::InstallAccess(b) => self.install_access(b),
            DpCommand::RemoveAccess(b) => self.remove_access(b),
            DpCommand::InstallAnchor(b) => self.install_anchor(b),
            DpCommand::RemoveAnchor(b) => self.remove_anchor(b),
        }
    }

    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.traffic(sub_id).unwrap_or_default()
    }
}
