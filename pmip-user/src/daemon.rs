//! `pmipd run`: one gateway from its configuration — the fast path, the
//! signaling state machine of its role and protocol, the access link (DHCP,
//! ARP detach polling) and the control socket — wired together.
//!
//! The pieces own their I/O; this module only moves events between them:
//!
//! ```text
//!  DHCP shell ──AttachRequest/Detach──►  glue  ──Attach/Detach──►  MAG / PMA ──► fast path maps
//!  ARP shell  ──Detached──────────────►   │    ◄─Registered/Gone──     │
//!             ◄─Watch/Unwatch─────────────┤                           signaling sockets
//!  DHCP shell ◄─BindingReady/Gone─────────┘
//! ```
//! The anchor role has no access link: the LMA/HA shell runs on its own and
//! the glue only refreshes the `show` snapshot and forwards `clear binding`.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::{mpsc, oneshot};

use crate::access::detach::Detached;
use crate::access::dhcp::{BindingInfo as DhcpBinding, Event as DhcpEvent};
use crate::access::shell::{ArpCmd, ArpShell, DhcpCmd, DhcpShell};
use crate::config::{AccessInterface, Config, Protocol, Role};
use crate::ctl::{self, BindingView, Request, Response, StatsView, SubscriberStats, TunnelView};
use crate::dataplane::{AccessPoint, DataPlane, DpCommand, TrafficCounters};
use crate::loader::{FastPath, IfaceSpec, LoadOptions};
use crate::pmipv4::{self, auth::SecurityAssociation, ha, pma, WallClock};
use crate::pmipv6::{self, lma, mag, transport as v6t};
use pmip_common::role;

/// The fast path shared by the signaling shell (writes bindings) and the
/// control socket (reads counters).
#[derive(Clone)]
pub struct SharedDp(pub Arc<Mutex<FastPath>>);

impl DataPlane for SharedDp {
    fn apply(&mut self, cmd: &DpCommand) -> Result<()> {
        self.0
            .lock()
            .map_err(|_| anyhow!("fast path lock poisoned"))?
            .apply(cmd)
    }
    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.0
            .lock()
            .map(|f| f.subscriber_counters(sub_id))
            .unwrap_or_default()
    }
}

/// What `pmipctl` sees; refreshed by the glue.
#[derive(Default)]
struct Snapshot {
    bindings: Vec<BindingView>,
    tunnels: Vec<TunnelView>,
    signaling: StatsView,
}

pub struct Options {
    pub ebpf_object: std::path::PathBuf,
}

/// The configured pools as the fast path indexes them (the configuration
/// was validated: a pool that does not parse is skipped here).
fn home_pools(cfg: &Config) -> Vec<crate::loader::HomePoolSpec> {
    use crate::loader::HomePoolSpec;
    cfg.pools
        .iter()
        .filter_map(|p| {
            let (addr, len) = p.prefix.split_once('/')?;
            let len: u8 = len.parse().ok()?;
            match addr.parse::<std::net::IpAddr>().ok()? {
                std::net::IpAddr::V4(prefix) => Some(HomePoolSpec::V4 { prefix, len }),
                std::net::IpAddr::V6(prefix) => Some(HomePoolSpec::V6 {
                    prefix,
                    len,
                    assign_len: p.assign_len.unwrap_or(64),
                }),
            }
        })
        .collect()
}

/// Runs the daemon until SIGINT/SIGTERM. `ready` is called once everything is up.
pub async fn run(cfg: Config, opts: Options, ready: impl FnOnce()) -> Result<()> {
    system_setup(&cfg)?;
    let home_pools = home_pools(&cfg);
    let fp = FastPath::load(&LoadOptions {
        object: opts.ebpf_object.clone(),
        pin_dir: cfg.fastpath.pin_dir.clone(),
        max_subscribers: cfg.fastpath.max_subscribers,
        role: Some(match cfg.role {
            Role::Access => crate::loader::GatewayRole::Access,
            Role::Anchor => crate::loader::GatewayRole::Anchor,
        }),
        // The home-prefix table is sized only where IPv6 pools assign prefixes.
        home_prefixes: home_pools
            .iter()
            .any(|p| matches!(p, crate::loader::HomePoolSpec::V6 { .. })),
        home_pools,
        log_events: false,
    })?;
    let dp = SharedDp(Arc::new(Mutex::new(fp)));
    attach_fast_path(&cfg, &dp)?;
    install_static_bindings(&cfg, &dp)?;

    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let (clear_tx, clear_rx) = mpsc::unbounded_channel::<String>();
    let listener = ctl::bind(&cfg.control.socket)
        .with_context(|| format!("control.socket {}", cfg.control.socket.display()))?;
    let handler = control_handler(cfg.clone(), dp.clone(), snapshot.clone(), clear_tx);
    tokio::spawn(async move {
        if let Err(e) = ctl::serve(listener, handler).await {
            tracing::warn!("control socket: {e:#}");
        }
    });

    let stop = shutdown_signal();
    let r = match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => {
            access_v6(&cfg, dp, snapshot, clear_rx, stop, ready).await
        }
        (Role::Access, Protocol::Pmipv4) => {
            access_v4(&cfg, dp, snapshot, clear_rx, stop, ready).await
        }
        (Role::Anchor, Protocol::Pmipv6) => {
            anchor_v6(&cfg, dp, snapshot, clear_rx, stop, ready).await
        }
        (Role::Anchor, Protocol::Pmipv4) => {
            anchor_v4(&cfg, dp, snapshot, clear_rx, stop, ready).await
        }
    };
    let _ = std::fs::remove_file(&cfg.control.socket);
    r
}

/// Resolves when SIGINT or SIGTERM arrives.
fn shutdown_signal() -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(());
    });
    rx
}

fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value}"))
}

