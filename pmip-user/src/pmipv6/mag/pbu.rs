//! The Proxy Binding Update the MAG sends (RFC 5213 §6.9.1.1, RFC 5844
//! §3.1.1, RFC 5845 §4.1): registration, refresh, re-registration and
//! deregistration, each a new PBU with a fresh sequence number and timestamp.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::super::wire::{
    self, bu_flags, AccessTechType, BindingUpdate, HandoffIndicator, Message, MobilityOption,
};
use super::Mag;
use crate::agent::Peer;
use crate::dataplane::AccessPoint;

impl Mag {
    /// Builds and queues a PBU for `at` with a fresh sequence number and
    /// timestamp (each retransmission is a new PBU, so the LMA's timestamp
    /// check accepts it even if the first one was processed).
    pub(super) fn send_pbu(&mut self, now: Instant, at: AccessPoint, dereg: bool) {
        // Our own clock only, even after a TIMESTAMP_MISMATCH (RFC 5213
        // §6.9.1.2: the MAG does not take the LMA's time).
        let ts = self.clock.timestamp(now).max(self.last_ts.wrapping_add(1));
        self.last_ts = ts;
        let redirect = self.redirect_option(&at, dereg);
        let Some(e) = self.entries.get_mut(&at) else {
            return;
        };
        // Each binding numbers its own PBUs (RFC 6275 §9.5.1 compares them
        // per binding, modulo 2^16): one counter for all would put more
        // than 32 767 other PBUs between two of a subscriber's on a large
        // MAG, and the LMA would take the newer as older.
        e.seq = e.seq.wrapping_add(1);
        let seq = e.seq;
        if e.retx == 0 {
            // A new round: what the LMA said to the last one is history.
            e.transient = None;
        }
        // What the anchor gave us, now or before the binding lapsed: a
        // re-registration asks for the same address and prefix again.
        let held = e.granted.as_ref().or(e.last.as_ref());
        let lma = &self.lmas[e.lma];
        let peer = lma.peer;
        let mut options = vec![MobilityOption::MnId {
            subtype: wire::option::MN_ID_SUBTYPE_NAI,
            id: e.req.mn_id.clone(),
        }];
        // RFC 5213 vs RFC 5844: an IPv4-only subscriber gets no HNP option
        // (RFC 5844 §3.1.1); a dual-stack or IPv6 one asks with ::/0 or
        // renews the prefix it holds.
        if e.req.ipv6 {
            let (prefix_len, prefix) = match held.and_then(|g| g.hnp) {
                Some(h) => (h.len, h.prefix),
                None => (0, Ipv6Addr::UNSPECIFIED),
            };
            options.push(MobilityOption::HomeNetworkPrefix { prefix_len, prefix });
        }
        options.push(MobilityOption::HandoffIndicator(if dereg {
            HandoffIndicator::HandoffStateUnknown
        } else {
            e.handoff
        }));
        options.push(MobilityOption::AccessTechType(AccessTechType::from(
            e.req.att.unwrap_or(self.cfg.access_tech_type),
        )));
        options.push(MobilityOption::MnLinkLayerId(e.req.at.mac.to_vec()));
        if self.cfg.timestamp_based {
            options.push(MobilityOption::Timestamp(ts));
        }
        // RFC 5845 §5.1: the GRE key option SHOULD NOT be in a deregistration,
        // nor in any PBU to an LMA that answered without one (§4.2).
        if !dereg && !lma.no_gre_key {
            options.push(MobilityOption::GreKey(Some(e.downlink_key)));
        }
        if e.req.ipv4 {
            let addr = match (held.and_then(|g| g.home_v4), e.req.requested_v4) {
                (Some((a, _)), _) => a,
                (None, Some(a)) => a,
                (None, None) => Ipv4Addr::UNSPECIFIED,
            };
            let prefix_len = held.and_then(|g| g.home_v4).map_or(0, |(_, l)| l);
            // No IPv4 DHCP Support Mode option: it is the LMA's, in the
            // PBA (RFC 5844 §3.3.4).
            options.push(MobilityOption::Ipv4HoaRequest { prefix_len, addr });
        }
        if let Some(apn) = &e.req.apn {
            options.push(MobilityOption::ServiceSelection(apn.clone()));
        }
        options.extend(redirect);
        if let (Peer::V4(_), Some(v4)) = (peer, self.cfg.local.v4) {
            // RFC 5844 §4: over IPv4 transport the proxy-CoA is an IPv4 address.
            options.push(MobilityOption::Ipv4CareOfAddress(v4));
        }
        let lifetime = if dereg {
            0
        } else {
            let life = crate::store::AaaProfile::bound_lifetime(
                e.aaa.as_deref(),
                self.cfg.lifetime,
                self.clock.wall(now),
            );
            // Units of 4 s (RFC 6275 §6.1.7), rounded up: never shorter than asked.
            life.as_secs().div_ceil(4).clamp(1, u64::from(u16::MAX)) as u16
        };
        let msg = Message::BindingUpdate(BindingUpdate {
            seq,
            flags: bu_flags::A | bu_flags::P,
            lifetime,
            options,
        });
        let deadline = now + e.timeout;
        self.queue(peer, &msg);
        self.counters.pbu_sent += 1;
        self.arm(at, deadline);
    }

    pub(super) fn queue(&mut self, peer: Peer, msg: &Message) {
        crate::pmipv6::rx::queue(&self.cfg.local, &mut self.transmits, peer, msg);
    }
}
