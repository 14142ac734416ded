//! The access glue's AAA: each subscriber's profile from the operator's RADIUS servers at
//! attach, its accounting session, its Session-Timeout, and what a Disconnect- or
//! CoA-Request names.
//!
//! Authorization never blocks the glue's loop: [`AccessAaa::resolve`] starts an
//! Access-Request and says `Pending`; the answer comes back as [`Input::Answer`] and the
//! glue calls its attach again, which then finds the answer here. Many subscribers are
//! authorized at once (the client pipelines them, `aaa.window`).
//!
//! Which profile (seed 004, `mn-profile-load-aaa` with a default profile):
//! 1. a local profile for the subscriber's NAI or MAC: used as is, no request;
//! 2. else the servers: Accept → its profile merged over the interface's default profile;
//!    Reject, no answer or overload → the default profile if the interface has one, else
//!    the attach is refused (and counted).
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use super::{access_cause, profile, selects, Core, Dp, Input, Target};
use crate::aaa::{
    AcctSession, AuthOutcome, DaeKind, DaeRequest, Subscriber, TerminateCause, Traffic,
};
use crate::access::dhcp::BindingInfo;
use crate::agent::registrar::AccessEvent;
use crate::config::{Config, Profile};
use crate::ctl::Response;
use crate::dataplane::AccessPoint;

/// The attach's profile, or why there is none yet (a short-lived return value: not boxed).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Resolved<'a> {
    /// Register under this NAI with this profile.
    Ready(String, Cow<'a, Profile>),
    /// Asked the servers; the attach resumes when they answer.
    Pending,
    /// No profile: refuse the attach (already logged and counted).
    Refused,
}

/// An attach waiting for its answer: what it needs to resume.
struct Waiting {
    token: u64,
    client_id: Option<Vec<u8>>,
    requested: Option<Ipv4Addr>,
}

/// An accounting session (one per binding at this gateway).
struct Session {
    id: String,
    sub_id: u32,
    base: Traffic,
    home: Option<Ipv4Addr>,
}

/// A subscriber the glue registered (or is registering).
struct Known {
    nai: String,
    /// Accounting's User-Name.
    user_name: String,
    ifname: String,
    extras: profile::Extras,
    session: Option<Session>,
    /// Why it is going, when the glue knows (DHCP release, ARP, operator...).
    ending: Option<TerminateCause>,
    /// When its Session-Timeout runs out.
    deadline: Option<Instant>,
    /// DNS servers a CoA-Request set.
    dns: Option<Vec<Ipv4Addr>>,
    /// The lease last handed to the DHCP server (a CoA sends it again, changed).
    lease: Option<BindingInfo>,
}

struct Inner {
    core: Core,
    next_token: u64,
    waiting: HashMap<AccessPoint, Waiting>,
    answers: HashMap<AccessPoint, AuthOutcome>,
    known: HashMap<AccessPoint, Known>,
    by_session: HashMap<String, AccessPoint>,
    deadlines: BTreeSet<(Instant, AccessPoint)>,
}

/// The access side's AAA; inert without `[aaa]`.
pub(crate) struct AccessAaa {
    inner: Option<Inner>,
}

impl AccessAaa {
    /// Starts the client (and DAE listener) of `[aaa]`; returns the data plane for the
    /// registrar's shell.
    pub(crate) async fn start(cfg: &Config, dp: super::SharedDp) -> Result<(AccessAaa, Dp)> {
        let (core, dp) = super::start(cfg, dp).await?;
        let inner = core.map(|core| Inner {
            core,
            next_token: 0,
            waiting: HashMap::new(),
            answers: HashMap::new(),
            known: HashMap::new(),
            by_session: HashMap::new(),
            deadlines: BTreeSet::new(),
        });
        Ok((AccessAaa { inner }, dp))
    }

    /// Without AAA (what the glue holds once the real one is shut down).
    pub(crate) fn none() -> AccessAaa {
        AccessAaa { inner: None }
    }

