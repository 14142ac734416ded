//! What the MAG and the LMA both do with a received Mobility Header before
//! looking at its type: parse it, and tell why it is dropped or answered.
use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::wire::{self, BindingError, Message};
use super::LocalAddrs;
use crate::agent::{Peer, Transmit};

/// Why a received Mobility Header is not handed to the state machine.
#[derive(Debug)]
pub(crate) enum Refused {
    BadChecksum,
    /// An MH type we do not know: answered with this Binding Error
    /// (RFC 6275 §9.2, status 2, Home Address unspecified).
    UnknownType(Message),
    Malformed,
}

/// Parses `data` received with checksum mode `ck`.
pub(crate) fn parse(data: &[u8], ck: wire::Checksum) -> Result<Message, Refused> {
    Message::parse(data, ck).map_err(|e| match e {
        wire::Error::Checksum => Refused::BadChecksum,
        wire::Error::UnknownType(_) => Refused::UnknownType(Message::BindingError(BindingError {
            status: wire::be_status::UNRECOGNIZED_MH_TYPE,
            home_address: Ipv6Addr::UNSPECIFIED,
            options: vec![],
        })),
        _ => Refused::Malformed,
    })
}

/// Binding Errors sent in one second at most: RFC 6275 §9.3.3, "Binding
/// Error messages SHOULD be subject to rate limiting in the same manner as
/// is done for ICMPv6 messages" — an unknown MH type from anyone (a
/// spoofed source too) must not make us a reflector.
pub(crate) const BINDING_ERRORS_PER_S: u32 = 10;

/// The Binding Errors of the current second ([`BINDING_ERRORS_PER_S`]).
#[derive(Debug, Default)]
pub(crate) struct BindingErrorLimit {
    second: Option<Instant>,
    sent: u32,
}

impl BindingErrorLimit {
    /// Whether one more may be sent at `now` (and it is counted if so).
    fn take(&mut self, now: Instant) -> bool {
        match self.second {
            Some(s) if now.saturating_duration_since(s) < Duration::from_secs(1) => {}
            _ => (self.second, self.sent) = (Some(now), 0),
        }
        self.sent += 1;
        self.sent <= BINDING_ERRORS_PER_S
    }
}

/// Takes `data` from `peer` (checksum mode `ck`): the message, or None when
/// it is refused, counted in `counters` and, for an unknown type, answered
/// with a Binding Error queued on `transmits` — to a unicast source only
/// ("If the Source Address field does not contain a unicast address, the
/// Binding Error message MUST NOT be sent", RFC 6275 §9.3.3) and within
/// `limit`.
pub(crate) fn receive<C: CountRefused>(
    data: &[u8],
    ck: wire::Checksum,
    (now, peer): (Instant, Peer),
    (counters, limit): (&mut C, &mut BindingErrorLimit),
    (local, transmits): (&LocalAddrs, &mut VecDeque<Transmit>),
) -> Option<Message> {
    match parse(data, ck) {
        Ok(m) => Some(m),
        Err(r) => {
            counters.count(&r);
            if let Refused::UnknownType(be) = r {
                if unicast(&peer) && limit.take(now) {
                    queue(local, transmits, peer, &be);
                }
            }
            None
        }
    }
}

/// Whether `peer` is a unicast address a Binding Error may go to.
fn unicast(peer: &Peer) -> bool {
    match peer {
        Peer::V6(a) => !(a.is_multicast() || a.is_unspecified()),
        Peer::V4(s) => {
            let a = s.ip();
            !(a.is_multicast() || a.is_broadcast() || a.is_unspecified() || s.port() == 0)
        }
    }
}

/// Queues `msg` for `peer`, encoded with the checksum the peer's address
/// family takes from `local` (nothing when we have no address of that family).
pub(crate) fn queue(
    local: &LocalAddrs,
    transmits: &mut VecDeque<Transmit>,
    peer: Peer,
    msg: &Message,
) {
    let Some(ck) = local.checksum(&peer) else {
        return;
    };
    if let Ok(payload) = msg.to_vec(ck) {
        transmits.push_back(Transmit::new(peer, payload));
    }
}

/// Counting a refused message: the MAG and the LMA keep the same counters
/// under the same names.
pub(crate) trait CountRefused {
    fn count(&mut self, r: &Refused);
}

macro_rules! count_refused {
    ($($counters:ty),*) => {$(
        impl CountRefused for $counters {
            fn count(&mut self, r: &Refused) {
                match r {
                    Refused::BadChecksum => self.rx_bad_checksum += 1,
                    Refused::UnknownType(_) => {
                        self.rx_unknown_type += 1;
                        self.binding_error_sent += 1;
                    }
                    Refused::Malformed => self.rx_malformed += 1,
                }
            }
        }
    )*};
}

count_refused!(super::lma::LmaCounters, super::mag::MagCounters);
