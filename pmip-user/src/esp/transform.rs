//! The two ESP transforms: AES-GCM with a 16-octet ICV (RFC 4106) and
//! AES-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868), both from RustCrypto.
//!
//! A transform works in place on a whole packet laid out by [`super::sa`]:
//! `ESP header (8) | IV | plaintext or ciphertext | ICV (16)`.
//!
//! IVs (the packet's, not the key's): they must never repeat under one key
//! (RFC 4106 §3.1) and, for CBC, must be unpredictable (RFC 3602 §2.3). Both
//! come from the 64-bit sequence number, which never repeats within one SA
//! instance, mixed with a random `seed` drawn when the SA is created, so that
//! a restarted agent whose counter starts over does not repeat them either:
//! - GCM: `IV = seq XOR seed` (what Linux's seqiv does with its salt);
//! - CBC: `IV = AES_K(seed || seq)` under the SA's own key (NIST SP 800-38A
//!   Appendix C: a unique nonce through the forward cipher).
use aes::cipher::{
    block_padding::NoPadding, generic_array::GenericArray, BlockCipher, BlockDecrypt,
    BlockDecryptMut, BlockEncrypt, BlockEncryptMut, BlockSizeUser, InnerIvInit, KeyInit,
};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::AesGcm;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::packet::HEADER_LEN;
use super::{DropReason, SealError};

/// ICV length of both transforms (RFC 4106 §6 MUST; RFC 4868 §2.3).
pub(crate) const ICV_LEN: usize = 16;
/// RFC 4106 §4: the last 4 octets of the keying material are the salt.
pub(crate) const GCM_SALT_LEN: usize = 4;
/// RFC 4868 §2.1.1: HMAC-SHA-256-128 keys are 256 bits.
pub(crate) const HMAC_KEY_LEN: usize = 32;

/// One direction's cipher and integrity state; keys are expanded once.
pub(crate) trait Transform: Send + Sync {
    /// Octets of IV after the ESP header.
    fn iv_len(&self) -> usize;
    /// Payload + padding + trailer end on this boundary (RFC 4303 §2.4).
    fn align(&self) -> usize;
    /// The IV for sequence number `seq` (see the module comment).
    fn make_iv(&self, seq: u64, seed: u64, iv: &mut [u8]);
    /// Encrypts the plaintext in place and writes the ICV. `seq_hi` is the
    /// high half of an ESN, covered by the ICV but not sent (§2.2.1).
    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), SealError>;
    /// Verifies the ICV (in constant time) and only then decrypts in place.
    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), DropReason>;
}

/// Builds the transform for `key` (AEAD: AES key + salt; CBC: AES key) and,
/// for CBC, `auth_key`. The key lengths pick AES-128, -192 or -256 as
/// `ip xfrm state` does.
pub(crate) fn new_transform(
    alg: super::EspAlgorithm,
    key: &[u8],
    auth_key: Option<&[u8]>,
) -> Result<Box<dyn Transform>, &'static str> {
    use super::EspAlgorithm::*;
    match alg {
        AesGcm => {
            let n = key
                .len()
                .checked_sub(GCM_SALT_LEN)
                .ok_or("AES-GCM key too short")?;
            let (k, salt) = key.split_at(n);
            let salt: [u8; 4] = salt.try_into().map_err(|_| "bad salt")?;
            Ok(match n {
                16 => Box::new(Gcm::<Aes128>::new(k, salt)?),
                24 => Box::new(Gcm::<Aes192>::new(k, salt)?),
                32 => Box::new(Gcm::<Aes256>::new(k, salt)?),
                _ => return Err("AES-GCM needs a 16, 24 or 32-octet key and a 4-octet salt"),
            })
        }
        AesCbcHmacSha256 => {
            let a = auth_key.ok_or("AES-CBC needs an HMAC-SHA-256 key")?;
            if a.len() != HMAC_KEY_LEN {
                return Err("HMAC-SHA-256-128 needs a 32-octet key");
            }
            Ok(match key.len() {
                16 => Box::new(CbcHmac::<Aes128>::new(key, a)?),
                24 => Box::new(CbcHmac::<Aes192>::new(key, a)?),
                32 => Box::new(CbcHmac::<Aes256>::new(key, a)?),
                _ => return Err("AES-CBC needs a 16, 24 or 32-octet key"),
            })
        }
    }
}

