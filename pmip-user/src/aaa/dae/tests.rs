//! The DAE listener against requests built with the codec (as radclient builds them).
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::aaa::config::{DaeClient, Secret};

const CLIENT: &str = "10.0.0.9:40000";

fn server() -> (DaeServer, Instant) {
    let mut cfg = AaaConfig {
        nas_identifier: Some("mag1".into()),
        nas_ip_address: Some("10.0.0.1".parse().unwrap()),
        ..AaaConfig::default()
    };
    cfg.dae.enabled = true;
    cfg.dae.clients.push(DaeClient {
        address: "10.0.0.9".parse().unwrap(),
        secret: Secret::new("dae-key"),
    });
    let now = Instant::now();
    (DaeServer::new(cfg, now, SystemTime::now()), now)
}

fn unix() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn request(code: Code, id: u8, secret: &[u8], attrs: Vec<AttrRepr>) -> Vec<u8> {
    let mut r = PacketRepr::new(code, id);
    r.attributes = attrs;
    let mut b = r.to_bytes().unwrap();
    auth::sign(&mut b, secret, &[0; 16]).unwrap();
    b
}

fn by_mac() -> AttrRepr {
    AttrRepr::string(attr::CALLING_STATION_ID, "00-24-d7-8e-21-a4")
}

fn reply_of(s: &mut DaeServer, req: &[u8]) -> (Code, Option<u32>) {
    let t = s.poll_transmit().expect("an answer");
    assert_eq!(t.dest, CLIENT.parse().unwrap());
    let ra: [u8; 16] = req[4..20].try_into().unwrap();
    auth::verify(&t.payload, b"dae-key", &ra, false).expect("answer verifies");
    let p = Packet::new_checked(&t.payload[..]).unwrap();
    (p.code(), p.attr(attr::ERROR_CAUSE).and_then(|a| a.as_u32()))
}

#[test]
fn disconnect_by_mac_is_handed_over_and_acked() {
    let (mut s, now) = server();
    let req = request(
        Code::DisconnectRequest,
        7,
        b"dae-key",
        vec![
            AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]),
            by_mac(),
            AttrRepr::string(attr::NAS_IDENTIFIER, "mag1"),
            AttrRepr::u32(attr::EVENT_TIMESTAMP, unix()),
            AttrRepr::new(attr::PROXY_STATE, b"ps1"),
        ],
    );
    let r = s.handle(now, CLIENT.parse().unwrap(), &req).unwrap();
    assert_eq!(r.kind, DaeKind::Disconnect);
    assert_eq!(
        r.target.calling_station_id,
        Some([0, 0x24, 0xd7, 0x8e, 0x21, 0xa4])
    );
    s.respond(r.token, Ok(()));
    let t = s.poll_transmit().unwrap();
    let ra: [u8; 16] = req[4..20].try_into().unwrap();
    // The answer has a Message-Authenticator because the request had one.
    assert_eq!(auth::verify(&t.payload, b"dae-key", &ra, true), Ok(true));
    let p = Packet::new_checked(&t.payload[..]).unwrap();
    assert_eq!((p.code(), p.identifier()), (Code::DisconnectAck, 7));
    assert_eq!(p.attr(attr::PROXY_STATE).unwrap().value, b"ps1");
    // A retransmission gets the same answer, not a second request.
    assert!(s.handle(now, CLIENT.parse().unwrap(), &req).is_none());
    assert_eq!(s.poll_transmit().unwrap().payload, t.payload);
    assert_eq!(s.stats().duplicates, 1);
}

#[test]
fn wrong_secret_unknown_client_and_garbage_are_dropped_silently() {
    let (mut s, now) = server();
    let from = CLIENT.parse().unwrap();
    let bad = request(Code::DisconnectRequest, 1, b"wrong", vec![by_mac()]);
    assert!(s.handle(now, from, &bad).is_none());
    let good = request(Code::DisconnectRequest, 1, b"dae-key", vec![by_mac()]);
    assert!(s
        .handle(now, "10.0.0.8:1".parse().unwrap(), &good)
        .is_none());
    assert!(s.handle(now, from, &good[..10]).is_none());
    let access = request(Code::AccessAccept, 1, b"dae-key", vec![by_mac()]);
    assert!(s.handle(now, from, &access).is_none());
    assert!(s.poll_transmit().is_none());
    let st = s.stats();
    assert_eq!(
        (st.bad_authenticators, st.unknown_clients, st.malformed),
        (1, 1, 2)
    );
}

