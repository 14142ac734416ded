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

/// `UDP_SEGMENT` (linux/udp.h) at level `SOL_UDP`: the datagrams of one
/// `msghdr` are segments of `gso_size` bytes (the last may be shorter).
const UDP_SEGMENT: libc::c_int = 103;
/// The kernel's cap on the segments of one GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;
/// Payload bytes of one GSO send: an IPv4 datagram's 65 535 less its IPv4
/// and UDP headers.
const GSO_MAX_BYTES: usize = 65_535 - 20 - 8;
/// Datagrams (iovecs) per [`send_batch_gso`] call.
pub const GSO_TX_BATCH: usize = 256;

/// How many of the datagrams `ts` starts with go as one GSO send: the
/// same peer and the same length, and then one shorter one to that peer
/// (the kernel cuts the payload into `gso_size` pieces, so only the last
/// may be shorter), at most [`GSO_MAX_SEGMENTS`] and [`GSO_MAX_BYTES`].
pub(crate) fn gso_group(ts: &[&Transmit]) -> usize {
    let Some(first) = ts.first() else {
        return 0;
    };
    let size = first.payload.len();
    let (mut n, mut bytes) = (1, size);
    for t in &ts[1..] {
        let len = t.payload.len();
        if n == GSO_MAX_SEGMENTS
            || t.peer != first.peer
            || len > size
            || bytes + len > GSO_MAX_BYTES
        {
            break;
        }
        n += 1;
        bytes += len;
        if len < size {
            break;
        }
    }
    n
}

/// A control buffer holding one `UDP_SEGMENT` message (u64s: cmsghdr's alignment).
type GsoCmsg = [u64; 3];

/// Fills `ctl` with a `UDP_SEGMENT` of `size` and points `h` at it.
fn set_gso(h: &mut libc::msghdr, ctl: &mut GsoCmsg, size: u16) {
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= size_of::<GsoCmsg>());
    h.msg_control = ctl.as_mut_ptr().cast();
    h.msg_controllen = space as _;
    // SAFETY: h's control buffer is `space` bytes, room for one cmsghdr and
    // a u16; CMSG_FIRSTHDR is then non-null and CMSG_DATA points inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(h);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
}

