//! `[[pools]]`: the anchor's home addresses and home network prefixes.
//!
//! The LMA allocates IPv4 home addresses from several pools (a profile's
//! `pool` picks one, the first is the default; they may not overlap) and
//! prefixes from one IPv6 pool; the HA from one IPv4 pool. A pool that would
//! never hand out an address is refused, naming it, rather than left unused
//! (issue 11, "configuration truth").
use std::collections::HashSet;

use super::Errors;
use crate::config::file::{self, File};
use crate::config::prefix::{Ipv4Prefix, Ipv6Prefix, Prefix};
use crate::config::{defaults, Ipv4Pool, Ipv6Pool, Pool, Protocol};

pub(super) fn check(f: &File, v: &mut Errors) -> Vec<Pool> {
    presence(f, v);
    let mut names = HashSet::new();
    let (mut first4, mut first6) = (None, None);
    let mut pools = Vec::new();
    for (i, pl) in f.pools.iter().enumerate() {
        let p = format!("pools[{i}]");
        if pl.name.is_empty() || !names.insert(pl.name.as_str()) {
            v.err(
                format!("{p}.name"),
                format!("must be a unique, non-empty name (got {:?})", pl.name),
            );
        }
        let pool = match pl.prefix.parse::<Prefix>() {
            Ok(Prefix::V4(net)) => {
                // The LMA draws from several (profiles[].pool picks); the HA from one.
                if f.protocol == Protocol::Pmipv4 {
                    one_per_family(&p, "IPv4", "addresses", &mut first4, i, v);
                } else if let Some(j) = overlapping(&pools, net) {
                    v.err(format!("{p}.prefix"), format!("overlaps pools[{j}]"));
                }
                ipv4(&p, pl, net, v).map(Pool::V4)
            }
            Ok(Prefix::V6(net)) => {
                if f.protocol == Protocol::Pmipv4 {
                    v.err(
                        format!("{p}.prefix"),
                        "an IPv6 pool, but PMIPv4 assigns IPv4 home addresses only",
                    );
                }
                one_per_family(&p, "IPv6", "prefixes", &mut first6, i, v);
                Some(Pool::V6(ipv6(&p, pl, net, v)))
            }
            Err(()) => {
                v.err(
                    format!("{p}.prefix"),
                    "must be address/length, e.g. \"192.0.2.0/24\"",
                );
                None
            }
        };
        pools.extend(pool);
    }
    pools
}

/// Pools belong to the anchor, which needs them unless every subscriber has
/// a static address; the HA takes its pool as given.
fn presence(f: &File, v: &mut Errors) {
    if f.access() {
        if !f.pools.is_empty() {
            v.err("pools", "only used in the anchor role");
        }
        return;
    }
    let has_v4 = f
        .pools
        .iter()
        .any(|p| matches!(p.prefix.parse(), Ok(Prefix::V4(_))));
    if f.protocol == Protocol::Pmipv4 && !has_v4 {
        v.err(
            "pools",
            "the PMIPv4 anchor (HA) needs an IPv4 pool, even with static home addresses in profiles",
        );
    } else if f.pools.is_empty() && f.profiles.iter().all(|p| p.home_address.is_none()) {
        v.err(
            "pools",
            "the anchor role needs at least one pool (or static home addresses in profiles)",
        );
    }
}

/// Refuses a second pool of a family: the LMA and HA allocate from one.
fn one_per_family(
    p: &str,
    family: &str,
    what: &str,
    first: &mut Option<usize>,
    i: usize,
    v: &mut Errors,
) {
    match *first {
        None => *first = Some(i),
        Some(j) => v.err(
            p,
            format!(
                "a second {family} pool: the anchor hands out {family} {what} from one pool \
                 (pools[{j}]) and would never use this one; make pools[{j}] the larger prefix instead"
            ),
        ),
    }
}

fn ipv4(p: &str, pl: &file::Pool, net: Ipv4Prefix, v: &mut Errors) -> Option<Ipv4Pool> {
    if !(8..=30).contains(&net.len) {
        v.err(format!("{p}.prefix"), "IPv4 prefix length must be 8 to 30");
    } else if net.host_bits() != 0 {
        v.err(format!("{p}.prefix"), "has host bits set");
    }
    if pl.assign_len.is_some() {
        v.err(format!("{p}.assign_len"), "only for IPv6 pools");
    }
    let gateway = match pl.gateway {
        None => {
            v.err(
                format!("{p}.gateway"),
                "missing: the subscribers' default router in the pool",
            );
            return None;
        }
        Some(g) if !net.contains(g) => {
            v.err(
                format!("{p}.gateway"),
                format!("{g} is outside {}", pl.prefix),
            );
            g
        }
        Some(g) => g,
    };
    Some(Ipv4Pool {
        name: pl.name.clone(),
        prefix: net,
        gateway,
    })
}

fn ipv6(p: &str, pl: &file::Pool, net: Ipv6Prefix, v: &mut Errors) -> Ipv6Pool {
    let len = net.len;
    let assign_len = pl.assign_len.unwrap_or(defaults::ASSIGN_LEN);
    if len == 0 {
        v.err(
            format!("{p}.prefix"),
            "IPv6 prefix length must be at least 1",
        );
    } else if len > assign_len || assign_len > 64 {
        v.err(
            format!("{p}.assign_len"),
            format!("must be between the prefix length ({len}) and 64"),
        );
    }
    if pl.gateway.is_some() {
        v.err(format!("{p}.gateway"), "only for IPv4 pools");
    }
    Ipv6Pool {
        name: pl.name.clone(),
        prefix: net,
        assign_len,
    }
}

/// The index of an earlier IPv4 pool sharing addresses with `net`.
fn overlapping(pools: &[Pool], net: Ipv4Prefix) -> Option<usize> {
    pools.iter().position(|p| match p {
        Pool::V4(q) => q.prefix.contains(net.addr) || net.contains(q.prefix.addr),
        Pool::V6(_) => false,
    })
}
