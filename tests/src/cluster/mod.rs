//! The cluster lab (issue 17): a three-member etcd, three anchors sharing
//! it, two access gateways, subscribers with a stock DHCP client and a
//! correspondent, each in its own network namespace, `pmipd run` in the
//! gateway roles. Used by tests/tests/cluster.rs, the cluster benchmark and
//! `cargo xtask lab --cluster`. Torn down on drop, also on panic.
//!
//! ```text
//!                          sw (bridges; etcd e1 e2 e3 on bre: 10.77.0.1-3)
//!   sub1..N ── br1/br2 ── acc0 mag1/mag2 core0 ──┐
//!                                                 brc 10.255.0.0/24 ── core0 a1 a2 a3 (own .11-.13;
//!                                                 │                      service .101-.103, cluster .100)
//!                            bre 10.77.0.0/24 ─── ctl0 a1 a2 a3 (.11-.13): etcd clients
//!                            brn 203.0.113.0/24 ── cn0 a1 a2 a3 (.11-.13) ── c0 cn (.2)
//! ```
//! The correspondent reaches the home addresses on-link (10.64.0.0/16 dev
//! c0): the anchor serving a block of them answers ARP for it (proxy ARP
//! on its block routes), and announces them again after a takeover.
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pmip_user::ctl::{ClusterView, Response};

use crate::etcd::{EtcdCluster, Placement};
use crate::lab::{
    default_profile_toml, ensure_binaries, interruptible_sleep, peer_toml, pool_toml,
    store_path_toml, Daemon, Dhcpc, Head, TempDir,
};
use crate::netns::{veth, Netns};

pub mod cpu;
pub mod driver;
pub mod stream;
pub mod takeover;

pub const POOL: &str = "10.64.0.0/16";
pub const GW: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
pub const GW_MAC: &str = "02:00:00:00:00:01";
pub const CN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

/// The member's own core address, service address `i`, the cluster address.
pub fn anchor_core(i: usize) -> String {
    format!("10.255.0.{}", 11 + i)
}
pub fn service_addr(i: usize) -> String {
    format!("10.255.0.{}", 101 + i)
}
pub const CLUSTER_ADDR: &str = "10.255.0.100";
pub fn mag_core(i: usize) -> String {
    format!("10.255.0.{}", 1 + i)
}
pub fn etcd_ip(i: usize) -> String {
    format!("10.77.0.{}", 1 + i)
}

#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Namespace name prefix (at most 3 characters).
    pub tag: String,
    pub anchors: usize,
    pub mags: usize,
    pub lifetime_s: u32,
    pub refresh_s: u32,
    pub lease_ttl_s: u32,
    pub heartbeat_interval_ms: u32,
    pub heartbeat_misses: u32,
    /// RFC 5847 heartbeats between MAGs and anchors (0: off).
    pub mip_heartbeat_s: u32,
    pub log_filter: String,
    pub attach_mode: String,
    /// Subscriber table size of every gateway.
    pub max_subscribers: u32,
    /// Driver MAGs (`driver.rs`) the anchors accept registrations from.
    pub drivers: usize,
    /// PMIPv6 signaling between the access gateways and the service (and
    /// cluster) addresses under ESP ([`cluster_esp`]); else insecure.
    pub esp: bool,
    /// Extra flags of every etcd member (the benchmark's tuning).
    pub etcd_args: Vec<String>,
    /// The anchors' `store.max_txn_ops` (None: the default, etcd's 128);
    /// the etcd members need `--max-txn-ops` as large (`etcd_args`).
    pub max_txn_ops: Option<u32>,
    /// The anchors' `signaling.udp_gso` (runs of PBAs to one MAG as one
    /// send), and GSO with `UDP_GRO` on the driver MAGs' sockets; only
    /// without `esp` (whose peers' tables carry `[signaling]`).
    pub udp_gso: bool,
    /// The anchors' `store.writes_in_flight` (None: the default).
    pub writes_in_flight: Option<u32>,
    /// The anchors' `store.batch_max` (None: the default).
    pub batch_max: Option<u32>,
    /// The anchors' `signaling.receive_buffer_kib` (None: the default),
    /// also the driver MAGs' sockets'; only without `esp`.
    pub receive_buffer_kib: Option<u32>,
    /// The anchors' `store.layout` ("per-binding", "packed"); the default
    /// comes from `PMIP_CLUSTER_LAYOUT` (none: the configuration's default).
    pub layout: Option<String>,
}

