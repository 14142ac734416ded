//! The host side of serving a service address: the address on the core
//! interface, gratuitous ARP so the access gateways (and their fast paths'
//! next-hop caches) move to us, and on the correspondent side routes that
//! make the kernel answer ARP for the home addresses we serve (proxy ARP)
//! plus a gratuitous ARP for each of them after a takeover.
//!
//! Nothing of it outlives the process by more than a lease (issue 17): a
//! host whose pmipd was killed -9 must not go on answering for an address
//! another anchor took over. The address is added with a lifetime of one
//! lease TTL (`valid_lft`/`preferred_lft`, IFA_CACHEINFO), renewed while
//! the address is served (`Service::renew_address`), so the kernel removes
//! it by itself once nobody renews it; the block routes carry the service
//! address as their preferred source, so the kernel flushes them with it
//! (and with them the proxy-ARP answers). Routes are also tagged with their
//! own protocol number ([`RT_PROTO`]) so a restarted anchor, or the unit's
//! `ExecStopPost` (`pmipd cleanup`), removes what is left at once.
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::access::frame::{ArpOp, ArpRepr};
use crate::sys::socket::RawSender;
use crate::sys::{interface_info, sysctl};

/// `proto` of our block routes (an unassigned number of rtnetlink's table).
pub(crate) const RT_PROTO: &str = "212";

fn ip(args: &[&str]) -> Result<()> {
    ip_output(args).map(drop)
}

/// Runs `ip` with `args`; its standard output, or an error with its
/// standard error.
fn ip_output(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Runs `ip -batch -` over `lines` (one process for many routes); the
/// failures of single lines are ignored (`-force`).
fn ip_batch(lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("ip -batch")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(lines.join("\n").as_bytes())?;
    }
    child.wait()?;
    Ok(())
}

fn host(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// Puts the service address on `iface` (a host address: the subnet route
/// of the interface's own address already covers the link) for `life`
/// (whole seconds, at least one), or renews it for as long again. True when
/// it was put there (it was absent: first taken up, or gone since the last
/// renewal), as the kernel tells (`put_address_for`).
pub(crate) fn add_address(iface: &str, a: IpAddr, life: Duration) -> Result<bool> {
    let secs = (life.as_secs() + u64::from(life.subsec_nanos() > 0)).clamp(1, u64::from(u32::MAX));
    let len = if a.is_ipv6() { 128 } else { 32 };
    crate::sys::netlink::put_address_for(iface, a, len, secs as u32)
}

/// Removes it (absent is fine).
pub(crate) fn del_address(iface: &str, a: IpAddr) {
    let _ = ip(&["addr", "del", &host(a), "dev", iface]);
}

/// Lets the kernel answer ARP on a correspondent interface for addresses
/// routed elsewhere (our blocks' routes), at once (no proxy delay).
pub(crate) fn proxy_arp(iface: &str) -> Result<()> {
    sysctl(&format!("net.ipv4.conf.{iface}.proxy_arp"), "1")?;
    sysctl(&format!("net.ipv4.neigh.{iface}.proxy_delay"), "0")
}

/// Routes a block of home addresses (`net/len`) out of the core interface
/// via `via` (TC egress tunnels host traffic to the serving gateway; the
/// route only has to lead there), tagged as ours; with `src` (the service
/// address, on the host) the kernel removes them when that address goes.
pub(crate) fn add_block_routes(
    blocks: &[(Ipv4Addr, u8)],
    (via, dev): (Ipv4Addr, &str),
    src: Option<Ipv4Addr>,
) -> Result<()> {
    let src = src.map(|s| format!(" src {s}")).unwrap_or_default();
    let lines: Vec<String> = blocks
        .iter()
        .map(|(n, l)| format!("route replace {n}/{l} via {via} dev {dev}{src} proto {RT_PROTO}"))
        .collect();
    ip_batch(&lines)
}

pub(crate) fn del_block_routes(blocks: &[(Ipv4Addr, u8)]) {
    let lines: Vec<String> = blocks
        .iter()
        .map(|(n, l)| format!("route del {n}/{l} proto {RT_PROTO}"))
        .collect();
    let _ = ip_batch(&lines);
}

/// Removes every route an earlier run tagged as ours.
pub(crate) fn flush_block_routes() {
    let _ = ip(&["route", "flush", "proto", RT_PROTO]);
}

/// Gratuitous ARP (an ARP announcement, RFC 5227 §2.3: a request for our
/// own address) for `addrs` on `iface`, from its MAC.
pub(crate) fn gratuitous_arp(iface: &str, addrs: &[Ipv4Addr]) -> Result<usize> {
    if addrs.is_empty() {
        return Ok(0);
    }
    let (ifindex, mac) = interface_info(iface)?;
    let s = RawSender::open(ifindex)?;
    let mut sent = 0;
    for a in addrs {
        let frame = ArpRepr {
            op: ArpOp::Request,
            sha: mac,
            spa: *a,
            tha: [0; 6],
            tpa: *a,
        }
        .to_frame([0xff; 6]);
        if s.send(&frame).is_ok() {
            sent += 1;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_per_family() {
        assert_eq!(host("10.0.0.1".parse().unwrap()), "10.0.0.1/32");
        assert_eq!(host("fd00::1".parse().unwrap()), "fd00::1/128");
    }
}
