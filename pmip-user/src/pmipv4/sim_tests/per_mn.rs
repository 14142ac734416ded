//! Per-MN security associations (`[[mn_ha]]`; RFC 3344 §3.5.2, RFC 5944
//! §3.8.2.1 and §3.6.2.1, draft-leung §4.3): the PMA registers with an MN-HA
//! extension and the FA-HA one after it, without the Per-Node
//! Authentication Method; the HA checks the MN's, then the FA's.
use super::*;
use crate::pmipv4::auth::MnHaKeys;
use crate::pmipv4::wire::ext::AuthMethod;

const MN_SPI: u32 = 0x300;

fn mn_sa() -> SecurityAssociation {
    SecurityAssociation::new(MN_SPI, b"mobile node key!", Algorithm::HmacMd5)
}

/// The realm "ex" keyed with [`mn_sa`]; "ue9@other" has no association.
fn keys() -> MnHaKeys {
    let mut k = MnHaKeys::default();
    k.insert_realm("ex", mn_sa());
    k
}

fn per_mn_net() -> Net {
    let mut net = Net::new();
    let mut p = pma_cfg(PMA1);
    p.mn_ha = keys();
    net.add_pma(p);
    let mut h = ha_cfg(HA1);
    h.mn_ha = keys();
    net.add_ha(h);
    net
}

