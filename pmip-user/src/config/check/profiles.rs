//! `[[profiles]]`: subscribers by NAI or MAC, what they get and where they
//! are anchored.
use std::collections::HashSet;

use super::Errors;
use crate::access::frame::parse_mac;
use crate::config::file::{self, File};
use crate::config::Profile;

pub(super) fn check(f: &File, v: &mut Errors) -> Vec<Profile> {
    let mut names = HashSet::new();
    let mut nais = HashSet::new();
    let mut macs = HashSet::new();
    let defaults: HashSet<&str> = f
        .interfaces
        .access
        .iter()
        .filter_map(|a| a.default_profile.as_deref())
        .collect();
    let mut profiles = Vec::new();
    for (i, pr) in f.profiles.iter().enumerate() {
        let p = format!("profiles[{i}]");
        if pr.name.is_empty() || !names.insert(pr.name.as_str()) {
            v.err(
                format!("{p}.name"),
                format!("must be a unique, non-empty name (got {:?})", pr.name),
            );
        }
        if pr.nai.is_none() && pr.mac.is_none() && !defaults.contains(pr.name.as_str()) {
            v.err(
                p.clone(),
                "needs nai or mac (or must be an interface's default_profile)",
            );
        }
        if let Some(n) = &pr.nai {
            if n.is_empty() || n.len() > 253 {
                v.err(format!("{p}.nai"), "must be 1 to 253 characters (RFC 4282)");
            } else if !nais.insert(n.as_str()) {
                v.err(
                    format!("{p}.nai"),
                    format!("NAI {n:?} used by two profiles"),
                );
            }
        }
        let mac = pr.mac.as_deref().and_then(|m| mac(&p, m, &mut macs, v));
        anchors(f, &p, pr, v);
        subscriber(f, &p, pr, v);
        service(f, &p, pr, v);
        profiles.push(Profile {
            name: pr.name.clone(),
            nai: pr.nai.clone(),
            mac,
            anchor: pr.anchor.clone(),
            alternate_anchor: pr.alternate_anchor.clone(),
            home_address: pr.home_address,
            apn: pr.apn.clone(),
            imsi: pr.imsi.clone(),
            dns: pr.dns.clone(),
            service: pr.service,
            dns6: pr.dns6.clone(),
            pool: pr.pool.clone(),
        });
    }
    profiles
}

/// A unicast MAC that no other profile has.
fn mac(p: &str, m: &str, seen: &mut HashSet<[u8; 6]>, v: &mut Errors) -> Option<[u8; 6]> {
    match parse_mac(m) {
        None => {
            v.err(
                format!("{p}.mac"),
                "must be a MAC like 00:24:d7:8e:21:a4 or 0024.d78e.21a4",
            );
            None
        }
        Some(mac) if !seen.insert(mac) => {
            v.err(format!("{p}.mac"), format!("MAC {m} used by two profiles"));
            None
        }
        Some(mac) if mac[0] & 1 != 0 => {
            v.err(format!("{p}.mac"), "must be a unicast MAC");
            None
        }
        Some(mac) => Some(mac),
    }
}

/// Access role: `anchor` and `alternate_anchor` name peers.
fn anchors(f: &File, p: &str, pr: &file::Profile, v: &mut Errors) {
    if !f.access() {
        return;
    }
    match &pr.anchor {
        None if f.peers.len() > 1 => v.err(
            format!("{p}.anchor"),
            "missing: several peers, say which one anchors this profile",
        ),
        Some(a) if !f.has_peer(a) => v.err(format!("{p}.anchor"), format!("no peer named {a:?}")),
        _ => {}
    }
    if let Some(a) = &pr.alternate_anchor {
        if !f.has_peer(a) {
            v.err(
                format!("{p}.alternate_anchor"),
                format!("no peer named {a:?}"),
            );
        } else if pr.anchor.as_deref() == Some(a) {
            v.err(format!("{p}.alternate_anchor"), "must differ from anchor");
        }
    }
}

/// What the subscriber is given or identified by: home address, APN, IMSI, pool.
fn subscriber(f: &File, p: &str, pr: &file::Profile, v: &mut Errors) {
    if let Some(h) = pr.home_address {
        if h.is_unspecified() || h.is_multicast() || h.is_broadcast() || h.is_loopback() {
            v.err(format!("{p}.home_address"), "must be a unicast address");
        }
    }
    if let Some(apn) = &pr.apn {
        // 3GPP TS 23.003 §9.1: labels of letters, digits, '-', max 100 octets.
        let ok = !apn.is_empty()
            && apn.len() <= 100
            && apn.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !ok {
            v.err(
                format!("{p}.apn"),
                "must be dot-separated labels of letters, digits and '-', at most 100 characters",
            );
        }
    }
    if let Some(imsi) = &pr.imsi {
        // 3GPP TS 23.003 §2.2: at most 15 digits.
        if !(6..=15).contains(&imsi.len()) || !imsi.chars().all(|c| c.is_ascii_digit()) {
            v.err(format!("{p}.imsi"), "must be 6 to 15 digits");
        }
    }
    if let Some(pool) = &pr.pool {
        if f.access() {
            v.err(format!("{p}.pool"), "only used in the anchor role");
        } else if !f.pools.iter().any(|x| &x.name == pool) {
            v.err(format!("{p}.pool"), format!("no pool named {pool:?}"));
        }
    }
}

/// `service` and `dns6`: IPv6 service is PMIPv6's (RFC 5213); PMIPv4 has none.
fn service(f: &File, p: &str, pr: &file::Profile, v: &mut Errors) {
    let v6 = pr.service.is_some_and(|s| s.ipv6());
    if v6 && f.protocol == crate::config::Protocol::Pmipv4 {
        v.err(
            format!("{p}.service"),
            "PMIPv4 carries IPv4 only: use ipv4 (or protocol pmipv6)",
        );
    }
    if pr
        .dns6
        .iter()
        .any(|a| a.is_unspecified() || a.is_multicast())
    {
        v.err(format!("{p}.dns6"), "must be unicast addresses");
    }
}
