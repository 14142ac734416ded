//! A VLAN subscriber port for the tests (never attached by pmipd).
//!
//! `test_vlan_tag` / `test_vlan_untag` make a veth end an 802.1Q subscriber
//! port on a kernel without the 8021q module (no VLAN devices): on egress
//! every frame gets tag `TEST_VLAN` (in skb metadata, as a NIC with VLAN
//! offload would send it); on ingress a frame without that tag is dropped,
//! and the tag is removed from the others. So a test sees traffic only if
//! the gateway both took the tagged frames and answered on the tag.
use aya_ebpf::{
    helpers::generated::{bpf_skb_vlan_pop, bpf_skb_vlan_push},
    macros::classifier,
    programs::TcContext,
};

use crate::ctx::{TC_ACT_OK, TC_ACT_SHOT};
use crate::hdr::ETH_P_8021Q;

/// The VLAN id of `test_vlan_tag` / `test_vlan_untag` (fastpath_netns uses 100).
pub const TEST_VLAN: u16 = 100;

#[classifier]
pub fn test_vlan_tag(ctx: TcContext) -> i32 {
    // SAFETY: helper call on our own context.
    if unsafe { bpf_skb_vlan_push(ctx.skb.skb, ETH_P_8021Q.to_be(), TEST_VLAN) } != 0 {
        return TC_ACT_SHOT;
    }
    TC_ACT_OK
}

#[classifier]
pub fn test_vlan_untag(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: reading fields of the context.
    let tagged =
        unsafe { (*skb).vlan_present != 0 && (*skb).vlan_tci as u16 & 0x0fff == TEST_VLAN };
    // SAFETY: helper call on our own context.
    if !tagged || unsafe { bpf_skb_vlan_pop(skb) } != 0 {
        return TC_ACT_SHOT;
    }
    TC_ACT_OK
}
