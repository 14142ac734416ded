//! Authenticators (RFC 2865 §3, RFC 2866 §3, RFC 5176 §3.5), Message-Authenticator
//! (RFC 3579 §3.2) and User-Password hiding (RFC 2865 §5.2).
//!
//! Order matters when a packet carries both: the Message-Authenticator is computed first
//! (over the packet with its own value zeroed and, for responses, the request's authenticator
//! in the header; for Accounting/Disconnect/CoA requests, sixteen zero octets there), then the
//! header's authenticator over the finished packet, Message-Authenticator value included.
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

use super::attr::MESSAGE_AUTHENTICATOR;
use super::{Code, Packet, AUTHENTICATOR_LEN, HEADER_LEN};

type HmacMd5 = Hmac<Md5>;

/// Why a packet's authenticators do not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The header's authenticator is wrong (wrong secret, or a forged/corrupt packet).
    Authenticator,
    /// The Message-Authenticator attribute is wrong or not 16 octets.
    MessageAuthenticator,
    /// No Message-Authenticator where one is required.
    MissingMessageAuthenticator,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AuthError::Authenticator => "bad authenticator",
            AuthError::MessageAuthenticator => "bad Message-Authenticator",
            AuthError::MissingMessageAuthenticator => "Message-Authenticator missing",
        })
    }
}

/// Offset of the Message-Authenticator's value, if the packet has one (16 octets long).
/// `buf` must hold a checked packet.
fn message_authenticator_at(buf: &[u8]) -> Option<Result<usize, AuthError>> {
    let p = Packet::new_unchecked(buf);
    let a = p
        .attributes()
        .flatten()
        .find(|a| a.ty == MESSAGE_AUTHENTICATOR)?;
    if a.value.len() != AUTHENTICATOR_LEN {
        return Some(Err(AuthError::MessageAuthenticator));
    }
    Some(Ok(a.offset + 2))
}

fn md5_over(buf: &[u8], header_auth: &[u8; AUTHENTICATOR_LEN], secret: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(&buf[..4]);
    h.update(header_auth);
    h.update(&buf[HEADER_LEN..]);
    h.update(secret);
    h.finalize().into()
}

