//! Loads the eBPF object, attaches its program and writes its maps: the real
//! [`DataPlane`].
//!
//! Every binding reaches the kernel here. A handover is one `insert` on the
//! map keyed by the home address (hash-map updates replace the value
//! atomically), so no packet ever sees a half-written entry.
use std::collections::HashMap as StdHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use pmip_common::{
    flags, maps, AccessDownlink, AccessKey, AccessSubscriber, AnchorDownlink, AnchorUplink,
    Counter, HomePool4, HomePool6, IfaceConfig, SubscriberStats, Tunnel, FAMILY_V4, FAMILY_V6,
};

use crate::dataplane::{
    AccessBinding, AnchorBinding, DataPlane, DpCommand, Hnp, TrafficCounters, TunnelEnds,
};

pub const PROGRAM: &str = "pmip_xdp";
/// TC egress on an anchor: tunnels what the host itself sends to home addresses.
pub const TC_EGRESS_PROGRAM: &str = "pmip_tc_egress";
/// The fast path at TC ingress (`AttachMode::Tc`): where XDP cannot attach.
pub const TC_INGRESS_PROGRAM: &str = "pmip_tc_ingress";
/// The pass-everything program (pmip-ebpf/src/pass.rs), in both objects:
/// for the far end of veths.
pub const PASS_PROGRAM: &str = "xdp_pass";
const MAP_NAMES: [&str; 21] = [
    maps::TUNNEL_NH,
    maps::DEST_NH,
    maps::NEW_MAC_EVENTS,
    maps::NEW_MAC_SEEN,
    maps::ACCESS_BY_MAC,
    maps::ACCESS_GEN,
    maps::ACCESS_BY_KEY,
    maps::ACCESS_BY_KEY_HIGH,
    maps::ANCHOR_BY_HOME4,
    maps::ANCHOR_BY_HNP,
    maps::ANCHOR_BY_POOL4,
    maps::ANCHOR_BY_POOL6,
    maps::HOME_POOLS4,
    maps::HOME_POOLS6,
    maps::ANCHOR_BY_KEY,
    maps::ANCHOR_BY_KEY_HIGH,
    maps::TUNNELS,
    maps::IFACES,
    maps::IFACES_HIGH,
    maps::COUNTERS,
    maps::SUB_STATS,
];

/// Where the eBPF object is: `$PMIP_EBPF_OBJECT`, next to the executable, or
/// where `cargo xtask build-ebpf` puts it in this checkout.
pub fn default_object_path() -> PathBuf {
    object_path("PMIP_EBPF_OBJECT", "pmip-ebpf.o")
}

/// Where the object of the benchmark and test programs is (never loaded by
/// pmipd): `$PMIP_EBPF_TEST_OBJECT`, next to the executable, or where
/// `cargo xtask build-ebpf` puts it.
pub fn default_test_object_path() -> PathBuf {
    object_path("PMIP_EBPF_TEST_OBJECT", "pmip-ebpf-test.o")
}

fn object_path(var: &str, file: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(file);
            if p.exists() {
                return p;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bpf")
        .join(file)
}

/// Loads the benchmark and test programs' object ([`default_test_object_path`]):
/// the pass program for veth peers, the benchmarks' baselines and traffic
/// generator, the tests' VLAN port, with their own maps. Programs are
/// verified on first use ([`loaded_xdp`]).
pub fn load_test_object() -> Result<Ebpf> {
    let path = default_test_object_path();
    Ebpf::load_file(&path).with_context(|| format!("loading eBPF object {}", path.display()))
}

/// XDP program `name` of `ebpf`, verified on first use.
pub fn loaded_xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing"))?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(prog)
}

/// Attaches [`PASS_PROGRAM`] of `ebpf` (either object) in native mode: a
/// veth peer needs an XDP program for native XDP_TX/redirect into the pair
/// to be received. Attached while `ebpf` lives.
pub fn attach_pass(ebpf: &mut Ebpf, iface: &str) -> Result<()> {
    loaded_xdp(ebpf, PASS_PROGRAM)?
        .attach(iface, XdpMode::Driver)
        .with_context(|| format!("attaching {PASS_PROGRAM} to {iface}"))?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub object: PathBuf,
    /// Pin the maps under this bpffs directory (reused if already there), so
    /// an agent restart finds the bindings the fast path is still using.
    pub pin_dir: Option<PathBuf>,
    /// Size of the subscriber maps.
    pub max_subscribers: u32,
    /// The one role this gateway plays, if known: the other role's
    /// subscriber maps are then created with a single entry instead of
    /// `max_subscribers` (memory an access gateway would never use).
    pub role: Option<GatewayRole>,
    /// Whether IPv6 home network prefixes are assigned here (an anchor with
    /// an IPv6 pool): without them `ANCHOR_BY_HNP` gets a single entry.
    pub home_prefixes: bool,
    /// The anchor's home pools: their members are found by their place in
    /// the pool (arrays) instead of in a hash.
    pub home_pools: Vec<HomePoolSpec>,
    /// Log the fast path's slow-path debug events (drops with their reason,
    /// FIB misses, new MACs; pmip-ebpf/src/log.rs), to be forwarded into
    /// tracing by [`crate::fastpath_log::spawn`]. Off (the default), the
    /// verifier removes the logging code: forwarding costs what it did without.
    pub log_events: bool,
}

/// A pool of home addresses or home network prefixes (anchor role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomePoolSpec {
    V4 {
        prefix: Ipv4Addr,
        len: u8,
    },
    /// Delegating prefixes of `assign_len` bits out of `prefix`/`len`.
    V6 {
        prefix: Ipv6Addr,
        len: u8,
        assign_len: u8,
    },
}

/// Which side of the tunnel a gateway is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayRole {
    Access,
    Anchor,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            object: default_object_path(),
            pin_dir: None,
            max_subscribers: pmip_common::MAX_SUBSCRIBERS,
            role: None,
            home_prefixes: true,
            home_pools: Vec::new(),
            log_events: false,
        }
    }
}

