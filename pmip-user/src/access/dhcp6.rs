//! Sans-IO stateful DHCPv6 server for one access link (RFC 8415), for
//! subscribers that configure by DHCPv6 rather than SLAAC. The shape of
//! `dhcp.rs` (DHCPv4): what it hands out comes from the proxy registration,
//! so a Solicit only *triggers* it ([`Event::AttachRequest`]) and the answer
//! goes out once the shell reports the binding with [`Dhcp6Server::binding_ready`].
//!
//! - IA_NA: one address from the home network prefix ([`Binding6::address`]);
//!   IA_PD: the home network prefix itself, delegated.
//! - Lifetimes = what is left of the binding; T1/T2 = 0.5/0.8 of it (RFC 8415 §21.4).
//! - Solicit → Advertise (preference 255, so the client need not wait for
//!   others, §18.2.1), or Reply at once with Rapid Commit (§18.3.1);
//!   Request/Renew/Rebind → Reply; Release → Reply and [`Event::Detach`];
//!   Decline likewise; Confirm → Reply Success/NotOnLink; Information-request
//!   → Reply with DNS.
//! - The server DUID is DUID-LL of the router MAC every MAG shares (RFC 5213
//!   §6.9.3), so after a handover the client's Renew, addressed to "its"
//!   server, is answered by the new MAG (which registers the node first).
//!
//! Wire format: `dhcproto`'s v6 module, after [`decode`] has checked the TLV
//! framing and kept only the options the server reads (some of dhcproto's
//! option decoders subtract from the length or ignore it on crafted input).
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use dhcproto::v6::{
    DhcpOption, IAAddr, IAPrefix, Message, MessageType, Status, StatusCode, IANA, IAPD,
};
use dhcproto::{Decodable, Decoder};

use crate::dataplane::{AccessPoint, Hnp};

pub(crate) const SERVER_PORT: u16 = 547;
pub(crate) const CLIENT_PORT: u16 = 546;

/// Option codes the server reads (RFC 8415 §21).
const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_ELAPSED_TIME: u16 = 8;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_IA_PD: u16 = 25;
const OPT_IAPREFIX: u16 = 26;

/// Static parameters of the server on one access link.
#[derive(Clone, Debug)]
pub struct Dhcp6ServerConfig {
    pub ifindex: u32,
    pub vlan: u16,
    /// Server identifier (RFC 8415 §11); see [`Dhcp6ServerConfig::new`].
    pub server_duid: Vec<u8>,
    /// How long a client that Solicited may wait for its registration, and an
    /// Advertise stays good without a Request, before the attach is abandoned.
    pub offer_timeout: Duration,
    /// Slack after the valid lifetime before the client counts as gone.
    pub lease_grace: Duration,
    /// Answer a Solicit with Rapid Commit by a Reply (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
}

impl Dhcp6ServerConfig {
    /// DUID-LL (type 3, hardware type 1) of the MAC all MAGs share.
    pub fn new(ifindex: u32, vlan: u16, router_mac: [u8; 6]) -> Self {
        let mut duid = vec![0, 3, 0, 1];
        duid.extend_from_slice(&router_mac);
        Dhcp6ServerConfig {
            ifindex,
            vlan,
            server_duid: duid,
            offer_timeout: Duration::from_secs(60),
            lease_grace: Duration::from_secs(2),
            rapid_commit: true,
        }
    }
}

/// What the registration returned for a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding6 {
    pub hnp: Hnp,
    /// The IA_NA address; [`Binding6::new`] takes interface identifier ::1
    /// of the HNP (SLAAC addresses never have it, so both can coexist).
    pub address: Ipv6Addr,
    /// Binding lifetime: valid and preferred lifetime of the lease.
    pub lifetime: Duration,
    pub dns: Vec<Ipv6Addr>,
}

impl Binding6 {
    pub fn new(hnp: Hnp, lifetime: Duration, dns: Vec<Ipv6Addr>) -> Self {
        let address = Ipv6Addr::from(u128::from(hnp.prefix) | 1);
        Binding6 {
            hnp,
            address,
            lifetime,
            dns,
        }
    }
}

use super::dhcp;
pub use super::dhcp::DetachReason;

/// Outputs towards the registration side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new client: register it. `duid` is its client identifier, `from` the
    /// link-local address it sent from.
    AttachRequest {
        at: AccessPoint,
        duid: Vec<u8>,
        from: Ipv6Addr,
    },
    Detach {
        at: AccessPoint,
        reason: DetachReason,
    },
}

