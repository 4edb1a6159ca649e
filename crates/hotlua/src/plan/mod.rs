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
//!
//! One phase a file: [`collect`] finds what the new versions created ([`collect_fields`]: the
//! fast path for a module's functions; [`globals`]: what they wrote into `_G`), [`pair`]
//! pairs it with the live program and [`fields`] merges each table's fields by the rules and
//! the policy ([`function_fields`]: the fast path for a module's functions, sharing
//! [`field_walk`] with collect's; [`functions`] pairs functions and their cells, [`data`] walks data tables),
//! [`cells`] joins upvalue cells ([`declarations`] tells which local names a file declares
//! twice), [`new_baseline`] keeps what each file produced, [`finish`] points every write at
//! live objects. What is known of each function is
//! in [`facts`]; [`indexed`], [`replaced`] and [`lua_list`] hold per-function values without
//! an mlua handle each. Every traversal keeps its pending work in a Lua table or a list on the
//! heap, never on the native stack, so data of any depth and size plans.

mod cells;
mod collect;
mod collect_fields;
mod data;
mod declarations;
mod facts;
mod field_walk;
mod fields;
mod finish;
mod function_fields;
mod functions;
mod globals;
mod indexed;
mod lua_list;
mod new_baseline;
mod pair;
mod path;
mod replaced;
mod tables;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;

use mlua::{Function, Lua, Table, Value};
use rustc_hash::{FxHashMap, FxHashSet};

use self::data::DataTables;
pub(crate) use self::data::DATA_TABLES;
use self::facts::{Facts, FunctionFacts};
pub(crate) use self::globals::SIFT;
use self::indexed::Indexed;
use self::lua_list::LuaList;
use self::path::Path;
pub(crate) use self::replaced::Replaced;
pub(crate) use self::tables::REVERSE;
use self::tables::{TableMap, Tasks};
use crate::apply::Write;
use crate::batch::Staged;
use crate::fallible::{Grow, TryPush};
use crate::report::ModuleFile;
use crate::{baseline, DataPolicy, Report, Result};

/// Every write of one reload, planned and validated, nothing applied.
pub struct Plan {
    /// What applying the plan will do.
    pub report: Report,
    pub(crate) writes: Vec<Write>,
    /// Baselines to record once the plan is applied, module by module.
    pub(crate) baselines: Vec<(String, Value)>,
    /// Fields of the baselines' tables that must hold copies before they are recorded
    /// ([`baseline::replace`]): the tables there go live.
    pub(crate) baseline_copies: baseline::FieldsToCopy,
    /// Every old function of the batch and its new version: what the switching engine
    /// replaces everywhere else.
    pub(crate) replaced: Replaced,
    /// Identities of every function the planner met, old or new (made a set only where the
    /// walk runs: engine `inplace` rarely needs it).
    pub(crate) known: Vec<usize>,
    /// Chunk names of the batch's files.
    pub(crate) sources: Vec<String>,
    /// Old functions the new version no longer defines: they, and the closures they make,
    /// keep their old code (engine `inplace` counts those closures).
    #[cfg_attr(not(hotlua_inplace), allow(dead_code))]
    pub(crate) kept_deleted: Vec<Function>,
}

