//! Phase 2: pairing new values with live ones by path: modules, tables and what the new top
//! levels wrote into live tables; each table's fields are merged in `fields.rs`.

use mlua::{Function, Table, Value};

use super::{Path, Planner, Task};
use crate::apply::Write;
use crate::fallible::TryPush;
use crate::load::StagedModule;
use crate::Result;

impl Planner<'_> {
    /// `globals`: what the top level wrote into `_G` that matters ([`super::globals::sift`]).
    pub(super) fn pair_module(
        &mut self,
        module: &StagedModule,
        globals: &Table,
        base: Option<&Table>,
    ) -> Result<()> {
        let base_module = base.and_then(|b| b.raw_get::<Option<Table>>("module").ok().flatten());
        let base_globals = base.and_then(|b| b.raw_get::<Option<Table>>("globals").ok().flatten());
        let loaded = crate::modules::loaded_table(self.lua)?;
        match (&module.old, &module.new) {
            (Value::Table(old), Value::Table(new)) if old != new => {
                self.pair_tables(old, new, &Path::root(&module.name), base_module)?;
            }
            (Value::Function(old), Value::Function(new)) if old != new => {
                if self.owned(old)? && self.is_new_function(new) {
                    self.pair_functions(old, new, &Path::root(&module.name))?;
                }
                self.write_field(&loaded, module.name.as_str(), module.new.clone())?;
            }
            (Value::Nil, _) => {
                self.write_field(&loaded, module.name.as_str(), module.new.clone())?;
            }
            _ => {}
        }
        let live_globals = self.globals.clone();
        self.merge_written(&live_globals, globals, &Path::root(""), base_globals)?;
        for written in &module.extended {
            self.merge_written(
                &written.live,
                &written.fields,
                &Path::root(&written.name),
                None,
            )?;
        }
        self.drain()
    }

    /// Merges what a new top level wrote into a live table it did not create (`_G`, a host
    /// table): the fields it set, and the metatable if it replaced it.
    fn merge_written(
        &mut self,
        live: &Table,
        written: &Table,
        path: &Path,
        base: Option<Table>,
    ) -> Result<()> {
        self.merge_fields(live, written, path, base.as_ref())?;
        self.merge_metatable(live, written, path)
    }

    /// Pairs the metatable of `new` with `live`'s, or installs it where `live` has none. Only
    /// a new table's metatable has anything to merge (most have none).
    fn merge_metatable(&mut self, live: &Table, new: &Table, path: &Path) -> Result<()> {
        let Some(new_meta) = crate::raw::metatable(self.lua, new)? else {
            return Ok(());
        };
        match crate::raw::metatable(self.lua, live)? {
            Some(live_meta) => self.pair_values(
                &Value::Table(live_meta),
                &Value::Table(new_meta),
                &path.metatable(),
            )?,
            None => self.writes.try_push(Write::Metatable {
                table: live.clone(),
                metatable: Some(new_meta),
            })?,
        }
        Ok(())
    }

    /// Does the pairing work left pending, and whatever it leads to, until none is left.
    pub(super) fn drain(&mut self) -> Result<()> {
        while let Some(task) = self.tasks.pop()? {
            match task {
                Task::MergeTables {
                    live,
                    new,
                    path,
                    base,
                } if self.data.contains(&new)? => {
                    self.merge_data_tables(&live, &new, &path, base.as_ref())?
                }
                Task::MergeTables {
                    live,
                    new,
                    path,
                    base,
                } => self.merge_tables(&live, &new, &path, base.as_ref())?,
                Task::PairUpvalues { old, new, path } => self.pair_upvalues(&old, &new, &path)?,
            }
        }
        Ok(())
    }

    fn write_field(&mut self, table: &Table, key: impl mlua::IntoLua, value: Value) -> Result<()> {
        self.writes.try_push(Write::Field {
            table: table.clone(),
            key: key.into_lua(self.lua)?,
            value,
        })?;
        Ok(())
    }

    /// Pairs a new table with the live one at its path; the merge itself is a [`Task`].
    pub(super) fn pair_tables(
        &mut self,
        live: &Table,
        new: &Table,
        path: &Path,
        base: Option<Table>,
    ) -> Result<()> {
        if !self.table_pairs.insert(new, live)? {
            return Ok(());
        }

        self.report.tables_merged += 1;
        self.tasks.push(Task::MergeTables {
            live: live.clone(),
            new: new.clone(),
            path: path.clone(),
            base,
        })?;
        Ok(())
    }

    /// True if assigning a missing field of `table` calls a `__newindex` metamethod.
    pub(super) fn has_newindex(&self, table: &Table) -> Result<bool> {
        Ok(match crate::raw::metatable(self.lua, table)? {
            Some(metatable) => metatable.raw_get::<Value>("__newindex")? != Value::Nil,
            None => false,
        })
    }

    /// True if `new` was paired with a live table other than `live`.
    pub(super) fn paired_elsewhere(&self, new: &Table, live: &Table) -> Result<bool> {
        Ok(self
            .table_pairs
            .get(new)?
            .is_some_and(|other| &other != live))
    }

    fn merge_tables(
        &mut self,
        live: &Table,
        new: &Table,
        path: &Path,
        base: Option<&Table>,
    ) -> Result<()> {
        // The new table's functions were read when it was collected.
        let live_fields = self.facts.read_fields(self.lua, live)?;
        let kept = self.merge_fields(live, new, path, base)?;
        if kept == live_fields.function_fields {
            // Every function of the live table is at a key the new table sets.
            return self.merge_metatable(live, new, path);
        }
        // The live table's functions the new one lacks, found in one call: a module of ten
        // thousand functions is not ten thousand trips through mlua.
        let deleted = self.data.deleted_functions(live, new)?;
        let mut at = 1;
        while let Some(key) = deleted.raw_get::<Option<Value>>(at)? {
            let function: Function = deleted.raw_get(at + 1)?;
            self.keep_if_deleted(&function, &path.field(&key))?;
            at += 2;
        }
        self.merge_metatable(live, new, path)
    }

    /// `function`, an old function at `path` that the new version no longer has: if it is the
    /// batch's, it stays, and keeps its old code.
    pub(super) fn keep_if_deleted(&mut self, function: &Function, path: &Path) -> Result<()> {
        if self.owned(function)? {
            self.remember_old_cells(function)?;
            self.report
                .functions_kept_deleted
                .try_push(path.to_string())?;
            self.kept_deleted.try_push(function.clone())?;
        }
        Ok(())
    }
}
