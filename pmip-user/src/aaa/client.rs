//! The RADIUS client, sans-IO (quinn-proto style): requests in, datagrams out.
//!
//! - `authorize(now, subscriber)` → a [`RequestId`]; later `poll_event` yields
//!   [`AaaEvent::Authorized`] with the [`AuthOutcome`].
//! - `session_start` / `session_update` / `session_stop` → Accounting-Requests, kept in a
//!   queue until a server acknowledges them; `poll_event` yields [`AaaEvent::InterimDue`] when
//!   a session's Interim-Update is due (the agent answers with `session_update` and the
//!   counters of the fast path).
//! - `handle(now, socket, from, bytes)` for every datagram received; `poll_transmit` for what
//!   to send (on which of the `source_ports` sockets); `poll_timeout`/`handle_timeout(now)`.
//!
//! Timing follows IOS `radius-server retransmit N timeout T`: a request is sent, then sent
//! again up to N times, T apart (same Identifier and authenticators, RFC 5080 §2.2.1); after
//! that the next server in order gets it under a new Identifier. `deadtime_s` > 0 makes a
//! server that let a request run out be skipped for that long. Identifiers are per (source
//! socket, server address and port), so each socket gives each server 256 requests in flight.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::accounting::{
    accounting_request, AcctRecord, AcctSession, AcctStatus, TerminateCause, Traffic,
};
use super::acct_queue::AcctQueue;
use super::authz::{access_request, AuthOutcome, Profile, Subscriber};
use super::config::AaaConfig;
use super::stats::{AaaStats, ServerStats};
use super::wire::auth::{self, AuthenticatorSource};
use super::wire::{Code, Packet};

/// Names one authorization.
pub type RequestId = u64;

/// A datagram to send from source socket `socket` (0..`source_ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub socket: usize,
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
}

/// What the client tells the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AaaEvent {
    Authorized {
        request: RequestId,
        outcome: AuthOutcome,
    },
    /// Time for the session's Interim-Update: answer with `session_update`.
    InterimDue { session_id: String },
    /// The accounting queue was full and this record had to go (also counted).
    AccountingDropped { record: AcctRecord },
}

enum Job {
    Auth { request: RequestId, sub: Subscriber },
    Acct { seq: u64 },
}

struct InFlight {
    job: Job,
    server: usize,
    slot: (usize, SocketAddr, u8),
    req_auth: [u8; 16],
    bytes: Vec<u8>,
    sends: u8,
    timer: TimerKey,
}

/// A request as it went out: where, with which authenticator, which bytes.
struct Sent {
    slot: (usize, SocketAddr, u8),
    req_auth: [u8; 16],
    bytes: Vec<u8>,
}

struct Waiting {
    request: RequestId,
    sub: Subscriber,
    /// The server to use (a failover), or None for the first one alive.
    server: Option<usize>,
}

/// Identifiers towards one server port from one source socket.
struct IdSpace {
    slots: Vec<Option<u64>>,
    cursor: u8,
}

impl IdSpace {
    fn new() -> Self {
        IdSpace {
            slots: vec![None; 256],
            cursor: 0,
        }
    }
    /// A free identifier, the least recently used first (RFC 5080 §2.2.1: don't reuse at once).
    fn alloc(&mut self, token: u64) -> Option<u8> {
        for _ in 0..256 {
            let id = self.cursor;
            self.cursor = self.cursor.wrapping_add(1);
            if self.slots[id as usize].is_none() {
                self.slots[id as usize] = Some(token);
                return Some(id);
            }
        }
        None
    }
}

type TimerKey = (Instant, u64);

enum Timer {
    Reply(u64),
    AcctRetry(u64),
    Interim(String),
}

struct Session {
    session: AcctSession,
    started: Instant,
    interval: Option<Duration>,
    last: Traffic,
    timer: Option<TimerKey>,
}

