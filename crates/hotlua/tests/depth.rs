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

/// Each closure of the chain returns the next one and its version's step: following the chain
/// needs no deep recursion in Lua (Lua 5.1 and LuaJIT allow only about 200 C levels).
#[test]
fn long_chain_of_closures_reloads() {
    let f = Fixture::new();
    let source = |step: i64| {
        format!(
            "local f = function() return nil, {step} end\n\
             for i = 1, 200000 do local g = f; f = function() return g, {step} end end\n\
             return {{ f = f }}"
        )
    };
    let sum = "local f, total = ..., 0 \
               while f do local step; f, step = f(); total = total + step end \
               return total";
    f.write("chain", &source(1));
    f.lua::<()>(&format!(
        "chain = require 'chain'; held = chain.f; sum = function(...) {sum} end"
    ));
    assert_eq!(f.lua::<i64>("return sum(chain.f)"), 200_001);
    f.write("chain", &source(2));
    match f.reload("chain") {
        Ok(_) => assert_eq!(
            f.lua::<(i64, i64)>("return sum(chain.f), sum(held)"),
            (400_002, 400_002)
        ),
        // mlua holds about 8000 handles on Lua 5.1 and LuaJIT, one per function planned.
        Err(error) if cfg!(any(feature = "lua51", feature = "luajit")) => {
            assert!(matches!(error, hotlua::Error::Plan { .. }), "{error}");
            assert_eq!(f.lua::<i64>("return sum(chain.f)"), 200_001);
        }
        Err(error) => panic!("{error}"),
    }
}

/// A data module of many records queues a merge per record: those wait in a Lua table, not as
/// mlua handles (about 8000 on Lua 5.1 and LuaJIT, about a million on 5.2+: a 50 MB module of
/// 700 000 records failed to plan on 5.4 before).
#[test]
fn wide_table_of_records_reloads() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local M = {{ items = {{}} }}\n\
             for i = 1, 20000 do M.items[i] = {{ id = i, tags = {{ '{tag}' }} }} end\n\
             function M.count() return #M.items, '{tag}' end\nreturn M"
        )
    };
    f.write("records", &source("a"));
    f.lua::<()>("records = require 'records'; first = records.items[1]; first.seen = true");
    f.write("records", &source("b"));
    f.reload_ok("records");
    assert_eq!(
        f.lua::<(i64, String, bool)>(
            "local n, tag = records.count(); return n, tag, records.items[1] == first and first.seen"
        ),
        (20_000, "b".into(), true)
    );
}

/// How many functions [`module_of_many_functions_reloads`] reloads. Lua 5.1 cannot share a
/// local between closures: each function has cells of its own, and each cell's join still
/// takes mlua handles (about 8000 in all there): 6 000 reload, 8 000 fail (4 000 failed while
/// each cell also held a Lua table of its holders).
const FUNCTIONS: usize = if cfg!(feature = "lua51") {
    5_000
} else {
    20_000
};

/// A module of 20 000 functions sharing its locals, every body edited: each function pair and
/// each write waits in a Lua list, not as mlua handles (about 8000 on Lua 5.1 and LuaJIT,
/// where a module of 1 400 functions failed to plan before).
#[test]
fn module_of_many_functions_reloads() {
    let f = Fixture::new();
    let source = |version: usize| {
        let mut lines = vec!["local M = {}\nlocal calls = 0".to_owned()];
        for i in 1..=FUNCTIONS {
            lines.push(format!(
                "function M.f{i}(x) calls = calls + 1 return x + {} end",
                version * 100_000 + i
            ));
        }
        lines.push("function M.calls() return calls end\nreturn M".to_owned());
        lines.join("\n")
    };
    f.write("wide", &source(1));
    f.lua::<()>(&format!(
        "wide = require 'wide'; held = wide.f{FUNCTIONS}; wide.f1(0)"
    ));
    f.write("wide", &source(2));
    let report = f.reload_ok("wide");
    assert_eq!(report.functions_replaced.len(), FUNCTIONS + 1);
    assert_eq!(
        f.lua::<(i64, i64, i64)>("return wide.f1(0), held(0), wide.calls()"),
        (200_001, 200_000 + FUNCTIONS as i64, 3)
    );
}
