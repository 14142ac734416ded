//! What the daemon runs, configured from the typed [`Config`] in one place:
//! the fast path's pool table and the four agents (MAG, LMA, PMA, HA).
//!
//! The agents' config structs have their own `Default`/`new` values (RFC and
//! seed defaults, used by their tests); everything the file can set is set
//! here from the file, so those never disagree with `defaults.rs` in a
//! running gateway. `Config::from_toml_str` runs the conversion of the
//! configured role once, so `pmipd run --check` refuses what `run` would.
use std::net::IpAddr;
use std::time::Duration;

use super::{
    defaults, Algorithm, Config, ConfigError, Ipv4Pool, MnSelector, Peer, PeerSa, Pool, Protocol,
    Role,
};
use crate::fastpath::HomePoolSpec;
use crate::pmipv4::auth::{self, SecurityAssociation};
use crate::pmipv4::{ha, pma};
use crate::pmipv6::{self, lma, mag};

/// The anchor's pools as the fast path indexes them, in the order configured.
pub fn home_pools(cfg: &Config) -> Vec<HomePoolSpec> {
    cfg.pools
        .iter()
        .map(|p| match p {
            Pool::V4(p) => HomePoolSpec::V4 {
                prefix: p.prefix.addr,
                len: p.prefix.len,
            },
            Pool::V6(p) => HomePoolSpec::V6 {
                prefix: p.prefix.addr,
                len: p.prefix.len,
                assign_len: p.assign_len,
            },
        })
        .collect()
}

/// The MAG (PMIPv6 access role). `restart_counter`: RFC 5847 §5.2, per start.
pub fn mag(cfg: &Config, restart_counter: u32) -> mag::MagConfig {
    let t = &cfg.timers;
    mag::MagConfig {
        local: local_addrs(cfg),
        lmas: cfg
            .peers
            .iter()
            .map(|p| mag::LmaPeerConfig {
                name: p.name.clone(),
                addr: p.address,
                port: pmipv6::wire::UDP_PORT,
            })
            .collect(),
        lifetime: t.lifetime,
        refresh: t.refresh,
        retx_initial: t.retx_initial,
        retx_max: t.retx_max,
        max_retx: t.max_retransmissions.into(),
        heartbeat_interval: t.heartbeat_interval.unwrap_or(defaults::HEARTBEAT_OFF),
        heartbeat_missing_limit: t.heartbeat_misses.into(),
        restart_counter,
        timestamp_based: t.timestamp_based,
        revoke_to: revoking(cfg),
        runtime_assignment: cfg.peers.iter().any(|p| p.runtime_assignment),
        refusal_hold: t.lma_refusal_hold,
        ..mag::MagConfig::default()
    }
}