/// Forwarding on, and what the kernel slow path needs: the first packets of
/// a tunnel whose next hop is unresolved reach the kernel already
/// encapsulated with our own address as source (accept_local).
fn system_setup(cfg: &Config) -> Result<()> {
    sysctl("net.ipv4.ip_forward", "1")?;
    let _ = sysctl("net.ipv6.conf.all.forwarding", "1");
    let _ = sysctl("net.ipv4.conf.all.accept_local", "1");
    for a in &cfg.interfaces.access {
        sysctl(&format!("net.ipv4.conf.{}.accept_local", a.name), "1")
            .with_context(|| format!("interfaces.access: {}", a.name))?;
        ensure_address(a)?;
    }
    for c in &cfg.interfaces.correspondent {
        sysctl(&format!("net.ipv4.conf.{c}.accept_local"), "1")
            .with_context(|| format!("interfaces.correspondent: {c}"))?;
    }
    if cfg.role == Role::Anchor {
        pool_routes(cfg);
    }
    Ok(())
}

/// The anchor host's own route to its IPv4 pools: out of the core interface
/// via the first access gateway. TC egress then tunnels each packet to the
/// gateway that really serves the address; the route only has to lead there.
fn pool_routes(cfg: &Config) {
    let Some(via) = cfg.peers.iter().find_map(|p| match p.address {
        IpAddr::V4(a) => Some(a),
        _ => None,
    }) else {
        return;
    };
    for p in &cfg.pools {
        if let Some((IpAddr::V4(_), _)) = crate::config::parse_prefix(&p.prefix) {
            let ok = std::process::Command::new("ip")
                .args([
                    "route",
                    "replace",
                    &p.prefix,
                    "via",
                    &via.to_string(),
                    "dev",
                    &cfg.interfaces.core,
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                tracing::warn!(pool = %p.prefix, "could not add the route to the pool; the anchor host cannot reach subscribers itself");
            }
        }
    }
}

/// The default router address lives on the access interface: the kernel
/// answers ICMP echo to it (draft §6.2) and DHCP replies come from it.
fn ensure_address(a: &AccessInterface) -> Result<()> {
    let (gw, len) = a
        .gateway_v4()
        .ok_or_else(|| anyhow!("{}: gateway is not IPv4", a.name))?;
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &a.name])
        .output()
        .with_context(|| format!("ip addr show dev {}", a.name))?;
    if !out.status.success() {
        bail!("interfaces.access: interface {} not found", a.name);
    }
    if String::from_utf8_lossy(&out.stdout).contains(&format!("inet {gw}/")) {
        return Ok(());
    }
    let st = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{gw}/{len}"), "dev", &a.name])
        .status()?;
    if !st.success() {
        bail!("adding {gw}/{len} to {}", a.name);
    }
    Ok(())
}

fn attach_fast_path(cfg: &Config, dp: &SharedDp) -> Result<()> {
    let mut fp = dp.0.lock().unwrap();
    let mode = cfg.fastpath.attach_mode;
    let mut specs = Vec::new();
    match cfg.role {
        Role::Access => {
            for a in &cfg.interfaces.access {
                specs.push(IfaceSpec {
                    name: a.name.clone(),
                    role: role::ACCESS,
                    addr4: a.gateway_v4().map(|g| g.0),
                    addr6: None,
                });
            }
            specs.push(IfaceSpec {
                name: cfg.interfaces.core.clone(),
                role: role::ACCESS_CORE,
                addr4: cfg.addresses.ipv4,
                addr6: cfg.addresses.ipv6,
            });
        }
        Role::Anchor => {
            let core_role = if cfg.interfaces.correspondent.is_empty() {
                role::ANCHOR_CORE | role::ANCHOR_CN
            } else {
                role::ANCHOR_CORE
            };
            specs.push(IfaceSpec {
                name: cfg.interfaces.core.clone(),
                role: core_role,
                addr4: cfg.addresses.ipv4,
                addr6: cfg.addresses.ipv6,
            });
            for c in &cfg.interfaces.correspondent {
                specs.push(IfaceSpec {
                    name: c.clone(),
                    role: role::ANCHOR_CN,
                    addr4: cfg.addresses.ipv4,
                    addr6: cfg.addresses.ipv6,
                });
            }
        }
    }
    for s in &specs {
        let m = fp
            .attach(s, mode)
            .with_context(|| format!("attaching the fast path to {}", s.name))?;
        tracing::info!(iface = %s.name, mode = ?m, "fast path attached");
    }
    Ok(())
}

/// `static_bindings`: GRE tunnels the operator configures by hand, installed
/// beside the signaled ones (sub ids from the top of the range down, so they
/// never meet the ones signaling allocates).
fn install_static_bindings(cfg: &Config, dp: &SharedDp) -> Result<()> {
    use crate::dataplane::{AccessBinding, AnchorBinding, TunnelEnds};
    let mut fp = dp.0.lock().unwrap();
    for (i, b) in cfg.static_bindings.iter().enumerate() {
        let at_key = format!("static_bindings[{i}]");
        let peer = cfg
            .peer(&b.peer)
            .ok_or_else(|| anyhow!("{at_key}.peer: no peer named {:?}", b.peer))?;
        let local = local_for(cfg, peer.address).ok_or_else(|| {
            anyhow!(
                "{at_key}.peer: no local address of the family of {}",
                peer.address
            )
        })?;
        let tunnel = TunnelEnds {
            local,
            remote: peer.address,
        };
        let sub_id = cfg.fastpath.max_subscribers - 1 - i as u32;
        match cfg.role {
            Role::Access => {
                let ifname = b
                    .interface
                    .as_deref()
                    .ok_or_else(|| anyhow!("{at_key}.interface: required in the access role"))?;
                let iface = cfg
                    .interfaces
                    .access
                    .iter()
                    .find(|a| a.name == ifname)
                    .ok_or_else(|| {
                        anyhow!("{at_key}.interface: {ifname} is not an access interface")
                    })?;
                let mac = b
                    .mac
                    .as_deref()
                    .and_then(crate::access::frame::parse_mac)
                    .ok_or_else(|| anyhow!("{at_key}.mac: required in the access role"))?;
                fp.install_access(&AccessBinding {
                    at: AccessPoint {
                        ifindex: crate::loader::ifindex(ifname)?,
                        vlan: iface.vlan.unwrap_or(0),
                        mac,
                    },
                    sub_id,
                    tunnel,
                    uplink_key: b.uplink_key,
                    downlink_key: b.downlink_key,
                    home_v4: Some(b.home_address),
                    gateway_v4: iface.gateway_v4().map(|g| g.0),
                    hnp: None,
                })
                .with_context(|| at_key.clone())?;
            }
            Role::Anchor => {
                fp.install_anchor(&AnchorBinding {
                    sub_id,
                    tunnel,
                    uplink_key: b.uplink_key,
                    downlink_key: b.downlink_key,
                    home_v4: Some(b.home_address),
                    hnp: None,
                })
                .with_context(|| at_key.clone())?;
            }
        }
        tracing::info!(binding = %at_key, home = %b.home_address, peer = %b.peer, "static binding installed");
    }
    Ok(())
}

