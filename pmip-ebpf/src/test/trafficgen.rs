//! The throughput benchmark's programs (never attached by pmipd): an
//! in-kernel traffic generator, a counting sink and a redirect-only
//! forwarder.
//!
//! `tg_gen` runs under BPF_PROG_TEST_RUN in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES` with `repeat`): the kernel hands it frames
//! from a page pool it recycles *without* restoring their bytes, and the
//! gateways downstream rewrite headers in place (encap, decap, TTL), so the
//! program writes the frame's first `TG_HDR_LEN` bytes from a template on
//! every run and sends the frame out of the generator's veth through a
//! DEVMAP. One template per CPU: each generator thread (pinned to a CPU) is
//! one flow (its own UDP port), so each lands on its own veth queue.
//!
//! `tg_gen6` is the same for IPv6 frames: their headers (Ethernet, IPv6,
//! UDP: 62 bytes) do not fit the IPv4 template, and a template of its own
//! keeps the IPv4 generator's per-frame copy (and so its figures) as it was.
//!
//! `tg_sink` counts and drops the generator's UDP (ports
//! `TG_PORT_BASE..+TG_PORT_SPAN`) over IPv4 and IPv6, per family, and passes
//! everything else, so the same sink serves ARP, ND and TCP (iperf3) on the
//! same veth.
//!
//! `tg_fwd` is the XDP-redirect ceiling of a hop: rewrite the MACs, redirect
//! to one interface, nothing else (one rule per namespace: array slot 0).
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_get_smp_processor_id, bpf_redirect, bpf_xdp_adjust_head},
    macros::{map, xdp},
    maps::{Array, DevMap, PerCpuArray},
    programs::XdpContext,
    EbpfContext,
};

use crate::hdr::{
    be16, ptr_at, read_at, EthHdr, Ipv4Hdr, Ipv6Hdr, UdpHdr, ETH_HLEN, ETH_P_IP, ETH_P_IPV6,
    IPPROTO_UDP,
};

/// Bytes rewritten per frame: Ethernet + IPv4 + UDP (42) and 6 payload bytes.
pub const TG_HDR_LEN: usize = 48;
/// The same for IPv6: Ethernet + IPv6 + UDP (62) and 2 payload bytes.
pub const TG_HDR6_LEN: usize = 64;
pub const TG_MAX_CPUS: u32 = 64;
pub const TG_PORT_BASE: u16 = 9000;
pub const TG_PORT_SPAN: u16 = 64;

/// Frame template per CPU (the generator thread pinned there). Written by the bench.
#[map]
static TG_TEMPLATE: Array<[u8; TG_HDR_LEN]> = Array::with_max_entries(TG_MAX_CPUS, 0);
/// IPv6 frame template per CPU, for `tg_gen6`. Written by the bench.
#[map]
static TG_TEMPLATE6: Array<[u8; TG_HDR6_LEN]> = Array::with_max_entries(TG_MAX_CPUS, 0);
/// Slot 0: the generator's veth.
#[map]
static TG_DEV: DevMap = DevMap::with_max_entries(1, 0);
/// Sink counters: [0] IPv4 packets, [1] bytes (both families), [2] IPv6
/// packets. Two updates per packet, as before there was an IPv6 count.
/// [3]: frames `tg_loop` dropped once its loop was stopped (drained).
#[map]
pub(crate) static TG_SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(4, 0);
/// [0] non-zero: `tg_loop` sends every generator frame round again. Written by the bench.
#[map]
static TG_LOOP: Array<u32> = Array::with_max_entries(1, 0);
/// Redirect-only rule, slot 0: out ifindex (native endian), source MAC, destination MAC.
#[map]
static TG_FWD: Array<[u8; 16]> = Array::with_max_entries(1, 0);

#[xdp]
pub fn tg_gen(ctx: XdpContext) -> u32 {
    emit_template(&ctx, false)
}

#[xdp]
pub fn tg_gen6(ctx: XdpContext) -> u32 {
    emit_template(&ctx, true)
}

