//! The `hotlua` Lua table: what `require "hotlua"` returns.
//!
//! | field | does |
//! |---|---|
//! | `reload(name or {names}, [options])` | reloads; returns the report table, or `nil, message` |
//! | `check(name or {names}, [options])` | the same plan and report, nothing applied |
//! | `rollback(name, [options])` | reinstates the source live before the last reload (the report) |
//! | `reloading` | true while a new top level runs inside a reload |
//! | `on_reload(fn)` | `fn("before", report)` may veto with `false, reason`; `fn("after", report)` |
//! | `policy(name, "keep" or "overwrite" or "merge3")` | the module's default data policy |
//! | `poll()` | reloads the watched modules that changed (the report), `nil` if none |
//! | `sleep(seconds)` | waits, polling the watcher meanwhile |
//! | `now()` | monotonic seconds |
//! | `watch(dir, ...)` | watches folders, as `hotlua run --watch DIR` does (feature `watch`) |
//!
//! `options` is a table: `{ data = "keep" | "overwrite" | "merge3", timeout = seconds, engine = "inplace" | "walk" }`
//! (`timeout`: how long each new top level may run, default 5, `math.huge` for no limit).
//!
//! A wrong argument raises the way Lua's own functions do (`bad argument #1 to 'reload'
//! (string or table expected, got nil)`); every failure of the reload itself returns
//! `nil, message`.

use std::time::{Duration, Instant};

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};

use crate::collector::CollectorPause;
use crate::entry::{self, Entry};

use crate::{DataPolicy, Error, Options, Reloader, Report, Result, Shared};

/// A wrong argument to a function of the table: `bad argument #position to 'function'
/// (message)`.
struct BadArgument {
    position: usize,
    message: String,
}

/// Why a function of the table did not return normally.
enum Failure {
    BadArgument(BadArgument),
    Lua(mlua::Error),
}

impl From<BadArgument> for Failure {
    fn from(bad: BadArgument) -> Failure {
        Failure::BadArgument(bad)
    }
}

impl From<mlua::Error> for Failure {
    fn from(error: mlua::Error) -> Failure {
        Failure::Lua(error)
    }
}

/// What a function of the table returns to its [`Entry`].
type Outcome = std::result::Result<MultiValue, Failure>;

/// A function of the table, before its [`Entry`] wraps it (`Send` with mlua's `send` feature,
/// as mlua then requires of every callback).
#[cfg(feature = "send")]
type Implementation = Box<dyn Fn(&Lua, MultiValue) -> Outcome + Send>;
/// A function of the table, before its [`Entry`] wraps it.
#[cfg(not(feature = "send"))]
type Implementation = Box<dyn Fn(&Lua, MultiValue) -> Outcome>;

