//! RADIUS attributes (RFC 2865 §5): numbers, the TLV iterator, and vendor-specific attributes
//! (type 26, RFC 2865 §5.26) with the formats of the vendors pmip speaks to.
//!
//! Vendor and attribute numbers are those of FreeRADIUS's dictionaries (`dictionary.cisco`,
//! `dictionary.3gpp2`, `dictionary.starent`, `dictionary.starent.vsa1`). Starent (8164) has two
//! formats: `SN-*` attributes with a 2-octet type and 2-octet length (the default dictionary,
//! `format=2,2`) and `SN1-*` with 1-octet fields (`dictionary.starent.vsa1`); StarOS accepts both
//! (seed 000 lists `SN-Proxy-MIP OR SN1-Proxy-MIP`), so the parser detects which one it got.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Error, Result};

/// Largest value of one attribute (Length is one octet and covers Type and Length).
pub const MAX_VALUE: usize = 253;

// RFC 2865 §5 / RFC 2866 §5 / RFC 2869 / RFC 3162 / RFC 5176 attribute types.
pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_PROTOCOL: u8 = 7;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const FRAMED_IP_NETMASK: u8 = 9;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const IDLE_TIMEOUT: u8 = 28;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_DELAY_TIME: u8 = 41;
pub const ACCT_INPUT_OCTETS: u8 = 42;
pub const ACCT_OUTPUT_OCTETS: u8 = 43;
pub const ACCT_SESSION_ID: u8 = 44;
pub const ACCT_AUTHENTIC: u8 = 45;
pub const ACCT_SESSION_TIME: u8 = 46;
pub const ACCT_INPUT_PACKETS: u8 = 47;
pub const ACCT_OUTPUT_PACKETS: u8 = 48;
pub const ACCT_TERMINATE_CAUSE: u8 = 49;
pub const ACCT_MULTI_SESSION_ID: u8 = 50;
pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
pub const EVENT_TIMESTAMP: u8 = 55;
pub const NAS_PORT_TYPE: u8 = 61;
pub const CHAP_CHALLENGE: u8 = 60;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const ACCT_INTERIM_INTERVAL: u8 = 85;
pub const NAS_PORT_ID: u8 = 87;
pub const FRAMED_POOL: u8 = 88;
pub const CHARGEABLE_USER_IDENTITY: u8 = 89;
pub const NAS_IPV6_ADDRESS: u8 = 95;
pub const FRAMED_IPV6_PREFIX: u8 = 97;
pub const ERROR_CAUSE: u8 = 101;
pub const DELEGATED_IPV6_PREFIX: u8 = 123;
pub const FRAMED_IPV6_ADDRESS: u8 = 168;
pub const DNS_SERVER_IPV6_ADDRESS: u8 = 169;

/// Vendor numbers (IANA enterprise numbers, as in the FreeRADIUS dictionaries).
pub mod vendor {
    pub const CISCO: u32 = 9;
    pub const STARENT: u32 = 8164;
    pub const TGPP2: u32 = 5535;

    /// Cisco-AVPair ("key=value" strings, `dictionary.cisco`).
    pub const CISCO_AVPAIR: u16 = 1;
    /// 3GPP2-Home-Agent-IP-Address in FreeRADIUS; StarOS calls it 3GPP2-MIP-HA-Address
    /// (seed 000, "RADIUS Attributes Required for Proxy Mobile IP"). May repeat: primary, alternate.
    pub const TGPP2_HA_ADDRESS: u16 = 7;
    /// 3GPP2-DNS-Server-IP-Address: a TLV of primary (1) and secondary (2) addresses.
    pub const TGPP2_DNS_SERVER: u16 = 117;
    /// SN-/SN1- attributes of `dictionary.starent` / `dictionary.starent.vsa1`.
    pub const SN_PRIMARY_DNS: u16 = 5;
    pub const SN_SECONDARY_DNS: u16 = 6;
    pub const SN_IP_POOL_NAME: u16 = 8;
    pub const SN_SUBSCRIBER_PERMISSION: u16 = 20;
    pub const SN_SIMULTANEOUS_SIP_MIP: u16 = 22;
    pub const SN_PDSN_HANDOFF_REQ_IP_ADDR: u16 = 46;
    pub const SN_PROXY_MIP: u16 = 52;
    pub const SN_VIRTUAL_APN_NAME: u16 = 94;
    pub const SN_IPV6_PRIMARY_DNS: u16 = 101;
    pub const SN_IPV6_SECONDARY_DNS: u16 = 102;
    pub const SN_PROXY_MIPV6: u16 = 65530;
}

