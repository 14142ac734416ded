//! Byte-array tests: RFC 2865 §7 examples, round trips, malformed input.
use super::attr::*;
use super::auth::*;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const SECRET: &[u8] = b"xyzzy5461";

// RFC 2865 §7.1: user "nemo", password "arctangent", NAS 192.168.1.16 port 3.
const EX71_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f
    78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03";
const EX71_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";

#[test]
fn rfc2865_7_1_deconstruct_request() {
    let b = hex(EX71_REQUEST);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.code(), Code::AccessRequest);
    assert_eq!(p.identifier(), 0);
    assert_eq!(p.length(), 56);
    let attrs: Vec<_> = p.attributes().map(|a| a.unwrap()).collect();
    assert_eq!(attrs.len(), 4);
    assert_eq!((attrs[0].ty, attrs[0].value), (USER_NAME, &b"nemo"[..]));
    assert_eq!(attrs[1].ty, USER_PASSWORD);
    assert_eq!(attrs[2].as_ipv4(), Some("192.168.1.16".parse().unwrap()));
    assert_eq!(attrs[3].as_u32(), Some(3));
    let pw = unhide_password(attrs[1].value, SECRET, &p.authenticator()).unwrap();
    assert_eq!(pw, b"arctangent");
}

#[test]
fn rfc2865_7_1_construct_request() {
    let b = hex(EX71_REQUEST);
    let auth: [u8; 16] = b[4..20].try_into().unwrap();
    let mut r = PacketRepr::new(Code::AccessRequest, 0);
    r.push(AttrRepr::string(USER_NAME, "nemo"))
        .push(AttrRepr::new(
            USER_PASSWORD,
            &hide_password(b"arctangent", SECRET, &auth),
        ))
        .push(AttrRepr::ipv4(
            NAS_IP_ADDRESS,
            "192.168.1.16".parse().unwrap(),
        ))
        .push(AttrRepr::u32(NAS_PORT, 3));
    let mut out = r.to_bytes().unwrap();
    sign(&mut out, SECRET, &auth).unwrap();
    assert_eq!(out, b);
    // And the parsed form emits the same bytes again.
    let again = PacketRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
    assert_eq!(again.to_bytes().unwrap(), b);
}

#[test]
fn rfc2865_7_1_accept_verifies_against_the_request() {
    let req = hex(EX71_REQUEST);
    let auth: [u8; 16] = req[4..20].try_into().unwrap();
    let b = hex(EX71_ACCEPT);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.code(), Code::AccessAccept);
    assert_eq!(verify(&b, SECRET, &auth, false), Ok(false));
    assert_eq!(
        verify(&b, b"wrong", &auth, false),
        Err(AuthError::Authenticator)
    );
    assert_eq!(
        verify(&b, SECRET, &auth, true),
        Err(AuthError::MissingMessageAuthenticator)
    );
    let attrs: Vec<_> = p.attributes().map(|a| a.unwrap()).collect();
    assert_eq!(attrs[0].ty, SERVICE_TYPE); // Login
    assert_eq!(attrs[2].as_ipv4(), Some("192.168.1.3".parse().unwrap())); // Login-IP-Host
                                                                          // Construct: the same attributes signed as a response give the RFC's bytes.
    let mut r = PacketRepr::parse(&p).unwrap();
    r.authenticator = [0; 16];
    let mut out = r.to_bytes().unwrap();
    sign(&mut out, SECRET, &auth).unwrap();
    assert_eq!(out, b);
}

