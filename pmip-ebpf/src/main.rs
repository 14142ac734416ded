//! pmip fast path: per-subscriber GRE encapsulation/decapsulation in XDP.
//!
//! One XDP program, `pmip_xdp`, is attached to every interface of a gateway;
//! the interface's role (from `IFACES`) selects the path:
//!
//! - ACCESS (MAG/PMA access side): subscriber frame → uplink encapsulation.
//! - ACCESS_CORE (MAG/PMA core side): GRE from the anchor → downlink decapsulation.
//! - ANCHOR_CORE (LMA/HA core side): GRE from an access gateway → uplink decapsulation.
//! - ANCHOR_CN (LMA/HA): packet to a home address → downlink encapsulation.
//!
//! Each path reads top-down: parse → look up → check → rewrite → redirect,
//! and every exit increments exactly one counter of `COUNTERS`.
#![no_std]
#![no_main]

mod hdr;
mod trafficgen;

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibParams, xdp_action, xdp_md},
    helpers::generated::{
        bpf_fib_lookup, bpf_ktime_get_ns, bpf_redirect, bpf_redirect_neigh, bpf_xdp_adjust_head,
        bpf_xdp_adjust_tail,
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
    EbpfContext,
};
use hdr::*;
use pmip_common::{
    flags, role, AccessDownlink, AccessKey, AccessSubscriber, AnchorDownlink, AnchorUplink,
    Counter, IfaceConfig, NewMacEvent, NextHopCache, SubscriberStats, Tunnel, NEW_MAC_REPORT_NS,
    NEW_MAC_RING_BYTES, NEW_MAC_SEEN_ENTRIES, NEXT_HOP_CACHE_NS, FAMILY_V4, FAMILY_V6, GRE_KEYED_LEN,
    IPV4_HDR_LEN, IPV6_HDR_LEN, MAX_IFACES, MAX_SUBSCRIBERS, MAX_TUNNELS,
};

// ---- maps (names and value types from pmip-common) ----

/// Subscribers by (access ifindex, VLAN, MAC). Written by the MAG/PMA agent.
#[map]
static ACCESS_BY_MAC: HashMap<AccessKey, AccessSubscriber> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// Downlink GRE key → subscriber on an access interface. Written by the MAG/PMA agent.
#[map]
static ACCESS_BY_KEY: HashMap<[u8; 4], AccessDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// IPv4 home address → tunnel to the serving access gateway. Written by the LMA/HA agent.
#[map]
static ANCHOR_BY_HOME4: HashMap<[u8; 4], AnchorDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// IPv6 home network prefix (first 64 bits) → tunnel. Written by the LMA/HA agent.
#[map]
static ANCHOR_BY_HNP: HashMap<[u8; 8], AnchorDownlink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// Uplink GRE key → binding (home address to enforce). Written by the LMA/HA agent.
#[map]
static ANCHOR_BY_KEY: HashMap<[u8; 4], AnchorUplink> =
    HashMap::with_max_entries(MAX_SUBSCRIBERS, 0);
/// Tunnel id → outer endpoints. Written by either agent before entries refer to it.
#[map]
static TUNNELS: Array<Tunnel> = Array::with_max_entries(MAX_TUNNELS, 0);
/// ifindex → role, MAC and ICMP source addresses. Written by the loader at attach.
#[map]
static IFACES: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(MAX_IFACES, 0);
/// Verdict and drop-reason counters. Written here only; read by `pmipctl show stats`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);
/// Per-subscriber packets/bytes in both directions. Written here; read for billing.
#[map]
static SUB_STATS: PerCpuArray<SubscriberStats> =
    PerCpuArray::with_max_entries(MAX_SUBSCRIBERS, 0);

/// A verdict and the counter it is accounted under, packed in one register
/// (BPF-to-BPF calls return a single value): action | counter << 8.
/// Next hop per tunnel, per CPU, refreshed from the FIB every NEXT_HOP_CACHE_NS.
#[map]
static TUNNEL_NH: PerCpuArray<NextHopCache> = PerCpuArray::with_max_entries(MAX_TUNNELS, 0);

/// Data from MACs without a binding, for the access agent (attach trigger).
#[map]
static NEW_MAC_EVENTS: RingBuf = RingBuf::with_byte_size(NEW_MAC_RING_BYTES, 0);
/// Rate limit of NEW_MAC_EVENTS: last report per MAC.
#[map]
static NEW_MAC_SEEN: LruHashMap<AccessKey, u64> = LruHashMap::with_max_entries(NEW_MAC_SEEN_ENTRIES, 0);

type Out = u32;

#[inline(always)]
const fn out(action: u32, c: Counter) -> Out {
    action | (c as u32) << 8
}

#[inline(always)]
fn counter_of(o: Out) -> u32 {
    o >> 8
}

/// Pseudo-action: "answer with ICMP too-big, tunnel MTU in the upper bits".
/// Resolved at the top level so the ICMP builder's stack frame is never
/// nested under a path's frame (the verifier caps the combined depth at 512).
const TOO_BIG: u32 = 0xee;

const PASS: u32 = xdp_action::XDP_PASS;
const DROP: u32 = xdp_action::XDP_DROP;
const TX: u32 = xdp_action::XDP_TX;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGH: i64 = 7;
const FIB_FRAG_NEEDED: i64 = 8;
const FIB_NOT_FWDED: i64 = 4;
const FIB_FWD_DISABLED: i64 = 5;

/// Bytes of the offending packet quoted in an ICMP too-big (RFC 792 asks for
/// header + 8; RFC 4443 "as much as possible" — a fixed quote keeps the
/// checksum loop bounded).
const ICMP_QUOTE: usize = 64;
const OUTER_TTL: u8 = 64;

#[xdp]
pub fn pmip_xdp(ctx: XdpContext) -> u32 {
    let mut o = dispatch(&ctx);
    if o & 0xff == TOO_BIG {
        o = icmp_too_big(ctx.ctx, (o >> 8) as u16);
    }
    count(counter_of(o));
    o & 0xff
}

