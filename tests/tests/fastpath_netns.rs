//! End to end through the real fast path on veths: subscriber — access gateway
//! — anchor — correspondent in four namespaces, static bindings, ping and
//! iperf3 both ways, and a capture on the gateway–anchor link that tshark
//! decodes as GRE with the configured keys and nothing else. Runs in native
//! and in generic XDP mode, and with the TC ingress program on both gateways
//! (no XDP on their interfaces).
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use pmip_common::{role, Counter};
use pmip_tests::lab::Iperf;
use pmip_tests::netns::{is_root, veth, Netns};
use pmip_user::dataplane::{AccessBinding, AccessPoint, AnchorBinding, TunnelEnds};
use pmip_user::fastpath::{AttachMode, FastPath, IfaceSpec, LoadOptions};
use pmip_user::mac::parse_mac_or_err;
use pmip_user::sys::ifindex;

const UP_KEY: u32 = 100;
const DOWN_KEY: u32 = 200;
const HOME: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 10);
const GW: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const MAG: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const LMA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

struct Lab {
    sub: Netns,
    mag: Netns,
    /// A bridge between the gateways: the capture point of the tunnel link.
    wire: Netns,
    lma: Netns,
    cn: Netns,
}

/// `offload`: the subscriber and the correspondent keep TX checksum and
/// segmentation offload (their veths hand 64 KB TCP super-packets with
/// partial checksums to the gateways); otherwise it is off, as XDP needs.
fn lab(offload: bool) -> Lab {
    let l = Lab {
        sub: Netns::new("sub").unwrap(),
        mag: Netns::new("mag").unwrap(),
        wire: Netns::new("wire").unwrap(),
        lma: Netns::new("lma").unwrap(),
        cn: Netns::new("cn").unwrap(),
    };
    veth(&l.sub, "s0", &l.mag, "acc0").unwrap();
    veth(&l.mag, "core0", &l.wire, "w0").unwrap();
    veth(&l.wire, "w1", &l.lma, "core0").unwrap();
    veth(&l.lma, "cn0", &l.cn, "c0").unwrap();
    let run = |ns: &Netns, cmds: &[&str]| {
        for c in cmds {
            let args: Vec<&str> = c.split_whitespace().collect();
            ns.exec(&args).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    };
    run(
        &l.sub,
        &[
            "ip addr add 10.64.0.10/24 dev s0",
            "ip route add default via 10.64.0.1",
        ],
    );
    if !offload {
        // veth quirk: partial checksums die in XDP.
        run(&l.sub, &["ethtool -K s0 tx off"]);
        run(&l.cn, &["ethtool -K c0 tx off"]);
    }
    run(
        &l.mag,
        &[
            "sysctl -qw net.ipv4.ip_forward=1",
            "sysctl -qw net.ipv4.conf.all.accept_local=1",
            "sysctl -qw net.ipv4.conf.acc0.accept_local=1",
            "sysctl -qw net.ipv6.conf.core0.disable_ipv6=1",
            "ip addr add 10.64.0.1/24 dev acc0",
            "ip addr add 192.0.2.1/24 dev core0",
            "ip route add default via 192.0.2.2",
        ],
    );
    run(
        &l.lma,
        &[
            "sysctl -qw net.ipv4.ip_forward=1",
            "sysctl -qw net.ipv4.conf.all.accept_local=1",
            "sysctl -qw net.ipv4.conf.cn0.accept_local=1",
            "sysctl -qw net.ipv6.conf.core0.disable_ipv6=1",
            "ip addr add 192.0.2.2/24 dev core0",
            "ip addr add 203.0.113.1/24 dev cn0",
            "ip route add 10.64.0.0/24 via 192.0.2.1",
        ],
    );
    run(
        &l.wire,
        &[
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            "ip link add br0 type bridge",
            "ip link set w0 master br0",
            "ip link set w1 master br0",
            "ip link set br0 up",
        ],
    );
    run(
        &l.cn,
        &[
            "ip addr add 203.0.113.2/24 dev c0",
            "ip route add default via 203.0.113.1",
        ],
    );
    l
}

/// Far ends of the veths the gateways transmit into: in native mode a veth
/// only receives XDP frames when its own end runs an XDP program (the pass
/// program of the test object; attached while the value lives).
fn start_pass(ns: &Netns, ifaces: &'static [&'static str]) -> aya::Ebpf {
    ns.run_in(move || {
        let mut ebpf = pmip_user::fastpath::load_test_object().unwrap();
        for i in ifaces {
            pmip_user::fastpath::attach_pass(&mut ebpf, i).unwrap();
        }
        ebpf
    })
    .unwrap()
}

