//! The four registrars built from the configuration: the state machine of
//! the configured role and protocol, its configuration, and its transport.
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};

use crate::agent::Clock;
use crate::config::Config;
use crate::dataplane::Held;
use crate::pmipv4::{self, auth::SecurityAssociation, ha, pma, transport::Udp434};
use crate::pmipv6::{self, lma, mag, transport::Sockets};

/// Per-start restart counter (RFC 5847 §5.2): a peer seeing it change knows we lost state.
fn restart_counter() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

fn clock() -> Clock {
    Clock::new(Instant::now(), SystemTime::now())
}

/// The PMIPv6 sockets: raw MH for IPv6 peers, UDP 5436 for IPv4 ones.
pub(super) fn pmipv6_sockets(local: &pmipv6::LocalAddrs) -> Result<Sockets> {
    Sockets::bind(local, pmipv6::wire::UDP_PORT, true)
        .context("binding the PMIPv6 sockets (addresses.*)")
}

/// The PMIPv4 registration socket (UDP 434 on addresses.ipv4).
pub(super) fn pmipv4_socket(cfg: &Config) -> Result<Udp434> {
    let addr = v4_address(cfg)?;
    Udp434::bind(SocketAddrV4::new(addr, pmipv4::wire::PORT))
        .with_context(|| format!("binding UDP {addr}:434 (addresses.ipv4)"))
}

fn v4_address(cfg: &Config) -> Result<std::net::Ipv4Addr> {
    cfg.addresses
        .ipv4
        .ok_or_else(|| anyhow!("addresses.ipv4: PMIPv4 needs an IPv4 address"))
}

/// The MAG, with what the data plane already holds reserved.
pub(super) fn mag(cfg: &Config, held: &Held) -> (mag::Mag, pmipv6::LocalAddrs) {
    let mcfg = mag_config(cfg);
    let local = mcfg.local;
    let mut m = mag::Mag::new(mcfg, Instant::now(), SystemTime::now());
    m.reserve(held);
    (m, local)
}

/// The LMA, with what the data plane already holds reserved.
pub(super) fn lma(cfg: &Config, held: &Held) -> Result<(lma::Lma, pmipv6::LocalAddrs)> {
    let lcfg = lma_config(cfg)?;
    let local = lcfg.local;
    let mut l = lma::Lma::new(lcfg, Instant::now(), SystemTime::now());
    l.reserve(held);
    Ok((l, local))
}

/// The PMA, with what the data plane already holds reserved.
pub(super) fn pma(cfg: &Config, held: &Held) -> Result<pma::Pma> {
    let mut p = pma::Pma::new(pma_config(cfg)?, clock());
    p.reserve(held);
    Ok(p)
}

/// The HA, with what the data plane already holds reserved.
pub(super) fn ha(cfg: &Config, held: &Held) -> Result<ha::Ha> {
    let mut h = ha::Ha::new(ha_config(cfg)?, clock());
    h.reserve(held);
    Ok(h)
}

fn pma_config(cfg: &Config) -> Result<pma::PmaConfig> {
    let t = &cfg.timers;
    let addr = v4_address(cfg)?;
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
    Ok(pcfg)
}

fn ha_config(cfg: &Config) -> Result<ha::HaConfig> {
    let t = &cfg.timers;
    let addr = v4_address(cfg)?;
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
    Ok(hcfg)
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
