//! Access side (MAG / PMA): subscriber frames in, tunnel packets out, and
//! the downlink back to the subscriber.
use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use pmip_common::{
    flags, AccessKey, AccessSubscriber, Counter, NewMacEvent, FAMILY_V4, FAMILY_V6,
    NEW_MAC_REPORT_NS,
};

use crate::ctx::Pkt;
use crate::hdr::{
    be16, eq4, mac_words, ptr_at, read_at, word4, words16, words8, write_at, ArpEthIp, EthHdr,
    Ipv4Hdr, Ipv6Hdr, UdpHdr, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP,
};
use crate::log;
use crate::maps::{access_by_key, access_subscriber, iface_of, NEW_MAC_EVENTS, NEW_MAC_SEEN};
use crate::parse::{parse_inner, parse_l2, Addr, GreIn, Inner, L2};
use crate::stats::{account_keyed, KEYED_ACCESS_DOWNLINK};
use crate::tunnel::{dec_ttl, decap, flow_out, tunnel_out, Dir, Encap};
use crate::verdict::{redirect, Verdict};

/// Uplink at the access gateway: a subscriber's frame → tunnel packet.
/// Inlined into the program (a BPF-to-BPF call and its return cost ~5 ns
/// here); its rare branches are functions of their own, so that their
/// stack frames are not part of the program's.
#[inline(always)]
pub(crate) fn access_uplink<C: Pkt>(ctx: &C, ifindex: u32, l2: &L2) -> Verdict {
    let key = access_key(ifindex, l2);
    // The rare branches re-parse what they need: handing them pointers to
    // the L2 header or the key would keep both in the program's stack frame
    // on every packet (`cargo xtask profile`: ~10 stores a packet).
    let (sub, flow) = match access_subscriber(&key) {
        Some(s) => s,
        None => return unregistered::<C>(ctx.raw()),
    };
    if l2.proto == ETH_P_ARP {
        return arp_reply::<C>(ctx.raw(), sub);
    }
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None if l2.proto == ETH_P_IP || l2.proto == ETH_P_IPV6 => {
            return Verdict::new(C::DROP, Counter::DropMalformed)
        }
        None => return Verdict::new(C::PASS, Counter::PassNotOurs),
    };
    if is_control(ctx, &inner, sub) {
        return Verdict::new(C::PASS, Counter::PassControl);
    }
    if spoofed(&inner, sub.flags, &sub.home_v4, &sub.home_hnp) {
        return Verdict::new(C::DROP, Counter::DropSpoofedSource);
    }
    if inner.ttl <= 1 {
        // IPv4: the kernel answers from the gateway address on this link.
        // IPv6: the link has no address of the kernel's (the router
        // link-local is the ND engine's), so the fast path answers.
        if inner.family == FAMILY_V6 {
            return Verdict::hop_limit_exceeded();
        }
        return Verdict::new(C::PASS, Counter::PassTtl);
    }
    if !flow.is_null() {
        // This CPU's ACCESS_CACHE slot (access_subscriber).
        let (key, sub_id) = (sub.uplink_key, sub.sub_id);
        if let Some(v) = flow_out(ctx, l2.len, &inner, flow, key, sub_id, Dir::Up) {
            return v;
        }
    }
    let e = Encap {
        tunnel_id: sub.tunnel_id,
        key: sub.uplink_key,
        sub_id: sub.sub_id,
        flow,
    };
    tunnel_out(ctx, l2, &inner, e, Dir::Up)
}

/// The subscriber's key from words: (ifindex, VLAN | MAC[0..2] << 16, MAC[2..6]).
#[inline(always)]
fn access_key(ifindex: u32, l2: &L2) -> AccessKey {
    // SAFETY: `eth.src` is at an even offset of the 8-byte aligned L2.
    let m = unsafe { mac_words(&l2.eth.src) };
    AccessKey::from_words([
        ifindex,
        l2.vlan as u32 | (m[0] as u32) << 16,
        m[1] as u32 | (m[2] as u32) << 16,
    ])
}

