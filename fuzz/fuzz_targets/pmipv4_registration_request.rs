//! Registration Request parser: never panics, and what parses re-emits identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv4::{auth, wire::*};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RegistrationRequest::new_checked(data) {
        let _ = (
            p.flags(),
            p.lifetime(),
            p.home_address(),
            p.identification(),
        );
        for e in p.extensions() {
            let _ = e.map(|r| ExtRepr::parse(&r));
        }
        if let Ok(r) = RegistrationRequestRepr::parse(&p) {
            // Reserved bits are not kept, so compare re-parsed values, not bytes.
            let b = r.to_bytes();
            assert_eq!(
                RegistrationRequestRepr::parse(&RegistrationRequest::new_checked(&b[..]).unwrap())
                    .unwrap(),
                r
            );
        }
    }
    let sa = auth::SecurityAssociation::new(256, b"k", auth::Algorithm::HmacMd5);
    let _ = auth::verify(data, AuthKind::FaHa, |_| Some(&sa));
});