/// Builds the table, stores it as `package.loaded.hotlua` and returns it.
pub(crate) fn install(lua: &Lua, shared: Arc<Shared>) -> mlua::Result<Table> {
    let api = lua.create_table()?;
    // Closures stored in Lua hold only the shared state and rebuild a Reloader from the `&Lua`
    // each call receives: a `Lua` handle inside the state would keep it from ever closing
    // (and its finalizers from running).
    let reloader_for = move |lua: &Lua| Reloader::from_shared(lua, shared.clone());

    // Registers `implementation` as `api[name]`, its bad arguments raised like Lua's.
    let register =
        |name: &'static str, entry: Entry, implementation: Implementation| -> mlua::Result<()> {
            let raw = lua.create_function(move |lua, args: MultiValue| {
                match implementation(lua, args) {
                    Ok(results) => Ok(results),
                    Err(Failure::Lua(error)) => Err(error),
                    Err(Failure::BadArgument(bad)) => entry::bad_argument(
                        lua,
                        format!(
                            "bad argument #{} to '{name}' ({})",
                            bad.position, bad.message
                        ),
                    ),
                }
            })?;
            api.raw_set(name, entry.function(lua, raw)?)
        };
    let r = reloader_for.clone();
    register(
        "reload",
        Entry::Reload,
        Box::new(move |lua, args| call(lua, &r(lua), &args, true)),
    )?;
    let r = reloader_for.clone();
    register(
        "check",
        Entry::Check,
        Box::new(move |lua, args| call(lua, &r(lua), &args, false)),
    )?;
    let r = reloader_for.clone();
    register(
        "rollback",
        Entry::Rollback,
        Box::new(move |lua, args| {
            let name = string_argument(&args, 1)?;
            let options = call_options(&args)?;
            Ok(outcome(lua, r(lua).rollback(&name, &options))?)
        }),
    )?;
    register(
        "on_reload",
        Entry::OnReload,
        Box::new(|lua, args| {
            let Some(Value::Function(hook)) = args.front() else {
                return Err(expected(&args, 1, "function").into());
            };
            crate::hooks::add(lua, hook)?;
            Ok(MultiValue::new())
        }),
    )?;
    let r = reloader_for.clone();
    register(
        "policy",
        Entry::Policy,
        Box::new(move |lua, args| {
            let name = string_argument(&args, 1)?;
            let policy =
                parse_policy(&string_argument(&args, 2)?).map_err(|message| BadArgument {
                    position: 2,
                    message,
                })?;
            r(lua).set_policy(&name, policy);
            Ok(MultiValue::new())
        }),
    )?;
    let epoch = Instant::now();
    let now = lua.create_function(move |_, ()| Ok(epoch.elapsed().as_secs_f64()))?;
    api.raw_set("now", Entry::Now.function(lua, now)?)?;
    #[cfg(feature = "watch")]
    {
        let r = reloader_for.clone();
        let poll_now = lua.create_function(move |lua, ()| {
            crate::memory::collect_if_reserve_spent(lua);
            let r = r(lua);
            r.run_safe_point();
            poll(lua, &r, Duration::ZERO)
        })?;
        api.raw_set("poll", Entry::Poll.function(lua, poll_now)?)?;
        let r = reloader_for.clone();
        let sleep = lua.create_function(move |lua, seconds: f64| {
            let r = r(lua);
            // `math.huge` (or any time past what a clock holds) sleeps for good.
            let deadline = Duration::try_from_secs_f64(seconds.max(0.0))
                .ok()
                .and_then(|wait| Instant::now().checked_add(wait));
            loop {
                crate::memory::collect_if_reserve_spent(lua);
                // Without a deadline, wait a day at a time.
                let left = deadline.map_or(Duration::from_secs(86_400), |deadline| {
                    deadline.saturating_duration_since(Instant::now())
                });
                // With a safe-point hook, wait in slices and run it between them.
                let wait = match r.run_safe_point() {
                    true => left.min(crate::SAFE_POINT_SLICE),
                    false => left,
                };
                if r.is_watching() {
                    poll(lua, &r, wait)?;
                } else {
                    std::thread::sleep(wait);
                }
                if left.is_zero() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Ok(());
                }
            }
        })?;
        api.raw_set("sleep", Entry::Sleep.function(lua, sleep)?)?;
        let watch = lua.create_function(|lua, dirs: mlua::Variadic<String>| {
            let dirs: Vec<std::path::PathBuf> = dirs.into_iter().map(Into::into).collect();
            Reloader::new(lua)
                .and_then(|reloader| reloader.watch(&dirs))
                .map_err(mlua::Error::external)
        })?;
        api.raw_set("watch", Entry::Watch.function(lua, watch)?)?;
    }

    // `reloading` is read live from the reloader, so it is a metatable field.
    let metatable = lua.create_table()?;
    let shared = reloader_for(lua).shared;
    let index = lua.create_function(move |_, (_, key): (Value, Value)| {
        let reloading = matches!(&key, Value::String(key) if key == "reloading");
        Ok(reloading.then(|| shared.reloading.get()))
    })?;
    metatable.raw_set("__index", Entry::ApiIndex.function(lua, index)?)?;
    api.set_metatable(Some(metatable))?;

    crate::modules::loaded_table(lua)
        .map_err(mlua::Error::external)?
        .raw_set("hotlua", &api)?;
    Ok(api)
}

