//! Proxy Binding Update processing at the LMA (RFC 5213 §5.3, RFC 5844
//! §3.1.3, RFC 5845 §5.2): validation, binding cache lookup (§5.4.1),
//! creation with home address / prefix allocation, refresh and handover,
//! deregistration (§5.3.5), and the Proxy Binding Acknowledgement.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::super::wire::{
    bu_flags, revocation_trigger, AccessTechType, BaStatus, BindingUpdate, HandoffIndicator,
    MobilityOption, OptionsExt,
};
use super::handoff::Lookup;
use super::{Bce, Extra, Lma, Profile, Reply, TimerKey};
use crate::agent::clock::timestamp_distance;
use crate::agent::registrar::GoneCause;
use crate::agent::Peer;
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};

/// A PBU that passed validation, with what the binding needs from it.
pub(super) struct Pbu<'a> {
    pub(super) peer: Peer,
    pub(super) mn_id: &'a [u8],
    /// The MN link-layer identifier (empty when the PBU had none).
    pub(super) llid: &'a [u8],
    pub(super) hnps: Vec<(u8, Ipv6Addr)>,
    pub(super) v4_req: Option<(u8, Ipv4Addr)>,
    /// The Timestamp the PBU is ordered by; `None`: the sequence-number scheme.
    pub(super) ts: Option<u64>,
    pub(super) seq: u16,
    pub(super) profile: Profile,
    pub(super) existing: Option<u32>,
    /// The Handoff Indicator (present: checked).
    pub(super) hi: Option<HandoffIndicator>,
}

/// What a registration grants, once the request is authorised.
struct Grant {
    downlink_key: u32,
    lifetime: Duration,
    att: Option<AccessTechType>,
    /// HI 5, "handoff state not changed (re-registration)": the MN already
    /// holds its address, e.g. after we restarted and lost the binding.
    reregistration: bool,
    /// The MAG asked for the TLV-header UDP format (T, RFC 5845 §7.2),
    /// which we do not do: answered with status 3.
    tlv_header: bool,
}

// A refusal is an `Err(Reply)`, and a `Reply` holds its options inline
// (`Extra`: no heap allocation per PBA). Moving its ~150 bytes up a frame or
// two on the rare refusal costs less than boxing it would on each.
#[allow(clippy::result_large_err)]
impl Lma {
    pub(super) fn on_pbu(&mut self, now: Instant, peer: Peer, bu: BindingUpdate) {
        if !bu.is_proxy() {
            // A plain MIPv6 binding update: not ours to serve.
            self.counters.rx_not_proxy += 1;
            return;
        }
        self.answer(now, peer, bu, Lookup::Arrival);
    }

    /// Processes a PBU and sends its PBA — or holds it (`handoff.rs`).
    pub(super) fn answer(
        &mut self,
        now: Instant,
        peer: Peer,
        mut bu: BindingUpdate,
        lookup: Lookup,
    ) {
        let reply = self.process_pbu(now, peer, &bu, lookup);
        if let Some(id) = reply.hold {
            self.hold_pbu(now, id, peer, bu);
            return;
        }
        if reply.ignore {
            return;
        }
        let created = self.unconfirmed.take_created();
        if reply.status.is_accepted() {
            self.counters.pbu_accepted += 1;
            self.note_mag(now, peer);
        }
        let queued = self.transmits.len();
        self.send_pba(peer, &mut bu, reply);
        if let Some(id) = created {
            // The PBU itself is kept for the refusal: no copy of it.
            self.hold_answer(peer, bu, id, queued);
        }
    }

    fn profile(&self, mn_id: &[u8]) -> Option<Profile> {
        let name = std::str::from_utf8(mn_id).ok()?;
        self.cfg
            .subscribers
            .get(name)
            .cloned()
            .or_else(|| self.cfg.default_profile.clone())
    }