fn control_handler(
    cfg: Config,
    dp: SharedDp,
    snap: Arc<Mutex<Snapshot>>,
    clear: mpsc::UnboundedSender<String>,
) -> ctl::Handler {
    Arc::new(move |req| {
        let s = snap.lock().unwrap();
        match req {
            Request::ShowBindings => Response::Bindings(s.bindings.clone()),
            Request::ShowTunnels => Response::Tunnels(s.tunnels.clone()),
            Request::ShowStats => {
                let mut st = s.signaling.clone();
                if let Ok(fp) = dp.0.lock() {
                    if let Ok(c) = fp.counters() {
                        let g: std::collections::BTreeMap<String, u64> =
                            c.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
                        st.groups.insert("fastpath".into(), g);
                    }
                    if let Ok(m) = fp.map_entries() {
                        st.groups.insert(
                            "fastpath_maps".into(),
                            m.into_iter()
                                .map(|(n, v)| (n.to_lowercase(), v as u64))
                                .collect(),
                        );
                    }
                    st.subscribers = s
                        .bindings
                        .iter()
                        .map(|b| SubscriberStats {
                            nai: b.nai.clone(),
                            sub_id: b.sub_id,
                            traffic: fp.subscriber_counters(b.sub_id).into(),
                        })
                        .collect();
                }
                let _ = &cfg;
                Response::Stats(st)
            }
            Request::ClearBinding { nai } => {
                let found = s.bindings.iter().any(|b| b.nai == nai);
                if found {
                    let _ = clear.send(nai.clone());
                }
                Response::Cleared { nai, found }
            }
        }
    })
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn secs(d: Duration) -> u32 {
    d.as_secs().min(u32::MAX as u64) as u32
}

/// Per-start restart counter (RFC 5847 §5.2): a peer seeing it change knows we lost state.
fn restart_counter() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

// ------------------------------------------------------------------ access side

/// A subscriber the access side knows about.
struct Sub {
    nai: String,
    ifname: String,
    dns: Vec<Ipv4Addr>,
    mtu: Option<u16>,
    registered_at: Option<Instant>,
    /// PMIPv4: index of its traffic counters (0 for PMIPv6: the MAG's own).
    sub_id: u32,
}

/// The access link of one interface: its DHCP server and ARP monitor.
struct Link {
    cfg: AccessInterface,
    dhcp: mpsc::UnboundedSender<DhcpCmd>,
    arp: mpsc::UnboundedSender<ArpCmd>,
    /// The DHCP server's counters, for `show stats`.
    dhcp_stats: Arc<Mutex<crate::access::dhcp::DhcpStats>>,
}

/// Starts the DHCP server and ARP monitor of every access interface.
fn start_links(
    cfg: &Config,
    dhcp_events: &mpsc::UnboundedSender<DhcpEvent>,
    arp_events: &mpsc::UnboundedSender<Detached>,
) -> Result<HashMap<u32, Link>> {
    let mut links = HashMap::new();
    for a in &cfg.interfaces.access {
        let dcfg = cfg
            .dhcp_server_config(a)
            .ok_or_else(|| anyhow!("{}: no IPv4 gateway", a.name))?;
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
    let ring = dp.0.lock().unwrap().new_mac_events()?;
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

/// What the glue needs from the MAG or the PMA.
enum Registrar {
    V6(mpsc::UnboundedSender<v6t::MagCommand>),
    V4(pmipv4::transport::Shell<pma::Pma>),
}

/// Registration outcomes, whichever the protocol.
enum RegEvent {
    Registered {
        at: AccessPoint,
        home: Ipv4Addr,
        prefix_len: Option<u8>,
        lifetime: Duration,
    },
    Failed {
        at: AccessPoint,
    },
    Gone {
        at: AccessPoint,
    },
}

/// The access-side glue shared by both protocols.
struct AccessGlue<'a> {
    cfg: &'a Config,
    links: HashMap<u32, Link>,
    subs: HashMap<AccessPoint, Sub>,
    reg: Registrar,
    /// PMIPv4: the daemon names the subscriber's counters (the MAG does its own).
    sub_ids: pmipv6::IdAlloc,
}

/// What the access link tells the glue: DHCP events, ARP-poll detaches, and
/// the fast path's reports of unknown MACs.
struct AccessInputs {
    dhcp: mpsc::UnboundedReceiver<DhcpEvent>,
    arp: mpsc::UnboundedReceiver<Detached>,
    new_macs: mpsc::UnboundedReceiver<pmip_common::NewMacEvent>,
}

impl<'a> AccessGlue<'a> {
    /// Starts every access link (DHCP server, ARP monitor) and the new-MAC
    /// reader; the registrar is the MAG's command channel or the PMA's shell.
    fn start(cfg: &'a Config, dp: &SharedDp, reg: Registrar) -> Result<(Self, AccessInputs)> {
        let (dhcp_tx, dhcp) = mpsc::unbounded_channel();
        let (arp_tx, arp) = mpsc::unbounded_channel();
        let links = start_links(cfg, &dhcp_tx, &arp_tx)?;
        let new_macs = start_new_mac_reader(dp)?;
        let glue = AccessGlue {
            cfg,
            links,
            subs: HashMap::new(),
            reg,
            sub_ids: pmipv6::IdAlloc::new(1024),
        };
        Ok((
            glue,
            AccessInputs {
                dhcp,
                arp,
                new_macs,
            },
        ))
    }
}

impl AccessGlue<'_> {
    fn on_dhcp(&mut self, ev: DhcpEvent) {
        match ev {
            DhcpEvent::AttachRequest {
                at,
                client_id,
                requested,
            } => {
                let Some(link) = self.links.get(&at.ifindex) else {
                    return;
                };
                let ifname = link.cfg.name.clone();
                let (nai, profile) =
                    self.cfg
                        .resolve_subscriber(client_id.as_deref(), &at.mac, &ifname);
                let Some(profile) = profile else {
                    tracing::info!(mac = %mac_str(&at.mac), %nai, "no profile and no default profile: refused");
                    let _ = link.dhcp.send(DhcpCmd::BindingFailed { mac: at.mac });
                    return;
                };
                let anchor = profile
                    .anchor
                    .clone()
                    .or_else(|| self.cfg.peers.first().map(|p| p.name.clone()));
                let Some(peer) = anchor.as_deref().and_then(|n| self.cfg.peer(n)) else {
                    tracing::warn!(%nai, "profile {} names no known anchor", profile.name);
                    let _ = link.dhcp.send(DhcpCmd::BindingFailed { mac: at.mac });
                    return;
                };
                let mtu = Some(self.cfg.subscriber_mtu(&link.cfg, peer));
                let dns = self.cfg.dns_for(Some(profile));
                let requested_v4 = profile.home_address.or(requested);
                let sub_id = match (self.subs.get(&at), &self.reg) {
                    (Some(s), _) => s.sub_id,
                    (None, Registrar::V4(_)) => match self.sub_ids.alloc() {
                        Some(id) => id,
                        None => {
                            let _ = link.dhcp.send(DhcpCmd::BindingFailed { mac: at.mac });
                            return;
                        }
                    },
                    // The MAG names its subscribers' counters itself.
                    (None, Registrar::V6(_)) => 0,
                };
                tracing::info!(%nai, mac = %mac_str(&at.mac), iface = %ifname, anchor = %peer.name, "attach");
                match &self.reg {
                    Registrar::V6(tx) => {
                        let _ = tx.send(v6t::MagCommand::Attach(mag::AttachRequest {
                            at,
                            mn_id: nai.clone().into_bytes(),
                            lma: peer.name.clone(),
                            ipv4: true,
                            requested_v4,
                            ipv6: false,
                            apn: profile.apn.clone().map(String::into_bytes),
                        }));
                    }
                    Registrar::V4(shell) => {
                        let IpAddr::V4(ha) = peer.address else { return };
                        let alternate = profile
                            .alternate_anchor
                            .as_deref()
                            .and_then(|n| self.cfg.peer(n))
                            .and_then(|p| match p.address {
                                IpAddr::V4(a) => Some(a),
                                _ => None,
                            });
                        let mut s = pma::Subscriber::new(&nai, at, sub_id, ha);
                        s.alternate_ha = alternate;
                        s.static_home = profile.home_address;
                        s.imsi = profile.imsi.clone();
                        s.interface_id = Some(ifname.clone().into_bytes());
                        shell.with(|p, now| p.attach(now, s));
                    }
                }
                self.subs.insert(
                    at,
                    Sub {
                        nai,
                        ifname,
                        dns,
                        mtu,
                        registered_at: None,
                        sub_id,
                    },
                );
            }
            DhcpEvent::Detach { at, reason } => {
                tracing::info!(mac = %mac_str(&at.mac), ?reason, "DHCP detach");
                self.detach(at);
            }
        }
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
        self.on_dhcp(DhcpEvent::AttachRequest {
            at,
            client_id: None,
            requested,
        });
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
        let Some(sub) = self.subs.get(&at) else {
            return;
        };
        match &self.reg {
            Registrar::V6(tx) => {
                let _ = tx.send(v6t::MagCommand::Detach(at));
            }
            Registrar::V4(shell) => {
                let nai = sub.nai.clone();
                shell.with(|p, now| p.detach(now, &nai));
            }
        }
    }

    fn on_reg(&mut self, ev: RegEvent) {
        match ev {
            RegEvent::Registered {
                at,
                home,
                prefix_len,
                lifetime,
            } => {
                let (Some(link), Some(sub)) = (self.links.get(&at.ifindex), self.subs.get_mut(&at))
                else {
                    return;
                };
                let (router, gw_len) = link.cfg.gateway_v4().unwrap_or((Ipv4Addr::UNSPECIFIED, 24));
                sub.registered_at = Some(Instant::now());
                tracing::info!(nai = %sub.nai, %home, lifetime_s = lifetime.as_secs(), "registered");
                let info = DhcpBinding {
                    home,
                    prefix_len: prefix_len.unwrap_or(gw_len),
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
            RegEvent::Failed { at } => {
                if let Some(l) = self.links.get(&at.ifindex) {
                    let _ = l.dhcp.send(DhcpCmd::BindingFailed { mac: at.mac });
                }
                self.forget(&at);
            }
            RegEvent::Gone { at } => {
                if let Some(l) = self.links.get(&at.ifindex) {
                    let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
                    let _ = l.arp.send(ArpCmd::Unwatch { mac: at.mac });
                }
                if let Some(nai) = self.forget(&at) {
                    tracing::info!(%nai, "binding gone");
                }
            }
        }
    }

    /// Drops a subscriber and frees its counter index; returns its NAI.
    fn forget(&mut self, at: &AccessPoint) -> Option<String> {
        let s = self.subs.remove(at)?;
        if s.sub_id != 0 {
            self.sub_ids.release(s.sub_id);
        }
        Some(s.nai)
    }

    fn on_clear(&mut self, nai: &str) {
        let ats: Vec<AccessPoint> = self
            .subs
            .iter()
            .filter(|(_, s)| s.nai == nai)
            .map(|(a, _)| *a)
            .collect();
        for at in ats {
            if let Some(l) = self.links.get(&at.ifindex) {
                let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
            }
            self.detach(at);
        }
    }

    /// Adds each access link's DHCP counters to the `show stats` snapshot.
    fn publish_link_stats(&self, snap: &Mutex<Snapshot>) {
        let mut s = snap.lock().unwrap();
        for l in self.links.values() {
            let st = *l.dhcp_stats.lock().unwrap();
            s.signaling.add_group(&format!("dhcp {}", l.cfg.name), &st);
        }
    }

    /// Deregisters everyone (shutdown).
    fn detach_all(&mut self) {
        let ats: Vec<AccessPoint> = self.subs.keys().copied().collect();
        for at in ats {
            self.detach(at);
        }
    }

    fn view(
        &self,
        at: &AccessPoint,
        state: &str,
        home: Option<Ipv4Addr>,
        peer: (&str, IpAddr),
        keys: (u32, u32),
        lifetime: Option<Duration>,
        sub_id: u32,
    ) -> BindingView {
        let sub = self.subs.get(at);
        let lifetime_s = lifetime.map(secs).unwrap_or(0);
        let left = match (sub.and_then(|s| s.registered_at), lifetime) {
            (Some(t), Some(l)) => secs(l.saturating_sub(t.elapsed())),
            _ => 0,
        };
        BindingView {
            domain: self.cfg.node_id.clone(),
            nai: sub.map(|s| s.nai.clone()).unwrap_or_default(),
            state: state.to_string(),
            interface: sub.map(|s| s.ifname.clone()).unwrap_or_default(),
            vlan: if at.vlan != 0 { Some(at.vlan) } else { None },
            home_v4: home,
            hnp: None,
            att: 4,
            llid: mac_str(&at.mac),
            peer_kind: if self.cfg.protocol == Protocol::Pmipv6 {
                "LMA"
            } else {
                "HA"
            }
            .into(),
            peer_name: peer.0.to_string(),
            peer: peer.1,
            lifetime_s,
            lifetime_left_s: left,
            gre_key_up: keys.0,
            gre_key_down: keys.1,
            sub_id,
        }
    }
}

/// Replaces what `pmipctl show` reports.
fn publish<C: serde::Serialize>(
    snap: &Mutex<Snapshot>,
    views: Vec<BindingView>,
    local: Option<IpAddr>,
    group: &str,
    counters: &C,
) {
    let mut s = snap.lock().unwrap();
    s.tunnels = tunnels_of(&views, local);
    s.bindings = views;
    s.signaling = StatsView::default();
    s.signaling.add_group(group, counters);
}

fn tunnels_of(bindings: &[BindingView], local: Option<IpAddr>) -> Vec<TunnelView> {
    let mut t: std::collections::BTreeMap<(String, String), TunnelView> = Default::default();
    for b in bindings {
        let e = t
            .entry((b.peer_name.clone(), b.peer.to_string()))
            .or_insert_with(|| TunnelView {
                peer_name: b.peer_name.clone(),
                local,
                remote: Some(b.peer),
                bindings: 0,
                state: "-".into(),
            });
        e.bindings += 1;
    }
    t.into_values().collect()
}

fn local_for(cfg: &Config, peer: IpAddr) -> Option<IpAddr> {
    match peer {
        IpAddr::V4(_) => cfg.addresses.ipv4.map(IpAddr::V4),
        IpAddr::V6(_) => cfg.addresses.ipv6.map(IpAddr::V6),
    }
}

fn mag_config(cfg: &Config) -> mag::MagConfig {
    let t = &cfg.timers;
    mag::MagConfig {
        local: pmipv6::LocalAddrs {
            v6: cfg.addresses.ipv6,
            v4: cfg.addresses.ipv4,
        },
        lmas: cfg
            .peers
            .iter()
            .map(|p| mag::LmaPeerConfig {
                name: p.name.clone(),
                addr: p.address,
                port: pmipv6::wire::UDP_PORT,
            })
            .collect(),
        lifetime: Duration::from_secs(t.lifetime_s.into()),
        refresh: Duration::from_secs(t.refresh_s.into()),
        retx_initial: Duration::from_millis(t.retx_initial_ms.into()),
        retx_max: Duration::from_millis(t.retx_max_ms.into()),
        max_retx: t.max_retransmissions.into(),
        // 0 turns heartbeats off: a day between them is as good as never.
        heartbeat_interval: Duration::from_secs(if t.heartbeat_interval_s == 0 {
            86_400
        } else {
            t.heartbeat_interval_s.into()
        }),
        heartbeat_missing_limit: t.heartbeat_misses.into(),
        restart_counter: restart_counter(),
        ..mag::MagConfig::default()
    }
}

async fn access_v6(
    cfg: &Config,
    dp: SharedDp,
    snapshot: Arc<Mutex<Snapshot>>,
    mut clear_rx: mpsc::UnboundedReceiver<String>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let mcfg = mag_config(cfg);
    let sockets = v6t::Sockets::bind(&mcfg.local, pmipv6::wire::UDP_PORT, true)
        .context("binding the PMIPv6 sockets (addresses.*)")?;
    let mut m = mag::Mag::new(mcfg, Instant::now(), SystemTime::now());
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mut shell_dp = dp.clone();
    let shell =
        tokio::spawn(async move { v6t::run(&mut m, &sockets, &mut shell_dp, cmd_rx, ev_tx).await });
    let (mut glue, mut inputs) = AccessGlue::start(cfg, &dp, Registrar::V6(cmd_tx.clone()))?;
    ready();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(ev) = inputs.dhcp.recv() => glue.on_dhcp(ev),
            Some(d) = inputs.arp.recv() => glue.on_arp(d),
            Some(ev) = inputs.new_macs.recv() => glue.on_new_mac(ev),
            Some(ev) = ev_rx.recv() => {
                let r = match ev {
                    mag::MagEvent::Registered { at, home_v4: Some((home, plen)), lifetime, .. } =>
                        RegEvent::Registered { at, home, prefix_len: Some(plen), lifetime },
                    mag::MagEvent::Registered { at, .. } => RegEvent::Failed { at },
                    mag::MagEvent::RegistrationFailed { at, reason } => {
                        tracing::warn!(?reason, "registration failed");
                        RegEvent::Failed { at }
                    }
                    mag::MagEvent::Deregistered { at } => RegEvent::Gone { at },
                    mag::MagEvent::Revoked { at, trigger } => {
                        tracing::info!(trigger, "binding revoked by the LMA");
                        RegEvent::Gone { at }
                    }
                };
                glue.on_reg(r);
            }
            Some(nai) = clear_rx.recv() => glue.on_clear(&nai),
            _ = tick.tick() => {
                let (tx, rx) = oneshot::channel();
                let _ = cmd_tx.send(v6t::MagCommand::Bindings(tx));
                let (ctx, crx) = oneshot::channel();
                let _ = cmd_tx.send(v6t::MagCommand::Counters(ctx));
                if let (Ok(list), Ok(counters)) = (rx.await, crx.await) {
                    let views: Vec<BindingView> = list
                        .iter()
                        .map(|(at, b)| {
                            let peer = cfg.peer(&b.lma).map(|p| p.address).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                            glue.view(at, b.state, b.home_v4.map(|h| h.0), (&b.lma, peer), (b.uplink_key.unwrap_or(0), b.downlink_key), b.lifetime, b.sub_id)
                        })
                        .collect();
                    let local = views.first().and_then(|v| local_for(cfg, v.peer));
                    publish(&snapshot, views, local, "mag", &counters);
                    glue.publish_link_stats(&snapshot);
                }
            }
            _ = &mut stop => break,
        }
    }
    tracing::info!(
        "shutting down: deregistering {} subscriber(s)",
        glue.subs.len()
    );
    glue.detach_all();
    // Give the deregistrations a moment on the wire.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(glue);
    drop(cmd_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), shell).await;
    Ok(())
}

