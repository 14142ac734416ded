//! A gateway in one namespace for BPF_PROG_TEST_RUN: four veths, one per
//! fast-path role, with static neighbours so `bpf_fib_lookup` gives known MACs
//! and the expected output bytes are exact.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use pmip_common::role;
use pmip_user::dataplane::{AccessBinding, AccessPoint, AnchorBinding, Hnp, TunnelEnds};
use pmip_user::fastpath::{FastPath, HomePoolSpec, IfaceSpec, LoadOptions};

use crate::netns::Netns;
use crate::packet::{cat, eth, gre_keyed, ipv4, ipv6, ETH_P_IP, ETH_P_IPV6};

pub const ACC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xa0, 0x01];
pub const CORE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc0, 0x01];
pub const MAG_PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc0, 0x02];
pub const ACORE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xa1, 0x01];
pub const LMA_PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xa1, 0x02];
pub const CN_IF_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xcc, 0x01];
pub const CN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xcc, 0x02];
pub const SUB1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x10];
pub const SUB2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x11];
pub const SUB3_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x12];

pub const GW4: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
pub const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const HOME1: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 10);
pub const HOME2: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 11);
pub const HOME3: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 12);
pub const HNP1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0x10, 0, 0, 0, 0);
/// SUB2's prefix (its tunnel is over IPv6).
pub const HNP2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0x20, 0, 0, 0, 0);
pub const MAG4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const LMA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const MAG6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
pub const LMA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);
/// Anchor side: this box as LMA, the access gateway as its peer.
pub const A_LOCAL4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const A_PEER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const A_LOCAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 1);
pub const A_PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 2);
pub const AHOME4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 5);
pub const AHOME4_V6T: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 6);
pub const AHNP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0x5, 0, 0, 0, 0);
/// The prefix of the anchor's binding over the IPv6 tunnel.
pub const AHNP_V6T: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0x6, 0, 0, 0, 0);
pub const CN4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const CN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, 2);
pub const CN_IF4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A GRE-keyed frame (RFC 2890) from the anchor to this gateway's core
/// link, outer IPv4 `LMA4` → `MAG4`: what the access side decapsulates.
pub fn from_lma4(proto: u16, key: u32, inner: &[u8]) -> Vec<u8> {
    cat(
        eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IP),
        &ipv4(LMA4, MAG4, 47, 64, false, &gre_keyed(proto, key, inner)),
    )
}

/// As `from_lma4`, outer IPv6 `LMA6` → `MAG6`.
pub fn from_lma6(proto: u16, key: u32, inner: &[u8]) -> Vec<u8> {
    cat(
        eth(CORE_MAC, MAG_PEER_MAC, 0, ETH_P_IPV6),
        &ipv6(LMA6, MAG6, 47, 64, &gre_keyed(proto, key, inner)),
    )
}

/// A GRE-keyed frame from the access gateway to this gateway's anchor core
/// link, outer IPv4 `A_PEER4` → `A_LOCAL4`: what the anchor decapsulates.
pub fn from_mag4(proto: u16, key: u32, inner: &[u8]) -> Vec<u8> {
    cat(
        eth(ACORE_MAC, LMA_PEER_MAC, 0, ETH_P_IP),
        &ipv4(
            A_PEER4,
            A_LOCAL4,
            47,
            64,
            false,
            &gre_keyed(proto, key, inner),
        ),
    )
}

/// As `from_mag4`, outer IPv6 `A_PEER6` → `A_LOCAL6`.
pub fn from_mag6(proto: u16, key: u32, inner: &[u8]) -> Vec<u8> {
    cat(
        eth(ACORE_MAC, LMA_PEER_MAC, 0, ETH_P_IPV6),
        &ipv6(A_PEER6, A_LOCAL6, 47, 64, &gre_keyed(proto, key, inner)),
    )
}

pub struct Fixture {
    pub ns: Netns,
    pub fp: FastPath,
    pub acc: u32,
    pub core: u32,
    pub acore: u32,
    pub cn: u32,
}

