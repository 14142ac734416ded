//! The agent's one shape, shared by both protocols and both roles.
//!
//! Every registrar — the PMIPv6 MAG and LMA, the PMIPv4 PMA and HA — is a
//! sans-IO state machine implementing [`Endpoint`] (after quinn-proto's
//! `Endpoint`): datagrams in with `handle(now, from, bytes)`, requests in with
//! `command(now, cmd)`, and out come datagrams (`poll_transmit`), data-plane
//! commands (`poll_dp`), writes of durable state (`poll_store`), events for
//! the rest of the daemon (`poll_event`) and one deadline (`poll_timeout` /
//! `handle_timeout`); at start, `restore` rebuilds the bindings a store kept. One [`shell`] drives any
//! of them over a [`Transport`] (raw Mobility Header + UDP 5436 for PMIPv6,
//! UDP 434 for PMIPv4): it owns no protocol logic, holds no lock around the
//! machine and never polls.
//!
//! - [`alloc`]     — the one allocator of subscriber ids and GRE keys.
//! - [`assign`]    — in a cluster, which anchor a new subscriber is sent to.
//! - [`blocks`]    — in a cluster, the blocks of those numbers (and of home
//!   addresses and prefixes) this anchor may hand out.
//! - [`clock`]     — the one clock: monotonic `now` → RFC 5213 timestamps, NTP, wall time.
//! - [`registrar`] — what the daemon asks of a registrar and hears back, whatever the protocol.
//! - [`shell`]     — the tokio driver of an endpoint.
//! - [`unconfirmed`] — answers to new bindings, held until their record is written.
//! - [`peer_filter`] — a transport that drops signaling from addresses that are not peers.
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use bytes::Bytes;

use crate::dataplane::DpCommand;
use crate::store::{Record, RecordKey, Restored, StoreOp};

pub(crate) mod affinity;
pub mod alloc;
pub mod assign;
pub mod batch;
pub mod blocks;
pub mod clock;
pub(crate) mod idhash;
pub mod peer_filter;
mod pipeline;
pub mod registrar;
pub mod shell;
pub(crate) mod unconfirmed;

pub use alloc::IdAlloc;
pub use clock::Clock;

/// A signaling peer and the transport that reaches it: a raw Mobility
/// Header over IPv6, or a UDP socket address over IPv4 (PMIPv6 over IPv4
/// transport on UDP 5436, RFC 5844 §4; PMIPv4 on UDP 434).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    V6(Ipv6Addr),
    V4(SocketAddrV4),
}

impl Peer {
    pub fn ip(&self) -> IpAddr {
        match self {
            Peer::V6(a) => IpAddr::V6(*a),
            Peer::V4(s) => IpAddr::V4(*s.ip()),
        }
    }

    /// A peer at `ip`: IPv6 addresses use the MH transport, IPv4 addresses
    /// UDP on `port`.
    pub fn from_ip(ip: IpAddr, port: u16) -> Peer {
        match ip {
            IpAddr::V6(a) => Peer::V6(a),
            IpAddr::V4(a) => Peer::V4(SocketAddrV4::new(a, port)),
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        match self {
            Peer::V6(a) => SocketAddr::new(IpAddr::V6(*a), 0),
            Peer::V4(s) => SocketAddr::V4(*s),
        }
    }
}

/// A message ready to send to `peer` (for [`Peer::V6`] a Mobility Header
/// whose checksum is already computed over our address and the peer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub payload: Bytes,
}

impl Transmit {
    pub fn new(peer: Peer, payload: impl Into<Bytes>) -> Self {
        Transmit {
            peer,
            payload: payload.into(),
        }
    }
}

