//! One address family of a dual-stack mobility session (RFC 5844): its
//! selective de-registration, and an IPv4 home address asked for after the
//! session began.
//!
//! §3.2.3.3: a PBU with lifetime 0 that carries the IPv4 Home Address
//! Request and no Home Network Prefix option de-registers the IPv4 home
//! address alone ("still retaining the mobility session with all the IPv6
//! home network prefixes"); one with the Home Network Prefix options and no
//! IPv4 Home Address Request, the prefixes alone. §3.1.2.5: "the Binding
//! Cache entry MUST NOT be deleted, only the respective states related to
//! those addresses MUST be deleted".
use super::super::wire::{option::hoa_status, BaStatus, MobilityOption};
use super::pbu::Pbu;
use super::{Extra, Lma, Reply};
use crate::dataplane::{AnchorBinding, DpCommand};

impl Lma {
    /// A de-registration of one family of dual-stack session `id` (see the
    /// module doc): that family's address goes, the session stays. `None`
    /// when the PBU names both families (or the session has only one): a
    /// de-registration of the session.
    pub(super) fn selective_dereg(&mut self, p: &Pbu, id: u32) -> Option<Reply> {
        let b = &self.bces[&id];
        let (Some((have_v4, plen)), Some(hnp)) = (b.home_v4, b.hnp) else {
            return None;
        };
        if b.deleting {
            return None;
        }
        let v4_only = p.v4_req.is_some() && p.hnps.is_empty();
        let v6_only = p.v4_req.is_none() && !p.hnps.is_empty();
        if !(v4_only || v6_only) {
            return None;
        }
        // It names what the session holds: the address and prefix "that is
        // being de-registered" (§3.2.3.3).
        if v4_only
            && p.v4_req
                .is_some_and(|(_, a)| !a.is_unspecified() && a != have_v4)
        {
            self.counters.pbu_v4_not_authorized += 1;
            return Some(Reply::reject(
                BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
            ));
        }
        if v6_only
            && p.hnps
                .iter()
                .any(|(l, x)| *x != hnp.prefix || *l != hnp.len)
        {
            return Some(Reply::reject(BaStatus::BCE_PBU_PREFIX_SET_DO_NOT_MATCH));
        }
        let old = self.anchor_binding(id)?;
        let b = self.bces.get_mut(&id).expect("checked");
        b.last_ts = p.ts.unwrap_or(b.last_ts);
        b.last_seq = p.seq;
        let mn_id = b.mn_id.clone();
        let mut extra = Extra::new();
        let gone = if v4_only {
            b.home_v4 = None;
            // The MN may ask for its address again (as after a full one).
            if let Some(pool) = self.v4.iter_mut().find(|x| x.contains(have_v4)) {
                pool.release_for(have_v4, &mn_id);
            }
            extra.extend(self.v4_reply(hoa_status::SUCCESS, plen, have_v4));
            AnchorBinding { hnp: None, ..old }
        } else {
            b.hnp = None;
            if let Some(pool) = self.v6.as_mut() {
                pool.release(hnp);
            }
            extra.push(MobilityOption::HomeNetworkPrefix {
                prefix_len: hnp.len,
                prefix: hnp.prefix,
            });
            AnchorBinding {
                home_v4: None,
                ..old
            }
        };
        // The family's route goes; the session's entry is written again
        // without it (uplink anti-spoofing included).
        self.dp.push_back(DpCommand::RemoveAnchor(gone));
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::InstallAnchor(ab));
        }
        self.persist(id);
        self.counters.selective_deregistrations += 1;
        tracing::info!(
            mn = %String::from_utf8_lossy(&mn_id),
            family = if v4_only { "ipv4" } else { "ipv6" },
            "selective de-registration"
        );
        Some(Reply {
            extra,
            ..Reply::reject(BaStatus::ACCEPTED)
        })
    }

    /// §3.2.3.3: a session without an IPv4 home address whose refresh
    /// asks for one ("it is determined that the IPv4 home address MUST be
    /// requested subsequently") gets one, as a new session would.
    pub(super) fn later_v4(&self, id: u32, p: &Pbu) -> bool {
        p.v4_req.is_some() && self.bces.get(&id).is_some_and(|b| b.home_v4.is_none())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::{Instant, SystemTime};

    use super::super::{Ipv6PoolConfig, Lma, LmaConfig, Profile};
    use crate::agent::{Endpoint, Peer};
    use crate::dataplane::{DataPlane, MemDataPlane};
    use crate::pmipv6::wire::{
        bu_flags, AccessTechType, BaStatus, BindingAck, BindingUpdate, Checksum, HandoffIndicator,
        Message, MobilityOption,
    };
    use crate::store::StoreOp;

    use super::super::pba::tests::LMA;
    const MAG: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    fn lma(now: Instant) -> Lma {
        let cfg = LmaConfig {
            ipv6_pool: Some(Ipv6PoolConfig {
                prefix: "2001:db8:f00d::".parse().unwrap(),
                prefix_len: 48,
                assign_len: 64,
            }),
            default_profile: Some(Profile {
                ipv4: true,
                ipv6: true,
                ..Profile::default()
            }),
            ..super::super::pba::tests::cfg(&[MAG])
        };
        Lma::new(cfg, now, SystemTime::now())
    }

    /// A PBU from the MAG with the given HNP and IPv4 HoA Request options.
    fn pbu(seq: u16, lifetime: u16, hnp: Option<(u8, Ipv6Addr)>, v4: Option<Ipv4Addr>) -> Vec<u8> {
        let mut options = vec![
            MobilityOption::MnId {
                subtype: 1,
                id: b"ds@example.com".to_vec(),
            },
            MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
            MobilityOption::AccessTechType(AccessTechType::Ieee80211),
            MobilityOption::MnLinkLayerId(vec![2, 0, 0, 0, 0, 1]),
        ];
        if let Some((prefix_len, prefix)) = hnp {
            options.push(MobilityOption::HomeNetworkPrefix { prefix_len, prefix });
        }
        if lifetime > 0 {
            options.push(MobilityOption::GreKey(Some(7)));
        }
        if let Some(addr) = v4 {
            let prefix_len = if addr.is_unspecified() { 0 } else { 24 };
            options.push(MobilityOption::Ipv4HoaRequest { prefix_len, addr });
        }
        Message::BindingUpdate(BindingUpdate {
            seq,
            flags: bu_flags::A | bu_flags::P,
            lifetime,
            options,
        })
        .to_vec(Checksum::Ipv6 { src: MAG, dst: LMA })
        .unwrap()
    }

    fn pba(
        lma: &mut Lma,
        now: Instant,
        dp: &mut MemDataPlane,
        ops: &mut Vec<StoreOp>,
    ) -> BindingAck {
        while let Some(op) = lma.poll_store() {
            ops.push(op);
        }
        lma.stored(now, true);
        while let Some(c) = lma.poll_dp() {
            dp.apply(&c).unwrap();
        }
        let t = lma.poll_transmit().expect("a PBA");
        let Ok(Message::BindingAck(ba)) =
            Message::parse(&t.payload, Checksum::Ipv6 { src: LMA, dst: MAG })
        else {
            panic!("not a PBA")
        };
        ba
    }

    fn hoa(ba: &BindingAck) -> Option<Ipv4Addr> {
        ba.options.iter().find_map(|o| match o {
            MobilityOption::Ipv4HoaReply { addr, .. } => Some(*addr),
            _ => None,
        })
    }

    fn hnp(ba: &BindingAck) -> Option<Ipv6Addr> {
        ba.options.iter().find_map(|o| match o {
            MobilityOption::HomeNetworkPrefix { prefix, .. } => Some(*prefix),
            _ => None,
        })
    }

    /// The MAG registers the MN for an IPv4 home address and a prefix.
    fn register_dual_stack(
        lma: &mut Lma,
        now: Instant,
        dp: &mut MemDataPlane,
        ops: &mut Vec<StoreOp>,
    ) -> BindingAck {
        let any = (
            Some((0, Ipv6Addr::UNSPECIFIED)),
            Some(Ipv4Addr::UNSPECIFIED),
        );
        lma.handle(now, Peer::V6(MAG), &pbu(1, 100, any.0, any.1));
        pba(lma, now, dp, ops)
    }

    #[test]
    fn one_family_of_a_dual_stack_session_is_deregistered_alone() {
        let now = Instant::now();
        let (mut lma, mut dp, mut ops) = (lma(now), MemDataPlane::default(), Vec::new());
        let mag = Peer::V6(MAG);
        let ba = register_dual_stack(&mut lma, now, &mut dp, &mut ops);
        let (a, h) = (hoa(&ba).unwrap(), hnp(&ba).unwrap());
        // IPv4 alone: the PBA names the address, no prefix; the session
        // keeps its prefix, and the data plane its IPv6 route alone.
        lma.handle(now, mag, &pbu(2, 0, None, Some(a)));
        let ba = pba(&mut lma, now, &mut dp, &mut ops);
        assert_eq!(ba.status, BaStatus::ACCEPTED);
        assert_eq!((hoa(&ba), hnp(&ba)), (Some(a), None));
        let b = lma.binding(b"ds@example.com").expect("the session stays");
        assert!(!b.deleting && b.home_v4.is_none() && b.hnp.map(|x| x.prefix) == Some(h));
        let ab = dp.anchor.values().next().unwrap();
        assert_eq!((ab.home_v4, ab.hnp.map(|x| x.prefix)), (None, Some(h)));
        assert_eq!(lma.counters.selective_deregistrations, 1);
        // A restart takes the session up as it was left: the prefix, no
        // IPv4 home address.
        let mut records = std::collections::BTreeMap::new();
        for op in ops.drain(..) {
            match op {
                StoreOp::Put(k, r) => records.insert(k, r),
                StoreOp::Delete(k) => records.remove(&k),
            };
        }
        let mut again = super::tests::lma(now);
        again.restore(now, records.into_iter().collect());
        let b = again.binding(b"ds@example.com").expect("restored");
        assert!(
            b.home_v4.is_none() && b.hnp.map(|x| x.prefix) == Some(h),
            "{b:?}"
        );
        // A refresh that asks for an IPv4 home address again gets one.
        lma.handle(
            now,
            mag,
            &pbu(3, 100, Some((64, h)), Some(Ipv4Addr::UNSPECIFIED)),
        );
        let ba = pba(&mut lma, now, &mut dp, &mut ops);
        assert_eq!(ba.status, BaStatus::ACCEPTED);
        let a2 = hoa(&ba).expect("an IPv4 home address asked for later");
        assert_eq!(dp.anchor.values().next().unwrap().home_v4, Some(a2));
        // The prefix alone: the PBA names it; IPv4 stays.
        lma.handle(now, mag, &pbu(4, 0, Some((64, h)), None));
        let ba = pba(&mut lma, now, &mut dp, &mut ops);
        assert_eq!(
            (ba.status, hnp(&ba), hoa(&ba)),
            (BaStatus::ACCEPTED, Some(h), None)
        );
        let b = lma.binding(b"ds@example.com").unwrap();
        assert!(!b.deleting && b.hnp.is_none() && b.home_v4.map(|x| x.0) == Some(a2));
        assert_eq!(dp.anchor.values().next().unwrap().hnp, None);
        // What is left is the session: its de-registration ends it.
        lma.handle(now, mag, &pbu(5, 0, None, Some(a2)));
        let ba = pba(&mut lma, now, &mut dp, &mut ops);
        assert_eq!(ba.status, BaStatus::ACCEPTED);
        assert!(lma.binding(b"ds@example.com").unwrap().deleting);
        assert!(dp.anchor.is_empty());
    }

    #[test]
    fn a_selective_deregistration_must_name_what_the_session_holds() {
        let now = Instant::now();
        let (mut lma, mut dp, mut ops) = (lma(now), MemDataPlane::default(), Vec::new());
        let mag = Peer::V6(MAG);
        register_dual_stack(&mut lma, now, &mut dp, &mut ops);
        lma.handle(
            now,
            mag,
            &pbu(2, 0, None, Some(Ipv4Addr::new(10, 0, 0, 200))),
        );
        assert_eq!(
            pba(&mut lma, now, &mut dp, &mut ops).status,
            BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS
        );
        lma.handle(
            now,
            mag,
            &pbu(3, 0, Some((64, "2001:db8:beef::".parse().unwrap())), None),
        );
        assert_eq!(
            pba(&mut lma, now, &mut dp, &mut ops).status,
            BaStatus::BCE_PBU_PREFIX_SET_DO_NOT_MATCH
        );
        let b = lma.binding(b"ds@example.com").unwrap();
        assert!(!b.deleting && b.home_v4.is_some() && b.hnp.is_some());
        assert_eq!(lma.counters.selective_deregistrations, 0);
    }
}
