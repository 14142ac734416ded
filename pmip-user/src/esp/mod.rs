//! ESP (RFC 4303) in transport mode for the PMIPv6 signaling, done by the
//! agent itself: RFC 5213 §4 wants the MAG–LMA signaling protected by IPsec,
//! and kernels without xfrm (as on these machines) cannot do it for us. On the
//! wire it is what Linux xfrm / strongSwan send and accept with manually keyed
//! SAs (`ip xfrm state ... proto esp mode transport`).
//!
//! - [`packet`]    — the ESP header view and repr, the padding and trailer.
//! - [`replay`]    — the anti-replay window (RFC 4303 §3.4.3, ESN: Appendix A).
//! - `transform`   — AES-GCM (RFC 4106) and AES-CBC + HMAC-SHA-256-128 (RFC 3602, 4868).
//! - [`sa`]        — one security association ([`Sa::seal`] / [`Sa::open`]) and
//!   the per-peer database ([`SaDb`]) that counts every drop.
//! - [`config`]    — the `peers[].esp` table, as `ip xfrm state` takes keys.
//! - [`udp`]       — the UDP header RFC 5844 §4 puts around the Mobility Header over IPv4.
//! - [`signaling`] — what a PMIPv6 transport calls: [`SignalingEsp::protect`] a
//!   `Transmit`, [`SignalingEsp::unprotect`] a received ESP packet.
//! - [`socket`]    — raw `IPPROTO_ESP` sockets (IPv4 and IPv6), plain and tokio.
//! - [`persist`]   — the sequence numbers kept across restarts ([`persist::SeqStore`]).
//!
//! Everything but `socket` is sans-IO: bytes in, bytes out, no clock.
//!
//! Sequence numbers: 32-bit, or 64-bit extended (ESN, RFC 4303 §2.2.1 and
//! Appendix A) when the SA says so. The sender never cycles its counter
//! (§3.3.3). Manual keys outlive the process: a restarted sender starts
//! over at 1 and the peer's window takes it for a replayer, and a restarted
//! receiver's empty window takes recorded packets once more. So the agent
//! keeps [`SaDb::tx_seq`] and [`SaDb::rx_top`] across restarts and hands them
//! back with [`SaDb::set_tx_seq`] / [`SaDb::set_rx_top`] ([`persist`] does
//! it; or the peer runs with `replay_window = 0`, relying on RFC 5213's
//! timestamps alone).
pub mod config;
pub mod packet;
pub mod persist;
pub mod replay;
pub mod sa;
pub mod signaling;
pub mod socket;
mod transform;
pub mod udp;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use config::{check_unique_spi_in, EspAlgorithm, EspConfig, EspSettings, SaParams};
pub use packet::{EspPacket, EspRepr};
pub use replay::ReplayWindow;
pub use sa::{Sa, SaDb};
pub use signaling::SignalingEsp;

/// IP protocol number / IPv6 next header of ESP.
pub(crate) const IPPROTO_ESP: u8 = 50;
/// "No next header": marks a dummy packet, discarded by the receiver (RFC 4303 §2.6).
pub(crate) const IPPROTO_NONE: u8 = 59;

