//! A security association ([`Sa`]): `seal` a payload into an ESP packet,
//! `open` an ESP packet back into its payload; and the agent's SA database
//! ([`SaDb`]): two SAs per peer, inbound ones found by SPI, every drop counted.
//!
//! Inbound processing follows RFC 4303 §3.4: header and lengths, the replay
//! check (§3.4.3), the ICV (§3.4.4), then the window moves, then decryption's
//! output is checked (padding, §2.4) and dummy packets are dropped (§2.6).
use std::collections::HashMap;
use std::net::IpAddr;

use super::config::{EspAlgorithm, EspSettings, SaParams};
use super::packet::{self, EspPacket, EspRepr, HEADER_LEN, TRAILER_LEN};
use super::replay::ReplayWindow;
use super::transform::{new_transform, Transform, ICV_LEN};
use super::{DropReason, EspCounters, SealError, IPPROTO_NONE};

/// Largest ESP packet we build: it must fit one IPv6 (or IPv4) datagram.
const MAX_PACKET: usize = 65_535 - 40;

/// One manually keyed security association. An agent holds two per peer
/// (one per direction); a single `Sa` can do both, which tests use.
pub struct Sa {
    spi: u32,
    algorithm: EspAlgorithm,
    transform: Box<dyn Transform>,
    esn: bool,
    /// Random per SA instance, so IVs do not repeat across restarts.
    seed: u64,
    /// Last sequence number sent; 64 bits even without ESN (the IV input).
    tx_seq: u64,
    window: ReplayWindow,
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sa")
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("algorithm", &self.algorithm)
            .field("esn", &self.esn)
            .field("tx_seq", &self.tx_seq)
            .field("rx_top", &self.window.top())
            .finish_non_exhaustive()
    }
}

