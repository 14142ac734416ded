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
//!
//! `pmip_tc_ingress` runs the same paths at TC ingress, on an skb, for
//! interfaces where XDP cannot attach: the paths are generic over
//! [`ctx::Pkt`], the handful of operations that differ (see ctx.rs).
#![no_std]
#![no_main]
// Word stores to packet data (hdr::store): see there.
#![feature(asm_experimental_arch)]

mod access;
mod anchor;
mod ctx;
mod hdr;
mod icmp;
mod inner;
mod maps;
mod tc;
mod testprogs;
mod trafficgen;
mod tunnel;

use access::*;
use anchor::*;
use ctx::*;
use icmp::*;
use inner::*;
use maps::*;
use tc::*;
use tunnel::*;

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibParams, xdp_action, xdp_md},
    helpers::generated::{
        bpf_fib_lookup, bpf_jiffies64, bpf_ktime_get_ns, bpf_redirect, bpf_redirect_neigh,
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
    EbpfContext,
};
use hdr::*;
use pmip_common::{
    access_cache_set, flags, role, AccessCacheSlot, AccessDownlink, AccessKey, AccessSubscriber,
    AnchorDownlink, AnchorUplink, Counter, DestNextHop, HomePool4, HomePool6, IfaceConfig,
    NewMacEvent, NextHopCache, SubscriberStats, Tunnel, ACCESS_CACHE_ENTRIES, ACCESS_CACHE_SETS,
    DEST_NH_BITS, DEST_NH_ENTRIES, FAMILY_V4, FAMILY_V6, GRE_KEYED_LEN, IFACE_SLOTS, IPV4_HDR_LEN,
    IPV6_HDR_LEN, MAX_HOME_POOLS, MAX_IFACES, MAX_SUBSCRIBERS, MAX_TUNNELS, NEW_MAC_REPORT_NS,
    NEW_MAC_RING_BYTES, NEW_MAC_SEEN_ENTRIES, NEXT_HOP_CACHE_JIFFIES_DEFAULT, NEXT_HOP_CACHE_NS,
};

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
        o = icmp_too_big::<XdpContext>(ctx.ctx, (o >> 8) as u16);
    }
    count(counter_of(o));
    o & 0xff
}

