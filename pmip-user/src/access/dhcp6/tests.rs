//! DHCPv6 server tests: client messages written byte by byte from RFC 8415
//! §8/§21 (not with dhcproto), replies read back with an independent TLV walk.
use super::*;

const MAC: [u8; 6] = [0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const XID: [u8; 3] = [0x12, 0x34, 0x56];
/// DUID-LLT of the client (type 1, Ethernet, time, MAC).
const CLIENT_DUID: [u8; 14] = [
    0, 1, 0, 1, 0x2c, 0x01, 0x02, 0x03, 0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4,
];

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn peer() -> Peer {
    Peer {
        mac: MAC,
        addr: a("fe80::24:d7ff:fe8e:21a4"),
    }
}

fn server() -> Dhcp6Server {
    Dhcp6Server::new(Dhcp6ServerConfig::new(7, 0, ROUTER_MAC))
}

fn server_duid() -> Vec<u8> {
    vec![0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0xfe]
}

fn binding() -> Binding6 {
    Binding6::new(
        Hnp {
            prefix: a("2001:db8:64:10::"),
            len: 64,
        },
        Duration::from_secs(3600),
        vec![a("2001:db8::53")],
    )
}

fn opt(code: u16, val: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(val.len() as u16).to_be_bytes());
    v.extend_from_slice(val);
    v
}

/// IA_NA or IA_PD with IAID `id`, T1 = T2 = 0, and `inner` options.
fn ia(code: u16, id: u32, inner: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(inner);
    opt(code, &v)
}

fn iaaddr(addr: &str) -> Vec<u8> {
    let mut v = a(addr).octets().to_vec();
    v.extend_from_slice(&[0; 8]);
    opt(5, &v)
}

/// A client message: type, XID, client id, then `rest`.
fn msg(kind: u8, rest: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![kind];
    b.extend_from_slice(&XID);
    b.extend_from_slice(&opt(1, &CLIENT_DUID));
    for r in rest {
        b.extend_from_slice(r);
    }
    b
}

fn elapsed() -> Vec<u8> {
    opt(8, &[0, 0])
}

fn oro() -> Vec<u8> {
    opt(6, &[0, 23])
}

fn sid() -> Vec<u8> {
    opt(2, &server_duid())
}

/// Independent walk of a reply's top-level options.
fn opts(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 4;
    while i + 4 <= p.len() {
        let code = u16::from_be_bytes([p[i], p[i + 1]]);
        let len = usize::from(u16::from_be_bytes([p[i + 2], p[i + 3]]));
        out.push((code, p[i + 4..i + 4 + len].to_vec()));
        i += 4 + len;
    }
    assert_eq!(i, p.len(), "options fill the message exactly");
    out
}

fn get(p: &[u8], code: u16) -> Option<Vec<u8>> {
    opts(p)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v)
}

fn u32_at(v: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]])
}

fn attach(s: &mut Dhcp6Server, now: Instant, m: &[u8]) -> Transmit {
    s.handle(now, peer(), m).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(Event::AttachRequest {
            at: AccessPoint {
                ifindex: 7,
                vlan: 0,
                mac: MAC
            },
            duid: CLIENT_DUID.to_vec(),
            from: peer().addr,
        })
    );
    assert!(
        s.poll_transmit().is_none(),
        "nothing before the registration"
    );
    s.binding_ready(now, MAC, binding());
    s.poll_transmit().expect("answer once the binding is ready")
}

