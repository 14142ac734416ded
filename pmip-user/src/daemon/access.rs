//! The access side: each access link's DHCP server and ARP monitor, the
//! fast path's reports of unknown MACs, and the registrar (MAG or PMA —
//! the glue does not know which) they drive.
//!
//! ```text
//!  DHCP shell ──AttachRequest/Detach──►  glue  ──Attach/Detach──►  MAG / PMA ──► fast path maps
//!  ARP shell  ──Detached──────────────►   │    ◄─Registered/Gone──     │
//!             ◄─Watch/Unwatch─────────────┤                           signaling sockets
//!  DHCP shell ◄─BindingReady/Gone─────────┘
//! ```
//! A DHCP DISCOVER (or data from a MAC without a binding) becomes an
//! [`AttachRequest`] in [`Glue::attach`].
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, oneshot};

use super::aaa::{AccessAaa, Resolved};
use super::access6::{self, Access6};
use super::control::{self, mac_str, CtlRequest, ShowCtx};
use super::fastpath::SharedDp;
use super::reload::{Live, Reloader};
use super::stop::{self, StopMode};
use crate::access::admission::{Admission, Outcome};
use crate::access::detach::DetachStats;
use crate::access::dhcp::{
    BindingInfo as DhcpBinding, DetachReason, DhcpStats, Event as DhcpEvent,
};
use crate::access::shell::{ArpCmd, ArpEvent, ArpShell, DhcpCmd, DhcpShell};
use crate::agent::registrar::{
    counters_of, AccessCommand, AccessEvent, AttachRequest, BindingSummary,
};
use crate::agent::shell::{self, Handle};
use crate::agent::{Endpoint, Transport};
use crate::config::{AccessInterface, Config};
use crate::ctl::{Request, Response};
use crate::dataplane::AccessPoint;
use crate::store::Store;

mod aaa;

/// A subscriber the access side knows about: what its lease needs.
struct Sub {
    nai: String,
    dns: Vec<Ipv4Addr>,
    mtu: Option<u16>,
    /// Asked for by DHCP: the attach is complete at the lease, not the registration.
    by_dhcp: bool,
}

impl Sub {
    /// Not (yet) asked for by DHCP.
    fn new(nai: String, dns: Vec<Ipv4Addr>, mtu: Option<u16>) -> Self {
        let by_dhcp = false;
        Sub {
            nai,
            dns,
            mtu,
            by_dhcp,
        }
    }
}

/// The access link of one interface: its DHCP server and ARP monitor.
struct Link {
    cfg: AccessInterface,
    dhcp: mpsc::UnboundedSender<DhcpCmd>,
    arp: mpsc::UnboundedSender<ArpCmd>,
    /// The DHCP server's and ARP monitor's counters, for `show stats`.
    dhcp_stats: Arc<Mutex<DhcpStats>>,
    arp_stats: Arc<Mutex<DetachStats>>,
}

/// Starts the DHCP server and ARP monitor of every access interface.
fn start_links(
    cfg: &Config,
    dp: &SharedDp,
    dhcp_events: &mpsc::UnboundedSender<DhcpEvent>,
    arp_events: &mpsc::UnboundedSender<ArpEvent>,
) -> Result<HashMap<u32, Link>> {
    let mut links = HashMap::new();
    for a in &cfg.interfaces.access {
        let mut dcfg = cfg.dhcp_server_config(a);
        dcfg.report_leases = true; // ends the attach's admission
        let shell = DhcpShell::open(&a.name, dcfg)
            .with_context(|| format!("DHCP server on {}", a.name))?
            .hold_while_sending(super::fastpath::uplink_count(dp));
        let ifindex = shell.ifindex();
        let dhcp_stats = shell.stats();
        let (dtx, drx) = mpsc::unbounded_channel();
        let ev = dhcp_events.clone();
        tokio::spawn(async move {
            if let Err(e) = shell.run(drx, ev).await {
                tracing::error!("DHCP server: {e:#}");
            }
        });
        vlan_sanity(a);
        let mut arp = ArpShell::open(&a.name, cfg.frame_vlan(a), cfg.detach.monitor_config())
            .with_context(|| format!("ARP monitor on {}", a.name))?;
        arp.set_polling(cfg.detach.enabled);
        let arp_stats = arp.stats();
        let (atx, arx) = mpsc::unbounded_channel();
        let aev = arp_events.clone();
        tokio::spawn(async move {
            if let Err(e) = arp.run(arx, aev).await {
                tracing::error!("ARP monitor: {e:#}");
            }
        });
        links.insert(
            ifindex,
            Link {
                cfg: a.clone(),
                dhcp: dtx,
                arp: atx,
                dhcp_stats,
                arp_stats,
            },
        );
    }
    Ok(links)
}

