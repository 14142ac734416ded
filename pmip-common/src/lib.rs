//! Every type that crosses the kernel/user boundary, defined once.
//!
//! The eBPF programs (`pmip-ebpf`, no_std) and the agent (`pmip-user`, with the
//! `user` feature, which implements `aya::Pod`) both use these definitions, so
//! map keys, values and counter indices cannot drift apart.
//!
//! Rules for every type here: `#[repr(C)]`, `Copy`, explicit padding, no `bool`,
//! a compile-time size assertion. Addresses and GRE keys are stored in network
//! byte order exactly as they appear on the wire (`[u8; N]`), so the fast path
//! compares bytes without swapping.
#![no_std]

/// Map names, as the eBPF object exports them and the loader looks them up.
pub mod maps {
    /// (access ifindex, VLAN, subscriber MAC) → [`AccessSubscriber`](super::AccessSubscriber).
    /// Written by the access agent (MAG/PMA) when a binding is accepted.
    pub const ACCESS_BY_MAC: &str = "ACCESS_BY_MAC";
    /// Array indexed by downlink GRE key → [`AccessDownlink`](super::AccessDownlink)
    /// (ifindex 0 = free slot). Each node chooses the keys it receives with
    /// (RFC 5845 §3; draft-leung GRE key extension) and ours are small
    /// integers, so the key is the index: an array lookup, inlined by the JIT,
    /// and no per-entry hash overhead. Keys beyond the array are in
    /// `ACCESS_BY_KEY_HIGH`. Written by the access agent; read by the access
    /// gateway's core-side XDP.
    pub const ACCESS_BY_KEY: &str = "ACCESS_BY_KEY";
    /// Array of [`ACCESS_CACHE_SETS`](super::ACCESS_CACHE_SETS)
    /// generations, one per `ACCESS_CACHE` set: the agent bumps a MAC's set
    /// after every change to its `ACCESS_BY_MAC` entry, so a per-CPU cached
    /// copy whose generation equals its set's is current.
    pub const ACCESS_GEN: &str = "ACCESS_GEN";
    /// Per-CPU two-way set-associative cache of `ACCESS_BY_MAC` (an
    /// `AccessCacheSet` per set = hash of the key): a hash lookup measured
    /// ~30 ns per packet in the throughput chain, a cache hit is two array
    /// lookups and a few compares. Written by the fast path only.
    pub const ACCESS_CACHE: &str = "ACCESS_CACHE";
    /// Array of [`ANCHOR_CACHE_SETS`](super::ANCHOR_CACHE_SETS)
    /// generations, one per `ANCHOR_CACHE` set: the anchor bumps the set
    /// of a home address / prefix after every change to the entry that
    /// serves it (see [`anchor_cache_set`](super::anchor_cache_set)).
    /// Builds before the cache had sets pinned one generation per slot
    /// (4096) as `ANCHOR_GEN`: the per-set table has a name of its own so
    /// that neither build ever reuses the other's pin (see
    /// [`RETIRED`](RETIRED)).
    pub const ANCHOR_SET_GEN: &str = "ANCHOR_SET_GEN";
    /// Pins of maps that earlier builds had and this one has not. The
    /// loader removes them from the pin directory: nothing reads them any
    /// more, and a pinned map keeps its kernel memory until it is unpinned
    /// (a rollback to such a build creates them afresh).
    /// - `ANCHOR_GEN`: one generation per `ANCHOR_CACHE` slot (4096),
    ///   replaced by [`ANCHOR_SET_GEN`] (2026-12-06).
    pub const RETIRED: [&str; 1] = ["ANCHOR_GEN"];
    /// Per-CPU two-way set-associative cache of the anchor downlink by
    /// destination (an `AnchorCacheSet` per set): the binding serving a
    /// home address / prefix and its downlink flow. Written by the fast
    /// path only.
    pub const ANCHOR_CACHE: &str = "ANCHOR_CACHE";
    /// Downlink GRE keys too large for `ACCESS_BY_KEY` (hash, allocated on use).
    pub const ACCESS_BY_KEY_HIGH: &str = "ACCESS_BY_KEY_HIGH";
    /// IPv4 home address → [`AnchorDownlink`](super::AnchorDownlink). Written by the anchor (LMA/HA).
    pub const ANCHOR_BY_HOME4: &str = "ANCHOR_BY_HOME4";
    /// IPv6 home network prefix (/64) → [`AnchorDownlink`](super::AnchorDownlink). Written by the anchor.
    pub const ANCHOR_BY_HNP: &str = "ANCHOR_BY_HNP";
    /// Array indexed by uplink GRE key → [`AnchorUplink`](super::AnchorUplink)
    /// (`flags::IN_USE` clear = free slot), as `ACCESS_BY_KEY`. Written by the anchor.
    pub const ANCHOR_BY_KEY: &str = "ANCHOR_BY_KEY";
    /// The anchor's home address pools (`HomePool4`): their addresses index
    /// `ANCHOR_BY_POOL4`. Written by the loader from the configured pools.
    pub const HOME_POOLS4: &str = "HOME_POOLS4";
    /// The same for IPv6 home network prefixes (`HomePool6`, `ANCHOR_BY_POOL6`).
    pub const HOME_POOLS6: &str = "HOME_POOLS6";
    /// Array: home address's place in its pool → [`AnchorDownlink`](super::AnchorDownlink).
    /// Addresses outside the pools (static ones) are in `ANCHOR_BY_HOME4`.
    pub const ANCHOR_BY_POOL4: &str = "ANCHOR_BY_POOL4";
    /// Array: home network prefix's place in its pool → [`AnchorDownlink`](super::AnchorDownlink).
    pub const ANCHOR_BY_POOL6: &str = "ANCHOR_BY_POOL6";
    /// Uplink GRE keys too large for `ANCHOR_BY_KEY` (hash, allocated on use).
    pub const ANCHOR_BY_KEY_HIGH: &str = "ANCHOR_BY_KEY_HIGH";
    /// Tunnel id → [`Tunnel`](super::Tunnel) (outer endpoints). Written by either agent
    /// before any subscriber entry refers to the id.
    pub const TUNNELS: &str = "TUNNELS";
    /// Array indexed by ifindex (below [`IFACE_SLOTS`](super::IFACE_SLOTS)) →
    /// [`IfaceConfig`](super::IfaceConfig); role 0 = not ours. An array: its
    /// lookup is inlined by the JIT, and every packet does one. Written by the
    /// loader at attach time.
    pub const IFACES: &str = "IFACES";
    /// ifindex ≥ [`IFACE_SLOTS`](super::IFACE_SLOTS) → [`IfaceConfig`](super::IfaceConfig)
    /// (hosts with very many interfaces). Written by the loader at attach time.
    pub const IFACES_HIGH: &str = "IFACES_HIGH";
    /// Per-CPU verdict and drop-reason counters, indexed by [`Counter`](super::Counter).
    pub const COUNTERS: &str = "COUNTERS";
    /// Per-subscriber traffic totals, one [`SubscriberStats`](super::SubscriberStats)
    /// per subscriber id, shared by the CPUs: what they flushed from
    /// `SUB_ACTIVE` (atomic adds). A subscriber's traffic is this plus what
    /// its `SUB_ACTIVE` slots hold (see [`ActiveStats`](super::ActiveStats)).
    pub const SUB_TOTALS: &str = "SUB_TOTALS";
    /// Per-CPU counters of the subscribers each CPU is forwarding: a row of
    /// [`SUB_ACTIVE_SLOTS`] [`ActiveStats`](super::ActiveStats) per CPU
    /// (entry `cpu × slots + slot`), two-way set-associative by subscriber id
    /// ([`sub_active_set`](super::sub_active_set)). Small and independent of
    /// the number of subscribers: memory per subscriber does not grow with
    /// the number of CPUs. Memory-mappable: the agent reads it in place.
    pub const SUB_ACTIVE: &str = "SUB_ACTIVE";
    /// Global (`.rodata`) of the fast path: slots per CPU of `SUB_ACTIVE` (a
    /// power of two), set by the loader ([`sub_active_slots`](super::sub_active_slots)).
    pub const SUB_ACTIVE_SLOTS: &str = "SUB_ACTIVE_SLOTS";
    /// Global (`.rodata`) of the fast path: non-zero to log its slow-path
    /// debug events through aya-log (drops, FIB misses, new MACs); 0, the
    /// default, compiles them out at load (the verifier removes them).
    pub const LOG_EVENTS: &str = "LOG_EVENTS";
    /// The aya-log ring buffer the fast path's debug events go to (the name
    /// aya-log-ebpf gives it).
    pub const AYA_LOGS: &str = "AYA_LOGS";
    /// Per-CPU next hop of each tunnel as `bpf_fib_lookup` last found it,
    /// indexed by tunnel id. Written by the fast path only.
    pub const TUNNEL_NH: &str = "TUNNEL_NH";
    /// Per-CPU direct-mapped cache: slot (hash of the inner destination) →
    /// [`DestNextHop`](super::DestNextHop), for the anchor's decapsulated
    /// uplink. Written by the fast path only.
    pub const DEST_NH: &str = "DEST_NH";
    /// Ring buffer of [`NewMacEvent`](super::NewMacEvent)s: data from a MAC
    /// the access side has no binding for (the attach trigger of a handover).
    /// Written by the fast path; read by the access agent.
    pub const NEW_MAC_EVENTS: &str = "NEW_MAC_EVENTS";
    /// (access ifindex, VLAN, MAC) → last report time (ns): one event per MAC
    /// per [`NEW_MAC_REPORT_NS`](super::NEW_MAC_REPORT_NS). Written by the fast path.
    pub const NEW_MAC_SEEN: &str = "NEW_MAC_SEEN";
    /// The anchor's signaling sockets (`XSKMAP`): an IPv6 Mobility Header
    /// to one of the anchor's signaling addresses arriving on one of its
    /// core interfaces goes to the AF_XDP socket bound to that interface's
    /// receive queue, at slot `MH_LOCAL[(ifindex, address)] + queue`, not
    /// through the kernel's raw-socket path (`signaling.xdp_socket`). A
    /// slot without a socket (none bound, or its agent gone) passes the
    /// packet to the stack as before. Written by the anchor agent.
    pub const MH_SOCKETS: &str = "MH_SOCKETS";
    /// (ingress ifindex, IPv6 signaling address as four big-endian words)
    /// → the interface's first slot in `MH_SOCKETS`. Written by the anchor
    /// agent.
    pub const MH_LOCAL: &str = "MH_LOCAL";
}

