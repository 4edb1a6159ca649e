//! Bad input: every failure names the module, the file and (where Lua gives one) the line,
//! carries the original error text, and changes nothing.

mod common;
use common::Fixture;
use hotlua::Error;

const V1: &str =
    "local n = 0\nlocal M = { data = 1 }\nfunction M.f() n = n + 1 return 'v1', n end\nreturn M";
const FIXED: &str =
    "local n = 0\nlocal M = { data = 1 }\nfunction M.f() n = n + 1 return 'fixed', n end\nreturn M";

/// Loads V1, calls `m.f()` once, reloads `bad`, and checks the old module still works
/// unchanged, then that the fixed version reloads normally.
fn old_code_survives(bad: &[u8]) -> Error {
    let f = Fixture::new();
    let file = f.write("m", V1);
    f.lua::<()>("m = require 'm'; m.f(); f1 = m.f");
    f.write_file(&file, bad);
    let error = f.reload("m").expect_err("bad input must fail");
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
