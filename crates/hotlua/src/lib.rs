//! Reload changed Lua modules inside a running VM and keep the program's state.
//!
//! hotlua swaps the code of a module while its tables, objects and local variables stay
//! exactly where they are: `package.loaded[name]` keeps the same table, every nested table
//! keeps its identity, locals shared by the module's functions stay shared (the new functions'
//! upvalues are *joined* to the old cells, never copied), and every function of the module runs
//! its new version.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hotlua::{Options, Reloader};
//!
//! let dir = std::env::temp_dir().join(format!("hotlua-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("counter.lua");
//! std::fs::write(&file, "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 1 return n end\nreturn M")?;
//!
//! let lua = mlua::Lua::new();
//! lua.load(format!("package.path = {:?}", dir.join("?.lua").display().to_string())).exec()?;
//! let counter: mlua::Table = lua.load("return require 'counter'").eval()?;
//! counter.get::<mlua::Function>("bump")?.call::<i64>(())?; // n == 1
//!
//! std::fs::write(&file, "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 10 return n end\nreturn M")?;
//! let reloader = Reloader::new(&lua)?;
//! let report = reloader.reload(&["counter"], &Options::default())?;
//! assert_eq!(report.functions_replaced, ["counter.bump"]);
//! // Same table, new code, and the local `n` kept its live value 1.
//! assert_eq!(counter.get::<mlua::Function>("bump")?.call::<i64>(())?, 11);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! A reload is *plan, then apply*:
//!
//! 1. **Load**: the module is found exactly as `require` finds it, through
//!    `package.searchers`, and compiled.
//! 2. **Stage**: the new top level runs against the live world: `_G`, its metatable, host
//!    tables such as `love` or `string`. `_G`, the module's live table and every table the top
//!    level reads through a global are copied (one level) before it can write into them; once
//!    it has run, what it wrote is taken out and they are put back as they were. The module's
//!    `package.loaded` entry is hidden so `M = package.loaded[...] or {}` builds a fresh table.
//! 3. **Plan**: old and new values are paired *by path* (fields, metatables, upvalues by
//!    name), upvalue cells are grouped by `lua_upvalueid`, data is merged by the policy in
//!    force, and every write to the live program is listed. Nothing live has changed yet.
//! 4. **Apply**: the writes are made with an undo log and the collector stopped; a failure
//!    restores every old value.
//! 5. **Switch**: engine `inplace` (the default with Lua 5.4 and LuaJIT: vendored, or through
//!    the C module in any interpreter whose layout it proves) points every old
//!    closure, module functions and closures created at run time alike, at its new prototype
//!    in one scan of the collector's object list, so no reference needs to change; engine
//!    `walk` (everywhere else) makes one pass over the reachable heap, through the public C API
//!    only, and replaces every other reference to an old function (other modules' locals,
//!    callback lists, table keys, metatables, the registry, userdata user values, every
//!    coroutine's frames) by its new version. See [`Engine`]. The switch is all or nothing
//!    too: the walk journals each reference before switching it and puts them all back if it
//!    fails; `inplace` retargets only once nothing that can fail is left.
//!
//! Running out of memory at any step, in Lua or in one of hotlua's own collections (which
//! grow fallibly: a refused allocation is an error, not an abort), fails the reload with an
//! [`Error`] naming its modules, and the program is as it was.
//!
//! # Limitations
//!
//! - With engine `walk`, closures the old code created at run time (a factory's closures)
//!   keep their old code: the public C API cannot point a closure at a new prototype. With
//!   `inplace`, only those it cannot pair or whose upvalues it cannot know do.
//!   [`Report::closures_left_old`] counts them.
//! - Side effects the new top level has on objects outside the module (registering a handler
//!   in another module, opening a socket) cannot be undone; test `hotlua.reloading` to skip them.
//! - Values are paired by path, so data reachable only through keys that are tables or
//!   functions is never paired: such keys are added when missing, never merged.
//! - A new top level runs under a time limit ([`Options::timeout`], [`DEFAULT_TIMEOUT`]) and
//!   may not call `os.exit`; the limit is checked between Lua instructions, so one long call
//!   into C finishes first.
//! - Lua 5.1 cannot share upvalue cells: locals are copied, and [`Report::locals_copied`]
//!   lists them.
//! - mlua's own allocator aborts the process when the system refuses Lua memory; hosts that
//!   want Lua's "not enough memory" error instead call [`recover_from_allocation_failure`].
//!   Fixed-size allocations of hotlua (a message, one handle) still abort if refused.
//!
//! # The Lua API
//!
//! [`Reloader::install`] makes `require "hotlua"` return this table (the same as in
//! `hotlua run` and in the C module):
//!
//! | call | does |
//! |---|---|
//! | `hotlua.reload(name)` | reloads module `name`, found exactly as `require` finds it; returns the report as a table, or `nil, message` with the program exactly as it was |
//! | `hotlua.reload{ "a", "b" }` | several modules as one all-or-nothing step |
//! | `hotlua.reload(name, { data = "merge3" })` | with a data policy for this call: `"keep"` (default), `"overwrite"`, `"merge3"` ([`DataPolicy`]) |
//! | `hotlua.check(name or list)` | dry run: the same report (`applied = false`), nothing applied |
//! | `hotlua.reloading` | true while a module's new top level runs inside a reload |
//! | `hotlua.on_reload(fn)` | `fn("before", report)` may veto with `false, reason`; `fn("after", report)` after each reload |
//! | `hotlua.policy(name, policy)` | the module's default data policy ([`Reloader::set_policy`]) |
//! | `hotlua.poll()` | with the `watch` feature, after [`Reloader::watch`]: reloads the watched modules whose files changed; the report, or nothing |
//! | `hotlua.sleep(seconds)` | waits, polling the watcher meanwhile |
//! | `hotlua.now()` | monotonic seconds |
//!
//! # Cargo features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `lua54` | yes | Lua 5.4 (mlua's `lua54`) |
//! | `lua55`, `lua53`, `lua52`, `lua51`, `luajit` | | the other Lua versions: exactly one version feature, so turn the defaults off (`default-features = false, features = ["lua53", "vendored", "watch"]`) |
//! | `vendored` | yes | builds that Lua from source into the program (mlua's `vendored`); without it mlua links the system's Lua, or none with mlua's `module` |
//! | `watch` | yes | [`Reloader::watch`], [`Reloader::poll`] and `hotlua.poll`/`hotlua.sleep`: a file watcher (`notify`) |
//! | `send` | | mlua's `send`: `mlua::Lua` and [`Reloader`] are `Send`, for hosts that move their Lua state between threads |
//!
//! hotlua is built on mlua 0.12 and re-exports it as [`hotlua::mlua`](mlua): a host that
//! writes `use hotlua::mlua;` needs no `mlua` dependency of its own, and its `mlua::Lua` is
//! always the one hotlua takes (a host that also depends on `mlua` directly must pick the same
//! 0.12). [`Error`] is `Send + Sync + 'static` with or without `send`.
//!
//! The README's Rust snippet is compiled by `cargo test --doc`, as a host would write it after
//! `cargo add hotlua` alone. The guides for each kind of reader (semantics, hosts, production,
//! performance, internals) are in the repository's `docs/` folder.

