//! What `lua.c`'s `pmain` does with a parsed command line: `-v`, the state with every standard
//! library, `arg`, `LUA_INIT`, `-e`/`-l`/`-W` in order, the script, then the REPL or standard
//! input; and at the end `lua_close`, so `__gc` finalizers run.

use std::ffi::{c_char, CStr, CString};
use std::io::IsTerminal;
use std::process::ExitCode;

use mlua::prelude::{LuaGcGenParams, LuaGcMode};
use mlua::{Function, IntoLua, Lua, MultiValue, Result, Table, Value};

use crate::bytes::os_bytes;
use crate::call::{self, docall, hotlua_error, load_file, load_string, Failed, Outcome};
use crate::lua_args::{Action, LuaArgs, Script};
use crate::{paths, repl, signal, warn};

/// The program name of `lua.c`'s messages (`lua: script.lua:1: boom`).
pub const PROGNAME: &str = "lua";

/// Runs `args` like `lua5.4` does and returns its exit status.
///
/// `prepare` runs once the state is set up, before any Lua code: it is how `hotlua run` adds
/// reloading. The function it may return is called before each line the REPL runs.
pub fn execute(
    args: &LuaArgs,
    prepare: impl FnOnce(&Lua) -> Result<Option<Function>>,
) -> Result<ExitCode> {
    if args.version {
        print_version();
    }
    signal::install().map_err(|err| hotlua_error("cannot handle SIGINT", err))?;
    // SAFETY: `unsafe_new` opens every standard library, `debug` included, and lets `require`
    // load C modules through `package.cpath`; Lua code using them (or any C module) can break
    // the memory safety of the state. That is sound here: the state runs only the user's own
    // program, which the user trusts exactly as much as when running it with `lua5.4`, and that
    // is the whole point of this command. No host data with invariants the program could break
    // lives in the state.
    let created = unsafe { Lua::unsafe_new() };
    // The handle `Lua::unsafe_new` returns runs a full collection when it drops, before the
    // state closes: at exit, finalizers would then run in collection order rather than the
    // reverse order of marking that `lua_close` gives (Lua manual §2.5.3), and an object a
    // finalizer creates would be finalized too. A clone closes the state without that
    // collection, as `lua.c`'s `lua_close` does; dropping the first handle now collects an
    // empty state.
    let lua = created.clone();
    drop(created);
    // Like lua5.4, answer a refused allocation with "not enough memory", never an abort.
    if let Err(error) = hotlua::recover_from_allocation_failure(&lua) {
        return Err(hotlua_error("cannot set up the allocator", error));
    }
    let weak = lua.weak();
    let result = run_in(&lua, args, prepare);
    // Close the state now, as `lua.c` ends with `lua_close`: that runs every pending `__gc`
    // finalizer before the process exits. mlua closes the state when its last `Lua` handle
    // drops; `run_in` has dropped every other handle.
    drop(lua);
    if weak.try_upgrade().is_some() {
        eprintln!(
            "hotlua: warning: the Lua state is still referenced at exit, so it was not closed \
             and __gc finalizers did not run"
        );
    }
    Ok(if result? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything that holds a `Lua` handle lives in here, so it is gone when this returns.
/// Returns whether the program succeeded.
fn run_in(
    lua: &Lua,
    args: &LuaArgs,
    prepare: impl FnOnce(&Lua) -> Result<Option<Function>>,
) -> Result<bool> {
    let version = lua_version(lua)?;
    if args.ignore_env {
        // Tells libraries to ignore environment variables, as lua.c does.
        lua.set_named_registry_value("LUA_NOENV", true)?;
    }
    paths::set(lua, &version, args.ignore_env)?;
    warn::install(lua);
    create_arg_table(lua, args)?;
    lua.gc_set_mode(LuaGcMode::Generational(LuaGcGenParams::default()));
    let before_line = prepare(lua)?;

    if !args.ignore_env && !handle_luainit(lua, &version)? {
        return Ok(false);
    }
    for action in &args.actions {
        let ok = match action {
            Action::Execute(code) => dostring(lua, &os_bytes(code), c"=(command line)")?,
            Action::Require(spec) => dolibrary(lua, &os_bytes(spec))?,
            Action::WarningsOn => {
                lua.warning("@on", false);
                true
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    if let Some(script) = &args.script {
        if !handle_script(lua, args, script)? {
            return Ok(false);
        }
    }
    if args.interactive {
        repl::run(lua, before_line.as_ref())?;
    } else if args.script.is_none() && !args.executes_statements() && !args.version {
        if std::io::stdin().is_terminal() {
            print_version();
            repl::run(lua, before_line.as_ref())?;
        } else {
            // Like lua.c, whose exit status ignores how standard input ran.
            dochunk(lua, load_file(lua, None)?, MultiValue::new())?;
        }
    }
    Ok(true)
}

/// `5.4` for Lua 5.4, from `_VERSION`.
fn lua_version(lua: &Lua) -> Result<String> {
    let version: String = lua.globals().get("_VERSION")?;
    Ok(version.trim_start_matches("Lua ").to_owned())
}

/// lua.c's `print_version`: `LUA_COPYRIGHT` of the Lua linked in.
fn print_version() {
    call::write_stdout(format!("{}\n", copyright()).as_bytes());
}

/// `Lua 5.4.9  Copyright (C) 1994-2026 Lua.org, PUC-Rio`, read from `lua_ident`, which
/// `lapi.c` defines as `"$LuaVersion: " LUA_COPYRIGHT " $$LuaAuthors: " LUA_AUTHORS " $"`.
fn copyright() -> String {
    extern "C" {
        // `extern const char lua_ident[]` in lua.h.
        static lua_ident: c_char;
    }
    // SAFETY: `lua_ident` is a NUL-terminated constant string of the linked Lua library.
    let ident = unsafe { CStr::from_ptr(&raw const lua_ident) }.to_string_lossy();
    ident
        .strip_prefix("$LuaVersion: ")
        .and_then(|rest| rest.split_once(" $"))
        .map_or_else(|| ident.to_string(), |(copyright, _)| copyright.to_owned())
}

/// lua.c's `createargtable`: `arg[0]` is the script, its arguments follow, and everything
/// before it (this program, `run` and its options, the Lua options) has negative indices.
/// Without a script, `arg[0]` is the program and the options are positive.
fn create_arg_table(lua: &Lua, args: &LuaArgs) -> Result<()> {
    let script = args.script.as_ref().map_or(0, |script| script.index);
    let table = lua.create_table_with_capacity(args.argv.len() - script, script + 1)?;
    for (i, arg) in args.argv.iter().enumerate() {
        table.raw_set(i as i64 - script as i64, lua.create_string(os_bytes(arg))?)?;
    }
    lua.globals().set("arg", table)
}

/// lua.c's `handle_luainit`: `LUA_INIT_5_4`, else `LUA_INIT`; `@file` runs a file, anything
/// else is a chunk named after the variable.
fn handle_luainit(lua: &Lua, version: &str) -> Result<bool> {
    let versioned = format!("LUA_INIT_{}", version.replace('.', "_"));
    let Some((name, init)) = [versioned.as_str(), "LUA_INIT"]
        .into_iter()
        .find_map(|name| Some((name, std::env::var_os(name)?)))
    else {
        return Ok(true);
    };
    let init = os_bytes(&init);
    match init.strip_prefix(b"@") {
        Some(file) => {
            let file = CString::new(file).map_err(|err| hotlua_error("LUA_INIT", err))?;
            dochunk(lua, load_file(lua, Some(&file))?, MultiValue::new())
        }
        None => {
            let name = CString::new(format!("={name}")).map_err(|err| hotlua_error(name, err))?;
            dostring(lua, &init, &name)
        }
    }
}

/// lua.c's `dostring`.
fn dostring(lua: &Lua, code: &[u8], name: &CStr) -> Result<bool> {
    dochunk(lua, load_string(lua, code, name)?, MultiValue::new())
}

/// lua.c's `dochunk`: runs a loaded chunk, printing what failed.
fn dochunk(lua: &Lua, chunk: Outcome<Function>, args: MultiValue) -> Result<bool> {
    let failure = match chunk {
        Ok(chunk) => docall(lua, chunk, args)?.err(),
        Err(message) => Some(message),
    };
    Ok(succeeded(failure))
}

/// Prints a failure as lua.c's `report` does; true when there was none.
fn succeeded(failure: Option<Failed>) -> bool {
    match failure {
        None => true,
        Some(message) => {
            call::report(Some(PROGNAME), &message);
            false
        }
    }
}

/// lua.c's `dolibrary` (5.4.6 and later): `-l g=mod` sets global `g` to `require "mod"`;
/// `-l mod` sets global `mod`, without any `-suffix` (`-l mod-v2` sets `mod`).
fn dolibrary(lua: &Lua, spec: &[u8]) -> Result<bool> {
    let (global, module) = match spec.iter().position(|&b| b == b'=') {
        Some(at) => (&spec[..at], &spec[at + 1..]),
        None => {
            let end = spec.iter().position(|&b| b == b'-').unwrap_or(spec.len());
            (&spec[..end], spec)
        }
    };
    let globals = lua.globals();
    let require: Value = globals.get("require")?;
    let module = lua.create_string(module)?.into_lua(lua)?;
    match docall(lua, require, MultiValue::from_iter([module]))? {
        Ok(mut results) => {
            let value = results.pop_front().unwrap_or(Value::Nil);
            globals.set(lua.create_string(global)?, value)?;
            Ok(true)
        }
        Err(message) => Ok(succeeded(Some(message))),
    }
}

/// lua.c's `handle_script`: loads the script and calls it with `arg[1]`, `arg[2]`, ... (read
/// from the global `arg` at that moment, as `pushargs` does).
fn handle_script(lua: &Lua, args: &LuaArgs, script: &Script) -> Result<bool> {
    let path = if script.stdin {
        None
    } else {
        let path = os_bytes(&args.argv[script.index]).into_owned();
        Some(CString::new(path).map_err(|err| hotlua_error("the script path", err))?)
    };
    let chunk = load_file(lua, path.as_deref())?;
    let script_args = match chunk {
        Ok(_) => match lua.globals().get::<Value>("arg")? {
            Value::Table(table) => script_arguments(&table)?,
            _ => return Ok(succeeded(Some(b"'arg' is not a table".to_vec()))),
        },
        Err(_) => MultiValue::new(),
    };
    dochunk(lua, chunk, script_args)
}

/// `arg[1]` to `arg[#arg]`.
fn script_arguments(arg: &Table) -> Result<MultiValue> {
    (1..=arg.len()?).map(|i| arg.raw_get(i)).collect()
}