/// Reads the fast path's new-MAC reports (data from a MAC without a
/// binding: a subscriber that moved in from another access gateway).
fn start_new_mac_reader(
    dp: &SharedDp,
) -> Result<mpsc::UnboundedReceiver<pmip_common::NewMacEvent>> {
    let ring = dp.with(|f| f.new_mac_events())??;
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd lives.
    let mut afd = unsafe { tokio::io::unix::AsyncFd::register(ring) }
        .map_err(|e| anyhow!("polling the new-MAC ring buffer: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = afd.readable_mut().await else {
                return;
            };
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() >= std::mem::size_of::<pmip_common::NewMacEvent>() {
                    // SAFETY: the fast path writes one NewMacEvent per record; length checked.
                    let ev: pmip_common::NewMacEvent =
                        unsafe { std::ptr::read_unaligned(item.as_ptr() as *const _) };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
            guard.clear_ready();
        }
    });
    Ok(rx)
}

/// The access-side glue: links in, registrar out.
struct Glue<'a> {
    cfg: &'a Config,
    /// The configuration a reload may change: profiles and DNS are read
    /// from it at each attach.
    live: &'a Live,
    links: HashMap<u32, Link>,
    subs: HashMap<AccessPoint, Sub>,
    registrar: mpsc::UnboundedSender<shell::Request<AccessCommand>>,
    /// Caps on attaches (issue 13: a flood of new MACs).
    admission: Admission,
    /// RADIUS authorization, accounting, dynamic authorization (inert without `[aaa]`).
    aaa: AccessAaa,
    /// The IPv6 side of the links (router advertisements, DHCPv6).
    v6: Access6<'a>,
    /// Presence checks under way: the links' answers still to come.
    checks: HashMap<AccessPoint, u8>,
    /// Attaches asked for by data from a MAC that moved in, until their
    /// registration is asked for: the address they ask for is the one they
    /// use, not a DHCP client's hint.
    moved_in: std::collections::HashSet<AccessPoint>,
}

