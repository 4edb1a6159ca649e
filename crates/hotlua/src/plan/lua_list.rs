//! [`LuaList`]: a Lua list the planner fills in entries of a few slots (a pair of functions, a
//! write, the closures holding a cell), so that ten thousand entries cost no mlua handle
//! each; made with room for what it will likely hold, so that the fast paths
//! (`collect_fields.rs`, `function_fields.rs`) can fill it over the raw stack without it
//! growing, which could raise.

use std::ffi::c_int;

use mlua::{ffi, IntoLua, Lua, Result, Table};

pub(crate) struct LuaList {
    table: Table,
    /// Slots filled, from 1.
    len: usize,
    /// Slots the table has room for without growing.
    capacity: usize,
}

impl LuaList {
    /// An empty list with room for `capacity` slots.
    pub(crate) fn new(lua: &Lua, capacity: usize) -> Result<LuaList> {
        Ok(LuaList {
            table: lua.create_table_with_capacity(capacity, 1)?,
            len: 0,
            capacity,
        })
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// Slots filled.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True if `slots` more slots fit without the table growing.
    pub(super) fn has_room(&self, slots: usize) -> bool {
        self.len + slots <= self.capacity
    }

    /// Fills the next slot (the table grows past its room if it must) and returns its index.
    pub(crate) fn push(&mut self, value: impl IntoLua) -> Result<usize> {
        self.table.raw_set(self.len + 1, value)?;
        self.len += 1;
        Ok(self.len)
    }

    /// Makes room for `slots` more slots, at least doubling the room when it grows: a list
    /// filled a slot at a time by the general path still leaves room for the fast path.
    pub(super) fn reserve(&mut self, lua: &Lua, slots: usize) -> Result<()> {
        if self.has_room(slots) {
            return Ok(());
        }
        let capacity = (self.len + slots).max(2 * self.capacity).max(16);
        let table = lua.create_table_with_capacity(capacity, 1)?;
        let len = self.len as ffi::lua_Integer;
        // SAFETY: index 1 is the old list, index 2 the new one, with room for its first `len`
        // slots: each is pushed (index 3) and set there, which allocates nothing.
        unsafe {
            lua.exec_raw::<()>((&self.table, &table), |state| {
                for slot in 1..=len {
                    ffi::lua_rawgeti(state, 1, slot);
                    ffi::lua_rawseti(state, 2, slot);
                }
                ffi::lua_settop(state, 0);
            })?;
        }
        self.table = table;
        self.capacity = capacity;
        Ok(())
    }

    /// Fills the next slots with the values at stack indices `values`, if the table (at stack
    /// index `table`) has room for them all, and says whether it did (the last slot filled is
    /// then [`LuaList::len`]). Writing within the room allocates nothing, so it cannot raise.
    ///
    /// # Safety
    /// `table` holds this list's table; `values` are valid indices; one stack slot is free.
    pub(super) unsafe fn push_raw(
        &mut self,
        state: *mut ffi::lua_State,
        table: c_int,
        values: &[c_int],
    ) -> bool {
        if !self.has_room(values.len()) {
            return false;
        }
        for &value in values {
            ffi::lua_pushvalue(state, value);
            self.len += 1;
            ffi::lua_rawseti(state, table, self.len as ffi::lua_Integer);
        }
        true
    }
}
