//! The LMA revokes every session through one MAG (`pmipctl clear bindings
//! --peer`, RFC 5846 §8.1): one global BRI, which our MAG answers by letting
//! each of them go; the other MAG's sessions stay.
use super::*;

fn with_realm(n: u8, realm: &str) -> AttachRequest {
    let mut r = req(n);
    r.mn_id = format!("mn{n}@{realm}").into_bytes();
    r
}

#[test]
fn one_global_bri_revokes_every_session_through_a_mag() {
    for v4 in [false, true] {
        let mut cfg = lma_cfg();
        let known = cfg.subscribers["mn1@example.com"].clone();
        cfg.subscribers.insert("mn2@other.example".into(), known);
        let mut s = Sim::new(v4).with_lma(cfg);
        s.attach(0, req(1));
        s.attach(0, with_realm(2, "other.example"));
        s.attach(1, req(3));
        assert_eq!(s.lma.binding_count(), 3);
        let mag1 = s.peer_of(Node::Mag(0)).ip();
        // One realm first: MN2 alone.
        assert_eq!(s.lma.revoke_peer(s.now, mag1, Some("OTHER.example")), 1);
        s.run();
        // Then the rest through MAG1.
        assert_eq!(s.lma.revoke_peer(s.now, mag1, None), 1);
        s.run();
        let bris = s.sent(Node::Lma, Node::Mag(0), MhType::BindingRevocation);
        let got: Vec<(u8, u16, usize)> = bris
            .iter()
            .map(|(_, m)| match m {
                Message::RevocationIndication(b) => (b.trigger, b.flags, b.options.len()),
                m => panic!("{m:?}"),
            })
            .collect();
        let g = br_flags::P | br_flags::G;
        assert_eq!(
            got,
            [
                (revocation_trigger::REVOKING_NODE_LOCAL_POLICY, g, 1),
                (revocation_trigger::PER_PEER_POLICY, g, 0)
            ]
        );
        assert!(s.mag_dp[0].access.is_empty(), "MAG1 let its subscribers go");
        assert_eq!(s.mag_dp[1].access.len(), 1, "MAG2's subscriber stays");
        assert_eq!(s.lma.binding_count(), 1);
        assert!(s.lma.binding(b"mn3@example.com").is_some());
        assert_eq!(s.lma.counters.bri_global_sent, 2);
        assert_eq!(s.lma.counters.revocations_completed, 2);
        assert_eq!(s.lma.counters.bri_global_refused, 0);
        // Nothing left through MAG1: nothing sent.
        assert_eq!(s.lma.revoke_peer(s.now, mag1, None), 0);
        assert_eq!(s.lma.counters.bri_global_sent, 2);
    }
}

#[test]
fn nai_realms_are_the_part_after_the_last_at_sign() {
    use crate::agent::registrar::in_realm;
    assert!(in_realm(b"a@example.com", b"EXAMPLE.com"));
    assert!(in_realm(b"a@b@example.com", b"example.com"));
    assert!(!in_realm(b"a@foo.example.com", b"example.com"));
    assert!(!in_realm(b"example.com", b"example.com"));
    assert!(!in_realm(b"a@example.com.", b"example.com"));
    assert!(in_realm(b"a@", b""));
}

/// RFC 5846 §9.1 at our MAG: a global BRI "Revoking Mobile Node Local
/// Policy" with the MN-ID "@realm" revokes the bindings of that realm — a
/// realm in another case too (RFC 4282 §2.1: realms are DNS names), not
/// those of a realm that merely ends the same way.
#[test]
fn the_mag_takes_a_realm_in_any_case() {
    let mut cfg = lma_cfg();
    let known = cfg.subscribers["mn1@example.com"].clone();
    cfg.subscribers.insert("mn2@sub.example.com".into(), known);
    // IPv4 transport: `bra_to` sends the BRI without an MH checksum.
    let mut s = Sim::new(true).with_lma(cfg);
    s.attach(0, req(1));
    s.attach(0, with_realm(2, "sub.example.com"));
    assert_eq!(s.mag_dp[0].access.len(), 2);
    let bra = s.bra_to(RevocationIndication {
        trigger: revocation_trigger::REVOKING_NODE_LOCAL_POLICY,
        seq: 9,
        flags: br_flags::P | br_flags::G,
        options: vec![MobilityOption::MnId {
            subtype: 1,
            id: b"@EXAMPLE.com".to_vec(),
        }],
    });
    assert_eq!((bra.status, bra.seq), (bra_status::SUCCESS, 9));
    assert_eq!(s.mag_dp[0].access.len(), 1, "mn2 of sub.example.com stays");
    assert_eq!(s.mags[0].active_count(), 1);
}
