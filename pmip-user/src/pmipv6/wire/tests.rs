//! Byte-array tests (deconstruct, construct, parse, emit), malformed input,
//! and round-trip properties for the Mobility Header codecs.
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::message::FixedPart;
use super::option::{kind, MN_ID_SUBTYPE_NAI};
use super::*;

const NAI: &[u8] = b"mn0@example.com";

#[rustfmt::skip]
static PBU_BYTES: [u8; 112] = [
    0x3b, 13, 5, 0,   0x00, 0x00,             // proto 59, hdr len 13, BU, reserved, checksum
    0x12, 0x34,  0x82, 0x00,  0x03, 0x84,    // seq 0x1234, flags A|P, lifetime 900 (3600 s)
    // 12: MN-ID (NAI)
    0x08, 16, 0x01, b'm', b'n', b'0', b'@', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm',
    // 30: PadN(4) to put HNP at 8n+4
    0x01, 4, 0, 0, 0, 0,
    // 36: HNP /64 2001:db8:f00d:1::
    0x16, 18, 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0xf0, 0x0d, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
    // 56: HI = 1 (attachment over new interface)
    0x17, 2, 0, 1,
    // 60: ATT = 4 (802.11)
    0x18, 2, 0, 4,
    // 64: PadN(0), 66: LLID at 8n+2
    0x01, 0,
    0x19, 8, 0, 0, 0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4,
    // 76: PadN(4), 82: timestamp at 8n+2
    0x01, 4, 0, 0, 0, 0,
    0x1b, 8, 0x00, 0x00, 0x65, 0x00, 0x00, 0x01, 0x80, 0x00,
    // 92: GRE key 5 at 4n
    0x21, 6, 0, 0, 0, 0, 0, 5,
    // 100: IPv4 HoA request, prefix length 24, 0.0.0.0 = allocate
    0x24, 6, 24 << 2, 0, 0, 0, 0, 0,
    // 108: DHCP support mode S=1
    0x27, 2, 0, 1,
];

fn pbu_repr() -> Message {
    Message::BindingUpdate(BindingUpdate {
        seq: 0x1234,
        flags: bu_flags::A | bu_flags::P,
        lifetime: 900,
        options: vec![
            MobilityOption::MnId {
                subtype: MN_ID_SUBTYPE_NAI,
                id: NAI.to_vec(),
            },
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 64,
                prefix: "2001:db8:f00d:1::".parse().unwrap(),
            },
            MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
            MobilityOption::AccessTechType(AccessTechType::Ieee80211),
            MobilityOption::MnLinkLayerId(vec![0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4]),
            MobilityOption::Timestamp(0x0000_6500_0001_8000),
            MobilityOption::GreKey(Some(5)),
            MobilityOption::Ipv4HoaRequest {
                prefix_len: 24,
                addr: Ipv4Addr::UNSPECIFIED,
            },
            MobilityOption::Ipv4DhcpSupportMode { server: true },
        ],
    })
}

#[rustfmt::skip]
static PBA_BYTES: [u8; 72] = [
    0x3b, 8, 6, 0,   0x00, 0x00,
    0x00, 0x20,  0x12, 0x34,  0x03, 0x84,   // accepted, P, seq, lifetime 900
    0x08, 16, 0x01, b'm', b'n', b'0', b'@', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm',
    0x01, 2, 0, 0,                           // 30: PadN(2), 34: timestamp 8n+2
    0x1b, 8, 0x00, 0x00, 0x65, 0x00, 0x00, 0x01, 0x80, 0x00,
    0x21, 6, 0, 0, 0x00, 0x01, 0x00, 0x07,  // 44: GRE key 0x10007 (uplink)
    0x25, 6, 0, 24 << 2, 192, 0, 2, 1,      // 52: HoA reply success /24 192.0.2.1
    0x26, 6, 0, 0, 192, 0, 2, 254,          // 60: default router 192.0.2.254
    0x01, 2, 0, 0,                           // 68: PadN(2) to 72
];

