//! `systemctl reload` (`pmipctl reload`, or SIGHUP): the configuration file
//! is read and checked again, compared with the running one section by
//! section, and either applied — when everything that changed can change
//! live — or refused as a whole, naming what cannot, so the running
//! gateway is never half reconfigured.
//!
//! Live today: `profiles` and `dhcp.dns` on the access side (read at each
//! attach from [`Live`]); what the registrar takes through its
//! `Reconfigure` command (`agent::registrar::Reconfig`): on a PMIPv4
//! gateway (PMA, HA) its keys — the peers' FA-HA associations (`spi`,
//! `key`, `algorithm`, `also_accept`) and `mn_ha` — so that a key rollover
//! needs no restart, and on an anchor (LMA, HA) the subscriber profiles.
//! An unchanged file is a no-op. Everything else is fixed at start:
//! interfaces, addresses, the fast path's sizes and pins and the control
//! socket are the process's own resources, and the registrars take the
//! rest of their configuration (`timers`, `pools`, the peers themselves)
//! when they are built.
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::agent::registrar::Reconfig;
use crate::config::agents;
use crate::config::{Config, Peer, Protocol, Role};
use crate::ctl::Response;

/// The configuration as it is now, shared by the parts that read it per
/// request (the access glue at each attach) and swapped by a reload.
#[derive(Clone, Debug)]
pub(crate) struct Live(Arc<RwLock<Arc<Config>>>);

impl Live {
    pub(crate) fn new(cfg: Config) -> Self {
        Live(Arc::new(RwLock::new(Arc::new(cfg))))
    }

    /// The configuration now (a cheap clone of the pointer).
    pub(crate) fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, cfg: Config) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
    }
}

/// What a reload needs: the file and the running configuration.
#[derive(Clone, Debug)]
pub(crate) struct Reloader {
    pub path: PathBuf,
    pub live: Live,
}

/// The sections that differ between `old` and `new`, and whether each can
/// change while running.
pub(crate) fn changes(old: &Config, new: &Config) -> Vec<(&'static str, bool)> {
    // Every section of `Config` is named here, so that one added later does
    // not compile until it is compared below: `mn_ha` and `cluster` were
    // once left out, and a reload that changed only them answered "nothing
    // changed" while the running agents kept the old ones.
    let Config {
        role: _,
        protocol: _,
        node_id: _,
        control: _,
        interfaces: _,
        addresses: _,
        peers: _,
        mn_ha: _,
        timers: _,
        detach: _,
        dhcp:
            crate::config::Dhcp {
                dns: _,
                offer_timeout: _,
                offer_hold: _,
            },
        ipv6: _,
        pools: _,
        profiles: _,
        static_bindings: _,
        fastpath: _,
        store: _,
        signaling: _,
        admission: _,
        aaa: _,
        metrics: _,
        cluster: _,
    } = old;
    let access = old.role == Role::Access;
    let pmipv4 = old.protocol == Protocol::Pmipv4;
    let mut out = Vec::new();
    let mut note = |key: &'static str, differs: bool, live: bool| {
        if differs {
            out.push((key, live));
        }
    };
    note("role", old.role != new.role, false);
    note("protocol", old.protocol != new.protocol, false);
    note("node_id", old.node_id != new.node_id, false);
    note("control", old.control != new.control, false);
    note("interfaces", old.interfaces != new.interfaces, false);
    note("addresses", old.addresses != new.addresses, false);
    // A PMIPv4 registrar takes new keys (`Reconfigure`); any other change of a
    // peer is a restart's.
    let keys_only = keyless(&old.peers) == keyless(&new.peers);
    note("peers", old.peers != new.peers && !keys_only, false);
    note(PEER_KEYS, old.peers != new.peers && keys_only, pmipv4);
    note("mn_ha", old.mn_ha != new.mn_ha, pmipv4);
    note("timers", old.timers != new.timers, false);
    note("detach", old.detach != new.detach, false);
    note("dhcp.dns", old.dhcp.dns != new.dhcp.dns, access);
    note(
        "dhcp.offer_timeout_s",
        old.dhcp.offer_timeout != new.dhcp.offer_timeout,
        false,
    );
    note("pools", old.pools != new.pools, false);
    // The access glue resolves profiles at each attach; an anchor's
    // registrar takes them (`Reconfigure`).
    note("profiles", old.profiles != new.profiles, true);
    note(
        "static_bindings",
        old.static_bindings != new.static_bindings,
        false,
    );
    note(
        "dhcp.offer_hold_s",
        old.dhcp.offer_hold != new.dhcp.offer_hold,
        false,
    );
    note("fastpath", old.fastpath != new.fastpath, false);
    note("metrics", old.metrics != new.metrics, false);
    note("store", old.store != new.store, false);
    note("signaling", old.signaling != new.signaling, false);
    note("admission", old.admission != new.admission, false);
    note("aaa", old.aaa != new.aaa, false);
    note("ipv6", old.ipv6 != new.ipv6, false);
    note("cluster", old.cluster != new.cluster, false);
    out
}

