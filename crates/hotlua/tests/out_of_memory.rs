//! Running out of memory at any point of a reload: an error that names the module, and the
//! program exactly as it was, whichever engine runs and wherever the reload is called from.
//!
//! Each scenario sweeps Lua's memory limit upward from what the program uses, in small steps,
//! reloading at each limit, until a reload succeeds: every allocation of a reload fails in one
//! attempt or another. One sweep sets the limit before the reload (compiling, staging and
//! planning fail); a second sets it from an `on_reload` "before" hook, once the plan is made
//! (planning again, applying and switching fail; an emergency collection frees the garbage of
//! the earlier steps, so the first sweep alone never reaches them). After every failure a
//! snapshot of the program (values, identities, upvalues, table keys, a suspended coroutine's
//! frame) must equal the one taken before.

mod common;

use std::collections::BTreeMap;

use common::Fixture;
use hotlua::{ApplyStep, Engine, Error, Options};
use mlua::{Lua, LuaOptions, StdLib};

fn version(tag: &str) -> String {
    format!(
        r#"
local M = {{}}
local count = 0
M.data = {{ n = 1{added} }}
MODGLOBAL = "{tag}"
function M.version() return "{tag}" end
function M.count() return count end
function M.bump() count = count + 1 end
function M.make() return function() return "{tag} closure" end end
function M.wait() coroutine.yield("waiting"); return "{tag} resumed" end
function M.reload_from_inside()
  local report, err = require("hotlua").reload("m")
  return report ~= nil, err
end
M.Class = {{}}
M.Class.__index = M.Class
function M.Class.name() return "{tag} object" end
M.{tag}_only = {{ added = true }}
return M
"#,
        // Fields the new version adds to a live data table: written in one batch
        // (`Write::Fields`), which can fail after some of them as the table grows.
        added = if tag == "v1" {
            ""
        } else {
            ", a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8, i = 9"
        }
    )
}

const PROGRAM: &str = r#"
m = require 'm'
v1 = { version = m.version, wait = m.wait }
m.bump(); m.data.n = 5
callbacks = { m.version }
seen = { [m.version] = 'seen' }
other = (function() local held = m.version; return function() return held end end)()
closure = m.make()
co = coroutine.create(m.wait); coroutine.resume(co)
obj = setmetatable({}, m.Class)
-- Many objects holding references to switch: the walk's journal (one entry per object)
-- needs more memory than the garbage an emergency collection can free.
refs = {}
for i = 1, 1000 do refs[i] = { f = m.reload_from_inside } end

function snapshot()
  local out = {}
  local function add(value) out[#out + 1] = tostring(value) end
  add(m.version()); add(m.version == v1.version); add(callbacks[1]())
  add(callbacks[1] == v1.version)
  local key = next(seen); add(key()); add(key == v1.version); add(seen[key])
  add(other()()); add(other() == v1.version); add(closure())
  add(m.count()); add(m.data.n); add(MODGLOBAL); add(package.loaded.m == m)
  add(coroutine.status(co)); add(debug.getinfo(co, 1, 'f').func == v1.wait)
  add(obj:name()); add(getmetatable(obj) == m.Class); add(m.v1_only ~= nil); add(m.v2_only ~= nil)
  local same = 0
  for i = 1, #refs do if refs[i].f == m.reload_from_inside then same = same + 1 end end
  add(same)
  local data_keys = 0
  for _ in pairs(m.data) do data_keys = data_keys + 1 end
  add(data_keys)
  return table.concat(out, ' ')
end
"#;

/// Where the scenario calls the reload from.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// `Reloader::reload` from Rust, no Lua frame running.
    Host,
    /// `hotlua.reload` from a function of the module itself: under `inplace`, that function
    /// is on a running frame, so the walk switches its references.
    ModuleFunction,
}

/// When the memory limit is set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Limit {
    /// Before the reload starts.
    BeforeReload,
    /// By an `on_reload` "before" hook: after planning, before applying.
    FromHook,
}

fn setup(engine: Engine) -> Fixture {
    // SAFETY: the debug library is only used by the test's own snapshot.
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL_SAFE | StdLib::DEBUG, LuaOptions::new()) };
    let f = Fixture::with(lua);
    f.reloader.set_engine(engine);
    let limit = f
        .lua
        .create_function(|lua, headroom: usize| {
            // Without the planner's garbage, which an emergency collection would free.
            lua.gc_collect()?;
            lua.set_memory_limit(lua.used_memory() + headroom)?;
            Ok(())
        })
        .unwrap();
    f.lua.globals().set("limit_memory", limit).unwrap();
    f.write("m", &version("v1"));
    f.lua::<()>(PROGRAM);
    f.lua::<()>(
        "require('hotlua').on_reload(function(phase) \
           if phase == 'before' and HEADROOM then limit_memory(HEADROOM) end \
         end)",
    );
    f.write("m", &version("v2"));
    f
}

/// Reloads `m`; `Err` carries the message and, from the host, the failed step.
fn reload(f: &Fixture, caller: Caller) -> Result<(), (String, Option<ApplyStep>)> {
    match caller {
        Caller::Host => f
            .reloader
            .reload(&["m"], &Options::default())
            .map(drop)
            .map_err(|error| {
                let step = match &error {
                    Error::Apply { step, .. } => Some(*step),
                    _ => None,
                };
                (error.to_string(), step)
            }),
        Caller::ModuleFunction => {
            match f
                .lua
                .load("return m.reload_from_inside()")
                .eval::<(bool, Option<String>)>()
            {
                Ok((true, _)) => Ok(()),
                Ok((false, message)) => Err((message.unwrap_or_default(), None)),
                Err(error) => Err((format!("raised: {error}"), None)),
            }
        }
    }
}

