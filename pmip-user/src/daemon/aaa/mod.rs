//! The RADIUS module (`crate::aaa`) wired into the daemon (issue 14; docs/aaa.md).
//!
//! - [`access`]  — the access glue's side: authorization at attach (pipelined: the event
//!   loop never waits for a server; the attach resumes when the answer arrives), the
//!   profile, accounting of each binding, Session-Timeout, Disconnect/CoA.
//! - [`anchor`]  — the anchor runner's side: accounting of each binding (one session from
//!   creation to removal, across handovers), Disconnect.
//! - [`meter`]   — session counters from the fast path that survive re-installs.
//! - [`profile`] — an Access-Accept merged over the interface's default profile.
//!
//! Here: what both sides share — starting the client and the DAE listener, the inputs they
//! send the daemon's loop, Acct-Session-Ids, the causes of a Stop, the `show aaa` view.
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::mpsc;

use super::fastpath::SharedDp;
use crate::aaa::{
    self, AaaConfig, AaaEvent, AaaHandle, AuthOutcome, DaeHandle, DaeRequest, SessionSelector,
    TerminateCause,
};
use crate::access::dhcp::DetachReason;
use crate::agent::registrar::{counters_of, GoneCause};
use crate::config::Config;
use crate::ctl::{AaaView, Response};
use crate::dataplane::AccessPoint;

mod access;
mod anchor;
mod meter;
mod persist;
mod profile;

pub(super) use access::{AccessAaa, Resolved};

/// The profile a store record's AAA part stands for (a restored subscriber's).
pub(super) fn stored_profile(r: &crate::store::AaaProfile, nai: &str) -> crate::config::Profile {
    persist::profile(r, nai).0
}
pub(super) use anchor::AnchorAaa;
use meter::{Meter, MeteredDp};

/// The data plane the registrar's shell drives (metered when accounting is on).
pub(super) type Dp = MeteredDp<SharedDp>;

/// What the AAA side hands the daemon's loop.
#[derive(Debug)]
pub(super) enum Input {
    /// An authorization came back (`token` tells a stale one).
    Answer {
        at: AccessPoint,
        token: u64,
        outcome: AuthOutcome,
    },
    /// From the RADIUS client: an Interim-Update is due, or a record was dropped.
    Event(AaaEvent),
    /// A Disconnect- or CoA-Request from a configured client.
    Dae(DaeRequest),
    /// A subscriber's Session-Timeout ran out (access side).
    SessionTimeout(AccessPoint),
}

/// The gateway's own counters for `show aaa` (the client's are per server).
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Counters {
    /// Access-Requests asked for (subscribers without a local profile).
    pub authorizations: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// No server answered.
    pub timeouts: u64,
    /// The client's queue was full.
    pub overloaded: u64,
    /// Reject, timeout or overload served with the interface's default profile.
    pub default_profile: u64,
    /// Attaches refused: no answer and no default profile, or an unusable Accept.
    pub refused: u64,
    /// Accepts naming an anchor that is no configured peer, or without proxy mobile IP.
    pub unusable_accepts: u64,
    /// Subscribers served from a local profile without asking.
    pub local_profiles: u64,
    pub sessions_started: u64,
    pub sessions_stopped: u64,
    pub interim_updates: u64,
    pub session_timeouts: u64,
    pub disconnects: u64,
    pub disconnect_naks: u64,
    pub coas: u64,
    pub coa_naks: u64,
    /// Accounting records the client had to drop (queue full).
    pub accounting_dropped: u64,
}

/// What both sides run: the client, the DAE listener, and their inputs.
pub(super) struct Core {
    pub cfg: AaaConfig,
    pub client: AaaHandle,
    pub dae: Option<DaeHandle>,
    pub tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    /// None with accounting off.
    pub meter: Option<Meter<SharedDp>>,
    pub counters: Counters,
    /// The start, in milliseconds since the epoch: leads every Acct-Session-Id.
    boot_ms: u64,
    seq: u32,
}