#[test]
fn message_authenticator_round_trip_for_every_kind() {
    let req_auth = [7u8; 16];
    for code in [
        Code::AccessRequest,
        Code::AccessAccept,
        Code::AccountingRequest,
        Code::DisconnectRequest,
        Code::CoaNak,
    ] {
        let mut r = PacketRepr::new(code, 9);
        r.push(AttrRepr::new(MESSAGE_AUTHENTICATOR, &[0; 16]))
            .push(AttrRepr::string(USER_NAME, "mn0@example.com"));
        let mut b = r.to_bytes().unwrap();
        sign(&mut b, b"s3cret", &req_auth).unwrap();
        assert_eq!(verify(&b, b"s3cret", &req_auth, true), Ok(true), "{code:?}");
        // Any flipped bit in the attributes breaks one of the two authenticators.
        for i in HEADER_LEN..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            if Packet::new_checked(&c[..]).is_ok() {
                assert!(
                    verify(&c, b"s3cret", &req_auth, true).is_err(),
                    "{code:?} byte {i}"
                );
            }
        }
        assert!(verify(&b, b"other", &req_auth, true).is_err());
    }
}

#[test]
fn accounting_request_authenticator_is_md5_with_zeros() {
    let mut r = PacketRepr::new(Code::AccountingRequest, 1);
    r.push(AttrRepr::u32(ACCT_STATUS_TYPE, 1));
    let mut b = r.to_bytes().unwrap();
    sign(&mut b, b"k", &[0xaa; 16]).unwrap();
    let mut h = <md5::Md5 as md5::Digest>::new();
    md5::Digest::update(&mut h, &b[..4]);
    md5::Digest::update(&mut h, [0u8; 16]);
    md5::Digest::update(&mut h, &b[20..]);
    md5::Digest::update(&mut h, b"k");
    let want: [u8; 16] = md5::Digest::finalize(h).into();
    assert_eq!(&b[4..20], &want);
    assert_eq!(verify(&b, b"k", &[0; 16], false), Ok(false));
}

#[test]
fn password_hiding_round_trips_all_lengths() {
    let auth = [3u8; 16];
    for n in 1..=128usize {
        let pw: Vec<u8> = (1..=n as u8).collect();
        let h = hide_password(&pw, b"secret", &auth);
        assert_eq!(h.len(), n.div_ceil(16) * 16);
        assert_eq!(unhide_password(&h, b"secret", &auth).unwrap(), pw);
    }
    assert!(unhide_password(&[0; 15], b"s", &auth).is_none());
    assert!(unhide_password(&[], b"s", &auth).is_none());
}

#[test]
fn vendor_attributes_in_both_starent_formats() {
    // SN-Proxy-MIP (2,2) as FreeRADIUS's default dictionary sends it.
    let a = AttrRepr::vendor(vendor::STARENT, vendor::SN_PROXY_MIP, &1u32.to_be_bytes());
    assert_eq!(
        a.value,
        [0, 0, 0x1f, 0xe4, 0, 52, 0, 8, 0, 0, 0, 1].to_vec()
    );
    // SN1-Proxy-MIP (1,1) of dictionary.starent.vsa1.
    let b = AttrRepr::vendor_in(
        VsaFormat::OneOne,
        vendor::STARENT,
        vendor::SN_PROXY_MIP,
        &1u32.to_be_bytes(),
    );
    for x in [&a, &b] {
        let (v, mut it) = x.as_raw().vendor().unwrap();
        assert_eq!(v, vendor::STARENT);
        let s = it.next().unwrap().unwrap();
        assert_eq!((s.ty, s.as_u32()), (vendor::SN_PROXY_MIP, Some(1)));
        assert!(it.next().is_none());
    }
    // Two sub-attributes in one VSA (RFC 2865 §5.26 allows it).
    let mut v = vendor::TGPP2.to_be_bytes().to_vec();
    v.extend_from_slice(&[7, 6, 10, 0, 0, 1, 7, 6, 10, 0, 0, 2]);
    let vsa = AttrRepr::new(VENDOR_SPECIFIC, &v);
    let (_, it) = vsa.as_raw().vendor().unwrap();
    let has: Vec<_> = it.map(|s| s.unwrap().as_ipv4().unwrap()).collect();
    assert_eq!(
        has,
        [
            "10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap(),
            "10.0.0.2".parse().unwrap()
        ]
    );
}

