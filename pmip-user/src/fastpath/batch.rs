//! Reading whole maps in few system calls (BPF_MAP_LOOKUP_BATCH), for
//! `show stats` and the metrics endpoint: the verdict counters of every CPU
//! in one call, a hash map's occupancy in one call per few thousand
//! entries instead of one per key. Lookups from user space take no lock
//! the packet path takes (array and per-CPU reads are plain copies; a hash
//! map's bucket lock is taken only by writers, and XDP only reads), so a
//! scrape costs forwarding nothing.
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, Result};
use aya::maps::{Map, MapData};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per call.
const CHUNK: u32 = 4096;

/// `union bpf_attr`'s `batch` member (linux/bpf.h), padded to the size the
/// kernel accepts for it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The map's data, for the map types the fast path uses.
pub(super) fn data(m: &Map) -> Result<&MapData> {
    match m {
        Map::Array(d) | Map::PerCpuArray(d) | Map::HashMap(d) | Map::LruHashMap(d) => Ok(d),
        other => Err(anyhow!("batch read of an unexpected map type: {other:?}")),
    }
}

/// Reads the map from the start: calls `each(keys, values, n)` per batch of
/// `n` entries (keys `key_size` bytes each, values `value_size`), until the
/// kernel says it is done. Returns the number of entries read.
fn lookup_all(
    map: &MapData,
    key_size: usize,
    value_size: usize,
    mut each: impl FnMut(&[u8], &[u8], usize),
) -> Result<usize> {
    let fd = map.fd().as_fd().as_raw_fd();
    let mut keys = vec![0u8; key_size * CHUNK as usize];
    let mut values = vec![0u8; value_size * CHUNK as usize];
    // The batch token: a u32 bucket (hash) or index (array) for these map types.
    let (mut token_in, mut token_out) = (0u64, 0u64);
    let mut first = true;
    let mut total = 0;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &mut token_in as *mut u64 as u64
            },
            out_batch: &mut token_out as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK,
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: attr points at live buffers of CHUNK keys and values and at
        // two 8-byte batch tokens; the kernel writes at most that much.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let n = attr.count as usize;
        if n > 0
            && err
                .as_ref()
                .is_none_or(|e| e.raw_os_error() == Some(libc::ENOENT))
        {
            each(&keys[..n * key_size], &values[..n * value_size], n);
            total += n;
        }
        match err {
            None => {}
            // ENOENT: the last batch (possibly empty) has been returned.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(total),
            Some(e) => return Err(anyhow!("BPF_MAP_LOOKUP_BATCH: {e}")),
        }
        token_in = token_out;
        first = false;
    }
}

/// The number of entries of a hash map.
pub(super) fn count(map: &MapData) -> Result<usize> {
    let info = map.info().map_err(|e| anyhow!("{e}"))?;
    lookup_all(
        map,
        info.key_size() as usize,
        info.value_size() as usize,
        |_, _, _| {},
    )
}

/// Every `u64` slot of a per-CPU array, summed over the CPUs: slot `i` of
/// the result is entry `i`.
pub(super) fn percpu_u64_sums(map: &MapData, cpus: usize) -> Result<Vec<u64>> {
    let info = map.info().map_err(|e| anyhow!("{e}"))?;
    let mut sums = vec![0u64; info.max_entries() as usize];
    // Per-CPU values come as one 8-byte-aligned slot per possible CPU.
    let stride = 8 * cpus;
    lookup_all(map, 4, stride, |keys, values, n| {
        for e in 0..n {
            let mut k = [0u8; 4];
            k.copy_from_slice(&keys[e * 4..e * 4 + 4]);
            let Some(slot) = sums.get_mut(u32::from_ne_bytes(k) as usize) else {
                continue;
            };
            for c in 0..cpus {
                let off = e * stride + c * 8;
                let mut v = [0u8; 8];
                v.copy_from_slice(&values[off..off + 8]);
                *slot = slot.wrapping_add(u64::from_ne_bytes(v));
            }
        }
    })?;
    Ok(sums)
}