/// `ESP header | IV | body | ICV` as four slices.
fn split(pkt: &mut [u8], iv_len: usize) -> (&mut [u8], &mut [u8], &mut [u8], &mut [u8]) {
    let (head, rest) = pkt.split_at_mut(HEADER_LEN);
    let (iv, rest) = rest.split_at_mut(iv_len);
    let body_len = rest.len() - ICV_LEN;
    let (body, icv) = rest.split_at_mut(body_len);
    (head, iv, body, icv)
}

struct Gcm<C: BlockCipher + BlockSizeUser<BlockSize = U16> + BlockEncrypt> {
    aead: AesGcm<C, U12>,
    salt: [u8; GCM_SALT_LEN],
}

impl<C> Gcm<C>
where
    C: BlockCipher + BlockSizeUser<BlockSize = U16> + BlockEncrypt + KeyInit,
{
    fn new(key: &[u8], salt: [u8; GCM_SALT_LEN]) -> Result<Self, &'static str> {
        let aead = AesGcm::<C, U12>::new_from_slice(key).map_err(|_| "bad AES key length")?;
        Ok(Gcm { aead, salt })
    }

    /// RFC 4106 §5: AAD is SPI | sequence number, or SPI | ESN (high, low).
    fn aad(head: &[u8], seq_hi: Option<u32>, buf: &mut [u8; 12]) -> usize {
        match seq_hi {
            None => {
                buf[..8].copy_from_slice(head);
                8
            }
            Some(hi) => {
                buf[..4].copy_from_slice(&head[..4]);
                buf[4..8].copy_from_slice(&hi.to_be_bytes());
                buf[8..12].copy_from_slice(&head[4..8]);
                12
            }
        }
    }

    /// RFC 4106 §4: nonce = salt | explicit IV.
    fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        n
    }
}

impl<C> Transform for Gcm<C>
where
    C: BlockCipher + BlockSizeUser<BlockSize = U16> + BlockEncrypt + KeyInit + Send + Sync,
{
    fn iv_len(&self) -> usize {
        8
    }
    fn align(&self) -> usize {
        4
    }
    fn make_iv(&self, seq: u64, seed: u64, iv: &mut [u8]) {
        iv.copy_from_slice(&(seq ^ seed).to_be_bytes());
    }
    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), SealError> {
        let (head, iv, body, icv) = split(pkt, 8);
        let mut aad = [0u8; 12];
        let n = Self::aad(head, seq_hi, &mut aad);
        let nonce = self.nonce(iv);
        let tag = self
            .aead
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &aad[..n], body)
            .map_err(|_| SealError::TooLong)?;
        icv.copy_from_slice(&tag);
        Ok(())
    }
    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), DropReason> {
        let (head, iv, body, icv) = split(pkt, 8);
        let mut aad = [0u8; 12];
        let n = Self::aad(head, seq_hi, &mut aad);
        let nonce = self.nonce(iv);
        // aes-gcm compares the tag in constant time (subtle) before it
        // decrypts anything.
        self.aead
            .decrypt_in_place_detached(
                GenericArray::from_slice(&nonce),
                &aad[..n],
                body,
                GenericArray::from_slice(icv),
            )
            .map_err(|_| DropReason::BadIcv)
    }
}

struct CbcHmac<C> {
    aes: C,
    /// Keyed once; cloned per packet (saves hashing the padded key twice).
    mac: Hmac<Sha256>,
}

impl<C> CbcHmac<C>
where
    C: BlockCipher + BlockSizeUser<BlockSize = U16> + BlockEncrypt + BlockDecrypt + KeyInit + Clone,
{
    fn new(key: &[u8], auth_key: &[u8]) -> Result<Self, &'static str> {
        Ok(CbcHmac {
            aes: C::new_from_slice(key).map_err(|_| "bad AES key length")?,
            mac: <Hmac<Sha256> as Mac>::new_from_slice(auth_key)
                .map_err(|_| "bad HMAC key length")?,
        })
    }

    /// RFC 4303 §2.2.1 and §3.3.2: the ICV covers the ESP header through the
    /// ciphertext, then the ESN's high half, which is not sent.
    fn mac_of(&self, covered: &[u8], seq_hi: Option<u32>) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(covered);
        if let Some(hi) = seq_hi {
            m.update(&hi.to_be_bytes());
        }
        m
    }
}