/// The type of argument `position` as Lua's messages name it (`no value` when absent).
fn argument_type(args: &MultiValue, position: usize) -> &'static str {
    match args.get(position - 1) {
        None => "no value",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::LightUserData(_)) => "userdata",
        Some(value) => value.type_name(),
    }
}

/// `what expected, got <type>` for argument `position`.
fn expected(args: &MultiValue, position: usize, what: &str) -> BadArgument {
    BadArgument {
        position,
        message: format!("{what} expected, got {}", argument_type(args, position)),
    }
}

/// Argument `position`, which must be a string (Lua's numbers are not taken for one).
fn string_argument(args: &MultiValue, position: usize) -> std::result::Result<String, BadArgument> {
    match args.get(position - 1) {
        Some(Value::String(text)) => Ok(text.to_string_lossy()),
        _ => Err(expected(args, position, "string")),
    }
}

fn parse_policy(name: &str) -> std::result::Result<DataPolicy, String> {
    DataPolicy::from_name(name).ok_or_else(|| {
        format!("unknown data policy '{name}' (expected \"keep\", \"overwrite\" or \"merge3\")")
    })
}

/// `hotlua.reload` and `hotlua.check`: a report table, or `nil, message` on any failure.
fn call(lua: &Lua, reloader: &Reloader, args: &MultiValue, apply: bool) -> Outcome {
    let names = module_names(args)?;
    let options = call_options(args)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let result = if apply {
        reloader.reload(&names, &options)
    } else {
        reloader.check(&names, &options)
    };
    Ok(outcome(lua, result)?)
}

/// Argument 1 of `reload` and `check`: one module name, or a list of them.
fn module_names(args: &MultiValue) -> std::result::Result<Vec<String>, BadArgument> {
    match args.front() {
        Some(Value::String(name)) => Ok(vec![name.to_string_lossy()]),
        Some(Value::Table(list)) => (1..=list.raw_len())
            .map(|i| match list.raw_get::<Value>(i) {
                Ok(Value::String(name)) => Ok(name.to_string_lossy()),
                Ok(other) => Err(BadArgument {
                    position: 1,
                    message: format!(
                        "module name expected at index {i}, got {}",
                        argument_type(&MultiValue::from_iter([other]), 1)
                    ),
                }),
                Err(error) => Err(BadArgument {
                    position: 1,
                    message: crate::load::lua_error_text(&error),
                }),
            })
            .collect(),
        _ => Err(expected(args, 1, "string or table")),
    }
}

/// Argument 2 of `reload` and `check`: `nil` or `{ data = ..., timeout = ... }`.
fn call_options(args: &MultiValue) -> std::result::Result<Options, BadArgument> {
    let bad = |message: String| BadArgument {
        position: 2,
        message,
    };
    let mut options = Options::default();
    let table = match args.get(1) {
        None | Some(Value::Nil) => return Ok(options),
        Some(Value::Table(table)) => table,
        Some(_) => return Err(expected(args, 2, "table")),
    };
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|error| bad(crate::load::lua_error_text(&error)))?;
        let key = match &key {
            Value::String(key) => key.to_string_lossy(),
            other => {
                return Err(bad(format!(
                    "option names are strings, got a {}",
                    other.type_name()
                )))
            }
        };
        match (key.as_str(), value) {
            ("data", Value::String(policy)) => {
                options.data = Some(parse_policy(&policy.to_string_lossy()).map_err(bad)?);
            }
            ("timeout", Value::Integer(seconds)) => {
                options.timeout = Some(timeout(seconds as f64).map_err(bad)?)
            }
            ("timeout", Value::Number(seconds)) => {
                options.timeout = Some(timeout(seconds).map_err(bad)?)
            }
            ("data", other) => {
                return Err(bad(format!(
                    "option 'data' must be a string, got {}",
                    other.type_name()
                )))
            }
            ("timeout", other) => {
                return Err(bad(format!(
                    "option 'timeout' must be a number, got {}",
                    other.type_name()
                )))
            }
            ("engine", Value::String(engine)) => {
                let engine = engine.to_string_lossy();
                options.engine = Some(crate::Engine::from_name(&engine).ok_or_else(|| {
                    bad(format!(
                        "unknown engine '{engine}' (expected \"inplace\" or \"walk\")"
                    ))
                })?);
            }
            ("engine", other) => {
                return Err(bad(format!(
                    "option 'engine' must be a string, got {}",
                    other.type_name()
                )))
            }
            (unknown, _) => {
                return Err(bad(format!(
                    "unknown option '{unknown}' (expected \"data\", \"timeout\" or \"engine\")"
                )))
            }
        }
    }
    Ok(options)
}

