//! AAA for the agent: RADIUS authorization (RFC 2865), accounting (RFC 2866) and dynamic
//! authorization (RFC 5176) against the operator's servers (issue 14; seeds 000 and 004).
//!
//! - [`wire`]       — the RADIUS codec: packets, attributes, vendor attributes, authenticators.
//! - [`config`]     — the `[aaa]` section (IOS `radius-server` / `aaa` commands), its check
//!   and defaults; secrets are never printed.
//! - [`authz`]      — the Access-Request built from a subscriber, the profile read from the
//!   Access-Accept, the outcome of an authorization.
//! - [`accounting`] — accounting records, the Accounting-Request, the spool file.
//! - [`client`]     — the sans-IO client: servers in failover order, retransmissions,
//!   identifiers, the accounting queue and interim timers.
//! - [`dae`]        — the sans-IO Disconnect/CoA listener.
//! - [`shell`]      — the tokio shells around both.
//! - [`stats`]      — counters for `pmipctl show aaa`.
//!
//! How the agent uses it (the lead wires it into the daemon):
//! 1. Attach of an unknown subscriber → `AaaHandle::authorize(Subscriber)`:
//!    `Accept(profile)` → merge over the interface's default profile; `Reject`, `Timeout`
//!    or `Overloaded` → the default profile if configured, else refuse the attach.
//! 2. Binding active → `session_start(AcctSession, profile.interim_interval)`; refresh or
//!    handover → `session_start` again (description updated, nothing sent);
//!    `AaaEvent::InterimDue` → `session_update(id, counters)`; binding ended →
//!    `session_stop(id, counters, cause)`.
//! 3. `DaeRequest` from `spawn_dae` → find the binding(s) by its `SessionSelector`,
//!    deregister (Disconnect) or apply lifetime/DNS (CoA), then `DaeHandle::respond`.
pub mod accounting;
mod acct_queue;
pub mod authz;
pub mod client;
pub mod config;
pub mod dae;
pub mod shell;
pub mod stats;
pub mod wire;

#[cfg(test)]
mod sim_tests;

pub use accounting::{AcctRecord, AcctSession, AcctStatus, TerminateCause, Traffic};
pub use authz::{AuthOutcome, MnService, Profile, Subscriber};
pub use client::{AaaClient, AaaEvent, RequestId, Transmit};
pub use config::{AaaConfig, MacFormat, Secret};
pub use dae::{DaeKind, DaeRequest, DaeServer, ErrorCause, SessionSelector};
pub use shell::{spawn_client, spawn_dae, AaaHandle, DaeHandle};
pub use stats::{AaaStats, ServerStats};
