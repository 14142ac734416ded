//! A pack of binding records (`store::pack::parse`, the etcd store's packed
//! layout): whatever parses is packed again and parses to the same entries;
//! a pack that parses is canonical when its records are compact (packed
//! again, the same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::store::pack::{entry_bytes, pack, parse, resolve};

fuzz_target!(|data: &[u8]| {
    // A scan never panics on it either, whatever key it sits under.
    let _ = resolve([("pack/0000000060000/a1/00000000000000000001", data, 1)]);
    let _ = resolve([("lma/1", data, 1)]);
    let Ok(entries) = parse(data) else {
        return;
    };
    let encoded: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| entry_bytes(e).expect("a parsed entry fits a pack"))
        .collect();
    let mut again = Vec::new();
    for (b, _) in pack(&encoded) {
        again.extend(parse(&b).expect("a pack written parses"));
    }
    assert_eq!(again, entries);
});