/// The `timeout` option: positive seconds, `math.huge` for no limit.
fn timeout(seconds: f64) -> std::result::Result<Duration, String> {
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!(
            "option 'timeout' must be a positive number of seconds, got {seconds}"
        ));
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

fn outcome(lua: &Lua, result: Result<Report>) -> mlua::Result<MultiValue> {
    // Made with the collector paused and its debt put back after, like the reload's own
    // objects: the first of them would otherwise start the collector's next step (a minor
    // collection of everything the reload made, in generational mode) inside the call.
    let _paused = CollectorPause::new(lua);
    Ok(match result {
        // The reload is done; if memory ran out building its report, `true` still says so.
        Ok(report) => {
            MultiValue::from_iter([report.into_lua_table(lua).unwrap_or(Value::Boolean(true))])
        }
        Err(error) => MultiValue::from_iter([
            Value::Nil,
            Value::String(lua.create_string(error.to_string())?),
            Value::Table(failure_table(lua, &error)?),
        ]),
    })
}

/// The third value of a failed reload, `{ module =, file =, line = }` (the fields the error
/// knows), so that a host can show where it failed without parsing the message (OpenResty's
/// `hotlua.nginx` status).
fn failure_table(lua: &Lua, error: &Error) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("module", error.module())?;
    table.raw_set("file", error.file().map(|file| file.display().to_string()))?;
    table.raw_set("line", error.line())?;
    Ok(table)
}

#[cfg(feature = "watch")]
fn poll(lua: &Lua, reloader: &Reloader, wait: Duration) -> mlua::Result<MultiValue> {
    let Some(result) = reloader.poll(wait) else {
        return Ok(MultiValue::new());
    };
    match &result {
        Ok(report) if reloader.shared.json_log.get() => eprintln!("{}", report.to_json()),
        Ok(report) => eprintln!("{}", report.summary()),
        Err(error) if reloader.shared.json_log.get() => eprintln!("{}", failure_json(error)),
        Err(error) => eprintln!(
            "reload of {} failed, old code kept: {error}",
            error.module().unwrap_or("the changed modules")
        ),
    }
    outcome(lua, result)
}

/// A failed watch reload as one line of JSON, like the reports of successful ones:
/// `{"ok":false,"modules":[...],"error":"...","file":...,"line":...}`.
#[cfg(feature = "watch")]
fn failure_json(error: &Error) -> String {
    /// Fields in the order a reader expects them, `ok` first.
    #[derive(serde::Serialize)]
    struct FailedReload<'a> {
        ok: bool,
        modules: Vec<&'a str>,
        error: String,
        file: Option<String>,
        line: Option<u32>,
    }
    serde_json::to_string(&FailedReload {
        ok: false,
        modules: error.module().into_iter().collect(),
        error: error.to_string(),
        file: error.file().map(|file| file.display().to_string()),
        line: error.line(),
    })
    .expect("strings and numbers always serialize")
}

#[cfg(all(test, hotlua_lua54_shim))]
mod tests {
    use super::*;
    use crate::collector::{collected_state, debt, set_debt};

    /// The report's table is made as the reload's own objects are, off the collector's
    /// schedule: a collector due to step at the next allocation does not step inside the call.
    #[test]
    fn making_the_report_starts_no_collector_step() {
        let lua = collected_state();
        let report = Report {
            warnings: (0..100).map(|i| format!("warning {i}")).collect(),
            ..Report::default()
        };
        set_debt(&lua, -1);
        outcome(&lua, Ok(report)).unwrap();
        assert_eq!(debt(&lua).unwrap(), -1);
    }
}
