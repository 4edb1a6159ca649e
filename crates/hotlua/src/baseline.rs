//! What each module's file set when it was last loaded: the base of the three-way merge
//! ([`crate::DataPolicy::Merge3`]).
//!
//! A baseline is a copy of the module's value taken right after its top level ran, before the
//! program could change anything: tables are copied (so later writes to the live tables do not
//! show in it), every other value is kept as is. Baselines live in one registry table, keyed by
//! module name, as `{ module = <copy>, globals = <copy of the staged globals>, locals = <cell
//! identity → value> }`. `locals` holds the data values (not tables or functions, which pair
//! by path) of the upvalue cells of the module's functions, keyed by the cell's identity
//! (`lua_upvalueid`), which a reload keeps: new functions are joined to the live cell.

use mlua::{Lua, Table, Value};

use crate::fallible::TryPush;
use crate::memory::LimitLifted;

const REGISTRY_KEY: &str = "hotlua.baselines";

/// Records the baseline of a module `require` has just loaded.
pub(crate) fn record_load(lua: &Lua, name: &str, module: &Value) -> mlua::Result<()> {
    let baseline = lua.create_table()?;
    let batch = std::collections::HashSet::from([name]);
    let foreign = crate::modules::foreign_tables(lua, &batch).map_err(mlua::Error::external)?;
    let is_foreign = |table: &Table| foreign.contains(&(table.to_pointer() as usize));
    baseline.raw_set("module", snapshot(lua, module, &is_foreign)?)?;
    baseline.raw_set("locals", locals_of(lua, module, &is_foreign)?)?;
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
fn locals_of(
    lua: &Lua,
    module: &Value,
    is_foreign: &dyn Fn(&Table) -> bool,
) -> mlua::Result<Table> {
    /// The module table is depth 0; its fields' tables 1; theirs are not walked.
    const TABLE_DEPTH: u8 = 1;
    let locals = lua.create_table()?;
    let visited = lua.create_table()?;
    let pending = lua.create_table()?;
    let mut depths = Vec::new();
    pending.raw_push(module)?;
    depths.push(0u8);
    while let Some(value) = pending.raw_pop::<Option<Value>>()? {
        let depth = depths.pop().unwrap_or(0);
        if visited.raw_get::<bool>(&value)? {
            continue;
        }
        match &value {
            Value::Table(table) if !is_foreign(table) => {
                visited.raw_set(&value, true)?;
                for pair in table.pairs::<Value, Value>() {
                    let (_, field) = pair?;
                    let walk = match field {
                        Value::Table(_) => depth < TABLE_DEPTH,
                        Value::Function(_) => true,
                        _ => false,
                    };
                    if walk {
                        pending.raw_push(field)?;
                        depths.try_push(depth + 1).map_err(mlua::Error::external)?;
                    }
                }
            }
            Value::Function(function) => {
                visited.raw_set(&value, true)?;
                for upvalue in crate::raw::upvalues(lua, function)? {
                    if is_local_data(&upvalue.value) {
                        locals.raw_set(cell_key(upvalue.cell), upvalue.value)?;
                    } else if matches!(upvalue.value, Value::Function(_)) {
                        pending.raw_push(upvalue.value)?;
                        depths.try_push(depth).map_err(mlua::Error::external)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(locals)
}

/// The baseline of `name`, if hotlua saw it load.
pub(crate) fn get(lua: &Lua, name: &str) -> mlua::Result<Option<Table>> {
    all(lua)?.raw_get(name)
}

/// Replaces the baseline of `name`.
pub(crate) fn store(lua: &Lua, name: &str, baseline: Value) -> mlua::Result<()> {
    all(lua)?.raw_set(name, baseline)
}

/// Replaces the baselines of a reload's modules; the result puts the old ones back if the
/// reload fails later. All or nothing.
pub(crate) fn replace(lua: &Lua, baselines: &[(String, Value)]) -> mlua::Result<Replaced> {
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

/// A copy of `value` in which every table not `is_foreign` is copied (cycles kept as cycles)
/// and every other value is the value itself.
///
/// Any depth and any size: the tables waiting to be copied and the copies made so far are kept
/// in Lua tables, not on the native stack and not as mlua handles (mlua holds a limited number
/// of those: about 8000 on Lua 5.1 and LuaJIT).
pub(crate) fn snapshot(
    lua: &Lua,
    value: &Value,
    is_foreign: &dyn Fn(&Table) -> bool,
) -> mlua::Result<Value> {
    let copies = lua.create_table()?;
    let pending = lua.create_table()?;
    let copy_of = |value: Value| -> mlua::Result<Value> {
        let Value::Table(table) = &value else {
            return Ok(value);
        };
        if is_foreign(table) {
            return Ok(value);
        }
        if let Some(done) = copies.raw_get::<Option<Table>>(table)? {
            return Ok(Value::Table(done));
        }
        let duplicate = lua.create_table()?;
        copies.raw_set(table, &duplicate)?;
        pending.raw_push(table)?;
        Ok(Value::Table(duplicate))
    };
    let root = copy_of(value.clone())?;
    while let Some(table) = pending.raw_pop::<Option<Table>>()? {
        let duplicate: Table = copies.raw_get(&table)?;
        for pair in table.pairs::<Value, Value>() {
            let (key, field) = pair?;
            duplicate.raw_set(key, copy_of(field)?)?;
        }
    }
    Ok(root)
}

fn all(lua: &Lua) -> mlua::Result<Table> {
    if let Some(table) = lua.named_registry_value::<Option<Table>>(REGISTRY_KEY)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    lua.set_named_registry_value(REGISTRY_KEY, &table)?;
    Ok(table)
}
