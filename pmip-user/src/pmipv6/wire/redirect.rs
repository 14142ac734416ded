//! RFC 6463 (runtime LMA assignment) mobility options. They travel in the
//! option list as [`MobilityOption::Unknown`] (the list carries any type as
//! is); this module reads and writes their data.
//!
//! ```text
//!  Redirect-Capability (46), in a PBU: the MAG can be redirected (§4.1)
//!    | type=46 | len=2 | reserved (16) |
//!  Redirect (47), in a PBA: the LMA to register with instead (§4.2)
//!    | type=47 | len=6/18 |K|N| reserved (14) | r2LMA IPv6 (K) or IPv4 (N) address |
//!  Load Information (48): an LMA's load (§4.3)
//!    | type=48 | len=18 | priority (16) | sessions in use (32) | maximum sessions (32) |
//!    | used capacity (32) | maximum capacity (32) |     (capacities in kilobytes/s)
//! ```
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::option::MobilityOption;
use super::{Error, Result};

pub(crate) const REDIRECT_CAPABILITY: u8 = 46;
pub(crate) const REDIRECT: u8 = 47;
pub const LOAD_INFORMATION: u8 = 48;

mod field {
    /// Redirect: the K (IPv6 address) and N (IPv4 address) flags.
    pub const FLAG_K: u8 = 0x80;
    pub const FLAG_N: u8 = 0x40;
    pub const FLAGS: usize = 0;
    pub const ADDR: usize = 2;
}

/// The Redirect-Capability option a MAG puts in its initial PBU.
pub(crate) fn redirect_capability() -> MobilityOption {
    MobilityOption::Unknown {
        kind: REDIRECT_CAPABILITY,
        data: vec![0, 0],
    }
}

/// Does this option list say the MAG can be redirected?
pub(crate) fn has_redirect_capability(opts: &[MobilityOption]) -> bool {
    opts.iter().any(|o| {
        matches!(o, MobilityOption::Unknown { kind, data } if *kind == REDIRECT_CAPABILITY && data.len() == 2)
    })
}

/// The Redirect option: where the MAG is to register (the r2LMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectRepr {
    pub r2lma: IpAddr,
}

impl RedirectRepr {
    /// Parses the option's data: exactly one of K and N set, and the
    /// address of that family (§4.2).
    pub fn parse(data: &[u8]) -> Result<RedirectRepr> {
        let flags = *data
            .get(field::FLAGS)
            .ok_or(Error::Malformed("redirect option"))?;
        let (k, n) = (flags & field::FLAG_K != 0, flags & field::FLAG_N != 0);
        let a = data.get(field::ADDR..).unwrap_or(&[]);
        let r2lma = match (k, n, a.len()) {
            (true, false, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(a);
                IpAddr::V6(Ipv6Addr::from(b))
            }
            (false, true, 4) => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            _ => return Err(Error::Malformed("redirect option")),
        };
        Ok(RedirectRepr { r2lma })
    }

    pub fn buffer_len(&self) -> usize {
        field::ADDR
            + match self.r2lma {
                IpAddr::V4(_) => 4,
                IpAddr::V6(_) => 16,
            }
    }

    pub fn emit(&self, data: &mut [u8]) {
        data[field::FLAGS + 1] = 0;
        match self.r2lma {
            IpAddr::V4(a) => {
                data[field::FLAGS] = field::FLAG_N;
                data[field::ADDR..field::ADDR + 4].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                data[field::FLAGS] = field::FLAG_K;
                data[field::ADDR..field::ADDR + 16].copy_from_slice(&a.octets());
            }
        }
    }

    pub fn to_option(&self) -> MobilityOption {
        let mut data = vec![0u8; self.buffer_len()];
        self.emit(&mut data);
        MobilityOption::Unknown {
            kind: REDIRECT,
            data,
        }
    }

    /// The Redirect option of a list: None without one, an error if malformed.
    pub fn find(opts: &[MobilityOption]) -> Option<Result<RedirectRepr>> {
        opts.iter().find_map(|o| match o {
            MobilityOption::Unknown { kind, data } if *kind == REDIRECT => {
                Some(RedirectRepr::parse(data))
            }
            _ => None,
        })
    }
}

/// The Load Information option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadInfoRepr {
    /// Lower is preferred.
    pub priority: u16,
    pub sessions_in_use: u32,
    pub max_sessions: u32,
    pub used_capacity_kbps: u32,
    pub max_capacity_kbps: u32,
}

