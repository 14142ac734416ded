//! Shared pieces of the PMIPv6 conformance tests (tests/conformance_pmipv6*.rs):
//! the MAG's and LMA's messages as the RFCs draw them, exchanges with checks
//! every message must pass, and `both!`, which runs a case over both
//! transports (raw MH over IPv6, UDP 5436 over IPv4).
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::bed::{sub_mac, AccessBed, AnchorBed, PeerSock, Rx, T};
use super::mh::{self, opt, Mh, Opt};

pub const NAI: &str = "conf@example.com";
pub const MAG_KEY: u32 = 1000;
/// How long a message that must come is waited for: generous, as a loaded
/// CI host can stall a daemon for seconds; a wait ends when the message
/// arrives, and waits for an absence use their own, shorter bounds.
pub const S: Duration = Duration::from_secs(10);

pub fn run(t: T, tag: &str, f: fn(T, &str) -> Result<()>) {
    if let Err(e) = f(t, tag) {
        crate::lab::fail(e.context(format!("{t:?}")));
    }
}

/// One test per transport.
#[macro_export]
macro_rules! both {
    ($name:ident, $f:path) => {
        $crate::both!($name, $f, );
    };
    ($name:ident, $f:path, $($attr:meta)?) => {
        mod $name {
            use super::*;
            #[test]
            $(#[$attr])?
            fn over_ipv6_mh() {
                $crate::conformance::v6::run($crate::conformance::bed::T::Mh6, stringify!($name), $f);
            }
            #[test]
            $(#[$attr])?
            fn over_ipv4_udp() {
                $crate::conformance::v6::run($crate::conformance::bed::T::Udp5436, stringify!($name), $f);
            }
        }
    };
}

pub fn tag(t: T, name: &str) -> String {
    // Namespace prefixes are at most 4 characters.
    let h = name
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b.into()));
    format!("{}{:02}", if t == T::Mh6 { 'r' } else { 'u' }, h % 97)
}

pub fn is_ba(r: &Rx) -> bool {
    r.bytes.get(2) == Some(&mh::BA)
}
pub fn is_type(ty: u8) -> impl Fn(&Rx) -> bool {
    move |r| r.bytes.get(2) == Some(&ty)
}

/// A Heartbeat with flags U (unsolicited) and R (response) as given (RFC
/// 5847 §3.3: the last two bits of its first fixed octets).
pub fn is_heartbeat(u: bool, r: bool) -> impl Fn(&Rx) -> bool {
    let want = u8::from(u) << 1 | u8::from(r);
    move |x| x.bytes.get(2) == Some(&mh::HEARTBEAT) && x.bytes.get(7).map(|f| f & 3) == Some(want)
}

/// The Restart Counter option of a Heartbeat (RFC 5847 §3.4).
pub fn restart_counter_of(rx: &Rx) -> Result<u32> {
    let m = Mh::parse(&rx.bytes);
    let d = m.get(opt::RESTART_COUNTER).context("no Restart Counter")?;
    Ok(u32::from_be_bytes(
        d.try_into().context("Restart Counter length")?,
    ))
}

/// The options of a MAG's first PBU for an IPv4 subscriber (RFC 5213 §6.9.1.1,
/// RFC 5844 §3.1.1, RFC 5845 §4.1): MN-ID, HI, ATT, LLID, Timestamp, GRE key,
/// IPv4 Home Address Request 0.0.0.0.
pub fn mag_opts(nai: &str, ts: u64, hi: u8) -> Vec<Opt> {
    vec![
        mh::mn_id(nai),
        mh::hi(hi),
        mh::att(4),
        mh::llid(sub_mac()),
        mh::timestamp(ts),
        mh::gre_key(MAG_KEY),
        mh::v4_hoa_req(0, [0; 4]),
    ]
}

pub fn without(opts: Vec<Opt>, kind: u8) -> Vec<Opt> {
    opts.into_iter().filter(|o| o.kind != kind).collect()
}

/// Sends a PBU as MAG `peer` and returns the PBA (checked against the
/// generic rules: MH type, Payload Proto, alignment, P flag, sequence echo,
/// checksum zero over UDP).
pub fn exchange(
    b: &AnchorBed,
    peer: &PeerSock,
    seq: u16,
    lifetime: u16,
    opts: &[Opt],
) -> Result<Mh> {
    exchange_flags(b, peer, (seq, mh::BU_A | mh::BU_P), lifetime, opts)
}