/// Slots of `MH_SOCKETS` per interface: receive queues beyond them keep
/// the kernel's path.
pub const MH_QUEUES_PER_IFACE: u32 = 64;
/// Entries of `MH_SOCKETS`: room for 16 interfaces.
pub const MH_SOCKET_SLOTS: u32 = 16 * MH_QUEUES_PER_IFACE;
/// Entries of `MH_LOCAL`.
pub const MH_LOCAL_ENTRIES: u32 = 64;

/// Default map sizes; the loader can raise them (`EbpfLoader::set_max_entries`).
pub const MAX_SUBSCRIBERS: u32 = 65_536;
pub const MAX_TUNNELS: u32 = 4_096;
/// Entries of `IFACES_HIGH` (interfaces whose ifindex does not fit `IFACES`).
pub const MAX_IFACES: u32 = 256;
/// Entries of the `IFACES` array: interfaces with a smaller ifindex are found
/// by index.
pub const IFACE_SLOTS: u32 = 4_096;

/// GRE (RFC 2784/2890) with the Key bit: 4 bytes base header + 4 bytes key.
pub const GRE_KEYED_LEN: usize = 8;
pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;
/// Outer header bytes added in front of the subscriber's IP packet.
pub const fn tunnel_overhead(outer_family: u8) -> usize {
    if outer_family == FAMILY_V6 {
        IPV6_HDR_LEN + GRE_KEYED_LEN
    } else {
        IPV4_HDR_LEN + GRE_KEYED_LEN
    }
}

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Flags in [`AccessSubscriber::flags`] and [`AnchorUplink::flags`].
pub mod flags {
    /// `home_v4` is assigned: inner IPv4 sources must equal it.
    pub const HAS_HOME4: u32 = 1 << 0;
    /// `home_hnp` is assigned: inner IPv6 sources must be inside it (or link-local).
    pub const HAS_HNP: u32 = 1 << 1;
    /// `AnchorUplink::peer` is an IPv6 address (else IPv4, first 4 bytes).
    pub const PEER_V6: u32 = 1 << 2;
    /// The `ANCHOR_BY_KEY` slot holds a binding.
    pub const IN_USE: u32 = 1 << 31;
}

