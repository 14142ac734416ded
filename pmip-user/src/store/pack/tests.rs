use super::*;
use crate::store::record::encode;
use crate::store::{AnchorRecord, NodeRecord, Proto};

fn rec(id: u32, expires_ms: u64) -> Record {
    Record::Anchor(AnchorRecord {
        proto: Proto::Pmipv6,
        nai: format!("sub{id}@example.net"),
        llid: vec![2, 0, 0, 0, 0, id as u8],
        peer: "10.255.0.1".parse().unwrap(),
        peer_port: 0,
        sub_id: id,
        uplink_key: id,
        downlink_key: 1000 + id,
        home_v4: Some(std::net::Ipv4Addr::from(0x0a40_0000 + id)),
        home_v4_len: 16,
        from_pool: true,
        hnp: None,
        att: Some(4),
        lifetime_s: 120,
        expires_ms,
        last_ident: 42,
        revocable: false,
        last_seq: 0,
        revoking: None,
        ha_revocations: Vec::new(),
        released: false,
    })
}

fn put(id: u32, expires_ms: u64) -> Entry {
    Entry::Put(RecordKey::Binding(id), rec(id, expires_ms))
}

fn packed(entries: &[Entry]) -> Vec<u8> {
    let e: Vec<Vec<u8>> = entries.iter().map(|e| entry_bytes(e).unwrap()).collect();
    let mut p = pack(&e);
    assert_eq!(p.len(), 1);
    p.remove(0).0
}

#[test]
fn a_pack_round_trips_its_entries_in_order() {
    let entries = vec![
        put(1, 60_000),
        Entry::Tombstone(RecordKey::Binding(2)),
        Entry::Put(RecordKey::Nai("ha@x".into()), rec(3, 120_000)),
        put(1, 61_000),
    ];
    let b = packed(&entries);
    assert_eq!(b[0], TAG);
    assert_eq!(parse(&b), Ok(entries));
    // A record entry is its compact form plus kind, key length, key and
    // record length: 1 + 2 + 5 + 4 bytes of framing for `lma/7`.
    let r = rec(7, 1);
    let one = entry_bytes(&Entry::Put(RecordKey::Binding(7), r.clone())).unwrap();
    assert_eq!(one.len(), 1 + 2 + 5 + 4 + encode_compact(&r).len());
    // An empty pack (only the tag) holds nothing.
    assert_eq!(parse(&[TAG]), Ok(vec![]));
}

#[test]
fn large_groups_are_cut_into_packs_of_at_most_max_bytes() {
    let e: Vec<Vec<u8>> = (0..2000)
        .map(|i| entry_bytes(&put(i, 1)).unwrap())
        .collect();
    let packs = pack(&e);
    assert!(packs.len() > 1);
    let mut seen: Vec<usize> = vec![];
    for (b, ix) in &packs {
        assert!(b.len() <= MAX_BYTES, "{}", b.len());
        assert_eq!(parse(b).unwrap().len(), ix.len());
        seen.extend(ix);
    }
    assert_eq!(seen, (0..2000).collect::<Vec<_>>());
}

#[test]
fn truncated_oversized_and_malformed_packs_are_refused() {
    let entries = [
        put(1, 60_000),
        Entry::Tombstone(RecordKey::Binding(2)),
        put(3, 1),
    ];
    let b = packed(&entries);
    // Every cut that is not at an entry's end is refused, never a panic.
    let mut ends = vec![1];
    for e in &entries {
        ends.push(ends.last().unwrap() + entry_bytes(e).unwrap().len());
    }
    for cut in 0..b.len() {
        let r = parse(&b[..cut]);
        assert_eq!(r.is_ok(), ends.contains(&cut), "cut at {cut}: {r:?}");
    }
    assert!(parse(&[]).unwrap_err().contains("empty"));
    assert!(parse(&[0xB2]).unwrap_err().contains("tag"));
    // Unknown kind, a key that is not a record key or not UTF-8, a record
    // length above the bound or past the end, a record that does not decode.
    let mut k = b.clone();
    k[1] = 9;
    assert!(parse(&k).unwrap_err().contains("unknown kind"));
    let mut bad = vec![TAG, TOMBSTONE, 0, 4];
    bad.extend_from_slice(b"xx/1");
    assert!(parse(&bad).unwrap_err().contains("unknown key"));
    let bad = vec![TAG, TOMBSTONE, 0, 2, 0xff, 0xfe];
    assert!(parse(&bad).unwrap_err().contains("UTF-8"));
    let head = |len: u32| {
        let mut v = vec![TAG, PUT, 0, 5];
        v.extend_from_slice(b"lma/1");
        v.extend_from_slice(&len.to_be_bytes());
        v
    };
    assert!(parse(&head(u32::MAX)).unwrap_err().contains("record of"));
    let mut short = head(100);
    short.extend_from_slice(&[0xB2; 10]);
    assert!(parse(&short).unwrap_err().contains("truncated"));
    let mut junk = head(3);
    junk.extend_from_slice(b"{x}");
    assert!(parse(&junk).is_err());
}

