//! Where an accepted binding reaches the BPF maps: access and anchor
//! bindings installed and removed, their tunnels, and what the pinned maps
//! still forward with ([`FastPath::held`]).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Result};
use aya::maps::{Array, HashMap, MapData};
use pmip_common::{
    flags, maps, AccessDownlink, AccessKey, AccessSubscriber, AnchorDownlink, AnchorUplink, Tunnel,
    FAMILY_V4, FAMILY_V6,
};

use super::slots::KeyTable;
use super::{map_err, FastPath};
use crate::dataplane::{AccessBinding, AnchorBinding, Held, Hnp, TunnelEnds};

fn addr16(a: IpAddr) -> (u8, [u8; 16]) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (FAMILY_V4, b)
        }
        IpAddr::V6(v6) => (FAMILY_V6, v6.octets()),
    }
}

fn hnp64(h: &Option<Hnp>) -> [u8; 8] {
    let mut b = [0u8; 8];
    if let Some(h) = h {
        b.copy_from_slice(&h.prefix.octets()[..8]);
    }
    b
}

fn access_key(b: &AccessBinding) -> AccessKey {
    AccessKey {
        ifindex: b.at.ifindex,
        vlan: b.at.vlan,
        mac: b.at.mac,
    }
}

impl FastPath {
    /// After a restart with pinned maps: learn which tunnel ids are taken.
    pub(super) fn recover_tunnels(&mut self) -> Result<()> {
        let arr: Array<&MapData, Tunnel> = Array::try_from(
            self.ebpf
                .map(maps::TUNNELS)
                .ok_or_else(|| anyhow!("TUNNELS missing"))?,
        )?;
        for i in 0..arr.len() {
            let t = arr.get(&i, 0).map_err(map_err)?;
            if t.family != 0 {
                let ends = |b: [u8; 16]| -> IpAddr {
                    if t.family == FAMILY_V4 {
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(b))
                    }
                };
                self.tunnels.insert(
                    TunnelEnds {
                        local: ends(t.local),
                        remote: ends(t.remote),
                    },
                    i,
                );
            }
        }
        Ok(())
    }

    /// Id of the tunnel with these ends, creating its `TUNNELS` entry first.
    pub(crate) fn tunnel_id(&mut self, ends: &TunnelEnds) -> Result<u32> {
        if let Some(id) = self.tunnels.get(ends) {
            return Ok(*id);
        }
        let (lf, local) = addr16(ends.local);
        let (rf, remote) = addr16(ends.remote);
        if lf != rf {
            bail!("tunnel {ends:?}: local and remote are of different families");
        }
        let id = (0..pmip_common::MAX_TUNNELS)
            .find(|i| !self.tunnels.values().any(|v| v == i))
            .ok_or_else(|| anyhow!("tunnel table full"))?;
        let mut arr: Array<_, Tunnel> = Array::try_from(self.map_mut(maps::TUNNELS)?)?;
        arr.set(
            id,
            Tunnel {
                family: lf,
                _pad: [0; 3],
                local,
                remote,
            },
            0,
        )
        .map_err(map_err)?;
        self.tunnels.insert(*ends, id);
        Ok(id)
    }

    pub fn install_access(&mut self, b: &AccessBinding) -> Result<()> {
        let tunnel_id = self.tunnel_id(&b.tunnel)?;
        let fl = home_flags(b.home_v4.is_some(), b.hnp.is_some());
        let sub = AccessSubscriber {
            uplink_key: b.uplink_key.to_be_bytes(),
            sub_id: b.sub_id,
            tunnel_id,
            flags: fl,
            home_v4: b.home_v4.map(|a| a.octets()).unwrap_or_default(),
            gateway_v4: b.gateway_v4.map(|a| a.octets()).unwrap_or_default(),
            home_hnp: hnp64(&b.hnp),
        };
        // The peer the downlink must come from, copied from the tunnel's
        // ends (an id never changes ends): no TUNNELS lookup per packet.
        let (peer_family, peer) = addr16(b.tunnel.remote);
        let down = AccessDownlink {
            sub_id: b.sub_id,
            tunnel_id,
            ifindex: b.at.ifindex,
            vlan: b.at.vlan,
            mac: b.at.mac,
            peer_family,
            _pad: [0; 3],
            peer,
        };
        self.reset_stats(b.sub_id)?;
        // Downlink first: by the time the subscriber can send, replies can come back.
        self.set_by_key(KeyTable::Access, b.downlink_key, down, |d| d.ifindex != 0)?;
        let mut by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map_mut(maps::ACCESS_BY_MAC)?)?;
        by_mac.insert(access_key(b), sub, 0).map_err(map_err)?;
        // Retire the fast path's per-CPU copies of the key: after the entry.
        self.bump_access_gen(&access_key(b))
    }

    /// Removes a subscriber's entries, but only those that still belong to
    /// this binding (a newer one for the same MAC or key is left alone).
    pub fn remove_access(&mut self, b: &AccessBinding) -> Result<()> {
        let by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map(maps::ACCESS_BY_MAC)?)?;
        let k = access_key(b);
        if let Ok(cur) = by_mac.get(&k, 0) {
            if cur.uplink_key == b.uplink_key.to_be_bytes() {
                let mut by_mac: HashMap<_, AccessKey, AccessSubscriber> =
                    HashMap::try_from(self.map_mut(maps::ACCESS_BY_MAC)?)?;
                let _ = by_mac.remove(&k);
                // Then retire the fast path's cached copies.
                self.bump_access_gen(&k)?;
            }
        }
        self.clear_by_key::<AccessDownlink>(KeyTable::Access, b.downlink_key, |d| {
            d.ifindex != 0 && d.mac == b.at.mac && d.ifindex == b.at.ifindex
        })
    }

    pub fn install_anchor(&mut self, b: &AnchorBinding) -> Result<()> {
        let tunnel_id = self.tunnel_id(&b.tunnel)?;
        let mut fl = home_flags(b.home_v4.is_some(), b.hnp.is_some());
        // The peer the uplink must come from, as for the access downlink.
        let (peer_family, peer) = addr16(b.tunnel.remote);
        if peer_family == FAMILY_V6 {
            fl |= flags::PEER_V6;
        }
        let up = AnchorUplink {
            sub_id: b.sub_id,
            tunnel_id,
            flags: fl | flags::IN_USE,
            home_v4: b.home_v4.map(|a| a.octets()).unwrap_or_default(),
            home_hnp: hnp64(&b.hnp),
            peer,
        };
        let down = AnchorDownlink {
            downlink_key: b.downlink_key.to_be_bytes(),
            sub_id: b.sub_id,
            tunnel_id,
            flags: flags::IN_USE,
        };
        self.set_by_key(KeyTable::Anchor, b.uplink_key, up, |u| {
            u.flags & flags::IN_USE != 0
        })?;
        if let Some(h) = b.home_v4 {
            match self.pool4_index(h) {
                Some(i) => self.set_pool_slot(0, i, down)?,
                None => {
                    let mut m: HashMap<_, [u8; 4], AnchorDownlink> =
                        HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HOME4)?)?;
                    m.insert(h.octets(), down, 0).map_err(map_err)?;
                }
            }
        }
        if b.hnp.is_some() {
            let k = hnp64(&b.hnp);
            match self.pool6_index(k) {
                Some(i) => self.set_pool_slot(1, i, down)?,
                None => {
                    let mut m: HashMap<_, [u8; 8], AnchorDownlink> =
                        HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HNP)?)?;
                    m.insert(k, down, 0).map_err(map_err)?;
                }
            }
        }
        // Retire the fast path's per-CPU copies: after the entries.
        self.bump_anchor_copies(b)
    }

    /// Removes a binding's entries that still point where this binding does
    /// (after a handover the home address already points elsewhere).
    pub(crate) fn remove_anchor(&mut self, b: &AnchorBinding) -> Result<()> {
        let tunnel_id = match self.tunnels.get(&b.tunnel) {
            Some(t) => *t,
            None => return Ok(()),
        };
        let mine = |d: &AnchorDownlink| {
            d.tunnel_id == tunnel_id && d.downlink_key == b.downlink_key.to_be_bytes()
        };
        self.clear_by_key::<AnchorUplink>(KeyTable::Anchor, b.uplink_key, |u| {
            u.flags & flags::IN_USE != 0
        })?;
        if let Some(h) = b.home_v4 {
            if let Some(i) = self.pool4_index(h) {
                self.clear_pool_slot(0, i, &mine)?;
            } else {
                let mut m: HashMap<_, [u8; 4], AnchorDownlink> =
                    HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HOME4)?)?;
                if m.get(&h.octets(), 0).map(|d| mine(&d)).unwrap_or(false) {
                    let _ = m.remove(&h.octets());
                }
            }
        }
        if b.hnp.is_some() {
            let k = hnp64(&b.hnp);
            if let Some(i) = self.pool6_index(k) {
                self.clear_pool_slot(1, i, &mine)?;
            } else {
                let mut m: HashMap<_, [u8; 8], AnchorDownlink> =
                    HashMap::try_from(self.map_mut(maps::ANCHOR_BY_HNP)?)?;
                if m.get(&k, 0).map(|d| mine(&d)).unwrap_or(false) {
                    let _ = m.remove(&k);
                }
            }
        }
        self.bump_anchor_copies(b)
    }

    /// Retires the anchor downlink's cached copies of `b`'s home address
    /// and prefix (see `anchor_gen`).
    fn bump_anchor_copies(&mut self, b: &AnchorBinding) -> Result<()> {
        if let Some(h) = b.home_v4 {
            self.bump_anchor_home4(h)?;
        }
        if let Some(h) = &b.hnp {
            self.bump_anchor_hnp(h)?;
        }
        Ok(())
    }

    /// Invalidates the fast path's per-CPU copies of `key` (and of the other
    /// keys of its ACCESS_CACHE set) on every CPU. Called after each change to
    /// the key's ACCESS_BY_MAC entry: the fast path reads the generation
    /// before the entry, so a copy of the old entry never carries the new one.
    pub(super) fn bump_access_gen(&mut self, key: &AccessKey) -> Result<()> {
        let set = pmip_common::access_cache_set(key);
        let mut a: Array<_, u32> = Array::try_from(self.map_mut(maps::ACCESS_GEN)?)?;
        let g = a.get(&set, 0).map_err(map_err)?;
        a.set(set, g.wrapping_add(1), 0).map_err(map_err)
    }

    /// The ids, GRE keys, home addresses and prefixes the maps forward
    /// with (bindings an earlier run left in pinned maps, and static ones).
    pub fn held(&self) -> Result<Held> {
        let mut h = Held::default();
        let by_mac: HashMap<_, AccessKey, AccessSubscriber> =
            HashMap::try_from(self.map(maps::ACCESS_BY_MAC)?)?;
        for r in by_mac.iter() {
            h.sub_ids.insert(r.map_err(map_err)?.1.sub_id);
        }
        self.for_each_key::<AccessDownlink>(
            KeyTable::Access,
            |d| d.ifindex != 0,
            |k, d| {
                h.keys.insert(k);
                h.sub_ids.insert(d.sub_id);
            },
        )?;
        self.for_each_key::<AnchorUplink>(
            KeyTable::Anchor,
            |u| u.flags & flags::IN_USE != 0,
            |k, u| {
                h.keys.insert(k);
                h.sub_ids.insert(u.sub_id);
                if u.flags & flags::HAS_HOME4 != 0 {
                    h.home_v4.insert(Ipv4Addr::from(u.home_v4));
                }
                if u.flags & flags::HAS_HNP != 0 {
                    h.hnp64.insert(u.home_hnp);
                }
            },
        )?;
        Ok(h)
    }
}

/// The flags saying which home addresses a binding has (the fast path's
/// anti-spoofing checks only those).
fn home_flags(home_v4: bool, hnp: bool) -> u32 {
    let mut fl = 0;
    if home_v4 {
        fl |= flags::HAS_HOME4;
    }
    if hnp {
        fl |= flags::HAS_HNP;
    }
    fl
}
