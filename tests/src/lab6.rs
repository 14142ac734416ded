//! IPv6 and dual-stack subscribers in the lab (`LabOpts::service`): the
//! gateways' `[ipv6]` section and the anchor's prefix pool, IPv6 on the
//! anchor's correspondent side, and what the subscriber's own kernel does
//! with the router advertisements: stock SLAAC (`accept_ra=2`,
//! `autoconf=1`), no software of ours in its namespace.
//!
//! ```text
//!  sub s0 (SLAAC from its HNP, default router = the shared link-local)
//!     ─ br1/br2 (no multicast snooping: RS, DHCPv6 to ff02::2, ff02::1:2)
//!     ─ mag1/mag2 acc0 (RAs and DHCPv6 from pmipd's ND shell)
//!  anchor cn0 2001:db8:cc::1/64 ─ c0 2001:db8:cc::2/64 cn
//! ```
use std::net::Ipv6Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pmip_user::access::frame::parse_mac;
use pmip_user::access::frame6::link_local_from_mac;
use pmip_user::config::Service;

use crate::lab::{self, interruptible_sleep, run_all, Iperf, Lab, LabOpts, Proto, GW_MAC};

/// The anchor's prefix pool: each subscriber gets a /64 of it.
pub const HNP_POOL: &str = "2001:db8:64::/48";
/// The first 48 bits of every home network prefix, as `ip` prints them.
pub const HNP_HEAD: &str = "2001:db8:64:";
pub const CN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, 2);
pub const CN6_GW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, 1);
/// RDNSS / DHCPv6 DNS server the gateways announce.
pub const DNS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, 0x53);

/// The default router every gateway advertises: the EUI-64 link-local
/// address of the shared access MAC (RFC 5213 §6.8).
pub fn router_ll() -> Ipv6Addr {
    link_local_from_mac(parse_mac(GW_MAC).expect("GW_MAC parses"))
}

/// The access gateway's profile service and `[ipv6]` section (nothing for
/// an IPv4 lab, which stays exactly as before).
pub(crate) fn access_config6(o: &LabOpts) -> String {
    if o.proto != Proto::Pmipv6 || !o.service.ipv6() {
        return String::new();
    }
    let service = match o.service {
        Service::Ipv4 => "ipv4",
        Service::Ipv6 => "ipv6",
        Service::Dual => "dual",
    };
    format!(
        "service = \"{service}\"\n\n[ipv6]\nrouter_mac = \"{GW_MAC}\"\nra_interval_max_s = {}\ndns = [\"{DNS6}\"]\n",
        o.ra_interval_s
    )
}

/// The anchor's IPv6 prefix pool.
pub(crate) fn anchor_config6(o: &LabOpts) -> String {
    if o.proto != Proto::Pmipv6 || !o.service.ipv6() {
        return String::new();
    }
    format!("\n[[pools]]\nname = \"home6\"\nprefix = \"{HNP_POOL}\"\nassign_len = 64\n")
}

/// What the subscriber's kernel configured from the router advertisements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slaac {
    /// "2001:db8:64:0:...:.../64"
    pub addr: String,
    pub valid_lft: u64,
    /// The default route's gateway.
    pub router: String,
    /// The IPv6 MTU of s0 (from the RA's MTU option).
    pub mtu: String,
    /// From the node's first RS on the wire to the gateway's RA (the
    /// registration's share), and to the address usable (the kernel
    /// announces it once DAD passed: up to 1 s of random delay and 1 s of
    /// DAD are the node's own, RFC 4862 §5.4.2), ms.
    pub rs_to_ra_ms: Option<f64>,
    pub rs_to_configured_ms: Option<f64>,
}

/// One `ip -o -6 addr` line: address/len, tentative, valid_lft.
fn addrs_of(text: &str) -> Vec<(String, bool, u64)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let a = w.get(w.iter().position(|x| *x == "inet6")? + 1)?;
            let lft = w
                .iter()
                .position(|x| *x == "valid_lft")
                .and_then(|i| w.get(i + 1))
                .map(|v| v.trim_end_matches("sec").parse().unwrap_or(u64::MAX))
                .unwrap_or(0);
            Some((a.to_string(), l.contains("tentative"), lft))
        })
        .collect()
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "[2026-12-04T17:23:46.176530] ..." (`ip -ts monitor`, TZ=UTC) → epoch s.
pub fn monitor_time(line: &str) -> Option<f64> {
    let ts = line.strip_prefix('[')?.split(']').next()?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let mi: f64 = t.next()?.parse().ok()?;
    let s: f64 = t.next()?.parse().ok()?;
    Some(days_from_civil(y, mo, da) as f64 * 86400.0 + h * 3600.0 + mi * 60.0 + s)
}

/// Kills and reaps a helper, returning what it printed.
fn finish(mut c: Child) -> String {
    let _ = c.kill();
    let mut text = String::new();
    if let Some(mut o) = c.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut text);
    }
    let _ = c.wait();
    text
}

