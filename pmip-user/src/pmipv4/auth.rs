//! Registration authentication (RFC 3344 §3.5) and Identification replay protection (§5.7).
//!
//! Authenticators are computed per SPI over a prefix of the UDP payload:
//! - `hmac-md5` (RFC 3344 §3.5.1, the default): HMAC-MD5(key, payload up to and including
//!   the SPI of this authentication extension).
//! - `rfc2002-md5` (keyed MD5 "prefix+suffix", RFC 2002 §3.5.1, seed 000's
//!   `hash-algorithm rfc2002-md5`): MD5(key ‖ payload up to and including the Type and
//!   Length of this extension ‖ key) — the SPI is not covered.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

use super::wire::ext::{AuthKind, ExtIter};

/// Authenticator algorithm of a mobility security association.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    HmacMd5,
    /// RFC 2002 §3.5.1 keyed MD5, prefix+suffix, over the message and the
    /// extension's Type and Length (StarOS `rfc2002-md5`).
    KeyedMd5PrefixSuffix,
    /// Keyed MD5, prefix+suffix, over what RFC 3344 §3.5.1 protects — the
    /// message up to and including the SPI (StarOS `md5`; RFC 3344 §5.1
    /// keeps prefix+suffix MD5 for backward compatibility).
    KeyedMd5,
}

/// A mobility security association with one peer (FA-HA: per node, draft §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityAssociation {
    pub spi: u32,
    /// Shared secret (RFC 3344 §5.1: 128-bit by default).
    pub key: Vec<u8>,
    pub algorithm: Algorithm,
    /// Accepted clock skew of Identification timestamps (StarOS `timestamp-tolerance`, 60 s).
    pub timestamp_tolerance_s: u32,
}

/// A peer's FA-HA associations (RFC 3344 §3.5: the SPI "identifies the
/// security context"): the one we sign what we start with (`current`), and
/// those we also accept during a key rollover (`peers[].also_accept`). A
/// message is checked against the association its SPI names; an answer is
/// signed with the association of what it answers, so a peer still on the
/// old key reads our answers until it moves to the new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKeys {
    pub current: SecurityAssociation,
    pub also: Vec<SecurityAssociation>,
}

impl PeerKeys {
    /// The association with this SPI, if the peer has one.
    pub fn by_spi(&self, spi: u32) -> Option<&SecurityAssociation> {
        std::iter::once(&self.current)
            .chain(&self.also)
            .find(|sa| sa.spi == spi)
    }

    /// The association an answer to a message whose authentication
    /// extension named `spi` is signed with: that one, or (unknown, or
    /// none) the current one.
    pub fn answering(&self, spi: Option<u32>) -> &SecurityAssociation {
        spi.and_then(|s| self.by_spi(s)).unwrap_or(&self.current)
    }
}

impl From<SecurityAssociation> for PeerKeys {
    fn from(current: SecurityAssociation) -> Self {
        PeerKeys {
            current,
            also: Vec::new(),
        }
    }
}

/// What we start with is signed with the current association.
impl std::ops::Deref for PeerKeys {
    type Target = SecurityAssociation;
    fn deref(&self) -> &SecurityAssociation {
        &self.current
    }
}

fn default_tolerance() -> u32 {
    60
}

/// Parses a hex string (an optional `0x` prefix is allowed).
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl SecurityAssociation {
    pub fn new(spi: u32, key: &[u8], algorithm: Algorithm) -> Self {
        SecurityAssociation {
            spi,
            key: key.to_vec(),
            algorithm,
            timestamp_tolerance_s: default_tolerance(),
        }
    }
}

/// Authenticator length for both algorithms (MD5 output).
pub(crate) const AUTHENTICATOR_LEN: usize = 16;
/// An authentication extension's length on the wire: type, length, SPI and
/// the authenticator (RFC 3344 §3.5).
pub const AUTH_EXT_LEN: usize = 2 + 4 + AUTHENTICATOR_LEN;

