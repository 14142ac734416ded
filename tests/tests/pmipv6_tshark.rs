//! Decodes what the PMIPv6 codecs emit with tshark, an independent decoder:
//! every field we set must come back with our value, with no malformed mark
//! or expert error. Two captures: IPv6 | MH and IPv4 | UDP 5436 | MH.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use pmip_user::checksum;
use pmip_user::pmipv6::wire::*;

const SRC6: &str = "2001:db8:cafe:1025::15";
const DST6: &str = "2001:db8:cafe:1024::101";

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// pcap with LINKTYPE_RAW (101): each record is a bare IPv4 or IPv6 packet.
fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    std::fs::write(
        path,
        pmip_tests::packet::pcap_file(pmip_tests::packet::LINKTYPE_RAW, packets),
    )
    .expect("write pcap");
}

fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, mh: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(mh.len() as u16).to_be_bytes());
    p.push(135);
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(mh);
    p
}

fn ipv4_udp_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ulen = 8 + payload.len() as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let pseudo = checksum::pseudo_v4(src, dst, 17, ulen);
    let ck = checksum::finish(checksum::add(pseudo, &udp));
    udp[6..8].copy_from_slice(&(if ck == 0 { 0xffff } else { ck }).to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + ulen).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let ck = checksum::of(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

fn messages(ipv4_transport: bool) -> Vec<Message> {
    let nai = b"mn0@example.com".to_vec();
    let mut pbu_opts = vec![
        MobilityOption::MnId {
            subtype: 1,
            id: nai.clone(),
        },
        MobilityOption::HomeNetworkPrefix {
            prefix_len: 64,
            prefix: "2001:db8:f00d:1::".parse().unwrap(),
        },
        MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
        MobilityOption::AccessTechType(AccessTechType::Ieee80211),
        MobilityOption::MnLinkLayerId(vec![0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4]),
        MobilityOption::LinkLocalAddress("fe80::1".parse().unwrap()),
        MobilityOption::Timestamp(0x0000_6500_0001_8000),
        MobilityOption::GreKey(Some(0x1234_5678)),
        MobilityOption::Ipv4HoaRequest {
            prefix_len: 24,
            addr: Ipv4Addr::new(192, 0, 2, 77),
        },
        MobilityOption::ServiceSelection(b"example.com".to_vec()),
    ];
    if ipv4_transport {
        pbu_opts.push(MobilityOption::Ipv4CareOfAddress(Ipv4Addr::new(
            10, 8, 22, 15,
        )));
    }
    vec![
        Message::BindingUpdate(BindingUpdate {
            seq: 4660,
            flags: bu_flags::A | bu_flags::P,
            lifetime: 900,
            options: pbu_opts,
        }),
        Message::BindingAck(BindingAck {
            status: BaStatus::ACCEPTED,
            flags: ba_flags::P,
            seq: 4660,
            lifetime: 900,
            options: vec![
                MobilityOption::MnId {
                    subtype: 1,
                    id: nai.clone(),
                },
                MobilityOption::Timestamp(0x0000_6500_0001_8000),
                MobilityOption::GreKey(Some(0x0001_0007)),
                MobilityOption::Ipv4HoaReply {
                    status: 0,
                    prefix_len: 24,
                    addr: Ipv4Addr::new(192, 0, 2, 1),
                },
                MobilityOption::Ipv4DefaultRouter(Ipv4Addr::new(192, 0, 2, 254)),
                // RFC 5844 §3.3.4: a PBA option.
                MobilityOption::Ipv4DhcpSupportMode { server: true },
            ],
        }),
        Message::Heartbeat(Heartbeat {
            unsolicited: false,
            response: true,
            seq: 77,
            options: vec![MobilityOption::RestartCounter(42)],
        }),
        Message::RevocationIndication(RevocationIndication {
            trigger: revocation_trigger::INTER_MAG_HANDOVER_SAME_ATT,
            seq: 9,
            flags: br_flags::P,
            options: vec![MobilityOption::MnId {
                subtype: 1,
                id: nai,
            }],
        }),
        Message::RevocationAck(RevocationAck {
            status: bra_status::SUCCESS,
            seq: 9,
            flags: br_flags::P,
            options: vec![],
        }),
        Message::BindingError(BindingError {
            status: be_status::UNRECOGNIZED_MH_TYPE,
            home_address: "2001:db8::77".parse().unwrap(),
            options: vec![],
        }),
    ]
}

/// (field, expected value) per packet, as `tshark -T fields` prints them.
fn expectations() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![
            ("mip6.mhtype", "5"),
            ("mip6.proto", "59"),
            ("mip6.bu.seqnr", "4660"),
            ("mip6.bu.a_flag", "1"),
            ("mip6.bu.p_flag", "1"),
            ("mip6.bu.h_flag", "0"),
            ("mip6.bu.t_flag", "0"),
            ("mip6.bu.lifetime", "900"),
            ("mip6.mnid.subtype", "1"),
            ("mip6.mnid.identifier", "mn0@example.com"),
            ("mip6.nemo.mnp.pfl", "64"),
            ("mip6.nemo.mnp.mnp", "2001:db8:f00d:1::"),
            ("mip6.hi", "1"),
            ("mip6.att", "4"),
            ("mip6.mnlli.lli", "0024d78e21a4"),
            ("mip6.lila_lla", "fe80::1"),
            ("mip6.timestamp_tmp", "Sep 12, 2023 06:06:57.500000000 UTC"),
            ("mip6.gre_key", "305419896"),
            ("mip6.ipv4ha.preflen", "24"),
            ("mip6.ipv4ha.ha", "192.0.2.77"),
            ("mip6.ss.identifier", "example.com"),
        ],
        vec![
            ("mip6.mhtype", "6"),
            ("mip6.ba.status", "0"),
            ("mip6.ba.p_flag", "1"),
            ("mip6.ba.k_flag", "0"),
            ("mip6.ba.seqnr", "4660"),
            ("mip6.ba.lifetime", "900"),
            ("mip6.mnid.identifier", "mn0@example.com"),
            ("mip6.gre_key", "65543"),
            ("mip6.timestamp_tmp", "Sep 12, 2023 06:06:57.500000000 UTC"),
            ("mip6.ipv4aa.sts", "0"),
            ("mip6.ipv4ha.preflen", "24"),
            ("mip6.ipv4ha.ha", "192.0.2.1"),
            ("mip6.ipv4dra.dra", "192.0.2.254"),
            ("mip6.ipv4dsm.s_flag", "1"),
        ],
        vec![
            ("mip6.mhtype", "13"),
            ("mip6.hb.u_flag", "0"),
            ("mip6.hb.r_flag", "1"),
            ("mip6.hb.seqnr", "77"),
            ("mip6.rc", "42"),
        ],
        vec![
            ("mip6.mhtype", "16"),
            ("mip6.bri_br.type", "1"),
            ("mip6.bri_r.trigger", "2"),
            ("mip6.bri_seqnr", "9"),
            ("mip6.bri_ip", "1"),
            ("mip6.bri_iv", "0"),
            ("mip6.bri_ig", "0"),
            ("mip6.mnid.identifier", "mn0@example.com"),
        ],
        vec![
            ("mip6.mhtype", "16"),
            ("mip6.bri_br.type", "2"),
            ("mip6.bri_status", "0"),
            ("mip6.bri_seqnr", "9"),
            ("mip6.bri_ap", "1"),
            ("mip6.bri_ag", "0"),
        ],
        vec![
            ("mip6.mhtype", "7"),
            ("mip6.be.status", "2"),
            ("mip6.be.haddr", "2001:db8::77"),
        ],
    ]
}

