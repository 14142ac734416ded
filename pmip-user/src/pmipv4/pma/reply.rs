//! What the PMA does with the HA's messages: registration replies (RFC 3344
//! §3.6.2, draft-leung §7, RFC 6245 GRE key) and registration revocations
//! (RFC 3543 §5, acknowledged whatever they name).
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::auth::{self, SecurityAssociation};
use super::super::transport::signed_to;
use super::super::wire::ext::{AuthKind, ExtList};
use super::super::wire::{RegistrationReplyRepr, ReplyCode, RevocationAckRepr, RevocationRepr};
use super::{Phase, Pma, PmaEvent};
use crate::dataplane::{AccessBinding, DpCommand, TunnelEnds};

impl Pma {
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        payload: &[u8],
        r: RegistrationReplyRepr,
    ) {
        let Some(nai) = r.extensions.nai().and_then(|n| std::str::from_utf8(n).ok()) else {
            self.counters.rx_unmatched += 1;
            return;
        };
        let nai = nai.to_string();
        let Some(s) = self.sessions.get(&nai) else {
            self.counters.rx_unmatched += 1;
            return;
        };
        // RFC 3344 §5.7.1: the low-order 32 bits are copied from our request.
        let Some(_pending) = s
            .pending_ident
            .filter(|p| p & 0xffff_ffff == r.identification & 0xffff_ffff)
        else {
            self.counters.rx_unmatched += 1;
            return;
        };
        let phase = s.phase;
        // Unauthenticated replies, denials included, are ignored: retransmission and
        // failover take over (a forged 149/150 must not stop service).
        if self
            .authentic_ha(now, src, payload, "registration reply")
            .is_none()
        {
            return;
        }
        // Per MN (`[[mn_ha]]`): RFC 5944 §3.6.2.1 (b), accepted or denied,
        // "exactly one Mobile-Home Authentication Extension MUST be present
        // ... and the mobile node MUST check the Authenticator"; else the
        // reply is silently discarded and logged as a security exception.
        if let Some(mn) = self.cfg.mn_ha.get(&nai) {
            if auth::verify_mn_ha(payload, mn).is_err() {
                self.counters.rx_auth_failed += 1;
                self.counters.rx_mn_ha_failed += 1;
                self.security_exception(now, src, "registration reply", "MN-HA");
                return;
            }
        }
        let ha = *src.ip();
        if r.code.is_accepted() {
            self.counters.accepted += 1;
            self.on_accepted(now, &nai, ha, r);
            return;
        }
        self.counters.denied += 1;
        match r.code {
            ReplyCode::IdentMismatch => {
                // §5.7.1: adopt the HA's clock from the high-order bits and
                // try again — a second after the request it answers, not at
                // once (§3.6.3: "The minimum time between Registration
                // Requests MUST NOT be less than 1 second").
                self.counters.ident_mismatch_resync += 1;
                let wall = self.wall(now);
                self.idents
                    .entry(ha)
                    .or_default()
                    .resync(r.identification, wall);
                let cap = self
                    .sessions
                    .get(&nai)
                    .map(|s| self.attempt_cap(s))
                    .unwrap_or(0);
                if let Some(s) = self.sessions.get_mut(&nai).filter(|s| s.attempts < cap) {
                    s.next_retx = Some(now + super::MIN_REQUEST_INTERVAL);
                    s.resync_resend = true;
                    self.arm(&nai);
                } else {
                    self.give_up(&nai, phase, Some(r.code));
                }
            }
            ReplyCode::PmipUnsupported | ReplyCode::PmipDisallowed => {
                // Draft §8.1: do not retry with this HA — for a while
                // (`outage.rs`): an operator may fix its configuration.
                self.counters.ha_refused_pmip += 1;
                self.refuse(ha, now);
                let alt = self.sessions.get(&nai).and_then(|s| {
                    (phase == Phase::Registering)
                        .then(|| s.has.iter().position(|h| !self.is_refused(*h, now)))
                        .flatten()
                });
                match alt {
                    Some(i) => {
                        if let Some(s) = self.sessions.get_mut(&nai) {
                            s.ha_idx = i;
                            s.attempts_this_ha = 0;
                        }
                        self.counters.ha_failovers += 1;
                        self.send_request(now, &nai);
                    }
                    None => self.give_up(&nai, phase, Some(r.code)),
                }
            }
            _ if self.on_redirect(now, &nai, &r) => {}
            code => {
                if phase == Phase::Deregistering {
                    self.drop_session(&nai);
                } else {
                    self.give_up(&nai, phase, Some(code));
                }
            }
        }
    }

    fn on_accepted(&mut self, now: Instant, nai: &str, ha: Ipv4Addr, r: RegistrationReplyRepr) {
        let local = self.cfg.address;
        let renew_percent = self.cfg.renew_percent.clamp(1, 100) as u64;
        let Some(s) = self.sessions.get_mut(nai) else {
            return;
        };
        s.pending_ident = None;
        s.next_retx = None;
        if s.phase == Phase::Deregistering {
            self.drop_session(nai);
            return;
        }
        let Some(uplink_key) = r.extensions.gre_key() else {
            // RFC 6245 §4.1: the HA returns the key it wants; without it no
            // GRE tunnel. The binding it made is of no use: deregister it
            // (RFC 3344 §3.6.1.2) rather than leave it at the HA.
            self.counters.rx_missing_gre_key += 1;
            self.counters.abandoned += 1;
            if let Some(b) = s.installed.take() {
                self.dp.push_back(DpCommand::RemoveAccess(b));
            }
            if !r.home_address.is_unspecified() {
                s.home = Some(r.home_address);
            }
            s.phase = Phase::Deregistering;
            s.renew_at = None;
            s.expires_at = None;
            self.events.push_back(PmaEvent::RegistrationFailed {
                nai: nai.to_string(),
                code: Some(ReplyCode::EncapUnavailable),
            });
            self.start_transaction(now, nai);
            return;
        };
        if r.lifetime == 0 && s.phase == Phase::Registered && !r.home_address.is_unspecified() {
            // RFC 5944 §3.4: an accepted reply's Lifetime 0 "indicates that
            // the mobile node has been deregistered", and the FA "MUST
            // delete its visitor list entry" (§3.7.3.2): the renewal ended
            // the binding — not a denial that leaves it to its lifetime.
            if let Some(b) = s.installed.take() {
                self.dp.push_back(DpCommand::RemoveAccess(b));
            }
            self.counters.ended_by_zero_lifetime += 1;
            self.events.push_back(PmaEvent::Expired {
                nai: nai.to_string(),
            });
            self.drop_session(nai);
            return;
        }
        if r.home_address.is_unspecified() || r.lifetime == 0 {
            let phase = s.phase;
            self.give_up(nai, phase, Some(r.code));
            return;
        }
        s.ha_revocation = r.extensions.revocation_support().is_some();
        s.ha_revocation_stamp = r.extensions.revocation_support().map(|(_, t)| t);
        if s.sub.dynamic_ha {
            // RFC 4433: the reply's Home Agent field names the HA that took us.
            s.assigned_ha = Some(
                if r.home_agent.is_unspecified() || r.home_agent.is_broadcast() {
                    ha
                } else {
                    r.home_agent
                },
            );
        }
        let renewal = s.phase == Phase::Registered;
        s.phase = Phase::Registered;
        s.home = Some(r.home_address);
        let b = AccessBinding {
            at: s.sub.at,
            sub_id: s.sub_id,
            tunnel: TunnelEnds {
                local: local.into(),
                remote: s.ha().into(),
            },
            uplink_key,
            downlink_key: s.downlink_key,
            home_v4: Some(r.home_address),
            gateway_v4: None,
            hnp: None,
        };
        if s.installed.as_ref() != Some(&b) {
            s.installed = Some(b.clone());
            self.dp.push_back(DpCommand::InstallAccess(b));
        }
        // RFC 3344 §3.6.2.2: a lifetime longer than we asked for is cut to ours.
        let lifetime = r.lifetime.min(s.requested_lifetime);
        let life = Duration::from_secs(lifetime as u64);
        s.granted = Some(life);
        s.renew_at = Some(now + life * renew_percent as u32 / 100);
        s.expires_at = Some(now + life);
        let (ha, at) = (s.ha(), s.sub.at);
        self.events.push_back(PmaEvent::Registered {
            nai: nai.to_string(),
            home_address: r.home_address,
            lifetime,
            ha,
            renewal,
        });
        self.arm(nai);
        // Durable before the subscriber hears of it (the shell writes first).
        self.persist(nai, at);
        self.anchor_answered(now, ha, nai);
    }

    pub(super) fn on_revocation(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        payload: &[u8],
        r: RevocationRepr,
    ) {
        let Some(sa) = self.authentic_ha(now, src, payload, "registration revocation") else {
            return;
        };
        // RFC 3543 §3.5: a reflection of our own (A clear: from a foreign
        // agent) or a replay (§6.2: older than the newest from that HA by
        // more than the window) is silently discarded.
        if !r.a_bit
            || auth::revocation_replayed(&mut self.last_revocation, *src.ip(), r.revocation_id)
        {
            self.counters.revocations_stale += 1;
            return;
        }
        // §4.2.2.2: the binding is the one the revocation's addresses name
        // — the mobile node's home address, the foreign domain address (our
        // care-of address) and the home domain address (the HA it came
        // from); an NAI extension, when the HA adds one, must name the same
        // binding. Anything else names none of ours (acknowledged all the
        // same, below).
        let ha = *src.ip();
        let names = |s: &super::Session| s.home == Some(r.home_address) && s.ha() == ha;
        let ours = if r.home_domain_address != ha || r.foreign_domain_address != self.cfg.address {
            None
        } else {
            match r.nai() {
                Some(n) => self.sessions.get(&n).filter(|s| names(s)).map(|_| n),
                None => self
                    .sessions
                    .iter()
                    .find(|(_, s)| names(s))
                    .map(|(n, _)| n.clone()),
            }
        };
        if let Some(nai) = ours {
            // §4.2.2.2: only a registration that precedes the revocation is
            // revoked (both timestamps are the HA's); the HA's
            // retransmission carries a later identifier.
            let stamp = self.sessions.get(&nai).and_then(|s| s.ha_revocation_stamp);
            if !auth::revocation_follows(stamp, r.revocation_id) {
                self.counters.revocations_stale += 1;
                return;
            }
            if let Some(b) = self.sessions.get_mut(&nai).and_then(|s| s.installed.take()) {
                self.dp.push_back(DpCommand::RemoveAccess(b));
            }
            self.counters.revocations += 1;
            self.events
                .push_back(PmaEvent::Revoked { nai: nai.clone() });
            self.drop_session(&nai);
        }
        // Acknowledged, even for a binding we do not hold (revoked already,
        // our ack lost), so the HA stops retransmitting.
        let ack = RevocationAckRepr {
            i_bit: false,
            home_address: r.home_address,
            revocation_id: r.revocation_id,
            extensions: vec![],
        }
        .to_bytes();
        // To the port the revocation came from (the HA's 434 as a rule).
        self.tx.push_back(signed_to(ack, &sa, src));
    }
}

