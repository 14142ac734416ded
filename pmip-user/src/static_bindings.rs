//! Static bindings from a TOML file: operators use static GRE tunnels (and the
//! tests use them before signaling exists). Format (documented in the README):
//!
//! ```toml
//! attach_mode = "auto"            # auto (native, else generic, else tc) | native | generic | tc
//! pin_dir = "/sys/fs/bpf/pmip"    # optional: keep forwarding after pmipd exits
//!
//! [[interface]]
//! name = "acc0"
//! role = "access"                 # access | access-core | anchor-core | anchor-cn | anchor | pass
//! ipv4 = "10.64.0.1"              # source of ICMP errors / the default router
//!
//! [[access]]                      # on an access gateway (MAG/PMA)
//! interface = "acc0"
//! mac = "02:00:00:00:00:10"
//! vlan = 0
//! home_v4 = "10.64.0.10"
//! gateway_v4 = "10.64.0.1"
//! hnp = "2001:db8:64:10::/64"
//! local = "192.0.2.1"
//! remote = "192.0.2.2"
//! uplink_key = 100
//! downlink_key = 200
//! sub_id = 1
//!
//! [[anchor]]                      # on an anchor (LMA/HA)
//! home_v4 = "10.64.0.10"
//! local = "192.0.2.2"
//! remote = "192.0.2.1"
//! uplink_key = 100
//! downlink_key = 200
//! sub_id = 1
//! ```
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::dataplane::{AccessBinding, AccessPoint, AnchorBinding, Hnp, TunnelEnds};
use crate::fastpath::{AttachMode, IfaceSpec};

/// A static-bindings file, typed when read: roles decoded, MACs as bytes,
/// prefixes parsed; nothing is parsed again when the bindings are installed.
#[derive(Debug)]
pub struct StaticFile {
    pub attach_mode: AttachMode,
    pub pin_dir: Option<PathBuf>,
    /// The interfaces to attach (role 0: only the pass-everything program).
    pub interfaces: Vec<IfaceSpec>,
    pub access: Vec<StaticAccess>,
    pub anchor: Vec<AnchorBinding>,
}

/// An access binding whose interface is known by name until it is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticAccess {
    pub interface: String,
    pub vlan: u16,
    pub mac: [u8; 6],
    pub home_v4: Option<Ipv4Addr>,
    pub gateway_v4: Option<Ipv4Addr>,
    pub hnp: Option<Hnp>,
    pub tunnel: TunnelEnds,
    pub uplink_key: u32,
    pub downlink_key: u32,
    pub sub_id: u32,
}

/// The file as TOML spells it.
mod file {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct File {
        #[serde(default = "default_mode")]
        pub attach_mode: AttachMode,
        pub pin_dir: Option<PathBuf>,
        #[serde(default)]
        pub interface: Vec<InterfaceEntry>,
        #[serde(default)]
        pub access: Vec<AccessEntry>,
        #[serde(default)]
        pub anchor: Vec<AnchorEntry>,
    }

