//! Many attaches at once, from real MAG state machines (`pmip_user`'s Mag,
//! driven by its shell over real sockets) in namespaces of their own on the
//! lab's core network, against the cluster's anchors: the registrations
//! the 10 000-attach test and the cluster benchmark measure. Their access
//! side is an in-memory data plane (no subscriber traffic, just signaling),
//! which keeps every binding the MAG installed for the checks.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use pmip_user::agent::registrar::{AccessCommand, AccessEvent, AttachRequest};
use pmip_user::agent::shell::{run, Request};
use pmip_user::dataplane::{AccessBinding, AccessPoint, MemDataPlane};
use pmip_user::pmipv6::mag::{LmaPeerConfig, Mag, MagConfig};
use pmip_user::pmipv6::transport::Sockets;
use pmip_user::pmipv6::LocalAddrs;
use tokio::sync::mpsc;

use super::{service_addr, ClusterLab, CLUSTER_ADDR};
use crate::netns::{veth, Netns};

/// The core address of driver MAG `m` (listed as a peer by the anchors).
pub fn driver_addr(m: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 255, 0, 21 + m as u8)
}

/// What one run of attaches gave.
#[derive(Debug, Default)]
pub struct Attached {
    /// Every binding the MAGs installed (uplink key, home address, anchor).
    pub bindings: Vec<AccessBinding>,
    pub failed: usize,
    /// From the first attach to the last registration.
    pub elapsed: Duration,
    /// PBUs the MAGs sent again for want of an answer within their timer
    /// (1 s): each one a PBU or PBA lost on the way, or an answer later
    /// than that.
    pub retransmitted: u64,
}

impl Attached {
    pub fn per_second(&self) -> f64 {
        self.bindings.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Driver MAG namespaces, created on demand and kept for the lab's life.
pub struct Drivers {
    pub ns: Vec<Netns>,
    /// GSO and `UDP_GRO` on the drivers' sockets, as on a MAG with
    /// `signaling.udp_gso` (the lab's `udp_gso`, set on the anchors too).
    udp_gso: bool,
    /// Their sockets' receive buffer (the lab's `receive_buffer_kib`).
    receive_buffer: Option<usize>,
}

impl Drivers {
    /// `n` driver namespaces on the core bridge.
    pub fn new(lab: &ClusterLab, n: usize) -> Result<Drivers> {
        let mut ns = Vec::new();
        for m in 0..n {
            let d = Netns::new(&format!("{}d{}", lab.opts.tag, m + 1))?;
            let port = format!("pcd{}", m + 1);
            veth(&d, "core0", &lab.sw, &port)?;
            lab.sw
                .exec(&["ip", "link", "set", &port, "master", "brc"])?;
            d.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", driver_addr(m)),
                "dev",
                "core0",
            ])?;
            ns.push(d);
        }
        Ok(Drivers {
            ns,
            udp_gso: lab.opts.udp_gso,
            receive_buffer: lab.opts.receive_buffer_kib.map(|k| k as usize * 1024),
        })
    }

    /// Attaches `n` subscribers spread over the driver MAGs, all at once,
    /// through the cluster address (runtime assignment) or `to` directly;
    /// waits for every answer (or `within`).
    pub fn attach(&self, n: usize, to: Option<IpAddr>, within: Duration) -> Result<Attached> {
        let per = n.div_ceil(self.ns.len());
        let mut threads = Vec::new();
        let io = (self.udp_gso, self.receive_buffer);
        for (m, ns) in self.ns.iter().enumerate() {
            let count = per.min(n.saturating_sub(m * per));
            threads.push(ns.thread(move || one_mag(m, count, to, within, io))?);
        }
        let mut all = Attached::default();
        for t in threads {
            let r = t
                .join()
                .map_err(|_| anyhow::anyhow!("driver thread panicked"))??;
            all.bindings.extend(r.bindings);
            all.failed += r.failed;
            all.elapsed = all.elapsed.max(r.elapsed);
            all.retransmitted += r.retransmitted;
        }
        Ok(all)
    }
}

fn mag_config(m: usize) -> MagConfig {
    let mut lmas = vec![LmaPeerConfig {
        name: "cluster".into(),
        addr: CLUSTER_ADDR.parse().unwrap(),
        port: 5436,
    }];
    for k in 0..3 {
        lmas.push(LmaPeerConfig {
            name: format!("s{}", k + 1),
            addr: service_addr(k).parse().unwrap(),
            port: 5436,
        });
    }
    MagConfig {
        local: LocalAddrs {
            v4: Some(driver_addr(m)),
            v6: None,
        },
        lmas,
        lifetime: Duration::from_secs(3600),
        refresh: Duration::from_secs(3000),
        retx_initial: Duration::from_millis(1000),
        retx_max: Duration::from_secs(4),
        max_retx: 6,
        heartbeat_interval: Duration::from_secs(3600),
        runtime_assignment: true,
        ..MagConfig::default()
    }
}

fn request(m: usize, i: usize, anchor: IpAddr) -> AttachRequest {
    let at = AccessPoint {
        ifindex: 2,
        vlan: 0,
        mac: [
            0x02,
            0x40 + m as u8,
            0,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ],
    };
    AttachRequest::ipv4(at, format!("d{m}-{i}@cluster.example"), anchor)
}

/// One driver MAG: `count` attaches, every answer awaited.
fn one_mag(
    m: usize,
    count: usize,
    to: Option<IpAddr>,
    within: Duration,
    (gso, rcvbuf): (bool, Option<usize>),
) -> Result<Attached> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cfg = mag_config(m);
        let mut sockets = Sockets::bind(&cfg.local, 5436, true).context("driver MAG sockets")?;
        if let Some(b) = rcvbuf {
            sockets = sockets.with_receive_buffer(b);
        }
        let sockets = sockets.with_udp_gso(gso).with_udp_gro(gso);
        let mut mag = Mag::new(cfg, Instant::now(), SystemTime::now());
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let shell = tokio::spawn(async move {
            let mut dp = MemDataPlane::default();
            run(&mut mag, &sockets, &mut dp, req_rx, ev_tx).await;
            (dp, mag.counters.pbu_retransmitted)
        });
        let anchor = to.unwrap_or_else(|| CLUSTER_ADDR.parse().unwrap());
        let t0 = Instant::now();
        for i in 0..count {
            let _ = req_tx.send(Request::Command(AccessCommand::Attach(request(
                m, i, anchor,
            ))));
        }
        let (mut ok, mut failed) = (0usize, 0usize);
        let mut last = t0;
        let end = tokio::time::Instant::now() + within;
        while ok + failed < count {
            match tokio::time::timeout_at(end, ev_rx.recv()).await {
                Ok(Some(AccessEvent::Registered { .. })) => {
                    ok += 1;
                    last = Instant::now();
                }
                Ok(Some(AccessEvent::Failed { .. })) => failed += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        drop(req_tx);
        let (dp, retransmitted) = shell.await?;
        if ok + failed < count {
            bail!("driver {m}: {ok} registered, {failed} failed of {count} within {within:?}");
        }
        Ok(Attached {
            bindings: dp.access.into_values().collect(),
            failed,
            elapsed: last - t0,
            retransmitted,
        })
    })
}

/// The serving anchor address of a binding (its tunnel's far end).
pub fn served_by(b: &AccessBinding) -> SocketAddr {
    SocketAddr::new(b.tunnel.remote, 5436)
}
