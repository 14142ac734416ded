//! A lease that runs out while its subscriber is still sending.
//!
//! RFC 2131 §4.4.5 has a client stop using its address when its lease
//! expires, but stock clients do not all keep to the lease they are given:
//! busybox udhcpc raises a lease under 30 s to 30 s and renews at half of
//! that (under 122 s to 122 s before 1.34; dhcpcd's floor is 20 s), so with
//! a 12 s lease its renewal comes 15 s after the ACK, when the lease has
//! ended here. Ending it deregisters a subscriber that is still there: its
//! traffic is lost until the fast path reports its MAC and it is registered
//! again (and a PMIPv4 anchor may then give it another address).
//!
//! So, with `hold_while_sending`, the server reads the subscriber's uplink
//! packet count from the data plane when the lease ends and again when the
//! grace is over. A count that grew means the subscriber is still using its
//! address: the lease is given again for a lifetime instead of ending (the
//! server may keep a lease past its end; RFC 2131 §4.4.5 binds the client,
//! and the gateway registers any MAC that sends data anyway). A subscriber
//! that sent nothing over the grace (gone, or silent), or whose count is
//! unknown, ends as before.
use std::time::Instant;

use super::{Client, DhcpServer};
use crate::dataplane::AccessPoint;

/// The uplink packet count read at the lease end (None: unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sent(Option<u64>);

impl DhcpServer {
    /// Turns holding on or off (the shell does, when it can read the counts).
    pub(crate) fn set_hold_while_sending(&mut self, on: bool) {
        self.cfg.hold_while_sending = on;
        self.reindex_all();
    }

    /// When a client holding a lease that ends at `end` needs the timer:
    /// at the end to read the count (when holding), else at the grace's end.
    pub(super) fn lease_deadline(&self, c: &Client, end: Instant) -> Instant {
        if self.cfg.hold_while_sending && c.at_end.is_none() {
            end
        } else {
            end + self.cfg.lease_grace
        }
    }

    /// Reads the count of every lease that has ended and has not been read.
    pub(super) fn mark_lease_ends(
        &mut self,
        now: Instant,
        sent: &dyn Fn(&AccessPoint) -> Option<u64>,
    ) {
        if !self.cfg.hold_while_sending {
            return;
        }
        let (ifindex, vlan) = (self.cfg.ifindex, self.cfg.vlan);
        for (mac, c) in self.clients.iter_mut() {
            if c.at_end.is_none() && c.lease_end.is_some_and(|l| now >= l) {
                let at = AccessPoint {
                    ifindex,
                    vlan,
                    mac: *mac,
                };
                c.at_end = Some(Sent(sent(&at)));
            }
        }
    }

    /// The grace after `mac`'s lease is over: if the subscriber sent since
    /// the lease ended, the lease is given again and true returned.
    pub(super) fn hold_if_sending(
        &mut self,
        now: Instant,
        mac: &[u8; 6],
        sent: &dyn Fn(&AccessPoint) -> Option<u64>,
    ) -> bool {
        if !self.cfg.hold_while_sending {
            return false;
        }
        let at = self.at(*mac);
        let Some(c) = self.clients.get_mut(mac) else {
            return false;
        };
        let (Some(Sent(Some(before))), Some(b)) = (c.at_end, c.binding.as_ref()) else {
            return false;
        };
        let still_sending = sent(&at).is_some_and(|n| n > before);
        if !still_sending {
            return false;
        }
        c.lease_end = Some(now + b.lifetime);
        c.at_end = None;
        self.stats.leases_held += 1;
        tracing::info!(
            mac = %crate::access::frame::mac_colon(mac),
            "lease ran out while the subscriber was still sending: given again (its client renews late)"
        );
        true
    }
}
