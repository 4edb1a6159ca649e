//! The `hotlua` Lua API, module forms, batches, reentrancy and memory.

mod common;
use common::Fixture;

#[test]
fn reload_returns_a_report_table() {
    let f = Fixture::new();
    f.write("m", "return { f = function() return 1 end }");
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "return { f = function() return 2 end, g = function() end }",
    );
    assert!(f.lua::<bool>(
        "local r = require('hotlua').reload('m') \
         return r.applied == true and r.functions_replaced[1] == 'm.f' \
         and r.functions_added[1] == 'm.g' and r.modules[1].name == 'm' \
         and r.timings.total_ms >= 0 \
         and r.summary:match('^reloaded m in [%d.]+ ms: 2 functions') ~= nil"
    ));
}

/// The lists of functions become Lua strings only when read: by name, or by `pairs` where it
/// honours `__pairs`; either way the table then holds them as plain fields.
#[test]
fn the_report_lists_are_filled_in_when_read() {
    let f = Fixture::new();
    f.write(
        "m",
        "return { f = function() return 1 end, g = function() end }",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "return { f = function() return 2 end, h = function() end }",
    );
    let by_pairs = if cfg!(any(feature = "lua51", feature = "luajit")) {
        "local r = r2 local _ = r.functions_added"
    } else {
        "local r = r2"
    };
    assert!(f.lua::<bool>(&format!(
        "local hotlua = require('hotlua') \
         local r = hotlua.check('m') \
         assert(rawget(r, 'functions_replaced') == nil, 'filled in before it was read') \
         assert(getmetatable(r) ~= nil) \
         assert(r.functions_kept_deleted[1] == 'm.g') \
         assert(rawget(r, 'functions_replaced')[1] == 'm.f' and getmetatable(r) == nil) \
         assert(r.no_such_field == nil) \
         r2 = hotlua.check('m') \
         {by_pairs} \
         local seen, program_next = {{}}, next \
         next = function() error('the program next') end \
         for key, value in pairs(r) do seen[key] = value end \
         next = program_next \
         return seen.functions_added[1] == 'm.h' and seen.functions_replaced[1] == 'm.f' \
           and seen.functions_kept_deleted[1] == 'm.g' and seen.summary ~= nil"
    )));
}

#[test]
fn check_plans_without_applying() {
    let f = Fixture::new();
    f.write("m", "return { f = function() return 1 end }");
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { f = function() return 2 end, g = 1 }");
    assert!(f.lua::<bool>(
        "local r = require('hotlua').check('m') \
         return r.applied == false and r.functions_replaced[1] == 'm.f' \
         and m.f() == 1 and m.g == nil"
    ));
}

#[test]
fn reloading_is_true_only_while_the_new_top_level_runs() {
    let f = Fixture::new();
    // `probe` is the test's table: the top level's write to it is a side effect, not staged.
    f.write(
        "m",
        "probe[#probe + 1] = require('hotlua').reloading\nreturn {}",
    );
    f.lua::<()>("probe = {}; m = require 'm'");
    f.reload_ok("m");
    assert!(f.lua::<bool>(
        "return probe[1] == false and probe[2] == true and require('hotlua').reloading == false"
    ));
}

#[test]
fn on_reload_hooks_run_before_and_after_and_may_veto() {
    let f = Fixture::new();
    f.write("m", "return { v = function() return 1 end }");
    f.lua::<()>(
        "m = require 'm'; events = {}; veto = true \
         require('hotlua').on_reload(function(phase, report) \
           events[#events + 1] = phase .. ':' .. report.modules[1].name \
           if phase == 'before' and veto then return false, 'not now' end \
         end)",
    );
    f.write("m", "return { v = function() return 2 end }");
    let (ok, message): (mlua::Value, String) = f.lua("return require('hotlua').reload('m')");
    assert_eq!(ok, mlua::Value::Nil);
    assert!(message.contains("not now"), "{message}");
    assert!(message.contains("reload of 'm' vetoed"), "{message}");
    assert_eq!(f.lua::<i64>("return m.v()"), 1);
    f.lua::<()>("veto = false");
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.v()"), 2);
    assert_eq!(
        f.lua::<String>("return table.concat(events, ' ')"),
        "before:m before:m after:m"
    );
}

#[test]
fn batch_reload_resolves_cross_references_in_any_order() {
    let f = Fixture::new();
    f.write(
        "a",
        "local b = require 'b'\nreturn { f = function() return 'a1+' .. b.f() end }",
    );
    f.write("b", "return { f = function() return 'b1' end }");
    f.lua::<()>("a = require 'a'; b = require 'b'");
    f.write(
        "a",
        "local b = require 'b'\nlocal bf = b.f\nreturn { f = function() return 'a2+' .. bf() end }",
    );
    f.write("b", "return { f = function() return 'b2' end }");
    assert!(f.lua::<bool>("return require('hotlua').reload({ 'a', 'b' }) ~= nil"));
    // `a`'s new top level captured b.f while b was still old: the batch maps it to b's new f.
    assert_eq!(f.lua::<String>("return a.f()"), "a2+b2");
}

#[test]
fn module_reading_its_name_from_dots_and_dotted_names() {
    let f = Fixture::new();
    f.write(
        "game.units.orc",
        "local name = ...\nreturn { name = function() return name .. ' v1' end }",
    );
    f.lua::<()>("orc = require 'game.units.orc'");
    f.write(
        "game.units.orc",
        "local name = ...\nreturn { name = function() return name .. ' v2' end }",
    );
    f.reload_ok("game.units.orc");
    assert_eq!(f.lua::<String>("return orc.name()"), "game.units.orc v2");
}

