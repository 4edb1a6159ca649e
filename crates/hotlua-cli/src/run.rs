//! `hotlua run`: run a script the way `lua.c` (the `lua5.4` program) runs one.

use std::borrow::Cow;
use std::cell::Cell;
use std::ffi::{c_int, CString, OsStr};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::ptr;

use anyhow::{anyhow, Context, Result};
use mlua::{ffi, Lua, MultiValue, Value};

use crate::cli::{Cli, Command, RunArgs};

/// Runs the command line. Errors of the script itself are reported here, like `lua.c` does
/// (`lua: message` on stderr, exit status 1); an `Err` is a failure of hotlua itself.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_script(&args),
    }
}

fn run_script(args: &RunArgs) -> Result<ExitCode> {
    // SAFETY: `unsafe_new` opens every standard library, `debug` included, and lets `require`
    // load C modules through `package.cpath`; Lua code using them (or any C module) can break
    // the memory safety of the state. That is sound here: the state runs only the user's own
    // script, which the user trusts exactly as much as when running it with `lua5.4`, and that
    // is the whole point of this command. No host data with invariants the script could break
    // lives in the state.
    let lua = unsafe { Lua::unsafe_new() };
    // Like lua5.4, answer a refused allocation with "not enough memory", never an abort.
    hotlua::recover_from_allocation_failure(&lua).or_context("cannot set up the allocator")?;
    let weak = lua.weak();
    let result = run_in(&lua, args);
    // Close the state now, as `lua.c` ends with `lua_close`: that runs every pending `__gc`
    // finalizer before the process exits. mlua closes the state when its last `Lua` handle
    // drops; `run_in` has dropped every other handle (the reloader's included).
    drop(lua);
    if weak.try_upgrade().is_some() {
        eprintln!(
            "hotlua: warning: the Lua state is still referenced at exit, so it was not closed \
             and __gc finalizers did not run"
        );
    }
    result
}

/// Everything that holds a `Lua` handle lives in here, so it is gone when this returns.
fn run_in(lua: &Lua, args: &RunArgs) -> Result<ExitCode> {
    install_warn_function(lua);
    let reloader = hotlua::Reloader::new(lua).or_context("cannot set up hot reload")?;
    reloader
        .install()
        .or_context("cannot install the `hotlua` Lua module")?;
    reloader.set_json_log(args.json);
    let dirs = watch_dirs(args);
    if !dirs.is_empty() {
        reloader.watch(&dirs).map_err(|err| anyhow!("{err}"))?;
    }
    let script_args = create_arg_table(lua, args).or_context("cannot create the `arg` table")?;
    Ok(match run_main_chunk(lua, &args.script, script_args)? {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // lua.c's `l_message`. The message may hold any bytes: write them as they are.
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(b"lua: ");
            let _ = stderr.write_all(&message);
            let _ = stderr.write_all(b"\n");
            let _ = stderr.flush();
            ExitCode::FAILURE
        }
    })
}

