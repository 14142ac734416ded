//! Mobility Headers read from the anchor's AF_XDP sockets
//! (`signaling.xdp_socket`): the fast path on the anchor's core interfaces
//! redirects an IPv6 packet whose next header is the Mobility Header (135)
//! and whose destination is our signaling address into the socket of its
//! receive queue (pmip-ebpf dispatch.rs `to_signaling_socket`), so a PBU
//! costs the LMA's thread no system call and no socket buffer: the kernel's
//! raw IPv6 receive path was a quarter of a binding's CPU time (issue 18,
//! BENCHMARKS.md "Signaling on this host").
//!
//! What the kernel's IPv6 input and the raw MH socket would have checked
//! before delivering, [`mobility_header`] checks here: the header's
//! version and length, a source that may send (not multicast, loopback,
//! unspecified or IPv4-mapped; RFC 4291 §2.5.2, §2.5.3, §2.5.5.2, §2.7 and
//! Linux's `ip6_rcv_core`) and the destination the socket is bound to. The
//! Mobility Header's checksum is verified by the state machine, as for
//! every IPv6 message (`LocalAddrs::rx_checksum`). A packet with any
//! extension header before the Mobility Header, a fragment, or one to
//! another address never comes here: the fast path leaves it to the
//! kernel, and to the raw MH socket, which stays open.
use std::io;
use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use tokio::io::unix::AsyncFd;

use crate::agent::batch::RxBatch;
use crate::agent::registrar::Counters;
use crate::agent::{Peer, Transmit};
use crate::pmipv6::wire::IPPROTO_MH;
use crate::sys::xsk::Xsk;

use super::xdp_send::{SendLink, XdpSend};

const ETH_HLEN: usize = 14;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;

