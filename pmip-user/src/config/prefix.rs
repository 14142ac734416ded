//! Addresses with a prefix length, as the configuration writes them
//! (`192.0.2.0/24`, `2001:db8:f00d::/48`): parsed here once.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 address and a prefix length (≤ 32): a network when its host bits
/// are clear (a pool), an address on its subnet otherwise (an access gateway).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv6 address and a prefix length (≤ 128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

/// Either family, as a `prefix` key may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl Ipv4Prefix {
    pub fn mask(&self) -> u32 {
        match self.len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }

    /// The bits of `addr` beyond the prefix (0 for a network).
    pub(crate) fn host_bits(&self) -> u32 {
        u32::from(self.addr) & !self.mask()
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address of the prefix (the subnet's broadcast address).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl FromStr for Prefix {
    type Err = ();

    /// `address/length`, the length at most 32 (IPv4) or 128 (IPv6).
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, l) = s.split_once('/').ok_or(())?;
        let len: u8 = l.parse().map_err(|_| ())?;
        match a.parse::<IpAddr>().map_err(|_| ())? {
            IpAddr::V4(addr) if len <= 32 => Ok(Prefix::V4(Ipv4Prefix { addr, len })),
            IpAddr::V6(addr) if len <= 128 => Ok(Prefix::V6(Ipv6Prefix { addr, len })),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert_eq!(
            p,
            Prefix::V4(Ipv4Prefix {
                addr: Ipv4Addr::new(192, 0, 2, 0),
                len: 24
            })
        );
        assert_eq!(p.to_string(), "192.0.2.0/24");
        let p6: Prefix = "2001:db8:f00d::/48".parse().unwrap();
        assert_eq!(p6.to_string(), "2001:db8:f00d::/48");
        for bad in [
            "192.0.2.0",
            "192.0.2.0/33",
            "2001:db8::/129",
            "x/1",
            "192.0.2.0/",
            "/24",
            "192.0.2.0/-1",
            "192.0.2.0/24/1",
        ] {
            assert_eq!(bad.parse::<Prefix>(), Err(()), "{bad}");
        }
    }

    #[test]
    fn ipv4_arithmetic() {
        let g = Ipv4Prefix {
            addr: Ipv4Addr::new(192, 0, 2, 254),
            len: 24,
        };
        assert_eq!(g.mask(), 0xffff_ff00);
        assert_eq!(g.host_bits(), 254);
        assert_eq!(g.network(), Ipv4Addr::new(192, 0, 2, 0));
        assert_eq!(g.last(), Ipv4Addr::new(192, 0, 2, 255));
        assert!(g.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(!g.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let all = Ipv4Prefix {
            addr: Ipv4Addr::UNSPECIFIED,
            len: 0,
        };
        assert_eq!(all.mask(), 0);
        assert!(all.contains(Ipv4Addr::new(10, 0, 0, 1)));
        let host = Ipv4Prefix { len: 32, ..g };
        assert_eq!((host.mask(), host.host_bits()), (u32::MAX, 0));
    }
}
