//! Engine `inplace` (issue 9): every closure of the old version runs the new code, wherever it
//! is referenced and whenever it was created; prototypes pair by their place in the source;
//! upvalues remap by name; frames already running finish in the old code; the collector's
//! invariants hold in both modes.
//!
//! Built only with the vendored Lua 5.4; elsewhere these scenarios check that `walk` runs.

mod common;
use common::{inplace_fixture as fixture, reloaded_inplace as reloaded};

#[test]
fn module_functions_keep_their_identity() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nlocal function helper() return '{tag}' end\n\
             function M.f() return helper() end\nM.g = function() return M.f() end\nreturn M"
        )
    };
    let Some((f, report)) = reloaded(&v("old"), "f, g = m.f, m.g", &v("new")) else {
        return;
    };
    assert!(f.lua::<bool>("return rawequal(f, m.f) and rawequal(g, m.g)"));
    assert_eq!(f.lua::<String>("return f() .. g()"), "newnew");
    assert_eq!(report.references.total(), 0);
    assert!(report.closures_upgraded >= 3, "{report:?}");
    assert_eq!(report.closures_left_old, 0);
}

#[test]
fn closures_made_at_run_time_at_any_depth() {
    // A handler that builds a formatter that builds a line.
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nlocal count = 0\n\
             function M.handler(prefix)\n\
               return function(x)\n\
                 count = count + 1\n\
                 return function() return prefix .. x .. '{tag}' .. count end\n\
               end\n\
             end\nreturn M"
        )
    };
    let Some((f, report)) = reloaded(
        &v("-old-"),
        "local h = m.handler('p:') fmt = h; line = h('x'); made = { m.handler('q:') }",
        &v("-new-"),
    ) else {
        return;
    };
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    // handler + 2 handlers made + 1 line
    assert_eq!(report.closures_upgraded, 4, "{report:?}");
    assert_eq!(f.lua::<String>("return line()"), "p:x-new-1");
    assert_eq!(f.lua::<String>("return fmt('y')()"), "p:y-new-2");
    assert_eq!(f.lua::<String>("return made[1]('z')()"), "q:z-new-3");
}

#[test]
fn closures_in_a_suspended_coroutines_locals() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.make(n) return function() return '{tag}' .. n end end\n\
             return M"
        )
    };
    let Some((f, report)) = reloaded(
        &v("old"),
        "co = coroutine.wrap(function() local cb = m.make(1) coroutine.yield() return cb() end) co()",
        &v("new"),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return co()"), "new1");
    assert_eq!(report.closures_left_old, 0);
}

/// A factory returning two closures; `body` is its body in each version.
fn factory(body: &str) -> String {
    format!("local M = {{}}\nfunction M.make()\n{body}\nend\nreturn M")
}

