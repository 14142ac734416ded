//! The anchor runner's AAA (seed 000: "the HA and the AAA server initiate accounting"):
//! one accounting session per binding, from its creation to its removal. A handover moves
//! the binding, not the session: the Acct-Session-Id and the counters carry on (the
//! anchor's uplink key and subscriber id stay, its SUB_STATS row is not reset). A
//! Disconnect-Request releases the binding as `pmipctl clear binding` does.
//!
//! Registrar events name the subscriber only; its id, home address and MAC come from the
//! registrar's report, asked once per burst of creations.
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;

use super::{anchor_cause, selects, Core, Dp, Input, Target};
use crate::aaa::{AaaEvent, AcctSession, DaeKind, DaeRequest, ErrorCause, TerminateCause, Traffic};
use crate::agent::registrar::{AnchorCommand, AnchorEvent, BindingSummary};
use crate::agent::shell::Handle;
use crate::config::Config;
use crate::ctl::Response;

struct Session {
    id: String,
    sub_id: u32,
    base: Traffic,
    home: Option<Ipv4Addr>,
    ending: Option<TerminateCause>,
}

struct Inner {
    core: Core,
    /// By NAI (the registrars' events name nothing else).
    sessions: HashMap<String, Session>,
    by_id: HashMap<String, String>,
    /// Created, waiting for the report that gives their id and addresses.
    waiting: Vec<String>,
}

/// The anchor side's AAA; inert without `[aaa]`.
pub(crate) struct AnchorAaa {
    inner: Option<Inner>,
}

type AnchorHandle = Handle<AnchorCommand, AnchorEvent>;

impl AnchorAaa {
    pub(crate) async fn start(cfg: &Config, dp: super::SharedDp) -> Result<(AnchorAaa, Dp)> {
        let (core, dp) = super::start(cfg, dp).await?;
        let inner = core.map(|core| Inner {
            core,
            sessions: HashMap::new(),
            by_id: HashMap::new(),
            waiting: Vec::new(),
        });
        Ok((AnchorAaa { inner }, dp))
    }

    /// A registrar event, and whatever else is queued behind it (one report per burst).
    pub(crate) async fn on_event(&mut self, ev: AnchorEvent, h: &mut AnchorHandle) {
        let Some(i) = self.inner.as_mut() else { return };
        if !i.core.accounting() {
            return;
        }
        i.event(ev);
        while let Ok(ev) = h.events.try_recv() {
            tracing::debug!(?ev, "binding");
            i.event(ev);
        }
        if i.waiting.is_empty() {
            return;
        }
        let Some(report) = h.report().await else {
            return;
        };
        let by_nai: HashMap<&str, &BindingSummary> = report
            .bindings
            .iter()
            .map(|b| (b.nai.as_str(), b))
            .collect();
        for nai in std::mem::take(&mut i.waiting) {
            if let Some(b) = by_nai.get(nai.as_str()) {
                i.start(nai, b);
            }
        }
    }

