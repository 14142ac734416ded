//! The lab with the operator's AAA (issue 14): a namespace on the lab's core switch with
//! FreeRADIUS instances (tests/src/radius.rs) on two addresses, the gateways' `[aaa]`
//! sections pointing at them, and readers for `pmipctl show aaa` and the detail file.
//!
//! ```text
//!  ... mag1 [core0] ─ [pc1]  sw: brc ─ [pcn] ─ [core0] anchor ...
//!                               └──── [pr] ─ [r0] radius: 10.255.0.20, 10.255.0.21 (FreeRADIUS, radclient)
//! ```
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pmip_user::ctl::{AaaView, Response};

use crate::lab::{self, Daemon, Dhcpc, Lab, Lease};
use crate::netns::{veth, Netns};
use crate::radius::{radclient, DetailRecord, FreeRadius, RadiusConf};

/// The RADIUS servers' addresses on the core subnet, in the gateways' failover order.
pub const SERVERS: [&str; 2] = ["10.255.0.20", "10.255.0.21"];
pub const SECRET: &str = "lab-radius-secret";
pub const DAE_SECRET: &str = "lab-dae-secret";

/// FreeRADIUS, radclient and the lab's tools are here (else the test is skipped).
pub fn skip() -> bool {
    if crate::gateway_cases::skip() {
        return true;
    }
    for p in ["freeradius", "radclient"] {
        if !lab::have(p) {
            eprintln!("skipped: needs {p} (Debian freeradius, freeradius-utils)");
            return true;
        }
    }
    false
}

/// `[aaa]` for the access gateways (`{n}`: the gateway's number) and the anchor: the servers
/// in order, quick retransmissions, Interim-Updates every `interim_s`, a spool, and
/// dynamic authorization from the RADIUS namespace.
pub fn aaa_toml(dir: &Path, node: &str, servers: &[usize], interim_s: u32) -> String {
    let mut c = format!(
        r#"
[aaa]
nas_identifier = "{node}"
retransmit = 1
timeout_s = 0.4
"#
    );
    for &s in servers {
        c.push_str(&format!(
            "[[aaa.servers]]\naddress = \"{}\"\nsecret = \"{SECRET}\"\n",
            SERVERS[s]
        ));
    }
    c.push_str(&format!(
        r#"[aaa.accounting]
interim_interval_s = {interim_s}
retry_interval_s = 0.5
spool = "{spool}"
[aaa.dae]
enabled = true
"#,
        spool = dir.join(format!("{node}.spool")).display()
    ));
    for a in SERVERS {
        c.push_str(&format!(
            "[[aaa.dae.clients]]\naddress = \"{a}\"\nsecret = \"{DAE_SECRET}\"\n"
        ));
    }
    c
}

/// The lab options' `[aaa]` for both roles.
pub fn with_aaa(o: &mut lab::LabOpts, dir: &Path, servers: &[usize], interim_s: u32) {
    o.extra_access
        .push_str(&aaa_toml(dir, "mag{n}", servers, interim_s));
    o.extra_anchor
        .push_str(&aaa_toml(dir, "anchor", servers, interim_s));
}

/// The RADIUS namespace and its servers.
pub struct RadiusSite {
    pub servers: Vec<Option<FreeRadius>>,
    dir: PathBuf,
    pub ns: Netns,
}

impl RadiusSite {
    /// The namespace, wired to the lab's core switch; no server running yet.
    pub fn attach(l: &Lab) -> Result<RadiusSite> {
        let ns = Netns::new(&format!("{}r", l.opts.tag))?;
        veth(&ns, "r0", &l.sw, "pr")?;
        l.sw.exec(&["ip", "link", "set", "pr", "master", "brc"])?;
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        for a in SERVERS {
            ns.exec(&["ip", "addr", "add", &format!("{a}/24"), "dev", "r0"])?;
        }
        let dir = l.dir.0.join("radius");
        std::fs::create_dir_all(&dir)?;
        Ok(RadiusSite {
            servers: SERVERS.iter().map(|_| None).collect(),
            dir,
            ns,
        })
    }

