//! Look up the next hop: `bpf_fib_lookup`, the kernel's routing table and
//! neighbour cache as the fast path asks them (the per-CPU caches of its
//! answers are in maps.rs).
use aya_ebpf::{
    bindings::bpf_fib_lookup as FibParams, helpers::generated::bpf_fib_lookup, EbpfContext,
};
use pmip_common::FAMILY_V4;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `bpf_fib_lookup` results (include/uapi/linux/bpf.h, BPF_FIB_LKUP_RET_*).
pub(crate) const FIB_SUCCESS: i64 = 0;
pub(crate) const FIB_NOT_FWDED: i64 = 4;
pub(crate) const FIB_FWD_DISABLED: i64 = 5;
pub(crate) const FIB_NO_NEIGH: i64 = 7;
pub(crate) const FIB_FRAG_NEEDED: i64 = 8;
/// Look up as if the packet were sent from the interface (TC egress).
pub(crate) const BPF_FIB_LOOKUP_OUTPUT: u32 = 2;

/// The FIB's answer: `rc` (FIB_*), and on success the egress interface and
/// the MACs; with FRAG_NEEDED, the egress MTU. `repr(C)`: the MACs sit at
/// even offsets (12, 18), so they are read in 16-bit words (`mac_words`).
#[repr(C)]
pub(crate) struct NextHop {
    pub(crate) rc: i64,
    pub(crate) ifindex: u32,
    pub(crate) smac: [u8; 6],
    pub(crate) dmac: [u8; 6],
    pub(crate) mtu: u16,
}

/// `bpf_fib_lookup` for a packet of `tot_len` bytes from `src` to `dst`; with
/// tot_len set the kernel also checks the egress MTU (FRAG_NEEDED + mtu).
#[inline(always)]
pub(crate) fn fib(
    ctx: &impl EbpfContext,
    ifindex: u32,
    family: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
    tot_len: u16,
) -> NextHop {
    fib_flags(ctx, ifindex, family, src, dst, tot_len, 0)
}

#[inline(always)]
pub(crate) fn fib_flags(
    ctx: &impl EbpfContext,
    ifindex: u32,
    family: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
    tot_len: u16,
    flags: u32,
) -> NextHop {
    // SAFETY: FibParams is plain old data; all-zero is a valid value.
    let mut p: FibParams = unsafe { core::mem::zeroed() };
    p.ifindex = ifindex;
    p.__bindgen_anon_1.tot_len = tot_len;
    if family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([src[0], src[1], src[2], src[3]]);
        p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([dst[0], dst[1], dst[2], dst[3]]);
    } else {
        p.family = AF_INET6;
        // SAFETY: [u8; 16] and [u32; 4] have the same size; byte order is kept.
        p.__bindgen_anon_3.ipv6_src = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*src) };
        p.__bindgen_anon_4.ipv6_dst = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*dst) };
    }
    // SAFETY: helper call with a valid context and a params struct of the right size.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &mut p,
            core::mem::size_of::<FibParams>() as i32,
            flags,
        )
    };
    NextHop {
        rc,
        ifindex: p.ifindex,
        smac: p.smac,
        dmac: p.dmac,
        // SAFETY: union read of a u16 field.
        mtu: unsafe { p.__bindgen_anon_1.mtu_result },
    }
}
