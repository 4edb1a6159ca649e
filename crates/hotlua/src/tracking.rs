//! Recording what each module's file set when `require` loaded it (the base of
//! [`crate::DataPolicy::Merge3`]), by wrapping the Lua file searcher of `package.searchers`.
//!
//! The wrapper around each loader is a Lua function, not a Rust one: an error the module's top
//! level raises then reaches the caller of `require` exactly as Lua raised it (the same string
//! with its position, the same table), never converted into an mlua error and back.

use std::path::PathBuf;
use std::rc::Rc;

use mlua::{Function, Lua, Value};

use crate::modules::{loaded_table, searchers};
use crate::{baseline, Result, Shared};

/// Registry key of the original Lua file searcher, which [`track_loads`] wraps.
const ORIGINAL_SEARCHER: &str = "hotlua.lua_searcher";

/// Registry key of the wrapper [`track_loads`] installs, so [`unwrapped`] can tell it apart.
const TRACKING_SEARCHER: &str = "hotlua.tracking_searcher";

/// The searcher that replaces the Lua file searcher: it finds the module as that one does
/// and wraps the loader it returns so that, once the module's top level returned, its value
/// goes to `record`. Only the loader's first value goes on, as `require` keeps only that one.
const TRACKING_SEARCHER_SOURCE: &str = r#"
local record, searcher = ...
return function(name, ...)
  local loader, extra = searcher(name, ...)
  if type(loader) ~= "function" then
    return loader, extra
  end
  return function(...)
    local result = loader(...)
    record(name, result, extra)
    return result
  end, extra
end
"#;

/// Records, for every Lua module `require` loads from now on, the values its file set at load
/// time, by wrapping the Lua file searcher (the second of `package.searchers`).
pub(crate) fn track_loads(lua: &Lua) -> Result<()> {
    let Ok(searchers) = searchers(lua) else {
        return Ok(());
    };
    let Ok(lua_searcher) = searchers.raw_get::<Function>(2) else {
        return Ok(());
    };
    lua.set_named_registry_value(ORIGINAL_SEARCHER, &lua_searcher)?;
    let record = lua.create_function(|lua, (name, result, file): (String, Value, Value)| {
        // The source it runs, for a rollback and for status lines: the file as it is right
        // after the searcher read it.
        // Lua 5.1's searchers do not name the file: find it as its searcher did.
        let file = match file {
            Value::String(file) => Some(PathBuf::from(file.to_string_lossy())),
            _ => lua
                .globals()
                .raw_get::<mlua::Table>("package")
                .ok()
                .and_then(|package| crate::load::search_path(&package, &name).ok().flatten()),
        };
        if let (Some(file), Some(shared)) = (file, lua.app_data_ref::<Rc<Shared>>()) {
            if let Ok(bytes) = std::fs::read(&file) {
                shared.sources.loaded(&name, &file, &bytes);
            }
        }
        let module = match result {
            Value::Nil => loaded_table(lua)
                .map_err(mlua::Error::external)?
                .raw_get(name.as_str())?,
            other => other,
        };
        baseline::record_load(lua, &name, &module)
    })?;
    let tracking: Function = lua
        .load(TRACKING_SEARCHER_SOURCE)
        .set_name("=hotlua")
        .call((record, lua_searcher))?;
    searchers.raw_set(2, &tracking)?;
    lua.set_named_registry_value(TRACKING_SEARCHER, tracking)?;
    Ok(())
}

/// The original Lua file searcher, once [`track_loads`] has wrapped it.
pub(crate) fn original_searcher(lua: &Lua) -> Option<Function> {
    lua.named_registry_value(ORIGINAL_SEARCHER).ok().flatten()
}

/// The searcher to call in place of `searcher`: the original Lua file searcher if `searcher`
/// is hotlua's tracking wrapper (a reload needs the Lua chunk itself, not a wrapper).
pub(crate) fn unwrapped(lua: &Lua, searcher: Function) -> Function {
    match lua.named_registry_value::<Option<Function>>(TRACKING_SEARCHER) {
        Ok(Some(tracking)) if tracking == searcher => lua
            .named_registry_value(ORIGINAL_SEARCHER)
            .unwrap_or(searcher),
        _ => searcher,
    }
}
