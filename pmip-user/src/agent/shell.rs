//! The tokio driver of any [`Endpoint`] over any [`Transport`]: it moves
//! datagrams, requests and events, writes the store, applies data-plane
//! commands and arms one timer. It makes no protocol decision, holds no lock around the machine
//! (the machine lives in the shell's task; everything else talks to it over
//! channels) and never polls.
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::batch::RxBatch;
use super::pipeline::{Pipeline, MAX_IN_FLIGHT};
use super::registrar::{counters_of, BindingSummary, Counters};
use super::{Endpoint, Transport};
use crate::dataplane::DataPlane;
use crate::store::{NoStore, Store, StoreOp};

/// What the rest of the daemon sends a registrar.
#[derive(Debug)]
pub enum Request<C> {
    Command(C),
    /// Bindings and counters, for `show`.
    Report(oneshot::Sender<Report>),
}

/// A registrar's state for `show`.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub bindings: Vec<BindingSummary>,
    pub counters: Counters,
    pub shell: Counters,
    pub peers: Vec<super::registrar::PeerSummary>,
    /// The transport's own counters (ESP, unknown peers).
    pub transport: Counters,
}

/// Counters of the shell itself (socket level; protocol counters are the endpoint's).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShellCounters {
    pub rx_datagrams: u64,
    pub tx_datagrams: u64,
    pub tx_errors: u64,
    pub rx_errors: u64,
    pub dp_errors: u64,
    /// Batches written to the store, and those it refused.
    pub store_batches: u64,
    pub store_errors: u64,
}

/// The daemon's side of a running registrar: one request channel, one event channel.
pub struct Handle<C, E> {
    pub requests: mpsc::UnboundedSender<Request<C>>,
    pub events: mpsc::UnboundedReceiver<E>,
    pub task: tokio::task::JoinHandle<ShellCounters>,
}

impl<C, E> Handle<C, E> {
    /// Sends a command; false once the registrar has stopped.
    pub fn command(&self, c: C) -> bool {
        self.requests.send(Request::Command(c)).is_ok()
    }

    /// Asks for the registrar's bindings and counters.
    pub async fn report(&self) -> Option<Report> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Report(tx)).ok()?;
        rx.await.ok()
    }

    /// Closes the request channel and waits (at most `grace`) for the shell
    /// to flush what the last requests produced and stop.
    pub async fn stop(self, grace: std::time::Duration) -> Option<ShellCounters> {
        drop(self.requests);
        tokio::time::timeout(grace, self.task).await.ok()?.ok()
    }
}

/// Starts `ep` on `transport` in a task of its own, writing its durable
/// state to `store`.
pub fn spawn<E, T, D, S>(ep: E, transport: T, dp: D, store: S) -> Handle<E::Command, E::Event>
where
    E: Endpoint + Send + 'static,
    T: Transport + 'static,
    D: DataPlane + Send + 'static,
    S: Store + 'static,
{
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let (mut ep, mut dp, mut store) = (ep, dp, store);
        let io = Io {
            transport: &transport,
            dp: &mut dp,
            store: &mut store,
        };
        run_with(&mut ep, io, req_rx, ev_tx).await
    });
    Handle {
        requests: req_tx,
        events: ev_rx,
        task,
    }
}

/// Most datagrams handled per wake-up before outputs are flushed (then
/// sent in one batch), unless the endpoint asks for another
/// ([`Endpoint::pass_max`]).
pub(crate) const RX_BURST: usize = 256;
/// Largest datagram read (PMIPv4 and PMIPv6 signaling fit in far less).
const RX_BUF: usize = 65_535;

/// Runs `ep` until `requests` is closed, without a store; returns the
/// shell's counters.
pub async fn run<E: Endpoint, T: Transport, D: DataPlane>(
    ep: &mut E,
    transport: &T,
    dp: &mut D,
    requests: mpsc::UnboundedReceiver<Request<E::Command>>,
    events: mpsc::UnboundedSender<E::Event>,
) -> ShellCounters {
    let io = Io {
        transport,
        dp,
        store: &mut NoStore,
    };
    run_with(ep, io, requests, events).await
}

/// What a shell moves state to: the network, the data plane, the store.
pub struct Io<'a, T, D, S: ?Sized> {
    pub transport: &'a T,
    pub dp: &'a mut D,
    pub store: &'a mut S,
}

/// Runs `ep` over `io` until `requests` is closed; returns the shell's counters.
pub async fn run_with<E: Endpoint, T: Transport, D: DataPlane, S: Store + ?Sized>(
    ep: &mut E,
    mut io: Io<'_, T, D, S>,
    mut requests: mpsc::UnboundedReceiver<Request<E::Command>>,
    events: mpsc::UnboundedSender<E::Event>,
) -> ShellCounters {
    let mut c = ShellCounters::default();
    let mut buf = vec![0u8; RX_BUF];
    let mut batch = RxBatch::new();
    let mut out = Outputs::default();
    let transport = io.transport;
    // More than one: pass N+1 is read while pass N's write is out (pipeline.rs).
    let depth = ep.writes_in_flight().clamp(1, MAX_IN_FLIGHT);
    let mut pipe = Pipeline::default();
    loop {
        if depth == 1 {
            flush(ep, &mut io, &events, (&mut c, &mut out)).await;
        } else {
            pipe.take(ep, &mut *io.store, &mut c);
            pipe.release(ep, &mut io, &events, &mut c).await;
            // What a refusal produced (the deletes of the bindings taken
            // back) goes now, not with the next input.
            pipe.take(ep, &mut *io.store, &mut c);
        }
        let deadline = ep.poll_timeout().map(tokio::time::Instant::from_std);
        // A full pipeline reads nothing more until its oldest write ends.
        let open = pipe.len() < depth;
        tokio::select! {
            r = transport.recv(&mut buf), if open => {
                match r {
                    Ok((peer, n)) => {
                        c.rx_datagrams += 1;
                        ep.handle(Instant::now(), peer, &buf[..n]);
                    }
                    Err(e) => {
                        c.rx_errors += 1;
                        tracing::debug!("signaling receive: {e}");
                    }
                }
                // Take whatever else is queued, a batch per call, before
                // flushing the replies.
                drain(ep, transport, &mut batch, &mut c);
            }
            r = requests.recv(), if open => match r {
                Some(r) => {
                    let now = Instant::now();
                    on_request(ep, (&c, transport), now, r);
                    // Every queued request before the flush.
                    while let Ok(r) = requests.try_recv() {
                        on_request(ep, (&c, transport), now, r);
                    }
                }
                None => {
                    if depth == 1 {
                        flush(ep, &mut io, &events, (&mut c, &mut out)).await;
                    } else {
                        finish(ep, &mut io, &events, (&mut c, &mut pipe)).await;
                    }
                    return c;
                }
            },
            _ = sleep_until(deadline), if open => ep.handle_timeout(Instant::now()),
            _ = pipe.front_done(), if pipe.waiting() => {}
        }
    }
}

