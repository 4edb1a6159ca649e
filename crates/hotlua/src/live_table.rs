//! Undoing what a new top level wrote straight into the live module table.
//!
//! A module may fill a table it did not create: `local Shape = require("registry").Shape;
//! function Shape.area() ... end; return Shape` (Penlight's `List`, `Map` and `Set` do this).
//! Its new top level then writes into the live table while it runs in the staging
//! environment. The table is copied before the run and put back right after; what the run
//! wrote comes out as a fresh table that the planner pairs with the live one like any new
//! version, so a check or a failed reload leaves the live table as it was and a reload switches
//! references to the replaced functions.

use mlua::{Lua, Table, Value};

use crate::fallible::TryPush;
use crate::Result;

/// The fields and metatable of a live table, copied before a new top level runs.
pub(crate) struct LiveTable {
    table: Table,
    fields: Table,
    metatable: Option<Table>,
}

impl LiveTable {
    /// Copies `value` if it is a table.
    pub(crate) fn copy(lua: &Lua, value: &Value) -> Result<Option<LiveTable>> {
        let Value::Table(table) = value else {
            return Ok(None);
        };
        let fields = lua.create_table()?;
        for pair in table.pairs::<Value, Value>() {
            let (key, field) = pair?;
            fields.raw_set(key, field)?;
        }
        Ok(Some(LiveTable {
            table: table.clone(),
            fields,
            metatable: table.metatable(),
        }))
    }

    /// Puts the table back as it was copied and returns what was written into it since, as a
    /// fresh table: every field set to a different value, and the metatable if it was replaced.
    ///
    /// Everything that allocates comes first: the live table changes only once `written` is
    /// complete, and putting back a field the top level changed allocates nothing (its key is
    /// there). Only a field the top level deleted needs its key inserted again.
    pub(crate) fn restore(&self, lua: &Lua) -> Result<Table> {
        let written = lua.create_table()?;
        let mut changed = Vec::new();
        for pair in self.table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let before: Value = self.fields.raw_get(&key)?;
            if before != value {
                written.raw_set(&key, value)?;
                changed.try_push((key, before))?;
            }
        }
        let metatable = self.table.metatable();
        if metatable != self.metatable {
            written.set_metatable(metatable)?;
            self.table.set_metatable(self.metatable.clone())?;
        }
        for (key, before) in changed {
            self.table.raw_set(key, before)?;
        }
        for pair in self.fields.pairs::<Value, Value>() {
            let (key, value) = pair?;
            if self.table.raw_get::<Value>(&key)? == Value::Nil {
                self.table.raw_set(key, value)?;
            }
        }
        Ok(written)
    }

    /// True if `value` is the table this copies.
    pub(crate) fn is(&self, value: &Value) -> bool {
        matches!(value, Value::Table(table) if table == &self.table)
    }
}
