//! Top levels that write many globals, and modules of many records: what staging and planning
//! do at that scale is counted (never timed), and undone exactly when the reload fails.

mod common;
use common::Fixture;
use hotlua::{DataPolicy, Engine, Options};

/// Lua 5.1 and LuaJIT give mlua room for about 8000 handles, and a plan holds one per write
/// (docs/semantics.md, "Functions per plan"): smaller sizes there.
const SMALL_STACK: bool = cfg!(any(feature = "lua51", feature = "luajit"));

const GLOBALS: usize = if SMALL_STACK { 2_000 } else { 20_000 };

/// `_G` as a list of `key=value` lines, sorted: what must be the same after a failed reload.
const SNAPSHOT: &str = "local lines = {} \
    for k, v in next, _G do lines[#lines + 1] = tostring(k) .. '=' .. tostring(v) end \
    table.sort(lines) return table.concat(lines, '\\n')";

/// A module whose top level rewrites every `g<i>` global, changes one and deletes another.
fn rewriting(tag: i64, tail: &str) -> String {
    format!(
        "for i = 1, {GLOBALS} do _G['g' .. i] = i end\n\
         g7 = {tag}\n\
         g8 = nil\n\
         local M = {{}}\nfunction M.f() return {tag} end\n{tail}\nreturn M"
    )
}

fn with_globals() -> Fixture {
    let f = Fixture::new();
    f.lua::<()>(&format!("for i = 1, {GLOBALS} do _G['g' .. i] = i end"));
    f
}

#[test]
fn rewriting_many_globals_is_compared_slot_for_slot() {
    let f = with_globals();
    f.write("many", &rewriting(1, ""));
    f.lua::<()>("many = require 'many'");
    f.write("many", &rewriting(2, ""));
    let report = f.reload_ok("many");
    assert!(report.staging_entries_copied > GLOBALS);
    if slots_available() {
        assert_eq!(report.staging_lookups, 0, "a key was looked up");
    } else {
        assert!(
            report.staging_lookups > GLOBALS,
            "{}",
            report.staging_lookups
        );
    }
    // `g7`'s type did not change: the live value stays (`keep`).
    assert_eq!(
        f.lua::<(i64, i64, bool, i64)>("return many.f(), g7, g8 == nil, g9"),
        (2, 1, true, 9)
    );
}

#[test]
fn a_top_level_that_grows_g_is_compared_by_key_and_takes_effect() {
    let f = with_globals();
    f.write("many", &rewriting(1, ""));
    f.lua::<()>("many = require 'many'");
    let added = format!("for i = 1, {GLOBALS} do _G['new' .. i] = i end");
    f.write("many", &rewriting(2, &added));
    let report = f.reload_ok("many");
    assert!(
        report.staging_lookups > GLOBALS,
        "{}",
        report.staging_lookups
    );
    assert_eq!(
        f.lua::<(i64, i64, i64)>(&format!("return many.f(), new1, new{GLOBALS}")),
        (2, 1, GLOBALS as i64)
    );
}

#[test]
fn failed_and_checked_top_levels_leave_g_exactly_as_it_was() {
    let grows = format!("for i = 1, {GLOBALS} do _G['new' .. i] = i end");
    // Slots kept (a value changed, a type changed, a deleted key the collector then marks
    // dead): compared slot for slot where the build can. Keys added (maybe displacing
    // others), `_G` grown: compared by key.
    let cases = [
        ("g9 = 'x'\ng10 = nil\ncollectgarbage()", true),
        ("Added = 1\n_G[1] = 'one'\n_G[2] = 'two'", false),
        (grows.as_str(), false),
    ];
    for (tail, slot_for_slot) in cases {
        let f = with_globals();
        f.write("many", &rewriting(1, ""));
        f.lua::<()>("many = require 'many'");
        let before: String = f.lua(SNAPSHOT);
        f.write("many", &rewriting(2, tail));
        let report = f.reloader.check(&["many"], &Options::default()).unwrap();
        assert!(
            f.lua::<String>(SNAPSHOT) == before,
            "check changed _G ({tail})"
        );
        if slot_for_slot && slots_available() {
            assert_eq!(report.staging_lookups, 0, "{tail}");
        }
        f.write("many", &rewriting(2, &format!("{tail}\nerror('boom')")));
        assert!(f.reload("many").is_err());
        assert!(
            f.lua::<String>(SNAPSHOT) == before,
            "a failed reload changed _G ({tail})"
        );
    }
}

