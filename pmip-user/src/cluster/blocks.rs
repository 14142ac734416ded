//! Blocks of numbers in etcd: `P/blocks/<space>/<block>` = the service
//! address that owns the block. A block is claimed with one transaction
//! that creates its key only if it does not exist (create revision 0) and
//! only while this member owns the service address: two anchors claiming at
//! the same instant get different blocks, and inside its blocks each
//! allocates alone ([`crate::agent::blocks`]). A block stays with its
//! service address (it moves with the address on a takeover), so its
//! numbers never have to be renumbered.
use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Result;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use crate::agent::blocks::{Blocks, Layout, Space};
use crate::config::{Config, Pool};
use crate::store::etcd::{EtcdConn, Fence};

/// Blocks claimed per transaction at most.
pub const CLAIM_AT_ONCE: u32 = 4;

/// A block length for a space of `size`: the configured one, but at most a
/// sixteenth of the space (a small pool still splits among several anchors).
fn block_len(configured: u32, size: u32) -> u32 {
    let cap = (size / 16).max(1);
    let cap = if cap.is_power_of_two() {
        cap
    } else {
        cap.next_power_of_two() / 2
    };
    configured.clamp(1, cap)
}

fn layout(size: u32, configured: u32, reserved: BTreeSet<u32>) -> Layout {
    let block_len = block_len(configured, size);
    // Large spaces keep two blocks in reserve (a burst of attaches must not
    // wait for a claim); small ones half a block (they would run dry).
    let low_water = if size / block_len >= 64 {
        2 * block_len
    } else {
        (block_len / 2).max(1)
    };
    Layout {
        size,
        block_len,
        reserved,
        low_water,
    }
}

/// The spaces of this configuration: keys (the fast path's subscriber
/// table, minus the ids of static bindings at its top), and each family's
/// first pool.
pub fn layouts(cfg: &Config, block_size: u32) -> Vec<(Space, Layout)> {
    let mut out = Vec::new();
    let keys = cfg
        .fastpath
        .max_subscribers
        .saturating_sub(cfg.static_bindings.len() as u32);
    out.push((Space::Key, layout(keys, block_size, [0].into())));
    for p in &cfg.pools {
        match p {
            Pool::V4(p) if !out.iter().any(|(s, _)| *s == Space::Home4) => {
                let host_bits = 32 - u32::from(p.prefix.len.min(32));
                let size = 1u64 << host_bits;
                let size = u32::try_from(size).unwrap_or(u32::MAX);
                let net = u32::from(p.prefix.network());
                let mut reserved: BTreeSet<u32> = [0].into();
                if p.prefix.len < 31 {
                    reserved.insert(size - 1);
                }
                reserved.insert(u32::from(p.gateway).wrapping_sub(net));
                out.push((Space::Home4, layout(size, block_size, reserved)));
            }
            Pool::V6(p) if !out.iter().any(|(s, _)| *s == Space::Prefix6) => {
                let bits = u32::from(p.assign_len.saturating_sub(p.prefix.len)).min(31);
                out.push((
                    Space::Prefix6,
                    layout(1 << bits, block_size, BTreeSet::new()),
                ));
            }
            _ => {}
        }
    }
    out
}

/// Grants `blocks` what etcd says `addr` owns already; returns how many.
pub async fn load(conn: &EtcdConn, blocks: &Blocks, addr: IpAddr) -> Result<usize> {
    let mut n = 0;
    let me = addr.to_string();
    for s in blocks.spaces() {
        let prefix = conn.keys.blocks(s);
        let mut c = conn.client();
        let get = c.get(prefix.as_str(), Some(GetOptions::new().with_prefix()));
        let r = conn.timed("blocks", get).await?;
        for kv in r.kvs() {
            let b = kv
                .key_str()
                .ok()
                .and_then(|k| k.strip_prefix(&prefix))
                .and_then(|k| k.parse::<u32>().ok());
            if let (Some(b), true) = (b, kv.value() == me.as_bytes()) {
                n += usize::from(blocks.grant(s, b));
            }
        }
    }
    Ok(n)
}

