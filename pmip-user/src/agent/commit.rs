//! Group commit in the shell: while one store write is on its way (a
//! distributed store, etcd, answers in milliseconds), the registrar goes on
//! taking datagrams, and everything they produce waits for the next write,
//! which carries all of it at once. What a write covers — the data-plane
//! commands, events and datagrams produced with it — is held here and
//! released only once the write is durable (a binding is durable before the
//! peer or the subscriber hears of it, STYLE §10), in the order it was made.
//!
//! ```text
//!  input ─▶ endpoint ─▶ store ops ─┬─▶ write N (in flight) ── durable ──▶ release N's outputs
//!                                   └─▶ (accumulate N+1 meanwhile) ───────▶ write N+1 at once
//! ```
//!
//! A store that writes synchronously (the embedded redb file, memory)
//! answers [`Begun::Done`] and nothing is held: the shell then behaves as
//! if it called `apply` itself.
use super::{Endpoint, Transmit};
use crate::dataplane::DpCommand;
use crate::store::{Begun, StoreWrite};

/// What an endpoint produced besides store writes, in its order.
pub(crate) struct Outputs<Ev> {
    pub(crate) dp: Vec<DpCommand>,
    pub(crate) events: Vec<Ev>,
    pub(crate) out: Vec<Transmit>,
}

impl<Ev> Outputs<Ev> {
    /// Everything `ep` has queued.
    pub(crate) fn take<E: Endpoint<Event = Ev>>(ep: &mut E) -> Outputs<Ev> {
        Outputs {
            dp: std::iter::from_fn(|| ep.poll_dp()).collect(),
            events: std::iter::from_fn(|| ep.poll_event()).collect(),
            out: std::iter::from_fn(|| ep.poll_transmit()).collect(),
        }
    }
}

/// A write on its way and the outputs that wait for it.
pub(crate) struct Held<Ev> {
    write: StoreWrite,
    /// Operations in the write (for the log when it fails).
    pub(crate) ops: usize,
    pub(crate) outputs: Outputs<Ev>,
}

/// What [`begin`] left to do.
pub(crate) enum Step<Ev> {
    /// The store wrote synchronously (with this result): send now.
    Now(anyhow::Result<()>),
    /// The write is on its way: these outputs wait for it.
    Wait(Held<Ev>),
}

/// Takes every output `ep` has queued so far into a [`Held`] for `begun`,
/// a write of `ops` operations (or lets them go when the store already wrote).
pub(crate) fn begin<E: Endpoint>(ep: &mut E, begun: Begun, ops: usize) -> Step<E::Event> {
    match begun {
        Begun::Done(r) => Step::Now(r),
        Begun::Writing(write) => Step::Wait(Held {
            write,
            ops,
            outputs: Outputs::take(ep),
        }),
    }
}