fn sa_of(p: &crate::config::Peer, tolerance_s: u32) -> Result<SecurityAssociation> {
    let spi = p
        .spi
        .ok_or_else(|| anyhow!("peers {}: spi missing", p.name))?;
    let key = p
        .key_bytes()
        .ok_or_else(|| anyhow!("peers {}: key missing", p.name))?;
    let algorithm = match p.algorithm.unwrap_or(crate::config::Algorithm::HmacMd5) {
        crate::config::Algorithm::HmacMd5 => pmipv4::auth::Algorithm::HmacMd5,
        crate::config::Algorithm::Rfc2002Md5 => pmipv4::auth::Algorithm::KeyedMd5PrefixSuffix,
    };
    Ok(SecurityAssociation {
        spi,
        key,
        algorithm,
        timestamp_tolerance_s: tolerance_s,
    })
}

async fn bind_434(addr: Ipv4Addr) -> Result<tokio::net::UdpSocket> {
    let s = tokio::net::UdpSocket::bind(SocketAddrV4::new(addr, 434))
        .await
        .with_context(|| format!("binding UDP {addr}:434 (addresses.ipv4)"))?;
    pmipv4::transport::grow_receive_buffer(&s, 4 << 20);
    Ok(s)
}

async fn access_v4(
    cfg: &Config,
    dp: SharedDp,
    snapshot: Arc<Mutex<Snapshot>>,
    mut clear_rx: mpsc::UnboundedReceiver<String>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let t = &cfg.timers;
    let addr = cfg
        .addresses
        .ipv4
        .ok_or_else(|| anyhow!("addresses.ipv4: PMIPv4 needs an IPv4 address"))?;
    let tolerance = (t.timestamp_window_ms / 1000).max(1);
    let mut has = Vec::new();
    for p in &cfg.peers {
        if let IpAddr::V4(a) = p.address {
            has.push(pma::HaPeer {
                address: a,
                sa: sa_of(p, tolerance)?,
            });
        }
    }
    let mut pcfg = pma::PmaConfig::new(addr, has);
    pcfg.lifetime_s = t.lifetime_s.min(u16::MAX as u32) as u16;
    pcfg.renew_percent = t.renew_percent;
    pcfg.retransmission_timeout_ms = t.retx_initial_ms.into();
    pcfg.max_retransmissions = t.max_retransmissions.into();
    pcfg.ha_failover = pma::HaFailover {
        enabled: t.ha_failover.enabled,
        max_attempts: t.ha_failover.max_attempts.into(),
        num_attempts_before_switching: t.ha_failover.attempts_before_switching.into(),
        timeout_ms: Some(u64::from(t.ha_failover.timeout_s) * 1000),
    };
    let machine = pma::Pma::new(pcfg, WallClock::new(Instant::now(), SystemTime::now()));
    let shell = pmipv4::transport::Shell::new(machine);
    let socket = bind_434(addr).await?;
    let stop_flag = Arc::new(AtomicBool::new(false));
    let runner = {
        let (shell, dp, stop_flag) = (
            shell.clone(),
            Arc::new(Mutex::new(dp.clone())),
            stop_flag.clone(),
        );
        tokio::spawn(async move { shell.run(socket, dp, stop_flag).await })
    };
    let (mut glue, mut inputs) = AccessGlue::start(cfg, &dp, Registrar::V4(shell.clone()))?;
    ready();
    // The PMA has no event channel: its events are drained here, often enough
    // that a DHCP OFFER follows the registration reply within milliseconds.
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(ev) = inputs.dhcp.recv() => glue.on_dhcp(ev),
            Some(d) = inputs.arp.recv() => glue.on_arp(d),
            Some(ev) = inputs.new_macs.recv() => glue.on_new_mac(ev),
            Some(nai) = clear_rx.recv() => glue.on_clear(&nai),
            _ = poll.tick() => {
                let events: Vec<pma::PmaEvent> = shell.with(|p, _| std::iter::from_fn(|| p.poll_event()).collect());
                for ev in events {
                    let nai = match &ev {
                        pma::PmaEvent::Registered { nai, .. } | pma::PmaEvent::RegistrationFailed { nai, .. }
                        | pma::PmaEvent::Expired { nai } | pma::PmaEvent::Revoked { nai } | pma::PmaEvent::Deregistered { nai } => nai.clone(),
                    };
                    let Some(at) = glue.subs.iter().find(|(_, s)| s.nai == nai).map(|(a, _)| *a) else { continue };
                    let r = match ev {
                        pma::PmaEvent::Registered { home_address, lifetime, .. } =>
                            RegEvent::Registered { at, home: home_address, prefix_len: None, lifetime: Duration::from_secs(lifetime.into()) },
                        pma::PmaEvent::RegistrationFailed { code, .. } => {
                            tracing::warn!(?code, %nai, "registration failed");
                            RegEvent::Failed { at }
                        }
                        _ => RegEvent::Gone { at },
                    };
                    glue.on_reg(r);
                }
            }
            _ = tick.tick() => {
                let (sessions, counters) = shell.with(|p, now| (p.sessions(now), p.counters().clone()));
                let views: Vec<BindingView> = sessions
                    .iter()
                    .map(|s| {
                        let name = cfg.peers.iter().find(|p| p.address == IpAddr::V4(s.ha)).map(|p| p.name.clone()).unwrap_or_default();
                        let mut v = glue.view(&s.at, s.state, s.home, (&name, IpAddr::V4(s.ha)), (s.uplink_key.unwrap_or(0), s.downlink_key), None, s.sub_id);
                        v.nai = s.nai.clone();
                        v.lifetime_left_s = s.lifetime_left.map(secs).unwrap_or(0);
                        v.lifetime_s = cfg.timers.lifetime_s;
                        v
                    })
                    .collect();
                let local = cfg.addresses.ipv4.map(IpAddr::V4);
                publish(&snapshot, views, local, "pma", &counters);
                glue.publish_link_stats(&snapshot);
            }
            _ = &mut stop => break,
        }
    }
    tracing::info!(
        "shutting down: deregistering {} subscriber(s)",
        glue.subs.len()
    );
    glue.detach_all();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_flag.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(2), runner).await;
    Ok(())
}

