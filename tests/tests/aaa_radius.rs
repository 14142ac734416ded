//! The AAA module against a real FreeRADIUS in a network namespace (issue 14): authorization
//! with the seeds' profiles, failover, accounting into the detail file (also across a server
//! outage and a restart of the client), Disconnect-Request from radclient, malformed replies.
//!
//! Topology: namespace `rac` (the gateway: our client, our DAE listener) ── veth ── namespace
//! `ras` (FreeRADIUS instances on 10.77.0.2 and 10.77.0.3, radclient, a rogue server on .4).
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pmip_tests::netns::{is_root, veth, Netns};
use pmip_tests::radius::{radclient, seed_users, DetailRecord, FreeRadius, RadiusConf};
use pmip_tests::TempDir;
use pmip_user::aaa::config::{AaaConfig, DaeClient, Secret, Server};
use pmip_user::aaa::{
    spawn_client, spawn_dae, AaaEvent, AcctSession, AuthOutcome, DaeKind, ErrorCause, MnService,
    Subscriber, TerminateCause, Traffic,
};

const CLIENT_IP: &str = "10.77.0.1";
const SECRET: &str = "s3cret-radius";
const DAE_SECRET: &str = "dae-secret";

struct Env {
    client: Netns,
    server: Arc<Netns>,
    dir: TempDir,
}

impl Env {
    fn new(tag: &str) -> Result<Env> {
        let client = Netns::new("rac")?;
        let server = Netns::new("ras")?;
        veth(&client, "c0", &server, "s0")?;
        client.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "c0"])?;
        client.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:77::1/64",
            "dev",
            "c0",
            "nodad",
        ])?;
        for a in ["10.77.0.2/24", "10.77.0.3/24", "10.77.0.4/24"] {
            server.exec(&["ip", "addr", "add", a, "dev", "s0"])?;
        }
        server.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:77::2/64",
            "dev",
            "s0",
            "nodad",
        ])?;
        Ok(Env {
            client,
            server: Arc::new(server),
            dir: TempDir::new(&format!("aaa-{tag}")),
        })
    }

    /// A FreeRADIUS on 10.77.0.`last` answering our client with `secret`.
    fn radius(&self, last: u8, secret: &str, users: String) -> Result<FreeRadius> {
        FreeRadius::start(
            &self.server,
            &self.dir.path().join(format!("radius{last}")),
            RadiusConf {
                listen: format!("10.77.0.{last}").parse()?,
                auth_port: 1812,
                acct_port: 1813,
                clients: vec![(CLIENT_IP.into(), secret.into())],
                users,
                threads: 2,
            },
        )
    }

    /// Runs `f` on a current-thread runtime in a thread inside the client namespace.
    fn run<F, Fut, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<R>>,
        R: Send + 'static,
    {
        self.client.run_in(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(f())
        })?
    }
}

fn server(last: u8) -> Server {
    Server {
        address: format!("10.77.0.{last}").parse().unwrap(),
        auth_port: 1812,
        acct_port: 1813,
        secret: Secret::new(SECRET),
        timeout: None,
        retransmit: None,
    }
}

/// Seed 004's `radius-server` commands, quicker: retransmit 1, timeout 0.3 s.
fn aaa(servers: &[u8]) -> AaaConfig {
    let c = AaaConfig {
        servers: servers.iter().map(|&s| server(s)).collect(),
        nas_identifier: Some("MAG1".into()),
        nas_ip_address: Some(CLIENT_IP.parse().unwrap()),
        retransmit: 1,
        timeout: Duration::from_millis(300),
        ..AaaConfig::default()
    };
    c.check().expect("valid config");
    c
}

fn root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root");
    }
    is_root()
}

