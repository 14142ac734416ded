//! Parse: the frame's L2 header as received, and the subscriber's IP
//! packet inside the frame or the tunnel — what the paths look up by.
use pmip_common::{FAMILY_V4, FAMILY_V6, IPV6_HDR_LEN};

use crate::ctx::Pkt;
use crate::hdr::{
    be16, load_u16, load_u32, load_u64, ptr_at, read_at, EthHdr, Ipv4Hdr, Ipv6Hdr, VlanHdr,
    ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, VLAN_HLEN,
};

/// Ethernet (with at most one 802.1Q tag) as received.
// Aligned, with the header first: parse_l2 fills it with three word stores
// and readers of its MACs get aligned loads (a byte array copied without
// known alignment is a byte-by-byte copy in BPF).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct L2 {
    pub(crate) eth: EthHdr,
    pub(crate) vlan: u16,
    /// Bytes before the L3 header: 14, or 18 with a VLAN tag.
    pub(crate) len: usize,
    pub(crate) proto: u16,
}

/// A GRE packet from a tunnel peer once its header checked out
/// (dispatch::gre_in): the outer family and source, the key, and where the
/// inner packet starts and what it is.
#[derive(Clone, Copy)]
pub(crate) struct GreIn<'a> {
    pub(crate) family: u8,
    pub(crate) src: &'a Addr,
    pub(crate) key: [u8; 4],
    pub(crate) inner_off: usize,
    pub(crate) ethertype: u16,
}

#[inline(always)]
pub(crate) fn parse_l2(ctx: &impl Pkt) -> Option<L2> {
    let p = ctx.data();
    if p + ETH_HLEN > ctx.data_end() {
        return None;
    }
    // SAFETY: p .. p + 14 is inside the packet (checked above).
    let (dst_src, src_tail, ty) =
        unsafe { (load_u64::<0>(p), load_u32::<8>(p), load_u16::<12>(p)) };
    let mut l2 = L2 {
        eth: EthHdr {
            dst: [0; 6],
            src: [0; 6],
            proto: [0; 2],
        },
        vlan: ctx.meta_vlan(),
        len: ETH_HLEN,
        proto: u16::from_be(ty),
    };
    // SAFETY: `eth` is the first 14 bytes of the 8-byte aligned L2.
    unsafe {
        let e = &mut l2.eth as *mut EthHdr;
        *(e as *mut u64) = dst_src;
        *(e as *mut u32).add(2) = src_tail;
        *(e as *mut u16).add(6) = ty;
    }
    if l2.proto == ETH_P_8021Q || l2.proto == ETH_P_8021AD {
        let v: VlanHdr = read_at(ctx, ETH_HLEN)?;
        l2.vlan = be16(v.tci) & 0x0fff;
        l2.len = ETH_HLEN + VLAN_HLEN;
        l2.proto = be16(v.proto);
    }
    // Untagged: at TC ingress the kernel has moved an 802.1Q tag into
    // metadata (meta_vlan, 0 in XDP).
    Some(l2)
}

/// A 16-byte address (IPv4 in the first 4), 4-byte aligned so that the
/// compiler copies, zeroes and compares it in words, not bytes.
#[repr(C, align(4))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addr(pub(crate) [u8; 16]);

impl core::ops::Deref for Addr {
    type Target = [u8; 16];
    #[inline(always)]
    fn deref(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Addr {
    #[inline(always)]
    pub(crate) fn from_words(w: [u32; 4]) -> Addr {
        // SAFETY: 16 plain bytes.
        Addr(unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) })
    }
    #[inline(always)]
    pub(crate) fn words(&self) -> [u32; 4] {
        // SAFETY: 16 plain bytes, 4-byte aligned.
        unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(self.0) }
    }
}

/// What the paths need to know about the subscriber's IP packet.
#[derive(Clone, Copy)]
pub(crate) struct Inner {
    pub(crate) family: u8,
    /// Total length of the inner IP packet (header + payload).
    pub(crate) len: u16,
    pub(crate) ttl: u8,
    /// DF set (always for IPv6: routers never fragment it).
    pub(crate) df: bool,
    pub(crate) src: Addr,
    pub(crate) dst: Addr,
    /// Inner IPv4 protocol / IPv6 next header.
    pub(crate) proto: u8,
    /// Offset of the transport header (IPv4 only; used to spot DHCP).
    pub(crate) l4_off: usize,
    /// Packet address of the IP header, its fixed part checked to be in the
    /// packet: valid until the packet is resized (`tunnel::dec_ttl` writes
    /// through it without a second bounds check).
    pub(crate) hdr: usize,
}

#[inline(always)]
pub(crate) fn parse_inner(ctx: &impl Pkt, off: usize, ethertype: u16) -> Option<Inner> {
    // The IP length may not claim more than the frame holds (Ethernet padding
    // may make the frame longer; that is fine).
    let avail = ctx.len();
    if ethertype == ETH_P_IP {
        // SAFETY: as above.
        let ip: &Ipv4Hdr = unsafe { &*ptr_at::<Ipv4Hdr>(ctx, off)? };
        let p = ip as *const Ipv4Hdr as usize;
        // Multi-byte fields in word loads (be16 of a byte array is two byte
        // loads and a shift). SAFETY: p .. p + 20 is inside the packet.
        let (len, frag, src, dst) = unsafe {
            (
                u16::from_be(load_u16::<2>(p)),
                u16::from_be(load_u16::<6>(p)),
                load_u32::<12>(p),
                load_u32::<16>(p),
            )
        };
        let ihl = (ip.ver_ihl & 0x0f) as usize;
        if ip.ver_ihl >> 4 != 4 || ihl < 5 || (len as usize) < ihl * 4 || off + len as usize > avail
        {
            return None;
        }
        Some(Inner {
            family: FAMILY_V4,
            len,
            ttl: ip.ttl,
            df: frag & 0x4000 != 0,
            src: Addr::from_words([src, 0, 0, 0]),
            dst: Addr::from_words([dst, 0, 0, 0]),
            proto: ip.proto,
            l4_off: off + ihl * 4,
            hdr: p,
        })
    } else if ethertype == ETH_P_IPV6 {
        // SAFETY: bounds checked by ptr_at; fields are copied out before any resize.
        let ip: &Ipv6Hdr = unsafe { &*ptr_at::<Ipv6Hdr>(ctx, off)? };
        // SAFETY: the header is inside the packet (ptr_at checked it).
        let payload = u16::from_be(unsafe { load_u16::<4>(ip as *const Ipv6Hdr as usize) });
        let len = payload.checked_add(IPV6_HDR_LEN as u16)?;
        if ip.ver_tc_flow[0] >> 4 != 6 || off + len as usize > avail {
            return None;
        }
        Some(Inner {
            family: FAMILY_V6,
            len,
            ttl: ip.hop_limit,
            df: true,
            src: load_addr(ip as *const Ipv6Hdr as usize + 8),
            dst: load_addr(ip as *const Ipv6Hdr as usize + 24),
            proto: ip.next_hdr,
            l4_off: off + IPV6_HDR_LEN,
            hdr: ip as *const Ipv6Hdr as usize,
        })
    } else {
        None
    }
}

/// The 16-byte address at packet address `p`, in four word loads (copying
/// the byte array would be a call to a byte-loop memmove).
#[inline(always)]
pub(crate) fn load_addr(p: usize) -> Addr {
    // SAFETY: callers pass an address field of a header ptr_at checked.
    unsafe {
        Addr::from_words([
            load_u32::<0>(p),
            load_u32::<4>(p),
            load_u32::<8>(p),
            load_u32::<12>(p),
        ])
    }
}
