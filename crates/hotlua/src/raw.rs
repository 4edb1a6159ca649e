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

use std::ffi::c_int;

use mlua::{ffi, Function, Lua, MultiValue, Result, Value};

/// One upvalue of a function: the identity of its cell, and its current value.
pub(crate) struct Upvalue {
    /// `lua_upvalueid`: equal for two closures exactly when they share the variable.
    pub cell: usize,
    pub value: Value,
}

/// The environment of a Lua 5.1 or LuaJIT function (`getfenv`), as an error rather than a
/// panic when mlua has no handle left for it (about 8000 on these Luas).
#[cfg(any(feature = "lua51", feature = "luajit"))]
pub(crate) fn environment(lua: &Lua, function: &Function) -> Result<Option<mlua::Table>> {
    // SAFETY: index 1 is `function` (the only argument); lua_getfenv pushes its environment,
    // and removing index 1 leaves exactly that value on the frame.
    let value: Value = unsafe {
        lua.exec_raw(function, |state| {
            ffi::lua_getfenv(state, 1);
            ffi::lua_remove(state, 1);
        })?
    };
    Ok(match value {
        Value::Table(table) => Some(table),
        _ => None,
    })
}

/// Sets the environment of every function of the Lua list `functions` (`setfenv`).
#[cfg(any(feature = "lua51", feature = "luajit"))]
pub(crate) fn set_environments(
    lua: &Lua,
    functions: &mlua::Table,
    environment: &mlua::Table,
) -> Result<()> {
    // SAFETY: index 1 is `functions`, index 2 `environment`. Each slot of the list is pushed
    // (index 3), and with a copy of the environment above it lua_setfenv pops the copy and
    // sets it (a value that is not a function is left alone); popping the slot's value leaves
    // the frame as it was, until the first empty slot ends the list.
    unsafe {
        lua.exec_raw::<()>((functions, environment), |state| {
            let mut at = 1;
            while ffi::lua_rawgeti(state, 1, at) != ffi::LUA_TNIL {
                ffi::lua_pushvalue(state, 2);
                ffi::lua_setfenv(state, -2);
                ffi::lua_pop(state, 1);
                at += 1;
            }
            ffi::lua_settop(state, 0);
        })
    }
}

/// Flushes LuaJIT's whole trace cache (`jit.flush()`): compiled code may have folded an
/// upvalue holding an old function, or a module local, into a constant, and would go on
/// running old code after a reload.
#[cfg(feature = "luajit")]
pub(crate) fn flush_compiled_code(lua: &Lua) -> Result<()> {
    extern "C-unwind" {
        fn luaJIT_setmode(state: *mut ffi::lua_State, idx: c_int, mode: c_int) -> c_int;
    }
    // luajit.h: LUAJIT_MODE_ENGINE (0) with LUAJIT_MODE_FLUSH (0x0200), index 0: the whole
    // engine's cache.
    const ENGINE_FLUSH: c_int = 0x0200;
    // SAFETY: luaJIT_setmode takes any state of the VM; with LUAJIT_MODE_ENGINE it reads no
    // stack slot and pushes nothing. It fails only when the JIT is not compiled in, which is
    // then nothing to flush.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            luaJIT_setmode(state, 0, ENGINE_FLUSH);
        })
    }
}

/// `table`'s metatable (`lua_getmetatable`), as an error rather than a panic when mlua has no
/// memory left to hold a handle to it (mlua's `Table::metatable` panics then).
pub(crate) fn metatable(lua: &Lua, table: &mlua::Table) -> Result<Option<mlua::Table>> {
    // SAFETY: index 1 is `table` (the only argument); lua_getmetatable pushes its metatable or
    // nothing, and removing index 1 leaves exactly that on the frame.
    unsafe {
        lua.exec_raw(table, |state| {
            ffi::lua_getmetatable(state, 1);
            ffi::lua_remove(state, 1);
        })
    }
}

/// All upvalues of `function`, in index order.
pub(crate) fn upvalues(lua: &Lua, function: &Function) -> Result<Vec<Upvalue>> {
    let mut cells = Vec::new();
    // SAFETY: index 1 is `function` (the only argument), as push_upvalues requires; the pushed
    // values stay on the frame and come back as the MultiValue, so exec_raw balances the stack.
    let values: MultiValue = unsafe {
        lua.exec_raw(function, |state| {
            push_upvalues(state, &mut cells);
            ffi::lua_remove(state, 1);
        })?
    };
    Ok(cells
        .into_iter()
        .zip(values)
        .map(|(cell, value)| Upvalue { cell, value })
        .collect())
}

/// `lua_upvalueid` and `lua_upvaluejoin`: LuaJIT exports them, but mlua declares them only for
/// the Lua releases that define them in `lua.h` (5.2 and later).
#[cfg(feature = "luajit")]
mod luajit {
    use std::ffi::{c_int, c_void};

    use mlua::ffi::lua_State;