    /// Validates and applies a PBU (RFC 5213 §5.3), returning the PBA contents.
    fn process_pbu(
        &mut self,
        now: Instant,
        peer: Peer,
        bu: &BindingUpdate,
        lookup: Lookup,
    ) -> Reply {
        let p = match self.check_pbu(now, peer, bu, lookup) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if bu.lifetime == 0 {
            let mut r = self.deregister(now, &p);
            self.link_local_reply(&mut r, p.existing, bu);
            return r;
        }
        if let Some(r) = self.redirect(peer, bu, p.existing) {
            return r;
        }
        let g = match self.authorise(bu, &p) {
            Ok(g) => g,
            Err(r) => return r,
        };
        let id = match p.existing {
            Some(id) => match self.update(now, &p, &g, id) {
                Ok(()) => {
                    // A repeat of a registration whose first write is
                    // still in flight is answered with that write's fate.
                    self.unconfirmed.follow(id);
                    id
                }
                Err(r) => return r,
            },
            None => match self.create(now, &p, &g) {
                Ok(id) => id,
                Err(r) => return r,
            },
        };
        let mut r = self.accepted(id, &g);
        self.link_local_reply(&mut r, Some(id), bu);
        r
    }

    /// RFC 5213 §5.3.6: an accepting PBA to a PBU with the Link-local
    /// Address option carries the MAG's link-local address for the MN's
    /// link — the one given (NON_ZERO: stored in the entry), or, asked for
    /// (ALL_ZERO), the entry's, generated when it has none, so every MAG
    /// the MN moves to uses the same one. (A rejection echoes the PBU's.)
    fn link_local_reply(&mut self, r: &mut Reply, id: Option<u32>, bu: &BindingUpdate) {
        if !r.status.is_accepted() || r.ignore {
            return;
        }
        let Some(asked) = bu.options.iter().find_map(|o| match o {
            MobilityOption::LinkLocalAddress(a) => Some(*a),
            _ => None,
        }) else {
            return;
        };
        let Some(b) = id.and_then(|id| self.bces.get_mut(&id)) else {
            return;
        };
        let lla = if asked.is_unspecified() {
            *b.lla
                .get_or_insert_with(|| generated_link_local(b.uplink_key))
        } else {
            b.lla = Some(asked);
            asked
        };
        r.extra.push(MobilityOption::LinkLocalAddress(lla));
    }