    pub(crate) async fn recv(&mut self) -> Input {
        match self.inner.as_mut() {
            Some(i) => match i.core.recv().await {
                Some(x) => x,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    pub(crate) async fn on_input(&mut self, x: Input, h: &AnchorHandle) {
        let Some(i) = self.inner.as_mut() else { return };
        match x {
            Input::Event(AaaEvent::InterimDue { session_id }) => i.interim(&session_id),
            Input::Event(e) => i.core.dropped(&e),
            Input::Dae(req) => {
                let bindings = h.report().await.unwrap_or_default().bindings;
                i.dae(req, &bindings, h)
            }
            Input::Answer { .. } | Input::SessionTimeout(_) => {}
        }
    }

    /// pmipd stops: the anchor forgets its bindings, so their sessions end.
    pub(crate) async fn shutdown(self) {
        let Some(mut i) = self.inner else { return };
        let nais: Vec<String> = i.sessions.keys().cloned().collect();
        for nai in nais {
            i.stop(&nai, TerminateCause::AdminReboot, false);
        }
        i.core.shutdown(Duration::from_secs(1)).await;
    }

    pub(crate) async fn show(&self, role: &str) -> Response {
        match &self.inner {
            Some(i) => i.core.view(role, i.sessions.len()).await,
            None => super::not_configured(role),
        }
    }
}

impl Inner {
    fn event(&mut self, ev: AnchorEvent) {
        match ev {
            AnchorEvent::Created { nai, .. } => {
                if !self.sessions.contains_key(&nai) && !self.waiting.contains(&nai) {
                    self.waiting.push(nai);
                }
            }
            AnchorEvent::Moved { nai, from, to } => {
                if let Some(s) = self.sessions.get(&nai) {
                    tracing::info!(%nai, session = %s.id, %from, %to, "handover: accounting session continues");
                }
            }
            AnchorEvent::Removed { nai, cause } => {
                self.waiting.retain(|n| *n != nai);
                self.stop(&nai, anchor_cause(cause), true);
            }
        }
    }

    fn start(&mut self, nai: String, b: &BindingSummary) {
        let Some(base) = self.core.meter.as_ref().map(|m| m.base(b.sub_id)) else {
            return;
        };
        let id = self.core.session_id();
        let mac = <[u8; 6]>::try_from(b.llid.as_slice()).ok();
        let s = Session {
            id: id.clone(),
            sub_id: b.sub_id,
            base,
            home: b.home_v4.map(|h| h.0),
            ending: None,
        };
        let desc = AcctSession {
            session_id: id.clone(),
            multi_session_id: None,
            user_name: nai.clone(),
            mac: mac.unwrap_or_default(),
            framed_ip: s.home,
            framed_ipv6_prefix: b.hnp.map(|h| (h.prefix, h.len)),
            class: Vec::new(),
            nas_port_id: None,
            called_station_id: None,
        };
        self.core.client.session_start(desc, None);
        self.core.counters.sessions_started += 1;
        self.by_id.insert(id, nai.clone());
        self.sessions.insert(nai, s);
    }

    fn traffic(&self, s: &Session, ended: bool) -> Traffic {
        self.core
            .meter
            .as_ref()
            .map(|m| m.traffic(s.sub_id, s.base, ended))
            .unwrap_or_default()
    }

    fn interim(&mut self, id: &str) {
        let Some(s) = self.by_id.get(id).and_then(|n| self.sessions.get(n)) else {
            return;
        };
        let t = self.traffic(s, false);
        self.core.counters.interim_updates += 1;
        self.core.client.session_update(id.to_string(), t);
    }

    fn stop(&mut self, nai: &str, cause: TerminateCause, ended: bool) {
        let Some(s) = self.sessions.remove(nai) else {
            return;
        };
        let t = self.traffic(&s, ended);
        let cause = s.ending.unwrap_or(cause);
        tracing::info!(%nai, session = %s.id, ?cause, up_packets = t.input_packets, down_packets = t.output_packets, "accounting stop");
        self.by_id.remove(&s.id);
        self.core.client.session_stop(s.id, t, cause);
        self.core.counters.sessions_stopped += 1;
    }

    /// Disconnect releases the bindings it names; a CoA has nothing to change at the anchor.
    fn dae(&mut self, req: DaeRequest, bindings: &[BindingSummary], h: &AnchorHandle) {
        let mut nais: Vec<String> = bindings
            .iter()
            .filter(|b| {
                let t = Target {
                    mac: <[u8; 6]>::try_from(b.llid.as_slice()).ok(),
                    names: [b.nai.as_str(), b.nai.as_str()],
                    home: b.home_v4.map(|h| h.0),
                    session_id: self.sessions.get(&b.nai).map(|s| s.id.as_str()),
                };
                selects(&req.target, &t)
            })
            .map(|b| b.nai.clone())
            .collect();
        nais.dedup();
        tracing::info!(from = %req.from, target = ?req.target, found = nais.len(), "dynamic authorization request");
        let r = match (&req.kind, nais.is_empty()) {
            (_, true) => Err(ErrorCause::SessionContextNotFound),
            (DaeKind::Coa(_), false) => Err(ErrorCause::AdministrativelyProhibited),
            (DaeKind::Disconnect, false) => {
                for nai in nais {
                    if let Some(s) = self.sessions.get_mut(&nai) {
                        s.ending = Some(TerminateCause::AdminReset);
                    }
                    h.command(AnchorCommand::Release { nai });
                }
                Ok(())
            }
        };
        self.core.respond(&req, r);
    }
}
