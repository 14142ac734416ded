//! A real etcd cluster for the cluster tests: `etcd` processes (Debian
//! etcd-server) started by the test, each on its own address, data in the
//! test's temp directory; killed and removed on drop, also on panic.
//!
//! Members can be killed (SIGKILL) and started again on the same data, to
//! take the quorum away and give it back.
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::lab::{interruptible_sleep, wait_timeout};
use crate::netns::Netns;

/// Where a member listens: its namespace and address, client and peer ports.
#[derive(Clone, Debug)]
pub struct Placement {
    pub ns: String,
    pub ip: String,
    pub client_port: u16,
    pub peer_port: u16,
}

impl Placement {
    pub fn client_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }
    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.peer_port)
    }
}

pub struct Member {
    pub name: String,
    pub at: Placement,
    /// Its data directory (kept across `restart`).
    pub data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
}

impl Member {
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Its process id (`ip netns exec` execs etcd: the same process).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let l: Vec<&str> = s.lines().collect();
        l[l.len().saturating_sub(n)..].join("\n")
    }
}

/// A running etcd cluster.
pub struct EtcdCluster {
    pub members: Vec<Member>,
    token: String,
}

/// Is etcd installed?
pub fn available() -> bool {
    crate::lab::have("etcd") && crate::lab::have("etcdctl")
}