/// How to attach the fast path to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// Native (driver) XDP, else generic XDP, else TC ingress.
    Auto,
    /// Native (driver) XDP only.
    Native,
    /// Generic (skb) XDP only.
    Generic,
    /// `pmip_tc_ingress` on the TC ingress hook (TCX) only: the same paths on
    /// an skb, for interfaces where no XDP mode attaches.
    Tc,
}

/// How an interface got the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Xdp(XdpMode),
    Tc,
    /// A link pinned by an earlier run was found and kept.
    Kept,
}

/// An interface's part in the fast path, with the addresses ICMP errors come from.
#[derive(Clone, Debug)]
pub struct IfaceSpec {
    pub name: String,
    pub role: u8,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
}

/// The loaded fast path.
pub struct FastPath {
    ebpf: Ebpf,
    /// bpffs directory of pinned maps and links (None: nothing outlives us).
    pin_dir: Option<PathBuf>,
    tunnels: StdHashMap<TunnelEnds, u32>,
    /// Which mode each attached interface got.
    pub attached: Vec<(String, Attached)>,
    /// Occupied slots of the ACCESS_BY_KEY and ANCHOR_BY_KEY arrays (an
    /// array cannot be counted cheaply; `show stats` asks every 500 ms).
    key_slots: [usize; 2],
    /// The home pools as written to HOME_POOLS4/6, and the occupied slots of
    /// ANCHOR_BY_POOL4/6.
    pools4: Vec<HomePool4>,
    pools6: Vec<HomePool6>,
    pool_slots: [usize; 2],
    /// SUB_STATS's shape: (rows = CPUs, entries per row), fixed at load.
    stats_rows: (u32, u32),
}

/// The two GRE-key tables: array indexed by key + hash for larger keys.
#[derive(Clone, Copy)]
enum KeyTable {
    Access = 0,
    Anchor = 1,
}

impl KeyTable {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            KeyTable::Access => (maps::ACCESS_BY_KEY, maps::ACCESS_BY_KEY_HIGH),
            KeyTable::Anchor => (maps::ANCHOR_BY_KEY, maps::ANCHOR_BY_KEY_HIGH),
        }
    }
}

fn map_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

pub fn ifindex(name: &str) -> Result<u32> {
    Ok(crate::access::shell::interface_info(name)?.0)
}

/// The interface's MAC, read in the calling thread's network namespace.
pub fn iface_mac(name: &str) -> Result<[u8; 6]> {
    Ok(crate::access::shell::interface_info(name)?.1)
}

/// `aa:bb:cc:dd:ee:ff`, `aa-bb-…` or Cisco `aabb.ccdd.eeff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    crate::access::frame::parse_mac(s).ok_or_else(|| anyhow!("bad MAC address {s:?}"))
}

fn addr16(a: IpAddr) -> (u8, [u8; 16]) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (FAMILY_V4, b)
        }
        IpAddr::V6(v6) => (FAMILY_V6, v6.octets()),
    }
}

fn hnp64(h: &Option<Hnp>) -> [u8; 8] {
    let mut b = [0u8; 8];
    if let Some(h) = h {
        b.copy_from_slice(&h.prefix.octets()[..8]);
    }
    b
}

/// Entries of a `*_BY_KEY_HIGH` map: GRE keys beyond the array (static
/// bindings with large keys, a large configured key base). Our allocators
/// keep keys small, so a sixteenth of the table (at least 1024); its hash
/// buckets are allocated up front even without preallocated elements.
pub fn high_keys(table: u32) -> u32 {
    if table <= 1 {
        1
    } else {
        (table / 16).max(1024)
    }
}

/// Entries of `ANCHOR_BY_HOME4`/`HNP` on an anchor with pools (see `load`).
pub fn high_homes(table: u32) -> u32 {
    if table <= 1 {
        1
    } else {
        (table / 4).max(1024)
    }
}