/// Passes everything. Attached to the far end of a veth so that native-mode
/// XDP_TX/redirect into the pair is received (veth drops XDP frames towards a
/// peer without an XDP program), and the XDP_PASS baseline of the benchmarks.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    PASS
}

/// Benchmark baseline only (never attached by pmipd): the least a forwarder
/// does — one hash lookup (the subscriber, as the uplink does),
/// `bpf_fib_lookup` on the IPv4 destination, MAC rewrite, redirect.
#[xdp]
pub fn bench_min_fwd(ctx: XdpContext) -> u32 {
    let eth = match ptr_at::<EthHdr>(&ctx, 0) {
        // SAFETY: bounds checked.
        Some(e) => unsafe { &mut *e },
        None => return DROP,
    };
    let key = AccessKey { ifindex: ctx.ingress_ifindex() as u32, vlan: 0, mac: eth.src };
    // SAFETY: plain lookup.
    if unsafe { ACCESS_BY_MAC.get(&key) }.is_none() {
        return PASS;
    }
    let ip = match ptr_at::<Ipv4Hdr>(&ctx, ETH_HLEN) {
        // SAFETY: bounds checked.
        Some(i) => unsafe { &*i },
        None => return DROP,
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip.src);
    dst[..4].copy_from_slice(&ip.dst);
    let nh = fib(&ctx, key.ifindex, FAMILY_V4, &src, &dst, be16(ip.tot_len));
    if nh.rc != FIB_SUCCESS {
        return PASS;
    }
    eth.dst = nh.dmac;
    eth.src = nh.smac;
    redirect(nh.ifindex)
}

#[inline(always)]
fn count(c: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(c) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn account(sub_id: u32, bytes: u16, up: bool) {
    if let Some(s) = SUB_STATS.get_ptr_mut(sub_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            if up {
                (*s).up_packets += 1;
                (*s).up_bytes += bytes as u64;
            } else {
                (*s).down_packets += 1;
                (*s).down_bytes += bytes as u64;
            }
        }
    }
}

/// Ethernet (with at most one 802.1Q tag) as received.
#[derive(Clone, Copy)]
struct L2 {
    eth: EthHdr,
    vlan: u16,
    /// Bytes before the L3 header: 14, or 18 with a VLAN tag.
    len: usize,
    proto: u16,
}

#[inline(always)]
fn parse_l2(ctx: &XdpContext) -> Option<L2> {
    let eth: EthHdr = read_at(ctx, 0)?;
    let proto = be16(eth.proto);
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let v: VlanHdr = read_at(ctx, ETH_HLEN)?;
        return Some(L2 {
            eth,
            vlan: be16(v.tci) & 0x0fff,
            len: ETH_HLEN + VLAN_HLEN,
            proto: be16(v.proto),
        });
    }
    Some(L2 { eth, vlan: 0, len: ETH_HLEN, proto })
}

#[inline(always)]
fn dispatch(ctx: &XdpContext) -> Out {
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: plain lookup; the value is copied.
    let iface = match unsafe { IFACES.get(&ifindex) } {
        Some(c) => c,
        None => return out(PASS, Counter::PassNotOurs),
    };
    let l2 = match parse_l2(ctx) {
        Some(l2) => l2,
        None => return out(DROP, Counter::DropMalformed),
    };
    if iface.role & role::ACCESS != 0 {
        return access_uplink(ctx.ctx, iface, ifindex, &l2);
    }
    if l2.vlan != 0 {
        return out(PASS, Counter::PassNotOurs);
    }
    let gre_roles = role::ACCESS_CORE | role::ANCHOR_CORE;
    let anchor_roles = role::ANCHOR_CN | role::ANCHOR_CORE;
    match l2.proto {
        ETH_P_IP => {
            let ip: &Ipv4Hdr = match ptr_at::<Ipv4Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return out(DROP, Counter::DropMalformed),
            };
            if ip.ver_ihl >> 4 != 4 || ip.ver_ihl & 0x0f < 5 {
                return out(DROP, Counter::DropMalformed);
            }
            if ip.proto == IPPROTO_GRE && iface.role & gre_roles != 0 {
                if be16(ip.frag_off) & 0x3fff != 0 {
                    // A fragment of a tunnel packet: we do not reassemble.
                    return out(DROP, Counter::DropOuterFragment);
                }
                let mut src = [0u8; 16];
                src[..4].copy_from_slice(&ip.src);
                let gre_off = l2.len + ((ip.ver_ihl & 0x0f) as usize) * 4;
                return gre_in(ctx.ctx, iface, &l2, gre_off, &src);
            }
            if iface.role & anchor_roles != 0 {
                // SAFETY: plain lookup.
                if let Some(d) = unsafe { ANCHOR_BY_HOME4.get(&ip.dst) } {
                    return anchor_downlink(ctx.ctx, iface, ifindex, &l2, d);
                }
            }
            out(PASS, Counter::PassNotOurs)
        }
        ETH_P_IPV6 => {
            let ip: &Ipv6Hdr = match ptr_at::<Ipv6Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return out(DROP, Counter::DropMalformed),
            };
            if ip.ver_tc_flow[0] >> 4 != 6 {
                return out(DROP, Counter::DropMalformed);
            }
            if ip.next_hdr == IPPROTO_GRE && iface.role & gre_roles != 0 {
                return gre_in(ctx.ctx, iface, &l2, l2.len + IPV6_HDR_LEN, &ip.src);
            }
            if iface.role & anchor_roles != 0 {
                let mut hnp = [0u8; 8];
                hnp.copy_from_slice(&ip.dst[..8]);
                // SAFETY: plain lookup.
                if let Some(d) = unsafe { ANCHOR_BY_HNP.get(&hnp) } {
                    return anchor_downlink(ctx.ctx, iface, ifindex, &l2, d);
                }
            }
            out(PASS, Counter::PassNotOurs)
        }
        _ => out(PASS, Counter::PassNotOurs),
    }
}

// ---- inner packet ----

