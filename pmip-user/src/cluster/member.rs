//! This anchor as a member of the cluster: its lease in etcd, kept alive,
//! and what the lease allows.
//!
//! Everything a member owns in etcd (its member record, its service
//! addresses) lives under one lease of `store.lease_ttl_s`. The member keeps
//! it alive every third of the TTL and knows, from the last keepalive that
//! etcd answered, until when etcd still counts it alive: `until` = when that
//! keepalive was *sent* + the TTL etcd granted. etcd starts its own count
//! later (when the keepalive arrived), so a member that stops serving at
//! `until` minus a margin has stopped before etcd ends its lease and
//! before anyone else can claim its addresses (STYLE: no binding served by
//! two anchors at once).
//!
//! One exception keeps existing subscribers when etcd itself is down: if
//! the members etcd still answers with say they have no leader (quorum
//! lost), no lease can end and nobody can claim anything — the member goes
//! on serving what it has ([`Standing::Stalled`]) and refuses new bindings
//! until the quorum is back. A member that reaches no etcd member at all
//! cannot tell a dead cluster from its own isolation and stops at `until`.
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store::etcd::EtcdConn;

/// What this member may do, as its lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The lease is alive until `until` (minus the safety margin).
    Valid { lease: i64, until: Instant },
    /// etcd has no leader: nothing can change hands; serve, accept nothing new.
    Stalled { lease: i64, until: Instant },
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
    /// end of a valid lease it may not any more.
    pub(crate) fn may_serve(&self, now: Instant, margin: Duration) -> bool {
        match *self {
            Standing::Valid { until, .. } => now + margin < until,
            Standing::Stalled { .. } => true,
            Standing::Lost { .. } => false,
        }
    }

    /// May it take on new bindings (which must be written to etcd first)?
    pub(crate) fn may_admit(&self, now: Instant, margin: Duration) -> bool {
        matches!(self, Standing::Valid { .. }) && self.may_serve(now, margin)
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Standing::Valid { .. } => "valid",
            Standing::Stalled { .. } => "stalled (etcd has no leader)",
            Standing::Lost { .. } => "lost",
        }
    }
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
            .map_err(|_| anyhow!("keepalive stream: no answer within {wait:?}"))??;
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
            return Err(anyhow!("keepalive: no answer within {wait:?}"));
        }
    };
    Ok((resp.ttl() > 0).then(|| Duration::from_secs(resp.ttl() as u64)))
}

/// Is this the error of an etcd member without a leader (`require_leader`)?
pub(crate) fn no_leader(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("no leader")
}

/// Keeps `lease` alive until it is lost or `stand` has no receiver left,
/// publishing the standing after every attempt. Runs on the etcd runtime.
pub(crate) async fn keep_alive(
    conn: EtcdConn,
    lease: i64,
    ttl: Duration,
    stand: watch::Sender<Standing>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut until = Instant::now() + ttl;
    let mut stream = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let s = match keep_once(&conn, &mut stream, lease, every).await {
            Ok(Some(granted)) => {
                until = sent + granted;
                Standing::Valid { lease, until }
            }
            Ok(None) => Standing::Lost { lease },
            Err(e) if no_leader(&e) => {
                tracing::debug!("lease {lease:x}: etcd has no leader");
                Standing::Stalled { lease, until }
            }
            Err(e) => {
                tracing::debug!("lease {lease:x}: keepalive failed: {e:#}");
                Standing::Valid { lease, until }
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
    use super::*;

    #[test]
    fn a_valid_lease_stops_serving_a_margin_before_its_end() {
        let t0 = Instant::now();
        let s = Standing::Valid {
            lease: 1,
            until: t0 + Duration::from_secs(2),
        };
        let m = Duration::from_millis(400);
        assert!(s.may_serve(t0, m));
        assert!(s.may_admit(t0, m));
        assert!(s.may_serve(t0 + Duration::from_millis(1500), m));
        assert!(!s.may_serve(t0 + Duration::from_millis(1700), m));
    }

    #[test]
    fn stalled_serves_but_admits_nothing_and_lost_does_neither() {
        let t0 = Instant::now();
        let st = Standing::Stalled {
            lease: 1,
            until: t0,
        };
        let far = t0 + Duration::from_secs(3600);
        assert!(st.may_serve(far, Duration::ZERO));
        assert!(!st.may_admit(t0, Duration::ZERO));
        let lost = Standing::Lost { lease: 1 };
        assert!(!lost.may_serve(t0, Duration::ZERO));
        assert_eq!(lost.lease(), 1);
    }

    #[test]
    fn the_no_leader_error_is_recognised() {
        assert!(no_leader(&anyhow!(
            "grpc request error: status: Unavailable, message: \"etcdserver: no leader\""
        )));
        assert!(!no_leader(&anyhow!("transport error")));
    }
}
