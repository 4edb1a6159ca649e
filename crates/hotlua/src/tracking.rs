//! Recording what each module's file set when `require` loaded it (the base of
//! [`crate::DataPolicy::Merge3`]).
//!
//! `require` stores a module it has just loaded with `package.loaded[name] = value`, an
//! assignment that is not raw: a `__newindex` metamethod on `package.loaded` sees every module
//! the moment its top level returned, before the program could change anything. Nothing wraps
//! the searchers or the loaders, so an error a module's top level raises reaches the caller of
//! `require` exactly as lua5.4 delivers it: the same value, the same traceback.
//!
//! Lua 5.1 and LuaJIT first store a sentinel (a light userdata, or on LuaJIT's GC64 build a
//! number) under the name while the module loads, to detect a `require` loop; the
//! metamethods keep it aside (`__index` still answers it), so that the module's value is a new
//! key again when it arrives. A 5.1
//! `module(...)` stores its table before the top level has filled it: such a module's
//! load-time values are the empty table, and `merge3` keeps its live values.

use std::sync::Arc;

use mlua::{Lua, Table, Value};

use crate::modules::loaded_table;
use crate::{baseline, Result, Shared};

/// Records, for every module `require` loads from now on, the values its file set at load
/// time. A program that gave `package.loaded` a metatable of its own keeps it, and `merge3`
/// then has no load-time values (it says so in a warning).
pub(crate) fn track_loads(lua: &Lua) -> Result<()> {
    let loaded = loaded_table(lua)?;
    if loaded.metatable().is_some() {
        return Ok(());
    }
    let loading = lua.create_table()?;
    let sentinels = loading.clone();
    let record = lua.create_function(move |lua, (loaded, key, value): (Table, Value, Value)| {
        if is_loading_sentinel(&value) {
            return sentinels.raw_set(key, value);
        }
        sentinels.raw_set(&key, Value::Nil)?;
        loaded.raw_set(&key, &value)?;
        if let Value::String(name) = &key {
            // Bookkeeping must never fail a `require`: without its load-time values, a later
            // `merge3` reload of the module keeps live values and says so.
            let name = name.to_string_lossy();
            if baseline::record_load(lua, &name, &value).is_err() {
                let _ = baseline::store(lua, &name, Value::Nil);
            }
            remember_source(lua, &name, &value);
        }
        Ok(())
    })?;
    let metatable = lua.create_table()?;
    metatable.raw_set(
        "__newindex",
        crate::entry::Entry::RecordLoad.function(lua, record)?,
    )?;
    metatable.raw_set("__index", loading)?;
    loaded.set_metatable(Some(metatable))?;
    Ok(())
}

/// Keeps the source module `name` (now `value`) runs, for a rollback, for status lines and
/// for the watcher: the file it was loaded from ([`crate::modules::loaded_from`]) as it is
/// right after `require` loaded it, and where that file is (a relative one made absolute now,
/// while the current directory is still the one it was found in).
fn remember_source(lua: &Lua, name: &str, value: &Value) {
    let Ok(Some(crate::modules::LoadedFrom { file, path, .. })) =
        crate::modules::loaded_from(lua, name, value)
    else {
        return;
    };
    if let (Ok(bytes), Some(shared)) = (
        crate::source_file::read(&path),
        lua.app_data_ref::<Arc<Shared>>(),
    ) {
        shared.sources.loaded(name, &file, &path, &bytes);
    }
}

/// The value Lua 5.1's and LuaJIT's `require` store while a module loads: a light userdata,
/// which LuaJIT's GC64 build hands over as a number (its bits are the pointer). A module whose
/// value is a number is kept aside the same way: `require` and `package.loaded[name]` find it
/// (through `__index`), `rawget` does not.
fn is_loading_sentinel(value: &Value) -> bool {
    matches!(value, Value::LightUserData(_) | Value::Number(_))
}