/// What the paths need to know about the subscriber's IP packet.
#[derive(Clone, Copy)]
struct Inner {
    family: u8,
    /// Total length of the inner IP packet (header + payload).
    len: u16,
    ttl: u8,
    /// DF set (always for IPv6: routers never fragment it).
    df: bool,
    src: [u8; 16],
    dst: [u8; 16],
    /// Inner IPv4 protocol / IPv6 next header.
    proto: u8,
    /// Offset of the transport header (IPv4 only; used to spot DHCP).
    l4_off: usize,
}

#[inline(always)]
fn parse_inner(ctx: &XdpContext, off: usize, ethertype: u16) -> Option<Inner> {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    // The IP length may not claim more than the frame holds (Ethernet padding
    // may make the frame longer; that is fine).
    let avail = ctx.data_end() - ctx.data();
    if ethertype == ETH_P_IP {
        // SAFETY: as above.
        let ip: &Ipv4Hdr = unsafe { &*ptr_at::<Ipv4Hdr>(ctx, off)? };
        let ihl = (ip.ver_ihl & 0x0f) as usize;
        let len = be16(ip.tot_len);
        if ip.ver_ihl >> 4 != 4 || ihl < 5 || (len as usize) < ihl * 4 || off + len as usize > avail {
            return None;
        }
        src[..4].copy_from_slice(&ip.src);
        dst[..4].copy_from_slice(&ip.dst);
        Some(Inner {
            family: FAMILY_V4,
            len,
            ttl: ip.ttl,
            df: be16(ip.frag_off) & 0x4000 != 0,
            src,
            dst,
            proto: ip.proto,
            l4_off: off + ihl * 4,
        })
    } else if ethertype == ETH_P_IPV6 {
        // SAFETY: bounds checked by ptr_at; fields are copied out before any resize.
        let ip: &Ipv6Hdr = unsafe { &*ptr_at::<Ipv6Hdr>(ctx, off)? };
        let len = be16(ip.payload_len).checked_add(IPV6_HDR_LEN as u16)?;
        if ip.ver_tc_flow[0] >> 4 != 6 || off + len as usize > avail {
            return None;
        }
        Some(Inner {
            family: FAMILY_V6,
            len,
            ttl: ip.hop_limit,
            df: true,
            src: ip.src,
            dst: ip.dst,
            proto: ip.next_hdr,
            l4_off: off + IPV6_HDR_LEN,
        })
    } else {
        None
    }
}

/// Decrements the inner TTL / hop limit as a router would (caller checked > 1).
#[inline(always)]
fn dec_ttl(ctx: &XdpContext, off: usize, family: u8) -> bool {
    if family == FAMILY_V4 {
        match ptr_at::<Ipv4Hdr>(ctx, off) {
            // SAFETY: bounds checked by ptr_at.
            Some(p) => {
                unsafe { ipv4_ttl_dec(&mut *p) };
                true
            }
            None => false,
        }
    } else {
        match ptr_at::<Ipv6Hdr>(ctx, off) {
            // SAFETY: bounds checked by ptr_at.
            Some(p) => {
                unsafe { (*p).hop_limit -= 1 };
                true
            }
            None => false,
        }
    }
}

#[inline(always)]
fn ethertype_of(family: u8) -> u16 {
    if family == FAMILY_V6 {
        ETH_P_IPV6
    } else {
        ETH_P_IP
    }
}

// ---- next hop ----

struct NextHop {
    rc: i64,
    ifindex: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
    mtu: u16,
}

/// `bpf_fib_lookup` for a packet of `tot_len` bytes from `src` to `dst`; with
/// tot_len set the kernel also checks the egress MTU (FRAG_NEEDED + mtu).
#[inline(always)]
fn fib(ctx: &impl EbpfContext, ifindex: u32, family: u8, src: &[u8; 16], dst: &[u8; 16], tot_len: u16) -> NextHop {
    fib_flags(ctx, ifindex, family, src, dst, tot_len, 0)
}

#[inline(always)]
fn fib_flags(ctx: &impl EbpfContext, ifindex: u32, family: u8, src: &[u8; 16], dst: &[u8; 16], tot_len: u16, flags: u32) -> NextHop {
    // SAFETY: FibParams is plain old data; all-zero is a valid value.
    let mut p: FibParams = unsafe { core::mem::zeroed() };
    p.ifindex = ifindex;
    p.__bindgen_anon_1.tot_len = tot_len;
    if family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([src[0], src[1], src[2], src[3]]);
        p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([dst[0], dst[1], dst[2], dst[3]]);
    } else {
        p.family = AF_INET6;
        // SAFETY: [u8; 16] and [u32; 4] have the same size; byte order is kept.
        p.__bindgen_anon_3.ipv6_src = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*src) };
        p.__bindgen_anon_4.ipv6_dst = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*dst) };
    }
    // SAFETY: helper call with a valid context and a params struct of the right size.
    let rc = unsafe {
        bpf_fib_lookup(ctx.as_ptr(), &mut p, core::mem::size_of::<FibParams>() as i32, flags)
    };
    NextHop {
        rc,
        ifindex: p.ifindex,
        smac: p.smac,
        dmac: p.dmac,
        // SAFETY: union read of a u16 field.
        mtu: unsafe { p.__bindgen_anon_1.mtu_result },
    }
}

// ---- encapsulation / decapsulation ----

