//! The four registrars built from the configuration: the state machine of
//! the configured role and protocol, its configuration, and its transport.
use std::net::SocketAddrV4;
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Context, Result};

use super::fastpath::SharedDp;
use crate::agent::peer_filter::PeerFilter;
use crate::agent::{Clock, Transport};
use crate::config::{agents, Config, UnknownPeers};
use crate::dataplane::Held;
use crate::esp::persist::{FileSeqStore, SeqKeeper};
use crate::esp::{SaDb, SignalingEsp};
use crate::pmipv4::{self, ha, pma, transport::Udp434};
use crate::pmipv6::{self, lma, mag, transport::Sockets};

fn clock() -> Clock {
    Clock::new(Instant::now(), SystemTime::now())
}

/// The PMIPv6 sockets: raw MH for IPv6 peers, UDP 5436 for IPv4 ones, and
/// raw ESP for the peers with SAs (`peers[].esp`), their sequence numbers
/// restored from `signaling.esp_state_file`.
pub(super) fn pmipv6_sockets(cfg: &Config, local: &pmipv6::LocalAddrs) -> Result<Sockets> {
    let port = pmipv6::wire::UDP_PORT;
    let sockets = Sockets::bind(local, port, true)
        .context("binding the PMIPv6 sockets (addresses.*)")?
        .with_receive_buffer(cfg.signaling.receive_buffer)
        .with_udp_gso(cfg.signaling.udp_gso)
        .with_udp_gro(cfg.signaling.udp_gso);
    let mut db = SaDb::new();
    for (i, p) in cfg.peers.iter().enumerate() {
        if let Some(esp) = &p.esp {
            db.add_peer(p.address, esp)
                .map_err(|e| anyhow!("peers[{i}].esp: {e}"))?;
        }
    }
    if db.peer_addrs().next().is_none() {
        return Ok(sockets);
    }
    let file = &cfg.signaling.esp_state_file;
    let keeper =
        SeqKeeper::restore(Box::new(FileSeqStore::new(file)), &mut db).with_context(|| {
            format!(
                "signaling.esp_state_file {}: the ESP sequence numbers (remove a damaged file to \
             start afresh; the peers then drop our first messages as replays until their \
             windows are passed)",
                file.display()
            )
        })?;
    tracing::info!(
        peers = db.peer_addrs().count(),
        "ESP protects the signaling"
    );
    sockets
        .with_esp(SignalingEsp::new(db, *local, port), Some(keeper))
        .context("opening the raw ESP sockets")
}

/// With `signaling.xdp_socket`: the AF_XDP sockets the fast path on the
/// core interface hands IPv6 Mobility Headers to (`Sockets::with_xdp_sockets`).
pub(super) fn xdp_sockets(cfg: &Config, dp: &SharedDp, sockets: Sockets) -> Result<Sockets> {
    let (true, Some(local)) = (cfg.signaling.xdp_socket, cfg.addresses.ipv6) else {
        return Ok(sockets);
    };
    let core = &cfg.interfaces.core;
    // The sockets' memory together is a receive buffer
    // (`signaling.receive_buffer_kib`, as the raw socket has) in frames of
    // 2 KiB, shared out among the receive queues: what a burst of PBUs may
    // queue while the LMA is busy; past it the kernel drops and counts
    // them (`rx_socket_drops`) and the MAGs retransmit.
    let frames =
        (cfg.signaling.receive_buffer / crate::sys::xsk::FRAME as usize).clamp(64, 1 << 20) as u32;
    // Without them (a kernel without AF_XDP, the fast path fallen back to
    // TC) the raw MH socket reads everything, as with the setting off.
    // PBAs in flight through the first socket (`signaling.xdp_socket_send`):
    // a few batches' worth; past them the raw socket sends.
    let tx_frames = if cfg.signaling.xdp_socket_send {
        1024
    } else {
        0
    };
    let socks = match dp.with(|f| f.signaling_sockets(core, local, frames, tx_frames))? {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "signaling.xdp_socket: no AF_XDP sockets; Mobility Headers are read from the raw socket");
            return Ok(sockets);
        }
    };
    tracing::info!(iface = %core, sockets = socks.len(), "Mobility Headers read from AF_XDP sockets");
    let send = match cfg.signaling.xdp_socket_send {
        true => Some(send_link(cfg, core).context("signaling.xdp_socket_send")?),
        false => None,
    };
    sockets
        .with_xdp_sockets(socks, send)
        .context("signaling.xdp_socket")
}

