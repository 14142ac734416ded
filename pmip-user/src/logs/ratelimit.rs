//! Rate-limited log lines for events a remote party controls (forged or
//! unauthenticated signaling, floods from unknown MACs, refused attaches): a
//! flood must not fill the disk or drown the lines that matter. A token
//! bucket usable from a `static`, one per call site of
//! [`log_limited!`](crate::log_limited).
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    /// When the bucket was last refilled (None: never used, full).
    refilled: Option<Instant>,
    /// Events dropped since the last one let through.
    suppressed: u64,
}

/// At most `burst` events at once, refilled by `refill` every `period` (up to
/// `burst` again). [`log_limited!`](crate::log_limited) uses
/// [`per_call_site`](Self::per_call_site): [`BURST`](Self::BURST) at once,
/// then one every [`REFILL_PERIOD`](Self::REFILL_PERIOD).
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    refill: u32,
    period: Duration,
    bucket: Mutex<Bucket>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::per_call_site()
    }
}

impl RateLimit {
    /// The budget the hostile-network floods were sized with (issue 13):
    /// a 10 s flood gives each call site at most 10 lines.
    pub const BURST: u32 = 5;
    pub const REFILL_PERIOD: Duration = Duration::from_secs(2);

    /// The budget of each call site of [`log_limited!`](crate::log_limited).
    pub const fn per_call_site() -> Self {
        Self::new(Self::BURST, 1, Self::REFILL_PERIOD)
    }

    pub const fn new(burst: u32, refill: u32, period: Duration) -> Self {
        RateLimit {
            burst,
            refill,
            period,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled: None,
                suppressed: 0,
            }),
        }
    }

    /// May an event at `now` be logged? `Some(n)`: yes, and `n` were
    /// dropped since the last one logged; `None`: drop it (counted).
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        match b.refilled {
            None => b.refilled = Some(now),
            Some(t) => {
                let periods =
                    now.saturating_duration_since(t).as_nanos() / self.period.as_nanos().max(1);
                let periods = u32::try_from(periods).unwrap_or(u32::MAX);
                if periods > 0 {
                    let add = u64::from(periods) * u64::from(self.refill);
                    let tokens = (u64::from(b.tokens) + add).min(u64::from(self.burst));
                    b.tokens = tokens as u32;
                    // Whole periods only: the remainder keeps counting.
                    b.refilled = Some(t + self.period.saturating_mul(periods));
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
    use super::*;

    #[test]
    fn burst_then_one_a_period_with_the_count_dropped() {
        let r = RateLimit::per_call_site();
        let t0 = Instant::now();
        let allowed = (0..1000).filter(|_| r.allow(t0).is_some()).count();
        assert_eq!(allowed, RateLimit::BURST as usize);
        // Just short of a period later: still nothing.
        assert_eq!(r.allow(t0 + Duration::from_millis(1500)), None);
        // A period later: one, reporting the 996 dropped.
        assert_eq!(r.allow(t0 + RateLimit::REFILL_PERIOD), Some(996));
        assert_eq!(r.allow(t0 + RateLimit::REFILL_PERIOD), None);
        // A long quiet spell refills to the burst, no more.
        let t1 = t0 + Duration::from_secs(3600);
        let allowed = (0..100).filter(|_| r.allow(t1).is_some()).count();
        assert_eq!(allowed, RateLimit::BURST as usize);
    }

    /// A flood over 10 s lets through at most BURST + 5 lines.
    #[test]
    fn a_flood_is_bounded() {
        let r = RateLimit::per_call_site();
        let t0 = Instant::now();
        let mut lines = 0;
        for i in 0..100_000u64 {
            if r.allow(t0 + Duration::from_micros(i * 100)).is_some() {
                lines += 1;
            }
        }
        assert!(lines <= (RateLimit::BURST + 5) as usize, "{lines}");
        assert!(lines >= RateLimit::BURST as usize);
    }

    /// A budget of `burst` per window: refilled whole each window.
    #[test]
    fn burst_then_suppressed_then_counted() {
        let l = RateLimit::new(3, 3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(l.allow(t0 + Duration::from_secs(5)), None);
        }
        // The next window: the first line reports what was dropped.
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(0));
    }

    #[test]
    fn a_flood_writes_a_bounded_number_of_lines() {
        const BURST: u32 = 5;
        let l = RateLimit::new(BURST, BURST, Duration::from_secs(10));
        let t0 = Instant::now();
        // 100 000 events over 60 s: at most BURST per started window.
        let written = (0..100_000u64)
            .filter(|i| l.allow(t0 + Duration::from_micros(i * 600)).is_some())
            .count();
        assert_eq!(written, BURST as usize * 6);
    }

    #[test]
    fn macro_compiles_with_fields() {
        let p = "192.0.2.1";
        for _ in 0..20 {
            crate::log_limited!(debug, peer = %p, "test line");
            crate::log_limited!(warn, security = true, event = "test", %p, "test line");
        }
    }
}