struct ServerState {
    dead_until: Option<Instant>,
    stats: ServerStats,
}

/// Unix seconds from the monotonic `now`, anchored on one wall-clock reading.
struct WallClock {
    base: Instant,
    base_unix: Duration,
}

impl WallClock {
    fn unix(&self, now: Instant) -> u32 {
        (self.base_unix + now.saturating_duration_since(self.base)).as_secs() as u32
    }
}

/// The RADIUS client state machine.
pub struct AaaClient {
    cfg: AaaConfig,
    clock: WallClock,
    authenticators: AuthenticatorSource,
    servers: Vec<ServerState>,
    ids: HashMap<(usize, SocketAddr), IdSpace>,
    next_socket: usize,
    in_flight: HashMap<u64, InFlight>,
    timers: BTreeMap<TimerKey, Timer>,
    serial: u64,
    auth_wait: VecDeque<Waiting>,
    auth_in_flight: usize,
    acct: AcctQueue,
    acct_in_flight: usize,
    sessions: HashMap<String, Session>,
    out: VecDeque<Transmit>,
    events: VecDeque<AaaEvent>,
    next_request: RequestId,
    stats: AaaStats,
}

impl AaaClient {
    /// A client for a checked configuration. `wall` anchors Event-Timestamp and
    /// Acct-Delay-Time; `authenticators` is `AuthenticatorSource::from_os()` outside tests.
    pub fn new(
        cfg: AaaConfig,
        now: Instant,
        wall: SystemTime,
        authenticators: AuthenticatorSource,
    ) -> Self {
        let servers = cfg
            .servers
            .iter()
            .map(|s| ServerState {
                dead_until: None,
                stats: ServerStats {
                    address: Some(s.address),
                    auth_port: s.auth_port,
                    acct_port: s.acct_port,
                    ..ServerStats::default()
                },
            })
            .collect();
        AaaClient {
            clock: WallClock {
                base: now,
                base_unix: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
            },
            authenticators,
            servers,
            ids: HashMap::new(),
            next_socket: 0,
            in_flight: HashMap::new(),
            timers: BTreeMap::new(),
            serial: 0,
            auth_wait: VecDeque::new(),
            auth_in_flight: 0,
            acct: AcctQueue::new(cfg.accounting.queue_limit),
            acct_in_flight: 0,
            sessions: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_request: 0,
            stats: AaaStats::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &AaaConfig {
        &self.cfg
    }

    /// Unix seconds at `now` by this client's clock.
    pub fn unix_time(&self, now: Instant) -> u32 {
        self.clock.unix(now)
    }

    /// Asks the servers for `sub`'s profile. The answer comes as [`AaaEvent::Authorized`];
    /// with authorization off or no server it is `Timeout` at once.
    pub fn authorize(&mut self, now: Instant, sub: Subscriber) -> RequestId {
        self.next_request += 1;
        let request = self.next_request;
        if !self.cfg.authorization || self.servers.is_empty() {
            self.done(request, AuthOutcome::Timeout);
        } else if self.auth_in_flight + self.auth_wait.len() >= self.cfg.queue_limit {
            self.stats.auth_overloaded += 1;
            self.events.push_back(AaaEvent::Authorized {
                request,
                outcome: AuthOutcome::Overloaded,
            });
        } else {
            self.auth_wait.push_back(Waiting {
                request,
                sub,
                server: None,
            });
            self.pump(now);
        }
        request
    }

    /// A binding became active: Accounting-Start, and Interim-Updates every `interim`
    /// (the Access-Accept's Acct-Interim-Interval) or the configured interval. Starting a
    /// session that is already known (a refresh or handover re-installing the binding) only
    /// updates its description: no second Start, counters go on.
    pub fn session_start(&mut self, now: Instant, session: AcctSession, interim: Option<Duration>) {
        if !self.cfg.accounting.enabled {
            return;
        }
        let id = session.session_id.clone();
        if let Some(s) = self.sessions.get_mut(&id) {
            s.session = session;
            return;
        }
        let interval = interim
            .or(Some(self.cfg.accounting.interim_interval))
            .filter(|d| !d.is_zero());
        let rec = self.record(AcctStatus::Start, &session, Traffic::default(), 0, now);
        let mut s = Session {
            session,
            started: now,
            interval,
            last: Traffic::default(),
            timer: None,
        };
        if let Some(i) = interval {
            s.timer = Some(self.timer(now + i, Timer::Interim(id.clone())));
        }
        self.sessions.insert(id, s);
        self.enqueue(now, rec);
    }

    /// Interim-Update with the session's cumulative counters. False for an unknown session.
    pub fn session_update(&mut self, now: Instant, session_id: &str, traffic: Traffic) -> bool {
        self.session_record(now, session_id, traffic, None)
    }

    /// Accounting-Stop; the session is forgotten. False for an unknown session.
    pub fn session_stop(
        &mut self,
        now: Instant,
        session_id: &str,
        traffic: Traffic,
        cause: TerminateCause,
    ) -> bool {
        self.session_record(now, session_id, traffic, Some(cause))
    }

    fn session_record(
        &mut self,
        now: Instant,
        id: &str,
        traffic: Traffic,
        stop: Option<TerminateCause>,
    ) -> bool {
        let Some(s) = self.sessions.get_mut(id) else {
            return false;
        };
        if traffic.below(s.last) {
            self.stats.counter_regressions += 1;
        }
        s.last = traffic.max(s.last);
        let (last, elapsed) = (s.last, now.saturating_duration_since(s.started));
        let session = s.session.clone();
        let status = if stop.is_some() {
            if let Some(t) = s.timer.take() {
                self.timers.remove(&t);
            }
            self.sessions.remove(id);
            AcctStatus::Stop
        } else {
            AcctStatus::InterimUpdate
        };
        let mut rec = self.record(status, &session, last, elapsed.as_secs() as u32, now);
        rec.terminate_cause = stop;
        self.enqueue(now, rec);
        true
    }

    fn record(
        &self,
        status: AcctStatus,
        session: &AcctSession,
        traffic: Traffic,
        session_time: u32,
        now: Instant,
    ) -> AcctRecord {
        AcctRecord {
            status,
            session: session.clone(),
            traffic,
            session_time,
            terminate_cause: None,
            event_unix: self.clock.unix(now),
        }
    }

    /// Queues a record as it is (Accounting-On/Off, or records read back from the spool).
    pub fn account(&mut self, now: Instant, rec: AcctRecord) {
        if self.cfg.accounting.enabled && !self.servers.is_empty() {
            self.enqueue(now, rec);
        }
    }

    fn enqueue(&mut self, now: Instant, rec: AcctRecord) {
        if self.servers.is_empty() {
            return;
        }
        if let Some(record) = self.acct.push(rec) {
            self.events
                .push_back(AaaEvent::AccountingDropped { record });
        }
        self.pump(now);
    }

    /// Every accounting record not yet acknowledged (for the spool), oldest first.
    pub fn undelivered(&self) -> Vec<AcctRecord> {
        self.acct.undelivered()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<AaaEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|k| k.0)
    }

    pub fn stats(&self) -> AaaStats {
        let mut s = self.stats.clone();
        s.servers = self.servers.iter().map(|x| x.stats.clone()).collect();
        s.auth_in_flight = self.auth_in_flight as u64;
        s.auth_waiting = self.auth_wait.len() as u64;
        s.acct_queued = self.acct.len() as u64;
        s.acct_in_flight = self.acct_in_flight as u64;
        s.acct_dropped = self.acct.dropped;
        s.acct_superseded = self.acct.superseded;
        s.sessions = self.sessions.len() as u64;
        s
    }

    fn timer(&mut self, at: Instant, t: Timer) -> TimerKey {
        self.serial += 1;
        let key = (at, self.serial);
        self.timers.insert(key, t);
        key
    }

    fn done(&mut self, request: RequestId, outcome: AuthOutcome) {
        if outcome == AuthOutcome::Timeout {
            self.stats.auth_timeouts += 1;
        }
        self.events
            .push_back(AaaEvent::Authorized { request, outcome });
    }

    fn is_dead(&self, i: usize, now: Instant) -> bool {
        self.servers[i].dead_until.is_some_and(|t| t > now)
    }

    /// The first live server after `after` (from the start for None). With every server
    /// dead a new request still goes to the first (IOS does the same); a failover does not.
    fn next_server(&mut self, now: Instant, after: Option<usize>) -> Option<usize> {
        let start = after.map_or(0, |i| i + 1);
        for i in 0..self.servers.len() {
            if self.servers[i].dead_until.is_some_and(|t| t <= now) {
                self.servers[i].dead_until = None;
                self.servers[i].stats.dead = false;
            }
        }
        let alive = (start..self.servers.len()).find(|&i| !self.is_dead(i, now));
        match (alive, after) {
            (Some(i), _) => Some(i),
            (None, None) => (!self.servers.is_empty()).then_some(0),
            (None, Some(_)) => None,
        }
    }

    /// Reserves an identifier towards `dest`, trying the source sockets in turn.
    fn alloc(&mut self, dest: SocketAddr, token: u64) -> Option<(usize, SocketAddr, u8)> {
        let n = usize::from(self.cfg.source_ports.max(1));
        for k in 0..n {
            let socket = (self.next_socket + k) % n;
            let space = self.ids.entry((socket, dest)).or_insert_with(IdSpace::new);
            if let Some(id) = space.alloc(token) {
                self.next_socket = (socket + 1) % n;
                return Some((socket, dest, id));
            }
        }
        None
    }

    fn free(&mut self, slot: (usize, SocketAddr, u8)) {
        if let Some(s) = self.ids.get_mut(&(slot.0, slot.1)) {
            s.slots[slot.2 as usize] = None;
        }
    }

    /// Sends what waits, as far as identifiers and the accounting window allow.
    fn pump(&mut self, now: Instant) {
        while self.auth_in_flight < self.cfg.window {
            let Some(w) = self.auth_wait.pop_front() else {
                break;
            };
            let server = match w.server {
                Some(i) => Some(i),
                None => self.next_server(now, None),
            };
            let Some(server) = server else {
                self.done(w.request, AuthOutcome::Timeout);
                continue;
            };
            if let Err(w) = self.send_auth(now, w, server) {
                self.auth_wait.push_front(w);
                break;
            }
        }
        while self.acct_in_flight < self.cfg.accounting.window && self.acct.has_ready() {
            let Some(server) = self.next_server(now, None) else {
                break;
            };
            let Some((seq, _)) = self.acct.pop_ready() else {
                break;
            };
            if !self.send_acct(now, seq, server) {
                // No identifier free: try again when one is.
                self.acct.failed(seq);
                self.acct.make_ready(seq);
                break;
            }
        }
    }

    fn send_auth(&mut self, now: Instant, w: Waiting, server: usize) -> Result<(), Waiting> {
        self.serial += 1;
        let token = self.serial;
        let dest = self.cfg.servers[server].auth_addr();
        let Some(slot) = self.alloc(dest, token) else {
            return Err(Waiting {
                server: Some(server),
                ..w
            });
        };
        let req_auth = self.authenticators.next_authenticator();
        let secret = self.cfg.servers[server].secret.expose();
        let bytes = access_request(
            &self.cfg,
            secret,
            &w.sub,
            slot.2,
            &req_auth,
            self.clock.unix(now),
        );
        self.servers[server].stats.requests += 1;
        self.auth_in_flight += 1;
        let job = Job::Auth {
            request: w.request,
            sub: w.sub,
        };
        let sent = Sent {
            slot,
            req_auth,
            bytes,
        };
        self.launch(now, token, job, server, sent);
        Ok(())
    }

    fn send_acct(&mut self, now: Instant, seq: u64, server: usize) -> bool {
        self.serial += 1;
        let token = self.serial;
        let dest = self.cfg.servers[server].acct_addr();
        let Some(slot) = self.alloc(dest, token) else {
            return false;
        };
        let Some(rec) = self.acct.get(seq) else {
            self.free(slot);
            return true;
        };
        let secret = self.cfg.servers[server].secret.expose();
        let bytes = accounting_request(&self.cfg, secret, rec, slot.2, self.clock.unix(now));
        let req_auth: [u8; 16] = bytes
            .get(4..20)
            .and_then(|a| a.try_into().ok())
            .unwrap_or_default();
        self.servers[server].stats.acct_requests += 1;
        self.acct_in_flight += 1;
        let sent = Sent {
            slot,
            req_auth,
            bytes,
        };
        self.launch(now, token, Job::Acct { seq }, server, sent);
        true
    }

    fn launch(&mut self, now: Instant, token: u64, job: Job, server: usize, sent: Sent) {
        let (_, timeout) = self.cfg.server_timing(server);
        let timer = self.timer(now + timeout, Timer::Reply(token));
        self.out.push_back(Transmit {
            socket: sent.slot.0,
            dest: sent.slot.1,
            payload: sent.bytes.clone(),
        });
        self.in_flight.insert(
            token,
            InFlight {
                job,
                server,
                slot: sent.slot,
                req_auth: sent.req_auth,
                bytes: sent.bytes,
                sends: 1,
                timer,
            },
        );
    }

    /// A datagram received on source socket `socket` from `from`.
    pub fn handle(&mut self, now: Instant, socket: usize, from: SocketAddr, data: &[u8]) {
        let Some(si) = self.cfg.servers.iter().position(|s| {
            s.address == from.ip() && (s.auth_port == from.port() || s.acct_port == from.port())
        }) else {
            self.stats.unknown_source += 1;
            return;
        };
        let Ok(p) = Packet::new_checked(data) else {
            self.servers[si].stats.malformed += 1;
            return;
        };
        let token = self
            .ids
            .get(&(socket, from))
            .and_then(|s| s.slots[p.identifier() as usize]);
        let Some(f) = token.and_then(|t| self.in_flight.get(&t)) else {
            self.servers[si].stats.unknown_responses += 1;
            return;
        };
        let auth_reply = matches!(
            p.code(),
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        );
        let expected = match f.job {
            Job::Auth { .. } => auth_reply,
            Job::Acct { .. } => p.code() == Code::AccountingResponse,
        };
        if !expected {
            self.servers[si].stats.malformed += 1;
            return;
        }
        let require_ma = auth_reply && self.cfg.require_message_authenticator;
        let secret = self.cfg.servers[si].secret.expose();
        if auth::verify(p.bytes(), secret, &f.req_auth, require_ma).is_err() {
            // A forged or corrupt reply must not end the request: keep waiting for the real one.
            self.servers[si].stats.bad_authenticators += 1;
            return;
        }
        let Some(f) = token.and_then(|t| self.in_flight.remove(&t)) else {
            return;
        };
        self.free(f.slot);
        self.timers.remove(&f.timer);
        let st = &mut self.servers[si].stats;
        match f.job {
            Job::Auth { request, .. } => {
                self.auth_in_flight -= 1;
                let outcome = match p.code() {
                    Code::AccessAccept => {
                        st.accepts += 1;
                        let vsas = self.cfg.attributes.vsa_authentication;
                        let prof = Profile::from_accept(&p, vsas);
                        st.unknown_vendor_attributes += prof.unknown_vendors.len() as u64;
                        AuthOutcome::Accept(Box::new(prof))
                    }
                    code => {
                        if code == Code::AccessChallenge {
                            st.challenges += 1;
                        } else {
                            st.rejects += 1;
                        }
                        let reply_message = p
                            .attr(super::wire::attr::REPLY_MESSAGE)
                            .and_then(|a| a.as_str())
                            .map(str::to_string);
                        AuthOutcome::Reject { reply_message }
                    }
                };
                self.done(request, outcome);
            }
            Job::Acct { seq } => {
                st.acct_responses += 1;
                self.acct_in_flight -= 1;
                self.acct.acked(seq);
                self.stats.acct_delivered += 1;
            }
        }
        self.pump(now);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((&key, _)) = self.timers.iter().next() {
            if key.0 > now {
                break;
            }
            let Some(t) = self.timers.remove(&key) else {
                break;
            };
            match t {
                Timer::Reply(token) => self.reply_timeout(now, token),
                Timer::AcctRetry(seq) => self.acct.make_ready(seq),
                Timer::Interim(id) => {
                    if let Some(i) = self.sessions.get(&id).and_then(|s| s.interval) {
                        let k = self.timer(now + i, Timer::Interim(id.clone()));
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.timer = Some(k);
                        }
                        self.events
                            .push_back(AaaEvent::InterimDue { session_id: id });
                    }
                }
            }
        }
        self.pump(now);
    }

