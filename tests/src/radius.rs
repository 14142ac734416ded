//! A real FreeRADIUS (Debian `freeradius`, 3.2) for the AAA tests: a generated configuration
//! directory (clients, a users file, accounting to a detail file), `freeradius -f -d DIR` in a
//! network namespace, readiness by Status-Server (`radclient`), and a reader for the detail
//! file. Stopped on drop; the directory is the caller's.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// What one server instance listens on, whom it answers and with which profiles.
#[derive(Clone, Debug)]
pub struct RadiusConf {
    pub listen: IpAddr,
    pub auth_port: u16,
    pub acct_port: u16,
    /// (client address or prefix, secret).
    pub clients: Vec<(String, String)>,
    /// The `users` file (rlm_files), e.g. from [`seed_users`].
    pub users: String,
    /// Worker threads (the throughput measurement wants more than the tests).
    pub threads: u32,
}

/// The seeds' example profiles, keyed by the MAC as Calling-Station-Id/User-Name in IETF
/// lower-case format (seed 004: `radius-server attribute 31 mac format ietf lower-case`);
/// the password is the MAC too (MAC authorization).
/// - `00-24-d7-8e-21-a4`: seed 004's Cisco-AVPairs (PMIPv6 MAG), plus an attribute of a
///   vendor pmip does not know (`Attr-26` raw: vendor 65535).
/// - `02-00-00-00-00-02`: seed 000's StarOS attributes (PMIPv4 with HA failover), as FreeRADIUS
///   names them (3GPP2-MIP-HA-Address is `3GPP2-Home-Agent-IP-Address` there).
/// - `mn0@example.com`: by NAI.
pub fn seed_users() -> String {
    r#""00-24-d7-8e-21-a4" Cleartext-Password := "00-24-d7-8e-21-a4"
	Cisco-AVPair = "mn-nai=mn0@example.com",
	Cisco-AVPair = "mn-service=ipv4",
	Cisco-AVPair = "home-lma-ipv6-address=2001:db8:cafe:1024::101",
	Cisco-AVPair = "home-lma-ipv4-address=10.8.24.101",
	Cisco-AVPair = "home-lma=lma1",
	Cisco-AVPair = "mn-apn=example.com",
	Cisco-AVPair = "cisco-mpc-protocol-interface=pmipv6",
	Attr-26 = 0x0000ffff0105616263,
	Class = "seed004",
	Session-Timeout = 3600

"02-00-00-00-00-02" Cleartext-Password := "02-00-00-00-00-02"
	SN-Subscriber-Permission = Simple-IP,
	SN-Proxy-MIP = Enabled,
	SN-Simultaneous-SIP-MIP = Disabled,
	SN-PDSN-Handoff-Req-IP-Addr = Enabled,
	3GPP2-Home-Agent-IP-Address = 192.0.2.1,
	3GPP2-Home-Agent-IP-Address = 192.0.2.2,
	Framed-IP-Address = 10.77.5.5,
	Framed-Pool = "PMIP_IPv4_POOL",
	SN-Primary-DNS-Server = 198.51.100.250,
	SN-Secondary-DNS-Server = 198.51.100.251,
	Acct-Interim-Interval = 600,
	Session-Timeout = 1800

"mn0@example.com" Cleartext-Password := "mn0@example.com"
	Cisco-AVPair = "mn-service=dual",
	Cisco-AVPair = "home-lma=lma1"

DEFAULT Auth-Type := Reject
	Reply-Message = "no profile"
"#
    .to_string()
}

/// Any subscriber `02-00-00-xx-xx-xx` accepted with a small profile: for the throughput run.
pub fn bulk_users() -> String {
    // rlm_files matches a regular expression on User-Name with `=~` in the check items.
    r#"DEFAULT User-Name =~ "^02-00-00-", Auth-Type := Accept
	Cisco-AVPair = "home-lma=lma1",
	Session-Timeout = 3600
"#
    .to_string()
}