/// How many bytes of the message, counted from its start, the authenticator covers,
/// given the offset of the authentication extension's Type octet.
pub(crate) fn covered_len(alg: Algorithm, ext_offset: usize) -> usize {
    match alg {
        Algorithm::HmacMd5 | Algorithm::KeyedMd5 => ext_offset + 2 + 4,
        Algorithm::KeyedMd5PrefixSuffix => ext_offset + 2,
    }
}

/// Computes an authenticator over `covered` (already cut with [`covered_len`]).
pub(crate) fn compute(alg: Algorithm, key: &[u8], covered: &[u8]) -> [u8; AUTHENTICATOR_LEN] {
    match alg {
        Algorithm::HmacMd5 => {
            let mut m = keyed_hmac(key);
            m.update(covered);
            m.finalize().into_bytes().into()
        }
        Algorithm::KeyedMd5PrefixSuffix | Algorithm::KeyedMd5 => {
            let mut h = Md5::new();
            h.update(key);
            h.update(covered);
            h.update(key);
            h.finalize().into()
        }
    }
}

/// Keys whose HMAC-MD5 state is kept ([`keyed_hmac`]): an HA or a PMA has
/// one FA-HA key a peer, and a handful of peers keep their states warm.
const HMAC_CACHE: usize = 8;

thread_local! {
    /// HMAC-MD5 states after the key: (key, state), most recently used last.
    static HMAC_KEYS: std::cell::RefCell<Vec<(Vec<u8>, Hmac<Md5>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An HMAC-MD5 ready for the message: the padded key's two MD5 blocks
/// (inner and outer, RFC 2104 §2) absorbed once per key and cloned per
/// message instead of hashed again — 2 of the ~5 MD5 blocks of a
/// registration's HMAC (issue 18). The cache is per thread (the shell's),
/// compared by key bytes, so a changed key is a new entry.
fn keyed_hmac(key: &[u8]) -> Hmac<Md5> {
    HMAC_KEYS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(i) = c.iter().rposition(|(k, _)| k == key) {
            let last = c.len() - 1;
            c.swap(i, last);
            return c[last].1.clone();
        }
        // HMAC accepts keys of any length; this cannot fail.
        let m = <Hmac<Md5> as Mac>::new_from_slice(key).expect("hmac key");
        if c.len() == HMAC_CACHE {
            c.remove(0);
        }
        c.push((key.to_vec(), m.clone()));
        m
    })
}

/// Appends an authentication extension of `kind` to an emitted message and fills in its
/// authenticator. It must be the last extension it protects (RFC 3344 §3.5.2).
///
/// `msg` grows by exactly [`AUTH_EXT_LEN`], so that a message built with
/// that room (`to_bytes_with_room`) is not moved, and one built without is
/// moved once and not cut to size again when it becomes a `Bytes`.
pub fn append_auth(msg: &mut Vec<u8>, kind: AuthKind, sa: &SecurityAssociation) {
    let off = msg.len();
    msg.reserve_exact(AUTH_EXT_LEN);
    msg.push(kind.ext_type());
    msg.push((4 + AUTHENTICATOR_LEN) as u8);
    msg.extend_from_slice(&sa.spi.to_be_bytes());
    let a = compute(
        sa.algorithm,
        &sa.key,
        &msg[..covered_len(sa.algorithm, off)],
    );
    msg.extend_from_slice(&a);
}

/// Why a message failed authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No authentication extension of the required kind.
    Missing,
    /// Extensions follow the authentication extension (they would be unprotected).
    NotLast,
    /// A second authentication extension of the same kind (RFC 5944
    /// §3.8.2.1 (c): "more than one Foreign-Home Authentication Extension").
    Duplicate,
    /// The SPI is not the one configured for this peer.
    UnknownSpi(u32),
    /// The authenticator does not match.
    BadAuthenticator,
    /// The extensions could not be walked.
    Malformed,
}

/// Offset of the extension area for a message, by its type octet.
pub(crate) fn extensions_offset(msg: &[u8]) -> Option<usize> {
    match msg.first()? {
        1 => Some(24),
        3 | 7 => Some(20),
        15 => Some(12),
        _ => None,
    }
    .filter(|&o| o <= msg.len())
}

