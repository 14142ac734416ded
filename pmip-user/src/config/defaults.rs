//! Every default of the configuration, in one place, written as the file
//! would spell it. docs/config-reference.md lists the same values.
//!
//! The agents' own config structs (`MagConfig`, `LmaConfig`, `PmaConfig`,
//! `HaConfig`) are built from the typed configuration in `agents.rs`, so
//! their `Default`/`new` values never reach the daemon for anything the file
//! can set.
use std::path::PathBuf;
use std::time::Duration;

use super::file::{Admission, Detach, Dhcp, Fastpath, HaFailover, Ipv6, Signaling, Timers};
use crate::fastpath::AttachMode;

/// `control.socket`.
pub(super) fn control_socket() -> PathBuf {
    PathBuf::from("/run/pmip/pmipd.sock")
}

/// `store.path`.
pub(super) fn store_path() -> PathBuf {
    PathBuf::from("/var/lib/pmip/state.redb")
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
/// One etcd write per store batch at a time (`store.writes_in_flight`).
pub(super) const ETCD_WRITES_IN_FLIGHT: u32 = 1;
/// Requests per store batch of a service address (`store.batch_max`).
pub(super) const ETCD_BATCH_MAX: u32 = 256;
/// 16 MiB (the kernel doubles it for its own overhead; a small datagram
/// takes 1–4 KiB of it: about ten thousand queued requests). With 4 MiB
/// an anchor cluster lost 3 200–4 700 of a burst of 15 000 PBUs at the
/// anchors, each a 1 s retransmission, and made 12.6–13.0k bindings/s;
/// with 16 MiB none, 24.0–25.6k/s (BENCHMARKS.md, "Bursts and the
/// signaling sockets' receive buffers").
pub(super) const SIGNALING_RECEIVE_BUFFER_KIB: u32 = 16 * 1024;

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
    // RFC 5213 §9.3: 1.
    timestamp_based_approach: true,
    // 0: off.
    heartbeat_interval_s: 0,
    heartbeat_misses: 3,
    bri_delay_min_ms: 1000,
    bri_delay_max_ms: 2000,
    bri_max_retransmissions: 3,
    // RFC 5213 §9.1 MaxDelayBeforeNewBCEAssign.
    new_bce_delay_ms: 1500,
    // Off: a requested address the profile does not authorise is refused
    // (129, draft-leung §4.1.1); bindings survive restarts in the store.
    reregistration_window_s: 0,
    // RFC 5213 §6.9.1.2 (7) "until an administrative action is taken":
    // `pmipctl clear binding`, or an hour.
    lma_refusal_hold_s: 3600,
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
    // A client REQUESTs within a second of the OFFER; one that does not
    // retransmits its DISCOVER after 4 s (RFC 2131 §4.1) and is offered again.
    offer_hold_s: 10,
};

/// `[signaling]`.
pub(super) fn signaling() -> Signaling {
    Signaling {
        unknown_peers: super::UnknownPeers::Drop,
        udp_gso: false,
        xdp_socket: false,
        xdp_socket_send: false,
        receive_buffer_kib: SIGNALING_RECEIVE_BUFFER_KIB,
        esp_state_file: PathBuf::from("/var/lib/pmip/esp-seq"),
    }
}

/// `[admission]`: an access link (one subscriber's port, RFC 5213's
/// point-to-point link, or a small shared segment) sees a few attaches a
/// second; one link may take a fifth of the gateway's budget and a quarter
/// of its pending attaches (each holds a pool address while the OFFER
/// waits), so a flood on one link leaves the others served.
pub(super) const ADMISSION: Admission = Admission {
    max_pending_per_link: 16,
    max_pending: 64,
    attempts_per_s_per_link: 10,
    attempts_per_s: 50,
    backoff_initial_ms: 1000,
    backoff_max_s: 60,
    new_mac_reports_per_s: 20,
};

/// `[ipv6]`: the RFC 4861 §6.2.1 default MaxRtrAdvInterval; the prefix
/// lifetime cap follows it (3 ×, see `check/ipv6.rs`); DHCPv6 answered,
/// RAs without the M/O flags (nodes configure by SLAAC).
pub(super) const IPV6: Ipv6 = Ipv6 {
    router_mac: None,
    router_link_local: None,
    ra_interval_max_s: 600,
    prefix_lifetime_cap_s: None,
    dhcpv6: true,
    managed: false,
    dns: Vec::new(),
};

/// `ipv6.prefix_lifetime_cap_s` when not given: this many MaxRtrAdvInterval.
pub(super) const PREFIX_LIFETIME_CAP_INTERVALS: u32 = 3;

/// `[fastpath]`.
pub(super) const FASTPATH: Fastpath = Fastpath {
    attach_mode: AttachMode::Auto,
    pin_dir: None,
    max_subscribers: pmip_common::MAX_SUBSCRIBERS,
};

/// The period the agents are given when `timers.heartbeat_interval_s` is 0:
/// zero, which the MAG and LMA take as off (RFC 5847 §8: no heartbeats).
pub(super) const HEARTBEAT_OFF: Duration = Duration::ZERO;
