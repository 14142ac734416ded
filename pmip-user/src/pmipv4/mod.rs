//! Proxy Mobile IPv4 (draft-leung-mip4-proxy-mode, RFC 3344).
//!
//! - [`wire`]: message and extension codecs (UDP 434).
//! - [`auth`]: HMAC-MD5 / keyed-MD5 authenticators, NTP Identification and replay checks.
pub mod auth;
pub mod wire;
