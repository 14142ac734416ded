//! Redirect and verdicts: what a path decided for a packet, the counter it
//! is accounted under, and the redirect to the next hop.
use aya_ebpf::helpers::generated::bpf_redirect;
use pmip_common::Counter;

use crate::ctx::Pkt;
use crate::log;
use crate::maps::COUNTERS;

/// A path's verdict: the action for the kernel (XDP_* or TC_ACT_*, per
/// context) and the counter it is accounted under, packed in one register
/// (BPF-to-BPF calls return a single value): action | counter << 8.
///
/// Or "answer with ICMP too-big", the tunnel MTU in the upper bits: resolved
/// at the top level, so the ICMP builder's stack frame is never nested under
/// a path's frame (the verifier caps the combined depth at 512).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Verdict(u32);

/// The pseudo-action of [`Verdict::too_big`] (no XDP or TC action has it).
const TOO_BIG: u32 = 0xee;

/// The "MTU" of [`Verdict::hop_limit_exceeded`]: no tunnel MTU is this
/// large (it is a link MTU minus the tunnel overhead).
pub(crate) const HOP_LIMIT_EXCEEDED: u16 = 0xffff;

impl Verdict {
    /// `action` (XDP_* / TC_ACT_*), counted under `c`.
    #[inline(always)]
    pub(crate) const fn new(action: u32, c: Counter) -> Verdict {
        Verdict(action | (c as u32) << 8)
    }

    /// Answer with ICMP too-big carrying `mtu` (see icmp.rs).
    #[inline(always)]
    pub(crate) const fn too_big(mtu: u16) -> Verdict {
        Verdict(TOO_BIG | (mtu as u32) << 8)
    }

    /// Answer an IPv6 packet whose hop limit ran out with ICMPv6 time
    /// exceeded (icmp.rs): on the same top-level path as too-big, so the
    /// per-packet paths pay nothing for it.
    #[inline(always)]
    pub(crate) const fn hop_limit_exceeded() -> Verdict {
        Verdict::too_big(HOP_LIMIT_EXCEEDED)
    }

    /// The MTU to answer with, if this is a too-big verdict.
    #[inline(always)]
    pub(crate) const fn too_big_mtu(self) -> Option<u16> {
        if self.0 & 0xff == TOO_BIG {
            Some((self.0 >> 8) as u16)
        } else {
            None
        }
    }

    #[inline(always)]
    pub(crate) const fn action(self) -> u32 {
        self.0 & 0xff
    }

    /// Index in COUNTERS (a [`Counter`]).
    #[inline(always)]
    pub(crate) const fn counter(self) -> u32 {
        self.0 >> 8
    }
}

/// The end of every program's run: counts `v` and, with logging on, logs
/// it if it is an event (log.rs); returns the action.
#[inline(always)]
pub(crate) fn finish<C: Pkt>(ctx: &C, v: Verdict) -> u32 {
    count(v.counter());
    if log::enabled() {
        log::verdict::<C>(ctx.raw(), v);
    }
    v.action()
}

/// Counts one packet under counter `c` (this CPU's slot of COUNTERS).
#[inline(always)]
pub(crate) fn count(c: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(c) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// To interface `ifindex`'s egress: XDP_REDIRECT / TC_ACT_REDIRECT, or the
/// context's abort/drop action if the helper refuses.
#[inline(always)]
pub(crate) fn redirect(ifindex: u32) -> u32 {
    // SAFETY: helper call; flags 0.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}
