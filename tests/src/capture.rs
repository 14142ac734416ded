//! tcpdump to a pcap file, started and stopped by the test: `start` returns
//! once tcpdump says it is listening, `stop` returns the packets it wrote.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// Spawns a tcpdump command (`what` names it in errors) and returns once it
/// prints "listening on" (up to 5 s): packets sent from then on are seen.
/// Its standard error is read to the end by a thread of its own; standard
/// output is the caller's to set (a pipe for `-l` text, null for `-w`).
/// Killed if it does not get there.
pub fn spawn_listening(mut cmd: std::process::Command, what: &str) -> Result<Child> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let err = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(5);
    let why = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => return Ok(child),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break "exited",
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= end || crate::lab::interrupted() {
            break "not listening";
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    bail!("{what}: {why}")
}

/// A running capture; killed on drop.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// `tcpdump -U -w FILE -i IFACE FILTER` in `ns`, waiting (up to 5 s)
    /// for its "listening on" line.
    pub fn start(ns: &Netns, iface: &str, filter: &str, file: &Path) -> Result<Capture> {
        let mut c = ns.command("tcpdump");
        // -B: a 32 MiB kernel buffer, so a burst of signaling is not dropped
        // by the capture itself. Not --immediate-mode: its ring holds a
        // frame of the whole snap length per packet, a few hundred in all,
        // and drops a burst; packets come in blocks instead, so a caller that
        // needs all of them waits for them (`wait_records`) before `stop`.
        c.args(["-U", "-n", "-B", "32768", "-i", iface, "-w"])
            .arg(file)
            .arg(filter)
            .stdout(Stdio::null());
        let child = spawn_listening(c, &format!("tcpdump on {iface} in {}", ns.name))?;
        Ok(Capture {
            child: Some(child),
            file: file.to_path_buf(),
        })
    }

    /// Waits until the file holds `want` packets (tcpdump writes behind
    /// the traffic on a loaded host), or `within`; returns how many it holds.
    pub fn wait_records(&self, want: usize, within: Duration) -> usize {
        let end = Instant::now() + within;
        loop {
            let n = crate::pcap::records(&self.file);
            if n >= want || Instant::now() >= end {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops tcpdump (SIGINT: it flushes) and returns the packets captured.
    pub fn stop(mut self) -> usize {
        if let Some(mut c) = self.child.take() {
            crate::lab::signal_child(&mut c, libc::SIGINT);
            if crate::lab::wait_timeout(&mut c, Duration::from_secs(3)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        crate::pcap::records(&self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
