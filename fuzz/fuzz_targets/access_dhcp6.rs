//! Feeds arbitrary bytes to the DHCPv6 server, before and after a binding
//! exists, and runs its timers: it must never panic.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pmip_user::access::dhcp6::{decode, Binding6, Dhcp6Server, Dhcp6ServerConfig, Peer};
use pmip_user::dataplane::Hnp;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let now = Instant::now();
    let peer = Peer {
        mac: [2, 0, 0, 0, 0, 1],
        addr: "fe80::1".parse().unwrap(),
    };
    let mut s = Dhcp6Server::new(Dhcp6ServerConfig::new(1, 0, [2, 0, 0, 0, 0, 0xfe]));
    let _ = s.handle(now, peer, data);
    while s.poll_event().is_some() {}
    let hnp = Hnp {
        prefix: "2001:db8::".parse().unwrap(),
        len: 64,
    };
    s.binding_ready(
        now,
        peer.mac,
        Binding6::new(hnp, Duration::from_secs(60), vec![]),
    );
    let _ = s.handle(now, peer, data);
    while s.poll_transmit().is_some() {}
    s.handle_timeout(now + Duration::from_secs(3600));
});
