//! Pairing old and new values by path, and the [`Plan`]: every write a reload will make.
//!
//! Building a plan reads the live program and writes nothing to it. The pairing rules are the
//! design's "Semantics of one reload":
//!
//! - a table of the new version is paired with the live table at the same *path* (field names,
//!   metatables, upvalue names from a paired function) and the live table keeps its identity;
//! - a function of the new version is paired with the old function at the same path, and each
//!   of its upvalue cells with the old function's upvalue of the same name; cells are grouped
//!   by `lua_upvalueid`, so a function added in this version that shares a paired cell joins it
//!   too, and a cell no paired function carries joins the old module's only local of that name;
//! - data fields merge by the [`DataPolicy`]; `nil` in the new file never erases anything;
//! - tables and functions that belong to someone else (the standard library, other modules,
//!   `_G` itself) are never paired, merged into or rewritten.

use std::collections::{HashMap, HashSet};

use mlua::{Function, Lua, Table, Value};
use rustc_hash::FxHashSet;

use std::rc::Rc;

use crate::apply::Write;
use crate::load::{Staged, StagedModule};
use crate::raw::FunctionFacts;
use crate::report::{Conflict, ModuleFile};
use crate::{baseline, DataPolicy, Report, Result};

/// Every write of one reload, planned and validated, nothing applied.
pub struct Plan {
    /// What applying the plan will do.
    pub report: Report,
    pub(crate) writes: Vec<Write>,
    /// Baselines to record once the plan is applied, module by module.
    pub(crate) baselines: Vec<(String, Value)>,
    /// Every old function of the batch and its new version: what the switching engine
    /// replaces everywhere else.
    pub(crate) replaced: Vec<(Function, Function)>,
    /// Identities of every function the planner met, old or new.
    pub(crate) known: FxHashSet<usize>,
    /// Chunk names of the batch's files.
    pub(crate) sources: Vec<String>,
}

impl Plan {
    /// Pairs every staged module with its live version and plans the merge.
    pub(crate) fn build(
        lua: &Lua,
        staged: &Staged,
        policy_of: &dyn Fn(&str) -> DataPolicy,
    ) -> Result<Plan> {
        let started = std::time::Instant::now();
        let mut planner = Planner::new(lua, staged)?;
        for module in &staged.modules {
            planner.collect_module(module)?;
        }
        let mut baselines = Vec::new();
        for module in &staged.modules {
            planner.policy = policy_of(&module.name);
            let base = baseline::get(lua, &module.name)?;
            if planner.policy == DataPolicy::Merge3 && base.is_none() {
                planner.report.warnings.push(format!(
                    "merge3: no load-time values recorded for '{}' (loaded before hotlua \
                     started); live values kept",
                    module.name
                ));
            }
            planner.pair_module(module, base.as_ref())?;
            baselines.push((module.name.clone(), planner.baseline_of(module)?));
        }
        planner.join_cells()?;
        planner.remap_new_tables()?;
        let mut plan = planner.finish();
        plan.baselines = baselines;
        plan.report.timings.plan_ms = started.elapsed().as_secs_f64() * 1e3;
        plan.report.timings.load_ms = staged.load_ms;
        plan.report.timings.stage_ms = staged.stage_ms;
        Ok(plan)
    }
}

/// An upvalue cell of an old function, by which new cells are joined.
#[derive(Clone)]
struct OldCell {
    function: Function,
    index: i32,
    value: Value,
}

/// An upvalue cell of the new version and every new function that shares it.
struct NewCell {
    name: String,
    path: String,
    value: Value,
    holders: Vec<(Function, i32)>,
}

