//! Sockets the agent opens itself, below the protocol: a UDP socket bound to
//! one device, AF_PACKET sockets for whole Ethernet frames and for ARP, and
//! larger socket buffers.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

fn setsockopt_int(fd: i32, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The receive buffer the kernel gives `socket` (`SO_RCVBUF`: twice what was
/// asked for, its own overhead included).
pub fn receive_buffer(socket: &impl AsRawFd) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a pointer to a live i32 and its size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// Datagrams the kernel dropped at `socket` rather than queue them for us,
/// most of them because its receive buffer was full (`SO_MEMINFO`'s
/// `SK_MEMINFO_DROPS`; Linux 4.16 and later, else `None`).
pub fn socket_drops(socket: &impl AsRawFd) -> Option<u64> {
    /// `SO_MEMINFO` (asm-generic/socket.h) and the index of
    /// `SK_MEMINFO_DROPS` in what it returns (linux/sock_diag.h).
    const SO_MEMINFO: i32 = 55;
    const DROPS: usize = 8;
    let mut v = [0u32; 16];
    let mut len = std::mem::size_of_val(&v) as libc::socklen_t;
    // SAFETY: a pointer to a live array and its size; the kernel writes at
    // most `len` bytes and says how many.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            v.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let n = len as usize / std::mem::size_of::<u32>();
    (rc == 0 && n > DROPS).then(|| u64::from(v[DROPS]))
}

/// UDP 0.0.0.0:`port`, bound to `ifname`, broadcast allowed, non-blocking.
pub(crate) fn udp_on_device(ifname: &str, port: u16) -> Result<std::net::UdpSocket> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        bail!("socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fresh valid descriptor, owned from here.
    let sock = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).context("SO_REUSEADDR")?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1).context("SO_BROADCAST")?;
    let name = CString::new(ifname)?;
    // SAFETY: pointer and length of a NUL-terminated interface name.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.as_bytes_with_nul().len() as u32,
        )
    };
    if rc < 0 {
        bail!("SO_BINDTODEVICE {ifname}: {}", io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc < 0 {
        bail!(
            "bind 0.0.0.0:{port} on {ifname}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(sock)
}

/// Sends the whole Ethernet frame `frame` out of interface `ifindex` on the
/// AF_PACKET socket `fd` (to the frame's destination MAC).
pub(crate) fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0; 6]));
    // SAFETY: valid buffer and sockaddr_ll with their lengths.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One datagram from the IPv6 (raw or datagram) socket `fd` into `buf`:
/// its length and the sender's address.
pub fn recv_from_v6(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(std::net::Ipv6Addr, usize)> {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: buf and sa are valid for the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut sa as *mut libc::sockaddr_in6).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((sa.sin6_addr.s6_addr.into(), n as usize))
}

/// A send-only AF_PACKET socket for whole Ethernet frames on one interface
/// (protocol 0: it receives nothing).
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    pub fn open(ifindex: u32) -> Result<Self> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", io::Error::last_os_error());
        }
        // SAFETY: fresh valid descriptor.
        Ok(RawSender {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_frame(self.fd.as_fd(), self.ifindex, frame)
    }
}

/// AF_PACKET socket for ARP (ETH_P_ARP) bound to one interface, non-blocking.
pub(crate) fn arp_socket(ifindex: u32) -> Result<OwnedFd> {
    packet_socket(ifindex, libc::ETH_P_ARP as u16)
}

/// AF_PACKET socket for the frames of `ethertype` (`ETH_P_ALL`: every
/// frame) bound to one interface, non-blocking.
pub fn packet_socket(ifindex: u32, ethertype: u16) -> Result<OwnedFd> {
    packet_socket_with(ifindex, ethertype, |_| Ok(()))
}

/// [`packet_socket`], with `before_bind` run on the socket before it is
/// bound (a filter attached then lets nothing unfiltered queue up).
pub(crate) fn packet_socket_with(
    ifindex: u32,
    ethertype: u16,
    before_bind: impl FnOnce(&OwnedFd) -> Result<()>,
) -> Result<OwnedFd> {
    let proto = ethertype.to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        bail!(
            "AF_PACKET socket ({ethertype:#06x}): {}",
            io::Error::last_os_error()
        );
    }
    // SAFETY: fresh valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    before_bind(&fd)?;
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: valid sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        bail!(
            "bind AF_PACKET to ifindex {ifindex}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(fd)
}

/// A burst of registrations (thousands of attaches at once) overflows the default socket
/// buffer and costs a retransmission timeout; ask for more (FORCE works as root).
pub fn grow_receive_buffer(socket: &impl AsRawFd, bytes: i32) {
    grow_buffer(socket, [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF], bytes);
}

/// The same for the send buffer (a burst of replies).
pub(crate) fn grow_send_buffer(socket: &impl AsRawFd, bytes: i32) {
    grow_buffer(socket, [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF], bytes);
}

/// Sets the first of `opts` the kernel accepts; when none is, the socket
/// keeps its default size.
fn grow_buffer(socket: &impl AsRawFd, opts: [i32; 2], bytes: i32) {
    for opt in opts {
        if setsockopt_int(socket.as_raw_fd(), libc::SOL_SOCKET, opt, bytes).is_ok() {
            return;
        }
    }
}