#[test]
fn init_lua_module() {
    let f = Fixture::new();
    f.write("pkg.init", "return { v = function() return 1 end }");
    f.lua::<()>("pkg = require 'pkg'");
    f.write("pkg.init", "return { v = function() return 2 end }");
    let report = f.reload_ok("pkg");
    assert!(report.modules[0].file.ends_with("pkg/init.lua"));
    assert!(f.lua::<bool>("return pkg.v() == 2 and require('pkg') == pkg"));
}

#[test]
fn new_version_requiring_a_module_not_loaded_before() {
    let f = Fixture::new();
    f.write("m", "return { f = function() return 'alone' end }");
    f.write("helper", "return { word = 'helped' }");
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local helper = require 'helper'\nreturn { f = function() return helper.word end }",
    );
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m.f() == 'helped' and package.loaded.helper ~= nil"));
}

#[test]
fn reload_from_inside_a_function_of_the_module_finishes_in_old_code() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.run()\n  local before = '{tag}'\n  \
             local r = require('hotlua').reload('m')\n  \
             return before .. ':' .. tostring(r ~= nil) .. ':{tag}'\nend\n\
             function M.tag() return '{tag}' end\nreturn M"
        )
    };
    f.write("m", &source("old"));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source("new"));
    assert_eq!(f.lua::<String>("return m.run()"), "old:true:old");
    assert_eq!(f.lua::<String>("return m.tag()"), "new");
}

#[test]
fn reload_from_a_coroutine() {
    let f = Fixture::new();
    f.write("m", "return { v = function() return 1 end }");
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { v = function() return 2 end }");
    assert!(f.lua::<bool>(
        "local co = coroutine.create(function() \
           local r = require('hotlua').reload('m') coroutine.yield(r ~= nil) return m.v() end) \
         local _, ok = coroutine.resume(co) local _, v = coroutine.resume(co) \
         return ok and v == 2"
    ));
}

#[test]
fn reload_from_the_new_top_level_is_refused() {
    let f = Fixture::new();
    f.write("m", "return {}");
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local ok, err = require('hotlua').reload('m')\nnested = err\nreturn {}",
    );
    f.reload_ok("m");
    assert!(f
        .lua::<String>("return nested")
        .contains("already in progress"));
}

#[test]
fn hundred_reloads_do_not_grow_the_heap() {
    let f = Fixture::new();
    let source = |i: usize| {
        format!(
            "local n = 0\nlocal M = {{ data = {{ 1, 2, 3 }} }}\n\
             function M.f() n = n + 1 return {i} end\n\
             function M.g() return M.f() end\nreturn M"
        )
    };
    f.write("m", &source(0));
    f.lua::<()>("m = require 'm'");
    let heap = || {
        f.lua::<f64>(
            "collectgarbage('collect'); collectgarbage('collect'); return collectgarbage('count')",
        )
    };
    for i in 1..=10 {
        f.write("m", &source(i));
        f.reload_ok("m");
    }
    let warm = heap();
    for i in 11..=110 {
        f.write("m", &source(i));
        f.reload_ok("m");
    }
    let after = heap();
    assert_eq!(f.lua::<i64>("return m.g()"), 110);
    // A leak of one old version per reload would be several KiB each, 100 times over.
    assert!(
        after - warm < 8.0,
        "heap grew from {warm} KiB to {after} KiB"
    );
}

#[test]
fn now_is_monotonic_seconds() {
    let f = Fixture::new();
    assert!(f.lua::<bool>(
        "local h = require 'hotlua' local a = h.now() local b = h.now() \
         return type(a) == 'number' and b >= a"
    ));
}

#[test]
fn unknown_policy_name_is_an_error() {
    let f = Fixture::new();
    let error = f
        .lua
        .load("require('hotlua').policy('m', 'sometimes')")
        .exec()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown data policy 'sometimes'"),
        "{error}"
    );
}

/// Lua 5.1 and LuaJIT run `__gc` only for userdata: `newproxy` makes one there. Lua runs no
/// hooks in a finalizer, so no time limit could stop the new top level: the reload is
/// refused, with the reason, and nothing changes.
#[test]
fn reload_inside_a_gc_finalizer_is_refused_without_a_crash() {
    let f = Fixture::new();
    f.write("m", "return { v = function() return 1 end }");
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { v = function() return 2 end }");
    let (refused, message, v): (bool, String, i64) = f.lua(
        "local gc = function() outcome = { require('hotlua').reload('m') } end \
         if newproxy then getmetatable(newproxy(true)).__gc = gc \
         else setmetatable({}, { __gc = gc }) end \
         collectgarbage() collectgarbage() \
         return outcome[1] == nil, outcome[2], m.v()",
    );
    assert!(refused);
    assert!(message.contains("__gc finalizer"), "{message}");
    assert_eq!(v, 1);
}

#[test]
fn a_failed_reload_returns_where_it_failed_as_a_third_value() {
    let f = Fixture::new();
    f.write("m", "return { f = function() return 1 end }");
    f.lua::<()>("m = require 'm'");
    let file = f.write("m", "return {\n f = function() return 2 end,\n g = = 1 }");
    let file = file.display().to_string();
    assert_eq!(
        f.lua::<String>(
            "local r, message, where = require('hotlua').reload('m') \
             return tostring(r) .. ' ' .. where.module .. ' ' .. where.file .. ' ' .. where.line"
        ),
        format!("nil m {file} 3")
    );
    assert_eq!(
        f.lua::<String>(
            "local _, _, where = require('hotlua').reload('absent') \
             return where.module .. ' ' .. tostring(where.file)"
        ),
        "absent nil"
    );
}
