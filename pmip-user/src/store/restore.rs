//! Taking up the records of an earlier run (`Endpoint::restore`): the
//! sorting every registrar shares. What differs per protocol — which
//! records it can use and how a binding is rebuilt — is the registrar's
//! [`AccessRestore`] (MAG, PMA) or [`AnchorRestore`] (LMA, HA).
use std::collections::VecDeque;
use std::mem::discriminant;
use std::time::Instant;

use super::{wall_ms, AccessRecord, AnchorRecord, Proto, Record, RecordKey, Restored, StoreOp};
use crate::agent::Clock;
use crate::dataplane::{AccessBinding, AccessPoint, AnchorBinding, DpCommand};

/// An access registrar (MAG, PMA) taking up its records.
pub(crate) trait AccessRestore {
    /// The protocol whose records this registrar takes.
    const PROTO: Proto;
    /// Takes up one unexpired record; `None`: unusable here.
    fn restore_one(
        &mut self,
        now: Instant,
        now_ms: u64,
        at: AccessPoint,
        r: &AccessRecord,
    ) -> Option<()>;
    /// The map entry a record stands for (to remove it).
    fn binding_of_record(&self, at: AccessPoint, r: &AccessRecord) -> Option<AccessBinding>;
    /// A record of ours was not taken up (for a counter).
    fn note_dropped(&mut self) {}
    /// Its clock, and its store and data-plane queues (the deletes and map
    /// removals go there).
    fn restore_parts(&mut self) -> (&Clock, &mut VecDeque<StoreOp>, &mut VecDeque<DpCommand>);
}

/// An anchor registrar (LMA, HA) taking up its records.
pub(crate) trait AnchorRestore {
    /// The protocol whose records this registrar takes.
    const PROTO: Proto;
    /// The key the registrar files `r` under (a record under another one
    /// is not its own).
    fn key_of(r: &AnchorRecord) -> RecordKey;
    /// Takes up one unexpired record; `None`: unusable here.
    fn restore_one(&mut self, now: Instant, now_ms: u64, r: &AnchorRecord) -> Option<()>;
    /// Takes up an unexpired record that stands for no binding (the HA's
    /// record of a released binding whose revocations are in progress);
    /// true: it stays in the store and is not counted as a binding.
    fn restore_record_only(&mut self, _now: Instant, _now_ms: u64, _r: &AnchorRecord) -> bool {
        false
    }
    /// The map entries a record stands for (to remove them).
    fn binding_of_record(&self, r: &AnchorRecord) -> Option<AnchorBinding>;
    /// Its clock, and its store and data-plane queues (the deletes and map
    /// removals go there).
    fn restore_parts(&mut self) -> (&Clock, &mut VecDeque<StoreOp>, &mut VecDeque<DpCommand>);
}

/// Sorts an access registrar's records: its protocol's unexpired ones are
/// taken up, everything else is forgotten (see `Endpoint::restore`).
pub(crate) fn restore_access<T: AccessRestore>(
    t: &mut T,
    now: Instant,
    records: Vec<(RecordKey, Record)>,
) -> Restored {
    let now_ms = wall_ms(t.restore_parts().0.wall(now));
    let mut out = Restored::default();
    for (key, rec) in records {
        let (RecordKey::Access(at), Record::Access(r)) = (key.clone(), &rec) else {
            drop_foreign(&mut out, t.restore_parts().1, key);
            continue;
        };
        let usable = r.proto == T::PROTO && r.expires_ms > now_ms;
        if usable && t.restore_one(now, now_ms, at, r).is_some() {
            out.bindings += 1;
            out.holds.sub_ids.insert(r.sub_id);
            out.holds.keys.insert(r.downlink_key);
            continue;
        }
        // Expired (the anchor let it go too) or unusable here: its map
        // entry, if the pins kept one, goes as well.
        out.dropped += 1;
        t.note_dropped();
        let binding = t.binding_of_record(at, r);
        let (_, store, dp) = t.restore_parts();
        store.push_back(StoreOp::Delete(key));
        dp.extend(binding.map(DpCommand::RemoveAccess));
    }
    out
}

/// Sorts an anchor registrar's records: its protocol's unexpired ones are
/// taken up, everything else is forgotten (see `Endpoint::restore`).
pub(crate) fn restore_anchor<T: AnchorRestore>(
    t: &mut T,
    now: Instant,
    records: Vec<(RecordKey, Record)>,
) -> Restored {
    let now_ms = wall_ms(t.restore_parts().0.wall(now));
    let mut out = Restored::default();
    for (key, rec) in records {
        let Record::Anchor(r) = &rec else {
            drop_foreign(&mut out, t.restore_parts().1, key);
            continue;
        };
        let own = T::key_of(r);
        if discriminant(&key) != discriminant(&own) {
            drop_foreign(&mut out, t.restore_parts().1, key);
            continue;
        }
        let usable = r.proto == T::PROTO && r.expires_ms > now_ms && key == own;
        if usable && t.restore_record_only(now, now_ms, r) {
            continue;
        }
        if usable && t.restore_one(now, now_ms, r).is_some() {
            out.bindings += 1;
            out.holds.sub_ids.insert(r.sub_id);
            out.holds.keys.insert(r.uplink_key);
            out.holds.home_v4.extend(r.home_v4);
            if let Some(h) = r.hnp {
                out.holds
                    .hnp64
                    .insert(h.prefix.octets()[..8].try_into().unwrap_or_default());
            }
            continue;
        }
        out.dropped += 1;
        let binding = t.binding_of_record(r);
        let (_, store, dp) = t.restore_parts();
        store.push_back(StoreOp::Delete(key));
        dp.extend(binding.map(DpCommand::RemoveAnchor));
    }
    out
}

/// A record under one of our keys of a kind we do not file there: deleted
/// (the node record is not ours to delete).
fn drop_foreign(out: &mut Restored, store: &mut VecDeque<StoreOp>, key: RecordKey) {
    if key != RecordKey::Node {
        out.dropped += 1;
        store.push_back(StoreOp::Delete(key));
    }
}