/// Who sent a message: the link-layer source and IPv6 source of its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub mac: [u8; 6],
    pub addr: Ipv6Addr,
}

/// A reply: UDP payload for port 546 of `to` (from the router's link-local, port 547).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dhcp6Stats {
    pub rx: u64,
    pub malformed: u64,
    /// Well formed but not for us (another server's, a server message, a relay).
    pub ignored: u64,
    pub solicits: u64,
    pub requests: u64,
    pub renews: u64,
    pub rebinds: u64,
    pub releases: u64,
    pub declines: u64,
    pub confirms: u64,
    pub information_requests: u64,
    pub advertises: u64,
    pub replies: u64,
    pub lease_expired: u64,
}

/// Why a received message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    Malformed,
    Ignored,
}

#[derive(Clone, Debug)]
struct Client {
    duid: Vec<u8>,
    binding: Option<Binding6>,
    /// A message that waits for the registration.
    pending: Option<(Peer, Message)>,
    abandon_at: Option<Instant>,
    lease_end: Option<Instant>,
    /// Its entry in the server's timer index (`Dhcp6Server::timers`).
    indexed: Option<Instant>,
}

pub struct Dhcp6Server {
    cfg: Dhcp6ServerConfig,
    clients: HashMap<[u8; 6], Client>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub stats: Dhcp6Stats,
    /// Every client's next timer, ordered: `poll_timeout` is the first. The
    /// ND shell asks after every frame of the link, so a scan of every
    /// client there cost what it did in `access/dhcp.rs` (43 % of the MAG's
    /// CPU at 20 000 clients). Kept exact by re-indexing the client each
    /// entry point touched and removing clients only through `remove`.
    timers: BTreeSet<(Instant, [u8; 6])>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Decides on one option (code, value): `Err` = malformed, `Ok(Some(bytes))`
/// = keep these bytes as its value, `Ok(None)` = leave it out.
type KeepFn<'a> = &'a dyn Fn(u16, &[u8]) -> Result<Option<Vec<u8>>, Reject>;

/// Walks the options in `b`, checking each with `keep`.
fn filter_options(b: &[u8], keep: KeepFn<'_>) -> Result<Vec<u8>, Reject> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b.len() - i < 4 {
            return Err(Reject::Malformed);
        }
        let (code, len) = (be16(b, i), usize::from(be16(b, i + 2)));
        let val = b.get(i + 4..i + 4 + len).ok_or(Reject::Malformed)?;
        if let Some(v) = keep(code, val)? {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(&v);
        }
        i += 4 + len;
    }
    Ok(out)
}

/// An IA_NA/IA_PD: the 12-byte IAID/T1/T2 and only its address or prefix
/// options, themselves without sub-options (the server does not read them).
fn keep_ia(val: &[u8], inner: u16, inner_min: usize) -> Result<Option<Vec<u8>>, Reject> {
    if val.len() < 12 {
        return Err(Reject::Malformed);
    }
    let opts = filter_options(&val[12..], &|code, v| {
        if code != inner {
            return Ok(None);
        }
        if v.len() < inner_min {
            return Err(Reject::Malformed);
        }
        Ok(Some(v[..inner_min].to_vec()))
    })?;
    let mut v = val[..12].to_vec();
    v.extend_from_slice(&opts);
    Ok(Some(v))
}

fn keep_top(code: u16, v: &[u8]) -> Result<Option<Vec<u8>>, Reject> {
    let ok = match code {
        // RFC 8415 §11.1: a DUID is a 2-byte type and at most 128 more bytes.
        OPT_CLIENTID | OPT_SERVERID => (3..=130).contains(&v.len()),
        OPT_IA_NA => return keep_ia(v, OPT_IAADDR, 24),
        OPT_IA_PD => return keep_ia(v, OPT_IAPREFIX, 25),
        OPT_ORO => v.len().is_multiple_of(2),
        OPT_ELAPSED_TIME => v.len() == 2,
        OPT_RAPID_COMMIT => v.is_empty(),
        _ => return Ok(None),
    };
    if ok {
        Ok(Some(v.to_vec()))
    } else {
        Err(Reject::Malformed)
    }
}

