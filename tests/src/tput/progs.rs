//! The benchmark programs of the test object (pmip-ebpf-test.o) and the
//! live-frames run that drives the generator.
use std::os::fd::{AsFd, AsRawFd};

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
        let id = self
            .prog(name)?
            .attach(iface, mode)
            .with_context(|| format!("attaching {name} to {iface}"))?;
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

    /// Generator output device (call inside the generator's namespace).
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

/// Live-frames run: `repeat` frames built from `frame`, each through the
/// program (which redirects it). A plain syscall so that several threads can
/// drive the same program at once.
pub fn live_run(prog_fd: i32, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> Result<()> {
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
        bail!(
            "BPF_PROG_TEST_RUN (live frames): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