/// Waits for the held write (forever when nothing is held, for `select!`).
pub(crate) async fn written<Ev>(held: &mut Option<Held<Ev>>) -> anyhow::Result<()> {
    match held {
        Some(h) => (&mut h.write).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::registrar::{BindingSummary, Counters};
    use crate::agent::shell::{run_with, Io, Request};
    use crate::agent::{Peer, Transport};
    use crate::dataplane::MemDataPlane;
    use crate::store::{NodeRecord, Record, RecordKey, Restored, Store, StoreOp};
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Instant;
    use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

    /// A store whose writes end when the test says so.
    struct Gate(mpsc::UnboundedSender<(Vec<StoreOp>, oneshot::Sender<()>)>);

    impl Store for Gate {
        fn scan(&mut self) -> anyhow::Result<Vec<(RecordKey, Record)>> {
            Ok(Vec::new())
        }
        fn apply(&mut self, _: &[StoreOp]) -> anyhow::Result<()> {
            panic!("the shell waited for the write instead of beginning it");
        }
        fn durable(&self) -> bool {
            true
        }
        fn begin(&mut self, batch: &[StoreOp]) -> Begun {
            let (tx, rx) = oneshot::channel();
            let _ = self.0.send((batch.to_vec(), tx));
            Begun::Writing(Box::pin(async move {
                rx.await.map_err(|_| anyhow::anyhow!("gate dropped"))
            }))
        }
    }

    /// Datagrams in over a channel, out over another.
    struct Chan {
        rx: AsyncMutex<mpsc::UnboundedReceiver<Vec<u8>>>,
        tx: mpsc::UnboundedSender<Vec<u8>>,
    }

    fn peer() -> Peer {
        Peer::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 5436))
    }

    impl Transport for Chan {
        async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
            let d = self.rx.lock().await.recv().await;
            let d = d.ok_or_else(|| io::Error::other("closed"))?;
            buf[..d.len()].copy_from_slice(&d);
            Ok((peer(), d.len()))
        }
        fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
            let d = self.rx.try_lock().ok()?.try_recv().ok()?;
            buf[..d.len()].copy_from_slice(&d);
            Some((peer(), d.len()))
        }
        async fn send(&self, t: &Transmit) -> io::Result<()> {
            let _ = self.tx.send(t.payload.to_vec());
            Ok(())
        }
    }

    /// Writes a record for each datagram and answers it with the same bytes.
    #[derive(Default)]
    struct Echo {
        handled: u64,
        store: Vec<StoreOp>,
        out: Vec<Transmit>,
    }

    impl Endpoint for Echo {
        type Command = ();
        type Event = ();
        fn handle(&mut self, _: Instant, from: Peer, data: &[u8]) {
            self.handled += 1;
            let rec = NodeRecord {
                restart_counter: u32::from(data[0]),
            };
            self.store
                .push(StoreOp::Put(RecordKey::Node, Record::Node(rec)));
            self.out.push(Transmit::new(from, data.to_vec()));
        }
        fn command(&mut self, _: Instant, _: ()) {}
        fn poll_transmit(&mut self) -> Option<Transmit> {
            (!self.out.is_empty()).then(|| self.out.remove(0))
        }
        fn poll_dp(&mut self) -> Option<DpCommand> {
            None
        }
        fn poll_store(&mut self) -> Option<StoreOp> {
            (!self.store.is_empty()).then(|| self.store.remove(0))
        }
        fn restore(&mut self, _: Instant, _: Vec<(RecordKey, Record)>) -> Restored {
            Restored::default()
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _: Instant) {}
        fn bindings(&self, _: Instant) -> Vec<BindingSummary> {
            Vec::new()
        }
        fn counters(&self) -> Counters {
            [("handled".to_string(), self.handled)].into()
        }
    }

    /// Asks the shell until the endpoint has handled `n` datagrams: the
    /// shell answers requests while a write is on its way.
    async fn handled(req: &mpsc::UnboundedSender<Request<()>>, n: u64) {
        loop {
            let (tx, rx) = oneshot::channel();
            req.send(Request::Report(tx)).unwrap();
            if rx.await.unwrap().counters["handled"] >= n {
                return;
            }
        }
    }

    /// Nothing is sent before its write is durable; what arrives meanwhile
    /// is handled at once and written in the next write, all together.
    #[test]
    fn input_goes_on_during_a_write_and_answers_wait_for_theirs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let (out_tx, mut out) = mpsc::unbounded_channel();
            let (gate_tx, mut writes) = mpsc::unbounded_channel();
            let (req_tx, req_rx) = mpsc::unbounded_channel();
            let (ev_tx, _ev) = mpsc::unbounded_channel();
            let shell = tokio::spawn(async move {
                let t = Chan {
                    rx: AsyncMutex::new(in_rx),
                    tx: out_tx,
                };
                let (mut ep, mut dp, mut store) =
                    (Echo::default(), MemDataPlane::default(), Gate(gate_tx));
                let io = Io {
                    transport: &t,
                    dp: &mut dp,
                    store: &mut store,
                };
                run_with(&mut ep, io, req_rx, ev_tx).await
            });
            in_tx.send(vec![1]).unwrap();
            let (w1, done1) = writes.recv().await.unwrap();
            assert_eq!(w1.len(), 1);
            in_tx.send(vec![2]).unwrap();
            in_tx.send(vec![3]).unwrap();
            handled(&req_tx, 3).await;
            assert!(
                out.try_recv().is_err(),
                "an answer went out before its write"
            );
            assert!(writes.try_recv().is_err(), "one write at a time");
            done1.send(()).unwrap();
            assert_eq!(out.recv().await.unwrap(), vec![1]);
            let (w2, done2) = writes.recv().await.unwrap();
            assert_eq!(w2.len(), 2, "both datagrams of the wait in one write");
            assert!(out.try_recv().is_err(), "2 and 3 wait for the second write");
            done2.send(()).unwrap();
            assert_eq!(out.recv().await.unwrap(), vec![2]);
            assert_eq!(out.recv().await.unwrap(), vec![3]);
            drop(req_tx);
            let c = shell.await.unwrap();
            assert_eq!((c.store_batches, c.tx_datagrams), (2, 3));
        });
    }
}
