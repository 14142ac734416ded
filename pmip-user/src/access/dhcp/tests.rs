//! Byte-level tests of the DHCP server. Client messages are built by hand here
//! (not with dhcproto) and replies are checked byte by byte, so the codec is
//! tested against an independent reading of RFC 2131 §2 / RFC 2132.
#![allow(clippy::too_many_lines)] // test scenarios, not production code
use super::*;
use crate::access::frame;

const MAC: [u8; 6] = [0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
const SID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const HOME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn server() -> DhcpServer {
    DhcpServer::new(DhcpServerConfig::new(7, 0, SID))
}

fn binding() -> BindingInfo {
    BindingInfo {
        home: HOME,
        prefix_len: 24,
        router: SID,
        lifetime: Duration::from_secs(3600),
        dns: vec![
            Ipv4Addr::new(198, 51, 100, 250),
            Ipv4Addr::new(198, 51, 100, 251),
        ],
        mtu: Some(1476),
    }
}

#[derive(Default, Clone)]
struct Req {
    kind: u8,
    xid: u32,
    flags: u16,
    ciaddr: [u8; 4],
    giaddr: [u8; 4],
    requested: Option<[u8; 4]>,
    server_id: Option<[u8; 4]>,
    client_id: Option<Vec<u8>>,
}

fn req(kind: u8) -> Req {
    Req {
        kind,
        xid: 0x1234_5678,
        ..Default::default()
    }
}

/// RFC 2131 §2 figure 1 layout, written out field by field.
fn bytes(r: &Req) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 0]; // op BOOTREQUEST, htype Ethernet, hlen 6, hops
    b.extend_from_slice(&r.xid.to_be_bytes());
    b.extend_from_slice(&[0, 0]); // secs
    b.extend_from_slice(&r.flags.to_be_bytes());
    b.extend_from_slice(&r.ciaddr);
    b.extend_from_slice(&[0; 4]); // yiaddr
    b.extend_from_slice(&[0; 4]); // siaddr
    b.extend_from_slice(&r.giaddr);
    b.extend_from_slice(&MAC);
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0; 64 + 128]); // sname, file
    assert_eq!(b.len(), 236);
    b.extend_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, r.kind]);
    if let Some(a) = r.requested {
        b.extend_from_slice(&[50, 4]);
        b.extend_from_slice(&a);
    }
    if let Some(a) = r.server_id {
        b.extend_from_slice(&[54, 4]);
        b.extend_from_slice(&a);
    }
    if let Some(id) = &r.client_id {
        b.push(61);
        b.push(id.len() as u8);
        b.extend_from_slice(id);
    }
    b.extend_from_slice(&[55, 4, 1, 3, 6, 26]); // parameter request list
    b.push(255);
    b
}

/// Independent TLV walk of a reply's options (RFC 2132 §2).
fn opts(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 240;
    while i < p.len() {
        match p[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = p[i + 1] as usize;
                out.push((code, p[i + 2..i + 2 + len].to_vec()));
                i += 2 + len;
            }
        }
    }
    out
}

fn opt(p: &[u8], code: u8) -> Option<Vec<u8>> {
    opts(p)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v)
}

fn ip(a: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(a[0], a[1], a[2], a[3])
}

fn u32_of(v: Vec<u8>) -> u32 {
    u32::from_be_bytes(v.try_into().unwrap())
}

fn attach(s: &mut DhcpServer, now: Instant) -> Transmit {
    s.handle(now, &bytes(&req(1))).unwrap();
    assert!(
        s.poll_transmit().is_none(),
        "no OFFER before the registration"
    );
    assert!(matches!(s.poll_event(), Some(Event::AttachRequest { .. })));
    s.binding_ready(now, MAC, binding());
    s.poll_transmit().expect("OFFER")
}

fn select(s: &mut DhcpServer, now: Instant) -> Transmit {
    let mut r = req(3);
    r.requested = Some(HOME.octets());
    r.server_id = Some(SID.octets());
    s.handle(now, &bytes(&r)).unwrap();
    s.poll_transmit().expect("ACK")
}

