//! The gateway integration scenarios, written once and run for each protocol
//! by `tests/gateway_pmipv6.rs` and `tests/gateway_pmipv4.rs`: real
//! namespaces, `pmipd run` in every role, busybox udhcpc as the subscriber.
//! Timers are short so the whole set stays within a few minutes.
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::lab::{self, DetachOpts, Lab, LabOpts, Proto, Trigger, CN, GW_ADDR};

/// The scenarios every protocol runs, as `#[test]`s of the calling test file
/// for `$proto`, with `run(f)` (skip without root, panic with the error) for
/// the file's own further cases.
#[macro_export]
macro_rules! gateway_tests {
    ($proto:expr) => {
        const P: $crate::lab::Proto = $proto;

        fn run(f: fn($crate::lab::Proto) -> anyhow::Result<()>) {
            if $crate::gateway_cases::skip() {
                return;
            }
            if let Err(e) = f(P) {
                $crate::lab::fail(e);
            }
        }

        #[test]
        fn attach_and_traffic() {
            run($crate::gateway_cases::attach_and_traffic);
        }

        #[test]
        fn attach_and_traffic_vlan() {
            run($crate::gateway_cases::attach_and_traffic_vlan);
        }

        #[test]
        fn handover_keeps_address_and_tcp_stream() {
            run(|p| $crate::gateway_cases::handover(p, $crate::lab::Trigger::Data));
        }

        #[test]
        fn handover_by_dhcp_reconfirmation() {
            run(|p| $crate::gateway_cases::handover(p, $crate::lab::Trigger::Dhcp));
        }

        #[test]
        fn attach_and_traffic_tc_ingress() {
            run($crate::gateway_cases::attach_and_traffic_tc);
        }

        #[test]
        fn handover_tc_ingress() {
            run($crate::gateway_cases::handover_tc);
        }

        #[test]
        fn dhcp_release_deregisters() {
            run($crate::gateway_cases::release);
        }

        #[test]
        fn isc_dhclient_attaches_and_releases() {
            run($crate::gateway_cases::dhclient);
        }

        #[test]
        fn dhcp_renewal_answered_locally() {
            run($crate::gateway_cases::renewal_answered_locally);
        }

        #[test]
        fn lease_end_deregisters() {
            run($crate::gateway_cases::lease_end);
        }

        #[test]
        fn arp_polling_detects_detach() {
            run($crate::gateway_cases::detach_by_arp);
        }

        #[test]
        fn anchor_expires_binding_of_dead_gateway() {
            run($crate::gateway_cases::lifetime_expiry);
        }

        #[test]
        fn anchor_revocation_drops_subscriber_at_gateway() {
            run($crate::gateway_cases::revocation);
        }

        #[test]
        fn anchor_profile_added_by_reload() {
            run($crate::gateway_cases::anchor_profile_by_reload);
        }

        /// Needs no root: validation happens before any socket or interface.
        #[test]
        fn bad_configs_refused_naming_the_key() {
            if let Err(e) = $crate::gateway_cases::bad_configs(P) {
                $crate::lab::fail(e);
            }
        }
    };
}

/// Root, busybox, iperf3 and ping are needed; without them the case is
/// skipped with a note (CI has them: `cargo xtask test` installs them).
pub fn skip() -> bool {
    if !crate::netns::is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    for p in ["busybox", "iperf3", "ping", "ethtool"] {
        if !lab::have(p) {
            eprintln!("skipped: needs {p}");
            return true;
        }
    }
    false
}

fn opts(proto: Proto, tag: &str, gateways: usize) -> LabOpts {
    let mut o = LabOpts::new(proto, tag);
    o.gateways = gateways;
    o
}

/// Short lifetimes: PMIPv6 counts them in units of 4 s.
fn short_lifetime(o: &mut LabOpts, secs: u32) {
    o.lifetime_s = secs;
    o.refresh_s = secs / 2;
    o.renew_percent = 50;
}

fn one(b: &[pmip_user::ctl::BindingView]) -> bool {
    b.len() == 1
}
fn none(b: &[pmip_user::ctl::BindingView]) -> bool {
    b.is_empty()
}

