//! The benchmark and test programs: never attached by pmipd, so built into
//! their own object (target/bpf/pmip-ebpf-test.o, by `cargo xtask
//! build-ebpf` beside the fast path's pmip-ebpf.o) with their own maps. The
//! tests, the lab and pmip-bench load it (`PMIP_EBPF_TEST_OBJECT`).
//!
//! - `xdp_pass`: for the far ends of veths, and the benchmarks' baseline.
//! - cost.rs: the per-packet benchmark's minimal forwarder and single operations.
//! - replay.rs: repeatable timing of programs that rewrite their packet.
//! - trafficgen.rs: the throughput benchmark's generator, sink and forwarder.
//! - vlan.rs: a VLAN subscriber port on a kernel without 8021q.
//! - lossy.rs: a core link that drops a share of the signaling (no sch_netem here).
#![no_std]
#![no_main]
// hdr.rs's word stores to packet data.
#![feature(asm_experimental_arch)]

// Shared with the fast path's object (src/main.rs): the packet accessors,
// the FIB lookup the baselines do, and the pass program. Only part of them
// is used here.
#[allow(dead_code)]
#[path = "../ctx.rs"]
mod ctx;
#[allow(dead_code)]
#[path = "../fib.rs"]
mod fib;
#[allow(dead_code)]
#[path = "../hdr.rs"]
mod hdr;
#[path = "../pass.rs"]
mod pass;

mod cost;
mod lossy;
mod pages;
mod replay;
mod trafficgen;
mod vlan;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