const SEED004_MAC: [u8; 6] = [0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
const SEED000_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[test]
fn accept_with_cisco_avpairs_and_an_unknown_vendor() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("avp")?;
    let _r = env.radius(2, SECRET, seed_users())?;
    let cfg = aaa(&[2]);
    let (out, stats) = env.run(move || async move {
        let (h, _ev) = spawn_client(cfg, None).await?;
        let out = h.authorize(Subscriber::new(SEED004_MAC)).await;
        Ok((out, h.stats().await.context("stats")?))
    })?;
    let AuthOutcome::Accept(p) = out else {
        bail!("expected an Accept: {out:?}");
    };
    assert_eq!(p.nai.as_deref(), Some("mn0@example.com"));
    assert_eq!(p.service, Some(MnService::Ipv4));
    assert_eq!(p.lma_ipv6, Some("2001:db8:cafe:1024::101".parse()?));
    assert_eq!(p.lma_ipv4, Some("10.8.24.101".parse()?));
    assert_eq!(p.lma_name.as_deref(), Some("lma1"));
    assert_eq!(p.apn.as_deref(), Some("example.com"));
    assert_eq!(p.mpc_protocol_interface.as_deref(), Some("pmipv6"));
    assert_eq!(p.lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(p.class, vec![b"seed004".to_vec()]);
    assert!(p.invalid.is_empty(), "{:?}", p.invalid);
    assert_eq!(p.unknown_vendors, vec![65535]);
    let s = &stats.servers[0];
    assert_eq!(s.unknown_vendor_attributes, 1);
    assert_eq!(
        (s.requests, s.accepts, s.malformed, s.bad_authenticators),
        (1, 1, 0, 0)
    );
    Ok(())
}

#[test]
fn accept_with_the_3gpp2_home_agent_pair_and_starent_attributes() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("3g2")?;
    let _r = env.radius(2, SECRET, seed_users())?;
    let cfg = aaa(&[2]);
    let (out, by_nai) = env.run(move || async move {
        let (h, _ev) = spawn_client(cfg, None).await?;
        let out = h.authorize(Subscriber::new(SEED000_MAC)).await;
        let mut sub = Subscriber::new([2, 0, 0, 0, 0, 0x99]);
        sub.nai = Some("mn0@example.com".into());
        Ok((out, h.authorize(sub).await))
    })?;
    let AuthOutcome::Accept(p) = out else {
        bail!("expected an Accept: {out:?}");
    };
    assert_eq!(p.ha_primary, Some("192.0.2.1".parse()?));
    assert_eq!(p.ha_alternate, Some("192.0.2.2".parse()?));
    assert_eq!(p.proxy_mip, Some(true));
    assert!(p.subscriber_permission.context("permission")?.simple_ip());
    assert_eq!(p.simultaneous_sip_mip, Some(false));
    assert_eq!(p.handoff_requires_ip, Some(true));
    assert_eq!(p.framed_ip, Some("10.77.5.5".parse()?));
    assert_eq!(p.framed_pool.as_deref(), Some("PMIP_IPv4_POOL"));
    let dns: Vec<String> = p.dns.iter().map(|d| d.to_string()).collect();
    assert_eq!(dns, ["198.51.100.250", "198.51.100.251"]);
    assert_eq!(p.interim_interval, Some(Duration::from_secs(600)));
    assert_eq!(p.lifetime, Some(Duration::from_secs(1800)));
    // The NAI as User-Name (aaa.user_name = "nai").
    let AuthOutcome::Accept(q) = by_nai else {
        bail!("expected an Accept by NAI: {by_nai:?}");
    };
    assert_eq!(q.service, Some(MnService::Dual));
    Ok(())
}

#[test]
fn reject_wrong_secret_and_failover() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("rej")?;
    let _r2 = env.radius(2, SECRET, seed_users())?;
    // Server .3 knows us under another secret: its answers do not verify.
    let _r3 = env.radius(3, "not-our-secret", seed_users())?;
    let one = aaa(&[2]);
    // Without a Message-Authenticator, so that .3 answers at all (FreeRADIUS drops a request
    // whose Message-Authenticator does not verify) — with an authenticator of its own secret.
    let mut two = aaa(&[3, 2]);
    two.message_authenticator = false;
    let (rej, failover, stats) = env.run(move || async move {
        let (h, _) = spawn_client(one, None).await?;
        let rej = h.authorize(Subscriber::new([2, 0, 0, 0, 0, 0x77])).await;
        let (h, _) = spawn_client(two, None).await?;
        let t0 = Instant::now();
        let out = h.authorize(Subscriber::new(SEED004_MAC)).await;
        Ok((rej, (out, t0.elapsed()), h.stats().await.context("stats")?))
    })?;
    assert_eq!(
        rej,
        AuthOutcome::Reject {
            reply_message: Some("no profile".into())
        }
    );
    assert!(matches!(failover.0, AuthOutcome::Accept(_)), "{failover:?}");
    // Two sends 0.3 s apart to .3, then .2.
    assert!(failover.1 >= Duration::from_millis(600), "{:?}", failover.1);
    let (a, b) = (&stats.servers[0], &stats.servers[1]);
    assert_eq!((a.requests, a.retransmissions, a.timeouts), (1, 1, 1));
    assert_eq!(a.bad_authenticators, 2, "both answers of .3 dropped");
    assert_eq!((b.requests, b.accepts), (1, 1));
    Ok(())
}

