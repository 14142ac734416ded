//! rtnetlink, the kernel's own interface for links, addresses, routes,
//! neighbours and per-interface IPv4 settings: what `ip` does, without
//! running it.
//!
//! A blocking NETLINK_ROUTE socket per call, opened in the calling thread's
//! network namespace (tests and the lab enter namespaces per thread with
//! setns), so these work in or out of a tokio runtime; a thread that asks
//! again and again keeps one ([`Rtnl`]). Messages are
//! encoded and parsed by `netlink-packet-route`. Every error names the
//! interface (or address) and the operation.
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// An interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address (zero for links without one, e.g. loopback).
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Receive queues (IFLA_NUM_RX_QUEUES; 1 where the kernel does not say).
    pub rx_queues: u32,
}

/// A neighbour (ARP / ND) entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub addr: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// NUD_* state bits (linux/neighbour.h).
    pub state: u16,
}

/// One request/answer exchange on a fresh socket: the kernel's answers in
/// order (a dump's parts, or nothing for an acknowledged change).
fn exchange(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    Rtnl::open()?.exchange(msg, flags)
}

/// A NETLINK_ROUTE socket kept for many exchanges, in the network
/// namespace of the thread that opened it: for a thread that asks the same
/// questions again and again (the next hops of `signaling.xdp_socket_send`,
/// two look-ups per MAG a second), instead of a socket per call. Each
/// request has a sequence number of its own, and answers to an earlier one
/// (what an exchange that failed half-way left in the socket) are skipped.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends a request under the next sequence number, which it returns.
    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        req.header.flags = NLM_F_REQUEST | flags;
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// One request and its answers, as [`exchange`].
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, flags)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&data[off..])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += len;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => return Err(io::Error::from_raw_os_error(-code.get())),
                        // The acknowledgement of a change.
                        None => return Ok(out),
                    },
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
                if !dump && flags & NLM_F_ACK == 0 {
                    return Ok(out);
                }
            }
        }
    }
}

fn link_of(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        rx_queues: 1,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Mtu(v) => l.mtu = v,
            LinkAttribute::NumRxQueues(n) => l.rx_queues = n.max(1),
            LinkAttribute::Address(a) if a.len() == 6 => l.mac.copy_from_slice(&a),
            _ => {}
        }
    }
    l
}

/// The interface called `name` in the caller's network namespace.
pub fn link(name: &str) -> Result<Link> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let answers =
        exchange(RouteNetlinkMessage::GetLink(m), 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => anyhow!("interface {name}: no such interface"),
            _ => anyhow!("interface {name}: reading the link (RTM_GETLINK): {e}"),
        })?;
    answers
        .into_iter()
        .find_map(|a| match a {
            RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
            _ => None,
        })
        .ok_or_else(|| anyhow!("interface {name}: RTM_GETLINK gave no link"))
}

/// The interface's IPv4 addresses with their prefix lengths.
pub fn ipv4_addresses(name: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
    Ok(addresses(name, AddressFamily::Inet)?
        .into_iter()
        .filter_map(|(a, l)| match a {
            IpAddr::V4(v) => Some((v, l)),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// Whether `addr` is on the interface now.
pub fn has_address(name: &str, addr: IpAddr) -> Result<bool> {
    let family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    Ok(addresses(name, family)?.iter().any(|(a, _)| *a == addr))
}

/// The interface's addresses of `family` with their prefix lengths.
fn addresses(name: &str, family: AddressFamily) -> Result<Vec<(IpAddr, u8)>> {
    let index = link(name)?.index;
    let mut m = AddressMessage::default();
    m.header.family = family;
    let answers = exchange(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)
        .with_context(|| format!("interface {name}: listing addresses (RTM_GETADDR)"))?;
    let mut out = Vec::new();
    for a in answers {
        let RouteNetlinkMessage::NewAddress(a) = a else {
            continue;
        };
        if a.header.index != index || a.header.family != family {
            continue;
        }
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's
        // on point-to-point links; IPv6 has only IFA_ADDRESS).
        let local = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(v) => Some(*v),
            _ => None,
        });
        let addr = local.or_else(|| {
            a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(v) => Some(*v),
                _ => None,
            })
        });
        if let Some(v) = addr {
            out.push((v, a.header.prefix_len));
        }
    }
    Ok(out)
}

/// An RTM_NEWADDR body for `addr/len` on interface `index`.
fn address_message(index: u32, addr: IpAddr, len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = len;
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    if let IpAddr::V4(v4) = addr {
        if len < 31 {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let bcast = Ipv4Addr::from(u32::from(v4) | host);
            m.attributes.push(AddressAttribute::Broadcast(bcast));
        }
    }
    m
}

