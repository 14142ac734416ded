//! Issue 11 through pmipd, both protocols: the access gateway's `show
//! bindings` lifetime left starts again at each refresh (renewal), and a
//! subscriber that releases its lease and attaches again right away gets
//! the same address (the anchor holds a released address for the
//! subscriber that had it, `agent/affinity.rs`), and is not refused.
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::lab::{self, Dhcpc, Lab, Proto};
use crate::recovery;

/// The anchor's counter of accepted refreshes (LMA) or renewals (HA).
fn refreshes(l: &Lab, proto: Proto) -> u64 {
    let (g, n) = match proto {
        Proto::Pmipv6 => ("lma", "refreshes"),
        Proto::Pmipv4 => ("ha", "renewals"),
    };
    l.lma()
        .stats()
        .ok()
        .and_then(|s| s.groups.get(g)?.get(n).copied())
        .unwrap_or(0)
}

/// What the run showed.
#[derive(Clone, Debug, Default)]
pub struct AffinityFigures {
    /// The access gateway's lifetime left right after each of two refreshes.
    pub left_after_refresh_s: Vec<u32>,
    pub lifetime_s: u32,
    pub address: String,
    pub address_again: String,
}

pub fn lifetime_and_address_affinity(proto: Proto) -> Result<AffinityFigures> {
    let mut l = Lab::up(recovery::opts(proto, "af"))?;
    let lease = l.attach(false)?;
    let (m0, _) = l.wait_registered(0)?;
    let mut f = AffinityFigures {
        lifetime_s: m0.lifetime_s,
        address: lease.ip.clone(),
        ..Default::default()
    };
    // Two refreshes: right after each, the access side shows (nearly) a
    // whole lifetime left again.
    for _ in 0..2 {
        let n = refreshes(&l, proto);
        let t = Instant::now();
        while refreshes(&l, proto) == n {
            ensure!(t.elapsed() < Duration::from_secs(15), "no refresh");
            lab::interruptible_sleep(Duration::from_millis(20))?;
        }
        let b = l.mag(0).bindings()?;
        ensure!(b.len() == 1, "{b:?}");
        f.left_after_refresh_s.push(b[0].lifetime_left_s);
        ensure!(
            b[0].lifetime_left_s + 1 >= b[0].lifetime_s,
            "lifetime left not reset by the refresh: {f:?}"
        );
    }
    // Release, then attach again at once.
    l.client().release()?;
    l.mag(0)
        .wait_bindings(Duration::from_secs(10), "no binding", |b| b.is_empty())?;
    if let Some(mut c) = l.client.take() {
        c.kill9();
    }
    let c = Dhcpc::start(&l.sub, &l.opts.sub_if(), &l.dir.0, false)?;
    l.client = Some(c);
    let again = l.client().wait_event("bound", 1, Duration::from_secs(25))?;
    f.address_again = again.ip.clone();
    ensure!(again.ip == lease.ip, "renumbered after a release: {f:?}");
    Ok(f)
}
