//! ARP and Ethernet/IPv4/UDP frame parsers of the access side: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::access::frame::{parse_udp_frame, ArpRepr};

fuzz_target!(|data: &[u8]| {
    let _ = ArpRepr::from_frame(data);
    let _ = parse_udp_frame(data);
});
