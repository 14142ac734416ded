//! `[ipv6]`: the emulated home link of IPv6 subscribers (access role,
//! PMIPv6): the router MAC and link-local address every MAG shares, the
//! router advertisement interval, the prefix lifetime cap, DHCPv6.
use std::time::Duration;

use super::Errors;
use crate::access::frame::parse_mac;
use crate::config::file::File;
use crate::config::{defaults, Ipv6Access, Protocol};

/// RFC 4861 §6.2.1: MaxRtrAdvInterval is 4 to 1800 seconds.
const RA_INTERVAL_S: std::ops::RangeInclusive<u32> = 4..=1800;

pub(super) fn check(f: &File, v: &mut Errors) -> Ipv6Access {
    let s = &f.ipv6;
    if *s != defaults::IPV6 && !(f.access() && f.protocol == Protocol::Pmipv6) {
        v.err("ipv6", "only used by a PMIPv6 access gateway (MAG)");
    }
    let router_mac = s.router_mac.as_deref().and_then(|m| match parse_mac(m) {
        Some(mac) if mac[0] & 1 == 0 && mac != [0; 6] => Some(mac),
        _ => {
            v.err(
                "ipv6.router_mac",
                "must be a unicast MAC like 02:00:00:00:00:01",
            );
            None
        }
    });
    if let Some(ll) = s.router_link_local {
        if ll.segments()[0] & 0xffc0 != 0xfe80 {
            v.err(
                "ipv6.router_link_local",
                "must be a link-local address (fe80::/10)",
            );
        }
    }
    if !RA_INTERVAL_S.contains(&s.ra_interval_max_s) {
        v.err(
            "ipv6.ra_interval_max_s",
            "must be 4 to 1800 (RFC 4861 §6.2.1)",
        );
    }
    let cap = match s.prefix_lifetime_cap_s {
        None => Some(s.ra_interval_max_s * defaults::PREFIX_LIFETIME_CAP_INTERVALS),
        Some(0) => None,
        Some(c) => {
            // Unsolicited RAs come at most MaxRtrAdvInterval apart: a cap
            // below that lets addresses lapse between two of them.
            if c <= s.ra_interval_max_s {
                v.err(
                    "ipv6.prefix_lifetime_cap_s",
                    format!(
                        "must exceed ra_interval_max_s ({}), or be 0 for no cap",
                        s.ra_interval_max_s
                    ),
                );
            }
            Some(c)
        }
    };
    if s.dns.iter().any(|a| a.is_unspecified() || a.is_multicast()) {
        v.err("ipv6.dns", "must be unicast addresses");
    }
    Ipv6Access {
        router_mac,
        router_link_local: s.router_link_local,
        ra_interval_max: Duration::from_secs(s.ra_interval_max_s.into()),
        prefix_lifetime_cap: cap.map(|c| Duration::from_secs(c.into())),
        dhcpv6: s.dhcpv6,
        managed: s.managed,
        dns: s.dns.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Service};

    fn mag() -> String {
        crate::config::testing::mag_toml("d")
    }

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml_str(&format!("{}{extra}", mag())).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_keep_ipv4_and_derive_the_cap() {
        let c = load("[[profiles]]\nname = \"d\"\n").unwrap();
        assert_eq!(c.profiles[0].service, None);
        assert_eq!(c.profiles[0].access_service(), Service::Ipv4);
        assert!(!c.ipv6_access());
        assert_eq!(c.ipv6.ra_interval_max, Duration::from_secs(600));
        assert_eq!(c.ipv6.prefix_lifetime_cap, Some(Duration::from_secs(1800)));
        assert!(c.ipv6.dhcpv6 && !c.ipv6.managed);
        assert_eq!(c.ipv6.router_mac, None);
    }

    #[test]
    fn services_and_the_section_typed() {
        let c = load(
            r#"
[ipv6]
router_mac = "02:00:00:00:00:01"
router_link_local = "fe80::1"
ra_interval_max_s = 4
prefix_lifetime_cap_s = 10
dns = ["2001:db8::53"]
[[profiles]]
name = "d"
service = "dual"
dns6 = ["2001:db8::54"]
[[profiles]]
name = "six"
nai = "six@example.com"
service = "ipv6"
"#,
        )
        .unwrap();
        assert_eq!(c.profiles[0].access_service(), Service::Dual);
        assert_eq!(c.profiles[1].access_service(), Service::Ipv6);
        assert!(c.ipv6_access());
        assert_eq!(c.ipv6.router_mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(c.ipv6.prefix_lifetime_cap, Some(Duration::from_secs(10)));
        assert_eq!(
            c.dns6_for(Some(&c.profiles[0])),
            ["2001:db8::54".parse::<std::net::Ipv6Addr>().unwrap()]
        );
        assert_eq!(
            c.dns6_for(Some(&c.profiles[1])),
            ["2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap()]
        );
        let c = load("[ipv6]\nprefix_lifetime_cap_s = 0\n[[profiles]]\nname = \"d\"\n").unwrap();
        assert_eq!(c.ipv6.prefix_lifetime_cap, None);
    }

    #[test]
    fn bad_values_named_by_key() {
        let e = load(
            r#"
[ipv6]
router_mac = "01:00:5e:00:00:01"
router_link_local = "2001:db8::1"
ra_interval_max_s = 3
dns = ["ff02::1"]
[[profiles]]
name = "d"
dns6 = ["::"]
"#,
        )
        .unwrap_err();
        for key in [
            "ipv6.router_mac:",
            "ipv6.router_link_local:",
            "ipv6.ra_interval_max_s:",
            "ipv6.dns:",
            "profiles[0].dns6:",
        ] {
            assert!(e.contains(key), "{key} missing in:\n{e}");
        }
        let e = load("[ipv6]\nra_interval_max_s = 60\nprefix_lifetime_cap_s = 60\n[[profiles]]\nname = \"d\"\n")
            .unwrap_err();
        assert!(e.contains("must exceed ra_interval_max_s (60)"), "{e}");
        let e = load("[[profiles]]\nname = \"d\"\nservice = \"ipv7\"\n").unwrap_err();
        assert!(e.contains("ipv7"), "{e}");
    }

    #[test]
    fn ipv6_service_is_pmipv6_only() {
        let v4 = mag().replace("pmipv6", "pmipv4").replace(
            "address = \"10.255.0.10\"",
            "address = \"10.255.0.10\"\nspi = 256\nalgorithm = \"hmac-md5\"\nkey = \"00112233\"",
        );
        let e = Config::from_toml_str(&format!(
            "{v4}[[profiles]]\nname = \"d\"\nservice = \"dual\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("profiles[0].service: PMIPv4 carries IPv4 only"),
            "{e}"
        );
        let e = Config::from_toml_str(&format!(
            "{v4}[ipv6]\ndhcpv6 = false\n[[profiles]]\nname = \"d\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ipv6: only used by a PMIPv6 access gateway"),
            "{e}"
        );
    }
}
