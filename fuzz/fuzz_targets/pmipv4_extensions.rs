//! Extension walker and typed extension parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv4::wire::{ext, ExtRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = ext::parse_all(data, 0) {
        let mut b = vec![0u8; ext::buffer_len(&v)];
        ext::emit_all(&v, &mut b);
        assert_eq!(ext::parse_all(&b, 0).unwrap(), v);
        let _ = v.iter().any(ExtRepr::is_unknown_nonskippable);
    }
});
