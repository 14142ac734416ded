//! Mobility option TLV iterator and typed option parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pmip_user::pmipv6::wire::{MobilityOption, OptionIter};

fuzz_target!(|data: &[u8]| {
    for raw in OptionIter::new(data) {
        match raw {
            Ok(raw) => {
                let _ = MobilityOption::parse(raw);
            }
            Err(_) => break,
        }
    }
});
