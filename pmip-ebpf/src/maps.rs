//! The fast path's maps: one per lookup key, named by entity, key and
//! direction; each says who writes it. Names and value types come from
//! `pmip-common`, shared with the agent. Next to each map, the lookup the
//! paths do in it.
// Clippy's by-value `get(key)` and `flatten()` forms of these lookups compile
// to different code on every path (llvm-objdump): they stay as measured.
#![allow(clippy::needless_borrows_for_generic_args, clippy::manual_flatten)]

use aya_ebpf::{
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use pmip_common::{
    access_cache_set, anchor_cache_set, flags, AccessCacheSet, AccessCacheSlot, AccessDownlink,
    AccessKey, AccessSubscriber, AnchorCacheSet, AnchorCacheSlot, AnchorDownlink, AnchorUplink,
    Counter, DestNextHop, HomePool4, HomePool6, IfaceConfig, NextHopCache, Tunnel, UplinkFlow,
    ACCESS_CACHE_SETS, ANCHOR_CACHE_SETS, DEST_NH_BITS, DEST_NH_ENTRIES, IFACE_SLOTS,
    MAX_HOME_POOLS, MAX_IFACES, MAX_SUBSCRIBERS, MAX_TUNNELS, MH_LOCAL_ENTRIES, NEW_MAC_RING_BYTES,
    NEW_MAC_SEEN_ENTRIES, NEXT_HOP_CACHE_JIFFIES_DEFAULT, NEXT_HOP_CACHE_NS,
};

/// Subscribers by (access ifindex, VLAN, MAC). Written by the MAG/PMA agent.
#[map]
pub(crate) static ACCESS_BY_MAC: HashMap<AccessKey, AccessSubscriber> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// Downlink GRE key (as index) → subscriber on an access interface; keys
/// beyond the array in ACCESS_BY_KEY_HIGH. Written by the MAG/PMA agent.
#[map]
pub(crate) static ACCESS_BY_KEY: Array<AccessDownlink> =
    Array::with_max_entries(MAX_SUBSCRIBERS, 0);
#[map]
pub(crate) static ACCESS_BY_KEY_HIGH: HashMap<[u8; 4], AccessDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, BPF_F_NO_PREALLOC);
/// IPv4 home address → tunnel to the serving access gateway. Written by the LMA/HA agent.
#[map]
pub(crate) static ANCHOR_BY_HOME4: HashMap<[u8; 4], AnchorDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// IPv6 home network prefix (first 64 bits) → tunnel. Written by the LMA/HA agent.
#[map]
pub(crate) static ANCHOR_BY_HNP: HashMap<[u8; 8], AnchorDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// Uplink GRE key (as index) → binding (home address to enforce); keys
/// beyond the array in ANCHOR_BY_KEY_HIGH. Written by the LMA/HA agent.
#[map]
pub(crate) static ANCHOR_BY_KEY: Array<AnchorUplink> = Array::with_max_entries(MAX_SUBSCRIBERS, 0);
#[map]
pub(crate) static ANCHOR_BY_KEY_HIGH: HashMap<[u8; 4], AnchorUplink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, BPF_F_NO_PREALLOC);

/// Hash maps written only by the agent need no preallocated elements.
const BPF_F_NO_PREALLOC: u32 = 1;

/// The anchor's home pools; their members index ANCHOR_BY_POOL4/6 (see pmip-common).
#[map]
pub(crate) static HOME_POOLS4: Array<HomePool4> = Array::with_max_entries(MAX_HOME_POOLS, 0);
#[map]
pub(crate) static HOME_POOLS6: Array<HomePool6> = Array::with_max_entries(MAX_HOME_POOLS, 0);
#[map]
pub(crate) static ANCHOR_BY_POOL4: Array<AnchorDownlink> =
    Array::with_max_entries(MAX_SUBSCRIBERS, 0);
#[map]
pub(crate) static ANCHOR_BY_POOL6: Array<AnchorDownlink> =
    Array::with_max_entries(MAX_SUBSCRIBERS, 0);