    fn reply_timeout(&mut self, now: Instant, token: u64) {
        let Some(f) = self.in_flight.get_mut(&token) else {
            return;
        };
        let (retransmit, timeout) = self.cfg.server_timing(f.server);
        if f.sends <= retransmit {
            f.sends += 1;
            let (socket, dest, bytes) = (f.slot.0, f.slot.1, f.bytes.clone());
            let acct = matches!(f.job, Job::Acct { .. });
            let st = &mut self.servers[f.server].stats;
            if acct {
                st.acct_retransmissions += 1;
            } else {
                st.retransmissions += 1;
            }
            let key = self.timer(now + timeout, Timer::Reply(token));
            if let Some(f) = self.in_flight.get_mut(&token) {
                f.timer = key;
            }
            self.out.push_back(Transmit {
                socket,
                dest,
                payload: bytes,
            });
            return;
        }
        let Some(f) = self.in_flight.remove(&token) else {
            return;
        };
        self.free(f.slot);
        self.mark_timeout(now, f.server, matches!(f.job, Job::Acct { .. }));
        let next = self.next_server(now, Some(f.server));
        match (f.job, next) {
            (Job::Auth { request, sub }, next) => {
                self.auth_in_flight -= 1;
                match next {
                    Some(i) => self.auth_wait.push_front(Waiting {
                        request,
                        sub,
                        server: Some(i),
                    }),
                    None => self.done(request, AuthOutcome::Timeout),
                }
            }
            (Job::Acct { seq }, next) => {
                self.acct_in_flight -= 1;
                if !next.is_some_and(|i| self.send_acct(now, seq, i)) {
                    // Every server tried: keep it, try again after the back-off.
                    self.acct.failed(seq);
                    let at = now + self.cfg.accounting.retry_interval;
                    self.timer(at, Timer::AcctRetry(seq));
                }
            }
        }
    }

    fn mark_timeout(&mut self, now: Instant, server: usize, acct: bool) {
        let deadtime = self.cfg.deadtime;
        let s = &mut self.servers[server];
        if acct {
            s.stats.acct_timeouts += 1;
        } else {
            s.stats.timeouts += 1;
        }
        if !deadtime.is_zero() && s.dead_until.is_none_or(|t| t <= now) {
            s.dead_until = Some(now + deadtime);
            s.stats.dead = true;
            s.stats.marked_dead += 1;
            tracing::warn!(server, "RADIUS server marked dead for {deadtime:?}");
        }
    }
}
