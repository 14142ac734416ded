//! AAA: RADIUS authorization, accounting and dynamic authorization for the agent.
pub mod authz;
pub mod config;
pub mod wire;
