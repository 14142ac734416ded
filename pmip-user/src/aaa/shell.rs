//! The tokio shells around [`AaaClient`] and [`DaeServer`]: they only move datagrams,
//! commands and events, and arm one timer.
//!
//! ```ignore
//! let (aaa, mut events) = aaa::shell::spawn_client(cfg.clone(), None).await?;
//! match aaa.authorize(subscriber).await { AuthOutcome::Accept(p) => .., _ => default profile }
//! aaa.session_start(session, profile.interim_interval);
//! while let Some(AaaEvent::InterimDue { session_id }) = events.recv().await {
//!     aaa.session_update(session_id, counters_from_the_fast_path);
//! }
//! ```
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::accounting::{load_spool, save_spool, AcctRecord, AcctSession, TerminateCause, Traffic};
use super::authz::{AuthOutcome, Subscriber};
use super::client::{AaaClient, AaaEvent, Transmit};
use super::config::AaaConfig;
use super::dae::{DaeRequest, DaeServer, DaeStats, ErrorCause};
use super::stats::AaaStats;
use super::wire::auth::AuthenticatorSource;
use super::wire::MAX_LEN;

/// How often undelivered accounting is written to the spool while any is queued.
const SPOOL_EVERY: Duration = Duration::from_secs(1);

enum Cmd {
    Authorize(Subscriber, oneshot::Sender<AuthOutcome>),
    Start(AcctSession, Option<Duration>),
    Update(String, Traffic),
    Stop(String, Traffic, TerminateCause),
    Account(AcctRecord),
    Stats(oneshot::Sender<AaaStats>),
    Shutdown(oneshot::Sender<Vec<AcctRecord>>),
}

/// The agent's side of the RADIUS client.
#[derive(Clone)]
pub struct AaaHandle {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl AaaHandle {
    /// The outcome of an authorization (Timeout if the client task is gone).
    pub async fn authorize(&self, sub: Subscriber) -> AuthOutcome {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Authorize(sub, tx)).is_err() {
            return AuthOutcome::Timeout;
        }
        rx.await.unwrap_or(AuthOutcome::Timeout)
    }
    pub fn session_start(&self, session: AcctSession, interim: Option<Duration>) {
        let _ = self.tx.send(Cmd::Start(session, interim));
    }
    pub fn session_update(&self, session_id: String, traffic: Traffic) {
        let _ = self.tx.send(Cmd::Update(session_id, traffic));
    }
    pub fn session_stop(&self, session_id: String, traffic: Traffic, cause: TerminateCause) {
        let _ = self.tx.send(Cmd::Stop(session_id, traffic, cause));
    }
    pub fn account(&self, rec: AcctRecord) {
        let _ = self.tx.send(Cmd::Account(rec));
    }
    pub async fn stats(&self) -> Option<AaaStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats(tx)).ok()?;
        rx.await.ok()
    }
    /// Stops the client; returns the records still undelivered (also written to the spool).
    pub async fn shutdown(&self) -> Vec<AcctRecord> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// One source port, per address family in use.
struct SourcePort {
    v4: Option<Arc<UdpSocket>>,
    v6: Option<Arc<UdpSocket>>,
}

