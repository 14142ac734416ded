//! Byte-array tests of the ND codec: each message written out by hand from
//! RFC 4861 §4 / RFC 8106 §5.1, then deconstructed, parsed, constructed and
//! emitted; truncated and malformed variants are errors, never panics.
use super::*;
use crate::access::frame6::upper_layer_checksum;

const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// RA: hop limit 64, M and O set, router lifetime 1800 s, then SLLA, MTU 1452,
/// prefix 2001:db8:64:10::/64 (L, A, 3600/1800 s) and RDNSS 2001:db8::53.
fn ra_bytes() -> Vec<u8> {
    let mut b = vec![134, 0, 0, 0, 64, 0xc0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0xfe]);
    b.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xac]);
    b.extend_from_slice(&[
        3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
    ]);
    b.extend_from_slice(&a("2001:db8:64:10::").octets());
    b.extend_from_slice(&[25, 3, 0, 0, 0, 0, 0x0e, 0x10]);
    b.extend_from_slice(&a("2001:db8::53").octets());
    b
}

fn ra_repr() -> NdRepr {
    NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: true,
        other: true,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_time: 0,
        slla: Some(ROUTER_MAC),
        mtu: Some(1452),
        prefixes: vec![PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 3600,
            preferred_lifetime: 1800,
            prefix: a("2001:db8:64:10::"),
        }],
        rdnss: Some(Rdnss {
            lifetime: 3600,
            servers: vec![a("2001:db8::53")],
        }),
    })
}

/// NS for fe80::ff:fe00:fe with SLLA 02:00:00:00:00:01.
fn ns_bytes() -> Vec<u8> {
    let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&a("fe80::ff:fe00:fe").octets());
    b.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0x01]);
    b
}

/// NA, R S O set, target fe80::ff:fe00:fe, TLLA the router's MAC.
fn na_bytes() -> Vec<u8> {
    let mut b = vec![136, 0, 0, 0, 0xe0, 0, 0, 0];
    b.extend_from_slice(&a("fe80::ff:fe00:fe").octets());
    b.extend_from_slice(&[2, 1, 0x02, 0, 0, 0, 0, 0xfe]);
    b
}

#[test]
fn ra_deconstruct() {
    let b = ra_bytes();
    let p = NdPacket::new_checked(&b[..]).unwrap();
    assert_eq!(p.msg_type(), ICMPV6_ROUTER_ADVERT);
    assert_eq!(p.code(), 0);
    assert_eq!(p.cur_hop_limit(), 64);
    assert_eq!(p.ra_flags(), 0xc0);
    assert_eq!(p.router_lifetime(), 1800);
    assert_eq!(p.reachable_time(), 0);
    assert_eq!(p.retrans_time(), 0);
    let opts: Vec<_> = p.options().map(|o| o.unwrap()).collect();
    assert_eq!(opts.len(), 4);
    assert_eq!(opts[0], NdOption::SourceLinkLayerAddr(ROUTER_MAC));
    assert_eq!(opts[1], NdOption::Mtu(1452));
    assert!(matches!(opts[2], NdOption::PrefixInformation(p) if p.valid_lifetime == 3600));
    assert!(matches!(&opts[3], NdOption::Rdnss(r) if r.servers == vec![a("2001:db8::53")]));
}

#[test]
fn ra_parse_and_emit() {
    assert_eq!(
        NdRepr::parse(&NdPacket::new_checked(&ra_bytes()[..]).unwrap()).unwrap(),
        ra_repr()
    );
    let r = ra_repr();
    assert_eq!(r.buffer_len(), ra_bytes().len());
    let mut buf = vec![0xa5u8; r.buffer_len()];
    r.emit(&mut NdPacket::new_unchecked(&mut buf[..]));
    assert_eq!(buf, ra_bytes());
    // With the checksum filled the message verifies to 0.
    let (s, d) = (a("fe80::ff:fe00:fe"), a("fe80::1"));
    let m = r.to_bytes(s, d);
    assert_eq!(upper_layer_checksum(s, d, 58, &m), 0);
    assert_eq!(&m[4..], &ra_bytes()[4..]);
}