fn pba_repr() -> Message {
    Message::BindingAck(BindingAck {
        status: BaStatus::ACCEPTED,
        flags: ba_flags::P,
        seq: 0x1234,
        lifetime: 900,
        options: vec![
            MobilityOption::MnId {
                subtype: 1,
                id: NAI.to_vec(),
            },
            MobilityOption::Timestamp(0x0000_6500_0001_8000),
            MobilityOption::GreKey(Some(0x10007)),
            MobilityOption::Ipv4HoaReply {
                status: 0,
                prefix_len: 24,
                addr: Ipv4Addr::new(192, 0, 2, 1),
            },
            MobilityOption::Ipv4DefaultRouter(Ipv4Addr::new(192, 0, 2, 254)),
        ],
    })
}

#[rustfmt::skip]
static HB_BYTES: [u8; 24] = [
    0x3b, 2, 13, 0,   0, 0,
    0x00, 0x02,  0x00, 0x00, 0x00, 0x07,     // U set, seq 7
    0x01, 0,                                  // 12: PadN(0), 14: restart counter at 4n+2
    0x1c, 4, 0, 0, 0, 42,
    0x01, 2, 0, 0,
];

fn hb_repr() -> Message {
    Message::Heartbeat(Heartbeat {
        unsolicited: true,
        response: false,
        seq: 7,
        options: vec![MobilityOption::RestartCounter(42)],
    })
}

#[rustfmt::skip]
static BRI_BYTES: [u8; 32] = [
    0x3b, 3, 16, 0,   0, 0,
    1, 2,  0x00, 0x09,  0x80, 0x00,          // BRI, trigger 2, seq 9, P
    0x08, 16, 0x01, b'm', b'n', b'0', b'@', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm',
    0x01, 0,
];

fn bri_repr() -> Message {
    Message::RevocationIndication(RevocationIndication {
        trigger: revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT,
        seq: 9,
        flags: br_flags::P,
        options: vec![MobilityOption::MnId {
            subtype: 1,
            id: NAI.to_vec(),
        }],
    })
}

#[rustfmt::skip]
static BRA_BYTES: [u8; 16] = [
    0x3b, 1, 16, 0,   0, 0,
    2, 0,  0x00, 0x09,  0x80, 0x00,          // BRA, success, seq 9, P
    0x01, 2, 0, 0,
];

fn bra_repr() -> Message {
    Message::RevocationAck(RevocationAck {
        status: 0,
        seq: 9,
        flags: br_flags::P,
        options: vec![],
    })
}