/// What [`changes`] calls a change of the peers' PMIPv4 keys alone.
const PEER_KEYS: &str = "peers[].keys";

/// The peers without their PMIPv4 keys.
fn keyless(peers: &[Peer]) -> Vec<Peer> {
    peers
        .iter()
        .map(|p| Peer {
            sa: None,
            also_accept: Vec::new(),
            ..p.clone()
        })
        .collect()
}

impl Reloader {
    /// Reads and checks the file, and applies it if everything that changed
    /// can change live; otherwise changes nothing and says why. The
    /// registrar's new configuration comes back when something it takes
    /// changed: the caller hands it over ([`Reloader::serve`]).
    pub(crate) fn reload(&self) -> (Response, Option<Reconfig>) {
        let new = match Config::load(&self.path) {
            Ok(c) => c,
            Err(errs) => {
                let why = format!("the file has errors, nothing changed:\n{errs}");
                return (refused(&self.path, &why), None);
            }
        };
        let old = self.live.get();
        let changed = changes(&old, &new);
        let fixed: Vec<&str> = changed
            .iter()
            .filter(|(_, live)| !live)
            .map(|(k, _)| *k)
            .collect();
        if !fixed.is_empty() {
            let why = format!(
                "{} cannot change while pmipd runs (restart it to apply); nothing changed",
                fixed.join(", ")
            );
            return (refused(&self.path, &why), None);
        }
        let registrar = changed
            .iter()
            .any(|(k, _)| [PEER_KEYS, "mn_ha", "profiles"].contains(k));
        let reconfig = match registrar.then(|| reconfig(&new)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(r))) => Some(r),
            // `Config::load` built the registrar already (its dry run).
            Some(Err(e)) => return (refused(&self.path, &e.to_string()), None),
        };
        let applied: Vec<String> = changed.iter().map(|(k, _)| k.to_string()).collect();
        if !applied.is_empty() {
            self.live.set(new);
        }
        tracing::info!(path = %self.path.display(), applied = ?applied, "configuration reloaded");
        (Response::Reloaded { applied }, reconfig)
    }

    /// `pmipctl reload` (and SIGHUP) as a runner answers it, between
    /// systemd's RELOADING=1 and READY=1: [`Reloader::reload`], then, if
    /// the registrar takes something that changed, `hand` gives it the new
    /// configuration and resolves once it has it — what arrives after the
    /// answer is checked with the new keys and served with the new
    /// profiles.
    pub(crate) async fn serve<F>(&self, hand: impl FnOnce(Reconfig) -> F) -> Response
    where
        F: std::future::Future<Output = ()>,
    {
        super::notify::reloading(async {
            let (response, reconfig) = self.reload();
            if let Some(r) = reconfig {
                hand(r).await;
            }
            response
        })
        .await
    }
}

/// The registrar's configuration built from `cfg`, for a registrar that
/// takes something of it while it runs (none for a MAG).
fn reconfig(cfg: &Config) -> Result<Option<Reconfig>, crate::config::ConfigError> {
    Ok(match (cfg.role, cfg.protocol) {
        (Role::Access, Protocol::Pmipv6) => None,
        (Role::Access, Protocol::Pmipv4) => Some(Reconfig::Pma(Arc::new(agents::pma(cfg)?))),
        // The restart counter is the running LMA's; it does not take one.
        (Role::Anchor, Protocol::Pmipv6) => Some(Reconfig::Lma(Arc::new(agents::lma(cfg, 0)))),
        (Role::Anchor, Protocol::Pmipv4) => Some(Reconfig::Ha(Arc::new(agents::ha(cfg)?))),
    })
}

