#![allow(clippy::too_many_lines)] // test scenarios, not production code
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::access::frame::parse_mac;
use toml::Value;

const ACCESS_V6: &str = include_str!("../../../examples/access-pmipv6.toml");
const ANCHOR_V6: &str = include_str!("../../../examples/anchor-pmipv6.toml");
const ACCESS_V4: &str = include_str!("../../../examples/access-pmipv4.toml");
const ANCHOR_V4: &str = include_str!("../../../examples/anchor-pmipv4.toml");

/// `signaling.xdp_socket`: an IPv6 LMA's, with the fast path in XDP; anywhere
/// else an error that names the field and says why.
#[test]
fn xdp_socket_is_an_ipv6_lma_setting() {
    let on = |text: &str| {
        let mut v: Value = toml::from_str(text).unwrap();
        let t = v.as_table_mut().unwrap();
        let s = t
            .entry("signaling")
            .or_insert(Value::Table(Default::default()));
        s.as_table_mut()
            .unwrap()
            .insert("xdp_socket".into(), Value::Boolean(true));
        v
    };
    let load = |v: &Value| Config::from_toml_str(&toml::to_string(v).unwrap());
    assert!(
        !Config::from_toml_str(ANCHOR_V6)
            .unwrap()
            .signaling
            .xdp_socket
    );
    assert!(load(&on(ANCHOR_V6)).unwrap().signaling.xdp_socket);
    let refused = |v: &Value, why: &str| {
        let e = format!("{:#}", load(v).unwrap_err());
        assert!(e.contains("signaling.xdp_socket") && e.contains(why), "{e}");
    };
    refused(&on(ACCESS_V6), "only an anchor");
    refused(&on(ANCHOR_V4), "PMIPv6 only");
    let mut tc = on(ANCHOR_V6);
    tc.as_table_mut().unwrap().insert(
        "fastpath".into(),
        toml::from_str("attach_mode = \"tc\"").unwrap(),
    );
    refused(&tc, "needs the fast path in XDP");
    let mut v4_only = on(ANCHOR_V6);
    let a = v4_only["addresses"].as_table_mut().unwrap();
    a.remove("ipv6");
    a.insert("ipv4".into(), Value::String("192.0.2.10".into()));
    refused(&v4_only, "needs addresses.ipv6");
    // Sending through them needs them.
    let send = |mut v: Value, rx: bool| {
        let s = v["signaling"].as_table_mut().unwrap();
        s.insert("xdp_socket".into(), Value::Boolean(rx));
        s.insert("xdp_socket_send".into(), Value::Boolean(true));
        v
    };
    assert!(
        load(&send(on(ANCHOR_V6), true))
            .unwrap()
            .signaling
            .xdp_socket_send
    );
    let e = format!("{:#}", load(&send(on(ANCHOR_V6), false)).unwrap_err());
    assert!(
        e.contains("signaling.xdp_socket_send") && e.contains("needs signaling.xdp_socket"),
        "{e}"
    );
}

#[test]
fn examples_load() {
    for (name, text) in [
        ("access-v6", ACCESS_V6),
        ("anchor-v6", ANCHOR_V6),
        ("access-v4", ACCESS_V4),
        ("anchor-v4", ANCHOR_V4),
    ] {
        if let Err(e) = Config::from_toml_str(text) {
            panic!("{name}: {e}");
        }
    }
    // UDP GSO for the signaling: off unless asked for.
    assert!(!Config::from_toml_str(ANCHOR_V6).unwrap().signaling.udp_gso);
    let gso = ANCHOR_V6.replace("udp_gso = false", "udp_gso = true");
    assert!(Config::from_toml_str(&gso).unwrap().signaling.udp_gso);
    let e =
        Config::from_toml_str(&ANCHOR_V6.replace("udp_gso = false", "udp_gso = 3")).unwrap_err();
    assert!(format!("{e:#}").contains("udp_gso"), "{e:#}");
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    assert!(!c.signaling.xdp_socket);
    assert_eq!(c.role, Role::Access);
    assert_eq!(c.protocol, Protocol::Pmipv6);
    assert_eq!(c.interfaces.access[0].vlan, Some(3074));
    assert_eq!(
        c.interfaces.access[0].gateway,
        Ipv4Prefix {
            addr: Ipv4Addr::new(192, 0, 2, 254),
            len: 24
        }
    );
    assert_eq!(c.timers.timestamp_window, Duration::from_millis(200));
    assert_eq!(c.detach.monitor_config().interval, Duration::from_secs(10));
    let lma = c.peer("lma1").unwrap();
    assert_eq!(lma.family(), Family::Ipv6);
    assert_eq!(c.subscriber_mtu(&c.interfaces.access[0], lma), 1452);
    let c4 = Config::from_toml_str(ACCESS_V4).unwrap();
    let ha = c4.peer("ha1").unwrap();
    let sa = ha.sa.as_ref().unwrap();
    assert_eq!(sa.algorithm, Algorithm::HmacMd5);
    assert_eq!(
        c4.peer("ha2").unwrap().sa.as_ref().unwrap().algorithm,
        Algorithm::Rfc2002Md5
    );
    assert_eq!(sa.key[..3], [0x00, 0x11, 0x22]);
    assert_eq!(c4.subscriber_mtu(&c4.interfaces.access[0], ha), 1472);
    assert_eq!(c4.timers.renew_percent, 50);
    assert!(c4.timers.ha_failover.enabled);
}

