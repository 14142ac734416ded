//! Shared pieces of the PMIPv4 conformance tests (tests/conformance_pmipv4.rs):
//! the PMA's and HA's messages as the RFCs draw them, signed with the peer's
//! FA-HA key, and exchanges with the checks every message must pass.
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::bed::{sa, sub_mac, AccessBed, AnchorBed, PeerSock, Rx, T};
use super::mip4::{self as m4, ext, Msg};

pub const NAI: &str = "conf4@example.com";
pub const PMA_KEY: u32 = 500;
pub const HA: [u8; 4] = [10, 255, 0, 10];
/// How long a message that must come is waited for: generous, as a loaded
/// CI host can stall a daemon for seconds; a wait ends when the message
/// arrives, and waits for an absence use their own, shorter bounds.
pub const S: Duration = Duration::from_secs(10);

pub fn run(tag: &str, f: fn(&str) -> Result<()>) {
    if let Err(e) = f(tag) {
        crate::lab::fail(e);
    }
}

pub fn coa(i: u8) -> [u8; 4] {
    [10, 255, 0, i]
}

/// The extensions of a PMA's request (draft-leung §5, RFC 6245 §4.1, RFC 3543 §3.2).
pub fn pma_exts(nai: &str, with_key: bool) -> Vec<m4::Ext> {
    let mut v = vec![m4::nai(nai), m4::device_id_mac(sub_mac())];
    if with_key {
        v.push(m4::gre_key(PMA_KEY));
    }
    v.push(m4::revocation_support((m4::ntp_now() >> 32) as u32));
    v.push(m4::per_node_auth(1));
    v
}

/// A signed PRRQ from PMA `i`.
pub fn prrq(
    i: u8,
    flags: u8,
    lifetime: u16,
    hoa: [u8; 4],
    ident: u64,
    exts: &[m4::Ext],
) -> Vec<u8> {
    let mut b = m4::rrq(flags, lifetime, hoa, HA, coa(i), ident, exts);
    m4::sign(&mut b, ext::FA_HA_AUTH, &sa(i));
    b
}

pub fn is(ty: u8) -> impl Fn(&Rx) -> bool {
    move |r| r.bytes.first() == Some(&ty)
}

/// Sends a request as PMA `i` and returns the reply, with the generic checks:
/// type 3, Identification low-order bits echoed (RFC 3344 §5.7.1), HA field,
/// FA-HA authentication last and valid (RFC 3344 §3.5, draft §4.3).
pub fn exchange(b: &AnchorBed, p: &PeerSock, i: u8, bytes: &[u8]) -> Result<Msg> {
    p.send(b.anchor(), 434, bytes)?;
    let rx = p
        .recv_where(S, is(m4::RRP))
        .context("no Registration Reply")?;
    ensure!(rx.port == 434, "reply from port {}", rx.port);
    let m = Msg::parse(&rx.bytes);
    let sent = Msg::parse(bytes);
    ensure!(
        m.ident() & 0xffff_ffff == sent.ident() & 0xffff_ffff,
        "Identification low-order 32 bits not copied"
    );
    ensure!(m.home_agent() == HA, "HA field {:?}", m.home_agent());
    m.assert_auth(ext::FA_HA_AUTH, &sa(i));
    Ok(m)
}

pub fn wait_bindings(d: &crate::lab::Daemon, n: usize) -> Result<Vec<pmip_user::ctl::BindingView>> {
    d.wait_bindings(S, &format!("{n} binding(s)"), |b| b.len() == n)
}

pub fn bed(tag: &str, extra: &str) -> Result<Option<AnchorBed>> {
    AnchorBed::start(T::Mip4, tag, extra, "")
}

pub fn next_rrq(l: &PeerSock, within: Duration) -> Result<(Rx, Msg)> {
    let rx = l
        .recv_where(within, is(m4::RRQ))
        .context("no Registration Request from the PMA")?;
    let m = Msg::parse(&rx.bytes);
    m.assert_auth(ext::FA_HA_AUTH, &sa(1));
    Ok((rx, m))
}

pub const HOME: [u8; 4] = [10, 64, 0, 77];

/// The HA's signed reply to `q`.
pub fn reply(
    q: &Msg,
    code: u8,
    lifetime: u16,
    hoa: [u8; 4],
    ident: u64,
    exts: &[m4::Ext],
) -> Vec<u8> {
    let mut b = m4::rrp(code, lifetime, hoa, HA, ident, exts);
    let _ = q;
    m4::sign(&mut b, ext::FA_HA_AUTH, &sa(1));
    b
}

pub fn accept(q: &Msg, lifetime: u16) -> Vec<u8> {
    let e = [
        m4::nai(&q.nai().unwrap()),
        m4::gre_key(777),
        m4::per_node_auth(1),
    ];
    reply(q, 0, lifetime, HOME, q.ident(), &e)
}

pub fn access(tag: &str) -> Result<Option<(AccessBed, PeerSock)>> {
    let Some(b) = AccessBed::start(T::Mip4, tag, "")? else {
        return Ok(None);
    };
    let l = b.anchor_sock()?;
    Ok(Some((b, l)))
}

pub fn registered(tag: &str) -> Result<Option<(AccessBed, PeerSock, Rx, Msg)>> {
    let Some((mut b, l)) = access(tag)? else {
        return Ok(None);
    };
    b.dhcp()?;
    let (rx, q) = next_rrq(&l, S)?;
    l.reply(&rx, &accept(&q, 40))?;
    b.client().wait_event("bound", 1, Duration::from_secs(10))?;
    wait_bindings(&b.daemon, 1)?;
    Ok(Some((b, l, rx, q)))
}

/// RFC 3543 §4.2.2.2 / §4.2.3.2: `revoke(hoa, hda, fda)` sends a
/// revocation with those addresses (and the binding's NAI) and waits for
/// its acknowledgement. Revocations naming another home address than
/// `home`, another foreign domain address (`coa(2)`) or another home domain
/// address (`coa(2)`) leave `d`'s one binding; the one naming `home`, `ha`
/// and `coa(1)` removes it.
pub fn revokes_only_the_named_binding(
    d: &crate::lab::Daemon,
    home: [u8; 4],
    ha: [u8; 4],
    mut revoke: impl FnMut([u8; 4], [u8; 4], [u8; 4]) -> Result<()>,
) -> Result<()> {
    let mut other = home;
    other[3] ^= 1;
    for (what, hoa, hda, fda) in [
        ("home address", other, ha, coa(1)),
        ("foreign domain address", home, ha, coa(2)),
        ("home domain address", home, coa(2), coa(1)),
    ] {
        revoke(hoa, hda, fda).with_context(|| what.to_string())?;
        ensure!(
            d.bindings()?.len() == 1,
            "a revocation naming another {what} revoked the binding"
        );
    }
    revoke(home, ha, coa(1))?;
    wait_bindings(d, 0)?;
    Ok(())
}
