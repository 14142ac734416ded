//! Feeds arbitrary bytes to the IPv6 frame parser, the ND codec and the RA
//! engine (unknown node, then an advertised one, then its timers): nothing
//! may panic, and whatever parses must emit and parse back the same.
#![no_main]
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pmip_user::access::detach::DetachConfig;
use pmip_user::access::frame6::{fill_offloaded_checksum, parse_frame};
use pmip_user::access::nd::{validate, NdPacket, NdRepr};
use pmip_user::access::ra::{Advertisement, RaConfig, RaEngine};
use pmip_user::dataplane::Hnp;

fuzz_target!(|data: &[u8]| {
    let _ = parse_frame(data);
    fill_offloaded_checksum(&mut data.to_vec());
    // The bytes as a bare ICMPv6 message.
    if let Ok(p) = NdPacket::new_checked(data) {
        for _ in p.options() {}
        if let Ok(r) = NdRepr::parse(&p) {
            let _ = validate(&r, Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, 255);
            let b = r.to_bytes(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
            let back = NdRepr::parse(&NdPacket::new_checked(&b[..]).expect("own emit"));
            assert_eq!(back.as_ref(), Ok(&r));
        }
    }
    let mut cfg = RaConfig::new(1, 0, [2, 0, 0, 0, 0, 0xfe]);
    cfg.probing = Some(DetachConfig::default());
    let mut e = RaEngine::new(cfg);
    let now = Instant::now();
    let _ = e.handle(now, data);
    let mac = data.get(6..12).and_then(|m| <[u8; 6]>::try_from(m).ok());
    if let Some(mac) = mac {
        let hnp = Hnp {
            prefix: "2001:db8::".parse().unwrap(),
            len: 64,
        };
        e.advertise(now, mac, Advertisement::slaac(hnp, Duration::from_secs(60)));
        let _ = e.handle(now, data);
    }
    e.handle_timeout(now + Duration::from_secs(30));
    e.handle_timeout(now + Duration::from_secs(120));
    while e.poll_transmit().is_some() {}
    while e.poll_event().is_some() {}
});
