//! Tables by identity, held in a Lua table instead of one mlua handle each: mlua holds a
//! limited number of handles (about a million on Lua 5.2+, about 8000 on Lua 5.1 and LuaJIT),
//! and a module's data can have more tables than that.

use mlua::{Lua, Table, Value};
use rustc_hash::FxHashSet;

use crate::Result;

/// A map from tables to values, with membership answered without touching Lua.
pub(super) struct TableMap {
    identities: FxHashSet<usize>,
    entries: Table,
}

impl TableMap {
    pub(super) fn new(lua: &Lua) -> Result<TableMap> {
        Ok(TableMap {
            identities: FxHashSet::default(),
            entries: lua.create_table()?,
        })
    }

    pub(super) fn contains(&self, table: &Table) -> bool {
        self.identities.contains(&(table.to_pointer() as usize))
    }

    /// Maps `table` to `value`; false if it already was in the map (then nothing changes).
    pub(super) fn insert(&mut self, table: &Table, value: impl mlua::IntoLua) -> Result<bool> {
        if !self.identities.insert(table.to_pointer() as usize) {
            return Ok(false);
        }
        self.entries.raw_set(table, value)?;
        Ok(true)
    }

    /// The table `table` maps to, if it maps to one.
    pub(super) fn get(&self, table: &Table) -> Result<Option<Table>> {
        if !self.contains(table) {
            return Ok(None);
        }
        Ok(self.entries.raw_get(table)?)
    }

    /// Every table in the map, one handle at a time.
    pub(super) fn tables(&self) -> impl Iterator<Item = mlua::Result<Table>> + '_ {
        self.entries
            .pairs::<Value, Value>()
            .map(|pair| match pair? {
                (Value::Table(table), _) => Ok(table),
                _ => Err(mlua::Error::runtime(
                    "a table map holds a key that is not a table",
                )),
            })
    }
}