    /// Starts server `i` with `users` (its detail file stays across restarts).
    pub fn start(&mut self, i: usize, users: &str) -> Result<()> {
        let s = FreeRadius::start(
            &self.ns,
            &self.dir.join(format!("r{i}")),
            RadiusConf {
                listen: SERVERS[i].parse()?,
                auth_port: 1812,
                acct_port: 1813,
                // The gateways one by one: the server's own addresses must stay the
                // readiness probe's client.
                clients: lab::CORE_MAG
                    .iter()
                    .chain([&lab::CORE_ANCHOR])
                    .map(|a| (a.to_string(), SECRET.to_string()))
                    .collect(),
                users: users.into(),
                threads: 2,
            },
        )?;
        self.servers[i] = Some(s);
        Ok(())
    }

    pub fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].as_mut() {
            s.stop();
        }
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        let s = self.servers[i].as_mut().context("server never started")?;
        s.restart(&self.ns)
    }

    /// The accounting records server `i` wrote from `nas` (NAS-IP-Address).
    pub fn detail(&self, i: usize, nas: &str) -> Vec<DetailRecord> {
        self.servers[i]
            .as_ref()
            .map(|s| s.detail())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.get("NAS-IP-Address") == Some(nas))
            .collect()
    }

    /// Waits for a record from `nas` that `pred` accepts.
    pub fn wait_record(
        &self,
        i: usize,
        nas: &str,
        within: Duration,
        what: &str,
        pred: impl Fn(&DetailRecord) -> bool,
    ) -> Result<DetailRecord> {
        let end = Instant::now() + within;
        loop {
            let recs = self.detail(i, nas);
            if let Some(r) = recs.iter().find(|r| pred(r)) {
                return Ok(r.clone());
            }
            if Instant::now() >= end {
                bail!(
                    "{what}: no such accounting record from {nas} within {within:?}; records:\n{}",
                    recs.iter().map(summary).collect::<Vec<_>>().join("\n")
                );
            }
            lab::interruptible_sleep(Duration::from_millis(100))?;
        }
    }

    /// `radclient` from this namespace: `code` (disconnect, coa) to `target`'s DAE port.
    pub fn dae(
        &self,
        target: &str,
        code: &str,
        secret: &str,
        attrs: &str,
    ) -> Result<(bool, String)> {
        radclient(&self.ns, &format!("{target}:3799"), code, secret, attrs)
    }
}

/// One line for a record (failure messages, the lab's printout).
pub fn summary(r: &DetailRecord) -> String {
    let g = |k: &str| r.get(k).unwrap_or("-").to_string();
    format!(
        "{} {} session {} user {} framed {} in {} pkts {} B, out {} pkts {} B, time {} s, cause {}",
        g("NAS-Identifier"),
        g("Acct-Status-Type"),
        g("Acct-Session-Id"),
        g("User-Name"),
        g("Framed-IP-Address"),
        g("Acct-Input-Packets"),
        g("Acct-Input-Octets"),
        g("Acct-Output-Packets"),
        g("Acct-Output-Octets"),
        g("Acct-Session-Time"),
        g("Acct-Terminate-Cause"),
    )
}

/// `pmipctl show aaa --json`.
pub fn aaa_view(d: &Daemon) -> Result<AaaView> {
    match d.ctl_json(&["show", "aaa"])? {
        Response::Aaa(v) => Ok(*v),
        other => bail!("show aaa: unexpected {other:?}"),
    }
}

/// A gateway counter of `show aaa` (0 when absent).
pub fn counter(v: &AaaView, name: &str) -> u64 {
    v.gateway.get(name).copied().unwrap_or(0)
}

/// Waits until `pred` holds on `show aaa`.
pub fn wait_aaa(
    d: &Daemon,
    within: Duration,
    what: &str,
    pred: impl Fn(&AaaView) -> bool,
) -> Result<AaaView> {
    let end = Instant::now() + within;
    loop {
        let v = aaa_view(d)?;
        if pred(&v) {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!(
                "{}: {what} not reached within {within:?}:\n{}\nlog:\n{}",
                d.name,
                pmip_user::ctl::format_aaa(&v),
                d.log_tail(20)
            );
        }
        lab::interruptible_sleep(Duration::from_millis(100))?;
    }
}

