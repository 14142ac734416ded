//! A fast hasher for maps keyed by numbers we chose ourselves (binding ids,
//! GRE keys, pool addresses): rustc's FxHash step (rotate, xor, multiply).
//! It is not keyed, so it must not be used for keys a peer chooses (NAIs,
//! MN identifiers, link-layer ids): those keep the standard library's
//! randomly keyed SipHash, which resists chosen collisions.
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash over the integers a key writes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply carries a key's bits only upwards, and hashbrown
        // takes the bucket from the low bits: without a final mix, keys
        // that differ only in their high bytes (10.0.0.x as octets) would
        // share buckets. MurmurHash3's fmix64: two multiplies, still a
        // fraction of SipHash.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

/// For maps keyed by ids handed out in sequence (`IdAlloc`: binding ids):
/// the id itself picks the bucket, so bindings made one after another sit
/// side by side in the table, and a burst of new bindings writes memory in
/// order instead of a cold bucket each; a multiply fills the top bits,
/// from which hashbrown takes its 7-bit tags. Ids that are not in
/// sequence only lose that locality (they still spread by their low bits).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeqIdHasher(u64);

impl Hasher for SeqIdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let x = self.0 & ((1 << 57) - 1);
        x | (self.0.wrapping_mul(SEED) & !((1 << 57) - 1))
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not for byte keys; as IdHasher, so a misuse still hashes.
        let mut h = IdHasher(self.0);
        h.write(bytes);
        self.0 = h.finish();
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i);
    }
}

/// A map keyed by ids handed out in sequence ([`SeqIdHasher`]).
pub(crate) type SeqIdMap<K, V> = HashMap<K, V, BuildHasherDefault<SeqIdHasher>>;
/// A set of ids handed out in sequence ([`SeqIdHasher`]).
pub(crate) type SeqIdSet<K> = HashSet<K, BuildHasherDefault<SeqIdHasher>>;
/// A map keyed by our own numbers.
pub(crate) type IdMap<K, V> = HashMap<K, V, IdBuild>;
/// A set of our own numbers.
pub(crate) type IdSet<K> = HashSet<K, IdBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_spread_over_the_buckets() {
        // hashbrown takes the bucket from the low bits and the tag from the
        // top 7: consecutive ids must differ in both.
        let b = IdBuild::default();
        let n = 1u32 << 12;
        let low: IdSet<u64> = (0..n).map(|i| b.hash_one(i) & u64::from(n - 1)).collect();
        assert!(low.len() > (n as usize) / 2, "{} buckets of {n}", low.len());
        let top: IdSet<u64> = (0..n).map(|i| b.hash_one(i) >> 57).collect();
        assert!(top.len() > 100, "{} tags", top.len());
        let mut m: IdMap<u32, u32> = IdMap::default();
        for i in 0..n {
            m.insert(i, i * 2);
        }
        assert!((0..n).all(|i| m[&i] == i * 2));
    }

    #[test]
    fn ids_in_sequence_take_buckets_in_sequence_with_varied_tags() {
        let b = BuildHasherDefault::<SeqIdHasher>::default();
        let n = 1u32 << 12;
        assert!((0..n).all(|i| b.hash_one(i) & u64::from(n - 1) == u64::from(i)));
        let top: IdSet<u64> = (0..n).map(|i| b.hash_one(i) >> 57).collect();
        assert!(top.len() > 100, "{} tags", top.len());
        let mut m: SeqIdMap<u32, u32> = SeqIdMap::default();
        for i in (0..n).chain([u32::MAX, 1 << 31]) {
            m.insert(i, i ^ 5);
        }
        assert!((0..n).chain([u32::MAX, 1 << 31]).all(|i| m[&i] == i ^ 5));
    }

    #[test]
    fn addresses_that_differ_in_their_last_octets_spread_too() {
        let b = IdBuild::default();
        let n = 1u32 << 12;
        let low: IdSet<u64> = (0..n)
            .map(|i| b.hash_one(std::net::Ipv4Addr::from(0x0a00_0000 + i)) & u64::from(n - 1))
            .collect();
        assert!(low.len() > (n as usize) / 2, "{} buckets of {n}", low.len());
    }
}
