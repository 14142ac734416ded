//! AAA: RADIUS authorization, accounting and dynamic authorization for the agent.
pub mod accounting;
mod acct_queue;
pub mod authz;
pub mod client;
pub mod config;
pub mod dae;
#[cfg(test)]
mod sim_tests;
pub mod stats;
pub mod wire;
