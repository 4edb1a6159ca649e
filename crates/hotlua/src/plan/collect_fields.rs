//! Phase 1, the fast path: the functions a new table holds (the bulk of a module's fields),
//! collected over the raw Lua stack.
//!
//! [`Planner::collect`] visits what the new versions made depth first, each value at the path
//! it is first reached by, a table's fields in the table's order. Most fields of a module are
//! functions of the batch whose upvalue cells hold plain values, or objects visited already:
//! collecting one reaches nothing new, so it can be done at once, without an mlua handle for
//! its key, its function or its cells. One protected call walks the table and does that for
//! each field it can; it stops at the first field that reaches something (a table, a cell
//! holding what was not visited yet, another file's closure), which the general path then
//! visits, with everything it reaches, before the walk goes on after it. The order is the
//! general path's either way.

use std::collections::hash_map::Entry;
use std::ffi::c_int;

use mlua::{ffi, Table, Value};

use super::facts::Walk;
use super::field_walk::walk_fields;
use super::{NewCell, Path, Planner};
use crate::fallible::{Grow, TryPush};
use crate::Result;

/// Stack indices of the walk's frame.
const TABLE: c_int = 1;
const FROM: c_int = 2;
const HOLDERS: c_int = 3;
/// The list of the last environment group (Lua 5.1 and LuaJIT; `nil` when there is none).
#[cfg(any(feature = "lua51", feature = "luajit"))]
const ENVIRONMENTS: c_int = 4;

