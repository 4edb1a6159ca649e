//! hotlua's functions as Lua sees them: C functions without upvalues.
//!
//! mlua makes a Rust callback a C closure and trusts its first upvalue to be its own userdata:
//! `debug.setupvalue(hotlua.now, 1, 0)` followed by a call would make it read whatever the
//! program put there (a crash). Every function hotlua hands to Lua (the `hotlua` table's, the
//! metamethods it installs) is instead an [`Entry`]: a C function with no upvalue at all, which
//! finds its mlua function in the registry under a key of its own and calls it. Its bad
//! arguments are raised at the caller's level from C, as `luaL_argerror` does, so no function
//! of hotlua's calls a global (`error`, `select`) the program may have redefined either.

use std::ffi::{c_int, c_void};

use mlua::{ffi, Function, LightUserData, Lua, MultiValue, Value};

/// Every function hotlua hands to Lua; each has its own C function and registry key.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    Reload,
    Check,
    Rollback,
    OnReload,
    Policy,
    Now,
    Poll,
    Sleep,
    Watch,
    /// The `__index` of the `hotlua` table (`hotlua.reloading`).
    ApiIndex,
    /// The `__newindex` of `package.loaded` that records each module's load-time values.
    RecordLoad,
}

/// How many [`Entry`] values there are.
const ENTRIES: usize = Entry::RecordLoad as usize + 1;

/// The registry keys of the entries' mlua functions: the address of element `entry`.
static KEYS: [u8; ENTRIES] = [0; ENTRIES];

/// Its address marks a bad argument coming back from an entry's mlua function.
static RAISE: u8 = 0;

impl Entry {
    fn key(self) -> *const c_void {
        &KEYS[self as usize] as *const u8 as *const c_void
    }

    fn c_function(self) -> ffi::lua_CFunction {
        match self {
            Entry::Reload => call::<{ Entry::Reload as usize }>,
            Entry::Check => call::<{ Entry::Check as usize }>,
            Entry::Rollback => call::<{ Entry::Rollback as usize }>,
            Entry::OnReload => call::<{ Entry::OnReload as usize }>,
            Entry::Policy => call::<{ Entry::Policy as usize }>,
            Entry::Now => call::<{ Entry::Now as usize }>,
            Entry::Poll => call::<{ Entry::Poll as usize }>,
            Entry::Sleep => call::<{ Entry::Sleep as usize }>,
            Entry::Watch => call::<{ Entry::Watch as usize }>,
            Entry::ApiIndex => call::<{ Entry::ApiIndex as usize }>,
            Entry::RecordLoad => call::<{ Entry::RecordLoad as usize }>,
        }
    }

    /// The function Lua sees for this entry, which calls `implementation` (replacing what an
    /// earlier call registered for this entry in this state).
    ///
    /// `implementation` may return [`bad_argument`]'s values: the entry then raises the
    /// message at its caller's level.
    pub(crate) fn function(self, lua: &Lua, implementation: Function) -> mlua::Result<Function> {
        let key = self.key();
        let c_function = self.c_function();
        // SAFETY: the closure starts with `implementation` alone on the stack; lua_rawsetp pops
        // it into the registry (it cannot raise: the registry has no metatable), and the one
        // value left, the C function, is what exec_raw returns.
        unsafe {
            lua.exec_raw::<Function>(implementation, |state| {
                ffi::lua_rawsetp(state, ffi::LUA_REGISTRYINDEX, key);
                ffi::lua_pushcfunction(state, c_function);
            })
        }
    }
}

/// What an entry's mlua function returns so that the entry raises `bad argument #position to
/// 'name' (message)` at its caller's level.
pub(crate) fn bad_argument(lua: &Lua, message: String) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::LightUserData(LightUserData(&RAISE as *const u8 as *mut c_void)),
        Value::String(lua.create_string(message)?),
    ]))
}

/// The C function of entry `ENTRY`: calls the mlua function registered for it with the same
/// arguments and returns its results, or raises the message of a [`bad_argument`] result, or
/// the error the function raised as a string ([`raise_as_string`]).
///
/// SAFETY (invariant): Lua calls it as a C function. It holds no Rust value that needs
/// dropping, so its own `lua_error` may leave it by `longjmp`. A missing registration (nil in the registry) makes `lua_call` raise "attempt to
/// call a nil value", never a crash; nothing else of Lua's can reach the registry entry without
/// `debug.getregistry`.
unsafe extern "C-unwind" fn call<const ENTRY: usize>(state: *mut ffi::lua_State) -> c_int {
    let arguments = ffi::lua_gettop(state);
    ffi::luaL_checkstack(state, 2, std::ptr::null());
    ffi::lua_rawgetp(
        state,
        ffi::LUA_REGISTRYINDEX,
        &KEYS[ENTRY] as *const u8 as *const c_void,
    );
    ffi::lua_insert(state, 1);
    if ffi::lua_pcall(state, arguments, ffi::LUA_MULTRET, 0) != ffi::LUA_OK {
        raise_as_string(state);
    }
    let results = ffi::lua_gettop(state);
    if results >= 2
        && ffi::lua_type(state, 1) == ffi::LUA_TLIGHTUSERDATA
        && ffi::lua_touserdata(state, 1) == &RAISE as *const u8 as *mut c_void
    {
        // Level 1 is the caller of this C function, as in luaL_argerror.
        ffi::luaL_where(state, 1);
        ffi::lua_pushvalue(state, 2);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state);
    }
    results
}

/// Raises the error object on top of the stack as a string, as Lua's own functions raise
/// their errors: mlua's errors are userdata, which a program cannot concatenate, and a host
/// cannot pass between states (skynet refuses to serialize a userdata). A string (a Lua error
/// raised through hotlua, "not enough memory") is raised as it is; anything else becomes its
/// `tostring`, after the caller's position (`file:line: `), as `luaL_error` gives it.
///
/// SAFETY (invariant): called from an entry's C function, with the error object on top.
unsafe fn raise_as_string(state: *mut ffi::lua_State) -> ! {
    if ffi::lua_type(state, -1) != ffi::LUA_TSTRING {
        ffi::luaL_checkstack(state, 3, std::ptr::null());
        ffi::luaL_where(state, 1);
        ffi::luaL_tolstring(state, -2, std::ptr::null_mut());
        ffi::lua_concat(state, 2);
    }
    ffi::lua_error(state)
}
