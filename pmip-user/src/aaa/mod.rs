//! AAA: RADIUS authorization, accounting and dynamic authorization for the agent.
pub mod accounting;
mod acct_queue;
pub mod authz;
pub mod config;
pub mod wire;