fn auth_kinds(exts: &[ExtRepr]) -> Vec<AuthKind> {
    exts.iter()
        .filter_map(|e| match e {
            ExtRepr::Auth { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

/// A request from PMA1 for `nai`, lifetime `life`, signed MN-HA with `mn`
/// and then FA-HA with `fa`, each if given; `after_mn` goes between them.
/// Its Identification is the simulated wall clock's plus the request's
/// place in the wire's traffic, so that each one is newer (RFC 3344 §5.7).
fn request(
    net: &Net,
    nai: &str,
    life: u16,
    mn: Option<&SecurityAssociation>,
    after_mn: Option<ExtRepr>,
    fa: Option<&SecurityAssociation>,
) -> Vec<u8> {
    let mut b = RegistrationRequestRepr {
        flags: RrqFlags(RrqFlags::G | RrqFlags::T),
        lifetime: life,
        home_address: Ipv4Addr::UNSPECIFIED,
        home_agent: HA1,
        care_of_address: PMA1,
        identification: auth::ntp_from_system(net.clock().wall(net.now)) + net.wire.len() as u64,
        extensions: vec![ExtRepr::Nai(nai.as_bytes().to_vec()), ExtRepr::GreKey(9)],
    }
    .to_bytes();
    if let Some(sa) = mn {
        auth::append_auth(&mut b, AuthKind::MnHa, sa);
    }
    if let Some(e) = after_mn {
        let mut tail = vec![0; e.buffer_len()];
        e.emit(&mut tail);
        b.extend_from_slice(&tail);
    }
    if let Some(sa) = fa {
        auth::append_auth(&mut b, AuthKind::FaHa, sa);
    }
    b
}

/// The HA's last reply to PMA1, raw.
fn last_reply_bytes(net: &Net) -> Vec<u8> {
    net.wire
        .iter()
        .rev()
        .find(|(s, d, p)| *s == HA1 && *d == PMA1 && p.first() == Some(&3))
        .map(|(_, _, p)| p.clone())
        .expect("a reply")
}

#[test]
fn a_per_mn_registration_carries_both_authenticators_both_ways() {
    let mut net = per_mn_net();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
    let rq = &net.requests(PMA1, HA1)[0];
    assert_eq!(auth_kinds(&rq.extensions), [AuthKind::MnHa, AuthKind::FaHa]);
    // Draft §5.1: the method extension is only for a per-node association.
    assert_eq!(rq.extensions.per_node_auth_method(), None);
    let raw = &net.wire[0].2;
    assert_eq!(auth::verify_mn_ha(raw, &mn_sa().into()), Ok(MN_SPI));
    assert_eq!(
        auth::verify_with(raw, AuthKind::FaHa, &sa().clone().into()),
        Ok(SPI)
    );
    let rp = last_reply_bytes(&net);
    assert_eq!(auth::verify_mn_ha(&rp, &mn_sa().into()), Ok(MN_SPI));
    assert_eq!(
        auth::verify_with(&rp, AuthKind::FaHa, &sa().clone().into()),
        Ok(SPI)
    );
    let r = &net.replies(HA1, PMA1)[0];
    assert_eq!(r.extensions.per_node_auth_method(), None);
    // The FA's extensions between the MN-HA and the FA-HA ones, both ways
    // (RFC 6245 §4.1: the GRE Key "after the MN-HA ... and before the
    // FA-HA"; RFC 5944 §3.8.3.3 (d); RFC 3543 §3.2: Revocation Support is
    // the FA's).
    for exts in [&rq.extensions, &r.extensions] {
        let at = |f: &dyn Fn(&ExtRepr) -> bool| exts.iter().position(f).unwrap();
        let mn = at(&|e| {
            matches!(
                e,
                ExtRepr::Auth {
                    kind: AuthKind::MnHa,
                    ..
                }
            )
        });
        let fa = at(&|e| {
            matches!(
                e,
                ExtRepr::Auth {
                    kind: AuthKind::FaHa,
                    ..
                }
            )
        });
        let gre = at(&|e| matches!(e, ExtRepr::GreKey(_)));
        let rev = at(&|e| matches!(e, ExtRepr::RevocationSupport { .. }));
        assert!(mn < gre && gre < fa && mn < rev && rev < fa, "{exts:?}");
    }
    // Renewals and the de-registration go the same way.
    net.run_for(Duration::from_secs(460));
    assert_eq!(net.ha(HA1).counters().renewals, 1);
    let now = net.now;
    net.pma(PMA1).detach(now, "ue1@ex");
    net.settle();
    assert_eq!(net.ha(HA1).binding_count(), 0);
    for rq in net.requests(PMA1, HA1) {
        assert_eq!(auth_kinds(&rq.extensions), [AuthKind::MnHa, AuthKind::FaHa]);
    }
    // A subscriber outside the realm is registered per node, as before.
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue2@other", 2));
    net.settle();
    assert!(net.pma(PMA1).registration("ue2@other").is_some());
    let rq = net.requests(PMA1, HA1).pop().unwrap();
    assert_eq!(auth_kinds(&rq.extensions), [AuthKind::FaHa]);
    assert_eq!(rq.extensions.per_node_auth_method(), Some(AuthMethod::FaHa));
}

/// RFC 5944 §3.8.2.1 (a) and (c), in that order.
#[test]
fn the_ha_checks_the_mn_ha_authenticator_then_the_fa_ha_one() {
    let mut net = per_mn_net();
    let wrong_mn = SecurityAssociation::new(MN_SPI, b"not the MN key", Algorithm::HmacMd5);
    let wrong_fa = SecurityAssociation::new(SPI, b"not the FA key", Algorithm::HmacMd5);
    let (mn, fa) = (mn_sa(), sa());
    let other_spi = SecurityAssociation::new(MN_SPI + 1, b"mobile node key!", Algorithm::HmacMd5);

    // (a) a bad MN-HA authenticator, or another SPI: 131, the reply signed
    // with the MN's association (and the FA-HA one after it).
    for bad in [&wrong_mn, &other_spi] {
        let m = request(&net, "a@ex", 600, Some(bad), None, Some(&fa));
        net.inject(PMA1, HA1, &m);
        assert_eq!(last_code(&net), ReplyCode::MnFailedAuth);
        let rp = last_reply_bytes(&net);
        assert_eq!(auth::verify_mn_ha(&rp, &mn.clone().into()), Ok(MN_SPI));
        assert_eq!(
            auth::verify_with(&rp, AuthKind::FaHa, &fa.clone().into()),
            Ok(SPI)
        );
    }
    // (a) no association with this MN: the PMA's FA-HA extension vouches
    // for it (taken per node: 132 if bad, accepted if good).
    let m = request(&net, "a@elsewhere", 600, Some(&mn), None, Some(&wrong_fa));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::FaFailedAuth);
    let m = request(&net, "a@elsewhere", 600, Some(&mn), None, Some(&fa));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::Accepted);
    let r = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(auth_kinds(&r.extensions), [AuthKind::FaHa]);
    assert_eq!(net.ha(HA1).binding_count(), 1);
    // (c) the MN's is good: the FA-HA one missing or bad → 132.
    for fa_ha in [None, Some(&wrong_fa)] {
        let m = request(&net, "a@ex", 600, Some(&mn), None, fa_ha);
        net.inject(PMA1, HA1, &m);
        assert_eq!(last_code(&net), ReplyCode::FaFailedAuth);
        assert_eq!(
            auth::verify_mn_ha(&last_reply_bytes(&net), &mn.clone().into()),
            Ok(MN_SPI)
        );
    }
    // The FA's own extension between the MN-HA and the FA-HA ones (RFC
    // 5944 §3.7.2.2; a split PMA puts its GRE Key there, RFC 6245 §4.1):
    // accepted (it was 134 before).
    let pad = ExtRepr::Unknown {
        ty: 200,
        data: vec![1],
    };
    let m = request(&net, "b@ex", 600, Some(&mn), Some(pad), Some(&fa));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::Accepted);
    assert_eq!(net.ha(HA1).binding_count(), 2);
    // Both good: accepted, the reply without the per-node method.
    net.run_for(Duration::from_secs(1));
    let m = request(&net, "a@ex", 600, Some(&mn), None, Some(&fa));
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::Accepted);
    let r = net.replies(HA1, PMA1).pop().unwrap();
    assert_eq!(auth_kinds(&r.extensions), [AuthKind::MnHa, AuthKind::FaHa]);
    assert_eq!(r.extensions.per_node_auth_method(), None);
    assert_eq!(net.ha(HA1).binding_count(), 3);
    // The same request again (a replay, RFC 3344 §5.7.1): 133, with the
    // HA's time and both authenticators — the MN's key signs refusals
    // made after authentication too.
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::IdentMismatch);
    let rp = last_reply_bytes(&net);
    assert_eq!(auth::verify_mn_ha(&rp, &mn.clone().into()), Ok(MN_SPI));
    assert_eq!(
        auth::verify_with(&rp, AuthKind::FaHa, &fa.clone().into()),
        Ok(SPI)
    );
    // (c) is for registrations: a de-registration with the MN's alone is taken.
    net.run_for(Duration::from_secs(1));
    let m = request(&net, "a@ex", 0, Some(&mn), None, None);
    net.inject(PMA1, HA1, &m);
    assert_eq!(last_code(&net), ReplyCode::Accepted);
    assert_eq!(net.ha(HA1).binding_count(), 2);
    let c = net.ha(HA1).counters().clone();
    assert_eq!(c.mn_failed_auth, 2);
    assert_eq!(c.mn_unknown, 2);
    assert_eq!(c.missing_auth, 1);
    assert_eq!(c.bad_authenticator, 2);
    assert_eq!(c.poorly_formed, 0);
}