async fn open_sockets(
    cfg: &AaaConfig,
    local: Option<IpAddr>,
    rx_tx: &mpsc::Sender<(usize, SocketAddr, Vec<u8>)>,
) -> io::Result<Vec<SourcePort>> {
    let need_v4 = cfg.servers.iter().any(|s| s.address.is_ipv4());
    let need_v6 = cfg.servers.iter().any(|s| s.address.is_ipv6());
    let v4_local = match local {
        Some(IpAddr::V4(a)) => a,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let v6_local = match local {
        Some(IpAddr::V6(a)) => a,
        _ => Ipv6Addr::UNSPECIFIED,
    };
    let mut ports = Vec::new();
    for i in 0..usize::from(cfg.source_ports.max(1)) {
        let mut p = SourcePort { v4: None, v6: None };
        if need_v4 {
            p.v4 = Some(Arc::new(bind(IpAddr::V4(v4_local), 0).await?));
        }
        if need_v6 {
            p.v6 = Some(Arc::new(bind(IpAddr::V6(v6_local), 0).await?));
        }
        for s in [&p.v4, &p.v6].into_iter().flatten() {
            tokio::spawn(read_loop(i, s.clone(), rx_tx.clone()));
        }
        ports.push(p);
    }
    Ok(ports)
}

/// A UDP socket with 4 MiB buffers (past `rmem_max` with CAP_NET_ADMIN): replies to a
/// window of pipelined requests arrive in one burst.
async fn bind(ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
    use std::os::fd::AsRawFd;
    let s = UdpSocket::bind((ip, port)).await?;
    let size: libc::c_int = 4 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        for opt in [force, plain] {
            // SAFETY: a valid socket, a pointer to a c_int and its length; failing only
            // leaves the default size.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
    }
    Ok(s)
}

async fn read_loop(i: usize, s: Arc<UdpSocket>, tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>) {
    let mut buf = vec![0u8; MAX_LEN + 1];
    loop {
        match s.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if tx.send((i, from, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("RADIUS socket {i}: {e}"),
        }
    }
}

async fn send(ports: &[SourcePort], t: Transmit) {
    let Some(p) = ports.get(t.socket) else {
        return;
    };
    let s = if t.dest.is_ipv4() { &p.v4 } else { &p.v6 };
    if let Some(s) = s {
        if let Err(e) = s.send_to(&t.payload, t.dest).await {
            tracing::debug!("RADIUS send to {}: {e}", t.dest);
        }
    }
}

/// Starts the RADIUS client task. `local` is the source address for its family (default:
/// chosen by the kernel). Undelivered records of the spool file, if configured, are queued
/// again first. Returns the handle and the events the agent acts on (`InterimDue`,
/// `AccountingDropped`); authorization outcomes come back through `authorize` itself.
pub async fn spawn_client(
    cfg: AaaConfig,
    local: Option<IpAddr>,
) -> io::Result<(AaaHandle, mpsc::UnboundedReceiver<AaaEvent>)> {
    let (rx_tx, rx) = mpsc::channel(4096);
    let ports = open_sockets(&cfg, local, &rx_tx).await?;
    let now = Instant::now();
    let mut client = AaaClient::new(cfg, now, SystemTime::now(), AuthenticatorSource::from_os()?);
    if let Some(path) = client.config().accounting.spool.clone() {
        let (recs, bad) = load_spool(&path)?;
        if bad > 0 {
            tracing::warn!(
                "{}: {bad} unreadable accounting records skipped",
                path.display()
            );
        }
        for r in recs {
            client.account(now, r);
        }
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(client_loop(client, ports, cmd_rx, rx, ev_tx));
    Ok((AaaHandle { tx: cmd_tx }, ev_rx))
}

struct Loop {
    client: AaaClient,
    ports: Vec<SourcePort>,
    waiting: HashMap<u64, oneshot::Sender<AuthOutcome>>,
    events: mpsc::UnboundedSender<AaaEvent>,
    spool_dirty: bool,
}

impl Loop {
    fn command(&mut self, now: Instant, c: Cmd) -> Option<oneshot::Sender<Vec<AcctRecord>>> {
        match c {
            Cmd::Authorize(sub, tx) => {
                let id = self.client.authorize(now, sub);
                self.waiting.insert(id, tx);
            }
            Cmd::Start(s, i) => self.client.session_start(now, s, i),
            Cmd::Update(id, t) => {
                self.client.session_update(now, &id, t);
            }
            Cmd::Stop(id, t, c) => {
                self.client.session_stop(now, &id, t, c);
            }
            Cmd::Account(r) => self.client.account(now, r),
            Cmd::Stats(tx) => {
                let _ = tx.send(self.client.stats());
            }
            Cmd::Shutdown(tx) => return Some(tx),
        }
        self.spool_dirty = true;
        None
    }

    async fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            send(&self.ports, t).await;
        }
        while let Some(e) = self.client.poll_event() {
            match e {
                AaaEvent::Authorized { request, outcome } => {
                    if let Some(tx) = self.waiting.remove(&request) {
                        let _ = tx.send(outcome);
                    }
                }
                other => {
                    let _ = self.events.send(other);
                }
            }
        }
    }

    fn save_spool(&mut self) {
        if let Some(path) = &self.client.config().accounting.spool {
            if let Err(e) = save_spool(path, &self.client.undelivered()) {
                tracing::warn!("accounting spool {}: {e}", path.display());
            }
        }
        self.spool_dirty = false;
    }
}

async fn client_loop(
    client: AaaClient,
    ports: Vec<SourcePort>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut rx: mpsc::Receiver<(usize, SocketAddr, Vec<u8>)>,
    events: mpsc::UnboundedSender<AaaEvent>,
) {
    let mut l = Loop {
        client,
        ports,
        waiting: HashMap::new(),
        events,
        spool_dirty: false,
    };
    let mut spool_tick = tokio::time::interval(SPOOL_EVERY);
    loop {
        let deadline = l.client.poll_timeout();
        let timer = crate::sys::sleep_until(deadline);
        tokio::select! {
            c = cmds.recv() => {
                let Some(c) = c else { break };
                if let Some(done) = l.command(Instant::now(), c) {
                    l.flush().await;
                    l.save_spool();
                    let _ = done.send(l.client.undelivered());
                    return;
                }
            }
            d = rx.recv() => {
                let Some((i, from, bytes)) = d else { break };
                let now = Instant::now();
                l.client.handle(now, i, canonical(from), &bytes);
                // Take what else has arrived in one go: fewer wake-ups under load.
                while let Ok((i, from, bytes)) = rx.try_recv() {
                    l.client.handle(now, i, canonical(from), &bytes);
                }
                l.spool_dirty = true;
            }
            _ = timer => l.client.handle_timeout(Instant::now()),
            _ = spool_tick.tick() => {
                if l.spool_dirty && l.client.config().accounting.spool.is_some() {
                    l.save_spool();
                }
            }
        }
        l.flush().await;
    }
    l.save_spool();
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

enum DaeCmd {
    Respond(u64, Result<(), ErrorCause>),
    Stats(oneshot::Sender<DaeStats>),
}

/// The agent's side of the DAE listener.
#[derive(Clone)]
pub struct DaeHandle {
    tx: mpsc::UnboundedSender<DaeCmd>,
    pub local: SocketAddr,
}

impl DaeHandle {
    /// Answers a request: `Ok(())` for ACK, `Err(cause)` for NAK.
    pub fn respond(&self, token: u64, result: Result<(), ErrorCause>) {
        let _ = self.tx.send(DaeCmd::Respond(token, result));
    }
    pub async fn stats(&self) -> Option<DaeStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(DaeCmd::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

/// Starts the RFC 5176 listener on `aaa.dae.listen`:`aaa.dae.port`.
pub async fn spawn_dae(cfg: AaaConfig) -> io::Result<(DaeHandle, mpsc::Receiver<DaeRequest>)> {
    let ip = cfg.dae.listen.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let sock = bind(ip, cfg.dae.port).await?;
    let local = sock.local_addr()?;
    let (tx, mut cmds) = mpsc::unbounded_channel();
    let (req_tx, req_rx) = mpsc::channel(1024);
    let mut dae = DaeServer::new(cfg, Instant::now(), SystemTime::now());
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_LEN + 1];
        loop {
            let deadline = dae.poll_timeout();
            let timer = crate::sys::sleep_until(deadline);
            tokio::select! {
                r = sock.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    if let Some(req) = dae.handle(Instant::now(), canonical(from), &buf[..n]) {
                        if req_tx.send(req).await.is_err() {
                            return;
                        }
                    }
                }
                c = cmds.recv() => match c {
                    Some(DaeCmd::Respond(t, r)) => dae.respond(t, r),
                    Some(DaeCmd::Stats(tx)) => { let _ = tx.send(dae.stats()); }
                    None => return,
                },
                _ = timer => dae.handle_timeout(Instant::now()),
            }
            while let Some(t) = dae.poll_transmit() {
                let dest = match (local, t.dest) {
                    (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                        SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                    }
                    (_, d) => d,
                };
                let _ = sock.send_to(&t.payload, dest).await;
            }
        }
    });
    Ok((DaeHandle { tx, local }, req_rx))
}
