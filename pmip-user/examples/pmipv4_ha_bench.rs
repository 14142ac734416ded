//! Registrations per second one HA state machine sustains on one core, HMAC-MD5 both ways
//! (verify the request, sign the reply), MemDataPlane behind it. No sockets: this measures
//! the HA itself; the UDP shell adds one recv and one send per registration.
//!
//! cargo run --release -p pmip-user --example pmipv4_ha_bench -- 10000 100000
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use pmip_user::agent::{Clock as WallClock, Endpoint};
use pmip_user::dataplane::{DataPlane, MemDataPlane};
use pmip_user::pmipv4::auth::{self, Algorithm, SecurityAssociation};
use pmip_user::pmipv4::ha::{AddressPool, Ha, HaConfig, PmaPeer};
use pmip_user::pmipv4::wire::ext::{AccessTech, AuthKind, AuthMethod, ExtRepr};
use pmip_user::pmipv4::wire::{RegistrationRequestRepr, RrqFlags, PORT};

const PMA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn requests(n: u32, sa: &SecurityAssociation, wall: SystemTime, lifetime: u16) -> Vec<Vec<u8>> {
    let base = auth::ntp_from_system(wall);
    (0..n)
        .map(|i| {
            let mut b = RegistrationRequestRepr {
                flags: RrqFlags(RrqFlags::G | RrqFlags::T),
                lifetime,
                home_address: Ipv4Addr::UNSPECIFIED,
                home_agent: HA,
                care_of_address: PMA,
                identification: base + i as u64,
                extensions: vec![
                    ExtRepr::Nai(format!("subscriber{i}@bench.pmip").into_bytes()),
                    ExtRepr::DeviceId {
                        id_type: 1,
                        id: vec![2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                    },
                    ExtRepr::AccessTechnology(AccessTech::Ieee8023),
                    ExtRepr::GreKey(i + 1),
                    ExtRepr::RevocationSupport {
                        i_bit: false,
                        timestamp: 0,
                    },
                    ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
                ],
            }
            .to_bytes();
            auth::append_auth(&mut b, AuthKind::FaHa, sa);
            b
        })
        .collect()
}

fn run(ha: &mut Ha, dp: &mut MemDataPlane, msgs: &[Vec<u8>], now: Instant) -> Duration {
    let src = SocketAddrV4::new(PMA, PORT);
    let t = Instant::now();
    for m in msgs {
        ha.handle(now, src, m);
        // The store writes, taken as the shell takes them after each pass
        // (none kept: a queue no shell lets grow is not the HA's cost).
        let mut wrote = false;
        while ha.poll_store().is_some() {
            wrote = true;
        }
        if wrote {
            ha.stored(now, true);
        }
        while let Some(c) = ha.poll_dp() {
            dp.apply(&c).unwrap();
        }
        while let Some(tx) = ha.poll_transmit() {
            std::hint::black_box(tx);
        }
    }
    t.elapsed()
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let sa = SecurityAssociation::new(0x100, b"0123456789abcdef", Algorithm::HmacMd5);
    println!("| subscribers | new registrations/s | renewals/s | accepted |");
    println!("|---:|---:|---:|---:|");
    for n in sizes {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut cfg = HaConfig::new(
            HA,
            AddressPool {
                first: Ipv4Addr::new(10, 0, 0, 1),
                last: Ipv4Addr::new(10, 255, 255, 254),
            },
            vec![PmaPeer {
                address: PMA,
                sa: sa.clone(),
                proxy_allowed: true,
            }],
        );
        cfg.max_lifetime_s = 3600;
        let mut ha = Ha::new(cfg, WallClock::new(now, wall));
        let mut dp = MemDataPlane::default();
        let first = requests(n, &sa, wall, 3600);
        let t1 = run(&mut ha, &mut dp, &first, now);
        // Renewals: same subscribers, newer Identifications, one second later.
        let renew = requests(n, &sa, wall + Duration::from_secs(1), 3600);
        let t2 = run(&mut ha, &mut dp, &renew, now + Duration::from_secs(1));
        let c = ha.counters();
        assert_eq!(c.registrations, n as u64);
        assert_eq!(c.renewals, n as u64);
        assert_eq!(dp.anchor.len(), n as usize);
        println!(
            "| {n} | {:.0} | {:.0} | {} |",
            n as f64 / t1.as_secs_f64(),
            n as f64 / t2.as_secs_f64(),
            c.registrations + c.renewals
        );
    }
}