/// RFC 5944 §3.6.2.1 (b): a reply to a per-MN request without a valid
/// MN-HA extension is discarded, however good its FA-HA one.
#[test]
fn the_pma_discards_a_reply_without_the_mns_authenticator() {
    let mut net = Net::new();
    let mut p = pma_cfg(PMA1);
    p.mn_ha = keys();
    net.add_pma(p);
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    let rq = net.requests(PMA1, HA1).pop().expect("a request");
    let reply = |mn: Option<&SecurityAssociation>| {
        let mut b = RegistrationReplyRepr {
            code: ReplyCode::Accepted,
            lifetime: 600,
            home_address: Ipv4Addr::new(10, 1, 0, 9),
            home_agent: HA1,
            identification: rq.identification,
            extensions: vec![ExtRepr::Nai(b"ue1@ex".to_vec()), ExtRepr::GreKey(77)],
        }
        .to_bytes_with_room(0);
        if let Some(mn) = mn {
            auth::append_auth(&mut b, AuthKind::MnHa, mn);
        }
        auth::append_auth(&mut b, AuthKind::FaHa, &sa());
        b
    };
    let wrong = SecurityAssociation::new(MN_SPI, b"not the MN key", Algorithm::HmacMd5);
    net.inject(HA1, PMA1, &reply(None));
    net.inject(HA1, PMA1, &reply(Some(&wrong)));
    assert!(net.pma(PMA1).registration("ue1@ex").is_none());
    assert_eq!(net.pma(PMA1).counters().rx_mn_ha_failed, 2);
    net.inject(HA1, PMA1, &reply(Some(&mn_sa())));
    assert!(net.pma(PMA1).registration("ue1@ex").is_some());
}

