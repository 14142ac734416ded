//! Figures of the anchor cluster (issue 17, BENCHMARKS.md "Anchor cluster
//! on etcd"), on the lab of tests/src/cluster: three real etcd members,
//! three `pmipd run` anchors, access gateways with stock DHCP clients.
//!
//! ```text
//! cargo xtask build-ebpf
//! PMIP_EBPF_OBJECT=$PWD/target/bpf/pmip-ebpf.o PMIP_EBPF_TEST_OBJECT=$PWD/target/bpf/pmip-ebpf-test.o \
//!   cargo test --release -p pmip-tests --test cluster_bench -- --ignored --nocapture --test-threads 1
//! ```
//! `PMIP_BENCH_RUNS` (default 3) labs per figure, `PMIP_BENCH_BINDINGS`
//! (default 15 000) bindings per run, `PMIP_BENCH_DRIVERS` (default 3) driver MAGs,
//! `PMIP_BENCH_DIRECT=1` all attaches to one anchor's service address (no redirect),
//! `PMIP_BENCH_ETCD_ARGS` extra flags of the etcd members, `PMIP_BENCH_MAX_TXN_OPS`
//! operations per etcd transaction (anchors and members), `PMIP_BENCH_UDP_GSO=1` the
//! anchors' `signaling.udp_gso`, `PMIP_CLUSTER_LAYOUT=packed` the anchors'
//! `store.layout` (every lab of tests/src/cluster). Each figure is printed on a
//! `FIGURES` line with the median of the runs and the load average.
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::cluster::cpu::{CpuGroups, PerBinding};
use pmip_tests::cluster::driver::Drivers;
use pmip_tests::cluster::takeover::{kill_owner, median, up_owned, Takeover};
use pmip_tests::cluster::{etcd_ip, service_addr, ClusterLab, ClusterOpts};
use pmip_tests::cpu::{env_or, loadavg};
use pmip_tests::etcd;

static SERIAL: Mutex<()> = Mutex::new(());