impl Plan {
    /// Pairs every staged module with its live version and plans the merge.
    pub(crate) fn build(
        lua: &Lua,
        staged: &Staged,
        policy_of: &dyn Fn(&str) -> DataPolicy,
        keep_identity: bool,
    ) -> Result<Plan> {
        let started = std::time::Instant::now();
        let mut planner = Planner::new(lua, staged)?;
        planner.keep_identity = keep_identity;
        // What each top level wrote into `_G` that the merge must look at.
        let mut globals = Vec::new();
        for module in &staged.modules {
            let keep = policy_of(&module.name) == DataPolicy::Keep;
            globals.try_push(globals::sift(lua, &module.globals, keep)?)?;
        }
        for (module, globals) in staged.modules.iter().zip(&globals) {
            planner.policy = policy_of(&module.name);
            planner.collect_module(module, globals)?;
        }
        #[cfg(any(feature = "lua51", feature = "luajit"))]
        planner.plan_environments()?;
        // Room for a pair and a write for each new function: the fast path of the merge
        // (function_fields.rs) writes those lists only where they need not grow.
        planner.make_room_for_functions()?;
        for (module, globals) in staged.modules.iter().zip(&globals) {
            planner.policy = policy_of(&module.name);
            let base = baseline::get(lua, &module.name)?;
            if let Some(locals) = base.as_ref().map(|b| b.raw_get::<Option<Table>>("locals")) {
                planner.local_bases.extend(locals?);
            }
            if planner.policy == DataPolicy::Merge3 && base.is_none() {
                planner.report.warnings.push(format!(
                    "merge3: no load-time values recorded for '{}' (loaded before hotlua \
                     started); live values kept",
                    module.name
                ));
            }
            planner.pair_module(module, globals, base.as_ref())?;
        }
        planner.join_cells(staged)?;
        let mut baselines = Vec::new();
        for (module, globals) in staged.modules.iter().zip(&globals) {
            baselines.try_push((module.name.clone(), planner.baseline_of(module, globals)?))?;
        }
        planner.remap_new_tables()?;
        let mut plan = planner.finish()?;
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
    /// `lua_upvalueid`: the key of the cell's baseline.
    cell: usize,
}

/// An upvalue cell of the new version and every new function that shares it.
struct NewCell {
    name: Rc<str>,
    path: Path,
    value: Value,
    /// `(slot in Planner::cell_holders, upvalue index)` of each function holding it.
    holders: Vec<(usize, i32)>,
    /// The data policy of the module whose functions hold it.
    policy: DataPolicy,
}

/// Pairing work not done yet: pairing registers a pair at once and leaves its contents to
/// this list, so that nesting depth never becomes native stack depth.
enum Task {
    /// Merge the fields and metatable of a new table into its live counterpart.
    MergeTables {
        live: Table,
        new: Table,
        path: Path,
        base: Option<Table>,
    },
    /// Pair the upvalue values of two functions by name (the cells of module functions are
    /// joined separately; this pairs the tables and functions they hold).
    PairUpvalues {
        old: Function,
        new: Function,
        path: Path,
    },
}

struct Planner<'lua> {
    lua: &'lua Lua,
    policy: DataPolicy,
    /// Tables never paired or merged into: `_G`, the registry's modules other than the
    /// batch's (the standard library among them).
    foreign: HashSet<usize>,
    /// The same tables as a Lua set, for the planner's walks in Lua.
    foreign_set: Table,
    /// The batch's live module tables: never taken for something the new versions created.
    live_modules: HashSet<usize>,
    globals: Table,
    /// Every table the new versions created that is not a data table.
    new_tables: TableMap,
    /// The data tables the new versions created, walked in Lua.
    data: DataTables,
    /// Every function of the new versions, with the path it was first found at.
    new_functions: Indexed<Path>,
    /// Where the fast path of merging last found a new function in `new_functions`: it meets
    /// them in the order they were collected.
    new_function_merged: Cell<usize>,
    /// See [`function_fields::LastHandleFree`].
    last_handle_free: function_fields::LastHandleFree,
    new_cells: FxHashMap<usize, NewCell>,
    /// The new functions holding those cells, a slot for each upvalue: a Lua list, not an mlua
    /// handle each.
    cell_holders: LuaList,
    /// New table → the live table it merges into.
    table_pairs: TableMap,
    /// Old function identity → the old function, its new version, and the path they paired at.
    function_pairs: Indexed<(usize, usize, Path)>,
    /// The pairs themselves, in a Lua list: `function_pairs` holds the index of each and the
    /// identity of its new function.
    replaced: Replaced,
    /// New function identity → the index in `replaced` of its pair (`None`: it paired with
    /// several old functions).
    new_to_old: FxHashMap<usize, Option<usize>>,
    /// Writes of new functions into fields of live tables (table, key, function: a `Fields`
    /// list, see [`Write::Fields`]): one for each function of a module, held in Lua rather than
    /// as three mlua handles each.
    function_writes: LuaList,
    /// The engine gives old functions the new code in place (`inplace`): the live program
    /// keeps the old functions and every write that would store a new function stores the
    /// old one it is paired with.
    keep_identity: bool,
    /// Closures of other files that the new versions reach, by identity: the tables they
    /// capture are collected, and pointed at live tables if they go live.
    foreign_closures: FxHashMap<usize, Function>,
    /// Closures of other files whose upvalues were paired with a live closure's, by the new
    /// closure's identity.
    foreign_closure_pairs: FxHashSet<usize>,
    /// Old functions the pairing met (their cells are indexed by name).
    old_functions: FxHashSet<usize>,
    /// Upvalue name → the distinct old cells of that name.
    old_cells_by_name: FxHashMap<Rc<str>, FxHashMap<usize, OldCell>>,
    /// New cell → the old cell it joins.
    cell_joins: FxHashMap<usize, OldCell>,
    /// (old cell, new cell) pairs of paired functions whose values are paired already.
    cell_values_paired: FxHashSet<(usize, usize)>,
    /// The new functions' environments, to point at the live tables (Lua 5.1 and LuaJIT).
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    environments: collect::Environments,
    /// What each function seen is (from the batch's files? its upvalues), by identity; a
    /// Lua function with one of the batch's chunk names as its source belongs to the batch.
    facts: Facts,
    /// Local names a file of the batch declares more than once at module level: never joined
    /// by name alone.
    /// Read from the files' text only when a cell has no paired holder to join by.
    repeated_locals: Option<HashSet<String>>,
    /// The `locals` of the batch's baselines: each cell's value after the last load.
    local_bases: Vec<Table>,
    /// The `locals` of the new baselines: each cell's value as the new version set it.
    new_local_bases: Table,
    /// Where the new version's tables go live: see `unmerged` in `data.lua`.
    unmerged: Table,
    /// Functions that other modules and `_G` export as fields, by identity; read on first need.
    exported_elsewhere: Option<FxHashSet<usize>>,
    tasks: Tasks,
    kept_deleted: Vec<Function>,
    writes: Vec<Write>,
    report: Report,
}

