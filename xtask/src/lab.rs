//! `cargo xtask lab`: the whole mission on one machine, in network namespaces.
//! Builds the release binaries and runs `pmip-lab` (tests/src/bin/pmip-lab.rs).
use std::path::Path;
use std::process::Command;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// The anchor cluster on etcd: three etcd members, three anchors, two
    /// access gateways, subscribers with udhcpc, and a kill -9 takeover with its gap.
    #[arg(long, conflicts_with_all = ["pmipv4", "ipv6", "dual_stack", "radius"])]
    pub cluster: bool,
    /// Run the lab with PMIPv4 (PMA/HA) instead of PMIPv6 (MAG/LMA).
    #[arg(long, conflicts_with_all = ["ipv6", "dual_stack"])]
    pub pmipv4: bool,
    /// An IPv6 subscriber: the kernel's own SLAAC from the home network
    /// prefix the MAG advertises; ping6, iperf3 and the handover over IPv6.
    #[arg(long, conflicts_with = "dual_stack")]
    pub ipv6: bool,
    /// A dual-stack subscriber: busybox udhcpc for IPv4 and SLAAC for IPv6.
    #[arg(long)]
    pub dual_stack: bool,
    /// Fast-path attach mode of the gateways: native (driver) XDP, generic
    /// (skb) XDP, auto, or tc (the TC ingress program, no XDP).
    #[arg(long, default_value = "native", value_parser = ["native", "generic", "auto", "tc"])]
    pub xdp_mode: String,
    /// What makes the second gateway take the subscriber: its data (the
    /// fast path reports an unknown MAC) or its DHCP client reconfirming.
    #[arg(long, default_value = "data", value_parser = ["data", "dhcp"])]
    pub handover_by: String,
    /// PMIPv6 signaling and GRE over ipv4 (default) or ipv6 on the core.
    #[arg(long, default_value = "ipv4", value_parser = ["ipv4", "ipv6"])]
    pub transport: String,
    /// A FreeRADIUS on the core switch: the subscriber's profile from its Access-Accept,
    /// the gateways' accounting records shown after the handover.
    #[arg(long)]
    pub radius: bool,
    /// Daemon logs at debug level (shown for a failed step).
    #[arg(long)]
    pub verbose: bool,
}

pub fn run_lab(a: &LabArgs, obj: &Path) -> Result<()> {
    crate::run(
        Command::new("cargo")
            .args(["build", "--release", "-q", "-p", "pmip-user", "--bins"])
            .current_dir(crate::root()),
    )?;
    let mut c = crate::tests_bin("pmip-lab", obj);
    c.args([
        "--xdp-mode",
        &a.xdp_mode,
        "--handover-by",
        &a.handover_by,
        "--transport",
        &a.transport,
    ]);
    let switches = [
        (a.pmipv4, "--pmipv4"),
        (a.ipv6, "--ipv6"),
        (a.dual_stack, "--dual-stack"),
        (a.verbose, "--verbose"),
        (a.radius, "--radius"),
        (a.cluster, "--cluster"),
    ];
    for (on, flag) in switches {
        if on {
            c.arg(flag);
        }
    }
    // Ctrl-C reaches the whole process group: let the lab clean up and
    // report instead of returning the prompt under its feet.
    // The child is spawned first, so it keeps the default disposition.
    let st = {
        let mut child = c.spawn()?;
        // SAFETY: changes this process's SIGINT disposition only.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        let st = child.wait();
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        st?
    };
    if !st.success() {
        anyhow::bail!("the lab failed ({st})");
    }
    Ok(())
}
