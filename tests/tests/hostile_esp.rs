//! Forged PMIPv6 signaling against the lab (issue 13): a host on the core
//! link sends Binding Revocation Indications with the anchor's address.
//!
//! - `insecure = true`: the access gateway believes them and cuts the
//!   subscriber off — the attack, shown.
//! - ESP (the lab's default): they are dropped and counted, the
//!   subscriber's stream goes on; so are ESP packets under a guessed key or
//!   SPI; a host that is not a peer gets no answer to anything (no
//!   reflector).
//! - tshark, given the lab's SAs in its ESP SA table, decrypts the
//!   captured PBU/PBA and decodes the Mobility Header inside: the wire is
//!   what Linux xfrm would send and accept.
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pmip_tests::capture::Capture;
use pmip_tests::gateway_cases as cases;
use pmip_tests::hostile::{self, forged_bri, forged_esp, send_paced, stat};
use pmip_tests::lab::{self, Lab, LabOpts, Proto, CORE_ANCHOR, CORE_MAG};

fn lab(tag: &str, insecure: bool) -> Result<Lab> {
    let mut o = LabOpts::new(Proto::Pmipv6, tag);
    o.gateways = 1;
    o.insecure = insecure;
    let mut l = Lab::up(o)?;
    l.attach(false)?;
    l.wait_registered(0)?;
    Ok(l)
}

/// 100 forged BRIs a second for 5 s, during a 100 packets/s ping stream
/// of the same length: (pings sent, answered).
fn attack(l: &Lab, atk: &pmip_tests::netns::Netns) -> Result<(u32, u32)> {
    let nai = l.mag(0).bindings()?[0].nai.clone();
    let ping = hostile::ping_stream(l, 500, "0.01")?;
    send_paced(atk, 500, 100, move |i| {
        forged_bri(&nai, 40_000 + i as u16, CORE_MAG[0])
    })?;
    hostile::ping_result(ping)
}

