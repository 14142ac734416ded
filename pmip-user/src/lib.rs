//! pmip agent: signaling state machines (sans-IO), codecs, and the shell that
//! drives the eBPF fast path.
//!
//! Layout:
//! - `access`     — DHCP server, ARP detach detection and raw frames on the access link.
//! - `agent`      — the registrars' one shape: Endpoint, shell, allocator, clock.
//! - `checksum`   — the Internet checksum (RFC 1071) and pseudo-header sums.
//! - `cli_docs`   — man pages and shell completions from the clap definitions.
//! - `config`     — the `pmipd` TOML configuration: checked once into typed settings, and
//!   the agents' configurations built from them (`config::agents`).
//! - `daemon`     — `pmipd run`: the pieces wired together.
//! - `ctl`        — the pmipctl protocol over a Unix socket and the show formatting.
//! - `dataplane`  — the data-plane interface the state machines drive, with an in-memory fake.
//! - `esp`        — ESP (RFC 4303) for the PMIPv6 signaling, done by the agent (no xfrm here).
//! - `fastpath`   — loads/attaches the eBPF object and writes its maps (the real data plane).
//! - `logs`       — where the log goes (text, JSON, journald) and rate-limited logging (`log_limited!`).
//! - `mac`        — MAC address parsing.
//! - `metrics`    — the OpenMetrics endpoint: counters, signaling by type/status/peer, fast path.
//! - `pmipv6`     — PMIPv6 wire formats (`wire`) and the MAG/LMA state machines.
//! - `pmipv4`     — PMIPv4 wire formats (`wire`) and the PMA/HA state machines.
//! - `store`      — durable binding state: the store trait, embedded (redb) and in-memory backends.
//! - `sys`        — OS plumbing: interfaces, sockets, sysctls, bpffs, CPUs.
//! - `aaa`        — RADIUS authorization, accounting and dynamic authorization (RFC 2865/2866/5176).
pub mod aaa;
pub mod access;
pub mod agent;
pub mod checksum;
pub mod cli_docs;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod esp;
pub mod fastpath;
pub mod fastpath_log;
pub mod logs;
pub mod mac;
pub mod metrics;
pub mod pcap;
pub mod pmipv4;
pub mod pmipv6;
#[cfg(test)]
mod sim_pair;
pub mod static_bindings;
pub mod store;
pub mod sys;
