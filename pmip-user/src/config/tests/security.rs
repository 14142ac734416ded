//! `peers[].esp` / `insecure`, `[signaling]`, `control.group`,
//! `[admission]`, `dhcp.offer_hold_s` (issue 13).
use super::*;
use crate::config::UnknownPeers;
use crate::esp::EspAlgorithm;

fn b(x: bool) -> Option<Value> {
    Some(Value::Boolean(x))
}

#[test]
fn pmipv6_peers_need_esp_or_an_explicit_insecure() {
    let got = errors_of(ACCESS_V6, &[("peers[0].esp", None)]);
    assert!(
        got.contains("peers[0].esp: missing: PMIPv6 signaling must be protected by ESP"),
        "{got}"
    );
    assert_eq!(
        errors_of(
            ACCESS_V6,
            &[("peers[0].esp", None), ("peers[0].insecure", b(true))]
        ),
        ""
    );
    let got = errors_of(ACCESS_V6, &[("peers[0].insecure", b(true))]);
    assert!(got.contains("peers[0].insecure: contradicts esp"), "{got}");
    let got = errors_of(ACCESS_V6, &[("peers[0].esp.key_in", s("0x1234"))]);
    assert!(
        got.contains("peers[0].esp.key_in: rfc4106(gcm(aes)) takes the AES key"),
        "{got}"
    );
    // PMIPv4 has FA-HA authentication: ESP and insecure are refused there.
    let got = errors_of(ACCESS_V4, &[("peers[0].insecure", b(true))]);
    assert!(got.contains("peers[0].insecure: PMIPv4 peers"), "{got}");
}

#[test]
fn inbound_spis_are_unique_across_peers() {
    let got = errors_of(ANCHOR_V6, &[("peers[1].esp.spi_in", i(0x1002))]);
    assert!(
        got.contains("peers[1].esp.spi_in: 0x1002 is also peers[0].esp.spi_in"),
        "{got}"
    );
}

#[test]
fn esp_settings_are_typed() {
    let c = Config::from_toml_str(ANCHOR_V6).unwrap();
    let mag1 = c.peer("mag1").unwrap().esp.as_ref().unwrap();
    assert_eq!((mag1.inbound.spi, mag1.outbound.spi), (0x1002, 0x1001));
    assert_eq!(mag1.inbound.key.len(), 20);
    let mag2 = c.peer("mag2").unwrap().esp.as_ref().unwrap();
    assert_eq!(mag2.outbound.algorithm, EspAlgorithm::AesCbcHmacSha256);
    assert_eq!(mag2.outbound.auth_key.as_ref().map(Vec::len), Some(32));
    assert_eq!(c.signaling.unknown_peers, UnknownPeers::Drop);
    assert_eq!(
        c.signaling.esp_state_file,
        PathBuf::from("/var/lib/pmip/esp-seq")
    );
    // The MAG's view of lma1 is the LMA's view of mag1, swapped.
    let a = Config::from_toml_str(ACCESS_V6).unwrap();
    let lma1 = a.peers[0].esp.as_ref().unwrap();
    assert_eq!(lma1.inbound, mag1.outbound);
    assert_eq!(lma1.outbound, mag1.inbound);
    let got = errors_of(ANCHOR_V6, &[("signaling.esp_state_file", s("esp-seq"))]);
    assert!(
        got.contains("signaling.esp_state_file: must be an absolute path"),
        "{got}"
    );
    let got = errors_of(ANCHOR_V6, &[("signaling.unknown_peers", s("reflect"))]);
    assert!(got.contains("unknown variant"), "{got}");
    let mut doc: Value = toml::from_str(ANCHOR_V6).unwrap();
    set(&mut doc, "signaling.unknown_peers", s("answer"));
    let c = Config::from_toml_str(&toml::to_string(&doc).unwrap()).unwrap();
    assert_eq!(c.signaling.unknown_peers, UnknownPeers::Answer);
}

#[test]
fn control_group_by_name_or_number() {
    let with = |g: &str| {
        let mut doc: Value = toml::from_str(ACCESS_V4).unwrap();
        set(&mut doc, "control.group", s(g));
        Config::from_toml_str(&toml::to_string(&doc).unwrap())
    };
    assert_eq!(with("root").unwrap().control.group, Some(0));
    assert_eq!(with("4242").unwrap().control.group, Some(4242));
    let e = with("no-such-group-pmip").unwrap_err().to_string();
    assert!(
        e.contains("control.group: no group named \"no-such-group-pmip\""),
        "{e}"
    );
    assert_eq!(
        Config::from_toml_str(ACCESS_V4).unwrap().control.group,
        None
    );
}

#[test]
fn admission_defaults_and_checks() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    let a = &c.admission;
    assert_eq!((a.max_pending_per_link, a.max_pending), (16, 64));
    assert_eq!((a.attempts_per_s_per_link, a.attempts_per_s), (10, 50));
    assert_eq!(a.backoff_initial, Duration::from_secs(1));
    assert_eq!(a.backoff_max, Duration::from_secs(60));
    assert_eq!(a.new_mac_reports_per_s, 20);
    for (key, val, want) in [
        (
            "admission.max_pending",
            0,
            "admission.max_pending: must be > 0",
        ),
        (
            "admission.max_pending_per_link",
            65,
            "admission.max_pending_per_link: must not exceed max_pending (64)",
        ),
        (
            "admission.attempts_per_s_per_link",
            51,
            "admission.attempts_per_s_per_link: must not exceed attempts_per_s (50)",
        ),
        (
            "admission.backoff_initial_ms",
            61_000,
            "admission.backoff_initial_ms: must not exceed backoff_max_s (60 s)",
        ),
        ("admission.bogus", 1, "unknown field `bogus`"),
    ] {
        let got = errors_of(ACCESS_V6, &[(key, i(val))]);
        assert!(got.contains(want), "{key}: {got}");
    }
}

#[test]
fn offer_hold_defaults_and_is_capped_by_the_offer_timeout() {
    let c = Config::from_toml_str(ACCESS_V6).unwrap();
    assert_eq!(c.dhcp.offer_hold, Duration::from_secs(10));
    let iface = &c.interfaces.access[0];
    assert_eq!(
        c.dhcp_server_config(iface).offer_hold,
        Duration::from_secs(10)
    );
    let mut doc: Value = toml::from_str(ACCESS_V6).unwrap();
    set(&mut doc, "dhcp.offer_timeout_s", i(5));
    let c = Config::from_toml_str(&toml::to_string(&doc).unwrap()).unwrap();
    assert_eq!(c.dhcp.offer_hold, Duration::from_secs(5));
    let got = errors_of(ACCESS_V6, &[("dhcp.offer_hold_s", i(0))]);
    assert!(got.contains("dhcp.offer_hold_s: must be > 0"), "{got}");
}
