//! What the MAG does with the LMA's answers: Proxy Binding Acknowledgements
//! (RFC 5213 §6.9.1.2, RFC 5844 §3.1.3, RFC 5845 §4.2) and Binding Revocation
//! Indications (RFC 5846 §8.2).
use std::time::{Duration, Instant};

use super::super::wire::{
    ba_flags, br_flags, bra_status, revocation_trigger, AccessTechType, BaStatus, BindingAck,
    HandoffIndicator, Message, OptionsExt, RevocationAck, RevocationIndication,
};
use super::{FailReason, Granted, Mag, MagEvent, State};
use crate::dataplane::{AccessPoint, DpCommand, Hnp};

impl Mag {
    /// The attachment a PBA answers: by link-layer identifier (echoed by
    /// the LMA), else by sequence number among the MN's attachments (a 135
    /// carries the LMA's last accepted number, not ours: the MN's only one).
    fn pba_attachment(&self, ba: &BindingAck) -> Option<AccessPoint> {
        let ats = ba
            .mn_id()
            .and_then(|id| self.by_mn_id.get(id))
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        let out_of_window = ba.status == BaStatus::SEQUENCE_NUMBER_OUT_OF_WINDOW;
        match ba.link_layer_id() {
            Some(l) => ats.iter().find(|a| a.mac[..] == *l),
            None if out_of_window && ats.len() == 1 => ats.first(),
            None => ats
                .iter()
                .find(|a| self.entries.get(a).is_some_and(|e| e.seq == ba.seq)),
        }
        .copied()
    }

    pub(super) fn on_pba(&mut self, now: Instant, lma: usize, ba: BindingAck) {
        let out_of_window = ba.status == BaStatus::SEQUENCE_NUMBER_OUT_OF_WINDOW;
        let found = self.pba_attachment(&ba);
        let Some((at, e)) = found.and_then(|a| Some((a, self.entries.get(&a)?))) else {
            return self.on_unmatched_pba(lma, &ba);
        };
        if out_of_window
            && e.lma == lma
            && e.state != State::Active
            && !e.revoking
            && ba.flags & ba_flags::P != 0
        {
            self.resume_sequence(now, at, ba.seq);
            return;
        }
        if e.seq != ba.seq
            || e.lma != lma
            || e.state == State::Active
            || ba.flags & ba_flags::P == 0
        {
            self.counters.pba_seq_mismatch += 1;
            return;
        }
        if !self.echoes_the_pbu(e, &ba) {
            self.on_echo_mismatch(lma, at);
            return;
        }
        if e.state == State::Deregistering {
            // Accepted or not, the subscriber is gone: stop here.
            self.remove_entry(&at);
            self.events.push_back(MagEvent::Deregistered { at });
            return;
        }
        if self.on_redirect(now, at, &ba) {
            return;
        }
        if !ba.status.is_accepted() {
            self.counters.pba_rejected += 1;
            self.on_rejected(now, at, lma, &ba);
            return;
        }
        let lifetime = Duration::from_secs(u64::from(ba.lifetime_secs()));
        let v4 = ba.ipv4_hoa_reply();
        let uplink_key = match ba.gre_key() {
            Some(Some(k)) => k,
            _ => {
                // RFC 5845 §4.2: without the option this LMA does not do
                // GRE keys (send it no GRE Key option again); with status 2
                // (GRE_KEY_OPTION_NOT_REQUIRED) only this session goes
                // without. Our tunnels need keys either way, so the binding
                // it made is no use: deregister it (RFC 5213 §6.9.1.4).
                self.counters.pba_without_gre_key += 1;
                if ba.status != BaStatus::GRE_KEY_OPTION_NOT_REQUIRED {
                    self.lmas[lma].no_gre_key = true;
                }
                self.abandon(now, at, v4.map(|(_, _, a)| a));
                return;
            }
        };
        // RFC 5844 §3.2.3.2: only a successful reply with a real address
        // is a home address; 0.0.0.0 is none (§3.3.2).
        let home_v4 = match v4 {
            Some((0..=127, plen, addr)) if !addr.is_unspecified() => Some((addr, plen)),
            Some((0..=127, ..)) => {
                self.counters.pba_zero_home_address += 1;
                None
            }
            _ => None,
        };
        let hnp = ba
            .hnps()
            .into_iter()
            .next()
            .filter(|(_, p)| !p.is_unspecified())
            .map(|(len, prefix)| Hnp { prefix, len });
        let e = &self.entries[&at];
        if lifetime.is_zero()
            || (e.req.ipv4 && home_v4.is_none() && !e.req.ipv6)
            || (home_v4.is_none() && hnp.is_none())
        {
            self.counters.pba_bad += 1;
            self.abandon(now, at, None);
            return;
        }
        self.counters.pba_accepted += 1;
        self.check_dhcp_mode(lma, &ba, home_v4.is_some());
        let granted = Granted {
            uplink_key,
            home_v4,
            default_router: ba.ipv4_default_router(),
            hnp,
            lifetime,
            expires: now + lifetime,
        };
        let refresh = self.cfg.refresh.min(lifetime * 3 / 4);
        let e = self.entries.get_mut(&at).expect("checked above");
        let changed = match &e.granted {
            Some(g) => {
                g.uplink_key != granted.uplink_key
                    || g.home_v4 != granted.home_v4
                    || g.hnp != granted.hnp
                    || g.default_router != granted.default_router
            }
            None => true,
        };
        e.granted = Some(granted.clone());
        e.last = None;
        e.state = State::Active;
        e.unechoed = false;
        e.retx = 0;
        e.timeout = self.cfg.retx_initial;
        e.handoff = HandoffIndicator::HandoffStateNotChanged;
        if changed {
            if let Some(b) = self.access_binding(&at) {
                self.dp.push_back(DpCommand::InstallAccess(b));
            }
            self.events.push_back(MagEvent::Registered {
                at,
                home_v4: granted.home_v4,
                default_router: granted.default_router,
                hnp: granted.hnp,
                lifetime,
            });
        } else {
            self.events.push_back(MagEvent::Refreshed { at, lifetime });
        }
        self.arm(at, now + refresh);
        // Durable before the subscriber hears of it (the shell writes first).
        self.persist(at);
        self.anchor_answered(now, lma, Some(at));
    }

