//! BPF_PROG_TEST_RUN fixture tables for every verdict path of `pmip_xdp`:
//! (description, ingress interface, input frame, expected verdict, expected
//! output frame, expected counter). Inputs and expected outputs are built with
//! the project's own emitters (`pmip_user::packet`).
//!
//! The same table runs against `pmip_tc_ingress` (the fast path at TC
//! ingress, sharing the paths' code): same inputs, output bytes and counters;
//! verdicts translated (XDP_PASS → TC_ACT_OK, XDP_DROP → TC_ACT_SHOT,
//! XDP_REDIRECT and XDP_TX → TC_ACT_REDIRECT, to the next hop or back out of
//! the ingress interface). And against the programs of one role
//! (`pmip_xdp_access`...: `Prog::Role`), each on the cases of the fixture's
//! interface of its role, as the agent attaches them: the same verdicts,
//! bytes and counters as `pmip_xdp`.
use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr};

use aya::programs::{TestRun, TestRunOptions};
use pmip_common::Counter;
use pmip_tests::fixture::*;
use pmip_tests::netns::is_root;
use pmip_tests::packet::*;
use pmip_user::checksum;
use pmip_user::fastpath::FastPath;

const XDP_DROP: u32 = 1;
const UNKNOWN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x77];
/// An unknown subscriber that speaks IPv6 only.
const UNKNOWN6_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x76];
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// Which program of the object runs the cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    Xdp,
    Tc,
    /// The XDP program of the ingress interface's role (`xdp_program_for`),
    /// for cases on the fixture's four interfaces (see [`use_role_programs`]).
    Role,
}

thread_local! {
    /// The fixture's (acc, core, acore, cn) for `Prog::Role` on this thread.
    static ROLE_IFACES: Cell<[u32; 4]> = const { Cell::new([0; 4]) };
}

/// Loads the four programs of one role and has `Prog::Role` use them for
/// the fixture's interfaces `ifs` (acc, core, acore, cn) on this thread.
fn use_role_programs(fp: &mut FastPath, ifs: [u32; 4]) -> anyhow::Result<()> {
    for i in ifs {
        let name = pmip_tests::fixture::role_program(ifs, i).expect("a fixture interface");
        anyhow::ensure!(
            name != pmip_user::fastpath::PROGRAM,
            "no program of its own for {i}"
        );
        fp.loaded_program(name)?;
    }
    ROLE_IFACES.with(|c| c.set(ifs));
    Ok(())
}

/// The program of the role of interface `ifindex` (None: not one of the
/// fixture's four, where no such program is ever attached).
fn role_program(ifindex: u32) -> Option<&'static str> {
    pmip_tests::fixture::role_program(ROLE_IFACES.with(|c| c.get()), ifindex)
}

impl Prog {
    /// The verdict this program gives where `pmip_xdp` gives `xdp`.
    fn verdict(self, xdp: u32) -> u32 {
        match (self, xdp) {
            (Prog::Xdp | Prog::Role, v) => v,
            (Prog::Tc, XDP_PASS) => TC_ACT_OK,
            (Prog::Tc, XDP_DROP) => TC_ACT_SHOT,
            (Prog::Tc, XDP_TX | XDP_REDIRECT) => TC_ACT_REDIRECT,
            (Prog::Tc, v) => panic!("no TC verdict for XDP verdict {v}"),
        }
    }
}

struct Case {
    name: &'static str,
    ifindex: u32,
    input: Vec<u8>,
    verdict: u32,
    /// None: output must equal the input (untouched).
    output: Option<Vec<u8>>,
    counter: Counter,
}

struct Ran {
    verdict: u32,
    out: Vec<u8>,
}

fn run(fp: &FastPath, prog: Prog, ifindex: u32, input: &[u8]) -> Ran {
    let mut out = vec![0u8; 4096];
    let xdp_ctx = xdp_md(ifindex, input.len());
    let skb_ctx = sk_buff(ifindex);
    let opts = TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        ctx_in: Some(if prog != Prog::Tc {
            &xdp_ctx[..]
        } else {
            &skb_ctx[..]
        }),
        ..Default::default()
    };
    let r = match prog {
        Prog::Xdp => fp.program().unwrap().test_run(opts),
        Prog::Tc => fp.tc_program().unwrap().test_run(opts),
        Prog::Role => {
            let name = role_program(ifindex).expect("a case on one of the fixture's interfaces");
            fp.xdp_program(name).unwrap().test_run(opts)
        }
    }
    .unwrap_or_else(|e| {
        panic!(
            "BPF_PROG_TEST_RUN ({prog:?}, {} bytes in on {ifindex}): {e}",
            input.len()
        )
    });
    out.truncate(r.data_size_out as usize);
    Ran {
        verdict: r.return_value,
        out,
    }
}

fn counters(fp: &FastPath) -> Vec<u64> {
    Counter::ALL
        .iter()
        .map(|c| fp.counter(*c).unwrap())
        .collect()
}

/// Runs each case; checks verdict, exact output bytes and that exactly the
/// expected counter moved by one. Runs every case twice on one CPU: the first run of a tunnel or
/// destination fills the per-CPU next-hop caches (FIB, prebuilt headers),
/// the second must give the same verdict, bytes and counter from them.
fn check(fp: &FastPath, prog: Prog, cases: &[Case]) -> Vec<String> {
    pmip_tests::tput::pin_cpu(0).expect("pin to CPU 0");
    let mut fails = Vec::new();
    let skipped = cases
        .iter()
        .filter(|c| prog == Prog::Role && role_program(c.ifindex).is_none())
        .count();
    if skipped * 2 > cases.len() {
        fails.push(format!(
            "{skipped} of {} cases on no interface of a role",
            cases.len()
        ));
    }
    for pass in ["first run", "second run"] {
        for c in cases {
            if prog == Prog::Role && role_program(c.ifindex).is_none() {
                continue;
            }
            let before = counters(fp);
            let r = run(fp, prog, c.ifindex, &c.input);
            let after = counters(fp);
            if r.verdict != prog.verdict(c.verdict) {
                fails.push(format!(
                    "{} ({pass}, {prog:?}): verdict {} want {}",
                    c.name,
                    r.verdict,
                    prog.verdict(c.verdict)
                ));
                continue;
            }
            let want = c.output.as_ref().unwrap_or(&c.input);
            if &r.out != want {
                fails.push(format!(
                    "{} ({pass}): output differs\n got  {:02x?}\n want {:02x?}",
                    c.name, r.out, want
                ));
            }
            for (i, ctr) in Counter::ALL.iter().enumerate() {
                let d = after[i] - before[i];
                let expect = if *ctr == c.counter { 1 } else { 0 };
                if d != expect {
                    fails.push(format!(
                        "{} ({pass}): counter {} moved by {d}, want {expect}",
                        c.name,
                        ctr.name()
                    ));
                }
            }
        }
    }
    fails
}

fn echo4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, df: bool, len: usize) -> Vec<u8> {
    ipv4(src, dst, 1, ttl, df, &icmp_echo(7, 1, &vec![0xab; len]))
}

fn up_frame(mac: [u8; 6], vlan: u16, proto: u16, l3: &[u8]) -> Vec<u8> {
    cat(eth(ACC_MAC, mac, vlan, proto), l3)
}

#[test]
fn fixture_table() {
    table(Prog::Xdp, Vec::new());
}