/// The same fast path at TC ingress, for interfaces where XDP cannot attach
/// (`attach_mode = "tc"`): the same paths, maps and counters on an skb.
/// Verdicts: TC_ACT_OK (to the stack), TC_ACT_SHOT, TC_ACT_REDIRECT (to the
/// next hop, or back out of this interface where XDP would XDP_TX).
#[classifier]
pub fn pmip_tc_ingress(ctx: TcContext) -> i32 {
    tc_pull_headers(&ctx);
    let mut o = dispatch(&ctx);
    if o & 0xff == TOO_BIG {
        o = icmp_too_big::<TcContext>(ctx.skb.skb, (o >> 8) as u16);
    }
    count(counter_of(o));
    (o & 0xff) as i32
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
    let key = AccessKey {
        ifindex: ctx.ingress_ifindex() as u32,
        vlan: 0,
        mac: eth.src,
    };
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
    if let Some(s) = sub_stats(sub_id) {
        // SAFETY: this CPU's entry; no other CPU writes it.
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
fn parse_l2(ctx: &impl Pkt) -> Option<L2> {
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
    // At TC ingress the kernel has moved an 802.1Q tag into metadata.
    Some(L2 {
        eth,
        vlan: ctx.meta_vlan(),
        len: ETH_HLEN,
        proto,
    })
}

#[inline(always)]
fn dispatch<C: Pkt>(ctx: &C) -> Out {
    let ifindex = ctx.ifindex();
    let iface = match iface_of(ifindex) {
        Some(c) => c,
        None => return out(C::PASS, Counter::PassNotOurs),
    };
    let l2 = match parse_l2(ctx) {
        Some(l2) => l2,
        None => return out(C::DROP, Counter::DropMalformed),
    };
    if iface.role & role::ACCESS != 0 {
        return access_uplink::<C>(ctx.raw(), iface, ifindex, &l2);
    }
    if l2.vlan != 0 {
        return out(C::PASS, Counter::PassNotOurs);
    }
    let gre_roles = role::ACCESS_CORE | role::ANCHOR_CORE;
    let anchor_roles = role::ANCHOR_CN | role::ANCHOR_CORE;
    match l2.proto {
        ETH_P_IP => {
            let ip: &Ipv4Hdr = match ptr_at::<Ipv4Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return out(C::DROP, Counter::DropMalformed),
            };
            if ip.ver_ihl >> 4 != 4 || ip.ver_ihl & 0x0f < 5 {
                return out(C::DROP, Counter::DropMalformed);
            }
            if ip.proto == IPPROTO_GRE && iface.role & gre_roles != 0 {
                if be16(ip.frag_off) & 0x3fff != 0 {
                    // A fragment of a tunnel packet: we do not reassemble.
                    return out(C::DROP, Counter::DropOuterFragment);
                }
                // Built from words: zeroing a byte array compiles to a call
                // to a byte-loop memset.
                let src = Addr::from_words([u32::from_ne_bytes(ip.src), 0, 0, 0]);
                let gre_off = l2.len + ((ip.ver_ihl & 0x0f) as usize) * 4;
                return gre_in::<C>(ctx.raw(), iface, &l2, gre_off, &src);
            }
            if iface.role & anchor_roles != 0 {
                if let Some(d) = anchor_by_home4(&ip.dst) {
                    return anchor_downlink::<C>(ctx.raw(), iface, ifindex, &l2, d);
                }
            }
            out(C::PASS, Counter::PassNotOurs)
        }
        ETH_P_IPV6 => {
            let ip: &Ipv6Hdr = match ptr_at::<Ipv6Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return out(C::DROP, Counter::DropMalformed),
            };
            if ip.ver_tc_flow[0] >> 4 != 6 {
                return out(C::DROP, Counter::DropMalformed);
            }
            if ip.next_hdr == IPPROTO_GRE && iface.role & gre_roles != 0 {
                return gre_in::<C>(ctx.raw(), iface, &l2, l2.len + IPV6_HDR_LEN, &ip.src);
            }
            if iface.role & anchor_roles != 0 {
                let mut hnp = [0u8; 8];
                hnp.copy_from_slice(&ip.dst[..8]);
                if let Some(d) = anchor_by_hnp(&hnp) {
                    return anchor_downlink::<C>(ctx.raw(), iface, ifindex, &l2, d);
                }
            }
            out(C::PASS, Counter::PassNotOurs)
        }
        _ => out(C::PASS, Counter::PassNotOurs),
    }
}

/// A GRE packet arrived on a core interface: validate the header, then
/// decapsulate for the access gateway or the anchor.
#[inline(never)]
fn gre_in<C: Pkt>(
    raw: *mut C::Raw,
    iface: &IfaceConfig,
    l2: &L2,
    gre_off: usize,
    src: &[u8; 16],
) -> Out {
    let ctx = &C::from_raw(raw);
    let family = if l2.proto == ETH_P_IPV6 {
        FAMILY_V6
    } else {
        FAMILY_V4
    };
    let gre: GreKeyHdr = match read_at(ctx, gre_off) {
        Some(g) => g,
        None => return out(C::DROP, Counter::DropMalformed),
    };
    let fl = be16(gre.flags);
    // RFC 2890: our tunnels carry only a key; checksum, routing and sequence
    // numbers are never negotiated, and version must be 0 (RFC 2784 §2.3.1).
    if fl & (GRE_C | GRE_R | GRE_S) != 0 || fl & GRE_VER_MASK != 0 || fl & GRE_K == 0 {
        return out(C::DROP, Counter::DropGreUnsupported);
    }
    let ethertype = be16(gre.proto);
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return out(C::DROP, Counter::DropGreUnsupported);
    }
    let inner_off = gre_off + GRE_KEYED_LEN;
    if iface.role & role::ACCESS_CORE != 0 {
        access_downlink(ctx, l2, family, src, gre.key, inner_off, ethertype)
    } else {
        anchor_uplink(ctx, iface, l2, family, src, gre.key, inner_off, ethertype)
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
