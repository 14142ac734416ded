//! Rate-limited logging for events an attacker controls (forged signaling,
//! floods from unknown MACs, refused attaches): a flood must not fill the
//! disk or drown the lines that matter. Each call site gets its own budget
//! (`burst` lines per `window`); the first line after a quiet spell says how
//! many were suppressed.
//!
//! ```ignore
//! crate::log_limited!(warn, peer = %p, "signaling from a host that is not a peer: dropped");
//! ```
//!
//! (A small stand-in until the operational logging of issue 16 lands on
//! main; the macro is the interface, so call sites need not change.)
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per window a call site of [`log_limited!`] may write.
pub const BURST: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    window_start: Option<Instant>,
    /// Lines written in the current window.
    written: u32,
    /// Lines not written since the last one that was.
    suppressed: u64,
}

/// The budget of one call site.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

impl RateLimit {
    pub const fn new(burst: u32, window: Duration) -> Self {
        RateLimit {
            burst,
            window,
            state: Mutex::new(State {
                window_start: None,
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were
    /// suppressed before it; `None` when this one is suppressed (counted).
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = s
            .window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= self.window);
        if expired {
            s.window_start = Some(now);
            s.written = 0;
        }
        if s.written < self.burst {
            s.written += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

/// `tracing::<level>!` with a per-call-site budget of [`BURST`] lines per
/// [`WINDOW`]; a written line carries `suppressed = N` when some were not.
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::ratelog::RateLimit =
            $crate::ratelog::RateLimit::new($crate::ratelog::BURST, $crate::ratelog::WINDOW);
        if let Some(suppressed) = LIMIT.allow(::std::time::Instant::now()) {
            if suppressed > 0 {
                ::tracing::$level!(suppressed, $($arg)+);
            } else {
                ::tracing::$level!($($arg)+);
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_counted() {
        let l = RateLimit::new(3, Duration::from_secs(10));
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
        let l = RateLimit::new(BURST, WINDOW);
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
        }
    }
}