fn run(f: fn() -> Result<()>) {
    if cases::skip() {
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

#[test]
fn forged_bri_cuts_off_an_insecure_subscriber() {
    run(|| {
        let l = lab("fbi", true)?;
        let atk = hostile::core_attacker(&l)?;
        let (sent, got) = attack(&l, &atk)?;
        let st = l.mag(0).stats()?;
        eprintln!(
            "insecure: {} of {sent} pings lost; bri_rx {}",
            sent - got,
            stat(&st, "mag", "bri_rx")
        );
        ensure!(
            stat(&st, "mag", "bri_rx") >= 100,
            "the MAG took the forged BRIs: {st:?}"
        );
        // Each BRI removes the binding; the subscriber's next packet has
        // it registered again, and the next BRI removes it again.
        ensure!(
            sent - got >= sent / 5,
            "forged BRIs cut the subscriber off: {got} of {sent} answered"
        );
        Ok(())
    });
}

#[test]
fn forged_bri_is_dropped_with_esp() {
    run(|| {
        let l = lab("fbe", false)?;
        let atk = hostile::core_attacker(&l)?;
        let (sent, got) = attack(&l, &atk)?;
        // Guessed keys: the SA's SPI with garbage, and an SPI nobody has.
        let spi = lab::esp_sa(0).spi_down;
        send_paced(&atk, 100, 200, move |i| {
            forged_esp(spi, 1000 + i, CORE_MAG[0])
        })?;
        send_paced(&atk, 100, 200, move |i| {
            forged_esp(0xdead, i + 1, CORE_MAG[0])
        })?;
        let st = l.mag(0).stats()?;
        let t = "mag transport";
        eprintln!(
            "ESP: {} of {sent} pings lost; {:?}",
            sent - got,
            st.groups.get(t)
        );
        ensure!(stat(&st, t, "esp_rx_unprotected") >= 500, "{st:?}");
        ensure!(stat(&st, t, "esp_rx_bad_icv") >= 100, "{st:?}");
        ensure!(stat(&st, t, "esp_rx_unknown_spi") >= 100, "{st:?}");
        ensure!(
            stat(&st, "mag", "bri_rx") == 0,
            "a forged BRI got in: {st:?}"
        );
        ensure!(stat(&st, t, "esp_tx_packets") >= 1, "{st:?}");
        ensure!(stat(&st, t, "esp_rx_packets") >= 1, "{st:?}");
        ensure!(
            sent - got <= sent / 100,
            "the stream went on: {got} of {sent} answered"
        );
        ensure!(l.mag(0).bindings()?.len() == 1, "binding kept");
        Ok(())
    });
}

/// A host that is not a peer sends the anchor a Mobility Header of an
/// unknown type from its own address: no Binding Error comes back (and
/// none would go to whoever it spoofed), the drop is counted.
#[test]
fn strangers_get_no_answer() {
    run(|| {
        let l = lab("str", false)?;
        let atk = hostile::core_attacker(&l)?;
        let got = atk.run_in(|| -> Result<Option<usize>> {
            let s = UdpSocket::bind((hostile::ATTACKER, 5436))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            // Payload proto 59, length 0 (8 octets), MH type 200.
            let mh = [59u8, 0, 200, 0, 0, 0, 0, 0];
            for _ in 0..10 {
                s.send_to(&mh, (CORE_ANCHOR, 5436))?;
            }
            let mut buf = [0u8; 512];
            Ok(s.recv_from(&mut buf).ok().map(|(n, _)| n))
        })??;
        ensure!(got.is_none(), "the anchor answered a stranger");
        let st = l.lma().stats()?;
        ensure!(
            stat(&st, "lma transport", "rx_unknown_peer") >= 10,
            "{st:?}"
        );
        Ok(())
    });
}

/// tshark's ESP SA table rows for the lab's SAs with gateway 0.
fn tshark_sas() -> Vec<String> {
    let e = lab::esp_sa(0);
    let row = |src: Ipv4Addr, dst: Ipv4Addr, spi: u32, key: &str| {
        format!(
            "uat:esp_sa:\"IPv4\",\"{src}\",\"{dst}\",\"{spi:#010x}\",\
             \"AES-GCM with 16 octet ICV [RFC4106]\",\"{key}\",\"NULL\",\"\""
        )
    };
    vec![
        row(CORE_MAG[0], CORE_ANCHOR, e.spi_up, &e.key_up),
        row(CORE_ANCHOR, CORE_MAG[0], e.spi_down, &e.key_down),
    ]
}

#[test]
fn tshark_decrypts_the_protected_signaling() {
    run(|| {
        if !pmip_tests::pcap::have_tshark() || !lab::have("tcpdump") {
            eprintln!("skipped: needs tshark and tcpdump");
            return Ok(());
        }
        let mut o = LabOpts::new(Proto::Pmipv6, "tse");
        o.gateways = 1;
        o.insecure = false;
        let mut l = Lab::up(o)?;
        let pcap = l.dir.0.join("core.pcap");
        let cap = Capture::start(&l.mags[0], "core0", "ip proto 50 or udp port 5436", &pcap)?;
        l.attach(false)?;
        l.wait_registered(0)?;
        // tcpdump hands packets over in blocks: wait for them on disk.
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while pmip_tests::pcap::records(&pcap) < 2 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let n = cap.stop();
        ensure!(
            n >= 2,
            "PBU and PBA captured ({n} packets in {})",
            pcap.display()
        );
        let mut c = std::process::Command::new("tshark");
        c.arg("-r").arg(&pcap).args([
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ]);
        for sa in tshark_sas() {
            c.args(["-o", &sa]);
        }
        c.args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
        for f in [
            "esp.spi",
            "esp.icv_good",
            "mip6.mhtype",
            "mip6.bu.p_flag",
            "mip6.mnid.identifier",
            "mip6.ba.status",
            "udp.dstport",
        ] {
            c.args(["-e", f]);
        }
        let out = c.output().context("tshark")?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
        eprintln!("{text}");
        let e = lab::esp_sa(0);
        ensure!(
            rows.iter().all(|r| !r[0].is_empty()),
            "signaling left without ESP:\n{text}"
        );
        let pbu = rows
            .iter()
            .find(|r| r[2] == "5")
            .with_context(|| format!("no PBU decrypted:\n{text}"))?;
        ensure!(pbu[0] == format!("{:#010x}", e.spi_up), "{pbu:?}");
        ensure!(
            pbu[1] == "1" || pbu[1] == "True",
            "PBU ICV not good: {pbu:?}"
        );
        ensure!(pbu[3] == "1" || pbu[3] == "True", "P flag: {pbu:?}");
        ensure!(!pbu[4].is_empty() && pbu[6] == "5436", "{pbu:?}");
        let pba = rows
            .iter()
            .find(|r| r[2] == "6")
            .with_context(|| format!("no PBA decrypted:\n{text}"))?;
        ensure!(pba[0] == format!("{:#010x}", e.spi_down), "{pba:?}");
        ensure!(
            pba[1] == "1" || pba[1] == "True",
            "PBA ICV not good: {pba:?}"
        );
        ensure!(pba[5] == "0", "PBA status: {pba:?}");
        Ok(())
    });
}

/// Manually keyed SAs outlive the daemons: a restarted gateway continues
/// above the numbers it used (the peer's window would take it for a
/// replayer otherwise), in both roles, even after `kill -9`. Without the
/// state file the anchor does drop the restarted gateway's signaling.
#[test]
fn esp_sequence_numbers_survive_restarts() {
    run(|| {
        let mut l = lab("esr", false)?;
        let one = |b: &[pmip_user::ctl::BindingView]| b.len() == 1;
        let replays = |l: &Lab| -> Result<u64> {
            Ok(stat(&l.lma().stats()?, "lma transport", "esp_rx_replay"))
        };
        // The access gateway dies; the new one registers the subscriber
        // again on its next packets.
        l.access[0].as_mut().expect("mag1").kill9();
        l.start_access(0)?;
        Lab::ping(&l.sub, &lab::CN.to_string(), 10)?;
        l.mag(0)
            .wait_bindings(Duration::from_secs(10), "registered again", one)?;
        ensure!(
            replays(&l)? == 0,
            "the anchor took the restarted MAG for a replayer"
        );
        // The anchor dies; a new subscriber's registration goes through it.
        l.anchor_d.as_mut().expect("anchor").kill9();
        l.start_anchor()?;
        let k = l.add_subscriber("02:00:00:00:aa:02")?;
        let dir2 = l.dir.0.join("sub2");
        std::fs::create_dir_all(&dir2)?;
        let c2 = lab::Dhcpc::start(&l.more_subs[k], "s0", &dir2, false)?;
        c2.wait_event("bound", 1, Duration::from_secs(25))?;
        ensure!(replays(&l)? == 0);
        let mag = l.mag(0).stats()?;
        ensure!(stat(&mag, "mag transport", "esp_rx_replay") == 0, "{mag:?}");
        // Without its state file, the restarted gateway starts over at 1.
        l.access[0].as_mut().expect("mag1").kill9();
        std::fs::remove_file(l.dir.0.join("mag1.esp-seq"))?;
        l.start_access(0)?;
        // Its subscribers come back from the store with nothing to send yet;
        // a new one makes it signal.
        let k = l.add_subscriber("02:00:00:00:aa:03")?;
        let dir3 = l.dir.0.join("sub3");
        std::fs::create_dir_all(&dir3)?;
        let _c3 = lab::Dhcpc::start(&l.more_subs[k], "s0", &dir3, false)?;
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while replays(&l)? == 0 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
        }
        ensure!(replays(&l)? > 0, "numbers from 1 again were not refused");
        Ok(())
    });
}
