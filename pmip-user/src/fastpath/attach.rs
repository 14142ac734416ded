//! Attaching the programs: XDP (native, generic) or TC ingress per
//! interface, TC egress on anchor interfaces, links pinned so the fast path
//! outlives the agent, and each interface's role and addresses.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use aya::maps::{Array, HashMap};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::Ebpf;
use pmip_common::{maps, IfaceConfig};

use super::{
    map_err, xdp_program_for, FastPath, PASS_PROGRAM, PROGRAM, TC_EGRESS_PROGRAM,
    TC_INGRESS_PROGRAM,
};
use crate::sys::{iface_mac, ifindex};

/// How to attach the fast path to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// Native (driver) XDP, else generic XDP, else TC ingress.
    Auto,
    /// Native (driver) XDP only.
    Native,
    /// Generic (skb) XDP only.
    Generic,
    /// `pmip_tc_ingress` on the TC ingress hook (TCX) only: the same paths on
    /// an skb, for interfaces where no XDP mode attaches.
    Tc,
}

/// How an interface got the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Xdp(XdpMode),
    Tc,
    /// A link pinned by an earlier run was found and kept.
    Kept,
}

/// An interface's part in the fast path, with the addresses ICMP errors come from.
#[derive(Clone, Debug)]
pub struct IfaceSpec {
    pub name: String,
    pub role: u8,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
}

impl FastPath {
    pub fn program(&self) -> Result<&Xdp> {
        self.xdp_program(PROGRAM)
    }