    /// Whether the PBA's Handoff Indicator and Access Technology Type, when
    /// present, are those of the PBU it answers (RFC 5213 §5.3.6 wants
    /// them copied; MN-ID and link-layer identifier already picked `e`).
    fn echoes_the_pbu(&self, e: &super::Entry, ba: &BindingAck) -> bool {
        let hi = if e.state == State::Deregistering {
            HandoffIndicator::HandoffStateUnknown
        } else {
            e.handoff
        };
        let att = AccessTechType::from(e.req.att.unwrap_or(self.cfg.access_tech_type));
        ba.handoff_indicator().is_none_or(|h| h == hi)
            && ba.access_tech_type().is_none_or(|a| a == att)
    }

    /// RFC 5213 §6.9.1.2 (6): the LMA must echo HI, ATT, MN-ID and the
    /// link-layer identifier as sent; a PBA that does not is ignored, and
    /// the PBU is not sent again "until an administrative action is
    /// taken": a first registration fails (the subscriber's next attach
    /// tries afresh); a binding being refreshed keeps the lifetime it has
    /// and ends with it, with no PBU in between.
    fn on_echo_mismatch(&mut self, lma: usize, at: AccessPoint) {
        self.counters.pba_echo_mismatch += 1;
        tracing::warn!(lma = %self.lmas[lma].cfg.addr, "PBA that does not echo the PBU's Handoff Indicator, Access Technology Type or link-layer identifier: ignored");
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        if e.state != State::Registering {
            return;
        }
        match e.granted.as_ref().map(|g| g.expires) {
            None => self.fail(at, FailReason::BadAck),
            Some(expires) => {
                e.state = State::Active;
                e.unechoed = true;
                self.arm(at, expires);
            }
        }
    }

    /// A PBA that names none of our attachments: one that does not echo a
    /// PBU's link-layer identifier, or for nobody.
    fn on_unmatched_pba(&mut self, lma: usize, ba: &BindingAck) {
        match self.llid_not_echoed(lma, ba) {
            Some(at) if ba.flags & ba_flags::P != 0 => self.on_echo_mismatch(lma, at),
            _ => self.counters.pba_no_binding += 1,
        }
    }

