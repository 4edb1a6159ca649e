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
