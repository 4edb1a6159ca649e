//! Tables, data, metatables, globals and the standard library: design §Semantics items 1, 4–6.

mod common;
use common::Fixture;
use hotlua::{DataPolicy, Options};

#[test]
fn module_and_nested_tables_keep_identity_and_merge() {
    let f = Fixture::new();
    f.write(
        "m",
        "local M = { cfg = { speed = 1 }, list = {} }\nreturn M",
    );
    f.lua::<()>("m = require 'm'; cfg = m.cfg; list = m.list; list[1] = 'runtime'");
    f.write(
        "m",
        "local M = { cfg = { speed = 1, armor = 5 }, list = {} }\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.tables_merged, 3);
    assert!(f.lua::<bool>(
        "return require('m') == m and m.cfg == cfg and m.list == list \
         and cfg.armor == 5 and list[1] == 'runtime'"
    ));
}

#[test]
fn runtime_keys_stay_and_nil_never_erases() {
    let f = Fixture::new();
    f.write("m", "return { a = 1, b = 2 }");
    f.lua::<()>("m = require 'm'; m.runtime = 'kept'");
    f.write("m", "return { a = 1 }");
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(i64, String)>("return m.b, m.runtime"),
        (2, "kept".into())
    );
}

#[test]
fn same_type_field_keeps_live_value_and_type_change_takes_new() {
    let f = Fixture::new();
    f.write("m", "return { hp = 100, mode = 'easy' }");
    f.lua::<()>("m = require 'm'; m.hp = 37");
    f.write("m", "return { hp = 200, mode = { name = 'hard' } }");
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(i64, String)>("return m.hp, m.mode.name"),
        (37, "hard".into())
    );
}

#[test]
fn overwrite_policy_takes_every_new_data_value_and_keeps_identity() {
    let f = Fixture::new();
    f.write("m", "return { hp = 100, sub = { x = 1 } }");
    f.lua::<()>("m = require 'm'; sub = m.sub; m.hp = 37; m.sub.x = 9");
    f.write("m", "return { hp = 200, sub = { x = 2 } }");
    f.reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Overwrite))
        .unwrap();
    assert!(f.lua::<bool>("return m.hp == 200 and m.sub == sub and sub.x == 2"));
}

#[test]
fn merge3_takes_unchanged_fields_keeps_changed_ones_and_reports_conflicts() {
    let f = Fixture::new();
    f.write("m", "return { speed = 1, armor = 5, name = 'orc' }");
    // Loaded after the reloader exists, so its load-time values are recorded.
    f.lua::<()>("m = require 'm'; m.armor = 50; m.name = 'boss'");
    f.write("m", "return { speed = 2, armor = 6, name = 'orc' }");
    let report = f
        .reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Merge3))
        .unwrap();
    // speed: untouched by the program → edited value. armor: both changed → live kept,
    // conflict. name: program changed, file did not → live kept, no conflict.
    assert_eq!(
        f.lua::<(i64, i64, String)>("return m.speed, m.armor, m.name"),
        (2, 50, "boss".into())
    );
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].path, "m.armor");
    assert_eq!(report.conflicts[0].live, "50");
    assert_eq!(report.conflicts[0].file, "6");
}

#[test]
fn merge3_baseline_follows_each_reload() {
    let f = Fixture::new();
    f.reloader.set_policy("m", DataPolicy::Merge3);
    f.write("m", "return { speed = 1 }");
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { speed = 2 }");
    f.reload_ok("m");
    f.write("m", "return { speed = 3 }");
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.speed"), 3);
}

#[test]
fn class_metatable_merged_and_instances_see_new_methods() {
    let f = Fixture::new();
    let source = |body: &str| {
        format!(
            "local Monster = {{}}\nMonster.__index = Monster\n\
             function Monster.new(hp) return setmetatable({{ hp = hp }}, Monster) end\n\
             function Monster:describe() return {body} end\n\
             return {{ Monster = Monster }}"
        )
    };
    f.write("m", &source("'hp ' .. self.hp"));
    f.lua::<()>("m = require 'm'; orc = m.Monster.new(30)");
    f.write("m", &source("'HP=' .. self.hp"));
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return orc:describe()"), "HP=30");
    assert!(f.lua::<bool>("return getmetatable(orc) == m.Monster"));
}

#[test]
fn metatable_added_in_v2_is_installed() {
    let f = Fixture::new();
    f.write("m", "return { x = 1 }");
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "return setmetatable({ x = 1 }, { __index = function(_, k) return 'default ' .. k end })",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.missing"), "default missing");
}

#[test]
fn module_metatable_is_merged() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!("local mt = {{ __call = function() return '{word}' end }}\nreturn setmetatable({{}}, mt)")
    };
    f.write("m", &source("one"));
    f.lua::<()>("m = require 'm'; mt = getmetatable(m)");
    f.write("m", &source("two"));
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m() == 'two' and getmetatable(m) == mt"));
}

