//! The limits a new top level runs under during a reload: a deadline, and no `os.exit`.
//!
//! A top level is code the program did not control a moment ago. While it runs, a Lua hook
//! checks the deadline every [`CHECK_EVERY`] instructions and at every call (a call into C can
//! take long without running an instruction), and refuses calls to `os.exit`; either raises
//! an error in the top level and is remembered, so the reload fails even if the top level
//! catches that error with `pcall`. A top level whose last call into C ends past the deadline
//! fails too. The thread's own hook (a debugger's, a profiler's) is suspended meanwhile and put
//! back afterwards.
//!
//! Lua runs no hook inside a hook or a `__gc` finalizer: there nothing could stop an endless
//! top level. Before it runs, one call of a trivial Lua function shows whether the hook fires;
//! when it does not, the top level is not run ([`Stop::NoHooks`]).
//!
//! The hook finds what to check through a light userdata in the registry, so two Lua states
//! never see each other's limits. Coroutines the top level creates inherit the hook; once the
//! run is over the hook finds nothing there and removes itself from them.

use std::ffi::{c_int, c_void, CStr};
use std::time::{Duration, Instant};

use mlua::{ffi, Function, Lua, MultiValue, Value};

use crate::collector::CollectorState;
use crate::standard::Chunk;

/// The time a new top level gets when the call does not say ([`crate::Options::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Instructions between two looks at the clock: reading it costs about as much as a few
/// dozen instructions, so the check stays well under 1 % of the run time.
const CHECK_EVERY: c_int = 1000;

/// Why a limited run was stopped.
pub(crate) enum Stop {
    /// The deadline passed; where the top level was then (`file:line`), if Lua could tell.
    Timeout { stopped_at: Option<String> },
    /// The top level called `os.exit`; the error text, starting with where it was called.
    Exit { message: String },
    /// The top level raised an error (its text) or ran out of memory.
    Error { message: String },
    /// Lua runs no hooks where the reload was called (a debug hook, a `__gc` finalizer): the
    /// top level was not run, since nothing could have stopped it.
    NoHooks,
}

/// What the hook checks, found through the registry at [`LIMITS_KEY`].
struct Limits {
    deadline: Option<Instant>,
    /// The C function `os.exit` was when the run started.
    exit: Option<ffi::lua_CFunction>,
    /// The C function `collectgarbage` was when the run started.
    collectgarbage: Option<ffi::lua_CFunction>,
    /// Whether the collector was generational before the top level first asked to switch
    /// modes (see [`crate::collector::CollectorState`]).
    generational_before: Option<bool>,
    stop: Option<Stop>,
    /// Whether the hook has run since it was installed.
    hook_ran: bool,
    /// False once the run is over: hotlua's own calls after it are not checked.
    running: bool,
}

/// Its address is the registry key of the running [`Limits`].
static LIMITS_KEY: u8 = 0;

