//! tshark, an independent decoder, reads the IPv6 access-link frames we emit:
//! the RA engine's RAs (attach and final), NA and NUD probe, and the DHCPv6
//! server's Advertise and Replies. Every field we set must come back with our
//! value, checksums must verify, and no malformed mark or expert warning.
use std::net::Ipv6Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use pmip_tests::packet::{pcap_file, LINKTYPE_ETHERNET};
use pmip_user::access::detach::DetachConfig;
use pmip_user::access::dhcp6::{Binding6, Dhcp6Server, Dhcp6ServerConfig, Peer};
use pmip_user::access::frame6::{self, Addrs, Upper};
use pmip_user::access::nd::NdRepr;
use pmip_user::access::ra::{Advertisement, RaConfig, RaEngine};
use pmip_user::dataplane::Hnp;

const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const MN: [u8; 6] = [0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4];

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn hnp() -> Hnp {
    Hnp {
        prefix: a("2001:db8:64:10::"),
        len: 64,
    }
}

/// RA (attach), NA, NUD probe, final RA.
fn nd_frames() -> Vec<Vec<u8>> {
    let mut cfg = RaConfig::new(3, 0, ROUTER_MAC);
    cfg.probing = Some(DetachConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        retries: 1,
    });
    let mut e = RaEngine::new(cfg);
    let t0 = Instant::now();
    let mn_ll = frame6::link_local_from_mac(MN);
    let gw = e.config().router_ll;
    let rs = NdRepr::RouterSolicit { slla: Some(MN) }.to_bytes(mn_ll, frame6::ALL_ROUTERS);
    let from_mn = |dst: Ipv6Addr, body: &[u8]| {
        frame6::emit_frame(
            &Addrs {
                src_mac: MN,
                dst_mac: frame6::multicast_mac(dst),
                vlan: 0,
                src: mn_ll,
                dst,
                hop_limit: 255,
            },
            Upper::Icmpv6(body),
        )
    };
    e.handle(t0, &from_mn(frame6::ALL_ROUTERS, &rs)).unwrap();
    e.advertise(
        t0,
        MN,
        Advertisement {
            hnp: hnp(),
            lifetime: Duration::from_secs(3600),
            dns: vec![a("2001:db8::53"), a("2001:db8::54")],
            mtu: Some(1452),
            managed: false,
            autonomous: true,
        },
    );
    let mut out = vec![e.poll_transmit().unwrap()];
    let ns = NdRepr::NeighborSolicit {
        target: gw,
        slla: Some(MN),
    }
    .to_bytes(mn_ll, frame6::solicited_node(gw));
    e.handle(t0, &from_mn(frame6::solicited_node(gw), &ns))
        .unwrap();
    out.push(e.poll_transmit().unwrap());
    e.handle_timeout(t0 + Duration::from_secs(10));
    out.push(e.poll_transmit().unwrap());
    e.withdraw(t0 + Duration::from_secs(11), MN);
    out.push(e.poll_transmit().unwrap());
    out
}

fn opt(code: u16, val: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(val.len() as u16).to_be_bytes());
    v.extend_from_slice(val);
    v
}

fn client_msg(kind: u8, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![kind, 0xab, 0xcd, 0xef];
    m.extend(opt(1, &[0, 3, 0, 1, 0x02, 0x24, 0xd7, 0x8e, 0x21, 0xa4]));
    let mut ia = vec![0, 0, 0, 1];
    ia.extend_from_slice(&[0; 8]);
    m.extend(opt(3, &ia));
    let mut pd = vec![0, 0, 0, 2];
    pd.extend_from_slice(&[0; 8]);
    m.extend(opt(25, &pd));
    for x in extra {
        m.extend_from_slice(x);
    }
    m
}

/// Advertise, Reply (rapid commit), Reply to a Release.
fn dhcp6_frames() -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let peer = Peer {
        mac: MN,
        addr: frame6::link_local_from_mac(MN),
    };
    let binding = Binding6::new(hnp(), Duration::from_secs(3600), vec![a("2001:db8::53")]);
    let mut payloads = Vec::new();
    for rapid in [false, true] {
        let mut s = Dhcp6Server::new(Dhcp6ServerConfig::new(3, 0, ROUTER_MAC));
        let extra = if rapid { vec![opt(14, &[])] } else { vec![] };
        s.handle(t0, peer, &client_msg(1, &extra)).unwrap();
        s.binding_ready(t0, MN, binding.clone());
        payloads.push(s.poll_transmit().unwrap().payload);
        if rapid {
            let sid = opt(2, &[0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0xfe]);
            s.handle(t0, peer, &client_msg(8, &[sid])).unwrap();
            payloads.push(s.poll_transmit().unwrap().payload);
        }
    }
    payloads
        .iter()
        .map(|p| {
            frame6::emit_frame(
                &Addrs {
                    src_mac: ROUTER_MAC,
                    dst_mac: MN,
                    vlan: 0,
                    src: frame6::link_local_from_mac(ROUTER_MAC),
                    dst: peer.addr,
                    hop_limit: 64,
                },
                Upper::Udp {
                    src_port: 547,
                    dst_port: 546,
                    payload: p,
                },
            )
        })
        .collect()
}