    /// The profile and NAI of a subscriber at attach (see the module's rules).
    pub(crate) fn resolve<'a>(
        &mut self,
        cfg: &'a Config,
        at: AccessPoint,
        (client_id, requested): (Option<&[u8]>, Option<Ipv4Addr>),
        ifname: &str,
    ) -> Resolved<'a> {
        let derived = crate::access::subscriber_nai(client_id, &at.mac);
        let local = cfg
            .profiles
            .iter()
            .find(|p| p.nai.as_deref() == Some(derived.as_str()) || p.mac == Some(at.mac));
        let Some(i) = self.inner.as_mut() else {
            return local_profile(cfg, client_id, &at, ifname);
        };
        if local.is_some() || !i.core.cfg.authorization {
            if local.is_some() && i.core.cfg.authorization {
                i.core.counters.local_profiles += 1;
            }
            let r = local_profile(cfg, client_id, &at, ifname);
            if let Resolved::Ready(nai, _) = &r {
                i.know(at, nai.clone(), nai.clone(), ifname, Default::default());
            }
            return r;
        }
        if let Some(outcome) = i.answers.remove(&at) {
            return i.answered_profile(cfg, at, derived, ifname, outcome);
        }
        if !i.waiting.contains_key(&at) {
            i.ask(at, client_id, requested, derived, ifname);
        }
        Resolved::Pending
    }

    /// An answer arrived: the arguments to resume the attach with, or None when the
    /// subscriber left meanwhile (or the answer is stale).
    pub(crate) fn answered(
        &mut self,
        at: AccessPoint,
        token: u64,
        outcome: AuthOutcome,
    ) -> Option<(Option<Vec<u8>>, Option<Ipv4Addr>)> {
        let i = self.inner.as_mut()?;
        if i.waiting.get(&at).map(|w| w.token) != Some(token) {
            return None;
        }
        let w = i.waiting.remove(&at)?;
        i.answers.insert(at, outcome);
        Some((w.client_id, w.requested))
    }

    /// The glue is letting the subscriber go, for this reason (the Stop's cause); a
    /// pending authorization is dropped.
    pub(crate) fn ending(&mut self, at: &AccessPoint, cause: TerminateCause) {
        let Some(i) = self.inner.as_mut() else { return };
        i.waiting.remove(at);
        i.answers.remove(at);
        if let Some(k) = i.known.get_mut(at) {
            k.ending.get_or_insert(cause);
        }
    }

    /// The attach was refused after all (e.g. its anchor is unknown). A subscriber whose
    /// binding lives on (a refused re-attach) keeps its session.
    pub(crate) fn forget(&mut self, at: &AccessPoint) {
        if let Some(i) = self.inner.as_mut() {
            if i.known.get(at).is_some_and(|k| k.session.is_none()) {
                i.forget_known(at);
            }
        }
    }

    /// Every registrar event, before the glue acts on it.
    pub(crate) fn on_event(&mut self, ev: &AccessEvent) {
        let Some(i) = self.inner.as_mut() else { return };
        match ev {
            AccessEvent::Registered { at, home_v4, .. } => {
                i.registered(*at, home_v4.map(|h| h.0));
            }
            AccessEvent::Failed { at, .. } => i.end(at, TerminateCause::LostService),
            AccessEvent::Gone { at, cause } => i.end(at, access_cause(*cause)),
            // The glue calls `restored` (it knows the interface).
            AccessEvent::Restored { .. } => {}
            // The session goes on; interim records carry the counters.
            AccessEvent::Refreshed { .. } | AccessEvent::CheckPresence { .. } => {}
        }
    }

    /// A subscriber of the last run, taken up from the store: its accounting
    /// starts a new session (the last run's ended with its Accounting-Off).
    /// What RADIUS gave it at attach (`stored`, from its record) applies again:
    /// the interim interval, accounting's User-Name and Class, and the
    /// Session-Timeout, which ends when it would have without the restart.
    pub(crate) fn restored(
        &mut self,
        at: AccessPoint,
        (nai, ifname): (&str, &str),
        home: Option<Ipv4Addr>,
        stored: Option<&crate::store::AaaProfile>,
    ) {
        let Some(i) = self.inner.as_mut() else { return };
        let (user, extras) = match stored {
            Some(r) => {
                let (_, mut ex) = super::persist::profile(r, nai);
                let user = ex.user_name.take().unwrap_or_else(|| nai.to_string());
                (user, ex)
            }
            None => (nai.to_string(), Default::default()),
        };
        i.know(at, nai.to_string(), user, ifname, extras);
        let left = stored.and_then(|r| super::persist::session_left(r, SystemTime::now()));
        i.registered_for(at, home, left);
    }

    /// The profile a subscriber was authorized with, as the registrar keeps it
    /// in its record, with what CoA-Requests changed since (None: a local profile).
    pub(crate) fn stored(&self, at: &AccessPoint) -> Option<Box<crate::store::AaaProfile>> {
        let k = self.inner.as_ref()?.known.get(at)?;
        k.extras.stored.clone()
    }

    /// The lease the DHCP server will give: never past the Session-Timeout, with the DNS
    /// servers a CoA set.
    pub(crate) fn lease(&mut self, at: &AccessPoint, mut info: BindingInfo) -> BindingInfo {
        let Some(k) = self.inner.as_mut().and_then(|i| i.known.get_mut(at)) else {
            return info;
        };
        if let Some(d) = k.deadline {
            let left = d.saturating_duration_since(Instant::now());
            info.lifetime = info.lifetime.min(left.max(Duration::from_secs(1)));
        }
        if let Some(dns) = &k.dns {
            info.dns = dns.clone();
        }
        k.lease = Some(info.clone());
        info
    }

    /// The next input for the glue's loop (never, without `[aaa]`).
    pub(crate) async fn recv(&mut self) -> Input {
        let Some(i) = self.inner.as_mut() else {
            return std::future::pending().await;
        };
        let next = i.deadlines.first().copied();
        let timer = crate::sys::sleep_until(next.map(|(t, _)| t));
        tokio::select! {
            Some(x) = i.core.recv() => x,
            _ = timer => {
                let (t, at) = next.expect("armed only with a deadline");
                i.deadlines.remove(&(t, at));
                i.core.counters.session_timeouts += 1;
                Input::SessionTimeout(at)
            }
        }
    }

    /// An Interim-Update is due: the session's counters so far.
    pub(crate) fn interim(&mut self, session_id: &str) {
        let Some(i) = self.inner.as_mut() else { return };
        let Some(at) = i.by_session.get(session_id).copied() else {
            return;
        };
        if let Some(t) = i.traffic(&at, false) {
            i.core.counters.interim_updates += 1;
            i.core.client.session_update(session_id.to_string(), t);
        }
    }

    /// Counts a client event that is not an Interim-Update.
    pub(crate) fn client_event(&mut self, e: &crate::aaa::AaaEvent) {
        if let Some(i) = self.inner.as_mut() {
            i.core.dropped(e);
        }
    }

    /// The subscribers a Disconnect/CoA-Request names.
    pub(crate) fn select(&self, req: &DaeRequest) -> Vec<AccessPoint> {
        let Some(i) = self.inner.as_ref() else {
            return Vec::new();
        };
        i.known
            .iter()
            .filter(|(at, k)| {
                let t = Target {
                    mac: Some(at.mac),
                    names: [&k.nai, &k.user_name],
                    home: k.session.as_ref().and_then(|s| s.home),
                    session_id: k.session.as_ref().map(|s| s.id.as_str()),
                };
                selects(&req.target, &t)
            })
            .map(|(at, _)| *at)
            .collect()
    }

    /// Applies a CoA-Request's changes to `at`; the lease to hand the DHCP server again.
    pub(crate) fn coa(&mut self, at: &AccessPoint, req: &DaeRequest) -> Option<BindingInfo> {
        let DaeKind::Coa(p) = &req.kind else {
            return None;
        };
        let i = self.inner.as_mut()?;
        let k = i.known.get_mut(at)?;
        if let Some(t) = p.lifetime.filter(|t| !t.is_zero()) {
            // RFC 5176 §3.1 with RFC 2865 §5.27: the session may last this much longer.
            if let Some(d) = k.deadline.take() {
                i.deadlines.remove(&(d, *at));
            }
            let d = Instant::now() + t;
            k.deadline = Some(d);
            k.extras.session_timeout = Some(t);
            i.deadlines.insert((d, *at));
            if let Some(r) = k.extras.stored.as_mut() {
                // The record's Session-Timeout runs from now on (persist::session_left).
                r.session_timeout_s = Some(t.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
                r.session_start_ms = crate::store::wall_ms(SystemTime::now());
            }
        }
        let dns: Vec<Ipv4Addr> = p
            .dns
            .iter()
            .filter_map(|a| match a {
                std::net::IpAddr::V4(a) => Some(*a),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        if !dns.is_empty() {
            if let Some(r) = k.extras.stored.as_mut() {
                r.dns.clone_from(&dns);
            }
            k.dns = Some(dns);
        }
        let lease = k.lease.clone()?;
        Some(self.lease(at, lease))
    }

    pub(crate) fn respond(&mut self, req: &DaeRequest, r: Result<(), crate::aaa::ErrorCause>) {
        if let Some(i) = self.inner.as_mut() {
            i.core.respond(req, r);
        }
    }

    /// pmipd is stopping: every session ends now.
    pub(crate) fn stop_all(&mut self) {
        let Some(i) = self.inner.as_mut() else { return };
        let ats: Vec<AccessPoint> = i.known.keys().copied().collect();
        for at in ats {
            if let Some(k) = i.known.get_mut(&at) {
                k.ending.get_or_insert(TerminateCause::AdminReboot);
            }
            i.end_live(&at);
        }
    }

    /// Lets the accounting queue drain (bounded) and stops the client.
    pub(crate) async fn shutdown(self) {
        if let Some(i) = self.inner {
            i.core.shutdown(Duration::from_secs(1)).await;
        }
    }

    pub(crate) async fn show(&self, role: &str) -> Response {
        match &self.inner {
            Some(i) => {
                let n = i.known.values().filter(|k| k.session.is_some()).count();
                i.core.view(role, n).await
            }
            None => super::not_configured(role),
        }
    }
}

/// The local profile (by NAI, MAC, or the interface's default), as without AAA.
fn local_profile<'a>(
    cfg: &'a Config,
    client_id: Option<&[u8]>,
    at: &AccessPoint,
    ifname: &str,
) -> Resolved<'a> {
    let (nai, profile) = cfg.resolve_subscriber(client_id, &at.mac, ifname);
    match profile {
        Some(p) => Resolved::Ready(nai, Cow::Borrowed(p)),
        None => {
            tracing::info!(mac = %super::super::control::mac_str(&at.mac), %nai, "no profile and no default profile: refused");
            Resolved::Refused
        }
    }
}

