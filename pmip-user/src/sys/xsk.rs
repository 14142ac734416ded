//! AF_XDP sockets in copy mode: the frames an XDP program redirects into
//! an `XSKMAP` land in our own memory (the UMEM), found through two rings
//! shared with the kernel, with no system call and no socket buffer per
//! frame (Documentation/networking/af_xdp.rst).
//!
//! Receiving: the fill ring hands the kernel free frames, the RX ring hands
//! us filled ones, and every frame read goes straight back to the fill
//! ring. Sending (a socket opened with TX frames): whole Ethernet frames
//! written into frames of their own go on the TX ring, one `sendto` has the
//! kernel transmit them (in copy mode it builds an skb per frame and hands
//! it straight to the driver: no routing, no netfilter, no qdisc), and the
//! completion ring gives the frames back. Without TX frames the completion
//! ring is the smallest the kernel takes (it requires one per UMEM).
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Bytes of one frame of the UMEM (the smallest chunk the kernel takes).
/// In copy mode the kernel writes a packet 256 bytes into its frame
/// (XDP_PACKET_HEADROOM): one longer than 1792 bytes is dropped by the
/// kernel and counted in [`XskStats::dropped`] (a Mobility Header is a few
/// hundred bytes; a fragmented one never comes here, see the fast path).
pub const FRAME: u32 = 2048;

/// Where a frame to send starts inside its UMEM frame (room the kernel
/// does not need in copy mode; kept as the receive side's offset so a
/// frame's bytes stay cache-line aligned alike).
pub const TX_HEADROOM: usize = 256;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An `mmap`ed region, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<(RawFd, libc::off_t)>) -> io::Result<Mapping> {
        let (flags, fd, off) = match fd {
            Some((fd, off)) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd, off),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            ),
        };
        // SAFETY: a fresh mapping; the kernel checks fd and offset.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, of this length; nothing refers to it after.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One ring shared with the kernel: producer and consumer indexes (free
/// running, taken modulo the size) and the descriptors.
struct Ring {
    map: Mapping,
    producer: usize,
    consumer: usize,
    desc: usize,
    size: u32,
}

impl Ring {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + size as usize * entry;
        Ok(Ring {
            map: Mapping::new(len, Some((fd, pgoff as libc::off_t)))?,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            desc: off.desc as usize,
            size,
        })
    }

    fn index(&self, at: usize) -> &AtomicU32 {
        // SAFETY: the kernel's offsets of a u32 inside the mapping, 4-aligned.
        unsafe { &*self.map.ptr.as_ptr().add(at).cast::<AtomicU32>() }
    }

    fn producer(&self) -> &AtomicU32 {
        self.index(self.producer)
    }

    fn consumer(&self) -> &AtomicU32 {
        self.index(self.consumer)
    }

    /// Entry `i` (modulo the size) of type `T`.
    fn entry<T>(&self, i: u32) -> *mut T {
        let slot = (i & (self.size - 1)) as usize;
        // SAFETY: within the descriptor array the mapping holds.
        unsafe {
            self.map
                .ptr
                .as_ptr()
                .add(self.desc + slot * size_of::<T>())
                .cast()
        }
    }
}

/// The kernel's drop counts of one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames the kernel could not deliver: no free frame (the fill ring
    /// empty), the RX ring full, or a frame longer than [`FRAME`].
    pub dropped: u64,
    /// Descriptors the kernel refused to send (outside the UMEM or across
    /// a frame's end): none unless this side is wrong.
    pub tx_invalid: u64,
}

struct Rings {
    fill: Ring,
    rx: Ring,
}

/// The sending side: the TX and completion rings and the TX frames not
/// in the kernel's hands.
struct TxRings {
    tx: Ring,
    completion: Ring,
    free: Vec<u64>,
}

// SAFETY: as for Rings.
unsafe impl Send for TxRings {}

// SAFETY: the rings are plain memory shared with the kernel; the Mutex
// around them makes one thread at a time their user side.
unsafe impl Send for Rings {}

/// An AF_XDP socket bound to one queue of one interface, receiving (and,
/// opened with TX frames, sending) in copy mode through a UMEM of its own.
pub struct Xsk {
    fd: OwnedFd,
    umem: Mapping,
    rings: Mutex<Rings>,
    tx: Option<Mutex<TxRings>>,
}

// SAFETY: the UMEM is only read, under the rings' lock, in frames the RX
// ring handed us and the fill ring has not been given back yet.
unsafe impl Send for Xsk {}
unsafe impl Sync for Xsk {}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v is a valid T of the length passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