// ------------------------------------------------------------------ anchor side

fn lma_config(cfg: &Config) -> Result<lma::LmaConfig> {
    let t = &cfg.timers;
    let mut l = lma::LmaConfig {
        local: pmipv6::LocalAddrs {
            v6: cfg.addresses.ipv6,
            v4: cfg.addresses.ipv4,
        },
        mags: cfg.peers.iter().map(|p| p.address).collect(),
        max_lifetime: Duration::from_secs(t.lifetime_s.into()),
        timestamp_window: Duration::from_millis(t.timestamp_window_ms.into()),
        bri_retx_initial: Duration::from_millis(t.bri_delay_min_ms.into()),
        bri_retx_max: Duration::from_millis(t.bri_delay_max_ms.into()),
        bri_max_retx: t.bri_max_retransmissions.into(),
        restart_counter: restart_counter(),
        heartbeat_interval: Duration::from_secs(if t.heartbeat_interval_s == 0 {
            86_400
        } else {
            t.heartbeat_interval_s.into()
        }),
        heartbeat_missing_limit: t.heartbeat_misses.into(),
        ..lma::LmaConfig::default()
    };
    for (i, p) in cfg.pools.iter().enumerate() {
        match crate::config::parse_prefix(&p.prefix) {
            Some((IpAddr::V4(network), prefix_len)) => {
                let gateway = p.gateway.ok_or_else(|| {
                    anyhow!(
                        "pools[{i}].gateway: an IPv4 pool needs the subscribers' default router"
                    )
                })?;
                l.ipv4_pool = Some(lma::Ipv4PoolConfig {
                    network,
                    prefix_len,
                    gateway,
                });
            }
            Some((IpAddr::V6(prefix), prefix_len)) => {
                l.ipv6_pool = Some(lma::Ipv6PoolConfig {
                    prefix,
                    prefix_len,
                    assign_len: p.assign_len.unwrap_or(64),
                });
            }
            None => bail!("pools[{i}].prefix: not an address/length"),
        }
    }
    for p in &cfg.profiles {
        let prof = lma::Profile {
            ipv4: true,
            ipv6: l.ipv6_pool.is_some(),
            allow_static: p.home_address.is_some(),
            static_v4: p.home_address,
        };
        match &p.nai {
            Some(n) => {
                l.subscribers.insert(n.clone(), prof);
            }
            None => l.default_profile = Some(prof),
        }
    }
    if cfg.profiles.is_empty() {
        // No profiles at all: serve every subscriber from the pools.
        l.default_profile = Some(lma::Profile {
            ipv6: l.ipv6_pool.is_some(),
            ..lma::Profile::default()
        });
    }
    Ok(l)
}

