//! The Proxy Binding Acknowledgement the LMA answers a PBU with (RFC 5213
//! §5.3.6, RFC 5844 §3.1.2.6 and §3.3.2–3.3.3): the options echoed from the
//! PBU, those of the binding, and those a rejection still owes the MAG.
use std::net::Ipv4Addr;

use smallvec::SmallVec;

use super::super::wire::{
    self, ba_flags, option::hoa_status, AccessTechType, BaStatus, BindingAck, BindingUpdate,
    HandoffIndicator, Message, MobilityOption, OptionsExt,
};
use super::{Extra, Lma, Reply};
use crate::agent::Peer;

impl Lma {
    /// Builds and queues the PBA for `bu` from the outcome of its processing.
    ///
    /// The NAI and the link-layer identifier the PBA echoes are lent to it
    /// by `bu` (moved in, and given back once the PBA is encoded), not
    /// copied: two heap allocations fewer per PBA.
    pub(super) fn send_pba(&mut self, peer: Peer, bu: &mut BindingUpdate, reply: Reply) {
        // RFC 5213 §5.3.6: the PBA echoes the identifying options of the PBU.
        let mut options = Vec::with_capacity(10);
        // (index in `bu.options`, index in `options`) of each lent option.
        let mut lent: SmallVec<[(usize, usize); 2]> = SmallVec::new();
        let nai = bu
            .options
            .iter()
            .position(|o| matches!(o, MobilityOption::MnId { .. }));
        if let Some(i) = nai {
            if let MobilityOption::MnId { id, .. } = &mut bu.options[i] {
                lent.push((i, options.len()));
                options.push(MobilityOption::MnId {
                    subtype: wire::option::MN_ID_SUBTYPE_NAI,
                    id: std::mem::take(id),
                });
            }
        }
        // An accepting PBA's Link-local Address is the entry's (`extra`).
        let lla_given = reply
            .extra
            .iter()
            .any(|o| matches!(o, MobilityOption::LinkLocalAddress(_)));
        for (i, o) in bu.options.iter_mut().enumerate() {
            match o {
                MobilityOption::LinkLocalAddress(_) if lla_given => {}
                MobilityOption::MnLinkLayerId(l) => {
                    lent.push((i, options.len()));
                    options.push(MobilityOption::MnLinkLayerId(std::mem::take(l)));
                }
                MobilityOption::HandoffIndicator(_)
                | MobilityOption::AccessTechType(_)
                | MobilityOption::LinkLocalAddress(_) => options.push(o.clone()),
                _ => {}
            }
        }
        // Under the timestamp scheme the PBU's Timestamp comes back (RFC 5213
        // §5.3.6); TIMESTAMP_MISMATCH carries our clock instead (in `extra`),
        // and the sequence-number scheme none at all (§5.5).
        if self.cfg.timestamp_based
            && reply.status != BaStatus::TIMESTAMP_MISMATCH
            && reply.status != BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED
        {
            if let Some(ts) = bu.timestamp() {
                options.push(MobilityOption::Timestamp(ts));
            }
        }
        if !reply.status.is_accepted() {
            options.extend(rejection_echo(bu, reply.status));
        }
        options.extend(reply.extra);
        let ba = Message::BindingAck(BindingAck {
            status: reply.status,
            flags: ba_flags::P,
            seq: reply.seq.unwrap_or(bu.seq),
            lifetime: reply.lifetime,
            options,
        });
        self.queue(peer, &ba);
        let Message::BindingAck(mut ba) = ba else {
            unreachable!("built as a BindingAck above");
        };
        for (from, to) in lent {
            give_back(&mut ba.options[to], &mut bu.options[from]);
        }
    }

    /// The home network prefix, IPv4 home address and default router of
    /// binding `id`, as an accepting or de-registration PBA carries them
    /// (RFC 5213 §5.3.6, RFC 5844 §3.1.2.6).
    pub(super) fn binding_options(&self, id: u32) -> Extra {
        let mut v = Extra::new();
        let Some(b) = self.bces.get(&id) else {
            return v;
        };
        if let Some(h) = b.hnp {
            v.push(MobilityOption::HomeNetworkPrefix {
                prefix_len: h.len,
                prefix: h.prefix,
            });
        }
        if let Some((addr, plen)) = b.home_v4 {
            v.extend(self.v4_reply(hoa_status::SUCCESS, plen, addr));
        }
        v
    }

    /// IPv4 Home Address Reply and, with a pool, the IPv4 Default-Router
    /// Address (RFC 5844 §3.3.2, §3.3.3).
    pub(super) fn v4_reply(&self, status: u8, plen: u8, addr: Ipv4Addr) -> Extra {
        let mut v = Extra::new();
        v.push(MobilityOption::Ipv4HoaReply {
            status,
            prefix_len: plen,
            addr,
        });
        // The default router of the address's pool (RFC 5844 §3.3.3).
        let pool = self
            .v4
            .iter()
            .find(|p| p.contains(addr))
            .or(self.v4.first());
        if let Some(p) = pool {
            v.push(MobilityOption::Ipv4DefaultRouter(p.cfg.gateway));
        }
        v
    }
}

