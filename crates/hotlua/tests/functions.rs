//! Functions and locals (upvalues): design §Semantics items 2 and 3.

mod common;
use common::Fixture;

#[test]
fn function_bodies_are_replaced_through_the_module_table() {
    let f = Fixture::new();
    f.write(
        "m",
        "local M = {}\nfunction M.f() return 'v1' end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local M = {}\nfunction M.f() return 'v2' end\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.functions_replaced, ["m.f"]);
    assert_eq!(f.lua::<String>("return m.f()"), "v2");
}

#[test]
fn added_function_appears_and_deleted_function_stays_callable() {
    let f = Fixture::new();
    f.write(
        "m",
        "local M = {}\nfunction M.gone() return 'still here' end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local M = {}\nfunction M.fresh() return 'new' end\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.functions_added, ["m.fresh"]);
    assert_eq!(report.functions_kept_deleted, ["m.gone"]);
    assert_eq!(
        f.lua::<String>("return m.fresh() .. ' ' .. m.gone()"),
        "new still here"
    );
}

/// The planner looks for deleted functions only when the new table leaves some function of the
/// live one unset: a function among many kept ones is still found, a function field the new
/// version sets to data is not mistaken for one, and a function at a table key (which the new
/// table holds at its own table) still makes it look.
#[test]
fn deleted_functions_are_found_among_kept_ones_and_data_is_not_one() {
    let f = Fixture::new();
    f.write(
        "m",
        "local M = {}\nfunction M.a() return 1 end\nfunction M.gone() return 'old' end\n\
         function M.b() return 2 end\nfunction M.to_data() end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local M = {}\nfunction M.a() return 10 end\nfunction M.b() return 20 end\n\
         M.to_data = 5\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.functions_kept_deleted, ["m.gone"]);
    assert_eq!(f.lua::<String>("return m.a() + m.b() .. m.gone()"), "30old");

    f.write(
        "n",
        "local N = {}\nfunction N.a() return 1 end\nfunction N.to_data() end\nreturn N",
    );
    f.lua::<()>("n = require 'n'");
    f.write(
        "n",
        "local N = {}\nfunction N.a() return 2 end\nN.to_data = 5\nreturn N",
    );
    let report = f.reload_ok("n");
    assert!(report.functions_kept_deleted.is_empty(), "{report:?}");
    assert_eq!(f.lua::<i64>("return n.a()"), 2);

    f.write(
        "k",
        "local K = {}\nK[K] = function() return 'keyed' end\nfunction K.a() return 1 end\n\
         return K",
    );
    f.lua::<()>("k = require 'k'");
    f.write(
        "k",
        "local K = {}\nK[K] = function() return 'keyed2' end\nfunction K.a() return 2 end\n\
         return K",
    );
    let report = f.reload_ok("k");
    assert_eq!(report.functions_kept_deleted.len(), 1, "{report:?}");
}
#[test]
fn locals_are_joined_not_copied() {
    let f = Fixture::new();
    f.write(
        "m",
        "local count = 0\nlocal M = {}\nfunction M.inc() count = count + 1 end\n\
         function M.get() return count end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; m.inc(); m.inc(); old_get = m.get");
    f.write(
        "m",
        "local count = 0\nlocal M = {}\nfunction M.inc() count = count + 100 end\n\
         function M.get() return count end\nreturn M",
    );
    let report = f.reload_ok("m");
    if cfg!(feature = "lua51") {
        // Lua 5.1 cannot share a cell between closures: the new functions (which share one
        // variable among themselves) got a copy of the live value, and the report says so.
        // `old_get` was switched to the new `get` by the walk.
        assert_eq!(report.locals_copied, ["m.get@count", "m.inc@count"]);
        assert_eq!(
            f.lua::<(i64, i64)>("m.inc(); return m.get(), old_get()"),
            (102, 102)
        );
    } else {
        assert_eq!(report.locals_joined, 1);
        assert!(report.locals_copied.is_empty());
        // Live value kept (2), new code runs (+100), and the old closure sees the same variable.
        assert_eq!(
            f.lua::<(i64, i64)>("m.inc(); return m.get(), old_get()"),
            (102, 102)
        );
    }
}

#[test]
fn closure_made_at_run_time_shares_locals_with_the_new_code() {
    let f = Fixture::new();
    let source = |bonus: i64| {
        format!(
            "local count = 0\nlocal M = {{}}\n\
             function M.counter() return function() count = count + 1 end end\n\
             function M.get() return count + {bonus} end\nreturn M"
        )
    };
    f.write("m", &source(0));
    f.lua::<()>("m = require 'm'; bump = m.counter(); bump()");
    f.write("m", &source(1000));
    let report = f.reload_ok("m");
    if common::inplace() {
        // `bump` takes the new code in place and keeps its cell.
        assert_eq!(report.closures_left_old, 0);
        assert_eq!(f.lua::<i64>("bump(); return m.get()"), 1002);
        return;
    }
    assert_eq!(report.closures_left_old, 1);
    // `bump` keeps its old code and its old cell; the new `get` reads that cell on every
    // version that can share cells, a copy of it on Lua 5.1.
    let expected = if cfg!(feature = "lua51") { 1001 } else { 1002 };
    assert_eq!(f.lua::<i64>("bump(); return m.get()"), expected);
}

#[test]
fn design_example_old_local_value_new_code() {
    let f = Fixture::new();
    f.write(
        "m",
        "local a = 'old'\nlocal M = {}\nfunction M.get_a() return a end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local a = 'new'\nlocal M = {}\nfunction M.get_a() return a .. '_x' end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.get_a()"), "old_x");
}

#[test]
fn added_function_sharing_an_existing_local_sees_its_live_value() {
    let f = Fixture::new();
    f.write(
        "m",
        "local hits = 0\nlocal M = {}\nfunction M.hit() hits = hits + 1 end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; m.hit(); m.hit(); m.hit()");
    f.write(
        "m",
        "local hits = 0\nlocal M = {}\nfunction M.hit() hits = hits + 1 end\n\
         function M.hits() return hits end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("m.hit(); return m.hits()"), 4);
}

#[test]
fn local_captured_only_by_a_new_function_pairs_with_the_only_old_local_of_that_name() {
    let f = Fixture::new();
    f.write(
        "m",
        "local cache = {}\nlocal M = {}\nfunction M.put(k, v) cache[k] = v end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; m.put('a', 1)");
    // `put` is gone; `get` is new and captures `cache`: no paired function carries the cell,
    // so it pairs with the old module's only `cache`.
    f.write(
        "m",
        "local cache = {}\nlocal M = {}\nfunction M.get(k) return cache[k] end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.get('a')"), 1);
}

#[test]
fn two_locals_with_one_name_in_different_blocks_stay_apart() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local M = {{}}\n\
             do local n = 0; function M.a() n = n + 1 return '{tag}' .. n end end\n\
             do local n = 100; function M.b() n = n + 1 return '{tag}' .. n end end\n\
             return M"
        )
    };
    f.write("m", &source("v1:"));
    f.lua::<()>("m = require 'm'; m.a(); m.b(); m.b()");
    f.write("m", &source("v2:"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, String)>("return m.a(), m.b()"),
        ("v2:2".into(), "v2:103".into())
    );
}