#[test]
fn defaults_fill_missing_sections() {
    let minimal = r#"
role = "access"
protocol = "pmipv6"
[interfaces]
core = "eth1"
[[interfaces.access]]
name = "eth0"
gateway = "192.0.2.254/24"
[addresses]
ipv6 = "2001:db8::1"
[[peers]]
name = "lma"
address = "2001:db8::2"
insecure = true
"#;
    let c = Config::from_toml_str(minimal).unwrap();
    // Every default comes from `defaults`, typed on the way.
    let raw: file::File = toml::from_str(minimal).unwrap();
    assert_eq!(raw.timers, defaults::TIMERS);
    assert_eq!(raw.detach, defaults::DETACH);
    assert_eq!(raw.fastpath, defaults::FASTPATH);
    assert_eq!(c.timers.lifetime, Duration::from_secs(3600));
    assert_eq!(c.timers.timestamp_window, Duration::from_millis(7000));
    assert_eq!(c.timers.heartbeat_interval, None);
    assert_eq!(c.timers.ha_failover.timeout, Duration::from_secs(3));
    assert_eq!(
        c.detach,
        Detach {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        }
    );
    assert_eq!(c.dhcp.offer_timeout, Duration::from_secs(60));
    assert_eq!(c.fastpath.max_subscribers, pmip_common::MAX_SUBSCRIBERS);
    assert_eq!(c.control.socket, PathBuf::from("/run/pmip/pmipd.sock"));
    assert_eq!(c.interfaces.access[0].mtu, 1500);
}

#[test]
fn profile_lookup_order() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    let mac = parse_mac("0024.d78e.21a4").unwrap();
    assert_eq!(
        c.profile_for(Some("mn0@example.com"), &[2; 6], "eth0.3074")
            .unwrap()
            .name,
        "mn0"
    );
    assert_eq!(c.profile_for(None, &mac, "eth0.3074").unwrap().name, "mn0");
    assert_eq!(
        c.profile_for(None, &[2; 6], "eth0.3074").unwrap().name,
        "default_subscriber_profile_A"
    );
    assert!(c.profile_for(None, &[2; 6], "eth9").is_none());
}

/// Sets (or with `None` removes) the value at `a.b[1].c`.
fn set(doc: &mut Value, path: &str, val: Option<Value>) {
    let segs: Vec<&str> = path.split('.').collect();
    let mut cur = doc;
    for (i, seg) in segs.iter().enumerate() {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (
                k,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (*seg, None),
        };
        let last = i == segs.len() - 1;
        let t = cur.as_table_mut().unwrap();
        if last && idx.is_none() {
            match val {
                Some(v) => {
                    t.insert(key.to_string(), v);
                }
                None => {
                    t.remove(key);
                }
            }
            return;
        }
        cur = t
            .entry(key.to_string())
            .or_insert_with(|| Value::Table(Default::default()));
        if let Some(n) = idx {
            let arr = cur.as_array_mut().unwrap();
            if last {
                match val {
                    Some(v) => arr[n] = v,
                    None => {
                        arr.remove(n);
                    }
                }
                return;
            }
            cur = &mut arr[n];
        }
    }
}

