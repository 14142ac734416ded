//! Per-subscriber traffic counters (pmip-ebpf/src/stats.rs): exact through
//! evictions from the per-CPU table, and exact while a reader reads them
//! as two CPUs count and evict. BPF_PROG_TEST_RUN on the fixture gateway.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use aya::programs::{TestRun, TestRunOptions};
use pmip_tests::fixture::*;
use pmip_tests::netns::is_root;
use pmip_tests::packet::*;
use pmip_user::dataplane::{
    AccessBinding, AccessPoint, AnchorBinding, TrafficCounters, TunnelEnds,
};
use pmip_user::fastpath::FastPath;

const XDP_REDIRECT: u32 = 4;

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// An access binding for subscriber `sub_id` (no home address: any source).
fn binding(acc: u32, sub_id: u32) -> AccessBinding {
    AccessBinding {
        at: AccessPoint {
            ifindex: acc,
            vlan: 0,
            mac: mac(sub_id),
        },
        sub_id,
        tunnel: TunnelEnds {
            local: MAG4.into(),
            remote: LMA4.into(),
        },
        uplink_key: 0x5000 + sub_id,
        downlink_key: 0x6000 + sub_id,
        home_v4: None,
        gateway_v4: Some(GW4),
        hnp: None,
    }
}

/// The inner packet of every frame (its length is what the bytes count).
fn inner(i: u32) -> Vec<u8> {
    ipv4(
        Ipv4Addr::new(10, 64, 1, i as u8),
        CN4,
        1,
        64,
        true,
        &icmp_echo(7, 1, &[0xab; 32]),
    )
}

fn frame(sub_id: u32) -> Vec<u8> {
    let mut f = eth(ACC_MAC, mac(sub_id), 0, ETH_P_IP);
    f.extend_from_slice(&inner(sub_id));
    f
}

fn send(fp: &FastPath, acc: u32, f: &[u8]) {
    let mut out = vec![0u8; 4096];
    let ctx = xdp_md(acc, f.len());
    let r = fp
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(f),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..Default::default()
        })
        .expect("test run");
    assert_eq!(r.return_value, XDP_REDIRECT, "forwarded");
}

/// `n` subscriber ids (from 1) whose SUB_ACTIVE slots are in one set: on one
/// CPU, with two ways, every third of them evicts another.
fn colliding(slots: u32, n: usize) -> Vec<u32> {
    let set = pmip_common::sub_active_set(1, slots);
    (1..200_000)
        .filter(|&i| pmip_common::sub_active_set(i, slots) == set)
        .take(n)
        .collect()
}

fn up(packets: u64, len: u64) -> TrafficCounters {
    TrafficCounters {
        up_packets: packets,
        up_bytes: packets * len,
        down_packets: 0,
        down_bytes: 0,
    }
}

fn down(packets: u64, len: u64) -> TrafficCounters {
    TrafficCounters {
        up_packets: 0,
        up_bytes: 0,
        down_packets: packets,
        down_bytes: packets * len,
    }
}

/// Three subscribers of one set take turns on one CPU: each packet of one
/// evicts another's slot into its total. Every count stays exact, and the
/// totals show the flushes happened. Their uplink flows keep where each
/// one's slot was (`UplinkFlow::sub_slot`): every eviction makes that stale,
/// and a flow that trusted it without the slot's tag would count into
/// another subscriber's slot (this test then fails).
#[test]
fn counters_stay_exact_through_evictions() {
    take_turns_in_one_set(
        |fx| fx.acc,
        |fp, acc, id, _| fp.install_access(&binding(acc, id)),
        |id, _| frame(id),
        inner(0).len() as u64,
    );
}