/// [`exchange`] with the PBU's flags given.
pub fn exchange_flags(
    b: &AnchorBed,
    peer: &PeerSock,
    (seq, flags): (u16, u16),
    lifetime: u16,
    opts: &[Opt],
) -> Result<Mh> {
    peer.send(b.anchor(), b.port(), &mh::pbu(seq, flags, lifetime, opts))?;
    let rx = peer.recv_where(S, is_ba).context("no PBA")?;
    ensure!(rx.from == b.anchor(), "PBA from {}", rx.from);
    if b.t == T::Udp5436 {
        ensure!(
            rx.port == 5436,
            "PBA from port {} (RFC 5844 §4: the LMA's 5436)",
            rx.port
        );
    }
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    ensure!(
        m.fixed[1] & mh::BA_P != 0,
        "PBA without the P flag (RFC 5213 §8.2)"
    );
    ensure!(
        m.u16_at(2) == seq,
        "PBA sequence {} for PBU {seq} (RFC 6275 §6.1.8)",
        m.u16_at(2)
    );
    if b.t == T::Udp5436 {
        ensure!(
            m.checksum == 0,
            "MH checksum over UDP must be 0 (RFC 5844 §4)"
        );
    }
    Ok(m)
}

pub fn bindings(d: &crate::lab::Daemon) -> Vec<pmip_user::ctl::BindingView> {
    d.bindings().unwrap_or_default()
}

pub fn wait_bindings(d: &crate::lab::Daemon, n: usize) -> Result<Vec<pmip_user::ctl::BindingView>> {
    d.wait_bindings(S, &format!("{n} binding(s)"), |b| b.len() == n)
}

/// Waits for our MAG's PBU (skipping heartbeats) and splits it.
pub fn next_pbu(l: &PeerSock, within: Duration) -> Result<(Rx, Mh)> {
    let rx = l
        .recv_where(within, is_type(mh::BU))
        .context("no PBU from the MAG")?;
    let m = Mh::parse(&rx.bytes);
    m.assert_all_aligned();
    Ok((rx, m))
}

/// The LMA's accepting PBA for `pbu`: echoes MN-ID, HI, ATT, LLID and
/// Timestamp (RFC 5213 §5.3.6), then GRE key, IPv4 HoA Reply, router.
pub fn pba_for(pbu: &Mh, status: u8, lifetime: u16, tail: &[Opt]) -> Vec<u8> {
    let mut o = Vec::new();
    if let Some(n) = pbu.nai() {
        o.push(mh::mn_id(&n));
    }
    for (k, f) in [(opt::HI, 1usize), (opt::ATT, 1)] {
        if let Some(d) = pbu.get(k) {
            o.push(if k == opt::HI {
                mh::hi(d[f])
            } else {
                mh::att(d[f])
            });
        }
    }
    if let Some(d) = pbu.get(opt::LLID) {
        o.push(mh::llid(d[2..8].try_into().unwrap()));
    }
    if let Some(ts) = pbu.timestamp() {
        o.push(mh::timestamp(ts));
    }
    o.extend_from_slice(tail);
    mh::pba(status, mh::BA_P, pbu.u16_at(0), lifetime, &o)
}

pub const HOME: [u8; 4] = [10, 64, 0, 57];

pub fn accept_tail(key: u32) -> Vec<Opt> {
    vec![
        mh::gre_key(key),
        mh::v4_hoa_reply(0, 24, HOME),
        mh::v4_default_router([10, 64, 0, 1]),
    ]
}

/// Registers the subscriber through the test's LMA; returns the first PBU.
pub fn register(b: &mut AccessBed, l: &PeerSock, lifetime: u16) -> Result<(Rx, Mh)> {
    b.dhcp()?;
    let (rx, m) = next_pbu(l, S)?;
    l.reply(&rx, &pba_for(&m, 0, lifetime, &accept_tail(4242)))?;
    b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    Ok((rx, m))
}

/// `pmipctl show tunnels --json`.
pub fn tunnels(d: &crate::lab::Daemon) -> Result<Vec<pmip_user::ctl::TunnelView>> {
    match d.ctl_json(&["show", "tunnels"])? {
        pmip_user::ctl::Response::Tunnels(t) => Ok(t),
        r => anyhow::bail!("show tunnels answered {r:?}"),
    }
}

/// Waits until `show tunnels` has a tunnel to `peer` for which `pred` holds.
pub fn wait_tunnel(
    d: &crate::lab::Daemon,
    peer: std::net::IpAddr,
    within: Duration,
    pred: impl Fn(&pmip_user::ctl::TunnelView) -> bool,
) -> Result<pmip_user::ctl::TunnelView> {
    let end = std::time::Instant::now() + within;
    loop {
        let t = tunnels(d)?;
        if let Some(x) = t.iter().find(|x| x.remote == Some(peer) && pred(x)) {
            return Ok(x.clone());
        }
        anyhow::ensure!(std::time::Instant::now() < end, "tunnels: {t:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
