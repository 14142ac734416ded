//! Proxy Mobile IPv4 (draft-leung-mip4-proxy-mode, RFC 3344).
//!
//! - [`wire`]: message and extension codecs (UDP 434).
//! - [`auth`]: HMAC-MD5 / keyed-MD5 authenticators, NTP Identification and replay checks.
//! - [`pma`]: the Proxy Mobility Agent (access side, PMIP client + FA), sans-IO.
//! - [`ha`]: the Home Agent (anchor side), sans-IO.
//! - [`transport`]: the tokio UDP 434 shell that drives either state machine.
//!
//! Both state machines follow the same shape: `handle(now, src, payload)`,
//! `handle_timeout(now)`, `poll_timeout()`, `poll_transmit()`, `poll_dp()` (data-plane
//! commands) and `poll_event()`. They own no socket and no clock.
use std::net::SocketAddrV4;
use std::time::{Instant, SystemTime};

use crate::dataplane::DpCommand;

/// The GRE key handed out after `k` (keys this node receives with, from
/// `base`): sequential, so a freed key is not reused at once, but wrapping
/// back to `base` after a window of `pmip_common::MAX_SUBSCRIBERS` keys (or
/// twice the keys in use, if more) — the fast path finds keys below its
/// table size by index, so keys stay small for the life of the gateway.
pub(crate) fn next_gre_key(k: u32, base: u32, in_use: usize) -> u32 {
    let window = pmip_common::MAX_SUBSCRIBERS.max((in_use as u32).saturating_mul(2));
    let next = k.wrapping_add(1);
    if next < base || next - base >= window {
        base
    } else {
        next
    }
}

pub mod auth;
pub mod ha;
pub mod pma;
pub mod transport;
pub mod wire;

/// A datagram to send from the UDP 434 socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// What the transport shell needs from a state machine.
pub trait Endpoint {
    fn handle(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_dp(&mut self) -> Option<DpCommand>;
}

/// Maps the monotonic `now` the shell passes in to wall-clock time, which Identification
/// timestamps need (RFC 3344 §5.7.1). Fixed at construction so tests stay deterministic.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    pub at: Instant,
    pub wall: SystemTime,
}

impl WallClock {
    pub fn new(at: Instant, wall: SystemTime) -> Self {
        WallClock { at, wall }
    }
    pub fn now(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.at)
    }
}

#[cfg(test)]
mod sim_tests;

#[cfg(test)]
mod key_tests {
    use super::next_gre_key;

    #[test]
    fn gre_keys_stay_in_a_window_and_skip_nothing() {
        let base = 100;
        assert_eq!(next_gre_key(100, base, 0), 101);
        // The end of the window wraps to the base.
        let last = base + pmip_common::MAX_SUBSCRIBERS - 1;
        assert_eq!(next_gre_key(last, base, 10), base);
        // With more keys in use than half the window it grows.
        assert_eq!(next_gre_key(last, base, 40_000), last + 1);
        // u32 wrap-around and keys below the base go back to the base.
        assert_eq!(next_gre_key(u32::MAX, base, 0), base);
        assert_eq!(next_gre_key(5, base, 0), base);
    }
}