/// A frame from a MAC without a binding. Its DHCP, ARP, IPv6 link-local
/// traffic and packets for the gateway itself go to the stack (the agent
/// answers them); its other IP data is not forwarded — the access gateway
/// routes only registered subscribers — but reported to the agent, which
/// registers a subscriber that moved in from another gateway.
#[inline(never)]
pub(crate) fn unregistered<C: Pkt>(raw: *mut C::Raw) -> Verdict {
    let ctx = &C::from_raw(raw);
    let (Some(iface), Some(l2)) = (iface_of(ctx.ifindex()), parse_l2(ctx)) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let (l2, key) = (&l2, &access_key(ctx.ifindex(), &l2));
    let mut src_v4 = [0u8; 4];
    if l2.proto == ETH_P_IP {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l2.len) else {
            return Verdict::new(C::DROP, Counter::DropMalformed);
        };
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        if eq4(&ip.dst, &iface.addr4) || ip.dst[0] >= 224 || eq4(&ip.src, &[0; 4]) {
            return Verdict::new(C::PASS, Counter::PassControl);
        }
        if ip.proto == IPPROTO_UDP {
            let l4 = l2.len + ((ip.ver_ihl & 0x0f) as usize) * 4;
            if let Some(u) = read_at::<UdpHdr>(ctx, l4) {
                if be16(u.dst) == 67 {
                    return Verdict::new(C::PASS, Counter::PassControl);
                }
            }
        }
        src_v4 = ip.src;
    } else if l2.proto == ETH_P_IPV6 {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l2.len) else {
            return Verdict::new(C::DROP, Counter::DropMalformed);
        };
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        let link_local = |a: &[u8; 16]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
        if ip.dst[0] == 0xff || link_local(&ip.dst) || link_local(&ip.src) {
            return Verdict::new(C::PASS, Counter::PassControl);
        }
    } else {
        return Verdict::new(C::PASS, Counter::PassNotOurs);
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: plain lookup.
    let recent =
        unsafe { NEW_MAC_SEEN.get(key) }.is_some_and(|t| now.wrapping_sub(*t) < NEW_MAC_REPORT_NS);
    if !recent {
        if log::enabled() {
            log::new_mac(key, u32::from_ne_bytes(src_v4));
        }
        #[allow(clippy::needless_borrows_for_generic_args)] // as measured, see maps.rs
        let _ = NEW_MAC_SEEN.insert(key, &now, 0);
        let _ = NEW_MAC_EVENTS.output::<NewMacEvent>(NewMacEvent { key: *key, src_v4 }, 0);
    }
    Verdict::new(C::DROP, Counter::DropUnregistered)
}

/// Traffic for the gateway itself or for the local link, not for the tunnel:
/// DHCP, broadcast/multicast, the default router; IPv6 to multicast (RS, NS,
/// DHCPv6, MLD) or link-local destinations (NS, NA to the router). An IPv6
/// packet from a link-local (or the unspecified) source to anywhere else is
/// not control: the anti-spoofing check drops it (it must stay on the link,
/// RFC 4291 §2.5.6).
#[inline(always)]
pub(crate) fn is_control(ctx: &impl Pkt, inner: &Inner, sub: &AccessSubscriber) -> bool {
    if inner.family == FAMILY_V4 {
        let d = &inner.dst;
        // SAFETY: a 4-aligned field of a map value (or of its cached copy).
        let gw = unsafe { word4(&sub.gateway_v4) };
        if d[0] >= 224 || inner.src.words()[0] == 0 || d.words()[0] == gw {
            return true;
        }
        if inner.proto == IPPROTO_UDP {
            if let Some(u) = read_at::<UdpHdr>(ctx, inner.l4_off) {
                return be16(u.dst) == 67;
            }
        }
        false
    } else {
        inner.dst[0] == 0xff || inner.dst[0] == 0xfe && inner.dst[1] & 0xc0 == 0x80
    }
}

/// Anti-spoofing: once a home address / prefix is bound, the inner source must be in it.
/// `home4` and `hnp` are fields of a map value (4-byte aligned: compared in words).
#[inline(always)]
pub(crate) fn spoofed(inner: &Inner, fl: u32, home4: &[u8; 4], hnp: &[u8; 8]) -> bool {
    let src = inner.src.words();
    if inner.family == FAMILY_V4 {
        // SAFETY: a 4-aligned field of a map value (callers' contract).
        fl & flags::HAS_HOME4 != 0 && src[0] != unsafe { word4(home4) }
            || fl & flags::HAS_HOME4 == 0 && fl & flags::HAS_HNP != 0
    } else {
        // SAFETY: as above.
        let p = unsafe { words8(hnp) };
        fl & flags::HAS_HNP != 0 && (src[0] != p[0] || src[1] != p[1])
            || fl & flags::HAS_HNP == 0 && fl & flags::HAS_HOME4 != 0
    }
}