/// Writes this CPU's template of the family (`TG_TEMPLATE6` for IPv6) over
/// the frame and sends it out of the generator's veth.
#[inline(always)]
fn emit_template(ctx: &XdpContext, v6: bool) -> u32 {
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let sent = if v6 {
        TG_TEMPLATE6.get(cpu).map(|t| emit(ctx, t))
    } else {
        TG_TEMPLATE.get(cpu).map(|t| emit(ctx, t))
    };
    sent.unwrap_or(xdp_action::XDP_ABORTED)
}

/// Writes template `t` over the frame's first bytes and sends it out of the
/// generator's veth.
#[inline(always)]
fn emit<const N: usize>(ctx: &XdpContext, t: &[u8; N]) -> u32 {
    match ptr_at::<[u8; N]>(ctx, 0) {
        // SAFETY: bounds checked by ptr_at.
        Some(p) => unsafe { core::ptr::write_unaligned(p, *t) },
        None => return xdp_action::XDP_ABORTED,
    }
    TG_DEV.redirect(0, 0).unwrap_or(xdp_action::XDP_ABORTED)
}

#[xdp]
pub fn tg_sink(ctx: XdpContext) -> u32 {
    match count(&ctx) {
        Some(_) => xdp_action::XDP_DROP,
        None => xdp_action::XDP_PASS,
    }
}

/// The sink of the closed loop: counts as `tg_sink` does, then, while
/// `TG_LOOP[0]` is set, writes the frame's template (the one its family
/// and CPU were sent with) back over its headers and sends it out of
/// `TG_DEV` (the generator's veth) again; once `TG_LOOP[0]` is cleared it
/// drops the frame and counts it as drained (`TG_SINK[3]`).
#[xdp]
pub fn tg_loop(ctx: XdpContext) -> u32 {
    let Some(slot) = count(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    if TG_LOOP.get(0).copied().unwrap_or(0) == 0 {
        add(3, 1);
        return xdp_action::XDP_DROP;
    }
    emit_template(&ctx, slot == 2)
}

/// Counts the generator's UDP (ports `TG_PORT_BASE..+TG_PORT_SPAN`) over
/// IPv4 and IPv6 in `TG_SINK` and returns its family's slot (0 IPv4, 2
/// IPv6); None for anything else, which the sinks pass.
#[inline(always)]
fn count(ctx: &XdpContext) -> Option<u32> {
    let eth = read_at::<EthHdr>(ctx, 0)?;
    // (UDP header offset, the family's counter slot)
    let (l4, slot) = match be16(eth.proto) {
        ETH_P_IP => match read_at::<Ipv4Hdr>(ctx, ETH_HLEN) {
            Some(ip) if ip.proto == IPPROTO_UDP && ip.ver_ihl == 0x45 => (ETH_HLEN + 20, 0),
            _ => return None,
        },
        // No extension headers: the generator sends none.
        ETH_P_IPV6 => match read_at::<Ipv6Hdr>(ctx, ETH_HLEN) {
            Some(ip) if ip.next_hdr == IPPROTO_UDP && ip.ver_tc_flow[0] >> 4 == 6 => {
                (ETH_HLEN + 40, 2)
            }
            _ => return None,
        },
        _ => return None,
    };
    let udp = read_at::<UdpHdr>(ctx, l4)?;
    let port = be16(udp.dst);
    if !(TG_PORT_BASE..TG_PORT_BASE + TG_PORT_SPAN).contains(&port) {
        return None;
    }
    add(slot, 1);
    add(1, (ctx.data_end() - ctx.data()) as u64);
    Some(slot)
}

#[inline(always)]
fn add(slot: u32, n: u64) {
    if let Some(p) = TG_SINK.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *p += n };
    }
}