#[test]
fn solicit_triggers_attach_then_advertise_bytes() {
    let mut s = server();
    let t0 = Instant::now();
    let t = attach(&mut s, t0, &msg(1, &[elapsed(), oro(), ia(3, 7, &[])]));
    assert_eq!(t.to, peer());
    let p = &t.payload;
    assert_eq!(&p[..4], &[2, 0x12, 0x34, 0x56], "Advertise, same XID");
    assert_eq!(get(p, 1).unwrap(), CLIENT_DUID);
    assert_eq!(get(p, 2).unwrap(), server_duid());
    assert_eq!(get(p, 7).unwrap(), vec![255], "preference");
    assert_eq!(get(p, 23).unwrap(), a("2001:db8::53").octets());
    let na = get(p, 3).unwrap();
    // IAID 7, T1 = 0.5 and T2 = 0.8 of 3600 s, then one IAADDR.
    assert_eq!(&na[..12], &[0, 0, 0, 7, 0, 0, 0x07, 0x08, 0, 0, 0x0b, 0x40]);
    assert_eq!(&na[12..16], &[0, 5, 0, 24]);
    assert_eq!(&na[16..32], &a("2001:db8:64:10::1").octets());
    assert_eq!((u32_at(&na, 32), u32_at(&na, 36)), (3600, 3600));
    assert_eq!(na.len(), 40);
    assert_eq!(s.lease_end(&MAC), None, "an Advertise is no lease");
    assert_eq!(s.stats.advertises, 1);
}

#[test]
fn request_renew_rebind_are_replied_and_lease_runs() {
    let mut s = server();
    let t0 = Instant::now();
    attach(&mut s, t0, &msg(1, &[ia(3, 7, &[])]));
    for kind in [3u8, 5, 6] {
        let m = if kind == 6 {
            msg(kind, &[ia(3, 7, &iaaddr("2001:db8:64:10::1"))])
        } else {
            msg(kind, &[sid(), ia(3, 7, &iaaddr("2001:db8:64:10::1"))])
        };
        s.handle(t0, peer(), &m).unwrap();
        let r = s.poll_transmit().unwrap();
        assert_eq!(r.payload[0], 7, "Reply to {kind}");
        assert_eq!(
            &get(&r.payload, 3).unwrap()[16..32],
            &a("2001:db8:64:10::1").octets()
        );
    }
    assert_eq!(s.lease_end(&MAC), Some(t0 + Duration::from_secs(3600)));
    assert_eq!(
        (s.stats.requests, s.stats.renews, s.stats.rebinds),
        (1, 1, 1)
    );
    assert!(s.poll_event().is_none());
    // Nobody renews: the client is gone after the lease and the grace.
    let end = s.poll_timeout().unwrap();
    assert_eq!(end, t0 + Duration::from_secs(3602));
    s.handle_timeout(end);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Detach {
            reason: DetachReason::LeaseExpired,
            ..
        })
    ));
}

#[test]
fn rapid_commit_and_prefix_delegation() {
    let mut s = server();
    let t0 = Instant::now();
    let t = attach(&mut s, t0, &msg(1, &[opt(14, &[]), ia(25, 9, &[])]));
    let p = &t.payload;
    assert_eq!(p[0], 7, "Reply at once");
    assert_eq!(get(p, 14).unwrap(), Vec::<u8>::new());
    let pd = get(p, 25).unwrap();
    assert_eq!(&pd[..4], &[0, 0, 0, 9]);
    // IAPREFIX: preferred, valid, prefix length, prefix.
    assert_eq!(&pd[12..16], &[0, 26, 0, 25]);
    assert_eq!((u32_at(&pd, 16), u32_at(&pd, 20), pd[24]), (3600, 3600, 64));
    assert_eq!(&pd[25..41], &a("2001:db8:64:10::").octets());
    assert!(get(p, 3).is_none(), "no IA_NA asked, none given");
    assert_eq!(s.lease_end(&MAC), Some(t0 + Duration::from_secs(3600)));
    // Without the server's consent to rapid commit: an Advertise.
    let mut s = Dhcp6Server::new(Dhcp6ServerConfig {
        rapid_commit: false,
        ..Dhcp6ServerConfig::new(7, 0, ROUTER_MAC)
    });
    assert_eq!(attach(&mut s, t0, &msg(1, &[opt(14, &[])])).payload[0], 2);
}

