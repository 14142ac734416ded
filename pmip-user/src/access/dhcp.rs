//! Sans-IO DHCPv4 server for one access link (RFC 2131), the proxy DHCP server
//! of seed 004: the address it hands out is the subscriber's home address as
//! the anchor granted it, so a DISCOVER only *triggers* a registration
//! ([`Event::AttachRequest`]); the OFFER goes out once the shell reports the
//! binding with [`DhcpServer::binding_ready`].
//!
//! Wire format: `dhcproto`. State per client MAC. No sockets, no clock:
//! `handle(now, bytes)`, `binding_ready(..)`, `poll_transmit()`, `poll_event()`,
//! `poll_timeout()`, `handle_timeout(now)`.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

use crate::dataplane::AccessPoint;

pub(crate) const SERVER_PORT: u16 = 67;
pub(crate) const CLIENT_PORT: u16 = 68;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP part (236 bytes) + magic cookie.
const FIXED_LEN: usize = 240;
/// RFC 1542 §3.3 / RFC 2131 §2: some clients drop BOOTP replies under 300 bytes.
const MIN_REPLY_LEN: usize = 300;

/// Static parameters of the server on one access link.
#[derive(Clone, Debug)]
pub struct DhcpServerConfig {
    /// The access link (ifindex, VLAN); the client MAC completes the [`AccessPoint`].
    pub ifindex: u32,
    pub vlan: u16,
    /// Server identifier (option 54) and source address of replies: the
    /// gateway's address on the access link.
    pub server_id: Ipv4Addr,
    /// How long a client that DISCOVERed may wait for its registration, and
    /// how long an OFFER stays valid without a REQUEST, before the attach is
    /// abandoned (→ [`Event::Detach`] with [`DetachReason::Abandoned`]).
    pub offer_timeout: Duration,
    /// How long an OFFER holds the home address: a client that does not
    /// REQUEST it by then is abandoned, and the anchor gets the address back
    /// (RFC 2131 §3.1 step 2: a server may hold an offered address).
    pub offer_hold: Duration,
    /// Slack after the lease end before the client counts as gone, for clock
    /// skew and a late REBIND.
    pub lease_grace: Duration,
    /// Raise [`Event::Leased`] when a client first gets its lease.
    pub report_leases: bool,
    /// Keep a lease that ran out while its subscriber went on sending over
    /// the grace ([`DhcpServer::handle_timeout_with`], `dhcp/hold.rs`).
    pub hold_while_sending: bool,
}

impl DhcpServerConfig {
    pub fn new(ifindex: u32, vlan: u16, server_id: Ipv4Addr) -> Self {
        DhcpServerConfig {
            ifindex,
            vlan,
            server_id,
            offer_timeout: Duration::from_secs(60),
            offer_hold: Duration::from_secs(10),
            lease_grace: Duration::from_secs(2),
            report_leases: false,
            hold_while_sending: false,
        }
    }
}

/// What the registration returned for a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingInfo {
    pub home: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Ipv4Addr,
    /// Binding lifetime; the lease handed to the client (seed 004 timers table:
    /// "the MAG also uses the negotiated value as the DHCP lease time").
    pub lifetime: Duration,
    pub dns: Vec<Ipv4Addr>,
    /// Interface MTU (option 26): the access MTU minus the tunnel overhead.
    pub mtu: Option<u16>,
}

/// Why a client of the DHCPv4 or the DHCPv6 server left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// DHCPRELEASE (DHCPv6 Release) from the client.
    Release,
    /// DHCPDECLINE (DHCPv6 Decline): the client found the address in use on the link.
    Decline,
    /// The lease ran out without a renewal.
    LeaseExpired,
    /// DISCOVER/OFFER (Solicit/Advertise) never completed, or the client
    /// chose another server.
    Abandoned,
}

impl DetachReason {
    /// Whether a client whose lease ends at `lease_end`, or whose offer is
    /// abandoned at `abandon_at` without a lease, is gone at `now`: a lease
    /// is kept `grace` past its end.
    pub(crate) fn due(
        now: Instant,
        grace: Duration,
        lease_end: Option<Instant>,
        abandon_at: Option<Instant>,
    ) -> Option<DetachReason> {
        match (lease_end, abandon_at) {
            (Some(l), _) if now >= l + grace => Some(DetachReason::LeaseExpired),
            (None, Some(a)) if now >= a => Some(DetachReason::Abandoned),
            _ => None,
        }
    }
}