/// The result of a handover of an IPv6 subscriber under load: addresses
/// and router around it, and (through `Deref`) what the stream and the
/// ping6 saw.
#[derive(Clone, Debug, Default)]
pub struct Handover6 {
    pub before: Slaac,
    pub after: Slaac,
    /// `ip -6 neigh` of the router before and after (lladdr, router flag).
    pub neigh_before: String,
    pub neigh_after: String,
    pub stream: lab::UnderLoad,
}

impl std::ops::Deref for Handover6 {
    type Target = lab::UnderLoad;
    fn deref(&self) -> &lab::UnderLoad {
        &self.stream
    }
}

impl Lab {
    /// The IPv6 parts of the topology: bridges that flood multicast (a
    /// snooping bridge would keep RS and DHCPv6 from a gateway whose kernel
    /// never joined the groups: pmipd's ND shell listens below it), IPv6 on
    /// the anchor's links and the correspondent, the subscriber's stock
    /// SLAAC settings (IPv6 itself stays off until [`Lab::attach6`]).
    pub(crate) fn wire6(&self) -> Result<()> {
        let mut sw = Vec::new();
        for k in 1..=self.mags.len() {
            sw.push(format!("ip link set br{k} type bridge mcast_snooping 0"));
        }
        run_all(&self.sw, &sw)?;
        run_all(
            &self.anchor,
            &[
                "sysctl -qw net.ipv6.conf.cn0.disable_ipv6=0".into(),
                "sysctl -qw net.ipv6.conf.core0.disable_ipv6=0".into(),
                format!("ip -6 addr add {CN6_GW}/64 dev cn0 nodad"),
            ],
        )?;
        run_all(
            &self.cn,
            &[
                "sysctl -qw net.ipv6.conf.c0.disable_ipv6=0".into(),
                format!("ip -6 addr add {CN6}/64 dev c0 nodad"),
                format!("ip -6 route add default via {CN6_GW}"),
            ],
        )?;
        let s0 = self.opts.sub_if();
        run_all(
            &self.sub,
            &[
                format!("sysctl -qw net.ipv6.conf.{s0}.accept_ra=2"),
                format!("sysctl -qw net.ipv6.conf.{s0}.autoconf=1"),
            ],
        )
    }

    /// IPv6 on in the subscriber: its kernel forms a link-local address,
    /// solicits, and configures an address from the RA's prefix. Waits for
    /// it (DAD passed) and for the default route; times the attach from the
    /// RS on the wire (switch port capture) to the address.
    pub fn attach6(&mut self) -> Result<Slaac> {
        // The monitor first: it listens as soon as it runs, long before
        // tcpdump says it does.
        let mon = self
            .sub
            .command("ip")
            .args([
                "-ts",
                "-6",
                "monitor",
                "address",
                "dev",
                &self.opts.sub_if(),
            ])
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ip monitor")?;
        let mut rs = self.sw.command("tcpdump");
        rs.args(["-tt", "-n", "-l", "-i", "ps", "-c", "2"])
            .arg("icmp6 and (ip6[40] == 133 or ip6[40] == 134)")
            .stdout(Stdio::piped());
        let rs = crate::capture::spawn_listening(rs, "tcpdump for the RS")?;
        let on = format!("net.ipv6.conf.{}.disable_ipv6=0", self.opts.sub_if());
        self.sub.exec(&["sysctl", "-qw", &on])?;
        let r = self.wait_slaac(Duration::from_secs(20));
        // Let the monitor print the last change before it is stopped.
        std::thread::sleep(Duration::from_millis(100));
        let (rs, mon) = (finish(rs), finish(mon));
        let mut s = r.map_err(|e| {
            anyhow!(
                "{e:#}\n--- mag1 log:\n{}",
                self.access[0]
                    .as_ref()
                    .map(|d| d.log_tail(20))
                    .unwrap_or_default()
            )
        })?;
        let on_wire = |what: &str| {
            rs.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        };
        let t_rs = on_wire("router solicitation");
        let configured = mon
            .lines()
            .find(|l| l.contains(HNP_HEAD) && !l.contains("tentative"))
            .and_then(monitor_time);
        let ms = |t: Option<f64>| Some(((t? - t_rs?) * 1e4).round() / 10.0);
        s.rs_to_ra_ms = ms(on_wire("router advertisement"));
        s.rs_to_configured_ms = ms(configured);
        Ok(s)
    }

    /// Waits until s0 holds a usable address from the pool and a default route.
    pub fn wait_slaac(&self, within: Duration) -> Result<Slaac> {
        let end = Instant::now() + within;
        loop {
            let s = self.slaac()?;
            if !s.addr.is_empty() && !s.router.is_empty() {
                return Ok(s);
            }
            if Instant::now() >= end {
                bail!(
                    "no SLAAC address from {HNP_POOL} with a default route within {within:?}: {s:?}\n{}",
                    self.sub.exec(&["ip", "-6", "addr", "show", "dev", &self.opts.sub_if()])?
                );
            }
            interruptible_sleep(Duration::from_millis(20))?;
        }
    }