#[test]
fn discover_triggers_attach_and_offer_bytes() {
    let now = Instant::now();
    let mut s = server();
    let mut r = req(1);
    r.client_id = Some(b"\x01mn0@example.com".to_vec());
    s.handle(now, &bytes(&r)).unwrap();
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        s.poll_event(),
        Some(Event::AttachRequest {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MAC
            },
            client_id: Some(b"\x01mn0@example.com".to_vec()),
            requested: None,
        })
    );
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.client_id(&MAC), Some(&b"\x01mn0@example.com"[..]));
    s.binding_ready(now, MAC, binding());
    let t = s.poll_transmit().unwrap();
    // Broadcast bit clear, no ciaddr: unicast to yiaddr at chaddr (§4.1).
    assert_eq!(t.dst, ReplyDest::Unicast { ip: HOME, mac: MAC });
    let p = &t.payload;
    assert!(p.len() >= 300);
    assert_eq!(&p[0..4], &[2, 1, 6, 0]); // BOOTREPLY, Ethernet, hlen 6, hops 0
    assert_eq!(&p[4..8], &0x1234_5678u32.to_be_bytes()); // xid echoed
    assert_eq!(&p[10..12], &[0, 0]); // flags
    assert_eq!(&p[12..16], &[0; 4]); // ciaddr
    assert_eq!(ip(&p[16..20]), HOME); // yiaddr
    assert_eq!(&p[24..28], &[0; 4]); // giaddr
    assert_eq!(&p[28..34], &MAC);
    assert_eq!(&p[236..240], &[99, 130, 83, 99]);
    assert_eq!(opt(p, 53), Some(vec![2])); // DHCPOFFER
    assert_eq!(opt(p, 54), Some(SID.octets().to_vec()));
    assert_eq!(opt(p, 51).map(u32_of), Some(3600));
    assert_eq!(opt(p, 58).map(u32_of), Some(1800));
    assert_eq!(opt(p, 59).map(u32_of), Some(3150));
    assert_eq!(opt(p, 1), Some(vec![255, 255, 255, 0]));
    assert_eq!(opt(p, 3), Some(SID.octets().to_vec()));
    assert_eq!(opt(p, 6), Some(vec![198, 51, 100, 250, 198, 51, 100, 251]));
    assert_eq!(opt(p, 26), Some(1476u16.to_be_bytes().to_vec()));
    assert_eq!(opt(p, 61), Some(b"\x01mn0@example.com".to_vec()));
    assert_eq!(s.stats.offers, 1);
}

#[test]
fn broadcast_flag_and_relay_pick_the_destination() {
    let now = Instant::now();
    let mut s = server();
    let mut r = req(1);
    r.flags = 0x8000;
    s.handle(now, &bytes(&r)).unwrap();
    s.binding_ready(now, MAC, binding());
    let t = s.poll_transmit().unwrap();
    assert_eq!(t.dst, ReplyDest::Broadcast);
    assert_eq!(&t.payload[10..12], &[0x80, 0]); // flags echoed
    let mut r = req(1);
    r.giaddr = [198, 51, 100, 1];
    s.handle(now, &bytes(&r)).unwrap();
    let t = s.poll_transmit().unwrap();
    assert_eq!(t.dst, ReplyDest::Relay(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(&t.payload[24..28], &[198, 51, 100, 1]);
}

#[test]
fn select_renew_rebind_are_acked_locally() {
    let t0 = Instant::now();
    let mut s = server();
    attach(&mut s, t0);
    let ack = select(&mut s, t0);
    assert_eq!(opt(&ack.payload, 53), Some(vec![5]));
    assert_eq!(ip(&ack.payload[16..20]), HOME);
    assert_eq!(ack.dst, ReplyDest::Unicast { ip: HOME, mac: MAC });
    assert_eq!(s.lease_end(&MAC), Some(t0 + Duration::from_secs(3600)));
    // RENEWING at T1: unicast, ciaddr set, no server id / requested address.
    let t1 = t0 + Duration::from_secs(1800);
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(t1, &bytes(&r)).unwrap();
    let ack = s.poll_transmit().unwrap();
    assert_eq!(opt(&ack.payload, 53), Some(vec![5]));
    assert_eq!(ack.dst, ReplyDest::Unicast { ip: HOME, mac: MAC });
    assert_eq!(&ack.payload[12..16], &HOME.octets()); // ciaddr copied
    assert_eq!(s.lease_end(&MAC), Some(t1 + Duration::from_secs(3600)));
    // REBINDING (broadcast, same content) is answered too.
    r.flags = 0x8000;
    s.handle(t1, &bytes(&r)).unwrap();
    assert_eq!(opt(&s.poll_transmit().unwrap().payload, 53), Some(vec![5]));
    // Nothing went to the registration side.
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.stats.acks, 3);
}

#[test]
fn wrong_address_is_naked_broadcast() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    let mut r = req(3);
    r.requested = Some([192, 0, 2, 99]);
    r.server_id = Some(SID.octets());
    s.handle(now, &bytes(&r)).unwrap();
    let t = s.poll_transmit().unwrap();
    assert_eq!(t.dst, ReplyDest::Broadcast);
    assert_eq!(opt(&t.payload, 53), Some(vec![6]));
    assert_eq!(&t.payload[16..20], &[0; 4]); // no yiaddr in a NAK
    assert_eq!(opt(&t.payload, 51), None);
    assert_eq!(opt(&t.payload, 54), Some(SID.octets().to_vec()));
    assert_eq!(s.stats.naks, 1);
}

