use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use super::*;
use crate::esp::{DropReason, EspAlgorithm, EspConfig, EspSettings};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn cfg(spi_in: u32, spi_out: u32, k_in: &str, k_out: &str) -> EspSettings {
    EspConfig {
        spi_in,
        spi_out,
        algorithm: EspAlgorithm::AesGcm,
        key_in: k_in.into(),
        key_out: k_out.into(),
        auth_key_in: None,
        auth_key_out: None,
        replay_window: 64,
        esn: false,
    }
    .check("t")
    .unwrap()
}

const K1: &str = "0x000102030405060708090a0b0c0d0e0f10111213";
const K2: &str = "0x202122232425262728292a2b2c2d2e2f30313233";

/// A's SAs with B, and B's with A (directions swapped).
fn pair() -> (SaDb, SaDb) {
    let mut a = SaDb::with_seed(1);
    a.add_peer(B, &cfg(0x201, 0x102, K2, K1)).unwrap();
    let mut b = SaDb::with_seed(2);
    b.add_peer(A, &cfg(0x102, 0x201, K1, K2)).unwrap();
    (a, b)
}

/// A store in memory that counts its writes (what `kill -9` leaves is what
/// was last saved).
#[derive(Clone, Default)]
struct Mem(Arc<Mutex<(Vec<SeqRecord>, usize)>>);
impl SeqStore for Mem {
    fn load(&mut self) -> io::Result<Vec<SeqRecord>> {
        Ok(self.0.lock().unwrap().0.clone())
    }
    fn save(&mut self, r: &[SeqRecord]) -> io::Result<()> {
        let mut g = self.0.lock().unwrap();
        g.0 = r.to_vec();
        g.1 += 1;
        Ok(())
    }
}

fn send(db: &mut SaDb, k: &mut SeqKeeper, now: Instant) -> Vec<u8> {
    k.before_seal(db, &B, now).unwrap();
    db.seal(&B, 135, b"mobility header").unwrap()
}

#[test]
fn without_a_store_a_restarted_sender_is_taken_for_a_replayer() {
    let (mut a, mut b) = pair();
    for _ in 0..10 {
        let p = a.seal(&B, 135, b"x").unwrap();
        b.open(&A, &p).unwrap();
    }
    let (mut a2, _) = pair();
    let p = a2.seal(&B, 135, b"x").unwrap();
    assert_eq!(b.open(&A, &p), Err(DropReason::Replay(1)));
}

#[test]
fn a_restarted_sender_continues_above_everything_it_sent() {
    let store = Mem::default();
    let (mut a, mut b) = pair();
    let now = Instant::now();
    let mut k = SeqKeeper::restore(Box::new(store.clone()), &mut a).unwrap();
    for _ in 0..(TX_BLOCK + 10) {
        let p = send(&mut a, &mut k, now);
        b.open(&A, &p).unwrap();
    }
    // One write at start and one per block reserved, not one per packet.
    assert_eq!(store.0.lock().unwrap().1, 2);
    // kill -9: no flush. The new instance starts from the store.
    let (mut a2, _) = pair();
    let mut k2 = SeqKeeper::restore(Box::new(store.clone()), &mut a2).unwrap();
    assert!(a2.tx_seq(&B).unwrap() >= TX_BLOCK + 10);
    let p = send(&mut a2, &mut k2, now);
    b.open(&A, &p)
        .expect("the peer takes the restarted sender's packets");
}

#[test]
fn a_restarted_receiver_refuses_what_it_took_before() {
    let store = Mem::default();
    let (mut a, mut b) = pair();
    let t0 = Instant::now();
    let mut kb = SeqKeeper::restore(Box::new(store.clone()), &mut b).unwrap();
    let mut recorded = Vec::new();
    for i in 0..5u64 {
        let p = a.seal(&B, 135, b"x").unwrap();
        recorded.push(p.clone());
        b.open(&A, &p).unwrap();
        kb.after_open(&b, t0 + Duration::from_millis(10 * i))
            .unwrap();
    }
    // Saved at the first packet only (once per second), then at shutdown.
    assert_eq!(store.0.lock().unwrap().0[0].rx_top, 1);
    kb.flush(&b).unwrap();
    assert_eq!(store.0.lock().unwrap().0[0].rx_top, 5);
    let (_, mut b2) = pair();
    SeqKeeper::restore(Box::new(store.clone()), &mut b2).unwrap();
    for p in &recorded {
        assert!(matches!(b2.open(&A, p), Err(DropReason::Replay(_))));
    }
    let p = a.seal(&B, 135, b"x").unwrap();
    b2.open(&A, &p).unwrap();
}

#[test]
fn records_of_other_keys_are_ignored() {
    let store = Mem::default();
    store.0.lock().unwrap().0 = vec![SeqRecord {
        peer: B,
        spi_out: 0x999,
        tx_seq: 77_777,
        spi_in: 0x201,
        rx_top: 5,
    }];
    let (mut a, _) = pair();
    SeqKeeper::restore(Box::new(store.clone()), &mut a).unwrap();
    assert_eq!(a.tx_seq(&B), Some(0));
    let saved = store.0.lock().unwrap().0.clone();
    assert_eq!(saved.len(), 1);
    assert_eq!((saved[0].spi_out, saved[0].tx_seq), (0x102, TX_BLOCK));
}

#[test]
fn file_store_round_trip_and_bad_content() {
    let dir = std::env::temp_dir().join(format!("pmip-esp-seq-{}", std::process::id()));
    let path = dir.join("sub").join("esp-seq");
    let mut f = FileSeqStore::new(&path);
    assert_eq!(f.load().unwrap(), vec![]);
    let r = vec![SeqRecord {
        peer: A,
        spi_out: 0x102,
        tx_seq: 4096,
        spi_in: 0x201,
        rx_top: 12,
    }];
    f.save(&r).unwrap();
    assert_eq!(FileSeqStore::new(&path).load().unwrap(), r);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(&path, b"{not json").unwrap();
    let e = FileSeqStore::new(&path).load().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("esp-seq"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
