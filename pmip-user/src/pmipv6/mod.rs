//! Proxy Mobile IPv6 (RFC 5213, 5844, 5845, 5846, 5847).
//!
//! - [`wire`] — Mobility Header codecs (PBU/PBA/Heartbeat/BRI/BRA and options).
pub mod wire;