/// Key of `ACCESS_BY_MAC`: a subscriber as seen on an access interface.
/// `vlan` is the 802.1Q VLAN id (0 = untagged), host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AccessKey {
    pub ifindex: u32,
    pub vlan: u16,
    pub mac: [u8; 6],
}

/// Value of `ACCESS_BY_MAC`: what the access gateway needs to tunnel a subscriber's
/// uplink traffic.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccessSubscriber {
    /// GRE key for uplink packets (chosen by the anchor), network order.
    pub uplink_key: [u8; 4],
    /// Index into `SUB_TOTALS` (and tag of its `SUB_ACTIVE` slots).
    pub sub_id: u32,
    /// Index into `TUNNELS`.
    pub tunnel_id: u32,
    /// `flags::*`.
    pub flags: u32,
    pub home_v4: [u8; 4],
    /// Default router address the subscriber ARPs for (answered by the fast path).
    pub gateway_v4: [u8; 4],
    /// Home network prefix, first 64 bits.
    pub home_hnp: [u8; 8],
}

/// A slot of `ACCESS_CACHE`: a per-CPU copy of an `ACCESS_BY_MAC` entry,
/// valid while `gen` equals `ACCESS_GEN[access_cache_set(&key)]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccessCacheSlot {
    pub key: AccessKey,
    /// `ACCESS_GEN` of the key's set, read before the entry was copied.
    pub gen: u32,
    pub sub: AccessSubscriber,
    /// The subscriber's uplink as this CPU last sent it: valid with the
    /// slot (the same generation covers both) and until its expiry.
    pub flow: UplinkFlow,
}

/// An `ACCESS_CACHE` entry: a set of two slots, in recency order (a miss
/// puts its subscriber in way 0 and moves way 0's to way 1). One map value
/// holds both, so the fast path finds way 1 without a second lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccessCacheSet {
    pub ways: [AccessCacheSlot; 2],
}

