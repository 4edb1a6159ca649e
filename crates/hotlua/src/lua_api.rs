//! The `hotlua` Lua table: what `require "hotlua"` returns.
//!
//! | field | does |
//! |---|---|
//! | `reload(name or {names}, [options])` | reloads; returns the report table, or `nil, message` |
//! | `check(name or {names}, [options])` | the same plan and report, nothing applied |
//! | `reloading` | true while a new top level runs inside a reload |
//! | `on_reload(fn)` | `fn("before", report)` may veto with `false, reason`; `fn("after", report)` |
//! | `policy(name, "keep" or "overwrite" or "merge3")` | the module's default data policy |
//! | `poll()` | reloads the watched modules that changed (the report), `nil` if none |
//! | `sleep(seconds)` | waits, polling the watcher meanwhile |
//! | `now()` | monotonic seconds |
//!
//! `options` is a table: `{ data = "keep" | "overwrite" | "merge3", engine = "inplace" | "walk" }`.

#[cfg(feature = "watch")]
use std::time::Duration;
use std::time::Instant;

use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::{DataPolicy, Error, Options, Reloader, Report, Result, Shared};

const HOOKS: &str = "hotlua.hooks";

/// Builds the table, stores it as `package.loaded.hotlua` and returns it.
pub(crate) fn install(lua: &Lua, shared: Rc<Shared>) -> mlua::Result<Table> {
    let api = lua.create_table()?;
    // Closures stored in Lua hold only the shared state and rebuild a Reloader from the `&Lua`
    // each call receives: a `Lua` handle inside the state would keep it from ever closing
    // (and its finalizers from running).
    let reloader_for = move |lua: &Lua| Reloader::from_shared(lua, shared.clone());

    let r = reloader_for.clone();
    api.raw_set(
        "reload",
        lua.create_function(move |lua, (names, options): (Value, Option<Table>)| {
            call(lua, &r(lua), names, options, true)
        })?,
    )?;
    let r = reloader_for.clone();
    api.raw_set(
        "check",
        lua.create_function(move |lua, (names, options): (Value, Option<Table>)| {
            call(lua, &r(lua), names, options, false)
        })?,
    )?;
    api.raw_set(
        "on_reload",
        lua.create_function(|lua, hook: Function| hooks(lua)?.raw_push(hook))?,
    )?;
    let r = reloader_for.clone();
    api.raw_set(
        "policy",
        lua.create_function(move |lua, (name, policy): (String, String)| {
            let policy = parse_policy(&policy)?;
            r(lua).set_policy(&name, policy);
            Ok(())
        })?,
    )?;
    let epoch = Instant::now();
    api.raw_set(
        "now",
        lua.create_function(move |_, ()| Ok(epoch.elapsed().as_secs_f64()))?,
    )?;
    #[cfg(feature = "watch")]
    {
        let r = reloader_for.clone();
        api.raw_set(
            "poll",
            lua.create_function(move |lua, ()| poll(lua, &r(lua), Duration::ZERO))?,
        )?;
        let r = reloader_for.clone();
        api.raw_set(
            "sleep",
            lua.create_function(move |lua, seconds: f64| {
                let r = r(lua);
                let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !r.is_watching() {
                        std::thread::sleep(left);
                        return Ok(());
                    }
                    poll(lua, &r, left)?;
                    if left.is_zero() {
                        return Ok(());
                    }
                }
            })?,
        )?;
    }

    // `reloading` is read live from the reloader, so it is a metatable field.
    let metatable = lua.create_table()?;
    let shared = reloader_for(lua).shared;
    metatable.raw_set(
        "__index",
        lua.create_function(move |_, (_, key): (Value, String)| {
            Ok((key == "reloading").then(|| shared.reloading.get()))
        })?,
    )?;
    api.set_metatable(Some(metatable))?;

    crate::modules::loaded_table(lua)
        .map_err(mlua::Error::external)?
        .raw_set("hotlua", &api)?;
    Ok(api)
}