/// The subscriber gets its address through the registration: lease fields
/// from the anchor's binding, both boxes agree on keys and address; ping
/// both ways through the tunnel, and the gateway answers a ping.
pub fn attach_and_traffic(proto: Proto) -> Result<()> {
    attach_and_traffic_with(opts(proto, "at", 1))
}

/// [`attach_and_traffic`] with the fast path at TC ingress on every gateway
/// (`attach_mode = "tc"`): ARP replies, DHCP to the agent, both tunnel
/// directions through `pmip_tc_ingress`.
pub fn attach_and_traffic_tc(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "atc", 1);
    o.attach_mode = "tc".into();
    attach_and_traffic_with(o)
}

/// [`handover`] (by data) at TC ingress: the new gateway learns of the
/// subscriber from the TC path's unknown-MAC report.
pub fn handover_tc(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "hotc", 2);
    o.attach_mode = "tc".into();
    handover_with(o, Trigger::Data)
}

/// PMIPv6 signaling and GRE over IPv6 on the core: attach, traffic, handover.
pub fn ipv6_transport() -> Result<()> {
    let mut o = opts(Proto::Pmipv6, "v6t", 1);
    o.ipv6_transport = true;
    attach_and_traffic_with(o.clone())?;
    o.gateways = 2;
    o.tag = "v6h".into();
    handover_with(o, Trigger::Data)
}

/// Issue 12: an 802.1Q access link end to end — the access interface is the
/// VLAN sub-interface acc0.100 (`interfaces.access[].vlan = 100`), the
/// subscriber tags its frames: DHCP, registration, traffic both ways, and
/// the binding keyed by the tag the frames carry where the fast path sees
/// them (none on a sub-interface), shown with the link's VLAN.
pub fn attach_and_traffic_vlan(proto: Proto) -> Result<()> {
    if !vlan_devices(proto)? {
        eprintln!("skipped: this kernel has no 802.1Q VLAN devices (CONFIG_VLAN_8021Q)");
        return Ok(());
    }
    let mut o = opts(proto, "vl", 1);
    o.vlan = Some(100);
    // No native XDP on a VLAN device.
    o.attach_mode = "generic".into();
    attach_and_traffic_with(o)
}

/// Whether `ip link add ... type vlan` works here (a scratch namespace).
pub fn vlan_devices(proto: Proto) -> Result<bool> {
    let ns = crate::netns::Netns::new(if proto == Proto::Pmipv6 { "vp6" } else { "vp4" })?;
    ns.exec(&[
        "ip", "link", "add", "vp0", "type", "veth", "peer", "name", "vp1",
    ])?;
    Ok(ns
        .exec(&[
            "ip", "link", "add", "link", "vp0", "name", "vp0.5", "type", "vlan", "id", "5",
        ])
        .is_ok())
}