#[test]
fn local_shared_by_several_functions_stays_shared() {
    let f = Fixture::new();
    let source = "local state = { n = 0 }\nlocal total = 0\nlocal M = {}\n\
                  function M.add(x) total = total + x; state.n = state.n + 1 end\n\
                  function M.sub(x) total = total - x; state.n = state.n + 1 end\n\
                  function M.get() return total, state.n end\nreturn M";
    f.write("m", source);
    f.lua::<()>("m = require 'm'; m.add(10); m.sub(3)");
    f.write("m", &source.replace("total + x", "total + 2 * x"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(i64, i64)>("m.add(1); m.sub(1); return m.get()"),
        (8, 4)
    );
}

#[test]
fn local_new_in_v2_gets_its_initial_value() {
    let f = Fixture::new();
    f.write("m", "local M = {}\nfunction M.f() return 1 end\nreturn M");
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local bonus = 41\nlocal M = {}\nfunction M.f() return bonus + 1 end\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.locals_new, ["m.f@bonus"]);
    assert_eq!(f.lua::<i64>("return m.f()"), 42);
}

#[test]
fn upvalue_holding_false_is_kept() {
    let f = Fixture::new();
    f.write(
        "m",
        "local enabled = true\nlocal M = {}\nfunction M.off() enabled = false end\n\
         function M.on() return enabled end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; m.off()");
    f.write(
        "m",
        "local enabled = true\nlocal M = {}\nfunction M.off() enabled = false end\n\
         function M.on() return enabled, 'v2' end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(bool, String)>("return m.on()"),
        (false, "v2".into())
    );
}

#[test]
fn local_whose_type_changes_takes_the_new_value() {
    let f = Fixture::new();
    f.write(
        "m",
        "local limit = 10\nlocal M = {}\nfunction M.get() return limit end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local limit = 'unlimited'\nlocal M = {}\nfunction M.get() return limit end\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.locals_type_changed, ["m.get@limit"]);
    assert_eq!(f.lua::<String>("return m.get()"), "unlimited");
}

#[test]
#[cfg_attr(
    not(any(feature = "lua54", feature = "lua55")),
    ignore = "`<const>` locals exist only in Lua 5.4 and 5.5"
)]
fn const_locals_take_the_new_value() {
    let f = Fixture::new();
    f.write(
        "m",
        "local MAX <const> = 10\nlocal M = {}\nfunction M.max() return MAX end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local MAX <const> = 20\nlocal M = {}\nfunction M.max() return MAX end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.max()"), 20);
}

