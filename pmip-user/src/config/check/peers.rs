//! `[[peers]]`: the anchors (access role) or access gateways (anchor role),
//! and their security associations.
use std::collections::HashSet;
use std::net::IpAddr;

use super::Errors;
use crate::config::file::{self, File};
use crate::config::{Family, Peer, PeerSa, Protocol};

pub(super) fn check(f: &File, v: &mut Errors) -> Vec<Peer> {
    if f.access() && f.peers.is_empty() {
        v.err("peers", "the access role needs at least one anchor peer");
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut peers = Vec::new();
    for (i, pr) in f.peers.iter().enumerate() {
        let p = format!("peers[{i}]");
        if pr.name.is_empty() {
            v.err(format!("{p}.name"), "must not be empty");
        } else if !names.insert(pr.name.as_str()) {
            v.err(
                format!("{p}.name"),
                format!("duplicate peer name {:?}", pr.name),
            );
        }
        if !addrs.insert(pr.address) {
            v.err(
                format!("{p}.address"),
                format!("duplicate peer address {}", pr.address),
            );
        }
        address(f, &p, pr, v);
        let sa = security_association(f, &p, pr, v);
        let also_accept = also_accept(f, &p, pr, sa.as_ref(), v);
        if !f.access() && pr.revocation.is_some() && f.protocol == Protocol::Pmipv4 {
            // RFC 3543 §3.1: the HA revokes where the PMA asked for it.
            v.err(
                format!("{p}.revocation"),
                "PMIPv4 anchor: revocation is negotiated per registration (RFC 3543)",
            );
        }
        if !f.access() && pr.dynamic_ha {
            v.err(format!("{p}.dynamic_ha"), "only used in the access role");
        }
        if pr.dynamic_ha && f.protocol != Protocol::Pmipv4 {
            v.err(format!("{p}.dynamic_ha"), "RFC 4433 is PMIPv4's");
        }
        let esp = super::signaling::peer_esp(f, &p, pr, v);
        if pr.runtime_assignment && !f.access() {
            v.err(
                format!("{p}.runtime_assignment"),
                "is for the access role (the anchors of a cluster set cluster.cluster_address)",
            );
        }
        peers.push(Peer {
            name: pr.name.clone(),
            address: pr.address,
            sa,
            also_accept,
            revocation: pr.revocation.unwrap_or(!f.access()),
            dynamic_ha: pr.dynamic_ha,
            esp,
            insecure: pr.insecure,
            runtime_assignment: pr.runtime_assignment,
        });
    }
    super::signaling::unique_spis(f, v);
    peers
}

/// The peer's address: unicast, of a family we have an address in and the
/// protocol signals over.
fn address(f: &File, p: &str, pr: &file::Peer, v: &mut Errors) {
    let unicast = match pr.address {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback())
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    };
    if !unicast {
        v.err(format!("{p}.address"), "must be a unicast address");
    }
    let fam = if pr.address.is_ipv4() {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    if let Some(t) = pr.transport {
        if t != fam {
            v.err(
                format!("{p}.transport"),
                format!("is {t:?} but address {} is {fam:?}", pr.address),
            );
        }
    }
    if f.protocol == Protocol::Pmipv4 && fam != Family::Ipv4 {
        v.err(format!("{p}.address"), "PMIPv4 peers must be IPv4");
    }
    match fam {
        Family::Ipv4 if f.addresses.ipv4.is_none() => v.err(
            format!("{p}.address"),
            "IPv4 peer but addresses.ipv4 is not set",
        ),
        Family::Ipv6 if f.addresses.ipv6.is_none() => v.err(
            format!("{p}.address"),
            "IPv6 peer but addresses.ipv6 is not set",
        ),
        _ => {}
    }
}

/// `spi`, `algorithm`, `key`: all or none, and required for PMIPv4.
fn security_association(f: &File, p: &str, pr: &file::Peer, v: &mut Errors) -> Option<PeerSa> {
    let any_sa = pr.spi.is_some() || pr.algorithm.is_some() || pr.key.is_some();
    if !any_sa && f.protocol != Protocol::Pmipv4 {
        return None;
    }
    let why = if f.protocol == Protocol::Pmipv4 {
        "required for PMIPv4 (RFC 3344 §3.5)"
    } else {
        "part of the security association"
    };
    sa_fields(p, (pr.spi, pr.algorithm, pr.key.as_deref()), why, v)
}

/// `also_accept`: PMIPv4 associations accepted from the peer besides its
/// own (a key rollover), each whole, each with an SPI of its own.
fn also_accept(
    f: &File,
    p: &str,
    pr: &file::Peer,
    own: Option<&PeerSa>,
    v: &mut Errors,
) -> Vec<PeerSa> {
    if pr.also_accept.is_empty() {
        return Vec::new();
    }
    if f.protocol != Protocol::Pmipv4 {
        v.err(
            format!("{p}.also_accept"),
            "PMIPv4 only (PMIPv6 signaling is protected by ESP, peers[].esp)",
        );
        return Vec::new();
    }
    more_sas(p, &pr.also_accept, (own.map(|sa| sa.spi), None), v)
}

/// The associations of `p.also_accept` (a peer's or an `[[mn_ha]]`
/// entry's), each whole and each with an SPI of its own and not `own`'s;
/// without an algorithm, `algorithm`'s if given.
pub(super) fn more_sas(
    p: &str,
    entries: &[file::SaFields],
    (own, algorithm): (Option<u32>, Option<crate::config::Algorithm>),
    v: &mut Errors,
) -> Vec<PeerSa> {
    let mut spis: Vec<u32> = own.into_iter().collect();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let q = format!("{p}.also_accept[{i}]");
        let why = "part of the security association";
        let fields = (e.spi, e.algorithm.or(algorithm), e.key.as_deref());
        let Some(sa) = sa_fields(&q, fields, why, v) else {
            continue;
        };
        if spis.contains(&sa.spi) {
            v.err(
                format!("{q}.spi"),
                format!(
                    "{} is already this entry's (each association its own SPI)",
                    sa.spi
                ),
            );
            continue;
        }
        spis.push(sa.spi);
        out.push(sa);
    }
    out
}