/// Replaces the `l2_len`-byte L2 header with Ethernet + outer IP + GRE(key).
/// The inner packet is not moved: only the head grows.
#[inline(always)]
fn encap(ctx: &XdpContext, l2_len: usize, inner: &Inner, tun: &Tunnel, key: [u8; 4], smac: [u8; 6], dmac: [u8; 6]) -> bool {
    let outer_ip = if tun.family == FAMILY_V6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN };
    let new_hdr = ETH_HLEN + outer_ip + GRE_KEYED_LEN;
    let grow = new_hdr as i32 - l2_len as i32;
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -grow) } != 0 {
        return false;
    }
    let eth = EthHdr { dst: dmac, src: smac, proto: ethertype_of(tun.family).to_be_bytes() };
    if !write_at(ctx, 0, eth) {
        return false;
    }
    let payload = inner.len + GRE_KEYED_LEN as u16;
    if tun.family == FAMILY_V6 {
        let ip = Ipv6Hdr {
            ver_tc_flow: [0x60, 0, 0, 0],
            payload_len: payload.to_be_bytes(),
            next_hdr: IPPROTO_GRE,
            hop_limit: OUTER_TTL,
            src: tun.local,
            dst: tun.remote,
        };
        if !write_at(ctx, ETH_HLEN, ip) {
            return false;
        }
    } else {
        let mut ip = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0,
            tot_len: (payload + IPV4_HDR_LEN as u16).to_be_bytes(),
            id: [0, 0],
            frag_off: [0, 0],
            ttl: OUTER_TTL,
            proto: IPPROTO_GRE,
            check: [0, 0],
            src: [tun.local[0], tun.local[1], tun.local[2], tun.local[3]],
            dst: [tun.remote[0], tun.remote[1], tun.remote[2], tun.remote[3]],
        };
        ip.check = ipv4_csum(&ip);
        if !write_at(ctx, ETH_HLEN, ip) {
            return false;
        }
    }
    let gre = GreKeyHdr {
        flags: GRE_K.to_be_bytes(),
        proto: ethertype_of(inner.family).to_be_bytes(),
        key,
    };
    write_at(ctx, ETH_HLEN + outer_ip, gre)
}

/// Removes everything before `inner_off` and writes a fresh L2 header
/// (Ethernet, plus an 802.1Q tag when `vlan` is not 0).
#[inline(always)]
fn decap(ctx: &XdpContext, inner_off: usize, family: u8, smac: [u8; 6], dmac: [u8; 6], vlan: u16) -> bool {
    let l2 = if vlan != 0 { ETH_HLEN + VLAN_HLEN } else { ETH_HLEN };
    let shrink = inner_off as i32 - l2 as i32;
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, shrink) } != 0 {
        return false;
    }
    write_l2(ctx, smac, dmac, vlan, ethertype_of(family))
}

#[inline(always)]
fn write_l2(ctx: &XdpContext, smac: [u8; 6], dmac: [u8; 6], vlan: u16, proto: u16) -> bool {
    if vlan != 0 {
        write_at(ctx, 0, EthHdr { dst: dmac, src: smac, proto: ETH_P_8021Q.to_be_bytes() })
            && write_at(ctx, ETH_HLEN, VlanHdr { tci: vlan.to_be_bytes(), proto: proto.to_be_bytes() })
    } else {
        write_at(ctx, 0, EthHdr { dst: dmac, src: smac, proto: proto.to_be_bytes() })
    }
}

#[inline(always)]
fn redirect(ifindex: u32) -> u32 {
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Encapsulates towards `tun` and sends it: XDP redirect when the next hop is
/// resolved, otherwise through the kernel (which resolves the neighbour), so
/// no packet is lost to an unresolved neighbour. Handles too-big first.
#[inline(always)]
fn tunnel_out(
    ctx: &XdpContext,
    iface: &IfaceConfig,
    ifindex: u32,
    l2: &L2,
    inner: &Inner,
    tunnel_id: u32,
    tun: &Tunnel,
    key: [u8; 4],
    ok: Counter,
) -> Out {
    let overhead = pmip_common::tunnel_overhead(tun.family) as u16;
    let tot = inner.len.saturating_add(overhead);
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let cache = TUNNEL_NH.get_ptr_mut(tunnel_id);
    if let Some(c) = cache {
        // SAFETY: per-CPU slot of this CPU.
        let c = unsafe { &*c };
        if now < c.expires_ns && tot <= c.max_len && c.remote == tun.remote {
            if !dec_ttl(ctx, l2.len, inner.family) {
                return out(DROP, Counter::DropMalformed);
            }
            if !encap(ctx, l2.len, inner, tun, key, c.smac, c.dmac) {
                return out(DROP, Counter::DropAdjustFailed);
            }
            return out(redirect(c.ifindex), ok);
        }
    }
    let nh = fib(ctx, ifindex, tun.family, &tun.local, &tun.remote, tot);
    if nh.rc == FIB_FRAG_NEEDED {
        if !inner.df {
            return out(DROP, Counter::DropTooBigNoDf);
        }
        return TOO_BIG | (nh.mtu.saturating_sub(overhead) as u32) << 8;
    }
    if nh.rc != FIB_SUCCESS && nh.rc != FIB_NO_NEIGH {
        return out(DROP, Counter::DropNoRoute);
    }
    if !dec_ttl(ctx, l2.len, inner.family) {
        return out(DROP, Counter::DropMalformed);
    }
    if nh.rc == FIB_NO_NEIGH {
        // To the kernel, addressed to ourselves at L2: it routes the GRE packet and
        // resolves the neighbour; later packets find it and stay in XDP.
        if !encap(ctx, l2.len, inner, tun, key, l2.eth.src, iface.mac) {
            return out(DROP, Counter::DropAdjustFailed);
        }
        return out(PASS, Counter::PassNoNeigh);
    }
    if let Some(c) = cache {
        // SAFETY: per-CPU slot of this CPU.
        let c = unsafe { &mut *c };
        let fresh = now < c.expires_ns && c.remote == tun.remote && c.ifindex == nh.ifindex && c.dmac == nh.dmac;
        if !fresh {
            c.expires_ns = now + NEXT_HOP_CACHE_NS;
            c.max_len = 0;
            c.remote = tun.remote;
        }
        c.ifindex = nh.ifindex;
        c.smac = nh.smac;
        c.dmac = nh.dmac;
        if tot > c.max_len {
            c.max_len = tot;
        }
    }
    if !encap(ctx, l2.len, inner, tun, key, nh.smac, nh.dmac) {
        return out(DROP, Counter::DropAdjustFailed);
    }
    out(redirect(nh.ifindex), ok)
}

// ---- access side (MAG / PMA) ----

#[inline(never)]
fn access_uplink(raw: *mut xdp_md, iface: &IfaceConfig, ifindex: u32, l2: &L2) -> Out {
    let ctx = &XdpContext::new(raw);
    let key = AccessKey { ifindex, vlan: l2.vlan, mac: l2.eth.src };
    // SAFETY: plain lookup; copied.
    let sub = match unsafe { ACCESS_BY_MAC.get(&key) } {
        Some(s) => s,
        None => return unregistered(ctx, iface, l2, &key),
    };
    if l2.proto == ETH_P_ARP {
        return arp_reply(ctx, iface, l2, sub);
    }
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None if l2.proto == ETH_P_IP || l2.proto == ETH_P_IPV6 => return out(DROP, Counter::DropMalformed),
        None => return out(PASS, Counter::PassNotOurs),
    };
    if is_control(ctx, &inner, sub) {
        return out(PASS, Counter::PassControl);
    }
    if spoofed(&inner, sub.flags, &sub.home_v4, &sub.home_hnp) {
        return out(DROP, Counter::DropSpoofedSource);
    }
    if inner.ttl <= 1 {
        return out(PASS, Counter::PassTtl);
    }
    // SAFETY: plain lookup.
    let tun = match TUNNELS.get(sub.tunnel_id) {
        Some(t) if t.family != 0 => t,
        _ => return out(DROP, Counter::DropNoTunnel),
    };
    let o = tunnel_out(ctx, iface, ifindex, l2, &inner, sub.tunnel_id, tun, sub.uplink_key, Counter::TxEncapUplink);
    if counter_of(o) == Counter::TxEncapUplink as u32 || counter_of(o) == Counter::PassNoNeigh as u32 {
        account(sub.sub_id, inner.len, true);
    }
    o
}