/// The uplink "flow" of a cached subscriber (issue 18): what the access
/// uplink otherwise assembles per packet from `TUNNELS` and `TUNNEL_NH` —
/// egress, prebuilt outer headers, MTU limit, expiry — copied from the
/// tunnel's `TUNNEL_NH` entry into the subscriber's `ACCESS_CACHE` slot
/// when a packet took that path. A hit is then one compare of the expiry
/// and one of the length. It needs no generation of its own: it is reset
/// whenever its slot is refilled (a bumped `ACCESS_GEN` after any change to
/// the subscriber: tunnel, key, removal), it never outlives the
/// `TUNNEL_NH` entry it was copied from (same expiry, same `max_len`), and
/// tunnel ids are never reused for other ends while a binding refers to them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UplinkFlow {
    /// `TUNNEL_NH`'s expiry (jiffies) when copied; 0: no flow.
    pub expires: u64,
    pub ifindex: u32,
    /// `TUNNEL_NH`'s `max_len` when copied (longer packets take the FIB).
    pub max_len: u16,
    /// Outer family of `hdr` (`FAMILY_V4` / `FAMILY_V6`).
    pub family: u8,
    pub _pad: u8,
    /// `TUNNEL_NH`'s `csum_base`.
    pub csum_base: u32,
    /// Where this subscriber's traffic counters were on this CPU the last
    /// time (its `SUB_ACTIVE` index + 1; 0: not yet): a hint the fast path
    /// checks by the slot's tag before using it, so a stale one costs the
    /// full lookup, never a wrong count.
    pub sub_slot: u32,
    /// `TUNNEL_NH`'s prebuilt Ethernet + outer IP + GRE headers.
    pub hdr: [u64; 8],
}

/// Slots of `ACCESS_CACHE` per CPU (a power of two).
pub const ACCESS_CACHE_ENTRIES: u32 = 4_096;
pub const ACCESS_CACHE_BITS: u32 = 12;
/// Sets of `ACCESS_CACHE` (two ways each) = entries of `ACCESS_GEN`.
pub const ACCESS_CACHE_SETS: u32 = ACCESS_CACHE_ENTRIES / 2;

/// The `ACCESS_CACHE` set of `key` (an `AccessCacheSet` of two ways), which is
/// also its `ACCESS_GEN` entry: Fibonacci hashing of the key's three words.
/// The fast path and the loader both call this, so the loader invalidates
/// exactly the set where the fast path keeps copies of a key.
#[inline(always)]
pub fn access_cache_set(key: &AccessKey) -> u32 {
    let w = key.words();
    (w[0] ^ w[1] ^ w[2].rotate_left(16)).wrapping_mul(0x9e37_79b1) >> (33 - ACCESS_CACHE_BITS)
}

impl AccessKey {
    /// The key as three native-order words (for hashing and word compares).
    #[inline(always)]
    pub fn words(&self) -> [u32; 3] {
        // SAFETY: AccessKey is repr(C), 12 bytes without padding (asserted below).
        unsafe { core::mem::transmute::<AccessKey, [u32; 3]>(*self) }
    }

    /// The key of three native-order words (the inverse of [`words`](Self::words)).
    #[inline(always)]
    pub fn from_words(w: [u32; 3]) -> AccessKey {
        // SAFETY: as in `words`; every bit pattern is a valid AccessKey.
        unsafe { core::mem::transmute::<[u32; 3], AccessKey>(w) }
    }
}

/// Value of `ACCESS_BY_KEY`: where a downlink packet with this GRE key goes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccessDownlink {
    pub sub_id: u32,
    /// Tunnel the packet must arrive on (its remote is the expected outer source).
    pub tunnel_id: u32,
    /// Access interface the subscriber is on (0: free `ACCESS_BY_KEY` slot).
    pub ifindex: u32,
    /// VLAN id to tag the frame with (0 = untagged), host order.
    pub vlan: u16,
    pub mac: [u8; 6],
    /// The tunnel's outer family and remote end, copied from `TUNNELS` when
    /// the entry is written (tunnel ids are never reused for other ends):
    /// the peer check reads them from this entry, not from a second map.
    pub peer_family: u8,
    pub _pad: [u8; 3],
    pub peer: [u8; 16],
}

/// A slot of `ANCHOR_CACHE`: a per-CPU copy of the `AnchorDownlink` entry
/// serving a home address (IPv4) or a /64 (IPv6), with the downlink's flow
/// (as [`UplinkFlow`], reset whenever the slot is refilled), valid while
/// `gen` equals `ANCHOR_SET_GEN[anchor_cache_set(..)]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnchorCacheSlot {
    /// The destination as loaded from the packet (native-order words):
    /// the IPv4 address and 0, or the first 64 bits of the IPv6 address.
    pub key: [u32; 2],
    /// `ANCHOR_SET_GEN` of the key's set, read before the entry was copied.
    pub gen: u32,
    /// `FAMILY_V4` / `FAMILY_V6` of `key` (0: empty).
    pub family: u32,
    pub down: AnchorDownlink,
    pub flow: UplinkFlow,
}

/// An `ANCHOR_CACHE` entry: a set of two slots, in recency order (a miss
/// puts its destination in way 0 and moves way 0's to way 1). One map value
/// holds both, so the fast path finds way 1 without a second lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnchorCacheSet {
    pub ways: [AnchorCacheSlot; 2],
}

