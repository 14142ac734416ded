//! The per-packet benchmark's baselines (never attached by pmipd): the
//! least a forwarder does, and single operations of the fast path.
//!
//! Each `tg_cost_*` does one thing the fast path does per packet, then
//! returns XDP_PASS (XDP_DROP only on a result that cannot happen, so the
//! work is not optimised away). Timed beside `xdp_pass`, the difference is
//! the operation's cost.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{
        bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_head,
    },
    macros::{map, xdp},
    maps::{Array, DevMap, HashMap},
    programs::XdpContext,
};
use pmip_common::{
    AccessKey, AccessSubscriber, IfaceConfig, FAMILY_V4, IFACE_SLOTS, MAX_SUBSCRIBERS,
};

use crate::fib::{fib, FIB_SUCCESS};
use crate::hdr::{atomic_add_u64, be16, load_u32, ptr_at, read_at, EthHdr, Ipv4Hdr, ETH_HLEN};
use crate::trafficgen::TG_SINK;

/// The subscribers `bench_min_fwd` and `tg_cost_hash` look up: the key,
/// value and bucket count of the fast path's `ACCESS_BY_MAC`, so a lookup
/// costs what it costs there; elements are allocated as the bench writes
/// them (no preallocation: one entry is all it needs).
#[map]
static BENCH_SUBSCRIBERS: HashMap<AccessKey, AccessSubscriber> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, BPF_F_NO_PREALLOC);
/// The shape of the fast path's `IFACES`, for `tg_cost_array`.
#[map]
static BENCH_IFACES: Array<IfaceConfig> = Array::with_max_entries(IFACE_SLOTS, 0);

const BPF_F_NO_PREALLOC: u32 = 1;

/// Benchmark baseline: the least a forwarder does — one hash lookup (the
/// subscriber, as the uplink does), `bpf_fib_lookup` on the IPv4
/// destination, MAC rewrite, redirect.
#[xdp]
pub fn bench_min_fwd(ctx: XdpContext) -> u32 {
    let eth = match ptr_at::<EthHdr>(&ctx, 0) {
        // SAFETY: bounds checked.
        Some(e) => unsafe { &mut *e },
        None => return xdp_action::XDP_DROP,
    };
    let key = AccessKey {
        ifindex: ctx.ingress_ifindex() as u32,
        vlan: 0,
        mac: eth.src,
    };
    // SAFETY: plain lookup.
    if unsafe { BENCH_SUBSCRIBERS.get(key) }.is_none() {
        return xdp_action::XDP_PASS;
    }
    let ip = match ptr_at::<Ipv4Hdr>(&ctx, ETH_HLEN) {
        // SAFETY: bounds checked.
        Some(i) => unsafe { &*i },
        None => return xdp_action::XDP_DROP,
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip.src);
    dst[..4].copy_from_slice(&ip.dst);
    let nh = fib(&ctx, key.ifindex, FAMILY_V4, &src, &dst, be16(ip.tot_len));
    if nh.rc != FIB_SUCCESS {
        return xdp_action::XDP_PASS;
    }
    eth.dst = nh.dmac;
    eth.src = nh.smac;
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(nh.ifindex, 0) as u32 }
}

