//! What etcd's CPU per binding depends on (issue 17): records written
//! straight into a real three-member etcd cluster (no pmipd), in different
//! transaction shapes, and the members' CPU (utime + stime of the three
//! processes, /proc/<pid>/stat) per record written.
//!
//! A record is what an anchor writes per binding in the compact form: a key
//! of 37 bytes (`/pmip/e/svc/<service address>/<path>`) and a value of 80.
//! Shapes: puts per transaction 1, 8, 32, 128, 208, 512 (one transaction in
//! flight; 32 also with 4 in flight; the members run with `--max-txn-ops
//! 1024`); with and without the lease of an expiry bucket on every put (one
//! lease shared by all, as the buckets do) and the fence of
//! `store/etcd/mod.rs` (the owner key's value and lease compared in every
//! transaction); packed: 16 records in one key (a value of 1 280 B), 8, 13,
//! 32 and 128 keys per transaction. Each shape writes its keys twice: created,
//! then rewritten (as refreshes rewrite).
//!
//! One fresh cluster per run, the shapes alternated (each run starts five
//! shapes further in the list), medians and ranges over the runs. Before
//! and after each round every member has applied the whole log (raft
//! status), so a round's CPU is its own.
//!
//!     cargo test --release -p pmip-tests --test etcd_cost -- --ignored --nocapture
//!
//! PMIP_ETCD_COST_RUNS (default 3), PMIP_ETCD_COST_N (records per shape,
//! default 30 000), PMIP_ETCD_COST_N1 (records of the one-put shapes, which
//! take a request each, default 6 000).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use pmip_tests::cluster::cpu::proc_cpu;
use pmip_tests::cpu::{env_or, loadavg};
use pmip_tests::etcd::{self, EtcdCluster};
use pmip_tests::netns::Netns;
use pmip_tests::TempDir;

/// Bytes of one binding record's value (the compact form, `store/compact.rs`).
const VALUE: usize = 80;
/// Records in one key when packed.
const PACK: usize = 16;
const ADDR: &str = "10.255.0.101";
const MEMBER: &str = "a1";

#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    /// Keys (puts) per transaction.
    per_txn: usize,
    /// Transactions in flight at once.
    in_flight: usize,
    /// Every put carries the shared lease.
    lease: bool,
    /// Every transaction compares the owner key (value and lease).
    fence: bool,
    /// Records per key.
    pack: usize,
}

const fn shape(
    name: &'static str,
    per_txn: usize,
    in_flight: usize,
    lease: bool,
    fence: bool,
    pack: usize,
) -> Shape {
    Shape {
        name,
        per_txn,
        in_flight,
        lease,
        fence,
        pack,
    }
}

/// "LF": lease and fence, as the daemon writes.
const SHAPES: &[Shape] = &[
    shape("1/txn LF", 1, 1, true, true, 1),
    shape("8/txn LF", 8, 1, true, true, 1),
    shape("32/txn LF", 32, 1, true, true, 1),
    shape("128/txn LF", 128, 1, true, true, 1),
    // A pass of the daemon's shell (up to 257 registrations, ~210 in the
    // cluster bench) in one transaction, unpacked and packed.
    shape("208/txn LF", 208, 1, true, true, 1),
    shape("512/txn LF", 512, 1, true, true, 1),
    shape("32/txn LF x4 in flight", 32, 4, true, true, 1),
    shape("1/txn plain", 1, 1, false, false, 1),
    shape("32/txn plain", 32, 1, false, false, 1),
    shape("128/txn plain", 128, 1, false, false, 1),
    shape("32/txn lease only", 32, 1, true, false, 1),
    shape("32/txn fence only", 32, 1, false, true, 1),
    shape("packed 16, 8 keys/txn LF", 8, 1, true, true, PACK),
    shape("packed 16, 13 keys/txn LF", 13, 1, true, true, PACK),
    shape("packed 16, 32 keys/txn LF", 32, 1, true, true, PACK),
    shape("packed 16, 128 keys/txn LF", 128, 1, true, true, PACK),
];

const ROUNDS: [&str; 2] = ["create", "rewrite"];

/// What one round of one shape cost.
#[derive(Clone, Copy, Debug)]
struct Cost {
    records: usize,
    txns: usize,
    wall: Duration,
    /// The three members, µs of CPU per record.
    etcd_us: f64,
    /// This process (the client and its runtime), µs of CPU per record.
    client_us: f64,
}

