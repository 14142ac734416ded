//! How pmipd stops. SIGTERM/SIGINT (and `pmipctl shutdown`) is a restart
//! in waiting: subscribers stay registered, their records stay in the
//! store, and the pinned fast path keeps forwarding until the next run
//! takes them up. `pmipctl shutdown --deregister` is the end of service:
//! every subscriber is released (deregistered by the access gateway,
//! revoked by the anchor), then the programs and pins are removed.
use std::time::{Duration, Instant};

use crate::agent::shell::Handle;
use crate::config::Config;

/// What the daemon does on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopMode {
    /// Leave everything as it is for the next run.
    Keep,
    /// Release every subscriber, then remove the fast path and its pins.
    Release,
}

/// How long releasing may take: the whole retransmission schedule of a
/// deregistration (or revocation), plus a second.
pub(super) fn release_grace(cfg: &Config) -> Duration {
    let t = &cfg.timers;
    let mut total = Duration::from_secs(1);
    let mut rto = t.retx_initial;
    for _ in 0..=t.max_retransmissions {
        total += rto;
        rto = (rto * 2).min(t.retx_max);
    }
    let bri = t.bri_delay_max * (u32::from(t.bri_max_retransmissions) + 1);
    total
        .max(bri + Duration::from_secs(1))
        .min(Duration::from_secs(120))
}

/// Revocations the anchor sent and has not heard back about yet.
fn revocations_pending(c: &crate::agent::registrar::Counters) -> u64 {
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    (g("bri_sent") + g("revocations_sent"))
        .saturating_sub(g("bra_rx") + g("bri_gave_up"))
        .saturating_sub(g("revocation_acks") + g("revocation_timeouts"))
}

/// Waits (at most `within`) until the registrar holds no binding and has
/// no revocation outstanding; returns the bindings left.
pub(super) async fn drain<C, E>(h: &Handle<C, E>, within: Duration) -> usize {
    let end = Instant::now() + within;
    loop {
        let Some(r) = h.report().await else {
            return 0;
        };
        let left = r.bindings.len();
        if (left == 0 && revocations_pending(&r.counters) == 0) || Instant::now() >= end {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes the pins (links first: the programs detach when pmipd exits).
pub(super) fn remove_pins(cfg: &Config) {
    if let Some(dir) = &cfg.fastpath.pin_dir {
        match crate::fastpath::unpin_all(dir) {
            Ok(()) => tracing::info!(pin_dir = %dir.display(), "pins removed"),
            Err(e) => tracing::warn!(pin_dir = %dir.display(), "removing the pins: {e:#}"),
        }
    }
}
