//! Lua 5.1 forms: `module(...)` and `setfenv` environments (Lua 5.1 and LuaJIT only).

mod common;
use common::Fixture;

#[test]
#[cfg_attr(
    not(any(feature = "lua51", feature = "luajit")),
    ignore = "module() exists only in Lua 5.1 and LuaJIT"
)]
fn module_style_module_keeps_its_table_and_locals() {
    let f = Fixture::new();
    let source = |step: i64, version: &str| {
        format!(
            "module(..., package.seeall)\nlocal count = 0\n\
             function inc() count = count + {step} return count end\nversion = '{version}'"
        )
    };
    f.write("mod51", &source(1, "v1"));
    f.lua::<()>("local m = require 'mod51'; m.inc(); m.inc(); old = m; old.runtime = true");
    f.write("mod51", &source(10, "v2"));
    f.reloader
        .reload(
            &["mod51"],
            &hotlua::Options::with_data(hotlua::DataPolicy::Overwrite),
        )
        .unwrap();
    assert!(f.lua::<bool>(
        "local m = require 'mod51' \
         return m == old and mod51 == old and m.inc() == 12 and m.version == 'v2' \
         and m.runtime == true and m._M == old"
    ));
}

#[test]
#[cfg_attr(
    not(any(feature = "lua51", feature = "luajit")),
    ignore = "setfenv exists only in Lua 5.1 and LuaJIT"
)]
fn functions_with_a_setfenv_environment_run_in_their_new_environment() {
    let f = Fixture::new();
    let source = |greeting: &str| {
        format!(
            "local env = setmetatable({{ greeting = '{greeting}' }}, {{ __index = _G }})\n\
             local M = {{}}\nfunction M.greet() return greeting .. '!' end\n\
             setfenv(M.greet, env)\nreturn M"
        )
    };
    f.write("m", &source("hello"));
    f.lua::<()>("m = require 'm'; held = m.greet");
    f.write("m", &source("bonjour"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, String)>("return m.greet(), held()"),
        ("bonjour!".into(), "bonjour!".into())
    );
    // The new top level's global writes stayed staged: nothing leaked into _G.
    assert!(f.lua::<bool>("return greeting == nil and M == nil"));
}
