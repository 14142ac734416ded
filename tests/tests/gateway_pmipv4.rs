//! The gateway end to end with PMIPv4 (PMA/HA): `pmipd run` in every role, a
//! stock DHCP client, real namespaces (scenarios in `pmip_tests::gateway_cases`).
pmip_tests::gateway_tests!(pmip_tests::lab::Proto::Pmipv4);

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::lab::{self, Lab, LabOpts, Proto, CN};

/// The PMA's key for the HA and the HA's for the PMA, as the lab writes
/// them (`spi = 256`, the key after it).
fn key_lines(toml: &str) -> Result<String> {
    let i = toml.find("spi = 256\n").context("no spi = 256")?;
    let end = toml[i..].find("key = ").context("no key")?;
    let line_end = toml[i + end..].find('\n').context("no newline")?;
    Ok(toml[i..i + end + line_end + 1].to_string())
}

/// Waits until the PMA's `accepted` has grown by `more` (renewals answered).
fn renewals(d: &lab::Daemon, more: u64) -> Result<()> {
    let want = d.counter("pma", "accepted")? + more;
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while d.counter("pma", "accepted")? < want {
        ensure!(
            std::time::Instant::now() < end,
            "{more} renewal(s) not accepted within 20 s:\n{}",
            d.log_tail(20)
        );
        lab::interruptible_sleep(Duration::from_millis(100))?;
    }
    Ok(())
}

/// `pmipctl reload` of `d` after writing `toml` to `path`: what was applied.
fn reload(d: &lab::Daemon, path: &std::path::Path, toml: &str) -> Result<String> {
    std::fs::write(path, toml)?;
    d.ctl(&["reload"])
}

/// An operator rolls the FA-HA key between the PMA and the HA with
/// `pmipctl reload` on each box, no restart (operations.md, "Rolling a
/// PMIPv4 key"): the HA takes the new key and keeps the old one accepted,
/// then the PMA, then both drop the old one. The subscriber renews every
/// 2 s throughout: no renewal is refused, its address and traffic stay,
/// neither daemon restarts, and at the end the HA accepts the new key only
/// — the renewals after the last step prove the PMA signs with it.
#[test]
fn a_key_rollover_by_reloads_keeps_the_subscriber() {
    if pmip_tests::gateway_cases::skip() {
        return;
    }
    if let Err(e) = key_rollover() {
        lab::fail(e);
    }
}

fn key_rollover() -> Result<()> {
    let mut o = LabOpts::new(Proto::Pmipv4, "kr");
    o.lifetime_s = 4;
    o.renew_percent = 50;
    let mut l = Lab::up(o)?;
    l.attach(false)?;
    let (before, _) = l.wait_registered(0)?;
    let pids = (l.mag(0).pid(), l.lma().pid());
    let (ha_path, pma_path) = (l.dir.0.join("anchor.toml"), l.dir.0.join("mag1.toml"));
    let (ha_old, pma_old) = (
        std::fs::read_to_string(&ha_path)?,
        std::fs::read_to_string(&pma_path)?,
    );
    let old = key_lines(&ha_old)?;
    ensure!(old == key_lines(&pma_old)?, "the lab's two sides differ");
    let new = "spi = 300\nalgorithm = \"hmac-md5\"\nkey = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"\n";
    let half = format!("{new}[[peers.also_accept]]\n{old}");
    // 1. The HA: the new key its own, the old one accepted.
    let out = reload(l.lma(), &ha_path, &ha_old.replace(&old, &half))?;
    ensure!(out.contains("reloaded: peers[].keys"), "HA reload: {out}");
    renewals(l.mag(0), 2)?;
    // 2. The PMA the same.
    let out = reload(l.mag(0), &pma_path, &pma_old.replace(&old, &half))?;
    ensure!(out.contains("reloaded: peers[].keys"), "PMA reload: {out}");
    renewals(l.mag(0), 2)?;
    // 3. The old key goes, on both.
    reload(l.lma(), &ha_path, &ha_old.replace(&old, new))?;
    reload(l.mag(0), &pma_path, &pma_old.replace(&old, new))?;
    renewals(l.mag(0), 3)?;
    for (d, group, bad) in [
        (
            l.mag(0),
            "pma",
            ["denied", "rx_auth_failed", "renewal_denied"],
        ),
        (
            l.lma(),
            "ha",
            ["unknown_spi", "bad_authenticator", "missing_auth"],
        ),
    ] {
        for c in bad {
            ensure!(
                d.counter(group, c)? == 0,
                "{group} {c} counted during the rollover"
            );
        }
    }
    let (after, _) = l.wait_registered(0)?;
    ensure!(
        after.home_v4 == before.home_v4 && after.home_v4.is_some(),
        "the home address changed: {before:?} → {after:?}"
    );
    ensure!(
        (l.mag(0).pid(), l.lma().pid()) == pids,
        "a daemon restarted"
    );
    let (sent, received, text) = Lab::ping(&l.sub, &CN.to_string(), 3)?;
    ensure!(
        received == sent && sent > 0,
        "traffic after the rollover:\n{text}"
    );
    // The old key alone is refused now: the PMA put back on it is answered
    // 132 (unknown SPI) by the HA, which counts it.
    reload(l.mag(0), &pma_path, &pma_old)?;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while l.lma().counter("ha", "unknown_spi")? == 0 {
        ensure!(
            std::time::Instant::now() < end,
            "the old key is still accepted"
        );
        lab::interruptible_sleep(Duration::from_millis(100))?;
    }
    Ok(())
}
