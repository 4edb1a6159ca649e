//! The new top level sees the world as the live program does (design §Semantics 9): globals,
//! host tables, `_G`'s metatable, and what it writes into tables it did not create takes
//! effect only if the whole reload succeeds.

mod common;
use common::Fixture;
use hotlua::Options;

/// A LÖVE-style `main.lua`: callbacks defined into a table the host made.
fn love_main(word: &str) -> String {
    format!(
        "local count = 0\n\
         function love.update(dt) count = count + dt return '{word}', count end\n\
         function love.draw() return 'draw {word}' end"
    )
}

#[test]
fn callbacks_defined_into_a_host_table_are_reloaded() {
    let f = Fixture::new();
    f.lua::<()>("love = { graphics = { print = print } }; host_love = love");
    f.write("main", &love_main("v1"));
    f.lua::<()>("require 'main'; update = love.update; love.update(1); love.update(2)");
    f.write("main", &love_main("v2"));
    let report = f.reload_ok("main");
    assert_eq!(report.tables_extended, vec!["love".to_string()]);
    // The same table, the new code, the live local, and a stored reference switched.
    assert_eq!(
        f.lua::<(bool, String, i64, String, String)>(
            "local w, n = love.update(1); return love == host_love, w, n, love.draw(), \
             (update(0))"
        ),
        (true, "v2".into(), 4, "draw v2".into(), "v2".into())
    );
}

#[test]
fn check_and_failed_reloads_leave_host_tables_as_they_were() {
    let f = Fixture::new();
    f.lua::<()>("love = {}");
    f.write("main", &love_main("v1"));
    f.lua::<()>("require 'main'; update = love.update");
    f.write(
        "main",
        &format!(
            "{}\nfunction love.keypressed() end\nlove.extra = 1",
            love_main("v2")
        ),
    );
    let report = f.reloader.check(&["main"], &Options::default()).unwrap();
    assert!(!report.applied);
    let unchanged = "return love.update == update and love.keypressed == nil \
                     and love.extra == nil and (love.update(0)) == 'v1'";
    assert!(f.lua::<bool>(unchanged), "check changed the host table");
    f.write(
        "main",
        &format!("{}\nlove.extra = 1\nerror('boom')", love_main("v3")),
    );
    assert!(f.reload("main").is_err());
    assert!(
        f.lua::<bool>(unchanged),
        "a failed reload changed the host table"
    );
}

#[test]
fn functions_added_to_a_library_table_are_reloaded() {
    let f = Fixture::new();
    let source = |prefix: &str| {
        format!(
            "function string.trim(s) return '{prefix}' .. s:match('^%s*(.-)%s*$') end\n\
             vim.notify = function(message) return 'notified ' .. message end\nreturn true"
        )
    };
    f.lua::<()>("vim = { api = {} }");
    f.write("ext", &source(""));
    f.lua::<()>("require 'ext'; trim = string.trim");
    f.write("ext", &source("v2:"));
    f.reload_ok("ext");
    assert_eq!(
        f.lua::<(String, String, String, bool)>(
            "return ('  x  '):trim(), trim(' y '), vim.notify('a'), string.upper ~= nil"
        ),
        ("v2:x".into(), "v2:y".into(), "notified a".into(), true)
    );
}

#[test]
fn functions_added_to_a_library_table_take_the_edit() {
    let f = Fixture::new();
    let source =
        |suffix: &str| format!("function string.shout(s) return s:upper() .. '{suffix}' end");
    f.write("ext", &source("!"));
    f.lua::<()>("require 'ext'; shout = string.shout");
    f.write("ext", &source("!!"));
    f.reload_ok("ext");
    assert_eq!(
        f.lua::<(String, String)>("return ('a'):shout(), shout('b')"),
        ("A!!".into(), "B!!".into())
    );
}

#[test]
fn rawget_and_the_metatable_of_g_are_the_live_ones() {
    let f = Fixture::new();
    // Lazy globals supplied by `_G`'s metatable, as Penlight's `require 'pl'` does.
    f.lua::<()>(
        "live_mt = { __index = function(_, k) if k == 'lazy' then return 'from __index' end end }\
         setmetatable(_G, live_mt); flag = 'live'",
    );
    let source = |word: &str| {
        format!(
            "local M = {{ word = '{word}' }}\n\
             M.raw = rawget(_G, 'flag')\nM.lazy = lazy\nM.mt = getmetatable(_G) == live_mt\n\
             function M.get() return M.word end\nreturn M"
        )
    };
    f.write("m", &source("v1"));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source("v2"));
    let report = f
        .reloader
        .reload(&["m"], &Options::with_data(hotlua::DataPolicy::Overwrite))
        .unwrap();
    assert!(report.applied);
    assert_eq!(
        f.lua::<(String, String, String, bool)>("return m.get(), m.raw, m.lazy, m.mt"),
        ("v2".into(), "live".into(), "from __index".into(), true)
    );
}