#[test]
fn swapped_siblings_pair_by_name_not_by_index() {
    let Some((f, _)) = reloaded(
        &factory(
            "local a = function() return 'a1' end\nlocal b = function() return 'b1' end\nreturn a, b",
        ),
        "a, b = m.make()",
        &factory(
            "local b = function() return 'b2' end\nlocal a = function() return 'a2' end\nreturn a, b",
        ),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return a() .. b()"), "a2b2");
}

#[test]
fn a_sibling_inserted_before() {
    let Some((f, report)) = reloaded(
        &factory(
            "local a = function() return 'a1' end\nlocal b = function() return 'b1' end\nreturn a, b",
        ),
        "a, b = m.make()",
        &factory(
            "local z = function() return 'z2' end\nlocal a = function() return 'a2' end\n\
             local b = function() return 'b2' end\nreturn a, b, z",
        ),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return a() .. b()"), "a2b2");
    assert_eq!(report.closures_left_old, 0);
}

#[test]
fn a_deleted_sibling_keeps_its_old_code() {
    let Some((f, report)) = reloaded(
        &factory(
            "local a = function() return 'a1' end\nlocal b = function() return 'b1' end\nreturn a, b",
        ),
        "a, b = m.make()",
        &factory("local b = function() return 'b2' end\nreturn nil, b"),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return a() .. b()"), "a1b2");
    assert_eq!(report.closures_left_old, 1);
    assert_eq!(report.closures_left_old_why.unpaired_prototype, 1);
}

#[test]
fn a_sibling_moved_into_a_nested_block_or_function() {
    let Some((f, report)) = reloaded(
        &factory(
            "local a = function() return 'a1' end\nlocal b = function() return 'b1' end\n\
             return a, b",
        ),
        "a, b = m.make()",
        // `a` moves into a `do` block (same local, same place); `b` into a nested function
        // (another parent: no counterpart).
        &factory(
            "local a\ndo a = function() return 'a2' end end\n\
             local function inner() local b = function() return 'b2' end return b end\n\
             return a, inner()",
        ),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return a() .. b()"), "a2b1");
    assert_eq!(report.closures_left_old_why.unpaired_prototype, 1);
}

#[test]
fn ambiguous_siblings_are_left_alone_and_reported() {
    // Two anonymous functions in one list: their place in the source does not tell them
    // apart, and the new file swaps them.
    let Some((f, report)) = reloaded(
        &factory("return { function() return 'x1' end, function() return 'y1' end }"),
        "list = m.make()",
        &factory("return { function() return 'y2' end, function() return 'x2' end }"),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return list[1]() .. list[2]()"), "x1y1");
    assert_eq!(report.closures_left_old_why.ambiguous_prototype, 2);
    assert!(
        report.warnings.iter().any(|w| w.contains("unambiguous")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn identical_ambiguous_siblings_pair_by_body() {
    let Some((f, report)) = reloaded(
        &factory("return { function() return 'x' end, function() return 'y' end }, 1"),
        "list = m.make()",
        &factory("return { function() return 'x' end, function() return 'y' end }, 2"),
    ) else {
        return;
    };
    assert_eq!(f.lua::<String>("return list[1]() .. list[2]()"), "xy");
    assert_eq!(report.closures_left_old, 0, "{report:?}");
}

#[test]
fn upvalues_remap_by_name() {
    let Some((f, report)) = reloaded(
        "local M = {}\nfunction M.make(n) local k = 10 return function() k = k + 1 return n + k end end\nreturn M",
        "inc = m.make(100); inc()",
        // The new body captures k first, then n, and computes differently.
        "local M = {}\nfunction M.make(n) local k = 10 return function() k = k + 1 return k * 1000 + n end end\nreturn M",
    ) else {
        return;
    };
    assert_eq!(f.lua::<i64>("return inc()"), 12_100);
    assert_eq!(report.closures_left_old, 0);
}

#[test]
fn a_closure_needing_more_upvalues_than_allocated_is_replaced_by_a_new_one() {
    let Some((f, report)) = reloaded(
        "local M = {}\nlocal count = 0\nfunction M.bump() count = count + 1 end\n\
         function M.make(n) return function() return n end end\nreturn M",
        "get = m.make(5); m.bump()",
        "local M = {}\nlocal count = 0\nfunction M.bump() count = count + 1 end\n\
         function M.make(n) return function() return n * 100 + count end end\nreturn M",
    ) else {
        return;
    };
    // A new closure with its own `n` and the live module `count`, and the reference to the
    // old one switched to it.
    assert_eq!(f.lua::<i64>("return get()"), 501);
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    assert_eq!(f.lua::<i64>("m.bump(); return get()"), 502);
    // The module function `make` (no upvalue before, one now) gets its references switched to
    // the new function too.
    assert_eq!(f.lua::<i64>("return m.make(5)()"), 502);
}

#[test]
fn an_upvalue_that_cannot_be_known_keeps_the_old_code() {
    let Some((f, report)) = reloaded(
        "local M = {}\nfunction M.make(n) return function() return n end end\nreturn M",
        "get = m.make(5)",
        "local M = {}\nfunction M.make(n) local scale = 2 return function() return n * scale end end\nreturn M",
    ) else {
        return;
    };
    assert_eq!(f.lua::<i64>("return get()"), 5);
    assert_eq!(f.lua::<i64>("return m.make(5)()"), 10);
    assert_eq!(report.closures_left_old_why.unknown_upvalue, 1);
}

#[test]
fn a_module_local_captured_by_the_new_version_of_a_module_function() {
    let Some((f, _)) = reloaded(
        "local M = {}\nlocal hits = 0\nfunction M.f() return 'f' end\nfunction M.hit() hits = hits + 1 return hits end\nreturn M",
        "m.hit(); m.hit(); f = m.f",
        "local M = {}\nlocal hits = 0\nfunction M.f() return 'f' .. hits end\nfunction M.hit() hits = hits + 1 return hits end\nreturn M",
    ) else {
        return;
    };
    // `f` had no upvalue `hits`; its new version has one, the live cell (joined by the planner).
    assert_eq!(f.lua::<String>("return f()"), "f2");
    assert!(f.lua::<bool>("return rawequal(f, m.f)"));
}

#[test]
fn a_suspended_frame_finishes_in_the_old_code() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nlocal n = 0\nfunction M.long()\n  local a = '{tag} a'\n  coroutine.yield(a)\n  \
             n = n + 1\n  return '{tag} end ' .. n .. ' ' .. a\nend\nreturn M"
        )
    };
    let Some((f, report)) = reloaded(
        &v("old"),
        "co = coroutine.wrap(m.long); first = co(); long = m.long",
        &v("new"),
    ) else {
        return;
    };
    assert_eq!(report.frames_left_old, 1);
    assert_eq!(f.lua::<String>("return co()"), "old end 1 old a");
    assert_eq!(f.lua::<String>("return coroutine.wrap(long)()"), "new a");
    assert!(f.lua::<bool>("return rawequal(long, m.long)"));
}

/// A closure made at run time whose new version keeps its upvalues takes the new code with no
/// log of what it was (csrc/scan.c); a coroutine suspended in it still finishes in the old code.
#[test]
fn a_suspended_frame_of_a_run_time_closure_finishes_in_the_old_code() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.make(n)\n  return function()\n    \
             coroutine.yield('{tag} ' .. n)\n    return '{tag} end ' .. n\n  end\nend\nreturn M"
        )
    };
    let Some((f, report)) = reloaded(
        &v("old"),
        "worker = m.make(7); co = coroutine.wrap(worker); first = co()",
        &v("new"),
    ) else {
        return;
    };
    assert_eq!(report.frames_left_old, 1, "{report:?}");
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    assert_eq!(
        f.lua::<String>("return first .. ', ' .. co()"),
        "old 7, old end 7"
    );
    assert_eq!(f.lua::<String>("return coroutine.wrap(worker)()"), "new 7");
}

/// A closure made at run time that is running when the reload comes keeps its old code (the
/// interpreter's frame caches it), is counted, and takes the new code at the next reload.
#[test]
fn a_run_time_closure_on_the_running_frame_takes_the_new_code_at_the_next_reload() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.make(n)\n  return function()\n    \
             local left = RELOAD and RELOAD()\n    return '{tag} ' .. n .. ' ' .. tostring(left)\n  \
             end\nend\nreturn M"
        )
    };
    let Some(f) = fixture() else {
        return;
    };
    f.write("m", &v("v1"));
    f.lua::<()>("m = require 'm'; r = m.make(3)");
    f.write("m", &v("v2"));
    f.lua::<()>(
        "RELOAD = function() local report = require('hotlua').reload('m'); RELOAD = nil; \
         return report.closures_left_old end",
    );
    assert_eq!(f.lua::<String>("return r()"), "v1 3 1");
    assert_eq!(
        f.lua::<String>("return r() .. ', ' .. m.make(4)()"),
        "v1 3 nil, v2 4 nil"
    );
    f.write("m", &v("v3"));
    let report = f.reload_ok("m");
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    assert_eq!(f.lua::<String>("return r()"), "v3 3 nil");
}

