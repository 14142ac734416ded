//! Rewrite: encapsulation and decapsulation, the TTL, and the one step
//! that sends the subscriber's packet into a tunnel (`tunnel_out`): what both
//! roles do to put a packet into a GRE tunnel or take it out.
use pmip_common::{
    Counter, NextHopCache, Tunnel, UplinkFlow, FAMILY_V4, FAMILY_V6, GRE_KEYED_LEN, IPV4_HDR_LEN,
    IPV6_HDR_LEN,
};

use crate::ctx::Pkt;
use crate::fib::{fib, FIB_FRAG_NEEDED, FIB_NO_NEIGH, FIB_SUCCESS};
use crate::hdr::{
    ethertype_of, ipv4_csum, load_u16, load_u64, mac_words, store_u16, store_u32, store_u64,
    write_at, EthHdr, GreKeyHdr, Ipv4Hdr, Ipv6Hdr, VlanHdr, ETH_HLEN, ETH_P_8021Q, GRE_K,
    IPPROTO_GRE, VLAN_HLEN,
};
use crate::maps::{copy_words, iface_of, nh_expiry, nh_now, Flow, TUNNELS, TUNNEL_NH};
use crate::parse::{parse_inner, parse_l2, Inner, L2};
use crate::stats::{account, account_hinted};
use crate::verdict::{redirect, Verdict};

/// TTL / hop limit of the outer header (and of the fast path's ICMP errors).
pub(crate) const OUTER_TTL: u8 = 64;

/// Replaces the `l2_len`-byte L2 header with Ethernet + outer IP + GRE(key).
/// The inner packet is not moved: only the head grows.
#[inline(always)]
pub(crate) fn encap(
    ctx: &impl Pkt,
    l2_len: usize,
    inner: &Inner,
    tun: &Tunnel,
    key: [u8; 4],
    smac: [u8; 6],
    dmac: [u8; 6],
) -> bool {
    let outer_ip = if tun.family == FAMILY_V6 {
        IPV6_HDR_LEN
    } else {
        IPV4_HDR_LEN
    };
    let new_hdr = ETH_HLEN + outer_ip + GRE_KEYED_LEN;
    if !ctx.encap_head(l2_len, new_hdr, tun.family == FAMILY_V6) {
        return false;
    }
    let eth = EthHdr {
        dst: dmac,
        src: smac,
        proto: ethertype_of(tun.family).to_be_bytes(),
    };
    if !write_at(ctx, 0, eth) {
        return false;
    }
    let written = if tun.family == FAMILY_V6 {
        write_at(ctx, ETH_HLEN, outer_v6(tun, inner.len))
    } else {
        write_at(ctx, ETH_HLEN, outer_v4(tun, inner.len))
    };
    written && write_at(ctx, ETH_HLEN + outer_ip, gre_header(inner.family, key))
}

/// Bytes of the prebuilt tunnel headers (`NextHopCache::hdr`): Ethernet +
/// outer IPv4 + GRE with key, or the same with outer IPv6.
const TEMPLATE_V4: usize = ETH_HLEN + IPV4_HDR_LEN + GRE_KEYED_LEN;
const TEMPLATE_V6: usize = ETH_HLEN + IPV6_HDR_LEN + GRE_KEYED_LEN;

