//! The C module (crates/hotlua-module) in Lua hosts: building it, building hosts from the
//! Lua sources `lua-src` vendors, and running a scenario in one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use super::TempDir;

/// Builds the module for `version` (once), then runs `script` with `interpreter` in a fresh
/// folder and expects it to succeed and print `expected`; its output. The interpreter runs
/// under the command `HOTLUA_TEST_HOST_WRAPPER` names, if set (`valgrind --quiet`).
pub fn run_in_host(version: &str, interpreter: &str, script: &str, expected: &str) -> Output {
    let module = build_module(version);
    let dir = TempDir::new(&format!("c-module-{version}"));
    std::fs::write(dir.0.join("main.lua"), script).unwrap();
    // Only LUA_CPATH: the versioned variables (LUA_CPATH_5_4) would take precedence over it.
    let cpath = format!("{}/?.so", module.parent().unwrap().display());
    // `.ci/run` runs some scenarios under valgrind this way.
    let wrapper = std::env::var("HOTLUA_TEST_HOST_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = dir.command(program);
            command.args(words).arg(interpreter);
            command
        }
        None => dir.command(interpreter),
    };
    let output = command
        .arg("main.lua")
        .env("LUA_CPATH", cpath)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(expected),
        "{interpreter} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    output
}

/// `scripts/build-module VERSION`, run at most once per version in this test binary; the path
/// of the built `hotlua.so`.
pub fn build_module(version: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    // Held while building: cargo would serialize two builds on its target dir anyway.
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path)) = built.iter().find(|(built, _)| built == version) {
        return path.clone();
    }
    let path = PathBuf::from(last_line_of("build-module", &[version]));
    built.push((version.to_owned(), path.clone()));
    path
}

/// `scripts/build-lua-host ARGS...`: a host of c_host/ built from `lua-src`'s Lua sources;
/// its path.
pub fn build_lua_host(args: &[&str]) -> String {
    // One build at a time: the script writes into the same target folder.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _building = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    last_line_of("build-lua-host", args)
}

/// Runs `scripts/SCRIPT ARGS...`, which must succeed, and returns the last line it printed (the
/// path of what it built).
fn last_line_of(script: &str, args: &[&str]) -> String {
    let output = Command::new(root().join("scripts").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run scripts/{script}: {error}"));
    assert!(
        output.status.success(),
        "scripts/{script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().expect("no path printed").to_owned()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
