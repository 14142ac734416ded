//! ESP receive path: any bytes from any source through `SignalingEsp::unprotect`
//! (SPI lookup, lengths, window, ICV) for SAs of both algorithms, with and
//! without ESN, over both transports. A second mode seals the fuzzer's bytes
//! as the inner payload under any next header and opens them again, to reach
//! what lies behind the ICV (trailer, inner UDP header, next-header rules):
//! the Mobility Header over IPv6 must come back unchanged. Nothing may panic.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use pmip_user::agent::Peer;
use pmip_user::esp::{EspAlgorithm, EspSettings, SaDb, SaParams, SignalingEsp};
use pmip_user::pmipv6::LocalAddrs;

const MAG6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const LMA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const MAG4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const LMA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn sa(spi: u32, alg: EspAlgorithm, esn: bool, k: u8) -> SaParams {
    let (key, auth_key) = match alg {
        EspAlgorithm::AesGcm => (vec![k; 20], None),
        EspAlgorithm::AesCbcHmacSha256 => (vec![k; 16], Some(vec![!k; 32])),
    };
    SaParams {
        spi,
        algorithm: alg,
        key,
        auth_key,
        esn,
        replay_window: 64,
    }
}

/// (at the MAG, at the LMA) for one algorithm and ESN choice.
fn pair(alg: EspAlgorithm, esn: bool) -> (SignalingEsp, SignalingEsp) {
    let mut mag = SaDb::with_seed(1);
    let mut lma = SaDb::with_seed(2);
    for (i, (m, l)) in [
        (IpAddr::V6(MAG6), IpAddr::V6(LMA6)),
        (MAG4.into(), LMA4.into()),
    ]
    .into_iter()
    .enumerate()
    {
        let up = sa(0x1000 + i as u32, alg, esn, 1 + i as u8);
        let down = sa(0x2000 + i as u32, alg, esn, 3 + i as u8);
        let at_mag = EspSettings {
            inbound: down.clone(),
            outbound: up.clone(),
        };
        let at_lma = EspSettings {
            inbound: up,
            outbound: down,
        };
        mag.add_peer(l, &at_mag).unwrap();
        lma.add_peer(m, &at_lma).unwrap();
    }
    (
        SignalingEsp::new(
            mag,
            LocalAddrs {
                v6: Some(MAG6),
                v4: Some(MAG4),
            },
            5436,
        ),
        SignalingEsp::new(
            lma,
            LocalAddrs {
                v6: Some(LMA6),
                v4: Some(LMA4),
            },
            5436,
        ),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let alg = if sel & 1 == 0 {
        EspAlgorithm::AesGcm
    } else {
        EspAlgorithm::AesCbcHmacSha256
    };
    let (mut mag, mut lma) = pair(alg, sel & 2 != 0);
    let src: IpAddr = if sel & 4 == 0 {
        MAG6.into()
    } else {
        MAG4.into()
    };
    if sel & 8 == 0 {
        // Raw bytes off the wire.
        let _ = lma.unprotect(src, rest);
        assert_eq!(lma.counters().rx_packets + lma.counters().rx_dropped(), 1);
        return;
    }
    // Authentic packets around the fuzzer's payload, under its next header.
    let Some((&nh, payload)) = rest.split_first() else {
        return;
    };
    let Ok(esp) = mag.db_mut().seal(&lma_ip(src), nh, payload) else {
        return;
    };
    let r = lma.unprotect(src, &esp);
    if let (IpAddr::V6(s), 135) = (src, nh) {
        assert_eq!(r, Ok((Peer::V6(s), payload.to_vec())));
    }
    if let Ok((Peer::V4(p), _)) = &r {
        assert_eq!(*p.ip(), MAG4);
        let _ = SocketAddrV4::new(*p.ip(), p.port());
    }
});

fn lma_ip(src: IpAddr) -> IpAddr {
    if src.is_ipv4() {
        LMA4.into()
    } else {
        LMA6.into()
    }
}