/// Another subscriber `mac` on gateway 1's access link with its own DHCP client; waits for
/// its lease when `bound` (else returns at once).
pub fn start_subscriber(l: &mut Lab, mac: &str, bound: bool) -> Result<(Dhcpc, Option<Lease>)> {
    let k = l.add_subscriber(mac)?;
    let dir = l.dir.0.join(format!("sub{k}"));
    std::fs::create_dir_all(&dir)?;
    let c = Dhcpc::start(&l.more_subs[k], "s0", &dir, false)?;
    if !bound {
        return Ok((c, None));
    }
    let lease = c.wait_event("bound", 1, Duration::from_secs(25))?;
    Ok((c, Some(lease)))
}

/// The lab subscriber's profile on the RADIUS server, as the seeds write them: seed 004's
/// Cisco AV pairs for PMIPv6, seed 000's StarOS/3GPP2 attributes for PMIPv4.
pub fn lab_users(proto: lab::Proto) -> String {
    let mac = lab::SUB_MAC.replace(':', "-");
    let attrs = match proto {
        lab::Proto::Pmipv6 => vec![
            "Cisco-AVPair = \"mn-nai=mn0@example.com\"",
            "Cisco-AVPair = \"mn-service=ipv4\"",
            "Cisco-AVPair = \"home-lma-ipv4-address=10.255.0.10\"",
            "Cisco-AVPair = \"mn-apn=example.com\"",
            "Cisco-AVPair = \"ip:dns-servers=198.51.100.53\"",
            "Class = \"lab\"",
            "Session-Timeout = 3600",
            "Acct-Interim-Interval = 5",
        ],
        lab::Proto::Pmipv4 => vec![
            "SN-Subscriber-Permission = Simple-IP",
            "SN-Proxy-MIP = Enabled",
            "3GPP2-Home-Agent-IP-Address = 10.255.0.10",
            "SN-Primary-DNS-Server = 198.51.100.250",
            "SN-Secondary-DNS-Server = 198.51.100.251",
            "Class = \"lab\"",
            "Session-Timeout = 3600",
            "Acct-Interim-Interval = 5",
        ],
    };
    format!(
        "\"{mac}\" Cleartext-Password := \"{mac}\"\n\t{}\n\nDEFAULT Auth-Type := Reject\n",
        attrs.join(",\n\t")
    )
}

/// `cargo xtask lab --radius`: FreeRADIUS on the core switch with the lab subscriber's
/// profile, and `[aaa]` in every gateway (Interim-Updates every 5 s). Call between
/// `Lab::topology` and `Lab::start_daemons`.
pub fn lab_radius(l: &mut Lab) -> Result<RadiusSite> {
    let mut r = RadiusSite::attach(l)?;
    r.start(0, &lab_users(l.opts.proto))?;
    let dir = l.dir.0.clone();
    with_aaa(&mut l.opts, &dir, &[0], 5);
    Ok(r)
}

/// The accounting records server 0 holds, one line each, oldest first.
pub fn records_text(r: &RadiusSite) -> Vec<String> {
    r.servers[0]
        .as_ref()
        .map(|s| s.detail())
        .unwrap_or_default()
        .iter()
        .map(summary)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_configs_with_aaa_are_valid() {
        use pmip_user::config::Config;
        let dir = Path::new("/tmp/pmip-lab-cfg");
        for proto in [lab::Proto::Pmipv6, lab::Proto::Pmipv4] {
            let mut o = lab::LabOpts::new(proto, "cfg");
            with_aaa(&mut o, dir, &[0, 1], 5);
            for (name, c) in [
                ("anchor", lab::anchor_config(&o, dir, 2)),
                ("mag2", lab::access_config(&o, dir, 1)),
            ] {
                let cfg = Config::from_toml_str(&c)
                    .unwrap_or_else(|e| panic!("{proto:?} {name}:\n{c}\n{e}"));
                let a = cfg.aaa.expect("[aaa]");
                assert_eq!(a.servers.len(), 2);
                assert_eq!(a.nas_identifier.as_deref(), Some(name));
                assert!(a.dae.enabled);
            }
        }
    }
}
