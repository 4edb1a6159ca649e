//! A Lua state with a private module folder, for reload scenarios.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hotlua::{Engine, Options, Reloader, Report};
use mlua::{FromLuaMulti, Lua};

/// The engine the scenarios run under: `HOTLUA_TEST_ENGINE` (`inplace` or `walk`), or the
/// library's default.
pub fn engine() -> hotlua::Engine {
    match std::env::var("HOTLUA_TEST_ENGINE") {
        Ok(name) if !name.is_empty() => hotlua::Engine::from_name(&name)
            .unwrap_or_else(|| panic!("HOTLUA_TEST_ENGINE={name}: expected inplace or walk")),
        _ => hotlua::Engine::default(),
    }
}

/// True when the scenarios run under the `inplace` engine (and it is built).
pub fn inplace() -> bool {
    engine() == hotlua::Engine::Inplace && hotlua::Engine::inplace_available()
}

pub struct Fixture {
    pub dir: PathBuf,
    pub lua: Lua,
    pub reloader: Reloader,
}

impl Fixture {
    /// A fresh Lua state whose `package.path` is a new empty folder, with `hotlua` installed.
    pub fn new() -> Fixture {
        Fixture::with(Lua::new())
    }

    /// The same with the given Lua state (for one with the `debug` library).
    pub fn with(lua: Lua) -> Fixture {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hotlua-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = format!("{0}/?.lua;{0}/?/init.lua", dir.display());
        lua.load(format!("package.path = {path:?}")).exec().unwrap();
        let reloader = Reloader::new(&lua).unwrap();
        reloader.set_engine(engine());
        reloader.install().unwrap();
        Fixture { dir, lua, reloader }
    }

    /// Writes module `name` (dots become folders) with `source`.
    pub fn write(&self, name: &str, source: &str) -> PathBuf {
        let file = self.dir.join(format!("{}.lua", name.replace('.', "/")));
        self.write_file(&file, source.as_bytes());
        file
    }

    pub fn write_file(&self, file: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }

    /// Runs Lua code (a chunk; `return` values come back).
    pub fn lua<T: FromLuaMulti>(&self, code: &str) -> T {
        self.lua
            .load(code)
            .eval()
            .unwrap_or_else(|e| panic!("Lua code failed: {e}\n{code}"))
    }

    pub fn reload(&self, name: &str) -> hotlua::Result<Report> {
        self.reloader.reload(&[name], &Options::default())
    }

    pub fn reload_ok(&self, name: &str) -> Report {
        self.reload(name)
            .unwrap_or_else(|e| panic!("reload of {name} failed: {e}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture reloading with `inplace`, or `None` where it is not built.
pub fn inplace_fixture() -> Option<Fixture> {
    let f = Fixture::new();
    if !Engine::inplace_available() {
        f.write("m", "return {}");
        f.lua::<()>("require 'm'");
        let report = f
            .reloader
            .reload(&["m"], &Options::with_engine(Engine::Inplace))
            .unwrap();
        assert_eq!(report.engine, "walk");
        return None;
    }
    f.reloader.set_engine(Engine::Inplace);
    Some(f)
}

/// Loads `v1` as module `m`, runs `setup`, writes `v2`, reloads and checks the engine.
pub fn reloaded_inplace(v1: &str, setup: &str, v2: &str) -> Option<(Fixture, hotlua::Report)> {
    let f = inplace_fixture()?;
    f.write("m", v1);
    f.lua::<()>(&format!("m = require 'm'\n{setup}"));
    f.write("m", v2);
    let report = f.reload_ok("m");
    assert_eq!(report.engine, "inplace");
    Some((f, report))
}