#[test]
fn a_frame_of_the_running_thread_finishes_in_the_old_code() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nlocal hotlua = require 'hotlua'\n\
             function M.reload_self()\n  local before = '{tag}'\n  local report = hotlua.reload('m')\n  \
             return before .. ' ' .. report.engine .. ' ' .. M.version()\nend\n\
             function M.version() return '{tag}' end\nreturn M"
        )
    };
    let Some(f) = fixture() else {
        return;
    };
    f.write("m", &v("old"));
    f.lua::<()>("m = require 'm'; version = m.version; reload_self = m.reload_self");
    f.write("m", &v("new"));
    assert_eq!(f.lua::<String>("return m.reload_self()"), "old inplace new");
    // The running function's references were switched by the walk; the others kept theirs.
    assert_eq!(f.lua::<String>("return m.reload_self()"), "new inplace new");
    assert!(f.lua::<bool>("return rawequal(version, m.version)"));
}

/// Generational mode: closures old enough that minor collections skip them take prototypes
/// and cells that are young. Each store goes through a forward barrier that makes its target
/// old too; a closure given back to the collector instead (the barrier tables take) is visited
/// by the next minor collection only, and the one after it frees the code it runs.
#[test]
fn old_closures_keep_their_young_code_through_minor_collections() {
    // v2's functions read a module local v1 did not have: a cell as young as the code.
    let v1 = "local M = {}\nlocal before = ''\n\
              function M.f(table) return table and before or 'old' .. before end\n\
              function M.make(n) return function() return 'old' .. n .. before end end\nreturn M";
    let v2 = "local M = {}\nlocal after = { '!' }\n\
              function M.f(table) return table and after or 'new' .. after[1] end\n\
              function M.make(n) return function() return 'new' .. n .. after[1] end end\n\
              return M";
    let Some(f) = fixture() else {
        return;
    };
    // Lua 5.4's generational mode; LuaJIT's collector is incremental only.
    if cfg!(feature = "lua54") {
        f.lua::<()>("collectgarbage('generational')");
    }
    f.write("m", v1);
    // Two full collections: every closure is old, and black.
    f.lua::<()>(
        "m = require 'm'; made = {} for i = 1, 200 do made[i] = m.make(i) end \
         collectgarbage() collectgarbage()",
    );
    f.write("m", v2);
    let report = f.reload_ok("m");
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    // What the young cell holds, weakly: a collector that lost track of the cell drops it.
    f.lua::<()>(
        "held = setmetatable({}, { __mode = 'v' }) \
         held[1] = m.f(true)",
    );
    let minor_collections_then_calls = "for round = 1, 6 do \
           local junk = {} for i = 1, 2000 do junk[i] = { tostring(i) } end \
           collectgarbage('step', 0) \
         end \
         assert(held[1], 'the collector freed a value the reloaded code reads') \
         local out = { m.f() } for i = 1, 200 do out[i + 1] = made[i]() end \
         return table.concat(out, ',')";
    let expected: Vec<String> = std::iter::once("new!".to_owned())
        .chain((1..=200).map(|i| format!("new{i}!")))
        .collect();
    assert_eq!(
        f.lua::<String>(minor_collections_then_calls),
        expected.join(",")
    );
}

