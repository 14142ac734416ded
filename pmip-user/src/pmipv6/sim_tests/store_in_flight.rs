//! The real shell driving the LMA with several store writes in flight
//! (issue 17, `agent/pipeline.rs`), over an in-memory wire, with a store
//! whose writes the test settles one by one: pass N+1 is read and its write
//! sent while N's is out, each pass's answers wait for their own write, and
//! a refusal of write N with N+1 in flight still answers N's new bindings
//! 130 — and the retransmission of one of them, taken in pass N+1, too.
use std::io;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::agent::shell::{self, Io};
use crate::agent::Transport;
use crate::store::{Begun, MemStore, Record, RecordKey, Store, StoreOp};

struct Wire {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    tx: mpsc::UnboundedSender<Transmit>,
}

impl Wire {
    /// The wire, the test's end towards the LMA, and what the LMA sends.
    fn new() -> (
        Wire,
        mpsc::UnboundedSender<Vec<u8>>,
        mpsc::UnboundedReceiver<Transmit>,
    ) {
        let (to_lma, rx) = mpsc::unbounded_channel();
        let (tx, from_lma) = mpsc::unbounded_channel();
        let wire = Wire {
            rx: tokio::sync::Mutex::new(rx),
            tx,
        };
        (wire, to_lma, from_lma)
    }
}

impl Transport for Wire {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Peer, usize)> {
        let Some(d) = self.rx.lock().await.recv().await else {
            return std::future::pending().await;
        };
        buf[..d.len()].copy_from_slice(&d);
        Ok((Peer::V6(MAG1), d.len()))
    }
    fn try_recv(&self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        let d = self.rx.try_lock().ok()?.try_recv().ok()?;
        buf[..d.len()].copy_from_slice(&d);
        Some((Peer::V6(MAG1), d.len()))
    }
    async fn send(&self, t: &Transmit) -> io::Result<()> {
        let _ = self.tx.send(t.clone());
        Ok(())
    }
}

type Settle = oneshot::Sender<anyhow::Result<()>>;

/// A store whose writes stay in flight until the test settles them.
struct Gated {
    mem: MemStore,
    begun: mpsc::UnboundedSender<(Vec<StoreOp>, Settle)>,
}

impl Gated {
    /// The store, and the writes it begins, each with its settling end.
    fn new() -> (Gated, mpsc::UnboundedReceiver<(Vec<StoreOp>, Settle)>) {
        let (begun, rx) = mpsc::unbounded_channel();
        let st = Gated {
            mem: MemStore::new(),
            begun,
        };
        (st, rx)
    }
}

impl Store for Gated {
    fn scan(&mut self) -> anyhow::Result<Vec<(RecordKey, Record)>> {
        self.mem.scan()
    }
    fn apply(&mut self, batch: &[StoreOp]) -> anyhow::Result<()> {
        self.mem.apply(batch)
    }
    fn begin(&mut self, batch: &[StoreOp]) -> Begun {
        let (tx, rx) = oneshot::channel();
        let _ = self.begun.send((batch.to_vec(), tx));
        Begun::Pending(rx)
    }
    fn durable(&self) -> bool {
        false
    }
}

