//! Hostile calls: wrong arguments raise like Lua's own functions, impossible module names and
//! `on_reload` hooks that change the module never leave a half-done reload.

mod common;
use common::Fixture;
use hotlua::{Error, Options};

/// `pcall(code)`'s error message, with the chunk's position prefix `[string "..."]:1: ` cut.
fn raised(f: &Fixture, code: &str) -> String {
    let (ok, message): (bool, String) = f.lua(&format!(
        "local hotlua = require 'hotlua'\nreturn pcall(function() {code} end)"
    ));
    assert!(!ok, "{code} did not raise");
    let (position, rest) = message.split_once(": ").expect("no position");
    assert!(position.ends_with(":2"), "not the caller's line: {message}");
    rest.to_owned()
}

#[test]
fn wrong_argument_types_raise_like_lua() {
    let f = Fixture::new();
    assert_eq!(
        raised(&f, "hotlua.reload()"),
        "bad argument #1 to 'reload' (string or table expected, got no value)"
    );
    assert_eq!(
        raised(&f, "hotlua.reload(nil)"),
        "bad argument #1 to 'reload' (string or table expected, got nil)"
    );
    assert_eq!(
        raised(&f, "hotlua.check(42)"),
        "bad argument #1 to 'check' (string or table expected, got number)"
    );
    assert_eq!(
        raised(&f, "hotlua.reload({ 'a', 3 })"),
        "bad argument #1 to 'reload' (module name expected at index 2, got number)"
    );
    assert_eq!(
        raised(&f, "hotlua.reload('m', 'fast')"),
        "bad argument #2 to 'reload' (table expected, got string)"
    );
    assert_eq!(
        raised(&f, "hotlua.on_reload()"),
        "bad argument #1 to 'on_reload' (function expected, got no value)"
    );
    assert_eq!(
        raised(&f, "hotlua.policy(1, 'keep')"),
        "bad argument #1 to 'policy' (string expected, got number)"
    );
}

/// Failures that are not about an argument raise strings too, after the caller's position, as
/// Lua's own functions do, never mlua's error object (a userdata): a host that passes errors
/// between states (skynet) cannot pass a userdata.
#[cfg(feature = "watch")]
#[test]
fn failures_raise_strings_at_the_callers_line() {
    let f = Fixture::new();
    let (kind, _): (String, mlua::Value) =
        f.lua("local ok, e = pcall(require('hotlua').watch, '/no/such/folder') return type(e), e");
    assert_eq!(kind, "string");
    let message = raised(&f, "hotlua.watch('/no/such/folder')");
    assert!(message.contains("/no/such/folder"), "{message}");
}

#[test]
fn unknown_option_names_and_values_are_refused() {
    let f = Fixture::new();
    assert_eq!(
        raised(&f, "hotlua.reload('m', { data = 'bogus' })"),
        "bad argument #2 to 'reload' (unknown data policy 'bogus' (expected \"keep\", \"overwrite\" or \"merge3\"))"
    );
    assert_eq!(
        raised(&f, "hotlua.reload('m', { dta = 'keep' })"),
        "bad argument #2 to 'reload' (unknown option 'dta' (expected \"data\", \"timeout\" or \"engine\"))"
    );
    assert_eq!(
        raised(&f, "hotlua.reload('m', { engine = 'fast' })"),
        "bad argument #2 to 'reload' (unknown engine 'fast' (expected \"inplace\" or \"walk\"))"
    );
    assert_eq!(
        raised(&f, "hotlua.check('m', { timeout = -1 })"),
        "bad argument #2 to 'check' (option 'timeout' must be a positive number of seconds, got -1)"
    );
    assert_eq!(
        raised(&f, "hotlua.policy('m', 'sometimes')"),
        "bad argument #2 to 'policy' (unknown data policy 'sometimes' (expected \"keep\", \"overwrite\" or \"merge3\"))"
    );
}

#[test]
fn names_require_could_never_load_are_refused() {
    let f = Fixture::new();
    f.write("m", "return {}");
    for name in ["", "..m", "m.", ".m", "a..b", "m\0x"] {
        let error = f.reloader.reload(&[name], &Options::default()).unwrap_err();
        assert!(matches!(error, Error::Request(_)), "{name:?}: {error:?}");
    }
    let (ok, message): (mlua::Value, String) = f.lua("return require('hotlua').reload('a..b')");
    assert_eq!(ok, mlua::Value::Nil);
    assert!(message.contains("\"a..b\""), "{message}");
    assert!(f.lua::<bool>("return package.loaded.m == nil"));
}

