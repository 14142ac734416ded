use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

use super::record::{decode, encode};
use super::*;
use crate::dataplane::AccessPoint;

fn at(n: u8) -> AccessPoint {
    AccessPoint {
        ifindex: 7,
        vlan: 12,
        mac: [2, 0, 0, 0, 0xaa, n],
    }
}

fn access(n: u8) -> AccessRecord {
    AccessRecord {
        proto: Proto::Pmipv6,
        nai: format!("sub{n}@example.com"),
        anchor: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 10)),
        primary: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 10)),
        alternate: None,
        sub_id: u32::from(n),
        downlink_key: u32::from(n),
        uplink_key: 100 + u32::from(n),
        home_v4: Some(Ipv4Addr::new(10, 64, 0, n)),
        home_v4_len: 24,
        router_v4: Some(Ipv4Addr::new(10, 64, 0, 1)),
        hnp: None,
        want_v4: true,
        want_v6: false,
        static_v4: None,
        apn: Some("internet".into()),
        imsi: None,
        interface_id: Some(b"acc0".to_vec()),
        lifetime_s: 120,
        expires_ms: 1_800_000_000_000,
        refresh_ms: 1_799_999_990_000,
        last_ident: 0x1234_5678_9abc,
        seq: 7,
        att: Some(4),
        anchor_revocation: false,
        leaving: false,
        aaa: None,
    }
}

fn anchor(id: u32) -> AnchorRecord {
    AnchorRecord {
        proto: Proto::Pmipv4,
        nai: format!("sub{id}@example.com"),
        llid: vec![2, 0, 0, 0, 0xaa, id as u8],
        peer: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
        peer_port: 434,
        sub_id: id,
        uplink_key: id,
        downlink_key: 9,
        home_v4: Some(Ipv4Addr::new(10, 64, 0, 2)),
        home_v4_len: 24,
        from_pool: true,
        hnp: Some(HnpRecord {
            prefix: "2001:db8:1::".parse().unwrap(),
            len: 64,
        }),
        att: Some(4),
        lifetime_s: 600,
        expires_ms: 1_800_000_000_000,
        last_ident: 42,
        revocable: true,
        last_seq: 3,
        revoking: None,
        ha_revocations: Vec::new(),
        released: false,
    }
}

#[test]
fn keys_round_trip_through_their_paths() {
    for k in [
        RecordKey::Node,
        RecordKey::Access(at(1)),
        RecordKey::Binding(4_000_000),
        RecordKey::Nai("a/b@example.com".into()),
    ] {
        assert_eq!(
            RecordKey::from_path(&k.path()),
            Some(k.clone()),
            "{}",
            k.path()
        );
    }
    assert_eq!(
        RecordKey::Access(at(1)).path(),
        "access/7/12/02:00:00:00:aa:01"
    );
    for bad in [
        "",
        "nodes",
        "access/1/2",
        "access/x/0/02:00:00:00:00:01",
        "lma/",
        "lma/x",
        "ha/",
        "mag/1",
    ] {
        assert_eq!(RecordKey::from_path(bad), None, "{bad}");
    }
}

/// The AAA's profile rides in the access record; a record written before the
/// field existed (no `aaa` key) still loads, without one.
#[test]
fn access_records_keep_the_aaa_profile_and_old_ones_load() {
    let mut r = access(4);
    r.aaa = Some(Box::new(crate::store::AaaProfile {
        name: "radius+default".into(),
        user_name: "02-00-00-00-aa-01".into(),
        class: vec![b"lab-class".to_vec()],
        interim_s: Some(2),
        session_timeout_s: Some(90),
        session_start_ms: 1_799_999_000_000,
        dns: vec!["198.51.100.53".parse().unwrap()],
        ..Default::default()
    }));
    let b = encode(&Record::Access(r.clone()));
    assert_eq!(decode(&b), Ok(Record::Access(r.clone())));
    let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    v.as_object_mut().unwrap().remove("aaa");
    let old = serde_json::to_vec(&v).unwrap();
    r.aaa = None;
    assert_eq!(decode(&old), Ok(Record::Access(r)));
}