#[test]
fn release_replies_and_detaches() {
    let mut s = server();
    let t0 = Instant::now();
    attach(&mut s, t0, &msg(1, &[opt(14, &[]), ia(3, 7, &[])]));
    // A Release for another address is not this lease.
    let other = msg(8, &[sid(), ia(3, 7, &iaaddr("2001:db8:99::1"))]);
    assert_eq!(s.handle(t0, peer(), &other), Err(Reject::Ignored));
    let rel = msg(8, &[sid(), ia(3, 7, &iaaddr("2001:db8:64:10::1"))]);
    s.handle(t0, peer(), &rel).unwrap();
    let r = s.poll_transmit().unwrap();
    assert_eq!(r.payload[0], 7);
    let st = get(&r.payload, 13).unwrap();
    assert_eq!(&st[..2], &[0, 0], "status Success");
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
    assert_eq!(s.clients().count(), 0);
}

#[test]
fn confirm_and_information_request() {
    let mut s = server();
    let t0 = Instant::now();
    // Unknown client: no reply (RFC 8415 §18.3.3).
    let c = msg(4, &[ia(3, 7, &iaaddr("2001:db8:64:10::1"))]);
    assert_eq!(s.handle(t0, peer(), &c), Err(Reject::Ignored));
    attach(&mut s, t0, &msg(1, &[opt(14, &[]), ia(3, 7, &[])]));
    s.handle(t0, peer(), &c).unwrap();
    assert_eq!(
        &get(&s.poll_transmit().unwrap().payload, 13).unwrap()[..2],
        &[0, 0]
    );
    let off = msg(4, &[ia(3, 7, &iaaddr("2001:db8:99::1"))]);
    s.handle(t0, peer(), &off).unwrap();
    assert_eq!(
        &get(&s.poll_transmit().unwrap().payload, 13).unwrap()[..2],
        &[0, 4],
        "NotOnLink"
    );
    let mut ir = vec![11];
    ir.extend_from_slice(&XID);
    ir.extend_from_slice(&oro());
    s.handle(t0, peer(), &ir).unwrap();
    let r = s.poll_transmit().unwrap();
    assert_eq!(get(&r.payload, 23).unwrap(), a("2001:db8::53").octets());
    assert!(get(&r.payload, 3).is_none());
}

/// After a handover the client's Renew names "its" server: the same DUID on
/// the new MAG, which registers the node and then replies.
#[test]
fn renew_after_handover_registers_then_replies() {
    let mut s = Dhcp6Server::new(Dhcp6ServerConfig::new(99, 0, ROUTER_MAC));
    let t0 = Instant::now();
    let renew = msg(5, &[sid(), ia(3, 7, &iaaddr("2001:db8:64:10::1"))]);
    s.handle(t0, peer(), &renew).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::AttachRequest { .. })));
    assert!(s.poll_transmit().is_none());
    s.binding_ready(t0, MAC, binding());
    assert_eq!(s.poll_transmit().unwrap().payload[0], 7);
    // A server with another DUID ignores it.
    let mut other = Dhcp6Server::new(Dhcp6ServerConfig::new(99, 0, [2, 0, 0, 0, 0, 1]));
    assert_eq!(other.handle(t0, peer(), &renew), Err(Reject::Ignored));
}

#[test]
fn unfinished_attach_is_abandoned() {
    let mut s = server();
    let t0 = Instant::now();
    s.handle(t0, peer(), &msg(1, &[ia(3, 7, &[])])).unwrap();
    s.poll_event();
    let t = s.poll_timeout().unwrap();
    assert_eq!(t, t0 + Duration::from_secs(60));
    s.handle_timeout(t);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Detach {
            reason: DetachReason::Abandoned,
            ..
        })
    ));
    assert_eq!(s.clients().count(), 0);
}