/// Slots of `ANCHOR_CACHE` per CPU (a power of two).
pub const ANCHOR_CACHE_ENTRIES: u32 = 4_096;
pub const ANCHOR_CACHE_BITS: u32 = 12;
/// Sets of `ANCHOR_CACHE` (two ways each) = entries of `ANCHOR_SET_GEN`.
pub const ANCHOR_CACHE_SETS: u32 = ANCHOR_CACHE_ENTRIES / 2;

/// The `ANCHOR_CACHE` set (an `AnchorCacheSet`, and its `ANCHOR_SET_GEN`
/// entry) of destination key `w` (see
/// [`AnchorCacheSlot::key`]); the fast path and the loader both call this,
/// so the loader invalidates exactly the set where copies are kept.
#[inline(always)]
pub fn anchor_cache_set(w: [u32; 2]) -> u32 {
    (w[0] ^ w[1].rotate_left(16)).wrapping_mul(0x9e37_79b1) >> (33 - ANCHOR_CACHE_BITS)
}

/// Value of `ANCHOR_BY_HOME4` and `ANCHOR_BY_HNP`: the tunnel towards the access
/// gateway that currently serves the home address. Handover rewrites this one value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnchorDownlink {
    /// GRE key for downlink packets (chosen by the access gateway), network order.
    pub downlink_key: [u8; 4],
    pub sub_id: u32,
    pub tunnel_id: u32,
    /// `flags::IN_USE` in an `ANCHOR_BY_POOL4/6` slot that holds a binding.
    pub flags: u32,
}

/// Value of `HOME_POOLS4`: an IPv4 pool whose addresses index
/// `ANCHOR_BY_POOL4` (address − prefix + base), as far as `size` reaches.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HomePool4 {
    /// Pool prefix, host byte order.
    pub prefix: u32,
    /// Prefix length, 1..=32.
    pub len: u32,
    pub base: u32,
    /// Addresses indexed from the start of the pool (0: end of the list).
    pub size: u32,
}

/// Value of `HOME_POOLS6`: an IPv6 pool whose delegated prefixes (of
/// `assign_len` bits) index `ANCHOR_BY_POOL6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HomePool6 {
    /// First 64 bits of the pool prefix, host byte order.
    pub prefix: u64,
    /// Prefix length, 1..=64.
    pub len: u32,
    /// Length of each home network prefix, len..=64.
    pub assign_len: u32,
    pub base: u32,
    /// Prefixes indexed from the start of the pool (0: end of the list).
    pub size: u32,
}

/// Entries of `HOME_POOLS4` and `HOME_POOLS6`.
pub const MAX_HOME_POOLS: u32 = 16;

/// Value of `ANCHOR_BY_KEY`: the binding an uplink GRE key belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnchorUplink {
    pub sub_id: u32,
    pub tunnel_id: u32,
    /// `flags::*`; `flags::PEER_V6` gives `peer`'s family.
    pub flags: u32,
    pub home_v4: [u8; 4],
    pub home_hnp: [u8; 8],
    /// The tunnel's remote end, as in [`AccessDownlink::peer`].
    pub peer: [u8; 16],
}

/// Value of `TUNNELS`: outer endpoints of a GRE tunnel. For IPv4 only the first
/// 4 bytes of each address are used. 4-byte aligned (same size): the fast
/// path then compares the addresses in words, not bytes.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tunnel {
    pub family: u8,
    pub _pad: [u8; 3],
    pub local: [u8; 16],
    pub remote: [u8; 16],
}

/// Role bits in [`IfaceConfig::role`].
pub mod role {
    /// Access interface of a MAG/PMA (subscribers behind it).
    pub const ACCESS: u8 = 1;
    /// Core interface of a MAG/PMA (GRE from anchors arrives here).
    pub const ACCESS_CORE: u8 = 2;
    /// Core interface of an anchor (GRE from access gateways arrives here).
    pub const ANCHOR_CORE: u8 = 4;
    /// Correspondent-side interface of an anchor (packets to home addresses arrive here).
    pub const ANCHOR_CN: u8 = 8;
}

/// Value of `IFACES`. 4-byte aligned (same size), as [`Tunnel`].
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IfaceConfig {
    pub mac: [u8; 6],
    pub role: u8,
    pub _pad: u8,
    /// Source address for ICMP errors the fast path sends from this interface
    /// (on an access interface: the subscribers' default router).
    pub addr4: [u8; 4],
    pub addr6: [u8; 16],
}

