//! The data plane of one service address: the daemon's fast path, plus a
//! list of the anchor bindings installed through it. A service that steps
//! down (lease ending, address taken over) removes exactly those from the
//! maps itself, at once, without asking its registrar — which may be stuck
//! waiting for etcd — and from then on installs nothing more (fenced).
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Result};

use crate::daemon::SharedDp;
use crate::dataplane::{AnchorBinding, DataPlane, DpCommand, TrafficCounters};

#[derive(Debug, Default)]
struct State {
    /// Uplink key → the binding as installed.
    installed: HashMap<u32, AnchorBinding>,
    fenced: bool,
}

#[derive(Clone)]
pub(crate) struct Tracked {
    dp: SharedDp,
    state: Arc<Mutex<State>>,
}

impl Tracked {
    pub(crate) fn new(dp: SharedDp) -> Tracked {
        Tracked {
            dp,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bindings in the maps through this service.
    pub(crate) fn count(&self) -> usize {
        self.lock().installed.len()
    }

    /// Their IPv4 home addresses (announced after a takeover).
    pub(crate) fn homes(&self) -> Vec<Ipv4Addr> {
        self.lock()
            .installed
            .values()
            .filter_map(|b| b.home_v4)
            .collect()
    }

    /// Their uplink keys (what `show cluster` lists from the maps).
    pub(crate) fn keys(&self) -> Vec<u32> {
        let mut k: Vec<u32> = self.lock().installed.keys().copied().collect();
        k.sort_unstable();
        k
    }

    /// Stops installing and removes everything installed; returns how many.
    pub(crate) fn fence_and_remove(&self) -> usize {
        let mut g = self.lock();
        g.fenced = true;
        let all: Vec<AnchorBinding> = g.installed.drain().map(|(_, b)| b).collect();
        let n = all.len();
        let _ = self.dp.with(|f| {
            for b in &all {
                if let Err(e) = f.remove_anchor(b) {
                    tracing::warn!(key = b.uplink_key, "removing a binding on step-down: {e:#}");
                }
            }
        });
        n
    }
}

impl DataPlane for Tracked {
    fn apply(&mut self, cmd: &DpCommand) -> Result<()> {
        // Held across the map write: a step-down waits for it, then removes it.
        let mut g = self.lock();
        if g.fenced {
            bail!("this service address was given up: nothing is installed any more");
        }
        self.dp.clone().apply(cmd)?;
        match cmd {
            DpCommand::InstallAnchor(b) => {
                g.installed.insert(b.uplink_key, b.clone());
            }
            DpCommand::RemoveAnchor(b) => {
                if g.installed.get(&b.uplink_key) == Some(b) {
                    g.installed.remove(&b.uplink_key);
                }
            }
            DpCommand::InstallAccess(_) | DpCommand::RemoveAccess(_) => {}
        }
        Ok(())
    }

    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.dp.subscriber_counters(sub_id)
    }
}
