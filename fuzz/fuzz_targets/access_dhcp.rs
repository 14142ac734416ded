//! Feeds arbitrary bytes to the access-side DHCP server, before and after a
//! binding exists, and runs its timers: it must never panic.
#![no_main]
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pmip_user::access::dhcp::{decode, BindingInfo, DhcpServer, DhcpServerConfig};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let now = Instant::now();
    let mut s = DhcpServer::new(DhcpServerConfig::new(1, 0, Ipv4Addr::new(192, 0, 2, 254)));
    let _ = s.handle(now, data);
    while s.poll_event().is_some() {}
    // Answer whatever registered, then replay the input against the bound client.
    for mac in s.clients().copied().collect::<Vec<_>>() {
        s.binding_ready(
            now,
            mac,
            BindingInfo {
                home: Ipv4Addr::new(192, 0, 2, 1),
                prefix_len: 24,
                router: Ipv4Addr::new(192, 0, 2, 254),
                lifetime: Duration::from_secs(60),
                dns: vec![],
                mtu: Some(1476),
            },
        );
    }
    let _ = s.handle(now, data);
    while s.poll_transmit().is_some() {}
    s.handle_timeout(now + Duration::from_secs(3600));
});
