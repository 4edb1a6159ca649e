//! Nested data tables (no metatable, no function), which the planner walks in Lua: the same
//! rules and report as for any table.

mod common;
use common::Fixture;
use hotlua::{DataPolicy, Options};

#[test]
fn nested_data_merges_by_the_policy_and_reports_full_paths() {
    let f = Fixture::new();
    let source = |speed: i64, armor: i64| {
        format!("return {{ cfg = {{ limits = {{ speed = {speed}, armor = {armor} }} }} }}")
    };
    f.write("m", &source(1, 1));
    f.lua::<()>("m = require 'm'; limits = m.cfg.limits; limits.armor = 9");
    f.write("m", &source(2, 2));
    let report = f
        .reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Merge3))
        .unwrap();
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].path, "m.cfg.limits.armor");
    assert_eq!(
        f.lua::<(bool, i64, i64)>("return m.cfg.limits == limits, limits.speed, limits.armor"),
        (true, 2, 9)
    );
}

#[test]
fn a_field_added_to_a_live_table_with_newindex_goes_through_it() {
    let f = Fixture::new();
    f.write("m", "return { store = { a = 1 } }");
    f.lua::<()>(
        "m = require 'm'; seen = {} \
         setmetatable(m.store, { __newindex = function(t, k, v) seen[#seen + 1] = k rawset(t, k, v) end })",
    );
    f.write("m", "return { store = { a = 1, b = { 2 } } }");
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, i64)>("return table.concat(seen, ','), m.store.b[1]"),
        ("b".into(), 2)
    );
}

#[test]
fn a_function_the_new_data_no_longer_holds_is_kept() {
    let f = Fixture::new();
    f.write(
        "m",
        "return { sub = { x = 1, f = function() return 'old' end } }",
    );
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { sub = { x = 1 } }");
    let report = f.reload_ok("m");
    assert_eq!(report.functions_kept_deleted, ["m.sub.f"]);
    assert_eq!(f.lua::<String>("return m.sub.f()"), "old");
}

#[test]
fn functions_inside_data_are_found_at_their_path_and_replaced() {
    let f = Fixture::new();
    let source = |v: i64| {
        format!("return {{ list = {{ {{ n = 1, on = {{ f = function() return {v} end }} }} }} }}")
    };
    f.write("m", &source(1));
    f.lua::<()>("m = require 'm'; f = m.list[1].on.f");
    f.write("m", &source(2));
    let report = f.reload_ok("m");
    assert_eq!(report.functions_replaced, ["m.list[1].on.f"]);
    assert_eq!(f.lua::<i64>("return f() + m.list[1].on.f()"), 4);
}

#[test]
fn new_data_holding_a_merged_table_holds_the_live_one() {
    let f = Fixture::new();
    f.write("m", "local cfg = { speed = 1 }\nreturn { cfg = cfg }");
    f.lua::<()>("m = require 'm'; cfg = m.cfg");
    f.write(
        "m",
        "local cfg = { speed = 2 }\nreturn { cfg = cfg, extra = { list = { cfg } } }",
    );
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m.cfg == cfg and m.extra.list[1] == cfg"));
}

#[test]
fn two_data_fields_made_one_table_read_one_live_table() {
    let f = Fixture::new();
    f.write("m", "return { box = { a = { x = 1 }, b = { x = 2 } } }");
    f.lua::<()>("m = require 'm'; a, b = m.box.a, m.box.b");
    f.write(
        "m",
        "local t = { x = 1 }\nreturn { box = { a = t, b = t } }",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("another field"));
    // The field paired first keeps its live table; the other takes it.
    assert!(f.lua::<bool>("return m.box.a == m.box.b and (m.box.a == a or m.box.a == b)"));
}

#[test]
fn cyclic_data_keeps_its_cycles_and_identity() {
    let f = Fixture::new();
    let source = |n: i64| {
        format!(
            "local t = {{ n = {n}, list = {{}} }}\nt.self = t\nt.list[1] = t\nreturn {{ t = t }}"
        )
    };
    f.write("m", &source(1));
    f.lua::<()>("m = require 'm'; t = m.t");
    f.write("m", &source(2));
    f.reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Overwrite))
        .unwrap();
    assert!(f.lua::<bool>("return m.t == t and t.self == t and t.list[1] == t and t.n == 2"));
}