    /// A PBA naming an MN of ours with a link-layer identifier none of its
    /// attachments has: the one whose outstanding PBU has its sequence
    /// number, to be refused as not echoed (RFC 5213 §6.9.1.2 (6)).
    fn llid_not_echoed(&self, lma: usize, ba: &BindingAck) -> Option<AccessPoint> {
        ba.link_layer_id()?;
        let ats = self.by_mn_id.get(ba.mn_id()?)?;
        ats.iter().copied().find(|a| {
            self.entries.get(a).is_some_and(|e| {
                e.state == State::Registering && e.lma == lma && e.seq == ba.seq && !e.revoking
            })
        })
    }

    /// RFC 5844 §3.1.3: without the IPv4 DHCP Support Mode option's S flag
    /// the MAG "MUST function as a DHCP Relay". pmipd's MAG is the DHCP
    /// server of its access links (the design: the LMA has no DHCP server
    /// to relay to, and pmipd's LMA sends S=1), so it serves the address
    /// the LMA assigned all the same; counted, and said once per LMA.
    fn check_dhcp_mode(&mut self, lma: usize, ba: &BindingAck, ipv4: bool) {
        if !ipv4 || ba.ipv4_dhcp_server_mode() == Some(true) {
            return;
        }
        self.counters.pba_dhcp_relay_asked += 1;
        let l = &mut self.lmas[lma];
        if !l.relay_noted {
            l.relay_noted = true;
            tracing::warn!(lma = %l.cfg.addr, "the LMA asks this MAG to relay DHCP (RFC 5844 IPv4 DHCP Support Mode); pmipd serves DHCP itself with the address the LMA assigned");
        }
    }

    /// An accepted PBA we cannot use: the access side hears of the failure
    /// and the LMA of a de-registration, so it keeps no binding nobody uses
    /// (RFC 5213 §6.9.1.4). `home` is the address the LMA gave, for the
    /// de-registration's IPv4 Home Address Request.
    fn abandon(&mut self, now: Instant, at: AccessPoint, home: Option<std::net::Ipv4Addr>) {
        self.counters.abandoned += 1;
        if let Some(e) = self.entries.get_mut(&at) {
            if let Some(a) = home.filter(|a| !a.is_unspecified()) {
                e.req.requested_v4 = Some(a);
            }
        }
        self.events.push_back(MagEvent::RegistrationFailed {
            at,
            reason: FailReason::BadAck,
        });
        self.detach(now, at);
    }

    /// PBA error statuses, one by one (RFC 5213 §6.9.1.2 and the status list).
    /// A refusal of this MAG (154) is not for good: see `outage.rs`.
    /// A 135 (sequence number out of window) for `at`'s PBU, carrying the
    /// LMA's last accepted number `theirs`: the LMA holds a later number
    /// for this binding (ours restarted, or it kept an older binding's), so
    /// go on from it, within the retransmission budget (RFC 6275 §11.7.3,
    /// RFC 5213 §6.9.1.2).
    fn resume_sequence(&mut self, now: Instant, at: AccessPoint, theirs: u16) {
        self.counters.pba_rejected += 1;
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        let dereg = e.state == State::Deregistering;
        e.seq = theirs;
        if e.retx >= self.cfg.max_retx {
            self.fail(
                at,
                FailReason::Rejected(BaStatus::SEQUENCE_NUMBER_OUT_OF_WINDOW),
            );
        } else {
            e.retx += 1;
            self.counters.pbu_retransmitted += 1;
            self.send_pbu(now, at, dereg);
        }
    }

