//! One takeover, measured: kill -9 the anchor that owns a busy service
//! address under a paced stream (up from a subscriber to the correspondent,
//! a slower one down), wait until another anchor owns the address, and
//! count what the subscriber lost. Used by the cluster benchmark
//! (tests/tests/cluster_bench.rs) and `cargo xtask lab --cluster`.
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::stream::Stream;
use super::{ClusterLab, CN};
use crate::lab::interruptible_sleep;

/// What one takeover cost.
#[derive(Clone, Debug)]
pub struct Takeover {
    pub addr: String,
    /// Anchor indices (0-based): the one killed, the one that took over.
    pub from: usize,
    pub to: usize,
    /// From the kill until `show cluster` names the new owner.
    pub owner_seen: Duration,
    /// From the kill to the first uplink packet through the new owner, the
    /// longest uplink silence around it, packets lost and sent.
    pub first_up: Duration,
    pub gap_up: Duration,
    pub lost_up: u64,
    pub sent_up: u64,
    /// The same for the downlink stream.
    pub first_down: Duration,
    pub lost_down: u64,
    pub sent_down: u64,
}

impl Takeover {
    pub fn line(&self) -> String {
        format!(
            "{} a{} → a{}: first uplink packet {} ms after the kill (silent {} ms), {} of {} lost up; first downlink {} ms, {} of {} lost down; owner seen after {} ms",
            self.addr,
            self.from + 1,
            self.to + 1,
            self.first_up.as_millis(),
            self.gap_up.as_millis(),
            self.lost_up,
            self.sent_up,
            self.first_down.as_millis(),
            self.lost_down,
            self.sent_down,
            self.owner_seen.as_millis()
        )
    }
}

/// Kills the owner of `addr` while subscriber `sub` (home address `home`)
/// sends `pps` packets a second up and `pps / 10` down; returns once the new
/// owner has carried traffic for `settle`.
pub fn kill_owner(
    lab: &mut ClusterLab,
    (sub, home): (usize, Ipv4Addr),
    addr: &str,
    pps: u32,
    settle: Duration,
) -> Result<Takeover> {
    let from = lab.owner_of(addr)?;
    let up = Stream::start(&lab.subs[sub], &lab.cn, SocketAddrV4::new(CN, 9000), pps)?;
    let down = Stream::start(
        &lab.cn,
        &lab.subs[sub],
        SocketAddrV4::new(home, 9001),
        (pps / 10).max(1),
    )?;
    // Steady traffic first: the loss counted is the takeover's.
    interruptible_sleep(Duration::from_secs(1))?;
    let t_kill = Instant::now();
    lab.kill_anchor(from);
    let dead = format!("a{}", from + 1);
    let v = lab.wait_view(Duration::from_secs(15), "the address taken over", |v| {
        v.addresses
            .iter()
            .any(|a| a.addr.to_string() == addr && a.owner.as_deref().is_some_and(|o| o != dead))
    })?;
    let owner_seen = t_kill.elapsed();
    let to = v
        .addresses
        .iter()
        .find(|a| a.addr.to_string() == addr)
        .and_then(|a| a.owner.as_deref())
        .and_then(|o| o.strip_prefix('a'))
        .and_then(|n| n.parse::<usize>().ok())
        .context("new owner")?
        - 1;
    interruptible_sleep(settle)?;
    let (up, down) = (up.finish()?, down.finish()?);
    let (gap_up, first_up) = up
        .gap_after(t_kill)
        .context("no uplink packet after the kill")?;
    let (_, first_down) = down
        .gap_after(t_kill)
        .context("no downlink packet after the kill")?;
    Ok(Takeover {
        addr: addr.to_string(),
        from,
        to,
        owner_seen,
        first_up,
        gap_up,
        lost_up: up.lost,
        sent_up: up.sent,
        first_down,
        lost_down: down.lost,
        sent_down: down.sent,
    })
}

/// The median of `xs` (the lower middle for an even count).
pub fn median<T: Copy + Ord>(xs: &[T]) -> Option<T> {
    let mut v = xs.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// The lab up with every address owned, however the addresses spread: on a
/// loaded machine a member whose first heartbeats came late can be declared
/// dead at start and join again with nothing ([`ClusterLab::up`] wants
/// every member serving; a takeover needs only an owner and a survivor).
pub fn up_owned(opts: super::ClusterOpts) -> Result<ClusterLab> {
    let mut lab = ClusterLab::topology(opts)?;
    lab.start_anchors()?;
    lab.wait_view(Duration::from_secs(30), "every address owned", |v| {
        v.addresses.iter().all(|a| a.owner.is_some())
    })?;
    lab.start_mags()?;
    Ok(lab)
}
