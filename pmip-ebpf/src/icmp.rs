//! ICMP errors the fast path answers itself.
use pmip_common::{Counter, FAMILY_V6, IPV4_HDR_LEN, IPV6_HDR_LEN};

use crate::ctx::Pkt;
use crate::hdr::{
    csum_fold, ipv4_csum, read_at, write_at, IcmpHdr, Ipv4Hdr, Ipv6Hdr, ETH_HLEN, IPPROTO_ICMP,
    IPPROTO_ICMPV6,
};
use crate::maps::iface_of;
use crate::parse::{parse_inner, parse_l2};
use crate::tunnel::{write_l2, OUTER_TTL};
use crate::verdict::{Verdict, HOP_LIMIT_EXCEEDED};

/// Bytes of the offending packet quoted in an ICMP too-big (RFC 792 asks for
/// header + 8; RFC 4443 "as much as possible" — a fixed quote keeps the
/// checksum loop bounded).
const ICMP_QUOTE: usize = 64;

/// Answers a DF (or IPv6) packet that would not fit the tunnel with ICMP
/// fragmentation-needed (RFC 1191) / packet-too-big (RFC 4443 §3.2) carrying
/// the tunnel MTU, sent back out of the interface it came in on (XDP_TX;
/// at TC a redirect to the same interface's egress). With `mtu` =
/// [`HOP_LIMIT_EXCEEDED`] an IPv6 packet is answered with time exceeded,
/// hop limit exceeded in transit (RFC 4443 §3.3) instead.
#[inline(never)]
pub(crate) fn icmp_too_big<C: Pkt>(raw: *mut C::Raw, mtu: u16) -> Verdict {
    let ctx = &C::from_raw(raw);
    let ifindex = ctx.ifindex();
    let iface = match iface_of(ifindex) {
        Some(c) => *c,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    let iface = &iface;
    let l2 = match parse_l2(ctx) {
        Some(l2) => l2,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    let l2 = &l2;
    let inner = match parse_inner(ctx, l2.len, l2.proto) {
        Some(i) => i,
        None => return Verdict::new(C::DROP, Counter::DropMalformed),
    };
    let inner = &inner;
    let v6 = inner.family == FAMILY_V6;
    let exceeded = v6 && mtu == HOP_LIMIT_EXCEEDED;
    let ip_len = if v6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN };
    // A too-big packet is longer than the quote; a packet whose hop limit
    // ran out may be shorter: quote what there is, in whole words.
    let quote = if (inner.len as usize) < ICMP_QUOTE {
        inner.len as usize & !7
    } else {
        ICMP_QUOTE
    };
    if !ctx.push_head(ip_len + 8) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    let l4 = l2.len + ip_len;
    if !ctx.truncate(l4 + 8 + quote) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    // A tag the kernel keeps in metadata (TC) stays there: only a tag that
    // was in the frame is written back into it.
    let vlan = if l2.len > ETH_HLEN { l2.vlan } else { 0 };
    if !write_l2(ctx, iface.mac, l2.eth.src, vlan, l2.proto) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    let icmp_len = (8 + quote) as u16;
    let mut sum: u64 = 0;
    if v6 {
        let ip = Ipv6Hdr {
            ver_tc_flow: [0x60, 0, 0, 0],
            payload_len: icmp_len.to_be_bytes(),
            next_hdr: IPPROTO_ICMPV6,
            hop_limit: 255,
            src: iface.addr6,
            dst: inner.src.0,
        };
        // Pseudo-header (RFC 8200 §8.1): addresses, upper-layer length, next header.
        sum += sum16(&ip.src) + sum16(&ip.dst) + icmp_len as u64 + IPPROTO_ICMPV6 as u64;
        if !write_at(ctx, l2.len, ip) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
    } else {
        let mut ip = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0xc0,
            tot_len: (icmp_len + IPV4_HDR_LEN as u16).to_be_bytes(),
            id: [0, 0],
            frag_off: [0, 0],
            ttl: OUTER_TTL,
            proto: IPPROTO_ICMP,
            check: [0, 0],
            src: iface.addr4,
            dst: [inner.src[0], inner.src[1], inner.src[2], inner.src[3]],
        };
        ip.check = ipv4_csum(&ip);
        if !write_at(ctx, l2.len, ip) {
            return Verdict::new(C::DROP, Counter::DropAdjustFailed);
        }
    }
    let (ty, code, rest) = if exceeded {
        (3u8, 0u8, [0; 4])
    } else if v6 {
        (2u8, 0u8, (mtu as u32).to_be_bytes())
    } else {
        let m = mtu.to_be_bytes();
        (3u8, 4u8, [0, 0, m[0], m[1]])
    };
    let hdr = IcmpHdr {
        ty,
        code,
        check: [0, 0],
        rest,
    };
    sum += ((ty as u64) << 8 | code as u64) + sum16(&rest);
    let mut i = 0;
    while i < ICMP_QUOTE {
        if i >= quote {
            break;
        }
        match read_at::<[u8; 8]>(ctx, l4 + 8 + i) {
            Some(q) => sum += sum16(&q),
            None => return Verdict::new(C::DROP, Counter::DropAdjustFailed),
        }
        i += 8;
    }
    let hdr = IcmpHdr {
        check: csum_fold(sum).to_be_bytes(),
        ..hdr
    };
    if !write_at(ctx, l4, hdr) {
        return Verdict::new(C::DROP, Counter::DropAdjustFailed);
    }
    let c = if exceeded {
        Counter::TxIcmpTimeExceeded
    } else {
        Counter::TxIcmpTooBig
    };
    Verdict::new(ctx.tx(), c)
}

/// Sum of big-endian 16-bit words (even length).
#[inline(always)]
pub(crate) fn sum16<const N: usize>(b: &[u8; N]) -> u64 {
    let mut s: u64 = 0;
    let mut i = 0;
    while i + 1 < N {
        s += u16::from_be_bytes([b[i], b[i + 1]]) as u64;
        i += 2;
    }
    s
}
