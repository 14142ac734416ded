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
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, oneshot};

use super::control::{self, mac_str, CtlRequest, ShowCtx};
use super::fastpath::SharedDp;
use super::reload::Live;
use crate::access::detach::{DetachStats, Detached};
use crate::access::dhcp::{BindingInfo as DhcpBinding, DhcpStats, Event as DhcpEvent};
use crate::access::shell::{ArpCmd, ArpShell, DhcpCmd, DhcpShell};
use crate::agent::registrar::{
    counters_of, AccessCommand, AccessEvent, AttachRequest, BindingSummary,
};
use crate::agent::shell::{self, Handle};
use crate::agent::{Endpoint, Transport};
use crate::config::{AccessInterface, Config};
use crate::ctl::{Request, Response};
use crate::dataplane::AccessPoint;

/// A subscriber the access side knows about: what its lease needs.
struct Sub {
    nai: String,
    dns: Vec<Ipv4Addr>,
    mtu: Option<u16>,
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
    dhcp_events: &mpsc::UnboundedSender<DhcpEvent>,
    arp_events: &mpsc::UnboundedSender<Detached>,
) -> Result<HashMap<u32, Link>> {
    let mut links = HashMap::new();
    for a in &cfg.interfaces.access {
        let dcfg = cfg.dhcp_server_config(a);
        let shell =
            DhcpShell::open(&a.name, dcfg).with_context(|| format!("DHCP server on {}", a.name))?;
        let ifindex = shell.ifindex();
        let dhcp_stats = shell.stats();
        let (dtx, drx) = mpsc::unbounded_channel();
        let ev = dhcp_events.clone();
        tokio::spawn(async move {
            if let Err(e) = shell.run(drx, ev).await {
                tracing::error!("DHCP server: {e:#}");
            }
        });
        let mut arp = ArpShell::open(&a.name, a.vlan.unwrap_or(0), cfg.detach.monitor_config())
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
}

impl Glue<'_> {
    fn command(&self, c: AccessCommand) {
        let _ = self.registrar.send(shell::Request::Command(c));
    }

    fn refuse(&self, at: &AccessPoint) {
        if let Some(l) = self.links.get(&at.ifindex) {
            let _ = l.dhcp.send(DhcpCmd::BindingFailed { mac: at.mac });
        }
    }

    fn on_dhcp(&mut self, ev: DhcpEvent) {
        match ev {
            DhcpEvent::AttachRequest {
                at,
                client_id,
                requested,
            } => self.attach(at, client_id.as_deref(), requested),
            DhcpEvent::Detach { at, reason } => {
                tracing::info!(mac = %mac_str(&at.mac), ?reason, "DHCP detach");
                self.detach(at);
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
        let (nai, profile) = live.resolve_subscriber(client_id, &at.mac, &ifname);
        let Some(profile) = profile else {
            tracing::info!(mac = %mac_str(&at.mac), %nai, "no profile and no default profile: refused");
            self.refuse(&at);
            return;
        };
        let anchor = profile
            .anchor
            .clone()
            .or_else(|| self.cfg.peers.first().map(|p| p.name.clone()));
        let Some(peer) = anchor.as_deref().and_then(|n| self.cfg.peer(n)) else {
            tracing::warn!(%nai, "profile {} names no known anchor", profile.name);
            self.refuse(&at);
            return;
        };
        let mtu = Some(self.cfg.subscriber_mtu(&link.cfg, peer));
        let dns = live.dns_for(Some(profile));
        tracing::info!(%nai, mac = %mac_str(&at.mac), iface = %ifname, anchor = %peer.name, "attach");
        let alternate = profile
            .alternate_anchor
            .as_deref()
            .and_then(|n| self.cfg.peer(n))
            .map(|p| p.address);
        self.command(AccessCommand::Attach(AttachRequest {
            at,
            nai: nai.clone(),
            anchor: peer.address,
            alternate,
            ipv4: true,
            ipv6: false,
            static_v4: profile.home_address,
            requested_v4: requested,
            apn: profile.apn.clone(),
            imsi: profile.imsi.clone(),
            interface_id: Some(ifname.into_bytes()),
        }));
        self.subs.insert(at, Sub { nai, dns, mtu });
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
        let requested = Some(Ipv4Addr::from(ev.src_v4)).filter(|a| !a.is_unspecified());
        tracing::info!(mac = %mac_str(&at.mac), ?requested, "data from an unknown MAC: registering it");
        self.attach(at, None, requested);
    }

    fn on_arp(&mut self, d: Detached) {
        tracing::info!(mac = %mac_str(&d.at.mac), "ARP polling: subscriber gone");
        if let Some(l) = self.links.get(&d.at.ifindex) {
            let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: d.at.mac });
        }
        self.detach(d.at);
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
        match ev {
            AccessEvent::Registered {
                at,
                home_v4: Some((home, plen)),
                router_v4,
                lifetime,
                ..
            } => self.registered(at, (home, plen), router_v4, lifetime),
            // No IPv4 home address: nothing the DHCP server can lease.
            AccessEvent::Registered { at, .. } => self.failed(at),
            AccessEvent::Failed { at, reason } => {
                tracing::warn!(mac = %mac_str(&at.mac), ?reason, "registration failed");
                self.failed(at)
            }
            AccessEvent::Gone { at, cause } => {
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
        _router: Option<Ipv4Addr>,
        lifetime: Duration,
    ) {
        let (Some(link), Some(sub)) = (self.links.get(&at.ifindex), self.subs.get(&at)) else {
            return;
        };
        let (router, gw_len) = (link.cfg.gateway.addr, link.cfg.gateway.len);
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
        let _ = link.dhcp.send(DhcpCmd::BindingReady { mac: at.mac, info });
        let _ = link.arp.send(ArpCmd::Watch {
            mac: at.mac,
            home,
            gateway: router,
        });
    }

    fn failed(&mut self, at: AccessPoint) {
        self.refuse(&at);
        self.subs.remove(&at);
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
            if let Some(l) = self.links.get(&at.ifindex) {
                let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
            }
            self.detach(*at);
        }
        !ats.is_empty()
    }

    /// Deregisters everyone (shutdown).
    fn detach_all(&mut self) {
        let ats: Vec<AccessPoint> = self.subs.keys().copied().collect();
        for at in ats {
            self.detach(at);
        }
    }

    fn interface_of(&self, b: &BindingSummary) -> String {
        b.at.and_then(|a| self.links.get(&a.ifindex))
            .map(|l| l.cfg.name.clone())
            .unwrap_or_default()
    }

    /// Each access link's DHCP and ARP counters, for `show stats`.
    fn link_stats(&self) -> Vec<(String, crate::agent::registrar::Counters)> {
        let mut g = Vec::new();
        for l in self.links.values() {
            let st = *l.dhcp_stats.lock().unwrap_or_else(|e| e.into_inner());
            g.push((format!("dhcp {}", l.cfg.name), counters_of(&st)));
            let st = *l.arp_stats.lock().unwrap_or_else(|e| e.into_inner());
            g.push((format!("arp {}", l.cfg.name), counters_of(&st)));
        }
        g
    }

    async fn on_ctl<C, E>(&mut self, h: &Handle<C, E>, dp: &SharedDp, req: Request) -> Response {
        if let Request::ClearBinding { nai } = req {
            let found = self.clear(&nai);
            return Response::Cleared { nai, found };
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

/// Runs an access registrar (MAG or PMA) with the access links until `stop`.
pub(super) async fn run<E, T>(
    live: &Live,
    (ep, transport): (E, T),
    dp: SharedDp,
    mut ctl: mpsc::Receiver<CtlRequest>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()>
where
    E: Endpoint<Command = AccessCommand, Event = AccessEvent> + Send + 'static,
    T: Transport + 'static,
{
    let cfg = &*live.get();
    let mut h = shell::spawn(ep, transport, dp.clone());
    let (dhcp_tx, mut dhcp) = mpsc::unbounded_channel();
    let (arp_tx, mut arp) = mpsc::unbounded_channel();
    let mut glue = Glue {
        cfg,
        live,
        links: start_links(cfg, &dhcp_tx, &arp_tx)?,
        subs: HashMap::new(),
        registrar: h.requests.clone(),
    };
    let mut new_macs = start_new_mac_reader(&dp)?;
    ready();
    loop {
        tokio::select! {
            Some(ev) = dhcp.recv() => glue.on_dhcp(ev),
            Some(d) = arp.recv() => glue.on_arp(d),
            Some(ev) = new_macs.recv() => glue.on_new_mac(ev),
            Some(ev) = h.events.recv() => glue.on_event(ev),
            Some((req, reply)) = ctl.recv() => {
                let _ = reply.send(glue.on_ctl(&h, &dp, req).await);
            }
            _ = &mut stop => break,
        }
    }
    tracing::info!(
        "shutting down: deregistering {} subscriber(s)",
        glue.subs.len()
    );
    glue.detach_all();
    drop(glue);
    // The shell takes the detaches, sends the deregistrations and stops.
    h.stop(Duration::from_secs(2)).await;
    Ok(())
}
