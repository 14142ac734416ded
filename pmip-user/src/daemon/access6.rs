//! The IPv6 side of the access links, wired to the registrar: PMIPv6
//! home-link emulation (RFC 5213 §6.7–6.9) for unmodified IPv6 nodes.
//!
//! ```text
//!  ND shell (RS, NUD) ──AttachRequest/Detached──►  glue (access.rs)  ──Attach/Detach──► MAG
//!  DHCPv6 (Solicit, Release) ─AttachRequest/Detach─►  │   ◄──Registered/Refreshed/Gone──
//!  ND shell ◄─Advertise / Withdraw / Forget────────────┤  (this module decides which)
//!  DHCPv6   ◄─BindingReady / Gone──────────────────────┘
//! ```
//! One [`NdShell`] per access interface (a VLAN is its own sub-interface),
//! started when a profile asks for IPv6 service. Every MAG of a domain sends
//! from the same router MAC and link-local address (RFC 5213 §6.8, §6.9.3,
//! `[ipv6]` in the configuration), so a node that moves sees the same
//! default router. What the access side does for a subscriber follows its
//! profile's `service`: IPv4 (DHCP only, as before), IPv6, or dual.
//!
//! The registration's answers become:
//! - Registered with an HNP → an RA with that prefix, unicast to that node
//!   only, and the DHCPv6 server told the lease; Refreshed → the same again,
//!   with the new lifetime.
//! - Gone (deregistered, expired, revoked by the operator) or failed after it
//!   was registered → the final RA (lifetimes 0): the node loses its address.
//! - Revoked because the node moved to another MAG (RFC 5846 triggers 2–4) →
//!   forgotten silently: a final RA from the shared router address could
//!   reach the node behind the new MAG and take its address away.
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::control::mac_str;
use crate::access::dhcp6::{Binding6, Dhcp6ServerConfig, Event as Dhcp6Event};
use crate::access::frame::mac_colon;
use crate::access::frame6::link_local_from_mac;
use crate::access::nd_shell::{NdCmd, NdEvent, NdShell, NdShellStats};
use crate::access::ra::{Advertisement, Event as RaEvent, RaConfig};
use crate::agent::registrar::{counters_of, Counters, GoneCause};
use crate::config::{AccessInterface, Config, Profile, Service};
use crate::dataplane::{AccessPoint, Hnp};
use crate::pmipv6::wire::revocation_trigger;
use crate::sys::sysctl;

/// What the IPv6 link asks of the glue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// An RS, a DHCPv6 Solicit (or Request after a move) from a subscriber
    /// whose profile wants IPv6: register it.
    Attach(AccessPoint),
    /// NUD found the node gone, or it released its DHCPv6 lease.
    Detach(AccessPoint),
    /// The answer to [`Access6::check`].
    Presence { at: AccessPoint, present: bool },
}

/// The router MAC and link-local address of access interface `ifname`:
/// the configured ones, else the interface's MAC and its EUI-64 address.
pub(super) fn router_addrs(cfg: &Config, ifname: &str) -> Result<([u8; 6], Ipv6Addr)> {
    let mac = match cfg.ipv6.router_mac {
        Some(m) => m,
        None => crate::sys::iface_mac(ifname)?,
    };
    let ll = cfg
        .ipv6
        .router_link_local
        .unwrap_or_else(|| link_local_from_mac(mac));
    Ok((mac, ll))
}

/// The source of the ICMPv6 errors the fast path sends on an access
/// interface: the shared router link-local address (None without IPv6 service).
pub(super) fn icmp_source(cfg: &Config, ifname: &str) -> Option<Ipv6Addr> {
    if !cfg.ipv6_access() {
        return None;
    }
    router_addrs(cfg, ifname).ok().map(|(_, ll)| ll)
}