fn run(f: impl FnOnce() -> Result<()>) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if unsafe { libc::geteuid() } != 0 || !etcd::available() {
        eprintln!("skipped: needs root and etcd (Debian etcd-server, etcd-client)");
        return;
    }
    if std::env::var_os("PMIP_EBPF_OBJECT").is_none() {
        eprintln!("skipped: PMIP_EBPF_OBJECT not set (cargo xtask build-ebpf)");
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

/// The lab with the configuration's default lease and heartbeat settings
/// (store.lease_ttl_s 2, cluster.heartbeat_interval_ms 100 × 4 misses).
fn opts(tag: &str) -> ClusterOpts {
    let mut o = ClusterOpts::new(tag);
    o.lease_ttl_s = 2;
    o.heartbeat_interval_ms = 100;
    o.heartbeat_misses = 4;
    o.log_filter = "warn".into();
    // PMIP_BENCH_ETCD_ARGS: extra flags of the etcd members, space-separated.
    o.etcd_args = std::env::var("PMIP_BENCH_ETCD_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    // PMIP_BENCH_MAX_TXN_OPS: operations per etcd transaction, the anchors'
    // store.max_txn_ops and the members' --max-txn-ops (default 128: a pass
    // of up to 257 records is then three transactions one after the other).
    // PMIP_BENCH_UDP_GSO=1: the anchors and the driver MAGs send runs of
    // PBAs and PBUs with UDP GSO and read runs with UDP_GRO.
    o.udp_gso = std::env::var_os("PMIP_BENCH_UDP_GSO").is_some();
    // PMIP_BENCH_WRITES_IN_FLIGHT, PMIP_BENCH_BATCH_MAX, PMIP_BENCH_RCVBUF_KIB:
    // the anchors' store.writes_in_flight, store.batch_max and
    // signaling.receive_buffer_kib.
    o.writes_in_flight = std::env::var("PMIP_BENCH_WRITES_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok());
    o.batch_max = std::env::var("PMIP_BENCH_BATCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok());
    o.receive_buffer_kib = std::env::var("PMIP_BENCH_RCVBUF_KIB")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Ok(n) = std::env::var("PMIP_BENCH_MAX_TXN_OPS") {
        let n: u32 = n.parse().unwrap_or(128);
        o.max_txn_ops = Some(n);
        o.etcd_args.extend(["--max-txn-ops".into(), n.to_string()]);
    }
    o
}

/// etcd's backend size (bytes allocated, bytes in use) on the leader.
fn db_size(lab: &ClusterLab) -> Result<(u64, u64)> {
    let out = lab
        .etcd
        .as_ref()
        .context("etcd")?
        .ctl(&["endpoint", "status", "-w", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("endpoint status")?;
    let mut best = (0, 0);
    for e in v.as_array().context("endpoint status array")? {
        let s = &e["Status"];
        let size = s["dbSize"].as_u64().unwrap_or(0);
        let used = s["dbSizeInUse"].as_u64().unwrap_or(0);
        best = best.max((size, used));
    }
    Ok(best)
}

/// Resident memory of etcd member `i` (its own /metrics).
fn etcd_rss(lab: &ClusterLab, i: usize) -> Result<u64> {
    let url = format!("http://{}:2379/metrics", etcd_ip(i));
    let out = lab.sw.exec(&["curl", "-s", "--max-time", "3", &url])?;
    out.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("process_resident_memory_bytes")
}

/// UDP datagrams dropped because a socket's receive buffer was full
/// (`RcvbufErrors` of /proc/net/snmp) in `ns`: a burst the signaling
/// socket could not hold, each one a retransmission timeout for a MAG.
fn udp_rcvbuf_errors(ns: &pmip_tests::netns::Netns) -> u64 {
    let snmp = ns.exec(&["cat", "/proc/net/snmp"]).unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Packets the kernel dropped because a CPU's input backlog was full
/// (`netdev_max_backlog`; the second column of /proc/net/softnet_stat,
/// summed over CPUs): on veth every packet sent is queued there for the
/// receiving side. Host-wide, not per namespace.
fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|v| u64::from_str_radix(v, 16).ok())
        .sum()
}

/// Packets dropped in `ns` while waiting for their neighbour's address
/// (`unresolved_discards` of /proc/net/stat/arp_cache, summed over CPUs).
fn arp_discards(ns: &pmip_tests::netns::Netns) -> u64 {
    let t = ns
        .exec(&["cat", "/proc/net/stat/arp_cache"])
        .unwrap_or_default();
    let mut lines = t.lines();
    let Some(col) = lines.next().and_then(|h| {
        h.split_whitespace()
            .position(|n| n == "unresolved_discards")
    }) else {
        return 0;
    };
    lines
        .filter_map(|l| l.split_whitespace().nth(col))
        .filter_map(|v| u64::from_str_radix(v, 16).ok())
        .sum()
}

/// Packets the links of `ns` dropped, received and sent (`ip -s link`'s
/// rx and tx `dropped`, summed over its links): a veth that could not take
/// a frame, an XDP program's drops.
fn link_drops(ns: &pmip_tests::netns::Netns) -> u64 {
    let j = ns.exec(&["ip", "-j", "-s", "link"]).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let s = &l["stats64"];
            s["rx"]["dropped"].as_u64().unwrap_or(0) + s["tx"]["dropped"].as_u64().unwrap_or(0)
        })
        .sum()
}

fn rss_sum(lab: &ClusterLab) -> Result<u64> {
    (0..3).map(|i| etcd_rss(lab, i)).sum()
}

/// Bindings per second through three anchors on three etcd members, and
/// what each binding costs in etcd.
#[test]
#[ignore = "benchmark: --ignored --nocapture, release"]
fn bench_cluster_bindings_per_second() {
    run(|| {
        let runs = env_or("PMIP_BENCH_RUNS", 3);
        let n = env_or("PMIP_BENCH_BINDINGS", 15_000);
        let drivers = env_or("PMIP_BENCH_DRIVERS", 3).clamp(1, 40);
        let (mut rates, mut per_rec, mut per_db, mut per_rss) = (vec![], vec![], vec![], vec![]);
        let mut cpus: Vec<PerBinding> = vec![];
        // Puts per etcd transaction, in tenths.
        let mut per_txn: Vec<u64> = vec![];
        for r in 0..runs {
            let mut o = opts(&format!("cb{r}"));
            o.drivers = drivers;
            let lab = up_owned(o)?;
            let d = Drivers::new(&lab, drivers)?;
            let (db0, used0) = db_size(&lab)?;
            let rss0 = rss_sum(&lab)?;
            // PMIP_BENCH_DIRECT=1: every attach straight to the first service
            // address (one anchor, no redirect) instead of the cluster address.
            let to = std::env::var_os("PMIP_BENCH_DIRECT")
                .map(|_| service_addr(0).parse())
                .transpose()?;
            // CPU per binding by group: from before the first attach to
            // after the last answer (the drivers' threads ended).
            let groups = CpuGroups::of(&lab)?;
            let cpu0 = groups.sample()?;
            let backlog0 = backlog_drops();
            let links_of = || {
                [
                    lab.anchor_ns.iter().map(link_drops).sum::<u64>(),
                    d.ns.iter().map(link_drops).sum(),
                    link_drops(&lab.sw),
                ]
            };
            let links0 = links_of();
            let got = d.attach(n, to, Duration::from_secs(300))?;
            let cpu = cpu0.per_binding(&groups.sample()?, n);
            let backlog = backlog_drops().saturating_sub(backlog0);
            let links: Vec<u64> = links_of()
                .iter()
                .zip(links0)
                .map(|(a, b)| a.saturating_sub(b))
                .collect();
            ensure!(
                got.failed == 0 && got.bindings.len() == n,
                "{} bound, {} failed of {n}",
                got.bindings.len(),
                got.failed
            );
            let (db1, used1) = db_size(&lab)?;
            let rss1 = rss_sum(&lab)?;
            let recs = lab
                .etcd
                .as_ref()
                .context("etcd")?
                .get_prefix(&format!("/pmip/{}/svc/", lab.opts.tag))?;
            // Binding records in either layout (PMIP_CLUSTER_LAYOUT):
            // per-binding keys or packs, what etcd holds for them.
            let bytes: usize = recs
                .iter()
                .filter(|(k, _)| k.contains("/lma/") || k.contains("/pack/"))
                .map(|(k, v)| k.len() + v.len())
                .sum();
            let etcd = lab.etcd.as_ref().context("etcd")?;
            let mut count = 0;
            for k in 0..3 {
                let svc = format!("/pmip/{}/svc/{}/", lab.opts.tag, service_addr(k));
                count += etcd.bindings(&svc)?.len();
            }
            ensure!(count == n, "{count} binding records in etcd, {n} bound");
            let rate = got.per_second();
            // How the writes were batched: the store's batches (one per
            // pass of a registrar), the etcd transactions they took (a batch
            // of more than store.max_txn_ops is split) and the records written.
            let (mut batches, mut txns, mut writes, mut puts) = (0u64, 0u64, 0u64, 0u64);
            for i in 0..3 {
                for sv in lab.show(i).map(|v| v.serving).unwrap_or_default() {
                    batches += sv.store_batches;
                    txns += sv.store_txns;
                    writes += sv.store_ops;
                    puts += sv.store_puts;
                }
            }
            eprintln!(
                "run {r}: {writes} records written in {txns} etcd transactions ({:.1} records per transaction), {puts} etcd puts ({:.1} records per put), {batches} batches",
                writes as f64 / txns.max(1) as f64,
                writes as f64 / puts.max(1) as f64
            );
            per_txn.push(writes * 10 / txns.max(1));
            eprintln!(
                "run {r}: {n} bindings in {:?}: {rate:.0}/s; etcd db {db0} → {db1} bytes (in use {used0} → {used1}), records {:.0} B/binding (key+value), RSS of 3 members {} → {} MiB; load {}",
                got.elapsed,
                bytes as f64 / count as f64,
                rss0 >> 20,
                rss1 >> 20,
                loadavg()
            );
            eprintln!("run {r}: CPU per binding: {cpu}");
            let anchors_drops: u64 = lab.anchor_ns.iter().map(udp_rcvbuf_errors).sum();
            let drivers_drops: u64 = d.ns.iter().map(udp_rcvbuf_errors).sum();
            eprintln!(
                "run {r}: UDP datagrams dropped on a full receive buffer: anchors {anchors_drops}, driver MAGs {drivers_drops}; packets dropped on a full input backlog (host) {backlog}; by the links (anchors, drivers, switch) {links:?}; awaiting ARP: anchors {}, driver MAGs {}; PBUs retransmitted {}",
                lab.anchor_ns.iter().map(arp_discards).sum::<u64>(),
                d.ns.iter().map(arp_discards).sum::<u64>(),
                got.retransmitted
            );
            cpus.push(cpu);
            rates.push(rate as u64);
            per_rec.push((bytes / count) as u64);
            per_db.push(used1.saturating_sub(used0) / n as u64);
            per_rss.push(rss1.saturating_sub(rss0) / 3 / n as u64);
        }
        eprintln!(
            "FIGURES cluster bindings: {n} per run over 3 anchors, 3 etcd members, {drivers} driver MAGs; median of {runs}: {} bindings/s; CPU per binding (median): {}; etcd per binding: {} B key+value, {} B of db in use, {} B RSS per member; {:.1} puts per etcd transaction; load {}",
            median(&rates).unwrap_or(0),
            median_cpu(&cpus),
            median(&per_rec).unwrap_or(0),
            median(&per_db).unwrap_or(0),
            median(&per_rss).unwrap_or(0),
            median(&per_txn).unwrap_or(0) as f64 / 10.0,
            loadavg()
        );
        Ok(())
    });
}

/// The median of each group's CPU per binding, over the runs.
fn median_cpu(cpus: &[PerBinding]) -> PerBinding {
    let m = |f: fn(&PerBinding) -> f64| {
        // Tenths of a µs: medians over integers.
        median(
            &cpus
                .iter()
                .map(|c| (f(c) * 10.0) as u64)
                .collect::<Vec<_>>(),
        )
        .unwrap_or(0) as f64
            / 10.0
    };
    PerBinding {
        etcd: m(|c| c.etcd),
        anchors: m(|c| c.anchors),
        drivers: m(|c| c.drivers),
        host: m(|c| c.host),
        idle_pct: m(|c| c.idle_pct),
    }
}

/// Takeovers under a 10k pps stream: two per lab (the owner of the busy
/// address, then the anchor that took it over), `runs` labs per setting.
fn takeovers(label: &str, tag: &str, tune: impl Fn(&mut ClusterOpts)) -> Result<()> {
    let runs = env_or("PMIP_BENCH_RUNS", 3);
    let mut all: Vec<Takeover> = Vec::new();
    for r in 0..runs {
        let mut o = opts(&format!("{tag}{r}"));
        tune(&mut o);
        let mut lab = up_owned(o)?;
        lab.add_subscriber(0, "02:00:00:00:aa:01")?;
        let lease = lab.attach(0)?;
        let home = lease.ip.parse().context("lease address")?;
        let b =
            lab.mag(0)
                .wait_bindings(Duration::from_secs(10), "the subscriber's binding", |b| {
                    !b.is_empty()
                })?;
        let addr = b[0].peer.to_string();
        for _ in 0..2 {
            let t = kill_owner(&mut lab, (0, home), &addr, 10_000, Duration::from_secs(2))?;
            eprintln!("{label} run {r}: {}; load {}", t.line(), loadavg());
            all.push(t);
        }
    }
    let ms = |f: fn(&Takeover) -> Duration| {
        median(&all.iter().map(|t| f(t).as_millis()).collect::<Vec<_>>()).unwrap_or(0)
    };
    let lost = median(&all.iter().map(|t| t.lost_up).collect::<Vec<_>>()).unwrap_or(0);
    let worst = all.iter().map(|t| t.first_up).max().unwrap_or_default();
    eprintln!(
        "FIGURES cluster takeover ({label}): median of {} kill -9: first uplink packet through the new owner {} ms after the kill (worst {} ms), first downlink {} ms, owner in show cluster {} ms; {} packets lost at 10k pps; load {}",
        all.len(),
        ms(|t| t.first_up),
        worst.as_millis(),
        ms(|t| t.first_down),
        ms(|t| t.owner_seen),
        lost,
        loadavg()
    );
    Ok(())
}

#[test]
#[ignore = "benchmark: --ignored --nocapture, release"]
fn bench_cluster_takeover_default_settings() {
    run(|| takeovers("heartbeat 100 ms × 4, lease 2 s", "cd", |_| {}));
}

/// The setting that trades detection time for false alarms: heartbeats
/// every 50 ms, dead after 3 missed.
#[test]
#[ignore = "benchmark: --ignored --nocapture, release"]
fn bench_cluster_takeover_fast_heartbeats() {
    run(|| {
        takeovers("heartbeat 50 ms × 3, lease 2 s", "cf", |o| {
            o.heartbeat_interval_ms = 50;
            o.heartbeat_misses = 3;
        })
    });
}
