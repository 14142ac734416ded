//! Authorization: the Access-Request built from a subscriber (seed 004, "Configuring an MN
//! Profile on the External RADIUS Server") and the typed profile read from an Access-Accept
//! (seed 004's Cisco-AVPairs, seed 000's StarOS attribute table).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{AaaConfig, UserName};
use super::wire::attr::{self, vendor, AttrRepr, RawAttr, VendorAttr};
use super::wire::{auth, Code, Packet, PacketRepr};

/// A subscriber to authorize, as the access gateway sees it at attach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    pub mac: [u8; 6],
    /// NAI from the DHCP client identifier (RFC 4282), if the subscriber sent one.
    pub nai: Option<String>,
    /// The access interface (NAS-Port-Id, e.g. `GigabitEthernet0/1/0.3074` or `acc0`).
    pub nas_port_id: Option<String>,
    /// Called-Station-Id (e.g. the SSID or APN), if the access link knows one.
    pub called_station_id: Option<String>,
}

impl Subscriber {
    pub fn new(mac: [u8; 6]) -> Self {
        Subscriber {
            mac,
            nai: None,
            nas_port_id: None,
            called_station_id: None,
        }
    }

    /// User-Name: the NAI or the MAC, as configured.
    pub fn user_name(&self, cfg: &AaaConfig) -> String {
        match (cfg.user_name, &self.nai) {
            (UserName::Nai, Some(n)) => n.clone(),
            _ => cfg.mac_format.format(&self.mac),
        }
    }
}

/// The Access-Request for `sub`, signed. `request_auth` is a fresh nonce; `now_unix` feeds
/// Event-Timestamp when configured.
pub(crate) fn access_request(
    cfg: &AaaConfig,
    secret: &[u8],
    sub: &Subscriber,
    id: u8,
    request_auth: &[u8; 16],
    now_unix: u32,
) -> Vec<u8> {
    let mut r = PacketRepr::new(Code::AccessRequest, id);
    if cfg.message_authenticator {
        // First, so that nothing before it can be chosen by an attacker (BlastRADIUS).
        r.push(AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]));
    }
    let user = sub.user_name(cfg);
    let password = cfg
        .password
        .as_ref()
        .map(|p| p.expose().to_vec())
        .unwrap_or_else(|| user.clone().into_bytes());
    r.push(AttrRepr::string(attr::USER_NAME, truncate(&user)));
    r.push(AttrRepr::new(
        attr::USER_PASSWORD,
        &auth::hide_password(&password, secret, request_auth),
    ));
    push_nas(&mut r, cfg, cfg.attributes.nas_identifier_access);
    if cfg.attributes.nas_port_type {
        r.push(AttrRepr::u32(attr::NAS_PORT_TYPE, cfg.nas_port_type));
    }
    if let Some(p) = &sub.nas_port_id {
        r.push(AttrRepr::string(attr::NAS_PORT_ID, truncate(p)));
    }
    if cfg.attributes.calling_station_id {
        r.push(AttrRepr::string(
            attr::CALLING_STATION_ID,
            &cfg.mac_format.format(&sub.mac),
        ));
    }
    if let Some(c) = &sub.called_station_id {
        r.push(AttrRepr::string(attr::CALLED_STATION_ID, truncate(c)));
    }
    if cfg.attributes.event_timestamp_access {
        r.push(AttrRepr::u32(attr::EVENT_TIMESTAMP, now_unix));
    }
    finish(&r, secret, request_auth)
}

