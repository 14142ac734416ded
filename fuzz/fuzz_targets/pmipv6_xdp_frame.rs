//! An Ethernet frame from the anchor's AF_XDP signaling socket (what the
//! fast path redirected, or anything a bug there let through): never a
//! panic; what comes out is inside the frame, after the IPv6 header, from
//! a source the kernel would have delivered, and goes on to the Mobility
//! Header parser with its checksum checked.
#![no_main]
use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv6::transport::mobility_header;
use pmip_user::pmipv6::wire::{Checksum, Message};

const LOCAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

fuzz_target!(|data: &[u8]| {
    if let Some((src, r)) = mobility_header(data, &LOCAL) {
        assert!(r.start == 54 && r.end <= data.len() && r.start < r.end);
        assert!(!src.is_multicast() && !src.is_loopback() && !src.is_unspecified());
        let _ = Message::parse(&data[r], Checksum::Ipv6 { src, dst: LOCAL });
    }
});