#![warn(missing_docs)]

mod apply;
pub mod audit;
mod baseline;
mod batch;
mod collector;
mod entry;
pub mod error;
mod fallible;
mod hooks;
#[cfg(hotlua_inplace)]
mod layout;
mod limits;
mod load;
mod lua_api;
mod memory;
mod modules;
mod options;
mod pipeline;
mod plan;
mod raw;
pub mod report;
mod request;
#[cfg(hotlua_lua54_shim)]
mod slots;
mod source_file;
pub mod sources;
mod staging;
mod standard;
mod switch;
mod sync;
mod tracking;
#[cfg(feature = "watch")]
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use mlua::{Lua, Table};

pub use audit::{Attempt, Trigger};
use batch::NewSource;
use sync::{Flag, Slot};

pub use error::{ApplyStep, Error, Result};
pub use limits::DEFAULT_TIMEOUT;
pub use memory::{recover_from_allocation_failure, Reserve, RESERVE_BYTES};
pub use options::{DataPolicy, Options};
pub use report::{Conflict, ModuleFile, Report, SourceChange, Timings};
pub use source_file::MAX_MODULE_FILE;
pub use sources::{sha256_hex, ModuleSource};
pub use switch::{Engine, LeftOld, Switches};
pub use sync::MaybeSendSync;

#[cfg(feature = "watch")]
pub use watch::SAFE_POINT_SLICE;

/// The mlua hotlua is built on, with the Lua version and features hotlua's own features chose:
/// `use hotlua::mlua;` and a host's Lua handles are the ones [`Reloader`] takes.
pub use mlua;

/// The README, whose Rust snippet is compiled as a doc-test: it must build with `hotlua` as
/// the only dependency.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;