#[test]
fn local_functions_used_as_upvalues_are_upgraded_recursively() {
    let f = Fixture::new();
    let source = |n: i64| {
        format!(
            "local function leaf() return {n} end\n\
             local function middle() return leaf() * 2 end\n\
             local M = {{}}\nfunction M.top() return middle() end\nreturn M"
        )
    };
    f.write("m", &source(1));
    f.lua::<()>("m = require 'm'; old_top = m.top");
    f.write("m", &source(5));
    let report = f.reload_ok("m");
    assert!(report
        .functions_replaced
        .contains(&"m.top@middle@leaf".to_string()));
    // Even the old `top` reaches the new `leaf`: the joined cells now hold new functions.
    assert_eq!(f.lua::<(i64, i64)>("return m.top(), old_top()"), (10, 10));
}

#[test]
fn recursive_local_function_terminates_and_is_upgraded() {
    let f = Fixture::new();
    let source = |base: i64| {
        format!(
            "local function fact(n) if n <= 1 then return {base} end return n * fact(n - 1) end\n\
             return {{ fact = fact }}"
        )
    };
    f.write("m", &source(1));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source(2));
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.fact(4)"), 48);
}

#[test]
fn table_of_functions_held_in_an_upvalue_is_merged() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "local handlers = {{ greet = function() return '{word}' end }}\n\
             local M = {{}}\nfunction M.dispatch(k) return handlers[k]() end\n\
             function M.register(k, fn) handlers[k] = fn end\nreturn M"
        )
    };
    f.write("m", &source("hello"));
    f.lua::<()>("m = require 'm'; m.register('extra', function() return 'runtime' end)");
    f.write("m", &source("bonjour"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, String)>("return m.dispatch('greet'), m.dispatch('extra')"),
        ("bonjour".into(), "runtime".into())
    );
}

#[test]
fn cycles_between_functions_terminate() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local is_even, is_odd\n\
             function is_even(n) if n == 0 then return '{tag}even' end return is_odd(n - 1) end\n\
             function is_odd(n) if n == 0 then return '{tag}odd' end return is_even(n - 1) end\n\
             return {{ is_even = is_even }}"
        )
    };
    f.write("m", &source("a:"));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source("b:"));
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.is_even(5)"), "b:odd");
}

#[test]
fn module_returning_a_function_is_reloaded() {
    let f = Fixture::new();
    f.write(
        "m",
        "local calls = 0\nreturn function() calls = calls + 1 return 'v1', calls end",
    );
    f.lua::<()>("m = require 'm'; m()");
    f.write(
        "m",
        "local calls = 0\nreturn function() calls = calls + 1 return 'v2', calls end",
    );
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, i64)>("return require('m')()"),
        ("v2".into(), 2)
    );
}

#[test]
fn v1_v2_v3_in_a_row() {
    let f = Fixture::new();
    f.write(
        "m",
        "local n = 0\nlocal M = {}\nfunction M.f() n = n + 1 return 'v1', n end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; m.f()");
    for version in ["v2", "v3"] {
        f.write(
            "m",
            &format!("local n = 0\nlocal M = {{}}\nfunction M.f() n = n + 1 return '{version}', n end\nreturn M"),
        );
        f.reload_ok("m");
    }
    assert_eq!(f.lua::<(String, i64)>("return m.f()"), ("v3".into(), 2));
}

/// Functions whose cells reach values not visited yet (a new local of each, a helper function),
/// between table fields: the planner's fast path stops at each such field and goes on after
/// it, and every function, local and table is still planned, each local at its function's path.
#[test]
fn functions_reaching_new_locals_between_tables_all_reload() {
    let f = Fixture::new();
    let source = |fresh: &str, body: &str| {
        format!(
            "local M = {{}}\nlocal function helper() return {body} end\n\
             for i = 1, 300 do\n  local cache = {{ i = i }}\n  {fresh}\n\
               M['f' .. i] = function() return helper() + cache.i{} end\n\
               M['t' .. i] = {{ i = i }}\nend\nreturn M",
            if fresh.is_empty() { "" } else { " + fresh.n" }
        )
    };
    f.write("m", &source("", "0"));
    f.lua::<()>("m = require 'm'; held = m.f7; m.t7.kept = true");
    f.write("m", &source("local fresh = { n = 1000 * i }", "1000000"));
    let report = f.reload_ok("m");
    let mut locals = report.locals_new.clone();
    locals.sort();
    let mut expected: Vec<String> = (1..=300).map(|i| format!("m.f{i}@fresh")).collect();
    expected.sort();
    assert_eq!(locals, expected);
    // Each cache, and the helper's cell (on Lua 5.1 each closure has a cell of its own).
    let helper_cells = if cfg!(feature = "lua51") { 300 } else { 1 };
    assert_eq!(report.locals_joined, 300 + helper_cells);
    let total = "local total = 0 for i = 1, 300 do total = total + m['f' .. i]() end return total";
    assert_eq!(
        f.lua::<i64>(total),
        (1..=300).map(|i| 1_000_000 + 1001 * i).sum::<i64>()
    );
    assert_eq!(
        f.lua::<(i64, bool)>("return held(), m.t7.kept"),
        (1_007_007, true)
    );
}
