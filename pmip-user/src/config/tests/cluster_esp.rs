//! `[[cluster.esp]]`: SAs per service address and peer (cluster/esp.rs).
use std::net::IpAddr;

use super::*;

const KEY: &str = "0x00112233445566778899aabbccddeeff01020304";
const KEY2: &str = "0xffeeddccbbaa99887766554433221100a1a2a3a4";

fn cluster_anchor(esp: &str) -> String {
    format!(
        r#"role = "anchor"
protocol = "pmipv6"
node_id = "a1"
[interfaces]
core = "core0"
[addresses]
ipv4 = "10.255.0.11"
[[peers]]
name = "mag1"
address = "10.255.0.1"
insecure = true
[[pools]]
name = "home"
prefix = "10.64.0.0/16"
gateway = "10.64.0.1"
[store]
backend = "etcd"
endpoints = ["http://10.77.0.1:2379"]
[cluster]
service_addresses = ["10.255.0.101", "10.255.0.102"]
{esp}"#
    )
}

fn entry(service: &str, peer: &str, spi_in: u32) -> String {
    format!(
        "\n[[cluster.esp]]\nservice = \"{service}\"\npeer = \"{peer}\"\n[cluster.esp.sa]\nspi_in = {spi_in}\nspi_out = {}\nalgorithm = \"rfc4106(gcm(aes))\"\nkey_in = \"{KEY}\"\nkey_out = \"{KEY2}\"\n",
        spi_in + 1
    )
}

#[test]
fn cluster_esp_entries_are_typed_and_checked() {
    let two = format!(
        "{}{}",
        entry("10.255.0.101", "mag1", 0x7001),
        entry("10.255.0.102", "mag1", 0x7011)
    );
    let c = Config::from_toml_str(&cluster_anchor(&two)).unwrap();
    let esp = &c.cluster.as_ref().unwrap().esp;
    assert_eq!(esp.len(), 2);
    assert_eq!(esp[0].0, "10.255.0.101".parse::<IpAddr>().unwrap());
    assert_eq!(esp[0].1, "10.255.0.1".parse::<IpAddr>().unwrap());

    let bad = [
        (
            entry("10.255.0.109", "mag1", 0x7001),
            "cluster.esp[0].service: not one of the cluster's addresses",
        ),
        (
            entry("10.255.0.101", "mag9", 0x7001),
            "cluster.esp[0].peer: no peers[] of that name",
        ),
        (
            format!(
                "{}{}",
                entry("10.255.0.101", "mag1", 0x7001),
                entry("10.255.0.101", "mag1", 0x7021)
            ),
            "cluster.esp[1]: a second entry for this service address and peer",
        ),
        (entry("10.255.0.101", "mag1", 7), "cluster.esp[0].sa.spi_in"),
    ];
    for (esp, want) in bad {
        let e = Config::from_toml_str(&cluster_anchor(&esp))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "want {want:?}, got {e}");
    }
}

/// `store.layout`: packed by default, "per-binding" taken, anything else
/// refused naming the field.
#[test]
fn store_layout_is_packed_unless_per_binding() {
    let c = Config::from_toml_str(&cluster_anchor("")).unwrap();
    assert_eq!(c.store.etcd.layout, StoreLayout::Packed);
    let one = cluster_anchor("").replace("[cluster]", "layout = \"per-binding\"\n[cluster]");
    let c = Config::from_toml_str(&one).unwrap();
    assert_eq!(c.store.etcd.layout, StoreLayout::PerBinding);
    let bad = cluster_anchor("").replace("[cluster]", "layout = \"bundled\"\n[cluster]");
    let e = Config::from_toml_str(&bad).unwrap_err().to_string();
    assert!(
        e.contains("store.layout: must be \"per-binding\" or \"packed\", not \"bundled\""),
        "{e}"
    );
}

/// `store.writes_in_flight`: 1 by default, 1–8 taken, else refused naming
/// the field.
#[test]
fn store_writes_in_flight_is_one_to_eight() {
    let c = Config::from_toml_str(&cluster_anchor("")).unwrap();
    assert_eq!(c.store.etcd.writes_in_flight, 1);
    let four = cluster_anchor("").replace("[cluster]", "writes_in_flight = 4\n[cluster]");
    assert_eq!(
        Config::from_toml_str(&four)
            .unwrap()
            .store
            .etcd
            .writes_in_flight,
        4
    );
    for bad in [0, 9] {
        let t = cluster_anchor("")
            .replace("[cluster]", &format!("writes_in_flight = {bad}\n[cluster]"));
        let e = Config::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("store.writes_in_flight: must be 1 to 8"), "{e}");
    }
}

/// `store.batch_max`: 256 by default, 16–8192 taken, else refused naming
/// the field.
#[test]
fn store_batch_max_is_16_to_8192() {
    let c = Config::from_toml_str(&cluster_anchor("")).unwrap();
    assert_eq!(c.store.etcd.batch_max, 256);
    let t = cluster_anchor("").replace("[cluster]", "batch_max = 1024\n[cluster]");
    assert_eq!(
        Config::from_toml_str(&t).unwrap().store.etcd.batch_max,
        1024
    );
    for bad in [8, 10_000] {
        let t = cluster_anchor("").replace("[cluster]", &format!("batch_max = {bad}\n[cluster]"));
        let e = Config::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("store.batch_max: must be 16 to 8192"), "{e}");
    }
}

/// `signaling.receive_buffer_kib`: 16 MiB by default, in bytes in the
/// settings; below 64 KiB refused naming the field.
#[test]
fn signaling_receive_buffer_is_in_kib() {
    let c = Config::from_toml_str(&cluster_anchor("")).unwrap();
    assert_eq!(c.signaling.receive_buffer, 16 << 20);
    let big = format!(
        "{}\n[signaling]\nreceive_buffer_kib = 32768\n",
        cluster_anchor("")
    );
    assert_eq!(
        Config::from_toml_str(&big)
            .unwrap()
            .signaling
            .receive_buffer,
        32 << 20
    );
    let small = format!(
        "{}\n[signaling]\nreceive_buffer_kib = 10\n",
        cluster_anchor("")
    );
    let e = Config::from_toml_str(&small).unwrap_err().to_string();
    assert!(
        e.contains("signaling.receive_buffer_kib: must be 64"),
        "{e}"
    );
}