/// Answers a known subscriber's ARP request for any address but its own
/// (draft-leung §6.1: the PMA is the subscriber's only L2 neighbour). Requests
/// with sender 0.0.0.0 (RFC 5227 probes) or for its own address go to the stack.
#[inline(never)]
pub(crate) fn arp_reply<C: Pkt>(raw: *mut C::Raw, sub: &AccessSubscriber) -> Verdict {
    let ctx = &C::from_raw(raw);
    let (Some(iface), Some(l2)) = (iface_of(ctx.ifindex()), parse_l2(ctx)) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let l2 = &l2;
    let arp: ArpEthIp = match read_at(ctx, l2.len) {
        Some(a) => a,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    if be16(arp.htype) != 1 || be16(arp.ptype) != ETH_P_IP || arp.hlen != 6 || arp.plen != 4 {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    }
    if be16(arp.op) != 1
        || eq4(&arp.spa, &[0; 4])
        || eq4(&arp.tpa, &arp.spa)
        || (sub.flags & flags::HAS_HOME4 != 0 && eq4(&arp.tpa, &sub.home_v4))
    {
        return Verdict::new(C::PASS, Counter::PassControl);
    }
    let reply = ArpEthIp {
        op: 2u16.to_be_bytes(),
        sha: iface.mac,
        spa: arp.tpa,
        tha: arp.sha,
        tpa: arp.spa,
        ..arp
    };
    let eth = EthHdr {
        dst: l2.eth.src,
        src: iface.mac,
        proto: l2.eth.proto,
    };
    if !write_at(ctx, 0, eth) || !write_at(ctx, l2.len, reply) {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    }
    Verdict::new(ctx.tx(), Counter::TxArpReply)
}

/// Downlink at the access gateway: GRE from the anchor → subscriber's frame.
#[inline(always)]
pub(crate) fn access_downlink<C: Pkt>(ctx: &C, l2: &L2, gre: GreIn) -> Verdict {
    let d = match keyed(&gre, access_by_key(gre.key), |d| {
        (d.peer_family == FAMILY_V6, &d.peer)
    }) {
        Ok(d) => d,
        Err(c) => return Verdict::new(C::DROP, c),
    };
    let (inner_off, ethertype) = (gre.inner_off, gre.ethertype);
    let access = match iface_of(d.ifindex) {
        Some(a) => a,
        None => return Verdict::new(C::DROP, Counter::DropNoTunnel),
    };
    let inner = match parse_inner(ctx, inner_off, ethertype) {
        Some(i) => i,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    let _ = l2;
    if inner.ttl <= 1 {
        // Decapsulated, to the stack: the kernel answers time exceeded.
        if !decap(ctx, inner_off, inner.family, &l2.eth.src, &access.mac, 0) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
        return Verdict::new(C::PASS, Counter::PassTtl);
    }
    dec_ttl(&inner);
    if !decap(ctx, inner_off, inner.family, &access.mac, &d.mac, d.vlan) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    let _ = account_keyed(
        KEYED_ACCESS_DOWNLINK,
        u32::from_be_bytes(gre.key),
        d.sub_id,
        inner.len,
        false,
    );
    Verdict::new(redirect(d.ifindex), Counter::TxDecapDownlink)
}

/// The binding found under a GRE packet's key, when the packet came from
/// that binding's tunnel peer; else why it is dropped (both directions of
/// the tunnel: the access downlink, the anchor uplink). `peer` gives the
/// entry's copy of its tunnel's remote end: whether it is IPv6, and the
/// address (16 bytes at an 8-aligned offset of the map value).
#[inline(always)]
pub(crate) fn keyed<B>(
    gre: &GreIn,
    found: Option<&'static B>,
    peer: impl Fn(&B) -> (bool, &[u8; 16]),
) -> Result<&'static B, Counter> {
    let b = found.ok_or(Counter::DropUnknownKey)?;
    let (v6, remote) = peer(b);
    if !peer_ok(v6, remote, gre.family, gre.src) {
        return Err(Counter::DropWrongPeer);
    }
    Ok(b)
}

/// The outer source must be the remote end of the tunnel the key belongs
/// to (copied into the binding's entry by the loader: no `TUNNELS` lookup).
#[inline(always)]
pub(crate) fn peer_ok(v6: bool, remote: &[u8; 16], family: u8, src: &Addr) -> bool {
    if v6 != (family == FAMILY_V6) {
        return false;
    }
    // SAFETY: a 4-aligned field of a map value (both entries are 4-aligned).
    let r = unsafe { words16(remote) };
    let s = src.words();
    if family == FAMILY_V4 {
        r[0] == s[0]
    } else {
        (r[0] ^ s[0]) | (r[1] ^ s[1]) | (r[2] ^ s[2]) | (r[3] ^ s[3]) == 0
    }
}