/// Calls `chunk(args)` under `timeout` with `os.exit` refused, and returns its results or why it
/// stopped. A non-string error value is described the way `lua.c` does it.
///
/// A top level that switches the collector's mode first has the mode before recorded in
/// `collector`, so that a failed reload can put it back.
pub(crate) fn call_limited(
    lua: &Lua,
    chunk: &Function,
    args: MultiValue,
    timeout: Duration,
    collector: &CollectorState,
) -> mlua::Result<Result<MultiValue, Stop>> {
    let standard = crate::standard::functions(lua)?;
    let exit = standard.raw_get::<Value>("exit")?;
    let collectgarbage = standard.raw_get::<Value>("collectgarbage")?;
    // On the heap: if putting the thread's hook back fails (no memory left), the hook may still
    // fire and must then find a live `Limits` (not running: it returns at once), so the box is
    // leaked rather than freed.
    let mut limits = Box::new(Limits {
        deadline: Instant::now().checked_add(timeout),
        exit: match exit {
            Value::Function(exit) => c_function(lua, &exit)?,
            _ => None,
        },
        collectgarbage: match collectgarbage {
            Value::Function(function) => c_function(lua, &function)?,
            _ => None,
        },
        generational_before: collector.generational_before.get(),
        stop: None,
        hook_ran: false,
        running: true,
    });
    let protected = protected_call(lua)?;
    // Calling a Lua function fires the call hook, unless Lua runs no hooks here.
    let probe: Function = crate::standard::cached(lua, &HOOK_PROBE)?;
    // From here to `uninstall` nothing returns early: the registry points at `limits`.
    let previous = install(lua, &mut limits)?;
    let probed = probe.call::<()>(());
    let ran = match (probed, limits.hook_ran) {
        (Ok(()), true) => protected.call::<MultiValue>((chunk, args)),
        (Ok(()), false) => {
            limits.stop = Some(Stop::NoHooks);
            Ok(MultiValue::new())
        }
        (Err(error), _) => Err(error),
    };
    limits.running = false;
    if let Err(error) = uninstall(lua, previous) {
        Box::leak(limits);
        return Err(error);
    }
    // A last look at the clock: a top level whose last call into C outlasted the deadline.
    if limits.stop.is_none()
        && limits
            .deadline
            .is_some_and(|deadline| Instant::now() > deadline)
    {
        limits.stop = Some(Stop::Timeout { stopped_at: None });
    }
    collector
        .generational_before
        .set(limits.generational_before);
    if let Some(stop) = limits.stop {
        return Ok(Err(stop));
    }
    let mut ran = ran?.into_iter();
    match ran.next() {
        Some(Value::Boolean(true)) => Ok(Ok(ran.collect())),
        _ => Ok(Err(Stop::Error {
            message: match ran.next() {
                Some(Value::String(message)) => message.to_string_lossy(),
                _ => "(error object is not a string)".to_owned(),
            },
        })),
    }
}

/// `function(chunk, ...) return xpcall(chunk, handler, ...) end` with `lua.c`'s message
/// handler: an error value that is not a string shows through its `__tostring`, or as its type.
/// Compiled once per state; written for Lua 5.1, whose `xpcall` passes no arguments.
fn protected_call(lua: &Lua) -> mlua::Result<Function> {
    crate::standard::cached(lua, &PROTECTED_CALL)
}

/// The C function behind `function`, if it is one.
fn c_function(lua: &Lua, function: &Function) -> mlua::Result<Option<ffi::lua_CFunction>> {
    let mut c_function = None;
    // SAFETY: the closure runs in a C frame whose stack holds exactly the one argument, and
    // only reads it.
    unsafe {
        lua.exec_raw::<()>(function, |state| {
            c_function = ffi::lua_tocfunction(state, 1);
        })?;
    }
    Ok(c_function)
}

/// The hook a thread had before: function, mask and count.
type Hook = (Option<ffi::lua_Hook>, c_int, c_int);

/// Points the registry at `limits` and sets the hook on the running thread; returns the hook
/// it replaces. `limits` must stay where it is until [`uninstall`].
fn install(lua: &Lua, limits: &mut Limits) -> mlua::Result<Hook> {
    let limits = limits as *mut Limits as *mut c_void;
    // SAFETY: the closure runs in a C frame on the thread that then calls the top level, with
    // room for the two values it pushes; rawset pops them. The pointer stays valid until
    // `uninstall` removes it from the registry, which the caller does before `limits` is freed
    // (and when that fails, the caller never frees it).
    let mut previous = (None, 0, 0);
    unsafe {
        lua.exec_raw::<()>((), |state| {
            previous = (
                ffi::lua_gethook(state),
                ffi::lua_gethookmask(state),
                ffi::lua_gethookcount(state),
            );
            ffi::lua_pushlightuserdata(state, &LIMITS_KEY as *const u8 as *mut c_void);
            ffi::lua_pushlightuserdata(state, limits);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
            ffi::lua_sethook(
                state,
                Some(hook),
                ffi::LUA_MASKCOUNT | ffi::LUA_MASKCALL,
                CHECK_EVERY,
            );
        })?;
    }
    Ok(previous)
}

