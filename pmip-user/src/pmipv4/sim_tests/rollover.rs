//! A key rollover between a PMA and its HA (`peers[].also_accept`): while
//! each side signs with its own current key and accepts the other's, every
//! message is checked against the association its SPI names and every
//! answer is signed with the association of what it answers — no
//! registration fails halfway through the rollover.
use super::*;
use crate::pmipv4::auth::PeerKeys;

const NEW_SPI: u32 = 0x101;

fn new_sa() -> SecurityAssociation {
    SecurityAssociation::new(NEW_SPI, b"the new shared key", Algorithm::HmacMd5)
}

/// The SPI of the last (FA-HA) authentication extension of every message of
/// type `ty` from `src` to `dst`: Type, Length, SPI, 16-byte authenticator.
fn fa_spis(net: &Net, (src, dst): (Ipv4Addr, Ipv4Addr), ty: u8) -> Vec<u32> {
    net.wire
        .iter()
        .filter(|(s, d, p)| *s == src && *d == dst && p.first() == Some(&ty))
        .map(|(_, _, p)| u32::from_be_bytes(p[p.len() - 20..p.len() - 16].try_into().unwrap()))
        .collect()
}

/// PMA1 with `pma` keys for HA1, and HA1 halfway through a rollover: it
/// signs with the new key and accepts the old; ue1 attached 5 s ago (a
/// revocation must come after the registration's timestamp, §4.2.2.2).
fn halfway(pma: PeerKeys) -> Net {
    let mut net = Net::new();
    let mut p = pma_cfg(PMA1);
    p.home_agents[0].sa = pma;
    net.add_pma(p);
    let mut h = ha_cfg(HA1);
    h.peers[0].sa = PeerKeys {
        current: new_sa(),
        also: vec![sa()],
    };
    net.add_ha(h);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(5));
    net
}

#[test]
fn a_key_rollover_loses_no_registration() {
    // The PMA still signs with the old key and accepts the new.
    let mut net = halfway(PeerKeys {
        current: sa(),
        also: vec![new_sa()],
    });
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    // The request on the PMA's current (old) key, answered on it.
    assert_eq!(fa_spis(&net, (PMA1, HA1), 1), [SPI]);
    assert_eq!(fa_spis(&net, (HA1, PMA1), 3), [SPI]);
    // What the HA starts — a revocation — is on its current (new) key; the
    // PMA takes it and acknowledges on the same.
    let now = net.now;
    assert!(net.ha(HA1).clear(now, "ue1@ex"));
    net.settle();
    assert_eq!(fa_spis(&net, (HA1, PMA1), 7), [NEW_SPI]);
    assert_eq!(fa_spis(&net, (PMA1, HA1), 15), [NEW_SPI]);
    assert_eq!(net.pma(PMA1).session_count(), 0);
    assert_eq!(net.ha(HA1).counters().revocation_acks, 1);
    // A key neither side has is still refused (132).
    let mut net =
        halfway(SecurityAssociation::new(0x102, b"another key", Algorithm::HmacMd5).into());
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    assert!(net.ha(HA1).counters().unknown_spi > 0);
}

/// The same rollover with both sides running throughout: each takes its
/// new keys as a reload hands them (`reconfigure`), one step at a time, while
/// ue1 renews every 300 s. No renewal fails, the binding stays, and at the
/// end both sign with the new key alone — the old one is refused.
#[test]
fn a_rollover_by_reloads_needs_no_restart() {
    let mut net = Net::new();
    let mut p = pma_cfg(PMA1);
    (p.lifetime_s, p.renew_percent) = (600, 50);
    net.add_pma(p);
    net.add_ha(ha_cfg(HA1));
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.run_for(Duration::from_secs(5));
    let home = net.pma(PMA1).registration("ue1@ex");
    assert!(home.is_some());
    // The configurations a reload builds: the HA's key for PMA1, the
    // PMA's for HA1.
    let ha_keys = |current: SecurityAssociation, also: Vec<SecurityAssociation>| {
        let mut c = ha_cfg(HA1);
        c.peers[0].sa = PeerKeys { current, also };
        c
    };
    let pma_keys = |current: SecurityAssociation, also: Vec<SecurityAssociation>| {
        let mut c = pma_cfg(PMA1);
        c.home_agents[0].sa = PeerKeys { current, also };
        c
    };
    // One renewal (300 s) after each step: who signs with what.
    let step = |net: &mut Net, ha: Option<HaConfig>, pma: Option<PmaConfig>| {
        if let Some(c) = ha {
            net.ha(HA1).reconfigure(&c);
        }
        if let Some(c) = pma {
            net.pma(PMA1).reconfigure(&c);
        }
        net.wire.clear();
        net.run_for(Duration::from_secs(300));
        (fa_spis(net, (PMA1, HA1), 1), fa_spis(net, (HA1, PMA1), 3))
    };
    // 1. The HA: the new key its own, the old one accepted.
    let ha_half = ha_keys(new_sa(), vec![sa()]);
    assert_eq!(step(&mut net, Some(ha_half), None), (vec![SPI], vec![SPI]));
    // 2. The PMA the same: it signs with the new key, the HA answers on it.
    let pma_half = pma_keys(new_sa(), vec![sa()]);
    assert_eq!(
        step(&mut net, None, Some(pma_half)),
        (vec![NEW_SPI], vec![NEW_SPI])
    );
    // 3. The old key goes, on both.
    let ha_new = ha_keys(new_sa(), vec![]);
    let pma_new = pma_keys(new_sa(), vec![]);
    assert_eq!(
        step(&mut net, Some(ha_new), Some(pma_new)),
        (vec![NEW_SPI], vec![NEW_SPI])
    );
    assert_eq!(net.pma(PMA1).registration("ue1@ex"), home);
    let (pc, hc) = (
        net.pma(PMA1).counters().clone(),
        net.ha(HA1).counters().clone(),
    );
    assert_eq!((pc.accepted, pc.denied, pc.rx_auth_failed), (4, 0, 0));
    assert_eq!((hc.renewals, hc.unknown_spi), (3, 0));
    // A PMA still on the old key is refused now (132): it is not accepted.
    net.pma(PMA1).reconfigure(&pma_keys(sa(), vec![]));
    net.run_for(Duration::from_secs(300));
    assert!(net.ha(HA1).counters().unknown_spi > 0);
    assert_eq!(net.pma(PMA1).counters().accepted, 4);
}