    fn on_rejected(&mut self, now: Instant, at: AccessPoint, lma: usize, ba: &BindingAck) {
        match ba.status {
            // RFC 5213 §6.9.1.2 (9): a clock disagreement (156) is tried
            // again "only after" our clock is synchronised — never to the
            // LMA's Timestamp. The host's NTP does that, not us: the next
            // PBU goes when the retransmission timer says (1 s, 2 s …, a
            // chance for the clock to be set), with our own time then, not
            // at once; the LMA answers, so running out is its refusal.
            BaStatus::TIMESTAMP_MISMATCH => {
                if let Some(e) = self.entries.get_mut(&at) {
                    e.transient = Some(ba.status);
                }
            }
            // §6.9.1.2 (8): an older PBU of ours overtook this one (157):
            // "SHOULD try to register again" — a fresh PBU (new timestamp)
            // right away, within the retry budget.
            BaStatus::TIMESTAMP_LOWER_THAN_PREV_ACCEPTED => {
                let e = self.entries.get_mut(&at).expect("caller checked");
                if e.retx >= self.cfg.max_retx {
                    self.fail(at, FailReason::Rejected(ba.status));
                } else {
                    e.retx += 1;
                    self.counters.pbu_retransmitted += 1;
                    self.send_pbu(now, at, false);
                }
            }
            // Transient at the LMA: keep the retransmission timer running.
            // It answers: if the retransmissions run out, that is its
            // refusal, not an outage (`outage.rs`).
            BaStatus::INSUFFICIENT_RESOURCES | BaStatus::UNSPECIFIED => {
                if let Some(e) = self.entries.get_mut(&at) {
                    e.transient = Some(ba.status);
                }
            }
            // RFC 5844 §3.2.3.2: no IPv6 (172) or IPv4 (170) service for
            // this MN there — no PBU asking for that family "until an
            // administrative action is taken" (the refusal is held for its
            // next attaches, `refusal.rs`): a dual-stack attachment asks
            // again at once for the other family alone; a single-family
            // one has nothing left to ask.
            BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE
            | BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE => {
                self.hold_refusal(now, at, lma, ba.status);
                let v6 = ba.status == BaStatus::NOT_AUTHORIZED_FOR_IPV6_MOBILITY_SERVICE;
                let e = self.entries.get_mut(&at).expect("caller checked");
                if e.req.ipv6 && e.req.ipv4 && e.granted.is_none() {
                    if v6 {
                        e.req.ipv6 = false;
                        self.counters.ipv6_refused_retried_ipv4 += 1;
                    } else {
                        e.req.ipv4 = false;
                        e.req.requested_v4 = None;
                        self.counters.ipv4_refused_retried_ipv6 += 1;
                    }
                    e.retx = 0;
                    self.send_pbu(now, at, false);
                } else {
                    self.fail(at, FailReason::Rejected(ba.status));
                }
            }
            // RFC 5844 §3.2.3.2: not this IPv4 address — the MAG "SHOULD NOT
            // request the same IPv4 address again, but MAY request the local
            // mobility anchor to perform the address assignment" (ALL_ZERO).
            // A new registration asks once more that way when the address
            // was the subscriber's hint (DHCP option 50, RFC 2131 §4.3.1: a
            // client asks for its last address); the anchor decides. Not
            // the source of data from a MAC that moved in (the address it
            // uses: refused, it is not its own) nor a profile's static one.
            BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS => {
                let e = self.entries.get_mut(&at).expect("caller checked");
                if e.granted.is_none() && e.req.requested_v4.is_some() && e.req.v4_hint {
                    e.req.requested_v4 = None;
                    e.req.v4_hint = false;
                    e.retx = 0;
                    self.counters.ipv4_address_refused_retried += 1;
                    self.send_pbu(now, at, false);
                } else {
                    self.fail(at, FailReason::Rejected(ba.status));
                }
            }
            // RFC 5213 §6.9.1.2 (7): proxy registration is not enabled for
            // this MN: no PBU for it "until an administrative action is
            // taken", and service denied.
            BaStatus::PROXY_REG_NOT_ENABLED => {
                self.hold_refusal(now, at, lma, ba.status);
                self.fail(at, FailReason::Rejected(ba.status));
            }
            // The LMA refuses this MAG: stop using it for everyone.
            BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG => {
                if !self.on_refused(now, at, lma) {
                    self.fail(at, FailReason::Rejected(ba.status));
                }
            }
            // Everything else is about this subscriber: give up on it.
            status => self.fail(at, FailReason::Rejected(status)),
        }
    }

    /// Remembers `status` for `at`'s MN at LMA `lma` (`refusal.rs`).
    fn hold_refusal(&mut self, now: Instant, at: AccessPoint, lma: usize, status: BaStatus) {
        let Some(e) = self.entries.get(&at) else {
            return;
        };
        let hold = self.cfg.refusal_hold;
        if self.refusals.record(now, hold, lma, &e.req.mn_id, status) {
            self.counters.refusal_held += 1;
            tracing::info!(
                nai = %String::from_utf8_lossy(&e.req.mn_id),
                lma = %self.lmas[lma].cfg.addr,
                status = status.0,
                hold_s = hold.as_secs(),
                "refused by the LMA: not asked again until cleared (pmipctl clear binding) or the hold ends"
            );
        }
    }

