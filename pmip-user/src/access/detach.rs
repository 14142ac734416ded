//! Detach detection by ARP polling (seed 004, `discover-mn-detach poll
//! interval X timeout Y retries N`): every `interval` the gateway sends the
//! subscriber an ARP request for its home address; without an answer within
//! `timeout` it asks again, up to `retries` more times, then declares the
//! subscriber gone (→ deregistration). Any ARP from the subscriber, or any
//! other sign of life the shell reports with [`DetachMonitor::seen`], restarts
//! the interval.
//!
//! Probes are unicast to the subscriber's MAC (like Linux NUD probes, RFC 1122
//! §2.3.2.1), so a large access link is not flooded with broadcasts.
//! Sans-IO: `add`/`remove`, `handle_arp(now, ..)`, `seen(now, ..)`,
//! `poll_transmit()`, `poll_event()`, `poll_timeout()`, `handle_timeout(now)`.
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::frame::{ArpOp, ArpRepr};
use crate::dataplane::AccessPoint;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetachConfig {
    /// Period between polls of a quiet subscriber (Cisco "Detach Query Period", default 10 s).
    pub interval: Duration,
    /// Wait for an answer (Cisco "Detach Query Response Time", default 2 s).
    pub timeout: Duration,
    /// Probes after the first one before the subscriber counts as gone.
    pub retries: u32,
}

impl Default for DetachConfig {
    fn default() -> Self {
        DetachConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        }
    }
}

impl DetachConfig {
    /// Longest time from the last sign of life to the detach decision.
    pub fn worst_case(&self) -> Duration {
        self.interval + self.timeout * (self.retries + 1)
    }
}

/// An ARP request to send: who-has `target` tell `sender`, to `at.mac` on `at`'s link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub at: AccessPoint,
    pub target: Ipv4Addr,
    pub sender: Ipv4Addr,
}

impl Probe {
    /// The Ethernet frame of this probe, from `src_mac` (the access interface's).
    pub fn to_frame(&self, src_mac: [u8; 6]) -> Vec<u8> {
        ArpRepr {
            op: ArpOp::Request,
            sha: src_mac,
            spa: self.sender,
            tha: [0; 6],
            tpa: self.target,
        }
        .to_frame(self.at.mac)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    pub at: AccessPoint,
    pub home: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Quiet until `next_probe`.
    Idle { next_probe: Instant },
    /// `sent` probes out, the last one times out at `deadline`.
    Probing { sent: u32, deadline: Instant },
}

#[derive(Clone, Copy, Debug)]
struct Sub {
    home: Ipv4Addr,
    gateway: Ipv4Addr,
    state: State,
}

impl Sub {
    /// The ARP request that asks it: who-has its home address.
    fn probe(&self, at: AccessPoint) -> Probe {
        Probe {
            at,
            target: self.home,
            sender: self.gateway,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DetachStats {
    pub probes: u64,
    pub replies: u64,
    pub detached: u64,
}

pub struct DetachMonitor {
    cfg: DetachConfig,
    /// Off: the monitor only keeps the subscriber table (for proxy ARP).
    polling: bool,
    subs: HashMap<AccessPoint, Sub>,
    transmits: VecDeque<Probe>,
    events: VecDeque<Detached>,
    /// Presence checks under way ([`check`](Self::check)).
    checks: HashMap<AccessPoint, Check>,
    presence: VecDeque<Presence>,
    pub stats: DetachStats,
}

/// How long a presence check waits for the subscriber's answer, and when
/// it asks a second time (one lost frame is not absence). A host on the
/// access link answers ARP in well under a millisecond; an LMA waits a
/// second before it asks again (RFC 5846 §11 InitMINDelayBRIs).
pub const CHECK_WAIT: Duration = Duration::from_millis(500);
pub const CHECK_RESEND: Duration = Duration::from_millis(200);

/// One presence check's timers, for the ARP monitor here and the RA
/// engine's (`ra/presence.rs`): a second probe at [`CHECK_RESEND`], the
/// end at [`CHECK_WAIT`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Check {
    deadline: Instant,
    resend: Option<Instant>,
}

/// What a check's timer says at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckStep {
    Wait,
    /// Probe once more.
    Resend,
    /// No answer: absent.
    Over,
}

impl Check {
    /// Started at `now` (the first probe goes with it).
    pub(crate) fn new(now: Instant) -> Self {
        Check {
            deadline: now + CHECK_WAIT,
            resend: Some(now + CHECK_RESEND),
        }
    }