#[test]
fn a_built_in_global_is_seen_and_kept() {
    let f = Fixture::new();
    // pl.compat: `if not rawget(_G, 'warn') then warn = function() ... end end`.
    let source = "local M = {}\nif not rawget(_G, 'shout') then\n  shout = function() return 'replacement' end\nend\n\
                  function M.f() return shout() end\nreturn M";
    f.lua::<()>("shout = function() return 'built in' end; built_in = shout");
    f.write("compat", source);
    f.lua::<()>("compat = require 'compat'");
    f.reload_ok("compat");
    assert!(f.lua::<bool>("return shout == built_in and compat.f() == 'built in'"));
}

#[test]
fn a_strict_global_table_does_not_fail_the_reload() {
    let f = Fixture::new();
    f.lua::<()>(
        "declared = 'yes'\nsetmetatable(_G, { __index = function(_, k) \
         error('variable ' .. tostring(k) .. ' is not declared', 2) end })",
    );
    let source = |word: &str| {
        format!(
            "local M = {{}}\nlocal d = declared\nfunction M.f() return d .. '{word}' end\nreturn M"
        )
    };
    f.write("m", &source("1"));
    f.lua::<()>("m = require 'm'");
    f.write("m", &source("2"));
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.f()"), "yes2");
}

#[test]
fn a_local_alias_of_a_global_table_holding_module_functions_is_not_hidden() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "local bus = Events\nlocal M = {{}}\n\
             function M.tick() return '{word}' end\n\
             function M.fire() return bus.on_tick() end\nreturn M"
        )
    };
    f.lua::<()>("Events = {}");
    f.write("game", &source("v1"));
    f.lua::<()>("game = require 'game'; Events.on_tick = game.tick");
    f.write("game", &source("v2"));
    f.reload_ok("game");
    assert_eq!(f.lua::<String>("return game.fire()"), "v2");
}

#[test]
fn globals_style_module_reusing_its_table_keeps_data_and_gets_new_code() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "Registry = Registry or {{ items = {{}}, count = 0 }}\n\
             function Registry.add(x) Registry.count = Registry.count + 1 \
             Registry.items[#Registry.items + 1] = x return '{word}' end"
        )
    };
    f.write("registry", &source("v1"));
    f.lua::<()>("require 'registry'; reg = Registry; Registry.add('a')");
    f.write("registry", &source("v2"));
    f.reload_ok("registry");
    assert_eq!(
        f.lua::<(bool, String, i64, i64)>(
            "local w = Registry.add('b'); return Registry == reg, w, Registry.count, #Registry.items"
        ),
        (true, "v2".into(), 2, 2)
    );
}

#[test]
fn globals_the_new_top_level_creates_and_sets_take_effect_once() {
    let f = Fixture::new();
    f.write("m", "Version = 1\nreturn {}");
    f.lua::<()>("require 'm'");
    f.write(
        "m",
        "Version = 1\nAdded = 'new'\nfunction Helper() return 'h' end\nreturn {}",
    );
    f.reload_ok("m");
    assert_eq!(
        f.lua::<(i64, String, String)>("return Version, Added, Helper()"),
        (1, "new".into(), "h".into())
    );
}

#[test]
fn staging_copies_nothing_of_global_data_the_top_level_does_not_read() {
    let f = Fixture::new();
    f.lua::<()>("Big = {} for i = 1, 200000 do Big[i] = { i } end");
    let source = |n: i64| format!("local M = {{}}\nfunction M.f() return {n} end\nreturn M");
    f.write("small", &source(1));
    f.lua::<()>("small = require 'small'");
    f.write("small", &source(2));
    let report = f.reload_ok("small");
    let globals: usize =
        f.lua::<i64>("local n = 0 for _ in pairs(_G) do n = n + 1 end return n") as usize;
    // `_G`'s keys and the module table's fields, nothing of Big's 200,000 entries.
    assert!(
        report.staging_entries_copied <= globals + 10,
        "staging copied {} entries ({globals} globals)",
        report.staging_entries_copied
    );
    assert_eq!(f.lua::<i64>("return small.f()"), 2);
}

