//! ESP-protected PMIPv6 signaling on real raw sockets between two network
//! namespaces, checked by an independent decoder.
//!
//! A MAG sends a Proxy Binding Update to an LMA over IPv6 (`IPv6 | ESP |
//! MH`, AES-GCM) and over IPv4 (`IPv4 | ESP | UDP 5436 | MH`, AES-CBC +
//! HMAC-SHA-256-128) through `pmip_user::esp`; the LMA opens them, parses
//! the PBUs and answers each with a PBA through ESP. Around them, what an
//! attacker on the link can send: a replay of each PBU, a PBU sealed under
//! a guessed key, an unknown SPI, a truncated packet, a valid packet from
//! another address, and a PBU without ESP — all dropped and counted.
//!
//! tcpdump records the ESP on the LMA's link and tshark, given the SAs in
//! its ESP SA table (as an operator would type them from the same keys),
//! decrypts the four messages and decodes the Mobility Header inside; it
//! checks the HMAC ICV and the inner UDP checksum itself.
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pmip_tests::netns::{is_root, veth, Netns};
use pmip_tests::TempDir;
use pmip_user::agent::{Peer, Transmit};
use pmip_user::esp::socket::{AsyncEspSocket, EspSocket};
use pmip_user::esp::{
    DropReason, EspAlgorithm, EspConfig, EspCounters, EspSettings, SaDb, SignalingEsp,
};
use pmip_user::pmipv6::wire::{
    ba_flags, bu_flags, AccessTechType, BaStatus, BindingAck, BindingUpdate, Checksum,
    HandoffIndicator, Message, MobilityOption,
};
use pmip_user::pmipv6::LocalAddrs;

const MAG6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe5, 0, 0, 0, 0, 1);
const LMA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe5, 0, 0, 0, 0, 2);
/// Another host on the MAG's link: knows nothing but can copy packets.
const ROGUE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe5, 0, 0, 0, 0, 3);
const MAG4: Ipv4Addr = Ipv4Addr::new(198, 18, 50, 1);
const LMA4: Ipv4Addr = Ipv4Addr::new(198, 18, 50, 2);
const PORT: u16 = 5436;
const NAI: &str = "subscriber-esp@pmip.example";

// The keys as `ip xfrm state` and tshark take them.
const GCM_MAG_TO_LMA: &str = "0x0d1e2f30415263748596a7b8c9dae0f1cafe0001";
const GCM_LMA_TO_MAG: &str = "0x1f2e3d4c5b6a79880796a5b4c3d2e1f0cafe0002";
const CBC_MAG_TO_LMA: &str = "0x00112233445566778899aabbccddeeff";
const CBC_LMA_TO_MAG: &str = "0xffeeddccbbaa99887766554433221100";
const HMAC_MAG_TO_LMA: &str = "0x0102030405060708091011121314151617181920212223242526272829303132";
const HMAC_LMA_TO_MAG: &str = "0x3132333435363738394041424344454647484950515253545556575859606162";

/// The MAG's view of its SAs with the LMA: (IPv6 over GCM, IPv4 over CBC).
fn mag_configs() -> (EspConfig, EspConfig) {
    let gcm = EspConfig {
        spi_in: 0x6002,
        spi_out: 0x6001,
        algorithm: EspAlgorithm::AesGcm,
        key_in: GCM_LMA_TO_MAG.into(),
        key_out: GCM_MAG_TO_LMA.into(),
        auth_key_in: None,
        auth_key_out: None,
        replay_window: 64,
        esn: false,
    };
    let cbc = EspConfig {
        spi_in: 0x4002,
        spi_out: 0x4001,
        algorithm: EspAlgorithm::AesCbcHmacSha256,
        key_in: CBC_LMA_TO_MAG.into(),
        key_out: CBC_MAG_TO_LMA.into(),
        auth_key_in: Some(HMAC_LMA_TO_MAG.into()),
        auth_key_out: Some(HMAC_MAG_TO_LMA.into()),
        replay_window: 64,
        esn: false,
    };
    (gcm, cbc)
}

/// The LMA's configuration is the MAG's with the directions swapped.
fn swapped(c: &EspConfig) -> EspConfig {
    EspConfig {
        spi_in: c.spi_out,
        spi_out: c.spi_in,
        key_in: c.key_out.clone(),
        key_out: c.key_in.clone(),
        auth_key_in: c.auth_key_out.clone(),
        auth_key_out: c.auth_key_in.clone(),
        ..c.clone()
    }
}

