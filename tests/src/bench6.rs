//! IPv6-inner frames for the per-packet benchmark (issue 15's figures): each fast path
//! with an IPv6 subscriber's packet, over an IPv4 and an IPv6 tunnel, on the bindings of
//! [`crate::fixture`] (SUB1: HNP1 over IPv4, SUB2: HNP2 over IPv6; the anchor's AHNP over
//! IPv4 and AHNP_V6T over IPv6). The same packets as the IPv4 rows: a 32-byte echo
//! request, here ICMPv6.
use std::net::Ipv6Addr;

use crate::fixture::*;
use crate::packet::*;

/// An address in prefix `hnp` (interface id `iid`).
pub fn in_hnp(hnp: Ipv6Addr, iid: u16) -> Ipv6Addr {
    let s = hnp.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, iid)
}

/// ICMPv6 echo request (RFC 4443 §4.1) with 32 bytes of data, in IPv6 (hop limit 64).
/// The checksum is left 0: no fast path reads it.
pub fn echo6(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![128, 0, 0, 0, 0, 7, 0, 1];
    icmp.extend_from_slice(&[0xab; 32]);
    ipv6(src, dst, 58, 64, &icmp)
}

/// (row name, ingress ifindex, frame) of each IPv6-inner path; every one is redirected.
pub fn ipv6_inner_cases(
    acc: u32,
    core: u32,
    acore: u32,
    cn: u32,
) -> Vec<(&'static str, u32, Vec<u8>)> {
    let (sub1, sub2) = (in_hnp(HNP1, 0x99), in_hnp(HNP2, 0x99));
    let (ahome, ahome6t) = (in_hnp(AHNP, 1), in_hnp(AHNP_V6T, 1));
    let gre4 = |src, dst, key, inner: &[u8]| {
        cat(
            eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IP),
            &ipv4(src, dst, 47, 64, false, &gre_keyed(ETH_P_IPV6, key, inner)),
        )
    };
    let gre6 = |src, dst, key, inner: &[u8]| {
        cat(
            eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IPV6),
            &ipv6(src, dst, 47, 64, &gre_keyed(ETH_P_IPV6, key, inner)),
        )
    };
    let anchor_gre4 = |inner: &[u8]| from_mag4(ETH_P_IPV6, 0x3001, inner);
    let anchor_gre6 = |inner: &[u8]| from_mag6(ETH_P_IPV6, 0x3002, inner);
    vec![
        (
            "access encap, IPv6 inner, IPv4 outer",
            acc,
            cat(eth(ACC_MAC, SUB1_MAC, 0, ETH_P_IPV6), &echo6(sub1, CN6)),
        ),
        (
            "access encap, IPv6 inner, IPv6 outer",
            acc,
            cat(eth(ACC_MAC, SUB2_MAC, 0, ETH_P_IPV6), &echo6(sub2, CN6)),
        ),
        (
            "access decap, IPv6 inner, IPv4 outer",
            core,
            gre4(LMA4, MAG4, 0x2001, &echo6(CN6, sub1)),
        ),
        (
            "access decap, IPv6 inner, IPv6 outer",
            core,
            gre6(LMA6, MAG6, 0x2002, &echo6(CN6, sub2)),
        ),
        (
            "anchor encap, IPv6 inner, IPv4 outer",
            cn,
            cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IPV6), &echo6(CN6, ahome)),
        ),
        (
            "anchor encap, IPv6 inner, IPv6 outer",
            cn,
            cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IPV6), &echo6(CN6, ahome6t)),
        ),
        (
            "anchor decap, IPv6 inner, IPv4 outer",
            acore,
            anchor_gre4(&echo6(ahome, CN6)),
        ),
        (
            "anchor decap, IPv6 inner, IPv6 outer",
            acore,
            anchor_gre6(&echo6(ahome6t, CN6)),
        ),
    ]
}
