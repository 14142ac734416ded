//! Dynamic HA assignment at the PMA (RFC 4433): a registration sent to an
//! HA that may assign another one (a cluster address) asks for it (HA field
//! 255.255.255.255 and the Requested HA extension, `send_request`); a reply
//! that names a Redirected HA sends the registration there at once, and
//! that HA serves the subscriber from then on.
use std::time::Instant;

use super::super::wire::ext::ExtList as _;
use super::super::wire::RegistrationReplyRepr;
use super::{Phase, Pma};

impl Pma {
    /// A denial that redirects the registration of `nai`: sent on to the
    /// named HA, which must be one we share an FA-HA association with
    /// (its replies are authenticated). True if it was one.
    pub(super) fn on_redirect(
        &mut self,
        now: Instant,
        nai: &str,
        r: &RegistrationReplyRepr,
    ) -> bool {
        let Some(to) = r.extensions.redirected_ha() else {
            return false;
        };
        let known = self.cfg.home_agents.iter().any(|h| h.address == to);
        let Some(s) = self.sessions.get_mut(nai) else {
            return false;
        };
        if !known || !s.sub.dynamic_ha || s.phase != Phase::Registering || s.assigned_ha.is_some() {
            return false;
        }
        s.assigned_ha = Some(to);
        s.attempts = 0;
        s.attempts_this_ha = 0;
        self.counters.redirected += 1;
        tracing::debug!(%nai, ha = %to, "redirected (RFC 4433)");
        self.send_request(now, nai);
        true
    }
}