/// Every program of both objects passes this kernel's verifier: one that
/// only a benchmark loads would otherwise first fail there (built for BPF
/// ISA v3, `bench_replay` did: LLVM took a packet pointer's difference in a
/// 32-bit register, which the verifier refuses).
#[test]
fn every_program_of_both_objects_passes_the_verifier() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut failed = Vec::new();
    let mut loaded = 0;
    for path in [
        pmip_user::fastpath::default_object_path(),
        pmip_user::fastpath::default_test_object_path(),
    ] {
        let mut ebpf = aya::Ebpf::load_file(&path).unwrap();
        for (name, prog) in ebpf.programs_mut() {
            let r = match prog {
                aya::programs::Program::Xdp(p) => p.load(),
                aya::programs::Program::SchedClassifier(p) => p.load(),
                other => panic!("{name}: a program type this test does not load: {other:?}"),
            };
            match r {
                Ok(()) => loaded += 1,
                Err(e) => failed.push(format!("{}: {name}: {e:#}", path.display())),
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Both objects: the fast path's programs and the benchmarks'.
    assert!(loaded >= 20, "only {loaded} programs found");
}

/// The same table with the anchor's home addresses and prefixes in pools:
/// the anchor then finds them by their place in the pool (ANCHOR_BY_POOL4/6
/// arrays) instead of in the hashes, and every verdict, byte and counter
/// must be the same.
#[test]
fn fixture_table_with_home_pools() {
    table(Prog::Xdp, anchor_pools());
}

/// The table through the programs of one role, on the interfaces of their role.
#[test]
fn fixture_table_role_programs() {
    table(Prog::Role, Vec::new());
}

#[test]
fn fixture_table_role_programs_with_home_pools() {
    table(Prog::Role, anchor_pools());
}

#[test]
fn fixture_table_tc() {
    table(Prog::Tc, Vec::new());
}

#[test]
fn fixture_table_tc_with_home_pools() {
    table(Prog::Tc, anchor_pools());
}

/// The same table with the slow paths' debug events on (pmip-ebpf/src/log.rs):
/// logging changes no verdict, byte or counter.
#[test]
fn fixture_table_logging() {
    table_with(Prog::Xdp, true, Vec::new());
}

#[test]
fn fixture_table_tc_logging() {
    table_with(Prog::Tc, true, Vec::new());
}

/// The table, against a fresh fixture (its maps, counters and new-MAC rate
/// limit start empty).
fn table(prog: Prog, home_pools: Vec<pmip_user::fastpath::HomePoolSpec>) {
    table_with(prog, false, home_pools)
}

fn table_with(prog: Prog, log_events: bool, home_pools: Vec<pmip_user::fastpath::HomePoolSpec>) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let opts = pmip_user::fastpath::LoadOptions {
        home_pools,
        log_events,
        ..Default::default()
    };
    let fx = setup_with(1500, opts).expect("fixture");
    let (acc, core, acore, cn) = (fx.acc, fx.core, fx.acore, fx.cn);
    let mut fp = fx.fp;
    let fails = fx
        .ns
        .run_in(move || {
            if prog == Prog::Tc {
                fp.load_tc_program().expect("loading pmip_tc_ingress");
            }
            if prog == Prog::Role {
                use_role_programs(&mut fp, [acc, core, acore, cn]).expect("role programs");
            }
            let mut cases = Vec::new();
            // ---- access uplink ----
            let inner = echo4(HOME1, CN4, 64, true, 32);
            let inner63 = echo4(HOME1, CN4, 63, true, 32);
            cases.push(Case {
                name: "uplink v4 in v4",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IP, &inner),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(MAG_PEER_MAC, CORE_MAC, 0, ETH_P_IP),
                    &ipv4(
                        MAG4,
                        LMA4,
                        47,
                        64,
                        false,
                        &gre_keyed(ETH_P_IP, 0x1001, &inner63),
                    ),
                )),
                counter: Counter::TxEncapUplink,
            });
            let src6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0x10, 0, 0, 0, 0x99);
            let in6 = ipv6(src6, CN6, 59, 64, &[0u8; 16]);
            let in6_63 = ipv6(src6, CN6, 59, 63, &[0u8; 16]);
            cases.push(Case {
                name: "uplink v6 in v4",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IPV6, &in6),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(MAG_PEER_MAC, CORE_MAC, 0, ETH_P_IP),
                    &ipv4(
                        MAG4,
                        LMA4,
                        47,
                        64,
                        false,
                        &gre_keyed(ETH_P_IPV6, 0x1001, &in6_63),
                    ),
                )),
                counter: Counter::TxEncapUplink,
            });
            let inner2 = echo4(HOME2, CN4, 64, true, 32);
            let inner2_63 = echo4(HOME2, CN4, 63, true, 32);
            cases.push(Case {
                name: "uplink v4 in v6",
                ifindex: acc,
                input: up_frame(SUB2_MAC, 0, ETH_P_IP, &inner2),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(MAG_PEER_MAC, CORE_MAC, 0, ETH_P_IPV6),
                    &ipv6(MAG6, LMA6, 47, 64, &gre_keyed(ETH_P_IP, 0x1002, &inner2_63)),
                )),
                counter: Counter::TxEncapUplink,
            });
            let inner3 = echo4(HOME3, CN4, 64, false, 32);
            let inner3_63 = echo4(HOME3, CN4, 63, false, 32);
            cases.push(Case {
                name: "uplink 802.1Q-tagged subscriber",
                ifindex: acc,
                input: up_frame(SUB3_MAC, 100, ETH_P_IP, &inner3),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(MAG_PEER_MAC, CORE_MAC, 0, ETH_P_IP),
                    &ipv4(
                        MAG4,
                        LMA4,
                        47,
                        64,
                        false,
                        &gre_keyed(ETH_P_IP, 0x1003, &inner3_63),
                    ),
                )),
                counter: Counter::TxEncapUplink,
            });
            cases.push(Case {
                name: "uplink same MAC on the wrong VLAN is unregistered",
                ifindex: acc,
                input: up_frame(SUB3_MAC, 200, ETH_P_IP, &inner3),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropUnregistered,
            });
            cases.push(Case {
                name: "uplink data from an unknown MAC is not forwarded",
                ifindex: acc,
                input: up_frame(UNKNOWN_MAC, 0, ETH_P_IP, &inner),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropUnregistered,
            });
            cases.push(Case {
                name: "unknown MAC: DHCP goes to the agent",
                ifindex: acc,
                input: up_frame(
                    UNKNOWN_MAC,
                    0,
                    ETH_P_IP,
                    &ipv4(
                        Ipv4Addr::UNSPECIFIED,
                        Ipv4Addr::BROADCAST,
                        17,
                        64,
                        false,
                        &udp(68, 67, &[1u8; 240]),
                    ),
                ),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassControl,
            });
            cases.push(Case {
                name: "unknown MAC: ping to the gateway goes to the stack",
                ifindex: acc,
                input: up_frame(UNKNOWN_MAC, 0, ETH_P_IP, &echo4(HOME1, GW4, 64, true, 8)),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassControl,
            });
            cases.push(Case {
                name: "unknown MAC: ARP goes to the stack",
                ifindex: acc,
                input: cat(
                    eth([0xff; 6], UNKNOWN_MAC, 0, ETH_P_ARP),
                    &arp(1, UNKNOWN_MAC, HOME1, [0; 6], GW4),
                ),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassNotOurs,
            });
            cases.push(Case {
                name: "uplink spoofed IPv4 source",
                ifindex: acc,
                input: up_frame(
                    SUB1_MAC,
                    0,
                    ETH_P_IP,
                    &echo4(Ipv4Addr::new(10, 64, 0, 99), CN4, 64, true, 32),
                ),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropSpoofedSource,
            });
            cases.push(Case {
                name: "uplink spoofed IPv6 source",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IPV6, &ipv6(CN6, CN6, 59, 64, &[0u8; 8])),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropSpoofedSource,
            });
            cases.push(Case {
                name: "uplink TTL 1 goes to the stack",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IP, &echo4(HOME1, CN4, 1, true, 32)),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassTtl,
            });
            cases.push(Case {
                name: "uplink to the default router goes to the stack",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IP, &echo4(HOME1, GW4, 1, true, 32)),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassControl,
            });
            let dhcp = ipv4(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                17,
                64,
                false,
                &udp(68, 67, &[1u8; 240]),
            );
            cases.push(Case {
                name: "uplink DHCP from a known subscriber goes to the agent",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IP, &dhcp),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassControl,
            });
            cases.push(Case {
                name: "ARP request for the gateway answered with XDP_TX",
                ifindex: acc,
                input: cat(
                    eth([0xff; 6], SUB1_MAC, 0, ETH_P_ARP),
                    &arp(1, SUB1_MAC, HOME1, [0; 6], GW4),
                ),
                verdict: XDP_TX,
                output: Some(cat(
                    eth(SUB1_MAC, ACC_MAC, 0, ETH_P_ARP),
                    &arp(2, ACC_MAC, GW4, SUB1_MAC, HOME1),
                )),
                counter: Counter::TxArpReply,
            });
            cases.push(Case {
                name: "ARP probe (sender 0.0.0.0) goes to the stack",
                ifindex: acc,
                input: cat(
                    eth([0xff; 6], SUB1_MAC, 0, ETH_P_ARP),
                    &arp(1, SUB1_MAC, Ipv4Addr::UNSPECIFIED, [0; 6], HOME1),
                ),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassControl,
            });
            cases.push(Case {
                name: "ARP on a VLAN answered on the same VLAN",
                ifindex: acc,
                input: cat(
                    eth([0xff; 6], SUB3_MAC, 100, ETH_P_ARP),
                    &arp(1, SUB3_MAC, HOME3, [0; 6], GW4),
                ),
                verdict: XDP_TX,
                output: Some(cat(
                    eth(SUB3_MAC, ACC_MAC, 100, ETH_P_ARP),
                    &arp(2, ACC_MAC, GW4, SUB3_MAC, HOME3),
                )),
                counter: Counter::TxArpReply,
            });
            let big_nodf = echo4(HOME1, CN4, 64, false, 1500 - 28);
            cases.push(Case {
                name: "oversize without DF dropped",
                ifindex: acc,
                input: up_frame(SUB1_MAC, 0, ETH_P_IP, &big_nodf),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropTooBigNoDf,
            });
            // ---- access downlink ----
            let down = echo4(CN4, HOME1, 64, true, 32);
            let down63 = echo4(CN4, HOME1, 63, true, 32);
            let gre4 = |key: u32, src: Ipv4Addr, inner: &[u8]| {
                cat(
                    eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IP),
                    &ipv4(src, MAG4, 47, 64, false, &gre_keyed(ETH_P_IP, key, inner)),
                )
            };
            cases.push(Case {
                name: "downlink v4 over v4 to the subscriber",
                ifindex: core,
                input: gre4(0x2001, LMA4, &down),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(SUB1_MAC, ACC_MAC, 0, ETH_P_IP), &down63)),
                counter: Counter::TxDecapDownlink,
            });
            let down3 = echo4(CN4, HOME3, 64, true, 32);
            let down3_63 = echo4(CN4, HOME3, 63, true, 32);
            cases.push(Case {
                name: "downlink to a VLAN subscriber gets its tag",
                ifindex: core,
                input: gre4(0x2003, LMA4, &down3),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(SUB3_MAC, ACC_MAC, 100, ETH_P_IP), &down3_63)),
                counter: Counter::TxDecapDownlink,
            });
            let down2 = echo4(CN4, HOME2, 64, true, 32);
            let down2_63 = echo4(CN4, HOME2, 63, true, 32);
            cases.push(Case {
                name: "downlink v4 over v6",
                ifindex: core,
                input: from_lma6(ETH_P_IP, 0x2002, &down2),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(SUB2_MAC, ACC_MAC, 0, ETH_P_IP), &down2_63)),
                counter: Counter::TxDecapDownlink,
            });
            cases.push(Case {
                name: "downlink unknown key",
                ifindex: core,
                input: gre4(0x9999, LMA4, &down),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropUnknownKey,
            });
            cases.push(Case {
                name: "downlink from the wrong peer",
                ifindex: core,
                input: gre4(0x2001, Ipv4Addr::new(192, 0, 2, 66), &down),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropWrongPeer,
            });
            for (name, flags) in [
                ("GRE checksum bit", 0xa0u8),
                ("GRE sequence bit", 0x30),
                ("GRE without key", 0x00),
            ] {
                let mut f = gre4(0x2001, LMA4, &down);
                f[14 + 20] = flags;
                cases.push(Case {
                    name,
                    ifindex: core,
                    input: f,
                    verdict: XDP_DROP,
                    output: None,
                    counter: Counter::DropGreUnsupported,
                });
            }
            let mut v1 = gre4(0x2001, LMA4, &down);
            v1[14 + 21] = 0x01;
            cases.push(Case {
                name: "GRE version 1",
                ifindex: core,
                input: v1,
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropGreUnsupported,
            });
            let mut frag = gre4(0x2001, LMA4, &down);
            frag[14 + 6] = 0x20; // MF
            cases.push(Case {
                name: "outer IPv4 fragment",
                ifindex: core,
                input: frag,
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropOuterFragment,
            });
            // Outer IPv4 with 4 bytes of options (NOP x4): still decapsulated.
            let mut opt = ipv4(
                LMA4,
                MAG4,
                47,
                64,
                false,
                &gre_keyed(ETH_P_IP, 0x2001, &down),
            );
            opt[0] = 0x46;
            opt.splice(20..20, [1u8, 1, 1, 1]);
            let tl = (opt.len() as u16).to_be_bytes();
            opt[2] = tl[0];
            opt[3] = tl[1];
            cases.push(Case {
                name: "outer IPv4 with options",
                ifindex: core,
                input: cat(eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IP), &opt),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(SUB1_MAC, ACC_MAC, 0, ETH_P_IP), &down63)),
                counter: Counter::TxDecapDownlink,
            });
            // ---- anchor downlink ----
            let to_home = echo4(CN4, AHOME4, 64, true, 32);
            let to_home63 = echo4(CN4, AHOME4, 63, true, 32);
            cases.push(Case {
                name: "anchor downlink v4 in v4",
                ifindex: cn,
                input: cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP), &to_home),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(LMA_PEER_MAC, ACORE_MAC, 0, ETH_P_IP),
                    &ipv4(
                        A_LOCAL4,
                        A_PEER4,
                        47,
                        64,
                        false,
                        &gre_keyed(ETH_P_IP, 0x4001, &to_home63),
                    ),
                )),
                counter: Counter::TxEncapDownlink,
            });
            let to_hnp = ipv6(
                CN6,
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x77, 5, 0, 0, 0, 1),
                59,
                64,
                &[0u8; 8],
            );
            let to_hnp63 = ipv6(
                CN6,
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x77, 5, 0, 0, 0, 1),
                59,
                63,
                &[0u8; 8],
            );
            cases.push(Case {
                name: "anchor downlink v6 (HNP) in v4",
                ifindex: cn,
                input: cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IPV6), &to_hnp),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(LMA_PEER_MAC, ACORE_MAC, 0, ETH_P_IP),
                    &ipv4(
                        A_LOCAL4,
                        A_PEER4,
                        47,
                        64,
                        false,
                        &gre_keyed(ETH_P_IPV6, 0x4001, &to_hnp63),
                    ),
                )),
                counter: Counter::TxEncapDownlink,
            });
            let to_home6t = echo4(CN4, AHOME4_V6T, 64, true, 32);
            let to_home6t_63 = echo4(CN4, AHOME4_V6T, 63, true, 32);
            cases.push(Case {
                name: "anchor downlink v4 in v6",
                ifindex: cn,
                input: cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP), &to_home6t),
                verdict: XDP_REDIRECT,
                output: Some(cat(
                    eth(LMA_PEER_MAC, ACORE_MAC, 0, ETH_P_IPV6),
                    &ipv6(
                        A_LOCAL6,
                        A_PEER6,
                        47,
                        64,
                        &gre_keyed(ETH_P_IP, 0x4002, &to_home6t_63),
                    ),
                )),
                counter: Counter::TxEncapDownlink,
            });
            cases.push(Case {
                name: "anchor: not a home address",
                ifindex: cn,
                input: cat(
                    eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP),
                    &echo4(CN4, Ipv4Addr::new(10, 77, 0, 99), 64, true, 32),
                ),
                verdict: XDP_PASS,
                output: None,
                counter: Counter::PassNotOurs,
            });
            // ---- anchor uplink ----
            let from_home = echo4(AHOME4, CN4, 64, true, 32);
            let from_home63 = echo4(AHOME4, CN4, 63, true, 32);
            cases.push(Case {
                name: "anchor uplink v4 over v4",
                ifindex: acore,
                input: from_mag4(ETH_P_IP, 0x3001, &from_home),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(CN_MAC, CN_IF_MAC, 0, ETH_P_IP), &from_home63)),
                counter: Counter::TxDecapUplink,
            });
            let from_home2 = echo4(AHOME4_V6T, CN4, 64, true, 32);
            let from_home2_63 = echo4(AHOME4_V6T, CN4, 63, true, 32);
            cases.push(Case {
                name: "anchor uplink v4 over v6",
                ifindex: acore,
                input: from_mag6(ETH_P_IP, 0x3002, &from_home2),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(CN_MAC, CN_IF_MAC, 0, ETH_P_IP), &from_home2_63)),
                counter: Counter::TxDecapUplink,
            });
            let from_hnp = ipv6(
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x77, 5, 0, 0, 0, 1),
                CN6,
                59,
                64,
                &[0u8; 8],
            );
            let from_hnp63 = ipv6(
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x77, 5, 0, 0, 0, 1),
                CN6,
                59,
                63,
                &[0u8; 8],
            );
            cases.push(Case {
                name: "anchor uplink v6 over v4",
                ifindex: acore,
                input: from_mag4(ETH_P_IPV6, 0x3001, &from_hnp),
                verdict: XDP_REDIRECT,
                output: Some(cat(eth(CN_MAC, CN_IF_MAC, 0, ETH_P_IPV6), &from_hnp63)),
                counter: Counter::TxDecapUplink,
            });
            cases.push(Case {
                name: "anchor uplink spoofed inner source",
                ifindex: acore,
                input: from_mag4(
                    ETH_P_IP,
                    0x3001,
                    &echo4(Ipv4Addr::new(10, 77, 0, 200), CN4, 64, true, 32),
                ),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropSpoofedSource,
            });
            cases.push(Case {
                name: "anchor uplink with the other binding's key",
                ifindex: acore,
                input: from_mag4(ETH_P_IP, 0x3002, &from_home),
                verdict: XDP_DROP,
                output: None,
                counter: Counter::DropWrongPeer,
            });
            cases.extend(ipv6_cases(acc, core, acore, cn));
            cases.extend(checksum_carry_cases(acc, core, acore, cn));
            let mut fails = check(&fp, prog, &cases);
            fails.extend(new_mac_events(&mut fp, acc));
            fails.extend(truncations(&fp, prog, acc, core, acore));
            fails.extend(too_big(&fp, prog, acc));
            fails.extend(hop_limit_exceeded(&fp, prog, acc));
            fails
        })
        .unwrap();
    assert!(
        fails.is_empty(),
        "{} failures:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// `h` (an IPv4 packet) with its Identification set so that its header
/// checksum is `want`, the checksum recomputed.
fn with_checksum(h: &[u8], want: u16) -> (Vec<u8>, u16) {
    let ident = (0..=u16::MAX)
        .find(|i| {
            let mut x = h[..20].to_vec();
            x[4..6].copy_from_slice(&i.to_be_bytes());
            x[10..12].fill(0);
            checksum::of(&x) == want
        })
        .expect("an Identification gives every checksum");
    (with_ident(h, ident), ident)
}

/// `h` with Identification `ident` and its header checksum recomputed.
fn with_ident(h: &[u8], ident: u16) -> Vec<u8> {
    let mut x = h.to_vec();
    x[4..6].copy_from_slice(&ident.to_be_bytes());
    x[10..12].fill(0);
    let c = checksum::of(&x[..20]);
    x[10..12].copy_from_slice(&c.to_be_bytes());
    x
}

/// The TTL decrement's incremental checksum update (RFC 1624 eqn. 3) where
/// it wraps: inner headers whose checksums sit at the top of the range
/// (0xfeff gives 0x0000 after the decrement, where a plain "add 0x0100"
/// would give 0xffff), on all four paths. Expected outputs are recomputed
/// from scratch.
fn checksum_carry_cases(acc: u32, core: u32, acore: u32, cn: u32) -> Vec<Case> {
    /// One path: where the inner packet enters, between which ends it
    /// travels, how the input frame and the expected output frame carry it.
    struct Path {
        name: &'static str,
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        input: fn(&[u8]) -> Vec<u8>,
        output: fn(&[u8]) -> Vec<u8>,
        counter: Counter,
    }
    /// A frame between `macs` (to, from) of an IPv4 packet in GRE with
    /// `key` in IPv4 between `ends` (source, destination).
    fn gre4(macs: ([u8; 6], [u8; 6]), ends: (Ipv4Addr, Ipv4Addr), key: u32, p: &[u8]) -> Vec<u8> {
        let (to, from) = macs;
        let (src, dst) = ends;
        let gre = gre_keyed(ETH_P_IP, key, p);
        cat(
            eth(to, from, 0, ETH_P_IP),
            &ipv4(src, dst, 47, 64, false, &gre),
        )
    }
    let paths = [
        Path {
            name: "uplink v4 in v4",
            ifindex: acc,
            src: HOME1,
            dst: CN4,
            input: |p| up_frame(SUB1_MAC, 0, ETH_P_IP, p),
            output: |p| gre4((MAG_PEER_MAC, CORE_MAC), (MAG4, LMA4), 0x1001, p),
            counter: Counter::TxEncapUplink,
        },
        Path {
            name: "downlink v4 over v4",
            ifindex: core,
            src: CN4,
            dst: HOME1,
            input: |p| gre4((CORE_MAC, MAG_PEER_MAC), (LMA4, MAG4), 0x2001, p),
            output: |p| cat(eth(SUB1_MAC, ACC_MAC, 0, ETH_P_IP), p),
            counter: Counter::TxDecapDownlink,
        },
        Path {
            name: "anchor downlink v4 in v4",
            ifindex: cn,
            src: CN4,
            dst: AHOME4,
            input: |p| cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP), p),
            output: |p| gre4((LMA_PEER_MAC, ACORE_MAC), (A_LOCAL4, A_PEER4), 0x4001, p),
            counter: Counter::TxEncapDownlink,
        },
        Path {
            name: "anchor uplink v4 over v4",
            ifindex: acore,
            src: AHOME4,
            dst: CN4,
            input: |p| gre4((ACORE_MAC, LMA_PEER_MAC), (A_PEER4, A_LOCAL4), 0x3001, p),
            output: |p| cat(eth(CN_MAC, CN_IF_MAC, 0, ETH_P_IP), p),
            counter: Counter::TxDecapUplink,
        },
    ];
    let mut cases = Vec::new();
    for want in [0xfeffu16, 0xff00, 0xff01, 0xfffe] {
        for path in &paths {
            let (inner, id) = with_checksum(&echo4(path.src, path.dst, 64, true, 32), want);
            let inner63 = with_ident(&echo4(path.src, path.dst, 63, true, 32), id);
            let name = format!(
                "{}: inner checksum {want:#06x} wraps at the TTL decrement",
                path.name
            );
            cases.push(Case {
                name: Box::leak(name.into_boxed_str()),
                ifindex: path.ifindex,
                input: (path.input)(&inner),
                verdict: XDP_REDIRECT,
                output: Some((path.output)(&inner63)),
                counter: path.counter,
            });
        }
    }
    cases
}

