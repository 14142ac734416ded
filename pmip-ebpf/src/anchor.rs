//! Anchor side (LMA / HA): GRE from access gateways out to the world, and
//! packets to home addresses into the tunnel of the gateway serving them.
use pmip_common::{flags, AnchorDownlink, Counter};

use crate::access::{keyed, spoofed};
use crate::ctx::Pkt;
use crate::fib::{fib, FIB_FWD_DISABLED, FIB_NOT_FWDED, FIB_NO_NEIGH, FIB_SUCCESS};
use crate::maps::{anchor_by_key, dest_slot, iface_of, nh_expiry, nh_now, Flow, DEST_NH};
use crate::parse::{parse_inner, parse_l2, GreIn, L2};
use crate::stats::{account, account_hinted_keyed, KEYED_ANCHOR_UPLINK};
use crate::tunnel::{dec_ttl, decap, decap_cached, flow_out, tunnel_out, Dir, Encap};
use crate::verdict::{redirect, Verdict};

/// Uplink at the anchor: GRE from an access gateway → forwarded inner packet.
#[inline(always)]
pub(crate) fn anchor_uplink<C: Pkt>(ctx: &C, l2: &L2, gre: GreIn) -> Verdict {
    let b = match keyed(&gre, anchor_by_key(gre.key), |b| {
        (b.flags & flags::PEER_V6 != 0, &b.peer)
    }) {
        Ok(b) => b,
        Err(c) => return Verdict::new(C::DROP, c),
    };
    let (inner_off, ethertype) = (gre.inner_off, gre.ethertype);
    let inner = match parse_inner(ctx, inner_off, ethertype) {
        Some(i) => i,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    if spoofed(&inner, b.flags, &b.home_v4, &b.home_hnp) {
        return Verdict::new(C::DROP, Counter::DropSpoofedSource);
    }
    if inner.ttl <= 1 {
        // To the stack, addressed to this interface (the kernel answers).
        let Some(iface) = iface_of(ctx.ifindex()) else {
            return Verdict::new(C::DROP, Counter::DropMalformed);
        };
        if !decap(ctx, inner_off, inner.family, &l2.eth.src, &iface.mac, 0) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
        return Verdict::new(C::PASS, Counter::PassTtl);
    }
    // The FIB answer per destination, cached (a FIB lookup is about half of
    // this path's cost); refreshed every NEXT_HOP_CACHE_NS like TUNNEL_NH.
    let dst = inner.dst.words();
    if let Some(c) = DEST_NH.get_ptr_mut(dest_slot(&dst)) {
        // SAFETY: this CPU's slot of a per-CPU array.
        let c = unsafe { &mut *c };
        if nh_now() < c.expires && c.dst == dst {
            dec_ttl(&inner);
            if !decap_cached(ctx, inner_off, inner.family, &c.macs) {
                return Verdict::new(C::DROP, Counter::DropAdjustFailed);
            }
            // SAFETY: the hint is in this CPU's slot of a per-CPU map.
            unsafe {
                account_hinted_keyed(
                    KEYED_ANCHOR_UPLINK,
                    u32::from_be_bytes(gre.key),
                    b.sub_id,
                    inner.len,
                    true,
                    &raw mut c.sub_slot,
                )
            };
            return Verdict::new(redirect(c.ifindex), Counter::TxDecapUplink);
        }
    }
    anchor_uplink_fib::<C>(ctx.raw(), inner_off as u32, ethertype as u32, b.sub_id)
}

/// [`anchor_uplink`] without a cached next hop for the destination: asks the
/// FIB and caches its answer, or hands the packet to the kernel. A function
/// of its own: its frame (the FIB's parameters) is not the program's; it
/// parses what it needs again rather than take pointers into the program's
/// frame.
#[inline(never)]
fn anchor_uplink_fib<C: Pkt>(
    raw: *mut C::Raw,
    inner_off: u32,
    ethertype: u32,
    sub_id: u32,
) -> Verdict {
    let ctx = &C::from_raw(raw);
    // Bounded, for the verifier: the inner packet starts within the
    // first 128 bytes (Ethernet, VLAN, outer IPv6, GRE).
    let inner_off = (inner_off & 0x7f) as usize;
    let (Some(iface), Some(l2)) = (iface_of(ctx.ifindex()), parse_l2(ctx)) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let Some(inner) = parse_inner(ctx, inner_off, ethertype as u16) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let (l2, inner) = (&l2, &inner);
    let now = nh_now();
    let dst = inner.dst.words();
    let slot = DEST_NH.get_ptr_mut(dest_slot(&dst));
    let nh = fib(ctx, ctx.ifindex(), inner.family, &inner.src, &inner.dst, 0);
    dec_ttl(&inner);
    let sub_slot = account(sub_id, inner.len, true);
    if nh.rc == FIB_SUCCESS {
        if let Some(c) = slot {
            // SAFETY: this CPU's slot of a per-CPU array; nothing else runs on this CPU meanwhile.
            let c = unsafe { &mut *c };
            // SAFETY: [u64; 2] is 16 plain bytes.
            let macs: &mut [u8; 16] = unsafe { &mut *(c.macs.as_mut_ptr() as *mut [u8; 16]) };
            macs[..6].copy_from_slice(&nh.dmac);
            macs[6..12].copy_from_slice(&nh.smac);
            c.ifindex = nh.ifindex;
            c.sub_slot = sub_slot;
            c.dst = dst;
            c.expires = nh_expiry(now);
        }
        if !decap(ctx, inner_off, inner.family, &nh.smac, &nh.dmac, 0) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
        return Verdict::new(redirect(nh.ifindex), Counter::TxDecapUplink);
    }
    if nh.rc == FIB_NO_NEIGH || nh.rc == FIB_NOT_FWDED || nh.rc == FIB_FWD_DISABLED {
        // The kernel forwards (or delivers locally) the decapsulated packet.
        if !decap(ctx, inner_off, inner.family, &l2.eth.src, &iface.mac, 0) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
        return Verdict::new(
            C::PASS,
            if nh.rc == FIB_NO_NEIGH {
                Counter::PassNoNeigh
            } else {
                Counter::PassSlowPath
            },
        );
    }
    Verdict::new(C::DROP, Counter::DropNoRoute)
}

/// Downlink at the anchor: a packet to a home address → tunnel to the access
/// gateway that serves it now (one map value, switched atomically on handover).
#[inline(always)]
pub(crate) fn anchor_downlink<C: Pkt>(ctx: &C, l2: &L2, d: &AnchorDownlink, flow: Flow) -> Verdict {
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    if inner.ttl <= 1 {
        return Verdict::new(C::PASS, Counter::PassTtl);
    }
    if !flow.is_null() {
        // This CPU's ANCHOR_CACHE slot (maps::anchor_dest).
        let (key, sub_id) = (d.downlink_key, d.sub_id);
        if let Some(v) = flow_out(ctx, l2.len, &inner, flow, key, sub_id, Dir::Down) {
            return v;
        }
    }
    let e = Encap {
        tunnel_id: d.tunnel_id,
        key: d.downlink_key,
        sub_id: d.sub_id,
        flow,
    };
    tunnel_out(ctx, l2, &inner, e, Dir::Down)
}