/// The LMA (PMIPv6 anchor role): its pools (one per family, as checked) and
/// the profiles by NAI, a profile without one being the default.
pub fn lma(cfg: &Config, restart_counter: u32) -> lma::LmaConfig {
    let t = &cfg.timers;
    let mut l = lma::LmaConfig {
        local: local_addrs(cfg),
        mags: cfg.peers.iter().map(|p| p.address).collect(),
        ipv4_pool: cfg.ipv4_pools().next().map(lma_v4_pool),
        more_ipv4_pools: cfg.ipv4_pools().skip(1).map(lma_v4_pool).collect(),
        ipv6_pool: cfg.ipv6_pools().next().map(|p| lma::Ipv6PoolConfig {
            prefix: p.prefix.addr,
            prefix_len: p.prefix.len,
            assign_len: p.assign_len,
        }),
        max_lifetime: t.lifetime,
        timestamp_window: t.timestamp_window,
        timestamp_based: t.timestamp_based,
        bri_retx_initial: t.bri_delay_min,
        bri_retx_max: t.bri_delay_max,
        bri_max_retx: t.bri_max_retransmissions.into(),
        new_bce_delay: t.new_bce_delay,
        no_revocation: cfg
            .peers
            .iter()
            .filter(|p| !p.revocation)
            .map(|p| p.address)
            .collect(),
        restart_counter,
        heartbeat_interval: t.heartbeat_interval.unwrap_or(defaults::HEARTBEAT_OFF),
        heartbeat_missing_limit: t.heartbeat_misses.into(),
        ..lma::LmaConfig::default()
    };
    for p in &cfg.profiles {
        // `service` narrows what the pools offer (RFC 5213 §5.3.1: the
        // policy profile says which mobility services the MN may have).
        // `profiles[].pool` names the IPv4 pool to draw from (seed 004: a
        // pool per APN); an IPv6 pool's name leaves the IPv4 default.
        let pool = p
            .pool
            .as_deref()
            .and_then(|n| cfg.ipv4_pools().position(|x| x.name == n))
            .unwrap_or(0);
        let prof = lma::Profile {
            ipv4: p.service.is_none_or(|s| s.ipv4()),
            ipv6: l.ipv6_pool.is_some() && p.service.is_none_or(|s| s.ipv6()),
            allow_static: p.home_address.is_some(),
            static_v4: p.home_address,
            pool,
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
    l
}

fn lma_v4_pool(p: &Ipv4Pool) -> lma::Ipv4PoolConfig {
    lma::Ipv4PoolConfig {
        network: p.prefix.addr,
        prefix_len: p.prefix.len,
        gateway: p.gateway,
    }
}

/// The PMA (PMIPv4 access role): every IPv4 peer is a home agent.
pub fn pma(cfg: &Config) -> Result<pma::PmaConfig, ConfigError> {
    let t = &cfg.timers;
    let addr = pmipv4_address(cfg)?;
    let tolerance = tolerance_s(cfg);
    let mut has = Vec::new();
    for (i, p) in cfg.peers.iter().enumerate() {
        if let IpAddr::V4(a) = p.address {
            has.push(pma::HaPeer {
                address: a,
                sa: sa_of(i, p, tolerance)?,
            });
        }
    }
    let mut pcfg = pma::PmaConfig::new(addr, has);
    pcfg.mn_ha = mn_ha_keys(cfg, tolerance);
    pcfg.revoke_to = revoking(cfg);
    // RFC 4433: HAs that assign one (`dynamic_ha`), or the anchor cluster's
    // service address that redirects (`runtime_assignment`).
    pcfg.dynamic_has = cfg
        .peers
        .iter()
        .filter(|p| p.dynamic_ha || p.runtime_assignment)
        .map(|p| p.address)
        .collect();
    pcfg.lifetime_s = t.lifetime.as_secs().min(u16::MAX.into()) as u16;
    pcfg.renew_percent = t.renew_percent;
    pcfg.retransmission_timeout_ms = millis(t.retx_initial);
    pcfg.max_retransmissions = t.max_retransmissions.into();
    pcfg.retransmission_max_ms = millis(t.retx_max);
    let f = &t.ha_failover;
    pcfg.ha_failover = pma::HaFailover {
        enabled: f.enabled,
        max_attempts: f.max_attempts.into(),
        num_attempts_before_switching: f.attempts_before_switching.into(),
        timeout_ms: Some(millis(f.timeout)),
    };
    Ok(pcfg)
}

/// The HA (PMIPv4 anchor role): the IPv4 pool, every IPv4 peer a PMA, the
/// profiles with a NAI.
pub fn ha(cfg: &Config) -> Result<ha::HaConfig, ConfigError> {
    let t = &cfg.timers;
    let addr = pmipv4_address(cfg)?;
    let tolerance = tolerance_s(cfg);
    let pool = cfg.ipv4_pools().next().ok_or_else(|| ConfigError {
        path: "pools".into(),
        problem: "the HA needs an IPv4 pool".into(),
    })?;
    let mut peers = Vec::new();
    for (i, p) in cfg.peers.iter().enumerate() {
        if let IpAddr::V4(a) = p.address {
            peers.push(ha::PmaPeer {
                address: a,
                sa: sa_of(i, p, tolerance)?,
                proxy_allowed: true,
            });
        }
    }
    let mut hcfg = ha::HaConfig::new(addr, ha_range(pool), peers);
    hcfg.mn_ha = mn_ha_keys(cfg, tolerance);
    hcfg.max_lifetime_s = t.lifetime.as_secs().min(u16::MAX.into()) as u16;
    hcfg.revocation_timeout_ms = millis(t.bri_delay_min);
    hcfg.revocation_retries = t.bri_max_retransmissions.into();
    // Opt-in: an HA that lost its bindings honours the addresses asked again.
    hcfg.reregistration_window = t.reregistration_window;
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
    Ok(hcfg)
}

/// Builds the configured role's agent as `pmipd run` does, for the errors
/// only: what the check lets through must convert.
pub(super) fn dry_run(cfg: &Config) -> Result<(), ConfigError> {
    match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => drop(mag(cfg, 0)),
        (Role::Anchor, Protocol::Pmipv6) => drop(lma(cfg, 0)),
        (Role::Access, Protocol::Pmipv4) => drop(pma(cfg)?),
        (Role::Anchor, Protocol::Pmipv4) => drop(ha(cfg)?),
    }
    Ok(())
}

/// The anchors the access gateway revokes at rather than deregisters with.
fn revoking(cfg: &Config) -> std::collections::HashSet<IpAddr> {
    cfg.peers
        .iter()
        .filter(|p| p.revocation)
        .map(|p| p.address)
        .collect()
}

fn local_addrs(cfg: &Config) -> pmipv6::LocalAddrs {
    pmipv6::LocalAddrs {
        v6: cfg.addresses.ipv6,
        v4: cfg.addresses.ipv4,
    }
}

fn pmipv4_address(cfg: &Config) -> Result<std::net::Ipv4Addr, ConfigError> {
    cfg.addresses.ipv4.ok_or_else(|| ConfigError {
        path: "addresses.ipv4".into(),
        problem: "PMIPv4 needs an IPv4 address".into(),
    })
}

/// Identification timestamps' accepted skew: the replay window in whole
/// seconds, at least 1 (RFC 3344 §5.7).
fn tolerance_s(cfg: &Config) -> u32 {
    let s = cfg.timers.timestamp_window.as_secs();
    u32::try_from(s).unwrap_or(u32::MAX).max(1)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The FA-HA security association with peer `i` (required for PMIPv4).
fn sa_of(i: usize, p: &Peer, tolerance_s: u32) -> Result<auth::PeerKeys, ConfigError> {
    let sa = p.sa.as_ref().ok_or_else(|| ConfigError {
        path: format!("peers[{i}].spi"),
        problem: "missing: required for PMIPv4 (RFC 3344 §3.5)".into(),
    })?;
    Ok(auth::PeerKeys {
        current: association(sa, tolerance_s),
        also: p
            .also_accept
            .iter()
            .map(|sa| association(sa, tolerance_s))
            .collect(),
    })
}

/// The per-MN associations of `[[mn_ha]]`, by NAI and by realm.
fn mn_ha_keys(cfg: &Config, tolerance_s: u32) -> auth::MnHaKeys {
    let mut keys = auth::MnHaKeys::default();
    for e in &cfg.mn_ha {
        let sa = auth::PeerKeys {
            current: association(&e.sa, tolerance_s),
            also: e
                .also_accept
                .iter()
                .map(|sa| association(sa, tolerance_s))
                .collect(),
        };
        match &e.selector {
            MnSelector::Nai(n) => keys.insert_nai(n, sa),
            MnSelector::Realm(r) => keys.insert_realm(r, sa),
        }
    }
    keys
}

fn association(sa: &PeerSa, tolerance_s: u32) -> SecurityAssociation {
    SecurityAssociation {
        spi: sa.spi,
        key: sa.key.clone(),
        algorithm: match sa.algorithm {
            Algorithm::HmacMd5 => auth::Algorithm::HmacMd5,
            Algorithm::Rfc2002Md5 => auth::Algorithm::KeyedMd5PrefixSuffix,
            Algorithm::Md5 => auth::Algorithm::KeyedMd5,
        },
        timestamp_tolerance_s: tolerance_s,
    }
}

/// The pool's hosts: the gateway is handed out as router, never as a home
/// address, so it is cut off when it sits at either end.
fn ha_range(p: &Ipv4Pool) -> ha::AddressPool {
    let (mut lo, mut hi) = (
        u32::from(p.prefix.network()) + 1,
        u32::from(p.prefix.last()) - 1,
    );
    let g = u32::from(p.gateway);
    if g == lo {
        lo += 1;
    } else if g == hi {
        hi -= 1;
    }
    ha::AddressPool {
        first: lo.into(),
        last: hi.into(),
    }
}
