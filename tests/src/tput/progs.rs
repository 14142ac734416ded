//! The benchmark programs of the test object (pmip-ebpf-test.o) and the
//! generator's ways to send: the live-frames run that drives `tg_gen`, and
//! an `AF_PACKET` socket, which also primes the closed loop (`tg_loop`)
//! where the kernel refuses live frames.
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{Array, DevMap, HashMap, PerCpuArray};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use pmip_common::{AccessKey, AccessSubscriber};
use pmip_user::fastpath::{load_test_object, loaded_xdp};

use super::frame::{Family, TG_HDR6_LEN, TG_HDR_LEN};

/// The benchmark and test programs' object (pmip-ebpf-test.o), loaded for
/// its benchmark programs (tg_gen, tg_sink, tg_fwd, bench_min_fwd, the
/// per-packet baselines). Links are detached on `detach_all` or drop.
pub struct BenchProgs {
    pub ebpf: Ebpf,
    links: Vec<(&'static str, XdpLinkId)>,
}

impl BenchProgs {
    pub fn load() -> Result<Self> {
        Ok(BenchProgs {
            ebpf: load_test_object()?,
            links: Vec::new(),
        })
    }

    pub fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        loaded_xdp(&mut self.ebpf, name)
    }

    /// Attach (call from a thread inside the interface's namespace).
    pub fn attach(&mut self, name: &'static str, iface: &str, mode: XdpMode) -> Result<()> {
        let id = super::while_busy(|| {
            self.prog(name)?
                .attach(iface, mode)
                .with_context(|| format!("attaching {name} to {iface}"))
        })?;
        self.links.push((name, id));
        Ok(())
    }

    pub fn detach_all(&mut self) -> Result<()> {
        for (name, id) in std::mem::take(&mut self.links) {
            self.prog(name)?.detach(id)?;
        }
        Ok(())
    }

    pub fn raw_fd(&mut self, name: &'static str) -> Result<i32> {
        Ok(self.prog(name)?.fd()?.as_fd().as_raw_fd())
    }

    /// Sum over CPUs of the sink's packet counters (both families).
    pub fn sink_packets(&self) -> Result<u64> {
        Ok(self.sink_packets_of(Family::V4)? + self.sink_packets_of(Family::V6)?)
    }

    /// Sum over CPUs of the sink's packet counter of one family.
    pub fn sink_packets_of(&self, family: Family) -> Result<u64> {
        self.sink_slot(match family {
            Family::V4 => 0,
            Family::V6 => 2,
        })
    }

    /// Sum over CPUs of the frames `tg_loop` dropped since its loop stopped.
    pub fn drained(&self) -> Result<u64> {
        self.sink_slot(3)
    }

    /// Starts (`true`) or stops `tg_loop`'s loop.
    pub fn set_loop(&mut self, on: bool) -> Result<()> {
        let mut m: Array<_, u32> = Array::try_from(
            self.ebpf
                .map_mut("TG_LOOP")
                .ok_or_else(|| anyhow!("TG_LOOP"))?,
        )?;
        m.set(0, u32::from(on), 0)?;
        Ok(())
    }

    fn sink_slot(&self, slot: u32) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("TG_SINK").ok_or_else(|| anyhow!("TG_SINK"))?)?;
        Ok(m.get(&slot, 0)?.iter().sum())
    }

    /// The template of CPU `cpu` for the generator of `family`: the first
    /// bytes of `frame` (TG_HDR_LEN or TG_HDR6_LEN).
    pub fn set_template_of(&mut self, family: Family, cpu: u32, frame: &[u8]) -> Result<()> {
        match family {
            Family::V4 => self.set_template(cpu, head(frame)?),
            Family::V6 => {
                let mut m: Array<_, [u8; TG_HDR6_LEN]> = Array::try_from(
                    self.ebpf
                        .map_mut("TG_TEMPLATE6")
                        .ok_or_else(|| anyhow!("TG_TEMPLATE6"))?,
                )?;
                m.set(cpu, head(frame)?, 0)?;
                Ok(())
            }
        }
    }

    pub fn set_template(&mut self, cpu: u32, t: [u8; TG_HDR_LEN]) -> Result<()> {
        let mut m: Array<_, [u8; TG_HDR_LEN]> = Array::try_from(
            self.ebpf
                .map_mut("TG_TEMPLATE")
                .ok_or_else(|| anyhow!("TG_TEMPLATE"))?,
        )?;
        m.set(cpu, t, 0)?;
        Ok(())
    }

    /// The generator's output device, and `tg_loop`'s (call inside the
    /// device's namespace: a DEVMAP resolves the ifindex there).
    pub fn set_dev(&mut self, ifindex: u32) -> Result<()> {
        let mut m: DevMap<_> = DevMap::try_from(
            self.ebpf
                .map_mut("TG_DEV")
                .ok_or_else(|| anyhow!("TG_DEV"))?,
        )?;
        m.set(0, ifindex, None, 0)?;
        Ok(())
    }

    /// The one subscriber `bench_min_fwd` and `tg_cost_hash` look up (ingress
    /// ifindex, source MAC).
    pub fn set_min_fwd_key(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<()> {
        let mut m: HashMap<_, AccessKey, AccessSubscriber> = HashMap::try_from(
            self.ebpf
                .map_mut("BENCH_SUBSCRIBERS")
                .ok_or_else(|| anyhow!("BENCH_SUBSCRIBERS"))?,
        )?;
        // SAFETY: plain old data; all-zero is a valid value.
        let v: AccessSubscriber = unsafe { std::mem::zeroed() };
        m.insert(
            AccessKey {
                ifindex,
                vlan: 0,
                mac,
            },
            v,
            0,
        )?;
        Ok(())
    }

    /// The DEVMAP slot of `tg_cost_redirect_map` (call inside the
    /// interface's namespace).
    pub fn set_bench_dev(&mut self, ifindex: u32) -> Result<()> {
        let mut m: DevMap<_> = DevMap::try_from(
            self.ebpf
                .map_mut("BENCH_DEV")
                .ok_or_else(|| anyhow!("BENCH_DEV"))?,
        )?;
        m.set(0, ifindex, None, 0)?;
        Ok(())
    }

    /// The redirect-only rule of `tg_fwd`.
    pub fn set_fwd(&mut self, out_ifindex: u32, smac: [u8; 6], dmac: [u8; 6]) -> Result<()> {
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&out_ifindex.to_ne_bytes());
        v[4..10].copy_from_slice(&smac);
        v[10..].copy_from_slice(&dmac);
        let mut m: Array<_, [u8; 16]> = Array::try_from(
            self.ebpf
                .map_mut("TG_FWD")
                .ok_or_else(|| anyhow!("TG_FWD"))?,
        )?;
        m.set(0, v, 0)?;
        Ok(())
    }
}