/// The anchor's uplink, as `counters_stay_exact_through_evictions`: three
/// subscribers of one set send to one destination, so their packets share
/// one `DEST_NH` slot and its counter-slot hint (`DestNextHop::sub_slot`),
/// which each packet finds pointing at another subscriber's slot. A hint
/// trusted without the slot's tag counts into the wrong subscriber.
#[test]
fn anchor_counters_stay_exact_through_evictions() {
    fn home(k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 1, 1 + k as u8)
    }
    fn inner_of(k: usize) -> Vec<u8> {
        ipv4(home(k), CN4, 1, 64, true, &icmp_echo(7, 1, &[0xab; 32]))
    }
    take_turns_in_one_set(
        |fx| fx.acore,
        |fp, _, id, k| {
            fp.install_anchor(&AnchorBinding {
                sub_id: id,
                tunnel: TunnelEnds {
                    local: A_LOCAL4.into(),
                    remote: A_PEER4.into(),
                },
                uplink_key: 0x7000 + id,
                downlink_key: 0x8000 + id,
                home_v4: Some(home(k)),
                hnp: None,
            })
        },
        |id, k| from_mag4(ETH_P_IP, 0x7000 + id, &inner_of(k)),
        inner_of(0).len() as u64,
    );
}

/// The access downlink finds its subscriber by the GRE key and guesses the
/// counters' slot from the key before the binding is read (the key − id
/// offset last seen on this CPU, `stats::account_keyed`). Three colliding
/// subscribers take turns: with keys that follow their ids (one offset), the
/// guess is right and the slot's tag decides; with keys that do not (an
/// offset of its own each), every guess is wrong and the offset is relearned
/// per packet. Counting on a right guess without the tag, or on a wrong one,
/// puts packets on another subscriber (this test then fails).
#[test]
fn access_downlink_counters_stay_exact_through_evictions() {
    take_turns_in_one_set_counted(
        |fx| fx.core,
        |fp, acc, id, _| fp.install_access(&binding(acc, id)),
        |id, _| from_lma4(ETH_P_IP, 0x6000 + id, &inner(0)),
        down(ROUNDS, inner(0).len() as u64),
    );
}

#[test]
fn access_downlink_counters_stay_exact_when_keys_do_not_follow_ids() {
    fn key(id: u32, k: usize) -> u32 {
        0x6000 + id + 0x100 * k as u32
    }
    take_turns_in_one_set_counted(
        |fx| fx.core,
        |fp, acc, id, k| {
            fp.install_access(&AccessBinding {
                downlink_key: key(id, k),
                ..binding(acc, id)
            })
        },
        |id, k| from_lma4(ETH_P_IP, key(id, k), &inner(0)),
        down(ROUNDS, inner(0).len() as u64),
    );
}

/// Three subscribers of one `SUB_ACTIVE` set (`install` puts the `k`th,
/// subscriber `id`, on the fixture, given its access interface) send 50
/// uplink packets each in turn to interface `ifindex` of the fixture, on
/// CPU 0 (`frame`: subscriber `id`'s, the `k`th; `len`: its inner packet's
/// length). Each one's total plus its per-CPU slots is exactly what it
/// sent, and most of it went through the total (evictions).
fn take_turns_in_one_set(
    ifindex: fn(&Fixture) -> u32,
    install: fn(&mut FastPath, u32, u32, usize) -> anyhow::Result<()>,
    frame: fn(u32, usize) -> Vec<u8>,
    len: u64,
) {
    take_turns_in_one_set_counted(ifindex, install, frame, up(ROUNDS, len));
}

/// Packets each subscriber sends in `take_turns_in_one_set`.
const ROUNDS: u64 = 50;