impl Pma {
    /// RFC 3344 §3.7.3.1: a reply that fails FA-HA authentication is a
    /// security exception — counted always, logged at most once a second
    /// (a flood of forgeries must not flood the log).
    /// The association of the HA `payload` comes from, if it is one of ours
    /// and the FA-HA authenticator is valid; if not, counted (and logged, as `what`).
    pub(super) fn authentic_ha(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        payload: &[u8],
        what: &str,
    ) -> Option<SecurityAssociation> {
        let Some(peer) = self.cfg.home_agents.iter().find(|p| p.address == *src.ip()) else {
            self.counters.rx_unknown_peer += 1;
            return None;
        };
        // The association it was signed with signs our answer.
        match auth::verify_with(payload, AuthKind::FaHa, &peer.sa) {
            Ok(spi) => peer.sa.by_spi(spi).cloned(),
            Err(_) => {
                self.counters.rx_auth_failed += 1;
                self.security_exception(now, src, what, "FA-HA");
                None
            }
        }
    }

    pub(super) fn security_exception(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        what: &str,
        extension: &str,
    ) {
        let quiet = self
            .last_security_log
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        if quiet {
            return;
        }
        self.last_security_log = Some(now);
        self.counters.security_exceptions_logged += 1;
        tracing::warn!(
            peer = %src,
            what,
            extension,
            failed = self.counters.rx_auth_failed,
            "security exception: authentication failed (RFC 3344 §3.6.2.1, §3.7.3.1); discarded"
        );
    }
}
