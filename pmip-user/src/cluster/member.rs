//! This anchor as a member of the cluster: its lease in etcd, kept alive,
//! and what the lease allows.
//!
//! Everything a member owns in etcd (its member record, its service
//! addresses) lives under one lease of `store.lease_ttl_s`. The member keeps
//! it alive every quarter of the TTL and knows, from the last keepalive that
//! etcd answered, until when etcd still counts it alive: `until` = when that
//! keepalive was *sent* + the TTL etcd granted. etcd starts its own count
//! later (when the keepalive arrived), so a member that stops serving at
//! `until` minus a margin has stopped before etcd ends its lease and
//! before anyone else can claim its addresses (STYLE: no binding served by
//! two anchors at once).
//!
//! One exception keeps existing subscribers when etcd itself has lost its
//! quorum (docs/cluster.md, "etcd without a quorum"). Then no lease can end
//! and nothing can change hands: etcd revokes a lease and commits a claim
//! only through a leader with a quorum, and a newly elected leader gives
//! every lease a full TTL again. So a member *holds* — goes on serving what
//! it has, fast path and signaling, refusing new bindings — past the end of
//! its lease while both:
//!
//! 1. etcd says so: the last answer an etcd member gave was "no leader"
//!    ([`Standing::Stalled`]); a connection error (a dead member) says
//!    nothing either way and does not end it;
//! 2. the other anchors agree: every member is heard on the heartbeats and
//!    none has a working etcd (`heartbeat::Detector::quiet`). An etcd
//!    member without a leader may be cut off from a quorum that others
//!    reach — then one of them has a working etcd, says so, and we stop at
//!    once (our lease is running out there); a member we do not hear may
//!    be such a one, so we stop as well. A member whose etcd works again
//!    waits a heartbeat timeout before claiming anything (control.rs), so
//!    the holders hear it first.
//!    Right after a quorum is lost, whoever renewed last still says its
//!    etcd works for a while ([`word_lasts`]), past the earliest renewer's
//!    deadline (a margin before its lease's end): a word older than our
//!    own first unanswered keepalive (when it was sent) lets us go on to a
//!    quarter of the margin before the end ([`Quiet::Pending`]), time for
//!    it to end. (Without this the earliest renewer gave its addresses up
//!    in about one quorum loss in four.) When the quorum comes back, the
//!    first member through ends the quiet; the others hold on for as long
//!    as it had lasted, up to most of a lease, to get through themselves
//!    ([`quiet_grace`], [`claim_wait`]).
//!
//! A member that reaches no etcd member at all, or that is alone in
//! reaching none while the others renew, cannot tell and stops at `until`.
//! Between the end of the lease and the first "no leader" (etcd notices a
//! lost quorum after its election timeout) rule 2 alone lets it go on for
//! at most one more TTL ([`Standing::may_serve`]).
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub(crate) use super::heartbeat::Quiet;
use crate::store::etcd::{conn, EtcdConn};

/// What this member may do, as its lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The lease is alive until `until` (minus the safety margin); `fresh`:
    /// the last keepalive was answered (our etcd works now); `since`: when
    /// an etcd member first failed to renew it since (said "no leader" or
    /// did not answer — a refused connection to a dead member says
    /// nothing).
    Valid {
        lease: i64,
        until: Instant,
        fresh: bool,
        since: Option<Instant>,
    },
    /// etcd has no leader: nothing can change hands; serve, accept nothing
    /// new. `since`: when an etcd member first failed to renew the lease.
    Stalled {
        lease: i64,
        until: Instant,
        since: Instant,
    },
    /// The lease is gone (expired or revoked): own nothing.
    Lost { lease: i64 },
}

impl Standing {
    pub(crate) fn lease(&self) -> i64 {
        match *self {
            Standing::Valid { lease, .. }
            | Standing::Stalled { lease, .. }
            | Standing::Lost { lease } => lease,
        }
    }