impl Planner<'_> {
    /// Collects the fields of the new `table` (at `path`) after the key `from` (`nil`: from the
    /// first) that the fast path can, and returns the key of the first one it cannot, if any.
    pub(super) fn collect_function_fields(
        &mut self,
        table: &Table,
        path: &Path,
        from: &Value,
    ) -> Result<Option<Value>> {
        let lua = self.lua;
        let holders = self.cell_holders.table().clone();
        #[cfg(any(feature = "lua51", feature = "luajit"))]
        let environments = match self.environments.last_group() {
            Some((_, functions)) => Value::Table(functions.table().clone()),
            None => Value::Nil,
        };
        #[cfg(not(any(feature = "lua51", feature = "luajit")))]
        let environments = Value::Nil;
        // Cells the walk made: their values are cloned (an mlua handle each) after it.
        let mut made = Vec::new();
        // SAFETY: the frame holds `table`, `from`, the holders' list and the environment list
        // at the indices above; the key and value of each field are at 5 and 6. Nothing the
        // step calls raises: lua_getfenv and lua_topointer read, and the lists are only
        // written within their room (`push_raw`), which allocates nothing.
        let stopped = unsafe {
            walk_fields(
                lua,
                (table, from, &holders, environments),
                TABLE,
                FROM,
                |state| self.collect_function_field(state, path, &mut made),
            )
        };
        for cell in made {
            let value = self.facts.cell_value(cell);
            if let Some(cell) = self.new_cells.get_mut(&cell) {
                cell.value = value;
            }
        }
        stopped
    }

    /// Collects the field whose key and value are at the top of the stack (indices 5 and 6) if
    /// the fast path can, and says whether it did. Leaves the stack as it found it.
    ///
    /// # Safety
    /// As for [`Planner::collect_function_fields`]'s frame; two more slots are free.
    unsafe fn collect_function_field(
        &mut self,
        state: *mut ffi::lua_State,
        path: &Path,
        made: &mut Vec<usize>,
    ) -> Result<bool> {
        let (key, value) = (ffi::lua_absindex(state, -2), ffi::lua_absindex(state, -1));
        let key_type = ffi::lua_type(state, key);
        if key_type == ffi::LUA_TTABLE || key_type == ffi::LUA_TFUNCTION {
            return Ok(false);
        }
        match ffi::lua_type(state, value) {
            ffi::LUA_TTABLE => Ok(false),
            ffi::LUA_TFUNCTION if key_type == ffi::LUA_TSTRING => {
                self.collect_new_function(state, key, value, path, made)
            }
            ffi::LUA_TFUNCTION => Ok(false),
            // Neither reaches anything.
            _ => Ok(true),
        }
    }

    /// Collects the function at `value` (the field `key` of the table at `path`) if it is one
    /// of the batch's whose collecting reaches nothing not visited yet.
    ///
    /// # Safety
    /// As for [`Planner::collect_function_field`]; `key` holds a string, `value` a function.
    unsafe fn collect_new_function(
        &mut self,
        state: *mut ffi::lua_State,
        key: c_int,
        value: c_int,
        path: &Path,
        made: &mut Vec<usize>,
    ) -> Result<bool> {
        let identity = ffi::lua_topointer(state, value) as usize;
        if self.new_functions.contains(identity) {
            return Ok(true);
        }
        let Some(facts) = self.facts.known_in_order(identity, Walk::New) else {
            return Ok(false);
        };
        if !facts.from_sources || !self.cell_holders.has_room(facts.upvalues.len()) {
            return Ok(false);
        }
        let reaches_nothing_new = facts.upvalues.iter().all(|upvalue| {
            self.new_cells.contains_key(&upvalue.cell)
                || match self.facts.cell_object(upvalue.cell) {
                    None => true,
                    Some((true, table)) => self.visited_table(table),
                    Some((false, function)) => {
                        self.new_functions.contains(function)
                            || self.foreign_closures.contains_key(&function)
                    }
                }
        });
        if !reaches_nothing_new {
            return Ok(false);
        }
        let Some(in_environment_group) = self.environment_group(state, value) else {
            return Ok(false);
        };
        let function_path = path.field_at(state, key);
        self.new_functions.insert(identity, function_path.clone())?;
        let facts = self
            .facts
            .known_in_order(identity, Walk::New)
            .expect("read above");
        for (index, upvalue) in facts.numbered_upvalues() {
            self.new_cells.grow()?;
            let cell = match self.new_cells.entry(upvalue.cell) {
                Entry::Occupied(cell) => cell.into_mut(),
                Entry::Vacant(cell) => {
                    made.try_push(upvalue.cell)?;
                    cell.insert(NewCell {
                        name: upvalue.name.clone(),
                        path: function_path.upvalue(&upvalue.name),
                        value: Value::Nil,
                        holders: Vec::new(),
                        policy: self.policy,
                    })
                }
            };
            cell.holders.grow()?;
            // Room was checked above.
            self.cell_holders.push_raw(state, HOLDERS, &[value]);
            cell.holders.push((self.cell_holders.len(), index));
        }
        if in_environment_group {
            self.add_to_environment_group(state, value);
        }
        Ok(true)
    }

    /// True for a table the general path would skip: visited already, or never collected.
    fn visited_table(&self, identity: usize) -> bool {
        self.foreign.contains(&identity)
            || self.live_modules.contains(&identity)
            || self.new_tables.holds(identity)
            || self.table_pairs.holds(identity)
    }

    /// Whether the function at `function` is to be added to the last environment group
    /// (`Some(true)`), has no environment table (`Some(false)`, as on Lua 5.2+), or is left to
    /// the general path (`None`: an environment not visited yet, or another group's, or no
    /// room).
    ///
    /// # Safety
    /// `function` holds a function; one stack slot is free.
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    unsafe fn environment_group(
        &self,
        state: *mut ffi::lua_State,
        function: c_int,
    ) -> Option<bool> {
        ffi::lua_getfenv(state, function);
        let environment = (ffi::lua_type(state, -1) == ffi::LUA_TTABLE)
            .then(|| ffi::lua_topointer(state, -1) as usize);
        ffi::lua_pop(state, 1);
        let Some(environment) = environment else {
            return Some(false);
        };
        let (last, functions) = self.environments.last_group()?;
        (self.visited_table(environment) && last == environment && functions.has_room(1))
            .then_some(true)
    }

    /// Adds the function at `function` to the last environment group, which
    /// [`Planner::environment_group`] found has room.
    ///
    /// # Safety
    /// As for [`Planner::collect_function_fields`]'s frame: the group's list is at
    /// ENVIRONMENTS (the last group existed when the walk began, and only the general path
    /// adds groups).
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    unsafe fn add_to_environment_group(&mut self, state: *mut ffi::lua_State, function: c_int) {
        if let Some(functions) = self.environments.last_group_mut() {
            functions.push_raw(state, ENVIRONMENTS, &[function]);
        }
    }

    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    unsafe fn add_to_environment_group(&mut self, _: *mut ffi::lua_State, _: c_int) {}

    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    unsafe fn environment_group(&self, _: *mut ffi::lua_State, _: c_int) -> Option<bool> {
        Some(false)
    }
}
