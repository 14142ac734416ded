//! Debug events of the slow paths, through aya-log into the agent's log
//! (pmip-user/src/fastpath_log.rs): drops with their reason, packets handed
//! to the kernel because the FIB gave no next hop (neighbour not resolved
//! yet, not forwarded), and data from MACs without a binding.
//!
//! Off unless the loader sets `LOG_EVENTS`: a frozen `.rodata` value, so with
//! 0 the verifier finds every `if log::enabled()` false and removes the
//! logging code before the JIT.
//!
//! The paths stay as they were: drops and FIB misses are logged from the
//! verdict where every program's run ends ([`crate::verdict::finish`]),
//! reading what they need from the packet as it leaves; only the new-MAC
//! report logs in place, on its rate-limited branch. Both are `noinline`
//! functions: their frames and code stay out of the paths'. (Not `#[cold]`:
//! LLVM would put them in `.text.unlikely`, and aya 0.14 resolves calls into
//! `.text` only — the call would land on another function.)
use aya_log_ebpf::debug;
use pmip_common::{AccessKey, Counter};

use crate::ctx::Pkt;
use crate::hdr::{be16, read_at, ETH_HLEN, ETH_P_IP, ETH_P_IPV6};
use crate::verdict::Verdict;

/// Non-zero: log (see the module doc). Set by the loader, frozen at load.
#[unsafe(no_mangle)]
static LOG_EVENTS: u32 = 0;

#[inline(always)]
pub(crate) fn enabled() -> bool {
    // SAFETY: a read of a global the loader set before load.
    unsafe { core::ptr::read_volatile(&LOG_EVENTS) != 0 }
}

/// Logs verdict `v` if it is an event: a drop (but for data from an
/// unregistered MAC, reported by [`new_mac`]), or a packet handed to the
/// kernel for want of a next hop. Call only when [`enabled`].
#[inline(never)]
pub(crate) fn verdict<C: Pkt>(raw: *mut C::Raw, v: Verdict) {
    let ctx = &C::from_raw(raw);
    let c = v.counter();
    if v.action() == C::DROP && c != Counter::DropUnregistered as u32 {
        let src = read_at::<[u8; 6]>(ctx, 6).unwrap_or_default();
        dropped(c, ctx.ifindex(), &src);
    } else if c == Counter::PassNoNeigh as u32 || c == Counter::PassSlowPath as u32 {
        // The packet leaves as the FIB was asked about it: encapsulated
        // (destination: the tunnel's remote end) or decapsulated (the
        // subscriber's destination), behind a fresh, untagged Ethernet header.
        let mut dst = [0u8; 16];
        let proto = read_at::<[u8; 2]>(ctx, 12).map(be16).unwrap_or(0);
        if proto == ETH_P_IP {
            let a = read_at::<[u8; 4]>(ctx, ETH_HLEN + 16).unwrap_or_default();
            dst[..4].copy_from_slice(&a);
        } else if proto == ETH_P_IPV6 {
            dst = read_at::<[u8; 16]>(ctx, ETH_HLEN + 24).unwrap_or_default();
        }
        no_next_hop(c, ctx.ifindex(), proto == ETH_P_IPV6, &dst);
    }
}

/// The name of counter `c` (as `pmipctl show stats` prints it).
#[inline(always)]
fn name(c: u32) -> &'static str {
    match Counter::ALL.get(c as usize) {
        Some(c) => c.name(),
        None => "?",
    }
}

/// A dropped packet: its reason, the interface it came in on, its source MAC.
#[inline(always)]
fn dropped(reason: u32, ifindex: u32, src: &[u8; 6]) {
    debug!(
        &(),
        "drop {}: in ifindex {} from {:mac}",
        name(reason),
        ifindex,
        *src
    );
}

/// A packet to `dst` handed to the kernel (`reason`: pass_no_neighbour or
/// pass_slow_path) because `bpf_fib_lookup` gave no next hop to redirect to.
#[inline(always)]
fn no_next_hop(reason: u32, ifindex: u32, v6: bool, dst: &[u8; 16]) {
    if v6 {
        debug!(
            &(),
            "fib: no next hop for {:i} (in ifindex {}): {}",
            *dst,
            ifindex,
            name(reason)
        );
    } else {
        let a = [dst[0], dst[1], dst[2], dst[3]];
        debug!(
            &(),
            "fib: no next hop for {:i} (in ifindex {}): {}",
            a,
            ifindex,
            name(reason)
        );
    }
}

/// Data from a MAC without a binding, reported to the access agent (at most
/// once per MAC per NEW_MAC_REPORT_NS); `src_v4` in network order.
#[inline(never)]
pub(crate) fn new_mac(key: &AccessKey, src_v4: u32) {
    debug!(
        &(),
        "new MAC {:mac} on ifindex {} VLAN {}, IPv4 source {:i}",
        key.mac,
        key.ifindex,
        key.vlan,
        src_v4.to_ne_bytes()
    );
}