impl Cost {
    fn etcd_per_txn(&self) -> f64 {
        self.etcd_us * self.records as f64 / self.txns.max(1) as f64
    }
    fn rate(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// One cluster: its namespace (the client's sockets live there too).
struct Rig {
    etcd: EtcdCluster,
    ns: Netns,
    _dir: TempDir,
}

impl Rig {
    fn start(run: usize) -> Result<Rig> {
        let ns = Netns::new("ec")?;
        let dir = TempDir::new(&format!("etcdcost{run}"));
        // 512 puts in one transaction: above etcd's default limit of 128.
        let etcd = EtcdCluster::start(
            dir.path(),
            &etcd::on_loopback(&ns, 3),
            &["--max-txn-ops", "1024"],
        )?;
        Ok(Rig {
            etcd,
            ns,
            _dir: dir,
        })
    }

    fn pids(&self) -> Result<Vec<u32>> {
        let p: Vec<u32> = self.etcd.members.iter().filter_map(|m| m.pid()).collect();
        ensure!(p.len() == 3, "etcd pids {p:?}");
        Ok(p)
    }
}

fn etcd_cpu(pids: &[u32]) -> Result<Duration> {
    pids.iter().map(|p| proc_cpu(&p.to_string())).sum()
}

/// What every transaction of a run needs.
struct Writer {
    client: Client,
    lease: i64,
    owner_key: String,
    owner_lease: i64,
}

impl Writer {
    async fn txn(&self, s: &Shape, keys: &[String], value: &[u8]) -> Result<()> {
        let opts = || s.lease.then(|| PutOptions::new().with_lease(self.lease));
        let ops: Vec<TxnOp> = keys
            .iter()
            .map(|k| TxnOp::put(k.as_str(), value.to_vec(), opts()))
            .collect();
        let mut txn = Txn::new();
        if s.fence {
            txn = txn.when([
                Compare::value(self.owner_key.as_str(), CompareOp::Equal, MEMBER),
                Compare::lease(self.owner_key.as_str(), CompareOp::Equal, self.owner_lease),
            ]);
        }
        let r = self.client.clone().txn(txn.and_then(ops)).await?;
        ensure!(r.succeeded(), "fenced transaction refused");
        Ok(())
    }

    /// Writes `keys` in transactions of `s.per_txn`, `s.in_flight` at a time.
    async fn round(self: &Arc<Self>, s: Shape, keys: Arc<Vec<String>>, fill: u8) -> Result<usize> {
        let value = Arc::new(vec![fill; VALUE * s.pack]);
        let chunks = keys.len().div_ceil(s.per_txn);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..s.in_flight {
            let (w, keys, value, next) = (self.clone(), keys.clone(), value.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        return anyhow::Ok(());
                    }
                    let end = ((i + 1) * s.per_txn).min(keys.len());
                    w.txn(&s, &keys[i * s.per_txn..end], &value).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(chunks)
    }
}

/// Waits until every member has applied every entry of the log: the work
/// of a round (the followers apply after the leader answered) is all in the
/// CPU read after it.
async fn settled(members: &mut [Client]) -> Result<()> {
    let mut target = 0;
    for m in members.iter_mut() {
        target = target.max(m.status().await?.raft_index());
    }
    let end = Instant::now() + Duration::from_secs(30);
    for m in members.iter_mut() {
        while m.status().await?.raft_applied_index() < target {
            ensure!(Instant::now() < end, "etcd members did not catch up");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(())
}

/// One run: a fresh cluster, every shape (starting at `first`), two rounds each.
fn run_once(run: usize, first: usize, n: usize, n1: usize) -> Result<Vec<(usize, usize, Cost)>> {
    let rig = Rig::start(run)?;
    let pids = rig.pids()?;
    let eps = rig.etcd.endpoints();
    let out = rig.ns.run_in(move || -> Result<Vec<(usize, usize, Cost)>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut client = Client::connect(&eps, None).await?;
            let mut members = Vec::new();
            for e in &eps {
                members.push(Client::connect([e.as_str()], None).await?);
            }
            let lease = client.lease_grant(3600, None).await?.id();
            let owner_lease = client.lease_grant(3600, None).await?.id();
            let owner_key = format!("/pmip/e/owner/{ADDR}");
            client
                .put(
                    owner_key.as_str(),
                    MEMBER,
                    Some(PutOptions::new().with_lease(owner_lease)),
                )
                .await?;
            let w = Arc::new(Writer {
                client,
                lease,
                owner_key,
                owner_lease,
            });
            // Warm-up (not counted): connections, the members' first allocations.
            let warm = Arc::new(
                (0..3000)
                    .map(|i| format!("/pmip/e/svc/{ADDR}/r{run}w/{i:06}"))
                    .collect::<Vec<_>>(),
            );
            w.round(SHAPES[2], warm, 1).await?;
            let mut out = Vec::new();
            for j in 0..SHAPES.len() {
                let si = (first + j) % SHAPES.len();
                let s = SHAPES[si];
                let records = if s.per_txn * s.pack == 1 { n1 } else { n };
                let keys = Arc::new(
                    (0..records.div_ceil(s.pack))
                        .map(|i| format!("/pmip/e/svc/{ADDR}/r{run}s{si:02}/{i:06}"))
                        .collect::<Vec<_>>(),
                );
                for (ri, round) in ROUNDS.iter().enumerate() {
                    settled(&mut members).await?;
                    let (e0, c0, t0) = (etcd_cpu(&pids)?, proc_cpu("self")?, Instant::now());
                    let txns = w.round(s, keys.clone(), 2 + ri as u8).await?;
                    let wall = t0.elapsed();
                    settled(&mut members).await?;
                    let (e1, c1) = (etcd_cpu(&pids)?, proc_cpu("self")?);
                    let us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
                    let c = Cost {
                        records,
                        txns,
                        wall,
                        etcd_us: us(e1.saturating_sub(e0)),
                        client_us: us(c1.saturating_sub(c0)),
                    };
                    eprintln!(
                        "run {run}: {:<27} {round:<7}: {records} records in {txns} txns, {:.2} s ({:.0}/s); etcd {:.1} µs/record, {:.0} µs/txn; client {:.1} µs/record; load {}",
                        s.name,
                        wall.as_secs_f64(),
                        c.rate(),
                        c.etcd_us,
                        c.etcd_per_txn(),
                        c.client_us,
                        loadavg()
                    );
                    out.push((si, ri, c));
                }
            }
            Ok(out)
        })
    })??;
    Ok(out)
}

fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (m, v[0], v[v.len() - 1])
}

/// Least squares of `y = a + b x`: (a, b).
fn fit(pts: &[(f64, f64)]) -> (f64, f64) {
    let n = pts.len() as f64;
    let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxy: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let b = sxy / sxx.max(1e-12);
    (my - b * mx, b)
}

#[test]
#[ignore = "benchmark: cargo test --release -p pmip-tests --test etcd_cost -- --ignored --nocapture"]
fn etcd_cpu_per_put_by_transaction_shape() {
    if unsafe { libc::geteuid() } != 0 || !etcd::available() {
        eprintln!("skipped: needs root and etcd (Debian etcd-server, etcd-client)");
        return;
    }
    let runs = env_or("PMIP_ETCD_COST_RUNS", 3);
    let n = env_or("PMIP_ETCD_COST_N", 30_000);
    let n1 = env_or("PMIP_ETCD_COST_N1", 6_000);
    eprintln!(
        "etcd cost: {runs} runs, {n} records per shape ({n1} at one put per txn), {} B key + {VALUE} B value per record",
        format!("/pmip/e/svc/{ADDR}/r0s00/000000").len()
    );
    // (shape, round) → costs of the runs.
    let mut all: BTreeMap<(usize, usize), Vec<Cost>> = BTreeMap::new();
    for run in 0..runs {
        let first = (run * 5) % SHAPES.len();
        let costs = run_once(run, first, n, n1)
            .with_context(|| format!("run {run}"))
            .unwrap();
        for (si, ri, c) in costs {
            all.entry((si, ri)).or_default().push(c);
        }
    }
    eprintln!("\n| shape | round | etcd µs/record | etcd µs/txn | client µs/record | records/s |");
    eprintln!("|---|---|---:|---:|---:|---:|");
    let mut meds: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for ((si, ri), cs) in &all {
        let col = |f: fn(&Cost) -> f64| {
            let (m, lo, hi) = median_range(&mut cs.iter().map(f).collect::<Vec<_>>());
            (m, format!("{m:.1} ({lo:.1}–{hi:.1})"))
        };
        let (m, e) = col(|c| c.etcd_us);
        meds.insert((*si, *ri), m);
        let (_, t) = col(Cost::etcd_per_txn);
        let (_, cl) = col(|c| c.client_us);
        let (_, r) = col(Cost::rate);
        eprintln!(
            "| {} | {} | {e} | {t} | {cl} | {r} |",
            SHAPES[*si].name, ROUNDS[*ri]
        );
    }
    // etcd µs/record = per put + per txn / (puts per txn), over the LF shapes
    // with one transaction in flight.
    for (ri, round) in ROUNDS.iter().enumerate() {
        let pts: Vec<(f64, f64)> = SHAPES
            .iter()
            .enumerate()
            .filter(|(_, s)| s.lease && s.fence && s.in_flight == 1 && s.pack == 1)
            .filter_map(|(si, s)| meds.get(&(si, ri)).map(|m| (1.0 / s.per_txn as f64, *m)))
            .collect();
        let (per_put, per_txn) = fit(&pts);
        eprintln!(
            "FIGURES etcd cost ({round}, lease + fence, medians of {runs} runs): {per_put:.1} µs per put + {per_txn:.0} µs per transaction (3 members together)"
        );
    }
}