/// Makes the subscriber's s0 a VLAN port (pmip-ebpf/src/test/vlan.rs: this
/// kernel has no 8021q module): tagged on the way out, and only frames
/// tagged with the id come in. The programs stay attached while the value lives.
fn tag_subscriber(ns: &Netns) -> aya::Ebpf {
    use aya::programs::{tc::TcAttachType, SchedClassifier};
    ns.run_in(|| {
        let mut ebpf = pmip_user::fastpath::load_test_object().unwrap();
        let _ = aya::programs::tc::qdisc_add_clsact("s0");
        for (name, dir) in [
            ("test_vlan_tag", TcAttachType::Egress),
            ("test_vlan_untag", TcAttachType::Ingress),
        ] {
            let p: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
            p.load().unwrap();
            p.attach("s0", dir).unwrap();
        }
        ebpf
    })
    .unwrap()
}

fn start_mag(ns: &Netns, mode: AttachMode, sub_mac: [u8; 6], vlan: u16) -> FastPath {
    ns.run_in(move || {
        let mut fp = FastPath::load(&LoadOptions::default()).unwrap();
        let acc = IfaceSpec {
            name: "acc0".into(),
            role: role::ACCESS,
            addr4: Some(GW),
            addr6: None,
        };
        let core = IfaceSpec {
            name: "core0".into(),
            role: role::ACCESS_CORE,
            addr4: Some(MAG),
            addr6: None,
        };
        fp.attach(&acc, mode).unwrap();
        fp.attach(&core, mode).unwrap();
        fp.install_access(&AccessBinding {
            at: AccessPoint {
                ifindex: ifindex("acc0").unwrap(),
                vlan,
                mac: sub_mac,
            },
            sub_id: 1,
            tunnel: TunnelEnds {
                local: IpAddr::V4(MAG),
                remote: IpAddr::V4(LMA),
            },
            uplink_key: UP_KEY,
            downlink_key: DOWN_KEY,
            home_v4: Some(HOME),
            gateway_v4: Some(GW),
            hnp: None,
        })
        .unwrap();
        fp
    })
    .unwrap()
}

fn start_lma(ns: &Netns, mode: AttachMode) -> FastPath {
    ns.run_in(move || {
        let mut fp = FastPath::load(&LoadOptions::default()).unwrap();
        let core = IfaceSpec {
            name: "core0".into(),
            role: role::ANCHOR_CORE,
            addr4: Some(LMA),
            addr6: None,
        };
        let cn = IfaceSpec {
            name: "cn0".into(),
            role: role::ANCHOR_CN,
            addr4: Some(Ipv4Addr::new(203, 0, 113, 1)),
            addr6: None,
        };
        fp.attach(&core, mode).unwrap();
        fp.attach(&cn, mode).unwrap();
        fp.install_anchor(&AnchorBinding {
            sub_id: 1,
            tunnel: TunnelEnds {
                local: IpAddr::V4(LMA),
                remote: IpAddr::V4(MAG),
            },
            uplink_key: UP_KEY,
            downlink_key: DOWN_KEY,
            home_v4: Some(HOME),
            hnp: None,
        })
        .unwrap();
        fp
    })
    .unwrap()
}

/// Programs on `iface`'s TC ingress (TCX) in `ns`.
fn tc_ingress_programs(ns: &Netns, iface: &'static str) -> usize {
    use aya::programs::{tc::TcAttachType, SchedClassifier};
    ns.run_in(move || {
        SchedClassifier::query_tcx(iface, TcAttachType::Ingress)
            .map(|(_, p)| p.len())
            .unwrap_or(0)
    })
    .unwrap()
}

