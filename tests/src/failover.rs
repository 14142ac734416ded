//! Issue 11: failover to the alternate anchor through pmipd, both
//! protocols. The lab gets a second anchor (`alt`, 10.255.0.11 on the core
//! switch, its own link to the correspondent) serving the same pool; the
//! access gateway's profile names it `alternate_anchor`. With a stream
//! running, the primary anchor's host dies (pmipd killed, its links down):
//! the access gateway's refresh (renewal) goes unanswered, it fails over
//! after the configured attempts, the subscriber is registered at the
//! alternate with the address it has, and its stream resumes through the
//! alternate. Figures: takeover time (primary down → first reply through
//! the alternate) and packets lost, from ping's own accounting.
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};

use crate::lab::{self, epoch_now, Daemon, Lab, LabOpts, Proto, CORE_ANCHOR, CORE_MAG, POOL};
use crate::netns::{veth, Netns};
use crate::recovery;

/// Core address of the alternate anchor.
pub const ALT_CORE: &str = "10.255.0.11";
/// The alternate anchor's link to the correspondent (CN .2, anchor .1).
const ALT_CN_NET: &str = "198.51.100";

/// What the failover cost.
#[derive(Clone, Debug, Default)]
pub struct FailoverFigures {
    /// From the primary's death to the first reply through the alternate.
    pub takeover: Duration,
    pub sent: u32,
    pub lost: u32,
    /// The access gateway's failover counter afterwards.
    pub failovers: u64,
}

/// The alternate anchor: its namespace, its daemon, the XDP pass programs
/// on the veth ends it transmits into (kept loaded while it runs).
struct Alt {
    daemon: Option<Daemon>,
    _pass: Vec<aya::Ebpf>,
    /// Last: dropped after its daemon.
    _ns: Netns,
}

/// The lab's access config with a second peer `alt` and the default
/// profile's `alternate_anchor = "alt"`.
fn access_config_with_alt(o: &LabOpts, dir: &std::path::Path) -> Result<String> {
    let c = lab::access_config(o, dir, 0);
    let start = c.find("[[peers]]").context("no [[peers]]")?;
    let end = c[start..].find("\n[timers]").context("no [timers]")? + start;
    let alt = c[start..end]
        .replace(
            &format!("address = \"{CORE_ANCHOR}\""),
            &format!("address = \"{ALT_CORE}\""),
        )
        .replace("name = \"anchor\"", "name = \"alt\"");
    ensure!(alt.contains(ALT_CORE), "peer block not rewritten: {alt}");
    let mut c = format!("{}\n{}{}", &c[..end], alt, &c[end..]);
    let profile = "name = \"default\"\nanchor = \"anchor\"\n";
    ensure!(c.contains(profile), "no default profile");
    c = c.replace(profile, &format!("{profile}alternate_anchor = \"alt\"\n"));
    Ok(c)
}

/// The alternate anchor's config: the lab's anchor config at its own core
/// address, socket, store and pins.
fn alt_config(o: &LabOpts, dir: &std::path::Path) -> String {
    lab::anchor_config(o, dir, 1)
        .replace(
            &format!("ipv4 = \"{CORE_ANCHOR}\""),
            &format!("ipv4 = \"{ALT_CORE}\""),
        )
        .replace("anchor.sock", "alt.sock")
        .replace("anchor.redb", "alt.redb")
        .replace("bpf/anchor", "bpf/alt")
        .replace("node_id = \"", "node_id = \"alt-")
}

impl Alt {
    /// Wires the alternate anchor into `l` (core switch, correspondent) and
    /// starts its pmipd.
    fn up(l: &mut Lab) -> Result<Alt> {
        let ns = Netns::new(&format!("{}b", l.opts.tag))?;
        veth(&ns, "core0", &l.sw, "pcn2")?;
        veth(&ns, "cn0", &l.cn, "c1")?;
        l.sw.exec(&["ip", "link", "set", "pcn2", "master", "brc"])?;
        let cmds: Vec<String> = vec![
            "sysctl -qw net.ipv4.ip_forward=1".into(),
            "sysctl -qw net.ipv4.conf.all.accept_local=1".into(),
            "sysctl -qw net.ipv4.conf.cn0.accept_local=1".into(),
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
            format!("ip addr add {ALT_CORE}/24 dev core0"),
            format!("ip addr add {ALT_CN_NET}.1/24 dev cn0"),
            format!("ip route add {POOL} via {}", CORE_MAG[0]),
            format!("ip route add {}/32 via {ALT_CN_NET}.2", lab::CN),
        ];
        lab::run_all(&ns, &cmds)?;
        // The correspondent reaches the pool through the primary while its
        // link is up, else through the alternate (a routing protocol's job
        // in a real network: a dead link's routes are skipped).
        lab::run_all(
            &l.cn,
            &[
                "sysctl -qw net.ipv4.conf.all.ignore_routes_with_linkdown=1".into(),
                "sysctl -qw net.ipv4.conf.c1.ignore_routes_with_linkdown=1".into(),
                "sysctl -qw net.ipv4.conf.c0.ignore_routes_with_linkdown=1".into(),
                format!("ip addr add {ALT_CN_NET}.2/24 dev c1"),
                "ethtool -K c1 tx off".into(),
                format!("ip route add {POOL} via {} metric 100", lab::CN_GW),
                format!("ip route add {POOL} via {ALT_CN_NET}.1 metric 200"),
            ],
        )?;
        let pass = |ns: &Netns, i: &'static str| -> Result<aya::Ebpf> {
            ns.run_in(move || -> Result<aya::Ebpf> {
                let mut e = pmip_user::fastpath::load_test_object()?;
                pmip_user::fastpath::attach_pass(&mut e, i)?;
                Ok(e)
            })?
        };
        let p = vec![pass(&l.sw, "pcn2")?, pass(&l.cn, "c1")?];
        let cfg = l.dir.0.join("alt.toml");
        std::fs::write(&cfg, alt_config(&l.opts, &l.dir.0))?;
        let sock = l.dir.0.join("alt.sock");
        let d = Daemon::start(&ns, "alt", &cfg, &sock, &l.opts.log_filter)?;
        Ok(Alt {
            daemon: Some(d),
            _pass: p,
            _ns: ns,
        })
    }

    fn d(&self) -> &Daemon {
        self.daemon.as_ref().expect("alternate anchor running")
    }
}