#[test]
fn unlimited_timeout_is_accepted() {
    let f = Fixture::new();
    f.write("m", "return { v = 1 }");
    f.lua::<()>("m = require 'm'");
    let applied: bool = f.lua(
        "return require('hotlua').reload('m', { timeout = math.huge, data = 'keep' }).applied",
    );
    assert!(applied);
}

#[test]
fn hook_that_changes_the_module_before_it_is_applied_gets_a_fresh_plan() {
    let f = Fixture::new();
    f.write(
        "m",
        "local M = { config = { a = 1 } }\nfunction M.get() return M.config.a end\nreturn M",
    );
    f.lua::<()>(
        "m = require 'm'\n\
         require('hotlua').on_reload(function(phase)\n\
           if phase == 'before' then m.config = nil end\n\
         end)",
    );
    f.write(
        "m",
        "local M = { config = { a = 2 } }\nfunction M.get() return M.config.a * 10 end\nreturn M",
    );
    f.reload_ok("m");
    // Planned before the hook ran, the merge would have gone into the old `config` table the
    // hook removed, and `m.get()` would index nil.
    assert_eq!(f.lua::<i64>("return m.get()"), 20);
}

#[test]
fn the_programs_globals_do_not_change_what_the_api_does() {
    let f = Fixture::new();
    f.write("m", "local M = {}\nfunction M.f() return 1 end\nreturn M");
    f.lua::<()>("m = require 'm'\nhotlua = require 'hotlua'\nreal_exit = os.exit");
    f.write("m", "local M = {}\nfunction M.f() return 2 end\nreturn M");
    // A program's own `select`, `error`, `type`, `unpack`, `os.exit`... are its business.
    f.lua::<()>(
        "select = function() return 0 end\n\
         error = function() end\n\
         type = function() return 'nil' end\n\
         tostring = function() return '?' end\n\
         getmetatable = function() end\n\
         xpcall = function() return false, 'no' end\n\
         pcall = function() return false, 'no' end\n\
         table.unpack = function() end\n\
         next = function() end\n\
         rawequal = function() return true end\n\
         rawget = function() end\n\
         rawset = function() end\n\
         os.exit = function(code) return real_exit(code) end",
    );
    let (applied, now): (bool, i64) =
        f.lua("local report = hotlua.reload('m')\nreturn report.applied, m.f()");
    assert!(applied);
    assert_eq!(now, 2);
    // Bad arguments still raise (the program's `error` does nothing).
    let error = f.lua.load("hotlua.reload()").exec().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("bad argument #1 to 'reload' (string or table expected, got no value)"),
        "{error}"
    );
    // The program's wrapper of `os.exit` is still refused to a new top level (were it not,
    // this test process would end here with status 3).
    f.write("m", "os.exit(3)\nreturn {}");
    let (ok, message): (mlua::Value, String) = f.lua("return hotlua.reload('m')");
    assert_eq!(ok, mlua::Value::Nil);
    assert!(
        message.contains("os.exit called by the new top level"),
        "{message}"
    );
}

#[test]
fn changing_the_upvalues_of_hotlua_functions_cannot_crash() {
    let f = Fixture::with(unsafe { mlua::Lua::unsafe_new() });
    f.write("m", "return { v = 1 }");
    // Every function hotlua hands to Lua, and the metamethods it installs.
    let answers: Vec<String> = f.lua(
        "local hotlua = require 'hotlua'\n\
         local m = require 'm'\n\
         local functions = {}\n\
         for name, f in pairs(hotlua) do functions[#functions + 1] = f end\n\
         functions[#functions + 1] = getmetatable(hotlua).__index\n\
         functions[#functions + 1] = getmetatable(package.loaded).__newindex\n\
         local answers = {}\n\
         for _, f in ipairs(functions) do\n\
           answers[#answers + 1] = tostring((debug.getupvalue(f, 1)))\n\
           for i = 1, 3 do debug.setupvalue(f, i, 0) end\n\
         end\n\
         hotlua.now(); hotlua.poll(); hotlua.sleep(0)\n\
         assert(hotlua.reload('m').applied)\n\
         assert(hotlua.check('m').applied == false)\n\
         assert(hotlua.reloading == false)\n\
         package.loaded.x = 1\n\
         return answers",
    );
    assert!(answers.len() >= 10, "{answers:?}");
    // None has an upvalue a program could change.
    assert!(answers.iter().all(|a| a == "nil"), "{answers:?}");
}
