//! The RADIUS client fed arbitrary datagrams from its server while authorizations and
//! accounting are in flight, and timers fire: never a panic; counters only move.
#![no_main]
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use pmip_user::aaa::config::{AaaConfig, Secret, Server};
use pmip_user::aaa::wire::auth::AuthenticatorSource;
use pmip_user::aaa::{AaaClient, AcctSession, Subscriber, TerminateCause, Traffic};

fuzz_target!(|data: &[u8]| {
    let cfg = AaaConfig {
        nas_identifier: Some("mag1".into()),
        servers: vec![Server {
            address: "10.0.0.1".parse().unwrap(),
            auth_port: 1812,
            acct_port: 1813,
            secret: Secret::new("s"),
            timeout: None,
            retransmit: None,
        }],
        source_ports: 1,
        ..AaaConfig::default()
    };
    let t0 = Instant::now();
    let mut c = AaaClient::new(
        cfg,
        t0,
        SystemTime::now(),
        AuthenticatorSource::new([0; 32]),
    );
    for i in 0..4 {
        c.authorize(t0, Subscriber::new([2, 0, 0, 0, 0, i]));
    }
    c.session_start(
        t0,
        AcctSession {
            session_id: "s".into(),
            ..Default::default()
        },
        None,
    );
    c.session_stop(t0, "s", Traffic::default(), TerminateCause::UserRequest);
    let auth = "10.0.0.1:1812".parse().unwrap();
    let acct = "10.0.0.1:1813".parse().unwrap();
    // The fuzzer's bytes are datagrams: a length octet, then that many octets; between
    // them 0.7 s pass, so retransmissions, failover and back-off run too.
    let mut rest = data;
    let mut now = t0;
    while let [n, tail @ ..] = rest {
        let n = (*n as usize).min(tail.len());
        let (d, tail) = tail.split_at(n);
        let from = if n % 2 == 0 { auth } else { acct };
        c.handle(now, 0, from, d);
        now += Duration::from_millis(700);
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {}
        while c.poll_event().is_some() {}
        rest = tail;
    }
    let _ = c.stats();
});
