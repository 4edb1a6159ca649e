//! `lua.c`'s building blocks: load a chunk, call it under its message handler with Ctrl-C
//! armed (`docall`), and print what failed (`l_message`).
//!
//! A failure of the Lua program is a `Failed` value holding the text `lua.c` prints; an
//! `Err` is a failure of hotlua itself, which `main` prints as `hotlua: ...`.

use std::ffi::{c_int, CStr};
use std::io::Write;
use std::ptr;

use mlua::{ffi, Function, IntoLua, Lua, MultiValue, Result, Value};

use crate::signal;

/// What a Lua chunk or call raised: the message `lua.c` prints, traceback included.
pub type Failed = Vec<u8>;

/// The result of a Lua chunk or call: its value, or what it raised.
pub type Outcome<T> = std::result::Result<T, Failed>;

/// `luaL_loadfile`: `None` reads standard input (chunk `=stdin`); a file named `path` is the
/// chunk `@path`, its `#` first line skipped, a binary chunk accepted.
pub fn load_file(lua: &Lua, path: Option<&CStr>) -> Result<Outcome<Function>> {
    let path = path.map_or(ptr::null(), CStr::as_ptr);
    // SAFETY: `luaL_loadfilex` takes a NUL-terminated path or NULL, both valid for the call.
    load_with(lua, |state| unsafe {
        ffi::luaL_loadfilex(state, path, ptr::null())
    })
}

/// `luaL_loadbuffer`: `code` as a chunk named `name` (`=(command line)`, `=stdin`, ...).
pub fn load_string(lua: &Lua, code: &[u8], name: &CStr) -> Result<Outcome<Function>> {
    // SAFETY: `code` and `name` outlive the call; `luaL_loadbufferx` reads `code.len()` bytes.
    load_with(lua, |state| unsafe {
        ffi::luaL_loadbufferx(
            state,
            code.as_ptr().cast(),
            code.len(),
            name.as_ptr(),
            ptr::null(),
        )
    })
}

/// Runs one `luaL_load*` call, which pushes the chunk or an error message and never raises.
fn load_with(
    lua: &Lua,
    load: impl FnOnce(*mut ffi::lua_State) -> c_int,
) -> Result<Outcome<Function>> {
    let mut failure = None;
    // SAFETY: the closure runs in a C function whose stack is empty, pushes one value (the
    // loader's result) and leaves either the function or nothing. `luaL_load*` report their
    // errors through the status; the only errors that could `longjmp` out (out of memory) skip
    // no destructor, the closure owning nothing.
    let loaded = unsafe {
        lua.exec_raw::<Value>((), |state| {
            if load(state) != ffi::LUA_OK {
                failure = Some(top_message(state));
                ffi::lua_settop(state, 0);
            }
        })
    }
    .map_err(|err| hotlua_error("cannot load a chunk", err))?;
    Ok(match (failure, loaded) {
        (Some(message), _) => Err(message),
        (None, Value::Function(function)) => Ok(function),
        (None, other) => Err(format!("loader returned a {}", other.type_name()).into_bytes()),
    })
}

/// `lua.c`'s `docall`: calls `callee` with `args` under its message handler, with Ctrl-C
/// interrupting the Lua code (`interrupted!`), and returns every result.
pub fn docall(lua: &Lua, callee: impl IntoLua, args: MultiValue) -> Result<Outcome<MultiValue>> {
    let mut failure = None;
    // SAFETY: the closure runs in a C function whose stack is `callee` and `args`. It puts
    // the message handler under them, calls `lua_pcall`, which catches every error of the
    // call, and leaves the results (or nothing). No Rust value with a destructor lives in the
    // frame while Lua runs: `signal::interruptible` only stores a pointer.
    let results = unsafe {
        lua.exec_raw::<MultiValue>((callee, args), |state| {
            let nargs = ffi::lua_gettop(state) - 1;
            ffi::lua_pushcfunction(state, msghandler);
            ffi::lua_insert(state, 1);
            let status =
                signal::interruptible(state, || ffi::lua_pcall(state, nargs, ffi::LUA_MULTRET, 1));
            if status == ffi::LUA_OK {
                ffi::lua_remove(state, 1);
            } else {
                failure = Some(top_message(state));
                ffi::lua_settop(state, 0);
            }
        })
    }
    .map_err(|err| hotlua_error("cannot call Lua", err))?;
    Ok(match failure {
        Some(message) => Err(message),
        None => Ok(results),
    })
}

/// The error message on top of the stack, as `lua.c`'s `report` prints it.
///
/// # Safety
/// `state` must be a Lua state with at least one value on its stack.
unsafe fn top_message(state: *mut ffi::lua_State) -> Failed {
    let mut len = 0;
    let msg = ffi::lua_tolstring(state, -1, &mut len);
    if msg.is_null() {
        // Loaders push strings, and the message handler makes every call error one.
        b"(error object is not a string)".to_vec()
    } else {
        std::slice::from_raw_parts(msg.cast::<u8>(), len).to_vec()
    }
}

/// lua.c's `msghandler`: a string (or number) error gets a stack traceback; another error
/// object uses its `__tostring` if that gives a string, else becomes
/// `(error object is a X value)` with a traceback.
///
/// No Rust value with a destructor lives in this frame: a Lua error raised by a `__tostring`
/// metamethod or an allocation may `longjmp` over it.
unsafe extern "C-unwind" fn msghandler(state: *mut ffi::lua_State) -> c_int {
    let mut msg = ffi::lua_tostring(state, 1);
    if msg.is_null() {
        if ffi::luaL_callmeta(state, 1, c"__tostring".as_ptr()) != 0
            && ffi::lua_type(state, -1) == ffi::LUA_TSTRING
        {
            return 1;
        }
        ffi::lua_pushstring(state, c"(error object is a ".as_ptr());
        ffi::lua_pushstring(state, ffi::luaL_typename(state, 1));
        ffi::lua_pushstring(state, c" value)".as_ptr());
        ffi::lua_concat(state, 3);
        msg = ffi::lua_tostring(state, -1);
    }
    ffi::luaL_traceback(state, state, msg, 1);
    1
}

/// lua.c's `l_message`: `lua: MESSAGE` on stderr, or the bare message in the REPL (which
/// passes no program name). The message may hold any bytes: they are written as they are.
pub fn report(progname: Option<&str>, message: &[u8]) {
    let mut stderr = std::io::stderr().lock();
    if let Some(progname) = progname {
        let _ = write!(stderr, "{progname}: ");
    }
    let _ = stderr.write_all(message);
    let _ = stderr.write_all(b"\n");
    let _ = stderr.flush();
}

/// Writes `bytes` on stdout after what Lua's `print` and `io.write` buffered in C's `stdout`,
/// and flushes, so that the two streams keep their order (lua.c writes everything with C's
/// `stdio`).
pub fn write_stdout(bytes: &[u8]) {
    // SAFETY: `fflush(NULL)` flushes every C output stream; it takes no pointer to memory.
    unsafe { libc::fflush(ptr::null_mut()) };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// A failure of hotlua itself: `what` went wrong, because of `cause`.
pub fn hotlua_error(what: &str, cause: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::external(format!("{what}: {cause}"))
}