/// Coroutines suspended inside a vararg module function finish in the old code (each frame
/// runs a private copy of the closure; LuaJIT names the function in two frame slots of such a
/// call), call the new code, and are counted once each.
#[test]
fn suspended_vararg_frames_finish_in_their_old_code() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.work(...)\n  local n = select('#', ...)\n\
               coroutine.yield('{tag} before ' .. n)\n  return '{tag} after ' .. M.tag()\nend\n\
             function M.tag() return '{tag}' end\nreturn M"
        )
    };
    let setup = "cos = {} for i = 1, 20 do cos[i] = coroutine.wrap(m.work) \
                 assert(cos[i](1, 2, 3) == 'old before 3') end";
    let Some((f, report)) = reloaded(&v("old"), setup, &v("new")) else {
        return;
    };
    assert_eq!(report.frames_left_old, 20, "{report:?}");
    f.lua::<()>("collectgarbage() collectgarbage()");
    assert!(f.lua::<bool>(
        "for i = 1, 20 do if cos[i]() ~= 'old after new' then return false end end \
         local c = coroutine.wrap(m.work) return c(1) == 'new before 1' and c() == 'new after new'"
    ));
}

#[test]
fn full_collections_after_the_reload_in_both_modes() {
    // LuaJIT's collector is incremental only, and names no mode.
    let modes: &[&str] = if cfg!(feature = "lua54") {
        &["incremental", "generational"]
    } else {
        &["default"]
    };
    for &mode in modes {
        let v = |tag: &str| {
            format!(
                "local M = {{}}\nlocal state = {{}}\nfunction M.make(n) local t = {{ n }} \
                 return function() state[#state + 1] = t return '{tag}' .. t[1] end end\n\
                 function M.f() return '{tag}' end\nreturn M"
            )
        };
        let Some(f) = fixture() else {
            return;
        };
        if mode != "default" {
            f.lua::<()>(&format!("collectgarbage('{mode}')"));
        }
        f.write("m", &v("old"));
        f.lua::<()>(
            "m = require 'm'; made = {} for i = 1, 2000 do made[i] = m.make(i) end \
             co = coroutine.wrap(function() local g = m.make(0) coroutine.yield() return g() end) co() \
             collectgarbage(); collectgarbage('step', 10)",
        );
        for round in 0..3 {
            f.write("m", &v(&format!("v{round}-")));
            let report = f.reload_ok("m");
            assert_eq!(report.closures_left_old, 0, "{mode}: {report:?}");
            f.lua::<()>(
                "for i = 1, 2000, 7 do made[i] = nil end collectgarbage() collectgarbage()",
            );
            assert_eq!(
                f.lua::<String>("return made[2]() .. m.f()"),
                format!("v{round}-2v{round}-")
            );
        }
        assert_eq!(f.lua::<String>("return co()"), "v2-0");
        f.lua::<()>("made = nil collectgarbage() collectgarbage()");
    }
}