/// NAS-IP-Address / NAS-IPv6-Address / NAS-Identifier (RFC 2865 §4.1: one is required).
pub(crate) fn push_nas(r: &mut PacketRepr, cfg: &AaaConfig, identifier: bool) {
    if cfg.attributes.nas_ip_address {
        if let Some(a) = cfg.nas_ip_address {
            r.push(AttrRepr::ipv4(attr::NAS_IP_ADDRESS, a));
        }
        if let Some(a) = cfg.nas_ipv6_address {
            r.push(AttrRepr::new(attr::NAS_IPV6_ADDRESS, &a.octets()));
        }
    }
    if let Some(n) = &cfg.nas_identifier {
        let no_address =
            r.attr(attr::NAS_IP_ADDRESS).is_none() && r.attr(attr::NAS_IPV6_ADDRESS).is_none();
        if identifier || no_address {
            r.push(AttrRepr::string(attr::NAS_IDENTIFIER, truncate(n)));
        }
    }
}

/// Emits and signs; the attributes we build always fit (values cut to 253 octets, a few of them).
pub(crate) fn finish(r: &PacketRepr, secret: &[u8], request_auth: &[u8; 16]) -> Vec<u8> {
    let mut b = r.to_bytes().unwrap_or_else(|e| {
        debug_assert!(false, "building a request: {e}");
        Vec::new()
    });
    if !b.is_empty() {
        let _ = auth::sign(&mut b, secret, request_auth);
    }
    b
}

/// A string cut to what one attribute holds, on a character boundary.
pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= attr::MAX_VALUE {
        return s;
    }
    let mut n = attr::MAX_VALUE;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// Cisco-AVPair `mn-service` (IPv4-only, IPv6-only or dual-stack home network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MnService {
    Ipv4,
    Ipv6,
    Dual,
}

/// SN-Subscriber-Permission bits (`dictionary.starent`): seed 000 requires Simple IP for
/// Proxy Mobile IP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission(pub u32);

impl Permission {
    pub const SIMPLE_IP: u32 = 0x01;
    pub const MOBILE_IP: u32 = 0x02;
    pub const HA_MOBILE_IP: u32 = 0x04;
    pub fn simple_ip(self) -> bool {
        self.0 & Self::SIMPLE_IP != 0
    }
}

/// A subscriber profile from an Access-Accept. `None`/empty where the Accept said nothing,
/// so the agent can merge it over the interface's default profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// User-Name of the Accept (RFC 2865 §5.1: the name to use in accounting).
    pub user_name: Option<String>,
    /// Cisco-AVPair `mn-nai=`.
    pub nai: Option<String>,
    /// Cisco-AVPair `mn-service=`.
    pub service: Option<MnService>,
    /// Cisco-AVPair `home-lma=` (the name of a configured peer).
    pub lma_name: Option<String>,
    /// Cisco-AVPair `home-lma-ipv4-address=` / `home-lma-ipv6-address=`.
    pub lma_ipv4: Option<Ipv4Addr>,
    pub lma_ipv6: Option<Ipv6Addr>,
    /// Cisco-AVPair `mn-apn=`, else SN-Virtual-APN-Name.
    pub apn: Option<String>,
    /// Cisco-AVPair `cisco-mpc-protocol-interface=` (e.g. `pmipv6`).
    pub mpc_protocol_interface: Option<String>,
    /// 3GPP2-MIP-HA-Address: the first is the primary HA, the second the alternate
    /// (seed 000: "only the first two are considered").
    pub ha_primary: Option<Ipv4Addr>,
    pub ha_alternate: Option<Ipv4Addr>,
    /// SN-Proxy-MIP / SN1-Proxy-MIP (compulsory Proxy-MIP), SN-Proxy-MIPV6.
    pub proxy_mip: Option<bool>,
    pub proxy_mipv6: Option<bool>,
    pub subscriber_permission: Option<Permission>,
    pub simultaneous_sip_mip: Option<bool>,
    /// SN-PDSN-Handoff-Req-IP-Addr: reject an inter-chassis handoff proposing another address.
    pub handoff_requires_ip: Option<bool>,
    /// Framed-IP-Address: a static home address (RFC 2865 §5.8; the "NAS selects" and "user
    /// selects" values 255.255.255.254/255 are left out).
    pub framed_ip: Option<Ipv4Addr>,
    pub framed_netmask: Option<Ipv4Addr>,
    /// Framed-Pool, else SN-IP-Pool-Name.
    pub framed_pool: Option<String>,
    /// Framed-IPv6-Prefix (RFC 3162) and Delegated-IPv6-Prefix (RFC 4818).
    pub framed_ipv6_prefix: Option<(Ipv6Addr, u8)>,
    pub delegated_ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// Session-Timeout: the binding lifetime.
    pub lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// Acct-Interim-Interval (RFC 2869 §5.16).
    pub interim_interval: Option<Duration>,
    /// DNS servers in order of preference: SN-Primary/Secondary-DNS-Server, 3GPP2 DNS server
    /// primary/secondary, SN-IPv6-Primary/Secondary-DNS, DNS-Server-IPv6-Address (RFC 6911),
    /// Cisco-AVPair `ip:dns-servers=`.
    pub dns: Vec<IpAddr>,
    /// Class values, echoed unchanged in accounting (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
    pub reply_message: Option<String>,
    /// Cisco-AVPairs pmip does not know, as `key=value`.
    pub other_avpairs: Vec<String>,
    /// Vendors whose attributes were skipped (pmip reads Cisco, 3GPP2 and Starent only).
    pub unknown_vendors: Vec<u32>,
    /// Attributes whose value could not be read, by name (for the agent's log).
    pub invalid: Vec<String>,
}

