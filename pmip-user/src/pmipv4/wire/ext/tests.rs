use super::*;
use proptest::prelude::*;

fn one(bytes: &[u8]) -> Result<ExtRepr> {
    let raw = ExtIter::new(bytes, 0).next().expect("one extension")?;
    ExtRepr::parse(&raw)
}

fn round(e: &ExtRepr, bytes: &[u8]) {
    assert_eq!(e.buffer_len(), bytes.len());
    let mut b = vec![0u8; e.buffer_len()];
    assert_eq!(e.emit(&mut b), bytes.len());
    assert_eq!(b, bytes, "emit {e:?}");
    assert_eq!(&one(bytes).unwrap(), e, "parse");
}

#[test]
fn nai_bytes() {
    round(&ExtRepr::Nai(b"a@b".to_vec()), &[131, 3, b'a', b'@', b'b']);
}

#[test]
fn fa_ha_auth_bytes() {
    let mut bytes = vec![34, 20, 0, 0, 1, 0];
    bytes.extend_from_slice(&[0xAA; 16]);
    round(
        &ExtRepr::Auth {
            kind: AuthKind::FaHa,
            spi: 256,
            authenticator: vec![0xAA; 16],
        },
        &bytes,
    );
}

#[test]
fn per_node_auth_method_bytes() {
    // Long format: type 47, sub-type 1, length 1 (16 bits), method 1 = FA-HA.
    round(
        &ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
        &[47, 1, 0, 1, 1],
    );
}

#[test]
fn pmipv4_skippable_bytes() {
    round(
        &ExtRepr::InterfaceId(b"eth1".to_vec()),
        &[147, 5, 1, b'e', b't', b'h', b'1'],
    );
    round(
        &ExtRepr::DeviceId {
            id_type: 1,
            id: vec![2, 0, 0, 0, 0, 1],
        },
        &[147, 8, 2, 1, 2, 0, 0, 0, 0, 1],
    );
    round(
        &ExtRepr::SubscriberId {
            id_type: 1,
            id: b"00101".to_vec(),
        },
        &[147, 7, 3, 1, b'0', b'0', b'1', b'0', b'1'],
    );
    round(
        &ExtRepr::AccessTechnology(AccessTech::Eutran),
        &[147, 2, 4, 5],
    );
}

#[test]
fn gre_key_bytes() {
    // RFC 6245 §3.1, long format: Type 48, Sub-Type 0, Length 4 (16 bits), GRE Key.
    round(&ExtRepr::GreKey(0x01020304), &[48, 0, 0, 4, 1, 2, 3, 4]);
    assert_eq!(
        one(&[48, 0, 0, 2, 1, 2]),
        Err(Error::BadLength {
            ext_type: 48,
            len: 2
        })
    );
    // An unknown sub-type of a non-skippable type must be refused by the HA.
    let e = one(&[48, 7, 0, 4, 1, 2, 3, 4]).unwrap();
    assert!(e.is_unknown_nonskippable());
}

#[test]
fn revocation_support_bytes() {
    round(
        &ExtRepr::RevocationSupport {
            i_bit: true,
            timestamp: 0x11223344,
        },
        &[137, 6, 0x80, 0, 0x11, 0x22, 0x33, 0x44],
    );
}

#[test]
fn dynamic_ha_bytes() {
    round(
        &ExtRepr::DynamicHa {
            subtype: 1,
            ha: Ipv4Addr::new(10, 0, 0, 1),
        },
        &[139, 5, 1, 10, 0, 0, 1],
    );
}

/// RFC 4433 §3.4's figure (long format: Type, Sub-type, Length 4) is read
/// too, and what follows it is framed right; a short one of another length
/// and a long one of another length are refused.
#[test]
fn dynamic_ha_in_the_long_format_of_the_rfc_figure() {
    let bytes = [139, 2, 0, 4, 192, 0, 2, 7, 131, 1, b'x'];
    let v = parse_all(&bytes, 24).unwrap();
    assert_eq!(
        v,
        vec![
            ExtRepr::DynamicHa {
                subtype: 2,
                ha: Ipv4Addr::new(192, 0, 2, 7),
            },
            ExtRepr::Nai(b"x".to_vec()),
        ]
    );
    assert!(one(&[139, 4, 1, 10, 0, 0]).is_err());
    assert!(one(&[139, 1, 0, 5, 10, 0, 0, 1, 0]).is_err());
}

#[test]
fn unknown_types_are_yielded_not_errors() {
    let bytes = [200, 2, 9, 9, 100, 1, 7, 47, 9, 0, 1, 5];
    let v = parse_all(&bytes, 24).unwrap();
    assert_eq!(
        v,
        vec![
            ExtRepr::Unknown {
                ty: 200,
                data: vec![9, 9]
            },
            ExtRepr::Unknown {
                ty: 100,
                data: vec![7]
            },
            ExtRepr::UnknownLong {
                ty: 47,
                subtype: 9,
                data: vec![5]
            },
        ]
    );
    assert!(!v[0].is_unknown_nonskippable());
    assert!(v[1].is_unknown_nonskippable());
    assert!(v[2].is_unknown_nonskippable());
    assert_eq!(v.first_unknown_nonskippable(), Some(100));
    let raws: Vec<_> = ExtIter::new(&bytes, 24)
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(raws, vec![24, 28, 31]);
}