#[test]
fn server_down_goes_to_the_second_and_all_down_times_out() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("down")?;
    let mut r2 = env.radius(2, SECRET, seed_users())?;
    let mut r3 = env.radius(3, SECRET, seed_users())?;
    r2.stop();
    let cfg = aaa(&[2, 3]);
    let (second, (all_down, took), stats) = env.run(move || async move {
        let (h, _) = spawn_client(cfg, None).await?;
        let second = h.authorize(Subscriber::new(SEED004_MAC)).await;
        r3.stop();
        let t0 = Instant::now();
        let all = h.authorize(Subscriber::new(SEED004_MAC)).await;
        Ok((
            second,
            (all, t0.elapsed()),
            h.stats().await.context("stats")?,
        ))
    })?;
    assert!(matches!(second, AuthOutcome::Accept(_)), "{second:?}");
    assert_eq!(all_down, AuthOutcome::Timeout);
    // (1 + retransmit) × timeout per server, two servers.
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    assert_eq!(stats.servers[0].timeouts, 2);
    assert_eq!(stats.servers[1].timeouts, 1);
    assert_eq!(stats.auth_timeouts, 1);
    Ok(())
}

/// Waits (without blocking the client's task) for `n` records in the detail file.
async fn detail_until(r: &FreeRadius, n: usize) -> Result<Vec<DetailRecord>> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let d = r.detail();
        if d.len() >= n {
            return Ok(d);
        }
        if Instant::now() > end {
            bail!(
                "{} records in the detail file, waited for {n}: {d:#?}",
                d.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn session() -> AcctSession {
    AcctSession {
        session_id: "pmip-0000002a".into(),
        user_name: "mn0@example.com".into(),
        mac: SEED000_MAC,
        framed_ip: Some("10.77.5.5".parse().unwrap()),
        class: vec![b"seed004".to_vec()],
        ..AcctSession::default()
    }
}

fn traffic(n: u64) -> Traffic {
    Traffic {
        input_octets: (5 << 32) + n,
        output_octets: 1000 * n,
        input_packets: n,
        output_packets: 2 * n,
    }
}

#[test]
fn accounting_start_interim_stop_with_exact_counters() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("acct")?;
    let r = env.radius(2, SECRET, seed_users())?;
    let cfg = aaa(&[2]);
    env.run(move || async move {
        let (h, mut ev) = spawn_client(cfg, None).await?;
        h.session_start(session(), Some(Duration::from_secs(1)));
        // The interim timer asks for the counters; answer with the fast path's.
        let due = tokio::time::timeout(Duration::from_secs(5), ev.recv()).await?;
        assert_eq!(
            due,
            Some(AaaEvent::InterimDue {
                session_id: "pmip-0000002a".into()
            })
        );
        h.session_update("pmip-0000002a".into(), traffic(7));
        // Wait for the Interim in the detail file before the Stop (or the Stop replaces it).
        detail_until(&r, 2).await?;
        h.session_stop(
            "pmip-0000002a".into(),
            traffic(9),
            TerminateCause::LostCarrier,
        );
        let d = detail_until(&r, 3).await?;
        let status: Vec<_> = d.iter().map(|x| x.get("Acct-Status-Type")).collect();
        assert_eq!(
            status,
            [Some("Start"), Some("Interim-Update"), Some("Stop")]
        );
        for (rec, n) in [(&d[1], 7u64), (&d[2], 9)] {
            assert_eq!(rec.u64("Acct-Input-Octets"), Some(n));
            assert_eq!(rec.u64("Acct-Input-Gigawords"), Some(5));
            assert_eq!(rec.u64("Acct-Output-Octets"), Some(1000 * n));
            assert_eq!(rec.u64("Acct-Output-Gigawords"), Some(0));
            assert_eq!(rec.u64("Acct-Input-Packets"), Some(n));
            assert_eq!(rec.u64("Acct-Output-Packets"), Some(2 * n));
        }
        for rec in &d {
            assert_eq!(rec.get("Acct-Session-Id"), Some("pmip-0000002a"));
            assert_eq!(rec.get("Calling-Station-Id"), Some("02-00-00-00-00-02"));
            assert_eq!(rec.get("Framed-IP-Address"), Some("10.77.5.5"));
            assert_eq!(rec.get("User-Name"), Some("mn0@example.com"));
            assert_eq!(rec.get("NAS-Identifier"), Some("MAG1"));
            assert_eq!(rec.get("Class"), Some("0x73656564303034"));
        }
        assert_eq!(d[2].get("Acct-Terminate-Cause"), Some("Lost-Carrier"));
        Ok(())
    })
}

#[test]
fn accounting_kept_while_the_server_is_away_and_across_a_client_restart() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("keep")?;
    let mut r = env.radius(2, SECRET, seed_users())?;
    r.stop();
    let mut cfg = aaa(&[2]);
    cfg.accounting.retry_interval = Duration::from_millis(500);
    cfg.accounting.spool = Some(env.dir.path().join("acct.spool"));
    let spool = cfg.accounting.spool.clone().context("spool")?;
    let server_ns = env.server.clone();
    env.run(move || async move {
        // Server away: a Start and a Stop wait; the client stops and writes them down.
        let (h, _) = spawn_client(cfg.clone(), None).await?;
        let mut s2 = session();
        s2.session_id = "pmip-0000002b".into();
        h.session_start(session(), None);
        h.session_start(s2, None);
        h.session_stop(
            "pmip-0000002a".into(),
            traffic(3),
            TerminateCause::UserRequest,
        );
        let end = Instant::now() + Duration::from_secs(5);
        while h.stats().await.context("stats")?.servers[0].acct_timeouts < 2 {
            if Instant::now() > end {
                bail!("no accounting timeout");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = h.shutdown().await;
        assert_eq!(left.len(), 3, "{left:?}");
        let text = std::fs::read_to_string(&spool)?;
        assert_eq!(text.lines().count(), 3);
        // A new client reads the spool and delivers once the server is back.
        let (h, _) = spawn_client(cfg, None).await?;
        // Blocks this runtime until the server answers; the client catches up after.
        r.restart(&server_ns)?;
        let d = detail_until(&r, 3).await?;
        let got: Vec<_> = d
            .iter()
            .map(|x| (x.get("Acct-Session-Id"), x.get("Acct-Status-Type")))
            .collect();
        assert!(got.contains(&(Some("pmip-0000002a"), Some("Start"))));
        assert!(got.contains(&(Some("pmip-0000002a"), Some("Stop"))));
        assert!(got.contains(&(Some("pmip-0000002b"), Some("Start"))));
        let stop = d
            .iter()
            .find(|x| x.get("Acct-Status-Type") == Some("Stop"))
            .context("stop")?;
        assert_eq!(stop.u64("Acct-Input-Packets"), Some(3));
        assert!(
            stop.u64("Acct-Delay-Time").is_some_and(|t| t >= 1),
            "{stop:?}"
        );
        // Delivered: the spool empties (the shell saves within a second).
        let end = Instant::now() + Duration::from_secs(5);
        while spool.exists() {
            if Instant::now() > end {
                bail!("spool not emptied");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(h.stats().await.context("stats")?.acct_queued, 0);
        Ok(())
    })
}

#[test]
fn disconnect_and_coa_requests_from_radclient() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("dae")?;
    let mut cfg = aaa(&[2]);
    cfg.dae.enabled = true;
    cfg.dae.listen = Some(CLIENT_IP.parse()?);
    cfg.dae.clients.push(DaeClient {
        address: "10.77.0.2".parse()?,
        secret: Secret::new(DAE_SECRET),
    });
    let server_ns = env.server.clone();
    env.run(move || async move {
        let (h, mut reqs) = spawn_dae(cfg).await?;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let attrs = format!(
            "Calling-Station-Id = \"00-24-d7-8e-21-a4\", NAS-Identifier = \"MAG1\", \
             Event-Timestamp = {ts}, Message-Authenticator = 0x00"
        );
        let ns = server_ns.clone();
        let a = attrs.clone();
        let rc = tokio::task::spawn_blocking(move || {
            radclient(&ns, "10.77.0.1:3799", "disconnect", DAE_SECRET, &a)
        });
        let req = tokio::time::timeout(Duration::from_secs(5), reqs.recv())
            .await?
            .context("request")?;
        assert_eq!(req.kind, DaeKind::Disconnect);
        assert_eq!(req.target.calling_station_id, Some(SEED004_MAC));
        h.respond(req.token, Ok(()));
        let (ok, out) = rc.await??;
        assert!(ok && out.contains("Received Disconnect-ACK"), "{out}");
        // A wrong secret: no answer, nothing reaches the agent, counted.
        let ns = server_ns.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || {
            radclient(&ns, "10.77.0.1:3799", "disconnect", "wrong", &attrs)
        })
        .await??;
        assert!(!ok && !out.contains("Received"), "{out}");
        assert!(reqs.try_recv().is_err());
        // A CoA-Request changing the lifetime; the agent finds no such session: NAK 503.
        let ns = server_ns.clone();
        let coa = format!(
            "User-Name = \"mn0@example.com\", Session-Timeout = 1800, Event-Timestamp = {ts}"
        );
        let rc = tokio::task::spawn_blocking(move || {
            radclient(&ns, "10.77.0.1:3799", "coa", DAE_SECRET, &coa)
        });
        let req = tokio::time::timeout(Duration::from_secs(5), reqs.recv())
            .await?
            .context("CoA request")?;
        let DaeKind::Coa(p) = &req.kind else {
            bail!("{req:?}");
        };
        assert_eq!(p.lifetime, Some(Duration::from_secs(1800)));
        assert_eq!(req.target.user_name.as_deref(), Some("mn0@example.com"));
        h.respond(req.token, Err(ErrorCause::SessionContextNotFound));
        let (_, out) = rc.await??;
        assert!(out.contains("Received CoA-NAK"), "{out}");
        assert!(out.contains("Session-Context-Not-Found"), "{out}");
        let st = h.stats().await.context("stats")?;
        assert_eq!(
            (st.disconnect_requests, st.coa_requests, st.acks, st.naks),
            (1, 1, 1, 1)
        );
        assert_eq!(st.bad_authenticators, 1);
        Ok(())
    })
}

/// Answers the first Access-Request it gets with truncated attributes, its retransmission
/// with a wrong authenticator, then stays silent.
fn rogue(ns: &Netns) -> Result<std::thread::JoinHandle<Result<()>>> {
    use pmip_user::aaa::wire::{attr::AttrRepr, auth, Code, Packet, PacketRepr};
    let sock = ns.run_in(|| std::net::UdpSocket::bind("10.77.0.4:1812"))??;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        for round in 0..2 {
            let (n, from) = sock.recv_from(&mut buf)?;
            let p = Packet::new_checked(&buf[..n]).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut r = PacketRepr::new(Code::AccessAccept, p.identifier());
            r.push(AttrRepr::cisco_avpair("home-lma=rogue"));
            let mut b = r.to_bytes().map_err(|e| anyhow::anyhow!("{e}"))?;
            auth::sign(&mut b, SECRET.as_bytes(), &p.authenticator())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if round == 0 {
                b[21] = 200; // the attribute runs past the packet
            } else {
                b[4] ^= 0xff;
            }
            sock.send_to(&b, from)?;
        }
        Ok(())
    }))
}

