//! Every default of the configuration, in one place, written as the file
//! would spell it. docs/config-reference.md lists the same values.
//!
//! The agents' own config structs (`MagConfig`, `LmaConfig`, `PmaConfig`,
//! `HaConfig`) are built from the typed configuration in `agents.rs`, so
//! their `Default`/`new` values never reach the daemon for anything the file
//! can set.
use std::path::PathBuf;
use std::time::Duration;

use super::file::{Detach, Dhcp, Fastpath, HaFailover, Timers};
use crate::fastpath::AttachMode;

/// `control.socket`.
pub(super) fn control_socket() -> PathBuf {
    PathBuf::from("/run/pmipd.sock")
}

/// `store.path`.
pub(super) fn store_path() -> PathBuf {
    PathBuf::from("/var/lib/pmipd/state.redb")
}

/// `[store]` etcd keys: prefix, lease TTL (etcd's shortest with its default
/// election timeout is 1.5 s, rounded up to whole seconds), request timeout,
/// operations per transaction (etcd's own default limit).
pub(super) fn etcd_prefix() -> String {
    "/pmip".into()
}
pub(super) const ETCD_LEASE_TTL_S: u32 = 2;
pub(super) const ETCD_TIMEOUT_MS: u32 = 1000;
pub(super) const ETCD_MAX_TXN_OPS: u32 = 128;

/// `[cluster]`: heartbeats every 100 ms, dead after 4 missed (the
/// detection half of the takeover time), blocks of 256 numbers, a 100 ms
/// fence after revoking a dead member's lease.
pub(super) const CLUSTER_HEARTBEAT_PORT: u16 = 5437;
pub(super) const CLUSTER_HEARTBEAT_INTERVAL_MS: u32 = 100;
pub(super) const CLUSTER_HEARTBEAT_MISSES: u32 = 4;
pub(super) const CLUSTER_BLOCK_SIZE: u32 = 256;
pub(super) const CLUSTER_TAKEOVER_FENCE_MS: u32 = 100;

/// `interfaces.access[].mtu`.
pub(super) fn access_mtu() -> u16 {
    1500
}

/// `pools[].assign_len`: IPv6 pools hand out /64s (RFC 5213 §2: a home
/// network prefix is a /64 on the point-to-point link).
pub(super) const ASSIGN_LEN: u8 = 64;

/// `[timers]` (seed 004 Cisco MAG timers, seed 000 StarOS proxy-mip).
pub(super) const TIMERS: Timers = Timers {
    lifetime_s: 3600,
    refresh_s: 300,
    renew_percent: 75,
    retx_initial_ms: 1000,
    retx_max_ms: 32000,
    max_retransmissions: 5,
    timestamp_window_ms: 7000,
    // 0: off.
    heartbeat_interval_s: 0,
    heartbeat_misses: 3,
    bri_delay_min_ms: 1000,
    bri_delay_max_ms: 2000,
    bri_max_retransmissions: 3,
    ha_failover: HaFailover {
        enabled: false,
        max_attempts: 4,
        attempts_before_switching: 2,
        timeout_s: 3,
    },
};

/// `[detach]` (Cisco `discover-mn-detach poll interval 10 timeout 2 retries 3`).
pub(super) const DETACH: Detach = Detach {
    enabled: true,
    interval_s: 10,
    timeout_s: 2,
    retries: 3,
};

/// `[dhcp]`.
pub(super) const DHCP: Dhcp = Dhcp {
    dns: Vec::new(),
    offer_timeout_s: 60,
};

/// `[fastpath]`.
pub(super) const FASTPATH: Fastpath = Fastpath {
    attach_mode: AttachMode::Auto,
    pin_dir: None,
    max_subscribers: pmip_common::MAX_SUBSCRIBERS,
};

/// The period the agents are given when `timers.heartbeat_interval_s` is 0
/// (off): they always run the timer, and a day between heartbeats is as good
/// as never.
pub(super) const HEARTBEAT_OFF: Duration = Duration::from_secs(86_400);