impl Xsk {
    /// Opens a socket with `frames` receive frames and `tx_frames` frames
    /// to send from (powers of two; no TX ring with 0), binds it to queue
    /// `queue` of interface `ifindex` in copy mode and hands every receive
    /// frame to the kernel. Nothing arrives until an XDP program on the
    /// interface redirects to it (an `XSKMAP` entry holding its descriptor).
    pub fn open(ifindex: u32, queue: u32, frames: u32, tx_frames: u32) -> io::Result<Xsk> {
        if !frames.is_power_of_two() || !(tx_frames == 0 || tx_frames.is_power_of_two()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frames: not a power of two",
            ));
        }
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd =
            cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let umem = Mapping::new((frames + tx_frames) as usize * FRAME as usize, None)?;
        // SAFETY: all-zero is a valid xdp_umem_reg.
        let mut reg: libc::xdp_umem_reg = unsafe { zeroed() };
        reg.addr = umem.ptr.as_ptr() as u64;
        reg.len = umem.len as u64;
        reg.chunk_size = FRAME;
        setsockopt(&fd, libc::XDP_UMEM_REG, &reg)?;
        setsockopt(&fd, libc::XDP_UMEM_FILL_RING, &frames)?;
        // Required with a UMEM; without sending the smallest will do.
        setsockopt(&fd, libc::XDP_UMEM_COMPLETION_RING, &tx_frames.max(8))?;
        setsockopt(&fd, libc::XDP_RX_RING, &frames)?;
        if tx_frames > 0 {
            setsockopt(&fd, libc::XDP_TX_RING, &tx_frames)?;
        }
        // SAFETY: all-zero is a valid xdp_mmap_offsets; the kernel fills it.
        let mut off: libc::xdp_mmap_offsets = unsafe { zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: off and len are valid for the kernel to write.
        cvt(unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        })?;
        let raw = fd.as_raw_fd();
        let fill = Ring::map(
            raw,
            &off.fr,
            frames,
            size_of::<u64>(),
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?;
        let rx = Ring::map(
            raw,
            &off.rx,
            frames,
            size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING as u64,
        )?;
        let tx = match tx_frames {
            0 => None,
            n => Some(Mutex::new(TxRings {
                tx: Ring::map(
                    raw,
                    &off.tx,
                    n,
                    size_of::<libc::xdp_desc>(),
                    libc::XDP_PGOFF_TX_RING as u64,
                )?,
                completion: Ring::map(
                    raw,
                    &off.cr,
                    n,
                    size_of::<u64>(),
                    libc::XDP_UMEM_PGOFF_COMPLETION_RING,
                )?,
                // The frames after the receive ones.
                free: (frames..frames + n)
                    .map(|i| u64::from(i) * u64::from(FRAME))
                    .collect(),
            })),
        };
        for i in 0..frames {
            // SAFETY: entry i of the fill ring, ours until the producer moves.
            unsafe { *fill.entry::<u64>(i) = u64::from(i) * u64::from(FRAME) };
        }
        fill.producer().store(frames, Ordering::Release);
        // SAFETY: all-zero is a valid sockaddr_xdp.
        let mut sa: libc::sockaddr_xdp = unsafe { zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = libc::XDP_COPY;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // SAFETY: sa is a valid sockaddr_xdp of the given length.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;
        Ok(Xsk {
            fd,
            umem,
            rings: Mutex::new(Rings { fill, rx }),
            tx,
        })
    }

    /// Whether the RX ring holds a frame not read yet.
    pub fn has_frames(&self) -> bool {
        let Ok(r) = self.rings.lock() else {
            return false;
        };
        r.rx.producer().load(Ordering::Acquire) != r.rx.consumer().load(Ordering::Relaxed)
    }

    /// Reads up to `max` frames: `f` gets each one's bytes, then the frame
    /// goes back to the kernel. Returns how many were read.
    pub fn drain(&self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let Ok(r) = self.rings.lock() else {
            return 0;
        };
        let cons = r.rx.consumer().load(Ordering::Relaxed);
        let prod = r.rx.producer().load(Ordering::Acquire);
        let n = (prod.wrapping_sub(cons) as usize).min(max) as u32;
        if n == 0 {
            return 0;
        }
        // Every frame read goes back: the fill ring has room for all of
        // them, as it holds every frame not in the RX ring or with us.
        let fprod = r.fill.producer().load(Ordering::Relaxed);
        for i in 0..n {
            // SAFETY: entries between the consumer and the producer are the
            // kernel's to us, written before the producer was released.
            let d = unsafe { *r.rx.entry::<libc::xdp_desc>(cons.wrapping_add(i)) };
            let (at, len) = (d.addr as usize, d.len as usize);
            if at.checked_add(len).is_some_and(|end| end <= self.umem.len) {
                // SAFETY: inside the UMEM, in a frame the kernel is done with.
                f(unsafe { std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(at), len) });
            }
            let frame = d.addr & !(u64::from(FRAME) - 1);
            // SAFETY: the fill ring's free entries are ours until released.
            unsafe { *r.fill.entry::<u64>(fprod.wrapping_add(i)) = frame };
        }
        r.rx.consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
        r.fill
            .producer()
            .store(fprod.wrapping_add(n), Ordering::Release);
        n as usize
    }

    /// Sends up to `n` frames: `write(i, frame)` writes the `i`th into a
    /// free frame of [`FRAME`] − [`TX_HEADROOM`] bytes and returns its
    /// length (0: stop there). Returns how many were queued, from the
    /// first: the rest found no free frame (the kernel still holds them) or
    /// the socket has no TX ring. The kernel is woken once for them all.
    pub fn send(&self, n: usize, mut write: impl FnMut(usize, &mut [u8]) -> usize) -> usize {
        let Some(Ok(mut t)) = self.tx.as_ref().map(|t| t.lock()) else {
            return 0;
        };
        let t = &mut *t;
        // The frames the kernel is done with come back first.
        let cprod = t.completion.producer().load(Ordering::Acquire);
        let mut ccons = t.completion.consumer().load(Ordering::Relaxed);
        while ccons != cprod {
            // SAFETY: entries between consumer and producer are ours to read.
            let done = unsafe { *t.completion.entry::<u64>(ccons) };
            // The descriptor's address, past the headroom: its frame's start.
            t.free.push(done & !(u64::from(FRAME) - 1));
            ccons = ccons.wrapping_add(1);
        }
        t.completion.consumer().store(ccons, Ordering::Release);
        let prod = t.tx.producer().load(Ordering::Relaxed);
        let mut queued = 0u32;
        let mut taken = 0;
        while taken < n {
            let Some(&addr) = t.free.last() else {
                break;
            };
            let at = addr as usize + TX_HEADROOM;
            // SAFETY: a free TX frame, inside the UMEM, not the kernel's
            // until its descriptor is released below.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(
                    self.umem.ptr.as_ptr().add(at),
                    FRAME as usize - TX_HEADROOM,
                )
            };
            let len = write(taken, buf);
            if len == 0 || len > buf.len() {
                break;
            }
            taken += 1;
            t.free.pop();
            // SAFETY: the TX ring has room: it is as large as the TX
            // frames, and this one was free.
            unsafe {
                *t.tx.entry::<libc::xdp_desc>(prod.wrapping_add(queued)) = libc::xdp_desc {
                    addr: at as u64,
                    len: len as u32,
                    options: 0,
                }
            };
            queued += 1;
        }
        if queued > 0 {
            t.tx.producer()
                .store(prod.wrapping_add(queued), Ordering::Release);
            self.kick(&t.tx);
        }
        taken
    }

    /// Has the kernel transmit what the TX ring holds. In copy mode a call
    /// sends a bounded run (32 frames in 6.x) and answers `EAGAIN` while
    /// more are left; `EBUSY`/`ENOBUFS`: the driver's queue is full, the
    /// rest go with the next call.
    fn kick(&self, tx: &Ring) {
        for _ in 0..1024 {
            // SAFETY: sendto with no data and no address wakes the socket.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let left =
                tx.producer().load(Ordering::Relaxed) != tx.consumer().load(Ordering::Acquire);
            let again = rc >= 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
            if !left || !again {
                return;
            }
        }
    }

    /// What the kernel dropped for want of room (`XDP_STATISTICS`).
    pub fn stats(&self) -> io::Result<XskStats> {
        // SAFETY: all-zero is a valid xdp_statistics; the kernel fills it.
        let mut s: libc::xdp_statistics = unsafe { zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: s and len are valid for the kernel to write.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        })?;
        // A frame with no free frame to go to counts in `rx_dropped` and
        // again in `rx_fill_ring_empty_descs`: once here.
        Ok(XskStats {
            dropped: s.rx_dropped + s.rx_ring_full,
            tx_invalid: s.tx_invalid_descs,
        })
    }
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