    /// May this member serve its addresses at `now`? `margin` before the
    /// end of a valid lease it may not any more — unless the other members
    /// are `quiet` (all heard, none with a working etcd: nobody can take
    /// over): then for one more `detect` (the time etcd takes to say it has
    /// no leader), and for as long as etcd says it has none.
    ///
    /// [`Quiet::Pending`] (every member heard; those still saying their
    /// etcd works last renewed before our keepalives went unanswered) is
    /// the moment after a quorum is lost: the others' word lags their last
    /// renewal by up to half a TTL, and whoever renewed last says it
    /// longest. It lets the member go on to a quarter of the margin before the
    /// lease's end, time for that word to end; a member that reaches a
    /// quorum renews again within a keepalive period and ends it at once
    /// (heartbeat.rs).
    pub(crate) fn may_serve(
        &self,
        now: Instant,
        margin: Duration,
        (quiet, detect): (Quiet, Duration),
    ) -> bool {
        let short = now + margin < self.until_or(now);
        let pending = quiet == Quiet::Pending && now + margin / 4 < self.until_or(now);
        match *self {
            Standing::Valid { until, .. } => {
                short || pending || (quiet == Quiet::Yes && now + margin < until + detect)
            }
            Standing::Stalled { .. } => quiet == Quiet::Yes || short || pending,
            Standing::Lost { .. } => false,
        }
    }

    /// The lease's end as last renewed (`now` once lost).
    fn until_or(&self, now: Instant) -> Instant {
        match *self {
            Standing::Valid { until, .. } | Standing::Stalled { until, .. } => until,
            Standing::Lost { .. } => now,
        }
    }

    /// Since when etcd fails to renew our lease (None: it did last time,
    /// or only dead members were tried since).
    pub(crate) fn unanswered_since(&self) -> Option<Instant> {
        match *self {
            Standing::Valid { since, .. } => since,
            Standing::Stalled { since, .. } => Some(since),
            Standing::Lost { .. } => None,
        }
    }

    /// Is the lease still alive as far as etcd is concerned (no holding)?
    pub(crate) fn lease_valid(&self, now: Instant, margin: Duration) -> bool {
        matches!(self, Standing::Valid { until, .. } if now + margin < *until)
    }

    /// Does our etcd work (the last keepalive answered)? Said in heartbeats.
    pub(crate) fn etcd_works(&self) -> bool {
        matches!(self, Standing::Valid { fresh: true, .. })
    }

    /// May it take on new bindings (which must be written to etcd first)?
    pub(crate) fn may_admit(&self, now: Instant, margin: Duration) -> bool {
        self.lease_valid(now, margin)
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Standing::Valid { fresh: true, .. } => "valid",
            Standing::Valid { fresh: false, .. } => "valid (keepalive unanswered)",
            Standing::Stalled { .. } => "stalled (etcd has no leader)",
            Standing::Lost { .. } => "lost",
        }
    }
}

/// How long the others still count as quiet after they stopped being so
/// (control.rs `quiet_now`), when they had been quiet for `quiet_for`: a
/// heartbeat timeout, or as long as they had been quiet, up to the TTL less
/// the margin.
pub(crate) fn quiet_grace(
    hb_timeout: Duration,
    quiet_for: Duration,
    ttl: Duration,
    margin: Duration,
) -> Duration {
    hb_timeout.max(quiet_for.min(ttl.saturating_sub(margin)))
}

/// How long a member whose etcd works again, after its word had been off
/// for `off`, waits before claiming anything: longer than the longest
/// [`quiet_grace`] a holder could have taken from its silence, by half a
/// heartbeat timeout (the holder hears the word late by up to two
/// heartbeat intervals; with the grace alone, as before, a holder could
/// still serve for that long after the claim).
pub(crate) fn claim_wait(hb_timeout: Duration, off: Duration, ttl: Duration) -> Duration {
    hb_timeout * 3 / 2 + off.min(ttl)
}

/// The member record (`P/members/<name>`), under the member's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    pub name: String,
    /// Where its heartbeats come from and go to.
    pub addr: std::net::IpAddr,
    pub heartbeat_port: u16,
    pub lease: i64,
    pub started_ms: u64,
}

