//! The Internet checksum (RFC 1071): the one's-complement sum of 16-bit
//! big-endian words, inverted. One implementation for the crate and its
//! tests: IPv4 headers, UDP, ICMP, and the Mobility Header (RFC 6275 §6.1.1).
//!
//! A checksum over several pieces (pseudo-header, then the message) is
//! `finish(add(add(0, a), b))`; the pieces must start at even offsets of
//! the checksummed whole, as all headers here do.
use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to the partial sum `sum` (an odd last byte is padded with a
/// zero byte, RFC 1071 §4.1). The result is folded to 16 bits, so partial
/// sums can be chained over data of any length.
pub fn add(sum: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(sum);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    u32::from(fold_u64(acc))
}

/// The partial sum with its carries folded in: 16 bits, not inverted
/// (0xffff when the data, checksum field included, verifies).
pub fn fold(sum: u32) -> u16 {
    fold_u64(u64::from(sum))
}

fn fold_u64(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The value for the checksum field: the folded sum, inverted.
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The checksum of `data` alone (an IPv4 header, an ICMP message); 0 when
/// `data` carries a correct checksum.
pub fn of(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// Sum of the IPv4 pseudo-header (RFC 768) for an upper-layer message of
/// `len` bytes with protocol `proto`.
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let sum = add(add(0, &src.octets()), &dst.octets());
    sum + u32::from(proto) + u32::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer message
/// of `len` bytes with next header `next`.
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, len: u32, next: u8) -> u32 {
    let sum = add(add(0, &src.octets()), &dst.octets());
    sum + (len >> 16) + (len & 0xffff) + u32::from(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (checksum 0x220d).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(of(&data), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(of(&[0xff]), !0xff00);
    }

    #[test]
    fn chained_sums_equal_one_sum() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4001).collect();
        let whole = add(0, &data);
        let split = add(add(0, &data[..1000]), &data[1000..]);
        assert_eq!(fold(whole), fold(split));
        // Long inputs do not overflow (all-ones words, 256 KiB).
        assert_eq!(fold(add(0, &vec![0xff; 1 << 18])), 0xffff);
    }

    #[test]
    fn ipv4_header_verifies_to_zero() {
        // A real header (Wikipedia's IPv4 checksum example): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(of(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(of(&h), 0);
        assert_eq!(fold(add(0, &h)), 0xffff);
    }

    #[test]
    fn pseudo_headers_sum_their_fields() {
        let v4 = pseudo_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            12,
        );
        assert_eq!(fold(v4), 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 12);
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let v6 = pseudo_v6(&a, &b, 0x1_0002, 135);
        let want = 2 * (0x2001 + 0x0db8) + 1 + 2 + 1 + 2 + 135;
        assert_eq!(fold(v6), want as u16);
    }
}
