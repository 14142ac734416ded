//! The LMA's Proxy Binding Acknowledgements through the first AF_XDP
//! socket's TX ring (`signaling.xdp_socket_send`): a whole Ethernet frame
//! per message, written into the socket's memory and handed to the driver
//! by one `sendto` for the batch, without the kernel's raw IPv6 output
//! (route lookup, socket buffer, checksum, netfilter, qdisc): what was left
//! of the kernel's part of a binding once the PBUs came through the socket
//! (issue 18, BENCHMARKS.md "PBAs through the AF_XDP socket").
//!
//! The frame's next hop is what the kernel's own tables name: the route to
//! the MAG (RTM_GETROUTE) must leave through the socket's interface, and
//! the neighbour entry of its gateway (or of the MAG, on link) must hold a
//! link-layer address the kernel itself would send to (RFC 4861 §7.3.2,
//! §7.3.3: REACHABLE, STALE, DELAY, PROBE; PERMANENT, NOARP). A resolver
//! thread looks the MAGs up about once a second. A MAG it has not resolved
//! (INCOMPLETE, FAILED, no entry, no route) is answered through the raw
//! socket, which is what has the kernel resolve it; so is one PBA a round
//! to a MAG whose entry is STALE, which has the kernel verify it (DELAY,
//! then a unicast probe, §7.3.3), as the PBAs sent here never would. An
//! entry whose probes fail is gone from the kernel's table, and from ours
//! within a second.
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::agent::registrar::Counters;
use crate::agent::{Peer, Transmit};
use crate::pmipv6::wire::IPPROTO_MH;
use crate::sys::netlink;
use crate::sys::xsk::Xsk;

const ETH_P_IPV6: u16 = 0x86dd;
/// Ethernet and IPv6 headers in front of the Mobility Header.
const HEADERS: usize = 14 + 40;
/// How often the resolver looks the MAGs up again.
const REFRESH: Duration = Duration::from_secs(1);
/// A MAG not answered for this long is no longer looked up.
const FORGET: Duration = Duration::from_secs(60);
/// At most this many MAGs are looked up; past them, the raw socket.
const MAX_PEERS: usize = 1024;
/// NUD_* states (linux/neighbour.h) whose link-layer address the kernel
/// itself sends to: REACHABLE, STALE, DELAY, PROBE, NOARP, PERMANENT.
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// NUD_STALE: usable, but only the kernel's own sending has it verified.
const NUD_STALE: u16 = 0x04;

/// The interface the socket sends on, as the kernel reports it, and the
/// MAGs that may be answered through it.
#[derive(Clone, Debug)]
pub struct SendLink {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// The IPv6 hop limit the raw socket would use
    /// (`net.ipv6.conf.IFACE.hop_limit`).
    pub hop_limit: u8,
    /// The configured MAGs (`peers[]`): only they are looked up, so that
    /// strangers answered with `signaling.unknown_peers = "answer"` (any
    /// source address) cannot crowd them out. Empty: any, up to 1024.
    pub mags: Vec<Ipv6Addr>,
}

/// A resolved MAG: the link-layer address its frames go to.
struct Hop {
    mac: [u8; 6],
    /// Sent to since the resolver last looked.
    used: AtomicBool,
    /// STALE when last looked up: the next PBA goes through the raw socket.
    nudge: AtomicBool,
}

/// The next hops, shared with the resolver thread.
#[derive(Default)]
struct NextHops {
    known: RwLock<HashMap<Ipv6Addr, Hop>>,
    /// MAGs answered through the raw socket for want of a next hop.
    wanted: Mutex<HashSet<Ipv6Addr>>,
    wake: Condvar,
}

/// The sending side of the anchor's AF_XDP sockets.
pub(super) struct XdpSend {
    link: SendLink,
    mags: HashSet<Ipv6Addr>,
    local: Ipv6Addr,
    hops: Arc<NextHops>,
    sent: AtomicU64,
    kernel: AtomicU64,
}

impl XdpSend {
    /// Starts the resolver thread (in the calling thread's network
    /// namespace); it ends when this is dropped.
    pub(super) fn new(link: SendLink, local: Ipv6Addr) -> std::io::Result<XdpSend> {
        let hops = Arc::new(NextHops::default());
        let h = hops.clone();
        let ifindex = link.ifindex;
        std::thread::Builder::new()
            .name("pmip-nexthops".into())
            .spawn(move || resolve_loop(&h, ifindex, local))?;
        Ok(XdpSend {
            mags: link.mags.iter().copied().collect(),
            link,
            local,
            hops,
            sent: AtomicU64::new(0),
            kernel: AtomicU64::new(0),
        })
    }

