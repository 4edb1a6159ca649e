//! Phase 1: everything the new versions created, and (last) pointing the new tables that go
//! live as they are at live objects.

use std::collections::hash_map::Entry;

use mlua::{Function, Table, Value};

use super::facts::FieldsRead;
use super::tables::{Pending, PendingValues};
use super::{NewCell, Path, Planner};
use crate::apply::Write;
use crate::fallible::{self, Grow, TryPush};
use crate::load::StagedModule;
use crate::Result;

impl Planner<'_> {
    /// `globals`: what the top level wrote into `_G` that matters ([`super::globals::sift`]).
    pub(super) fn collect_module(&mut self, module: &StagedModule, globals: &Table) -> Result<()> {
        // What the top level wrote into `_G` and into other live tables: the values are new,
        // the tables they were written into are live.
        let mut pending = PendingValues::new(self.lua)?;
        let written = std::iter::once((globals, Path::root(""))).chain(
            module
                .extended
                .iter()
                .map(|w| (&w.fields, Path::root(&w.name))),
        );
        for (fields, table_path) in written {
            for pair in fields.pairs::<Value, Value>() {
                let (key, value) = pair?;
                pending.push(&key, Path::root(&module.name))?;
                pending.push(&value, table_path.field(&key))?;
            }
            if let Some(metatable) = crate::raw::metatable(self.lua, fields)? {
                pending.push(&Value::Table(metatable), table_path.metatable())?;
            }
        }
        pending.push(&module.new, Path::root(&module.name))?;
        pending.reverse_since(0)?;
        self.collect(pending)
    }

    /// Collects the values of `pending` (a stack: the last is visited first) and everything
    /// they reach, depth first, each at the path it is first reached by.
    fn collect(&mut self, mut pending: PendingValues) -> Result<()> {
        while let Some(entry) = pending.pop()? {
            let siblings = pending.len();
            let (value, path) = match entry {
                Pending::Value(value, path) => (value, path),
                Pending::FieldsAfter { table, key, path } => {
                    self.collect_fields(&table, &path, &key, &mut pending)?;
                    pending.reverse_since(siblings)?;
                    continue;
                }
            };
            match &value {
                Value::Table(table) => {
                    let identity = table.to_pointer() as usize;
                    if self.is_foreign(table)
                        || self.live_modules.contains(&identity)
                        || self.table_pairs.contains(table)?
                        || self.new_tables.contains(table)?
                    {
                        continue;
                    }
                    if let Some(reached) = self.collect_data(table, &path)? {
                        for (other, other_path) in reached {
                            pending.push(&Value::Table(other), other_path)?;
                        }
                        pending.reverse_since(siblings)?;
                        continue;
                    }
                    self.new_tables.insert(table, true)?;
                    let FieldsRead {
                        functions,
                        upvalues,
                        ..
                    } = self.facts.read_fields(self.lua, table)?;
                    if functions == 0 {
                        // Nothing for the fast path (a list of records, say): it would stop at
                        // each field.
                        self.push_every_field(table, &path, &mut pending)?;
                    } else {
                        // Room for the fast path to note each function and list its cells.
                        self.new_functions.reserve(functions)?;
                        self.cell_holders.reserve(self.lua, upvalues)?;
                        self.collect_fields(table, &path, &Value::Nil, &mut pending)?;
                    }
                }
                Value::Function(function) => {
                    self.collect_function(function, &path, &mut pending)?
                }
                _ => {}
            }
            pending.reverse_since(siblings)?;
        }
        Ok(())
    }

    /// Collects the fields of the new `table` after `from` (`nil`: all), in order: those the
    /// fast path can at once, then the first it cannot, whose value waits in `pending` above
    /// the rest of the fields; the metatable after the last field.
    fn collect_fields(
        &mut self,
        table: &Table,
        path: &Path,
        from: &Value,
        pending: &mut PendingValues,
    ) -> Result<()> {
        match self.collect_function_fields(table, path, from)? {
            Some(key) => {
                let field: Value = table.raw_get(&key)?;
                pending.push(&key, path.clone())?;
                pending.push(&field, path.field(&key))?;
                pending.push_fields_after(table, key, path.clone())?;
            }
            None => self.push_metatable(table, path, pending)?,
        }
        Ok(())
    }

    /// Pushes every field of the new `table` on `pending`, in order, then its metatable.
    fn push_every_field(
        &self,
        table: &Table,
        path: &Path,
        pending: &mut PendingValues,
    ) -> Result<()> {
        for pair in table.pairs::<Value, Value>() {
            let (key, field) = pair?;
            let field_path = path.field(&key);
            pending.push(&key, path.clone())?;
            pending.push(&field, field_path)?;
        }
        self.push_metatable(table, path, pending)
    }

    fn push_metatable(
        &self,
        table: &Table,
        path: &Path,
        pending: &mut PendingValues,
    ) -> Result<()> {
        if let Some(metatable) = crate::raw::metatable(self.lua, table)? {
            pending.push(&Value::Table(metatable), path.metatable())?;
        }
        Ok(())
    }

    /// Collects a function the new versions reach (at `path`), and pushes what it reaches.
    fn collect_function(
        &mut self,
        function: &Function,
        path: &Path,
        pending: &mut PendingValues,
    ) -> Result<()> {
        let identity = function.to_pointer() as usize;
        if self.new_functions.contains(identity) {
            return Ok(());
        }
        let facts = self.facts(function)?.detach()?;
        if !facts.from_sources {
            // Another file's closure, maybe made by the new top level (a class library's
            // constructor): the tables it captures are collected so they can pair with the
            // live closure's, but it is not the batch's function.
            self.foreign_closures.grow()?;
            if self
                .foreign_closures
                .insert(identity, function.clone())
                .is_none()
            {
                for upvalue in &facts.upvalues {
                    let value = self.facts.cell_value(upvalue.cell);
                    if matches!(value, Value::Table(_)) {
                        pending.push(&value, path.upvalue(&upvalue.name))?;
                    }
                }
            }
            return Ok(());
        }
        self.new_functions.insert(identity, path.clone())?;
        self.cell_holders.reserve(self.lua, facts.upvalues.len())?;
        for (index, upvalue) in facts.numbered_upvalues() {
            self.new_cells.grow()?;
            let cell = match self.new_cells.entry(upvalue.cell) {
                // A shared cell: its value was collected with its first holder.
                Entry::Occupied(cell) => cell.into_mut(),
                Entry::Vacant(cell) => {
                    let cell_path = path.upvalue(&upvalue.name);
                    let value = self.facts.cell_value(upvalue.cell);
                    if matches!(value, Value::Table(_) | Value::Function(_)) {
                        pending.push(&value, cell_path.clone())?;
                    }
                    cell.insert(NewCell {
                        name: upvalue.name.clone(),
                        path: cell_path,
                        value,
                        holders: Vec::new(),
                        policy: self.policy,
                    })
                }
            };
            cell.holders.grow()?;
            cell.holders
                .push((self.cell_holders.push(function)?, index));
        }
        // Lua 5.1 functions carry their own environment (the staging table, or the table
        // `module()` made): point it at the live counterpart once all is paired.
        #[cfg(any(feature = "lua51", feature = "luajit"))]
        if let Some(environment) = crate::raw::environment(self.lua, function)? {
            pending.push(&Value::Table(environment.clone()), path.clone())?;
            self.environments.add(self.lua, function, environment)?;
        }
        Ok(())
    }

    /// The environment writes [`Planner::collect`] gathered, one for each environment.
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    pub(super) fn plan_environments(&mut self) -> Result<()> {
        let groups = std::mem::take(&mut self.environments.groups);
        self.writes.grow_by(groups.len())?;
        for (environment, functions) in groups {
            self.writes.push(Write::Environment {
                functions: functions.table().clone(),
                environment,
            });
        }
        Ok(())
    }

    /// New tables that were not merged into a live one go live as they are; their fields and
    /// metatables must refer to the live tables and new functions, not to discarded new tables.
    pub(super) fn remap_new_tables(&mut self) -> Result<()> {
        // The new tables are read one at a time (there may be more than mlua can hold handles
        // to); the few writes they need are gathered first.
        let mut writes = Vec::new();
        for table in self.new_tables.tables() {
            let table = table?;
            if self.table_pairs.contains(&table)? {
                continue;
            }
            for pair in table.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let live_key = self.resolve(&key)?;
                if live_key != key {
                    writes.try_push(Write::Field {
                        table: table.clone(),
                        key: key.clone(),
                        value: Value::Nil,
                    })?;
                    writes.try_push(Write::Field {
                        table: table.clone(),
                        key: live_key,
                        value,
                    })?;
                } else if self.resolve(&value)? != value {
                    writes.try_push(Write::Field {
                        table: table.clone(),
                        key,
                        value,
                    })?;
                }
            }
            if let Some(metatable) = crate::raw::metatable(self.lua, &table)? {
                if self.table_pairs.contains(&metatable)? {
                    writes.try_push(Write::Metatable {
                        table: table.clone(),
                        metatable: Some(metatable),
                    })?;
                }
            }
        }
        self.writes.grow_by(writes.len())?;
        self.writes.extend(writes);
        self.remap_data_tables()?;
        let closures = fallible::collect(self.foreign_closures.values().cloned())?;
        for closure in closures {
            let facts = self.facts(&closure)?.detach()?;
            for (index, upvalue) in facts.numbered_upvalues() {
                let value = self.facts.cell_value(upvalue.cell);
                if self.resolve(&value)? != value {
                    self.writes.try_push(Write::Upvalue {
                        function: closure.clone(),
                        index,
                        value,
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// The new functions by the environment they have (Lua 5.1 and LuaJIT): a module's functions
/// share one, and each group becomes one write, its functions waiting in a Lua list rather
/// than as an mlua handle each.
#[cfg(any(feature = "lua51", feature = "luajit"))]
#[derive(Default)]
pub(super) struct Environments {
    /// Environment identity → its index in `groups`.
    at: rustc_hash::FxHashMap<usize, usize>,
    groups: Vec<(Table, super::lua_list::LuaList)>,
    /// The group a function was last added to: the one the fast path fills
    /// (`collect_fields.rs`).
    pub(super) last: Option<usize>,
}

#[cfg(any(feature = "lua51", feature = "luajit"))]
impl Environments {
    fn add(&mut self, lua: &mlua::Lua, function: &Function, environment: Table) -> Result<()> {
        let identity = environment.to_pointer() as usize;
        let at = match self.at.get(&identity) {
            Some(&at) => at,
            None => {
                self.groups.grow()?;
                self.at.grow()?;
                self.groups
                    .push((environment, super::lua_list::LuaList::new(lua, 0)?));
                self.at.insert(identity, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        self.last = Some(at);
        let functions = &mut self.groups[at].1;
        functions.reserve(lua, 1)?;
        functions.push(function)?;
        Ok(())
    }

    /// The last group's environment identity and list.
    pub(super) fn last_group(&self) -> Option<(usize, &super::lua_list::LuaList)> {
        let (environment, functions) = &self.groups[self.last?];
        Some((environment.to_pointer() as usize, functions))
    }

    /// The last group's list.
    pub(super) fn last_group_mut(&mut self) -> Option<&mut super::lua_list::LuaList> {
        Some(&mut self.groups[self.last?].1)
    }
}