/// Data from unknown MACs reached the agent's ring buffer, once per MAC
/// within the report interval, with the source address it used.
fn new_mac_events(fp: &mut FastPath, acc: u32) -> Vec<String> {
    let mut ring = fp.new_mac_events().expect("ring buffer");
    let mut got = Vec::new();
    while let Some(item) = ring.next() {
        // SAFETY: the fast path writes exactly one NewMacEvent per record.
        let ev: pmip_common::NewMacEvent =
            unsafe { std::ptr::read_unaligned(item.as_ptr() as *const _) };
        got.push(ev);
    }
    let mut fails = Vec::new();
    let unknown: Vec<_> = got.iter().filter(|e| e.key.mac == UNKNOWN_MAC).collect();
    if unknown.len() != 1 || unknown[0].key.ifindex != acc || unknown[0].src_v4 != HOME1.octets() {
        fails.push(format!("new-MAC events for the unknown MAC: {unknown:?}"));
    }
    if !got
        .iter()
        .any(|e| e.key.mac == SUB3_MAC && e.key.vlan == 200)
    {
        fails.push(format!("no new-MAC event for the VLAN-200 frame: {got:?}"));
    }
    // IPv6 data reports the MAC too (no IPv4 source to tell).
    let six: Vec<_> = got.iter().filter(|e| e.key.mac == UNKNOWN6_MAC).collect();
    if six.len() != 1 || six[0].key.ifindex != acc || six[0].src_v4 != [0; 4] {
        fails.push(format!("new-MAC events for IPv6 data: {six:?}"));
    }
    fails
}

