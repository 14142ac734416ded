//! AAA: RADIUS authorization, accounting and dynamic authorization for the agent.
pub mod wire;
