//! Test support: a classic pcap writer and the IPv4/UDP wrapping for the
//! tests that hand what we emit to tshark. Public (not `cfg(test)`) so that
//! pmip-user's unit tests and the tests crate (`pmip_tests::packet`) share
//! one copy; nothing in the daemon calls it.

/// pcap link types (tcpdump.org/linktypes).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Bare IPv4 or IPv6 packets.
pub const LINKTYPE_RAW: u32 = 101;

/// A classic pcap file (microsecond timestamps, one second apart) holding
/// `frames`: what the wire-format tests hand to tshark, the independent decoder.
pub fn pcap_file(linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

/// An IPv4 header (no options) in front of `payload`, with its checksum:
/// wraps what a test emits so tshark sees it as it would on the wire.
pub fn ipv4(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    proto: u8,
    ttl: u8,
    df: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    if df {
        h[6] = 0x40;
    }
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = crate::checksum::of(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A UDP header (checksum 0: none, allowed over IPv4) in front of `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}