fn parse_policy(name: &str) -> mlua::Result<DataPolicy> {
    DataPolicy::from_name(name).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "unknown data policy '{name}' (expected \"keep\", \"overwrite\" or \"merge3\")"
        ))
    })
}

/// `hotlua.reload` and `hotlua.check`: a report table, or `nil, message` on any failure.
fn call(
    lua: &Lua,
    reloader: &Reloader,
    names: Value,
    options: Option<Table>,
    apply: bool,
) -> mlua::Result<MultiValue> {
    let names: Vec<String> = match names {
        Value::String(name) => vec![name.to_str()?.to_owned()],
        Value::Table(list) => list
            .sequence_values::<String>()
            .collect::<mlua::Result<_>>()?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "hotlua.reload expects a module name or a list of names, got {}",
                other.type_name()
            )))
        }
    };
    let mut call_options = Options::default();
    if let Some(options) = options {
        if let Some(data) = options.get::<Option<String>>("data")? {
            call_options.data = Some(parse_policy(&data)?);
        }
        if let Some(engine) = options.get::<Option<String>>("engine")? {
            call_options.engine = Some(crate::Engine::from_name(&engine).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "unknown engine '{engine}' (expected \"inplace\" or \"walk\")"
                ))
            })?);
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let result = if apply {
        reloader.reload(&names, &call_options)
    } else {
        reloader.check(&names, &call_options)
    };
    outcome(lua, result)
}

fn outcome(lua: &Lua, result: Result<Report>) -> mlua::Result<MultiValue> {
    Ok(match result {
        Ok(report) => MultiValue::from_iter([report.to_lua(lua)?]),
        Err(error) => MultiValue::from_iter([
            Value::Nil,
            Value::String(lua.create_string(error.to_string())?),
        ]),
    })
}

#[cfg(feature = "watch")]
fn poll(lua: &Lua, reloader: &Reloader, wait: Duration) -> mlua::Result<MultiValue> {
    let Some(result) = reloader.poll(wait) else {
        return Ok(MultiValue::new());
    };
    match &result {
        Ok(report) if reloader.shared.json_log.get() => eprintln!("{}", report.to_json()),
        Ok(report) => eprintln!("{}", report.summary()),
        Err(error) => eprintln!(
            "reload of {} failed, old code kept: {error}",
            error.module().unwrap_or("the changed modules")
        ),
    }
    outcome(lua, result)
}

fn hooks(lua: &Lua) -> mlua::Result<Table> {
    if let Some(table) = lua.named_registry_value::<Option<Table>>(HOOKS)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    lua.set_named_registry_value(HOOKS, &table)?;
    Ok(table)
}

/// Calls every hook with `"before"`; the first that returns `false` (or raises) vetoes.
pub(crate) fn call_hooks_before(lua: &Lua, report: &Report) -> Result<()> {
    let modules = || {
        report
            .modules
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let table = report.to_lua(lua)?;
    for hook in hooks(lua)?.sequence_values::<Function>() {
        let verdict: mlua::Result<(Value, Option<String>)> = hook?.call(("before", &table));
        let reason = match verdict {
            Ok((Value::Boolean(false), reason)) => {
                reason.unwrap_or_else(|| "no reason given".into())
            }
            Ok(_) => continue,
            Err(error) => format!("hook raised: {}", crate::load::lua_error_text(&error)),
        };
        return Err(Error::Vetoed {
            modules: modules(),
            reason,
        });
    }
    Ok(())
}

/// Calls every hook with `"after"`. The reload is already applied, so a hook's error cannot
/// undo it: it becomes a warning of the report.
pub(crate) fn call_hooks_after(lua: &Lua, report: &mut Report) -> Result<()> {
    let table = report.to_lua(lua)?;
    for hook in hooks(lua)?.sequence_values::<Function>() {
        if let Err(error) = hook?.call::<()>(("after", &table)) {
            report.warnings.push(format!(
                "on_reload hook raised after the reload: {}",
                crate::load::lua_error_text(&error)
            ));
        }
    }
    Ok(())
}
