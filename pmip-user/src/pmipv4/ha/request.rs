//! Proxy Registration Request processing at the HA (RFC 3344 §3.8 with
//! draft-leung §8; the order of checks is in the module docs of [`super`]).
use std::cmp::Reverse;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::auth::{self, SecurityAssociation};
use super::super::wire::ext::{AuthKind, AuthMethod, ExtList, ExtRepr};
use super::super::wire::registration::RegistrationRequest;
use super::super::wire::{RegistrationReplyRepr, RegistrationRequestRepr, ReplyCode, RrqFlags};
use super::authenticate::Authentication;
use super::{Binding, Ha, HaEvent, PmaPeer, Refusal, TimerKey};
use crate::agent::{Peer, Transmit};
use crate::dataplane::{AnchorBinding, DpCommand, TunnelEnds};

/// Where a reply goes and what it answers.
pub(super) struct ReplyTo<'a> {
    pub src: SocketAddrV4,
    pub sa: &'a SecurityAssociation,
    /// A per-MN request's association with the mobile node: the reply
    /// carries an MN-HA extension made with it (`authenticate.rs`).
    pub mn: Option<&'a SecurityAssociation>,
    /// The request carried the Per-Node Authentication Method extension:
    /// the reply does too (draft §5.1). A PMA that sends none (StarOS
    /// style, `authenticate.rs`) may not know the extension, and type 47
    /// is not skippable (RFC 5944 §1.8: it would discard the reply).
    pub method: bool,
    pub ident: u64,
    pub now_ntp: u64,
}

/// A request that passed the checks of `check`.
struct Checked {
    nai: String,
    pma: Ipv4Addr,
    /// The PMA's association's timestamp tolerance (s).
    tolerance_s: u32,
}

/// What a registration grants.
struct Grant {
    downlink_key: u32,
    lifetime: u16,
    expires_at: Instant,
    gen: u64,
    tunnel: TunnelEnds,
    revocable: bool,
    /// The timestamp of the request's Revocation Support extension.
    revocation_stamp: Option<u32>,
}

impl Ha {
    fn count_refusal(&mut self, code: ReplyCode) {
        let c = &mut self.counters;
        match code {
            ReplyCode::PoorlyFormed => c.poorly_formed += 1,
            ReplyCode::PmipUnsupported => c.pmip_unsupported += 1,
            ReplyCode::PmipDisallowed => c.pmip_disallowed += 1,
            ReplyCode::UnknownHa => c.unknown_ha_address += 1,
            ReplyCode::EncapUnavailable => c.encapsulation_unavailable += 1,
            ReplyCode::AdminProhibited => c.admin_prohibited += 1,
            ReplyCode::InsufficientResources => c.insufficient_resources += 1,
            _ => {}
        }
    }

