//! Anchor TC egress: a packet the host itself originates (or the kernel
//! forwards) towards a home address is tunneled to the access gateway
//! serving it, exactly as XDP does for packets arriving from correspondents.
//! The host's route for the home pool only has to lead out of an anchor
//! interface; the tunnel decides the real next hop.
use aya_ebpf::{helpers::generated::bpf_redirect_neigh, programs::TcContext};
use pmip_common::{Counter, FAMILY_V4, FAMILY_V6, GRE_KEYED_LEN, IPV4_HDR_LEN, IPV6_HDR_LEN};

use crate::ctx::{
    BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6,
    BPF_F_ADJ_ROOM_ENCAP_L4_GRE, TC_ACT_SHOT,
};
use crate::fib::{fib_flags, BPF_FIB_LOOKUP_OUTPUT, FIB_NO_NEIGH, FIB_SUCCESS};
use crate::hdr::{be16, ethertype_of, ETH_HLEN, ETH_P_IP, ETH_P_IPV6};
use crate::maps::{anchor_by_hnp, anchor_by_home4, TUNNELS};
use crate::stats::account;
use crate::tunnel::{gre_header, outer_v4, outer_v6};
use crate::verdict::{redirect, Verdict};

const SHOT: u32 = TC_ACT_SHOT as u32;

/// The packet tunneled (or dropped, counted), or None: not to a home
/// address, left to the stack uncounted.
#[inline(always)]
pub(crate) fn try_tc_egress(ctx: &TcContext) -> Option<Verdict> {
    let proto = be16(ctx.load::<[u8; 2]>(12).ok()?);
    let (d, inner_family, inner_len) = if proto == ETH_P_IP {
        let dst = ctx.load::<[u8; 4]>(ETH_HLEN + 16).ok()?;
        let d = anchor_by_home4(u32::from_ne_bytes(dst))?;
        let len = ctx.load::<[u8; 2]>(ETH_HLEN + 2).map(be16).unwrap_or(0);
        (*d, FAMILY_V4, len)
    } else if proto == ETH_P_IPV6 {
        let dst = ctx.load::<[u32; 2]>(ETH_HLEN + 24).ok()?;
        let d = anchor_by_hnp(dst)?;
        let len = ctx
            .load::<[u8; 2]>(ETH_HLEN + 4)
            .map(|l| be16(l).saturating_add(40))
            .unwrap_or(0);
        (*d, FAMILY_V6, len)
    } else {
        return None;
    };
    let tun = match TUNNELS.get(d.tunnel_id) {
        Some(t) if t.family != 0 => *t,
        _ => return Some(Verdict::new(SHOT, Counter::DropNoTunnel)),
    };
    let v6 = tun.family == FAMILY_V6;
    let outer_ip = if v6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN };
    let overhead = (outer_ip + GRE_KEYED_LEN) as u16;
    let flags = BPF_F_ADJ_ROOM_ENCAP_L4_GRE
        | if v6 {
            BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
        } else {
            BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
        };
    if ctx
        .adjust_room(overhead as i32, BPF_ADJ_ROOM_MAC, flags)
        .is_err()
    {
        return Some(Verdict::new(SHOT, Counter::DropAdjustFailed));
    }
    let ok = if v6 {
        ctx.store(ETH_HLEN, &outer_v6(&tun, inner_len), 0).is_ok()
    } else {
        ctx.store(ETH_HLEN, &outer_v4(&tun, inner_len), 0).is_ok()
    };
    let gre = gre_header(inner_family, d.downlink_key);
    if !ok
        || ctx.store(ETH_HLEN + outer_ip, &gre, 0).is_err()
        || ctx
            .store(12, &ethertype_of(tun.family).to_be_bytes(), 0)
            .is_err()
    {
        return Some(Verdict::new(SHOT, Counter::DropAdjustFailed));
    }
    // SAFETY: reading a field of the context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let nh = fib_flags(
        ctx,
        ifindex,
        tun.family,
        &tun.local,
        &tun.remote,
        0,
        BPF_FIB_LOOKUP_OUTPUT,
    );
    account(d.sub_id, inner_len, false);
    if nh.rc == FIB_SUCCESS {
        if ctx.store(0, &nh.dmac, 0).is_err() || ctx.store(6, &nh.smac, 0).is_err() {
            return Some(Verdict::new(SHOT, Counter::DropAdjustFailed));
        }
        return Some(Verdict::new(redirect(nh.ifindex), Counter::TxEncapDownlink));
    }
    if nh.rc == FIB_NO_NEIGH {
        // The kernel resolves the neighbour and fills in the Ethernet header.
        // SAFETY: helper call without next-hop parameters.
        let r = unsafe { bpf_redirect_neigh(nh.ifindex, core::ptr::null_mut(), 0, 0) };
        return Some(Verdict::new(r as u32, Counter::PassNoNeigh));
    }
    Some(Verdict::new(SHOT, Counter::DropNoRoute))
}
