//! The anchor cluster's heartbeat datagrams (versions 1, 2 and 3): whatever
//! decodes encodes back (version 3) to the same bytes, unknown flag bits
//! aside, and decodes again to the same fields; a heartbeat from a stranger
//! or from a member's name at another address neither adds a peer nor marks
//! a member alive; and what the member's own heartbeat says decides whether
//! anyone could take an address over (`Detector::quiet`).
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pmip_user::cluster::heartbeat::{decode, encode, Detector, Quiet};

/// Offset of the flags octet in a version 3 heartbeat (magic 5, lease 8).
const FLAGS_AT: usize = 13;
/// The one flag defined (the sender's etcd works); others are ignored.
const F_ETCD: u8 = 0x01;

fuzz_target!(|data: &[u8]| {
    let Some(b) = decode(data) else {
        return;
    };
    let again = encode(&b);
    assert_eq!(decode(&again), Some(b));
    if data.get(4) == Some(&3) {
        let mut canonical = data.to_vec();
        canonical[FLAGS_AT] &= F_ETCD;
        assert_eq!(&again[..], &canonical[..], "version 3 is canonical");
    }

    let t0 = Instant::now();
    let member_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 5400);
    let mut d = Detector::new(Duration::from_millis(100), 3);
    d.set_members(t0, &[("a2".to_string(), member_addr)]);
    let later = t0 + Duration::from_secs(1);
    // From an address that is not a2's: whoever it claims to be, a2 stays
    // silent and no peer is added.
    d.heard(later, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), &b);
    assert_eq!(d.targets(), vec![member_addr]);
    assert_eq!(d.newly_dead(later), vec!["a2".to_string()]);
    // From a2's address under its own name it is alive again, and its word
    // decides: no etcd → nobody can take over; etcd that it renewed before
    // our keepalives went unanswered (`since` = now) → pending; else → it may.
    d.heard(later, member_addr.ip(), &b);
    let want = if b.name != "a2" {
        Quiet::No
    } else if !b.etcd_works {
        Quiet::Yes
    } else {
        match b.renewed_ago {
            Some(r) if !r.is_zero() && later.checked_sub(r).is_some() => Quiet::Pending,
            _ => Quiet::No,
        }
    };
    assert_eq!(d.quiet(later, Some(later)), want);
});