impl FastPath {
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        let size = |mine: bool| {
            if mine || opts.role.is_none() {
                opts.max_subscribers
            } else {
                1
            }
        };
        let access = size(opts.role == Some(GatewayRole::Access));
        let anchor = size(opts.role == Some(GatewayRole::Anchor));
        let has4 = opts
            .home_pools
            .iter()
            .any(|p| matches!(p, HomePoolSpec::V4 { .. }));
        let has6 = opts.home_prefixes
            && opts
                .home_pools
                .iter()
                .any(|p| matches!(p, HomePoolSpec::V6 { .. }));
        // With pools, the hashes keep only addresses outside them (static ones).
        // A quarter of the table: static addresses, and pool members beyond
        // the array (the allocators hand out the start of a pool first).
        let home4_hash = if has4 { high_homes(anchor) } else { anchor };
        let hnp_hash = if !opts.home_prefixes {
            1
        } else if has6 {
            high_homes(anchor)
        } else {
            anchor
        };
        for (m, n) in [
            (maps::ANCHOR_BY_POOL4, if has4 { anchor } else { 1 }),
            (maps::ANCHOR_BY_POOL6, if has6 { anchor } else { 1 }),
            (maps::ACCESS_BY_MAC, access),
            (maps::ACCESS_BY_KEY, access),
            (maps::ACCESS_BY_KEY_HIGH, high_keys(access)),
            (maps::ANCHOR_BY_HOME4, home4_hash),
            (maps::ANCHOR_BY_HNP, hnp_hash),
            (maps::ANCHOR_BY_KEY, anchor),
            (maps::ANCHOR_BY_KEY_HIGH, high_keys(anchor)),
        ] {
            loader.map_max_entries(m, n);
        }
        let pins: Vec<(&str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                ensure_bpffs(dir)?;
                MAP_NAMES.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        // Read once: checked against the pins, then loaded.
        let object = std::fs::read(&opts.object)
            .with_context(|| format!("reading eBPF object {}", opts.object.display()))?;
        check_pins(&object, &opts.object, &pins)?;
        // SUB_STATS: a row of `stride` entries per CPU. A pinned table keeps
        // the stride it was created with (its counters are laid out so).
        let cpus = nr_cpus()?;
        let pinned_stats = pins
            .iter()
            .find(|(m, _)| *m == maps::SUB_STATS)
            .map(|(_, p)| p)
            .filter(|p| p.exists());
        let stride = match pinned_stats {
            Some(p) => {
                let entries = MapData::from_pin(p)
                    .and_then(|m| m.info())
                    .map_err(map_err)?
                    .max_entries();
                if entries == 0 || entries % cpus != 0 {
                    bail!("pinned {} has {entries} entries, not a row per CPU ({cpus}); `pmipd unpin` it", p.display());
                }
                entries / cpus
            }
            None => opts.max_subscribers,
        };
        let stats_entries = stride.checked_mul(cpus).ok_or_else(|| {
            anyhow!(
                "max_subscribers {} × {cpus} CPUs is too many traffic counters",
                opts.max_subscribers
            )
        })?;
        loader.map_max_entries(maps::SUB_STATS, stats_entries);
        loader.override_global(maps::SUB_STATS_STRIDE, &stride, true);
        // Required only to turn logging on: an object from before it loads with it off.
        let log_events = u32::from(opts.log_events);
        loader.override_global(maps::LOG_EVENTS, &log_events, opts.log_events);
        for (m, p) in &pins {
            loader.map_pin_path(m, p.as_path());
        }
        let mut ebpf = loader
            .load(&object)
            .with_context(|| format!("loading eBPF object {}", opts.object.display()))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from object"))?
            .try_into()?;
        prog.load().context("verifier rejected pmip_xdp")?;
        let mut fp = FastPath {
            ebpf,
            pin_dir: opts.pin_dir.clone(),
            tunnels: StdHashMap::new(),
            attached: Vec::new(),
            key_slots: [0; 2],
            pools4: Vec::new(),
            pools6: Vec::new(),
            pool_slots: [0; 2],
            stats_rows: (cpus, stride),
        };
        fp.recover_tunnels()?;
        fp.set_home_pools(
            &opts.home_pools,
            if has4 { anchor } else { 0 },
            if has6 { anchor } else { 0 },
        )?;
        if opts.pin_dir.is_some() {
            // Pinned maps may hold an earlier run's bindings.
            fp.key_slots = [
                fp.count_slots::<AccessDownlink>(maps::ACCESS_BY_KEY, |d| d.ifindex != 0)?,
                fp.count_slots::<AnchorUplink>(maps::ANCHOR_BY_KEY, |b| {
                    b.flags & flags::IN_USE != 0
                })?,
            ];
            fp.pool_slots = [
                fp.count_slots::<AnchorDownlink>(maps::ANCHOR_BY_POOL4, |d| {
                    d.flags & flags::IN_USE != 0
                })?,
                fp.count_slots::<AnchorDownlink>(maps::ANCHOR_BY_POOL6, |d| {
                    d.flags & flags::IN_USE != 0
                })?,
            ];
        }
        Ok(fp)
    }