#[test]
fn another_servers_offer_taken_abandons_attach() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    let mut r = req(3);
    r.requested = Some(HOME.octets());
    r.server_id = Some([192, 0, 2, 253]);
    assert_eq!(s.handle(now, &bytes(&r)), Err(Reject::Ignored));
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        s.poll_event(),
        Some(Event::Detach {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MAC
            },
            reason: DetachReason::Abandoned
        })
    );
}

#[test]
fn unknown_client_request_registers_then_ack_or_nak() {
    let now = Instant::now();
    // INIT-REBOOT after a handover: no server id, option 50.
    for (home, want) in [(HOME, 5u8), (Ipv4Addr::new(192, 0, 2, 77), 6u8)] {
        let mut s = server();
        let mut r = req(3);
        r.requested = Some(HOME.octets());
        s.handle(now, &bytes(&r)).unwrap();
        assert_eq!(s.poll_transmit(), None);
        assert!(
            matches!(s.poll_event(), Some(Event::AttachRequest { requested: Some(a), .. }) if a == HOME)
        );
        s.binding_ready(now, MAC, BindingInfo { home, ..binding() });
        assert_eq!(
            opt(&s.poll_transmit().unwrap().payload, 53),
            Some(vec![want])
        );
    }
    // Registration refused (the address is not the client's): NAK.
    let mut s = server();
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(now, &bytes(&r)).unwrap();
    s.binding_failed(MAC, true);
    let t = s.poll_transmit().unwrap();
    assert_eq!(opt(&t.payload, 53), Some(vec![6]));
    assert_eq!(s.clients().count(), 0);
    // Not registered for another reason (no answer, the admission's
    // back-off): silence (RFC 2131 §4.3.2: no record of the client, "it
    // MUST remain silent"): the renewing client keeps its address and
    // asks again.
    let mut s = server();
    s.handle(now, &bytes(&r)).unwrap();
    s.binding_failed(MAC, false);
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.clients().count(), 0);
    while s.poll_event().is_some() {}
    s.handle(now, &bytes(&r)).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::AttachRequest { .. })));
}

#[test]
fn release_detaches() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    select(&mut s, now);
    let mut r = req(7);
    r.ciaddr = [192, 0, 2, 55]; // not its address: ignored
    r.server_id = Some(SID.octets());
    assert_eq!(s.handle(now, &bytes(&r)), Err(Reject::Ignored));
    assert_eq!(s.poll_event(), None);
    r.ciaddr = HOME.octets();
    s.handle(now, &bytes(&r)).unwrap();
    assert_eq!(s.poll_transmit(), None, "no reply to a RELEASE");
    assert_eq!(
        s.poll_event(),
        Some(Event::Detach {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MAC
            },
            reason: DetachReason::Release
        })
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn decline_detaches() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    let mut r = req(4);
    r.requested = Some(HOME.octets());
    r.server_id = Some(SID.octets());
    s.handle(now, &bytes(&r)).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Detach {
            reason: DetachReason::Decline,
            ..
        })
    ));
    assert_eq!(s.stats.declines, 1);
}