#[test]
fn malformed_replies_are_counted_and_ignored() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("bad")?;
    let _r = env.radius(2, SECRET, seed_users())?;
    let rogue = rogue(&env.server)?;
    let cfg = aaa(&[4, 2]);
    let (out, stats) = env.run(move || async move {
        let (h, _) = spawn_client(cfg, None).await?;
        let out = h.authorize(Subscriber::new(SEED004_MAC)).await;
        Ok((out, h.stats().await.context("stats")?))
    })?;
    rogue
        .join()
        .map_err(|_| anyhow::anyhow!("rogue panicked"))??;
    let AuthOutcome::Accept(p) = out else {
        bail!("{out:?}");
    };
    assert_eq!(
        p.lma_name.as_deref(),
        Some("lma1"),
        "FreeRADIUS's answer, not the rogue's"
    );
    let (a, b) = (&stats.servers[0], &stats.servers[1]);
    assert_eq!((a.malformed, a.bad_authenticators, a.timeouts), (1, 1, 1));
    assert_eq!(b.accepts, 1);
    Ok(())
}

#[test]
fn authorization_and_accounting_over_ipv6() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let env = Env::new("v6")?;
    let r = FreeRadius::start(
        &env.server,
        &env.dir.path().join("radius6"),
        RadiusConf {
            listen: "2001:db8:77::2".parse()?,
            auth_port: 1812,
            acct_port: 1813,
            clients: vec![("2001:db8:77::1".into(), SECRET.into())],
            users: seed_users(),
            threads: 2,
        },
    )?;
    let mut cfg = aaa(&[2]);
    cfg.servers[0].address = "2001:db8:77::2".parse()?;
    cfg.nas_ipv6_address = Some("2001:db8:77::1".parse()?);
    env.run(move || async move {
        let (h, _) = spawn_client(cfg, None).await?;
        let out = h.authorize(Subscriber::new(SEED004_MAC)).await;
        assert!(matches!(out, AuthOutcome::Accept(_)), "{out:?}");
        h.session_start(session(), None);
        let d = detail_until(&r, 1).await?;
        assert_eq!(d[0].get("NAS-IPv6-Address"), Some("2001:db8:77::1"));
        Ok(())
    })
}