fn tshark_fields(path: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(|s| s.to_string()).collect())
        .collect()
}

fn check_capture(name: &str, packets: Vec<Vec<u8>>, extra: &[(&str, &str)]) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("pmipv6-tshark-{}-{name}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join(format!("{name}.pcap"));
    write_pcap(&path, &packets);

    // No malformed mark and no expert warning/error anywhere.
    let v = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-V")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        !text.to_lowercase().contains("malformed"),
        "{name}: malformed:\n{text}"
    );
    let ex = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-q", "-z", "expert,warn"])
        .output()
        .unwrap();
    let ex_text = String::from_utf8_lossy(&ex.stdout);
    assert!(
        !ex_text.contains("Warns") && !ex_text.contains("Errors"),
        "{name}: expert info:\n{ex_text}\n{text}"
    );

    for (i, exp) in expectations().iter().enumerate() {
        let mut exp = exp.clone();
        if i == 0 {
            exp.extend_from_slice(extra);
        }
        let fields: Vec<&str> = exp.iter().map(|(f, _)| *f).collect();
        let rows = tshark_fields(&path, &fields);
        assert_eq!(rows.len(), packets.len(), "{name}");
        let row = &rows[i];
        for (j, (f, want)) in exp.iter().enumerate() {
            assert_eq!(
                row[j].as_str(),
                *want,
                "{name} packet {i} field {f}\n{text}"
            );
        }
    }
}

#[test]
fn tshark_decodes_ipv6_transport() {
    if !tshark_available() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let (s, d): (Ipv6Addr, Ipv6Addr) = (SRC6.parse().unwrap(), DST6.parse().unwrap());
    let packets = messages(false)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // PBU/Heartbeat from MAG, PBA from LMA, BRI from LMA, BRA from MAG.
            let (a, b) = if i == 1 || i == 3 { (d, s) } else { (s, d) };
            ipv6_packet(a, b, &m.to_vec(Checksum::Ipv6 { src: a, dst: b }).unwrap())
        })
        .collect();
    check_capture("ipv6", packets, &[("ipv6.nxt", "135")]);
}

#[test]
fn tshark_decodes_ipv4_udp_transport() {
    if !tshark_available() {
        eprintln!("skipped: tshark not installed");
        return;
    }
    let s = Ipv4Addr::new(10, 8, 22, 15);
    let d = Ipv4Addr::new(10, 8, 24, 101);
    let packets = messages(true)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (a, b) = if i == 1 || i == 3 { (d, s) } else { (s, d) };
            ipv4_udp_packet(a, b, 5436, 5436, &m.to_vec(Checksum::None).unwrap())
        })
        .collect();
    check_capture(
        "udp",
        packets,
        &[
            ("mip6.ipv4coa.addr", "10.8.22.15"),
            ("udp.dstport", "5436"),
            ("mip6.csum", "0x0000"),
        ],
    );
}

/// A scratch directory removed on drop, also when the test fails.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