/// Every prefix of valid frames: never redirected or transmitted, never a
/// verdict other than drop-as-malformed or pass-as-not-ours.
fn truncations(fp: &FastPath, prog: Prog, acc: u32, core: u32, acore: u32) -> Vec<String> {
    let inner = echo4(HOME1, CN4, 64, true, 32);
    let frames = [
        (acc, up_frame(SUB1_MAC, 0, ETH_P_IP, &inner)),
        (
            acc,
            up_frame(SUB3_MAC, 100, ETH_P_IP, &echo4(HOME3, CN4, 64, true, 32)),
        ),
        (
            acc,
            cat(
                eth([0xff; 6], SUB1_MAC, 0, ETH_P_ARP),
                &arp(1, SUB1_MAC, HOME1, [0; 6], GW4),
            ),
        ),
        (
            core,
            from_lma4(ETH_P_IP, 0x2001, &echo4(CN4, HOME1, 64, true, 8)),
        ),
        (
            acore,
            from_mag6(ETH_P_IP, 0x3002, &echo4(AHOME4_V6T, CN4, 64, true, 8)),
        ),
    ];
    let mut fails = Vec::new();
    for (ifx, f) in frames {
        // The kernel refuses test input shorter than an Ethernet header; as
        // an skb, also not longer than one, nor shorter than Ethernet + the
        // IPv4/IPv6 header its EtherType announces.
        let first = match (prog, u16::from_be_bytes([f[12], f[13]])) {
            (Prog::Xdp | Prog::Role, _) => 14,
            (Prog::Tc, ETH_P_IP) => 14 + 20,
            (Prog::Tc, ETH_P_IPV6) => 14 + 40,
            (Prog::Tc, _) => 15,
        };
        for n in first..f.len() - 8 {
            let r = run(fp, prog, ifx, &f[..n]);
            if r.verdict != prog.verdict(XDP_DROP) && r.verdict != prog.verdict(XDP_PASS) {
                fails.push(format!(
                    "truncated to {n} of {}: verdict {}",
                    f.len(),
                    r.verdict
                ));
            }
        }
    }
    fails
}

/// DF packet that does not fit the core MTU after encapsulation: ICMP
/// fragmentation-needed with the tunnel MTU, back to the subscriber.
fn too_big(fp: &FastPath, prog: Prog, acc: u32) -> Vec<String> {
    let inner = echo4(HOME1, CN4, 64, true, 1500 - 28);
    let r = run(fp, prog, acc, &up_frame(SUB1_MAC, 0, ETH_P_IP, &inner));
    let mut fails = Vec::new();
    if r.verdict != prog.verdict(XDP_TX) {
        return vec![format!("too big: verdict {}", r.verdict)];
    }
    let o = &r.out;
    let ip = &o[14..34];
    let icmp = &o[34..];
    if o[..6] != SUB1_MAC || o[6..12] != ACC_MAC || o[12..14] != [0x08, 0x00] {
        fails.push(format!("too big: bad Ethernet {:02x?}", &o[..14]));
    }
    if checksum::of(ip) != 0
        || ip[9] != 1
        || ip[12..16] != GW4.octets()
        || ip[16..20] != HOME1.octets()
    {
        fails.push(format!("too big: bad IPv4 header {ip:02x?}"));
    }
    if icmp[0] != 3 || icmp[1] != 4 || checksum::of(icmp) != 0 {
        fails.push(format!("too big: bad ICMP {:02x?}", &icmp[..8]));
    }
    let mtu = u16::from_be_bytes([icmp[6], icmp[7]]);
    if mtu != 1500 - 28 {
        fails.push(format!("too big: MTU {mtu}, want {}", 1500 - 28));
    }
    if icmp[8..28] != inner[..20] {
        fails.push("too big: quote is not the original header".into());
    }
    // IPv6 inner: packet too big (RFC 4443 §3.2) with pseudo-header checksum.
    let src6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0x10, 0, 0, 0, 0x99);
    let big6 = ipv6(src6, CN6, 59, 64, &vec![0u8; 1500 - 40]);
    let r = run(fp, prog, acc, &up_frame(SUB1_MAC, 0, ETH_P_IPV6, &big6));
    if r.verdict != prog.verdict(XDP_TX) {
        fails.push(format!("too big v6: verdict {}", r.verdict));
        return fails;
    }
    let o = &r.out;
    let icmp = &o[54..];
    let sum = checksum::pseudo_v6(&GW6, &src6, icmp.len() as u32, 58);
    if o[20] != 58 || icmp[0] != 2 || checksum::finish(checksum::add(sum, icmp)) != 0 {
        fails.push(format!("too big v6: bad ICMPv6 {:02x?}", &o[14..62]));
    }
    if u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]) != 1500 - 28 {
        fails.push("too big v6: wrong MTU".into());
    }
    fails
}

/// What the fast path emits, decoded by an independent decoder: tshark finds
/// GRE with the right key and protocol, outer and inner addresses, and no
/// malformed packet.
/// Binding changes reach the fast path at once, whatever its per-CPU caches
/// (ACCESS_CACHE: copies of subscriber entries, valid while their generation
/// is current) hold: a re-installed subscriber is tunneled with its new key,
/// a removed one is unregistered on its next frame, and another subscriber
/// id taking the MAC over (with or without the old entry removed first) is
/// served as itself.
#[test]
fn binding_changes_bypass_stale_caches() {
    binding_changes(Prog::Xdp);
}

#[test]
fn binding_changes_bypass_stale_caches_tc() {
    binding_changes(Prog::Tc);
}

#[test]
fn binding_changes_bypass_stale_caches_role_programs() {
    binding_changes(Prog::Role);
}

fn binding_changes(prog: Prog) {
    on_fixture(prog, move |fp, acc| {
        let (redirect, drop) = (prog.verdict(XDP_REDIRECT), prog.verdict(XDP_DROP));
        let frame = up_frame(SUB1_MAC, 0, ETH_P_IP, &echo4(HOME1, CN4, 64, true, 32));
        // Verdict and, when tunneled, the GRE key (IPv4 outer: Ethernet 14 + IP 20 + GRE 4).
        let send = |fp: &FastPath| -> (u32, Option<u32>) {
            let r = run(fp, prog, acc, &frame);
            let key = (r.verdict == redirect)
                .then(|| u32::from_be_bytes(r.out[38..42].try_into().unwrap()));
            (r.verdict, key)
        };
        let binding = |sub_id, uplink_key| {
            sub1_binding(acc, sub_id, uplink_key, (MAG4.into(), LMA4.into()), true)
        };
        let mut fails = Vec::new();
        let mut expect = |what: &str, got: (u32, Option<u32>), want: (u32, Option<u32>)| {
            if got != want {
                fails.push(format!("{what}: got {got:x?}, want {want:x?}"));
            }
        };
        // The fixture's subscriber 1 (key 0x1001), twice: the second from the cache.
        expect("installed", send(fp), (redirect, Some(0x1001)));
        expect("installed, cached", send(fp), (redirect, Some(0x1001)));
        fp.install_access(&binding(1, 0x1501))?;
        expect(
            "re-installed with a new key",
            send(fp),
            (redirect, Some(0x1501)),
        );
        expect("re-installed, cached", send(fp), (redirect, Some(0x1501)));
        fp.remove_access(&binding(1, 0x1501))?;
        expect("removed", send(fp), (drop, None));
        fp.install_access(&binding(7, 0x1777))?;
        expect("back as subscriber 7", send(fp), (redirect, Some(0x1777)));
        expect("subscriber 7, cached", send(fp), (redirect, Some(0x1777)));
        fp.install_access(&binding(8, 0x1888))?;
        expect(
            "taken over by subscriber 8",
            send(fp),
            (redirect, Some(0x1888)),
        );
        fp.install_access(&binding(1, 0x1999))?;
        expect(
            "taken over by subscriber 1 again",
            send(fp),
            (redirect, Some(0x1999)),
        );
        Ok(fails)
    });
}

/// Three subscribers whose keys fall in one `ACCESS_CACHE` set (two ways,
/// one map value): each uplink frame goes into the tunnel with its own
/// subscriber's key whichever way holds it — while two share the set, while
/// three evict each other — and a change to the one in way 1 is seen at
/// once (the set's generation).
#[test]
fn access_cache_keeps_the_subscribers_of_a_set_apart() {
    access_cache_set_of_three(Prog::Xdp);
}

#[test]
fn access_cache_keeps_the_subscribers_of_a_set_apart_role_programs() {
    access_cache_set_of_three(Prog::Role);
}

#[test]
fn access_cache_keeps_the_subscribers_of_a_set_apart_tc() {
    access_cache_set_of_three(Prog::Tc);
}

fn access_cache_set_of_three(prog: Prog) {
    use pmip_user::dataplane::{AccessBinding, AccessPoint, TunnelEnds};
    on_fixture(prog, move |fp, acc| {
        let key = |mac: [u8; 6]| pmip_common::AccessKey {
            ifindex: acc,
            vlan: 0,
            mac,
        };
        let set = |mac| pmip_common::access_cache_set(&key(mac));
        let mac = |i: u32| [0x02, 0, 0, 0xaa, (i >> 8) as u8, i as u8];
        let macs: Vec<[u8; 6]> = (1u32..1 << 16)
            .map(mac)
            .filter(|m| set(*m) == set(mac(1)))
            .take(3)
            .collect();
        anyhow::ensure!(macs.len() == 3, "no three MACs of one set");
        let home = |i: usize| Ipv4Addr::new(10, 64, 0, 100 + i as u8);
        let binding = |i: usize, remote: std::net::IpAddr, uplink_key: u32| AccessBinding {
            at: AccessPoint {
                ifindex: acc,
                vlan: 0,
                mac: macs[i],
            },
            sub_id: 41 + i as u32,
            tunnel: TunnelEnds {
                local: if remote.is_ipv6() {
                    MAG6.into()
                } else {
                    MAG4.into()
                },
                remote,
            },
            uplink_key,
            downlink_key: 0x8101 + i as u32,
            home_v4: Some(home(i)),
            gateway_v4: Some(GW4),
            hnp: None,
        };
        let (l4, l6): (std::net::IpAddr, std::net::IpAddr) = (LMA4.into(), LMA6.into());
        for i in 0..3 {
            fp.install_access(&binding(i, l4, 0x8001 + i as u32))?;
        }
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|i| up_frame(macs[i], 0, ETH_P_IP, &echo4(home(i), CN4, 64, true, 32)))
            .collect();
        let installed = |i: usize| (l4, 0x8001 + i as u32);
        let after = |i: usize| if i == 1 { (l6, 0x8201) } else { installed(i) };
        // Subscriber 1 moves to the IPv6 tunnel with a new key.
        set_of_three(fp, prog, acc, &frames, &installed, &after, |fp| {
            fp.install_access(&binding(1, l6, 0x8201))
        })
    });
}

