//! The access side towards the unmodified subscriber: the proxy DHCP server
//! (`dhcp`, sans-IO, and `shell`, its sockets), ARP-polling detach detection
//! (`detach`, which also answers subscribers' ARP for any address, draft §6.1)
//! and the raw Ethernet/ARP/UDP frames they need (`frame`).
//!
//! ICMP echo to the gateway (draft §6.2, TTL 1) needs nothing here: the router
//! address is configured on the access interface, so the kernel answers it.
pub mod detach;
pub mod dhcp;
pub mod frame;
pub mod shell;
