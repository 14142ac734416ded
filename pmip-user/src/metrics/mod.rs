//! The OpenMetrics / Prometheus endpoint (`[metrics] listen`, off by
//! default): `GET /metrics` answers with the daemon's counters as metric
//! families (see [`export`] for the list).
//!
//! A scrape asks the daemon's event loop for `show counters` — the same
//! report `pmipctl show stats` is built from (daemon/control.rs), without
//! the per-subscriber table — and adds the signaling seen on the wire
//! ([`signaling`]). The fast path's counters come from batch map reads:
//! the packet path pays nothing for a scrape.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ctl::{self, Request, Response};

pub(crate) mod export;
mod http;
pub(crate) mod signaling;

pub(crate) use signaling::{Metered, Recorder};

/// What a scrape reads from.
pub(crate) struct Source {
    /// The daemon's request path (the control socket's handler).
    pub ask: ctl::Handler,
    pub recorder: Recorder,
    pub role: &'static str,
    pub protocol: &'static str,
    /// See [`export::Snapshot::peer_window`].
    pub peer_window: Option<Duration>,
    pub ebpf_build_id: String,
}

impl Source {
    /// Gathers one scrape and renders it.
    pub(crate) async fn scrape(&self, format: export::Format) -> Result<String> {
        let taken = Instant::now();
        let stats =
            match tokio::time::timeout(Duration::from_secs(5), (self.ask)(Request::ShowCounters))
                .await
            {
                Ok(Response::Stats(s)) => s,
                Ok(other) => bail!("the daemon answered {other:?}"),
                Err(_) => bail!("the daemon did not answer within 5 s"),
            };
        let (messages, heard) = self.recorder.snapshot();
        let peers = self
            .recorder
            .peer_names()
            .into_iter()
            .map(|p| {
                let ago = heard.get(&p).map(|t| t.elapsed());
                (p, ago)
            })
            .collect();
        let snap = export::Snapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            ebpf_build_id: self.ebpf_build_id.clone(),
            role: self.role,
            protocol: self.protocol,
            stats,
            messages,
            peers,
            peer_window: self.peer_window,
            taken,
        };
        export::render(snap, format).context("encoding the metrics")
    }
}

/// Binds `listen` (now, so a taken port fails the start) and serves it.
/// Returns the address bound.
pub(crate) fn spawn(listen: SocketAddr, src: Source) -> Result<SocketAddr> {
    let std = std::net::TcpListener::bind(listen)
        .with_context(|| format!("metrics.listen {listen}: binding"))?;
    std.set_nonblocking(true)?;
    let addr = std.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(std)?;
    tokio::spawn(http::serve(listener, Arc::new(src)));
    tracing::info!(%addr, "metrics endpoint: GET /metrics");
    Ok(addr)
}
