//! Patterns of real libraries (Penlight, busted) that reloads get wrong, each reduced to a few
//! lines: the minimal reproductions behind `crates/hotlua-cli/tests/real_libraries.rs`.

mod common;
use common::Fixture;
use hotlua::Options;

// ---- Class helpers whose constructor closure captures the class (pl.class, pl.Date) ----

/// A class helper like pl.class: the constructor is a closure, made by another module, that
/// captures the class table.
const CLASS_HELPER: &str = "\
return function()
  local c = {}
  c.__index = c
  return setmetatable(c, { __call = function(_, ...)
    local object = setmetatable({}, c)
    if c._init then c._init(object, ...) end
    return object
  end })
end";

fn shape(area: &str) -> String {
    format!(
        "local class = require 'classlib'\n\
         local Shape = class()\n\
         function Shape:_init(size) self.size = size end\n\
         function Shape:area() return {area} end\n\
         return Shape\n"
    )
}

/// Loads `shape`, makes an object, reloads `shape` from `new_source`, makes another: both
/// objects must have the live class as metatable and run the new `area`.
fn class_scenario(new_source: &str, expected_area: i64) {
    let f = Fixture::new();
    f.write("classlib", CLASS_HELPER);
    f.write("shape", &shape("self.size"));
    f.lua::<()>("Shape = require 'shape'; before = Shape(3)");
    f.write("shape", new_source);
    f.reload_ok("shape");
    f.lua::<()>("after = Shape(3)");
    assert_eq!(
        f.lua::<(bool, bool, bool)>(
            "return getmetatable(after) == Shape, getmetatable(before) == Shape, \
             getmetatable(after) == getmetatable(before)"
        ),
        (true, true, true),
        "objects must have the live class as metatable"
    );
    assert_eq!(
        f.lua::<(i64, i64)>("return before:area(), after:area()"),
        (expected_area, expected_area)
    );
}

#[test]
fn class_helper_objects_made_after_an_unchanged_reload_get_the_live_class() {
    class_scenario(&shape("self.size"), 3);
}

#[test]
fn class_helper_objects_made_after_an_edited_reload_get_the_live_class() {
    class_scenario(&shape("self.size * 10"), 30);
}

// ---- Tables that come from another module (pl.List, pl.Map, pl.Set, pl.MultiMap) ----

const REGISTRY: &str = "return { Shape = {} }";

fn shape_in_registry(area: &str, after: &str) -> String {
    format!(
        "local Shape = require('registry').Shape\n\
         function Shape.area() return {area} end\n\
         {after}\n\
         return Shape\n"
    )
}

/// Loads `shape` (which fills a table of `registry`) and keeps a reference to `Shape.area`.
fn registry_fixture() -> Fixture {
    let f = Fixture::new();
    f.write("registry", REGISTRY);
    f.write("shape", &shape_in_registry("1", ""));
    f.lua::<()>("Shape = require 'shape'; area = Shape.area");
    f
}

#[test]
fn table_from_another_module_reference_taken_before_runs_new_code() {
    let f = registry_fixture();
    f.write("shape", &shape_in_registry("2", ""));
    f.reload_ok("shape");
    assert_eq!(
        f.lua::<(i64, i64)>("return Shape.area(), area()"),
        (2, 2),
        "a reference to the old function must run the new one"
    );
}

#[test]
fn table_from_another_module_is_unchanged_by_check() {
    let f = registry_fixture();
    f.write("shape", &shape_in_registry("2", ""));
    f.reloader
        .check(&["shape"], &Options::default())
        .expect("check");
    assert!(
        f.lua::<bool>("return Shape.area == area and Shape.area() == 1"),
        "check() must not change the live table"
    );
}

#[test]
fn table_from_another_module_is_unchanged_by_a_failed_reload() {
    let f = registry_fixture();
    f.write("shape", &shape_in_registry("2", "error('top level fails')"));
    assert!(f.reload("shape").is_err());
    assert!(
        f.lua::<bool>("return Shape.area == area and Shape.area() == 1"),
        "a failed reload must leave the live table as it was"
    );
}

// ---- Batches (busted: `busted` returns `require 'busted.init'`) ----

/// busted's shape: `api` returns `require 'api.impl'`; `api.impl` is a table whose `__call`
/// installs, at run time, a metatable whose `__index` closure captures the core object; a
/// callback of `api.handler`, stored in the core object, captures `require 'api'` in a local
/// of the same name (`core`) as the `__index` closure's.
fn busted_like_fixture() -> Fixture {
    let f = Fixture::new();
    f.write("api", "return require 'api.impl'");
    f.write(
        "api.impl",
        "return setmetatable({}, { __call = function(self, core)\n\
           return setmetatable(self, { __index = function(_, key) return core[key] end })\n\
         end })",
    );
    f.write(
        "api.handler",
        "return function() local core = require 'api'; return function() return core end end",
    );
    f.lua::<()>(
        "core = { name = 'core' }\n\
         require 'api' (core)\n\
         core.callback = require 'api.handler' ()",
    );
    f
}

#[test]
fn batch_leaves_objects_outside_its_modules_alone() {
    let f = busted_like_fixture();
    f.reloader
        .reload(&["api", "api.impl", "api.handler"], &Options::default())
        .expect("reload");
    assert_eq!(
        f.lua::<(bool, String)>("return getmetatable(core) == nil, require('api').name"),
        (true, "core".to_owned()),
        "the core object is not a module of the batch: it keeps having no metatable"
    );
}

#[test]
fn batch_module_requiring_another_sees_its_new_version() {
    for order in [["a", "b"], ["b", "a"]] {
        let f = Fixture::new();
        f.write("a", "return { x = 1 }");
        f.write("b", "local a = require 'a'\nreturn { y = a.y }");
        f.lua::<()>("a = require 'a'; b = require 'b'");
        f.write("a", "return { x = 1, y = 2 }");
        f.write("b", "local a = require 'a'\nreturn { y = a.y }");
        f.reloader
            .reload(&order, &Options::default())
            .expect("reload");
        assert_eq!(
            f.lua::<(Option<i64>, Option<i64>)>("return a.y, b.y"),
            (Some(2), Some(2)),
            "order {order:?}: b's top level must see a's new field"
        );
    }
}

// ---- Errors through `require` ----

/// `pcall(require, 'bad')` where `bad`'s top level raises `raise`: returns `ok, type(e), e`.
fn require_error(raise: &str) -> (bool, String, String) {
    let f = Fixture::new();
    f.write("bad", &format!("local x = 1\n{raise}\nreturn {{}}"));
    f.lua(
        "err_table = { code = 7 }\n\
         local ok, e = pcall(require, 'bad')\n\
         return ok, type(e), e == err_table and 'same table' or tostring(e)",
    )
}

#[test]
fn error_string_from_a_module_top_level_reaches_require_caller_unchanged() {
    let (ok, kind, text) = require_error("error('boom')");
    assert_eq!((ok, kind.as_str()), (false, "string"));
    assert!(text.ends_with("bad.lua:2: boom"), "{text}");
}

#[test]
fn error_table_from_a_module_top_level_reaches_require_caller_unchanged() {
    assert_eq!(
        require_error("error(err_table)"),
        (false, "table".to_owned(), "same table".to_owned())
    );
}
