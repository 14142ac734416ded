//! Whole receive path of both agents: any datagram from a configured peer, never a panic.
//! Both hold a per-MN association for the realm "b" (`[[mn_ha]]`), so that
//! requests and replies with an MN-HA extension take the per-MN checks;
//! the PMA registers "a@b" per MN when the input's length is odd.
#![no_main]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use pmip_user::agent::{Clock as WallClock, Endpoint};
use pmip_user::pmipv4::auth::{Algorithm, MnHaKeys, PeerKeys, SecurityAssociation};
use pmip_user::pmipv4::ha::{AddressPool, Ha, HaConfig, PmaPeer};
use pmip_user::pmipv4::pma::{HaPeer, Pma, PmaConfig, Subscriber};

const PMA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fuzz_target!(|data: &[u8]| {
    let sa = SecurityAssociation::new(0x100, b"k", Algorithm::HmacMd5);
    let next = SecurityAssociation::new(0x101, b"n", Algorithm::HmacMd5);
    let mut mn_ha = MnHaKeys::default();
    mn_ha.insert_realm(
        "b",
        SecurityAssociation::new(0x300, b"m", Algorithm::HmacMd5),
    );
    let now = Instant::now();
    let clock = WallClock::new(now, SystemTime::now());
    let mut hcfg = HaConfig::new(
        HA,
        AddressPool {
            first: Ipv4Addr::new(10, 0, 0, 1),
            last: Ipv4Addr::new(10, 0, 0, 9),
        },
        vec![PmaPeer {
            address: PMA,
            // Halfway through a key rollover: each side signs with its
            // own current key and accepts the other's.
            sa: PeerKeys {
                current: next.clone(),
                also: vec![sa.clone()],
            },
            proxy_allowed: true,
        }],
    );
    hcfg.mn_ha = mn_ha.clone();
    let mut ha = Ha::new(hcfg, clock);
    ha.handle(now, SocketAddrV4::new(PMA, 434), data);
    while ha.poll_transmit().is_some() {}
    while ha.poll_dp().is_some() {}
    let mut pcfg = PmaConfig::new(
        PMA,
        vec![HaPeer {
            address: HA,
            sa: PeerKeys {
                current: sa,
                also: vec![next],
            },
        }],
    );
    if data.len() % 2 == 1 {
        pcfg.mn_ha = mn_ha;
    }
    let mut pma = Pma::new(pcfg, clock);
    let at = pmip_user::dataplane::AccessPoint {
        ifindex: 1,
        vlan: 0,
        mac: [2, 0, 0, 0, 0, 1],
    };
    pma.attach(now, Subscriber::new("a@b", at, HA));
    pma.handle(now, SocketAddrV4::new(HA, 434), data);
    while pma.poll_transmit().is_some() {}
    pma.handle_timeout(now + std::time::Duration::from_secs(4));
});
