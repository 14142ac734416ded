//! A token bucket for log lines, usable from a `static` (one per call site).
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    /// When the bucket was last refilled (None: never used, full).
    refilled: Option<Instant>,
    /// Events dropped since the last one let through.
    suppressed: u64,
}

/// At most [`BURST`](Self::BURST) events at once, refilled at
/// [`PER_SECOND`](Self::PER_SECOND) a second.
#[derive(Debug)]
pub struct RateLimit(Mutex<Bucket>);

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    pub const BURST: u32 = 10;
    pub const PER_SECOND: u32 = 1;

    pub const fn new() -> Self {
        RateLimit(Mutex::new(Bucket {
            tokens: Self::BURST,
            refilled: None,
            suppressed: 0,
        }))
    }

    /// May an event at `now` be logged? `Some(n)`: yes, and `n` were
    /// dropped since the last one logged; `None`: drop it (counted).
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match b.refilled {
            None => b.refilled = Some(now),
            Some(t) => {
                let secs = now.saturating_duration_since(t).as_secs();
                let add = secs.saturating_mul(u64::from(Self::PER_SECOND));
                if add > 0 {
                    let tokens = (u64::from(b.tokens) + add).min(u64::from(Self::BURST));
                    b.tokens = tokens as u32;
                    // Whole seconds only: the remainder keeps counting.
                    b.refilled = Some(t + std::time::Duration::from_secs(secs));
                }
            }
        }
        if b.tokens == 0 {
            b.suppressed += 1;
            return None;
        }
        b.tokens -= 1;
        Some(std::mem::take(&mut b.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_one_a_second_with_the_count_dropped() {
        let r = RateLimit::new();
        let t0 = Instant::now();
        let allowed = (0..1000).filter(|_| r.allow(t0).is_some()).count();
        assert_eq!(allowed, RateLimit::BURST as usize);
        // Half a second later: still nothing.
        assert_eq!(r.allow(t0 + Duration::from_millis(500)), None);
        // A second later: one, reporting the 991 dropped.
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), Some(991));
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        // A long quiet spell refills to the burst, no more.
        let t1 = t0 + Duration::from_secs(3600);
        let allowed = (0..100).filter(|_| r.allow(t1).is_some()).count();
        assert_eq!(allowed, RateLimit::BURST as usize);
    }

    /// A flood over 10 s lets through at most BURST + 10 lines.
    #[test]
    fn a_flood_is_bounded() {
        let r = RateLimit::new();
        let t0 = Instant::now();
        let mut lines = 0;
        for i in 0..100_000u64 {
            if r.allow(t0 + Duration::from_micros(i * 100)).is_some() {
                lines += 1;
            }
        }
        assert!(lines <= (RateLimit::BURST + 10) as usize, "{lines}");
        assert!(lines >= RateLimit::BURST as usize);
    }
}
