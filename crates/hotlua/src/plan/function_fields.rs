//! Phase 2, the fast path: the fields of a table pair where a function of the batch replaces
//! one of its old functions, the bulk of a module's fields, merged over the raw Lua stack.
//!
//! Such a field is paired exactly as [`Planner::merge_one_field`] would pair it (see
//! `pair_functions`), but without an mlua handle for its key, its two functions or its write:
//! one protected call walks the table, and stops at the first field it cannot merge so (any
//! other kind of value, or a pair that meets a cell the planner has not seen yet, which needs
//! handles to record), for the slow path to merge before the walk goes on from there. The
//! fields are merged in the table's order either way.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::{ffi, Table, Value};

use super::facts::{same_name, FunctionFacts, UpvalueFact, Walk};
use super::field_walk::walk_fields;
use super::{Path, Planner};
use crate::fallible::Grow;
use crate::Result;

/// Stack indices of the walk's frame.
const LIVE: c_int = 1;
const NEW: c_int = 2;
const FROM: c_int = 3;
const PAIRS: c_int = 4;
const WRITES: c_int = 5;

impl Planner<'_> {
    /// Merges the fields of `new` after the key `from` (`nil`: from the first) that the fast
    /// path can merge, and returns the key of the first one it cannot, if any. Adds to
    /// `live_functions` each field it merges (its live value is a function).
    pub(super) fn merge_function_fields(
        &mut self,
        live: &Table,
        new: &Table,
        path: &Path,
        from: &Value,
        live_functions: &mut usize,
    ) -> Result<Option<Value>> {
        let lua = self.lua;
        let pairs = self.replaced.list().clone();
        let writes = self.function_writes.table().clone();
        // SAFETY: the frame holds `live`, `new`, `from`, the pairs' list and the writes' list
        // at the indices above; the key and value of each field are at 6 and 7. Nothing the
        // step calls raises: lua_rawget reads, and the two lists are only written within the
        // room made for them (`push_raw`), which allocates nothing.
        unsafe {
            walk_fields(
                lua,
                (live, new, from, &pairs, &writes),
                NEW,
                FROM,
                |state| {
                    let merged = self.merge_function_field(state, path)?;
                    *live_functions += usize::from(merged);
                    Ok(merged)
                },
            )
        }
    }

    /// Merges the field whose key and value are at the top of the stack (indices 6 and 7) if
    /// the fast path can, and says whether it did. Leaves the stack as it found it.
    ///
    /// # Safety
    /// As for [`Planner::merge_function_fields`]'s frame; one more slot is free.
    unsafe fn merge_function_field(
        &mut self,
        state: *mut ffi::lua_State,
        path: &Path,
    ) -> Result<bool> {
        let (key, value) = (ffi::lua_absindex(state, -2), ffi::lua_absindex(state, -1));
        if ffi::lua_type(state, key) != ffi::LUA_TSTRING
            || ffi::lua_type(state, value) != ffi::LUA_TFUNCTION
        {
            return Ok(false);
        }
        let new_id = ffi::lua_topointer(state, value) as usize;
        let Some(new_path) = self
            .new_functions
            .get_in_order(new_id, &self.new_function_merged)
        else {
            return Ok(false);
        };
        let new_path = new_path.clone();
        ffi::lua_pushvalue(state, key);
        ffi::lua_rawget(state, LIVE);
        let old = ffi::lua_absindex(state, -1);
        let merged = self.merge_function_pair(state, key, old, value, new_id, path, &new_path);
        ffi::lua_pop(state, 1);
        merged
    }

    /// The field's live value is at `old`: a function of the batch the fast path can pair
    /// with the new one at `new` (collected at `new_path`), or false.
    ///
    /// # Safety
    /// As for [`Planner::merge_function_field`]; `key`, `old` and `new` are valid indices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn merge_function_pair(
        &mut self,
        state: *mut ffi::lua_State,
        key: c_int,
        old: c_int,
        new: c_int,
        new_id: usize,
        path: &Path,
        new_path: &Path,
    ) -> Result<bool> {
        if ffi::lua_type(state, old) != ffi::LUA_TFUNCTION {
            return Ok(false);
        }
        let old_id = ffi::lua_topointer(state, old) as usize;
        if old_id == new_id {
            // The field holds it already: nothing to merge.
            return Ok(true);
        }
        let (Some(old_facts), Some(new_facts)) = (
            self.facts.known_in_order(old_id, Walk::Live),
            self.facts.known_in_order(new_id, Walk::New),
        ) else {
            return Ok(false);
        };
        if !old_facts.from_sources || !self.function_writes.has_room(3) {
            return Ok(false);
        }
        if !self.function_pairs.contains(old_id) {
            if !self.pairs_without_handles(old_id, old_facts, new_facts) {
                return Ok(false);
            }
            let Some(at) = self.replaced.push_raw(state, PAIRS, old, new) else {
                return Ok(false);
            };
            // The pair is reported at its field's path, most often the one its new function
            // was collected at: shared then, not made again.
            let pair_path = if new_path.is_field_at(path, state, key) {
                new_path.clone()
            } else {
                path.field_at(state, key)
            };
            self.note_pair(old_id, new_id, at, pair_path)?;
            self.old_functions.grow()?;
            self.old_functions.insert(old_id);
        }
        // The write `live[key] = new`, as `push_function_write` lists it (room checked above).
        Ok(self
            .function_writes
            .push_raw(state, WRITES, &[LIVE, key, new]))
    }

    /// True when pairing these two functions (the old one, of identity `old_id`, of the batch)
    /// meets only cells the planner knows already: no cell to record, no values to pair, so
    /// nothing that needs an mlua handle.
    fn pairs_without_handles(&self, old_id: usize, old: FunctionFacts, new: FunctionFacts) -> bool {
        if self.last_handle_free.is(old.upvalues, new.upvalues) {
            return true;
        }
        let handle_free = self.checks_without_handles(old_id, old, new);
        if handle_free {
            self.last_handle_free.set(old.upvalues, new.upvalues);
        }
        handle_free
    }

    /// What [`Planner::pairs_without_handles`] checks, a few hash lookups an upvalue.
    fn checks_without_handles(
        &self,
        old_id: usize,
        old: FunctionFacts,
        new: FunctionFacts,
    ) -> bool {
        let old_cells_known = self.old_functions.contains(&old_id)
            || old.upvalues.iter().all(|upvalue| {
                self.old_cells_by_name
                    .get(&upvalue.name)
                    .is_some_and(|cells| cells.contains_key(&upvalue.cell))
            });
        old_cells_known
            && new.upvalues.iter().all(|upvalue| {
                let Some(old_upvalue) = old
                    .upvalues
                    .iter()
                    .find(|u| same_name(&u.name, &upvalue.name))
                else {
                    return true;
                };
                self.cell_joins.contains_key(&upvalue.cell)
                    && (!self.facts.cell_holds_object(upvalue.cell)
                        || self
                            .cell_values_paired
                            .contains(&(old_upvalue.cell, upvalue.cell)))
            })
    }
}

