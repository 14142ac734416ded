//! Signaling as it crossed the wire: every datagram a registrar sent or
//! received, by message type, status and peer, counted by a wrapper around
//! its [`Transport`] (no change to the state machines, and what is counted
//! is what really left or arrived). Also when each peer was last heard,
//! for the peers' reachability.
//!
//! Datagrams from an address that is not a configured peer are counted
//! under the peer `unknown` (the label set stays bounded) and logged as a
//! rate-limited security event, as are refusals for failed authentication.
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::agent::batch::{RxBatch, Sent};
use crate::agent::{Peer, Transmit, Transport};
use crate::config::Protocol;
use crate::pmipv4::wire as v4;
use crate::pmipv6::wire::{self as v6, Checksum};

/// Which way a datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Direction {
    Rx,
    Tx,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        }
    }
}

/// One label set of `pmip_signaling_messages_total`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MessageKey {
    pub direction: Direction,
    /// pbu, pba, heartbeat_request, bri, rrq, rrp, …, or `malformed`.
    pub kind: &'static str,
    /// The status / code it carried ("0" = accepted), or "none".
    pub status: String,
    /// The configured peer's name, or "unknown".
    pub peer: String,
}

/// What the wrapper saw, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub messages: BTreeMap<MessageKey, u64>,
    /// Configured peers by name: when something last came from them.
    pub last_heard: BTreeMap<String, Instant>,
}

/// The tally and how to name peers; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    tally: Arc<Mutex<Tally>>,
    protocol: Protocol,
    peers: Arc<HashMap<IpAddr, String>>,
}

impl Recorder {
    /// A recorder for `protocol` whose peers are `(address, name)`.
    pub(crate) fn new(
        protocol: Protocol,
        peers: impl IntoIterator<Item = (IpAddr, String)>,
    ) -> Self {
        Recorder {
            tally: Arc::default(),
            protocol,
            peers: Arc::new(peers.into_iter().collect()),
        }
    }

    /// A copy of the tally.
    pub(crate) fn snapshot(&self) -> (BTreeMap<MessageKey, u64>, BTreeMap<String, Instant>) {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        (t.messages.clone(), t.last_heard.clone())
    }

    /// The names of the configured peers.
    pub(crate) fn peer_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.peers.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// Counts one datagram to or from `peer`.
    pub(crate) fn record(&self, direction: Direction, peer: IpAddr, bytes: &[u8]) {
        self.record_many(direction, std::iter::once((peer, bytes)));
    }

    /// Counts a batch of datagrams, taking the tally's lock once.
    pub(crate) fn record_many<'b>(
        &self,
        direction: Direction,
        datagrams: impl IntoIterator<Item = (IpAddr, &'b [u8])>,
    ) {
        let keys: Vec<_> = datagrams
            .into_iter()
            .map(|(peer, bytes)| self.key_of(direction, peer, bytes))
            .collect();
        if keys.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        for (key, name) in keys {
            *t.messages.entry(key).or_insert(0) += 1;
            if let (Direction::Rx, Some(n)) = (direction, name) {
                t.last_heard.insert(n, now);
            }
        }
    }

    /// One datagram's label set (and its peer's name), with the security
    /// events it raises.
    fn key_of(
        &self,
        direction: Direction,
        peer: IpAddr,
        bytes: &[u8],
    ) -> (MessageKey, Option<String>) {
        let (kind, status) = match self.protocol {
            Protocol::Pmipv6 => classify_v6(bytes),
            Protocol::Pmipv4 => classify_v4(bytes),
        };
        let name = self.peers.get(&peer).cloned();
        if direction == Direction::Rx && name.is_none() {
            crate::log_limited!(warn, security = true, event = "unknown_peer", %peer, kind, "signaling from an address that is not a configured peer");
        }
        if direction == Direction::Tx && auth_refusal(self.protocol, kind, status) {
            crate::log_limited!(warn, security = true, event = "auth_failed", %peer, kind, status, "registration refused: authentication failed");
        }
        let key = MessageKey {
            direction,
            kind,
            status: status.map_or_else(|| "none".into(), |s| s.to_string()),
            peer: name.clone().unwrap_or_else(|| "unknown".into()),
        };
        (key, name)
    }
}

/// Refusals that mean the requester failed authentication: PMIPv4 codes
/// 131/132 (RFC 3344 §3.4), PMIPv6 PBA status 152 / 153 (RFC 5213 §8.9,
/// not authorized for the home prefix / for proxy registration).
fn auth_refusal(p: Protocol, kind: &str, status: Option<u8>) -> bool {
    matches!(
        (p, kind, status),
        (Protocol::Pmipv4, "rrp", Some(131 | 132)) | (Protocol::Pmipv6, "pba", Some(152 | 153))
    )
}

/// A Mobility Header's kind and status (RFC 5213, 5846, 5847, 6275).
pub(crate) fn classify_v6(bytes: &[u8]) -> (&'static str, Option<u8>) {
    match v6::Message::parse(bytes, Checksum::None) {
        Ok(v6::Message::BindingUpdate(_)) => ("pbu", None),
        Ok(v6::Message::BindingAck(a)) => ("pba", Some(a.status.0)),
        Ok(v6::Message::Heartbeat(h)) if h.response => ("heartbeat_response", None),
        Ok(v6::Message::Heartbeat(_)) => ("heartbeat_request", None),
        Ok(v6::Message::RevocationIndication(r)) => ("bri", Some(r.trigger)),
        Ok(v6::Message::RevocationAck(r)) => ("bra", Some(r.status)),
        Ok(v6::Message::BindingError(e)) => ("binding_error", Some(e.status)),
        Err(v6::Error::UnknownType(_)) => ("unknown_type", None),
        Err(_) => ("malformed", None),
    }
}