/// The access gateway's counter of failovers (MAG `failovers`, PMA `ha_failovers`).
fn failovers(d: &Daemon) -> Result<u64> {
    let s = d.stats()?;
    Ok(s.groups
        .values()
        .filter_map(|g| g.get("failovers").or_else(|| g.get("ha_failovers")))
        .sum())
}

/// Primary anchor dies with a stream running; the access gateway fails
/// over to the alternate after its configured attempts and the stream
/// resumes there, same address.
pub fn alternate_takeover(proto: Proto) -> Result<FailoverFigures> {
    let mut o = recovery::opts(proto, "fo");
    // The primary's host dies: nothing may outlive pmipd there.
    o.pin = false;
    o.max_retx = 2;
    if proto == Proto::Pmipv4 {
        // `timers.ha_failover`: 3 requests 1 s apart, then the alternate.
        o.extra_access = "\n[timers.ha_failover]\nenabled = true\nmax_attempts = 3\nattempts_before_switching = 3\ntimeout_s = 1\n".into();
    }
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    lab::ensure_binaries()?;
    l.start_anchor()?;
    let alt = Alt::up(&mut l)?;
    let cfg = l.dir.0.join("mag1.toml");
    std::fs::write(&cfg, access_config_with_alt(&l.opts, &l.dir.0)?)?;
    let sock = l.dir.0.join("mag1.sock");
    l.access[0] = Some(Daemon::start(
        &l.mags[0],
        "mag1",
        &cfg,
        &sock,
        &l.opts.log_filter,
    )?);

    let lease = l.attach(false)?;
    let (m0, _) = l.wait_registered(0)?;
    ensure!(
        m0.peer.to_string() == CORE_ANCHOR.to_string(),
        "not at the primary: {m0:?}"
    );
    // Long enough for the takeover on a loaded machine, and a stretch
    // after; without ping's -w, which ends ping at the first ICMP error
    // (the dead primary's unreachables).
    let stream = stream(&l.cn, &lease.ip, 30)?;
    lab::interruptible_sleep(Duration::from_secs(2))?;
    // The primary's host dies: daemon gone, links dark.
    l.anchor_d.as_mut().context("no anchor")?.kill9();
    lab::run_all(
        &l.anchor,
        &[
            "ip link set core0 down".into(),
            "ip link set cn0 down".into(),
        ],
    )?;
    let died = epoch_now();
    let at_alt = |b: &[pmip_user::ctl::BindingView]| {
        b.len() == 1 && b[0].peer.to_string() == ALT_CORE && b[0].state == "ACTIVE"
    };
    let m1 = l
        .mag(0)
        .wait_bindings(
            Duration::from_secs(20),
            "registered at the alternate",
            at_alt,
        )
        .map_err(|e| anyhow!("{e:#}\n{}\n{}", l.mag(0).log_tail(25), alt.d().log_tail(15)))?;
    let a1 = alt
        .d()
        .wait_bindings(Duration::from_secs(5), "one binding", |b| b.len() == 1)?;
    ensure!(
        m1[0].home_v4 == m0.home_v4,
        "renumbered: {m0:?} then {:?}",
        m1[0]
    );
    ensure!(
        a1[0].home_v4 == m0.home_v4,
        "alternate gave {:?}",
        a1[0].home_v4
    );
    let text = stream
        .join()
        .map_err(|_| anyhow!("reading ping's output"))??;
    let (sent, received) = lab::ping_summary(&text).ok_or_else(|| anyhow!("ping said: {text}"))?;
    // Reply times (ping -D), in order.
    let replies: Vec<f64> = text
        .lines()
        .filter(|x| x.contains("bytes from"))
        .filter_map(|x| x.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
        .collect();
    let first = *replies.iter().find(|t| **t >= died).ok_or_else(|| {
        anyhow!(
            "no reply after the primary died:\n{}",
            l.mag(0).log_tail(20)
        )
    })?;
    // The stream went on to its end through the alternate.
    let last = replies.last().copied().unwrap_or(0.0);
    ensure!(
        epoch_now() - last < 2.0,
        "the stream stopped before its end"
    );
    let f = FailoverFigures {
        takeover: Duration::from_secs_f64(first - died),
        sent,
        lost: sent - received,
        failovers: failovers(l.mag(0))?,
    };
    ensure!(f.failovers >= 1, "no failover counted: {f:?}");
    drop(alt);
    Ok(f)
}

/// `ping -D -i 0.002` for `secs`, ended by SIGINT (its summary printed):
/// the output, read as it comes (a full pipe would stop ping).
fn stream(cn: &Netns, dst: &str, secs: u32) -> Result<std::thread::JoinHandle<Result<String>>> {
    let mut child = cn
        .command("timeout")
        .args([
            "-s",
            "INT",
            &secs.to_string(),
            "ping",
            "-D",
            "-n",
            "-i",
            "0.002",
            "-W",
            "1",
            dst,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("spawning ping")?;
    let mut out = child.stdout.take().context("ping's stdout")?;
    Ok(std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b)?;
        child.wait()?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }))
}