#[test]
fn lease_expiry_detaches_and_renew_extends() {
    let t0 = Instant::now();
    let mut s = server();
    attach(&mut s, t0);
    select(&mut s, t0);
    let end = t0 + Duration::from_secs(3600) + s.config().lease_grace;
    assert_eq!(s.poll_timeout(), Some(end));
    s.handle_timeout(end - Duration::from_millis(1));
    assert_eq!(s.poll_event(), None);
    // A renewal pushes the deadline.
    let t1 = t0 + Duration::from_secs(1800);
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(t1, &bytes(&r)).unwrap();
    s.poll_transmit().unwrap();
    s.handle_timeout(end);
    assert_eq!(s.poll_event(), None);
    let end2 = t1 + Duration::from_secs(3600) + s.config().lease_grace;
    assert_eq!(s.poll_timeout(), Some(end2));
    s.handle_timeout(end2);
    assert!(lease_expired(s.poll_event()));
    assert_eq!(s.stats.lease_expired, 1);
    // A later RENEW is from an unknown client again: a new registration.
    s.handle(end2, &bytes(&r)).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::AttachRequest { .. })));
}

/// A server (holding leases of sending subscribers or not) whose client
/// has a lease from `t0`.
fn leased(t0: Instant, hold: bool) -> DhcpServer {
    let mut s = server();
    s.set_hold_while_sending(hold);
    attach(&mut s, t0);
    select(&mut s, t0);
    s
}

fn lease_expired(e: Option<Event>) -> bool {
    matches!(
        e,
        Some(Event::Detach {
            reason: DetachReason::LeaseExpired,
            ..
        })
    )
}

/// `hold_while_sending` (dhcp/hold.rs): the uplink count is read at the
/// lease end and at the grace's end; a count that grew keeps the lease.
#[test]
fn lease_held_while_the_subscriber_sends() {
    let t0 = Instant::now();
    let mut s = leased(t0, true);
    let life = Duration::from_secs(3600);
    let end = t0 + life;
    let grace = s.config().lease_grace;
    // The timer comes at the lease end itself, to read the count.
    assert_eq!(s.poll_timeout(), Some(end));
    s.handle_timeout_with(end, &|at| (at.mac == MAC && at.ifindex == 7).then_some(10));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), Some(end + grace));
    s.handle_timeout_with(end + grace, &|_| Some(15));
    assert_eq!(s.poll_event(), None, "a sending subscriber keeps its lease");
    assert_eq!(s.stats.leases_held, 1);
    assert_eq!(s.stats.lease_expired, 0);
    assert_eq!(s.lease_end(&MAC), Some(end + grace + life));
    // Its late renewal is answered from the held lease, no registration.
    let t1 = end + grace + Duration::from_secs(1);
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(t1, &bytes(&r)).unwrap();
    assert!(s.poll_transmit().is_some(), "ACK");
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.lease_end(&MAC), Some(t1 + life));
    // Then silent over the next grace: the lease ends.
    let end2 = t1 + life;
    assert_eq!(s.poll_timeout(), Some(end2));
    s.handle_timeout_with(end2, &|_| Some(40));
    s.handle_timeout_with(end2 + grace, &|_| Some(40));
    assert!(lease_expired(s.poll_event()));
    assert_eq!(s.stats.leases_held, 1);
    assert_eq!(s.stats.lease_expired, 1);
}

/// A count that cannot be read (no fast-path entry), or a server without
/// holding, ends the lease at the grace's end as before.
#[test]
fn lease_not_held_without_a_count() {
    for hold in [true, false] {
        let t0 = Instant::now();
        let mut s = leased(t0, hold);
        let end = t0 + Duration::from_secs(3600);
        let grace = s.config().lease_grace;
        let count = |n: Option<u64>| move |_: &AccessPoint| n;
        s.handle_timeout_with(end, &count(if hold { None } else { Some(1) }));
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.poll_timeout(), Some(end + grace));
        s.handle_timeout_with(end + grace, &count(Some(9)));
        assert!(lease_expired(s.poll_event()), "hold {hold}");
        assert_eq!(s.stats.leases_held, 0);
    }
}

/// A REBIND in the grace renews the lease: the count read at the old end
/// is dropped, and the new end is read again.
#[test]
fn renewal_in_the_grace_reads_the_count_again() {
    let t0 = Instant::now();
    let mut s = leased(t0, true);
    let life = Duration::from_secs(3600);
    let end = t0 + life;
    s.handle_timeout_with(end, &|_| Some(3));
    let t1 = end + Duration::from_secs(1);
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(t1, &bytes(&r)).unwrap();
    s.poll_transmit().expect("ACK");
    assert_eq!(s.poll_timeout(), Some(t1 + life));
    s.handle_timeout_with(end + s.config().lease_grace, &|_| Some(3));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.stats.leases_held, 0);
}