fn radiusd_conf(dir: &Path, c: &RadiusConf) -> String {
    let d = dir.display();
    // The readiness probe comes from whichever address the server's namespace picks: any
    // address, the least specific entry (FreeRADIUS takes the longest match, so the clients
    // below keep their own secrets).
    let any = if c.listen.is_ipv4() {
        "0.0.0.0/0"
    } else {
        "::/0"
    };
    let mut clients =
        format!("client probe {{\n  ipaddr = {any}\n  secret = \"{PROBE_SECRET}\"\n}}\n");
    for (i, (addr, secret)) in c.clients.iter().enumerate() {
        let _ = writeln!(
            clients,
            "client c{i} {{\n  ipaddr = {addr}\n  secret = \"{secret}\"\n}}"
        );
    }
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}/log
raddbdir = {d}
radacctdir = {d}/acct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}
run_dir = {d}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = 30
cleanup_delay = 2
max_requests = 1048576
hostname_lookups = no
log {{
  destination = files
  file = ${{logdir}}/radius.log
  auth = no
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
thread pool {{
  start_servers = {t}
  max_servers = {t}
  min_spare_servers = 1
  max_spare_servers = {t}
  max_requests_per_server = 0
  max_queue_size = 65536
}}
{clients}
modules {{
  files {{
    filename = ${{confdir}}/users
  }}
  pap {{
  }}
  detail {{
    filename = ${{radacctdir}}/detail
    escape_filenames = no
    permissions = 0600
    header = "%t"
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = {ip}
    port = {ap}
  }}
  listen {{
    type = acct
    ipaddr = {ip}
    port = {cp}
  }}
  authorize {{
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  preacct {{
  }}
  accounting {{
    detail
  }}
  post-auth {{
  }}
}}
"#,
        t = c.threads.max(1),
        ip = c.listen,
        ap = c.auth_port,
        cp = c.acct_port,
    )
}

const PROBE_SECRET: &str = "status-probe";

/// A running FreeRADIUS.
pub struct FreeRadius {
    pub dir: PathBuf,
    pub conf: RadiusConf,
    ns_name: String,
    child: Option<Child>,
}

impl FreeRadius {
    /// Writes the configuration under `dir` (created) and starts the server in `ns`; returns
    /// once it answers Status-Server.
    pub fn start(ns: &Netns, dir: &Path, conf: RadiusConf) -> Result<FreeRadius> {
        for sub in ["log", "acct", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("radiusd.conf"), radiusd_conf(dir, &conf))?;
        std::fs::write(dir.join("users"), &conf.users)?;
        let mut s = FreeRadius {
            dir: dir.to_path_buf(),
            conf,
            ns_name: ns.name.clone(),
            child: None,
        };
        s.restart(ns)?;
        Ok(s)
    }

    /// Starts the server again (after `stop`), same configuration and detail file.
    pub fn restart(&mut self, ns: &Netns) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("log/stdout"))?;
        let child = ns
            .command("freeradius")
            .args(["-f", "-d"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning freeradius (Debian package freeradius)")?;
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    bail!("freeradius exited ({st}): {}", self.log());
                }
            }
            if self.status(ns) {
                return Ok(());
            }
        }
        bail!("freeradius did not answer Status-Server: {}", self.log())
    }

    /// One Status-Server probe (radclient waits up to 0.3 s for the answer).
    fn status(&self, ns: &Netns) -> bool {
        let target = format!("{}:{}", fmt_ip(self.conf.listen), self.conf.auth_port);
        let mut c = ns.command("radclient");
        c.args([
            "-r",
            "1",
            "-t",
            "0.3",
            "-q",
            &target,
            "status",
            PROBE_SECRET,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let Ok(mut child) = c.spawn() else {
            return false;
        };
        if let Some(mut i) = child.stdin.take() {
            use std::io::Write;
            let _ = i.write_all(b"Message-Authenticator = 0x00\n");
        }
        child.wait().is_ok_and(|s| s.success())
    }

    /// Stops the server (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::lab::signal_child(&mut c, libc::SIGTERM);
            if crate::lab::wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("log/stdout")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.dir.join("log/radius.log")).unwrap_or_default());
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The accounting records in the detail file, in order.
    pub fn detail(&self) -> Vec<DetailRecord> {
        let text = std::fs::read_to_string(self.dir.join("acct/detail")).unwrap_or_default();
        parse_detail(&text)
    }

    pub fn namespace(&self) -> &str {
        &self.ns_name
    }

    /// CPU time the server has used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces): utime and stime are the
        // 12th and 13th after the closing parenthesis.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_millis(ticks * 1000 / hz))
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fmt_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// One record of a detail file: attribute name → values (in order).
#[derive(Clone, Debug, Default)]
pub struct DetailRecord(pub HashMap<String, Vec<String>>);

impl DetailRecord {
    /// The first value of `name`, unquoted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.trim_matches('"'))
    }
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }
}

/// Records are separated by blank lines; the first line is the date header, then
/// `\tName = value` lines.
pub fn parse_detail(text: &str) -> Vec<DetailRecord> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut r = DetailRecord::default();
        for line in block.lines().filter(|l| l.starts_with('\t')) {
            if let Some((k, v)) = line.trim().split_once(" = ") {
                r.0.entry(k.to_string()).or_default().push(v.to_string());
            }
        }
        if !r.0.is_empty() {
            out.push(r);
        }
    }
    out
}

/// Runs `radclient` in `ns` with `attrs` (one line, comma-separated) as input; returns its
/// status and output. `code` is `auth`, `acct`, `disconnect`, `coa` or `status`.
pub fn radclient(
    ns: &Netns,
    target: &str,
    code: &str,
    secret: &str,
    attrs: &str,
) -> Result<(bool, String)> {
    use std::io::Write;
    let mut c = ns.command("radclient");
    c.args(["-x", "-r", "1", "-t", "1", target, code, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().context("spawning radclient (freeradius-utils)")?;
    child
        .stdin
        .take()
        .context("radclient stdin")?
        .write_all(format!("{attrs}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}