fn s(x: &str) -> Option<Value> {
    Some(Value::String(x.into()))
}
fn i(x: i64) -> Option<Value> {
    Some(Value::Integer(x))
}

fn errors_of(base: &str, edits: &[(&str, Option<Value>)]) -> String {
    let mut doc: Value = toml::from_str(base).unwrap();
    for (p, v) in edits {
        set(&mut doc, p, v.clone());
    }
    let text = toml::to_string(&doc).unwrap();
    match Config::from_toml_str(&text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_are_refused_with_the_key_path() {
    type Case<'a> = (&'a str, Vec<(&'a str, Option<Value>)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            ACCESS_V4,
            vec![("peers[1].spi", i(12))],
            "peers[1].spi: must be >= 256",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].spi", None)],
            "peers[0].spi: missing",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].algorithm", s("sha1"))],
            "unknown variant `sha1`",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].algorithm", None)],
            "peers[0].algorithm: missing",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].key", s("abc"))],
            "peers[0].key: must be an even number of hex digits",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].key", s("zz"))],
            "peers[0].key: must be an even number of hex digits",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].key", s(""))],
            "peers[0].key: must be 1 to 64 bytes",
        ),
        (
            ACCESS_V4,
            vec![("peers[1].name", s("ha1"))],
            "peers[1].name: duplicate peer name",
        ),
        (
            ACCESS_V4,
            vec![("peers[1].address", s("10.8.24.101"))],
            "peers[1].address: duplicate peer address",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].address", s("2001:db8::1"))],
            "peers[0].address: PMIPv4 peers must be IPv4",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].address", s("224.0.0.1"))],
            "peers[0].address: must be a unicast address",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].address", s("not-an-ip"))],
            "invalid IP address syntax",
        ),
        (
            ACCESS_V4,
            vec![("peers[0].transport", s("ipv6"))],
            "peers[0].transport: is Ipv6 but address",
        ),
        (
            ACCESS_V4,
            vec![
                ("peers", Some(Value::Array(vec![]))),
                ("profiles", Some(Value::Array(vec![]))),
            ],
            "peers: the access role needs at least one anchor peer",
        ),
        (
            ACCESS_V4,
            vec![("addresses.ipv4", None)],
            "addresses.ipv4: PMIPv4 signals over IPv4",
        ),
        (
            ACCESS_V4,
            vec![("role", s("router"))],
            "unknown variant `router`",
        ),
        (
            ACCESS_V4,
            vec![("protocol", s("mip6"))],
            "unknown variant `mip6`",
        ),
        (
            ACCESS_V4,
            vec![("bogus_key", i(1))],
            "unknown field `bogus_key`",
        ),
        (
            ACCESS_V4,
            vec![("timers.lifetim_s", i(1))],
            "unknown field `lifetim_s`",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.core", s(""))],
            "interfaces.core: must be a Linux interface name",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.core", s("a-very-long-interface-name"))],
            "interfaces.core: must be a Linux interface name",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].name", s("eth1"))],
            "interfaces.access[0].name: must differ from interfaces.core",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].vlan", i(4095))],
            "interfaces.access[0].vlan: must be 1 to 4094",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].vlan", i(70000))],
            "invalid value",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].gateway", s("192.0.2.254"))],
            "interfaces.access[0].gateway: must be an address with prefix length",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].gateway", s("192.0.2.0/24"))],
            "interfaces.access[0].gateway: must be a host address",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].gateway", s("192.0.2.254/31"))],
            "interfaces.access[0].gateway: prefix length must be 8 to 30",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].gateway", s("2001:db8::1/64"))],
            "interfaces.access[0].gateway: must be an IPv4",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].mtu", i(100))],
            "interfaces.access[0].mtu: must be 576 to 9216",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access[0].default_profile", s("nope"))],
            "interfaces.access[0].default_profile: no profile named \"nope\"",
        ),
        (
            ACCESS_V4,
            vec![("interfaces.access", Some(Value::Array(vec![])))],
            "interfaces.access: the access role needs at least one",
        ),
        (
            ACCESS_V4,
            vec![("timers.lifetime_s", i(0))],
            "timers.lifetime_s: must be 1 to 65534",
        ),
        (
            ACCESS_V4,
            vec![("timers.lifetime_s", i(70000))],
            "timers.lifetime_s: must be 1 to 65534",
        ),
        (
            ACCESS_V4,
            vec![("timers.renew_percent", i(100))],
            "timers.renew_percent: must be 1 to 99",
        ),
        (
            ACCESS_V4,
            vec![("timers.retx_initial_ms", i(10))],
            "timers.retx_initial_ms: must be >= 100",
        ),
        (
            ACCESS_V4,
            vec![("timers.retx_initial_ms", i(999))],
            "timers.retx_initial_ms: must be >= 1000 for a PMIPv4 access gateway",
        ),
        (
            ACCESS_V4,
            vec![("timers.retx_max_ms", i(1000))],
            "timers.retx_max_ms: must be >= retx_initial_ms (3000)",
        ),
        (
            ACCESS_V4,
            vec![("timers.max_retransmissions", i(50))],
            "timers.max_retransmissions: must be 0 to 20",
        ),
        (
            ACCESS_V4,
            vec![("timers.max_retransmissions", i(-1))],
            "invalid value",
        ),
        (
            ACCESS_V4,
            vec![
                ("timers.heartbeat_interval_s", i(5)),
                ("timers.heartbeat_misses", i(0)),
            ],
            "timers.heartbeat_misses: must be >= 1",
        ),
        (
            ACCESS_V4,
            vec![("timers.bri_delay_max_ms", i(10))],
            "timers.bri_delay_max_ms: must be >= bri_delay_min_ms",
        ),
        (
            ANCHOR_V6,
            vec![("timers.new_bce_delay_ms", i(60_001))],
            "timers.new_bce_delay_ms: must be 0 to 60000",
        ),
        (
            ANCHOR_V4,
            vec![("peers[0].revocation", Some(toml::Value::Boolean(false)))],
            "peers[0].revocation: PMIPv4 anchor: revocation is negotiated per registration",
        ),
        (
            ANCHOR_V4,
            vec![("peers[0].dynamic_ha", Some(toml::Value::Boolean(true)))],
            "peers[0].dynamic_ha: only used in the access role",
        ),
        (
            ACCESS_V4,
            vec![("timers.ha_failover.attempts_before_switching", i(9))],
            "timers.ha_failover.attempts_before_switching: must be 1 to max_attempts (4)",
        ),
        (
            ACCESS_V4,
            vec![("timers.ha_failover.timeout_s", i(0))],
            "timers.ha_failover.timeout_s: must be > 0",
        ),
        (
            ACCESS_V4,
            vec![("detach.timeout_s", i(10))],
            "detach.timeout_s: must be below interval_s (10)",
        ),
        (
            ACCESS_V4,
            vec![("detach.interval_s", i(0))],
            "detach.interval_s: must be > 0",
        ),
        (
            ACCESS_V4,
            vec![("detach.retries", i(1000))],
            "detach.retries: must be 0 to 100",
        ),
        (
            ACCESS_V4,
            vec![("dhcp.offer_timeout_s", i(0))],
            "dhcp.offer_timeout_s: must be > 0",
        ),
        (
            ACCESS_V4,
            vec![(
                "dhcp.dns",
                Some(Value::Array(vec![Value::String("x".into())])),
            )],
            "invalid IPv4 address syntax",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].anchor", s("ha9"))],
            "profiles[1].anchor: no peer named \"ha9\"",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].anchor", None)],
            "profiles[1].anchor: missing",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].alternate_anchor", s("ha1"))],
            "profiles[1].alternate_anchor: must differ from anchor",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].alternate_anchor", s("zz"))],
            "profiles[1].alternate_anchor: no peer named",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].nai", None)],
            "profiles[1]: needs nai or mac",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].nai", s(""))],
            "profiles[1].nai: must be 1 to 253 characters",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].name", s("default"))],
            "profiles[1].name: must be a unique",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].mac", s("00:11:22"))],
            "profiles[1].mac: must be a MAC",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].mac", s("01:00:5e:00:00:01"))],
            "profiles[1].mac: must be a unicast MAC",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].home_address", s("0.0.0.0"))],
            "profiles[1].home_address: must be a unicast address",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].apn", s("bad apn!"))],
            "profiles[1].apn: must be dot-separated labels",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].imsi", s("12ab"))],
            "profiles[1].imsi: must be 6 to 15 digits",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].imsi", s("1234567890123456"))],
            "profiles[1].imsi: must be 6 to 15 digits",
        ),
        (
            ACCESS_V4,
            vec![("profiles[1].pool", s("home"))],
            "profiles[1].pool: only used in the anchor role",
        ),
        (
            ACCESS_V6,
            vec![
                ("profiles[1].mac", s("00:24:d7:8e:21:a4")),
                ("profiles[0].mac", s("0024.d78e.21a4")),
            ],
            "profiles[1].mac: MAC 00:24:d7:8e:21:a4 used by two profiles",
        ),
        (
            ACCESS_V6,
            vec![("timers.refresh_s", i(3600))],
            "timers.refresh_s: must be between 1 and lifetime_s (3600) exclusive",
        ),
        (
            ACCESS_V6,
            vec![("timers.lifetime_s", i(300000))],
            "timers.lifetime_s: must be 1 to 262140",
        ),
        (
            ACCESS_V6,
            vec![("addresses.ipv6", None)],
            "addresses: needs ipv4 or ipv6",
        ),
        (
            ACCESS_V6,
            vec![("peers[0].spi", i(300))],
            "peers[0].algorithm: missing: part of the security association",
        ),
        (
            ACCESS_V6,
            vec![(
                "pools",
                Some(Value::Array(vec![Value::Table(Default::default())])),
            )],
            "missing field `name`",
        ),
        (
            ANCHOR_V6,
            vec![("pools[0].prefix", s("192.0.2.1/24"))],
            "pools[0].prefix: has host bits set",
        ),
        (
            ANCHOR_V6,
            vec![("pools[0].prefix", s("192.0.2.0/33"))],
            "pools[0].prefix: must be address/length",
        ),
        (
            ANCHOR_V6,
            vec![("pools[0].gateway", s("10.0.0.1"))],
            "pools[0].gateway: 10.0.0.1 is outside 192.0.2.0/24",
        ),
        (
            ANCHOR_V6,
            vec![("pools[0].gateway", None)],
            "pools[0].gateway: missing",
        ),
        (
            ANCHOR_V6,
            vec![("pools[1].assign_len", i(80))],
            "pools[1].assign_len: must be between the prefix length (48) and 64",
        ),
        (
            ANCHOR_V6,
            vec![("pools[1].name", s("PMIP_IPv4_POOL"))],
            "pools[1].name: must be a unique",
        ),
        (
            ANCHOR_V6,
            vec![("profiles[0].pool", s("nope"))],
            "profiles[0].pool: no pool named \"nope\"",
        ),
        (
            ANCHOR_V6,
            vec![
                ("pools", Some(Value::Array(vec![]))),
                ("profiles[0].pool", None),
            ],
            "pools: the anchor role needs at least one pool",
        ),
        (
            ANCHOR_V6,
            vec![("interfaces.access", Some(Value::Array(vec![])))],
            "",
        ),
        (
            ANCHOR_V4,
            vec![("static_bindings[0].peer", s("x"))],
            "static_bindings[0].peer: no peer named \"x\"",
        ),
        (
            ANCHOR_V4,
            vec![("static_bindings[0].uplink_key", i(0))],
            "static_bindings[0].uplink_key: must be non-zero",
        ),
        (
            ANCHOR_V4,
            vec![("static_bindings[0].mac", s("xx"))],
            "static_bindings[0].mac: must be a MAC",
        ),
        (
            ANCHOR_V4,
            vec![("peers[0].spi", i(255))],
            "peers[0].spi: must be >= 256",
        ),
        (
            ANCHOR_V4,
            vec![("peers[0].key", None)],
            "peers[0].key: missing: required for PMIPv4",
        ),
    ];
    let mut failures = Vec::new();
    for (n, (base, edits, want)) in cases.iter().enumerate() {
        let got = errors_of(base, edits);
        let ok = if want.is_empty() {
            got.is_empty()
        } else {
            got.contains(want)
        };
        if !ok {
            failures.push(format!("case {n} {edits:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 70);
}

#[test]
fn access_static_binding_needs_interface_and_mac() {
    let mut doc: Value = toml::from_str(ACCESS_V4).unwrap();
    let sb: Value = toml::from_str(
        r#"home_address = "192.0.2.30"
peer = "ha1"
uplink_key = 5
downlink_key = 6"#,
    )
    .unwrap();
    set(
        &mut doc,
        "static_bindings",
        Some(Value::Array(vec![sb.clone(), sb])),
    );
    let e = Config::from_toml_str(&toml::to_string(&doc).unwrap()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("static_bindings[0].interface: missing"),
        "{text}"
    );
    assert!(text.contains("static_bindings[0].mac: missing"), "{text}");
    assert!(
        text.contains("static_bindings[1].downlink_key: two static bindings share this key"),
        "{text}"
    );
    // Every problem is reported, one per line.
    assert!(e.0.len() >= 5, "{text}");
    assert_eq!(text.lines().count(), e.0.len());
}

#[test]
fn several_errors_at_once() {
    let got = errors_of(
        ACCESS_V4,
        &[
            ("peers[1].spi", i(1)),
            ("timers.renew_percent", i(0)),
            ("detach.retries", i(500)),
        ],
    );
    assert!(got.contains("peers[1].spi: must be >= 256"), "{got}");
    assert!(
        got.contains("timers.renew_percent: must be 1 to 99"),
        "{got}"
    );
    assert!(got.contains("detach.retries: must be 0 to 100"), "{got}");
}

#[test]
fn syntax_errors_name_the_line() {
    let e = Config::from_toml_str("role = \"access\"\nprotocol = [\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") || e.contains("line 3"), "{e}");
    let e = Config::from_toml_str(ACCESS_V4.replace("spi = 256", "spi = \"256\"").as_str())
        .unwrap_err()
        .to_string();
    assert!(e.contains("spi") && e.contains("invalid type"), "{e}");
    assert!(Config::load(Path::new("/nonexistent/pmipd.toml"))
        .unwrap_err()
        .to_string()
        .starts_with("/nonexistent/pmipd.toml: "));
}

#[test]
fn prefixes_and_overhead() {
    assert_eq!(
        "192.0.2.0/24".parse::<Prefix>(),
        Ok(Prefix::V4(Ipv4Prefix {
            addr: "192.0.2.0".parse().unwrap(),
            len: 24
        }))
    );
    assert_eq!("2001:db8::/129".parse::<Prefix>(), Err(()));
    assert_eq!("192.0.2.0".parse::<Prefix>(), Err(()));
    assert_eq!("x/1".parse::<Prefix>(), Err(()));
    assert_eq!(tunnel_overhead(Family::Ipv4), 28);
    assert_eq!(tunnel_overhead(Family::Ipv6), 48);
}

#[test]
fn serialize_round_trip() {
    for text in [ACCESS_V6, ANCHOR_V6, ACCESS_V4, ANCHOR_V4] {
        let raw: file::File = toml::from_str(text).unwrap();
        let written = toml::to_string(&raw).unwrap();
        assert_eq!(toml::from_str::<file::File>(&written).unwrap(), raw);
        assert_eq!(
            Config::from_toml_str(&written).unwrap(),
            Config::from_toml_str(text).unwrap()
        );
    }
}

#[test]
fn subscriber_resolution_and_dhcp_parameters() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    let known = parse_mac("0024.d78e.21a4").unwrap();
    // By MAC: the profile's NAI.
    let (nai, p) = c.resolve_subscriber(None, &known, "eth0.3074");
    assert_eq!(
        (nai.as_str(), p.unwrap().name.as_str()),
        ("mn0@example.com", "mn0")
    );
    // By client identifier carrying the NAI.
    let (nai, p) = c.resolve_subscriber(Some(b"\x00mn0@example.com"), &[2; 6], "eth0.3074");
    assert_eq!(
        (nai.as_str(), p.unwrap().name.as_str()),
        ("mn0@example.com", "mn0")
    );
    // Unknown: the default profile, and the MAC as NAI.
    let (nai, p) = c.resolve_subscriber(None, &[2, 0, 0, 0, 0, 7], "eth0.3074");
    assert_eq!(
        (nai.as_str(), p.unwrap().name.as_str()),
        ("0200.0000.0007", "default_subscriber_profile_A")
    );
    assert_eq!(c.dns_for(p), c.dhcp.dns);
    let d = c.dhcp_server_config(&c.interfaces.access[0]);
    assert_eq!(d.server_id, Ipv4Addr::new(192, 0, 2, 254));
    assert_eq!(d.vlan, 3074);
    assert_eq!(d.offer_timeout, Duration::from_secs(60));
    let c4 = Config::from_toml_str(ACCESS_V4).unwrap();
    assert_eq!(
        c4.dns_for(c4.profile("default")),
        vec![Ipv4Addr::new(198, 51, 100, 250)]
    );
}

mod cluster_esp;
mod security;
mod typed;

/// `[[mn_ha]]`: per-MN associations by NAI or realm reach both PMIPv4
/// agents (the algorithm defaults to HMAC-MD5); a bad entry is named by its
/// key path, and PMIPv6 refuses the section.
#[test]
fn mn_ha_associations_by_nai_or_realm() {
    const TWO: &str = "\n[[mn_ha]]\nrealm = \"Example.COM\"\nspi = 300\nkey = \"00112233445566778899aabbccddeeff\"\n\
        \n[[mn_ha]]\nnai = \"vip@example.com\"\nspi = 301\nalgorithm = \"md5\"\nkey = \"0102\"\n";
    for base in [ACCESS_V4, ANCHOR_V4] {
        let cfg = Config::from_toml_str(&format!("{base}{TWO}")).unwrap();
        assert_eq!(cfg.mn_ha.len(), 2);
        let keys = match cfg.role {
            Role::Access => agents::pma(&cfg).unwrap().mn_ha,
            Role::Anchor => agents::ha(&cfg).unwrap().mn_ha,
        };
        let a = keys.get("someone@example.com").expect("by realm");
        assert_eq!((a.spi, a.key.len()), (300, 16));
        assert_eq!(a.algorithm, crate::pmipv4::auth::Algorithm::HmacMd5);
        let v = keys.get("vip@example.com").expect("by NAI");
        assert_eq!((v.spi, v.key.as_slice()), (301, &[1u8, 2][..]));
        assert_eq!(v.algorithm, crate::pmipv4::auth::Algorithm::KeyedMd5);
        assert!(keys.get("someone@example.org").is_none());
    }
    let refused = |base: &str, entry: &str, want: &str| {
        let e = match Config::from_toml_str(&format!("{base}\n[[mn_ha]]\n{entry}\n")) {
            Ok(_) => panic!("accepted: {entry}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(want), "{entry}: {e}");
    };
    let k = "spi = 300\nkey = \"0011\"";
    refused(ANCHOR_V4, k, "mn_ha[0]: needs nai");
    refused(
        ANCHOR_V4,
        &format!("nai = \"a@b\"\nrealm = \"b\"\n{k}"),
        "mn_ha[0]: nai and realm",
    );
    refused(
        ANCHOR_V4,
        &format!("realm = \"a@b\"\n{k}"),
        "mn_ha[0].realm: must be a realm",
    );
    refused(
        ANCHOR_V4,
        &format!("nai = \"\"\n{k}"),
        "mn_ha[0].nai: must be 1 to 255",
    );
    refused(
        ANCHOR_V4,
        "realm = \"b\"\nspi = 12\nkey = \"0011\"",
        "mn_ha[0].spi: must be >= 256",
    );
    refused(
        ANCHOR_V4,
        "realm = \"b\"\nkey = \"0011\"",
        "mn_ha[0].spi: missing",
    );
    refused(
        ANCHOR_V4,
        "realm = \"b\"\nspi = 300",
        "mn_ha[0].key: missing",
    );
    refused(
        ANCHOR_V4,
        "realm = \"b\"\nspi = 300\nkey = \"xyz\"",
        "mn_ha[0].key: must be an even number",
    );
    refused(
        ANCHOR_V4,
        &format!("realm = \"b\"\n{k}\nkeys = 1"),
        "unknown field `keys`",
    );
    refused(
        ANCHOR_V4,
        &format!("realm = \"B\"\n{k}\n[[mn_ha]]\nrealm = \"b\"\n{k}"),
        "mn_ha[1].realm: \"b\" is configured twice",
    );
    refused(
        ANCHOR_V6,
        &format!("realm = \"b\"\n{k}"),
        "mn_ha: PMIPv4 only",
    );
}

/// `peers[].also_accept`: PMIPv4 associations a peer's messages may also be
/// signed with (a key rollover), each whole and with an SPI of its own;
/// refused for PMIPv6, each error naming its field.
#[test]
fn a_peer_may_have_more_keys_during_a_rollover() {
    const OWN: &str = "key = \"00112233445566778899aabbccddeeff\"\n";
    let with = |base: &str, entry: &str| {
        assert!(base.contains(OWN));
        base.replacen(
            OWN,
            &format!("{OWN}\n[[peers.also_accept]]\n{entry}\n\n"),
            1,
        )
    };
    let old = "spi = 300\nalgorithm = \"hmac-md5\"\nkey = \"0102\"";
    let cfg = Config::from_toml_str(&with(ANCHOR_V4, old)).unwrap();
    let sa = &agents::ha(&cfg).unwrap().peers[0].sa;
    assert_eq!((sa.current.spi, sa.also.len()), (256, 1));
    assert_eq!(
        (sa.also[0].spi, sa.also[0].key.as_slice()),
        (300, &[1u8, 2][..])
    );
    assert_eq!(sa.by_spi(300).map(|s| s.spi), Some(300));
    let cfg = Config::from_toml_str(&with(ACCESS_V4, old)).unwrap();
    assert_eq!(agents::pma(&cfg).unwrap().home_agents[0].sa.also.len(), 1);
    let refused = |base: &str, entry: &str, want: &str| {
        let e = match Config::from_toml_str(&with(base, entry)) {
            Ok(_) => panic!("accepted: {entry}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(want), "{entry}: {e}");
    };
    refused(
        ANCHOR_V4,
        "spi = 256\nalgorithm = \"md5\"\nkey = \"0102\"",
        "peers[0].also_accept[0].spi: 256 is already this entry's",
    );
    refused(
        ANCHOR_V4,
        "spi = 300\nalgorithm = \"md5\"",
        "peers[0].also_accept[0].key: missing",
    );
    refused(ANCHOR_V4, "spi = 300\nkey = \"01\"\nkye = \"02\"", "kye");
    let mag = "address = \"2001:db8:cafe:1025::15\"\n";
    let v6 = ANCHOR_V6.replacen(mag, &format!("{mag}\n[[peers.also_accept]]\n{old}\n\n"), 1);
    let e = Config::from_toml_str(&v6).expect_err("PMIPv6 also_accept");
    assert!(
        e.to_string().contains("peers[0].also_accept: PMIPv4 only"),
        "{e}"
    );
}

/// `mn_ha[].also_accept`: a mobile node's (or realm's) associations also
/// accepted during a rollover, each whole, HMAC-MD5 unless named, each
/// with an SPI of its own; errors name the field.
#[test]
fn a_per_mn_association_may_have_more_keys_during_a_rollover() {
    let entry = |more: &str| {
        format!(
            "{ANCHOR_V4}\n[[mn_ha]]\nrealm = \"example.com\"\nspi = 300\nkey = \"0102\"\n{more}"
        )
    };
    let cfg = Config::from_toml_str(&entry("[[mn_ha.also_accept]]\nspi = 299\nkey = \"0304\"\n"))
        .unwrap();
    let keys = agents::ha(&cfg).unwrap().mn_ha;
    let k = keys.get("a@example.com").expect("the realm's");
    assert_eq!((k.current.spi, k.also.len()), (300, 1));
    let old = k.by_spi(299).expect("the old key");
    assert_eq!(
        (old.key.as_slice(), old.algorithm),
        (&[3u8, 4][..], crate::pmipv4::auth::Algorithm::HmacMd5)
    );
    for (more, want) in [
        (
            "[[mn_ha.also_accept]]\nspi = 300\nkey = \"0304\"\n",
            "mn_ha[0].also_accept[0].spi: 300 is already this entry's",
        ),
        (
            "[[mn_ha.also_accept]]\nspi = 299\n",
            "mn_ha[0].also_accept[0].key: missing",
        ),
        (
            "[[mn_ha.also_accept]]\nspi = 7\nkey = \"03\"\n",
            "mn_ha[0].also_accept[0].spi: must be >= 256",
        ),
    ] {
        let e = Config::from_toml_str(&entry(more)).expect_err(more);
        assert!(e.to_string().contains(want), "{more}: {e}");
    }
}