#[test]
fn unfinished_attach_is_abandoned() {
    let t0 = Instant::now();
    let mut s = server();
    s.handle(t0, &bytes(&req(1))).unwrap();
    s.poll_event().unwrap();
    let deadline = t0 + s.config().offer_timeout;
    assert_eq!(s.poll_timeout(), Some(deadline));
    // A retransmitted DISCOVER neither re-registers nor lets the attach die early.
    let t1 = t0 + Duration::from_secs(4);
    s.handle(t1, &bytes(&req(1))).unwrap();
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(deadline);
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(t1 + s.config().offer_timeout);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Detach {
            reason: DetachReason::Abandoned,
            ..
        })
    ));
}

#[test]
fn inform_gets_options_without_lease() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    let mut r = req(8);
    r.ciaddr = HOME.octets();
    s.handle(now, &bytes(&r)).unwrap();
    let t = s.poll_transmit().unwrap();
    assert_eq!(t.dst, ReplyDest::Unicast { ip: HOME, mac: MAC });
    assert_eq!(opt(&t.payload, 53), Some(vec![5]));
    assert_eq!(&t.payload[16..20], &[0; 4]);
    assert_eq!(opt(&t.payload, 51), None);
    assert_eq!(opt(&t.payload, 3), Some(SID.octets().to_vec()));
}

#[test]
fn binding_refresh_and_gone() {
    let now = Instant::now();
    let mut s = server();
    attach(&mut s, now);
    select(&mut s, now);
    s.binding_ready(
        now,
        MAC,
        BindingInfo {
            lifetime: Duration::from_secs(600),
            ..binding()
        },
    );
    assert_eq!(s.poll_transmit(), None, "a refresh sends nothing by itself");
    let mut r = req(3);
    r.ciaddr = HOME.octets();
    s.handle(now, &bytes(&r)).unwrap();
    assert_eq!(
        opt(&s.poll_transmit().unwrap().payload, 51).map(u32_of),
        Some(600)
    );
    s.binding_gone(MAC);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_event(), None);
}

#[test]
fn prefix_masks() {
    assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
    assert_eq!(prefix_to_mask(8), Ipv4Addr::new(255, 0, 0, 0));
    assert_eq!(prefix_to_mask(30), Ipv4Addr::new(255, 255, 255, 252));
    assert_eq!(prefix_to_mask(32), Ipv4Addr::BROADCAST);
    assert_eq!(prefix_to_mask(99), Ipv4Addr::BROADCAST);
}

