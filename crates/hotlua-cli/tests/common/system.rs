//! System packages some tests need (stock interpreters, Debian's Lua libraries, a C compiler):
//! the one place that decides whether such a test runs.
//!
//! `cargo test --workspace` passes on a machine with only the Rust toolchain and a C compiler:
//! a test whose package is absent returns early, and the test binary says so once per package
//! on stderr. With the `CI` environment variable set (`.ci/run` sets it, after installing every
//! package) a missing package fails the test instead, so CI never passes by skipping.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A Debian package and how to tell it is installed.
pub struct SystemPackage {
    /// The Debian package to install (`apt-get install NAME`).
    pub package: &'static str,
    probe: Probe,
}

enum Probe {
    /// An executable of this name on `PATH`.
    Program(&'static str),
    /// A module `lua5.4` can `require`.
    LuaModule(&'static str),
}

impl SystemPackage {
    /// A package that installs the program `program`.
    pub const fn program(package: &'static str, program: &'static str) -> SystemPackage {
        SystemPackage {
            package,
            probe: Probe::Program(program),
        }
    }

    /// A package that installs the Lua module `module` for `lua5.4`.
    pub const fn lua_module(package: &'static str, module: &'static str) -> SystemPackage {
        SystemPackage {
            package,
            probe: Probe::LuaModule(module),
        }
    }

    fn installed(&self) -> bool {
        match self.probe {
            Probe::Program(program) => on_path(program).is_some(),
            Probe::LuaModule(module) => Command::new("lua5.4")
                .args(["-e", &format!("require '{module}'")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
        }
    }

    /// What the skip line and the CI failure name: the program or module looked for.
    fn describe(&self) -> String {
        match self.probe {
            Probe::Program(program) => format!("`{program}`"),
            Probe::LuaModule(module) => format!("Lua module `{module}`"),
        }
    }
}

pub const LUA54: SystemPackage = SystemPackage::program("lua5.4", "lua5.4");
pub const PENLIGHT: SystemPackage = SystemPackage::lua_module("lua-penlight", "pl.List");
pub const LUA_FILESYSTEM: SystemPackage = SystemPackage::lua_module("lua-filesystem", "lfs");
pub const BUSTED: SystemPackage = SystemPackage::program("lua-busted", "busted");
pub const C_COMPILER: SystemPackage = SystemPackage::program("gcc", "cc");
pub const MAKE: SystemPackage = SystemPackage::program("make", "make");
pub const BASH: SystemPackage = SystemPackage::program("bash", "bash");

/// The stock interpreter `program` (`lua5.1`, `luajit`: Debian names the package after it).
pub const fn interpreter(program: &'static str) -> SystemPackage {
    SystemPackage::program(program, program)
}

/// True when one of `packages` is not installed: the calling test returns early. Panics
/// instead when `CI` is set.
pub fn missing(packages: &[SystemPackage]) -> bool {
    missing_under(packages, ci())
}

/// [`missing`], with whether this is CI given.
pub fn missing_under(packages: &[SystemPackage], ci: bool) -> bool {
    let Some(absent) = packages.iter().find(|package| !package.installed()) else {
        return false;
    };
    let what = absent.describe();
    assert!(
        !ci,
        "{what} is not installed (Debian: apt-get install {}) and CI is set: the tests that \
         need it must run, not skip",
        absent.package
    );
    static SAID: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !said.contains(&absent.package) {
        said.push(absent.package);
        // Straight to the process's stderr: the test harness captures `eprintln!` of a
        // passing test, and this line is the only sign that tests did not run.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the tests that need {what}, not installed (Debian: apt-get install {})",
            absent.package
        );
    }
    true
}

/// Whether the tests run in CI: `CI` set to anything but empty, `0` or `false`.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

/// The file `program` names on `PATH`, if any.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|file| is_executable(file))
}

fn is_executable(file: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