/// Why a received ESP packet was dropped. Every reason has a counter in
/// [`EspCounters`]; none of them is ever answered on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Too short for its header, IV, ICV or trailer, or misaligned.
    Malformed(&'static str),
    /// No inbound SA has this SPI.
    UnknownSpi(u32),
    /// The SPI belongs to another peer's SA than the packet's source.
    WrongPeer(u32),
    /// Sequence number already seen, or left of the window (RFC 4303 §3.4.3).
    Replay(u64),
    /// Integrity check failed: wrong key, forged or corrupted.
    BadIcv,
    /// Authentic, but the pad length or the padding bytes are wrong (§2.4).
    BadPadding,
    /// A dummy packet (next header 59, §2.6).
    Dummy,
    /// Authentic, but not what the signaling carries (MH over IPv6, UDP over IPv4).
    WrongNextHeader(u8),
    /// The inner UDP header is wrong: length, checksum or port.
    BadInnerUdp(&'static str),
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DropReason::Malformed(w) => write!(f, "malformed ESP packet: {w}"),
            DropReason::UnknownSpi(s) => write!(f, "no inbound SA with SPI {s:#010x}"),
            DropReason::WrongPeer(s) => write!(f, "SPI {s:#010x} belongs to another peer"),
            DropReason::Replay(q) => write!(f, "replayed or too old sequence number {q}"),
            DropReason::BadIcv => write!(f, "integrity check failed"),
            DropReason::BadPadding => write!(f, "bad ESP padding"),
            DropReason::Dummy => write!(f, "dummy packet"),
            DropReason::WrongNextHeader(n) => write!(f, "unexpected next header {n}"),
            DropReason::BadInnerUdp(w) => write!(f, "bad inner UDP header: {w}"),
        }
    }
}

impl std::error::Error for DropReason {}

/// Why a message could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// No outbound SA for this peer.
    NoSa,
    /// The sequence number would cycle (RFC 4303 §3.3.3): the SA needs new keys.
    SeqExhausted,
    /// The packet would not fit an IP datagram.
    TooLong,
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SealError::NoSa => write!(f, "no outbound ESP SA for this peer"),
            SealError::SeqExhausted => write!(f, "ESP sequence number exhausted: rekey the SA"),
            SealError::TooLong => write!(f, "message too long for ESP"),
        }
    }
}

impl std::error::Error for SealError {}

/// ESP counters of one agent: what was sent and every reason for a drop.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EspCounters {
    pub tx_packets: u64,
    /// Not sent: no SA for the peer.
    pub tx_no_sa: u64,
    /// Not sent: the SA's sequence number is used up.
    pub tx_seq_exhausted: u64,
    pub tx_too_long: u64,
    /// Opened and handed on.
    pub rx_packets: u64,
    pub rx_malformed: u64,
    pub rx_unknown_spi: u64,
    pub rx_wrong_peer: u64,
    pub rx_replay: u64,
    pub rx_bad_icv: u64,
    pub rx_bad_padding: u64,
    pub rx_dummy: u64,
    pub rx_wrong_next_header: u64,
    pub rx_bad_inner_udp: u64,
    /// Signaling from a peer that has an SA, received without ESP.
    pub rx_unprotected: u64,
}

impl EspCounters {
    pub(crate) fn count_drop(&mut self, r: &DropReason) {
        let c = match r {
            DropReason::Malformed(_) => &mut self.rx_malformed,
            DropReason::UnknownSpi(_) => &mut self.rx_unknown_spi,
            DropReason::WrongPeer(_) => &mut self.rx_wrong_peer,
            DropReason::Replay(_) => &mut self.rx_replay,
            DropReason::BadIcv => &mut self.rx_bad_icv,
            DropReason::BadPadding => &mut self.rx_bad_padding,
            DropReason::Dummy => &mut self.rx_dummy,
            DropReason::WrongNextHeader(_) => &mut self.rx_wrong_next_header,
            DropReason::BadInnerUdp(_) => &mut self.rx_bad_inner_udp,
        };
        *c += 1;
    }

    pub(crate) fn count_seal_error(&mut self, e: &SealError) {
        let c = match e {
            SealError::NoSa => &mut self.tx_no_sa,
            SealError::SeqExhausted => &mut self.tx_seq_exhausted,
            SealError::TooLong => &mut self.tx_too_long,
        };
        *c += 1;
    }

    /// Every received packet that was dropped, whatever the reason.
    pub fn rx_dropped(&self) -> u64 {
        self.rx_malformed
            + self.rx_unknown_spi
            + self.rx_wrong_peer
            + self.rx_replay
            + self.rx_bad_icv
            + self.rx_bad_padding
            + self.rx_dummy
            + self.rx_wrong_next_header
            + self.rx_bad_inner_udp
            + self.rx_unprotected
    }
}