#[test]
fn ns_na_rs_round_trip() {
    let ns = NdRepr::NeighborSolicit {
        target: a("fe80::ff:fe00:fe"),
        slla: Some([0x02, 0, 0, 0, 0, 0x01]),
    };
    let na = NdRepr::NeighborAdvert {
        flags: NaFlags {
            router: true,
            solicited: true,
            override_: true,
        },
        target: a("fe80::ff:fe00:fe"),
        tlla: Some(ROUTER_MAC),
    };
    for (repr, bytes) in [(ns, ns_bytes()), (na, na_bytes())] {
        let p = NdPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.target(), a("fe80::ff:fe00:fe"));
        assert_eq!(NdRepr::parse(&p).unwrap(), repr);
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut NdPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, bytes);
    }
    let rs = [133u8, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        NdRepr::parse(&NdPacket::new_checked(&rs[..]).unwrap()).unwrap(),
        NdRepr::RouterSolicit { slla: None }
    );
    assert_eq!(NdRepr::RouterSolicit { slla: None }.buffer_len(), 8);
}

#[test]
fn unknown_options_are_yielded_and_skipped() {
    // RS with a nonce option (type 14, RFC 7527) and an SLLA.
    let b = [
        133u8, 0, 0, 0, 0, 0, 0, 0, 14, 1, 1, 2, 3, 4, 5, 6, 1, 1, 2, 0, 0, 0, 0, 1,
    ];
    let p = NdPacket::new_checked(&b[..]).unwrap();
    let o: Vec<_> = p.options().collect();
    assert_eq!(
        o[0],
        Ok(NdOption::Unknown {
            kind: 14,
            data: &[1, 2, 3, 4, 5, 6]
        })
    );
    assert_eq!(
        NdRepr::parse(&p).unwrap(),
        NdRepr::RouterSolicit {
            slla: Some([2, 0, 0, 0, 0, 1])
        }
    );
    let u = NdOption::Unknown {
        kind: 14,
        data: &[1, 2, 3, 4, 5, 6],
    };
    let mut out = [0u8; 8];
    u.emit(&mut out);
    assert_eq!(&out, &b[8..16]);
}

#[test]
fn truncated_and_malformed_are_errors() {
    let ra = ra_bytes();
    for n in 0..16 {
        assert_eq!(
            NdPacket::new_checked(&ra[..n]).err(),
            Some(Error::Truncated),
            "{n}"
        );
    }
    // Cut inside an option: the option walk fails, so does parse.
    for n in [17, 23, 30, 60, ra.len() - 1] {
        let p = NdPacket::new_checked(&ra[..n]).unwrap();
        assert!(NdRepr::parse(&p).is_err(), "{n}");
    }
    let bad = |at: usize, v: u8| {
        let mut b = ra_bytes();
        b[at] = v;
        NdRepr::parse(&NdPacket::new_checked(&b[..]).unwrap())
    };
    assert_eq!(bad(1, 1), Err(Error::Malformed)); // code 1
    assert_eq!(bad(17, 0), Err(Error::Malformed)); // option length 0
    assert_eq!(bad(17, 2), Err(Error::Malformed)); // SLLA of 16 bytes
    assert_eq!(bad(33, 3), Err(Error::Malformed)); // prefix info of 3 units
    assert_eq!(bad(34, 129), Err(Error::Malformed)); // prefix length 129
    assert_eq!(bad(65, 2), Err(Error::Malformed)); // RDNSS without a server
    assert_eq!(bad(25, 2), Err(Error::Malformed)); // MTU of 2 units
    assert_eq!(bad(0, 128), Err(Error::Unsupported)); // echo request
                                                      // Many NS lengths below 24 are truncated.
    let ns = ns_bytes();
    for n in 4..24 {
        assert_eq!(
            NdPacket::new_checked(&ns[..n]).err(),
            Some(Error::Truncated)
        );
    }
}

