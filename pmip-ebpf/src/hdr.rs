//! Packet headers as the fast path reads and writes them, and the one
//! bounds-checked accessor every read and write goes through.
use pmip_common::FAMILY_V6;

use crate::ctx::Pkt;

pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 Mobility Header (RFC 6275 §6.1).
pub const IPPROTO_MH: u8 = 135;

/// GRE flag bits (RFC 2784/2890), first 16 bits of the header in host order.
pub const GRE_C: u16 = 0x8000;
pub const GRE_R: u16 = 0x4000;
pub const GRE_K: u16 = 0x2000;
pub const GRE_S: u16 = 0x1000;
pub const GRE_VER_MASK: u16 = 0x0007;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub proto: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    pub ver_tc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// GRE header with the Key field (the only form the tunnels use).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GreKeyHdr {
    pub flags: [u8; 2],
    pub proto: [u8; 2],
    pub key: [u8; 4],
}

/// ARP for IPv4 over Ethernet (RFC 826).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ArpEthIp {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub op: [u8; 2],
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// ICMP / ICMPv6 error header (type, code, checksum, 4 bytes of rest).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IcmpHdr {
    pub ty: u8,
    pub code: u8,
    pub check: [u8; 2],
    pub rest: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpHdr {
    pub src: [u8; 2],
    pub dst: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

#[inline(always)]
pub fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// The EtherType of an IP packet of `family` (FAMILY_V4 / FAMILY_V6).
#[inline(always)]
pub fn ethertype_of(family: u8) -> u16 {
    if family == FAMILY_V6 {
        ETH_P_IPV6
    } else {
        ETH_P_IP
    }
}

/// The only pointer arithmetic on packet data: a `T` at `off`, if it fits.
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl Pkt, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

/// Copy of the `T` at `off`.
#[inline(always)]
pub fn read_at<T: Copy>(ctx: &impl Pkt, off: usize) -> Option<T> {
    // SAFETY: ptr_at checked that size_of::<T>() bytes at off are inside the packet.
    ptr_at::<T>(ctx, off).map(|p| unsafe { core::ptr::read_unaligned(p) })
}

/// Writes `v` at `off`; false if it does not fit.
#[inline(always)]
pub fn write_at<T: Copy>(ctx: &impl Pkt, off: usize, v: T) -> bool {
    match ptr_at::<T>(ctx, off) {
        // SAFETY: bounds checked above.
        Some(p) => {
            unsafe { core::ptr::write_unaligned(p, v) };
            true
        }
        None => false,
    }
}

/// Stores a word at packet address `p + O` in one instruction. Packet data
/// has no alignment the compiler could rely on, so the BPF backend would
/// split an unaligned `write_unaligned` into byte stores (and a misaligned
/// `ptr::write` is undefined behaviour); the instruction itself is fine:
/// the JITs of the hosts we run on store unaligned words, and the verifier
/// allows unaligned packet access there. Only for packet pointers whose
/// bounds the caller checked (stack accesses must stay aligned). The offset
/// is the instruction's immediate: `p + O` costs no instruction of its own.
macro_rules! store_fn {
    ($name:ident, $t:ty, $w:literal) => {
        /// See [`store_u64`].
        #[inline(always)]
        pub unsafe fn $name<const O: i16>(p: usize, v: $t) {
            // SAFETY: the caller checked p + O .. + size_of::<$t>() is inside the packet.
            unsafe {
                core::arch::asm!(concat!("*(", $w, " *)({p} + {o}) = {v}"), p = in(reg) p, v = in(reg) v as u64,
                    o = const O, options(nostack, preserves_flags))
            };
        }
    };
}
store_fn!(store_u64, u64, "u64");
store_fn!(store_u32, u32, "u32");
store_fn!(store_u16, u16, "u16");

/// Loads a word (in memory order) from address `p + O` in one instruction;
/// the load counterpart of [`store_u64`] (a `read_unaligned` becomes byte
/// loads and shifts). For packet data whose bounds the caller checked, and
/// for fields of map values at any offset (the verifier checks those).
macro_rules! load_fn {
    ($name:ident, $t:ty, $w:literal) => {
        /// See the `load_fn` macro: one load instruction.
        #[inline(always)]
        pub unsafe fn $name<const O: i16>(p: usize) -> $t {
            let v: u64;
            // SAFETY: the caller checked p + O .. + size_of::<$t>() is readable.
            unsafe {
                core::arch::asm!(concat!("{v} = *(", $w, " *)({p} + {o})"), p = in(reg) p, v = lateout(reg) v,
                    o = const O, options(nostack, preserves_flags, readonly, pure))
            };
            v as $t
        }
    };
}
load_fn!(load_u64, u64, "u64");
load_fn!(load_u32, u32, "u32");
load_fn!(load_u16, u16, "u16");

/// `*p += v` as one atomic instruction (BPF_ATOMIC | BPF_ADD, `lock xadd`
/// on x86): core's atomics have no read-modify-write for the BPF target.
///
/// # Safety
/// `p` is an 8-byte aligned word of a map value.
#[inline(always)]
pub unsafe fn atomic_add_u64(p: *mut u64, v: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("lock *(u64 *)({p} + 0) += {v}", p = in(reg) p, v = in(reg) v,
            options(nostack, preserves_flags))
    };
}