#[rustfmt::skip]
static BE_BYTES: [u8; 24] = [
    0x3b, 2, 7, 0,   0, 0,
    2, 0,                                    // unrecognized MH type
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn be_repr() -> Message {
    Message::BindingError(BindingError {
        status: be_status::UNRECOGNIZED_MH_TYPE,
        home_address: Ipv6Addr::UNSPECIFIED,
        options: vec![],
    })
}

fn cases() -> Vec<(&'static str, &'static [u8], Message)> {
    vec![
        ("pbu", &PBU_BYTES, pbu_repr()),
        ("pba", &PBA_BYTES, pba_repr()),
        ("heartbeat", &HB_BYTES, hb_repr()),
        ("bri", &BRI_BYTES, bri_repr()),
        ("bra", &BRA_BYTES, bra_repr()),
        ("binding error", &BE_BYTES, be_repr()),
    ]
}

#[test]
fn deconstruct_pbu() {
    let f = FixedPart::new_checked(&PBU_BYTES[..]).unwrap();
    assert_eq!(f.mh().payload_proto(), 59);
    assert_eq!(f.mh().mh_type(), MhType::BindingUpdate);
    assert_eq!(f.mh().total_len(), 112);
    assert_eq!(f.bu_seq(), 0x1234);
    assert_eq!(f.bu_flags(), bu_flags::A | bu_flags::P);
    assert_eq!(f.bu_lifetime(), 900);
    let kinds: Vec<u8> = OptionIter::new(f.options())
        .map(|o| o.unwrap().kind)
        .collect();
    assert_eq!(kinds, [8, 22, 23, 24, 25, 27, 33, 36, 39]);
}

#[test]
fn deconstruct_pba_heartbeat_revocation() {
    let f = FixedPart::new_checked(&PBA_BYTES[..]).unwrap();
    assert_eq!(f.ba_status(), BaStatus::ACCEPTED);
    assert_eq!(f.ba_flags(), ba_flags::P);
    assert_eq!((f.ba_seq(), f.ba_lifetime()), (0x1234, 900));
    let f = FixedPart::new_checked(&HB_BYTES[..]).unwrap();
    assert_eq!((f.hb_flags(), f.hb_seq()), (2, 7));
    let f = FixedPart::new_checked(&BRI_BYTES[..]).unwrap();
    assert_eq!(
        (
            f.br_type(),
            f.br_trigger_or_status(),
            f.br_seq(),
            f.br_flags()
        ),
        (1, 2, 9, 0x8000)
    );
    let f = FixedPart::new_checked(&BRA_BYTES[..]).unwrap();
    assert_eq!(
        (f.br_type(), f.br_trigger_or_status(), f.br_seq()),
        (2, 0, 9)
    );
}

#[test]
fn construct_header_fields() {
    let mut buf = [0xffu8; 16];
    let mut p = MhPacket::new_unchecked(&mut buf[..]);
    p.init(MhType::BindingAck, 16);
    p.set_checksum(0xbeef);
    assert_eq!(&buf[..6], &[0x3b, 1, 6, 0, 0xbe, 0xef]);
}

#[test]
fn parse_each_message() {
    for (name, bytes, repr) in cases() {
        assert_eq!(
            Message::parse(bytes, Checksum::None).unwrap(),
            repr,
            "{name}"
        );
    }
}

#[test]
fn emit_each_message() {
    for (name, bytes, repr) in cases() {
        assert_eq!(repr.buffer_len(), bytes.len(), "{name}");
        assert_eq!(repr.to_vec(Checksum::None).unwrap(), bytes, "{name}");
    }
}

/// Independent one's-complement sum, 32-bit words at a time.
fn reference_checksum(src: Ipv6Addr, dst: Ipv6Addr, mh: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(mh.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 135]);
    pseudo.extend_from_slice(mh);
    if pseudo.len() % 4 != 0 {
        pseudo.resize(pseudo.len() + 4 - pseudo.len() % 4, 0);
    }
    let mut s: u64 = pseudo
        .chunks(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .sum();
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    !(s as u16)
}

#[test]
fn checksum_matches_reference_and_verifies() {
    let src: Ipv6Addr = "2001:db8:cafe:1025::15".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:cafe:1024::101".parse().unwrap();
    for (name, bytes, repr) in cases() {
        let ck = Checksum::Ipv6 { src, dst };
        let out = repr.to_vec(ck).unwrap();
        let want = reference_checksum(src, dst, bytes);
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), want, "{name}");
        assert_eq!(&out[6..], &bytes[6..], "{name}");
        assert_eq!(Message::parse(&out, ck).unwrap(), repr, "{name}");
        // Another destination address fails the check.
        let other: Ipv6Addr = "2001:db8:cafe:1024::102".parse().unwrap();
        assert_eq!(
            Message::parse(&out, Checksum::Ipv6 { src, dst: other }),
            Err(Error::Checksum),
            "{name}"
        );
        let mut bad = out.clone();
        bad[7] ^= 0x01;
        assert_eq!(Message::parse(&bad, ck), Err(Error::Checksum), "{name}");
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for (name, bytes, _) in cases() {
        for n in 0..bytes.len() {
            assert!(
                Message::parse(&bytes[..n], Checksum::None).is_err(),
                "{name} cut at {n}"
            );
        }
    }
}

#[test]
fn trailing_bytes_beyond_header_len_are_ignored() {
    let mut v = BRA_BYTES.to_vec();
    v.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(Message::parse(&v, Checksum::None).unwrap(), bra_repr());
}

#[test]
fn header_len_too_small_for_message() {
    // A BU whose Header Len says 8 octets: the fixed part does not fit.
    let b = [0x3b, 0, 5, 0, 0, 0, 0, 1];
    assert_eq!(Message::parse(&b, Checksum::None), Err(Error::Truncated));
    // Binding Error needs 24 octets.
    let mut be = BE_BYTES;
    be[1] = 1;
    assert_eq!(
        Message::parse(&be[..16], Checksum::None),
        Err(Error::Truncated)
    );
}

