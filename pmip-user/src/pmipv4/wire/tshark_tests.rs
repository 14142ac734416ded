//! Independent decoding: what we emit, written to a pcap (raw IPv4 | UDP 434), must be
//! decoded by tshark with every field we set and no malformed/expert error.
//! tshark 4.0 does not know the GRE Key extension (48); we only check our key bytes are
//! where RFC 6245's long format puts them.
#![allow(clippy::too_many_lines)] // test scenarios, not production code
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use crate::pmipv4::auth::{self, Algorithm, SecurityAssociation};
use crate::pmipv4::wire::ext::{AccessTech, AuthKind, AuthMethod, ExtRepr};
use crate::pmipv4::wire::*;

fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = crate::checksum::of(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let ul = (8 + payload.len()) as u16;
    p.extend_from_slice(&PORT.to_be_bytes());
    p.extend_from_slice(&PORT.to_be_bytes());
    p.extend_from_slice(&ul.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // UDP checksum optional over IPv4
    p.extend_from_slice(payload);
    p
}

/// pcap with LINKTYPE_RAW (101): each record is a bare IPv4 or IPv6 packet.
pub(crate) fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    std::fs::write(
        path,
        crate::pcap::pcap_file(crate::pcap::LINKTYPE_RAW, packets),
    )
    .expect("write pcap");
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One line per frame, fields separated by '|', multiple occurrences by ','.
fn fields(path: &std::path::Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.arg("-r")
        .arg(path)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for n in names {
        c.args(["-e", n]);
    }
    let out = c.output().expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split('|')
                .map(|s| s.replace(':', "").to_lowercase())
                .collect()
        })
        .collect()
}