fn hmac_over(buf: &[u8], header_auth: &[u8; 16], ma_at: usize, secret: &[u8]) -> HmacMd5 {
    // A key of any length is valid for HMAC; new_from_slice cannot fail.
    let mut m = HmacMd5::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(&buf[..4]);
    m.update(header_auth);
    m.update(&buf[HEADER_LEN..ma_at]);
    m.update(&[0u8; AUTHENTICATOR_LEN]);
    m.update(&buf[ma_at + AUTHENTICATOR_LEN..]);
    m
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authenticator a finished packet must carry: random for an Access-Request (given in
/// `request_auth`), MD5 over the packet with zeros (Accounting/Disconnect/CoA requests) or with
/// the request's authenticator (every response).
fn header_base(code: Code, request_auth: &[u8; 16]) -> [u8; 16] {
    if code.is_hashed_request() {
        [0; 16]
    } else {
        *request_auth
    }
}

/// Finishes a packet in place: writes the Message-Authenticator (if the packet has that
/// attribute) and the header's authenticator.
///
/// `request_auth`: for an Access-Request, its random Request Authenticator; for a response,
/// the authenticator of the request it answers; ignored for hashed requests. `buf` must hold
/// exactly one checked packet (as emitted by `PacketRepr::emit`).
pub fn sign(buf: &mut [u8], secret: &[u8], request_auth: &[u8; 16]) -> Result<(), AuthError> {
    let code = Code::from(buf[0]);
    let base = header_base(code, request_auth);
    if let Some(at) = message_authenticator_at(buf) {
        let at = at?;
        let mac = hmac_over(buf, &base, at, secret).finalize().into_bytes();
        buf[at..at + AUTHENTICATOR_LEN].copy_from_slice(&mac);
    }
    let auth = if code == Code::AccessRequest {
        *request_auth
    } else {
        md5_over(buf, &base, secret)
    };
    buf[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(())
}

/// Verifies a received packet (a checked one: `Packet::new_checked` passed): the header's
/// authenticator (except for an Access-Request, whose authenticator is a nonce) and the
/// Message-Authenticator if present or `require_ma`. `request_auth` is the authenticator of
/// our request when `buf` is a response. Returns whether a Message-Authenticator was present.
pub fn verify(
    buf: &[u8],
    secret: &[u8],
    request_auth: &[u8; 16],
    require_ma: bool,
) -> Result<bool, AuthError> {
    let p = Packet::new_unchecked(buf);
    let buf = p.bytes();
    let code = p.code();
    let received = p.authenticator();
    let base = if code == Code::AccessRequest {
        received
    } else {
        header_base(code, request_auth)
    };
    if code != Code::AccessRequest && !ct_eq(&md5_over(buf, &base, secret), &received) {
        return Err(AuthError::Authenticator);
    }
    match message_authenticator_at(buf) {
        None if require_ma => Err(AuthError::MissingMessageAuthenticator),
        None => Ok(false),
        Some(at) => {
            let at = at?;
            hmac_over(buf, &base, at, secret)
                .verify_slice(&buf[at..at + AUTHENTICATOR_LEN])
                .map_err(|_| AuthError::MessageAuthenticator)?;
            Ok(true)
        }
    }
}

/// User-Password hiding (RFC 2865 §5.2): the password padded with zeros to a multiple of 16
/// (at most 128 octets), each block XORed with MD5(secret + previous cipher block), the first
/// previous block being the Request Authenticator.
pub fn hide_password(password: &[u8], secret: &[u8], request_auth: &[u8; 16]) -> Vec<u8> {
    let password = &password[..password.len().min(128)];
    let blocks = password.len().div_ceil(16).max(1);
    let mut out = vec![0u8; blocks * 16];
    out[..password.len()].copy_from_slice(password);
    let mut prev: [u8; 16] = *request_auth;
    for chunk in out.chunks_mut(16) {
        let b = password_pad(secret, &prev);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    out
}

/// The pad a User-Password block is XORed with (RFC 2865 §5.2):
/// MD5(secret + the previous cipher block).
fn password_pad(secret: &[u8], prev: &[u8; 16]) -> [u8; 16] {
    Md5::new()
        .chain_update(secret)
        .chain_update(prev)
        .finalize()
        .into()
}

/// The inverse of [`hide_password`] (trailing zero padding removed); None if the value is not
/// a multiple of 16 octets between 16 and 128.
pub fn unhide_password(hidden: &[u8], secret: &[u8], request_auth: &[u8; 16]) -> Option<Vec<u8>> {
    if hidden.is_empty() || hidden.len() > 128 || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut out = hidden.to_vec();
    let mut prev: [u8; 16] = *request_auth;
    for chunk in out.chunks_mut(16) {
        let b = password_pad(secret, &prev);
        prev.copy_from_slice(chunk);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// Unpredictable Request Authenticators (RFC 2865 §3: "unpredictable and unique over the
/// lifetime of a secret") without a system call per request: MD5 of a random 32-octet key and
/// a counter. The key comes from the OS at start; tests give a fixed one.
#[derive(Clone)]
pub struct AuthenticatorSource {
    key: [u8; 32],
    counter: u64,
}

impl AuthenticatorSource {
    pub fn new(key: [u8; 32]) -> Self {
        AuthenticatorSource { key, counter: 0 }
    }

    /// Keyed from the operating system's random source.
    pub fn from_os() -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        Ok(Self::new(key))
    }

    pub fn next_authenticator(&mut self) -> [u8; 16] {
        self.counter = self.counter.wrapping_add(1);
        Md5::new()
            .chain_update(self.key)
            .chain_update(self.counter.to_be_bytes())
            .finalize()
            .into()
    }
}

impl core::fmt::Debug for AuthenticatorSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AuthenticatorSource(..)")
    }
}