#[test]
fn option_length_overrun_is_malformed() {
    let mut b = BRI_BYTES;
    b[13] = 40; // MN-ID claims 40 octets, 20 remain
    assert!(matches!(
        Message::parse(&b, Checksum::None),
        Err(Error::Malformed(_))
    ));
    let mut b = BRA_BYTES;
    b[13] = 3; // PadN overruns by one
    assert!(matches!(
        Message::parse(&b, Checksum::None),
        Err(Error::Malformed(_))
    ));
    let mut b = BRA_BYTES;
    b[12] = 22; // HNP with only 2 octets of data
    assert!(matches!(
        Message::parse(&b, Checksum::None),
        Err(Error::Malformed(_))
    ));
    // Option type with no room for its length octet.
    let mut b = BRI_BYTES;
    b[30] = 0x00;
    b[31] = 0x05;
    assert_eq!(Message::parse(&b, Checksum::None), Err(Error::Truncated));
}

#[test]
fn wrong_payload_proto_and_unknown_types() {
    let mut b = HB_BYTES;
    b[0] = 6;
    assert!(matches!(
        Message::parse(&b, Checksum::None),
        Err(Error::Malformed(_))
    ));
    let mut b = HB_BYTES;
    b[2] = 99;
    assert_eq!(
        Message::parse(&b, Checksum::None),
        Err(Error::UnknownType(99))
    );
    let mut b = BRI_BYTES;
    b[6] = 3; // unknown B.R. type
    assert!(matches!(
        Message::parse(&b, Checksum::None),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn unknown_option_is_carried_and_skipped() {
    let mut b = BRI_BYTES;
    b[12] = 200; // MN-ID becomes an unknown type 200
    let Message::RevocationIndication(m) = Message::parse(&b, Checksum::None).unwrap() else {
        panic!()
    };
    assert_eq!(
        m.options,
        vec![MobilityOption::Unknown {
            kind: 200,
            data: BRI_BYTES[14..30].to_vec()
        }]
    );
    assert_eq!(m.mn_id(), None);
    // And it is emitted back as it came.
    assert_eq!(
        Message::RevocationIndication(m)
            .to_vec(Checksum::None)
            .unwrap(),
        b
    );
}

#[test]
fn gre_key_without_key_and_bad_lengths() {
    let m = Message::RevocationAck(RevocationAck {
        status: 0,
        seq: 1,
        flags: 0,
        options: vec![MobilityOption::GreKey(None)],
    });
    let v = m.to_vec(Checksum::None).unwrap();
    assert_eq!(&v[12..16], &[kind::GRE_KEY, 2, 0, 0]);
    assert_eq!(Message::parse(&v, Checksum::None).unwrap(), m);
}

#[test]
fn emit_rejects_oversize() {
    let m = Message::BindingUpdate(BindingUpdate {
        seq: 0,
        flags: 0,
        lifetime: 0,
        options: vec![MobilityOption::MnId {
            subtype: 1,
            id: vec![b'a'; 300],
        }],
    });
    assert!(m.to_vec(Checksum::None).is_err());
    let many = Message::BindingUpdate(BindingUpdate {
        seq: 0,
        flags: 0,
        lifetime: 0,
        options: vec![MobilityOption::ServiceSelection(vec![b'x'; 250]); 9],
    });
    assert!(many.to_vec(Checksum::None).is_err());
    let mut small = [0u8; 8];
    assert_eq!(
        bra_repr().emit(&mut small, Checksum::None),
        Err(Error::BufferTooSmall)
    );
}

fn arb_option() -> impl Strategy<Value = MobilityOption> + Clone {
    let v6 = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    prop_oneof![
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(subtype, id)| MobilityOption::MnId { subtype, id }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(MobilityOption::ServiceSelection),
        (0u8..=128, v6.clone()).prop_map(|(prefix_len, prefix)| {
            MobilityOption::HomeNetworkPrefix { prefix_len, prefix }
        }),
        any::<u8>().prop_map(|v| MobilityOption::HandoffIndicator(v.into())),
        any::<u8>().prop_map(|v| MobilityOption::AccessTechType(v.into())),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(MobilityOption::MnLinkLayerId),
        v6.prop_map(MobilityOption::LinkLocalAddress),
        any::<u64>().prop_map(MobilityOption::Timestamp),
        any::<u32>().prop_map(MobilityOption::RestartCounter),
        v4.clone().prop_map(MobilityOption::Ipv4CareOfAddress),
        any::<Option<u32>>().prop_map(MobilityOption::GreKey),
        (0u8..64, v4.clone())
            .prop_map(|(prefix_len, addr)| MobilityOption::Ipv4HoaRequest { prefix_len, addr }),
        (any::<u8>(), 0u8..64, v4.clone()).prop_map(|(status, prefix_len, addr)| {
            MobilityOption::Ipv4HoaReply {
                status,
                prefix_len,
                addr,
            }
        }),
        v4.prop_map(MobilityOption::Ipv4DefaultRouter),
        any::<bool>().prop_map(|server| MobilityOption::Ipv4DhcpSupportMode { server }),
        // Unknown types, avoiding the ones we parse (and Pad1/PadN).
        (40u8..=255, prop::collection::vec(any::<u8>(), 0..30))
            .prop_map(|(kind, data)| MobilityOption::Unknown { kind, data }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let opts = prop::collection::vec(arb_option(), 0..12);
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u16>(), opts.clone()).prop_map(
            |(seq, flags, lifetime, options)| Message::BindingUpdate(BindingUpdate {
                seq,
                flags,
                lifetime,
                options
            })
        ),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            opts.clone()
        )
            .prop_map(|(s, flags, seq, lifetime, options)| {
                Message::BindingAck(BindingAck {
                    status: BaStatus(s),
                    flags,
                    seq,
                    lifetime,
                    options,
                })
            }),
        (any::<bool>(), any::<bool>(), any::<u32>(), opts.clone()).prop_map(
            |(unsolicited, response, seq, options)| Message::Heartbeat(Heartbeat {
                unsolicited,
                response,
                seq,
                options
            })
        ),
        (any::<u8>(), any::<u16>(), any::<u16>(), opts.clone()).prop_map(
            |(trigger, seq, flags, options)| {
                Message::RevocationIndication(RevocationIndication {
                    trigger,
                    seq,
                    flags,
                    options,
                })
            }
        ),
        (any::<u8>(), any::<u16>(), any::<u16>(), opts.clone()).prop_map(
            |(status, seq, flags, options)| Message::RevocationAck(RevocationAck {
                status,
                seq,
                flags,
                options
            })
        ),
        (any::<u8>(), any::<[u8; 16]>(), opts).prop_map(|(status, a, options)| {
            Message::BindingError(BindingError {
                status,
                home_address: Ipv6Addr::from(a),
                options,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn round_trip(m in arb_message(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>()) {
        let ck = Checksum::Ipv6 { src: src.into(), dst: dst.into() };
        let bytes = m.to_vec(ck).unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(Message::parse(&bytes, ck).unwrap(), m.clone());
        // Every option sits on its alignment.
        let start = if matches!(m, Message::BindingError(_)) { 24 } else { 12 };
        let mut pos = start;
        let mut seen = 0;
        while pos < bytes.len() {
            match bytes[pos] {
                0 => pos += 1,
                1 => pos += 2 + bytes[pos + 1] as usize,
                _ => {
                    let (x, y) = m.options()[seen].alignment();
                    prop_assert_eq!(pos % x, y % x);
                    seen += 1;
                    pos += 2 + bytes[pos + 1] as usize;
                }
            }
        }
        prop_assert_eq!(seen, m.options().len());
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::parse(&bytes, Checksum::None);
        let _ = Message::parse(&bytes, Checksum::Ipv6 { src: Ipv6Addr::LOCALHOST, dst: Ipv6Addr::LOCALHOST });
        for raw in OptionIter::new(&bytes).flatten() {
            let _ = MobilityOption::parse(raw);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(m in arb_message(), at in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = m.to_vec(Checksum::None).unwrap();
        let i = at % bytes.len();
        bytes[i] = val;
        let n = cut % (bytes.len() + 1);
        let _ = Message::parse(&bytes[..n], Checksum::None);
        let _ = Message::parse(&bytes, Checksum::None);
    }
}