    /// After a restart with pinned maps: learn which tunnel ids are taken.
    fn recover_tunnels(&mut self) -> Result<()> {
        let arr: Array<&MapData, Tunnel> = Array::try_from(
            self.ebpf
                .map(maps::TUNNELS)
                .ok_or_else(|| anyhow!("TUNNELS missing"))?,
        )?;
        for i in 0..arr.len() {
            let t = arr.get(&i, 0).map_err(map_err)?;
            if t.family != 0 {
                let ends = |b: [u8; 16]| -> IpAddr {
                    if t.family == FAMILY_V4 {
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(b))
                    }
                };
                self.tunnels.insert(
                    TunnelEnds {
                        local: ends(t.local),
                        remote: ends(t.remote),
                    },
                    i,
                );
            }
        }
        Ok(())
    }

    fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing from object"))
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from object"))
    }

    pub fn program(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing"))?
            .try_into()?)
    }

    /// `pmip_tc_ingress` (loaded by [`load_tc_program`](Self::load_tc_program)).
    pub fn tc_program(&self) -> Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program(TC_INGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_INGRESS_PROGRAM} missing"))?
            .try_into()?)
    }

    /// Loads `pmip_tc_ingress` (on first use only: XDP-only gateways never
    /// pay for its verification). BPF_PROG_TEST_RUN and TC attach use it.
    pub fn load_tc_program(&mut self) -> Result<&SchedClassifier> {
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_INGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_INGRESS_PROGRAM} missing"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load().context("verifier rejected pmip_tc_ingress")?;
        }
        Ok(prog)
    }

    /// Writes the interface's role and addresses (no attach; TestRun uses this).
    pub fn configure_iface(&mut self, spec: &IfaceSpec) -> Result<u32> {
        let idx = ifindex(&spec.name)?;
        let cfg = IfaceConfig {
            mac: iface_mac(&spec.name)?,
            role: spec.role,
            _pad: 0,
            addr4: spec.addr4.map(|a| a.octets()).unwrap_or_default(),
            addr6: spec.addr6.map(|a| a.octets()).unwrap_or_default(),
        };
        if idx < pmip_common::IFACE_SLOTS {
            let mut m: Array<_, IfaceConfig> = Array::try_from(self.map_mut(maps::IFACES)?)?;
            m.set(idx, cfg, 0).map_err(map_err)?;
        } else {
            let mut m: HashMap<_, u32, IfaceConfig> =
                HashMap::try_from(self.map_mut(maps::IFACES_HIGH)?)?;
            m.insert(idx, cfg, 0).map_err(map_err)?;
        }
        Ok(idx)
    }

    /// Configures and attaches the fast path to an interface. With `Auto`:
    /// native XDP, generic XDP when the driver cannot do native, and the TC
    /// ingress program when no XDP mode attaches. Anchor interfaces also get
    /// the TC egress program. With a pin directory the links are pinned: the
    /// fast path keeps forwarding after we exit, and a restarted agent finds
    /// them (and the pinned maps) and attaches nothing.
    pub fn attach(&mut self, spec: &IfaceSpec, mode: AttachMode) -> Result<Attached> {
        self.configure_iface(spec)?;
        if spec.role & (pmip_common::role::ANCHOR_CORE | pmip_common::role::ANCHOR_CN) != 0 {
            self.attach_tc_egress(&spec.name)?;
        }
        let pins = self.pin_dir.as_ref().map(|d| {
            (
                d.join(format!("link_xdp_{}", spec.name)),
                d.join(format!("link_tc_ingress_{}", spec.name)),
            )
        });
        if let Some((xdp, tc)) = &pins {
            if let Some(p) = [xdp, tc].into_iter().find(|p| p.exists()) {
                tracing::info!(iface = %spec.name, pin = %p.display(), "fast path already attached by an earlier run; keeping it");
                self.attached.push((spec.name.clone(), Attached::Kept));
                return Ok(Attached::Kept);
            }
        }
        let modes: &[XdpMode] = match mode {
            AttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
            AttachMode::Native => &[XdpMode::Driver],
            AttachMode::Generic => &[XdpMode::Skb],
            AttachMode::Tc => &[],
        };
        let prog: &mut Xdp = self.ebpf.program_mut(PROGRAM).unwrap().try_into()?;
        let mut last = None;
        for m in modes {
            match prog.attach(&spec.name, *m) {
                Ok(id) => {
                    if let Some((p, _)) = &pins {
                        let link: FdLink = prog.take_link(id)?.try_into()?;
                        link.pin(p)
                            .map_err(|e| anyhow!("pinning XDP link at {}: {e}", p.display()))?;
                    }
                    self.attached.push((spec.name.clone(), Attached::Xdp(*m)));
                    return Ok(Attached::Xdp(*m));
                }
                Err(e) => {
                    tracing::warn!(iface = %spec.name, mode = ?m, error = %e, "XDP attach failed");
                    last = Some(anyhow!("XDP ({m:?}): {e}"));
                }
            }
        }
        if matches!(mode, AttachMode::Auto | AttachMode::Tc) {
            match self.attach_tc_ingress(&spec.name, pins.as_ref().map(|(_, tc)| tc.as_path())) {
                Ok(()) => {
                    self.attached.push((spec.name.clone(), Attached::Tc));
                    return Ok(Attached::Tc);
                }
                Err(e) => {
                    tracing::warn!(iface = %spec.name, error = %e, "TC ingress attach failed");
                    last = Some(e);
                }
            }
        }
        Err(anyhow!(
            "attaching the fast path to {}: {}",
            spec.name,
            last.map(|e| format!("{e:#}")).unwrap_or_default()
        ))
    }

    /// Attaches `pmip_tc_ingress` on the interface's ingress (TCX on this
    /// kernel, as the egress program), pinning the link at `pin` if given.
    fn attach_tc_ingress(&mut self, iface: &str, pin: Option<&Path>) -> Result<()> {
        // Kernels before 6.6 attach through a clsact qdisc; TCX needs none.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        self.load_tc_program()?;
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_INGRESS_PROGRAM)
            .unwrap()
            .try_into()?;
        let id = prog
            .attach(iface, TcAttachType::Ingress)
            .with_context(|| format!("attaching TC ingress to {iface}"))?;
        if let Some(p) = pin {
            let link: FdLink = prog.take_link(id)?.try_into()?;
            link.pin(p)
                .map_err(|e| anyhow!("pinning TC link at {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Another XDP program of the object, loaded on first use.
    pub fn loaded_program(&mut self, name: &str) -> Result<&Xdp> {
        Ok(loaded_xdp(&mut self.ebpf, name)?)
    }

    /// Attaches the pass-everything program (see [`attach_pass`]): pmipd's
    /// `xdp-pass` and static role `pass`.
    pub fn attach_pass(&mut self, iface: &str) -> Result<()> {
        attach_pass(&mut self.ebpf, iface)
    }

    /// Attaches `pmip_tc_egress` on the interface's egress (TCX on this kernel).
    pub fn attach_tc_egress(&mut self, iface: &str) -> Result<()> {
        let pin = self
            .pin_dir
            .as_ref()
            .map(|d| d.join(format!("link_tc_egress_{iface}")));
        if pin.as_ref().map(|p| p.exists()).unwrap_or(false) {
            return Ok(());
        }
        // Kernels before 6.6 attach through a clsact qdisc; TCX needs none.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_EGRESS_PROGRAM} missing"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load().context("verifier rejected pmip_tc_egress")?;
        }
        let id = prog
            .attach(iface, TcAttachType::Egress)
            .with_context(|| format!("attaching TC egress to {iface}"))?;
        if let Some(p) = &pin {
            let link: FdLink = prog.take_link(id)?.try_into()?;
            link.pin(p)
                .map_err(|e| anyhow!("pinning TC link at {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Id of the tunnel with these ends, creating its `TUNNELS` entry first.
    pub fn tunnel_id(&mut self, ends: &TunnelEnds) -> Result<u32> {
        if let Some(id) = self.tunnels.get(ends) {
            return Ok(*id);
        }
        let (lf, local) = addr16(ends.local);
        let (rf, remote) = addr16(ends.remote);
        if lf != rf {
            bail!("tunnel {ends:?}: local and remote are of different families");
        }
        let id = (0..pmip_common::MAX_TUNNELS)
            .find(|i| !self.tunnels.values().any(|v| v == i))
            .ok_or_else(|| anyhow!("tunnel table full"))?;
        let mut arr: Array<_, Tunnel> = Array::try_from(self.map_mut(maps::TUNNELS)?)?;
        arr.set(
            id,
            Tunnel {
                family: lf,
                _pad: [0; 3],
                local,
                remote,
            },
            0,
        )
        .map_err(map_err)?;
        self.tunnels.insert(*ends, id);
        Ok(id)
    }

    pub fn install_access(&mut self, b: &AccessBinding) -> Result<()> {
        let tunnel_id = self.tunnel_id(&b.tunnel)?;
        let mut fl = 0;
        if b.home_v4.is_some() {
            fl |= flags::HAS_HOME4;
        }
        if b.hnp.is_some() {
            fl |= flags::HAS_HNP;
        }
        let sub = AccessSubscriber {
            uplink_key: b.uplink_key.to_be_bytes(),
            sub_id: b.sub_id,
            tunnel_id,
            flags: fl,
            home_v4: b.home_v4.map(|a| a.octets()).unwrap_or_default(),
            gateway_v4: b.gateway_v4.map(|a| a.octets()).unwrap_or_default(),
            home_hnp: hnp64(&b.hnp),
        };
        let down = AccessDownlink {
            sub_id: b.sub_id,
            tunnel_id,
            ifindex: b.at.ifindex,
            vlan: b.at.vlan,
            mac: b.at.mac,
        };
        self.reset_stats(b.sub_id)?;
        // Downlink first: by the time the subscriber can send, replies can come back.
        self.set_by_key(KeyTable::Access, b.downlink_key, down, |d| d.ifindex != 0)?;
        let mut by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map_mut(maps::ACCESS_BY_MAC)?)?;
        by_mac.insert(access_key(b), sub, 0).map_err(map_err)?;
        // Retire the fast path's per-CPU copies of the key: after the entry.
        self.bump_access_gen(&access_key(b))
    }

    /// Removes a subscriber's entries, but only those that still belong to
    /// this binding (a newer one for the same MAC or key is left alone).
    pub fn remove_access(&mut self, b: &AccessBinding) -> Result<()> {
        let by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map(maps::ACCESS_BY_MAC)?)?;
        let k = access_key(b);
        if let Ok(cur) = by_mac.get(&k, 0) {
            if cur.uplink_key == b.uplink_key.to_be_bytes() {
                let mut by_mac: HashMap<_, AccessKey, AccessSubscriber> =
                    HashMap::try_from(self.map_mut(maps::ACCESS_BY_MAC)?)?;
                let _ = by_mac.remove(&k);
                // Then retire the fast path's cached copies.
                self.bump_access_gen(&k)?;
            }
        }
        self.clear_by_key::<AccessDownlink>(KeyTable::Access, b.downlink_key, |d| {
            d.ifindex != 0 && d.mac == b.at.mac && d.ifindex == b.at.ifindex
        })
    }

    pub fn install_anchor(&mut self, b: &AnchorBinding) -> Result<()> {
        let tunnel_id = self.tunnel_id(&b.tunnel)?;
        let mut fl = 0;
        if b.home_v4.is_some() {
            fl |= flags::HAS_HOME4;
        }
        if b.hnp.is_some() {
            fl |= flags::HAS_HNP;
        }
        let up = AnchorUplink {
            sub_id: b.sub_id,
            tunnel_id,
            flags: fl | flags::IN_USE,
            home_v4: b.home_v4.map(|a| a.octets()).unwrap_or_default(),
            home_hnp: hnp64(&b.hnp),
        };
        let down = AnchorDownlink {
            downlink_key: b.downlink_key.to_be_bytes(),
            sub_id: b.sub_id,
            tunnel_id,
            flags: flags::IN_USE,
        };
        self.set_by_key(KeyTable::Anchor, b.uplink_key, up, |u| {
            u.flags & flags::IN_USE != 0
        })?;
        if let Some(h) = b.home_v4 {
            match self.pool4_index(h) {
                Some(i) => self.set_pool_slot(0, i, down)?,
                None => {
                    let mut m: HashMap<_, [u8; 4], AnchorDownlink> =
                        HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HOME4)?)?;
                    m.insert(h.octets(), down, 0).map_err(map_err)?;
                }
            }
        }
        if b.hnp.is_some() {
            let k = hnp64(&b.hnp);
            match self.pool6_index(k) {
                Some(i) => self.set_pool_slot(1, i, down)?,
                None => {
                    let mut m: HashMap<_, [u8; 8], AnchorDownlink> =
                        HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HNP)?)?;
                    m.insert(k, down, 0).map_err(map_err)?;
                }
            }
        }
        Ok(())
    }

    /// Removes a binding's entries that still point where this binding does
    /// (after a handover the home address already points elsewhere).
    pub fn remove_anchor(&mut self, b: &AnchorBinding) -> Result<()> {
        let tunnel_id = match self.tunnels.get(&b.tunnel) {
            Some(t) => *t,
            None => return Ok(()),
        };
        let mine = |d: &AnchorDownlink| {
            d.tunnel_id == tunnel_id && d.downlink_key == b.downlink_key.to_be_bytes()
        };
        self.clear_by_key::<AnchorUplink>(KeyTable::Anchor, b.uplink_key, |u| {
            u.flags & flags::IN_USE != 0
        })?;
        if let Some(h) = b.home_v4 {
            if let Some(i) = self.pool4_index(h) {
                self.clear_pool_slot(0, i, &mine)?;
            } else {
                let mut m: HashMap<_, [u8; 4], AnchorDownlink> =
                    HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HOME4)?)?;
                if m.get(&h.octets(), 0).map(|d| mine(&d)).unwrap_or(false) {
                    let _ = m.remove(&h.octets());
                }
            }
        }
        if b.hnp.is_some() {
            let k = hnp64(&b.hnp);
            if let Some(i) = self.pool6_index(k) {
                self.clear_pool_slot(1, i, &mine)?;
            } else {
                let mut m: HashMap<_, [u8; 8], AnchorDownlink> =
                    HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HNP)?)?;
                if m.get(&k, 0).map(|d| mine(&d)).unwrap_or(false) {
                    let _ = m.remove(&k);
                }
            }
        }
        Ok(())
    }

    /// Lays the home pools out over the ANCHOR_BY_POOL4/6 arrays (`cap4`,
    /// `cap6` slots) in order, each as far as the array reaches, and writes
    /// them to HOME_POOLS4/6 for the fast path.
    fn set_home_pools(&mut self, pools: &[HomePoolSpec], cap4: u32, cap6: u32) -> Result<()> {
        let (mut base4, mut base6) = (0u32, 0u32);
        for p in pools {
            match *p {
                HomePoolSpec::V4 { prefix, len } => {
                    if !(1..=32).contains(&len) {
                        bail!("home pool {prefix}/{len}: prefix length must be 1..=32");
                    }
                    let count = 1u64 << (32 - len);
                    let size = count.min((cap4 - base4) as u64) as u32;
                    if size == 0 || self.pools4.len() as u32 == pmip_common::MAX_HOME_POOLS {
                        continue;
                    }
                    let mask = if len == 32 {
                        u32::MAX
                    } else {
                        !(u32::MAX >> len)
                    };
                    self.pools4.push(HomePool4 {
                        prefix: u32::from(prefix) & mask,
                        len: len as u32,
                        base: base4,
                        size,
                    });
                    base4 += size;
                }
                HomePoolSpec::V6 {
                    prefix,
                    len,
                    assign_len,
                } => {
                    if !(1..=64).contains(&len) || !(len..=64).contains(&assign_len) {
                        bail!("home pool {prefix}/{len}: prefix length must be 1..=64 and the assigned length {assign_len} between it and 64");
                    }
                    let count = 1u64
                        .checked_shl((assign_len - len) as u32)
                        .unwrap_or(u64::MAX);
                    let size = count.min((cap6 - base6) as u64) as u32;
                    if size == 0 || self.pools6.len() as u32 == pmip_common::MAX_HOME_POOLS {
                        continue;
                    }
                    let top = (u128::from(prefix) >> 64) as u64;
                    let mask = if len == 64 {
                        u64::MAX
                    } else {
                        !(u64::MAX >> len)
                    };
                    self.pools6.push(HomePool6 {
                        prefix: top & mask,
                        len: len as u32,
                        assign_len: assign_len as u32,
                        base: base6,
                        size,
                    });
                    base6 += size;
                }
            }
        }
        let (p4, p6) = (self.pools4.clone(), self.pools6.clone());
        // Pinned maps of an earlier run laid out for other pools: their slots
        // would now be read as other addresses. Start those tables empty (the
        // agent installs its bindings again).
        let stale4 = self.pool_layout_differs::<HomePool4>(maps::HOME_POOLS4, &p4)?;
        let stale6 = self.pool_layout_differs::<HomePool6>(maps::HOME_POOLS6, &p6)?;
        for (stale, table) in [
            (stale4, maps::ANCHOR_BY_POOL4),
            (stale6, maps::ANCHOR_BY_POOL6),
        ] {
            if stale {
                tracing::warn!(
                    map = table,
                    "home pools differ from the pinned maps' layout; clearing the pool table"
                );
                let mut a: Array<_, AnchorDownlink> = Array::try_from(self.map_mut(table)?)?;
                for i in 0..a.len() {
                    a.set(i, AnchorDownlink::default(), 0).map_err(map_err)?;
                }
            }
        }
        let mut a: Array<_, HomePool4> = Array::try_from(self.map_mut(maps::HOME_POOLS4)?)?;
        for i in 0..pmip_common::MAX_HOME_POOLS {
            a.set(i, p4.get(i as usize).copied().unwrap_or_default(), 0)
                .map_err(map_err)?;
        }
        let mut a: Array<_, HomePool6> = Array::try_from(self.map_mut(maps::HOME_POOLS6)?)?;
        for i in 0..pmip_common::MAX_HOME_POOLS {
            a.set(i, p6.get(i as usize).copied().unwrap_or_default(), 0)
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Whether the pools written in `map` (by an earlier run, through pinned
    /// maps) differ from `pools`; a map never written (all zero) does not.
    fn pool_layout_differs<P: aya::Pod + Default + PartialEq>(
        &self,
        map: &str,
        pools: &[P],
    ) -> Result<bool> {
        let a: Array<_, P> = Array::try_from(self.map(map)?)?;
        let old: Vec<P> = (0..pmip_common::MAX_HOME_POOLS)
            .map(|i| a.get(&i, 0).unwrap_or_default())
            .collect();
        if old.iter().all(|p| *p == P::default()) {
            return Ok(false);
        }
        Ok((0..old.len()).any(|i| old[i] != pools.get(i).copied().unwrap_or_default()))
    }

    /// The ANCHOR_BY_POOL4 slot of home address `h`, if a pool indexes it
    /// (the same computation as the fast path's `anchor_by_home4`).
    fn pool4_index(&self, h: Ipv4Addr) -> Option<u32> {
        let a = u32::from(h);
        for p in &self.pools4 {
            let host = 32 - p.len;
            if ((a ^ p.prefix) as u64) >> host == 0 {
                let off = (a as u64 & ((1u64 << host) - 1)) as u32;
                return (off < p.size).then_some(p.base + off);
            }
        }
        None
    }

    /// The ANCHOR_BY_POOL6 slot of home network prefix `k` (first 64 bits).
    fn pool6_index(&self, k: [u8; 8]) -> Option<u32> {
        let a = u64::from_be_bytes(k);
        for p in &self.pools6 {
            let host = 64 - p.len;
            if (a ^ p.prefix).checked_shr(host).unwrap_or(0) == 0 {
                let bits = p.assign_len - p.len;
                let off = a.checked_shr(64 - p.assign_len).unwrap_or(0)
                    & 1u64.checked_shl(bits).map(|m| m - 1).unwrap_or(u64::MAX);
                return (off < p.size as u64).then_some(p.base + off as u32);
            }
        }
        None
    }

    fn pool_table(which: usize) -> &'static str {
        if which == 0 {
            maps::ANCHOR_BY_POOL4
        } else {
            maps::ANCHOR_BY_POOL6
        }
    }

    fn set_pool_slot(&mut self, which: usize, i: u32, v: AnchorDownlink) -> Result<()> {
        if self.fill_slot(Self::pool_table(which), i, v, |d: &AnchorDownlink| {
            d.flags & flags::IN_USE != 0
        })? {
            self.pool_slots[which] += 1;
        }
        Ok(())
    }

    fn clear_pool_slot(
        &mut self,
        which: usize,
        i: u32,
        mine: &dyn Fn(&AnchorDownlink) -> bool,
    ) -> Result<()> {
        if self.free_slot(Self::pool_table(which), i, |d: &AnchorDownlink| {
            d.flags & flags::IN_USE != 0 && mine(d)
        })? {
            self.pool_slots[which] = self.pool_slots[which].saturating_sub(1);
        }
        Ok(())
    }

    /// Writes `v` into slot `i` of array map `name`; true if the slot was
    /// free before (`used` tells), so that the caller counts occupied slots.
    fn fill_slot<V: aya::Pod>(
        &mut self,
        name: &str,
        i: u32,
        v: V,
        used: impl Fn(&V) -> bool,
    ) -> Result<bool> {
        let mut a: Array<_, V> = Array::try_from(self.map_mut(name)?)?;
        let was = a.get(&i, 0).map(|c| used(&c)).unwrap_or(false);
        a.set(i, v, 0).map_err(map_err)?;
        Ok(!was)
    }

    /// Frees slot `i` of array map `name` if its entry satisfies `mine`;
    /// true if it did.
    fn free_slot<V: aya::Pod + Default>(
        &mut self,
        name: &str,
        i: u32,
        mine: impl Fn(&V) -> bool,
    ) -> Result<bool> {
        let mut a: Array<_, V> = Array::try_from(self.map_mut(name)?)?;
        if !a.get(&i, 0).map(|c| mine(&c)).unwrap_or(false) {
            return Ok(false);
        }
        a.set(i, V::default(), 0).map_err(map_err)?;
        Ok(true)
    }

    /// Entries of array map `name`.
    fn array_len<V: aya::Pod>(&self, name: &str) -> Result<u32> {
        Ok(Array::<_, V>::try_from(self.map(name)?)?.len())
    }

    /// Invalidates the fast path's per-CPU copies of `key` (and of the other
    /// keys of its ACCESS_CACHE set) on every CPU. Called after each change to
    /// the key's ACCESS_BY_MAC entry: the fast path reads the generation
    /// before the entry, so a copy of the old entry never carries the new one.
    fn bump_access_gen(&mut self, key: &AccessKey) -> Result<()> {
        let set = pmip_common::access_cache_set(key);
        let mut a: Array<_, u32> = Array::try_from(self.map_mut(maps::ACCESS_GEN)?)?;
        let g = a.get(&set, 0).map_err(map_err)?;
        a.set(set, g.wrapping_add(1), 0).map_err(map_err)
    }

    /// Puts `v` under GRE key `key`: in the array when the key is an index
    /// of it, else in the hash.
    fn set_by_key<V: aya::Pod + Default>(
        &mut self,
        t: KeyTable,
        key: u32,
        v: V,
        used: impl Fn(&V) -> bool,
    ) -> Result<()> {
        let (array, high) = t.names();
        if key < self.array_len::<V>(array)? {
            if self.fill_slot(array, key, v, used)? {
                self.key_slots[t as usize] += 1;
            }
            return Ok(());
        }
        let mut h: HashMap<_, [u8; 4], V> = HashMap::try_from(self.map_mut(high)?)?;
        h.insert(key.to_be_bytes(), v, 0).map_err(map_err)
    }

    /// Frees GRE key `key` if its entry satisfies `mine`.
    fn clear_by_key<V: aya::Pod + Default>(
        &mut self,
        t: KeyTable,
        key: u32,
        mine: impl Fn(&V) -> bool,
    ) -> Result<()> {
        let (array, high) = t.names();
        if key < self.array_len::<V>(array)? {
            if self.free_slot(array, key, mine)? {
                self.key_slots[t as usize] = self.key_slots[t as usize].saturating_sub(1);
            }
            return Ok(());
        }
        let mut h: HashMap<_, [u8; 4], V> = HashMap::try_from(self.map_mut(high)?)?;
        let k = key.to_be_bytes();
        if h.get(&k, 0).map(|c| mine(&c)).unwrap_or(false) {
            let _ = h.remove(&k);
        }
        Ok(())
    }

    /// Occupied slots of a GRE-key array, counted one by one (after a restart).
    fn count_slots<V: aya::Pod>(&self, array: &str, used: impl Fn(&V) -> bool) -> Result<usize> {
        let a: Array<_, V> = Array::try_from(self.map(array)?)?;
        Ok((0..a.len())
            .filter(|i| a.get(i, 0).map(|v| used(&v)).unwrap_or(false))
            .count())
    }

    /// The SUB_STATS entries of subscriber `sub_id`, one per CPU (none when
    /// the id is beyond the table, as the fast path then counts nothing).
    fn stats_entries(&self, sub_id: u32) -> Vec<u32> {
        let (cpus, stride) = self.stats_rows;
        if sub_id < stride {
            (0..cpus).map(|c| c * stride + sub_id).collect()
        } else {
            Vec::new()
        }
    }

    fn reset_stats(&mut self, sub_id: u32) -> Result<()> {
        let entries = self.stats_entries(sub_id);
        let mut m: Array<_, SubscriberStats> = Array::try_from(self.map_mut(maps::SUB_STATS)?)?;
        for i in entries {
            m.set(i, SubscriberStats::default(), 0).map_err(map_err)?;
        }
        Ok(())
    }

    /// The ring buffer of new-MAC events (taken: one reader).
    pub fn new_mac_events(&mut self) -> Result<aya::maps::RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map(maps::NEW_MAC_EVENTS)
            .ok_or_else(|| anyhow!("map {} missing or already taken", maps::NEW_MAC_EVENTS))?;
        Ok(aya::maps::RingBuf::try_from(m)?)
    }

    /// How many entries each subscriber map holds (occupancy, for `show stats`
    /// and tests).
    pub fn map_entries(&self) -> Result<Vec<(&'static str, usize)>> {
        fn count<K: aya::Pod, V: aya::Pod>(
            fp: &FastPath,
            name: &'static str,
        ) -> Result<(&'static str, usize)> {
            let m: HashMap<_, K, V> = HashMap::try_from(fp.map(name)?)?;
            Ok((name, m.keys().filter(|k| k.is_ok()).count()))
        }
        // The GRE-key tables: occupied array slots plus the hash of larger keys.
        let by_key =
            |t: KeyTable, high: Result<(&'static str, usize)>| -> Result<(&'static str, usize)> {
                Ok((t.names().0, self.key_slots[t as usize] + high?.1))
            };
        Ok(vec![
            count::<AccessKey, AccessSubscriber>(self, maps::ACCESS_BY_MAC)?,
            by_key(
                KeyTable::Access,
                count::<[u8; 4], AccessDownlink>(self, maps::ACCESS_BY_KEY_HIGH),
            )?,
            // Home addresses / prefixes: pool slots plus the hash of the rest.
            (
                maps::ANCHOR_BY_HOME4,
                self.pool_slots[0]
                    + count::<[u8; 4], AnchorDownlink>(self, maps::ANCHOR_BY_HOME4)?.1,
            ),
            (
                maps::ANCHOR_BY_HNP,
                self.pool_slots[1] + count::<[u8; 8], AnchorDownlink>(self, maps::ANCHOR_BY_HNP)?.1,
            ),
            by_key(
                KeyTable::Anchor,
                count::<[u8; 4], AnchorUplink>(self, maps::ANCHOR_BY_KEY_HIGH),
            )?,
        ])
    }

    /// Entries of one subscriber map (see [`map_entries`](Self::map_entries)).
    pub fn map_entry_count(&self, name: &str) -> Result<usize> {
        self.map_entries()?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| anyhow!("no subscriber map named {name}"))
    }

    /// Verdict and drop-reason counters summed over CPUs, by name.
    pub fn counters(&self) -> Result<Vec<(&'static str, u64)>> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::COUNTERS)?)?;
        let mut out = Vec::new();
        for c in Counter::ALL {
            let v = m.get(&(c as u32), 0).map_err(map_err)?;
            out.push((c.name(), v.iter().sum()));
        }
        Ok(out)
    }

    pub fn counter(&self, c: Counter) -> Result<u64> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::COUNTERS)?)?;
        Ok(m.get(&(c as u32), 0).map_err(map_err)?.iter().sum())
    }

    /// Subscriber `sub_id`'s traffic, summed over CPUs.
    pub fn traffic(&self, sub_id: u32) -> Result<TrafficCounters> {
        let mut t = TrafficCounters::default();
        for s in self.traffic_by_cpu(sub_id)? {
            t.up_packets += s.up_packets;
            t.up_bytes += s.up_bytes;
            t.down_packets += s.down_packets;
            t.down_bytes += s.down_bytes;
        }
        Ok(t)
    }

    /// Subscriber `sub_id`'s traffic as each CPU forwarded it (its row of
    /// SUB_STATS per CPU; empty beyond the table).
    pub fn traffic_by_cpu(&self, sub_id: u32) -> Result<Vec<TrafficCounters>> {
        let entries = self.stats_entries(sub_id);
        let m: Array<_, SubscriberStats> = Array::try_from(self.map(maps::SUB_STATS)?)?;
        entries
            .into_iter()
            .map(|i| {
                let s = m.get(&i, 0).map_err(map_err)?;
                Ok(TrafficCounters {
                    up_packets: s.up_packets,
                    up_bytes: s.up_bytes,
                    down_packets: s.down_packets,
                    down_bytes: s.down_bytes,
                })
            })
            .collect()
    }
}

