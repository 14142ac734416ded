//! Tokio shell around [`RaEngine`] and (optionally) [`Dhcp6Server`] on one
//! real access interface: the IPv6 control plane of the access link.
//!
//! One AF_PACKET socket (ETH_P_IPV6) bound to the interface, with a classic
//! BPF filter so that only Router/Neighbor Solicitations, Neighbor
//! Advertisements and UDP to port 547 are copied up (the subscribers' data
//! never is). Everything is sent as whole Ethernet frames from the configured
//! router MAC and link-local address, which the kernel need not own: every
//! MAG of a domain uses the same ones (RFC 5213 §6.9.3).
//!
//! Limits the glue must know: frames arrive untagged (the socket sits on the
//! interface the engine serves; a VLAN sub-interface per VLAN); the interface
//! should carry the router MAC as its address, or the NIC may filter unicast
//! frames to it (membership is requested, but not every driver honours it).
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Result};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::dhcp6::{self, Binding6, Dhcp6Server, Dhcp6ServerConfig, Dhcp6Stats, Peer};
use super::frame6::{self, Addrs, Upper, ALL_DHCP_SERVERS, ALL_ROUTERS};
use super::ra::{self, Advertisement, RaConfig, RaEngine, RaStats};
use crate::sys::interface_info;

/// What the registration side tells the IPv6 access link.
#[derive(Clone, Debug)]
pub enum NdCmd {
    /// The registration succeeded or was refreshed: advertise (RA at once).
    Advertise {
        mac: [u8; 6],
        adv: Advertisement,
    },
    /// The binding ended here: final RA with lifetimes 0.
    Withdraw {
        mac: [u8; 6],
    },
    /// The binding moved away or failed: forget silently.
    Forget {
        mac: [u8; 6],
    },
    /// Another sign of life (uplink data), with the node's address if known.
    Seen {
        mac: [u8; 6],
        addr: Option<Ipv6Addr>,
    },
    /// Is the node still on the link? Answered with a presence event.
    Check {
        mac: [u8; 6],
    },
    Dhcp6BindingReady {
        mac: [u8; 6],
        binding: Binding6,
    },
    Dhcp6BindingFailed {
        mac: [u8; 6],
    },
    Dhcp6BindingGone {
        mac: [u8; 6],
    },
}

/// What the IPv6 access link tells the registration side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdEvent {
    Nd(ra::Event),
    Dhcp6(dhcp6::Event),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NdShellStats {
    pub ra: RaStats,
    pub dhcp6: Dhcp6Stats,
    /// Frames that failed to go out (socket errors).
    pub tx_errors: u64,
}

const ETH_P_IPV6: u16 = 0x86DD;
const PACKET_OUTGOING: u8 = 4;
/// `tpacket_auxdata.tp_status` bit: the checksum is left to offload.
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

/// Classic BPF: IPv6 (no extension header) carrying ICMPv6 133/135/136 or
/// UDP to port 547; everything else stays in the kernel.
fn control_filter() -> [libc::sock_filter; 13] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDH: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LDB: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    [
        op(LDH, 0, 0, 12),                     // 0: ethertype
        op(JEQ, 0, 10, u32::from(ETH_P_IPV6)), // 1: → 2, else drop
        op(LDB, 0, 0, 20),                     // 2: next header
        op(JEQ, 1, 0, 58),                     // 3: ICMPv6 → 5
        op(JEQ, 4, 7, 17),                     // 4: UDP → 9, else drop
        op(LDB, 0, 0, 54),                     // 5: ICMPv6 type
        op(JEQ, 4, 0, 133),                    // 6: RS → accept
        op(JEQ, 3, 0, 135),                    // 7: NS → accept
        op(JEQ, 2, 3, 136),                    // 8: NA → accept, else drop
        op(LDH, 0, 0, 56),                     // 9: UDP destination port
        op(JEQ, 0, 1, 547),                    // 10: DHCPv6 server → accept, else drop
        op(RET, 0, 0, 0xffff),                 // 11: accept
        op(RET, 0, 0, 0),                      // 12: drop
    ]
}