async fn anchor_v6(
    cfg: &Config,
    dp: SharedDp,
    snapshot: Arc<Mutex<Snapshot>>,
    mut clear_rx: mpsc::UnboundedReceiver<String>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let lcfg = lma_config(cfg)?;
    let sockets = v6t::Sockets::bind(&lcfg.local, pmipv6::wire::UDP_PORT, true)
        .context("binding the PMIPv6 sockets (addresses.*)")?;
    let mut l = lma::Lma::new(lcfg, Instant::now(), SystemTime::now());
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
    let mut shell_dp = dp.clone();
    let shell =
        tokio::spawn(async move { v6t::run(&mut l, &sockets, &mut shell_dp, cmd_rx, ev_tx).await });
    ready();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(nai) = clear_rx.recv() => {
                // RFC 5846 §6.1: per-MN revocation, trigger 1 = unspecified / administrative.
                let _ = cmd_tx.send(v6t::LmaCommand::Revoke { mn_id: nai.into_bytes(), trigger: 1 });
            }
            _ = tick.tick() => {
                let (tx, rx) = oneshot::channel();
                let _ = cmd_tx.send(v6t::LmaCommand::Bindings(tx));
                let (ctx, crx) = oneshot::channel();
                let _ = cmd_tx.send(v6t::LmaCommand::Counters(ctx));
                if let (Ok(list), Ok(counters)) = (rx.await, crx.await) {
                    let now = Instant::now();
                    let views: Vec<BindingView> = list
                        .iter()
                        .filter(|b| !b.deleting)
                        .map(|b| {
                            let left = Some(b.expires_at.saturating_duration_since(now));
                            anchor_view(cfg, &String::from_utf8_lossy(&b.mn_id), &b.llid, b.mag.ip(), b.home_v4.map(|h| h.0), (b.uplink_key, b.downlink_key), b.lifetime, left, b.sub_id)
                        })
                        .collect();
                    let local = views.first().and_then(|v| local_for(cfg, v.peer));
                    publish(&snapshot, views, local, "lma", &counters);
                }
            }
            _ = &mut stop => break,
        }
    }
    drop(cmd_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), shell).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn anchor_view(
    cfg: &Config,
    nai: &str,
    llid: &[u8],
    peer: IpAddr,
    home: Option<Ipv4Addr>,
    keys: (u32, u32),
    lifetime: Duration,
    left: Option<Duration>,
    sub_id: u32,
) -> BindingView {
    let name = cfg
        .peers
        .iter()
        .find(|p| p.address == peer)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let llid = if llid.len() == 6 {
        mac_str(&[llid[0], llid[1], llid[2], llid[3], llid[4], llid[5]])
    } else {
        String::from_utf8_lossy(llid).into_owned()
    };
    BindingView {
        domain: cfg.node_id.clone(),
        nai: nai.to_string(),
        state: "ACTIVE".into(),
        interface: cfg.interfaces.core.clone(),
        vlan: None,
        home_v4: home,
        hnp: None,
        att: 4,
        llid,
        peer_kind: if cfg.protocol == Protocol::Pmipv6 {
            "MAG"
        } else {
            "PMA"
        }
        .into(),
        peer_name: name,
        peer,
        lifetime_s: secs(lifetime),
        lifetime_left_s: left.map(secs).unwrap_or_else(|| secs(lifetime)),
        gre_key_up: keys.0,
        gre_key_down: keys.1,
        sub_id,
    }
}

