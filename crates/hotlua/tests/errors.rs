//! Bad input: every failure names the module, the file and (where Lua gives one) the line,
//! carries the original error text, and changes nothing.

mod common;
use std::time::{Duration, Instant};

use common::Fixture;
use hotlua::{Error, Options};

const V1: &str =
    "local n = 0\nlocal M = { data = 1 }\nfunction M.f() n = n + 1 return 'v1', n end\nreturn M";
const FIXED: &str =
    "local n = 0\nlocal M = { data = 1 }\nfunction M.f() n = n + 1 return 'fixed', n end\nreturn M";

/// Loads V1, calls `m.f()` once, reloads `bad`, and checks the old module still works
/// unchanged, then that the fixed version reloads normally.
fn old_code_survives(bad: &[u8]) -> Error {
    old_code_survives_with(bad, &Options::default())
}

fn old_code_survives_with(bad: &[u8], options: &Options) -> Error {
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'; m.f(); f1 = m.f; MODGLOBAL = 'g1'");
    f.write_file(&file, bad);
    let error = f
        .reloader
        .reload(&["m"], options)
        .expect_err("bad input must fail");
    assert_eq!(
        f.lua::<(String, bool)>("return MODGLOBAL, NEWGLOBAL == nil"),
        ("g1".into(), true),
        "globals changed by a failed reload"
    );
    assert_eq!(error.module(), Some("m"));
    let message = error.to_string();
    assert!(
        !message.contains("stack traceback"),
        "not one line: {message}"
    );
    assert!(message.contains("'m'"), "no module name in: {message}");
    assert!(
        message.contains(&file.display().to_string()),
        "no file in: {message}"
    );
    assert_eq!(
        f.lua::<(String, i64, bool, i64)>("local v, n = m.f(); return v, n, m.f == f1, m.data"),
        ("v1".into(), 2, true, 1)
    );
    f.write("m", FIXED);
    f.reload_ok("m");
    assert_eq!(f.lua::<(String, i64)>("return m.f()"), ("fixed".into(), 3));
    error
}

#[test]
fn syntax_error_names_the_line_and_keeps_old_code() {
    let error = old_code_survives(b"local M = {}\nfunction M.f()\n  return 1 +\nend\nreturn M");
    assert!(matches!(error, Error::Load { .. }), "{error:?}");
    assert_eq!(error.line(), Some(4));
    assert!(
        error.to_string().contains("unexpected symbol near 'end'"),
        "{error}"
    );
}

#[test]
fn runtime_error_in_top_level_names_the_line() {
    let error = old_code_survives(b"local M = {}\nlocal x = nil\nx.y = 1\nreturn M");
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert_eq!(error.line(), Some(3));
    assert!(error.to_string().contains("attempt to index"), "{error}");
}

#[test]
fn error_with_a_table_value_is_reported() {
    let error = old_code_survives(b"error({ code = 42 })");
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert!(error.to_string().contains("table"), "{error}");
}

#[test]
fn empty_file_is_refused() {
    let error = old_code_survives(b"  \n\n");
    assert!(matches!(error, Error::EmptyFile { .. }), "{error:?}");
}

#[test]
fn binary_garbage_is_refused() {
    let error = old_code_survives(&[0x00, 0xff, 0x13, 0x37, 0x1b, 0x4c, 0x75, 0x61, 0x99, 0x00]);
    assert!(matches!(error, Error::Load { .. }), "{error:?}");
}