#[test]
fn malformed_input_is_counted() {
    let now = Instant::now();
    let mut s = server();
    let good = bytes(&req(1));
    // Every truncation short of the options fails; none panics.
    for n in 0..good.len() {
        let _ = s.handle(now, &good[..n]);
    }
    for n in 0..240 {
        assert!(decode(&good[..n]).is_err(), "len {n}");
    }
    let mut bad_magic = good.clone();
    bad_magic[236] = 0;
    assert_eq!(s.handle(now, &bad_magic), Err(Reject::Malformed));
    // No message type option.
    let mut no_type = good[..240].to_vec();
    no_type.push(255);
    assert_eq!(s.handle(now, &no_type), Err(Reject::Malformed));
    // An option running past the end.
    let mut overrun = good[..240].to_vec();
    overrun.extend_from_slice(&[53, 1, 1, 61, 200, 1, 2]);
    assert_eq!(s.handle(now, &overrun), Err(Reject::Malformed));
    // A BOOTREPLY, a non-Ethernet client, a multicast chaddr.
    let mut reply = good.clone();
    reply[0] = 2;
    assert_eq!(s.handle(now, &reply), Err(Reject::Ignored));
    let mut tr = good.clone();
    tr[1] = 6;
    assert_eq!(s.handle(now, &tr), Err(Reject::Ignored));
    let mut mc = good.clone();
    mc[28] = 0x01;
    assert_eq!(s.handle(now, &mc), Err(Reject::Malformed));
    // A REQUEST naming no address at all.
    assert_eq!(s.handle(now, &bytes(&req(3))), Err(Reject::Malformed));
    // An oversized message with trailing garbage after End is fine.
    let mut big = good.clone();
    big.extend(std::iter::repeat_n(0xaa, 2000));
    assert!(s.handle(now, &big).is_ok());
    assert!(s.stats.malformed >= 4);
    assert!(s.stats.ignored >= 2);
    assert!(s.stats.discovers >= 1);
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let mut s = server();
        let _ = s.handle(Instant::now(), &data);
    }

    #[test]
    fn mutated_messages_never_panic(kind in 1u8..9, pos in 0usize..300, val: u8, cut in 0usize..320) {
        let mut r = req(kind);
        r.requested = Some(HOME.octets());
        r.ciaddr = HOME.octets();
        r.client_id = Some(vec![1, 2, 3]);
        let mut b = bytes(&r);
        if pos < b.len() { b[pos] = val; }
        b.truncate(cut.max(1));
        let mut s = server();
        let now = Instant::now();
        s.binding_ready(now, MAC, binding());
        let _ = s.handle(now, &b);
        s.handle_timeout(now + Duration::from_secs(7200));
    }

    #[test]
    fn offer_carries_the_binding(home: [u8; 4], plen in 0u8..=32, life in 1u32..=u32::MAX, mtu in 576u16..9000, flags: bool) {
        let now = Instant::now();
        let mut s = server();
        let mut r = req(1);
        r.flags = if flags { 0x8000 } else { 0 };
        s.handle(now, &bytes(&r)).unwrap();
        let b = BindingInfo { home: home.into(), prefix_len: plen, lifetime: Duration::from_secs(life.into()), mtu: Some(mtu), ..binding() };
        s.binding_ready(now, MAC, b.clone());
        let t = s.poll_transmit().unwrap();
        // Decoded by dhcproto (all options), reply and binding agree.
        let m = Message::decode(&mut Decoder::new(&t.payload)).unwrap();
        proptest::prop_assert_eq!(m.yiaddr(), b.home);
        proptest::prop_assert_eq!(m.opts().get(OptionCode::SubnetMask), Some(&DhcpOption::SubnetMask(prefix_to_mask(plen))));
        proptest::prop_assert_eq!(m.opts().get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(life)));
        proptest::prop_assert_eq!(m.opts().get(OptionCode::InterfaceMtu), Some(&DhcpOption::InterfaceMtu(mtu)));
        proptest::prop_assert_eq!(m.flags().broadcast(), flags);
    }
}

/// Writes an Ethernet pcap (linktype 1) of the given frames.
pub(crate) fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let f = crate::pcap::pcap_file(crate::pcap::LINKTYPE_ETHERNET, frames);
    std::fs::write(path, f).unwrap();
}