    /// Sends through `sock` what it can of `list` (IPv6 peers, no ESP):
    /// those sent leave `list` and `at` (their places in the batch); the
    /// rest are the raw socket's. Returns how many were sent.
    pub(super) fn send(&self, sock: &Xsk, at: &mut Vec<usize>, list: &mut Vec<&Transmit>) -> u64 {
        let mut via = Vec::with_capacity(list.len());
        {
            let Ok(known) = self.hops.known.read() else {
                return 0;
            };
            let mut unknown = Vec::new();
            for (i, t) in list.iter().enumerate() {
                let Peer::V6(dst) = t.peer else { continue };
                let fits = 40 + t.payload.len() <= self.link.mtu as usize;
                match known.get(&dst) {
                    Some(h) if fits && !h.nudge.swap(false, Ordering::Relaxed) => {
                        h.used.store(true, Ordering::Relaxed);
                        via.push((i, h.mac, dst));
                    }
                    Some(_) => {}
                    None => unknown.push(dst),
                }
            }
            drop(known);
            if !unknown.is_empty() {
                self.want(unknown);
            }
        }
        let n = sock.send(via.len(), |k, buf| {
            let (i, mac, dst) = via[k];
            frame(&self.link, self.local, buf, (mac, dst), &list[i].payload)
        });
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.kernel
            .fetch_add((list.len() - n) as u64, Ordering::Relaxed);
        if n > 0 {
            let mut gone = vec![false; list.len()];
            for v in &via[..n] {
                gone[v.0] = true;
            }
            let mut k = gone.iter();
            at.retain(|_| !k.next().copied().unwrap_or(false));
            let mut k = gone.iter();
            list.retain(|_| !k.next().copied().unwrap_or(false));
        }
        n as u64
    }

    /// MAGs to look up: the resolver is woken when one is new.
    fn want(&self, peers: Vec<Ipv6Addr>) {
        let Ok(mut w) = self.hops.wanted.lock() else {
            return;
        };
        let before = w.len();
        for p in peers {
            if w.len() < MAX_PEERS && (self.mags.is_empty() || self.mags.contains(&p)) {
                w.insert(p);
            }
        }
        if w.len() > before {
            self.hops.wake.notify_one();
        }
    }

    /// `xdp_socket_tx`: PBAs sent through the socket; `xdp_socket_tx_kernel`:
    /// those left to the raw socket (no usable next hop, larger than the
    /// MTU, no free frame).
    pub(super) fn counters(&self) -> Counters {
        Counters::from([
            (
                "xdp_socket_tx".to_string(),
                self.sent.load(Ordering::Relaxed),
            ),
            (
                "xdp_socket_tx_kernel".to_string(),
                self.kernel.load(Ordering::Relaxed),
            ),
        ])
    }
}