#[test]
fn the_engine_is_chosen_per_call_and_reported() {
    let Some(f) = fixture() else {
        return;
    };
    f.write("m", "local M = {}\nfunction M.f() return 1 end\nreturn M");
    f.lua::<()>("m = require 'm'; f = m.f");
    f.write("m", "local M = {}\nfunction M.f() return 2 end\nreturn M");
    let engine: String = f.lua("return require('hotlua').reload('m', { engine = 'walk' }).engine");
    assert_eq!(engine, "walk");
    // The walk gave `m.f` a new function and switched `f` to it.
    assert!(f.lua::<bool>("return rawequal(f, m.f) and f() == 2"));
    f.write("m", "local M = {}\nfunction M.f() return 3 end\nreturn M");
    let engine: String = f.lua("return require('hotlua').reload('m').engine");
    assert_eq!(engine, "inplace");
    assert!(f.lua::<bool>("return rawequal(f, m.f) and f() == 3"));
    let (ok, message): (bool, String) =
        f.lua("local ok, e = pcall(require('hotlua').reload, 'm', { engine = 'fast' }) return ok, tostring(e)");
    assert!(!ok && message.contains("unknown engine"), "{message}");
}

#[test]
fn a_runtime_closure_whose_new_version_captures_a_module_local_gets_the_live_cell() {
    let Some((f, report)) = reloaded(
        "local M = {}\nlocal count = 0\nfunction M.bump() count = count + 1 end\n\
         function M.make(n) local k = 0 return function() return n + k end end\nreturn M",
        "get = m.make(5); m.bump(); m.bump()",
        "local M = {}\nlocal count = 0\nfunction M.bump() count = count + 1 end\n\
         function M.make(n) return function() return n * 100 + count end end\nreturn M",
    ) else {
        return;
    };
    // `get` had `n` and `k`; its new version reads `n` and the module's live `count` (2): the
    // cell comes from the new `make`, which the planner joined to the live one. (The old
    // `make` captured nothing, so it cannot take the new code in place: the walk switches
    // references to it.)
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    assert_eq!(report.closures_upgraded, 2, "{report:?}");
    assert_eq!(f.lua::<i64>("return get()"), 502);
    f.lua::<()>("m.bump()");
    assert_eq!(f.lua::<i64>("return get()"), 503);
}