struct Planner<'lua> {
    lua: &'lua Lua,
    policy: DataPolicy,
    /// Chunk names of the batch's files: a Lua function with one of these sources belongs to
    /// the batch.
    sources: Vec<String>,
    /// Tables never paired or merged into: `_G`, the registry's modules other than the
    /// batch's (the standard library among them).
    foreign: HashSet<usize>,
    globals: Table,
    /// Every table the new versions created, by identity.
    new_tables: HashMap<usize, Table>,
    /// Every function of the new versions, with the path it was first found at.
    new_functions: HashMap<usize, (Function, String)>,
    new_cells: HashMap<usize, NewCell>,
    /// New table → the live table it merges into.
    table_pairs: HashMap<usize, Table>,
    /// Old function identity → the old function, its new version, and the path they paired at.
    function_pairs: HashMap<usize, (Function, Function, String)>,
    /// Old functions the pairing met (their cells are indexed by name).
    old_functions: HashSet<usize>,
    /// Upvalue name → the distinct old cells of that name.
    old_cells_by_name: HashMap<String, HashMap<usize, OldCell>>,
    /// New cell → the old cell it joins.
    cell_joins: HashMap<usize, OldCell>,
    /// What each function seen is (from the batch's files? its upvalues), by identity.
    facts: HashMap<usize, Rc<FunctionFacts>>,
    writes: Vec<Write>,
    report: Report,
}