#[test]
fn event_timestamp_window_and_required_attributes() {
    let (mut s, now) = server();
    let from = CLIENT.parse().unwrap();
    let old = request(
        Code::DisconnectRequest,
        1,
        b"dae-key",
        vec![by_mac(), AttrRepr::u32(attr::EVENT_TIMESTAMP, unix() - 301)],
    );
    assert!(s.handle(now, from, &old).is_none());
    assert_eq!(s.stats().stale, 1);
    s.cfg.dae.require_event_timestamp = true;
    s.cfg.dae.require_message_authenticator = true;
    let bare = request(Code::DisconnectRequest, 2, b"dae-key", vec![by_mac()]);
    assert!(s.handle(now, from, &bare).is_none());
    assert_eq!(s.stats().bad_authenticators, 1, "no Message-Authenticator");
    let with_ma = request(
        Code::DisconnectRequest,
        3,
        b"dae-key",
        vec![
            AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]),
            by_mac(),
        ],
    );
    assert!(s.handle(now, from, &with_ma).is_none());
    assert_eq!(s.stats().stale, 2, "no Event-Timestamp");
    assert!(s.poll_transmit().is_none());
}

#[test]
fn requests_we_cannot_act_on_are_naked_with_the_cause() {
    let (mut s, now) = server();
    let from = CLIENT.parse().unwrap();
    let cases = [
        (
            vec![by_mac(), AttrRepr::string(attr::NAS_IDENTIFIER, "other")],
            403,
        ),
        (
            vec![
                by_mac(),
                AttrRepr::ipv4(attr::NAS_IP_ADDRESS, "10.0.0.2".parse().unwrap()),
            ],
            403,
        ),
        (vec![AttrRepr::u32(attr::EVENT_TIMESTAMP, unix())], 402),
        (vec![by_mac(), AttrRepr::u32(attr::SESSION_TIMEOUT, 5)], 401),
        (
            vec![AttrRepr::string(attr::CALLING_STATION_ID, "not-a-mac")],
            407,
        ),
        (vec![by_mac(), AttrRepr::u32(attr::SERVICE_TYPE, 17)], 405),
    ];
    for (i, (attrs, cause)) in cases.into_iter().enumerate() {
        let req = request(Code::DisconnectRequest, i as u8, b"dae-key", attrs);
        assert!(s.handle(now, from, &req).is_none());
        assert_eq!(
            reply_of(&mut s, &req),
            (Code::DisconnectNak, Some(cause)),
            "case {i}"
        );
    }
}

#[test]
fn coa_carries_the_changes_and_the_agent_can_nak() {
    let (mut s, now) = server();
    let from = CLIENT.parse().unwrap();
    let req = request(
        Code::CoaRequest,
        9,
        b"dae-key",
        vec![
            AttrRepr::string(attr::USER_NAME, "mn0@example.com"),
            AttrRepr::u32(attr::SESSION_TIMEOUT, 1800),
            AttrRepr::vendor(
                attr::vendor::STARENT,
                attr::vendor::SN_PRIMARY_DNS,
                &[9, 9, 9, 9],
            ),
        ],
    );
    let r = s.handle(now, from, &req).unwrap();
    assert_eq!(r.target.user_name.as_deref(), Some("mn0@example.com"));
    let DaeKind::Coa(p) = &r.kind else { panic!() };
    assert_eq!(p.lifetime, Some(Duration::from_secs(1800)));
    assert_eq!(p.dns, vec!["9.9.9.9".parse::<IpAddr>().unwrap()]);
    s.respond(r.token, Err(ErrorCause::SessionContextNotFound));
    assert_eq!(reply_of(&mut s, &req), (Code::CoaNak, Some(503)));
    // Unanswered requests are forgotten after the window; a late answer is dropped.
    let req2 = request(Code::CoaRequest, 10, b"dae-key", vec![by_mac()]);
    let r2 = s.handle(now, from, &req2).unwrap();
    s.handle_timeout(now + Duration::from_secs(31));
    s.respond(r2.token, Ok(()));
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn random_datagrams_never_panic() {
    let (mut s, now) = server();
    let from = CLIENT.parse().unwrap();
    let good = request(
        Code::CoaRequest,
        1,
        b"dae-key",
        vec![by_mac(), AttrRepr::u32(attr::SESSION_TIMEOUT, 5)],
    );
    let mut seed = 7u64;
    for _ in 0..20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut b = good.clone();
        let n = (seed >> 33) as usize % b.len();
        b[n] ^= (seed >> 8) as u8;
        b.truncate(((seed >> 20) as usize % (b.len() + 1)).max(1));
        if let Some(r) = s.handle(now, from, &b) {
            s.respond(r.token, Ok(()));
        }
    }
}
