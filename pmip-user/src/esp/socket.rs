//! Raw `IPPROTO_ESP` (50) sockets, one per address family, bound to the
//! agent's signaling address. The kernel writes the outer IPv4/IPv6 header
//! (protocol / next header 50, our bound source address); we send the ESP
//! packet that [`super::SignalingEsp::protect`] built.
//!
//! On receive, a raw IPv4 socket hands over the whole datagram (reassembled,
//! header included) and a raw IPv6 socket only the payload: both come back
//! here as the source address and the ESP packet's place in the buffer.
//! A kernel without an ESP handler (no xfrm) still delivers protocol 50 to
//! raw sockets and sends no ICMP "protocol unreachable" once one took it.
//! On a kernel with xfrm, these sockets would also see what xfrm already
//! handled: use xfrm there instead, or no SA for these addresses.
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

use super::IPPROTO_ESP;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A socket address for `ip` (port 0: raw sockets have none), and its length.
fn sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    match ip {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sa = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        IpAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sa = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = a.octets();
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn ip_of(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sa = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes())))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sa = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Where the ESP packet starts and ends in a raw IPv4 socket's datagram.
pub(crate) fn ipv4_payload(d: &[u8]) -> io::Result<Range<usize>> {
    let bad = |w: &str| io::Error::new(io::ErrorKind::InvalidData, format!("raw IPv4: {w}"));
    let b0 = *d.first().ok_or_else(|| bad("empty"))?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if b0 >> 4 != 4 || ihl < 20 || d.len() < ihl {
        return Err(bad("bad header"));
    }
    let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
    if d[9] != IPPROTO_ESP || total < ihl || total > d.len() {
        return Err(bad("not ESP or bad length"));
    }
    Ok(ihl..total)
}

/// A non-blocking raw ESP socket of one family.
#[derive(Debug)]
pub struct EspSocket {
    fd: OwnedFd,
    v4: bool,
}

impl AsRawFd for EspSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl EspSocket {
    /// Opens a raw ESP socket bound to `local` (needs CAP_NET_RAW).
    pub fn bind(local: IpAddr) -> io::Result<EspSocket> {
        let family = if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = cvt(unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(IPPROTO_ESP),
            )
        })?;
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Signaling comes in bursts (a thousand PBUs after a restart):
        // `signaling.receive_buffer_kib`'s default, which the daemon then
        // sets (`Sockets::with_receive_buffer`); 4 MiB to send.
        crate::sys::socket::grow_receive_buffer(&fd, 16 << 20);
        crate::sys::socket::grow_send_buffer(&fd, 4 << 20);
        let (ss, len) = sockaddr(local);
        // SAFETY: ss holds a valid sockaddr of length len.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        })?;
        Ok(EspSocket {
            fd,
            v4: local.is_ipv4(),
        })
    }

    /// Sends one ESP packet to `dst` (`WouldBlock` when the buffer is full).
    pub fn send_to(&self, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        if dst.is_ipv4() != self.v4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "destination of the other address family",
            ));
        }
        let (ss, len) = sockaddr(dst);
        // SAFETY: packet and ss are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one packet: its source and where the ESP packet lies in `buf`
    /// (`WouldBlock` when there is none).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(IpAddr, Range<usize>)> {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buf and ss are valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let src = ip_of(&ss)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
        let range = if self.v4 {
            ipv4_payload(&buf[..n])?
        } else {
            0..n
        };
        Ok((src, range))
    }
}

/// [`EspSocket`] for tokio.
#[derive(Debug)]
pub struct AsyncEspSocket {
    inner: AsyncFd<EspSocket>,
}

impl AsRawFd for AsyncEspSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

impl AsyncEspSocket {
    /// Must be called inside a tokio runtime.
    pub fn bind(local: IpAddr) -> io::Result<AsyncEspSocket> {
        let s = EspSocket::bind(local)?;
        // SAFETY: the EspSocket owns its descriptor and keeps it open until
        // it is dropped, which happens only with the AsyncFd.
        let inner = unsafe { AsyncFd::register(s) }.map_err(|e| e.into_parts().1)?;
        Ok(AsyncEspSocket { inner })
    }

    pub async fn send_to(&self, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        loop {
            let mut g = self.inner.writable().await?;
            match g.try_io(|s| s.get_ref().send_to(dst, packet)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(IpAddr, Range<usize>)> {
        loop {
            let mut g = self.inner.readable().await?;
            match g.try_io(|s| s.get_ref().recv_from(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// The socket for tokio, for batched reads and writes (`sys/mmsg.rs`).
    pub(crate) fn fd(&self) -> &AsyncFd<EspSocket> {
        &self.inner
    }

    /// Whether this is the raw IPv4 socket (its datagrams carry the IP header).
    pub(crate) fn is_v4(&self) -> bool {
        self.inner.get_ref().v4
    }

    /// Non-blocking receive, to drain a burst after a wake-up.
    pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(IpAddr, Range<usize>)> {
        self.inner.get_ref().recv_from(buf)
    }

    /// Waits until a packet may be there: read it with the guard's `try_io`
    /// (so that a caller can wait on several sockets and read into one buffer).
    pub async fn readable(&self) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, EspSocket>> {
        self.inner.readable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (no options, TTL 64) in front of `payload`.
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
        crate::pcap::ipv4(src, dst, proto, 64, false, payload)
    }

    #[test]
    fn ipv4_header_is_skipped() {
        let mut d = ipv4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            IPPROTO_ESP,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        assert_eq!(ipv4_payload(&d).unwrap(), 20..28);
        // Bytes past the total length are not part of the packet.
        d.extend_from_slice(&[0; 4]);
        assert_eq!(ipv4_payload(&d).unwrap(), 20..28);
    }

    #[test]
    fn bad_ipv4_headers_are_errors_not_panics() {
        let good = ipv4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            IPPROTO_ESP,
            &[0; 8],
        );
        for n in 0..good.len() {
            assert!(ipv4_payload(&good[..n]).is_err(), "{n}");
        }
        let mut udp = good.clone();
        udp[9] = 17;
        assert!(ipv4_payload(&udp).is_err());
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert!(ipv4_payload(&v6).is_err());
        let mut ihl = good;
        ihl[0] = 0x4f;
        assert!(ipv4_payload(&ihl).is_err());
    }

    #[test]
    fn sockaddr_round_trip() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            IpAddr::V6("2001:db8::7".parse().unwrap()),
        ] {
            assert_eq!(ip_of(&sockaddr(ip).0), Some(ip));
        }
    }
}