#[xdp]
pub fn tg_fwd(ctx: XdpContext) -> u32 {
    let Some(r) = TG_FWD.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let Some(eth) = ptr_at::<[u8; 12]>(&ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&r[10..16]);
    macs[6..].copy_from_slice(&r[4..10]);
    // SAFETY: bounds checked by ptr_at.
    unsafe { core::ptr::write_unaligned(eth, macs) };
    let ifindex = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
    let _ = ctx.as_ptr();
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Outer IPv4 + GRE with key: what [`tg_min_encap`] adds in front of the
/// frame's IP packet, and [`tg_min_decap`] takes off.
const MIN_TUNNEL_GROW: i32 = 20 + 8;

/// The floor under an encapsulating hop (`bench throughput`'s `min-tunnel`
/// row): the least an XDP GRE tunnel entrance does to a packet — grow the
/// head by an outer IPv4 header and GRE with a key, write them (total length
/// and checksum per packet, the rest fixed) and Ethernet, redirect as
/// `tg_fwd` does. No lookup, counter, check or TTL: the fast path's hop does
/// all of those, and the row says what they cost beside this.
#[xdp]
pub fn tg_min_encap(ctx: XdpContext) -> u32 {
    let Some(r) = TG_FWD.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let inner = (ctx.data_end() - ctx.data()).saturating_sub(ETH_HLEN) as u16;
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -MIN_TUNNEL_GROW) } != 0 {
        return xdp_action::XDP_DROP;
    }
    let Some(h) = ptr_at::<[u8; 42]>(&ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let tot = inner + MIN_TUNNEL_GROW as u16;
    // 10.255.0.1 → 10.255.0.2, TTL 64, GRE: the checksum of the fixed words
    // (0x4500, 0x4000, 0x402f, the addresses) folded, plus the length.
    let mut sum = 0x4500u32 + 0x4000 + 0x402f + 0x0aff + 0x0001 + 0x0aff + 0x0002 + tot as u32;
    sum = (sum & 0xffff) + (sum >> 16);
    let csum = !(sum as u16);
    let mut b = [0u8; 42];
    b[..14].copy_from_slice(&rule_eth(r));
    b[14..16].copy_from_slice(&[0x45, 0]);
    b[16..18].copy_from_slice(&tot.to_be_bytes());
    b[20..24].copy_from_slice(&[0x40, 0, 64, 47]);
    b[24..26].copy_from_slice(&csum.to_be_bytes());
    b[26..34].copy_from_slice(&[10, 255, 0, 1, 10, 255, 0, 2]);
    b[34..42].copy_from_slice(&[0x20, 0, 0x08, 0, 0, 0, 0, 1]);
    // SAFETY: bounds checked by ptr_at.
    unsafe { core::ptr::write_unaligned(h, b) };
    rule_redirect(r)
}

/// The floor under a decapsulating hop: a GRE packet over IPv4 (anything
/// else to the stack) loses its outer IPv4 header and GRE
/// ([`tg_min_encap`]'s, no options), gets its Ethernet MACs, and is
/// redirected as `tg_fwd` does.
#[xdp]
pub fn tg_min_decap(ctx: XdpContext) -> u32 {
    let Some(r) = TG_FWD.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let Some(h) = ptr_at::<[u8; 42]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    if h[12..14] != ETH_P_IP.to_be_bytes() || h[23] != 47 {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, MIN_TUNNEL_GROW) } != 0 {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = ptr_at::<[u8; 14]>(&ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe { core::ptr::write_unaligned(eth, rule_eth(r)) };
    rule_redirect(r)
}

/// The Ethernet header of an IPv4 frame to a `TG_FWD` rule's next hop, for
/// the minimal tunnel's programs (`tg_fwd` keeps its own code: it is the
/// ceiling every baseline was measured with).
#[inline(always)]
fn rule_eth(r: &[u8; 16]) -> [u8; 14] {
    let mut b = [0u8; 14];
    b[..6].copy_from_slice(&r[10..16]);
    b[6..12].copy_from_slice(&r[4..10]);
    b[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
    b
}

/// Redirects to a `TG_FWD` rule's interface.
#[inline(always)]
fn rule_redirect(r: &[u8; 16]) -> u32 {
    let ifindex = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}
