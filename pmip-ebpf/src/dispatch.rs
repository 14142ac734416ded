//! Which path a packet takes: by the role of the interface it arrived on
//! (`IFACES`) and what the packet is — a subscriber's frame, GRE from a
//! tunnel peer, or a packet to a home address. Then the path's verdict is
//! counted and, for ICMP too-big, answered here.
use pmip_common::{role, Counter, FAMILY_V4, FAMILY_V6, GRE_KEYED_LEN, IPV6_HDR_LEN};

use crate::access::{access_downlink, access_uplink};
use crate::anchor::{anchor_downlink, anchor_uplink};
use crate::ctx::Pkt;
use crate::hdr::{
    load_u16, load_u32, ptr_at, GreKeyHdr, Ipv4Hdr, Ipv6Hdr, ETH_P_IP, ETH_P_IPV6, GRE_C, GRE_K,
    GRE_R, GRE_S, GRE_VER_MASK, IPPROTO_GRE, IPPROTO_MH,
};
use crate::icmp::icmp_too_big;
use crate::maps::{anchor_by_hnp, anchor_by_home4, anchor_dest, iface_of, mh_slots};
use crate::parse::{load_addr, parse_l2, Addr, GreIn, L2};
use crate::verdict::{finish, Verdict};

/// The fast path on one packet, XDP or TC ingress: the path's verdict (an
/// ICMP too-big answered here), counted; returns the action.
///
/// `ROLE` 0: the interface's role comes from `IFACES` (`pmip_xdp`,
/// `pmip_tc_ingress`: any interface). Otherwise it is the role of the one
/// kind of interface the program is attached to (`pmip_xdp_access`...; the
/// agent attaches them to interfaces of that role alone), and a packet
/// looks nothing up to learn it: no `IFACES` lookup and no role tests on the
/// way to its path (`cargo xtask profile`: ~20 JITed instructions).
#[inline(always)]
pub(crate) fn try_fast_path<C: Pkt, const ROLE: u8>(ctx: &C) -> u32 {
    let mut v = dispatch::<C, ROLE>(ctx);
    if let Some(mtu) = v.too_big_mtu() {
        v = icmp_too_big::<C>(ctx.raw(), mtu);
    }
    finish(ctx, v)
}

#[inline(always)]
fn dispatch<C: Pkt, const ROLE: u8>(ctx: &C) -> Verdict {
    let ifindex = ctx.ifindex();
    let iface_role = if ROLE != 0 {
        ROLE
    } else {
        match iface_of(ifindex) {
            Some(c) => c.role,
            None => return Verdict::new(C::PASS, Counter::PassNotOurs),
        }
    };
    let l2 = match parse_l2(ctx) {
        Some(l2) => l2,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    if iface_role & role::ACCESS != 0 {
        return access_uplink(ctx, ifindex, &l2);
    }
    if l2.vlan != 0 {
        return Verdict::new(C::PASS, Counter::PassNotOurs);
    }
    let gre_roles = role::ACCESS_CORE | role::ANCHOR_CORE;
    let anchor_roles = role::ANCHOR_CN | role::ANCHOR_CORE;
    match l2.proto {
        ETH_P_IP => {
            let ip: &Ipv4Hdr = match ptr_at::<Ipv4Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return Verdict::new(C::DROP, Counter::DropMalformed),
            };
            if ip.ver_ihl >> 4 != 4 || ip.ver_ihl & 0x0f < 5 {
                return Verdict::new(C::DROP, Counter::DropMalformed);
            }
            let p = ip as *const Ipv4Hdr as usize;
            if ip.proto == IPPROTO_GRE && iface_role & gre_roles != 0 {
                // SAFETY: the header is inside the packet (ptr_at checked it).
                if u16::from_be(unsafe { load_u16::<6>(p) }) & 0x3fff != 0 {
                    // A fragment of a tunnel packet: we do not reassemble.
                    return Verdict::new(C::DROP, Counter::DropOuterFragment);
                }
                // Built from words: zeroing a byte array compiles to a call
                // to a byte-loop memset. SAFETY: as above.
                let src = Addr::from_words([unsafe { load_u32::<12>(p) }, 0, 0, 0]);
                let gre_off = l2.len + ((ip.ver_ihl & 0x0f) as usize) * 4;
                return gre_in(ctx, iface_role, &l2, gre_off, &src);
            }
            if iface_role & anchor_roles != 0 {
                // SAFETY: as above.
                let dst = unsafe { load_u32::<16>(p) };
                if let Some((d, flow)) =
                    anchor_dest([dst, 0], FAMILY_V4 as u32, || anchor_by_home4(dst))
                {
                    return anchor_downlink(ctx, &l2, d, flow);
                }
            }
            Verdict::new(C::PASS, Counter::PassNotOurs)
        }
        ETH_P_IPV6 => {
            let ip: &Ipv6Hdr = match ptr_at::<Ipv6Hdr>(ctx, l2.len) {
                // SAFETY: bounds checked by ptr_at; the packet is not resized while `ip` lives.
                Some(h) => unsafe { &*h },
                None => return Verdict::new(C::DROP, Counter::DropMalformed),
            };
            if ip.ver_tc_flow[0] >> 4 != 6 {
                return Verdict::new(C::DROP, Counter::DropMalformed);
            }
            let p = ip as *const Ipv6Hdr as usize;
            if ip.next_hdr == IPPROTO_GRE && iface_role & gre_roles != 0 {
                let src = load_addr(p + 8);
                return gre_in(ctx, iface_role, &l2, l2.len + IPV6_HDR_LEN, &src);
            }
            if ip.next_hdr == IPPROTO_MH && iface_role & role::ANCHOR_CORE != 0 {
                if let Some(v) = to_signaling_socket(ctx, ifindex, p) {
                    return v;
                }
            }
            if iface_role & anchor_roles != 0 {
                // SAFETY: the header is inside the packet (ptr_at checked it).
                let hnp = unsafe { [load_u32::<24>(p), load_u32::<28>(p)] };
                if let Some((d, flow)) = anchor_dest(hnp, FAMILY_V6 as u32, || anchor_by_hnp(hnp)) {
                    return anchor_downlink(ctx, &l2, d, flow);
                }
            }
            Verdict::new(C::PASS, Counter::PassNotOurs)
        }
        _ => Verdict::new(C::PASS, Counter::PassNotOurs),
    }
}