    /// When the timer next wants to run.
    pub(crate) fn due(&self) -> Instant {
        self.resend.unwrap_or(self.deadline)
    }

    pub(crate) fn step(&mut self, now: Instant) -> CheckStep {
        if now >= self.deadline {
            CheckStep::Over
        } else if self.resend.is_some_and(|r| now >= r) {
            self.resend = None;
            CheckStep::Resend
        } else {
            CheckStep::Wait
        }
    }
}

/// The answer to a presence check: whether the subscriber answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    pub at: AccessPoint,
    pub present: bool,
}

impl DetachMonitor {
    pub fn new(cfg: DetachConfig) -> Self {
        DetachMonitor {
            cfg,
            polling: true,
            subs: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            checks: HashMap::new(),
            presence: VecDeque::new(),
            stats: DetachStats::default(),
        }
    }

    pub fn config(&self) -> &DetachConfig {
        &self.cfg
    }

    /// Turns ARP polling on or off (`detach.enabled`); the table stays.
    pub(crate) fn set_polling(&mut self, on: bool) {
        self.polling = on;
    }

    /// Draft §6.1 (seed 003): the access router is the subscriber's L2 endpoint
    /// for every address, so a registered subscriber's ARP request for any
    /// other address is answered with our MAC. Not answered: the subscriber's
    /// own address (gratuitous ARP / RFC 5227 announcements), probes with
    /// sender 0.0.0.0 (a DHCP client checking its new address must not see a
    /// conflict), strangers, and `kernel_owned` (the router address, which the
    /// kernel already answers).
    pub(crate) fn proxy_arp_reply(
        &self,
        ifindex: u32,
        vlan: u16,
        req: &ArpRepr,
        our_mac: [u8; 6],
        kernel_owned: Ipv4Addr,
    ) -> Option<ArpRepr> {
        if req.op != ArpOp::Request
            || req.tpa == req.spa
            || req.tpa.is_unspecified()
            || req.tpa == kernel_owned
        {
            return None;
        }
        let s = self.subs.get(&AccessPoint {
            ifindex,
            vlan,
            mac: req.sha,
        })?;
        if s.home != req.spa {
            return None;
        }
        Some(ArpRepr {
            op: ArpOp::Reply,
            sha: our_mac,
            spa: req.tpa,
            tha: req.sha,
            tpa: req.spa,
        })
    }

    /// Starts watching a registered subscriber; `gateway` is the ARP sender address.
    pub fn add(&mut self, now: Instant, at: AccessPoint, home: Ipv4Addr, gateway: Ipv4Addr) {
        self.subs.insert(
            at,
            Sub {
                home,
                gateway,
                state: State::Idle {
                    next_probe: now + self.cfg.interval,
                },
            },
        );
    }

    pub fn remove(&mut self, at: &AccessPoint) {
        self.subs.remove(at);
        if self.checks.remove(at).is_some() {
            self.presence.push_back(Presence {
                at: *at,
                present: false,
            });
        }
    }

    /// Is the subscriber at `at` still on the link? (RFC 5846 §9.1: a MAG
    /// told that its MN moved away checks before it lets the binding go.)
    /// Probes it now, and once more if it stays quiet; the answer is a
    /// [`Presence`] ([`poll_presence`](Self::poll_presence)): present when
    /// it answers within [`CHECK_WAIT`], absent otherwise, or at once when
    /// it is not watched. Polling on or off.
    pub fn check(&mut self, now: Instant, at: AccessPoint) {
        let Some(s) = self.subs.get(&at) else {
            self.presence.push_back(Presence { at, present: false });
            return;
        };
        self.transmits.push_back(s.probe(at));
        self.stats.probes += 1;
        self.checks.insert(at, Check::new(now));
    }

