//! A session's traffic for accounting, from the fast path's per-subscriber counters.
//!
//! `FastPath::install_access` zeroes the subscriber's SUB_STATS row on every install (so
//! `show stats` shows a binding's own traffic and a recycled id starts from zero). A refresh
//! or a move that installs the same subscriber again would take the session's counters back
//! to zero, and an Interim-Update or Stop would under-report (RFC 2866 §5.3: the counts are
//! for the whole session). So the data-plane commands pass through [`MeteredDp`], which
//! keeps per subscriber id what the resets took away ("carry"): carry + SUB_STATS never goes
//! backwards while pmipd runs. A session takes that cumulative value at its first install as
//! its base; its traffic is the growth since. Removals snapshot the value, so the Stop does
//! not count a packet of whoever gets the id next.
//!
//! The fast path keeps its reset (a choice: `show stats` is unchanged and nothing in the
//! kernel's hot path moves); only accounting pays a counter read around each install.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::aaa::Traffic;
use crate::dataplane::{AccessPoint, DataPlane, DpCommand, TrafficCounters};

/// From the fast path's view (up = from the subscriber) to RFC 2866's (input = from the
/// subscriber, §5.3/5.4).
pub(crate) fn traffic_of(c: TrafficCounters) -> Traffic {
    Traffic {
        input_octets: c.up_bytes,
        output_octets: c.down_bytes,
        input_packets: c.up_packets,
        output_packets: c.down_packets,
    }
}

fn add(a: Traffic, b: Traffic) -> Traffic {
    Traffic {
        input_octets: a.input_octets.wrapping_add(b.input_octets),
        output_octets: a.output_octets.wrapping_add(b.output_octets),
        input_packets: a.input_packets.wrapping_add(b.input_packets),
        output_packets: a.output_packets.wrapping_add(b.output_packets),
    }
}

/// `a - b`, field by field, never below zero.
pub(crate) fn since(a: Traffic, b: Traffic) -> Traffic {
    Traffic {
        input_octets: a.input_octets.saturating_sub(b.input_octets),
        output_octets: a.output_octets.saturating_sub(b.output_octets),
        input_packets: a.input_packets.saturating_sub(b.input_packets),
        output_packets: a.output_packets.saturating_sub(b.output_packets),
    }
}

/// The bookkeeping, apart from any data plane (unit-tested on its own).
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// What installs took away from each id's counters.
    carry: HashMap<u32, Traffic>,
    /// Cumulative value right after the id's latest install: a new session's base.
    mark: HashMap<u32, Traffic>,
    /// Cumulative value right after the id's latest removal (cleared by an install).
    removed: HashMap<u32, Traffic>,
    /// Access side: the id installed at each access point.
    by_at: HashMap<AccessPoint, u32>,
}

impl Carry {
    fn cumulative(&self, sub_id: u32, now: Traffic) -> Traffic {
        add(self.carry.get(&sub_id).copied().unwrap_or_default(), now)
    }

    /// An install of `sub_id`, with its counters read just `before` and `after` it. A
    /// counter that went down was reset: what it held joins the carry. (Packets counted
    /// between the reset and the second read stay in `after`.)
    pub(crate) fn installed(
        &mut self,
        sub_id: u32,
        at: Option<AccessPoint>,
        before: Traffic,
        after: Traffic,
    ) {
        if after.below(before) {
            let c = self.carry.entry(sub_id).or_default();
            *c = add(*c, before);
        }
        let cum = self.cumulative(sub_id, after);
        self.mark.insert(sub_id, cum);
        self.removed.remove(&sub_id);
        if let Some(at) = at {
            self.by_at.insert(at, sub_id);
        }
    }

    pub(crate) fn removed(&mut self, sub_id: u32, at: Option<AccessPoint>, now: Traffic) {
        let cum = self.cumulative(sub_id, now);
        self.removed.insert(sub_id, cum);
        if let Some(at) = at {
            if self.by_at.get(&at) == Some(&sub_id) {
                self.by_at.remove(&at);
            }
        }
    }

    /// The id at `at` and its value at the latest install (a new session's base).
    pub(crate) fn access_start(&self, at: &AccessPoint) -> Option<(u32, Traffic)> {
        let id = *self.by_at.get(at)?;
        Some((id, self.mark.get(&id).copied().unwrap_or_default()))
    }

