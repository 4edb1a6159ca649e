//! Values the module does not own: builtins and other modules' values are references, not
//! data, and the module's own new values replace them (issue: "Correct on real code", 1).

mod common;

use common::Fixture;

#[test]
fn local_holding_a_builtin_takes_the_modules_own_new_function() {
    let f = Fixture::new();
    f.write(
        "m",
        "local join = table.concat\nlocal M = {}\nfunction M.show(t) return join(t, ',') end\nreturn M",
    );
    f.lua::<()>("m = require 'm'; saved = table.concat");
    f.write(
        "m",
        "local function join(t) return '[' .. table.concat(t, ';') .. ']' end\nlocal M = {}\n\
         function M.show(t) return join(t) end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.show({1, 2})"), "[1;2]");
    assert!(f.lua::<bool>("return table.concat == saved and table.concat({1, 2}, '-') == '1-2'"));
}

#[test]
fn field_holding_a_builtin_table_takes_the_modules_own_table() {
    let f = Fixture::new();
    f.write("m", "local M = { text = string }\nreturn M");
    f.lua::<()>("m = require 'm'; saved_upper = string.upper");
    f.write(
        "m",
        "local M = { text = { upper = function(s) return 'own:' .. s end } }\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.text.upper('a')"), "own:a");
    assert!(f.lua::<bool>(
        "return m.text ~= string and string.upper == saved_upper and string.upper('a') == 'A'"
    ));
}

#[test]
fn field_holding_another_modules_function_takes_the_modules_own_function() {
    let f = Fixture::new();
    f.write("util", "return { double = function(x) return 2 * x end }");
    f.write("m", "local M = { op = require('util').double }\nreturn M");
    f.lua::<()>("m = require 'm'; util = require 'util'");
    f.write(
        "m",
        "local M = {}\nfunction M.op(x) return 3 * x end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return m.op(5)"), 15);
    assert_eq!(f.lua::<i64>("return util.double(5)"), 10);
}

#[test]
fn local_holding_another_modules_table_takes_the_modules_own_table() {
    let f = Fixture::new();
    f.write("util", "return { name = 'util' }");
    f.write(
        "m",
        "local cfg = require 'util'\nlocal M = {}\nfunction M.name() return cfg.name end\nreturn M",
    );
    f.lua::<()>("m = require 'm'");
    f.write(
        "m",
        "local cfg = { name = 'own' }\nlocal M = {}\nfunction M.name() return cfg.name end\nreturn M",
    );
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.name()"), "own");
    assert_eq!(f.lua::<String>("return require('util').name"), "util");
}

#[test]
fn callback_the_program_installed_in_a_field_stays() {
    let f = Fixture::new();
    let source =
        |word: &str| format!("local M = {{}}\nfunction M.on_hit() return '{word}' end\nreturn M");
    f.write("m", &source("default"));
    f.lua::<()>("m = require 'm'; m.on_hit = function() return 'mine' end");
    f.write("m", &source("default2"));
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.on_hit()"), "mine");
}

#[test]
fn callback_the_program_installed_in_a_local_stays() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "local function default() return '{word}' end\nlocal handler = default\n\
             local M = {{}}\nfunction M.set(h) handler = h end\n\
             function M.fire() return handler() end\nreturn M"
        )
    };
    f.write("m", &source("default"));
    f.lua::<()>("m = require 'm'; m.set(function() return 'mine' end)");
    f.write("m", &source("default2"));
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return m.fire()"), "mine");
}
