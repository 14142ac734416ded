//! The anchor's AF_XDP signaling sockets (`signaling.xdp_socket`): one per
//! receive queue of its core interface, in `MH_SOCKETS`, and the signaling
//! address in `MH_LOCAL`, so that the fast path hands Mobility Headers to
//! the agent without the kernel's raw-socket path (pmip-user
//! `pmipv6/transport/xdp.rs`).
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{HashMap, XskMap};
use aya::programs::XdpMode;
use pmip_common::{maps, MH_QUEUES_PER_IFACE};

use super::{map_err, Attached, FastPath};
use crate::sys::netlink;
use crate::sys::xsk::Xsk;

/// `MH_LOCAL`'s key: the interface and the address's bytes as the fast
/// path loads them (four words, in memory order).
fn mh_local_key(ifindex: u32, a: Ipv6Addr) -> [u32; 5] {
    let o = a.octets();
    let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    [ifindex, w(0), w(4), w(8), w(12)]
}

/// Each of `queues` sockets' share of `total` frames: a power of two (the
/// rings' sizes must be), rounded down, at least 64.
fn frames_per_queue(total: u32, queues: u32) -> u32 {
    let each = total / queues.max(1);
    if each < 64 {
        64
    } else {
        1 << (31 - each.leading_zeros())
    }
}

impl FastPath {
    /// Opens an AF_XDP socket on every receive queue of `iface` (the first
    /// [`MH_QUEUES_PER_IFACE`]), the `frames` frames shared out among them
    /// (a power of two each, at least 64), the first with `tx_frames` to
    /// send from (a power of two, or 0), and has the fast path there hand
    /// Mobility Headers to `local` to them. The fast path must
    /// be attached to `iface` in XDP (TC cannot reach an AF_XDP socket).
    /// Entries of an earlier run are replaced; a socket leaves the map by
    /// itself when it is closed.
    pub fn signaling_sockets(
        &mut self,
        iface: &str,
        local: Ipv6Addr,
        frames: u32,
        tx_frames: u32,
    ) -> Result<Vec<Xsk>> {
        match self
            .attached
            .iter()
            .find(|(n, _)| n == iface)
            .map(|(_, a)| *a)
        {
            Some(Attached::Xdp(XdpMode::Driver | XdpMode::Skb) | Attached::Kept) => {}
            other => bail!(
                "{iface}: the fast path is not attached in XDP there ({other:?}): Mobility \
                 Headers cannot reach an AF_XDP socket"
            ),
        }
        let link = netlink::link(iface)?;
        let (idx, queues) = (link.index, link.rx_queues.min(MH_QUEUES_PER_IFACE));
        let mut local_map: HashMap<_, [u32; 5], u32> =
            HashMap::try_from(self.map_mut(maps::MH_LOCAL)?)?;
        let stale: Vec<[u32; 5]> = local_map.keys().filter_map(|k| k.ok()).collect();
        for k in stale {
            local_map.remove(&k).map_err(map_err)?;
        }
        let frames = frames_per_queue(frames, queues);
        let mut socks = Vec::with_capacity(queues as usize);
        let mut xsks: XskMap<_> = XskMap::try_from(self.map_mut(maps::MH_SOCKETS)?)?;
        for q in 0..queues {
            let s = match Xsk::open(idx, q, frames, if q == 0 { tx_frames } else { 0 }) {
                Ok(s) => s,
                // The queues a driver uses may be fewer than it allocated
                // (real_num_rx_queues): a bind past them is refused.
                Err(e) if q > 0 && e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{iface}: an AF_XDP socket on receive queue {q}"))
                }
            };
            xsks.set(q, s.as_raw_fd(), 0)
                .map_err(|e| anyhow!("{iface}: MH_SOCKETS[{q}]: {e}"))?;
            socks.push(s);
        }
        let mut local_map: HashMap<_, [u32; 5], u32> =
            HashMap::try_from(self.map_mut(maps::MH_LOCAL)?)?;
        local_map
            .insert(mh_local_key(idx, local), 0, 0)
            .map_err(map_err)?;
        Ok(socks)
    }
}

#[cfg(test)]
mod tests {
    use super::frames_per_queue;

    #[test]
    fn the_frames_are_shared_out_in_powers_of_two() {
        // 16 MiB (the default receive buffer) in 2 KiB frames.
        assert_eq!(frames_per_queue(8192, 1), 8192);
        assert_eq!(frames_per_queue(8192, 2), 4096);
        assert_eq!(frames_per_queue(8192, 3), 2048);
        assert_eq!(frames_per_queue(8192, 64), 128);
        assert_eq!(frames_per_queue(100, 1), 64);
        assert_eq!(frames_per_queue(32, 4), 64);
        assert_eq!(frames_per_queue(8192, 0), 8192);
    }
}