impl Profile {
    /// Reads the attributes of an Access-Accept whose authenticators were verified.
    pub fn from_accept<T: AsRef<[u8]>>(p: &Packet<T>, use_vsas: bool) -> Profile {
        let mut prof = Profile::default();
        let mut has = Vec::new();
        for a in p.attributes().flatten() {
            if a.ty == attr::VENDOR_SPECIFIC {
                if use_vsas {
                    prof.vendor_attr(&a, &mut has);
                }
            } else {
                prof.standard_attr(&a);
            }
        }
        let mut has = has.into_iter();
        prof.ha_primary = has.next();
        prof.ha_alternate = has.next();
        prof
    }

    fn bad(&mut self, name: &str) {
        self.invalid.push(name.to_string());
    }

    fn standard_attr(&mut self, a: &RawAttr<'_>) {
        let secs = |a: &RawAttr<'_>| a.as_u32().map(|s| Duration::from_secs(s.into()));
        match a.ty {
            attr::USER_NAME => self.user_name = a.as_str().map(str::to_string),
            attr::FRAMED_IP_ADDRESS => match a.as_ipv4() {
                Some(ip) if u32::from(ip) >= 0xffff_fffe => {}
                Some(ip) => self.framed_ip = Some(ip),
                None => self.bad("Framed-IP-Address"),
            },
            attr::FRAMED_IP_NETMASK => self.framed_netmask = a.as_ipv4(),
            attr::FRAMED_POOL => self.framed_pool = a.as_str().map(str::to_string),
            attr::FRAMED_IPV6_PREFIX => {
                self.framed_ipv6_prefix = attr::parse_ipv6_prefix(a.value);
                if self.framed_ipv6_prefix.is_none() {
                    self.bad("Framed-IPv6-Prefix");
                }
            }
            attr::DELEGATED_IPV6_PREFIX => {
                self.delegated_ipv6_prefix = attr::parse_ipv6_prefix(a.value)
            }
            attr::SESSION_TIMEOUT => match secs(a) {
                Some(d) => self.lifetime = Some(d),
                None => self.bad("Session-Timeout"),
            },
            attr::IDLE_TIMEOUT => self.idle_timeout = secs(a),
            attr::ACCT_INTERIM_INTERVAL => self.interim_interval = secs(a),
            attr::CLASS => self.class.push(a.value.to_vec()),
            attr::REPLY_MESSAGE => self.reply_message = a.as_str().map(str::to_string),
            attr::DNS_SERVER_IPV6_ADDRESS => match <[u8; 16]>::try_from(a.value) {
                Ok(o) => self.dns.push(IpAddr::V6(o.into())),
                Err(_) => self.bad("DNS-Server-IPv6-Address"),
            },
            _ => {}
        }
    }