/// Forgets the running limits and gives the thread its previous hook back.
fn uninstall(lua: &Lua, (function, mask, count): Hook) -> mlua::Result<()> {
    // SAFETY: as in `install`, on the same thread.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_pushlightuserdata(state, &LIMITS_KEY as *const u8 as *mut c_void);
            ffi::lua_pushnil(state);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
            ffi::lua_sethook(state, function, mask, count);
        })
    }
}

/// The hook: on a count event, stops the run once the deadline has passed; on a call event,
/// stops a call to `os.exit`.
///
/// SAFETY (invariant): Lua calls it with room for `LUA_MINSTACK` values. It owns no Rust value
/// that needs dropping when `lua_error` unwinds out of it: what it records is moved into the
/// `Limits` the registry points at, which lives in `call_limited`'s frame until the hook is
/// uninstalled.
unsafe extern "C-unwind" fn hook(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    ffi::lua_pushlightuserdata(state, &LIMITS_KEY as *const u8 as *mut c_void);
    ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
    let limits = ffi::lua_touserdata(state, -1) as *mut Limits;
    ffi::lua_pop(state, 1);
    let Some(limits) = limits.as_mut() else {
        // A coroutine created by a top level whose run is over.
        ffi::lua_sethook(state, None, 0, 0);
        return;
    };
    if !limits.running {
        return;
    }
    limits.hook_ran = true;
    // Every count event looks at the clock, and so does every call: a call into C can take
    // long without running a single Lua instruction.
    if limits.stop.is_none()
        && limits
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    {
        limits.stop = Some(Stop::Timeout {
            stopped_at: current_line(state, ar),
        });
        ffi::lua_pushstring(state, c"the new top level ran out of time".as_ptr());
        ffi::lua_error(state);
    }
    if (*ar).event == ffi::LUA_HOOKCOUNT {
        // A top level that caught the error with `pcall` is stopped again.
        if limits.stop.is_some() {
            ffi::lua_pushstring(state, c"the new top level ran out of time".as_ptr());
            ffi::lua_error(state);
        }
    } else {
        // A call (or tail call): is it `os.exit`, or `collectgarbage` switching modes?
        ffi::lua_getinfo(state, c"f".as_ptr(), ar);
        let called = ffi::lua_tocfunction(state, -1).map(|f| f as usize);
        ffi::lua_pop(state, 1);
        if called.is_none() {
            return;
        }
        if called == limits.collectgarbage.map(|f| f as usize) {
            record_collector_mode(state, ar, limits);
            return;
        }
        if called != limits.exit.map(|f| f as usize) {
            return;
        }
        // Level 1 is the function that called `os.exit`.
        ffi::luaL_where(state, 1);
        ffi::lua_pushstring(
            state,
            c"os.exit called by the new top level: a reload never ends the program".as_ptr(),
        );
        ffi::lua_concat(state, 2);
        limits.stop = Some(Stop::Exit {
            message: lossy(ffi::lua_tostring(state, -1)),
        });
        ffi::lua_error(state);
    }
}

/// Before a call of `collectgarbage("incremental")` or `collectgarbage("generational")`, the
/// first of the run, records whether the collector is generational now. Lua tells the mode only
/// by switching it: to incremental, and back to generational if it was (a full collection,
/// paid only by a top level that switches modes itself).
///
/// SAFETY (invariant): `ar` is the hook's activation record of the `collectgarbage` call, whose
/// first argument lua_getlocal pushes (or nothing, returning NULL, when there is none).
unsafe fn record_collector_mode(
    state: *mut ffi::lua_State,
    ar: *mut ffi::lua_Debug,
    limits: &mut Limits,
) {
    // Only Lua 5.4 has modes that a failed reload would need to put back.
    if !cfg!(feature = "lua54") || limits.generational_before.is_some() {
        return;
    }
    if ffi::lua_getlocal(state, ar, 1).is_null() {
        return;
    }
    let switches_mode = ffi::lua_type(state, -1) == ffi::LUA_TSTRING
        && matches!(
            CStr::from_ptr(ffi::lua_tostring(state, -1)).to_bytes(),
            b"incremental" | b"generational"
        );
    ffi::lua_pop(state, 1);
    if switches_mode {
        limits.generational_before = Some(switch_to_incremental_and_back(state));
    }
}

