//! The I/O shell: one UDP 434 socket, one timer (from `poll_timeout`), and the data plane.
//! It moves bytes and commands in and out of a sans-IO [`Endpoint`] (PMA or HA) and does
//! nothing else; all protocol decisions live in the state machine.
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::{Endpoint, Transmit};
use crate::dataplane::DataPlane;
use crate::sys::socket::grow_receive_buffer;

/// Shell statistics (socket-level; protocol counters live in the state machine).
#[derive(Debug, Default)]
pub struct ShellStats {
    pub rx_datagrams: AtomicU64,
    pub tx_datagrams: AtomicU64,
    pub tx_errors: AtomicU64,
    pub rx_non_ipv4: AtomicU64,
    pub dp_errors: AtomicU64,
}

/// A state machine shared between the shell task and the rest of the daemon.
pub struct Shell<M> {
    machine: Arc<Mutex<M>>,
    wake: Arc<Notify>,
    pub stats: Arc<ShellStats>,
}

impl<M> Clone for Shell<M> {
    fn clone(&self) -> Self {
        Shell {
            machine: self.machine.clone(),
            wake: self.wake.clone(),
            stats: self.stats.clone(),
        }
    }
}

fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    // A panic elsewhere must not take signaling down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M: Endpoint + Send + 'static> Shell<M> {
    pub fn new(machine: M) -> Self {
        Shell {
            machine: Arc::new(Mutex::new(machine)),
            wake: Arc::new(Notify::new()),
            stats: Arc::new(ShellStats::default()),
        }
    }

    /// Runs `f` on the state machine (e.g. `attach`, or reading counters) and wakes the
    /// shell so new datagrams and deadlines are picked up at once.
    pub fn with<R>(&self, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let r = f(&mut lock(&self.machine), Instant::now());
        self.wake.notify_one();
        r
    }

    /// Drains data-plane commands and datagrams to send.
    fn drain<D: DataPlane>(&self, dp: &Mutex<D>) -> Vec<Transmit> {
        let mut m = lock(&self.machine);
        let mut d = lock(dp);
        while let Some(c) = m.poll_dp() {
            if d.apply(&c).is_err() {
                self.stats.dp_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::iter::from_fn(|| m.poll_transmit()).collect()
    }

    /// Serves `socket` until `stop` is set.
    pub async fn run<D: DataPlane + Send>(
        &self,
        socket: UdpSocket,
        dp: Arc<Mutex<D>>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 65_535];
        while !stop.load(Ordering::Relaxed) {
            for t in self.drain(&dp) {
                match socket.send_to(&t.payload, SocketAddr::V4(t.dst)).await {
                    Ok(_) => self.stats.tx_datagrams.fetch_add(1, Ordering::Relaxed),
                    Err(_) => self.stats.tx_errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            let deadline = lock(&self.machine).poll_timeout();
            // Wake at least every 100 ms to notice `stop`.
            let cap = Instant::now() + Duration::from_millis(100);
            let wake_at = deadline.map_or(cap, |d| d.min(cap));
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    let (n, src) = r?;
                    self.on_datagram(src, &buf[..n]);
                    // Take whatever else is queued before flushing replies.
                    while let Ok((n, src)) = socket.try_recv_from(&mut buf) {
                        self.on_datagram(src, &buf[..n]);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake_at)) => {}
                _ = self.wake.notified() => {}
            }
            let now = Instant::now();
            let mut m = lock(&self.machine);
            if m.poll_timeout().is_some_and(|d| d <= now) {
                m.handle_timeout(now);
            }
        }
        Ok(())
    }

    fn on_datagram(&self, src: SocketAddr, payload: &[u8]) {
        self.stats.rx_datagrams.fetch_add(1, Ordering::Relaxed);
        let SocketAddr::V4(src) = src else {
            self.stats.rx_non_ipv4.fetch_add(1, Ordering::Relaxed);
            return;
        };
        lock(&self.machine).handle(Instant::now(), src, payload);
    }

    /// Binds `bind` and serves it on a current-thread runtime until `stop` is set. Call it on
    /// a thread of its own (e.g. inside a network namespace).
    pub fn run_blocking<D: DataPlane + Send>(
        &self,
        bind: SocketAddrV4,
        dp: Arc<Mutex<D>>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let socket = UdpSocket::bind(bind).await?;
            grow_receive_buffer(&socket, 4 << 20);
            self.run(socket, dp, stop).await
        })
    }
}