    fn vendor_attr(&mut self, a: &RawAttr<'_>, has: &mut Vec<Ipv4Addr>) {
        let Some((v, subs)) = a.vendor() else {
            self.bad("Vendor-Specific");
            return;
        };
        // Another vendor's attributes may not even follow the suggested format: skip them.
        if ![vendor::CISCO, vendor::TGPP2, vendor::STARENT].contains(&v) {
            self.unknown_vendors.push(v);
            return;
        }
        for s in subs {
            let Ok(s) = s else {
                self.bad(&format!("Vendor-Specific({v})"));
                return;
            };
            match v {
                vendor::CISCO if s.ty == vendor::CISCO_AVPAIR => match s.as_str() {
                    Some(kv) => self.cisco_avpair(kv),
                    None => self.bad("Cisco-AVPair"),
                },
                vendor::TGPP2 => self.tgpp2(&s, has),
                vendor::STARENT => self.starent(&s),
                _ => {}
            }
        }
    }

    fn cisco_avpair(&mut self, kv: &str) {
        // "key=value" (mandatory) or "key*value" (optional), Cisco AV-pair syntax.
        let Some((k, val)) = kv.split_once(['=', '*']) else {
            self.other_avpairs.push(kv.to_string());
            return;
        };
        let (k, val) = (k.trim(), val.trim());
        match k {
            "mn-nai" => self.nai = Some(val.to_string()),
            "mn-service" => match val {
                "ipv4" => self.service = Some(MnService::Ipv4),
                "ipv6" => self.service = Some(MnService::Ipv6),
                "dual" => self.service = Some(MnService::Dual),
                _ => self.bad("Cisco-AVPair mn-service"),
            },
            "home-lma" => self.lma_name = Some(val.to_string()),
            "home-lma-ipv4-address" => match val.parse() {
                Ok(a) => self.lma_ipv4 = Some(a),
                Err(_) => self.bad("Cisco-AVPair home-lma-ipv4-address"),
            },
            "home-lma-ipv6-address" => match val.parse() {
                Ok(a) => self.lma_ipv6 = Some(a),
                Err(_) => self.bad("Cisco-AVPair home-lma-ipv6-address"),
            },
            "mn-apn" => self.apn = Some(val.to_string()),
            "cisco-mpc-protocol-interface" => self.mpc_protocol_interface = Some(val.to_string()),
            "ip:dns-servers" => {
                for d in val.split_whitespace() {
                    match d.parse() {
                        Ok(a) => self.dns.push(a),
                        Err(_) => self.bad("Cisco-AVPair ip:dns-servers"),
                    }
                }
            }
            _ => self.other_avpairs.push(kv.to_string()),
        }
    }

    fn tgpp2(&mut self, s: &VendorAttr<'_>, has: &mut Vec<Ipv4Addr>) {
        match s.ty {
            vendor::TGPP2_HA_ADDRESS => match s.as_ipv4() {
                Some(a) => has.push(a),
                None => self.bad("3GPP2-MIP-HA-Address"),
            },
            vendor::TGPP2_DNS_SERVER => {
                // TLV: 1 primary, 2 secondary (each type, length 6, IPv4), 3 flag, 4 entity.
                let mut d = s.value;
                let mut found = [None, None];
                while let [t, l, rest @ ..] = d {
                    let l = *l as usize;
                    if l < 2 || l - 2 > rest.len() {
                        self.bad("3GPP2-DNS-Server-IP-Address");
                        break;
                    }
                    if (*t == 1 || *t == 2) && l == 6 {
                        let o: [u8; 4] = rest[..4].try_into().unwrap_or_default();
                        found[usize::from(*t - 1)] = Some(Ipv4Addr::from(o));
                    }
                    d = &rest[l - 2..];
                }
                self.dns.extend(found.into_iter().flatten().map(IpAddr::V4));
            }
            _ => {}
        }
    }

