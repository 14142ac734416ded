//! The client core against in-memory servers built from the codec, with a simulated clock:
//! retransmission, failover, dead time, pipelining and the accounting queue in microseconds.
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use super::accounting::{AcctSession, AcctStatus, TerminateCause, Traffic};
use super::authz::{AuthOutcome, Subscriber};
use super::client::{AaaClient, AaaEvent, Transmit};
use super::config::{AaaConfig, Secret, Server};
use super::wire::attr::{self, AttrRepr};
use super::wire::auth::{self, AuthenticatorSource};
use super::wire::{Code, Packet, PacketRepr};

fn server(last: u8, secret: &str) -> Server {
    Server {
        address: format!("10.0.0.{last}").parse().unwrap(),
        auth_port: 1812,
        acct_port: 1813,
        secret: Secret::new(secret),
        timeout: None,
        retransmit: None,
    }
}

fn cfg(n: u8) -> AaaConfig {
    AaaConfig {
        nas_identifier: Some("mag1".into()),
        servers: (1..=n).map(|i| server(i, &format!("secret{i}"))).collect(),
        retransmit: 2,
        timeout: Duration::from_secs(3),
        accounting: super::config::Accounting {
            retry_interval: Duration::from_secs(10),
            ..Default::default()
        },
        ..AaaConfig::default()
    }
}

fn client(c: AaaConfig, now: Instant) -> AaaClient {
    AaaClient::new(c, now, SystemTime::now(), AuthenticatorSource::new([1; 32]))
}

fn drain(c: &mut AaaClient) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn events(c: &mut AaaClient) -> Vec<AaaEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// The reply a server with `secret` gives to request `t`.
fn reply(t: &Transmit, secret: &[u8], code: Code, attrs: Vec<AttrRepr>) -> Vec<u8> {
    let p = Packet::new_checked(&t.payload[..]).unwrap();
    let want_ma = p.code() == Code::AccessRequest;
    auth::verify(&t.payload, secret, &[0; 16], want_ma).expect("request verifies");
    let mut r = PacketRepr::new(code, p.identifier());
    r.attributes = attrs;
    if want_ma {
        r.attributes
            .insert(0, AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]));
    }
    let mut b = r.to_bytes().unwrap();
    auth::sign(&mut b, secret, &p.authenticator()).unwrap();
    b
}

fn sub(i: u8) -> Subscriber {
    Subscriber::new([2, 0, 0, 0, 0, i])
}

#[test]
fn accept_yields_the_profile() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    let r = c.authorize(t0, sub(1));
    let tx = drain(&mut c);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dest, "10.0.0.1:1812".parse::<SocketAddr>().unwrap());
    let b = reply(
        &tx[0],
        b"secret1",
        Code::AccessAccept,
        vec![
            AttrRepr::cisco_avpair("home-lma=lma1"),
            AttrRepr::u32(attr::SESSION_TIMEOUT, 600),
        ],
    );
    c.handle(t0, tx[0].socket, tx[0].dest, &b);
    match &events(&mut c)[..] {
        [AaaEvent::Authorized {
            request,
            outcome: AuthOutcome::Accept(p),
        }] => {
            assert_eq!(*request, r);
            assert_eq!(p.lma_name.as_deref(), Some("lma1"));
            assert_eq!(p.lifetime, Some(Duration::from_secs(600)));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(c.poll_timeout(), None, "nothing left to wait for");
    let s = c.stats();
    assert_eq!((s.servers[0].requests, s.servers[0].accepts), (1, 1));
}

#[test]
fn reject_and_its_message() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    c.authorize(t0, sub(1));
    let tx = drain(&mut c);
    let b = reply(
        &tx[0],
        b"secret1",
        Code::AccessReject,
        vec![AttrRepr::string(attr::REPLY_MESSAGE, "no profile")],
    );
    c.handle(t0, tx[0].socket, tx[0].dest, &b);
    assert!(matches!(
        &events(&mut c)[..],
        [AaaEvent::Authorized { outcome: AuthOutcome::Reject { reply_message: Some(m) }, .. }] if m == "no profile"
    ));
    assert_eq!(c.stats().servers[0].rejects, 1);
}

