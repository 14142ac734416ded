//! Checks the file section by section and returns it typed.
//!
//! Each section's function reports every problem it finds at its key path
//! (`peers[1].spi: must be >= 256`) and returns the section typed: a string
//! that stands for an address, prefix, MAC or key is parsed exactly once,
//! here, and a parse failure is the error. The typed [`Config`] is handed out
//! only when no section reported anything.
mod aaa;
mod admission;
mod cluster;
mod interfaces;
mod ipv6;
mod metrics;
mod mn_ha;
mod peers;
mod pools;
mod profiles;
mod signaling;
mod static_bindings;
mod store;
mod timers;

use super::file::File;
use super::{Addresses, Config, ConfigError, ConfigErrors, Control, Fastpath, Role};

/// The problems found so far.
#[derive(Default)]
pub(super) struct Errors(Vec<ConfigError>);

impl Errors {
    fn err(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            problem: problem.into(),
        });
    }
}

impl File {
    fn access(&self) -> bool {
        self.role == Role::Access
    }

    fn has_peer(&self, name: &str) -> bool {
        self.peers.iter().any(|p| p.name == name)
    }
}

const IFNAME: &str = "must be a Linux interface name (1 to 15 characters, no '/' or space)";

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ' ']) && s != "." && s != ".."
}

/// Checks the whole file; the typed configuration, or every problem.
pub(super) fn check(f: &File) -> Result<Config, ConfigErrors> {
    let mut v = Errors::default();
    let (control, fastpath) = (general(f, &mut v), fastpath(f, &mut v));
    let interfaces = interfaces::check(f, &mut v);
    let addresses = addresses(f, &mut v);
    let peers = peers::check(f, &mut v);
    let mn_ha = mn_ha::check(f, &mut v);
    let timers = timers::timers(f, &mut v);
    let detach = timers::detach(f, &mut v);
    let dhcp = timers::dhcp(f, &mut v);
    let ipv6 = ipv6::check(f, &mut v);
    let pools = pools::check(f, &mut v);
    let profiles = profiles::check(f, &mut v);
    let static_bindings = static_bindings::check(f, &mut v);
    let store = store::check(f, &mut v);
    let signaling = signaling::signaling(f, &mut v);
    let admission = admission::check(f, &mut v);
    let aaa = aaa::check(f, &mut v);
    let metrics = metrics::check(f, &mut v);
    let cluster = cluster::check(f, &mut v);
    if !v.0.is_empty() {
        return Err(ConfigErrors(v.0));
    }
    Ok(Config {
        role: f.role,
        protocol: f.protocol,
        node_id: f.node_id.clone(),
        control,
        interfaces,
        addresses,
        peers,
        mn_ha,
        timers,
        detach,
        dhcp,
        ipv6,
        pools,
        profiles,
        static_bindings,
        fastpath,
        store,
        signaling,
        admission,
        aaa,
        metrics,
        cluster,
    })
}

/// `node_id`, `control`.
fn general(f: &File, v: &mut Errors) -> Control {
    if let Some(n) = &f.node_id {
        if n.is_empty() || n.len() > 64 {
            v.err("node_id", "must be 1 to 64 characters");
        }
    }
    if f.control.socket.as_os_str().is_empty() {
        v.err("control.socket", "must not be empty");
    }
    Control {
        socket: f.control.socket.clone(),
        group: signaling::control_group(f, v),
    }
}

fn fastpath(f: &File, v: &mut Errors) -> Fastpath {
    let fp = &f.fastpath;
    if fp.max_subscribers == 0 {
        v.err("fastpath.max_subscribers", "must be at least 1");
    }
    if let Some(d) = &fp.pin_dir {
        if !d.is_absolute() {
            v.err(
                "fastpath.pin_dir",
                "must be an absolute path on a bpffs mount",
            );
        }
    }
    Fastpath {
        attach_mode: fp.attach_mode,
        pin_dir: fp.pin_dir.clone(),
        max_subscribers: fp.max_subscribers,
    }
}

fn addresses(f: &File, v: &mut Errors) -> Addresses {
    let a = &f.addresses;
    if a.ipv4.is_none() && a.ipv6.is_none() {
        v.err("addresses", "needs ipv4 or ipv6 (or both)");
    }
    if let Some(a) = a.ipv4 {
        if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
            v.err("addresses.ipv4", "must be a unicast address");
        }
    }
    if let Some(a) = a.ipv6 {
        if a.is_unspecified() || a.is_multicast() {
            v.err("addresses.ipv6", "must be a unicast address");
        }
    }
    if f.protocol == super::Protocol::Pmipv4 && a.ipv4.is_none() {
        v.err(
            "addresses.ipv4",
            "PMIPv4 signals over IPv4: an IPv4 address is required",
        );
    }
    Addresses {
        ipv4: a.ipv4,
        ipv6: a.ipv6,
    }
}
