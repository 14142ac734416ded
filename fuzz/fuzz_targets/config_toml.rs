//! Arbitrary text as a pmipd config: parse + validate must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml_str(text);
    }
});
