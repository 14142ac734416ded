//! Building and queueing the server's messages.
use std::time::Instant;

use dhcproto::v6::{DhcpOption, Message, MessageType, Status};
use dhcproto::Encodable;

use super::{has_rapid_commit, ia_options, status, Binding6, Dhcp6Server, Peer, Transmit};

impl Dhcp6Server {
    /// Answers a Solicit (Advertise, or Reply with Rapid Commit) or a
    /// Request/Renew/Rebind (Reply) with the binding.
    pub(super) fn answer(&mut self, now: Instant, from: Peer, msg: &Message, b: &Binding6) {
        let solicit = msg.msg_type() == MessageType::Solicit;
        let rapid = solicit && self.cfg.rapid_commit && has_rapid_commit(msg);
        let kind = if solicit && !rapid {
            MessageType::Advertise
        } else {
            MessageType::Reply
        };
        let mut r = self.reply_header(kind, msg);
        let o = r.opts_mut();
        for ia in ia_options(msg, b, b.lifetime) {
            o.insert(ia);
        }
        if !b.dns.is_empty() {
            o.insert(DhcpOption::DomainNameServers(b.dns.clone()));
        }
        if kind == MessageType::Advertise {
            // §18.2.1: 255 lets the client go ahead without waiting for others.
            o.insert(DhcpOption::Preference(255));
            self.stats.advertises += 1;
        } else {
            if rapid {
                o.insert(DhcpOption::RapidCommit);
            }
            if let Some(c) = self.clients.get_mut(&from.mac) {
                c.lease_end = Some(now + b.lifetime);
                c.abandon_at = None;
            }
        }
        self.push(from, &r);
    }

    /// A Reply with only a status code (Release, Decline, Confirm).
    pub(super) fn reply_status(&mut self, from: Peer, msg: &Message, code: Status, text: &str) {
        let mut r = self.reply_header(MessageType::Reply, msg);
        r.opts_mut().insert(status(code, text));
        self.push(from, &r);
    }

    /// Same transaction id, the client's identifier echoed, ours added (§16).
    pub(super) fn reply_header(&self, kind: MessageType, msg: &Message) -> Message {
        let mut r = Message::new_with_id(kind, msg.xid());
        let o = r.opts_mut();
        if let Some(id) = super::client_id(msg) {
            o.insert(DhcpOption::ClientId(id.to_vec()));
        }
        o.insert(DhcpOption::ServerId(self.cfg.server_duid.clone()));
        r
    }

    pub(super) fn push(&mut self, to: Peer, m: &Message) {
        match m.to_vec() {
            Ok(payload) => {
                if m.msg_type() == MessageType::Reply {
                    self.stats.replies += 1;
                }
                self.transmits.push_back(Transmit { to, payload });
            }
            Err(e) => tracing::error!("encoding DHCPv6 reply: {e}"),
        }
    }
}
