//! Module-level locals: two declarations with one name are two variables, and the data
//! policies reach locals (design §Semantics 3).

mod common;
use common::Fixture;
use hotlua::{DataPolicy, Options};

#[test]
fn two_top_level_locals_with_one_name_stay_two_variables() {
    let f = Fixture::new();
    f.write("a", "return 'A'");
    let source = |extra: &str| {
        format!(
            "local ok, x = pcall(require, 'a')\n\
             local M = {{}}\n\
             function M.first() return ok, x end\n\
             local ok, y = pcall(error, {{ code = 7 }})\n\
             function M.second() return ok, y.code end\n{extra}\
             return M"
        )
    };
    f.write("m", &source(""));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source("function M.third() return ok end\n"));
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(bool, String, bool, i64, bool)>(
            "local a, b = m.first(); local c, d = m.second(); return a, b, c, d, m.third()"
        ),
        (true, "A".into(), false, 7, false)
    );
}

#[test]
fn a_local_no_old_function_captured_is_not_joined_to_a_namesake() {
    let f = Fixture::new();
    // v1: only `second` captures a local named `ok` (the second one).
    f.write(
        "m",
        "local ok = 'first'\nlocal M = {}\nlocal ok = 42\nfunction M.second() return ok end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    // v2 adds a function that captures the *first* `ok`.
    f.write(
        "m",
        "local ok = 'first'\nlocal M = {}\nfunction M.first() return ok end\nlocal ok = 42\n\
         function M.second() return ok end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(String, i64)>("return m.first(), m.second()"),
        ("first".into(), 42)
    );
}

fn damage_module(damage: i64) -> String {
    format!(
        "local DAMAGE = {damage}\nlocal hits = 0\nlocal M = {{}}\n\
         function M.hit() hits = hits + 1 return DAMAGE, hits end\nreturn M"
    )
}

#[test]
fn overwrite_gives_an_edited_local_its_new_value_and_keeps_the_others() {
    let f = Fixture::new();
    f.write("m", &damage_module(10));
    f.lua::<()>("m = require 'm'; m.hit(); m.hit()");
    f.write("m", &damage_module(25));
    let report = f
        .reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Overwrite))
        .unwrap();
    assert!(report.locals_kept_edited.is_empty(), "{report:?}");
    assert_eq!(f.lua::<(i64, i64)>("return m.hit()"), (25, 3));
}

#[test]
fn merge3_gives_an_edited_local_its_new_value_unless_the_program_changed_it() {
    let f = Fixture::new();
    let source = |damage: i64, mode: &str| {
        format!(
            "local DAMAGE = {damage}\nlocal mode = '{mode}'\nlocal M = {{}}\n\
             function M.get() return DAMAGE, mode end\n\
             function M.set_mode(m) mode = m end\nreturn M"
        )
    };
    f.write("m", &source(10, "easy"));
    f.lua::<()>("m = require 'm'; m.set_mode('custom')");
    f.write("m", &source(25, "hard"));
    let report = f
        .reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Merge3))
        .unwrap();
    assert_eq!(
        f.lua::<(i64, String)>("return m.get()"),
        (25, "custom".into())
    );
    // One conflict, `mode`: on Lua 5.1, once per closure holding a copy of it.
    assert!(!report.conflicts.is_empty(), "{report:?}");
    assert!(
        report.conflicts.iter().all(|c| c.path.ends_with("@mode")),
        "{report:?}"
    );
    // After the reload the new values are the base: an unchanged reload keeps both.
    f.reload_ok("m");
    f.reloader
        .reload(&["m"], &Options::with_data(DataPolicy::Merge3))
        .unwrap();
    assert_eq!(
        f.lua::<(i64, String)>("return m.get()"),
        (25, "custom".into())
    );
}

#[test]
fn keep_reports_locals_that_kept_a_live_value_although_edited() {
    let f = Fixture::new();
    f.write("m", &damage_module(10));
    f.lua::<()>("m = require 'm'; m.hit()");
    f.write("m", &damage_module(25));
    let report = f.reload_ok("m");
    assert_eq!(f.lua::<(i64, i64)>("return m.hit()"), (10, 2));
    assert_eq!(report.locals_kept_edited, vec!["m.hit@DAMAGE".to_string()]);
}

#[test]
fn two_fields_the_new_version_makes_one_table_become_one_live_table() {
    let f = Fixture::new();
    f.write("m", "local M = { a = { x = 1 }, b = { y = 2 } }\nreturn M");
    f.lua::<()>("m = require 'm'; a, b = m.a, m.b");
    f.write("m", "local M = { a = { x = 1 } }\nM.b = M.a\nreturn M");
    let report = f.reload_ok("m");
    // One of the two live tables, whichever path paired first, now stands at both paths.
    assert!(f.lua::<bool>("return m.b == m.a and (m.a == a or m.a == b) and m.b.x == 1"));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("another field") && (w.starts_with("m.a") || w.starts_with("m.b"))),
        "{report:?}"
    );
}

#[test]
fn a_local_declared_without_a_value_keeps_its_live_value() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "local world\nlocal M = {{}}\nfunction M.load() world = {{ frame = 0 }} end\n\
             function M.step() world.frame = world.frame + 1 return '{word}', world.frame end\n\
             return M"
        )
    };
    f.write("main", &source("v1"));
    f.lua::<()>("m = require 'main'; m.load(); m.step()");
    f.write("main", &source("v2"));
    let report = f.reload_ok("main");
    assert!(report.locals_type_changed.is_empty(), "{report:?}");
    assert_eq!(f.lua::<(String, i64)>("return m.step()"), ("v2".into(), 2));
}

/// A host's own searcher (LÖVE's, Neovim's) names its chunks its own way (`@rules.lua`):
/// the module's locals are still joined, by an explicit reload and by the watcher's.
#[test]
fn locals_of_a_module_a_host_searcher_loaded_are_kept() {
    let f = Fixture::new();
    let source = |label: &str| {
        format!(
            "local M = {{}}\nlocal bounces = 0\n\
             function M.bump() bounces = bounces + 1 return bounces end\n\
             function M.label() return '{label}' end\nreturn M"
        )
    };
    f.write("rules", &source("v1"));
    f.lua::<()>(&format!(
        "local dir = {:?}\n\
         table.insert(package.searchers or package.loaders, 2, function(name)\n\
           local file = io.open(dir .. '/' .. name .. '.lua')\n\
           if not file then return '\\n\\tnot in the host folder' end\n\
           local text = file:read('*a') file:close()\n\
           return (loadstring or load)(text, '@' .. name .. '.lua')\n\
         end)\n\
         rules = require 'rules'; rules.bump(); rules.bump()",
        f.dir.display().to_string()
    ));
    f.write("rules", &source("v2"));
    let report = f.reload_ok("rules");
    assert_eq!(report.locals_joined, 1, "{report:?}");
    assert_eq!(
        f.lua::<(String, i64)>("return rules.label(), rules.bump()"),
        ("v2".into(), 3)
    );
}