/// A security association's `spi`, `algorithm` and `key` under `p`, each
/// one reported missing with `why`.
pub(super) fn sa_fields(
    p: &str,
    (spi, algorithm, key_hex): (Option<u32>, Option<crate::config::Algorithm>, Option<&str>),
    why: &str,
    v: &mut Errors,
) -> Option<PeerSa> {
    match spi {
        None => v.err(format!("{p}.spi"), format!("missing: {why}")),
        // RFC 3344 §1.6: SPI values 0 through 255 are reserved.
        Some(s) if s < 256 => v.err(
            format!("{p}.spi"),
            "must be >= 256 (0-255 are reserved, RFC 3344 §1.6)",
        ),
        _ => {}
    }
    if algorithm.is_none() {
        v.err(
            format!("{p}.algorithm"),
            format!("missing: {why} (hmac-md5, md5 or rfc2002-md5)"),
        );
    }
    let key = match key_hex {
        None => {
            v.err(format!("{p}.key"), format!("missing: {why}"));
            None
        }
        Some(k) => key(&format!("{p}.key"), k, v),
    };
    Some(PeerSa {
        spi: spi?,
        algorithm: algorithm?,
        key: key?,
    })
}

/// A shared secret in hex, 1 to 64 bytes.
fn key(path: &str, k: &str, v: &mut Errors) -> Option<Vec<u8>> {
    if !k.len().is_multiple_of(2) || !k.chars().all(|c| c.is_ascii_hexdigit()) {
        v.err(path, "must be an even number of hex digits");
        return None;
    }
    if k.is_empty() || k.len() > 128 {
        v.err(path, "must be 1 to 64 bytes");
        return None;
    }
    // ASCII hex digits, checked above: every pair is one byte.
    (0..k.len() / 2)
        .map(|i| u8::from_str_radix(&k[2 * i..2 * i + 2], 16).ok())
        .collect()
}