/// Adds `addr/len` to the interface (`ip addr add`); an address already
/// there is not an error.
pub fn add_address(name: &str, addr: IpAddr, len: u8) -> Result<()> {
    let m = address_message(link(name)?.index, addr, len);
    match exchange(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => bail!("interface {name}: adding address {addr}/{len} (RTM_NEWADDR): {e}"),
    }
}

/// Puts `addr/len` on the interface for `life_s` seconds (valid and
/// preferred lifetime, IFA_CACHEINFO: the kernel removes it when that ends
/// unrenewed), or renews the lifetime of the one there. True when it was
/// added, that is when it was not there: the kernel decides that in the
/// exclusive create (NLM_F_EXCL), so an address that left between an
/// earlier look and this call is still seen as added. Only a removal in
/// the microseconds between the refused create and the renewal that
/// follows it is seen as a renewal.
pub fn put_address_for(name: &str, addr: IpAddr, len: u8, life_s: u32) -> Result<bool> {
    let mut m = address_message(link(name)?.index, addr, len);
    let mut life = CacheInfo::default();
    life.ifa_preferred = life_s;
    life.ifa_valid = life_s;
    m.attributes.push(AddressAttribute::CacheInfo(life));
    if addr.is_ipv6() {
        // A service address moves between hosts: no duplicate detection
        // holding it tentative.
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    let what = || format!("interface {name}: address {addr}/{len} for {life_s} s (RTM_NEWADDR)");
    match exchange(
        RouteNetlinkMessage::NewAddress(m.clone()),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            exchange(
                RouteNetlinkMessage::NewAddress(m),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
            .with_context(what)?;
            Ok(false)
        }
        Err(e) => Err(e).with_context(what),
    }
}

/// `ip route replace PREFIX/LEN via VIA dev NAME` in the main table.
pub fn replace_route_v4(prefix: Ipv4Addr, len: u8, via: Ipv4Addr, name: &str) -> Result<()> {
    let index = link(name)?.index;
    let mut m = RouteMessage::default();
    m.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: len,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Boot,
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..m.header
    };
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(prefix)));
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(via)));
    m.attributes.push(RouteAttribute::Oif(index));
    exchange(
        RouteNetlinkMessage::NewRoute(m),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )
    .with_context(|| {
        format!("interface {name}: route {prefix}/{len} via {via} (RTM_NEWROUTE replace)")
    })?;
    Ok(())
}

/// The IPv4 routes of the main table that go out of `name`: (destination, length, gateway).
pub fn ipv4_routes(name: &str) -> Result<Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)>> {
    let index = link(name)?.index;
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    let answers = exchange(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)
        .with_context(|| format!("interface {name}: listing routes (RTM_GETROUTE)"))?;
    let mut out = Vec::new();
    for a in answers {
        let RouteNetlinkMessage::NewRoute(r) = a else {
            continue;
        };
        let (mut dst, mut gw, mut oif) = (Ipv4Addr::UNSPECIFIED, None, None);
        for x in &r.attributes {
            match x {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        if oif == Some(index) && r.header.table == RouteHeader::RT_TABLE_MAIN {
            out.push((dst, r.header.destination_prefix_length, gw));
        }
    }
    Ok(out)
}

/// The neighbour entries (ARP and ND) on `name`.
pub fn neighbours(name: &str) -> Result<Vec<Neighbour>> {
    let index = link(name)?.index;
    let answers = exchange(
        RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        NLM_F_DUMP,
    )
    .with_context(|| format!("interface {name}: listing neighbours (RTM_GETNEIGH)"))?;
    Ok(answers
        .into_iter()
        .filter_map(|a| match a {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == index => neighbour_of(&n),
            _ => None,
        })
        .collect())
}

fn neighbour_of(n: &NeighbourMessage) -> Option<Neighbour> {
    let mut addr = None;
    let mut mac = None;
    for x in &n.attributes {
        match x {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                addr = Some(IpAddr::V4(*v))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                addr = Some(IpAddr::V6(*v))
            }
            NeighbourAttribute::LinkLayerAddress(m) if m.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(m);
                mac = Some(b);
            }
            _ => {}
        }
    }
    Some(Neighbour {
        addr: addr?,
        mac,
        state: u16::from(n.header.state),
    })
}

