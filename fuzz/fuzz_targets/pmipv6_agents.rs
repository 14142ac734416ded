//! The MAG and LMA receive paths: arbitrary datagrams from a configured peer
//! over both transports, interleaved with timer firings and the operator's
//! revocations, must never panic.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use pmip_user::agent::Peer;
use pmip_user::dataplane::AccessPoint;
use pmip_user::pmipv6::lma::{Ipv4PoolConfig, Lma, LmaConfig, Profile};
use pmip_user::pmipv6::mag::{AttachRequest, LmaPeerConfig, Mag, MagConfig};
use pmip_user::pmipv6::LocalAddrs;

const MAG6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const LMA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const MAG4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const LMA4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut lma = Lma::new(
        LmaConfig {
            local: LocalAddrs {
                v6: Some(LMA6),
                v4: Some(LMA4),
            },
            mags: vec![IpAddr::V6(MAG6), IpAddr::V4(MAG4)],
            ipv4_pool: Some(Ipv4PoolConfig {
                network: Ipv4Addr::new(192, 0, 2, 0),
                prefix_len: 24,
                gateway: Ipv4Addr::new(192, 0, 2, 254),
            }),
            default_profile: Some(Profile {
                ipv6: true,
                allow_static: true,
                ..Profile::default()
            }),
            ..LmaConfig::default()
        },
        now,
        wall,
    );
    let mut mag = Mag::new(
        MagConfig {
            local: LocalAddrs {
                v6: Some(MAG6),
                v4: Some(MAG4),
            },
            lmas: vec![LmaPeerConfig {
                name: "lma".into(),
                addr: IpAddr::V6(LMA6),
                port: 5436,
            }],
            ..MagConfig::default()
        },
        now,
        wall,
    );
    mag.attach(
        now,
        AttachRequest {
            at: AccessPoint {
                ifindex: 1,
                vlan: 0,
                mac: [2, 0, 0, 0, 0, 1],
            },
            mn_id: b"mn0@example.com".to_vec(),
            lma: "lma".into(),
            ipv4: true,
            requested_v4: None,
            v4_hint: true,
            ipv6: true,
            apn: None,
            att: None,
        },
    );
    // Split the input into datagrams at 0xff 0xff markers.
    let mut t = now;
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        t += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 50);
        let v4 = i % 2 == 1;
        let (to_lma, to_mag) = if v4 {
            (
                Peer::V4(SocketAddrV4::new(MAG4, 5436)),
                Peer::V4(SocketAddrV4::new(LMA4, 5436)),
            )
        } else {
            (Peer::V6(MAG6), Peer::V6(LMA6))
        };
        // A chunk starting 0xfe is the operator's: release everything
        // through the MAG (a global BRI), of a realm when it is odd-sized;
        // 0xfd releases mn0 alone (a per-MN BRI). The datagrams after it
        // meet BRIs in flight.
        match chunk.first() {
            Some(0xfe) => {
                let realm = (chunk.len() % 2 == 1).then_some("EXAMPLE.com");
                lma.revoke_peer(t, to_lma.ip(), realm);
            }
            Some(0xfd) => {
                lma.revoke(t, b"mn0@example.com", 1);
            }
            _ => {}
        }
        lma.handle(t, to_lma, chunk);
        mag.handle(t, to_mag, chunk);
        lma.handle_timeout(t);
        mag.handle_timeout(t);
        // Feed the LMA's answers to the MAG and back, as a network would.
        while let Some(tx) = lma.poll_transmit() {
            mag.handle(t, Peer::V6(LMA6), &tx.payload);
        }
        while let Some(tx) = mag.poll_transmit() {
            lma.handle(t, Peer::V6(MAG6), &tx.payload);
        }
        while lma.poll_dp().is_some() {}
        while mag.poll_dp().is_some() {}
        while mag.poll_event().is_some() {}
    }
});
