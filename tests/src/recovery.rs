//! Issue 11's recovery scenarios in namespaces, both protocols, with a
//! steady stream per subscriber counted packet by packet: a gateway killed
//! (-9) or stopped (SIGTERM) and started again, `pmipctl shutdown
//! --deregister`, an anchor that loses everything and comes back, and
//! signaling over a core link that drops 30 % of it. Run by
//! `tests/tests/restart.rs`; the figures go to RELIABILITY.md.
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};

use crate::lab::{self, epoch_now, ping_gap, ping_summary, Daemon, Lab, LabOpts, Proto};
use crate::netns::Netns;
use crate::reliability::Role;

/// How a gateway goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Kill9,
    Sigterm,
}

/// `ping -D -i 0.002` from the correspondent to a subscriber for `secs`:
/// 500 packets a second each way, every one accounted for.
pub struct Stream {
    child: Option<Child>,
    /// Reads ping's output as it comes: a full pipe would stop ping (no
    /// packet sent or counted meanwhile, a gap in the reply times).
    out: Option<std::thread::JoinHandle<String>>,
}

impl Stream {
    pub fn start(cn: &Netns, dst: &str, secs: u32) -> Result<Stream> {
        let mut child = cn
            .command("ping")
            .args([
                "-D",
                "-n",
                "-i",
                "0.002",
                "-W",
                "1",
                "-w",
                &secs.to_string(),
                dst,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning ping")?;
        let mut stdout = child.stdout.take().context("ping's stdout")?;
        let out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut b);
            String::from_utf8_lossy(&b).into_owned()
        });
        Ok(Stream {
            child: Some(child),
            out: Some(out),
        })
    }

    /// Waits for the stream to end: (sent, received, ping's output).
    pub fn finish(self) -> Result<(u32, u32, String)> {
        self.end(false)
    }

    /// Ends the stream now (SIGINT: ping prints its summary), as
    /// [`Stream::finish`] does at the end of its time.
    pub fn stop(self) -> Result<(u32, u32, String)> {
        self.end(true)
    }

    fn end(mut self, now: bool) -> Result<(u32, u32, String)> {
        let mut c = self.child.take().ok_or_else(|| anyhow!("no stream"))?;
        if now {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        }
        c.wait()?;
        let text = self
            .out
            .take()
            .ok_or_else(|| anyhow!("no stream"))?
            .join()
            .map_err(|_| anyhow!("reading ping's output"))?;
        let (s, r) = ping_summary(&text).ok_or_else(|| anyhow!("ping said: {text}"))?;
        Ok((s, r, text))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The anchor's counter of refreshes (LMA) or renewals (HA).
fn refreshes(d: &Daemon, proto: Proto) -> Result<u64> {
    let (group, name) = match proto {
        Proto::Pmipv6 => ("lma", "refreshes"),
        Proto::Pmipv4 => ("ha", "renewals"),
    };
    d.counter(group, name)
}

/// A counter of the access gateway's DHCP servers, summed over its links.
fn dhcp_counter(d: &Daemon, name: &str) -> Result<u64> {
    let s = d.stats()?;
    Ok(s.groups
        .iter()
        .filter(|(g, _)| g.starts_with("dhcp "))
        .filter_map(|(_, c)| c.get(name))
        .sum())
}

/// The anchor's counter of new bindings.
fn registrations(d: &Daemon) -> Result<u64> {
    let s = d.stats()?;
    Ok(["lma", "ha"]
        .iter()
        .filter_map(|g| s.groups.get(*g)?.get("registrations"))
        .sum())
}

/// Waits until the anchor has accepted more than `n` refreshes; how long it took.
fn wait_refresh(l: &Lab, proto: Proto, n: u64, within: Duration) -> Result<Duration> {
    let t = Instant::now();
    loop {
        if refreshes(l.lma(), proto).unwrap_or(0) > n {
            return Ok(t.elapsed());
        }
        ensure!(
            t.elapsed() < within,
            "no refresh within {within:?}:\n{}\n{}",
            l.lma().log_tail(15),
            l.mag(0).log_tail(15)
        );
        lab::interruptible_sleep(Duration::from_millis(20))?;
    }
}

/// Short timers: lifetime 12 s, refresh (renewal) every 4 s.
pub fn opts(proto: Proto, tag: &str) -> LabOpts {
    let mut o = LabOpts::new(proto, tag);
    o.gateways = 1;
    o.pin = true;
    o.lifetime_s = 12;
    o.refresh_s = 4;
    o.renew_percent = 34;
    o.retx_max_ms = 1000;
    o
}

/// What a restart cost.
#[derive(Clone, Debug, Default)]
pub struct RestartFigures {
    pub sent: u32,
    pub lost: u32,
    /// From the restarted daemon's "ready" to the anchor's next accepted refresh.
    pub refresh_resumed: Duration,
    /// Largest gap between replies (the machine's noise floor when 0 lost).
    pub max_gap_ms: f64,
}

/// `role`'s pmipd goes down (kill -9 or SIGTERM) with a stream running and
/// comes back on the same pins and store: not one packet may be lost, the
/// refreshes go on, nothing is registered twice, the binding is the same.
pub fn restart_keeps_every_packet(proto: Proto, role: Role, how: Stop) -> Result<RestartFigures> {
    let tag = match (role, how) {
        (Role::Access, Stop::Kill9) => "rka",
        (Role::Access, Stop::Sigterm) => "rta",
        (Role::Anchor, Stop::Kill9) => "rkn",
        (Role::Anchor, Stop::Sigterm) => "rtn",
    };
    let mut l = Lab::up(opts(proto, tag))?;
    let lease = l.attach(false)?;
    let (m0, a0) = l.wait_registered(0)?;
    let regs = registrations(l.lma())?;
    let stream = Stream::start(&l.cn, &lease.ip, 16)?;
    lab::interruptible_sleep(Duration::from_secs(2))?;
    let d = match role {
        Role::Access => l.access[0].as_mut(),
        Role::Anchor => l.anchor_d.as_mut(),
    }
    .context("gateway not running")?;
    let t_down = epoch_now();
    match how {
        Stop::Kill9 => d.kill9(),
        Stop::Sigterm => {
            let st = d.stop();
            ensure!(
                st.is_some_and(|s| s.success()),
                "SIGTERM: pmipd exited {st:?}"
            );
        }
    }
    // Down for a second, as a restart by a supervisor would be.
    lab::interruptible_sleep(Duration::from_secs(1))?;
    let before = if role == Role::Access {
        refreshes(l.lma(), proto)?
    } else {
        0
    };
    match role {
        Role::Access => l.start_access(0)?,
        Role::Anchor => l.start_anchor()?,
    }
    let t_up = epoch_now();
    let refresh_resumed = wait_refresh(&l, proto, before, Duration::from_secs(10))?;
    let (m1, a1) = l.wait_registered(0)?;
    ensure!(
        (m1.home_v4, m1.gre_key_up, m1.gre_key_down)
            == (m0.home_v4, m0.gre_key_up, m0.gre_key_down)
            && (a1.home_v4, a1.gre_key_up) == (a0.home_v4, a0.gre_key_up),
        "the binding changed over the restart:\n{m0:?}\n{m1:?}\n{a0:?}\n{a1:?}"
    );
    let regs_after = registrations(l.lma())?;
    ensure!(
        regs_after == if role == Role::Anchor { 0 } else { regs },
        "registered again over the restart ({regs} then {regs_after})"
    );
    let (sent, received, text) = stream.finish()?;
    let gap = ping_gap(&text).unwrap_or((f64::NAN, 0.0, 0.0));
    let max_gap_ms = gap.0;
    ensure!(
        sent == received && sent > 500,
        "{} of {sent} packets lost over the {how:?} of the {role:?} (largest gap {max_gap_ms:.0} ms, \
         from {:.3} to {:.3} s after the stop; back up {:.3} s after it)",
        sent - received,
        gap.1 - t_down,
        gap.2 - t_down,
        t_up - t_down
    );
    Ok(RestartFigures {
        sent,
        lost: sent - received,
        refresh_resumed,
        max_gap_ms,
    })
}

/// What a late renewal cost.
#[derive(Clone, Debug, Default)]
pub struct LateRenewalFigures {
    pub sent: u32,
    pub lost: u32,
    /// Leases the access gateway held while the subscriber sent.
    pub leases_held: u64,
    pub max_gap_ms: f64,
}

/// The subscriber's DHCP client renews after its lease has run out at the
/// access gateway, with a stream running across the lease end: busybox
/// udhcpc raises a lease under 30 s to 30 s and renews at half of that, 15 s
/// after the ACK, while the 12 s lease ends at 14 s (lease + grace). The
/// subscriber is still sending, so the gateway holds its lease: not one
/// packet lost, the same binding, nothing registered again, the late
/// renewal answered.
pub fn late_renewal_keeps_every_packet(proto: Proto) -> Result<LateRenewalFigures> {
    let mut l = Lab::up(opts(proto, "lr"))?;
    let lease = l.attach(false)?;
    ensure!(lease.lease == "12", "lease = binding lifetime: {lease:?}");
    let (m0, a0) = l.wait_registered(0)?;
    let regs = registrations(l.lma())?;
    // From ~0.3 s after the ACK to past the lease end and the renewal.
    let stream = Stream::start(&l.cn, &lease.ip, 20)?;
    let (sent, received, text) = stream.finish()?;
    let max_gap_ms = ping_gap(&text).map(|g| g.0).unwrap_or(f64::NAN);
    ensure!(
        sent == received && sent > 500,
        "{} of {sent} packets lost across the lease end (largest gap {max_gap_ms:.0} ms):\n{}",
        sent - received,
        l.mag(0).log_tail(10)
    );
    let (m1, a1) = l.wait_registered(0)?;
    ensure!(
        (m1.home_v4, m1.gre_key_up, m1.gre_key_down)
            == (m0.home_v4, m0.gre_key_up, m0.gre_key_down)
            && (a1.home_v4, a1.gre_key_up) == (a0.home_v4, a0.gre_key_up),
        "the binding changed at the lease end:\n{m0:?}\n{m1:?}\n{a0:?}\n{a1:?}"
    );
    let regs_after = registrations(l.lma())?;
    ensure!(
        regs_after == regs,
        "registered again at the lease end ({regs} then {regs_after}):\n{}",
        l.mag(0).log_tail(10)
    );
    let leases_held = dhcp_counter(l.mag(0), "leases_held")?;
    let renewals = l.client().count("renew");
    ensure!(
        leases_held >= 1 && renewals >= 1,
        "the lease did not run out before the client renewed (held {leases_held}, renewals {renewals}): \
         the case was not exercised"
    );
    Ok(LateRenewalFigures {
        sent,
        lost: 0,
        leases_held,
        max_gap_ms,
    })
}

/// `pmipctl shutdown --deregister` on the access gateway: every subscriber
/// deregistered at the anchor, the pins and programs gone, no record left.
pub fn shutdown_deregister(proto: Proto) -> Result<()> {
    let mut l = Lab::up(opts(proto, "sd"))?;
    l.attach(false)?;
    l.wait_registered(0)?;
    let out = l.mag(0).ctl(&["shutdown", "--deregister"])?;
    ensure!(out.contains("releasing 1 binding"), "{out}");
    l.lma()
        .wait_bindings(Duration::from_secs(5), "the subscriber deregistered", |b| {
            b.is_empty()
        })?;
    let d = l.access[0].as_mut().context("no access gateway")?;
    let st = d.stop();
    ensure!(st.is_some_and(|s| s.success()), "pmipd exited {st:?}");
    let pins = l.dir.0.join("bpf").join("mag1");
    ensure!(!pins.exists(), "pins left at {}", pins.display());
    // The store keeps only the node's own record.
    let store = l.dir.0.join("mag1.redb");
    let mut s = pmip_user::store::EmbeddedStore::open(&store)?;
    use pmip_user::store::Store;
    let left = s.scan()?;
    ensure!(
        left.iter()
            .all(|(k, _)| *k == pmip_user::store::RecordKey::Node),
        "records left: {left:?}"
    );
    Ok(())
}

/// The access gateway is killed (-9) while a deregistration it started is
/// unanswered (every signaling packet on the core link dropped): the
/// restarted gateway finds it in its record (the subscriber left) and
/// sends it again, and the anchor lets the binding go — before, it kept
/// it until its lifetime ended. Nothing is installed for it again.
pub fn deregistration_survives_an_access_kill9(proto: Proto) -> Result<()> {
    let mut o = opts(proto, "dk");
    // The MAG waits this long for its de-registration's PBA (RFC 5213
    // §6.9.1.4); the PMA retransmits (a second apart, 3 times).
    o.retx_initial_ms = 4000;
    o.retx_max_ms = 4000;
    let mut l = Lab::up(o)?;
    l.attach(false)?;
    l.wait_registered(0)?;
    let lossy = crate::lossy::Lossy::attach(&l.sw, "pcn", 100)?;
    l.client().release()?;
    // Its deregistration sent and dropped (the PMA's may wait a second
    // after its last request, RFC 5944 §3.6.3).
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while lossy.counts()?.0 == 0 {
        ensure!(
            std::time::Instant::now() < end,
            "no deregistration sent:\n{}",
            l.mag(0).log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    l.mag(0)
        .wait_bindings(Duration::from_secs(3), "the subscriber leaving", |b| {
            b.len() == 1 && b[0].state == "DEREGISTERING"
        })?;
    l.access[0].as_mut().context("no access gateway")?.kill9();
    drop(lossy);
    ensure!(
        l.lma().bindings()?.len() == 1,
        "the anchor let go before the restart"
    );
    l.start_access(0)?;
    l.lma()
        .wait_bindings(Duration::from_secs(8), "the binding released", |b| {
            b.is_empty()
        })?;
    let stats = l.mag(0).stats()?;
    let group = match proto {
        Proto::Pmipv6 => "mag",
        Proto::Pmipv4 => "pma",
    };
    ensure!(
        crate::hostile::stat(&stats, group, "deregistrations_resumed") == 1,
        "{:?}",
        stats.groups.get(group)
    );
    l.mag(0)
        .wait_bindings(Duration::from_secs(8), "no binding left", |b| b.is_empty())?;
    Ok(())
}

/// What an anchor outage cost.
#[derive(Clone, Debug, Default)]
pub struct OutageFigures {
    /// From the anchor's "ready" to the first packet through again.
    pub cutoff_after_back: Duration,
    pub lost: u32,
    pub sent: u32,
}

/// The anchor dies and loses everything (store, pins: a new host), and is
/// back `down` later: the access gateway's refresh has failed meanwhile, so
/// when the anchor answers again the subscriber is registered again at
/// once, with the same address, and its stream flows within a second.
pub fn anchor_outage(proto: Proto, down: Duration) -> Result<OutageFigures> {
    let mut o = opts(proto, "ao");
    if proto == Proto::Pmipv6 {
        o.heartbeat_s = 1;
    }
    // The HA honours the address asked again (`timers.reregistration_window_s`).
    o.reregistration_window_s = o.lifetime_s;
    let mut l = Lab::up(o)?;
    let lease = l.attach(false)?;
    let (m0, _) = l.wait_registered(0)?;
    // Long enough for a slow host; stopped once the subscriber is back.
    let secs = 4 + down.as_secs() as u32 + 60;
    let stream = Stream::start(&l.cn, &lease.ip, secs)?;
    lab::interruptible_sleep(Duration::from_secs(2))?;
    l.anchor_d.as_mut().context("no anchor")?.kill9();
    // A new anchor host: no store, no pins.
    let _ = std::fs::remove_file(l.dir.0.join("anchor.redb"));
    l.anchor.run_in({
        let p = l.dir.0.join("bpf").join("anchor");
        move || pmip_user::fastpath::unpin_all(&p)
    })??;
    lab::interruptible_sleep(down)?;
    l.start_anchor()?;
    let back = epoch_now();
    let (m1, _) = l.wait_registered(0)?;
    ensure!(m1.home_v4 == m0.home_v4, "renumbered: {m0:?} then {m1:?}");
    // Two seconds of the stream through the registered binding.
    lab::interruptible_sleep(Duration::from_secs(2))?;
    let (sent, received, text) = stream.stop()?;
    let first = text
        .lines()
        .filter(|x| x.contains("bytes from"))
        .filter_map(|x| x.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
        .find(|t| *t >= back)
        .ok_or_else(|| {
            anyhow!(
                "no packet after the anchor came back:\n{}",
                l.mag(0).log_tail(20)
            )
        })?;
    Ok(OutageFigures {
        cutoff_after_back: Duration::from_secs_f64(first - back),
        lost: sent - received,
        sent,
    })
}

/// What 30 % signaling loss cost.
#[derive(Clone, Debug, Default)]
pub struct LossFigures {
    pub subscribers: usize,
    pub registered: usize,
    pub refreshes: u64,
    pub deregistered: u64,
    pub expired: u64,
    pub dropped: u64,
    pub passed: u64,
    pub data_lost: u32,
    pub data_sent: u32,
}

/// Every signaling packet crossing the anchor's core link is dropped with
/// probability `percent`: `n` subscribers attach, their bindings are
/// refreshed for three lifetimes' worth of refreshes while a stream runs
/// to each, then they release their leases. Every registration, refresh
/// and deregistration must complete through retransmission: all bound, no
/// binding expired, no data lost, every deregistration seen by the anchor.
pub fn signaling_loss(proto: Proto, percent: u32, n: usize) -> Result<LossFigures> {
    let mut o = opts(proto, "sl");
    o.lifetime_s = 30;
    o.refresh_s = 6;
    o.renew_percent = 20;
    o.max_retx = 8;
    let mut l = Lab::up(o)?;
    let lossy = crate::lossy::Lossy::attach(&l.sw, "pcn", percent)?;
    let mut clients = Vec::new();
    let mut leases = Vec::new();
    for k in 0..n {
        let (ns, dir) = if k == 0 {
            (&l.sub, l.dir.0.join("sub1"))
        } else {
            let i = l.add_subscriber(&format!("02:00:00:00:ab:{k:02x}"))?;
            (&l.more_subs[i], l.dir.0.join(format!("sub{}", k + 1)))
        };
        std::fs::create_dir_all(&dir)?;
        let c = lab::Dhcpc::start(ns, "s0", &dir, false)?;
        clients.push(c);
    }
    for c in &clients {
        leases.push(c.wait_event("bound", 1, Duration::from_secs(40))?);
    }
    let registered = l
        .lma()
        .wait_bindings(Duration::from_secs(10), "every subscriber", |b| {
            b.len() == n
        })?
        .len();
    let streams: Vec<Stream> = leases
        .iter()
        .map(|le| Stream::start(&l.cn, &le.ip, 18))
        .collect::<Result<_>>()?;
    let before = refreshes(l.lma(), proto)?;
    let mut data = (0, 0);
    for s in streams {
        let (sent, recv, _) = s.finish()?;
        data = (data.0 + sent, data.1 + recv);
    }
    let refreshed = refreshes(l.lma(), proto)? - before;
    for c in &clients {
        c.release()?;
    }
    // PMIPv4: the PMA retransmits its de-registration until answered.
    // PMIPv6: the MAG sends it once and drops the entry after
    // INITIAL_BINDACK_TIMEOUT (RFC 5213 §6.9.1.4), so one the loss took
    // ends at the anchor with the binding's lifetime (30 s here).
    let release_within = match proto {
        Proto::Pmipv4 => Duration::from_secs(20),
        Proto::Pmipv6 => Duration::from_secs(45),
    };
    l.lma()
        .wait_bindings(release_within, "every subscriber released", |b| {
            b.is_empty()
        })?;
    let s = l.lma().stats()?;
    let g = |k: &str| -> u64 {
        ["lma", "ha"]
            .iter()
            .filter_map(|r| s.groups.get(*r)?.get(k))
            .sum()
    };
    let (dropped, passed) = lossy.counts()?;
    let f = LossFigures {
        subscribers: n,
        registered,
        refreshes: refreshed,
        deregistered: g("deregistrations"),
        expired: g("expired"),
        dropped,
        passed,
        data_lost: data.0 - data.1,
        data_sent: data.0,
    };
    let released = match proto {
        Proto::Pmipv4 => f.deregistered == n as u64 && f.expired == 0,
        Proto::Pmipv6 => f.deregistered + f.expired == n as u64,
    };
    ensure!(
        f.registered == n && released && f.data_lost == 0,
        "under {percent} % signaling loss: {f:?}"
    );
    ensure!(dropped > 0, "the dropper dropped nothing: {f:?}");
    Ok(f)
}
