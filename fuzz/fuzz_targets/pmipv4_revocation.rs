//! Registration Revocation and Acknowledgement parsers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv4::wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Revocation::new_checked(data) {
        if let Ok(r) = RevocationRepr::parse(&p) {
            let b = r.to_bytes();
            assert_eq!(
                RevocationRepr::parse(&Revocation::new_checked(&b[..]).unwrap()).unwrap(),
                r
            );
        }
    }
    if let Ok(p) = RevocationAck::new_checked(data) {
        if let Ok(r) = RevocationAckRepr::parse(&p) {
            let b = r.to_bytes();
            assert_eq!(
                RevocationAckRepr::parse(&RevocationAck::new_checked(&b[..]).unwrap()).unwrap(),
                r
            );
        }
    }
    let _ = Message::parse(data);
});