/// A frame from a MAC without a binding. Its DHCP, ARP, IPv6 link-local
/// traffic and packets for the gateway itself go to the stack (the agent
/// answers them); its other IP data is not forwarded — the access gateway
/// routes only registered subscribers — but reported to the agent, which
/// registers a subscriber that moved in from another gateway.
#[inline(always)]
fn unregistered(ctx: &XdpContext, iface: &IfaceConfig, l2: &L2, key: &AccessKey) -> Out {
    let mut src_v4 = [0u8; 4];
    if l2.proto == ETH_P_IP {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l2.len) else {
            return out(DROP, Counter::DropMalformed);
        };
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        if ip.dst == iface.addr4 || ip.dst[0] >= 224 || ip.src == [0, 0, 0, 0] {
            return out(PASS, Counter::PassControl);
        }
        if ip.proto == IPPROTO_UDP {
            let l4 = l2.len + ((ip.ver_ihl & 0x0f) as usize) * 4;
            if let Some(u) = read_at::<UdpHdr>(ctx, l4) {
                if be16(u.dst) == 67 {
                    return out(PASS, Counter::PassControl);
                }
            }
        }
        src_v4 = ip.src;
    } else if l2.proto == ETH_P_IPV6 {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l2.len) else {
            return out(DROP, Counter::DropMalformed);
        };
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        let link_local = |a: &[u8; 16]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
        if ip.dst[0] == 0xff || link_local(&ip.dst) || link_local(&ip.src) {
            return out(PASS, Counter::PassControl);
        }
    } else {
        return out(PASS, Counter::PassNotOurs);
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: plain lookup.
    let recent = unsafe { NEW_MAC_SEEN.get(key) }.is_some_and(|t| now.wrapping_sub(*t) < NEW_MAC_REPORT_NS);
    if !recent {
        let _ = NEW_MAC_SEEN.insert(key, &now, 0);
        let _ = NEW_MAC_EVENTS.output::<NewMacEvent>(NewMacEvent { key: *key, src_v4 }, 0);
    }
    out(DROP, Counter::DropUnregistered)
}

/// Traffic for the gateway itself or for the local link, not for the tunnel:
/// DHCP, broadcast/multicast, IPv6 link-local (ND, RS), the default router.
#[inline(always)]
fn is_control(ctx: &XdpContext, inner: &Inner, sub: &AccessSubscriber) -> bool {
    if inner.family == FAMILY_V4 {
        let d = &inner.dst;
        if d[0] >= 224 || inner.src[..4] == [0, 0, 0, 0] || d[..4] == sub.gateway_v4 {
            return true;
        }
        if inner.proto == IPPROTO_UDP {
            if let Some(u) = read_at::<UdpHdr>(ctx, inner.l4_off) {
                return be16(u.dst) == 67;
            }
        }
        false
    } else {
        let link_local = |a: &[u8; 16]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
        inner.dst[0] == 0xff || link_local(&inner.dst) || link_local(&inner.src)
    }
}

/// Anti-spoofing: once a home address / prefix is bound, the inner source must be in it.
#[inline(always)]
fn spoofed(inner: &Inner, fl: u32, home4: &[u8; 4], hnp: &[u8; 8]) -> bool {
    if inner.family == FAMILY_V4 {
        fl & flags::HAS_HOME4 != 0 && inner.src[..4] != home4[..]
            || fl & flags::HAS_HOME4 == 0 && fl & flags::HAS_HNP != 0
    } else {
        fl & flags::HAS_HNP != 0 && inner.src[..8] != hnp[..]
            || fl & flags::HAS_HNP == 0 && fl & flags::HAS_HOME4 != 0
    }
}

/// Answers a known subscriber's ARP request for any address but its own
/// (draft-leung §6.1: the PMA is the subscriber's only L2 neighbour). Requests
/// with sender 0.0.0.0 (RFC 5227 probes) or for its own address go to the stack.
#[inline(always)]
fn arp_reply(ctx: &XdpContext, iface: &IfaceConfig, l2: &L2, sub: &AccessSubscriber) -> Out {
    let arp: ArpEthIp = match read_at(ctx, l2.len) {
        Some(a) => a,
        None => return out(DROP, Counter::DropMalformed),
    };
    if be16(arp.htype) != 1 || be16(arp.ptype) != ETH_P_IP || arp.hlen != 6 || arp.plen != 4 {
        return out(DROP, Counter::DropMalformed);
    }
    if be16(arp.op) != 1
        || arp.spa == [0, 0, 0, 0]
        || arp.tpa == arp.spa
        || (sub.flags & flags::HAS_HOME4 != 0 && arp.tpa == sub.home_v4)
    {
        return out(PASS, Counter::PassControl);
    }
    let reply = ArpEthIp {
        op: 2u16.to_be_bytes(),
        sha: iface.mac,
        spa: arp.tpa,
        tha: arp.sha,
        tpa: arp.spa,
        ..arp
    };
    let eth = EthHdr { dst: l2.eth.src, src: iface.mac, proto: l2.eth.proto };
    if !write_at(ctx, 0, eth) || !write_at(ctx, l2.len, reply) {
        return out(DROP, Counter::DropMalformed);
    }
    out(TX, Counter::TxArpReply)
}

