//! `recvmmsg(2)` and `sendmmsg(2)` on a datagram socket (UDP or raw): many
//! datagrams per system call. Non-blocking; the caller waits for readiness.
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV4};
use std::os::fd::RawFd;

use crate::agent::batch::{RxBatch, RX_SLOTS};
use crate::agent::{Peer, Transmit};

/// Datagrams per `sendmmsg` (the kernel caps one call at UIO_MAXIOV, 1024).
pub const TX_BATCH: usize = 64;

/// The peer a datagram came from: IPv4 with its port, IPv6 by address (the
/// raw Mobility Header socket has no ports).
fn peer_of(sa: &libc::sockaddr_storage) -> Option<Peer> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(Peer::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(Peer::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// `peer` as a socket address (port 0 for the raw IPv6 socket).
fn sockaddr_of(peer: &Peer) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match peer {
        Peer::V4(s) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let a = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = s.port().to_be();
            a.sin_addr.s_addr = u32::from(*s.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        Peer::V6(ip) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let a = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_addr.s6_addr = ip.octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Reads as many datagrams as `batch` has room for in one `recvmmsg`;
/// returns how many slots were taken (truncated ones and ones from an
/// address of another family are dropped, the former counted). `WouldBlock`
/// when nothing is queued.
pub fn recv_batch(fd: RawFd, batch: &mut RxBatch) -> io::Result<usize> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; RX_SLOTS] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; RX_SLOTS] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; RX_SLOTS] = unsafe { zeroed() };
    let mut n = 0;
    for ((slot, iov), (h, sa)) in batch
        .free_slots()
        .zip(iovs.iter_mut())
        .zip(hdrs.iter_mut().zip(addrs.iter_mut()))
    {
        *iov = libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot.len(),
        };
        h.msg_hdr.msg_name = (sa as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: every header points at a live iovec over a free slot of the
    // batch and at a live sockaddr_storage, all of the lengths given; the
    // slots are not otherwise borrowed until the call returns.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for (h, sa) in hdrs.iter().zip(addrs.iter()).take(got) {
        match peer_of(sa) {
            _ if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 => batch.push_truncated(),
            Some(p) => batch.push(p, h.msg_len as usize),
            // An address of no family we speak: the slot is skipped.
            None => batch.push_truncated(),
        }
    }
    Ok(got)
}

/// Sends the first datagrams of `ts` (at most [`TX_BATCH`]) in one
/// `sendmmsg`; returns how many the kernel took. An error is that of the
/// first datagram (the caller skips it and goes on).
pub fn send_batch(fd: RawFd, ts: &[&Transmit]) -> io::Result<usize> {
    let n = ts.len().min(TX_BATCH);
    // SAFETY: all-zero is valid for these plain C structs.
    let mut addrs: [(libc::sockaddr_storage, libc::socklen_t); TX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; TX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; TX_BATCH] = unsafe { zeroed() };
    for (t, (iov, (h, sa))) in ts[..n]
        .iter()
        .zip(iovs.iter_mut().zip(hdrs.iter_mut().zip(addrs.iter_mut())))
    {
        *sa = sockaddr_of(&t.peer);
        *iov = libc::iovec {
            iov_base: t.payload.as_ptr() as *mut libc::c_void,
            iov_len: t.payload.len(),
        };
        h.msg_hdr.msg_name = (&mut sa.0 as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = sa.1;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: every header points at a live iovec over a payload (the
    // kernel only reads it) and at a live socket address of the length given.
    let sent =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_burst_goes_and_comes_in_two_calls() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(to) = b.local_addr().unwrap() else {
            panic!()
        };
        let std::net::SocketAddr::V4(from) = a.local_addr().unwrap() else {
            panic!()
        };
        let ts: Vec<Transmit> = (0..10u8)
            .map(|i| Transmit::new(Peer::V4(to), vec![i; 1 + usize::from(i)]))
            .collect();
        let refs: Vec<&Transmit> = ts.iter().collect();
        assert_eq!(send_batch(a.as_raw_fd(), &refs).unwrap(), 10);
        // A datagram larger than a slot is dropped and counted.
        a.send_to(&vec![7u8; crate::agent::batch::RX_SLOT_LEN + 1], to)
            .unwrap();
        let mut batch = RxBatch::new();
        assert_eq!(recv_batch(b.as_raw_fd(), &mut batch).unwrap(), 11);
        assert_eq!((batch.len(), batch.truncated), (10, 1));
        for (i, (p, d)) in batch.iter().enumerate() {
            assert_eq!(p, Peer::V4(from));
            assert_eq!(d, &vec![i as u8; 1 + i][..]);
        }
        let e = recv_batch(b.as_raw_fd(), &mut batch).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