#[test]
fn retransmit_then_fail_over_in_order_then_timeout() {
    let t0 = Instant::now();
    let mut c = client(cfg(2), t0);
    c.authorize(t0, sub(1));
    let mut sent = Vec::new();
    let mut now = t0;
    loop {
        for t in drain(&mut c) {
            sent.push((now - t0, t.dest.ip().to_string(), t.payload));
        }
        match c.poll_timeout() {
            Some(t) => {
                now = t;
                c.handle_timeout(now);
            }
            None => break,
        }
    }
    let when: Vec<_> = sent.iter().map(|s| (s.0.as_secs(), s.1.as_str())).collect();
    assert_eq!(
        when,
        [
            (0, "10.0.0.1"),
            (3, "10.0.0.1"),
            (6, "10.0.0.1"),
            (9, "10.0.0.2"),
            (12, "10.0.0.2"),
            (15, "10.0.0.2")
        ]
    );
    // Retransmissions are the same datagram; the other server gets its own.
    assert_eq!(sent[0].2, sent[1].2);
    assert_ne!(sent[2].2, sent[3].2);
    assert!(matches!(
        &events(&mut c)[..],
        [AaaEvent::Authorized {
            outcome: AuthOutcome::Timeout,
            ..
        }]
    ));
    assert_eq!(now - t0, Duration::from_secs(18));
    let s = c.stats();
    assert_eq!(
        (
            s.servers[0].retransmissions,
            s.servers[0].timeouts,
            s.auth_timeouts
        ),
        (2, 1, 1)
    );
}

#[test]
fn forged_and_stray_replies_are_counted_and_ignored() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    c.authorize(t0, sub(1));
    let tx = drain(&mut c);
    let (s, d) = (tx[0].socket, tx[0].dest);
    // Wrong secret: the request stays in flight.
    c.handle(
        t0,
        s,
        d,
        &reply(&tx[0], b"secret1", Code::AccessAccept, vec![])[..4],
    );
    let mut forged = reply(&tx[0], b"secret1", Code::AccessAccept, vec![]);
    forged[4] ^= 1;
    c.handle(t0, s, d, &forged);
    let wrong_ma = {
        let mut b = reply(&tx[0], b"secret1", Code::AccessAccept, vec![]);
        b[25] ^= 1; // inside the Message-Authenticator value
        b
    };
    c.handle(t0, s, d, &wrong_ma);
    // Unknown identifier, unknown source, wrong code for an access request.
    let mut stray = reply(&tx[0], b"secret1", Code::AccessAccept, vec![]);
    stray[1] ^= 0x80;
    c.handle(t0, s, d, &stray);
    c.handle(t0, s, "10.9.9.9:1812".parse().unwrap(), &forged);
    let acct_resp = reply(&tx[0], b"secret1", Code::AccountingResponse, vec![]);
    c.handle(t0, s, d, &acct_resp);
    assert!(events(&mut c).is_empty());
    let st = c.stats();
    let sv = &st.servers[0];
    assert_eq!(
        (
            sv.malformed,
            sv.bad_authenticators,
            sv.unknown_responses,
            st.unknown_source
        ),
        (2, 2, 1, 1)
    );
    // The real reply still completes it.
    c.handle(
        t0,
        s,
        d,
        &reply(&tx[0], b"secret1", Code::AccessAccept, vec![]),
    );
    assert_eq!(events(&mut c).len(), 1);
}

