//! Counters for `pmipctl show aaa`: per server and for the client as a whole. No secret here.
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One server's counters (RADIUS-AUTH-CLIENT-MIB / RADIUS-ACC-CLIENT-MIB in spirit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    pub address: Option<IpAddr>,
    pub auth_port: u16,
    pub acct_port: u16,
    /// Access-Requests sent (first transmissions).
    pub requests: u64,
    pub accepts: u64,
    pub rejects: u64,
    pub challenges: u64,
    /// Requests this server let run out of retransmissions.
    pub timeouts: u64,
    pub retransmissions: u64,
    pub acct_requests: u64,
    pub acct_responses: u64,
    pub acct_timeouts: u64,
    pub acct_retransmissions: u64,
    /// Replies whose authenticator or Message-Authenticator did not verify (dropped).
    pub bad_authenticators: u64,
    /// Replies that did not parse or had an unexpected code (dropped).
    pub malformed: u64,
    /// Replies to no request in flight: late, duplicate or forged (dropped).
    pub unknown_responses: u64,
    /// Vendor-Specific attributes of vendors pmip does not read, in Access-Accepts (skipped).
    pub unknown_vendor_attributes: u64,
    /// Times the server was marked dead (`deadtime_s`).
    pub marked_dead: u64,
    pub dead: bool,
}

/// The client's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AaaStats {
    pub servers: Vec<ServerStats>,
    pub auth_in_flight: u64,
    pub auth_waiting: u64,
    /// Authorizations refused because too many were waiting.
    pub auth_overloaded: u64,
    /// Authorizations no server answered.
    pub auth_timeouts: u64,
    pub acct_queued: u64,
    pub acct_in_flight: u64,
    pub acct_delivered: u64,
    /// Records dropped because the queue was full.
    pub acct_dropped: u64,
    /// Queued Interim-Updates replaced by a newer record of their session.
    pub acct_superseded: u64,
    /// Updates whose counters were below what was already sent (sent clamped).
    pub counter_regressions: u64,
    /// Datagrams from an address that is no configured server.
    pub unknown_source: u64,
    pub sessions: u64,
}

impl fmt::Display for AaaStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "RADIUS servers:")?;
        for (i, s) in self.servers.iter().enumerate() {
            let addr = s.address.map(|a| a.to_string()).unwrap_or_default();
            writeln!(
                f,
                "  [{i}] {addr} auth-port {} acct-port {}{}",
                s.auth_port,
                s.acct_port,
                if s.dead { " (dead)" } else { "" }
            )?;
            writeln!(
                f,
                "      access: requests {} accepts {} rejects {} challenges {} timeouts {} retransmissions {}",
                s.requests, s.accepts, s.rejects, s.challenges, s.timeouts, s.retransmissions
            )?;
            writeln!(
                f,
                "      accounting: requests {} responses {} timeouts {} retransmissions {}",
                s.acct_requests, s.acct_responses, s.acct_timeouts, s.acct_retransmissions
            )?;
            writeln!(
                f,
                "      dropped: bad authenticators {} malformed {} unknown {}; unknown vendor attributes {}; marked dead {}",
                s.bad_authenticators,
                s.malformed,
                s.unknown_responses,
                s.unknown_vendor_attributes,
                s.marked_dead
            )?;
        }
        writeln!(
            f,
            "authorization: in flight {} waiting {} overloaded {} no answer {}",
            self.auth_in_flight, self.auth_waiting, self.auth_overloaded, self.auth_timeouts
        )?;
        writeln!(
            f,
            "accounting: sessions {} queued {} in flight {} delivered {} dropped {} superseded {} counter regressions {}",
            self.sessions,
            self.acct_queued,
            self.acct_in_flight,
            self.acct_delivered,
            self.acct_dropped,
            self.acct_superseded,
            self.counter_regressions
        )?;
        write!(f, "from unknown sources: {}", self.unknown_source)
    }
}