impl<'lua> Planner<'lua> {
    fn new(lua: &'lua Lua, staged: &Staged) -> Result<Planner<'lua>> {
        let batch: HashSet<&str> = staged.modules.iter().map(|m| m.name.as_str()).collect();
        let globals = lua.globals();
        let mut foreign = crate::load::foreign_tables(lua, &batch)?;
        foreign.insert(globals.to_pointer() as usize);
        let mut table_pairs = HashMap::new();
        for module in &staged.modules {
            table_pairs.insert(module.globals.to_pointer() as usize, globals.clone());
        }
        Ok(Planner {
            lua,
            policy: DataPolicy::default(),
            sources: staged.modules.iter().map(|m| m.source.clone()).collect(),
            foreign,
            globals,
            new_tables: HashMap::new(),
            new_functions: HashMap::new(),
            new_cells: HashMap::new(),
            table_pairs,
            function_pairs: HashMap::new(),
            old_functions: HashSet::new(),
            old_cells_by_name: HashMap::new(),
            cell_joins: HashMap::new(),
            facts: HashMap::new(),
            writes: Vec::new(),
            report: Report {
                modules: staged
                    .modules
                    .iter()
                    .map(|m| ModuleFile {
                        name: m.name.clone(),
                        file: m.file.clone(),
                    })
                    .collect(),
                engine: "none",
                ..Report::default()
            },
        })
    }

    fn facts(&mut self, function: &Function) -> Result<Rc<FunctionFacts>> {
        let identity = function.to_pointer() as usize;
        if let Some(facts) = self.facts.get(&identity) {
            return Ok(facts.clone());
        }
        let facts = Rc::new(crate::raw::inspect(self.lua, function, &self.sources)?);
        self.facts.insert(identity, facts.clone());
        Ok(facts)
    }

    /// True for a Lua function compiled from one of the batch's files.
    fn owned(&mut self, function: &Function) -> Result<bool> {
        Ok(self.facts(function)?.from_sources)
    }

    fn is_new_function(&self, function: &Function) -> bool {
        self.new_functions
            .contains_key(&(function.to_pointer() as usize))
    }

    fn is_new_table(&self, table: &Table) -> bool {
        self.new_tables.contains_key(&(table.to_pointer() as usize))
    }

    fn is_foreign(&self, table: &Table) -> bool {
        self.foreign.contains(&(table.to_pointer() as usize))
    }

    // ---- 1. collect everything the new versions created ----

    fn collect_module(&mut self, module: &StagedModule) -> Result<()> {
        // The staging table stands for `_G`: its fields are new, its metatable is hotlua's.
        for pair in module.globals.pairs::<Value, Value>() {
            let (key, value) = pair?;
            self.collect(&key, &module.name)?;
            let path = key_path("", &key);
            self.collect(&value, &path)?;
        }
        self.collect(&module.new, &module.name)
    }

    fn collect(&mut self, value: &Value, path: &str) -> Result<()> {
        match value {
            Value::Table(table) => {
                let identity = table.to_pointer() as usize;
                if self.is_foreign(table)
                    || self.new_tables.contains_key(&identity)
                    || self.table_pairs.contains_key(&identity)
                {
                    return Ok(());
                }
                self.new_tables.insert(identity, table.clone());
                for pair in table.pairs::<Value, Value>() {
                    let (key, field) = pair?;
                    self.collect(&key, path)?;
                    self.collect(&field, &key_path(path, &key))?;
                }
                if let Some(metatable) = table.metatable() {
                    self.collect(&Value::Table(metatable), &format!("{path}#mt"))?;
                }
            }
            Value::Function(function) => {
                let identity = function.to_pointer() as usize;
                if self.new_functions.contains_key(&identity) || !self.owned(function)? {
                    return Ok(());
                }
                self.new_functions
                    .insert(identity, (function.clone(), path.to_owned()));
                let facts = self.facts(function)?;
                for upvalue in &facts.upvalues {
                    let cell_path = || format!("{path}@{}", upvalue.name);
                    let cell = self
                        .new_cells
                        .entry(upvalue.cell)
                        .or_insert_with(|| NewCell {
                            name: upvalue.name.clone(),
                            path: cell_path(),
                            value: upvalue.value.clone(),
                            holders: Vec::new(),
                        });
                    cell.holders.push((function.clone(), upvalue.index));
                    if matches!(upvalue.value, Value::Table(_) | Value::Function(_)) {
                        self.collect(&upvalue.value, &cell_path())?;
                    }
                }
                // Lua 5.1 functions carry their own environment (the staging table, or the
                // table `module()` made): point it at the live counterpart once all is paired.
                #[cfg(any(feature = "lua51", feature = "luajit"))]
                if let Some(environment) = function.environment() {
                    self.collect(&Value::Table(environment.clone()), path)?;
                    self.writes.push(Write::Environment {
                        function: function.clone(),
                        environment,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ---- 2. pair by path and plan the merge ----

    fn pair_module(&mut self, module: &StagedModule, base: Option<&Table>) -> Result<()> {
        let base_module = base.and_then(|b| b.raw_get::<Option<Table>>("module").ok().flatten());
        let base_globals = base.and_then(|b| b.raw_get::<Option<Table>>("globals").ok().flatten());
        let loaded = crate::load::loaded_table(self.lua)?;
        match (&module.old, &module.new) {
            (Value::Table(old), Value::Table(new)) if old != new => {
                self.pair_tables(old, new, &module.name, base_module.as_ref())?;
            }
            (Value::Function(old), Value::Function(new)) if old != new => {
                if self.owned(old)? && self.is_new_function(new) {
                    self.pair_functions(old, new, &module.name)?;
                }
                self.write_field(&loaded, module.name.as_str(), module.new.clone())?;
            }
            (Value::Nil, _) => {
                self.write_field(&loaded, module.name.as_str(), module.new.clone())?;
            }
            _ => {}
        }
        let globals = self.globals.clone();
        self.merge_fields(&globals, &module.globals, "", base_globals.as_ref())
    }

    fn write_field(&mut self, table: &Table, key: impl mlua::IntoLua, value: Value) -> Result<()> {
        self.writes.push(Write::Field {
            table: table.clone(),
            key: key.into_lua(self.lua)?,
            value,
        });
        Ok(())
    }

    fn pair_tables(
        &mut self,
        old: &Table,
        new: &Table,
        path: &str,
        base: Option<&Table>,
    ) -> Result<()> {
        let identity = new.to_pointer() as usize;
        if self.table_pairs.contains_key(&identity) {
            return Ok(());
        }
        self.table_pairs.insert(identity, old.clone());
        self.report.tables_merged += 1;
        self.merge_fields(old, new, path, base)?;

        for pair in old.pairs::<Value, Value>() {
            let (key, value) = pair?;
            if let Value::Function(function) = &value {
                if self.owned(function)? && new.raw_get::<Value>(&key)? == Value::Nil {
                    let deleted_path = key_path(path, &key);
                    self.remember_old_cells(function)?;
                    self.report.functions_kept_deleted.push(deleted_path);
                }
            }
        }

        match (old.metatable(), new.metatable()) {
            (Some(old_meta), Some(new_meta)) => {
                self.pair_values(
                    &Value::Table(old_meta),
                    &Value::Table(new_meta),
                    &format!("{path}#mt"),
                    None,
                )?;
            }
            (None, Some(new_meta)) => self.writes.push(Write::Metatable {
                table: old.clone(),
                metatable: Some(new_meta),
            }),
            _ => {}
        }
        Ok(())
    }

    /// Merges every field the new table sets into the live table.
    fn merge_fields(
        &mut self,
        old: &Table,
        new: &Table,
        path: &str,
        base: Option<&Table>,
    ) -> Result<()> {
        for pair in new.pairs::<Value, Value>() {
            let (key, new_value) = pair?;
            let field_path = key_path(path, &key);
            if matches!(key, Value::Table(_) | Value::Function(_)) {
                // Not a path: add the entry if the live table lacks it, never merge.
                let live_key = self.resolve(&key);
                if old.raw_get::<Value>(&live_key)? == Value::Nil {
                    self.writes.push(Write::Field {
                        table: old.clone(),
                        key,
                        value: new_value,
                    });
                }
                continue;
            }
            let live: Value = old.raw_get(&key)?;
            let base_value: Option<Value> = match base {
                Some(base) => Some(base.raw_get(&key)?),
                None => None,
            };
            self.merge_field(old, key, live, new_value, base_value, &field_path)?;
        }
        Ok(())
    }

    fn merge_field(
        &mut self,
        table: &Table,
        key: Value,
        live: Value,
        new: Value,
        base: Option<Value>,
        path: &str,
    ) -> Result<()> {
        if live == new {
            return Ok(());
        }
        let replace = match (&live, &new) {
            (Value::Nil, _) => {
                self.report.fields_added += 1;
                true
            }
            (Value::Table(live_table), Value::Table(new_table))
                if self.is_new_table(new_table) && !self.is_foreign(live_table) =>
            {
                let base_table = match &base {
                    Some(Value::Table(base_table)) => Some(base_table.clone()),
                    _ => None,
                };
                self.pair_tables(live_table, new_table, path, base_table.as_ref())?;
                false
            }
            (Value::Function(live_fn), Value::Function(new_fn)) => {
                let unchanged_since_load = base.as_ref() == Some(&live);
                if self.owned(live_fn)? && self.is_new_function(new_fn) {
                    self.pair_functions(live_fn, new_fn, path)?;
                    true
                } else {
                    self.takes_new_code(live_fn, new_fn)? || unchanged_since_load
                }
            }
            _ if std::mem::discriminant(&live) != std::mem::discriminant(&new)
                && !both_numbers(&live, &new) =>
            {
                true
            }
            _ => self.merge_data(&live, &new, base, path),
        };
        if replace {
            self.writes.push(Write::Field {
                table: table.clone(),
                key,
                value: new,
            });
        }
        Ok(())
    }

    /// A live function that is not the module's own is runtime state (a callback the program
    /// installed) unless the new value is also someone else's function: then the file just
    /// points the field at different code.
    fn takes_new_code(&mut self, live: &Function, new: &Function) -> Result<bool> {
        Ok(self.owned(live)? || !self.is_new_function(new))
    }

    /// Same-type data: the policy decides.
    fn merge_data(&mut self, live: &Value, new: &Value, base: Option<Value>, path: &str) -> bool {
        match self.policy {
            DataPolicy::Keep => false,
            DataPolicy::Overwrite => true,
            DataPolicy::Merge3 => match base {
                Some(base) if &base == live => true,
                Some(base) => {
                    if &base != new {
                        self.report.conflicts.push(Conflict {
                            path: path.to_owned(),
                            live: display(live),
                            file: display(new),
                        });
                    }
                    false
                }
                None => false,
            },
        }
    }

    fn pair_values(
        &mut self,
        old: &Value,
        new: &Value,
        path: &str,
        base: Option<&Table>,
    ) -> Result<()> {
        match (old, new) {
            (Value::Table(old), Value::Table(new))
                if old != new && self.is_new_table(new) && !self.is_foreign(old) =>
            {
                self.pair_tables(old, new, path, base)
            }
            (Value::Function(old), Value::Function(new))
                if old != new && self.is_new_function(new) =>
            {
                if self.owned(old)? {
                    self.pair_functions(old, new, path)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn pair_functions(&mut self, old: &Function, new: &Function, path: &str) -> Result<()> {
        let identity = old.to_pointer() as usize;
        if self.function_pairs.contains_key(&identity) {
            return Ok(());
        }
        self.function_pairs
            .insert(identity, (old.clone(), new.clone(), path.to_owned()));
        self.remember_old_cells(old)?;
        let old_facts = self.facts(old)?;
        let new_facts = self.facts(new)?;
        for upvalue in &new_facts.upvalues {
            let Some(old_upvalue) = old_facts.upvalues.iter().find(|u| u.name == upvalue.name)
            else {
                continue;
            };
            if self.cell_joins.contains_key(&upvalue.cell) {
                continue;
            }
            self.cell_joins.insert(
                upvalue.cell,
                OldCell {
                    function: old.clone(),
                    index: old_upvalue.index,
                    value: old_upvalue.value.clone(),
                },
            );
            self.pair_values(
                &old_upvalue.value,
                &upvalue.value,
                &format!("{path}@{}", upvalue.name),
                None,
            )?;
        }
        Ok(())
    }

    /// Indexes the upvalue cells of an old function by name, for cells of the new version
    /// that no paired function carries.
    fn remember_old_cells(&mut self, old: &Function) -> Result<()> {
        if !self.old_functions.insert(old.to_pointer() as usize) {
            return Ok(());
        }
        let facts = self.facts(old)?;
        for upvalue in &facts.upvalues {
            self.old_cells_by_name
                .entry(upvalue.name.clone())
                .or_default()
                .entry(upvalue.cell)
                .or_insert_with(|| OldCell {
                    function: old.clone(),
                    index: upvalue.index,
                    value: upvalue.value.clone(),
                });
        }
        Ok(())
    }

    // ---- 3. join cells ----

    fn join_cells(&mut self) -> Result<()> {
        // Cells no paired function carries join the old module's only local of their name;
        // pairing their values may pair more functions, so repeat until nothing changes.
        loop {
            let mut unpaired: Vec<(usize, String, String, Value)> = self
                .new_cells
                .iter()
                .filter(|(cell, new)| !self.cell_joins.contains_key(cell) && new.name != "_ENV")
                .map(|(cell, new)| (*cell, new.name.clone(), new.path.clone(), new.value.clone()))
                .collect();
            unpaired.sort_by(|a, b| a.2.cmp(&b.2));
            let mut joined_any = false;
            for (cell, name, path, value) in unpaired {
                let Some(candidates) = self.old_cells_by_name.get(&name) else {
                    continue;
                };
                if candidates.len() != 1 {
                    continue;
                }
                let old = candidates.values().next().cloned().expect("one candidate");
                self.cell_joins.insert(cell, old.clone());
                self.pair_values(&old.value, &value, &path, None)?;
                joined_any = true;
            }
            if !joined_any {
                break;
            }
        }

        let new_cells = std::mem::take(&mut self.new_cells);
        let mut cells: Vec<(&usize, &NewCell)> = new_cells.iter().collect();
        cells.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        let mut writes = Vec::new();
        for (cell, new) in cells {
            match self.cell_joins.get(cell).cloned() {
                Some(old) => {
                    // The value first: where cells can only be copied, the copy must be the
                    // final value.
                    if let Some(value) = self.joined_value(&old.value, &new.value, &new.path)? {
                        writes.push(Write::Upvalue {
                            function: old.function.clone(),
                            index: old.index,
                            value,
                        });
                    }
                    writes.push(Write::Join {
                        target: old.function.clone(),
                        target_index: old.index,
                        holders: new.holders.clone(),
                    });
                    if new.name != "_ENV" {
                        self.report.locals_joined += 1;
                        if !crate::raw::CELLS_CAN_BE_JOINED {
                            self.report.locals_copied.push(new.path.clone());
                        }
                    }
                }
                None => {
                    let resolved = self.resolve(&new.value);
                    if resolved != new.value {
                        let (function, index) = &new.holders[0];
                        writes.push(Write::Upvalue {
                            function: function.clone(),
                            index: *index,
                            value: new.value.clone(),
                        });
                    }
                    if new.name != "_ENV" {
                        self.report.locals_new.push(new.path.clone());
                    }
                }
            }
        }
        self.writes.extend(writes);
        Ok(())
    }

    /// The value a joined cell must hold after the reload, if not its live one.
    fn joined_value(&mut self, live: &Value, new: &Value, path: &str) -> Result<Option<Value>> {
        let resolved = self.resolve(new);
        if &resolved == live {
            return Ok(None);
        }
        Ok(match (live, new) {
            (Value::Function(live_fn), Value::Function(new_fn)) => {
                let paired = self
                    .function_pairs
                    .contains_key(&(live_fn.to_pointer() as usize));
                (paired || self.takes_new_code(live_fn, new_fn)?).then(|| new.clone())
            }
            (Value::Table(_), Value::Table(_)) => None,
            _ if std::mem::discriminant(live) != std::mem::discriminant(new)
                && !both_numbers(live, new) =>
            {
                self.report.locals_type_changed.push(path.to_owned());
                Some(new.clone())
            }
            _ => None,
        })
    }

    // ---- 4. point the new version's own tables at live objects ----

    /// New tables that were not merged into a live one go live as they are; their fields and
    /// metatables must refer to the live tables and new functions, not to discarded new tables.
    fn remap_new_tables(&mut self) -> Result<()> {
        let unpaired: Vec<Table> = self
            .new_tables
            .iter()
            .filter(|(identity, _)| !self.table_pairs.contains_key(identity))
            .map(|(_, table)| table.clone())
            .collect();
        for table in unpaired {
            for pair in table.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let live_key = self.resolve(&key);
                if live_key != key {
                    self.writes.push(Write::Field {
                        table: table.clone(),
                        key: key.clone(),
                        value: Value::Nil,
                    });
                    self.writes.push(Write::Field {
                        table: table.clone(),
                        key: live_key,
                        value,
                    });
                } else if self.resolve(&value) != value {
                    self.writes.push(Write::Field {
                        table: table.clone(),
                        key,
                        value,
                    });
                }
            }
            if let Some(metatable) = table.metatable() {
                if self.resolve(&Value::Table(metatable.clone())) != Value::Table(metatable.clone())
                {
                    self.writes.push(Write::Metatable {
                        table: table.clone(),
                        metatable: Some(metatable),
                    });
                }
            }
        }
        Ok(())
    }

    /// The live counterpart of a value of the new version: the live table a new table merges
    /// into, the new version of an old function (a new top level may capture old functions of
    /// another module of the batch), or the value itself.
    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::Table(table) => self
                .table_pairs
                .get(&(table.to_pointer() as usize))
                .map_or_else(|| value.clone(), |live| Value::Table(live.clone())),
            Value::Function(function) => self
                .function_pairs
                .get(&(function.to_pointer() as usize))
                .map_or_else(|| value.clone(), |(_, new, _)| Value::Function(new.clone())),
            _ => value.clone(),
        }
    }

    /// The module's new baseline: a copy of what its file just produced.
    fn baseline_of(&self, module: &StagedModule) -> Result<Value> {
        let is_foreign = |table: &Table| self.is_foreign(table);
        let baseline = self.lua.create_table()?;
        baseline.raw_set(
            "module",
            baseline::snapshot(self.lua, &module.new, &is_foreign)?,
        )?;
        let globals = self.lua.create_table()?;
        for pair in module.globals.pairs::<Value, Value>() {
            let (key, value) = pair?;
            globals.raw_set(key, baseline::snapshot(self.lua, &value, &is_foreign)?)?;
        }
        baseline.raw_set("globals", globals)?;
        Ok(Value::Table(baseline))
    }

    // ---- 5. the plan ----

    fn finish(mut self) -> Plan {
        // Values were planned as the new version holds them; now that every pairing is known,
        // point them at their live counterparts.
        let writes: Vec<Write> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|write| match write {
                Write::Field { table, key, value } => Write::Field {
                    table,
                    key: self.resolve(&key),
                    value: self.resolve(&value),
                },
                Write::Upvalue {
                    function,
                    index,
                    value,
                } => Write::Upvalue {
                    function,
                    index,
                    value: self.resolve(&value),
                },
                Write::Metatable { table, metatable } => Write::Metatable {
                    table,
                    metatable: metatable.map(|m| match self.resolve(&Value::Table(m.clone())) {
                        Value::Table(live) => live,
                        _ => m,
                    }),
                },
                #[cfg(any(feature = "lua51", feature = "luajit"))]
                Write::Environment {
                    function,
                    environment,
                } => Write::Environment {
                    function,
                    environment: match self.resolve(&Value::Table(environment.clone())) {
                        Value::Table(live) => live,
                        _ => environment,
                    },
                },
                join @ Write::Join { .. } => join,
            })
            .collect();

        let mut replaced: Vec<String> = self
            .function_pairs
            .values()
            .map(|(_, _, path)| path.clone())
            .collect();
        replaced.sort();
        let paired_new: HashSet<usize> = self
            .function_pairs
            .values()
            .map(|(_, new, _)| new.to_pointer() as usize)
            .collect();
        let mut added: Vec<String> = self
            .new_functions
            .iter()
            .filter(|(identity, _)| !paired_new.contains(identity))
            .map(|(_, (_, path))| path.clone())
            .collect();
        added.sort();
        self.report.functions_replaced = replaced;
        let mut known: FxHashSet<usize> = self.new_functions.keys().copied().collect();
        known.extend(self.old_functions.iter().copied());
        let replaced_functions = self
            .function_pairs
            .into_values()
            .map(|(old, new, _)| (old, new))
            .collect();
        let sources = self.sources;
        self.report.functions_added = added;
        self.report.functions_kept_deleted.sort();
        self.report.locals_new.sort();
        Plan {
            report: self.report,
            writes,
            baselines: Vec::new(),
            replaced: replaced_functions,
            known,
            sources,
        }
    }
}

/// `path.key` for a string key that is a name, `path[key]` otherwise.
fn key_path(path: &str, key: &Value) -> String {
    let dot = if path.is_empty() { "" } else { "." };
    match key {
        Value::String(s) => {
            let s = s.to_string_lossy();
            let is_name = !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_name {
                format!("{path}{dot}{s}")
            } else {
                format!("{path}[{s:?}]")
            }
        }
        Value::Integer(i) => format!("{path}[{i}]"),
        Value::Number(n) => format!("{path}[{n}]"),
        Value::Boolean(b) => format!("{path}[{b}]"),
        other => format!("{path}[{}]", other.type_name()),
    }
}

fn both_numbers(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (
            Value::Integer(_) | Value::Number(_),
            Value::Integer(_) | Value::Number(_)
        )
    )
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "nil".into(),
        other => other.type_name().to_owned(),
    }
}