/// A realm's MN-HA key rolled over by reloads (`reconfigure`; the realm now
/// spelled in capitals), with ue1@ex registered and renewing: the HA takes
/// the new key and keeps the old one accepted (`mn_ha[].also_accept`),
/// then the PMA, then both drop the old one. Every renewal is accepted,
/// each answered with the key it was signed with; the old key is refused
/// at the end.
#[test]
fn a_realms_key_rolls_over_by_reloads_while_its_subscribers_stay_registered() {
    let mut net = per_mn_net();
    let now = net.now;
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    net.settle();
    let home = net.pma(PMA1).registration("ue1@ex");
    assert!(home.is_some());
    let new = SecurityAssociation::new(MN_SPI + 1, b"the next MN key", Algorithm::HmacMd5);
    let rekeyed = |current: &SecurityAssociation, also: &[SecurityAssociation]| {
        let mut k = MnHaKeys::default();
        let keys = crate::pmipv4::auth::PeerKeys {
            current: current.clone(),
            also: also.to_vec(),
        };
        k.insert_realm("EX", keys);
        // The configurations a reload builds, with the new per-MN keys.
        let (mut h, mut p) = (ha_cfg(HA1), pma_cfg(PMA1));
        (h.mn_ha, p.mn_ha) = (k.clone(), k);
        (h, p)
    };
    // The MN-HA SPIs of the last request and of its reply (each checked
    // with its own key).
    let last_spis = |net: &Net| {
        let last = |src: Ipv4Addr, ty: u8| {
            let (_, _, p) = net
                .wire
                .iter()
                .rev()
                .find(|(s, _, p)| *s == src && p.first() == Some(&ty))
                .expect("a message");
            [&mn_sa(), &new]
                .iter()
                .find_map(|sa| auth::verify_mn_ha(p, &(*sa).clone().into()).ok())
        };
        (last(PMA1, 1), last(HA1, 3))
    };
    let renew = |net: &mut Net| net.run_for(Duration::from_secs(460));
    // 1. The HA: the new key its own, the old one accepted.
    net.ha(HA1).reconfigure(&rekeyed(&new, &[mn_sa()]).0);
    renew(&mut net);
    assert_eq!(last_spis(&net), (Some(MN_SPI), Some(MN_SPI)));
    // 2. The PMA the same: it signs with the new key, answered with it.
    net.pma(PMA1).reconfigure(&rekeyed(&new, &[mn_sa()]).1);
    renew(&mut net);
    assert_eq!(last_spis(&net), (Some(MN_SPI + 1), Some(MN_SPI + 1)));
    // 3. The old key goes, on both.
    net.ha(HA1).reconfigure(&rekeyed(&new, &[]).0);
    net.pma(PMA1).reconfigure(&rekeyed(&new, &[]).1);
    renew(&mut net);
    assert_eq!(net.pma(PMA1).registration("ue1@ex"), home);
    let c = net.ha(HA1).counters().clone();
    assert_eq!((c.renewals, c.mn_failed_auth), (3, 0));
    assert_eq!(net.pma(PMA1).counters().rx_mn_ha_failed, 0);
    // The old key is refused now (131).
    net.pma(PMA1).reconfigure(&rekeyed(&mn_sa(), &[]).1);
    renew(&mut net);
    assert!(net.ha(HA1).counters().mn_failed_auth > 0);
}
