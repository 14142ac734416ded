//! The control socket of a running pmipd (issue 13): created 0600 under
//! umask 000, closed to an unprivileged pmipctl (by its mode, and by
//! SO_PEERCRED if the mode were wrong), held against a second daemon with
//! the same `control.socket`, and a 100 KB NAI gets an error, not a reset.
//!
//! One test: it sets the umask of the test process around the daemons'
//! start (the children inherit it).
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{ensure, Context, Result};
use pmip_tests::gateway_cases as cases;
use pmip_tests::lab::{self, Lab, LabOpts, Proto};

const NOBODY: u32 = 65534;

/// `pmipctl ARGS` as user nobody, from a copy in a directory anyone can read.
fn pmipctl_as_nobody(bin: &Path, sock: &Path, args: &[&str]) -> Result<Output> {
    Command::new(bin)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .context("running pmipctl as nobody")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scenario() -> Result<()> {
    let mut o = LabOpts::new(Proto::Pmipv6, "ctl");
    o.gateways = 1;
    let mut l = Lab::topology(o)?;
    l.attach_pass()?;
    lab::ensure_binaries()?;
    // SAFETY: umask has no preconditions; restored right after.
    let old = unsafe { libc::umask(0) };
    let started = l.start_daemons();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    started?;
    let sock = l.mag(0).socket.clone();
    let mode = std::fs::metadata(&sock)?.permissions().mode() & 0o777;
    ensure!(
        mode == 0o600,
        "control socket mode {mode:o} under umask 000"
    );
    l.attach(false)?;
    l.wait_registered(0)?;

    // pmipctl as nobody: it runs, but the socket is closed to it.
    let pub_dir = l.dir.0.join("pub");
    std::fs::create_dir_all(&pub_dir)?;
    std::fs::set_permissions(&pub_dir, std::fs::Permissions::from_mode(0o755))?;
    let bin = pub_dir.join("pmipctl");
    std::fs::copy(lab::pmipctl(), &bin)?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let help = pmipctl_as_nobody(&bin, &sock, &["--help"])?;
    ensure!(
        help.status.success(),
        "nobody cannot run pmipctl at all: {}",
        text(&help)
    );
    let o = pmipctl_as_nobody(&bin, &sock, &["clear", "binding", "0200.0000.aa01"])?;
    ensure!(
        !o.status.success() && text(&o).contains("permission denied"),
        "an unprivileged clear binding: {:?} {}",
        o.status,
        text(&o)
    );
    // Had the mode been wrong, the daemon would still refuse (SO_PEERCRED).
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666))?;
    let o = pmipctl_as_nobody(&bin, &sock, &["clear", "binding", "0200.0000.aa01"])?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    ensure!(
        !o.status.success() && text(&o).contains("permission denied: uid 65534"),
        "through a 0666 socket: {:?} {}",
        o.status,
        text(&o)
    );
    ensure!(l.mag(0).bindings()?.len() == 1, "the binding was cleared");

    // A second daemon with the same control.socket refuses to start, and
    // the first keeps its socket and its subscriber.
    let second = l.mags[0]
        .command(lab::pmipd().to_str().context("path")?)
        .args(["run", "--config"])
        .arg(&l.mag(0).config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()?;
    let t = text(&second);
    ensure!(
        !second.status.success() && t.contains("another pmipd is running"),
        "second daemon: {:?} {t}",
        second.status
    );
    ensure!(
        l.mag(0).bindings()?.len() == 1,
        "the first daemon lost its socket"
    );
    let (s, r, out) = Lab::ping(&l.sub, &lab::CN.to_string(), 3)?;
    ensure!(s == r, "the first daemon's fast path was disturbed:\n{out}");

    // A 100 KB NAI: an error response.
    let big = "n".repeat(100_000);
    let o = Command::new(lab::pmipctl())
        .arg("--socket")
        .arg(&sock)
        .args(["clear", "binding", &big])
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        o.status.code() == Some(1) && text(&o).contains("request longer than 65536 bytes"),
        "100 KB NAI: {:?} {}",
        o.status,
        &text(&o)[..text(&o).len().min(300)]
    );
    ensure!(l.mag(0).bindings()?.len() == 1);
    Ok(())
}

#[test]
fn control_socket_is_locked_down() {
    if cases::skip() {
        return;
    }
    if let Err(e) = scenario() {
        pmip_tests::lab::fail(e);
    }
}
