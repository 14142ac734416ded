//! Runtime anchor assignment (issue 17): which service address a new
//! subscriber registering at the cluster address is sent to — RFC 6463
//! (PMIPv6 runtime LMA assignment, the Redirect option) and RFC 4433
//! (PMIPv4 dynamic HA assignment). The least-loaded one, from the loads
//! the cluster publishes in etcd; between two publications the picks made
//! since count as load, so a burst of attaches spreads instead of all
//! going to whoever was least loaded a moment ago.
//!
//! The registrar at the cluster address asks [`Assigner::pick`] while it
//! decides (synchronously, sans-IO); the cluster refreshes the targets.
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    addr: IpAddr,
    /// Bindings it serves, as last published.
    load: u64,
    /// Picked since then.
    given: u64,
}

#[derive(Debug, Default)]
struct State {
    targets: Vec<Target>,
    picks: u64,
}

/// Where to send new subscribers; shared by the cluster (which updates it)
/// and the registrar at the cluster address (which picks).
#[derive(Clone, Debug, Default)]
pub struct Assigner(Arc<Mutex<State>>);

/// One assigner is equal only to itself.
impl PartialEq for Assigner {
    fn eq(&self, other: &Assigner) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Assigner {}

impl Assigner {
    pub fn new() -> Assigner {
        Assigner::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The service addresses served now and their published loads. A
    /// target whose published load is what it was keeps the picks made
    /// since (they are not in that figure yet): the targets are set again
    /// whenever ownership changes too, not only when loads are published.
    pub fn set_targets(&self, targets: &[(IpAddr, u64)]) {
        let mut g = self.lock();
        let given = |g: &State, addr: IpAddr, load: u64| {
            g.targets
                .iter()
                .find(|t| t.addr == addr && t.load == load)
                .map_or(0, |t| t.given)
        };
        g.targets = targets
            .iter()
            .map(|&(addr, load)| Target {
                addr,
                load,
                given: given(&g, addr, load),
            })
            .collect();
    }

    /// The least-loaded target of `family` (by the family of `like`), counting it as
    /// one more; None without one (the registrar then serves the subscriber itself).
    pub fn pick(&self, like: IpAddr) -> Option<IpAddr> {
        let mut g = self.lock();
        let t = g
            .targets
            .iter_mut()
            .filter(|t| t.addr.is_ipv4() == like.is_ipv4())
            .min_by_key(|t| (t.load + t.given, t.addr))?;
        t.given += 1;
        let a = t.addr;
        g.picks += 1;
        Some(a)
    }

    /// Subscribers assigned so far.
    pub fn picks(&self) -> u64 {
        self.lock().picks
    }

    /// The targets and their loads (for `show cluster`).
    pub fn targets(&self) -> Vec<(IpAddr, u64)> {
        self.lock()
            .targets
            .iter()
            .map(|t| (t.addr, t.load + t.given))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_to_pick_without_targets() {
        assert_eq!(Assigner::new().pick(ip("10.0.0.1")), None);
    }

    #[test]
    fn a_burst_spreads_by_load() {
        let a = Assigner::new();
        a.set_targets(&[
            (ip("10.0.0.1"), 10),
            (ip("10.0.0.2"), 0),
            (ip("10.0.0.3"), 4),
        ]);
        let mut n = std::collections::BTreeMap::new();
        for _ in 0..30 {
            *n.entry(a.pick(ip("10.9.9.9")).unwrap()).or_insert(0) += 1;
        }
        // 44 in all, about 15 each: the least loaded got the most.
        assert_eq!(n[&ip("10.0.0.2")], 15);
        assert_eq!(n[&ip("10.0.0.3")], 10);
        assert_eq!(n[&ip("10.0.0.1")], 5);
        assert_eq!(a.picks(), 30);
    }

    #[test]
    fn only_targets_of_the_requests_family() {
        let a = Assigner::new();
        a.set_targets(&[(ip("fd00::1"), 0), (ip("10.0.0.1"), 100)]);
        assert_eq!(a.pick(ip("10.9.9.9")), Some(ip("10.0.0.1")));
        assert_eq!(a.pick(ip("fd00::9")), Some(ip("fd00::1")));
    }

    #[test]
    fn new_loads_reset_the_picks() {
        let a = Assigner::new();
        a.set_targets(&[(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 1)]);
        assert_eq!(a.pick(ip("10.9.9.9")), Some(ip("10.0.0.1")));
        assert_eq!(
            a.pick(ip("10.9.9.9")),
            Some(ip("10.0.0.1")),
            "tie: lower address"
        );
        a.set_targets(&[(ip("10.0.0.1"), 5), (ip("10.0.0.2"), 1)]);
        assert_eq!(a.pick(ip("10.9.9.9")), Some(ip("10.0.0.2")));
    }

    /// Targets set again with the loads unchanged (an ownership change
    /// between two publications) keep the picks made since; a target gone
    /// is gone.
    #[test]
    fn unchanged_loads_keep_the_picks() {
        let a = Assigner::new();
        let (x, y, z) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        a.set_targets(&[(x, 0), (y, 0)]);
        assert_eq!(a.pick(ip("10.9.9.9")), Some(x));
        assert_eq!(a.pick(ip("10.9.9.9")), Some(y));
        assert_eq!(a.pick(ip("10.9.9.9")), Some(x));
        a.set_targets(&[(x, 0), (y, 0), (z, 0)]);
        assert_eq!(a.targets(), vec![(x, 2), (y, 1), (z, 0)]);
        assert_eq!(a.pick(ip("10.9.9.9")), Some(z));
        assert_eq!(a.pick(ip("10.9.9.9")), Some(y));
        a.set_targets(&[(y, 0), (z, 0)]);
        assert_eq!(a.targets(), vec![(y, 2), (z, 1)]);
    }
}
