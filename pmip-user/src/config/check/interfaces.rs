//! `[interfaces]`: the core link, correspondents, and the access links.
use std::collections::HashSet;

use super::{valid_ifname, Errors, IFNAME};
use crate::config::file::{self, File};
use crate::config::prefix::{Ipv4Prefix, Prefix};
use crate::config::{AccessInterface, Interfaces};

pub(super) fn check(f: &File, v: &mut Errors) -> Interfaces {
    let i = &f.interfaces;
    let access = f.access();
    if !valid_ifname(&i.core) {
        v.err("interfaces.core", IFNAME);
    }
    if access && i.access.is_empty() {
        v.err(
            "interfaces.access",
            "the access role needs at least one access interface",
        );
    }
    if !access && !i.access.is_empty() {
        v.err("interfaces.access", "only used in the anchor role");
    }
    if access && !i.correspondent.is_empty() {
        v.err("interfaces.correspondent", "only used in the anchor role");
    }
    for (n, c) in i.correspondent.iter().enumerate() {
        if !valid_ifname(c) {
            v.err(format!("interfaces.correspondent[{n}]"), IFNAME);
        } else if *c == i.core {
            v.err(
                format!("interfaces.correspondent[{n}]"),
                "must differ from interfaces.core",
            );
        }
    }
    let mut seen = HashSet::new();
    let links = i
        .access
        .iter()
        .enumerate()
        .filter_map(|(n, a)| {
            let p = format!("interfaces.access[{n}]");
            if !seen.insert((a.name.as_str(), a.vlan)) {
                v.err(
                    format!("{p}.name"),
                    format!("interface {} listed twice", a.name),
                );
            }
            access_link(f, &p, a, v)
        })
        .collect();
    Interfaces {
        access: links,
        core: i.core.clone(),
        correspondent: i.correspondent.clone(),
    }
}

/// One `interfaces.access[]` entry.
fn access_link(
    f: &File,
    p: &str,
    a: &file::AccessInterface,
    v: &mut Errors,
) -> Option<AccessInterface> {
    if !valid_ifname(&a.name) {
        v.err(format!("{p}.name"), IFNAME);
    } else if a.name == f.interfaces.core {
        v.err(format!("{p}.name"), "must differ from interfaces.core");
    }
    if let Some(vl) = a.vlan {
        if !(1..=4094).contains(&vl) {
            v.err(format!("{p}.vlan"), "must be 1 to 4094");
        }
    }
    let gateway = gateway(&format!("{p}.gateway"), &a.gateway, v);
    if !(576..=9216).contains(&a.mtu) {
        v.err(format!("{p}.mtu"), "must be 576 to 9216");
    }
    if let Some(dp) = &a.default_profile {
        if !f.profiles.iter().any(|x| &x.name == dp) {
            v.err(
                format!("{p}.default_profile"),
                format!("no profile named {dp:?}"),
            );
        }
    }
    let access_tech = a.access_technology.and_then(|t| {
        let code = t.code(f.protocol);
        if code.is_none() {
            v.err(
                format!("{p}.access_technology"),
                format!("{t:?} has no Access Technology Type in {:?}", f.protocol),
            );
        }
        code
    });
    Some(AccessInterface {
        name: a.name.clone(),
        vlan: a.vlan,
        gateway: gateway?,
        mtu: a.mtu,
        default_profile: a.default_profile.clone(),
        access_tech,
    })
}

/// The gateway's host address and subnet on the access link, "192.0.2.254/24".
fn gateway(path: &str, s: &str, v: &mut Errors) -> Option<Ipv4Prefix> {
    match s.parse::<Prefix>() {
        Ok(Prefix::V4(g)) => {
            if !(8..=30).contains(&g.len) {
                v.err(path, "prefix length must be 8 to 30");
            } else if g.host_bits() == 0 || g.host_bits() == !g.mask() {
                v.err(
                    path,
                    "must be a host address, not the network or broadcast address",
                );
            }
            let a = g.addr;
            if a.is_multicast() || a.is_loopback() || a.is_unspecified() {
                v.err(path, "must be a unicast address");
            }
            Some(g)
        }
        Ok(Prefix::V6(_)) => {
            v.err(
                path,
                "must be an IPv4 address/prefix (e.g. \"192.0.2.254/24\")",
            );
            None
        }
        Err(()) => {
            v.err(
                path,
                "must be an address with prefix length, e.g. \"192.0.2.254/24\"",
            );
            None
        }
    }
}
