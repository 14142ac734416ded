//! What the MAG and the LMA both do with a received Mobility Header before
//! looking at its type: parse it, and tell why it is dropped or answered.
use std::collections::VecDeque;
use std::net::Ipv6Addr;

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

/// Takes `data` from `peer` (checksum mode `ck`): the message, or None when
/// it is refused, counted in `counters` and, for an unknown type, answered
/// with a Binding Error queued on `transmits`.
pub(crate) fn receive<C: CountRefused>(
    data: &[u8],
    ck: wire::Checksum,
    peer: Peer,
    counters: &mut C,
    (local, transmits): (&LocalAddrs, &mut VecDeque<Transmit>),
) -> Option<Message> {
    match parse(data, ck) {
        Ok(m) => Some(m),
        Err(r) => {
            counters.count(&r);
            if let Refused::UnknownType(be) = r {
                queue(local, transmits, peer, &be);
            }
            None
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