#[inline(always)]
fn pool_slot(table: &'static Array<AnchorDownlink>, idx: u32) -> Option<&'static AnchorDownlink> {
    table.get(idx).filter(|d| d.flags & flags::IN_USE != 0)
}

/// The binding serving IPv4 home address `dst`: by its place in its pool
/// (an array: no hash lookup, and 16 B a slot), else — an address outside
/// the indexed pools, e.g. a static one — in the ANCHOR_BY_HOME4 hash.
///
/// `dst` is the address as it is in the packet (network order), loaded as a
/// word.
#[inline(always)]
pub(crate) fn anchor_by_home4(dst: u32) -> Option<&'static AnchorDownlink> {
    let a = u32::from_be(dst);
    let mut i = 0;
    while i < MAX_HOME_POOLS {
        let Some(p) = HOME_POOLS4.get(i) else { break };
        if p.size == 0 {
            break;
        }
        // len is 1..=32 (the loader checks): host bits 0..=31.
        let host = (32 - p.len) & 31;
        if (a ^ p.prefix) >> host == 0 {
            let off = a & ((1u32 << host) - 1);
            if off < p.size {
                return pool_slot(&ANCHOR_BY_POOL4, p.base + off);
            }
            break;
        }
        i += 1;
    }
    // SAFETY: plain lookup; the value is only read.
    unsafe { ANCHOR_BY_HOME4.get(&dst.to_ne_bytes()) }
}

/// The binding serving home network prefix `hnp` (first 64 bits, as two
/// words loaded from the packet), as [`anchor_by_home4`].
#[inline(always)]
pub(crate) fn anchor_by_hnp(hnp: [u32; 2]) -> Option<&'static AnchorDownlink> {
    let a = (u32::from_be(hnp[0]) as u64) << 32 | u32::from_be(hnp[1]) as u64;
    let mut i = 0;
    while i < MAX_HOME_POOLS {
        let Some(p) = HOME_POOLS6.get(i) else { break };
        if p.size == 0 {
            break;
        }
        // 1 <= len <= assign_len <= 64 (the loader checks).
        let host = (64 - p.len) & 63;
        if (a ^ p.prefix) >> host == 0 {
            let bits = (p.assign_len - p.len) & 63;
            let off = (a >> ((64 - p.assign_len) & 63)) & ((1u64 << bits) - 1);
            if off < p.size as u64 {
                return pool_slot(&ANCHOR_BY_POOL6, p.base + off as u32);
            }
            break;
        }
        i += 1;
    }
    // SAFETY: [u32; 2] and [u8; 8] are the same 8 bytes.
    let key = unsafe { core::mem::transmute::<[u32; 2], [u8; 8]>(hnp) };
    // SAFETY: plain lookup; the value is only read.
    unsafe { ANCHOR_BY_HNP.get(&key) }
}

/// Generation of each ACCESS_CACHE set: the loader bumps a key's set after
/// every change to the key's ACCESS_BY_MAC entry (see pmip-common). One
/// entry per set, not per subscriber: the table stays small and hot, so a
/// cache hit touches no page that grows with the number of subscribers.
#[map]
pub(crate) static ACCESS_GEN: Array<u32> = Array::with_max_entries(ACCESS_CACHE_SETS, 0);
/// Per-CPU two-way set-associative copies of ACCESS_BY_MAC entries: one
/// value per set (both ways).
#[map]
pub(crate) static ACCESS_CACHE: PerCpuArray<AccessCacheSet> =
    PerCpuArray::with_max_entries(ACCESS_CACHE_SETS, 0);

/// The subscriber at `key`: this CPU's cached copy while its set's
/// generation is current (no agent change to a key of the set since it was
/// copied), else the `ACCESS_BY_MAC` entry, which is then cached. Returns a
/// reference into the cache slot or the map value.
///
/// The cache is two-way set-associative (set = hash of the key): with one
/// way, 1024 active subscribers in 4096 slots collide ~20 % of the time and
/// each collision is a cold hash lookup on a large table (`cargo xtask
/// bench scale`); with two, a set overflows only when three of them share
/// it. A miss puts the new copy in way 0 and moves the older one to way 1.
/// Both ways are one map value: a second lookup for way 1 would keep the
/// key and the generation on the stack on every packet.
///
/// Ordering: the generation is read before the entry, and the loader bumps
/// it after changing the entry, so a copy taken from an entry that has since
/// changed always carries an old generation.
#[inline(always)]
pub(crate) fn access_subscriber(key: &AccessKey) -> Option<(&'static AccessSubscriber, Flow)> {
    let w = key.words();
    let set = access_cache_set(key);
    let gen = ACCESS_GEN.get_ptr(set)?;
    // SAFETY: an array slot; a volatile read keeps it before the lookup below.
    let gen = unsafe { core::ptr::read_volatile(gen) };
    let ways = ACCESS_CACHE.get_ptr_mut(set);
    if let Some(p) = ways {
        // SAFETY: this CPU's set of a per-CPU array.
        let (w0, w1) = unsafe { (&raw mut (*p).ways[0], &raw mut (*p).ways[1]) };
        // Way 1 is compared only when way 0 misses (a subscriber seen last
        // is in way 0).
        if let Some(s) = cached(w0, gen, &w) {
            return Some(s);
        }
        if let Some(s) = cached(w1, gen, &w) {
            return Some(s);
        }
    }
    // SAFETY: plain lookup; the value is only read.
    let v = unsafe { ACCESS_BY_MAC.get(key) }?;
    if let Some(p) = ways {
        // SAFETY: this CPU's set; nothing else runs on this CPU meanwhile.
        // Map values (per-CPU elements, hash values) are 8-byte aligned.
        unsafe {
            let (s0, s1) = (&raw mut (*p).ways[0], &raw mut (*p).ways[1]);
            copy_words(s1, s0);
            (*s0).key = *key;
            (*s0).gen = gen;
            copy_words(&mut (*s0).sub, v);
            // The flow of whatever the slot held before is not this one's.
            (*s0).flow.expires = 0;
            return Some((v, &raw mut (*s0).flow));
        }
    }
    Some((v, core::ptr::null_mut()))
}