    pub(super) fn on_bri(&mut self, now: Instant, lma: usize, bri: RevocationIndication) {
        self.counters.bri_rx += 1;
        let peer = self.lmas[lma].peer;
        let global = bri.flags & br_flags::G != 0;
        if let Some(status) = revocation_trigger::refusal(bri.trigger, global) {
            // RFC 5846 §6.2.1: an unknown trigger (133), or one that does
            // not fit the BRI's intent (134): nothing is removed.
            self.counters.bri_refused += 1;
            let bra = RevocationAck::answering(&bri, status);
            self.queue(peer, &Message::RevocationAck(bra));
            return;
        }
        if bri.flags & br_flags::V != 0 {
            // RFC 5846 §6.1 V: revoke the IPv4 home address binding alone.
            // An attachment here is one binding for both families: nothing
            // is removed, and the BRA says the function is not supported
            // (the LMA can revoke the whole binding instead).
            self.counters.bri_refused += 1;
            let bra = RevocationAck::answering(&bri, bra_status::FUNCTION_NOT_SUPPORTED);
            self.queue(peer, &Message::RevocationAck(bra));
            return;
        }
        // The MN's attachments through this LMA; the link-layer identifier,
        // when the BRI has one, picks the attachment.
        let llid = bri.link_layer_id();
        // §9.1: with Home Network Prefix options, only the attachments
        // granted one of them.
        let hnps = bri.hnps();
        let node_policy = global && bri.trigger == revocation_trigger::REVOKING_NODE_LOCAL_POLICY;
        let found: Vec<AccessPoint> = if node_policy && bri.mn_id().is_none() {
            Vec::new()
        } else if global {
            // RFC 5846 §9.1 (G): every binding with this LMA, or those the
            // MN-ID names (a wildcard "@realm": the realm's).
            self.global_targets(lma, bri.mn_id())
        } else {
            bri.mn_id()
                .and_then(|id| self.by_mn_id.get(id))
                .map(|v| v.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter(|a| llid.is_none_or(|l| a.mac[..] == *l))
                .filter(|a| self.entries.get(a).is_some_and(|e| e.lma == lma))
                .filter(|a| hnps.is_empty() || self.holds_prefix(a, &hnps))
                .copied()
                .collect()
        };
        if !global && self.check_before_revoking(now, lma, &bri, &found) {
            return;
        }
        self.revoke_found(lma, bri, &found);
    }

    /// Whether the attachment `at` was granted one of `hnps`.
    fn holds_prefix(&self, at: &AccessPoint, hnps: &[(u8, std::net::Ipv6Addr)]) -> bool {
        let e = self.entries.get(at);
        let h = e.and_then(|e| e.granted.as_ref().or(e.last.as_ref())?.hnp);
        h.is_some_and(|h| hnps.iter().any(|&(l, p)| (l, p) == (h.len, h.prefix)))
    }

    /// Removes the attachments a BRI named (`found`) and acknowledges it
    /// (RFC 5846 §9.1).
    pub(super) fn revoke_found(
        &mut self,
        lma: usize,
        bri: RevocationIndication,
        found: &[AccessPoint],
    ) {
        let peer = self.lmas[lma].peer;
        let global = bri.flags & br_flags::G != 0;
        let node_policy = global && bri.trigger == revocation_trigger::REVOKING_NODE_LOCAL_POLICY;
        for at in found {
            let was_dereg = self
                .entries
                .get(at)
                .is_some_and(|e| e.state == State::Deregistering);
            self.remove_entry(at);
            if !was_dereg {
                self.events.push_back(MagEvent::Revoked {
                    at: *at,
                    trigger: bri.trigger,
                });
            }
        }
        let status = if node_policy && found.is_empty() {
            // RFC 5846 §9.1: a global revocation by the LMA's node-local
            // policy names the mobile nodes (MN-ID); without one, or naming
            // none we serve, it is refused with 131 and nothing is revoked.
            self.counters.bri_refused += 1;
            bra_status::MN_IDENTITY_REQUIRED
        } else if !global && bri.mn_id().is_none() {
            // A per-MN revocation that names no MN (RFC 5846 §6.2, 131), as
            // the LMA answers one from a MAG.
            self.counters.bri_refused += 1;
            bra_status::MN_IDENTITY_REQUIRED
        } else if found.is_empty() {
            self.counters.bri_unknown_binding += 1;
            bra_status::BINDING_DOES_NOT_EXIST
        } else {
            bra_status::SUCCESS
        };
        // RFC 5846 §8.2: acknowledge with the BRI's sequence number.
        let bra = RevocationAck::answering(&bri, status);
        self.queue(peer, &Message::RevocationAck(bra));
    }
}