/// A UDP 434 message's kind and code (RFC 3344, RFC 3543).
pub(crate) fn classify_v4(bytes: &[u8]) -> (&'static str, Option<u8>) {
    match v4::Message::parse(bytes) {
        Ok(v4::Message::Request(_)) => ("rrq", None),
        Ok(v4::Message::Reply(r)) => ("rrp", Some(u8::from(r.code))),
        Ok(v4::Message::Revocation(_)) => ("revocation", None),
        Ok(v4::Message::RevocationAck(_)) => ("revocation_ack", None),
        Err(v4::Error::WrongType(_)) => ("unknown_type", None),
        Err(_) => ("malformed", None),
    }
}

/// A [`Transport`] that records every datagram it moves.
pub(crate) struct Metered<T> {
    inner: T,
    rec: Recorder,
}

impl<T: Transport> Metered<T> {
    pub(crate) fn new(inner: T, rec: Recorder) -> Self {
        Metered { inner, rec }
    }
}

fn peer_ip(p: &Peer) -> IpAddr {
    p.ip()
}

impl<T: Transport> Transport for Metered<T> {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let r = self.inner.recv(buf).await;
        if let Ok((peer, n)) = &r {
            self.rec.record(Direction::Rx, peer_ip(peer), &buf[..*n]);
        }
        r
    }

    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        let r = self.inner.try_recv(buf);
        if let Some((peer, n)) = &r {
            self.rec.record(Direction::Rx, peer_ip(peer), &buf[..*n]);
        }
        r
    }

    async fn send(&self, t: &Transmit) -> io::Result<()> {
        let r = self.inner.send(t).await;
        if r.is_ok() {
            self.rec.record(Direction::Tx, peer_ip(&t.peer), &t.payload);
        }
        r
    }

    fn try_recv_batch(&self, batch: &mut RxBatch) {
        let start = batch.len();
        self.inner.try_recv_batch(batch);
        let got = batch.iter().skip(start).map(|(p, d)| (peer_ip(&p), d));
        self.rec.record_many(Direction::Rx, got);
    }

    async fn send_batch(&self, ts: &[Transmit]) -> Sent {
        let out = self.inner.send_batch(ts).await;
        // What really left: all but the failed ones (ascending positions).
        let mut failed = out.failed.iter().peekable();
        let went = ts.iter().enumerate().filter(|(i, _)| {
            let f = failed.peek() == Some(&i);
            if f {
                failed.next();
            }
            !f
        });
        self.rec.record_many(
            Direction::Tx,
            went.map(|(_, t)| (peer_ip(&t.peer), &t.payload[..])),
        );
        out
    }

    /// The wrapped transport's own counters (ESP drops, replays): the meter
    /// adds none of its own here (they are in the metrics registry).
    fn counters(&self) -> crate::agent::registrar::Counters {
        self.inner.counters()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::pmipv6::wire::{BaStatus, BindingAck, Heartbeat, Message};

    fn emit(m: &Message) -> Vec<u8> {
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(&mut b, Checksum::None).unwrap();
        b
    }

    fn pba(status: u8) -> Message {
        Message::BindingAck(BindingAck {
            status: BaStatus(status),
            flags: 0,
            seq: 1,
            lifetime: 10,
            options: vec![],
        })
    }

    #[test]
    fn pmipv6_kinds_and_statuses() {
        assert_eq!(classify_v6(&emit(&pba(153))), ("pba", Some(153)));
        let hb = Message::Heartbeat(Heartbeat {
            unsolicited: false,
            response: true,
            seq: 7,
            options: vec![],
        });
        assert_eq!(classify_v6(&emit(&hb)), ("heartbeat_response", None));
        assert_eq!(classify_v6(&[]), ("malformed", None));
        assert_eq!(
            classify_v6(&[59, 0, 200, 0, 0, 0, 0, 0]),
            ("unknown_type", None)
        );
    }

    #[test]
    fn pmipv4_kinds_and_codes() {
        assert_eq!(classify_v4(&[]), ("malformed", None));
        assert_eq!(classify_v4(&[99, 0, 0, 0]), ("unknown_type", None));
        // A truncated reply is malformed, not a reply.
        assert_eq!(classify_v4(&[3, 131, 0]), ("malformed", None));
    }

    #[test]
    fn counts_by_peer_and_names_strangers_unknown() {
        let lma = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        let r = Recorder::new(Protocol::Pmipv6, [(lma, "lma".to_string())]);
        let pba = emit(&pba(0));
        r.record(Direction::Rx, lma, &pba);
        r.record(Direction::Rx, lma, &pba);
        r.record(
            Direction::Rx,
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            &pba,
        );
        let (m, heard) = r.snapshot();
        let key = |peer: &str| MessageKey {
            direction: Direction::Rx,
            kind: "pba",
            status: "0".into(),
            peer: peer.into(),
        };
        assert_eq!(m.get(&key("lma")), Some(&2));
        assert_eq!(m.get(&key("unknown")), Some(&1));
        assert!(heard.contains_key("lma"));
        assert_eq!(heard.len(), 1);
    }
}
