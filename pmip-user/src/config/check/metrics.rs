//! `[metrics]`: where the OpenMetrics endpoint listens.
use std::net::SocketAddr;

use super::{Errors, File};
use crate::config::Metrics;

pub(super) fn check(f: &File, v: &mut Errors) -> Metrics {
    let listen = f
        .metrics
        .listen
        .as_deref()
        .and_then(|s| match s.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            Ok(_) => {
                v.err("metrics.listen", "needs a port other than 0");
                None
            }
            Err(_) => {
                v.err(
                    "metrics.listen",
                    format!(
                        "{s:?} is not an address and port (\"127.0.0.1:9417\", \"[::1]:9417\")"
                    ),
                );
                None
            }
        });
    Metrics { listen }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
role = "anchor"
protocol = "pmipv6"
[interfaces]
core = "core0"
[addresses]
ipv4 = "192.0.2.10"
[[pools]]
name = "home"
prefix = "10.64.0.0/24"
gateway = "10.64.0.1"
"#;

    #[test]
    fn off_by_default() {
        let c = Config::from_toml_str(BASE).unwrap();
        assert_eq!(c.metrics.listen, None);
    }

    #[test]
    fn listen_is_parsed_once() {
        let c = Config::from_toml_str(&format!("{BASE}\n[metrics]\nlisten = \"[::1]:9417\"\n"))
            .unwrap();
        assert_eq!(c.metrics.listen, Some("[::1]:9417".parse().unwrap()));
    }

    #[test]
    fn a_bad_address_names_the_key() {
        for bad in ["localhost", "127.0.0.1", "127.0.0.1:0"] {
            let e = Config::from_toml_str(&format!("{BASE}\n[metrics]\nlisten = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("metrics.listen: "), "{bad}: {e}");
        }
    }
}