fn attach_and_traffic_with(o: LabOpts) -> Result<()> {
    let mut l = Lab::up(o)?;
    let lease = l.attach(false)?;
    ensure!(
        lease.ip.starts_with("10.64.0.") && lease.ip != GW_ADDR.to_string(),
        "home address {lease:?}"
    );
    ensure!(lease.mask == "24", "mask {lease:?}");
    ensure!(lease.router == GW_ADDR.to_string(), "router {lease:?}");
    ensure!(lease.serverid == GW_ADDR.to_string(), "server id {lease:?}");
    ensure!(
        lease.lease == l.opts.lifetime_s.to_string(),
        "lease = binding lifetime {}: {lease:?}",
        l.opts.lifetime_s
    );
    ensure!(
        lease.mtu == l.opts.subscriber_mtu().to_string(),
        "MTU minus the IPv4 GRE overhead: {lease:?}"
    );
    ensure!(
        l.sub_addr()?.as_deref() == Some(&format!("{}/24", lease.ip)),
        "s0 not configured: {:?}",
        l.sub_addr()
    );

    let (m, a) = l.wait_registered(0)?;
    let (a, m) = (&a, &m);
    ensure!(
        a.home_v4.map(|h| h.to_string()) == Some(lease.ip.clone()),
        "anchor binding {a:?} vs lease {lease:?}"
    );
    ensure!(m.home_v4 == a.home_v4, "access {m:?} vs anchor {a:?}");
    ensure!(
        a.peer.to_string() == l.opts.mag_core(0),
        "anchor's peer {a:?}"
    );
    ensure!(
        m.gre_key_up == a.gre_key_up && m.gre_key_down == a.gre_key_down,
        "GRE keys differ: access {m:?}, anchor {a:?}"
    );
    ensure!(m.gre_key_up != 0 && m.gre_key_down != 0, "{m:?}");
    ensure!(
        m.vlan == l.opts.vlan,
        "binding VLAN {:?}: {m:?}",
        l.opts.vlan
    );
    ensure!(
        m.llid.eq_ignore_ascii_case(lab::SUB_MAC)
            || m.llid
                .replace('.', "")
                .eq_ignore_ascii_case(&lab::SUB_MAC.replace(':', "")),
        "llid {m:?}"
    );

    let (s, r, t) = Lab::ping(&l.sub, &CN.to_string(), 5)?;
    ensure!(
        s == 5 && r == 5,
        "subscriber → correspondent:\n{t}\n{}",
        l.stats_text(l.mag(0))
    );
    let (s, r, t) = Lab::ping(&l.cn, &lease.ip, 5)?;
    ensure!(
        s == 5 && r == 5,
        "correspondent → subscriber:\n{t}\n{}",
        l.stats_text(l.lma())
    );
    let (_, r, t) = Lab::ping(&l.sub, &GW_ADDR.to_string(), 2)?;
    ensure!(r == 2, "subscriber → its gateway:\n{t}");
    // Draft §6.1: the gateway answers ARP for any address on the link (here
    // one no host has), with the shared gateway MAC.
    let o = l.sub.exec_status(&[
        "busybox",
        "arping",
        "-c",
        "2",
        "-w",
        "3",
        "-I",
        "s0",
        "10.64.0.77",
    ])?;
    let text = String::from_utf8_lossy(&o.stdout).to_lowercase();
    ensure!(
        text.contains(&format!("[{}]", lab::GW_MAC)),
        "ARP for 10.64.0.77 not answered by the gateway ({}):\n{text}",
        o.status
    );
    // Draft §6.2: an echo to the gateway with TTL 1 is answered.
    let o = l.sub.exec_status(&[
        "ping",
        "-c",
        "1",
        "-t",
        "1",
        "-W",
        "2",
        &GW_ADDR.to_string(),
    ])?;
    ensure!(
        o.status.success(),
        "TTL-1 echo to the gateway: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let ip = l.iperf(2)?;
    ensure!(ip.ok && ip.bytes_received > 1_000_000, "iperf3: {ip:?}");
    // The fast path did the forwarding: its per-subscriber counters at both
    // boxes (show stats; the snapshot lags by up to 500 ms).
    lab::interruptible_sleep(Duration::from_millis(1200))?;
    for (name, d) in [("access", l.mag(0)), ("anchor", l.lma())] {
        let st = d.stats()?;
        let sub = st.subscribers.iter().find(|x| x.nai == m.nai);
        let t = sub.map(|x| x.traffic).unwrap_or_default();
        ensure!(
            t.up_packets >= 10 && t.down_packets >= 10 && t.up_bytes > ip.bytes_received / 2,
            "{name}: per-subscriber counters {t:?} after 10 pings each way and {} bytes of TCP:\n{}",
            ip.bytes_received,
            l.stats_text(d)
        );
    }
    Ok(())
}

/// Handover to the second gateway while a TCP stream runs: the stream
/// finishes, the address stays, the anchor points at the new gateway, and
/// the new gateway answers the client's DHCP renewal with the same address.
/// Triggered by the subscriber's data or by its DHCP reconfirmation.
pub fn handover(proto: Proto, trigger: Trigger) -> Result<()> {
    let tag = if trigger == Trigger::Data { "ho" } else { "hd" };
    handover_with(opts(proto, tag, 2), trigger)
}

fn handover_with(o: LabOpts, trigger: Trigger) -> Result<()> {
    let mut l = Lab::up(o)?;
    let lease = l.attach(false)?;
    l.wait_registered(0)?;
    let h = l.handover_under_load(1, 6, Duration::from_secs(2), trigger)?;
    ensure!(
        h.iperf.ok,
        "TCP stream broken by the handover: {:?}",
        h.iperf
    );
    ensure!(
        h.iperf.bytes_received > 10_000_000,
        "TCP stream moved too little: {:?}",
        h.iperf
    );
    ensure!(
        h.after.ip == lease.ip,
        "address changed: {lease:?} → {:?}",
        h.after
    );
    ensure!(h.after.serverid == GW_ADDR.to_string(), "{:?}", h.after);
    ensure!(
        h.ping_received > 0 && h.gap_ms < 3000.0,
        "gap {} ms, {}/{} pings",
        h.gap_ms,
        h.ping_received,
        h.ping_sent
    );
    let mag2 = l.opts.mag_core(1);
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding via mag2", |b| {
            b.len() == 1 && b[0].peer.to_string() == mag2
        })?;
    let b = l
        .mag(1)
        .wait_bindings(Duration::from_secs(5), "binding at mag2", one)?;
    ensure!(
        b[0].home_v4.map(|h| h.to_string()) == Some(lease.ip.clone()),
        "{b:?}"
    );
    // The old gateway let the subscriber go.
    l.mag(0).wait_bindings(
        Duration::from_secs(10),
        "old gateway dropped the subscriber",
        none,
    )?;
    // Traffic keeps flowing through the new gateway, both ways.
    let (s, r, t) = Lab::ping(&l.cn, &lease.ip, 5)?;
    ensure!(
        s == 5 && r == 5,
        "correspondent → subscriber after the handover:\n{t}"
    );
    eprintln!(
        "handover ({trigger:?}): gap {:.1} ms, {} of {} pings lost, {:.2} Gbit/s",
        h.gap_ms,
        h.ping_sent - h.ping_received,
        h.ping_sent,
        h.iperf.gbps
    );
    // And back to the first gateway (it dropped the subscriber, so it
    // registers it afresh): same address, traffic through gateway 1 again.
    l.handover(0, trigger)?;
    if trigger == Trigger::Data {
        // The subscriber's packets are what makes gateway 1 take it back.
        let _ = Lab::ping(&l.sub, &CN.to_string(), 3)?;
    }
    let mag1 = l.opts.mag_core(0);
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding back via mag1", |b| {
            b.len() == 1 && b[0].peer.to_string() == mag1
        })?;
    // The anchor shows the binding when it sends its acknowledgement; the
    // gateway forwards once it has taken it.
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "binding at mag1", |b| {
            b.len() == 1 && b[0].state == "ACTIVE"
        })?;
    let (s, r, t) = Lab::ping(&l.cn, &lease.ip, 5)?;
    ensure!(
        s == 5 && r == 5,
        "correspondent → subscriber after moving back:\n{t}"
    );
    Ok(())
}