/// Downlink at the access gateway: GRE from the anchor → subscriber's frame.
#[inline(always)]
fn access_downlink(ctx: &XdpContext, l2: &L2, family: u8, src: &[u8; 16], key: [u8; 4], inner_off: usize, ethertype: u16) -> Out {
    // SAFETY: plain lookup.
    let d = match unsafe { ACCESS_BY_KEY.get(&key) } {
        Some(d) => d,
        None => return out(DROP, Counter::DropUnknownKey),
    };
    if !peer_ok(d.tunnel_id, family, src) {
        return out(DROP, Counter::DropWrongPeer);
    }
    // SAFETY: plain lookup.
    let access = match unsafe { IFACES.get(&d.ifindex) } {
        Some(a) => a,
        None => return out(DROP, Counter::DropNoTunnel),
    };
    let inner = match parse_inner(ctx, inner_off, ethertype) {
        Some(i) => i,
        None => return out(DROP, Counter::DropMalformed),
    };
    let _ = l2;
    if inner.ttl <= 1 {
        // Decapsulated, to the stack: the kernel answers time exceeded.
        if !decap(ctx, inner_off, inner.family, l2.eth.src, access.mac, 0) {
            return out(DROP, Counter::DropAdjustFailed);
        }
        return out(PASS, Counter::PassTtl);
    }
    if !dec_ttl(ctx, inner_off, inner.family) {
        return out(DROP, Counter::DropMalformed);
    }
    if !decap(ctx, inner_off, inner.family, access.mac, d.mac, d.vlan) {
        return out(DROP, Counter::DropAdjustFailed);
    }
    account(d.sub_id, inner.len, false);
    out(redirect(d.ifindex), Counter::TxDecapDownlink)
}

/// The outer source must be the remote end of the tunnel the key belongs to.
#[inline(always)]
fn peer_ok(tunnel_id: u32, family: u8, src: &[u8; 16]) -> bool {
    // SAFETY: plain lookup.
    match TUNNELS.get(tunnel_id) {
        Some(t) if t.family == family => {
            if family == FAMILY_V4 {
                t.remote[..4] == src[..4]
            } else {
                t.remote == *src
            }
        }
        _ => false,
    }
}

/// A GRE packet arrived on a core interface: validate the header, then
/// decapsulate for the access gateway or the anchor.
#[inline(never)]
fn gre_in(raw: *mut xdp_md, iface: &IfaceConfig, l2: &L2, gre_off: usize, src: &[u8; 16]) -> Out {
    let ctx = &XdpContext::new(raw);
    let family = if l2.proto == ETH_P_IPV6 { FAMILY_V6 } else { FAMILY_V4 };
    let gre: GreKeyHdr = match read_at(ctx, gre_off) {
        Some(g) => g,
        None => return out(DROP, Counter::DropMalformed),
    };
    let fl = be16(gre.flags);
    // RFC 2890: our tunnels carry only a key; checksum, routing and sequence
    // numbers are never negotiated, and version must be 0 (RFC 2784 §2.3.1).
    if fl & (GRE_C | GRE_R | GRE_S) != 0 || fl & GRE_VER_MASK != 0 || fl & GRE_K == 0 {
        return out(DROP, Counter::DropGreUnsupported);
    }
    let ethertype = be16(gre.proto);
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return out(DROP, Counter::DropGreUnsupported);
    }
    let inner_off = gre_off + GRE_KEYED_LEN;
    if iface.role & role::ACCESS_CORE != 0 {
        access_downlink(ctx, l2, family, src, gre.key, inner_off, ethertype)
    } else {
        anchor_uplink(ctx, iface, l2, family, src, gre.key, inner_off, ethertype)
    }
}

// ---- anchor side (LMA / HA) ----

