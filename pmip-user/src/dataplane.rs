//! The data-plane interface that the signaling state machines drive.
//!
//! State machines never touch BPF maps: they emit [`DpCommand`]s, and the shell
//! applies them to a [`DataPlane`]. The real implementation writes the eBPF maps
//! (`fastpath::FastPath`); [`MemDataPlane`] is an in-memory fake for tests of
//! the state machines, which then run without root.
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A subscriber on an access interface: (ifindex, VLAN, MAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessPoint {
    pub ifindex: u32,
    /// 802.1Q VLAN id, 0 = untagged.
    pub vlan: u16,
    pub mac: [u8; 6],
}

/// Outer endpoints of a GRE tunnel between an access gateway and an anchor.
/// Both addresses are of the same family (the signaling transport's family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelEnds {
    pub local: IpAddr,
    pub remote: IpAddr,
}

/// IPv6 home network prefix; the fast path matches its first 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hnp {
    pub prefix: Ipv6Addr,
    pub len: u8,
}

/// Access side (MAG/PMA): a registered subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessBinding {
    pub at: AccessPoint,
    /// Stable id of the subscriber (index of its traffic counters).
    pub sub_id: u32,
    pub tunnel: TunnelEnds,
    /// Key the access gateway puts on uplink packets (assigned by the anchor).
    pub uplink_key: u32,
    /// Key the anchor puts on downlink packets (chosen by the access gateway).
    pub downlink_key: u32,
    pub home_v4: Option<Ipv4Addr>,
    pub gateway_v4: Option<Ipv4Addr>,
    pub hnp: Option<Hnp>,
}

/// Anchor side (LMA/HA): a binding in the binding cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorBinding {
    pub sub_id: u32,
    pub tunnel: TunnelEnds,
    pub uplink_key: u32,
    pub downlink_key: u32,
    pub home_v4: Option<Ipv4Addr>,
    pub hnp: Option<Hnp>,
}

/// What a state machine asks of the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpCommand {
    /// Install or replace (one map update per key: a handover never exposes a half-written entry).
    InstallAccess(AccessBinding),
    RemoveAccess(AccessBinding),
    InstallAnchor(AnchorBinding),
    RemoveAnchor(AnchorBinding),
}

/// Per-subscriber traffic counters as the fast path keeps them (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficCounters {
    pub up_packets: u64,
    pub up_bytes: u64,
    pub down_packets: u64,
    pub down_bytes: u64,
}

impl TrafficCounters {
    /// Adds `o` to these (the parts of one subscriber's traffic).
    pub fn add(&mut self, o: &TrafficCounters) {
        self.up_packets += o.up_packets;
        self.up_bytes += o.up_bytes;
        self.down_packets += o.down_packets;
        self.down_bytes += o.down_bytes;
    }
}

/// What the data plane already forwards with when the agent starts: the
/// bindings an earlier run left in pinned maps. The agent reserves every one
/// of these before it accepts a registration, so that it never gives a new
/// subscriber an id, key, address or prefix the maps still route to another
/// (after a restart that would hand one subscriber's traffic to the next).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Subscriber ids (indices of the traffic counters).
    pub sub_ids: BTreeSet<u32>,
    /// GRE keys this node receives with: downlink keys on an access gateway,
    /// uplink keys on an anchor.
    pub keys: BTreeSet<u32>,
    /// IPv4 home addresses (anchor).
    pub home_v4: BTreeSet<Ipv4Addr>,
    /// Home network prefixes, by their first 64 bits (anchor).
    pub hnp64: BTreeSet<[u8; 8]>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.sub_ids.is_empty()
            && self.keys.is_empty()
            && self.home_v4.is_empty()
            && self.hnp64.is_empty()
    }
}

pub trait DataPlane {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()>;
    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters;
}

/// In-memory fake: records the installed state so tests can assert on it.
#[derive(Default, Debug)]
pub struct MemDataPlane {
    pub access: HashMap<AccessPoint, AccessBinding>,
    /// Anchor bindings by uplink key.
    pub anchor: HashMap<u32, AnchorBinding>,
    /// Every command applied, in order.
    pub log: Vec<DpCommand>,
}

impl DataPlane for MemDataPlane {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
        self.log.push(cmd.clone());
        match cmd {
            DpCommand::InstallAccess(b) => {
                self.access.insert(b.at, b.clone());
            }
            DpCommand::RemoveAccess(b) => {
                self.access.remove(&b.at);
            }
            DpCommand::InstallAnchor(b) => {
                self.anchor.insert(b.uplink_key, b.clone());
            }
            DpCommand::RemoveAnchor(b) => {
                self.anchor.remove(&b.uplink_key);
            }
        }
        Ok(())
    }

    fn subscriber_counters(&self, _sub_id: u32) -> TrafficCounters {
        TrafficCounters::default()
    }
}