fn default_profile<'a>(cfg: &'a Config, ifname: &str) -> Option<&'a Profile> {
    let i = cfg.interfaces.access.iter().find(|i| i.name == ifname)?;
    cfg.profile(i.default_profile.as_deref()?)
}

impl Inner {
    fn know(
        &mut self,
        at: AccessPoint,
        nai: String,
        user_name: String,
        ifname: &str,
        extras: profile::Extras,
    ) {
        // A subscriber attaching again keeps its session (the registrar keeps the binding).
        if let Some(k) = self.known.get_mut(&at) {
            k.ending = None;
            return;
        }
        self.known.insert(
            at,
            Known {
                nai,
                user_name,
                ifname: ifname.to_string(),
                extras,
                session: None,
                ending: None,
                deadline: None,
                dns: None,
                lease: None,
            },
        );
    }

    fn ask(
        &mut self,
        at: AccessPoint,
        client_id: Option<&[u8]>,
        requested: Option<Ipv4Addr>,
        derived: String,
        ifname: &str,
    ) {
        self.next_token += 1;
        let token = self.next_token;
        self.waiting.insert(
            at,
            Waiting {
                token,
                client_id: client_id.map(<[u8]>::to_vec),
                requested,
            },
        );
        self.core.counters.authorizations += 1;
        let is_mac = derived == crate::access::frame::mac_dotted(&at.mac);
        let sub = Subscriber {
            mac: at.mac,
            nai: (!is_mac).then_some(derived),
            nas_port_id: Some(ifname.to_string()),
            called_station_id: None,
        };
        let (client, tx) = (self.core.client.clone(), self.core.tx.clone());
        tokio::spawn(async move {
            let outcome = client.authorize(sub).await;
            let _ = tx.send(Input::Answer { at, token, outcome });
        });
    }

