//! Slot-for-slot table copies for staging (csrc/lua54/tables.c), where the build has the Lua
//! 5.4 shim (`cfg(hotlua_lua54_shim)`) and the running Lua's layout is proven: the copy of `_G`
//! a new top level is staged with, and the comparison after it, cost one pass over the slot
//! arrays instead of a hash lookup per key. Elsewhere staging compares by key in Lua, with the
//! same outcome.

/// The names hotlua's chunks find the functions under ([`crate::standard`]): `copy_slots(t)`
/// returns a copy of `t` and its number of entries; `take_slots(live, copy)` returns what was
/// written into `live` since and puts it back, or nil (nothing done) where the slots moved.
pub(crate) const NAMES: [&str; 2] = ["copy_slots", "take_slots"];

/// The two functions, as Lua functions, in the order of [`NAMES`].
pub(crate) fn functions(lua: &mlua::Lua) -> mlua::Result<[mlua::Function; 2]> {
    extern "C-unwind" {
        fn hotlua_table_clone(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
        fn hotlua_table_diff(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
    }
    // SAFETY: both are lua_CFunctions that read their arguments as tables; the Lua chunk that
    // calls them (staging's) passes only tables of its own making and the live tables it
    // copied.
    unsafe {
        Ok([
            lua.create_c_function(hotlua_table_clone)?,
            lua.create_c_function(hotlua_table_diff)?,
        ])
    }
}