fn settings(c: &EspConfig) -> EspSettings {
    c.check("peers[0].esp").expect("valid ESP config")
}

fn pbu(checksum: Checksum) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Message::BindingUpdate(BindingUpdate {
        seq: 4711,
        flags: bu_flags::A | bu_flags::P,
        lifetime: 100,
        options: vec![
            MobilityOption::MnId {
                subtype: 1,
                id: NAI.as_bytes().to_vec(),
            },
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 64,
                prefix: "2001:db8:64::".parse().unwrap(),
            },
            MobilityOption::HandoffIndicator(HandoffIndicator::AttachmentOverNewInterface),
            MobilityOption::AccessTechType(AccessTechType::Ieee8023),
            MobilityOption::Timestamp(now.as_secs() << 16),
        ],
    })
    .to_vec(checksum)
    .unwrap()
}

fn pba(seq: u16, checksum: Checksum) -> Vec<u8> {
    Message::BindingAck(BindingAck {
        status: BaStatus::ACCEPTED,
        flags: ba_flags::P,
        seq,
        lifetime: 100,
        options: vec![MobilityOption::MnId {
            subtype: 1,
            id: NAI.as_bytes().to_vec(),
        }],
    })
    .to_vec(checksum)
    .unwrap()
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// tcpdump writing to a file; stopped with SIGINT (so it flushes) on drop.
struct Capture(Child);

impl Capture {
    /// Starts tcpdump in `ns` and returns once it says it is listening.
    fn start(ns: &Netns, iface: &str, file: &std::path::Path) -> Capture {
        let mut c = ns
            .command("tcpdump")
            .args(["-i", iface, "-U", "-s", "0", "-w"])
            .arg(file)
            .args(["ip proto 50 or ip6 proto 50"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let err = c.stderr.take().unwrap();
        let mut lines = BufReader::new(err).lines();
        let listening = lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false));
        assert!(listening, "tcpdump did not start");
        Capture(c)
    }

    fn stop(mut self) {
        self.interrupt();
    }

    fn interrupt(&mut self) {
        // SAFETY: kill(2) on the pid of the tcpdump this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.interrupt();
        }
    }
}

/// What the LMA saw: the opened PBUs (peer, parsed message), every drop,
/// and its counters.
struct LmaResult {
    opened: Vec<(Peer, Message)>,
    drops: Vec<DropReason>,
    counters: EspCounters,
}

/// The LMA: takes `expect` ESP packets and one plain UDP message, answers
/// each PBU with a PBA through ESP.
fn lma_side(ready: mpsc::Sender<()>, expect: usize) -> LmaResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (gcm, cbc) = mag_configs();
        let mut db = SaDb::new();
        db.add_peer(MAG6.into(), &settings(&swapped(&gcm))).unwrap();
        db.add_peer(MAG4.into(), &settings(&swapped(&cbc))).unwrap();
        let local = LocalAddrs {
            v6: Some(LMA6),
            v4: Some(LMA4),
        };
        let mut sig = SignalingEsp::new(db, local, PORT);
        let s6 = AsyncEspSocket::bind(LMA6.into()).unwrap();
        let s4 = AsyncEspSocket::bind(LMA4.into()).unwrap();
        let plain = tokio::net::UdpSocket::bind((LMA4, PORT)).await.unwrap();
        ready.send(()).unwrap();

        let mut res = LmaResult {
            opened: Vec::new(),
            drops: Vec::new(),
            counters: EspCounters::default(),
        };
        let (mut b6, mut b4, mut bp) = (vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut plain_seen = false;
        while res.opened.len() + res.drops.len() < expect || !plain_seen {
            let got = tokio::select! {
                r = s6.recv_from(&mut b6) => { let (src, rg) = r.unwrap(); Some((src, b6[rg].to_vec())) }
                r = s4.recv_from(&mut b4) => { let (src, rg) = r.unwrap(); Some((src, b4[rg].to_vec())) }
                r = plain.recv_from(&mut bp) => {
                    // The transport's rule for a message that came without ESP.
                    let (_, from) = r.unwrap();
                    let std::net::SocketAddr::V4(from) = from else { panic!("v6 on a v4 socket") };
                    assert!(sig.reject_unprotected(&Peer::V4(from)));
                    plain_seen = true;
                    None
                }
                _ = tokio::time::sleep_until(deadline) => panic!(
                    "LMA: only {} of {expect} ESP packets (plain seen: {plain_seen})",
                    res.opened.len() + res.drops.len()
                ),
            };
            let Some((src, esp)) = got else { continue };
            match sig.unprotect(src, &esp) {
                Ok((peer, mh)) => {
                    let ck = match peer {
                        Peer::V6(p) => Checksum::Ipv6 { src: p, dst: LMA6 },
                        Peer::V4(_) => Checksum::None,
                    };
                    let msg = Message::parse(&mh, ck).expect("a valid PBU inside");
                    let Message::BindingUpdate(bu) = &msg else { panic!("{msg:?}") };
                    let ck = match peer {
                        Peer::V6(p) => Checksum::Ipv6 { src: LMA6, dst: p },
                        Peer::V4(_) => Checksum::None,
                    };
                    let reply = Transmit::new(peer, pba(bu.seq, ck));
                    let (dst, out) = sig.protect(&reply).unwrap();
                    let sock = if dst.is_ipv4() { &s4 } else { &s6 };
                    sock.send_to(dst, &out).await.unwrap();
                    res.opened.push((peer, msg));
                }
                Err(e) => res.drops.push(e),
            }
        }
        res.counters = sig.counters().clone();
        res
    })
}

