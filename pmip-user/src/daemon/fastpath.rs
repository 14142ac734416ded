//! The fast path as the daemon uses it: loaded with the configured sizes
//! and pins, attached to the gateway's interfaces, the static bindings
//! installed, and shared between the registrar's shell (which writes
//! bindings) and the control socket (which reads counters).
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};

use crate::config::{Config, Role};
use crate::dataplane::{AccessPoint, DataPlane, DpCommand, TrafficCounters};
use crate::fastpath::{FastPath, GatewayRole, HomePoolSpec, IfaceSpec, LoadOptions, ObjectSource};
use pmip_common::role;

/// The fast path shared by the signaling shell (writes bindings) and the
/// control socket (reads counters).
#[derive(Clone)]
pub struct SharedDp(pub Arc<Mutex<FastPath>>);

impl SharedDp {
    /// Runs `f` on the fast path.
    pub fn with<R>(&self, f: impl FnOnce(&mut FastPath) -> R) -> Result<R> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| anyhow!("fast path lock poisoned"))?;
        Ok(f(&mut g))
    }
}

impl DataPlane for SharedDp {
    fn apply(&mut self, cmd: &DpCommand) -> Result<()> {
        self.with(|f| f.apply(cmd))?
    }
    fn subscriber_counters(&self, sub_id: u32) -> TrafficCounters {
        self.with(|f| f.subscriber_counters(sub_id))
            .unwrap_or_default()
    }
}

/// A subscriber's uplink packet count as the access gateway's fast path
/// has it, for the DHCP server's held leases (`access/dhcp/hold.rs`).
pub(super) fn uplink_count(dp: &SharedDp) -> crate::access::shell::UplinkCount {
    let dp = dp.clone();
    Box::new(move |at| {
        dp.with(|f| f.access_traffic(at))
            .ok()?
            .ok()?
            .map(|t| t.up_packets)
    })
}

/// The map sizes and tables the configuration asks for (what the preflight
/// check weighs, and what [`load`] loads with).
pub(super) fn sized(cfg: &Config) -> LoadOptions {
    let home_pools = crate::config::agents::home_pools(cfg);
    LoadOptions {
        max_subscribers: cfg.fastpath.max_subscribers,
        role: Some(match cfg.role {
            Role::Access => GatewayRole::Access,
            Role::Anchor => GatewayRole::Anchor,
        }),
        // The home-prefix table is sized only where IPv6 pools assign prefixes.
        home_prefixes: home_pools
            .iter()
            .any(|p| matches!(p, HomePoolSpec::V6 { .. })),
        home_pools,
        ..LoadOptions::default()
    }
}

/// Loads the eBPF object with the configured sizes, pools and pins.
pub(super) fn load(cfg: &Config, object: &ObjectSource) -> Result<SharedDp> {
    let (file, embedded) = match object {
        ObjectSource::File(p) => (p.clone(), None),
        ObjectSource::Embedded(b) => (std::path::PathBuf::new(), Some(*b)),
    };
    let fp = FastPath::load(&LoadOptions {
        object: file,
        embedded,
        pin_dir: cfg.fastpath.pin_dir.clone(),
        // The fast path's slow-path events cost nothing unless someone reads them.
        log_events: tracing::enabled!(target: "pmip_ebpf", tracing::Level::DEBUG),
        ..sized(cfg)
    })?;
    if tracing::enabled!(target: "pmip_ebpf", tracing::Level::DEBUG) {
        crate::fastpath_log::spawn(&fp)?;
    }
    Ok(SharedDp(Arc::new(Mutex::new(fp))))
}

pub(super) fn attach(cfg: &Config, dp: &SharedDp) -> Result<()> {
    let mut fp =
        dp.0.lock()
            .map_err(|_| anyhow!("fast path lock poisoned"))?;
    let mode = cfg.fastpath.attach_mode;
    let mut specs = Vec::new();
    match cfg.role {
        Role::Access => {
            for a in &cfg.interfaces.access {
                specs.push(IfaceSpec {
                    name: a.name.clone(),
                    role: role::ACCESS,
                    addr4: Some(a.gateway.addr),
                    addr6: super::access6::icmp_source(cfg, &a.name),
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
pub(super) fn install_static_bindings(cfg: &Config, dp: &SharedDp) -> Result<()> {
    use crate::dataplane::{AccessBinding, AnchorBinding, TunnelEnds};
    let mut fp =
        dp.0.lock()
            .map_err(|_| anyhow!("fast path lock poisoned"))?;
    for (i, b) in cfg.static_bindings.iter().enumerate() {
        let at_key = format!("static_bindings[{i}]");
        let peer = cfg
            .peer(&b.peer)
            .ok_or_else(|| anyhow!("{at_key}.peer: no peer named {:?}", b.peer))?;
        let local = super::local_for(cfg, peer.address).ok_or_else(|| {
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
                    .ok_or_else(|| anyhow!("{at_key}.mac: required in the access role"))?;
                fp.install_access(&AccessBinding {
                    at: AccessPoint {
                        ifindex: crate::sys::ifindex(ifname)?,
                        vlan: cfg.frame_vlan(iface),
                        mac,
                    },
                    sub_id,
                    tunnel,
                    uplink_key: b.uplink_key,
                    downlink_key: b.downlink_key,
                    home_v4: Some(b.home_address),
                    gateway_v4: Some(iface.gateway.addr),
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
