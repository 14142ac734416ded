//! The access side towards the unmodified subscriber: the proxy DHCP server
//! (`dhcp`, sans-IO, and `shell`, its sockets), the caps on attaches that
//! bound what a flood of new MACs costs (`admission`), ARP-polling detach detection
//! (`detach`, which also answers subscribers' ARP for any address, draft §6.1)
//! and the raw Ethernet/ARP/UDP frames they need (`frame`).
//!
//! IPv6 (PMIPv6 home-link emulation, RFC 5213 §6.7–6.9): the Neighbor
//! Discovery codec (`nd`), whole IPv6 frames (`frame6`), the per-link router
//! advertisement engine (`ra`, sans-IO), the DHCPv6 server (`dhcp6`, sans-IO)
//! and the shell that drives both on one interface (`nd_shell`).
//!
//! ICMP echo to the gateway (draft §6.2, TTL 1) needs nothing here: the router
//! address is configured on the access interface, so the kernel answers it.
pub mod admission;
pub mod detach;
pub mod dhcp;
pub mod dhcp6;
pub mod frame;
pub mod frame6;
pub mod nd;
pub mod nd_shell;
pub mod ra;
pub mod shell;

/// The NAI a subscriber is known by before its profile is found: the DHCP
/// client identifier (option 61) when it is text (seed 004: "the NAI carried
/// via the DHCP client-identifier"), else the MAC in Cisco notation
/// (`0024.d78e.21a4`, seed 004's default-profile NAI). A client identifier of
/// type 1 (Ethernet + MAC, RFC 2132 §9.14) or type 255 (RFC 4361) is not a NAI.
pub(crate) fn subscriber_nai(client_id: Option<&[u8]>, mac: &[u8; 6]) -> String {
    if let Some(id) = client_id {
        // Type 0 is "not a hardware address": the rest is the identifier.
        let text = match id.first() {
            Some(0) => &id[1..],
            Some(1) | Some(255) | None => &[][..],
            Some(_) => id,
        };
        if !text.is_empty() && text.len() <= 253 && text.iter().all(|b| b.is_ascii_graphic()) {
            if let Ok(s) = std::str::from_utf8(text) {
                return s.to_string();
            }
        }
    }
    frame::mac_dotted(mac)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nai_from_client_id_or_mac() {
        let mac = [0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
        assert_eq!(super::subscriber_nai(None, &mac), "0024.d78e.21a4");
        assert_eq!(
            super::subscriber_nai(Some(b"\x00mn0@example.com"), &mac),
            "mn0@example.com"
        );
        assert_eq!(
            super::subscriber_nai(Some(b"mn0@example.com"), &mac),
            "mn0@example.com"
        );
        assert_eq!(
            super::subscriber_nai(Some(&[1, 0, 0x24, 0xd7, 0x8e, 0x21, 0xa4]), &mac),
            "0024.d78e.21a4"
        );
        assert_eq!(
            super::subscriber_nai(Some(&[255, 1, 2, 3, 4, 5]), &mac),
            "0024.d78e.21a4"
        );
        assert_eq!(super::subscriber_nai(Some(b"\x00"), &mac), "0024.d78e.21a4");
        assert_eq!(
            super::subscriber_nai(Some(b"has space"), &mac),
            "0024.d78e.21a4"
        );
        assert_eq!(super::subscriber_nai(Some(&[]), &mac), "0024.d78e.21a4");
    }
}