/// Prebuilds in `c` the headers of every packet into `tun` through next hop
/// `smac` → `dmac` (slow path, once per cache lifetime): Ethernet, the outer
/// IP header with total length and checksum zero, GRE with the K bit; the
/// inner protocol and the key are written per packet.
#[inline(always)]
pub(crate) fn build_template(c: &mut NextHopCache, tun: &Tunnel, smac: [u8; 6], dmac: [u8; 6]) {
    // SAFETY: [u64; 8] is 64 plain bytes.
    let h: &mut [u8; 64] = unsafe { &mut *(c.hdr.as_mut_ptr() as *mut [u8; 64]) };
    *h = [0; 64];
    h[..6].copy_from_slice(&dmac);
    h[6..12].copy_from_slice(&smac);
    h[12..14].copy_from_slice(&ethertype_of(tun.family).to_be_bytes());
    let gre;
    if tun.family == FAMILY_V6 {
        h[14] = 0x60;
        h[20] = IPPROTO_GRE;
        h[21] = OUTER_TTL;
        h[22..38].copy_from_slice(&tun.local);
        h[38..54].copy_from_slice(&tun.remote);
        gre = ETH_HLEN + IPV6_HDR_LEN;
        c.csum_base = 0;
    } else {
        h[14] = 0x45;
        h[22] = OUTER_TTL;
        h[23] = IPPROTO_GRE;
        h[26..30].copy_from_slice(&tun.local[..4]);
        h[30..34].copy_from_slice(&tun.remote[..4]);
        gre = ETH_HLEN + IPV4_HDR_LEN;
        let mut sum = 0u32;
        let mut i = ETH_HLEN;
        while i < gre {
            sum += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
            i += 2;
        }
        // Folded to 16 bits here, so that a packet's checksum needs one
        // fold (base + length <= 0x1fffe), not four.
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        c.csum_base = sum;
    }
    h[gre..gre + 2].copy_from_slice(&GRE_K.to_be_bytes());
}

/// Encapsulation from a cached next hop: grows the head to the template's
/// length and writes it with word stores, then the per-packet fields (outer
/// length, IPv4 checksum by folding the template's partial sum, inner
/// protocol, key). 10–12 stores instead of rebuilding 42–62 bytes.
#[inline(always)]
pub(crate) fn encap_cached(
    ctx: &impl Pkt,
    l2_len: usize,
    inner: &Inner,
    v6: bool,
    key: [u8; 4],
    hdr: &[u64; 8],
    csum_base: u32,
) -> bool {
    let hlen = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
    if !ctx.encap_head(l2_len, hlen, v6) {
        return false;
    }
    let p = ctx.data();
    let w = hdr;
    let proto = ethertype_of(inner.family).to_be();
    let key = u32::from_ne_bytes(key);
    // Both templates start with 40 bytes of words: Ethernet, then the outer
    // IPv4 header and GRE, or the first 26 bytes of the IPv6 header.
    if p + TEMPLATE_V4 > ctx.data_end() {
        return false;
    }
    // SAFETY: p .. p + 42 is inside the packet (checked above).
    unsafe {
        store_u64::<0>(p, w[0]);
        store_u64::<8>(p, w[1]);
        store_u64::<16>(p, w[2]);
        store_u64::<24>(p, w[3]);
        store_u64::<32>(p, w[4]);
    }
    if v6 {
        if p + TEMPLATE_V6 > ctx.data_end() {
            return false;
        }
        // SAFETY: p .. p + 62 is inside the packet (checked above).
        unsafe {
            store_u64::<40>(p, w[5]);
            store_u64::<48>(p, w[6]);
            store_u16::<18>(p, (inner.len + GRE_KEYED_LEN as u16).to_be());
            store_u16::<54>(p, GRE_K.to_be());
            store_u16::<56>(p, proto);
            store_u32::<58>(p, key);
        }
    } else {
        let tot = inner.len + (IPV4_HDR_LEN + GRE_KEYED_LEN) as u16;
        // csum_base is folded (build_template): one fold of base + length.
        let s = csum_base + tot as u32;
        let check = !(((s & 0xffff) + (s >> 16)) as u16);
        // SAFETY: p .. p + 42 is inside the packet (checked above).
        unsafe {
            store_u16::<16>(p, tot.to_be());
            store_u16::<24>(p, check.to_be());
            store_u16::<36>(p, proto);
            store_u32::<38>(p, key);
        }
    }
    true
}

/// Outer IPv4 header of a tunnel packet carrying `inner_len` bytes (DF clear:
/// the MTU was checked against the egress; a router further on may fragment).
#[inline(always)]
pub(crate) fn outer_v4(tun: &Tunnel, inner_len: u16) -> Ipv4Hdr {
    let mut ip = Ipv4Hdr {
        ver_ihl: 0x45,
        tos: 0,
        tot_len: (inner_len + (IPV4_HDR_LEN + GRE_KEYED_LEN) as u16).to_be_bytes(),
        id: [0, 0],
        frag_off: [0, 0],
        ttl: OUTER_TTL,
        proto: IPPROTO_GRE,
        check: [0, 0],
        src: [tun.local[0], tun.local[1], tun.local[2], tun.local[3]],
        dst: [tun.remote[0], tun.remote[1], tun.remote[2], tun.remote[3]],
    };
    ip.check = ipv4_csum(&ip);
    ip
}

