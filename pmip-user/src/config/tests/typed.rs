//! The typed configuration and what is built from it: the agents get the
//! file's values (and `defaults`), never their own defaults; what `run`
//! would refuse from the configuration alone, the check refuses.
use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::fastpath::HomePoolSpec;
use crate::pmipv4::{auth, ha, pma};
use crate::pmipv6::{lma, mag};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn strings_are_typed_once() {
    let c = Config::from_toml_str(ANCHOR_V6).unwrap();
    let (Pool::V4(p4), Pool::V6(p6)) = (&c.pools[0], &c.pools[1]) else {
        panic!("pools out of order: {:?}", c.pools);
    };
    assert_eq!(p4.prefix.to_string(), "192.0.2.0/24");
    assert_eq!(p4.gateway, Ipv4Addr::new(192, 0, 2, 254));
    assert_eq!(p6.prefix.to_string(), "2001:db8:f00d::/48");
    assert_eq!((p6.assign_len, c.pools[1].name()), (64, "PMIP_IPv6_POOL"));
    assert_eq!(c.timers.heartbeat_interval, Some(secs(30)));
    let a = Config::from_toml_str(ACCESS_V6).unwrap();
    assert_eq!(
        a.profile("mn0").unwrap().mac,
        Some([0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4])
    );
    let mut doc: Value = toml::from_str(ACCESS_V4).unwrap();
    let sb: Value = toml::from_str(
        r#"interface = "eth0"
mac = "0200.0000.0007"
home_address = "192.0.2.30"
peer = "ha1"
uplink_key = 5
downlink_key = 6"#,
    )
    .unwrap();
    set(&mut doc, "static_bindings", Some(Value::Array(vec![sb])));
    let c4 = Config::from_toml_str(&toml::to_string(&doc).unwrap()).unwrap();
    assert_eq!(c4.static_bindings[0].mac, Some([2, 0, 0, 0, 0, 7]));
    assert_eq!(c4.peer("ha2").unwrap().sa.as_ref().unwrap().key[0], 0xff);
}

#[test]
fn pmipv6_agents_get_the_files_values() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    let m = agents::mag(&c, 9);
    assert_eq!(m.local.v6, c.addresses.ipv6);
    assert_eq!(
        m.lmas,
        vec![mag::LmaPeerConfig {
            name: "lma1".into(),
            addr: "2001:db8:cafe:1024::101".parse().unwrap(),
            port: 5436,
        }]
    );
    assert_eq!(
        (
            m.lifetime,
            m.refresh,
            m.retx_initial,
            m.retx_max,
            m.max_retx
        ),
        (secs(3600), secs(300), secs(1), secs(32), 5)
    );
    assert_eq!(
        (
            m.heartbeat_interval,
            m.heartbeat_missing_limit,
            m.restart_counter
        ),
        (secs(30), 3, 9)
    );

    let c = Config::from_toml_str(ANCHOR_V6).unwrap();
    let l = agents::lma(&c, 9);
    // The file's replay window, not LmaConfig's own 300 ms.
    assert_eq!(l.timestamp_window, ms(200));
    assert_eq!(l.max_lifetime, secs(40000));
    assert_eq!((l.bri_retx_initial, l.bri_retx_max), (secs(1), secs(2)));
    // Every MAG gets BRIs unless its peer entry says otherwise, and a PBU
    // with handoff state unknown waits RFC 5213's 1500 ms by default.
    assert!(l.revocation && l.no_revocation.is_empty());
    assert_eq!(l.new_bce_delay, ms(1500));
    let off = ANCHOR_V6.replace("name = \"mag2\"\n", "name = \"mag2\"\nrevocation = false\n");
    let l2 = agents::lma(&Config::from_toml_str(&off).unwrap(), 9);
    let mag2: std::net::IpAddr = "2001:db8:cafe:1026::15".parse().unwrap();
    assert_eq!(l2.no_revocation, [mag2].into_iter().collect());
    assert_eq!(
        l.ipv4_pool,
        Some(lma::Ipv4PoolConfig {
            network: Ipv4Addr::new(192, 0, 2, 0),
            prefix_len: 24,
            gateway: Ipv4Addr::new(192, 0, 2, 254),
        })
    );
    let hnp: Ipv6Addr = "2001:db8:f00d::".parse().unwrap();
    assert_eq!(
        l.ipv6_pool,
        Some(lma::Ipv6PoolConfig {
            prefix: hnp,
            prefix_len: 48,
            assign_len: 64,
        })
    );
    assert_eq!(l.mags.len(), 2);
    assert!(l.subscribers["mn0@example.com"].ipv6);
    assert_eq!(
        agents::home_pools(&c),
        vec![
            HomePoolSpec::V4 {
                prefix: Ipv4Addr::new(192, 0, 2, 0),
                len: 24
            },
            HomePoolSpec::V6 {
                prefix: hnp,
                len: 48,
                assign_len: 64
            },
        ]
    );
    // Heartbeats off in the file: the agents get a period no one waits for.
    let quiet = Config::from_toml_str(&ANCHOR_V6.replace("heartbeat_interval_s = 30", "")).unwrap();
    assert_eq!(
        agents::lma(&quiet, 1).heartbeat_interval,
        defaults::HEARTBEAT_OFF
    );
}

