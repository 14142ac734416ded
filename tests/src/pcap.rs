//! A pcap writer (Ethernet link type) and tshark runner for wire checks by an
//! independent decoder.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Writes `frames` as a classic pcap file with LINKTYPE_ETHERNET.
pub fn write_ethernet(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let f = crate::packet::pcap_file(crate::packet::LINKTYPE_ETHERNET, frames);
    std::fs::write(path, f).with_context(|| format!("writing {}", path.display()))
}

/// Complete records in a classic pcap file (as a capture writes it: a 24-byte
/// header, then a 16-byte record header + the bytes it announces per packet);
/// 0 if there is no file yet. A record still being written is not counted.
pub fn records(path: &Path) -> usize {
    let Ok(b) = std::fs::read(path) else { return 0 };
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= b.len() {
        let magic_le = b.len() >= 4 && (b[0] == 0xd4 || b[0] == 0x4d);
        let f = [b[off + 8], b[off + 9], b[off + 10], b[off + 11]];
        let incl = if magic_le {
            u32::from_le_bytes(f)
        } else {
            u32::from_be_bytes(f)
        } as usize;
        if off + 16 + incl > b.len() {
            break;
        }
        off += 16 + incl;
        n += 1;
    }
    n
}

pub fn have_tshark() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `tshark -r FILE -T fields -E separator=| -e F...`: one Vec per packet.
/// Fails if tshark flags any packet as malformed.
pub fn fields(path: &Path, fields: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r"]).arg(path).args([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
    ]);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `records` counts complete records only: every truncation of a file
    /// counts the records wholly before the cut; a missing, empty or garbage
    /// file counts none and does not panic.
    #[test]
    fn records_counts_complete_records_of_truncated_and_malformed_files() {
        let dir = crate::TempDir::new("pcap-records");
        let path = dir.0.join("x.pcap");
        assert_eq!(records(&path), 0, "no file");
        let frames = vec![vec![0xaa; 60], vec![0xbb; 14], vec![0xcc; 1500]];
        let whole = crate::packet::pcap_file(crate::packet::LINKTYPE_ETHERNET, &frames);
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(records(&path), 3);
        // Record i ends at 24 + sum of (16 + len) of records 0..=i.
        let mut ends = Vec::new();
        let mut off = 24;
        for f in &frames {
            off += 16 + f.len();
            ends.push(off);
        }
        for cut in 0..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let want = ends.iter().filter(|e| **e <= cut).count();
            assert_eq!(records(&path), want, "cut at {cut}");
        }
        // A record header announcing more bytes than the file holds.
        let mut bad = whole[..24 + 16].to_vec();
        bad[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(records(&path), 0);
        std::fs::write(&path, [0xffu8; 7]).unwrap();
        assert_eq!(records(&path), 0);
    }
}
