//! `[[static_bindings]]`: tunnels the operator configures by hand.
use std::collections::HashSet;

use super::Errors;
use crate::access::frame::parse_mac;
use crate::config::file::{self, File};
use crate::config::StaticBinding;

pub(super) fn check(f: &File, v: &mut Errors) -> Vec<StaticBinding> {
    let access = f.access();
    let max = f.fastpath.max_subscribers;
    let n = f.static_bindings.len();
    // The daemon numbers them from the top of the subscriber range down
    // (max_subscribers - 1, - 2, ...): they must all fit above 0.
    if max > 0 && n as u64 >= u64::from(max) {
        v.err(
            "static_bindings",
            format!(
                "{n} static bindings take subscriber ids from the top of fastpath.max_subscribers \
                 ({max}) down; it must be above {n}"
            ),
        );
    }
    let mut keys = HashSet::new();
    let mut out = Vec::new();
    for (i, sb) in f.static_bindings.iter().enumerate() {
        let p = format!("static_bindings[{i}]");
        if !f.has_peer(&sb.peer) {
            v.err(format!("{p}.peer"), format!("no peer named {:?}", sb.peer));
        }
        let mac = if access {
            access_point(f, &p, sb, v)
        } else {
            sb.mac.as_deref().and_then(|m| mac(&p, m, v))
        };
        if sb.uplink_key == 0 {
            v.err(format!("{p}.uplink_key"), "must be non-zero");
        }
        if sb.downlink_key == 0 {
            v.err(format!("{p}.downlink_key"), "must be non-zero");
        }
        // The key we receive with finds the binding: one binding per key.
        let (name, key) = if access {
            ("downlink_key", sb.downlink_key)
        } else {
            ("uplink_key", sb.uplink_key)
        };
        if !keys.insert(key) {
            v.err(format!("{p}.{name}"), "two static bindings share this key");
        }
        out.push(StaticBinding {
            interface: sb.interface.clone(),
            mac,
            nai: sb.nai.clone(),
            home_address: sb.home_address,
            peer: sb.peer.clone(),
            uplink_key: sb.uplink_key,
            downlink_key: sb.downlink_key,
        });
    }
    out
}

/// Access role: the subscriber's interface and MAC are required.
fn access_point(f: &File, p: &str, sb: &file::StaticBinding, v: &mut Errors) -> Option<[u8; 6]> {
    match &sb.interface {
        None => v.err(
            format!("{p}.interface"),
            "missing: the access interface of the subscriber",
        ),
        Some(n) if !f.interfaces.access.iter().any(|a| &a.name == n) => v.err(
            format!("{p}.interface"),
            format!("{n:?} is not in interfaces.access"),
        ),
        _ => {}
    }
    match &sb.mac {
        None => {
            v.err(format!("{p}.mac"), "missing: the subscriber's MAC");
            None
        }
        Some(m) => mac(p, m, v),
    }
}

fn mac(p: &str, m: &str, v: &mut Errors) -> Option<[u8; 6]> {
    let mac = parse_mac(m);
    if mac.is_none() {
        v.err(format!("{p}.mac"), "must be a MAC like 00:24:d7:8e:21:a4");
    }
    mac
}