/// The MAG and the attacker beside it: sends everything, then takes the
/// two PBAs. Returns the PBAs as (peer, message).
fn mag_side(ready: mpsc::Receiver<()>) -> Vec<(Peer, Message)> {
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("LMA ready");
    let (gcm, cbc) = mag_configs();
    let mut db = SaDb::new();
    db.add_peer(LMA6.into(), &settings(&gcm)).unwrap();
    db.add_peer(LMA4.into(), &settings(&cbc)).unwrap();
    let local = LocalAddrs {
        v6: Some(MAG6),
        v4: Some(MAG4),
    };
    let mut sig = SignalingEsp::new(db, local, PORT);
    let s6 = EspSocket::bind(MAG6.into()).unwrap();
    let s4 = EspSocket::bind(MAG4.into()).unwrap();
    let rogue = EspSocket::bind(ROGUE6.into()).unwrap();
    let to6 = Transmit {
        peer: Peer::V6(LMA6),
        payload: pbu(Checksum::Ipv6 {
            src: MAG6,
            dst: LMA6,
        })
        .into(),
    };
    let to4 = Transmit {
        peer: Peer::V4(SocketAddrV4::new(LMA4, PORT)),
        payload: pbu(Checksum::None).into(),
    };
    let (d6, pbu6) = sig.protect(&to6).unwrap();
    let (d4, pbu4) = sig.protect(&to4).unwrap();
    // Both PBUs, and each again (a replay).
    for _ in 0..2 {
        s6.send_to(d6, &pbu6).unwrap();
        s4.send_to(d4, &pbu4).unwrap();
    }
    // Sealed under a guessed key with the right SPI.
    let mut guess = gcm.clone();
    guess.key_out = "0x00000000000000000000000000000001cafe0001".into();
    let mut forger = SaDb::new();
    forger.add_peer(LMA6.into(), &settings(&guess)).unwrap();
    // Ahead of the window, or it would be dropped as a replay before its ICV is looked at.
    forger.set_tx_seq(&LMA6.into(), 99);
    s6.send_to(d6, &forger.seal(&LMA6.into(), 135, &to6.payload).unwrap())
        .unwrap();
    // An SPI nobody has.
    let mut unknown = pbu6.clone();
    unknown[..4].copy_from_slice(&0x7777u32.to_be_bytes());
    s6.send_to(d6, &unknown).unwrap();
    // Cut short.
    s4.send_to(d4, &pbu4[..12]).unwrap();
    // A fresh, valid packet sent from another address.
    let (_, fresh) = sig.protect(&to6).unwrap();
    rogue.send_to(d6, &fresh).unwrap();
    // And a PBU without ESP.
    let plain = UdpSocket::bind((MAG4, 0)).unwrap();
    plain.send_to(&to4.payload, (LMA4, PORT)).unwrap();

    // The two PBAs come back through ESP.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 {
        assert!(Instant::now() < end, "MAG: {} PBAs of 2", got.len());
        for s in [&s6, &s4] {
            let Ok((src, rg)) = s.recv_from(&mut buf) else {
                continue;
            };
            let (peer, mh) = sig.unprotect(src, &buf[rg]).expect("an authentic PBA");
            let ck = match peer {
                Peer::V6(p) => Checksum::Ipv6 { src: p, dst: MAG6 },
                Peer::V4(_) => Checksum::None,
            };
            got.push((peer, Message::parse(&mh, ck).expect("a valid PBA")));
        }
        if got.len() < 2 {
            wait_readable(&[&s6, &s4], end);
        }
    }
    got
}