/// Starts the RADIUS client (and the DAE listener) of `[aaa]`; without the section, nothing
/// and a plain data plane.
pub(super) async fn start(cfg: &Config, dp: SharedDp) -> Result<(Option<Core>, Dp)> {
    let Some(acfg) = cfg.aaa.clone() else {
        return Ok((None, MeteredDp::plain(dp)));
    };
    let (dp, meter) = if acfg.accounting.enabled {
        let (d, m) = MeteredDp::metered(dp);
        (d, Some(m))
    } else {
        (MeteredDp::plain(dp), None)
    };
    // Requests leave from the NAS address: the servers know the client by it.
    let local = acfg
        .nas_ip_address
        .map(IpAddr::V4)
        .or(cfg.addresses.ipv4.map(IpAddr::V4));
    let (client, mut events) = aaa::spawn_client(acfg.clone(), local)
        .await
        .context("starting the RADIUS client ([aaa])")?;
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if t.send(Input::Event(e)).is_err() {
                return;
            }
        }
    });
    let dae = if acfg.dae.enabled {
        let (h, mut reqs) = aaa::spawn_dae(acfg.clone()).await.with_context(|| {
            format!(
                "listening for dynamic authorization (aaa.dae.port {})",
                acfg.dae.port
            )
        })?;
        tracing::info!(listen = %h.local, "RADIUS dynamic authorization (RFC 5176) listening");
        let t = tx.clone();
        tokio::spawn(async move {
            while let Some(r) = reqs.recv().await {
                if t.send(Input::Dae(r)).is_err() {
                    return;
                }
            }
        });
        Some(h)
    } else {
        None
    };
    tracing::info!(
        servers = acfg.servers.len(),
        authorization = acfg.authorization,
        accounting = acfg.accounting.enabled,
        "RADIUS client started"
    );
    let boot_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    // RFC 2866 §5.1: the NAS (re)started; sessions of an earlier run that never got their
    // Stop (a crash) are over.
    client.account(nas_record(
        aaa::AcctStatus::AccountingOn,
        (boot_ms / 1000) as u32,
    ));
    let core = Core {
        cfg: acfg,
        client,
        dae,
        tx,
        rx,
        meter,
        counters: Counters::default(),
        boot_ms,
        seq: 0,
    };
    Ok((Some(core), dp))
}

impl Core {
    /// A new Acct-Session-Id: unique per NAS (RFC 2866 §5.5) across restarts too.
    pub fn session_id(&mut self) -> String {
        self.seq = self.seq.wrapping_add(1);
        session_id(self.boot_ms, self.seq)
    }

    pub async fn recv(&mut self) -> Option<Input> {
        self.rx.recv().await
    }

    pub fn accounting(&self) -> bool {
        self.meter.is_some()
    }

    pub fn respond(&mut self, req: &DaeRequest, r: Result<(), aaa::ErrorCause>) {
        let disconnect = matches!(req.kind, aaa::DaeKind::Disconnect);
        let c = &mut self.counters;
        match (disconnect, r.is_ok()) {
            (true, true) => c.disconnects += 1,
            (true, false) => c.disconnect_naks += 1,
            (false, true) => c.coas += 1,
            (false, false) => c.coa_naks += 1,
        }
        if let Some(d) = &self.dae {
            d.respond(req.token, r);
        }
    }

    /// Counts a client event; the caller acts on `InterimDue`.
    pub fn dropped(&mut self, e: &AaaEvent) {
        if let AaaEvent::AccountingDropped { record } = e {
            self.counters.accounting_dropped += 1;
            tracing::warn!(
                session = %record.session.session_id,
                status = ?record.status,
                "accounting queue full: record dropped"
            );
        }
    }

    pub async fn view(&self, role: &str, sessions: usize) -> Response {
        let mut gateway = counters_of(&self.counters);
        gateway.insert("sessions_active".into(), sessions as u64);
        let dae = match &self.dae {
            Some(d) => d.stats().await,
            None => None,
        };
        Response::Aaa(Box::new(AaaView {
            configured: true,
            role: role.into(),
            client: self.client.stats().await,
            dae,
            gateway,
        }))
    }

    /// Waits (at most `grace`) for the accounting queue to drain, then stops the client,
    /// which keeps what is left in the spool.
    pub async fn shutdown(&self, grace: Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        self.client
            .account(nas_record(aaa::AcctStatus::AccountingOff, now));
        let end = Instant::now() + grace;
        while Instant::now() < end {
            match self.client.stats().await {
                Some(s) if s.acct_queued + s.acct_in_flight > 0 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break,
            }
        }
        let left = self.client.shutdown().await;
        if !left.is_empty() {
            tracing::warn!(
                records = left.len(),
                spooled = self.cfg.accounting.spool.is_some(),
                "accounting records undelivered at shutdown"
            );
        }
    }
}

/// Acct-Session-Id `seq` of the run that started at `boot_ms` (milliseconds since the
/// epoch, 12 hex digits), then the sequence (8). The start in milliseconds, not
/// seconds: a restart within the second of the last start (a quick SIGTERM and start,
/// which restores its subscribers at once) must not reuse the last run's ids.
fn session_id(boot_ms: u64, seq: u32) -> String {
    format!("{:012X}{seq:08X}", boot_ms & 0xFFFF_FFFF_FFFF)
}

/// Accounting-On / -Off: about the NAS, no session (the client leaves the session's
/// attributes out).
fn nas_record(status: aaa::AcctStatus, unix: u32) -> aaa::AcctRecord {
    aaa::AcctRecord {
        status,
        session: aaa::AcctSession::default(),
        traffic: aaa::Traffic::default(),
        session_time: 0,
        terminate_cause: None,
        event_unix: unix,
    }
}

