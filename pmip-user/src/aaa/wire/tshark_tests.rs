//! Independent decoding: what we emit, in a pcap (raw IPv4 | UDP), decoded by tshark with
//! the shared secret, so it checks the authenticators too.
use std::net::Ipv4Addr;
use std::process::Command;

use crate::aaa::accounting::{
    accounting_request, AcctRecord, AcctSession, AcctStatus, TerminateCause, Traffic,
};
use crate::aaa::authz::{access_request, Subscriber};
use crate::aaa::config::AaaConfig;
use crate::aaa::wire::attr::{self, vendor, AttrRepr};
use crate::aaa::wire::{auth, Code, PacketRepr};
use crate::pcap::{ipv4, pcap_file, udp, LINKTYPE_RAW};

const SECRET: &str = "aaacisco";

fn frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (a, b) = (
        Ipv4Addr::new(10, 8, 22, 15),
        Ipv4Addr::new(203, 0, 113, 115),
    );
    let (src, dst) = if dport < 4000 { (a, b) } else { (b, a) };
    ipv4(src, dst, 17, 64, false, &udp(sport, dport, payload))
}

pub(crate) fn tshark(frames: &[Vec<u8>]) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("pmip-aaa-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("radius.pcap");
    std::fs::write(&path, pcap_file(LINKTYPE_RAW, frames)).ok()?;
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-o", &format!("radius.shared_secret:{SECRET}")])
        .args(["-o", "radius.validate_authenticator:TRUE", "-V"])
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn tshark_decodes_what_we_emit() {
    let cfg = AaaConfig {
        nas_identifier: Some("MAG1".into()),
        nas_ip_address: Some("10.8.22.15".parse().unwrap()),
        ..AaaConfig::default()
    };
    let mut sub = Subscriber::new([0x00, 0x24, 0xd7, 0x8e, 0x21, 0xa4]);
    sub.nai = Some("mn0@example.com".into());
    let ra = [0x5a; 16];
    let req = access_request(&cfg, SECRET.as_bytes(), &sub, 7, &ra, 1_700_000_000);
    let mut accept = PacketRepr::new(Code::AccessAccept, 7);
    accept
        .push(AttrRepr::new(attr::MESSAGE_AUTHENTICATOR, &[0; 16]))
        .push(AttrRepr::cisco_avpair("home-lma=lma1"))
        // Wireshark's dictionary has Starent in the 1-octet format (SN1-*, `$INCLUDE
        // dictionary.starent.vsa1`); FreeRADIUS's the 2-octet one (SN-*), which the tests
        // against FreeRADIUS check.
        .push(AttrRepr::vendor_in(
            attr::VsaFormat::OneOne,
            vendor::STARENT,
            vendor::SN_PROXY_MIP,
            &1u32.to_be_bytes(),
        ))
        .push(AttrRepr::vendor(
            vendor::TGPP2,
            vendor::TGPP2_HA_ADDRESS,
            &[192, 0, 2, 1],
        ))
        .push(AttrRepr::u32(attr::SESSION_TIMEOUT, 3600));
    let mut acc = accept.to_bytes().unwrap();
    auth::sign(&mut acc, SECRET.as_bytes(), &ra).unwrap();
    let rec = AcctRecord {
        status: AcctStatus::Stop,
        session: AcctSession {
            session_id: "pmip-1".into(),
            user_name: "mn0@example.com".into(),
            mac: sub.mac,
            ..AcctSession::default()
        },
        traffic: Traffic {
            input_octets: (2 << 32) + 5,
            output_octets: 6,
            input_packets: 7,
            output_packets: 8,
        },
        session_time: 60,
        terminate_cause: Some(TerminateCause::AdminReset),
        event_unix: 1_700_000_000,
    };
    let acct = accounting_request(&cfg, SECRET.as_bytes(), &rec, 9, 1_700_000_002);
    let acct_auth: [u8; 16] = acct[4..20].try_into().unwrap();
    let mut resp = PacketRepr::new(Code::AccountingResponse, 9)
        .to_bytes()
        .unwrap();
    auth::sign(&mut resp, SECRET.as_bytes(), &acct_auth).unwrap();
    let Some(out) = tshark(&[
        frame(40000, 1812, &req),
        frame(1812, 40000, &acc),
        frame(40001, 1813, &acct),
        frame(1813, 40001, &resp),
    ]) else {
        eprintln!("tshark not installed: skipping");
        return;
    };
    for want in [
        "Code: Access-Request (1)",
        "User-Name: mn0@example.com",
        "User-Password: mn0@example.com",
        "Calling-Station-Id: 00-24-d7-8e-21-a4",
        "NAS-Identifier: MAG1",
        "NAS-IP-Address: 10.8.22.15",
        "NAS-Port-Type: Wireless-802.11 (19)",
        "Message-Authenticator: ",
        "Code: Access-Accept (2)",
        "Cisco-AVPair: home-lma=lma1",
        "SN1-Proxy-MIP: Enabled (1)",
        // Wireshark types it as octets.
        "3GPP2-Home-Agent-IP-Address: c0000201",
        "Session-Timeout: 3600",
        "Code: Accounting-Request (4)",
        "Acct-Status-Type: Stop (2)",
        "Acct-Input-Octets: 5",
        "Acct-Input-Gigawords: 2",
        "Acct-Output-Packets: 8",
        "Acct-Terminate-Cause: Admin-Reset (6)",
        "Acct-Delay-Time: 2",
    ] {
        assert!(out.contains(want), "tshark did not show {want:?}:\n{out}");
    }
    // With the shared secret tshark checks the authenticators of both replies (and shows the
    // User-Password it decrypted, above).
    assert_eq!(
        out.matches("[Valid Authenticator: True]").count(),
        2,
        "{out}"
    );
    assert!(!out.contains("[Valid Authenticator: False]"), "{out}");
    assert!(!out.contains("Malformed"), "{out}");
}