#[test]
fn tshark_decodes_what_we_emit() {
    if !tshark_available() {
        eprintln!("tshark not installed: skipping");
        return;
    }
    let sa = SecurityAssociation::new(0x100, &[0x11; 16], Algorithm::HmacMd5);
    let pma = Ipv4Addr::new(198, 51, 100, 7);
    let ha = Ipv4Addr::new(192, 0, 2, 1);
    let hoa = Ipv4Addr::new(10, 1, 0, 5);
    // 2023-11-14 22:13:20 UTC as an NTP Identification.
    let ident = auth::ntp_from_system(UNIX_EPOCH + Duration::from_secs(1_700_000_000));

    let mut rrq = RegistrationRequestRepr {
        flags: RrqFlags(RrqFlags::G | RrqFlags::T),
        lifetime: 600,
        home_address: Ipv4Addr::UNSPECIFIED,
        home_agent: ha,
        care_of_address: pma,
        identification: ident,
        extensions: vec![
            ExtRepr::Nai(b"ue1@example.com".to_vec()),
            ExtRepr::InterfaceId(b"eth1".to_vec()),
            ExtRepr::DeviceId {
                id_type: 1,
                id: vec![2, 0, 0, 0, 0, 1],
            },
            ExtRepr::SubscriberId {
                id_type: 1,
                id: b"001010123456789".to_vec(),
            },
            ExtRepr::AccessTechnology(AccessTech::Ieee8023),
            ExtRepr::GreKey(0x1001),
            ExtRepr::RevocationSupport {
                i_bit: true,
                timestamp: 12345,
            },
            ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
        ],
    }
    .to_bytes();
    auth::append_auth(&mut rrq, AuthKind::FaHa, &sa);
    let rrq_auth = hex(&rrq[rrq.len() - 16..]);

    let mut rrp = RegistrationReplyRepr {
        code: ReplyCode::Accepted,
        lifetime: 300,
        home_address: hoa,
        home_agent: ha,
        identification: ident,
        extensions: vec![
            ExtRepr::Nai(b"ue1@example.com".to_vec()),
            ExtRepr::GreKey(0xdeadbeef),
            ExtRepr::PerNodeAuthMethod(AuthMethod::FaHa),
        ],
    }
    .to_bytes();
    auth::append_auth(&mut rrp, AuthKind::FaHa, &sa);

    let mut rev = RevocationRepr {
        a_bit: true,
        i_bit: false,
        home_address: hoa,
        home_domain_address: ha,
        foreign_domain_address: pma,
        revocation_id: 4242,
        extensions: vec![ExtRepr::Nai(b"ue1@example.com".to_vec())],
    }
    .to_bytes();
    auth::append_auth(&mut rev, AuthKind::FaHa, &sa);

    let mut ack = RevocationAckRepr {
        i_bit: true,
        home_address: hoa,
        revocation_id: 4242,
        extensions: vec![],
    }
    .to_bytes();
    auth::append_auth(&mut ack, AuthKind::FaHa, &sa);

    let dir = TempDir(std::env::temp_dir().join(format!("pmipv4-tshark-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let pcap = dir.0.join("pmipv4.pcap");
    write_pcap(
        &pcap,
        &[
            ipv4_udp(pma, ha, &rrq),
            ipv4_udp(ha, pma, &rrp),
            ipv4_udp(ha, pma, &rev),
            ipv4_udp(pma, ha, &ack),
        ],
    );

    // No malformed packets or expert errors anywhere.
    let v = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .arg("-V")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(!text.to_lowercase().contains("malformed"), "{text}");
    let ex = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-z", "expert,error"])
        .arg("-q")
        .output()
        .unwrap();
    let ex = String::from_utf8_lossy(&ex.stdout);
    assert!(!ex.contains("Errors ("), "expert errors: {ex}");

    let f = fields(
        &pcap,
        &[
            "mip.type",
            "mip.flags",
            "mip.g",
            "mip.t",
            "mip.d",
            "mip.life",
            "mip.homeaddr",
            "mip.haaddr",
            "mip.coa",
            "mip.ident",
            "mip.nai",
            "mip.ext.type",
            "mip.auth.spi",
            "mip.auth.auth",
            "mip.ext.pmipv4nonskipext.pernodeauthmethod",
            "mip.ext.pmipv4skipext.interfaceid",
            "mip.ext.pmipv4skipext.deviceid_type",
            "mip.ext.pmipv4skipext.deviceid_id",
            "mip.ext.pmipv4skipext.subscriberid_type",
            "mip.ext.pmipv4skipext.subscriberid_id",
            "mip.ext.pmipv4skipext.accesstechnology_type",
            "mip.ext.rev.i",
            "mip.ext.rev.tstamp",
            "mip.code",
            "mip.rev.a",
            "mip.rev.i",
            "mip.rev.hda",
            "mip.rev.fda",
            "mip.revid",
            "mip.ack.i",
            "mip.extension",
        ],
    );
    assert_eq!(f.len(), 4, "{f:?}");
    let col = |row: usize, name: &str| -> String {
        let names = [
            "mip.type",
            "mip.flags",
            "mip.g",
            "mip.t",
            "mip.d",
            "mip.life",
            "mip.homeaddr",
            "mip.haaddr",
            "mip.coa",
            "mip.ident",
            "mip.nai",
            "mip.ext.type",
            "mip.auth.spi",
            "mip.auth.auth",
            "pernodeauthmethod",
            "interfaceid",
            "deviceid_type",
            "deviceid_id",
            "subscriberid_type",
            "subscriberid_id",
            "accesstechnology_type",
            "mip.ext.rev.i",
            "mip.ext.rev.tstamp",
            "mip.code",
            "mip.rev.a",
            "mip.rev.i",
            "mip.rev.hda",
            "mip.rev.fda",
            "mip.revid",
            "mip.ack.i",
            "mip.extension",
        ];
        let i = names.iter().position(|n| *n == name).expect(name);
        f[row][i].clone()
    };
    let is_true = |s: String| s == "1" || s == "true";
    let is_false = |s: String| s == "0" || s == "false";
    // Registration Request.
    assert_eq!(col(0, "mip.type"), "1");
    assert_eq!(col(0, "mip.flags"), "0x0a");
    assert!(is_true(col(0, "mip.g")) && is_true(col(0, "mip.t")) && is_false(col(0, "mip.d")));
    assert_eq!(col(0, "mip.life"), "600");
    assert_eq!(col(0, "mip.homeaddr"), "0.0.0.0");
    assert_eq!(col(0, "mip.haaddr"), "192.0.2.1");
    assert_eq!(col(0, "mip.coa"), "198.51.100.7");
    assert!(
        col(0, "mip.ident").contains("2023 221320"),
        "{}",
        col(0, "mip.ident")
    );
    assert_eq!(col(0, "mip.nai"), "ue1@example.com");
    // tshark 4.0 does not know that 48 is long-format (RFC 6245): it reads "48, length 0"
    // and then the 16-bit length's high octet as a type-0 extension of length 4 holding
    // the key. Framing still lines up, so everything after it decodes.
    assert_eq!(col(0, "mip.ext.type"), "131,147,147,147,147,48,0,137,47,34");
    assert_eq!(col(0, "mip.auth.spi"), "0x00000100");
    assert_eq!(col(0, "mip.auth.auth"), rrq_auth);
    assert_eq!(col(0, "pernodeauthmethod"), "1");
    assert_eq!(col(0, "interfaceid"), hex(b"eth1"));
    assert_eq!(col(0, "deviceid_type"), "1");
    assert_eq!(col(0, "deviceid_id"), "020000000001");
    assert_eq!(col(0, "subscriberid_type"), "1");
    assert_eq!(col(0, "subscriberid_id"), hex(b"001010123456789"));
    assert_eq!(col(0, "accesstechnology_type"), "1");
    assert!(is_true(col(0, "mip.ext.rev.i")));
    assert_eq!(col(0, "mip.ext.rev.tstamp"), "12345");
    assert!(
        col(0, "mip.extension").contains("00001001"),
        "{}",
        col(0, "mip.extension")
    );
    // Registration Reply.
    assert_eq!(col(1, "mip.type"), "3");
    assert_eq!(col(1, "mip.code"), "0");
    assert_eq!(col(1, "mip.life"), "300");
    assert_eq!(col(1, "mip.homeaddr"), "10.1.0.5");
    assert_eq!(col(1, "mip.haaddr"), "192.0.2.1");
    assert!(col(1, "mip.ident").contains("2023 221320"));
    assert_eq!(col(1, "mip.ext.type"), "131,48,0,47,34");
    assert!(col(1, "mip.extension").contains("deadbeef"));
    assert_eq!(col(1, "mip.auth.auth"), hex(&rrp[rrp.len() - 16..]));
    // Revocation.
    assert_eq!(col(2, "mip.type"), "7");
    assert!(is_true(col(2, "mip.rev.a")) && is_false(col(2, "mip.rev.i")));
    assert_eq!(col(2, "mip.homeaddr"), "10.1.0.5");
    assert_eq!(col(2, "mip.rev.hda"), "192.0.2.1");
    assert_eq!(col(2, "mip.rev.fda"), "198.51.100.7");
    assert_eq!(col(2, "mip.revid"), "4242");
    assert_eq!(col(2, "mip.nai"), "ue1@example.com");
    assert_eq!(col(2, "mip.auth.spi"), "0x00000100");
    // Revocation Acknowledgement.
    assert_eq!(col(3, "mip.type"), "15");
    assert!(is_true(col(3, "mip.ack.i")));
    assert_eq!(col(3, "mip.homeaddr"), "10.1.0.5");
    assert_eq!(col(3, "mip.revid"), "4242");
    assert_eq!(col(3, "mip.auth.auth"), hex(&ack[ack.len() - 16..]));
}

/// Removes the pcap directory, also when an assertion fails.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