/// A `(remote, key)` each of a cache set's three entries' frames must be
/// tunnelled with.
type WantTunnel<'a> = &'a dyn Fn(usize) -> (std::net::IpAddr, u32);

/// Drives the frames of three entries of one per-CPU cache set (0, 1, 2)
/// through `ifindex`: two sharing the set's two ways, then three evicting
/// each other — each tunnelled as `before` says — then entry 1 in way 1
/// when `change` changes its binding, after which each goes as `after`
/// says. A miss puts its entry in way 0 and moves way 0's to way 1; a hit
/// leaves the ways as they are: after the first two sequences the set
/// holds 0 (way 0) and 2 (way 1), and 1 then 2 leave 1 in way 1. What did
/// not go as wanted is returned.
fn set_of_three(
    fp: &mut FastPath,
    prog: Prog,
    ifindex: u32,
    frames: &[Vec<u8>],
    before: WantTunnel,
    after: WantTunnel,
    change: impl FnOnce(&mut FastPath) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<String>> {
    let redirect = prog.verdict(XDP_REDIRECT);
    let mut fails = Vec::new();
    let mut check = |fp: &FastPath, what: &str, order: &[usize], want: WantTunnel| {
        for &i in order {
            let got = tunnelled(&run(fp, prog, ifindex, &frames[i]), redirect);
            let w = (redirect, Some(want(i)));
            if got != w {
                fails.push(format!(
                    "{what}: entry {i} in the order {order:?}: got {got:x?}, want {w:x?}"
                ));
            }
        }
    };
    check(fp, "two in the set", &[0, 1, 0, 1, 1, 0, 0], before);
    check(
        fp,
        "three in the set",
        &[0, 1, 2, 0, 1, 2, 2, 1, 0, 2],
        before,
    );
    check(fp, "entry 1 into way 1", &[1, 2], before);
    change(fp)?;
    check(fp, "after entry 1's change", &[1, 0, 1, 2, 1, 0], after);
    Ok(fails)
}

/// The fixture's subscriber 1 at `acc` as subscriber `sub_id` with
/// `uplink_key`, tunnelled between `local` and `remote` (downlink key, home
/// address and gateway as the fixture installs them).
fn sub1_binding(
    acc: u32,
    sub_id: u32,
    uplink_key: u32,
    (local, remote): (std::net::IpAddr, std::net::IpAddr),
    hnp: bool,
) -> pmip_user::dataplane::AccessBinding {
    use pmip_user::dataplane::{AccessBinding, AccessPoint, Hnp, TunnelEnds};
    AccessBinding {
        at: AccessPoint {
            ifindex: acc,
            vlan: 0,
            mac: SUB1_MAC,
        },
        sub_id,
        tunnel: TunnelEnds { local, remote },
        uplink_key,
        downlink_key: 0x2001,
        home_v4: Some(HOME1),
        gateway_v4: Some(GW4),
        hnp: hnp.then_some(Hnp {
            prefix: HNP1,
            len: 64,
        }),
    }
}

/// Runs `f` in the fixture's namespace on CPU 0 with `prog` loaded, and
/// fails the test with every line `f` returns.
fn on_fixture(
    prog: Prog,
    f: impl FnOnce(&mut FastPath, u32) -> anyhow::Result<Vec<String>> + Send + 'static,
) {
    on_fixture_with(prog, Vec::new(), move |fp, i| f(fp, i[0]));
}

/// [`on_fixture`] with the anchor's `home_pools`; `f` gets the fixture's
/// interfaces (acc, core, acore, cn).
fn on_fixture_with(
    prog: Prog,
    home_pools: Vec<pmip_user::fastpath::HomePoolSpec>,
    f: impl FnOnce(&mut FastPath, [u32; 4]) -> anyhow::Result<Vec<String>> + Send + 'static,
) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let opts = pmip_user::fastpath::LoadOptions {
        home_pools,
        ..Default::default()
    };
    let fx = setup_with(1500, opts).expect("fixture");
    let ifs = [fx.acc, fx.core, fx.acore, fx.cn];
    let mut fp = fx.fp;
    let fails = fx
        .ns
        .run_in(move || -> anyhow::Result<Vec<String>> {
            pmip_tests::tput::pin_cpu(0)?;
            if prog == Prog::Tc {
                fp.load_tc_program()?;
            }
            if prog == Prog::Role {
                use_role_programs(&mut fp, ifs)?;
            }
            f(&mut fp, ifs)
        })
        .expect("namespace")
        .expect("test run");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// A handover moves the subscriber to another tunnel with the same GRE key
/// (here from the IPv4-outer anchor to the IPv6-outer one and back): the
/// per-CPU uplink flow kept with the cached subscriber (the prebuilt outer
/// headers and egress, see pmip-common `UplinkFlow`) must not outlive the
/// binding it was built for. Each move is followed by a second frame that
/// goes through the refilled flow.
#[test]
fn handover_bypasses_stale_flows() {
    handover_flows(Prog::Xdp);
}

#[test]
fn handover_bypasses_stale_flows_tc() {
    handover_flows(Prog::Tc);
}

#[test]
fn handover_bypasses_stale_flows_role_programs() {
    handover_flows(Prog::Role);
}

fn handover_flows(prog: Prog) {
    on_fixture(prog, move |fp, acc| {
        let redirect = prog.verdict(XDP_REDIRECT);
        let frame = up_frame(SUB1_MAC, 0, ETH_P_IP, &echo4(HOME1, CN4, 64, true, 32));
        // Verdict, outer destination and GRE key of the frame sent.
        let send = |fp: &FastPath| -> (u32, Option<(std::net::IpAddr, u32)>) {
            let r = run(fp, prog, acc, &frame);
            let o = &r.out;
            let out = (r.verdict == redirect).then(|| match o[12..14] {
                [0x86, 0xdd] => (
                    <[u8; 16]>::try_from(&o[38..54]).unwrap().into(),
                    u32::from_be_bytes(o[58..62].try_into().unwrap()),
                ),
                _ => (
                    <[u8; 4]>::try_from(&o[30..34]).unwrap().into(),
                    u32::from_be_bytes(o[38..42].try_into().unwrap()),
                ),
            });
            (r.verdict, out)
        };
        let binding = |ends| sub1_binding(acc, 1, 0x1001, ends, true);
        let mut fails = Vec::new();
        let mut expect = |what: &str, got, want: std::net::IpAddr| {
            if got != (redirect, Some((want, 0x1001))) {
                fails.push(format!("{what}: got {got:x?}, want {want} key 0x1001"));
            }
        };
        for round in ["", " again"] {
            expect(&format!("to LMA4{round}"), send(fp), LMA4.into());
            expect(&format!("to LMA4{round}, flow"), send(fp), LMA4.into());
            fp.install_access(&binding((MAG6.into(), LMA6.into())))?;
            expect(&format!("moved to LMA6{round}"), send(fp), LMA6.into());
            expect(&format!("to LMA6{round}, flow"), send(fp), LMA6.into());
            fp.install_access(&binding((MAG4.into(), LMA4.into())))?;
        }
        Ok(fails)
    });
}

/// Per-subscriber counters: each CPU counts in its own slot of SUB_ACTIVE
/// (no two CPUs write one entry), the loader sums the slots and the
/// subscriber's total, and a new binding for the subscriber id starts from
/// zero.
#[test]
fn subscriber_counters_have_a_row_per_cpu() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let cpus = aya::util::nr_cpus().expect("possible CPUs").min(2);
    let fx = setup(1500).expect("fixture");
    let acc = fx.acc;
    let mut fp = fx.fp;
    let (rows, sum, inner_len, after_reinstall) = fx
        .ns
        .run_in(move || -> anyhow::Result<_> {
            let inner = echo4(HOME1, CN4, 64, true, 32);
            let frame = up_frame(SUB1_MAC, 0, ETH_P_IP, &inner);
            // CPU c forwards 3 + c frames.
            for cpu in 0..cpus {
                pmip_tests::tput::pin_cpu(cpu)?;
                for _ in 0..3 + cpu {
                    let r = run(&fp, Prog::Xdp, acc, &frame);
                    anyhow::ensure!(
                        r.verdict == XDP_REDIRECT,
                        "verdict {} on CPU {cpu}",
                        r.verdict
                    );
                }
            }
            let rows = fp.traffic_by_cpu(1)?;
            let sum = fp.traffic(1)?;
            fp.install_access(&sub1_binding(
                acc,
                1,
                0x1001,
                (MAG4.into(), LMA4.into()),
                false,
            ))?;
            Ok((rows, sum, inner.len() as u64, fp.traffic(1)?))
        })
        .expect("namespace")
        .expect("test run");
    let n_cpus = aya::util::nr_cpus().unwrap();
    assert_eq!(rows.len(), n_cpus, "one row per possible CPU");
    for (cpu, r) in rows.iter().enumerate() {
        let want = if cpu < cpus { 3 + cpu as u64 } else { 0 };
        assert_eq!(
            (r.up_packets, r.up_bytes),
            (want, want * inner_len),
            "row of CPU {cpu}: {r:?}"
        );
        assert_eq!(
            (r.down_packets, r.down_bytes),
            (0, 0),
            "row of CPU {cpu}: {r:?}"
        );
    }
    let total: u64 = (0..cpus as u64).map(|c| 3 + c).sum();
    assert_eq!(
        (sum.up_packets, sum.up_bytes),
        (total, total * inner_len),
        "{sum:?}"
    );
    assert_eq!(
        after_reinstall,
        Default::default(),
        "a new binding starts from zero"
    );
}