#[test]
fn records_round_trip_and_carry_a_version() {
    for r in [
        Record::Node(NodeRecord { restart_counter: 9 }),
        Record::Access(access(3)),
        Record::Anchor(anchor(5)),
    ] {
        let b = encode(&r);
        assert!(
            b.starts_with(br#"{"v":1,"kind":"#),
            "{}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(decode(&b), Ok(r));
    }
    // Another version, a torn write, garbage: refused with a reason, no panic.
    let mut other = encode(&Record::Node(NodeRecord { restart_counter: 1 }));
    other[5] = b'2';
    assert!(decode(&other).unwrap_err().contains("version 2"));
    let full = encode(&Record::Access(access(1)));
    for cut in [0, 1, full.len() / 2, full.len() - 1] {
        assert!(decode(&full[..cut]).is_err());
    }
    assert!(decode(b"\xff\xfe").is_err());
    assert!(decode(br#"{"v":1,"kind":"mystery"}"#).is_err());
}

fn exercise(s: &mut dyn Store) {
    assert!(s.scan().unwrap().is_empty());
    s.apply(&[
        StoreOp::Put(
            RecordKey::Node,
            Record::Node(NodeRecord { restart_counter: 3 }),
        ),
        StoreOp::Put(RecordKey::Access(at(1)), Record::Access(access(1))),
        StoreOp::Put(RecordKey::Access(at(2)), Record::Access(access(2))),
        StoreOp::Put(RecordKey::Binding(5), Record::Anchor(anchor(5))),
    ])
    .unwrap();
    // Replace, delete, delete of something absent: one batch.
    let mut a1 = access(1);
    a1.expires_ms += 1000;
    s.apply(&[
        StoreOp::Put(RecordKey::Access(at(1)), Record::Access(a1.clone())),
        StoreOp::Delete(RecordKey::Access(at(2))),
        StoreOp::Delete(RecordKey::Nai("nobody".into())),
    ])
    .unwrap();
    s.apply(&[]).unwrap();
    let mut got = s.scan().unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (
                RecordKey::Node,
                Record::Node(NodeRecord { restart_counter: 3 })
            ),
            (RecordKey::Access(at(1)), Record::Access(a1)),
            (RecordKey::Binding(5), Record::Anchor(anchor(5))),
        ]
    );
}

#[test]
fn memory_store_applies_batches() {
    let mut s = MemStore::new();
    exercise(&mut s);
    assert_eq!(s.writes(), (3, 7));
    // A clone sees the same records: a test's "restart".
    assert_eq!(s.clone().len(), 3);
    s.fail_next();
    assert!(s.apply(&[StoreOp::Delete(RecordKey::Node)]).is_err());
    assert_eq!(s.len(), 3, "a refused batch changes nothing");
    assert!(!s.durable());
}

#[test]
fn embedded_store_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("pmip-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("sub/state.redb");
    {
        let mut s = EmbeddedStore::open(&path).unwrap();
        assert!(s.durable());
        exercise(&mut s);
    }
    // A record another build wrote, and a key this one does not know, are
    // skipped on the next scan.
    {
        let s = EmbeddedStore::open(&path).unwrap();
        let tx = s.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(super::embedded::RECORDS_FOR_TESTS).unwrap();
            t.insert("ha/x", br#"{"v":99}"#.as_slice()).unwrap();
            t.insert("future/thing", b"{}".as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let mut s = EmbeddedStore::open(&path).unwrap();
    let got = s.scan().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    // Only one process at a time.
    assert!(EmbeddedStore::open(&path).is_err());
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An embedded store holding anchor records as JSON (what the stores
/// write) and in the compact form (what a later build may write) is read
/// whole; a torn compact record is skipped, never a panic, and the rest load.
#[test]
fn embedded_store_reads_json_and_compact_records_and_skips_torn_ones() {
    use redb::{ReadableDatabase, ReadableTable};
    let dir = std::env::temp_dir().join(format!("pmip-store-compact-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("state.redb");
    let compact = record::encode_compact(&Record::Anchor(anchor(7)));
    assert!(compact.len() * 3 < encode(&Record::Anchor(anchor(7))).len());
    {
        let s = EmbeddedStore::open(&path).unwrap();
        let tx = s.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(super::embedded::RECORDS_FOR_TESTS).unwrap();
            let old = encode(&Record::Anchor(anchor(5)));
            t.insert("lma/5", old.as_slice()).unwrap();
            t.insert("lma/7", compact.as_slice()).unwrap();
            t.insert("lma/6", &compact[..compact.len() - 3]).unwrap();
            t.insert("lma/8", &compact[..1]).unwrap();
        }
        tx.commit().unwrap();
    }
    let mut s = EmbeddedStore::open(&path).unwrap();
    // A refresh written by this build goes back as JSON, and is read.
    s.apply(&[StoreOp::Put(
        RecordKey::Binding(5),
        Record::Anchor(anchor(5)),
    )])
    .unwrap();
    let mut got = s.scan().unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (RecordKey::Binding(5), Record::Anchor(anchor(5))),
            (RecordKey::Binding(7), Record::Anchor(anchor(7))),
        ]
    );
    let tx = s.db.begin_read().unwrap();
    let t = tx.open_table(super::embedded::RECORDS_FOR_TESTS).unwrap();
    assert_eq!(t.get("lma/5").unwrap().unwrap().value()[0], b'{');
    assert_eq!(t.get("lma/7").unwrap().unwrap().value(), compact.as_slice());
    drop((t, tx, s));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn restart_counter_kept_when_recovered_new_when_lost() {
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (c, n) = restart_counter(None, t);
    assert_eq!(n.restart_counter, c);
    let (c2, _) = restart_counter(Some(&n), t + Duration::from_secs(60));
    assert_eq!(
        c2, c,
        "state recovered: the peers must see the same counter"
    );
    let (c3, _) = restart_counter(None, t + Duration::from_secs(60));
    assert_ne!(c3, c, "state lost: a new counter");
    let (c4, _) = restart_counter(None, t + Duration::from_millis(300));
    assert_ne!(c4, c, "two starts within a second: two counters");
}
