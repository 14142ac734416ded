//! The access glue's side of AAA inputs (the state lives in `daemon::aaa::AccessAaa`):
//! authorization answers resume the attach, Interim-Updates read the counters, a
//! Disconnect-Request or a Session-Timeout lets the subscriber go, a CoA-Request changes
//! its lease.
use super::Glue;
use crate::aaa::{AaaEvent, DaeKind, DaeRequest, ErrorCause, TerminateCause};
use crate::access::shell::DhcpCmd;
use crate::agent::registrar::AccessCommand;
use crate::daemon::aaa::Input;
use crate::daemon::control::mac_str;
use crate::dataplane::AccessPoint;

impl Glue<'_> {
    pub(super) fn on_aaa(&mut self, input: Input) {
        match input {
            Input::Answer { at, token, outcome } => {
                if let Some((client_id, requested)) = self.aaa.answered(at, token, outcome) {
                    self.attach(at, client_id.as_deref(), requested);
                }
            }
            Input::Event(AaaEvent::InterimDue { session_id }) => self.aaa.interim(&session_id),
            Input::Event(e) => self.aaa.client_event(&e),
            Input::Dae(req) => self.on_dae(req),
            Input::SessionTimeout(at) => {
                tracing::info!(mac = %mac_str(&at.mac), "Session-Timeout: deregistering");
                self.release(at, TerminateCause::SessionTimeout);
            }
        }
    }

    /// The gateway ends the subscriber's service: its lease is withdrawn and it is
    /// deregistered (as `clear binding` does).
    fn release(&mut self, at: AccessPoint, cause: TerminateCause) {
        self.aaa.ending(&at, cause);
        if let Some(l) = self.links.get(&at.ifindex) {
            let _ = l.dhcp.send(DhcpCmd::BindingGone { mac: at.mac });
        }
        self.detach(at);
    }

    /// RFC 5176: Disconnect deregisters every binding the request names; CoA changes what
    /// can change without a new registration. NAK 503 when it names nobody here.
    fn on_dae(&mut self, req: DaeRequest) {
        let ats = self.aaa.select(&req);
        let kind = match req.kind {
            DaeKind::Disconnect => "Disconnect-Request",
            DaeKind::Coa(_) => "CoA-Request",
        };
        tracing::info!(from = %req.from, target = ?req.target, found = ats.len(), "{kind}");
        if ats.is_empty() {
            self.aaa
                .respond(&req, Err(ErrorCause::SessionContextNotFound));
            return;
        }
        match &req.kind {
            DaeKind::Disconnect => {
                for at in ats {
                    self.release(at, TerminateCause::AdminReset);
                }
            }
            DaeKind::Coa(_) => {
                for at in ats {
                    let Some(info) = self.aaa.coa(&at, &req) else {
                        continue;
                    };
                    if let Some(l) = self.links.get(&at.ifindex) {
                        // Kept by the DHCP server: the subscriber's next renewal gets it.
                        let _ = l.dhcp.send(DhcpCmd::BindingReady { mac: at.mac, info });
                    }
                    // The binding's record keeps the change: a restarted gateway
                    // serves what the CoA set, not what the Access-Accept said.
                    if let Some(aaa) = self.aaa.stored(&at) {
                        self.command(AccessCommand::UpdateAaa { at, aaa });
                    }
                }
            }
        }
        self.aaa.respond(&req, Ok(()));
    }
}