#[test]
fn truncated_and_overrunning() {
    assert_eq!(parse_all(&[131], 0), Err(Error::Truncated));
    assert_eq!(parse_all(&[47, 1, 0], 0), Err(Error::Truncated));
    assert_eq!(
        parse_all(&[131, 5, b'a'], 0),
        Err(Error::Overrun {
            ext_type: 131,
            offset: 0
        })
    );
    assert_eq!(
        parse_all(&[131, 1, b'a', 47, 1, 0xff, 0xff, 1], 10),
        Err(Error::Overrun {
            ext_type: 47,
            offset: 13
        })
    );
    assert!(matches!(
        parse_all(&[34, 3, 0, 0, 0], 0),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        parse_all(&[147, 0], 0),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        parse_all(&[147, 1, 2], 0),
        Err(Error::BadLength { .. })
    ));
    // An Access Technology Type of two bytes: skipped as an unknown
    // skippable extension (RFC 5944 §1.8), not a reason to drop the message.
    assert!(matches!(
        parse_all(&[147, 3, 4, 1, 1], 0).as_deref(),
        Ok([ExtRepr::UnknownSkippablePmip { subtype: 4, .. }])
    ));
    // A Revocation Support extension longer than 6 (RFC 3543 §3.2 leaves
    // room for more bits): read.
    assert!(matches!(
        parse_all(&[137, 8, 0x80, 0, 0, 0, 0, 9, 0xff, 0xff], 0).as_deref(),
        Ok([ExtRepr::RevocationSupport {
            i_bit: true,
            timestamp: 9
        }])
    ));
    assert!(matches!(
        parse_all(&[131, 0], 0),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        parse_all(&[47, 1, 0, 2, 1, 1], 0),
        Err(Error::BadLength { .. })
    ));
}

pub(crate) fn arb_ext() -> impl Strategy<Value = ExtRepr> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..60).prop_map(ExtRepr::Nai),
        (0..3u8, any::<u32>(), bytes(40)).prop_map(|(k, spi, a)| ExtRepr::Auth {
            kind: [AuthKind::MnHa, AuthKind::MnFa, AuthKind::FaHa][k as usize],
            spi,
            authenticator: a
        }),
        any::<u8>().prop_map(|m| ExtRepr::PerNodeAuthMethod(m.into())),
        bytes(30).prop_map(ExtRepr::InterfaceId),
        (any::<u8>(), bytes(30)).prop_map(|(t, id)| ExtRepr::DeviceId { id_type: t, id }),
        (any::<u8>(), bytes(30)).prop_map(|(t, id)| ExtRepr::SubscriberId { id_type: t, id }),
        any::<u8>().prop_map(|t| ExtRepr::AccessTechnology(t.into())),
        any::<u32>().prop_map(ExtRepr::GreKey),
        (any::<bool>(), any::<u32>()).prop_map(|(i, t)| ExtRepr::RevocationSupport {
            i_bit: i,
            timestamp: t
        }),
        (any::<u8>(), any::<[u8; 4]>()).prop_map(|(s, a)| ExtRepr::DynamicHa {
            subtype: s,
            ha: a.into()
        }),
        (any::<u8>(), bytes(300)).prop_map(|(s, d)| ExtRepr::UnknownLong {
            ty: 36,
            subtype: s,
            data: d
        }),
        (5..=255u8, bytes(30)).prop_map(|(s, d)| ExtRepr::UnknownSkippablePmip {
            subtype: s,
            data: d
        }),
        (any::<u8>(), bytes(30)).prop_map(|(t, d)| ExtRepr::Unknown { ty: t, data: d }),
    ]
    .prop_filter("emittable", |e| e.is_emittable())
}

proptest! {
    #[test]
    fn ext_round_trip(exts in proptest::collection::vec(arb_ext(), 0..8)) {
        let mut b = vec![0u8; buffer_len(&exts)];
        prop_assert_eq!(emit_all(&exts, &mut b), b.len());
        prop_assert_eq!(parse_all(&b, 0).unwrap(), exts);
    }

    #[test]
    fn ext_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_all(&b, 0);
    }
}

/// RFC 5944 §1.8: a type-0 octet is One-byte Padding, with no Length: it
/// is skipped wherever it stands, alone or in a run, and the extensions
/// around it are read as if it were not there.
#[test]
fn one_byte_padding_is_skipped() {
    let mut bytes = vec![0, 131, 3, b'a', b'@', b'b', 0, 0];
    let mut auth = vec![34, 20, 0, 0, 1, 0];
    auth.extend_from_slice(&[0xAA; 16]);
    bytes.extend_from_slice(&auth);
    bytes.push(0);
    let exts: Vec<RawExt> = ExtIter::new(&bytes, 0)
        .collect::<Result<_>>()
        .expect("padding is no error");
    assert_eq!(exts.len(), 2, "{exts:?}");
    assert_eq!(
        (exts[0].ty, exts[0].offset, exts[0].data),
        (131, 1, &b"a@b"[..])
    );
    assert_eq!((exts[1].ty, exts[1].offset), (34, 8));
    // Padding alone is an empty extension area.
    assert_eq!(ExtIter::new(&[0, 0, 0], 0).count(), 0);
}