impl Sa {
    /// `seed` must be random (the agent draws one per start, [`SaDb::new`]).
    pub fn new(p: &SaParams, seed: u64) -> Result<Sa, &'static str> {
        if p.spi == 0 {
            return Err("SPI 0 is reserved (RFC 4303 §2.1)");
        }
        Ok(Sa {
            spi: p.spi,
            algorithm: p.algorithm,
            transform: new_transform(p.algorithm, &p.key, p.auth_key.as_deref())?,
            esn: p.esn,
            seed,
            tx_seq: 0,
            window: ReplayWindow::new(p.replay_window),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn algorithm(&self) -> EspAlgorithm {
        self.algorithm
    }

    /// Last sequence number sealed (0 before the first).
    pub(crate) fn tx_seq(&self) -> u64 {
        self.tx_seq
    }

    /// Continue after `seq`, e.g. a value kept across a restart: the peer's
    /// window would take a counter that starts over at 1 for replays.
    pub fn set_tx_seq(&mut self, seq: u64) {
        self.tx_seq = seq;
    }

    /// The inbound anti-replay state.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    #[cfg(test)]
    pub(crate) fn window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.window
    }

    /// Octets ESP adds around a payload of `len` octets.
    pub fn overhead(&self, len: usize) -> usize {
        let t = &self.transform;
        HEADER_LEN + t.iv_len() + packet::pad_len(len, t.align()) + TRAILER_LEN + ICV_LEN
    }

    /// `payload` (with `next_header`, e.g. 135 for a Mobility Header) as an
    /// ESP packet with the next sequence number.
    pub fn seal(&mut self, payload: &[u8], next_header: u8) -> Result<Vec<u8>, SealError> {
        self.seal_with_iv(payload, next_header, None)
    }

    /// [`seal`](Self::seal) with a chosen IV: only for published test vectors.
    pub(crate) fn seal_with_iv(
        &mut self,
        payload: &[u8],
        next_header: u8,
        iv: Option<&[u8]>,
    ) -> Result<Vec<u8>, SealError> {
        // §3.3.3: the counter never cycles, with or without ESN.
        let seq = match self.tx_seq.checked_add(1) {
            Some(s) if self.esn || s <= u64::from(u32::MAX) => s,
            _ => return Err(SealError::SeqExhausted),
        };
        let t = &self.transform;
        let (iv_len, pad) = (t.iv_len(), packet::pad_len(payload.len(), t.align()));
        let total = self.overhead(payload.len()) + payload.len();
        if total > MAX_PACKET {
            return Err(SealError::TooLong);
        }
        let mut buf = vec![0u8; total];
        EspRepr {
            spi: self.spi,
            seq: seq as u32,
        }
        .emit(&mut EspPacket::new_unchecked(&mut buf[..]));
        let iv_at = HEADER_LEN..HEADER_LEN + iv_len;
        match iv {
            Some(iv) => buf[iv_at].copy_from_slice(iv),
            None => t.make_iv(seq, self.seed, &mut buf[iv_at]),
        }
        let body = HEADER_LEN + iv_len;
        buf[body..body + payload.len()].copy_from_slice(payload);
        let trailer = body + payload.len()..body + payload.len() + pad + TRAILER_LEN;
        packet::emit_trailer(&mut buf[trailer], next_header);
        t.seal(&mut buf, self.esn.then_some((seq >> 32) as u32))?;
        self.tx_seq = seq;
        Ok(buf)
    }

    /// The next header and payload of an ESP packet for this SA, or why it
    /// was dropped. Never panics, whatever `packet` holds.
    pub fn open(&mut self, packet: &[u8]) -> Result<(u8, Vec<u8>), DropReason> {
        let hdr = EspRepr::parse(&EspPacket::new_checked(packet)?)?;
        if hdr.spi != self.spi {
            return Err(DropReason::UnknownSpi(hdr.spi));
        }
        let t = &self.transform;
        let (iv_len, align) = (t.iv_len(), t.align());
        // At least one aligned unit of ciphertext: the trailer and its padding.
        if packet.len() < HEADER_LEN + iv_len + align + ICV_LEN {
            return Err(DropReason::Malformed(
                "shorter than header, IV, trailer and ICV",
            ));
        }
        if !(packet.len() - HEADER_LEN - iv_len - ICV_LEN).is_multiple_of(align) {
            return Err(DropReason::Malformed(
                "ciphertext does not end on the cipher's boundary",
            ));
        }
        let seq = self.window.check(hdr.seq, self.esn)?;
        let mut buf = packet.to_vec();
        t.open(&mut buf, self.esn.then_some((seq >> 32) as u32))?;
        // Authentic: the window moves even if what follows drops it, so
        // that a replay of it counts as a replay.
        self.window.accept(seq);
        let start = HEADER_LEN + iv_len;
        let end = buf.len() - ICV_LEN;
        let (len, next_header) = packet::parse_trailer(&buf[start..end])?;
        if next_header == IPPROTO_NONE {
            return Err(DropReason::Dummy);
        }
        buf.copy_within(start..start + len, 0);
        buf.truncate(len);
        Ok((next_header, buf))
    }
}

/// Both SAs with one peer.
#[derive(Debug)]
struct PeerSas {
    inbound: Sa,
    outbound: Sa,
}

/// The SAs of one agent, by peer address, and its ESP counters.
#[derive(Debug)]
pub struct SaDb {
    peers: HashMap<IpAddr, PeerSas>,
    /// Inbound SPI → peer (RFC 4301 §4.1: unicast SAs are found by SPI).
    by_spi: HashMap<u32, IpAddr>,
    seed: u64,
    counters: EspCounters,
}

impl Default for SaDb {
    fn default() -> Self {
        Self::new()
    }
}

impl SaDb {
    /// An empty database with an IV seed from the operating system.
    pub fn new() -> Self {
        use aes_gcm::aead::rand_core::RngCore;
        Self::with_seed(aes_gcm::aead::OsRng.next_u64())
    }

    /// An empty database with a given IV seed (tests).
    pub fn with_seed(seed: u64) -> Self {
        SaDb {
            peers: HashMap::new(),
            by_spi: HashMap::new(),
            seed,
            counters: EspCounters::default(),
        }
    }

    /// Installs the two SAs with `peer`. Refused when the peer already has
    /// SAs or the inbound SPI is taken (it is how packets find their SA).
    pub fn add_peer(&mut self, peer: IpAddr, s: &EspSettings) -> Result<(), String> {
        if self.peers.contains_key(&peer) {
            return Err(format!("{peer} already has ESP SAs"));
        }
        if let Some(other) = self.by_spi.get(&s.inbound.spi) {
            return Err(format!(
                "inbound SPI {:#x} is already used by {other}",
                s.inbound.spi
            ));
        }
        let sas = PeerSas {
            inbound: Sa::new(&s.inbound, self.seed)?,
            outbound: Sa::new(&s.outbound, self.seed)?,
        };
        self.by_spi.insert(s.inbound.spi, peer);
        self.peers.insert(peer, sas);
        Ok(())
    }