/// The statuses of the Binding Acknowledgements among `answers`.
fn statuses(answers: &[Transmit]) -> Vec<BaStatus> {
    let ck = Checksum::Ipv6 {
        src: LMA,
        dst: MAG1,
    };
    answers
        .iter()
        .filter_map(|a| match Message::parse(&a.payload, ck) {
            Ok(Message::BindingAck(ba)) => Some(ba.status),
            _ => None,
        })
        .collect()
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// The MAG's next PBU (a retransmission: its timer fired).
fn retransmission(mag: &mut Mag) -> Transmit {
    loop {
        let t = mag.poll_timeout().expect("a timer");
        mag.handle_timeout(t);
        while let Some(x) = mag.poll_transmit() {
            if x.payload.get(2) == Some(&5) {
                return x;
            }
        }
    }
}

#[test]
fn a_refused_write_with_the_next_in_flight_refuses_only_its_own() {
    let (rt, mut lma) = shell_rt_and_lma();
    lma.set_writes_in_flight(4);
    let mut dp = MemDataPlane::default();
    let (mut st, mut begun) = Gated::new();
    let (wire, to_lma, mut from_lma) = Wire::new();
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mut mag = Mag::new(mag_cfg(false, MAG1, MAG1_V4), Instant::now(), wall());
    let io = Io {
        transport: &wire,
        dp: &mut dp,
        store: &mut st,
    };
    let wait = Duration::from_secs(5);
    let test = async {
        let now = Instant::now();
        let mut pbu = |n: u8| {
            mag.attach(now, req(n));
            mag.poll_transmit().expect("a PBU").payload.to_vec()
        };
        // Pass 1: sub1's PBU; its write goes out and stays.
        to_lma.send(pbu(1)).unwrap();
        let (w1, settle1) = tokio::time::timeout(wait, begun.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w1.len(), 1);
        // Pass 2, read while write 1 is out: sub2's PBU and sub1's
        // retransmission (a refresh of a binding whose first write is out).
        to_lma.send(pbu(2)).unwrap();
        to_lma
            .send(retransmission(&mut mag).payload.to_vec())
            .unwrap();
        let next = tokio::time::timeout(wait, begun.recv()).await;
        let (w2, settle2) = next
            .expect("pass 2 not read while write 1 was out")
            .unwrap();
        assert_eq!(w2.len(), 2, "{w2:?}");
        assert!(drain(&mut from_lma).is_empty(), "answered before its write");
        // Write 1 refused with write 2 in flight: sub1's answer and the
        // answer to its retransmission are refusals, sub2's waits.
        settle1
            .send(Err(anyhow::anyhow!("refused (test)")))
            .unwrap();
        let first = tokio::time::timeout(wait, from_lma.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(statuses(&[first]), [BaStatus::INSUFFICIENT_RESOURCES]);
        // sub1 taken back: its record's delete is the next write.
        let (w3, settle3) = tokio::time::timeout(wait, begun.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(w3[..], [StoreOp::Delete(_)]), "{w3:?}");
        settle3.send(Ok(())).unwrap();
        tokio::task::yield_now().await;
        assert!(
            drain(&mut from_lma).is_empty(),
            "pass 2 went before its write"
        );
        settle2.send(Ok(())).unwrap();
        let mut answers = Vec::new();
        while answers.len() < 2 {
            answers.push(
                tokio::time::timeout(wait, from_lma.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        drop(req_tx);
        statuses(&answers)
    };
    let (_, pass2) =
        rt.block_on(async { tokio::join!(shell::run_with(&mut lma, io, req_rx, ev_tx), test) });
    let mut pass2 = pass2;
    pass2.sort_by_key(|s| s.0);
    assert_eq!(
        pass2,
        [BaStatus::ACCEPTED, BaStatus::INSUFFICIENT_RESOURCES]
    );
    assert_eq!(lma.binding_count(), 1);
    assert_eq!(lma.counters.pbu_store_failed, 1);
    // sub1 never reached the maps nor the daemon's events.
    let installs = dp
        .log
        .iter()
        .filter(|c| matches!(c, DpCommand::InstallAnchor(_)))
        .count();
    assert_eq!(installs, 1, "{:?}", dp.log);
    let created = drain(&mut ev_rx)
        .into_iter()
        .filter(|e| matches!(e, crate::agent::registrar::AnchorEvent::Created { .. }))
        .count();
    assert_eq!(created, 1);
}

/// `set_pass_max` (`store.batch_max`): a pass, and so a store batch, takes
/// at most that many queued datagrams (rounded up to the shell's receive
/// batch of 64), the rest wait for the next pass. Queued: sub1's PBU, 100
/// datagrams that are not PBUs, sub2's PBU.
#[test]
fn a_pass_takes_at_most_pass_max_datagrams() {
    for (pass_max, together) in [(None, true), (Some(16), false)] {
        let (rt, mut lma) = shell_rt_and_lma();
        lma.set_writes_in_flight(2);
        if let Some(n) = pass_max {
            lma.set_pass_max(n);
        }
        let mut dp = MemDataPlane::default();
        let (mut st, mut begun) = Gated::new();
        let (wire, to_lma, _from_lma) = Wire::new();
        let mut mag = Mag::new(mag_cfg(false, MAG1, MAG1_V4), Instant::now(), wall());
        let now = Instant::now();
        let mut pbu = |n: u8| {
            mag.attach(now, req(n));
            mag.poll_transmit().expect("a PBU").payload.to_vec()
        };
        to_lma.send(pbu(1)).unwrap();
        for _ in 0..100 {
            to_lma.send(vec![0xff; 8]).unwrap();
        }
        to_lma.send(pbu(2)).unwrap();
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
        let io = Io {
            transport: &wire,
            dp: &mut dp,
            store: &mut st,
        };
        let test = async {
            let wait = Duration::from_secs(5);
            let mut writes = Vec::new();
            while writes.iter().map(Vec::len).sum::<usize>() < 2 {
                let (w, settle) = tokio::time::timeout(wait, begun.recv())
                    .await
                    .expect("a write")
                    .unwrap();
                let _ = settle.send(Ok(()));
                writes.push(w);
            }
            drop(req_tx);
            writes
        };
        let (_, writes) =
            rt.block_on(async { tokio::join!(shell::run_with(&mut lma, io, req_rx, ev_tx), test) });
        let sizes: Vec<usize> = writes.iter().map(Vec::len).collect();
        if together {
            assert_eq!(sizes, [2], "one pass of 102 datagrams, one write");
        } else {
            assert_eq!(sizes, [1, 1], "passes of at most 16 (+64)");
        }
    }
}