async fn anchor_v4(
    cfg: &Config,
    dp: SharedDp,
    snapshot: Arc<Mutex<Snapshot>>,
    mut clear_rx: mpsc::UnboundedReceiver<String>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let t = &cfg.timers;
    let addr = cfg
        .addresses
        .ipv4
        .ok_or_else(|| anyhow!("addresses.ipv4: PMIPv4 needs an IPv4 address"))?;
    let tolerance = (t.timestamp_window_ms / 1000).max(1);
    let pool = cfg
        .pools
        .iter()
        .enumerate()
        .find_map(|(i, p)| match crate::config::parse_prefix(&p.prefix) {
            Some((IpAddr::V4(n), len)) => Some((i, n, len, p.gateway)),
            _ => None,
        })
        .ok_or_else(|| anyhow!("pools: the HA needs an IPv4 pool"))?;
    let (_, net, len, gw) = pool;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let first = u32::from(net) & mask;
    let last = first | !mask;
    // Hosts only; the gateway is handed out as router, never as a home address.
    let (mut lo, mut hi) = (first + 1, last - 1);
    if let Some(g) = gw {
        if u32::from(g) == lo {
            lo += 1;
        } else if u32::from(g) == hi {
            hi -= 1;
        }
    }
    let mut peers = Vec::new();
    for p in &cfg.peers {
        if let IpAddr::V4(a) = p.address {
            peers.push(ha::PmaPeer {
                address: a,
                sa: sa_of(p, tolerance)?,
                proxy_allowed: true,
            });
        }
    }
    let mut hcfg = ha::HaConfig::new(
        addr,
        ha::AddressPool {
            first: lo.into(),
            last: hi.into(),
        },
        peers,
    );
    hcfg.max_lifetime_s = t.lifetime_s.min(u16::MAX as u32) as u16;
    hcfg.revocation_timeout_ms = t.bri_delay_min_ms.into();
    hcfg.revocation_retries = t.bri_max_retransmissions.into();
    hcfg.profiles = cfg
        .profiles
        .iter()
        .filter_map(|p| {
            Some(ha::SubscriberProfile {
                nai: p.nai.clone()?,
                static_home: p.home_address,
                allow_requested: true,
            })
        })
        .collect();
    let machine = ha::Ha::new(hcfg, WallClock::new(Instant::now(), SystemTime::now()));
    let shell = pmipv4::transport::Shell::new(machine);
    let socket = bind_434(addr).await?;
    let stop_flag = Arc::new(AtomicBool::new(false));
    let runner = {
        let (shell, dp, stop_flag) = (
            shell.clone(),
            Arc::new(Mutex::new(dp.clone())),
            stop_flag.clone(),
        );
        tokio::spawn(async move { shell.run(socket, dp, stop_flag).await })
    };
    ready();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(nai) = clear_rx.recv() => {
                let found = shell.with(|h, now| h.clear(now, &nai));
                tracing::info!(%nai, found, "clear binding");
            }
            _ = tick.tick() => {
                let (list, counters) = shell.with(|h, _| {
                    while h.poll_event().is_some() {}
                    (h.bindings(), h.counters().clone())
                });
                let now = Instant::now();
                let views: Vec<BindingView> = list
                    .iter()
                    .map(|(nai, b)| {
                        let left = b.expires_at.saturating_duration_since(now);
                        anchor_view(cfg, nai, &[], IpAddr::V4(b.pma), Some(b.home_address), (b.uplink_key, b.downlink_key), Duration::from_secs(cfg.timers.lifetime_s.into()), Some(left), b.sub_id)
                    })
                    .collect();
                let local = cfg.addresses.ipv4.map(IpAddr::V4);
                publish(&snapshot, views, local, "ha", &counters);
            }
            _ = &mut stop => break,
        }
    }
    stop_flag.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(2), runner).await;
    Ok(())
}
