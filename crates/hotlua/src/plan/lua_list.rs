//! [`LuaList`]: a Lua list the planner fills in entries of a few slots (a pair of functions, a
//! write), so that ten thousand entries cost no mlua handle each; made with room for what it
//! will likely hold, so that the fast path (`function_fields.rs`) can fill it over the raw
//! stack without it growing, which could raise.

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

    /// Fills the next slot (the table grows past its room if it must).
    pub(crate) fn push(&mut self, value: impl IntoLua) -> Result<()> {
        self.table.raw_set(self.len + 1, value)?;
        self.len += 1;
        Ok(())
    }

    /// Fills the next slots with the values at stack indices `values`, if the table (at stack
    /// index `table`) has room for them all, and says whether it did. Writing within the room
    /// allocates nothing, so it cannot raise.
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
