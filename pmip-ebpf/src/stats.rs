//! Per-subscriber traffic counters: exact, without atomics per packet, and
//! with memory per subscriber that does not grow with the number of CPUs.
//!
//! Each CPU counts the subscribers it forwards in a small table of its own
//! (`SUB_ACTIVE`, a row of `SUB_ACTIVE_SLOTS` slots per CPU, two-way
//! set-associative by subscriber id) with plain adds; a subscriber's slot
//! is flushed into its shared total (`SUB_TOTALS`, atomic adds) only when
//! the CPU needs the slot for another subscriber. The agent adds the
//! totals and the slots (pmip-common `ActiveStats` says how it reads them
//! exactly while they change).
use aya_ebpf::{
    helpers::generated::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, PerCpuArray},
};
use pmip_common::{sub_active_set, ActiveStats, SubscriberStats, MAX_SUBSCRIBERS};

use crate::hdr::atomic_add_u64;

/// Shared totals per subscriber id. Written here (flushes) and by the agent
/// (reset for a new binding); read for billing.
#[map]
pub(crate) static SUB_TOTALS: Array<SubscriberStats> = Array::with_max_entries(MAX_SUBSCRIBERS, 0);
/// A row of SUB_ACTIVE_SLOTS slots per CPU; memory-mappable, so that the
/// agent reads it in place. Sized by the loader.
#[map]
pub(crate) static SUB_ACTIVE: Array<ActiveStats> = Array::with_max_entries(1, BPF_F_MMAPABLE);
/// Slots per CPU of SUB_ACTIVE (a power of two); set by the loader. A
/// frozen `.rodata` value, so the verifier and JIT see a constant.
#[unsafe(no_mangle)]
static SUB_ACTIVE_SLOTS: u32 = 0;

const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Per CPU, for each path that finds its subscriber by a GRE key
/// ([`KEYED_ACCESS_DOWNLINK`], [`KEYED_ANCHOR_UPLINK`]): the last difference
/// key − subscriber id seen there. Not pinned: relearned after a restart.
#[map]
static KEY_SUB_OFFSET: PerCpuArray<u32> = PerCpuArray::with_max_entries(2, 0);
/// [`account_keyed`]'s path: the access gateway's downlink (its own downlink key).
pub(crate) const KEYED_ACCESS_DOWNLINK: u32 = 0;
/// [`account_keyed`]'s path: the anchor's uplink (its own uplink key).
pub(crate) const KEYED_ANCHOR_UPLINK: u32 = 1;

/// [`account`] for a packet whose subscriber was found by the GRE `key`
/// this gateway gave it. A gateway hands out its keys with its subscriber
/// ids (the PMIPv6 MAG and LMA use the id as the key, the PMIPv4 PMA and HA
/// take one of each in turn), so `key − id` is mostly one value per path;
/// guessing the id from the key with the last offset seen lets the slot's
/// load start from the packet alone, beside the binding entry's load
/// instead of after it, which matters once both miss the cache (1M
/// subscribers: BENCHMARKS.md, "Lookup cost against table size"). The guess
/// only picks the first slot read: the packet is counted there when the
/// guess is the entry's `sub_id` and the slot holds it (its tag), else as
/// [`account`] does, and the offset is relearned.
///
/// Returns where the slot is, as [`account`] does.
#[inline(always)]
pub(crate) fn account_keyed(path: u32, key: u32, sub_id: u32, bytes: u16, up: bool) -> u32 {
    // SAFETY: a read of a global the loader set before load.
    let slots = unsafe { core::ptr::read_volatile(&SUB_ACTIVE_SLOTS) };
    let Some(off) = KEY_SUB_OFFSET.get_ptr_mut(path) else {
        return account_at(sub_id, bytes, up);
    };
    // SAFETY: this CPU's slot of a per-CPU map; nothing else runs here meanwhile.
    let guess = key.wrapping_sub(unsafe { *off });
    if slots >= 2 {
        // SAFETY: helper without arguments (inlined by the verifier).
        let cpu = unsafe { bpf_get_smp_processor_id() };
        let base = cpu * slots + 2 * sub_active_set(guess, slots);
        if guess == sub_id {
            let tag = sub_id.wrapping_add(1);
            // Both ways, as `account` reads them; only a new subscriber
            // (or a wrong guess) leaves this path.
            for way in 0..2 {
                if let Some(w) = SUB_ACTIVE.get_ptr_mut(base + way) {
                    // SAFETY: this CPU's slots, as in `account`.
                    unsafe {
                        if (*w).sub == tag {
                            add(&mut (*w).stats, bytes, up);
                            return base + way + 1;
                        }
                    }
                }
            }
        }
    }
    if guess != sub_id {
        // SAFETY: as above.
        unsafe { *off = key.wrapping_sub(sub_id) };
    }
    account_at(sub_id, bytes, up)
}

