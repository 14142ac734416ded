//! The receiver's anti-replay window (RFC 4303 §3.4.3) with extended
//! sequence numbers (ESN, Appendix A).
//!
//! The window holds the highest authenticated sequence number `top` and one
//! bit for each of the `size` numbers ending at it. The bitmap is a ring of
//! 64-bit words indexed by the sequence number itself (RFC 6479), with one
//! word more than the window needs: sliding forward clears the words it
//! enters and never shifts the others, so a jump costs at most one pass
//! over the ring whatever the window size.
//!
//! Order of use (§3.4.3): [`check`](ReplayWindow::check) before the ICV (a
//! cheap reject that also yields the 64-bit number the ICV covers under ESN),
//! [`accept`](ReplayWindow::accept) only after the ICV verified, so forged
//! packets never move the window.
use super::DropReason;

/// Largest window the configuration accepts (packets).
pub(crate) const MAX_WINDOW: u32 = 4096;

#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Window size in packets; 0 turns the anti-replay check off (as xfrm's
    /// `replay-window 0`): only the top is kept, for ESN.
    size: u32,
    /// Highest authenticated sequence number; 0 before the first packet.
    top: u64,
    bits: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets (at most [`MAX_WINDOW`]; 0 = no check).
    pub fn new(size: u32) -> Self {
        let size = size.min(MAX_WINDOW);
        let words = if size == 0 {
            0
        } else {
            size.div_ceil(64) as usize + 1
        };
        ReplayWindow {
            size,
            top: 0,
            bits: vec![0; words],
        }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet whose header carries `seq_lo`:
    /// itself without ESN; with ESN the high half is inferred from the
    /// window's position (RFC 4303 Appendix A2.2). `None` when the inferred
    /// number would fall outside the 64-bit space.
    pub(crate) fn infer(&self, seq_lo: u32, esn: bool) -> Option<u64> {
        if !esn {
            return Some(u64::from(seq_lo));
        }
        let w = self.size.max(1);
        let th = (self.top >> 32) as u32;
        let tl = self.top as u32;
        let bottom = tl.wrapping_sub(w - 1);
        let seq_hi = if tl >= w - 1 {
            // Case A: the window lies within one 2^32 subspace.
            if seq_lo >= bottom {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seq_lo >= bottom {
            // Case B: the window spans two subspaces; this one is in the lower.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        seq_hi.map(|h| (u64::from(h) << 32) | u64::from(seq_lo))
    }

    /// Full sequence number of `seq_lo` if it is neither a duplicate nor
    /// left of the window. Does not change the window.
    pub fn check(&self, seq_lo: u32, esn: bool) -> Result<u64, DropReason> {
        let Some(seq) = self.infer(seq_lo, esn) else {
            return Err(DropReason::Replay(u64::from(seq_lo)));
        };
        // The first packet of an SA carries 1 (§3.3.3); 0 is never sent.
        if seq == 0 {
            return Err(DropReason::Replay(0));
        }
        if self.size == 0 || seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= u64::from(self.size) || self.is_set(seq) {
            return Err(DropReason::Replay(seq));
        }
        Ok(seq)
    }

    /// Continues after `top`, e.g. a value kept across a restart: every
    /// number up to it counts as seen, so recorded packets from before the
    /// restart cannot be replayed into a window that starts over empty.
    pub(crate) fn resume_after(&mut self, top: u64) {
        self.top = top;
        self.bits.fill(u64::MAX);
    }

    /// Records an authenticated `seq` (already [`check`](Self::check)ed).
    pub fn accept(&mut self, seq: u64) {
        if self.size == 0 {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let n = self.bits.len() as u64;
            let (from, to) = (self.top / 64, seq / 64);
            // Clear every word the window slides into; all of them after a long jump.
            for w in (from + 1..=to).take(n as usize) {
                self.bits[(w % n) as usize] = 0;
            }
            self.top = seq;
        }
        let (word, bit) = self.slot(seq);
        self.bits[word] |= 1 << bit;
    }

    fn slot(&self, seq: u64) -> (usize, u32) {
        let n = self.bits.len() as u64;
        (((seq / 64) % n) as usize, (seq % 64) as u32)
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, bit) = self.slot(seq);
        self.bits[word] & (1 << bit) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, seq: u32) -> Result<u64, DropReason> {
        let s = w.check(seq, false)?;
        w.accept(s);
        Ok(s)
    }

    #[test]
    fn in_order() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=1000 {
            assert_eq!(take(&mut w, s), Ok(u64::from(s)));
        }
        assert_eq!(w.top(), 1000);
    }

    #[test]
    fn zero_is_never_accepted() {
        let w = ReplayWindow::new(64);
        assert_eq!(w.check(0, false), Err(DropReason::Replay(0)));
        assert_eq!(
            ReplayWindow::new(0).check(0, false),
            Err(DropReason::Replay(0))
        );
    }

    #[test]
    fn out_of_order_inside_the_window() {
        let mut w = ReplayWindow::new(64);
        take(&mut w, 100).unwrap();
        // Everything from 100 - 63 to 99 is still new, once.
        for s in (37..100).rev() {
            assert_eq!(take(&mut w, s), Ok(u64::from(s)), "{s}");
        }
        for s in 37..=100 {
            assert_eq!(take(&mut w, s), Err(DropReason::Replay(u64::from(s))));
        }
    }

    #[test]
    fn duplicates() {
        let mut w = ReplayWindow::new(64);
        for s in [5, 3, 9, 4] {
            take(&mut w, s).unwrap();
        }
        for s in [5, 3, 9, 4] {
            assert_eq!(take(&mut w, s), Err(DropReason::Replay(u64::from(s))));
        }
        assert_eq!(take(&mut w, 6), Ok(6));
    }

    #[test]
    fn too_old() {
        let mut w = ReplayWindow::new(64);
        take(&mut w, 200).unwrap();
        // 137 is the bottom of the window (200 - 64 + 1).
        assert_eq!(w.check(137, false), Ok(137));
        assert_eq!(w.check(136, false), Err(DropReason::Replay(136)));
        assert_eq!(w.check(1, false), Err(DropReason::Replay(1)));
    }

    #[test]
    fn far_ahead_clears_the_ring() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=64 {
            take(&mut w, s).unwrap();
        }
        // A jump of exactly one ring's length must not find old bits.
        let ring = 64 * 2;
        take(&mut w, 64 + ring).unwrap();
        for s in (64 + ring - 63)..(64 + ring) {
            assert_eq!(w.check(s, false), Ok(u64::from(s)), "{s}");
        }
        // And a jump of billions.
        take(&mut w, 4_000_000_000).unwrap();
        assert_eq!(w.check(3_999_999_999, false), Ok(3_999_999_999));
        assert_eq!(
            w.check(3_999_999_936, false),
            Err(DropReason::Replay(3_999_999_936))
        );
    }

    #[test]
    fn every_step_size_against_a_reference_set() {
        // The ring against a plain set of seen numbers, over jumps of every
        // size up to past the ring, for windows that are and aren't multiples of 64.
        for size in [32, 64, 100, 128, 1000] {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut x: u32 = 1;
            let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..20_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let step = (rng % 400) as i64 - 150;
                x = (i64::from(x) + step).clamp(1, i64::from(u32::MAX)) as u32;
                let top = seen.last().copied().unwrap_or(0u32);
                let fresh = !seen.contains(&x) && (x > top || u64::from(top - x) < u64::from(size));
                assert_eq!(w.check(x, false).is_ok(), fresh, "size {size} seq {x}");
                if fresh {
                    w.accept(u64::from(x));
                    seen.insert(x);
                }
            }
        }
    }

    #[test]
    fn resumed_window_takes_nothing_old() {
        let mut w = ReplayWindow::new(64);
        w.resume_after(1000);
        for s in [1, 937, 990, 1000] {
            assert_eq!(w.check(s, false), Err(DropReason::Replay(u64::from(s))));
        }
        assert_eq!(take(&mut w, 1001), Ok(1001));
        // Numbers the window slides over later are new again only if unseen.
        assert_eq!(take(&mut w, 1100), Ok(1100));
        assert_eq!(take(&mut w, 1050), Ok(1050));
        assert_eq!(w.check(1001, false), Err(DropReason::Replay(1001)));
    }

    #[test]
    fn disabled_window_accepts_repeats() {
        let mut w = ReplayWindow::new(0);
        assert_eq!(take(&mut w, 5), Ok(5));
        assert_eq!(take(&mut w, 5), Ok(5));
        assert_eq!(take(&mut w, 1), Ok(1));
        assert_eq!(w.top(), 5);
    }

    #[test]
    fn esn_case_a_inside_one_subspace() {
        let mut w = ReplayWindow::new(64);
        w.accept((7 << 32) | 1000);
        // Inside the window or ahead of it: same high half.
        assert_eq!(w.infer(990, true), Some((7 << 32) | 990));
        assert_eq!(w.infer(5000, true), Some((7 << 32) | 5000));
        // Below the window: the low half has wrapped, next subspace.
        assert_eq!(w.infer(10, true), Some((8 << 32) | 10));
    }

    #[test]
    fn esn_case_b_window_spans_two_subspaces() {
        let mut w = ReplayWindow::new(64);
        w.accept((7 << 32) | 10);
        // The window's bottom is in subspace 6.
        assert_eq!(w.infer(u32::MAX - 5, true), Some((6 << 32) | 0xffff_fffa));
        assert_eq!(w.infer(3, true), Some((7 << 32) | 3));
        assert_eq!(w.infer(100, true), Some((7 << 32) | 100));
        // Subspace 6 is then checked against the window like any number.
        assert!(w.check(u32::MAX - 5, true).is_ok());
    }

    #[test]
    fn esn_wraps_the_low_half_in_order() {
        let mut w = ReplayWindow::new(64);
        let start = u64::from(u32::MAX) - 100;
        w.accept(start);
        for s in start + 1..=start + 111 {
            assert_eq!(w.check(s as u32, true), Ok(s), "{s:#x}");
            w.accept(s);
        }
        assert_eq!(w.top(), (1 << 32) | 10);
        // A replay of a number from just before the wrap is recognised as such.
        assert_eq!(
            w.check(u32::MAX, true),
            Err(DropReason::Replay(u64::from(u32::MAX)))
        );
    }

    #[test]
    fn esn_at_the_very_start_and_end() {
        let w = ReplayWindow::new(64);
        // Case B with Th = 0: numbers "below" subspace 0 do not exist.
        assert_eq!(w.infer(u32::MAX, true), None);
        assert_eq!(
            w.check(u32::MAX, true),
            Err(DropReason::Replay(u64::from(u32::MAX)))
        );
        assert_eq!(w.check(1, true), Ok(1));
        let mut w = ReplayWindow::new(64);
        w.accept(u64::MAX - 1);
        assert_eq!(w.infer(5, true), None);
    }
}
