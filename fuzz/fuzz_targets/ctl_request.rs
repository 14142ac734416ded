//! Arbitrary bytes as a pmipctl request line: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::ctl::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Request>(data);
    let _ = serde_json::from_slice::<Response>(data);
});
