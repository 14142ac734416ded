//! Restarts and failures, run for each protocol and role by
//! `tests/restart.rs`: real namespaces, `pmipd run` with pinned maps, stock
//! DHCP clients as subscribers, traffic checked packet by packet.
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::capture::Capture;
use crate::lab::{self, Dhcpc, Lab, LabOpts, Proto};

/// The second subscriber's MAC.
pub const SUB2_MAC: &str = "02:00:00:00:aa:02";

/// Which gateway a case restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Access,
    Anchor,
}

/// Root, busybox, ping and tcpdump are needed; without them the case is
/// skipped with a note (CI has them).
pub fn skip() -> bool {
    if crate::gateway_cases::skip() {
        return true;
    }
    if !lab::have("tcpdump") {
        eprintln!("skipped: needs tcpdump");
        return true;
    }
    false
}

/// kill -9 of `role`'s pmipd, then the same pmipd again on the same pins.
fn restart(l: &mut Lab, role: Role) -> Result<()> {
    match role {
        Role::Access => {
            l.access[0].as_mut().context("no access gateway")?.kill9();
            l.start_access(0)
        }
        Role::Anchor => {
            l.anchor_d.as_mut().context("no anchor")?.kill9();
            l.start_anchor()
        }
    }
}

/// A restarted gateway never gives a new subscriber what the pinned maps
/// still forward for an existing one (issue 11): after `role` restarts, a
/// second subscriber attaches; it must get its own address and keys, and
/// not one packet addressed to the first may reach it, while the first
/// keeps receiving all of its traffic.
pub fn restart_then_new_subscriber(proto: Proto, role: Role) -> Result<()> {
    let tag = match role {
        Role::Access => "rsa",
        Role::Anchor => "rsn",
    };
    let mut o = LabOpts::new(proto, tag);
    o.gateways = 1;
    o.pin = true;
    // Without a durable store: what protects the first subscriber is the
    // reservation of what the pinned maps hold (with one, the restarted
    // gateway knows the binding itself: `restart_keeps_every_packet`).
    o.durable = false;
    let mut l = Lab::up(o)?;
    let lease1 = l.attach(false)?;
    l.wait_registered(0)?;
    restart(&mut l, role)?;
    let (s, r, t) = Lab::ping(&l.cn, &lease1.ip, 3)?;
    ensure!(
        s == r,
        "the pinned fast path stopped forwarding over the restart:\n{t}"
    );

    let k = l.add_subscriber(SUB2_MAC)?;
    let dir2 = l.dir.0.join("sub2");
    std::fs::create_dir_all(&dir2)?;
    let sub2 = &l.more_subs[k];
    let leak = Capture::start(
        sub2,
        "s0",
        &format!("ip dst host {}", lease1.ip),
        &dir2.join("leak.pcap"),
    )?;
    let c2 = Dhcpc::start(sub2, "s0", &dir2, false)?;
    let lease2 = c2
        .wait_event("bound", 1, Duration::from_secs(25))
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}\n--- access log:\n{}\n--- anchor log:\n{}",
                l.mag(0).log_tail(20),
                l.lma().log_tail(20)
            )
        })?;
    ensure!(
        lease2.ip != lease1.ip,
        "the second subscriber was given the first one's address {}",
        lease1.ip
    );
    // Both bindings at the anchor (the restarted one knows only the new).
    let want = if role == Role::Anchor { 1 } else { 2 };
    let a = l.lma().wait_bindings(
        Duration::from_secs(5),
        "the second subscriber's binding",
        |b| b.len() == want,
    )?;
    let b2 = a
        .iter()
        .find(|b| b.home_v4.map(|h| h.to_string()) == Some(lease2.ip.clone()))
        .context("no anchor binding for the second subscriber")?;

    let (s, r, t) = Lab::ping(&l.cn, &lease1.ip, 10)?;
    let (s2, r2, t2) = Lab::ping(&l.cn, &lease2.ip, 3)?;
    let leaked = leak.stop();
    ensure!(
        leaked == 0,
        "{leaked} packets addressed to the first subscriber ({}) reached the second \
         (keys of the second: up {} down {})",
        lease1.ip,
        b2.gre_key_up,
        b2.gre_key_down
    );
    ensure!(s == r, "the first subscriber lost traffic:\n{t}");
    ensure!(s2 == r2, "the second subscriber is not reachable:\n{t2}");
    Ok(())
}
