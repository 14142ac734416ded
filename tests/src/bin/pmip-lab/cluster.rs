//! `pmip-lab --cluster` (`cargo xtask lab --cluster`): the anchor cluster of
//! issue 17 (tests/src/cluster): three etcd members, three anchors sharing
//! them, two access gateways pointed at the cluster address (runtime
//! assignment), two subscribers with busybox udhcpc and a correspondent.
//! Then kill -9 the anchor serving the first subscriber under a 10k pps
//! stream and show the takeover with its gap: the subscriber keeps its
//! address, the access gateway does not re-register.
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pmip_tests::cluster::takeover::kill_owner;
use pmip_tests::cluster::{ClusterLab, ClusterOpts, CLUSTER_ADDR};
use pmip_user::ctl::StatsView;

use super::{indent, step, Summary};

const N: u32 = 6;

fn counter(s: &StatsView, name: &str) -> u64 {
    s.groups
        .get("mag")
        .and_then(|g| g.get(name))
        .copied()
        .unwrap_or(0)
}

/// The MAG counters that would move if an access gateway noticed the takeover.
const NOTICED: [&str; 4] = [
    "lma_restart_detected",
    "reregistrations",
    "failovers",
    "registration_timeouts",
];

fn noticed(l: &ClusterLab) -> Result<u64> {
    let mut n = 0;
    for j in 0..l.mags.len() {
        let s = l.mag(j).stats()?;
        n += NOTICED.iter().map(|c| counter(&s, c)).sum::<u64>();
    }
    Ok(n)
}

pub(super) fn run(mode: &str, verbose: bool, sum: &mut Summary) -> Result<()> {
    println!("pmip-lab: anchor cluster on etcd (3 etcd members, 3 LMAs, 2 MAGs), XDP {mode}, IPv4 subscribers (DHCP)");
    if !pmip_tests::etcd::available() {
        anyhow::bail!("etcd and etcdctl not found (Debian packages etcd-server, etcd-client)");
    }
    pmip_tests::lab::ensure_binaries()?;
    let mut o = ClusterOpts::new("lab");
    o.attach_mode = mode.into();
    o.lease_ttl_s = 2;
    o.log_filter = if verbose { "debug" } else { "info" }.into();
    let t = Instant::now();
    let mut l = ClusterLab::topology(o)?;
    step(1, N, &format!(
        "topology up in {} ms: etcd {} on the switch; anchors {}; access gateways {}; correspondent {}",
        t.elapsed().as_millis(),
        l.endpoints().join(" "),
        l.anchor_ns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" "),
        l.mag_ns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" "),
        l.cn.name
    ));
    sum.add("topology", "3 etcd members healthy, 7 namespaces", true);

    let t = Instant::now();
    l.start_anchors()?;
    // Every address owned is enough: on a loaded machine a member whose
    // first heartbeats came late can be declared dead and join again with
    // nothing (the takeover needs an owner and a survivor).
    let v = l.wait_view(Duration::from_secs(30), "every address owned", |v| {
        v.addresses.iter().all(|a| a.owner.is_some())
    })?;
    l.start_mags()?;
    step(
        2,
        N,
        &format!(
            "anchors ready in {} ms, every service address owned; `pmipctl show cluster`:",
            t.elapsed().as_millis()
        ),
    );
    print!("{}", indent(&pmip_user::ctl::format_cluster(&v)));
    sum.add("anchors", "3 members, every address owned", true);

    let homes = attach(&mut l, sum)?;
    let b = l
        .mag(0)
        .wait_bindings(Duration::from_secs(10), "a binding", |b| !b.is_empty())?;
    let busy = b
        .iter()
        .find(|x| x.home_v4 == Some(homes[0]))
        .context("the first subscriber's binding")?
        .peer
        .to_string();
    ensure!(
        busy != CLUSTER_ADDR,
        "the cluster address served a binding itself"
    );

    let bound: Vec<usize> = (0..2).map(|k| l.client(k).count("bound")).collect();
    let before = noticed(&l)?;
    step(
        5,
        N,
        &format!(
        "kill -9 the anchor serving {busy} under a 10k pps stream from the subscriber (1k pps back)"
    ),
    );
    let tk = kill_owner(&mut l, (0, homes[0]), &busy, 10_000, Duration::from_secs(2))?;
    println!("      {}", tk.line());
    println!(
        "      takeover gap: {} ms (first uplink packet through a{}), {} packets lost at 10k pps",
        tk.first_up.as_millis(),
        tk.to + 1,
        tk.lost_up
    );
    sum.add(
        "takeover",
        format!(
            "a{} → a{}: gap {} ms, {} lost at 10k pps",
            tk.from + 1,
            tk.to + 1,
            tk.first_up.as_millis(),
            tk.lost_up
        ),
        true,
    );

    // Nobody re-attached: udhcpc bound no more, the MAGs saw nothing.
    let same: Vec<bool> = (0..2)
        .map(|k| l.client(k).count("bound") == bound[k])
        .collect();
    let moved = noticed(&l)? - before;
    let v = l.show(tk.to)?;
    step(6, N, &format!(
        "after the takeover: subscribers kept {} and {} (no new DHCP lease: {}), MAG restart/re-registration counters moved by {moved}; `pmipctl show cluster` on a{}:",
        homes[0], homes[1], same.iter().all(|s| *s), tk.to + 1
    ));
    print!("{}", indent(&pmip_user::ctl::format_cluster(&v)));
    ensure!(same.iter().all(|s| *s), "a subscriber bound again");
    ensure!(moved == 0, "an access gateway noticed the takeover");
    sum.add("no re-attach", "same addresses, no MAG noticed", true);
    Ok(())
}

/// Steps 3–4: two subscribers (one per access gateway) get their address
/// from udhcpc through the cluster address; ping through the tunnel.
fn attach(l: &mut ClusterLab, sum: &mut Summary) -> Result<Vec<Ipv4Addr>> {
    let t = Instant::now();
    let mut homes = Vec::new();
    for k in 0..2 {
        l.add_subscriber(k, &format!("02:00:00:00:aa:{:02x}", k + 1))?;
        let lease = l.attach(k)?;
        homes.push(lease.ip.parse::<Ipv4Addr>().context("lease address")?);
    }
    let mut rows = Vec::new();
    for j in 0..2 {
        for b in l.mag(j).bindings()? {
            rows.push(format!(
                "m{}: {} home {} at anchor {} (keys {}/{})",
                j + 1,
                b.nai,
                b.home_v4.map(|h| h.to_string()).unwrap_or_default(),
                b.peer,
                b.gre_key_up,
                b.gre_key_down
            ));
        }
    }
    step(
        3,
        N,
        &format!(
            "subscribers attached in {} ms (udhcpc, runtime assignment from {CLUSTER_ADDR}):",
            t.elapsed().as_millis()
        ),
    );
    for r in &rows {
        println!("      {r}");
    }
    sum.add("attach", format!("{} and {}", homes[0], homes[1]), true);
    for (k, h) in homes.iter().enumerate() {
        let out = l.subs[k].exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "203.0.113.2"]);
        let ok = out.is_ok();
        step(
            4,
            N,
            &format!(
                "ping from subscriber {} ({h}) to the correspondent: {}",
                k + 1,
                if ok { "3 of 3 answered" } else { "FAILED" }
            ),
        );
        out.with_context(|| format!("ping from subscriber {}", k + 1))?;
    }
    sum.add("ping", "both subscribers reach the correspondent", true);
    Ok(homes)
}