/// DHCPRELEASE deregisters: the binding is gone at the anchor and the gateway.
pub fn release(proto: Proto) -> Result<()> {
    let mut l = Lab::up(opts(proto, "rl", 1))?;
    l.attach(false)?;
    l.wait_registered(0)?;
    l.client().release()?;
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding gone after RELEASE", none)?;
    l.mag(0)
        .wait_bindings(Duration::from_secs(5), "binding gone after RELEASE", none)?;
    Ok(())
}

/// Sum of the signaling counters of a box (all groups but the fast path's).
fn signaling_total(d: &lab::Daemon) -> Result<(u64, String)> {
    let st = d.stats()?;
    let mut total = 0;
    let mut text = String::new();
    // Signaling only: not the fast path's verdicts, not the access link's DHCP.
    for (g, m) in st
        .groups
        .iter()
        .filter(|(g, _)| !g.starts_with("fastpath") && !g.starts_with("dhcp"))
    {
        for (k, v) in m {
            total += v;
            text.push_str(&format!("{g}.{k}={v} "));
        }
    }
    Ok((total, text))
}

/// DHCP ACKs the access gateway has sent, over all its access links.
fn dhcp_acks(d: &lab::Daemon) -> Result<u64> {
    let st = d.stats()?;
    Ok(st
        .groups
        .iter()
        .filter(|(g, _)| g.starts_with("dhcp"))
        .filter_map(|(_, m)| m.get("acks"))
        .sum())
}