impl Glue<'_> {
    fn command(&self, c: AccessCommand) {
        let _ = self.registrar.send(shell::Request::Command(c));
    }

    /// No lease for `at`: `refused` when its address is not its own (the
    /// anchor, AAA or configuration said no), rather than not now (no
    /// answer, the admission's back-off) — a waiting REQUEST is NAKed only
    /// then (RFC 2131 §4.3.2).
    fn refuse(&mut self, at: &AccessPoint, refused: bool) {
        self.aaa.forget(at);
        if let Some(l) = self.links.get(&at.ifindex) {
            let _ = l.dhcp.send(DhcpCmd::BindingFailed {
                mac: at.mac,
                refused,
            });
        }
    }

    fn on_dhcp(&mut self, ev: DhcpEvent) {
        match ev {
            DhcpEvent::AttachRequest {
                at,
                client_id,
                requested,
            } => {
                if self.admit(at) {
                    self.attach(at, client_id.as_deref(), requested);
                    if let Some(s) = self.subs.get_mut(&at) {
                        s.by_dhcp = true;
                    }
                }
            }
            // RFC 5844 §3.4.3: a DHCPRELEASE "MUST NOT release any IPv6
            // home network prefix(es)": a dual-stack subscriber keeps its
            // binding — IPv6 in use, its IPv4 address held for it (a
            // DISCOVER gets it again). systemd-networkd sends one at every
            // stop or reconfiguration, Windows at `ipconfig /release`.
            DhcpEvent::Detach {
                at,
                reason: DetachReason::Release,
            } if self.v6.has_prefix(&at) => {
                tracing::info!(mac = %mac_str(&at.mac), "DHCPRELEASE: the IPv6 prefix stays, and the binding with it");
            }
            DhcpEvent::Detach { at, reason } => {
                // An OFFER never taken is what a DISCOVER flood looks like: back off.
                let outcome = if reason == DetachReason::Abandoned {
                    crate::log_limited!(info, mac = %mac_str(&at.mac), "DHCP attach abandoned");
                    Outcome::Failed
                } else {
                    tracing::info!(mac = %mac_str(&at.mac), ?reason, "DHCP detach");
                    Outcome::Left
                };
                self.aaa.ending(&at, super::aaa::dhcp_cause(reason));
                self.admission.finish(Instant::now(), &at, outcome);
                self.detach(at);
            }
            DhcpEvent::Leased { at } => self.admission.finish(Instant::now(), &at, Outcome::Done),
        }
    }

    /// Admission first: a refused attach costs no signaling and no state.
    fn admit(&mut self, at: AccessPoint) -> bool {
        if self.subs.contains_key(&at) && !self.admission.is_pending(&at) {
            return true; // already registered: a refresh of what it has
        }
        match self.admission.admit(Instant::now(), at) {
            Ok(()) => true,
            Err(why) => {
                crate::log_limited!(info, mac = %mac_str(&at.mac), ?why, "attach refused");
                self.refuse(&at, false);
                false
            }
        }
    }

    /// A subscriber on an access link asks for service: find its profile and
    /// anchor, and register it.
    fn attach(&mut self, at: AccessPoint, client_id: Option<&[u8]>, requested: Option<Ipv4Addr>) {
        let Some(link) = self.links.get(&at.ifindex) else {
            return;
        };
        let ifname = link.cfg.name.clone();
        let live = self.live.get();
        // The local profile, or the operator's RADIUS servers' (the attach resumes here
        // when they answer).
        let (nai, profile) = match self.aaa.resolve(&live, at, (client_id, requested), &ifname) {
            Resolved::Ready(nai, profile) => (nai, profile),
            Resolved::Pending => return,
            Resolved::Refused => return self.failed(at, true),
        };
        let profile = &*profile;
        let anchor = profile
            .anchor
            .clone()
            .or_else(|| self.cfg.peers.first().map(|p| p.name.clone()));
        let Some(peer) = anchor.as_deref().and_then(|n| self.cfg.peer(n)) else {
            crate::log_limited!(warn, %nai, "profile {} names no known anchor", profile.name);
            self.failed(at, true);
            return;
        };
        let link_mtu = self.cfg.subscriber_mtu(&link.cfg, peer);
        let mtu = Some(link_mtu);
        let service = profile.access_service();
        self.v6.attach(at, &nai, profile, link_mtu);
        let dns = live.dns_for(Some(profile));
        tracing::info!(%nai, mac = %mac_str(&at.mac), iface = %ifname, anchor = %peer.name, "attach");
        let alternate = profile
            .alternate_anchor
            .as_deref()
            .and_then(|n| self.cfg.peer(n))
            .map(|p| p.address);
        let requested_hint = !self.moved_in.remove(&at);
        self.command(AccessCommand::Attach(AttachRequest {
            at,
            nai: nai.clone(),
            anchor: peer.address,
            alternate,
            ipv4: service.ipv4(),
            ipv6: service.ipv6(),
            static_v4: profile.home_address,
            requested_v4: requested,
            requested_hint,
            apn: profile.apn.clone(),
            imsi: profile.imsi.clone(),
            interface_id: Some(ifname.into_bytes()),
            access_tech: link.cfg.access_tech,
            aaa: self.aaa.stored(&at),
        }));
        self.subs.insert(at, Sub::new(nai, dns, mtu));
    }

    /// Data from an unknown MAC: a subscriber that moved in without DHCP.
    /// Register it, asking for the address it is using (RFC 5213 §6.9.1.1:
    /// the LMA finds its binding and hands it over).
    fn on_new_mac(&mut self, ev: pmip_common::NewMacEvent) {
        let at = AccessPoint {
            ifindex: ev.key.ifindex,
            vlan: ev.key.vlan,
            mac: ev.key.mac,
        };
        if self.subs.contains_key(&at) || !self.links.contains_key(&at.ifindex) {
            return;
        }
        if !self.admission.new_mac_report(Instant::now()) || !self.admit(at) {
            return;
        }
        let requested = Some(Ipv4Addr::from(ev.src_v4)).filter(|a| !a.is_unspecified());
        crate::log_limited!(info, mac = %mac_str(&at.mac), ?requested, "data from an unknown MAC: registering it");
        // The address it uses, not a hint (`AttachRequest::requested_hint`).
        self.moved_in.insert(at);
        self.attach(at, None, requested);
    }

    fn on_arp(&mut self, ev: ArpEvent) {
        let d = match ev {
            ArpEvent::Detached(d) => d,
            ArpEvent::Presence(p) => return self.presence(p.at, p.present),
        };
        tracing::info!(mac = %mac_str(&d.at.mac), "ARP polling: subscriber gone");
        self.aaa
            .ending(&d.at, crate::aaa::TerminateCause::LostCarrier);
        if let Some(l) = self.links.get(&d.at.ifindex) {
            let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: d.at.mac });
        }
        self.detach(d.at);
    }

    /// RFC 5846 §9.1: is the subscriber still here? The link's ARP shell
    /// probes it (IPv4: one it does not watch answers absent at once) and,
    /// with a prefix advertised, its IPv6 side (a Neighbor Solicitation);
    /// the first "present", or both "absent", is the answer.
    fn check_presence(&mut self, at: AccessPoint) {
        let mut asked = 0u8;
        if let Some(l) = self.links.get(&at.ifindex) {
            if l.arp.send(ArpCmd::Check { mac: at.mac }).is_ok() {
                asked += 1;
            }
        }
        if self.v6.check(&at) {
            asked += 1;
        }
        if asked == 0 {
            self.command(AccessCommand::Presence { at, present: false });
        } else {
            self.checks.insert(at, asked);
        }
    }

    /// One link's answer to [`check_presence`](Self::check_presence).
    fn presence(&mut self, at: AccessPoint, present: bool) {
        let Some(left) = self.checks.get_mut(&at) else {
            return; // answered already
        };
        *left -= 1;
        if present || *left == 0 {
            self.checks.remove(&at);
            self.command(AccessCommand::Presence { at, present });
        }
    }

    fn detach(&mut self, at: AccessPoint) {
        if let Some(l) = self.links.get(&at.ifindex) {
            let _ = l.arp.send(ArpCmd::Unwatch { mac: at.mac });
        }
        if self.subs.contains_key(&at) {
            self.command(AccessCommand::Detach(at));
        }
    }

    fn on_event(&mut self, ev: AccessEvent) {
        self.aaa.on_event(&ev);
        match ev {
            AccessEvent::Registered {
                at,
                home_v4,
                router_v4,
                hnp,
                lifetime,
            } => {
                self.v6.registered(at, hnp, lifetime);
                match home_v4 {
                    Some(h) => self.registered(at, h, router_v4, lifetime),
                    // No IPv4 home address: nothing the DHCP server can lease.
                    None if hnp.is_none() => self.failed(at, true),
                    None => self.refuse(&at, true),
                }
            }
            AccessEvent::Refreshed { at, lifetime } => self.v6.refreshed(at, lifetime),
            AccessEvent::Failed { at, reason } => {
                crate::log_limited!(warn, mac = %mac_str(&at.mac), ?reason, "registration failed");
                self.v6.ended(at, None);
                // The anchor said no: the address is not the subscriber's;
                // no answer or no resources: not now.
                self.failed(
                    at,
                    matches!(reason, crate::agent::registrar::FailReason::Rejected(_)),
                )
            }
            AccessEvent::Restored {
                at,
                nai,
                home_v4,
                hnp,
                lifetime,
                left,
                aaa,
                ..
            } => self.restored(at, nai, (home_v4, hnp), (lifetime, left), aaa),
            AccessEvent::CheckPresence { at } => self.check_presence(at),
            AccessEvent::Gone { at, cause } => {
                self.admission.finish(Instant::now(), &at, Outcome::Left);
                self.v6.ended(at, Some(cause));
                if let Some(l) = self.links.get(&at.ifindex) {
                    let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
                    let _ = l.arp.send(ArpCmd::Unwatch { mac: at.mac });
                }
                if let Some(s) = self.subs.remove(&at) {
                    tracing::info!(nai = %s.nai, ?cause, "binding gone");
                }
            }
        }
    }

    fn registered(
        &mut self,
        at: AccessPoint,
        (home, plen): (Ipv4Addr, u8),
        anchor_router: Option<Ipv4Addr>,
        lifetime: Duration,
    ) {
        let (Some(link), Some(sub)) = (self.links.get(&at.ifindex), self.subs.get(&at)) else {
            return;
        };
        let gw_len = link.cfg.gateway.len;
        // RFC 5844 §3.4.1: the default router is the one the LMA gave, when
        // it is on the subscriber's subnet (the fast path answers ARP for
        // it); else the link's own gateway address.
        let router = anchor_router
            .filter(|r| plen > 0 && same_subnet(*r, home, plen) && *r != home)
            .unwrap_or(link.cfg.gateway.addr);
        if !sub.by_dhcp {
            // No lease to wait for (a subscriber that moved in): complete.
            self.admission.finish(Instant::now(), &at, Outcome::Done);
        }
        tracing::info!(nai = %sub.nai, %home, lifetime_s = lifetime.as_secs(), "registered");
        let info = DhcpBinding {
            home,
            // PMIPv4 replies carry no prefix length: the link's.
            prefix_len: if plen == 0 { gw_len } else { plen },
            router,
            lifetime,
            dns: sub.dns.clone(),
            mtu: sub.mtu,
        };
        let info = self.aaa.lease(&at, info);
        let _ = link.dhcp.send(DhcpCmd::BindingReady { mac: at.mac, info });
        let _ = link.arp.send(ArpCmd::Watch {
            mac: at.mac,
            home,
            gateway: router,
        });
    }

    /// A subscriber of the last run, taken up from the store: its profile
    /// again, its lease back to the DHCP server, its ARP watch.
    fn restored(
        &mut self,
        at: AccessPoint,
        nai: String,
        (home_v4, hnp): (Option<(Ipv4Addr, u8)>, Option<crate::dataplane::Hnp>),
        (lifetime, left): (Duration, Duration),
        aaa: Option<Box<crate::store::AaaProfile>>,
    ) {
        let Some(link) = self.links.get(&at.ifindex) else {
            return;
        };
        // What RADIUS gave at attach, else the local profile (as at attach).
        let authorized = aaa.as_deref().map(|r| super::aaa::stored_profile(r, &nai));
        let profile = authorized
            .as_ref()
            .or_else(|| self.cfg.profile_for(Some(&nai), &at.mac, &link.cfg.name));
        let ifname = link.cfg.name.clone();
        self.aaa
            .restored(at, (&nai, &ifname), home_v4.map(|(h, _)| h), aaa.as_deref());
        let peer = profile
            .and_then(|p| p.anchor.as_deref())
            .and_then(|n| self.cfg.peer(n))
            .or_else(|| self.cfg.peers.first());
        let mtu = peer.map(|p| self.cfg.subscriber_mtu(&link.cfg, p));
        let dns = self.cfg.dns_for(profile);
        if let (Some(p), Some(m), Some(_)) = (profile, mtu, hnp) {
            // The IPv6 side: the prefix advertised again for what is left.
            self.v6.attach(at, &nai, p, m);
            self.v6.registered(at, hnp, left);
        }
        let Some((home, plen)) = home_v4 else {
            self.subs.insert(at, Sub::new(nai, dns, mtu));
            return;
        };
        let (router, gw_len) = (link.cfg.gateway.addr, link.cfg.gateway.len);
        let info = DhcpBinding {
            home,
            prefix_len: if plen == 0 { gw_len } else { plen },
            router,
            lifetime,
            dns: dns.clone(),
            mtu,
        };
        // Never past a Session-Timeout (what is left of it).
        let info = self.aaa.lease(&at, info);
        let lifetime = info.lifetime;
        tracing::info!(%nai, %home, binding_left_s = left.as_secs(), lease_s = lifetime.as_secs(), authorized = aaa.is_some(), "restored");
        // The client's lease ends at most one lifetime after its last ACK,
        // which the store does not know (the binding's end it does, but the
        // binding is refreshed apart from the lease): the lease is given a
        // whole lifetime from now, so a client that is still there never
        // sees it end early.
        let _ = link.dhcp.send(DhcpCmd::Restore {
            mac: at.mac,
            info,
            left: lifetime,
        });
        let _ = link.arp.send(ArpCmd::Watch {
            mac: at.mac,
            home,
            gateway: router,
        });
        self.subs.insert(at, Sub::new(nai, dns, mtu));
    }

    fn failed(&mut self, at: AccessPoint, refused: bool) {
        self.moved_in.remove(&at);
        self.admission.finish(Instant::now(), &at, Outcome::Failed);
        self.refuse(&at, refused);
        self.subs.remove(&at);
    }

    /// Once a second: admission housekeeping; after a flood, the memory it
    /// took goes back to the system.
    fn tick(&mut self) {
        let h = self.admission.housekeeping(Instant::now());
        if h.flood_over {
            crate::access::admission::shrink_if_sparse(&mut self.subs);
            crate::sys::release_free_memory();
            tracing::info!(admission = ?self.admission.stats(), "attach flood over");
        }
    }

    /// `clear binding NAI`: every attachment of that identity is released.
    fn clear(&mut self, nai: &str) -> bool {
        let ats: Vec<AccessPoint> = self
            .subs
            .iter()
            .filter(|(_, s)| s.nai == nai)
            .map(|(a, _)| *a)
            .collect();
        for at in &ats {
            self.aaa.ending(at, crate::aaa::TerminateCause::AdminReset);
            if let Some(l) = self.links.get(&at.ifindex) {
                let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
            }
            self.detach(*at);
        }
        // The administrative action RFC 5213 §6.9.1.2 (7) waits for: the
        // anchor's remembered refusals of this subscriber go too.
        self.command(AccessCommand::ForgetRefusals { nai: nai.into() });
        !ats.is_empty()
    }

    /// Deregisters everyone (shutdown): one request, so a MAG can revoke
    /// them all at once (RFC 5846 global revocation).
    fn detach_all(&mut self) {
        for at in self.subs.keys() {
            if let Some(l) = self.links.get(&at.ifindex) {
                let _ = l.arp.send(ArpCmd::Unwatch { mac: at.mac });
            }
        }
        self.command(AccessCommand::DetachAll);
    }

    fn interface_of(&self, b: &BindingSummary) -> String {
        b.at.and_then(|a| self.links.get(&a.ifindex))
            .map(|l| l.cfg.name.clone())
            .unwrap_or_default()
    }

    /// Each access link's DHCP and ARP counters, the IPv6 side's and the
    /// admission's, for `show stats`.
    fn link_stats(&self) -> Vec<(String, crate::agent::registrar::Counters)> {
        let mut g = Vec::new();
        for l in self.links.values() {
            let st = *l.dhcp_stats.lock().unwrap_or_else(|e| e.into_inner());
            g.push((format!("dhcp {}", l.cfg.name), counters_of(&st)));
            let st = *l.arp_stats.lock().unwrap_or_else(|e| e.into_inner());
            g.push((format!("arp {}", l.cfg.name), counters_of(&st)));
        }
        g.extend(self.v6.stats());
        g.push(("admission".into(), counters_of(&self.admission.stats())));
        g
    }

    async fn on_ctl<C, E>(&mut self, h: &Handle<C, E>, dp: &SharedDp, req: Request) -> Response {
        if let Request::ClearBinding { nai } = req {
            // The registrar's count of forgotten refusals, before and after
            // (its requests are taken in order).
            let cleared = |r: Option<crate::agent::shell::Report>| {
                r.and_then(|r| r.counters.get("refusals_cleared").copied())
            };
            let before = cleared(h.report().await);
            let found = self.clear(&nai);
            let refusal = cleared(h.report().await) > before;
            return Response::Cleared {
                nai,
                found,
                refusal,
            };
        }
        if let Request::ShowAaa = req {
            return self.aaa.show(control::role_name(self.cfg)).await;
        }
        if let Request::ClearPeer { .. } = req {
            // An anchor's command: refused, never answered as `show stats`.
            return Response::Error {
                message: control::NOT_ON_ACCESS.into(),
            };
        }
        let report = h.report().await.unwrap_or_default();
        let ctx = ShowCtx {
            cfg: self.cfg,
            dp,
            interface: &|b| self.interface_of(b),
            groups: self.link_stats(),
        };
        control::show(&ctx, &req, &report)
    }
}

