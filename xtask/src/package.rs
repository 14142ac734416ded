//! `cargo xtask package`: the .deb an operator installs — pmipd (with the
//! eBPF object built in) and pmipctl, the systemd unit, the sysusers entry,
//! example configurations in /etc/pmip/examples/, man pages and shell
//! completions made from the clap definitions — built with dpkg-deb.
//!
//! `--test` then installs it into a clean Debian root and boots that root
//! with systemd (see [`crate::deb_test`]).
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run};

#[derive(clap::Args, Debug)]
pub struct PackageArgs {
    /// Install the package into a clean Debian root (debootstrap) and run it
    /// under systemd there: readiness, `pmipctl show bindings`, reload, and a
    /// watchdog restart of a hung daemon.
    #[arg(long)]
    pub test: bool,
}

/// The package's version: pmip-user's.
fn version() -> Result<String> {
    let toml = std::fs::read_to_string(root().join("pmip-user/Cargo.toml"))?;
    toml.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
        .context("no version in pmip-user/Cargo.toml")
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::copy(from, to).with_context(|| format!("{} → {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(to, text)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Builds the .deb; returns its path (target/package/pmip_VERSION_amd64.deb).
pub fn package(obj: &Path) -> Result<PathBuf> {
    let ver = version()?;
    run(Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "pmip-user", "--bins"])
        .args(["--features", "embed-ebpf"])
        .current_dir(root())
        .env("PMIP_EBPF_OBJECT", obj))
    .context("building pmipd and pmipctl with the eBPF object built in")?;
    let rel = root().join("target/release");
    let out = root().join("target/package");
    let stage = out.join(format!("pmip_{ver}_amd64"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    install(&rel.join("pmipd"), &stage.join("usr/sbin/pmipd"), 0o755)?;
    install(&rel.join("pmipctl"), &stage.join("usr/bin/pmipctl"), 0o755)?;
    for b in ["usr/sbin/pmipd", "usr/bin/pmipctl"] {
        // The release profile keeps line tables for backtraces; the package
        // ships the code only.
        let _ = Command::new("strip")
            .arg("--strip-debug")
            .arg(stage.join(b))
            .status();
    }
    let pkg = root().join("packaging");
    install(
        &pkg.join("pmipd.service"),
        &stage.join("lib/systemd/system/pmipd.service"),
        0o644,
    )?;
    install(
        &pkg.join("sysusers.conf"),
        &stage.join("usr/lib/sysusers.d/pmip.conf"),
        0o644,
    )?;
    let mut conffiles = String::new();
    for e in std::fs::read_dir(root().join("examples"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            install(&p, &stage.join("etc/pmip/examples").join(&name), 0o644)?;
            conffiles.push_str(&format!("/etc/pmip/examples/{name}\n"));
        }
    }
    docs(&rel, &stage)?;
    control(&stage, &ver, &conffiles)?;
    let deb = out.join(format!("pmip_{ver}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    eprintln!("xtask: package at {}", deb.display());
    Ok(deb)
}

/// Man pages (gzipped, section 8) and bash/zsh/fish completions, from the
/// binaries' own `generate` command.
fn docs(rel: &Path, stage: &Path) -> Result<()> {
    let gen = root().join("target/package/generated");
    if gen.exists() {
        std::fs::remove_dir_all(&gen)?;
    }
    for b in ["pmipd", "pmipctl"] {
        run(Command::new(rel.join(b)).arg("generate").arg(&gen))?;
    }
    let man8 = stage.join("usr/share/man/man8");
    std::fs::create_dir_all(&man8)?;
    for e in std::fs::read_dir(gen.join("man"))? {
        let p = e?.path();
        let to = man8.join(p.file_name().unwrap());
        install(&p, &to, 0o644)?;
        run(Command::new("gzip").args(["-9nf"]).arg(&to))?;
    }
    let comp = gen.join("completions");
    for b in ["pmipd", "pmipctl"] {
        install(
            &comp.join(format!("{b}.bash")),
            &stage.join("usr/share/bash-completion/completions").join(b),
            0o644,
        )?;
        install(
            &comp.join(format!("_{b}")),
            &stage
                .join("usr/share/zsh/vendor-completions")
                .join(format!("_{b}")),
            0o644,
        )?;
        install(
            &comp.join(format!("{b}.fish")),
            &stage
                .join("usr/share/fish/vendor_completions.d")
                .join(format!("{b}.fish")),
            0o644,
        )?;
    }
    Ok(())
}

const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
    # The pmip user the unit runs as.
    systemd-sysusers /usr/lib/sysusers.d/pmip.conf || adduser --system --group --home /var/lib/pmip --no-create-home pmip
    # The configuration may hold keys: readable by the service only.
    if [ -f /etc/pmip/pmipd.toml ]; then chgrp pmip /etc/pmip/pmipd.toml && chmod 0640 /etc/pmip/pmipd.toml; fi
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    # Not started here: it needs /etc/pmip/pmipd.toml (see /etc/pmip/examples).
    if [ -d /run/systemd/system ] && [ -f /etc/pmip/pmipd.toml ]; then
        systemctl try-restart pmipd.service || true
    fi
fi
exit 0
"#;

const PRERM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop pmipd.service || true
fi
exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
"#;

fn control(stage: &Path, ver: &str, conffiles: &str) -> Result<()> {
    let size_kb = du_kb(stage)?;
    let deb = stage.join("DEBIAN");
    write(
        &deb.join("control"),
        &format!(
            "Package: pmip\n\
             Version: {ver}\n\
             Architecture: amd64\n\
             Maintainer: pmip developers <pmip@localhost>\n\
             Installed-Size: {size_kb}\n\
             Depends: libc6 (>= 2.34), systemd\n\
             Section: net\n\
             Priority: optional\n\
             Description: Proxy Mobile IP gateway with an eBPF fast path\n \
             pmipd runs the signaling of a PMIPv6 MAG or LMA, or a PMIPv4 PMA or HA,\n \
             and tunnels subscribers' traffic in GRE in XDP (or TC) programs it loads\n \
             itself (the eBPF object is built into the binary). pmipctl inspects it.\n \
             Includes a systemd unit with readiness and watchdog, a Prometheus\n \
             metrics endpoint, man pages and shell completions.\n"
        ),
        0o644,
    )?;
    write(&deb.join("conffiles"), conffiles, 0o644)?;
    write(&deb.join("postinst"), POSTINST, 0o755)?;
    write(&deb.join("prerm"), PRERM, 0o755)?;
    write(&deb.join("postrm"), POSTRM, 0o755)
}

fn du_kb(dir: &Path) -> Result<u64> {
    let out = Command::new("du").args(["-sk"]).arg(dir).output()?;
    if !out.status.success() {
        bail!("du -sk {}", dir.display());
    }
    let s = String::from_utf8_lossy(&out.stdout);
    Ok(s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