/// Verifies the authentication extension of `kind`, which must be the last extension.
/// `lookup` maps an SPI to the peer's association. Returns the SPI on success.
pub fn verify<'a>(
    msg: &[u8],
    kind: AuthKind,
    lookup: impl Fn(u32) -> Option<&'a SecurityAssociation>,
) -> Result<u32, AuthError> {
    verify_then(msg, kind, false, lookup)
}

/// [`verify`], or, with `followed`, of an extension that others' may
/// follow: the mobile node's MN-HA one, after which the FA appends its own
/// extensions and then its FA-HA one (RFC 5944 §3.7.2.2: "MAY append any
/// of its own non-authentication Extensions of relevance to the home
/// agent"; §3.8.3.3 the same for a reply; RFC 6245 §4.1 puts the GRE Key
/// there). The MN-HA extension protects what is before it; what follows
/// it is the FA-HA extension's to protect, which is checked on its own
/// (last, and only one: RFC 5944 §3.8.2.1 (c)). Only a second extension
/// of `kind` is refused here.
fn verify_then<'a>(
    msg: &[u8],
    kind: AuthKind,
    followed: bool,
    lookup: impl Fn(u32) -> Option<&'a SecurityAssociation>,
) -> Result<u32, AuthError> {
    let start = extensions_offset(msg).ok_or(AuthError::Malformed)?;
    let mut found = None;
    for raw in ExtIter::new(&msg[start..], start) {
        let raw = raw.map_err(|_| AuthError::Malformed)?;
        if found.is_some() {
            if raw.ty == kind.ext_type() {
                return Err(AuthError::Duplicate);
            }
            if followed {
                continue;
            }
            return Err(AuthError::NotLast);
        }
        if raw.ty == kind.ext_type() {
            found = Some(raw);
        }
    }
    let raw = found.ok_or(AuthError::Missing)?;
    if raw.data.len() < 4 {
        return Err(AuthError::Malformed);
    }
    let spi = u32::from_be_bytes([raw.data[0], raw.data[1], raw.data[2], raw.data[3]]);
    let sa = lookup(spi).ok_or(AuthError::UnknownSpi(spi))?;
    let got = &raw.data[4..];
    let want = compute(
        sa.algorithm,
        &sa.key,
        &msg[..covered_len(sa.algorithm, raw.offset)],
    );
    if got.len() != want.len() || !ct_eq(got, &want) {
        return Err(AuthError::BadAuthenticator);
    }
    Ok(spi)
}

/// [`verify`] against the associations shared with the sender (FA-HA
/// between a PMA and its HA: the current one, and those also accepted
/// during a key rollover).
pub(crate) fn verify_with(msg: &[u8], kind: AuthKind, keys: &PeerKeys) -> Result<u32, AuthError> {
    verify(msg, kind, |spi| keys.by_spi(spi))
}

/// The MN-HA extension of a message checked against the mobile node's
/// association (RFC 3344 §3.5.2) its SPI names — its own, or one also
/// accepted during a rollover (`mn_ha[].also_accept`): it protects
/// everything before it; the FA's extensions and its FA-HA one may follow
/// it ([`verify_then`]). Returns the SPI.
pub(crate) fn verify_mn_ha(msg: &[u8], keys: &PeerKeys) -> Result<u32, AuthError> {
    verify_then(msg, AuthKind::MnHa, true, |spi| keys.by_spi(spi))
}

/// Per-mobile-node security associations (MN-HA, RFC 3344 §3.5.2;
/// draft-leung §4.3 "per MN SA"): by NAI, or by the NAI's realm (the part
/// after its last '@', compared without regard to case, RFC 7542 §2.4) —
/// Cisco IOS `ip mobile secure host nai`, a realm's key for its users.
/// An exact NAI wins over its realm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MnHaKeys {
    by_nai: std::collections::HashMap<String, Arc<PeerKeys>>,
    by_realm: Vec<(String, Arc<PeerKeys>)>,
}