/// Whether the collector is generational, found by switching it to incremental and back.
///
/// SAFETY (invariant): `state` is a running Lua 5.4 thread; lua_gc with a mode raises no error.
#[cfg(feature = "lua54")]
unsafe fn switch_to_incremental_and_back(state: *mut ffi::lua_State) -> bool {
    let generational = ffi::lua_gc(state, ffi::LUA_GCINC, 0, 0, 0) == ffi::LUA_GCGEN;
    if generational {
        ffi::lua_gc(state, ffi::LUA_GCGEN, 0, 0);
    }
    generational
}

/// Lua before 5.4 has one mode: never called there.
#[cfg(not(feature = "lua54"))]
unsafe fn switch_to_incremental_and_back(_state: *mut ffi::lua_State) -> bool {
    false
}

/// `source:line` where the top level was when the hook fired: the innermost running Lua
/// function that is not hotlua's own (its staging `__index`, which the top level's global
/// reads call), found up the stack from the hook's level.
///
/// SAFETY (invariant): called from the hook, with room for `LUA_MINSTACK` values; `lua_getstack`
/// fills `frame` for each level it returns 1 for, and `lua_getinfo` reads only that.
unsafe fn current_line(state: *mut ffi::lua_State, _: *mut ffi::lua_Debug) -> Option<String> {
    let mut frame: ffi::lua_Debug = std::mem::zeroed();
    let mut level = 0;
    while ffi::lua_getstack(state, level, &mut frame) == 1 {
        level += 1;
        if ffi::lua_getinfo(state, c"Sl".as_ptr(), &mut frame) == 0 || frame.currentline <= 0 {
            continue;
        }
        if CStr::from_ptr(frame.source)
            .to_bytes()
            .starts_with(b"=hotlua")
        {
            continue;
        }
        let source = lossy(frame.short_src.as_ptr());
        return Some(format!("{source}:{}", frame.currentline));
    }
    None
}

/// A C string as Rust text.
///
/// SAFETY (invariant): `text` is null or a NUL-terminated string alive for the call.
unsafe fn lossy(text: *const std::ffi::c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    CStr::from_ptr(text).to_string_lossy().into_owned()
}

/// An empty Lua function: calling it fires the call hook, unless Lua runs no hooks there.
pub(crate) const HOOK_PROBE: Chunk = Chunk {
    name: "=hotlua hook probe",
    source: "return function() end",
};

/// See [`protected_call`].
pub(crate) const PROTECTED_CALL: Chunk = Chunk {
    name: "=hotlua protected call",
    source: r##"
        return function(chunk, ...)
        local args, n = { ... }, select("#", ...)
        -- LuaJIT's compiled loops never call hooks: the limits need the interpreter. (Inside
        -- a `__gc` metamethod LuaJIT refuses to switch, and runs no hook either.)
        local jit_turned_off = jit and jit.status and jit.status() and pcall(jit.off)
        local function finish(...)
          if jit_turned_off then jit.on() end
          return ...
        end
        return finish(xpcall(function() return chunk(unpack(args, 1, n)) end, function(e)
          if type(e) == "string" then return e end
          local mt = getmetatable(e)
          if type(mt) == "table" and mt.__tostring then return tostring(e) end
          return "(error object is a " .. type(e) .. " value)"
        end))
        end
        "##,
};
