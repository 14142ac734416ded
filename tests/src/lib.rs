//! Helpers for the integration tests: network namespaces, veths, cleanup on drop.
pub mod netns;
pub mod fixture;
pub mod pcap;
pub mod tput;
pub mod scale;
