//! The stores' binding records (`store::record::decode`): the JSON of
//! version 1 and the compact anchor record of version 2. Whatever decodes
//! is stored again (`encode_compact`) and decodes to the same record; a
//! compact record that decodes is canonical (stored again, the same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::store::record::{decode, encode, encode_compact};
use pmip_user::store::Record;

/// First byte of a compact anchor record (store/compact.rs).
const COMPACT: u8 = 0xB2;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = decode(data) else {
        return;
    };
    let stored = encode_compact(&r);
    assert_eq!(decode(&stored), Ok(r.clone()));
    assert_eq!(decode(&encode(&r)), Ok(r.clone()));
    if data.first() == Some(&COMPACT) {
        assert!(matches!(r, Record::Anchor(_)));
        assert_eq!(&stored[..], data, "the compact form is canonical");
    }
});