/// What the PBAs' frames need of the core interface: its index, address
/// and MTU, and the hop limit the raw socket would have used; and the
/// configured MAGs.
fn send_link(cfg: &Config, core: &str) -> Result<pmipv6::transport::SendLink> {
    let link = crate::sys::netlink::link(core)?;
    let sysctl = format!("/proc/sys/net/ipv6/conf/{core}/hop_limit");
    let hop_limit = std::fs::read_to_string(&sysctl)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(64);
    Ok(pmipv6::transport::SendLink {
        ifindex: link.index,
        mac: link.mac,
        mtu: link.mtu,
        hop_limit,
        mags: cfg
            .peers
            .iter()
            .filter_map(|p| match p.address {
                std::net::IpAddr::V6(a) => Some(a),
                std::net::IpAddr::V4(_) => None,
            })
            .collect(),
    })
}

/// `transport` restricted to the configured peers (`signaling.unknown_peers`).
pub(super) fn peers_only<T: Transport>(cfg: &Config, transport: T) -> PeerFilter<T> {
    match cfg.signaling.unknown_peers {
        UnknownPeers::Drop => PeerFilter::new(transport, cfg.peers.iter().map(|p| p.address)),
        UnknownPeers::Answer => PeerFilter::open(transport),
    }
}

/// The PMIPv4 registration socket (UDP 434 on addresses.ipv4).
pub(super) fn pmipv4_socket(cfg: &Config) -> Result<Udp434> {
    let addr = v4_address(cfg)?;
    Ok(Udp434::bind(SocketAddrV4::new(addr, pmipv4::wire::PORT))
        .with_context(|| format!("binding UDP {addr}:434 (addresses.ipv4)"))?
        .with_receive_buffer(cfg.signaling.receive_buffer)
        .with_gso(cfg.signaling.udp_gso)
        .with_gro(cfg.signaling.udp_gso))
}

fn v4_address(cfg: &Config) -> Result<std::net::Ipv4Addr> {
    cfg.addresses
        .ipv4
        .ok_or_else(|| anyhow!("addresses.ipv4: PMIPv4 needs an IPv4 address"))
}

/// The MAG, with what the data plane already holds reserved.
/// `restart_counter`: RFC 5847 §5.2, from the store (`state::open`).
pub(super) fn mag(
    cfg: &Config,
    held: &Held,
    restart_counter: u32,
) -> (mag::Mag, pmipv6::LocalAddrs) {
    let mcfg = agents::mag(cfg, restart_counter);
    let local = mcfg.local;
    let mut m = mag::Mag::new(mcfg, Instant::now(), SystemTime::now());
    m.reserve(held);
    (m, local)
}

/// The LMA, with what the data plane already holds reserved.
pub(super) fn lma(
    cfg: &Config,
    held: &Held,
    restart_counter: u32,
) -> (lma::Lma, pmipv6::LocalAddrs) {
    let lcfg = agents::lma(cfg, restart_counter);
    let local = lcfg.local;
    let mut l = lma::Lma::new(lcfg, Instant::now(), SystemTime::now());
    l.reserve(held);
    (l, local)
}

/// The PMA, with what the data plane already holds reserved.
pub(super) fn pma(cfg: &Config, held: &Held) -> Result<pma::Pma> {
    let mut p = pma::Pma::new(agents::pma(cfg)?, clock());
    p.reserve(held);
    Ok(p)
}

/// The HA, with what the data plane already holds reserved.
pub(super) fn ha(cfg: &Config, held: &Held) -> Result<ha::Ha> {
    let mut h = ha::Ha::new(agents::ha(cfg)?, clock());
    h.reserve(held);
    Ok(h)
}