impl<C> Transform for CbcHmac<C>
where
    C: BlockCipher
        + BlockSizeUser<BlockSize = U16>
        + BlockEncrypt
        + BlockDecrypt
        + KeyInit
        + Clone
        + Send
        + Sync,
{
    fn iv_len(&self) -> usize {
        16
    }
    fn align(&self) -> usize {
        16
    }
    fn make_iv(&self, seq: u64, seed: u64, iv: &mut [u8]) {
        let b = GenericArray::from_mut_slice(iv);
        b[..8].copy_from_slice(&seed.to_be_bytes());
        b[8..].copy_from_slice(&seq.to_be_bytes());
        self.aes.encrypt_block(b);
    }
    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), SealError> {
        let covered = pkt.len() - ICV_LEN;
        {
            let (_, iv, body, _) = split(pkt, 16);
            let n = body.len();
            cbc::Encryptor::<C>::inner_iv_init(self.aes.clone(), GenericArray::from_slice(iv))
                .encrypt_padded_mut::<NoPadding>(body, n)
                .map_err(|_| SealError::TooLong)?;
        }
        let tag = self.mac_of(&pkt[..covered], seq_hi).finalize().into_bytes();
        pkt[covered..].copy_from_slice(&tag[..ICV_LEN]);
        Ok(())
    }
    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), DropReason> {
        let covered = pkt.len() - ICV_LEN;
        // hmac compares the truncated tag in constant time (subtle).
        self.mac_of(&pkt[..covered], seq_hi)
            .verify_truncated_left(&pkt[covered..])
            .map_err(|_| DropReason::BadIcv)?;
        let (_, iv, body, _) = split(pkt, 16);
        cbc::Decryptor::<C>::inner_iv_init(self.aes.clone(), GenericArray::from_slice(iv))
            .decrypt_padded_mut::<NoPadding>(body)
            .map_err(|_| DropReason::Malformed("ciphertext not a multiple of the block size"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        super::super::config::parse_hex(s).unwrap()
    }

    /// RFC 4231 §4: HMAC-SHA-256 test cases 1-7, through the ICV path; the
    /// ICV is the left 128 bits (RFC 4868 §2.3, test case 5's truncation).
    #[test]
    fn icv_is_hmac_sha256_per_rfc4231() {
        let cases: [(Vec<u8>, &[u8], &str); 7] = [
            (vec![0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            ((1..=25).collect(), &[0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (vec![0x0c; 20], b"Test With Truncation", "a3b6167473100ee06e0c796c2955552bfa6f7c0a6a8aef8b93f860aab0cd20c5"),
            (vec![0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (vec![0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            let t = CbcHmac::<Aes128>::new(&[7; 16], key).unwrap();
            let full = t.mac_of(data, None).finalize().into_bytes();
            assert_eq!(full.as_slice(), &hex(want)[..], "case {}", i + 1);
            let icv = &hex(want)[..ICV_LEN];
            assert!(t.mac_of(data, None).verify_truncated_left(icv).is_ok());
            let mut bad = icv.to_vec();
            bad[15] ^= 0x80;
            assert!(t.mac_of(data, None).verify_truncated_left(&bad).is_err());
        }
        // RFC 4231 test case 5 publishes the 128-bit truncation itself.
        let t = CbcHmac::<Aes128>::new(&[7; 16], &[0x0c; 20]).unwrap();
        let tag = t
            .mac_of(b"Test With Truncation", None)
            .finalize()
            .into_bytes();
        assert_eq!(&tag[..16], &hex("a3b6167473100ee06e0c796c2955552b")[..]);
    }

    #[test]
    fn esn_high_half_is_hashed_after_the_packet() {
        let t = CbcHmac::<Aes256>::new(&[7; 32], &[1; 32]).unwrap();
        let data = b"spi seq iv ciphertext";
        let mut with_hi = data.to_vec();
        with_hi.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        assert_eq!(
            t.mac_of(data, Some(0x0102_0304)).finalize().into_bytes(),
            t.mac_of(&with_hi, None).finalize().into_bytes()
        );
    }

    #[test]
    fn key_lengths_pick_the_cipher() {
        use super::super::EspAlgorithm::*;
        for n in [20, 28, 36] {
            assert!(new_transform(AesGcm, &vec![1; n], None).is_ok(), "{n}");
        }
        for n in [0, 3, 4, 16, 19, 21, 32, 40] {
            assert!(new_transform(AesGcm, &vec![1; n], None).is_err(), "{n}");
        }
        for n in [16, 24, 32] {
            assert!(new_transform(AesCbcHmacSha256, &vec![1; n], Some(&[2; 32])).is_ok());
            assert!(new_transform(AesCbcHmacSha256, &vec![1; n], Some(&[2; 20])).is_err());
            assert!(new_transform(AesCbcHmacSha256, &vec![1; n], None).is_err());
        }
        assert!(new_transform(AesCbcHmacSha256, &[1; 20], Some(&[2; 32])).is_err());
    }
}
