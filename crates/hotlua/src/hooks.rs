//! The hooks a program adds with `hotlua.on_reload(fn)`: each is called with `"before"` and the
//! report, and may veto the reload, then with `"after"` once it is applied.

use mlua::{Function, Lua, Table, Value};

use crate::{Error, Report, Result};

/// Registry key of the list of hooks.
const HOOKS: &str = "hotlua.hooks";

/// Adds `hook` after the hooks already added.
pub(crate) fn add(lua: &Lua, hook: &Function) -> mlua::Result<()> {
    registered(lua)?.raw_push(hook)
}

/// The hooks `hotlua.on_reload` added, in order, kept in the registry.
fn registered(lua: &Lua) -> mlua::Result<Table> {
    if let Some(table) = lua.named_registry_value::<Option<Table>>(HOOKS)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    lua.set_named_registry_value(HOOKS, &table)?;
    Ok(table)
}

/// Calls every hook with `"before"`; the first that returns `false` (or raises) vetoes.
/// Returns whether any hook ran (and so may have changed the modules).
pub(crate) fn call_before(lua: &Lua, report: &Report) -> Result<bool> {
    let hooks = registered(lua)?;
    if hooks.raw_len() == 0 {
        return Ok(false);
    }
    let table = report.to_lua(lua)?;
    let mut any_ran = false;
    for hook in hooks.sequence_values::<Function>() {
        any_ran = true;
        let verdict: mlua::Result<(Value, Option<String>)> = hook?.call(("before", &table));
        let reason = match verdict {
            Ok((Value::Boolean(false), reason)) => {
                reason.unwrap_or_else(|| "no reason given".into())
            }
            Ok(_) => continue,
            Err(error) => format!("hook raised: {}", crate::load::lua_error_text(&error)),
        };
        return Err(Error::Vetoed {
            modules: crate::error::quoted(report.modules.iter().map(|m| m.name.as_str())),
            reason,
        });
    }
    Ok(any_ran)
}

/// Calls every hook with `"after"`. The reload is already applied, so a hook's error cannot
/// undo it: it becomes a warning of the report.
pub(crate) fn call_after(lua: &Lua, report: &mut Report) {
    // The reload is done: nothing here may turn it into a failure. A hook's error, or no
    // memory left to hand hooks the report, becomes a warning of the report.
    let mut warnings = Vec::new();
    let ran = (|| -> Result<()> {
        let hooks = registered(lua)?;
        if hooks.raw_len() == 0 {
            return Ok(());
        }
        let table = report.to_lua(lua)?;
        for hook in hooks.sequence_values::<Function>() {
            if let Err(error) = hook?.call::<()>(("after", &table)) {
                warnings.push(format!(
                    "on_reload hook raised after the reload: {}",
                    crate::load::lua_error_text(&error)
                ));
            }
        }
        Ok(())
    })();
    if let Err(error) = ran {
        warnings.push(format!(
            "on_reload hooks could not run after the reload: {error}"
        ));
    }
    report.warnings.extend(warnings);
}