/// Runs an access registrar (MAG or PMA) with the access links until
/// `stop` or `pmipctl shutdown`.
pub(super) async fn run<E, T>(
    reloader: &Reloader,
    (ep, transport): (E, T),
    (dp, store): (SharedDp, Box<dyn Store>),
    mut ctl: mpsc::Receiver<CtlRequest>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<StopMode>
where
    E: Endpoint<Command = AccessCommand, Event = AccessEvent> + Send + 'static,
    T: Transport + 'static,
{
    let live = &reloader.live;
    let cfg = &*live.get();
    let (aaa, aaa_dp) = AccessAaa::start(cfg, dp.clone()).await?;
    let mut h = shell::spawn(ep, transport, aaa_dp, store);
    let (dhcp_tx, mut dhcp) = mpsc::unbounded_channel();
    let (arp_tx, mut arp) = mpsc::unbounded_channel();
    let (nd_tx, mut nd) = mpsc::unbounded_channel();
    let mut glue = Glue {
        cfg,
        live,
        links: start_links(cfg, &dp, &dhcp_tx, &arp_tx)?,
        subs: HashMap::new(),
        registrar: h.requests.clone(),
        admission: Admission::new(cfg.admission.clone(), Instant::now()),
        aaa,
        v6: Access6::start(cfg, &nd_tx)?,
        checks: HashMap::new(),
        moved_in: Default::default(),
    };
    let mut new_macs = start_new_mac_reader(&dp)?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    ready();
    let mode = loop {
        tokio::select! {
            _ = tick.tick() => glue.tick(),
            Some(ev) = dhcp.recv() => glue.on_dhcp(ev),
            Some(d) = arp.recv() => glue.on_arp(d),
            Some(ev) = nd.recv() => match glue.v6.on_event(ev) {
                Some(access6::Request::Attach(at)) => glue.attach(at, None, None),
                Some(access6::Request::Detach(at)) => glue.detach(at),
                Some(access6::Request::Presence { at, present }) => glue.presence(at, present),
                None => {}
            },
            Some(ev) = new_macs.recv() => glue.on_new_mac(ev),
            Some(ev) = h.events.recv() => glue.on_event(ev),
            x = glue.aaa.recv() => glue.on_aaa(x),
            Some((req, reply)) = ctl.recv() => {
                if let Request::Shutdown { deregister } = req {
                    let bindings = glue.subs.len();
                    let _ = reply.send(Response::ShuttingDown { deregister, bindings });
                    break if deregister { StopMode::Release } else { StopMode::Keep };
                }
                if req == Request::Reload {
                    let r = reloader.serve(|new| async {
                        h.command(AccessCommand::Reconfigure(new));
                        // Taken in order: answered once the registrar has it.
                        let _ = h.report().await;
                    });
                    let _ = reply.send(r.await);
                    continue;
                }
                let _ = reply.send(glue.on_ctl(&h, &dp, req).await);
            }
            _ = &mut stop => break StopMode::Keep,
        }
    };
    // Accounting ends with this run either way (Stops, then Accounting-Off);
    // a restart's restored subscribers start new sessions (`restored`).
    glue.aaa.stop_all();
    if mode == StopMode::Release {
        tracing::info!(
            "shutting down: deregistering {} subscriber(s)",
            glue.subs.len()
        );
        glue.detach_all();
        // The shell sends the deregistrations and retransmits them until
        // answered (or their schedule runs out).
        let left = stop::drain(&h, stop::release_grace(cfg)).await;
        if left > 0 {
            tracing::warn!(left, "deregistrations not answered in time");
        }
    } else {
        // A restart in waiting: the subscribers stay registered, their
        // records in the store, their entries in the pinned maps.
        tracing::info!(
            "stopping: {} subscriber(s) stay registered",
            glue.subs.len()
        );
    }
    let aaa = std::mem::replace(&mut glue.aaa, AccessAaa::none());
    drop(glue);
    h.stop(Duration::from_secs(2)).await;
    aaa.shutdown().await;
    Ok(mode)
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, plen: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(plen.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// `interfaces.access[].vlan` names the 802.1Q sub-interface's tag (seed
/// 004 `encapsulation dot1Q`): say so when the interface disagrees.
fn vlan_sanity(a: &AccessInterface) {
    match (crate::sys::vlan_id(&a.name), a.vlan) {
        (Some(dev), Some(want)) if dev != want => tracing::warn!(
            iface = %a.name, vid = dev, vlan = want,
            "interfaces.access[].vlan differs from the sub-interface's VLAN id"
        ),
        (None, Some(want)) => tracing::warn!(
            iface = %a.name, vlan = want,
            "not an 802.1Q sub-interface: the fast path matches frames tagged {want}, \
             but DHCP and ARP on this link see no tagged frames; name the sub-interface"
        ),
        _ => {}
    }
}
