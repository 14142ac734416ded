//! The subscriber's profile from an Access-Accept, merged over the access interface's
//! default profile (seed 004, "Configuring an MN Profile as a Combination of the External
//! Radius Server and the Default Profile"): what the Accept says wins, the rest comes from
//! the default profile, then from the global settings (`dhcp.dns`, `timers`).
//!
//! Anchors are configured peers (their security associations live there): `home-lma=` names
//! one, `home-lma-ipv4-address=` / `home-lma-ipv6-address=` / 3GPP2-MIP-HA-Address give its
//! address. An Accept whose anchor is no configured peer is refused rather than sent
//! somewhere unprotected.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::aaa::{self, MnService};
use crate::config::{Config, Profile, Protocol, Service};

/// What the attach needs besides the [`Profile`]: accounting and session parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// Accounting's User-Name: the Accept's (RFC 2865 §5.1), else the Access-Request's.
    pub user_name: Option<String>,
    /// Class, echoed in accounting (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
    /// Acct-Interim-Interval (RFC 2869 §5.16), over the configured one.
    pub interim: Option<Duration>,
    /// Session-Timeout (RFC 2865 §5.27): the most the session may last.
    pub session_timeout: Option<Duration>,
    /// `mn-service=`: which home network the subscriber gets (PMIPv6: also the profile's
    /// `service`; PMIPv4: informational).
    pub service: Option<MnService>,
    /// What the Accept carried that was not used, for the log.
    pub ignored: Vec<String>,
    /// The profile as the subscriber's store record keeps it (`persist.rs`).
    pub stored: Option<Box<crate::store::AaaProfile>>,
}

/// Why an Accept cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// The anchor it names is not a configured peer.
    UnknownAnchor(String),
    /// SN-Proxy-MIP / SN-Proxy-MIPV6 disabled, or no Simple-IP permission (seed 000,
    /// "RADIUS Attributes Required for Proxy Mobile IP").
    NoProxyMobileIp(&'static str),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::UnknownAnchor(a) => write!(f, "anchor {a} is not a configured peer"),
            Unusable::NoProxyMobileIp(why) => write!(f, "no proxy mobile IP: {why}"),
        }
    }
}

fn peer_by_addr(cfg: &Config, a: IpAddr) -> Option<String> {
    cfg.peers
        .iter()
        .find(|p| p.address == a)
        .map(|p| p.name.clone())
}

/// The anchor and alternate (peer names) the Accept asks for; `None`: it names none.
fn anchors(
    cfg: &Config,
    r: &aaa::Profile,
    ignored: &mut Vec<String>,
) -> Result<(Option<String>, Option<String>), Unusable> {
    let mut named = None;
    if let Some(n) = &r.lma_name {
        if cfg.peer(n).is_none() {
            return Err(Unusable::UnknownAnchor(n.clone()));
        }
        named = Some(n.clone());
    }
    let addrs: Vec<IpAddr> = [
        r.lma_ipv4.map(IpAddr::V4),
        r.lma_ipv6.map(IpAddr::V6),
        r.ha_primary.map(IpAddr::V4),
    ]
    .into_iter()
    .flatten()
    .collect();
    let by_addr = addrs.iter().find_map(|a| peer_by_addr(cfg, *a));
    let anchor = match (named, by_addr) {
        (Some(n), _) | (None, Some(n)) => Some(n),
        (None, None) if addrs.is_empty() => None,
        (None, None) => {
            let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
            return Err(Unusable::UnknownAnchor(list.join(", ")));
        }
    };
    let alternate = r.ha_alternate.and_then(|a| {
        let p = peer_by_addr(cfg, IpAddr::V4(a));
        if p.is_none() {
            ignored.push(format!("alternate HA {a} (not a configured peer)"));
        }
        p
    });
    Ok((anchor, alternate))
}

fn proxy_allowed(cfg: &Config, r: &aaa::Profile) -> Result<(), Unusable> {
    match cfg.protocol {
        Protocol::Pmipv4 if r.proxy_mip == Some(false) => {
            Err(Unusable::NoProxyMobileIp("SN-Proxy-MIP disabled"))
        }
        Protocol::Pmipv4 if r.subscriber_permission.is_some_and(|p| !p.simple_ip()) => Err(
            Unusable::NoProxyMobileIp("SN-Subscriber-Permission without Simple-IP"),
        ),
        Protocol::Pmipv6 if r.proxy_mipv6 == Some(false) => {
            Err(Unusable::NoProxyMobileIp("SN-Proxy-MIPV6 disabled"))
        }
        _ => Ok(()),
    }
}

