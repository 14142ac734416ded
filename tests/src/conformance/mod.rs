//! The conformance suite's helpers (issue 12): the other side of every
//! exchange, written from the RFC figures (`mh` for PMIPv6, `mip4` for
//! PMIPv4), and the namespace beds around a real `pmipd run` (`bed`).
//! The tests are tests/conformance_pmipv6.rs and conformance_pmipv4.rs; the
//! requirement table they check is docs/conformance.md.
pub mod bed;
pub mod mh;
pub mod mip4;
pub mod v4;
pub mod v6;