/// Outer IPv6 header of a tunnel packet carrying `inner_len` bytes.
#[inline(always)]
pub(crate) fn outer_v6(tun: &Tunnel, inner_len: u16) -> Ipv6Hdr {
    Ipv6Hdr {
        ver_tc_flow: [0x60, 0, 0, 0],
        payload_len: (inner_len + GRE_KEYED_LEN as u16).to_be_bytes(),
        next_hdr: IPPROTO_GRE,
        hop_limit: OUTER_TTL,
        src: tun.local,
        dst: tun.remote,
    }
}

/// GRE with only the Key bit (RFC 2890 §2.1), as every tunnel uses.
#[inline(always)]
pub(crate) fn gre_header(inner_family: u8, key: [u8; 4]) -> GreKeyHdr {
    GreKeyHdr {
        flags: GRE_K.to_be_bytes(),
        proto: ethertype_of(inner_family).to_be_bytes(),
        key,
    }
}

/// Removes everything before `inner_off` and writes a fresh L2 header
/// (Ethernet, plus an 802.1Q tag when `vlan` is not 0). The MACs are read
/// before the packet moves (they may be the frame's own), in 16-bit words:
/// each is a field of a map value, of `L2` or of a `NextHop`.
#[inline(always)]
pub(crate) fn decap(
    ctx: &impl Pkt,
    inner_off: usize,
    family: u8,
    smac: &[u8; 6],
    dmac: &[u8; 6],
    vlan: u16,
) -> bool {
    // SAFETY: MAC fields at even offsets of aligned structs (callers').
    let (s, d) = unsafe { (mac_words(smac), mac_words(dmac)) };
    let proto = ethertype_of(family);
    if vlan != 0 {
        if !ctx.decap_head(inner_off - ETH_HLEN - VLAN_HLEN, family) {
            return false;
        }
        let mac = |w: [u16; 3]| -> [u8; 6] {
            let (a, b, c) = (w[0].to_ne_bytes(), w[1].to_ne_bytes(), w[2].to_ne_bytes());
            [a[0], a[1], b[0], b[1], c[0], c[1]]
        };
        return write_l2(ctx, mac(s), mac(d), vlan, proto);
    }
    if !ctx.decap_head(inner_off - ETH_HLEN, family) {
        return false;
    }
    let p = ctx.data();
    if p + ETH_HLEN > ctx.data_end() {
        return false;
    }
    // dmac, smac, EtherType in three stores (little-endian words: the
    // first byte in memory is the lowest).
    let w0 = d[0] as u64 | (d[1] as u64) << 16 | (d[2] as u64) << 32 | (s[0] as u64) << 48;
    let w1 = s[1] as u32 | (s[2] as u32) << 16;
    // SAFETY: p .. p + 14 is inside the packet (checked above).
    unsafe {
        store_u64::<0>(p, w0);
        store_u32::<8>(p, w1);
        store_u16::<12>(p, proto.to_be());
    }
    true
}

/// Decapsulation to a cached next hop: shrinks the head to an Ethernet
/// header and writes it with three stores (`macs`: dmac, smac as prebuilt).
#[inline(always)]
pub(crate) fn decap_cached(ctx: &impl Pkt, inner_off: usize, family: u8, macs: &[u64; 2]) -> bool {
    if !ctx.decap_head(inner_off - ETH_HLEN, family) {
        return false;
    }
    let p = ctx.data();
    if p + ETH_HLEN > ctx.data_end() {
        return false;
    }
    // SAFETY: p .. p + 14 is inside the packet (checked above).
    unsafe {
        store_u64::<0>(p, macs[0]);
        store_u32::<8>(p, macs[1] as u32);
        store_u16::<12>(p, ethertype_of(family).to_be());
    }
    true
}

