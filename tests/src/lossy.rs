//! A core link that drops a share of the signaling (`test_lossy_signaling`
//! of the test object, pmip-ebpf/src/test/lossy.rs; this kernel has no
//! sch_netem), at TC ingress and egress of one veth end.
use anyhow::{Context, Result};
use aya::maps::{Array, PerCpuArray};
use aya::programs::{tc::TcAttachType, SchedClassifier};

use crate::netns::Netns;

/// The programs stay attached while this lives.
pub struct Lossy {
    ebpf: aya::Ebpf,
}

impl Lossy {
    /// Drops `percent` % of the signaling crossing `iface` of `ns`, both ways.
    pub fn attach(ns: &Netns, iface: &str, percent: u32) -> Result<Lossy> {
        let iface = iface.to_string();
        let ebpf = ns.run_in(move || -> Result<aya::Ebpf> {
            let mut ebpf = pmip_user::fastpath::load_test_object()?;
            let mut pct: Array<_, u32> = Array::try_from(
                ebpf.map_mut("TEST_LOSS_PERCENT")
                    .context("TEST_LOSS_PERCENT missing: rebuild the test object")?,
            )?;
            pct.set(0, percent, 0)?;
            let p: &mut SchedClassifier = ebpf
                .program_mut("test_lossy_signaling")
                .context("test_lossy_signaling missing")?
                .try_into()?;
            p.load()?;
            for dir in [TcAttachType::Ingress, TcAttachType::Egress] {
                p.attach(&iface, dir)
                    .with_context(|| format!("attaching the dropper to {iface}"))?;
            }
            Ok(ebpf)
        })??;
        Ok(Lossy { ebpf })
    }

    /// (signaling packets dropped, let through).
    pub fn counts(&self) -> Result<(u64, u64)> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("TEST_LOSS_COUNT")
                .context("TEST_LOSS_COUNT")?,
        )?;
        let sum = |i: u32| -> Result<u64> { Ok(m.get(&i, 0)?.iter().sum()) };
        Ok((sum(0)?, sum(1)?))
    }
}
