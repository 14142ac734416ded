//! What the engine does with a received frame.
use std::net::Ipv6Addr;
use std::time::Instant;

use super::{Event, RaEngine, State, Sub};
use crate::access::frame6::{self, Error, Frame6, Upper, ALL_NODES};
use crate::access::nd::{validate, NdPacket, NdRepr};

/// Why a frame was dropped: bad or unhandled, or simply not this engine's.
enum Dropped {
    Bad(Error),
    Foreign,
}

impl From<Error> for Dropped {
    fn from(e: Error) -> Self {
        Dropped::Bad(e)
    }
}

impl RaEngine {
    /// A frame received on the access link. Anything but a valid RS, NS or NA
    /// for this engine is counted and dropped (the error says why).
    pub fn handle(&mut self, now: Instant, frame: &[u8]) -> Result<(), Error> {
        self.stats.rx += 1;
        match self.handle_inner(now, frame) {
            Ok(()) => Ok(()),
            Err(Dropped::Foreign) => {
                self.stats.foreign += 1;
                Err(Error::Unsupported)
            }
            Err(Dropped::Bad(e)) => {
                match e {
                    Error::Truncated | Error::Malformed => self.stats.malformed += 1,
                    Error::BadChecksum => self.stats.bad_checksum += 1,
                    Error::Unsupported => self.stats.unsupported += 1,
                }
                Err(e)
            }
        }
    }

    fn handle_inner(&mut self, now: Instant, frame: &[u8]) -> Result<(), Dropped> {
        let f = frame6::parse_frame(frame)?;
        let unicast_to_other = f.dst_mac[0] & 1 == 0 && f.dst_mac != self.cfg.router_mac;
        // Our own frames (or another MAG's, with the same MAC), other VLANs,
        // and unicast between other hosts on a shared link are not ours.
        if f.vlan != self.cfg.vlan || f.src_mac == self.cfg.router_mac || unicast_to_other {
            return Err(Dropped::Foreign);
        }
        if f.src_mac[0] & 1 != 0 {
            return Err(Error::Malformed.into());
        }
        let Upper::Icmpv6(msg) = f.upper else {
            return Err(Error::Unsupported.into());
        };
        let repr = NdRepr::parse(&NdPacket::new_checked(msg)?)?;
        validate(&repr, f.src, f.dst, f.hop_limit)?;
        match repr {
            NdRepr::RouterSolicit { .. } => self.on_rs(now, &f),
            NdRepr::RouterAdvert(_) => self.stats.rogue_ra += 1,
            NdRepr::NeighborSolicit { target, slla } => self.on_ns(now, &f, target, slla),
            NdRepr::NeighborAdvert { target, .. } => {
                self.stats.na_rx += 1;
                self.seen(now, f.src_mac, Some(target));
            }
        }
        // Every branch above touches the sender's node only.
        self.reindex(f.src_mac);
        Ok(())
    }

    fn learn(&mut self, mac: [u8; 6], src: Ipv6Addr) {
        if let Some(s) = self.subs.get_mut(&mac) {
            if frame6::is_link_local(&src) {
                s.addr = Some(src);
            }
        }
    }

    fn on_rs(&mut self, now: Instant, f: &Frame6<'_>) {
        self.stats.rs += 1;
        let mac = f.src_mac;
        let ll = Some(f.src).filter(frame6::is_link_local);
        let min_delay = self.cfg.min_delay;
        match self.subs.get_mut(&mac).map(|s| &mut s.state) {
            Some(State::Advertised(a)) => {
                // Unicast answer right away, but no closer than MIN_DELAY_BETWEEN_RAS
                // to the previous RA (RFC 4861 §6.2.6), so an RS flood costs nothing.
                let earliest = a.last_ra + min_delay;
                if now >= earliest {
                    self.stats.ra_solicited += 1;
                    self.learn(mac, f.src);
                    self.send_ra(now, mac, false);
                } else if a.solicited_at.is_none() {
                    a.solicited_at = Some(earliest);
                    self.learn(mac, f.src);
                }
                self.seen(now, mac, ll);
            }
            Some(State::Pending { until }) if now < *until => self.learn(mac, f.src),
            _ => {
                let until = now + self.cfg.attach_timeout;
                self.insert(mac, Sub::new(State::Pending { until }, ll));
                self.stats.attach_requests += 1;
                self.events.push_back(Event::AttachRequest {
                    at: self.at(mac),
                    link_local: ll,
                });
            }
        }
    }

    fn is_gateway_address(&self, a: &Ipv6Addr) -> bool {
        *a == self.cfg.router_ll || self.cfg.addresses.contains(a)
    }

    fn on_ns(&mut self, now: Instant, f: &Frame6<'_>, target: Ipv6Addr, slla: Option<[u8; 6]>) {
        self.stats.ns += 1;
        if self.subs.contains_key(&f.src_mac) && !f.src.is_unspecified() {
            self.seen(now, f.src_mac, Some(f.src));
        }
        if self.is_gateway_address(&target) {
            if f.src.is_unspecified() {
                // Someone runs DAD for our address: defend it to all-nodes
                // (RFC 4861 §7.2.4), not solicited.
                self.answer_ns(frame6::multicast_mac(ALL_NODES), ALL_NODES, target, false);
            } else {
                self.answer_ns(slla.unwrap_or(f.src_mac), f.src, target, true);
            }
            return;
        }
        let own = self.subs.get(&f.src_mac).is_some_and(|s| match &s.state {
            State::Advertised(a) => {
                frame6::in_prefix(&target, &a.adv.hnp.prefix, a.adv.hnp.len)
                    || frame6::is_link_local(&target)
            }
            State::Pending { .. } => frame6::is_link_local(&target),
        });
        if f.src.is_unspecified() && own {
            // The node's DAD for its own address: silence lets it pass.
            self.stats.dad_passed += 1;
        } else {
            self.stats.ns_ignored += 1;
        }
    }
}