/// A DHCP renewal while the binding lives is answered by the gateway
/// itself: same address and lease, and no signaling with the anchor.
pub fn renewal_answered_locally(proto: Proto) -> Result<()> {
    let mut l = Lab::up(opts(proto, "rn", 1))?;
    let lease = l.attach(false)?;
    let (_, a0) = l.wait_registered(0)?;
    lab::interruptible_sleep(Duration::from_millis(700))?;
    let (m0, mt0) = signaling_total(l.mag(0))?;
    let (n0, nt0) = signaling_total(l.lma())?;
    let acks0 = dhcp_acks(l.mag(0))?;
    ensure!(
        m0 > 0 && n0 > 0,
        "no signaling counters? access: {mt0} anchor: {nt0}"
    );
    for k in 1..=2 {
        l.client().renew()?;
        let r = l.client().wait_event("renew", k, Duration::from_secs(10))?;
        ensure!(
            r.ip == lease.ip && r.lease == lease.lease && r.serverid == lease.serverid,
            "{r:?} vs {lease:?}"
        );
    }
    lab::interruptible_sleep(Duration::from_millis(1200))?;
    let (m1, mt1) = signaling_total(l.mag(0))?;
    let (n1, nt1) = signaling_total(l.lma())?;
    let acks1 = dhcp_acks(l.mag(0))?;
    ensure!(
        acks1 >= acks0 + 2,
        "the gateway's DHCP server did not ACK the renewals: {acks0} → {acks1}"
    );
    ensure!(
        m1 == m0,
        "the access gateway signaled for a renewal:\nbefore {mt0}\nafter  {mt1}"
    );
    ensure!(
        n1 == n0,
        "the anchor saw signaling for a renewal:\nbefore {nt0}\nafter  {nt1}"
    );
    let (_, a1) = l.wait_registered(0)?;
    ensure!(
        a1.gre_key_up == a0.gre_key_up && a1.home_v4 == a0.home_v4,
        "{a0:?} → {a1:?}"
    );
    Ok(())
}

/// ISC dhclient as the subscriber: attach, traffic, `dhclient -r` deregisters.
pub fn dhclient(proto: Proto) -> Result<()> {
    if !lab::have("dhclient") {
        eprintln!("skipped: needs dhclient");
        return Ok(());
    }
    let mut l = Lab::up(opts(proto, "dc", 1))?;
    let c = lab::Dhcpc::start_dhclient(&l.sub, "s0", &l.dir.0)?;
    l.client = Some(c);
    let lease = l.client().wait_event("BOUND", 1, Duration::from_secs(25))?;
    ensure!(
        lease.ip.starts_with("10.64.0.") && lease.mask == "255.255.255.0",
        "{lease:?}"
    );
    ensure!(
        lease.router == GW_ADDR.to_string() && lease.serverid == GW_ADDR.to_string(),
        "{lease:?}"
    );
    ensure!(lease.lease == l.opts.lifetime_s.to_string(), "{lease:?}");
    ensure!(
        lease.mtu == l.opts.subscriber_mtu().to_string(),
        "{lease:?}"
    );
    let (_, a) = l.wait_registered(0)?;
    ensure!(
        a.home_v4.map(|h| h.to_string()) == Some(lease.ip.clone()),
        "{a:?} vs {lease:?}"
    );
    let (s, r, t) = Lab::ping(&l.sub, &CN.to_string(), 3)?;
    ensure!(s == 3 && r == 3, "subscriber → correspondent:\n{t}");
    l.client().release()?;
    l.lma().wait_bindings(
        Duration::from_secs(5),
        "binding gone after dhclient -r",
        none,
    )?;
    l.mag(0).wait_bindings(
        Duration::from_secs(5),
        "binding gone after dhclient -r",
        none,
    )?;
    Ok(())
}

