//! The pass-everything XDP program, in both objects: pmipd attaches it to
//! the far end of a veth (`pmipd xdp-pass`, static role `pass`) so that
//! native-mode XDP_TX/redirect into the pair is received (veth drops XDP
//! frames towards a peer without an XDP program); the tests and the lab do
//! the same, and the benchmarks time it as their XDP_PASS baseline.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
