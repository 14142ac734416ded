//! `[timers]`, `[detach]`, `[dhcp]`: numbers with their unit in the key
//! name become `Duration`s.
use std::time::Duration;

use super::Errors;
use crate::config::file::{self, File};
use crate::config::{Detach, Dhcp, HaFailover, Protocol, Timers};

fn secs(s: u32) -> Duration {
    Duration::from_secs(s.into())
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

pub(super) fn timers(f: &File, v: &mut Errors) -> Timers {
    let t = &f.timers;
    let max_life = match f.protocol {
        // RFC 6275 §6.1.7: 16-bit lifetime in units of 4 s.
        Protocol::Pmipv6 => 65535 * 4,
        // RFC 3344 §3.3: 16-bit seconds, 0xffff = infinity.
        Protocol::Pmipv4 => 65534,
    };
    if t.lifetime_s == 0 || t.lifetime_s > max_life {
        v.err("timers.lifetime_s", format!("must be 1 to {max_life}"));
    }
    if f.protocol == Protocol::Pmipv6 && (t.refresh_s == 0 || t.refresh_s >= t.lifetime_s) {
        v.err(
            "timers.refresh_s",
            format!(
                "must be between 1 and lifetime_s ({}) exclusive",
                t.lifetime_s
            ),
        );
    }
    if !(1..=99).contains(&t.renew_percent) {
        v.err("timers.renew_percent", "must be 1 to 99");
    }
    retransmission(t, v);
    // RFC 5944 §3.6.3: "The minimum time between Registration Requests
    // MUST NOT be less than 1 second" — the PMA sends them for the MN.
    if f.protocol == Protocol::Pmipv4
        && f.role == crate::config::Role::Access
        && (100..1000).contains(&t.retx_initial_ms)
    {
        v.err(
            "timers.retx_initial_ms",
            "must be >= 1000 for a PMIPv4 access gateway (RFC 5944 §3.6.3: Registration \
             Requests no less than 1 second apart)",
        );
    }
    Timers {
        lifetime: secs(t.lifetime_s),
        refresh: secs(t.refresh_s),
        renew_percent: t.renew_percent,
        retx_initial: millis(t.retx_initial_ms),
        retx_max: millis(t.retx_max_ms),
        max_retransmissions: t.max_retransmissions,
        timestamp_window: millis(t.timestamp_window_ms),
        timestamp_based: t.timestamp_based_approach,
        heartbeat_interval: (t.heartbeat_interval_s > 0).then(|| secs(t.heartbeat_interval_s)),
        heartbeat_misses: t.heartbeat_misses,
        bri_delay_min: millis(t.bri_delay_min_ms),
        bri_delay_max: millis(t.bri_delay_max_ms),
        bri_max_retransmissions: t.bri_max_retransmissions,
        new_bce_delay: millis(t.new_bce_delay_ms),
        reregistration_window: secs(t.reregistration_window_s),
        lma_refusal_hold: secs(t.lma_refusal_hold_s),
        ha_failover: ha_failover(&t.ha_failover, v),
    }
}

/// Retransmission, replay window, heartbeat and BRI timers.
fn retransmission(t: &file::Timers, v: &mut Errors) {
    if t.retx_initial_ms < 100 {
        v.err("timers.retx_initial_ms", "must be >= 100");
    }
    if t.retx_max_ms < t.retx_initial_ms {
        v.err(
            "timers.retx_max_ms",
            format!("must be >= retx_initial_ms ({})", t.retx_initial_ms),
        );
    }
    if t.max_retransmissions > 20 {
        v.err("timers.max_retransmissions", "must be 0 to 20");
    }
    if t.timestamp_window_ms == 0 {
        v.err("timers.timestamp_window_ms", "must be > 0");
    }
    if t.heartbeat_interval_s > 0 && t.heartbeat_misses == 0 {
        v.err(
            "timers.heartbeat_misses",
            "must be >= 1 when heartbeat_interval_s is set",
        );
    }
    if t.bri_delay_min_ms == 0 {
        v.err("timers.bri_delay_min_ms", "must be > 0");
    }
    if t.bri_delay_max_ms < t.bri_delay_min_ms {
        v.err(
            "timers.bri_delay_max_ms",
            format!("must be >= bri_delay_min_ms ({})", t.bri_delay_min_ms),
        );
    }
    // A MAG retransmits a PBU for seconds, not minutes: a longer wait
    // would outlast it.
    if t.new_bce_delay_ms > 60_000 {
        v.err("timers.new_bce_delay_ms", "must be 0 to 60000");
    }
}

fn ha_failover(f: &file::HaFailover, v: &mut Errors) -> HaFailover {
    if f.enabled {
        if f.max_attempts == 0 {
            v.err("timers.ha_failover.max_attempts", "must be >= 1");
        }
        if f.attempts_before_switching == 0 || f.attempts_before_switching > f.max_attempts {
            v.err(
                "timers.ha_failover.attempts_before_switching",
                format!("must be 1 to max_attempts ({})", f.max_attempts),
            );
        }
        if f.timeout_s == 0 {
            v.err("timers.ha_failover.timeout_s", "must be > 0");
        }
    }
    HaFailover {
        enabled: f.enabled,
        max_attempts: f.max_attempts,
        attempts_before_switching: f.attempts_before_switching,
        timeout: secs(f.timeout_s),
    }
}

/// ARP detach polling.
pub(super) fn detach(f: &File, v: &mut Errors) -> Detach {
    let d = &f.detach;
    if d.enabled {
        if d.interval_s == 0 {
            v.err("detach.interval_s", "must be > 0");
        }
        if d.timeout_s == 0 {
            v.err("detach.timeout_s", "must be > 0");
        } else if d.timeout_s >= d.interval_s && d.interval_s > 0 {
            v.err(
                "detach.timeout_s",
                format!("must be below interval_s ({})", d.interval_s),
            );
        }
        if d.retries > 100 {
            v.err("detach.retries", "must be 0 to 100");
        }
    }
    Detach {
        enabled: d.enabled,
        interval: secs(d.interval_s),
        timeout: secs(d.timeout_s),
        retries: d.retries,
    }
}

pub(super) fn dhcp(f: &File, v: &mut Errors) -> Dhcp {
    if f.dhcp.offer_timeout_s == 0 {
        v.err("dhcp.offer_timeout_s", "must be > 0");
    }
    if f.dhcp.offer_hold_s == 0 {
        v.err("dhcp.offer_hold_s", "must be > 0");
    }
    Dhcp {
        dns: f.dhcp.dns.clone(),
        offer_timeout: secs(f.dhcp.offer_timeout_s),
        // An offer is never held longer than an attach may take.
        offer_hold: secs(f.dhcp.offer_hold_s.min(f.dhcp.offer_timeout_s)),
    }
}