/// Byte-array equality in word compares. `==` on byte arrays or slices
/// becomes a call to a byte-by-byte `memcmp` in BPF; on the hot paths those
/// calls measured 30–50 ns per packet (`cargo xtask bench per-packet`).
///
/// The words are built from bytes: LLVM turns them into word loads when it
/// knows the arrays are 4-byte aligned (the map value types are, see
/// pmip-common; `Addr` is), else into byte loads — so packet bytes are read
/// with [`load_u32`] into an `Addr` first, never compared in place.
#[inline(always)]
pub fn eq4(a: &[u8; 4], b: &[u8; 4]) -> bool {
    u32::from_ne_bytes(*a) == u32::from_ne_bytes(*b)
}

/// See [`eq4`].
// For byte arrays of unknown alignment (the hot paths use word4/words8/words16).
#[allow(dead_code)]
#[inline(always)]
pub fn eq8(a: &[u8; 8], b: &[u8; 8]) -> bool {
    let w = |x: &[u8; 8], i: usize| u32::from_ne_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]);
    w(a, 0) == w(b, 0) && w(a, 4) == w(b, 4)
}

/// See [`eq4`].
// For byte arrays of unknown alignment (the hot paths use word4/words8/words16).
#[allow(dead_code)]
#[inline(always)]
pub fn eq16(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let w = |x: &[u8; 16], i: usize| u32::from_ne_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]);
    (w(a, 0) ^ w(b, 0)) | (w(a, 4) ^ w(b, 4)) | (w(a, 8) ^ w(b, 8)) | (w(a, 12) ^ w(b, 12)) == 0
}

/// The 4 bytes at `a` as one native-order word, in one load (building the
/// word from bytes is four byte loads: LLVM's BPF backend does not merge
/// them even when it knows the alignment).
///
/// # Safety
/// `a` is 4-byte aligned: a field at a 4-aligned offset of a map value type
/// of pmip-common (they are 4-byte aligned), or of an `Addr`.
#[inline(always)]
pub unsafe fn word4(a: &[u8; 4]) -> u32 {
    // SAFETY: aligned, per the caller.
    unsafe { *(a as *const [u8; 4] as *const u32) }
}

/// The 8 bytes at `a` as two words. # Safety: as [`word4`].
#[inline(always)]
pub unsafe fn words8(a: &[u8; 8]) -> [u32; 2] {
    // SAFETY: aligned, per the caller.
    unsafe { *(a as *const [u8; 8] as *const [u32; 2]) }
}

/// The 16 bytes at `a` as four words. # Safety: as [`word4`].
#[inline(always)]
pub unsafe fn words16(a: &[u8; 16]) -> [u32; 4] {
    // SAFETY: aligned, per the caller.
    unsafe { *(a as *const [u8; 16] as *const [u32; 4]) }
}

/// A MAC address as three 16-bit words (memory order).
///
/// # Safety
/// `m` is 2-byte aligned: a MAC field of a map value, of `L2`, or of the
/// `bpf_fib_lookup` parameters (all at even offsets of aligned structs).
#[inline(always)]
pub unsafe fn mac_words(m: &[u8; 6]) -> [u16; 3] {
    // SAFETY: aligned, per the caller.
    unsafe { *(m as *const [u8; 6] as *const [u16; 3]) }
}

/// The first 4 bytes of an address (IPv4 in a 16-byte slot).
// For byte arrays of unknown alignment (the hot paths use word4/words8/words16).
#[allow(dead_code)]
#[inline(always)]
pub fn head4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// The first 8 bytes (an IPv6 /64 prefix).
// For byte arrays of unknown alignment (the hot paths use word4/words8/words16).
#[allow(dead_code)]
#[inline(always)]
pub fn head8(a: &[u8; 16]) -> [u8; 8] {
    [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]
}

/// One's-complement fold of a 32-bit partial sum to the 16-bit checksum.
#[inline(always)]
pub fn csum_fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// IPv4 header checksum of a 20-byte header (options are never emitted).
#[inline(always)]
pub fn ipv4_csum(h: &Ipv4Hdr) -> [u8; 2] {
    // SAFETY: Ipv4Hdr is 20 plain bytes.
    let b: &[u8; 20] = unsafe { &*(h as *const Ipv4Hdr as *const [u8; 20]) };
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < 20 {
        if i != 10 {
            sum += u16::from_be_bytes([b[i], b[i + 1]]) as u64;
        }
        i += 2;
    }
    csum_fold(sum).to_be_bytes()
}