#[inline(always)]
pub(crate) fn write_l2(
    ctx: &impl Pkt,
    smac: [u8; 6],
    dmac: [u8; 6],
    vlan: u16,
    proto: u16,
) -> bool {
    if vlan != 0 {
        write_at(
            ctx,
            0,
            EthHdr {
                dst: dmac,
                src: smac,
                proto: ETH_P_8021Q.to_be_bytes(),
            },
        ) && write_at(
            ctx,
            ETH_HLEN,
            VlanHdr {
                tci: vlan.to_be_bytes(),
                proto: proto.to_be_bytes(),
            },
        )
    } else {
        write_at(
            ctx,
            0,
            EthHdr {
                dst: dmac,
                src: smac,
                proto: proto.to_be_bytes(),
            },
        )
    }
}

/// Decrements the inner TTL / hop limit as a router would (caller checked
/// > 1), in place through the header address `parse_inner` checked: the
/// packet has not been resized since (only map lookups, the clock and the
/// FIB in between), so the verifier still knows the header is inside it.
#[inline(always)]
pub(crate) fn dec_ttl(inner: &Inner) {
    let p = inner.hdr;
    if inner.family == FAMILY_V4 {
        // TTL is the high byte of the 16-bit word at 8 (TTL, protocol):
        // the word drops by 0x0100 and the checksum rises by as much
        // (RFC 1624). One's-complement sums do not depend on byte order
        // (RFC 1071 §2(B)), so the checksum is updated as loaded: +1 to
        // the little-endian (bpfel) word, end-around carry, no byte swaps.
        // A sum of 0xffff (-0) becomes 0x0000, as a full recomputation
        // gives (RFC 1624 §3; Linux's ip_decrease_ttl): `c >= 0xffff`, not
        // `c >> 16`, which left 0xffff (a header checksum of 0xfeff before
        // the decrement, fastpath_testrun's checksum_carry_cases).
        // SAFETY: a 20-byte header inside the packet (parse_inner).
        unsafe {
            let ip = p as *mut Ipv4Hdr;
            (*ip).ttl -= 1;
            let c = load_u16::<10>(p) as u32 + 1;
            store_u16::<10>(p, (c + (c >= 0xffff) as u32) as u16);
        }
    } else {
        // SAFETY: a 40-byte header inside the packet (parse_inner).
        unsafe { (*(p as *mut Ipv6Hdr)).hop_limit -= 1 };
    }
}

/// Whether next hop `c` was looked up for the remote end `tun` has now (a
/// tunnel id reused for another peer must not inherit its next hop).
#[inline(always)]
fn same_remote(c: &NextHopCache, tun: &Tunnel) -> bool {
    // Two 64-bit loads a side (the fields are 4-aligned only: the
    // verifier allows unaligned map value loads on the hosts we run on, as
    // for packet data, see hdr::store_u64); four 32-bit loads a side cost
    // more instructions and, under register pressure, reloads.
    const C: i16 = core::mem::offset_of!(NextHopCache, remote) as i16;
    const T: i16 = core::mem::offset_of!(Tunnel, remote) as i16;
    let (c, t) = (
        c as *const NextHopCache as usize,
        tun as *const Tunnel as usize,
    );
    // SAFETY: 16-byte fields of map values (the verifier checks the bounds).
    unsafe {
        (load_u64::<C>(c) ^ load_u64::<T>(t))
            | (load_u64::<{ C + 8 }>(c) ^ load_u64::<{ T + 8 }>(t))
            == 0
    }
}

/// Which way a packet goes through a tunnel, for counters and billing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Up,
    Down,
}

/// How a subscriber's packet goes into a tunnel: which tunnel, with which
/// GRE key, counted for which subscriber.
#[derive(Clone, Copy)]
pub(crate) struct Encap {
    pub(crate) tunnel_id: u32,
    pub(crate) key: [u8; 4],
    pub(crate) sub_id: u32,
    /// Where to keep the subscriber's flow once the tunnel's next hop is
    /// known (the access uplink, the anchor downlink; see [`flow_out`]).
    pub(crate) flow: Flow,
}