    /// XDP program `name` of the object, once loaded (by
    /// [`loaded_program`](Self::loaded_program) or an attach).
    pub fn xdp_program(&self, name: &str) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?)
    }

    /// `pmip_tc_ingress` (loaded by [`load_tc_program`](Self::load_tc_program)).
    pub fn tc_program(&self) -> Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program(TC_INGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_INGRESS_PROGRAM} missing"))?
            .try_into()?)
    }

    /// Loads `pmip_tc_ingress` (on first use only: XDP-only gateways never
    /// pay for its verification). BPF_PROG_TEST_RUN and TC attach use it.
    pub fn load_tc_program(&mut self) -> Result<&SchedClassifier> {
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_INGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_INGRESS_PROGRAM} missing"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load().context("verifier rejected pmip_tc_ingress")?;
        }
        Ok(prog)
    }

    /// Writes the interface's role and addresses (no attach; TestRun uses this).
    pub fn configure_iface(&mut self, spec: &IfaceSpec) -> Result<u32> {
        let idx = ifindex(&spec.name)?;
        let cfg = IfaceConfig {
            mac: iface_mac(&spec.name)?,
            role: spec.role,
            _pad: 0,
            addr4: spec.addr4.map(|a| a.octets()).unwrap_or_default(),
            addr6: spec.addr6.map(|a| a.octets()).unwrap_or_default(),
        };
        if idx < pmip_common::IFACE_SLOTS {
            let mut m: Array<_, IfaceConfig> = Array::try_from(self.map_mut(maps::IFACES)?)?;
            m.set(idx, cfg, 0).map_err(map_err)?;
        } else {
            let mut m: HashMap<_, u32, IfaceConfig> =
                HashMap::try_from(self.map_mut(maps::IFACES_HIGH)?)?;
            m.insert(idx, cfg, 0).map_err(map_err)?;
        }
        Ok(idx)
    }

    /// Configures and attaches the fast path to an interface. With `Auto`:
    /// native XDP, generic XDP when the driver cannot do native, and the TC
    /// ingress program when no XDP mode attaches. Anchor interfaces also get
    /// the TC egress program. With a pin directory the links are pinned: the
    /// fast path keeps forwarding after we exit, and a restarted agent finds
    /// them (and the pinned maps) and attaches nothing.
    pub fn attach(&mut self, spec: &IfaceSpec, mode: AttachMode) -> Result<Attached> {
        self.configure_iface(spec)?;
        if spec.role & (pmip_common::role::ANCHOR_CORE | pmip_common::role::ANCHOR_CN) != 0 {
            self.attach_tc_egress(&spec.name)?;
        }
        let pins = self.pin_dir.as_ref().map(|d| {
            (
                d.join(format!("link_xdp_{}", spec.name)),
                d.join(format!("link_tc_ingress_{}", spec.name)),
            )
        });
        if let Some((xdp, tc)) = &pins {
            if let Some(p) = [xdp, tc].into_iter().find(|p| p.exists()) {
                tracing::info!(iface = %spec.name, pin = %p.display(), "fast path already attached by an earlier run; keeping it");
                self.attached.push((spec.name.clone(), Attached::Kept));
                return Ok(Attached::Kept);
            }
        }
        let modes: &[XdpMode] = match mode {
            AttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
            AttachMode::Native => &[XdpMode::Driver],
            AttachMode::Generic => &[XdpMode::Skb],
            AttachMode::Tc => &[],
        };
        // The role's own program; an object from before them has only
        // pmip_xdp (loaded at start).
        let name = match xdp_program_for(spec.role) {
            n if self.ebpf.program(n).is_some() => n,
            _ => PROGRAM,
        };
        let prog = loaded_xdp(&mut self.ebpf, name)?;
        let mut last = None;
        for m in modes {
            match prog.attach(&spec.name, *m) {
                Ok(id) => {
                    if let Some((p, _)) = &pins {
                        let link: FdLink = prog.take_link(id)?.try_into()?;
                        link.pin(p)
                            .map_err(|e| anyhow!("pinning XDP link at {}: {e}", p.display()))?;
                    }
                    self.attached.push((spec.name.clone(), Attached::Xdp(*m)));
                    return Ok(Attached::Xdp(*m));
                }
                Err(e) => {
                    tracing::warn!(iface = %spec.name, mode = ?m, error = %e, "XDP attach failed");
                    last = Some(anyhow!("XDP ({m:?}): {e}"));
                }
            }
        }
        if matches!(mode, AttachMode::Auto | AttachMode::Tc) {
            match self.attach_tc_ingress(&spec.name, pins.as_ref().map(|(_, tc)| tc.as_path())) {
                Ok(()) => {
                    self.attached.push((spec.name.clone(), Attached::Tc));
                    return Ok(Attached::Tc);
                }
                Err(e) => {
                    tracing::warn!(iface = %spec.name, error = %e, "TC ingress attach failed");
                    last = Some(e);
                }
            }
        }
        Err(anyhow!(
            "attaching the fast path to {}: {}",
            spec.name,
            last.map(|e| format!("{e:#}")).unwrap_or_default()
        ))
    }

    /// Attaches `pmip_tc_ingress` on the interface's ingress (TCX on this
    /// kernel, as the egress program), pinning the link at `pin` if given.
    fn attach_tc_ingress(&mut self, iface: &str, pin: Option<&Path>) -> Result<()> {
        // Kernels before 6.6 attach through a clsact qdisc; TCX needs none.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        self.load_tc_program()?;
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_INGRESS_PROGRAM)
            .unwrap()
            .try_into()?;
        let id = prog
            .attach(iface, TcAttachType::Ingress)
            .with_context(|| format!("attaching TC ingress to {iface}"))?;
        if let Some(p) = pin {
            let link: FdLink = prog.take_link(id)?.try_into()?;
            link.pin(p)
                .map_err(|e| anyhow!("pinning TC link at {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Another XDP program of the object, loaded on first use.
    pub fn loaded_program(&mut self, name: &str) -> Result<&Xdp> {
        Ok(loaded_xdp(&mut self.ebpf, name)?)
    }

    /// Attaches the pass-everything program (see [`attach_pass`]): pmipd's
    /// `xdp-pass` and static role `pass`.
    pub fn attach_pass(&mut self, iface: &str) -> Result<()> {
        attach_pass(&mut self.ebpf, iface)
    }

    /// Attaches `pmip_tc_egress` on the interface's egress (TCX on this kernel).
    pub(crate) fn attach_tc_egress(&mut self, iface: &str) -> Result<()> {
        let pin = self
            .pin_dir
            .as_ref()
            .map(|d| d.join(format!("link_tc_egress_{iface}")));
        if pin.as_ref().map(|p| p.exists()).unwrap_or(false) {
            return Ok(());
        }
        // Kernels before 6.6 attach through a clsact qdisc; TCX needs none.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {TC_EGRESS_PROGRAM} missing"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load().context("verifier rejected pmip_tc_egress")?;
        }
        let id = prog
            .attach(iface, TcAttachType::Egress)
            .with_context(|| format!("attaching TC egress to {iface}"))?;
        if let Some(p) = &pin {
            let link: FdLink = prog.take_link(id)?.try_into()?;
            link.pin(p)
                .map_err(|e| anyhow!("pinning TC link at {}: {e}", p.display()))?;
        }
        Ok(())
    }
}

/// XDP program `name` of `ebpf`, verified on first use.
pub fn loaded_xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing"))?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(prog)
}

/// Attaches [`PASS_PROGRAM`] of `ebpf` (either object) in native mode: a
/// veth peer needs an XDP program for native XDP_TX/redirect into the pair
/// to be received. Attached while `ebpf` lives.
pub fn attach_pass(ebpf: &mut Ebpf, iface: &str) -> Result<()> {
    loaded_xdp(ebpf, PASS_PROGRAM)?
        .attach(iface, XdpMode::Driver)
        .with_context(|| format!("attaching {PASS_PROGRAM} to {iface}"))?;
    Ok(())
}