    /// `ip -o -6 addr show scope global` of the subscriber's interface.
    fn global_addrs6(&self) -> Result<String> {
        let dev = self.opts.sub_if();
        self.sub.exec(&[
            "ip", "-o", "-6", "addr", "show", "dev", &dev, "scope", "global",
        ])
    }

    /// What s0 holds now (empty fields: not there).
    pub fn slaac(&self) -> Result<Slaac> {
        let a = self.global_addrs6()?;
        let addr = addrs_of(&a)
            .into_iter()
            .find(|(a, tentative, _)| a.starts_with(HNP_HEAD) && !tentative);
        let route = self.sub.exec(&["ip", "-6", "route", "show", "default"])?;
        let router = route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mtu = self
            .sub
            .exec(&[
                "cat",
                &format!("/proc/sys/net/ipv6/conf/{}/mtu", self.opts.sub_if()),
            ])?
            .trim()
            .to_string();
        Ok(Slaac {
            addr: addr.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
            valid_lft: addr.map(|a| a.2).unwrap_or(0),
            router,
            mtu,
            ..Slaac::default()
        })
    }

    /// Global addresses of s0 from the pool, tentative or not.
    pub fn sub_addrs6(&self) -> Result<Vec<String>> {
        let a = self.global_addrs6()?;
        Ok(addrs_of(&a)
            .into_iter()
            .map(|x| x.0)
            .filter(|a| a.starts_with(HNP_HEAD))
            .collect())
    }

    /// The subscriber's neighbour entry of its default router.
    pub fn router_neigh6(&self) -> Result<String> {
        Ok(self
            .sub
            .exec(&[
                "ip",
                "-6",
                "neigh",
                "show",
                &router_ll().to_string(),
                "dev",
                &self.opts.sub_if(),
            ])?
            .trim()
            .to_string())
    }

    /// A counted iperf3 transfer subscriber → correspondent over IPv6.
    pub fn iperf6(&mut self, secs: u32) -> Result<Iperf> {
        self.iperf_server_on(&CN6.to_string())?;
        let o = lab::output_interruptible(self.iperf_client_to(&CN6.to_string(), secs))?;
        Iperf::parse(&o)
    }

    /// Handover to gateway `to` while an IPv6 iperf3 stream (`secs` long)
    /// and a 2 ms ping6 run from the subscriber to the correspondent; the
    /// move happens `at` into the stream. The new gateway learns of the
    /// subscriber from its data (no client of ours re-solicits).
    pub fn handover6_under_load(
        &mut self,
        to: usize,
        secs: u32,
        at: Duration,
    ) -> Result<Handover6> {
        let before = self.slaac()?;
        let neigh_before = self.router_neigh6()?;
        let run = self.under_load(&CN6.to_string(), secs, at, |l| {
            l.handover(to, lab::Trigger::Data)
        })?;
        Ok(Handover6 {
            before,
            after: self.slaac()?,
            neigh_before,
            neigh_after: self.router_neigh6()?,
            stream: run,
        })
    }
}

/// The link-layer address and flags of an `ip -6 neigh` line.
pub fn lladdr(neigh: &str) -> Option<String> {
    neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_parsed() {
        let t = monitor_time("[2026-12-04T17:23:46.176530] 1: lo    inet6 2001:db8::5/64").unwrap();
        // 2026-12-04T00:00:00Z = 1796342400.
        assert!((t - (1_796_342_400.0 + 17.0 * 3600.0 + 23.0 * 60.0 + 46.17653)).abs() < 1e-6);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(monitor_time("valid_lft forever"), None);
        assert_eq!(monitor_time("[garbage]"), None);
    }

    #[test]
    fn addresses_and_neighbours_parsed() {
        let a = "2: s0    inet6 2001:db8:64:0:ff:fe00:aa01/64 scope global tentative dynamic mngtmpaddr \\       valid_lft 29sec preferred_lft 29sec\n\
                 2: s0    inet6 2001:db8:64:1::1/64 scope global \\       valid_lft forever preferred_lft forever";
        let v = addrs_of(a);
        assert_eq!(v[0], ("2001:db8:64:0:ff:fe00:aa01/64".into(), true, 29));
        assert_eq!(v[1], ("2001:db8:64:1::1/64".into(), false, u64::MAX));
        assert_eq!(
            lladdr("fe80::ff:fe00:1 lladdr 02:00:00:00:00:01 router REACHABLE").as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(lladdr("fe80::1 FAILED"), None);
        assert_eq!(router_ll().to_string(), "fe80::ff:fe00:1");
    }
}