    pub fn poll_presence(&mut self) -> Option<Presence> {
        self.presence.pop_front()
    }

    /// The presence checks' timers: a second probe, then absence.
    fn check_timeouts(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (at, c) in self.checks.iter_mut() {
            match c.step(now) {
                CheckStep::Over => done.push(*at),
                CheckStep::Resend => {
                    if let Some(s) = self.subs.get(at) {
                        self.transmits.push_back(s.probe(*at));
                        self.stats.probes += 1;
                    }
                }
                CheckStep::Wait => {}
            }
        }
        done.sort();
        for at in done {
            self.checks.remove(&at);
            self.presence.push_back(Presence { at, present: false });
        }
    }

    pub fn is_watching(&self, at: &AccessPoint) -> bool {
        self.subs.contains_key(at)
    }

    /// Probes sent and not yet answered for `at` (0 when idle).
    pub fn outstanding(&self, at: &AccessPoint) -> Option<u32> {
        self.subs.get(at).map(|s| match s.state {
            State::Idle { .. } => 0,
            State::Probing { sent, .. } => sent,
        })
    }

    /// A sign of life from the subscriber (DHCP, uplink traffic): back to idle.
    pub fn seen(&mut self, now: Instant, at: &AccessPoint) {
        let interval = self.cfg.interval;
        if let Some(s) = self.subs.get_mut(at) {
            s.state = State::Idle {
                next_probe: now + interval,
            };
        }
    }