/// Value of `TUNNEL_NH`: a short-lived cache of the FIB answer for a tunnel's
/// remote end, so that encapsulation does not pay a FIB lookup per packet.
/// `max_len` is the largest outer packet the FIB accepted (MTU check): longer
/// packets go through the FIB again, which answers FRAG_NEEDED with the MTU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NextHopCache {
    /// Expiry in jiffies (`bpf_jiffies64`): the clock costs next to nothing per packet.
    pub expires: u64,
    pub ifindex: u32,
    pub max_len: u16,
    pub _pad: [u8; 2],
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// The tunnel remote this was looked up for (guards against id reuse).
    pub remote: [u8; 16],
    /// The headers every packet to this next hop starts with, prebuilt when
    /// the entry is filled so that a packet costs a few word stores: for a
    /// tunnel, Ethernet + outer IP + GRE (42 bytes with IPv4 outer, 62 with
    /// IPv6; total length, checksum, inner protocol and key are filled per
    /// packet); for a decapsulated packet, the 12 bytes of Ethernet MACs.
    pub hdr: [u64; 8],
    /// One's-complement sum of the outer IPv4 header in `hdr` with total
    /// length and checksum zero (the checksum is this + the length, folded).
    pub csum_base: u32,
    pub _pad2: u32,
}

/// Value of `DEST_NH`: the FIB answer for an inner destination of the
/// anchor's uplink, with the Ethernet MACs prebuilt (dmac, smac; 12 of the
/// 16 bytes) so that a decapsulated packet costs three stores.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DestNextHop {
    /// Expiry in jiffies, as `NextHopCache::expires` (0: empty slot).
    pub expires: u64,
    pub ifindex: u32,
    /// Where the traffic counters of the last subscriber counted through
    /// this slot were on this CPU (`SUB_ACTIVE` index + 1; 0: none), as
    /// [`UplinkFlow::sub_slot`]: a hint checked by the slot's tag.
    pub sub_slot: u32,
    pub macs: [u64; 2],
    /// The destination this slot holds (IPv4 in the first word).
    pub dst: [u32; 4],
}

/// Slots of the anchor's per-destination next-hop cache, per CPU (a
/// power of two: the slot is a multiplicative hash of the destination).
pub const DEST_NH_ENTRIES: u32 = 4_096;
pub const DEST_NH_BITS: u32 = 12;

/// How long a cached next hop is used before the FIB is asked again.
pub const NEXT_HOP_CACHE_NS: u64 = 200_000_000;
/// The same in jiffies until the fast path has measured the kernel's HZ
/// (50 = 200 ms at HZ 250, Debian's default).
pub const NEXT_HOP_CACHE_JIFFIES_DEFAULT: u64 = 50;

/// An event of `NEW_MAC_EVENTS`: a frame carrying IP data from an unknown
/// subscriber (no DHCP seen here: it moved in from another access gateway).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NewMacEvent {
    pub key: AccessKey,
    /// The IPv4 source address it used (0.0.0.0 for IPv6 data).
    pub src_v4: [u8; 4],
}

/// At most one `NewMacEvent` per MAC per this many nanoseconds.
pub const NEW_MAC_REPORT_NS: u64 = 500_000_000;
pub const NEW_MAC_RING_BYTES: u32 = 64 * 1024;
pub const NEW_MAC_SEEN_ENTRIES: u32 = 4_096;

/// One subscriber's traffic: an entry of `SUB_TOTALS`, and the counts an
/// `ActiveStats` slot holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SubscriberStats {
    pub up_packets: u64,
    pub up_bytes: u64,
    pub down_packets: u64,
    pub down_bytes: u64,
}

/// A slot of `SUB_ACTIVE`: what one CPU has counted for subscriber
/// `sub - 1` since it took the slot (`sub` 0: free).
///
/// Exact counting without atomics on the hot path and without a row per
/// CPU for every subscriber (2 KiB per subscriber on a 64-CPU host): each
/// CPU counts its packets in its own slot with plain adds; when it needs
/// the slot for another subscriber it flushes the counts into `SUB_TOTALS`
/// with atomic adds (the only atomics, once per eviction). A subscriber's
/// traffic is its total plus the slots that hold it.
///
/// A set's two ways are kept in recency order: a new subscriber takes way
/// 0, way 0's moves to way 1, way 1's is flushed. `seq` is odd while the
/// fast path rewrites a slot (flush, move, take-over) and grows by 2 each
/// time: a reader reads the set's slots, then the total, then the slots'
/// `seq` again, and retries if any changed — so every count is read
/// exactly once, in a slot or in the total.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ActiveStats {
    /// Subscriber id + 1; 0: a free slot.
    pub sub: u32,
    pub seq: u32,
    pub stats: SubscriberStats,
}

/// Ways of each `SUB_ACTIVE` set.
pub const SUB_ACTIVE_WAYS: u32 = 2;

/// The `SUB_ACTIVE` set of subscriber `sub_id` in a row of `slots` slots (a
/// power of two): ways `2·set` and `2·set + 1`. Fibonacci hashing, as
/// [`access_cache_set`]; the fast path and the loader both call this.
#[inline(always)]
pub fn sub_active_set(sub_id: u32, slots: u32) -> u32 {
    sub_id.wrapping_mul(0x9e37_79b1).rotate_left(16) & (slots / SUB_ACTIVE_WAYS - 1)
}