/// Returns the bytes of an option lent to a PBA (`from`) to the PBU's option
/// they came from (`to`).
fn give_back(from: &mut MobilityOption, to: &mut MobilityOption) {
    match (from, to) {
        (MobilityOption::MnId { id: a, .. }, MobilityOption::MnId { id: b, .. })
        | (MobilityOption::MnLinkLayerId(a), MobilityOption::MnLinkLayerId(b)) => {
            std::mem::swap(a, b);
        }
        _ => debug_assert!(false, "a lent option comes back to an option of its kind"),
    }
}

/// What a rejecting PBA owes the request (RFC 5213 §5.3.6): the mandatory
/// options the PBU lacked — a zero-length Mobile Node Identifier, the
/// Handoff Indicator and Access Technology Type set to zero — and its Home
/// Network Prefix options, or one of ALL_ZERO when it had none (RFC 5844
/// §3.1.2.6: not with an IPv4 request); the IPv4 Home Address Reply with an
/// error status for an IPv4 request (RFC 5844 §3.1.2.6).
fn rejection_echo(bu: &BindingUpdate, status: BaStatus) -> Vec<MobilityOption> {
    let mut v: Vec<MobilityOption> = Vec::new();
    if bu.mn_id().is_none() {
        v.push(MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: Vec::new(),
        });
    }
    if bu.handoff_indicator().is_none() {
        v.push(MobilityOption::HandoffIndicator(HandoffIndicator::Unknown(
            0,
        )));
    }
    if bu.access_tech_type().is_none() {
        v.push(MobilityOption::AccessTechType(AccessTechType::from(0)));
    }
    let hnps = bu.hnps();
    if hnps.is_empty() && bu.ipv4_hoa_request().is_none() {
        v.push(MobilityOption::HomeNetworkPrefix {
            prefix_len: 0,
            prefix: std::net::Ipv6Addr::UNSPECIFIED,
        });
    }
    v.extend(
        hnps.into_iter()
            .map(|(prefix_len, prefix)| MobilityOption::HomeNetworkPrefix { prefix_len, prefix }),
    );
    if let Some((plen, addr)) = bu.ipv4_hoa_request() {
        v.push(MobilityOption::Ipv4HoaReply {
            status: hoa_reject_status(status),
            prefix_len: plen,
            addr,
        });
    }
    v
}