    /// An ARP packet received on access link (`ifindex`, `vlan`). Counts as life
    /// when it comes from a watched subscriber's MAC with its home address as
    /// sender (a reply to our probe, or the subscriber's own request).
    pub(crate) fn handle_arp(
        &mut self,
        now: Instant,
        ifindex: u32,
        vlan: u16,
        arp: &ArpRepr,
    ) -> bool {
        let at = AccessPoint {
            ifindex,
            vlan,
            mac: arp.sha,
        };
        match self.subs.get(&at) {
            Some(s) if s.home == arp.spa => {
                if arp.op == ArpOp::Reply {
                    self.stats.replies += 1;
                }
                self.seen(now, &at);
                if self.checks.remove(&at).is_some() {
                    self.presence.push_back(Presence { at, present: true });
                }
                true
            }
            _ => false,
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Probe> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Detached> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let checks = self.checks.values().map(Check::due).min();
        if !self.polling {
            return checks;
        }
        self.subs
            .values()
            .map(|s| match s.state {
                State::Idle { next_probe } => next_probe,
                State::Probing { deadline, .. } => deadline,
            })
            .chain(checks)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_timeouts(now);
        if !self.polling {
            return;
        }
        let cfg = self.cfg;
        let queued = self.transmits.len();
        let mut gone = Vec::new();
        for (at, s) in self.subs.iter_mut() {
            let probe = s.probe(*at);
            match s.state {
                State::Idle { next_probe } if now >= next_probe => {
                    s.state = State::Probing {
                        sent: 1,
                        deadline: now + cfg.timeout,
                    };
                    self.transmits.push_back(probe);
                }
                State::Probing { sent, deadline } if now >= deadline => {
                    if sent > cfg.retries {
                        gone.push((*at, s.home));
                    } else {
                        s.state = State::Probing {
                            sent: sent + 1,
                            deadline: now + cfg.timeout,
                        };
                        self.transmits.push_back(probe);
                    }
                }
                _ => {}
            }
        }
        self.stats.probes += (self.transmits.len() - queued) as u64;
        gone.sort();
        for (at, home) in gone {
            self.subs.remove(&at);
            self.stats.detached += 1;
            self.events.push_back(Detached { at, home });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
    const HOME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const AT: AccessPoint = AccessPoint {
        ifindex: 3,
        vlan: 0,
        mac: [2, 0, 0, 0, 0, 1],
    };

    fn cfg() -> DetachConfig {
        DetachConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 2,
        }
    }

    fn reply() -> ArpRepr {
        ArpRepr {
            op: ArpOp::Reply,
            sha: AT.mac,
            spa: HOME,
            tha: [2, 0, 0, 0, 0, 0xfe],
            tpa: GW,
        }
    }

    type Log<T> = Vec<(Instant, T)>;

    /// Drives the monitor to each deadline until `until`, collecting what it did.
    fn run(m: &mut DetachMonitor, until: Instant) -> (Log<Probe>, Log<Detached>) {
        let (mut tx, mut ev) = (Vec::new(), Vec::new());
        while let Some(t) = m.poll_timeout().filter(|t| *t <= until) {
            m.handle_timeout(t);
            while let Some(p) = m.poll_transmit() {
                tx.push((t, p));
            }
            while let Some(e) = m.poll_event() {
                ev.push((t, e));
            }
        }
        (tx, ev)
    }

    #[test]
    fn silent_subscriber_is_detached_after_retries() {
        let t0 = Instant::now();
        let mut m = DetachMonitor::new(cfg());
        m.add(t0, AT, HOME, GW);
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        let (tx, ev) = run(&mut m, t0 + Duration::from_secs(100));
        let times: Vec<u64> = tx.iter().map(|(t, _)| (*t - t0).as_secs()).collect();
        assert_eq!(times, vec![10, 12, 14], "first probe + 2 retries");
        assert!(tx.iter().all(|(_, p)| *p
            == Probe {
                at: AT,
                target: HOME,
                sender: GW
            }));
        assert_eq!(
            ev,
            vec![(
                t0 + Duration::from_secs(16),
                Detached { at: AT, home: HOME }
            )]
        );
        assert_eq!(t0 + cfg().worst_case(), t0 + Duration::from_secs(16));
        assert!(!m.is_watching(&AT));
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(
            m.stats,
            DetachStats {
                probes: 3,
                replies: 0,
                detached: 1
            }
        );
    }

    #[test]
    fn reply_restarts_the_interval() {
        let t0 = Instant::now();
        let mut m = DetachMonitor::new(cfg());
        m.add(t0, AT, HOME, GW);
        let (tx, _) = run(&mut m, t0 + Duration::from_secs(13));
        assert_eq!(tx.len(), 2);
        assert_eq!(m.outstanding(&AT), Some(2));
        let t1 = t0 + Duration::from_secs(13);
        assert!(m.handle_arp(t1, 3, 0, &reply()));
        assert_eq!(m.outstanding(&AT), Some(0));
        assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(10)));
        // Answering every probe keeps it attached forever.
        let mut now = t1;
        for _ in 0..50 {
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
            assert!(m.poll_transmit().is_some());
            m.handle_arp(now + Duration::from_millis(5), 3, 0, &reply());
        }
        assert!(m.poll_event().is_none());
        assert!(m.is_watching(&AT));
        assert!(now > t0 + Duration::from_secs(500));
    }

    #[test]
    fn foreign_arp_is_not_life() {
        let t0 = Instant::now();
        let mut m = DetachMonitor::new(cfg());
        m.add(t0, AT, HOME, GW);
        run(&mut m, t0 + Duration::from_secs(10));
        let t = t0 + Duration::from_secs(11);
        // Another address from the same MAC, the same address from another MAC,
        // or the right one on another interface or VLAN.
        assert!(!m.handle_arp(
            t,
            3,
            0,
            &ArpRepr {
                spa: Ipv4Addr::new(192, 0, 2, 9),
                ..reply()
            }
        ));
        assert!(!m.handle_arp(
            t,
            3,
            0,
            &ArpRepr {
                sha: [2, 0, 0, 0, 0, 9],
                ..reply()
            }
        ));
        assert!(!m.handle_arp(t, 4, 0, &reply()));
        assert!(!m.handle_arp(t, 3, 7, &reply()));
        assert_eq!(m.outstanding(&AT), Some(1));
        // A request from the subscriber itself counts.
        assert!(m.handle_arp(
            t,
            3,
            0,
            &ArpRepr {
                op: ArpOp::Request,
                tpa: GW,
                ..reply()
            }
        ));
        assert_eq!(m.outstanding(&AT), Some(0));
    }