/// Grants a lease and writes the member record under it.
pub(crate) async fn join(
    conn: &EtcdConn,
    rec_of: impl FnOnce(i64) -> MemberRecord,
    ttl: Duration,
) -> Result<MemberRecord> {
    let mut c = conn.client();
    let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(60);
    let lease = conn
        .timed("lease grant", c.lease_grant(ttl_s, None))
        .await?
        .id();
    let rec = rec_of(lease);
    let value = serde_json::to_vec(&rec)?;
    let key = conn.keys.member(&rec.name);
    let put = c.put(key, value, Some(PutOptions::new().with_lease(lease)));
    conn.timed("member put", put).await?;
    Ok(rec)
}

/// One keepalive: Ok(Some(ttl)) while the lease lives, Ok(None) once it is
/// gone, Err when etcd did not answer.
async fn keep_once(
    conn: &EtcdConn,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    lease: i64,
    wait: Duration,
) -> Result<Option<Duration>> {
    if stream.is_none() {
        let mut c = conn.client();
        let s = tokio::time::timeout(wait, c.lease_keep_alive(lease))
            .await
            .map_err(|_| anyhow!("keepalive stream: {NO_ANSWER} {wait:?}"))??;
        *stream = Some(s);
    }
    let (keeper, rx) = stream.as_mut().expect("just set");
    let r = tokio::time::timeout(wait, async {
        keeper.keep_alive().await?;
        rx.message().await
    })
    .await;
    let resp = match r {
        Ok(Ok(Some(resp))) => resp,
        Ok(Ok(None)) => {
            *stream = None;
            return Err(anyhow!("keepalive stream closed"));
        }
        Ok(Err(e)) => {
            *stream = None;
            return Err(e.into());
        }
        Err(_) => {
            *stream = None;
            return Err(anyhow!("keepalive: {NO_ANSWER} {wait:?}"));
        }
    };
    Ok((resp.ttl() > 0).then(|| Duration::from_secs(resp.ttl() as u64)))
}

/// Is this the error of an etcd member without a leader (`require_leader`)?
pub(crate) fn no_leader(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("no leader")
}