#[test]
fn pmipv4_agents_get_the_files_values() {
    let c = Config::from_toml_str(ACCESS_V4).unwrap();
    let p = agents::pma(&c).unwrap();
    assert_eq!(p.address, Ipv4Addr::new(10, 8, 22, 15));
    assert_eq!(
        (
            p.lifetime_s,
            p.renew_percent,
            p.retransmission_timeout_ms,
            p.max_retransmissions
        ),
        (900, 50, 3000, 3)
    );
    assert_eq!(
        p.home_agents[1].sa.current,
        auth::SecurityAssociation {
            spi: 257,
            key: auth::parse_hex("ffeeddccbbaa99887766554433221100").unwrap(),
            algorithm: auth::Algorithm::KeyedMd5PrefixSuffix,
            // timestamp_window_ms = 7000
            timestamp_tolerance_s: 7,
        }
    );
    assert_eq!(
        p.ha_failover,
        pma::HaFailover {
            enabled: true,
            max_attempts: 4,
            num_attempts_before_switching: 2,
            timeout_ms: Some(3000),
        }
    );

    let c = Config::from_toml_str(ANCHOR_V4).unwrap();
    let h = agents::ha(&c).unwrap();
    // The pool's hosts, less the gateway at the top end.
    assert_eq!(
        h.pool,
        Some(ha::AddressPool {
            first: Ipv4Addr::new(192, 0, 2, 1),
            last: Ipv4Addr::new(192, 0, 2, 253),
        })
    );
    assert_eq!(
        (
            h.max_lifetime_s,
            h.revocation_timeout_ms,
            h.revocation_retries
        ),
        (600, 1000, 3)
    );
    assert_eq!(h.peers[0].address, Ipv4Addr::new(10, 8, 22, 15));
    assert_eq!(h.peers[0].sa.timestamp_tolerance_s, 7);
    assert_eq!(
        h.profiles,
        vec![ha::SubscriberProfile {
            nai: "subscriber1@example.com".into(),
            static_home: Some(Ipv4Addr::new(192, 0, 2, 10)),
            allow_requested: true,
        }]
    );
    // A gateway at the bottom of a /30 leaves one address.
    let small = ANCHOR_V4
        .replace("192.0.2.0/24", "192.0.2.0/30")
        .replace("\"192.0.2.254\"", "\"192.0.2.1\"")
        .replace("192.0.2.10", "192.0.2.2")
        .replace("192.0.2.20", "192.0.2.2");
    let h = agents::ha(&Config::from_toml_str(&small).unwrap()).unwrap();
    assert_eq!(
        h.pool,
        Some(ha::AddressPool {
            first: Ipv4Addr::new(192, 0, 2, 2),
            last: Ipv4Addr::new(192, 0, 2, 2),
        })
    );
}

