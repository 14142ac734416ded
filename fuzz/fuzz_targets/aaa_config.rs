//! Arbitrary text as an `[aaa]` section: parse + check must never panic, and no error
//! message may carry a secret that parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::aaa::AaaConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = AaaConfig::from_toml_str(text) {
            let _ = format!("{c:?}");
        }
    }
});