/// Generation of each ANCHOR_CACHE set: the loader bumps the set of a
/// home address / prefix after every change to the entry serving it (see
/// pmip-common `anchor_cache_set`), as ACCESS_GEN for the access side.
#[map]
pub(crate) static ANCHOR_SET_GEN: Array<u32> = Array::with_max_entries(ANCHOR_CACHE_SETS, 0);
/// Per-CPU two-way set-associative copies of the anchor downlink's
/// bindings, by destination, each with the downlink's flow: one value per
/// set (both ways).
#[map]
pub(crate) static ANCHOR_CACHE: PerCpuArray<AnchorCacheSet> =
    PerCpuArray::with_max_entries(ANCHOR_CACHE_SETS, 0);

/// The binding serving destination `key` (IPv4: the address and 0; IPv6:
/// the first 64 bits; words as loaded from the packet) of `family`: this
/// CPU's cached copy while its set's generation is current, else what
/// `lookup` finds (the pools, then the hash), which is then cached with an
/// empty flow. Ordering as in [`access_subscriber`]: the generation is read
/// before the entry, the loader bumps it after changing the entry.
///
/// Two ways, as the access cache and for the same reason: direct-mapped,
/// 1024 random destinations in 4096 slots share a slot ~22 % of the time,
/// and each such packet looks its binding up in the large table (`cargo
/// xtask bench scale`, anchor encap); in sets of two the same slots
/// overflow only where three destinations meet. Both ways are one map
/// value: a second lookup for way 1 would keep the key and the generation
/// on the stack on every packet (a hop ~1 ns slower in TestRun).
#[inline(always)]
pub(crate) fn anchor_dest(
    key: [u32; 2],
    family: u32,
    lookup: impl FnOnce() -> Option<&'static AnchorDownlink>,
) -> Option<(&'static AnchorDownlink, Flow)> {
    let set = anchor_cache_set(key);
    let gen = ANCHOR_SET_GEN.get_ptr(set)?;
    // SAFETY: an array slot; a volatile read keeps it before the lookup below.
    let gen = unsafe { core::ptr::read_volatile(gen) };
    let ways = ANCHOR_CACHE.get_ptr_mut(set);
    if let Some(p) = ways {
        // SAFETY: this CPU's set of a per-CPU array.
        let (w0, w1) = unsafe { (&raw mut (*p).ways[0], &raw mut (*p).ways[1]) };
        if let Some(s) = cached_dest(w0, gen, key, family) {
            return Some(s);
        }
        if let Some(s) = cached_dest(w1, gen, key, family) {
            return Some(s);
        }
    }
    let v = lookup()?;
    if let Some(p) = ways {
        // SAFETY: this CPU's set; nothing else runs on this CPU meanwhile.
        // Both 8-byte aligned map values (AnchorDownlink: 16 B).
        unsafe {
            let (w0, w1) = (&raw mut (*p).ways[0], &raw mut (*p).ways[1]);
            copy_words(w1, w0);
            (*w0).key = key;
            (*w0).gen = gen;
            (*w0).family = family;
            copy_words(&raw mut (*w0).down, v);
            // The flow of whatever the slot held before is not this one's.
            (*w0).flow.expires = 0;
            return Some((v, &raw mut (*w0).flow));
        }
    }
    Some((v, core::ptr::null_mut()))
}

