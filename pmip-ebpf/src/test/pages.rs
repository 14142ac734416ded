//! Which pages a lookup in a large table pays for (issue 18, `pmip-bench
//! pages`; never attached by pmipd).
//!
//! The same 40-byte entries (the size of `ACCESS_BY_KEY`'s and
//! `ANCHOR_BY_KEY`'s), indexed by the low 20 bits of the IPv4 destination:
//! - `tg_pages_flat`: one array (`PAGES_FLAT`, sized by the bench). An array
//!   this large is vmalloc'ed: 4 KiB pages, so a random entry of a 1M table
//!   is a TLB miss as well as a cache miss.
//! - `tg_pages_split`: an array of 2048 arrays of 512 (`PAGES_SPLIT`). Each
//!   inner array is ~20 KiB, which the kernel allocates with kmalloc: in the
//!   direct map, whose pages are huge. One load more (the inner map), hot.
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array as BtfArray, ArrayOfMaps},
    macros::{btf_map, map, xdp},
    maps::Array,
    programs::XdpContext,
};

use crate::hdr::{ptr_at, Ipv4Hdr, ETH_HLEN};

/// Entries of an inner array of `PAGES_SPLIT` (log2).
pub const SPLIT_BITS: u32 = 9;

#[map]
static PAGES_FLAT: Array<[u64; 5]> = Array::with_max_entries(1, 0);

#[btf_map]
static PAGES_SPLIT: ArrayOfMaps<BtfArray<[u64; 5], 512>, 2048> = ArrayOfMaps::new();

#[inline(always)]
fn index(ctx: &XdpContext) -> Option<u32> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN)?;
    // SAFETY: bounds checked.
    let d = unsafe { (*ip).dst };
    Some(u32::from_be_bytes(d) & 0xf_ffff)
}

#[inline(always)]
fn verdict(v: Option<&[u64; 5]>) -> u32 {
    match v {
        // Read two words of the entry, as a hop reads its entry.
        Some(e) if e[0] != u64::MAX && e[3] != u64::MAX => xdp_action::XDP_PASS,
        Some(_) => xdp_action::XDP_DROP,
        None => xdp_action::XDP_ABORTED,
    }
}

#[xdp]
pub fn tg_pages_flat(ctx: XdpContext) -> u32 {
    let Some(i) = index(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    verdict(PAGES_FLAT.get(i))
}

#[xdp]
pub fn tg_pages_split(ctx: XdpContext) -> u32 {
    let Some(i) = index(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    verdict(PAGES_SPLIT.get_value(i >> SPLIT_BITS, &(i & ((1 << SPLIT_BITS) - 1))))
}