impl<'lua> Planner<'lua> {
    fn new(lua: &'lua Lua, staged: &Staged) -> Result<Planner<'lua>> {
        let batch: HashSet<&str> = staged.modules.iter().map(|m| m.name.as_str()).collect();
        let globals = lua.globals();
        let crate::modules::Foreign {
            set: foreign_set,
            identities: foreign,
        } = crate::modules::foreign(lua, &batch)?;
        let data_members = lua.create_table()?;
        let mut table_pairs = TableMap::shared(lua, &data_members)?;
        for module in &staged.modules {
            table_pairs.insert(&module.globals, &globals)?;
            table_pairs.insert(&module.environment, &globals)?;
            for written in &module.extended {
                table_pairs.insert(&written.fields, &written.live)?;
            }
        }
        let live_module_tables: Vec<&Table> = staged
            .modules
            .iter()
            .filter_map(|m| match &m.old {
                Value::Table(table) => Some(table),
                _ => None,
            })
            .collect();
        let live_modules = live_module_tables
            .iter()
            .map(|table| table.to_pointer() as usize)
            .collect();
        let new_tables = TableMap::new(lua)?;
        let unmerged = lua.create_table()?;
        unmerged.raw_set("n", 0)?;
        let data = DataTables::new(
            lua,
            &data_members,
            &foreign_set,
            &data::table_set(lua, live_module_tables)?,
            table_pairs.entries(),
            new_tables.entries(),
            &unmerged,
        )?;
        Ok(Planner {
            lua,
            policy: DataPolicy::default(),
            foreign,
            foreign_set,
            live_modules,
            globals,
            new_tables,
            data,
            new_functions: Indexed::default(),
            new_function_merged: Cell::default(),
            last_handle_free: Default::default(),
            new_cells: FxHashMap::default(),
            cell_holders: LuaList::new(lua, 0)?,
            table_pairs,
            function_pairs: Indexed::default(),
            replaced: Replaced::new(lua, 0)?,
            new_to_old: FxHashMap::default(),
            function_writes: LuaList::new(lua, 0)?,
            keep_identity: false,
            foreign_closures: FxHashMap::default(),
            foreign_closure_pairs: FxHashSet::default(),
            old_functions: FxHashSet::default(),
            old_cells_by_name: FxHashMap::default(),
            cell_joins: FxHashMap::default(),
            cell_values_paired: FxHashSet::default(),
            #[cfg(any(feature = "lua51", feature = "luajit"))]
            environments: collect::Environments::default(),
            facts: Facts::new(
                lua,
                staged.modules.iter().map(|m| m.source.clone()).collect(),
            ),
            repeated_locals: None,
            local_bases: Vec::new(),
            new_local_bases: lua.create_table()?,
            unmerged,
            exported_elsewhere: None,
            tasks: Tasks::new(lua)?,
            kept_deleted: Vec::new(),
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
                tables_extended: staged
                    .modules
                    .iter()
                    .flat_map(|m| m.extended.iter().map(|w| w.name.clone()))
                    .collect(),
                staging_entries_copied: staged.modules.iter().map(|m| m.entries_copied).sum(),
                staging_lookups: staged.modules.iter().map(|m| m.lookups).sum(),
                ..Report::default()
            },
        })
    }