fn ping(ns: &Netns, dst: &str) -> String {
    let o = ns
        .exec_status(&["ping", "-c", "5", "-i", "0.2", "-W", "2", dst])
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Bytes one 2-second iperf3 test moved, subscriber to correspondent (or
/// back with `reverse`). The server serves that one test and is gone before
/// this returns, so the next call's server binds the port anew.
fn iperf(l: &mut Lab, reverse: bool) -> u64 {
    let mut server =
        l.cn.command("iperf3")
            .args(["-s", "-1", "-B", "203.0.113.2"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
    l.cn.wait_tcp_listen(5201, true, Duration::from_secs(5))
        .unwrap();
    let mut args = vec!["iperf3", "-c", "203.0.113.2", "-t", "2", "-J"];
    args.extend(["--connect-timeout", "3000"]);
    if reverse {
        args.push("-R");
    }
    let o = l.sub.exec_status(&args).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while server.try_wait().unwrap().is_none() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
    let r = Iperf::parse(&o).unwrap();
    assert!(r.ok, "iperf3 failed ({}): {}", o.status, r.error);
    r.bytes_received
}

fn through_tunnel(mode: AttachMode, offload: bool, vlan: u16) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut l = lab(offload);
    let sub_mac = parse_mac_or_err(
        l.sub
            .exec(&["cat", "/sys/class/net/s0/address"])
            .unwrap()
            .trim(),
    )
    .unwrap();
    let _pass = [
        start_pass(&l.sub, &["s0"]),
        start_pass(&l.wire, &["w0", "w1"]),
        start_pass(&l.cn, &["c0"]),
    ];
    let _tagging = (vlan != 0).then(|| tag_subscriber(&l.sub));
    let mag = start_mag(&l.mag, mode, sub_mac, vlan);
    let lma = start_lma(&l.lma, mode);
    if mode == AttachMode::Tc {
        // The TC path alone: no XDP program on the gateways' interfaces.
        for (ns, ifs) in [(&l.mag, ["acc0", "core0"]), (&l.lma, ["core0", "cn0"])] {
            for i in ifs {
                let link = ns.exec(&["ip", "-d", "link", "show", i]).unwrap();
                assert!(
                    !link.contains("prog/xdp"),
                    "XDP attached to {i} in TC mode: {link}"
                );
                assert_eq!(tc_ingress_programs(ns, i), 1, "TC ingress programs on {i}");
            }
        }
    }
    let tmp = pmip_tests::TempDir::new(&format!("fastpath-{mode:?}-{offload}-{vlan}"));
    let pcap = tmp
        .path()
        .join("tunnel.pcap")
        .to_string_lossy()
        .into_owned();
    // Everything but the links' own chatter (ARP, IGMP reports when they come up).
    let mut tcpdump = l.wire.command("tcpdump");
    tcpdump
        .args([
            "-q", "-i", "w0", "-U", "-s", "96", "-c", "4000", "-w", &pcap,
        ])
        .arg("not arp and not igmp")
        .stdout(std::process::Stdio::null());
    let mut tcpdump = pmip_tests::capture::spawn_listening(tcpdump, "tcpdump on w0").unwrap();

    let show = |fp: &FastPath| {
        fp.counters()
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let p = ping(&l.sub, "203.0.113.2");
    assert!(
        p.contains(" 0% packet loss"),
        "ping subscriber → correspondent:\n{p}\nMAG: {}\nLMA: {}",
        show(&mag),
        show(&lma)
    );
    let p = ping(&l.cn, "10.64.0.10");
    assert!(
        p.contains(" 0% packet loss"),
        "ping correspondent → subscriber:\n{p}\nMAG: {}\nLMA: {}",
        show(&mag),
        show(&lma)
    );
    // The anchor host itself → subscriber: TC egress tunnels it (the capture
    // below proves it went as GRE, not as a plain routed packet).
    let p = ping(&l.lma, "10.64.0.10");
    assert!(
        p.contains(" 0% packet loss"),
        "ping anchor host → subscriber:\n{p}\nMAG: {}\nLMA: {}",
        show(&mag),
        show(&lma)
    );
    // A DF packet that does not fit the tunnel (1500 > 1500 - 28): the fast
    // path answers fragmentation-needed with the tunnel MTU itself (before
    // TCP runs into it and the subscriber caches the path MTU).
    let o = l
        .sub
        .exec_status(&[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1472",
            "203.0.113.2",
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("mtu = 1472"),
        "no frag-needed with the tunnel MTU:\n{text}\nMAG: {}",
        show(&mag)
    );
    assert_eq!(
        mag.counter(Counter::TxIcmpTooBig).unwrap(),
        1,
        "MAG: {}",
        show(&mag)
    );

    // The first uplink packet met an unresolved neighbour and went through the
    // kernel, and still none was lost.
    assert!(
        mag.counter(Counter::PassNoNeigh).unwrap() >= 1,
        "MAG: {}",
        show(&mag)
    );
    let up = iperf(&mut l, false);
    let down = iperf(&mut l, true);
    assert!(
        up > 1_000_000 && down > 1_000_000,
        "iperf3 moved too little: up {up} B, down {down} B"
    );

    // The fast path did the work: counters on both gateways and per subscriber.
    // Maps are reached through their fds: no need to be inside the namespace.
    let c = |fp: &FastPath, ctr: Counter| fp.counter(ctr).unwrap();
    let enc_up = c(&mag, Counter::TxEncapUplink) + c(&mag, Counter::PassNoNeigh);
    let dec_down = c(&mag, Counter::TxDecapDownlink);
    let dec_up = c(&lma, Counter::TxDecapUplink) + c(&lma, Counter::PassNoNeigh);
    let enc_down = c(&lma, Counter::TxEncapDownlink);
    assert!(enc_up > 1000 && dec_down > 1000 && dec_up > 1000 && enc_down > 1000,
        "fast path counters: enc_up {enc_up} dec_down {dec_down} dec_up {dec_up} enc_down {enc_down}");
    let t = mag.traffic(1).unwrap();
    eprintln!("{mode:?} (offload {offload}, VLAN {vlan}): iperf3 up {up} B, down {down} B in 2 s; MAG per packet: up {} B, down {} B",
        t.up_bytes / t.up_packets.max(1), t.down_bytes / t.down_packets.max(1));
    assert!(
        t.up_packets > 1000 && t.down_packets > 1000 && t.up_bytes > up / 2,
        "{t:?}"
    );

    // SIGINT: tcpdump writes what it holds and exits (or has, at 4000).
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    if pmip_tests::lab::wait_timeout(&mut tcpdump, Duration::from_secs(3)).is_none() {
        let _ = tcpdump.kill();
        let _ = tcpdump.wait();
    }
    drop(l.wire);
    let o = std::process::Command::new("tshark")
        .args([
            "-r", &pcap, "-T", "fields", "-e", "ip.proto", "-e", "gre.key", "-e", "ip.src", "-e",
            "ip.dst",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() > 100,
        "capture too small: {} packets",
        lines.len()
    );
    for line in &lines {
        let f: Vec<&str> = line.split('\t').collect();
        let ok = f.first().map(|p| p.starts_with("47")) == Some(true)
            && (f.get(1) == Some(&"0x00000064")
                || f.get(1) == Some(&"0x000000c8")
                || f.get(1) == Some(&"100")
                || f.get(1) == Some(&"200"));
        assert!(ok, "non-GRE or wrong key on the tunnel link: {line}");
    }
    drop(mag);
    drop(lma);
}

#[test]
fn tunnel_native_xdp() {
    through_tunnel(AttachMode::Native, false, 0);
}

#[test]
fn tunnel_generic_xdp() {
    through_tunnel(AttachMode::Generic, false, 0);
}

#[test]
fn tunnel_tc_ingress() {
    through_tunnel(AttachMode::Tc, false, 0);
}

/// TC sees skbs as the stack has them: here TCP super-packets (GSO) with
/// partial checksums, encapsulated whole and segmented by the kernel on the
/// way out (their segment size lowered by the tunnel overhead).
#[test]
fn tunnel_tc_ingress_offload() {
    through_tunnel(AttachMode::Tc, true, 0);
}

/// An 802.1Q-tagged subscriber (VLAN 100, see `tag_subscriber`): at TC
/// ingress the tag is in skb metadata (the XDP tests never see that); the
/// fast path keys the subscriber by it, answers its ARP on the tag, tunnels
/// untagged (the capture finds only GRE) and delivers the downlink tagged.
#[test]
fn tunnel_tc_ingress_vlan() {
    through_tunnel(AttachMode::Tc, false, 100);
}

/// Runs the `pmipd` built next to this test binary.
fn pmipd() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("pmipd")
}

/// Removes a pin directory even if the test fails.
struct PinGuard(std::path::PathBuf);
impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = pmip_user::fastpath::unpin_all(&self.0);
    }
}

/// A bpffs of the test's own, mounted outside /sys: `ip netns exec` mounts a
/// fresh /sys, which would hide /sys/fs/bpf from the daemons it starts.
struct BpfFs(std::path::PathBuf);
impl BpfFs {
    /// `tag`: tests of one process running at once each mount their own.
    fn mount(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("pmip-bpffs-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        pmip_tests::netns::sh(&["mount", "-t", "bpf", "bpf", p.to_str().unwrap()]).unwrap();
        BpfFs(p)
    }
}
impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A child killed (if still running) and reaped when dropped: a failed
/// assertion leaves no daemon behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// With pinned maps and links the fast path keeps forwarding after pmipd
/// exits (an agent restart relies on it); `pmipd unpin` stops it.
#[test]
fn forwarding_survives_agent_exit() {
    survives_agent_exit("native");
}

/// The same with the TC ingress program (pinned TCX links).
#[test]
fn forwarding_survives_agent_exit_tc() {
    survives_agent_exit("tc");
}

fn survives_agent_exit(mode: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let l = lab(false);
    let sub_mac = l
        .sub
        .exec(&["cat", "/sys/class/net/s0/address"])
        .unwrap()
        .trim()
        .to_string();
    let _pass = [
        start_pass(&l.sub, &["s0"]),
        start_pass(&l.wire, &["w0", "w1"]),
        start_pass(&l.cn, &["c0"]),
    ];
    let tmp = pmip_tests::TempDir::new(&format!("pin-{mode}"));
    let dir = tmp.path().to_path_buf();
    let fs = BpfFs::mount(mode);
    let pin_mag = fs.0.join("mag");
    let pin_lma = fs.0.join("lma");
    let _g = (PinGuard(pin_mag.clone()), PinGuard(pin_lma.clone()));
    let mag_cfg = format!(
        r#"
attach_mode = "{mode}"
pin_dir = "{}"
[[interface]]
name = "acc0"
role = "access"
ipv4 = "10.64.0.1"
[[interface]]
name = "core0"
role = "access-core"
ipv4 = "192.0.2.1"
[[access]]
interface = "acc0"
mac = "{sub_mac}"
home_v4 = "10.64.0.10"
gateway_v4 = "10.64.0.1"
local = "192.0.2.1"
remote = "192.0.2.2"
uplink_key = 100
downlink_key = 200
sub_id = 1
"#,
        pin_mag.display()
    );
    let lma_cfg = format!(
        r#"
attach_mode = "{mode}"
pin_dir = "{}"
[[interface]]
name = "core0"
role = "anchor-core"
[[interface]]
name = "cn0"
role = "anchor-cn"
ipv4 = "203.0.113.1"
[[anchor]]
home_v4 = "10.64.0.10"
local = "192.0.2.2"
remote = "192.0.2.1"
uplink_key = 100
downlink_key = 200
sub_id = 1
"#,
        pin_lma.display()
    );
    let mut daemons = Vec::new();
    for (ns, cfg, name) in [(&l.mag, &mag_cfg, "mag"), (&l.lma, &lma_cfg, "lma")] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, cfg).unwrap();
        let mut child = Reaped(
            ns.command(pmipd().to_str().unwrap())
                .args(["static", path.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        daemons.push((child, out));
        assert!(line.contains("forwarding"), "{name}: pmipd said {line:?}");
    }
    let p = ping(&l.sub, "203.0.113.2");
    assert!(p.contains(" 0% packet loss"), "with pmipd running:\n{p}");
    for (mut d, _out) in daemons {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.0.id() as i32, libc::SIGTERM) };
        assert!(d.0.wait().unwrap().success());
    }
    // The counters outlive the daemon too: read them from the pinned map.
    let encapsulated = |pin: &std::path::Path| -> u64 {
        let m = aya::maps::MapData::from_pin(pin.join("COUNTERS")).unwrap();
        let m: aya::maps::PerCpuArray<_, u64> =
            aya::maps::PerCpuArray::try_from(aya::maps::Map::PerCpuArray(m)).unwrap();
        let c = |c: Counter| m.get(&(c as u32), 0).unwrap().iter().sum::<u64>();
        c(Counter::TxEncapUplink) + c(Counter::PassNoNeigh)
    };
    let before = encapsulated(&pin_mag);
    let p = ping(&l.sub, "203.0.113.2");
    assert!(p.contains(" 0% packet loss"), "after pmipd exited:\n{p}");
    let after = encapsulated(&pin_mag);
    assert!(
        after >= before + 5,
        "the pings did not go through the fast path: {before} -> {after}"
    );
    for (ns, pin, core_if) in [(&l.mag, &pin_mag, "acc0"), (&l.lma, &pin_lma, "cn0")] {
        let links = ns.exec(&["ip", "-d", "link", "show"]).unwrap();
        if mode == "tc" {
            assert_eq!(
                tc_ingress_programs(ns, core_if),
                1,
                "TC ingress not attached to {core_if} while pinned"
            );
            assert_eq!(
                tc_ingress_programs(ns, "core0"),
                1,
                "TC ingress not attached to core0 while pinned"
            );
        } else {
            assert!(
                links.contains("prog/xdp"),
                "XDP not attached while pinned:\n{links}"
            );
        }
        ns.exec(&[pmipd().to_str().unwrap(), "unpin", pin.to_str().unwrap()])
            .unwrap();
        assert!(!pin.exists());
        let links = ns.exec(&["ip", "-d", "link", "show"]).unwrap();
        assert!(
            !links.contains("prog/xdp"),
            "XDP still attached after unpin:\n{links}"
        );
        assert_eq!(
            tc_ingress_programs(ns, core_if) + tc_ingress_programs(ns, "core0"),
            0,
            "TC ingress still attached after unpin"
        );
    }
}
