//! LuaJIT with the JIT on: no compiled trace runs old code after a reload.

#![cfg(feature = "luajit")]

mod common;
use common::Fixture;

#[test]
fn a_function_cached_in_another_modules_local_runs_new_code_in_compiled_loops() {
    let f = Fixture::new();
    let util =
        |weight: i64| format!("local M = {{}}\nfunction M.weight(x) return {weight} end\nreturn M");
    f.write("util", &util(1));
    f.write(
        "consumer",
        "local w = require('util').weight\nlocal M = {}\n\
         function M.run(n) local s = 0 for i = 1, n do s = s + w(i) end return s end\nreturn M",
    );
    f.lua::<()>("consumer = require 'consumer'");
    // Long enough to be compiled.
    assert_eq!(
        f.lua::<i64>("for _ = 1, 20 do consumer.run(1000) end return consumer.run(100000)"),
        100_000
    );
    f.write("util", &util(2));
    f.reload_ok("util");
    assert_eq!(f.lua::<i64>("return consumer.run(100000)"), 200_000);
}

/// A module local no function assigned is immutable to LuaJIT: compiled code reads it as a
/// constant. When the new version assigns it, a closure upgraded in place (`inplace`) reads it
/// as a variable again, even in a loop compiled before the reload; a closure left on its old
/// code (`walk`) may not, and the report says so.
#[test]
fn a_local_the_new_version_assigns_is_no_longer_a_constant() {
    let f = Fixture::new();
    let source = |setter: &str| {
        format!(
            "local rate = 1\nlocal M = {{}}\n{setter}\
             function M.make() return function(n) local s = 0 for i = 1, n do s = s + rate end return s end end\n\
             return M"
        )
    };
    f.write("m", &source(""));
    f.lua::<()>("m = require 'm'; sum = m.make(); for _ = 1, 20 do sum(1000) end");
    f.write("m", &source("function M.set(r) rate = r end\n"));
    let report = f.reload_ok("m");
    // Module functions run the new code, which reads the joined local as a variable.
    assert_eq!(f.lua::<i64>("m.set(5); return m.make()(1000)"), 5000);
    if report.engine == "inplace" {
        assert_eq!(report.closures_left_old, 0, "{report:?}");
        assert_eq!(
            f.lua::<i64>("for _ = 1, 20 do sum(1000) end m.set(7) return sum(1000)"),
            7000
        );
    } else {
        assert!(report.closures_left_old > 0, "{report:?}");
        assert!(
            report.warnings.iter().any(|w| w.contains("constant")),
            "{:?}",
            report.warnings
        );
    }
}

/// A closure made at run time whose new code keeps its cells in place (engine `inplace`
/// retargets it without a log) but now assigns one the old code never did: the cell loses its
/// `immutable` mark, or a loop compiled after the reload reads it as a constant.
#[test]
fn a_cell_an_upgraded_closure_now_assigns_is_no_longer_a_constant() {
    let f = Fixture::new();
    let source = |body: &str| {
        format!("local M = {{}}\nfunction M.make(i) return function() {body} end end\nreturn M")
    };
    f.write("m", &source("return i"));
    f.lua::<()>("m = require 'm'; counter = m.make(10); for _ = 1, 1000 do counter() end");
    f.write("m", &source("i = i + 1 return i"));
    let report = f.reload_ok("m");
    if report.engine == "inplace" {
        // `M.make` and `counter`.
        assert_eq!(report.closures_upgraded, 2, "{report:?}");
        assert_eq!(
            f.lua::<i64>("local last for _ = 1, 1000 do last = counter() end return last"),
            1010
        );
    } else {
        assert_eq!(report.closures_left_old, 1, "{report:?}");
    }
}