/// Slots per CPU of `SUB_ACTIVE` for a table of `max_subscribers` on a host
/// with `cpus` possible CPUs: twice a CPU's share of the table (room for
/// the subscribers it forwards with few collisions), rounded down to a power
/// of two between 64 and 16384. Memory: `cpus × slots × 40 B`, at most
/// ~80 B per subscriber whatever the table and the CPU count from 32 × cpus
/// subscribers on (a floor of 2048 cost 2.6 KB per subscriber of a 1k table
/// on 64 CPUs; see BENCHMARKS.md).
pub fn sub_active_slots(max_subscribers: u32, cpus: u32) -> u32 {
    let share = (max_subscribers as u64 * 2 / cpus.max(1) as u64).max(1);
    let pow2 = 1u64 << (63 - share.leading_zeros());
    pow2.clamp(SUB_ACTIVE_MIN_SLOTS.into(), 16384) as u32
}

/// The fewest `SUB_ACTIVE` slots per CPU (see [`sub_active_slots`]).
pub const SUB_ACTIVE_MIN_SLOTS: u16 = 64;

/// Index of `COUNTERS`. Every exit of every program increments exactly one of these.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Not ours (not a subscriber, not GRE): passed to the stack untouched.
    PassNotOurs = 0,
    /// DHCP, ARP other than for the gateway, or the gateway's own address: for the agent/stack.
    /// Also a Mobility Header handed to the anchor's signaling socket (`MH_SOCKETS`).
    PassControl,
    /// Inner TTL/hop limit would expire: the kernel sends ICMP time exceeded.
    PassTtl,
    /// Next hop neighbour unresolved: the kernel takes this packet (slow path).
    PassNoNeigh,
    /// Uplink encapsulated and redirected (access side).
    TxEncapUplink,
    /// Downlink decapsulated and redirected to the subscriber (access side).
    TxDecapDownlink,
    /// Downlink encapsulated towards the access gateway (anchor).
    TxEncapDownlink,
    /// Uplink decapsulated and forwarded (anchor).
    TxDecapUplink,
    /// ARP request for the gateway answered by the fast path (XDP_TX).
    TxArpReply,
    /// ICMP fragmentation-needed / packet-too-big sent back (XDP_TX).
    TxIcmpTooBig,
    /// Encapsulated packet handed to the kernel to reach the next hop.
    PassSlowPath,
    DropMalformed,
    DropSpoofedSource,
    DropUnknownKey,
    DropWrongPeer,
    DropGreUnsupported,
    DropOuterFragment,
    DropTooBigNoDf,
    DropNoTunnel,
    DropNoRoute,
    DropAdjustFailed,
    DropRedirectFailed,
    /// IP data from a MAC without a binding: not forwarded (the agent is told,
    /// and registers it if it is a subscriber that moved in).
    DropUnregistered,
    /// ICMPv6 time exceeded sent back to a subscriber whose packet's hop
    /// limit ran out at the access gateway (XDP_TX).
    TxIcmpTimeExceeded,
    /// Marker: number of counters.
    Max,
}

impl Counter {
    pub const COUNT: u32 = Counter::Max as u32;
    pub const ALL: [Counter; Counter::COUNT as usize] = [
        Counter::PassNotOurs,
        Counter::PassControl,
        Counter::PassTtl,
        Counter::PassNoNeigh,
        Counter::TxEncapUplink,
        Counter::TxDecapDownlink,
        Counter::TxEncapDownlink,
        Counter::TxDecapUplink,
        Counter::TxArpReply,
        Counter::TxIcmpTooBig,
        Counter::PassSlowPath,
        Counter::DropMalformed,
        Counter::DropSpoofedSource,
        Counter::DropUnknownKey,
        Counter::DropWrongPeer,
        Counter::DropGreUnsupported,
        Counter::DropOuterFragment,
        Counter::DropTooBigNoDf,
        Counter::DropNoTunnel,
        Counter::DropNoRoute,
        Counter::DropAdjustFailed,
        Counter::DropRedirectFailed,
        Counter::DropUnregistered,
        Counter::TxIcmpTimeExceeded,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::PassNotOurs => "pass_not_ours",
            Counter::PassControl => "pass_control",
            Counter::PassTtl => "pass_ttl_expired",
            Counter::PassNoNeigh => "pass_no_neighbour",
            Counter::TxEncapUplink => "tx_encap_uplink",
            Counter::TxDecapDownlink => "tx_decap_downlink",
            Counter::TxEncapDownlink => "tx_encap_downlink",
            Counter::TxDecapUplink => "tx_decap_uplink",
            Counter::TxArpReply => "tx_arp_reply",
            Counter::TxIcmpTooBig => "tx_icmp_too_big",
            Counter::PassSlowPath => "pass_slow_path",
            Counter::DropMalformed => "drop_malformed",
            Counter::DropSpoofedSource => "drop_spoofed_source",
            Counter::DropUnknownKey => "drop_unknown_key",
            Counter::DropWrongPeer => "drop_wrong_peer",
            Counter::DropGreUnsupported => "drop_gre_unsupported",
            Counter::DropOuterFragment => "drop_outer_fragment",
            Counter::DropTooBigNoDf => "drop_too_big_no_df",
            Counter::DropNoTunnel => "drop_no_tunnel",
            Counter::DropNoRoute => "drop_no_route",
            Counter::DropAdjustFailed => "drop_adjust_failed",
            Counter::DropRedirectFailed => "drop_redirect_failed",
            Counter::DropUnregistered => "drop_unregistered",
            Counter::TxIcmpTimeExceeded => "tx_icmp_time_exceeded",
            Counter::Max => "max",
        }
    }
}

