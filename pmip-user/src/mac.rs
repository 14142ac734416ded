//! MAC addresses as the configuration, `pmipctl` and the tests write them.
//! One parser for the crate (`access::frame` re-exports it).
use anyhow::{anyhow, Result};

/// Parses `aa:bb:cc:dd:ee:ff`, `aa-bb-..` or Cisco `aabb.ccdd.eeff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

/// [`parse_mac`], with an error that names the input.
pub fn parse_mac_or_err(s: &str) -> Result<[u8; 6]> {
    parse_mac(s).ok_or_else(|| anyhow!("bad MAC address {s:?}"))
}