#[test]
fn emitted_frames_decode_with_tshark() {
    if !is_root() || !pmip_tests::pcap::have_tshark() {
        eprintln!("skipped: needs root and tshark");
        return;
    }
    let fx = setup(1500).expect("fixture");
    let (acc, cn) = (fx.acc, fx.cn);
    let fp = fx.fp;
    let frames = fx
        .ns
        .run_in(move || {
            let src6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0x10, 0, 0, 0, 0x99);
            let inputs = [
                (
                    acc,
                    up_frame(SUB1_MAC, 0, ETH_P_IP, &echo4(HOME1, CN4, 64, true, 32)),
                ),
                (
                    acc,
                    up_frame(
                        SUB1_MAC,
                        0,
                        ETH_P_IPV6,
                        &ipv6(src6, CN6, 59, 64, &[0u8; 16]),
                    ),
                ),
                (
                    acc,
                    up_frame(SUB2_MAC, 0, ETH_P_IP, &echo4(HOME2, CN4, 64, true, 32)),
                ),
                (
                    cn,
                    cat(
                        eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP),
                        &echo4(CN4, AHOME4_V6T, 64, true, 32),
                    ),
                ),
            ];
            inputs
                .iter()
                .map(|(i, f)| run(&fp, Prog::Xdp, *i, f))
                .map(|r| {
                    assert_eq!(r.verdict, XDP_REDIRECT);
                    r.out
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    let path = std::env::temp_dir().join(format!("pmip-fixture-{}.pcap", std::process::id()));
    pmip_tests::pcap::write_ethernet(&path, &frames).unwrap();
    let rows = pmip_tests::pcap::fields(
        &path,
        &[
            "gre.key",
            "gre.proto",
            "ip.src",
            "ip.dst",
            "ipv6.src",
            "ipv6.dst",
            "icmp.type",
        ],
    )
    .unwrap();
    let _ = std::fs::remove_file(&path);
    let want = [
        [
            "0x00001001",
            "0x0800",
            "192.0.2.1,10.64.0.10",
            "192.0.2.2,203.0.113.2",
            "",
            "",
            "8",
        ],
        [
            "0x00001001",
            "0x86dd",
            "192.0.2.1",
            "192.0.2.2",
            "2001:db8:64:10::99",
            "2001:db8:cc::2",
            "",
        ],
        [
            "0x00001002",
            "0x0800",
            "10.64.0.11",
            "203.0.113.2",
            "2001:db8:c::1",
            "2001:db8:c::2",
            "8",
        ],
        [
            "0x00004002",
            "0x0800",
            "203.0.113.2",
            "10.77.0.6",
            "2001:db8:ac::1",
            "2001:db8:ac::2",
            "8",
        ],
    ];
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(got, &want.map(String::from).to_vec());
    }
}

/// Pinned maps outlive pmipd; when it comes back with other home pools, the
/// pool-indexed table of the earlier layout would map its slots to other
/// addresses. The loader keeps the table when the layout is the same and
/// starts it empty when it differs.
#[test]
fn pinned_pool_table_follows_the_pool_layout() {
    use pmip_user::dataplane::{AnchorBinding, TunnelEnds};
    use pmip_user::fastpath::{GatewayRole, HomePoolSpec};
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = Bpffs::mount("pools");
    let pools = |third: u8| {
        vec![HomePoolSpec::V4 {
            prefix: Ipv4Addr::new(10, 77, third, 0),
            len: 24,
        }]
    };
    let load = |p: Vec<HomePoolSpec>| fs.load(GatewayRole::Anchor, p).expect("load");
    let homes = |fp: &FastPath| {
        fp.map_entry_count(pmip_common::maps::ANCHOR_BY_HOME4)
            .unwrap()
    };
    {
        let mut fp = load(pools(0));
        fp.install_anchor(&AnchorBinding {
            sub_id: 1,
            tunnel: TunnelEnds {
                local: A_LOCAL4.into(),
                remote: A_PEER4.into(),
            },
            uplink_key: 1,
            downlink_key: 0x4001,
            home_v4: Some(Ipv4Addr::new(10, 77, 0, 5)),
            hnp: None,
        })
        .unwrap();
        assert_eq!(homes(&fp), 1, "installed in the pool table");
    }
    assert_eq!(
        homes(&load(pools(0))),
        1,
        "same pools after a restart: the binding is still there"
    );
    assert_eq!(
        homes(&load(pools(1))),
        0,
        "other pools after a restart: the table starts empty"
    );
}

/// A bpffs of a test's own; unmounting it removes every pin in it.
struct Bpffs(std::path::PathBuf);

impl Bpffs {
    fn mount(what: &str) -> Bpffs {
        let fs =
            Bpffs(std::env::temp_dir().join(format!("pmip-bpffs-{what}-{}", std::process::id())));
        std::fs::create_dir_all(&fs.0).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&fs.0)
            .status()
            .unwrap();
        assert!(st.success(), "mounting bpffs");
        fs
    }

    /// Where [`load`](Self::load) pins.
    fn pins(&self) -> std::path::PathBuf {
        self.0.join("pins")
    }

    /// A fast path of 1024 subscribers in `role`, its maps pinned here.
    fn load(
        &self,
        role: pmip_user::fastpath::GatewayRole,
        pools: Vec<pmip_user::fastpath::HomePoolSpec>,
    ) -> anyhow::Result<FastPath> {
        self.load_sized(role, pools, 1024)
    }

    /// [`load`](Self::load) with `max_subscribers` subscribers.
    fn load_sized(
        &self,
        role: pmip_user::fastpath::GatewayRole,
        pools: Vec<pmip_user::fastpath::HomePoolSpec>,
        max_subscribers: u32,
    ) -> anyhow::Result<FastPath> {
        FastPath::load(&pmip_user::fastpath::LoadOptions {
            pin_dir: Some(self.pins()),
            max_subscribers,
            role: Some(role),
            home_pools: pools,
            ..Default::default()
        })
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A map pinned by a build with another layout is refused, with an error
/// that names it and says how to remove the pins, instead of being reused
/// with the wrong layout. (The stand-in: another of our maps pinned under
/// ACCESS_GEN's name — same key, 32-byte values instead of 4.)
#[test]
fn pinned_maps_of_another_layout_are_refused() {
    use pmip_user::fastpath::GatewayRole;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = Bpffs::mount("layout");
    let pins = fs.pins();
    let load = || fs.load(GatewayRole::Access, Vec::new());
    drop(load().expect("first load pins the maps"));
    drop(load().expect("a restart reuses its own pins"));
    let gen = pins.join(pmip_common::maps::ACCESS_GEN);
    std::fs::remove_file(&gen).unwrap();
    std::fs::hard_link(pins.join(pmip_common::maps::SUB_TOTALS), &gen).unwrap();
    let err = match load() {
        Ok(_) => panic!("a pinned ACCESS_GEN with 32-byte values was reused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("ACCESS_GEN") && err.contains("value 32 B") && err.contains("pmipd unpin"),
        "{err}"
    );
    std::fs::remove_dir_all(&pins).unwrap();
    drop(load().expect("after the pins are removed"));
    // The same layout with another number of entries: an ACCESS_GEN of
    // 4096 generations where this build indexes 2048 sets would be
    // harmless, one of 1024 would fail the bumps of half the sets.
    for entries in [1024, 4096] {
        std::fs::remove_file(&gen).unwrap();
        pin_u32_array(&gen, entries);
        let err = match load() {
            Ok(_) => panic!("a pinned ACCESS_GEN of {entries} entries was reused"),
            Err(e) => format!("{e:#}"),
        };
        let ours = format!("{} entries)", pmip_common::ACCESS_CACHE_SETS);
        assert!(
            err.contains(&format!("{entries} entries)"))
                && err.contains(&ours)
                && err.contains("pmipd unpin"),
            "{err}"
        );
    }
}

/// Pinned subscriber maps keep their size across restarts. A configuration
/// that sizes them larger (more subscribers, the other role, home pools
/// where there were none) is refused at start with an error that names the
/// settings and the way out, instead of running with tables that end
/// before the ids and keys the agent hands out; a smaller one runs on the
/// larger pinned tables.
#[test]
fn pinned_maps_smaller_than_the_configuration_are_refused() {
    use pmip_user::fastpath::{GatewayRole, HomePoolSpec};
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = Bpffs::mount("sizes");
    let refused = |what: &str, r: anyhow::Result<FastPath>, map: &str, have: u32, want: u32| {
        let err = match r {
            Ok(_) => panic!("{what}: loaded on pins too small for it"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(&format!("{map} has {have} entries, fewer than the {want}"))
                && err.contains("fastpath.max_subscribers")
                && err.contains("pmipd unpin"),
            "{what}: {err}"
        );
    };
    drop(
        fs.load(GatewayRole::Access, Vec::new())
            .expect("first load pins the maps"),
    );
    refused(
        "4096 subscribers on pins of 1024",
        fs.load_sized(GatewayRole::Access, Vec::new(), 4096),
        pmip_common::maps::ACCESS_BY_MAC,
        1024,
        4096,
    );
    drop(
        fs.load_sized(GatewayRole::Access, Vec::new(), 512)
            .expect("512 subscribers on pins of 1024"),
    );
    refused(
        "the anchor role on an access gateway's pins",
        fs.load(GatewayRole::Anchor, Vec::new()),
        pmip_common::maps::ANCHOR_BY_HOME4,
        1,
        1024,
    );
    std::fs::remove_dir_all(fs.pins()).unwrap();
    drop(
        fs.load(GatewayRole::Anchor, Vec::new())
            .expect("an anchor without pools"),
    );
    let pool = vec![HomePoolSpec::V4 {
        prefix: Ipv4Addr::new(10, 77, 0, 0),
        len: 24,
    }];
    refused(
        "a home pool added",
        fs.load(GatewayRole::Anchor, pool),
        pmip_common::maps::ANCHOR_BY_POOL4,
        1,
        1024,
    );
}

/// Pins a fresh array of `entries` u32s at `path` (bpftool, as an earlier
/// build's loader would have).
fn pin_u32_array(path: &std::path::Path, entries: u32) {
    let st = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args(["type", "array", "key", "4", "value", "4", "entries"])
        .arg(entries.to_string())
        .args(["name", "stand_in"])
        .status()
        .expect("running bpftool");
    assert!(st.success(), "bpftool map create {}", path.display());
}

/// A pin of a map this build retired (the per-slot `ANCHOR_GEN` of the
/// builds before the anchor cache had sets, 4096 entries) is removed when
/// the fast path loads, and nothing of it is reused.
#[test]
fn retired_pins_are_removed() {
    use pmip_user::fastpath::GatewayRole;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = Bpffs::mount("retired");
    let pins = fs.pins();
    drop(
        fs.load(GatewayRole::Anchor, Vec::new())
            .expect("first load pins the maps"),
    );
    let old = pins.join("ANCHOR_GEN");
    assert!(pmip_common::maps::RETIRED.contains(&"ANCHOR_GEN"));
    pin_u32_array(&old, 4096);
    drop(
        fs.load(GatewayRole::Anchor, Vec::new())
            .expect("a load beside a retired pin"),
    );
    assert!(
        !old.exists(),
        "the retired pin {} is still there",
        old.display()
    );
    let gen = pins.join(pmip_common::maps::ANCHOR_SET_GEN);
    let info = aya::maps::MapData::from_pin(&gen).unwrap().info().unwrap();
    assert_eq!(info.max_entries(), pmip_common::ANCHOR_CACHE_SETS);
}

/// DEST_NH's counter hints index SUB_ACTIVE's rows. A restart that reuses
/// both pins keeps the cache and its hints; a pinned DEST_NH loaded beside
/// a new SUB_ACTIVE (its pin removed alone) is emptied, so that no hint
/// points into a table laid out otherwise.
#[test]
fn dest_nh_hints_go_with_their_counter_table() {
    use aya::maps::{Map, MapData, PerCpuArray, PerCpuValues};
    use pmip_common::DestNextHop;
    use pmip_user::fastpath::GatewayRole;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = Bpffs::mount("destnh");
    let pins = fs.pins();
    let load = || fs.load(GatewayRole::Anchor, Vec::new());
    let dest_nh = || -> PerCpuArray<MapData, DestNextHop> {
        let data = MapData::from_pin(pins.join(pmip_common::maps::DEST_NH)).unwrap();
        PerCpuArray::try_from(Map::PerCpuArray(data)).unwrap()
    };
    let cpus = aya::util::nr_cpus().unwrap();
    let slot = DestNextHop {
        expires: u64::MAX,
        ifindex: 1,
        sub_slot: 7,
        ..Default::default()
    };
    drop(load().expect("first load pins the maps"));
    dest_nh()
        .set(5, PerCpuValues::try_from(vec![slot; cpus]).unwrap(), 0)
        .unwrap();
    drop(load().expect("a restart reuses its own pins"));
    let kept = dest_nh().get(&5, 0).unwrap();
    assert!(kept.iter().all(|s| *s == slot), "a restart kept the cache");
    std::fs::remove_file(pins.join(pmip_common::maps::SUB_ACTIVE)).unwrap();
    drop(load().expect("a load with a new SUB_ACTIVE"));
    let now = dest_nh().get(&5, 0).unwrap();
    assert!(
        now.iter().all(|s| *s == DestNextHop::default()),
        "DEST_NH kept hints into another SUB_ACTIVE: {:?}",
        now.iter().next()
    );
}

/// A subscriber's address in prefix `hnp` (interface id `iid`).
fn in_hnp(hnp: Ipv6Addr, iid: u16) -> Ipv6Addr {
    let s = hnp.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, iid)
}

/// The IPv6 rows of the table: IPv6 inner over both outer families on both
/// sides, and what the access side does with a subscriber's neighbour
/// discovery, DHCPv6 and link-local traffic.
fn ipv6_cases(acc: u32, core: u32, acore: u32, cn: u32) -> Vec<Case> {
    use pmip_user::access::frame6::{link_local_from_mac, solicited_node};
    use pmip_user::access::nd::NdRepr;
    let mut cases = Vec::new();
    let (sub2, down1) = (in_hnp(HNP2, 0x99), in_hnp(HNP1, 0x99));
    let up6 = |hop| ipv6(sub2, CN6, 59, hop, &[0u8; 16]);
    cases.push(Case {
        name: "uplink v6 in v6",
        ifindex: acc,
        input: up_frame(SUB2_MAC, 0, ETH_P_IPV6, &up6(64)),
        verdict: XDP_REDIRECT,
        output: Some(cat(
            eth(MAG_PEER_MAC, CORE_MAC, 0, ETH_P_IPV6),
            &ipv6(MAG6, LMA6, 47, 64, &gre_keyed(ETH_P_IPV6, 0x1002, &up6(63))),
        )),
        counter: Counter::TxEncapUplink,
    });
    let d1 = |hop| ipv6(CN6, down1, 59, hop, &[0u8; 24]);
    cases.push(Case {
        name: "downlink v6 over v4 to the subscriber",
        ifindex: core,
        input: from_lma4(ETH_P_IPV6, 0x2001, &d1(64)),
        verdict: XDP_REDIRECT,
        output: Some(cat(eth(SUB1_MAC, ACC_MAC, 0, ETH_P_IPV6), &d1(63))),
        counter: Counter::TxDecapDownlink,
    });
    let d2 = |hop| ipv6(CN6, sub2, 59, hop, &[0u8; 24]);
    cases.push(Case {
        name: "downlink v6 over v6 to the subscriber",
        ifindex: core,
        input: from_lma6(ETH_P_IPV6, 0x2002, &d2(64)),
        verdict: XDP_REDIRECT,
        output: Some(cat(eth(SUB2_MAC, ACC_MAC, 0, ETH_P_IPV6), &d2(63))),
        counter: Counter::TxDecapDownlink,
    });
    let home6t = in_hnp(AHNP_V6T, 1);
    let to = |hop| ipv6(CN6, home6t, 59, hop, &[0u8; 8]);
    cases.push(Case {
        name: "anchor downlink v6 (HNP) in v6",
        ifindex: cn,
        input: cat(eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IPV6), &to(64)),
        verdict: XDP_REDIRECT,
        output: Some(cat(
            eth(LMA_PEER_MAC, ACORE_MAC, 0, ETH_P_IPV6),
            &ipv6(
                A_LOCAL6,
                A_PEER6,
                47,
                64,
                &gre_keyed(ETH_P_IPV6, 0x4002, &to(63)),
            ),
        )),
        counter: Counter::TxEncapDownlink,
    });
    let from = |hop| ipv6(home6t, CN6, 59, hop, &[0u8; 8]);
    cases.push(Case {
        name: "anchor uplink v6 over v6",
        ifindex: acore,
        input: from_mag6(ETH_P_IPV6, 0x3002, &from(64)),
        verdict: XDP_REDIRECT,
        output: Some(cat(eth(CN_MAC, CN_IF_MAC, 0, ETH_P_IPV6), &from(63))),
        counter: Counter::TxDecapUplink,
    });
    // The subscriber's own link: to the agent (ND shell, DHCPv6 server).
    let ll1 = link_local_from_mac(SUB1_MAC);
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let rs = NdRepr::RouterSolicit {
        slla: Some(SUB1_MAC),
    }
    .to_bytes(ll1, all_routers);
    let ns = NdRepr::NeighborSolicit {
        target: GW6,
        slla: Some(SUB1_MAC),
    };
    let control = [
        (
            "uplink RS goes to the agent",
            ipv6(ll1, all_routers, 58, 255, &rs),
        ),
        (
            "uplink NS for the router goes to the agent",
            ipv6(
                ll1,
                solicited_node(GW6),
                58,
                255,
                &ns.to_bytes(ll1, solicited_node(GW6)),
            ),
        ),
        (
            "uplink NS unicast to the router's link-local goes to the agent",
            ipv6(ll1, GW6, 58, 255, &ns.to_bytes(ll1, GW6)),
        ),
        (
            "uplink DHCPv6 Solicit goes to the agent",
            ipv6(
                ll1,
                "ff02::1:2".parse().unwrap(),
                17,
                1,
                &udp(546, 547, &[1, 0, 0, 1]),
            ),
        ),
    ];
    for (name, pkt) in control {
        cases.push(Case {
            name,
            ifindex: acc,
            input: up_frame(SUB1_MAC, 0, ETH_P_IPV6, &pkt),
            verdict: XDP_PASS,
            output: None,
            counter: Counter::PassControl,
        });
    }
    // Link-local stays on the link (RFC 4291 §2.5.6): never tunneled.
    for (name, src) in [
        (
            "uplink link-local source to a global destination dropped",
            ll1,
        ),
        (
            "uplink unspecified source to a global destination dropped",
            Ipv6Addr::UNSPECIFIED,
        ),
    ] {
        cases.push(Case {
            name,
            ifindex: acc,
            input: up_frame(SUB1_MAC, 0, ETH_P_IPV6, &ipv6(src, CN6, 59, 64, &[0u8; 8])),
            verdict: XDP_DROP,
            output: None,
            counter: Counter::DropSpoofedSource,
        });
    }
    let ll6 = link_local_from_mac(UNKNOWN6_MAC);
    cases.push(Case {
        name: "unknown MAC: RS goes to the agent",
        ifindex: acc,
        input: up_frame(
            UNKNOWN6_MAC,
            0,
            ETH_P_IPV6,
            &ipv6(ll6, all_routers, 58, 255, &rs),
        ),
        verdict: XDP_PASS,
        output: None,
        counter: Counter::PassControl,
    });
    cases.push(Case {
        name: "unknown MAC: IPv6 data reported, not forwarded",
        ifindex: acc,
        input: up_frame(
            UNKNOWN6_MAC,
            0,
            ETH_P_IPV6,
            &ipv6(in_hnp(HNP1, 0x55), CN6, 59, 64, &[0u8; 8]),
        ),
        verdict: XDP_DROP,
        output: None,
        counter: Counter::DropUnregistered,
    });
    cases
}

/// An IPv6 packet whose hop limit runs out at the access gateway: ICMPv6
/// time exceeded (RFC 4443 §3.3) from the router's link-local address,
/// quoting the packet (a short one whole, a long one its first 64 bytes).
fn hop_limit_exceeded(fp: &FastPath, prog: Prog, acc: u32) -> Vec<String> {
    let src = in_hnp(HNP1, 0x99);
    let mut fails = Vec::new();
    for (hop, payload) in [(1u8, 8usize), (1, 400), (0, 24)] {
        let pkt = ipv6(src, CN6, 59, hop, &vec![0x5a; payload]);
        let before = fp.counter(Counter::TxIcmpTimeExceeded).unwrap();
        let r = run(fp, prog, acc, &up_frame(SUB1_MAC, 0, ETH_P_IPV6, &pkt));
        let what = format!("hop limit {hop}, {} bytes", pkt.len());
        if r.verdict != prog.verdict(XDP_TX) {
            fails.push(format!("time exceeded ({what}): verdict {}", r.verdict));
            continue;
        }
        if fp.counter(Counter::TxIcmpTimeExceeded).unwrap() != before + 1 {
            fails.push(format!("time exceeded ({what}): not counted"));
        }
        let o = &r.out;
        let quote = pkt.len().min(64) & !7;
        if o.len() != 14 + 40 + 8 + quote {
            fails.push(format!("time exceeded ({what}): {} bytes out", o.len()));
            continue;
        }
        let (ip, icmp) = (&o[14..54], &o[54..]);
        if o[..6] != SUB1_MAC || o[6..12] != ACC_MAC || o[12..14] != [0x86, 0xdd] {
            fails.push(format!(
                "time exceeded ({what}): Ethernet {:02x?}",
                &o[..14]
            ));
        }
        let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        if ip[6] != 58
            || ip[8..24] != GW6.octets()
            || ip[24..40] != src.octets()
            || plen != icmp.len()
        {
            fails.push(format!("time exceeded ({what}): IPv6 header {ip:02x?}"));
        }
        let sum = checksum::pseudo_v6(&GW6, &src, icmp.len() as u32, 58);
        if icmp[..2] != [3, 0]
            || icmp[4..8] != [0; 4]
            || checksum::finish(checksum::add(sum, icmp)) != 0
        {
            fails.push(format!(
                "time exceeded ({what}): ICMPv6 {:02x?}",
                &icmp[..8]
            ));
        }
        if icmp[8..] != pkt[..quote] {
            fails.push(format!(
                "time exceeded ({what}): the quote is not the packet"
            ));
        }
    }
    fails
}

/// The ICMPv6 errors the fast path sends a subscriber (time exceeded,
/// packet too big), decoded by tshark: type, code, MTU, a good checksum and
/// the quoted packet's addresses.
#[test]
fn icmpv6_errors_decode_with_tshark() {
    if !is_root() || !pmip_tests::pcap::have_tshark() {
        eprintln!("skipped: needs root and tshark");
        return;
    }
    let fx = setup(1500).expect("fixture");
    let acc = fx.acc;
    let fp = fx.fp;
    let src = in_hnp(HNP1, 0x99);
    let frames = fx
        .ns
        .run_in(move || {
            [
                ipv6(src, CN6, 17, 1, &udp(33434, 33434, &[0u8; 32])),
                ipv6(src, CN6, 59, 64, &vec![0u8; 1500 - 40]),
            ]
            .iter()
            .map(|p| {
                let r = run(&fp, Prog::Xdp, acc, &up_frame(SUB1_MAC, 0, ETH_P_IPV6, p));
                assert_eq!(r.verdict, XDP_TX);
                r.out
            })
            .collect::<Vec<_>>()
        })
        .unwrap();
    let path = std::env::temp_dir().join(format!("pmip-icmp6-{}.pcap", std::process::id()));
    pmip_tests::pcap::write_ethernet(&path, &frames).unwrap();
    let rows = pmip_tests::pcap::fields(
        &path,
        &[
            "ipv6.src",
            "ipv6.dst",
            "icmpv6.type",
            "icmpv6.code",
            "icmpv6.checksum.status",
            "icmpv6.mtu",
            "_ws.malformed",
        ],
    )
    .unwrap();
    let _ = std::fs::remove_file(&path);
    let (gw, s, cn) = (GW6.to_string(), src.to_string(), CN6.to_string());
    let want = [
        [
            format!("{gw},{s}"),
            format!("{s},{cn}"),
            "3".into(),
            "0".into(),
            "1".into(),
            String::new(),
            String::new(),
        ],
        [
            format!("{gw},{s}"),
            format!("{s},{cn}"),
            "2".into(),
            "0".into(),
            "1".into(),
            (1500 - 28).to_string(),
            String::new(),
        ],
    ];
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(got, &want.to_vec());
    }
}

/// The anchor's per-CPU caches against binding changes: the downlink's
/// `ANCHOR_CACHE` (binding and prebuilt headers by home address / prefix,
/// validated by `ANCHOR_SET_GEN`) and the uplink's peer check, which reads the
/// tunnel's remote end from the `ANCHOR_BY_KEY` entry. Subscriber 11 (the
/// fixture's AHOME4 / AHNP) is handed over to the IPv6-outer peer with new
/// keys, back, removed and re-registered as another subscriber; each change
/// is followed by two frames of each kind (the second through the refilled
/// cache). With the hash tables and with the home pools.
#[test]
fn anchor_changes_bypass_stale_caches() {
    anchor_changes(Prog::Xdp, Vec::new());
}

#[test]
fn anchor_changes_bypass_stale_caches_pools() {
    anchor_changes(Prog::Xdp, anchor_pools());
}

#[test]
fn anchor_changes_bypass_stale_caches_tc() {
    anchor_changes(Prog::Tc, anchor_pools());
}

#[test]
fn anchor_changes_bypass_stale_caches_role_programs() {
    anchor_changes(Prog::Role, anchor_pools());
}

/// Verdict, outer destination and GRE key of a tunnel packet (None when
/// not redirected).
type Sent = (u32, Option<(std::net::IpAddr, u32)>);

fn tunnelled(r: &Ran, redirect: u32) -> Sent {
    let o = &r.out;
    let out = (r.verdict == redirect).then(|| match o[12..14] {
        [0x86, 0xdd] => (
            <[u8; 16]>::try_from(&o[38..54]).unwrap().into(),
            u32::from_be_bytes(o[58..62].try_into().unwrap()),
        ),
        _ => (
            <[u8; 4]>::try_from(&o[30..34]).unwrap().into(),
            u32::from_be_bytes(o[38..42].try_into().unwrap()),
        ),
    });
    (r.verdict, out)
}

/// Three home addresses of one `ANCHOR_CACHE` set (two ways, one map
/// value): each
/// downlink packet goes into its own binding's tunnel with its own key
/// whichever way holds it — while two share the set, while three evict each
/// other — and a handover of the one in way 1 is seen at once (the set's
/// generation).
#[test]
fn anchor_cache_keeps_the_destinations_of_a_set_apart() {
    anchor_cache_set_of_three(Prog::Xdp);
}

#[test]
fn anchor_cache_keeps_the_destinations_of_a_set_apart_role_programs() {
    anchor_cache_set_of_three(Prog::Role);
}

#[test]
fn anchor_cache_keeps_the_destinations_of_a_set_apart_tc() {
    anchor_cache_set_of_three(Prog::Tc);
}

fn anchor_cache_set_of_three(prog: Prog) {
    use pmip_user::dataplane::{AnchorBinding, TunnelEnds};
    use std::net::IpAddr;
    on_fixture_with(prog, Vec::new(), move |fp, [_, _, _, cn]| {
        // The fast path's key: the address as loaded from the packet.
        let set = |a: Ipv4Addr| pmip_common::anchor_cache_set([u32::from_ne_bytes(a.octets()), 0]);
        let first = Ipv4Addr::new(10, 78, 0, 1);
        let homes: Vec<Ipv4Addr> = (1u32..1 << 16)
            .map(|i| Ipv4Addr::from(0x0a4e_0000 | i))
            .filter(|a| set(*a) == set(first))
            .take(3)
            .collect();
        anyhow::ensure!(
            homes.len() == 3,
            "no three addresses of one set in 10.78/16"
        );
        let binding = |i: usize, v6: bool, downlink_key: u32| AnchorBinding {
            sub_id: 31 + i as u32,
            tunnel: if v6 {
                TunnelEnds {
                    local: A_LOCAL6.into(),
                    remote: A_PEER6.into(),
                }
            } else {
                TunnelEnds {
                    local: A_LOCAL4.into(),
                    remote: A_PEER4.into(),
                }
            },
            uplink_key: 0x6001 + i as u32,
            downlink_key,
            home_v4: Some(homes[i]),
            hnp: None,
        };
        for i in 0..3 {
            fp.install_anchor(&binding(i, false, 0x7001 + i as u32))?;
        }
        let frames: Vec<Vec<u8>> = homes
            .iter()
            .map(|h| {
                cat(
                    eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP),
                    &echo4(CN4, *h, 64, true, 32),
                )
            })
            .collect();
        let (p4, p6): (IpAddr, IpAddr) = (A_PEER4.into(), A_PEER6.into());
        let installed = |i: usize| (p4, 0x7001 + i as u32);
        let after = |i: usize| if i == 1 { (p6, 0x7101) } else { installed(i) };
        // Home 1 is handed over to the IPv6 peer with a new key.
        set_of_three(fp, prog, cn, &frames, &installed, &after, |fp| {
            fp.install_anchor(&binding(1, true, 0x7101))
        })
    });
}