/// The neighbour entry of the IPv6 address `addr` on interface `ifindex`
/// (RTM_GETNEIGH for one entry); `None` where the kernel has none.
pub fn neighbour_v6(rtnl: &mut Rtnl, ifindex: u32, addr: Ipv6Addr) -> Result<Option<Neighbour>> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.ifindex = ifindex;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
            addr,
        )));
    match rtnl.exchange(RouteNetlinkMessage::GetNeighbour(m), 0) {
        Ok(answers) => Ok(answers.iter().find_map(|a| match a {
            RouteNetlinkMessage::NewNeighbour(n) => neighbour_of(n),
            _ => None,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e)
            .with_context(|| format!("interface index {ifindex}: neighbour {addr} (RTM_GETNEIGH)")),
    }
}

/// Where the kernel would send a packet from `src` to `dst` (RTM_GETROUTE,
/// a lookup rather than a dump; the source counts where policy routing
/// chooses by it): the output interface and the gateway, if any. `None`
/// for a destination without a unicast route (unreachable, blackhole,
/// prohibit, local).
pub fn route_v6(
    rtnl: &mut Rtnl,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Result<Option<(u32, Option<Ipv6Addr>)>> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.destination_prefix_length = 128;
    m.header.source_prefix_length = 128;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
    m.attributes
        .push(RouteAttribute::Source(RouteAddress::Inet6(src)));
    let answers = match rtnl.exchange(RouteNetlinkMessage::GetRoute(m), 0) {
        Ok(a) => a,
        // No route at all, or one that refuses (unreachable, prohibit).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EINVAL)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("route to {dst} (RTM_GETROUTE)")),
    };
    Ok(answers.into_iter().find_map(|a| {
        let RouteNetlinkMessage::NewRoute(r) = a else {
            return None;
        };
        if r.header.kind != RouteType::Unicast {
            return None;
        }
        let (mut oif, mut gw) = (None, None);
        for x in &r.attributes {
            match x {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gw = Some(*g),
                _ => {}
            }
        }
        Some((oif?, gw))
    }))
}

/// Turns on `net.ipv4.conf.NAME.accept_local` through RTM_SETLINK
/// (IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF), the netlink form of the sysctl.
pub fn enable_accept_local(name: &str) -> Result<()> {
    let index = link(name)?.index;
    let mut m = LinkMessage::default();
    m.header.index = index;
    let mut conf = InetDevConf::default();
    conf.accept_local = 1;
    m.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::DevConfRequest(conf),
        ])]));
    exchange(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)
        .with_context(|| format!("interface {name}: setting accept_local (RTM_SETLINK)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback is in every namespace: index 1, no hardware address, up.
    #[test]
    fn loopback_link() {
        let l = link("lo").expect("lo");
        assert_eq!(l.index, 1);
        assert_eq!(l.name, "lo");
        assert_eq!(l.mac, [0; 6]);
        assert!(l.mtu >= 1500);
    }

    /// Lookups that only read: a local destination has no unicast route,
    /// loopback no neighbour entry.
    #[test]
    fn route_and_neighbour_lookups() {
        let lo = Ipv6Addr::LOCALHOST;
        let mut rtnl = Rtnl::open().unwrap();
        assert_eq!(route_v6(&mut rtnl, lo, lo).unwrap(), None);
        assert_eq!(
            neighbour_v6(&mut rtnl, 1, "fe80::1".parse().unwrap()).unwrap(),
            None
        );
    }

    /// A kept socket answers each request with its own answers: an
    /// earlier request's, left unread in the socket, are skipped (here an
    /// error, which would otherwise be taken as the next one's).
    #[test]
    fn a_kept_socket_skips_answers_to_earlier_requests() {
        let get = |name: &str| {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.to_string()));
            RouteNetlinkMessage::GetLink(m)
        };
        let mut rtnl = Rtnl::open().unwrap();
        rtnl.send(get("pmip-nosuch0"), 0).unwrap();
        let answers = rtnl
            .exchange(get("lo"), 0)
            .expect("lo's answer, not ENODEV");
        let names: Vec<String> = answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(l).name),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["lo"]);
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = link("pmip-nosuch0").unwrap_err().to_string();
        assert!(e.contains("pmip-nosuch0"), "{e}");
        assert!(e.contains("no such interface"), "{e}");
        let e = add_address("pmip-nosuch0", "192.0.2.1".parse().unwrap(), 24)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pmip-nosuch0"), "{e}");
    }

    #[test]
    fn loopback_has_127_0_0_1() {
        let a = ipv4_addresses("lo").expect("lo addresses");
        // Inside a fresh namespace lo may be down without addresses; on a
        // host it holds 127.0.0.1/8.
        if !a.is_empty() {
            assert!(a.contains(&(Ipv4Addr::LOCALHOST, 8)), "{a:?}");
        }
    }
}
