//! A pcap writer (Ethernet link type) and tshark runner for wire checks by an
//! independent decoder.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Writes `frames` as a classic pcap file with LINKTYPE_ETHERNET.
pub fn write_ethernet(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let f = pmip_user::packet::pcap_file(pmip_user::packet::LINKTYPE_ETHERNET, frames);
    std::fs::write(path, f).with_context(|| format!("writing {}", path.display()))
}

pub fn have_tshark() -> bool {
    Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// `tshark -r FILE -T fields -E separator=| -e F...`: one Vec per packet.
/// Fails if tshark flags any packet as malformed.
pub fn fields(path: &Path, fields: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r"]).arg(path).args(["-T", "fields", "-E", "separator=|", "-e", "_ws.malformed", "-e", "_ws.expert.severity"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().context("running tshark")?;
    if !out.status.success() {
        bail!("tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut rows = Vec::new();
    for (i, line) in String::from_utf8_lossy(&out.stdout).lines().enumerate() {
        let mut cols: Vec<String> = line.split('|').map(String::from).collect();
        if !cols[0].is_empty() {
            bail!("tshark marks packet {} malformed: {line}", i + 1);
        }
        cols.drain(..2);
        rows.push(cols);
    }
    Ok(rows)
}