    extern "C-unwind" {
        pub fn lua_upvalueid(state: *mut lua_State, function: c_int, n: c_int) -> *mut c_void;
        pub fn lua_upvaluejoin(state: *mut lua_State, f1: c_int, n1: c_int, f2: c_int, n2: c_int);
    }
}
#[cfg(feature = "luajit")]
use luajit::{lua_upvalueid, lua_upvaluejoin};
#[cfg(not(any(feature = "luajit", feature = "lua51")))]
use mlua::ffi::{lua_upvalueid, lua_upvaluejoin};

/// Whether closures can share one upvalue cell through the C API. Lua 5.1 has neither
/// `lua_upvalueid` nor `lua_upvaluejoin`: its cells can only be copied.
pub(crate) const CELLS_CAN_BE_JOINED: bool = !cfg!(feature = "lua51");

/// The identity of upvalue `n`'s cell of the function at `function`.
///
/// SAFETY (for callers): `function` holds a function with at least `n` upvalues.
pub(crate) unsafe fn cell_identity(state: *mut ffi::lua_State, function: c_int, n: c_int) -> usize {
    #[cfg(not(feature = "lua51"))]
    {
        lua_upvalueid(state, function, n) as usize
    }
    // No identity exists: each (closure, index) is its own cell. Pointers leave the top 16 bits
    // free on every 64-bit platform Lua runs on, and functions have at most 255 upvalues.
    #[cfg(feature = "lua51")]
    {
        ffi::lua_topointer(state, function) as usize | (n as usize) << 48
    }
}

/// Pushes every upvalue of the function at index 1 and records its cell.
///
/// SAFETY (for callers): index 1 must hold a function. A C function frame is only promised
/// `LUA_MINSTACK` free slots, so room for each upvalue is made with lua_checkstack before it
/// is pushed (a function has at most 255 upvalues; lua_checkstack fails only when the whole
/// stack would pass `LUAI_MAXSTACK`, and then nothing more is pushed). lua_getupvalue pushes
/// one value per existing upvalue and returns NULL past the last one, pushing nothing;
/// lua_upvalueid is only called with an index lua_getupvalue just accepted.
unsafe fn push_upvalues(state: *mut ffi::lua_State, cells: &mut Vec<usize>) {
    let mut index = 1;
    while ffi::lua_checkstack(state, 1) != 0 {
        let name = ffi::lua_getupvalue(state, 1, index);
        if name.is_null() {
            break;
        }
        cells.push(cell_identity(state, 1, index));
        index += 1;
    }
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

/// Upvalues of Lua closures, `(function, index)`: the ten thousand functions of a module that
/// share a local, each in a slot of a Lua list (which the lists of one plan share) rather than
/// as an mlua handle each.
#[derive(Clone)]
pub(crate) struct UpvalueList {
    functions: mlua::Table,
    /// (slot of the closure in `functions`, 1-based; its upvalue's index, 1-based).
    upvalues: Vec<(usize, i32)>,
}

impl UpvalueList {
    /// The upvalues `(slot, index)` of the closures in those slots of the list `functions`.
    pub(crate) fn new(functions: mlua::Table, upvalues: Vec<(usize, i32)>) -> UpvalueList {
        UpvalueList {
            functions,
            upvalues,
        }
    }

    /// The first upvalue added.
    pub(crate) fn first(&self) -> Result<Option<(Function, i32)>> {
        Ok(match self.upvalues.first() {
            Some(&(slot, index)) => Some((self.functions.raw_get(slot)?, index)),
            None => None,
        })
    }
}

/// Makes each upvalue of `holders` refer to the cell of upvalue `target_index` of `target`:
/// from then on all these closures read and write one variable. On Lua 5.1, which cannot
/// share cells, each holder gets a copy of the cell's current value.
pub(crate) fn join_upvalues(
    lua: &Lua,
    target: &Function,
    target_index: i32,
    holders: &UpvalueList,
) -> Result<()> {
    // SAFETY: index 1 is `target`, index 2 the list of holders, whose slot `slot` holds the
    // Lua closure whose upvalue `index` is joined, for each `(slot, index)`: each is pushed
    // (index 3, or 4 above the value copied on 5.1), joined and popped, so the frame never
    // holds more than five values. The indices were read from these same closures, as
    // lua_upvaluejoin requires (it checks neither the indices nor that both are Lua closures).
    unsafe {
        lua.exec_raw::<()>((target, &holders.functions), |state| {
            #[cfg(feature = "lua51")]
            ffi::lua_getupvalue(state, 1, target_index);
            for &(slot, index) in &holders.upvalues {
                ffi::lua_rawgeti(state, 2, slot as ffi::lua_Integer);
                #[cfg(not(feature = "lua51"))]
                lua_upvaluejoin(state, -1, index, 1, target_index);
                #[cfg(feature = "lua51")]
                {
                    ffi::lua_pushvalue(state, -2);
                    ffi::lua_setupvalue(state, -2, index);
                }
                ffi::lua_pop(state, 1);
            }
            ffi::lua_settop(state, 0);
        })
    }
}
