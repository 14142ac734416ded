//! Mobility Header parser: any bytes, with and without checksum verification;
//! whatever parses and re-emits must parse back to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv6::wire::{Checksum, Message};

fuzz_target!(|data: &[u8]| {
    let ck = Checksum::Ipv6 {
        src: "2001:db8::1".parse().unwrap(),
        dst: "2001:db8::2".parse().unwrap(),
    };
    let _ = Message::parse(data, ck);
    if let Ok(m) = Message::parse(data, Checksum::None) {
        // Re-emitting may add alignment padding and exceed 2048 octets; otherwise
        // it must round-trip.
        if let Ok(bytes) = m.to_vec(ck) {
            assert_eq!(
                Message::parse(&bytes, ck).expect("re-emitted message parses"),
                m
            );
        }
    }
});