    /// Lists of function pairs and function writes with room for each new function, and
    /// the maps of pairs and of the old functions sized for as many (most new functions pair
    /// with one old one): ten thousand pairs would otherwise rehash each map a dozen times.
    fn make_room_for_functions(&mut self) -> Result<()> {
        let functions = self.new_functions.len();
        self.replaced = Replaced::new(self.lua, functions)?;
        self.function_writes = LuaList::new(self.lua, 3 * functions)?;
        self.function_pairs.reserve(functions)?;
        self.new_to_old.grow_by(functions)?;
        self.old_functions.grow_by(functions)?;
        self.facts.reserve(functions)?;
        Ok(())
    }

    fn facts(&mut self, function: &Function) -> Result<FunctionFacts<'_>> {
        self.facts.of(self.lua, function)
    }

    /// True for a Lua function compiled from one of the batch's files.
    fn owned(&mut self, function: &Function) -> Result<bool> {
        Ok(self.facts(function)?.from_sources)
    }

    /// True for two distinct closures of one Lua function that is not the batch's own: two
    /// products of the same factory in other code (a class library's constructor, say).
    fn same_foreign_prototype(&mut self, a: &Function, b: &Function) -> Result<bool> {
        let a = self.facts(a)?;
        let (a_owned, a_prototype) = (a.from_sources, a.prototype);
        let b = self.facts(b)?;
        Ok(!a_owned && !b.from_sources && a_prototype.is_some() && a_prototype == b.prototype)
    }

    /// Functions that other modules and `_G` export as fields, by identity.
    fn exported_elsewhere(&mut self) -> Result<&FxHashSet<usize>> {
        if self.exported_elsewhere.is_none() {
            let mut exported = FxHashSet::default();
            let mut tables = vec![self.globals.clone()];
            for pair in crate::modules::loaded_table(self.lua)?.pairs::<Value, Value>() {
                if let (_, Value::Table(module)) = pair? {
                    if self.is_foreign(&module) {
                        tables.try_push(module)?;
                    }
                }
            }
            for table in tables {
                for pair in table.pairs::<Value, Value>() {
                    if let (_, Value::Function(function)) = pair? {
                        exported.grow()?;
                        exported.insert(function.to_pointer() as usize);
                    }
                }
            }
            self.exported_elsewhere = Some(exported);
        }
        Ok(self
            .exported_elsewhere
            .get_or_insert_with(FxHashSet::default))
    }

    fn is_new_function(&self, function: &Function) -> bool {
        self.new_functions.contains(function.to_pointer() as usize)
    }

    fn is_new_table(&self, table: &Table) -> Result<bool> {
        Ok(self.new_tables.contains(table)? || self.data.contains(table)?)
    }

    fn is_foreign(&self, table: &Table) -> bool {
        self.foreign.contains(&(table.to_pointer() as usize))
    }

    /// The live counterpart of a value of the new version: the live table a new table merges
    /// into, the new version of an old function (a new top level may capture old functions of
    /// another module of the batch), or the value itself. When the engine keeps identities,
    /// a function's live counterpart is the old function (which will run the new code).
    fn resolve(&self, value: &Value) -> Result<Value> {
        Ok(match value {
            Value::Table(table) => self
                .table_pairs
                .get(table)?
                .map_or_else(|| value.clone(), Value::Table),
            Value::Function(function) if self.keep_identity => {
                match self.new_to_old.get(&(function.to_pointer() as usize)) {
                    Some(&Some(at)) => Value::Function(self.replaced.old_of(at)?),
                    _ => value.clone(),
                }
            }
            Value::Function(function) => {
                match self.function_pairs.get(function.to_pointer() as usize) {
                    Some(&(at, ..)) => Value::Function(self.replaced.new_of(at)?),
                    None => value.clone(),
                }
            }
            _ => value.clone(),
        })
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
