//! The anti-replay window against a plain model (the set of accepted numbers
//! and the rule of RFC 4303 §3.4.3), for any sequence of 32-bit numbers and
//! any window size; with ESN the inferred 64-bit numbers must be accepted
//! at most once.
#![no_main]
use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use pmip_user::esp::ReplayWindow;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let size = u32::from(size) * 16;
    let mut w = ReplayWindow::new(size);
    let mut esn = ReplayWindow::new(size.max(32));
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut seen64: BTreeSet<u64> = BTreeSet::new();
    for c in rest.chunks_exact(4) {
        let s = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let top = seen.last().copied().unwrap_or(0);
        let fresh = s != 0 && (size == 0 || (!seen.contains(&s) && (s > top || top - s < size)));
        assert_eq!(
            w.check(s, false).is_ok(),
            fresh,
            "size {size} seq {s} top {top}"
        );
        if fresh {
            w.accept(u64::from(s));
            seen.insert(s);
        }
        if let Ok(q) = esn.check(s, true) {
            assert_eq!(q as u32, s);
            assert!(seen64.insert(q), "ESN {q:#x} accepted twice");
            esn.accept(q);
        }
    }
});
