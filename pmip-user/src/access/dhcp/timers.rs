//! The server's timers: every client's next deadline in an ordered index
//! (`DhcpServer::timers`), so that `poll_timeout` reads the first entry and
//! a timeout pass re-indexes only the clients that were due.
use std::time::Instant;

use super::{gone_clients, Client, DetachReason, DhcpServer};
use crate::dataplane::AccessPoint;

impl DhcpServer {
    /// The next instant [`handle_timeout`](Self::handle_timeout) must run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Timers without the data plane's counters: a lease ends at its end
    /// plus the grace, whatever the subscriber does.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout_with(now, &|_| None)
    }

    /// Timers, with `sent` reading the subscriber's uplink packet count from
    /// the data plane (None: unknown); see `dhcp/hold.rs`.
    pub(crate) fn handle_timeout_with(
        &mut self,
        now: Instant,
        sent: &dyn Fn(&AccessPoint) -> Option<u64>,
    ) {
        // The index is exact before the pass, so the clients the pass can
        // change are these: a lease end it reads (`mark_lease_ends`) or a
        // client it ends or holds (`DetachReason::due`) is at or before its
        // indexed deadline (`timer_of`). The others keep their entries.
        let due: Vec<[u8; 6]> = (self.timers.iter())
            .take_while(|(t, _)| *t <= now)
            .map(|(_, mac)| *mac)
            .collect();
        self.mark_lease_ends(now, sent);
        let grace = self.cfg.lease_grace;
        let mut gone = gone_clients(&self.clients, now, grace, |c| (c.lease_end, c.abandon_at));
        gone.retain(|(mac, reason)| {
            *reason != DetachReason::LeaseExpired || !self.hold_if_sending(now, mac, sent)
        });
        for (mac, reason) in gone {
            self.stats.lease_expired += u64::from(reason == DetachReason::LeaseExpired);
            self.detach(mac, reason);
        }
        for mac in due {
            self.reindex(mac);
        }
    }

    /// When a client's next timer runs out: its lease's (see
    /// `lease_deadline`), else its unfinished attach's.
    fn timer_of(&self, c: &Client) -> Option<Instant> {
        match (c.lease_end, c.abandon_at) {
            (Some(l), _) => Some(self.lease_deadline(c, l)),
            (None, a) => a,
        }
    }

    /// Puts `mac`'s timer where it is now in the index.
    pub(super) fn reindex(&mut self, mac: [u8; 6]) {
        let Some(c) = self.clients.get(&mac) else {
            return;
        };
        let (due, old) = (self.timer_of(c), c.indexed);
        if due == old {
            return;
        }
        if let Some(t) = old {
            self.timers.remove(&(t, mac));
        }
        if let Some(t) = due {
            self.timers.insert((t, mac));
        }
        if let Some(c) = self.clients.get_mut(&mac) {
            c.indexed = due;
        }
    }

    /// Builds the index again from every client (when the lease rule
    /// changes: `set_hold_while_sending`).
    pub(super) fn reindex_all(&mut self) {
        let due: Vec<([u8; 6], Option<Instant>)> = (self.clients.iter())
            .map(|(mac, c)| (*mac, self.timer_of(c)))
            .collect();
        self.timers.clear();
        for (mac, t) in due {
            if let Some(t) = t {
                self.timers.insert((t, mac));
            }
            if let Some(c) = self.clients.get_mut(&mac) {
                c.indexed = t;
            }
        }
    }
}
