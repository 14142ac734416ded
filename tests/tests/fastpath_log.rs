//! The fast path's debug events (pmip-ebpf/src/log.rs) reach the agent's
//! tracing through `pmip_user::fastpath_log`: a drop with its reason, a
//! packet handed to the kernel because its next hop has no neighbour entry,
//! data from a new MAC — from the XDP and the TC program. With logging off
//! (the default) the programs write nothing.
use std::net::Ipv4Addr;
use std::time::Duration;

use aya::maps::{Map, MapData, RingBuf};
use aya::programs::{TestRun, TestRunOptions};
use pmip_common::{maps, Counter};
use pmip_tests::fixture::*;
use pmip_tests::netns::is_root;
use pmip_tests::packet::*;
use pmip_user::fastpath::{FastPath, LoadOptions};
use tokio::sync::mpsc;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const TC_ACT_SHOT: u32 = 2;
const UNKNOWN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x77];
/// On cn0's subnet, without a neighbour entry (the fixture has CN4's only).
const UNRESOLVED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);

/// Sends (target, message) of every tracing event into a channel.
struct Capture(mpsc::UnboundedSender<(String, String)>);

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Msg(String);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Msg(String::new());
        e.record(&mut m);
        let _ = self.0.send((e.metadata().target().to_string(), m.0));
    }
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    ipv4(src, dst, 1, 64, true, &icmp_echo(7, 1, &[0xab; 32]))
}

/// A registered subscriber's frame whose IPv4 header is cut short.
fn malformed() -> Vec<u8> {
    let mut f = eth(ACC_MAC, SUB1_MAC, 0, ETH_P_IP);
    f.extend_from_slice(&echo(HOME1, CN4)[..12]);
    f
}

fn run_xdp(fp: &FastPath, ifindex: u32, frame: &[u8]) -> u32 {
    let mut out = vec![0u8; 4096];
    fp.program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&xdp_md(ifindex, frame.len())),
            ..Default::default()
        })
        .unwrap()
        .return_value
}

fn run_tc(fp: &FastPath, ifindex: u32, frame: &[u8]) -> u32 {
    let mut out = vec![0u8; 4096];
    fp.tc_program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&sk_buff(ifindex)),
            ..Default::default()
        })
        .unwrap()
        .return_value
}

/// The next `pmip_ebpf` message, awaited (the forwarding task wakes on the
/// ring buffer's readiness); panics after 10 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> String {
    loop {
        let (target, msg) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no fast path event within 10 s")
            .expect("capture closed");
        if target == "pmip_ebpf" {
            return msg;
        }
    }
}

#[test]
fn debug_events_reach_tracing() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let opts = LoadOptions {
        home_pools: anchor_pools(),
        log_events: true,
        ..Default::default()
    };
    let fx = setup_with(1500, opts).expect("fixture");
    let (acc, acore) = (fx.acc, fx.acore);
    let mut fp = fx.fp;
    fx.ns
        .run_in(move || {
            // Logging on, both programs still pass the verifier.
            fp.load_tc_program().expect("loading pmip_tc_ingress");
            let (tx, mut rx) = mpsc::unbounded_channel();
            let _guard =
                tracing::subscriber::set_default(tracing_subscriber::registry().with(Capture(tx)));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let task = pmip_user::fastpath_log::spawn(&fp).expect("spawn");

                assert_eq!(run_xdp(&fp, acc, &malformed()), XDP_DROP);
                let m = next(&mut rx).await;
                assert_eq!(
                    m,
                    format!("drop drop_malformed: in ifindex {acc} from 02:00:00:00:00:10")
                );

                // Anchor uplink to a destination whose neighbour is unknown:
                // decapsulated, to the kernel.
                let a_up = from_mag4(ETH_P_IP, 0x3001, &echo(AHOME4, UNRESOLVED));
                assert_eq!(run_xdp(&fp, acore, &a_up), XDP_PASS);
                let m = next(&mut rx).await;
                assert_eq!(
                    m,
                    format!(
                        "fib: no next hop for {UNRESOLVED} (in ifindex {acore}): pass_no_neighbour"
                    )
                );

                // Data from a MAC without a binding: the report, not a drop line.
                let data = cat(eth(ACC_MAC, UNKNOWN_MAC, 0, ETH_P_IP), &echo(HOME1, CN4));
                assert_eq!(run_xdp(&fp, acc, &data), XDP_DROP);
                let m = next(&mut rx).await;
                assert_eq!(
                    m,
                    format!(
                        "new MAC 02:00:00:00:00:77 on ifindex {acc} VLAN 0, IPv4 source {HOME1}"
                    )
                );

                // The TC program logs the same way (a whole frame: TC's test
                // run refuses a cut IPv4 header).
                let spoofed = cat(eth(ACC_MAC, SUB1_MAC, 0, ETH_P_IP), &echo(HOME2, CN4));
                assert_eq!(run_tc(&fp, acc, &spoofed), TC_ACT_SHOT);
                let m = next(&mut rx).await;
                assert_eq!(
                    m,
                    format!("drop drop_spoofed_source: in ifindex {acc} from 02:00:00:00:00:10")
                );
                assert_eq!(fp.counter(Counter::DropUnregistered).unwrap(), 1);
                task.abort();
            });
        })
        .unwrap();
}

#[test]
fn no_debug_events_when_off() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = setup(1500).expect("fixture");
    let acc = fx.acc;
    let fp = fx.fp;
    fx.ns
        .run_in(move || {
            assert_eq!(run_xdp(&fp, acc, &malformed()), XDP_DROP);
            assert_eq!(fp.counter(Counter::DropMalformed).unwrap(), 1);
            // The program wrote its record (if any) before the run returned:
            // the ring buffer is read here directly.
            let info = fp.program().unwrap().info().unwrap();
            let ring = info
                .map_ids()
                .unwrap()
                .unwrap()
                .into_iter()
                .filter_map(|id| MapData::from_id(id).ok())
                .find(|m| m.info().unwrap().name_as_str() == Some(maps::AYA_LOGS))
                .expect("the program uses the aya-log ring buffer");
            let mut ring = RingBuf::try_from(Map::RingBuf(ring)).unwrap();
            assert!(ring.next().is_none(), "a record with logging off");
        })
        .unwrap();
}
