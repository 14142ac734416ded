//! Interfaces by name: index and MAC address, read over rtnetlink in the
//! calling thread's network namespace.
use anyhow::Result;

use super::netlink;

/// Index and MAC address of an interface in the caller's network namespace.
pub fn interface_info(name: &str) -> Result<(u32, [u8; 6])> {
    let l = netlink::link(name)?;
    Ok((l.index, l.mac))
}

/// The interface's index.
pub fn ifindex(name: &str) -> Result<u32> {
    Ok(interface_info(name)?.0)
}

/// The interface's MAC, read in the calling thread's network namespace.
pub fn iface_mac(name: &str) -> Result<[u8; 6]> {
    Ok(interface_info(name)?.1)
}
