//! What each module's file set when it was last loaded: the base of the three-way merge
//! ([`crate::DataPolicy::Merge3`]).
//!
//! A baseline is the module's value as its top level left it, where the program cannot change
//! it: at `require`, a copy (tables are copied, so later writes to the live tables do not show
//! in it; every other value is kept as is); after a reload, the new version itself, whose
//! tables that merged into live ones are never live, with copies of the tables that went live
//! ([`FieldsToCopy`]). Baselines live in one registry table, keyed by
//! module name, as `{ module = <copy>, globals = <copy of the staged globals>, locals = <cell
//! identity → value> }`. `locals` holds the data values (not tables or functions, which pair
//! by path) of the upvalue cells of the module's functions, keyed by the cell's identity
//! (`lua_upvalueid`), which a reload keeps: new functions are joined to the live cell.

use mlua::{Function, Lua, Table, Value};

use crate::memory::LimitLifted;
use crate::standard::Chunk;

const REGISTRY_KEY: &str = "hotlua.baselines";

/// Records the baseline of a module `require` has just loaded.
pub(crate) fn record_load(lua: &Lua, name: &str, module: &Value) -> mlua::Result<()> {
    let baseline = lua.create_table()?;
    let batch = std::collections::HashSet::from([name]);
    let foreign = crate::modules::foreign(lua, &batch)
        .map_err(mlua::Error::external)?
        .set;
    baseline.raw_set("module", snapshot(lua, module, &foreign)?)?;
    baseline.raw_set("locals", locals_of(lua, module, &foreign)?)?;
    store(lua, name, Value::Table(baseline))
}

/// Whether `value` is data a local's baseline records: not a table or function (those pair by
/// path), not nil (a table cannot hold it).
pub(crate) fn is_local_data(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::Table(_) | Value::Function(_))
}

/// The key of an upvalue cell in a baseline's `locals`.
pub(crate) fn cell_key(cell: usize) -> i64 {
    cell as i64
}

/// The data values of the upvalue cells of the Lua functions `module` holds: the module
/// function itself, functions in its fields and in fields of its tables (a class's methods),
/// and the functions those capture (local helpers), by cell identity.
///
/// Data tables are not walked: a module of a million records costs its `require` nothing
/// here. A local only functions deeper down capture has no load-time value, and `overwrite`
/// and `merge3` keep its live value.
fn locals_of(lua: &Lua, module: &Value, foreign: &Table) -> mlua::Result<Table> {
    let locals = lua.create_table()?;
    let find: Function = crate::standard::cached(lua, &FUNCTIONS)?;
    // The functions still to look at, and every function met so far.
    let (pending, seen): (Table, Table) = find.call((module, foreign))?;
    while let Some(function) = pending.raw_pop::<Option<Function>>()? {
        for upvalue in crate::raw::upvalues(lua, &function)? {
            if is_local_data(&upvalue.value) {
                locals.raw_set(cell_key(upvalue.cell), upvalue.value)?;
            } else if let Value::Function(captured) = upvalue.value {
                if !seen.raw_get::<bool>(&captured)? {
                    seen.raw_set(&captured, true)?;
                    pending.raw_push(captured)?;
                }
            }
        }
    }
    Ok(locals)
}

/// The functions a module holds in its fields and in fields of its tables (not deeper: data
/// tables are not walked), found in one pass in Lua; foreign tables are not looked into.
/// Returns them as a sequence, and the set of every function in it.
pub(crate) const FUNCTIONS: Chunk = Chunk {
    name: "=hotlua module functions",
    source: r#"
local next, type = next, type
return function(module, foreign)
  local found, count, seen = {}, 0, {}
  local function add(f)
    if not seen[f] then seen[f] = true count = count + 1 found[count] = f end
  end
  local function fields(t, walk_tables)
    seen[t] = true
    for _, v in next, t do
      local kind = type(v)
      if kind == "function" then
        add(v)
      elseif kind == "table" and walk_tables and not seen[v] and not foreign[v] then
        fields(v, false)
      end
    end
  end
  local kind = type(module)
  if kind == "function" then
    add(module)
  elseif kind == "table" and not foreign[module] then
    fields(module, true)
  end
  return found, seen
end
"#,
};

/// The baseline of `name`, if hotlua saw it load.
pub(crate) fn get(lua: &Lua, name: &str) -> mlua::Result<Option<Table>> {
    all(lua)?.raw_get(name)
}

/// Replaces the baseline of `name`.
pub(crate) fn store(lua: &Lua, name: &str, baseline: Value) -> mlua::Result<()> {
    all(lua)?.raw_set(name, baseline)
}

