//! Running child processes a few at a time (the test binaries, the fuzz
//! targets): the machine has few cores, and each job wants one or two.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Result;

/// A job's running process, with its log and start time.
pub struct Running<J> {
    pub job: J,
    pub child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl<J> Running<J> {
    /// `child` just spawned for `job`, writing to `log`.
    pub fn new(job: J, child: Child, log: PathBuf) -> Self {
        let started = Instant::now();
        Running {
            job,
            child,
            log,
            started,
        }
    }
}

impl<J> AsMut<Child> for Running<J> {
    fn as_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// Runs `jobs`, `width` at a time: `start` spawns one (its value holds the
/// child), `done` takes each as it exits, with its status. Exits are
/// looked for every `tick`.
pub fn run_pool<J, R: AsMut<Child>>(
    jobs: impl IntoIterator<Item = J>,
    width: usize,
    tick: Duration,
    mut start: impl FnMut(J) -> Result<R>,
    mut done: impl FnMut(R, ExitStatus) -> Result<()>,
) -> Result<()> {
    let mut queue: VecDeque<J> = jobs.into_iter().collect();
    let mut running: Vec<R> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < width.max(1) {
            let Some(j) = queue.pop_front() else { break };
            running.push(start(j)?);
        }
        std::thread::sleep(tick);
        let mut i = 0;
        while i < running.len() {
            match running[i].as_mut().try_wait()? {
                Some(st) => done(running.swap_remove(i), st)?,
                None => i += 1,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    struct Job(bool, Child);
    impl AsMut<Child> for Job {
        fn as_mut(&mut self) -> &mut Child {
            &mut self.1
        }
    }

    #[test]
    fn every_job_runs_once_and_reports_its_status() {
        let mut seen = Vec::new();
        run_pool(
            [true, false, true, true, false],
            2,
            Duration::from_millis(5),
            |ok| {
                Ok(Job(
                    ok,
                    Command::new(if ok { "true" } else { "false" }).spawn()?,
                ))
            },
            |j, st| {
                assert_eq!(j.0, st.success());
                seen.push(j.0);
                Ok(())
            },
        )
        .unwrap();
        seen.sort();
        assert_eq!(seen, [false, false, true, true, true]);
    }
}
