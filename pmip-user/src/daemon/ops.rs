//! What makes the daemon a service an operator runs: the metrics endpoint,
//! the signaling meter it reads, systemd's readiness / watchdog / reload
//! protocol, SIGHUP, and the fast path's security counters turned into
//! (bounded) log lines. Started by [`super::run`] around the role's runner.
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;

use super::fastpath::SharedDp;
use super::notify;
use crate::agent::Transport;
use crate::config::{Config, Protocol};
use crate::ctl::{self, Request, Response};
use crate::metrics::{self, Metered, Recorder};

/// The running service plumbing; wraps the registrar's transport.
pub(super) struct Ops {
    recorder: Recorder,
}

impl Ops {
    /// Starts the metrics endpoint (if configured), the watchdog (if systemd
    /// asks for one), SIGHUP handling and the security watch.
    pub(super) fn start(
        cfg: &Config,
        ask: &ctl::Handler,
        dp: &SharedDp,
        ebpf_build_id: String,
    ) -> Result<Ops> {
        let peers: Vec<(IpAddr, String)> = cfg
            .peers
            .iter()
            .map(|p| (p.address, p.name.clone()))
            .collect();
        let recorder = Recorder::new(cfg.protocol, peers);
        if let Some(listen) = cfg.metrics.listen {
            let window = cfg
                .timers
                .heartbeat_interval
                .map(|i| i * u32::from(cfg.timers.heartbeat_misses.max(1)));
            metrics::spawn(
                listen,
                metrics::Source {
                    ask: ask.clone(),
                    recorder: recorder.clone(),
                    role: super::control::role_name(cfg),
                    protocol: match cfg.protocol {
                        Protocol::Pmipv6 => "pmipv6",
                        Protocol::Pmipv4 => "pmipv4",
                    },
                    peer_window: window,
                    ebpf_build_id,
                },
            )?;
        }
        if let Some(period) = notify::watchdog_period() {
            tracing::info!(
                ?period,
                "systemd watchdog on: keep-alives after each answered ping"
            );
            tokio::spawn(notify::watchdog(period, ask.clone(), notify::keepalive));
        }
        spawn_sighup(ask.clone())?;
        tokio::spawn(security_watch(dp.clone(), SECURITY_WATCH));
        Ok(Ops { recorder })
    }

    /// The registrar's transport, counting what it moves.
    pub(super) fn meter<T: Transport>(&self, t: T) -> Metered<T> {
        Metered::new(t, self.recorder.clone())
    }
}

/// SIGHUP re-reads the configuration, as `pmipctl reload` does.
fn spawn_sighup(ask: ctl::Handler) -> Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match ask(Request::Reload).await {
                Response::Reloaded { .. } => {}
                other => tracing::debug!(?other, "SIGHUP reload"),
            }
        }
    });
    Ok(())
}

/// How often the fast path's security counters are looked at.
const SECURITY_WATCH: Duration = Duration::from_secs(10);

/// The fast path's drops that someone else's packets cause on purpose or by
/// mistake: spoofed inner sources, GRE from a peer that does not own the
/// key, unknown keys. Logged at warn as one summary line per counter per
/// period while they grow — bounded whatever the flood.
async fn security_watch(dp: SharedDp, every: Duration) {
    const WATCHED: [&str; 3] = ["drop_spoofed_source", "drop_wrong_peer", "drop_unknown_key"];
    // The first look only learns the counters (pinned maps may carry an
    // earlier run's totals).
    let mut last: Option<[u64; 3]> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Ok(Ok(counters)) = dp.with(|f| f.counters()) else {
            continue;
        };
        let value = |name: &str| {
            counters
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v)
        };
        let now = WATCHED.map(value);
        if let Some(prev) = last {
            for (i, name) in WATCHED.iter().enumerate() {
                if now[i] > prev[i] {
                    tracing::warn!(
                        security = true,
                        event = *name,
                        packets = now[i] - prev[i],
                        period_s = every.as_secs(),
                        "fast path dropped packets: {name}"
                    );
                }
            }
        }
        last = Some(now);
    }
}
