//! Loading the object: map sizes from the role and pools, the pin
//! directory (checked against this build's layout), SUB_ACTIVE's shape, and
//! what an earlier run left in pinned maps.
use std::collections::HashMap as StdHashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{MapData, PerCpuArray, PerCpuValues};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use pmip_common::{
    flags, maps, sub_active_slots, AccessDownlink, AnchorDownlink, AnchorUplink, DestNextHop,
};

use super::pools::HomePoolSpec;
use super::{map_err, FastPath, PROGRAM};
use crate::sys::bpffs::ensure_bpffs;
use crate::sys::nr_cpus;

const MAP_NAMES: [&str; 25] = [
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
    maps::ANCHOR_SET_GEN,
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
    maps::SUB_TOTALS,
    maps::SUB_ACTIVE,
    // Pinned so that a restarted agent reaches the sockets' map of a program
    // an earlier run attached and pinned (its own sockets left the map when
    // that run's closed).
    maps::MH_SOCKETS,
    maps::MH_LOCAL,
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
/// verified on first use ([`super::attach::loaded_xdp`]).
pub fn load_test_object() -> Result<Ebpf> {
    let path = default_test_object_path();
    Ebpf::load_file(&path).with_context(|| format!("loading eBPF object {}", path.display()))
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub object: PathBuf,
    /// The object's bytes when they are built into the binary
    /// ([`super::ObjectSource::Embedded`]); `object` is then not read.
    pub embedded: Option<&'static [u8]>,
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
            embedded: None,
            pin_dir: None,
            max_subscribers: pmip_common::MAX_SUBSCRIBERS,
            role: None,
            home_prefixes: true,
            home_pools: Vec::new(),
            log_events: false,
        }
    }
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
    /// Loads the object (reusing the maps pinned under `pin_dir`) and
    /// verifies `pmip_xdp`; attaches nothing.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        let (cap4, cap6) = size_maps(&mut loader, opts);
        let pins: Vec<(&str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                ensure_bpffs(dir)?;
                MAP_NAMES.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        // Read once: checked against the pins, then loaded.
        let source = match opts.embedded {
            Some(b) => super::ObjectSource::Embedded(b),
            None => super::ObjectSource::File(opts.object.clone()),
        };
        let object = source.bytes()?;
        // The loader sizes these from the configuration; a pinned one keeps
        // the size it was created with (SUB_ACTIVE: see below).
        let sizes: Vec<(&str, u32)> = map_sizes(opts)
            .0
            .into_iter()
            .chain([(maps::SUB_TOTALS, opts.max_subscribers)])
            .collect();
        let sized: Vec<&str> = sizes
            .iter()
            .map(|(m, _)| *m)
            .chain([maps::SUB_ACTIVE])
            .collect();
        check_pins(&object, &source.describe(), &pins, &sized)?;
        check_pinned_sizes(&pins, &sizes, opts)?;
        if let Some(dir) = &opts.pin_dir {
            remove_retired_pins(dir)?;
        }
        // SUB_ACTIVE: a row of `slots` per CPU. A pinned table keeps the
        // slots it was created with (its counters are laid out so).
        let cpus = nr_cpus()?;
        let pinned_active = pins
            .iter()
            .find(|(m, _)| *m == maps::SUB_ACTIVE)
            .map(|(_, p)| p)
            .filter(|p| p.exists());
        // DEST_NH's counter hints are SUB_ACTIVE indexes (see below).
        let dest_nh_pinned = pins.iter().any(|(m, p)| *m == maps::DEST_NH && p.exists());
        let slots = match pinned_active {
            Some(p) => {
                let entries = pinned_info(p)?.max_entries();
                let slots = entries / cpus;
                if slots < 2 || !slots.is_power_of_two() || entries % cpus != 0 {
                    bail!("pinned {} has {entries} entries, not a row of slots per CPU ({cpus}); `pmipd unpin` it", p.display());
                }
                slots
            }
            None => sub_active_slots(opts.max_subscribers, cpus),
        };
        loader.map_max_entries(maps::SUB_TOTALS, opts.max_subscribers);
        loader.map_max_entries(maps::SUB_ACTIVE, slots * cpus);
        loader.override_global(maps::SUB_ACTIVE_SLOTS, &slots, true);
        // Required only to turn logging on: an object from before it loads with it off.
        let log_events = u32::from(opts.log_events);
        loader.override_global(maps::LOG_EVENTS, &log_events, opts.log_events);
        for (m, p) in &pins {
            loader.map_pin_path(m, p.as_path());
        }
        let mut ebpf = loader
            .load(&object)
            .with_context(|| format!("loading eBPF object {}", source.describe()))?;
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
            active: super::stats::Active::new(cpus, slots),
        };
        if pinned_active.is_none() && dest_nh_pinned {
            // A pinned DEST_NH beside a new SUB_ACTIVE (its pin was removed
            // alone): the slots' counter hints (`DestNextHop::sub_slot`)
            // index the old table's rows, which the new one may lay out
            // otherwise. The cache starts afresh.
            fp.clear_dest_nh(cpus as usize)?;
        }
        fp.recover_tunnels()?;
        fp.set_home_pools(&opts.home_pools, cap4, cap6)?;
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

    /// Empties the DEST_NH slots of every one of `cpus` CPUs (the next
    /// packets ask the FIB).
    fn clear_dest_nh(&mut self, cpus: usize) -> Result<()> {
        let mut m: PerCpuArray<_, DestNextHop> =
            PerCpuArray::try_from(self.map_mut(maps::DEST_NH)?)?;
        for i in 0..m.len() {
            let empty = PerCpuValues::try_from(vec![DestNextHop::default(); cpus])?;
            m.set(i, empty, 0).map_err(map_err)?;
        }
        Ok(())
    }
}