impl EtcdCluster {
    /// Starts one member per placement (all at once: they need each other
    /// to elect a leader) and waits until the cluster answers.
    pub fn start(dir: &Path, at: &[Placement], extra: &[&str]) -> Result<EtcdCluster> {
        let token = format!(
            "pmip-{}-{}",
            std::process::id(),
            dir.display().to_string().len()
        );
        let initial: Vec<String> = at
            .iter()
            .enumerate()
            .map(|(i, p)| format!("e{}={}", i + 1, p.peer_url()))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, p) in at.iter().enumerate() {
            let name = format!("e{}", i + 1);
            let data = dir.join(format!("etcd-{name}"));
            std::fs::create_dir_all(&data)?;
            let mut args: Vec<String> = [
                "--name",
                &name,
                "--data-dir",
                data.to_str().unwrap(),
                "--listen-client-urls",
                &p.client_url(),
                "--advertise-client-urls",
                &p.client_url(),
                "--listen-peer-urls",
                &p.peer_url(),
                "--initial-advertise-peer-urls",
                &p.peer_url(),
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                &token,
                "--initial-cluster-state",
                "new",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            members.push(Member {
                name: name.clone(),
                at: p.clone(),
                log: dir.join(format!("etcd-{name}.log")),
                data,
                child: None,
                args,
            });
        }
        let mut c = EtcdCluster { members, token };
        for i in 0..c.members.len() {
            c.spawn(i)?;
        }
        c.wait_healthy(c.members.len(), Duration::from_secs(30))?;
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::File::create(&m.log)?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &m.at.ns, "etcd"])
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting etcd {}", m.name))?;
        m.child = Some(child);
        Ok(())
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.at.client_url()).collect()
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        // Started again, the member finds its data: the initial-cluster flags do not apply.
        if let Some(a) = self.members[i]
            .args
            .iter()
            .position(|a| a == "--initial-cluster-state")
        {
            self.members[i].args[a + 1] = "existing".into();
        }
        self.spawn(i)
    }

    /// `etcdctl ARGS` against the running members, from the namespace of
    /// the first running member.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let m = self
            .members
            .iter()
            .find(|m| m.child.is_some())
            .context("no etcd member running")?;
        let eps = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.at.client_url())
            .collect::<Vec<_>>()
            .join(",");
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &m.at.ns, "etcdctl", "--endpoints", &eps])
            .args(["--command-timeout", "3s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .output()?;
        if !o.status.success() {
            bail!(
                "etcdctl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Waits until `n` members report healthy.
    pub fn wait_healthy(&mut self, n: usize, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        loop {
            // etcdctl writes the text form to stderr; the JSON one to stdout.
            let healthy = self
                .ctl(&["endpoint", "health", "-w", "json"])
                .map(|o| o.matches("\"health\":true").count())
                .unwrap_or(0);
            if healthy >= n {
                return Ok(());
            }
            for m in &mut self.members {
                if m.child.is_some() && !m.running() {
                    bail!("etcd {} exited:\n{}", m.name, m.log_tail(20));
                }
            }
            if Instant::now() > end {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("--- {}:\n{}", m.name, m.log_tail(10)))
                    .collect();
                bail!(
                    "etcd: {healthy} of {n} members healthy after {within:?}\n{}",
                    logs.join("\n")
                );
            }
            interruptible_sleep(Duration::from_millis(200))?;
        }
    }

    /// Every key and value under `prefix`. Values are bytes (an anchor's
    /// binding record is binary since issue 17's compact form): etcdctl
    /// prints them hex-encoded, one `\xNN` per byte, so a newline in a value
    /// cannot split it.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let out = self.ctl(&["--hex", "get", "--prefix", prefix])?;
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| {
                let k = String::from_utf8(unhex(c[0])?).context("etcd key not UTF-8")?;
                Ok((k, unhex(c[1])?))
            })
            .collect()
    }

    /// Every key under `prefix` with its value and mod revision.
    pub fn get_prefix_rev(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>, i64)>> {
        let out = self.ctl(&["get", "--prefix", prefix, "-w", "json"])?;
        let v: serde_json::Value = serde_json::from_str(&out).context("etcdctl get -w json")?;
        let mut got = Vec::new();
        for kv in v["kvs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let k = unbase64(kv["key"].as_str().context("key")?)?;
            let val = unbase64(kv["value"].as_str().unwrap_or_default())?;
            let rev = kv["mod_revision"].as_i64().context("mod_revision")?;
            got.push((
                String::from_utf8(k).context("etcd key not UTF-8")?,
                val,
                rev,
            ));
        }
        Ok(got)
    }

    /// The live anchor binding records of a service address prefix
    /// (`P/svc/<address>/`), in either store layout (`store::pack::resolve`):
    /// per binding the newest copy, tombstones removed.
    pub fn bindings(
        &self,
        svc_prefix: &str,
    ) -> Result<Vec<(pmip_user::store::RecordKey, pmip_user::store::Record)>> {
        let kvs = self.get_prefix_rev(svc_prefix)?;
        let r = pmip_user::store::pack::resolve(
            kvs.iter()
                .filter_map(|(k, v, rev)| Some((k.strip_prefix(svc_prefix)?, v.as_slice(), *rev))),
        );
        ensure!(
            r.skipped == 0,
            "{} keys of {svc_prefix} did not decode",
            r.skipped
        );
        Ok(r.records
            .into_iter()
            .filter(|(k, _)| *k != pmip_user::store::RecordKey::Node)
            .collect())
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Standard base64 (what etcdctl -w json prints keys and values in).
fn unbase64(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => anyhow::bail!("not base64: {s:?}"),
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// What etcdctl --hex prints: `\xNN` per byte.
fn unhex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    let mut out = Vec::with_capacity(s.len() / 4);
    for part in s.split("\\x").skip(1) {
        ensure!(part.len() == 2, "etcdctl --hex: {s:?}");
        out.push(u8::from_str_radix(part, 16).with_context(|| format!("etcdctl --hex: {s:?}"))?);
    }
    ensure!(
        out.len() * 4 == s.len(),
        "etcdctl --hex: not hex-encoded: {s:?}"
    );
    Ok(out)
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = wait_timeout(&mut c, Duration::from_secs(2));
            }
        }
    }
}

/// Placements for `n` members on loopback addresses of one namespace
/// (127.0.0.11, .12, ...): for tests that need etcd but no network.
pub fn on_loopback(ns: &Netns, n: usize) -> Vec<Placement> {
    (0..n)
        .map(|i| Placement {
            ns: ns.name.clone(),
            ip: format!("127.0.0.{}", 11 + i),
            client_port: 2379,
            peer_port: 2380,
        })
        .collect()
}