fn refused(path: &Path, why: &str) -> Response {
    tracing::warn!(path = %path.display(), "reload refused: {why}");
    Response::Error {
        message: format!("reload of {} refused: {why}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::testing::mag_toml_with_profile as access;

    fn cfg(extra: &str) -> Config {
        Config::from_toml_str(&format!("{}{extra}", access())).unwrap()
    }

    #[test]
    fn same_file_changes_nothing() {
        assert!(changes(&cfg(""), &cfg("")).is_empty());
    }

    #[test]
    fn profiles_and_dns_are_live_on_the_access_side() {
        let new = cfg("[dhcp]\ndns = [\"192.0.2.53\"]\n[[profiles]]\nname = \"gold\"\nmac = \"02:00:00:00:00:09\"\n");
        assert_eq!(
            changes(&cfg(""), &new),
            vec![("dhcp.dns", true), ("profiles", true)]
        );
    }

    #[test]
    fn timers_and_interfaces_are_not() {
        let new = Config::from_toml_str(
            &format!("{}[timers]\nlifetime_s = 600\n", access()).replace("core0", "core1"),
        )
        .unwrap();
        assert_eq!(
            changes(&cfg(""), &new),
            vec![("interfaces", false), ("timers", false)]
        );
    }

    const PMA: &str = include_str!("../../../examples/access-pmipv4.toml");

    /// A PMIPv4 gateway's per-MN keys change live: the reload hands the new
    /// ones back for the registrar (before, a change of them alone was
    /// taken as nothing changed, then refused as a restart's).
    #[test]
    fn per_mn_keys_are_live() {
        let text = |k: &str| {
            format!("{PMA}\n[[mn_ha]]\nrealm = \"example.com\"\nspi = 300\nkey = \"{k}\"\n")
        };
        let key = |k: &str| Config::from_toml_str(&text(k)).unwrap();
        assert!(changes(&key("0011"), &key("0011")).is_empty());
        assert_eq!(changes(&key("0011"), &key("2233")), vec![("mn_ha", true)]);
        let (r, _d) = reloader(PMA);
        std::fs::write(&r.path, text("0011")).unwrap();
        let (answer, keys) = r.reload();
        assert_eq!(
            answer,
            Response::Reloaded {
                applied: vec!["mn_ha".into()]
            }
        );
        let Some(Reconfig::Pma(c)) = keys else {
            panic!("no configuration for the PMA: {keys:?}")
        };
        let sa = c.mn_ha.get("a@EXAMPLE.com").expect("the realm's key");
        assert_eq!(
            (sa.current.spi, sa.current.key.as_slice()),
            (300, &[0x00, 0x11][..])
        );
        assert_eq!(c.home_agents.len(), 2, "the peers' keys come along");
        assert_eq!(r.live.get().mn_ha.len(), 1);
    }

    /// The peers' PMIPv4 keys alone (a key, an algorithm, `also_accept`)
    /// change live, and the registrar gets every peer's; any other change
    /// of a peer, or keys of a PMIPv6 gateway's peers, is a restart's.
    #[test]
    fn peer_keys_are_live_on_pmipv4_and_nothing_else_of_a_peer() {
        let cfg = |t: &str| Config::from_toml_str(t).unwrap();
        let rolled = PMA.replace("spi = 256", "spi = 300").replace(
            "key = \"00112233445566778899aabbccddeeff\"",
            "key = \"0123\"\n[[peers.also_accept]]\nspi = 256\nalgorithm = \"hmac-md5\"\nkey = \"00112233445566778899aabbccddeeff\"",
        );
        assert_eq!(changes(&cfg(PMA), &cfg(&rolled)), vec![(PEER_KEYS, true)]);
        let algorithm = PMA.replace("\"rfc2002-md5\"", "\"hmac-md5\"");
        assert_eq!(
            changes(&cfg(PMA), &cfg(&algorithm)),
            vec![(PEER_KEYS, true)]
        );
        // Keys and an address: refused whole, as the peers'.
        let moved = rolled.replace("10.8.24.102", "10.8.24.103");
        assert_eq!(changes(&cfg(PMA), &cfg(&moved)), vec![("peers", false)]);
        let (r, _d) = reloader(PMA);
        std::fs::write(&r.path, &rolled).unwrap();
        let (answer, keys) = r.reload();
        assert_eq!(
            answer,
            Response::Reloaded {
                applied: vec![PEER_KEYS.into()]
            }
        );
        let Some(Reconfig::Pma(c)) = keys else {
            panic!("no configuration for the PMA: {keys:?}")
        };
        let ha = |a: &str| {
            let a: std::net::Ipv4Addr = a.parse().unwrap();
            &c.home_agents.iter().find(|h| h.address == a).unwrap().sa
        };
        let ha1 = ha("10.8.24.101");
        assert_eq!(
            (ha1.current.spi, ha1.current.key.as_slice()),
            (300, &[0x01, 0x23][..])
        );
        assert_eq!(ha1.by_spi(256).map(|sa| sa.key.len()), Some(16));
        assert_eq!(ha("10.8.24.102").current.spi, 257);
        // A PMIPv6 gateway: its peers have no such keys to take.
        let mag = access();
        let v6 = mag.replace("[[peers]]", "[[peers]]\nrevocation = true");
        assert_ne!(mag, v6);
        assert_eq!(changes(&cfg(&mag), &cfg(&v6)), vec![("peers", false)]);
    }

    /// An anchor's subscriber profiles change live: the reload hands the
    /// LMA (or the HA) its configuration with the new ones. A MAG's are the
    /// access glue's (no registrar configuration).
    #[test]
    fn an_anchors_profiles_are_live() {
        let lma = include_str!("../../../examples/anchor-pmipv6.toml");
        let vip = "\n[[profiles]]\nname = \"vip\"\nnai = \"vip@example.com\"\nhome_address = \"10.10.0.99\"\n";
        let (r, _d) = reloader(lma);
        std::fs::write(&r.path, format!("{lma}{vip}")).unwrap();
        let (answer, new) = r.reload();
        assert_eq!(
            answer,
            Response::Reloaded {
                applied: vec!["profiles".into()]
            }
        );
        let Some(Reconfig::Lma(c)) = new else {
            panic!("no configuration for the LMA: {new:?}")
        };
        let p = &c.subscribers["vip@example.com"];
        assert_eq!(p.static_v4, Some("10.10.0.99".parse().unwrap()));
        let ha = include_str!("../../../examples/anchor-pmipv4.toml");
        let (r, _d) = reloader(ha);
        std::fs::write(&r.path, format!("{ha}{vip}")).unwrap();
        let Some(Reconfig::Ha(c)) = r.reload().1 else {
            panic!("no configuration for the HA")
        };
        assert!(c.profiles.iter().any(|p| p.nai == "vip@example.com"));
        // The access side reads profiles at each attach: nothing to hand.
        let (r, _d) = reloader(&access());
        let gold = "[[profiles]]\nname = \"gold\"\nmac = \"02:00:00:00:00:09\"\n";
        std::fs::write(&r.path, format!("{}{gold}", access())).unwrap();
        assert!(r.reload().1.is_none());
    }

    fn reloader(text: &str) -> (Reloader, crate::access::dhcp::tests::TmpDir) {
        let dir = crate::access::dhcp::tests::TmpDir::new("reload");
        let path = dir.0.join("pmipd.toml");
        std::fs::write(&path, text).unwrap();
        let live = Live::new(Config::from_toml_str(text).unwrap());
        (Reloader { path, live }, dir)
    }

    #[test]
    fn applies_live_changes_and_refuses_the_rest_whole() {
        let (r, _d) = reloader(&access());
        assert_eq!(r.reload(), (Response::Reloaded { applied: vec![] }, None));
        // A new profile: applied.
        let with_gold = format!(
            "{}[[profiles]]\nname = \"gold\"\nmac = \"02:00:00:00:00:09\"\n",
            access()
        );
        std::fs::write(&r.path, &with_gold).unwrap();
        assert_eq!(
            r.reload(),
            (
                Response::Reloaded {
                    applied: vec!["profiles".into()]
                },
                None
            )
        );
        assert_eq!(r.live.get().profiles.len(), 2);
        // A timer and another profile: refused as a whole, naming the timer.
        std::fs::write(
            &r.path,
            format!("{with_gold}[[profiles]]\nname = \"x\"\nmac = \"02:00:00:00:00:0a\"\n[timers]\nlifetime_s = 600\n"),
        )
        .unwrap();
        let (Response::Error { message }, None) = r.reload() else {
            panic!("not refused")
        };
        assert!(
            message.contains("timers cannot change while pmipd runs"),
            "{message}"
        );
        assert_eq!(r.live.get().profiles.len(), 2);
        // A broken file: refused with the key named.
        std::fs::write(&r.path, access().replace("10.255.0.10", "not-an-address")).unwrap();
        let (Response::Error { message }, None) = r.reload() else {
            panic!("not refused")
        };
        assert!(message.contains("has errors"), "{message}");
    }
}