/// An attribute as found in a packet: its type, value and offset from the packet start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttr<'a> {
    pub ty: u8,
    pub value: &'a [u8],
    pub offset: usize,
}

impl<'a> RawAttr<'a> {
    pub fn as_u32(&self) -> Option<u32> {
        super::be32(self.value)
    }
    pub fn as_ipv4(&self) -> Option<Ipv4Addr> {
        let o: [u8; 4] = self.value.try_into().ok()?;
        Some(Ipv4Addr::from(o))
    }
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
    /// For a Vendor-Specific attribute: the vendor number and the vendor's sub-attributes.
    pub fn vendor(&self) -> Option<(u32, VsaIter<'a>)> {
        if self.ty != VENDOR_SPECIFIC || self.value.len() < 4 {
            return None;
        }
        let vendor = super::be32(&self.value[..4])?;
        let data = &self.value[4..];
        let format = VsaFormat::detect(vendor, data);
        Some((vendor, VsaIter::new(vendor, format, data, self.offset + 6)))
    }
}

/// Walks the attributes of a packet; yields an error (once, then stops) for a bad length.
#[derive(Clone, Debug)]
pub struct AttrIter<'a> {
    data: &'a [u8],
    at: usize,
    base: usize,
    failed: bool,
}

impl<'a> AttrIter<'a> {
    pub fn new(data: &'a [u8], base: usize) -> Self {
        AttrIter {
            data,
            at: 0,
            base,
            failed: false,
        }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<RawAttr<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.at..];
        let offset = self.base + self.at;
        let ty = rest[0];
        let len = rest.get(1).copied().unwrap_or(0) as usize;
        if len < 2 || len > rest.len() {
            self.failed = true;
            return Some(Err(Error::BadAttribute { ty, offset }));
        }
        self.at += len;
        Some(Ok(RawAttr {
            ty,
            value: &rest[2..len],
            offset,
        }))
    }
}

/// Inner layout of a vendor's sub-attributes: octets of type and of length (which covers both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VsaFormat {
    /// RFC 2865 §5.26's suggested format: type(1) length(1) value.
    OneOne,
    /// Starent `format=2,2`: type(2) length(2) value.
    TwoTwo,
}

impl VsaFormat {
    /// The format we send for `vendor` (Starent: the default dictionary's 2,2).
    pub fn for_vendor(vendor: u32) -> VsaFormat {
        if vendor == vendor::STARENT {
            VsaFormat::TwoTwo
        } else {
            VsaFormat::OneOne
        }
    }

    /// The format of a received Starent VSA: 2,2 if its sub-attributes add up that way, else 1,1.
    fn detect(vendor: u32, data: &[u8]) -> VsaFormat {
        if vendor == vendor::STARENT && fits(VsaFormat::TwoTwo, data) {
            VsaFormat::TwoTwo
        } else {
            VsaFormat::OneOne
        }
    }

    fn header(self) -> usize {
        match self {
            VsaFormat::OneOne => 2,
            VsaFormat::TwoTwo => 4,
        }
    }
}

fn fits(format: VsaFormat, mut data: &[u8]) -> bool {
    let h = format.header();
    while !data.is_empty() {
        let Some((_, len)) = sub_header(format, data) else {
            return false;
        };
        if len < h || len > data.len() {
            return false;
        }
        data = &data[len..];
    }
    true
}

fn sub_header(format: VsaFormat, d: &[u8]) -> Option<(u16, usize)> {
    match format {
        VsaFormat::OneOne if d.len() >= 2 => Some((u16::from(d[0]), d[1] as usize)),
        VsaFormat::TwoTwo if d.len() >= 4 => Some((
            u16::from_be_bytes([d[0], d[1]]),
            u16::from_be_bytes([d[2], d[3]]) as usize,
        )),
        _ => None,
    }
}

/// One vendor sub-attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VendorAttr<'a> {
    pub vendor: u32,
    pub ty: u16,
    pub value: &'a [u8],
}