/// Prepares an access interface for IPv6 service: the configured router
/// MAC on it (the NIC then accepts frames to it, and the fast path sends
/// from it), and the kernel kept from forming an address of its own there:
/// its EUI-64 link-local would be the shared router address, which DAD
/// between two MAGs of one L2 domain would find duplicated. The node's
/// neighbour discovery is answered by the ND engine, not by the kernel.
pub(super) fn setup_link(cfg: &Config, a: &AccessInterface) -> Result<()> {
    if !cfg.ipv6_access() {
        return Ok(());
    }
    if let Some(mac) = cfg.ipv6.router_mac {
        if crate::sys::iface_mac(&a.name)? != mac {
            let st = std::process::Command::new("ip")
                .args(["link", "set", "dev", &a.name, "address", &mac_colon(&mac)])
                .status()
                .with_context(|| format!("ip link set dev {} address", a.name))?;
            anyhow::ensure!(
                st.success(),
                "ipv6.router_mac: setting {} on {} failed",
                mac_colon(&mac),
                a.name
            );
            tracing::info!(iface = %a.name, mac = %mac_colon(&mac), "router MAC set on the access interface");
        }
    }
    for (key, value) in [
        ("addr_gen_mode", "1"),
        ("accept_dad", "0"),
        ("accept_ra", "0"),
    ] {
        if let Err(e) = sysctl(&format!("net.ipv6.conf.{}.{key}", a.name), value) {
            tracing::warn!(iface = %a.name, "net.ipv6.conf.{key}: {e:#}");
        }
    }
    // A link-local address formed before we came: gone, or the kernel
    // answers for the shared router address beside the ND engine.
    let _ = std::process::Command::new("ip")
        .args(["-6", "addr", "flush", "dev", &a.name, "scope", "link"])
        .status();
    Ok(())
}

/// One access interface's IPv6 control plane.
struct Link6 {
    name: String,
    nd: mpsc::UnboundedSender<NdCmd>,
    stats: Arc<Mutex<NdShellStats>>,
}

/// What the IPv6 side keeps of a subscriber between attach and binding end.
struct Sub6 {
    nai: String,
    service: Service,
    dns: Vec<Ipv6Addr>,
    /// Link MTU to announce (the access MTU minus the tunnel).
    mtu: u32,
    /// The prefix being advertised, once registered.
    hnp: Option<Hnp>,
}

/// The IPv6 side of every access link.
pub(super) struct Access6<'a> {
    cfg: &'a Config,
    links: HashMap<u32, Link6>,
    subs: HashMap<AccessPoint, Sub6>,
}

impl<'a> Access6<'a> {
    /// Starts an ND shell (and DHCPv6 server) on every access interface if
    /// any profile asks for IPv6; its events go to `events`.
    pub(super) fn start(cfg: &'a Config, events: &mpsc::UnboundedSender<NdEvent>) -> Result<Self> {
        let mut links = HashMap::new();
        if cfg.ipv6_access() {
            for a in &cfg.interfaces.access {
                let (ifindex, link) = start_link(cfg, a, events)
                    .with_context(|| format!("IPv6 access link on {}", a.name))?;
                links.insert(ifindex, link);
            }
        }
        Ok(Access6 {
            cfg,
            links,
            subs: HashMap::new(),
        })
    }

    fn send(&self, at: &AccessPoint, c: NdCmd) {
        if let Some(l) = self.links.get(&at.ifindex) {
            let _ = l.nd.send(c);
        }
    }

    /// The glue registers `at` under `profile`: remember what its IPv6
    /// link needs (an attach again keeps the prefix being advertised).
    pub(super) fn attach(&mut self, at: AccessPoint, nai: &str, profile: &Profile, mtu: u16) {
        let service = profile.access_service();
        if !service.ipv6() || !self.links.contains_key(&at.ifindex) {
            self.subs.remove(&at);
            return;
        }
        let hnp = self.subs.get(&at).and_then(|s| s.hnp);
        self.subs.insert(
            at,
            Sub6 {
                nai: nai.to_string(),
                service,
                dns: self.cfg.dns6_for(Some(profile)),
                mtu: u32::from(mtu),
                hnp,
            },
        );
    }

