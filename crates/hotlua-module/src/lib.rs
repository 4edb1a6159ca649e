//! hotlua as a loadable Lua C module.
//!
//! With the built library on `package.cpath` as `hotlua.so`, `require "hotlua"` in a stock
//! interpreter or a C host returns the same `hotlua` table as `hotlua run` (see the main
//! README), plus `hotlua.watch(dir, ...)`, the counterpart of `hotlua run --watch DIR`.

use std::path::PathBuf;

use mlua::{Lua, Result, Table, Variadic};

/// `luaopen_hotlua`: what `require "hotlua"` calls.
#[mlua::lua_module]
fn hotlua(lua: &Lua) -> Result<Table> {
    let api = ::hotlua::Reloader::new(lua)
        .and_then(|reloader| reloader.install())
        .map_err(mlua::Error::external)?;
    // A host has no command line for hotlua to read `--watch` from, and without a watcher
    // `poll` and `sleep` never see a change: the program starts one itself.
    api.raw_set(
        "watch",
        lua.create_function(|lua, dirs: Variadic<String>| {
            let dirs: Vec<PathBuf> = dirs.into_iter().map(PathBuf::from).collect();
            ::hotlua::Reloader::new(lua)
                .and_then(|reloader| reloader.watch(&dirs))
                .map_err(mlua::Error::external)
        })?,
    )?;
    Ok(api)
}
