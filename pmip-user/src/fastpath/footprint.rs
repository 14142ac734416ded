//! What the fast path's subscriber maps cost in kernel memory, known before
//! anything is loaded (so `pmipd run --check` can refuse a `max_subscribers`
//! the kernel cannot allocate, without root).
//!
//! An upper bound: every hash map counted full (element header, key and
//! value rounded to 8 bytes, plus its buckets), every array whole, and
//! `SUB_STATS` a row per CPU. The fixed-size maps (per-CPU caches,
//! interfaces, counters) are a few MiB and left out.
use std::mem::size_of;

use pmip_common::{
    maps, AccessDownlink, AccessKey, AccessSubscriber, AnchorDownlink, AnchorUplink,
    SubscriberStats,
};

use super::load::map_sizes;
use super::LoadOptions;

/// The kernel's hash element header (`struct htab_elem`, 64-bit) and bucket.
const HTAB_ELEM: u64 = 48;
const HTAB_BUCKET: u64 = 16;

fn up8(n: usize) -> u64 {
    (n as u64).div_ceil(8) * 8
}

fn array(entries: u32, value: usize) -> u64 {
    u64::from(entries) * up8(value)
}

fn hash(entries: u32, key: usize, value: usize) -> u64 {
    let e = u64::from(entries);
    e * (HTAB_ELEM + up8(key) + up8(value)) + e.next_power_of_two() * HTAB_BUCKET
}

/// Bytes of kernel memory the subscriber maps take at most, for `opts` on
/// a host with `cpus` CPUs.
pub fn footprint(opts: &LoadOptions, cpus: u32) -> u64 {
    let (sizes, _) = map_sizes(opts);
    let mut total = array(
        opts.max_subscribers.saturating_mul(cpus.max(1)),
        size_of::<SubscriberStats>(),
    );
    for (name, n) in sizes {
        total += match name {
            maps::ANCHOR_BY_POOL4 | maps::ANCHOR_BY_POOL6 => array(n, size_of::<AnchorDownlink>()),
            maps::ACCESS_BY_MAC => hash(n, size_of::<AccessKey>(), size_of::<AccessSubscriber>()),
            maps::ACCESS_BY_KEY => array(n, size_of::<AccessDownlink>()),
            maps::ACCESS_BY_KEY_HIGH => hash(n, 4, size_of::<AccessDownlink>()),
            maps::ANCHOR_BY_HOME4 => hash(n, 4, size_of::<AnchorDownlink>()),
            maps::ANCHOR_BY_HNP => hash(n, 8, size_of::<AnchorDownlink>()),
            maps::ANCHOR_BY_KEY => array(n, size_of::<AnchorUplink>()),
            maps::ANCHOR_BY_KEY_HIGH => hash(n, 4, size_of::<AnchorUplink>()),
            _ => 0,
        };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastpath::GatewayRole;

    #[test]
    fn grows_with_the_table_and_the_cpus() {
        let opts = |n, role| LoadOptions {
            max_subscribers: n,
            role: Some(role),
            ..LoadOptions::default()
        };
        let a = footprint(&opts(65_536, GatewayRole::Access), 2);
        // The access role's maps: about 100 bytes per subscriber and CPU row.
        assert!(a > 65_536 * 100 && a < 65_536 * 400, "{a}");
        assert!(footprint(&opts(65_536, GatewayRole::Access), 64) > a);
        let big = footprint(&opts(1 << 30, GatewayRole::Anchor), 2);
        assert!(big > 100 << 30, "{big}");
    }
}
