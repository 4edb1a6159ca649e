//! The module registry `require` keeps: `package.loaded`, `package.searchers`, and which
//! loaded tables belong to modules other than the ones being reloaded.

use std::collections::HashSet;

use mlua::{Lua, Table, Value};

use crate::Result;

/// `package.loaded`.
pub(crate) fn loaded_table(lua: &Lua) -> Result<Table> {
    let package: Table = lua.globals().raw_get("package")?;
    Ok(package.raw_get("loaded")?)
}

/// `package.searchers`, called `package.loaders` in Lua 5.1 and LuaJIT.
pub(crate) fn searchers(lua: &Lua) -> Result<Table> {
    let package: Table = lua.globals().raw_get("package")?;
    Ok(match package.raw_get("searchers")? {
        Value::Table(searchers) => searchers,
        _ => package.raw_get("loaders")?,
    })
}

/// Tables hotlua never pairs, merges into or copies: every module in `package.loaded` that is
/// not being reloaded (the standard library among them) and `_G`.
pub(crate) fn foreign_tables(lua: &Lua, batch: &HashSet<&str>) -> Result<HashSet<usize>> {
    let mut foreign = HashSet::new();
    foreign.insert(lua.globals().to_pointer() as usize);
    for pair in loaded_table(lua)?.pairs::<Value, Value>() {
        let (name, module) = pair?;
        let in_batch = matches!(&name, Value::String(s) if batch.contains(&*s.to_string_lossy()));
        if let (Value::Table(module), false) = (module, in_batch) {
            foreign.insert(module.to_pointer() as usize);
        }
    }
    Ok(foreign)
}
