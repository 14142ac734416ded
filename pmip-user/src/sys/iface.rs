//! Interfaces by name: index and MAC address, read in the calling thread's
//! network namespace (an ioctl today; netlink later, issue 16).
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

/// Index and MAC address of an interface in the caller's network namespace.
pub fn interface_info(name: &str) -> Result<(u32, [u8; 6])> {
    let cname = CString::new(name).context("interface name")?;
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        bail!("interface {name}: {}", io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        bail!("interface name {name} too long");
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
        bail!("SIOCGIFHWADDR {name}: {}", io::Error::last_os_error());
    }
    // SAFETY: the ioctl above initialised the hwaddr arm of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok((ifindex, mac))
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