impl ClusterOpts {
    pub fn new(tag: &str) -> ClusterOpts {
        ClusterOpts {
            tag: tag.chars().take(3).collect(),
            anchors: 3,
            mags: 2,
            lifetime_s: 60,
            refresh_s: 5,
            lease_ttl_s: 3,
            heartbeat_interval_ms: 100,
            heartbeat_misses: 4,
            mip_heartbeat_s: 1,
            log_filter: "info".into(),
            attach_mode: "native".into(),
            max_subscribers: 65_536,
            drivers: 0,
            esp: false,
            etcd_args: Vec::new(),
            max_txn_ops: None,
            udp_gso: false,
            writes_in_flight: None,
            batch_max: None,
            receive_buffer_kib: None,
            layout: std::env::var("PMIP_CLUSTER_LAYOUT")
                .ok()
                .filter(|l| !l.is_empty()),
        }
    }
}

/// XDP pass programs on switch ports that gateways redirect into.
struct Pass(#[allow(dead_code)] Vec<aya::Ebpf>);

pub struct ClusterLab {
    pub opts: ClusterOpts,
    pub dir: TempDir,
    pub anchors: Vec<Option<Daemon>>,
    pub mags: Vec<Option<Daemon>>,
    pub clients: Vec<Option<Dhcpc>>,
    pub etcd: Option<EtcdCluster>,
    pass: Option<Pass>,
    pub subs: Vec<Netns>,
    pub cn: Netns,
    pub mag_ns: Vec<Netns>,
    pub anchor_ns: Vec<Netns>,
    pub sw: Netns,
}

fn run_all(ns: &Netns, cmds: &[String]) -> Result<()> {
    for c in cmds {
        let a: Vec<&str> = c.split_whitespace().collect();
        ns.exec(&a).with_context(|| format!("{}: {c}", ns.name))?;
    }
    Ok(())
}

impl ClusterLab {
    /// Namespaces, links, addresses and the etcd cluster (no pmipd yet).
    pub fn topology(opts: ClusterOpts) -> Result<ClusterLab> {
        let t = opts.tag.clone();
        let dir = TempDir::new(&format!("cl{t}"))?;
        let sw = Netns::new(&format!("{t}w"))?;
        let anchor_ns = (0..opts.anchors)
            .map(|i| Netns::new(&format!("{t}a{}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let mag_ns = (0..opts.mags)
            .map(|i| Netns::new(&format!("{t}m{}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let cn = Netns::new(&format!("{t}c"))?;
        let mut lab = ClusterLab {
            opts,
            dir,
            anchors: Vec::new(),
            mags: Vec::new(),
            clients: Vec::new(),
            etcd: None,
            pass: None,
            subs: Vec::new(),
            cn,
            mag_ns,
            anchor_ns,
            sw,
        };
        lab.wire()?;
        lab.attach_pass()?;
        let at: Vec<Placement> = (0..3)
            .map(|i| Placement {
                ns: lab.sw.name.clone(),
                ip: etcd_ip(i),
                client_port: 2379,
                peer_port: 2380,
            })
            .collect();
        let extra: Vec<&str> = lab.opts.etcd_args.iter().map(String::as_str).collect();
        lab.etcd = Some(EtcdCluster::start(&lab.dir.0, &at, &extra)?);
        Ok(lab)
    }

    fn wire(&self) -> Result<()> {
        let mut sw: Vec<String> = vec!["sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into()];
        for b in ["brc", "bre", "brn"] {
            sw.push(format!("ip link add {b} type bridge mcast_snooping 0"));
            sw.push(format!("ip link set {b} up"));
        }
        for i in 0..3 {
            sw.push(format!("ip addr add {}/24 dev bre", etcd_ip(i)));
        }
        for (i, a) in self.anchor_ns.iter().enumerate() {
            let n = i + 1;
            veth(a, "core0", &self.sw, &format!("pca{n}"))?;
            veth(a, "ctl0", &self.sw, &format!("pea{n}"))?;
            veth(a, "cn0", &self.sw, &format!("pna{n}"))?;
            sw.push(format!("ip link set pca{n} master brc"));
            sw.push(format!("ip link set pea{n} master bre"));
            sw.push(format!("ip link set pna{n} master brn"));
            run_all(
                a,
                &[
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                    format!("ip addr add {}/24 dev core0", anchor_core(i)),
                    format!("ip addr add 10.77.0.{}/24 dev ctl0", 11 + i),
                    format!("ip addr add 203.0.113.{}/24 dev cn0", 11 + i),
                ],
            )?;
        }
        for (j, m) in self.mag_ns.iter().enumerate() {
            let n = j + 1;
            veth(m, "core0", &self.sw, &format!("pcm{n}"))?;
            veth(m, "acc0", &self.sw, &format!("pam{n}"))?;
            sw.push(format!("ip link add br{n} type bridge"));
            sw.push(format!("ip link set br{n} up"));
            sw.push(format!("ip link set pcm{n} master brc"));
            sw.push(format!("ip link set pam{n} master br{n}"));
            run_all(
                m,
                &[
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                    "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
                    format!("ip link set acc0 address {GW_MAC}"),
                    format!("ip addr add {GW}/16 dev acc0"),
                    format!("ip addr add {}/24 dev core0", mag_core(j)),
                ],
            )?;
        }
        veth(&self.cn, "c0", &self.sw, "pnc")?;
        sw.push("ip link set pnc master brn".into());
        run_all(&self.sw, &sw)?;
        run_all(
            &self.cn,
            &[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                format!("ip addr add {CN}/24 dev c0"),
                // Home addresses on-link: the serving anchor answers ARP.
                format!("ip route add {POOL} dev c0"),
                "ethtool -K c0 tx off".into(),
            ],
        )
    }

    /// XDP pass on every switch port a gateway's fast path transmits into
    /// (native-mode redirect into a veth needs a program at the other end).
    fn attach_pass(&mut self) -> Result<()> {
        let mut ports = Vec::new();
        for i in 1..=self.anchor_ns.len() {
            ports.push(format!("pca{i}"));
            ports.push(format!("pna{i}"));
        }
        for j in 1..=self.mag_ns.len() {
            ports.push(format!("pcm{j}"));
            ports.push(format!("pam{j}"));
        }
        let e = self.sw.run_in(move || -> Result<aya::Ebpf> {
            let mut ebpf = pmip_user::fastpath::load_test_object()?;
            for p in &ports {
                pmip_user::fastpath::attach_pass(&mut ebpf, p)?;
            }
            Ok(ebpf)
        })??;
        self.pass = Some(Pass(vec![e]));
        Ok(())
    }

    pub fn etcd(&mut self) -> &mut EtcdCluster {
        self.etcd.as_mut().expect("etcd running")
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.etcd
            .as_ref()
            .map(|e| e.endpoints())
            .unwrap_or_default()
    }

    /// Writes every anchor's config and starts them all at once (they
    /// spread the service addresses among those that joined together).
    pub fn start_anchors(&mut self) -> Result<()> {
        ensure_binaries()?;
        let mut jobs = Vec::new();
        for i in 0..self.anchor_ns.len() {
            let cfg = self.dir.0.join(format!("a{}.toml", i + 1));
            std::fs::write(
                &cfg,
                anchor_config(&self.opts, &self.dir.0, i, &self.endpoints()),
            )?;
            jobs.push((i, cfg));
        }
        let filter = self.opts.log_filter.clone();
        let started: Vec<(usize, Result<Daemon>)> = std::thread::scope(|s| {
            let hs: Vec<_> = jobs
                .iter()
                .map(|(i, cfg)| {
                    let ns = &self.anchor_ns[*i];
                    let sock = self.dir.0.join(format!("a{}.sock", i + 1));
                    let filter = filter.clone();
                    s.spawn(move || {
                        (
                            *i,
                            Daemon::start(ns, &format!("a{}", i + 1), cfg, &sock, &filter),
                        )
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("start thread"))
                .collect()
        });
        self.anchors = (0..self.anchor_ns.len()).map(|_| None).collect();
        for (i, d) in started {
            self.anchors[i] = Some(d?);
        }
        Ok(())
    }

    /// (Re)starts anchor `i` alone.
    pub fn start_anchor(&mut self, i: usize) -> Result<()> {
        let cfg = self.dir.0.join(format!("a{}.toml", i + 1));
        std::fs::write(
            &cfg,
            anchor_config(&self.opts, &self.dir.0, i, &self.endpoints()),
        )?;
        let sock = self.dir.0.join(format!("a{}.sock", i + 1));
        let d = Daemon::start(
            &self.anchor_ns[i],
            &format!("a{}", i + 1),
            &cfg,
            &sock,
            &self.opts.log_filter,
        )?;
        self.anchors[i] = Some(d);
        Ok(())
    }

    pub fn start_mags(&mut self) -> Result<()> {
        self.mags = (0..self.mag_ns.len()).map(|_| None).collect();
        for j in 0..self.mag_ns.len() {
            let cfg = self.dir.0.join(format!("m{}.toml", j + 1));
            std::fs::write(&cfg, mag_config(&self.opts, &self.dir.0, j))?;
            let sock = self.dir.0.join(format!("m{}.sock", j + 1));
            let d = Daemon::start(
                &self.mag_ns[j],
                &format!("m{}", j + 1),
                &cfg,
                &sock,
                &self.opts.log_filter,
            )?;
            self.mags[j] = Some(d);
        }
        Ok(())
    }

    /// Everything up: anchors (addresses spread), access gateways.
    pub fn up(opts: ClusterOpts) -> Result<ClusterLab> {
        let mut lab = ClusterLab::topology(opts)?;
        lab.start_anchors()?;
        lab.wait_spread(Duration::from_secs(20))?;
        lab.wait_targets(Duration::from_secs(10))?;
        lab.start_mags()?;
        Ok(lab)
    }

    pub fn anchor(&self, i: usize) -> &Daemon {
        self.anchors[i].as_ref().expect("anchor running")
    }
    pub fn mag(&self, j: usize) -> &Daemon {
        self.mags[j].as_ref().expect("access gateway running")
    }

    /// `show cluster` of anchor `i`.
    pub fn show(&self, i: usize) -> Result<ClusterView> {
        match self.anchor(i).ctl_json(&["show", "cluster"])? {
            Response::Cluster(v) => Ok(v),
            other => bail!("show cluster: {other:?}"),
        }
    }

    /// The first running anchor's view.
    pub fn view(&self) -> Result<ClusterView> {
        let i = self
            .anchors
            .iter()
            .position(Option::is_some)
            .ok_or_else(|| anyhow!("no anchor running"))?;
        self.show(i)
    }

    /// Waits until every running anchor would send a subscriber at the
    /// cluster address to any service address (its runtime-assignment
    /// targets are all of them): before that, one registering there is
    /// served by the cluster address's owner itself.
    pub fn wait_targets(&self, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        for i in (0..self.anchors.len()).filter(|i| self.anchors[*i].is_some()) {
            loop {
                let v = self.show(i)?;
                let services = v.addresses.iter().filter(|a| !a.cluster).count();
                if v.assign_targets.len() == services {
                    break;
                }
                if Instant::now() > end {
                    bail!(
                        "a{}: assignment targets {:?}, {services} service addresses",
                        i + 1,
                        v.assign_targets
                    );
                }
                interruptible_sleep(Duration::from_millis(50))?;
            }
        }
        Ok(())
    }

    /// Waits until every address has an owner and every running anchor owns one.
    pub fn wait_spread(&self, within: Duration) -> Result<ClusterView> {
        let running: Vec<String> = (0..self.anchors.len())
            .filter(|i| self.anchors[*i].is_some())
            .map(|i| format!("a{}", i + 1))
            .collect();
        self.wait_view(within, "every address owned, every anchor serving", |v| {
            v.addresses.iter().all(|a| a.owner.is_some())
                && running.iter().all(|m| {
                    v.members
                        .iter()
                        .any(|x| x.name == *m && !x.addresses.is_empty())
                })
        })
    }

    pub fn wait_view(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&ClusterView) -> bool,
    ) -> Result<ClusterView> {
        let end = Instant::now() + within;
        let mut last = None;
        loop {
            match self.view() {
                Ok(v) if pred(&v) => return Ok(v),
                Ok(v) => last = Some(v),
                Err(_) => {}
            }
            if Instant::now() > end {
                let logs: Vec<String> = self
                    .anchors
                    .iter()
                    .flatten()
                    .map(|d| format!("--- {}:\n{}", d.name, d.log_tail(15)))
                    .collect();
                bail!(
                    "cluster: {what} not reached within {within:?}; last view:\n{}\n{}",
                    last.map(|v| pmip_user::ctl::format_cluster(&v))
                        .unwrap_or_default(),
                    logs.join("\n")
                );
            }
            interruptible_sleep(Duration::from_millis(100))?;
        }
    }

    /// What went on, for a failed test: every daemon's warnings, errors
    /// and cluster decisions (the last `n` of them each), and a copy of all
    /// logs kept under /tmp (the lab's own directory goes with the lab).
    pub fn failure_report(&self, n: usize) -> String {
        let keep = std::env::temp_dir().join(format!(
            "pmip-failed-{}-{}",
            self.opts.tag,
            std::process::id()
        ));
        let _ = std::fs::create_dir_all(&keep);
        let mut out = vec![format!("(all logs copied to {})", keep.display())];
        for d in self.anchors.iter().chain(&self.mags).flatten() {
            let _ = std::fs::copy(&d.log, keep.join(format!("{}.log", d.name)));
            let log = std::fs::read_to_string(&d.log).unwrap_or_default();
            let said: Vec<&str> = log
                .lines()
                .filter(|l| {
                    [
                        "WARN", "ERROR", "gave up", "joined", "claim", "restart", "holding",
                    ]
                    .iter()
                    .any(|w| l.contains(w))
                })
                .collect();
            let from = said.len().saturating_sub(n);
            out.push(format!(
                "--- {} ({} lines):\n{}",
                d.name,
                said.len(),
                said[from..].join("\n")
            ));
        }
        out.join("\n")
    }

    /// The anchor (index) that owns `addr` now.
    pub fn owner_of(&self, addr: &str) -> Result<usize> {
        let v = self.view()?;
        let o = v
            .addresses
            .iter()
            .find(|a| a.addr.to_string() == addr)
            .and_then(|a| a.owner.clone())
            .ok_or_else(|| anyhow!("{addr} has no owner"))?;
        o.strip_prefix('a')
            .and_then(|n| n.parse::<usize>().ok())
            .map(|n| n - 1)
            .ok_or_else(|| anyhow!("owner {o}"))
    }

    /// A subscriber namespace with MAC `mac` on access gateway `j`'s link.
    pub fn add_subscriber(&mut self, j: usize, mac: &str) -> Result<usize> {
        let k = self.subs.len() + 1;
        let ns = Netns::new(&format!("{}s{k}", self.opts.tag))?;
        let port = format!("ps{k}");
        veth(&ns, "s0", &self.sw, &port)?;
        self.sw.exec(&[
            "ip",
            "link",
            "set",
            &port,
            "master",
            &format!("br{}", j + 1),
        ])?;
        run_all(
            &ns,
            &[
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
                "ethtool -K s0 tx off".into(),
                format!("ip link set s0 address {mac}"),
            ],
        )?;
        self.subs.push(ns);
        self.clients.push(None);
        Ok(k - 1)
    }

    /// Starts udhcpc on subscriber `k` and waits for its lease.
    pub fn attach(&mut self, k: usize) -> Result<crate::lab::Lease> {
        let dir = self.dir.0.join(format!("sub{k}"));
        std::fs::create_dir_all(&dir)?;
        let c = Dhcpc::start(&self.subs[k], "s0", &dir, false)?;
        let l = c.wait_event("bound", 1, Duration::from_secs(25));
        self.clients[k] = Some(c);
        l.map_err(|e| {
            anyhow!(
                "{e}\n--- m1:\n{}",
                self.mags
                    .first()
                    .and_then(|m| m.as_ref())
                    .map(|d| d.log_tail(20))
                    .unwrap_or_default()
            )
        })
    }

    pub fn client(&self, k: usize) -> &Dhcpc {
        self.clients[k].as_ref().expect("DHCP client running")
    }

    /// SIGKILL anchor `i`: the process dies, the host stays.
    pub fn kill_anchor(&mut self, i: usize) {
        if let Some(d) = self.anchors[i].as_mut() {
            d.kill9();
        }
        self.anchors[i] = None;
    }

    /// Cuts anchor `i` off etcd (its control link down), or back.
    pub fn etcd_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.sw
            .exec(&["ip", "link", "set", &format!("pea{}", i + 1), state])?;
        Ok(())
    }
}

impl Drop for ClusterLab {
    fn drop(&mut self) {
        self.clients.clear();
        self.mags.clear();
        self.anchors.clear();
        self.etcd = None;
        self.pass = None;
    }
}

fn timers(o: &ClusterOpts) -> String {
    format!(
        "\n[timers]\nlifetime_s = {}\nrefresh_s = {}\nretx_initial_ms = 300\nretx_max_ms = 2000\nmax_retransmissions = 4\nheartbeat_interval_s = {}\n",
        o.lifetime_s, o.refresh_s, o.mip_heartbeat_s
    )
}

/// `pmipd run` config of anchor `i` (0-based).
pub fn anchor_config(o: &ClusterOpts, dir: &Path, i: usize, endpoints: &[String]) -> String {
    let mut c = Head {
        by: "pmip_tests::cluster",
        role: "anchor",
        proto: "pmipv6",
        node_id: &format!("a{}", i + 1),
        sock: &dir.join(format!("a{}.sock", i + 1)),
        attach_mode: &o.attach_mode,
        fastpath: &format!("max_subscribers = {}\n", o.max_subscribers),
    }
    .toml();
    c.push_str(&format!(
        r#"[interfaces]
core = "core0"
correspondent = ["cn0"]

[addresses]
ipv4 = "{}"
"#,
        anchor_core(i),
    ));
    for j in 0..o.mags {
        c.push_str(&peer_toml(&format!("mag{}", j + 1), &mag_core(j)));
        c.push_str("insecure = true\n");
    }
    for m in 0..o.drivers {
        c.push_str(&peer_toml(
            &format!("driver{}", m + 1),
            &driver::driver_addr(m).to_string(),
        ));
        c.push_str("insecure = true\n");
    }
    c.push_str(&timers(o));
    c.push_str(&pool_toml(POOL, GW));
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let svc: Vec<String> = (0..o.anchors)
        .map(|k| format!("\"{}\"", service_addr(k)))
        .collect();
    c.push_str(&format!(
        "\n[store]\nbackend = \"etcd\"\nendpoints = [{}]\nprefix = \"/pmip/{}\"\nlease_ttl_s = {}\n",
        eps.join(", "),
        o.tag,
        o.lease_ttl_s
    ));
    if let Some(n) = o.max_txn_ops {
        c.push_str(&format!("max_txn_ops = {n}\n"));
    }
    if let Some(l) = &o.layout {
        c.push_str(&format!("layout = \"{l}\"\n"));
    }
    if let Some(n) = o.writes_in_flight {
        c.push_str(&format!("writes_in_flight = {n}\n"));
    }
    if let Some(n) = o.batch_max {
        c.push_str(&format!("batch_max = {n}\n"));
    }
    if !o.esp && (o.udp_gso || o.receive_buffer_kib.is_some()) {
        c.push_str(&format!("\n[signaling]\nudp_gso = {}\n", o.udp_gso));
        if let Some(k) = o.receive_buffer_kib {
            c.push_str(&format!("receive_buffer_kib = {k}\n"));
        }
    }
    c.push_str(&format!(
        "\n[cluster]\nmember = \"a{}\"\nservice_addresses = [{}]\ncluster_address = \"{CLUSTER_ADDR}\"\nheartbeat_interval_ms = {}\nheartbeat_misses = {}\n",
        i + 1,
        svc.join(", "),
        o.heartbeat_interval_ms,
        o.heartbeat_misses
    ));
    if o.esp {
        // The same SAs on every anchor: whoever serves an address.
        for j in 0..o.mags {
            for (k, svc) in esp_addresses(o).iter().enumerate() {
                let e = cluster_esp(j, k);
                c.push_str(&format!(
                    "\n[[cluster.esp]]\nservice = \"{svc}\"\npeer = \"mag{}\"\n[cluster.esp.sa]\nspi_in = {}\nspi_out = {}\nalgorithm = \"rfc4106(gcm(aes))\"\nkey_in = \"{}\"\nkey_out = \"{}\"\n",
                    j + 1,
                    e.spi_up,
                    e.spi_down,
                    e.key_up,
                    e.key_down
                ));
            }
        }
    }
    c
}

/// The service addresses, then the cluster address: what access gateways
/// signal with (the index is `k` of [`cluster_esp`]).
fn esp_addresses(o: &ClusterOpts) -> Vec<String> {
    let mut v: Vec<String> = (0..o.anchors).map(service_addr).collect();
    v.push(CLUSTER_ADDR.into());
    v
}

/// The ESP SAs between access gateway `j` and cluster address `k`
/// ([`esp_addresses`]): distinct SPIs and keys per pair (inbound SAs are
/// found by SPI; one AES-GCM key must never serve two senders' counters).
pub fn cluster_esp(j: usize, k: usize) -> crate::lab::LabEsp {
    let key = |dir: usize| {
        let b = format!("{:02x}", 0x40 + 0x10 * j + 4 * k + dir);
        format!("0x{}{j:02x}{k:02x}c0{dir:02x}", b.repeat(16))
    };
    let spi = 0x7000 + 0x100 * j as u32 + 0x10 * k as u32;
    crate::lab::LabEsp {
        spi_up: spi + 1,
        key_up: key(1),
        spi_down: spi + 2,
        key_down: key(2),
    }
}

/// `insecure = true`, or the `[peers.esp]` table of access gateway `j`
/// towards cluster address `k`.
fn mag_peer_esp(o: &ClusterOpts, j: usize, k: usize) -> String {
    if !o.esp {
        return "insecure = true\n".into();
    }
    let e = cluster_esp(j, k);
    format!(
        "\n[peers.esp]\nspi_in = {}\nspi_out = {}\nalgorithm = \"rfc4106(gcm(aes))\"\nkey_in = \"{}\"\nkey_out = \"{}\"\n",
        e.spi_down, e.spi_up, e.key_down, e.key_up
    )
}

/// `pmipd run` config of access gateway `j` (0-based): its anchor is the
/// cluster address (runtime assignment); the service addresses are peers too.
pub fn mag_config(o: &ClusterOpts, dir: &Path, j: usize) -> String {
    let mut c = Head {
        by: "pmip_tests::cluster",
        role: "access",
        proto: "pmipv6",
        node_id: &format!("mag{}", j + 1),
        sock: &dir.join(format!("m{}.sock", j + 1)),
        attach_mode: &o.attach_mode,
        fastpath: &format!("max_subscribers = {}\n", o.max_subscribers),
    }
    .toml();
    c.push_str(&format!(
        r#"[interfaces]
core = "core0"

[[interfaces.access]]
name = "acc0"
gateway = "{GW}/16"
mtu = 1500
default_profile = "default"

[addresses]
ipv4 = "{}"
"#,
        mag_core(j),
    ));
    c.push_str(&peer_toml("cluster", CLUSTER_ADDR));
    c.push_str("runtime_assignment = true\n");
    c.push_str(&mag_peer_esp(o, j, o.anchors));
    for k in 0..o.anchors {
        c.push_str(&peer_toml(&format!("s{}", k + 1), &service_addr(k)));
        c.push_str(&mag_peer_esp(o, j, k));
    }
    if o.esp {
        c.push_str(&format!(
            "\n[signaling]\nesp_state_file = \"{}\"\n",
            dir.join(format!("m{}.esp-seq", j + 1)).display()
        ));
    }
    c.push_str(&timers(o));
    c.push_str("\n[detach]\nenabled = false\n");
    // Each MAG's own store in the lab's directory (the default path is the host's).
    c.push_str(&store_path_toml(dir, &format!("m{}", j + 1)));
    c.push_str(&default_profile_toml("cluster"));
    c
}
