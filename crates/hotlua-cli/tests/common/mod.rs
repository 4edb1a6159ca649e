//! Helpers shared by the CLI's integration tests: a temp folder to run the built `hotlua` in,
//! and the outcome of a run.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const HOTLUA: &str = env!("CARGO_BIN_EXE_hotlua");

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

    /// Runs `hotlua ARGS` in this folder, without the caller's `LUA_*` variables.
    pub fn hotlua(&self, args: &[&str]) -> Run {
        run_program(HOTLUA, args, &self.0, &[])
    }
}

/// Runs `program ARGS` in `dir`, without the caller's `LUA_*` variables but with `lua_env`.
pub fn run_program(
    program: impl AsRef<OsStr>,
    args: &[&str],
    dir: &Path,
    lua_env: &[(&str, String)],
) -> Run {
    let program = program.as_ref();
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    for name in [
        "LUA_PATH",
        "LUA_PATH_5_4",
        "LUA_CPATH",
        "LUA_CPATH_5_4",
        "LUA_INIT",
        "LUA_INIT_5_4",
    ] {
        command.env_remove(name);
    }
    command.envs(lua_env.iter().map(|(name, value)| (name, value)));
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.to_string_lossy()));
    Run::from(output)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
