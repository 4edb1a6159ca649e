//! The open-addressing tables the C shim reads (`HotluaPlan` in csrc/plan.h).

use std::ffi::{c_int, c_void};

use super::pairing::{Pairing, Slot};
use super::{Proto, RawPair};
use crate::fallible::{self, Grow, TryPush};

/// Mirrors `HotluaPlan` in csrc/plan.h.
#[repr(C)]
pub(super) struct CPlan {
    pub(super) proto_keys: *const *const Proto,
    pub(super) proto_values: *const usize,
    pub(super) proto_mask: usize,
    pub(super) new_protos: *const *const Proto,
    pub(super) remap_offset: *const usize,
    pub(super) remap: *const c_int,
    pub(super) cells: *const *const c_void,
    pub(super) pair_keys: *const *const c_void,
    pub(super) pair_values: *const *const c_void,
    pub(super) pair_mask: usize,
    pub(super) new_proto_keys: *const *const Proto,
    pub(super) new_proto_values: *const *const Proto,
    pub(super) new_proto_mask: usize,
    pub(super) ignore: *const *const c_void,
    pub(super) ignore_len: usize,
    pub(super) fallback: *mut *const c_void,
    pub(super) fallback_len: usize,
    pub(super) objects_scanned: usize,
    pub(super) pairs_retargeted: usize,
    pub(super) runtime_retargeted: usize,
    pub(super) left_running: usize,
    pub(super) left_upvalue: usize,
    pub(super) left_unpaired: usize,
    pub(super) left_ambiguous: usize,
    pub(super) left_scope: usize,
    pub(super) frames_running: usize,
    pub(super) frames_copied: usize,
}

/// The hash the shim probes with (`hash_ptr` in csrc/plan.h).
fn hash_ptr(p: usize, mask: usize) -> usize {
    let mut x = p >> 4;
    x ^= x >> 17;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 7) & mask
}

/// The slot of `key` in the open-addressing table `keys` (linear probing from [`hash_ptr`], as
/// csrc/plan.h probes), or the empty slot where it goes. `keys` has a power-of-two length and
/// an empty slot (tables are made at least twice as big as what they hold).
fn slot_of<T>(keys: &[*const T], key: *const T) -> usize {
    let mask = keys.len() - 1;
    let mut slot = hash_ptr(key as usize, mask);
    while !keys[slot].is_null() && keys[slot] != key {
        slot = (slot + 1) & mask;
    }
    slot
}

/// Open-addressing tables the shim reads.
pub(super) struct Tables {
    proto_keys: Vec<*const Proto>,
    proto_values: Vec<usize>,
    new_protos: Vec<*const Proto>,
    remap_offset: Vec<usize>,
    remap: Vec<c_int>,
    cells: Vec<*const c_void>,
    pair_keys: Vec<*const c_void>,
    pair_values: Vec<*const c_void>,
    new_proto_keys: Vec<*const Proto>,
    new_proto_values: Vec<*const Proto>,
}