    /// Who may register, the mandatory options, the timestamp and the
    /// binding cache lookup.
    fn check_pbu<'a>(
        &mut self,
        now: Instant,
        peer: Peer,
        bu: &'a BindingUpdate,
        lookup: Lookup,
    ) -> Result<Pbu<'a>, Reply> {
        let refuse = |c: &mut u64, status| {
            *c += 1;
            Err(Reply::reject(status))
        };
        // RFC 5213 §5.3.1: the checks in the order given there ("the
        // specified order MUST be maintained", §5.3) — steps 4, 6, 7, 9
        // (the Timestamp against our clock; the binding's order below),
        // then 10–12, for de-registrations too.
        let Some(mn_id) = bu.mn_id() else {
            return refuse(
                &mut self.counters.pbu_missing_option,
                BaStatus::MISSING_MN_IDENTIFIER_OPTION,
            );
        };
        if !self.mags.contains(&peer.ip()) {
            return refuse(
                &mut self.counters.pbu_unconfigured_mag,
                BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG,
            );
        }
        // Step 7: an identifier we know no subscriber (nor default
        // profile) for is a mobile node we cannot identify.
        let Some(profile) = self.profile(mn_id) else {
            return refuse(
                &mut self.counters.pbu_unknown_mn,
                BaStatus::NOT_LMA_FOR_THIS_MOBILE_NODE,
            );
        };
        // A held PBU was checked against our clock when it came.
        let ts = match lookup {
            Lookup::Arrival => self.ordering_timestamp(now, bu)?,
            _ => bu.timestamp().filter(|_| self.cfg.timestamp_based),
        };
        let hnps = bu.hnps();
        let v4_req = bu.ipv4_hoa_request();
        let missing = if hnps.is_empty() && v4_req.is_none() {
            // RFC 5213 wants an HNP option; RFC 5844 §3.1.3 lets an
            // IPv4-only request go without one: accept either.
            Some(BaStatus::MISSING_HOME_NETWORK_PREFIX_OPTION)
        } else if bu.handoff_indicator().is_none() {
            Some(BaStatus::MISSING_HANDOFF_INDICATOR_OPTION)
        } else if bu.access_tech_type().is_none() {
            Some(BaStatus::MISSING_ACCESS_TECH_TYPE_OPTION)
        } else {
            None
        };
        if let Some(status) = missing {
            return refuse(&mut self.counters.pbu_missing_option, status);
        }
        // RFC 5844 §3.1.2.1: one IPv4 home address per mobility session.
        let v4_reqs = bu
            .options
            .iter()
            .filter(|o| matches!(o, MobilityOption::Ipv4HoaRequest { .. }))
            .count();
        if v4_reqs > 1 {
            return refuse(
                &mut self.counters.pbu_multiple_ipv4_requests,
                BaStatus::MULTIPLE_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_SUPPORTED,
            );
        }
        let llid = bu.link_layer_id().unwrap_or(&[]);
        let existing = match lookup {
            Lookup::Arrival => {
                if let Some(id) = self.unknown_handoff(peer, bu, mn_id, llid) {
                    // Ordered against the session as it comes (a stale one
                    // is refused now), then held.
                    let b = &self.bces[&id];
                    self.check_order(now, (b.last_ts, b.last_seq), ts, bu.seq)?;
                    return Err(Reply::held(id));
                }
                self.find_session(peer, mn_id, llid, bu.handoff_indicator(), &hnps)
            }
            Lookup::Moved(id) => Some(id),
            Lookup::New => None,
        };
        // A held PBU was ordered when it came: the previous MAG's
        // de-registration that released it was sent after it.
        if let Some(id) = existing.filter(|_| lookup == Lookup::Arrival) {
            let b = &self.bces[&id];
            let last = (b.last_ts, b.last_seq);
            self.check_order(now, last, ts, bu.seq)?;
        }
        // RFC 5846 §8.1: a PBU for an entry whose revocation is in progress
        // is handled "based on the reason for sending the Binding Revocation
        // Indication message and its local policy". Ours are terminations
        // (the operator's, the AAA server's): the session stays ended, a
        // registration crossing the BRI is refused; a de-registration is
        // answered as for any de-registering entry.
        if existing.is_some_and(|id| self.bces[&id].revoking.is_some()) && bu.lifetime != 0 {
            return refuse(
                &mut self.counters.pbu_refused_revoking,
                BaStatus::ADMIN_PROHIBITED,
            );
        }
        Ok(Pbu {
            peer,
            mn_id,
            llid,
            hnps,
            v4_req,
            ts,
            seq: bu.seq,
            profile,
            existing,
            hi: bu.handoff_indicator(),
        })
    }

    /// The GRE key (RFC 5845 §5.2), the services the profile allows, and
    /// the lifetime granted.
    fn authorise(&mut self, bu: &BindingUpdate, p: &Pbu) -> Result<Grant, Reply> {
        if bu.flags & bu_flags::F != 0 && matches!(p.peer, Peer::V4(_)) {
            // RFC 5844 §4.1.3.1: forced IPv4-UDP encapsulation (F) over IPv4
            // transport, which an LMA whose AcceptForcedIPv4UDPEncapsulation-
            // Request is 0 "MUST reject ... 129": our tunnels are GRE.
            self.counters.pbu_forced_udp_refused += 1;
            return Err(Reply::reject(BaStatus::ADMIN_PROHIBITED));
        }
        let Some(Some(downlink_key)) = bu.gre_key() else {
            // Our tunnels are GRE with keys.
            self.counters.pbu_gre_key_missing += 1;
            return Err(Reply::reject(BaStatus::GRE_KEY_OPTION_REQUIRED));
        };
        if p.v4_req.is_some() && !p.profile.ipv4 {
            self.counters.pbu_v4_not_authorized += 1;
            return Err(Reply::reject(
                BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE,
            ));
        }
        // RFC 5844 §3.1.2.1: a Home Network Prefix option for an MN whose
        // profile has no IPv6 service, or with IPv6 routing not enabled
        // here (no IPv6 pool), "MUST reject ... 172" — also beside an IPv4
        // HoA Request (the MAG then asks without the prefix, §3.2.3.3).
        if !p.hnps.is_empty() && (!p.profile.ipv6 || self.v6.is_none()) {
            self.counters.pbu_v4_not_authorized += 1;
            return Err(Reply::reject(
                BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE,
            ));
        }
        let requested = Duration::from_secs(u64::from(bu.lifetime_secs()));
        let units = (requested.min(self.cfg.max_lifetime).as_secs() / 4).clamp(1, 0xffff);
        Ok(Grant {
            downlink_key,
            lifetime: Duration::from_secs(units * 4),
            att: bu.access_tech_type(),
            reregistration: bu.handoff_indicator()
                == Some(HandoffIndicator::HandoffStateNotChanged),
            tlv_header: bu.flags & bu_flags::T != 0,
        })
    }

    /// A PBU for an existing binding: refresh, re-registration after a
    /// deregistration, or handover from another MAG (RFC 5213 §5.3.2).
    fn update(&mut self, now: Instant, p: &Pbu, g: &Grant, id: u32) -> Result<(), Reply> {
        let b = self.bces.get(&id).expect("index consistent");
        // RFC 5213 §5.3.x: a prefix the MN does not hold is refused.
        let wants_other_hnp = p.hnps.iter().any(|(l, pfx)| {
            !pfx.is_unspecified() && b.hnp.is_some_and(|h| h.prefix != *pfx || h.len != *l)
        });
        if wants_other_hnp {
            return Err(Reply::reject(BaStatus::BCE_PBU_PREFIX_SET_DO_NOT_MATCH));
        }
        if let (Some((_, a)), Some((have, _))) = (p.v4_req, b.home_v4) {
            if !a.is_unspecified() && a != have {
                self.counters.pbu_v4_not_authorized += 1;
                return Err(Reply::reject(
                    BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                ));
            }
        }
        // RFC 5844 §3.2.3.3: an IPv4 home address asked for later.
        let new_v4 = if self.later_v4(id, p) {
            self.assign_v4(p, g)?
        } else {
            None
        };
        let b = self.bces.get(&id).expect("index consistent");
        let (old_mag, old_att, was_deleting) = (b.mag, b.att, b.deleting);
        // What the old MAG knows the session by (the BRI names it so);
        // copied only for a handover (a refresh allocates nothing).
        let old_llid = if b.mag.ip() == p.peer.ip() {
            Vec::new()
        } else {
            b.llid.clone()
        };
        let old_hnp = b.hnp;
        if old_mag.ip() != p.peer.ip() {
            self.count_mag_bce(old_mag.ip(), false);
            self.count_mag_bce(p.peer.ip(), true);
        }
        let b = self.bces.get_mut(&id).expect("index consistent");
        // Another proxy-CoA; the same MAG from another UDP port is not a
        // handover (the binding takes the new port for what we send).
        let handover = old_mag.ip() != p.peer.ip();
        // HI 2 moved the session to another interface of the MN.
        if !p.llid.is_empty() && b.llid != p.llid {
            b.llid = p.llid.to_vec();
        }
        if new_v4.is_some() {
            b.home_v4 = new_v4;
        }
        let changed =
            handover || b.downlink_key != g.downlink_key || was_deleting || new_v4.is_some();
        b.mag = p.peer;
        b.downlink_key = g.downlink_key;
        b.last_ts = p.ts.map_or(b.last_ts, |t| t.max(b.last_ts));
        b.last_seq = p.seq;
        b.lifetime = g.lifetime;
        b.att = g.att;
        b.deleting = false;
        b.deadline = now + g.lifetime;
        let deadline = b.deadline;
        self.arm(deadline, TimerKey::Bce(id));
        if changed {
            // One map update switches the downlink tunnel (same uplink key).
            if let Some(ab) = self.anchor_binding(id) {
                self.dp.push_back(DpCommand::InstallAnchor(ab));
            }
        }
        self.persist(id);
        if handover && !was_deleting {
            self.counters.handovers += 1;
            self.moved(p.mn_id, old_mag, p.peer);
            if self.revokes_at(old_mag.ip()) {
                // RFC 5846 §8.1: a handover the new MAG cannot tell (HI 4)
                // is "Inter-MAG Handover - Unknown".
                let trigger = if p.hi == Some(HandoffIndicator::HandoffStateUnknown) {
                    revocation_trigger::INTER_MAG_HANDOVER_UNKNOWN
                } else if old_att == g.att {
                    revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT
                } else {
                    revocation_trigger::INTER_MAG_HANDOVER_DIFFERENT_ATT
                };
                self.send_bri(now, old_mag, (p.mn_id.to_vec(), old_llid, old_hnp), trigger);
            }
        } else if was_deleting {
            // A session its MAG had de-registered (its end was reported)
            // is registered again, here or at a new MAG: it starts again
            // (accounting sees a new session).
            self.counters.registrations += 1;
            self.created(p.mn_id, p.peer);
        } else {
            self.counters.refreshes += 1;
        }
        Ok(())
    }

    /// The PBA of an accepted registration: HNP, uplink GRE key, IPv4 home
    /// address and default router.
    fn accepted(&self, id: u32, g: &Grant) -> Reply {
        let b = &self.bces[&id];
        let mut extra = self.binding_options(id);
        // The uplink key goes after the prefix (RFC 5845 §4.2), before IPv4.
        let at = usize::from(b.hnp.is_some());
        extra.insert(at, MobilityOption::GreKey(Some(b.uplink_key)));
        if b.home_v4.is_some() {
            // RFC 5844 §3.3.4, §3.1.3: the MAG is the DHCP server (S=1);
            // without the option it would relay, and there is no DHCP
            // server behind this LMA to relay to.
            extra.push(MobilityOption::Ipv4DhcpSupportMode { server: true });
        }
        // RFC 5845 §7.2, §6.4: a PBU with the GRE Key option and T set is
        // answered "GRE_TUNNELING_BUT_TLV_HEADER_NOT_SUPPORTED" (3, a
        // success) with T clear — GRE without the TLV header (§7.3).
        let status = match g.tlv_header {
            true => BaStatus::GRE_TUNNELING_BUT_TLV_HEADER_NOT_SUPPORTED,
            false => BaStatus::ACCEPTED,
        };
        Reply {
            status,
            lifetime: (g.lifetime.as_secs() / 4) as u16,
            extra,
            seq: None,
            ignore: false,
            hold: None,
        }
    }

    /// IPv4 home address for a new binding: the profile's static one, the
    /// requested one if the profile allows it, or the next from the pool
    /// (RFC 5844 §3.1.3).
    fn assign_v4(&mut self, p: &Pbu, g: &Grant) -> Result<Option<(Ipv4Addr, u8)>, Reply> {
        let Some((_, req)) = p.v4_req else {
            return Ok(None);
        };
        // The profile's pool (`profiles[].pool`); a static address is taken
        // from whichever pool holds it.
        let home_pool = p.profile.pool;
        let in_pool = |s: Ipv4Addr, v: &[super::pool::V4Pool]| v.iter().position(|x| x.contains(s));
        let at = match p.profile.static_v4 {
            Some(s) => in_pool(s, &self.v4).unwrap_or(home_pool),
            None => home_pool,
        };
        let Some(pool) = self.v4.get_mut(at) else {
            self.counters.pbu_v4_not_authorized += 1;
            return Err(Reply::reject(
                BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE,
            ));
        };
        let plen = pool.cfg.prefix_len;
        let addr = if let Some(s) = p.profile.static_v4 {
            if !req.is_unspecified() && req != s {
                self.counters.pbu_v4_not_authorized += 1;
                return Err(Reply::reject(
                    BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                ));
            }
            // A static address outside the pool is the operator's business.
            if pool.contains(s) && !pool.take(s) {
                self.counters.pbu_no_resources += 1;
                return Err(Reply::reject(
                    BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                ));
            }
            s
        } else if !req.is_unspecified() {
            // A MAG re-registering after we lost state (HI 5) asks for
            // the address we gave before: honour it if it is free.
            // The address this MN released is its own to ask for again.
            let own = pool.held_for(p.mn_id) == Some(req);
            if !(p.profile.allow_static || g.reregistration || own) || !pool.take(req) {
                self.counters.pbu_v4_not_authorized += 1;
                return Err(Reply::reject(
                    BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS,
                ));
            }
            req
        } else {
            let Some(a) = pool.alloc_for(p.mn_id) else {
                self.counters.pbu_no_resources += 1;
                return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
            };
            a
        };
        Ok(Some((addr, plen)))
    }

    /// A new binding cache entry, its addresses and its fast-path entries.
    fn create(&mut self, now: Instant, p: &Pbu, g: &Grant) -> Result<u32, Reply> {
        // RFC 5213 §5.3.1: a new session holds no prefix yet; asking for a
        // specific one (not ::/0) is asking for one it is not authorised for.
        if p.hnps.iter().any(|(_, pfx)| !pfx.is_unspecified()) {
            self.counters.pbu_hnp_not_authorized += 1;
            return Err(Reply::reject(
                BaStatus::NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX,
            ));
        }
        let home_v4 = self.assign_v4(p, g)?;
        let mut hnp = None;
        if !p.hnps.is_empty() {
            // `authorise` refused a prefix without IPv6 service (172). A
            // prefix asked for and none left is 130 (RFC 5213 §5.3.2 (2),
            // "MUST reject"), beside an IPv4 HoA Request too: the MAG asked
            // for both, and an IPv4-only grant would leave it waiting for a
            // prefix that never comes (the reply's IPv4 HoA Reply says 128,
            // RFC 5844 §3.1.2.2).
            match self.v6.as_mut().and_then(|pool| pool.alloc()) {
                Some(h) => hnp = Some(h),
                None => {
                    self.release_v4(home_v4);
                    self.counters.pbu_no_resources += 1;
                    return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
                }
            }
        }
        let Some(id) = self.ids.alloc() else {
            self.release_v4(home_v4);
            if let (Some(h), Some(pool)) = (hnp, self.v6.as_mut()) {
                pool.release(h);
            }
            self.counters.pbu_no_resources += 1;
            return Err(Reply::reject(BaStatus::INSUFFICIENT_RESOURCES));
        };
        // The uplink key is the binding id: unique among live bindings.
        let bce = Bce {
            mn_id: p.mn_id.to_vec(),
            llid: p.llid.to_vec(),
            mag: p.peer,
            sub_id: id,
            uplink_key: id,
            downlink_key: g.downlink_key,
            home_v4,
            hnp,
            att: g.att,
            lla: None,
            lifetime: g.lifetime,
            last_ts: p.ts.unwrap_or(0),
            last_seq: p.seq,
            deleting: false,
            revoking: None,
            deadline: now + g.lifetime,
        };
        self.bces.insert(id, bce);
        self.count_mag_bce(p.peer.ip(), true);
        self.bce_by_id.insert(p.mn_id, id);
        self.arm(now + g.lifetime, TimerKey::Bce(id));
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::InstallAnchor(ab));
        }
        self.persist(id);
        self.counters.registrations += 1;
        self.created(p.mn_id, p.peer);
        self.unconfirmed.created(id);
        Ok(id)
    }

    fn release_v4(&mut self, a: Option<(Ipv4Addr, u8)>) {
        if let Some((a, _)) = a {
            if let Some(p) = self.v4.iter_mut().find(|p| p.contains(a)) {
                p.release(a);
            }
        }
    }

    /// Lifetime 0 (RFC 5213 §5.3.5). The PBA carries what the binding had —
    /// prefix, IPv4 home address, default router (RFC 5213 §5.3.6, RFC 5844
    /// §3.1.2.6) — or, for a binding we do not know, what the PBU asked about.
    fn deregister(&mut self, now: Instant, p: &Pbu) -> Reply {
        let mut done = Reply {
            status: BaStatus::ACCEPTED,
            lifetime: 0,
            extra: Extra::new(),
            seq: None,
            ignore: false,
            hold: None,
        };
        let ignored = Reply {
            ignore: true,
            ..Reply::reject(BaStatus::ACCEPTED)
        };
        let Some(id) = p.existing else {
            // §5.4.1.1–5.4.1.3: "if the request cannot be associated with
            // any existing mobility session, the message MUST be silently
            // ignored".
            self.counters.dereg_unknown += 1;
            return ignored;
        };
        let b = self.bces.get_mut(&id).expect("index consistent");
        if b.mag.ip() != p.peer.ip() {
            // §5.3.5: a de-registration from another MAG than the one in
            // the entry (a late one from the MAG the subscriber left: the
            // binding is the new MAG's) — "MUST ignore the request".
            self.counters.dereg_from_old_mag += 1;
            return ignored;
        }
        if let Some(r) = self.selective_dereg(p, id) {
            return r;
        }
        done.extra = self.binding_options(id);
        let b = self.bces.get_mut(&id).expect("index consistent");
        b.last_ts = p.ts.unwrap_or(b.last_ts);
        b.last_seq = p.seq;
        if b.deleting {
            return done;
        }
        self.counters.deregistrations += 1;
        self.end_at_mag(now, id);
        self.deregistered_while_held(id);
        done
    }

    /// RFC 5213 §5.3.5: the session ends at its MAG; the entry stays
    /// MinDelayBeforeBCEDelete so that a new MAG can take it over, the
    /// tunnel to the old MAG goes now.
    pub(super) fn end_at_mag(&mut self, now: Instant, id: u32) {
        let b = self.bces.get_mut(&id).expect("index consistent");
        b.deleting = true;
        b.deadline = now + self.cfg.min_delay_before_bce_delete;
        let deadline = b.deadline;
        self.persist(id);
        self.ended(id, GoneCause::Deregistered);
        if let Some(ab) = self.anchor_binding(id) {
            self.dp.push_back(DpCommand::RemoveAnchor(ab));
        }
        self.arm(deadline, TimerKey::Bce(id));
    }

    /// The Timestamp a PBU is ordered by (RFC 5213 §5.5): within the window
    /// of our clock, else 156 with our time. `None` when the PBU carries
    /// none or TimestampBasedApproachInUse is off: the sequence number orders it.
    fn ordering_timestamp(
        &mut self,
        now: Instant,
        bu: &BindingUpdate,
    ) -> Result<Option<u64>, Reply> {
        let Some(ts) = bu.timestamp().filter(|_| self.cfg.timestamp_based) else {
            return Ok(None);
        };
        let our_ts = self.clock.timestamp(now);
        if timestamp_distance(ts, our_ts) > self.cfg.timestamp_window {
            self.counters.pbu_timestamp_mismatch += 1;
            let mut r = Reply::reject(BaStatus::TIMESTAMP_MISMATCH);
            r.extra.push(MobilityOption::Timestamp(our_ts));
            return Err(r);
        }
        Ok(Some(ts))
    }

    /// Only strictly newer PBUs count (RFC 5213 §5.5): by Timestamp (157,
    /// with our clock's time), or by sequence number (RFC 6275 §9.5.1: 135
    /// with the last sequence number accepted) — whichever MAG sends it:
    /// the sequence number is kept per mobility session (§5.5), so an
    /// older PBU from the MAG the subscriber left cannot pull the binding
    /// back. (A new MAG that does not know it learns it from the 135.)
    fn check_order(
        &mut self,
        now: Instant,
        (last_ts, last_seq): (u64, u16),
        ts: Option<u64>,
        seq: u16,
    ) -> Result<(), Reply> {
        match ts {
            Some(ts) if ts <= last_ts => {
                self.counters.pbu_timestamp_replayed += 1;
                let mut r = Reply::reject(BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED);
                // §5.5: "with the value set to the current time of day on
                // the local mobility anchor".
                r.extra
                    .push(MobilityOption::Timestamp(self.clock.timestamp(now)));
                Err(r)
            }
            None if (seq.wrapping_sub(last_seq) as i16) <= 0 => {
                self.counters.pbu_sequence_out_of_window += 1;
                let mut r = Reply::reject(BaStatus::SEQUENCE_NUMBER_OUT_OF_WINDOW);
                r.seq = Some(last_seq);
                Err(r)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn anchor_binding(&self, id: u32) -> Option<AnchorBinding> {
        let b = self.bces.get(&id)?;
        Some(AnchorBinding {
            sub_id: b.sub_id,
            tunnel: TunnelEnds {
                local: self.cfg.local.for_peer(&b.mag)?,
                remote: b.mag.ip(),
            },
            uplink_key: b.uplink_key,
            downlink_key: b.downlink_key,
            home_v4: b.home_v4.map(|(a, _)| a),
            hnp: b.hnp,
        })
    }

    /// Deletes a binding and frees what it held.
    pub(super) fn delete(&mut self, id: u32) {
        let Some(b) = self.bces.get(&id) else { return };
        if !b.deleting {
            if let Some(ab) = self.anchor_binding(id) {
                self.dp.push_back(DpCommand::RemoveAnchor(ab));
            }
        }
        let b = self.bces.remove(&id).expect("checked");
        self.count_mag_bce(b.mag.ip(), false);
        self.bce_by_id.remove(&b.mn_id, id);
        if let Some((a, _)) = b.home_v4 {
            if let Some(p) = self.v4.iter_mut().find(|p| p.contains(a)) {
                p.release_for(a, &b.mn_id);
            }
        }
        if let (Some(h), Some(p)) = (b.hnp, self.v6.as_mut()) {
            p.release(h);
        }
        self.ids.release(id);
        self.persist(id);
    }

    /// RFC 5213 §5.4.1, simplified: the session with the same link-layer
    /// identifier (the Access Technology Type is not compared: a subscriber
    /// keeps its session when it moves to another access technology under
    /// the same identifier); with HI 2 (handoff between interfaces) the
    /// session holding the requested prefix; else the lone session, see below.
    fn find_session(
        &self,
        peer: Peer,
        mn_id: &[u8],
        llid: &[u8],
        hi: Option<HandoffIndicator>,
        hnps: &[(u8, Ipv6Addr)],
    ) -> Option<u32> {
        let ids: SmallVec<[u32; 4]> = self.sessions_of(mn_id).collect();
        let same_llid = |id: &&u32| !llid.is_empty() && self.bces[*id].llid == llid;
        if let Some(id) = ids.iter().find(same_llid) {
            return Some(*id);
        }
        if hi == Some(HandoffIndicator::HandoffBetweenInterfaces) {
            let by_prefix = ids.iter().find(|id| {
                let h = self.bces[*id].hnp;
                hnps.iter()
                    .any(|(l, p)| h.is_some_and(|h| h.prefix == *p && h.len == *l))
            });
            if by_prefix.is_some() {
                return by_prefix.copied();
            }
        }
        // The MN's lone session, when the request says the MN moved:
        // HI 2 (§5.4.1.2 step 3, §5.4.1.3 step 2), HI 3 without a
        // link-layer identifier (§5.4.1.3 step 2), HI 4 once the previous
        // MAG de-registered it (§5.4.1.2 step 4, §5.4.1.3 step 3; until
        // then the PBU is held, `handoff.rs`, or with no wait configured it
        // opens a new session). Without an identifier, also a request from
        // the session's own MAG (§5.4.1.1 step 5: the same proxy-CoA, a
        // refresh or de-registration). Anything else, such as HI 1 or 5
        // from another MAG: "all other cases", a new mobility session.
        let [id] = ids.as_slice() else {
            return None;
        };
        let b = &self.bces[id];
        let moved = match hi {
            Some(HandoffIndicator::HandoffBetweenInterfaces) => true,
            Some(HandoffIndicator::HandoffBetweenMagsSameInterface) => llid.is_empty(),
            Some(HandoffIndicator::HandoffStateUnknown) => b.deleting,
            _ => false,
        };
        (moved || (llid.is_empty() && b.mag.ip() == peer.ip())).then_some(*id)
    }
}

/// A link-local address for the MAGs on a session's point-to-point link
/// (RFC 5213 §5.3.6 "MUST generate"): fe80::/64 with an interface
/// identifier made of the session's uplink GRE key (unique among our
/// sessions, durable, so the same address comes back after a restart),
/// the universal/local bit clear (RFC 4291 §2.5.1: not a global ID).
fn generated_link_local(key: u32) -> std::net::Ipv6Addr {
    let k = key.to_be_bytes();
    std::net::Ipv6Addr::from([
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x50, 0x4d, 0x49, k[0], k[1], k[2], k[3],
    ])
}