/// Replaces the baselines of a reload's modules, once the fields `copies` lists hold copies;
/// the result puts the old ones back if the reload fails later. All or nothing.
pub(crate) fn replace(
    lua: &Lua,
    baselines: &[(String, Value)],
    copies: &FieldsToCopy,
) -> mlua::Result<Replaced> {
    copy_fields(lua, copies)?;
    let mut replaced = Replaced {
        all: all(lua)?,
        before: Vec::with_capacity(baselines.len()),
    };
    for (name, baseline) in baselines {
        let before = replaced.all.raw_get(name.as_str())?;
        replaced.before.push((name.clone(), before));
        if let Err(error) = replaced.all.raw_set(name.as_str(), baseline) {
            replaced.restore(lua);
            return Err(error);
        }
    }
    Ok(replaced)
}

/// The baselines a reload replaced.
pub(crate) struct Replaced {
    all: Table,
    before: Vec<(String, Value)>,
}

impl Replaced {
    /// Puts the replaced baselines back. Each key is there already, so nothing is allocated.
    pub(crate) fn restore(self, lua: &Lua) {
        let _lifted = LimitLifted::new(lua);
        for (name, before) in self.before.into_iter().rev() {
            let _ = self.all.raw_set(name, before);
        }
    }
}

/// A copy of `value` in which every table not in the set `foreign` is copied (cycles and
/// shared tables kept as such) and every other value is the value itself.
///
/// Any depth and any size, in one call of a Lua walk: the tables waiting to be copied wait in
/// a Lua table, not on the native stack, and no mlua handle is taken per entry.
pub(crate) fn snapshot(lua: &Lua, value: &Value, foreign: &Table) -> mlua::Result<Value> {
    let copy: Function = crate::standard::cached(lua, &SNAPSHOT)?;
    copy.call((value, foreign))
}

/// Fields of new tables that a baseline holds as they are but that hold tables that go live
/// (or were live already): the planner lists the fields of the new tables merged into live
/// ones, which are never live and are their own baseline.
pub(crate) struct FieldsToCopy {
    /// A table, then a key, for each field; `n` slots.
    pub(crate) fields: Table,
    /// Tables a [`snapshot`] keeps as they are.
    pub(crate) foreign: Table,
}

/// Replaces the value of each field `copies` lists with a [`snapshot`] of it; tables reached
/// from two fields are copied once. Done when the baselines are recorded, not when planned:
/// a plan can be made twice from one new version (when an `on_reload` hook ran).
fn copy_fields(lua: &Lua, copies: &FieldsToCopy) -> mlua::Result<()> {
    let copy: Function = crate::standard::cached(lua, &SNAPSHOT)?;
    let replace: Function = crate::standard::cached(lua, &COPY_FIELDS)?;
    replace.call((&copies.fields, &copies.foreign, copy))
}

pub(crate) const COPY_FIELDS: Chunk = Chunk {
    name: "=hotlua copy fields",
    source: r#"
local rawget, rawset = rawget, rawset
return function(fields, foreign, snapshot)
  local copies = {}
  for i = 1, fields.n, 2 do
    local t, k = fields[i], fields[i + 1]
    rawset(t, k, snapshot(rawget(t, k), foreign, copies))
  end
end
"#,
};

// `copy_slots` ([`crate::slots`]), where the build has it, copies a table's entries with its
// sizes: no table grows entry by entry.
pub(crate) const SNAPSHOT: Chunk = Chunk {
    name: "=hotlua snapshot",
    source: r#"
local next, type, copy_slots = next, type, copy_slots
local function empty() return {} end
local copy = copy_slots or empty
-- `copies`: the copies made so far (new table -> copy), shared by calls that copy tables of
-- one version, or nil.
return function(root, foreign, copies)
  if type(root) ~= "table" or foreign[root] then return root end
  copies = copies or {}
  if copies[root] then return copies[root] end
  copies[root] = copy(root)
  local pending, count = { root }, 1
  while count > 0 do
    local t = pending[count]
    pending[count] = nil
    count = count - 1
    local c = copies[t]
    for k, v in next, t do
      if type(v) == "table" and not foreign[v] then
        local d = copies[v]
        if d == nil then
          d = copy(v)
          copies[v] = d
          count = count + 1
          pending[count] = v
        end
        c[k] = d
      elseif not copy_slots then
        c[k] = v
      end
    end
  end
  return copies[root]
end
"#,
};

fn all(lua: &Lua) -> mlua::Result<Table> {
    if let Some(table) = lua.named_registry_value::<Option<Table>>(REGISTRY_KEY)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    lua.set_named_registry_value(REGISTRY_KEY, &table)?;
    Ok(table)
}