/// The lease runs out (client gone without a release, nobody renews):
/// the gateway deregisters at the lease end.
pub fn lease_end(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "le", 1);
    short_lifetime(&mut o, 8);
    let mut l = Lab::up(o)?;
    let lease = l.attach(false)?;
    ensure!(lease.lease == "8", "{lease:?}");
    l.wait_registered(0)?;
    let t0 = Instant::now();
    l.client.as_mut().unwrap().kill9();
    l.mag(0).wait_bindings(
        Duration::from_secs(14),
        "binding gone at the lease end",
        none,
    )?;
    l.lma().wait_bindings(
        Duration::from_secs(4),
        "binding gone at the lease end",
        none,
    )?;
    ensure!(
        t0.elapsed() >= Duration::from_secs(5),
        "deregistered long before the lease end: {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// ARP polling finds the subscriber gone (its link down): deregistration.
/// While it answers, polling must keep it.
pub fn detach_by_arp(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "dt", 1);
    o.detach = Some(DetachOpts {
        interval_s: 2,
        timeout_s: 1,
        retries: 1,
    });
    let mut l = Lab::up(o)?;
    l.attach(false)?;
    l.wait_registered(0)?;
    lab::interruptible_sleep(Duration::from_secs(5))?;
    l.mag(0).wait_bindings(
        Duration::from_secs(1),
        "binding kept while the subscriber answers ARP",
        one,
    )?;
    l.sub.exec(&["ip", "link", "set", "s0", "down"])?;
    let t0 = Instant::now();
    l.mag(0).wait_bindings(
        Duration::from_secs(15),
        "binding gone after the subscriber left",
        none,
    )?;
    l.lma().wait_bindings(
        Duration::from_secs(5),
        "binding gone after the subscriber left",
        none,
    )?;
    ensure!(
        t0.elapsed() >= Duration::from_secs(2),
        "detached before a poll could fail: {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// The access gateway dies (SIGKILL, no deregistration): the anchor removes
/// the binding when its lifetime runs out, not before.
pub fn lifetime_expiry(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "lx", 1);
    short_lifetime(&mut o, 8);
    let mut l = Lab::up(o)?;
    l.attach(false)?;
    l.wait_registered(0)?;
    l.access[0].as_mut().unwrap().kill9();
    let t0 = Instant::now();
    lab::interruptible_sleep(Duration::from_secs(1))?;
    l.lma().wait_bindings(
        Duration::from_secs(1),
        "binding kept within its lifetime",
        one,
    )?;
    l.lma()
        .wait_bindings(Duration::from_secs(14), "binding expired", none)?;
    ensure!(
        t0.elapsed() >= Duration::from_secs(2),
        "expired too early: {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// `pmipctl clear binding` at the anchor revokes the binding: the access
/// gateway drops the subscriber too (RFC 5846 BRI / RFC 3543 revocation).
pub fn revocation(proto: Proto) -> Result<()> {
    let mut l = Lab::up(opts(proto, "rv", 1))?;
    l.attach(false)?;
    let (_, b) = l.wait_registered(0)?;
    let nai = b.nai.clone();
    let out = l.lma().ctl(&["clear", "binding", &nai])?;
    ensure!(
        out.contains("cleared"),
        "pmipctl clear binding {nai}: {out}"
    );
    l.lma()
        .wait_bindings(Duration::from_secs(3), "binding gone after clear", none)?;
    l.mag(0).wait_bindings(
        Duration::from_secs(8),
        "access gateway dropped the revoked subscriber",
        none,
    )?;
    // An unknown NAI is reported as such, with pmipctl's exit status 4.
    let e = l
        .lma()
        .ctl(&["clear", "binding", "nobody@example.com"])
        .expect_err("clear of an unknown NAI succeeded");
    let e = format!("{e:#}");
    ensure!(
        e.contains("no binding") && e.contains("exit status: 4"),
        "{e}"
    );
    Ok(())
}

/// An operator gives a registered subscriber a static home address on the
/// anchor with `pmipctl reload` (a `[[profiles]]` entry for its NAI), no
/// restart: the binding in place keeps its address; once the subscriber
/// has left (DHCPRELEASE, and for PMIPv6 the LMA's entry deleted) and
/// comes back, the anchor gives it the profile's address, and traffic
/// flows. A profile for an address outside the pools
/// and any other change are not what this checks (the config checks).
pub fn anchor_profile_by_reload(proto: Proto) -> Result<()> {
    let mut l = Lab::up(opts(proto, "pr", 1))?;
    let first = l.attach(false)?;
    let (_, b) = l.wait_registered(0)?;
    let pid = l.lma().pid();
    let pinned: std::net::Ipv4Addr = "10.64.0.77".parse()?;
    ensure!(
        first.ip != pinned.to_string(),
        "the pool gave {pinned} already"
    );
    let path = l.dir.0.join("anchor.toml");
    let mut toml = std::fs::read_to_string(&path)?;
    toml.push_str(&format!(
        "\n[[profiles]]\nname = \"pinned\"\nnai = \"{}\"\nhome_address = \"{pinned}\"\n",
        b.nai
    ));
    std::fs::write(&path, toml)?;
    let out = l.lma().ctl(&["reload"])?;
    ensure!(out.contains("reloaded: profiles"), "reload: {out}");
    let (_, kept) = l.wait_registered(0)?;
    ensure!(
        kept.home_v4 == b.home_v4,
        "the binding in place changed: {kept:?}"
    );
    l.client().release()?;
    l.lma()
        .wait_bindings(Duration::from_secs(5), "binding gone after RELEASE", none)?;
    if proto == Proto::Pmipv6 {
        // RFC 5213 §5.3.5: the LMA keeps the entry MinDelayBeforeBCEDelete
        // (10 s) for a MAG to take over; a registration before then gets
        // it back, address and all.
        l.lma()
            .wait_counter("deleted_after_dereg", 1, Duration::from_secs(15))?;
    }
    l.client().renew()?;
    let again = l.client().wait_event("bound", 2, Duration::from_secs(25))?;
    ensure!(
        again.ip == pinned.to_string(),
        "bound to {} after the reload",
        again.ip
    );
    let (_, b) = l.wait_registered(0)?;
    ensure!(b.home_v4 == Some(pinned), "the anchor's binding: {b:?}");
    let (s, r, t) = Lab::ping(&l.sub, &lab::CN.to_string(), 3)?;
    ensure!(s > 0 && r == s, "traffic from {pinned}:\n{t}");
    ensure!(l.lma().pid() == pid, "the anchor restarted");
    Ok(())
}

/// Valid configs of the lab, for the bad-config cases to break one key at a time.
fn base_access(proto: Proto) -> String {
    let mut c = format!(
        r#"role = "access"
protocol = "{}"
[control]
socket = "/nonexistent/pmipd-badcfg.sock"
[interfaces]
core = "pmipbad0"
[[interfaces.access]]
name = "pmipbad1"
gateway = "10.64.0.1/24"
default_profile = "default"
[addresses]
ipv4 = "10.255.0.1"
[[peers]]
name = "anchor"
address = "10.255.0.10"
"#,
        proto.name()
    );
    if proto == Proto::Pmipv4 {
        c.push_str(
            "spi = 256\nalgorithm = \"hmac-md5\"\nkey = \"00112233445566778899aabbccddeeff\"\n",
        );
    } else {
        c.push_str("insecure = true\n");
    }
    c.push_str("[timers]\nlifetime_s = 120\n");
    if proto == Proto::Pmipv6 {
        c.push_str("refresh_s = 40\n");
    }
    c.push_str("[[profiles]]\nname = \"default\"\nanchor = \"anchor\"\n");
    c
}

/// `pmipd run` refuses each broken config: non-zero exit, never ready, and
/// stderr names the key. Needs no root (validation comes before any socket).
pub fn bad_configs(proto: Proto) -> Result<()> {
    lab::ensure_binaries()?;
    let dir = lab::TempDir::new("bad")?;
    let base = base_access(proto);
    // The unbroken config is valid, so each case fails for its one change.
    pmip_user::config::Config::from_toml_str(&base)
        .map_err(|e| anyhow::anyhow!("base config invalid: {e}"))?;
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "bad peer address",
            base.replace("address = \"10.255.0.10\"", "address = \"10.255.0.300\""),
            "address",
        ),
        (
            "unknown key",
            base.replace("[timers]\n", "[timers]\nlifetime = 5\n"),
            "lifetime",
        ),
        (
            "detach timeout above interval",
            format!("{base}[detach]\ninterval_s = 2\ntimeout_s = 5\n"),
            "detach.timeout_s",
        ),
        (
            "unknown anchor peer",
            base.replace("anchor = \"anchor\"", "anchor = \"nope\""),
            "profiles[0].anchor",
        ),
        (
            "bad gateway",
            base.replace("10.64.0.1/24", "10.64.0.1"),
            "interfaces.access[0].gateway",
        ),
        (
            "network address as gateway",
            base.replace("10.64.0.1/24", "10.64.0.0/24"),
            "interfaces.access[0].gateway",
        ),
        (
            "bad access mtu",
            base.replace("default_profile", "mtu = 100\ndefault_profile"),
            "interfaces.access[0].mtu",
        ),
        (
            "missing default profile",
            base.replace(
                "default_profile = \"default\"",
                "default_profile = \"other\"",
            ),
            "interfaces.access[0].default_profile",
        ),
        (
            "access role without peers",
            base.split("[[peers]]").next().unwrap().to_string()
                + "[[profiles]]\nname = \"default\"\n",
            "peers",
        ),
        (
            "anchor without pool",
            base.replace("role = \"access\"", "role = \"anchor\"")
                .split("[[interfaces.access]]")
                .next()
                .unwrap()
                .to_string()
                + "[addresses]\nipv4 = \"10.255.0.10\"\n",
            "pools",
        ),
        (
            "bad attach mode",
            format!("{base}[fastpath]\nattach_mode = \"turbo\"\n"),
            "attach_mode",
        ),
    ];
    match proto {
        Proto::Pmipv4 => {
            cases.push((
                "SPI below 256",
                base.replace("spi = 256", "spi = 255"),
                "peers[0].spi",
            ));
            cases.push((
                "PMIPv4 peer without SA",
                base.replace("spi = 256\n", "")
                    .replace("algorithm = \"hmac-md5\"\n", "")
                    .replace("key = \"00112233445566778899aabbccddeeff\"\n", ""),
                "peers[0].spi",
            ));
            cases.push((
                "lifetime above the PMIPv4 maximum",
                base.replace("lifetime_s = 120", "lifetime_s = 70000"),
                "timers.lifetime_s",
            ));
        }
        Proto::Pmipv6 => {
            cases.push((
                "refresh not below lifetime",
                base.replace("refresh_s = 40", "refresh_s = 120"),
                "timers.refresh_s",
            ));
            cases.push((
                "PMIPv6 over IPv6 without an IPv6 address",
                base.replace("address = \"10.255.0.10\"", "address = \"2001:db8::10\""),
                "peers[0]",
            ));
        }
    }
    let mut failures = Vec::new();
    for (i, (what, text, key)) in cases.iter().enumerate() {
        let f = dir.0.join(format!("bad{i}.toml"));
        std::fs::write(&f, text)?;
        let child = std::process::Command::new(lab::pmipd())
            .args(["run", "--config", f.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("spawning pmipd")?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let o = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(o) => o?,
            Err(_) => {
                // SAFETY: our child; it did not exit in time.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                failures.push(format!("{what}: pmipd did not exit"));
                continue;
            }
        };
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() || out.contains("ready") {
            failures.push(format!("{what}: accepted ({}): {out}{err}", o.status));
        } else if !err.contains(key) {
            failures.push(format!("{what}: stderr does not name `{key}`: {err}"));
        }
    }
    // A config file that is not there.
    let o = std::process::Command::new(lab::pmipd())
        .args([
            "run",
            "--config",
            dir.0.join("missing.toml").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()?;
    if o.status.success() || !String::from_utf8_lossy(&o.stderr).contains("missing.toml") {
        failures.push(format!(
            "missing file: {} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} bad configs not refused as they should be:\n{}",
            failures.len(),
            cases.len() + 1,
            failures.join("\n")
        );
    }
    Ok(())
}