    fn starent(&mut self, s: &VendorAttr<'_>) {
        let flag = |s: &VendorAttr<'_>| s.as_u32().map(|v| v != 0);
        match s.ty {
            vendor::SN_PROXY_MIP => self.proxy_mip = flag(s),
            vendor::SN_PROXY_MIPV6 => self.proxy_mipv6 = flag(s),
            vendor::SN_SUBSCRIBER_PERMISSION => {
                self.subscriber_permission = s.as_u32().map(Permission)
            }
            vendor::SN_SIMULTANEOUS_SIP_MIP => self.simultaneous_sip_mip = flag(s),
            vendor::SN_PDSN_HANDOFF_REQ_IP_ADDR => self.handoff_requires_ip = flag(s),
            vendor::SN_PRIMARY_DNS | vendor::SN_SECONDARY_DNS => match s.as_ipv4() {
                Some(a) => self.dns.push(IpAddr::V4(a)),
                None => self.bad("SN-Primary/Secondary-DNS-Server"),
            },
            vendor::SN_IPV6_PRIMARY_DNS | vendor::SN_IPV6_SECONDARY_DNS => {
                if let Some(a) = s.as_ipv6() {
                    self.dns.push(IpAddr::V6(a));
                }
            }
            vendor::SN_IP_POOL_NAME if self.framed_pool.is_none() => {
                self.framed_pool = s.as_str().map(str::to_string)
            }
            vendor::SN_VIRTUAL_APN_NAME if self.apn.is_none() => {
                self.apn = s.as_str().map(str::to_string)
            }
            _ => {}
        }
    }
}