/// A Mobility Header on an anchor's core interface (IPv6 header at `p`,
/// next header 135: no extension header before it): to the agent's AF_XDP
/// socket of this interface's receive queue if it is addressed to one of
/// the agent's signaling addresses (`MH_LOCAL`) and the queue has a
/// socket; otherwise `None`, and it takes the kernel's path to the raw MH
/// socket. The agent checks it as the kernel would have (pmip-user
/// `sys/xsk.rs`).
#[inline(always)]
fn to_signaling_socket<C: Pkt>(ctx: &C, ifindex: u32, p: usize) -> Option<Verdict> {
    // SAFETY: the IPv6 header is inside the packet (the caller's ptr_at).
    let dst = unsafe {
        [
            load_u32::<24>(p),
            load_u32::<28>(p),
            load_u32::<32>(p),
            load_u32::<36>(p),
        ]
    };
    let first = mh_slots(ifindex, &dst)?;
    ctx.to_signaling_socket(first)
        .map(|action| Verdict::new(action, Counter::PassControl))
}

/// A GRE packet arrived on a core interface: validate the header, then
/// decapsulate for the access gateway or the anchor. Inlined, as every
/// path (see `access_uplink`).
#[inline(always)]
fn gre_in<C: Pkt>(ctx: &C, iface_role: u8, l2: &L2, gre_off: usize, src: &Addr) -> Verdict {
    let family = if l2.proto == ETH_P_IPV6 {
        FAMILY_V6
    } else {
        FAMILY_V4
    };
    let Some(g) = ptr_at::<GreKeyHdr>(ctx, gre_off) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    // Flags and protocol in one word, the key in another.
    // SAFETY: the 8-byte header is inside the packet (ptr_at checked it).
    let (head, key) = unsafe {
        (
            u32::from_be(load_u32::<0>(g as usize)),
            load_u32::<4>(g as usize),
        )
    };
    let fl = (head >> 16) as u16;
    // RFC 2890: our tunnels carry only a key; checksum, routing and sequence
    // numbers are never negotiated, and version must be 0 (RFC 2784 §2.3.1).
    if fl & (GRE_C | GRE_R | GRE_S) != 0 || fl & GRE_VER_MASK != 0 || fl & GRE_K == 0 {
        return Verdict::new(C::DROP, Counter::DropGreUnsupported);
    }
    let ethertype = head as u16;
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return Verdict::new(C::DROP, Counter::DropGreUnsupported);
    }
    let gre = GreIn {
        family,
        src,
        key: key.to_ne_bytes(),
        inner_off: gre_off + GRE_KEYED_LEN,
        ethertype,
    };
    if iface_role & role::ACCESS_CORE != 0 {
        access_downlink(ctx, l2, gre)
    } else {
        anchor_uplink(ctx, l2, gre)
    }
}