impl LoadInfoRepr {
    pub const LEN: usize = 18;

    pub fn parse(data: &[u8]) -> Result<LoadInfoRepr> {
        if data.len() != Self::LEN {
            return Err(Error::Malformed("load information option"));
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        Ok(LoadInfoRepr {
            priority: u16::from_be_bytes([data[0], data[1]]),
            sessions_in_use: u32_at(2),
            max_sessions: u32_at(6),
            used_capacity_kbps: u32_at(10),
            max_capacity_kbps: u32_at(14),
        })
    }

    pub fn emit(&self, data: &mut [u8]) {
        data[0..2].copy_from_slice(&self.priority.to_be_bytes());
        data[2..6].copy_from_slice(&self.sessions_in_use.to_be_bytes());
        data[6..10].copy_from_slice(&self.max_sessions.to_be_bytes());
        data[10..14].copy_from_slice(&self.used_capacity_kbps.to_be_bytes());
        data[14..18].copy_from_slice(&self.max_capacity_kbps.to_be_bytes());
    }

    pub fn to_option(&self) -> MobilityOption {
        let mut data = vec![0u8; Self::LEN];
        self.emit(&mut data);
        MobilityOption::Unknown {
            kind: LOAD_INFORMATION,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REDIRECT_V4: [u8; 6] = [0x40, 0x00, 10, 255, 0, 102];

    #[test]
    fn redirect_v4_bytes() {
        let r = RedirectRepr::parse(&REDIRECT_V4).unwrap();
        assert_eq!(r.r2lma, "10.255.0.102".parse::<IpAddr>().unwrap());
        let mut b = [0xffu8; 6];
        r.emit(&mut b);
        assert_eq!(b, REDIRECT_V4);
    }

    #[test]
    fn redirect_v6_round_trip() {
        let r = RedirectRepr {
            r2lma: "2001:db8::7".parse().unwrap(),
        };
        let o = r.to_option();
        let MobilityOption::Unknown { kind, data } = &o else {
            panic!("{o:?}");
        };
        assert_eq!((*kind, data.len(), data[0]), (REDIRECT, 18, 0x80));
        assert_eq!(RedirectRepr::find(std::slice::from_ref(&o)), Some(Ok(r)));
    }

    #[test]
    fn malformed_redirects_are_errors() {
        for bad in [
            &[][..],
            &[0x40],
            &REDIRECT_V4[..5],
            &[0xc0, 0, 10, 0, 0, 1],       // K and N
            &[0x00, 0, 10, 0, 0, 1],       // neither
            &[0x80, 0, 10, 0, 0, 1],       // K with an IPv4 length
            &[0x40, 0, 10, 0, 0, 1, 0, 0], // oversized
        ] {
            assert!(RedirectRepr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn capability_and_load_information() {
        let opts = vec![redirect_capability()];
        assert!(has_redirect_capability(&opts));
        assert!(!has_redirect_capability(&[]));
        let l = LoadInfoRepr {
            priority: 1,
            sessions_in_use: 1234,
            max_sessions: 65_535,
            used_capacity_kbps: 7,
            max_capacity_kbps: 10_000_000,
        };
        let MobilityOption::Unknown { data, .. } = l.to_option() else {
            unreachable!()
        };
        assert_eq!(LoadInfoRepr::parse(&data), Ok(l));
        assert!(LoadInfoRepr::parse(&data[..17]).is_err());
    }

    #[test]
    fn options_survive_a_real_pbu_round_trip() {
        use super::super::{ba_flags, BaStatus, BindingAck, Checksum, Message};
        let ba = Message::BindingAck(BindingAck {
            status: BaStatus::NOT_LMA_FOR_THIS_MOBILE_NODE,
            flags: ba_flags::P,
            seq: 9,
            lifetime: 0,
            options: vec![RedirectRepr {
                r2lma: "10.255.0.102".parse().unwrap(),
            }
            .to_option()],
        });
        let bytes = ba.to_vec(Checksum::None).unwrap();
        let Message::BindingAck(back) = Message::parse(&bytes, Checksum::None).unwrap() else {
            panic!("not a PBA");
        };
        assert_eq!(
            RedirectRepr::find(&back.options).unwrap().unwrap().r2lma,
            "10.255.0.102".parse::<IpAddr>().unwrap()
        );
    }
}