/// Sweeps the memory limit from `from` bytes above what the program uses, `step` at a time,
/// until a reload succeeds; asserts the program unchanged after each failure. Returns the
/// headroom that succeeded and the failures seen, by kind.
fn sweep(
    engine: Engine,
    caller: Caller,
    limit: Limit,
    from: usize,
    step: usize,
) -> (usize, BTreeMap<String, usize>) {
    let f = setup(engine);
    let before: String = f.lua("return snapshot()");
    let mut failures = BTreeMap::new();
    let mut headroom = from;
    loop {
        f.lua.gc_collect().unwrap();
        f.lua.gc_collect().unwrap();
        match limit {
            Limit::BeforeReload => {
                f.lua
                    .set_memory_limit(f.lua.used_memory() + headroom)
                    .unwrap();
            }
            Limit::FromHook => f.lua.globals().set("HEADROOM", headroom).unwrap(),
        }
        let result = reload(&f, caller);
        f.lua.set_memory_limit(0).unwrap();
        f.lua.globals().set("HEADROOM", mlua::Nil).unwrap();
        // The walk also switches `v1`'s fields; either engine leaves the suspended frame
        // running the old code (under `inplace`, in a copy of the closure). Data (`count`,
        // `MODGLOBAL`) stays live.
        let inplace = engine == Engine::Inplace && Engine::inplace_available();
        let closure = if inplace { "v2 closure" } else { "v1 closure" };
        let reloaded = format!(
            "v2 true v2 true v2 true seen v2 true {closure} 1 5 v1 true suspended false v2 \
             object true true true 1000 10"
        );
        let after: String = f.lua("return snapshot()");
        let succeeded = match &result {
            Ok(()) => true,
            // Lua code around the call may itself run out of memory once the reload is done
            // (returning its values): Lua's own behaviour, and the reload is whole.
            Err((message, _)) => message.starts_with("raised: ") && after == reloaded,
        };
        if succeeded {
            assert_eq!(
                after, reloaded,
                "{engine:?} {caller:?}: the reload at headroom {headroom} succeeded"
            );
            assert_eq!(
                f.lua::<String>("return select(2, coroutine.resume(co))"),
                "v1 resumed"
            );
            return (headroom, failures);
        }
        let Err((message, failed_step)) = result else {
            unreachable!("a reload that did not succeed failed")
        };
        // A stack that could not grow for lack of memory reads "out of Lua stack" from mlua and
        // "stack overflow" from Lua 5.3's own functions; LuaJIT reports memory that ran out
        // while it handled an error as "error in error handling".
        assert!(
            [
                "not enough memory",
                "out of Lua stack",
                "stack overflow",
                "error in error handling",
            ]
            .iter()
            .any(|kind| message.contains(kind)),
            "{engine:?} {caller:?} at headroom {headroom}: {message}"
        );
        // A memory error raised in Lua (calling the module function, or pushing the message)
        // is Lua's own behaviour; a message hotlua returns names the module.
        assert!(
            message.starts_with("raised: ") || message.contains("'m'"),
            "{engine:?} {caller:?}: the message names the module: {message}"
        );
        assert_eq!(
            after, before,
            "{engine:?} {caller:?}: changed by a reload that failed at headroom {headroom}: \
             {message}"
        );
        let kind = match failed_step {
            Some(step) => format!("apply: {step}"),
            None => message
                .split(':')
                .next()
                .unwrap_or_default()
                .replace(|c: char| c.is_ascii_digit(), "")
                .to_owned(),
        };
        *failures.entry(kind).or_default() += 1;
        headroom += step;
        assert!(headroom < 64 << 20, "no reload succeeded below 64 MiB");
    }
}

fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Walk];
    if Engine::inplace_available() {
        engines.push(Engine::Inplace);
    }
    engines
}

/// `HOTLUA_SWEEP_STRIDE` (default 1) multiplies the steps: CI runs a coarser sweep under
/// valgrind.
fn stride() -> usize {
    std::env::var("HOTLUA_SWEEP_STRIDE")
        .ok()
        .and_then(|stride| stride.parse().ok())
        .unwrap_or(1)
}

#[test]
#[cfg_attr(
    feature = "luajit",
    ignore = "LuaJIT's debug build asserts on closing any state whose code hit mlua's memory \
              limit (`close_state: memory leak of 8 bytes`), with or without hotlua"
)]
fn out_of_memory_anywhere_in_a_reload_changes_nothing() {
    for engine in engines() {
        for caller in [Caller::Host, Caller::ModuleFunction] {
            let (needed, early) = sweep(engine, caller, Limit::BeforeReload, 0, 128 * stride());
            let (_, late) = sweep(engine, caller, Limit::FromHook, 0, 32 * stride());
            eprintln!("{engine:?} {caller:?}: needs {needed} B; {early:?}; {late:?}");
            // (From Lua, Lua 5.1, which has no emergency collection, often cannot even make
            // the message of a failed compilation: the call raises.)
            assert!(
                stride() > 1
                    || matches!(caller, Caller::ModuleFunction)
                    || early.keys().any(|kind| kind.contains("failed to load")),
                "{engine:?} {caller:?}: no attempt failed compiling: {early:?}"
            );
            // `inplace` allocates in Lua while switching only where the walk helps it: for
            // a module function on a running frame.
            if engine == Engine::Walk || matches!(caller, Caller::ModuleFunction) {
                let switch = ApplyStep::Switch.to_string();
                assert!(
                    late.keys().any(|kind| kind.contains(&switch)),
                    "{engine:?} {caller:?}: no attempt failed switching: {late:?}"
                );
            }
        }
    }
}
