//! Lua 5.5: modules that declare their globals with `global` reload like any other.

#![cfg(feature = "lua55")]

mod common;

use common::Fixture;

#[test]
fn module_with_global_declarations_reloads_and_keeps_its_state() {
    let f = Fixture::new();
    let source = |word: &str| {
        format!(
            "global Counter, print, setmetatable\n\
             Counter = Counter or {{ hits = 0 }}\n\
             local prefix <const> = '{word}'\n\
             global function bump() Counter.hits = Counter.hits + 1 return prefix .. Counter.hits end\n"
        )
    };
    f.write("counter", &source("v1:"));
    f.lua::<()>("require 'counter'; held = bump; live = Counter; bump(); bump()");
    f.write("counter", &source("v2:"));
    let report = f.reload_ok("counter");
    assert!(
        report.functions_replaced.iter().any(|name| name == "bump"),
        "{report:?}"
    );
    assert_eq!(
        f.lua::<(String, String, bool)>("return bump(), held(), rawequal(live, Counter)"),
        ("v2:3".into(), "v2:4".into(), true)
    );
}
