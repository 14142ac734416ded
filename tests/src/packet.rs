//! Emitters for the frames the fast path carries: Ethernet (with 802.1Q),
//! IPv4, IPv6, GRE with key, UDP, ICMP and ARP. The fast-path tests and
//! benchmarks build their input and expected output packets with them.
use std::net::{Ipv4Addr, Ipv6Addr};

use pmip_user::checksum;
/// Shared with pmip-user's own tshark tests (one copy).
pub use pmip_user::pcap::{ipv4, pcap_file, udp, LINKTYPE_ETHERNET, LINKTYPE_RAW};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;

/// `a` followed by `b`: a header and what it carries.
pub fn cat(mut a: Vec<u8>, b: &[u8]) -> Vec<u8> {
    a.extend_from_slice(b);
    a
}

/// Ethernet header, with an 802.1Q tag when `vlan` is not 0.
pub fn eth(dst: [u8; 6], src: [u8; 6], vlan: u16, proto: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(18);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    if vlan != 0 {
        v.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        v.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    v.extend_from_slice(&proto.to_be_bytes());
    v
}

/// IPv6 header followed by `payload`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// GRE header with the Key bit (RFC 2890 §2.1) followed by `payload`.
pub fn gre_keyed(proto: u16, key: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x20, 0x00];
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// ICMP echo request (type 8) with a correct checksum.
pub fn icmp_echo(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![8, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(data);
    let c = checksum::of(&v);
    v[2..4].copy_from_slice(&c.to_be_bytes());
    v
}

/// ARP for IPv4 over Ethernet (RFC 826); `op` 1 = request, 2 = reply.
pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0, 1, 0x08, 0x00, 6, 4];
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa.octets());
    v.extend_from_slice(&tha);
    v.extend_from_slice(&tpa.octets());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        let p = ipv4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            64,
            true,
            &[1, 2, 3],
        );
        assert_eq!(checksum::of(&p[..20]), 0);
        assert_eq!(&p[2..4], &23u16.to_be_bytes());
        assert_eq!(p[6], 0x40);
    }

    #[test]
    fn pcap_header_and_records() {
        let f = pcap_file(LINKTYPE_RAW, &[vec![1, 2, 3], vec![4]]);
        assert_eq!(&f[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&f[20..24], &101u32.to_le_bytes());
        // 24-byte header, then 16-byte record headers with incl/orig lengths.
        assert_eq!(&f[32..40], &[3, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&f[40..43], &[1, 2, 3]);
        assert_eq!(f.len(), 24 + 16 + 3 + 16 + 1);
    }

    #[test]
    fn vlan_tag_and_gre_layout() {
        let e = eth([1; 6], [2; 6], 100, ETH_P_IP);
        assert_eq!(e.len(), 18);
        assert_eq!(&e[12..16], &[0x81, 0x00, 0x00, 100]);
        let g = gre_keyed(ETH_P_IPV6, 0x01020304, &[9]);
        assert_eq!(g, vec![0x20, 0, 0x86, 0xdd, 1, 2, 3, 4, 9]);
    }
}
