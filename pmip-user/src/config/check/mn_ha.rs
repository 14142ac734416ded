//! `[[mn_ha]]`: per-mobile-node security associations (PMIPv4, RFC 3344
//! §3.5.2, draft-leung §4.3 "per MN SA"), each for one NAI or one realm.
use std::collections::HashSet;

use super::Errors;
use crate::config::file::File;
use crate::config::{Algorithm, MnHaSa, MnSelector, Protocol};

pub(super) fn check(f: &File, v: &mut Errors) -> Vec<MnHaSa> {
    if !f.mn_ha.is_empty() && f.protocol != Protocol::Pmipv4 {
        v.err(
            "mn_ha",
            "PMIPv4 only (PMIPv6 signaling is protected by ESP, RFC 5213 §4)",
        );
        return Vec::new();
    }
    let (mut nais, mut realms) = (HashSet::new(), HashSet::new());
    let mut out = Vec::new();
    for (i, e) in f.mn_ha.iter().enumerate() {
        let p = format!("mn_ha[{i}]");
        let selector = match (&e.nai, &e.realm) {
            (Some(_), Some(_)) => {
                v.err(&p, "nai and realm: give one of them");
                None
            }
            (None, None) => {
                v.err(
                    &p,
                    "needs nai (one mobile node) or realm (every NAI of a realm)",
                );
                None
            }
            // RFC 2794 §2: the NAI extension's Length is one octet.
            (Some(n), None) if n.is_empty() || n.len() > 255 => {
                v.err(format!("{p}.nai"), "must be 1 to 255 characters");
                None
            }
            (Some(n), None) if !nais.insert(n.clone()) => {
                v.err(format!("{p}.nai"), format!("{n:?} is configured twice"));
                None
            }
            (Some(n), None) => Some(MnSelector::Nai(n.clone())),
            (None, Some(r)) if r.is_empty() || r.len() > 253 || r.contains(['@', ' ']) => {
                v.err(
                    format!("{p}.realm"),
                    "must be a realm (the part of a NAI after its '@'): 1 to 253 characters, no '@' or space",
                );
                None
            }
            (None, Some(r)) if !realms.insert(r.to_ascii_lowercase()) => {
                v.err(format!("{p}.realm"), format!("{r:?} is configured twice"));
                None
            }
            (None, Some(r)) => Some(MnSelector::Realm(r.clone())),
        };
        // The algorithm defaults to RFC 3344 §5.1's, HMAC-MD5.
        let fields = (
            e.spi,
            Some(e.algorithm.unwrap_or(Algorithm::HmacMd5)),
            e.key.as_deref(),
        );
        let sa = super::peers::sa_fields(&p, fields, "part of the MN-HA association", v);
        let also_accept =
            super::peers::more_sas(&p, &e.also_accept, (e.spi, Some(Algorithm::HmacMd5)), v);
        if let (Some(selector), Some(sa)) = (selector, sa) {
            out.push(MnHaSa {
                selector,
                sa,
                also_accept,
            });
        }
    }
    out
}