#[test]
fn a_record_too_long_for_a_pack_is_not_packed() {
    let Record::Anchor(mut a) = rec(1, 1) else {
        unreachable!()
    };
    a.llid = vec![0; 70_000]; // JSON, far above MAX_RECORD
    let e = Entry::Put(RecordKey::Binding(1), Record::Anchor(a));
    assert_eq!(entry_bytes(&e), None);
}

fn kvs(v: &[(String, Vec<u8>, i64)]) -> Resolved {
    resolve(v.iter().map(|(k, b, r)| (k.as_str(), b.as_slice(), *r)))
}

fn pk(bucket: u64, seq: u64) -> String {
    format!("pack/{bucket:013}/a1/{seq:020}")
}

#[test]
fn a_scan_keeps_the_newest_copy_of_each_binding() {
    let node = Record::Node(NodeRecord { restart_counter: 7 });
    let v = vec![
        // Binding 1: written at revision 10 in bucket 120 s, refreshed at
        // 20 into bucket 180 s; the refresh wins, whatever the key order.
        (
            pk(180_000, 2),
            packed(&[put(1, 170_000), put(2, 170_000)]),
            20,
        ),
        (
            pk(120_000, 1),
            packed(&[put(1, 100_000), put(3, 100_000)]),
            10,
        ),
        // Binding 4 twice in one pack: the later entry wins.
        (
            pk(120_000, 3),
            packed(&[put(4, 100_000), put(4, 110_000)]),
            30,
        ),
        // Per-binding keys (the other layout): one older than a pack's
        // copy, one newer, one alone.
        ("lma/3".to_string(), encode(&rec(3, 90_000)), 5),
        ("lma/2".to_string(), encode(&rec(2, 175_000)), 40),
        ("lma/9".to_string(), encode(&rec(9, 50_000)), 41),
        ("node".to_string(), encode(&node), 1),
    ];
    let r = kvs(&v);
    assert_eq!(r.skipped, 0);
    let got: BTreeMap<RecordKey, Record> = r.records.into_iter().collect();
    assert_eq!(got.len(), 6);
    assert_eq!(got[&RecordKey::Binding(1)], rec(1, 170_000));
    assert_eq!(got[&RecordKey::Binding(2)], rec(2, 175_000));
    assert_eq!(got[&RecordKey::Binding(3)], rec(3, 100_000));
    assert_eq!(got[&RecordKey::Binding(4)], rec(4, 110_000));
    assert_eq!(got[&RecordKey::Binding(9)], rec(9, 50_000));
    assert_eq!(got[&RecordKey::Node], node);
    // Per binding, the latest bucket any copy sits in.
    assert_eq!(r.buckets[&RecordKey::Binding(1)], 180_000);
    assert_eq!(r.buckets[&RecordKey::Binding(3)], 120_000);
    assert_eq!(r.buckets[&RecordKey::Binding(9)], 60_000);
    assert!(!r.buckets.contains_key(&RecordKey::Node));
}

#[test]
fn a_tombstone_removes_older_copies_and_a_newer_copy_survives_it() {
    let v = vec![
        (
            pk(120_000, 1),
            packed(&[put(1, 100_000), put(2, 100_000), put(3, 100_000)]),
            10,
        ),
        ("lma/4".to_string(), encode(&rec(4, 100_000)), 3),
        // Deleted: 1 (in a later pack), 4 (a per-binding key), and 2 in the
        // same pack as a later put (written again after the delete).
        (
            pk(120_000, 2),
            packed(&[
                Entry::Tombstone(RecordKey::Binding(1)),
                Entry::Tombstone(RecordKey::Binding(4)),
                Entry::Tombstone(RecordKey::Binding(2)),
                put(2, 110_000),
            ]),
            11,
        ),
        // A tombstone older than the copy it names removes nothing.
        (
            pk(60_000, 0),
            packed(&[Entry::Tombstone(RecordKey::Binding(3))]),
            9,
        ),
    ];
    let r = kvs(&v);
    let keys: Vec<RecordKey> = r.records.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, [RecordKey::Binding(2), RecordKey::Binding(3)]);
    assert_eq!(r.records[0].1, rec(2, 110_000));
    assert!(!r.buckets.contains_key(&RecordKey::Binding(1)));
    assert!(!r.buckets.contains_key(&RecordKey::Binding(4)));
}

#[test]
fn a_pack_that_does_not_decode_is_skipped_and_counted() {
    let good = packed(&[put(1, 1)]);
    let v = vec![
        (pk(60_000, 1), good[..good.len() - 1].to_vec(), 10),
        ("pack/nonsense".to_string(), good.clone(), 11),
        (pk(60_000, 2), good, 12),
        ("what/1".to_string(), vec![], 13),
    ];
    let r = kvs(&v);
    assert_eq!(r.skipped, 3);
    assert_eq!(r.records.len(), 1);
}