#[test]
fn staging_copies_a_global_table_the_top_level_reads_once() {
    let f = Fixture::new();
    f.lua::<()>("Big = {} for i = 1, 1000 do Big[i] = i end");
    f.write(
        "m",
        "local big = Big\nlocal again = Big\nreturn { n = #big + #again }",
    );
    f.lua::<()>("m = require 'm'");
    let report = f.reload_ok("m");
    assert!(
        (1000..1200).contains(&report.staging_entries_copied),
        "staging copied {} entries",
        report.staging_entries_copied
    );
}

/// Module `name` is refused and `unchanged` stays true. A `package.preload` entry is refused
/// before its same-named file is looked at: its loader is not a Lua chunk.
fn refused(f: &Fixture, name: &str, unchanged: &str) {
    let error = f
        .reload(name)
        .expect_err("a module that did not come from its file");
    match &error {
        hotlua::Error::NotFromFile { .. } => {
            assert!(
                error.to_string().contains(&format!("{name}.lua")),
                "{error}"
            )
        }
        hotlua::Error::NotLuaSource { .. } => {}
        other => panic!("{name}: {other:?}"),
    }
    assert_eq!(error.module(), Some(name));
    assert!(f.lua::<bool>(unchanged), "{name} was changed: {error}");
}

#[test]
fn the_standard_library_is_never_reloaded_from_a_file() {
    let f = Fixture::new();
    f.lua::<()>("upper, concat, write = string.upper, table.concat, io.write");
    for (name, unchanged) in [
        (
            "string",
            "return string.upper == upper and string.upper('a') == 'A'",
        ),
        ("table", "return table.concat == concat"),
        ("io", "return io.write == write"),
        ("_G", "return type(print) == 'function'"),
    ] {
        f.write(
            name,
            "local M = {}\nfunction M.upper() return 'hijacked' end\nM.concat = M.upper\n\
             M.write = M.upper\nprint = M.upper\nreturn M",
        );
        refused(&f, name, unchanged);
    }
    // Through the Lua API: `nil, message`.
    let (ok, message) = f.lua::<(bool, String)>(
        "local hotlua = require 'hotlua'; local r, m = hotlua.reload('string'); return r ~= nil, m",
    );
    assert!(!ok && message.contains("C functions"), "{message}");
}

#[test]
fn preload_entries_and_host_modules_are_never_reloaded_from_a_file() {
    // The host's modules are there before hotlua starts in the state.
    let lua = mlua::Lua::new();
    lua.load(
        "package.preload.pre = function() return { f = function() return 'preloaded' end } end\n\
         pre = require 'pre'\n\
         package.loaded.hostmod = { f = function() return 'host' end }",
    )
    .exec()
    .unwrap();
    let f = Fixture::with(lua);
    for name in ["pre", "hostmod"] {
        f.write(name, "return { f = function() return 'file' end }");
    }
    refused(&f, "pre", "return pre.f() == 'preloaded'");
    refused(&f, "hostmod", "return package.loaded.hostmod.f() == 'host'");
}

#[test]
fn a_data_module_loaded_before_hotlua_still_reloads() {
    let f = Fixture::new();
    f.write("config", "return { port = 80, name = 'a' }");
    f.lua::<()>("config = require 'config'");
    f.write("config", "return { port = 80, name = 'a', added = true }");
    f.reload_ok("config");
    assert!(f.lua::<bool>("return config.added == true"));
}

#[cfg(feature = "watch")]
#[test]
fn a_saved_standard_library_file_is_ignored_by_the_watcher() {
    let f = Fixture::new();
    f.lua::<()>("concat = table.concat");
    f.reloader.watch(std::slice::from_ref(&f.dir)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    f.write(
        "table",
        "return { concat = function() return 'hijacked' end }",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        assert!(f
            .reloader
            .poll(std::time::Duration::from_millis(100))
            .is_none());
    }
    assert!(f.lua::<bool>("return table.concat == concat"));
}

#[test]
fn fields_a_failed_top_level_deleted_come_back() {
    let f = Fixture::new();
    f.lua::<()>("love = { keep = 1 }; Count = 3");
    f.write("main", &love_main("v1"));
    f.lua::<()>("require 'main'; draw = love.draw");
    f.write(
        "main",
        &format!(
            "{}\nlove.draw = nil\nlove.keep = nil\nCount = nil\nerror('boom')",
            love_main("v2")
        ),
    );
    assert!(f.reload("main").is_err());
    assert!(f.lua::<bool>("return love.draw == draw and love.keep == 1 and Count == 3"));
}