/// The clients of a DHCP server (v4 or v6) gone at `now`, in MAC order
/// (deterministic output); `timers` gives a client's lease end and the
/// time its offer is abandoned.
pub(crate) fn gone_clients<C>(
    clients: &HashMap<[u8; 6], C>,
    now: Instant,
    grace: Duration,
    timers: impl Fn(&C) -> (Option<Instant>, Option<Instant>),
) -> Vec<([u8; 6], DetachReason)> {
    let mut gone: Vec<_> = (clients.iter())
        .filter_map(|(mac, c)| {
            let (lease_end, abandon_at) = timers(c);
            DetachReason::due(now, grace, lease_end, abandon_at).map(|r| (*mac, r))
        })
        .collect();
    gone.sort_by_key(|g| g.0);
    gone
}

/// Outputs towards the registration side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new subscriber: register it. `client_id` is option 61 (the NAI may be
    /// derived from it, seed 004), `requested` option 50 or ciaddr if any.
    AttachRequest {
        at: AccessPoint,
        client_id: Option<Vec<u8>>,
        requested: Option<Ipv4Addr>,
    },
    /// The subscriber left: deregister.
    Detach {
        at: AccessPoint,
        reason: DetachReason,
    },
    /// The attach is complete: the client took its first lease (only with
    /// [`DhcpServerConfig::report_leases`]).
    Leased { at: AccessPoint },
}

/// Where a reply goes (RFC 2131 §4.1, "If the 'giaddr' field ...").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyDest {
    /// To the relay agent at giaddr, port 67.
    Relay(Ipv4Addr),
    /// IP 255.255.255.255, Ethernet broadcast, port 68.
    Broadcast,
    /// IP unicast to `ip` at link address `mac`, port 68 (the client may not
    /// have configured `ip` yet, so no ARP: the shell writes the L2 frame).
    Unicast { ip: Ipv4Addr, mac: [u8; 6] },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: ReplyDest,
    /// The whole BOOTP/DHCP message (UDP payload).
    pub payload: Vec<u8>,
}

/// Counters; bad packets are counted, never a panic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DhcpStats {
    pub rx: u64,
    pub malformed: u64,
    /// Well-formed but not for us (BOOTREPLY, not Ethernet, other server chosen, ...).
    pub ignored: u64,
    pub discovers: u64,
    pub requests: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub releases: u64,
    pub declines: u64,
    pub informs: u64,
    pub lease_expired: u64,
    /// Leases that ran out while the subscriber was still sending, and were
    /// given again instead of ending (`dhcp/hold.rs`).
    pub leases_held: u64,
}

/// A message that waits for the registration to finish.
#[derive(Clone, Debug)]
struct Pending {
    kind: MessageType,
    req: Message,
}

#[derive(Clone, Debug)]
struct Client {
    /// Option 61, kept for the show commands and a later NAI lookup.
    client_id: Option<Vec<u8>>,
    binding: Option<BindingInfo>,
    pending: Option<Pending>,
    /// When an unfinished attach (no lease yet) is given up.
    abandon_at: Option<Instant>,
    /// End of the lease granted by the last ACK.
    lease_end: Option<Instant>,
    /// The subscriber's uplink packet count when that lease ran out (with
    /// `hold_while_sending`; None until then).
    at_end: Option<hold::Sent>,
    /// Its entry in the server's timer index (`DhcpServer::timers`).
    indexed: Option<Instant>,
}

impl Client {
    /// A client the registration side bound without a DHCP exchange of its
    /// own (before its first message, or restored with its lease's end).
    fn bound(binding: BindingInfo, lease_end: Option<Instant>) -> Self {
        Client {
            client_id: None,
            binding: Some(binding),
            pending: None,
            abandon_at: None,
            lease_end,
            at_end: None,
            indexed: None,
        }
    }
}

pub struct DhcpServer {
    cfg: DhcpServerConfig,
    clients: HashMap<[u8; 6], Client>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub stats: DhcpStats,
    /// Every client's next timer, ordered: `poll_timeout` is the first. It
    /// used to scan every client, and it runs after every datagram: with
    /// 20 000 clients on a link that scan was 43 % of the MAG's CPU in the
    /// attach benchmark (BENCHMARKS.md). Kept exact by re-indexing the
    /// client each entry point touched and the due ones after a timeout
    /// pass (`dhcp/timers.rs`).
    timers: BTreeSet<(Instant, [u8; 6])>,
}

