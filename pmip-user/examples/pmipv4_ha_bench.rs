//! Registrations per second one HA state machine sustains on one core, HMAC-MD5 both ways
//! (verify the request, sign the reply), MemDataPlane behind it. No sockets: this measures
//! the HA itself; the UDP shell adds one recv and one send per registration.
//!
//! cargo run --release -p pmip-user --example pmipv4_ha_bench -- 10000 100000
//!
//! With `per-mn` among the arguments the requests are authenticated per
//! mobile node instead (`[[mn_ha]]`, the realm's key): an MN-HA extension,
//! then the FA-HA one, no Per-Node Authentication Method — two HMAC-MD5s to
//! verify and two to sign a registration.
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use pmip_user::agent::{Clock as WallClock, Endpoint};
use pmip_user::dataplane::{DataPlane, MemDataPlane};
use pmip_user::pmipv4::auth::{self, Algorithm, MnHaKeys, SecurityAssociation};
use pmip_user::pmipv4::ha::{AddressPool, Ha, HaConfig, PmaPeer};
use pmip_user::pmipv4::wire::ext::{AccessTech, AuthKind, AuthMethod, ExtRepr};
use pmip_user::pmipv4::wire::{RegistrationRequestRepr, RrqFlags, PORT};

const PMA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn requests(
    n: u32,
    (sa, mn): (&SecurityAssociation, Option<&SecurityAssociation>),
    wall: SystemTime,
    lifetime: u16,
) -> Vec<Vec<u8>> {
    let base = auth::ntp_from_system(wall);
    (0..n)
        .map(|i| {
            let mut exts = vec![
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
            ];
            if mn.is_none() {
                exts.push(ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa));
            }
            let mut b = RegistrationRequestRepr {
                flags: RrqFlags(RrqFlags::G | RrqFlags::T),
                lifetime,
                home_address: Ipv4Addr::UNSPECIFIED,
                home_agent: HA,
                care_of_address: PMA,
                identification: base + i as u64,
                extensions: exts,
            }
            .to_bytes();
            if let Some(mn) = mn {
                auth::append_auth(&mut b, AuthKind::MnHa, mn);
            }
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let per_mn = args.iter().any(|a| a == "per-mn");
    let sizes: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let sa = SecurityAssociation::new(0x100, b"0123456789abcdef", Algorithm::HmacMd5);
    let mn_sa = SecurityAssociation::new(0x300, b"per-MN key 01234", Algorithm::HmacMd5);
    let mn = per_mn.then_some(&mn_sa);
    println!(
        "authentication: {}",
        if per_mn {
            "per MN (MN-HA + FA-HA)"
        } else {
            "per node (FA-HA)"
        }
    );
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
                sa: sa.clone().into(),
                proxy_allowed: true,
            }],
        );
        cfg.max_lifetime_s = 3600;
        if per_mn {
            let mut keys = MnHaKeys::default();
            keys.insert_realm("bench.pmip", mn_sa.clone());
            cfg.mn_ha = keys;
        }
        let mut ha = Ha::new(cfg, WallClock::new(now, wall));
        let mut dp = MemDataPlane::default();
        let first = requests(n, (&sa, mn), wall, 3600);
        let t1 = run(&mut ha, &mut dp, &first, now);
        // Renewals: same subscribers, newer Identifications, one second later.
        let renew = requests(n, (&sa, mn), wall + Duration::from_secs(1), 3600);
        let t2 = run(&mut ha, &mut dp, &renew, now + Duration::from_secs(1));
        let c = ha.counters();
        assert_eq!(c.registrations, n as u64);
        assert_eq!(c.renewals, n as u64);
        assert_eq!(dp.anchor.len(), n as usize);
        // Per MN means per MN: every request was checked against the realm's key.
        assert_eq!(c.mn_unknown, 0);
        println!(
            "| {n} | {:.0} | {:.0} | {} |",
            n as f64 / t1.as_secs_f64(),
            n as f64 / t2.as_secs_f64(),
            c.registrations + c.renewals
        );
    }
}
