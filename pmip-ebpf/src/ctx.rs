//! What the paths need from the packet's context, for XDP and TC ingress.
//!
//! The paths (parse, look up, check, cache, count) are written once over
//! [`Pkt`]; only these operations differ between an `xdp_md` and an skb. The
//! XDP implementation is the code the paths used before they were shared:
//! every method is `#[inline(always)]` and constant where XDP has nothing to
//! do (no VLAN tag in metadata, no GSO), so the XDP instance compiles to the
//! same code as before, up to register allocation (`cargo xtask bench
//! per-packet` unchanged).
use aya_ebpf::{
    bindings::{__sk_buff, xdp_action, xdp_md},
    helpers::generated::{
        bpf_redirect, bpf_skb_adjust_room, bpf_skb_change_head, bpf_skb_change_tail,
        bpf_skb_pull_data, bpf_skb_vlan_pop, bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
    },
    macros::map,
    maps::XskMap,
    programs::{TcContext, XdpContext},
    EbpfContext,
};
use pmip_common::{FAMILY_V6, MH_QUEUES_PER_IFACE, MH_SOCKET_SLOTS};

use crate::hdr::ETH_HLEN;

/// TC verdicts (include/uapi/linux/pkt_cls.h).
pub(crate) const TC_ACT_OK: i32 = 0;
pub(crate) const TC_ACT_SHOT: i32 = 2;
/// `bpf_skb_adjust_room` mode and flags (include/uapi/linux/bpf.h).
pub(crate) const BPF_ADJ_ROOM_MAC: u32 = 1;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L3_IPV4: u64 = 2;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L3_IPV6: u64 = 4;
pub(crate) const BPF_F_ADJ_ROOM_ENCAP_L4_GRE: u64 = 8;
pub(crate) const BPF_F_ADJ_ROOM_DECAP_L3_IPV4: u64 = 1 << 7;
pub(crate) const BPF_F_ADJ_ROOM_DECAP_L3_IPV6: u64 = 1 << 8;

/// The anchor's AF_XDP signaling sockets by receive queue (pmip-common
/// `maps::MH_SOCKETS`): reached from XDP alone, so defined with its context.
#[map]
pub(crate) static MH_SOCKETS: XskMap = XskMap::with_max_entries(MH_SOCKET_SLOTS, 0);

pub(crate) trait Pkt: EbpfContext {
    /// The kernel's context struct (`xdp_md`, `__sk_buff`): what the
    /// non-inlined path functions take, one register.
    type Raw;
    /// Verdicts: hand to the stack, drop.
    const PASS: u32;
    const DROP: u32;

    fn from_raw(raw: *mut Self::Raw) -> Self;
    fn raw(&self) -> *mut Self::Raw;
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Bytes of the whole packet (TC: also the part not in linear data).
    fn len(&self) -> usize;
    fn ifindex(&self) -> u32;
    /// VLAN id the kernel took out of the frame into metadata (TC ingress
    /// sees 802.1Q frames untagged); 0 in XDP.
    fn meta_vlan(&self) -> u16;
    /// A GRO/TSO super-packet (TC only): the kernel segments it on the way
    /// out, so its IP length says nothing about the MTU.
    fn is_gso(&self) -> bool;
    /// Replaces the first `l2_len` bytes (the received L2 header) by `hlen`
    /// bytes to be written: Ethernet + outer IP (`outer_v6`) + GRE. The
    /// packet after `l2_len` does not move relative to the end.
    fn encap_head(&self, l2_len: usize, hlen: usize, outer_v6: bool) -> bool;
    /// Removes `n` bytes of outer headers: the inner packet of family
    /// `inner_family` moves `n` bytes to the front, and the bytes before it
    /// are the caller's to rewrite (XDP drops the first `n` bytes, TC the
    /// `n` after Ethernet).
    fn decap_head(&self, n: usize, inner_family: u8) -> bool;
    /// `n` more bytes at the front (ICMP error built in front of the quote).
    fn push_head(&self, n: usize) -> bool;
    /// Cuts the packet to `n` bytes (`n` <= len) and makes them all linear.
    fn truncate(&self, n: usize) -> bool;
    /// Sends the (rewritten) packet back out of the port it came in on.
    fn tx(&self) -> u32;
    /// Hands the packet to the anchor's signaling socket of its receive
    /// queue, `MH_SOCKETS[first + queue]`: the action, or `None` where there
    /// is none (no socket there; TC, which cannot reach an AF_XDP socket).
    fn to_signaling_socket(&self, first: u32) -> Option<u32>;
}