#[test]
fn validate_rules() {
    let ll = a("fe80::1");
    let rs = NdRepr::RouterSolicit { slla: Some([2; 6]) };
    assert!(validate(&rs, ll, a("ff02::2"), 255).is_ok());
    assert!(validate(&rs, ll, a("ff02::2"), 254).is_err());
    assert!(validate(&rs, Ipv6Addr::UNSPECIFIED, a("ff02::2"), 255).is_err());
    let t = a("2001:db8:64:10::1234:5678");
    let dad = NdRepr::NeighborSolicit {
        target: t,
        slla: None,
    };
    assert!(validate(&dad, Ipv6Addr::UNSPECIFIED, a("ff02::1:ff34:5678"), 255).is_ok());
    assert!(validate(&dad, Ipv6Addr::UNSPECIFIED, a("ff02::1"), 255).is_err());
    let mc = NdRepr::NeighborSolicit {
        target: a("ff02::1"),
        slla: None,
    };
    assert!(validate(&mc, ll, a("ff02::1:ff00:1"), 255).is_err());
    let na = NdRepr::NeighborAdvert {
        flags: NaFlags {
            solicited: true,
            ..Default::default()
        },
        target: ll,
        tlla: None,
    };
    assert!(validate(&na, ll, a("fe80::2"), 255).is_ok());
    assert!(validate(&na, ll, a("ff02::1"), 255).is_err());
    let ra = ra_repr();
    assert!(validate(&ra, ll, a("ff02::1"), 255).is_ok());
    assert!(validate(&ra, a("2001:db8::1"), a("ff02::1"), 255).is_err());
}

proptest::proptest! {
    #[test]
    fn ra_round_trip(
        hop: u8, lifetime: u16, valid: u32, pref: u32, mtu: Option<u32>,
        managed: bool, other: bool, plen in 0u8..=128, prefix: [u8; 16],
        servers in proptest::collection::vec(proptest::prelude::any::<[u8; 16]>(), 0..4),
    ) {
        let r = NdRepr::RouterAdvert(RouterAdvert {
            cur_hop_limit: hop, managed, other, router_lifetime: lifetime,
            reachable_time: valid, retrans_time: pref, slla: Some(ROUTER_MAC), mtu,
            prefixes: vec![PrefixInfo { prefix_len: plen, on_link: managed, autonomous: other,
                valid_lifetime: valid, preferred_lifetime: pref, prefix: prefix.into() }],
            rdnss: (!servers.is_empty()).then(|| Rdnss { lifetime: valid,
                servers: servers.iter().map(|s| Ipv6Addr::from(*s)).collect() }),
        });
        let b = r.to_bytes(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        proptest::prop_assert_eq!(NdRepr::parse(&NdPacket::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)) {
        if let Ok(p) = NdPacket::new_checked(&data[..]) {
            let _ = p.options().count();
            if let Ok(r) = NdRepr::parse(&p) {
                let _ = validate(&r, Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, 255);
                let _ = r.to_bytes(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
            }
        }
    }
}

/// More RDNSS servers than one option's one-octet Length can describe go
/// in several options and parse back as one list (found by the access_nd
/// fuzz target: 200 servers emitted as one option with a wrapped Length).
#[test]
fn many_rdnss_servers_split_into_options_and_round_trip() {
    let mut r = ra_repr();
    let NdRepr::RouterAdvert(ra) = &mut r else {
        unreachable!()
    };
    ra.rdnss = Some(Rdnss {
        lifetime: 600,
        servers: (0..200u16)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
            .collect(),
    });
    let b = r.to_bytes(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
    let p = NdPacket::new_checked(&b[..]).expect("own emit");
    let rdnss_options = p
        .options()
        .filter(|o| matches!(o, Ok(NdOption::Rdnss(_))))
        .count();
    assert_eq!(rdnss_options, 2);
    assert_eq!(NdRepr::parse(&p), Ok(r));
}
