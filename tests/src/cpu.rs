//! CPU time of one thread, read from another: "per CPU-second" figures for
//! the benchmarks, far less sensitive to other load on a shared host than
//! packets per wall second (a thread that waits for the CPU is not charged).
use std::time::Duration;

/// The CPU-time clock of the thread that made it (`pthread_getcpuclockid`),
/// readable from any thread of the process while that thread lives.
#[derive(Clone, Copy, Debug)]
pub struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    /// The calling thread's clock.
    pub fn current() -> ThreadClock {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid; `id` is a plain out-parameter.
        let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        assert_eq!(r, 0, "pthread_getcpuclockid: {r}");
        ThreadClock(id)
    }

    /// CPU time (user and system) the thread has used so far.
    pub fn now(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a plain out-parameter; an invalid clock returns an error.
        let r = unsafe { libc::clock_gettime(self.0, &mut ts) };
        assert_eq!(r, 0, "clock_gettime of a thread's CPU clock");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// The first three fields of /proc/loadavg, printed beside a bench's figures.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A bench setting from the environment: `name` parsed, or `default` when
/// unset or not a number.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rusage_self() -> Duration {
        // SAFETY: plain out-parameter.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD: the calling thread's usage.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(u.ru_utime) + tv(u.ru_stime)
    }

    #[test]
    fn a_busy_thread_is_charged_and_a_sleeping_one_is_not() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
        let t = std::thread::spawn(move || {
            tx.send(ThreadClock::current()).unwrap();
            while let Ok(spin) = go_rx.recv() {
                if spin {
                    // Until the kernel's own account (getrusage) says 50 ms.
                    let s = rusage_self();
                    while rusage_self() - s < Duration::from_millis(50) {
                        std::hint::black_box(0);
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
                tx.send(ThreadClock::current()).unwrap();
            }
        });
        let c = rx.recv().unwrap();
        let a = c.now();
        go_tx.send(false).unwrap();
        rx.recv().unwrap();
        let b = c.now();
        assert!(
            b - a < Duration::from_millis(20),
            "sleeping charged {:?}",
            b - a
        );
        go_tx.send(true).unwrap();
        rx.recv().unwrap();
        let d = c.now();
        assert!(
            d - b >= Duration::from_millis(49),
            "spinning charged {:?}",
            d - b
        );
        drop(go_tx);
        t.join().unwrap();
    }
}