#[test]
fn module_returning_another_kind_of_value_is_refused() {
    let error = old_code_survives(b"return function() end");
    assert!(
        matches!(
            error,
            Error::ReturnChanged {
                old: "table",
                new: "function",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn missing_file_is_reported_with_the_paths_tried() {
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'; f1 = m.f");
    std::fs::remove_file(&file).unwrap();
    let error = f.reload("m").unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&file.display().to_string()),
        "{error}"
    );
    assert!(f.lua::<bool>("return m.f == f1 and require('m') == m"));
}

#[test]
fn failure_through_the_lua_api_is_nil_and_message() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", "return {\n");
    let (ok, message): (mlua::Value, String) = f.lua("return require('hotlua').reload('m')");
    assert_eq!(ok, mlua::Value::Nil);
    assert!(
        message.contains("module 'm'") && message.contains("m.lua:2:"),
        "{message}"
    );
}

#[test]
fn batch_where_the_second_module_fails_changes_neither() {
    let f = Fixture::new();
    f.write("a", "return { f = function() return 'a1' end, x = 1 }");
    f.write("b", "return { f = function() return 'b1' end }");
    f.lua::<()>("a = require 'a'; b = require 'b'");
    f.write(
        "a",
        "return { f = function() return 'a2' end, x = 1, added = true }",
    );
    f.write("b", "return { f = function() return 'b2' end }\n)");
    let error = f
        .reloader
        .reload(&["a", "b"], &hotlua::Options::default())
        .unwrap_err();
    assert_eq!(error.module(), Some("b"));
    assert_eq!(
        f.lua::<(String, String, bool)>("return a.f(), b.f(), a.added == nil"),
        ("a1".into(), "b1".into(), true)
    );
}

#[test]
fn module_first_required_by_a_failed_reload_is_forgotten() {
    let f = Fixture::new();
    f.write("helper", "loads = (loads or 0) + 1\nreturn { v = 1 }");
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", "local h = require 'helper'\nerror('late failure')");
    assert!(f.reload("m").is_err());
    assert!(f.lua::<bool>("return package.loaded.helper == nil"));
}

#[test]
fn reload_of_a_module_named_twice_is_refused() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let error = f
        .reloader
        .reload(&["m", "m"], &hotlua::Options::default())
        .unwrap_err();
    assert!(matches!(error, Error::Request(_)), "{error:?}");
}

/// `string.dump` of a version 2 of the module: what `luac` writes.
fn bytecode_of(source: &str) -> Vec<u8> {
    let lua = mlua::Lua::new();
    let chunk = lua.load(source).into_function().unwrap();
    chunk.dump(false)
}

#[test]
fn precompiled_module_is_refused_by_reload_and_check() {
    let bytecode = bytecode_of(FIXED);
    let error = old_code_survives(&bytecode);
    assert!(matches!(error, Error::Precompiled { .. }), "{error:?}");
    assert!(error.to_string().contains("precompiled"), "{error}");

    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write_file(&file, &bytecode);
    let error = f.reloader.check(&["m"], &Options::default()).unwrap_err();
    assert!(matches!(error, Error::Precompiled { .. }), "{error:?}");
}

#[test]
fn corrupted_bytecode_is_refused_without_reaching_lua() {
    let mut bytecode = bytecode_of(FIXED);
    let middle = bytecode.len() / 2;
    for byte in &mut bytecode[middle..middle + 16] {
        *byte = 0xff;
    }
    let error = old_code_survives(&bytecode);
    assert!(matches!(error, Error::Precompiled { .. }), "{error:?}");
}

#[test]
fn bytecode_after_a_shebang_line_is_refused_too() {
    let mut file = b"#!/usr/bin/env lua\n".to_vec();
    file.extend(bytecode_of(FIXED));
    let error = old_code_survives(&file);
    assert!(matches!(error, Error::Precompiled { .. }), "{error:?}");
}

#[test]
fn shebang_line_keeps_line_numbers() {
    let error = old_code_survives(b"#!/usr/bin/env lua\nlocal M = {}\nerror('boom')\nreturn M");
    assert_eq!(error.line(), Some(3), "{error}");
}

#[test]
fn top_level_that_never_ends_is_stopped() {
    let options = Options::default().with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = old_code_survives_with(
        b"MODGLOBAL = 'g2'\nNEWGLOBAL = true\nlocal M = {}\nwhile true do end\nreturn M",
        &options,
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("did not finish"), "{error}");
    assert!(error.to_string().contains("within 0.2 s"), "{error}");
    assert_eq!(error.line(), Some(4), "{error}");
}

#[test]
fn top_level_that_catches_the_timeout_still_fails() {
    let options = Options::default().with_timeout(Duration::from_millis(100));
    let error = old_code_survives_with(
        b"local M = {}\nfor i = 1, 3 do pcall(function() while true do end end) end\nreturn M",
        &options,
    );
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

#[test]
fn check_obeys_the_time_limit() {
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write_file(&file, b"local M = {}\nwhile true do end\nreturn M");
    let error = f
        .reloader
        .check(
            &["m"],
            &Options::default().with_timeout(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

#[test]
fn timeout_option_through_the_lua_api() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", "local M = {}\nwhile true do end\nreturn M");
    let (ok, message): (mlua::Value, String) =
        f.lua("return require('hotlua').reload('m', { timeout = 0.1 })");
    assert_eq!(ok, mlua::Value::Nil);
    assert!(message.contains("did not finish"), "{message}");
}

#[test]
fn the_programs_own_hook_is_back_after_a_reload() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", FIXED);
    let lines = Arc::new(AtomicUsize::new(0));
    let counter = lines.clone();
    f.lua
        .set_hook(mlua::HookTriggers::EVERY_LINE, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(mlua::VmState::Continue)
        })
        .unwrap();
    f.reload_ok("m");
    let before = lines.load(Ordering::Relaxed);
    f.lua::<()>("m.f()");
    assert!(
        lines.load(Ordering::Relaxed) > before,
        "the program's hook is gone"
    );
}

#[test]
fn os_exit_in_a_new_top_level_fails_the_reload() {
    let error = old_code_survives(b"MODGLOBAL = 'g2'\nlocal M = {}\nos.exit(3)\nreturn M");
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert!(error.to_string().contains("os.exit"), "{error}");
    assert_eq!(error.line(), Some(3), "{error}");
}

#[test]
fn os_exit_captured_and_caught_still_fails_the_reload() {
    let error =
        old_code_survives(b"local exit = os.exit\nlocal M = {}\npcall(exit, 0, true)\nreturn M");
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert!(error.to_string().contains("os.exit"), "{error}");
}

#[test]
fn top_level_that_exhausts_memory_fails_and_the_program_goes_on() {
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'; m.f(); f1 = m.f");
    f.lua
        .set_memory_limit(f.lua.used_memory() + 16 * 1024 * 1024)
        .unwrap();
    f.write_file(
        &file,
        b"local M = {}\nlocal t = {}\nfor i = 1, 1e9 do t[i] = i end\nreturn M",
    );
    let error = f.reload("m").unwrap_err();
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert!(error.to_string().contains("not enough memory"), "{error}");
    assert!(
        error.to_string().contains(&file.display().to_string()),
        "{error}"
    );
    assert_eq!(
        f.lua::<(String, i64, bool)>("local v, n = m.f(); return v, n, m.f == f1"),
        ("v1".into(), 2, true)
    );
    f.write("m", FIXED);
    f.reload_ok("m");
}

#[test]
fn new_version_requiring_itself_changes_no_global() {
    let error = old_code_survives(
        b"MODGLOBAL = 'g2'\nNEWGLOBAL = true\nlocal again = require 'm'\nreturn { f = function() end }",
    );
    assert!(matches!(error, Error::TopLevel { .. }), "{error:?}");
    assert!(error.to_string().contains("requires itself"), "{error}");
    assert_eq!(error.line(), Some(3), "{error}");
}

#[test]
fn failed_top_level_that_stopped_the_collector_leaves_it_running() {
    old_code_survives(b"collectgarbage('stop')\nerror('late failure')");
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write_file(&file, b"collectgarbage('stop')\nerror('late failure')");
    assert!(f.reload("m").is_err());
    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    assert!(f.lua::<bool>("return collectgarbage('isrunning')"));
    #[cfg(feature = "lua54")]
    {
        f.write_file(
            &file,
            b"collectgarbage('generational')\nerror('late failure')",
        );
        assert!(f.reload("m").is_err());
        assert_eq!(
            f.lua::<String>("return collectgarbage('incremental')"),
            "incremental"
        );
    }
    // A check runs the top level too, and changes nothing either.
    f.write_file(
        &file,
        b"collectgarbage('stop')\nreturn { f = function() end }",
    );
    f.reloader.check(&["m"], &Options::default()).unwrap();
    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    assert!(f.lua::<bool>("return collectgarbage('isrunning')"));
}

#[test]
fn error_object_with_tostring_shows_through_it() {
    let error = old_code_survives(
        b"error(setmetatable({}, { __tostring = function() return 'custom failure' end }))",
    );
    assert!(error.to_string().contains("custom failure"), "{error}");
    let error = old_code_survives(b"error({ code = 42 })");
    assert!(
        error
            .to_string()
            .contains("(error object is a table value)"),
        "{error}"
    );
}

#[test]
fn return_kind_messages_read_as_english() {
    let error = old_code_survives(b"return 42");
    assert!(
        error
            .to_string()
            .contains("now returns a number where it returned a table")
            || error
                .to_string()
                .contains("now returns an integer where it returned a table"),
        "{error}"
    );
    let f = Fixture::new();
    f.write("m", "return 1");
    f.lua::<()>("require 'm'");
    f.write("m", "X = 1");
    let error = f.reload("m").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("now returns nothing where it returned an integer")
            || error
                .to_string()
                .contains("now returns nothing where it returned a number"),
        "{error}"
    );
}

#[test]
fn module_not_found_reads_like_require() {
    let f = Fixture::new();
    let expected: String = f.lua("return select(2, pcall(require, 'nosuch'))");
    let error = f.reload("nosuch").unwrap_err();
    assert_eq!(error.to_string(), expected);
    assert!(expected.contains(":\n\tno field package.preload['nosuch']\n\tno file"));
}

#[test]
fn load_error_names_the_path_once() {
    let error = old_code_survives(b"local M = {\n");
    let message = error.to_string();
    let path = error.file().unwrap().display().to_string();
    assert_eq!(message.matches(&path).count(), 1, "{message}");
    let error = old_code_survives(b"local M = {}\nerror('boom')\nreturn M");
    let message = error.to_string();
    let path = error.file().unwrap().display().to_string();
    assert_eq!(message.matches(&path).count(), 1, "{message}");
}

/// Lua tells the collector's mode only by switching it, and switching to generational is a
/// full collection: a reload asks only when the new top level itself switches modes.
#[cfg(feature = "lua54")]
#[test]
fn reload_in_generational_mode_runs_no_collection_and_keeps_the_mode() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>(
        "m = require 'm'; collectgarbage('generational'); collectgarbage('stop') \
         collected = false; setmetatable({}, { __gc = function() collected = true end })",
    );
    f.write("m", "return { f = function() return 2 end }");
    f.reload_ok("m");
    assert!(f.lua::<bool>(
        "return collected == false and collectgarbage('isrunning') == false \
         and collectgarbage('incremental') == 'generational'"
    ));
}