    pub(crate) fn base(&self, sub_id: u32) -> Traffic {
        self.mark.get(&sub_id).copied().unwrap_or_default()
    }

    /// A session's traffic: live, or as it stood when its binding was removed.
    pub(crate) fn session(&self, sub_id: u32, base: Traffic, now: Traffic, ended: bool) -> Traffic {
        let cum = match self.removed.get(&sub_id) {
            Some(r) if ended => *r,
            _ => self.cumulative(sub_id, now),
        };
        since(cum, base)
    }
}

/// Reads a session's traffic (cloned into the accounting code).
pub(crate) struct Meter<D> {
    counters: D,
    state: Arc<Mutex<Carry>>,
}

impl<D: Clone> Clone for Meter<D> {
    fn clone(&self) -> Self {
        Meter {
            counters: self.counters.clone(),
            state: self.state.clone(),
        }
    }
}

fn lock(m: &Mutex<Carry>) -> MutexGuard<'_, Carry> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<D: DataPlane> Meter<D> {
    pub(crate) fn access_start(&self, at: &AccessPoint) -> Option<(u32, Traffic)> {
        lock(&self.state).access_start(at)
    }

    pub(crate) fn base(&self, sub_id: u32) -> Traffic {
        lock(&self.state).base(sub_id)
    }

    /// The session's traffic since `base`; `ended`: as its binding's removal left it.
    pub(crate) fn traffic(&self, sub_id: u32, base: Traffic, ended: bool) -> Traffic {
        // The carry's lock around the read, as around an install: a reader never sees a
        // reset without its carry.
        let st = lock(&self.state);
        let now = traffic_of(self.counters.subscriber_counters(sub_id));
        st.session(sub_id, base, now, ended)
    }
}

/// The data plane the registrar's shell drives, with the meter's bookkeeping around the
/// installs and removals (a plain pass-through when nothing accounts).
pub(crate) struct MeteredDp<D> {
    inner: D,
    state: Option<Arc<Mutex<Carry>>>,
}

impl<D: DataPlane + Clone> MeteredDp<D> {
    /// Pass-through.
    pub(crate) fn plain(inner: D) -> Self {
        MeteredDp { inner, state: None }
    }

    /// Metered, and the meter that reads it.
    pub(crate) fn metered(inner: D) -> (Self, Meter<D>) {
        let state = Arc::new(Mutex::new(Carry::default()));
        let meter = Meter {
            counters: inner.clone(),
            state: state.clone(),
        };
        (
            MeteredDp {
                inner,
                state: Some(state),
            },
            meter,
        )
    }
}

