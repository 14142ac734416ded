//! The anchor cluster's heartbeat datagrams (versions 1 and 2): whatever
//! decodes encodes back to the same bytes (version 2) and decodes again to
//! the same fields; and a heartbeat from a stranger or from a member's name
//! at another address neither adds a peer nor marks a member alive.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pmip_user::cluster::heartbeat::{decode, encode, Detector};

fuzz_target!(|data: &[u8]| {
    let Some((name, lease, works)) = decode(data) else {
        return;
    };
    let again = encode(name, lease, works);
    assert_eq!(decode(&again), Some((name, lease, works)));
    if data.get(4) == Some(&2) {
        assert_eq!(&again[..], data, "version 2 is canonical");
    }

    let t0 = Instant::now();
    let member_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 5400);
    let mut d = Detector::new(Duration::from_millis(100), 3);
    d.set_members(t0, &[("a2".to_string(), member_addr)]);
    let later = t0 + Duration::from_secs(1);
    // From an address that is not a2's: whoever it claims to be, a2 stays
    // silent and no peer is added.
    d.heard(
        later,
        name,
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        works,
    );
    assert_eq!(d.targets(), vec![member_addr]);
    assert_eq!(d.newly_dead(later), vec!["a2".to_string()]);
    // From a2's address under its own name it is alive again.
    d.heard(later, name, member_addr.ip(), works);
    let alive = name == "a2";
    assert_eq!(d.quiet(later), alive && !works);
});