/// Uplink at the anchor: GRE from an access gateway → forwarded inner packet.
#[inline(always)]
fn anchor_uplink(ctx: &XdpContext, iface: &IfaceConfig, l2: &L2, family: u8, src: &[u8; 16], key: [u8; 4], inner_off: usize, ethertype: u16) -> Out {
    // SAFETY: plain lookup.
    let b = match unsafe { ANCHOR_BY_KEY.get(&key) } {
        Some(b) => b,
        None => return out(DROP, Counter::DropUnknownKey),
    };
    if !peer_ok(b.tunnel_id, family, src) {
        return out(DROP, Counter::DropWrongPeer);
    }
    let inner = match parse_inner(ctx, inner_off, ethertype) {
        Some(i) => i,
        None => return out(DROP, Counter::DropMalformed),
    };
    if spoofed(&inner, b.flags, &b.home_v4, &b.home_hnp) {
        return out(DROP, Counter::DropSpoofedSource);
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    if inner.ttl <= 1 {
        if !decap(ctx, inner_off, inner.family, l2.eth.src, iface.mac, 0) {
            return out(DROP, Counter::DropAdjustFailed);
        }
        return out(PASS, Counter::PassTtl);
    }
    let nh = fib(ctx, ifindex, inner.family, &inner.src, &inner.dst, 0);
    if !dec_ttl(ctx, inner_off, inner.family) {
        return out(DROP, Counter::DropMalformed);
    }
    account(b.sub_id, inner.len, true);
    if nh.rc == FIB_SUCCESS {
        if !decap(ctx, inner_off, inner.family, nh.smac, nh.dmac, 0) {
            return out(DROP, Counter::DropAdjustFailed);
        }
        return out(redirect(nh.ifindex), Counter::TxDecapUplink);
    }
    if nh.rc == FIB_NO_NEIGH || nh.rc == FIB_NOT_FWDED || nh.rc == FIB_FWD_DISABLED {
        // The kernel forwards (or delivers locally) the decapsulated packet.
        if !decap(ctx, inner_off, inner.family, l2.eth.src, iface.mac, 0) {
            return out(DROP, Counter::DropAdjustFailed);
        }
        return out(PASS, if nh.rc == FIB_NO_NEIGH { Counter::PassNoNeigh } else { Counter::PassSlowPath });
    }
    out(DROP, Counter::DropNoRoute)
}

/// Downlink at the anchor: a packet to a home address → tunnel to the access
/// gateway that serves it now (one map value, switched atomically on handover).
#[inline(never)]
fn anchor_downlink(raw: *mut xdp_md, iface: &IfaceConfig, ifindex: u32, l2: &L2, d: &AnchorDownlink) -> Out {
    let ctx = &XdpContext::new(raw);
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None => return out(DROP, Counter::DropMalformed),
    };
    if inner.ttl <= 1 {
        return out(PASS, Counter::PassTtl);
    }
    // SAFETY: plain lookup.
    let tun = match TUNNELS.get(d.tunnel_id) {
        Some(t) if t.family != 0 => t,
        _ => return out(DROP, Counter::DropNoTunnel),
    };
    let o = tunnel_out(ctx, iface, ifindex, l2, &inner, d.tunnel_id, tun, d.downlink_key, Counter::TxEncapDownlink);
    if counter_of(o) == Counter::TxEncapDownlink as u32 || counter_of(o) == Counter::PassNoNeigh as u32 {
        account(d.sub_id, inner.len, false);
    }
    o
}

// ---- ICMP too big ----

/// Answers a DF (or IPv6) packet that would not fit the tunnel with ICMP
/// fragmentation-needed (RFC 1191) / packet-too-big (RFC 4443 §3.2) carrying
/// the tunnel MTU, sent back out of the interface it came in on (XDP_TX).
#[inline(never)]
fn icmp_too_big(raw: *mut xdp_md, mtu: u16) -> Out {
    let ctx = &XdpContext::new(raw);
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: plain lookup (the caller found it a moment ago).
    let iface = match unsafe { IFACES.get(&ifindex) } {
        Some(c) => *c,
        None => return out(DROP, Counter::DropMalformed),
    };
    let iface = &iface;
    let l2 = match parse_l2(ctx) {
        Some(l2) => l2,
        None => return out(DROP, Counter::DropMalformed),
    };
    let l2 = &l2;
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None => return out(DROP, Counter::DropMalformed),
    };
    let inner = &inner;
    let v6 = inner.family == FAMILY_V6;
    let ip_len = if v6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN };
    let grow = (ip_len + 8) as i32;
    // SAFETY: helper calls on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -grow) } != 0 {
        return out(DROP, Counter::DropAdjustFailed);
    }
    let l4 = l2.len + ip_len;
    let want = (l4 + 8 + ICMP_QUOTE) as i32;
    let have = (ctx.data_end() - ctx.data()) as i32;
    if have < want || unsafe { bpf_xdp_adjust_tail(ctx.ctx, want - have) } != 0 {
        return out(DROP, Counter::DropAdjustFailed);
    }
    if !write_l2(ctx, iface.mac, l2.eth.src, l2.vlan, l2.proto) {
        return out(DROP, Counter::DropAdjustFailed);
    }
    let icmp_len = (8 + ICMP_QUOTE) as u16;
    let mut sum: u64 = 0;
    if v6 {
        let ip = Ipv6Hdr {
            ver_tc_flow: [0x60, 0, 0, 0],
            payload_len: icmp_len.to_be_bytes(),
            next_hdr: IPPROTO_ICMPV6,
            hop_limit: 255,
            src: iface.addr6,
            dst: inner.src,
        };
        // Pseudo-header (RFC 8200 §8.1): addresses, upper-layer length, next header.
        sum += sum16(&ip.src) + sum16(&ip.dst) + icmp_len as u64 + IPPROTO_ICMPV6 as u64;
        if !write_at(ctx, l2.len, ip) {
            return out(DROP, Counter::DropAdjustFailed);
        }
    } else {
        let mut ip = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0xc0,
            tot_len: (icmp_len + IPV4_HDR_LEN as u16).to_be_bytes(),
            id: [0, 0],
            frag_off: [0, 0],
            ttl: OUTER_TTL,
            proto: IPPROTO_ICMP,
            check: [0, 0],
            src: iface.addr4,
            dst: [inner.src[0], inner.src[1], inner.src[2], inner.src[3]],
        };
        ip.check = ipv4_csum(&ip);
        if !write_at(ctx, l2.len, ip) {
            return out(DROP, Counter::DropAdjustFailed);
        }
    }
    let (ty, code, rest) = if v6 {
        (2u8, 0u8, (mtu as u32).to_be_bytes())
    } else {
        let m = mtu.to_be_bytes();
        (3u8, 4u8, [0, 0, m[0], m[1]])
    };
    let hdr = IcmpHdr { ty, code, check: [0, 0], rest };
    sum += ((ty as u64) << 8 | code as u64) + sum16(&rest);
    let mut i = 0;
    while i < ICMP_QUOTE {
        match read_at::<[u8; 8]>(ctx, l4 + 8 + i) {
            Some(q) => sum += sum16(&q),
            None => return out(DROP, Counter::DropAdjustFailed),
        }
        i += 8;
    }
    let hdr = IcmpHdr { check: csum_fold(sum).to_be_bytes(), ..hdr };
    if !write_at(ctx, l4, hdr) {
        return out(DROP, Counter::DropAdjustFailed);
    }
    out(TX, Counter::TxIcmpTooBig)
}