/// A subscriber's packet into its tunnel through the subscriber's flow
/// (`UplinkFlow`, kept in its `ACCESS_CACHE` slot for the access uplink,
/// in its `ANCHOR_CACHE` slot for the anchor downlink): one expiry and one
/// length compare instead of `TUNNELS`, `TUNNEL_NH` and their checks;
/// `None` when the flow is empty, expired or the packet longer than the
/// next hop took (then [`tunnel_out`] decides, and refills the flow).
#[inline(always)]
pub(crate) fn flow_out<C: Pkt>(
    ctx: &C,
    l2_len: usize,
    inner: &Inner,
    flow: *mut UplinkFlow,
    key: [u8; 4],
    sub_id: u32,
    dir: Dir,
) -> Option<Verdict> {
    // SAFETY: this CPU's cache slot (the callers': ACCESS_CACHE,
    // ANCHOR_CACHE); nothing else runs on this CPU meanwhile.
    let f = unsafe { &*flow };
    let overhead = pmip_common::tunnel_overhead(f.family) as u16;
    // As outer_len: a GSO packet (TC) leaves as segments that fit.
    let tot = if ctx.is_gso() {
        overhead
    } else {
        inner.len.saturating_add(overhead)
    };
    if nh_now() >= f.expires || tot > f.max_len {
        return None;
    }
    dec_ttl(inner);
    let v6 = f.family == FAMILY_V6;
    if !encap_cached(ctx, l2_len, inner, v6, key, &f.hdr, f.csum_base) {
        return Some(Verdict::new(C::DROP, Counter::DropAdjustFailed));
    }
    // SAFETY: as above; `f` is not used after this.
    unsafe { account_hinted(sub_id, inner.len, dir == Dir::Up, &raw mut (*flow).sub_slot) };
    Some(Verdict::new(redirect(f.ifindex), encap_counter(dir)))
}

/// Copies next hop `c` of a tunnel of `family` into flow `f`: its expiry
/// and MTU limit too, so that the flow never outlives what it copies.
#[inline(always)]
fn fill_flow(f: *mut UplinkFlow, c: &NextHopCache, family: u8) {
    // SAFETY: this CPU's ACCESS_CACHE slot (maps::access_subscriber);
    // nothing else runs on this CPU meanwhile. Both 8-byte aligned.
    unsafe {
        copy_words(&raw mut (*f).hdr, &c.hdr);
        (*f).ifindex = c.ifindex;
        (*f).max_len = c.max_len;
        (*f).family = family;
        (*f).csum_base = c.csum_base;
        (*f).expires = c.expires;
    }
}

/// Encapsulates the subscriber's packet as `e` says and sends it (`dir`: for
/// the counters): XDP redirect when the next hop is resolved, otherwise
/// through the kernel (which resolves the neighbour), so no packet is lost to
/// an unresolved neighbour. Handles too-big first; counts the subscriber's
/// traffic for every packet that leaves.
///
/// Inlined: the cached next hop. A miss asks the FIB in [`tunnel_out_fib`],
/// a function of its own (its frame holds the FIB's parameters).
#[inline(always)]
pub(crate) fn tunnel_out<C: Pkt>(ctx: &C, l2: &L2, inner: &Inner, e: Encap, dir: Dir) -> Verdict {
    let tun = match TUNNELS.get(e.tunnel_id) {
        Some(t) if t.family != 0 => t,
        _ => return Verdict::new(C::DROP, Counter::DropNoTunnel),
    };
    let tot = outer_len(ctx, tun, inner);
    if let Some(c) = TUNNEL_NH.get_ptr(e.tunnel_id) {
        // SAFETY: per-CPU slot of this CPU.
        let c = unsafe { &*c };
        if nh_now() < c.expires && tot <= c.max_len && same_remote(c, tun) {
            if !e.flow.is_null() {
                fill_flow(e.flow, c, tun.family);
            }
            dec_ttl(inner);
            let v6 = tun.family == FAMILY_V6;
            if !encap_cached(ctx, l2.len, inner, v6, e.key, &c.hdr, c.csum_base) {
                return Verdict::new(C::DROP, Counter::DropAdjustFailed);
            }
            account(e.sub_id, inner.len, dir == Dir::Up);
            return Verdict::new(redirect(c.ifindex), encap_counter(dir));
        }
    }
    tunnel_out_fib::<C>(
        ctx.raw(),
        e.tunnel_id,
        u32::from_ne_bytes(e.key),
        e.sub_id,
        dir,
    )
}

