//! ESP wire parsers: the header view and repr (parse, emit, parse back), the
//! trailer (pad length and padding check) and the inner UDP header over IPv4.
#![no_main]
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pmip_user::esp::packet::{emit_trailer, pad_len, parse_trailer};
use pmip_user::esp::udp::{UdpPacket, UdpRepr};
use pmip_user::esp::{EspPacket, EspRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = EspPacket::new_checked(data) {
        if let Ok(r) = EspRepr::parse(&p) {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut EspPacket::new_unchecked(&mut b[..]));
            assert_eq!(&b[..], &data[..r.buffer_len()]);
            assert_eq!(EspRepr::parse(&EspPacket::new_unchecked(&b[..])), Ok(r));
        }
    }
    if let Ok((len, nh)) = parse_trailer(data) {
        // What parses is the default padding: emitting it again gives the same bytes.
        let mut t = vec![0u8; data.len() - len];
        emit_trailer(&mut t, nh);
        assert_eq!(&t[..], &data[len..]);
        let _ = pad_len(len, 4);
    }
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    if let Ok(p) = UdpPacket::new_checked(data) {
        if let Ok(r) = UdpRepr::parse(&p, src, dst) {
            let mut b = vec![0u8; r.buffer_len(p.payload().len())];
            r.emit(
                &mut UdpPacket::new_unchecked(&mut b[..]),
                src,
                dst,
                p.payload(),
            );
            let q = UdpPacket::new_checked(&b[..]).expect("emitted datagram");
            assert_eq!(UdpRepr::parse(&q, src, dst), Ok(r));
            assert_eq!(q.payload(), p.payload());
        }
    }
});
