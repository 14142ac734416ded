//! The Proxy Binding Acknowledgement the LMA answers a PBU with (RFC 5213
//! §5.3.6, RFC 5844 §3.1.2.6 and §3.3.2–3.3.3): the options echoed from the
//! PBU, those of the binding, and those a rejection still owes the MAG.
use std::net::Ipv4Addr;

use super::super::wire::{
    self, ba_flags, option::hoa_status, BaStatus, BindingAck, BindingUpdate, Message,
    MobilityOption, OptionsExt,
};
use super::{Lma, Reply};
use crate::agent::Peer;

impl Lma {
    /// Builds and queues the PBA for `bu` from the outcome of its processing.
    pub(super) fn send_pba(&mut self, peer: Peer, bu: &BindingUpdate, reply: Reply) {
        // RFC 5213 §5.3.6: the PBA echoes the identifying options of the PBU.
        let mut options = Vec::with_capacity(10);
        if let Some(id) = bu.mn_id() {
            options.push(MobilityOption::MnId {
                subtype: wire::option::MN_ID_SUBTYPE_NAI,
                id: id.to_vec(),
            });
        }
        for o in &bu.options {
            match o {
                MobilityOption::HandoffIndicator(_)
                | MobilityOption::AccessTechType(_)
                | MobilityOption::MnLinkLayerId(_)
                | MobilityOption::LinkLocalAddress(_) => options.push(o.clone()),
                _ => {}
            }
        }
        // Only a PBU ordered by its Timestamp gets it back; TIMESTAMP_MISMATCH
        // carries our clock instead (in `extra`), and the sequence-number
        // scheme none at all (§5.5).
        if reply.echo_ts && reply.status != BaStatus::TIMESTAMP_MISMATCH {
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
    }

    /// The home network prefix, IPv4 home address and default router of
    /// binding `id`, as an accepting or de-registration PBA carries them
    /// (RFC 5213 §5.3.6, RFC 5844 §3.1.2.6).
    pub(super) fn binding_options(&self, id: u32) -> Vec<MobilityOption> {
        let Some(b) = self.bces.get(&id) else {
            return Vec::new();
        };
        let mut v = Vec::with_capacity(3);
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
    pub(super) fn v4_reply(&self, status: u8, plen: u8, addr: Ipv4Addr) -> Vec<MobilityOption> {
        let mut v = vec![MobilityOption::Ipv4HoaReply {
            status,
            prefix_len: plen,
            addr,
        }];
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

/// What a rejecting PBA owes the request: the IPv4 Home Address Reply with
/// an error status for an IPv4 request (RFC 5844 §3.1.2.6) and the PBU's
/// Home Network Prefix options (RFC 5213 §5.3.6).
fn rejection_echo(bu: &BindingUpdate, status: BaStatus) -> Vec<MobilityOption> {
    let mut v: Vec<MobilityOption> = bu
        .hnps()
        .into_iter()
        .map(|(prefix_len, prefix)| MobilityOption::HomeNetworkPrefix { prefix_len, prefix })
        .collect();
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
fn hoa_reject_status(s: BaStatus) -> u8 {
    match s {
        BaStatus::NOT_AUTHORIZED_FOR_IPV4_HOME_ADDRESS => hoa_status::INCORRECT_IPV4_HOA,
        BaStatus::NOT_AUTHORIZED_FOR_IPV4_MOBILITY_SERVICE
        | BaStatus::MULTIPLE_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_SUPPORTED
        | BaStatus::MAG_NOT_AUTHORIZED_FOR_PROXY_REG
        | BaStatus::PROXY_REG_NOT_ENABLED => hoa_status::ADMIN_PROHIBITED,
        BaStatus::INSUFFICIENT_RESOURCES => hoa_status::DYNAMIC_IPV4_HOA_NOT_AVAILABLE,
        _ => hoa_status::FAILURE_UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_statuses_map_to_hoa_failures() {
        for s in [128u8, 129, 130, 156, 163, 170, 171, 173] {
            assert!(hoa_reject_status(BaStatus(s)) >= 128, "status {s}");
        }
    }
}