impl Pkt for XdpContext {
    type Raw = xdp_md;
    const PASS: u32 = xdp_action::XDP_PASS;
    const DROP: u32 = xdp_action::XDP_DROP;

    #[inline(always)]
    fn from_raw(raw: *mut xdp_md) -> Self {
        XdpContext::new(raw)
    }
    #[inline(always)]
    fn raw(&self) -> *mut xdp_md {
        self.ctx
    }
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        XdpContext::data_end(self) - XdpContext::data(self)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }
    #[inline(always)]
    fn meta_vlan(&self) -> u16 {
        0
    }
    #[inline(always)]
    fn is_gso(&self) -> bool {
        false
    }
    #[inline(always)]
    fn encap_head(&self, l2_len: usize, hlen: usize, _outer_v6: bool) -> bool {
        // SAFETY: helper call on our own context.
        unsafe { bpf_xdp_adjust_head(self.ctx, l2_len as i32 - hlen as i32) == 0 }
    }
    #[inline(always)]
    fn decap_head(&self, n: usize, _inner_family: u8) -> bool {
        // SAFETY: helper call on our own context.
        unsafe { bpf_xdp_adjust_head(self.ctx, n as i32) == 0 }
    }
    #[inline(always)]
    fn push_head(&self, n: usize) -> bool {
        // SAFETY: helper call on our own context.
        unsafe { bpf_xdp_adjust_head(self.ctx, -(n as i32)) == 0 }
    }
    #[inline(always)]
    fn truncate(&self, n: usize) -> bool {
        let have = Pkt::len(self) as i32;
        // SAFETY: helper call on our own context.
        have >= n as i32 && unsafe { bpf_xdp_adjust_tail(self.ctx, n as i32 - have) == 0 }
    }
    #[inline(always)]
    fn tx(&self) -> u32 {
        xdp_action::XDP_TX
    }
    #[inline(always)]
    fn to_signaling_socket(&self, first: u32) -> Option<u32> {
        // SAFETY: reading a field of our own context.
        let queue = unsafe { (*self.ctx).rx_queue_index };
        if queue >= MH_QUEUES_PER_IFACE {
            return None;
        }
        // A slot without a socket: XDP_PASS (the lower bits of the flags).
        MH_SOCKETS
            .redirect(first + queue, u64::from(xdp_action::XDP_PASS))
            .ok()
    }
}

impl Pkt for TcContext {
    type Raw = __sk_buff;
    const PASS: u32 = TC_ACT_OK as u32;
    const DROP: u32 = TC_ACT_SHOT as u32;