fn anchor_changes(prog: Prog, pools: Vec<pmip_user::fastpath::HomePoolSpec>) {
    use pmip_user::dataplane::{AnchorBinding, DataPlane, DpCommand, Hnp, TunnelEnds};
    on_fixture_with(prog, pools, move |fp, [_, _, acore, cn]| {
        let (redirect, drop, pass) = (
            prog.verdict(XDP_REDIRECT),
            prog.verdict(XDP_DROP),
            prog.verdict(XDP_PASS),
        );
        let to_hnp = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 5, 0, 0, 0, 1);
        let down4 = cat(
            eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IP),
            &echo4(CN4, AHOME4, 64, true, 32),
        );
        let down6 = cat(
            eth(CN_IF_MAC, CN_MAC, 0, ETH_P_IPV6),
            &ipv6(CN6, to_hnp, 59, 64, &[0u8; 8]),
        );
        let inner = echo4(AHOME4, CN4, 64, true, 32);
        let up_v4 = from_mag4(ETH_P_IP, 0x3001, &inner);
        let up_v6 = from_mag6(ETH_P_IP, 0x3001, &inner);
        let ends = |v6: bool| {
            if v6 {
                TunnelEnds {
                    local: A_LOCAL6.into(),
                    remote: A_PEER6.into(),
                }
            } else {
                TunnelEnds {
                    local: A_LOCAL4.into(),
                    remote: A_PEER4.into(),
                }
            }
        };
        let binding = |sub_id, v6, downlink_key| AnchorBinding {
            sub_id,
            tunnel: ends(v6),
            uplink_key: 0x3001,
            downlink_key,
            home_v4: Some(AHOME4),
            hnp: Some(Hnp {
                prefix: AHNP,
                len: 64,
            }),
        };
        let mut fails = Vec::new();
        // Two frames of each kind: both directions, IPv4 and IPv6 inner
        // downlink; `down` the downlink wanted, `up4`/`up6` the verdicts
        // of the uplink from the IPv4 and the IPv6 peer.
        let mut expect =
            |fp: &FastPath, what: &str, down: Option<(std::net::IpAddr, u32)>, up: (u32, u32)| {
                let want_down = (if down.is_some() { redirect } else { pass }, down);
                for n in ["", ", cached"] {
                    for (f, kind) in [(&down4, "v4"), (&down6, "v6")] {
                        let got = tunnelled(&run(fp, prog, cn, f), redirect);
                        if got != want_down {
                            fails.push(format!(
                                "{what}{n}: downlink {kind}: got {got:x?}, want {want_down:x?}"
                            ));
                        }
                    }
                    for (f, want, kind) in [(&up_v4, up.0, "v4 peer"), (&up_v6, up.1, "v6 peer")] {
                        let got = run(fp, prog, acore, f).verdict;
                        if got != want {
                            fails.push(format!(
                                "{what}{n}: uplink from the {kind}: got {got}, want {want}"
                            ));
                        }
                    }
                }
            };
        let (p4, p6): (std::net::IpAddr, std::net::IpAddr) = (A_PEER4.into(), A_PEER6.into());
        expect(fp, "installed", Some((p4, 0x4001)), (redirect, drop));
        fp.install_anchor(&binding(11, true, 0x4501))?;
        expect(
            fp,
            "handed over to the IPv6 peer",
            Some((p6, 0x4501)),
            (drop, redirect),
        );
        fp.install_anchor(&binding(11, false, 0x4601))?;
        expect(
            fp,
            "back to the IPv4 peer",
            Some((p4, 0x4601)),
            (redirect, drop),
        );
        fp.apply(&DpCommand::RemoveAnchor(binding(11, false, 0x4601)))?;
        expect(fp, "removed", None, (drop, drop));
        fp.install_anchor(&binding(13, true, 0x4777))?;
        expect(
            fp,
            "back as subscriber 13",
            Some((p6, 0x4777)),
            (drop, redirect),
        );
        Ok(fails)
    });
}
