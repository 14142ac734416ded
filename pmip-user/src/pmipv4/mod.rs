//! Proxy Mobile IPv4 (draft-leung-mip4-proxy-mode, RFC 3344).
//!
//! - [`wire`]: message and extension codecs (UDP 434).
//! - [`auth`]: HMAC-MD5 / keyed-MD5 authenticators, NTP Identification and replay checks.
//! - [`pma`]: the Proxy Mobility Agent (access side, PMIP client + FA), sans-IO.
//! - [`ha`]: the Home Agent (anchor side), sans-IO.
//! - [`transport`]: the UDP 434 socket the agent's shell drives either state machine over.
//!
//! Both state machines are [`crate::agent::Endpoint`]s, driven by the agent's one
//! shell over [`transport::Udp434`]. They own no socket and no clock.

pub mod auth;
pub mod ha;
pub mod pma;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod sim_tests;