/// Sum of big-endian 16-bit words (even length).
#[inline(always)]
fn sum16<const N: usize>(b: &[u8; N]) -> u64 {
    let mut s: u64 = 0;
    let mut i = 0;
    while i + 1 < N {
        s += u16::from_be_bytes([b[i], b[i + 1]]) as u64;
        i += 2;
    }
    s
}

// ---- TC egress (anchor): traffic the gateway host itself sends to a home address ----

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;
const BPF_ADJ_ROOM_MAC: u32 = 1;
const BPF_F_ADJ_ROOM_ENCAP_L3_IPV4: u64 = 2;
const BPF_F_ADJ_ROOM_ENCAP_L3_IPV6: u64 = 4;
const BPF_F_ADJ_ROOM_ENCAP_L4_GRE: u64 = 8;
const BPF_FIB_LOOKUP_OUTPUT: u32 = 2;

/// On an anchor's interfaces, egress: a packet the host originates (or the
/// kernel forwards) towards a home address is tunneled to the access gateway
/// serving it, exactly as XDP does for packets arriving from correspondents.
/// The host's route for the home pool only has to lead out of an anchor
/// interface; the tunnel decides the real next hop.
#[classifier]
pub fn pmip_tc_egress(ctx: TcContext) -> i32 {
    let (action, c) = tc_egress(&ctx);
    if let Some(c) = c {
        count(c as u32);
    }
    action
}

#[inline(always)]
fn tc_egress(ctx: &TcContext) -> (i32, Option<Counter>) {
    let proto = match ctx.load::<[u8; 2]>(12) {
        Ok(p) => be16(p),
        Err(_) => return (TC_ACT_OK, None),
    };
    let (d, inner_family, inner_len) = if proto == ETH_P_IP {
        let dst = match ctx.load::<[u8; 4]>(ETH_HLEN + 16) {
            Ok(d) => d,
            Err(_) => return (TC_ACT_OK, None),
        };
        // SAFETY: plain lookup.
        match unsafe { ANCHOR_BY_HOME4.get(&dst) } {
            Some(d) => (*d, FAMILY_V4, ctx.load::<[u8; 2]>(ETH_HLEN + 2).map(be16).unwrap_or(0)),
            None => return (TC_ACT_OK, None),
        }
    } else if proto == ETH_P_IPV6 {
        let dst = match ctx.load::<[u8; 8]>(ETH_HLEN + 24) {
            Ok(d) => d,
            Err(_) => return (TC_ACT_OK, None),
        };
        // SAFETY: plain lookup.
        match unsafe { ANCHOR_BY_HNP.get(&dst) } {
            Some(d) => (*d, FAMILY_V6, ctx.load::<[u8; 2]>(ETH_HLEN + 4).map(|l| be16(l).saturating_add(40)).unwrap_or(0)),
            None => return (TC_ACT_OK, None),
        }
    } else {
        return (TC_ACT_OK, None);
    };
    let tun = match TUNNELS.get(d.tunnel_id) {
        Some(t) if t.family != 0 => *t,
        _ => return (TC_ACT_SHOT, Some(Counter::DropNoTunnel)),
    };
    let v6 = tun.family == FAMILY_V6;
    let outer_ip = if v6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN };
    let overhead = (outer_ip + GRE_KEYED_LEN) as u16;
    let flags = BPF_F_ADJ_ROOM_ENCAP_L4_GRE
        | if v6 { BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 } else { BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 };
    if ctx.adjust_room(overhead as i32, BPF_ADJ_ROOM_MAC, flags).is_err() {
        return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
    }
    let payload = inner_len + GRE_KEYED_LEN as u16;
    let ok = if v6 {
        let ip = Ipv6Hdr {
            ver_tc_flow: [0x60, 0, 0, 0],
            payload_len: payload.to_be_bytes(),
            next_hdr: IPPROTO_GRE,
            hop_limit: OUTER_TTL,
            src: tun.local,
            dst: tun.remote,
        };
        ctx.store(ETH_HLEN, &ip, 0).is_ok()
    } else {
        let mut ip = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0,
            tot_len: (payload + IPV4_HDR_LEN as u16).to_be_bytes(),
            id: [0, 0],
            frag_off: [0, 0],
            ttl: OUTER_TTL,
            proto: IPPROTO_GRE,
            check: [0, 0],
            src: [tun.local[0], tun.local[1], tun.local[2], tun.local[3]],
            dst: [tun.remote[0], tun.remote[1], tun.remote[2], tun.remote[3]],
        };
        ip.check = ipv4_csum(&ip);
        ctx.store(ETH_HLEN, &ip, 0).is_ok()
    };
    let gre = GreKeyHdr { flags: GRE_K.to_be_bytes(), proto: ethertype_of(inner_family).to_be_bytes(), key: d.downlink_key };
    if !ok
        || ctx.store(ETH_HLEN + outer_ip, &gre, 0).is_err()
        || ctx.store(12, &ethertype_of(tun.family).to_be_bytes(), 0).is_err()
    {
        return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
    }
    // SAFETY: reading a field of the context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let nh = fib_flags(ctx, ifindex, tun.family, &tun.local, &tun.remote, 0, BPF_FIB_LOOKUP_OUTPUT);
    account(d.sub_id, inner_len, false);
    if nh.rc == FIB_SUCCESS {
        if ctx.store(0, &nh.dmac, 0).is_err() || ctx.store(6, &nh.smac, 0).is_err() {
            return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
        }
        // SAFETY: helper call.
        return (unsafe { bpf_redirect(nh.ifindex, 0) } as i32, Some(Counter::TxEncapDownlink));
    }
    if nh.rc == FIB_NO_NEIGH {
        // The kernel resolves the neighbour and fills in the Ethernet header.
        // SAFETY: helper call without next-hop parameters.
        let r = unsafe { bpf_redirect_neigh(nh.ifindex, core::ptr::null_mut(), 0, 0) };
        return (r as i32, Some(Counter::PassNoNeigh));
    }
    let _ = TC_ACT_REDIRECT;
    (TC_ACT_SHOT, Some(Counter::DropNoRoute))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