/// [`account`] for a hop that keeps the subscriber's slot from packet to
/// packet (the flows, pmip-common `UplinkFlow::sub_slot`; the anchor
/// uplink's `DestNextHop::sub_slot`): `*hint` is the slot's `SUB_ACTIVE`
/// index + 1 on this CPU as last seen, or 0. When the slot there still
/// holds the subscriber (its tag), the packet is counted there without the
/// CPU, set and way arithmetic; otherwise as `account` does, and `*hint` is
/// refreshed.
///
/// The hint is always into this CPU's row: the flow or slot holding it is
/// per CPU and was written on this CPU, and SUB_ACTIVE keeps its rows for
/// as long as the hints live. A pinned table keeps its slots (see the
/// loader). The flows are not pinned, so a new SUB_ACTIVE comes with new,
/// empty flows; DEST_NH is, and the loader empties it when it creates a
/// new SUB_ACTIVE beside it.
///
/// # Safety
/// `hint` points into this CPU's slot of a per-CPU map.
#[inline(always)]
pub(crate) unsafe fn account_hinted(sub_id: u32, bytes: u16, up: bool, hint: *mut u32) {
    // SAFETY: the caller's contract.
    if unsafe { counted_at_hint(*hint, sub_id, bytes, up) } {
        return;
    }
    let i = account_at(sub_id, bytes, up);
    // SAFETY: the caller's contract.
    unsafe { *hint = i };
}

/// Counts the packet in the slot `hint` names (as [`account_hinted`]'s) when
/// that slot still holds `sub_id` (its tag); false when it does not.
#[inline(always)]
fn counted_at_hint(hint: u32, sub_id: u32, bytes: u16, up: bool) -> bool {
    if hint == 0 {
        return false;
    }
    let Some(w) = SUB_ACTIVE.get_ptr_mut(hint - 1) else {
        return false;
    };
    // SAFETY: a slot of this CPU's row of SUB_ACTIVE (the hint's contract);
    // its tag says whose (see account).
    unsafe {
        if (*w).sub != sub_id.wrapping_add(1) {
            return false;
        }
        add(&mut (*w).stats, bytes, up);
    }
    true
}

/// [`account_hinted`] for a packet found by its GRE `key` (see
/// [`account_keyed`]): a stale hint falls back to the keyed count.
///
/// # Safety
/// As [`account_hinted`].
#[inline(always)]
pub(crate) unsafe fn account_hinted_keyed(
    path: u32,
    key: u32,
    sub_id: u32,
    bytes: u16,
    up: bool,
    hint: *mut u32,
) {
    // SAFETY: the caller's contract.
    if unsafe { counted_at_hint(*hint, sub_id, bytes, up) } {
        return;
    }
    let i = account_keyed(path, key, sub_id, bytes, up);
    // SAFETY: the caller's contract.
    unsafe { *hint = i };
}

/// [`account`], returning where the subscriber's slot is now (its
/// `SUB_ACTIVE` index + 1; 0: none). Not inlined: a flow's first packet on
/// a CPU, or after its slot moved.
#[inline(never)]
fn account_at(sub_id: u32, bytes: u16, up: bool) -> u32 {
    account(sub_id, bytes, up)
}