/// `bpf_ktime_get_ns` (the encapsulation paths read the clock for their next-hop cache).
#[xdp]
pub fn tg_cost_ktime(_ctx: XdpContext) -> u32 {
    // SAFETY: helper without arguments.
    let t = unsafe { bpf_ktime_get_ns() };
    if t == 1 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// `bpf_ktime_get_coarse_ns` (tick resolution; enough for a 200 ms expiry).
#[xdp]
pub fn tg_cost_ktime_coarse(_ctx: XdpContext) -> u32 {
    // SAFETY: helper without arguments.
    let t = unsafe { bpf_ktime_get_coarse_ns() };
    if t == 1 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One hash lookup that hits: the subscriber in `BENCH_SUBSCRIBERS` by
/// (ifindex, VLAN 0, source MAC), as the access uplink does in
/// `ACCESS_BY_MAC` when its cache misses.
#[xdp]
pub fn tg_cost_hash(ctx: XdpContext) -> u32 {
    let Some(eth) = read_at::<EthHdr>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let key = AccessKey {
        ifindex: ctx.ingress_ifindex() as u32,
        vlan: 0,
        mac: eth.src,
    };
    // SAFETY: plain lookup.
    match unsafe { BENCH_SUBSCRIBERS.get(key) } {
        Some(s) if s.sub_id == u32::MAX => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// One array lookup: the ingress interface in `BENCH_IFACES`, as every
/// packet of the fast path does in `IFACES` (inlined by the JIT).
#[xdp]
pub fn tg_cost_array(ctx: XdpContext) -> u32 {
    match BENCH_IFACES.get(ctx.ingress_ifindex() as u32) {
        Some(c) if c.role == 0xff => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// `bpf_jiffies64` (the clock of the next-hop caches).
#[xdp]
pub fn tg_cost_jiffies(_ctx: XdpContext) -> u32 {
    // SAFETY: helper without arguments.
    let t = unsafe { bpf_jiffies64() };
    if t == 1 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One `bpf_fib_lookup` for the frame's IPv4 destination.
#[xdp]
pub fn tg_cost_fib(ctx: XdpContext) -> u32 {
    let Some(ip) = read_at::<Ipv4Hdr>(&ctx, ETH_HLEN) else {
        return xdp_action::XDP_PASS;
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip.src);
    dst[..4].copy_from_slice(&ip.dst);
    let nh = fib(&ctx, ctx.ingress_ifindex() as u32, FAMILY_V4, &src, &dst, 0);
    if nh.rc == 99 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// `bpf_xdp_adjust_head` growing the head by an IPv4 + GRE-key header (24 bytes).
#[xdp]
pub fn tg_cost_adjust(ctx: XdpContext) -> u32 {
    // SAFETY: helper call on our own context.
    let rc = unsafe { bpf_xdp_adjust_head(ctx.ctx, -24) };
    if rc == 1 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One per-CPU counter increment (every exit of the fast path does one).
#[xdp]
pub fn tg_cost_percpu(_ctx: XdpContext) -> u32 {
    if let Some(p) = TG_SINK.get_ptr_mut(1) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *p += 1 };
    }
    xdp_action::XDP_PASS
}

/// Counters for `tg_cost_atomic`.
#[map]
static BENCH_ATOMIC: Array<[u64; 4]> = Array::with_max_entries(1, 0);

/// Two atomic adds to a shared counter (packets and bytes: what counting a
/// subscriber's traffic in one shared entry costs, uncontended).
#[xdp]
pub fn tg_cost_atomic(ctx: XdpContext) -> u32 {
    if let Some(p) = BENCH_ATOMIC.get_ptr_mut(0) {
        let len = (ctx.data_end() - ctx.data()) as u64;
        // SAFETY: 8-byte aligned words of a map value.
        unsafe {
            atomic_add_u64(p as *mut u64, 1);
            atomic_add_u64((p as *mut u64).add(1), len);
        }
    }
    xdp_action::XDP_PASS
}

/// `bpf_redirect` alone (to ifindex 1; nothing is sent in BPF_PROG_TEST_RUN).
#[xdp]
pub fn tg_cost_redirect(_ctx: XdpContext) -> u32 {
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(1, 0) as u32 }
}

/// `bpf_redirect_map` through a DEVMAP slot the bench fills.
#[xdp]
pub fn tg_cost_redirect_map(_ctx: XdpContext) -> u32 {
    BENCH_DEV.redirect(0, 0).unwrap_or(xdp_action::XDP_ABORTED)
}

/// Slot 0: an interface of the fixture, for `tg_cost_redirect_map`.
#[map]
static BENCH_DEV: DevMap = DevMap::with_max_entries(1, 0);

/// Four 32-bit packet loads, each inside one 8-byte word of the frame
/// (offsets 24, 28, 32, 36), summed: the reference for `tg_cost_load_split`.
#[xdp]
pub fn tg_cost_load_word(ctx: XdpContext) -> u32 {
    four_loads::<24, 28, 32, 36>(&ctx)
}

/// Four 32-bit packet loads across 8-byte word boundaries (offsets 22, 30,
/// 34, 38: the outer IPv6 source's words of a GRE packet, the IPv4
/// destination), summed. Beside `tg_cost_load_word` under `bench_replay`,
/// which rewrites the frame with 8-byte stores right before each run: a
/// load that spans two of those stores cannot be forwarded from the store
/// buffer and waits for them (a cost of the harness, not of a NIC's frame).
#[xdp]
pub fn tg_cost_load_split(ctx: XdpContext) -> u32 {
    four_loads::<22, 30, 34, 38>(&ctx)
}

/// XDP_PASS after four 32-bit loads at these offsets (all below 42), XORed
/// so that none is optimised away.
#[inline(always)]
fn four_loads<const A: i16, const B: i16, const C: i16, const D: i16>(ctx: &XdpContext) -> u32 {
    let p = ctx.data();
    if p + 42 > ctx.data_end() {
        return xdp_action::XDP_DROP;
    }
    // SAFETY: p .. p + 42 is inside the packet (checked above).
    let s = unsafe { load_u32::<A>(p) ^ load_u32::<B>(p) ^ load_u32::<C>(p) ^ load_u32::<D>(p) };
    if s == 0x5a5a_5a5a {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}
