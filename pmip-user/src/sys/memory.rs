//! The heap back to the system after a flood: glibc keeps freed memory in
//! its arenas (one per thread that allocated), so a daemon that grew under
//! a flood stays that large unless asked to trim.

/// Returns free heap pages to the system (glibc `malloc_trim`); resident
/// memory falls back to what is in use. Costs a pass over the arenas:
/// call it once after a flood, not per packet.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resident set size of this process in bytes (from /proc/self/statm), for
/// the figures and the flood tests.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_after_a_burst_of_allocations() {
        let before = super::resident_bytes().unwrap();
        assert!(before > 0);
        {
            let v: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 512]).collect();
            assert_eq!(v.len(), 20_000);
        }
        super::release_free_memory();
        assert!(super::resident_bytes().is_some());
    }
}