/// [`take_turns_in_one_set`] with the counts each subscriber must end with
/// (`expected`: uplink or downlink).
fn take_turns_in_one_set_counted(
    ifindex: fn(&Fixture) -> u32,
    install: fn(&mut FastPath, u32, u32, usize) -> anyhow::Result<()>,
    frame: fn(u32, usize) -> Vec<u8>,
    expected: TrafficCounters,
) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = setup(1500).expect("fixture");
    let (ifx, acc) = (ifindex(&fx), fx.acc);
    let mut fp = fx.fp;
    let (ids, parts) = fx
        .ns
        .run_in(move || -> anyhow::Result<_> {
            let (_, slots) = fp.active_slots();
            let ids = colliding(slots, 3);
            for (k, &id) in ids.iter().enumerate() {
                install(&mut fp, acc, id, k)?;
            }
            pmip_tests::tput::pin_cpu(0)?;
            for _ in 0..ROUNDS {
                for (k, &id) in ids.iter().enumerate() {
                    send(&fp, ifx, &frame(id, k));
                }
            }
            let parts: Vec<_> = ids
                .iter()
                .map(|&id| fp.traffic_parts(id))
                .collect::<anyhow::Result<_>>()?;
            Ok((ids, parts))
        })
        .expect("namespace")
        .expect("test run");
    for (id, (total, per_cpu)) in ids.iter().zip(&parts) {
        let mut sum = *total;
        for c in per_cpu {
            sum.add(c);
        }
        assert_eq!(sum, expected, "subscriber {id}: {total:?} + {per_cpu:?}");
        // Three in a set of two ways, in turn: once the ways are full, each
        // one's slot is taken before its next packet, so most of its
        // packets went through its total.
        assert!(
            total.up_packets + total.down_packets >= ROUNDS - 3,
            "subscriber {id}: {total:?}"
        );
    }
}

/// Two CPUs count and evict three colliding subscribers while this thread
/// reads them over and over: every read is exact at some moment (never more
/// than was sent, never less than an earlier read), and the last one is the
/// exact number sent.
#[test]
fn counters_read_exactly_while_they_change() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    if pmip_tests::tput::ncpus() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let fx = setup(1500).expect("fixture");
    let acc = fx.acc;
    let mut fp = fx.fp;
    const PER_CPU: u64 = 3000;
    let (ids, last, reads) = fx
        .ns
        .run_in(move || -> anyhow::Result<_> {
            let (_, slots) = fp.active_slots();
            let ids = colliding(slots, 3);
            for &id in &ids {
                fp.install_access(&binding(acc, id))?;
            }
            let fp = &fp;
            let done = AtomicBool::new(false);
            let mut reads = 0u64;
            std::thread::scope(|s| -> anyhow::Result<()> {
                let writers: Vec<_> = (0..2)
                    .map(|cpu| {
                        // Threads start in this thread's network namespace.
                        let ids = &ids;
                        s.spawn(move || -> anyhow::Result<()> {
                            pmip_tests::tput::pin_cpu(cpu)?;
                            for _ in 0..PER_CPU {
                                for &id in ids {
                                    send(fp, acc, &frame(id));
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                let mut seen = vec![0u64; ids.len()];
                while !done.load(Ordering::Relaxed) {
                    for (k, &id) in ids.iter().enumerate() {
                        let t = fp.traffic(id)?;
                        anyhow::ensure!(
                            t.up_packets >= seen[k] && t.up_packets <= 2 * PER_CPU,
                            "subscriber {id}: read {} after {} (sent at most {})",
                            t.up_packets,
                            seen[k],
                            2 * PER_CPU
                        );
                        seen[k] = t.up_packets;
                        reads += 1;
                    }
                    done.store(writers.iter().all(|w| w.is_finished()), Ordering::Relaxed);
                }
                for w in writers {
                    w.join().expect("writer")?;
                }
                Ok(())
            })?;
            let last: Vec<_> = ids
                .iter()
                .map(|&id| fp.traffic(id))
                .collect::<anyhow::Result<_>>()?;
            Ok((ids, last, reads))
        })
        .expect("namespace")
        .expect("test run");
    let len = inner(0).len() as u64;
    for (id, t) in ids.iter().zip(&last) {
        assert_eq!(*t, up(2 * PER_CPU, len), "subscriber {id}");
    }
    assert!(
        reads > 10,
        "the reader ran while the counts changed ({reads} reads)"
    );
}
