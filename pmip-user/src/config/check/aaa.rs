//! `[aaa]`: RADIUS servers, authorization, accounting and dynamic authorization (issue 14).
//!
//! The section's own rules are [`AaaConfig::check`] (errors already name `aaa.*`); here it
//! is completed from the rest of the file: the NAS identity defaults to this gateway's
//! signaling address (`addresses.ipv4`, else `addresses.ipv6`), and an anchor does no
//! authorization (it only accounts and answers Disconnect-Requests: seed 000's HA).
use super::Errors;
use crate::aaa::AaaConfig;
use crate::config::file::File;
use crate::config::Role;

pub(super) fn check(f: &File, v: &mut Errors) -> Option<AaaConfig> {
    let mut a = f.aaa.clone()?;
    if a.nas_ip_address.is_none() && a.nas_ipv6_address.is_none() {
        a.nas_ip_address = f.addresses.ipv4;
        if a.nas_ip_address.is_none() {
            a.nas_ipv6_address = f.addresses.ipv6;
        }
    }
    if f.role == Role::Anchor {
        a.authorization = false;
    }
    if let Err(errs) = a.check() {
        v.0.extend(errs);
    }
    if a.dae.enabled && f.protocol == crate::config::Protocol::Pmipv4 && a.dae.port == 434 {
        v.err("aaa.dae.port", "434 is the PMIPv4 registration port");
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use crate::config::testing::mag_toml_with_profile as access;

    fn with(extra: &str) -> Result<Config, crate::config::ConfigErrors> {
        Config::from_toml_str(&format!("{}\n{extra}", access()))
    }

    #[test]
    fn seed_004_section_read_and_nas_address_defaulted() {
        let c = with(
            r#"
[aaa]
nas_identifier = "MAG1"
retransmit = 2
timeout_s = 3
[[aaa.servers]]
address = "203.0.113.115"
secret = "aaacisco"
[aaa.accounting]
interim_interval_s = 600
"#,
        )
        .unwrap();
        let a = c.aaa.expect("[aaa] read");
        assert_eq!(a.nas_ip_address, Some("10.255.0.1".parse().unwrap()));
        assert_eq!(a.retransmit, 2);
        assert!(a.authorization);
        assert_eq!(a.accounting.interim_interval.as_secs(), 600);
        // No section: no AAA.
        assert!(with("").unwrap().aaa.is_none());
    }

    #[test]
    fn radius_example_loads() {
        let text = include_str!("../../../../examples/access-pmipv6-radius.toml");
        let c = Config::from_toml_str(text).unwrap();
        let a = c.aaa.unwrap();
        assert_eq!(a.nas_ip_address, Some("10.8.22.15".parse().unwrap()));
        assert_eq!((a.retransmit, a.timeout.as_secs()), (2, 3));
        assert!(a.dae.enabled && a.attributes.event_timestamp_access);
        assert_eq!(a.accounting.interim_interval.as_secs(), 600);
    }

    #[test]
    fn errors_name_the_key_inside_the_file() {
        let e = with(
            r#"
[aaa]
[[aaa.servers]]
address = "203.0.113.115"
secret = ""
[aaa.dae]
enabled = true
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("aaa.servers[0].secret: must not be empty"),
            "{e}"
        );
        assert!(e.contains("aaa.dae.clients:"), "{e}");
        let e = with("[aaa]\nnas_identifer = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nas_identifer"), "{e}");
    }

    #[test]
    fn anchor_does_no_authorization_and_secrets_stay_hidden() {
        let text = r#"
role = "anchor"
protocol = "pmipv6"
[interfaces]
core = "core0"
[addresses]
ipv4 = "10.255.0.10"
[[peers]]
name = "mag1"
address = "10.255.0.1"
insecure = true
[[pools]]
name = "p"
prefix = "10.64.0.0/24"
gateway = "10.64.0.1"
[aaa]
[[aaa.servers]]
address = "10.255.0.20"
secret = "hush-hush"
"#;
        let c = Config::from_toml_str(text).unwrap();
        let a = c.aaa.as_ref().unwrap();
        assert!(!a.authorization);
        assert_eq!(a.nas_ip_address, Some("10.255.0.10".parse().unwrap()));
        assert!(!format!("{c:?}").contains("hush-hush"));
    }
}
