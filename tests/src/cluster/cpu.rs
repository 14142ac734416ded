//! CPU time per binding by process group (issue 17): the etcd members, the
//! anchors (`pmipd`), the driver MAGs (threads of this test process), and
//! the host as a whole, from /proc before the first attach and after the
//! last answer. On a shared 2-core host the wall rate moves with whatever
//! else runs; the CPU a binding costs each group does much less.
use std::time::Duration;

use anyhow::{Context, Result};

use super::ClusterLab;

/// The processes whose CPU is counted.
pub struct CpuGroups {
    etcd: Vec<u32>,
    anchors: Vec<u32>,
}

/// CPU used so far by each group, and the host's busy and idle time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    pub etcd: Duration,
    pub anchors: Duration,
    /// This process (the driver MAGs' threads, those that ended included).
    pub drivers: Duration,
    pub host_busy: Duration,
    pub host_idle: Duration,
}

/// What a window cost per binding, in µs of CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerBinding {
    pub etcd: f64,
    pub anchors: f64,
    pub drivers: f64,
    /// Everything the host ran (other work on the machine included).
    pub host: f64,
    /// Share of the window's CPU time the host had idle, percent.
    pub idle_pct: f64,
}

fn tick() -> Duration {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs(1) / u32::try_from(hz.max(1)).unwrap_or(100)
}

/// utime + stime of a process (all its threads, those that ended included).
pub fn proc_cpu(pid: &str) -> Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields after it start at ')'.
    let rest = &s[s.rfind(')').context("stat without ')'")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5): index 11 and 12 after the name (state is 0).
    let t = |i: usize| -> Result<u32> {
        f.get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .and_then(|v| u32::try_from(v).ok())
            .with_context(|| format!("/proc/{pid}/stat field {}", i + 3))
    };
    Ok(tick() * (t(11)? + t(12)?))
}

/// The host's busy and idle time (first line of /proc/stat).
fn host_cpu() -> Result<(Duration, Duration)> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let line = s.lines().next().context("/proc/stat empty")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let idle = get(3) + get(4);
    let t = |j: u64| tick() * u32::try_from(j).unwrap_or(u32::MAX);
    Ok((t(busy), t(idle)))
}

impl CpuGroups {
    /// The lab's running etcd members and anchors.
    pub fn of(lab: &ClusterLab) -> Result<CpuGroups> {
        let etcd = lab
            .etcd
            .as_ref()
            .context("etcd")?
            .members
            .iter()
            .filter_map(|m| m.pid())
            .collect();
        let anchors = lab
            .anchors
            .iter()
            .flatten()
            .filter_map(|d| d.pid())
            .collect();
        Ok(CpuGroups { etcd, anchors })
    }

    pub fn sample(&self) -> Result<CpuSample> {
        let sum = |pids: &[u32]| -> Result<Duration> {
            pids.iter().map(|p| proc_cpu(&p.to_string())).sum()
        };
        let (host_busy, host_idle) = host_cpu()?;
        Ok(CpuSample {
            etcd: sum(&self.etcd)?,
            anchors: sum(&self.anchors)?,
            drivers: proc_cpu("self")?,
            host_busy,
            host_idle,
        })
    }
}

impl CpuSample {
    /// µs of CPU per binding for each group from `self` to `later`.
    pub fn per_binding(&self, later: &CpuSample, n: usize) -> PerBinding {
        let us =
            |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() * 1e6 / n.max(1) as f64;
        let busy = later.host_busy.saturating_sub(self.host_busy).as_secs_f64();
        let idle = later.host_idle.saturating_sub(self.host_idle).as_secs_f64();
        PerBinding {
            etcd: us(self.etcd, later.etcd),
            anchors: us(self.anchors, later.anchors),
            drivers: us(self.drivers, later.drivers),
            host: us(self.host_busy, later.host_busy),
            idle_pct: 100.0 * idle / (busy + idle).max(1e-9),
        }
    }
}

impl std::fmt::Display for PerBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "etcd members {:.1} µs, anchors {:.1} µs, driver MAGs {:.1} µs, host {:.1} µs ({:.0} % idle)",
            self.etcd, self.anchors, self.drivers, self.host, self.idle_pct
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_is_charged() {
        let t0 = proc_cpu("self").unwrap();
        let s = std::time::Instant::now();
        while proc_cpu("self").unwrap() - t0 < Duration::from_millis(50) {
            assert!(s.elapsed() < Duration::from_secs(20), "no CPU charged");
            std::hint::black_box(0);
        }
        let (busy, idle) = host_cpu().unwrap();
        assert!(busy + idle > Duration::ZERO);
    }
}