/// Possible CPUs (the fast path's per-CPU rows and maps are sized for them).
fn nr_cpus() -> Result<u32> {
    let n = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("reading the possible CPUs: {e}"))?;
    Ok(n as u32)
}

fn access_key(b: &AccessBinding) -> AccessKey {
    AccessKey {
        ifindex: b.at.ifindex,
        vlan: b.at.vlan,
        mac: b.at.mac,
    }
}

/// Removes everything pinned under `dir` (links first: that detaches the
/// programs), then the directory. The fast path stops forwarding.
pub fn unpin_all(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort_by_key(|p| {
        !p.file_name()
            .map(|n| n.to_string_lossy().starts_with("link_"))
            .unwrap_or(false)
    });
    for p in paths {
        std::fs::remove_file(&p).with_context(|| format!("unpinning {}", p.display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Is `path` (or its nearest existing ancestor) on a bpffs mount?
fn on_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return false;
        }
    }
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: valid path and a zeroed statfs out-parameter.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Checks that every map pinned under the pin directory has the type, key
/// and value sizes this object defines. A map pinned by a build with another
/// layout would otherwise be reused as it is (the kernel checks only that
/// accesses stay inside its sizes), and the fast path would read its entries
/// with the wrong layout.
fn check_pins(data: &[u8], object: &Path, pins: &[(&str, PathBuf)]) -> Result<()> {
    if !pins.iter().any(|(_, p)| p.exists()) {
        return Ok(());
    }
    let obj = aya_obj::Object::parse(data)
        .map_err(|e| anyhow!("parsing eBPF object {}: {e}", object.display()))?;
    for (name, path) in pins {
        let Some(def) = obj.maps.get(*name) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        let info = MapData::from_pin(path)
            .and_then(|m| m.info())
            .map_err(map_err)?;
        let pinned = (
            info.map_type().map_err(map_err)? as u32,
            info.key_size(),
            info.value_size(),
        );
        let ours = (def.map_type(), def.key_size(), def.value_size());
        if pinned != ours {
            let dir = path.parent().unwrap_or(path);
            bail!(
                "pinned map {} (type {}, key {} B, value {} B) is not this build's {name} (type {}, key {} B, value {} B): \
                 it was pinned by another version of pmipd; remove the pins with `pmipd unpin {}` (the fast path stops \
                 forwarding until pmipd attaches again)",
                path.display(), pinned.0, pinned.1, pinned.2, ours.0, ours.1, ours.2, dir.display()
            );
        }
    }
    Ok(())
}

/// Makes sure `dir` is on bpffs (mounting it on /sys/fs/bpf if the directory
/// is under it and nothing is mounted there yet), then creates `dir`.
fn ensure_bpffs(dir: &Path) -> Result<()> {
    if !on_bpffs(dir) {
        if !dir.starts_with("/sys/fs/bpf") {
            bail!(
                "pin_dir {}: not on a bpffs mount (mount -t bpf bpf <dir>)",
                dir.display()
            );
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .context("mounting bpffs")?;
        if !st.success() || !on_bpffs(dir) {
            bail!(
                "pin_dir {}: could not mount bpffs on /sys/fs/bpf",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

impl DataPlane for FastPath {
    fn apply(&mut self, cmd: &DpCommand) -> Result<()> {
        match cmd {
            DpCommand::InstallAccess(b) => self.install_access(b),
            DpCommand::RemoveAccess(b) => self.remove_access(b),
            DpCommand::InstallAnchor(b) => self.install_anchor(b),
            DpCommand::RemoveAnchor(b) => self.remove_anchor(b),
        }
    }

    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.traffic(sub_id).unwrap_or_default()
    }
}