#[test]
fn malformed_vendor_attributes_end_in_an_error() {
    for bad in [
        &[0, 0, 0, 9, 1][..],       // sub-attribute header cut
        &[0, 0, 0, 9, 1, 1][..],    // length below its header
        &[0, 0, 0, 9, 1, 9, 0][..], // length past the end
    ] {
        let a = AttrRepr::new(VENDOR_SPECIFIC, bad);
        let (_, mut it) = a.as_raw().vendor().unwrap();
        assert!(matches!(
            it.next(),
            Some(Err(Error::BadVendorAttribute { .. }))
        ));
        assert!(it.next().is_none());
    }
    // Too short to name a vendor.
    assert!(AttrRepr::new(VENDOR_SPECIFIC, &[0, 0, 9])
        .as_raw()
        .vendor()
        .is_none());
}

#[test]
fn truncated_and_oversized_packets_are_refused() {
    let b = hex(EX71_ACCEPT);
    for n in 0..b.len() {
        assert!(Packet::new_checked(&b[..n]).is_err(), "prefix {n}");
    }
    // Padding past Length is ignored (RFC 2865 §3).
    let mut padded = b.clone();
    padded.extend_from_slice(&[0xff; 10]);
    let p = Packet::new_checked(&padded[..]).unwrap();
    assert_eq!(p.bytes(), &b[..]);
    // Length below the header or above 4096.
    let mut c = b.clone();
    c[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        Packet::new_checked(&c[..]).unwrap_err(),
        Error::BadLength(19)
    );
    let mut big = vec![0u8; 5000];
    big[..4].copy_from_slice(&[2, 0, 0x13, 0x88]);
    assert_eq!(
        Packet::new_checked(&big[..]).unwrap_err(),
        Error::BadLength(5000)
    );
    // An attribute of length 1, and one running past Length.
    let mut d = b.clone();
    d[21] = 1;
    assert!(matches!(
        Packet::new_checked(&d[..]),
        Err(Error::BadAttribute { ty: 6, offset: 20 })
    ));
    let mut e = b.clone();
    e[21] = 40;
    assert!(matches!(
        Packet::new_checked(&e[..]),
        Err(Error::BadAttribute { .. })
    ));
}

#[test]
fn emit_refuses_oversized_values() {
    let mut r = PacketRepr::new(Code::AccessRequest, 0);
    r.push(AttrRepr::new(USER_NAME, &[b'a'; 254]));
    assert_eq!(r.to_bytes(), Err(Error::TooLong));
    let mut r = PacketRepr::new(Code::AccessRequest, 0);
    for _ in 0..20 {
        r.push(AttrRepr::new(CLASS, &[0; 253]));
    }
    assert_eq!(r.to_bytes(), Err(Error::TooLong));
}

#[test]
fn ipv6_prefix_round_trip() {
    let p: std::net::Ipv6Addr = "2001:db8:f00d::".parse().unwrap();
    let a = AttrRepr::ipv6_prefix(FRAMED_IPV6_PREFIX, p, 48);
    assert_eq!(a.value.len(), 2 + 6);
    assert_eq!(parse_ipv6_prefix(&a.value), Some((p, 48)));
    assert_eq!(parse_ipv6_prefix(&[0, 129]), None);
    assert_eq!(parse_ipv6_prefix(&[0, 64, 1]), None);
}

#[test]
fn code_round_trip() {
    for v in 0..=255u8 {
        assert_eq!(u8::from(Code::from(v)), v);
    }
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        if let Ok(p) = Packet::new_checked(&data[..]) {
            let r = PacketRepr::parse(&p).unwrap();
            for a in p.attributes().flatten() {
                if let Some((_, it)) = a.vendor() { for _ in it {} }
            }
            let _ = verify(&data, b"s", &[0; 16], true);
            // What parses re-emits to the same bytes (up to Length).
            proptest::prop_assert_eq!(r.to_bytes().unwrap(), p.bytes().to_vec());
        }
    }
}
