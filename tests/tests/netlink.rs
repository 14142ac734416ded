//! sys::netlink against the kernel in a namespace of its own: what the daemon
//! does over rtnetlink (link lookup, address, route, accept_local,
//! neighbours) checked with `ip` and /proc, the tools an operator would use.
use std::net::{IpAddr, Ipv4Addr};

use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::sys::netlink;

#[test]
fn addresses_routes_links_and_accept_local() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let a = Netns::new("nla").unwrap();
    let b = Netns::new("nlb").unwrap();
    veth(&a, "nl0", &b, "nl1").unwrap();
    a.exec(&["ip", "link", "set", "nl0", "address", "02:00:00:00:5e:01"])
        .unwrap();
    let r = a
        .run_in(|| -> anyhow::Result<()> {
            let l = netlink::link("nl0")?;
            assert_eq!(l.mac, [2, 0, 0, 0, 0x5e, 1]);
            assert!(l.up);
            assert_eq!(l.index, pmip_user::sys::ifindex("nl0")?);
            // Twice: the second add finds the address there and is no error.
            for _ in 0..2 {
                netlink::add_address("nl0", IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)), 24)?;
            }
            assert_eq!(
                netlink::ipv4_addresses("nl0")?,
                vec![(Ipv4Addr::new(10, 99, 0, 1), 24)]
            );
            // has_address, both families (IPv6 has no IFA_LOCAL).
            let v6: IpAddr = "fd00:99::1".parse()?;
            assert!(!netlink::has_address("nl0", v6)?);
            netlink::add_address("nl0", v6, 64)?;
            assert!(netlink::has_address("nl0", v6)?);
            assert!(netlink::has_address(
                "nl0",
                IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1))
            )?);
            assert!(!netlink::has_address(
                "nl0",
                IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2))
            )?);
            assert_eq!(netlink::ipv4_addresses("nl0")?.len(), 1, "IPv4 only");
            netlink::replace_route_v4(
                Ipv4Addr::new(10, 98, 0, 0),
                16,
                Ipv4Addr::new(10, 99, 0, 2),
                "nl0",
            )?;
            let routes = netlink::ipv4_routes("nl0")?;
            assert!(
                routes.contains(&(
                    Ipv4Addr::new(10, 98, 0, 0),
                    16,
                    Some(Ipv4Addr::new(10, 99, 0, 2))
                )),
                "{routes:?}"
            );
            netlink::enable_accept_local("nl0")?;
            // An error names the interface and the operation.
            let e = netlink::add_address("nlnone9", IpAddr::V4(Ipv4Addr::new(10, 99, 1, 1)), 24)
                .unwrap_err();
            assert!(format!("{e:#}").contains("nlnone9"), "{e:#}");
            Ok(())
        })
        .unwrap();
    r.unwrap();
    // What `ip` and /proc see.
    let addr = a
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "nl0"])
        .unwrap();
    assert!(addr.contains("inet 10.99.0.1/24 brd 10.99.0.255"), "{addr}");
    let route = a.exec(&["ip", "route", "show", "10.98.0.0/16"]).unwrap();
    assert!(route.contains("via 10.99.0.2 dev nl0"), "{route}");
    let al = a
        .exec(&["cat", "/proc/sys/net/ipv4/conf/nl0/accept_local"])
        .unwrap();
    assert_eq!(al.trim(), "1");
    // A neighbour entry learnt by a ping across the veth.
    b.exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", "nl1"])
        .unwrap();
    b.exec(&["ip", "link", "set", "nl1", "address", "02:00:00:00:5e:02"])
        .unwrap();
    a.exec(&[
        "ip",
        "neigh",
        "replace",
        "10.99.0.2",
        "lladdr",
        "02:00:00:00:5e:02",
        "dev",
        "nl0",
        "nud",
        "permanent",
    ])
    .unwrap();
    let n = a.run_in(|| netlink::neighbours("nl0")).unwrap().unwrap();
    let e = n
        .iter()
        .find(|x| x.addr == IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)))
        .unwrap_or_else(|| panic!("{n:?}"));
    assert_eq!(e.mac, Some([2, 0, 0, 0, 0x5e, 2]));
    // NUD_PERMANENT
    assert_eq!(e.state, 0x80);
}

/// `put_address_for` (the cluster's service addresses): the exclusive create
/// tells an address put back from one renewed, whatever happened between
/// two renewals, and the renewal sets the lifetime.
#[test]
fn put_address_for_tells_added_from_renewed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = Netns::new("nlput").unwrap();
    ns.exec(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ])
    .unwrap();
    ns.exec(&["ip", "link", "set", "d0", "up"]).unwrap();
    let a: IpAddr = "198.51.100.7".parse().unwrap();
    let a6: IpAddr = "2001:db8::7".parse().unwrap();
    let put = |x: IpAddr, len: u8, life: u32| {
        ns.run_in(move || netlink::put_address_for("d0", x, len, life))
            .unwrap()
            .unwrap()
    };
    assert!(put(a, 32, 30), "absent: added");
    assert!(!put(a, 32, 60), "there: renewed");
    let line = ns
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "d0"])
        .unwrap();
    assert!(
        line.contains("198.51.100.7/32")
            && (line.contains("valid_lft 60sec") || line.contains("valid_lft 59sec")),
        "{line}"
    );
    ns.exec(&["ip", "addr", "del", "198.51.100.7/32", "dev", "d0"])
        .unwrap();
    assert!(put(a, 32, 30), "removed by hand: added again");
    assert!(put(a6, 128, 30), "IPv6 absent: added");
    assert!(!put(a6, 128, 30), "IPv6 there: renewed");
    let line6 = ns
        .exec(&["ip", "-6", "-o", "addr", "show", "dev", "d0"])
        .unwrap();
    // No duplicate detection holding it: usable at once.
    assert!(
        line6.contains("2001:db8::7/128") && !line6.contains("tentative"),
        "{line6}"
    );
    let e = ns
        .run_in(move || netlink::put_address_for("nlnone9", a, 32, 30))
        .unwrap()
        .unwrap_err();
    assert!(format!("{e:#}").contains("nlnone9"), "{e:#}");
}