/// Decodes a client message. Framing is checked here, then dhcproto sees
/// only the options the server reads. Server and relay messages are
/// [`Reject::Ignored`] (no relay support: the server sits on the link).
pub fn decode(bytes: &[u8]) -> Result<Message, Reject> {
    if bytes.len() < 4 {
        return Err(Reject::Malformed);
    }
    match bytes[0] {
        1 | 3..=6 | 8 | 9 | 11 => {}
        _ => return Err(Reject::Ignored),
    }
    let mut kept = bytes[..4].to_vec();
    kept.extend_from_slice(&filter_options(&bytes[4..], &keep_top)?);
    Message::decode(&mut Decoder::new(&kept)).map_err(|_| Reject::Malformed)
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn client_id(m: &Message) -> Option<&[u8]> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::ClientId(d) => Some(d.as_slice()),
        _ => None,
    })
}

fn server_id(m: &Message) -> Option<&[u8]> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::ServerId(d) => Some(d.as_slice()),
        _ => None,
    })
}

fn has_rapid_commit(m: &Message) -> bool {
    m.opts()
        .iter()
        .any(|o| matches!(o, DhcpOption::RapidCommit))
}

/// Addresses the client names in its IA_NAs (Confirm, Release, Decline).
fn ia_addresses(m: &Message) -> Vec<Ipv6Addr> {
    m.opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia.opts.iter()),
            _ => None,
        })
        .flatten()
        .filter_map(|o| match o {
            DhcpOption::IAAddr(a) => Some(a.addr),
            _ => None,
        })
        .collect()
}

mod reply;
#[cfg(test)]
mod tests;