impl Tables {
    pub(super) fn new(pairing: &Pairing, pairs: &[RawPair]) -> mlua::Result<Tables> {
        let capacity = |n: usize| (2 * n).next_power_of_two().max(16);
        let proto_capacity = capacity(pairing.map.len());
        let mut tables = Tables {
            proto_keys: fallible::filled(std::ptr::null(), proto_capacity)?,
            proto_values: fallible::filled(0, proto_capacity)?,
            new_protos: Vec::new(),
            remap_offset: Vec::new(),
            remap: Vec::new(),
            cells: Vec::new(),
            pair_keys: fallible::filled(std::ptr::null(), capacity(pairs.len()))?,
            pair_values: fallible::filled(std::ptr::null(), capacity(pairs.len()))?,
            new_proto_keys: Vec::new(),
            new_proto_values: Vec::new(),
        };
        // Room made once: ten thousand pairs would otherwise regrow each list a dozen times.
        let mut retargets = Vec::new();
        retargets.grow_by(pairing.map.len() + pairs.len())?;
        tables.new_protos.grow_by(pairing.map.len())?;
        tables.remap_offset.grow_by(pairing.map.len())?;
        tables.remap.grow_by(pairing.slots_len())?;
        for (&old, &new) in &pairing.map {
            let value = match (new, pairing.remap_of(old)) {
                (Some(new), Some(remap)) => {
                    retargets.try_push((new as *const Proto, old as *const Proto))?;
                    tables.new_protos.try_push(new as *const Proto)?;
                    tables.remap_offset.try_push(tables.remap.len())?;
                    for slot in remap {
                        // The codes of `remap` in csrc/plan.h.
                        let code = match *slot {
                            Slot::Old(index) => index,
                            Slot::Unknown => -1,
                            Slot::ScopeChanged => -2,
                            Slot::Cell(cell) => {
                                tables.cells.try_push(cell)?;
                                -2 - tables.cells.len() as c_int
                            }
                        };
                        tables.remap.try_push(code)?;
                    }
                    tables.new_protos.len()
                }
                // `proto_lookup` in csrc/plan.h: (size_t)-2 for an ambiguous prototype.
                _ if pairing.ambiguous.contains(&old) => usize::MAX - 1,
                _ => 0,
            };
            let slot = slot_of(&tables.proto_keys, old as *const Proto);
            tables.proto_keys[slot] = old as *const Proto;
            tables.proto_values[slot] = value;
        }
        for pair in pairs {
            let slot = slot_of(&tables.pair_keys, pair.old_closure);
            tables.pair_keys[slot] = pair.old_closure;
            tables.pair_values[slot] = pair.new_closure;
        }
        // Every prototype a closure can be retargeted to, with the one old prototype paired
        // with it: the scan tells from a closure alone whether it may have been retargeted,
        // and puts back one whose cells stayed in place without having logged it.
        for pair in pairs {
            retargets.try_push((pair.new_proto, pair.old_proto))?;
        }
        let slots = capacity(retargets.len());
        tables.new_proto_keys = fallible::filled(std::ptr::null(), slots)?;
        tables.new_proto_values = fallible::filled(std::ptr::null(), slots)?;
        for (new, old) in retargets {
            let slot = slot_of(&tables.new_proto_keys, new);
            let first = tables.new_proto_keys[slot].is_null();
            let value = &mut tables.new_proto_values[slot];
            // Paired with several old prototypes: no single one to put back.
            *value = if first || *value == old {
                old
            } else {
                std::ptr::null()
            };
            tables.new_proto_keys[slot] = new;
        }
        Ok(tables)
    }

    /// The plan the shim reads; it never takes the closures of `ignore` (sorted) for the
    /// module's.
    pub(super) fn c_plan(&self, fallback: *mut *const c_void, ignore: &[*const c_void]) -> CPlan {
        CPlan {
            proto_keys: self.proto_keys.as_ptr(),
            proto_values: self.proto_values.as_ptr(),
            proto_mask: self.proto_keys.len() - 1,
            new_protos: self.new_protos.as_ptr(),
            remap_offset: self.remap_offset.as_ptr(),
            remap: self.remap.as_ptr(),
            cells: self.cells.as_ptr(),
            pair_keys: self.pair_keys.as_ptr(),
            pair_values: self.pair_values.as_ptr(),
            pair_mask: self.pair_keys.len() - 1,
            new_proto_keys: self.new_proto_keys.as_ptr(),
            new_proto_values: self.new_proto_values.as_ptr(),
            new_proto_mask: self.new_proto_keys.len() - 1,
            ignore: ignore.as_ptr(),
            ignore_len: ignore.len(),
            fallback,
            fallback_len: 0,
            objects_scanned: 0,
            pairs_retargeted: 0,
            runtime_retargeted: 0,
            left_running: 0,
            left_upvalue: 0,
            left_unpaired: 0,
            left_ambiguous: 0,
            left_scope: 0,
            frames_running: 0,
            frames_copied: 0,
        }
    }
}
