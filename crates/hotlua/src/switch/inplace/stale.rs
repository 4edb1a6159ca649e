//! Run-time closures a reload left on old code, remembered so that the next reload of their
//! module counts them and tries them again.
//!
//! A closure is left old for a reason that may pass (it was on a running frame, its new version
//! captured a variable that could not be known) or stay (its function was deleted). Either way
//! it is one of its module's closures still on old code, and every later report counts it. The
//! scan hands each one over with the new prototype it would have taken, kept alive by an
//! *anchor*: a closure of that prototype that is never called and that the scan skips. At the
//! next reload that prototype is an old one; if it pairs again, the closure pairs with its
//! counterpart and is retargeted like any other.
//!
//! The registry holds them in a table with weak keys: a closure the program drops is forgotten.

use std::ffi::c_void;

use mlua::{Function, Lua, Table, Value};

use crate::fallible::TryPush;

const REGISTRY_KEY: &str = "hotlua.stale_closures";

/// One closure left old: the closure, the anchor of the prototype it would take (if any).
pub(super) struct Stale {
    pub(super) closure: Function,
    pub(super) anchor: Option<Function>,
}

/// The table of closures left old: closure → `{ anchor or false, chunk name }`.
fn table(lua: &Lua) -> mlua::Result<Table> {
    if let Some(table) = lua.named_registry_value::<Option<Table>>(REGISTRY_KEY)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    let weak_keys = lua.create_table()?;
    weak_keys.raw_set("__mode", "k")?;
    table.set_metatable(Some(weak_keys))?;
    lua.set_named_registry_value(REGISTRY_KEY, &table)?;
    Ok(table)
}

/// The closures left old of the modules compiled from `sources`, and every anchor (of any
/// module), which the scan must skip.
pub(super) fn read(
    lua: &Lua,
    sources: &[String],
) -> mlua::Result<(Vec<Stale>, Vec<*const c_void>)> {
    let (mut stale, mut anchors) = (Vec::new(), Vec::new());
    for pair in table(lua)?.pairs::<Function, Table>() {
        let (closure, entry) = pair?;
        let anchor = match entry.raw_get::<Value>(1)? {
            Value::Function(anchor) => Some(anchor),
            _ => None,
        };
        if let Some(anchor) = &anchor {
            anchors.try_push(anchor.to_pointer())?;
        }
        let source: mlua::LuaString = entry.raw_get(2)?;
        if sources
            .iter()
            .any(|s| s.as_bytes() == source.as_bytes().as_ref())
        {
            stale.try_push(Stale { closure, anchor })?;
        }
    }
    anchors.sort_unstable();
    Ok((stale, anchors))
}

/// Replaces what is remembered of the modules compiled from `sources` by `left`: the closures
/// this reload left old (from the scan) and `kept`, those remembered before that the reload
/// could not try (the prototype they would take did not pair again).
pub(super) fn record(
    lua: &Lua,
    sources: &[String],
    left: Vec<Stale>,
    kept: Vec<Stale>,
) -> mlua::Result<()> {
    let table = table(lua)?;
    let mut forgotten = Vec::new();
    for pair in table.pairs::<Function, Table>() {
        let (closure, entry) = pair?;
        let source: mlua::LuaString = entry.raw_get(2)?;
        if sources
            .iter()
            .any(|s| s.as_bytes() == source.as_bytes().as_ref())
        {
            forgotten.try_push(closure)?;
        }
    }
    for closure in forgotten {
        table.raw_set(closure, Value::Nil)?;
    }
    for stale in left.into_iter().chain(kept) {
        let source = stale.closure.info().source.unwrap_or_default();
        let anchor = stale.anchor.map_or(Value::Boolean(false), Value::Function);
        let entry =
            lua.create_sequence_from([anchor, Value::String(lua.create_string(source)?)])?;
        table.raw_set(stale.closure, entry)?;
    }
    Ok(())
}