/// A registrar state machine, as the shell drives it.
pub trait Endpoint {
    /// Requests from the rest of the daemon (attach, detach, release…).
    type Command: Send + 'static;
    /// Notifications to the rest of the daemon.
    type Event: Send + 'static;
    /// One datagram received from `from`.
    fn handle(&mut self, now: Instant, from: Peer, data: &[u8]);
    fn command(&mut self, now: Instant, cmd: Self::Command);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_dp(&mut self) -> Option<DpCommand>;
    /// Durable state to write (STYLE §10): the shell applies these first,
    /// before data-plane commands, events and transmits.
    fn poll_store(&mut self) -> Option<StoreOp>;
    /// How the store took the batch of writes just drained from
    /// `poll_store` (`ok`: written), before anything of the pass is sent.
    /// A registrar whose new bindings must be durable before they are
    /// acknowledged turns their answers into refusals here and takes them
    /// back (`unconfirmed`); refreshes go on.
    fn stored(&mut self, _now: Instant, _ok: bool) {}
    /// Writes the shell may have in flight at once (issue 17). With 1 (the
    /// default) it waits for each write before it reads on and calls
    /// `stored`; with more it reads the next pass while a write is out,
    /// holds each pass's outputs until its write is durable, and calls
    /// `stored_held` instead.
    fn writes_in_flight(&self) -> usize {
        1
    }
    /// Most datagrams read in one pass, whose outputs are then flushed
    /// together: one store batch, one send. A cluster's anchor takes it from
    /// `store.batch_max` (more per pass: fewer, larger etcd transactions,
    /// but a pass's first answers wait longer).
    fn pass_max(&self) -> usize {
        shell::RX_BURST
    }
    /// With several writes in flight: how the store took the oldest one,
    /// with the outputs of every pass the shell still holds, oldest first
    /// (`held[0]` is that write's pass). A refusal swaps held answers and
    /// drops held map commands and events of the bindings taken back.
    fn stored_held(&mut self, now: Instant, ok: bool, held: &mut [Held<Self::Event>]) {
        let _ = held;
        self.stored(now, ok);
    }
    /// Rebuilds the bindings a store kept, before the first input: expired
    /// ones are dropped (a `Delete`, and their map entries removed), live
    /// ones installed again with their timers armed from the records'
    /// wall-clock times. Records this registrar cannot use are dropped.
    fn restore(&mut self, now: Instant, records: Vec<(RecordKey, Record)>) -> Restored;
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The earliest deadline; `handle_timeout` is due then.
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    /// Every binding, for `show` (plain data; the formatting is the daemon's).
    fn bindings(&self, now: Instant) -> Vec<registrar::BindingSummary>;
    /// The protocol counters, by name, for `show stats`.
    fn counters(&self) -> registrar::Counters;
    /// The signaling peers' heartbeat state, for `show tunnels` (none for a
    /// protocol without heartbeats).
    fn peers(&self) -> Vec<registrar::PeerSummary> {
        Vec::new()
    }
}

/// The outputs of one pass that the shell holds while its write is in flight.
#[derive(Debug)]
pub struct Held<Ev> {
    pub dp: Vec<DpCommand>,
    pub events: Vec<Ev>,
    pub tx: Vec<Transmit>,
}

impl<Ev> Default for Held<Ev> {
    fn default() -> Self {
        Held {
            dp: Vec::new(),
            events: Vec::new(),
            tx: Vec::new(),
        }
    }
}

/// Moves datagrams between an endpoint and the network.
pub trait Transport: Send + Sync {
    /// Waits for one datagram; `buf` receives its bytes.
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Peer, usize)>> + Send + 'a;
    /// One datagram if one is queued (to drain a burst after a wake-up).
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)>;
    /// Sends one datagram, waiting for socket space.
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a;
    /// As many queued datagrams as `batch` has room for, without waiting
    /// (one `recvmmsg` where the socket allows; by default `try_recv` each).
    fn try_recv_batch(&self, batch: &mut batch::RxBatch) {
        while batch.room() > 0 {
            let Some(slot) = batch.next_slot() else { break };
            let Some((peer, n)) = self.try_recv(slot) else {
                break;
            };
            batch.push(peer, n);
        }
    }
    /// Sends every one of `ts`, in order per peer, waiting for socket space
    /// (`sendmmsg` where the socket allows; by default `send` each).
    fn send_batch<'a>(
        &'a self,
        ts: &'a [Transmit],
    ) -> impl Future<Output = batch::Sent> + Send + 'a {
        batch::send_each(self, ts)
    }
    /// What the transport itself dropped or protected (ESP, unknown peers), for `show stats`.
    fn counters(&self) -> registrar::Counters {
        registrar::Counters::new()
    }
}
