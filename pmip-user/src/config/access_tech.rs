//! `interfaces.access[].access_technology`: what the access link is, by
//! name, and its code in each protocol — PMIPv6's Access Technology Type
//! option (RFC 5213 §8.5, IANA registry) and PMIPv4's Access Technology
//! Type extension (draft-leung §5.5), whose numbering differs.
use serde::{Deserialize, Serialize};

use super::Protocol;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessTechnology {
    #[serde(rename = "virtual")]
    Virtual,
    #[serde(rename = "ppp")]
    Ppp,
    #[serde(rename = "ieee-802.3")]
    Ieee8023,
    #[serde(rename = "ieee-802.11")]
    Ieee80211,
    #[serde(rename = "ieee-802.16e")]
    Ieee80216e,
    #[serde(rename = "ieee-802.16m")]
    Ieee80216m,
    #[serde(rename = "geran")]
    Geran,
    #[serde(rename = "utran")]
    Utran,
    #[serde(rename = "eutran")]
    Eutran,
    #[serde(rename = "ehrpd")]
    Ehrpd,
    #[serde(rename = "hrpd")]
    Hrpd,
    #[serde(rename = "1xrtt")]
    OneXRtt,
    #[serde(rename = "umb")]
    Umb,
}

impl AccessTechnology {
    /// The value `protocol` signals it with; `None` when it has no code.
    pub fn code(self, protocol: Protocol) -> Option<u8> {
        use AccessTechnology::*;
        match protocol {
            Protocol::Pmipv6 => match self {
                Virtual => Some(1),
                Ppp => Some(2),
                Ieee8023 => Some(3),
                Ieee80211 => Some(4),
                Ieee80216e => Some(5),
                Ieee80216m => None,
                Geran => Some(6),
                Utran => Some(7),
                Eutran => Some(8),
                Ehrpd => Some(9),
                Hrpd => Some(10),
                OneXRtt => Some(11),
                Umb => Some(12),
            },
            Protocol::Pmipv4 => match self {
                Virtual | Ppp => None,
                Ieee8023 => Some(1),
                Ieee80211 => Some(2),
                Ieee80216e => Some(3),
                Ieee80216m => Some(4),
                Eutran => Some(5),
                Geran | Utran => Some(6),
                Ehrpd | Hrpd | OneXRtt => Some(7),
                Umb => Some(8),
            },
        }
    }
}
