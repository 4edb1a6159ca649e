//! hotlua as a loadable Lua C module.
//!
//! With the built library on `package.cpath` as `hotlua.so`, `require "hotlua"` in a stock
//! interpreter or a C host returns the same `hotlua` table as `hotlua run` (see the main
//! docs/semantics.md). A host has no command line to pass `--watch DIR`: the program calls
//! `hotlua.watch(dir, ...)` itself.

use mlua::{Lua, Result, Table};

/// hotlua's own allocations survive a heap full of the program's garbage (the interpreter's
/// allocations fail as they would without hotlua, and its emergency collection frees it).
#[global_allocator]
static ALLOCATOR: ::hotlua::Reserve = ::hotlua::Reserve;

/// `luaopen_hotlua`: what `require "hotlua"` calls.
#[mlua::lua_module]
fn hotlua(lua: &Lua) -> Result<Table> {
    #[cfg(feature = "lua51")]
    refuse_luajit(lua)?;
    ::hotlua::Reloader::new(lua)
        .and_then(|reloader| reloader.install())
        .map_err(mlua::Error::external)
}

/// The Lua 5.1 build refuses LuaJIT, which also reports `_VERSION` "Lua 5.1" and has every
/// symbol the build calls: there it would run, but copy a module's locals on each reload where
/// the LuaJIT build joins them (Lua 5.1 has no `lua_upvaluejoin`), and never flush compiled
/// traces. LuaJIT is told apart by its `jit` library. (The reverse needs no check: the LuaJIT
/// build calls `lua_upvaluejoin` and `luaJIT_setmode`, so Lua 5.1's `require` cannot load it.)
#[cfg(feature = "lua51")]
fn refuse_luajit(lua: &Lua) -> Result<()> {
    let loaded_jit = lua
        .globals()
        .get::<Option<Table>>("package")?
        .map(|package| package.get::<Option<Table>>("loaded"))
        .transpose()?
        .flatten()
        .map(|loaded| loaded.get::<Option<Table>>("jit"))
        .transpose()?
        .flatten();
    let Some(jit) = loaded_jit.or(lua.globals().get::<Option<Table>>("jit")?) else {
        return Ok(());
    };
    let version = jit
        .get::<Option<String>>("version")?
        .unwrap_or_else(|| "LuaJIT".to_owned());
    Err(mlua::Error::runtime(format!(
        "this hotlua.so is built for Lua 5.1 but runs in {version}, where it would copy a \
         module's locals on each reload instead of sharing them: build it for LuaJIT \
         (scripts/build-module luajit, or `luarocks make` with LuaJIT's luarocks)"
    )))
}
