//! The `pmipd` configuration file (TOML): read, deserialized, checked and
//! turned into typed settings, once, at start.
//!
//! ```text
//!  file ─read─► text ─serde─► file::File ─check─► Config ─agents─► MagConfig / LmaConfig / PmaConfig / HaConfig
//!               (strings as written)   (per section)  (typed)    (one conversion place)
//! ```
//! - `file`     — the serde structs, as TOML spells them (`deny_unknown_fields`).
//! - `defaults` — every default value, in one place.
//! - `check/`   — one function per section: reports each problem at its key
//!   path (`peers[1].spi: must be >= 256`) and returns the section typed.
//! - `settings` — the typed [`Config`] the daemon uses: addresses, prefixes
//!   ([`Ipv4Prefix`]), MACs as `[u8; 6]`, keys as bytes, `Duration`s.
//! - `agents`   — the agents' and the fast path's configurations, built from it.
//!
//! Every knob of seeds 000 (StarOS proxy-mip) and 004 (Cisco MAG) that applies
//! has a key; the mapping is in docs/config-reference.md and in `examples/`.
use std::fmt;
use std::path::Path;

mod access_tech;
pub(crate) mod agents;
mod check;
mod defaults;
mod file;
mod prefix;
mod settings;

pub use access_tech::AccessTechnology;
pub use prefix::{Ipv4Prefix, Ipv6Prefix, Prefix};
pub use settings::*;

/// One problem, at one key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub problem: String,
}
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}
impl std::error::Error for ConfigError {}

/// All the problems of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl Config {
    /// Reads, parses and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses and checks; on success, the role's agent configuration builds.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let raw: file::File = toml::from_str(text).map_err(|e| ConfigError {
            // toml's message names the key and shows the line; keep it whole.
            path: "(syntax)".into(),
            problem: e.to_string(),
        })?;
        let cfg = check::check(&raw)?;
        agents::dry_run(&cfg)?;
        Ok(cfg)
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
