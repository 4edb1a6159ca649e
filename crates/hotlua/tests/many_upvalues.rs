//! A function with more upvalues than the C stack's guaranteed free slots (pl.lexer has one).
//! Its own test binary: today the reload aborts the process on Lua's API check.

mod common;
use common::Fixture;

/// A module whose function uses `n` module locals as upvalues.
fn module_with_upvalues(n: usize, result: &str) -> String {
    let locals: Vec<String> = (1..=n).map(|i| format!("local v{i} = {i}")).collect();
    let sum: Vec<String> = (1..=n).map(|i| format!("v{i}")).collect();
    format!(
        "{}\nlocal M = {{}}\nfunction M.sum() return {} + {result} end\nreturn M\n",
        locals.join("\n"),
        sum.join(" + ")
    )
}

#[test]
fn function_with_60_upvalues_reloads() {
    let f = Fixture::new();
    f.write("many", &module_with_upvalues(60, "0"));
    f.lua::<()>("many = require 'many'; sum = many.sum");
    f.write("many", &module_with_upvalues(60, "1"));
    f.reload_ok("many");
    assert_eq!(
        f.lua::<(i64, i64)>("return many.sum(), sum()"),
        (1831, 1831)
    );
}
