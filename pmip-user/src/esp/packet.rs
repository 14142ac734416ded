//! The ESP packet (RFC 4303 §2): header view and repr, padding and trailer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ----
//! |               Security Parameters Index (SPI)                 | ^Int.
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Cov-
//! |                      Sequence Number                          | |ered
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ | ----
//! |       IV (8 octets GCM, RFC 4106 §3; 16 octets CBC, RFC 3602) | |   ^
//! ~                    Payload Data (variable)                    ~ |   |
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Conf.
//! |               |     Padding (0-255 bytes)                     | |Cov-
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |ered*
//! |                               |  Pad Length   | Next Header   | v   v
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ------
//! |         Integrity Check Value-ICV   (variable)                |
//! ```
//!
//! Only the SPI and the sequence number are in the clear; everything from the
//! IV on is the business of the SA's transform (`esp::transform`).
use super::DropReason;

type Result<T> = core::result::Result<T, DropReason>;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the cleartext ESP header (SPI + sequence number).
pub(crate) const HEADER_LEN: usize = 8;
/// Pad Length + Next Header.
pub(crate) const TRAILER_LEN: usize = 2;

/// Zero-copy view of an ESP packet.
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer must hold the SPI and the sequence number; the rest is
    /// checked against the SA's transform, which knows its IV and ICV sizes.
    pub(crate) fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::Malformed("shorter than the ESP header"));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SPI];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The low 32 bits of the sequence number (all of it without ESN).
    pub fn seq(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    pub(crate) fn set_spi(&mut self, v: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The cleartext header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspRepr {
    pub spi: u32,
    pub seq: u32,
}

impl EspRepr {
    /// RFC 4303 §2.1: SPI 0 is reserved for local use and MUST NOT be sent.
    pub fn parse<T: AsRef<[u8]>>(p: &EspPacket<T>) -> Result<EspRepr> {
        p.check_len()?;
        if p.spi() == 0 {
            return Err(DropReason::Malformed("SPI 0"));
        }
        Ok(EspRepr {
            spi: p.spi(),
            seq: p.seq(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut EspPacket<T>) {
        p.set_spi(self.spi);
        p.set_seq(self.seq);
    }
}

/// Bytes of padding after `payload_len` octets so that payload, padding and
/// trailer end on an `align`-octet boundary (RFC 4303 §2.4: at least 4, the
/// cipher's block size for CBC).
pub fn pad_len(payload_len: usize, align: usize) -> usize {
    let rem = (payload_len + TRAILER_LEN) % align;
    if rem == 0 {
        0
    } else {
        align - rem
    }
}

/// Writes the default padding (1, 2, 3, ..., §2.4), Pad Length and Next
/// Header into `out`, which is exactly `pad + 2` octets long.
pub fn emit_trailer(out: &mut [u8], next_header: u8) {
    let pad = out.len() - TRAILER_LEN;
    for (i, b) in out[..pad].iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    out[pad] = pad as u8;
    out[pad + 1] = next_header;
}

/// Splits decrypted `plain` (payload, padding, trailer) into the payload
/// length and the next header. The padding must be the default 1, 2, 3, ...
/// (§2.4: "the receiver SHOULD inspect the Padding field"); only called once
/// the ICV has verified, so its answer tells an attacker nothing.
pub fn parse_trailer(plain: &[u8]) -> Result<(usize, u8)> {
    let n = plain.len();
    if n < TRAILER_LEN {
        return Err(DropReason::Malformed("no room for the ESP trailer"));
    }
    let pad = usize::from(plain[n - 2]);
    let next_header = plain[n - 1];
    let Some(payload_len) = n.checked_sub(TRAILER_LEN + pad) else {
        return Err(DropReason::BadPadding);
    };
    let padding = &plain[payload_len..n - TRAILER_LEN];
    if padding.iter().enumerate().any(|(i, &b)| b != (i + 1) as u8) {
        return Err(DropReason::BadPadding);
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3602 §4 case 6: SPI 0x4321, sequence number 8, then the IV.
    static PACKET: [u8; 12] = [
        0x00, 0x00, 0x43, 0x21, 0x00, 0x00, 0x00, 0x08, 0x69, 0xd0, 0x8d, 0xf7,
    ];

    #[test]
    fn deconstruct() {
        let p = EspPacket::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.spi(), 0x4321);
        assert_eq!(p.seq(), 8);
        assert_eq!(p.payload(), &[0x69, 0xd0, 0x8d, 0xf7]);
    }

    #[test]
    fn construct() {
        let mut b = vec![0u8; 12];
        let mut p = EspPacket::new_unchecked(&mut b);
        p.set_spi(0x4321);
        p.set_seq(8);
        p.payload_mut().copy_from_slice(&[0x69, 0xd0, 0x8d, 0xf7]);
        assert_eq!(&b[..], &PACKET[..]);
    }

    #[test]
    fn parse_and_emit() {
        let r = EspRepr::parse(&EspPacket::new_unchecked(&PACKET[..])).unwrap();
        assert_eq!(
            r,
            EspRepr {
                spi: 0x4321,
                seq: 8
            }
        );
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut EspPacket::new_unchecked(&mut b));
        assert_eq!(&b[..], &PACKET[..8]);
    }

    #[test]
    fn truncated_and_spi_zero_refused() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EspPacket::new_checked(&PACKET[..n]).err(),
                Some(DropReason::Malformed("shorter than the ESP header"))
            );
        }
        let zero = [0u8, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            EspRepr::parse(&EspPacket::new_unchecked(&zero[..])),
            Err(DropReason::Malformed("SPI 0"))
        );
    }

    #[test]
    fn padding_to_four_and_to_sixteen() {
        assert_eq!(pad_len(0, 4), 2);
        assert_eq!(pad_len(2, 4), 0);
        assert_eq!(pad_len(100, 4), 2);
        // RFC 3602 case 5: 64-octet ICMP message, 14 octets of padding.
        assert_eq!(pad_len(64, 16), 14);
        assert_eq!(pad_len(28, 16), 2);
        assert_eq!(pad_len(14, 16), 0);
    }

    #[test]
    fn trailer_round_trip() {
        for align in [4, 16] {
            for len in 0..40 {
                let pad = pad_len(len, align);
                let mut plain = vec![0xee; len + pad + TRAILER_LEN];
                emit_trailer(&mut plain[len..], 135);
                assert_eq!((len + pad + 2) % align, 0);
                assert_eq!(parse_trailer(&plain), Ok((len, 135)));
            }
        }
        let mut t = [0u8; 5];
        emit_trailer(&mut t, 17);
        assert_eq!(t, [1, 2, 3, 3, 17]);
    }

    #[test]
    fn bad_trailers_refused() {
        assert!(matches!(parse_trailer(&[]), Err(DropReason::Malformed(_))));
        assert!(matches!(parse_trailer(&[4]), Err(DropReason::Malformed(_))));
        // Pad length past the start of the plaintext.
        assert_eq!(parse_trailer(&[1, 2, 3, 135]), Err(DropReason::BadPadding));
        assert_eq!(parse_trailer(&[255, 135]), Err(DropReason::BadPadding));
        // Padding not 1, 2, 3, ...
        assert_eq!(
            parse_trailer(&[0xaa, 1, 3, 2, 135]),
            Err(DropReason::BadPadding)
        );
        assert_eq!(
            parse_trailer(&[0xaa, 0, 0, 2, 135]),
            Err(DropReason::BadPadding)
        );
        // Empty payload, no padding: fine.
        assert_eq!(parse_trailer(&[0, 59]), Ok((0, 59)));
    }
}
