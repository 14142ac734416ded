//! RADIUS packet parser: any bytes. What parses re-emits to the same bytes; vendor
//! attributes, authenticator checks, the profile reader and password unhiding never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::aaa::wire::{auth, Packet, PacketRepr};
use pmip_user::aaa::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let r = PacketRepr::parse(&p).expect("a checked packet parses");
    assert_eq!(r.to_bytes().expect("re-emits"), p.bytes());
    for a in p.attributes().flatten() {
        if let Some((_, subs)) = a.vendor() {
            for s in subs.flatten() {
                let _ = (s.as_u32(), s.as_ipv4(), s.as_ipv6(), s.as_str());
            }
        }
        let _ = auth::unhide_password(a.value, b"secret", &[0; 16]);
    }
    let _ = auth::verify(data, b"secret", &[0; 16], true);
    let _ = Profile::from_accept(&p, true);
});
