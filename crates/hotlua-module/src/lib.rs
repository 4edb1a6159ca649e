//! hotlua as a loadable Lua C module.
//!
//! With the built library on `package.cpath` as `hotlua.so`, `require "hotlua"` in a stock
//! interpreter or a C host returns the same `hotlua` table as `hotlua run` (see the main
//! README). A host has no command line to pass `--watch DIR`: the program calls
//! `hotlua.watch(dir, ...)` itself.

use mlua::{Lua, Result, Table};

/// hotlua's own allocations survive a heap full of the program's garbage (the interpreter's
/// allocations fail as they would without hotlua, and its emergency collection frees it).
#[global_allocator]
static ALLOCATOR: ::hotlua::Reserve = ::hotlua::Reserve;

/// `luaopen_hotlua`: what `require "hotlua"` calls.
#[mlua::lua_module]
fn hotlua(lua: &Lua) -> Result<Table> {
    ::hotlua::Reloader::new(lua)
        .and_then(|reloader| reloader.install())
        .map_err(mlua::Error::external)
}