    #[inline(always)]
    fn from_raw(raw: *mut __sk_buff) -> Self {
        TcContext::new(raw)
    }
    #[inline(always)]
    fn raw(&self) -> *mut __sk_buff {
        self.skb.skb
    }
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
    #[inline(always)]
    // The interface the packet came in on, as XDP's ingress_ifindex (an skb's
    // `ifindex` is where it is now).
    #[allow(clippy::misnamed_getters)]
    fn ifindex(&self) -> u32 {
        // SAFETY: reading a field of the context.
        unsafe { (*self.skb.skb).ingress_ifindex }
    }
    #[inline(always)]
    fn meta_vlan(&self) -> u16 {
        // SAFETY: reading fields of the context.
        unsafe {
            if (*self.skb.skb).vlan_present != 0 {
                (*self.skb.skb).vlan_tci as u16 & 0x0fff
            } else {
                0
            }
        }
    }
    #[inline(always)]
    fn is_gso(&self) -> bool {
        // SAFETY: reading a field of the context.
        unsafe { (*self.skb.skb).gso_size != 0 }
    }
    #[inline(always)]
    fn encap_head(&self, l2_len: usize, hlen: usize, outer_v6: bool) -> bool {
        let skb = self.skb.skb;
        // The tunnel packet leaves untagged: drop the tag, in the frame
        // (BPF_PROG_TEST_RUN, stacked tags) or in metadata (the usual case).
        // SAFETY: reading a field of the context.
        if l2_len != ETH_HLEN || unsafe { (*skb).vlan_present } != 0 {
            // SAFETY: helper call on our own context; then reading a field.
            // A second tag (802.1ad + 802.1Q) would now be in metadata:
            // not a frame we tunnel.
            if unsafe { bpf_skb_vlan_pop(skb) } != 0 || unsafe { (*skb).vlan_present } != 0 {
                return false;
            }
        }
        // adjust_room (not change_head): the headers are inserted after
        // Ethernet and the skb's network header, protocol and inner offsets
        // follow, so the stack (PASS) and GSO see the outer packet; a GSO
        // packet's segment size shrinks by the tunnel overhead (no
        // FIXED_GSO), so its segments fit where the original ones did.
        let flags = BPF_F_ADJ_ROOM_ENCAP_L4_GRE
            | if outer_v6 {
                BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
            } else {
                BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
            };
        // SAFETY: helper call on our own context.
        unsafe { bpf_skb_adjust_room(skb, (hlen - ETH_HLEN) as i32, BPF_ADJ_ROOM_MAC, flags) == 0 }
    }
    #[inline(always)]
    fn decap_head(&self, n: usize, inner_family: u8) -> bool {
        // The DECAP flags set skb->protocol to the inner family (and bound
        // the minimum length by the inner header, not the outer).
        let flags = if inner_family == FAMILY_V6 {
            BPF_F_ADJ_ROOM_DECAP_L3_IPV6
        } else {
            BPF_F_ADJ_ROOM_DECAP_L3_IPV4
        };
        // SAFETY: helper call on our own context.
        unsafe { bpf_skb_adjust_room(self.skb.skb, -(n as i32), BPF_ADJ_ROOM_MAC, flags) == 0 }
    }
    #[inline(always)]
    fn push_head(&self, n: usize) -> bool {
        // SAFETY: helper call on our own context.
        unsafe { bpf_skb_change_head(self.skb.skb, n as u32, 0) == 0 }
    }
    #[inline(always)]
    fn truncate(&self, n: usize) -> bool {
        let skb = self.skb.skb;
        // SAFETY: helper calls on our own context.
        Pkt::len(self) >= n
            && unsafe { bpf_skb_change_tail(skb, n as u32, 0) } == 0
            && unsafe { bpf_skb_pull_data(skb, n as u32) } == 0
    }
    #[inline(always)]
    fn tx(&self) -> u32 {
        // SAFETY: helper call; flags 0 (egress of the interface).
        unsafe { bpf_redirect(Pkt::ifindex(self), 0) as u32 }
    }
    #[inline(always)]
    fn to_signaling_socket(&self, _first: u32) -> Option<u32> {
        None
    }
}

/// TC ingress: bytes the paths read in place (Ethernet + VLAN, outer IPv6,
/// GRE, inner IPv6, UDP) must be in the skb's linear data; a frame from a
/// socket usually has only its headers there, and not always all of them.
pub(crate) const TC_LINEAR: u32 = 128;

/// Makes the first TC_LINEAR bytes (or the whole packet if shorter) linear.
#[inline(always)]
pub(crate) fn tc_pull_headers(ctx: &TcContext) {
    let want = TcContext::len(ctx).min(TC_LINEAR) as usize;
    if TcContext::data(ctx) + want > TcContext::data_end(ctx) {
        // SAFETY: helper call on our own context; on failure the paths'
        // bounds checks see the short data and drop as malformed.
        let _ = unsafe { bpf_skb_pull_data(ctx.skb.skb, want as u32) };
    }
}