/// The XDP program pmipd attaches to the fixture's interface `ifindex` of
/// interfaces `ifs` (acc, core, acore, cn; each of one role, configured in
/// `setup_with`): its role's program (`xdp_program_for`). None for another
/// interface.
pub fn role_program(ifs: [u32; 4], ifindex: u32) -> Option<&'static str> {
    let roles = [
        role::ACCESS,
        role::ACCESS_CORE,
        role::ANCHOR_CORE,
        role::ANCHOR_CN,
    ];
    let i = ifs.iter().position(|&x| x == ifindex && x != 0)?;
    Some(pmip_user::fastpath::xdp_program_for(roles[i]))
}

fn mac_s(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds the namespace; the FastPath is loaded and configured from a thread
/// inside it (ifindexes and FIB are per namespace).
pub fn setup(core_mtu: u32) -> Result<Fixture> {
    setup_sized(core_mtu, LoadOptions::default().max_subscribers)
}

/// [`setup`] with subscriber maps of `max_subscribers` entries (the scale benchmark).
pub fn setup_sized(core_mtu: u32, max_subscribers: u32) -> Result<Fixture> {
    setup_with(
        core_mtu,
        LoadOptions {
            max_subscribers,
            ..Default::default()
        },
    )
}

/// The anchor pools that hold the fixture's anchor-side home addresses and
/// prefixes (AHOME4, AHOME4_V6T, AHNP): with them the anchor finds its
/// subscribers by their place in the pool instead of in the hashes.
pub fn anchor_pools() -> Vec<HomePoolSpec> {
    vec![
        HomePoolSpec::V4 {
            prefix: Ipv4Addr::new(10, 77, 0, 0),
            len: 24,
        },
        HomePoolSpec::V6 {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0),
            len: 48,
            assign_len: 64,
        },
    ]
}

