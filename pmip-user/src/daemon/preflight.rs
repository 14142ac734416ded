//! What start would refuse that the configuration check alone cannot see,
//! checked without root: whether the kernel can give the fast path's maps
//! the memory `fastpath.max_subscribers` asks for. BPF maps are charged to
//! the loader's memory cgroup, so the limit is the smaller of the host's
//! available memory and what the cgroup has left.
use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::fastpath::footprint;

const MIB: u64 = 1 << 20;

/// The memory the kernel could still give us, and where that figure comes from.
fn available() -> Option<(u64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        let l = meminfo.lines().find(|l| l.starts_with(key))?;
        l.split_whitespace().nth(1)?.parse().ok()
    };
    let host = kib("MemAvailable:").map(|k| k * 1024);
    let cg = cgroup_left();
    match (host, cg) {
        (Some(h), Some(c)) if c < h => Some((c, "what the memory cgroup has left")),
        (Some(h), _) => Some((h, "MemAvailable")),
        (None, Some(c)) => Some((c, "what the memory cgroup has left")),
        (None, None) => None,
    }
}

/// cgroup v2: `memory.max` minus `memory.current` of our cgroup, if limited.
fn cgroup_left() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max = std::fs::read_to_string(dir.join("memory.max")).ok()?;
    let max: u64 = max.trim().parse().ok()?; // "max": no limit
    let cur: u64 = std::fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(cur))
}

/// Checks that the fast path's maps fit; returns a note for `--check`, or
/// the error naming `fastpath.max_subscribers`.
pub fn preflight(cfg: &Config) -> Result<String, ConfigError> {
    let opts = super::fastpath::sized(cfg);
    let cpus = crate::sys::nr_cpus().unwrap_or(1);
    let need = footprint(&opts, cpus);
    let n = cfg.fastpath.max_subscribers;
    match available() {
        Some((have, what)) if need > have => Err(ConfigError {
            path: "fastpath.max_subscribers".into(),
            problem: format!(
                "{n} subscribers need about {} MiB of kernel memory for the fast path's maps \
                 ({cpus} CPUs), more than the {} MiB the kernel can give ({what})",
                need.div_ceil(MIB),
                have / MIB
            ),
        }),
        Some((have, what)) => Ok(format!(
            "fast path maps for {n} subscribers: about {} MiB of the {} MiB available ({what})",
            need.div_ceil(MIB),
            have / MIB
        )),
        None => Ok(format!(
            "fast path maps for {n} subscribers: about {} MiB; the memory available could \
             not be read (/proc/meminfo, cgroup), so only loading will tell",
            need.div_ceil(MIB)
        )),
    }
}