fn check(rc: libc::c_int, what: &str) -> Result<()> {
    if rc < 0 {
        bail!("{what}: {}", io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt` with a plain-old-data value.
fn setsockopt<T>(fd: i32, level: i32, opt: i32, v: &T, what: &str) -> Result<()> {
    // SAFETY: passes a pointer to a live T and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    check(rc, what)
}

/// The filtered AF_PACKET socket on `ifindex`, non-blocking, receiving the
/// multicast groups and the router MAC the engine answers on.
fn control_socket(ifindex: u32, macs: &[[u8; 6]], router_mac: [u8; 6]) -> Result<OwnedFd> {
    // Filter before bind, so nothing unfiltered queues up in between.
    let filter = |fd: &OwnedFd| {
        let mut prog = control_filter();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
            "SO_ATTACH_FILTER",
        )
    };
    let fd = crate::sys::socket::packet_socket_with(ifindex, ETH_P_IPV6, filter)?;
    let raw = fd.as_raw_fd();
    // Per-frame metadata, to learn which frames still lack their checksum.
    setsockopt(
        raw,
        libc::SOL_PACKET,
        libc::PACKET_AUXDATA,
        &1i32,
        "PACKET_AUXDATA",
    )?;
    let member = |kind: u16, mac: &[u8; 6]| {
        // SAFETY: packet_mreq is plain old data.
        let mut m: libc::packet_mreq = unsafe { std::mem::zeroed() };
        m.mr_ifindex = ifindex as i32;
        m.mr_type = kind;
        m.mr_alen = 6;
        m.mr_address[..6].copy_from_slice(mac);
        m
    };
    for mac in macs {
        let m = member(libc::PACKET_MR_MULTICAST as u16, mac);
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &m,
            "multicast membership",
        )?;
    }
    let m = member(libc::PACKET_MR_UNICAST as u16, &router_mac);
    if let Err(e) = setsockopt(
        raw,
        libc::SOL_PACKET,
        libc::PACKET_ADD_MEMBERSHIP,
        &m,
        "unicast",
    ) {
        tracing::debug!("router MAC as a secondary unicast address: {e}");
    }
    Ok(fd)
}

/// Whether the PACKET_AUXDATA control message of `mh` says the frame's
/// checksum was left to offload.
fn csum_not_ready(mh: &libc::msghdr) -> bool {
    // SAFETY: walks the control messages recvmsg wrote into `mh`'s buffer
    // with the kernel's own CMSG macros; the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::tpacket_auxdata);
                return aux.tp_status & TP_STATUS_CSUMNOTREADY != 0;
            }
            c = libc::CMSG_NXTHDR(mh, c);
        }
    }
    false
}

/// The IPv6 control plane of one access interface with its socket.
pub struct NdShell {
    engine: RaEngine,
    dhcp6: Option<Dhcp6Server>,
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
    stats: Arc<Mutex<NdShellStats>>,
    tx_errors: u64,
}

impl NdShell {
    /// Opens the socket on `ifname` (caller's namespace); `ifindex` in both
    /// configurations is overwritten with the interface's. Needs a tokio runtime.
    pub fn open(ifname: &str, mut cfg: RaConfig, dhcp6: Option<Dhcp6ServerConfig>) -> Result<Self> {
        let (ifindex, _) = interface_info(ifname)?;
        cfg.ifindex = ifindex;
        let mut groups = vec![ALL_ROUTERS, frame6::solicited_node(cfg.router_ll)];
        groups.extend(cfg.addresses.iter().map(|a| frame6::solicited_node(*a)));
        if dhcp6.is_some() {
            groups.push(ALL_DHCP_SERVERS);
        }
        let macs: Vec<[u8; 6]> = groups.into_iter().map(frame6::multicast_mac).collect();
        let sock = control_socket(ifindex, &macs, cfg.router_mac)?;
        // SAFETY: the OwnedFd is moved in and stays registered only while owned here.
        let fd = unsafe { AsyncFd::register(sock) }
            .map_err(|e| anyhow::anyhow!("registering the socket: {e}"))?;
        Ok(NdShell {
            engine: RaEngine::new(cfg),
            dhcp6: dhcp6.map(|mut c| {
                c.ifindex = ifindex;
                Dhcp6Server::new(c)
            }),
            fd,
            ifindex,
            stats: Default::default(),
            tx_errors: 0,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// A handle to the counters, updated after every input.
    pub fn stats(&self) -> Arc<Mutex<NdShellStats>> {
        self.stats.clone()
    }

    fn send(&mut self, frame: &[u8]) {
        let fd = std::os::fd::AsFd::as_fd(self.fd.get_ref());
        if let Err(e) = crate::sys::socket::send_frame(fd, self.ifindex, frame) {
            self.tx_errors += 1;
            tracing::warn!("IPv6 control frame: {e}");
        }
    }

    /// One received frame: DHCPv6 to the server, the rest to the engine.
    fn dispatch(&mut self, now: Instant, frame: &[u8]) {
        if let (Some(server), Ok(f)) = (self.dhcp6.as_mut(), frame6::parse_frame(frame)) {
            if let Upper::Udp {
                dst_port: dhcp6::SERVER_PORT,
                payload,
                ..
            } = f.upper
            {
                let from = Peer {
                    mac: f.src_mac,
                    addr: f.src,
                };
                if let Err(e) = server.handle(now, from, payload) {
                    tracing::debug!(?e, "DHCPv6 message dropped");
                }
                // Life, and the node's link-local address for NUD probes.
                self.engine.seen(now, f.src_mac, Some(f.src));
                return;
            }
        }
        if let Err(e) = self.engine.handle(now, frame) {
            tracing::debug!(%e, "ND frame dropped");
        }
    }

    fn command(&mut self, now: Instant, c: NdCmd) {
        match c {
            NdCmd::Advertise { mac, adv } => self.engine.advertise(now, mac, adv),
            NdCmd::Withdraw { mac } => self.engine.withdraw(now, mac),
            NdCmd::Forget { mac } => self.engine.forget(&mac),
            NdCmd::Seen { mac, addr } => self.engine.seen(now, mac, addr),
            NdCmd::Check { mac } => self.engine.check(now, mac),
            NdCmd::Dhcp6BindingReady { mac, binding } => {
                if let Some(s) = self.dhcp6.as_mut() {
                    s.binding_ready(now, mac, binding);
                }
            }
            NdCmd::Dhcp6BindingFailed { mac } => {
                if let Some(s) = self.dhcp6.as_mut() {
                    s.binding_failed(mac);
                }
            }
            NdCmd::Dhcp6BindingGone { mac } => {
                if let Some(s) = self.dhcp6.as_mut() {
                    s.binding_gone(mac);
                }
            }
        }
    }

    /// Copies the counters into the shared `show stats` snapshot.
    fn publish(&self) {
        if let Ok(mut st) = self.stats.lock() {
            st.ra = self.engine.stats;
            st.dhcp6 = self.dhcp6.as_ref().map(|s| s.stats).unwrap_or_default();
            st.tx_errors = self.tx_errors;
        }
    }

    fn flush(&mut self, events: &mpsc::UnboundedSender<NdEvent>) {
        // The counters before the replies go out, as the DHCPv4 shell does:
        // whoever sees a reply finds it counted; again at the end for the
        // send errors.
        self.publish();
        while let Some(f) = self.engine.poll_transmit() {
            self.send(&f);
        }
        let cfg = self.engine.config().clone();
        let mut out = Vec::new();
        if let Some(s) = self.dhcp6.as_mut() {
            while let Some(t) = s.poll_transmit() {
                let addrs = Addrs {
                    src_mac: cfg.router_mac,
                    dst_mac: t.to.mac,
                    vlan: cfg.vlan,
                    src: cfg.router_ll,
                    dst: t.to.addr,
                    hop_limit: 64,
                };
                let udp = Upper::Udp {
                    src_port: dhcp6::SERVER_PORT,
                    dst_port: dhcp6::CLIENT_PORT,
                    payload: &t.payload,
                };
                out.push(frame6::emit_frame(&addrs, udp));
            }
            while let Some(e) = s.poll_event() {
                tracing::debug!(?e, "dhcpv6 event");
                let _ = events.send(NdEvent::Dhcp6(e));
            }
        }
        for f in out {
            self.send(&f);
        }
        while let Some(e) = self.engine.poll_event() {
            tracing::debug!(?e, "nd event");
            let _ = events.send(NdEvent::Nd(e));
        }
        self.publish();
    }

    /// Reads one frame; `None` when the socket has nothing more. A frame
    /// whose checksum was left to offload gets it filled in here.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        // Room for one tpacket_auxdata control message, 8-byte aligned.
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain old data.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_name = &mut sll as *mut _ as *mut libc::c_void;
        mh.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        mh.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: every pointer in `mh` refers to a live buffer of the stated size.
        let n = unsafe { libc::recvmsg(self.fd.get_ref().as_raw_fd(), &mut mh, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // Our own transmissions come back as PACKET_OUTGOING: not input.
        if sll.sll_pkttype == PACKET_OUTGOING {
            return Ok(Some(0));
        }
        let n = n as usize;
        if csum_not_ready(&mh) {
            frame6::fill_offloaded_checksum(&mut buf[..n]);
        }
        Ok(Some(n))
    }

    /// Runs until `cmds` closes; events go to `events`.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<NdCmd>,
        events: mpsc::UnboundedSender<NdEvent>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 2048];
        self.flush(&events);
        loop {
            let deadline = [
                self.engine.poll_timeout(),
                self.dhcp6.as_ref().and_then(|s| s.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = crate::sys::sleep_until(deadline);
            tokio::select! {
                g = self.fd.readable() => {
                    let mut g = g?;
                    // Read what is queued (bounded), then handle it: the
                    // guard borrows the socket, handling needs all of self.
                    let mut frames = Vec::new();
                    while frames.len() < 64 {
                        match self.recv(&mut buf) {
                            Ok(Some(0)) => continue,
                            Ok(Some(n)) => frames.push(buf[..n].to_vec()),
                            Ok(None) => {
                                g.clear_ready();
                                break;
                            }
                            Err(e) => {
                                tracing::warn!("IPv6 control socket: {e}");
                                break;
                            }
                        }
                    }
                    drop(g);
                    let now = Instant::now();
                    for f in frames {
                        self.dispatch(now, &f);
                    }
                }
                c = cmds.recv() => match c {
                    None => return Ok(()),
                    Some(c) => self.command(Instant::now(), c),
                },
                _ = sleep => {
                    let now = Instant::now();
                    self.engine.handle_timeout(now);
                    if let Some(s) = self.dhcp6.as_mut() {
                        s.handle_timeout(now);
                    }
                }
            }
            self.flush(&events);
        }
    }
}