/// Sizes the subscriber maps for the role and pools; returns how many
/// slots the IPv4 and IPv6 pool arrays have (0: no such pools).
fn size_maps(loader: &mut EbpfLoader<'_>, opts: &LoadOptions) -> (u32, u32) {
    let (sizes, caps) = map_sizes(opts);
    for (m, n) in sizes {
        loader.map_max_entries(m, n);
    }
    caps
}

/// The entries of each subscriber map for the role and pools, and how many
/// slots the IPv4 and IPv6 pool arrays have (0: no such pools).
pub(super) fn map_sizes(opts: &LoadOptions) -> ([(&'static str, u32); 9], (u32, u32)) {
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
    (
        [
            (maps::ANCHOR_BY_POOL4, if has4 { anchor } else { 1 }),
            (maps::ANCHOR_BY_POOL6, if has6 { anchor } else { 1 }),
            (maps::ACCESS_BY_MAC, access),
            (maps::ACCESS_BY_KEY, access),
            (maps::ACCESS_BY_KEY_HIGH, high_keys(access)),
            (maps::ANCHOR_BY_HOME4, home4_hash),
            (maps::ANCHOR_BY_HNP, hnp_hash),
            (maps::ANCHOR_BY_KEY, anchor),
            (maps::ANCHOR_BY_KEY_HIGH, high_keys(anchor)),
        ],
        (if has4 { anchor } else { 0 }, if has6 { anchor } else { 0 }),
    )
}

/// Removes everything pinned under `dir` (links first, each detached from
/// its hook before its pin goes: the programs are off the interfaces when
/// this returns), then the directory. The fast path stops forwarding. A
/// directory that is not on bpffs is refused untouched: its files are not
/// pins, and deleting them is not ours to do.
pub fn unpin_all(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !crate::sys::bpffs::is_bpffs(dir) {
        bail!(
            "{}: not on a bpffs mount, so it holds no pins; nothing removed",
            dir.display()
        );
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    let is_link = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
    };
    paths.sort_by_key(|p| !is_link(p));
    for p in paths {
        if is_link(&p) {
            if let Err(e) = crate::sys::bpffs::detach_link(&p) {
                // The unpin still detaches it, a moment later.
                tracing::warn!("{e:#}");
            }
        }
        std::fs::remove_file(&p).with_context(|| format!("unpinning {}", p.display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

/// What the kernel says of the map pinned at `path`.
fn pinned_info(path: &Path) -> Result<aya::maps::MapInfo> {
    MapData::from_pin(path)
        .and_then(|m| m.info())
        .map_err(map_err)
}

/// Checks that every map pinned under the pin directory has the type, key
/// and value sizes this object defines, and the entries where the object
/// fixes them (all but the `sized` maps, which the loader sizes from the
/// configuration). A map pinned by a build with another layout would
/// otherwise be reused as it is (the kernel checks only that accesses stay
/// inside its sizes): the fast path would read its entries with the wrong
/// layout, or an index past a smaller table would fail the update that
/// keeps a cache honest.
fn check_pins(data: &[u8], object: &str, pins: &[(&str, PathBuf)], sized: &[&str]) -> Result<()> {
    if !pins.iter().any(|(_, p)| p.exists()) {
        return Ok(());
    }
    let obj =
        aya_obj::Object::parse(data).map_err(|e| anyhow!("parsing eBPF object {object}: {e}"))?;
    for (name, path) in pins {
        let Some(def) = obj.maps.get(*name) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        let info = pinned_info(path)?;
        let fixed = !sized.contains(name) && def.max_entries() != 0;
        let entries = |n: u32| {
            if fixed {
                format!(", {n} entries")
            } else {
                String::new()
            }
        };
        let pinned = (
            info.map_type().map_err(map_err)? as u32,
            info.key_size(),
            info.value_size(),
            entries(info.max_entries()),
        );
        let ours = (
            def.map_type(),
            def.key_size(),
            def.value_size(),
            entries(def.max_entries()),
        );
        if pinned != ours {
            let dir = path.parent().unwrap_or(path);
            bail!(
                "pinned map {} (type {}, key {} B, value {} B{}) is not this build's {name} (type {}, key {} B, value {} B{}): \
                 it was pinned by another version of pmipd; remove the pins with `pmipd unpin {}` (the fast path stops \
                 forwarding until pmipd attaches again)",
                path.display(), pinned.0, pinned.1, pinned.2, pinned.3, ours.0, ours.1, ours.2, ours.3, dir.display()
            );
        }
    }
    Ok(())
}

/// A pinned subscriber map keeps the entries it was created with (a pin is
/// reused as it is): one smaller than this configuration sizes it would
/// refuse the bindings, keys and static subscriber ids past its end while
/// the agent hands them out. Refused at start, naming the settings that
/// size it; a larger one serves as it is.
fn check_pinned_sizes(
    pins: &[(&str, PathBuf)],
    sizes: &[(&str, u32)],
    opts: &LoadOptions,
) -> Result<()> {
    for (name, want) in sizes {
        let Some((_, path)) = pins.iter().find(|(m, _)| m == name) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        let have = pinned_info(path)?.max_entries();
        if have < *want {
            let role = match opts.role {
                Some(GatewayRole::Access) => "the access role",
                Some(GatewayRole::Anchor) => "the anchor role",
                None => "both roles",
            };
            let dir = path.parent().unwrap_or(path);
            bail!(
                "pinned map {} has {have} entries, fewer than the {want} this configuration sizes it to \
                 (fastpath.max_subscribers = {}, {role}, {} home pools): pinned maps keep the size they were \
                 created with; set fastpath.max_subscribers, the role and the home pools back as they were, or \
                 resize with `pmipd unpin {}` (the fast path stops forwarding until pmipd attaches again)",
                path.display(),
                opts.max_subscribers,
                opts.home_pools.len(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Removes the pins of maps earlier builds had and this one has not
/// ([`maps::RETIRED`]).
fn remove_retired_pins(dir: &Path) -> Result<()> {
    for name in maps::RETIRED {
        let p = dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => tracing::info!(
                "removed the pin {}: an earlier build's map, unused by this one",
                p.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing the retired pin {}", p.display()))
            }
        }
    }
    Ok(())
}
