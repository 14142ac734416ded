//! A pack of binding records (`store::pack::parse`, the etcd store's packed
//! layout): never a panic, whatever the bytes; whatever parses is packed
//! again and parses to the same entries.
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
    // A record written again may not fit a pack (a JSON record near the
    // bound whose defaults are written out): then the store gives it a key.
    let Some(encoded) = entries.iter().map(entry_bytes).collect::<Option<Vec<_>>>() else {
        return;
    };
    let mut again = Vec::new();
    for (b, _) in pack(&encoded) {
        again.extend(parse(&b).expect("a pack written parses"));
    }
    assert_eq!(again, entries);
});
