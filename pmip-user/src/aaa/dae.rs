//! Dynamic authorization (RFC 5176), sans-IO: Disconnect-Request and CoA-Request from the
//! configured clients in, typed requests out, ACK/NAK back.
//!
//! A request is dropped without answer (and counted) when it comes from an unknown address,
//! does not parse, has a wrong authenticator or Message-Authenticator (RFC 5176 §3.5), lacks a
//! Message-Authenticator or Event-Timestamp that is required, or has an Event-Timestamp
//! outside the window (§3.5: replay protection). A well-formed request the NAS cannot act on
//! gets a NAK with an Error-Cause (§3.6) at once: 403 when it names another NAS, 402 without a
//! session identification, 401 for attributes we do not support, 407 for unreadable values,
//! 405 for a Service-Type (re-authorization is not supported). Everything else is handed to
//! the agent, which answers with `respond`. A retransmitted request (same source, Identifier
//! and authenticator) gets the same answer again without reaching the agent twice.
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::authz::Profile;
use super::client::Transmit;
use super::config::{parse_mac_any, AaaConfig};
use super::wire::attr::{self, AttrRepr};
use super::wire::{auth, Code, Packet, PacketRepr};

/// How long an answer is kept for retransmitted requests.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(30);

/// Error-Cause values (RFC 5176 §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCause {
    UnsupportedAttribute,
    MissingAttribute,
    NasIdentificationMismatch,
    InvalidRequest,
    UnsupportedService,
    InvalidAttributeValue,
    AdministrativelyProhibited,
    SessionContextNotFound,
    SessionContextNotRemovable,
    ResourcesUnavailable,
    MultipleSessionSelectionUnsupported,
    Other(u32),
}

impl ErrorCause {
    pub fn value(self) -> u32 {
        match self {
            ErrorCause::UnsupportedAttribute => 401,
            ErrorCause::MissingAttribute => 402,
            ErrorCause::NasIdentificationMismatch => 403,
            ErrorCause::InvalidRequest => 404,
            ErrorCause::UnsupportedService => 405,
            ErrorCause::InvalidAttributeValue => 407,
            ErrorCause::AdministrativelyProhibited => 501,
            ErrorCause::SessionContextNotFound => 503,
            ErrorCause::SessionContextNotRemovable => 504,
            ErrorCause::ResourcesUnavailable => 506,
            ErrorCause::MultipleSessionSelectionUnsupported => 508,
            ErrorCause::Other(v) => v,
        }
    }
}

/// Which session(s) a request is about; the agent matches every field that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSelector {
    pub calling_station_id: Option<[u8; 6]>,
    pub user_name: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
    pub acct_session_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaeKind {
    /// Deregister the subscriber (Disconnect-ACK when done).
    Disconnect,
    /// Change what can change without a new attach: lifetime (Session-Timeout), DNS,
    /// interim interval; the other fields of the profile are informational.
    Coa(Box<Profile>),
}

/// A validated request for the agent; answer it with [`DaeServer::respond`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaeRequest {
    pub token: u64,
    pub from: SocketAddr,
    pub kind: DaeKind,
    pub target: SessionSelector,
}

/// Counters of the listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaeStats {
    pub disconnect_requests: u64,
    pub coa_requests: u64,
    pub acks: u64,
    pub naks: u64,
    pub unknown_clients: u64,
    pub malformed: u64,
    pub bad_authenticators: u64,
    /// Event-Timestamp outside the window, or missing where required.
    pub stale: u64,
    pub duplicates: u64,
}

struct Pending {
    from: SocketAddr,
    client: usize,
    code: Code,
    id: u8,
    req_auth: [u8; 16],
    had_ma: bool,
    proxy_state: Vec<Vec<u8>>,
}

struct Recent {
    authenticator: [u8; 16],
    reply: Option<Vec<u8>>,
    token: u64,
}

/// The RFC 5176 listener state machine.
pub struct DaeServer {
    cfg: AaaConfig,
    base: Instant,
    base_unix: Duration,
    pending: HashMap<u64, Pending>,
    recent: HashMap<(SocketAddr, u8), Recent>,
    expiry: VecDeque<(Instant, (SocketAddr, u8), u64)>,
    out: VecDeque<Transmit>,
    next: u64,
    stats: DaeStats,
}

