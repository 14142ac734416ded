//! Network namespaces and veth pairs for tests, removed on drop (also on panic).
//!
//! Every namespace name carries the test's prefix and the process id, so that
//! parallel tests and leftover namespaces of a crashed run never collide.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace created with `ip netns add`; deleted on drop together
/// with every interface inside it (which takes the veth peers with them).
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Run a host command (e.g. `ip link ...`), failing with its stderr.
pub fn sh(args: &[&str]) -> Result<String> {
    let out = run(Command::new(args[0]).args(&args[1..]))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Netns {
    /// Creates `<prefix>-<pid>-<n>` with loopback up. Names stay under 15
    /// characters when `prefix` has at most 4, so they can double as link names.
    pub fn new(prefix: &str) -> Result<Self> {
        let name = format!(
            "{prefix}{}x{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace; fails with its output if it fails.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let out = run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command inside the namespace and returns its output whatever its status.
    pub fn exec_status(&self, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("spawning {args:?} in {}", self.name))
    }

    /// Starts a long-running command in the namespace; it is killed on drop.
    pub fn spawn(&mut self, args: &[&str]) -> Result<&mut Child> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {args:?} in {}", self.name))?;
        self.children.push(child);
        Ok(self.children.last_mut().unwrap())
    }

    /// Waits until a TCP socket listens on `port` here (`ss -ltn`), or with
    /// `listening` false until none does: for servers started in the
    /// background (iperf3) before their client, and for the port of one
    /// that served its test to be free again before the next is started.
    pub fn wait_tcp_listen(&self, port: u16, listening: bool, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        let want = format!(":{port} ");
        loop {
            let o = self.exec_status(&["ss", "-Hltn"])?;
            if String::from_utf8_lossy(&o.stdout).contains(&want) == listening {
                return Ok(());
            }
            if Instant::now() >= end {
                let what = if listening {
                    "nothing listens"
                } else {
                    "something still listens"
                };
                bail!(
                    "{what} on TCP port {port} in {} after {within:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to every process named `comm` whose network namespace is this
    /// one (`ip netns pids`): for daemons that went to the background
    /// (`dhclient -1`), without trusting a pid file that may name a pid
    /// reused since by another test's process.
    pub fn kill_named(&self, comm: &str) -> usize {
        let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        else {
            return 0;
        };
        let mut n = 0;
        for pid in String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == comm);
            // SAFETY: a signal to a process that is in our namespace and
            // has the name we started it with.
            if named && unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
                n += 1;
            }
        }
        n
    }

    /// Builds a command that runs in the namespace; the caller owns the child.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a new thread that has entered the namespace (setns), and
    /// returns its result. Sockets opened inside `f` live in the namespace.
    pub fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let h = self.thread(f)?;
        h.join()
            .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.name))
    }

    /// Like [`run_in`](Self::run_in) but returns the join handle.
    pub fn thread<F, R>(&self, f: F) -> Result<std::thread::JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            // SAFETY: plain syscall on a valid fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let _ = tx.send(rc);
            if rc != 0 {
                panic!("setns failed: {}", std::io::Error::last_os_error());
            }
            f()
        });
        match rx.recv() {
            Ok(0) => Ok(h),
            _ => {
                let _ = h.join();
                bail!("setns into {} failed", self.name)
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Creates a veth pair with one end in each namespace, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    // Create in `a` directly so the host never holds the link, then move the peer.
    a.exec(&[
        "ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    a.exec(&["ip", "link", "set", a_if, "up"])?;
    b.exec(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// Steers the receive processing of `dev` (in `ns`) to `cpu` with RPS.
///
/// A veth hands each frame to its peer's backlog on the sending CPU, so the
/// receiver's whole IP/UDP input (and the segmentation of a GSO run for a
/// socket without `UDP_GRO`) runs in the sender's softirq and is charged to
/// the sending thread. Between two hosts it runs on the receiver's host; a
/// benchmark that measures one thread's CPU per message steers each side's
/// input to its own core so that each thread pays for its own receive path
/// and not for its peer's.
pub fn steer_rx(ns: &Netns, dev: &str, cpu: u32) -> Result<()> {
    let mask = format!("{:x}", 1u64 << cpu);
    let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
    ns.exec(&["sh", "-c", &format!("echo {mask} > {path}")])?;
    Ok(())
}

/// True when running as root (namespace tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