    #[test]
    fn presence_check_probes_twice_and_answers_once() {
        let t0 = Instant::now();
        for polling in [true, false] {
            let mut m = DetachMonitor::new(cfg());
            m.set_polling(polling);
            m.add(t0, AT, HOME, GW);
            // Answered: present, the probe went to the subscriber's MAC.
            m.check(t0, AT);
            let p = m.poll_transmit().expect("a probe at once");
            assert_eq!((p.at, p.target, p.sender), (AT, HOME, GW));
            assert!(m.poll_timeout().is_some_and(|t| t <= t0 + CHECK_WAIT));
            m.handle_arp(t0 + Duration::from_millis(1), AT.ifindex, AT.vlan, &reply());
            assert_eq!(
                m.poll_presence(),
                Some(Presence {
                    at: AT,
                    present: true
                })
            );
            assert_eq!(m.poll_presence(), None);
            // Quiet: a second probe, then absent — and still watched (the
            // detach decision stays with the polling).
            m.check(t0, AT);
            assert!(m.poll_transmit().is_some());
            m.handle_timeout(t0 + CHECK_RESEND);
            assert!(m.poll_transmit().is_some(), "asked again");
            assert_eq!(m.poll_presence(), None);
            m.handle_timeout(t0 + CHECK_WAIT);
            assert_eq!(
                m.poll_presence(),
                Some(Presence {
                    at: AT,
                    present: false
                })
            );
            assert!(m.is_watching(&AT) && m.poll_event().is_none());
            assert_eq!(m.stats.probes, 3);
            // Not watched: absent at once, nothing sent.
            let other = AccessPoint {
                mac: [2, 0, 0, 0, 0, 9],
                ..AT
            };
            m.check(t0, other);
            assert_eq!(
                m.poll_presence(),
                Some(Presence {
                    at: other,
                    present: false
                })
            );
            assert!(m.poll_transmit().is_none());
        }
    }

