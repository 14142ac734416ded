//! `bench_replay`: repeatable timing of a program that rewrites its packet
//! (never attached by pmipd).
//!
//! Outside live-frames mode BPF_PROG_TEST_RUN runs a program `repeat` times
//! on one buffer and does not restore it, so an encapsulating program would
//! see its own output from the second run on; the per-packet benchmark
//! therefore timed single runs on fresh copies, with the kernel timer's
//! ~10 ns grain and overhead in every sample. This program makes `repeat`
//! usable: each run first puts the frame back as it was — the head moved
//! back to the frame's original start (`bpf_xdp_adjust_head` by how much the
//! length changed, 0 if it did not) and its first `REPLAY_WORDS` words rewritten from
//! `BENCH_REPLAY` — then tail-calls the program under test
//! (`BENCH_REPLAY_TARGET` slot 0). The kernel times `repeat` runs together,
//! so the figure has sub-nanosecond resolution; the harness's own cost (the
//! restore and the tail call) is the same for every target and is measured
//! with `xdp_pass` or `tg_fwd` as the target.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{Array, ProgramArray},
    programs::XdpContext,
};

use crate::hdr::store_u64;

/// Words of the frame restored per run: 128 bytes cover every header the
/// fast path reads or writes (Ethernet, outer IPv6, GRE, inner IPv6).
pub const REPLAY_WORDS: usize = 16;

/// Slot 0: the frame's length, then its first REPLAY_WORDS words (as many
/// as the frame holds are written back). Written by the bench per case.
#[map]
static BENCH_REPLAY: Array<[u64; REPLAY_WORDS + 1]> = Array::with_max_entries(1, 0);
/// Slot 0: the program under test.
#[map]
static BENCH_REPLAY_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[xdp]
pub fn bench_replay(ctx: XdpContext) -> u32 {
    let Some(r) = BENCH_REPLAY.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // Bounded, so that the verifier accepts it beside packet pointers.
    let len = (r[0] & 0xffff) as i64;
    let mut delta = (ctx.data_end() - ctx.data()) as i64 - len;
    // Opaque to LLVM, so that the difference is taken in 64 bits: built
    // for BPF ISA v3 it would narrow it to 32-bit registers, and the
    // verifier refuses 32-bit arithmetic on packet pointers.
    // SAFETY: a register moved to itself.
    unsafe {
        core::arch::asm!("{d} = {d}", d = inout(reg) delta, options(nostack, preserves_flags))
    };
    // Encapsulated (longer): shrink the head back; decapsulated: grow it.
    // Called whatever the target did (by 0 when it kept the length), so
    // the harness costs every target the same.
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta as i32) } != 0 {
        return xdp_action::XDP_ABORTED;
    }
    let p = ctx.data();
    let end = ctx.data_end();
    let mut i = 0;
    while i < REPLAY_WORDS {
        if p + 8 * (i + 1) > end {
            break;
        }
        // SAFETY: p + 8i .. p + 8i + 8 is inside the packet (checked above).
        unsafe { store_u64::<0>(p + 8 * i, r[i + 1]) };
        i += 1;
    }
    // SAFETY: tail call with our own context; returns only if slot 0 is empty.
    unsafe { BENCH_REPLAY_TARGET.tail_call(&ctx, 0) };
    xdp_action::XDP_ABORTED
}
