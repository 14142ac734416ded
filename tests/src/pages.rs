//! Which pages a lookup in a large table pays for (`pmip-bench pages`,
//! issue 18): the test object's `tg_pages_flat` (one array of N 40-byte
//! entries, vmalloc'ed in 4 KiB pages) against `tg_pages_split` (the same
//! entries in arrays of 512, each kmalloc'ed in the kernel's direct map),
//! at each table size, over the same 1000 distinct random entries as `bench
//! scale` and with one hot entry. Single kernel-timed BPF_PROG_TEST_RUNs;
//! sizes and programs interleaved round by round, on one pinned CPU.
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use aya::maps::{Array, ArrayOfMaps, MapData};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use pmip_user::fastpath::default_test_object_path;
use serde_json::{json, Value};

use crate::packet::*;
use crate::scale::time_runs;
use crate::tput::{median, spread};

/// Entries of an inner array (pmip-ebpf/src/test/pages.rs `SPLIT_BITS`).
const SPLIT: u32 = 512;
const PROGS: [&str; 2] = ["tg_pages_flat", "tg_pages_split"];
/// What both programs return for an entry they found.
const XDP_PASS: u32 = 2;

struct Table {
    n: u32,
    ebpf: Ebpf,
    /// The inner arrays: held so that they outlive the run.
    _inner: Vec<Array<MapData, [u64; 5]>>,
    frames: Vec<Vec<u8>>,
}

fn frame(i: u32) -> Vec<u8> {
    let ip = ipv4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::from(0x0a00_0000 | i),
        1,
        64,
        true,
        &icmp_echo(7, 1, &[0xab; 32]),
    );
    cat(eth([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 0, 0x0800), &ip)
}

fn build(n: u32, pool: usize) -> Result<Table> {
    if n > 2048 * SPLIT {
        bail!("{n}: at most {} entries", 2048 * SPLIT);
    }
    let path = default_test_object_path();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("PAGES_FLAT", n)
        .load_file(&path)
        .with_context(|| format!("loading {}", path.display()))?;
    for p in PROGS {
        let prog: &mut Xdp = ebpf.program_mut(p).context(p)?.try_into()?;
        prog.load()?;
    }
    let picks = crate::scale::distinct_picks(n, pool);
    let value = |i: u32| [i as u64, 1, 2, 3, 4];
    let mut flat: Array<_, [u64; 5]> =
        Array::try_from(ebpf.map_mut("PAGES_FLAT").context("PAGES_FLAT")?)?;
    for &i in &picks {
        flat.set(i, value(i), 0)?;
    }
    let mut inner = Vec::new();
    for _ in 0..n.div_ceil(SPLIT) {
        inner.push(Array::<MapData, [u64; 5]>::create(SPLIT, 0)?);
    }
    for &i in &picks {
        inner[(i / SPLIT) as usize].set(i % SPLIT, value(i), 0)?;
    }
    let mut outer: ArrayOfMaps<_, Array<MapData, [u64; 5]>> =
        ArrayOfMaps::try_from(ebpf.map_mut("PAGES_SPLIT").context("PAGES_SPLIT")?)?;
    for (k, m) in inner.iter().enumerate() {
        outer.set(k as u32, m, 0)?;
    }
    Ok(Table {
        n,
        ebpf,
        _inner: inner,
        frames: picks.iter().map(|&i| frame(i)).collect(),
    })
}

pub fn pages(cfg: &crate::scale::Config) -> Result<Value> {
    let tables = cfg
        .sizes
        .iter()
        .map(|&n| build(n, crate::scale::POOL))
        .collect::<Result<Vec<_>>>()?;
    let cpu = crate::tput::bench_cpu();
    crate::tput::pin_cpu(cpu)?;
    eprintln!("  measuring on CPU {cpu} (pinned)");
    // samples[table][prog][random, hot] = per-round (median, iqm)
    let mut samples = vec![vec![[Vec::new(), Vec::new()]; PROGS.len()]; tables.len()];
    for _ in 0..cfg.rounds {
        for (ti, t) in tables.iter().enumerate() {
            for (pi, p) in PROGS.iter().enumerate() {
                let prog: &Xdp = t.ebpf.program(p).context(*p)?.try_into()?;
                samples[ti][pi][0].push(time_runs(prog, &t.frames, None, XDP_PASS, cfg.runs)?);
                samples[ti][pi][1].push(time_runs(prog, &t.frames[..1], None, XDP_PASS, cfg.runs)?);
            }
        }
    }
    println!("a lookup in a table of N 40-byte entries (BPF_PROG_TEST_RUN, single runs; median / iqm ns, ratio to the smallest table)");
    println!(
        "{:<16} {:>8} {:>15} {:>8} {:>11} {:>15}",
        "program", "entries", "random", "spread", "x smallest", "one entry"
    );
    let mut rows = Vec::new();
    for (pi, p) in PROGS.iter().enumerate() {
        let first = |k: usize, f: fn(&(f64, f64)) -> f64| {
            median(&samples[0][pi][k].iter().map(f).collect::<Vec<_>>()).max(1.0)
        };
        let (f_med, f_iqm) = (first(0, |x| x.0), first(0, |x| x.1));
        for (ti, t) in tables.iter().enumerate() {
            let col = |k: usize, f: fn(&(f64, f64)) -> f64| {
                samples[ti][pi][k].iter().map(f).collect::<Vec<_>>()
            };
            let (med, iqm) = (median(&col(0, |x| x.0)), median(&col(0, |x| x.1)));
            let (hot_med, hot_iqm) = (median(&col(1, |x| x.0)), median(&col(1, |x| x.1)));
            println!(
                "{p:<16} {:>8} {med:>7.1} / {iqm:>5.1} {:>8.1} {:>5.2} / {:>4.2} {hot_med:>7.1} / {hot_iqm:>5.1}",
                t.n,
                spread(&col(0, |x| x.1)),
                med / f_med,
                iqm / f_iqm,
            );
            rows.push(json!({"program": p, "entries": t.n,
                "median_ns": med, "iqm_ns": iqm, "iqm_spread_ns": spread(&col(0, |x| x.1)),
                "ratio_to_smallest": med / f_med, "iqm_ratio_to_smallest": iqm / f_iqm,
                "hot_median_ns": hot_med, "hot_iqm_ns": hot_iqm}));
        }
    }
    Ok(
        json!({"benchmark": "pages", "rounds": cfg.rounds, "runs": cfg.runs, "cpu": cpu, "rows": rows}),
    )
}