/// What an authorization came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOutcome {
    /// Access-Accept: the profile it carried.
    Accept(Box<Profile>),
    /// Access-Reject (or an Access-Challenge, which pmip cannot answer). The agent falls back
    /// to the interface's default profile if one is configured.
    Reject { reply_message: Option<String> },
    /// No server answered within its retransmissions, in failover order.
    Timeout,
    /// Too many authorizations waiting (`aaa.queue_limit`); nothing was sent.
    Overloaded,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::config::{MacFormat, Secret, Server};
    use crate::aaa::wire::auth::unhide_password;

    fn cfg() -> AaaConfig {
        AaaConfig {
            nas_identifier: Some("MAG1".into()),
            nas_ip_address: Some("10.8.22.15".parse().unwrap()),
            servers: vec![Server {
                address: "203.0.113.115".parse().unwrap(),
                auth_port: 1812,
                acct_port: 1813,
                secret: Secret::new("aaacisco"),
                timeout: None,
                retransmit: None,
            }],
            ..AaaConfig::default()
        }
    }

    #[test]
    fn access_request_carries_the_seed_004_attributes() {
        let c = cfg();
        let mut sub = Subscriber::new([0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4]);
        sub.nas_port_id = Some("acc0".into());
        let ra = [5u8; 16];
        let b = access_request(&c, b"aaacisco", &sub, 17, &ra, 1_700_000_000);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.code(), p.identifier()), (Code::AccessRequest, 17));
        assert_eq!(p.authenticator(), ra);
        // The Message-Authenticator comes first and verifies.
        assert_eq!(
            p.attributes().next().unwrap().unwrap().ty,
            attr::MESSAGE_AUTHENTICATOR
        );
        assert_eq!(auth::verify(&b, b"aaacisco", &ra, true), Ok(true));
        let s = |t| p.attr(t).and_then(|a| a.as_str()).map(str::to_string);
        assert_eq!(s(attr::USER_NAME).as_deref(), Some("00-24-d7-8e-21-a4"));
        assert_eq!(
            s(attr::CALLING_STATION_ID).as_deref(),
            Some("00-24-d7-8e-21-a4")
        );
        assert_eq!(s(attr::NAS_IDENTIFIER).as_deref(), Some("MAG1"));
        assert_eq!(s(attr::NAS_PORT_ID).as_deref(), Some("acc0"));
        assert_eq!(p.attr(attr::NAS_PORT_TYPE).unwrap().as_u32(), Some(19));
        assert_eq!(
            p.attr(attr::NAS_IP_ADDRESS).unwrap().as_ipv4(),
            Some("10.8.22.15".parse().unwrap())
        );
        assert!(p.attr(attr::EVENT_TIMESTAMP).is_none());
        let pw = p.attr(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            unhide_password(pw.value, b"aaacisco", &ra).unwrap(),
            b"00-24-d7-8e-21-a4"
        );
        // With an NAI, a password and Cisco's MAC format.
        let mut c = c;
        c.mac_format = MacFormat::Cisco;
        c.password = Some(Secret::new("cisco"));
        c.attributes.event_timestamp_access = true;
        sub.nai = Some("mn0@example.com".into());
        let b = access_request(&c, b"aaacisco", &sub, 1, &ra, 77);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.attr(attr::USER_NAME).unwrap().value, b"mn0@example.com");
        assert_eq!(
            p.attr(attr::CALLING_STATION_ID).unwrap().value,
            b"0024.d78e.21a4"
        );
        assert_eq!(p.attr(attr::EVENT_TIMESTAMP).unwrap().as_u32(), Some(77));
        let pw = p.attr(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            unhide_password(pw.value, b"aaacisco", &ra).unwrap(),
            b"cisco"
        );
    }

    fn accept(attrs: Vec<AttrRepr>) -> Vec<u8> {
        let mut r = PacketRepr::new(Code::AccessAccept, 1);
        r.attributes = attrs;
        r.to_bytes().unwrap()
    }

    #[test]
    fn seed_004_cisco_avpairs() {
        let b = accept(
            [
                "mn-nai=mn0@example.com",
                "mn-service=ipv4",
                "home-lma-ipv6-address=2001:db8:cafe:1024::101",
                "home-lma-ipv4-address=10.8.24.101",
                "home-lma=lma1",
                "mn-apn=example.com",
                "cisco-mpc-protocol-interface=pmipv6",
                "ip:dns-servers=198.51.100.250 198.51.100.251",
                "unknown-thing=1",
            ]
            .iter()
            .map(|kv| AttrRepr::cisco_avpair(kv))
            .collect(),
        );
        let p = Profile::from_accept(&Packet::new_checked(&b[..]).unwrap(), true);
        assert_eq!(p.nai.as_deref(), Some("mn0@example.com"));
        assert_eq!(p.service, Some(MnService::Ipv4));
        assert_eq!(p.lma_ipv6, Some("2001:db8:cafe:1024::101".parse().unwrap()));
        assert_eq!(p.lma_ipv4, Some("10.8.24.101".parse().unwrap()));
        assert_eq!(p.lma_name.as_deref(), Some("lma1"));
        assert_eq!(p.apn.as_deref(), Some("example.com"));
        assert_eq!(p.mpc_protocol_interface.as_deref(), Some("pmipv6"));
        assert_eq!(p.dns.len(), 2);
        assert_eq!(p.other_avpairs, vec!["unknown-thing=1".to_string()]);
        assert!(p.invalid.is_empty());
        // Vendor attributes switched off (`vsa send authentication` off): none used.
        let q = Profile::from_accept(&Packet::new_checked(&b[..]).unwrap(), false);
        assert_eq!(q, Profile::default());
    }

    #[test]
    fn seed_000_starent_and_3gpp2_attributes() {
        let u = |v: u32| v.to_be_bytes();
        let b = accept(vec![
            AttrRepr::vendor(vendor::TGPP2, vendor::TGPP2_HA_ADDRESS, &[192, 0, 2, 1]),
            AttrRepr::vendor(vendor::TGPP2, vendor::TGPP2_HA_ADDRESS, &[192, 0, 2, 2]),
            AttrRepr::vendor(vendor::TGPP2, vendor::TGPP2_HA_ADDRESS, &[192, 0, 2, 3]),
            AttrRepr::vendor(vendor::STARENT, vendor::SN_PROXY_MIP, &u(1)),
            AttrRepr::vendor_in(
                attr::VsaFormat::OneOne,
                vendor::STARENT,
                vendor::SN_SUBSCRIBER_PERMISSION,
                &u(1),
            ),
            AttrRepr::vendor(vendor::STARENT, vendor::SN_SIMULTANEOUS_SIP_MIP, &u(0)),
            AttrRepr::vendor(vendor::STARENT, vendor::SN_PDSN_HANDOFF_REQ_IP_ADDR, &u(1)),
            AttrRepr::vendor(
                vendor::STARENT,
                vendor::SN_PRIMARY_DNS,
                &[198, 51, 100, 250],
            ),
            AttrRepr::vendor(
                vendor::TGPP2,
                vendor::TGPP2_DNS_SERVER,
                &[1, 6, 9, 9, 9, 9, 2, 6, 8, 8, 8, 8, 3, 3, 1],
            ),
            AttrRepr::ipv4(attr::FRAMED_IP_ADDRESS, "192.0.2.77".parse().unwrap()),
            AttrRepr::string(attr::FRAMED_POOL, "PMIP_IPv4_POOL"),
            AttrRepr::u32(attr::SESSION_TIMEOUT, 3600),
            AttrRepr::u32(attr::ACCT_INTERIM_INTERVAL, 600),
            AttrRepr::new(attr::CLASS, b"c1"),
            AttrRepr::vendor(4242, 1, b"someone else's"),
        ]);
        let p = Profile::from_accept(&Packet::new_checked(&b[..]).unwrap(), true);
        assert_eq!(p.unknown_vendors, vec![4242]);
        assert_eq!(p.ha_primary, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(p.ha_alternate, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(p.proxy_mip, Some(true));
        assert!(p.subscriber_permission.unwrap().simple_ip());
        assert_eq!(p.simultaneous_sip_mip, Some(false));
        assert_eq!(p.handoff_requires_ip, Some(true));
        let dns: Vec<String> = p.dns.iter().map(|d| d.to_string()).collect();
        assert_eq!(dns, ["198.51.100.250", "9.9.9.9", "8.8.8.8"]);
        assert_eq!(p.framed_ip, Some("192.0.2.77".parse().unwrap()));
        assert_eq!(p.framed_pool.as_deref(), Some("PMIP_IPv4_POOL"));
        assert_eq!(p.lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(p.interim_interval, Some(Duration::from_secs(600)));
        assert_eq!(p.class, vec![b"c1".to_vec()]);
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
    }

    #[test]
    fn bad_values_are_named_not_fatal() {
        let b = accept(vec![
            AttrRepr::cisco_avpair("home-lma-ipv4-address=10.0.0"),
            AttrRepr::cisco_avpair("mn-service=ipx"),
            AttrRepr::vendor(vendor::TGPP2, vendor::TGPP2_HA_ADDRESS, &[1, 2, 3]),
            AttrRepr::new(attr::SESSION_TIMEOUT, &[1, 2]),
            AttrRepr::new(attr::VENDOR_SPECIFIC, &[0, 0, 0, 9, 1, 9, 0]),
            AttrRepr::ipv4(attr::FRAMED_IP_ADDRESS, "255.255.255.254".parse().unwrap()),
        ]);
        let p = Profile::from_accept(&Packet::new_checked(&b[..]).unwrap(), true);
        assert_eq!(p.invalid.len(), 5, "{:?}", p.invalid);
        assert_eq!(p.lma_ipv4, None);
        assert_eq!(p.framed_ip, None);
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let s = "é".repeat(200);
        let t = truncate(&s);
        assert!(t.len() <= 253 && t.len() == 252);
    }
}