/// [`setup`] with the fast path loaded with `opts` (its object path is the default).
pub fn setup_with(core_mtu: u32, opts: LoadOptions) -> Result<Fixture> {
    let ns = Netns::new("fpt")?;
    let pairs = [
        ("acc0", "accp", ACC_MAC),
        ("core0", "corep", CORE_MAC),
        ("acore0", "acorep", ACORE_MAC),
        ("cn0", "cnp", CN_IF_MAC),
    ];
    for (a, b, mac) in pairs {
        ns.exec(&[
            "ip",
            "link",
            "add",
            a,
            "address",
            &mac_s(mac),
            "type",
            "veth",
            "peer",
            "name",
            b,
        ])?;
        ns.exec(&["ip", "link", "set", a, "up"])?;
        ns.exec(&["ip", "link", "set", b, "up"])?;
    }
    let mtu = core_mtu.to_string();
    let cmds: Vec<Vec<String>> = vec![
        vec!["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        vec!["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        vec!["ip", "link", "set", "core0", "mtu", &mtu],
        vec!["ip", "addr", "add", "10.64.0.1/24", "dev", "acc0"],
        vec!["ip", "addr", "add", "192.0.2.1/24", "dev", "core0"],
        vec![
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:c::1/64",
            "dev",
            "core0",
            "nodad",
        ],
        vec!["ip", "addr", "add", "198.51.100.1/24", "dev", "acore0"],
        vec![
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:ac::1/64",
            "dev",
            "acore0",
            "nodad",
        ],
        vec!["ip", "addr", "add", "203.0.113.1/24", "dev", "cn0"],
        vec![
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:cc::1/64",
            "dev",
            "cn0",
            "nodad",
        ],
        vec![
            "ip",
            "neigh",
            "replace",
            "192.0.2.2",
            "lladdr",
            &mac_s(MAG_PEER_MAC),
            "dev",
            "core0",
            "nud",
            "permanent",
        ],
        vec![
            "ip",
            "-6",
            "neigh",
            "replace",
            "2001:db8:c::2",
            "lladdr",
            &mac_s(MAG_PEER_MAC),
            "dev",
            "core0",
            "nud",
            "permanent",
        ],
        vec![
            "ip",
            "neigh",
            "replace",
            "198.51.100.2",
            "lladdr",
            &mac_s(LMA_PEER_MAC),
            "dev",
            "acore0",
            "nud",
            "permanent",
        ],
        vec![
            "ip",
            "-6",
            "neigh",
            "replace",
            "2001:db8:ac::2",
            "lladdr",
            &mac_s(LMA_PEER_MAC),
            "dev",
            "acore0",
            "nud",
            "permanent",
        ],
        vec![
            "ip",
            "neigh",
            "replace",
            "203.0.113.2",
            "lladdr",
            &mac_s(CN_MAC),
            "dev",
            "cn0",
            "nud",
            "permanent",
        ],
        vec![
            "ip",
            "-6",
            "neigh",
            "replace",
            "2001:db8:cc::2",
            "lladdr",
            &mac_s(CN_MAC),
            "dev",
            "cn0",
            "nud",
            "permanent",
        ],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    for c in &cmds {
        let refs: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        ns.exec(&refs)?;
    }
    let (fp, acc, core, acore, cn) = ns.run_in(move || -> Result<_> {
        let mut fp = FastPath::load(&opts)?;
        let spec = |name: &str, role: u8, a4: Option<Ipv4Addr>, a6: Option<Ipv6Addr>| IfaceSpec {
            name: name.into(),
            role,
            addr4: a4,
            addr6: a6,
        };
        let acc = fp.configure_iface(&spec("acc0", role::ACCESS, Some(GW4), Some(GW6)))?;
        let core = fp.configure_iface(&spec("core0", role::ACCESS_CORE, Some(MAG4), Some(MAG6)))?;
        let acore = fp.configure_iface(&spec(
            "acore0",
            role::ANCHOR_CORE,
            Some(A_LOCAL4),
            Some(A_LOCAL6),
        ))?;
        let cn = fp.configure_iface(&spec("cn0", role::ANCHOR_CN, Some(CN_IF4), None))?;
        let t4 = TunnelEnds {
            local: IpAddr::V4(MAG4),
            remote: IpAddr::V4(LMA4),
        };
        let t6 = TunnelEnds {
            local: IpAddr::V6(MAG6),
            remote: IpAddr::V6(LMA6),
        };
        let sub = |mac, vlan, id, tunnel, home, hnp: Option<Hnp>| AccessBinding {
            at: AccessPoint {
                ifindex: acc,
                vlan,
                mac,
            },
            sub_id: id,
            tunnel,
            uplink_key: 0x1000 + id,
            downlink_key: 0x2000 + id,
            home_v4: Some(home),
            gateway_v4: Some(GW4),
            hnp,
        };
        fp.install_access(&sub(
            SUB1_MAC,
            0,
            1,
            t4,
            HOME1,
            Some(Hnp {
                prefix: HNP1,
                len: 64,
            }),
        ))?;
        fp.install_access(&sub(
            SUB2_MAC,
            0,
            2,
            t6,
            HOME2,
            Some(Hnp {
                prefix: HNP2,
                len: 64,
            }),
        ))?;
        fp.install_access(&sub(SUB3_MAC, 100, 3, t4, HOME3, None))?;
        let at4 = TunnelEnds {
            local: IpAddr::V4(A_LOCAL4),
            remote: IpAddr::V4(A_PEER4),
        };
        let at6 = TunnelEnds {
            local: IpAddr::V6(A_LOCAL6),
            remote: IpAddr::V6(A_PEER6),
        };
        fp.install_anchor(&AnchorBinding {
            sub_id: 11,
            tunnel: at4,
            uplink_key: 0x3001,
            downlink_key: 0x4001,
            home_v4: Some(AHOME4),
            hnp: Some(Hnp {
                prefix: AHNP,
                len: 64,
            }),
        })?;
        fp.install_anchor(&AnchorBinding {
            sub_id: 12,
            tunnel: at6,
            uplink_key: 0x3002,
            downlink_key: 0x4002,
            home_v4: Some(AHOME4_V6T),
            hnp: Some(Hnp {
                prefix: AHNP_V6T,
                len: 64,
            }),
        })?;
        Ok((fp, acc, core, acore, cn))
    })??;
    Ok(Fixture {
        ns,
        fp,
        acc,
        core,
        acore,
        cn,
    })
}

/// `struct __sk_buff` (192 bytes) for a TC program's ctx_in: the packet
/// arrived on `ifindex` (ingress_ifindex at 36, ifindex at 40; the kernel
/// wants every other field it does not accept as input zero).
pub fn sk_buff(ifindex: u32) -> [u8; 192] {
    let mut b = [0u8; 192];
    b[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    b[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    b
}

/// `struct xdp_md` for ctx_in: data_end = frame length, ingress_ifindex set.
pub fn xdp_md(ifindex: u32, len: usize) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    b[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    b
}