/// State shared by the [`Reloader`] handles of one Lua state and its `hotlua` Lua table.
#[derive(Default)]
struct Shared {
    /// Names of the modules whose reload is running, to refuse a nested reload.
    running: Slot<Option<String>>,
    /// Per-module data policies set with [`Reloader::set_policy`].
    policies: Slot<HashMap<String, DataPolicy>>,
    /// True while a new top level runs in its staging environment.
    reloading: Flag,
    /// The engine used when a call names none.
    engine: Slot<Engine>,
    /// The live and previous source of each module.
    sources: sources::Sources,
    /// What asks for the reloads made now ([`Reloader::with_trigger`]).
    trigger: Slot<Trigger>,
    /// Called after every reload or rollback attempt ([`Reloader::on_attempt`]).
    on_attempt: Slot<Option<sync::Callback<Attempt>>>,
    /// Work to run at each safe point ([`Reloader::set_safe_point`]), and whether it runs now.
    #[cfg(feature = "watch")]
    safe_point: Slot<Option<sync::Callback<Reloader>>>,
    #[cfg(feature = "watch")]
    in_safe_point: Flag,
    /// Print watch reloads as JSON.
    #[cfg(feature = "watch")]
    json_log: Flag,
    #[cfg(feature = "watch")]
    watcher: Slot<Option<watch::Watching>>,
}

/// Reloads the Lua modules of one Lua state.
///
/// Cheap to clone; every clone and the `hotlua` Lua table share one state.
#[derive(Clone)]
pub struct Reloader {
    lua: Lua,
    shared: Arc<Shared>,
}

impl Reloader {
    /// A reloader for `lua`. It starts recording, for every Lua module loaded from now on, the
    /// values its file set at load time, which [`DataPolicy::Merge3`] compares against.
    pub fn new(lua: &Lua) -> Result<Reloader> {
        if let Some(shared) = lua.app_data_ref::<Arc<Shared>>() {
            return Ok(Reloader::from_shared(lua, shared.clone()));
        }
        // `Shared` is `Send + Sync` exactly when built with `send` (its callbacks are then
        // `Send + Sync` too); one `Arc` type serves both builds.
        #[allow(clippy::arc_with_non_send_sync)]
        let shared = Arc::new(Shared::default());
        // Before anything reads Lua's structures; a proof that cannot run now (out of
        // memory) runs again when first needed.
        #[cfg(hotlua_inplace)]
        let _ = layout::check(lua);
        standard::remember(lua)?;
        // So that the first reload costs no more than the next ones; a chunk that cannot be
        // compiled now (out of memory) is compiled when first needed.
        let _ = standard::warm(lua);
        modules::remember_present(lua)?;
        tracking::track_loads(lua)?;
        // Only the shared state goes into app data: a `Lua` handle there would keep the state
        // from ever being closed.
        lua.set_app_data(shared.clone());
        Ok(Reloader {
            lua: lua.clone(),
            shared,
        })
    }

    fn from_shared(lua: &Lua, shared: Arc<Shared>) -> Reloader {
        Reloader {
            lua: lua.clone(),
            shared,
        }
    }

    /// Reloads `modules` as one all-or-nothing step and returns what it did.
    ///
    /// On error nothing in the running program has changed.
    pub fn reload(&self, modules: &[&str], options: &Options) -> Result<Report> {
        self.attempt(modules, options, Ok(NewSource::Files))
    }

    /// Reinstates the source `module` ran before its last successful reload (or rollback), as
    /// a reload: state kept, references switched. The report has `rolled_back` set and its
    /// `sources` name the version now live. One previous version per module is kept, in
    /// memory ([`sources::MAX_KEPT_SOURCE`] bytes at most), so rolling back twice goes
    /// forward again.
    ///
    /// # Errors
    ///
    /// [`Error::Request`] when no previous version is kept; any reload error otherwise.
    pub fn rollback(&self, module: &str, options: &Options) -> Result<Report> {
        let previous = self
            .shared
            .sources
            .previous(module)
            .map_err(|why| Error::Request(format!("cannot roll back '{module}': {why}")));
        self.attempt(&[module], options, previous.map(NewSource::Previous))
    }

    /// What is known of the source every loaded module runs: its file and the SHA-256 of its
    /// live and previous versions. Only modules loaded (or reloaded) from Lua files since
    /// [`Reloader::new`] are listed, and those loaded before it whose file `watch` found.
    pub fn sources(&self) -> Vec<ModuleSource> {
        let loaded = modules::loaded_table(&self.lua).ok();
        self.shared
            .sources
            .list()
            .into_iter()
            .filter(|source| {
                loaded.as_ref().is_some_and(|loaded| {
                    loaded
                        .raw_get::<mlua::Value>(source.module.as_str())
                        .is_ok_and(|value| !value.is_nil())
                })
            })
            .collect()
    }

    /// The loaded modules whose file content differs from the source they run (what a
    /// SIGHUP reloads), sorted by name.
    ///
    /// Each file is read where the module's source was read (a relative path stays found after
    /// the program changed directory), and only if it is a regular file
    /// ([`MAX_MODULE_FILE`] bytes at most).
    pub fn changed_modules(&self) -> Vec<String> {
        let mut changed: Vec<String> = self
            .shared
            .sources
            .known()
            .into_iter()
            .filter(|known| self.is_loaded(&known.module))
            .filter(|known| {
                source_file::read(&known.path).is_ok_and(|bytes| sha256_hex(&bytes) != known.sha256)
            })
            .map(|known| known.module)
            .collect();
        changed.sort();
        changed
    }