/// `context` for mlua's and hotlua's errors, which anyhow cannot hold: they are not `Send`
/// (they may carry Lua values), so only their text is kept.
trait OrContext<T> {
    fn or_context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrContext<T> for std::result::Result<T, E> {
    fn or_context(self, what: &str) -> Result<T> {
        self.map_err(|err| anyhow!("{what}: {err}"))
    }
}

/// The folders to watch: every `--watch DIR`, and with `-w` the folder of the script.
fn watch_dirs(args: &RunArgs) -> Vec<PathBuf> {
    let mut dirs = args.watch.clone();
    if args.watch_script_dir {
        let folder = Path::new(&args.script)
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        dirs.push(folder.to_path_buf());
    }
    dirs
}

/// Sets the global `arg` as lua.c's `createargtable` does (`arg[0]` = the script, `arg[1..n]` =
/// its arguments, `arg[-1]` = this program) and returns the arguments for `...`.
fn create_arg_table(lua: &Lua, args: &RunArgs) -> mlua::Result<MultiValue> {
    let table = lua.create_table_with_capacity(args.args.len(), 2)?;
    if let Some(program) = std::env::args_os().next() {
        table.raw_set(-1, lua.create_string(os_bytes(&program))?)?;
    }
    table.raw_set(0, lua.create_string(os_bytes(&args.script))?)?;
    let mut varargs = MultiValue::with_capacity(args.args.len());
    for (i, arg) in args.args.iter().enumerate() {
        let arg = lua.create_string(os_bytes(arg))?;
        table.raw_set(i + 1, &arg)?;
        varargs.push_back(Value::String(arg));
    }
    lua.globals().set("arg", table)?;
    Ok(varargs)
}

/// Loads `script` with `luaL_loadfile` (so a `#` first line is skipped with line numbers kept,
/// a binary chunk is accepted, the chunk is named `@script`, and a missing file reads
/// `cannot open script`) and calls it with `args` under lua.c's message handler.
///
/// Returns `Ok(Err(message))` when the script failed to load or raised an error: the text
/// `lua.c` prints after `lua: `, traceback included.
fn run_main_chunk(lua: &Lua, script: &OsStr, args: MultiValue) -> Result<Result<(), Vec<u8>>> {
    let path = if script == "-" {
        None // stdin, as lua.c does for `lua -`
    } else {
        Some(CString::new(os_bytes(script)).context("the script path contains a NUL byte")?)
    };
    let path_ptr = path.as_ref().map_or(ptr::null(), |path| path.as_ptr());
    let mut failure = None;
    // SAFETY: the closure runs in a C function frame whose whole stack is the arguments
    // `exec_raw` pushed (one per `args` value), calls only the C API on that state, within
    // the stack space Lua guarantees a C function, and leaves the stack empty. Errors of the
    // script are caught by `lua_pcall` and load errors are returned by `luaL_loadfilex`; the
    // only errors that could still `longjmp` out (out of memory while naming the chunk or
    // converting a number message) skip no destructor: the closure owns nothing, it only
    // borrows `failure` and copies `path_ptr`.
    unsafe {
        lua.exec_raw::<()>(args, |state| {
            let nargs = ffi::lua_gettop(state);
            let mut status = ffi::luaL_loadfilex(state, path_ptr, ptr::null());
            if status == ffi::LUA_OK {
                // lua.c's `docall`: message handler, then the chunk, then its arguments.
                ffi::lua_insert(state, 1);
                ffi::lua_pushcfunction(state, msghandler);
                ffi::lua_insert(state, 1);
                status = ffi::lua_pcall(state, nargs, 0, 1);
            }
            if status != ffi::LUA_OK {
                let mut len = 0;
                let msg = ffi::lua_tolstring(state, -1, &mut len);
                failure = Some(if msg.is_null() {
                    b"(error object is not a string)".to_vec()
                } else {
                    std::slice::from_raw_parts(msg.cast::<u8>(), len).to_vec()
                });
            }
            ffi::lua_settop(state, 0);
        })
        .or_context("cannot run the script")?;
    }
    Ok(failure.map_or(Ok(()), Err))
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

/// The warning function of `luaL_newstate` (lauxlib.c `warnfoff`/`warnfon`/`warnfcont`), which
/// `lua5.4` uses: warnings are off until `warn("@on")`, then print `Lua warning: ...` on stderr.
fn install_warn_function(lua: &Lua) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Off,
        On,
        /// Inside a message sent in pieces (`warn("a", "b")`).
        Continued,
    }
    let mode = Cell::new(Mode::Off);
    lua.set_warning_function(move |_, msg, to_continue| {
        let mut stderr = std::io::stderr().lock();
        match mode.get() {
            Mode::Continued => {}
            current => {
                if !to_continue {
                    if let Some(control) = msg.strip_prefix('@') {
                        match control {
                            "on" => mode.set(Mode::On),
                            "off" => mode.set(Mode::Off),
                            _ => {}
                        }
                        return Ok(());
                    }
                }
                if current == Mode::Off {
                    return Ok(());
                }
                let _ = stderr.write_all(b"Lua warning: ");
            }
        }
        let _ = stderr.write_all(msg.as_bytes());
        if to_continue {
            mode.set(Mode::Continued);
        } else {
            let _ = stderr.write_all(b"\n");
            mode.set(Mode::On);
        }
        Ok(())
    });
}

/// The bytes of a command-line argument, as `lua.c` passes them to Lua.
fn os_bytes(s: &OsStr) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Cow::Borrowed(s.as_bytes())
    }
    #[cfg(not(unix))]
    {
        match s.to_string_lossy() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }
}
