//! Randomised reloads (issue 8 item 11): a seeded generator builds a module (nested tables,
//! shared and per-function locals, metatables, cycles), a program that changes it and keeps
//! references to it (functions, tables, instances, a suspended coroutine, a closure), and an
//! edited version 2 (type changes, added and deleted fields, sometimes a failure injected).
//! After a successful reload the module must be exactly what the rules of "What a reload
//! does" give, and every reference the program holds must run the new code; after a failed
//! one the snapshot of the whole program must be unchanged.
//!
//! `PROPTEST_CASES` sets the number of cases (default 64); failing seeds are saved in
//! `proptest-regressions/random_modules.txt` and replayed first.

mod common;
mod random;

use common::Fixture;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use random::expect::Outcome;
use random::lua;
use random::model::{Failure, Generator};

/// Runs the case drawn from `seed`; `size` bounds the root table's field count.
fn run_case(seed: u64, size: usize) -> Result<(), String> {
    let mut generator = Generator::new(seed);
    let v1 = generator.first_version(size);
    let mut live = v1.clone();
    let program = generator.program(&v1, &mut live);
    let v2 = generator.second_version(&v1);
    let (v1_source, v2_source, program_source) =
        (lua::source(&v1), lua::source(&v2), lua::program(&program));
    let case = format!("-- v1\n{v1_source}\n-- program\n{program_source}\n-- v2\n{v2_source}");

    // SAFETY: the snapshot needs the `debug` library; the generated code does nothing unsafe.
    let f = Fixture::with(unsafe { mlua::Lua::unsafe_new() });
    let snapshot: mlua::Function = f.lua.load(lua::SNAPSHOT).eval().unwrap();
    f.lua.globals().set("snapshot", snapshot).unwrap();
    f.write("m", &v1_source);
    f.lua
        .load(&program_source)
        .exec()
        .map_err(|e| format!("{case}\nprogram: {e}"))?;
    let before: String = f.lua(lua::WHOLE_SNAPSHOT);
    f.write("m", &v2_source);
    match (f.reload("m"), v2.failure) {
        (Ok(_), Failure::None) => {
            let outcome = Outcome::new(&live, &v2);
            let got: String = f.lua(lua::MODULE_SNAPSHOT);
            let expected = outcome.module_snapshot();
            if got != expected {
                return Err(format!(
                    "{case}\nmodule after the reload:\n{}",
                    diff(&expected, &got)
                ));
            }
            let bad: String = f.lua(&outcome.program_checks(&program));
            if !bad.is_empty() {
                return Err(format!(
                    "{case}\nprogram's references after the reload:\n{bad}"
                ));
            }
        }
        (Ok(report), failure) => {
            return Err(format!(
                "{case}\n{failure:?} injected, reload succeeded: {}",
                report.summary()
            ))
        }
        (Err(e), Failure::None) => return Err(format!("{case}\nreload failed: {e}")),
        (Err(_), _) => {
            let after: String = f.lua(lua::WHOLE_SNAPSHOT);
            if after != before {
                return Err(format!(
                    "{case}\nprogram after the failed reload:\n{}",
                    diff(&before, &after)
                ));
            }
        }
    }
    Ok(())
}

/// The lines of `expected` and `got` that differ, marked `-` and `+`.
fn diff(expected: &str, got: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for line in &expected {
        if !got.contains(line) {
            out += &format!("- {line}\n");
        }
    }
    for line in &got {
        if !expected.contains(line) {
            out += &format!("+ {line}\n");
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/random_modules.txt"),
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    #[cfg_attr(
        feature = "lua51",
        ignore = "Lua 5.1 copies locals instead of sharing them (README, Limitations): the model \
                  of shared locals does not hold there"
    )]
    fn random_module_pairs(seed in any::<u64>(), size in 1usize..8) {
        if let Err(failure) = run_case(seed, size) {
            prop_assert!(false, "seed {seed}, size {size}:\n{failure}");
        }
    }
}