/// The IPv4 Home Address Reply status (RFC 5844 §3.3.2) that goes with a
/// rejecting PBA status.
/// RFC 5844 §3.1.2.2 names two: 129 (administratively prohibited) with
/// NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS, 128 (failure, reason unspecified)
/// with 130 (insufficient resources).
fn hoa_reject_status(s: BaStatus) -> u8 {
    match s {
        BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS
        | BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE
        | BaStatus::MULTIPLE_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_SUPPORTED
        | BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG
        | BaStatus::PROXY_REG_NOT_ENABLED
        | BaStatus::NOT_LMA_FOR_THIS_MOBILE_NODE => hoa_status::ADMIN_PROHIBITED,
        _ => hoa_status::FAILURE_UNSPECIFIED,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::agent::Endpoint;
    use crate::pmipv6::lma::{Ipv4PoolConfig, LmaConfig, Profile};
    use crate::pmipv6::wire::{bu_flags, AccessTechType, Checksum, HandoffIndicator};
    use crate::pmipv6::LocalAddrs;
    use std::net::{IpAddr, Ipv6Addr};
    use std::time::{Instant, SystemTime};

    pub(in crate::pmipv6::lma) const MAG: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    pub(in crate::pmipv6::lma) const LMA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    pub(in crate::pmipv6::lma) fn pbu(nai: &str, llid: [u8; 6]) -> Vec<u8> {
        Message::BindingUpdate(BindingUpdate {
            seq: 1,
            flags: bu_flags::A | bu_flags::P,
            lifetime: 100,
            options: vec![
                // Not the NAI subtype: the PBA echoes the identifier as a NAI.
                MobilityOption::MnId {
                    subtype: 2,
                    id: nai.as_bytes().to_vec(),
                },
                MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
                MobilityOption::AccessTechType(AccessTechType::Ieee80211),
                MobilityOption::MnLinkLayerId(llid.to_vec()),
                MobilityOption::GreKey(Some(7)),
                MobilityOption::Ipv4HoaRequest {
                    prefix_len: 0,
                    addr: Ipv4Addr::UNSPECIFIED,
                },
            ],
        })
        .to_vec(Checksum::Ipv6 { src: MAG, dst: LMA })
        .unwrap()
    }

    /// A PBA's status and what it echoes: the NAI (with its subtype) and
    /// the link-layer identifier.
    type Echo = (BaStatus, Option<(u8, Vec<u8>)>, Option<Vec<u8>>);

    /// The next PBA the LMA sends.
    fn next_pba(lma: &mut Lma) -> Echo {
        let t = lma.poll_transmit().expect("a PBA");
        let Ok(Message::BindingAck(ba)) =
            Message::parse(&t.payload, Checksum::Ipv6 { src: LMA, dst: MAG })
        else {
            panic!("not a PBA");
        };
        let nai = ba.options.iter().find_map(|o| match o {
            MobilityOption::MnId { subtype, id } => Some((*subtype, id.clone())),
            _ => None,
        });
        (ba.status, nai, ba.link_layer_id().map(<[u8]>::to_vec))
    }

    /// The PBU lends its NAI and link-layer identifier to the accepting PBA
    /// and gets them back: a PBA of status 130 made from the same PBU when
    /// the store refuses the binding's record echoes them too.
    /// An LMA serving `MAG`, IPv4 home addresses for anyone, PBUs ordered
    /// by sequence number.
    pub(in crate::pmipv6::lma) fn lma(now: Instant) -> Lma {
        Lma::new(cfg(&[MAG]), now, SystemTime::now())
    }

    /// The LMA at `LMA` serving `mags`: IPv4 home addresses from
    /// 10.0.0.0/24 for anyone, PBUs ordered by sequence number.
    pub(in crate::pmipv6::lma) fn cfg(mags: &[Ipv6Addr]) -> LmaConfig {
        LmaConfig {
            local: LocalAddrs {
                v6: Some(LMA),
                v4: None,
            },
            mags: mags.iter().copied().map(IpAddr::V6).collect(),
            ipv4_pool: Some(Ipv4PoolConfig {
                network: Ipv4Addr::new(10, 0, 0, 0),
                prefix_len: 24,
                gateway: Ipv4Addr::new(10, 0, 0, 1),
            }),
            default_profile: Some(Profile::default()),
            timestamp_based: false,
            ..LmaConfig::default()
        }
    }

    #[test]
    fn both_pbas_of_a_pbu_echo_its_nai_and_link_layer_id() {
        let now = Instant::now();
        let mut lma = lma(now);
        for (nai, llid, written) in [
            ("a@example.com", [2, 0, 0, 0, 0, 1], true),
            ("b@example.com", [2, 0, 0, 0, 0, 2], false),
        ] {
            lma.handle(now, Peer::V6(MAG), &pbu(nai, llid));
            while lma.poll_store().is_some() {}
            lma.stored(now, written);
            let want = if written {
                BaStatus::ACCEPTED
            } else {
                BaStatus::INSUFFICIENT_RESOURCES
            };
            let (status, id, l) = next_pba(&mut lma);
            assert_eq!(status, want, "{nai}");
            let echoed = (wire::option::MN_ID_SUBTYPE_NAI, nai.as_bytes().to_vec());
            assert_eq!(id, Some(echoed), "{nai}");
            assert_eq!(l.as_deref(), Some(&llid[..]), "{nai}");
            assert!(lma.poll_transmit().is_none());
        }
        assert_eq!(lma.binding_count(), 1);
    }

    /// With the sequence-number scheme (RFC 5213 §5.5) no PBA carries the
    /// PBU's Timestamp option: not an acceptance, not a rejection.
    #[test]
    fn sequence_numbered_lma_echoes_no_timestamp() {
        let now = Instant::now();
        let mut lma = lma(now);
        let with_ts = |handoff: bool| {
            let Ok(Message::BindingUpdate(mut bu)) =
                Message::parse(&pbu("t@example.com", [2, 0, 0, 0, 0, 9]), Checksum::None)
            else {
                unreachable!()
            };
            if !handoff {
                bu.options
                    .retain(|o| !matches!(o, MobilityOption::HandoffIndicator(_)));
            }
            bu.options
                .push(MobilityOption::Timestamp(0x1234_5678_9abc_def0));
            Message::BindingUpdate(bu)
                .to_vec(Checksum::Ipv6 { src: MAG, dst: LMA })
                .unwrap()
        };
        for (handoff, want) in [
            (false, BaStatus::MISSING_HANDOFF_INDICATOR_OPTION),
            (true, BaStatus::ACCEPTED),
        ] {
            lma.handle(now, Peer::V6(MAG), &with_ts(handoff));
            while lma.poll_store().is_some() {}
            lma.stored(now, true);
            let t = lma.poll_transmit().expect("a PBA");
            let Ok(Message::BindingAck(ba)) =
                Message::parse(&t.payload, Checksum::Ipv6 { src: LMA, dst: MAG })
            else {
                panic!("not a PBA");
            };
            assert_eq!(ba.status, want);
            assert!(
                !ba.options
                    .iter()
                    .any(|o| matches!(o, MobilityOption::Timestamp(_))),
                "status {:?} with a Timestamp: {:?}",
                ba.status,
                ba.options
            );
        }
    }

    #[test]
    fn rejection_statuses_map_to_hoa_failures() {
        for s in [128u8, 129, 130, 156, 163, 170, 171, 173] {
            assert!(hoa_reject_status(BaStatus(s)) >= 128, "status {s}");
        }
    }
}