/// A module of `records` records, as a big data file is written: one table of tables.
fn records(count: usize, name: impl Fn(usize) -> String) -> String {
    let mut source = String::from("local M = { items = {\n");
    for i in 0..count {
        source += &format!(
            "  {{ id = {i}, name = '{}', tags = {{ 'a', 'b' }}, w = {i}.5 }},\n",
            name(i)
        );
    }
    source + "} }\nfunction M.count() return #M.items end\nreturn M\n"
}

#[test]
fn a_module_of_many_records_keeps_every_table_and_merges_by_the_policy() {
    const RECORDS: usize = if SMALL_STACK { 1_000 } else { 5_000 };
    let f = Fixture::new();
    f.write("records", &records(RECORDS, |i| format!("n{i}")));
    f.lua::<()>(
        "records = require 'records'; items = records.items; first = items[1]; \
         tags = items[2].tags; first.name = 'runtime'",
    );
    let edited = records(RECORDS + 1, |i| format!("e{i}"));
    f.write("records", &edited);
    let report = f.reload_ok("records");
    // The module, `items`, and each record and its `tags` of the old version.
    assert_eq!(report.tables_merged, 2 + 2 * RECORDS);
    assert_eq!(report.fields_added, 1);
    assert!(f.lua::<bool>(&format!(
        "return records.items == items and items[1] == first and items[2].tags == tags \
         and first.name == 'runtime' and items[2].name == 'n1' and records.count() == {} \
         and items[{}].name == 'e{RECORDS}'",
        RECORDS + 1,
        RECORDS + 1
    )));
    f.reloader
        .reload(&["records"], &Options::with_data(DataPolicy::Overwrite))
        .unwrap();
    assert!(
        f.lua::<bool>("return items[1] == first and first.name == 'e0' and items[2].name == 'e1'")
    );
}

#[test]
fn the_first_reload_compiles_a_file_once() {
    let f = Fixture::new();
    // Lua's own file searcher, wrapped by a host function that counts what it is asked for.
    let searchers: mlua::Table = f.lua("return package.searchers or package.loaders");
    let lua_searcher: mlua::Function = searchers.get(2).unwrap();
    let asked = f.lua.create_table().unwrap();
    let counts = asked.clone();
    let counting = f
        .lua
        .create_function(move |_, name: String| {
            counts.set(
                name.as_str(),
                counts.get::<i64>(name.as_str()).unwrap_or(0) + 1,
            )?;
            lua_searcher.call::<mlua::MultiValue>(name)
        })
        .unwrap();
    searchers.set(2, counting).unwrap();
    f.write("m", "return { v = 1 }");
    f.lua::<()>("m = require 'm'");
    f.write("m", "return { v = 2 }");
    f.reload_ok("m");
    f.reload_ok("m");
    // `require` asked once; hotlua compiles the file itself, having found which searcher is
    // Lua's with a file of its own.
    assert_eq!(asked.get::<i64>("m").unwrap(), 1);
    assert_eq!(asked.get::<i64>("hotlua_probe").unwrap(), 1);
}

/// Whether staging copies tables slot for slot: the C shim of the Lua 5.4 build does.
fn slots_available() -> bool {
    cfg!(feature = "lua54") && Engine::inplace_available()
}

/// More changed fields than mlua can hold handles to at once (about a million values on Lua
/// 5.2+, 8000 on Lua 5.1 and LuaJIT): `overwrite` writes them all and a failed reload would
/// put them all back.
#[test]
fn overwriting_more_fields_than_mlua_holds_handles_to() {
    const FIELDS: usize = if SMALL_STACK { 10_000 } else { 400_000 };
    let fields = |tag: &str, store: &str| {
        let mut source = String::from("return {\n");
        for i in 0..FIELDS {
            source += &format!("  k{i} = '{tag}{i}',\n");
        }
        source + &format!("  store = {{ {store} }},\n}}\n")
    };
    let overwrite = Options::with_data(DataPolicy::Overwrite);
    let f = Fixture::new();
    f.write("fields", &fields("a", ""));
    f.lua::<()>(
        "fields = require 'fields' \
         setmetatable(fields.store, { __newindex = function() error('refused') end })",
    );
    let all_hold = |tag: &str| {
        f.lua::<bool>(&format!(
            "return fields.k0 == '{tag}0' and fields.k{last} == '{tag}{last}'",
            last = FIELDS - 1
        ))
    };
    f.write("fields", &fields("b", ""));
    f.reloader.reload(&["fields"], &overwrite).unwrap();
    assert!(all_hold("b"));
    // Every field is written before the field added through `__newindex`, which fails: every
    // one is put back.
    f.write("fields", &fields("c", "added = 1"));
    let error = f.reloader.reload(&["fields"], &overwrite).unwrap_err();
    assert!(error.to_string().contains("refused"), "{error}");
    assert!(all_hold("b"));
}
