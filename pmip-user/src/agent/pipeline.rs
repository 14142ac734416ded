//! Several store writes in flight (issue 17, docs/cluster.md "in flight"):
//! the shell reads pass N+1 and starts its write while pass N's is on its
//! way, and holds each pass's outputs (map commands, events, answers) until
//! its own write is durable, releasing them in order — so no answer goes
//! before its binding's record is written (STYLE §10), and no burst of
//! answers is larger than a pass.
//!
//! A write that etcd refuses is reported to the endpoint with the outputs
//! of every pass still held (`Endpoint::stored_held`), so it can still turn
//! its held answers into refusals and drop the map commands and events of
//! the bindings it takes back.
use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::mpsc;

use super::shell::{Io, ShellCounters};
use super::{Endpoint, Held, Transmit, Transport};
use crate::dataplane::DataPlane;
use crate::store::{Begun, Store, StoreOp};

/// Most writes in flight whatever the endpoint asks (each holds a pass).
pub(super) const MAX_IN_FLIGHT: usize = 8;

/// The passes in flight, oldest first.
pub(super) struct Pipeline<Ev> {
    writes: VecDeque<Write>,
    held: VecDeque<Held<Ev>>,
    /// The batch being built (kept: a pass of hundreds of writes would
    /// otherwise allocate tens of kilobytes each time).
    batch: Vec<StoreOp>,
}

/// The write of one pass.
enum Write {
    /// The pass wrote nothing: its outputs go once those before it have.
    None,
    Begun(Begun),
    Known(bool),
}

impl<Ev> Default for Pipeline<Ev> {
    fn default() -> Self {
        Pipeline {
            writes: VecDeque::new(),
            held: VecDeque::new(),
            batch: Vec::new(),
        }
    }
}

impl<Ev> Pipeline<Ev> {
    /// Passes held.
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether the oldest pass waits for its write.
    pub(super) fn waiting(&self) -> bool {
        matches!(self.writes.front(), Some(Write::Begun(Begun::Pending(_))))
    }

    /// Waits for the oldest pass's write (call only when [`Self::waiting`]).
    pub(super) async fn front_done(&mut self) {
        let Some(w) = self.writes.front_mut() else {
            return std::future::pending().await;
        };
        let Write::Begun(Begun::Pending(rx)) = w else {
            return;
        };
        let ok = match rx.await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!("store refused a write: {e:#}");
                false
            }
            Err(_) => false,
        };
        *w = Write::Known(ok);
    }

    /// Takes what `ep` produced since the last pass as a new pass: its
    /// writes begun, its outputs held.
    pub(super) fn take<E, S>(&mut self, ep: &mut E, store: &mut S, c: &mut ShellCounters)
    where
        E: Endpoint<Event = Ev>,
        S: Store + ?Sized,
    {
        self.batch.clear();
        self.batch.extend(std::iter::from_fn(|| ep.poll_store()));
        let mut out = Held::default();
        out.dp.extend(std::iter::from_fn(|| ep.poll_dp()));
        out.events.extend(std::iter::from_fn(|| ep.poll_event()));
        out.tx.extend(std::iter::from_fn(|| ep.poll_transmit()));
        let write = if self.batch.is_empty() {
            if out.dp.is_empty() && out.events.is_empty() && out.tx.is_empty() {
                return;
            }
            Write::None
        } else {
            c.store_batches += 1;
            Write::Begun(store.begin(&self.batch))
        };
        self.batch.clear();
        self.writes.push_back(write);
        self.held.push_back(out);
    }

    /// Releases, in order, every pass whose write is settled (telling `ep`
    /// how each went first), up to the first that still waits.
    pub(super) async fn release<E, T, D, S>(
        &mut self,
        ep: &mut E,
        io: &mut Io<'_, T, D, S>,
        events: &mpsc::UnboundedSender<Ev>,
        c: &mut ShellCounters,
    ) where
        E: Endpoint<Event = Ev>,
        T: Transport,
        D: DataPlane,
        S: Store + ?Sized,
    {
        while let Some(w) = self.writes.front_mut() {
            if let Write::Begun(Begun::Done(r)) = w {
                if let Err(e) = r {
                    tracing::warn!("store refused a write: {e:#}");
                }
                *w = Write::Known(r.is_ok());
            }
            match *w {
                Write::Begun(_) => return,
                Write::Known(ok) => {
                    if !ok {
                        c.store_errors += 1;
                    }
                    ep.stored_held(Instant::now(), ok, self.held.make_contiguous());
                }
                Write::None => {}
            }
            self.writes.pop_front();
            let out = self.held.pop_front().unwrap_or_default();
            send(out, io, events, c).await;
        }
    }
}

/// Applies a pass's map commands, then hands out its events, then sends
/// its answers (in that order, as `shell::flush` does).
async fn send<Ev, T, D, S>(
    out: Held<Ev>,
    io: &mut Io<'_, T, D, S>,
    events: &mpsc::UnboundedSender<Ev>,
    c: &mut ShellCounters,
) where
    T: Transport,
    D: DataPlane,
    S: ?Sized,
{
    for cmd in &out.dp {
        if let Err(e) = io.dp.apply(cmd) {
            c.dp_errors += 1;
            tracing::warn!("data plane refused {cmd:?}: {e:#}");
        }
    }
    for ev in out.events {
        let _ = events.send(ev);
    }
    let tx: &[Transmit] = &out.tx;
    if !tx.is_empty() {
        let sent = io.transport.send_batch(tx).await;
        c.tx_datagrams += sent.ok;
        c.tx_errors += sent.failed.len() as u64;
    }
}