/// Counts a packet of `bytes` of subscriber `sub_id`, uplink (`up`) or
/// downlink, in this CPU's slot for it (taking one if it has none); returns
/// that slot's `SUB_ACTIVE` index + 1 (0: no counting, or no slot).
#[inline(always)]
pub(crate) fn account(sub_id: u32, bytes: u16, up: bool) -> u32 {
    // SAFETY: a read of a global the loader set before load.
    let slots = unsafe { core::ptr::read_volatile(&SUB_ACTIVE_SLOTS) };
    if slots < 2 {
        return 0;
    }
    // SAFETY: helper without arguments (inlined by the verifier).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let base = cpu * slots + 2 * sub_active_set(sub_id, slots);
    let tag = sub_id.wrapping_add(1);
    // Way 1 is looked up only when way 0 is not the subscriber's: a
    // subscriber that keeps forwarding on this CPU sits in way 0 (a new
    // one takes way 0, see take_slot), and an array lookup is ~7
    // instructions plus a spill (`cargo xtask bench per-packet`).
    let Some(w0) = SUB_ACTIVE.get_ptr_mut(base) else {
        return 0;
    };
    // SAFETY: this CPU's slots (no other CPU writes them, and nothing else
    // runs on this CPU meanwhile); the agent only reads them.
    unsafe {
        if (*w0).sub == tag {
            add(&mut (*w0).stats, bytes, up);
            return base + 1;
        }
        let Some(w1) = SUB_ACTIVE.get_ptr_mut(base + 1) else {
            return 0;
        };
        if (*w1).sub == tag {
            add(&mut (*w1).stats, bytes, up);
            base + 2
        } else {
            // The subscriber takes way 0 (take_slot).
            take_slot(w0, w1, tag, bytes as u32, up as u32);
            base + 1
        }
    }
}

#[inline(always)]
fn add(s: &mut SubscriberStats, bytes: u16, up: bool) {
    if up {
        s.up_packets += 1;
        s.up_bytes += bytes as u64;
    } else {
        s.down_packets += 1;
        s.down_bytes += bytes as u64;
    }
}

/// The first packet of subscriber `tag - 1` on this CPU since it lost (or
/// never had) a slot here: takes a free way of its set; else way 1's
/// subscriber goes (its counts to its total), way 0's moves to way 1 and the
/// new one takes way 0 — so the subscriber not seen for longest leaves, as
/// in the access cache. Not inlined: rare, and out of the hot path's frame.
///
/// Both slots' `seq` are odd while they are rewritten (see pmip-common
/// `ActiveStats`); the compiler barriers keep the stores in that order (x86
/// keeps stores in program order, and the atomic adds are full barriers).
#[inline(never)]
fn take_slot(w0: *mut ActiveStats, w1: *mut ActiveStats, tag: u32, bytes: u32, up: u32) {
    // SAFETY: this CPU's slots of SUB_ACTIVE, 8-byte aligned map values;
    // SUB_TOTALS entries are shared, written with atomic adds only.
    unsafe {
        let (p, b) = (up as u64, bytes as u64);
        let first = SubscriberStats {
            up_packets: p,
            up_bytes: b * p,
            down_packets: 1 - p,
            down_bytes: b * (1 - p),
        };
        let free = if (*w0).sub == 0 {
            Some(w0)
        } else if (*w1).sub == 0 {
            Some(w1)
        } else {
            None
        };
        if let Some(w) = free {
            let seq = (*w).seq | 1;
            core::ptr::write_volatile(&mut (*w).seq, seq);
            compiler_barrier();
            (*w).stats = first;
            (*w).sub = tag;
            compiler_barrier();
            core::ptr::write_volatile(&mut (*w).seq, seq + 1);
            return;
        }
        let (s0, s1) = ((*w0).seq | 1, (*w1).seq | 1);
        core::ptr::write_volatile(&mut (*w0).seq, s0);
        core::ptr::write_volatile(&mut (*w1).seq, s1);
        compiler_barrier();
        flush(&*w1);
        (*w1).sub = (*w0).sub;
        (*w1).stats = (*w0).stats;
        (*w0).stats = first;
        (*w0).sub = tag;
        compiler_barrier();
        core::ptr::write_volatile(&mut (*w1).seq, s1 + 1);
        core::ptr::write_volatile(&mut (*w0).seq, s0 + 1);
    }
}

/// Adds what slot `w` holds to its subscriber's total (atomic adds: every
/// CPU flushes into the same totals).
#[inline(always)]
fn flush(w: &ActiveStats) {
    let Some(t) = SUB_TOTALS.get_ptr_mut(w.sub.wrapping_sub(1)) else {
        return;
    };
    let (t, s) = (t as *mut u64, &w.stats);
    // SAFETY: an 8-byte aligned SubscriberStats of 4 words.
    unsafe {
        atomic_add_u64(t, s.up_packets);
        atomic_add_u64(t.add(1), s.up_bytes);
        atomic_add_u64(t.add(2), s.down_packets);
        atomic_add_u64(t.add(3), s.down_bytes);
    }
}

/// Keeps the compiler from moving memory accesses across it (an empty asm
/// that may touch memory; the BPF backend has no `compiler_fence`).
#[inline(always)]
fn compiler_barrier() {
    // SAFETY: no instruction.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}