/// Writes the frame of `payload` (a Mobility Header, its checksum already
/// computed) from `local` on `link` to `dst` through `mac` into `buf`; its
/// length, or 0 where it does not fit.
fn frame(
    link: &SendLink,
    local: Ipv6Addr,
    buf: &mut [u8],
    (mac, dst): ([u8; 6], Ipv6Addr),
    payload: &[u8],
) -> usize {
    let len = HEADERS + payload.len();
    let Ok(plen) = u16::try_from(payload.len()) else {
        return 0;
    };
    if len > buf.len() {
        return 0;
    }
    buf[0..6].copy_from_slice(&mac);
    buf[6..12].copy_from_slice(&link.mac);
    buf[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // Version 6, traffic class 0, flow label 0 (RFC 6437 §2: zero is
    // "not labelled").
    buf[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    buf[18..20].copy_from_slice(&plen.to_be_bytes());
    buf[20] = IPPROTO_MH;
    buf[21] = link.hop_limit;
    buf[22..38].copy_from_slice(&local.octets());
    buf[38..54].copy_from_slice(&dst.octets());
    buf[HEADERS..len].copy_from_slice(payload);
    len
}

/// The link-layer address frames from `local` to `dst` go to through
/// `ifindex`, if the kernel's tables name one it sends to now, and whether
/// it is STALE. Asked on the resolver's netlink socket (`rtnl`), opened
/// here when there is none; one that failed is dropped (the next look-up
/// opens another).
fn resolve(
    rtnl: &mut Option<netlink::Rtnl>,
    ifindex: u32,
    local: Ipv6Addr,
    dst: Ipv6Addr,
) -> Option<([u8; 6], bool)> {
    let looked = match rtnl {
        Some(r) => Ok(r),
        None => netlink::Rtnl::open().map(|r| rtnl.insert(r)),
    }
    .context("opening a netlink socket")
    .and_then(|r| {
        netlink::route_v6(r, local, dst).and_then(|route| match route {
            Some((oif, gw)) if oif == ifindex => {
                netlink::neighbour_v6(r, ifindex, gw.unwrap_or(dst))
            }
            _ => Ok(None),
        })
    });
    let n = match looked {
        Ok(n) => n?,
        Err(e) => {
            *rtnl = None;
            crate::log_limited!(debug, error = %format!("{e:#}"), "next hop of a MAG not looked up");
            return None;
        }
    };
    if n.state & NUD_USABLE == 0 {
        return None;
    }
    Some((n.mac?, n.state & NUD_STALE != 0))
}

/// Looks the MAGs sent to (or wanted) up again every [`REFRESH`], or at
/// once when one is wanted; ends when the sender is gone.
fn resolve_loop(hops: &Arc<NextHops>, ifindex: u32, local: Ipv6Addr) {
    let mut last_used: HashMap<Ipv6Addr, Instant> = HashMap::new();
    let mut rtnl = None;
    loop {
        let wanted: HashSet<Ipv6Addr> = {
            let Ok(w) = hops.wanted.lock() else { return };
            let Ok((mut w, _)) = hops
                .wake
                .wait_timeout_while(w, REFRESH, |w| w.is_empty() && Arc::strong_count(hops) > 1)
            else {
                return;
            };
            std::mem::take(&mut *w)
        };
        if Arc::strong_count(hops) == 1 {
            return;
        }
        let now = Instant::now();
        if let Ok(known) = hops.known.read() {
            for (a, h) in known.iter() {
                if h.used.swap(false, Ordering::Relaxed) {
                    last_used.insert(*a, now);
                }
            }
        }
        last_used.retain(|_, t| now.duration_since(*t) < FORGET);
        for a in &wanted {
            if last_used.len() < MAX_PEERS || last_used.contains_key(a) {
                last_used.insert(*a, now);
            }
        }
        let fresh: HashMap<Ipv6Addr, Hop> = last_used
            .keys()
            .filter_map(|a| {
                resolve(&mut rtnl, ifindex, local, *a).map(|(mac, stale)| {
                    let hop = Hop {
                        mac,
                        used: AtomicBool::new(false),
                        nudge: AtomicBool::new(stale),
                    };
                    (*a, hop)
                })
            })
            .collect();
        if let Ok(mut k) = hops.known.write() {
            *k = fresh;
        }
        // A MAG still unresolved is wanted again by the next PBA to it:
        // not looked up more often than this.
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmipv6::transport::mobility_header;

    const LINK: SendLink = SendLink {
        ifindex: 2,
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        hop_limit: 64,
        mags: Vec::new(),
    };

    /// What we write is what the receive side (and a MAG's kernel) reads:
    /// the Mobility Header, from us, to the MAG, behind Ethernet to its
    /// link-layer address.
    #[test]
    fn a_frame_reads_back_as_its_mobility_header() {
        let local: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mag: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mh = [59u8, 1, 6, 0, 0xab, 0xcd, 0, 0, 0, 7, 0, 10, 1, 2, 0, 0];
        let mut buf = [0u8; 256];
        let n = frame(&LINK, local, &mut buf, ([2, 0, 0, 0, 0, 2], mag), &mh);
        assert_eq!(n, 14 + 40 + mh.len());
        assert_eq!(&buf[0..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        assert_eq!(buf[21], 64);
        // Read as the MAG would: addressed to it, from us.
        let (src, r) = mobility_header(&buf[..n], &mag).unwrap();
        assert_eq!((src, &buf[r]), (local, &mh[..]));
        // Too large for the frame: nothing written.
        assert_eq!(frame(&LINK, local, &mut buf[..60], ([0; 6], mag), &mh), 0);
    }
}