    /// Sends a reply, FA-HA authenticated with the peer's association;
    /// per MN, MN-HA authenticated with the mobile node's before it (RFC
    /// 3344 §3.5.2: "each Registration Reply MUST contain" it).
    pub(super) fn reply(
        &mut self,
        to: &ReplyTo,
        code: ReplyCode,
        (lifetime, home): (u16, Ipv4Addr),
        mut exts: Vec<ExtRepr>,
    ) {
        // RFC 3344 §5.7.1: low-order 32 bits copied; on 133 the high-order 32 are ours.
        let identification = if code == ReplyCode::IdentMismatch {
            (to.now_ntp & 0xffff_ffff_0000_0000) | (to.ident & 0xffff_ffff)
        } else {
            to.ident
        };
        // Draft §5.1: the method extension is in the reply when the
        // association is per node — when the request had it.
        if to.mn.is_none() && to.method {
            exts.push(ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa));
        }
        let auths = if to.mn.is_some() { 2 } else { 1 };
        // Per MN, the extensions for the FA (the GRE Key, Revocation
        // Support) go after the MN-HA extension, before the FA-HA one (RFC
        // 5944 §3.8.3.3 (d); RFC 6245 §4.1). Per node (no allocation), in
        // place.
        let mut for_fa = Vec::new();
        if to.mn.is_some() {
            let fa =
                |e: &ExtRepr| matches!(e, ExtRepr::GreKey(_) | ExtRepr::RevocationSupport { .. });
            (for_fa, exts) = exts.into_iter().partition(fa);
        }
        let mut payload = RegistrationReplyRepr {
            code,
            lifetime,
            home_address: home,
            home_agent: self.cfg.address,
            identification,
            extensions: exts,
        }
        .to_bytes_with_room(auths * auth::AUTH_EXT_LEN);
        if let Some(mn) = to.mn {
            auth::append_auth(&mut payload, AuthKind::MnHa, mn);
            super::super::wire::ext::append_all(&for_fa, &mut payload);
        }
        auth::append_auth(&mut payload, AuthKind::FaHa, to.sa);
        self.tx.push_back(Transmit::new(Peer::V4(to.src), payload));
    }

    pub(super) fn on_request(&mut self, now: Instant, src: SocketAddrV4, payload: &[u8]) {
        self.counters.requests += 1;
        let Some(peer) = self.peers.get(src.ip()).cloned() else {
            self.counters.rx_unknown_peer += 1;
            return;
        };
        // The fixed part is enough to answer "poorly formed" (we can echo the Identification).
        let Ok(fixed) = RegistrationRequest::new_checked(payload) else {
            self.counters.rx_malformed += 1;
            return;
        };
        let (ident, hoa) = (fixed.identification(), fixed.home_address());
        let mut to = ReplyTo {
            src,
            sa: &peer.sa,
            mn: None,
            method: false,
            ident,
            now_ntp: self.clock.ntp(now),
        };
        let rrq = match RegistrationRequestRepr::parse(&fixed) {
            Ok(r) => r,
            Err(_) => {
                self.counters.rx_malformed += 1;
                self.count_refusal(ReplyCode::PoorlyFormed);
                self.reply(&to, ReplyCode::PoorlyFormed, (0, hoa), vec![]);
                return;
            }
        };
        // RFC 3344 §1.8 (RFC 5944 the same): an extension 0–127 we do not
        // know — "the message containing that Extension MUST be silently
        // discarded" (no 134).
        if rrq.extensions.first_unknown_nonskippable().is_some() {
            self.counters.unknown_nonskippable += 1;
            return;
        }
        // A refusal echoes the NAI (made only for one: an accepted request's
        // reply gets it from `process`).
        let nai_ext = || -> Vec<ExtRepr> {
            let nai = rrq.extensions.nai();
            nai.map(|n| ExtRepr::Nai(n.to_vec())).into_iter().collect()
        };
        to.method = rrq.extensions.per_node_auth_method().is_some();
        // Answered with the PMA's association the request named (during a
        // key rollover the PMA may still be on the one we also accept).
        to.sa = peer
            .sa
            .answering(rrq.extensions.auth(AuthKind::FaHa).map(|(spi, _)| spi));
        // FA-HA per node, or MN-HA per MN (`authenticate.rs`): 131, 132.
        let mn = match self.authenticate(payload, &rrq, &peer) {
            Authentication::Passed(mn) => mn,
            Authentication::Refused(code, mn) => {
                to.mn = mn.as_ref().map(|m| m.sa());
                self.reply(&to, code, (0, hoa), nai_ext());
                return;
            }
        };
        to.mn = mn.as_ref().map(|m| m.sa());
        // RFC 4433 §5.3: a redirect is for a request that passed every
        // check (authentication, Identification, HA field): 143 with the
        // Redirected HA extension, and our address in the HA field.
        let result = match self.check(now, src, &peer, &rrq) {
            Ok(c) => match self.redirect(now, &rrq) {
                Some(exts) => {
                    self.reply(
                        &to,
                        ReplyCode::RedirectHa,
                        (0, hoa),
                        [nai_ext(), exts].concat(),
                    );
                    return;
                }
                None => self.process(now, c, &rrq),
            },
            Err(r) => Err(r),
        };
        let created = self.unconfirmed.take_created();
        match result {
            Ok((lifetime, home, exts)) => {
                let queued = self.tx.len();
                // RFC 3344 §3.4: S asks us to keep the other bindings of the
                // home address; we keep one binding per NAI (a new care-of
                // address replaces the old), so an accepted S is answered 1.
                let code = if rrq.flags.has(RrqFlags::S) && rrq.lifetime != 0 {
                    ReplyCode::AcceptedNoSimultaneous
                } else {
                    ReplyCode::Accepted
                };
                self.reply(&to, code, (lifetime, home), exts);
                // A new binding: held until its record is written, with
                // what its refusal is made of (first_write.rs).
                // (A copy of the answer only for a new binding: a renewal's
                // is not held, and copying it costs an allocation.)
                if let Some((nai, accept)) = created.zip(self.tx.back()) {
                    let accept = accept.clone();
                    if self.tx.len() == queued + 1 {
                        let r = (
                            src,
                            ident,
                            to.now_ntp,
                            hoa,
                            mn.clone(),
                            to.sa.spi,
                            to.method,
                        );
                        self.unconfirmed.hold(nai, accept, r);
                    }
                }
            }
            Err(Refusal(code)) => {
                self.count_refusal(code);
                self.reply(&to, code, (0, hoa), nai_ext())
            }
        }
    }

    /// Returns (granted lifetime, home address, reply extensions) or the refusal code.
    fn process(
        &mut self,
        now: Instant,
        c: Checked,
        rrq: &RegistrationRequestRepr,
    ) -> Result<(u16, Ipv4Addr, Vec<ExtRepr>), Refusal> {
        let nai_ext = ExtRepr::Nai(c.nai.as_bytes().to_vec());
        if rrq.lifetime == 0 {
            let held = self.bindings.get(&c.nai).map(|b| b.anchor.uplink_key);
            let (life, home, mut exts) = self.deregister(now, &c, rrq, nai_ext);
            // RFC 6245 §4.2: a reply to a request with a GRE Key carries one,
            // de-registration included: the key the binding had, else theirs.
            if let Some(k) = rrq.extensions.gre_key() {
                exts.push(ExtRepr::GreKey(held.unwrap_or(k)));
            }
            return Ok((life, home, exts));
        }
        // RFC 6245 §4.2: a GRE Key extension without the G bit "SHOULD"
        // be taken as if G were set (an FA adds GRE by its own policy and
        // "MUST NOT modify the 'G' bit", §4.1). No key: no tunnel we do
        // (G without one included), 139. Key 0 asks us to assign the keys
        // of both directions (`create`).
        let Some(downlink_key) = rrq.extensions.gre_key() else {
            return Err(Refusal(ReplyCode::EncapUnavailable));
        };
        let lifetime = rrq.lifetime.min(self.cfg.max_lifetime_s);
        self.gen += 1;
        let g = Grant {
            downlink_key,
            lifetime,
            expires_at: now + Duration::from_secs(lifetime as u64),
            gen: self.gen,
            tunnel: TunnelEnds {
                local: self.cfg.address.into(),
                remote: rrq.care_of_address.into(),
            },
            revocable: self.cfg.revocation && rrq.extensions.revocation_support().is_some(),
            revocation_stamp: rrq.extensions.revocation_support().map(|(_, t)| t),
        };
        let (home, uplink_key) = if self.bindings.contains_key(&c.nai) {
            self.renew(now, &c, rrq, &g)?
        } else {
            self.create(now, &c, rrq, &g)?
        };
        let mut exts = Vec::with_capacity(3);
        exts.extend([nai_ext, ExtRepr::GreKey(uplink_key)]);
        // RFC 3543 §3.2: the extension in the reply says we support
        // revocation; with it off (`revocation`) we say nothing, so the PMA
        // neither waits for our revocations nor sends us its own.
        if let Some((i_bit, _)) = rrq
            .extensions
            .revocation_support()
            .filter(|_| self.cfg.revocation)
        {
            exts.push(ExtRepr::RevocationSupport {
                i_bit,
                timestamp: auth::ntp_seconds(self.clock.ntp(now)),
            });
        }
        self.timers
            .push(Reverse((g.expires_at, TimerKey::Binding(c.nai, g.gen))));
        Ok((lifetime, home, exts))
    }

    /// Steps 1–5 of the module docs that follow authentication.
    fn check(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        peer: &PmaPeer,
        rrq: &RegistrationRequestRepr,
    ) -> Result<Checked, Refusal> {
        if !self.cfg.proxy_mip {
            return Err(Refusal(ReplyCode::PmipUnsupported));
        }
        if !peer.proxy_allowed {
            return Err(Refusal(ReplyCode::PmipDisallowed));
        }
        if matches!(rrq.extensions.per_node_auth_method(), Some(m) if m != AuthMethod::FaHa) {
            // We only do per-node FA-HA authentication (draft §5.1).
            return Err(Refusal(ReplyCode::PmipUnsupported));
        }
        let Some(nai) = rrq
            .extensions
            .nai()
            .and_then(|n| std::str::from_utf8(n).ok())
        else {
            self.counters.missing_nai += 1;
            return Err(Refusal(ReplyCode::PoorlyFormed));
        };
        let nai = nai.to_string();
        // Replay protection and §8.1 sequencing across PMAs: one Identification history per NAI.
        let tolerance_s = peer.sa.timestamp_tolerance_s;
        if !auth::within_tolerance(rrq.identification, self.clock.wall(now), tolerance_s) {
            self.counters.ident_out_of_tolerance += 1;
            return Err(Refusal(ReplyCode::IdentMismatch));
        }
        // RFC 3344 §5.7.1 wants a strictly newer timestamp from the same sender; draft §8.1
        // accepts an equal one when it comes from another PMA (two PMAs, one clock tick).
        let pma = *src.ip();
        let last = self
            .bindings
            .get(&nai)
            .map(|b| (b.last_ident, b.pma))
            .or_else(|| {
                self.tombstones
                    .get(&nai)
                    .filter(|(_, until)| *until > now)
                    .map(|(i, _)| (*i, pma))
            });
        if last.is_some_and(|(l, from)| {
            rrq.identification < l || (rrq.identification == l && from == pma)
        }) {
            self.counters.ident_replayed += 1;
            return Err(Refusal(ReplyCode::IdentMismatch));
        }
        // RFC 4433 §3.2: 0.0.0.0 or 255.255.255.255 asks for dynamic assignment.
        let ha = rrq.home_agent;
        if !(ha == self.cfg.address || ha.is_unspecified() || ha.is_broadcast()) {
            return Err(Refusal(ReplyCode::UnknownHa));
        }
        // RFC 4433 §5.3: the Requested HA extension names where the request
        // was sent; "if it does not match, the Requested HA MUST reject the
        // Registration Request with error code 136".
        if rrq
            .extensions
            .requested_ha()
            .is_some_and(|r| r != self.cfg.address)
        {
            return Err(Refusal(ReplyCode::UnknownHa));
        }
        Ok(Checked {
            nai,
            pma,
            tolerance_s,
        })
    }

    /// Renewal, or handover to a new PMA: one `InstallAnchor` replaces the
    /// tunnel (same uplink key) and the old PMA gets a revocation.
    fn renew(
        &mut self,
        now: Instant,
        c: &Checked,
        rrq: &RegistrationRequestRepr,
        g: &Grant,
    ) -> Result<(Ipv4Addr, u32), Refusal> {
        let b = self.bindings.get_mut(&c.nai).expect("caller checked");
        let req = rrq.home_address;
        if !(req.is_unspecified() || req.is_broadcast() || req == b.home) {
            return Err(Refusal(ReplyCode::AdminProhibited));
        }
        let home = b.home;
        b.last_ident = rrq.identification;
        // The old PMA's registration lived until then (no revocation to it after).
        let old_until = b.expires_at;
        b.expires_at = g.expires_at;
        b.lifetime_s = g.lifetime;
        b.gen = g.gen;
        let old_pma = b.pma;
        let old_revocable = b.revocable;
        b.revocable = g.revocable;
        b.revocation_stamp = g.revocation_stamp;
        let new = AnchorBinding {
            tunnel: g.tunnel,
            // Key 0 (RFC 6245 §4.2): the keys stay the ones we assigned.
            downlink_key: match g.downlink_key {
                0 => b.anchor.downlink_key,
                k => k,
            },
            ..b.anchor.clone()
        };
        if new != b.anchor {
            // One map update: the entry keyed by the uplink key is replaced in place.
            b.anchor = new.clone();
            self.dp.push_back(DpCommand::InstallAnchor(new));
        }
        let uplink_key = b.anchor.uplink_key;
        if old_pma != c.pma {
            b.pma = c.pma;
            self.counters.handovers += 1;
            self.events.push_back(HaEvent::Handover {
                nai: c.nai.clone(),
                from: old_pma,
                to: c.pma,
            });
            if old_revocable {
                self.send_revocation(now, (old_pma, home), &c.nai, old_until);
            }
        } else {
            self.counters.renewals += 1;
        }
        self.persist(&c.nai);
        Ok((home, uplink_key))
    }

    /// A new binding: home address, uplink key, counters index, map entries.
    fn create(
        &mut self,
        now: Instant,
        c: &Checked,
        rrq: &RegistrationRequestRepr,
        g: &Grant,
    ) -> Result<(Ipv4Addr, u32), Refusal> {
        let (home, from_pool) = self.assign_home(now, &c.nai, rrq.home_address)?;
        let Some(uplink_key) = self.keys.alloc() else {
            self.release_home(home, from_pool);
            return Err(Refusal(ReplyCode::InsufficientResources));
        };
        let Some(sub_id) = self.sub_ids.alloc() else {
            self.keys.release(uplink_key);
            self.release_home(home, from_pool);
            return Err(Refusal(ReplyCode::InsufficientResources));
        };
        let anchor = AnchorBinding {
            sub_id,
            tunnel: g.tunnel,
            uplink_key,
            // RFC 6245 §4.2: key 0 — "the HA MUST assign GRE keys for both
            // directions" and the reply's GRE Key extension carries them:
            // the one we assign, both ways.
            downlink_key: match g.downlink_key {
                0 => uplink_key,
                k => k,
            },
            home_v4: Some(home),
            hnp: None,
        };
        self.dp.push_back(DpCommand::InstallAnchor(anchor.clone()));
        self.bindings.insert(
            c.nai.clone(),
            Binding {
                home,
                from_pool,
                pma: c.pma,
                anchor,
                last_ident: rrq.identification,
                expires_at: g.expires_at,
                lifetime_s: g.lifetime,
                gen: g.gen,
                revocable: g.revocable,
                revocation_stamp: g.revocation_stamp,
            },
        );
        self.tombstones.remove(&c.nai);
        self.counters.registrations += 1;
        self.unconfirmed.created(c.nai.clone());
        self.events.push_back(HaEvent::Registered {
            nai: c.nai.clone(),
            home_address: home,
            pma: c.pma,
        });
        self.persist(&c.nai);
        Ok((home, uplink_key))
    }

    fn deregister(
        &mut self,
        now: Instant,
        c: &Checked,
        rrq: &RegistrationRequestRepr,
        nai_ext: ExtRepr,
    ) -> (u16, Ipv4Addr, Vec<ExtRepr>) {
        let nai = &c.nai;
        let home = match self.bindings.get_mut(nai) {
            // RFC 3344 §3.8.3: only the registered care-of address is removed; a late
            // deregistration from the old PMA after a handover must not tear down the new one.
            Some(b) if b.pma == c.pma => {
                let home = b.home;
                self.remove_binding(nai);
                let until = now + Duration::from_secs(c.tolerance_s as u64 + 1);
                self.tombstones
                    .insert(nai.to_string(), (rrq.identification, until));
                self.counters.deregistrations += 1;
                self.events.push_back(HaEvent::Deregistered {
                    nai: nai.to_string(),
                });
                home
            }
            Some(b) => {
                b.last_ident = rrq.identification;
                b.home
            }
            None => rrq.home_address,
        };
        (0, home, vec![nai_ext])
    }
}