impl DaeServer {
    /// `cfg.dae` gives the clients and windows; `cfg.nas_*` the identity requests must match.
    pub fn new(cfg: AaaConfig, now: Instant, wall: SystemTime) -> Self {
        DaeServer {
            cfg,
            base: now,
            base_unix: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
            pending: HashMap::new(),
            recent: HashMap::new(),
            expiry: VecDeque::new(),
            out: VecDeque::new(),
            next: 0,
            stats: DaeStats::default(),
        }
    }

    pub fn stats(&self) -> DaeStats {
        self.stats.clone()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.front().map(|e| e.0)
    }

    /// Forgets requests older than the duplicate window, answered or not (an answer the
    /// agent gives later is dropped).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, key, token)) = self.expiry.front() {
            if t > now {
                break;
            }
            self.expiry.pop_front();
            self.pending.remove(&token);
            if self.recent.get(&key).is_some_and(|r| r.token == token) {
                self.recent.remove(&key);
            }
        }
    }

    /// A datagram on the DAE port. Returns a request for the agent, or None when it was
    /// dropped, answered at once, or a duplicate.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Option<DaeRequest> {
        let Some(client) = self
            .cfg
            .dae
            .clients
            .iter()
            .position(|c| c.address == from.ip())
        else {
            self.stats.unknown_clients += 1;
            return None;
        };
        let Ok(p) = Packet::new_checked(data) else {
            self.stats.malformed += 1;
            return None;
        };
        let code = p.code();
        if !matches!(code, Code::DisconnectRequest | Code::CoaRequest) {
            self.stats.malformed += 1;
            return None;
        }
        let secret = self.cfg.dae.clients[client].secret.expose();
        let require_ma = self.cfg.dae.require_message_authenticator;
        let Ok(had_ma) = auth::verify(p.bytes(), secret, &[0; 16], require_ma) else {
            self.stats.bad_authenticators += 1;
            return None;
        };
        let key = (from, p.identifier());
        if let Some(r) = self.recent.get(&key) {
            if r.authenticator == p.authenticator() {
                self.stats.duplicates += 1;
                if let Some(reply) = &r.reply {
                    self.out.push_back(Transmit {
                        socket: 0,
                        dest: from,
                        payload: reply.clone(),
                    });
                }
                return None;
            }
        }
        if !self.fresh(now, &p) {
            self.stats.stale += 1;
            return None;
        }
        if code == Code::DisconnectRequest {
            self.stats.disconnect_requests += 1;
        } else {
            self.stats.coa_requests += 1;
        }
        self.next += 1;
        let token = self.next;
        self.recent.insert(
            key,
            Recent {
                authenticator: p.authenticator(),
                reply: None,
                token,
            },
        );
        self.expiry.push_back((now + DUPLICATE_WINDOW, key, token));
        let proxy_state = p
            .attributes()
            .flatten()
            .filter(|a| a.ty == attr::PROXY_STATE)
            .map(|a| a.value.to_vec())
            .collect();
        self.pending.insert(
            token,
            Pending {
                from,
                client,
                code,
                id: p.identifier(),
                req_auth: p.authenticator(),
                had_ma,
                proxy_state,
            },
        );
        match self.classify(&p) {
            Ok((kind, target)) => Some(DaeRequest {
                token,
                from,
                kind,
                target,
            }),
            Err(cause) => {
                self.respond(token, Err(cause));
                None
            }
        }
    }

    /// Event-Timestamp within the window (RFC 5176 §3.5), or absent when not required.
    fn fresh<T: AsRef<[u8]>>(&self, now: Instant, p: &Packet<T>) -> bool {
        match p.attr(attr::EVENT_TIMESTAMP).map(|a| a.as_u32()) {
            None => !self.cfg.dae.require_event_timestamp,
            Some(None) => false,
            Some(Some(ts)) => {
                let us = (self.base_unix + now.saturating_duration_since(self.base)).as_secs();
                us.abs_diff(u64::from(ts)) <= self.cfg.dae.window.as_secs()
            }
        }
    }

    fn classify<T: AsRef<[u8]>>(
        &self,
        p: &Packet<T>,
    ) -> Result<(DaeKind, SessionSelector), ErrorCause> {
        let mut t = SessionSelector::default();
        let coa = p.code() == Code::CoaRequest;
        for a in p.attributes().flatten() {
            match a.ty {
                attr::USER_NAME => {
                    t.user_name = Some(a.as_str().ok_or(ErrorCause::InvalidAttributeValue)?.into())
                }
                attr::CALLING_STATION_ID => {
                    let s = a.as_str().ok_or(ErrorCause::InvalidAttributeValue)?;
                    t.calling_station_id =
                        Some(parse_mac_any(s).ok_or(ErrorCause::InvalidAttributeValue)?);
                }
                attr::FRAMED_IP_ADDRESS => {
                    t.framed_ip = Some(a.as_ipv4().ok_or(ErrorCause::InvalidAttributeValue)?)
                }
                attr::ACCT_SESSION_ID => {
                    t.acct_session_id =
                        Some(a.as_str().ok_or(ErrorCause::InvalidAttributeValue)?.into())
                }
                attr::NAS_IP_ADDRESS | attr::NAS_IPV6_ADDRESS | attr::NAS_IDENTIFIER => {
                    if !self.names_us(a.ty, a.value) {
                        return Err(ErrorCause::NasIdentificationMismatch);
                    }
                }
                attr::SERVICE_TYPE => return Err(ErrorCause::UnsupportedService),
                attr::MESSAGE_AUTHENTICATOR
                | attr::EVENT_TIMESTAMP
                | attr::PROXY_STATE
                | attr::STATE
                | attr::REPLY_MESSAGE => {}
                attr::SESSION_TIMEOUT
                | attr::IDLE_TIMEOUT
                | attr::ACCT_INTERIM_INTERVAL
                | attr::VENDOR_SPECIFIC
                | attr::DNS_SERVER_IPV6_ADDRESS
                | attr::CLASS
                    if coa => {}
                _ => return Err(ErrorCause::UnsupportedAttribute),
            }
        }
        if t == SessionSelector::default() {
            return Err(ErrorCause::MissingAttribute);
        }
        let kind = if coa {
            let prof = Profile::from_accept(p, true);
            if !prof.invalid.is_empty() {
                return Err(ErrorCause::InvalidAttributeValue);
            }
            DaeKind::Coa(Box::new(prof))
        } else {
            DaeKind::Disconnect
        };
        Ok((kind, t))
    }

    fn names_us(&self, ty: u8, v: &[u8]) -> bool {
        match ty {
            attr::NAS_IP_ADDRESS => {
                self.cfg.nas_ip_address.map(|a| a.octets().to_vec()) == Some(v.to_vec())
            }
            attr::NAS_IPV6_ADDRESS => {
                self.cfg.nas_ipv6_address.map(|a| a.octets().to_vec()) == Some(v.to_vec())
            }
            _ => self.cfg.nas_identifier.as_deref().map(str::as_bytes) == Some(v),
        }
    }

    /// The agent's answer to request `token`: ACK, or NAK with an Error-Cause (503 when no
    /// session matched, 508 when several did and the agent will not act on many).
    pub fn respond(&mut self, token: u64, result: Result<(), ErrorCause>) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        let code = match (p.code, result.is_ok()) {
            (Code::DisconnectRequest, true) => Code::DisconnectAck,
            (Code::DisconnectRequest, false) => Code::DisconnectNak,
            (_, true) => Code::CoaAck,
            (_, false) => Code::CoaNak,
        };
        let mut r = PacketRepr::new(code, p.id);
        if p.had_ma {
            r.push(AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]));
        }
        if let Err(cause) = result {
            r.push(AttrRepr::u32(attr::ERROR_CAUSE, cause.value()));
            self.stats.naks += 1;
        } else {
            self.stats.acks += 1;
        }
        // RFC 5176 §3: Proxy-State attributes are copied into the response, in order.
        for ps in &p.proxy_state {
            r.push(AttrRepr::new(attr::PROXY_STATE, ps));
        }
        let secret = self.cfg.dae.clients[p.client].secret.expose();
        let reply = super::authz::finish(&r, secret, &p.req_auth);
        if let Some(rc) = self.recent.get_mut(&(p.from, p.id)) {
            if rc.token == token {
                rc.reply = Some(reply.clone());
            }
        }
        self.out.push_back(Transmit {
            socket: 0,
            dest: p.from,
            payload: reply,
        });
    }

    /// Whether `ip` is a configured client (for the shell's logs).
    pub fn is_client(&self, ip: IpAddr) -> bool {
        self.cfg.dae.clients.iter().any(|c| c.address == ip)
    }
}

#[cfg(test)]
mod tests;