/// The Mobility Header in an Ethernet frame the fast path redirected, and
/// its sender: `None` for what the kernel would not have delivered to a raw
/// MH socket bound to `local`.
pub fn mobility_header(frame: &[u8], local: &Ipv6Addr) -> Option<(Ipv6Addr, Range<usize>)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_HLEN..ETH_HLEN + IPV6_HLEN)?;
    if ethertype != ETH_P_IPV6 || ip[0] >> 4 != 6 || ip[6] != IPPROTO_MH {
        return None;
    }
    // A frame may carry padding after the packet (Ethernet's minimum);
    // a packet longer than the frame is truncated. Zero is a jumbogram's
    // length (RFC 2675), which needs a Hop-by-Hop header: not here.
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let end = ETH_HLEN + IPV6_HLEN + len;
    if len == 0 || end > frame.len() {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv6Addr> {
        let b: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    let bad_source = src.is_multicast()
        || src.is_loopback()
        || src.is_unspecified()
        || src.to_ipv4_mapped().is_some();
    if dst != *local || bad_source {
        return None;
    }
    Some((src, ETH_HLEN + IPV6_HLEN..end))
}

/// The anchor's AF_XDP sockets, one per receive queue of its core
/// interfaces, and what was read from them.
pub(super) struct XdpPart {
    socks: Vec<AsyncFd<Xsk>>,
    /// With `signaling.xdp_socket_send`: PBAs out through the first.
    send: Option<XdpSend>,
    local: Ipv6Addr,
    received: AtomicU64,
    malformed: AtomicU64,
}

impl XdpPart {
    pub(super) fn new(
        socks: Vec<Xsk>,
        local: Ipv6Addr,
        send: Option<SendLink>,
    ) -> io::Result<XdpPart> {
        let send = send.map(|l| XdpSend::new(l, local)).transpose()?;
        let socks = socks
            .into_iter()
            // SAFETY: an Xsk keeps its descriptor open until dropped.
            .map(|s| unsafe { AsyncFd::register(s) }.map_err(|e| e.into_parts().1))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(XdpPart {
            socks,
            send,
            local,
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    /// Resolves once a socket holds a frame (without one: never). Sockets
    /// found empty have their readiness cleared, so the next frame wakes us.
    pub(super) async fn readable(x: Option<&XdpPart>) -> io::Result<()> {
        let Some(x) = x else {
            return std::future::pending().await;
        };
        std::future::poll_fn(|cx| {
            for s in &x.socks {
                loop {
                    match s.poll_read_ready(cx) {
                        Poll::Ready(Ok(mut g)) => {
                            if s.get_ref().has_frames() {
                                return Poll::Ready(Ok(()));
                            }
                            // A frame that came after the guard was taken
                            // keeps the readiness set (tokio's tick).
                            g.clear_ready();
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Takes the Mobility Header out of `frame`, counting what is dropped.
    fn accept(&self, frame: &[u8]) -> Option<(Ipv6Addr, Range<usize>)> {
        let got = mobility_header(frame, &self.local);
        let c = if got.is_some() {
            &self.received
        } else {
            crate::log_limited!(
                debug,
                len = frame.len(),
                "frame from the signaling XDP socket dropped: not a Mobility Header the kernel would deliver"
            );
            &self.malformed
        };
        c.fetch_add(1, Ordering::Relaxed);
        got
    }

    /// Non-blocking: one Mobility Header into `buf` (`accept_plain` decides
    /// whether its sender may send it without ESP).
    pub(super) fn try_recv(
        &self,
        buf: &mut [u8],
        accept_plain: impl Fn(&Peer) -> bool,
    ) -> Option<(Peer, usize)> {
        for s in &self.socks {
            // Bounded: a run of dropped frames is left for the next wake-up.
            for _ in 0..64 {
                let mut got = None;
                if s.get_ref().drain(1, |f| {
                    if let Some((src, r)) = self.accept(f) {
                        let n = r.len().min(buf.len());
                        buf[..n].copy_from_slice(&f[r.start..r.start + n]);
                        got = Some((Peer::V6(src), n));
                    }
                }) == 0
                {
                    break;
                }
                if let Some(got) = got.filter(|(p, _)| accept_plain(p)) {
                    return Some(got);
                }
            }
        }
        None
    }

    /// What the sockets hold, up to the batch's room.
    pub(super) fn try_recv_batch(&self, batch: &mut RxBatch) {
        for s in &self.socks {
            let room = batch.room();
            if room == 0 {
                return;
            }
            s.get_ref().drain(room, |f| {
                let Some((src, r)) = self.accept(f) else {
                    return;
                };
                if let Some(slot) = batch.next_slot() {
                    if r.len() > slot.len() {
                        batch.push_truncated();
                        return;
                    }
                    slot[..r.len()].copy_from_slice(&f[r.clone()]);
                    batch.push(Peer::V6(src), r.len());
                }
            });
        }
    }

    /// Sends what it can of `list` (plain IPv6 messages; `at`: their places
    /// in the batch) through the first socket, taking them out of both;
    /// returns how many. Without `signaling.xdp_socket_send`: none.
    pub(super) fn send_batch(&self, at: &mut Vec<usize>, list: &mut Vec<&Transmit>) -> u64 {
        match (&self.send, self.socks.first()) {
            (Some(x), Some(s)) if !list.is_empty() => x.send(s.get_ref(), at, list),
            _ => 0,
        }
    }

    /// `xdp_socket_tx_invalid`: descriptors the kernel refused to send.
    fn tx_invalid(&self) -> Option<u64> {
        self.send.as_ref()?;
        Some(self.socks.first()?.get_ref().stats().ok()?.tx_invalid)
    }

    /// Frames the kernel dropped at the sockets (no room), for
    /// `rx_socket_drops`.
    pub(super) fn socket_drops(&self) -> u64 {
        self.socks
            .iter()
            .filter_map(|s| s.get_ref().stats().ok())
            .map(|s| s.dropped)
            .sum()
    }

    /// `xdp_socket_rx`: Mobility Headers read; `xdp_socket_malformed`:
    /// frames dropped by [`mobility_header`].
    pub(super) fn counters(&self) -> Counters {
        let mut c = self
            .send
            .as_ref()
            .map(XdpSend::counters)
            .unwrap_or_default();
        if let Some(n) = self.tx_invalid() {
            c.insert("xdp_socket_tx_invalid".to_string(), n);
        }
        c.extend([
            (
                "xdp_socket_rx".to_string(),
                self.received.load(Ordering::Relaxed),
            ),
            (
                "xdp_socket_malformed".to_string(),
                self.malformed.load(Ordering::Relaxed),
            ),
        ]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const MAG: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn frame(src: Ipv6Addr, dst: Ipv6Addr, next: u8, mh: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(mh.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(mh);
        f
    }

    #[test]
    fn the_mobility_header_and_its_sender_come_out() {
        let mh = [59u8, 1, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let mut f = frame(MAG, LOCAL, IPPROTO_MH, &mh);
        let (src, r) = mobility_header(&f, &LOCAL).unwrap();
        assert_eq!((src, &f[r.clone()]), (MAG, &mh[..]));
        // Ethernet padding after the packet is not part of it.
        f.extend_from_slice(&[0; 10]);
        assert_eq!(mobility_header(&f, &LOCAL).unwrap().1, r);
    }

    #[test]
    fn what_the_kernel_would_not_deliver_is_dropped() {
        let mh = [59u8, 1, 5, 0, 0, 0, 1, 2];
        let ok = frame(MAG, LOCAL, IPPROTO_MH, &mh);
        assert!(mobility_header(&ok, &LOCAL).is_some());
        // Truncated anywhere: in Ethernet, in IPv6, in the payload.
        for n in [0, 5, 13, 14, 30, 53, ok.len() - 1] {
            assert!(mobility_header(&ok[..n], &LOCAL).is_none(), "cut at {n}");
        }
        let mut v4 = ok.clone();
        v4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut ver = ok.clone();
        ver[14] = 0x40;
        let mut zero_len = ok.clone();
        zero_len[18..20].copy_from_slice(&[0, 0]);
        let mut long = ok.clone();
        long[18..20].copy_from_slice(&[0xff, 0xff]);
        for (what, f) in [
            ("IPv4", v4),
            ("version 4", ver),
            ("jumbogram length", zero_len),
            ("longer than the frame", long),
            ("another next header", frame(MAG, LOCAL, 60, &mh)),
            ("another destination", frame(MAG, MAG, IPPROTO_MH, &mh)),
            (
                "multicast source",
                frame("ff02::1".parse().unwrap(), LOCAL, IPPROTO_MH, &mh),
            ),
            (
                "loopback source",
                frame(Ipv6Addr::LOCALHOST, LOCAL, IPPROTO_MH, &mh),
            ),
            (
                "unspecified source",
                frame(Ipv6Addr::UNSPECIFIED, LOCAL, IPPROTO_MH, &mh),
            ),
            (
                "IPv4-mapped source",
                frame("::ffff:192.0.2.1".parse().unwrap(), LOCAL, IPPROTO_MH, &mh),
            ),
        ] {
            assert!(mobility_header(&f, &LOCAL).is_none(), "{what}");
        }
    }
}