#[test]
fn deadtime_skips_a_server_until_it_is_over() {
    let t0 = Instant::now();
    let mut cf = cfg(2);
    cf.deadtime = Duration::from_secs(60);
    cf.retransmit = 0;
    let mut c = client(cf, t0);
    c.authorize(t0, sub(1));
    drain(&mut c);
    let t1 = c.poll_timeout().unwrap();
    c.handle_timeout(t1);
    let tx = drain(&mut c);
    assert_eq!(tx[0].dest.ip().to_string(), "10.0.0.2");
    assert!(c.stats().servers[0].dead);
    // A new request goes straight to the second server while the first is dead...
    c.authorize(t1, sub(2));
    assert_eq!(drain(&mut c)[0].dest.ip().to_string(), "10.0.0.2");
    // ...and to the first again once the dead time is over.
    let t2 = t1 + Duration::from_secs(61);
    c.authorize(t2, sub(3));
    assert_eq!(drain(&mut c)[0].dest.ip().to_string(), "10.0.0.1");
    assert!(!c.stats().servers[0].dead);
}

#[test]
fn thousands_pipelined_over_identifiers_and_sockets() {
    let t0 = Instant::now();
    let mut cf = cfg(1);
    cf.source_ports = 2;
    cf.window = 10_000;
    let mut c = client(cf.clone(), t0);
    for i in 0..3000u32 {
        c.authorize(
            t0,
            Subscriber::new([2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        );
    }
    let first = drain(&mut c);
    assert_eq!(first.len(), 512, "256 identifiers per socket, 2 sockets");
    assert_eq!(c.stats().auth_waiting, 3000 - 512);
    let mut pending = first;
    let mut accepted = 0;
    while let Some(t) = pending.pop() {
        let b = reply(&t, b"secret1", Code::AccessAccept, vec![]);
        c.handle(t0, t.socket, t.dest, &b);
        pending.extend(drain(&mut c));
        accepted += events(&mut c).len();
    }
    assert_eq!(accepted, 3000);
    assert_eq!(c.stats().servers[0].accepts, 3000);
    // The window caps what is in flight below what the identifiers allow.
    cf.window = 100;
    let mut c = client(cf, t0);
    for i in 0..300 {
        c.authorize(t0, sub(i as u8));
    }
    assert_eq!(drain(&mut c).len(), 100);
}

#[test]
fn overload_is_refused_at_once() {
    let t0 = Instant::now();
    let mut cf = cfg(1);
    cf.queue_limit = 10;
    let mut c = client(cf, t0);
    for i in 0..11 {
        c.authorize(t0, sub(i));
    }
    assert!(matches!(
        &events(&mut c)[..],
        [AaaEvent::Authorized {
            outcome: AuthOutcome::Overloaded,
            ..
        }]
    ));
}

fn session(id: &str) -> AcctSession {
    AcctSession {
        session_id: id.into(),
        user_name: "mn0@example.com".into(),
        mac: [2, 0, 0, 0, 0, 1],
        ..AcctSession::default()
    }
}

fn acct_status(t: &Transmit) -> (u32, Option<u32>) {
    let p = Packet::new_checked(&t.payload[..]).unwrap();
    (
        p.attr(attr::ACCT_STATUS_TYPE).unwrap().as_u32().unwrap(),
        p.attr(attr::ACCT_INPUT_OCTETS).and_then(|a| a.as_u32()),
    )
}

#[test]
fn accounting_waits_for_a_server_and_is_delivered_in_order() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    c.session_start(t0, session("s1"), None);
    let traffic = |n| Traffic {
        input_octets: n,
        ..Traffic::default()
    };
    c.session_update(t0, "s1", traffic(10));
    c.session_stop(t0, "s1", traffic(20), TerminateCause::UserRequest);
    // Only the Start is in flight; the Interim was replaced by the Stop.
    let tx = drain(&mut c);
    assert_eq!(tx.len(), 1);
    assert_eq!(c.stats().acct_superseded, 1);
    // The server is away: three sends, then a back-off of 10 s, then again.
    let mut now = t0;
    for _ in 0..3 {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
    }
    assert!(drain(&mut c).len() == 2 && now - t0 == Duration::from_secs(9));
    assert_eq!(c.undelivered().len(), 2, "nothing lost");
    let retry = c.poll_timeout().unwrap();
    assert_eq!(retry - t0, Duration::from_secs(19));
    c.handle_timeout(retry);
    let tx = drain(&mut c);
    assert_eq!(tx.len(), 1);
    assert_eq!(acct_status(&tx[0]), (1, None));
    // The server answers now: Start, then the Stop with its counters.
    c.handle(
        retry,
        tx[0].socket,
        tx[0].dest,
        &reply(&tx[0], b"secret1", Code::AccountingResponse, vec![]),
    );
    let tx = drain(&mut c);
    assert_eq!(acct_status(&tx[0]), (2, Some(20)));
    // Acct-Delay-Time says how long the Stop waited.
    let p = Packet::new_checked(&tx[0].payload[..]).unwrap();
    assert_eq!(p.attr(attr::ACCT_DELAY_TIME).unwrap().as_u32(), Some(19));
    c.handle(
        retry,
        tx[0].socket,
        tx[0].dest,
        &reply(&tx[0], b"secret1", Code::AccountingResponse, vec![]),
    );
    assert!(c.undelivered().is_empty());
    assert_eq!(c.stats().acct_delivered, 2);
}

#[test]
fn interim_updates_are_asked_for_and_counters_never_go_back() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    c.session_start(t0, session("s1"), Some(Duration::from_secs(60)));
    // A second start (refresh, handover) sends nothing new.
    c.session_start(t0, session("s1"), Some(Duration::from_secs(60)));
    let tx = drain(&mut c);
    assert_eq!(tx.len(), 1);
    c.handle(
        t0,
        tx[0].socket,
        tx[0].dest,
        &reply(&tx[0], b"secret1", Code::AccountingResponse, vec![]),
    );
    let t1 = c.poll_timeout().unwrap();
    assert_eq!(t1 - t0, Duration::from_secs(60));
    c.handle_timeout(t1);
    assert_eq!(
        events(&mut c),
        [AaaEvent::InterimDue {
            session_id: "s1".into()
        }]
    );
    let big = Traffic {
        input_octets: 100,
        output_octets: 200,
        input_packets: 3,
        output_packets: 4,
    };
    c.session_update(t1, "s1", big);
    c.handle_timeout(t1);
    let tx = drain(&mut c);
    c.handle(
        t1,
        tx[0].socket,
        tx[0].dest,
        &reply(&tx[0], b"secret1", Code::AccountingResponse, vec![]),
    );
    // Counters below what was sent are clamped (and counted).
    c.session_stop(t1, "s1", Traffic::default(), TerminateCause::LostCarrier);
    let tx = drain(&mut c);
    assert_eq!(acct_status(&tx[0]), (2, Some(100)));
    assert_eq!(c.stats().counter_regressions, 1);
    assert!(
        !c.session_update(t1, "s1", big),
        "stopped sessions are gone"
    );
    assert_eq!(c.stats().sessions, 0);
}

