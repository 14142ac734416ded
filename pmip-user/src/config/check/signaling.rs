//! Who may signal to us and how it is protected: `peers[].esp` /
//! `peers[].insecure` (RFC 5213 §4: the MAG–LMA signaling is protected by
//! IPsec ESP), `[signaling]`, and `control.group`.
use std::ffi::CString;

use super::Errors;
use crate::config::file::{self, File};
use crate::config::{Protocol, Signaling};
use crate::esp::{check_unique_spi_in, EspSettings};

/// A peer's ESP SAs (PMIPv6), or `None` with an explicit `insecure = true`.
pub(super) fn peer_esp(f: &File, p: &str, pr: &file::Peer, v: &mut Errors) -> Option<EspSettings> {
    if f.protocol == Protocol::Pmipv4 {
        if pr.esp.is_some() {
            v.err(
                format!("{p}.esp"),
                "PMIPv4 signaling is authenticated by its FA-HA extension (spi, algorithm, \
                 key); ESP is for PMIPv6",
            );
        }
        if pr.insecure {
            v.err(
                format!("{p}.insecure"),
                "PMIPv4 peers are always authenticated",
            );
        }
        return None;
    }
    match (&pr.esp, pr.insecure) {
        (Some(_), true) => {
            v.err(
                format!("{p}.insecure"),
                "contradicts esp: remove one of them",
            );
            None
        }
        (Some(esp), false) => match esp.check(&format!("{p}.esp")) {
            Ok(s) => Some(s),
            Err(errs) => {
                v.0.extend(errs);
                None
            }
        },
        (None, true) => None,
        (None, false) => {
            v.err(
                format!("{p}.esp"),
                "missing: PMIPv6 signaling must be protected by ESP (RFC 5213 §4); give the \
                 peer's security associations, or set insecure = true (labs only: anyone who \
                 can send from the peer's address can then revoke subscribers)",
            );
            None
        }
    }
}

/// Inbound SPIs are how ESP packets find their SA: unique across peers.
pub(super) fn unique_spis(f: &File, v: &mut Errors) {
    let entries: Vec<(String, &crate::esp::EspConfig)> = f
        .peers
        .iter()
        .enumerate()
        .filter_map(|(i, pr)| pr.esp.as_ref().map(|e| (format!("peers[{i}].esp"), e)))
        .collect();
    v.0.extend(check_unique_spi_in(&entries));
}

pub(super) fn signaling(f: &File, v: &mut Errors) -> Signaling {
    let s = &f.signaling;
    let uses_esp = f.peers.iter().any(|p| p.esp.is_some());
    if uses_esp && !s.esp_state_file.is_absolute() {
        v.err("signaling.esp_state_file", "must be an absolute path");
    }
    if !(64..=1 << 20).contains(&s.receive_buffer_kib) {
        v.err(
            "signaling.receive_buffer_kib",
            "must be 64 to 1048576 (KiB: 64 KiB to 1 GiB)",
        );
    }
    if s.xdp_socket {
        xdp_socket(f, v);
    } else if s.xdp_socket_send {
        v.err(
            "signaling.xdp_socket_send",
            "needs signaling.xdp_socket = true: the PBAs go out through those sockets",
        );
    }
    Signaling {
        unknown_peers: s.unknown_peers,
        udp_gso: s.udp_gso,
        xdp_socket: s.xdp_socket,
        xdp_socket_send: s.xdp_socket && s.xdp_socket_send,
        receive_buffer: s.receive_buffer_kib.clamp(64, 1 << 20) as usize * 1024,
        esp_state_file: s.esp_state_file.clone(),
    }
}

/// `signaling.xdp_socket = true`: what it needs.
fn xdp_socket(f: &File, v: &mut Errors) {
    let why = if f.role != crate::config::Role::Anchor {
        "only an anchor (LMA) reads its Mobility Headers from AF_XDP sockets"
    } else if f.protocol != Protocol::Pmipv6 {
        "PMIPv6 only: PMIPv4 registrations are UDP 434, read from their socket"
    } else if f.addresses.ipv6.is_none() {
        "needs addresses.ipv6: the sockets take the Mobility Headers sent to it"
    } else if f.fastpath.attach_mode == crate::fastpath::AttachMode::Tc {
        "needs the fast path in XDP: with fastpath.attach_mode = \"tc\" nothing reaches an \
         AF_XDP socket"
    } else if f.cluster.is_some() {
        "not with [cluster]: the service addresses move between anchors"
    } else {
        return;
    };
    v.err("signaling.xdp_socket", why);
}

/// `control.group`: a group name or number, resolved once.
pub(super) fn control_group(f: &File, v: &mut Errors) -> Option<u32> {
    let g = f.control.group.as_deref()?;
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    match group_id(g) {
        Some(n) => Some(n),
        None => {
            v.err("control.group", format!("no group named {g:?}"));
            None
        }
    }
}

/// The id of group `name` (getgrnam_r: /etc/group, NSS).
fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid `group`; getgrnam_r only writes into it and buf.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the length passed; out is set to
    // &grp or null.
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_group_resolves() {
        assert_eq!(super::group_id("root"), Some(0));
        assert_eq!(super::group_id("no-such-group-pmip"), None);
        assert_eq!(super::group_id("bad\0name"), None);
    }
}
