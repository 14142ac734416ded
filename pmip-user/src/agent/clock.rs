//! The one clock of the agent. State machines take the monotonic `now` the
//! shell passes in; the wire needs wall time (RFC 5213 §8.8 timestamps,
//! RFC 3344 §5.7.1 NTP identifications). A [`Clock`] maps one to the other
//! from a single wall-clock reading, so simulated time moves both.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Clock {
    pub fn new(at: Instant, wall: SystemTime) -> Self {
        Clock { at, wall }
    }

    /// Wall-clock time at `now`.
    pub fn wall(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.at)
    }

    /// The RFC 5213 §8.8 timestamp at `now`: 48-bit seconds since 1970 and a
    /// 16-bit fraction.
    pub fn timestamp(&self, now: Instant) -> u64 {
        let d = self
            .wall(now)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_secs() << 16) | ((u64::from(d.subsec_nanos()) << 16) / 1_000_000_000)
    }

    /// The 64-bit NTP time at `now` (RFC 3344 §5.7.1 Identification).
    pub fn ntp(&self, now: Instant) -> u64 {
        ntp_from_system(self.wall(now))
    }
}

/// 64-bit NTP format of a wall-clock time.
pub fn ntp_from_system(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Era 0 wraps in 2036; the 32-bit seconds field wraps with it.
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The magnitude of `a - b` between two RFC 5213 timestamps.
pub fn timestamp_distance(a: u64, b: u64) -> Duration {
    let diff = a.abs_diff(b);
    Duration::from_secs(diff >> 16) + Duration::from_nanos(((diff & 0xffff) * 1_000_000_000) >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_ntp_move_with_now() {
        let t0 = Instant::now();
        let c = Clock::new(t0, UNIX_EPOCH + Duration::from_secs(1_000_000));
        assert_eq!(c.timestamp(t0), 1_000_000 << 16);
        assert_eq!(
            c.timestamp(t0 + Duration::from_millis(500)),
            (1_000_000 << 16) | 0x8000
        );
        assert_eq!(c.ntp(t0) >> 32, 1_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(
            timestamp_distance(c.timestamp(t0), c.timestamp(t0 + Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