impl MnHaKeys {
    /// `nai`'s association (and those also accepted during a rollover).
    pub fn insert_nai(&mut self, nai: &str, keys: impl Into<PeerKeys>) {
        self.by_nai.insert(nai.to_string(), Arc::new(keys.into()));
    }

    pub fn insert_realm(&mut self, realm: &str, keys: impl Into<PeerKeys>) {
        self.by_realm
            .retain(|(r, _)| !r.eq_ignore_ascii_case(realm));
        self.by_realm
            .push((realm.to_string(), Arc::new(keys.into())));
    }

    /// The associations of the mobile node named `nai` (shared: a request
    /// holds them without a copy of a key): its current one signs what we
    /// start; a message is checked against the one its SPI names.
    pub fn get(&self, nai: &str) -> Option<&Arc<PeerKeys>> {
        self.by_nai.get(nai).or_else(|| {
            self.by_realm
                .iter()
                .find(|(r, _)| crate::agent::registrar::in_realm(nai.as_bytes(), r.as_bytes()))
                .map(|(_, sa)| sa)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_nai.is_empty() && self.by_realm.is_empty()
    }
}

/// How far (seconds) a Revocation Identifier may be behind the newest one
/// seen from the same agent and still not count as a replay (RFC 3543
/// §6.2: identifiers are timestamps, which "should not be presumed" to
/// arrive increasing — several share a second, datagrams are reordered —
/// so an implementation that bases its check on them defines "a suitable
/// time window"). RFC 3344 §5.7's default replay window for timestamps.
pub(crate) const REVOCATION_WINDOW_S: u32 = 7;

/// Whether revocation `id` from `peer` is a replay (RFC 3543 §3.5, §6.2):
/// older than the newest identifier seen from that agent by more than
/// [`REVOCATION_WINDOW_S`]. One that is not counts; a newer one becomes the
/// newest. What protects a binding registered again since is
/// [`revocation_follows`].
pub(crate) fn revocation_replayed(
    newest: &mut std::collections::HashMap<std::net::Ipv4Addr, u32>,
    peer: std::net::Ipv4Addr,
    id: u32,
) -> bool {
    match newest.get(&peer) {
        Some(&n) if (n.wrapping_sub(id) as i32) > REVOCATION_WINDOW_S as i32 => true,
        Some(&n) if (id.wrapping_sub(n) as i32) <= 0 => false,
        _ => {
            newest.insert(peer, id);
            false
        }
    }
}

/// Whether a revocation with identifier `id` may name a registration whose
/// timestamp (the sender's Revocation Support extension in it, from the
/// same clock) was `registered` (RFC 3543 §4.2.2.2, §4.2.3.2: "revocations
/// are only valid for existing registrations, and so the timestamp of a
/// registration MUST precede the revocation message"). Unknown (a
/// registration without it, or restored from the store): it may.
pub(crate) fn revocation_follows(registered: Option<u32>, id: u32) -> bool {
    registered.is_none_or(|r| (id.wrapping_sub(r) as i32) > 0)
}

/// Minimum time between two revocations of one binding (RFC 3543
/// §4.2.2.1, §4.2.3.1: "MUST NOT send more than one revocation per second
/// for a particular binding"), whatever the retransmission timer says.
pub(crate) const REVOCATION_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub(crate) const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// 64-bit NTP timestamp of a wall-clock time (RFC 3344 §5.7.1: Identification format).
pub fn ntp_from_system(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The seconds part (high 32 bits) of an NTP Identification.
pub(crate) fn ntp_seconds(id: u64) -> u32 {
    (id >> 32) as u32
}

/// True if the Identification's time is within `tolerance_s` of `now` (RFC 3344 §5.7.1).
pub(crate) fn within_tolerance(id: u64, now: SystemTime, tolerance_s: u32) -> bool {
    let ours = ntp_seconds(ntp_from_system(now));
    // Wrapping difference: NTP era rollover in 2036 must not break the check.
    let diff = ntp_seconds(id).wrapping_sub(ours) as i32;
    diff.unsigned_abs() <= tolerance_s
}

/// Generates strictly increasing NTP-timestamp Identifications, so that every request
/// and every retransmission carries a fresh one (RFC 3344 §3.6.3).
#[derive(Clone, Debug, Default)]
pub(crate) struct IdentGen {
    last: u64,
    /// Added to our clock after an Identification mismatch (§5.7.1, the HA's time wins).
    pub offset_s: i64,
}

impl IdentGen {
    pub fn next(&mut self, now: SystemTime) -> u64 {
        let t = if self.offset_s >= 0 {
            now + Duration::from_secs(self.offset_s as u64)
        } else {
            now.checked_sub(Duration::from_secs(self.offset_s.unsigned_abs()))
                .unwrap_or(now)
        };
        let id = ntp_from_system(t).max(self.last.wrapping_add(1));
        self.last = id;
        id
    }

    /// The last Identification handed out.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Never hands out `id` or anything before it (the last one an earlier
    /// run sent, taken from the store).
    pub fn floor(&mut self, id: u64) {
        self.last = self.last.max(id);
    }

    /// Adopts the HA's clock from the high 32 bits of a code-133 reply.
    pub(crate) fn resync(&mut self, reply_ident: u64, now: SystemTime) {
        let ours = ntp_seconds(ntp_from_system(now));
        let offset = ntp_seconds(reply_ident).wrapping_sub(ours) as i32 as i64;
        if (offset - self.offset_s).abs() > 1 {
            // A real clock step: forget the old sequence (it may be far ahead).
            self.last = 0;
        }
        self.offset_s = offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmipv4::wire::{ext::ExtRepr, RegistrationRequestRepr, RrqFlags};
    use std::net::Ipv4Addr;

    /// RFC 2202 test case 2 (HMAC-MD5): key "Jefe".
    #[test]
    fn hmac_md5_known_answer() {
        let a = compute(Algorithm::HmacMd5, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            a,
            [
                0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03, 0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d,
                0xb7, 0x38
            ]
        );
    }

    /// The cached key states give what a fresh HMAC gives, for more keys
    /// than the cache holds and for a key seen again after eviction.
    #[test]
    fn cached_hmac_states_match_fresh_ones() {
        let fresh = |k: &[u8], d: &[u8]| -> [u8; 16] {
            let mut m = <Hmac<Md5> as Mac>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().into()
        };
        let keys: Vec<Vec<u8>> = (0..HMAC_CACHE as u8 + 3)
            .map(|i| vec![i; 16 + usize::from(i) * 7])
            .collect();
        for round in 0..3u8 {
            for k in &keys {
                let d = [round; 77];
                assert_eq!(compute(Algorithm::HmacMd5, k, &d), fresh(k, &d));
            }
        }
        // Two messages under one key: the state is cloned, not consumed.
        assert_eq!(
            compute(Algorithm::HmacMd5, &keys[0], b"a"),
            fresh(&keys[0], b"a")
        );
        assert_eq!(
            compute(Algorithm::HmacMd5, &keys[0], b"b"),
            fresh(&keys[0], b"b")
        );
    }

    /// Prefix+suffix is MD5(key ‖ data ‖ key): MD5("abc") with empty key.
    #[test]
    fn keyed_md5_known_answer() {
        let a = compute(Algorithm::KeyedMd5PrefixSuffix, b"", b"abc");
        assert_eq!(
            a,
            [
                0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
                0x7f, 0x72
            ]
        );
        // And the key really is on both sides.
        let mut h = Md5::new();
        h.update(b"k");
        h.update(b"abc");
        h.update(b"k");
        let want: [u8; 16] = h.finalize().into();
        assert_eq!(compute(Algorithm::KeyedMd5PrefixSuffix, b"k", b"abc"), want);
    }

    fn rrq() -> Vec<u8> {
        RegistrationRequestRepr {
            flags: RrqFlags(RrqFlags::G | RrqFlags::T),
            lifetime: 600,
            home_address: Ipv4Addr::UNSPECIFIED,
            home_agent: Ipv4Addr::new(192, 0, 2, 1),
            care_of_address: Ipv4Addr::new(198, 51, 100, 7),
            identification: 1,
            extensions: vec![ExtRepr::Nai(b"a@b".to_vec()), ExtRepr::GreKey(7)],
        }
        .to_bytes()
    }

    #[test]
    fn covered_range_hmac_includes_spi() {
        let sa = SecurityAssociation::new(0x100, b"0123456789abcdef", Algorithm::HmacMd5);
        let mut m = rrq();
        let off = m.len();
        append_auth(&mut m, AuthKind::FaHa, &sa);
        // Authenticator = HMAC over everything before it (payload, type, length, SPI).
        let want = compute(Algorithm::HmacMd5, &sa.key, &m[..off + 6]);
        assert_eq!(&m[off + 6..], &want);
        assert_eq!(
            verify(&m, AuthKind::FaHa, |s| (s == 0x100).then_some(&sa)),
            Ok(0x100)
        );
    }

    /// StarOS `md5`: prefix+suffix keyed MD5 over RFC 3344's protected
    /// fields, SPI included; the other algorithms' authenticators do not verify.
    #[test]
    fn keyed_md5_covers_the_spi() {
        let sa = SecurityAssociation::new(9, b"secret", Algorithm::KeyedMd5);
        let mut m = rrq();
        let off = m.len();
        append_auth(&mut m, AuthKind::FaHa, &sa);
        let mut h = Md5::new();
        h.update(b"secret");
        h.update(&m[..off + 6]);
        h.update(b"secret");
        let want: [u8; 16] = h.finalize().into();
        assert_eq!(&m[off + 6..], &want);
        assert_eq!(verify(&m, AuthKind::FaHa, |_| Some(&sa)), Ok(9));
        for other in [Algorithm::HmacMd5, Algorithm::KeyedMd5PrefixSuffix] {
            let o = SecurityAssociation::new(9, b"secret", other);
            assert_eq!(
                verify(&m, AuthKind::FaHa, |_| Some(&o)),
                Err(AuthError::BadAuthenticator),
                "{other:?}"
            );
        }
    }

    #[test]
    fn covered_range_rfc2002_excludes_spi() {
        let sa = SecurityAssociation::new(7, b"secret", Algorithm::KeyedMd5PrefixSuffix);
        let mut m = rrq();
        let off = m.len();
        append_auth(&mut m, AuthKind::FaHa, &sa);
        let mut h = Md5::new();
        h.update(b"secret");
        h.update(&m[..off + 2]);
        h.update(b"secret");
        let want: [u8; 16] = h.finalize().into();
        assert_eq!(&m[off + 6..], &want);
        assert_eq!(verify(&m, AuthKind::FaHa, |_| Some(&sa)), Ok(7));
        // Changing the SPI bytes does not change the keyed-MD5 authenticator...
        let mut m2 = m.clone();
        m2[off + 5] = 8;
        assert_eq!(verify(&m2, AuthKind::FaHa, |_| Some(&sa)), Ok(8));
        // ... but does change HMAC-MD5's.
        let hs = SecurityAssociation::new(7, b"secret", Algorithm::HmacMd5);
        let mut m3 = rrq();
        append_auth(&mut m3, AuthKind::FaHa, &hs);
        let n = m3.len();
        m3[n - 17] = 8;
        assert_eq!(
            verify(&m3, AuthKind::FaHa, |_| Some(&hs)),
            Err(AuthError::BadAuthenticator)
        );
    }

    #[test]
    fn verify_failures() {
        let sa = SecurityAssociation::new(0x100, b"k1", Algorithm::HmacMd5);
        let m = rrq();
        assert_eq!(
            verify(&m, AuthKind::FaHa, |_| Some(&sa)),
            Err(AuthError::Missing)
        );
        let mut a = m.clone();
        append_auth(&mut a, AuthKind::FaHa, &sa);
        assert_eq!(
            verify(&a, AuthKind::FaHa, |_| None),
            Err(AuthError::UnknownSpi(0x100))
        );
        let other = SecurityAssociation::new(0x100, b"k2", Algorithm::HmacMd5);
        assert_eq!(
            verify(&a, AuthKind::FaHa, |_| Some(&other)),
            Err(AuthError::BadAuthenticator)
        );
        // Any flipped bit in the covered range is detected.
        for i in 0..a.len() {
            let mut t = a.clone();
            t[i] ^= 0x01;
            assert_ne!(
                verify(&t, AuthKind::FaHa, |_| Some(&sa)),
                Ok(0x100),
                "byte {i}"
            );
        }
        let mut trailing = a.clone();
        trailing.extend_from_slice(&[200, 0]);
        assert_eq!(
            verify(&trailing, AuthKind::FaHa, |_| Some(&sa)),
            Err(AuthError::NotLast)
        );
        // A second FA-HA extension (a copy of the first) is a duplicate.
        let auth_len = 2 + 4 + 16;
        let mut twice = a.clone();
        twice.extend_from_slice(&a[a.len() - auth_len..]);
        assert_eq!(
            verify(&twice, AuthKind::FaHa, |_| Some(&sa)),
            Err(AuthError::Duplicate)
        );
        let mut short = a.clone();
        short.truncate(a.len() - 1);
        assert_eq!(
            verify(&short, AuthKind::FaHa, |_| Some(&sa)),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify(&[1, 2, 3], AuthKind::FaHa, |_| Some(&sa)),
            Err(AuthError::Malformed)
        );
    }

    /// An MN-HA extension followed by the FA's extensions and its FA-HA
    /// one: each verifies with its own key; a second MN-HA one does not,
    /// nor a second FA-HA one (that check's).
    #[test]
    fn mn_ha_may_be_followed_by_the_fas_extensions() {
        const MN_SPI_OF_TEST: u32 = 0x300;
        let mn = SecurityAssociation::new(MN_SPI_OF_TEST, b"mobile node key!", Algorithm::HmacMd5);
        let fa = SecurityAssociation::new(0x100, b"k1", Algorithm::HmacMd5);
        let mut m = rrq();
        append_auth(&mut m, AuthKind::MnHa, &mn);
        let mn_only = m.clone();
        append_auth(&mut m, AuthKind::FaHa, &fa);
        assert_eq!(verify_mn_ha(&mn_only, &mn.clone().into()), Ok(0x300));
        assert_eq!(verify_mn_ha(&m, &mn.clone().into()), Ok(0x300));
        assert_eq!(
            verify_with(&m, AuthKind::FaHa, &fa.clone().into()),
            Ok(0x100)
        );
        // The FA-HA key does not verify the MN-HA extension, nor an SPI not the MN's.
        let wrong_key = SecurityAssociation::new(0x300, b"k1", Algorithm::HmacMd5);
        assert_eq!(
            verify_mn_ha(&m, &wrong_key.clone().into()),
            Err(AuthError::BadAuthenticator)
        );
        let wrong_spi = SecurityAssociation::new(0x301, b"mobile node key!", Algorithm::HmacMd5);
        assert_eq!(
            verify_mn_ha(&m, &wrong_spi.clone().into()),
            Err(AuthError::UnknownSpi(0x300))
        );
        assert_eq!(
            verify_mn_ha(&rrq(), &mn.clone().into()),
            Err(AuthError::Missing)
        );
        // The FA's own extensions between the two (RFC 5944 §3.7.2.2; a
        // GRE Key, RFC 6245 §4.1): both still verify, the FA-HA one over
        // them too.
        let mut between = mn_only.clone();
        between.extend_from_slice(&[200, 0, 0, 0]);
        append_auth(&mut between, AuthKind::FaHa, &fa);
        assert_eq!(verify_mn_ha(&between, &mn.clone().into()), Ok(0x300));
        assert_eq!(
            verify_with(&between, AuthKind::FaHa, &fa.clone().into()),
            Ok(0x100)
        );
        // Two FA-HA extensions after it: the FA-HA check refuses them
        // (132, RFC 5944 §3.8.2.1 (c)).
        let mut two = m.clone();
        append_auth(&mut two, AuthKind::FaHa, &fa);
        assert_eq!(verify_mn_ha(&two, &mn.clone().into()), Ok(0x300));
        assert_eq!(
            verify_with(&two, AuthKind::FaHa, &fa.clone().into()),
            Err(AuthError::Duplicate)
        );
        // A second MN-HA extension.
        let mut dup = mn_only.clone();
        append_auth(&mut dup, AuthKind::MnHa, &mn);
        assert_eq!(
            verify_mn_ha(&dup, &mn.clone().into()),
            Err(AuthError::Duplicate)
        );
        // Truncated anywhere but between the two extensions (the MN-HA
        // one alone is whole): never a pass, never a panic.
        for n in (0..m.len()).filter(|&n| n != mn_only.len()) {
            assert_ne!(
                verify_mn_ha(&m[..n], &mn.clone().into()),
                Ok(MN_SPI_OF_TEST),
                "cut to {n}"
            );
        }
        assert_eq!(
            verify_mn_ha(&m[..m.len() - 1], &mn.clone().into()),
            Err(AuthError::Malformed)
        );
        // The plain verify still wants its extension last.
        assert_eq!(
            verify(&m, AuthKind::MnHa, |_| Some(&mn)),
            Err(AuthError::NotLast)
        );
    }

    #[test]
    fn mn_ha_keys_by_nai_then_realm() {
        let sa = |spi| SecurityAssociation::new(spi, b"k", Algorithm::HmacMd5);
        let mut k = MnHaKeys::default();
        assert!(k.is_empty() && k.get("a@example.com").is_none());
        k.insert_realm("Example.COM", sa(0x200));
        k.insert_nai("vip@example.com", sa(0x201));
        assert_eq!(k.get("a@example.com").map(|s| s.spi), Some(0x200));
        assert_eq!(k.get("b@EXAMPLE.com").map(|s| s.spi), Some(0x200));
        assert_eq!(k.get("vip@example.com").map(|s| s.spi), Some(0x201));
        // The NAI's user part is compared exactly; no realm, no match.
        assert_eq!(k.get("VIP@example.com").map(|s| s.spi), Some(0x200));
        assert!(k.get("example.com").is_none());
        assert!(k.get("a@example.org").is_none());
        // The realm is the part after the last '@'.
        assert_eq!(k.get("x@y@example.com").map(|s| s.spi), Some(0x200));
        // A realm configured again replaces the first.
        k.insert_realm("example.com", sa(0x202));
        assert_eq!(k.get("a@example.com").map(|s| s.spi), Some(0x202));
    }

    #[test]
    fn ntp_and_tolerance() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let id = ntp_from_system(t);
        assert_eq!(ntp_seconds(id) as u64, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(id & 0xffff_ffff, 1 << 31); // .5 s
        assert!(within_tolerance(id, t + Duration::from_secs(60), 60));
        assert!(!within_tolerance(id, t + Duration::from_secs(62), 60));
        assert!(!within_tolerance(id, t - Duration::from_secs(62), 60));
    }

    #[test]
    fn ident_gen_is_strictly_increasing_and_resyncs() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut g = IdentGen::default();
        let a = g.next(t);
        let b = g.next(t);
        assert!(b > a);
        let ha_time = ntp_from_system(t + Duration::from_secs(300));
        g.resync(ha_time, t);
        let c = g.next(t);
        assert!(within_tolerance(c, t + Duration::from_secs(300), 1));
    }

    #[test]
    fn hex_keys() {
        assert_eq!(parse_hex("0x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
        let sa =
            SecurityAssociation::new(256, &[0, 0x11, 0x22, 0x33], Algorithm::KeyedMd5PrefixSuffix);
        assert_eq!(sa.algorithm, Algorithm::KeyedMd5PrefixSuffix);
        assert_eq!(sa.timestamp_tolerance_s, 60);
    }
}
