//! A registrar (MAG, LMA, PMA, HA) on real sockets inside a network
//! namespace, driven by the agent's own shell on a thread of its own; the
//! test talks to it the way the daemon does, over its request and event
//! channels.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use pmip_user::agent::shell::{self, Report, Request, ShellCounters};
use pmip_user::agent::{Endpoint, Transport};
use pmip_user::dataplane::{DataPlane, DpCommand, MemDataPlane, TrafficCounters};
use tokio::sync::{mpsc, oneshot};

use crate::netns::Netns;

/// An in-memory data plane the test can look at while the registrar runs.
#[derive(Clone, Default)]
pub struct SharedMem(pub Arc<Mutex<MemDataPlane>>);

impl SharedMem {
    pub fn get(&self) -> std::sync::MutexGuard<'_, MemDataPlane> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DataPlane for SharedMem {
    fn apply(&mut self, cmd: &DpCommand) -> anyhow::Result<()> {
        self.get().apply(cmd)
    }
    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.get().subscriber_counters(sub_id)
    }
}

/// A running registrar.
pub struct Running<E: Endpoint, D> {
    pub requests: mpsc::UnboundedSender<Request<E::Command>>,
    pub events: mpsc::UnboundedReceiver<E::Event>,
    thread: std::thread::JoinHandle<(E, D, ShellCounters)>,
}

/// Runs `ep` in `ns` over the transport `bind` opens there (inside the
/// thread's runtime); returns once the transport is bound.
pub fn start<E, T, D>(
    ns: &Netns,
    bind: impl FnOnce() -> T + Send + 'static,
    ep: E,
    dp: D,
) -> Result<Running<E, D>>
where
    E: Endpoint + Send + 'static,
    T: Transport + 'static,
    D: DataPlane + Send + 'static,
{
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = ns.thread(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let t = bind();
            let _ = ready_tx.send(());
            let (mut ep, mut dp) = (ep, dp);
            let c = shell::run(&mut ep, &t, &mut dp, req_rx, ev_tx).await;
            (ep, dp, c)
        })
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("registrar in {} did not start", ns.name))?;
    Ok(Running {
        requests: req_tx,
        events: ev_rx,
        thread,
    })
}

impl<E: Endpoint, D> Running<E, D> {
    pub fn command(&self, c: E::Command) {
        let _ = self.requests.send(Request::Command(c));
    }

    /// Bindings and counters, as `show` gets them.
    pub fn report(&self) -> Report {
        let (tx, rx) = oneshot::channel();
        let _ = self.requests.send(Request::Report(tx));
        rx.blocking_recv().unwrap_or_default()
    }

    /// The next event, waiting at most `d`.
    pub fn next_event(&mut self, d: Duration) -> Option<E::Event> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()?;
        let events = &mut self.events;
        rt.block_on(async move { tokio::time::timeout(d, events.recv()).await })
            .ok()
            .flatten()
    }

    /// Stops the shell; returns the machine, its data plane and the shell's counters.
    pub fn stop(self) -> (E, D, ShellCounters) {
        drop(self.requests);
        self.thread.join().expect("registrar thread")
    }
}
