//! hotlua as a loadable Lua C module.
//!
//! With the built library on `package.cpath` as `hotlua.so`, `require "hotlua"` in a stock
//! interpreter or a C host returns the same `hotlua` table as `hotlua run` (see the main
//! docs/semantics.md). A host has no command line to pass `--watch DIR`: the program calls
//! `hotlua.watch(dir, ...)` itself.

mod host;

use std::ffi::c_int;

use mlua::{ffi, Lua, Result, Table};

/// hotlua's own allocations survive a heap full of the program's garbage (the interpreter's
/// allocations fail as they would without hotlua, and its emergency collection frees it).
#[global_allocator]
static ALLOCATOR: ::hotlua::Reserve = ::hotlua::Reserve;

/// `luaopen_hotlua`: what `require "hotlua"` calls. It refuses a host that runs another Lua
/// than the one this library was built for before mlua reads anything of the state
/// ([`host::mismatch`]), then lets mlua set the state up and runs [`hotlua`].
///
/// # Safety
///
/// Lua calls it as a C function, with a valid state.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_hotlua(state: *mut ffi::lua_State) -> c_int {
    if let Some(message) = host::mismatch() {
        // These two calls have the same signature in every Lua. The message is copied into
        // Lua and dropped before `lua_error` leaves this frame by `longjmp`.
        ffi::lua_pushlstring(state, message.as_ptr().cast(), message.len());
        drop(message);
        ffi::lua_error(state);
    }
    // What `#[mlua::lua_module]` expands to, after the check above.
    mlua::Lua::entrypoint1(state, hotlua)
}

fn hotlua(lua: &Lua) -> Result<Table> {
    ::hotlua::Reloader::new(lua)
        .and_then(|reloader| reloader.install())
        .map_err(mlua::Error::external)
}
