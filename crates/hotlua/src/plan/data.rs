//! Data tables, walked in one call each: a module of a million records must not cost a
//! million trips between Rust and Lua.
//!
//! A *data table* is a new table with no metatable whose keys are strings, numbers or booleans
//! and whose values are those or tables: nothing in it needs Rust (no function to inspect, no
//! metatable to pair, no key to resolve). The planner hands each such table to the walks,
//! which collect every data table it reaches in one call, merge a data table and the merges
//! that follow from it in one call (both in C over Lua's public API, `csrc/data/`: they read
//! every table of the data), and list the few fields of data tables that go live and must
//! point at live tables (in Lua, `data.lua`, which also holds the walks' state). The walks
//! follow the planner's own rules and order exactly; what needs the planner (a table that is
//! not a data table, an old function, a path for the report) comes back to it.

use mlua::{Function, Lua, Table, Value};

use super::path::Path;
use super::{Planner, Task};
use crate::apply::Write;
use crate::fallible::TryPush;
use crate::report::Conflict;
use crate::standard::Chunk;
use crate::Result;

/// The Lua walks of one plan and the data tables they collected.
pub(super) struct DataTables {
    collect: Function,
    merge: Function,
    remap: Function,
    resolve: Function,
    deleted: Function,
    /// Every data table collected → true, or the live table it merges into once paired; a
    /// table a data table reaches that is not one → false.
    members: Table,
}

impl DataTables {
    /// `pairs` and `general` are the planner's table pairs and the new tables it collected
    /// itself: the walks read both and add pairs. `unmerged`: where new tables go live
    /// ([`super::Planner::note_unmerged`]), which the walks add to.
    pub(super) fn new(
        lua: &Lua,
        members: &Table,
        foreign: &Table,
        live_modules: &Table,
        pairs: &Table,
        general: &Table,
        unmerged: &Table,
    ) -> Result<DataTables> {
        let make: Function = crate::standard::cached(lua, &DATA_TABLES)?;
        let [collect_data, merge_data, deleted] = walks_in_c(lua)?;
        let walks: Table = make.call((
            members,
            foreign,
            live_modules,
            pairs,
            general,
            unmerged,
            lua.globals(),
            collect_data,
            merge_data,
        ))?;
        Ok(DataTables {
            collect: walks.raw_get("collect")?,
            merge: walks.raw_get("merge")?,
            remap: walks.raw_get("remap")?,
            resolve: walks.raw_get("resolve")?,
            deleted,
            members: members.clone(),
        })
    }

    /// The old functions of `live` that `new` lacks: each key, then its function, in a list.
    pub(super) fn deleted_functions(&self, live: &Table, new: &Table) -> Result<Table> {
        Ok(self.deleted.call((live, new))?)
    }

    /// Points the values of a list of writes the walks made (3 slots a write, `n` slots) at
    /// the live tables they pair with.
    pub(super) fn resolve_writes(&self, list: &Table) -> Result<()> {
        Ok(self.resolve.call(list)?)
    }

    /// True for a data table.
    pub(super) fn contains(&self, table: &Table) -> Result<bool> {
        Ok(matches!(
            self.members.raw_get(table)?,
            Value::Boolean(true) | Value::Table(_)
        ))
    }
}

/// data.lua: the state of the walks over data tables.
pub(crate) const DATA_TABLES: Chunk = Chunk {
    name: "=hotlua data tables",
    source: include_str!("data.lua"),
};