#[test]
fn full_queue_drops_are_reported() {
    let t0 = Instant::now();
    let mut cf = cfg(1);
    cf.accounting.queue_limit = 2;
    cf.accounting.window = 1;
    let mut c = client(cf, t0);
    for i in 0..3 {
        c.session_start(t0, session(&format!("s{i}")), None);
    }
    let e = events(&mut c);
    assert!(
        matches!(&e[..], [AaaEvent::AccountingDropped { record }] if record.status == AcctStatus::Start)
    );
    assert_eq!(c.stats().acct_dropped, 1);
}

#[test]
fn random_datagrams_never_panic() {
    let t0 = Instant::now();
    let mut c = client(cfg(1), t0);
    c.authorize(t0, sub(1));
    let tx = drain(&mut c);
    let good = reply(
        &tx[0],
        b"secret1",
        Code::AccessAccept,
        vec![AttrRepr::cisco_avpair("mn-nai=x")],
    );
    let mut seed = 1u64;
    for _ in 0..20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut b = good.clone();
        let n = (seed >> 33) as usize % b.len();
        b[n] ^= (seed >> 8) as u8;
        b.truncate(((seed >> 20) as usize % (b.len() + 1)).max(1));
        c.handle(t0, tx[0].socket, tx[0].dest, &b);
    }
}
