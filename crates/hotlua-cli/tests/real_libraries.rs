//! hotlua on libraries nobody here wrote, as Debian installs them (`lua-penlight`, `lua-busted`,
//! `lua-filesystem`; `.ci/run` installs them): the scripts in `tests/real/` run under `lua5.4`
//! and under `hotlua run` (Penlight's also in `luajit` with the C module), with and without
//! reloading the libraries' own modules mid-run. Each
//! test skips when a package it needs is absent (`common::system`).
//!
//! Penlight's reload timings: `cargo test -p hotlua-cli --test real_libraries -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::module_host::build_module;
use common::system::{interpreter, missing, on_path, BUSTED, LUA54, LUA_FILESYSTEM, PENLIGHT};
use common::{run_program, Run, HOTLUA};

/// Penlight as its scripts here use it (`pl.path` needs LuaFileSystem).
const PENLIGHT_NEEDS: [common::system::SystemPackage; 3] = [LUA54, PENLIGHT, LUA_FILESYSTEM];

/// The folder of the Lua scripts these tests run.
fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real")
}

/// lua5.4's own `package.path` and `package.cpath` as `LUA_PATH` / `LUA_CPATH`, so that
/// hotlua finds the installed libraries exactly where lua5.4 does.
fn lua_env() -> &'static [(&'static str, String)] {
    static ENV: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let ask = |field: &str| {
            let run = run_program(
                "lua5.4",
                &["-e", &format!("io.write(package.{field})")],
                &real_dir(),
                &[],
            );
            assert_eq!(run.code, Some(0), "lua5.4 -e failed: {run:?}");
            run.stdout
        };
        vec![("LUA_PATH", ask("path")), ("LUA_CPATH", ask("cpath"))]
    })
}

fn lua54(args: &[&str]) -> Run {
    run_program("lua5.4", args, &real_dir(), lua_env())
}

fn hotlua_run(args: &[&str]) -> Run {
    let args: Vec<&str> = ["run"].iter().chain(args).copied().collect();
    run_program(HOTLUA, &args, &real_dir(), lua_env())
}

/// busted's runner script (`/usr/bin/busted`, a Lua script), found on `PATH`; `None` (the
/// test skips) when busted is not installed.
fn busted() -> Option<String> {
    if missing(&[LUA54, BUSTED]) {
        return None;
    }
    Some(on_path("busted")?.to_string_lossy().into_owned())
}

/// The lines of stderr that report lost state or failed reloads.
fn problems(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| !line.starts_with("penlight "))
        .collect()
}

// ---- Penlight ----

#[test]
fn penlight_runs_the_same_under_lua54_and_hotlua() {
    if missing(&PENLIGHT_NEEDS) {
        return;
    }
    let script = "penlight_reload.lua";
    assert_eq!(hotlua_run(&[script, "none"]), lua54(&[script, "none"]));
}

/// Reloads every pl.* module in `mode` (see the script) and checks that Penlight prints what
/// it prints in lua5.4 without reloads, with no problem reported.
fn penlight_reload_keeps_behaviour(mode: &str) {
    if missing(&PENLIGHT_NEEDS) {
        return;
    }
    let script = "penlight_reload.lua";
    let expected = lua54(&[script, "none"]);
    assert_eq!(
        expected.code,
        Some(0),
        "lua5.4 run failed: {}",
        expected.stderr
    );
    let run = hotlua_run(&[script, mode]);
    if let Some(timings) = run.stderr.lines().find(|l| l.starts_with("penlight ")) {
        println!("{timings}");
    }
    assert_behaves_as_without_reloads(&expected, &run);
}

/// `run` (the script reloading Penlight's modules) reported no problem, exited 0 and printed
/// what `expected` (the same script without reloads) printed.
fn assert_behaves_as_without_reloads(expected: &Run, run: &Run) {
    assert_eq!(problems(run), Vec::<&str>::new(), "reloads went wrong");
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout == expected.stdout,
        "Penlight behaves differently after the reloads:\n{}",
        first_difference(&expected.stdout, &run.stdout)
    );
}