/// Why a received message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    Malformed,
    Ignored,
}

pub(crate) fn prefix_to_mask(len: u8) -> Ipv4Addr {
    let len = u32::from(len.min(32));
    Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - len) })
}

/// Decodes a DHCP message; the length, magic and BOOTP header are checked here
/// because `dhcproto` does not check the cookie.
pub fn decode(bytes: &[u8]) -> Result<Message, Reject> {
    if bytes.len() < FIXED_LEN || bytes[236..240] != MAGIC {
        return Err(Reject::Malformed);
    }
    // Check the TLV framing ourselves (dhcproto stops silently at the first
    // undecodable option), and hand dhcproto only the options the server reads:
    // some of its other option decoders hit `debug_assert!`s or subtract from
    // the length on crafted input (found by the access_dhcp fuzz target).
    let mut kept = Vec::with_capacity(bytes.len().min(1500));
    kept.extend_from_slice(&bytes[..FIXED_LEN]);
    let mut i = FIXED_LEN;
    while let Some(&code) = bytes.get(i) {
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let len = usize::from(*bytes.get(i + 1).ok_or(Reject::Malformed)?);
                let val = bytes.get(i + 2..i + 2 + len).ok_or(Reject::Malformed)?;
                if USED_OPTIONS.contains(&code) {
                    kept.push(code);
                    kept.push(len as u8);
                    kept.extend_from_slice(val);
                }
                i += 2 + len;
            }
        }
    }
    kept.push(255);
    Message::decode(&mut Decoder::new(&kept)).map_err(|_| Reject::Malformed)
}

