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

/// The 802.1Q VLAN id of `name` when it is a VLAN sub-interface (the 8021q
/// driver lists those in /proc/net/vlan, per network namespace), else `None`.
/// Frames are untagged by the time a program attached to such an interface
/// sees them: the tag is the sub-interface's, not the frame's.
pub fn vlan_id(name: &str) -> Option<u16> {
    if name.contains('/') {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/net/vlan/{name}")).ok()?;
    parse_vlan_proc(&text)
}

/// The "VID: n" of a /proc/net/vlan/<dev> file.
fn parse_vlan_proc(text: &str) -> Option<u16> {
    let rest = &text[text.find("VID:")? + 4..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn vlan_proc_file() {
        let t = "acc0.100  VID: 100\t REORDER_HDR: 1  dev->priv_flags: 1021\n";
        assert_eq!(super::parse_vlan_proc(t), Some(100));
        assert_eq!(super::parse_vlan_proc("garbage"), None);
        assert_eq!(super::parse_vlan_proc("VID: x"), None);
    }
}