/// The first line where two outputs differ, with the step it belongs to.
fn first_difference(expected: &str, actual: &str) -> String {
    let mut step = "";
    for (wanted, got) in expected.lines().zip(actual.lines()) {
        if wanted.starts_with("-- ") {
            step = wanted;
        }
        if wanted != got {
            return format!("{step}\n  lua5.4: {wanted}\n  hotlua: {got}");
        }
    }
    format!(
        "one output stops early ({} lines in lua5.4, {} in hotlua)",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[test]
fn penlight_keeps_behaving_after_every_module_is_reloaded_unchanged() {
    penlight_reload_keeps_behaviour("unchanged");
}

#[test]
fn penlight_keeps_behaving_and_runs_new_code_after_every_module_is_edited() {
    penlight_reload_keeps_behaviour("edited");
}

/// The same in Debian's `luajit` through the C module (engine `inplace`): every pl.* module
/// edited and reloaded mid-run, Penlight's output the same as without reloads.
#[test]
fn penlight_in_luajit_through_the_c_module_keeps_behaving_after_every_module_is_edited() {
    if missing(&[interpreter("luajit"), PENLIGHT, LUA_FILESYSTEM]) {
        return;
    }
    let module = build_module("luajit");
    // The module's folder first, then luajit's own places (`;;`).
    let cpath = [(
        "LUA_CPATH",
        format!("{}/?.so;;", module.parent().unwrap().display()),
    )];
    let script = "penlight_reload.lua";
    let luajit = |mode: &str| run_program("luajit", &[script, mode], &real_dir(), &cpath);
    let expected = luajit("none");
    assert_eq!(
        expected.code,
        Some(0),
        "luajit run failed: {}",
        expected.stderr
    );
    let run = luajit("edited");
    assert_behaves_as_without_reloads(&expected, &run);
}

/// Modules whose top levels read the live world, reloaded unchanged: `stringx.import()`'s
/// functions in `string`, `_DEBUG`, the built-in `warn`, `require 'pl'`'s lazy globals.
#[test]
fn penlight_top_levels_see_the_live_world() {
    if missing(&PENLIGHT_NEEDS) {
        return;
    }
    let script = "penlight_world.lua";
    let expected = lua54(&[script]);
    assert_eq!(
        expected.stdout, "a b\ty\ttrue\ntrue\ttrue\ttable\n1,2,3\t2\n",
        "{expected:?}"
    );
    assert_eq!(hotlua_run(&[script]), expected);
}

/// Penlight's modules reloaded, mid-`foreach`, while memory runs out under `ulimit -v`: each
/// failed reload names the module and leaves Penlight behaving as before, none aborts, and
/// each module reloads once memory is freed (`tests/real/penlight_squeeze.lua`).
#[test]
fn penlight_reloads_while_memory_runs_out_fail_cleanly() {
    if missing(&PENLIGHT_NEEDS) {
        return;
    }
    let run = run_program(
        "sh",
        &[
            "-c",
            "ulimit -v 400000 && exec \"$0\" run penlight_squeeze.lua",
            HOTLUA,
        ],
        &real_dir(),
        lua_env(),
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "6\ttrue\n"),
        "{run:?}"
    );
    eprintln!("{}", run.stderr.trim_end());
}

// ---- busted ----

/// The spec reloads busted's own modules from inside a running test; busted must still run
/// and report every test, exactly as lua5.4 running the same spec (without reloads) does.
#[test]
fn busted_reports_every_test_after_reloading_itself() {
    let Some(busted) = busted() else {
        return;
    };
    let args = [busted.as_str(), "-o", "TAP", "busted_reload_spec.lua"];
    let expected = lua54(&args);
    assert_eq!(expected.code, Some(0), "lua5.4 run failed: {expected:?}");
    assert!(expected.stdout.ends_with("1..10\n"), "{}", expected.stdout);
    assert_eq!(hotlua_run(&args), expected);
}

#[test]
fn busted_runs_the_same_under_lua54_and_hotlua_without_reloads() {
    let Some(busted) = busted() else {
        return;
    };
    // A spec of the repository that never reloads: busted's own run, compared as it is.
    let args = [busted.as_str(), "-o", "TAP", "busted_plain_spec.lua"];
    assert_eq!(hotlua_run(&args), lua54(&args));
}