/// Options the server reads from clients: 50 requested address, 53 message
/// type, 54 server identifier, 61 client identifier. The rest is ignored, so a
/// malformed host name (12) or parameter list (55) cannot make a request fail.
const USED_OPTIONS: [u8; 4] = [50, 53, 54, 61];

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl DhcpServer {
    pub fn new(cfg: DhcpServerConfig) -> Self {
        DhcpServer {
            cfg,
            clients: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: DhcpStats::default(),
            timers: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &DhcpServerConfig {
        &self.cfg
    }

    fn at(&self, mac: [u8; 6]) -> AccessPoint {
        AccessPoint {
            ifindex: self.cfg.ifindex,
            vlan: self.cfg.vlan,
            mac,
        }
    }

    /// Lease end of a client, if it holds one.
    pub fn lease_end(&self, mac: &[u8; 6]) -> Option<Instant> {
        self.clients.get(mac).and_then(|c| c.lease_end)
    }

    /// The client identifier (option 61) a client sent first, if any.
    pub fn client_id(&self, mac: &[u8; 6]) -> Option<&[u8]> {
        self.clients.get(mac).and_then(|c| c.client_id.as_deref())
    }

    /// MACs of the clients the server knows.
    pub fn clients(&self) -> impl Iterator<Item = &[u8; 6]> {
        self.clients.keys()
    }

    /// A datagram received on UDP port 67 of the access link.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Reject> {
        self.stats.rx += 1;
        let r = self.handle_inner(now, bytes);
        match r {
            Err(Reject::Malformed) => self.stats.malformed += 1,
            Err(Reject::Ignored) => self.stats.ignored += 1,
            Ok(()) => {}
        }
        r
    }

    fn handle_inner(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Reject> {
        let msg = decode(bytes)?;
        if msg.opcode() != Opcode::BootRequest {
            return Err(Reject::Ignored);
        }
        if msg.htype() != HType::Eth || msg.hlen() != 6 {
            return Err(Reject::Ignored);
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(msg.chaddr().get(..6).ok_or(Reject::Malformed)?);
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(Reject::Malformed);
        }
        let kind = msg.opts().msg_type().ok_or(Reject::Malformed)?;
        let r = match kind {
            MessageType::Discover => self.on_discover(now, mac, msg),
            MessageType::Request => self.on_request(now, mac, msg),
            MessageType::Release => self.on_release(mac, &msg),
            MessageType::Decline => self.on_decline(mac, &msg),
            MessageType::Inform => self.on_inform(mac, &msg),
            _ => Err(Reject::Ignored),
        };
        // A message touches its own client only.
        self.reindex(mac);
        r
    }

    fn server_id_of(msg: &Message) -> Option<Ipv4Addr> {
        match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
            _ => None,
        }
    }

    fn requested_of(msg: &Message) -> Option<Ipv4Addr> {
        match msg.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
            _ => None,
        }
    }

    fn client_id_of(msg: &Message) -> Option<Vec<u8>> {
        match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// Creates the client and asks for its registration, or returns it.
    fn client_or_attach(
        &mut self,
        now: Instant,
        mac: [u8; 6],
        msg: &Message,
        requested: Option<Ipv4Addr>,
    ) -> &mut Client {
        if !self.clients.contains_key(&mac) {
            let client_id = Self::client_id_of(msg);
            self.events.push_back(Event::AttachRequest {
                at: self.at(mac),
                client_id: client_id.clone(),
                requested,
            });
            self.clients.insert(
                mac,
                Client {
                    client_id,
                    binding: None,
                    pending: None,
                    abandon_at: Some(now + self.cfg.offer_timeout),
                    lease_end: None,
                    at_end: None,
                    indexed: None,
                },
            );
        }
        self.clients.get_mut(&mac).expect("inserted above")
    }

    fn on_discover(&mut self, now: Instant, mac: [u8; 6], msg: Message) -> Result<(), Reject> {
        self.stats.discovers += 1;
        let (offer_timeout, offer_hold) = (self.cfg.offer_timeout, self.cfg.offer_hold);
        let requested = Self::requested_of(&msg);
        let c = self.client_or_attach(now, mac, &msg, requested);
        if c.lease_end.is_none() {
            // Offered again: held again; still registering: wait for it.
            let wait = if c.binding.is_some() {
                offer_hold
            } else {
                offer_timeout
            };
            c.abandon_at = Some(now + wait);
        }
        match c.binding.clone() {
            Some(b) => {
                self.reply(MessageType::Offer, &msg, &b);
            }
            None => {
                c.pending = Some(Pending {
                    kind: MessageType::Discover,
                    req: msg,
                })
            }
        }
        Ok(())
    }

    fn on_request(&mut self, now: Instant, mac: [u8; 6], msg: Message) -> Result<(), Reject> {
        self.stats.requests += 1;
        let sid = Self::server_id_of(&msg);
        // RFC 2131 §4.3.2: SELECTING carries the server identifier.
        if let Some(sid) = sid {
            if sid != self.cfg.server_id {
                // The client took another server's offer: our attach is moot.
                if let Some(c) = self.clients.get(&mac) {
                    if c.lease_end.is_none() {
                        self.detach(mac, DetachReason::Abandoned);
                    }
                }
                return Err(Reject::Ignored);
            }
        }
        // SELECTING/INIT-REBOOT name the address in option 50; RENEWING/REBINDING in ciaddr.
        let wanted =
            Self::requested_of(&msg).or_else(|| Some(msg.ciaddr()).filter(|a| !a.is_unspecified()));
        let Some(wanted) = wanted else {
            return Err(Reject::Malformed);
        };
        // An unknown client (daemon restart, or a handover to this gateway with the
        // same router address): register it, answer when the binding is known.
        let c = self.client_or_attach(now, mac, &msg, Some(wanted));
        match c.binding.clone() {
            Some(b) => {
                if b.home == wanted {
                    self.ack(now, mac, &msg, &b);
                } else {
                    self.nak(&msg);
                }
            }
            None => {
                c.pending = Some(Pending {
                    kind: MessageType::Request,
                    req: msg,
                })
            }
        }
        Ok(())
    }

    fn ack(&mut self, now: Instant, mac: [u8; 6], msg: &Message, b: &BindingInfo) {
        let first = self.clients.get_mut(&mac).is_some_and(|c| {
            let first = c.lease_end.is_none();
            c.lease_end = Some(now + b.lifetime);
            c.abandon_at = None;
            c.at_end = None;
            first
        });
        if first && self.cfg.report_leases {
            self.events.push_back(Event::Leased { at: self.at(mac) });
        }
        self.reply(MessageType::Ack, msg, b);
    }

    fn on_release(&mut self, mac: [u8; 6], msg: &Message) -> Result<(), Reject> {
        self.stats.releases += 1;
        if Self::server_id_of(msg).is_some_and(|s| s != self.cfg.server_id) {
            return Err(Reject::Ignored);
        }
        let Some(c) = self.clients.get(&mac) else {
            return Err(Reject::Ignored);
        };
        // A RELEASE for another address is not this client's lease.
        if c.binding.as_ref().is_some_and(|b| b.home != msg.ciaddr()) {
            return Err(Reject::Ignored);
        }
        self.detach(mac, DetachReason::Release);
        Ok(())
    }

    fn on_decline(&mut self, mac: [u8; 6], msg: &Message) -> Result<(), Reject> {
        self.stats.declines += 1;
        if Self::server_id_of(msg).is_some_and(|s| s != self.cfg.server_id) {
            return Err(Reject::Ignored);
        }
        if !self.clients.contains_key(&mac) {
            return Err(Reject::Ignored);
        }
        // RFC 2131 §4.3.3: the address is in use on the link. The home address is
        // the anchor's, so the only thing to do is to drop the attach and log it;
        // the client restarts with a DISCOVER after its back-off.
        tracing::warn!(mac = %super::frame::mac_colon(&mac), "DHCPDECLINE: home address in use on the access link");
        self.detach(mac, DetachReason::Decline);
        Ok(())
    }

    fn on_inform(&mut self, mac: [u8; 6], msg: &Message) -> Result<(), Reject> {
        self.stats.informs += 1;
        let Some(b) = self.clients.get(&mac).and_then(|c| c.binding.clone()) else {
            return Err(Reject::Ignored);
        };
        self.reply(MessageType::Ack, msg, &b);
        Ok(())
    }

    /// The registration for `mac` succeeded (or was refreshed): answer what waits.
    pub fn binding_ready(&mut self, now: Instant, mac: [u8; 6], binding: BindingInfo) {
        self.answer_waiting(now, mac, binding);
        self.reindex(mac);
    }

    fn answer_waiting(&mut self, now: Instant, mac: [u8; 6], binding: BindingInfo) {
        let Some(c) = self.clients.get_mut(&mac) else {
            // A binding created without a DHCP trigger (static binding, handover
            // pre-registration): remember it so the client's first message is answered.
            self.clients.insert(mac, Client::bound(binding, None));
            return;
        };
        c.binding = Some(binding.clone());
        let pending = c.pending.take();
        if let Some(p) = pending {
            match p.kind {
                MessageType::Discover => {
                    if c.lease_end.is_none() {
                        c.abandon_at = Some(now + self.cfg.offer_hold);
                    }
                    self.reply(MessageType::Offer, &p.req, &binding)
                }
                _ => {
                    let wanted = Self::requested_of(&p.req).unwrap_or(p.req.ciaddr());
                    if wanted == binding.home {
                        self.ack(now, mac, &p.req, &binding);
                    } else {
                        self.nak(&p.req);
                    }
                }
            }
        }
    }

    /// The registration failed. `refused`: the address is not the client's
    /// (the anchor or the operator's AAA refused it) — a waiting REQUEST
    /// gets a NAK. Otherwise (no answer, no resources, the admission's
    /// back-off) the client is forgotten without a word: RFC 2131 §4.3.2
    /// NAKs only a wrong address ("If the DHCP server has no record of this
    /// client, then it MUST remain silent"), and a renewing client that is
    /// NAKed drops a working address and its sessions, where silence lets
    /// it retry. A DISCOVER just gets no OFFER either way.
    pub(crate) fn binding_failed(&mut self, mac: [u8; 6], refused: bool) {
        if let Some(c) = self.forget(mac) {
            if let Some(p) = c
                .pending
                .filter(|p| p.kind == MessageType::Request && refused)
            {
                self.nak(&p.req);
            }
        }
    }

    /// The client is gone (for `reason`): forgotten, and the registration
    /// side told.
    fn detach(&mut self, mac: [u8; 6], reason: DetachReason) {
        self.forget(mac);
        let at = self.at(mac);
        self.events.push_back(Event::Detach { at, reason });
    }

    /// The binding ended elsewhere (revocation, anchor lifetime, `clear binding`):
    /// forget the client without a [`Event::Detach`]; its next REQUEST starts over.
    pub(crate) fn binding_gone(&mut self, mac: [u8; 6]) {
        self.forget(mac);
    }

    /// Removes a client and its timer.
    fn forget(&mut self, mac: [u8; 6]) -> Option<Client> {
        let c = self.clients.remove(&mac)?;
        if let Some(t) = c.indexed {
            self.timers.remove(&(t, mac));
        }
        Some(c)
    }

    /// A lease this server gave before a restart (its binding restored from
    /// the store): the client's renewals are answered from it, and it runs
    /// out `left` from now unless renewed.
    pub(crate) fn restore_lease(
        &mut self,
        now: Instant,
        mac: [u8; 6],
        binding: BindingInfo,
        left: Duration,
    ) {
        self.forget(mac);
        self.clients
            .insert(mac, Client::bound(binding, Some(now + left)));
        self.reindex(mac);
    }

    fn nak(&mut self, req: &Message) {
        let mut m = Self::reply_header(req);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Nak));
        o.insert(DhcpOption::ServerIdentifier(self.cfg.server_id));
        if let Some(id) = Self::client_id_of(req) {
            o.insert(DhcpOption::ClientIdentifier(id));
        }
        self.stats.naks += 1;
        // §4.1: a NAK without a relay goes to broadcast.
        let dst = if !req.giaddr().is_unspecified() {
            ReplyDest::Relay(req.giaddr())
        } else {
            ReplyDest::Broadcast
        };
        self.push(dst, &m);
    }

    fn reply_header(req: &Message) -> Message {
        let mut m = Message::new_with_id(
            req.xid(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            req.giaddr(),
            req.chaddr().get(..6).unwrap_or(&[0; 6]),
        );
        m.set_opcode(Opcode::BootReply)
            .set_htype(HType::Eth)
            .set_flags(req.flags());
        m
    }

    fn reply(&mut self, kind: MessageType, req: &Message, b: &BindingInfo) {
        let inform = req.opts().msg_type() == Some(MessageType::Inform);
        let mut m = Self::reply_header(req);
        if inform {
            // §4.3.5: no yiaddr and no lease for DHCPINFORM.
            m.set_ciaddr(req.ciaddr());
        } else {
            m.set_yiaddr(b.home);
            // §4.3.1 table 3: ciaddr is copied from the request in an ACK.
            if kind == MessageType::Ack {
                m.set_ciaddr(req.ciaddr());
            }
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(self.cfg.server_id));
        if !inform {
            let lease = secs(b.lifetime);
            o.insert(DhcpOption::AddressLeaseTime(lease));
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
            if lease != u32::MAX {
                o.insert(DhcpOption::Renewal(lease / 2));
                o.insert(DhcpOption::Rebinding((u64::from(lease) * 7 / 8) as u32));
            }
        }
        o.insert(DhcpOption::SubnetMask(prefix_to_mask(b.prefix_len)));
        o.insert(DhcpOption::Router(vec![b.router]));
        if !b.dns.is_empty() {
            o.insert(DhcpOption::DomainNameServer(b.dns.clone()));
        }
        if let Some(mtu) = b.mtu {
            o.insert(DhcpOption::InterfaceMtu(mtu));
        }
        if let Some(id) = Self::client_id_of(req) {
            // RFC 6842: echo the client identifier.
            o.insert(DhcpOption::ClientIdentifier(id));
        }
        match kind {
            MessageType::Offer => self.stats.offers += 1,
            _ => self.stats.acks += 1,
        }
        let mac = {
            let mut a = [0u8; 6];
            a.copy_from_slice(req.chaddr().get(..6).unwrap_or(&[0; 6]));
            a
        };
        // RFC 2131 §4.1, "If the 'giaddr' field in a DHCP message from a client is
        // non-zero ... If 'giaddr' is zero and 'ciaddr' is non-zero ... broadcast bit".
        let dst = if !req.giaddr().is_unspecified() {
            ReplyDest::Relay(req.giaddr())
        } else if !req.ciaddr().is_unspecified() {
            ReplyDest::Unicast {
                ip: req.ciaddr(),
                mac,
            }
        } else if req.flags().broadcast() {
            ReplyDest::Broadcast
        } else {
            ReplyDest::Unicast { ip: b.home, mac }
        };
        self.push(dst, &m);
    }

    fn push(&mut self, dst: ReplyDest, m: &Message) {
        match m.to_vec() {
            Ok(mut payload) => {
                if payload.len() < MIN_REPLY_LEN {
                    payload.resize(MIN_REPLY_LEN, 0); // pad options after End
                }
                self.transmits.push_back(Transmit { dst, payload });
            }
            Err(e) => tracing::error!("encoding DHCP reply: {e}"),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

mod hold;
#[cfg(test)]
pub(crate) mod tests;
mod timers;