/// `show aaa` without `[aaa]`.
pub(super) fn not_configured(role: &str) -> Response {
    Response::Aaa(Box::new(AaaView {
        configured: false,
        role: role.into(),
        ..AaaView::default()
    }))
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) of an access-side binding that ended on its own.
pub(super) fn access_cause(c: GoneCause) -> TerminateCause {
    use crate::pmipv6::wire::revocation_trigger as t;
    match c {
        GoneCause::Deregistered => TerminateCause::UserRequest,
        // Refreshes went unanswered: the service was lost.
        GoneCause::Expired => TerminateCause::LostService,
        GoneCause::Revoked(t::ADMINISTRATIVE) => TerminateCause::AdminReset,
        // RFC 5846 §6.1 inter-MAG handover triggers: the subscriber moved away.
        GoneCause::Revoked(
            t::INTER_MAG_HANDOVER_SAME_ATT
            | t::INTER_MAG_HANDOVER_DIFFERENT_ATT
            | t::INTER_MAG_HANDOVER_UNKNOWN,
        ) => TerminateCause::NasRequest,
        GoneCause::Revoked(t::USER_INITIATED_SESSION_TERMINATION) => TerminateCause::UserRequest,
        GoneCause::Revoked(_) => TerminateCause::LostService,
    }
}

/// Acct-Terminate-Cause of an anchor binding.
pub(super) fn anchor_cause(c: GoneCause) -> TerminateCause {
    match c {
        // The access gateway deregistered it: the subscriber left.
        GoneCause::Deregistered => TerminateCause::UserRequest,
        GoneCause::Expired => TerminateCause::SessionTimeout,
        // Released by the operator (`clear binding`, Disconnect-Request).
        GoneCause::Revoked(_) => TerminateCause::AdminReset,
    }
}

/// Acct-Terminate-Cause of a detach the DHCP server saw.
pub(super) fn dhcp_cause(r: DetachReason) -> TerminateCause {
    match r {
        DetachReason::Release | DetachReason::Decline => TerminateCause::UserRequest,
        DetachReason::LeaseExpired => TerminateCause::SessionTimeout,
        DetachReason::Abandoned => TerminateCause::LostCarrier,
    }
}

/// A binding as a Disconnect/CoA-Request may name it.
pub(super) struct Target<'a> {
    pub mac: Option<[u8; 6]>,
    /// The NAI, and the accounting User-Name.
    pub names: [&'a str; 2],
    pub home: Option<Ipv4Addr>,
    pub session_id: Option<&'a str>,
}

/// Every identification the request carries must match (RFC 5176 §3: the attributes
/// together identify the session); a request with none matches nothing.
pub(super) fn selects(sel: &SessionSelector, t: &Target) -> bool {
    let any = sel.calling_station_id.is_some()
        || sel.user_name.is_some()
        || sel.framed_ip.is_some()
        || sel.acct_session_id.is_some();
    any && sel.calling_station_id.is_none_or(|m| t.mac == Some(m))
        && sel
            .user_name
            .as_deref()
            .is_none_or(|u| t.names.contains(&u))
        && sel.framed_ip.is_none_or(|a| t.home == Some(a))
        && sel
            .acct_session_id
            .as_deref()
            .is_none_or(|s| t.session_id == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_starts_within_one_second_never_share_a_session_id() {
        // 2026-12-06 08:21:31.100 and .600 (UTC): one second, two runs.
        let (a, b) = (1_796_545_291_100, 1_796_545_291_600);
        let ids = |boot| (1..=1000).map(move |seq| session_id(boot, seq));
        let first: std::collections::HashSet<String> = ids(a).collect();
        assert!(ids(b).all(|id| !first.contains(&id)));
        assert_eq!(session_id(a, 1), "01A24A71A35C00000001");
        assert_eq!(session_id(a, 1).len(), 20);
    }

    #[test]
    fn selectors_match_every_given_field() {
        let t = Target {
            mac: Some([2, 0, 0, 0, 0xaa, 1]),
            names: ["mn0@example.com", "02-00-00-00-aa-01"],
            home: Some("10.64.0.2".parse().unwrap()),
            session_id: Some("0000000100000001"),
        };
        let by_mac = SessionSelector {
            calling_station_id: Some([2, 0, 0, 0, 0xaa, 1]),
            ..SessionSelector::default()
        };
        assert!(selects(&by_mac, &t));
        let by_name = SessionSelector {
            user_name: Some("02-00-00-00-aa-01".into()),
            ..SessionSelector::default()
        };
        assert!(selects(&by_name, &t));
        let both_wrong_ip = SessionSelector {
            framed_ip: Some("10.64.0.3".parse().unwrap()),
            ..by_mac.clone()
        };
        assert!(!selects(&both_wrong_ip, &t));
        assert!(!selects(&SessionSelector::default(), &t));
    }

    #[test]
    fn stop_causes() {
        assert_eq!(
            access_cause(GoneCause::Revoked(2)),
            TerminateCause::NasRequest
        );
        assert_eq!(
            access_cause(GoneCause::Revoked(1)),
            TerminateCause::AdminReset
        );
        assert_eq!(
            access_cause(GoneCause::Expired),
            TerminateCause::LostService
        );
        assert_eq!(
            anchor_cause(GoneCause::Expired),
            TerminateCause::SessionTimeout
        );
        assert_eq!(
            dhcp_cause(DetachReason::LeaseExpired),
            TerminateCause::SessionTimeout
        );
        assert_eq!(
            dhcp_cause(DetachReason::Release),
            TerminateCause::UserRequest
        );
    }
}