    #[test]
    fn seen_and_remove() {
        let t0 = Instant::now();
        let mut m = DetachMonitor::new(DetachConfig {
            retries: 0,
            ..cfg()
        });
        m.add(t0, AT, HOME, GW);
        m.seen(t0 + Duration::from_secs(9), &AT);
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(19)));
        let (tx, ev) = run(&mut m, t0 + Duration::from_secs(30));
        assert_eq!(tx.len(), 1, "retries 0: a single probe");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, t0 + Duration::from_secs(21));
        m.add(t0, AT, HOME, GW);
        m.remove(&AT);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn proxy_arp_answers_subscribers_for_other_addresses() {
        let t0 = Instant::now();
        let mut m = DetachMonitor::new(cfg());
        m.add(t0, AT, HOME, GW);
        let gw_mac = [2, 0, 0, 0, 0, 0xfe];
        let cn = Ipv4Addr::new(192, 0, 2, 77);
        let req = ArpRepr {
            op: ArpOp::Request,
            sha: AT.mac,
            spa: HOME,
            tha: [0; 6],
            tpa: cn,
        };
        assert_eq!(
            m.proxy_arp_reply(3, 0, &req, gw_mac, GW),
            Some(ArpRepr {
                op: ArpOp::Reply,
                sha: gw_mac,
                spa: cn,
                tha: AT.mac,
                tpa: HOME
            })
        );
        // Not answered: the router (kernel does), gratuitous, probe, stranger, reply, other link.
        let unanswered = [
            ArpRepr { tpa: GW, ..req },
            ArpRepr { tpa: HOME, ..req },
            ArpRepr {
                spa: Ipv4Addr::UNSPECIFIED,
                ..req
            },
            ArpRepr {
                sha: [2, 9, 9, 9, 9, 9],
                ..req
            },
            ArpRepr {
                spa: cn,
                tpa: HOME,
                ..req
            },
            ArpRepr {
                op: ArpOp::Reply,
                ..req
            },
        ];
        for r in unanswered {
            assert_eq!(m.proxy_arp_reply(3, 0, &r, gw_mac, GW), None, "{r:?}");
        }
        assert_eq!(m.proxy_arp_reply(4, 0, &req, gw_mac, GW), None);
        // Polling off: still a table for proxy ARP, never a probe or a detach.
        m.set_polling(false);
        assert_eq!(m.poll_timeout(), None);
        m.handle_timeout(t0 + Duration::from_secs(1000));
        assert!(m.poll_transmit().is_none() && m.poll_event().is_none());
        assert!(m.proxy_arp_reply(3, 0, &req, gw_mac, GW).is_some());
    }

    #[test]
    fn probe_frame_bytes() {
        let p = Probe {
            at: AT,
            target: HOME,
            sender: GW,
        };
        let f = p.to_frame([2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(&f[0..6], &AT.mac, "unicast to the subscriber");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[28..32], &GW.octets());
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &HOME.octets());
    }

    #[test]
    fn tshark_decodes_probe() {
        if !crate::access::dhcp::tests::tshark_available() {
            eprintln!("skipped: tshark not installed");
            return;
        }
        let f = Probe {
            at: AT,
            target: HOME,
            sender: GW,
        }
        .to_frame([2, 0, 0, 0, 0, 0xfe]);
        let dir = crate::access::dhcp::tests::TmpDir::new("arp");
        let pcap = dir.0.join("arp.pcap");
        crate::access::dhcp::tests::write_pcap(&pcap, &[f]);
        let out = std::process::Command::new("tshark")
            .args([
                "-r",
                pcap.to_str().unwrap(),
                "-T",
                "fields",
                "-E",
                "separator=|",
            ])
            .args([
                "-e",
                "arp.opcode",
                "-e",
                "arp.src.hw_mac",
                "-e",
                "arp.src.proto_ipv4",
                "-e",
                "arp.dst.proto_ipv4",
                "-e",
                "eth.dst",
            ])
            .args([
                "-e",
                "arp.dst.hw_mac",
                "-e",
                "eth.src",
                "-e",
                "arp.hw.type",
                "-e",
                "arp.proto.type",
                "-e",
                "arp.hw.size",
                "-e",
                "arp.proto.size",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            text.trim(),
            "1|02:00:00:00:00:fe|192.0.2.254|192.0.2.1|02:00:00:00:00:01|00:00:00:00:00:00|02:00:00:00:00:fe|1|0x0800|6|4"
        );
        let v = std::process::Command::new("tshark")
            .args(["-r", pcap.to_str().unwrap(), "-V"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&v.stdout)
            .to_lowercase()
            .contains("malformed"));
    }

    proptest::proptest! {
        /// Whatever the timing of replies, a detach comes only after at least
        /// `timeout * (retries + 1)` of silence, and at most `worst_case` after
        /// the last reply.
        #[test]
        fn detach_timing(replies in proptest::collection::vec(0u64..40_000, 0..10), retries in 0u32..4) {
            let cfg = DetachConfig { interval: Duration::from_secs(5), timeout: Duration::from_secs(1), retries };
            let t0 = Instant::now();
            let mut m = DetachMonitor::new(cfg);
            m.add(t0, AT, HOME, GW);
            let mut replies: Vec<Instant> = replies.into_iter().map(|ms| t0 + Duration::from_millis(ms)).collect();
            replies.sort();
            let mut last_life = t0;
            let mut detached_at = None;
            let mut ri = 0;
            loop {
                let next_t = m.poll_timeout();
                let next_r = replies.get(ri).copied();
                match (next_t, next_r) {
                    (None, _) => break,
                    (Some(t), Some(r)) if r < t => {
                        m.handle_arp(r, 3, 0, &reply());
                        last_life = r;
                        ri += 1;
                    }
                    (Some(t), _) => {
                        m.handle_timeout(t);
                        while m.poll_transmit().is_some() {}
                        if m.poll_event().is_some() { detached_at = Some(t); break; }
                    }
                }
            }
            let d = detached_at.expect("a silent subscriber is detached in the end");
            proptest::prop_assert_eq!(d - last_life, cfg.worst_case());
        }
    }
}