/// Issue 11: every configured pool is used, or the configuration is refused
/// naming it; and `--check` refuses what `run` would.
#[test]
fn every_pool_is_used_or_refused() {
    type Case<'a> = (&'a str, Vec<(&'a str, Option<Value>)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            ANCHOR_V6,
            vec![
                ("pools[1].prefix", s("198.51.100.0/24")),
                ("pools[1].gateway", s("198.51.100.1")),
                ("pools[1].assign_len", None),
            ],
            // Issue 12: the LMA draws from several IPv4 pools (profiles[].pool).
            "",
        ),
        (
            ANCHOR_V6,
            vec![
                ("pools[1].prefix", s("192.0.2.128/25")),
                ("pools[1].gateway", s("192.0.2.129")),
                ("pools[1].assign_len", None),
            ],
            "pools[1].prefix: overlaps pools[0]",
        ),
        (
            ANCHOR_V6,
            vec![
                ("pools[0].prefix", s("2001:db8:beef::/48")),
                ("pools[0].gateway", None),
            ],
            "pools[1]: a second IPv6 pool",
        ),
        (
            ANCHOR_V6,
            vec![("pools[1].prefix", s("::/0"))],
            "pools[1].prefix: IPv6 prefix length must be at least 1",
        ),
        (
            ANCHOR_V4,
            vec![("pools", Some(Value::Array(vec![])))],
            "pools: the PMIPv4 anchor (HA) needs an IPv4 pool",
        ),
        (
            ANCHOR_V4,
            vec![
                ("pools[0].prefix", s("2001:db8:f00d::/48")),
                ("pools[0].gateway", None),
            ],
            "pools[0].prefix: an IPv6 pool, but PMIPv4 assigns IPv4 home addresses only",
        ),
        (
            ANCHOR_V4,
            vec![("fastpath.max_subscribers", i(1))],
            "static_bindings: 1 static bindings take subscriber ids",
        ),
        (ANCHOR_V4, vec![("fastpath.max_subscribers", i(2))], ""),
    ];
    for (base, edits, want) in cases {
        let got = errors_of(base, &edits);
        if want.is_empty() {
            assert!(got.is_empty(), "{edits:?}: {got}");
        } else {
            assert!(got.contains(want), "{edits:?}: want {want:?}, got {got:?}");
        }
    }
}

/// The dry run of the role's agent is part of loading: a configuration that
/// loads builds its agent, for every example and role.
#[test]
fn loaded_configurations_build_their_agent() {
    for text in [ACCESS_V6, ANCHOR_V6, ACCESS_V4, ANCHOR_V4] {
        let c = Config::from_toml_str(text).unwrap();
        agents::dry_run(&c).unwrap();
    }
    // The peer's address family decides the MAG's transport.
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    assert!(matches!(c.peers[0].address, IpAddr::V6(_)));
    assert_eq!(c.peers[0].family(), Family::Ipv6);
}

#[test]
fn store_section_defaults_to_the_embedded_file() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    assert_eq!(c.store.backend, StoreBackend::Embedded);
    assert_eq!(c.store.path, PathBuf::from("/var/lib/pmip/state.redb"));
    let e = errors_of(ACCESS_V6, &[("store.path", s("state.redb"))]);
    assert!(
        e.contains("store.path: must be an absolute file path"),
        "{e}"
    );
    // etcd is the anchor cluster's store: refused at an access gateway.
    let e = errors_of(ACCESS_V6, &[("store.backend", s("etcd"))]);
    assert!(
        e.contains("store.backend: \"etcd\" is for a cluster of anchors"),
        "{e}"
    );
    let e = errors_of(ACCESS_V6, &[("store.backend", s("redis"))]);
    assert!(e.contains("unknown variant"), "{e}");
    // A memory store needs no path.
    let mut doc: Value = toml::from_str(ACCESS_V6).unwrap();
    set(&mut doc, "store.backend", s("memory"));
    set(&mut doc, "store.path", s("relative"));
    let c = Config::from_toml_str(&toml::to_string(&doc).unwrap()).unwrap();
    assert_eq!(c.store.backend, StoreBackend::Memory);
}