    /// The registration succeeded (or the MAG repeated it): advertise the
    /// prefix to this node, ready the DHCPv6 lease.
    pub(super) fn registered(&mut self, at: AccessPoint, hnp: Option<Hnp>, lifetime: Duration) {
        let Some(s) = self.subs.get_mut(&at) else {
            return;
        };
        let Some(h) = hnp else {
            tracing::warn!(nai = %s.nai, service = ?s.service, "the anchor granted no home network prefix: no IPv6 service");
            self.send(&at, NdCmd::Forget { mac: at.mac });
            self.send(&at, NdCmd::Dhcp6BindingFailed { mac: at.mac });
            return;
        };
        tracing::info!(nai = %s.nai, hnp = %format!("{}/{}", h.prefix, h.len), "prefix advertised");
        s.hnp = Some(h);
        self.advertise(at, lifetime);
    }

    /// Whether `at` has a home network prefix advertised here.
    pub(super) fn has_prefix(&self, at: &AccessPoint) -> bool {
        self.subs.get(at).is_some_and(|s| s.hnp.is_some())
    }

    /// Asks `at`'s link whether the node is still there (answered with
    /// [`Request::Presence`]); false when it has no prefix advertised here.
    pub(super) fn check(&self, at: &AccessPoint) -> bool {
        if self.subs.get(at).is_none_or(|s| s.hnp.is_none()) {
            return false;
        }
        self.send(at, NdCmd::Check { mac: at.mac });
        true
    }

    /// A refresh: the same prefix, the binding's new lifetime.
    pub(super) fn refreshed(&mut self, at: AccessPoint, lifetime: Duration) {
        if self.subs.get(&at).is_some_and(|s| s.hnp.is_some()) {
            self.advertise(at, lifetime);
        }
    }

    fn advertise(&self, at: AccessPoint, lifetime: Duration) {
        let Some(s) = self.subs.get(&at) else { return };
        let Some(hnp) = s.hnp else { return };
        let adv = Advertisement {
            hnp,
            lifetime,
            dns: s.dns.clone(),
            mtu: Some(s.mtu),
            managed: self.cfg.ipv6.managed,
            autonomous: true,
        };
        self.send(&at, NdCmd::Advertise { mac: at.mac, adv });
        if self.cfg.ipv6.dhcpv6 {
            let binding = Binding6::new(hnp, lifetime, s.dns.clone());
            self.send(
                &at,
                NdCmd::Dhcp6BindingReady {
                    mac: at.mac,
                    binding,
                },
            );
        }
    }

    /// The binding ended (`cause`) or its registration failed (None).
    pub(super) fn ended(&mut self, at: AccessPoint, cause: Option<GoneCause>) {
        let Some(s) = self.subs.remove(&at) else {
            return;
        };
        let moved = matches!(
            cause,
            Some(GoneCause::Revoked(
                revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT
                    | revocation_trigger::INTER_MAG_HANDOVER_DIFFERENT_ATT
                    | revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN
            ))
        );
        let mac = at.mac;
        if moved || s.hnp.is_none() {
            self.send(&at, NdCmd::Forget { mac });
        } else {
            tracing::info!(nai = %s.nai, ?cause, "prefix withdrawn");
            self.send(&at, NdCmd::Withdraw { mac });
        }
        self.send(
            &at,
            if s.hnp.is_none() {
                NdCmd::Dhcp6BindingFailed { mac }
            } else {
                NdCmd::Dhcp6BindingGone { mac }
            },
        );
    }

    /// Whether `at`'s profile asks for IPv6 service.
    fn wants_ipv6(&self, at: &AccessPoint) -> bool {
        let Some(l) = self.links.get(&at.ifindex) else {
            return false;
        };
        let (_, profile) = self.cfg.resolve_subscriber(None, &at.mac, &l.name);
        profile.is_some_and(|p| p.access_service().ipv6())
    }