fn tshark(path: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the capture, checks it is clean, returns rows of `fields`.
fn decode(name: &str, frames: &[Vec<u8>], fields: &[&str]) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("pmip-v6tshark-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.pcap");
    std::fs::write(&path, pcap_file(LINKTYPE_ETHERNET, frames)).unwrap();
    let text = tshark(&path, &["-V"]);
    assert!(
        !text.to_lowercase().contains("malformed"),
        "{name}:\n{text}"
    );
    let ex = tshark(&path, &["-q", "-z", "expert,warn"]);
    assert!(
        !ex.contains("Warns") && !ex.contains("Errors"),
        "{name}: expert info:\n{ex}\n{text}"
    );
    let mut args = vec![
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ];
    for f in fields {
        args.extend(["-e", f]);
    }
    let rows = tshark(&path, &args)
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect::<Vec<Vec<String>>>();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows.len(), frames.len(), "{name}");
    rows
}

#[test]
fn tshark_decodes_ras_nas_and_probes() {
    if !tshark_available() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let fields = [
        "eth.dst",
        "ipv6.hlim",
        "icmpv6.type",
        "icmpv6.checksum.status",
        "icmpv6.nd.ra.router_lifetime",
        "icmpv6.opt.src_linkaddr",
        "icmpv6.opt.mtu",
        "icmpv6.opt.prefix",
        "icmpv6.opt.prefix.flag.l",
        "icmpv6.opt.prefix.flag.a",
        "icmpv6.opt.prefix.valid_lifetime",
        "icmpv6.opt.prefix.preferred_lifetime",
        "icmpv6.opt.rdnss",
        "icmpv6.nd.na.target_address",
        "icmpv6.nd.na.flag.s",
        "icmpv6.opt.target_linkaddr",
        "icmpv6.nd.ns.target_address",
    ];
    let rows = decode("nd", &nd_frames(), &fields);
    let mn = "02:24:d7:8e:21:a4";
    let ra = &rows[0];
    let want_ra = [
        mn,
        "255",
        "134",
        "1",
        "1800",
        "02:00:00:00:00:fe",
        "1452",
        "2001:db8:64:10::",
        "1",
        "1",
        "3600",
        "3600",
        "2001:db8::53,2001:db8::54",
    ];
    for (i, w) in want_ra.iter().enumerate() {
        assert_eq!(ra[i], *w, "RA field {}", fields[i]);
    }
    let na = &rows[1];
    assert_eq!((na[2].as_str(), na[3].as_str()), ("136", "1"));
    assert_eq!(na[13], "fe80::ff:fe00:fe");
    assert_eq!(
        (na[14].as_str(), na[15].as_str()),
        ("1", "02:00:00:00:00:fe")
    );
    let probe = &rows[2];
    assert_eq!((probe[0].as_str(), probe[2].as_str()), (mn, "135"));
    assert_eq!(probe[16], "fe80::24:d7ff:fe8e:21a4");
    assert_eq!(probe[5], "02:00:00:00:00:fe");
    let last = &rows[3];
    assert_eq!((last[2].as_str(), last[4].as_str()), ("134", "0"));
    assert_eq!((last[10].as_str(), last[11].as_str()), ("0", "0"));
}

#[test]
fn tshark_decodes_dhcpv6_replies() {
    if !tshark_available() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let fields = [
        "udp.checksum.status",
        "dhcpv6.msgtype",
        "dhcpv6.iaaddr.ip",
        "dhcpv6.iaprefix.pref_addr",
        "dhcpv6.iaprefix.pref_len",
        "dhcpv6.dns_server",
        "dhcpv6.status_code",
    ];
    let rows = decode("dhcp6", &dhcp6_frames(), &fields);
    // Advertise (2), Reply (7) with the lease, Reply to the Release.
    assert_eq!(
        rows[0][..6],
        [
            "1",
            "2",
            "2001:db8:64:10::1",
            "2001:db8:64:10::",
            "64",
            "2001:db8::53"
        ]
    );
    assert_eq!(rows[1][..3], ["1", "7", "2001:db8:64:10::1"]);
    assert_eq!((rows[2][1].as_str(), rows[2][6].as_str()), ("7", "0"));
}
