//! Recording what each module's file set when `require` loaded it (the base of
//! [`crate::DataPolicy::Merge3`]).
//!
//! `require` stores a module it has just loaded with `package.loaded[name] = value`, an
//! assignment that is not raw: a `__newindex` metamethod on `package.loaded` sees every module
//! the moment its top level returned, before the program could change anything. Nothing wraps
//! the searchers or the loaders, so an error a module's top level raises reaches the caller of
//! `require` exactly as lua5.4 delivers it: the same value, the same traceback.

use mlua::{Function, Lua, Table, Value};

use crate::modules::{loaded_table, searchers};
use crate::{baseline, Result};

/// Registry key of the Lua file searcher (the second of `package.searchers`) as it was when
/// hotlua started: the searcher whose files a reload compiles itself.
const LUA_FILE_SEARCHER: &str = "hotlua.lua_searcher";

/// Records, for every module `require` loads from now on, the values its file set at load
/// time. A program that gave `package.loaded` a metatable of its own keeps it, and `merge3`
/// then has no load-time values (it says so in a warning).
pub(crate) fn track_loads(lua: &Lua) -> Result<()> {
    if let Ok(lua_searcher) = searchers(lua)?.raw_get::<Function>(2) {
        lua.set_named_registry_value(LUA_FILE_SEARCHER, lua_searcher)?;
    }
    let loaded = loaded_table(lua)?;
    if loaded.metatable().is_some() {
        return Ok(());
    }
    let record = lua.create_function(|lua, (loaded, key, value): (Table, Value, Value)| {
        loaded.raw_set(&key, &value)?;
        if let Value::String(name) = &key {
            baseline::record_load(lua, &name.to_string_lossy(), &value)?;
        }
        Ok(())
    })?;
    let metatable = lua.create_table()?;
    metatable.raw_set("__newindex", record)?;
    loaded.set_metatable(Some(metatable))?;
    Ok(())
}

/// The Lua file searcher as it was when hotlua started, if there was one.
pub(crate) fn lua_file_searcher(lua: &Lua) -> Option<Function> {
    lua.named_registry_value(LUA_FILE_SEARCHER).ok().flatten()
}
