//! bpffs, where the fast path pins its maps and links.
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Is the existing `path` itself on a bpffs mount?
pub(crate) fn is_bpffs(path: &Path) -> bool {
    path.exists() && on_bpffs(path)
}

/// Is `path` (or its nearest existing ancestor) on a bpffs mount?
fn on_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return false;
        }
    }
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: valid path and a zeroed statfs out-parameter.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Makes sure `dir` is on bpffs (mounting it on /sys/fs/bpf if the directory
/// is under it and nothing is mounted there yet), then creates `dir`.
pub(crate) fn ensure_bpffs(dir: &Path) -> Result<()> {
    if !on_bpffs(dir) {
        if !dir.starts_with("/sys/fs/bpf") {
            bail!(
                "pin_dir {}: not on a bpffs mount (mount -t bpf bpf <dir>)",
                dir.display()
            );
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .context("mounting bpffs")?;
        if !st.success() || !on_bpffs(dir) {
            bail!(
                "pin_dir {}: could not mount bpffs on /sys/fs/bpf",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_directory_is_not_unpinned() {
        let d = std::env::temp_dir().join(format!("pmip-unpin-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ACCESS_BY_MAC"), b"not a pin").unwrap();
        assert!(!is_bpffs(&d));
        let e = crate::fastpath::unpin_all(&d).unwrap_err().to_string();
        assert!(e.contains("not on a bpffs mount"), "{e}");
        assert!(d.join("ACCESS_BY_MAC").exists(), "nothing removed");
        // A directory that does not exist holds nothing to remove.
        assert!(crate::fastpath::unpin_all(&d.join("absent")).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