    fn answered_profile<'a>(
        &mut self,
        cfg: &'a Config,
        at: AccessPoint,
        derived: String,
        ifname: &str,
        outcome: AuthOutcome,
    ) -> Resolved<'a> {
        let mac = super::super::control::mac_str(&at.mac);
        let c = &mut self.core.counters;
        let why = match outcome {
            AuthOutcome::Accept(p) => {
                c.accepted += 1;
                let base = default_profile(cfg, ifname);
                let sent_name = Subscriber {
                    mac: at.mac,
                    nai: Some(derived.clone())
                        .filter(|d| *d != crate::access::frame::mac_dotted(&at.mac)),
                    nas_port_id: None,
                    called_station_id: None,
                }
                .user_name(&self.core.cfg);
                return match profile::merge(cfg, base, &p, derived) {
                    Ok((nai, prof, mut ex)) => {
                        tracing::info!(%mac, %nai, profile = %prof.name, anchor = ?prof.anchor, alternate = ?prof.alternate_anchor, home = ?prof.home_address, session_timeout = ?ex.session_timeout, "RADIUS Access-Accept");
                        if !ex.ignored.is_empty() {
                            tracing::warn!(%mac, ignored = ?ex.ignored, "Access-Accept attributes not used");
                        }
                        let user = ex.user_name.take().unwrap_or(sent_name);
                        let rec = super::persist::record(&prof, &ex, &user, SystemTime::now());
                        ex.stored = Some(Box::new(rec));
                        self.know(at, nai.clone(), user, ifname, ex);
                        Resolved::Ready(nai, Cow::Owned(prof))
                    }
                    Err(e) => {
                        self.core.counters.unusable_accepts += 1;
                        self.core.counters.refused += 1;
                        tracing::warn!(%mac, "RADIUS Access-Accept unusable: {e}; refused");
                        Resolved::Refused
                    }
                };
            }
            AuthOutcome::Reject { reply_message } => {
                c.rejected += 1;
                format!("Access-Reject ({})", reply_message.unwrap_or_default())
            }
            AuthOutcome::Timeout => {
                c.timeouts += 1;
                "no RADIUS server answered".to_string()
            }
            AuthOutcome::Overloaded => {
                c.overloaded += 1;
                "RADIUS client overloaded".to_string()
            }
        };
        match default_profile(cfg, ifname) {
            Some(p) => {
                self.core.counters.default_profile += 1;
                let nai = p.nai.clone().unwrap_or(derived);
                tracing::info!(%mac, %nai, profile = %p.name, "{why}: default profile");
                self.know(at, nai.clone(), nai.clone(), ifname, Default::default());
                Resolved::Ready(nai, Cow::Borrowed(p))
            }
            None => {
                self.core.counters.refused += 1;
                tracing::info!(%mac, "{why} and no default profile: refused");
                Resolved::Refused
            }
        }
    }

    /// Registered (or refreshed): the session starts with the first one.
    fn registered(&mut self, at: AccessPoint, home: Option<Ipv4Addr>) {
        self.registered_for(at, home, None);
    }

    /// As `registered`; `left`: what is left of the Session-Timeout (a restored
    /// subscriber's), else all of it.
    fn registered_for(&mut self, at: AccessPoint, home: Option<Ipv4Addr>, left: Option<Duration>) {
        let accounting = self.core.accounting();
        let Some(k) = self.known.get_mut(&at) else {
            return;
        };
        if let Some(s) = &mut k.session {
            if s.home != home {
                // Same session, new description (RFC 2866: the Start is not sent again).
                s.home = home;
                let desc = description(k, &at);
                self.core.client.session_start(desc, k.extras.interim);
            }
            return;
        }
        if let Some(t) = k.extras.session_timeout {
            let d = Instant::now() + left.unwrap_or(t);
            k.deadline = Some(d);
            self.deadlines.insert((d, at));
        }
        let Some((sub_id, base)) = self
            .core
            .meter
            .as_ref()
            .filter(|_| accounting)
            .and_then(|m| m.access_start(&at))
        else {
            return;
        };
        let id = self.core.session_id();
        k.session = Some(Session {
            id: id.clone(),
            sub_id,
            base,
            home,
        });
        let desc = description(k, &at);
        self.core.client.session_start(desc, k.extras.interim);
        self.by_session.insert(id, at);
        self.core.counters.sessions_started += 1;
    }

    /// The session's traffic so far (`ended`: as the binding's removal left it).
    fn traffic(&self, at: &AccessPoint, ended: bool) -> Option<Traffic> {
        let s = self.known.get(at)?.session.as_ref()?;
        let m = self.core.meter.as_ref()?;
        Some(m.traffic(s.sub_id, s.base, ended))
    }

    /// The binding ended: Stop (with the glue's reason if it had one), forget it.
    fn end(&mut self, at: &AccessPoint, cause: TerminateCause) {
        if let Some(k) = self.known.get_mut(at) {
            k.ending.get_or_insert(cause);
        }
        self.stop(at, true);
        self.forget_known(at);
    }

    /// Stop with the counters as they are now (the binding is still in the maps).
    fn end_live(&mut self, at: &AccessPoint) {
        self.stop(at, false);
        self.forget_known(at);
    }

    fn stop(&mut self, at: &AccessPoint, ended: bool) {
        let t = self.traffic(at, ended);
        let Some(k) = self.known.get_mut(at) else {
            return;
        };
        if let (Some(s), Some(t)) = (k.session.take(), t) {
            let cause = k.ending.unwrap_or(TerminateCause::NasRequest);
            tracing::info!(nai = %k.nai, session = %s.id, ?cause, up_packets = t.input_packets, down_packets = t.output_packets, "accounting stop");
            self.by_session.remove(&s.id);
            self.core.client.session_stop(s.id, t, cause);
            self.core.counters.sessions_stopped += 1;
        }
    }

    fn forget_known(&mut self, at: &AccessPoint) {
        if let Some(k) = self.known.remove(at) {
            if let Some(d) = k.deadline {
                self.deadlines.remove(&(d, *at));
            }
        }
    }
}

/// The accounting description of a subscriber's session.
fn description(k: &Known, at: &AccessPoint) -> AcctSession {
    let s = k.session.as_ref();
    AcctSession {
        session_id: s.map(|s| s.id.clone()).unwrap_or_default(),
        multi_session_id: None,
        user_name: k.user_name.clone(),
        mac: at.mac,
        framed_ip: s.and_then(|s| s.home),
        framed_ipv6_prefix: None,
        class: k.extras.class.clone(),
        nas_port_id: Some(k.ifname.clone()),
        called_station_id: None,
    }
}