impl<D: DataPlane> DataPlane for MeteredDp<D> {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
        let Some(state) = &self.state else {
            return self.inner.apply(cmd);
        };
        let (sub_id, at, install) = match cmd {
            DpCommand::InstallAccess(b) => (b.sub_id, Some(b.at), true),
            DpCommand::RemoveAccess(b) => (b.sub_id, Some(b.at), false),
            DpCommand::InstallAnchor(b) => (b.sub_id, None, true),
            DpCommand::RemoveAnchor(b) => (b.sub_id, None, false),
        };
        let mut st = lock(state);
        let before = traffic_of(self.inner.subscriber_counters(sub_id));
        self.inner.apply(cmd)?;
        let after = traffic_of(self.inner.subscriber_counters(sub_id));
        if install {
            st.installed(sub_id, at, before, after);
        } else {
            st.removed(sub_id, at, after);
        }
        Ok(())
    }

    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.inner.subscriber_counters(sub_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{AccessBinding, TunnelEnds};

    /// A data plane whose counters the test moves, resetting on install as the fast path does.
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<HashMap<u32, TrafficCounters>>>);
    impl Fake {
        fn count(&self, sub_id: u32, up: u64, down: u64) {
            let mut m = self.0.lock().unwrap();
            let c = m.entry(sub_id).or_default();
            c.up_packets += up;
            c.up_bytes += up * 100;
            c.down_packets += down;
            c.down_bytes += down * 1000;
        }
    }
    impl DataPlane for Fake {
        fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
            if let DpCommand::InstallAccess(b) = cmd {
                self.0.lock().unwrap().insert(b.sub_id, Default::default());
            }
            Ok(())
        }
        fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
            self.0
                .lock()
                .unwrap()
                .get(&sub_id)
                .copied()
                .unwrap_or_default()
        }
    }

    fn binding(mac: u8, sub_id: u32) -> AccessBinding {
        AccessBinding {
            at: AccessPoint {
                ifindex: 2,
                vlan: 0,
                mac: [2, 0, 0, 0, 0, mac],
            },
            sub_id,
            tunnel: TunnelEnds {
                local: "10.0.0.1".parse().unwrap(),
                remote: "10.0.0.2".parse().unwrap(),
            },
            uplink_key: 7,
            downlink_key: sub_id,
            home_v4: None,
            gateway_v4: None,
            hnp: None,
        }
    }

    fn packets(t: Traffic) -> (u64, u64) {
        (t.input_packets, t.output_packets)
    }

    #[test]
    fn reinstall_of_a_session_keeps_its_counts() {
        let fake = Fake::default();
        let (mut dp, meter) = MeteredDp::metered(fake.clone());
        let b = binding(1, 5);
        dp.apply(&DpCommand::InstallAccess(b.clone())).unwrap();
        let (id, base) = meter.access_start(&b.at).unwrap();
        assert_eq!(id, 5);
        fake.count(5, 10, 20);
        assert_eq!(packets(meter.traffic(5, base, false)), (10, 20));
        // A refresh that changed the binding installs it again: the fast path zeroes its
        // row; the session's counts go on from 10/20.
        dp.apply(&DpCommand::InstallAccess(b.clone())).unwrap();
        assert_eq!(fake.subscriber_counters(5).up_packets, 0);
        fake.count(5, 1, 2);
        let t = meter.traffic(5, base, false);
        assert_eq!(packets(t), (11, 22));
        assert_eq!((t.input_octets, t.output_octets), (1100, 22_000));
        // Removed, then the id goes to another subscriber: the Stop is what the binding
        // carried, and the newcomer starts from zero.
        dp.apply(&DpCommand::RemoveAccess(b.clone())).unwrap();
        fake.count(5, 3, 3); // in flight past the removal: not ours
        let b2 = binding(2, 5);
        dp.apply(&DpCommand::InstallAccess(b2.clone())).unwrap();
        assert!(meter.access_start(&b.at).is_none());
        let (_, base2) = meter.access_start(&b2.at).unwrap();
        fake.count(5, 4, 0);
        assert_eq!(packets(meter.traffic(5, base2, false)), (4, 0));
    }

    #[test]
    fn stop_uses_the_value_at_removal() {
        let fake = Fake::default();
        let (mut dp, meter) = MeteredDp::metered(fake.clone());
        let b = binding(1, 9);
        dp.apply(&DpCommand::InstallAccess(b.clone())).unwrap();
        let (_, base) = meter.access_start(&b.at).unwrap();
        fake.count(9, 6, 6);
        dp.apply(&DpCommand::RemoveAccess(b)).unwrap();
        fake.count(9, 1, 1);
        assert_eq!(packets(meter.traffic(9, base, true)), (6, 6));
        assert_eq!(packets(meter.traffic(9, base, false)), (7, 7));
    }

    #[test]
    fn anchor_installs_do_not_reset_and_stale_counts_are_not_billed() {
        use crate::dataplane::AnchorBinding;
        let fake = Fake::default();
        fake.count(3, 50, 50); // an earlier subscriber's leftovers on id 3
        let (mut dp, meter) = MeteredDp::metered(fake.clone());
        let a = AnchorBinding {
            sub_id: 3,
            tunnel: binding(1, 3).tunnel,
            uplink_key: 1,
            downlink_key: 2,
            home_v4: None,
            hnp: None,
        };
        dp.apply(&DpCommand::InstallAnchor(a.clone())).unwrap();
        let base = meter.base(3);
        fake.count(3, 2, 1);
        // A handover re-installs it (no reset): counts continue.
        dp.apply(&DpCommand::InstallAnchor(a)).unwrap();
        fake.count(3, 1, 1);
        assert_eq!(packets(meter.traffic(3, base, false)), (3, 2));
    }

    #[test]
    fn plain_is_a_pass_through() {
        let fake = Fake::default();
        let mut dp = MeteredDp::plain(fake.clone());
        dp.apply(&DpCommand::InstallAccess(binding(1, 1))).unwrap();
        fake.count(1, 1, 1);
        assert_eq!(dp.subscriber_counters(1).up_packets, 1);
    }
}
