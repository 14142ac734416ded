//! Test-only: a classic pcap writer for the wire-format tests that hand what
//! we emit to tshark. A copy of `pmip_tests::packet::pcap_file`, kept here
//! because pmip-user's own unit tests cannot depend on the tests crate.

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