impl<'a> VendorAttr<'a> {
    pub fn as_u32(&self) -> Option<u32> {
        super::be32(self.value)
    }
    pub fn as_ipv4(&self) -> Option<Ipv4Addr> {
        let o: [u8; 4] = self.value.try_into().ok()?;
        Some(Ipv4Addr::from(o))
    }
    pub fn as_ipv6(&self) -> Option<Ipv6Addr> {
        let o: [u8; 16] = self.value.try_into().ok()?;
        Some(Ipv6Addr::from(o))
    }
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
}

/// The sub-attributes of one Vendor-Specific attribute; an error ends the iteration.
#[derive(Clone, Debug)]
pub struct VsaIter<'a> {
    vendor: u32,
    format: VsaFormat,
    data: &'a [u8],
    at: usize,
    base: usize,
    failed: bool,
}

impl<'a> VsaIter<'a> {
    fn new(vendor: u32, format: VsaFormat, data: &'a [u8], base: usize) -> Self {
        VsaIter {
            vendor,
            format,
            data,
            at: 0,
            base,
            failed: false,
        }
    }
}

impl<'a> Iterator for VsaIter<'a> {
    type Item = Result<VendorAttr<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.at..];
        let h = self.format.header();
        match sub_header(self.format, rest) {
            Some((ty, len)) if len >= h && len <= rest.len() => {
                self.at += len;
                Some(Ok(VendorAttr {
                    vendor: self.vendor,
                    ty,
                    value: &rest[h..len],
                }))
            }
            _ => {
                self.failed = true;
                Some(Err(Error::BadVendorAttribute {
                    vendor: self.vendor,
                    offset: self.base + self.at,
                }))
            }
        }
    }
}

/// An owned attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrRepr {
    pub ty: u8,
    pub value: Vec<u8>,
}

impl AttrRepr {
    pub fn new(ty: u8, value: &[u8]) -> Self {
        AttrRepr {
            ty,
            value: value.to_vec(),
        }
    }
    pub fn string(ty: u8, s: &str) -> Self {
        Self::new(ty, s.as_bytes())
    }
    pub fn u32(ty: u8, v: u32) -> Self {
        Self::new(ty, &v.to_be_bytes())
    }
    pub fn ipv4(ty: u8, a: Ipv4Addr) -> Self {
        Self::new(ty, &a.octets())
    }
    /// RFC 3162 §2.3 Framed-IPv6-Prefix: reserved(1), prefix length(1), prefix (only the
    /// octets the length covers).
    pub fn ipv6_prefix(ty: u8, prefix: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        let n = usize::from(len).div_ceil(8);
        let mut v = vec![0, len];
        v.extend_from_slice(&prefix.octets()[..n]);
        Self::new(ty, &v)
    }
    /// A Vendor-Specific attribute carrying one sub-attribute in the vendor's format.
    pub fn vendor(vendor: u32, ty: u16, value: &[u8]) -> Self {
        Self::vendor_in(VsaFormat::for_vendor(vendor), vendor, ty, value)
    }
    pub fn vendor_in(format: VsaFormat, vendor: u32, ty: u16, value: &[u8]) -> Self {
        let mut v = vendor.to_be_bytes().to_vec();
        let len = format.header() + value.len();
        match format {
            VsaFormat::OneOne => v.extend_from_slice(&[ty as u8, len as u8]),
            VsaFormat::TwoTwo => {
                v.extend_from_slice(&ty.to_be_bytes());
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        v.extend_from_slice(value);
        AttrRepr {
            ty: VENDOR_SPECIFIC,
            value: v,
        }
    }
    /// A Cisco-AVPair "key=value".
    pub fn cisco_avpair(kv: &str) -> Self {
        Self::vendor(vendor::CISCO, vendor::CISCO_AVPAIR, kv.as_bytes())
    }
    /// The borrowed view of this attribute (offset 0).
    pub fn as_raw(&self) -> RawAttr<'_> {
        RawAttr {
            ty: self.ty,
            value: &self.value,
            offset: 0,
        }
    }
}

/// Framed-IPv6-Prefix value (RFC 3162 §2.3) → prefix and length.
pub fn parse_ipv6_prefix(v: &[u8]) -> Option<(Ipv6Addr, u8)> {
    let (&len, rest) = v.get(1..)?.split_first()?;
    if len > 128 || rest.len() > 16 || rest.len() < usize::from(len).div_ceil(8) {
        return None;
    }
    let mut o = [0u8; 16];
    o[..rest.len()].copy_from_slice(rest);
    Some((Ipv6Addr::from(o), len))
}