/// The binding in anchor cache slot `p` if it holds destination `key` of
/// `family` at generation `gen`.
#[inline(always)]
fn cached_dest(
    p: *mut AnchorCacheSlot,
    gen: u32,
    key: [u32; 2],
    family: u32,
) -> Option<(&'static AnchorDownlink, Flow)> {
    // SAFETY: a slot of this CPU's set of a per-CPU array.
    let s = unsafe { &*p };
    (s.gen == gen && s.key[0] == key[0] && s.key[1] == key[1] && s.family == family)
        // SAFETY: the same slot.
        .then(|| (&s.down, unsafe { &raw mut (*p).flow }))
}

/// The uplink flow kept with a cached subscriber (null: not cached). A
/// pointer, not an `Option`: LLVM spills the undefined payload of a `None`,
/// which the verifier rejects (reading an uninitialised register).
pub(crate) type Flow = *mut UplinkFlow;

/// The subscriber in cache slot `p` if it holds key `w` at generation `gen`.
#[inline(always)]
fn cached(
    p: *mut AccessCacheSlot,
    gen: u32,
    w: &[u32; 3],
) -> Option<(&'static AccessSubscriber, Flow)> {
    // SAFETY: a slot of this CPU's set of a per-CPU array.
    let s = unsafe { &*p };
    // SAFETY: the same slot.
    (s.gen == gen && s.key.words() == *w).then(|| (&s.sub, unsafe { &raw mut (*p).flow }))
}

/// `*dst = *src` in 64-bit words. A struct assignment becomes a call to a
/// byte-loop memmove in BPF (~5 instructions a byte); this is one load and
/// one store per word.
///
/// # Safety
/// Both point to valid `T`, 8-byte aligned; `size_of::<T>()` is a multiple of 8.
#[inline(always)]
pub(crate) unsafe fn copy_words<T>(dst: *mut T, src: *const T) {
    let (d, s) = (dst as *mut u64, src as *const u64);
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 8 {
        // SAFETY: inside both objects (caller's contract).
        unsafe { *d.add(i) = *s.add(i) };
        i += 1;
    }
}

/// The binding a downlink GRE key belongs to at the access gateway.
#[inline(always)]
pub(crate) fn access_by_key(key: [u8; 4]) -> Option<&'static AccessDownlink> {
    match ACCESS_BY_KEY.get(u32::from_be_bytes(key)) {
        Some(d) if d.ifindex != 0 => Some(d),
        Some(_) => None,
        // SAFETY: plain lookup; the value is only read.
        None => unsafe { ACCESS_BY_KEY_HIGH.get(&key) },
    }
}

/// The binding an uplink GRE key belongs to at the anchor.
#[inline(always)]
pub(crate) fn anchor_by_key(key: [u8; 4]) -> Option<&'static AnchorUplink> {
    match ANCHOR_BY_KEY.get(u32::from_be_bytes(key)) {
        Some(b) if b.flags & flags::IN_USE != 0 => Some(b),
        Some(_) => None,
        // SAFETY: plain lookup; the value is only read.
        None => unsafe { ANCHOR_BY_KEY_HIGH.get(&key) },
    }
}
/// Tunnel id → outer endpoints. Written by either agent before entries refer to it.
#[map]
pub(crate) static TUNNELS: Array<Tunnel> = Array::with_max_entries(MAX_TUNNELS, 0);
/// ifindex → role, MAC and ICMP source addresses, by index (an array lookup
/// is inlined by the JIT; every packet does one). Written by the loader at attach.
#[map]
pub(crate) static IFACES: Array<IfaceConfig> = Array::with_max_entries(IFACE_SLOTS, 0);
/// The same for interfaces whose ifindex is IFACE_SLOTS or more.
#[map]
pub(crate) static IFACES_HIGH: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(MAX_IFACES, 0);

/// The configuration of interface `ifindex`, if the fast path serves it.
#[inline(always)]
pub(crate) fn iface_of(ifindex: u32) -> Option<&'static IfaceConfig> {
    if ifindex < IFACE_SLOTS {
        return IFACES.get(ifindex).filter(|c| c.role != 0);
    }
    // SAFETY: plain lookup; the value is only read.
    unsafe { IFACES_HIGH.get(&ifindex) }
}
/// Which `MH_SOCKETS` slots serve Mobility Headers to an anchor's
/// signaling address on an interface (pmip-common `maps::MH_LOCAL`;
/// `MH_SOCKETS` is in ctx.rs, the XDP context's part).
#[map]
pub(crate) static MH_LOCAL: HashMap<[u32; 5], u32> = HashMap::with_max_entries(MH_LOCAL_ENTRIES, 0);

