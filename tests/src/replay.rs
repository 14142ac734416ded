//! Repeatable per-packet timing of programs that rewrite their packet
//! (`bench_replay`, pmip-ebpf/src/test/replay.rs): BPF_PROG_TEST_RUN with a
//! large `repeat`, each run restoring the frame before tail-calling the
//! program under test. The kernel times all runs together: the figure has
//! 1 ns resolution (the kernel reports whole ns) without the timer's
//! overhead in it, instead of the ~10 ns grain of single runs.
//!
//! The harness's own cost (restoring up to 128 bytes, one tail call) is in
//! every figure: compare targets with each other (the fast path against
//! `tg_fwd`, the redirect ceiling's hop), not with single-run figures.
use anyhow::{anyhow, bail, Result};
use aya::maps::{Array, ProgramArray};
use aya::programs::{ProgramFd, TestRun, TestRunOptions};

use crate::tput::BenchProgs;

/// Words of the frame the harness restores (REPLAY_WORDS in the program).
pub const REPLAY_WORDS: usize = 16;
pub const REPLAY_PROGRAM: &str = "bench_replay";

/// The harness's record of `frame`: its length, then its first
/// REPLAY_WORDS words (zero-padded).
pub fn record(frame: &[u8]) -> [u64; REPLAY_WORDS + 1] {
    let mut r = [0u64; REPLAY_WORDS + 1];
    r[0] = frame.len() as u64;
    for (i, w) in r[1..].iter_mut().enumerate() {
        let mut b = [0u8; 8];
        for (k, x) in b.iter_mut().enumerate() {
            *x = frame.get(i * 8 + k).copied().unwrap_or(0);
        }
        *w = u64::from_ne_bytes(b);
    }
    r
}

impl BenchProgs {
    /// Points the harness at program `target` (of any object) with `frame`.
    pub fn set_replay(&mut self, target: &ProgramFd, frame: &[u8]) -> Result<()> {
        let mut m: Array<_, [u64; REPLAY_WORDS + 1]> = Array::try_from(
            self.ebpf
                .map_mut("BENCH_REPLAY")
                .ok_or_else(|| anyhow!("BENCH_REPLAY"))?,
        )?;
        m.set(0, record(frame), 0)?;
        let mut t = ProgramArray::try_from(
            self.ebpf
                .map_mut("BENCH_REPLAY_TARGET")
                .ok_or_else(|| anyhow!("BENCH_REPLAY_TARGET"))?,
        )?;
        t.set(0, target, 0)?;
        Ok(())
    }

    /// Mean ns per run of `target` on `frame` (arriving on `ifindex`) over
    /// `repeat` runs, harness included; checks the verdict.
    pub fn replay_ns(
        &mut self,
        target: &ProgramFd,
        frame: &[u8],
        ifindex: u32,
        verdict: u32,
        repeat: u32,
    ) -> Result<f64> {
        self.set_replay(target, frame)?;
        let ctx = crate::fixture::xdp_md(ifindex, frame.len());
        let mut out = vec![0u8; 4096];
        let prog = self.prog(REPLAY_PROGRAM)?;
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat,
            ..Default::default()
        })?;
        if r.return_value != verdict {
            bail!("replay: verdict {} (want {verdict})", r.return_value);
        }
        Ok(r.duration.as_nanos() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_holds_length_and_words() {
        let f: Vec<u8> = (0..20).collect();
        let r = record(&f);
        assert_eq!(r[0], 20);
        assert_eq!(r[1].to_ne_bytes(), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r[3].to_ne_bytes(), [16, 17, 18, 19, 0, 0, 0, 0]);
        assert_eq!(r[4], 0);
    }
}
