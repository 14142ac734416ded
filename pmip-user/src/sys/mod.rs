//! OS plumbing below the protocols and the fast path: interfaces, sockets,
//! sysctls, bpffs, CPUs. Nothing here knows PMIP; it wraps system calls,
//! rtnetlink (links, addresses, routes, neighbours, per-interface IPv4
//! settings) and the global sysctls under /proc/sys, which have no netlink
//! form.
use anyhow::{anyhow, Context, Result};

pub mod bpffs;
pub mod iface;
pub mod memory;
pub mod mmsg;
pub mod netlink;
pub mod socket;
pub mod xsk;

pub use iface::{iface_mac, ifindex, interface_info, vlan_id};
pub use memory::release_free_memory;

/// Sleeps until `deadline` (a sans-IO machine's `poll_timeout`); without
/// one, forever — the arm of a `select!` that never fires.
pub async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes `value` to the sysctl `key` (dotted, as `sysctl -w` takes it).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value}"))
}

/// Possible CPUs (the fast path's per-CPU rows and maps are sized for them).
pub fn nr_cpus() -> Result<u32> {
    let n = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("reading the possible CPUs: {e}"))?;
    Ok(n as u32)
}