/// A global `slow()` that takes `each` in C (Rust) and counts its calls.
fn with_slow_c_function(
    f: &Fixture,
    each: Duration,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let slow = f
        .lua
        .create_function(move |_, ()| {
            counted.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(each);
            Ok(())
        })
        .unwrap();
    f.lua.globals().set("slow", slow).unwrap();
    calls
}

#[test]
fn slow_calls_into_c_count_against_the_time_limit() {
    use std::sync::atomic::Ordering;
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let calls = with_slow_c_function(&f, Duration::from_millis(60));
    f.write("m", "for i = 1, 40 do slow() end\nreturn { v = 2 }");
    let error = f
        .reloader
        .reload(
            &["m"],
            &Options::default().with_timeout(Duration::from_millis(200)),
        )
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    // The clock is read at each call: the call after the deadline is not made.
    let made = calls.load(Ordering::Relaxed);
    assert!(made <= 5, "{made} calls of 60 ms ran under a 200 ms limit");
    // Where the top level was: the line of the call, not hotlua's own code.
    assert_eq!(error.line(), Some(1), "{error}");
    assert_eq!(f.lua::<Option<i64>>("return m.v"), None);
}

#[test]
fn a_top_level_that_finishes_after_its_deadline_is_refused() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    with_slow_c_function(&f, Duration::from_millis(300));
    f.write("m", "slow()\nreturn { v = 2 }");
    let error = f
        .reloader
        .reload(
            &["m"],
            &Options::default().with_timeout(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

/// Lua runs no hooks inside a hook or a finalizer, so the time limit could not stop the new
/// top level there: the reload is refused without running it.
#[test]
fn reloads_where_lua_runs_no_hooks_are_refused() {
    let f = Fixture::with(unsafe { mlua::Lua::unsafe_new() });
    f.write("m", V1);
    f.lua::<()>("m = require 'm'\nhotlua = require 'hotlua'");
    f.write("m", "top_level_ran = true\nreturn { v = 2 }");
    let (from_hook, from_finalizer): (String, String) = f.lua(
        "local from_hook, from_finalizer\n\
         debug.sethook(function()\n\
           debug.sethook()\n\
           from_hook = select(2, hotlua.reload('m'))\n\
         end, '', 1)\n\
         local x = 1\n\
         local gc = function() from_finalizer = select(2, hotlua.reload('m')) end\n\
         if newproxy then getmetatable(newproxy(true)).__gc = gc\n\
         else setmetatable({}, { __gc = gc }) end\n\
         collectgarbage(); collectgarbage()\n\
         return from_hook, from_finalizer",
    );
    for message in [&from_hook, &from_finalizer] {
        assert!(
            message.contains("inside a debug hook or a __gc finalizer"),
            "{message}"
        );
        assert!(message.contains("module 'm'"), "{message}");
    }
    assert!(f.lua::<bool>("return top_level_ran == nil and m.v == nil"));
    // From ordinary code the same reload runs.
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.v"), 2);
}
