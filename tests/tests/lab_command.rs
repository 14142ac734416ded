//! The README's first command stays working: `pmip-lab` (what `cargo xtask
//! lab` runs) passes every step, and a Ctrl-C in the middle removes the lab.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pmip_tests::gateway_cases::skip;

fn lab_namespaces(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let tag = format!("{}x", pid % 100_000);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("lab") && n.contains(&tag))
        .map(String::from)
        .collect()
}

/// Runs `pmip-lab` with `args`: it must pass, print each of `want`, and
/// nothing FAILED.
fn lab_passes<'a>(args: &[&str], want: impl IntoIterator<Item = &'a str>) {
    if skip() {
        return;
    }
    pmip_tests::lab::ensure_binaries().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pmip-lab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pmip-lab {args:?} failed ({}):\n{text}\n{err}",
        out.status
    );
    for want in want {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn lab_passes_every_step() {
    lab_passes(
        &[],
        [
            "[1/7] topology up",
            "[2/7] daemons ready",
            "[3/7] subscriber attached",
            "GREv0, key=",
            "[6/7] handover",
            "handover gap:",
            // The signaling ladder: registration, the handover's, the revocation of the old one.
            "Binding Update",
            "Binding Acknowledgement",
            "Binding Revocation Indication",
            "all steps passed",
        ],
    );
}

/// `cargo xtask lab --ipv6` / `--dual-stack`: the same steps and summary
/// with a subscriber configured by the kernel's SLAAC (and udhcpc).
fn lab_passes_with(flag: &str, extra: &[&str]) {
    let want = [
        "[1/7] topology up",
        "[2/7] daemons ready",
        "[3/7] IPv6: the subscriber's kernel configured 2001:db8:64:",
        "default router fe80::ff:fe00:1",
        "HNP: 2001:db8:64:",
        // What the IPv4 lab prints too: GRE on the core link, the
        // subscriber's fast-path counters, the handover gap.
        "GREv0, key=",
        "IP6 2001:db8:64:",
        "fast path at MAG1 (show stats): up ",
        "[6/7] handover",
        "handover gap:",
        "handover: same default router",
        "Binding Revocation Indication",
        "all steps passed",
    ];
    lab_passes(&[flag], want.iter().chain(extra).copied());
}

#[test]
fn lab_passes_every_step_ipv6() {
    lab_passes_with("--ipv6", &["Hoa: -"]);
}

#[test]
fn lab_passes_every_step_dual_stack() {
    lab_passes_with(
        "--dual-stack",
        &["[3/7] IPv4: udhcpc got 10.64.0.", "Hoa: 10.64.0."],
    );
}

#[test]
fn ctrl_c_removes_the_lab() {
    if skip() {
        return;
    }
    pmip_tests::lab::ensure_binaries().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pmip-lab"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(60);
    // Interrupt once the subscriber is attached: daemons, client and pass
    // programs are all running.
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > end {
            let _ = child.kill();
            panic!("pmip-lab ended before attaching:\n{seen}");
        }
        seen.push_str(&line);
        if line.starts_with("[3/7]") {
            break;
        }
    }
    assert!(
        !lab_namespaces(pid).is_empty(),
        "no lab namespaces while running?"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let st = pmip_tests::lab::wait_timeout(&mut child, Duration::from_secs(30));
    let Some(st) = st else {
        let _ = child.kill();
        panic!("pmip-lab did not exit on SIGINT");
    };
    assert_eq!(st.code(), Some(130), "exit status after Ctrl-C");
    let left = lab_namespaces(pid);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let ps = Command::new("ps")
        .args(["-eo", "ppid,pid,args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let orphans: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains(&format!("pmip-lab-lab-{pid}-")))
        .collect();
    assert!(orphans.is_empty(), "processes left behind: {orphans:?}");
}

/// A step that fails (here: every pmipd refuses to start) makes pmip-lab
/// exit 1 naming the step, and still removes the lab.
#[test]
fn failed_step_exits_non_zero_and_cleans_up() {
    if skip() {
        return;
    }
    pmip_tests::lab::ensure_binaries().unwrap();
    let dir = pmip_tests::lab::TempDir::new("fakebin").unwrap();
    let fake = dir.0.join("pmipd");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fake pmipd: refusing to start' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(pmip_tests::lab::pmipctl(), dir.0.join("pmipctl")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pmip-lab"))
        .env("PMIP_BIN_DIR", &dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    assert!(
        text.contains("[1/7] topology up") && !text.contains("[2/7]"),
        "{text}"
    );
    assert!(
        err.contains("FAILED") && err.contains("refusing to start"),
        "{err}"
    );
    let left = lab_namespaces(pid);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// `cargo xtask lab --cluster`: three etcd members, three anchors, two
/// access gateways; a kill -9 takeover printed with its gap, no re-attach.
#[test]
fn lab_cluster_shows_a_takeover() {
    if skip() {
        return;
    }
    if !pmip_tests::etcd::available() {
        eprintln!("skipped: needs etcd (Debian etcd-server, etcd-client)");
        return;
    }
    pmip_tests::lab::ensure_binaries().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pmip-lab"))
        .arg("--cluster")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pmip-lab --cluster failed ({}):\n{text}\n{err}",
        out.status
    );
    for want in [
        "[1/6] topology up",
        "[2/6] anchors ready",
        "[3/6] subscribers attached",
        "[4/6] ping from subscriber 2",
        "[5/6] kill -9 the anchor serving 10.255.0.10",
        "takeover gap: ",
        "[6/6] after the takeover",
        "(no new DHCP lease: true), MAG restart/re-registration counters moved by 0",
        "all steps passed",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
}
