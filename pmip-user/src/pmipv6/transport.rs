//! The PMIPv6 signaling transport the agent's shell drives a MAG or an LMA
//! over. Two sockets, chosen per peer by its address family (RFC 5844 §4):
//! - IPv6: a raw `IPPROTO_MH` (135) socket. Linux computes the Mobility
//!   Header checksum on send and verifies it on receive for this protocol
//!   (net/ipv6/raw.c sets the checksum offset 4 by default), silently
//!   dropping bad ones. We compute it ourselves too (the kernel subtracts
//!   whatever is in the field before recomputing, so both agree);
//!   [`Sockets::bind`] with `kernel_checksum = false` turns the kernel's
//!   handling off (`IPV6_CHECKSUM = -1`) so our checksum goes out untouched
//!   and is verified by the state machine — a test of our own code.
//! - IPv4: UDP port 5436, IPv4 | UDP | Mobility Header, MH checksum zero;
//!   replies go to the request's source port (RFC 5844 §4.1).
use std::future::Future;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

use super::wire::IPPROTO_MH;
use super::LocalAddrs;
use crate::agent::{Peer, Transmit, Transport};

/// The signaling sockets of one agent.
pub struct Sockets {
    v6: Option<AsyncFd<OwnedFd>>,
    v4: Option<UdpSocket>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr_in6(a: Ipv6Addr) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = a.octets();
    sa
}

fn raw_mh_socket(local: Ipv6Addr, kernel_checksum: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(IPPROTO_MH),
        )
    })?;
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !kernel_checksum {
        let off: libc::c_int = -1;
        // SAFETY: valid fd, pointer and length of a c_int.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_CHECKSUM,
                (&off as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    grow_buffers(&fd);
    // Bound to our address: the kernel uses it as the source, and we only
    // receive what is addressed to it (the checksum's pseudo-header agrees).
    let sa = sockaddr_in6(local);
    // SAFETY: sa is a valid sockaddr_in6 of the given length.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Signaling comes in bursts (a thousand PBUs after an LMA restart): ask
/// for 4 MiB socket buffers, past `rmem_max` when we have CAP_NET_ADMIN.
fn grow_buffers(fd: &impl AsRawFd) {
    crate::sys::socket::grow_receive_buffer(fd, 4 << 20);
    crate::sys::socket::grow_send_buffer(fd, 4 << 20);
}

impl Sockets {
    /// Opens the raw MH socket if `local.v6` is set and the UDP socket on
    /// `udp_port` if `local.v4` is set.
    pub fn bind(local: &LocalAddrs, udp_port: u16, kernel_checksum: bool) -> io::Result<Sockets> {
        let v6 = match local.v6 {
            Some(a) => {
                let fd = raw_mh_socket(a, kernel_checksum)?;
                // SAFETY: an OwnedFd keeps the same open descriptor until dropped.
                Some(unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?)
            }
            None => None,
        };
        let v4 = match local.v4 {
            Some(a) => {
                let std = std::net::UdpSocket::bind(SocketAddrV4::new(a, udp_port))?;
                std.set_nonblocking(true)?;
                grow_buffers(&std);
                Some(UdpSocket::from_std(std)?)
            }
            None => None,
        };
        Ok(Sockets { v6, v4 })
    }

    /// Local address of the UDP socket (its port when bound to 0).
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        self.v4.as_ref().and_then(|s| s.local_addr().ok())
    }

    fn try_recv_v6(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
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
        Ok((Peer::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)), n as usize))
    }

    /// Receives one Mobility Header from either socket: waits until one
    /// is readable, then reads into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        loop {
            tokio::select! {
                r = Self::readable_v6(&self.v6) => {
                    let mut g = r?;
                    if let Ok(r) = g.try_io(|fd| Self::try_recv_v6(fd.get_ref(), buf)) {
                        return r;
                    }
                }
                r = Self::readable_v4(&self.v4) => {
                    r?;
                    match self.v4.as_ref().map(|s| s.try_recv_from(buf)) {
                        Some(Ok((n, SocketAddr::V4(a)))) => return Ok((Peer::V4(a), n)),
                        Some(Ok(_)) => {}
                        Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Some(Err(e)) => return Err(e),
                        None => {}
                    }
                }
            }
        }
    }

    async fn readable_v6(
        fd: &Option<AsyncFd<OwnedFd>>,
    ) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>> {
        match fd {
            Some(fd) => fd.readable().await,
            None => std::future::pending().await,
        }
    }

    async fn readable_v4(s: &Option<UdpSocket>) -> io::Result<()> {
        match s {
            Some(s) => s.readable().await,
            None => std::future::pending().await,
        }
    }

    /// Non-blocking receive on either socket (to drain a burst after a wake-up).
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        if let Some(fd) = &self.v6 {
            match Self::try_recv_v6(fd.get_ref(), buf) {
                Ok(r) => return Some(r),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
        }
        if let Some(s) = &self.v4 {
            if let Ok((n, SocketAddr::V4(a))) = s.try_recv_from(buf) {
                return Some((Peer::V4(a), n));
            }
        }
        None
    }

    /// Sends one Mobility Header to its peer, waiting for socket space.
    pub async fn send(&self, t: &Transmit) -> io::Result<()> {
        match t.peer {
            Peer::V6(dst) => {
                let fd = self
                    .v6
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no IPv6 signaling socket"))?;
                let sa = sockaddr_in6(dst);
                loop {
                    let mut g = fd.writable().await?;
                    let r = g.try_io(|fd| {
                        // SAFETY: payload and sa are valid for the lengths passed.
                        let n = unsafe {
                            libc::sendto(
                                fd.as_raw_fd(),
                                t.payload.as_ptr().cast(),
                                t.payload.len(),
                                0,
                                (&sa as *const libc::sockaddr_in6).cast(),
                                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                            )
                        };
                        if n < 0 {
                            Err(io::Error::last_os_error())
                        } else {
                            Ok(())
                        }
                    });
                    match r {
                        Ok(r) => return r,
                        Err(_would_block) => continue,
                    }
                }
            }
            Peer::V4(dst) => {
                let s = self
                    .v4
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no IPv4 signaling socket"))?;
                s.send_to(&t.payload, dst).await.map(|_| ())
            }
        }
    }
}

impl Transport for Sockets {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Peer, usize)>> + Send + 'a {
        Sockets::recv(self, buf)
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        Sockets::try_recv(self, buf)
    }
    fn send<'a>(&'a self, t: &'a Transmit) -> impl Future<Output = io::Result<()>> + Send + 'a {
        Sockets::send(self, t)
    }
}
