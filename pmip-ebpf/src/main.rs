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
//!
//! This object holds what pmipd attaches and nothing else; the benchmark and
//! test programs are built into their own object (src/test/main.rs).
#![no_std]
#![no_main]
// Word stores to packet data (hdr::store): see there.
#![feature(asm_experimental_arch)]

// The packet: its context (XDP or skb) and its headers.
mod ctx;
mod hdr;
// The steps of every path, top-down. 1. Parse: the frame's L2 header, the
// subscriber's IP packet.
mod parse;
// 2. Look up: the maps (with the per-CPU caches), the next hop in the FIB.
mod fib;
mod maps;
mod stats;
// 3. Rewrite: tunnel headers on and off, the TTL; ICMP too-big answers.
mod icmp;
mod tunnel;
// 4. Redirect: the verdict, counted (and logged, see log.rs).
mod log;
mod verdict;
// Which path a packet takes, by the interface's role.
mod dispatch;
// The paths: access side, anchor side, anchor TC egress.
mod access;
mod anchor;
mod egress;
// In both objects.
mod pass;

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use pmip_common::role;

use crate::ctx::{tc_pull_headers, TC_ACT_OK};
use crate::dispatch::try_fast_path;
use crate::egress::try_tc_egress;
use crate::verdict::finish;

// Inlined into the program's entry (the macro's wrapper): LLVM left it a
// BPF-to-BPF call (~5 ns a packet) once the access uplink grew its flow.
#[xdp]
#[inline(always)]
pub fn pmip_xdp(ctx: XdpContext) -> u32 {
    try_fast_path::<_, 0>(&ctx)
}

// The same fast path for an interface of one role alone, which the agent
// attaches instead of `pmip_xdp` there: the role is this program's, not
// looked up per packet (dispatch.rs).

/// An access interface (MAG / PMA): subscribers' frames.
#[xdp]
#[inline(always)]
pub fn pmip_xdp_access(ctx: XdpContext) -> u32 {
    try_fast_path::<_, { role::ACCESS }>(&ctx)
}

/// An access gateway's core interface: GRE from anchors.
#[xdp]
#[inline(always)]
pub fn pmip_xdp_access_core(ctx: XdpContext) -> u32 {
    try_fast_path::<_, { role::ACCESS_CORE }>(&ctx)
}

/// An anchor's core interface: GRE from access gateways.
#[xdp]
#[inline(always)]
pub fn pmip_xdp_anchor_core(ctx: XdpContext) -> u32 {
    try_fast_path::<_, { role::ANCHOR_CORE }>(&ctx)
}

/// An anchor's correspondent-side interface: packets to home addresses.
#[xdp]
#[inline(always)]
pub fn pmip_xdp_anchor_cn(ctx: XdpContext) -> u32 {
    try_fast_path::<_, { role::ANCHOR_CN }>(&ctx)
}

/// The same fast path at TC ingress, for interfaces where XDP cannot attach
/// (`attach_mode = "tc"`): the same paths, maps and counters on an skb.
/// Verdicts: TC_ACT_OK (to the stack), TC_ACT_SHOT, TC_ACT_REDIRECT (to the
/// next hop, or back out of this interface where XDP would XDP_TX).
#[classifier]
pub fn pmip_tc_ingress(ctx: TcContext) -> i32 {
    tc_pull_headers(&ctx);
    try_fast_path::<_, 0>(&ctx) as i32
}

/// On an anchor's interfaces, egress: what the host itself sends to a home
/// address goes into the tunnel (egress.rs); anything else passes uncounted.
#[classifier]
pub fn pmip_tc_egress(ctx: TcContext) -> i32 {
    match try_tc_egress(&ctx) {
        Some(v) => finish(&ctx, v) as i32,
        None => TC_ACT_OK,
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