/// poll(2) until one of `socks` is readable or `end` passes.
fn wait_readable(socks: &[&EspSocket], end: Instant) {
    use std::os::fd::AsRawFd;
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = end.saturating_duration_since(Instant::now()).as_millis() as i32;
    // SAFETY: fds is a valid array of pollfd of the length passed.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// tshark's ESP SA table rows for the four SAs.
fn tshark_sas() -> Vec<String> {
    let row = |proto: &str,
               src: &str,
               dst: &str,
               spi: u32,
               enc: &str,
               key: &str,
               auth: &str,
               akey: &str| {
        format!(
            "uat:esp_sa:\"{proto}\",\"{src}\",\"{dst}\",\"{spi:#010x}\",\"{enc}\",\"{key}\",\"{auth}\",\"{akey}\""
        )
    };
    let gcm = "AES-GCM with 16 octet ICV [RFC4106]";
    let cbc = "AES-CBC [RFC3602]";
    let hmac = "HMAC-SHA-256-128 [RFC4868]";
    vec![
        row(
            "IPv6",
            &MAG6.to_string(),
            &LMA6.to_string(),
            0x6001,
            gcm,
            GCM_MAG_TO_LMA,
            "NULL",
            "",
        ),
        row(
            "IPv6",
            &LMA6.to_string(),
            &MAG6.to_string(),
            0x6002,
            gcm,
            GCM_LMA_TO_MAG,
            "NULL",
            "",
        ),
        row(
            "IPv4",
            &MAG4.to_string(),
            &LMA4.to_string(),
            0x4001,
            cbc,
            CBC_MAG_TO_LMA,
            hmac,
            HMAC_MAG_TO_LMA,
        ),
        row(
            "IPv4",
            &LMA4.to_string(),
            &MAG4.to_string(),
            0x4002,
            cbc,
            CBC_LMA_TO_MAG,
            hmac,
            HMAC_LMA_TO_MAG,
        ),
    ]
}

/// One row per frame: spi, sequence, ICV good, MH type, NAI, BA status, UDP checksum status.
fn tshark_rows(pcap: &std::path::Path) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(pcap);
    c.args([
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        "esp.enable_authentication_check:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ]);
    for sa in tshark_sas() {
        c.args(["-o", &sa]);
    }
    c.args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
    for f in [
        "esp.spi",
        "esp.sequence",
        "esp.icv_good",
        "mip6.mhtype",
        "mip6.mnid.identifier",
        "mip6.ba.status",
        "udp.checksum.status",
        "mip6.bu.p_flag",
    ] {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn esp_signaling_between_namespaces() {
    if !is_root() {
        eprintln!("not root: skipping");
        return;
    }
    let tools = tool("tcpdump") && tool("tshark");
    if !tools && std::env::var_os("CI").is_some() {
        panic!("tcpdump and tshark are needed");
    }
    let (mag, lma) = topology();
    let dir = TempDir::new("esp-signaling");
    let pcap = dir.path().join("esp.pcap");
    let capture = tools.then(|| Capture::start(&lma, "l0", &pcap));

    // 2 PBUs + 2 replays + forged + unknown SPI + truncated + wrong peer.
    let expect = 8;
    let (tx, rx) = mpsc::channel();
    let lma_t = lma.thread(move || lma_side(tx, expect)).unwrap();
    let pbas = mag.run_in(move || mag_side(rx)).unwrap();
    let res = lma_t.join().expect("LMA thread");

    // The LMA opened exactly the two PBUs, from the MAG, over both transports.
    let peers: Vec<Peer> = res.opened.iter().map(|(p, _)| *p).collect();
    assert!(peers.contains(&Peer::V6(MAG6)), "{peers:?}");
    assert!(
        peers.contains(&Peer::V4(SocketAddrV4::new(MAG4, PORT))),
        "{peers:?}"
    );
    for (_, m) in &res.opened {
        let Message::BindingUpdate(bu) = m else {
            panic!()
        };
        assert_eq!(bu.seq, 4711);
        assert!(bu.options.contains(&MobilityOption::MnId {
            subtype: 1,
            id: NAI.into()
        }));
    }
    let mut drops = res.drops.clone();
    drops.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        drops,
        vec![
            DropReason::BadIcv,
            DropReason::Malformed("shorter than header, IV, trailer and ICV"),
            DropReason::Replay(1),
            DropReason::Replay(1),
            DropReason::UnknownSpi(0x7777),
            DropReason::WrongPeer(0x6001),
        ]
    );
    let c = &res.counters;
    assert_eq!(c.rx_packets, 2);
    assert_eq!(
        (
            c.rx_replay,
            c.rx_bad_icv,
            c.rx_unknown_spi,
            c.rx_malformed,
            c.rx_wrong_peer,
            c.rx_unprotected
        ),
        (2, 1, 1, 1, 1, 1)
    );
    assert_eq!(c.tx_packets, 2);
    // The MAG got both PBAs.
    assert_eq!(pbas.len(), 2);
    for (peer, m) in &pbas {
        assert!(matches!(peer, Peer::V6(a) if *a == LMA6) || peer.ip() == IpAddr::V4(LMA4));
        let Message::BindingAck(ba) = m else {
            panic!("{m:?}")
        };
        assert_eq!((ba.status, ba.seq), (BaStatus::ACCEPTED, 4711));
    }

    let Some(capture) = capture else {
        eprintln!("tcpdump or tshark missing: wire check skipped");
        return;
    };
    // Every ESP packet on the link (8 to the LMA, 2 PBAs back) written, then stop.
    let end = Instant::now() + Duration::from_secs(10);
    while pmip_tests::pcap::records(&pcap) < expect + 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    capture.stop();
    check_wire(&pcap);
}

/// Two namespaces on one veth: the MAG (and a rogue address beside it) on
/// `m0`, the LMA on `l0`.
fn topology() -> (Netns, Netns) {
    let mag = Netns::new("espm").unwrap();
    let lma = Netns::new("espl").unwrap();
    veth(&mag, "m0", &lma, "l0").unwrap();
    let add = |ns: &Netns, dev: &str, a: String| {
        let mut args = vec!["ip", "addr", "add", a.as_str(), "dev", dev];
        if a.contains(':') {
            args.push("nodad");
        }
        ns.exec(&args).unwrap();
    };
    add(&mag, "m0", format!("{MAG6}/64"));
    add(&mag, "m0", format!("{ROGUE6}/64"));
    add(&mag, "m0", format!("{MAG4}/24"));
    add(&lma, "l0", format!("{LMA6}/64"));
    add(&lma, "l0", format!("{LMA4}/24"));
    (mag, lma)
}

/// tshark decrypts the four messages with the configured keys and decodes
/// the Mobility Header inside.
fn check_wire(pcap: &std::path::Path) {
    let rows = tshark_rows(pcap);
    let find = |spi: &str, mh: &str| {
        rows.iter()
            .find(|r| r[0] == spi && r[1] == "1" && r[3] == mh)
            .unwrap_or_else(|| panic!("no decrypted {spi} with MH type {mh} in {rows:#?}"))
            .clone()
    };
    // PBU over IPv6 / AES-GCM (tshark 4.0 decrypts GCM but leaves its ICV unchecked).
    let r = find("0x00006001", "5");
    assert_eq!((r[4].as_str(), r[7].as_str()), (NAI, "1"), "{r:?}");
    // PBU over IPv4 / UDP / AES-CBC + HMAC: ICV good (1), inner UDP checksum Good (1).
    let r = find("0x00004001", "5");
    assert_eq!(
        (r[2].as_str(), r[4].as_str(), r[6].as_str()),
        ("1", NAI, "1"),
        "{r:?}"
    );
    // The PBAs, each way back.
    let r = find("0x00006002", "6");
    assert_eq!((r[4].as_str(), r[5].as_str()), (NAI, "0"), "{r:?}");
    let r = find("0x00004002", "6");
    assert_eq!(
        (r[2].as_str(), r[5].as_str(), r[6].as_str()),
        ("1", "0", "1"),
        "{r:?}"
    );
}
