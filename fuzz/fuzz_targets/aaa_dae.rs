//! The Disconnect/CoA listener fed arbitrary datagrams from a configured client: never a
//! panic; every request handed over can be answered.
#![no_main]
use std::time::{Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use pmip_user::aaa::config::{AaaConfig, DaeClient, Secret};
use pmip_user::aaa::DaeServer;

fuzz_target!(|data: &[u8]| {
    let mut cfg = AaaConfig {
        nas_identifier: Some("mag1".into()),
        ..AaaConfig::default()
    };
    cfg.dae.enabled = true;
    cfg.dae.clients.push(DaeClient {
        address: "10.0.0.9".parse().unwrap(),
        secret: Secret::new("k"),
    });
    let now = Instant::now();
    let mut s = DaeServer::new(cfg, now, SystemTime::now());
    let from = "10.0.0.9:3799".parse().unwrap();
    if let Some(r) = s.handle(now, from, data) {
        s.respond(r.token, Ok(()));
    }
    let _ = s.handle(now, from, data);
    while s.poll_transmit().is_some() {}
});