#[test]
fn malformed_and_foreign_messages_are_counted() {
    let mut s = server();
    let t0 = Instant::now();
    let mut cut = msg(1, &[ia(3, 7, &[])]);
    cut.pop();
    let long_duid = {
        let mut b = vec![1];
        b.extend_from_slice(&XID);
        b.extend_from_slice(&opt(1, &[7u8; 131]));
        b
    };
    let malformed: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 0, 0],
        cut,
        long_duid,
        msg(1, &[opt(3, &[0; 11])]), // IA_NA shorter than 12
        msg(3, &[sid(), ia(3, 1, &opt(5, &[0; 23]))]), // IAADDR shorter than 24
        msg(1, &[opt(14, &[1])]),    // Rapid Commit with data
        msg(1, &[opt(8, &[0, 0, 0])]), // Elapsed Time of 3
        msg(1, &[opt(6, &[0])]),     // odd ORO
        msg(1, &[vec![0, 99, 0]]),   // half an option header
        msg(3, &[ia(3, 7, &[])]),    // Request without Server ID
        msg(1, &[sid()]),            // Solicit with a Server ID
        vec![1, 0, 0, 0],            // no Client ID
    ];
    for (i, m) in malformed.iter().enumerate() {
        assert_eq!(s.handle(t0, peer(), m), Err(Reject::Malformed), "case {i}");
    }
    let ignored: Vec<Vec<u8>> = vec![
        msg(2, &[]),                                        // Advertise: a server's message
        msg(7, &[]),                                        // Reply
        msg(12, &[]),                                       // Relay-forward
        msg(3, &[opt(2, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9])]), // another server's
    ];
    for (i, m) in ignored.iter().enumerate() {
        assert_eq!(s.handle(t0, peer(), m), Err(Reject::Ignored), "case {i}");
    }
    // Unknown options are skipped, not fatal.
    s.handle(t0, peer(), &msg(1, &[opt(39, b"host"), opt(16, &[0; 3])]))
        .unwrap();
    assert_eq!((s.stats.malformed, s.stats.ignored), (13, 4));
    assert_eq!(s.stats.rx, 18);
    let bad_mac = Peer {
        mac: [0xff; 6],
        addr: peer().addr,
    };
    assert_eq!(s.handle(t0, bad_mac, &msg(1, &[])), Err(Reject::Malformed));
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let mut s = server();
        let t0 = Instant::now();
        let _ = s.handle(t0, peer(), &data);
        s.binding_ready(t0, MAC, binding());
        let _ = s.handle(t0, peer(), &data);
        s.handle_timeout(t0 + Duration::from_secs(7200));
    }
}

/// What `poll_timeout` answered before the index: a scan of every client.
fn scanned_timeout(s: &Dhcp6Server) -> Option<Instant> {
    s.clients.values().filter_map(|c| s.due(c)).min()
}

#[test]
fn timer_index_matches_a_scan_of_every_client() {
    let mut s = server();
    let t0 = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let na = |addr: &str| ia(3, 7, &iaaddr(addr));
    let mut now = t0;
    for step in 0..4000 {
        now += Duration::from_millis(next(20_000));
        let mac = [0x02, 0, 0, 0, 0, next(24) as u8];
        let from = Peer { mac, ..peer() };
        let b = Binding6::new(binding().hnp, Duration::from_secs(30 + next(300)), vec![]);
        let sent = |kind: u8| match kind {
            1 => msg(1, &[ia(3, 7, &[])]),
            k => msg(k, &[sid(), na("2001:db8:64:10::1")]),
        };
        match next(8) {
            k @ 0..=3 => {
                // Solicit, Request, Renew, Release.
                let _ = s.handle(now, from, &sent([1, 3, 5, 8][k as usize]));
            }
            4 => s.binding_ready(now, mac, b),
            5 => s.binding_gone(mac),
            6 => s.binding_failed(mac),
            _ => {
                if let Some(t) = s.poll_timeout() {
                    now = now.max(t);
                    s.handle_timeout(now);
                }
            }
        }
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        assert_eq!(s.poll_timeout(), scanned_timeout(&s), "step {step}");
        let due = s.clients.values().filter(|c| s.due(c).is_some()).count();
        assert_eq!(s.timers.len(), due, "one entry per client, step {step}");
    }
    assert!(
        s.stats.lease_expired > 0 && s.stats.releases > 0,
        "{:?}",
        s.stats
    );
}