/// Authorizations per second against the local FreeRADIUS, pipelined, the client on one
/// core (a current-thread runtime). Not part of the suite (it loads the machine):
/// `cargo test -p pmip-tests --test aaa_radius --release -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput_authorizations_per_second() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let n: u32 = std::env::var("PMIP_AAA_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let env = Env::new("tput")?;
    let r = FreeRadius::start(
        &env.server,
        &env.dir.path().join("radius2"),
        RadiusConf {
            listen: "10.77.0.2".parse()?,
            auth_port: 1812,
            acct_port: 1813,
            clients: vec![(CLIENT_IP.into(), SECRET.into())],
            users: pmip_tests::radius::bulk_users(),
            threads: 2,
        },
    )?;
    let mut cfg = aaa(&[2]);
    cfg.timeout = Duration::from_secs(2);
    cfg.retransmit = 3;
    // All of them are asked for at once: let them all wait rather than be refused.
    cfg.queue_limit = n as usize;
    if let Some(w) = std::env::var("PMIP_AAA_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.window = w;
    }
    let window = cfg.window;
    let server_cpu0 = r.cpu_time();
    let (took, cpu, stats) = env.run(move || async move {
        let (h, _) = spawn_client(cfg, None).await?;
        // Warm up (ARP, FreeRADIUS threads).
        h.authorize(Subscriber::new([2, 0, 0, 0xff, 0xff, 0xff]))
            .await;
        let t0 = Instant::now();
        let cpu0 = thread_cpu();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let h = h.clone();
            let mac = [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            set.spawn(async move { h.authorize(Subscriber::new(mac)).await });
        }
        let mut accepted = 0u32;
        while let Some(o) = set.join_next().await {
            if matches!(o?, AuthOutcome::Accept(_)) {
                accepted += 1;
            }
        }
        let (took, cpu) = (t0.elapsed(), thread_cpu() - cpu0);
        assert_eq!(accepted, n);
        Ok((took, cpu, h.stats().await.context("stats")?))
    })?;
    let server_cpu = r.cpu_time().zip(server_cpu0).map(|(a, b)| a - b);
    drop(r);
    let n = f64::from(n);
    eprintln!(
        "window {}: {n} authorizations in {took:.2?}: {:.0}/s wall clock; client CPU {cpu:.2?} \
         ({:.0}/s per core of the client); FreeRADIUS CPU {:.2?}; \
         retransmissions {}, timeouts {}",
        window,
        n / took.as_secs_f64(),
        n / cpu.as_secs_f64(),
        server_cpu.unwrap_or_default(),
        stats.servers[0].retransmissions,
        stats.servers[0].timeouts
    );
    Ok(())
}

/// CPU time of the calling thread (the current-thread runtime runs the client's tasks on it).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