fn head<const N: usize>(frame: &[u8]) -> Result<[u8; N]> {
    frame
        .get(..N)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| anyhow!("a frame of {} bytes: the template needs {N}", frame.len()))
}

/// `struct bpf_attr` for BPF_PROG_TEST_RUN (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// How a measurement's frames get to the first hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    /// `tg_gen` run by BPF_PROG_TEST_RUN on live frames: the chain's own
    /// pace, in the kernel.
    LiveFrames,
    /// Where the kernel refuses live frames: a few frames per CPU put in
    /// once through an `AF_PACKET` socket and sent round again by `tg_loop`
    /// at the sink, so that they also go at the chain's own pace.
    Loop,
    /// Every frame through an `AF_PACKET` socket (~1 µs a frame): bounds
    /// every rate measured with it.
    PacketSocket,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::LiveFrames => "live frames (in-kernel tg_gen)",
            Generator::Loop => "closed loop (tg_loop at the sink, primed through AF_PACKET)",
            Generator::PacketSocket => "AF_PACKET sendmmsg",
        }
    }

    /// PMIP_BENCH_GENERATOR=live|loop|packet, if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("PMIP_BENCH_GENERATOR").ok().as_deref() {
            None | Some("") => Ok(None),
            Some("live") => Ok(Some(Generator::LiveFrames)),
            Some("loop") => Ok(Some(Generator::Loop)),
            Some("packet") => Ok(Some(Generator::PacketSocket)),
            Some(other) => {
                bail!("PMIP_BENCH_GENERATOR: {other:?} is not live, loop or packet")
            }
        }
    }
}

/// Whether this kernel runs `prog_fd` on live frames (call inside the
/// namespace of `ifindex`): one frame through it; EPERM means refused, as
/// some kernels do for every program (a sandboxing build, 6.18.44-fc)
/// while a plain TestRun works.
pub fn live_frames_allowed(prog_fd: i32, frame: &[u8], ifindex: u32) -> Result<bool> {
    match live_run(prog_fd, frame, ifindex, 1, 1) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        Err(e) => Err(e).context("BPF_PROG_TEST_RUN (live frames), probing"),
    }
}

/// Live-frames run: `repeat` frames built from `frame`, each through the
/// program (which redirects it). A plain syscall so that several threads can
/// drive the same program at once.
pub fn live_run(
    prog_fd: i32,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> std::io::Result<()> {
    let ctx = crate::fixture::xdp_md(ifindex, frame.len());
    let mut a = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..Default::default()
    };
    // SAFETY: bpf(2) with a correctly laid out attr whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut a as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `repeat` copies of `frame` written to `ifindex` through an `AF_PACKET`
/// socket, 64 per `sendmmsg`. A frame the device's queue cannot take yet
/// (ENOBUFS) is sent again, so every frame counted as offered was sent.
pub fn packet_run(frame: &[u8], ifindex: u32, repeat: u32) -> Result<()> {
    packet_send(frame, ifindex, repeat, None).map(|_| ())
}

/// As [`packet_run`], but gives up once the device has taken nothing for
/// `give_up` (where given) and returns how many frames it took. The closed
/// loop primes with it: its frames going round keep the first veth's ring
/// busy, and a transmit queue that veth stopped when the ring was full is
/// woken only when the ring empties, which it then need not do.
pub fn packet_send(
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    give_up: Option<std::time::Duration>,
) -> Result<u64> {
    const BATCH: usize = 64;
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    // Protocol 0: the socket receives nothing.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind(2) with a sockaddr_ll of its own size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        bail!(
            "binding AF_PACKET to ifindex {ifindex}: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut iov = [libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    }; BATCH];
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut left = repeat as usize;
    let mut progress = std::time::Instant::now();
    while left > 0 {
        let n = left.min(BATCH);
        // SAFETY: n ≤ BATCH initialised headers whose iovecs point into `frame`.
        let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    if give_up.is_some_and(|g| progress.elapsed() >= g) {
                        break;
                    }
                    std::thread::yield_now();
                    continue;
                }
                _ => bail!("AF_PACKET sendmmsg on ifindex {ifindex}: {e}"),
            }
        }
        left -= rc as usize;
        progress = std::time::Instant::now();
    }
    Ok((repeat as usize - left) as u64)
}
