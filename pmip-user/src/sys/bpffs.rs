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

/// Detaches the link pinned at `path` from its hook now (BPF_OBJ_GET, then
/// BPF_LINK_DETACH). Removing a link's last pin frees it from a kernel work
/// queue (`bpf_link_put`), so the program may stay attached for a moment
/// after the unlink; detached first, it is gone when `pmipd unpin` returns
/// and a daemon started right after attaches to a free hook. A link type
/// that cannot be detached (EOPNOTSUPP, EINVAL) is left to the unpin.
pub(crate) fn detach_link(path: &Path) -> Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    /// `union bpf_attr` for BPF_OBJ_GET (linux/bpf.h): pathname, bpf_fd,
    /// file_flags, path_fd.
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        /// Zero: the kernel refuses an attr whose bytes past the command's
        /// last field are not.
        pad: u32,
    }
    /// `union bpf_attr` for BPF_LINK_DETACH: link_fd.
    #[repr(C)]
    struct LinkDetach {
        link_fd: u32,
    }
    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
        // SAFETY: `attr` is a live, initialised bpf_attr member of
        // size_of::<T>() bytes; the kernel zero-extends what it does not get.
        let rc =
            unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{}: not a path", path.display()))?;
    let mut get = ObjGet {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        pad: 0,
    };
    let fd =
        bpf(BPF_OBJ_GET, &mut get).with_context(|| format!("{}: BPF_OBJ_GET", path.display()))?;
    // SAFETY: a new descriptor the kernel just gave us, closed on drop.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut detach = LinkDetach {
        link_fd: fd.as_raw_fd() as u32,
    };
    match bpf(BPF_LINK_DETACH, &mut detach) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: BPF_LINK_DETACH", path.display())),
    }
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