/// `mn-service=` chooses the home networks the PBU asks for (issue 15: an HNP, an IPv4
/// home address or both), the Accept's IPv6 DNS servers go to RDNSS and DHCPv6. PMIPv6
/// only: PMIPv4 carries IPv4 alone, so there `mn-service` stays informational. IPv6
/// service needs the interface's ND shell, which runs when a configured profile asks
/// for IPv6 (`Config::ipv6_access`).
fn ipv6_service(r: &aaa::Profile, p: &mut Profile) {
    if let Some(s) = r.service {
        p.service = Some(match s {
            MnService::Ipv4 => Service::Ipv4,
            MnService::Ipv6 => Service::Ipv6,
            MnService::Dual => Service::Dual,
        });
    }
    let dns6: Vec<Ipv6Addr> = (r.dns.iter())
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    if !dns6.is_empty() {
        p.dns6 = dns6;
    }
}

/// The profile for an Access-Accept `r`, over `base` (the interface's default profile, if
/// any); `nai` is the identity the subscriber is known by until the Accept says otherwise
/// (`mn-nai=`). Returns the NAI to register, the profile and the extras.
pub(crate) fn merge(
    cfg: &Config,
    base: Option<&Profile>,
    r: &aaa::Profile,
    nai: String,
) -> Result<(String, Profile, Extras), Unusable> {
    proxy_allowed(cfg, r)?;
    let mut ex = Extras {
        user_name: r.user_name.clone(),
        class: r.class.clone(),
        interim: r.interim_interval.filter(|d| !d.is_zero()),
        session_timeout: r.lifetime.filter(|d| !d.is_zero()),
        service: r.service,
        ignored: r.invalid.clone(),
        stored: None,
    };
    let (anchor, alternate) = anchors(cfg, r, &mut ex.ignored)?;
    let mut p = base.cloned().unwrap_or(Profile {
        name: String::new(),
        nai: None,
        mac: None,
        anchor: None,
        alternate_anchor: None,
        home_address: None,
        apn: None,
        imsi: None,
        dns: Vec::new(),
        pool: None,
        service: None,
        dns6: Vec::new(),
    });
    p.name = match base {
        Some(b) => format!("radius+{}", b.name),
        None => "radius".into(),
    };
    if anchor.is_some() {
        // A new primary makes the default profile's alternate meaningless.
        p.alternate_anchor = alternate;
        p.anchor = anchor;
    } else if alternate.is_some() {
        p.alternate_anchor = alternate;
    }
    if r.framed_ip.is_some() {
        p.home_address = r.framed_ip;
    }
    if r.apn.is_some() {
        p.apn = r.apn.clone();
    }
    if r.framed_pool.is_some() {
        p.pool = r.framed_pool.clone();
    }
    let dns: Vec<Ipv4Addr> = r
        .dns
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    if !dns.is_empty() {
        p.dns = dns;
    }
    if matches!(cfg.protocol, Protocol::Pmipv6) {
        ipv6_service(r, &mut p);
    }
    let nai = r.nai.clone().or_else(|| p.nai.clone()).unwrap_or(nai);
    p.nai = Some(nai.clone());
    Ok((nai, p, ex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::authz::Permission;

    fn cfg(proto: &str) -> Config {
        Config::from_toml_str(&format!(
            r#"
role = "access"
protocol = "{proto}"
[interfaces]
core = "core0"
[[interfaces.access]]
name = "acc0"
gateway = "10.64.0.1/24"
default_profile = "default"
[addresses]
ipv4 = "10.255.0.1"
[[peers]]
name = "lma1"
address = "10.255.0.10"
{sa}
[[peers]]
name = "ha2"
address = "10.255.0.11"
{sa}
[dhcp]
dns = ["192.0.2.53"]
[[profiles]]
name = "default"
anchor = "lma1"
apn = "internet"
dns = ["192.0.2.54"]
"#,
            sa = if proto == "pmipv4" {
                "spi = 300\nalgorithm = \"hmac-md5\"\nkey = \"00112233445566778899aabbccddeeff\""
            } else {
                "insecure = true"
            }
        ))
        .unwrap()
    }

    #[test]
    fn seed_004_avpairs_over_the_default_profile() {
        let c = cfg("pmipv6");
        let base = c.profile("default");
        let r = aaa::Profile {
            nai: Some("mn0@example.com".into()),
            lma_name: Some("lma1".into()),
            lma_ipv6: Some("2001:db8:cafe:1024::101".parse().unwrap()),
            apn: Some("example.com".into()),
            dns: vec![
                "198.51.100.1".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
            ],
            lifetime: Some(Duration::from_secs(3600)),
            class: vec![b"seed004".to_vec()],
            service: Some(MnService::Ipv4),
            ..aaa::Profile::default()
        };
        let (nai, p, ex) = merge(&c, base, &r, "0024.d78e.21a4".into()).unwrap();
        assert_eq!(nai, "mn0@example.com");
        assert_eq!(p.anchor.as_deref(), Some("lma1"));
        assert_eq!(p.apn.as_deref(), Some("example.com"));
        assert_eq!(p.dns, vec!["198.51.100.1".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(ex.session_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(ex.class, vec![b"seed004".to_vec()]);
        assert_eq!(c.dns_for(Some(&p)), p.dns);
        // An Accept that says nothing keeps the default profile (and the NAI we had).
        let (nai, p, _) = merge(&c, base, &aaa::Profile::default(), "x".into()).unwrap();
        assert_eq!(nai, "x");
        assert_eq!(
            (p.anchor.as_deref(), p.apn.as_deref()),
            (Some("lma1"), Some("internet"))
        );
        assert_eq!(p.dns, vec!["192.0.2.54".parse::<Ipv4Addr>().unwrap()]);
    }

    #[test]
    fn mn_service_and_ipv6_dns_choose_the_home_networks() {
        let c = cfg("pmipv6");
        let base = c.profile("default");
        assert_eq!(base.map(Profile::access_service), Some(Service::Ipv4));
        for (said, want) in [
            (MnService::Ipv6, Service::Ipv6),
            (MnService::Dual, Service::Dual),
            (MnService::Ipv4, Service::Ipv4),
        ] {
            let r = aaa::Profile {
                service: Some(said),
                dns: vec!["2001:db8::53".parse().unwrap()],
                ..aaa::Profile::default()
            };
            let (_, p, _) = merge(&c, base, &r, "n".into()).unwrap();
            assert_eq!(p.access_service(), want);
            assert_eq!(
                c.dns6_for(Some(&p)),
                vec!["2001:db8::53".parse::<Ipv6Addr>().unwrap()]
            );
        }
        // Silence keeps the default profile's service.
        let (_, p, _) = merge(&c, base, &aaa::Profile::default(), "n".into()).unwrap();
        assert_eq!(p.service, base.and_then(|b| b.service));
        // PMIPv4 carries IPv4 only: informational there.
        let c4 = cfg("pmipv4");
        let r = aaa::Profile {
            service: Some(MnService::Dual),
            ..aaa::Profile::default()
        };
        let (_, p, ex) = merge(&c4, None, &r, "n".into()).unwrap();
        assert_eq!((p.service, ex.service), (None, Some(MnService::Dual)));
    }

    #[test]
    fn seed_000_ha_pair_primary_then_alternate() {
        let c = cfg("pmipv4");
        let r = aaa::Profile {
            ha_primary: Some("10.255.0.11".parse().unwrap()),
            ha_alternate: Some("10.255.0.10".parse().unwrap()),
            framed_ip: Some("10.64.0.77".parse().unwrap()),
            proxy_mip: Some(true),
            subscriber_permission: Some(Permission(Permission::SIMPLE_IP)),
            ..aaa::Profile::default()
        };
        let (_, p, _) = merge(&c, None, &r, "n".into()).unwrap();
        assert_eq!(p.anchor.as_deref(), Some("ha2"));
        assert_eq!(p.alternate_anchor.as_deref(), Some("lma1"));
        assert_eq!(p.home_address, Some("10.64.0.77".parse().unwrap()));
        // An alternate that is no peer is dropped (and said), the primary kept.
        let r2 = aaa::Profile {
            ha_alternate: Some("192.0.2.99".parse().unwrap()),
            ..r.clone()
        };
        let (_, p, ex) = merge(&c, None, &r2, "n".into()).unwrap();
        assert_eq!(
            (p.anchor.as_deref(), p.alternate_anchor),
            (Some("ha2"), None)
        );
        assert!(ex.ignored[0].contains("192.0.2.99"), "{ex:?}");
    }

    #[test]
    fn unusable_accepts_refused() {
        let c = cfg("pmipv4");
        let unknown = aaa::Profile {
            ha_primary: Some("192.0.2.1".parse().unwrap()),
            ..aaa::Profile::default()
        };
        assert_eq!(
            merge(&c, None, &unknown, "n".into()).unwrap_err(),
            Unusable::UnknownAnchor("192.0.2.1".into())
        );
        let named = aaa::Profile {
            lma_name: Some("nope".into()),
            ..aaa::Profile::default()
        };
        assert!(matches!(
            merge(&c, None, &named, "n".into()),
            Err(Unusable::UnknownAnchor(_))
        ));
        for r in [
            aaa::Profile {
                proxy_mip: Some(false),
                ..aaa::Profile::default()
            },
            aaa::Profile {
                subscriber_permission: Some(Permission(Permission::MOBILE_IP)),
                ..aaa::Profile::default()
            },
        ] {
            assert!(matches!(
                merge(&c, None, &r, "n".into()),
                Err(Unusable::NoProxyMobileIp(_))
            ));
        }
        // SN-Proxy-MIP says nothing about PMIPv6.
        let r = aaa::Profile {
            proxy_mip: Some(false),
            ..aaa::Profile::default()
        };
        assert!(merge(&cfg("pmipv6"), None, &r, "n".into()).is_ok());
    }
}