/// csrc/data/'s `collect` and `merge` walks and its `deleted`, as Lua functions.
fn walks_in_c(lua: &Lua) -> mlua::Result<[Function; 3]> {
    extern "C-unwind" {
        fn hotlua_collect_data(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
        fn hotlua_merge_data(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
        fn hotlua_deleted_functions(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
    }
    // SAFETY: all are lua_CFunctions of the public C API that index their table arguments
    // without checking their types; only data.lua and `deleted_functions` call them, with the
    // tables the planner made and the new and live tables it pairs (a base is a table or
    // false, which they check).
    unsafe {
        Ok([
            lua.create_c_function(hotlua_collect_data)?,
            lua.create_c_function(hotlua_merge_data)?,
            lua.create_c_function(hotlua_deleted_functions)?,
        ])
    }
}

/// Reads a path the walks wrote (the number of keys, then the keys) at `at` (1-based), below
/// `from`; returns it and the index after it.
fn read_path(list: &Table, at: usize, from: &Path) -> Result<(Path, usize)> {
    let steps: usize = list.raw_get(at)?;
    let mut path = from.clone();
    for i in 1..=steps {
        path = path.field(&list.raw_get::<Value>(at + i)?);
    }
    Ok((path, at + steps + 1))
}

impl Planner<'_> {
    /// Collects `table`, a new table, if it is a data table, with every data table it reaches;
    /// the tables it reaches that are not data tables are returned, each with its path, in the
    /// order reached. `None`: not a data table, for the planner to collect.
    pub(super) fn collect_data(
        &mut self,
        table: &Table,
        path: &Path,
    ) -> Result<Option<Vec<(Table, Path)>>> {
        let found = match self.data.collect.call::<Value>(table)? {
            Value::Table(found) => found,
            _ => return Ok(None),
        };
        let mut reached = Vec::new();
        let mut at = 1;
        while let Some(table) = found.raw_get::<Option<Table>>(at)? {
            let (table_path, after) = read_path(&found, at + 1, path)?;
            reached.try_push((table, table_path))?;
            at = after;
        }
        Ok(Some(reached))
    }

    /// Merges `new`, a data table, into `live`, and does the merges that follow from it, as
    /// [`Planner::drain`] would, until the next is of a table that is not a data table: that
    /// one and the rest go back on the task list.
    pub(super) fn merge_data_tables(
        &mut self,
        live: &Table,
        new: &Table,
        path: &Path,
        base: Option<&Table>,
    ) -> Result<()> {
        let policy = self.policy.name();
        let (writes, assigns, events, added, merged, left): (
            Table,
            Table,
            Table,
            usize,
            usize,
            Table,
        ) = self.data.merge.call((
            live,
            new,
            base.map_or(Value::Boolean(false), |b| Value::Table(b.clone())),
            policy,
        ))?;
        self.report.fields_added += added;
        self.report.tables_merged += merged;
        // A merge can write a million fields, more than mlua can hold handles to: the raw
        // writes stay in their Lua list. Fields added through `__newindex` are few.
        self.push_fields(writes)?;
        let mut at = 1;
        while let Some(table) = assigns.raw_get::<Option<Table>>(at)? {
            let (key, value) = (assigns.raw_get(at + 1)?, assigns.raw_get(at + 2)?);
            self.writes.try_push(Write::Assign { table, key, value })?;
            at += 3;
        }
        let mut at = 1;
        while let Some(kind) = events.raw_get::<Option<String>>(at)? {
            let (field, after) = read_path(&events, at + 1, path)?;
            at = after;
            match kind.as_str() {
                "elsewhere" => self
                    .report
                    .warnings
                    .try_push(super::fields::elsewhere_warning(&field))?,
                "conflict" => {
                    let (live, new): (Value, Value) =
                        (events.raw_get(at)?, events.raw_get(at + 1)?);
                    at += 2;
                    self.report.conflicts.try_push(Conflict {
                        path: field.to_string(),
                        live: super::fields::display(&live),
                        file: super::fields::display(&new),
                    })?;
                }
                _ => {
                    let function: Function = events.raw_get(at)?;
                    at += 1;
                    self.keep_if_deleted(&function, &field)?;
                }
            }
        }
        let mut at = 1;
        while let Some(live) = left.raw_get::<Option<Table>>(at)? {
            let new: Table = left.raw_get(at + 1)?;
            let base: Option<Table> = match left.raw_get(at + 2)? {
                Value::Table(base) => Some(base),
                _ => None,
            };
            let (task_path, after) = read_path(&left, at + 3, path)?;
            at = after;
            self.tasks.push(Task::MergeTables {
                live,
                new,
                path: task_path,
                base,
            })?;
        }
        Ok(())
    }

    /// The writes that point fields of data tables going live at the live tables their values
    /// merged into.
    pub(super) fn remap_data_tables(&mut self) -> Result<()> {
        let fields: Table = self.data.remap.call(self.table_pairs.data_paired())?;
        self.push_fields(fields)
    }

    /// Plans the writes of a list the walks made, if it has any.
    fn push_fields(&mut self, list: Table) -> Result<()> {
        if list.raw_get::<usize>("n")? > 0 {
            self.writes.try_push(Write::Fields { list })?;
        }
        Ok(())
    }
}

/// A set of `tables`, for the walks.
pub(super) fn table_set<'a>(
    lua: &Lua,
    tables: impl IntoIterator<Item = &'a Table>,
) -> Result<Table> {
    let set = lua.create_table()?;
    for table in tables {
        set.raw_set(table, true)?;
    }
    Ok(set)
}
