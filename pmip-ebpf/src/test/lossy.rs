//! A lossy core link for the reliability tests (never attached by pmipd;
//! this kernel has no sch_netem): `test_lossy_signaling`, attached at TC
//! ingress and egress of a veth, drops a set share of the signaling packets
//! it sees — PMIPv6 over UDP 5436, PMIPv6 Mobility Headers over IPv6
//! (next header 135), PMIPv4 on UDP 434 — and lets everything else through,
//! so the subscribers' tunneled traffic is untouched.
use aya_ebpf::{
    helpers::bpf_get_prandom_u32,
    macros::{classifier, map},
    maps::{Array, PerCpuArray},
    programs::TcContext,
};

use crate::ctx::{TC_ACT_OK, TC_ACT_SHOT};

/// [0]: percentage of signaling packets to drop (0-100), set by the test.
#[map]
static TEST_LOSS_PERCENT: Array<u32> = Array::with_max_entries(1, 0);
/// [0]: signaling packets dropped, [1]: signaling packets let through.
#[map]
static TEST_LOSS_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_MH: u8 = 135;
const PMIPV4_PORT: u16 = 434;
const PMIPV6_UDP_PORT: u16 = 5436;

fn be16(ctx: &TcContext, off: usize) -> Option<u16> {
    ctx.load::<u16>(off).ok().map(u16::from_be)
}

fn signaling_ports(ctx: &TcContext, l4: usize) -> bool {
    let (Some(s), Some(d)) = (be16(ctx, l4), be16(ctx, l4 + 2)) else {
        return false;
    };
    [s, d]
        .iter()
        .any(|p| *p == PMIPV4_PORT || *p == PMIPV6_UDP_PORT)
}

fn is_signaling(ctx: &TcContext) -> bool {
    match be16(ctx, 12) {
        Some(ETH_P_IP) => {
            let (Ok(vihl), Ok(proto)) = (ctx.load::<u8>(ETH_HLEN), ctx.load::<u8>(ETH_HLEN + 9))
            else {
                return false;
            };
            proto == IPPROTO_UDP && signaling_ports(ctx, ETH_HLEN + usize::from(vihl & 0xf) * 4)
        }
        Some(ETH_P_IPV6) => match ctx.load::<u8>(ETH_HLEN + 6) {
            Ok(IPPROTO_MH) => true,
            Ok(IPPROTO_UDP) => signaling_ports(ctx, ETH_HLEN + 40),
            _ => false,
        },
        _ => false,
    }
}

fn count(i: u32) {
    if let Some(c) = TEST_LOSS_COUNT.get_ptr_mut(i) {
        // SAFETY: this CPU's own slot of a per-CPU array.
        unsafe { *c += 1 };
    }
}

#[classifier]
pub fn test_lossy_signaling(ctx: TcContext) -> i32 {
    if !is_signaling(&ctx) {
        return TC_ACT_OK;
    }
    let percent = TEST_LOSS_PERCENT.get(0).copied().unwrap_or(0);
    // SAFETY: helper without arguments.
    let roll = unsafe { bpf_get_prandom_u32() } % 100;
    if roll < percent {
        count(0);
        TC_ACT_SHOT
    } else {
        count(1);
        TC_ACT_OK
    }
}