/// A temporary directory removed on drop, also when the test fails.
pub(crate) struct TmpDir(pub std::path::PathBuf);
impl TmpDir {
    /// A directory of its own: tests of one process run in parallel and
    /// may share a tag (the reload tests do), so a counter tells them apart —
    /// otherwise one test's drop removes the directory another is writing in.
    pub(crate) fn new(tag: &str) -> TmpDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("pmip-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }
}
impl std::ops::Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tshark_available() -> bool {
    std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tshark_decodes_offer_ack_nak() {
    if !tshark_available() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let now = Instant::now();
    let mut s = server();
    let mut d = req(1);
    d.client_id = Some([&[1u8][..], &MAC[..]].concat());
    s.handle(now, &bytes(&d)).unwrap();
    s.binding_ready(now, MAC, binding());
    let offer = s.poll_transmit().unwrap();
    let ack = select(&mut s, now);
    let mut r = req(3);
    r.requested = Some([192, 0, 2, 99]);
    s.handle(now, &bytes(&r)).unwrap();
    let nak = s.poll_transmit().unwrap();
    let gw_mac = [2, 0, 0, 0, 0, 0xfe];
    let frames: Vec<Vec<u8>> = [&offer, &ack, &nak]
        .iter()
        .map(|t| {
            let (dmac, dip) = match t.dst {
                ReplyDest::Unicast { ip, mac } => (mac, ip),
                _ => (frame::BROADCAST_MAC, Ipv4Addr::BROADCAST),
            };
            frame::udp_frame(
                gw_mac,
                dmac,
                (SID, SERVER_PORT),
                (dip, CLIENT_PORT),
                &t.payload,
            )
        })
        .collect();
    let dir = TmpDir::new("dhcp");
    let pcap = dir.0.join("dhcp.pcap");
    write_pcap(&pcap, &frames);
    let fields = [
        "dhcp.type",
        "dhcp.id",
        "dhcp.ip.your",
        "dhcp.hw.mac_addr",
        "dhcp.option.dhcp",
        "dhcp.option.dhcp_server_id",
        "dhcp.option.ip_address_lease_time",
        "dhcp.option.renewal_time_value",
        "dhcp.option.rebinding_time_value",
        "dhcp.option.subnet_mask",
        "dhcp.option.router",
        "dhcp.option.domain_name_server",
        "dhcp.option.interface_mtu",
        "udp.checksum.status",
        "ip.checksum.status",
        "dhcp.flags",
        "dhcp.ip.client",
        "dhcp.hw.type",
        "dhcp.hw.len",
        "dhcp.option.type",
        "ip.src",
        "udp.srcport",
        "udp.dstport",
    ];
    let mut cmd = std::process::Command::new("tshark");
    cmd.args([
        "-r",
        pcap.to_str().unwrap(),
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(
        lines.len(),
        3,
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offer_l = &lines[0];
    assert_eq!(offer_l[0], "2"); // Boot Reply
    assert_eq!(offer_l[1], "0x12345678");
    assert_eq!(offer_l[2], "192.0.2.1");
    // chaddr, then the MAC inside the echoed client identifier.
    assert_eq!(offer_l[3], "02:24:d7:8e:21:a4,02:24:d7:8e:21:a4");
    assert_eq!(offer_l[4], "2"); // Offer
    assert_eq!(offer_l[5], "192.0.2.254");
    assert_eq!(offer_l[6], "3600");
    assert_eq!(offer_l[7], "1800");
    assert_eq!(offer_l[8], "3150");
    assert_eq!(offer_l[9], "255.255.255.0");
    assert_eq!(offer_l[10], "192.0.2.254");
    assert_eq!(offer_l[11], "198.51.100.250,198.51.100.251");
    assert_eq!(offer_l[12], "1476");
    assert_eq!(offer_l[13], "1"); // checksum status Good
    assert_eq!(offer_l[14], "1");
    assert_eq!(offer_l[15], "0x0000"); // flags: broadcast bit clear, as the client sent
    assert_eq!(offer_l[16], "0.0.0.0");
    assert_eq!(offer_l[17], "0x01,0x01"); // Ethernet: htype, and the client id type
    assert_eq!(offer_l[18], "6");
    // Exactly the options we set, client id (61) echoed per RFC 6842.
    // (tshark lists the zero padding after End as a last "0".)
    assert!(
        offer_l[19].starts_with("1,3,6,26,51,53,54,58,59,61,"),
        "{}",
        offer_l[19]
    );
    assert_eq!(offer_l[20], "192.0.2.254");
    assert_eq!((offer_l[21], offer_l[22]), ("67", "68"));
    assert_eq!(lines[1][4], "5"); // ACK
    assert_eq!(lines[1][2], "192.0.2.1");
    assert_eq!(lines[2][4], "6"); // NAK
                                  // No malformed packets, no expert errors.
    let v = std::process::Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-V", "-z", "expert,error"])
        .output()
        .unwrap();
    let vt = String::from_utf8_lossy(&v.stdout);
    assert!(!vt.to_lowercase().contains("malformed"), "{vt}");
    assert!(vt.contains("Option: (26) Interface MTU"), "{vt}");
    assert!(!vt.contains("Errors ("), "{vt}");
}

/// Found by the access_dhcp fuzz target: option 152 (bulk leasequery base time)
/// with length 0 hit a `debug_assert!` inside dhcproto. Only the options the
/// server reads reach dhcproto now.
#[test]
fn fuzz_regression_foreign_option_lengths() {
    let data = include_bytes!("testdata/fuzz-crash-bulk-leasequery.bin");
    let mut s = server();
    let _ = s.handle(Instant::now(), data);
    // A well-formed DISCOVER with hostile options we do not read is still served.
    let mut b = bytes(&req(1));
    b.pop(); // End
    b.extend_from_slice(&[152, 0, 151, 0, 12, 2, 0xff, 0xfe, 55, 0, 255]);
    assert!(s.handle(Instant::now(), &b).is_ok());
    assert!(matches!(s.poll_event(), Some(Event::AttachRequest { .. })));
}

mod hold;