    /// An event of an IPv6 link: what the glue must do, if anything.
    pub(super) fn on_event(&mut self, ev: NdEvent) -> Option<Request> {
        match ev {
            NdEvent::Nd(RaEvent::AttachRequest { at, link_local }) => {
                if self.wants_ipv6(&at) {
                    tracing::info!(mac = %mac_str(&at.mac), ?link_local, "router solicitation: attach");
                    return Some(Request::Attach(at));
                }
                // An IPv4 subscriber's stack solicits too: no IPv6 for it.
                self.send(&at, NdCmd::Forget { mac: at.mac });
                None
            }
            NdEvent::Nd(RaEvent::Presence { at, present }) => {
                Some(Request::Presence { at, present })
            }
            NdEvent::Nd(RaEvent::Detached { at }) => {
                tracing::info!(mac = %mac_str(&at.mac), "neighbour unreachability: subscriber gone");
                Some(Request::Detach(at))
            }
            NdEvent::Dhcp6(Dhcp6Event::AttachRequest { at, .. }) => {
                if self.wants_ipv6(&at) {
                    tracing::info!(mac = %mac_str(&at.mac), "DHCPv6: attach");
                    return Some(Request::Attach(at));
                }
                self.send(&at, NdCmd::Dhcp6BindingFailed { mac: at.mac });
                None
            }
            NdEvent::Dhcp6(Dhcp6Event::Detach { at, reason }) => {
                tracing::info!(mac = %mac_str(&at.mac), ?reason, "DHCPv6 detach");
                Some(Request::Detach(at))
            }
        }
    }

    /// Each link's ND and DHCPv6 counters, for `show stats`.
    pub(super) fn stats(&self) -> Vec<(String, Counters)> {
        let mut v = Vec::new();
        for l in self.links.values() {
            let st = *l.stats.lock().unwrap_or_else(|e| e.into_inner());
            let mut nd = counters_of(&st.ra);
            nd.insert("tx_errors".into(), st.tx_errors);
            v.push((format!("nd {}", l.name), nd));
            if self.cfg.ipv6.dhcpv6 {
                v.push((format!("dhcpv6 {}", l.name), counters_of(&st.dhcp6)));
            }
        }
        v
    }
}

/// The RA engine's and DHCPv6 server's parameters of access interface `a`.
fn link_configs(
    cfg: &Config,
    a: &AccessInterface,
) -> Result<(RaConfig, Option<Dhcp6ServerConfig>)> {
    let (mac, ll) = router_addrs(cfg, &a.name)?;
    // As the frames on this interface carry it: none on an 802.1Q
    // sub-interface (the kernel took the tag off), `vlan` on the parent.
    let vlan = cfg.frame_vlan(a);
    let v6 = &cfg.ipv6;
    let mut ra = RaConfig::new(0, vlan, mac).with_max_interval(v6.ra_interval_max);
    ra.router_ll = ll;
    ra.prefix_lifetime_cap = v6.prefix_lifetime_cap;
    ra.attach_timeout = cfg.dhcp.offer_timeout;
    // Neighbour unreachability probing where ARP polling is on for IPv4.
    ra.probing = cfg.detach.enabled.then(|| cfg.detach.monitor_config());
    let dhcp6 = v6.dhcpv6.then(|| {
        let mut d = Dhcp6ServerConfig::new(0, vlan, mac);
        d.offer_timeout = cfg.dhcp.offer_timeout;
        d
    });
    Ok((ra, dhcp6))
}

fn start_link(
    cfg: &Config,
    a: &AccessInterface,
    events: &mpsc::UnboundedSender<NdEvent>,
) -> Result<(u32, Link6)> {
    let (ra, dhcp6) = link_configs(cfg, a)?;
    let shell = NdShell::open(&a.name, ra, dhcp6)?;
    let ifindex = shell.ifindex();
    let stats = shell.stats();
    let (tx, rx) = mpsc::unbounded_channel();
    let ev = events.clone();
    let name = a.name.clone();
    tokio::spawn(async move {
        if let Err(e) = shell.run(rx, ev).await {
            tracing::error!("IPv6 access link on {name}: {e:#}");
        }
    });
    Ok((
        ifindex,
        Link6 {
            name: a.name.clone(),
            nd: tx,
            stats,
        },
    ))
}
