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
    stay_loaded();
    // What `#[mlua::lua_module]` expands to, after the check above.
    mlua::Lua::entrypoint1(state, hotlua)
}

/// Keeps this library mapped until the process ends. Lua unloads a C module when the state
/// that loaded it closes (the last one, in a host with many states), but a thread of the
/// file watcher's (notify's own, which it does not join) may still be finishing then: its code
/// must stay.
fn stay_loaded() {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills `info` for an address of this library's; dlopen with RTLD_NOLOAD
    // only marks the library, already loaded, as never to be unloaded. The handle is kept.
    unsafe {
        let here = luaopen_hotlua as *const libc::c_void;
        if libc::dladdr(here, info.as_mut_ptr()) != 0 && !(*info.as_ptr()).dli_fname.is_null() {
            let flags = libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE;
            libc::dlopen((*info.as_ptr()).dli_fname, flags);
        }
    }
}

fn hotlua(lua: &Lua) -> Result<Table> {
    ::hotlua::Reloader::new(lua)
        .and_then(|reloader| reloader.install())
        .map_err(mlua::Error::external)
}