impl Dhcp6Server {
    pub fn new(cfg: Dhcp6ServerConfig) -> Self {
        Dhcp6Server {
            cfg,
            clients: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Dhcp6Stats::default(),
            timers: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &Dhcp6ServerConfig {
        &self.cfg
    }

    fn at(&self, mac: [u8; 6]) -> AccessPoint {
        AccessPoint {
            ifindex: self.cfg.ifindex,
            vlan: self.cfg.vlan,
            mac,
        }
    }

    /// MACs of the clients the server knows.
    pub fn clients(&self) -> impl Iterator<Item = &[u8; 6]> {
        self.clients.keys()
    }

    /// End of the lease a client holds, if any.
    pub fn lease_end(&self, mac: &[u8; 6]) -> Option<Instant> {
        self.clients.get(mac).and_then(|c| c.lease_end)
    }

    /// A datagram received on UDP port 547 of the access link from `from`.
    pub fn handle(&mut self, now: Instant, from: Peer, bytes: &[u8]) -> Result<(), Reject> {
        self.stats.rx += 1;
        let r = self.handle_inner(now, from, bytes);
        // Whatever happened concerned the sender's client only.
        self.reindex(from.mac);
        match r {
            Err(Reject::Malformed) => self.stats.malformed += 1,
            Err(Reject::Ignored) => self.stats.ignored += 1,
            Ok(()) => {}
        }
        r
    }

    fn handle_inner(&mut self, now: Instant, from: Peer, bytes: &[u8]) -> Result<(), Reject> {
        let msg = decode(bytes)?;
        if from.mac == [0; 6] || from.mac[0] & 1 != 0 {
            return Err(Reject::Malformed);
        }
        let kind = msg.msg_type();
        // RFC 8415 §16: every client message but Information-request carries
        // a Client Identifier; Solicit, Rebind and Confirm no Server Identifier.
        let Some(duid) = client_id(&msg).map(<[u8]>::to_vec) else {
            if kind == MessageType::InformationRequest {
                return self.on_information_request(from, &msg);
            }
            return Err(Reject::Malformed);
        };
        let sid = server_id(&msg);
        let needs_sid = matches!(
            kind,
            MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline
        );
        match (needs_sid, sid) {
            (true, None) => return Err(Reject::Malformed),
            (false, Some(_)) if kind != MessageType::InformationRequest => {
                return Err(Reject::Malformed)
            }
            // Another server's conversation (§16.4, §16.6, ...).
            (_, Some(s)) if s != self.cfg.server_duid.as_slice() => return Err(Reject::Ignored),
            _ => {}
        }
        match kind {
            MessageType::Solicit => self.on_solicit(now, from, duid, msg),
            MessageType::Request | MessageType::Renew | MessageType::Rebind => {
                match kind {
                    MessageType::Request => self.stats.requests += 1,
                    MessageType::Renew => self.stats.renews += 1,
                    _ => self.stats.rebinds += 1,
                }
                self.on_request(now, from, duid, msg)
            }
            MessageType::Release | MessageType::Decline => self.on_release(from, &duid, &msg),
            MessageType::Confirm => self.on_confirm(from, &msg),
            MessageType::InformationRequest => self.on_information_request(from, &msg),
            _ => Err(Reject::Ignored),
        }
    }

    /// Creates the client and asks for its registration, or returns it.
    fn client_or_attach(
        &mut self,
        now: Instant,
        from: Peer,
        duid: Vec<u8>,
    ) -> Result<&mut Client, Reject> {
        if let Some(c) = self.clients.get(&from.mac) {
            // One MAC, one client: another DUID behind it is not ours to serve.
            if c.duid != duid {
                return Err(Reject::Ignored);
            }
        } else {
            self.events.push_back(Event::AttachRequest {
                at: self.at(from.mac),
                duid: duid.clone(),
                from: from.addr,
            });
            self.clients.insert(
                from.mac,
                Client {
                    duid,
                    binding: None,
                    pending: None,
                    abandon_at: Some(now + self.cfg.offer_timeout),
                    lease_end: None,
                    indexed: None,
                },
            );
        }
        Ok(self
            .clients
            .get_mut(&from.mac)
            .expect("present or inserted above"))
    }

    fn on_solicit(
        &mut self,
        now: Instant,
        from: Peer,
        duid: Vec<u8>,
        msg: Message,
    ) -> Result<(), Reject> {
        self.stats.solicits += 1;
        let timeout = self.cfg.offer_timeout;
        let c = self.client_or_attach(now, from, duid)?;
        if c.lease_end.is_none() {
            c.abandon_at = Some(now + timeout);
        }
        match c.binding.clone() {
            Some(b) => self.answer(now, from, &msg, &b),
            None => c.pending = Some((from, msg)),
        }
        Ok(())
    }

    fn on_request(
        &mut self,
        now: Instant,
        from: Peer,
        duid: Vec<u8>,
        msg: Message,
    ) -> Result<(), Reject> {
        // An unknown client (daemon restart, or a handover with the same
        // server DUID): register it, answer when the binding is known.
        let c = self.client_or_attach(now, from, duid)?;
        match c.binding.clone() {
            Some(b) => self.answer(now, from, &msg, &b),
            None => c.pending = Some((from, msg)),
        }
        Ok(())
    }

    fn on_release(&mut self, from: Peer, duid: &[u8], msg: &Message) -> Result<(), Reject> {
        let decline = msg.msg_type() == MessageType::Decline;
        if decline {
            self.stats.declines += 1;
        } else {
            self.stats.releases += 1;
        }
        let Some(c) = self.clients.get(&from.mac).filter(|c| c.duid == duid) else {
            return Err(Reject::Ignored);
        };
        // A Release for addresses that are not this client's lease.
        let ours = c.binding.as_ref().map(|b| b.address);
        let named = ia_addresses(msg);
        if !named.is_empty() && !ours.is_some_and(|a| named.contains(&a)) {
            return Err(Reject::Ignored);
        }
        if decline {
            tracing::warn!(mac = %super::frame::mac_colon(&from.mac), "DHCPv6 Decline: home address in use on the access link");
        }
        // §18.3.7/§18.3.8: a Reply with status Success (it reads no client).
        self.reply_status(from, msg, Status::Success, "released");
        let reason = if decline {
            DetachReason::Decline
        } else {
            DetachReason::Release
        };
        self.detach(from.mac, reason);
        Ok(())
    }

    fn on_confirm(&mut self, from: Peer, msg: &Message) -> Result<(), Reject> {
        self.stats.confirms += 1;
        // §18.3.3: without a binding the server cannot tell, and stays silent.
        let Some(b) = self.clients.get(&from.mac).and_then(|c| c.binding.clone()) else {
            return Err(Reject::Ignored);
        };
        let named = ia_addresses(msg);
        if named.is_empty() {
            return Err(Reject::Ignored);
        }
        let on_link = named
            .iter()
            .all(|a| super::frame6::in_prefix(a, &b.hnp.prefix, b.hnp.len));
        if on_link {
            self.reply_status(from, msg, Status::Success, "all addresses on link");
        } else {
            self.reply_status(from, msg, Status::NotOnLink, "not on link");
        }
        Ok(())
    }

    fn on_information_request(&mut self, from: Peer, msg: &Message) -> Result<(), Reject> {
        self.stats.information_requests += 1;
        let Some(b) = self.clients.get(&from.mac).and_then(|c| c.binding.clone()) else {
            return Err(Reject::Ignored);
        };
        let mut r = self.reply_header(MessageType::Reply, msg);
        if !b.dns.is_empty() {
            r.opts_mut().insert(DhcpOption::DomainNameServers(b.dns));
        }
        self.push(from, &r);
        Ok(())
    }

    /// The registration for `mac` succeeded (or was refreshed): answer what waits.
    pub fn binding_ready(&mut self, now: Instant, mac: [u8; 6], binding: Binding6) {
        let Some(c) = self.clients.get_mut(&mac) else {
            return;
        };
        c.binding = Some(binding.clone());
        if let Some((from, msg)) = c.pending.take() {
            self.answer(now, from, &msg, &binding);
        }
        self.reindex(mac);
    }

    /// The registration failed: the waiting client gets nothing, and is forgotten.
    pub(crate) fn binding_failed(&mut self, mac: [u8; 6]) {
        self.remove(&mac);
    }

    /// The client is gone (for `reason`): forgotten, and the registration
    /// side told.
    fn detach(&mut self, mac: [u8; 6], reason: DetachReason) {
        self.remove(&mac);
        let at = self.at(mac);
        self.events.push_back(Event::Detach { at, reason });
    }

    /// The binding ended elsewhere: forget the client without an event.
    pub(crate) fn binding_gone(&mut self, mac: [u8; 6]) {
        self.remove(&mac);
    }

    /// Removes a client and its timer.
    fn remove(&mut self, mac: &[u8; 6]) {
        if let Some(t) = self.clients.remove(mac).and_then(|c| c.indexed) {
            self.timers.remove(&(t, *mac));
        }
    }

    /// When a client's timer runs out: its lease's end plus the grace, else
    /// its unfinished attach's.
    fn due(&self, c: &Client) -> Option<Instant> {
        match (c.lease_end, c.abandon_at) {
            (Some(l), _) => Some(l + self.cfg.lease_grace),
            (None, a) => a,
        }
    }

    /// Puts `mac`'s timer where it is now in the index.
    fn reindex(&mut self, mac: [u8; 6]) {
        let Some(due) = self.clients.get(&mac).map(|c| self.due(c)) else {
            return;
        };
        let Some(c) = self.clients.get_mut(&mac) else {
            return;
        };
        let old = std::mem::replace(&mut c.indexed, due);
        if old == due {
            return;
        }
        if let Some(t) = old {
            self.timers.remove(&(t, mac));
        }
        if let Some(t) = due {
            self.timers.insert((t, mac));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let grace = self.cfg.lease_grace;
        let gone = dhcp::gone_clients(&self.clients, now, grace, |c| (c.lease_end, c.abandon_at));
        for (mac, reason) in gone {
            self.stats.lease_expired += u64::from(reason == DetachReason::LeaseExpired);
            self.detach(mac, reason);
        }
    }
}

/// The IA options of a reply for the IAs the client asked for.
fn ia_options(msg: &Message, b: &Binding6, left: Duration) -> Vec<DhcpOption> {
    let l = secs(left);
    // RFC 8415 §21.4 recommends T1 = 0.5 and T2 = 0.8 of the shortest preferred lifetime.
    let (t1, t2) = (l / 2, (u64::from(l) * 4 / 5) as u32);
    msg.opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => {
                let mut opts = dhcproto::v6::DhcpOptions::new();
                opts.insert(DhcpOption::IAAddr(IAAddr {
                    addr: b.address,
                    preferred_life: l,
                    valid_life: l,
                    opts: Default::default(),
                }));
                Some(DhcpOption::IANA(IANA {
                    id: ia.id,
                    t1,
                    t2,
                    opts,
                }))
            }
            DhcpOption::IAPD(ia) => {
                let mut opts = dhcproto::v6::DhcpOptions::new();
                opts.insert(DhcpOption::IAPrefix(IAPrefix {
                    preferred_lifetime: l,
                    valid_lifetime: l,
                    prefix_len: b.hnp.len,
                    prefix_ip: b.hnp.prefix,
                    opts: Default::default(),
                }));
                Some(DhcpOption::IAPD(IAPD {
                    id: ia.id,
                    t1,
                    t2,
                    opts,
                }))
            }
            _ => None,
        })
        .collect()
}

fn status(code: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status: code,
        msg: msg.to_string(),
    })
}
