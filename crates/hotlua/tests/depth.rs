//! Data of any depth loads, checks and reloads, or fails with a message and changes nothing: no
//! traversal of Lua data recurses on the native stack (issue "Never crash, never hang", 1).

mod common;

use common::Fixture;

/// A module whose top level builds a chain of `depth` nested tables at `M.deep`.
fn table_chain(depth: usize, version: &str) -> String {
    format!(
        "local M = {{ version = '{version}' }}\nlocal t = {{}}\nM.deep = t\n\
         for i = 1, {depth} do t.next = {{ i = i }}; t = t.next end\n\
         function M.get() return 'v{version}' end\nreturn M"
    )
}

const CHAIN_INTACT: &str = "local n, t = 0, deep.deep while t.next do n = n + 1; t = t.next end \
     return n == DEPTH and deep.deep.next == first";

#[test]
fn hundred_thousand_level_table_chain_loads_checks_and_reloads() {
    let f = Fixture::new();
    f.write("deep", &table_chain(100_000, "1"));
    f.lua::<()>("DEPTH = 100000; deep = require 'deep'; get = deep.get; first = deep.deep.next");
    f.write("deep", &table_chain(100_000, "2"));
    f.reloader
        .check(&["deep"], &hotlua::Options::default())
        .unwrap();
    f.reload_ok("deep");
    assert!(f.lua::<bool>(CHAIN_INTACT));
    assert_eq!(f.lua::<String>("return get()"), "v2");
}

/// Once, on the default Lua: a million tables take about a minute to plan in a debug build.
#[cfg(feature = "lua54")]
#[test]
fn million_level_table_chain_loads_and_reloads_or_fails_cleanly() {
    let f = Fixture::new();
    f.write("deep", &table_chain(1_000_000, "1"));
    f.lua::<()>("DEPTH = 1000000; deep = require 'deep'; get = deep.get; first = deep.deep.next");
    f.write("deep", &table_chain(1_000_000, "2"));
    match f.reload("deep") {
        Ok(_) => assert_eq!(f.lua::<String>("return get()"), "v2"),
        Err(error) => {
            assert!(error.to_string().contains("'deep'"), "{error}");
            assert_eq!(f.lua::<String>("return get()"), "v1");
        }
    }
    assert!(f.lua::<bool>(CHAIN_INTACT));
}

#[test]
fn long_chain_of_closures_reloads() {
    let f = Fixture::new();
    let source = |step: i64| {
        format!(
            "local f = function() return 0 end\n\
             for i = 1, 200000 do local g = f; f = function() return g() + {step} end end\n\
             return {{ f = f }}"
        )
    };
    f.write("chain", &source(1));
    f.lua::<()>("chain = require 'chain'; held = chain.f");
    assert_eq!(f.lua::<i64>("return chain.f()"), 200_000);
    f.write("chain", &source(2));
    f.reload_ok("chain");
    assert_eq!(
        f.lua::<(i64, i64)>("return chain.f(), held()"),
        (400_000, 400_000)
    );
}