#[inline(always)]
fn encap_counter(dir: Dir) -> Counter {
    if dir == Dir::Up {
        Counter::TxEncapUplink
    } else {
        Counter::TxEncapDownlink
    }
}

/// Length of the outer packet as the MTU sees it. A GSO packet (TC) leaves
/// as segments that fit (see Pkt::encap_head): only its headers count.
#[inline(always)]
fn outer_len(ctx: &impl Pkt, tun: &Tunnel, inner: &Inner) -> u16 {
    let overhead = pmip_common::tunnel_overhead(tun.family) as u16;
    if ctx.is_gso() {
        overhead
    } else {
        inner.len.saturating_add(overhead)
    }
}

/// [`tunnel_out`] without a cached next hop: asks the FIB, answers too-big,
/// hands an unresolved neighbour to the kernel, refreshes the cache. A
/// function of its own, so that its frame (the FIB's parameters) is not the
/// program's; it parses the frame again rather than take pointers into the
/// program's frame (which would keep them there).
#[inline(never)]
fn tunnel_out_fib<C: Pkt>(
    raw: *mut C::Raw,
    tunnel_id: u32,
    key: u32,
    sub_id: u32,
    dir: Dir,
) -> Verdict {
    let ctx = &C::from_raw(raw);
    let key = key.to_ne_bytes();
    let ifindex = ctx.ifindex();
    let (Some(iface), Some(l2)) = (iface_of(ifindex), parse_l2(ctx)) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let Some(inner) = parse_inner(ctx, l2.len, l2.proto) else {
        return Verdict::new(C::DROP, Counter::DropMalformed);
    };
    let (l2, inner) = (&l2, &inner);
    let tun = match TUNNELS.get(tunnel_id) {
        Some(t) if t.family != 0 => t,
        _ => return Verdict::new(C::DROP, Counter::DropNoTunnel),
    };
    let overhead = pmip_common::tunnel_overhead(tun.family) as u16;
    let tot = outer_len(ctx, tun, inner);
    let now = nh_now();
    let cache = TUNNEL_NH.get_ptr_mut(tunnel_id);
    let nh = fib(ctx, ifindex, tun.family, &tun.local, &tun.remote, tot);
    if nh.rc == FIB_FRAG_NEEDED {
        if !inner.df {
            return Verdict::new(C::DROP, Counter::DropTooBigNoDf);
        }
        return Verdict::too_big(nh.mtu.saturating_sub(overhead));
    }
    if nh.rc != FIB_SUCCESS && nh.rc != FIB_NO_NEIGH {
        return Verdict::new(C::DROP, Counter::DropNoRoute);
    }
    dec_ttl(inner);
    if nh.rc == FIB_NO_NEIGH {
        // To the kernel, addressed to ourselves at L2: it routes the GRE packet and
        // resolves the neighbour; later packets find it and stay in XDP.
        if !encap(ctx, l2.len, inner, tun, key, l2.eth.src, iface.mac) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
        account(sub_id, inner.len, dir == Dir::Up);
        return Verdict::new(C::PASS, Counter::PassNoNeigh);
    }
    if let Some(c) = cache {
        // SAFETY: per-CPU slot of this CPU.
        let c = unsafe { &mut *c };
        let fresh =
            now < c.expires && same_remote(c, tun) && c.ifindex == nh.ifindex && c.dmac == nh.dmac;
        if !fresh {
            c.expires = nh_expiry(now);
            c.max_len = 0;
            c.remote = tun.remote;
        }
        if !fresh || c.smac != nh.smac {
            build_template(c, tun, nh.smac, nh.dmac);
        }
        c.ifindex = nh.ifindex;
        c.smac = nh.smac;
        c.dmac = nh.dmac;
        if tot > c.max_len {
            c.max_len = tot;
        }
    }
    if !encap(ctx, l2.len, inner, tun, key, nh.smac, nh.dmac) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    account(sub_id, inner.len, dir == Dir::Up);
    Verdict::new(redirect(nh.ifindex), encap_counter(dir))
}