/// The upvalues (name, cell) of the old and new functions of the last pair
/// [`Planner::pairs_without_handles`] found true. What it checks only grows (old cells
/// recorded, cells joined, values paired) or never changes (a cell's value), so a pair with
/// the same upvalues is true too: a module's functions mostly share theirs.
#[derive(Default)]
pub(super) struct LastHandleFree(RefCell<PairUpvalues>);

/// A pair's upvalues, each as [`name_and_cell`].
#[derive(Default)]
struct PairUpvalues {
    old: Vec<(usize, usize)>,
    new: Vec<(usize, usize)>,
}

impl LastHandleFree {
    fn is(&self, old: &[UpvalueFact], new: &[UpvalueFact]) -> bool {
        let last = self.0.borrow();
        same_upvalues(&last.old, old) && same_upvalues(&last.new, new)
    }

    /// Remembers the pair (or, out of memory, nothing).
    fn set(&self, old: &[UpvalueFact], new: &[UpvalueFact]) {
        let last = &mut *self.0.borrow_mut();
        last.old.clear();
        last.new.clear();
        if last.old.try_reserve(old.len()).is_err() || last.new.try_reserve(new.len()).is_err() {
            return;
        }
        last.old.extend(old.iter().map(name_and_cell));
        last.new.extend(new.iter().map(name_and_cell));
    }
}

/// An upvalue by the address of its name (held once: the same address is the same name) and
/// its cell.
fn name_and_cell(upvalue: &UpvalueFact) -> (usize, usize) {
    (
        Rc::as_ptr(&upvalue.name).cast::<u8>() as usize,
        upvalue.cell,
    )
}

fn same_upvalues(last: &[(usize, usize)], upvalues: &[UpvalueFact]) -> bool {
    last.len() == upvalues.len()
        && last
            .iter()
            .zip(upvalues)
            .all(|(&last, upvalue)| last == name_and_cell(upvalue))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair is the last one only with the same names (the same held name, not an equal one
    /// held apart) and the same cells, in order, on both sides.
    #[test]
    fn the_last_pair_is_known_by_its_names_and_cells() {
        let (shared, m): (Rc<str>, Rc<str>) = ("shared".into(), "M".into());
        let upvalue = |name: &Rc<str>, cell| UpvalueFact {
            name: name.clone(),
            cell,
        };
        let old = [upvalue(&shared, 1), upvalue(&m, 2)];
        let new = [upvalue(&shared, 3), upvalue(&m, 4)];
        let last = LastHandleFree::default();
        assert!(!last.is(&old, &new[..1]));
        last.set(&old, &new);
        assert!(last.is(&old, &new));
        let other_cell = [upvalue(&shared, 3), upvalue(&m, 5)];
        let name_held_apart = [upvalue(&"shared".into(), 3), upvalue(&m, 4)];
        let swapped = [upvalue(&m, 4), upvalue(&shared, 3)];
        for different in [&other_cell[..], &name_held_apart, &swapped, &new[..1]] {
            assert!(!last.is(&old, different));
        }
        assert!(!last.is(&new, &new));
    }
}
