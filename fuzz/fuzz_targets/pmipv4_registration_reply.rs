//! Registration Reply parser: never panics, and what parses re-emits identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv4::wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RegistrationReply::new_checked(data) {
        let _ = (p.code(), p.lifetime(), p.home_address(), p.identification());
        if let Ok(r) = RegistrationReplyRepr::parse(&p) {
            let b = r.to_bytes();
            assert_eq!(
                RegistrationReplyRepr::parse(&RegistrationReply::new_checked(&b[..]).unwrap())
                    .unwrap(),
                r
            );
        }
    }
});
