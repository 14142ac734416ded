//! Who serves which service address, as etcd says, and who should claim a
//! free one — decided the same way by every member from the same view, so
//! normally only one tries; the claim itself is a compare-and-set, so two
//! members with different views still cannot both win.
//!
//! The claimer of a free address is the live member serving the fewest
//! addresses (ties: the smaller name), counting the free addresses handed
//! out before it in the list: at a cold start the addresses spread one per
//! member, and a dead member's addresses go to the least-loaded survivors.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::member::MemberRecord;
use super::mirror::Snapshot;

/// One service address's owner: a member and the lease it owns it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub member: String,
    pub lease: i64,
}

/// The cluster as this member sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    /// Members alive in etcd (their record exists, so their lease does).
    pub members: BTreeMap<String, MemberRecord>,
    pub owners: BTreeMap<IpAddr, Owner>,
    /// Both mirrors are in sync with etcd.
    pub synced: bool,
}

impl View {
    pub(crate) fn from(members: &Snapshot, owners: &Snapshot) -> View {
        View {
            members: members
                .entries
                .iter()
                .filter_map(|(k, e)| {
                    let r: MemberRecord = serde_json::from_slice(&e.value).ok()?;
                    (r.name == *k).then_some((k.clone(), r))
                })
                .collect(),
            owners: owners
                .entries
                .iter()
                .filter_map(|(k, e)| {
                    Some((
                        k.parse().ok()?,
                        Owner {
                            member: String::from_utf8(e.value.clone()).ok()?,
                            lease: e.lease,
                        },
                    ))
                })
                .collect(),
            synced: members.synced && owners.synced,
        }
    }

    /// Addresses `member` owns.
    pub(crate) fn owned_by(&self, member: &str) -> Vec<IpAddr> {
        self.owners
            .iter()
            .filter(|(_, o)| o.member == member)
            .map(|(a, _)| *a)
            .collect()
    }

    /// For each free address of `addresses` (in order), the member that
    /// should claim it, among live members not in `dead`.
    pub(crate) fn designated(
        &self,
        addresses: &[IpAddr],
        dead: &BTreeSet<String>,
    ) -> BTreeMap<IpAddr, String> {
        let mut load: BTreeMap<&str, usize> = self
            .members
            .keys()
            .filter(|m| !dead.contains(*m))
            .map(|m| (m.as_str(), 0))
            .collect();
        for o in self.owners.values() {
            if let Some(n) = load.get_mut(o.member.as_str()) {
                *n += 1;
            }
        }
        let mut out = BTreeMap::new();
        for a in addresses {
            if self.owners.contains_key(a) {
                continue;
            }
            let Some((m, _)) = load.iter().min_by_key(|(m, n)| (**n, **m)) else {
                break;
            };
            let m = m.to_string();
            *load.get_mut(m.as_str()).expect("listed") += 1;
            out.insert(*a, m);
        }
        out
    }

    /// Where `member` ranks among the live members by load (0: least loaded),
    /// to stagger the fallback claims of the others.
    pub(crate) fn rank(&self, member: &str, dead: &BTreeSet<String>) -> usize {
        let mut v: Vec<(usize, &str)> = self
            .members
            .keys()
            .filter(|m| !dead.contains(*m))
            .map(|m| (self.owned_by(m).len(), m.as_str()))
            .collect();
        v.sort();
        v.iter().position(|(_, m)| *m == member).unwrap_or(v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            addr: "10.0.0.1".parse().unwrap(),
            heartbeat_port: 5437,
            lease: 1,
            started_ms: 0,
        }
    }

    fn view(members: &[&str], owners: &[(&str, &str)]) -> View {
        View {
            members: members.iter().map(|m| (m.to_string(), rec(m))).collect(),
            owners: owners
                .iter()
                .map(|(a, m)| {
                    (
                        a.parse().unwrap(),
                        Owner {
                            member: m.to_string(),
                            lease: 1,
                        },
                    )
                })
                .collect(),
            synced: true,
        }
    }

    fn addrs(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_cold_start_spreads_one_address_per_member() {
        let v = view(&["a1", "a2", "a3"], &[]);
        let d = v.designated(
            &addrs(&["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.9"]),
            &BTreeSet::new(),
        );
        let got: Vec<&str> = d.values().map(String::as_str).collect();
        assert_eq!(got, ["a1", "a2", "a3", "a1"]);
    }

    #[test]
    fn a_dead_members_addresses_go_to_the_least_loaded_survivors() {
        let v = view(
            &["a1", "a2", "a3"],
            &[("10.9.0.1", "a1"), ("10.9.0.9", "a1"), ("10.9.0.3", "a3")],
        );
        // a2 died: its key is gone; 10.9.0.2 is free.
        let dead: BTreeSet<String> = ["a2".to_string()].into();
        let d = v.designated(
            &addrs(&["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.9"]),
            &dead,
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[&"10.9.0.2".parse::<IpAddr>().unwrap()], "a3");
        assert_eq!(v.rank("a3", &dead), 0);
        assert_eq!(v.rank("a1", &dead), 1);
        assert_eq!(v.rank("a2", &dead), 2, "not among the live ones");
    }

    #[test]
    fn nobody_to_designate_without_live_members() {
        let v = view(&["a1"], &[]);
        let dead: BTreeSet<String> = ["a1".to_string()].into();
        assert!(v.designated(&addrs(&["10.9.0.1"]), &dead).is_empty());
    }

    #[test]
    fn views_are_read_from_the_mirrors() {
        use super::super::mirror::Entry;
        use std::sync::Arc;
        let mut m = BTreeMap::new();
        m.insert(
            "a1".to_string(),
            Entry {
                value: serde_json::to_vec(&rec("a1")).unwrap(),
                lease: 7,
            },
        );
        m.insert(
            "bogus".to_string(),
            Entry {
                value: b"{".to_vec(),
                lease: 7,
            },
        );
        let mut o = BTreeMap::new();
        o.insert(
            "10.9.0.1".to_string(),
            Entry {
                value: b"a1".to_vec(),
                lease: 7,
            },
        );
        o.insert(
            "nonsense".to_string(),
            Entry {
                value: b"a1".to_vec(),
                lease: 7,
            },
        );
        let v = View::from(
            &Snapshot {
                entries: Arc::new(m),
                synced: true,
            },
            &Snapshot {
                entries: Arc::new(o),
                synced: false,
            },
        );
        assert_eq!(v.members.len(), 1);
        assert_eq!(v.owners.len(), 1);
        assert_eq!(v.owned_by("a1").len(), 1);
        assert!(!v.synced);
    }
}
