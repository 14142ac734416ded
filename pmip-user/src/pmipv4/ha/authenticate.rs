//! How the HA authenticates a Proxy Registration Request (draft-leung §4.3,
//! §13; RFC 3344 §3.8.2.1 as RFC 5944 words it):
//!
//! - **Per node**: the PMA's FA-HA extension alone authenticates the
//!   request — with the Per-Node Authentication Method extension (draft
//!   §5.1), or without it as StarOS's proxy-MIP FA sends it (seed 000:
//!   "the FA-HA extension (SPI)"). Missing, unknown SPI, bad or twice → 132.
//! - **Per MN**: no Per-Node Authentication Method extension and an MN-HA
//!   extension (RFC 3344 §3.5.2; draft §4.3 "per MN SA", the WiMAX and
//!   3GPP2 way). The association is the NAI's (`[[mn_ha]]`, by NAI or
//!   realm). (a) its authenticator invalid → 131, the reply signed with the
//!   MN's association. (c) the HA shares an association with every PMA it
//!   serves, so a registration (non-zero lifetime) must also carry exactly
//!   one valid FA-HA extension after it → else 132; a de-registration may
//!   come without one. Replies carry the MN-HA extension, then the FA-HA one.
//! - **Per MN, of a mobile node without an association here**: taken per
//!   node. (a) lets the HA "verify that the Authenticator Value has been
//!   checked by another agent with which it has a security association" —
//!   the PMA, whose FA-HA extension is checked (132) — rather than discard
//!   it; an HA configured per node keeps serving a PMA that also signs per
//!   MN, as it did before per-MN associations existed. Counted `mn_unknown`.
use std::sync::Arc;

use super::super::auth::{self, AuthError, PeerKeys, SecurityAssociation};
use super::super::wire::ext::{AuthKind, ExtList as _};
use super::super::wire::{RegistrationRequestRepr, ReplyCode};
use super::{Ha, PmaPeer};

/// What authenticating a request came to.
pub(super) enum Authentication {
    /// Authenticated; per MN: the MN's associations, which sign the reply.
    Passed(Option<MnKeys>),
    /// Refused with this code; the reply is signed with the MN's
    /// association too when the request was per MN.
    Refused(ReplyCode, Option<MnKeys>),
}

/// A per-MN request's mobile node: its associations, and the SPI its
/// MN-HA extension named.
#[derive(Clone)]
pub(super) struct MnKeys {
    keys: Arc<PeerKeys>,
    spi: Option<u32>,
}

impl MnKeys {
    /// What the reply's MN-HA extension is made with: the association the
    /// request used (during a rollover the PMA may be on the one we also
    /// accept), or, unknown, the current one.
    pub(super) fn sa(&self) -> &SecurityAssociation {
        self.keys.answering(self.spi)
    }
}

impl Ha {
    pub(super) fn authenticate(
        &mut self,
        payload: &[u8],
        rrq: &RegistrationRequestRepr,
        peer: &PmaPeer,
    ) -> Authentication {
        let fa_ha = auth::verify_with(payload, AuthKind::FaHa, &peer.sa);
        let exts = &rrq.extensions;
        let per_mn = exts.per_node_auth_method().is_none() && exts.auth(AuthKind::MnHa).is_some();
        let nai = exts.nai().and_then(|n| std::str::from_utf8(n).ok());
        let mn = per_mn
            .then(|| nai.and_then(|n| self.cfg.mn_ha.get(n)).cloned())
            .flatten();
        let Some(keys) = mn else {
            if per_mn {
                self.counters.mn_unknown += 1;
            }
            return match fa_ha {
                Ok(_) => Authentication::Passed(None),
                Err(e) => Authentication::Refused(self.fa_ha_refusal(e), None),
            };
        };
        let spi = exts.auth(AuthKind::MnHa).map(|(spi, _)| spi);
        let sa = MnKeys { keys, spi };
        if let Err(e) = auth::verify_mn_ha(payload, &sa.keys) {
            if matches!(e, AuthError::NotLast | AuthError::Malformed) {
                self.counters.poorly_formed += 1;
                return Authentication::Refused(ReplyCode::PoorlyFormed, Some(sa));
            }
            // RFC 5944 §3.8.2.1 (a): "the home agent MUST reject the mobile
            // node's registration" — 131 — "and SHOULD log the error as a
            // security exception".
            self.counters.mn_failed_auth += 1;
            // The security exception is the reply's: the signaling metrics
            // log every 131 at warn, rate-limited (`event="auth_failed"`); a
            // remote party can send these at will, so no line of our own.
            tracing::debug!(nai = nai.unwrap_or_default(), pma = %peer.address, ?e,
                "MN-HA authentication failed (RFC 3344 §3.8.2.1); answered 131");
            return Authentication::Refused(ReplyCode::MnFailedAuth, Some(sa));
        }
        match fa_ha {
            Ok(_) => Authentication::Passed(Some(sa)),
            // (c) applies to a request "that has non-zero Lifetime".
            Err(AuthError::Missing) if rrq.lifetime == 0 => Authentication::Passed(Some(sa)),
            Err(e) => Authentication::Refused(self.fa_ha_refusal(e), Some(sa)),
        }
    }

    /// The code, and the counter, of a failed FA-HA extension (RFC 3344 §3.8.2.1 (c)).
    fn fa_ha_refusal(&mut self, e: AuthError) -> ReplyCode {
        let c = &mut self.counters;
        match e {
            AuthError::Missing => c.missing_auth += 1,
            AuthError::UnknownSpi(_) => c.unknown_spi += 1,
            AuthError::BadAuthenticator => c.bad_authenticator += 1,
            // "if more than one Foreign-Home Authentication Extension is
            // found ... Code 132".
            AuthError::Duplicate => c.duplicate_auth += 1,
            AuthError::NotLast | AuthError::Malformed => {
                c.poorly_formed += 1;
                return ReplyCode::PoorlyFormed;
            }
        }
        ReplyCode::FaFailedAuth
    }
}