    /// The peers with SAs.
    pub(crate) fn peer_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.peers.keys().copied()
    }

    /// The (inbound, outbound) SPIs of `peer`'s SAs.
    pub(crate) fn spis(&self, peer: &IpAddr) -> Option<(u32, u32)> {
        self.peers
            .get(peer)
            .map(|p| (p.inbound.spi(), p.outbound.spi()))
    }

    /// Whether signaling with `peer` must go through ESP.
    pub fn protects(&self, peer: &IpAddr) -> bool {
        self.peers.contains_key(peer)
    }

    /// Seals `payload` for `peer` on its outbound SA (counted).
    pub fn seal(
        &mut self,
        peer: &IpAddr,
        next_header: u8,
        payload: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let r = match self.peers.get_mut(peer) {
            Some(p) => p.outbound.seal(payload, next_header),
            None => Err(SealError::NoSa),
        };
        match &r {
            Ok(_) => self.counters.tx_packets += 1,
            Err(e) => self.counters.count_seal_error(e),
        }
        r
    }

    /// Counts a message that could not be sealed for a reason found above ESP.
    pub(crate) fn refuse_seal(&mut self, e: SealError) -> SealError {
        self.counters.count_seal_error(&e);
        e
    }

    /// Opens an ESP packet that came from `src` (counted: a drop by its
    /// reason, a success as `rx_packets`).
    pub fn open(&mut self, src: &IpAddr, packet: &[u8]) -> Result<(u8, Vec<u8>), DropReason> {
        self.open_with(src, packet, |nh, payload| Ok((nh, payload)))
    }

    /// [`open`](Self::open), then `inner` on the next header and payload
    /// (the layer above ESP checks its own header); counted once either way.
    pub(crate) fn open_with<T>(
        &mut self,
        src: &IpAddr,
        packet: &[u8],
        inner: impl FnOnce(u8, Vec<u8>) -> Result<T, DropReason>,
    ) -> Result<T, DropReason> {
        let r = self
            .open_uncounted(src, packet)
            .and_then(|(nh, payload)| inner(nh, payload));
        match &r {
            Ok(_) => self.counters.rx_packets += 1,
            Err(e) => self.counters.count_drop(e),
        }
        r
    }

    fn open_uncounted(&mut self, src: &IpAddr, packet: &[u8]) -> Result<(u8, Vec<u8>), DropReason> {
        let spi = EspRepr::parse(&EspPacket::new_checked(packet)?)?.spi;
        let peer = *self.by_spi.get(&spi).ok_or(DropReason::UnknownSpi(spi))?;
        if peer != *src {
            return Err(DropReason::WrongPeer(spi));
        }
        let sas = self
            .peers
            .get_mut(&peer)
            .ok_or(DropReason::UnknownSpi(spi))?;
        sas.inbound.open(packet)
    }

    /// Signaling that arrived without ESP from `src`: true (and counted)
    /// when `src` has SAs, so the message must be dropped.
    pub fn reject_unprotected(&mut self, src: &IpAddr) -> bool {
        let protected = self.protects(src);
        if protected {
            self.counters.rx_unprotected += 1;
        }
        protected
    }

    pub fn counters(&self) -> &EspCounters {
        &self.counters
    }

    /// Last sequence number sent to `peer`: keep it across restarts.
    pub(crate) fn tx_seq(&self, peer: &IpAddr) -> Option<u64> {
        self.peers.get(peer).map(|p| p.outbound.tx_seq())
    }

    /// Continue the outbound sequence numbers to `peer` after `seq`.
    pub fn set_tx_seq(&mut self, peer: &IpAddr, seq: u64) -> bool {
        match self.peers.get_mut(peer) {
            Some(p) => {
                p.outbound.set_tx_seq(seq);
                true
            }
            None => false,
        }
    }

    /// Highest sequence number received from `peer`: keep it across restarts too.
    pub(crate) fn rx_top(&self, peer: &IpAddr) -> Option<u64> {
        self.peers.get(peer).map(|p| p.inbound.window().top())
    }

    /// Take from `peer` only numbers above `top` (a value kept across a
    /// restart), so that packets recorded before it cannot be replayed.
    pub(crate) fn set_rx_top(&mut self, peer: &IpAddr, top: u64) -> bool {
        match self.peers.get_mut(peer) {
            Some(p) => {
                p.inbound.window.resume_after(top);
                true
            }
            None => false,
        }
    }
}