/// One round of keepalives within `wait`: tried again at once while the
/// member picked cannot be reached (a dead etcd member refuses the
/// connection; the next try may reach a live one, which can tell whether
/// it has a leader). Returns when the answer went out, and the answer.
async fn keep_round(
    conn: &EtcdConn,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    lease: i64,
    wait: Duration,
) -> (Instant, Result<Option<Duration>>) {
    let end = Instant::now() + wait;
    loop {
        let sent = Instant::now();
        let left = end.saturating_duration_since(sent);
        let r = keep_once(conn, stream, lease, left.max(Duration::from_millis(50))).await;
        match r {
            Err(e) if conn::transient(&e) && Instant::now() + RETRY_PAUSE < end => {
                tracing::trace!("lease {lease:x}: keepalive: {e:#}; trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            r => return (sent, r),
        }
    }
}

const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How often the lease is renewed: a quarter of its TTL.
pub(crate) fn keepalive_period(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(100))
}

/// How long a keepalive may take before it counts as unanswered.
fn keepalive_wait(ttl: Duration) -> Duration {
    (ttl / 6).max(Duration::from_millis(50))
}

/// How long after a renewal a member says its etcd works (control.rs
/// `tell_works`): until its next keepalive has had its whole wait. After a
/// lost quorum the word of whoever renewed last — just before our own
/// keepalive that went unanswered, a period after our renewal — ends 2/3
/// of a TTL after our renewal, more than a quarter of a TTL before the
/// hold ends ([`Standing::may_serve`]), time to hear it end on a loaded
/// host. (Renewing every third of the TTL, with the word half a TTL, that
/// left a tenth of a TTL; a CI run saw it run out.)
pub(crate) fn word_lasts(ttl: Duration) -> Duration {
    keepalive_period(ttl) + keepalive_wait(ttl)
}

/// What a keepalive that etcd did not answer in time fails with.
const NO_ANSWER: &str = "no answer within";

/// Keeps `lease` alive until it is lost or `stand` has no receiver left,
/// publishing the standing after every attempt. Runs on the etcd runtime.
pub(crate) async fn keep_alive(
    conn: EtcdConn,
    lease: i64,
    ttl: Duration,
    stand: watch::Sender<Standing>,
) {
    let every = keepalive_period(ttl);
    let mut until = Instant::now() + ttl;
    let mut stream = None;
    // The last answer etcd gave was "no leader" (module doc, rule 1).
    let mut leaderless = false;
    // When an etcd member first failed to renew the lease: said "no leader"
    // or did not answer (heartbeat.rs compares the others' last renewals
    // with it). Not a refused connection or a stream cut (a member that
    // died): right after one, a live leader may still renew others' leases
    // (it steps down only after its election timeout).
    let mut since: Option<Instant> = None;
    let mut next = Instant::now() + every;
    loop {
        tokio::time::sleep_until(next.into()).await;
        // A sixth of the TTL per round, then soon again after a failure: a
        // lost member or quorum is seen within a fraction of the lease.
        let (sent, r) = keep_round(&conn, &mut stream, lease, keepalive_wait(ttl)).await;
        next = sent
            + if matches!(r, Ok(Some(_))) {
                every
            } else {
                every / 4
            };
        if let Err(e) = &r {
            // Counted from when we saw it fail, not from when the keepalive
            // went out: the others' renewals are timed from when their
            // heartbeats arrive (heartbeat.rs), late by the heartbeat's
            // delay on a loaded host, and one that renewed just before the
            // quorum went must still count as older ([`Quiet::Pending`]).
            if since.is_none() && (no_leader(e) || format!("{e:#}").contains(NO_ANSWER)) {
                since = Some(Instant::now());
            }
        }
        let s = match r {
            Ok(Some(granted)) => {
                leaderless = false;
                since = None;
                until = sent + granted;
                Standing::Valid {
                    lease,
                    until,
                    fresh: true,
                    since: None,
                }
            }
            Ok(None) => Standing::Lost { lease },
            Err(e) => {
                if no_leader(&e) {
                    tracing::debug!("lease {lease:x}: etcd has no leader");
                    leaderless = true;
                } else {
                    tracing::debug!("lease {lease:x}: keepalive failed: {e:#}");
                }
                // After a "no leader", a dead member's refusal or a timeout
                // says nothing new.
                match since {
                    Some(since) if leaderless => Standing::Stalled {
                        lease,
                        until,
                        since,
                    },
                    _ => Standing::Valid {
                        lease,
                        until,
                        fresh: false,
                        since,
                    },
                }
            }
        };
        let lost = matches!(s, Standing::Lost { .. });
        if stand.send(s).is_err() || lost {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    /// A holder takes its grace from a quiet that our silence made: it was
    /// quiet at most while our word was off, seen up to `delay` late at
    /// each end. It must stop before we claim, whatever the durations.
    #[test]
    fn a_holder_stops_before_the_member_back_with_etcd_claims() {
        let (ms, timeout) = (Duration::from_millis, Duration::from_millis(400));
        let mut seed = 0x2545_f491_u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..10_000 {
            let ttl = ms(1000 + rnd(9000));
            let margin = ttl / 4;
            // Heard within half a timeout (two of four heartbeats).
            let delay = ms(rnd(201));
            let off = ms(rnd(20_000));
            // Our word comes back at 0, the holder last saw quiet at
            // `delay`, having seen it for at most `off` + `delay`.
            let quiet_for = ms(rnd(off.as_millis() as u64 + 1)) + delay;
            let holder_stops = delay + quiet_grace(timeout, quiet_for, ttl, margin);
            let we_claim = claim_wait(timeout, off, ttl);
            assert!(
                holder_stops <= we_claim,
                "ttl {ttl:?} off {off:?} quiet {quiet_for:?} delay {delay:?}: \
                 holder until {holder_stops:?}, claims from {we_claim:?}"
            );
        }
    }

    /// After a long outage the holder gets most of a lease to get through
    /// to the new leader, not only a heartbeat timeout.
    #[test]
    fn after_a_long_quiet_the_grace_is_most_of_a_lease() {
        let s = Duration::from_secs;
        let g = quiet_grace(Duration::from_millis(400), s(30), s(3), s(3) / 4);
        assert_eq!(g, Duration::from_millis(2250));
        let short = quiet_grace(
            Duration::from_millis(400),
            Duration::from_millis(100),
            s(3),
            s(3) / 4,
        );
        assert_eq!(short, Duration::from_millis(400));
    }

    use super::*;

    #[test]
    fn a_valid_lease_stops_serving_a_margin_before_its_end() {
        let t0 = Instant::now();
        let s = Standing::Valid {
            lease: 1,
            until: t0 + Duration::from_secs(2),
            fresh: true,
            since: None,
        };
        let m = Duration::from_millis(400);
        let alone = (Quiet::No, Duration::from_secs(2));
        assert!(s.may_serve(t0, m, alone));
        assert!(s.may_admit(t0, m));
        assert!(s.etcd_works());
        assert!(s.may_serve(t0 + Duration::from_millis(1500), m, alone));
        assert!(!s.may_serve(t0 + Duration::from_millis(1700), m, alone));
        assert!(!s.may_admit(t0 + Duration::from_millis(1700), m));
        // Others heard, none with etcd: one more TTL to hear "no leader".
        let quiet = (Quiet::Yes, Duration::from_secs(2));
        assert!(s.may_serve(t0 + Duration::from_millis(3500), m, quiet));
        assert!(!s.may_serve(t0 + Duration::from_millis(3700), m, quiet));
    }

    #[test]
    fn stalled_serves_but_admits_nothing_and_lost_does_neither() {
        let t0 = Instant::now();
        let st = Standing::Stalled {
            lease: 1,
            until: t0,
            since: t0,
        };
        let far = t0 + Duration::from_secs(3600);
        let quiet = (Quiet::Yes, Duration::from_secs(2));
        assert!(st.may_serve(far, Duration::ZERO, quiet));
        assert!(!st.may_admit(t0, Duration::ZERO));
        assert!(!st.etcd_works());
        // Another member has a working etcd (or is not heard): our lease
        // is running out where it counts; stop at its end.
        let not_quiet = (Quiet::No, Duration::from_secs(2));
        assert!(!st.may_serve(t0, Duration::ZERO, not_quiet));
        let lost = Standing::Lost { lease: 1 };
        assert!(!lost.may_serve(t0, Duration::ZERO, quiet));
        assert_eq!(lost.lease(), 1);
    }

    #[test]
    fn others_whose_word_predates_our_stall_give_three_quarters_of_the_margin() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let st = Standing::Stalled {
            lease: 1,
            until: t0 + ms(2000),
            since: t0 + ms(700),
        };
        let m = ms(500);
        let pending = (Quiet::Pending, ms(2000));
        let no = (Quiet::No, ms(2000));
        // Not quiet: a margin before the end; pending: a quarter of one.
        assert!(!st.may_serve(t0 + ms(1600), m, no));
        assert!(st.may_serve(t0 + ms(1600), m, pending));
        assert!(st.may_serve(t0 + ms(1860), m, pending));
        assert!(!st.may_serve(t0 + ms(1880), m, pending));
        // Once the others' word has ended: for as long as etcd has no leader.
        assert!(st.may_serve(t0 + ms(60_000), m, (Quiet::Yes, ms(2000))));
        assert_eq!(st.unanswered_since(), Some(t0 + ms(700)));
        // The same for a keepalive unanswered without a "no leader" yet.
        let v = Standing::Valid {
            lease: 1,
            until: t0 + ms(2000),
            fresh: false,
            since: Some(t0 + ms(700)),
        };
        assert!(v.may_serve(t0 + ms(1860), m, pending));
        assert!(!v.may_serve(t0 + ms(1880), m, pending));
        assert!(!v.etcd_works());
    }

    #[test]
    fn the_no_leader_error_is_recognised() {
        assert!(no_leader(&anyhow!(
            "grpc request error: status: Unavailable, message: \"etcdserver: no leader\""
        )));
        assert!(!no_leader(&anyhow!("transport error")));
    }
}