/// [`send_batch`] with UDP generic segmentation offload: the runs of
/// datagrams to one peer ([`gso_group`]) go as one GSO send each, one skb
/// through the stack for the whole run (a real NIC or the kernel cuts it
/// into the same datagrams as before; a local socket without `UDP_GRO`
/// receives them one by one). Takes at most [`GSO_TX_BATCH`] datagrams;
/// returns how many the kernel took. On error: the error of the first
/// send and how many datagrams it held (the caller skips them, or sends
/// them again without GSO when the kernel refuses GSO on this path: EIO
/// without checksum offload or with IPsec, EINVAL).
pub fn send_batch_gso(fd: RawFd, ts: &[&Transmit]) -> Result<usize, (io::Error, usize)> {
    let ts = &ts[..ts.len().min(GSO_TX_BATCH)];
    // SAFETY: all-zero is valid for these plain C structs.
    let mut addrs: [(libc::sockaddr_storage, libc::socklen_t); TX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; GSO_TX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; TX_BATCH] = unsafe { zeroed() };
    let mut ctls = [[0u64; 3]; TX_BATCH];
    // First the runs and their iovecs, then the headers that point at
    // them (no pointer into `iovs` is taken while it is still written).
    let mut groups = [0usize; TX_BATCH];
    let (mut at, mut n) = (0, 0);
    while at < ts.len() && n < TX_BATCH {
        let g = gso_group(&ts[at..]);
        for (iov, t) in iovs[at..at + g].iter_mut().zip(&ts[at..at + g]) {
            *iov = libc::iovec {
                iov_base: t.payload.as_ptr() as *mut libc::c_void,
                iov_len: t.payload.len(),
            };
        }
        groups[n] = g;
        at += g;
        n += 1;
    }
    let mut iov = iovs.as_mut_ptr();
    let mut at = 0;
    for (((h, sa), ctl), &g) in hdrs
        .iter_mut()
        .zip(addrs.iter_mut())
        .zip(ctls.iter_mut())
        .zip(&groups[..n])
    {
        let h = &mut h.msg_hdr;
        *sa = sockaddr_of(&ts[at].peer);
        h.msg_name = (&mut sa.0 as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = sa.1;
        h.msg_iov = iov;
        h.msg_iovlen = g as _;
        if g > 1 {
            set_gso(h, ctl, ts[at].payload.len() as u16);
        }
        // SAFETY: the runs cover `ts`, at most GSO_TX_BATCH iovecs: `iov`
        // stays within `iovs` (or one past its end after the last run).
        iov = unsafe { iov.add(g) };
        at += g;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: every header points at live iovecs over payloads (the kernel
    // only reads them), at a live socket address of the length given and,
    // for a GSO send, at a live control buffer of the length given.
    let sent =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err((io::Error::last_os_error(), groups[0]));
    }
    Ok(groups[..sent as usize].iter().sum())
}

/// `UDP_GRO` (linux/udp.h) at level `SOL_UDP`: a run of datagrams of one
/// flow (a GSO send, or what GRO merged) is read as one, the size of each
/// datagram in a control message of the same type.
const UDP_GRO: libc::c_int = 104;

/// Turns `UDP_GRO` on for the UDP socket `fd`.
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid pointer and length of a c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What one read of a `UDP_GRO` socket got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroRead {
    /// `None`: an address of no family we speak.
    pub peer: Option<Peer>,
    /// Bytes read.
    pub len: usize,
    /// Size of each datagram the bytes hold (the last may be shorter);
    /// `None`: one datagram.
    pub segment: Option<usize>,
    /// Longer than the buffer: the bytes are cut.
    pub truncated: bool,
}

/// One non-blocking `recvmsg` on a `UDP_GRO` socket into `buf` (64 KiB
/// holds any run: an IPv4 datagram's limit). `WouldBlock` when nothing is queued.
pub fn recv_gro(fd: RawFd, buf: &mut [u8]) -> io::Result<GroRead> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
    let mut ctl = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut h: libc::msghdr = unsafe { zeroed() };
    h.msg_name = (&mut sa as *mut libc::sockaddr_storage).cast();
    h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = ctl.as_mut_ptr().cast();
    h.msg_controllen = size_of::<[u64; 4]>() as _;
    // SAFETY: h points at live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut h, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut segment = None;
    // SAFETY: the kernel filled h's control buffer; the CMSG macros stay
    // within msg_controllen, and a UDP_GRO message carries a c_int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                segment = usize::try_from(size).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(&h, c);
        }
    }
    Ok(GroRead {
        peer: peer_of(&sa),
        len: n as usize,
        segment,
        truncated: h.msg_flags & libc::MSG_TRUNC != 0,
    })
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

    fn to(port: u16) -> Peer {
        Peer::V4(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn gso_groups_runs_to_one_peer_of_one_size_and_a_shorter_last() {
        let ts: Vec<Transmit> = [
            (1, 90),
            (1, 90),
            (1, 90),
            (1, 80),
            (1, 80),
            (2, 80),
            (2, 81),
            (2, 50),
        ]
        .iter()
        .map(|&(p, len)| Transmit::new(to(p), vec![0; len]))
        .collect();
        let refs: Vec<&Transmit> = ts.iter().collect();
        let mut at = 0;
        let mut got = Vec::new();
        while at < refs.len() {
            let g = gso_group(&refs[at..]);
            got.push(g);
            at += g;
        }
        // 90,90,90,80 | 80 (next peer) | 80 (81 is longer) | 81,50
        assert_eq!(got, vec![4, 1, 1, 2]);
        // The kernel's caps: 64 segments, and the bytes of one IPv4 datagram.
        let many: Vec<Transmit> = (0..100)
            .map(|_| Transmit::new(to(1), vec![0; 100]))
            .collect();
        let refs: Vec<&Transmit> = many.iter().collect();
        assert_eq!(gso_group(&refs), GSO_MAX_SEGMENTS);
        let big: Vec<Transmit> = (0..10)
            .map(|_| Transmit::new(to(1), vec![0; 20_000]))
            .collect();
        let refs: Vec<&Transmit> = big.iter().collect();
        assert_eq!(gso_group(&refs), 3);
        assert_eq!(gso_group(&[]), 0);
    }

    /// A run sent as one GSO send arrives as the same datagrams, in order.
    #[test]
    fn gso_runs_arrive_as_the_datagrams_they_were() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = |s: &std::net::UdpSocket| s.local_addr().unwrap().port();
        let mut ts = Vec::new();
        for i in 0..70u8 {
            // 70 to b: a run of 64 and one of 6 (the last shorter), then 3 to c.
            let len = if i == 69 { 5 } else { 40 };
            ts.push(Transmit::new(to(port(&b)), vec![i; len]));
        }
        for i in 0..3u8 {
            ts.push(Transmit::new(to(port(&c)), vec![100 + i; 33]));
        }
        let refs: Vec<&Transmit> = ts.iter().collect();
        assert_eq!(send_batch_gso(a.as_raw_fd(), &refs).unwrap(), 73);
        for (s, want) in [(&b, &ts[..70]), (&c, &ts[70..])] {
            let mut batch = RxBatch::new();
            let mut got = Vec::new();
            let t = std::time::Instant::now();
            while got.len() < want.len() && t.elapsed() < std::time::Duration::from_secs(5) {
                batch.clear();
                match recv_batch(s.as_raw_fd(), &mut batch) {
                    Ok(_) => got.extend(batch.iter().map(|(_, d)| d.to_vec())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            let want: Vec<Vec<u8>> = want.iter().map(|t| t.payload.to_vec()).collect();
            assert_eq!(got, want);
        }
    }

    /// With `UDP_GRO` a GSO run is one read holding its datagrams, and
    /// [`GroRx`] hands them out as they were sent.
    #[test]
    fn a_gso_run_is_one_gro_read_and_splits_back() {
        use crate::agent::batch::GroRx;
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_gro(b.as_raw_fd()).unwrap();
        let port = b.local_addr().unwrap().port();
        let ts: Vec<Transmit> = (0..11u8)
            .map(|i| Transmit::new(to(port), vec![i; if i == 10 { 5 } else { 40 }]))
            .collect();
        let refs: Vec<&Transmit> = ts.iter().collect();
        assert_eq!(send_batch_gso(a.as_raw_fd(), &refs).unwrap(), 11);
        let mut gro = GroRx::new();
        let (mut got, mut reads) = (Vec::new(), 0);
        let t = std::time::Instant::now();
        while got.len() < ts.len() && t.elapsed() < std::time::Duration::from_secs(5) {
            match recv_gro(b.as_raw_fd(), gro.buffer()) {
                Ok(r) => {
                    reads += 1;
                    gro.filled(r);
                    while let Some((_, d)) = gro.next_datagram() {
                        got.push(d.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = ts.iter().map(|t| t.payload.to_vec()).collect();
        assert_eq!(got, want);
        assert_eq!(reads, 1, "one read for the run");
    }
}
