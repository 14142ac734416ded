//! tcpdump to a pcap file, started and stopped by the test: `start` returns
//! once tcpdump says it is listening, `stop` returns the packets it wrote.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// A running capture; killed on drop.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// `tcpdump -U -w FILE -i IFACE FILTER` in `ns`, waiting (up to 5 s)
    /// for its "listening on" line.
    pub fn start(ns: &Netns, iface: &str, filter: &str, file: &Path) -> Result<Capture> {
        let mut child = ns
            .command("tcpdump")
            .args(["-U", "-n", "-i", iface, "-w"])
            .arg(file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning tcpdump")?;
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
        let cap = Capture {
            child: Some(child),
            file: file.to_path_buf(),
        };
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok(cap),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("tcpdump on {iface} in {} exited", ns.name)
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= end || crate::lab::interrupted() {
                bail!("tcpdump on {iface} in {} not listening", ns.name);
            }
        }
    }

    /// Stops tcpdump (SIGINT: it flushes) and returns the packets captured.
    pub fn stop(mut self) -> usize {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
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
