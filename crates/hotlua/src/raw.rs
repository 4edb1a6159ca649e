//! The few Lua C API calls mlua does not wrap: upvalue access and cell identity.
//!
//! Every function here runs its C calls through [`Lua::exec_raw`], which pushes the arguments
//! as the only values of a fresh protected C frame (stack indices 1, 2, ...) and returns
//! whatever that frame holds when the closure ends. The invariants each call relies on are
//! written beside it; all of them come down to "index 1 (and 2) hold the functions we pushed".
//!
//! See the manual: [`lua_getupvalue`](https://www.lua.org/manual/5.4/manual.html#lua_getupvalue),
//! [`lua_upvalueid`](https://www.lua.org/manual/5.4/manual.html#lua_upvalueid),
//! [`lua_upvaluejoin`](https://www.lua.org/manual/5.4/manual.html#lua_upvaluejoin).

use std::ffi::CStr;

use mlua::{ffi, Function, Lua, MultiValue, Result, Value};

/// One upvalue of a function: its name, the identity of its cell, and its current value.
pub(crate) struct Upvalue {
    /// 1-based index, as the C API counts.
    pub index: i32,
    /// The local's name; empty for C functions, `(no name)` for stripped Lua functions.
    pub name: String,
    /// `lua_upvalueid`: equal for two closures exactly when they share the variable.
    pub cell: usize,
    pub value: Value,
}

/// All upvalues of `function`, in index order.
pub(crate) fn upvalues(lua: &Lua, function: &Function) -> Result<Vec<Upvalue>> {
    let mut named: Vec<(String, usize)> = Vec::new();
    // SAFETY: index 1 is `function` (the only argument). lua_getupvalue pushes one value per
    // existing upvalue and returns NULL past the last one, pushing nothing; the pushed values
    // stay on the frame and come back as the MultiValue, so the stack is balanced by exec_raw.
    // lua_upvalueid is only called with an index lua_getupvalue just accepted.
    let values: MultiValue = unsafe {
        lua.exec_raw(function, |state| {
            let mut index = 1;
            loop {
                let name = ffi::lua_getupvalue(state, 1, index);
                if name.is_null() {
                    break;
                }
                let cell = ffi::lua_upvalueid(state, 1, index) as usize;
                named.push((CStr::from_ptr(name).to_string_lossy().into_owned(), cell));
                index += 1;
            }
            ffi::lua_remove(state, 1);
        })?
    };
    Ok(named
        .into_iter()
        .zip(values)
        .zip(1..)
        .map(|(((name, cell), value), index)| Upvalue {
            index,
            name,
            cell,
            value,
        })
        .collect())
}

/// Sets the value of upvalue `index` of `function`: every closure sharing that cell sees it.
pub(crate) fn set_upvalue(lua: &Lua, function: &Function, index: i32, value: Value) -> Result<()> {
    // SAFETY: index 1 is `function`, index 2 (the top) is `value`; lua_setupvalue pops the top
    // when the upvalue exists. If it does not (NULL), the value stays and is dropped with the
    // frame, so the call is harmless either way.
    unsafe {
        lua.exec_raw::<()>((function, value), |state| {
            ffi::lua_setupvalue(state, 1, index);
            ffi::lua_settop(state, 0);
        })
    }
}

/// Makes upvalue `index` of `function` refer to the cell of upvalue `target_index` of
/// `target`: from then on both closures read and write one variable.
pub(crate) fn join_upvalue(
    lua: &Lua,
    function: &Function,
    index: i32,
    target: &Function,
    target_index: i32,
) -> Result<()> {
    // SAFETY: indices 1 and 2 are the two Lua functions; callers pass upvalue indices read
    // from `upvalues` of these same functions, which is what lua_upvaluejoin requires (it does
    // not check them, and both must be Lua closures: callers only join Lua functions).
    unsafe {
        lua.exec_raw::<()>((function, target), |state| {
            ffi::lua_upvaluejoin(state, 1, index, 2, target_index);
            ffi::lua_settop(state, 0);
        })
    }
}
