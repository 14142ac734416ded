//! ESP (RFC 4303, manually keyed SAs of `peers[].esp`) on a service address
//! that moves between anchors (issues 13 and 17).
//!
//! Every anchor that may serve a service address has the same SAs with each
//! access gateway (its `peers[].esp`); the access gateway has one pair per
//! service address it registers with. What must move with the address are
//! the SAs' sequence numbers, or a takeover breaks the signaling:
//!
//! - outbound: the access gateway's window has seen the old owner's numbers;
//!   the new owner must send above all of them (RFC 4303 §3.3.3) or its PBAs
//!   are dropped as replays;
//! - inbound: the new owner's window must start where the old owner's was,
//!   or it takes recorded PBUs once more (§3.4.3).
//!
//! Both are what [`SeqKeeper`] already keeps across restarts, in a
//! [`SeqStore`]: outbound numbers reserved in blocks *before* use, the
//! inbound top written every second. Here the store is etcd, one record per
//! service address (`P/esp/<address>`), written fenced by the ownership of
//! the address like its bindings: a new owner reads it at takeover, reserves
//! the next block above everything the old owner could have sent, and only
//! the owner can write it. The inbound top may be up to a second old after a
//! takeover; RFC 5213's timestamps/sequence numbers (§5.5) still refuse a
//! PBU replayed from that second.
use std::io;
use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::Ctx;
use crate::esp::persist::{SeqKeeper, SeqRecord, SeqStore};
use crate::esp::{SaDb, SignalingEsp};
use crate::pmipv6::{transport::Sockets, LocalAddrs};
use crate::store::etcd::{EtcdConn, Fence};

/// The sequence numbers of one service address's SAs, in etcd.
pub(crate) struct EtcdSeqStore {
    conn: EtcdConn,
    key: String,
    owner_key: String,
    fence: Fence,
}

impl EtcdSeqStore {
    pub(crate) fn new(conn: EtcdConn, addr: IpAddr, fence: Fence) -> Self {
        EtcdSeqStore {
            key: format!("{}/esp/{addr}", conn.keys.prefix()),
            owner_key: conn.keys.owner(addr),
            conn,
            fence,
        }
    }
}

fn io_err(e: anyhow::Error) -> io::Error {
    io::Error::other(format!("{e:#}"))
}

impl SeqStore for EtcdSeqStore {
    fn load(&mut self) -> io::Result<Vec<SeqRecord>> {
        let (conn, key) = (self.conn.clone(), self.key.clone());
        let value = self
            .conn
            .block_on(async move {
                let mut c = conn.client();
                let r = conn.timed("esp read", c.get(key, None)).await?;
                Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
            })
            .map_err(io_err)?;
        match value {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_slice(&v)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}"))),
        }
    }

    fn save(&mut self, records: &[SeqRecord]) -> io::Result<()> {
        let value = serde_json::to_vec(records)?;
        let (conn, key, owner, f) = (
            self.conn.clone(),
            self.key.clone(),
            self.owner_key.clone(),
            self.fence.clone(),
        );
        self.conn
            .block_on(async move {
                let txn = Txn::new()
                    .when([
                        Compare::value(owner.as_str(), CompareOp::Equal, f.member.as_str()),
                        Compare::lease(owner.as_str(), CompareOp::Equal, f.lease),
                    ])
                    .and_then([TxnOp::put(key.as_str(), value, None)]);
                let mut c = conn.client();
                let r = conn.timed("esp write", c.txn(txn)).await?;
                if !r.succeeded() {
                    return Err(anyhow!(crate::store::etcd::NOT_OWNER));
                }
                Ok(())
            })
            .map_err(io_err)
    }
}

/// The PMIPv6 sockets of service address `addr`, with ESP for the peers
/// that have SAs, their sequence numbers taken over from etcd.
pub(super) fn sockets(ctx: &Ctx, addr: IpAddr, fence: &Fence) -> Result<Sockets> {
    let local = LocalAddrs::from(addr);
    let port = crate::pmipv6::wire::UDP_PORT;
    let sockets = Sockets::bind(&local, port, true)
        .with_context(|| format!("binding the PMIPv6 sockets on {addr}"))?
        .with_receive_buffer(ctx.cfg.signaling.receive_buffer)
        .with_udp_gso(ctx.cfg.signaling.udp_gso)
        .with_udp_gro(ctx.cfg.signaling.udp_gso);
    // This service address's own SAs with a peer (`[[cluster.esp]]`), else
    // the peer's (`peers[].esp`: right while the peer registers with one
    // service address only, since the peer needs distinct SPIs and keys
    // per address it signals with).
    let mut db = SaDb::new();
    let own = &ctx.cluster().esp;
    for (i, p) in ctx.cfg.peers.iter().enumerate() {
        let mine = own
            .iter()
            .find(|(svc, peer, _)| *svc == addr && *peer == p.address);
        if let Some((_, _, esp)) = mine {
            db.add_peer(p.address, esp)
                .map_err(|e| anyhow!("cluster.esp ({addr}, {}): {e}", p.name))?;
        } else if let Some(esp) = &p.esp {
            db.add_peer(p.address, esp)
                .map_err(|e| anyhow!("peers[{i}].esp: {e}"))?;
        }
    }
    if db.peer_addrs().next().is_none() {
        return Ok(sockets);
    }
    let store = EtcdSeqStore::new(ctx.conn.clone(), addr, fence.clone());
    let keeper = SeqKeeper::restore(Box::new(store), &mut db)
        .with_context(|| format!("{addr}: the ESP sequence numbers in etcd"))?;
    tracing::info!(%addr, peers = db.peer_addrs().count(), "ESP protects the signaling");
    sockets
        .with_esp(SignalingEsp::new(db, local, port), Some(keeper))
        .context("opening the raw ESP sockets")
}