const _: () = {
    assert!(core::mem::size_of::<AccessKey>() == 12);
    assert!(core::mem::size_of::<AccessSubscriber>() == 32);
    assert!(core::mem::size_of::<UplinkFlow>() == 88);
    assert!(core::mem::size_of::<AccessCacheSlot>() == 136);
    assert!(core::mem::size_of::<AccessCacheSet>() == 272);
    // The fast path copies the flow's header in 64-bit words (8-aligned in
    // the 8-aligned per-CPU value).
    assert!(core::mem::offset_of!(AccessCacheSlot, flow) == 48);
    assert!(core::mem::offset_of!(UplinkFlow, hdr) == 24);
    assert!(1 << ACCESS_CACHE_BITS == ACCESS_CACHE_ENTRIES);
    assert!(core::mem::size_of::<AccessDownlink>() == 40);
    // The peer is compared in 64-bit loads (8-aligned in the array value).
    assert!(core::mem::offset_of!(AccessDownlink, peer) == 24);
    assert!(core::mem::offset_of!(AnchorUplink, peer) == 24);
    assert!(core::mem::size_of::<AnchorDownlink>() == 16);
    assert!(core::mem::size_of::<AnchorCacheSlot>() == 120);
    assert!(core::mem::size_of::<AnchorCacheSet>() == 240);
    assert!(core::mem::offset_of!(AnchorCacheSlot, flow) == 32);
    assert!(1 << ANCHOR_CACHE_BITS == ANCHOR_CACHE_ENTRIES);
    assert!(core::mem::size_of::<HomePool4>() == 16);
    assert!(core::mem::size_of::<HomePool6>() == 24);
    assert!(core::mem::size_of::<AnchorUplink>() == 40);
    assert!(core::mem::size_of::<Tunnel>() == 36);
    assert!(core::mem::size_of::<IfaceConfig>() == 28);
    assert!(core::mem::size_of::<SubscriberStats>() == 32);
    assert!(core::mem::size_of::<ActiveStats>() == 40);
    assert!(core::mem::size_of::<NextHopCache>() == 120);
    assert!(core::mem::size_of::<DestNextHop>() == 48);
    assert!(1 << DEST_NH_BITS == DEST_NH_ENTRIES);
    assert!(core::mem::size_of::<NewMacEvent>() == 16);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, and have no padding bytes
    // (checked by the size assertions above) and no invalid bit patterns.
    unsafe impl aya::Pod for AccessKey {}
    unsafe impl aya::Pod for AccessSubscriber {}
    unsafe impl aya::Pod for AccessCacheSlot {}
    unsafe impl aya::Pod for AccessCacheSet {}
    unsafe impl aya::Pod for UplinkFlow {}
    unsafe impl aya::Pod for AccessDownlink {}
    unsafe impl aya::Pod for AnchorDownlink {}
    unsafe impl aya::Pod for AnchorCacheSlot {}
    unsafe impl aya::Pod for AnchorCacheSet {}
    unsafe impl aya::Pod for HomePool4 {}
    unsafe impl aya::Pod for HomePool6 {}
    unsafe impl aya::Pod for AnchorUplink {}
    unsafe impl aya::Pod for Tunnel {}
    unsafe impl aya::Pod for IfaceConfig {}
    unsafe impl aya::Pod for SubscriberStats {}
    unsafe impl aya::Pod for ActiveStats {}
    unsafe impl aya::Pod for NextHopCache {}
    unsafe impl aya::Pod for DestNextHop {}
    unsafe impl aya::Pod for NewMacEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SUB_ACTIVE` costs at most 80 B per subscriber (40 B slots, twice a
    /// CPU's share) for any table of 32 × cpus subscribers or more, on any
    /// number of CPUs: the per-CPU counters never dominate a small table.
    #[test]
    fn sub_active_memory_per_subscriber_is_bounded() {
        for cpus in [1u32, 2, 16, 64, 256] {
            for n in [2048u32, 4096, 101_024, 1_001_024, 16_000_000] {
                let slots = sub_active_slots(n, cpus);
                assert!(slots.is_power_of_two() && slots >= SUB_ACTIVE_WAYS);
                assert!((u32::from(SUB_ACTIVE_MIN_SLOTS)..=16384).contains(&slots));
                let per_sub = f64::from(cpus) * f64::from(slots) * 40.0 / f64::from(n);
                if n >= 32 * cpus {
                    assert!(per_sub <= 80.0, "{cpus} CPUs, {n} entries: {per_sub} B");
                }
            }
        }
        assert_eq!(sub_active_slots(2048, 64), 64);
        assert_eq!(sub_active_slots(2048, 2), 2048);
        assert_eq!(sub_active_slots(1_001_024, 2), 16384);
    }
}
