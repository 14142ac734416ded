//! pmip agent: signaling state machines (sans-IO), codecs, and the shell that
//! drives the eBPF fast path.
//!
//! Layout:
//! - `access`     — DHCP server, ARP detach detection and raw frames on the access link.
//! - `config`     — the `pmipd` TOML configuration and its validation.
//! - `ctl`        — the pmipctl protocol over a Unix socket and the show formatting.
//! - `dataplane`  — the data-plane interface the state machines drive, with an in-memory fake.
//! - `loader`     — loads/attaches the eBPF object and writes its maps (the real data plane).
//! - `pmipv6`     — PMIPv6 wire formats (`wire`) and the MAG/LMA state machines.
//! - `pmipv4`     — PMIPv4 wire formats (`wire`) and the PMA/HA state machines.
pub mod aaa;
pub mod access;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod loader;
pub mod packet;
pub mod pmipv4;
pub mod pmipv6;
pub mod static_bindings;
