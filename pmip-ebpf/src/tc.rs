//! TC: the egress program of anchors (traffic the gateway host itself sends
//! to a home address), and the constants the TC ingress fast path uses.
use super::*;

pub(crate) const TC_ACT_OK: i32 = 0;
pub(crate) const TC_ACT_SHOT: i32 = 2;
pub(crate) const TC_ACT_REDIRECT: i32 = 7;
pub(crate) const BPF_ADJ_ROOM_MAC: u32 = 1;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L3_IPV4: u64 = 2;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L3_IPV6: u64 = 4;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L4_GRE: u64 = 8;
pub(crate) const BPF_F_ADJ_ROOM_DECAP_L3_IPV4: u64 = 1 << 7;
pub(crate) const BPF_F_ADJ_ROOM_DECAP_L3_IPV6: u64 = 1 << 8;
pub(crate) const BPF_FIB_LOOKUP_OUTPUT: u32 = 2;

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
pub(crate) fn tc_egress(ctx: &TcContext) -> (i32, Option<Counter>) {
    let proto = match ctx.load::<[u8; 2]>(12) {
        Ok(p) => be16(p),
        Err(_) => return (TC_ACT_OK, None),
    };
    let (d, inner_family, inner_len) = if proto == ETH_P_IP {
        let dst = match ctx.load::<[u8; 4]>(ETH_HLEN + 16) {
            Ok(d) => d,
            Err(_) => return (TC_ACT_OK, None),
        };
        match anchor_by_home4(&dst) {
            Some(d) => (
                *d,
                FAMILY_V4,
                ctx.load::<[u8; 2]>(ETH_HLEN + 2).map(be16).unwrap_or(0),
            ),
            None => return (TC_ACT_OK, None),
        }
    } else if proto == ETH_P_IPV6 {
        let dst = match ctx.load::<[u8; 8]>(ETH_HLEN + 24) {
            Ok(d) => d,
            Err(_) => return (TC_ACT_OK, None),
        };
        match anchor_by_hnp(&dst) {
            Some(d) => (
                *d,
                FAMILY_V6,
                ctx.load::<[u8; 2]>(ETH_HLEN + 4)
                    .map(|l| be16(l).saturating_add(40))
                    .unwrap_or(0),
            ),
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
        | if v6 {
            BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
        } else {
            BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
        };
    if ctx
        .adjust_room(overhead as i32, BPF_ADJ_ROOM_MAC, flags)
        .is_err()
    {
        return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
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
        return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
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
            return (TC_ACT_SHOT, Some(Counter::DropAdjustFailed));
        }
        // SAFETY: helper call.
        return (
            unsafe { bpf_redirect(nh.ifindex, 0) } as i32,
            Some(Counter::TxEncapDownlink),
        );
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