/// A reload's baseline holds the new tables merged into live ones as they are (they are
/// never live) but copies of the tables that go live: a record the reload added and the
/// program then changed is the program's, not the file's, at the next merge.
#[test]
fn merge3_baseline_is_not_changed_by_the_program_changing_a_table_a_reload_added() {
    let f = Fixture::new();
    f.reloader.set_policy("m", DataPolicy::Merge3);
    f.write("m", "return { items = { a = { hp = 1 } } }");
    f.lua::<()>("m = require 'm'");
    let v2 = "return { items = { a = { hp = 1 }, b = { hp = 2, tags = { 'x' } } } }";
    f.write("m", v2);
    f.reload_ok("m");
    f.lua::<()>("b = m.items.b; b.hp = 99; b.tags[1] = 'mine'; m.items.a.hp = 5");
    f.write("m", &format!("{v2} -- unchanged"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(bool, i64, String, i64)>(
            "return m.items.b == b, m.items.b.hp, m.items.b.tags[1], m.items.a.hp"
        ),
        (true, 99, "mine".into(), 5)
    );
}

/// An `on_reload` hook makes the reload plan again from the same new version: the first plan
/// must not have changed it (a new table that goes live holds the module, not a copy of it).
#[test]
fn a_plan_made_again_after_a_hook_sees_the_new_version_unchanged() {
    let f = Fixture::new();
    f.write("m", "local M = { a = {} }\nreturn M");
    f.lua::<()>("m = require 'm'; require('hotlua').on_reload(function() end)");
    f.write(
        "m",
        "local M = { a = {} }\nM.h = { up = M, f = function() return M end }\nreturn M",
    );
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m.h.up == m and m.h.f() == m"));
}

#[test]
fn new_table_referring_to_the_module_points_at_the_live_module() {
    let f = Fixture::new();
    f.write("m", "local M = {}\nreturn M");
    f.lua::<()>("m = require 'm'");
    f.write("m", "local M = {}\nM.child = { parent = M }\nreturn M");
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m.child.parent == m"));
}

#[test]
fn cycles_between_tables_terminate() {
    let f = Fixture::new();
    let source = |n: i64| {
        format!("local a, b = {{}}, {{}}\na.b = b\nb.a = a\na.n = {n}\nreturn {{ a = a, b = b }}")
    };
    f.write("m", &source(1));
    f.lua::<()>("m = require 'm'; a = m.a");
    f.write("m", &source(2));
    f.reload_ok("m");
    assert!(f.lua::<bool>("return m.a == a and a.b.a == a and m.b == a.b"));
}

#[test]
fn standard_library_is_never_rewritten() {
    let f = Fixture::new();
    f.write(
        "m",
        "local fmt = string.format\nlocal M = { fmt = string.format, str = string, print = print, G = _G }\n\
         function M.show(x) return fmt('%d', x) end\nreturn M",
    );
    f.lua::<()>(
        "m = require 'm'; saved = {}; for k, v in pairs(string) do saved[k] = v end \
         saved_format = string.format; saved_insert = table.insert",
    );
    // v2 points the fields elsewhere and puts its own values where the std tables were.
    f.write(
        "m",
        "local fmt = string.format\nlocal M = { fmt = function() return 'mine' end, \
         str = { format = function() return 'hijack' end }, print = 'text', G = { x = 1 } }\n\
         M.insert = table.insert\nfunction M.show(x) return fmt('<%d>', x) end\nreturn M",
    );
    f.reload_ok("m");
    assert!(f.lua::<bool>(
        "for k, v in pairs(string) do if saved[k] ~= v then return false end end \
         for k, v in pairs(saved) do if string[k] ~= v then return false end end \
         return string.format == saved_format and table.insert == saved_insert \
         and _G.x == nil and type(print) == 'function' and string.format('%d', 7) == '7'"
    ));
    assert_eq!(f.lua::<String>("return m.show(3)"), "<3>");
}

#[test]
fn globals_style_module_keeps_its_global_table_and_state() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "Shop = Shop or {{}}\nShop.stock = Shop.stock or {{ apples = 3 }}\n\
             function Shop.sell() Shop.stock.apples = Shop.stock.apples - 1 return '{word}' end"
        )
    };
    f.write("shop", &source("sold"));
    f.lua::<()>("require 'shop'; shop = Shop; Shop.sell()");
    f.write("shop", &source("SOLD"));
    f.reload_ok("shop");
    assert!(
        f.lua::<bool>("return Shop == shop and Shop.sell() == 'SOLD' and Shop.stock.apples == 1")
    );
}

#[test]
fn failed_reload_leaves_every_global_as_it_was() {
    let f = Fixture::new();
    f.write("shop", "Shop = { n = 1 }\nfunction Shop.f() return 1 end");
    f.lua::<()>("require 'shop'; shop = Shop; f1 = Shop.f");
    f.write(
        "shop",
        "Shop = { n = 2 }\nfunction Shop.f() return 2 end\nExtra = true\nerror('boom')",
    );
    assert!(f.reload("shop").is_err());
    assert!(f.lua::<bool>("return Shop == shop and Shop.f == f1 and Extra == nil and Shop.n == 1"));
}