/// The first `MH_SOCKETS` slot of interface `ifindex` for signaling
/// address `dst`, if the anchor's agent reads it from an AF_XDP socket.
#[inline(always)]
pub(crate) fn mh_slots(ifindex: u32, dst: &[u32; 4]) -> Option<u32> {
    let key = [ifindex, dst[0], dst[1], dst[2], dst[3]];
    // SAFETY: plain lookup; the value is copied out.
    unsafe { MH_LOCAL.get(&key) }.copied()
}
/// Verdict and drop-reason counters. Written here only; read by `pmipctl show stats`.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);
/// Next hop per tunnel, per CPU, refreshed from the FIB every NEXT_HOP_CACHE_NS.
#[map]
pub(crate) static TUNNEL_NH: PerCpuArray<NextHopCache> =
    PerCpuArray::with_max_entries(MAX_TUNNELS, 0);

/// Data from MACs without a binding, for the access agent (attach trigger).
#[map]
pub(crate) static NEW_MAC_EVENTS: RingBuf = RingBuf::with_byte_size(NEW_MAC_RING_BYTES, 0);
/// Rate limit of NEW_MAC_EVENTS: last report per MAC.
#[map]
pub(crate) static NEW_MAC_SEEN: LruHashMap<AccessKey, u64> =
    LruHashMap::with_max_entries(NEW_MAC_SEEN_ENTRIES, 0);
/// Next hop per inner destination for the anchor's uplink: a per-CPU
/// direct-mapped cache (slot = multiplicative hash of the destination, the
/// destination kept in the slot; a collision is a miss that overwrites), as
/// forwarding engines keep route caches. Its lookup is an inlined array
/// access and four word compares; an LRU hash lookup measured 60 ns here.
/// Like TUNNEL_NH it is refreshed from the FIB every NEXT_HOP_CACHE_NS.
#[map]
pub(crate) static DEST_NH: PerCpuArray<DestNextHop> =
    PerCpuArray::with_max_entries(DEST_NH_ENTRIES, 0);

/// The DEST_NH slot of destination `w` (Fibonacci hashing of its words).
#[inline(always)]
pub(crate) fn dest_slot(w: &[u32; 4]) -> u32 {
    (w[0] ^ w[1] ^ w[2] ^ w[3]).wrapping_mul(0x9e37_79b1) >> (32 - DEST_NH_BITS)
}

/// Calibration of the next-hop caches' clock (jiffies) against nanoseconds,
/// per CPU: [ns at last calibration, jiffies then, jiffies per NEXT_HOP_CACHE_NS].
#[map]
pub(crate) static NH_CLOCK: PerCpuArray<[u64; 3]> = PerCpuArray::with_max_entries(1, 0);

/// The next-hop caches' clock, in jiffies: `bpf_jiffies64` costs next to
/// nothing, `bpf_ktime_get_ns` 30–40 ns per packet on this kind of host.
#[inline(always)]
pub(crate) fn nh_now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_jiffies64() }
}

/// Expiry (jiffies) of a next hop cached at `now`. The program does not know
/// the kernel's HZ, so it measures it here, on the slow path (a FIB lookup at
/// most once per tunnel or destination per lifetime): jiffies against
/// nanoseconds elapsed since the last calibration, once a second has passed.
#[inline(always)]
pub(crate) fn nh_expiry(now: u64) -> u64 {
    let Some(c) = NH_CLOCK.get_ptr_mut(0) else {
        return now + NEXT_HOP_CACHE_JIFFIES_DEFAULT;
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    let c = unsafe { &mut *c };
    // SAFETY: helper without arguments.
    let t = unsafe { bpf_ktime_get_ns() };
    if c[0] == 0 {
        c[0] = t;
        c[1] = now;
    } else if t.wrapping_sub(c[0]) >= 1_000_000_000 && now > c[1] {
        c[2] = ((now - c[1]) * NEXT_HOP_CACHE_NS / (t - c[0])).max(1);
        c[0] = t;
        c[1] = now;
    }
    now + if c[2] == 0 {
        NEXT_HOP_CACHE_JIFFIES_DEFAULT
    } else {
        c[2]
    }
}