/// At the end: every pass taken, every write waited for, every output released.
async fn finish<E: Endpoint, T: Transport, D: DataPlane, S: Store + ?Sized>(
    ep: &mut E,
    io: &mut Io<'_, T, D, S>,
    events: &mpsc::UnboundedSender<E::Event>,
    (c, pipe): (&mut ShellCounters, &mut Pipeline<E::Event>),
) {
    loop {
        pipe.take(ep, &mut *io.store, c);
        pipe.release(ep, io, events, c).await;
        if pipe.len() == 0 {
            return;
        }
        pipe.front_done().await;
    }
}

/// Hands `ep` up to [`Endpoint::pass_max`] more queued datagrams, read in batches.
fn drain<E: Endpoint, T: Transport>(
    ep: &mut E,
    transport: &T,
    batch: &mut RxBatch,
    c: &mut ShellCounters,
) {
    let mut taken = 0;
    let max = ep.pass_max().max(1);
    while taken < max {
        batch.clear();
        transport.try_recv_batch(batch);
        c.rx_errors += std::mem::take(&mut batch.truncated);
        // Slots taken, kept or dropped (a filter's drops do not end the drain).
        let used = batch.slots_used();
        if used == 0 {
            break;
        }
        let now = Instant::now();
        for (peer, data) in batch.iter() {
            c.rx_datagrams += 1;
            ep.handle(now, peer, data);
        }
        taken += used;
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn on_request<E: Endpoint, T: Transport>(
    ep: &mut E,
    (c, transport): (&ShellCounters, &T),
    now: Instant,
    r: Request<E::Command>,
) {
    match r {
        Request::Command(cmd) => ep.command(now, cmd),
        Request::Report(tx) => {
            let _ = tx.send(Report {
                bindings: ep.bindings(now),
                counters: ep.counters(),
                shell: counters_of(c),
                peers: ep.peers(),
                transport: transport.counters(),
            });
        }
    }
}

/// A pass's writes and datagrams, kept from one flush to the next: a
/// pass of hundreds of registrations would otherwise allocate and free
/// tens of kilobytes each time (and glibc consolidates its free lists on
/// every such allocation).
struct Outputs<T> {
    store: Vec<StoreOp>,
    tx: Vec<T>,
}

impl<T> Default for Outputs<T> {
    fn default() -> Self {
        Outputs {
            store: Vec::new(),
            tx: Vec::new(),
        }
    }
}

/// Writes the store first, in one batch (a binding is durable before the
/// peer or the subscriber hears of it, STYLE §10), then applies data-plane
/// commands (a subscriber's entry is in the maps before the peer or the
/// access side hears of it), then events, then sends.
async fn flush<E: Endpoint, T: Transport, D: DataPlane, S: Store + ?Sized>(
    ep: &mut E,
    io: &mut Io<'_, T, D, S>,
    events: &mpsc::UnboundedSender<E::Event>,
    (c, out): (&mut ShellCounters, &mut Outputs<super::Transmit>),
) {
    let batch = &mut out.store;
    batch.clear();
    batch.extend(std::iter::from_fn(|| ep.poll_store()));
    if !batch.is_empty() {
        c.store_batches += 1;
        // A store that refuses a write does not stop service: a refreshed
        // binding goes on in memory and in the maps, and the next write
        // retries the record (each write carries the whole record); a new
        // one is refused instead of acknowledged (`Endpoint::stored`).
        let written = io.store.apply(batch);
        if let Err(e) = &written {
            c.store_errors += 1;
            tracing::warn!("store refused {} write(s): {e:#}", batch.len());
        }
        ep.stored(Instant::now(), written.is_ok());
    }
    let (transport, dp) = (io.transport, &mut *io.dp);
    while let Some(cmd) = ep.poll_dp() {
        if let Err(e) = dp.apply(&cmd) {
            c.dp_errors += 1;
            tracing::warn!("data plane refused {cmd:?}: {e:#}");
        }
    }
    while let Some(ev) = ep.poll_event() {
        let _ = events.send(ev);
    }
    let tx = &mut out.tx;
    tx.clear();
    tx.extend(std::iter::from_fn(|| ep.poll_transmit()));
    if !tx.is_empty() {
        let sent = transport.send_batch(tx).await;
        c.tx_datagrams += sent.ok;
        c.tx_errors += sent.failed.len() as u64;
        // The payloads go now; the room stays.
        tx.clear();
    }
    out.store.clear();
}
