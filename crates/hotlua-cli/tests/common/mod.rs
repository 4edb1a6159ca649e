//! Helpers shared by the tests that drive the built `hotlua` binary.
//!
//! Each test file uses a part of them.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod module_host;
pub mod system;

pub const HOTLUA: &str = env!("CARGO_BIN_EXE_hotlua");

/// The start of a Lua scenario (plain Lua 5.1, for every interpreter): modules from the
/// current folder, `hotlua` required, and `write(source, module)` replacing the file of
/// `module` (by default `m`).
const SCENARIO_PRELUDE: &str = r#"package.path = "./?.lua"
local hotlua = require "hotlua"
local function write(source, module)
  local file = assert(io.open((module or "m") .. ".lua", "w"))
  file:write(source)
  file:close()
end
"#;

/// A Lua scenario: [`SCENARIO_PRELUDE`] followed by `body`.
pub fn scenario(body: &str) -> String {
    format!("{SCENARIO_PRELUDE}{body}")
}

/// The environment variables Lua interpreters read: tests start without the caller's.
const LUA_VARIABLES: [&str; 9] = [
    "LUA_PATH",
    "LUA_PATH_5_4",
    "LUA_CPATH",
    "LUA_CPATH_5_4",
    "LUA_CPATH_5_3",
    "LUA_INIT",
    "LUA_INIT_5_4",
    "LUA_INIT_5_3",
    "LUA_PATH_5_3",
];

/// A fresh folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hotlua-cli-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> &TempDir {
        std::fs::write(self.0.join(name), text).unwrap();
        self
    }

    /// `program` to run in this folder, without the caller's `LUA_*` variables.
    pub fn command(&self, program: &str) -> Command {
        lua_command(program, &self.0)
    }

    /// Runs `hotlua ARGS` in this folder, without the caller's `LUA_*` variables.
    pub fn hotlua(&self, args: &[&str]) -> Run {
        let output = self
            .command(HOTLUA)
            .args(args)
            .output()
            .expect("cannot start hotlua");
        Run::from(output)
    }
}

/// `program` to run in `dir`, without the caller's `LUA_*` variables.
fn lua_command(program: impl AsRef<OsStr>, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir);
    for variable in LUA_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// Runs `program ARGS` in `dir`, without the caller's `LUA_*` variables but with `lua_env`.
pub fn run_program(
    program: impl AsRef<OsStr>,
    args: &[&str],
    dir: &Path,
    lua_env: &[(&str, String)],
) -> Run {
    let program = program.as_ref();
    let output = lua_command(program, dir)
        .args(args)
        .envs(lua_env.iter().map(|(name, value)| (name, value)))
        .output()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.to_string_lossy()));
    Run::from(output)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run printed and how it ended.
#[derive(Debug, PartialEq)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

pub fn expect(code: i32, stdout: &str, stderr: &str) -> Run {
    Run {
        code: Some(code),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    }
}
