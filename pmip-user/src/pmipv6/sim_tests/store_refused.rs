//! The real shell (`agent::shell::run_with`) driving the LMA over an
//! in-memory wire, with a memory store that refuses a write when told: a
//! new binding whose record was refused is answered 130 and never reaches
//! the maps, a refresh whose record was refused is answered as usual
//! (issue 17: an anchor cut off from etcd acknowledges nothing it could not
//! persist, and keeps its subscribers).
use std::io;

use tokio::sync::mpsc;

use super::*;
use crate::agent::shell::{self, Io};
use crate::agent::Transport;
use crate::store::{MemStore, Record, RecordKey};

/// Datagrams in from the test, out to the test.
struct Wire {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Peer, Vec<u8>)>>,
    tx: mpsc::UnboundedSender<Transmit>,
}

impl Transport for Wire {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let Some((p, d)) = self.rx.lock().await.recv().await else {
            return std::future::pending().await;
        };
        buf[..d.len()].copy_from_slice(&d);
        Ok((p, d.len()))
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        let (p, d) = self.rx.try_lock().ok()?.try_recv().ok()?;
        buf[..d.len()].copy_from_slice(&d);
        Some((p, d.len()))
    }
    async fn send(&self, t: &Transmit) -> io::Result<()> {
        let _ = self.tx.send(t.clone());
        Ok(())
    }
}

/// The test's side of the wire, and the MAG at its end.
struct Mag1 {
    mag: Mag,
    to_lma: mpsc::UnboundedSender<(Peer, Vec<u8>)>,
    from_lma: mpsc::UnboundedReceiver<Transmit>,
}

impl Mag1 {
    /// Sends `pbu` and hands the LMA's answer to the MAG at `now`; the
    /// answer's status.
    async fn exchange(&mut self, now: Instant, pbu: Transmit) -> BaStatus {
        self.to_lma
            .send((Peer::V6(MAG1), pbu.payload.to_vec()))
            .unwrap();
        let ck = Checksum::Ipv6 {
            src: LMA,
            dst: MAG1,
        };
        loop {
            let ans = self.from_lma.recv().await.expect("an answer");
            self.mag.handle(now, Peer::V6(LMA), &ans.payload);
            // Heartbeats (RFC 5847) go to the MAG as well.
            if let Ok(Message::BindingAck(ba)) = Message::parse(&ans.payload, ck) {
                return ba.status;
            }
        }
    }

    /// Attaches subscriber `n` and sends its PBU; the answer's status.
    async fn attach(&mut self, now: Instant, n: u8) -> BaStatus {
        self.mag.attach(now, req(n));
        let pbu = self.mag.poll_transmit().expect("a PBU");
        self.exchange(now, pbu).await
    }

    /// Runs the MAG's timers until it sends a PBU (a retry or a refresh)
    /// and exchanges it.
    async fn next(&mut self) -> BaStatus {
        loop {
            let t = self.mag.poll_timeout().expect("a timer");
            self.mag.handle_timeout(t);
            while self.mag.poll_dp().is_some() {}
            while let Some(x) = self.mag.poll_transmit() {
                // MH type 5: a Binding Update (RFC 6275 §6.1.7).
                if x.payload.get(2) == Some(&5) {
                    return self.exchange(t, x).await;
                }
                // A heartbeat: the LMA's answer is taken with the next PBA.
                self.to_lma
                    .send((Peer::V6(MAG1), x.payload.to_vec()))
                    .unwrap();
            }
        }
    }
}

#[test]
fn a_refused_write_refuses_new_bindings_and_keeps_refreshes() {
    let (rt, mut lma) = shell_rt_and_lma();
    let mut dp = MemDataPlane::default();
    let store = MemStore::new();
    let mut st = store.clone();
    let (to_lma, rx) = mpsc::unbounded_channel();
    let (tx, from_lma) = mpsc::unbounded_channel();
    let wire = Wire {
        rx: tokio::sync::Mutex::new(rx),
        tx,
    };
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mut m = Mag1 {
        mag: Mag::new(mag_cfg(false, MAG1, MAG1_V4), Instant::now(), wall()),
        to_lma,
        from_lma,
    };
    let io = Io {
        transport: &wire,
        dp: &mut dp,
        store: &mut st,
    };
    let test = async {
        let now = Instant::now();
        // sub1: written, accepted.
        assert_eq!(m.attach(now, 1).await, BaStatus::ACCEPTED);
        // sub2: its record refused — 130, which the MAG takes as transient.
        store.fail_next();
        assert_eq!(m.attach(now, 2).await, BaStatus::INSUFFICIENT_RESOURCES);
        // The MAG tries sub2 again (the store works again): accepted.
        let retry = m.next().await;
        // sub1's refresh with its record refused: answered as usual.
        store.fail_next();
        let refresh = m.next().await;
        drop(req_tx);
        [retry, refresh]
    };
    let (_, statuses) =
        rt.block_on(async { tokio::join!(shell::run_with(&mut lma, io, req_rx, ev_tx), test) });
    assert_eq!(statuses, [BaStatus::ACCEPTED, BaStatus::ACCEPTED]);
    assert_eq!(lma.binding_count(), 2);
    assert_eq!(lma.counters.pbu_store_failed, 1);
    assert_eq!(lma.counters.registrations, 2);
    assert_eq!(lma.counters.refreshes, 1);
    // The refused binding never reached the maps: two installs, both live.
    let installs: Vec<u32> = dp
        .log
        .iter()
        .filter_map(|c| match c {
            DpCommand::InstallAnchor(a) => Some(a.uplink_key),
            _ => None,
        })
        .collect();
    assert_eq!(installs.len(), 2, "{:?}", dp.log);
    assert!(installs.iter().all(|k| dp.anchor.contains_key(k)));
    // Nor the store, nor the daemon's events.
    let records = store
        .keys()
        .into_iter()
        .filter(|k| matches!(k, RecordKey::Binding(_)))
        .count();
    assert_eq!(records, 2);
    assert!(store
        .keys()
        .iter()
        .all(|k| !matches!(store.get(k), Some(Record::Access(_)))));
    let mut created = 0;
    while let Ok(e) = ev_rx.try_recv() {
        created += usize::from(matches!(
            e,
            crate::agent::registrar::AnchorEvent::Created { .. }
        ));
    }
    assert_eq!(created, 2);
}
