//! The walk both fast paths share (`collect_fields.rs`, `function_fields.rs`): a table's
//! fields from a key on, each handed to a step over the raw Lua stack, until a step declines
//! one, which the general path then takes.

use std::ffi::c_int;

use mlua::{ffi, IntoLuaMulti, Lua, Value};

use crate::Result;

/// Walks the fields of the table at index `table` of the frame `args` make, after the key at
/// index `from` (`nil`: from the first), in one protected call. `step` gets each field with
/// its key and value at the top of the stack, and says whether it took it; the walk stops at
/// the first it declines, whose key is returned, or at `step`'s first error.
///
/// # Safety
/// `table` and `from` are indices of the frame `args` make; `step` leaves the stack as it
/// found it and calls nothing that raises (lua_next reads; the frame above the key is the
/// step's).
pub(super) unsafe fn walk_fields(
    lua: &Lua,
    args: impl IntoLuaMulti,
    table: c_int,
    from: c_int,
    mut step: impl FnMut(*mut ffi::lua_State) -> Result<bool>,
) -> Result<Option<Value>> {
    let mut failed = None;
    // lua_next pops the key at the top and pushes the next key and its value (nothing at the
    // end), so between two calls the key is at the top. A declined field ends the walk with
    // its key alone on the frame, which exec_raw returns.
    let stopped: Value = lua.exec_raw(args, |state| {
        ffi::lua_pushvalue(state, from);
        while ffi::lua_next(state, table) != 0 {
            match step(state) {
                Ok(true) => ffi::lua_pop(state, 1),
                Ok(false) => {
                    ffi::lua_pop(state, 1);
                    ffi::lua_replace(state, 1);
                    ffi::lua_settop(state, 1);
                    return;
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        ffi::lua_settop(state, 0);
    })?;
    match failed {
        Some(error) => Err(error),
        None => Ok((stopped != Value::Nil).then_some(stopped)),
    }
}