    /// True if `package.loaded[module]` holds a value.
    pub fn is_loaded(&self, module: &str) -> bool {
        modules::loaded_table(&self.lua)
            .and_then(|loaded| Ok(loaded.raw_get::<mlua::Value>(module)?))
            .is_ok_and(|value| !value.is_nil())
    }

    /// Runs `f` with the reloads it makes attributed to `trigger` (in [`Attempt`]s).
    pub fn with_trigger<R>(&self, trigger: Trigger, f: impl FnOnce(&Reloader) -> R) -> R {
        let outer = std::mem::replace(&mut *self.shared.trigger.borrow_mut(), trigger);
        let result = f(self);
        *self.shared.trigger.borrow_mut() = outer;
        result
    }

    /// Calls `callback` after every reload or rollback attempt, successful or not (not for
    /// checks): the record of an audit log.
    pub fn on_attempt(&self, callback: impl Fn(&Attempt) + MaybeSendSync + 'static) {
        *self.shared.on_attempt.borrow_mut() = Some(Arc::new(callback));
    }

    /// Plans the reload of `modules` without applying it: the same report, nothing changed
    /// (except side effects the new top levels have outside their module).
    pub fn check(&self, modules: &[&str], options: &Options) -> Result<Report> {
        self.run(modules, options, false, &NewSource::Files)
    }

    /// Sets the data policy used for `module` when a call gives none.
    pub fn set_policy(&self, module: &str, policy: DataPolicy) {
        self.shared
            .policies
            .borrow_mut()
            .insert(module.to_owned(), policy);
    }

    /// Sets the engine used by calls whose options name none (the Lua API's among them).
    /// [`Engine::Inplace`] where it is not built runs [`Engine::Walk`] and warns.
    pub fn set_engine(&self, engine: Engine) {
        *self.shared.engine.borrow_mut() = engine;
    }

    /// Makes `require "hotlua"` return the `hotlua` Lua table (see the crate docs) and returns it.
    pub fn install(&self) -> Result<Table> {
        Ok(lua_api::install(&self.lua, self.shared.clone())?)
    }

    /// A reload or rollback (`new_source` is the previous source, or why there is none),
    /// reported to [`Reloader::on_attempt`].
    pub(crate) fn attempt(
        &self,
        modules: &[&str],
        options: &Options,
        new_source: std::result::Result<NewSource, Error>,
    ) -> Result<Report> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let started = Instant::now();
        let rollback = matches!(new_source, Ok(NewSource::Previous(_)) | Err(_));
        let old: Vec<Option<String>> = modules
            .iter()
            .map(|name| self.shared.sources.live_sha256(name))
            .collect();
        let (result, new_source) = match new_source {
            Ok(new_source) => (
                self.run(modules, options, true, &new_source),
                Some(new_source),
            ),
            Err(error) => (Err(error), None),
        };
        let Some(callback) = self.shared.on_attempt.borrow().clone() else {
            return result;
        };
        let trigger = self.shared.trigger.borrow().clone();
        let package: Option<Table> = self.lua.globals().raw_get("package").ok();
        let attempted = modules.iter().zip(old).map(|(name, old_sha256)| {
            let reported = result.as_ref().ok().and_then(|report| {
                let file = report
                    .modules
                    .iter()
                    .find(|m| m.name == *name)?
                    .file
                    .clone();
                let source = report.sources.iter().find(|s| s.module == *name)?;
                Some((Some(file), source.new_sha256.clone()))
            });
            let (file, new_sha256) = reported.unwrap_or_else(|| {
                // Failed: the version the rollback or the watcher tried, or the file as it is
                // now.
                let given = new_source
                    .as_ref()
                    .and_then(|new_source| new_source.given(name, modules[0]));
                if let Some(given) = given {
                    return (Some(given.file), Some(sha256_hex(&given.bytes)));
                }
                let file = package
                    .as_ref()
                    .and_then(|package| load::search_path(package, name).ok().flatten());
                let sha = file
                    .as_ref()
                    .and_then(|file| source_file::read(file).ok())
                    .map(|bytes| sha256_hex(&bytes));
                (file, sha)
            });
            audit::AttemptModule {
                name: (*name).to_owned(),
                file,
                old_sha256,
                new_sha256,
            }
        });
        callback(&Attempt {
            time,
            trigger: trigger.name(),
            peer: match trigger {
                Trigger::Control { peer } => Some(peer),
                _ => None,
            },
            action: if rollback { "rollback" } else { "reload" },
            modules: attempted.collect(),
            result: if result.is_ok() { "ok" } else { "failed" },
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            error: result.as_ref().err().map(Error::to_string),
        });
        result
    }
}