    fn default_mode() -> AttachMode {
        AttachMode::Auto
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct InterfaceEntry {
        pub name: String,
        pub role: String,
        pub ipv4: Option<Ipv4Addr>,
        pub ipv6: Option<Ipv6Addr>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AccessEntry {
        pub interface: String,
        pub mac: String,
        #[serde(default)]
        pub vlan: u16,
        pub home_v4: Option<Ipv4Addr>,
        pub gateway_v4: Option<Ipv4Addr>,
        pub hnp: Option<String>,
        pub local: IpAddr,
        pub remote: IpAddr,
        pub uplink_key: u32,
        pub downlink_key: u32,
        pub sub_id: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AnchorEntry {
        pub home_v4: Option<Ipv4Addr>,
        pub hnp: Option<String>,
        pub local: IpAddr,
        pub remote: IpAddr,
        pub uplink_key: u32,
        pub downlink_key: u32,
        pub sub_id: u32,
    }
}

fn role_bits(s: &str) -> Result<u8> {
    use pmip_common::role;
    Ok(match s {
        "access" => role::ACCESS,
        "access-core" => role::ACCESS_CORE,
        "anchor-core" => role::ANCHOR_CORE,
        "anchor-cn" => role::ANCHOR_CN,
        // An anchor whose correspondents and access gateways share one link.
        "anchor" => role::ANCHOR_CORE | role::ANCHOR_CN,
        // Only the pass-everything program (far end of a veth in a lab).
        "pass" => 0,
        _ => bail!("unknown role {s:?} (access, access-core, anchor-core, anchor-cn, anchor)"),
    })
}

fn parse_hnp(s: &str) -> Result<Hnp> {
    let (p, l) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("{s:?}: expected prefix/len"))?;
    let prefix: Ipv6Addr = p
        .parse()
        .with_context(|| format!("{s:?}: bad IPv6 prefix"))?;
    let len: u8 = l
        .parse()
        .with_context(|| format!("{s:?}: bad prefix length"))?;
    if len != 64 {
        bail!("{s:?}: the fast path matches /64 home network prefixes only");
    }
    Ok(Hnp { prefix, len })
}

/// Checks each entry of a table, with its index (for the error's key path).
fn each<T, U>(entries: &[T], check: impl Fn(usize, &T) -> Result<U>) -> Result<Vec<U>> {
    (entries.iter().enumerate())
        .map(|(i, e)| check(i, e))
        .collect()
}

fn tunnel(local: IpAddr, remote: IpAddr, at: &str) -> Result<TunnelEnds> {
    if local.is_ipv4() != remote.is_ipv4() {
        bail!("{at}: local {local} and remote {remote} must be of the same family");
    }
    Ok(TunnelEnds { local, remote })
}

impl StaticFile {
    /// Parses and checks everything that does not need the interfaces to exist.
    pub fn parse(text: &str) -> Result<Self> {
        let f: file::File = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
        let interfaces = each(&f.interface, |i, e| {
            Ok(IfaceSpec {
                name: e.name.clone(),
                role: role_bits(&e.role).with_context(|| format!("interface[{i}].role"))?,
                addr4: e.ipv4,
                addr6: e.ipv6,
            })
        })?;
        Ok(StaticFile {
            attach_mode: f.attach_mode,
            pin_dir: f.pin_dir,
            interfaces,
            access: each(&f.access, access_entry)?,
            anchor: each(&f.anchor, anchor_entry)?,
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The access bindings, their interfaces looked up in this namespace.
    pub fn access_bindings(&self) -> Result<Vec<AccessBinding>> {
        self.access
            .iter()
            .map(|a| {
                Ok(AccessBinding {
                    at: AccessPoint {
                        ifindex: crate::sys::ifindex(&a.interface)?,
                        vlan: a.vlan,
                        mac: a.mac,
                    },
                    sub_id: a.sub_id,
                    tunnel: a.tunnel,
                    uplink_key: a.uplink_key,
                    downlink_key: a.downlink_key,
                    home_v4: a.home_v4,
                    gateway_v4: a.gateway_v4,
                    hnp: a.hnp,
                })
            })
            .collect()
    }
}

fn access_entry(i: usize, a: &file::AccessEntry) -> Result<StaticAccess> {
    let mac = crate::mac::parse_mac_or_err(&a.mac).with_context(|| format!("access[{i}].mac"))?;
    if a.vlan > 4094 {
        bail!("access[{i}].vlan: {} is not a VLAN id (0-4094)", a.vlan);
    }
    let hnp = a
        .hnp
        .as_deref()
        .map(parse_hnp)
        .transpose()
        .with_context(|| format!("access[{i}].hnp"))?;
    Ok(StaticAccess {
        interface: a.interface.clone(),
        vlan: a.vlan,
        mac,
        home_v4: a.home_v4,
        gateway_v4: a.gateway_v4,
        hnp,
        tunnel: tunnel(a.local, a.remote, &format!("access[{i}]"))?,
        uplink_key: a.uplink_key,
        downlink_key: a.downlink_key,
        sub_id: a.sub_id,
    })
}

fn anchor_entry(i: usize, a: &file::AnchorEntry) -> Result<AnchorBinding> {
    if a.home_v4.is_none() && a.hnp.is_none() {
        bail!("anchor[{i}]: needs home_v4 or hnp");
    }
    let hnp = a
        .hnp
        .as_deref()
        .map(parse_hnp)
        .transpose()
        .with_context(|| format!("anchor[{i}].hnp"))?;
    Ok(AnchorBinding {
        sub_id: a.sub_id,
        tunnel: tunnel(a.local, a.remote, &format!("anchor[{i}]"))?,
        uplink_key: a.uplink_key,
        downlink_key: a.downlink_key,
        home_v4: a.home_v4,
        hnp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[interface]]
        name = "acc0"
        role = "access"
        ipv4 = "10.64.0.1"
        [[access]]
        interface = "acc0"
        mac = "02:00:00:00:00:10"
        home_v4 = "10.64.0.10"
        local = "192.0.2.1"
        remote = "192.0.2.2"
        uplink_key = 100
        downlink_key = 200
        sub_id = 1
        [[anchor]]
        hnp = "2001:db8:1:2::/64"
        local = "2001:db8::2"
        remote = "2001:db8::1"
        uplink_key = 1
        downlink_key = 2
        sub_id = 2
    "#;

    #[test]
    fn parses_the_documented_format() {
        let f = StaticFile::parse(GOOD).unwrap();
        assert_eq!(f.attach_mode, AttachMode::Auto);
        assert_eq!(f.access[0].uplink_key, 100);
        assert_eq!(f.access[0].mac, [2, 0, 0, 0, 0, 0x10]);
        assert_eq!(f.interfaces[0].role, pmip_common::role::ACCESS);
        assert_eq!(
            f.anchor[0].hnp.unwrap().prefix,
            "2001:db8:1:2::".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            (
                GOOD.replace("role = \"access\"", "role = \"acess\""),
                "interface[0].role",
            ),
            (
                GOOD.replace("02:00:00:00:00:10", "02:00:00:00:10"),
                "access[0].mac",
            ),
            (
                GOOD.replace("remote = \"192.0.2.2\"", "remote = \"2001:db8::9\""),
                "access[0]",
            ),
            (
                GOOD.replace("2001:db8:1:2::/64", "2001:db8:1:2::/56"),
                "anchor[0].hnp",
            ),
            (
                GOOD.replace("uplink_key = 100", "uplink_key = -1"),
                "uplink_key",
            ),
            (GOOD.replace("sub_id = 1", "sub_id = 1\nbogus = 3"), "bogus"),
        ];
        for (text, field) in cases {
            let e = format!("{:#}", StaticFile::parse(&text).unwrap_err());
            assert!(
                e.contains(field),
                "error for {field:?} does not name it: {e}"
            );
        }
    }
}