/// Free blocks of `s` to try: unclaimed ones, from a start that differs per
/// service address (so anchors claiming at once rarely pick the same).
fn candidates(layout: &Layout, taken: &BTreeSet<u32>, addr: IpAddr, n: usize) -> Vec<u32> {
    let total = layout.blocks();
    if total == 0 {
        return Vec::new();
    }
    let h = match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => a
            .octets()
            .iter()
            .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(*b)),
    };
    let start = h.wrapping_mul(0x9e37_79b1) % total;
    (0..total)
        .map(|i| (start + i) % total)
        .filter(|b| !taken.contains(b))
        .take(n)
        .collect()
}

/// Claims up to `n` free blocks of `s` for `addr` and grants them; returns
/// the blocks claimed (none when the space is full or we lost the address).
pub async fn claim(
    conn: &EtcdConn,
    blocks: &Blocks,
    s: Space,
    (addr, fence): (IpAddr, &Fence),
    n: u32,
) -> Result<Vec<u32>> {
    let Some(layout) = blocks.layout(s) else {
        return Ok(Vec::new());
    };
    let prefix = conn.keys.blocks(s);
    let owner = conn.keys.owner(addr);
    for _attempt in 0..8 {
        let mut c = conn.client();
        let opts = GetOptions::new().with_prefix().with_keys_only();
        let r = conn
            .timed("blocks", c.get(prefix.as_str(), Some(opts)))
            .await?;
        let taken: BTreeSet<u32> = r
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix)?.parse().ok())
            .collect();
        let want = candidates(&layout, &taken, addr, n as usize);
        if want.is_empty() {
            return Ok(Vec::new());
        }
        let mut when = vec![
            Compare::value(owner.as_str(), CompareOp::Equal, fence.member.as_str()),
            Compare::lease(owner.as_str(), CompareOp::Equal, fence.lease),
        ];
        let mut then = Vec::new();
        for b in &want {
            let k = conn.keys.block(s, *b);
            when.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            then.push(TxnOp::put(k.as_str(), addr.to_string(), None));
        }
        let txn = Txn::new().when(when).and_then(then);
        if conn.timed("block claim", c.txn(txn)).await?.succeeded() {
            for b in &want {
                blocks.grant(s, *b);
            }
            return Ok(want);
        }
        // Someone took one of them in between (or the address is not ours):
        // look again.
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_length_splits_small_spaces() {
        assert_eq!(block_len(256, 65_536), 256);
        assert_eq!(block_len(256, 256), 16, "a /24 pool: 16 blocks of 16");
        assert_eq!(block_len(256, 4), 1);
        assert_eq!(block_len(256, 1000), 32, "a power of two below 1000/16");
    }

    #[test]
    fn low_water_depends_on_the_size_of_the_space() {
        assert_eq!(layout(65_536, 256, BTreeSet::new()).low_water, 512);
        assert_eq!(layout(256, 256, BTreeSet::new()).low_water, 8);
    }

    #[test]
    fn candidates_skip_taken_blocks_and_differ_per_address() {
        let l = layout(4096, 256, BTreeSet::new());
        let a: IpAddr = "10.255.0.101".parse().unwrap();
        let b: IpAddr = "10.255.0.102".parse().unwrap();
        let taken: BTreeSet<u32> = [0, 1, 2].into();
        let ca = candidates(&l, &taken, a, 16);
        assert_eq!(ca.len(), 13);
        assert!(ca.iter().all(|x| !taken.contains(x) && *x < 16));
        assert_ne!(
            candidates(&l, &taken, a, 1),
            candidates(&l, &taken, b, 1),
            "two addresses start at different blocks"
        );
        let all: BTreeSet<u32> = (0..16).collect();
        assert!(candidates(&l, &all, a, 4).is_empty());
    }
}
